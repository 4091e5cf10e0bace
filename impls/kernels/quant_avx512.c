/* quant_avx512.c: the AVX-512 fused loops of quant.h for 8-, 4- and 2-bit
 * codes, head_dim and group multiples of 32 (the AVX512-VNNI table,
 * quant_vnni.c, takes its values loop and its float scores from here:
 * kvb_qscores_avx512 and kvb_qaccum_avx512).
 *
 * Work unit: a chunk of 32 values of one row (a group holds group/32 chunks).
 * The chunk's codes are widened to two vectors of 16 floats and dequantized
 * with one FMA each (x' = d*c + a; the value passes look 4-bit codes up in a
 * 16-entry table instead, bit for bit the same: q4_pick, q4_lookup); every
 * query head of the GQA group then uses them, so a row is read and converted
 * once per KV head. 4-bit chunks come out as (even elements, odd elements):
 * queries are permuted into that order once per call and the value sums are
 * un-permuted once at the end.
 * Scores keep one accumulator per (head, row) for blocks of 4 such pairs, whose
 * horizontal sums share one shuffle tree; values walk a tile of rows per chunk
 * with two accumulators per head, so sums stay in registers. Format, head and
 * row counts are compile-time constants of each inlined instance, so every
 * accumulator lives in a register.
 * Compiled for any x86-64 with function-level target attributes; called only
 * when CPUID reports AVX-512F/BW/VL/DQ, FMA and F16C. Elsewhere the table is NULL. */
#include "quant.h"

#include <math.h>

/* GCC on x86-64 only: clang's __builtin_cpu_supports lacks some of these
 * feature names; other compilers and CPUs get the portable table. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <string.h>

#include "simd_avx512.h"

/* value rows per tile; how far ahead to prefetch: about 2 KiB of codes and at
 * least 4 rows. q8 and q4 want different row counts (docs/tuning.md); a byte
 * distance gives each its better one. */
enum { TILE = 64, PF_BYTES = 2048 };

static inline size_t pf_rows(size_t stride) { size_t r = PF_BYTES / stride; return r < 4 ? 4 : r; }

/* Chunk c of a row (32 codes) as floats, in chunk order. */
static KVB_INLINE KVB_AVX512 void load_chunk(const int bits, const uint8_t *row, int c, __m512 *x0,
                                             __m512 *x1)
{
    if (bits == 8) {
        const uint8_t *p = row + 32 * c;
        *x0 = _mm512_cvtepi32_ps(
            _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)p)));
        *x1 = _mm512_cvtepi32_ps(
            _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p + 16))));
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
        __m512i b =
            _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(row + 16 * c)));
        *x0 = _mm512_cvtepi32_ps(_mm512_and_si512(b, _mm512_set1_epi32(15)));
        *x1 = _mm512_cvtepi32_ps(_mm512_srli_epi32(b, 4));
    }
}

/* d and a (x' = d*c + a) of group gi of a row whose words start at p, broadcast. */
static KVB_INLINE KVB_AVX512 void group_coeffs(const int asym, const int zero, const uint16_t *p,
                                               int gi, __m512 *d, __m512 *a)
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

/* Chunk c of a 4-bit row through a 16-entry table: vpermps reads the low 4
 * bits of each widened byte (the low nibble, or after a shift the high one) as
 * the index, so no mask and no conversion. With lut = 0..15 it gives the codes
 * as load_chunk does, bit for bit, in 4 vector instructions instead of 5. The
 * value passes use it; the key passes and the 2-bit codes do not: there the
 * same swap measured slower, the shuffle port being busy with the key passes'
 * sum trees (docs/tuning.md). */
static KVB_INLINE KVB_AVX512 void q4_pick(const uint8_t *row, int c, __m512 lut, __m512 *x0,
                                          __m512 *x1)
{
    const __m512i b =
        _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(row + 16 * c)));
    *x0 = _mm512_permutexvar_ps(b, lut);
    *x1 = _mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), lut);
}

