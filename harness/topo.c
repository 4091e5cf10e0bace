/* topo.c: see topo.h. */
#include "topo.h"

#include <hwloc.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *const pin_names[KVB_PIN_COUNT] = {"none", "compact", "spread"};

const char *kvb_pin_name(kvb_pin p) { return (p >= 0 && p < KVB_PIN_COUNT) ? pin_names[p] : "?"; }

kvb_status kvb_pin_parse(const char *name, kvb_pin *out)
{
    for (int i = 0; name && i < KVB_PIN_COUNT; i++)
        if (strcmp(name, pin_names[i]) == 0) { *out = (kvb_pin)i; return KVB_STATUS_OK; }
    return KVB_STATUS_INVALID_ARG;
}

kvb_status kvb_topo_init(kvb_topo *t, char *msg, size_t msg_len)
{
    memset(t, 0, sizeof *t);
    hwloc_topology_t hw;
    if (hwloc_topology_init(&hw) != 0) {
        snprintf(msg, msg_len, "hwloc could not start");
        return KVB_STATUS_UNSUPPORTED;
    }
    if (hwloc_topology_load(hw) != 0) {
        hwloc_topology_destroy(hw);
        snprintf(msg, msg_len, "hwloc could not load this machine's topology");
        return KVB_STATUS_UNSUPPORTED;
    }
    t->hw = hw;
    t->packages = hwloc_get_nbobjs_by_type(hw, HWLOC_OBJ_PACKAGE);
    t->cores = hwloc_get_nbobjs_by_type(hw, HWLOC_OBJ_CORE);
    t->pus = hwloc_get_nbobjs_by_type(hw, HWLOC_OBJ_PU);
    t->numa_nodes = hwloc_get_nbobjs_by_type(hw, HWLOC_OBJ_NUMANODE);
    static const hwloc_obj_type_t levels[KVB_TOPO_CACHE_LEVELS] = {
        HWLOC_OBJ_L1CACHE, HWLOC_OBJ_L2CACHE, HWLOC_OBJ_L3CACHE};
    for (int i = 0; i < KVB_TOPO_CACHE_LEVELS; i++) {
        t->cache_count[i] = hwloc_get_nbobjs_by_type(hw, levels[i]);
        hwloc_obj_t o = hwloc_get_obj_by_type(hw, levels[i], 0);
        t->cache_bytes[i] = o && o->attr ? (size_t)o->attr->cache.size : 0;
    }
    hwloc_obj_t root = hwloc_get_root_obj(hw);
    t->memory_bytes = root ? (size_t)root->total_memory : 0;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    t->os_memory_bytes = pages > 0 && page > 0 ? (size_t)pages * (size_t)page : 0;
    const struct hwloc_topology_support *sup = hwloc_topology_get_support(hw);
    t->can_bind = sup && sup->cpubind && sup->cpubind->set_thisthread_cpubind;
    return KVB_STATUS_OK;
}

void kvb_topo_free(kvb_topo *t)
{
    if (t->hw) hwloc_topology_destroy((hwloc_topology_t)t->hw);
    t->hw = NULL;
}

void kvb_topo_describe(const kvb_topo *t, char *buf, size_t n)
{
    char os[64] = "";
    double gib = (double)(1u << 30);
    if (t->os_memory_bytes > t->memory_bytes + t->memory_bytes / 20)   /* more than 5% apart */
        snprintf(os, sizeof os, " in NUMA nodes, %.1f GiB to the OS",
                 (double)t->os_memory_bytes / gib);
    snprintf(buf, n,
             "packages %d, cores %d, PUs %d, NUMA nodes %d; L1d %zu KiB x %d, L2 %zu KiB x %d, "
             "L3 %zu KiB x %d; memory %.1f GiB%s",
             t->packages, t->cores, t->pus, t->numa_nodes, t->cache_bytes[0] >> 10,
             t->cache_count[0], t->cache_bytes[1] >> 10, t->cache_count[1], t->cache_bytes[2] >> 10,
             t->cache_count[2], (double)t->memory_bytes / gib, os);
}

/* The core for thread `index`: compact takes cores in order; spread alternates
 * packages first, so two threads on a two-package machine get one each. */
