/* quant_vnni.c: the AVX512-VNNI table of quant.h: key scores as integer dot
 * products of the codes with the query rounded to int8 (kvb_qquant_query, here
 * in portable C; the kernels round it with matvec.h's AVX-512 kvb_matvec_round_x,
 * the same bits); values, 2-bit codes
 * and rows that do not fit go through the AVX-512 table's loops
 * (kvb_qscores_avx512, kvb_qaccum_avx512 in quant_avx512.c).
 *
 * Contract: the scores of rows with d/m words are exact for the rounded query
 * (quant.h's rounds_query), whichever path computes them. Compiled for any
 * x86-64 GCC with function-level target attributes; the table exists only when
 * CPUID reports AVX512-VNNI beside the AVX-512 table's features. */
#include "quant.h"
#include "kernels.h"
#include "matvec.h"

#include <math.h>
#include <string.h>

/* The query as the integer kernels see it (quant.h), in portable C built
 * everywhere: here beside the only kernels that round it (the VNNI scores). */
void kvb_qquant_query(const float *q, int n, int8_t *qi, float *sq)
{
    for (int c = 0; c < n / 32; c++) {
        float amax = 0.0f;
        for (int e = 0; e < 32; e++) amax = fmaxf(amax, fabsf(q[32 * c + e]));
        float iq = amax > 0.0f ? 127.0f / amax : 0.0f;
        sq[c] = amax / 127.0f;
        /* the clamp first, so a huge value never reaches lrintf */
        for (int e = 0; e < 32; e++)
            qi[32 * c + e] = (int8_t)lrintf(fminf(fmaxf(q[32 * c + e] * iq, -127.0f), 127.0f));
    }
}

void kvb_qround_query(const float *q, int n, float *out)
{
    for (int c = 0; c < n / 32; c++) {
        int8_t qi[32];
        float sq;
        kvb_qquant_query(q + 32 * c, 32, qi, &sq);
        for (int e = 0; e < 32; e++) out[32 * c + e] = sq * (float)qi[e];
    }
}

/* GCC on x86-64 only, as quant_avx512.c. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include "simd_avx512.h"

/* ---- AVX512-VNNI scores: integer dot products, rows in lanes ------------------
 *
 * The query is rounded to int8 per 32 values (qi = round(q / sq), sq = max|q| /
 * 127, as llama.cpp's q8_0 vec_dot does) and vpdpbusd multiplies the unsigned
 * codes by it: no code is widened to float. Rows go 16 at a time, one per lane:
 * a 16 x 16 transpose of 32-bit words turns 16 rows' 64-byte column into 16
 * vectors, vector k holding every row's code word k, so each vpdpbusd meets one
 * query word broadcast from memory and the 16 scores come out in the 16 lanes of
 * one vector per head, with no horizontal sums. Per 32-value chunk c and row:
 *     dot_c = d[group] * sq[c] * (sum qi c - zero sum qi) + m[group] * sq[c] * sum qi
 * (an integer sum per chunk, then one FMA); the zero term starts the integer sum.
 * A 4-bit word holds 8 codes: its low nibbles meet the query's even values, its
 * high nibbles the odd ones. A block past the last row repeats the last row and
 * stores only the real lanes, so a row's score does not depend on its block. */

#define KVB_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")))

typedef struct vnni_query {
    const int32_t *qd;    /* [HB][nd][2] query bytes of code word k: 8-bit [k][0]; 4-bit the
                           * even values' (low nibbles), then the odd ones' */
    const float   *sq;    /* [HB][nc] sq of each chunk, times the score scale */
    const int32_t *corr;  /* [HB][nc] -zero * sum qi over the chunk (symmetric formats) */
    const float   *qs;    /* [HB][nc] sq * scale * sum qi over the chunk (asymmetric formats) */
} vnni_query;

