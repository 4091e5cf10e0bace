/* test_paged_quant.c: the paged cache of quantized blocks, paged-quant (cmocka).
 *
 * Each check takes a backend table and counts what it finds wrong, so the same
 * checks run on paged-quant (nothing may be wrong) and on planted wrong variants
 * built here from its table with one slot replaced (each must be caught):
 *   fork: a child attends exactly as its parent; after the child writes, the
 *         parent's attend and tokens are unchanged, and only one block was copied;
 *   exhaustion: KVB_STATUS_FULL (new block, or copy on write) changes nothing;
 *   memory: at one pool size, q8 at head_dim 128 holds 64/17 the tokens of f32
 *         paged (136 bytes per row of 128 against 512), and bytes per token are
 *         codes + f16 scales for every type;
 *   quant: the same appends give the quant backend's codes (read_kv equal to the
 *         bit) and its attend to float rounding; attend_batch equals attend;
 *   random: appends, forks and clears agree op by op with paged's pool (statuses,
 *         lengths, blocks and tokens held), and no token ever reads back another.
 * The float64 grid over every backend is test_backends'.
 * Usage: test_paged_quant [REGEX] (or KVB_TEST_FILTER=REGEX): see testlib.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../impls/kvb_backend.h"
#include "testlib.h"

#define PQ_NAME "paged-quant"

/* A finding: counted, and printed when the check runs verbose. */
#define PQ_EXPECT(cond, ...)                                                                  \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            bad++;                                                                            \
            if (verbose) print_message(__VA_ARGS__);                                          \
        }                                                                                     \
    } while (0)

static kvb_cache *create(const kvb_backend *b, kvb_shape s, kvb_options o)
{
    kvb_cache *c = NULL;
    char msg[256] = "";
    kvb_status st = kvb_cache_create(&c, b, &s, &o, msg, sizeof msg);
    if (st != KVB_STATUS_OK) fail_msg("%s: create: %s (%s)", b->name, kvb_status_str(st), msg);
    return c;
}

/* One random token into every layer of seq; the first status that is not OK. */
static kvb_status append_step(kvb_cache *c, int seq, uint64_t *seed)
{
    const kvb_shape *s = kvb_cache_shape(c);
    float k[4 * 128], v[4 * 128];            /* [n_kv_heads][head_dim]: nkv * hd <= 512 here */
    for (int l = 0; l < s->n_layers; l++) {
        kvbt_fill(k, (size_t)s->n_kv_heads * s->head_dim, 1.0f, seed);
        kvbt_fill(v, (size_t)s->n_kv_heads * s->head_dim, 1.0f, seed);
        kvb_status st = kvb_cache_append(c, seq, l, k, v);
        if (st != KVB_STATUS_OK) return st;
    }
    return KVB_STATUS_OK;
}

/* Everything sequences first..first+n_seqs-1 show, in a fixed order: per layer
 * the length, every token's K/V per head (read_kv) and attend for q. Returns
 * floats written to buf. */
static size_t snapshot(const kvb_cache *c, int first, int n_seqs, const float *q, float *buf)
{
    const kvb_shape *s = kvb_cache_shape(c);
    const int hd = s->head_dim;
    size_t at = 0;
    for (int seq = first; seq < first + n_seqs; seq++)
        for (int l = 0; l < s->n_layers; l++) {
            int n = kvb_cache_length(c, seq, l);
            buf[at++] = (float)n;
            for (int t = 0; t < n; t++)
                for (int h = 0; h < s->n_kv_heads; h++, at += 2 * (size_t)hd)
                    assert_int_equal(kvb_cache_read_kv(c, seq, l, h, t, buf + at, buf + at + hd),
                                     KVB_STATUS_OK);
            assert_int_equal(kvb_cache_attend((kvb_cache *)c, seq, l, q, buf + at),
                             KVB_STATUS_OK);
            at += (size_t)s->n_heads * hd;
        }
    return at;
}

enum { SNAP_FLOATS = 1 << 16 };

/* 2 layers, 4 query heads on 2 KV heads of 64, 4-token blocks */
static kvb_cache *small_cache(const kvb_backend *b, kvb_dtype dt, int max_seqs, size_t blocks)
{
    kvb_shape shape = {2, 4, 2, 64, 64};
    kvb_options o = {.dtype = dt, .max_seqs = max_seqs, .block_tokens = 4, .pool_blocks = blocks};
    return create(b, shape, o);
}

