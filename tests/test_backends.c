/* test_backends.c: the K/V cache backends through their interface (cmocka).
 *
 * Every registered backend's attend against the float64 reference over the shape
 * grid (MHA/GQA/MQA x head sizes x contexts from 1 up x storage types x allocation
 * modes, block sizes and thread counts), with other data in a neighbouring layer
 * and sequence; two planted wrong backends must fail the same check, so a check
 * that cannot fail shows up here. Then storage and memory accounting of the
 * contiguous cache and the library's input checks; what caches hold sequence by
 * sequence (paged fork, the window's ring, kvb_cache_* checks) is in test_cache.c.
 * The quantized backend's own tests are in test_quant.c.
 * Usage: test_backends [REGEX] (or KVB_TEST_FILTER=REGEX): see testlib.h. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/model.h"
#include "../impls/kernels/kernels.h"
#include "../impls/kvb_backend.h"
#include "testlib.h"

/* ---- planted wrong backends: contiguous with one bug each --------------- */

/* A wrong backend's state: the contiguous cache it wraps. */
struct kvb_backend_ctx {
    kvb_cache *inner;
    kvb_shape  shape;
};

static kvb_status w_create(kvb_backend_ctx **out, const kvb_shape *s, const kvb_options *o,
                           char *m, size_t n)
{
    kvb_backend_ctx *w = calloc(1, sizeof *w);
    if (!w) return KVB_STATUS_NO_MEMORY;
    w->shape = *s;
    kvb_status st = kvb_cache_create(&w->inner, kvb_backend_find("contiguous"), s, o, m, n);
    if (st != KVB_STATUS_OK) { free(w); return st; }
    *out = w;
    return KVB_STATUS_OK;
}
static void w_destroy(kvb_backend_ctx *w)
{
    kvb_cache_destroy(w->inner);
    free(w);
}
static kvb_status w_append(kvb_backend_ctx *w, int seq, int layer, const float *k, const float *v)
{
    return kvb_cache_append(w->inner, seq, layer, k, v);
}
/* bug 1: forgets the 1/sqrt(head_dim) scale */
static kvb_status w_attend_noscale(kvb_backend_ctx *w, int seq, int layer, const float *q,
                                   float *out)
{
    size_t n = (size_t)w->shape.n_heads * w->shape.head_dim;
    float *q2 = malloc(n * sizeof *q2);
    for (size_t i = 0; i < n; i++) q2[i] = q[i] * sqrtf((float)w->shape.head_dim);
    kvb_status st = kvb_cache_attend(w->inner, seq, layer, q2, out);
    free(q2);
    return st;
}
/* bug 2: stores values 0.5% too large (a storage bug small enough to hide in noise) */
static kvb_status w_append_skewed(kvb_backend_ctx *w, int seq, int layer, const float *k,
                                  const float *v)
{
    size_t n = (size_t)w->shape.n_kv_heads * w->shape.head_dim;
    float *v2 = malloc(n * sizeof *v2);
    for (size_t i = 0; i < n; i++) v2[i] = v[i] * 1.005f;
    kvb_status st = w_append(w, seq, layer, k, v2);
    free(v2);
    return st;
}
static kvb_status w_attend(kvb_backend_ctx *w, int seq, int layer, const float *q, float *out)
{
    return kvb_cache_attend(w->inner, seq, layer, q, out);
}
static kvb_memory w_memory(const kvb_backend_ctx *w) { return kvb_cache_memory(w->inner); }
static int w_length(const kvb_backend_ctx *w, int seq, int layer)
{
    return kvb_cache_length(w->inner, seq, layer);
}

static const kvb_backend wrong_noscale = {
    .version = KVB_BACKEND_VERSION,
    .name = "wrong-noscale", .description = "planted bug: no 1/sqrt(d)",
    .create = w_create, .destroy = w_destroy, .append = w_append, .attend = w_attend_noscale,
    .memory = w_memory, .length = w_length,
};
static const kvb_backend wrong_skewed = {
    .version = KVB_BACKEND_VERSION,
    .name = "wrong-skewed-v", .description = "planted bug: values stored 0.5% large",
    .create = w_create, .destroy = w_destroy, .append = w_append_skewed, .attend = w_attend,
    .memory = w_memory, .length = w_length,
};

/* ---- the attend check ----------------------------------------------------- */

