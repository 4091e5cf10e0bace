/* matvec_qk_avx512.c: the AVX-512 rows of the matvec table (matvec.h) for the
 * 4- and 6-bit GGUF weight types q4_0, q4_k and q6_k (layouts in kvb_types.h).
 *
 * Three kinds, measured side by side in kvbench-gbench (docs/models.md):
 * - q4_k in registers (the bulk of a Q4_K_M file): four rows share each load
 *   of x, nibbles widened and converted 16 at a time, the mins taken out of
 *   the loop through sum(x) per sub-block (below).
 * - q4_k against x rounded to int8 (avx512-vnni, rounds_x: opt-in as the
 *   q8_0 one; what llama.cpp does): one vpdpbusd per 64 weights.
 * - q4_0 and q6_k, and every type's B-vector rows, through a buffer: a chunk
 *   of 256 values dequantized in registers as kvb_wrow_to_f32 computes them
 *   (same operations, same order: the buffer holds the portable row's values),
 *   then dotted with x by FMAs over four accumulators; the B-vector rows
 *   dequantize each chunk once and dot it with every vector.
 * The exact rows round nothing but their f32 sums.
 * Compiled for any x86-64 GCC with function-level target attributes; the rows'
 * usable() checks CPUID. Elsewhere the rows have no run. */
#include "matvec.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <string.h>

#include "simd_avx512.h"

enum { CH = 256, PF_QK = 2048 };   /* values a chunk; bytes prefetched ahead */

static KVB_INLINE KVB_AVX512 float half_at(const uint8_t *b)
{
    uint16_t h;
    memcpy(&h, b, 2);
    return _cvtsh_ss(h);
}

/* 16 signed bytes to 16 floats times s */
static KVB_INLINE KVB_AVX512 __m512 i8x16(__m128i v, __m512 s)
{
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(v)), s);
}

/* nb q4_0 blocks to 32 * nb floats: d * (q - 8) */
static KVB_AVX512 void deq_q4_0(const uint8_t *b, float *out, int nb)
{
    const __m128i m4 = _mm_set1_epi8(15), eight = _mm_set1_epi8(8);
    for (int k = 0; k < nb; k++, b += KVB_Q4_0_BYTES, out += KVB_Q4_0_BLOCK) {
        const __m512 d = _mm512_set1_ps(half_at(b));
        const __m128i q = _mm_loadu_si128((const __m128i *)(const void *)(b + 2));
        __m128i lo = _mm_sub_epi8(_mm_and_si128(q, m4), eight);
        __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(q, 4), m4), eight);
        _mm512_storeu_ps(out, i8x16(lo, d));
        _mm512_storeu_ps(out + 16, i8x16(hi, d));
    }
}

/* A super-block's 12 scale bytes (read as 16: the 4 after them are codes) to
 * sc[0..7] in bytes 0..7 and m[0..7] in 8..15, in 32-bit lanes: the stores
 * and reloads of a scalar unpack stalled on store forwarding */
static KVB_INLINE KVB_AVX512 __m128i q4k_unpack(const uint8_t *s12)
{
    const __m128i u = _mm_loadu_si128((const __m128i *)(const void *)s12);   /* u0 u1 u2 - */
    const __m128i a = _mm_shuffle_epi32(u, _MM_SHUFFLE(2, 1, 2, 0));         /* u0 u2 u1 u2 */
    const __m128i b = _mm_shuffle_epi32(u, _MM_SHUFFLE(1, 1, 0, 0));         /* u0 u0 u1 u1 */
    const __m128i even = _mm_and_si128(a, _mm_set1_epi32(0x3f3f3f3f));
    const __m128i odd = _mm_or_si128(
        _mm_and_si128(_mm_srlv_epi32(a, _mm_set_epi32(4, 0, 0, 0)), _mm_set1_epi32(0x0f0f0f0f)),
        _mm_slli_epi32(_mm_and_si128(_mm_srli_epi32(b, 6), _mm_set1_epi32(0x03030303)), 4));
    return _mm_blend_epi32(even, odd, 0xa);
}