/* ---- the checks ------------------------------------------------------------- */

/* Parent 6 tokens in 4-token blocks; fork; child writes, then parent writes. */
static int check_fork(const kvb_backend *b, int verbose)
{
    int bad = 0;
    kvb_cache *c = small_cache(b, KVB_DTYPE_Q8, 3, 16);
    uint64_t seed = 7;
    float q[4 * 64];
    kvbt_fill(q, 4 * 64, 2.0f, &seed);
    for (int t = 0; t < 6; t++) assert_int_equal(append_step(c, 0, &seed), KVB_STATUS_OK);
    float *before = malloc(SNAP_FLOATS * sizeof *before), *now = malloc(SNAP_FLOATS * sizeof *now);
    size_t n0 = snapshot(c, 0, 1, q, before);
    kvb_memory m0 = kvb_cache_memory(c);
    size_t block = m0.reserved / 2;
    assert_int_equal(kvb_cache_seq_fork(c, 0, 1), KVB_STATUS_OK);
    kvb_memory m1 = kvb_cache_memory(c);
    PQ_EXPECT(m1.reserved == m0.reserved && m1.used == m0.used,
              "%s fork: reserved %zu used %zu, before %zu %zu: the fork copied\n", b->name,
              m1.reserved, m1.used, m0.reserved, m0.used);
    PQ_EXPECT(snapshot(c, 1, 1, q, now) == n0 && memcmp(now, before, n0 * sizeof *now) == 0,
              "%s fork: the child does not read or attend as its parent\n", b->name);
    /* the child writes into the shared, partly filled block: one copy */
    assert_int_equal(append_step(c, 1, &seed), KVB_STATUS_OK);
    PQ_EXPECT(kvb_cache_memory(c).reserved == m0.reserved + block,
              "%s COW: reserved %zu after the child's write, want %zu\n", b->name,
              kvb_cache_memory(c).reserved, m0.reserved + block);
    snapshot(c, 0, 1, q, now);
    PQ_EXPECT(memcmp(now, before, n0 * sizeof *now) == 0,
              "%s COW: the child's write changed its parent\n", b->name);
    /* the parent's block is its own again: no copy, and the child is unchanged */
    size_t nk = snapshot(c, 1, 1, q, before);
    assert_int_equal(append_step(c, 0, &seed), KVB_STATUS_OK);
    PQ_EXPECT(kvb_cache_memory(c).reserved == m0.reserved + block,
              "%s COW: the parent's write into its own block copied it\n", b->name);
    PQ_EXPECT(snapshot(c, 1, 1, q, now) == nk && memcmp(now, before, nk * sizeof *now) == 0,
              "%s COW: the parent's write changed the child\n", b->name);
    kvb_memory sm;
    assert_int_equal(kvb_cache_seq_memory(c, 1, &sm), KVB_STATUS_OK);
    PQ_EXPECT(sm.reserved == 2 * block, "%s: child seq_memory reserved %zu, want %zu\n",
              b->name, sm.reserved, 2 * block);
    assert_int_equal(kvb_cache_seq_clear(c, 0), KVB_STATUS_OK);
    assert_int_equal(kvb_cache_seq_clear(c, 1), KVB_STATUS_OK);
    PQ_EXPECT(kvb_cache_memory(c).reserved == 0 && kvb_cache_memory(c).used == 0,
              "%s: a cleared cache reserves %zu and uses %zu bytes\n", b->name,
              kvb_cache_memory(c).reserved, kvb_cache_memory(c).used);
    free(before);
    free(now);
    kvb_cache_destroy(c);
    return bad;
}

/* A 4-block pool: seq 0 holds 10 tokens (3 blocks, last partly filled), seq 1
 * 4 (1 block), seq 2 a fork of 0. Every append that needs a block, fresh or a
 * copy, says FULL and leaves all three as they were. */