/* the shape grid is testlib's; paged caches also run through these block sizes */
static const int paged_blocks[] = {1, 3, 16, 256};

typedef struct check_result {
    int cases, failed, skipped;
    double worst[KVB_DTYPE_COUNT];
} check_result;

/* The quantized backend's settings the grid runs through: group, residual, key axis. */
static const struct { int group, residual; kvb_key_axis axis; } quant_variants[] = {
    {0, 0, KVB_KEY_AXIS_TOKEN}, {0, 0, KVB_KEY_AXIS_CHANNEL}, {16, 20, KVB_KEY_AXIS_DEFAULT},
};

/* Sliding windows: one token, fewer than most contexts, fewer than the longest two */
static const int windows[] = {1, 16, 700};

/* How many settings of b's own kind the grid runs through. */
static size_t variants(const kvb_backend *b)
{
    if (b->flags & KVB_BACKEND_PAGED) return KVBT_COUNT(paged_blocks);
    if (b->flags & KVB_BACKEND_QUANT) return KVBT_COUNT(quant_variants);
    if (b->flags & KVB_BACKEND_WINDOW) return KVBT_COUNT(windows);
    return 2;                                   /* dense: one thread and three */
}

/* Appends ctx random tokens to layer 1 of sequence 1 of a 2-layer, 2-sequence
 * cache (layer 0 and sequence 0 get other data, so mixing them up shows), then
 * compares attend with the float64 reference. Every storage type and mode. */