static KVB_INLINE KVB_AVX512 __m512 q4_iota(void)
{
    return _mm512_set_ps(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
}

/* Position in chunk order of element e of a 32-value chunk. */
static int chunk_pos(int bits, int e)
{
    if (bits == 8) return e;
    if (bits == 4) return (e & 1) * 16 + e / 2;
    return ((e & 3) >> 1) * 16 + (e & 1) * 8 + e / 4;     /* 2-bit: code r of byte j */
}

/* Scores of rows t..t+R-1 for heads 0..HB-1 (queries qp in chunk order). */
static KVB_INLINE KVB_AVX512 void scores_block(const kvb_qrows *k, const int bits, const int asym,
                                               const int zero, const int HB, const int R,
                                               const float *qp, int t, float scale, float *s,
                                               size_t s_stride, size_t ahead)
{
    const int hd = k->head_dim, cpg = k->group / 32, ng = hd / k->group;
    const uint8_t *row[4];
    const uint16_t *p[4];
    __m512 acc[8];
    for (int r = 0; r < R; r++) {
        row[r] = k->codes + (size_t)(t + r) * k->code_stride;
        p[r] = k->params ? k->params + (size_t)(t + r) * k->param_stride : NULL;
        /* a row is little work: ask for rows ~2 KiB ahead so several misses overlap */
        for (size_t b = 0; b < k->code_stride; b += 64)
            _mm_prefetch((const char *)row[r] + ahead + b, _MM_HINT_T0);
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
    store_scores(acc, HB, R, t, scale, s, s_stride);
}

/* Every row for heads 0..HB-1: blocks of 4 / HB rows (1 for 8 heads), then single rows. */
static KVB_INLINE KVB_AVX512 void scores_heads(const kvb_qrows *k, const int bits, const int asym,
                                               const int zero, const int HB, const float *qp,
                                               float scale, float *s, size_t s_stride)
{
    const int R = HB >= 4 ? 1 : 4 / HB;
    const size_t ahead = pf_rows(k->code_stride) * k->code_stride;   /* one division a call */
    int t = 0;
    for (; t + R <= k->n; t += R)
        scores_block(k, bits, asym, zero, HB, R, qp, t, scale, s, s_stride, ahead);
    for (; t < k->n; t++)
        scores_block(k, bits, asym, zero, HB, 1, qp, t, scale, s, s_stride, ahead);
}

static KVB_INLINE KVB_AVX512 void scores_fmt(const kvb_qrows *k, const int bits, const int asym,
                                             const int zero, int g, const float *q, float scale,
                                             float *s, size_t s_stride, float *scratch)
{
    const int hd = k->head_dim;
    float *qp = scratch;                                      /* [g][head_dim], chunk order */
    /* per-channel keys call this once per block of tokens: keep it cheap */
    if (bits == 8) memcpy(qp, q, (size_t)g * hd * sizeof *qp);
    else
        for (int h = 0; h < g; h++)
            for (int c0 = 0; c0 < hd; c0 += 32)
                for (int e = 0; e < 32; e++)
                    qp[(size_t)h * hd + c0 + chunk_pos(bits, e)] = q[(size_t)h * hd + c0 + e];
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
static KVB_INLINE KVB_AVX512 void accum_row(const kvb_qrows *v, const int bits, const int asym,
                                            const int zero, const int HB, const float *w,
                                            size_t w_stride, int t, int c, int gi, __m512 *a0,
                                            __m512 *a1)
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

/* The same for one or two heads: w x' = (w d) c + (w a), so the codes are
 * scaled by one FMA per head and the w a terms are summed as scalars (ca),
 * instead of dequantizing first: 3 vector operations per 16 values, not 4. */
static KVB_INLINE KVB_AVX512 void accum_row_folded(const kvb_qrows *v, const int bits,
                                                   const int asym, const int zero, const int HB,
                                                   const float *w, size_t w_stride, int t, int c,
                                                   int gi, __m512 *a0, __m512 *a1, float *ca)
{
    if (c == 0) {
        const char *nr = (const char *)(v->codes + (size_t)(t + TILE) * v->code_stride);
        for (size_t b = 0; b < v->code_stride; b += 64) _mm_prefetch(nr + b, _MM_HINT_T0);
    }
    __m512 x0, x1;
    load_chunk(bits, v->codes + (size_t)t * v->code_stride, c, &x0, &x1);
    const uint16_t *p = v->params + (size_t)t * v->param_stride + (asym ? 2 * gi : gi);
    float d = _cvtsh_ss(p[0]), a = asym ? _cvtsh_ss(p[1]) : -(float)zero * d;
    for (int h = 0; h < HB; h++) {
        float wt = w[(size_t)h * w_stride + t];
        __m512 wd = _mm512_set1_ps(wt * d);
        a0[h] = _mm512_fmadd_ps(wd, x0, a0[h]);
        a1[h] = _mm512_fmadd_ps(wd, x1, a1[h]);
        ca[h] += wt * a;
    }
}

/* out (chunk order) += sum over rows of w * x' for heads 0..HB-1. Each chunk
 * pass over a tile feeds U = 4/HB sets of accumulators in turn (U rows at a
 * time), so no single FMA chain limits a pass with few heads. For one or two
 * heads the rows are folded (accum_row_folded) and the sums of w a of each
 * group land in cst[HB][groups]; with more heads a row is dequantized once and
 * shared by all of them. */
static KVB_INLINE KVB_AVX512 void accum_heads(const kvb_qrows *v, const int bits, const int asym,
                                              const int zero, const int HB, const float *w,
                                              size_t w_stride, float *op, float *cst)
{
    const int cpg = v->group / 32, ng = v->head_dim / v->group, U = HB >= 4 ? 1 : 4 / HB;
    const int fold = HB <= 2;
    for (int t0 = 0; t0 < v->n; t0 += TILE) {
        int t1 = t0 + TILE < v->n ? t0 + TILE : v->n;
        for (int gi = 0; gi < ng; gi++)
            for (int c = gi * cpg; c < (gi + 1) * cpg; c++) {
                __m512 a0[8], a1[8];                          /* [U][HB] */
                float ca[8];
                for (int j = 0; j < U * HB; j++) {
                    a0[j] = a1[j] = _mm512_setzero_ps();
                    ca[j] = 0.0f;
                }
                int t = t0;
                for (; t + U <= t1; t += U)
                    for (int u = 0; u < U; u++) {
                        if (fold)
                            accum_row_folded(v, bits, asym, zero, HB, w, w_stride, t + u, c, gi,
                                             a0 + u * HB, a1 + u * HB, ca + u * HB);
                        else      accum_row(v, bits, asym, zero, HB, w, w_stride, t + u, c, gi,
                                            a0 + u * HB, a1 + u * HB);
                    }
                for (; t < t1; t++) {
                    if (fold)
                        accum_row_folded(v, bits, asym, zero, HB, w, w_stride, t, c, gi, a0, a1,
                                         ca);
                    else      accum_row(v, bits, asym, zero, HB, w, w_stride, t, c, gi, a0, a1);
                }
                for (int h = 0; h < HB; h++) {
                    __m512 s0 = a0[h], s1 = a1[h];
                    float sc = ca[h];
                    for (int u = 1; u < U; u++) {
                        s0 = _mm512_add_ps(s0, a0[u * HB + h]);
                        s1 = _mm512_add_ps(s1, a1[u * HB + h]);
                        sc += ca[u * HB + h];
                    }
                    float *o = op + (size_t)h * v->head_dim + 32 * c;
                    _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), s0));
                    _mm512_storeu_ps(o + 16, _mm512_add_ps(_mm512_loadu_ps(o + 16), s1));
                    if (fold && c == gi * cpg)
                        cst[h * ng + gi] += sc; /* once per group, not per chunk */
                }
            }
    }
}