static int check_exhaustion(const kvb_backend *b, int verbose)
{
    int bad = 0;
    kvb_cache *c = small_cache(b, KVB_DTYPE_Q4, 4, 4);
    uint64_t seed = 11;
    float q[4 * 64], k[2 * 64], v[2 * 64];
    kvbt_fill(q, 4 * 64, 2.0f, &seed);
    kvbt_fill(k, 2 * 64, 1.0f, &seed);
    kvbt_fill(v, 2 * 64, 1.0f, &seed);
    for (int t = 0; t < 10; t++) assert_int_equal(append_step(c, 0, &seed), KVB_STATUS_OK);
    for (int t = 0; t < 4; t++) assert_int_equal(append_step(c, 1, &seed), KVB_STATUS_OK);
    assert_int_equal(kvb_cache_seq_fork(c, 0, 2), KVB_STATUS_OK);
    float *before = malloc(SNAP_FLOATS * sizeof *before), *now = malloc(SNAP_FLOATS * sizeof *now);
    size_t n = snapshot(c, 0, 4, q, before);
    kvb_memory m0 = kvb_cache_memory(c);
    const int who[] = {0, 1, 2, 3};     /* COW, new block, COW, a fresh sequence's first */
    for (int i = 0; i < 4; i++) {
        kvb_status st = kvb_cache_append(c, who[i], 1, k, v);
        PQ_EXPECT(st == KVB_STATUS_FULL, "%s: append to seq %d of a full pool: %s\n", b->name,
                  who[i], kvb_status_str(st));
        kvb_memory m = kvb_cache_memory(c);
        PQ_EXPECT(memcmp(&m, &m0, sizeof m) == 0 && snapshot(c, 0, 4, q, now) == n &&
                      memcmp(now, before, n * sizeof *now) == 0,
                  "%s: a refused append to seq %d changed the cache\n", b->name, who[i]);
    }
    /* room again: the fork's write copies its shared block */
    assert_int_equal(kvb_cache_seq_clear(c, 1), KVB_STATUS_OK);
    PQ_EXPECT(kvb_cache_append(c, 2, 0, k, v) == KVB_STATUS_OK,
              "%s: append after clear failed\n", b->name);
    free(before);
    free(now);
    kvb_cache_destroy(c);
    return bad;
}

/* Bytes per token of one layer, K and V, one KV head of 128 at group 32:
 * packed codes plus one f16 word per group (two for q4_1 and q2). */
static const struct { kvb_dtype dt; size_t bytes; } row_bytes[] = {
    {KVB_DTYPE_Q8, 2 * (128 + 4 * 2)}, {KVB_DTYPE_Q4, 2 * (64 + 4 * 2)},
    {KVB_DTYPE_Q4_1, 2 * (64 + 8 * 2)}, {KVB_DTYPE_Q2, 2 * (32 + 8 * 2)},
};

/* Tokens one sequence takes from a pool of pool_bytes before FULL. */
static int fill_until_full(const kvb_backend *b, kvb_dtype dt, size_t pool_bytes,
                           kvb_memory *m)
{
    kvb_shape shape = {1, 1, 1, 128, 8192};
    kvb_options o = {.dtype = dt, .max_seqs = 1, .pool_bytes = pool_bytes};
    kvb_cache *c = create(b, shape, o);
    uint64_t seed = 3;
    int n = 0;
    while (n < shape.max_seq && append_step(c, 0, &seed) == KVB_STATUS_OK) n++;
    *m = kvb_cache_memory(c);
    kvb_cache_destroy(c);
    return n;
}

static int check_memory(const kvb_backend *b, int verbose)
{
    int bad = 0;
    /* 17 f32 blocks of 16 tokens (16384 bytes each) = 64 q8 blocks (4352 bytes) */
    const size_t pool = 17 * 16384;
    kvb_memory mf, mq;
    int f32 = fill_until_full(kvb_backend_find("paged"), KVB_DTYPE_F32, pool, &mf);
    int q8 = fill_until_full(b, KVB_DTYPE_Q8, pool, &mq);
    PQ_EXPECT(f32 == 17 * 16 && q8 == 64 * 16,
              "%s: %d q8 tokens against %d f32 in %zu bytes, want 1024 and 272 (64/17 = 3.76x)\n",
              b->name, q8, f32, pool);
    PQ_EXPECT(mq.capacity == 64 * 16 * row_bytes[0].bytes && mq.used == mq.capacity,
              "%s: a full q8 pool: capacity %zu used %zu, want %zu\n", b->name, mq.capacity,
              mq.used, 64 * 16 * row_bytes[0].bytes);
    for (size_t i = 0; i < KVBT_COUNT(row_bytes); i++) {
        kvb_shape shape = {1, 1, 1, 128, 64};
        kvb_options o = {.dtype = row_bytes[i].dt, .max_seqs = 1, .block_tokens = 16,
                         .key_axis = KVB_KEY_AXIS_TOKEN};
        kvb_cache *c = create(b, shape, o);
        uint64_t seed = 5;
        for (int t = 0; t < 20; t++) assert_int_equal(append_step(c, 0, &seed), KVB_STATUS_OK);
        kvb_memory m = kvb_cache_memory(c);
        PQ_EXPECT(m.used == 20 * row_bytes[i].bytes && m.reserved == 32 * row_bytes[i].bytes &&
                      m.capacity == 64 * row_bytes[i].bytes,
                  "%s %s: used %zu reserved %zu capacity %zu for 20 tokens, %zu bytes each\n",
                  b->name, kvb_dtype_name(row_bytes[i].dt), m.used, m.reserved, m.capacity,
                  row_bytes[i].bytes);
        kvb_cache_destroy(c);
    }
    return bad;
}