static check_result check_attend(void **state, const kvb_backend *b, int verbose)
{
    check_result r = {0};
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (size_t hs = 0; hs < sizeof kvbt_head_shapes / sizeof kvbt_head_shapes[0]; hs++)
    for (size_t hi = 0; hi < sizeof kvbt_head_dims / sizeof kvbt_head_dims[0]; hi++)
    for (size_t ci = 0; ci < sizeof kvbt_contexts / sizeof kvbt_contexts[0]; ci++)
    for (int dt = 0; dt < KVB_DTYPE_COUNT; dt++)
    for (int mode = 0; mode < KVB_ALLOC_COUNT; mode++)
        for (size_t bi = 0; bi < variants(b); bi++) {
            int nh = kvbt_head_shapes[hs].nh, nkv = kvbt_head_shapes[hs].nkv,
                hd = kvbt_head_dims[hi], ctx = kvbt_contexts[ci];
            int bs = (b->flags & KVB_BACKEND_PAGED) ? paged_blocks[bi] : 0;
            int qv = (b->flags & KVB_BACKEND_QUANT) != 0;
            int win = (b->flags & KVB_BACKEND_WINDOW) ? windows[bi] : 0;
            /* a paged quantized store walks the block sizes, its quant
             * settings cycling under them */
            size_t qi = bi % KVBT_COUNT(quant_variants);
            char name[160], blk[96] = "";
            size_t o = 0;
            /* dense stores: one thread, and three (split over heads, and over the
             * context where heads are fewer: MQA and GQA 4:1 at 768 and 1000 tokens);
             * paged: over heads where the K/V pass 256 KiB, and over parts of the
             * block table for MQA at 768 and 1000 tokens; block sizes 3 and 256 on
             * two threads */
            int threads = !bs && !qv && !win && bi == 1 ? 3 : bs && bi % 2 ? 2 : 0;
            if (bs) o += (size_t)snprintf(blk + o, sizeof blk - o, ",bs=%d", bs);
            if (qv)
                o += (size_t)snprintf(blk + o, sizeof blk - o, ",g=%d,r=%d,keys=%s",
                                      quant_variants[qi].group ? quant_variants[qi].group : 32,
                                      quant_variants[qi].residual,
                                      kvb_key_axis_name(quant_variants[qi].axis));
            if (win) o += (size_t)snprintf(blk + o, sizeof blk - o, ",window=%d", win);
            if (threads) snprintf(blk + o, sizeof blk - o, ",threads=%d", threads);
            if (!kvbt_case(state, name, sizeof name,
                           "attend(backend=%s,mode=%s,dt=%s%s,nh=%d,nkv=%d,hd=%d,ctx=%d)", b->name,
                           kvb_alloc_name((kvb_alloc)mode), kvb_dtype_name((kvb_dtype)dt), blk, nh,
                           nkv, hd, ctx))
                continue;
            kvb_shape shape = {2, nh, nkv, hd, 1024};
            kvb_options opt = {.dtype = (kvb_dtype)dt,
                               .alloc = (kvb_alloc)mode,
                               .max_seqs = 2,
                               .block_tokens = bs,
                               .threads = threads,
                               .window = win};
            if (qv) {
                opt.group = quant_variants[qi].group;
                opt.residual = quant_variants[qi].residual;
                opt.key_axis = quant_variants[qi].axis;
            }
            char why[256];
            if (kvb_backend_supports(b, &shape, &opt, why, sizeof why) != KVB_STATUS_OK) {
                r.skipped++;
                continue;
            }
            r.cases++;
            size_t kvn = (size_t)ctx * nkv * hd;
            float *k = malloc(kvn * sizeof *k), *v = malloc(kvn * sizeof *v);
            float *q = malloc((size_t)nh * hd * sizeof *q),
                  *out = malloc((size_t)nh * hd * sizeof *out);
            double *ref = malloc((size_t)nh * hd * sizeof *ref);
            float *junk = malloc((size_t)nkv * hd * sizeof *junk);
            for (size_t i = 0; i < kvn; i++) {
                k[i] = kvbt_urand(&seed);
                v[i] = kvbt_urand(&seed);
            }
            for (int i = 0; i < nh * hd; i++) q[i] = 2.0f * kvbt_urand(&seed);
            kvb_cache *c = NULL;
            char msg[256] = "";
            assert_int_equal(kvb_cache_create(&c, b, &shape, &opt, msg, sizeof msg),
                             KVB_STATUS_OK);
            int ok = 1;
            for (int t = 0; t < ctx && ok; t++) {
                for (int i = 0; i < nkv * hd; i++) junk[i] = 50.0f * kvbt_urand(&seed);
                size_t at = (size_t)t * nkv * hd;
                ok = kvb_cache_append(c, 0, 1, junk, junk) == KVB_STATUS_OK && /* other sequence */
                     kvb_cache_append(c, 1, 0, junk, junk) == KVB_STATUS_OK && /* other layer */
                     kvb_cache_append(c, 1, 1, k + at, v + at) == KVB_STATUS_OK;
            }
            /* the reference covers what the cache attends: all, or a window's newest */
            int n = kvb_cache_attended(c, ctx);
            size_t first = (size_t)(ctx - n) * nkv * hd;
            ok = ok && kvb_cache_length(c, 1, 1) == n &&
                 kvb_cache_attend(c, 1, 1, q, out) == KVB_STATUS_OK;
            double err = INFINITY;
            if (ok) {
                kvbt_ref_attend(q, k + first, v + first, n, nh, nkv, hd, ref);
                err = kvbt_rel_l2(out, ref, (size_t)nh * hd);
            }
            if (err > r.worst[dt] || !isfinite(err)) r.worst[dt] = err;
            if (!(err <= kvbt_tolerance((kvb_dtype)dt))) {
                r.failed++;
                if (verbose)
                    print_message("FAIL %s: rel L2 error %.3g > tolerance %.3g\n", name, err,
                                  kvbt_tolerance((kvb_dtype)dt));
            }
            kvb_cache_destroy(c);
            free(k);
            free(v);
            free(q);
            free(out);
            free(ref);
            free(junk);
        }
    return r;
}

static void test_attend_every_backend(void **state)
{
    int backends = 0;
    for (int i = 0; i < kvb_backend_count(); i++) {
        const kvb_backend *b = kvb_backend_at(i);
        if (b->flags & KVB_BACKEND_RECOMPUTE) continue;     /* checked by the causal test */
        check_result r = check_attend(state, b, 1);
        char worst[256] = "";
        for (int dt = 0; dt < KVB_DTYPE_COUNT; dt++)
            if (r.worst[dt] > 0)
                snprintf(worst + strlen(worst), sizeof worst - strlen(worst), " %s %.2g",
                         kvb_dtype_name((kvb_dtype)dt), r.worst[dt]);
        print_message("%s: %d cases, %d failed, %d skipped; worst rel L2%s\n", b->name, r.cases,
                      r.failed, r.skipped, worst);
        assert_int_equal(r.failed, 0);
        backends += r.cases > 0;
    }
    if (backends == 0) skip();     /* the filter selected no case */
}

