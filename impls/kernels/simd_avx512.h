/* simd_avx512.h: AVX-512 helpers shared by the fused attention loops
 * (attend_avx512.c for f32/f16/bf16, quant_avx512.c for the quantized codes).
 *
 * Contract: static inline functions compiled with function-level target
 * attributes, so including files build on any x86-64 GCC and call them only
 * after a CPUID check. Include only under the same guard as those files. */
#ifndef KVB_SIMD_AVX512_H
#define KVB_SIMD_AVX512_H

#include <immintrin.h>
#include <math.h>

#define KVB_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))
#define KVB_INLINE inline __attribute__((always_inline))

/* Whether this CPU runs KVB_AVX512 code: the one CPUID test of both files. */
static inline int kvb_have_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

/* Asks the L2 for bytes [at, at + len) of a stream that ends at `end`
 * (offsets from base), one line in two: the L2's adjacent-line prefetcher
 * brings the other (one prefetch a line was slower: docs/tuning.md). */
static KVB_INLINE void kvb_prefetch_l2(const char *base, size_t at, size_t len, size_t end)
{
    for (size_t b = 0; b < len && at + b < end; b += 128) _mm_prefetch(base + at + b, _MM_HINT_T1);
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

/* scale * the lane sums of acc[h * R + r] into s[h * s_stride + t + r]: four
 * accumulators share one shuffle tree where there are four. */
static KVB_INLINE KVB_AVX512 void store_scores(const __m512 *acc, const int HB, const int R, int t,
                                               float scale, float *s, size_t s_stride)
{
    if (R * HB < 4) {
        /* the same tree as four at a time, so a row's score does not depend on
         * how rows were grouped (paged runs give bit-identical output) */
        for (int j = 0; j < R * HB; j++)
            s[(size_t)(j / R) * s_stride + t + j % R] =
                scale * _mm_cvtss_f32(reduce4(acc[j], acc[j], acc[j], acc[j]));
        return;
    }
    for (int j = 0; j < R * HB; j += 4) {
        float v[4];
        _mm_storeu_ps(
            v, _mm_mul_ps(reduce4(acc[j], acc[j + 1], acc[j + 2], acc[j + 3]), _mm_set1_ps(scale)));
        for (int i = 0; i < 4; i++) s[(size_t)((j + i) / R) * s_stride + t + (j + i) % R] = v[i];
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

/* s[t] = exp(s[t] - max) over n > 0 scores; returns the sum, and the max in
 * *max_out when it is not NULL. */
static KVB_INLINE KVB_AVX512 float softmax_exp_max_avx512(float *s, int n, float *max_out)
{
    __m512 mx = _mm512_set1_ps(-INFINITY);
    int t = 0;
    for (; t + 16 <= n; t += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(s + t));
    __mmask16 tail = (__mmask16)((1u << (n - t)) - 1u);
    mx = _mm512_mask_max_ps(mx, tail, mx, _mm512_maskz_loadu_ps(tail, s + t));
    float mf = _mm512_reduce_max_ps(mx);
    if (max_out) *max_out = mf;
    __m512 m = _mm512_set1_ps(mf), sum = _mm512_setzero_ps();
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

static KVB_AVX512 __attribute__((unused)) float softmax_exp_avx512(float *s, int n)
{
    return softmax_exp_max_avx512(s, n, NULL);
}

#endif
