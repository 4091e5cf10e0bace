/* contiguous.c: one dense K store and one V store per (sequence, layer).
 *
 * Layout of each store: [kv_head][token][head_dim] in the storage type, so
 * attend streams each KV head's keys, then its values, as one sequential read
 * (the kernel reuses each row for every query head of the group).
 * Two allocation modes, as real systems use them:
 *   grow      capacity starts at KVB_CONTIG_MIN_CAP tokens and doubles (capped at
 *             max_seq); each doubling copies the store, as a dynamic cache does;
 *   prealloc  capacity = max_seq as soon as a sequence takes its first token, as
 *             a static cache or a slot-based server does. The memory comes from
 *             kvb_kv_alloc (zeroed; huge pages from 4 MiB on): reserved at once,
 *             backed by the OS as tokens touch it.
 * seq_clear gives a sequence's stores back in both modes.
 * Conversion to f16/bf16 happens in append; attend computes in f32.
 * With threads > 1 attend splits over KV heads; when there are fewer KV heads
 * than threads, each head's context is also cut into parts (at least 256 tokens
 * each) whose outputs are merged by their softmax statistics, as Flash-Decoding
 * does. Threads come from a pool the cache owns. attend_batch hands every
 * item's (KV head, part) units to the pool in one run, so many short sequences
 * fill the threads that one of them alone would leave idle; attend is the batch
 * of one, so a batched item gets exactly what its own attend writes. */
#include "kvb_backend.h"
#include "kernels/kernels.h"
#include "kernels/pool.h"
#ifdef KVB_PLANT_CONTIG_SLOWDOWN_PCT
#include "../base/probe.h"
#endif

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { KVB_CONTIG_MIN_CAP = 16, KVB_CONTIG_MIN_PART = 256, KVB_CONTIG_MIN_THREADED = 256 * 1024 };

typedef struct contig_store {
    void *k, *v;              /* [kv_head][cap][head_dim], storage type */
    int   len, cap;           /* tokens held, tokens room */
} contig_store;

/* One unit of an attend's work: (item, KV head, part of its context). Every
 * attend is a batch (contig_attend is the batch of one), so a batched item runs
 * the very kernel calls, with the same parts and merge, as its single attend. */
typedef struct contig_unit {
    const contig_store *s;
    const float        *q;        /* [g][head_dim]: the head's group of the item's query */
    float              *dst;      /* [g][head_dim]: the item's out, or its part's slot */
    float              *ml;       /* [g][2]: the part's max and sum; NULL when unsplit */
    int                 h, t0, t1;
} contig_unit;

struct kvb_backend_ctx {
    kvb_shape     shape;
    kvb_options   opt;
    size_t        es;         /* bytes per stored element */
    contig_store *stores;     /* [max_seqs][n_layers] */
    float        *scratch;    /* [threads][kvb_attend_scratch_floats(g, max_seq, hd)] */
    size_t        scratch_per;
    const kvb_attend_kernel *attend;  /* the loops opt.kernel names, chosen once at create */
    kvb_pool     *pool;       /* NULL when single-threaded */
    int           threads, max_parts;
    /* a batch's work units, and its split contexts' outputs; sized at create
     * for one attend, grown by a larger batch */
    contig_unit  *units;      /* [cap_units] */
    size_t        cap_units, cap_parts;
    float        *part_out;   /* [cap_parts][g][head_dim]: split contexts' outputs */
    float        *part_ml;    /* [cap_parts][g][2]: their max and sum */
};

static contig_store *store_at(const kvb_backend_ctx *c, int seq, int layer)
{
    return &c->stores[(size_t)seq * c->shape.n_layers + layer];
}

static size_t plane_bytes(const kvb_backend_ctx *c, int cap)   /* one of K or V */
{
    return (size_t)c->shape.n_kv_heads * (size_t)cap * (size_t)c->shape.head_dim * c->es;
}

static kvb_status store_resize(kvb_backend_ctx *c, contig_store *s, int new_cap)
{
    size_t bytes = plane_bytes(c, new_cap);
    void *k = kvb_kv_alloc(bytes), *v = kvb_kv_alloc(bytes);
    if (!k || !v) { kvb_kv_free(k, bytes); kvb_kv_free(v, bytes); return KVB_STATUS_NO_MEMORY; }
    /* each KV head's run of tokens moves to its new, wider slot */
    size_t old_head = (size_t)s->cap * c->shape.head_dim * c->es;
    size_t new_head = (size_t)new_cap * c->shape.head_dim * c->es;
    size_t live = (size_t)s->len * c->shape.head_dim * c->es;
    for (int h = 0; s->len > 0 && h < c->shape.n_kv_heads; h++) {
        memcpy((char *)k + h * new_head, (char *)s->k + h * old_head, live);
        memcpy((char *)v + h * new_head, (char *)s->v + h * old_head, live);
    }
    kvb_kv_free(s->k, plane_bytes(c, s->cap)); kvb_kv_free(s->v, plane_bytes(c, s->cap));
    s->k = k; s->v = v; s->cap = new_cap;
    return KVB_STATUS_OK;
}

