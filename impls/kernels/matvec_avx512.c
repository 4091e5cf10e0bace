/* matvec_avx512.c: the AVX-512 rows of the matvec table (matvec.h) for f32,
 * f16, bf16 and q8_0 weights, and an AVX512-VNNI q8_0 row that rounds x.
 *
 * Rows four at a time: each vector of x (16 values, or a q8_0 block's two) is
 * loaded once for the four rows, each row keeps its own accumulator, and the
 * four lane sums share one shuffle tree (reduce4). Rows left over go one at a
 * time through the same code. Weights are converted in registers: f16 by
 * vcvtph2ps, bf16 by a 16-bit shift, q8_0 by sign-extending 16 codes to int32
 * and converting, then sum(q*x) per block scaled by its d with one FMA (the
 * blocks' d converted 16 at a time ahead of use: q8_scales). Each row
 * prefetches PF bytes ahead of what it reads (q8_0: QPF along its stream, below).
 * VNNI (q8_0): x rounded to int8 per block (kvb_qquant_query), the codes made
 * unsigned by flipping the top bit (q + 128), vpdpbusd on 32 bytes a block with
 * the int32 sums started at -16 * sum(xq) in each of 8 lanes (which removes the
 * 128 * sum(xq) the offset adds, exactly), then d * sx per block by one FMA.
 * B vectors (kvb_matvecn_fn): four rows at a time against up to 4 vectors, or
 * two against 8 (16 accumulators), each 16 weights loaded and converted once
 * (q8_0 as d * q, as kvb_wrow_to_f32 gives them, a block at a time) and FMA'd
 * against every vector; B over 8 in passes of 8, 4, 2, 1 over the same rows
 * while they are in L1.
 * Compiled for any x86-64 GCC with function-level target attributes; the rows'
 * usable() checks CPUID. Elsewhere the rows have no run. */
#include "matvec.h"

#include "quant.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <string.h>

#include "simd_avx512.h"

/* how far ahead of each of the four rows to prefetch: on this Zen 5 the
 * hardware prefetchers alone left f16, bf16 and q8_0 rows at half the read
 * ceiling; 1, 2 and 4 KiB measured, 2 KiB best (8 KiB in flight over four rows) */
enum { PF = 2048 };

#define KVB_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")))

/* 16 weights of a row from element e on, as f32 */
static KVB_INLINE KVB_AVX512 __m512 load_w(const int wt, const char *row, int e)
{
    if (wt == KVB_WTYPE_F16)
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(row + 2 * e)));
    if (wt == KVB_WTYPE_BF16)
        return _mm512_castsi512_ps(_mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(row + 2 * e))),
            16));
    return _mm512_loadu_ps((const float *)(const void *)row + e);
}

/* R rows (1 or 4) of a dense type from row r on */
static KVB_INLINE KVB_AVX512 void dense_rows(const int wt, const int R, const char *w, size_t rb,
                                             int in, const float *x, float *y, int r)
{
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                     _mm512_setzero_ps()};
    const char *row = w + (size_t)r * rb;
    const int esz = wt == KVB_WTYPE_F32 ? 4 : 2;
    for (int e = 0; e < in; e += 16) {
        __m512 xv = _mm512_loadu_ps(x + e);
        for (int j = 0; j < R; j++) _mm_prefetch(row + j * rb + e * esz + PF, _MM_HINT_T0);
        for (int j = 0; j < R; j++)
            acc[j] = _mm512_fmadd_ps(load_w(wt, row + j * rb, e), xv, acc[j]);
    }
    if (R == 4) _mm_storeu_ps(y + r, reduce4(acc[0], acc[1], acc[2], acc[3]));
    else y[r] = _mm_cvtss_f32(reduce4(acc[0], acc[0], acc[0], acc[0]));
}

