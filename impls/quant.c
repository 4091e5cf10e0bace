/* quant.c: the quantized KV cache: q8, q4, q4_1 and q2 (KIVI) in a contiguous
 * store per (sequence, layer), attend reading the codes directly.
 *
 * Each (sequence, layer) holds its first nq tokens quantized and the newest
 * len - nq in f32, in a ring of `residual + unit` rows per KV head:
 *   unit = group for per-channel keys (a group spans `group` tokens, so they
 *          wait in f32 until the group fills), 1 otherwise;
 *   when the f32 tail reaches residual + unit tokens, its oldest unit tokens
 *   are quantized, so the newest `residual` tokens always stay in f32 (KIVI's
 *   residual window; 0 quantizes each token as it arrives).
 * Values are always grouped per token (along head_dim). Keys per token, or per
 * channel across a group of tokens, as key_axis says.
 *
 * Layout per KV head (storage grows by doubling like contiguous grow, or is
 * reserved whole with prealloc):
 *   codes   [kv_head][cap][code_row]                 packed, quant.h's order
 *   K words token axis   [kv_head][cap][n_grp][np]   f16 d (and m) per group
 *           channel axis [kv_head][cap/group][head_dim][np]
 *   V words [kv_head][cap][n_grp][np]
 *   tail    [kv_head][ring][head_dim] f32, token p in row p % ring
 * attend: scores = one fused pass over the codes (quant.h's kernels) plus the
 * f32 tail, softmax, then one fused pass over the value codes plus the tail.
 * With a kernel that rounds the query to int8 (avx512-vnni), keys per token
 * meet the rounded query, the tail included.
 * attend_batch spreads every item's KV heads over the pool in one run;
 * attend is the batch of one, so a batched item gets exactly its attend's out.
 * append refuses NaN or Inf (KVB_STATUS_INVALID_ARG, cache unchanged). */
#include "kvb_backend.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "kernels/pool.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { QUANT_MIN_CAP = 64, QUANT_MAX_RESIDUAL = 65536 };

typedef struct qstore {
    uint8_t  *kc, *vc;        /* [kv_head][cap][code_row] */
    uint16_t *kw, *vw;        /* groups' f16 words, layouts above */
    float    *kt, *vt;        /* [kv_head][ring][head_dim], allocated at the first token */
    int       len, nq, cap;   /* tokens held, tokens quantized, quantized room */
} qstore;

/* One unit of an attend's work: (item, KV head); quant_head offsets q and out. */
typedef struct quant_unit {
    const qstore *s;
    const float  *q;          /* [n_heads][head_dim]: the item's query */
    float        *out;        /* [n_heads][head_dim]: the item's out */
    int           h;
} quant_unit;

struct kvb_backend_ctx {
    kvb_shape          shape;
    kvb_options        opt;
    const kvb_qformat *fmt;
    const kvb_qkernels *kern;     /* per-token rows: value rows, and keys on the token axis */
    int      group, residual, unit, ring, channel, np, n_grp;
    size_t   code_row;            /* bytes of packed codes per row */
    qstore  *stores;              /* [max_seqs][n_layers] */
    struct qscratch {             /* one per attend thread */
        float *scores;            /* [g][max_seq] */
        float *kscratch;          /* kvb_qkernels_scratch_floats(g, head_dim) */
        float *cscratch;          /* per-channel keys: d, a, f16 words or q*d: (3 + g) x head_dim */
        float *per_head;          /* [2][g]: 1/sum of each head's weights; q.a per head */
        float *qround;            /* [g][head_dim]: the query as a rounding kernel sees it */
    } *scr;                       /* [threads] */
    int       threads;
    kvb_pool *pool;               /* NULL when single-threaded; attend splits over KV heads */
    quant_unit *units;            /* [cap_units]: a batch's work; n_kv_heads from create */
    size_t   cap_units;
    float   *stage;               /* [unit][head_dim]: the rows being quantized */
    uint8_t *codes;               /* [unit][head_dim] unpacked codes */
};

