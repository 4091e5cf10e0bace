/* matvec_avx2.c: the AVX2 rows of the matvec table (matvec.h) for f32, f16,
 * bf16 and q8_0 weights, for x86-64 CPUs without AVX-512 (needs AVX2, FMA and
 * F16C; `in` a multiple of 8, 32 for q8_0).
 *
 * The AVX-512 file's plan at 8 values a vector: rows four at a time, x loaded
 * once for the four, one accumulator per row, the four lane sums by one hadd
 * tree (a row left over takes the same tree, so a pool split changes no bit);
 * each row prefetches PF bytes ahead. q8_0: a block's 32 codes sign-extended
 * 8 at a time, sum(q*x) per block, then d (broadcast as f16) by one FMA.
 * B vectors (kvb_matvecn_fn): two rows at a time against up to 4 vectors, or
 * one against 8 (8 accumulators of the 16 registers), each 8 weights loaded
 * and converted once (q8_0 as d * q) and FMA'd against every vector; B in
 * passes of 8, 4, 2, 1; columns in blocks of 512 within panels of 64 rows, as
 * the AVX-512 rows.
 * Compiled for any x86-64 GCC with function-level target attributes; the rows'
 * usable() checks CPUID. Elsewhere the rows have no run. */
#include "matvec.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#include <string.h>

#define KVB_AVX2 __attribute__((target("avx2,fma,f16c")))
#define KVB_INLINE2 inline __attribute__((always_inline))

enum { PF = 2048 };   /* as matvec_avx512.c */

static KVB_INLINE2 KVB_AVX2 __m256 load_w(const int wt, const char *row, int e)
{
    if (wt == KVB_WTYPE_F16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(row + 2 * e)));
    if (wt == KVB_WTYPE_BF16)
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(row + 2 * e))),
            16));
    return _mm256_loadu_ps((const float *)(const void *)row + e);
}

/* {sum a, sum b, sum c, sum d} */
static KVB_INLINE2 KVB_AVX2 __m128 reduce4_avx2(__m256 a, __m256 b, __m256 c, __m256 d)
{
    __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

static KVB_INLINE2 KVB_AVX2 void store_rows(const int R, const __m256 *acc, float *y, int r)
{
    if (R == 4) _mm_storeu_ps(y + r, reduce4_avx2(acc[0], acc[1], acc[2], acc[3]));
    else y[r] = _mm_cvtss_f32(reduce4_avx2(acc[0], acc[0], acc[0], acc[0]));
}

static KVB_INLINE2 KVB_AVX2 void dense_rows(const int wt, const int R, const char *w, size_t rb,
                                            int in, const float *x, float *y, int r)
{
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    const char *row = w + (size_t)r * rb;
    const int esz = wt == KVB_WTYPE_F32 ? 4 : 2;
    for (int e = 0; e < in; e += 8) {
        __m256 xv = _mm256_loadu_ps(x + e);
        for (int j = 0; j < R; j++) _mm_prefetch(row + j * rb + e * esz + PF, _MM_HINT_T0);
        for (int j = 0; j < R; j++)
            acc[j] = _mm256_fmadd_ps(load_w(wt, row + j * rb, e), xv, acc[j]);
    }
    store_rows(R, acc, y, r);
}

static KVB_INLINE2 KVB_AVX2 void dense(const int wt, const void *w, int in, const float *x,
                                       float *y, int r0, int r1)
{
    const size_t rb = kvb_wtype_row_bytes((kvb_wtype)wt, in);
    int r = r0;
    for (; r + 4 <= r1; r += 4) dense_rows(wt, 4, w, rb, in, x, y, r);
    for (; r < r1; r++) dense_rows(wt, 1, w, rb, in, x, y, r);
}

static KVB_AVX2 void mv_f32(const void *w, int in, const float *x, float *y, int r0, int r1)
{
    dense(KVB_WTYPE_F32, w, in, x, y, r0, r1);
}

static KVB_AVX2 void mv_f16(const void *w, int in, const float *x, float *y, int r0, int r1)
{
    dense(KVB_WTYPE_F16, w, in, x, y, r0, r1);
}

static KVB_AVX2 void mv_bf16(const void *w, int in, const float *x, float *y, int r0, int r1)
{
    dense(KVB_WTYPE_BF16, w, in, x, y, r0, r1);
}

static KVB_INLINE2 KVB_AVX2 __m256 q8_eight(const uint8_t *b, int k)
{
    return _mm256_cvtepi32_ps(
        _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(b + 2 + 8 * k))));
}