/* Room for n_units units and n_parts split parts; create sized both for one
 * attend, so only a batch ever grows them. */
static kvb_status batch_reserve(kvb_backend_ctx *c, size_t n_units, size_t n_parts)
{
    const size_t gh = (size_t)c->shape.n_heads / c->shape.n_kv_heads * c->shape.head_dim;
    if (n_units > c->cap_units) {
        contig_unit *u = realloc(c->units, n_units * sizeof *u);
        if (!u) return KVB_STATUS_NO_MEMORY;
        c->units = u;
        c->cap_units = n_units;
    }
    if (n_parts > c->cap_parts) {
        float *po = realloc(c->part_out, n_parts * gh * sizeof *po);
        if (po) c->part_out = po;
        float *pm = realloc(c->part_ml, n_parts * gh / c->shape.head_dim * 2 * sizeof *pm);
        if (pm) c->part_ml = pm;
        if (!po || !pm) return KVB_STATUS_NO_MEMORY;
        c->cap_parts = n_parts;
    }
    return KVB_STATUS_OK;
}

static void contig_destroy(kvb_backend_ctx *c)
{
    if (!c) return;
    if (c->stores)
        for (size_t i = 0; i < (size_t)c->opt.max_seqs * c->shape.n_layers; i++) {
            kvb_kv_free(c->stores[i].k, plane_bytes(c, c->stores[i].cap));
            kvb_kv_free(c->stores[i].v, plane_bytes(c, c->stores[i].cap));
        }
    free(c->stores);
    free(c->scratch);
    free(c->part_out);
    free(c->part_ml);
    free(c->units);
    kvb_pool_destroy(c->pool);
    free(c);
}

static kvb_status contig_create(kvb_backend_ctx **out, const kvb_shape *shape,
                                const kvb_options *opt, char *msg, size_t msg_len)
{
    (void)msg; (void)msg_len;            /* only memory can fail here */
    *out = NULL;
    kvb_backend_ctx *c = calloc(1, sizeof *c);
    if (!c) return KVB_STATUS_NO_MEMORY;
    c->shape = *shape;
    c->opt = *opt;
    c->es = kvb_dtype_size(opt->dtype);
    c->attend = kvb_attend_kernel_find(opt->kernel, shape->head_dim, NULL, 0);   /* supported */
    c->opt.kernel = c->attend->name;     /* a static string: the caller's may not outlive us */
    size_t n_stores = (size_t)opt->max_seqs * shape->n_layers;
    c->stores = calloc(n_stores, sizeof *c->stores);
    int g = shape->n_heads / shape->n_kv_heads;
    c->threads = opt->threads > 1 ? opt->threads : 1;
    /* parts per head when heads are fewer than threads, each at least
     * KVB_CONTIG_MIN_PART tokens */
    int want = (c->threads + shape->n_kv_heads - 1) / shape->n_kv_heads;
    int room = shape->max_seq / KVB_CONTIG_MIN_PART;
    int split = c->threads > 1 && shape->n_kv_heads < c->threads;
    c->max_parts = split ? (want < room ? want : room) : 1;
    if (c->max_parts < 1) c->max_parts = 1;
    c->scratch_per = kvb_attend_scratch_floats(g, shape->max_seq, shape->head_dim);
    c->scratch = malloc(c->scratch_per * (size_t)c->threads * sizeof(float));
    size_t units = (size_t)shape->n_kv_heads * (size_t)c->max_parts;
    kvb_status bst = batch_reserve(c, units, c->max_parts > 1 ? units : 0);
    kvb_status pst = c->threads > 1 ? kvb_pool_create(&c->pool, c->threads, opt->thread_start,
                                                      opt->thread_start_arg)
                                    : KVB_STATUS_OK;
    if (!c->stores || !c->scratch || pst != KVB_STATUS_OK || bst != KVB_STATUS_OK) {
        contig_destroy(c);
        return KVB_STATUS_NO_MEMORY;
    }
    *out = c;
    return KVB_STATUS_OK;
}