static qstore *store_at(const kvb_backend_ctx *c, int seq, int layer)
{
    return &c->stores[(size_t)seq * c->shape.n_layers + layer];
}

/* f16 words of K per KV head for cap tokens */
static size_t kwords(const kvb_backend_ctx *c, int cap)
{
    return c->channel ? (size_t)(cap / c->group) * c->shape.head_dim * c->np
                      : (size_t)cap * c->n_grp * c->np;
}
static size_t vwords(const kvb_backend_ctx *c, int cap) { return (size_t)cap * c->n_grp * c->np; }

/* Bytes of quantized K and V for `tokens` tokens (a multiple of unit), all heads. */
static size_t qbytes(const kvb_backend_ctx *c, int tokens)
{
    size_t per_head = 2 * (size_t)tokens * c->code_row +
                      2 * (kwords(c, tokens) + vwords(c, tokens));
    return per_head * c->shape.n_kv_heads;
}
static size_t tail_bytes(const kvb_backend_ctx *c, int rows)
{
    return 2 * (size_t)rows * c->shape.head_dim * c->shape.n_kv_heads * sizeof(float);
}

static size_t codes_bytes(const kvb_backend_ctx *c, int cap)   /* one of K or V's codes */
{
    return (size_t)c->shape.n_kv_heads * (size_t)cap * c->code_row;
}

static void store_free(const kvb_backend_ctx *c, qstore *s)
{
    kvb_kv_free(s->kc, codes_bytes(c, s->cap)); kvb_kv_free(s->vc, codes_bytes(c, s->cap));
    free(s->kw); free(s->vw); free(s->kt); free(s->vt);
    memset(s, 0, sizeof *s);
}

static kvb_status quant_supports(const kvb_shape *s, const kvb_options *o, char *why, size_t n)
{
    int group = o->group ? o->group : 32;
    if (group < 8 || group > 256 || (group & (group - 1))) {
        snprintf(why, n, "group = %d: must be a power of two from 8 to 256", o->group);
        return KVB_STATUS_INVALID_ARG;
    }
    if (s->head_dim % group) {
        snprintf(why, n, "head_dim = %d is not a multiple of group = %d", s->head_dim, group);
        return KVB_STATUS_UNSUPPORTED;
    }
    if (o->residual < 0 || o->residual > QUANT_MAX_RESIDUAL) {
        snprintf(why, n, "residual = %d: must be 0..%d tokens", o->residual, QUANT_MAX_RESIDUAL);
        return KVB_STATUS_INVALID_ARG;
    }
    if (o->key_axis < 0 || o->key_axis >= KVB_KEY_AXIS_COUNT) {
        snprintf(why, n, "key axis %d out of range", (int)o->key_axis);
        return KVB_STATUS_INVALID_ARG;
    }
    if (!kvb_qkernels_find(o->qkernel, s->head_dim, group, why, n))   /* why says which */
        return kvb_qkernels_known(o->qkernel) ? KVB_STATUS_UNSUPPORTED : KVB_STATUS_INVALID_ARG;
    return KVB_STATUS_OK;
}

static void quant_destroy(kvb_backend_ctx *c)
{
    if (!c) return;
    if (c->stores)
        for (size_t i = 0; i < (size_t)c->opt.max_seqs * c->shape.n_layers; i++)
            store_free(c, &c->stores[i]);
    for (int t = 0; c->scr && t < c->threads; t++) {
        struct qscratch *w = &c->scr[t];
        free(w->scores); free(w->kscratch); free(w->cscratch); free(w->per_head); free(w->qround);
    }
    free(c->scr);
    kvb_pool_destroy(c->pool);
    free(c->stores); free(c->stage); free(c->codes);
    free(c->units);
    free(c);
}

