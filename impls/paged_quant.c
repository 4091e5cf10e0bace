/* paged_quant.c: a paged cache whose blocks hold q8/q4/q4_1/q2 codes (issue 16), as
 * vLLM's fp8 blocks do: the bytes quantization saves become more blocks in one KV
 * budget, so more sequences.
 *
 * Contract. The pool and its rules are paged.c's (its supports() is asked first):
 * blocks of block_tokens tokens (default 16) from one pool sized by pool_blocks,
 * else pool_bytes / block bytes, else max_seqs x max_seq; a block id names the
 * same slot in every layer; seq_fork shares blocks by reference count, and the
 * first append into a shared (partly filled last) block copies it; append returns
 * KVB_STATUS_FULL before changing anything when it needs a block and none is free.
 * Each sequence's table is a fixed row of max_seq / block_tokens ids, so append
 * and fork never allocate. What a block holds is quant.c's per-token rows: each
 * token's K and V quantized along head_dim in groups of `group` (default 32) as it
 * is appended, with no f32 window, so a block holds codes and scales only. Per
 * layer, four head planes (each head's blocks adjacent, paged's default layout):
 *   K codes, V codes  [kv_head][block][block_tokens][code_row]    packed, quant.h order
 *   K words, V words  [kv_head][block][block_tokens][n_grp][np]   f16 d (and m)
 * attend per KV head: the fused score kernel over the table's runs of adjacent
 * blocks (short runs copied together first) into one [g][len] row of scores, one
 * softmax over it, then the fused weighted sums the same way: quant.c's kernels,
 * so read_kv gives the quant backend's values to the bit and attend matches it to
 * float rounding. Threads take (item, KV head) pairs; with fewer KV heads than
 * threads a long context is split into parts and merged (Flash-Decoding), as
 * paged.c does; attend_batch gives each item exactly what attend gives it.
 * Refused by supports(), after paged's and quant's own checks: keys per channel (a
 * channel group spans `group` tokens, which blocks and forks would split), residual
 * > 0 (there is no f32 tail to page), alloc modes but grow. append refuses NaN and
 * Inf (KVB_STATUS_INVALID_ARG, cache unchanged).
 * Accounting: reserved = blocks held x block bytes, a shared block once; used =
 * tokens written into held blocks x (codes + scales) bytes, shared ones once;
 * capacity = the whole pool; metadata = tables, counts, lengths and scratch. */
#include "kvb_backend.h"
#include "kernels/kernels.h"
#include "kernels/pool.h"
#include "kernels/quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const kvb_backend kvb_backend_paged;   /* their supports() hold the shared rules */
extern const kvb_backend kvb_backend_quant;

/* A kernel call costs a setup (the VNNI table quantizes the query on every
 * call: microseconds), so attend hands it long runs of rows: blocks adjacent in
 * the pool are adjacent in a head plane and go as one run; runs shorter than
 * PQ_RUN_MIN tokens are first copied together, up to PQ_GATHER tokens a call. */
enum { PQ_DEFAULT_BLOCK = 16, PQ_DEFAULT_GROUP = 32, PQ_RUN_MIN = 128, PQ_GATHER = 512,
       PQ_MIN_PART = 256 };

/* The planes of one layer, in the order `planes` holds them. */
enum pq_plane { PQ_PLANE_KC = 0, PQ_PLANE_VC, PQ_PLANE_KW, PQ_PLANE_VW, PQ_PLANE_COUNT };

typedef struct pq_scratch {   /* one per attend thread */
    float *scores;            /* [g][max_seq] */
    float *kern;              /* kvb_qkernels_scratch_floats(g, head_dim) */
    float *inv;               /* [g] 1 / each head's softmax sum */
    uint8_t  *gcodes;         /* [PQ_GATHER][code_row] short runs' codes, copied together */
    uint16_t *gwords;         /* [PQ_GATHER][n_grp][np] and their words */
} pq_scratch;