static kvb_status contig_append(kvb_backend_ctx *c, int seq, int layer, const float *k,
                                const float *v)
{
    contig_store *s = store_at(c, seq, layer);
    if (s->len == s->cap) {
        if (s->cap >= c->shape.max_seq) return KVB_STATUS_FULL;
        int want = c->opt.alloc == KVB_ALLOC_PREALLOC ? c->shape.max_seq
                   : s->cap ? 2 * s->cap : KVB_CONTIG_MIN_CAP;
        kvb_status st = store_resize(c, s, want < c->shape.max_seq ? want : c->shape.max_seq);
        if (st != KVB_STATUS_OK) return st;
    }
    const int hd = c->shape.head_dim;
    const size_t head_bytes = (size_t)s->cap * hd * c->es;
    const size_t off = (size_t)s->len * hd * c->es;
    for (int h = 0; h < c->shape.n_kv_heads; h++) {
        char *kd = (char *)s->k + h * head_bytes + off, *vd = (char *)s->v + h * head_bytes + off;
        kvb_row_from_f32(c->opt.dtype, k + (size_t)h * hd, kd, hd);
        kvb_row_from_f32(c->opt.dtype, v + (size_t)h * hd, vd, hd);
    }
    s->len++;
    return KVB_STATUS_OK;
}

typedef struct contig_batch {
    kvb_backend_ctx   *c;
    const contig_unit *units;
} contig_batch;

static void attend_unit(void *arg, int i, int thread)
{
    const contig_batch *j = arg;
    const kvb_backend_ctx *c = j->c;
    const contig_unit *u = &j->units[i];
    const int hd = c->shape.head_dim, g = c->shape.n_heads / c->shape.n_kv_heads;
    const size_t head = (size_t)u->h * u->s->cap * hd * c->es, off = (size_t)u->t0 * hd * c->es;
    /* an empty store has no planes: the kernel reads no row and writes zeros */
    kvb_kv_run run = {u->s->len ? (char *)u->s->k + head + off : NULL,
                      u->s->len ? (char *)u->s->v + head + off : NULL, u->t1 - u->t0};
    c->attend->run(c->opt.dtype, &run, 1, (size_t)hd, hd, g, u->q, u->dst,
                   c->scratch + (size_t)thread * c->scratch_per, u->ml);
}

/* Context parts of one store: one, or (fewer KV heads than threads) one per
 * KVB_CONTIG_MIN_PART tokens up to max_parts. */
static int parts_of(const kvb_backend_ctx *c, const contig_store *s)
{
    int parts = s->len / KVB_CONTIG_MIN_PART;
    return parts > c->max_parts ? c->max_parts : parts > 1 ? parts : 1;
}

/* Every item's units in one kvb_pool_run, then the split ones merged per item
 * and head in the order a single attend merges them. */
static kvb_status contig_attend_batch(kvb_backend_ctx *c, int layer, const kvb_attend_item *items,
                                      int n)
{
    const int hd = c->shape.head_dim, nkv = c->shape.n_kv_heads, g = c->shape.n_heads / nkv;
    size_t n_units = 0, n_parts = 0, bytes = 0;
    for (int i = 0; i < n; i++) {
        const contig_store *s = store_at(c, items[i].seq, layer);
        int parts = parts_of(c, s);
        n_units += (size_t)nkv * parts;
        n_parts += parts > 1 ? (size_t)nkv * parts : 0;
        bytes += 2 * (size_t)s->len * nkv * hd * c->es;
    }
    if (n_units > (size_t)INT_MAX) return KVB_STATUS_INVALID_ARG;   /* kvb_pool_run's count */
    kvb_status st = batch_reserve(c, n_units, n_parts);
    if (st != KVB_STATUS_OK) return st;
    size_t u = 0, part = 0;
    for (int i = 0; i < n; i++) {
        const contig_store *s = store_at(c, items[i].seq, layer);
        const int parts = parts_of(c, s);
        for (int h = 0; h < nkv; h++)
            for (int p = 0; p < parts; p++, u++) {
                const size_t qo = (size_t)h * g * hd;
                contig_unit *w = &c->units[u];
                *w = (contig_unit){s, items[i].q + qo, items[i].out + qo, NULL, h,
                                   (int)((long long)s->len * p / parts),
                                   (int)((long long)s->len * (p + 1) / parts)};
                if (parts > 1) {
                    w->dst = c->part_out + (part + (size_t)h * parts + p) * g * hd;
                    w->ml = c->part_ml + (part + (size_t)h * parts + p) * g * 2;
                }
            }
        part += parts > 1 ? (size_t)nkv * parts : 0;
    }
    contig_batch job = {c, c->units};
#ifdef KVB_PLANT_CONTIG_SLOWDOWN_PCT
    const uint64_t plant_t0 = kvb_now_ns();
#endif
    /* waking the pool costs microseconds: below KVB_CONTIG_MIN_THREADED bytes of
     * K/V (the whole batch's) the caller's thread alone is faster */
    kvb_pool_run(bytes < KVB_CONTIG_MIN_THREADED ? NULL : c->pool, (int)n_units, attend_unit,
                 &job);
#ifdef KVB_PLANT_CONTIG_SLOWDOWN_PCT
    /* A deliberate slowdown, built only into the commits bench/ab_plant.sh makes, to
     * show what kvbench ab catches: the call waits pct% of the time its attend took, so
     * it is pct% slower whatever the caches hold. (Attending pct% of the context again,
     * the first plant, cost 0-5% for pct 5 on a VM whose last-level cache kept the
     * re-read tokens: docs/regression.md.) */
    {
        const uint64_t now = kvb_now_ns();
        const uint64_t until = now + (now - plant_t0) * KVB_PLANT_CONTIG_SLOWDOWN_PCT / 100;
        while (kvb_now_ns() < until) {
        }
    }
#endif
    part = 0;
    for (int i = 0; i < n; i++) {
        const int parts = parts_of(c, store_at(c, items[i].seq, layer));
        if (parts == 1) continue;
        for (int h = 0; h < nkv; h++, part += parts)
            kvb_attend_merge(parts, g, hd, c->part_out + part * g * hd,
                             c->part_ml + part * g * 2, items[i].out + (size_t)h * g * hd);
    }
    return KVB_STATUS_OK;
}

