/* test_quant.c: quantized storage, its kernels and the quant backend (cmocka).
 *
 * The formats (q8, q4, q4_1, q2) round-trip each group within half a step; every
 * kernel table (portable, AVX-512, VNNI) agrees with float64 over the dequantized
 * rows; the backend's fused attend equals float64 attention over what read_kv
 * gives back (and differs from attention over the unquantized inputs once
 * anything is quantized, so the comparison can tell them apart); bytes per token,
 * fork and clear keep the books; bad options are refused with their value named.
 * Usage: test_quant [REGEX] (or KVB_TEST_FILTER=REGEX): see testlib.h. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../impls/kernels/kernels.h"
#include "../impls/kernels/quant.h"
#include "../impls/kvb_backend.h"
#include "testlib.h"

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
    if (!(d >= 0 && isfinite(d) && isfinite(a)))
        fail_msg("%s %s: d %g a %g", kvb_dtype_name(f->dtype), what, d, a);
    kvb_qpack(f, codes, n, packed);
    kvb_qunpack(f, packed, n, back);
    for (int i = 0; i < n; i++) {
        if (codes[i] > f->cmax || back[i] != codes[i])
            fail_msg("%s %s: code %d = %d, unpacked %d", kvb_dtype_name(f->dtype), what, i,
                     codes[i], back[i]);
        float xr = d * (float)codes[i] + a;
        /* half a step, plus float rounding of the read-back */
        double bound = 0.5 * d * (1 + 1e-5) + 1e-6 * fabs(x[i]) + 1e-30;
        if (!(fabs((double)x[i] - xr) <= bound))
            fail_msg("%s %s: x[%d] = %.9g reads back %.9g, error %.3g > d/2 = %.3g",
                     kvb_dtype_name(f->dtype), what, i, x[i], xr, fabs((double)x[i] - xr), 0.5 * d);
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
                float mag = powf(10.0f, (float)(rep % 9) - 4.0f),
                      off = rep % 3 == 0 ? 3.0f * mag : 0.0f;
                for (int i = 0; i < n; i++) x[i] = mag * kvbt_urand(&seed) + off;
                check_group(f, x, n, "random");
            }
            for (int i = 0; i < n; i++) x[i] = 0.0f;
            assert_true(check_group(f, x, n, "zeros") == 0.0f);      /* exact: d = 0 */
            for (int i = 0; i < n; i++) x[i] = -2.75f;
            check_group(f, x, n, "constant");
            for (int i = 0; i < n; i++) x[i] = 1e-30f * (float)(i + 1);
            check_group(f, x, n, "tiny");
            for (int i = 0; i < n; i++)
                x[i] = (i & 1) ? 60000.0f : -60000.0f; /* largest f16 steps */
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
    assert_int_equal(kvb_cache_create(&c, b, &sh, &o, msg, sizeof msg), KVB_STATUS_OK);
    float k[32], v[32];
    for (int i = 0; i < 32; i++) k[i] = v[i] = 0.5f;
    assert_int_equal(kvb_cache_append(c, 0, 0, k, v), KVB_STATUS_OK);
    k[3] = NAN;
    assert_int_equal(kvb_cache_append(c, 0, 0, k, v), KVB_STATUS_INVALID_ARG);
    k[3] = 0.5f;
    v[31] = -INFINITY;
    assert_int_equal(kvb_cache_append(c, 0, 0, k, v), KVB_STATUS_INVALID_ARG);
    assert_int_equal(kvb_cache_length(c, 0, 0), 1);
    kvb_cache_destroy(c);
}

/* kvb_qround_weights: every product reads back within delta/2, the largest as
 * 255, none past it; a tile of products below KVB_QWEIGHT_TINY gives zeros. */