/* sc (low 8 bytes of v) and m (high 8) as floats times d and dmin (f16 at b) */
static KVB_INLINE KVB_AVX512 void q4k_scales(__m128i v, const uint8_t *b, __m256 *ds, __m256 *dm)
{
    int dd;   /* d and dmin, f16 */
    memcpy(&dd, b, 4);
    const __m128 h = _mm_cvtph_ps(_mm_cvtsi32_si128(dd));
    *ds = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)),
                        _mm256_broadcastss_ps(h));
    *dm = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(v, 8))),
                        _mm256_permutevar8x32_ps(_mm256_castps128_ps256(h),
                                                 _mm256_set1_epi32(1)));
}

/* 16 unsigned nibbles (bytes 0..15) to d * q - m */
static KVB_INLINE KVB_AVX512 __m512 u4x16(__m128i v, __m512 d, __m512 m)
{
    return _mm512_sub_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v)), d), m);
}

/* nb q4_k super-blocks to 256 * nb floats: d * sc * q - dmin * m per sub-block */
static KVB_AVX512 void deq_q4_k(const uint8_t *b, float *out, int nb)
{
    const __m256i m4 = _mm256_set1_epi8(15);
    for (int k = 0; k < nb; k++, b += KVB_Q4_K_BYTES, out += KVB_QK_BLOCK) {
        float ds[8] __attribute__((aligned(32))), dm[8] __attribute__((aligned(32)));
        __m256 dsc, dmn;   /* [sub-block] d * sc, dmin * m */
        q4k_scales(q4k_unpack(b + 4), b, &dsc, &dmn);
        _mm256_store_ps(ds, dsc);
        _mm256_store_ps(dm, dmn);
        for (int p = 0; p < 4; p++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(b + 16 + 32 * p));
            const __m256i nib[2] = {_mm256_and_si256(v, m4),
                                    _mm256_and_si256(_mm256_srli_epi16(v, 4), m4)};
            for (int h = 0; h < 2; h++) {
                const __m512 s = _mm512_set1_ps(ds[2 * p + h]), m = _mm512_set1_ps(dm[2 * p + h]);
                float *o = out + 64 * p + 32 * h;
                _mm512_storeu_ps(o, u4x16(_mm256_castsi256_si128(nib[h]), s, m));
                _mm512_storeu_ps(o + 16, u4x16(_mm256_extracti128_si256(nib[h], 1), s, m));
            }
        }
    }
}

/* nb q6_k super-blocks to 256 * nb floats: (d * scale) * (q - 32) per 16 */
static KVB_AVX512 void deq_q6_k(const uint8_t *b, float *out, int nb)
{
    const __m256i m4 = _mm256_set1_epi8(15), m30 = _mm256_set1_epi8(0x30);
    const __m256i off = _mm256_set1_epi8(32);
    for (int k = 0; k < nb; k++, b += KVB_Q6_K_BYTES, out += KVB_QK_BLOCK) {
        float s[16] __attribute__((aligned(64)));   /* [sub-block of 16] d * scale */
        const __m128i sc = _mm_loadu_si128((const __m128i *)(const void *)(b + 192));
        _mm512_store_ps(s, i8x16(sc, _mm512_set1_ps(half_at(b + 208))));
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)(const void *)ql);
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(const void *)(ql + 32));
            const __m256i hb = _mm256_loadu_si256((const __m256i *)(const void *)qh);
            /* values l, l+32, l+64, l+96 of this half (kvb_types.h) */
            __m256i q[4] = {
                _mm256_or_si256(_mm256_and_si256(l0, m4),
                                _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30)),
                _mm256_or_si256(_mm256_and_si256(l1, m4),
                                _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                _mm256_and_si256(hb, m30)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30))};
            for (int j = 0; j < 4; j++) {
                const __m256i v = _mm256_sub_epi8(q[j], off);
                float *o = out + 128 * h + 32 * j;
                _mm512_storeu_ps(o, i8x16(_mm256_castsi256_si128(v),
                                          _mm512_set1_ps(s[8 * h + 2 * j])));
                _mm512_storeu_ps(o + 16, i8x16(_mm256_extracti128_si256(v, 1),
                                               _mm512_set1_ps(s[8 * h + 2 * j + 1])));
            }
        }
    }
}