static hwloc_obj_t core_for(hwloc_topology_t hw, kvb_pin p, int index, int cores, int packages)
{
    if (cores <= 0) return NULL;
    int i = index % cores;
    if (p == KVB_PIN_SPREAD && packages > 1) {
        int per = cores / packages;                  /* cores per package (uniform machines) */
        i = (index % packages) * per + (index / packages) % (per > 0 ? per : 1);
        if (i >= cores) i = index % cores;
    }
    return hwloc_get_obj_by_type(hw, HWLOC_OBJ_CORE, (unsigned)i);
}

kvb_status kvb_topo_pin(const kvb_topo *t, kvb_pin p, int index, int *core, int *cpu,
                        char *msg, size_t msg_len)
{
    *core = *cpu = -1;
    if (p == KVB_PIN_NONE) return KVB_STATUS_OK;
    hwloc_topology_t hw = (hwloc_topology_t)t->hw;
    if (!hw || !t->can_bind) {
        snprintf(msg, msg_len, "hwloc cannot bind threads on this machine; running unpinned");
        return KVB_STATUS_UNSUPPORTED;
    }
    hwloc_obj_t c = core_for(hw, p, index, t->cores, t->packages);
    if (!c) {
        snprintf(msg, msg_len, "hwloc reports no cores; running unpinned");
        return KVB_STATUS_UNSUPPORTED;
    }
    hwloc_bitmap_t set = hwloc_bitmap_dup(c->cpuset);
    hwloc_bitmap_singlify(set); /* one PU of the core: no migration between them */
    int rc = hwloc_set_cpubind(hw, set, HWLOC_CPUBIND_THREAD);
    hwloc_bitmap_t last = hwloc_bitmap_alloc();
    int got = rc == 0 ? hwloc_get_last_cpu_location(hw, last, HWLOC_CPUBIND_THREAD) : -1;
    int ok = rc == 0 && got == 0 && hwloc_bitmap_isincluded(last, c->cpuset);
    *cpu = ok ? hwloc_bitmap_first(last) : -1;
    *core = ok ? (int)c->logical_index : -1;
    hwloc_bitmap_free(last);
    hwloc_bitmap_free(set);
    if (!ok) {
        if (rc == 0) kvb_topo_unpin(t);              /* bound but not verified: undo it */
        snprintf(msg, msg_len, "binding to core %u %s; running unpinned", c->logical_index,
                 rc ? "was refused" : "could not be verified");
        return KVB_STATUS_UNSUPPORTED;
    }
    return KVB_STATUS_OK;
}

void kvb_topo_unpin(const kvb_topo *t)
{
    hwloc_topology_t hw = (hwloc_topology_t)t->hw;
    if (hw && t->can_bind)
        hwloc_set_cpubind(hw, hwloc_topology_get_topology_cpuset(hw), HWLOC_CPUBIND_THREAD);
}

kvb_status kvb_pin_set_init(kvb_pin_set *ps, const kvb_topo *t, kvb_pin p)
{
    memset(ps, 0, sizeof *ps);
    ps->topo = t;
    ps->policy = p;
    for (int i = 0; i < KVB_PIN_MAX_THREADS; i++) ps->core[i] = ps->cpu[i] = -1;
    ps->ran[0] = 1;
    if (p == KVB_PIN_NONE) return KVB_STATUS_OK;
    if (!t) {
        snprintf(ps->note, sizeof ps->note, "hwloc could not load the topology; running unpinned");
        return KVB_STATUS_UNSUPPORTED;
    }
    return kvb_topo_pin(t, p, 0, &ps->core[0], &ps->cpu[0], ps->note, sizeof ps->note);
}

void kvb_pin_thread_start(void *pin_set, int thread)
{
    kvb_pin_set *ps = pin_set;
    if (!ps || !ps->topo || ps->policy == KVB_PIN_NONE || thread <= 0 ||
        thread >= KVB_PIN_MAX_THREADS)
        return;
    char msg[128];
    /* a failed bind leaves -1 in this thread's slots: the record shows it unpinned */
    kvb_topo_pin(ps->topo, ps->policy, thread, &ps->core[thread], &ps->cpu[thread], msg,
                 sizeof msg);
    ps->ran[thread] = 1;
}

int kvb_pin_set_threads(const kvb_pin_set *ps)
{
    int n = 0;
    for (int i = 0; i < KVB_PIN_MAX_THREADS; i++) n = ps->ran[i] ? i + 1 : n;
    return n;
}

int kvb_pin_set_bound(const kvb_pin_set *ps)
{
    int n = 0;
    for (int i = 0; i < KVB_PIN_MAX_THREADS; i++) n += ps->core[i] >= 0;
    return n;
}
