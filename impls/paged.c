/* paged.c: a block pool and per-sequence block tables, as in vLLM's PagedAttention.
 *
 * Tokens live in fixed-size blocks of block_tokens tokens taken from one pool
 * per cache, on demand; each sequence keeps a table of its blocks in order. A
 * block id names the same slot in every layer's pool, so one table serves all
 * layers and a block holds block_tokens tokens of every layer.
 *
 * Layout of one layer's K (or V) pool, three ways (each a registry entry, so
 * the choice is measured with `kvbench attend`, not assumed):
 *   paged             [kv_head][block][block_tokens][head_dim]   head planes
 *   paged-blockmajor  [block][kv_head][block_tokens][head_dim]   vLLM's order
 *   paged-tokmajor    [block][block_tokens][kv_head][head_dim]   a token's heads together
 * attend works one KV head at a time. Head planes give it a contiguous run of
 * block_tokens x head_dim values per block, and blocks that are adjacent in the
 * pool are adjacent in memory too, so a sequence whose blocks were taken in
 * order streams exactly like the contiguous store, and a fragmented one still
 * streams whole blocks. Block-major also reads whole runs per block but jumps
 * over the other heads' runs between blocks (a page-crossing stride the
 * prefetcher does not follow); token-major makes every row a stride. The three
 * measured against the contiguous store: docs/paged.md.
 * attend_batch walks many sequences' block tables in one pass, as vLLM's paged
 * kernel does: every item's (KV head, part of its table) units go to the pool
 * in one run. attend is the batch of one, so each item's output is exactly its
 * single attend's.
 *
 * Sharing: seq_fork copies the parent's table and raises each block's
 * reference count. The first append into a shared block (necessarily the
 * partly filled last one) copies it to a fresh block for the writer: copy on
 * write. A block goes back to the pool when its count reaches zero.
 * Exhaustion: an append that needs a block when none is free returns
 * KVB_STATUS_FULL before changing anything.
 * Accounting: reserved = blocks held x block bytes (a shared block once);
 * used = tokens written into held blocks x bytes per token (shared once);
 * capacity = the whole pool; metadata = tables, counts and lengths. */
#include "kvb_backend.h"
#include "kernels/kernels.h"
#include "kernels/pool.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { KVB_PAGED_DEFAULT_BLOCK = 16, KVB_PAGED_MAX_BLOCK = 256, PAGED_MIN_PART = 256 };

typedef struct paged_seq {
    int *table;               /* [n_table] block ids, in token order */
    int  n_table, cap_table;
    int *len;                 /* [n_layers] tokens appended per layer */
} paged_seq;

/* One unit of an attend's work: (item, KV head, part of its block table). */
typedef struct paged_unit {
    const paged_seq *s;
    const float     *q;       /* [g][head_dim]: the head's group of the item's query */
    float           *dst;     /* [g][head_dim]: the item's out, or its part's slot */
    float           *ml;      /* [g][2]: the part's max and sum; NULL when unsplit */
    int              h, b0, b1;   /* blocks b0..b1-1 of the table */
} paged_unit;

typedef enum paged_layout {
    PAGED_LAYOUT_HEAD_PLANES = 0,  /* [kv_head][block][token][head_dim] */
    PAGED_LAYOUT_BLOCK_MAJOR,      /* [block][kv_head][token][head_dim] */
    PAGED_LAYOUT_TOKEN_MAJOR,      /* [block][token][kv_head][head_dim] */
} paged_layout;