/* ---- q4_k in registers --------------------------------------------------
 * Four rows at a time share each load of x. Per 64 values and row: the 32
 * bytes of codes split into two sub-blocks' nibbles, each widened and
 * converted 16 at a time, sum(q * x) per sub-block by a multiply and an FMA,
 * then one FMA by that sub-block's d * sc. The mins do not touch the codes:
 * sum((d sc q - dmin m) x) = d sc sum(q x) - dmin m sum(x), and sum(x) per
 * sub-block is computed once per tile of x for every row (xs), so a
 * super-block's eight min terms are one 8-lane FMA per row. The 12 scale
 * bytes are unpacked by ggml's mask-and-shift of 32-bit words (the values of
 * kvb_q4_k_scale_min; test_matvec holds the rows to the dequantized weights). */
enum { QT = 8192 };   /* values of x per tile: QT / 32 sub-block sums on the stack */

static KVB_INLINE KVB_AVX512 __m512 u8x16f(__m128i v)
{
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v));
}

/* A row's super-block b: its lines prefetched PF_QK ahead, dmin * m * sums
 * (the eight sub-blocks' sums of x) added to *accm; returns d * sc */
static KVB_INLINE KVB_AVX512 __m256 q4k_head(const uint8_t *b, const float *sums, __m256 *accm)
{
    for (int o = 0; o < KVB_Q4_K_BYTES; o += 64)
        _mm_prefetch((const char *)b + PF_QK + o, _MM_HINT_T0);
    __m256 dsc, dmn;
    q4k_scales(q4k_unpack(b + 4), b, &dsc, &dmn);
    *accm = _mm256_fmadd_ps(dmn, _mm256_loadu_ps(sums), *accm);
    return dsc;
}

/* part[j] += the lanes of acc[j] less those of the mins' accm[j] */
static KVB_INLINE KVB_AVX512 void q4k_finish(const int R, const __m512 *acc, const __m256 *accm,
                                             float *part)
{
    for (int j = 0; j < R; j++) {
        __m128 m = _mm_add_ps(_mm256_castps256_ps128(accm[j]), _mm256_extractf128_ps(accm[j], 1));
        m = _mm_add_ps(m, _mm_movehl_ps(m, m));
        m = _mm_add_ss(m, _mm_movehdup_ps(m));
        part[j] += _mm512_reduce_add_ps(acc[j]) - _mm_cvtss_f32(m);
    }
}

/* R rows (1 or 4) over nsb super-blocks from w on (row j at w + j * rb), x and
 * its sub-block sums xs from the same value on; adds each row's sum to part[j] */
static KVB_INLINE KVB_AVX512 void q4k_rows(const int R, const uint8_t *w, size_t rb, int nsb,
                                           const float *x, const float *xs, float *part)
{
    const __m256i m4 = _mm256_set1_epi8(15);
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                     _mm512_setzero_ps()};
    __m256 accm[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                      _mm256_setzero_ps()};   /* [row] dmin * m * sum(x), per sub-block */
    for (int k = 0; k < nsb; k++) {
        const float *xk = x + KVB_QK_BLOCK * k;
        float ds[4][8] __attribute__((aligned(32)));   /* [row][sub-block] d * sc */
        for (int j = 0; j < R; j++)
            _mm256_store_ps(ds[j], q4k_head(w + j * rb + (size_t)k * KVB_Q4_K_BYTES,
                                            xs + 8 * k, &accm[j]));
        for (int p = 0; p < 4; p++) {
            const __m512 x0 = _mm512_loadu_ps(xk + 64 * p), x1 = _mm512_loadu_ps(xk + 64 * p + 16);
            const __m512 x2 = _mm512_loadu_ps(xk + 64 * p + 32);
            const __m512 x3 = _mm512_loadu_ps(xk + 64 * p + 48);
            for (int j = 0; j < R; j++) {
                const uint8_t *q = w + j * rb + (size_t)k * KVB_Q4_K_BYTES + 16 + 32 * p;
                const __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)q);
                const __m256i lo = _mm256_and_si256(v, m4);
                const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                __m512 t = _mm512_mul_ps(u8x16f(_mm256_castsi256_si128(lo)), x0);
                t = _mm512_fmadd_ps(u8x16f(_mm256_extracti128_si256(lo, 1)), x1, t);
                acc[j] = _mm512_fmadd_ps(t, _mm512_set1_ps(ds[j][2 * p]), acc[j]);
                t = _mm512_mul_ps(u8x16f(_mm256_castsi256_si128(hi)), x2);
                t = _mm512_fmadd_ps(u8x16f(_mm256_extracti128_si256(hi, 1)), x3, t);
                acc[j] = _mm512_fmadd_ps(t, _mm512_set1_ps(ds[j][2 * p + 1]), acc[j]);
            }
        }
    }
    q4k_finish(R, acc, accm, part);
}

