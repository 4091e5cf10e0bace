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

/* The weights as the integer value pass sees them (quant.h), in portable C
 * built everywhere, for the tests' reference. The product is rounded as the
 * SIMD loop rounds it: u*iw, not w*(d*iw). */
void kvb_qround_weights(const float *w, const float *d, int n, uint8_t *wq, float *delta)
{
    float amax = 0.0f;
    for (int t = 0; t < n; t++) amax = fmaxf(amax, w[t] * d[t]);
    const float iw = amax >= KVB_QWEIGHT_TINY ? 255.0f / amax : 0.0f;
    *delta = iw > 0.0f ? amax * (1.0f / 255.0f) : 0.0f;
    for (int t = 0; t < n; t++) {
        float u = w[t] * d[t];
        wq[t] = (uint8_t)lrintf(u * iw);
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
    int gi = 0, gc = 0;                       /* chunk c's group (c / cpg) and place in it */
    for (int cb = 0; cb < nd / 16; cb++) {
        __m512i in[16], x[16];
        for (int r = 0; r < 16; r++) in[r] = _mm512_loadu_si512(row[r] + 64 * cb);
        transpose16(in, x);
        /* one loop over the 16 words, chunk by chunk (cw words each): unrolled,
         * every index is a constant and x stays in registers (with a variable
         * word index GCC kept the 16 vectors on the stack) */
        const int32_t *qd = vq->qd + (size_t)cb * 16 * 2;      /* head h: + h nd 2 */
        __m512i ai[8];
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) {
            const int c = cb * (16 / cw) + j / cw;
            if (j % cw == 0)
#pragma GCC unroll 8
                for (int h = 0; h < HB; h++)
                    ai[h] = asym ? _mm512_setzero_si512() : _mm512_set1_epi32(vq->corr[h * nc + c]);
            __m512i lo = x[j], hi = lo;
            if (bits == 4) {   /* low nibbles: even values; high: odd */
                hi = _mm512_and_si512(_mm512_srli_epi16(lo, 4), _mm512_set1_epi8(15));
                lo = _mm512_and_si512(lo, _mm512_set1_epi8(15));
            }
#pragma GCC unroll 8
            for (int h = 0; h < HB; h++) {
                const int32_t *qh = qd + (size_t)h * nd * 2;
                ai[h] = _mm512_dpbusd_epi32(ai[h], lo, _mm512_set1_epi32(qh[2 * j]));
                if (bits == 4)
                    ai[h] = _mm512_dpbusd_epi32(ai[h], hi, _mm512_set1_epi32(qh[2 * j + 1]));
            }
            if (j % cw != cw - 1) continue;
            /* the chunk's sums: d of its group (gi), into the float scores */
            const __m512 d =
                _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)words[gi * np]));
#pragma GCC unroll 8
            for (int h = 0; h < HB; h++) {
                const __m512 dq = _mm512_mul_ps(d, _mm512_set1_ps(vq->sq[h * nc + c]));
                facc[h] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ai[h]), dq, facc[h]);
            }
            if (asym) {
                const __m512 m = _mm512_cvtph_ps(
                    _mm256_loadu_si256((const __m256i *)(const void *)words[gi * np + 1]));
#pragma GCC unroll 8
                for (int h = 0; h < HB; h++)
                    facc[h] = _mm512_fmadd_ps(m, _mm512_set1_ps(vq->qs[h * nc + c]), facc[h]);
            }
            if (++gc == cpg) { gc = 0; gi++; }
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

/* ---- AVX512-VNNI values with 8-bit weights (the table avx512-vnni-int8) -------
 *
 * out_i += sum_t w_t x'_t, with x'_t = d_t (c_t - k) + (m_t + k d_t) in a group
 * (k = 2^(bits-1); m = 0 for the symmetric formats): each head's products u_t =
 * w_t d_t of a group are rounded per tile of 64 rows (kvb_qround_weights: wq_t
 * in 0..255, delta), and vpdpbusd sums wq_t (unsigned) times the codes (signed)
 * over four rows at a time in int32, so four heads at head_dim 128 take 8
 * integer dot products a row where the float loop takes 32 FMAs and the codes'
 * widening. Four rows' codes are interleaved byte by byte (two unpacks of
 * bytes, two of words), so a 32-bit lane holds one value's four codes and a
 * 128-bit lane stays inside one group; that group's four weight bytes,
 * repeated, are the lane's other operand. 8-bit codes enter centred (c ^ 0x80 =
 * c - 128 as a signed byte); 4-bit codes raw, 8 sum wq taken off once a tile
 * (exact in int32). The tile's sums become floats once, delta times them, into
 * sums kept in the loop's order and put back in element order at the end.
 * sum w_t (m_t + k d_t) (asymmetric formats) stays in f32. */

