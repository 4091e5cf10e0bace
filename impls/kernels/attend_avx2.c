/* attend_avx2.c: the AVX2 row of the attend kernels (kernels.h) for f32, f16
 * and bf16 rows (head_dim a multiple of 8), chosen at run time on x86-64 CPUs
 * that have AVX2, FMA and F16C but not AVX-512; kernels.c keeps the portable reference,
 * and the tests hold every path to float64.
 *
 * The same plan as attend_avx512.c at half the width, within AVX2's sixteen
 * registers: keys two rows at a time for up to four heads of a GQA group (each
 * row read once for all of them, converted in registers: f16 by vcvtph2ps,
 * bf16 by a 16-bit shift), four (head, row) sums reduced by one hadd tree;
 * vectorized max and exp for the softmax; values in tiles of TILE_ROWS rows
 * over the global row index, eight accumulators per column block, so a paged
 * cache's runs give bit-identical output to one contiguous run. */
#include "kernels.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#define KVB_AVX2 __attribute__((target("avx2,fma,f16c")))
#define KVB_INLINE2 inline __attribute__((always_inline))

enum { TILE_ROWS = 64 };

/* 8 values of a stored row from element e on, as f32. */
static KVB_INLINE2 KVB_AVX2 __m256 load8(const int dt, const char *row, int e)
{
    if (dt == KVB_DTYPE_F16)
        return _mm256_cvtph_ps(
            _mm_loadu_si128((const __m128i *)(const void *)(row + 2 * (size_t)e)));
    if (dt == KVB_DTYPE_BF16)
        return _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(
                                  (const __m128i *)(const void *)(row + 2 * (size_t)e))),
                              16));
    return _mm256_loadu_ps((const float *)(const void *)row + e);
}

/* {sum a, sum b, sum c, sum d}: one hadd tree for four vectors. */
static KVB_INLINE2 KVB_AVX2 __m128 reduce4_256(__m256 a, __m256 b, __m256 c, __m256 d)
{
    __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

/* scale * lane sums of acc[h * R + r] into s[h * s_stride + t + r]. Fewer than
 * four go through the same tree, so a row's score never depends on grouping. */
static KVB_INLINE2 KVB_AVX2 void store_scores8(const __m256 *acc, const int HB, const int R, int t,
                                               float scale, float *s, size_t s_stride)
{
    for (int j = 0; j < R * HB; j += 4) {
        float v[4];
        __m256 a1 = j + 1 < R * HB ? acc[j + 1] : acc[j];
        __m256 a2 = j + 2 < R * HB ? acc[j + 2] : acc[j];
        __m256 a3 = j + 3 < R * HB ? acc[j + 3] : acc[j];
        _mm_storeu_ps(v, _mm_mul_ps(reduce4_256(acc[j], a1, a2, a3), _mm_set1_ps(scale)));
        for (int i = 0; i < 4 && j + i < R * HB; i++)
            s[(size_t)((j + i) / R) * s_stride + t + (j + i) % R] = v[i];
    }
}

/* exp(x) for x <= 0, Cephes expf's polynomial; 2^n built in the exponent bits
 * (x clamped at -87 so n stays a normal exponent; exp(-87) is 1.6e-38). */
static KVB_INLINE2 KVB_AVX2 __m256 exp8(__m256 x)
{
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static KVB_INLINE2 KVB_AVX2 float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

/* s[t] = exp(s[t] - max) over n > 0 scores; returns the sum, the max in *max_out. */
static KVB_INLINE2 KVB_AVX2 float softmax_exp_max8(float *s, int n, float *max_out)
{
    __m256 mx = _mm256_set1_ps(-INFINITY);
    int t = 0;
    for (; t + 8 <= n; t += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(s + t));
    float tail[8], mf;
    _mm256_storeu_ps(tail, mx);
    mf = tail[0];
    for (int i = 1; i < 8; i++) mf = tail[i] > mf ? tail[i] : mf;
    for (int i = t; i < n; i++) mf = s[i] > mf ? s[i] : mf;
    *max_out = mf;
    __m256 m = _mm256_set1_ps(mf), sum = _mm256_setzero_ps();
    for (t = 0; t + 8 <= n; t += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + t), m));
        _mm256_storeu_ps(s + t, e);
        sum = _mm256_add_ps(sum, e);
    }
    if (t < n) { /* the tail through the same exp, padded with -inf */
        for (int i = 0; i < 8; i++) tail[i] = t + i < n ? s[t + i] - mf : -INFINITY;
        __m256 e = exp8(_mm256_loadu_ps(tail));
        e = _mm256_and_ps(
            e, _mm256_cmp_ps(_mm256_loadu_ps(tail), _mm256_set1_ps(-INFINITY), _CMP_NEQ_OQ));
        _mm256_storeu_ps(tail, e);
        for (int i = 0; t + i < n; i++) s[t + i] = tail[i];
        sum = _mm256_add_ps(sum, e);
    }
    return hsum8(sum);
}