struct kvb_backend_ctx {
    kvb_shape    shape;
    kvb_options  opt;
    paged_layout layout;
    size_t      es;           /* bytes per stored element */
    int         bt;           /* tokens per block */
    size_t      n_blocks;     /* pool size */
    size_t      block_elems;  /* elements of one block in one layer's K (or V) pool */
    void      **k_pool;       /* [n_layers] -> n_blocks x block_elems, in the layout */
    void      **v_pool;
    int        *refs;         /* [n_blocks] owners of each block; 0 = free */
    int       **fill;         /* [n_layers][n_blocks] tokens written into each block */
    int        *free_ids;     /* [n_blocks] stack of free block ids */
    size_t      n_free;
    paged_seq  *seqs;         /* [max_seqs] */
    kvb_kv_run *runs;         /* attend's per-block runs, [threads][max blocks of one sequence] */
    float      *scratch;      /* attend's scores and row buffer, [threads][for max_seq tokens] */
    size_t      scratch_per;
    int         threads;
    kvb_pool   *pool;         /* NULL when single-threaded; attend splits over KV heads */
    const kvb_attend_kernel *attend;  /* the loops opt.kernel names, chosen at create */
    int         max_parts;    /* context parts per KV head when heads are fewer than threads */
    /* a batch's work units, and its split tables' outputs; sized at create
     * for one attend, grown by a larger batch */
    paged_unit *units;        /* [cap_units] */
    size_t      cap_units, cap_parts;
    float      *part_out;     /* [cap_parts][g][head_dim]: the parts' outputs */
    float      *part_ml;      /* [cap_parts][g][2]: their max and sum */
};

static size_t block_bytes(const kvb_backend_ctx *c)   /* one block, every layer, K and V */
{
    return 2 * (size_t)c->shape.n_layers * c->block_elems * c->es;
}

static size_t token_bytes(const kvb_backend_ctx *c)   /* one token of one layer, K and V */
{
    return 2 * (size_t)c->shape.n_kv_heads * c->shape.head_dim * c->es;
}

static int max_blocks_per_seq(const kvb_backend_ctx *c)
{
    return (c->shape.max_seq + c->bt - 1) / c->bt;
}

static kvb_status paged_supports(const kvb_shape *s, const kvb_options *o, char *why, size_t n)
{
    (void)s;
    if (o->alloc != KVB_ALLOC_GROW) {
        snprintf(why, n, "mode %s does not apply to a paged cache: its pool is sized by "
                 "--pool-mb or --pool-blocks, and blocks are taken on demand",
                 kvb_alloc_name(o->alloc));
        return KVB_STATUS_UNSUPPORTED;
    }
    if (o->block_tokens < 0 || o->block_tokens > KVB_PAGED_MAX_BLOCK) {
        snprintf(why, n, "block size %d tokens: allowed are 1 to %d", o->block_tokens,
                 KVB_PAGED_MAX_BLOCK);
        return KVB_STATUS_INVALID_ARG;
    }
    return KVB_STATUS_OK;
}

static void paged_destroy(kvb_backend_ctx *c)
{
    if (!c) return;
    for (int l = 0; l < c->shape.n_layers; l++) {
        if (c->k_pool) kvb_kv_free(c->k_pool[l], c->n_blocks * c->block_elems * c->es);
        if (c->v_pool) kvb_kv_free(c->v_pool[l], c->n_blocks * c->block_elems * c->es);
        if (c->fill) free(c->fill[l]);
    }
    for (int q = 0; c->seqs && q < c->opt.max_seqs; q++) {
        free(c->seqs[q].table);
        free(c->seqs[q].len);
    }
    free(c->k_pool); free(c->v_pool); free(c->fill); free(c->refs); free(c->free_ids);
    free(c->seqs); free(c->runs); free(c->scratch); free(c->part_out); free(c->part_ml);
    free(c->units);
    kvb_pool_destroy(c->pool);
    free(c);
}

/* Room for n_units units and n_parts split parts; create sizes both for one
 * attend, so only a batch ever grows them. */
static kvb_status batch_reserve(kvb_backend_ctx *c, size_t n_units, size_t n_parts)
{
    const size_t g = (size_t)c->shape.n_heads / c->shape.n_kv_heads;
    if (n_units > c->cap_units) {
        paged_unit *u = realloc(c->units, n_units * sizeof *u);
        if (!u) return KVB_STATUS_NO_MEMORY;
        c->units = u;
        c->cap_units = n_units;
    }
    if (n_parts > c->cap_parts) {
        float *po = realloc(c->part_out, n_parts * g * c->shape.head_dim * sizeof *po);
        if (po) c->part_out = po;
        float *pm = realloc(c->part_ml, n_parts * g * 2 * sizeof *pm);
        if (pm) c->part_ml = pm;
        if (!po || !pm) return KVB_STATUS_NO_MEMORY;
        c->cap_parts = n_parts;
    }
    return KVB_STATUS_OK;
}

