/* test_kvbench.c: correctness of every backend, the kernels, the model, the
 * checkpoint loader, the statistics and the library's input checks (cmocka).
 *
 * Usage: test_kvbench [REGEX]. Parametric tests name every case by its
 * parameters, e.g. attend(backend=contiguous,mode=grow,dt=f16,nh=8,nkv=2,hd=64,ctx=17),
 * and run only the cases the extended regex matches (all of them when it matches
 * the test's own name); other tests run when their own name matches. The same check function judges real backends and the
 * planted wrong ones, so a test that cannot fail would show up here. */
#define _XOPEN_SOURCE 700     /* nftw */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <errno.h>
#include <ftw.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../model/model.h"
#include "../base/probe.h"
#include "../harness/run.h"
#include "../harness/results.h"
#include "../harness/serve.h"
#include "../base/stats.h"
#include "../analysis/compare.h"
#include "../base/datadir.h"
#include "../harness/sweep.h"
#include "../harness/topo.h"
#include "../impls/kernels/kernels.h"
#include "../impls/kernels/quant.h"
#include "../impls/kvb_backend.h"

typedef struct test_ctx {
    regex_t re;
    int     has_re;
    char    tmpdir[256];
} test_ctx;

/* state NULL: every case (the planted-bug test judges the whole grid) */
static int case_selected(void **state, const char *name)
{
    if (!state) return 1;
    test_ctx *t = *state;
    return !t->has_re || regexec(&t->re, name, 0, NULL, 0) == 0;
}

/* xorshift-based uniform in [-1, 1): deterministic per seed */
static float urand(uint64_t *s)
{
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return (float)((*s >> 40) * (2.0 / 16777216.0) - 1.0);
}

/* ---- float64 reference ------------------------------------------------- */

/* out[h] = softmax(q_h K_j^T / sqrt(hd)) V_j with j = h / (nh / nkv);
 * k, v: [ctx][nkv][hd] as given to append (before storage rounding). */
static void ref_attend(const float *q, const float *k, const float *v, int ctx, int nh, int nkv,
                       int hd, double *out)
{
    int g = nh / nkv;
    double *s = malloc((size_t)ctx * sizeof *s);
    for (int h = 0; h < nh; h++) {
        int j = h / g;
        double mx = -INFINITY, sum = 0;
        for (int t = 0; t < ctx; t++) {
            double d = 0;
            for (int i = 0; i < hd; i++)
                d += (double)q[h * hd + i] * k[((size_t)t * nkv + j) * hd + i];
            s[t] = d / sqrt((double)hd);
            if (s[t] > mx) mx = s[t];
        }
        for (int t = 0; t < ctx; t++) { s[t] = exp(s[t] - mx); sum += s[t]; }
        for (int i = 0; i < hd; i++) {
            double acc = 0;
            for (int t = 0; t < ctx; t++) acc += s[t] * v[((size_t)t * nkv + j) * hd + i];
            out[h * hd + i] = acc / sum;
        }
    }
    free(s);
}

static double rel_l2(const float *x, const double *ref, size_t n)
{
    double e = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        double d = x[i] - ref[i];
        e += d * d;
        r += ref[i] * ref[i];
        if (!isfinite(x[i])) return INFINITY;
    }
    return sqrt(e / (r > 0 ? r : 1));
}

/* Largest relative L2 error each storage type may show against float64 on the
 * inputs below (keys and values in [-1,1), queries in [-2,2)): f32 is at
 * rounding level; f16 keeps 11 significant bits, bf16 keeps 8. The quantized
 * types: about 1.4x the worst measured over the whole grid (q8 5.7e-3 with the
 * integer kernel's rounded query, q4
 * 9.3e-2, q4_1 8.6e-2, q2 0.43 with uniform values: 4 levels leave an rms
 * error of a third of the values' rms, and the average over tokens keeps it). */
static double tolerance(kvb_dtype dt)
{
    switch (dt) {
    case KVB_DTYPE_F16:  return 2e-3;
    case KVB_DTYPE_BF16: return 1.5e-2;
    case KVB_DTYPE_Q8:   return 8e-3;
    case KVB_DTYPE_Q4:   return 0.13;
    case KVB_DTYPE_Q4_1: return 0.12;
    case KVB_DTYPE_Q2:   return 0.6;
    default:             return 2e-5;
    }
}

/* ---- planted wrong backends: contiguous with one bug each --------------- */

typedef struct wrapped { kvb_cache *inner; kvb_shape shape; } wrapped;

static kvb_status w_create(kvb_cache **out, const kvb_shape *s, const kvb_options *o, char *m, size_t n)
{
    wrapped *w = calloc(1, sizeof *w);
    if (!w) return KVB_STATUS_NO_MEMORY;
    w->shape = *s;
    kvb_status st = kvb_backend_find("contiguous")->create(&w->inner, s, o, m, n);
    if (st != KVB_STATUS_OK) { free(w); return st; }
    *out = (kvb_cache *)(void *)w;
    return KVB_STATUS_OK;
}
static void w_destroy(kvb_cache *c)
{
    wrapped *w = (wrapped *)(void *)c;
    if (!w) return;
    kvb_backend_find("contiguous")->destroy(w->inner);
    free(w);
}
static kvb_status w_append(kvb_cache *c, int seq, int layer, const float *k, const float *v)
{
    return kvb_backend_find("contiguous")->append(((wrapped *)(void *)c)->inner, seq, layer, k, v);
}
/* bug 1: forgets the 1/sqrt(head_dim) scale */
static kvb_status w_attend_noscale(kvb_cache *c, int seq, int layer, const float *q, float *out)
{
    wrapped *w = (wrapped *)(void *)c;
    size_t n = (size_t)w->shape.n_heads * w->shape.head_dim;
    float *q2 = malloc(n * sizeof *q2);
    for (size_t i = 0; i < n; i++) q2[i] = q[i] * sqrtf((float)w->shape.head_dim);
    kvb_status st = kvb_backend_find("contiguous")->attend(w->inner, seq, layer, q2, out);
    free(q2);
    return st;
}
/* bug 2: stores values 0.5% too large (a storage bug small enough to hide in noise) */
static kvb_status w_append_skewed(kvb_cache *c, int seq, int layer, const float *k, const float *v)
{
    wrapped *w = (wrapped *)(void *)c;
    size_t n = (size_t)w->shape.n_kv_heads * w->shape.head_dim;
    float *v2 = malloc(n * sizeof *v2);
    for (size_t i = 0; i < n; i++) v2[i] = v[i] * 1.005f;
    kvb_status st = w_append(c, seq, layer, k, v2);
    free(v2);
    return st;
}
static kvb_status w_attend(kvb_cache *c, int seq, int layer, const float *q, float *out)
{
    return kvb_backend_find("contiguous")->attend(((wrapped *)(void *)c)->inner, seq, layer, q, out);
}
static kvb_memory w_memory(const kvb_cache *c)
{
    return kvb_backend_find("contiguous")->memory(((const wrapped *)(const void *)c)->inner);
}
static int w_length(const kvb_cache *c, int seq, int layer)
{
    return kvb_backend_find("contiguous")->length(((const wrapped *)(const void *)c)->inner, seq, layer);
}

static const kvb_backend wrong_noscale = {
    .name = "wrong-noscale", .description = "planted bug: no 1/sqrt(d)",
    .create = w_create, .destroy = w_destroy, .append = w_append, .attend = w_attend_noscale,
    .memory = w_memory, .length = w_length,
};
static const kvb_backend wrong_skewed = {
    .name = "wrong-skewed-v", .description = "planted bug: values stored 0.5% large",
    .create = w_create, .destroy = w_destroy, .append = w_append_skewed, .attend = w_attend,
    .memory = w_memory, .length = w_length,
};

/* ---- the attend check ----------------------------------------------------- */

static const struct { int nh, nkv; } head_shapes[] = {{8, 8}, {8, 2}, {8, 1}};   /* MHA, GQA 4:1, MQA */
static const int head_dims[] = {16, 64, 128};
static const int contexts[] = {1, 2, 17, 48, 768, 1000};   /* 48, 768: whole blocks of 3, 16, 256 */
static const int paged_blocks[] = {1, 3, 16, 256};

typedef struct check_result { int cases, failed, skipped; double worst[KVB_DTYPE_COUNT]; } check_result;

/* The quantized backend's settings the grid runs through: group, residual, key axis. */
static const struct { int group, residual; kvb_key_axis axis; } quant_variants[] = {
    {0, 0, KVB_KEY_AXIS_TOKEN}, {0, 0, KVB_KEY_AXIS_CHANNEL}, {16, 20, KVB_KEY_AXIS_DEFAULT},
};

/* Appends ctx random tokens to layer 1 of sequence 1 of a 2-layer, 2-sequence
 * cache (layer 0 and sequence 0 get other data, so mixing them up shows), then
 * compares attend with the float64 reference. Every storage type and mode. */