/* One or two heads over rows of NC chunks (head_dim 32 NC, NC constant): each
 * row is read once, front to back, all its chunks going into 2 NC accumulators
 * per head held in registers; the codes are scaled by w d per group (folded,
 * as in accum_row_folded). Sequential rows suit the hardware prefetcher. */
static KVB_INLINE KVB_AVX512 void accum_rows_nc(const kvb_qrows *v, const int bits, const int asym,
                                                const int zero, const int HB, const int NC,
                                                const float *w, size_t w_stride, float *op,
                                                float *cst)
{
    const int cpg = v->group / 32, ng = v->head_dim / v->group, nw = ng * (asym ? 2 : 1);
    const __mmask16 wm = (__mmask16)((1u << nw) - 1u);       /* head_dim <= 128: nw <= 8 */
    const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
    __m512 acc[2][2 * 8];                                  /* [head][2 * chunk] */
    __m512 asum[2];                                        /* [head], lanes: groups */
    _Alignas(64) float wd[2][16];                          /* [head][group]: w d of the row */
    for (int h = 0; h < HB; h++) {
        asum[h] = _mm512_setzero_ps();
        for (int j = 0; j < 2 * NC; j++) acc[h][j] = _mm512_setzero_ps();
    }
    const size_t ahead = pf_rows(v->code_stride);          /* rows; one division a call */
    for (int t = 0; t < v->n; t++) {
        const uint8_t *row = v->codes + (size_t)t * v->code_stride;
        const uint16_t *p = v->params + (size_t)t * v->param_stride;
        for (size_t b = 0; b < v->code_stride; b += 64)
            _mm_prefetch((const char *)row + ahead * v->code_stride + b, _MM_HINT_T0);
        _mm_prefetch((const char *)(p + ahead * v->param_stride), _MM_HINT_T0);
        /* the row's words in one conversion; w d and w a for every group at once */
        const __m512 x = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(wm, p));
        const __m512 dv = asym ? _mm512_permutexvar_ps(ev, x) : x;
        const __m512 av = asym ? _mm512_permutexvar_ps(od, x)
                               : _mm512_mul_ps(_mm512_set1_ps(-(float)zero), x);
        for (int h = 0; h < HB; h++) {
            const __m512 wt = _mm512_set1_ps(w[(size_t)h * w_stride + t]);
            _mm512_store_ps(wd[h], _mm512_mul_ps(wt, dv));
            asum[h] = _mm512_add_ps(asum[h], _mm512_mul_ps(wt, av));
        }
        for (int c = 0; c < NC; c++) {
            const int gi = c / cpg;
            __m512 x0, x1;
            if (bits == 4) q4_pick(row, c, q4_iota(), &x0, &x1);
            else           load_chunk(bits, row, c, &x0, &x1);
            for (int h = 0; h < HB; h++) {
                const __m512 wdb = _mm512_set1_ps(wd[h][gi]);
                acc[h][2 * c] = _mm512_fmadd_ps(wdb, x0, acc[h][2 * c]);
                acc[h][2 * c + 1] = _mm512_fmadd_ps(wdb, x1, acc[h][2 * c + 1]);
            }
        }
    }
    for (int h = 0; h < HB; h++) {
        _Alignas(64) float al[16];
        _mm512_store_ps(al, asum[h]);
        for (int g = 0; g < ng; g++) cst[h * ng + g] += al[g];
    }
    for (int h = 0; h < HB; h++)
        for (int c = 0; c < NC; c++) {
            float *o = op + (size_t)h * v->head_dim + 32 * c;
            _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), acc[h][2 * c]));
            _mm512_storeu_ps(o + 16, _mm512_add_ps(_mm512_loadu_ps(o + 16), acc[h][2 * c + 1]));
        }
}

