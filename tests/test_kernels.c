/* test_kernels.c: the attention and storage kernels below the backends (cmocka).
 *
 * Each attend kernel row (portable, AVX2, AVX-512; the ones this build and CPU
 * lack are skipped) against the float64 reference,
 * on runs of rows as a paged cache holds them; the no-cache causal kernels at
 * every position; the f16/bf16 conversions bit by bit; the K/V allocator; the
 * thread pool's runs, back to back and apart, with more threads than cores.
 * Usage: test_kernels [REGEX] (or KVB_TEST_FILTER=REGEX): see testlib.h. */

#define _POSIX_C_SOURCE 200809L   /* nanosleep */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../impls/kernels/kernels.h"
#include "../impls/kvb_backend.h"
#include "testlib.h"

/* The attend kernel rows a cache chooses between, each against float64,
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
            const kvb_attend_kernel *path = kvb_attend_kernel_find(names[pi], hd, NULL, 0);
            if (!path) continue;             /* its vector width does not divide head_dim */
            for (size_t ci = 0; ci < sizeof ctxs / sizeof ctxs[0]; ci++) {
                int nh = gs[gi], nkv = 1, g = nh / nkv, n = ctxs[ci];
                char name[160];
                if (!kvbt_case(state, name, sizeof name,
                               "attend_path(impl=%s,dt=%s,nh=%d,nkv=%d,hd=%d,ctx=%d)", names[pi],
                               kvb_dtype_name((kvb_dtype)dt), nh, nkv, hd, n))
                    continue;
                ran++;
                /* token rows of one KV head, stride hd + 16 elements, split into runs of 1..37 rows
                 */
                size_t stride = (size_t)hd + 16, es = kvb_dtype_size((kvb_dtype)dt);
                char *kb = malloc((size_t)n * stride * es), *vb = malloc((size_t)n * stride * es);
                float *k = malloc((size_t)n * hd * 4), *v = malloc((size_t)n * hd * 4),
                      *kk = malloc(stride * 4);
                float *q = malloc((size_t)g * hd * 4), *out = malloc((size_t)g * hd * 4);
                float *scr = malloc(kvb_attend_scratch_floats(g, n, hd) * 4);
                double *ref = malloc((size_t)g * hd * sizeof *ref);
                for (int t = 0; t < n; t++)
                    for (int part = 0; part < 2; part++) {
                        for (size_t i = 0; i < stride; i++) kk[i] = kvbt_urand(&seed);
                        kvb_row_from_f32((kvb_dtype)dt, kk,
                                         (part ? vb : kb) + (size_t)t * stride * es, (int)stride);
                        /* the reference sees the stored values */
                        kvb_row_to_f32((kvb_dtype)dt, (part ? vb : kb) + (size_t)t * stride * es,
                                       (part ? v : k) + (size_t)t * hd, hd);
                    }
                for (int i = 0; i < g * hd; i++) q[i] = 2.0f * kvbt_urand(&seed);
                kvb_kv_run runs[64];
                int nr = 0;
                for (int t = 0; t < n && nr < 64;) {
                    int m = 1 + (t * 7 + 3) % 37;
                    if (m > n - t || nr == 63) m = n - t;
                    runs[nr++] =
                        (kvb_kv_run){kb + (size_t)t * stride * es, vb + (size_t)t * stride * es, m};
                    t += m;
                }
                path->run((kvb_dtype)dt, runs, nr, stride, hd, g, q, out, scr, NULL);
                kvbt_ref_attend(q, k, v, n, g, 1, hd, ref);
                double e = kvbt_rel_l2(out, ref, (size_t)g * hd);
                if (!(e <= 2e-5)) fail_msg("%s: rel L2 %.3g", name, e);
                /* the same rows as one run: bit-identical (a paged cache equals a contiguous one)
                 */
                float *one = malloc((size_t)g * hd * 4);
                kvb_kv_run whole = {kb, vb, n};
                path->run((kvb_dtype)dt, &whole, 1, stride, hd, g, q, one, scr, NULL);
                if (memcmp(one, out, (size_t)g * hd * 4) != 0)
                    fail_msg("%s: runs differ from one run", name);
                free(one);
                free(kb);
                free(vb);
                free(k);
                free(v);
                free(kk);
                free(q);
                free(out);
                free(scr);
                free(ref);
            }
        }
    }
    if (!ran) skip();
}

/* The no-cache path: causal attention over activations, every position; the
 * GEMM variant alone, through a pool of 2 and of 3 threads (its heads spread,
 * each thread with its own scratch), and bit for bit as without one. */