/* t[k], lane r = word k of r[r] (16 x 16 32-bit words). */
static KVB_INLINE KVB_VNNI void transpose16(const __m512i *r, __m512i *t)
{
    __m512i a[16], b[16];
    for (int i = 0; i < 8; i++) {
        a[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    /* per 128-bit lane L of b[4i + j]: word 4L + j of rows 4i..4i+3 */
    for (int i = 0; i < 4; i++) {
        b[4 * i] = _mm512_unpacklo_epi64(a[4 * i], a[4 * i + 2]);
        b[4 * i + 1] = _mm512_unpackhi_epi64(a[4 * i], a[4 * i + 2]);
        b[4 * i + 2] = _mm512_unpacklo_epi64(a[4 * i + 1], a[4 * i + 3]);
        b[4 * i + 3] = _mm512_unpackhi_epi64(a[4 * i + 1], a[4 * i + 3]);
    }
    /* lane L of b[j], b[4 + j], b[8 + j], b[12 + j] in order: word 4L + j of all rows */
    for (int j = 0; j < 4; j++) {
        __m512i c0 = _mm512_shuffle_i32x4(b[j], b[4 + j], 0x44);
        __m512i c1 = _mm512_shuffle_i32x4(b[j], b[4 + j], 0xEE);
        __m512i c2 = _mm512_shuffle_i32x4(b[8 + j], b[12 + j], 0x44);
        __m512i c3 = _mm512_shuffle_i32x4(b[8 + j], b[12 + j], 0xEE);
        t[j] = _mm512_shuffle_i32x4(c0, c2, 0x88);
        t[4 + j] = _mm512_shuffle_i32x4(c0, c2, 0xDD);
        t[8 + j] = _mm512_shuffle_i32x4(c1, c3, 0x88);
        t[12 + j] = _mm512_shuffle_i32x4(c1, c3, 0xDD);
    }
}

/* Scores of rows t..t+nr-1 (nr <= 16) for heads 0..HB-1. */
static KVB_INLINE KVB_VNNI void vnni_rows16(const kvb_qrows *k, const int bits, const int asym,
                                            const int HB, const vnni_query *vq, size_t l2, int t,
                                            int nr, float *s, size_t s_stride)
{
    const int hd = k->head_dim, nd = hd * bits / 32, nc = hd / 32, cpg = k->group / 32;
    const int np = asym ? 2 : 1, nw = (hd / k->group) * np, cw = bits; /* words a chunk */
    const uint8_t *row[16];
    uint16_t words[16][16];                                  /* [word][row] */
    /* a block is little work: ask for the rows two blocks on, so several misses
     * overlap (one block on and four were no faster, docs/tuning.md) */
    const size_t ahead = 32 * k->code_stride;
    for (int r = 0; r < 16; r++) {
        row[r] = k->codes + ((size_t)t + (size_t)(r < nr ? r : nr - 1)) * k->code_stride;
        for (size_t b = 0; b < k->code_stride; b += 64)
            _mm_prefetch((const char *)row[r] + ahead + b, _MM_HINT_T0);
    }
    if (l2)   /* and the L2 further on (attend_avx512.c: kvb_attend_l2_bytes) */
        kvb_prefetch_l2((const char *)k->codes, (size_t)t * k->code_stride + l2,
                        16 * k->code_stride, (size_t)k->n * k->code_stride);
    const uint16_t *p0 = k->params + (size_t)t * k->param_stride;
    if (nr == 16 && k->param_stride == (size_t)nw && nw <= 4) {
        /* 16 rows' words in at most 128 bytes: one permute per word slot */
        const __mmask32 m0 = nw == 1 ? 0xFFFFu : 0xFFFFFFFFu, m1 = nw == 4 ? 0xFFFFFFFFu : 0;
        __m512i lo = _mm512_maskz_loadu_epi16(m0, p0), hi = _mm512_maskz_loadu_epi16(m1, p0 + 32);
        const __m512i lane = _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19,
                                              18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5,
                                              4, 3, 2, 1, 0);
        const __m512i first = _mm512_mullo_epi16(lane, _mm512_set1_epi16((short)nw));
        for (int w = 0; w < nw; w++) {          /* word w of row r: r nw + w */
            const __m512i idx = _mm512_add_epi16(first, _mm512_set1_epi16((short)w));
            _mm256_storeu_si256((__m256i *)(void *)words[w],
                                _mm512_castsi512_si256(_mm512_permutex2var_epi16(lo, idx, hi)));
        }
    } else {
        for (int r = 0; r < 16; r++) {
            const uint16_t *p = p0 + (size_t)(r < nr ? r : nr - 1) * k->param_stride;
            for (int w = 0; w < nw; w++) words[w][r] = p[w];
        }
    }
    __m512 facc[8];
    for (int h = 0; h < HB; h++) facc[h] = _mm512_setzero_ps();
    for (int cb = 0; cb < nd / 16; cb++) {
        __m512i in[16], x[2][16];
        for (int r = 0; r < 16; r++) in[r] = _mm512_loadu_si512(row[r] + 64 * cb);
        transpose16(in, x[0]);
        if (bits == 4)
            for (int j = 0; j < 16; j++) {
                const __m512i lo4 = _mm512_set1_epi8(15);
                x[1][j] = _mm512_and_si512(_mm512_srli_epi16(x[0][j], 4), lo4);
                x[0][j] = _mm512_and_si512(x[0][j], lo4);
            }
        for (int cc = 0; cc < 16 / cw; cc++) {
            const int c = cb * (16 / cw) + cc, gi = c / cpg;
            const __m512 d =
                _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)words[gi * np]));
            __m512 m = d;
            if (asym)
                m = _mm512_cvtph_ps(
                    _mm256_loadu_si256((const __m256i *)(const void *)words[gi * np + 1]));
            const int32_t *qd = vq->qd + (size_t)cb * 16 * 2;      /* head h: + h nd 2 */
            __m512i ai[8];
#pragma GCC unroll 8
            for (int h = 0; h < HB; h++)
                ai[h] = asym ? _mm512_setzero_si512() : _mm512_set1_epi32(vq->corr[h * nc + c]);
            for (int j = cc * cw; j < (cc + 1) * cw; j++)
#pragma GCC unroll 8
                for (int h = 0; h < HB; h++) {
                    const int32_t *qh = qd + (size_t)h * nd * 2;
                    ai[h] = _mm512_dpbusd_epi32(ai[h], x[0][j], _mm512_set1_epi32(qh[2 * j]));
                    if (bits == 4)
                        ai[h] = _mm512_dpbusd_epi32(ai[h], x[1][j],
                                                    _mm512_set1_epi32(qh[2 * j + 1]));
                }
#pragma GCC unroll 8
            for (int h = 0; h < HB; h++) {
                const __m512 dq = _mm512_mul_ps(d, _mm512_set1_ps(vq->sq[h * nc + c]));
                facc[h] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ai[h]), dq, facc[h]);
                if (asym) facc[h] = _mm512_fmadd_ps(m, _mm512_set1_ps(vq->qs[h * nc + c]), facc[h]);
            }
        }
    }
    const __mmask16 keep = (__mmask16)((1u << nr) - 1u);
    for (int h = 0; h < HB; h++) _mm512_mask_storeu_ps(s + (size_t)h * s_stride + t, keep, facc[h]);
}