static kvb_status contig_attend(kvb_backend_ctx *c, int seq, int layer, const float *q,
                                float *out)
{
    kvb_attend_item one = {seq, q, out};
    return contig_attend_batch(c, layer, &one, 1);
}

static kvb_memory contig_seq_memory(const kvb_backend_ctx *c, int seq)
{
    kvb_memory m = {0, 0, 0, 0};
    m.metadata = (size_t)c->shape.n_layers * sizeof *c->stores;
    for (int l = 0; l < c->shape.n_layers; l++) {
        m.reserved += 2 * plane_bytes(c, store_at(c, seq, l)->cap);
        m.used += 2 * plane_bytes(c, store_at(c, seq, l)->len);
    }
    m.capacity = m.reserved;
    return m;
}

static kvb_memory contig_memory(const kvb_backend_ctx *c)
{
    kvb_memory m = {0, 0, sizeof *c, 0};
    for (int q = 0; q < c->opt.max_seqs; q++) {
        kvb_memory s = contig_seq_memory(c, q);
        m.reserved += s.reserved;
        m.used += s.used;
        m.metadata += s.metadata;
    }
    m.capacity = m.reserved;
    return m;
}

/* No sharing in a dense store: the child gets its own copy, as a dense cache
 * must do for parallel sampling or beam search. */
static kvb_status contig_seq_fork(kvb_backend_ctx *c, int parent, int child)
{
    int n = store_at(c, parent, 0)->len;
    for (int l = 0; l < c->shape.n_layers; l++) {
        contig_store *p = store_at(c, parent, l), *d = store_at(c, child, l);
        if (d->cap < p->cap) {
            kvb_status st = store_resize(c, d, p->cap);
            if (st != KVB_STATUS_OK) return st;          /* earlier layers keep their room only */
        }
        size_t live = (size_t)n * c->shape.head_dim * c->es;
        for (int h = 0; h < c->shape.n_kv_heads; h++) {
            size_t po = (size_t)h * p->cap * c->shape.head_dim * c->es;
            size_t dof = (size_t)h * d->cap * c->shape.head_dim * c->es;
            memcpy((char *)d->k + dof, (const char *)p->k + po, live);
            memcpy((char *)d->v + dof, (const char *)p->v + po, live);
        }
    }
    for (int l = 0; l < c->shape.n_layers; l++) store_at(c, child, l)->len = n;
    return KVB_STATUS_OK;
}

static int contig_length(const kvb_backend_ctx *c, int seq, int layer)
{
    return store_at(c, seq, layer)->len;
}

static kvb_status contig_seq_clear(kvb_backend_ctx *c, int seq)
{
    for (int l = 0; l < c->shape.n_layers; l++) {
        contig_store *s = store_at(c, seq, l);
        s->len = 0;
        kvb_kv_free(s->k, plane_bytes(c, s->cap)); kvb_kv_free(s->v, plane_bytes(c, s->cap));
        s->k = s->v = NULL; s->cap = 0;
    }
    return KVB_STATUS_OK;
}

