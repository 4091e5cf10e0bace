/* quant_avx512.c: the AVX-512 fused loops of quant.h for 8- and 4-bit codes
 * quantized per token, head_dim and group multiples of 32.
 *
 * Work unit: a chunk of 32 values of one row (a group holds group/32 chunks).
 * The chunk's codes are widened to two vectors of 16 floats and dequantized
 * with one FMA each (x' = d*c + a); every query head of the GQA group then uses
 * them, so a row is read and converted once per KV head. 4-bit chunks come out
 * as (even elements, odd elements): queries are permuted into that order once
 * per call and the value sums are un-permuted once at the end.
 * Scores keep one accumulator per (head, row) for blocks of 4 such pairs, whose
 * horizontal sums share one shuffle tree; values walk a tile of rows per chunk
 * with two accumulators per head, so sums stay in registers. Format, head and
 * row counts are compile-time constants of each inlined instance, so every
 * accumulator lives in a register.
 * Compiled for any x86-64 with function-level target attributes; called only
 * when CPUID reports AVX-512F/BW/VL/DQ, FMA and F16C. Elsewhere the table is NULL. */
#include "quant.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#define KVB_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))
#define KVB_INLINE inline __attribute__((always_inline))

enum { TILE = 64, PF = 32 };   /* value rows per tile; rows ahead to prefetch */

/* Chunk c of a row (32 codes) as floats, in chunk order. */
static KVB_INLINE KVB_AVX512 void load_chunk(const int bits, const uint8_t *row, int c, __m512 *x0, __m512 *x1)
{
    if (bits == 8) {
        const uint8_t *p = row + 32 * c;
        *x0 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)p)));
        *x1 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p + 16))));
    } else if (bits == 2) {
        /* 8 bytes, 4 codes each: both halves of a vector hold the 8 bytes, and
         * per-lane shifts pick codes (4j, 4j+1) into x0 and (4j+2, 4j+3) into x1 */
        long long q;
        memcpy(&q, row + 8 * c, 8);
        __m512i b = _mm512_cvtepu8_epi32(_mm_set1_epi64x(q)), three = _mm512_set1_epi32(3);
        __m512i s0 = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
        __m512i s1 = _mm512_set_epi32(6, 6, 6, 6, 6, 6, 6, 6, 4, 4, 4, 4, 4, 4, 4, 4);
        *x0 = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srlv_epi32(b, s0), three));
        *x1 = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srlv_epi32(b, s1), three));
    } else {
        __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(row + 16 * c)));
        *x0 = _mm512_cvtepi32_ps(_mm512_and_si512(b, _mm512_set1_epi32(15)));
        *x1 = _mm512_cvtepi32_ps(_mm512_srli_epi32(b, 4));
    }
}

/* d and a (x' = d*c + a) of group gi of a row whose words start at p, broadcast. */
static KVB_INLINE KVB_AVX512 void group_coeffs(const int asym, const int zero, const uint16_t *p, int gi,
                                                __m512 *d, __m512 *a)
{
    if (!p) {                 /* raw codes: the caller folded the coefficients into q */
        *d = _mm512_set1_ps(1.0f);
        *a = _mm512_setzero_ps();
        return;
    }
    const uint16_t *w = p + (asym ? 2 * gi : gi);
    float df = _cvtsh_ss(w[0]);
    *d = _mm512_set1_ps(df);
    *a = _mm512_set1_ps(asym ? _cvtsh_ss(w[1]) : -(float)zero * df);
}

/* Position in chunk order of element e of a 32-value chunk. */
static int chunk_pos(int bits, int e)
{
    if (bits == 8) return e;
    if (bits == 4) return (e & 1) * 16 + e / 2;
    return ((e & 3) >> 1) * 16 + (e & 1) * 8 + e / 4;     /* 2-bit: code r of byte j */
}