static check_result check_attend(void **state, const kvb_backend *b, int verbose)
{
    check_result r = {0};
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (size_t hs = 0; hs < sizeof head_shapes / sizeof head_shapes[0]; hs++)
    for (size_t hi = 0; hi < sizeof head_dims / sizeof head_dims[0]; hi++)
    for (size_t ci = 0; ci < sizeof contexts / sizeof contexts[0]; ci++)
    for (int dt = 0; dt < KVB_DTYPE_COUNT; dt++)
    for (int mode = 0; mode < KVB_ALLOC_COUNT; mode++)
    for (size_t bi = 0; bi < ((b->flags & KVB_BACKEND_PAGED) ? sizeof paged_blocks / sizeof paged_blocks[0]
                              : (b->flags & KVB_BACKEND_QUANT) ? sizeof quant_variants / sizeof quant_variants[0]
                              : 2); bi++) {
        int nh = head_shapes[hs].nh, nkv = head_shapes[hs].nkv, hd = head_dims[hi], ctx = contexts[ci];
        int bs = (b->flags & KVB_BACKEND_PAGED) ? paged_blocks[bi] : 0;
        int qv = (b->flags & KVB_BACKEND_QUANT) != 0;
        char name[160], blk[64] = "";
        if (bs) snprintf(blk, sizeof blk, ",bs=%d", bs);
        if (qv)
            snprintf(blk, sizeof blk, ",g=%d,r=%d,keys=%s", quant_variants[bi].group ? quant_variants[bi].group : 32,
                     quant_variants[bi].residual, kvb_key_axis_name(quant_variants[bi].axis));
        /* dense stores: one thread, and three (split over heads, and over the
         * context where heads are fewer: MQA and GQA 4:1 at 768 and 1000 tokens);
         * paged: over heads where the K/V pass 256 KiB, and over parts of the
         * block table for MQA at 768 and 1000 tokens */
        int threads = !bs && !qv && bi == 1 ? 3 : 0;
        if (threads) snprintf(blk, sizeof blk, ",threads=%d", threads);
        if (bs && bi % 2) {                 /* paged: block sizes 3 and 256 on two threads */
            threads = 2;
            snprintf(blk, sizeof blk, ",bs=%d,threads=2", bs);
        }
        snprintf(name, sizeof name, "attend(backend=%s,mode=%s,dt=%s%s,nh=%d,nkv=%d,hd=%d,ctx=%d)",
                 b->name, kvb_alloc_name((kvb_alloc)mode), kvb_dtype_name((kvb_dtype)dt), blk, nh, nkv,
                 hd, ctx);
        if (!case_selected(state, name)) continue;
        kvb_shape shape = {2, nh, nkv, hd, 1024};
        kvb_options opt = {.dtype = (kvb_dtype)dt, .alloc = (kvb_alloc)mode, .max_seqs = 2,
                           .block_tokens = bs, .threads = threads};
        if (qv) {
            opt.group = quant_variants[bi].group;
            opt.residual = quant_variants[bi].residual;
            opt.key_axis = quant_variants[bi].axis;
        }
        char why[256];
        if (kvb_backend_supports(b, &shape, &opt, why, sizeof why) != KVB_STATUS_OK) {
            r.skipped++;
            continue;
        }
        r.cases++;
        size_t kvn = (size_t)ctx * nkv * hd;
        float *k = malloc(kvn * sizeof *k), *v = malloc(kvn * sizeof *v);
        float *q = malloc((size_t)nh * hd * sizeof *q), *out = malloc((size_t)nh * hd * sizeof *out);
        double *ref = malloc((size_t)nh * hd * sizeof *ref);
        float *junk = malloc((size_t)nkv * hd * sizeof *junk);
        for (size_t i = 0; i < kvn; i++) { k[i] = urand(&seed); v[i] = urand(&seed); }
        for (int i = 0; i < nh * hd; i++) q[i] = 2.0f * urand(&seed);
        kvb_cache *c = NULL;
        char msg[256] = "";
        assert_int_equal(b->create(&c, &shape, &opt, msg, sizeof msg), KVB_STATUS_OK);
        int ok = 1;
        for (int t = 0; t < ctx && ok; t++) {
            for (int i = 0; i < nkv * hd; i++) junk[i] = 50.0f * urand(&seed);
            ok = b->append(c, 0, 1, junk, junk) == KVB_STATUS_OK &&         /* other sequence */
                 b->append(c, 1, 0, junk, junk) == KVB_STATUS_OK &&         /* other layer */
                 b->append(c, 1, 1, k + (size_t)t * nkv * hd, v + (size_t)t * nkv * hd) == KVB_STATUS_OK;
        }
        ok = ok && b->length(c, 1, 1) == ctx && b->attend(c, 1, 1, q, out) == KVB_STATUS_OK;
        double err = INFINITY;
        if (ok) {
            ref_attend(q, k, v, ctx, nh, nkv, hd, ref);
            err = rel_l2(out, ref, (size_t)nh * hd);
        }
        if (err > r.worst[dt] || !isfinite(err)) r.worst[dt] = err;
        if (!(err <= tolerance((kvb_dtype)dt))) {
            r.failed++;
            if (verbose) print_message("FAIL %s: rel L2 error %.3g > tolerance %.3g\n", name, err,
                                       tolerance((kvb_dtype)dt));
        }
        b->destroy(c);
        free(k); free(v); free(q); free(out); free(ref); free(junk);
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
        print_message("%s: %d cases, %d failed, %d skipped; worst rel L2%s\n", b->name, r.cases, r.failed,
                      r.skipped, worst);
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
    for (size_t i = 0; i < sizeof contexts / sizeof contexts[0]; i++) single_token += contexts[i] == 1;
    int n_ctx = (int)(sizeof contexts / sizeof contexts[0]);
    assert_int_equal(r.failed, r.cases - r.cases * single_token / n_ctx);
}

/* The attention paths kvb_attend_runs chooses between, each against float64,
 * on runs of rows (as a paged cache holds them) with an odd row stride. */
static void test_attend_paths_match_reference(void **state)
{
    const char *names[3] = {"portable", "avx2", "avx512"};
    uint64_t seed = 23;
    int ran = 0;
    for (int pi = 0; pi < 3; pi++) {
        if (!kvb_attend_kernel_find(names[pi], 16, NULL, 0)) {
            print_message("%s path: not in this build or CPU, skipped\n", names[pi]);
            continue;
        }
        /* query heads per KV head: every register-blocking case of the SIMD path
         * (1, 2, 4, 8 and the leftovers of 3 and 9); head_dims not powers of two too */
        static const int gs[] = {1, 2, 3, 4, 8, 9}, hds[] = {8, 16, 24, 32, 48, 64, 80, 128, 256};
        for (int dt = 0; dt <= KVB_DTYPE_BF16; dt++)
        for (size_t gi = 0; gi < sizeof gs / sizeof gs[0]; gi++)
        for (size_t hi = 0; hi < sizeof hds / sizeof hds[0]; hi++) {
            static const int ctxs[] = {1, 3, 64, 130, 700};
            int hd = hds[hi];
            kvb_attend_runs_fn path = kvb_attend_kernel_find(names[pi], hd, NULL, 0);
            if (!path) continue;             /* its vector width does not divide head_dim */
            for (size_t ci = 0; ci < sizeof ctxs / sizeof ctxs[0]; ci++) {
                int nh = gs[gi], nkv = 1, g = nh / nkv, n = ctxs[ci];
                char name[160];
                snprintf(name, sizeof name, "attend_path(impl=%s,dt=%s,nh=%d,nkv=%d,hd=%d,ctx=%d)", names[pi],
                         kvb_dtype_name((kvb_dtype)dt), nh, nkv, hd, n);
                if (!case_selected(state, name)) continue;
                ran++;
                /* token rows of one KV head, stride hd + 16 elements, split into runs of 1..37 rows */
                size_t stride = (size_t)hd + 16, es = kvb_dtype_size((kvb_dtype)dt);
                char *kb = malloc((size_t)n * stride * es), *vb = malloc((size_t)n * stride * es);
                float *k = malloc((size_t)n * hd * 4), *v = malloc((size_t)n * hd * 4), *kk = malloc(stride * 4);
                float *q = malloc((size_t)g * hd * 4), *out = malloc((size_t)g * hd * 4);
                float *scr = malloc(kvb_attend_scratch_floats(g, n, hd) * 4);
                double *ref = malloc((size_t)g * hd * sizeof *ref);
                for (int t = 0; t < n; t++)
                    for (int part = 0; part < 2; part++) {
                        for (size_t i = 0; i < stride; i++) kk[i] = urand(&seed);
                        kvb_row_from_f32((kvb_dtype)dt, kk, (part ? vb : kb) + (size_t)t * stride * es, (int)stride);
                        /* the reference sees the stored values */
                        kvb_row_to_f32((kvb_dtype)dt, (part ? vb : kb) + (size_t)t * stride * es,
                                       (part ? v : k) + (size_t)t * hd, hd);
                    }
                for (int i = 0; i < g * hd; i++) q[i] = 2.0f * urand(&seed);
                kvb_kv_run runs[64];
                int nr = 0;
                for (int t = 0; t < n && nr < 64;) {
                    int m = 1 + (t * 7 + 3) % 37;
                    if (m > n - t || nr == 63) m = n - t;
                    runs[nr++] = (kvb_kv_run){kb + (size_t)t * stride * es, vb + (size_t)t * stride * es, m};
                    t += m;
                }
                path((kvb_dtype)dt, runs, nr, stride, hd, g, q, out, scr, NULL);
                ref_attend(q, k, v, n, g, 1, hd, ref);
                double e = rel_l2(out, ref, (size_t)g * hd);
                if (!(e <= 2e-5)) fail_msg("%s: rel L2 %.3g", name, e);
                /* the same rows as one run: bit-identical (a paged cache equals a contiguous one) */
                float *one = malloc((size_t)g * hd * 4);
                kvb_kv_run whole = {kb, vb, n};
                path((kvb_dtype)dt, &whole, 1, stride, hd, g, q, one, scr, NULL);
                if (memcmp(one, out, (size_t)g * hd * 4) != 0) fail_msg("%s: runs differ from one run", name);
                free(one);
                free(kb); free(vb); free(k); free(v); free(kk); free(q); free(out); free(scr); free(ref);
            }
        }
    }
    if (!ran) skip();
}

/* The no-cache path: causal attention over activations, every position. */
static void test_causal_matches_reference(void **state)
{
    uint64_t seed = 7;
    int ran = 0;
    for (size_t hs = 0; hs < sizeof head_shapes / sizeof head_shapes[0]; hs++)
    for (size_t hi = 0; hi < sizeof head_dims / sizeof head_dims[0]; hi++) {
        int nh = head_shapes[hs].nh, nkv = head_shapes[hs].nkv, hd = head_dims[hi], T = 300;  /* > 2 blocks */
        char name[128];
        snprintf(name, sizeof name, "attend(backend=nocache,dt=f32,nh=%d,nkv=%d,hd=%d,ctx=1..%d)",
                 nh, nkv, hd, T);
        if (!case_selected(state, name)) continue;
        ran++;
        size_t qn = (size_t)T * nh * hd, kn = (size_t)T * nkv * hd;
        float *q = malloc(qn * 4), *k = malloc(kn * 4), *v = malloc(kn * 4), *o = malloc(qn * 4);
        float *scr = malloc(kvb_attend_causal_scratch_floats(nh, nkv, T, hd) * 4);
        double *ref = malloc((size_t)nh * hd * sizeof *ref);
        for (size_t i = 0; i < qn; i++) q[i] = 2.0f * urand(&seed);
        for (size_t i = 0; i < kn; i++) { k[i] = urand(&seed); v[i] = urand(&seed); }
        for (int variant = 0; variant < 2; variant++) {
            memset(o, 0xff, qn * 4);              /* NaN: a position left unwritten fails */
            (variant ? kvb_attend_causal_gemm : kvb_attend_causal_rows)(q, k, v, T, nh, nkv, hd, o, scr);
            for (int p = 0; p < T; p++) {
                ref_attend(q + (size_t)p * nh * hd, k, v, p + 1, nh, nkv, hd, ref);
                double e = rel_l2(o + (size_t)p * nh * hd, ref, (size_t)nh * hd);
                if (!(e <= tolerance(KVB_DTYPE_F32)))
                    fail_msg("%s variant %s at position %d: rel L2 error %.3g", name,
                             variant ? "gemm" : "rows", p, e);
            }
        }
        free(q); free(k); free(v); free(o); free(scr); free(ref);
    }
    if (!ran) skip();
}

/* ---- storage conversions --------------------------------------------------- */

static float bits_to_f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static void test_f16_bf16_conversions(void **state)
{
    (void)state;
    assert_int_equal(kvb_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(kvb_f32_to_f16(-2.0f), 0xc000);
    assert_int_equal(kvb_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(kvb_f32_to_f16(65519.0f), 0x7bff);             /* rounds down */
    assert_int_equal(kvb_f32_to_f16(65520.0f), 0x7c00);             /* tie to even: Inf */
    assert_int_equal(kvb_f32_to_f16(1e9f), 0x7c00);
    assert_int_equal(kvb_f32_to_f16(bits_to_f(0x33800000u)), 0x0001); /* 2^-24 */
    assert_int_equal(kvb_f32_to_f16(bits_to_f(0x33000000u)), 0x0000); /* 2^-25 ties to 0 */
    assert_int_equal(kvb_f32_to_f16(1.0f + 1.0f / 2048), 0x3c00);    /* tie to even */
    assert_int_equal(kvb_f32_to_f16(1.0f + 3.0f / 2048), 0x3c02);    /* tie to even, up */
    assert_true(isnan(kvb_f16_to_f32(kvb_f32_to_f16(NAN))));
    assert_true(isinf(kvb_f16_to_f32(kvb_f32_to_f16(-INFINITY))));
    assert_true(kvb_f16_to_f32(kvb_f32_to_f16(-INFINITY)) < 0);
    /* every finite f16 and bf16 survives a trip through f32 exactly */
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00u) == 0x7c00u) continue;
        assert_int_equal(kvb_f32_to_f16(kvb_f16_to_f32((uint16_t)h)), h);
        if ((h & 0x7f80u) == 0x7f80u) continue;
        assert_int_equal(kvb_f32_to_bf16(kvb_bf16_to_f32((uint16_t)h)), h);
    }
    assert_int_equal(kvb_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(kvb_f32_to_bf16(bits_to_f(0x3f808000u)), 0x3f80);  /* tie to even */
    assert_int_equal(kvb_f32_to_bf16(bits_to_f(0x3f818000u)), 0x3f82);  /* tie to even, up */
    assert_true(isnan(kvb_bf16_to_f32(kvb_f32_to_bf16(NAN))));
    /* the row converters agree with the scalar ones (they may be SIMD clones) */
    uint64_t seed = 3;
    float src[333], back[333];
    uint16_t h16[333];
    for (int i = 0; i < 333; i++) src[i] = 100.0f * urand(&seed);
    for (int dt = KVB_DTYPE_F16; dt <= KVB_DTYPE_BF16; dt++) {
        kvb_row_from_f32((kvb_dtype)dt, src, h16, 333);
        kvb_row_to_f32((kvb_dtype)dt, h16, back, 333);
        for (int i = 0; i < 333; i++) {
            float want = dt == KVB_DTYPE_F16 ? kvb_f16_to_f32(kvb_f32_to_f16(src[i]))
                                             : kvb_bf16_to_f32(kvb_f32_to_bf16(src[i]));
            assert_true(back[i] == want);
        }
    }
}

/* ---- quantized storage ----------------------------------------------------- */

static const kvb_dtype qtypes[] = {KVB_DTYPE_Q8, KVB_DTYPE_Q4, KVB_DTYPE_Q4_1, KVB_DTYPE_Q2};
enum { N_QTYPES = sizeof qtypes / sizeof qtypes[0] };

/* Quantizes x (n values), checks the documented bound and returns the step d. */
static float check_group(const kvb_qformat *f, const float *x, int n, const char *what)
{
    uint8_t codes[256], packed[256], back[256];
    uint16_t p[2];
    kvb_quant_group(f, x, 1, n, codes, p);
    float d, a;
    kvb_qgroup_coeffs(f, p, &d, &a);
    if (!(d >= 0 && isfinite(d) && isfinite(a))) fail_msg("%s %s: d %g a %g", kvb_dtype_name(f->dtype), what, d, a);
    kvb_qpack(f, codes, n, packed);
    kvb_qunpack(f, packed, n, back);
    for (int i = 0; i < n; i++) {
        if (codes[i] > f->cmax || back[i] != codes[i])
            fail_msg("%s %s: code %d = %d, unpacked %d", kvb_dtype_name(f->dtype), what, i, codes[i], back[i]);
        float xr = d * (float)codes[i] + a;
        /* half a step, plus float rounding of the read-back */
        double bound = 0.5 * d * (1 + 1e-5) + 1e-6 * fabs(x[i]) + 1e-30;
        if (!(fabs((double)x[i] - xr) <= bound))
            fail_msg("%s %s: x[%d] = %.9g reads back %.9g, error %.3g > d/2 = %.3g", kvb_dtype_name(f->dtype),
                     what, i, x[i], xr, fabs((double)x[i] - xr), 0.5 * d);
    }
    return d;
}

static void test_quant_roundtrip(void **state)
{
    (void)state;
    uint64_t seed = 99;
    for (int fi = 0; fi < N_QTYPES; fi++) {
        const kvb_qformat *f = kvb_qformat_of(qtypes[fi]);
        assert_non_null(f);
        static const int ns[] = {8, 16, 32, 64, 256};
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            int n = ns[ni];
            float x[256];
            for (int rep = 0; rep < 50; rep++) {               /* random, several magnitudes */
                float mag = powf(10.0f, (float)(rep % 9) - 4.0f), off = rep % 3 == 0 ? 3.0f * mag : 0.0f;
                for (int i = 0; i < n; i++) x[i] = mag * urand(&seed) + off;
                check_group(f, x, n, "random");
            }
            for (int i = 0; i < n; i++) x[i] = 0.0f;
            assert_true(check_group(f, x, n, "zeros") == 0.0f);      /* exact: d = 0 */
            for (int i = 0; i < n; i++) x[i] = -2.75f;
            check_group(f, x, n, "constant");
            for (int i = 0; i < n; i++) x[i] = 1e-30f * (float)(i + 1);
            check_group(f, x, n, "tiny");
            for (int i = 0; i < n; i++) x[i] = (i & 1) ? 60000.0f : -60000.0f;   /* largest f16 steps */
            if (!f->asym) check_group(f, x, n, "large");
        }
        /* beyond f16's scale range: clamped to the format's range, never NaN */
        float big[32];
        for (int i = 0; i < 32; i++) big[i] = (i & 1) ? 3e38f : -3e38f;
        uint8_t codes[32];
        uint16_t p[2];
        kvb_quant_group(f, big, 1, 32, codes, p);
        float d, a;
        kvb_qgroup_coeffs(f, p, &d, &a);
        assert_true(d == 65504.0f);
        for (int i = 0; i < 32; i++) {
            float xr = d * (float)codes[i] + a;
            assert_true(isfinite(xr));
            assert_true((i & 1) ? xr > 0 : xr < 0);            /* the sign survives the clamp */
        }
    }
    /* the backend refuses NaN and Inf and keeps the cache as it was */
    const kvb_backend *b = kvb_backend_find("quant");
    kvb_shape sh = {1, 2, 1, 32, 64};
    kvb_options o = {.dtype = KVB_DTYPE_Q8, .max_seqs = 1};
    kvb_cache *c;
    char msg[128];
    assert_int_equal(b->create(&c, &sh, &o, msg, sizeof msg), KVB_STATUS_OK);
    float k[32], v[32];
    for (int i = 0; i < 32; i++) k[i] = v[i] = 0.5f;
    assert_int_equal(b->append(c, 0, 0, k, v), KVB_STATUS_OK);
    k[3] = NAN;
    assert_int_equal(b->append(c, 0, 0, k, v), KVB_STATUS_INVALID_ARG);
    k[3] = 0.5f;
    v[31] = -INFINITY;
    assert_int_equal(b->append(c, 0, 0, k, v), KVB_STATUS_INVALID_ARG);
    assert_int_equal(b->length(c, 0, 0), 1);
    b->destroy(c);
}

/* Every kernel table against a float64 reference over read-back rows (and, for
 * a table that rounds the query, the rounded query). */