static kvb_status contig_read_kv(const kvb_backend_ctx *c, int seq, int layer, int kv_head,
                                 int token, float *k, float *v)
{
    const contig_store *s = store_at(c, seq, layer);
    const int hd = c->shape.head_dim;
    size_t off = ((size_t)kv_head * s->cap + (size_t)token) * hd * c->es;
    kvb_row_to_f32(c->opt.dtype, (const char *)s->k + off, k, hd);
    kvb_row_to_f32(c->opt.dtype, (const char *)s->v + off, v, hd);
    return KVB_STATUS_OK;
}

/* A save: the head, then per layer each KV head's K rows, then its V rows
 * ([layer][K|V][kv_head][token][head_dim], the storage type's bytes). */
static size_t save_bytes(const kvb_backend_ctx *c, int n)
{
    return sizeof(kvb_save_head) + 2 * (size_t)c->shape.n_layers * plane_bytes(c, n);
}

static kvb_status contig_seq_save(const kvb_backend_ctx *c, int seq, void *dst, size_t *bytes)
{
    const int n = store_at(c, seq, 0)->len;
    const size_t run = (size_t)n * c->shape.head_dim * c->es;
    if (dst) {
        kvb_save_head h = kvb_save_head_of("contiguous", &c->shape, c->opt.dtype, 0, n);
        char *p = (char *)dst + sizeof h;
        memcpy(dst, &h, sizeof h);
        for (int l = 0; n > 0 && l < c->shape.n_layers; l++) {
            const contig_store *s = store_at(c, seq, l);
            const size_t head = (size_t)s->cap * c->shape.head_dim * c->es;
            for (int h2 = 0; h2 < c->shape.n_kv_heads; h2++, p += run)
                memcpy(p, (const char *)s->k + h2 * head, run);
            for (int h2 = 0; h2 < c->shape.n_kv_heads; h2++, p += run)
                memcpy(p, (const char *)s->v + h2 * head, run);
        }
    }
    *bytes = save_bytes(c, n);
    return KVB_STATUS_OK;
}

/* The capacity the sequence would have after n appends, so a loaded
 * sequence reserves what the saved one did. */
static int cap_for(const kvb_backend_ctx *c, int n)
{
    if (n == 0) return 0;
    int cap = c->opt.alloc == KVB_ALLOC_PREALLOC ? c->shape.max_seq : KVB_CONTIG_MIN_CAP;
    while (cap < n) cap *= 2;
    return cap < c->shape.max_seq ? cap : c->shape.max_seq;
}

static kvb_status contig_seq_load(kvb_backend_ctx *c, int seq, const void *src, size_t bytes)
{
    const int n =
        kvb_save_head_tokens(src, bytes, "contiguous", &c->shape, c->opt.dtype, 0);
    if (n < 0 || bytes != save_bytes(c, n)) return KVB_STATUS_FORMAT;
    const size_t run = (size_t)n * c->shape.head_dim * c->es;
    const char *p = (const char *)src + sizeof(kvb_save_head);
    for (int l = 0; n > 0 && l < c->shape.n_layers; l++) {
        contig_store *s = store_at(c, seq, l);
        if (s->cap != cap_for(c, n)) {
            kvb_status st = store_resize(c, s, cap_for(c, n));
            if (st != KVB_STATUS_OK) {
                contig_seq_clear(c, seq);
                return st;
            }
        }
        const size_t head = (size_t)s->cap * c->shape.head_dim * c->es;
        for (int h = 0; h < c->shape.n_kv_heads; h++, p += run)
            memcpy((char *)s->k + h * head, p, run);
        for (int h = 0; h < c->shape.n_kv_heads; h++, p += run)
            memcpy((char *)s->v + h * head, p, run);
    }
    for (int l = 0; l < c->shape.n_layers; l++) store_at(c, seq, l)->len = n;
    return KVB_STATUS_OK;
}

const kvb_backend kvb_backend_contiguous = {
    .version = KVB_BACKEND_VERSION,
    .name = "contiguous",
    .description = "dense [kv_head][token][head_dim] store per layer; grow (doubling) or prealloc",
    .flags = 0,
    .supports = NULL,                 /* every valid shape, every storage type and mode */
    .create = contig_create,
    .destroy = contig_destroy,
    .append = contig_append,
    .attend = contig_attend,
    .attend_batch = contig_attend_batch,
    .memory = contig_memory,
    .length = contig_length,
    .seq_clear = contig_seq_clear,
    .seq_fork = contig_seq_fork,
    .seq_memory = contig_seq_memory,
    .read_kv = contig_read_kv,
    .seq_save = contig_seq_save,
    .seq_load = contig_seq_load,
};
