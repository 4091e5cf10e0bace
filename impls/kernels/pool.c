/* pool.c: see pool.h. A run publishes (fn, arg, n) and bumps an atomic
 * generation number; every thread, the caller included, takes items from an
 * atomic counter. Between runs a worker sleeps on a condition variable, or,
 * in a pool set to poll, first polls the generation for up to poll_us; the
 * caller waits for the workers the same way. A poller yields the core every
 * few microseconds and sleeps at once when a yield took long (another thread
 * needed the core: a second pool's, or another process's). */
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* a yield that took this long gave the core to another thread */
enum { KVB_POOL_YIELD_LONG_NS = 20 * 1000 };

typedef struct worker { kvb_pool *pool; int index; pthread_t tid; } worker;

struct kvb_pool {
    int             threads;
    worker         *workers;          /* [threads - 1] */
    pthread_mutex_t mu;               /* guards the sleeps: wake, done, started */
    pthread_cond_t  wake, done;
    atomic_ulong    generation;       /* bumped by each run; workers wait for a change */
    atomic_int      busy;             /* workers still inside the current run */
    atomic_int      quit;
    atomic_int      poll_us;          /* kvb_pool_set_poll; 0: sleep at once */
    int             started;          /* workers past their start function */
    kvb_pool_start_fn start;
    void           *start_arg;
    kvb_pool_fn     fn;               /* fn, arg, n: written before generation is bumped */
    void           *arg;
    int             n;
    atomic_int      next;             /* the next item to take */
};

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Polls until done(p, seen) holds (1) or the pool's poll time ran out or a
 * yield showed the core is wanted elsewhere (0: the caller sleeps instead). */
static int poll_until(kvb_pool *p, int (*done)(kvb_pool *, unsigned long), unsigned long seen)
{
    const int64_t budget = (int64_t)atomic_load(&p->poll_us) * 1000;
    if (budget <= 0) return done(p, seen);
    const int64_t t0 = now_ns();
    for (;;) {
        for (int i = 0; i < 64; i++) {
            if (done(p, seen)) return 1;
            cpu_relax();
        }
        const int64_t t1 = now_ns();
        if (t1 - t0 > budget) return 0;
        sched_yield();
        if (now_ns() - t1 > KVB_POOL_YIELD_LONG_NS) return done(p, seen);
    }
}

static int run_started(kvb_pool *p, unsigned long seen)
{
    return atomic_load(&p->generation) != seen || atomic_load(&p->quit);
}

static int workers_idle(kvb_pool *p, unsigned long seen)
{
    (void)seen;
    return atomic_load(&p->busy) == 0;
}

static void take_items(kvb_pool *p, int thread)
{
    for (int i; (i = atomic_fetch_add(&p->next, 1)) < p->n;) p->fn(p->arg, i, thread);
}

static void *worker_main(void *a)
{
    worker *w = a;
    kvb_pool *p = w->pool;
    unsigned long seen = 0;
    if (p->start) p->start(p->start_arg, w->index);
    pthread_mutex_lock(&p->mu);
    p->started++;
    pthread_cond_broadcast(&p->done);
    pthread_mutex_unlock(&p->mu);
    for (;;) {
        if (!poll_until(p, run_started, seen)) {
            pthread_mutex_lock(&p->mu);
            while (!atomic_load(&p->quit) && atomic_load(&p->generation) == seen)
                pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) break;
        seen = atomic_load(&p->generation);
        take_items(p, w->index);
        if (atomic_fetch_sub(&p->busy, 1) == 1) {   /* the last one out: the caller may sleep */
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

kvb_status kvb_pool_create(kvb_pool **out, int threads, kvb_pool_start_fn start, void *start_arg)
{
    *out = NULL;
    if (threads < 1 || threads > 1024) return KVB_STATUS_INVALID_ARG;
    kvb_pool *p = calloc(1, sizeof *p);
    if (!p) return KVB_STATUS_NO_MEMORY;
    p->threads = 1;
    p->start = start;
    p->start_arg = start_arg;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->next, 0);
    atomic_init(&p->generation, 0);
    atomic_init(&p->busy, 0);
    atomic_init(&p->quit, 0);
    atomic_init(&p->poll_us, 0);
    if (threads > 1) {
        p->workers = calloc((size_t)threads - 1, sizeof *p->workers);
        if (!p->workers) { kvb_pool_destroy(p); return KVB_STATUS_NO_MEMORY; }
        for (int i = 0; i < threads - 1; i++) {
            p->workers[i] = (worker){p, i + 1, 0};
            if (pthread_create(&p->workers[i].tid, NULL, worker_main, &p->workers[i]) != 0) {
                kvb_pool_destroy(p);                  /* joins the ones started */
                return KVB_STATUS_NO_MEMORY;
            }
            p->threads++;
        }
        pthread_mutex_lock(&p->mu);
        while (p->started < p->threads - 1) pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
    *out = p;
    return KVB_STATUS_OK;
}

void kvb_pool_destroy(kvb_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->threads - 1; i++) pthread_join(p->workers[i].tid, NULL);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}

int kvb_pool_threads(const kvb_pool *p) { return p ? p->threads : 1; }

void kvb_pool_set_poll(kvb_pool *p, int poll_us)
{
    if (p) atomic_store(&p->poll_us, poll_us > 0 ? poll_us : 0);
}

void kvb_pool_run(kvb_pool *p, int n, kvb_pool_fn fn, void *arg)
{
    if (n <= 0) return;
    if (!p || p->threads == 1 || n == 1) {
        for (int i = 0; i < n; i++) fn(arg, i, 0);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    atomic_store(&p->next, 0);
    atomic_store(&p->busy, p->threads - 1);
    pthread_mutex_lock(&p->mu);          /* a sleeping worker checks under it */
    atomic_fetch_add(&p->generation, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    take_items(p, 0);
    if (poll_until(p, workers_idle, 0)) return;
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->busy) > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