static KVB_AVX512 void mv_q4_k(const void *w, int in, const float *x, float *y, int r0, int r1)
{
    const size_t rb = kvb_wtype_row_bytes(KVB_WTYPE_Q4_K, in);
    float xs[QT / 32] __attribute__((aligned(64)));   /* [sub-block of the tile] sum(x) */
    for (int r = r0; r < r1; r++) y[r] = 0.0f;
    for (int c0 = 0; c0 < in; c0 += QT) {
        const int n = in - c0 < QT ? in - c0 : QT;
        for (int s = 0; s < n / 32; s++)
            xs[s] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_loadu_ps(x + c0 + 32 * s),
                                                       _mm512_loadu_ps(x + c0 + 32 * s + 16)));
        const uint8_t *wt = (const uint8_t *)w + (size_t)(c0 / KVB_QK_BLOCK) * KVB_Q4_K_BYTES;
        int r = r0;
        for (; r + 4 <= r1; r += 4)
            q4k_rows(4, wt + (size_t)r * rb, rb, n / KVB_QK_BLOCK, x + c0, xs, y + r);
        for (; r < r1; r++)
            q4k_rows(1, wt + (size_t)r * rb, rb, n / KVB_QK_BLOCK, x + c0, xs, y + r);
    }
}

/* ---- q4_k against x rounded to int8 (VNNI; opt-in, as the q8_0 one) -------
 * x rounded per block of 32 as kvb_qquant_query does (kvb_matvec_round_x),
 * which is what llama.cpp does with these weights (to 8 bits in blocks of
 * 256 there). A 64-byte load holds four sub-blocks' codes: its low nibbles are
 * sub-blocks 4g and 4g+2, its high ones 4g+1 and 4g+3, so x's rounded blocks
 * are stored in that order (xq below) and one vpdpbusd (codes unsigned, x
 * signed) per 64 values gives 8 lanes of sums for each of two sub-blocks;
 * converted, one FMA by d * sc * sx spread over those lanes. Mins: dmin * m
 * * sx * sum(xq) per sub-block, one 8-lane FMA per super-block and row. */
#define KVB_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")))

enum { QTB = QT / 32 };   /* x blocks of a tile */

static KVB_INLINE KVB_VNNI void q4k_vnni_rows(const int R, const uint8_t *w, size_t rb, int nsb,
                                              const int8_t *xq, const float *sx,
                                              const float *sxq, float *part)
{
    /* lane l of the sums of a low (high) nibble load belongs to sub-block
     * 4g + (l < 8 ? 0 : 2) (+ 1) */
    const __m512i lane[2][2] = {   /* [g][low, high nibbles] */
        {_mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0),
         _mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1)},
        {_mm512_set_epi32(6, 6, 6, 6, 6, 6, 6, 6, 4, 4, 4, 4, 4, 4, 4, 4),
         _mm512_set_epi32(7, 7, 7, 7, 7, 7, 7, 7, 5, 5, 5, 5, 5, 5, 5, 5)}};
    const __m512i m4 = _mm512_set1_epi8(15);
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                     _mm512_setzero_ps()};
    __m256 accm[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                      _mm256_setzero_ps()};   /* [row] dmin * m * sx * sum(xq) */
    for (int k = 0; k < nsb; k++) {
        const __m256 sxk = _mm256_loadu_ps(sx + 8 * k);
        const int8_t *xk = xq + KVB_QK_BLOCK * k;
        for (int j = 0; j < R; j++) {
            const uint8_t *b = w + j * rb + (size_t)k * KVB_Q4_K_BYTES;
            /* [sub-block] d * sc * sx, as a zmm whose low 8 lanes are used */
            const __m512 dsx = _mm512_castps256_ps512(
                _mm256_mul_ps(q4k_head(b, sxq + 8 * k, &accm[j]), sxk));
            for (int g = 0; g < 2; g++) {
                const __m512i v = _mm512_loadu_si512((const void *)(b + 16 + 64 * g));
                const __m512i x0 = _mm512_loadu_si512((const void *)(xk + 128 * g));
                const __m512i x1 = _mm512_loadu_si512((const void *)(xk + 128 * g + 64));
                __m512i s0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                                 _mm512_and_si512(v, m4), x0);
                __m512i s1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                                 _mm512_and_si512(_mm512_srli_epi16(v, 4), m4),
                                                 x1);
                acc[j] = _mm512_fmadd_ps(
                    _mm512_cvtepi32_ps(s0),
                    _mm512_permutexvar_ps(lane[g][0], dsx), acc[j]);
                acc[j] = _mm512_fmadd_ps(
                    _mm512_cvtepi32_ps(s1),
                    _mm512_permutexvar_ps(lane[g][1], dsx), acc[j]);
            }
        }
    }
    q4k_finish(R, acc, accm, part);
}