/* The same appends into quant (residual 0, keys per token) and b, for each type,
 * group, block size, quant kernel and thread count. */
static int check_matches_quant(const kvb_backend *b, int verbose)
{
    int bad = 0;
    static const kvb_dtype dts[] = {KVB_DTYPE_Q8, KVB_DTYPE_Q4, KVB_DTYPE_Q4_1, KVB_DTYPE_Q2};
    static const struct { int group, bt, threads; const char *qk; } vs[] = {
        {32, 16, 0, NULL}, {64, 3, 2, NULL}, {32, 5, 0, "portable"}, {128, 256, 2, "portable"},
        {32, 16, 4, NULL},                     /* 2 KV heads on 4 threads: 2 parts each */
    };
    /* interleaved tokens first (short runs of blocks, gathered: more than one
     * gather's worth), then seq 1 alone (one long run, read in place) */
    const int nh = 8, nkv = 2, hd = 128, ctx = 1200, mixed = 900;
    double worst = 0;
    for (size_t di = 0; di < KVBT_COUNT(dts); di++)
        for (size_t vi = 0; vi < KVBT_COUNT(vs); vi++) {
            kvb_shape shape = {2, nh, nkv, hd, 1024};
            kvb_options o = {.dtype = dts[di], .max_seqs = 2, .group = vs[vi].group,
                             .key_axis = KVB_KEY_AXIS_TOKEN, .block_tokens = vs[vi].bt,
                             .threads = vs[vi].threads, .qkernel = vs[vi].qk};
            kvb_cache *p = create(b, shape, o), *r = create(kvb_backend_find("quant"), shape, o);
            uint64_t sp = 1000 + di * 16 + vi, sr = sp;
            for (int t = 0; t < ctx; t++) {
                int seq = t >= mixed || t % 3 ? 1 : 0;
                assert_int_equal(append_step(p, seq, &sp), KVB_STATUS_OK);
                assert_int_equal(append_step(r, seq, &sr), KVB_STATUS_OK);
            }
            float q[8 * 128], op[8 * 128], o0[8 * 128], orf[8 * 128], ob[3][8 * 128],
                kp[128], vp[128], kr[128], vr[128];      /* [n_heads][head_dim], [head_dim] */
            kvbt_fill(q, (size_t)nh * hd, 2.0f, &sp);
            int same = 1;
            for (int t = 0; t < kvb_cache_length(p, 1, 1); t++)
                for (int h = 0; h < nkv; h++) {
                    kvb_cache_read_kv(p, 1, 1, h, t, kp, vp);
                    kvb_cache_read_kv(r, 1, 1, h, t, kr, vr);
                    same = same && !memcmp(kp, kr, sizeof kp) && !memcmp(vp, vr, sizeof vp);
                }
            assert_int_equal(kvb_cache_attend(p, 1, 1, q, op), KVB_STATUS_OK);
            assert_int_equal(kvb_cache_attend(p, 0, 1, q, o0), KVB_STATUS_OK);
            assert_int_equal(kvb_cache_attend(r, 1, 1, q, orf), KVB_STATUS_OK);
            double rel = kvbt_rel_l2_rows(op, orf, 1, (size_t)nh * hd);
            /* both sequences, seq 1 twice */
            kvb_attend_item items[3] = {{1, q, ob[0]}, {0, q, ob[1]}, {1, q, ob[2]}};
            assert_int_equal(kvb_cache_attend_batch(p, 1, items, 3), KVB_STATUS_OK);
            int batch = !memcmp(ob[0], op, sizeof op) && !memcmp(ob[1], o0, sizeof op) &&
                        !memcmp(ob[2], op, sizeof op);
            if (rel > worst) worst = rel;
            PQ_EXPECT(same && rel <= 2e-6 && batch,
                      "%s vs quant (%s, g=%d, bs=%d, threads=%d, %s): codes %s, attend rel "
                      "%.3g, batch %s\n", b->name, kvb_dtype_name(dts[di]), vs[vi].group,
                      vs[vi].bt, vs[vi].threads, vs[vi].qk ? vs[vi].qk : "auto",
                      same ? "equal" : "DIFFER", rel, batch ? "equal" : "DIFFERS");
            kvb_cache_destroy(p);
            kvb_cache_destroy(r);
        }
    if (verbose) print_message("%s vs quant: worst attend rel L2 %.3g\n", b->name, worst);
    return bad;
}

