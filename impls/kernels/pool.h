/* pool.h: a small persistent thread pool for splitting one attend over cores.
 *
 * Contract. kvb_pool_create starts threads - 1 workers (the caller is the last
 * thread); kvb_pool_run calls fn(arg, item, thread) once for every item in
 * 0..n-1, spread over the threads (each takes the next free item), and returns
 * when all are done. `thread` is in 0..threads-1 and unique among concurrent
 * calls, so fn may use per-thread scratch. One kvb_pool_run at a time per pool.
 * A pool of 1 thread (or a NULL pool) runs everything in the caller. start,
 * when not NULL, runs first in each worker (start(start_arg, thread)), and
 * kvb_pool_create returns after all have run it, so what it records is there
 * to read. The pool owns its threads; kvb_pool_destroy joins them.
 *
 * Between runs the workers sleep, and waking one costs tens of microseconds
 * (47 us a run on the 2-core KVM guest, docs/weights.md). kvb_pool_set_poll
 * makes them, and the caller waiting for them, poll for up to poll_us first
 * (0, the default: sleep at once): for a pool handed many short runs in a
 * row, as a decode step's products. A poller yields the core every few
 * microseconds and sleeps as soon as another thread takes it, but two polling
 * pools in one process still take turns on the cores, so only one should
 * poll: the model's, not the caches'. */
#ifndef KVB_POOL_H
#define KVB_POOL_H

#include "../types/kvb_types.h"

typedef struct kvb_pool kvb_pool;
typedef void (*kvb_pool_fn)(void *arg, int item, int thread);

typedef void (*kvb_pool_start_fn)(void *arg, int thread);
kvb_status kvb_pool_create(kvb_pool **out, int threads, kvb_pool_start_fn start, void *start_arg);
void       kvb_pool_destroy(kvb_pool *p);            /* NULL-safe */
int        kvb_pool_threads(const kvb_pool *p);
void       kvb_pool_set_poll(kvb_pool *p, int poll_us);      /* NULL-safe */
void       kvb_pool_run(kvb_pool *p, int n, kvb_pool_fn fn, void *arg);

#endif