static kvb_status quant_create(kvb_backend_ctx **out, const kvb_shape *shape,
                               const kvb_options *opt, char *msg, size_t msg_len)
{
    *out = NULL;
    kvb_backend_ctx *c = calloc(1, sizeof *c);
    if (!c) return KVB_STATUS_NO_MEMORY;
    c->shape = *shape;
    c->opt = *opt;
    c->fmt = kvb_qformat_of(opt->dtype);
    c->group = opt->group ? opt->group : 32;
    c->opt.group = c->group;
    c->residual = opt->residual;
    c->opt.key_axis = kvb_key_axis_resolve(opt->dtype, opt->key_axis);
    c->channel = c->opt.key_axis == KVB_KEY_AXIS_CHANNEL;
    c->unit = c->channel ? c->group : 1;
    /* the tail never holds more than max_seq tokens, nor residual + unit */
    c->ring = c->residual + c->unit < shape->max_seq ? c->residual + c->unit : shape->max_seq;
    c->np = kvb_qparams(c->fmt);
    c->n_grp = shape->head_dim / c->group;
    c->code_row = kvb_qcode_bytes(c->fmt, shape->head_dim);
    c->kern = kvb_qkernels_find(opt->qkernel, shape->head_dim, c->group, msg, msg_len);
    c->opt.qkernel = c->kern->name;     /* a static string: the caller's may not outlive us */
    const int g = shape->n_heads / shape->n_kv_heads, hd = shape->head_dim;
    c->stores = calloc((size_t)opt->max_seqs * shape->n_layers, sizeof *c->stores);
    c->threads = opt->threads > 1 ? opt->threads : 1;
    c->scr = calloc((size_t)c->threads, sizeof *c->scr);
    c->stage = malloc((size_t)c->unit * hd * sizeof(float));
    c->codes = malloc((size_t)c->unit * hd);
    c->cap_units = (size_t)shape->n_kv_heads;    /* one attend's: only a batch grows it */
    c->units = malloc(c->cap_units * sizeof *c->units);
    int ok = c->stores && c->scr && c->stage && c->codes && c->units;
    for (int t = 0; ok && t < c->threads; t++) {
        struct qscratch *w = &c->scr[t];
        w->scores = malloc((size_t)g * shape->max_seq * sizeof(float));
        w->kscratch = malloc(kvb_qkernels_scratch_floats(g, hd) * sizeof(float));
        w->cscratch = malloc((size_t)(3 + g) * hd * sizeof(float));
        w->per_head = malloc(2 * (size_t)g * sizeof(float));
        w->qround = malloc((size_t)g * hd * sizeof(float));
        ok = w->scores && w->kscratch && w->cscratch && w->per_head && w->qround;
    }
    if (ok && c->threads > 1)
        ok = kvb_pool_create(&c->pool, c->threads, opt->thread_start, opt->thread_start_arg) ==
             KVB_STATUS_OK;
    if (!ok) {
        quant_destroy(c);
        return KVB_STATUS_NO_MEMORY;
    }
    *out = c;
    return KVB_STATUS_OK;
}