/* the VNNI features and AVX512-VBMI, for the weight bytes' permute */
#define KVB_IV                                                                                     \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512vbmi,fma,f16c")))

enum { IV_TILE = KVB_QWEIGHT_TILE, IV_QUADS = IV_TILE / 4 };

/* Whether the integer value pass takes these rows: 8-bit rows of whole
 * 64-value blocks or 4-bit rows of whole 128-value blocks, head_dim <= 256, at
 * most four groups a row (one vector holds four rows' scales) and 8 words. */
static int ivals_fits(const kvb_qrows *v)
{
    const int ng = v->head_dim / v->group, nw = ng * (v->fmt->asym ? 2 : 1);
    if (!v->params || v->fmt->bits == 2 || ng > 4 || nw > 8 || v->head_dim > 256) return 0;
    return v->fmt->bits == 8 ? v->head_dim % 64 == 0 : v->head_dim % 128 == 0;
}

/* Element of out a sum lands on: code vector k, pass half hf (4-bit), operand j,
 * 128-bit lane L, 32-bit word i of the lane. */
static int ivals_elem(int bits, int k, int hf, int j, int L, int i)
{
    if (bits == 8) return 64 * k + 16 * L + 4 * j + i;
    return 2 * (64 * k + 16 * L + 8 * hf + 4 * (j / 2) + i) + j % 2;
}

/* Four rows' 64-byte code vectors, interleaved: x[j], 32-bit word i of lane L,
 * holds the four rows' codes of element ivals_elem (4-bit: of pass half hf). */
static KVB_INLINE KVB_IV void ivals_mix(const int bits, const int hf, __m512i r0, __m512i r1,
                                        __m512i r2, __m512i r3, __m512i *x)
{
    if (bits == 8) {
        const __m512i a = _mm512_unpacklo_epi8(r0, r1), b = _mm512_unpacklo_epi8(r2, r3);
        const __m512i c = _mm512_unpackhi_epi8(r0, r1), d = _mm512_unpackhi_epi8(r2, r3);
        const __m512i s = _mm512_set1_epi8((char)0x80);
        x[0] = _mm512_xor_si512(_mm512_unpacklo_epi16(a, b), s);
        x[1] = _mm512_xor_si512(_mm512_unpackhi_epi16(a, b), s);
        x[2] = _mm512_xor_si512(_mm512_unpacklo_epi16(c, d), s);
        x[3] = _mm512_xor_si512(_mm512_unpackhi_epi16(c, d), s);
        return;
    }
    const __m512i a = hf ? _mm512_unpackhi_epi8(r0, r1) : _mm512_unpacklo_epi8(r0, r1);
    const __m512i b = hf ? _mm512_unpackhi_epi8(r2, r3) : _mm512_unpacklo_epi8(r2, r3);
    const __m512i y0 = _mm512_unpacklo_epi16(a, b), y1 = _mm512_unpackhi_epi16(a, b);
    const __m512i lo4 = _mm512_set1_epi8(15);
    x[0] = _mm512_and_si512(y0, lo4);
    x[1] = _mm512_and_si512(_mm512_srli_epi16(y0, 4), lo4);
    x[2] = _mm512_and_si512(y1, lo4);
    x[3] = _mm512_and_si512(_mm512_srli_epi16(y1, 4), lo4);
}

/* acc[h][j] += the weight bytes wq (one 64-byte vector a head) times x[j]. */
static KVB_INLINE KVB_IV void ivals_dot(const int HB, const uint8_t (*wq)[4][64], int k,
                                        const __m512i *x, __m512i (*acc)[4])
{
#pragma GCC unroll 4
    for (int h = 0; h < HB; h++) {
        const __m512i wo = _mm512_load_si512(wq[h][k]);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) acc[h][j] = _mm512_dpbusd_epi32(acc[h][j], wo, x[j]);
    }
}