static void test_attend_rejects_planted_bugs(void **state)
{
    (void)state;
    const kvb_backend *wrong[] = {&wrong_noscale, &wrong_skewed};
    for (size_t i = 0; i < 2; i++) {
        check_result r = check_attend(NULL, wrong[i], 0);
        print_message("%s: %d of %d cases rejected\n", wrong[i]->name, r.failed, r.cases);
        assert_true(r.failed > 0);
    }
    /* the unscaled softmax differs from the true one at every context above 1,
     * in every storage type: the check must reject all of those cases */
    check_result r = check_attend(NULL, &wrong_noscale, 0);
    int single_token = 0;
    for (size_t i = 0; i < sizeof kvbt_contexts / sizeof kvbt_contexts[0]; i++)
        single_token += kvbt_contexts[i] == 1;
    int n_ctx = (int)(sizeof kvbt_contexts / sizeof kvbt_contexts[0]);
    assert_int_equal(r.failed, r.cases - r.cases * single_token / n_ctx);
}


/* ---- cache storage, memory accounting, capacity ------------------------- */

static void test_contiguous_storage_and_memory(void **state)
{
    (void)state;
    const kvb_backend *b = kvb_backend_find("contiguous");
    assert_non_null(b);
    const int L = 3, nkv = 2, hd = 8, max_seq = 100;    /* 100: not a power of two */
    for (int dt = 0; dt <= KVB_DTYPE_BF16; dt++)
    for (int mode = 0; mode < KVB_ALLOC_COUNT; mode++) {
        kvb_shape shape = {L, 4, nkv, hd, max_seq};
        kvb_options opt = {.dtype = (kvb_dtype)dt, .alloc = (kvb_alloc)mode, .max_seqs = 1};
        kvb_cache *c;
        char msg[128];
        assert_int_equal(kvb_cache_create(&c, b, &shape, &opt, msg, sizeof msg), KVB_STATUS_OK);
        size_t es = kvb_dtype_size((kvb_dtype)dt), per_tok = 2 * (size_t)L * nkv * hd * es;
        float k[16], v[16], rk[8], rv[8];
        for (int n = 1; n <= max_seq; n++) {
            for (int l = 0; l < L; l++) {
                for (int i = 0; i < nkv * hd; i++) {
                    k[i] =
                        (float)(n * 1000 + l * 100 + i) * 0.01f; /* names its token, layer, slot */
                    v[i] = -k[i];
                }
                assert_int_equal(kvb_cache_append(c, 0, l, k, v), KVB_STATUS_OK);
            }
            kvb_memory m = kvb_cache_memory(c);
            assert_int_equal(m.used, per_tok * (size_t)n);
            int cap = max_seq;
            if (mode == KVB_ALLOC_GROW) {
                cap = 16;
                while (cap < n) cap *= 2;
                if (cap > max_seq) cap = max_seq;
            }
            assert_int_equal(m.reserved, per_tok * (size_t)cap);
            assert_true(m.metadata > 0);
        }
        /* a full cache refuses the next token and stays intact */
        assert_int_equal(kvb_cache_append(c, 0, 0, k, v), KVB_STATUS_FULL);
        assert_int_equal(kvb_cache_length(c, 0, 0), max_seq);
        /* [kv_head][token][head_dim]: every token and head reads back what was stored */
        for (int n = 1; n <= max_seq; n += 7)
            for (int l = 0; l < L; l++)
                for (int h = 0; h < nkv; h++) {
                    assert_int_equal(kvb_cache_read_kv(c, 0, l, h, n - 1, rk, rv), KVB_STATUS_OK);
                    for (int i = 0; i < hd; i++) {
                        float want = (float)(n * 1000 + l * 100 + h * hd + i) * 0.01f;
                        uint32_t w16[1];          /* room for any storage type */
                        kvb_row_from_f32((kvb_dtype)dt, &want, w16, 1);
                        float wr = want;
                        if (dt != KVB_DTYPE_F32) kvb_row_to_f32((kvb_dtype)dt, w16, &wr, 1);
                        assert_true(rk[i] == wr);
                        assert_true(rv[i] == -wr);
                    }
                }
        assert_int_equal(kvb_cache_read_kv(c, 0, 0, 0, max_seq, rk, rv), KVB_STATUS_INVALID_ARG);
        /* no sequence 1 */
        assert_int_equal(kvb_cache_append(c, 1, 0, k, v), KVB_STATUS_INVALID_ARG);
        /* no layer L */
        assert_int_equal(kvb_cache_append(c, 0, L, k, v), KVB_STATUS_INVALID_ARG);
        assert_int_equal(kvb_cache_seq_clear(c, 0), KVB_STATUS_OK);
        kvb_memory m = kvb_cache_memory(c);
        assert_int_equal(m.used, 0);
        assert_int_equal(m.reserved, 0);                /* both modes give the stores back */
        kvb_cache_destroy(c);
    }
}