static void test_quant_kernels_match_dequantized(void **state)
{
    const kvb_qkernels *tables[3] = {&kvb_qkernels_portable, kvb_qkernels_avx512(), kvb_qkernels_avx512_vnni()};
    const char *names[3] = {"portable", "avx512", "avx512-vnni"};
    uint64_t seed = 5;
    int ran = 0;
    for (int ti = 0; ti < 3; ti++) {
        if (!tables[ti]) { print_message("%s kernels: not in this build or CPU, skipped\n", names[ti]); continue; }
        for (int fi = 0; fi < N_QTYPES; fi++)
        for (int hd = 32; hd <= 256; hd *= 2)
        for (int group = 32; group <= hd; group *= 2)
        for (int raw = 0; raw < 2; raw++) {
            static const int gs[] = {1, 2, 3, 4, 5, 8, 9}, ns[] = {1, 3, 4, 5, 63, 64, 65, 130};
            const kvb_qformat *f = kvb_qformat_of(qtypes[fi]);
            int np = kvb_qparams(f), ng = hd / group;
            for (size_t gi = 0; gi < sizeof gs / sizeof gs[0]; gi++)
            for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
                int g = gs[gi], n = ns[ni];
                char name[160];
                snprintf(name, sizeof name, "qkernel(impl=%s,dt=%s,hd=%d,group=%d,raw=%d,g=%d,n=%d)",
                         tables[ti]->name, kvb_dtype_name(f->dtype), hd, group, raw, g, n);
                if (!case_selected(state, name)) continue;
                ran++;
                size_t cb = kvb_qcode_bytes(f, hd);
                uint8_t *codes = malloc((size_t)n * cb), *u = malloc((size_t)hd);
                uint16_t *w = malloc((size_t)n * ng * np * 2);
                float *x = malloc((size_t)hd * 4), *deq = malloc((size_t)n * hd * 4);
                float *q = malloc((size_t)g * hd * 4), *wt = malloc((size_t)g * n * 4);
                float *sc = malloc((size_t)g * n * 4), *out = malloc((size_t)g * hd * 4);
                float *scr = malloc(kvb_qkernels_scratch_floats(g, hd) * 4);
                for (int t = 0; t < n; t++) {
                    for (int i = 0; i < hd; i++) x[i] = urand(&seed) * (1.0f + (float)(t % 3));
                    for (int j = 0; j < ng; j++)
                        kvb_quant_group(f, x + j * group, 1, group, u + j * group, w + ((size_t)t * ng + j) * np);
                    kvb_qpack(f, u, hd, codes + (size_t)t * cb);
                }
                kvb_qrows r = {f, codes, raw ? NULL : w, cb, (size_t)ng * np, n, hd, group};
                /* tm: the size of each value's terms, |d| c + |a|: a kernel may sum
                 * d c and a apart (folded), so rounding scales with them */
                float *tm = malloc((size_t)n * hd * 4);
                for (int t = 0; t < n; t++) {
                    kvb_qrow_codes(&r, t, tm + (size_t)t * hd);
                    if (raw) { memcpy(deq + (size_t)t * hd, tm + (size_t)t * hd, (size_t)hd * 4); continue; }
                    kvb_qrow_dequant(&r, t, deq + (size_t)t * hd);
                    for (int i = 0; i < hd; i++) {
                        float d, a;
                        kvb_qgroup_coeffs(f, w + ((size_t)t * ng + i / group) * np, &d, &a);
                        tm[(size_t)t * hd + i] = fabsf(d) * tm[(size_t)t * hd + i] + fabsf(a);
                    }
                }
                for (int i = 0; i < g * hd; i++) q[i] = 2.0f * urand(&seed);
                for (int i = 0; i < g * n; i++) wt[i] = 0.5f + 0.5f * urand(&seed);
                tables[ti]->scores(&r, g, q, 0.125f, sc, (size_t)n, scr);
                if (tables[ti]->rounds_query && !raw)       /* the reference meets the same query */
                    for (int h = 0; h < g; h++) kvb_qround_query(q + (size_t)h * hd, hd, q + (size_t)h * hd);
                for (int i = 0; i < g * hd; i++) out[i] = 1.0f;    /* accum adds to what is there */
                if (!raw) tables[ti]->accum(&r, g, wt, (size_t)n, out, scr);
                for (int h = 0; h < g; h++)
                    for (int t = 0; t < n; t++) {
                        double want = 0, mag = 0;
                        for (int i = 0; i < hd; i++) {
                            want += (double)q[h * hd + i] * deq[(size_t)t * hd + i];
                            mag += fabs((double)q[h * hd + i]) * tm[(size_t)t * hd + i];
                        }
                        if (!(fabs(sc[(size_t)h * n + t] - 0.125 * want) <= 1e-5 * 0.125 * mag + 1e-30))
                            fail_msg("%s: score[%d][%d] = %.9g, want %.9g", name, h, t, sc[(size_t)h * n + t],
                                     0.125 * want);
                    }
                for (int h = 0; !raw && h < g; h++)
                    for (int i = 0; i < hd; i++) {
                        double want = 1.0, mag = 1.0;
                        for (int t = 0; t < n; t++) {
                            want += (double)wt[(size_t)h * n + t] * deq[(size_t)t * hd + i];
                            mag += fabs((double)wt[(size_t)h * n + t]) * tm[(size_t)t * hd + i];
                        }
                        if (!(fabs(out[h * hd + i] - want) <= 1e-5 * mag))
                            fail_msg("%s: out[%d][%d] = %.9g, want %.9g", name, h, i, out[h * hd + i], want);
                    }
                free(codes); free(u); free(w); free(x); free(deq); free(q); free(wt); free(sc); free(out); free(scr);
                free(tm);
            }
        }
    }
    /* the SIMD softmax's exp against libm */
    for (int ti = 0; ti < 3; ti++) {
        if (!tables[ti]) continue;
        float sv[37];
        double ref[37], sum = 0;
        for (int i = 0; i < 37; i++) sv[i] = 30.0f * urand(&seed);
        float mx = sv[0];
        for (int i = 1; i < 37; i++) mx = sv[i] > mx ? sv[i] : mx;
        for (int i = 0; i < 37; i++) { ref[i] = exp((double)(sv[i] - mx)); sum += ref[i]; }   /* the f32 difference */
        float got = tables[ti]->softmax_exp(sv, 37);
        assert_true(fabs(got - sum) <= 1e-6 * sum);
        double worst = 0;
        for (int i = 0; i < 37; i++) worst = fmax(worst, fabs(sv[i] - ref[i]) / ref[i]);
        print_message("%s softmax exp: worst relative error %.2g\n", tables[ti]->name, worst);
        assert_true(worst <= 4e-7);                      /* a few ulp */
    }
    if (!ran) skip();
}

/* The backend's fused attend equals float64 attention over what read_kv gives
 * back (the dequantized values, f32 residual included) to float rounding, for
 * every format, key axis, residual window, head shape and context; and differs
 * from attention over the unquantized inputs once anything is quantized, so
 * the comparison can tell the two apart. */
static void test_quant_fused_equals_dequantized(void **state)
{
    const kvb_backend *b = kvb_backend_find("quant");
    uint64_t seed = 11;
    int ran = 0;
    static const int ctxs[] = {1, 2, 17, 31, 32, 33, 100, 300};
    static const char *const kernels[] = {"portable", "avx512", "avx512-vnni"};
    static const int hds[] = {16, 64, 128, 256};
    /* residual 600 > max_seq 512: the ring is the whole sequence, nothing is quantized */
    static const struct { int group, residual; kvb_key_axis axis; } vs[] = {
        {32, 0, KVB_KEY_AXIS_TOKEN}, {32, 0, KVB_KEY_AXIS_CHANNEL}, {32, 128, KVB_KEY_AXIS_DEFAULT},
        {64, 7, KVB_KEY_AXIS_CHANNEL}, {16, 40, KVB_KEY_AXIS_TOKEN}, {32, 600, KVB_KEY_AXIS_CHANNEL},
    };
    int skipped = 0;
    for (size_t ki = 0; ki < sizeof kernels / sizeof kernels[0]; ki++)
    for (int fi = 0; fi < N_QTYPES; fi++)
    for (size_t vi = 0; vi < sizeof vs / sizeof vs[0]; vi++)
    for (size_t hs = 0; hs < sizeof head_shapes / sizeof head_shapes[0]; hs++)
    for (size_t hi = 0; hi < sizeof hds / sizeof hds[0]; hi++)
    for (size_t ci = 0; ci < sizeof ctxs / sizeof ctxs[0]; ci++) {
        int nh = head_shapes[hs].nh, nkv = head_shapes[hs].nkv, hd = hds[hi], ctx = ctxs[ci];
        kvb_shape sh = {1, nh, nkv, hd, 512};
        /* odd contexts attend with two threads (split over KV heads where the
         * codes pass 256 KiB: the larger shapes at 300 tokens) */
        int threads = ci % 2 ? 2 : 1;
        kvb_options o = {.dtype = qtypes[fi], .max_seqs = 1, .group = vs[vi].group,
                         .residual = vs[vi].residual, .key_axis = vs[vi].axis, .qkernel = kernels[ki],
                         .threads = threads};
        char name[240], why[160];
        snprintf(name, sizeof name,
                 "quant_fused(kernel=%s,dt=%s,g=%d,r=%d,keys=%s,threads=%d,nh=%d,nkv=%d,hd=%d,ctx=%d)",
                 kernels[ki], kvb_dtype_name(qtypes[fi]), vs[vi].group, vs[vi].residual,
                 kvb_key_axis_name(vs[vi].axis), threads, nh, nkv, hd, ctx);
        if (!case_selected(state, name)) continue;
        if (kvb_backend_supports(b, &sh, &o, why, sizeof why) != KVB_STATUS_OK) { skipped++; continue; }
        ran++;
        const kvb_qkernels *kt = kvb_qkernels_find(kernels[ki], hd, vs[vi].group, why, sizeof why);
        int rounded = kt->rounds_query && kvb_key_axis_resolve(qtypes[fi], vs[vi].axis) == KVB_KEY_AXIS_TOKEN;
        size_t kvn = (size_t)ctx * nkv * hd;
        float *k = malloc(kvn * 4), *v = malloc(kvn * 4), *rk = malloc(kvn * 4), *rv = malloc(kvn * 4);
        float *q = malloc((size_t)nh * hd * 4), *out = malloc((size_t)nh * hd * 4);
        double *ref = malloc((size_t)nh * hd * sizeof *ref);
        for (size_t i = 0; i < kvn; i++) { k[i] = urand(&seed); v[i] = urand(&seed); }
        for (int i = 0; i < nh * hd; i++) q[i] = 2.0f * urand(&seed);
        kvb_cache *c;
        char msg[128];
        assert_int_equal(b->create(&c, &sh, &o, msg, sizeof msg), KVB_STATUS_OK);
        for (int t = 0; t < ctx; t++)
            assert_int_equal(b->append(c, 0, 0, k + (size_t)t * nkv * hd, v + (size_t)t * nkv * hd), KVB_STATUS_OK);
        assert_int_equal(b->attend(c, 0, 0, q, out), KVB_STATUS_OK);
        for (int t = 0; t < ctx; t++)
            for (int h = 0; h < nkv; h++)
                assert_int_equal(b->read_kv(c, 0, 0, h, t, rk + ((size_t)t * nkv + h) * hd,
                                            rv + ((size_t)t * nkv + h) * hd), KVB_STATUS_OK);
        float *qr = malloc((size_t)nh * hd * 4);
        for (int h = 0; h < nh; h++) {
            if (rounded) kvb_qround_query(q + (size_t)h * hd, hd, qr + (size_t)h * hd);
            else         memcpy(qr + (size_t)h * hd, q + (size_t)h * hd, (size_t)hd * 4);
        }
        ref_attend(qr, rk, rv, ctx, nh, nkv, hd, ref);
        free(qr);
        double e = rel_l2(out, ref, (size_t)nh * hd);
        if (!(e <= 2e-5)) fail_msg("%s: rel L2 %.3g against attention over the read-back values", name, e);
        int quantized = memcmp(k, rk, kvn * 4) != 0 || memcmp(v, rv, kvn * 4) != 0;
        int unit = kvb_key_axis_resolve(qtypes[fi], vs[vi].axis) == KVB_KEY_AXIS_CHANNEL ? vs[vi].group : 1;
        assert_int_equal(quantized, ctx >= vs[vi].residual + unit);     /* the residual window holds */
        if (quantized) {
            ref_attend(q, k, v, ctx, nh, nkv, hd, ref);
            assert_true(rel_l2(out, ref, (size_t)nh * hd) > 2e-5);
        }
        b->destroy(c);
        free(k); free(v); free(rk); free(rv); free(q); free(out); free(ref);
    }
    print_message("quant fused: %d cases, %d skipped (kernel or shape unsupported here)\n", ran, skipped);
    if (!ran) skip();
}

/* Memory: bytes per token match the formats' bits, the f32 tail counts at
 * 4 bytes, and fork/clear keep the books. */