/* What a tile's passes read and write (ivals_heads' arrays). */
typedef struct iv_tile {
    const uint8_t (*wop)[4][4][64];   /* [quad][head][k] */
    const int32_t (*zl)[4][16];       /* [head][k] */
    const float   (*dl)[4][16];       /* [head][k] */
    float         (*fo)[4][4][16];    /* [head][pass][j] */
} iv_tile;

/* One pass over a tile's nr rows from t0: code vector k (4-bit: half hf) of
 * every row against every head's weights, the int32 sums then into fo[.][pass]
 * as floats. The first pass also prefetches (pf: the next tile into L1; l2). */
static KVB_INLINE KVB_IV void ivals_pass(const kvb_qrows *v, const int bits, const int HB,
                                         const int hf, const int first, int k, int pass, int t0,
                                         int nr, const iv_tile *tl, size_t pf, size_t l2)
{
    __m512i acc[4][4];
#pragma GCC unroll 4
    for (int h = 0; h < HB; h++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) acc[h][j] = _mm512_setzero_si512();
    const size_t cs = v->code_stride;
    const uint8_t *r = v->codes + (size_t)t0 * cs + 64 * k;
    const int nf = nr / 4;
    for (int q = 0; q < nf; q++, r += 4 * cs) {
        if (first) {
            for (size_t b = 0; b < 4 * cs; b += 64)
                _mm_prefetch((const char *)r - 64 * k + pf + b, _MM_HINT_T0);
            if (l2)
                kvb_prefetch_l2((const char *)v->codes, (size_t)(t0 + 4 * q) * cs + l2, 4 * cs,
                                (size_t)v->n * cs);
        }
        __m512i x[4];
        ivals_mix(bits, hf, _mm512_loadu_si512(r), _mm512_loadu_si512(r + cs),
                  _mm512_loadu_si512(r + 2 * cs), _mm512_loadu_si512(r + 3 * cs), x);
        ivals_dot(HB, tl->wop[q], k, x, acc);
    }
    if (4 * nf < nr) {   /* the last rows; a missing one reads the first (its weight is 0) */
        const int left = nr - 4 * nf;
        __m512i x[4];
        ivals_mix(bits, hf, _mm512_loadu_si512(r), _mm512_loadu_si512(r + (left > 1 ? cs : 0)),
                  _mm512_loadu_si512(r + (left > 2 ? 2 * cs : 0)), _mm512_loadu_si512(r), x);
        ivals_dot(HB, tl->wop[nf], k, x, acc);
    }
#pragma GCC unroll 4
    for (int h = 0; h < HB; h++) {
        const __m512i z = _mm512_load_si512(tl->zl[h][k]);
        const __m512 dd = _mm512_load_ps(tl->dl[h][k]);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            float *f = tl->fo[h][pass][j];
            const __m512 sm = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[h][j], z));
            _mm512_store_ps(f, _mm512_fmadd_ps(sm, dd, _mm512_load_ps(f)));
        }
    }
}

/* Weights 4q..4q+3 of a tile of nr rows in each 128-bit lane, zeros past the
 * last row (a full quad is one broadcast from memory). */
static KVB_INLINE KVB_IV __m512 ivals_w4(const float *wh, int q, int nr)
{
    const int rows = nr - 4 * q;
    if (rows >= 4) return _mm512_broadcast_f32x4(_mm_loadu_ps(wh + 4 * q));
    return _mm512_broadcast_f32x4(_mm_maskz_loadu_ps((__mmask8)((1u << rows) - 1u), wh + 4 * q));
}

/* One head's weights over a tile of nq quads (nr rows; full: all 64): u = w d
 * per lane, each lane's group's largest product amax, the rounded bytes
 * wop[q][h][k] (kvb_qround_weights' wq, laid out as code vector k's lanes
 * want them), delta (dl) and 8 sum wq (zl, 4-bit) per lane of each k, and
 * sum w (m + 8 d) into ms (asymmetric formats). */