static KVB_INLINE2 KVB_AVX2 void scores8(const int dt, const int HB, const int R, const char *row0,
                                         size_t row_bytes, size_t pf, int n, int hd, const float *q,
                                         float scale, float *s, size_t s_stride)
{
    int t = 0;
    for (; t + R <= n; t += R) {
        __m256 acc[8];
        for (int j = 0; j < R * HB; j++) acc[j] = _mm256_setzero_ps();
        for (int r = 0; r < R; r++) {
            const char *row = row0 + (size_t)(t + r) * row_bytes;
            for (size_t b = 0; b < row_bytes; b += 64) _mm_prefetch(row + pf + b, _MM_HINT_T0);
            for (int e = 0; e < hd; e += 8) {
                __m256 x = load8(dt, row, e);
                for (int h = 0; h < HB; h++)
                    acc[h * R + r] =
                        _mm256_fmadd_ps(_mm256_loadu_ps(q + (size_t)h * hd + e), x, acc[h * R + r]);
            }
        }
        store_scores8(acc, HB, R, t, scale, s, s_stride);
    }
    for (; t < n; t++) {                         /* the rows left over: one at a time */
        __m256 acc[4];
        const char *row = row0 + (size_t)t * row_bytes;
        for (int h = 0; h < HB; h++) acc[h] = _mm256_setzero_ps();
        for (int e = 0; e < hd; e += 8) {
            __m256 x = load8(dt, row, e);
            for (int h = 0; h < HB; h++)
                acc[h] = _mm256_fmadd_ps(_mm256_loadu_ps(q + (size_t)h * hd + e), x, acc[h]);
        }
        store_scores8(acc, HB, 1, t, scale, s, s_stride);
    }
}

/* Rows in sequence order across runs (see attend_avx512.c). */
typedef struct row_cursor8 { const kvb_kv_run *runs; int r, off; } row_cursor8;

static KVB_INLINE2 const char *cursor8_next(row_cursor8 *c, size_t row_bytes)
{
    while (c->runs[c->r].n == c->off) { c->r++; c->off = 0; }
    return (const char *)c->runs[c->r].v + (size_t)c->off++ * row_bytes;
}

/* out[h] += sum_t w[h][t] row_t for HB heads, NCV vectors (8 NCV values) of a
 * row at a time: HB x NCV <= 8 sums in registers, each tile read from memory
 * once and from cache for the later column blocks. */
static KVB_INLINE2 KVB_AVX2 void values8(const int dt, const int HB, const int NCV,
                                         const kvb_kv_run *runs, size_t row_bytes, int n,
                                         const float *w, size_t w_stride, float *out, int hd)
{
    row_cursor8 start = {runs, 0, 0};
    for (int t0 = 0; t0 < n; t0 += TILE_ROWS) {
        int t1 = t0 + TILE_ROWS < n ? t0 + TILE_ROWS : n;
        row_cursor8 cur = start;
        for (int e0 = 0; e0 < hd; e0 += 8 * NCV) {
            __m256 acc[4][8];
            for (int h = 0; h < HB; h++)
                for (int c = 0; c < NCV; c++) acc[h][c] = _mm256_setzero_ps();
            cur = start;
            for (int t = t0; t < t1; t++) {
                const char *row = cursor8_next(&cur, row_bytes);
                if (e0 == 0)
                    for (size_t b = 0; b < row_bytes; b += 64)
                        _mm_prefetch(row + TILE_ROWS * row_bytes + b, _MM_HINT_T0);
                __m256 x[8];
                for (int c = 0; c < NCV; c++) x[c] = load8(dt, row, e0 + 8 * c);
                for (int h = 0; h < HB; h++) {
                    __m256 wt = _mm256_set1_ps(w[(size_t)h * w_stride + t]);
                    for (int c = 0; c < NCV; c++) acc[h][c] = _mm256_fmadd_ps(wt, x[c], acc[h][c]);
                }
            }
            for (int h = 0; h < HB; h++)
                for (int c = 0; c < NCV; c++) {
                    float *o = out + (size_t)h * hd + e0 + 8 * c;
                    _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), acc[h][c]));
                }
        }
        start = cur;
    }
}