/* Sums of four vectors' lanes: {sum a, sum b, sum c, sum d}. */
static KVB_INLINE KVB_AVX512 __m128 reduce4(__m512 a, __m512 b, __m512 c, __m512 d)
{
    /* per 128-bit lane: (a0+a2, b0+b2, a1+a3, b1+b3), likewise for c, d */
    __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
    /* per 128-bit lane: partial sums of a, b, c, d */
    __m512 s = _mm512_add_ps(_mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(s), _mm512_extractf32x8_ps(s, 1));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* Scores of rows t..t+R-1 for heads 0..HB-1 (queries qp in chunk order). */
static KVB_INLINE KVB_AVX512 void scores_block(const kvb_qrows *k, const int bits, const int asym,
                                               const int zero, const int HB, const int R, const float *qp,
                                               int t, float scale, float *s, size_t s_stride)
{
    const int hd = k->head_dim, cpg = k->group / 32, ng = hd / k->group;
    const uint8_t *row[4];
    const uint16_t *p[4];
    __m512 acc[8];
    for (int r = 0; r < R; r++) {
        row[r] = k->codes + (size_t)(t + r) * k->code_stride;
        p[r] = k->params ? k->params + (size_t)(t + r) * k->param_stride : NULL;
        /* a row is little work: ask for rows PF ahead so several misses overlap */
        for (size_t b = 0; b < k->code_stride; b += 64)
            _mm_prefetch((const char *)row[r] + PF * k->code_stride + b, _MM_HINT_T0);
    }
    for (int j = 0; j < R * HB; j++) acc[j] = _mm512_setzero_ps();
    for (int gi = 0; gi < ng; gi++) {
        __m512 d[4], a[4];
        for (int r = 0; r < R; r++) group_coeffs(asym, zero, p[r], gi, &d[r], &a[r]);
        for (int c = gi * cpg; c < (gi + 1) * cpg; c++)
            for (int r = 0; r < R; r++) {
                __m512 x0, x1;
                load_chunk(bits, row[r], c, &x0, &x1);
                __m512 v0 = _mm512_fmadd_ps(x0, d[r], a[r]), v1 = _mm512_fmadd_ps(x1, d[r], a[r]);
                for (int h = 0; h < HB; h++) {
                    const float *qc = qp + (size_t)h * hd + 32 * c;
                    acc[h * R + r] = _mm512_fmadd_ps(_mm512_loadu_ps(qc), v0, acc[h * R + r]);
                    acc[h * R + r] = _mm512_fmadd_ps(_mm512_loadu_ps(qc + 16), v1, acc[h * R + r]);
                }
            }
    }
    if (R * HB < 4) {
        for (int j = 0; j < R * HB; j++)
            s[(size_t)(j / R) * s_stride + t + j % R] = scale * _mm512_reduce_add_ps(acc[j]);
        return;
    }
    for (int j = 0; j < R * HB; j += 4) {
        float v[4];
        _mm_storeu_ps(v, _mm_mul_ps(reduce4(acc[j], acc[j + 1], acc[j + 2], acc[j + 3]), _mm_set1_ps(scale)));
        for (int i = 0; i < 4; i++) s[(size_t)((j + i) / R) * s_stride + t + (j + i) % R] = v[i];
    }
}

/* Every row for heads 0..HB-1: blocks of 4 / HB rows (1 for 8 heads), then single rows. */
static KVB_INLINE KVB_AVX512 void scores_heads(const kvb_qrows *k, const int bits, const int asym,
                                               const int zero, const int HB, const float *qp, float scale,
                                               float *s, size_t s_stride)
{
    const int R = HB >= 4 ? 1 : 4 / HB;
    int t = 0;
    for (; t + R <= k->n; t += R) scores_block(k, bits, asym, zero, HB, R, qp, t, scale, s, s_stride);
    for (; t < k->n; t++) scores_block(k, bits, asym, zero, HB, 1, qp, t, scale, s, s_stride);
}

static KVB_INLINE KVB_AVX512 void scores_fmt(const kvb_qrows *k, const int bits, const int asym, const int zero,
                                             int g, const float *q, float scale, float *s, size_t s_stride,
                                             float *scratch)
{
    const int hd = k->head_dim;
    float *qp = scratch;                                      /* [g][head_dim], chunk order */
    for (int h = 0; h < g; h++)
        for (int e = 0; e < hd; e++)
            qp[(size_t)h * hd + (e / 32) * 32 + chunk_pos(bits, e % 32)] = q[(size_t)h * hd + e];
    for (int h0 = 0; h0 < g;) {
        int left = g - h0, hb = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
        const float *qh = qp + (size_t)h0 * hd;
        float *sh = s + (size_t)h0 * s_stride;
        switch (hb) {
        case 8:  scores_heads(k, bits, asym, zero, 8, qh, scale, sh, s_stride); break;
        case 4:  scores_heads(k, bits, asym, zero, 4, qh, scale, sh, s_stride); break;
        case 2:  scores_heads(k, bits, asym, zero, 2, qh, scale, sh, s_stride); break;
        default: scores_heads(k, bits, asym, zero, 1, qh, scale, sh, s_stride); break;
        }
        h0 += hb;
    }
}

/* Chunk c (in group gi) of value row t into one set of HB head accumulators. */
static KVB_INLINE KVB_AVX512 void accum_row(const kvb_qrows *v, const int bits, const int asym, const int zero,
                                            const int HB, const float *w, size_t w_stride, int t, int c, int gi,
                                            __m512 *a0, __m512 *a1)
{
    if (c == 0) {             /* the next tile, while this one is worked on */
        const char *nr = (const char *)(v->codes + (size_t)(t + TILE) * v->code_stride);
        for (size_t b = 0; b < v->code_stride; b += 64) _mm_prefetch(nr + b, _MM_HINT_T0);
    }
    __m512 x0, x1, d, a;
    load_chunk(bits, v->codes + (size_t)t * v->code_stride, c, &x0, &x1);
    group_coeffs(asym, zero, v->params + (size_t)t * v->param_stride, gi, &d, &a);
    __m512 v0 = _mm512_fmadd_ps(x0, d, a), v1 = _mm512_fmadd_ps(x1, d, a);
    for (int h = 0; h < HB; h++) {
        __m512 wt = _mm512_set1_ps(w[(size_t)h * w_stride + t]);
        a0[h] = _mm512_fmadd_ps(wt, v0, a0[h]);
        a1[h] = _mm512_fmadd_ps(wt, v1, a1[h]);
    }
}

/* out (chunk order) += sum over rows of w * x' for heads 0..HB-1. Each chunk
 * pass over a tile feeds U = 4/HB sets of accumulators in turn (U rows at a
 * time), so no single FMA chain limits a pass with few heads. */
static KVB_INLINE KVB_AVX512 void accum_heads(const kvb_qrows *v, const int bits, const int asym, const int zero,
                                              const int HB, const float *w, size_t w_stride, float *op)
{
    const int cpg = v->group / 32, ng = v->head_dim / v->group, U = HB >= 4 ? 1 : 4 / HB;
    for (int t0 = 0; t0 < v->n; t0 += TILE) {
        int t1 = t0 + TILE < v->n ? t0 + TILE : v->n;
        for (int gi = 0; gi < ng; gi++)
            for (int c = gi * cpg; c < (gi + 1) * cpg; c++) {
                __m512 a0[8], a1[8];                          /* [U][HB] */
                for (int j = 0; j < U * HB; j++) a0[j] = a1[j] = _mm512_setzero_ps();
                int t = t0;
                for (; t + U <= t1; t += U)
                    for (int u = 0; u < U; u++)
                        accum_row(v, bits, asym, zero, HB, w, w_stride, t + u, c, gi, a0 + u * HB, a1 + u * HB);
                for (; t < t1; t++) accum_row(v, bits, asym, zero, HB, w, w_stride, t, c, gi, a0, a1);
                for (int h = 0; h < HB; h++) {
                    __m512 s0 = a0[h], s1 = a1[h];
                    for (int u = 1; u < U; u++) {
                        s0 = _mm512_add_ps(s0, a0[u * HB + h]);
                        s1 = _mm512_add_ps(s1, a1[u * HB + h]);
                    }
                    float *o = op + (size_t)h * v->head_dim + 32 * c;
                    _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), s0));
                    _mm512_storeu_ps(o + 16, _mm512_add_ps(_mm512_loadu_ps(o + 16), s1));
                }
            }
    }
}