/* Thousands of random appends, forks and clears on b (q8) and on paged (f32)
 * with the same pool: the pool logic is the same, so statuses, lengths and
 * blocks held must agree op by op, and bytes used in tokens; every token reads
 * back what it read back when appended (sharing and copies never mix tokens). */
static int check_random(const kvb_backend *b, int verbose)
{
    enum { S = 5, L = 2, HD = 32, MAXT = 40, OPS = 3000 };
    int bad = 0;
    kvb_shape shape = {L, 2, 1, HD, MAXT};
    kvb_options o = {.dtype = KVB_DTYPE_Q8, .max_seqs = S, .block_tokens = 4,
                     .pool_blocks = 10};
    kvb_cache *c = create(b, shape, o);
    o.dtype = KVB_DTYPE_F32;
    kvb_cache *ref = create(kvb_backend_find("paged"), shape, o);
    static float rows[OPS + 1][L][2][HD];     /* [token id][layer][K, V][head_dim] read back */
    int ids[S][MAXT], len[S] = {0}, next = 1, fulls = 0, forks = 0;
    uint64_t seed = 99;
    for (int op = 0; op < OPS && bad < 5; op++) {
        int r = (int)((kvbt_urand(&seed) + 1.0f) * 50.0f), s1 = (int)(op * 7 + r) % S,
            s2 = (int)((kvbt_urand(&seed) + 1.0f) * 2.5f) % S;
        if (r < 70 && len[s1] < MAXT) {
            float k[HD], v[HD];
            kvbt_fill(k, HD, 1.0f, &seed);
            kvbt_fill(v, HD, 1.0f, &seed);
            kvb_status st = kvb_cache_append(c, s1, 0, k, v);
            kvb_status sr = kvb_cache_append(ref, s1, 0, k, v);
            PQ_EXPECT(st == sr, "%s op %d: append to seq %d says %s, paged %s\n", b->name, op, s1,
                      kvb_status_str(st), kvb_status_str(sr));
            if (st != KVB_STATUS_OK) {
                fulls += st == KVB_STATUS_FULL;
                continue;
            }
            for (int l = 1; l < L; l++) {            /* the block is held: no refusal */
                st = kvb_cache_append(c, s1, l, k, v);
                PQ_EXPECT(st == KVB_STATUS_OK && kvb_cache_append(ref, s1, l, k, v) == st,
                          "%s op %d: layer %d append says %s\n", b->name, op, l,
                          kvb_status_str(st));
            }
            for (int l = 0; l < L; l++)
                kvb_cache_read_kv(c, s1, l, 0, len[s1], rows[next][l][0], rows[next][l][1]);
            ids[s1][len[s1]++] = next++;
        } else if (r < 85 && len[s2] == 0 && s1 != s2) {
            kvb_status st = kvb_cache_seq_fork(c, s1, s2);
            PQ_EXPECT(st == kvb_cache_seq_fork(ref, s1, s2), "%s op %d: fork says %s\n", b->name,
                      op, kvb_status_str(st));
            memcpy(ids[s2], ids[s1], sizeof ids[0]);
            len[s2] = len[s1];
            forks++;
        } else if (r >= 85) {
            kvb_cache_seq_clear(c, s1);
            kvb_cache_seq_clear(ref, s1);
            len[s1] = 0;
        }
        kvb_memory m = kvb_cache_memory(c), mr = kvb_cache_memory(ref);
        /* per token and per block: q8 rows of 32 (32 + 2 bytes) against f32 (128) */
        PQ_EXPECT(m.used / 34 == mr.used / 128 && m.reserved / 34 == mr.reserved / 128 &&
                      m.used % 34 == 0 && m.reserved <= m.capacity,
                  "%s op %d: used %zu reserved %zu, paged %zu %zu (x 34/128)\n", b->name, op,
                  m.used, m.reserved, mr.used, mr.reserved);
        for (int q = 0; q < S && op % 53 == 0; q++)
            for (int l = 0; l < L; l++) {
                float k[HD], v[HD];
                PQ_EXPECT(kvb_cache_length(c, q, l) == len[q], "%s op %d: seq %d length %d, "
                          "want %d\n", b->name, op, q, kvb_cache_length(c, q, l), len[q]);
                for (int t = 0; t < len[q] && t < kvb_cache_length(c, q, l); t++) {
                    kvb_cache_read_kv(c, q, l, 0, t, k, v);
                    PQ_EXPECT(!memcmp(k, rows[ids[q][t]][l][0], sizeof k) &&
                                  !memcmp(v, rows[ids[q][t]][l][1], sizeof v),
                              "%s op %d: seq %d layer %d token %d is not token id %d\n",
                              b->name, op, q, l, t, ids[q][t]);
                }
            }
    }
    if (verbose) print_message("%s random: %d forks, %d full refusals\n", b->name, forks, fulls);
    PQ_EXPECT(forks > 50 && fulls > 20, "%s random: %d forks, %d fulls: too few to judge\n",
              b->name, forks, fulls);
    for (int q = 0; q < S; q++) kvb_cache_seq_clear(c, q);
    PQ_EXPECT(kvb_cache_memory(c).reserved == 0 && kvb_cache_memory(c).used == 0,
              "%s random: %zu bytes used after clearing all\n", b->name,
              kvb_cache_memory(c).used);
    kvb_cache_destroy(c);
    kvb_cache_destroy(ref);
    return bad;
}