static KVB_INLINE2 KVB_AVX2 void run8(const int dt, const kvb_kv_run *runs, int n_runs,
                                      size_t row_bytes, int hd, int g, const float *q, float *out,
                                      float *scores, int n, float *ml)
{
    const float scale = 1.0f / sqrtf((float)hd);
    /* 4 rows ahead on every CPU: the AVX-512 path's longer AMD distance gains
     * this path little (docs/tuning.md), and without that path's care at run
     * ends it would fetch other sequences' rows past every paged block */
    const size_t pf = 4 * row_bytes;
    for (int h0 = 0; h0 < g;) {
        int left = g - h0, hb = left >= 4 ? 4 : left >= 2 ? 2 : 1;
        const float *qh = q + (size_t)h0 * hd;
        float *sh = scores + (size_t)h0 * n;
        for (int r = 0, t = 0; r < n_runs; t += runs[r].n, r++) {
            const char *k = runs[r].k;
            if (hb == 4)
                scores8(dt, 4, 2, k, row_bytes, pf, runs[r].n, hd, qh, scale, sh + t, (size_t)n);
            else if (hb == 2)
                scores8(dt, 2, 2, k, row_bytes, pf, runs[r].n, hd, qh, scale, sh + t, (size_t)n);
            else
                scores8(dt, 1, 4, k, row_bytes, pf, runs[r].n, hd, qh, scale, sh + t, (size_t)n);
        }
        h0 += hb;
    }
    for (int h = 0; h < g; h++) {
        float mx, sum = softmax_exp_max8(scores + (size_t)h * n, n, &mx), inv = 1.0f / sum;
        if (ml) { ml[2 * h] = mx; ml[2 * h + 1] = sum; }
        for (int t = 0; t < n; t++) scores[(size_t)h * n + t] *= inv;
    }
    for (int h0 = 0; h0 < g;) {
        int left = g - h0, hb = left >= 4 ? 4 : left >= 2 ? 2 : 1;
        const float *wh = scores + (size_t)h0 * n;
        float *oh = out + (size_t)h0 * hd;
        /* eight sums: 4 heads x 16 values, 2 x 32, 1 x 64, where head_dim allows */
        if (hb == 4 && hd % 16 == 0)
            values8(dt, 4, 2, runs, row_bytes, n, wh, (size_t)n, oh, hd);
        else if (hb == 4)
            values8(dt, 4, 1, runs, row_bytes, n, wh, (size_t)n, oh, hd);
        else if (hb == 2 && hd % 32 == 0)
            values8(dt, 2, 4, runs, row_bytes, n, wh, (size_t)n, oh, hd);
        else if (hb == 2)
            values8(dt, 2, 1, runs, row_bytes, n, wh, (size_t)n, oh, hd);
        else if (hd % 64 == 0)
            values8(dt, 1, 8, runs, row_bytes, n, wh, (size_t)n, oh, hd);
        else
            values8(dt, 1, 1, runs, row_bytes, n, wh, (size_t)n, oh, hd);
        h0 += hb;
    }
}

static KVB_AVX2 void attend_runs_avx2(kvb_dtype dt, const kvb_kv_run *runs, int n_runs,
                                      size_t row_stride, int head_dim, int g, const float *q,
                                      float *out, float *scratch, float *ml)
{
    int n = 0;
    for (int r = 0; r < n_runs; r++) n += runs[r].n;
    memset(out, 0, (size_t)g * (size_t)head_dim * sizeof(float));
    if (n <= 0) return;
    size_t row_bytes = row_stride * kvb_dtype_size(dt);
    switch (dt) {
    case KVB_DTYPE_F16:
        run8(KVB_DTYPE_F16, runs, n_runs, row_bytes, head_dim, g, q, out, scratch, n, ml);
        break;
    case KVB_DTYPE_BF16:
        run8(KVB_DTYPE_BF16, runs, n_runs, row_bytes, head_dim, g, q, out, scratch, n, ml);
        break;
    default:
        run8(KVB_DTYPE_F32, runs, n_runs, row_bytes, head_dim, g, q, out, scratch, n, ml);
        break;
    }
}

static int usable_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
}

const kvb_attend_kernel kvb_attend_kernel_avx2 = {"avx2", 8, usable_avx2, attend_runs_avx2};

#else
static int usable_avx2(void) { return 0; }

const kvb_attend_kernel kvb_attend_kernel_avx2 = {"avx2", 8, usable_avx2, NULL};
#endif