/* d and a (x' = d*c + a) of every group of rows t0..t1-1 into co[t - t0][0][g]
 * and co[t - t0][1][g]: one conversion per row instead of one per group and
 * chunk pass, the same f32 values as group_coeffs. */
static KVB_INLINE KVB_AVX512 void rows_coeffs(const kvb_qrows *v, const int asym, const int zero,
                                              int t0, int t1, float (*co)[2][16])
{
    const int ng = v->head_dim / v->group, nw = ng * (asym ? 2 : 1);
    if (nw > 16) {
        for (int t = t0; t < t1; t++) {
            const uint16_t *p = v->params + (size_t)t * v->param_stride;
            for (int g = 0; g < ng; g++) {
                float d = _cvtsh_ss(p[asym ? 2 * g : g]);
                co[t - t0][0][g] = d;
                co[t - t0][1][g] = asym ? _cvtsh_ss(p[2 * g + 1]) : -(float)zero * d;
            }
        }
        return;
    }
    const __mmask16 wm = (__mmask16)((1u << nw) - 1u);
    const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
    for (int t = t0; t < t1; t++) {
        __m512 x = _mm512_cvtph_ps(
            _mm256_maskz_loadu_epi16(wm, v->params + (size_t)t * v->param_stride));
        if (asym) {
            _mm512_storeu_ps(co[t - t0][0], _mm512_permutexvar_ps(ev, x));
            _mm512_storeu_ps(co[t - t0][1], _mm512_permutexvar_ps(od, x));
        } else {
            _mm512_storeu_ps(co[t - t0][0], x);
            _mm512_storeu_ps(co[t - t0][1], _mm512_mul_ps(_mm512_set1_ps(-(float)zero), x));
        }
    }
}