static KVB_INLINE KVB_AVX512 void dense(const int wt, const void *w, int in, const float *x,
                                        float *y, int r0, int r1)
{
    const size_t rb = kvb_wtype_row_bytes((kvb_wtype)wt, in);
    int r = r0;
    for (; r + 4 <= r1; r += 4) dense_rows(wt, 4, w, rb, in, x, y, r);
    for (; r < r1; r++) dense_rows(wt, 1, w, rb, in, x, y, r);
}

static KVB_AVX512 void mv_f32(const void *w, int in, const float *x, float *y, int r0, int r1)
{
    dense(KVB_WTYPE_F32, w, in, x, y, r0, r1);
}

static KVB_AVX512 void mv_f16(const void *w, int in, const float *x, float *y, int r0, int r1)
{
    dense(KVB_WTYPE_F16, w, in, x, y, r0, r1);
}

static KVB_AVX512 void mv_bf16(const void *w, int in, const float *x, float *y, int r0, int r1)
{
    dense(KVB_WTYPE_BF16, w, in, x, y, r0, r1);
}

/* Blocks per chunk whose scales are converted together: one vector of 16. A
 * chunk reads the scale of each of its blocks before the codes, so the chunk
 * is what must already be in cache when it starts; 64 blocks are a whole row
 * at in = 2048 (8.7 KB over four rows), past what is prefetched. 16 measured
 * no worse than 64 and mostly better, within the noise (docs/models.md). */
enum { SCH = 16 };

/* The f16 scales of blocks c0..c0+n-1 (n <= SCH) of R rows, as f32 times
 * mul[c] (NULL: 1), into d[j][c]. Converting a block's scale where it is used
 * costs a broadcast and a vcvtph2ps on the shuffle port beside the codes' two
 * sign extensions, so a chunk's 16 are converted together. They are gathered
 * (a dword at each block's start, 34 bytes apart; its low half is the scale):
 * copied out 16-bit by 16-bit into a buffer read back as one vector, the
 * load waited for 16 stores it could not forward from, and the exact row took
 * 1.2-1.3x the gathered one's time in L2 and 1.1x streaming, one and two
 * threads (docs/models.md). Masked-off lanes read nothing. */
static KVB_INLINE KVB_AVX512 void q8_scales(const int R, const uint8_t *row, size_t rb, int c0,
                                            int n, const float *mul, float d[4][SCH])
{
    const __m512i at = _mm512_mullo_epi32(
        _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
        _mm512_set1_epi32(KVB_Q8_0_BYTES));
    const __mmask16 live = (__mmask16)(n >= SCH ? 0xffff : (1u << n) - 1);
    for (int j = 0; j < R; j++) {
        const uint8_t *b = row + j * rb + (size_t)c0 * KVB_Q8_0_BYTES;
        __m512i g = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), live, at, b, 1);
        __m512 v = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g));
        if (mul) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(live, mul + c0));
        _mm512_store_ps(d[j], v);
    }
}

/* How far ahead along its row each q8_0 row prefetches, and where: the
 * rows of a group are consecutive in memory, so QPF bytes on from a row's
 * offset o lies in the row itself while o + QPF < rb and past it in the same
 * row of the next group (G rows on), what this row's stream reads next. The
 * dense rows' "o + PF" reached into the next row of the same group at in =
 * 2048 (a q8_0 row is 2176 bytes), bytes already read: the q8_0 rows ran
 * mostly on the hardware prefetchers there. 2, 3 and 4 KiB measured (T0 and
 * T1), 3 KiB T0 among the best and kept (docs/models.md). */
enum { QPF = 3072 };

/* The exact row also asks the L2 for its stream QPF2 bytes ahead, every other
 * block (68 bytes, about a line): streaming 1 GiB of rows in=2048, one thread,
 * 12.5 -> 14.0 GB/s against a plain read's 15.5, two threads 23.4 -> 26.1
 * (12, 16 and 24 KiB measured alike; every block or every fourth, slower:
 * docs/models.md). The T0 prefetches alone kept the row at 0.81 of the read. */
