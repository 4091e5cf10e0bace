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
 * does. Threads come from a pool the cache owns. */
#include "kvb_backend.h"
#include "kernels/kernels.h"
#include "kernels/pool.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { KVB_CONTIG_MIN_CAP = 16, KVB_CONTIG_MIN_PART = 256, KVB_CONTIG_MIN_THREADED = 256 * 1024 };

typedef struct contig_store {
    void *k, *v;              /* [kv_head][cap][head_dim], storage type */
    int   len, cap;           /* tokens held, tokens room */
} contig_store;

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
    float        *part_out;   /* [n_kv_heads * max_parts][g][head_dim]: split contexts' outputs */
    float        *part_ml;    /* [n_kv_heads * max_parts][g][2]: their max and sum */
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
    size_t items = (size_t)shape->n_kv_heads * (size_t)c->max_parts;
    if (c->max_parts > 1) {
        c->part_out = malloc(items * (size_t)g * shape->head_dim * sizeof(float));
        c->part_ml = malloc(items * (size_t)g * 2 * sizeof(float));
    }
    kvb_status pst = c->threads > 1 ? kvb_pool_create(&c->pool, c->threads, opt->thread_start,
                                                      opt->thread_start_arg)
                                    : KVB_STATUS_OK;
    if (!c->stores || !c->scratch || pst != KVB_STATUS_OK ||
        (c->max_parts > 1 && (!c->part_out || !c->part_ml))) {
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

/* One attend's work, split into items: (KV head, part of its context). */
typedef struct attend_job {
    kvb_backend_ctx    *c;
    const contig_store *s;
    const float        *q;
    float              *out;
    int                 parts;
} attend_job;

static void attend_item(void *arg, int item, int thread)
{
    const attend_job *j = arg;
    const kvb_backend_ctx *c = j->c;
    const contig_store *s = j->s;
    const int hd = c->shape.head_dim, g = c->shape.n_heads / c->shape.n_kv_heads;
    const int h = item / j->parts, p = item % j->parts;
    const size_t head_bytes = (size_t)s->cap * hd * c->es, qo = (size_t)h * g * hd;
    float *scratch = c->scratch + (size_t)thread * c->scratch_per;
    if (j->parts == 1) {
        kvb_kv_run run = {s->len ? (char *)s->k + h * head_bytes : NULL,
                          s->len ? (char *)s->v + h * head_bytes : NULL, s->len};
        c->attend->run(c->opt.dtype, &run, 1, (size_t)hd, hd, g, j->q + qo, j->out + qo, scratch,
                       NULL);
        return;
    }
    int t0 = (int)((long long)s->len * p / j->parts);
    int t1 = (int)((long long)s->len * (p + 1) / j->parts);
    size_t off = (size_t)t0 * hd * c->es;
    kvb_kv_run run = {(char *)s->k + h * head_bytes + off, (char *)s->v + h * head_bytes + off,
                      t1 - t0};
    c->attend->run(c->opt.dtype, &run, 1, (size_t)hd, hd, g, j->q + qo,
                   c->part_out + (size_t)item * g * hd, scratch,
                   c->part_ml + (size_t)item * g * 2);
}

static kvb_status contig_attend(kvb_backend_ctx *c, int seq, int layer, const float *q,
                                float *out)
{
    const contig_store *s = store_at(c, seq, layer);
    const int hd = c->shape.head_dim, nkv = c->shape.n_kv_heads, g = c->shape.n_heads / nkv;
    int parts = s->len / KVB_CONTIG_MIN_PART;
    if (parts > c->max_parts) parts = c->max_parts;
    attend_job job = {c, s, q, out, parts > 1 ? parts : 1};
    /* waking the pool costs microseconds: below KVB_CONTIG_MIN_THREADED bytes of
     * K/V the caller's thread alone is faster */
    size_t bytes = 2 * (size_t)s->len * nkv * hd * c->es;
    kvb_pool_run(bytes < KVB_CONTIG_MIN_THREADED ? NULL : c->pool, nkv * job.parts, attend_item,
                 &job);
    if (job.parts == 1) return KVB_STATUS_OK;
    for (int h = 0; h < nkv; h++)
        kvb_attend_merge(job.parts, g, hd, c->part_out + (size_t)h * job.parts * g * hd,
                         c->part_ml + (size_t)h * job.parts * g * 2, out + (size_t)h * g * hd);
    return KVB_STATUS_OK;
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
    .memory = contig_memory,
    .length = contig_length,
    .seq_clear = contig_seq_clear,
    .seq_fork = contig_seq_fork,
    .seq_memory = contig_seq_memory,
    .read_kv = contig_read_kv,
};
