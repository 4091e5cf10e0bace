/* window.c: a sliding-window cache, as Mistral's rolling buffer: each (sequence,
 * layer) holds only its newest W tokens (kvb_options.window; 0: max_seq) and
 * attend reads those alone (KVB_BACKEND_WINDOW). Appends never fill it: token
 * p overwrites token p - W.
 *
 * Layout of each store: [kv_head][cap][head_dim] in the storage type, token p
 * in slot p % W. Capacity grows as contiguous's does, doubling from 16 (grow)
 * or W at the first token (prealloc), and stops at W, where the ring closes.
 * Before that no slot was overwritten, so growing copies each head's run as it
 * is. attend hands the kernel the held tokens oldest first, as two runs (from
 * the oldest slot to the end, then from slot 0), which it reads as one
 * context. Single-threaded (opt.threads is not used); no fork. */
#include "kvb_backend.h"
#include "kernels/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { WINDOW_MIN_CAP = 16 };

typedef struct ring {
    void     *k, *v;          /* [kv_head][cap][head_dim], storage type */
    long long seen;           /* tokens ever appended; min(seen, W) are held */
    int       cap;            /* slots; == W once the ring has closed */
} ring;

struct kvb_backend_ctx {
    kvb_shape   shape;
    kvb_dtype   dtype;
    int         prealloc;     /* 1: a ring takes all W slots at its first token */
    int         window;       /* W */
    size_t      es;           /* bytes per stored element */
    size_t      n_rings;      /* max_seqs x n_layers */
    ring       *rings;        /* [max_seqs][n_layers] */
    float      *scratch;      /* kvb_attend_scratch_floats(g, W, head_dim) */
    const kvb_attend_kernel *attend;   /* the loops opt->kernel names */
};

static ring *ring_at(const kvb_backend_ctx *c, int seq, int layer)
{
    return &c->rings[(size_t)seq * c->shape.n_layers + layer];
}

static int held(const kvb_backend_ctx *c, const ring *r)
{
    return r->seen < c->window ? (int)r->seen : c->window;
}

static size_t plane_bytes(const kvb_backend_ctx *c, int slots)   /* one of K or V */
{
    return (size_t)c->shape.n_kv_heads * (size_t)slots * (size_t)c->shape.head_dim * c->es;
}

static void ring_free(const kvb_backend_ctx *c, ring *r)
{
    kvb_kv_free(r->k, plane_bytes(c, r->cap));
    kvb_kv_free(r->v, plane_bytes(c, r->cap));
    memset(r, 0, sizeof *r);
}

static kvb_status window_supports(const kvb_shape *s, const kvb_options *o, char *why, size_t n)
{
    (void)s;
    if (o->window < 0) {
        snprintf(why, n, "window = %d tokens: allowed are 1 or more (0: max_seq)", o->window);
        return KVB_STATUS_INVALID_ARG;
    }
    return KVB_STATUS_OK;
}

static void window_destroy(kvb_backend_ctx *c)
{
    if (!c) return;
    for (size_t i = 0; c->rings && i < c->n_rings; i++) ring_free(c, &c->rings[i]);
    free(c->rings);
    free(c->scratch);
    free(c);
}

static kvb_status window_create(kvb_backend_ctx **out, const kvb_shape *shape,
                                const kvb_options *opt, char *msg, size_t msg_len)
{
    (void)msg; (void)msg_len;            /* supports() said yes: only memory can fail */
    kvb_backend_ctx *c = calloc(1, sizeof *c);
    if ((*out = c) == NULL) return KVB_STATUS_NO_MEMORY;
    *c = (kvb_backend_ctx){
        .shape = *shape, .dtype = opt->dtype, .prealloc = opt->alloc == KVB_ALLOC_PREALLOC,
        /* a window past max_seq holds every token: no ring larger than a sequence */
        .window = opt->window && opt->window < shape->max_seq ? opt->window : shape->max_seq,
        .es = kvb_dtype_size(opt->dtype),
        .n_rings = (size_t)opt->max_seqs * shape->n_layers,
        .attend = kvb_attend_kernel_find(opt->kernel, shape->head_dim, NULL, 0),
    };
    c->rings = calloc(c->n_rings, sizeof *c->rings);
    int g = shape->n_heads / shape->n_kv_heads;
    c->scratch = malloc(kvb_attend_scratch_floats(g, c->window, shape->head_dim) * sizeof(float));
    if (c->rings && c->scratch) return KVB_STATUS_OK;
    window_destroy(c);
    *out = NULL;
    return KVB_STATUS_NO_MEMORY;
}

/* More slots before the ring closes: the held tokens sit in slots 0..seen-1
 * of each head, and move to the same slots of the wider planes. */
static kvb_status ring_grow(const kvb_backend_ctx *c, ring *r, int cap)
{
    ring wider = {kvb_kv_alloc(plane_bytes(c, cap)), kvb_kv_alloc(plane_bytes(c, cap)), r->seen,
                  cap};
    if (!wider.k || !wider.v) {
        ring_free(c, &wider);
        return KVB_STATUS_NO_MEMORY;
    }
    size_t row = (size_t)c->shape.head_dim * c->es, live = (size_t)r->seen * row;
    for (int h = 0; live && h < c->shape.n_kv_heads; h++) {
        size_t to = (size_t)h * cap * row, from = (size_t)h * r->cap * row;
        memcpy((char *)wider.k + to, (char *)r->k + from, live);
        memcpy((char *)wider.v + to, (char *)r->v + from, live);
    }
    ring_free(c, r);
    *r = wider;
    return KVB_STATUS_OK;
}