static KVB_INLINE KVB_AVX512 void accum_fmt(const kvb_qrows *v, const int bits, const int asym, const int zero,
                                            int g, const float *w, size_t w_stride, float *out, float *scratch)
{
    const int hd = v->head_dim;
    float *op = scratch;                                      /* [g][head_dim], chunk order */
    memset(op, 0, (size_t)g * hd * sizeof *op);
    for (int h0 = 0; h0 < g;) {
        int left = g - h0, hb = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
        const float *wh = w + (size_t)h0 * w_stride;
        float *oh = op + (size_t)h0 * hd;
        switch (hb) {
        case 8:  accum_heads(v, bits, asym, zero, 8, wh, w_stride, oh); break;
        case 4:  accum_heads(v, bits, asym, zero, 4, wh, w_stride, oh); break;
        case 2:  accum_heads(v, bits, asym, zero, 2, wh, w_stride, oh); break;
        default: accum_heads(v, bits, asym, zero, 1, wh, w_stride, oh); break;
        }
        h0 += hb;
    }
    for (int h = 0; h < g; h++)
        for (int e = 0; e < hd; e++)
            out[(size_t)h * hd + e] += op[(size_t)h * hd + (e / 32) * 32 + chunk_pos(bits, e % 32)];
}

/* One instance per format: (bits, asym, zero) of q8, q4, q4_1 and q2 as
 * constants. Without params (per-channel keys) the codes enter raw. */