/* Room for new_cap quantized tokens per head, existing ones moved over. */
static kvb_status store_resize(kvb_backend_ctx *c, qstore *s, int new_cap)
{
    const int nkv = c->shape.n_kv_heads;
    uint8_t *kc = kvb_kv_alloc(codes_bytes(c, new_cap));
    uint8_t *vc = kvb_kv_alloc(codes_bytes(c, new_cap));
    uint16_t *kw = malloc((size_t)nkv * kwords(c, new_cap) * 2);
    uint16_t *vw = malloc((size_t)nkv * vwords(c, new_cap) * 2);
    if (!kc || !vc || !kw || !vw) {
        kvb_kv_free(kc, codes_bytes(c, new_cap)); kvb_kv_free(vc, codes_bytes(c, new_cap));
        free(kw); free(vw);
        return KVB_STATUS_NO_MEMORY;
    }
    for (int h = 0; h < nkv && s->nq > 0; h++) {
        size_t hn = (size_t)h * (size_t)new_cap, ho = (size_t)h * (size_t)s->cap;
        memcpy(kc + hn * c->code_row, s->kc + ho * c->code_row, (size_t)s->nq * c->code_row);
        memcpy(vc + hn * c->code_row, s->vc + ho * c->code_row, (size_t)s->nq * c->code_row);
        memcpy(kw + (size_t)h * kwords(c, new_cap), s->kw + (size_t)h * kwords(c, s->cap),
               kwords(c, s->nq) * 2);
        memcpy(vw + (size_t)h * vwords(c, new_cap), s->vw + (size_t)h * vwords(c, s->cap),
               vwords(c, s->nq) * 2);
    }
    kvb_kv_free(s->kc, codes_bytes(c, s->cap)); kvb_kv_free(s->vc, codes_bytes(c, s->cap));
    free(s->kw); free(s->vw);
    s->kc = kc; s->vc = vc; s->kw = kw; s->vw = vw; s->cap = new_cap;
    return KVB_STATUS_OK;
}

static float *tail_row(const kvb_backend_ctx *c, float *t, int h, int pos)
{
    return t + ((size_t)h * c->ring + (size_t)(pos % c->ring)) * c->shape.head_dim;
}

/* Quantizes one row of head_dim values per token along head_dim. */
static void quant_row(const kvb_backend_ctx *c, const float *x, uint8_t *dst, uint16_t *words)
{
    for (int gi = 0; gi < c->n_grp; gi++)
        kvb_quant_group(c->fmt, x + gi * c->group, 1, c->group, c->codes + gi * c->group,
                        words + gi * c->np);
    kvb_qpack(c->fmt, c->codes, c->shape.head_dim, dst);
}

/* Moves the oldest `unit` tail tokens into the quantized store (room is there). */
static void flush_unit(kvb_backend_ctx *c, qstore *s)
{
    const int hd = c->shape.head_dim, u = c->unit, p0 = s->nq;
    for (int h = 0; h < c->shape.n_kv_heads; h++) {
        uint8_t *kc = s->kc + ((size_t)h * s->cap + p0) * c->code_row;
        uint8_t *vc = s->vc + ((size_t)h * s->cap + p0) * c->code_row;
        uint16_t *vw = s->vw + h * vwords(c, s->cap) + vwords(c, p0);
        for (int i = 0; i < u; i++)
            quant_row(c, tail_row(c, s->vt, h, p0 + i), vc + i * c->code_row, vw + vwords(c, i));
        if (!c->channel) {
            uint16_t *kw = s->kw + h * kwords(c, s->cap) + kwords(c, p0);
            quant_row(c, tail_row(c, s->kt, h, p0), kc, kw);
            continue;
        }
        /* per channel: the u = group tokens of each channel share d and m */
        for (int i = 0; i < u; i++)
            memcpy(c->stage + (size_t)i * hd, tail_row(c, s->kt, h, p0 + i), (size_t)hd * 4);
        uint16_t *kw = s->kw + h * kwords(c, s->cap) + kwords(c, p0);
        uint8_t col[256];
        for (int d = 0; d < hd; d++) {
            kvb_quant_group(c->fmt, c->stage + d, (size_t)hd, u, col, kw + (size_t)d * c->np);
            for (int i = 0; i < u; i++) c->codes[(size_t)i * hd + d] = col[i];
        }
        for (int i = 0; i < u; i++)
            kvb_qpack(c->fmt, c->codes + (size_t)i * hd, hd, kc + i * c->code_row);
    }
    s->nq += u;
}