enum { QPF2 = 16384 };

static KVB_INLINE size_t q8_ahead_by(int G, size_t rb, size_t o, size_t by)
{
    return o + by < rb ? o + by : o + by + (size_t)(G - 1) * rb;
}

static KVB_INLINE size_t q8_ahead(int G, size_t rb, size_t o)
{
    return q8_ahead_by(G, rb, o, QPF);
}

static KVB_INLINE KVB_AVX512 __m512 q8_half(const uint8_t *b, int half)
{
    return _mm512_cvtepi32_ps(
        _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(b + 2 + 16 * half))));
}

/* R rows (1 or 4) from row r on: per block of 32 the codes sign-extended and
 * converted (2 + 2 uops), sum(q * x) by a multiply and an FMA and the block
 * scaled into the row's sum by one more FMA; 7 vector uops a row-block on
 * the two 512-bit ports, the exact row's floor (docs/models.md) */
static KVB_INLINE KVB_AVX512 void q8_rows(const int R, const uint8_t *w, size_t rb, int in,
                                          const float *x, float *y, int r)
{
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                     _mm512_setzero_ps()};
    const uint8_t *row = w + (size_t)r * rb;
    const int nb = in / KVB_Q8_0_BLOCK;
    float d[4][SCH] __attribute__((aligned(64)));   /* [row][block of the chunk] */
    for (int c0 = 0; c0 < nb; c0 += SCH) {
        const int n = nb - c0 < SCH ? nb - c0 : SCH;
        q8_scales(R, row, rb, c0, n, NULL, d);
        for (int c = 0; c < n; c++) {
            const size_t o = (size_t)(c0 + c) * KVB_Q8_0_BYTES;
            const float *xc = x + (size_t)(c0 + c) * KVB_Q8_0_BLOCK;
            __m512 x0 = _mm512_loadu_ps(xc), x1 = _mm512_loadu_ps(xc + 16);
            for (int j = 0; j < R; j++)
                _mm_prefetch((const char *)row + j * rb + q8_ahead(R, rb, o), _MM_HINT_T0);
            if (!(c & 1))
                for (int j = 0; j < R; j++)
                    _mm_prefetch((const char *)row + j * rb + q8_ahead_by(R, rb, o, QPF2),
                                 _MM_HINT_T1);
            for (int j = 0; j < R; j++) {
                const uint8_t *b = row + j * rb + o;
                __m512 t = _mm512_fmadd_ps(q8_half(b, 1), x1, _mm512_mul_ps(q8_half(b, 0), x0));
                acc[j] = _mm512_fmadd_ps(_mm512_set1_ps(d[j][c]), t, acc[j]);
            }
        }
    }
    if (R == 4) _mm_storeu_ps(y + r, reduce4(acc[0], acc[1], acc[2], acc[3]));
    else y[r] = _mm_cvtss_f32(reduce4(acc[0], acc[0], acc[0], acc[0]));
}

static KVB_AVX512 void mv_q8_0(const void *w, int in, const float *x, float *y, int r0, int r1)
{
    const size_t rb = kvb_wtype_row_bytes(KVB_WTYPE_Q8_0, in);
    int r = r0;
    for (; r + 4 <= r1; r += 4) q8_rows(4, w, rb, in, x, y, r);
    for (; r < r1; r++) q8_rows(1, w, rb, in, x, y, r);
}

/* H (1, or 2 for q8_0: a whole block, its scale converted once) vectors of
 * 16 weights of a row from element e on, as f32: q8_0 as d * q */
static KVB_INLINE KVB_AVX512 void load_wn(const int wt, const char *row, int e, __m512 *w)
{
    if (wt != KVB_WTYPE_Q8_0) {
        w[0] = load_w(wt, row, e);
        return;
    }
    const uint8_t *b = (const uint8_t *)row + (size_t)(e / KVB_Q8_0_BLOCK) * KVB_Q8_0_BYTES;
    int16_t h;
    memcpy(&h, b, 2);
    const __m512 d = _mm512_cvtph_ps(_mm256_set1_epi16(h));
    w[0] = _mm512_mul_ps(d, q8_half(b, 0));
    w[1] = _mm512_mul_ps(d, q8_half(b, 1));
}