struct kvb_backend_ctx {
    kvb_shape           shape;
    kvb_options         opt;
    const kvb_qformat  *fmt;
    const kvb_qkernels *kern;
    int      bt, group, np, n_grp;
    int      row_len;         /* ids in one sequence's table: blocks of max_seq tokens */
    size_t   row_bytes[PQ_PLANE_COUNT];  /* one token of one head in each plane */
    size_t   n_blocks;
    void   **planes;          /* [n_layers][PQ_PLANE_COUNT] -> the planes above */
    int     *refs;            /* [n_blocks] owners of each block; 0 = free */
    int     *fill;            /* [n_layers][n_blocks] tokens written into each block */
    size_t   filled;          /* sum of fill: tokens in held blocks, a shared one once */
    int     *free_ids;        /* [n_blocks] stack of free block ids */
    size_t   n_free;
    int     *tables;          /* [max_seqs][row_len] block ids in token order */
    int     *n_table;         /* [max_seqs] blocks each sequence holds */
    int     *lens;            /* [max_seqs][n_layers] tokens appended */
    uint8_t *unpacked;        /* [head_dim] one row's codes before packing (append) */
    pq_scratch *scr;          /* [threads] */
    int       threads;
    kvb_pool *pool;           /* NULL when single-threaded */
    int    max_parts;         /* context parts per KV head when KV heads are fewer than threads */
    float *part_out;          /* [n_kv_heads * max_parts][g][head_dim] the parts' outputs */
    float *part_ml;           /* [n_kv_heads * max_parts][g][2] their max and sum */
};

/* Bytes of one token of one layer: every head's row in all four planes. */
static size_t token_bytes(const kvb_backend_ctx *c)
{
    size_t row = 0;
    for (int p = 0; p < PQ_PLANE_COUNT; p++) row += c->row_bytes[p];
    return row * (size_t)c->shape.n_kv_heads;
}

static size_t block_bytes(const kvb_backend_ctx *c)   /* every layer */
{
    return (size_t)c->shape.n_layers * (size_t)c->bt * token_bytes(c);
}

static size_t plane_bytes(const kvb_backend_ctx *c, int p)
{
    return (size_t)c->shape.n_kv_heads * c->n_blocks * (size_t)c->bt * c->row_bytes[p];
}

/* Token `slot` of (layer, plane p, kv_head h, block b). */
static void *row_at(const kvb_backend_ctx *c, int layer, int p, int h, int b, int slot)
{
    size_t row = ((size_t)h * c->n_blocks + (size_t)b) * (size_t)c->bt + (size_t)slot;
    return (char *)c->planes[(size_t)layer * PQ_PLANE_COUNT + p] + row * c->row_bytes[p];
}

static int *table_of(const kvb_backend_ctx *c, int seq)
{
    return c->tables + (size_t)seq * c->row_len;
}

static int *len_of(const kvb_backend_ctx *c, int seq)
{
    return c->lens + (size_t)seq * c->shape.n_layers;
}

/* The n rows of block b (values: 0 keys, 1 values) as the fused kernels read them. */
static kvb_qrows block_rows(const kvb_backend_ctx *c, int values, int layer, int h, int b, int n)
{
    kvb_qrows q = {
        .fmt = c->fmt, .n = n, .head_dim = c->shape.head_dim, .group = c->group,
        .code_stride = c->row_bytes[PQ_PLANE_KC], .param_stride = (size_t)c->n_grp * c->np,
        .codes = row_at(c, layer, PQ_PLANE_KC + values, h, b, 0),
        .params = row_at(c, layer, PQ_PLANE_KW + values, h, b, 0),
    };
    return q;
}

static kvb_status pq_supports(const kvb_shape *s, const kvb_options *o, char *why, size_t n)
{
    kvb_status st = kvb_backend_paged.supports(s, o, why, n);
    if (st == KVB_STATUS_OK) st = kvb_backend_quant.supports(s, o, why, n);
    if (st != KVB_STATUS_OK) return st;
    if (o->residual != 0) {
        snprintf(why, n, "residual = %d: paged-quant quantizes each token as it arrives, "
                 "allowed is 0 (backend quant keeps an f32 window)", o->residual);
        return KVB_STATUS_UNSUPPORTED;
    }
    if (kvb_key_axis_resolve(o->dtype, o->key_axis) == KVB_KEY_AXIS_CHANNEL) {
        snprintf(why, n, "keys per channel (key axis %s, type %s): paged-quant groups keys "
                 "per token only; allowed is key axis token", kvb_key_axis_name(o->key_axis),
                 kvb_dtype_name(o->dtype));
        return KVB_STATUS_UNSUPPORTED;
    }
    return KVB_STATUS_OK;
}