static kvb_status paged_create_layout(kvb_backend_ctx **out, const kvb_shape *shape,
                                      const kvb_options *opt, char *msg, size_t msg_len,
                                      paged_layout layout)
{
    *out = NULL;
    kvb_backend_ctx *c = calloc(1, sizeof *c);
    if (!c) return KVB_STATUS_NO_MEMORY;
    c->shape = *shape;
    c->opt = *opt;
    c->layout = layout;
    c->es = kvb_dtype_size(opt->dtype);
    c->bt = opt->block_tokens ? opt->block_tokens : KVB_PAGED_DEFAULT_BLOCK;
    c->block_elems = (size_t)shape->n_kv_heads * c->bt * shape->head_dim;
    if (opt->pool_blocks) c->n_blocks = opt->pool_blocks;
    else if (opt->pool_bytes) c->n_blocks = opt->pool_bytes / block_bytes(c);
    else c->n_blocks = (size_t)opt->max_seqs * max_blocks_per_seq(c);
    if (c->n_blocks < 1 || c->n_blocks > (size_t)1 << 30) {
        snprintf(msg, msg_len, "pool of %zu blocks (%zu bytes each, %d tokens): must hold 1 to "
                 "2^30 blocks", c->n_blocks, block_bytes(c), c->bt);
        paged_destroy(c);
        return KVB_STATUS_INVALID_ARG;
    }
    int L = shape->n_layers;
    c->k_pool = calloc((size_t)L, sizeof *c->k_pool);
    c->v_pool = calloc((size_t)L, sizeof *c->v_pool);
    c->fill = calloc((size_t)L, sizeof *c->fill);
    c->refs = calloc(c->n_blocks, sizeof *c->refs);
    c->free_ids = malloc(c->n_blocks * sizeof *c->free_ids);
    c->seqs = calloc((size_t)opt->max_seqs, sizeof *c->seqs);
    c->threads = opt->threads > 1 ? opt->threads : 1;
    c->attend = kvb_attend_kernel_find(opt->kernel, shape->head_dim, NULL, 0);   /* supported */
    c->opt.kernel = c->attend->name;
    c->runs = malloc((size_t)c->threads * max_blocks_per_seq(c) * sizeof *c->runs);
    int g = shape->n_heads / shape->n_kv_heads;
    c->scratch_per = kvb_attend_scratch_floats(g, shape->max_seq, shape->head_dim);
    c->scratch = malloc((size_t)c->threads * c->scratch_per * sizeof(float));
    /* as the contiguous cache: parts of at least PAGED_MIN_PART tokens when KV
     * heads are fewer than threads */
    int want = (c->threads + shape->n_kv_heads - 1) / shape->n_kv_heads;
    int room = shape->max_seq / PAGED_MIN_PART;
    int split = c->threads > 1 && shape->n_kv_heads < c->threads;
    c->max_parts = split ? (want < room ? want : room) : 1;
    if (c->max_parts < 1) c->max_parts = 1;
    size_t units = (size_t)shape->n_kv_heads * (size_t)c->max_parts;
    int ok = c->k_pool && c->v_pool && c->fill && c->refs && c->free_ids && c->seqs && c->runs &&
             c->scratch &&
             batch_reserve(c, units, c->max_parts > 1 ? units : 0) == KVB_STATUS_OK;
    if (ok && c->threads > 1)
        ok = kvb_pool_create(&c->pool, c->threads, opt->thread_start, opt->thread_start_arg) ==
             KVB_STATUS_OK;
    for (int l = 0; ok && l < L; l++) {
        /* The pool is written once here, front to back, as a serving system
         * fills its pool at start-up: the OS then backs each head's plane
         * with pages in address order. Left to first touch by appends, the
         * planes' pages would interleave (one token touches every head's
         * plane) and attend would read them out of order (docs/paged.md). */
        size_t bytes = c->n_blocks * c->block_elems * c->es;
        c->k_pool[l] = kvb_kv_alloc(bytes);
        c->v_pool[l] = kvb_kv_alloc(bytes);
        if (c->k_pool[l]) memset(c->k_pool[l], 0, bytes);
        if (c->v_pool[l]) memset(c->v_pool[l], 0, bytes);
        c->fill[l] = calloc(c->n_blocks, sizeof **c->fill);
        ok = c->k_pool[l] && c->v_pool[l] && c->fill[l];
    }
    for (int q = 0; ok && q < opt->max_seqs; q++)
        ok = (c->seqs[q].len = calloc((size_t)L, sizeof *c->seqs[q].len)) != NULL;
    if (!ok) {
        snprintf(msg, msg_len, "cannot allocate a pool of %zu blocks (%zu bytes)", c->n_blocks,
                 c->n_blocks * block_bytes(c));
        paged_destroy(c);
        return KVB_STATUS_NO_MEMORY;
    }
    /* pop order hands out low ids first, so a fresh pool fills front to back */
    for (size_t i = 0; i < c->n_blocks; i++) c->free_ids[i] = (int)(c->n_blocks - 1 - i);
    c->n_free = c->n_blocks;
    *out = c;
    return KVB_STATUS_OK;
}