/* R rows (1, 2 or 4; R * NB <= 16 accumulators) from row on, columns [c0, c1),
 * against NB (1, 2, 4, 8) vectors x [NB][ldx] into y[b * ldy + j] (added from
 * the second block on) */
static KVB_INLINE KVB_AVX512 void n_rows(const int wt, const int R, const int NB, const char *row,
                                         size_t rb, size_t pf, int ldx, int c0, int c1,
                                         const float *x, float *y, int ldy)
{
    __m512 acc[4][8];
    for (int j = 0; j < R; j++)
        for (int b = 0; b < NB; b++) acc[j][b] = _mm512_setzero_ps();
    const int H = wt == KVB_WTYPE_Q8_0 ? 2 : 1;
    for (int e = c0; e < c1; e += 16 * H) {
        __m512 wv[4][2];
        for (int j = 0; j < R; j++) {
            /* pf bytes on: the next group's same columns, what this block reads next */
            _mm_prefetch(row + j * rb + pf + kvb_wrow_offset((kvb_wtype)wt, e), _MM_HINT_T0);
            load_wn(wt, row + j * rb, e, wv[j]);
        }
        for (int hh = 0; hh < H; hh++)
            for (int b = 0; b < NB; b++) {
                __m512 xv = _mm512_loadu_ps(x + (size_t)b * ldx + e + 16 * hh);
                /* in a register: GCC would fold the load into each row's FMA, two
                 * loads of x where one does, and the loads are what bind */
                __asm__("" : "+v"(xv));
                for (int j = 0; j < R; j++)
                    acc[j][b] = _mm512_fmadd_ps(wv[j][hh], xv, acc[j][b]);
            }
    }
    for (int j = 0; j < R; j++)
        for (int b = 0; b < NB; b++) {
            float v = _mm512_reduce_add_ps(acc[j][b]);
            y[(size_t)b * ldy + j] = c0 ? y[(size_t)b * ldy + j] + v : v;
        }
}

/* G rows (4 or 1), columns [c0, c1), against all B vectors, in passes of 8
 * (two rows at a time), then 4, 2, 1 (all G rows at a time: each x load
 * serves four rows) */
static KVB_INLINE KVB_AVX512 void n_pass(const int wt, const int G, const char *row, size_t rb,
                                         int in, int c0, int c1, int B, const float *x, float *y,
                                         int ldy)
{
    int b = 0;
#define KVB_NPASS(R, NB, j)                                                          \
    n_rows(wt, R, NB, row + (size_t)(j) * rb, rb, (size_t)G * rb, in, c0, c1,     \
           x + (size_t)b * in, y + (size_t)b * ldy + (j), ldy)
    for (; B - b >= 8; b += 8)
        for (int j = 0; j < G; j += 2 < G ? 2 : G) KVB_NPASS(2 < G ? 2 : G, 8, j);
    if (B - b >= 4) { KVB_NPASS(G, 4, 0); b += 4; }
    if (B - b >= 2) { KVB_NPASS(G, 2, 0); b += 2; }
    if (B - b >= 1) KVB_NPASS(G, 1, 0);
#undef KVB_NPASS
}

/* Columns in blocks of KC, every row of a panel of PR rows through a block
 * before the next, so the block of x (8 vectors: 16 KiB) stays in L1 while
 * the weights stream past it: with whole rows, x (128 KiB at B = 8, in =
 * 4096) came from L2 for every pair of rows, which held B = 8 to a fifth of
 * the FMA rate. Panels keep a row's blocks close in time (pages, prefetch):
 * f32 14336 x 4096 at B = 8 took 27-34 ms against 31-38 without, on a busy
 * machine; 256 rows measured no better. */