static kvb_status quant_append(kvb_backend_ctx *c, int seq, int layer, const float *k,
                               const float *v)
{
    const int hd = c->shape.head_dim, nkv = c->shape.n_kv_heads;
    for (int i = 0; i < nkv * hd; i++)
        if (!isfinite(k[i]) || !isfinite(v[i])) return KVB_STATUS_INVALID_ARG;
    qstore *s = store_at(c, seq, layer);
    if (s->len >= c->shape.max_seq) return KVB_STATUS_FULL;
    if (!s->kt) {
        s->kt = malloc(tail_bytes(c, c->ring) / 2);
        s->vt = malloc(tail_bytes(c, c->ring) / 2);
        if (!s->kt || !s->vt) {
            free(s->kt); free(s->vt);
            s->kt = s->vt = NULL;
            return KVB_STATUS_NO_MEMORY;
        }
    }
    int flush = s->len + 1 - s->nq >= c->residual + c->unit;
    if (flush && s->nq + c->unit > s->cap) {
        /* at most max_seq - residual tokens are ever quantized, in whole units
         * (a flush implies max_seq >= residual + unit, so this is >= unit) */
        long long cap_max = (long long)(c->shape.max_seq - c->residual) / c->unit * c->unit;
        long long first = (QUANT_MIN_CAP + c->unit - 1) / c->unit * c->unit;
        long long want = c->opt.alloc == KVB_ALLOC_PREALLOC ? cap_max
                         : s->cap ? 2LL * s->cap : first;
        kvb_status st = store_resize(c, s, (int)(want < cap_max ? want : cap_max));
        if (st != KVB_STATUS_OK) return st;
    }
    for (int h = 0; h < nkv; h++) {
        memcpy(tail_row(c, s->kt, h, s->len), k + (size_t)h * hd, (size_t)hd * sizeof(float));
        memcpy(tail_row(c, s->vt, h, s->len), v + (size_t)h * hd, (size_t)hd * sizeof(float));
    }
    s->len++;
    if (flush) flush_unit(c, s);
    return KVB_STATUS_OK;
}

static kvb_qrows rows_of(const kvb_backend_ctx *c, const qstore *s, int h, int keys)
{
    kvb_qrows r = {
        .fmt = c->fmt, .n = s->nq, .head_dim = c->shape.head_dim, .group = c->group,
        .code_stride = c->code_row, .param_stride = (size_t)c->n_grp * c->np,
        .codes = (keys ? s->kc : s->vc) + (size_t)h * s->cap * c->code_row,
        .params = keys ? s->kw + h * kwords(c, s->cap) : s->vw + h * vwords(c, s->cap),
    };
    return r;
}

/* Scores of the quantized per-channel keys: with x'[t][j] = d[j]*c[t][j] + a[j]
 * over a block of `group` tokens, q.x'_t = (q*d).c_t + q.a, so each block
 * costs one product q*d per head, then the kernel's dot over raw codes. */
static void channel_scores(const kvb_backend_ctx *c, struct qscratch *w, const qstore *s, int h,
                           int g, const float *q, float scale)
{
    const int hd = c->shape.head_dim, n = s->len, np = c->np;
    /* cscratch, (3 + g) x hd floats: d, a, then the block's words [hd][np] (read
     * before anything else lands there), then the query times d [g][hd] */
    float *d = w->cscratch, *a = d + hd, *words = d + 2 * hd, *qd = d + 2 * hd;
    float *qa = w->per_head + g;
    for (int b = 0; b < s->nq / c->group; b++) {
        /* the block's f16 words in one vectorized conversion, then split into d and a */
        const uint16_t *bw = s->kw + h * kwords(c, s->cap) + (size_t)b * hd * np;
        kvb_row_to_f32(KVB_DTYPE_F16, bw, words, hd * np);
        for (int j = 0; j < hd; j++) {
            d[j] = words[(size_t)j * np];
            a[j] = np == 2 ? words[(size_t)j * 2 + 1] : -(float)c->fmt->zero * d[j];
        }
        for (int i = 0; i < g; i++) {
            for (int j = 0; j < hd; j++) qd[(size_t)i * hd + j] = q[(size_t)i * hd + j] * d[j];
            qa[i] = scale * kvb_dot_f32(q + (size_t)i * hd, a, hd);
        }
        kvb_qrows raw = {
            .fmt = c->fmt, .n = c->group, .head_dim = hd, .group = c->group,
            .code_stride = c->code_row, .params = NULL,
            .codes = s->kc + ((size_t)h * s->cap + (size_t)b * c->group) * c->code_row,
        };
        float *sb = w->scores + (size_t)b * c->group;
        c->kern->scores(&raw, g, qd, scale, sb, (size_t)n, w->kscratch);
        for (int i = 0; i < g; i++)
            for (int u = 0; u < c->group; u++) sb[(size_t)i * n + u] += qa[i];
    }
}