static void pq_destroy(kvb_backend_ctx *c)
{
    if (!c) return;
    for (size_t i = 0; c->planes && i < (size_t)c->shape.n_layers * PQ_PLANE_COUNT; i++)
        kvb_kv_free(c->planes[i], plane_bytes(c, (int)(i % PQ_PLANE_COUNT)));
    for (int t = 0; c->scr && t < c->threads; t++) {
        free(c->scr[t].scores); free(c->scr[t].kern); free(c->scr[t].inv);
        free(c->scr[t].gcodes); free(c->scr[t].gwords);
    }
    free(c->planes); free(c->refs); free(c->fill); free(c->free_ids); free(c->tables);
    free(c->n_table); free(c->lens); free(c->unpacked); free(c->scr); free(c->part_out);
    free(c->part_ml);
    kvb_pool_destroy(c->pool);
    free(c);
}

/* Allocates what create sized; 0 when anything fails. */
static int pq_alloc(kvb_backend_ctx *c)
{
    const size_t L = (size_t)c->shape.n_layers, S = (size_t)c->opt.max_seqs;
    const int g = c->shape.n_heads / c->shape.n_kv_heads, hd = c->shape.head_dim;
    c->planes = calloc(L * PQ_PLANE_COUNT, sizeof *c->planes);
    c->refs = calloc(c->n_blocks, sizeof *c->refs);
    c->fill = calloc(L * c->n_blocks, sizeof *c->fill);
    c->free_ids = malloc(c->n_blocks * sizeof *c->free_ids);
    c->tables = malloc(S * (size_t)c->row_len * sizeof *c->tables);
    c->n_table = calloc(S, sizeof *c->n_table);
    c->lens = calloc(S * L, sizeof *c->lens);
    c->unpacked = malloc((size_t)hd);
    c->scr = calloc((size_t)c->threads, sizeof *c->scr);
    /* as paged.c: parts of at least PQ_MIN_PART tokens when KV heads are fewer
     * than threads, so one attend still uses them all */
    int want = (c->threads + c->shape.n_kv_heads - 1) / c->shape.n_kv_heads;
    int room = c->shape.max_seq / PQ_MIN_PART;
    c->max_parts = c->shape.n_kv_heads < c->threads ? (want < room ? want : room) : 1;
    c->max_parts = c->max_parts > 1 ? c->max_parts : 1;
    size_t parts = (size_t)c->shape.n_kv_heads * (size_t)c->max_parts * (size_t)g;
    if (c->max_parts > 1) {
        c->part_out = malloc(parts * (size_t)hd * sizeof(float));
        c->part_ml = malloc(parts * 2 * sizeof(float));
    }
    int ok = c->planes && c->refs && c->fill && c->free_ids && c->tables && c->n_table &&
             c->lens && c->unpacked && c->scr && (c->max_parts == 1 || (c->part_out && c->part_ml));
    for (int t = 0; ok && t < c->threads; t++) {
        pq_scratch *w = &c->scr[t];
        w->scores = malloc((size_t)g * c->shape.max_seq * sizeof(float));
        w->kern = malloc(kvb_qkernels_scratch_floats(g, hd) * sizeof(float));
        w->inv = malloc((size_t)g * sizeof(float));
        w->gcodes = malloc(PQ_GATHER * c->row_bytes[PQ_PLANE_KC]);
        w->gwords = malloc(PQ_GATHER * c->row_bytes[PQ_PLANE_KW]);
        ok = w->scores && w->kern && w->inv && w->gcodes && w->gwords;
    }
    /* each plane written once, front to back, for paged.c's reason: its pages
     * are then placed in address order (docs/paged.md) */
    for (size_t i = 0; ok && i < L * PQ_PLANE_COUNT; i++) {
        size_t bytes = plane_bytes(c, (int)(i % PQ_PLANE_COUNT));
        ok = (c->planes[i] = kvb_kv_alloc(bytes)) != NULL;
        if (ok) memset(c->planes[i], 0, bytes);
    }
    if (ok && c->threads > 1)
        ok = kvb_pool_create(&c->pool, c->threads, c->opt.thread_start,
                             c->opt.thread_start_arg) == KVB_STATUS_OK;
    return ok;
}