enum { KC = 512, PR = 64 };

static KVB_INLINE KVB_AVX512 void densen(const int wt, const void *w, int in, int B,
                                         const float *x, float *y, int ldy, int r0, int r1)
{
    const size_t rb = kvb_wtype_row_bytes((kvb_wtype)wt, in);
    for (int p0 = r0; p0 < r1; p0 += PR) {
        const int p1 = r1 - p0 < PR ? r1 : p0 + PR;
        for (int c0 = 0; c0 < in; c0 += KC) {
            const int c1 = in - c0 < KC ? in : c0 + KC;
            int r = p0;
            for (; r + 4 <= p1; r += 4)
                n_pass(wt, 4, (const char *)w + (size_t)r * rb, rb, in, c0, c1, B, x, y + r, ldy);
            for (; r < p1; r++)
                n_pass(wt, 1, (const char *)w + (size_t)r * rb, rb, in, c0, c1, B, x, y + r, ldy);
        }
    }
}

KVB_MATVECN_ROWS(KVB_AVX512, densen)

/* x rounded per block, in tiles of up to TILE values on the stack */
enum { TILE = 8192, TB = TILE / KVB_Q8_0_BLOCK };

static KVB_INLINE KVB_VNNI __m256 vnni_block(const uint8_t *b, const int8_t *xq, int corr)
{
    __m256i q = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)(b + 2)),
                                 _mm256_set1_epi8((char)0x80));
    __m256i s = _mm256_dpbusd_epi32(_mm256_set1_epi32(corr), q,
                                    _mm256_loadu_si256((const __m256i *)(const void *)xq));
    return _mm256_cvtepi32_ps(s);
}

static KVB_INLINE KVB_VNNI void vnni_rows(const int R, const uint8_t *w, size_t rb, int nb,
                                          const int8_t *xq, const float *sx, const int *corr,
                                          float *part)
{
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    float d[4][SCH] __attribute__((aligned(64)));   /* [row][block of the chunk]: d * sx */
    for (int c0 = 0; c0 < nb; c0 += SCH) {
        const int n = nb - c0 < SCH ? nb - c0 : SCH;
        q8_scales(R, w, rb, c0, n, sx, d);
        for (int c = 0; c < n; c++) {
            const size_t o = (size_t)(c0 + c) * KVB_Q8_0_BYTES;
            /* o from the tile's start: past the first tile of a row (in > TILE)
             * the step to the next group comes early, a hint only */
            for (int j = 0; j < R; j++)
                _mm_prefetch((const char *)w + j * rb + q8_ahead(R, rb, o), _MM_HINT_T0);
            for (int j = 0; j < R; j++) {
                __m256 s = vnni_block(w + j * rb + o, xq + 32 * (c0 + c), corr[c0 + c]);
                acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d[j][c]), s, acc[j]);
            }
        }
    }
    for (int j = 0; j < R; j++) {
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc[j]), _mm256_extractf128_ps(acc[j], 1));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        part[j] += _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
    }
}

/* x rounded as kvb_qquant_query rounds it, bit for bit (the tests hold the
 * row to that rounding), 16 values a vector: nb blocks of x into xq [nb][32],
 * sx [nb] and corr [nb] = -16 * sum(xq) of the block (vnni_block). The
 * portable function calls lrintf and fmaxf per value, about 27 us a product
 * at in = 2048 on the Xeon VM (256 rows hot in L2: 131 -> 66 ms over 2400
 * products), and ran for every chunk of rows the pool hands out (8 a product
 * at two threads).
 * Same operations, same order per value: |x| max (any order: exact), 127 /
 * amax, the product, the clamp, then round to nearest even as lrintf does
 * under the default rounding mode; a NaN x gives -127 in both (max_ps returns
 * its second operand on NaN, as fmaxf returns the number). */