static void test_quant_memory_and_lifecycle(void **state)
{
    (void)state;
    const kvb_backend *b = kvb_backend_find("quant");
    const int L = 2, nh = 4, nkv = 2, hd = 64, max_seq = 300;
    for (int fi = 0; fi < N_QTYPES; fi++)
    for (int axis = KVB_KEY_AXIS_TOKEN; axis <= KVB_KEY_AXIS_CHANNEL; axis++)
    for (int mode = 0; mode < KVB_ALLOC_COUNT; mode++) {
        const int R = 24, G = 32;
        kvb_shape sh = {L, nh, nkv, hd, max_seq};
        kvb_options o = {.dtype = qtypes[fi], .alloc = (kvb_alloc)mode, .max_seqs = 2, .group = G,
                         .residual = R, .key_axis = (kvb_key_axis)axis};
        kvb_cache *c;
        char msg[128];
        assert_int_equal(b->create(&c, &sh, &o, msg, sizeof msg), KVB_STATUS_OK);
        double qbits = kvb_dtype_bits(qtypes[fi], G);
        size_t per_tok_q = (size_t)(2.0 * L * nkv * hd * qbits / 8.0 + 0.5), per_tok_f = 2 * (size_t)L * nkv * hd * 4;
        uint64_t seed = 3;
        float k[128], v[128];
        int unit = axis == KVB_KEY_AXIS_CHANNEL ? G : 1;
        for (int n = 1; n <= max_seq; n++) {
            for (int l = 0; l < L; l++) {
                for (int i = 0; i < nkv * hd; i++) { k[i] = urand(&seed); v[i] = urand(&seed); }
                assert_int_equal(b->append(c, 0, l, k, v), KVB_STATUS_OK);
            }
            int nq = n >= R + unit ? (n - R) / unit * unit : 0;
            kvb_memory m = b->memory(c), sm = b->seq_memory(c, 0);
            assert_int_equal(m.used, per_tok_q * (size_t)nq + per_tok_f * (size_t)(n - nq));
            assert_int_equal(sm.used, m.used);
            assert_true(m.reserved >= m.used);
        }
        assert_int_equal(b->append(c, 0, 0, k, v), KVB_STATUS_FULL);
        /* fork: a full copy that attends alike */
        assert_int_equal(b->seq_fork(c, 0, 1), KVB_STATUS_OK);
        float q[256], o0[256], o1[256];
        for (int i = 0; i < nh * hd; i++) q[i] = urand(&seed);
        for (int l = 0; l < L; l++) {
            assert_int_equal(b->attend(c, 0, l, q, o0), KVB_STATUS_OK);
            assert_int_equal(b->attend(c, 1, l, q, o1), KVB_STATUS_OK);
            assert_memory_equal(o0, o1, sizeof(float) * nh * hd);
        }
        assert_int_equal(b->memory(c).used, 2 * b->seq_memory(c, 0).used);
        assert_int_equal(b->seq_clear(c, 0), KVB_STATUS_OK);
        assert_int_equal(b->seq_memory(c, 0).reserved, 0);
        assert_int_equal(b->length(c, 0, 0), 0);
        assert_int_equal(b->length(c, 1, 1), max_seq);
        b->destroy(c);
    }
    /* fork with quantized tokens and a part-filled f32 ring, then different tokens
     * into each: each sequence reads back its own history and attends over it */
    {
        const int fnh = 4, fkv = 2, fhd = 64, n0 = 50, n1 = 20;
        kvb_shape fs = {1, fnh, fkv, fhd, 128};
        kvb_options fo = {.dtype = KVB_DTYPE_Q4, .max_seqs = 2, .group = 32, .residual = 5,
                          .key_axis = KVB_KEY_AXIS_CHANNEL};
        kvb_cache *c;
        char msg[128];
        assert_int_equal(b->create(&c, &fs, &fo, msg, sizeof msg), KVB_STATUS_OK);
        uint64_t seed = 17;
        float kv[2][128];
        for (int t = 0; t < n0; t++) {
            for (int i = 0; i < fkv * fhd; i++) { kv[0][i] = urand(&seed); kv[1][i] = urand(&seed); }
            assert_int_equal(b->append(c, 0, 0, kv[0], kv[1]), KVB_STATUS_OK);
        }
        assert_int_equal(b->seq_fork(c, 0, 1), KVB_STATUS_OK);   /* 32 quantized, 18 in the ring */
        for (int t = 0; t < n1; t++)
            for (int sq = 0; sq < 2; sq++) {
                for (int i = 0; i < fkv * fhd; i++) { kv[0][i] = urand(&seed); kv[1][i] = urand(&seed); }
                assert_int_equal(b->append(c, sq, 0, kv[0], kv[1]), KVB_STATUS_OK);
            }
        float *rk[2], *rv[2], q[256], out[256];
        double ref[256];
        for (int sq = 0; sq < 2; sq++) {
            rk[sq] = malloc((size_t)(n0 + n1) * fkv * fhd * 4);
            rv[sq] = malloc((size_t)(n0 + n1) * fkv * fhd * 4);
            for (int t = 0; t < n0 + n1; t++)
                for (int h = 0; h < fkv; h++)
                    assert_int_equal(b->read_kv(c, sq, 0, h, t, rk[sq] + ((size_t)t * fkv + h) * fhd,
                                                rv[sq] + ((size_t)t * fkv + h) * fhd), KVB_STATUS_OK);
        }
        /* the 32 tokens quantized before the fork read back alike; the 18 then in
         * the ring were quantized after it, with per-channel scales that also
         * saw each sequence's own later tokens, so they may differ */
        assert_memory_equal(rk[0], rk[1], (size_t)32 * fkv * fhd * 4);
        assert_memory_equal(rv[0], rv[1], (size_t)32 * fkv * fhd * 4);
        assert_true(memcmp(rk[0] + (size_t)n0 * fkv * fhd, rk[1] + (size_t)n0 * fkv * fhd, (size_t)n1 * fkv * fhd * 4) != 0);
        for (int i = 0; i < fnh * fhd; i++) q[i] = 2.0f * urand(&seed);
        for (int sq = 0; sq < 2; sq++) {
            assert_int_equal(b->attend(c, sq, 0, q, out), KVB_STATUS_OK);
            ref_attend(q, rk[sq], rv[sq], n0 + n1, fnh, fkv, fhd, ref);
            assert_true(rel_l2(out, ref, (size_t)fnh * fhd) <= 2e-5);
            free(rk[sq]); free(rv[sq]);
        }
        b->destroy(c);
    }
    /* options out of range are refused with their value named */
    kvb_shape sh = {1, 4, 2, 64, 16};
    char why[160];
    kvb_options bad[] = {
        {.dtype = KVB_DTYPE_Q8, .max_seqs = 1, .group = 24},
        {.dtype = KVB_DTYPE_Q8, .max_seqs = 1, .group = 128, .residual = 0},
        {.dtype = KVB_DTYPE_Q8, .max_seqs = 1, .residual = -1},
        {.dtype = KVB_DTYPE_F16, .max_seqs = 1},
    };
    const char *names[] = {"group = 24", "head_dim = 64", "residual = -1", "storage type f16"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_not_equal(kvb_backend_supports(b, &sh, &bad[i], why, sizeof why), KVB_STATUS_OK);
        if (!strstr(why, names[i])) fail_msg("case %zu: message '%s' lacks '%s'", i, why, names[i]);
    }
    kvb_options bad_kernel = {.dtype = KVB_DTYPE_Q8, .max_seqs = 1, .qkernel = "neon"};
    assert_int_equal(kvb_backend_supports(b, &sh, &bad_kernel, why, sizeof why), KVB_STATUS_INVALID_ARG);
    assert_non_null(strstr(why, "'neon'"));
    kvb_options q8 = {.dtype = KVB_DTYPE_Q8, .max_seqs = 1};
    assert_int_equal(kvb_backend_supports(kvb_backend_find("contiguous"), &sh, &q8, why, sizeof why),
                     KVB_STATUS_UNSUPPORTED);
}

/* ---- topology and pinning (hwloc) ------------------------------------------ */

/* K/V memory: zeroed, writable to the last byte, huge-page aligned when large. */
static void test_kv_alloc(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 4095, (size_t)4 << 20, ((size_t)4 << 20) + 12345, (size_t)9 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = kvb_kv_alloc(sizes[i]);
        assert_non_null(p);
        size_t nonzero = 0;
        for (size_t j = 0; j < sizes[i]; j += 997) nonzero += p[j] != 0;
        assert_int_equal(nonzero + (p[sizes[i] - 1] != 0), 0);
#if defined(__linux__)
        if (sizes[i] >= ((size_t)4 << 20)) assert_int_equal((uintptr_t)p % ((uintptr_t)2 << 20), 0);
#endif
        memset(p, 0xab, sizes[i]);
        kvb_kv_free(p, sizes[i]);
    }
    kvb_kv_free(NULL, 123);
}

/* The baseline folder of a CPU model: make regress finds it by this name. */
static void test_cpu_key(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"Intel(R) Xeon(R) Processor", "intel-r-xeon-r-processor"},
        {"AMD EPYC", "amd-epyc"},
        {"  AMD Ryzen 9 7950X 16-Core Processor  ", "amd-ryzen-9-7950x-16-core-processor"},
        {"Neoverse-N1", "neoverse-n1"},
        {"(R)", "r"},
        {"() --", "unknown"},
        {"", "unknown"},
    };
    char key[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kvb_cpu_key_of(cases[i][0], key, sizeof key);
        assert_string_equal(key, cases[i][1]);
    }
    kvb_cpu_key_of("Intel(R) Xeon(R) Processor", key, 9);   /* cut short: no dangling dash */
    assert_string_equal(key, "intel-r");
    kvb_cpu_key(key, sizeof key);                   /* this machine's: a folder name */
    size_t len = strlen(key);
    assert_true(len > 0 && key[0] != '-' && key[len - 1] != '-');
    for (size_t i = 0; i < len; i++)
        assert_true((key[i] >= 'a' && key[i] <= 'z') || (key[i] >= '0' && key[i] <= '9') ||
                    (key[i] == '-' && key[i + 1] != '-'));
}

static void test_topology_and_pin(void **state)
{
    (void)state;
    kvb_topo t;
    char msg[256];
    if (kvb_topo_init(&t, msg, sizeof msg) != KVB_STATUS_OK) { print_message("%s\n", msg); skip(); }
    /* some virtual machines hide packages or cores from hwloc: only what must hold */
    assert_true(t.pus >= 1 && t.pus >= t.cores);
    if (t.packages > 0 && t.cores > 0) assert_true(t.cores >= t.packages);
    for (int i = 0; i < KVB_TOPO_CACHE_LEVELS; i++)
        if (t.cache_count[i]) assert_true(t.cache_bytes[i] >= 1024);   /* a cache level is at least 1 KiB */
    kvb_pin p;
    assert_int_equal(kvb_pin_parse("spread", &p), KVB_STATUS_OK);
    assert_int_equal(p, KVB_PIN_SPREAD);
    assert_int_equal(kvb_pin_parse("loose", &p), KVB_STATUS_INVALID_ARG);
    int core, cpu;
    assert_int_equal(kvb_topo_pin(&t, KVB_PIN_NONE, 0, &core, &cpu, msg, sizeof msg), KVB_STATUS_OK);
    assert_int_equal(core, -1);
    /* thread i of a compact pool lands on core i (mod cores), verified by hwloc */
    for (int i = 0; i < 2 * t.cores && i < 8; i++) {
        kvb_status st = kvb_topo_pin(&t, KVB_PIN_COMPACT, i, &core, &cpu, msg, sizeof msg);
        if (st == KVB_STATUS_UNSUPPORTED) { print_message("pin: %s\n", msg); break; }
        assert_int_equal(st, KVB_STATUS_OK);
        assert_int_equal(core, i % t.cores);
        assert_true(cpu >= 0);
    }
    /* a threaded cache's workers bind themselves through kvb_options.thread_start:
     * the record is complete when create returns */
    kvb_pin_set ps;
    if (kvb_pin_set_init(&ps, &t, KVB_PIN_COMPACT) == KVB_STATUS_OK) {
        kvb_shape sh = {1, 4, 2, 32, 64};
        kvb_options o = {.dtype = KVB_DTYPE_F32, .alloc = KVB_ALLOC_GROW, .max_seqs = 1, .threads = 3,
                         .thread_start = kvb_pin_thread_start, .thread_start_arg = &ps};
        static const char *const names[] = {"contiguous", "paged", "quant"};
        for (int bi = 0; bi < 3; bi++) {
            memset(ps.ran + 1, 0, sizeof ps.ran - sizeof ps.ran[0]);
            o.dtype = bi == 2 ? KVB_DTYPE_Q8 : KVB_DTYPE_F32;
            kvb_cache *c;
            kvb_status cst = kvb_backend_find(names[bi])->create(&c, &sh, &o, msg, sizeof msg);
            if (cst != KVB_STATUS_OK) fail_msg("%s: %s", names[bi], msg);
            assert_int_equal(kvb_pin_set_threads(&ps), 3);
            assert_int_equal(kvb_pin_set_bound(&ps), 3);
            for (int i = 0; i < 3; i++) assert_int_equal(ps.core[i], i % t.cores);
            kvb_backend_find(names[bi])->destroy(c);
        }
    } else
        print_message("pin set: %s\n", ps.note);
    kvb_topo_unpin(&t);                  /* the tests after this one run unbound again */
    kvb_topo_free(&t);
}

/* ---- sweeps: definitions and their expansion into points ------------------ */

static void test_sweep_expand(void **state)
{
    (void)state;
    kvb_sweep s;
    memset(&s, 0, sizeof s);
    char msg[512];
    static const char *const set[] = {
        "run.backends=nocache,contiguous,paged,quant", "run.dtypes = f32,f16,q8", "run.blocks=4,16",
        "run.threads=1,2", "run.tokens=64", "attend.backends=contiguous,paged,quant", "attend.dtypes=f32,q4",
        "attend.blocks=4,16", "quality.dtypes=q8,q2", "serve.backends=contiguous,paged", "run.tokens=32",
        "run.tokens@nocache=16"};
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++)
        assert_int_equal(kvb_sweep_set(&s, set[i], msg, sizeof msg), KVB_STATUS_OK);
    assert_int_equal(s.n, 11);                  /* run.tokens replaced, not added */
    kvb_sweep_point *p;
    int n = kvb_sweep_expand(&s, "/out", &p, msg, sizeof msg);
    /* run: nocache once per thread count (2), contiguous f32,f16 x 2 threads (4),
     * paged 2 types x 2 blocks x 2 threads (8), quant q8 x 2 (2); attend: contiguous
     * f32, paged f32 (blocks inside), quant q4 (3); quality 1; serve 1 */
    assert_int_equal(n, 16 + 3 + 1 + 1);
    int runs = 0, attends = 0, tokens32 = 0, tokens16 = 0;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < i; j++) assert_string_not_equal(p[i].id, p[j].id);
        int out = 0;
        for (int a = 0; a < p[i].argc; a++) {
            out |= strncmp(p[i].argv[a], "/out/points/", 12) == 0;
            tokens32 += a > 0 && strcmp(p[i].argv[a - 1], "--tokens") == 0 && strcmp(p[i].argv[a], "32") == 0;
            /* the per-backend value reaches no-cache's points only */
            if (a > 0 && strcmp(p[i].argv[a - 1], "--tokens") == 0 && strcmp(p[i].argv[a], "16") == 0) {
                assert_non_null(strstr(p[i].id, "nocache"));
                tokens16++;
            }
            /* quantized types only on quant, paged block sizes only on paged */
            if (a > 0 && strcmp(p[i].argv[a - 1], "--dtype") == 0 && strcmp(p[i].kind, "run") == 0)
                assert_int_equal(strstr(p[i].id, "quant") != NULL, p[i].argv[a][0] == 'q');
            if (strcmp(p[i].argv[a], "--block") == 0 && strcmp(p[i].kind, "serve") != 0)
                assert_non_null(strstr(p[i].id, "paged"));
        }
        assert_true(out);
        assert_null(p[i].argv[p[i].argc]);
        runs += strcmp(p[i].kind, "run") == 0;
        attends += strcmp(p[i].kind, "attend") == 0;
    }
    assert_int_equal(runs, 16);
    assert_int_equal(attends, 3);
    assert_int_equal(tokens32, 14);
    assert_int_equal(tokens16, 2);
    assert_string_equal(p[0].id, "run-stories15m-nocache-f32-t1");
    free(p);
    /* bad input names the key or value */
    assert_int_equal(kvb_sweep_set(&s, "run.tokenz=5", msg, sizeof msg), KVB_STATUS_INVALID_ARG);
    assert_non_null(strstr(msg, "run.tokenz"));
    assert_int_equal(kvb_sweep_set(&s, "run.tokens", msg, sizeof msg), KVB_STATUS_INVALID_ARG);
    assert_int_equal(kvb_sweep_set(&s, "run.dtypes@paged=f16", msg, sizeof msg), KVB_STATUS_INVALID_ARG);
    assert_non_null(strstr(msg, "KEY@BACKEND"));
    assert_int_equal(kvb_sweep_set(&s, "run.tokens=5;rm", msg, sizeof msg), KVB_STATUS_INVALID_ARG);
    assert_int_equal(kvb_sweep_set(&s, "attend.shapes=32x8", msg, sizeof msg), KVB_STATUS_OK);
    assert_int_equal(kvb_sweep_expand(&s, "/out", &p, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "32x8"));
    assert_int_equal(kvb_sweep_set(&s, "attend.shapes=32/8/128", msg, sizeof msg), KVB_STATUS_OK);
    assert_int_equal(kvb_sweep_set(&s, "run.budget=0", msg, sizeof msg), KVB_STATUS_OK);
    assert_int_equal(kvb_sweep_expand(&s, "/out", &p, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "budget"));
    kvb_sweep empty;
    memset(&empty, 0, sizeof empty);
    assert_int_equal(kvb_sweep_expand(&empty, "/out", &p, msg, sizeof msg), -1);
    /* every named sweep in the repository loads and expands */
    static const char *const named[] = {"bench/sweeps/smoke.sweep", "bench/sweeps/default.sweep",
                                        "bench/sweeps/long-context.sweep"};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        kvb_sweep d;
        char file[4096];
        memset(&d, 0, sizeof d);
        /* found from this binary's location, so the test runs from any directory */
        if (kvb_data_path(named[i], file, sizeof file) != 0) fail_msg("cannot find %s (looked at %s)", named[i], file);
        if (kvb_sweep_load(&d, file, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("%s", msg);
        int m = kvb_sweep_expand(&d, "/out", &p, msg, sizeof msg);
        if (m <= 0) fail_msg("%s: %s", named[i], msg);
        free(p);
    }
}