static kvb_status pq_create(kvb_backend_ctx **out, const kvb_shape *shape,
                            const kvb_options *opt, char *msg, size_t msg_len)
{
    kvb_backend_ctx *c = calloc(1, sizeof *c);
    *out = NULL;
    if (!c) return KVB_STATUS_NO_MEMORY;
    *c = (kvb_backend_ctx){.shape = *shape, .opt = *opt, .fmt = kvb_qformat_of(opt->dtype)};
    c->bt = c->opt.block_tokens = opt->block_tokens ? opt->block_tokens : PQ_DEFAULT_BLOCK;
    c->group = c->opt.group = opt->group ? opt->group : PQ_DEFAULT_GROUP;
    c->opt.key_axis = KVB_KEY_AXIS_TOKEN;
    c->np = kvb_qparams(c->fmt);
    c->n_grp = shape->head_dim / c->group;
    c->row_len = (shape->max_seq + c->bt - 1) / c->bt;
    c->row_bytes[PQ_PLANE_KC] = c->row_bytes[PQ_PLANE_VC] =
        kvb_qcode_bytes(c->fmt, shape->head_dim);
    c->row_bytes[PQ_PLANE_KW] = c->row_bytes[PQ_PLANE_VW] =
        (size_t)c->n_grp * c->np * sizeof(uint16_t);
    c->kern = kvb_qkernels_find(opt->qkernel, shape->head_dim, c->group, msg, msg_len);
    c->opt.qkernel = c->kern->name;   /* static: the caller's string may not outlive us */
    c->threads = opt->threads > 1 ? opt->threads : 1;
    /* paged.c's rule */
    c->n_blocks = opt->pool_blocks  ? opt->pool_blocks
                  : opt->pool_bytes ? opt->pool_bytes / block_bytes(c)
                                    : (size_t)opt->max_seqs * (size_t)c->row_len;
    if (c->n_blocks < 1 || c->n_blocks > (size_t)1 << 30) {
        snprintf(msg, msg_len, "a pool of %zu blocks (of %d tokens, %zu bytes): allowed are "
                 "1 to 2^30 blocks", c->n_blocks, c->bt, block_bytes(c));
        pq_destroy(c);
        return KVB_STATUS_INVALID_ARG;
    }
    if (!pq_alloc(c)) {
        snprintf(msg, msg_len, "cannot allocate a pool of %zu blocks (%zu bytes)", c->n_blocks,
                 c->n_blocks * block_bytes(c));
        pq_destroy(c);
        return KVB_STATUS_NO_MEMORY;
    }
    /* popped from the top: low ids first, so a fresh pool fills front to back */
    for (size_t i = 0; i < c->n_blocks; i++) c->free_ids[i] = (int)(c->n_blocks - 1 - i);
    c->n_free = c->n_blocks;
    *out = c;
    return KVB_STATUS_OK;
}

static int take_block(kvb_backend_ctx *c)
{
    int b = c->free_ids[--c->n_free];
    c->refs[b] = 1;
    return b;
}

/* One owner less; the last one's leaving empties the block in every layer. */
static void drop_block(kvb_backend_ctx *c, int b)
{
    if (--c->refs[b] > 0) return;
    for (int l = 0; l < c->shape.n_layers; l++) {
        int *f = &c->fill[(size_t)l * c->n_blocks + (size_t)b];
        c->filled -= (size_t)*f;
        *f = 0;
    }
    c->free_ids[c->n_free++] = b;
}

/* The writer's own copy of its shared block at table index bi: every layer's
 * planes, and the fill this sequence owns of it. A free block must exist. */
static int copy_on_write(kvb_backend_ctx *c, int seq, int bi)
{
    int *table = table_of(c, seq), src = table[bi], dst = take_block(c);
    for (int l = 0; l < c->shape.n_layers; l++) {
        for (int p = 0; p < PQ_PLANE_COUNT; p++)
            for (int h = 0; h < c->shape.n_kv_heads; h++)
                memcpy(row_at(c, l, p, h, dst, 0), row_at(c, l, p, h, src, 0),
                       (size_t)c->bt * c->row_bytes[p]);
        int mine = len_of(c, seq)[l] - bi * c->bt;
        mine = mine < 0 ? 0 : mine > c->bt ? c->bt : mine;
        c->fill[(size_t)l * c->n_blocks + (size_t)dst] = mine;
        c->filled += (size_t)mine;
    }
    drop_block(c, src);
    table[bi] = dst;
    return dst;
}

/* One head's row x quantized per token into token slot of (layer, h, b). */
static void put_row(kvb_backend_ctx *c, int values, int layer, int h, int b, int slot,
                    const float *x)
{
    uint16_t *w = row_at(c, layer, PQ_PLANE_KW + values, h, b, slot);
    for (int gi = 0; gi < c->n_grp; gi++)
        kvb_quant_group(c->fmt, x + gi * c->group, 1, c->group, c->unpacked + gi * c->group,
                        w + gi * c->np);
    kvb_qpack(c->fmt, c->unpacked, c->shape.head_dim, row_at(c, layer, values, h, b, slot));
}

