/* topo.h: the machine as hwloc sees it, and pinning threads to its cores.
 *
 * Contract. kvb_topo_init loads hwloc's topology once; the struct owns it and
 * kvb_topo_free releases it. Counts and cache sizes are plain numbers so they
 * can be printed and recorded (meta.json, Google Benchmark's context).
 * kvb_topo_pin binds the calling thread to one core chosen by the policy and
 * then asks hwloc which CPU the thread last ran on, so the binding is verified,
 * not assumed. Where hwloc cannot bind (a container without the right, another
 * OS), pin says so in its message and returns KVB_STATUS_UNSUPPORTED; callers
 * carry on unpinned. */
#ifndef KVB_TOPO_H
#define KVB_TOPO_H

#include <stddef.h>
#include "../impls/kvb_backend.h"

typedef enum kvb_pin {
    KVB_PIN_NONE = 0,         /* leave threads where the OS puts them */
    KVB_PIN_COMPACT,          /* thread i on core i: neighbours share caches */
    KVB_PIN_SPREAD,           /* threads spread over packages, then cores */
    KVB_PIN_COUNT
} kvb_pin;

const char *kvb_pin_name(kvb_pin p);
kvb_status  kvb_pin_parse(const char *name, kvb_pin *out);

enum { KVB_TOPO_CACHE_LEVELS = 3 };

typedef struct kvb_topo {
    void  *hw;                /* hwloc_topology_t, owned */
    int    packages, cores, pus, numa_nodes;
    size_t cache_bytes[KVB_TOPO_CACHE_LEVELS];   /* L1d, L2, L3 size of one instance; 0: none */
    int    cache_count[KVB_TOPO_CACHE_LEVELS];   /* instances of each */
    size_t memory_bytes;      /* total memory hwloc reports in its NUMA nodes */
    size_t os_memory_bytes;   /* physical pages the OS counts: a VM with memory
                               * added outside its NUMA nodes shows more here */
    int    can_bind;          /* hwloc can bind this thread here */
} kvb_topo;

kvb_status kvb_topo_init(kvb_topo *t, char *msg, size_t msg_len);
void       kvb_topo_free(kvb_topo *t);

/* One line per fact, e.g. "packages 1, cores 2, PUs 2, NUMA nodes 1". */
void kvb_topo_describe(const kvb_topo *t, char *buf, size_t n);

/* Binds the calling thread as thread `index` of a pool under policy p. On
 * success *cpu is the OS index of the CPU the thread last ran on (checked to
 * lie in the chosen core) and *core the core's logical index. */
kvb_status kvb_topo_pin(const kvb_topo *t, kvb_pin p, int index, int *core, int *cpu,
                        char *msg, size_t msg_len);

/* Pinning for a whole run: the caller's thread is thread 0, and each worker a
 * backend starts calls kvb_pin_thread_start (a kvb_options.thread_start) with
 * its index, binding itself under the same policy. Each thread writes only its
 * own slots; kvb_pool_create waits for its workers, so the record is complete
 * when a cache's create returns. core/cpu -1: that thread is unpinned. */
enum { KVB_PIN_MAX_THREADS = 64 };
typedef struct kvb_pin_set {
    const kvb_topo *topo;     /* not owned; outlives the run */
    kvb_pin         policy;
    int             ran[KVB_PIN_MAX_THREADS];   /* thread i asked to be bound */
    int             core[KVB_PIN_MAX_THREADS], cpu[KVB_PIN_MAX_THREADS];
    char            note[256];   /* why thread 0 runs unpinned, when it does */
} kvb_pin_set;

/* Binds the calling thread as thread 0; returns the policy's status (the note
 * says why when not OK; the run carries on unpinned). */
kvb_status kvb_pin_set_init(kvb_pin_set *ps, const kvb_topo *t, kvb_pin p);
void       kvb_pin_thread_start(void *pin_set, int thread);
int        kvb_pin_set_threads(const kvb_pin_set *ps); /* threads recorded: highest index + 1 */
int        kvb_pin_set_bound(const kvb_pin_set *ps);   /* of those, verified bound */

/* Lets the calling thread run anywhere again (the whole machine's cpuset). */
void kvb_topo_unpin(const kvb_topo *t);

#endif