/* Attention for KV head h: its g query heads, with thread-private scratch w. */
static void quant_head(const kvb_backend_ctx *c, struct qscratch *w, const qstore *s, int h,
                       const float *q, float *out)
{
    const int hd = c->shape.head_dim, g = c->shape.n_heads / c->shape.n_kv_heads, n = s->len;
    const float scale = 1.0f / sqrtf((float)hd);
    float *sc = w->scores;                                      /* [g][n] */
    const float *qh = q + (size_t)h * g * hd, *qt = qh;
    float *oh = out + (size_t)h * g * hd;
    /* a kernel that rounds the query for its integer dot products (once,
     * inside): the f32 tail meets the same rounded query (qt), so attend has
     * one definition; per-channel keys take the f32 query throughout */
    if (c->kern->rounds_query && !c->channel && n > s->nq) {
        for (int i = 0; i < g; i++)
            kvb_qround_query(qh + (size_t)i * hd, hd, w->qround + (size_t)i * hd);
        qt = w->qround;
    }
    if (s->nq > 0) {
        if (c->channel) {
            channel_scores(c, w, s, h, g, qh, scale);
        } else {
            kvb_qrows kr = rows_of(c, s, h, 1);
            c->kern->scores(&kr, g, qh, scale, sc, (size_t)n, w->kscratch);
        }
    }
    for (int t = s->nq; t < n; t++) {
        const float *kr = tail_row(c, s->kt, h, t);
        for (int i = 0; i < g; i++)
            sc[(size_t)i * n + t] = scale * kvb_dot_f32(qt + (size_t)i * hd, kr, hd);
    }
    float *inv = w->per_head;
    for (int i = 0; i < g; i++) inv[i] = 1.0f / c->kern->softmax_exp(sc + (size_t)i * n, n);
    if (s->nq > 0) {
        kvb_qrows vr = rows_of(c, s, h, 0);
        c->kern->accum(&vr, g, sc, (size_t)n, oh, w->kscratch);
    }
    for (int t = s->nq; t < n; t++) {
        const float *vr = tail_row(c, s->vt, h, t);
        for (int i = 0; i < g; i++)
            kvb_axpy_f32(sc[(size_t)i * n + t], vr, oh + (size_t)i * hd, hd);
    }
    for (int i = 0; i < g; i++)
        for (int j = 0; j < hd; j++) oh[(size_t)i * hd + j] *= inv[i];
}

typedef struct quant_batch {
    kvb_backend_ctx *c; const quant_unit *units;
} quant_batch;

static void quant_unit_run(void *arg, int i, int thread)
{
    const quant_batch *j = arg;
    const quant_unit *u = &j->units[i];
    quant_head(j->c, &j->c->scr[thread], u->s, u->h, u->q, u->out);
}

/* Every item's KV heads in one kvb_pool_run, split over the threads when the
 * pool exists and the batch's codes are worth waking it for (256 KiB, as for
 * the contiguous cache); each unit writes its own rows of its item's out.
 * attend is this batch of one, so each item gets exactly its attend's output. */