static KVB_INLINE KVB_VNNI void vnni_heads(const kvb_qrows *k, const int bits, const int asym,
                                           const int HB, const vnni_query *vq, float *s,
                                           size_t s_stride)
{
    const size_t l2 = kvb_attend_l2_bytes();
    for (int t = 0; t < k->n; t += 16)
        vnni_rows16(k, bits, asym, HB, vq, l2, t, k->n - t < 16 ? k->n - t : 16, s, s_stride);
}

/* Whether the integer path takes these rows: 8-bit rows of whole 64-value
 * blocks or 4-bit rows of whole 128-value blocks (64-byte columns), at most 16
 * d/m words a row. */
static int vnni_fits(const kvb_qrows *k)
{
    int nw = (k->head_dim / k->group) * (k->fmt->asym ? 2 : 1);
    if (!k->params || k->fmt->bits == 2 || nw > 16) return 0;
    return k->fmt->bits == 8 ? k->head_dim % 64 == 0 : k->head_dim % 128 == 0;
}

static KVB_INLINE KVB_VNNI void vnni_fmt(const kvb_qrows *k, const int bits, const int asym,
                                         const int zero, int g, const float *q, float scale,
                                         float *s, size_t s_stride, float *scratch)
{
    const int hd = k->head_dim, nd = hd * bits / 32, nc = hd / 32;
    /* scratch, in 4-byte words: qd (g*nd*2 <= g*hd/2), then sq and corr or qs
     * (g*nc each), then the rounded query of the head at hand (hd bytes) and
     * its chunk scales; (2g+1)*hd floats hold it all */
    int32_t *qd = (int32_t *)(void *)scratch;
    float *sq = scratch + (size_t)g * nd * 2;
    float *qs = sq + (size_t)g * nc;
    int32_t *corr = (int32_t *)(void *)qs;                 /* one or the other */
    int8_t *qi = (int8_t *)(void *)(qs + (size_t)g * nc);
    float *sqc = qs + (size_t)g * nc + hd / 4;
    for (int h = 0; h < g; h++) {
        /* the AVX-512 rounding, bit for bit kvb_qquant_query's (test_matvec holds
         * it value by value): the scalar one, lrintf and fmaxf per value, held
         * about 38% of a 128-token q8 attend's samples on the Xeon VM. hc: -16 *
         * each chunk's sum of qi, read before corr or qs (the same words) is
         * written */
        int32_t *hc = corr + (size_t)h * nc;
        kvb_matvec_round_x(q + (size_t)h * hd, nc, qi, sqc, hc);
        for (int kw = 0; kw < nd; kw++) {
            int8_t b[8];
            if (bits == 8) memcpy(b, qi + 4 * kw, 4);
            else
                for (int i = 0; i < 4; i++) {
                    b[i] = qi[8 * kw + 2 * i];                 /* low nibbles: even values */
                    b[4 + i] = qi[8 * kw + 2 * i + 1];
                }
            int32_t *dst = qd + ((size_t)h * nd + (size_t)kw) * 2;
            memcpy(dst, b, 4);
            dst[1] = 0;
            if (bits == 4) memcpy(dst + 1, b + 4, 4);
        }
        for (int c = 0; c < nc; c++) {
            int sum = -hc[c] / 16;
            sq[h * nc + c] = sqc[c] * scale;
            if (asym) qs[h * nc + c] = sqc[c] * scale * (float)sum;
            else      corr[h * nc + c] = -zero * sum;
        }
    }
    vnni_query vq = {qd, sq, corr, qs};
    for (int h0 = 0; h0 < g;) {
        int left = g - h0, hb = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
        vnni_query vh = vq;
        vh.qd += (size_t)h0 * nd * 2;
        vh.sq += (size_t)h0 * nc;
        vh.corr += (size_t)h0 * nc;
        vh.qs += (size_t)h0 * nc;
        float *sh = s + (size_t)h0 * s_stride;
        switch (hb) {
        case 8:  vnni_heads(k, bits, asym, 8, &vh, sh, s_stride); break;
        case 4:  vnni_heads(k, bits, asym, 4, &vh, sh, s_stride); break;
        case 2:  vnni_heads(k, bits, asym, 2, &vh, sh, s_stride); break;
        default: vnni_heads(k, bits, asym, 1, &vh, sh, s_stride); break;
        }
        h0 += hb;
    }
}