static void test_quant_round_weights(void **state)
{
    (void)state;
    uint64_t seed = 3;
    float w[KVB_QWEIGHT_TILE], d[KVB_QWEIGHT_TILE], delta;
    uint8_t wq[KVB_QWEIGHT_TILE];
    for (int n = 1; n <= KVB_QWEIGHT_TILE; n += 7)
        for (int rep = 0; rep < 20; rep++) {
            float amax = 0;
            for (int t = 0; t < n; t++) {
                w[t] = fabsf(kvbt_urand(&seed)) * (rep % 4 == 0 ? 1e-3f : 1.0f);
                d[t] = (float)(rep + 1) * fabsf(kvbt_urand(&seed));
                amax = fmaxf(amax, w[t] * d[t]);
            }
            kvb_qround_weights(w, d, n, wq, &delta);
            int top = 0;
            for (int t = 0; t < n; t++) {
                float u = w[t] * d[t];
                /* half a step, and the float rounding of u * 255 / amax */
                assert_true(fabs((double)u - (double)delta * wq[t]) <= (0.5 + 1e-4) * delta);
                top = wq[t] > top ? wq[t] : top;
            }
            assert_int_equal(top, amax > 0 ? 255 : 0);
        }
    for (int t = 0; t < 8; t++) { w[t] = 0x1p-60f; d[t] = 0x1p-50f; }   /* products 2^-110 */
    kvb_qround_weights(w, d, 8, wq, &delta);
    assert_true(delta == 0.0f);
    for (int t = 0; t < 8; t++) assert_int_equal(wq[t], 0);
}

/* The sum a table's accum gives for head weights wh (n rows of r, values of
 * element i), in float64, and the size of its terms: over the read-back rows,
 * or, where the table rounds these weights (quant.h: rounds_weights; nonneg:
 * every weight of the call is >= 0), over the weights rounded per tile and
 * group as kvb_qround_weights defines. */
static void accum_want(const kvb_qkernels *kt, const kvb_qrows *r, int nonneg, const float *wh,
                       int i, const float *deq, const float *tm, const float *codes,
                       double *want, double *mag)
{
    const int n = r->n, hd = r->head_dim, np = kvb_qparams(r->fmt);
    const int rounds = nonneg && kt->rounds_weights && kt->rounds_weights(r);
    *want = 1.0;
    *mag = 1.0;
    if (!rounds) {
        for (int t = 0; t < n; t++) {
            *want += (double)wh[t] * deq[(size_t)t * hd + i];
            *mag += fabs((double)wh[t]) * tm[(size_t)t * hd + i];
        }
        return;
    }
    const int j = i / r->group;
    for (int t0 = 0; t0 < n; t0 += KVB_QWEIGHT_TILE) {
        const int nr = n - t0 < KVB_QWEIGHT_TILE ? n - t0 : KVB_QWEIGHT_TILE;
        float d[KVB_QWEIGHT_TILE], a[KVB_QWEIGHT_TILE], delta;
        uint8_t wq[KVB_QWEIGHT_TILE];
        for (int t = 0; t < nr; t++)
            kvb_qgroup_coeffs(r->fmt, r->params + (size_t)(t0 + t) * r->param_stride + j * np,
                              &d[t], &a[t]);
        kvb_qround_weights(wh + t0, d, nr, wq, &delta);
        const int k = 1 << (r->fmt->bits - 1);
        for (int t = 0; t < nr; t++) {
            /* x' = d (c - k) + (m + k d): the rounded u = w d meets c - k, w the rest
             * (symmetric formats: k = zero, m = 0) */
            double c = codes[(size_t)(t0 + t) * hd + i] - k;
            double m = r->fmt->asym ? (double)a[t] + k * (double)d[t] : 0.0;
            *want += (double)delta * wq[t] * c + (double)wh[t0 + t] * m;
            *mag += fabs((double)delta * wq[t] * c) + fabs((double)wh[t0 + t] * m);
        }
    }
}

/* Every kernel table against a float64 reference over read-back rows (and, for
 * a table that rounds the query or the weights, those rounded). */