static void test_causal_matches_reference(void **state)
{
    uint64_t seed = 7;
    int ran = 0;
    for (size_t hs = 0; hs < sizeof kvbt_head_shapes / sizeof kvbt_head_shapes[0]; hs++)
    for (size_t hi = 0; hi < sizeof kvbt_head_dims / sizeof kvbt_head_dims[0]; hi++) {
        int nh = kvbt_head_shapes[hs].nh, nkv = kvbt_head_shapes[hs].nkv, hd = kvbt_head_dims[hi],
            T = 300; /* > 2 blocks */
        char name[128];
        if (!kvbt_case(state, name, sizeof name,
                       "attend(backend=nocache,dt=f32,nh=%d,nkv=%d,hd=%d,ctx=1..%d)", nh, nkv, hd,
                       T))
            continue;
        ran++;
        size_t qn = (size_t)T * nh * hd, kn = (size_t)T * nkv * hd;
        float *q = malloc(qn * 4), *k = malloc(kn * 4), *v = malloc(kn * 4), *o = malloc(qn * 4);
        float *scr = malloc(3 * kvb_attend_causal_scratch_floats(nh, nkv, T, hd) * 4);
        float *alone = malloc(qn * 4);
        double *ref = malloc((size_t)nh * hd * sizeof *ref);
        for (size_t i = 0; i < qn; i++) q[i] = 2.0f * kvbt_urand(&seed);
        for (size_t i = 0; i < kn; i++) { k[i] = kvbt_urand(&seed); v[i] = kvbt_urand(&seed); }
        static const char *const variants[] = {"rows", "gemm", "gemm, pool of 2",
                                               "gemm, pool of 3"};
        for (int variant = 0; variant < 4; variant++) {
            memset(o, 0xff, qn * 4);              /* NaN: a position left unwritten fails */
            kvb_pool *pool = NULL;
            if (variant >= 2) assert_int_equal(kvb_pool_create(&pool, variant, NULL, NULL), 0);
            if (variant == 0) kvb_attend_causal_rows(q, k, v, T, nh, nkv, hd, o, scr);
            else kvb_attend_causal_gemm(q, k, v, T, nh, nkv, hd, o, scr, pool);
            kvb_pool_destroy(pool);
            for (int p = 0; p < T; p++) {
                kvbt_ref_attend(q + (size_t)p * nh * hd, k, v, p + 1, nh, nkv, hd, ref);
                double e = kvbt_rel_l2(o + (size_t)p * nh * hd, ref, (size_t)nh * hd);
                if (!(e <= kvbt_tolerance(KVB_DTYPE_F32)))
                    fail_msg("%s variant %s at position %d: rel L2 error %.3g", name,
                             variants[variant], p, e);
            }
            if (variant == 1) memcpy(alone, o, qn * 4);
            if (variant >= 2 && memcmp(alone, o, qn * 4) != 0)
                fail_msg("%s: %s differs from one thread", name, variants[variant]);
        }
        free(q); free(k); free(v); free(o); free(scr); free(alone); free(ref);
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
    for (int i = 0; i < 333; i++) src[i] = 100.0f * kvbt_urand(&seed);
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

/* K/V memory: zeroed, writable to the last byte, huge-page aligned when large. */
static void test_kv_alloc(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 4095, (size_t)4 << 20, ((size_t)4 << 20) + 12345,
                                   (size_t)9 << 20};
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

/* [runs][items]: how often each item ran, and on which thread; one run's items
 * are in row `run`, so a late worker still inside an earlier run shows up. */
typedef struct pool_log {
    int run, threads, seen_bad, meet;   /* meet: items 0 and 1 wait for each other */
    atomic_int arrived, met;
    int count[64][41];
    int thread_of[64][41];
} pool_log;

static void log_item(void *arg, int item, int thread)
{
    pool_log *g = arg;
    g->count[g->run][item]++;   /* each item is taken by one thread: no race on its cell */
    g->thread_of[g->run][item] = thread;
    if (thread < 0 || thread >= g->threads) g->seen_bad = 1;
    if (g->meet && item < 2) {  /* both inside at once, or the pool ran them one by one */
        atomic_fetch_add(&g->arrived, 1);
        for (int i = 0; i < 4000 && atomic_load(&g->arrived) < 2; i++)
            nanosleep(&(struct timespec){0, 500000}, NULL);   /* at most 2 s */
        if (atomic_load(&g->arrived) >= 2) atomic_fetch_add(&g->met, 1);
    }
}

/* Every item of every run runs exactly once, on a thread in range, whether
 * the runs come back to back or 2 ms apart, and with more threads than this
 * machine's cores; n below, at and above the thread count; workers that sleep
 * at once and workers that poll 200 us first (kvb_pool_set_poll: 2 ms apart
 * they have gone to sleep, back to back they have not). One run's items 0 and
 * 1 wait for each other: they meet only if two threads run them at once. */
static void test_pool_runs_every_item_once(void **state)
{
    (void)state;
    static const int threads[] = {2, 3, 5};
    static pool_log g;
    for (int t = 0; t < 6; t++) {
        kvb_pool *p = NULL;
        assert_int_equal(kvb_pool_create(&p, threads[t % 3], NULL, NULL), KVB_STATUS_OK);
        assert_int_equal(kvb_pool_threads(p), threads[t % 3]);
        kvb_pool_set_poll(p, t < 3 ? 0 : 200);
        memset(&g, 0, sizeof g);
        g.threads = threads[t % 3];
        for (g.run = 0; g.run < 64; g.run++) {
            int n = 1 + (g.run * 7) % 41;
            g.meet = g.run == 3;
            kvb_pool_run(p, n, log_item, &g);
            if (g.run % 16 == 15) nanosleep(&(struct timespec){0, 2000000}, NULL);
            for (int i = 0; i < 41; i++) assert_int_equal(g.count[g.run][i], i < n);
        }
        assert_int_equal(g.seen_bad, 0);
        assert_int_equal(atomic_load(&g.met), 2);
        assert_int_not_equal(g.thread_of[3][0], g.thread_of[3][1]);
        kvb_pool_destroy(p);
    }
}

int main(int argc, char **argv)
{
    static const kvbt_test all[] = {
        {"attend_paths_match_reference", test_attend_paths_match_reference, 1},
        {"causal_matches_reference", test_causal_matches_reference, 1},
        {"f16_bf16_conversions", test_f16_bf16_conversions, 0},
        {"kv_alloc", test_kv_alloc, 0},
        {"pool_runs_every_item_once", test_pool_runs_every_item_once, 0},
    };
    return kvbt_main(argc, argv, "kernels", all, KVBT_COUNT(all));
}