static kvb_status paged_create(kvb_backend_ctx **out, const kvb_shape *s, const kvb_options *o,
                               char *msg, size_t n)
{
    return paged_create_layout(out, s, o, msg, n, PAGED_LAYOUT_HEAD_PLANES);
}

static kvb_status paged_bm_create(kvb_backend_ctx **out, const kvb_shape *s,
                                  const kvb_options *o, char *msg, size_t n)
{
    return paged_create_layout(out, s, o, msg, n, PAGED_LAYOUT_BLOCK_MAJOR);
}

static kvb_status paged_tm_create(kvb_backend_ctx **out, const kvb_shape *s,
                                  const kvb_options *o, char *msg, size_t n)
{
    return paged_create_layout(out, s, o, msg, n, PAGED_LAYOUT_TOKEN_MAJOR);
}

/* Address of (block, layer, kv_head, slot) in a pool, and the row stride. */
static char *slot_at(const kvb_backend_ctx *c, void *const *pool, int block, int layer, int h,
                     int slot)
{
    const size_t hd = (size_t)c->shape.head_dim, run = (size_t)c->bt * hd;
    size_t e;
    switch (c->layout) {
    case PAGED_LAYOUT_HEAD_PLANES:
        e = ((size_t)h * c->n_blocks + (size_t)block) * run + (size_t)slot * hd;
        break;
    case PAGED_LAYOUT_BLOCK_MAJOR:
        e = (size_t)block * c->block_elems + (size_t)h * run + (size_t)slot * hd;
        break;
    default:
        e = (size_t)block * c->block_elems + ((size_t)slot * c->shape.n_kv_heads + (size_t)h) * hd;
    }
    return (char *)pool[layer] + e * c->es;
}

static size_t row_stride(const kvb_backend_ctx *c)
{
    return c->layout == PAGED_LAYOUT_TOKEN_MAJOR ? (size_t)c->shape.n_kv_heads * c->shape.head_dim
                                                 : (size_t)c->shape.head_dim;
}

/* Copies one block of one layer; its values are one run per head, or one
 * piece in the token-major layout. */
static void block_copy(const kvb_backend_ctx *c, void *const *pool, int dst, int src, int layer)
{
    if (c->layout == PAGED_LAYOUT_TOKEN_MAJOR) {
        memcpy(slot_at(c, pool, dst, layer, 0, 0), slot_at(c, pool, src, layer, 0, 0),
               c->block_elems * c->es);
        return;
    }
    for (int h = 0; h < c->shape.n_kv_heads; h++)
        memcpy(slot_at(c, pool, dst, layer, h, 0), slot_at(c, pool, src, layer, h, 0),
               (size_t)c->bt * c->shape.head_dim * c->es);
}