/* ---- library input checks ------------------------------------------------ */

static void test_bad_shapes_and_names(void **state)
{
    (void)state;
    char msg[256];
    kvb_shape good = {2, 8, 2, 64, 128};
    assert_int_equal(kvb_shape_check(&good, msg, sizeof msg), KVB_STATUS_OK);
    int *fields[] = {&good.n_layers, &good.n_heads, &good.n_kv_heads, &good.head_dim,
                     &good.max_seq};
    for (size_t i = 0; i < 5; i++)
        for (int bad = -1; bad <= 0; bad++) {
            kvb_shape s = good;
            int *f = (int *)((char *)&s + ((char *)fields[i] - (char *)&good));
            *f = bad;
            assert_int_equal(kvb_shape_check(&s, msg, sizeof msg), KVB_STATUS_INVALID_ARG);
            assert_non_null(strstr(msg, "must be at least 1"));
        }
    kvb_shape s = good;
    s.n_kv_heads = 3;
    assert_int_equal(kvb_shape_check(&s, msg, sizeof msg), KVB_STATUS_INVALID_ARG);
    assert_non_null(strstr(msg, "not a multiple"));
    kvb_options o = {.dtype = KVB_DTYPE_F32, .alloc = KVB_ALLOC_GROW, .max_seqs = 0};
    assert_int_equal(
        kvb_backend_supports(kvb_backend_find("contiguous"), &good, &o, msg, sizeof msg),
        KVB_STATUS_INVALID_ARG);
    o.max_seqs = 1;
    o.dtype = KVB_DTYPE_F16;
    assert_int_equal(kvb_backend_supports(kvb_backend_find("nocache"), &good, &o, msg, sizeof msg),
                     KVB_STATUS_UNSUPPORTED);
    assert_null(kvb_backend_find("no-such-backend"));
    assert_null(kvb_backend_find(NULL));
    kvb_dtype dt;
    kvb_alloc al;
    assert_int_equal(kvb_dtype_parse("f8", &dt), KVB_STATUS_INVALID_ARG);
    assert_int_equal(kvb_dtype_parse("bf16", &dt), KVB_STATUS_OK);
    assert_int_equal(dt, KVB_DTYPE_BF16);
    assert_int_equal(kvb_alloc_parse("static", &al), KVB_STATUS_INVALID_ARG);
    assert_string_equal(kvb_status_str(KVB_STATUS_FULL), "cache full");
    assert_string_equal(kvb_status_str((kvb_status)99), "unknown status");
    kvb_model_config c;
    assert_int_equal(kvb_model_preset("nope", &c), KVB_STATUS_INVALID_ARG);
    assert_int_equal(kvb_model_preset("tiny", &c), KVB_STATUS_OK);
    c.n_kv_heads = 3;
    assert_int_equal(kvb_model_config_check(&c, msg, sizeof msg), KVB_STATUS_INVALID_ARG);
    kvb_model_preset("tiny", &c);
    c.head_dim = 15;
    assert_int_equal(kvb_model_config_check(&c, msg, sizeof msg), KVB_STATUS_INVALID_ARG);
    kvb_model_preset("tiny", &c);
    c.dim = 0;
    assert_int_equal(kvb_model_config_check(&c, msg, sizeof msg), KVB_STATUS_INVALID_ARG);
    assert_non_null(strstr(msg, "dim = 0"));
}

int main(int argc, char **argv)
{
    static const kvbt_test all[] = {
        {"attend_every_backend", test_attend_every_backend, 1},
        {"attend_rejects_planted_bugs", test_attend_rejects_planted_bugs, 0},
        {"contiguous_storage_and_memory", test_contiguous_storage_and_memory, 0},
        {"bad_shapes_and_names", test_bad_shapes_and_names, 0},
    };
    return kvbt_main(argc, argv, "backends", all, KVBT_COUNT(all));
}