static kvb_status quant_attend_batch(kvb_backend_ctx *c, int layer, const kvb_attend_item *items,
                                     int n)
{
    const int nkv = c->shape.n_kv_heads;
    size_t n_units = 0, bytes = 0;
    for (int i = 0; i < n; i++) {
        const qstore *s = store_at(c, items[i].seq, layer);
        /* accum adds into out; an empty store leaves it zero */
        memset(items[i].out, 0, (size_t)c->shape.n_heads * c->shape.head_dim * sizeof(float));
        n_units += s->len ? (size_t)nkv : 0;
        bytes += qbytes(c, s->nq) + tail_bytes(c, s->len - s->nq);
    }
    if (n_units > (size_t)INT_MAX) return KVB_STATUS_INVALID_ARG;   /* kvb_pool_run's count */
    if (n_units > c->cap_units) {
        quant_unit *u = realloc(c->units, n_units * sizeof *u);
        if (!u) return KVB_STATUS_NO_MEMORY;
        c->units = u;
        c->cap_units = n_units;
    }
    size_t u = 0;
    for (int i = 0; i < n; i++) {
        const qstore *s = store_at(c, items[i].seq, layer);
        for (int h = 0; s->len && h < nkv; h++)
            c->units[u++] = (quant_unit){s, items[i].q, items[i].out, h};
    }
    quant_batch job = {c, c->units};
    kvb_pool_run(bytes < 256 * 1024 ? NULL : c->pool, (int)n_units, quant_unit_run, &job);
    return KVB_STATUS_OK;
}

static kvb_status quant_attend(kvb_backend_ctx *c, int seq, int layer, const float *q, float *out)
{
    kvb_attend_item one = {seq, q, out};
    return quant_attend_batch(c, layer, &one, 1);
}

static kvb_memory quant_seq_memory(const kvb_backend_ctx *c, int seq)
{
    kvb_memory m = {0, 0, 0, 0};
    m.metadata = (size_t)c->shape.n_layers * sizeof *c->stores;
    for (int l = 0; l < c->shape.n_layers; l++) {
        const qstore *s = store_at(c, seq, l);
        m.reserved += qbytes(c, s->cap) + (s->kt ? tail_bytes(c, c->ring) : 0);
        m.used += qbytes(c, s->nq) + tail_bytes(c, s->len - s->nq);
    }
    m.capacity = m.reserved;
    return m;
}

static kvb_memory quant_memory(const kvb_backend_ctx *c)
{
    kvb_memory m = {0, 0, sizeof *c, 0};
    const int g = c->shape.n_heads / c->shape.n_kv_heads, hd = c->shape.head_dim;
    /* scratch per attend thread: scores, kernel scratch, per-channel scratch,
     * rounded query, per-head sums; and the staging rows */
    m.metadata += ((size_t)g * c->shape.max_seq + kvb_qkernels_scratch_floats(g, hd) +
                   (size_t)(3 + g) * hd + (size_t)g * hd + 2 * (size_t)g) *
                      sizeof(float) * (size_t)c->threads +
                  (size_t)c->unit * hd * (sizeof(float) + 1);
    for (int q = 0; q < c->opt.max_seqs; q++) {
        kvb_memory s = quant_seq_memory(c, q);
        m.reserved += s.reserved;
        m.used += s.used;
        m.metadata += s.metadata;
    }
    m.capacity = m.reserved;
    return m;
}

static int quant_length(const kvb_backend_ctx *c, int seq, int layer)
{
    return store_at(c, seq, layer)->len;
}

static kvb_status quant_seq_clear(kvb_backend_ctx *c, int seq)
{
    for (int l = 0; l < c->shape.n_layers; l++) store_free(c, store_at(c, seq, l));
    return KVB_STATUS_OK;
}