static KVB_VNNI void mv_q4_k_vnni(const void *w, int in, const float *x, float *y, int r0,
                                  int r1)
{
    const size_t rb = kvb_wtype_row_bytes(KVB_WTYPE_Q4_K, in);
    int8_t xr[QT], xq[QT] __attribute__((aligned(64)));   /* [value] natural; reordered */
    float sx[QTB], sxq[QTB];   /* [block] scale; scale * sum of its codes */
    int corr[QTB];
    for (int r = r0; r < r1; r++) y[r] = 0.0f;
    for (int c0 = 0; c0 < in; c0 += QT) {
        const int n = in - c0 < QT ? in - c0 : QT, nb = n / 32;
        kvb_matvec_round_x(x + c0, nb, xr, sx, corr);
        for (int c = 0; c < nb; c++) {
            /* block c = 8k + 4g + t goes to slot 4g + (0, 2, 1, 3)[t] of its super-block */
            static const int slot[4] = {0, 2, 1, 3};
            const int t = c % 4;
            memcpy(xq + 32 * (c - t + slot[t]), xr + 32 * c, 32);
            sxq[c] = sx[c] * (float)(-corr[c] / 16);
        }
        const uint8_t *wt = (const uint8_t *)w + (size_t)(c0 / KVB_QK_BLOCK) * KVB_Q4_K_BYTES;
        int r = r0;
        for (; r + 4 <= r1; r += 4)
            q4k_vnni_rows(4, wt + (size_t)r * rb, rb, n / KVB_QK_BLOCK, xq, sx, sxq, y + r);
        for (; r < r1; r++)
            q4k_vnni_rows(1, wt + (size_t)r * rb, rb, n / KVB_QK_BLOCK, xq, sx, sxq, y + r);
    }
}

/* ---- through a buffer: q4_0, q6_k, and every type's B-vector rows -------- */

typedef void (*deq_fn)(const uint8_t *b, float *out, int nb);

/* sum over n (a multiple of 16) of a[i] * x[i], four accumulators */
static KVB_INLINE KVB_AVX512 __m512 dot_buf(const float *a, const float *x, int n)
{
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                     _mm512_setzero_ps()};
    int i = 0;
    for (; i + 64 <= n; i += 64)
        for (int j = 0; j < 4; j++)
            acc[j] = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16 * j),
                                     _mm512_loadu_ps(x + i + 16 * j), acc[j]);
    for (; i < n; i += 16)
        acc[0] = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(x + i), acc[0]);
    return _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
}