/* 4-bit chunks c and c + 1 of a row, dequantized, as load_chunk and one FMA
 * each give them, bit for bit: the table holds the 16 values a group's codes
 * can take, d*i + a for i = 0..15 (the same single-rounded FMA). 5 vector
 * instructions a chunk instead of 7: one FMA per group and row instead of one
 * per 16 values. */
static KVB_INLINE KVB_AVX512 void q4_lookup(const uint8_t *row, int c, __m512 d0, __m512 a0,
                                            __m512 d1, __m512 a1, __m512 *x)
{
    const __m512 iota = q4_iota();
    q4_pick(row, c, _mm512_fmadd_ps(iota, d0, a0), &x[0], &x[1]);
    q4_pick(row, c + 1, _mm512_fmadd_ps(iota, d1, a1), &x[2], &x[3]);
}

/* Four heads (GQA 4:1), an even number of chunks: tiles of rows walked two
 * chunks (64 values) at a time with 4 x 4 sums in registers, so each weight is
 * broadcast once per row and pair, and each row's codes are widened once; the
 * tile's d and a words are converted once first (rows_coeffs). */
static KVB_INLINE KVB_AVX512 void accum_4heads(const kvb_qrows *v, const int bits, const int asym,
                                               const int zero, const float *w, size_t w_stride,
                                               float *op)
{
    const int nc = v->head_dim / 32, cpg = v->group / 32;
    _Alignas(64) float co[TILE][2][16];                  /* [row][d, a][group] */
    for (int t0 = 0; t0 < v->n; t0 += TILE) {
        int t1 = t0 + TILE < v->n ? t0 + TILE : v->n;
        rows_coeffs(v, asym, zero, t0, t1, co);
        for (int c = 0; c < nc; c += 2) {
            const int g0 = c / cpg, g1 = (c + 1) / cpg;
            __m512 acc[4][4];
            for (int h = 0; h < 4; h++)
                for (int j = 0; j < 4; j++) acc[h][j] = _mm512_setzero_ps();
            for (int t = t0; t < t1; t++) {
                const uint8_t *row = v->codes + (size_t)t * v->code_stride;
                if (c == 0) {
                    const char *nr = (const char *)(row + (size_t)TILE * v->code_stride);
                    for (size_t b = 0; b < v->code_stride; b += 64)
                        _mm_prefetch(nr + b, _MM_HINT_T0);
                }
                __m512 x[4];
                const float(*cf)[16] = co[t - t0];
                const __m512 d0 = _mm512_set1_ps(cf[0][g0]), a0 = _mm512_set1_ps(cf[1][g0]);
                const __m512 d1 = _mm512_set1_ps(cf[0][g1]), a1 = _mm512_set1_ps(cf[1][g1]);
                if (bits == 4)
                    q4_lookup(row, c, d0, a0, d1, a1, x);
                else {
                    load_chunk(bits, row, c, &x[0], &x[1]);
                    load_chunk(bits, row, c + 1, &x[2], &x[3]);
                    x[0] = _mm512_fmadd_ps(x[0], d0, a0);
                    x[1] = _mm512_fmadd_ps(x[1], d0, a0);
                    x[2] = _mm512_fmadd_ps(x[2], d1, a1);
                    x[3] = _mm512_fmadd_ps(x[3], d1, a1);
                }
                for (int h = 0; h < 4; h++) {
                    __m512 wt = _mm512_set1_ps(w[(size_t)h * w_stride + t]);
                    for (int j = 0; j < 4; j++) acc[h][j] = _mm512_fmadd_ps(wt, x[j], acc[h][j]);
                }
            }
            for (int h = 0; h < 4; h++)
                for (int j = 0; j < 4; j++) {
                    float *o = op + (size_t)h * v->head_dim + 32 * c + 16 * j;
                    _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), acc[h][j]));
                }
        }
    }
}