/* ---- the regression gate: Mann-Whitney U and the verdicts ----------------- */

/* Two-sided p by brute force over every split of the pooled values (mid-ranks for ties). */
static double brute_mwu_p(const double *x, int nx, const double *y, int ny)
{
    int N = nx + ny;
    double v[24], rank[24];
    for (int i = 0; i < nx; i++) v[i] = x[i];
    for (int i = 0; i < ny; i++) v[nx + i] = y[i];
    for (int i = 0; i < N; i++) {
        int below = 0, equal = 0;
        for (int j = 0; j < N; j++) { below += v[j] < v[i]; equal += v[j] == v[i]; }
        rank[i] = below + (equal + 1) / 2.0;
    }
    double obs = 0, mean = nx * (N + 1) / 2.0, hits = 0, all = 0;
    for (int i = 0; i < nx; i++) obs += rank[i];
    for (unsigned m = 0; m < (1u << N); m++) {
        if (__builtin_popcount(m) != nx) continue;
        double s = 0;
        for (int i = 0; i < N; i++) s += (m >> i & 1) ? rank[i] : 0;
        all++;
        hits += fabs(s - mean) >= fabs(obs - mean) - 1e-9;
    }
    return hits / all;
}

static void test_mann_whitney(void **state)
{
    (void)state;
    kvb_mwu m;
    /* by hand: complete separation; p = 2 / C(n1 + n2, n1) */
    const double a[] = {1, 2, 3}, b[] = {4, 5, 6};
    assert_int_equal(kvb_mann_whitney(a, 3, b, 3, &m), 0);
    assert_true(m.u == 0 && fabs(m.p - 0.1) < 1e-12 && fabs(m.p_min - 0.1) < 1e-12);
    const double c[] = {1, 2, 3, 4, 5}, d[] = {6, 7, 8, 9, 10};
    assert_int_equal(kvb_mann_whitney(d, 5, c, 5, &m), 0);
    assert_true(m.u == 25 && fabs(m.p - 2.0 / 252) < 1e-12);
    /* U counts pairs x > y: {1, 4} vs {2, 3} -> U = 2 (4 beats both), p = 1 */
    const double e[] = {1, 4}, f[] = {2, 3};
    assert_int_equal(kvb_mann_whitney(e, 2, f, 2, &m), 0);
    assert_true(m.u == 2 && fabs(m.p - 1.0) < 1e-12);
    /* ties and every size pair up to 6 x 6, against exhaustive enumeration */
    uint64_t seed = 99;
    for (int nx = 1; nx <= 6; nx++)
        for (int ny = 1; ny <= 6; ny++)
            for (int trial = 0; trial < 6; trial++) {
                double x[6], y[6];
                for (int i = 0; i < nx; i++) x[i] = floor(3 * (urand(&seed) + 1));        /* 0..5: ties */
                for (int i = 0; i < ny; i++) y[i] = floor(3 * (urand(&seed) + 1)) + trial % 3;
                assert_int_equal(kvb_mann_whitney(x, (size_t)nx, y, (size_t)ny, &m), 0);
                double want = brute_mwu_p(x, nx, y, ny);
                if (fabs(m.p - want) > 1e-9) fail_msg("nx=%d ny=%d: p %.9g, enumeration %.9g", nx, ny, m.p, want);
            }
    /* the normal approximation past the exact range agrees with the exact test near it */
    double big_x[40], big_y[40];
    for (int i = 0; i < 40; i++) { big_x[i] = i + 0.5 * urand(&seed); big_y[i] = i + 6 + 0.5 * urand(&seed); }
    kvb_mwu exact, approx;
    assert_int_equal(kvb_mann_whitney(big_x, 30, big_y, 30, &exact), 0);     /* 60: exact */
    assert_int_equal(kvb_mann_whitney(big_x, 31, big_y, 31, &approx), 0);    /* 62: normal */
    assert_true(fabs(exact.p - approx.p) < 0.05);
    assert_int_equal(kvb_mann_whitney(a, 0, b, 3, &m), -1);
}