static kvb_status pq_append(kvb_backend_ctx *c, int seq, int layer, const float *k,
                            const float *v)
{
    const int hd = c->shape.head_dim, nkv = c->shape.n_kv_heads;
    for (int i = 0; i < nkv * hd; i++)
        if (!isfinite(k[i]) || !isfinite(v[i])) return KVB_STATUS_INVALID_ARG;
    int *len = &len_of(c, seq)[layer], *table = table_of(c, seq);
    const int pos = *len;
    if (pos >= c->shape.max_seq) return KVB_STATUS_FULL;
    const int bi = pos / c->bt, slot = pos % c->bt;
    int fresh = bi == c->n_table[seq], shared = !fresh && c->refs[table[bi]] > 1;
    if ((fresh || shared) && c->n_free == 0) return KVB_STATUS_FULL;
    if (fresh) table[c->n_table[seq]++] = take_block(c);
    int b = shared ? copy_on_write(c, seq, bi) : table[bi];
    for (int h = 0; h < nkv; h++) {
        put_row(c, 0, layer, h, b, slot, k + (size_t)h * hd);
        put_row(c, 1, layer, h, b, slot, v + (size_t)h * hd);
    }
    int *f = &c->fill[(size_t)layer * c->n_blocks + (size_t)b];
    if (*f <= slot) {
        c->filled += (size_t)(slot + 1 - *f);
        *f = slot + 1;
    }
    *len = pos + 1;
    return KVB_STATUS_OK;
}

/* One pass of attend over a sequence's keys (scores into sc) or values (sums
 * into oh) for KV head h: sc is [g][n], oh [g][head_dim]. */
typedef struct pq_pass {
    const kvb_backend_ctx *c;
    pq_scratch *w;
    int layer, h, values, n;
    const float *qh;
    float *sc, *oh;
} pq_pass;

/* The kernel over rows r, tokens t0.. of the sequence. */
static void pass_rows(const pq_pass *p, const kvb_qrows *r, int t0)
{
    const kvb_backend_ctx *c = p->c;
    const int g = c->shape.n_heads / c->shape.n_kv_heads;
    if (p->values)
        c->kern->accum(r, g, p->sc + t0, (size_t)p->n, p->oh, p->w->kern);
    else
        c->kern->scores(r, g, p->qh, 1.0f / sqrtf((float)c->shape.head_dim), p->sc + t0,
                        (size_t)p->n, p->w->kern);
}

/* The gathered tokens t0..t0+rows through the kernel. */
static void pass_gathered(const pq_pass *p, int t0, int rows)
{
    if (rows == 0) return;
    kvb_qrows r = block_rows(p->c, p->values, p->layer, p->h, 0, rows);
    r.codes = p->w->gcodes;
    r.params = p->w->gwords;
    pass_rows(p, &r, t0);
}

/* Runs of adjacent blocks straight from the planes, short ones gathered first;
 * every token once, in order. */
static void pass_table(const pq_pass *p, const int *table)
{
    const kvb_backend_ctx *c = p->c;
    const int bt = c->bt, nb = (p->n + bt - 1) / bt;
    const size_t cb = c->row_bytes[PQ_PLANE_KC], wb = c->row_bytes[PQ_PLANE_KW];
    int g0 = 0, gn = 0;                         /* gathered: tokens g0..g0+gn */
    for (int i = 0, j; i < nb; i = j) {
        for (j = i + 1; j < nb && table[j] == table[j - 1] + 1; j++) {}
        const int t0 = i * bt, rows = (j * bt < p->n ? j * bt : p->n) - t0;
        if (rows >= PQ_RUN_MIN) {
            pass_gathered(p, g0, gn);
            kvb_qrows r = block_rows(c, p->values, p->layer, p->h, table[i], rows);
            pass_rows(p, &r, t0);
            g0 = t0 + rows, gn = 0;
            continue;
        }
        if (gn + rows > PQ_GATHER) {
            pass_gathered(p, g0, gn);
            g0 = t0, gn = 0;
        }
        memcpy(p->w->gcodes + (size_t)gn * cb,
               row_at(c, p->layer, PQ_PLANE_KC + p->values, p->h, table[i], 0), rows * cb);
        memcpy((char *)p->w->gwords + (size_t)gn * wb,
               row_at(c, p->layer, PQ_PLANE_KW + p->values, p->h, table[i], 0), rows * wb);
        gn += rows;
    }
    pass_gathered(p, g0, gn);
}