static void block_release(kvb_backend_ctx *c, int b)
{
    if (--c->refs[b] > 0) return;
    for (int l = 0; l < c->shape.n_layers; l++) c->fill[l][b] = 0;
    c->free_ids[c->n_free++] = b;
}

static int block_take(kvb_backend_ctx *c)
{
    int b = c->free_ids[--c->n_free];
    c->refs[b] = 1;
    return b;
}

static kvb_status table_reserve(paged_seq *s, int n)
{
    if (n <= s->cap_table) return KVB_STATUS_OK;
    int cap = s->cap_table ? s->cap_table : 4;
    while (cap < n) cap *= 2;
    int *t = realloc(s->table, (size_t)cap * sizeof *t);
    if (!t) return KVB_STATUS_NO_MEMORY;
    s->table = t;
    s->cap_table = cap;
    return KVB_STATUS_OK;
}

static kvb_status paged_append(kvb_backend_ctx *c, int seq, int layer, const float *k,
                               const float *v)
{
    paged_seq *s = &c->seqs[seq];
    int pos = s->len[layer];
    if (pos >= c->shape.max_seq) return KVB_STATUS_FULL;
    int bi = pos / c->bt, slot = pos % c->bt;
    if (bi == s->n_table) {                          /* first token of a new block */
        if (c->n_free == 0) return KVB_STATUS_FULL;
        if (table_reserve(s, bi + 1) != KVB_STATUS_OK) return KVB_STATUS_NO_MEMORY;
        s->table[s->n_table++] = block_take(c);
    } else if (c->refs[s->table[bi]] > 1) {          /* shared: copy on write */
        if (c->n_free == 0) return KVB_STATUS_FULL;
        int old = s->table[bi], nb = block_take(c);
        for (int l = 0; l < c->shape.n_layers; l++) {
            block_copy(c, c->k_pool, nb, old, l);
            block_copy(c, c->v_pool, nb, old, l);
            /* the copy holds what this sequence owns of the old block */
            int mine = s->len[l] - bi * c->bt;
            c->fill[l][nb] = mine < 0 ? 0 : mine > c->bt ? c->bt : mine;
        }
        block_release(c, old);
        s->table[bi] = nb;
    }
    int b = s->table[bi], hd = c->shape.head_dim;
    for (int h = 0; h < c->shape.n_kv_heads; h++) {
        char *kd = slot_at(c, c->k_pool, b, layer, h, slot);
        char *vd = slot_at(c, c->v_pool, b, layer, h, slot);
        kvb_row_from_f32(c->opt.dtype, k + (size_t)h * hd, kd, hd);
        kvb_row_from_f32(c->opt.dtype, v + (size_t)h * hd, vd, hd);
    }
    if (c->fill[layer][b] < slot + 1) c->fill[layer][b] = slot + 1;
    s->len[layer] = pos + 1;
    return KVB_STATUS_OK;
}

typedef struct paged_batch {
    kvb_backend_ctx *c; int layer; const paged_unit *units;
} paged_batch;

/* Unit i (one item's KV head h, blocks b0..b1-1) as runs, then attention over
 * them, with thread-private runs and scratch. */
static void paged_unit_run(void *arg, int i, int thread)
{
    const paged_batch *j = arg;
    kvb_backend_ctx *c = j->c;
    const paged_unit *u = &j->units[i];
    const int n = u->s->len[j->layer], hd = c->shape.head_dim;
    const int g = c->shape.n_heads / c->shape.n_kv_heads, nb = (n + c->bt - 1) / c->bt;
    kvb_kv_run *runs = c->runs + (size_t)thread * max_blocks_per_seq(c);
    for (int b = u->b0; b < u->b1; b++) {
        runs[b - u->b0].k = slot_at(c, c->k_pool, u->s->table[b], j->layer, u->h, 0);
        runs[b - u->b0].v = slot_at(c, c->v_pool, u->s->table[b], j->layer, u->h, 0);
        runs[b - u->b0].n = b + 1 < nb ? c->bt : n - b * c->bt;
    }
    c->attend->run(c->opt.dtype, runs, u->b1 - u->b0, row_stride(c), hd, g, u->q, u->dst,
                   c->scratch + (size_t)thread * c->scratch_per, u->ml);
}