static void test_compare_verdicts(void **state)
{
    (void)state;
    kvb_cmp_opts o = {0.05, 0.10, 0.10, (1u << KVB_CMP_KIND_COUNT) - 1};
    uint64_t seed = 7;
    /* a planted 20% slowdown with 3% noise, 9 repetitions a side: flagged every time;
     * identical distributions: never (the 10% floor keeps noise out even when p < alpha) */
    int flagged = 0, false_alarms = 0, pvalue_hits = 0;
    for (int trial = 0; trial < 200; trial++) {
        double base[9], same[9], slow[9];
        for (int i = 0; i < 9; i++) {
            base[i] = 1e6 * (1 + 0.03 * urand(&seed));
            same[i] = 1e6 * (1 + 0.03 * urand(&seed));
            slow[i] = 1.2e6 * (1 + 0.03 * urand(&seed));
        }
        flagged += kvb_cmp_judge(KVB_CMP_TIME, base, 9, slow, 9, &o).verdict == KVB_VERDICT_REGRESSED;
        kvb_cmp_result r = kvb_cmp_judge(KVB_CMP_TIME, base, 9, same, 9, &o);
        false_alarms += r.verdict == KVB_VERDICT_REGRESSED;
        pvalue_hits += r.p < 0.05;
        /* the same shift in a ratio, and as a drop in the fraction of the ceiling */
        assert_int_equal(kvb_cmp_judge(KVB_CMP_RATIO, base, 9, slow, 9, &o).verdict, KVB_VERDICT_REGRESSED);
        assert_int_equal(kvb_cmp_judge(KVB_CMP_CEILING, slow, 9, base, 9, &o).verdict, KVB_VERDICT_REGRESSED);
        assert_int_equal(kvb_cmp_judge(KVB_CMP_TIME, slow, 9, base, 9, &o).verdict, KVB_VERDICT_IMPROVED);
    }
    assert_int_equal(flagged, 200);
    assert_int_equal(false_alarms, 0);
    assert_true(pvalue_hits < 30);                   /* about alpha x 200 = 10 expected */
    /* a significant but small change is not a regression */
    double b5[5] = {100, 101, 102, 103, 104}, n5[5] = {105, 106, 107, 108, 109};
    kvb_cmp_result r = kvb_cmp_judge(KVB_CMP_TIME, b5, 5, n5, 5, &o);
    assert_true(r.p < 0.05);
    assert_int_equal(r.verdict, KVB_VERDICT_SAME);
    /* three repetitions a side cannot reach alpha 0.05 (p >= 0.1): too few to judge */
    double b3[3] = {1, 1.01, 1.02}, n3[3] = {2, 2.01, 2.02};
    assert_int_equal(kvb_cmp_judge(KVB_CMP_TIME, b3, 3, n3, 3, &o).verdict, KVB_VERDICT_TOO_FEW);
    /* 1 against 39: the smallest p is exactly 2/40 = alpha, so p < alpha cannot happen */
    double one[1] = {10}, many[39];
    for (int i = 0; i < 39; i++) many[i] = 1 + 0.01 * i;
    assert_int_equal(kvb_cmp_judge(KVB_CMP_TIME, many, 39, one, 1, &o).verdict, KVB_VERDICT_TOO_FEW);
    /* a kind left out of the gate (times from another machine) is reported, not judged */
    o.gate &= ~(1u << KVB_CMP_TIME);
    double s9[9], f9[9];
    for (int i = 0; i < 9; i++) { s9[i] = 1 + 0.01 * i; f9[i] = 2 + 0.01 * i; }
    assert_int_equal(kvb_cmp_judge(KVB_CMP_TIME, s9, 9, f9, 9, &o).verdict, KVB_VERDICT_INFO);
    assert_int_equal(kvb_cmp_judge(KVB_CMP_RATIO, s9, 9, f9, 9, &o).verdict, KVB_VERDICT_REGRESSED);
    /* fixed figures: any growth of bytes; errors past the tolerance */
    double by[1] = {4096}, by2[1] = {4097}, e1[1] = {1e-3}, e2[1] = {1.05e-3}, e3[1] = {1.2e-3};
    assert_int_equal(kvb_cmp_judge(KVB_CMP_EXACT, by, 1, by2, 1, &o).verdict, KVB_VERDICT_REGRESSED);
    assert_int_equal(kvb_cmp_judge(KVB_CMP_EXACT, by, 1, by, 1, &o).verdict, KVB_VERDICT_SAME);
    assert_int_equal(kvb_cmp_judge(KVB_CMP_TOL, e1, 1, e2, 1, &o).verdict, KVB_VERDICT_SAME);
    assert_int_equal(kvb_cmp_judge(KVB_CMP_TOL, e1, 1, e3, 1, &o).verdict, KVB_VERDICT_REGRESSED);
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
        assert_int_equal(b->create(&c, &shape, &opt, msg, sizeof msg), KVB_STATUS_OK);
        size_t es = kvb_dtype_size((kvb_dtype)dt), per_tok = 2 * (size_t)L * nkv * hd * es;
        float k[16], v[16], rk[8], rv[8];
        for (int n = 1; n <= max_seq; n++) {
            for (int l = 0; l < L; l++) {
                for (int i = 0; i < nkv * hd; i++) {
                    k[i] = (float)(n * 1000 + l * 100 + i) * 0.01f;   /* names its token, layer, slot */
                    v[i] = -k[i];
                }
                assert_int_equal(b->append(c, 0, l, k, v), KVB_STATUS_OK);
            }
            kvb_memory m = b->memory(c);
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
        assert_int_equal(b->append(c, 0, 0, k, v), KVB_STATUS_FULL);
        assert_int_equal(b->length(c, 0, 0), max_seq);
        /* [kv_head][token][head_dim]: every token and head reads back what was stored */
        for (int n = 1; n <= max_seq; n += 7)
            for (int l = 0; l < L; l++)
                for (int h = 0; h < nkv; h++) {
                    assert_int_equal(b->read_kv(c, 0, l, h, n - 1, rk, rv), KVB_STATUS_OK);
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
        assert_int_equal(b->read_kv(c, 0, 0, 0, max_seq, rk, rv), KVB_STATUS_INVALID_ARG);
        assert_int_equal(b->append(c, 1, 0, k, v), KVB_STATUS_INVALID_ARG);   /* no sequence 1 */
        assert_int_equal(b->append(c, 0, L, k, v), KVB_STATUS_INVALID_ARG);   /* no layer L */
        assert_int_equal(b->seq_clear(c, 0), KVB_STATUS_OK);
        kvb_memory m = b->memory(c);
        assert_int_equal(m.used, 0);
        assert_int_equal(m.reserved, 0);                /* both modes give the stores back */
        b->destroy(c);
    }
}

/* ---- paged: fork, copy on write, exhaustion, and a randomized model ------- */

/* Token t of sequence "lineage" x: K/V values that name it, so a read-back
 * tells which sequence wrote which token. */
static void token_kv(int L_idx, int id, int nkv, int hd, float *k, float *v)
{
    for (int i = 0; i < nkv * hd; i++) {
        k[i] = (float)id + 0.001f * (float)i + 0.5f * (float)L_idx;
        v[i] = -k[i];
    }
}

static void append_token(const kvb_backend *b, kvb_cache *c, int seq, int L, int nkv, int hd, int id)
{
    float k[64], v[64];
    for (int l = 0; l < L; l++) {
        token_kv(l, id, nkv, hd, k, v);
        assert_int_equal(b->append(c, seq, l, k, v), KVB_STATUS_OK);
    }
}

/* Every token of seq reads back as ids[0..n) in every layer and head. */
static void expect_tokens(const kvb_backend *b, const kvb_cache *c, int seq, int L, int nkv, int hd,
                          const int *ids, int n)
{
    float k[64], v[64], rk[16], rv[16];
    for (int l = 0; l < L; l++) {
        assert_int_equal(b->length(c, seq, l), n);
        for (int t = 0; t < n; t++) {
            token_kv(l, ids[t], nkv, hd, k, v);
            for (int h = 0; h < nkv; h++) {
                assert_int_equal(b->read_kv(c, seq, l, h, t, rk, rv), KVB_STATUS_OK);
                if (memcmp(rk, k + h * hd, (size_t)hd * 4) != 0 || memcmp(rv, v + h * hd, (size_t)hd * 4) != 0)
                    fail_msg("seq %d layer %d head %d token %d: expected id %d", seq, l, h, t, ids[t]);
            }
        }
    }
}

static void test_paged_fork_cow_and_exhaustion(void **state)
{
    (void)state;
    const int L = 2, nkv = 2, hd = 8, bt = 4;
    kvb_shape shape = {L, 4, nkv, hd, 64};
    kvb_options o = {.dtype = KVB_DTYPE_F32, .alloc = KVB_ALLOC_GROW, .max_seqs = 4,
                     .block_tokens = bt, .pool_blocks = 8};
    const char *names[] = {"paged", "paged-blockmajor", "paged-tokmajor"};
    for (int ni = 0; ni < 3; ni++) {
        const kvb_backend *b = kvb_backend_find(names[ni]);
        kvb_cache *c;
        char msg[128];
        assert_int_equal(b->create(&c, &shape, &o, msg, sizeof msg), KVB_STATUS_OK);
        size_t block_b = 2 * (size_t)L * nkv * bt * hd * 4, tok_b = 2 * (size_t)L * nkv * hd * 4;
        assert_int_equal(b->memory(c).capacity, 8 * block_b);
        int pa[32], ch[32];
        for (int t = 0; t < 6; t++) { pa[t] = ch[t] = 100 + t; append_token(b, c, 0, L, nkv, hd, pa[t]); }
        kvb_memory m = b->memory(c);
        assert_int_equal(m.reserved, 2 * block_b);              /* 6 tokens in 4-token blocks */
        assert_int_equal(m.used, 6 * tok_b);
        assert_true(m.reserved - m.used < block_b);              /* waste below one block */
        /* fork: nothing is copied, both see the same 6 tokens */
        assert_int_equal(b->seq_fork(c, 0, 1), KVB_STATUS_OK);
        assert_int_equal(b->memory(c).reserved, 2 * block_b);
        assert_int_equal(b->memory(c).used, 6 * tok_b);          /* shared tokens count once */
        assert_int_equal(b->seq_memory(c, 1).reserved, 2 * block_b);
        expect_tokens(b, c, 1, L, nkv, hd, ch, 6);
        /* diverge: the first write into the shared, partly filled block copies it */
        pa[6] = 200; append_token(b, c, 0, L, nkv, hd, pa[6]);
        assert_int_equal(b->memory(c).reserved, 3 * block_b);
        ch[6] = 300; append_token(b, c, 1, L, nkv, hd, ch[6]);  /* old block now private: no copy */
        assert_int_equal(b->memory(c).reserved, 3 * block_b);
        for (int t = 7; t < 10; t++) {
            pa[t] = 200 + t; append_token(b, c, 0, L, nkv, hd, pa[t]);
            ch[t] = 300 + t; append_token(b, c, 1, L, nkv, hd, ch[t]);
        }
        expect_tokens(b, c, 0, L, nkv, hd, pa, 10);
        expect_tokens(b, c, 1, L, nkv, hd, ch, 10);
        /* 1 shared full block + 2 private x 2 = 5 blocks; used counts the shared 4 tokens once */
        assert_int_equal(b->memory(c).reserved, 5 * block_b);
        assert_int_equal(b->memory(c).used, (4 + 2 * 6) * tok_b);
        /* exhaustion: fill the pool, then the failing append changes nothing */
        int n0 = 10;
        while (b->memory(c).reserved < 8 * block_b) { pa[n0] = 400 + n0; append_token(b, c, 0, L, nkv, hd, pa[n0]); n0++; }
        while (n0 % bt) { pa[n0] = 400 + n0; append_token(b, c, 0, L, nkv, hd, pa[n0]); n0++; }
        kvb_memory before = b->memory(c);
        float k[64], v[64];
        token_kv(0, 999, nkv, hd, k, v);
        assert_int_equal(b->append(c, 0, 0, k, v), KVB_STATUS_FULL);
        assert_int_equal(b->append(c, 2, 0, k, v), KVB_STATUS_FULL);   /* a new sequence too */
        kvb_memory after = b->memory(c);
        assert_memory_equal(&before, &after, sizeof before);
        expect_tokens(b, c, 0, L, nkv, hd, pa, n0);
        expect_tokens(b, c, 1, L, nkv, hd, ch, 10);
        /* freeing the child returns only its private blocks; the shared one stays with the parent */
        assert_int_equal(b->seq_clear(c, 1), KVB_STATUS_OK);
        assert_int_equal(b->memory(c).reserved, 6 * block_b);
        expect_tokens(b, c, 0, L, nkv, hd, pa, n0);
        append_token(b, c, 2, L, nkv, hd, 7);                    /* room again */
        /* a fork of a sequence mid-step (layers of unequal length) is refused */
        token_kv(0, 8, nkv, hd, k, v);
        assert_int_equal(b->append(c, 2, 0, k, v), KVB_STATUS_OK);
        assert_int_equal(b->seq_fork(c, 2, 3), KVB_STATUS_INVALID_ARG);
        assert_int_equal(b->seq_fork(c, 0, 2), KVB_STATUS_INVALID_ARG);   /* child not empty */
        assert_int_equal(b->seq_clear(c, 0), KVB_STATUS_OK);
        assert_int_equal(b->seq_clear(c, 2), KVB_STATUS_OK);
        assert_int_equal(b->memory(c).reserved, 0);
        assert_int_equal(b->memory(c).used, 0);
        b->destroy(c);
    }
    /* bad block sizes and pools are refused at create */
    kvb_cache *c;
    char msg[160];
    kvb_options bad = o;
    bad.block_tokens = 257;
    assert_int_equal(kvb_backend_find("paged")->create(&c, &shape, &bad, msg, sizeof msg), KVB_STATUS_INVALID_ARG);
    assert_non_null(strstr(msg, "257"));
    bad = o;
    bad.pool_blocks = 0;
    bad.pool_bytes = 100;                                        /* smaller than one block */
    assert_int_equal(kvb_backend_find("paged")->create(&c, &shape, &bad, msg, sizeof msg), KVB_STATUS_INVALID_ARG);
}

/* Thousands of random add/append/fork/free operations against a plain model
 * of what each sequence holds; the pool must end fully returned. */
static void test_paged_randomized(void **state)
{
    (void)state;
    const int L = 2, nkv = 1, hd = 4, S = 6, MAXT = 40;
    uint64_t seed = 12345;
    for (int bt = 1; bt <= 8; bt += 7) {
        kvb_shape shape = {L, 2, nkv, hd, MAXT};
        kvb_options o = {.dtype = KVB_DTYPE_F32, .alloc = KVB_ALLOC_GROW, .max_seqs = S,
                         .block_tokens = bt, .pool_blocks = (size_t)(MAXT / bt + 4)};
        const kvb_backend *b = kvb_backend_find("paged");
        kvb_cache *c;
        char msg[128];
        assert_int_equal(b->create(&c, &shape, &o, msg, sizeof msg), KVB_STATUS_OK);
        int ids[6][40], len[6] = {0}, next_id = 1, fulls = 0, forks = 0;
        for (int op = 0; op < 4000; op++) {
            int r = (int)((urand(&seed) + 1.0f) * 50.0f), s1 = (int)((urand(&seed) + 1.0f) * 3.0f) % S;
            int s2 = (int)((urand(&seed) + 1.0f) * 3.0f) % S;
            if (r < 70) {                                    /* append one token, every layer */
                if (len[s1] == MAXT) continue;
                float k[4], v[4];
                kvb_memory before = b->memory(c);
                token_kv(0, next_id, nkv, hd, k, v);
                kvb_status st = b->append(c, s1, 0, k, v);
                if (st == KVB_STATUS_FULL) {
                    kvb_memory after = b->memory(c);
                    assert_memory_equal(&before, &after, sizeof before);
                    fulls++;
                    continue;
                }
                assert_int_equal(st, KVB_STATUS_OK);
                for (int l = 1; l < L; l++) {
                    token_kv(l, next_id, nkv, hd, k, v);
                    assert_int_equal(b->append(c, s1, l, k, v), KVB_STATUS_OK);  /* block already held */
                }
                ids[s1][len[s1]++] = next_id++;
            } else if (r < 85) {                             /* fork into an empty slot */
                if (len[s2] != 0 || s1 == s2) continue;
                assert_int_equal(b->seq_fork(c, s1, s2), KVB_STATUS_OK);
                memcpy(ids[s2], ids[s1], sizeof ids[0]);
                len[s2] = len[s1];
                forks++;
            } else {                                         /* free */
                assert_int_equal(b->seq_clear(c, s1), KVB_STATUS_OK);
                len[s1] = 0;
            }
            if (op % 97 == 0)
                for (int q = 0; q < S; q++) expect_tokens(b, c, q, L, nkv, hd, ids[q], len[q]);
            /* sharing can only save: used lies between the longest sequence and
             * the sum of all of them, and never above what is held */
            kvb_memory m = b->memory(c);
            size_t tok_b = 2 * (size_t)L * nkv * hd * 4, sum = 0, mx = 0;
            for (int q = 0; q < S; q++) {
                sum += (size_t)len[q] * tok_b;
                mx = (size_t)len[q] * tok_b > mx ? (size_t)len[q] * tok_b : mx;
            }
            assert_true(m.reserved <= m.capacity && m.used <= m.reserved);
            assert_true(m.used >= mx && m.used <= sum);
        }
        for (int q = 0; q < S; q++) expect_tokens(b, c, q, L, nkv, hd, ids[q], len[q]);
        print_message("paged randomized (block %d): %d forks, %d pool-full refusals\n", bt, forks, fulls);
        assert_true(forks > 50 && fulls > 0);
        for (int q = 0; q < S; q++) assert_int_equal(b->seq_clear(c, q), KVB_STATUS_OK);
        kvb_memory m = b->memory(c);
        assert_int_equal(m.reserved, 0);
        assert_int_equal(m.used, 0);
        b->destroy(c);
    }
}

/* The serving simulation on a small shape: every backend decodes the same
 * tokens; paging holds more live bytes per byte reserved than a preallocated
 * store; forks share blocks only where the backend can share. */
static void test_serve_sim(void **state)
{
    (void)state;
    kvb_serve_config sc = {.shape = {2, 4, 2, 16, 96}, .n_requests = 24, .max_prompt = 32,
                           .max_output = 64, .lengths = KVB_LEN_UNIFORM, .fork = KVB_FORK_NONE,
                           .fork_n = 3, .attend = 1, .seed = 5};
    size_t tok = 2 * 2 * 2 * 16 * 4;
    sc.budget_bytes = 6 * 96 * tok;                       /* six requests at their longest */
    const kvb_backend *ct = kvb_backend_find("contiguous"), *pg = kvb_backend_find("paged");
    kvb_options pre = {.dtype = KVB_DTYPE_F32, .alloc = KVB_ALLOC_PREALLOC};
    kvb_options grow = {.dtype = KVB_DTYPE_F32, .alloc = KVB_ALLOC_GROW};
    kvb_options pag = {.dtype = KVB_DTYPE_F32, .alloc = KVB_ALLOC_GROW, .block_tokens = 8};
    for (int f = 0; f < KVB_FORK_COUNT; f++) {
        sc.fork = (kvb_fork_kind)f;
        kvb_serve_result rp, rg, rq;
        assert_int_equal(kvb_serve_run(ct, pre, &sc, &rp), KVB_STATUS_OK);
        assert_int_equal(kvb_serve_run(ct, grow, &sc, &rg), KVB_STATUS_OK);
        assert_int_equal(kvb_serve_run(pg, pag, &sc, &rq), KVB_STATUS_OK);
        print_message("serve %s: util prealloc %.3f grow %.3f paged %.3f; mean running %.1f %.1f %.1f; "
                      "shared %.3f\n", kvb_fork_kind_name(sc.fork), rp.utilization, rg.utilization,
                      rq.utilization, rp.mean_running, rg.mean_running, rq.mean_running, rq.sharing_saved);
        /* the same requests finish everywhere; preemption only adds redone work */
        assert_true(rp.output_tokens == rg.output_tokens && rg.output_tokens == rq.output_tokens);
        assert_true(rp.tokens >= rp.output_tokens && rq.tokens >= rq.output_tokens);
        assert_true(rp.max_running <= 6);                 /* each sequence reserves its longest */
        assert_true(rq.utilization > rg.utilization && rg.utilization > rp.utilization);
        assert_true(rq.utilization > 0.8);
        assert_true(rq.mean_running > rp.mean_running);
        assert_true(rp.sharing_saved == 0 && rg.sharing_saved == 0);
        if (sc.fork == KVB_FORK_NONE) assert_true(rq.sharing_saved == 0);
        else assert_true(rq.sharing_saved > 0.05);
    }
    /* a request that can never fit is reported, not looped on */
    sc.fork = KVB_FORK_NONE;
    sc.budget_bytes = 20 * tok;
    kvb_serve_result r;
    assert_int_equal(kvb_serve_run(pg, pag, &sc, &r), KVB_STATUS_FULL);
    assert_non_null(strstr(r.reason, "budget"));
    assert_int_equal(kvb_serve_run(ct, pre, &sc, &r), KVB_STATUS_FULL);
}

/* ---- library input checks ------------------------------------------------ */

static void test_bad_shapes_and_names(void **state)
{
    (void)state;
    char msg[256];
    kvb_shape good = {2, 8, 2, 64, 128};
    assert_int_equal(kvb_shape_check(&good, msg, sizeof msg), KVB_STATUS_OK);
    int *fields[] = {&good.n_layers, &good.n_heads, &good.n_kv_heads, &good.head_dim, &good.max_seq};
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
    assert_int_equal(kvb_backend_supports(kvb_backend_find("contiguous"), &good, &o, msg, sizeof msg),
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

/* ---- the full model ----------------------------------------------------- */

/* Greedy generation of n tokens after a prompt; logits of every step kept. */
static void generate(const kvb_model *m, const kvb_backend *b, kvb_options o, const int *prompt,
                     int P, int n, int *tokens_out, float *logits_out)
{
    kvb_state st;
    assert_int_equal(kvb_state_init(&st, &m->cfg), KVB_STATUS_OK);
    kvb_shape shape = kvb_model_kv_shape(&m->cfg);
    kvb_cache *c = NULL;
    char msg[128];
    assert_int_equal(b->create(&c, &shape, &o, msg, sizeof msg), KVB_STATUS_OK);
    int *toks = malloc((size_t)(P + n + 1) * sizeof *toks);
    memcpy(toks, prompt, (size_t)P * sizeof *toks);
    assert_int_equal(kvb_forward_seq(m, &st, b, c, 0, toks, P, NULL), KVB_STATUS_OK);
    int V = m->cfg.vocab_size;
    toks[P] = kvb_argmax(st.logits, V);
    for (int i = 0; i < n; i++) {
        int pos = P + i;
        kvb_status s = (b->flags & KVB_BACKEND_RECOMPUTE)
                           ? kvb_forward_seq(m, &st, NULL, NULL, 0, toks, pos + 1, NULL)
                           : kvb_forward_token(m, &st, b, c, 0, toks[pos], pos, NULL);
        assert_int_equal(s, KVB_STATUS_OK);
        memcpy(logits_out + (size_t)i * V, st.logits, (size_t)V * sizeof(float));
        toks[pos + 1] = kvb_argmax(st.logits, V);
        tokens_out[i] = toks[pos + 1];
    }
    if (!(b->flags & KVB_BACKEND_RECOMPUTE)) assert_int_equal(b->length(c, 0, 0), P + n);
    free(toks);
    b->destroy(c);
    kvb_state_free(&st);
}

static double rel_l2_f(const float *a, const float *b, size_t n)
{
    double e = 0, r = 0;
    for (size_t i = 0; i < n; i++) { e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]); r += (double)b[i] * b[i]; }
    return sqrt(e / (r > 0 ? r : 1));
}

static void test_model_nocache_equals_contiguous(void **state)
{
    const struct { const char *name; int heads, kv; } shapes[] = {{"mha", 4, 4}, {"gqa", 4, 2}, {"mqa", 4, 1}};
    int ran = 0;
    for (size_t si = 0; si < 3; si++) {
        char name[96];
        snprintf(name, sizeof name, "model(preset=tiny,%s,steps=64)", shapes[si].name);
        if (!case_selected(state, name)) continue;
        ran++;
        kvb_model_config cfg;
        kvb_model_preset("tiny", &cfg);
        cfg.n_heads = shapes[si].heads;
        cfg.n_kv_heads = shapes[si].kv;
        cfg.head_dim = cfg.dim / cfg.n_heads;
        kvb_model m;
        char msg[256];
        assert_int_equal(kvb_model_init_random(&m, &cfg, 42 + si, msg, sizeof msg), KVB_STATUS_OK);
        const int P = 5, n = 64, V = cfg.vocab_size;
        int prompt[5] = {1, 17, 99, 3, 200};
        int *tk[3];
        float *lg[3];
        const kvb_backend *nc = kvb_backend_find("nocache"), *ct = kvb_backend_find("contiguous");
        kvb_options o_nc = {.dtype = KVB_DTYPE_F32, .alloc = KVB_ALLOC_GROW, .max_seqs = 1}, o_grow = o_nc,
                    o_pre = {.dtype = KVB_DTYPE_F32, .alloc = KVB_ALLOC_PREALLOC, .max_seqs = 1};
        for (int i = 0; i < 3; i++) {
            tk[i] = malloc((size_t)n * sizeof(int));
            lg[i] = malloc((size_t)n * V * sizeof(float));
        }
        generate(&m, nc, o_nc, prompt, P, n, tk[0], lg[0]);
        generate(&m, ct, o_grow, prompt, P, n, tk[1], lg[1]);
        generate(&m, ct, o_pre, prompt, P, n, tk[2], lg[2]);
        double worst = 0;
        for (int i = 0; i < n; i++) {
            double e = rel_l2_f(lg[1] + (size_t)i * V, lg[0] + (size_t)i * V, (size_t)V);
            if (e > worst) worst = e;
            if (!(e < 1e-4)) fail_msg("%s: step %d logits differ, rel L2 %.3g", name, i, e);
            assert_int_equal(tk[0][i], tk[1][i]);
        }
        /* grow and prealloc do the same arithmetic in the same order */
        assert_memory_equal(lg[1], lg[2], (size_t)n * V * sizeof(float));
        assert_memory_equal(tk[1], tk[2], (size_t)n * sizeof(int));
        /* so does a paged cache, whatever its block size or layout */
        const char *paged[] = {"paged", "paged-blockmajor", "paged-tokmajor"};
        const int blocks[] = {1, 3, 16, 256};
        for (int pi = 0; pi < 3; pi++)
            for (int bi = 0; bi < 4; bi++) {
                kvb_options o = {.dtype = KVB_DTYPE_F32, .alloc = KVB_ALLOC_GROW, .max_seqs = 1,
                                 .block_tokens = blocks[bi]};
                generate(&m, kvb_backend_find(paged[pi]), o, prompt, P, n, tk[2], lg[2]);
                if (memcmp(lg[1], lg[2], (size_t)n * V * sizeof(float)) != 0)
                    fail_msg("%s: %s with %d-token blocks differs from contiguous", name, paged[pi], blocks[bi]);
                assert_memory_equal(tk[1], tk[2], (size_t)n * sizeof(int));
            }
        int distinct = 0;
        for (int i = 0; i < n; i++) distinct += i == 0 || tk[0][i] != tk[0][i - 1];
        print_message("%s: worst logits rel L2 nocache vs contiguous %.2g, %d token changes\n",
                      name, worst, distinct);
        /* f16 and bf16 caches run the same model; their logits stay close */
        for (int dt = KVB_DTYPE_F16; dt <= KVB_DTYPE_BF16; dt++) {
            kvb_options o = {.dtype = (kvb_dtype)dt, .alloc = KVB_ALLOC_GROW, .max_seqs = 1};
            generate(&m, ct, o, prompt, P, 1, tk[2], lg[2]);
            double e = rel_l2_f(lg[2], lg[0], (size_t)V);
            assert_true(e < (dt == KVB_DTYPE_F16 ? 5e-3 : 3e-2));
        }
        for (int i = 0; i < 3; i++) { free(tk[i]); free(lg[i]); }
        kvb_model_free(&m);
    }
    if (!ran) skip();
}

/* The whole decoder in float64, written from the Llama definition without any
 * of the model's code: logits of the last of T tokens. */
static void ref_model_logits(const kvb_model *m, const int *tok, int T, double *logits)
{
    const kvb_model_config *c = &m->cfg;
    const kvb_model_weights *w = &m->w;
    int d = c->dim, hd = c->head_dim, nh = c->n_heads, nkv = c->n_kv_heads, H = c->hidden_dim;
    int qd = nh * hd, kvd = nkv * hd;
    double *x = calloc((size_t)T * d, 8), *xn = calloc((size_t)T * d, 8);
    double *q = calloc((size_t)T * qd, 8), *k = calloc((size_t)T * kvd, 8), *v = calloc((size_t)T * kvd, 8);
    double *att = calloc((size_t)T * qd, 8), *h1 = calloc((size_t)H, 8), *h3 = calloc((size_t)H, 8);
    double *sc = calloc((size_t)T, 8);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < d; i++) x[t * d + i] = w->token_embedding[(size_t)tok[t] * d + i];
    for (int l = 0; l < c->n_layers; l++) {
        for (int t = 0; t < T; t++) {
            double ss = 0;
            for (int i = 0; i < d; i++) ss += x[t * d + i] * x[t * d + i];
            double r = 1.0 / sqrt(ss / d + 1e-5);
            for (int i = 0; i < d; i++) xn[t * d + i] = w->rms_att[(size_t)l * d + i] * x[t * d + i] * r;
            for (int o = 0; o < qd + 2 * kvd; o++) {
                const float *row = o < qd ? w->wq + ((size_t)l * qd + o) * d
                                 : o < qd + kvd ? w->wk + ((size_t)l * kvd + o - qd) * d
                                                : w->wv + ((size_t)l * kvd + o - qd - kvd) * d;
                double acc = 0;
                for (int i = 0; i < d; i++) acc += row[i] * xn[t * d + i];
                if (o < qd) q[t * qd + o] = acc;
                else if (o < qd + kvd) k[t * kvd + o - qd] = acc;
                else v[t * kvd + o - qd - kvd] = acc;
            }
            for (int hh = 0; hh < nh + nkv; hh++)        /* rotate pairs (2j, 2j+1) */
                for (int j = 0; j < hd / 2; j++) {
                    double a = t * pow((double)c->rope_theta, -2.0 * j / hd);
                    double *p = hh < nh ? q + t * qd + hh * hd + 2 * j : k + t * kvd + (hh - nh) * hd + 2 * j;
                    double p0 = p[0], p1 = p[1];
                    p[0] = p0 * cos(a) - p1 * sin(a);
                    p[1] = p0 * sin(a) + p1 * cos(a);
                }
        }
        for (int t = 0; t < T; t++)
            for (int h = 0; h < nh; h++) {
                int j = h / (nh / nkv);
                double mx = -INFINITY, sum = 0;
                for (int u = 0; u <= t; u++) {
                    double dd = 0;
                    for (int i = 0; i < hd; i++) dd += q[t * qd + h * hd + i] * k[u * kvd + j * hd + i];
                    sc[u] = dd / sqrt((double)hd);
                    mx = sc[u] > mx ? sc[u] : mx;
                }
                for (int u = 0; u <= t; u++) { sc[u] = exp(sc[u] - mx); sum += sc[u]; }
                for (int i = 0; i < hd; i++) {
                    double acc = 0;
                    for (int u = 0; u <= t; u++) acc += sc[u] * v[u * kvd + j * hd + i];
                    att[t * qd + h * hd + i] = acc / sum;
                }
            }
        for (int t = 0; t < T; t++) {
            for (int o = 0; o < d; o++) {
                double acc = 0;
                for (int i = 0; i < qd; i++) acc += w->wo[((size_t)l * d + o) * qd + i] * att[t * qd + i];
                x[t * d + o] += acc;
            }
            double ss = 0;
            for (int i = 0; i < d; i++) ss += x[t * d + i] * x[t * d + i];
            double r = 1.0 / sqrt(ss / d + 1e-5);
            for (int i = 0; i < d; i++) xn[t * d + i] = w->rms_ffn[(size_t)l * d + i] * x[t * d + i] * r;
            for (int o = 0; o < H; o++) {
                double a1 = 0, a3 = 0;
                for (int i = 0; i < d; i++) {
                    a1 += w->w1[((size_t)l * H + o) * d + i] * xn[t * d + i];
                    a3 += w->w3[((size_t)l * H + o) * d + i] * xn[t * d + i];
                }
                h1[o] = a1 / (1 + exp(-a1)) * a3;
            }
            for (int o = 0; o < d; o++) {
                double acc = 0;
                for (int i = 0; i < H; i++) acc += w->w2[((size_t)l * d + o) * H + i] * h1[i];
                x[t * d + o] += acc;
            }
        }
    }
    double *xl = x + (size_t)(T - 1) * d, ss = 0;
    for (int i = 0; i < d; i++) ss += xl[i] * xl[i];
    double r = 1.0 / sqrt(ss / d + 1e-5);
    for (int o = 0; o < c->vocab_size; o++) {
        double acc = 0;
        for (int i = 0; i < d; i++) acc += w->wcls[(size_t)o * d + i] * w->rms_final[i] * xl[i] * r;
        logits[o] = acc;
    }
    free(x); free(xn); free(q); free(k); free(v); free(att); free(h1); free(h3); free(sc);
}