/* A dense copy, codes and tail alike (no sharing in a contiguous store). */
static kvb_status quant_seq_fork(kvb_backend_ctx *c, int parent, int child)
{
    int n = store_at(c, parent, 0)->len;
    for (int l = 0; l < c->shape.n_layers; l++) {
        const qstore *p = store_at(c, parent, l);
        qstore *d = store_at(c, child, l);
        if (!p->kt) continue;
        store_free(c, d);
        d->kt = malloc(tail_bytes(c, c->ring) / 2);
        d->vt = malloc(tail_bytes(c, c->ring) / 2);
        kvb_status st = (d->kt && d->vt) ? KVB_STATUS_OK : KVB_STATUS_NO_MEMORY;
        if (st == KVB_STATUS_OK && p->cap) st = store_resize(c, d, p->cap);
        if (st != KVB_STATUS_OK) {               /* undo this fork's layers */
            for (int j = 0; j <= l; j++) store_free(c, store_at(c, child, j));
            return st;
        }
        memcpy(d->kt, p->kt, tail_bytes(c, c->ring) / 2);
        memcpy(d->vt, p->vt, tail_bytes(c, c->ring) / 2);
        size_t nkv = (size_t)c->shape.n_kv_heads;
        if (p->cap) {
            memcpy(d->kc, p->kc, nkv * p->cap * c->code_row);
            memcpy(d->vc, p->vc, nkv * p->cap * c->code_row);
            memcpy(d->kw, p->kw, nkv * kwords(c, p->cap) * 2);
            memcpy(d->vw, p->vw, nkv * vwords(c, p->cap) * 2);
        }
        d->nq = p->nq;
    }
    for (int l = 0; l < c->shape.n_layers; l++) store_at(c, child, l)->len = n;
    return KVB_STATUS_OK;
}

/* The values attend sees: quantized tokens read back through the same
 * coefficients the kernels use, tail tokens as stored. */
static kvb_status quant_read_kv(const kvb_backend_ctx *c, int seq, int layer, int kv_head,
                                int token, float *k, float *v)
{
    const qstore *s = store_at(c, seq, layer);
    const int hd = c->shape.head_dim;
    if (token >= s->nq) {
        memcpy(k, tail_row(c, s->kt, kv_head, token), (size_t)hd * sizeof(float));
        memcpy(v, tail_row(c, s->vt, kv_head, token), (size_t)hd * sizeof(float));
        return KVB_STATUS_OK;
    }
    kvb_qrows vr = rows_of(c, s, kv_head, 0);
    kvb_qrow_dequant(&vr, token, v);
    if (!c->channel) {
        kvb_qrows kr = rows_of(c, s, kv_head, 1);
        kvb_qrow_dequant(&kr, token, k);
        return KVB_STATUS_OK;
    }
    uint8_t *codes = malloc((size_t)hd);
    if (!codes) return KVB_STATUS_NO_MEMORY;
    kvb_qunpack(c->fmt, s->kc + ((size_t)kv_head * s->cap + token) * c->code_row, hd, codes);
    const uint16_t *w =
        s->kw + kv_head * kwords(c, s->cap) + (size_t)(token / c->group) * hd * c->np;
    for (int j = 0; j < hd; j++) {
        float d, a;
        kvb_qgroup_coeffs(c->fmt, w + (size_t)j * c->np, &d, &a);
        k[j] = d * (float)codes[j] + a;
    }
    free(codes);
    return KVB_STATUS_OK;
}

const kvb_backend kvb_backend_quant = {
    .version = KVB_BACKEND_VERSION,
    .name = "quant",
    .description = "quantized contiguous store: q8, q4, q4_1, q2 (KIVI); fused dequantizing attend",
    .flags = KVB_BACKEND_QUANT,
    .supports = quant_supports,
    .create = quant_create,
    .destroy = quant_destroy,
    .append = quant_append,
    .attend = quant_attend,
    .attend_batch = quant_attend_batch,
    .memory = quant_memory,
    .length = quant_length,
    .seq_clear = quant_seq_clear,
    .seq_fork = quant_seq_fork,
    .seq_memory = quant_seq_memory,
    .read_kv = quant_read_kv,
};