/* Parts of a sequence's block table: one, or (fewer KV heads than threads)
 * one per PAGED_MIN_PART tokens up to max_parts, at least one block each. */
static int parts_of(const kvb_backend_ctx *c, int n)
{
    const int nb = (n + c->bt - 1) / c->bt;
    int parts = n / PAGED_MIN_PART < c->max_parts ? n / PAGED_MIN_PART : c->max_parts;
    parts = parts < nb ? parts : nb;
    return parts > 1 ? parts : 1;
}

/* Every item's (KV head, part) units in one kvb_pool_run, over KV heads (and
 * parts) of all items together once the batch's K/V pass 256 KiB (as the
 * contiguous cache), then the split ones merged per item and head in the
 * order a single attend merges them: attend is this batch of one. */
static kvb_status paged_attend_batch(kvb_backend_ctx *c, int layer, const kvb_attend_item *items,
                                     int n)
{
    const int nkv = c->shape.n_kv_heads, hd = c->shape.head_dim, g = c->shape.n_heads / nkv;
    size_t n_units = 0, n_parts = 0, bytes = 0;
    for (int i = 0; i < n; i++) {
        const int len = c->seqs[items[i].seq].len[layer], parts = parts_of(c, len);
        n_units += (size_t)nkv * parts;
        n_parts += parts > 1 ? (size_t)nkv * parts : 0;
        bytes += 2 * (size_t)len * nkv * hd * c->es;
    }
    if (n_units > (size_t)INT_MAX) return KVB_STATUS_INVALID_ARG;   /* kvb_pool_run's count */
    kvb_status st = batch_reserve(c, n_units, n_parts);
    if (st != KVB_STATUS_OK) return st;
    size_t u = 0, part = 0;
    for (int i = 0; i < n; i++) {
        const paged_seq *s = &c->seqs[items[i].seq];
        const int len = s->len[layer], nb = (len + c->bt - 1) / c->bt, parts = parts_of(c, len);
        for (int h = 0; h < nkv; h++)
            for (int p = 0; p < parts; p++, u++) {
                const size_t qo = (size_t)h * g * hd, at = part + (size_t)h * parts + p;
                c->units[u] = (paged_unit){s, items[i].q + qo, items[i].out + qo, NULL, h,
                                           (int)((long long)nb * p / parts),
                                           (int)((long long)nb * (p + 1) / parts)};
                if (parts > 1) {
                    c->units[u].dst = c->part_out + at * g * hd;
                    c->units[u].ml = c->part_ml + at * g * 2;
                }
            }
        part += parts > 1 ? (size_t)nkv * parts : 0;
    }
    paged_batch job = {c, layer, c->units};
    kvb_pool_run(bytes < 256 * 1024 ? NULL : c->pool, (int)n_units, paged_unit_run, &job);
#ifdef KVB_PLANT_SLOWDOWN_PCT
    /* A deliberate slowdown, built only by `make regress PLANT=pct` to show that
     * the regression gate catches one: the first pct% of the units attended
     * again (the output is the same; the work grows by that fraction). */
    size_t again = (n_units * KVB_PLANT_SLOWDOWN_PCT + 99) / 100;
    for (size_t i = 0; i < again && i < n_units; i++) paged_unit_run(&job, (int)i, 0);
#endif
    part = 0;
    for (int i = 0; i < n; i++) {
        const int parts = parts_of(c, c->seqs[items[i].seq].len[layer]);
        if (parts == 1) continue;
        for (int h = 0; h < nkv; h++, part += parts)
            kvb_attend_merge(parts, g, hd, c->part_out + part * g * hd,
                             c->part_ml + part * g * 2, items[i].out + (size_t)h * g * hd);
    }
    return KVB_STATUS_OK;
}