/* Attention of KV head h's g query heads over n tokens in the blocks of table:
 * scores, one softmax over all of them, weighted sums. qh, oh: [g][head_dim],
 * oh normalized; ml NULL, or [g][2] each head's largest score and sum, what
 * kvb_attend_merge needs. */
static void pq_head(const kvb_backend_ctx *c, pq_scratch *w, const int *table, int n, int layer,
                    int h, const float *qh, float *oh, float *ml)
{
    const int hd = c->shape.head_dim, g = c->shape.n_heads / c->shape.n_kv_heads;
    pq_pass p = {c, w, layer, h, 0, n, qh, w->scores, oh};
    memset(oh, 0, (size_t)g * hd * sizeof *oh);
    if (n == 0) return;
    pass_table(&p, table);
    for (int i = 0; i < g; i++) {
        float *si = p.sc + (size_t)i * n, top = si[0];
        for (int t = 1; ml && t < n; t++) top = si[t] > top ? si[t] : top;
        float sum = c->kern->softmax_exp(si, n);
        w->inv[i] = 1.0f / sum;
        if (ml) ml[2 * i] = top, ml[2 * i + 1] = sum;
    }
    p.values = 1;
    pass_table(&p, table);
    for (int i = 0; i < g; i++)
        for (int j = 0; j < hd; j++) oh[(size_t)i * hd + j] *= w->inv[i];
}

/* Parts one attend over n tokens is split into: 1, or up to max_parts of at
 * least PQ_MIN_PART tokens and whole blocks. Of n alone, so an item comes out
 * the same from attend and from attend_batch. */
static int parts_of(const kvb_backend_ctx *c, int n)
{
    int p = n / PQ_MIN_PART < c->max_parts ? n / PQ_MIN_PART : c->max_parts;
    int nb = (n + c->bt - 1) / c->bt;
    p = p < nb ? p : nb;
    return p > 1 ? p : 1;
}

typedef struct pq_job {
    kvb_backend_ctx *c; int layer; const kvb_attend_item *items; int parts;
} pq_job;

/* Pool item = (attend item, KV head), each writing only its own rows of out;
 * items split into parts are left to pq_part. */
static void pq_item(void *arg, int item, int thread)
{
    const pq_job *j = arg;
    const kvb_backend_ctx *c = j->c;
    const int nkv = c->shape.n_kv_heads, h = item % nkv;
    const size_t rows = (size_t)h * (c->shape.n_heads / nkv) * c->shape.head_dim;
    const kvb_attend_item *it = &j->items[item / nkv];
    const int n = len_of(c, it->seq)[j->layer];
    if (parts_of(c, n) == 1)
        pq_head(c, &c->scr[thread], table_of(c, it->seq), n, j->layer, h, it->q + rows,
                it->out + rows, NULL);
}

/* Pool item = (KV head, part) of job->items[0], into part_out and part_ml. */
static void pq_part(void *arg, int item, int thread)
{
    const pq_job *j = arg;
    const kvb_backend_ctx *c = j->c;
    const int g = c->shape.n_heads / c->shape.n_kv_heads, hd = c->shape.head_dim;
    const int h = item / j->parts, p = item % j->parts, n = len_of(c, j->items->seq)[j->layer];
    const int nb = (n + c->bt - 1) / c->bt, b0 = nb * p / j->parts, b1 = nb * (p + 1) / j->parts;
    const int t1 = b1 * c->bt < n ? b1 * c->bt : n;
    pq_head(c, &c->scr[thread], table_of(c, j->items->seq) + b0, t1 - b0 * c->bt, j->layer, h,
            j->items->q + (size_t)h * g * hd, c->part_out + (size_t)item * g * hd,
            c->part_ml + (size_t)item * g * 2);
}

/* Every (item, KV head) is one piece of work, so a batch spreads over the
 * threads as one attend does; the pool wakes once the codes read pass 256 KiB,
 * the other caches' threshold. An item split into parts then runs alone, its
 * parts merged as Flash-Decoding does. */