static KVB_INLINE2 KVB_AVX2 void q8_rows(const int R, const uint8_t *w, size_t rb, int in,
                                         const float *x, float *y, int r)
{
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    const uint8_t *row = w + (size_t)r * rb;
    for (int c = 0, o = 0; c < in; c += KVB_Q8_0_BLOCK, o += KVB_Q8_0_BYTES) {
        __m256 x0 = _mm256_loadu_ps(x + c), x1 = _mm256_loadu_ps(x + c + 8),
               x2 = _mm256_loadu_ps(x + c + 16), x3 = _mm256_loadu_ps(x + c + 24);
        for (int j = 0; j < R; j++) _mm_prefetch(row + j * rb + o + PF, _MM_HINT_T0);
        for (int j = 0; j < R; j++) {
            const uint8_t *b = row + j * rb + o;
            int16_t h;
            memcpy(&h, b, 2);
            __m256 t0 = _mm256_fmadd_ps(q8_eight(b, 1), x1, _mm256_mul_ps(q8_eight(b, 0), x0)),
                   t1 = _mm256_fmadd_ps(q8_eight(b, 3), x3, _mm256_mul_ps(q8_eight(b, 2), x2));
            acc[j] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_set1_epi16(h)), _mm256_add_ps(t0, t1),
                                     acc[j]);
        }
    }
    store_rows(R, acc, y, r);
}

static KVB_AVX2 void mv_q8_0(const void *w, int in, const float *x, float *y, int r0, int r1)
{
    const size_t rb = kvb_wtype_row_bytes(KVB_WTYPE_Q8_0, in);
    int r = r0;
    for (; r + 4 <= r1; r += 4) q8_rows(4, w, rb, in, x, y, r);
    for (; r < r1; r++) q8_rows(1, w, rb, in, x, y, r);
}

/* 8 weights of a row from element e on, as f32, for every type: q8_0 as d * q */
static KVB_INLINE2 KVB_AVX2 __m256 load_wn(const int wt, const char *row, int e)
{
    if (wt != KVB_WTYPE_Q8_0) return load_w(wt, row, e);
    const uint8_t *b = (const uint8_t *)row + (size_t)(e / KVB_Q8_0_BLOCK) * KVB_Q8_0_BYTES;
    int16_t h;
    memcpy(&h, b, 2);
    return _mm256_mul_ps(_mm256_cvtph_ps(_mm_set1_epi16(h)), q8_eight(b, (e / 8) & 3));
}

/* R rows (1 or 2; R * NB <= 8 accumulators of the 16 registers) from row on,
 * columns [c0, c1), against NB (1, 2, 4, 8) vectors x [NB][ldx] into
 * y[b * ldy + j] (added from the second block on); pf: bytes to the next
 * group's same columns, prefetched */