static KVB_INLINE KVB_AVX512 void accum_fmt(const kvb_qrows *v, const int bits, const int asym,
                                            const int zero, int g, const float *w, size_t w_stride,
                                            float *out, float *scratch)
{
    const int hd = v->head_dim, ng = hd / v->group;
    float *op = scratch;                                      /* [g][head_dim], chunk order */
    float *cst = scratch + (size_t)g * hd;                    /* [g][groups]: folded w a sums */
    memset(op, 0, ((size_t)g * hd + (size_t)g * ng) * sizeof *op);
    for (int h0 = 0; h0 < g;) {
        int left = g - h0, hb = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
        const float *wh = w + (size_t)h0 * w_stride;
        float *oh = op + (size_t)h0 * hd, *ch = cst + (size_t)h0 * ng;
        /* head_dim 64 and 128 with one or two heads: whole rows in registers */
        if (hb <= 2 && (hd == 64 || hd == 128)) {
            hb = left >= 2 ? 2 : 1;
            if (hd == 128 && hb == 1)
                accum_rows_nc(v, bits, asym, zero, 1, 4, wh, w_stride, oh, ch);
            else if (hd == 128)
                accum_rows_nc(v, bits, asym, zero, 2, 4, wh, w_stride, oh, ch);
            else if (hb == 1)
                accum_rows_nc(v, bits, asym, zero, 1, 2, wh, w_stride, oh, ch);
            else
                accum_rows_nc(v, bits, asym, zero, 2, 2, wh, w_stride, oh, ch);
            h0 += hb;
            continue;
        }
        switch (hb) {
        case 8:  accum_heads(v, bits, asym, zero, 8, wh, w_stride, oh, ch); break;
        case 4:
            if ((hd / 32) % 2 == 0) accum_4heads(v, bits, asym, zero, wh, w_stride, oh);
            else                    accum_heads(v, bits, asym, zero, 4, wh, w_stride, oh, ch);
            break;
        case 2:  accum_heads(v, bits, asym, zero, 2, wh, w_stride, oh, ch); break;
        default: accum_heads(v, bits, asym, zero, 1, wh, w_stride, oh, ch); break;
        }
        h0 += hb;
    }
    for (int h = 0; h < g; h++)
        for (int e = 0; e < hd; e++)
            out[(size_t)h * hd + e] +=
                op[(size_t)h * hd + (e / 32) * 32 + chunk_pos(bits, e % 32)] +
                cst[(size_t)h * ng + e / v->group];
}

/* One instance per format: (bits, asym, zero) of q8, q4, q4_1 and q2 as
 * constants. Without params (per-channel keys) the codes enter raw. */
KVB_AVX512 void kvb_qscores_avx512(const kvb_qrows *k, int g, const float *q, float scale,
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

KVB_AVX512 void kvb_qaccum_avx512(const kvb_qrows *v, int g, const float *w, size_t w_stride,
                                  float *out, float *scratch)
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

static const kvb_qkernels avx512 = {
    .name = "avx512",
    .rounds_query = 0,
    .scores = kvb_qscores_avx512,
    .accum = kvb_qaccum_avx512,
    .softmax_exp = softmax_exp_avx512,
};

const kvb_qkernels *kvb_qkernels_avx512(void) { return kvb_have_avx512() ? &avx512 : NULL; }

#else
const kvb_qkernels *kvb_qkernels_avx512(void) { return NULL; }
#endif