static KVB_AVX512 void scores_avx512(const kvb_qrows *k, int g, const float *q, float scale,
                                     float *s, size_t s_stride, float *scratch)
{
    switch (k->fmt->bits) {
    case 8:  scores_fmt(k, 8, 0, 128, g, q, scale, s, s_stride, scratch); break;
    case 4:
        if (k->fmt->asym) scores_fmt(k, 4, 1, 0, g, q, scale, s, s_stride, scratch);
        else              scores_fmt(k, 4, 0, 8, g, q, scale, s, s_stride, scratch);
        break;
    default: scores_fmt(k, 2, 1, 0, g, q, scale, s, s_stride, scratch); break;
    }
}

static KVB_AVX512 void accum_avx512(const kvb_qrows *v, int g, const float *w, size_t w_stride, float *out,
                                    float *scratch)
{
    switch (v->fmt->bits) {
    case 8:  accum_fmt(v, 8, 0, 128, g, w, w_stride, out, scratch); break;
    case 4:
        if (v->fmt->asym) accum_fmt(v, 4, 1, 0, g, w, w_stride, out, scratch);
        else              accum_fmt(v, 4, 0, 8, g, w, w_stride, out, scratch);
        break;
    default: accum_fmt(v, 2, 1, 0, g, w, w_stride, out, scratch); break;
    }
}

/* exp(x) for x <= 0 (softmax after the max is subtracted), Cephes expf's
 * polynomial on the reduced argument, 2^n applied by scalef (0 below ~-104). */
static KVB_INLINE KVB_AVX512 __m512 exp_ps(__m512 x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

static KVB_AVX512 float softmax_exp_avx512(float *s, int n)
{
    __m512 mx = _mm512_set1_ps(-INFINITY);
    int t = 0;
    for (; t + 16 <= n; t += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(s + t));
    __mmask16 tail = (__mmask16)((1u << (n - t)) - 1u);
    mx = _mm512_mask_max_ps(mx, tail, mx, _mm512_maskz_loadu_ps(tail, s + t));
    __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx)), sum = _mm512_setzero_ps();
    for (t = 0; t + 16 <= n; t += 16) {
        __m512 e = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(s + t), m));
        _mm512_storeu_ps(s + t, e);
        sum = _mm512_add_ps(sum, e);
    }
    __m512 e = exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, s + t), m));
    _mm512_mask_storeu_ps(s + t, tail, e);
    sum = _mm512_mask_add_ps(sum, tail, sum, e);
    return _mm512_reduce_add_ps(sum);
}

static const kvb_qkernels avx512 = {
    .name = "avx512",
    .scores = scores_avx512,
    .accum = accum_avx512,
    .softmax_exp = softmax_exp_avx512,
};

const kvb_qkernels *kvb_qkernels_avx512(void)
{
    __builtin_cpu_init();
    int ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    return ok ? &avx512 : NULL;
}

#else
const kvb_qkernels *kvb_qkernels_avx512(void) { return NULL; }
#endif