static KVB_INLINE KVB_IV void ivals_weights(const int bits, const int asym, const int full, int nk,
                                            int nq, int nr,
                                            const float *wh, const float (*dm)[IV_QUADS][16],
                                            const uint8_t (*pick)[64], const int32_t (*gsel)[16],
                                            int h, uint8_t (*wop)[4][4][64], int32_t (*zl)[16],
                                            float (*dl)[16], __m512 *ms)
{
    const int n4 = full ? IV_QUADS : nq;
    __m512 u[IV_QUADS], mx = _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int q = 0; q < IV_QUADS; q++) u[q] = mx;   /* (GCC cannot tell n4 <= 16 covers it) */
#pragma GCC unroll 16
    for (int q = 0; q < n4; q++) {
        const __m512 wv =
            full ? _mm512_broadcast_f32x4(_mm_loadu_ps(wh + 4 * q)) : ivals_w4(wh, q, nr);
        u[q] = _mm512_mul_ps(wv, _mm512_load_ps(dm[0][q]));
        mx = _mm512_max_ps(mx, u[q]);
        if (asym) *ms = _mm512_fmadd_ps(wv, _mm512_load_ps(dm[1][q]), *ms);
    }
    /* each lane: its group's largest product, in all four words */
    mx = _mm512_max_ps(mx, _mm512_permute_ps(mx, 0x4E));
    mx = _mm512_max_ps(mx, _mm512_permute_ps(mx, 0xB1));
    const __mmask16 big = _mm512_cmp_ps_mask(mx, _mm512_set1_ps(KVB_QWEIGHT_TINY), _CMP_GE_OQ);
    const __m512 iw = _mm512_maskz_div_ps(big, _mm512_set1_ps(255.0f), mx);
    const __m512 del = _mm512_maskz_mul_ps(big, mx, _mm512_set1_ps(1.0f / 255.0f));
    __m512i sum = _mm512_setzero_si512();
#pragma GCC unroll 16
    for (int q = 0; q < n4; q++) {
        const __m512i wi = _mm512_cvtps_epi32(_mm512_mul_ps(u[q], iw));
        if (bits == 4) sum = _mm512_add_epi32(sum, wi);
        for (int k = 0; k < nk; k++)
            _mm512_store_si512(wop[q][h][k],
                               _mm512_permutexvar_epi8(_mm512_load_si512(pick[k]), wi));
    }
    sum = _mm512_add_epi32(sum, _mm512_shuffle_epi32(sum, 0x4E));
    sum = _mm512_add_epi32(sum, _mm512_shuffle_epi32(sum, 0xB1));
    sum = _mm512_slli_epi32(sum, 3);       /* 8 sum wq; 8-bit codes came centred: 0 */
    for (int k = 0; k < nk; k++) {
        const __m512i gs = _mm512_load_si512(gsel[k]);
        _mm512_store_si512(zl[k], _mm512_permutexvar_epi32(gs, sum));
        _mm512_store_ps(dl[k], _mm512_permutexvar_ps(gs, del));
    }
}