static kvb_status pq_attend_batch(kvb_backend_ctx *c, int layer, const kvb_attend_item *items,
                                  int n)
{
    const int nkv = c->shape.n_kv_heads, g = c->shape.n_heads / nkv, hd = c->shape.head_dim;
    size_t tokens = 0;
    for (int i = 0; i < n; i++) tokens += (size_t)len_of(c, items[i].seq)[layer];
    pq_job job = {c, layer, items, 1};
    kvb_pool *pool = tokens * token_bytes(c) < 256 * 1024 ? NULL : c->pool;
    kvb_pool_run(pool, n * nkv, pq_item, &job);
    for (int i = 0; i < n; i++) {
        pq_job one = {c, layer, items + i, parts_of(c, len_of(c, items[i].seq)[layer])};
        if (one.parts == 1) continue;
        kvb_pool_run(c->pool, nkv * one.parts, pq_part, &one);
        for (int h = 0; h < nkv; h++)
            kvb_attend_merge(one.parts, g, hd, c->part_out + (size_t)h * one.parts * g * hd,
                             c->part_ml + (size_t)h * one.parts * g * 2,
                             items[i].out + (size_t)h * g * hd);
    }
    return KVB_STATUS_OK;
}

static kvb_status pq_attend(kvb_backend_ctx *c, int seq, int layer, const float *q, float *out)
{
    kvb_attend_item it = {seq, q, out};
    return pq_attend_batch(c, layer, &it, 1);
}

static kvb_memory pq_seq_memory(const kvb_backend_ctx *c, int seq)
{
    kvb_memory m = {(size_t)c->n_table[seq] * block_bytes(c), 0, 0, 0};
    for (int l = 0; l < c->shape.n_layers; l++) m.used += (size_t)len_of(c, seq)[l];
    m.used *= token_bytes(c);
    m.metadata = ((size_t)c->row_len + 1 + (size_t)c->shape.n_layers) * sizeof(int);
    m.capacity = m.reserved;
    return m;
}

static kvb_memory pq_memory(const kvb_backend_ctx *c)
{
    const size_t g = (size_t)(c->shape.n_heads / c->shape.n_kv_heads), hd = c->shape.head_dim;
    const size_t L = (size_t)c->shape.n_layers, S = (size_t)c->opt.max_seqs;
    kvb_memory m = {(c->n_blocks - c->n_free) * block_bytes(c), c->filled * token_bytes(c),
                    sizeof *c, c->n_blocks * block_bytes(c)};
    /* refs, free ids and fills per block; tables, counts and lengths per
     * sequence; attend's scratch and gather rows per thread; append's row of
     * codes */
    size_t floats = g * (size_t)c->shape.max_seq + kvb_qkernels_scratch_floats((int)g, (int)hd) + g;
    size_t gather = PQ_GATHER * (c->row_bytes[PQ_PLANE_KC] + c->row_bytes[PQ_PLANE_KW]);
    size_t parts = c->max_parts > 1 ? (size_t)c->shape.n_kv_heads * c->max_parts * g * (hd + 2) : 0;
    m.metadata += c->n_blocks * (2 + L) * sizeof(int) +
                  S * ((size_t)c->row_len + 1 + L) * sizeof(int) +
                  (size_t)c->threads * (floats * sizeof(float) + gather) + hd +
                  parts * sizeof(float) +
                  L * PQ_PLANE_COUNT * sizeof *c->planes;
    return m;
}

static int pq_length(const kvb_backend_ctx *c, int seq, int layer)
{
    return len_of(c, seq)[layer];
}

static kvb_status pq_seq_clear(kvb_backend_ctx *c, int seq)
{
    while (c->n_table[seq] > 0) drop_block(c, table_of(c, seq)[--c->n_table[seq]]);
    memset(len_of(c, seq), 0, (size_t)c->shape.n_layers * sizeof(int));
    return KVB_STATUS_OK;
}

/* Shares every block: the child's table is the parent's, each count one higher. */
static kvb_status pq_seq_fork(kvb_backend_ctx *c, int parent, int child)
{
    const int *from = table_of(c, parent);
    for (int i = 0; i < c->n_table[parent]; i++) c->refs[from[i]]++;
    memcpy(table_of(c, child), from, (size_t)c->n_table[parent] * sizeof(int));
    memcpy(len_of(c, child), len_of(c, parent), (size_t)c->shape.n_layers * sizeof(int));
    c->n_table[child] = c->n_table[parent];
    return KVB_STATUS_OK;
}