static KVB_INLINE2 KVB_AVX2 void n_rows(const int wt, const int R, const int NB, const char *row,
                                        size_t rb, size_t pf, int ldx, int c0, int c1,
                                        const float *x, float *y, int ldy)
{
    __m256 acc[2][8];
    for (int j = 0; j < R; j++)
        for (int b = 0; b < NB; b++) acc[j][b] = _mm256_setzero_ps();
    for (int e = c0; e < c1; e += 8) {
        __m256 wv[2];
        for (int j = 0; j < R; j++) {
            _mm_prefetch(row + j * rb + pf + kvb_wrow_offset((kvb_wtype)wt, e), _MM_HINT_T0);
            wv[j] = load_wn(wt, row + j * rb, e);
        }
        for (int b = 0; b < NB; b++) {
            __m256 xv = _mm256_loadu_ps(x + (size_t)b * ldx + e);
            __asm__("" : "+x"(xv));   /* one load for both rows: see matvec_avx512.c */
            for (int j = 0; j < R; j++) acc[j][b] = _mm256_fmadd_ps(wv[j], xv, acc[j][b]);
        }
    }
    for (int j = 0; j < R; j++)
        for (int b = 0; b < NB; b++) {
            float v = _mm_cvtss_f32(reduce4_avx2(acc[j][b], acc[j][b], acc[j][b], acc[j][b]));
            y[(size_t)b * ldy + j] = c0 ? y[(size_t)b * ldy + j] + v : v;
        }
}

/* as matvec_avx512.c: columns in blocks of KC within panels of PR rows, so
 * x's block stays in L1 */
enum { KC = 512, PR = 64 };

/* G rows (2 or 1) against all B vectors: passes of 8 a row at a time, then 4,
 * 2, 1 with both rows (each x load serves two) */
static KVB_INLINE2 KVB_AVX2 void n_pass(const int wt, const int G, const char *row, size_t rb,
                                        int in, int c0, int c1, int B, const float *x, float *y,
                                        int ldy)
{
    int b = 0;
    /* R and NB constants in each call, so the accumulators stay in registers */
#define KVB_NROWS(R, NB, j)                                                          \
    n_rows(wt, R, NB, row + (size_t)(j) * rb, rb, (size_t)G * rb, in, c0, c1,     \
           x + (size_t)b * in, y + (size_t)b * ldy + (j), ldy)
    for (; B - b >= 8; b += 8)
        for (int j = 0; j < G; j++) KVB_NROWS(1, 8, j);
    if (B - b >= 4) { KVB_NROWS(G, 4, 0); b += 4; }
    if (B - b >= 2) { KVB_NROWS(G, 2, 0); b += 2; }
    if (B - b >= 1) KVB_NROWS(G, 1, 0);
#undef KVB_NROWS
}

static KVB_INLINE2 KVB_AVX2 void densen(const int wt, const void *w, int in, int B,
                                        const float *x, float *y, int ldy, int r0, int r1)
{
    const size_t rb = kvb_wtype_row_bytes((kvb_wtype)wt, in);
    for (int p0 = r0; p0 < r1; p0 += PR) {
        const int p1 = r1 - p0 < PR ? r1 : p0 + PR;
        for (int c0 = 0; c0 < in; c0 += KC) {
            const int c1 = in - c0 < KC ? in : c0 + KC;
            int r = p0;
            for (; r + 2 <= p1; r += 2)
                n_pass(wt, 2, (const char *)w + (size_t)r * rb, rb, in, c0, c1, B, x, y + r, ldy);
            for (; r < p1; r++)
                n_pass(wt, 1, (const char *)w + (size_t)r * rb, rb, in, c0, c1, B, x, y + r, ldy);
        }
    }
}

KVB_MATVECN_ROWS(KVB_AVX2, densen)

static int usable_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
}
#define MV(f) f

#else
static int usable_avx2(void) { return 0; }
#define MV(f) NULL
#endif

const kvb_matvec_kernel kvb_matvec_avx2_rows[KVB_MATVEC_BASE_ROWS] = {
    {"avx2", KVB_WTYPE_F32, 8, 0, usable_avx2, MV(mv_f32), MV(mvn_f32)},
    {"avx2", KVB_WTYPE_F16, 8, 0, usable_avx2, MV(mv_f16), MV(mvn_f16)},
    {"avx2", KVB_WTYPE_BF16, 8, 0, usable_avx2, MV(mv_bf16), MV(mvn_bf16)},
    {"avx2", KVB_WTYPE_Q8_0, KVB_Q8_0_BLOCK, 0, usable_avx2, MV(mv_q8_0), MV(mvn_q8_0)},
};