static kvb_status paged_attend(kvb_backend_ctx *c, int seq, int layer, const float *q, float *out)
{
    kvb_attend_item one = {seq, q, out};
    return paged_attend_batch(c, layer, &one, 1);
}

static kvb_memory paged_seq_memory(const kvb_backend_ctx *c, int seq)
{
    kvb_memory m = {0, 0, 0, 0};
    const paged_seq *s = &c->seqs[seq];
    m.reserved = (size_t)s->n_table * block_bytes(c);
    for (int l = 0; l < c->shape.n_layers; l++) m.used += (size_t)s->len[l] * token_bytes(c);
    m.metadata = sizeof *s + (size_t)s->cap_table * sizeof *s->table +
                 (size_t)c->shape.n_layers * sizeof *s->len;
    m.capacity = m.reserved;
    return m;
}

static kvb_memory paged_memory(const kvb_backend_ctx *c)
{
    kvb_memory m = {0, 0, sizeof *c, c->n_blocks * block_bytes(c)};
    m.reserved = (c->n_blocks - c->n_free) * block_bytes(c);
    for (int l = 0; l < c->shape.n_layers; l++)
        for (size_t b = 0; b < c->n_blocks; b++) m.used += (size_t)c->fill[l][b] * token_bytes(c);
    m.metadata += c->n_blocks * (sizeof *c->refs + sizeof *c->free_ids +
                                 (size_t)c->shape.n_layers * sizeof **c->fill);
    for (int q = 0; q < c->opt.max_seqs; q++) m.metadata += paged_seq_memory(c, q).metadata;
    return m;
}

static int paged_length(const kvb_backend_ctx *c, int seq, int layer)
{
    return c->seqs[seq].len[layer];
}

static kvb_status paged_seq_clear(kvb_backend_ctx *c, int seq)
{
    paged_seq *s = &c->seqs[seq];
    for (int i = 0; i < s->n_table; i++) block_release(c, s->table[i]);
    s->n_table = 0;
    memset(s->len, 0, (size_t)c->shape.n_layers * sizeof *s->len);
    return KVB_STATUS_OK;
}

static kvb_status paged_seq_fork(kvb_backend_ctx *c, int parent, int child)
{
    paged_seq *p = &c->seqs[parent], *d = &c->seqs[child];
    if (table_reserve(d, p->n_table) != KVB_STATUS_OK) return KVB_STATUS_NO_MEMORY;
    for (int i = 0; i < p->n_table; i++) {
        d->table[i] = p->table[i];
        c->refs[p->table[i]]++;
    }
    d->n_table = p->n_table;
    memcpy(d->len, p->len, (size_t)c->shape.n_layers * sizeof *d->len);
    return KVB_STATUS_OK;
}

static kvb_status paged_read_kv(const kvb_backend_ctx *c, int seq, int layer, int kv_head,
                                int token, float *k, float *v)
{
    int b = c->seqs[seq].table[token / c->bt], slot = token % c->bt;
    const int hd = c->shape.head_dim;
    kvb_row_to_f32(c->opt.dtype, slot_at(c, c->k_pool, b, layer, kv_head, slot), k, hd);
    kvb_row_to_f32(c->opt.dtype, slot_at(c, c->v_pool, b, layer, kv_head, slot), v, hd);
    return KVB_STATUS_OK;
}

/* A save: the head, then each block of the table, per layer its K then its V
 * (a run per KV head, or the token-major layout's one piece): whole blocks in
 * the storage type, [block][layer][K|V][block_elems]. */
static size_t save_bytes(const kvb_backend_ctx *c, int n_blocks)
{
    return sizeof(kvb_save_head) + (size_t)n_blocks * block_bytes(c);
}