/* Both decode paths against the float64 decoder, step by step. */
static void test_model_matches_float64_reference(void **state)
{
    (void)state;
    const struct { int heads, kv; } shapes[] = {{4, 4}, {4, 1}};
    for (size_t si = 0; si < 2; si++) {
        kvb_model_config cfg;
        kvb_model_preset("tiny", &cfg);
        cfg.n_heads = shapes[si].heads;
        cfg.n_kv_heads = shapes[si].kv;
        cfg.head_dim = cfg.dim / cfg.n_heads;
        cfg.rope_theta = 500.0f;                 /* large rotations within a few positions */
        kvb_model m;
        char msg[128];
        assert_int_equal(kvb_model_init_random(&m, &cfg, 9, msg, sizeof msg), KVB_STATUS_OK);
        const int P = 3, n = 6, V = cfg.vocab_size;
        int prompt[3] = {1, 77, 200}, toks[16];
        float *lg[2];
        const kvb_backend *bk[2] = {kvb_backend_find("nocache"), kvb_backend_find("contiguous")};
        kvb_options o = {.dtype = KVB_DTYPE_F32, .alloc = KVB_ALLOC_GROW, .max_seqs = 1};
        for (int b = 0; b < 2; b++) {
            lg[b] = malloc((size_t)n * V * sizeof(float));
            generate(&m, bk[b], o, prompt, P, n, toks + P + 1, lg[b]);
        }
        memcpy(toks, prompt, sizeof prompt);
        /* the token fed at each step is the one chosen before it */
        kvb_state st;
        assert_int_equal(kvb_state_init(&st, &cfg), KVB_STATUS_OK);
        assert_int_equal(kvb_forward_seq(&m, &st, NULL, NULL, 0, toks, P, NULL), KVB_STATUS_OK);
        toks[P] = kvb_argmax(st.logits, V);
        kvb_state_free(&st);
        double *ref = malloc((size_t)V * sizeof *ref);
        for (int i = 0; i < n; i++) {
            ref_model_logits(&m, toks, P + i + 1, ref);
            for (int b = 0; b < 2; b++) {
                double e = rel_l2(lg[b] + (size_t)i * V, ref, (size_t)V);
                if (!(e < 1e-4)) fail_msg("%s, heads %d/%d, step %d: rel L2 %.3g against float64",
                                          bk[b]->name, cfg.n_heads, cfg.n_kv_heads, i, e);
            }
        }
        free(ref); free(lg[0]); free(lg[1]);
        kvb_model_free(&m);
    }
}

/* ---- llama2.c checkpoints ------------------------------------------------ */

/* A checkpoint written by hand in llama2.c's order, each tensor filled with
 * id * 1000 + index, so every weight's position in the file is checked
 * independently of kvb_model_save. */
static void test_checkpoint_llama2c_layout(void **state)
{
    test_ctx *t = *state;
    char path[512], msg[256];
    snprintf(path, sizeof path, "%s/hand.bin", t->tmpdir);
    const int dim = 8, hidden = 12, L = 2, nh = 2, nkv = 1, vocab = 10, seq = 4, hd = dim / nh;
    int32_t hdr[7] = {dim, hidden, L, nh, nkv, -vocab, seq};    /* separate classifier */
    const size_t sizes[] = {
        (size_t)vocab * dim, (size_t)L * dim, (size_t)L * dim * nh * hd, (size_t)L * dim * nkv * hd,
        (size_t)L * dim * nkv * hd, (size_t)L * nh * hd * dim, (size_t)L * dim, (size_t)L * dim * hidden,
        (size_t)L * hidden * dim, (size_t)L * dim * hidden, (size_t)dim, (size_t)seq * hd / 2,
        (size_t)seq * hd / 2, (size_t)vocab * dim};
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(hdr, sizeof hdr, 1, f);
    for (size_t id = 0; id < 14; id++)
        for (size_t i = 0; i < sizes[id]; i++) {
            float v = (float)(id * 1000 + i);
            fwrite(&v, 4, 1, f);
        }
    fclose(f);
    kvb_model m;
    kvb_status st = kvb_model_load(&m, path, 0, msg, sizeof msg);
    if (st != KVB_STATUS_OK) fail_msg("load: %s", msg);
    const float *tensors[] = {m.w.token_embedding, m.w.rms_att, m.w.wq, m.w.wk, m.w.wv, m.w.wo,
                              m.w.rms_ffn, m.w.w1, m.w.w2, m.w.w3, m.w.rms_final};
    for (size_t id = 0; id < 11; id++) {
        assert_true(tensors[id][0] == (float)(id * 1000));
        assert_true(tensors[id][sizes[id] - 1] == (float)(id * 1000 + sizes[id] - 1));
    }
    assert_true(m.w.wcls[0] == 13000.0f && m.w.wcls[sizes[13] - 1] == (float)(13000 + sizes[13] - 1));
    assert_int_equal(m.cfg.head_dim, hd);
    assert_int_equal(m.cfg.n_kv_heads, nkv);
    assert_int_equal(m.cfg.max_seq, seq);
    assert_int_equal(m.cfg.shared_classifier, 0);
    kvb_model_free(&m);
    assert_int_equal(kvb_model_load(&m, t->tmpdir, 0, msg, sizeof msg), KVB_STATUS_IO);
    assert_non_null(strstr(msg, "not a regular file"));
    remove(path);
}