/* Where token p of kv head h lives in plane (K or V) of ring r. */
static char *slot(const kvb_backend_ctx *c, const ring *r, void *plane, int h, long long p)
{
    size_t s = (size_t)h * r->cap + (size_t)(p % c->window);
    return (char *)plane + s * c->shape.head_dim * c->es;
}

static kvb_status window_append(kvb_backend_ctx *c, int seq, int layer, const float *k,
                                const float *v)
{
    ring *r = ring_at(c, seq, layer);
    if (r->seen == r->cap && r->cap < c->window) {
        int want = c->prealloc ? c->window : r->cap ? 2 * r->cap : WINDOW_MIN_CAP;
        kvb_status st = ring_grow(c, r, want < c->window ? want : c->window);
        if (st != KVB_STATUS_OK) return st;
    }
    const int hd = c->shape.head_dim;
    for (int h = 0; h < c->shape.n_kv_heads; h++) {
        kvb_row_from_f32(c->dtype, k + (size_t)h * hd, slot(c, r, r->k, h, r->seen), hd);
        kvb_row_from_f32(c->dtype, v + (size_t)h * hd, slot(c, r, r->v, h, r->seen), hd);
    }
    r->seen++;
    return KVB_STATUS_OK;
}

static kvb_status window_attend(kvb_backend_ctx *c, int seq, int layer, const float *q,
                                float *out)
{
    const ring *r = ring_at(c, seq, layer);
    const int hd = c->shape.head_dim, g = c->shape.n_heads / c->shape.n_kv_heads, n = held(c, r);
    if (n == 0) {
        memset(out, 0, (size_t)c->shape.n_heads * hd * sizeof *out);
        return KVB_STATUS_OK;
    }
    /* oldest held token's slot, then the ring's wrap back to slot 0 */
    const int first = (int)((r->seen - n) % c->window);
    const int n1 = r->cap - first < n ? r->cap - first : n;
    for (int h = 0; h < c->shape.n_kv_heads; h++) {
        kvb_kv_run runs[2] = {{slot(c, r, r->k, h, first), slot(c, r, r->v, h, first), n1},
                              {slot(c, r, r->k, h, 0), slot(c, r, r->v, h, 0), n - n1}};
        size_t qo = (size_t)h * g * hd;
        c->attend->run(c->dtype, runs, n1 < n ? 2 : 1, (size_t)hd, hd, g, q + qo, out + qo,
                       c->scratch, NULL);
    }
    return KVB_STATUS_OK;
}

/* reserved: the slots taken; used: the tokens held (a closed ring: all of it) */
static kvb_memory rings_memory(const kvb_backend_ctx *c, const ring *r, size_t n)
{
    kvb_memory m = {0, 0, n * sizeof *r, 0};
    for (size_t i = 0; i < n; i++) {
        m.reserved += 2 * plane_bytes(c, r[i].cap);
        m.used += 2 * plane_bytes(c, held(c, &r[i]));
    }
    m.capacity = m.reserved;
    return m;
}

static kvb_memory window_seq_memory(const kvb_backend_ctx *c, int seq)
{
    return rings_memory(c, ring_at(c, seq, 0), (size_t)c->shape.n_layers);
}

static kvb_memory window_memory(const kvb_backend_ctx *c)
{
    kvb_memory m = rings_memory(c, c->rings, c->n_rings);
    m.metadata += sizeof *c;
    return m;
}

static int window_length(const kvb_backend_ctx *c, int seq, int layer)
{
    return held(c, ring_at(c, seq, layer));
}

static kvb_status window_seq_clear(kvb_backend_ctx *c, int seq)
{
    for (int l = 0; l < c->shape.n_layers; l++) ring_free(c, ring_at(c, seq, l));
    return KVB_STATUS_OK;
}

static kvb_status window_read_kv(const kvb_backend_ctx *c, int seq, int layer, int kv_head,
                                 int token, float *k, float *v)
{
    const ring *r = ring_at(c, seq, layer);
    long long p = r->seen - held(c, r) + token;          /* token 0: the oldest held */
    kvb_row_to_f32(c->dtype, slot(c, r, r->k, kv_head, p), k, c->shape.head_dim);
    kvb_row_to_f32(c->dtype, slot(c, r, r->v, kv_head, p), v, c->shape.head_dim);
    return KVB_STATUS_OK;
}

const kvb_backend kvb_backend_window = {
    .version = KVB_BACKEND_VERSION,
    .name = "window",
    .description = "sliding window: each layer's newest tokens in a ring (Mistral's buffer)",
    .flags = KVB_BACKEND_WINDOW,
    .supports = window_supports,
    .create = window_create,
    .destroy = window_destroy,
    .append = window_append,
    .attend = window_attend,
    /* single-threaded, no pool: a batch could only run each item's attend in
     * turn, which is what kvb_cache_attend_batch's fallback does */
    .attend_batch = NULL,
    .memory = window_memory,
    .length = window_length,
    .seq_clear = window_seq_clear,
    .seq_fork = NULL,                 /* a ring per sequence: not shared, not copied */
    .seq_memory = window_seq_memory,
    .read_kv = window_read_kv,
};