static KVB_INLINE KVB_AVX512 void qk_rows(const kvb_wtype wt, deq_fn deq, const void *w, int in,
                                          const float *x, float *y, int r0, int r1)
{
    const kvb_wtype_traits *tr = kvb_wtype_traits_of(wt);
    const size_t rb = kvb_wtype_row_bytes(wt, in);
    float buf[CH] __attribute__((aligned(64)));   /* [CH] one chunk of the row in f32 */
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + (size_t)r * rb;
        __m512 acc = _mm512_setzero_ps();
        for (int i = 0; i < in; i += CH) {
            const int n = in - i < CH ? in - i : CH;
            const uint8_t *b = row + (size_t)(i / tr->block) * tr->block_bytes;
            for (size_t o = 0; o < (size_t)(n / tr->block) * tr->block_bytes; o += 64)
                _mm_prefetch((const char *)b + o + PF_QK, _MM_HINT_T0);
            deq(b, buf, n / tr->block);
            acc = _mm512_add_ps(acc, dot_buf(buf, x + i, n));
        }
        y[r] = _mm512_reduce_add_ps(acc);
    }
}

/* B vectors: each chunk dequantized once, dotted with every x[b] */
static KVB_INLINE KVB_AVX512 void qk_rowsn(const kvb_wtype wt, deq_fn deq, const void *w, int in,
                                           int B, const float *x, float *y, int ldy, int r0,
                                           int r1)
{
    const kvb_wtype_traits *tr = kvb_wtype_traits_of(wt);
    const size_t rb = kvb_wtype_row_bytes(wt, in);
    float buf[CH] __attribute__((aligned(64)));   /* [CH] one chunk of the row in f32 */
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + (size_t)r * rb;
        for (int b0 = 0; b0 < B; b0 += KVB_MATVECN_PASS) {
            const int nv = B - b0 < KVB_MATVECN_PASS ? B - b0 : KVB_MATVECN_PASS;
            __m512 acc[KVB_MATVECN_PASS];   /* [vector of the pass] */
            for (int v = 0; v < nv; v++) acc[v] = _mm512_setzero_ps();
            for (int i = 0; i < in; i += CH) {
                const int n = in - i < CH ? in - i : CH;
                deq(row + (size_t)(i / tr->block) * tr->block_bytes, buf, n / tr->block);
                for (int v = 0; v < nv; v++)
                    acc[v] = _mm512_add_ps(acc[v],
                                           dot_buf(buf, x + (size_t)(b0 + v) * in + i, n));
            }
            for (int v = 0; v < nv; v++)
                y[(size_t)(b0 + v) * ldy + r] = _mm512_reduce_add_ps(acc[v]);
        }
    }
}

#define QK_ROWS(t, wt)                                                                       \
    static KVB_AVX512 void mv_##t(const void *w, int in, const float *x, float *y, int r0,   \
                                  int r1)                                                    \
    {                                                                                        \
        qk_rows(wt, deq_##t, w, in, x, y, r0, r1);                                           \
    }                                                                                        \
    QK_ROWSN(t, wt)
#define QK_ROWSN(t, wt)                                                                      \
    static KVB_AVX512 void mvn_##t(const void *w, int in, int B, const float *x, float *y,   \
                                   int ldy, int r0, int r1)                                  \
    {                                                                                        \
        qk_rowsn(wt, deq_##t, w, in, B, x, y, ldy, r0, r1);                                  \
    }

QK_ROWS(q4_0, KVB_WTYPE_Q4_0)
QK_ROWS(q6_k, KVB_WTYPE_Q6_K)
QK_ROWSN(q4_k, KVB_WTYPE_Q4_K)

#define MV(f) f

#else
static int kvb_have_avx512(void) { return 0; }
#define MV(f) NULL
#endif

const kvb_matvec_kernel kvb_matvec_avx512_qk_rows[KVB_MATVEC_QK_ROWS] = {
    {"avx512-vnni", KVB_WTYPE_Q4_K, KVB_QK_BLOCK, 1, kvb_matvec_usable_vnni, MV(mv_q4_k_vnni),
     NULL},
    {"avx512", KVB_WTYPE_Q4_0, KVB_Q4_0_BLOCK, 0, kvb_have_avx512, MV(mv_q4_0), MV(mvn_q4_0)},
    {"avx512", KVB_WTYPE_Q4_K, KVB_QK_BLOCK, 0, kvb_have_avx512, MV(mv_q4_k), MV(mvn_q4_k)},
    {"avx512", KVB_WTYPE_Q6_K, KVB_QK_BLOCK, 0, kvb_have_avx512, MV(mv_q6_k), MV(mvn_q6_k)},
};