/* Block b of layer l of one pool out to p (out) or in from p; p advanced. */
static char *block_io(const kvb_backend_ctx *c, void *const *pool, int b, int l, char *p, int out)
{
    const int pieces = c->layout == PAGED_LAYOUT_TOKEN_MAJOR ? 1 : c->shape.n_kv_heads;
    const size_t piece = c->block_elems / (size_t)pieces * c->es;
    for (int h = 0; h < pieces; h++, p += piece) {
        char *at = slot_at(c, pool, b, l, h, 0);
        memcpy(out ? p : at, out ? at : p, piece);
    }
    return p;
}

static kvb_status paged_seq_save(const kvb_backend_ctx *c, int seq, void *dst, size_t *bytes)
{
    const paged_seq *s = &c->seqs[seq];
    if (dst) {
        kvb_save_head h = kvb_save_head_of("paged", &c->shape, c->opt.dtype,
                                           c->bt * 4 + (int)c->layout, s->len[0]);
        char *p = (char *)dst + sizeof h;
        memcpy(dst, &h, sizeof h);
        for (int i = 0; i < s->n_table; i++)
            for (int l = 0; l < c->shape.n_layers; l++) {
                p = block_io(c, c->k_pool, s->table[i], l, p, 1);
                p = block_io(c, c->v_pool, s->table[i], l, p, 1);
            }
    }
    *bytes = save_bytes(c, s->n_table);
    return KVB_STATUS_OK;
}

static kvb_status paged_seq_load(kvb_backend_ctx *c, int seq, const void *src, size_t bytes)
{
    paged_seq *s = &c->seqs[seq];
    const int n = kvb_save_head_tokens(src, bytes, "paged", &c->shape, c->opt.dtype,
                                       c->bt * 4 + (int)c->layout);
    const int nb = n < 0 ? 0 : (n + c->bt - 1) / c->bt;
    if (n < 0 || bytes != save_bytes(c, nb)) return KVB_STATUS_FORMAT;
    if ((size_t)nb > c->n_free) return KVB_STATUS_FULL;
    if (table_reserve(s, nb) != KVB_STATUS_OK) return KVB_STATUS_NO_MEMORY;
    char *p = (char *)src + sizeof(kvb_save_head);
    for (int i = 0; i < nb; i++) {
        const int b = block_take(c), held = n - i * c->bt < c->bt ? n - i * c->bt : c->bt;
        s->table[s->n_table++] = b;
        for (int l = 0; l < c->shape.n_layers; l++) {
            p = block_io(c, c->k_pool, b, l, p, 0);
            p = block_io(c, c->v_pool, b, l, p, 0);
            c->fill[l][b] = held;
        }
    }
    for (int l = 0; l < c->shape.n_layers; l++) s->len[l] = n;
    return KVB_STATUS_OK;
}

/* The two layouts share every slot but create, which picks the layout. */
#define KVB_PAGED_SLOTS                                                   \
    .version = KVB_BACKEND_VERSION,                                     \
    .flags = KVB_BACKEND_PAGED, .supports = paged_supports,             \
    .destroy = paged_destroy, .append = paged_append,                   \
    .attend = paged_attend, .attend_batch = paged_attend_batch,         \
    .memory = paged_memory,                                             \
    .length = paged_length, .seq_clear = paged_seq_clear,               \
    .seq_fork = paged_seq_fork, .seq_memory = paged_seq_memory,         \
    .read_kv = paged_read_kv, .seq_save = paged_seq_save,          \
    .seq_load = paged_seq_load

const kvb_backend kvb_backend_paged = {
    .name = "paged",
    .description = "block pool + block tables, [kv_head][block][token][head_dim] pools; "
                   "fork shares (COW)",
    .create = paged_create,
    KVB_PAGED_SLOTS,
};

const kvb_backend kvb_backend_paged_blockmajor = {
    .name = "paged-blockmajor",
    .description = "paged with [block][kv_head][token][head_dim] pools (vLLM's order): measured",
    .create = paged_bm_create,
    KVB_PAGED_SLOTS,
};

const kvb_backend kvb_backend_paged_tokmajor = {
    .name = "paged-tokmajor",
    .description = "paged with [block][token][kv_head][head_dim] pools: measured",
    .create = paged_tm_create,
    KVB_PAGED_SLOTS,
};