/* ---- planted wrong variants: paged-quant with one slot replaced ------------- */

static const kvb_backend *real(void) { return kvb_backend_find(PQ_NAME); }

/* attend 0.05% large: within q8's error against float64, far outside rounding */
static kvb_status skewed_attend(kvb_backend_ctx *c, int seq, int layer, const float *q,
                                float *out)
{
    kvb_status st = real()->attend(c, seq, layer, q, out);
    for (int i = 0; i < 8 * 128; i++) out[i] *= 1.0005f;      /* the largest nh * hd here */
    return st;
}

/* a FULL that has already given the sequence's blocks back */
static kvb_status clearing_append(kvb_backend_ctx *c, int seq, int layer, const float *k,
                                  const float *v)
{
    kvb_status st = real()->append(c, seq, layer, k, v);
    if (st == KVB_STATUS_FULL) real()->seq_clear(c, seq);
    return st;
}

/* a batch that attends its first item and hands that to every item */
static kvb_status first_only_batch(kvb_backend_ctx *c, int layer, const kvb_attend_item *it,
                                   int n)
{
    kvb_status st = real()->attend(c, it[0].seq, layer, it[0].q, it[0].out);
    for (int i = 1; i < n; i++) memcpy(it[i].out, it[0].out, 8 * 128 * sizeof(float));
    return st;
}

typedef int (*pq_check)(const kvb_backend *b, int verbose);
static const pq_check checks[] = {check_fork, check_exhaustion, check_memory,
                                  check_matches_quant, check_random};

static void test_planted_variants_fail(void **state)
{
    (void)state;
    for (int v = 0; v < 3; v++) {
        kvb_backend w = *real();
        w.name = v == 0 ? "wrong-skew" : v == 1 ? "wrong-full-clears" : "wrong-batch";
        if (v == 0) w.attend = skewed_attend;
        if (v == 1) w.append = clearing_append;
        if (v == 2) w.attend_batch = first_only_batch;
        int found = 0;
        for (size_t i = 0; i < KVBT_COUNT(checks); i++) found += checks[i](&w, 0);
        print_message("%s: %d findings\n", w.name, found);
        if (found == 0) fail_msg("planted %s passed every check", w.name);
    }
}

/* ---- the tests -------------------------------------------------------------- */

/* paged-quant passes each check: what a check finds is printed */
static void test_every_check_passes(void **state)
{
    (void)state;
    static const char *const names[] = {"fork", "exhaustion", "memory", "matches_quant",
                                        "random"};
    for (size_t i = 0; i < KVBT_COUNT(checks); i++)
        if (checks[i](real(), 1) != 0) fail_msg("%s: check %s failed", PQ_NAME, names[i]);
}