/* Every row with d/m words sees the rounded query (kvb_qround_query), whichever
 * path computes it, so the table's arithmetic has one definition. */
static KVB_VNNI void scores_vnni(const kvb_qrows *k, int g, const float *q, float scale,
                                 float *s, size_t s_stride, float *scratch)
{
    if (vnni_fits(k)) {
        if (k->fmt->bits == 8)  vnni_fmt(k, 8, 0, 128, g, q, scale, s, s_stride, scratch);
        else if (k->fmt->asym)  vnni_fmt(k, 4, 1, 0, g, q, scale, s, s_stride, scratch);
        else                    vnni_fmt(k, 4, 0, 8, g, q, scale, s, s_stride, scratch);
        return;
    }
    if (!k->params) { kvb_qscores_avx512(k, g, q, scale, s, s_stride, scratch); return; }
    /* the float path over the rounded query: its rows go last in scratch */
    float *qr = scratch + (size_t)(g + 1) * k->head_dim;
    for (int h = 0; h < g; h++)
        kvb_qround_query(q + (size_t)h * k->head_dim, k->head_dim, qr + (size_t)h * k->head_dim);
    kvb_qscores_avx512(k, g, qr, scale, s, s_stride, scratch);
}

static const kvb_qkernels avx512_vnni = {
    .name = "avx512-vnni",
    .rounds_query = 1,
    .scores = scores_vnni,
    .accum = kvb_qaccum_avx512,
    .softmax_exp = softmax_exp_avx512,
};

const kvb_qkernels *kvb_qkernels_avx512_vnni(void)
{
    return kvb_qkernels_avx512() && __builtin_cpu_supports("avx512vnni") ? &avx512_vnni : NULL;
}

#else
const kvb_qkernels *kvb_qkernels_avx512_vnni(void) { return NULL; }
#endif