/* Heads 0..HB-1 of w over every row of v (ivals_fits). */
static KVB_INLINE KVB_IV void ivals_heads(const kvb_qrows *v, const int bits, const int asym,
                                          const int HB, const float *w, size_t w_stride, float *out)
{
    const int hd = v->head_dim, ng = hd / v->group, np = asym ? 2 : 1, nw = ng * np;
    const int nk = hd * bits / 512, npass = bits == 4 ? 2 * nk : nk;
    _Alignas(64) float dm[2][IV_QUADS][16];       /* [d, m][quad][group][row] */
    _Alignas(64) uint8_t wop[IV_QUADS][4][4][64]; /* [quad][head][k]: lane L, its group's wq */
    _Alignas(64) float fo[4][4][4][16];           /* [head][pass][j][lane word]: the sums */
    _Alignas(64) float dl[4][4][16];              /* [head][k]: delta of each lane's group */
    _Alignas(64) int32_t zl[4][4][16];            /* [head][k]: 8 sum wq (4-bit; 0), the same */
    _Alignas(64) uint8_t pick[4][64];             /* [k]: byte of wi that lane byte takes */
    _Alignas(64) int32_t gsel[4][16];             /* [k]: word of a group-per-lane vector */
    uint16_t pw[IV_TILE * 8];                     /* a tile's d/m words, rows packed */
    __m512 ms[4];                                 /* [head]: sum w (m + 8 d), [group][row] */
    memset(fo, 0, sizeof fo);
    for (int k = 0; k < nk; k++)
        for (int L = 0; L < 4; L++) {
            const int grp = (bits == 8 ? 64 * k + 16 * L : 128 * k + 32 * L) / v->group;
            for (int i = 0; i < 4; i++) {
                gsel[k][4 * L + i] = 4 * grp;
                for (int r = 0; r < 4; r++)
                    pick[k][16 * L + 4 * r + i] = (uint8_t)(16 * grp + 4 * i);
            }
        }
    for (int h = 0; h < HB; h++) ms[h] = _mm512_setzero_ps();
    /* word of row r, group g within four rows' packed words: [g][r] order */
    _Alignas(64) int32_t di[16], mi[16];
    __mmask16 gm = 0;
    for (int g = 0; g < 4; g++)
        for (int r = 0; r < 4; r++) {
            di[4 * g + r] = g < ng ? r * nw + g * np : 0;
            mi[4 * g + r] = g < ng ? r * nw + g * np + 1 : 0;
            if (g < ng) gm |= (__mmask16)(1u << (4 * g + r));
        }
    const __m512i dsel = _mm512_load_si512(di), msel = _mm512_load_si512(mi);
    /* the next tile's rows into L1 (each is read npass times), the L2 further on */
    const size_t pf = (size_t)IV_TILE * v->code_stride, l2 = kvb_attend_l2_bytes();
    for (int t0 = 0; t0 < v->n; t0 += IV_TILE) {
        const int nr = v->n - t0 < IV_TILE ? v->n - t0 : IV_TILE, nq = (nr + 3) / 4;
        const uint16_t *p = v->params + (size_t)t0 * v->param_stride;
        if (v->param_stride != (size_t)nw) {
            for (int r = 0; r < nr; r++)
                memcpy(pw + (size_t)r * nw, p + (size_t)r * v->param_stride, (size_t)nw * 2);
            p = pw;
        }
        for (int q = 0; q < nq; q++) {
            const int rows = nr - 4 * q < 4 ? nr - 4 * q : 4, words = rows * nw;
            const __m512i raw = _mm512_maskz_loadu_epi16(
                (__mmask32)(words >= 32 ? 0xFFFFFFFFu : (1u << words) - 1u),
                p + (size_t)4 * q * nw);
            const __m512 lo = _mm512_cvtph_ps(_mm512_castsi512_si256(raw));
            const __m512 hi = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(raw, 1));
            const __m512 d = _mm512_maskz_permutex2var_ps(gm, lo, dsel, hi);
            _mm512_store_ps(dm[0][q], d);
            if (asym) /* m + 8 d: the codes meet the weights centred, c - 8 */
                _mm512_store_ps(dm[1][q],
                                _mm512_fmadd_ps(d, _mm512_set1_ps(8.0f),
                                                _mm512_maskz_permutex2var_ps(gm, lo, msel, hi)));
        }
        for (int h = 0; h < HB; h++) {
            const float *wh = w + (size_t)h * w_stride + t0;
            if (nr == IV_TILE)
                ivals_weights(bits, asym, 1, nk, IV_QUADS, nr, wh, dm, pick, gsel, h, wop, zl[h],
                              dl[h], &ms[h]);
            else
                ivals_weights(bits, asym, 0, nk, nq, nr, wh, dm, pick, gsel, h, wop, zl[h],
                              dl[h], &ms[h]);
        }
        const iv_tile tl = {(const uint8_t(*)[4][4][64])wop, (const int32_t(*)[4][16])zl,
                            (const float(*)[4][16])dl, fo};
        for (int k = 0; k < nk; k++) {
            if (bits == 8) {
                if (k == 0) ivals_pass(v, 8, HB, 0, 1, 0, 0, t0, nr, &tl, pf, l2);
                else        ivals_pass(v, 8, HB, 0, 0, k, k, t0, nr, &tl, pf, l2);
                continue;
            }
            if (k == 0) ivals_pass(v, 4, HB, 0, 1, 0, 0, t0, nr, &tl, pf, l2);
            else        ivals_pass(v, 4, HB, 0, 0, k, 2 * k, t0, nr, &tl, pf, l2);
            ivals_pass(v, 4, HB, 1, 0, k, 2 * k + 1, t0, nr, &tl, pf, l2);
        }
    }
    for (int h = 0; h < HB; h++) {
        _Alignas(64) float m[16];                 /* [group][row] */
        _mm512_store_ps(m, ms[h]);
        float *oh = out + (size_t)h * hd;
        for (int pass = 0; pass < npass; pass++)
            for (int j = 0; j < 4; j++)
                for (int L = 0; L < 4; L++)
                    for (int i = 0; i < 4; i++) {
                        const int e = ivals_elem(bits, bits == 4 ? pass / 2 : pass,
                                                 bits == 4 ? pass % 2 : 0, j, L, i);
                        oh[e] += fo[h][pass][j][4 * L + i];
                    }
        for (int g = 0; asym && g < ng; g++) {
            const float mg = (m[4 * g] + m[4 * g + 1]) + (m[4 * g + 2] + m[4 * g + 3]);
            for (int e = g * v->group; e < (g + 1) * v->group; e++) oh[e] += mg;
        }
    }
}