static void test_quant_kernels_match_dequantized(void **state)
{
    const kvb_qkernels *tables[4] = {&kvb_qkernels_portable, kvb_qkernels_avx512(),
                                     kvb_qkernels_avx512_vnni(), kvb_qkernels_avx512_vnni_int8()};
    const char *names[4] = {"portable", "avx512", "avx512-vnni", "avx512-vnni-int8"};
    uint64_t seed = 5;
    int ran = 0;
    for (int ti = 0; ti < 4; ti++) {
        if (!tables[ti]) {
            print_message("%s kernels: not in this build or CPU, skipped\n", names[ti]);
            continue;
        }
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
                if (!kvbt_case(state, name, sizeof name,
                               "qkernel(impl=%s,dt=%s,hd=%d,group=%d,raw=%d,g=%d,n=%d)",
                               tables[ti]->name, kvb_dtype_name(f->dtype), hd, group, raw, g, n))
                    continue;
                ran++;
                size_t cb = kvb_qcode_bytes(f, hd);
                /* one case in eight with rows' words apart (param_stride > their count) */
                size_t ps = (size_t)ng * np + (n == 65 ? 3 : 0);
                uint8_t *codes = malloc((size_t)n * cb), *u = malloc((size_t)hd);
                uint16_t *w = malloc((size_t)n * ps * 2);
                float *x = malloc((size_t)hd * 4), *deq = malloc((size_t)n * hd * 4);
                float *q = malloc((size_t)g * hd * 4), *wt = malloc((size_t)g * n * 4);
                float *sc = malloc((size_t)g * n * 4), *out = malloc((size_t)g * hd * 4);
                float *scr = malloc(kvb_qkernels_scratch_floats(g, hd) * 4);
                for (int t = 0; t < n; t++) {
                    for (int i = 0; i < hd; i++) x[i] = kvbt_urand(&seed) * (1.0f + (float)(t % 3));
                    for (int j = 0; j < ng; j++)
                        kvb_quant_group(f, x + j * group, 1, group, u + j * group,
                                        w + (size_t)t * ps + (size_t)j * np);
                    kvb_qpack(f, u, hd, codes + (size_t)t * cb);
                }
                kvb_qrows r = {f, codes, raw ? NULL : w, cb, ps, n, hd, group};
                /* tm: the size of each value's terms, |d| c + |a|: a kernel may sum
                 * d c and a apart (folded), so rounding scales with them */
                float *tm = malloc((size_t)n * hd * 4), *cd = malloc((size_t)n * hd * 4);
                for (int t = 0; t < n; t++) {
                    kvb_qrow_codes(&r, t, tm + (size_t)t * hd);
                    memcpy(cd + (size_t)t * hd, tm + (size_t)t * hd, (size_t)hd * 4);
                    if (raw) {
                        memcpy(deq + (size_t)t * hd, tm + (size_t)t * hd, (size_t)hd * 4);
                        continue;
                    }
                    kvb_qrow_dequant(&r, t, deq + (size_t)t * hd);
                    for (int i = 0; i < hd; i++) {
                        float d, a;
                        kvb_qgroup_coeffs(f, w + (size_t)t * ps + (size_t)(i / group) * np, &d,
                                          &a);
                        tm[(size_t)t * hd + i] = fabsf(d) * tm[(size_t)t * hd + i] + fabsf(a);
                    }
                }
                for (int i = 0; i < g * hd; i++) q[i] = 2.0f * kvbt_urand(&seed);
                for (int i = 0; i < g * n; i++) wt[i] = 0.5f + 0.5f * kvbt_urand(&seed);
                if (n == 5) wt[(size_t)(g - 1) * n + 2] = -0.25f;  /* not softmax's: f32 sums */
                tables[ti]->scores(&r, g, q, 0.125f, sc, (size_t)n, scr);
                if (tables[ti]->rounds_query && !raw)       /* the reference meets the same query */
                    for (int h = 0; h < g; h++)
                        kvb_qround_query(q + (size_t)h * hd, hd, q + (size_t)h * hd);
                for (int i = 0; i < g * hd; i++) out[i] = 1.0f;    /* accum adds to what is there */
                if (!raw) tables[ti]->accum(&r, g, wt, (size_t)n, out, scr);
                for (int h = 0; h < g; h++)
                    for (int t = 0; t < n; t++) {
                        double want = 0, mag = 0;
                        for (int i = 0; i < hd; i++) {
                            want += (double)q[h * hd + i] * deq[(size_t)t * hd + i];
                            mag += fabs((double)q[h * hd + i]) * tm[(size_t)t * hd + i];
                        }
                        if (!(fabs(sc[(size_t)h * n + t] - 0.125 * want) <=
                              1e-5 * 0.125 * mag + 1e-30))
                            fail_msg("%s: score[%d][%d] = %.9g, want %.9g", name, h, t,
                                     sc[(size_t)h * n + t], 0.125 * want);
                    }
                for (int h = 0; !raw && h < g; h++)
                    for (int i = 0; i < hd; i++) {
                        double want, mag;
                        accum_want(tables[ti], &r, n != 5, wt + (size_t)h * n, i, deq, tm, cd,
                                   &want, &mag);
                        if (!(fabs(out[h * hd + i] - want) <= 1e-5 * mag))
                            fail_msg("%s: out[%d][%d] = %.9g, want %.9g", name, h, i,
                                     out[h * hd + i], want);
                    }
                free(codes);
                free(u);
                free(w);
                free(x);
                free(deq);
                free(q);
                free(wt);
                free(sc);
                free(out);
                free(scr);
                free(tm);
                free(cd);
            }
        }
    }
    /* the SIMD softmax's exp against libm */
    for (int ti = 0; ti < 4; ti++) {
        if (!tables[ti]) continue;
        float sv[37];
        double ref[37], sum = 0;
        for (int i = 0; i < 37; i++) sv[i] = 30.0f * kvbt_urand(&seed);
        float mx = sv[0];
        for (int i = 1; i < 37; i++) mx = sv[i] > mx ? sv[i] : mx;
        for (int i = 0; i < 37; i++) {
            ref[i] = exp((double)(sv[i] - mx));
            sum += ref[i];
        } /* the f32 difference */
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
    static const char *const kernels[] = {"portable", "avx512", "avx512-vnni", "avx512-vnni-int8"};
    static const int hds[] = {16, 64, 128, 256};
    double worst8 = 0;            /* the rounded weights' error, worst case */
    /* residual 600 > max_seq 512: the ring is the whole sequence, nothing is quantized */
    static const struct { int group, residual; kvb_key_axis axis;
    } vs[] = {
        {32, 0, KVB_KEY_AXIS_TOKEN},     {32, 0, KVB_KEY_AXIS_CHANNEL},
        {32, 128, KVB_KEY_AXIS_DEFAULT}, {64, 7, KVB_KEY_AXIS_CHANNEL},
        {16, 40, KVB_KEY_AXIS_TOKEN},    {32, 600, KVB_KEY_AXIS_CHANNEL},
    };
    int skipped = 0;
    for (size_t ki = 0; ki < sizeof kernels / sizeof kernels[0]; ki++)
    for (int fi = 0; fi < N_QTYPES; fi++)
    for (size_t vi = 0; vi < sizeof vs / sizeof vs[0]; vi++)
    for (size_t hs = 0; hs < sizeof kvbt_head_shapes / sizeof kvbt_head_shapes[0]; hs++)
    for (size_t hi = 0; hi < sizeof hds / sizeof hds[0]; hi++)
    for (size_t ci = 0; ci < sizeof ctxs / sizeof ctxs[0]; ci++) {
        int nh = kvbt_head_shapes[hs].nh, nkv = kvbt_head_shapes[hs].nkv, hd = hds[hi],
            ctx = ctxs[ci];
        kvb_shape sh = {1, nh, nkv, hd, 512};
        /* odd contexts attend with two threads (split over KV heads where the
         * codes pass 256 KiB: the larger shapes at 300 tokens) */
        int threads = ci % 2 ? 2 : 1;
        kvb_options o = {.dtype = qtypes[fi],
                         .max_seqs = 1,
                         .group = vs[vi].group,
                         .residual = vs[vi].residual,
                         .key_axis = vs[vi].axis,
                         .qkernel = kernels[ki],
                         .threads = threads};
        char name[240], why[160];
        if (!kvbt_case(state, name, sizeof name,
                       "quant_fused(kernel=%s,dt=%s,g=%d,r=%d,keys=%s,threads=%d,nh=%d,nkv=%d,hd=%"
                       "d,ctx=%d)",
                       kernels[ki], kvb_dtype_name(qtypes[fi]), vs[vi].group, vs[vi].residual,
                       kvb_key_axis_name(vs[vi].axis), threads, nh, nkv, hd, ctx))
            continue;
        if (kvb_backend_supports(b, &sh, &o, why, sizeof why) != KVB_STATUS_OK) {
            skipped++;
            continue;
        }
        ran++;
        const kvb_qkernels *kt = kvb_qkernels_find(kernels[ki], hd, vs[vi].group, why, sizeof why);
        int rounded =
            kt->rounds_query && kvb_key_axis_resolve(qtypes[fi], vs[vi].axis) == KVB_KEY_AXIS_TOKEN;
        size_t kvn = (size_t)ctx * nkv * hd;
        float *k = malloc(kvn * 4), *v = malloc(kvn * 4), *rk = malloc(kvn * 4),
              *rv = malloc(kvn * 4);
        float *q = malloc((size_t)nh * hd * 4), *out = malloc((size_t)nh * hd * 4);
        double *ref = malloc((size_t)nh * hd * sizeof *ref);
        for (size_t i = 0; i < kvn; i++) { k[i] = kvbt_urand(&seed); v[i] = kvbt_urand(&seed); }
        for (int i = 0; i < nh * hd; i++) q[i] = 2.0f * kvbt_urand(&seed);
        kvb_cache *c;
        char msg[128];
        assert_int_equal(kvb_cache_create(&c, b, &sh, &o, msg, sizeof msg), KVB_STATUS_OK);
        for (int t = 0; t < ctx; t++)
            assert_int_equal(
                kvb_cache_append(c, 0, 0, k + (size_t)t * nkv * hd, v + (size_t)t * nkv * hd),
                KVB_STATUS_OK);
        assert_int_equal(kvb_cache_attend(c, 0, 0, q, out), KVB_STATUS_OK);
        for (int t = 0; t < ctx; t++)
            for (int h = 0; h < nkv; h++)
                assert_int_equal(kvb_cache_read_kv(c, 0, 0, h, t, rk + ((size_t)t * nkv + h) * hd,
                                            rv + ((size_t)t * nkv + h) * hd), KVB_STATUS_OK);
        float *qr = malloc((size_t)nh * hd * 4);
        for (int h = 0; h < nh; h++) {
            if (rounded) kvb_qround_query(q + (size_t)h * hd, hd, qr + (size_t)h * hd);
            else         memcpy(qr + (size_t)h * hd, q + (size_t)h * hd, (size_t)hd * 4);
        }
        kvbt_ref_attend(qr, rk, rv, ctx, nh, nkv, hd, ref);
        free(qr);
        double e = kvbt_rel_l2(out, ref, (size_t)nh * hd);
        /* weights rounded to 8 bits of their tile's largest product (quant.h:
         * rounds_weights) move the output by up to about 1/255 of the rows
         * they sum (measured up to 4.7e-3 here); f32 sums agree to rounding */
        const double bound = kt->rounds_weights ? 1e-2 : 2e-5;
        if (kt->rounds_weights && e > worst8) worst8 = e;
        if (!(e <= bound))
            fail_msg("%s: rel L2 %.3g against attention over the read-back values", name, e);
        int quantized = memcmp(k, rk, kvn * 4) != 0 || memcmp(v, rv, kvn * 4) != 0;
        int unit = kvb_key_axis_resolve(qtypes[fi], vs[vi].axis) == KVB_KEY_AXIS_CHANNEL
                       ? vs[vi].group
                       : 1;
        assert_int_equal(quantized, ctx >= vs[vi].residual + unit); /* the residual window holds */
        if (quantized) {
            kvbt_ref_attend(q, k, v, ctx, nh, nkv, hd, ref);
            double e64 = kvbt_rel_l2(out, ref, (size_t)nh * hd);
            assert_true(e64 > 2e-5);
            /* and the rounded weights stay within the storage type's tolerance */
            if (kt->rounds_weights && !(e64 <= kvbt_tolerance(qtypes[fi])))
                fail_msg("%s: rel L2 %.3g against float64, tolerance %.3g", name, e64,
                         kvbt_tolerance(qtypes[fi]));
        }
        kvb_cache_destroy(c);
        free(k); free(v); free(rk); free(rv); free(q); free(out); free(ref);
    }
    print_message("quant fused: %d cases, %d skipped (kernel or shape unsupported here); "
                  "8-bit weights: worst rel L2 %.2g against the read-back values\n",
                  ran, skipped, worst8);
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
        assert_int_equal(kvb_cache_create(&c, b, &sh, &o, msg, sizeof msg), KVB_STATUS_OK);
        double qbits = kvb_dtype_bits(qtypes[fi], G);
        size_t per_tok_q = (size_t)(2.0 * L * nkv * hd * qbits / 8.0 + 0.5),
               per_tok_f = 2 * (size_t)L * nkv * hd * 4;
        uint64_t seed = 3;
        float k[128], v[128];
        int unit = axis == KVB_KEY_AXIS_CHANNEL ? G : 1;
        for (int n = 1; n <= max_seq; n++) {
            for (int l = 0; l < L; l++) {
                for (int i = 0; i < nkv * hd; i++) {
                    k[i] = kvbt_urand(&seed);
                    v[i] = kvbt_urand(&seed);
                }
                assert_int_equal(kvb_cache_append(c, 0, l, k, v), KVB_STATUS_OK);
            }
            int nq = n >= R + unit ? (n - R) / unit * unit : 0;
            kvb_memory m = kvb_cache_memory(c), sm = kvbt_seq_memory(c, 0);
            assert_int_equal(m.used, per_tok_q * (size_t)nq + per_tok_f * (size_t)(n - nq));
            assert_int_equal(sm.used, m.used);
            assert_true(m.reserved >= m.used);
        }
        assert_int_equal(kvb_cache_append(c, 0, 0, k, v), KVB_STATUS_FULL);
        /* fork: a full copy that attends alike */
        assert_int_equal(kvb_cache_seq_fork(c, 0, 1), KVB_STATUS_OK);
        float q[256], o0[256], o1[256];
        for (int i = 0; i < nh * hd; i++) q[i] = kvbt_urand(&seed);
        for (int l = 0; l < L; l++) {
            assert_int_equal(kvb_cache_attend(c, 0, l, q, o0), KVB_STATUS_OK);
            assert_int_equal(kvb_cache_attend(c, 1, l, q, o1), KVB_STATUS_OK);
            assert_memory_equal(o0, o1, sizeof(float) * nh * hd);
        }
        assert_int_equal(kvb_cache_memory(c).used, 2 * kvbt_seq_memory(c, 0).used);
        assert_int_equal(kvb_cache_seq_clear(c, 0), KVB_STATUS_OK);
        assert_int_equal(kvbt_seq_memory(c, 0).reserved, 0);
        assert_int_equal(kvb_cache_length(c, 0, 0), 0);
        assert_int_equal(kvb_cache_length(c, 1, 1), max_seq);
        kvb_cache_destroy(c);
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
        assert_int_equal(kvb_cache_create(&c, b, &fs, &fo, msg, sizeof msg), KVB_STATUS_OK);
        uint64_t seed = 17;
        float kv[2][128];
        for (int t = 0; t < n0; t++) {
            for (int i = 0; i < fkv * fhd; i++) {
                kv[0][i] = kvbt_urand(&seed);
                kv[1][i] = kvbt_urand(&seed);
            }
            assert_int_equal(kvb_cache_append(c, 0, 0, kv[0], kv[1]), KVB_STATUS_OK);
        }
        /* 32 quantized, 18 in the ring */
        assert_int_equal(kvb_cache_seq_fork(c, 0, 1), KVB_STATUS_OK);
        for (int t = 0; t < n1; t++)
            for (int sq = 0; sq < 2; sq++) {
                for (int i = 0; i < fkv * fhd; i++) {
                    kv[0][i] = kvbt_urand(&seed);
                    kv[1][i] = kvbt_urand(&seed);
                }
                assert_int_equal(kvb_cache_append(c, sq, 0, kv[0], kv[1]), KVB_STATUS_OK);
            }
        float *rk[2], *rv[2], q[256], out[256];
        double ref[256];
        for (int sq = 0; sq < 2; sq++) {
            rk[sq] = malloc((size_t)(n0 + n1) * fkv * fhd * 4);
            rv[sq] = malloc((size_t)(n0 + n1) * fkv * fhd * 4);
            for (int t = 0; t < n0 + n1; t++)
                for (int h = 0; h < fkv; h++)
                    assert_int_equal(kvb_cache_read_kv(c, sq, 0, h, t,
                                                rk[sq] + ((size_t)t * fkv + h) * fhd,
                                                rv[sq] + ((size_t)t * fkv + h) * fhd),
                                     KVB_STATUS_OK);
        }
        /* the 32 tokens quantized before the fork read back alike; the 18 then in
         * the ring were quantized after it, with per-channel scales that also
         * saw each sequence's own later tokens, so they may differ */
        assert_memory_equal(rk[0], rk[1], (size_t)32 * fkv * fhd * 4);
        assert_memory_equal(rv[0], rv[1], (size_t)32 * fkv * fhd * 4);
        assert_true(memcmp(rk[0] + (size_t)n0 * fkv * fhd, rk[1] + (size_t)n0 * fkv * fhd,
                           (size_t)n1 * fkv * fhd * 4) != 0);
        for (int i = 0; i < fnh * fhd; i++) q[i] = 2.0f * kvbt_urand(&seed);
        for (int sq = 0; sq < 2; sq++) {
            assert_int_equal(kvb_cache_attend(c, sq, 0, q, out), KVB_STATUS_OK);
            kvbt_ref_attend(q, rk[sq], rv[sq], n0 + n1, fnh, fkv, fhd, ref);
            assert_true(kvbt_rel_l2(out, ref, (size_t)fnh * fhd) <= 2e-5);
            free(rk[sq]); free(rv[sq]);
        }
        kvb_cache_destroy(c);
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
    assert_int_equal(kvb_backend_supports(b, &sh, &bad_kernel, why, sizeof why),
                     KVB_STATUS_INVALID_ARG);
    assert_non_null(strstr(why, "'neon'"));
    kvb_options q8 = {.dtype = KVB_DTYPE_Q8, .max_seqs = 1};
    assert_int_equal(
        kvb_backend_supports(kvb_backend_find("contiguous"), &sh, &q8, why, sizeof why),
        KVB_STATUS_UNSUPPORTED);
}

int main(int argc, char **argv)
{
    static const kvbt_test all[] = {
        {"quant_roundtrip", test_quant_roundtrip, 0},
        {"quant_round_weights", test_quant_round_weights, 0},
        {"quant_kernels_match_dequantized", test_quant_kernels_match_dequantized, 1},
        {"quant_fused_equals_dequantized", test_quant_fused_equals_dequantized, 1},
        {"quant_memory_and_lifecycle", test_quant_memory_and_lifecycle, 0},
    };
    return kvbt_main(argc, argv, "quant", all, KVBT_COUNT(all));
}