/* supports() says "skipped" with the value named; create and append refuse too */
static void test_refusals(void **state)
{
    (void)state;
    static const struct {
        kvb_dtype dt; kvb_key_axis axis; int residual, group, bt, hd; kvb_alloc alloc;
        kvb_status want; const char *says;
    } cases[] = {
        {KVB_DTYPE_Q8, KVB_KEY_AXIS_CHANNEL, 0, 0, 0, 64, KVB_ALLOC_GROW,
         KVB_STATUS_UNSUPPORTED, "channel"},
        {KVB_DTYPE_Q2, KVB_KEY_AXIS_DEFAULT, 0, 0, 0, 64, KVB_ALLOC_GROW,
         KVB_STATUS_UNSUPPORTED, "q2"},
        {KVB_DTYPE_Q2, KVB_KEY_AXIS_TOKEN, 0, 0, 0, 64, KVB_ALLOC_GROW, KVB_STATUS_OK, ""},
        {KVB_DTYPE_Q8, KVB_KEY_AXIS_TOKEN, 4, 0, 0, 64, KVB_ALLOC_GROW,
         KVB_STATUS_UNSUPPORTED, "residual = 4"},
        {KVB_DTYPE_Q8, KVB_KEY_AXIS_TOKEN, 0, 0, 0, 64, KVB_ALLOC_PREALLOC,
         KVB_STATUS_UNSUPPORTED, "prealloc"},
        {KVB_DTYPE_Q4, KVB_KEY_AXIS_TOKEN, 0, 48, 0, 64, KVB_ALLOC_GROW,
         KVB_STATUS_INVALID_ARG, "group = 48"},
        {KVB_DTYPE_Q4, KVB_KEY_AXIS_TOKEN, 0, 64, 0, 32, KVB_ALLOC_GROW,
         KVB_STATUS_UNSUPPORTED, "head_dim = 32"},
        {KVB_DTYPE_Q8, KVB_KEY_AXIS_TOKEN, 0, 0, 300, 64, KVB_ALLOC_GROW,
         KVB_STATUS_INVALID_ARG, "300"},
        {KVB_DTYPE_F32, KVB_KEY_AXIS_TOKEN, 0, 0, 0, 64, KVB_ALLOC_GROW,
         KVB_STATUS_UNSUPPORTED, "f32"},
    };
    for (size_t i = 0; i < KVBT_COUNT(cases); i++) {
        kvb_shape s = {1, 2, 1, cases[i].hd, 32};
        kvb_options o = {.dtype = cases[i].dt, .key_axis = cases[i].axis, .max_seqs = 1,
                         .residual = cases[i].residual, .group = cases[i].group,
                         .block_tokens = cases[i].bt, .alloc = cases[i].alloc};
        char why[256] = "";
        kvb_status st = kvb_backend_supports(real(), &s, &o, why, sizeof why);
        if (st != cases[i].want || !strstr(why, cases[i].says))
            fail_msg("case %zu: %s '%s', want %s naming '%s'", i, kvb_status_str(st), why,
                     kvb_status_str(cases[i].want), cases[i].says);
    }
    kvb_shape s = {1, 2, 1, 64, 32};
    kvb_options o = {.dtype = KVB_DTYPE_Q8, .max_seqs = 1, .pool_bytes = 100};
    kvb_cache *c = NULL;
    char msg[256] = "";
    assert_int_equal(kvb_cache_create(&c, real(), &s, &o, msg, sizeof msg),
                     KVB_STATUS_INVALID_ARG);
    assert_non_null(strstr(msg, "0 blocks"));
    o.pool_bytes = 0;
    c = create(real(), s, o);
    float k[64] = {0}, v[64] = {0};
    k[5] = NAN;
    assert_int_equal(kvb_cache_append(c, 0, 0, k, v), KVB_STATUS_INVALID_ARG);
    assert_int_equal(kvb_cache_length(c, 0, 0), 0);
    assert_int_equal(kvb_cache_memory(c).reserved, 0);
    kvb_cache_destroy(c);
}

int main(int argc, char **argv)
{
    static const kvbt_test all[] = {
        {"every_check_passes", test_every_check_passes, 0},
        {"refusals", test_refusals, 0},
        {"planted_variants_fail", test_planted_variants_fail, 0},
    };
    return kvbt_main(argc, argv, "paged_quant", all, KVBT_COUNT(all));
}