static KVB_INLINE KVB_VNNI void vnni_quant_x(const float *x, int nb, int8_t *xq, float *sx,
                                             int *corr)
{
    const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
    for (int c = 0; c < nb; c++) {
        const float *xc = x + 32 * c;
        __m512 v0 = _mm512_loadu_ps(xc), v1 = _mm512_loadu_ps(xc + 16);
        __m512 m = _mm512_max_ps(_mm512_abs_ps(v0), _mm512_setzero_ps());
        m = _mm512_max_ps(_mm512_abs_ps(v1), m);
        float amax = _mm512_reduce_max_ps(m);
        float iq = amax > 0.0f ? 127.0f / amax : 0.0f;
        sx[c] = amax / 127.0f;
        __m512 s = _mm512_set1_ps(iq);
        __m512i q0 = _mm512_cvtps_epi32(
            _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v0, s), lo), hi));
        __m512i q1 = _mm512_cvtps_epi32(
            _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v1, s), lo), hi));
        _mm_storeu_si128((__m128i *)(void *)(xq + 32 * c), _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(void *)(xq + 32 * c + 16), _mm512_cvtepi32_epi8(q1));
        corr[c] = -16 * _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    }
}

static KVB_VNNI void mv_q8_0_vnni(const void *w, int in, const float *x, float *y, int r0, int r1)
{
    const size_t rb = kvb_wtype_row_bytes(KVB_WTYPE_Q8_0, in);
    int8_t xq[TILE];
    float sx[TB];
    int corr[TB];
    for (int r = r0; r < r1; r++) y[r] = 0.0f;
    for (int c0 = 0; c0 < in; c0 += TILE) {
        int n = in - c0 < TILE ? in - c0 : TILE, nb = n / KVB_Q8_0_BLOCK;
        vnni_quant_x(x + c0, nb, xq, sx, corr);
        const uint8_t *wt = (const uint8_t *)w + (size_t)(c0 / KVB_Q8_0_BLOCK) * KVB_Q8_0_BYTES;
        int r = r0;
        for (; r + 4 <= r1; r += 4) vnni_rows(4, wt + (size_t)r * rb, rb, nb, xq, sx, corr, y + r);
        for (; r < r1; r++) vnni_rows(1, wt + (size_t)r * rb, rb, nb, xq, sx, corr, y + r);
    }
}

/* for matvec_qk_avx512.c's VNNI row: x rounded as here, the same code */
KVB_VNNI void kvb_matvec_round_x(const float *x, int nb, int8_t *xq, float *sx, int *corr)
{
    vnni_quant_x(x, nb, xq, sx, corr);
}

int kvb_matvec_usable_vnni(void)
{
    return kvb_have_avx512() && __builtin_cpu_supports("avx512vnni");
}

static int usable_vnni(void) { return kvb_matvec_usable_vnni(); }
#define MV(f) f

#else
static int kvb_have_avx512(void) { return 0; }
int kvb_matvec_usable_vnni(void) { return 0; }
static int usable_vnni(void) { return 0; }
#define MV(f) NULL
#endif

const kvb_matvec_kernel kvb_matvec_avx512_rows[KVB_MATVEC_BASE_ROWS + 1] = {
    {"avx512-vnni", KVB_WTYPE_Q8_0, KVB_Q8_0_BLOCK, 1, usable_vnni, MV(mv_q8_0_vnni), NULL},
    {"avx512", KVB_WTYPE_F32, 16, 0, kvb_have_avx512, MV(mv_f32), MV(mvn_f32)},
    {"avx512", KVB_WTYPE_F16, 16, 0, kvb_have_avx512, MV(mv_f16), MV(mvn_f16)},
    {"avx512", KVB_WTYPE_BF16, 16, 0, kvb_have_avx512, MV(mv_bf16), MV(mvn_bf16)},
    {"avx512", KVB_WTYPE_Q8_0, KVB_Q8_0_BLOCK, 0, kvb_have_avx512, MV(mv_q8_0), MV(mvn_q8_0)},
};