static KVB_INLINE KVB_IV void ivals_fmt(const kvb_qrows *v, const int bits, const int asym, int g,
                                        const float *w, size_t w_stride, float *out)
{
    for (int h0 = 0; h0 < g;) {
        const int left = g - h0, hb = left >= 4 ? 4 : left >= 2 ? 2 : 1;
        const float *wh = w + (size_t)h0 * w_stride;
        float *oh = out + (size_t)h0 * v->head_dim;
        switch (hb) {
        case 4:  ivals_heads(v, bits, asym, 4, wh, w_stride, oh); break;
        case 2:  ivals_heads(v, bits, asym, 2, wh, w_stride, oh); break;
        default: ivals_heads(v, bits, asym, 1, wh, w_stride, oh); break;
        }
        h0 += hb;
    }
}

/* Whether every weight of the g heads is >= 0 (a NaN is not). */
static KVB_IV int weights_nonneg(int g, int n, const float *w, size_t w_stride)
{
    for (int h = 0; h < g; h++) {
        const float *wh = w + (size_t)h * w_stride;
        int t = 0;
        for (; t + 16 <= n; t += 16)
            if (_mm512_cmp_ps_mask(_mm512_loadu_ps(wh + t), _mm512_setzero_ps(), _CMP_NGE_UQ))
                return 0;
        for (; t < n; t++)
            if (!(wh[t] >= 0.0f)) return 0;
    }
    return 1;
}

static KVB_IV void accum_int8(const kvb_qrows *v, int g, const float *w, size_t w_stride,
                              float *out, float *scratch)
{
    if (!ivals_fits(v) || !weights_nonneg(g, v->n, w, w_stride)) {
        kvb_qaccum_avx512(v, g, w, w_stride, out, scratch);
        return;
    }
    if (v->fmt->bits == 8)  ivals_fmt(v, 8, 0, g, w, w_stride, out);
    else if (v->fmt->asym)  ivals_fmt(v, 4, 1, g, w, w_stride, out);
    else                    ivals_fmt(v, 4, 0, g, w, w_stride, out);
}

static const kvb_qkernels avx512_vnni = {
    .name = "avx512-vnni",
    .rounds_query = 1,
    .scores = scores_vnni,
    .accum = kvb_qaccum_avx512,
    .softmax_exp = softmax_exp_avx512,
};

static const kvb_qkernels avx512_vnni_int8 = {
    .name = "avx512-vnni-int8",
    .rounds_query = 1,
    .rounds_weights = ivals_fits,   /* the rows accum_int8 rounds */
    .scores = scores_vnni,
    .accum = accum_int8,
    .softmax_exp = softmax_exp_avx512,
};

const kvb_qkernels *kvb_qkernels_avx512_vnni(void)
{
    return kvb_qkernels_avx512() && __builtin_cpu_supports("avx512vnni") ? &avx512_vnni : NULL;
}

/* The same CPU features, plus AVX512-VBMI for the weight bytes' permute. */
const kvb_qkernels *kvb_qkernels_avx512_vnni_int8(void)
{
    return kvb_qkernels_avx512_vnni() && __builtin_cpu_supports("avx512vbmi") ? &avx512_vnni_int8
                                                                               : NULL;
}

#else
const kvb_qkernels *kvb_qkernels_avx512_vnni(void) { return NULL; }
const kvb_qkernels *kvb_qkernels_avx512_vnni_int8(void) { return NULL; }
#endif