/* Through the coefficients the fused kernels use: the values attend sees. */
static kvb_status pq_read_kv(const kvb_backend_ctx *c, int seq, int layer, int kv_head,
                             int token, float *k, float *v)
{
    int b = table_of(c, seq)[token / c->bt];
    kvb_qrows kr = block_rows(c, 0, layer, kv_head, b, c->bt);
    kvb_qrows vr = block_rows(c, 1, layer, kv_head, b, c->bt);
    kvb_qrow_dequant(&kr, token % c->bt, k);
    kvb_qrow_dequant(&vr, token % c->bt, v);
    return KVB_STATUS_OK;
}

/* A save: the head, then each block of the table, per layer its four planes'
 * rows per KV head (codes and words as stored): [block][layer][plane][kv_head]
 * [block_tokens] rows. */
static size_t save_bytes(const kvb_backend_ctx *c, int n_blocks)
{
    return sizeof(kvb_save_head) + (size_t)n_blocks * block_bytes(c);
}

/* Block b's rows of every layer, plane and head out to dst (save), or in
 * from src (load, dst NULL); returns the bytes moved. */
static size_t block_io(const kvb_backend_ctx *c, int b, char *dst, const char *src)
{
    size_t off = 0;
    for (int l = 0; l < c->shape.n_layers; l++)
        for (int pl = 0; pl < PQ_PLANE_COUNT; pl++)
            for (int h = 0; h < c->shape.n_kv_heads; h++) {
                const size_t n = (size_t)c->bt * c->row_bytes[pl];
                void *at = row_at(c, l, pl, h, b, 0);
                if (dst)
                    memcpy(dst + off, at, n);
                else
                    memcpy(at, src + off, n);
                off += n;
            }
    return off;
}

/* The layout unit a save names: block tokens and group together. */
static int save_unit(const kvb_backend_ctx *c) { return c->bt * 1024 + c->group; }

static kvb_status pq_seq_save(const kvb_backend_ctx *c, int seq, void *dst, size_t *bytes)
{
    if (dst) {
        kvb_save_head h = kvb_save_head_of("paged-quant", &c->shape, c->opt.dtype, save_unit(c),
                                           len_of(c, seq)[0]);
        char *p = (char *)dst + sizeof h;
        memcpy(dst, &h, sizeof h);
        for (int i = 0; i < c->n_table[seq]; i++) p += block_io(c, table_of(c, seq)[i], p, NULL);
    }
    *bytes = save_bytes(c, c->n_table[seq]);
    return KVB_STATUS_OK;
}

static kvb_status pq_seq_load(kvb_backend_ctx *c, int seq, const void *src, size_t bytes)
{
    const int n = kvb_save_head_tokens(src, bytes, "paged-quant", &c->shape, c->opt.dtype,
                                       save_unit(c));
    const int nb = n < 0 ? 0 : (n + c->bt - 1) / c->bt;
    if (n < 0 || bytes != save_bytes(c, nb)) return KVB_STATUS_FORMAT;
    if ((size_t)nb > c->n_free) return KVB_STATUS_FULL;
    const char *p = (const char *)src + sizeof(kvb_save_head);
    int *table = table_of(c, seq);
    for (int i = 0; i < nb; i++) {
        const int b = take_block(c), held = n - i * c->bt < c->bt ? n - i * c->bt : c->bt;
        table[c->n_table[seq]++] = b;
        p += block_io(c, b, NULL, p);
        for (int l = 0; l < c->shape.n_layers; l++) {
            c->fill[(size_t)l * c->n_blocks + (size_t)b] = held;
            c->filled += (size_t)held;
        }
    }
    for (int l = 0; l < c->shape.n_layers; l++) len_of(c, seq)[l] = n;
    return KVB_STATUS_OK;
}

const kvb_backend kvb_backend_paged_quant = {
    .version = KVB_BACKEND_VERSION,
    .name = "paged-quant",
    .description = "paged pool of q8, q4, q4_1, q2 blocks (codes per token); fork shares "
                   "(COW); fused attend",
    .flags = KVB_BACKEND_PAGED | KVB_BACKEND_QUANT,
    .supports = pq_supports,
    .create = pq_create,
    .destroy = pq_destroy,
    .append = pq_append,
    .attend = pq_attend,
    .memory = pq_memory,
    .length = pq_length,
    .seq_clear = pq_seq_clear,
    .seq_fork = pq_seq_fork,
    .seq_memory = pq_seq_memory,
    .read_kv = pq_read_kv,
    .attend_batch = pq_attend_batch,
    .seq_save = pq_seq_save,
    .seq_load = pq_seq_load,
};