static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    void *p = malloc(*n);
    assert_int_equal(fread(p, 1, *n, f), *n);
    fclose(f);
    return p;
}

static void test_checkpoint_roundtrip_and_refusals(void **state)
{
    test_ctx *t = *state;
    char path[512], bad[512], msg[512];
    snprintf(path, sizeof path, "%s/tiny.bin", t->tmpdir);
    snprintf(bad, sizeof bad, "%s/bad.bin", t->tmpdir);
    for (int shared = 0; shared <= 1; shared++) {
        kvb_model_config cfg;
        kvb_model_preset("tiny", &cfg);
        cfg.shared_classifier = shared;
        kvb_model m, l;
        assert_int_equal(kvb_model_init_random(&m, &cfg, 5, msg, sizeof msg), KVB_STATUS_OK);
        remove(path);
        assert_int_equal(kvb_model_save(&m, path, msg, sizeof msg), KVB_STATUS_OK);
        /* an existing file is never replaced (it may be someone's real checkpoint) */
        assert_int_equal(kvb_model_save(&m, path, msg, sizeof msg), KVB_STATUS_INVALID_ARG);
        assert_non_null(strstr(msg, "exists"));
        kvb_status st = kvb_model_load(&l, path, 0, msg, sizeof msg);
        if (st != KVB_STATUS_OK) fail_msg("load: %s", msg);
        assert_int_equal(l.n_floats, m.n_floats);
        assert_memory_equal(l.mem, m.mem, m.n_floats * sizeof(float));
        assert_int_equal(l.cfg.shared_classifier, shared);
        assert_int_equal(l.cfg.n_kv_heads, cfg.n_kv_heads);
        assert_int_equal(l.cfg.max_seq, cfg.max_seq);
        assert_true(shared ? l.w.wcls == l.w.token_embedding : l.w.wcls != l.w.token_embedding);
        kvb_model_free(&l);

        /* the file is exactly the size the header implies: header + weights + RoPE tables */
        size_t n;
        unsigned char *bytes = read_all(path, &n);
        size_t expect = 28 + 4 * (m.n_floats + (size_t)cfg.max_seq * cfg.head_dim);
        assert_int_equal(n, expect);
        const size_t cuts[] = {n - 1, n - 4, n / 2, 28, 27, 10, 0};
        for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
            write_bytes(bad, bytes, cuts[i]);
            assert_int_equal(kvb_model_load(&l, bad, 0, msg, sizeof msg), KVB_STATUS_FORMAT);
            assert_non_null(strstr(msg, bad));
        }
        unsigned char *longer = calloc(1, n + 8);
        memcpy(longer, bytes, n);
        write_bytes(bad, longer, n + 8);
        assert_int_equal(kvb_model_load(&l, bad, 0, msg, sizeof msg), KVB_STATUS_FORMAT);
        assert_non_null(strstr(msg, "trailing"));
        free(longer);
        /* inconsistent headers: each field broken in turn */
        const struct { int field; int32_t value; } breaks[] = {
            {0, 0}, {0, -64}, {0, 63}, {1, 0}, {2, -1}, {3, 0}, {4, 3}, {4, 0}, {6, 0}, {5, 0}};
        for (size_t i = 0; i < sizeof breaks / sizeof breaks[0]; i++) {
            unsigned char *cp = malloc(n);
            memcpy(cp, bytes, n);
            memcpy(cp + 4 * breaks[i].field, &breaks[i].value, 4);
            write_bytes(bad, cp, n);
            kvb_status s2 = kvb_model_load(&l, bad, 0, msg, sizeof msg);
            if (s2 != KVB_STATUS_FORMAT) fail_msg("header field %d = %d accepted", breaks[i].field, breaks[i].value);
            free(cp);
        }
        /* a non-finite weight is refused */
        unsigned char *cp = malloc(n);
        memcpy(cp, bytes, n);
        float inf = INFINITY;
        memcpy(cp + 28 + 4 * 10, &inf, 4);
        write_bytes(bad, cp, n);
        assert_int_equal(kvb_model_load(&l, bad, 0, msg, sizeof msg), KVB_STATUS_FORMAT);
        free(cp);
        free(bytes);
        kvb_model_free(&m);
    }
    assert_int_equal(kvb_model_load(&(kvb_model){0}, "/nonexistent/x.bin", 0, msg, sizeof msg), KVB_STATUS_IO);
    assert_non_null(strstr(msg, "/nonexistent/x.bin"));
    remove(path);
    remove(bad);
}

/* ---- statistics ----------------------------------------------------------- */

static void test_stats(void **state)
{
    (void)state;
    double x[] = {5, 1, 4, 2, 3};
    assert_true(kvb_median(x, 5) == 3.0);
    assert_true(fabs(kvb_quantile(x, 5, 0.1) - 1.4) < 1e-12);   /* numpy: 1.4 */
    assert_true(fabs(kvb_quantile(x, 4, 0.5) - 3.0) < 1e-12);   /* {5,1,4,2}: 3.0 */
    assert_true(isnan(kvb_median(x, 0)));
    assert_true(x[0] == 5);                                      /* input untouched */
    double n[50], y[50], yn[50];
    uint64_t s = 11;
    for (int i = 0; i < 50; i++) {
        n[i] = i + 1;
        y[i] = 3.0 * pow(n[i], 2.0);
    }
    kvb_powerfit f = kvb_fit_power(n, y, 50);
    assert_true(fabs(f.b - 2.0) < 1e-9 && fabs(f.a - 3.0) < 1e-9 && f.r2 > 0.999999);
    /* the 95% interval covers the true exponent in about 95% of noisy trials */
    int covered = 0;
    for (int trial = 0; trial < 400; trial++) {
        for (int i = 0; i < 50; i++) yn[i] = y[i] * exp(0.05 * (urand(&s) + urand(&s) + urand(&s)));
        f = kvb_fit_power(n, yn, 50);
        covered += f.b_lo < 2.0 && 2.0 < f.b_hi;
        assert_true(f.b_hi - f.b_lo < 0.1);
    }
    print_message("power fit: 95%% interval covered the true exponent in %d of 400 trials\n", covered);
    assert_true(covered >= 360 && covered <= 396);
    assert_true(fabs(kvb_t975(10) - 2.228) < 1e-9);
    assert_true(fabs(kvb_t975(120) - 1.980) < 2e-3);
    f = kvb_fit_power(n, y, 2);
    assert_true(f.n == 2 && isnan(f.b));
}

/* The summary of a hand-made point: medians per position and bytes. */
static void test_point_summary(void **state)
{
    (void)state;
    kvb_point p;
    kvb_options o = {.dtype = KVB_DTYPE_F16, .alloc = KVB_ALLOC_GROW, .max_seqs = 1};
    assert_int_equal(kvb_point_init(&p, kvb_backend_find("contiguous"), &o, 4, 3), KVB_STATUS_OK);
    kvb_model_config cfg;
    kvb_model_preset("tiny", &cfg);
    for (int r = 0; r < 3; r++) {
        p.steps_done[r] = 4;
        p.prefill[r].step_ns = 100;
        for (int i = 0; i < 4; i++)
            p.rec[r * 4 + i] = (kvb_step_record){10 + i, 0, (uint64_t)(1000 * (i + 1) + r), 0, 0, 0, 0, 0};
    }
    p.rec[3].used = 123;
    kvb_point_summary s;
    kvb_point_summarize(&p, &cfg, 10, &s);
    assert_int_equal(s.steps, 4);
    assert_true(s.first_ns_median == 1001 && s.last_ns_median == 4001);
    assert_true(s.total_ns_median == 10000 + 4);   /* reps total 10000+4r: median r = 1 */
    assert_int_equal(s.used, 123);
    assert_int_equal(s.analytic_used, 2 * 2 * 2 * 16 * 2 * 14);   /* layers kv hd es tokens */
    p.steps_done[2] = 2;                                           /* a cut-short repetition */
    kvb_point_summarize(&p, &cfg, 10, &s);
    assert_int_equal(s.full_reps, 2);
    kvb_point_free(&p);

    /* fitted exponents: constant steps give total ~ n^1; steps growing with
     * position give an exponent that approaches 2 in the tail */
    for (int growing = 0; growing <= 1; growing++) {
        assert_int_equal(kvb_point_init(&p, kvb_backend_find("contiguous"), &o, 400, 1), KVB_STATUS_OK);
        p.steps_done[0] = 400;
        for (int i = 0; i < 400; i++)
            p.rec[i] = (kvb_step_record){i, 0, (uint64_t)(growing ? 1000 * (i + 1) : 5000), 0, 0, 0, 0, 0};
        kvb_point_summarize(&p, &cfg, 0, &s);
        if (!growing) {
            assert_true(fabs(s.fit_total_b - 1.0) < 1e-9 && fabs(s.fit_tail_b - 1.0) < 1e-9);
            assert_true(fabs(s.fit_latency_b) < 1e-9);
        } else {
            /* sum of 1..n = n(n+1)/2: the tail's local slope is 2 - 1/n-ish */
            assert_true(s.fit_tail_b > 1.99 && s.fit_tail_b < 2.0);
            assert_true(s.fit_total_b > 1.8 && s.fit_total_b < 2.0);
            assert_true(fabs(s.fit_latency_b - 1.0) < 1e-9);
        }
        kvb_point_free(&p);
    }
}

/* ---- main ------------------------------------------------------------------ */

static volatile sig_atomic_t forward_to;     /* the test child, for the parent's handler */

static void forward_signal(int sig)
{
    if (forward_to > 0) kill((pid_t)forward_to, sig);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    remove(path);                            /* best effort: go on with the rest */
    return 0;
}

/* Waits for the test child (forwarding SIGINT/SIGTERM/SIGHUP to it), removes
 * the temporary directory and returns the child's status. */
static int supervise(pid_t child, const char *dir)
{
    forward_to = child;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    fprintf(stderr, "test_kvbench: the tests were ended by signal %d\n", WTERMSIG(status));
    return 128 + WTERMSIG(status);
}

int main(int argc, char **argv)
{
    test_ctx ctx_storage = {0};   /* handed to every test as its initial state */
    test_ctx *ctx = &ctx_storage;
    if (argc > 1) {
        if (regcomp(&ctx->re, argv[1], REG_EXTENDED | REG_NOSUB) != 0) {
            fprintf(stderr, "test_kvbench: '%s' is not a valid extended regex\n", argv[1]);
            return 2;
        }
        ctx->has_re = 1;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(ctx->tmpdir, sizeof ctx->tmpdir, "%s/kvbench-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(ctx->tmpdir)) {
        fprintf(stderr, "test_kvbench: cannot create %s: %s\n", ctx->tmpdir, strerror(errno));
        return 2;
    }
    /* the tests run in a child; this process only waits and removes the
     * temporary directory, however the child ends (a crash, a kill) */
    /* INT/TERM/HUP held until the parent's handlers stand, so none falls between
     * the fork and them (it would end the parent and leave the directory) */
    sigset_t hold, old;
    sigemptyset(&hold);
    sigaddset(&hold, SIGINT);
    sigaddset(&hold, SIGTERM);
    sigaddset(&hold, SIGHUP);
    sigprocmask(SIG_BLOCK, &hold, &old);
    pid_t child = fork();
    if (child == 0) sigprocmask(SIG_SETMASK, &old, NULL);
    if (child < 0) {
        if (ctx->has_re) regfree(&ctx->re);
        rmdir(ctx->tmpdir);
        return 2;
    }
    if (child > 0) {
        if (ctx->has_re) regfree(&ctx->re);
        return supervise(child, ctx->tmpdir);
    }
    struct { const char *name; CMUnitTestFunction fn; int parametric; } all[] = {
        {"attend_every_backend", test_attend_every_backend, 1},
        {"attend_rejects_planted_bugs", test_attend_rejects_planted_bugs, 0},
        {"causal_matches_reference", test_causal_matches_reference, 1},
        {"attend_paths_match_reference", test_attend_paths_match_reference, 1},
        {"f16_bf16_conversions", test_f16_bf16_conversions, 0},
        {"contiguous_storage_and_memory", test_contiguous_storage_and_memory, 0},
        {"bad_shapes_and_names", test_bad_shapes_and_names, 0},
        {"paged_fork_cow_and_exhaustion", test_paged_fork_cow_and_exhaustion, 0},
        {"paged_randomized", test_paged_randomized, 0},
        {"serve_sim", test_serve_sim, 0},
        {"model_nocache_equals_contiguous", test_model_nocache_equals_contiguous, 1},
        {"model_matches_float64_reference", test_model_matches_float64_reference, 0},
        {"checkpoint_llama2c_layout", test_checkpoint_llama2c_layout, 0},
        {"checkpoint_roundtrip_and_refusals", test_checkpoint_roundtrip_and_refusals, 0},
        {"quant_roundtrip", test_quant_roundtrip, 0},
        {"quant_kernels_match_dequantized", test_quant_kernels_match_dequantized, 1},
        {"quant_fused_equals_dequantized", test_quant_fused_equals_dequantized, 1},
        {"quant_memory_and_lifecycle", test_quant_memory_and_lifecycle, 0},
        {"kv_alloc", test_kv_alloc, 0},
        {"cpu_key", test_cpu_key, 0},
        {"topology_and_pin", test_topology_and_pin, 0},
        {"sweep_expand", test_sweep_expand, 0},
        {"mann_whitney", test_mann_whitney, 0},
        {"compare_verdicts", test_compare_verdicts, 0},
        {"stats", test_stats, 0},
        {"point_summary", test_point_summary, 0},
    };
    enum { N_TESTS = sizeof all / sizeof all[0] };
    struct CMUnitTest tests[N_TESTS];
    test_ctx unfiltered = *ctx;       /* for a parametric test selected by its own name */
    unfiltered.has_re = 0;
    size_t n = 0;
    for (size_t i = 0; i < N_TESTS; i++) {
        int name_hit = !ctx->has_re || regexec(&ctx->re, all[i].name, 0, NULL, 0) == 0;
        if (name_hit || all[i].parametric) {
            struct CMUnitTest u = {all[i].name, all[i].fn, NULL, NULL, name_hit ? &unfiltered : ctx};
            tests[n++] = u;
        }
    }
    int failed = _cmocka_run_group_tests("kvbench", tests, n, NULL, NULL);
    if (ctx->has_re) regfree(&ctx->re);
    return failed ? 1 : 0;
}
