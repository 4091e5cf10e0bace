/* quant.h: group-wise quantization of K/V rows and the fused attention loops
 * that read the quantized data directly.
 *
 * Contract. A group is `n` consecutive values (along head_dim for per-token
 * quantization, along tokens for one channel in per-channel quantization). Every
 * format stores, per group, an f16 scale d and, for the asymmetric formats, an f16
 * minimum m; each value becomes an unsigned code c of `bits` bits and reads back as
 *     x' = d * (c - zero) + m          (zero = 2^(bits-1) for symmetric, else 0)
 * Rules (tested):
 *   - |x - x'| <= d/2 (plus float rounding) for every finite x whose group's scale
 *     fits f16: d is rounded up and m down to f16, so no code is ever clamped;
 *   - a group of zeros gives d = 0 and reads back exactly; a constant group reads
 *     back within d/2 of the constant (asymmetric: d is tiny, m carries it);
 *   - finite values whose scale would exceed f16's largest (65504) are clamped to
 *     the format's range: d = 65504, codes at their limit;
 *   - NaN and Inf are refused by the backend before quantizing (append returns
 *     KVB_STATUS_INVALID_ARG and the cache is left unchanged).
 * Codes are packed along the row in order: 8-bit one per byte; 4-bit two per
 * byte, element 2j in the low nibble; 2-bit four per byte, element 4j in the
 * lowest bits.
 *
 * The fused loops compute, in f32, exactly the dot products and weighted sums of
 * the dequantized values x' (never materializing more than one row of them): the
 * tests check them against attention over read-back values to float rounding.
 * Three implementations (tables below), picked at cache creation from CPUID:
 * portable C (one row dequantized into a scratch of head_dim floats, then
 * dot/axpy); AVX-512 (head_dim and group multiples of 32: codes widened and
 * scaled in registers, shared by every query head of a GQA group); and
 * AVX512-VNNI (the same, but key scores as int8 dot products against the
 * rounded query where a row fits its blocks). A fourth, AVX512-VNNI-int8, is
 * asked for by name only: the VNNI table whose value sums are integer too, exact
 * for weights rounded to 8 bits (rounds_weights below). */
#ifndef KVB_QUANT_H
#define KVB_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include "../types/kvb_types.h"

/* A quantized storage type's format is its traits row (types/kvb_types.h):
 * bits, asym, zero and cmax there are the parameters above. */
typedef kvb_type_traits kvb_qformat;

/* The row of a quantized storage type; NULL for f32/f16/bf16. */
const kvb_qformat *kvb_qformat_of(kvb_dtype dt);

/* f16 words stored per group: 1 (d) or 2 (d, m). */
static inline int kvb_qparams(const kvb_qformat *f) { return f->asym ? 2 : 1; }

/* Quantizes n values x[0], x[stride], ... (all finite) into codes[0..n) (one
 * code per byte, unpacked) and the group's f16 words p[0..kvb_qparams). */
void kvb_quant_group(const kvb_qformat *f, const float *x, size_t stride, int n,
                     uint8_t *codes, uint16_t *p);

/* d and the additive term m - zero*d of a group, as f32: x' = d*c + a. */
void kvb_qgroup_coeffs(const kvb_qformat *f, const uint16_t *p, float *d, float *a);

/* Packs n codes (n * bits a multiple of 8) into n*bits/8 bytes, and back. */
void kvb_qpack(const kvb_qformat *f, const uint8_t *codes, int n, uint8_t *dst);
void kvb_qunpack(const kvb_qformat *f, const uint8_t *src, int n, uint8_t *codes);

/* Bytes of packed codes for n values. */
static inline size_t kvb_qcode_bytes(const kvb_qformat *f, int n)
{
    return (size_t)n * f->bits / 8;
}

/* Rows quantized per token: row t's packed codes start at codes + t*code_stride
 * bytes; its groups' words at params + t*param_stride (groups of `group` values
 * along head_dim, kvb_qparams words each, in order). params == NULL: the rows
 * are raw codes (x' = c), for keys quantized per channel, whose coefficients
 * the caller folds into the query (scores only). */
typedef struct kvb_qrows {
    const kvb_qformat *fmt;
    const uint8_t     *codes;
    const uint16_t    *params;
    size_t             code_stride, param_stride;
    int                n;         /* rows */
    int                head_dim;
    int                group;     /* divides head_dim */
} kvb_qrows;

/* The integer value pass (the opt-in table "avx512-vnni-int8") rounds each
 * head's products u_t = w_t d_t of a group per tile of this many rows, counted
 * from the call's first row; a tile whose largest u_t is below KVB_QWEIGHT_TINY
 * adds nothing to that group. */
enum { KVB_QWEIGHT_TILE = 64 };
#define KVB_QWEIGHT_TINY 0x1p-100f

/* One implementation of the fused loops (a `static const` table per ISA). */
typedef struct kvb_qkernels {
    const char *name;         /* "portable", "avx512", "avx512-vnni", "avx512-vnni-int8" */
    /* 1: scores of rows with d/m words use the query rounded by kvb_qround_query
     * (integer dot products); the result is exact for that query. 0: the f32 query. */
    int rounds_query;
    /* Optional, NULL: accum sums in f32, exactly. Else whether accum rounds the
     * weights of these rows (1) or sums them in f32 (0). Rounding: for each head,
     * group and tile of KVB_QWEIGHT_TILE rows, kvb_qround_weights over the tile's
     * w_t and d_t gives wq_t and delta, and accum is exact for those:
     *     out_i += sum_t delta wq_t (c_t - k) + w_t (m_t + k d_t),   k = 2^(bits-1)
     * (k = zero and m = 0 for the symmetric formats; the asymmetric ones' codes
     * are centred too, so the rounding meets small numbers).
     * The tiles follow the calls, so caches that cut the rows differently (paged
     * blocks, threads) differ by that rounding. A call with any weight < 0 or NaN
     * sums in f32 whatever this says. */
    int (*rounds_weights)(const kvb_qrows *v);
    /* scores: s[i*s_stride + t] = scale * dot(q_i, x'_t) for the g query heads
     * q: [g][head_dim], for every row t of k. */
    void (*scores)(const kvb_qrows *k, int g, const float *q, float scale,
                   float *s, size_t s_stride, float *scratch);
    /* accum: out_i += sum_t w[i*w_stride + t] * x'_t for the g heads, out: [g][head_dim]. */
    void (*accum)(const kvb_qrows *v, int g, const float *w, size_t w_stride, float *out,
                  float *scratch);
    /* softmax_exp: s[t] = exp(s[t] - max) in place over n > 0 scores; returns
     * the sum of the new values (>= 1). */
    float (*softmax_exp)(float *s, int n);
} kvb_qkernels;

/* Scratch floats scores and accum need for g heads: one dequantized row, g
 * rows of queries or sums in the order the SIMD loops hold them, and g rows'
 * worth of per-group sums. */
static inline size_t kvb_qkernels_scratch_floats(int g, int head_dim)
{
    return (size_t)(2 * g + 1) * (size_t)head_dim;
}

extern const kvb_qkernels kvb_qkernels_portable;

/* The AVX-512 tables if this CPU and build have them, else NULL. */
const kvb_qkernels *kvb_qkernels_avx512(void);
const kvb_qkernels *kvb_qkernels_avx512_vnni(void);
const kvb_qkernels *kvb_qkernels_avx512_vnni_int8(void);

/* The AVX-512 table's scores and accum, which the VNNI table shares (its values,
 * and the rows its integer scores do not take). Defined in x86-64 GCC builds
 * only; call them only where kvb_qkernels_avx512() is non-NULL. */
void kvb_qscores_avx512(const kvb_qrows *k, int g, const float *q, float scale, float *s,
                        size_t s_stride, float *scratch);
void kvb_qaccum_avx512(const kvb_qrows *v, int g, const float *w, size_t w_stride, float *out,
                       float *scratch);

/* The names kvb_options.qkernel and --qkernel take: "auto" (the fastest here,
 * never one that rounds the weights) first. */
enum { KVB_QKERNEL_COUNT = 5 };
extern const char *const kvb_qkernel_names[KVB_QKERNEL_COUNT];

/* The table called name ("portable", "avx512", "avx512-vnni", "avx512-vnni-int8";
 * auto never picks the last, which rounds the weights); NULL with why
 * set when the name is unknown or this CPU lacks it, or the shape does not
 * suit it (SIMD tables need head_dim and group multiples of 32). */
const kvb_qkernels *kvb_qkernels_find(const char *name, int head_dim, int group, char *why,
                                      size_t why_len);
int kvb_qkernels_known(const char *name);     /* NULL, "", or one of kvb_qkernel_names */

/* The query as the integer kernels see it: per 32 values, qi = round(q / sq)
 * in -127..127 with sq = max|q| / 127 (0 when all are 0). kvb_qquant_query
 * gives qi and sq (n/32 of them); kvb_qround_query gives sq * qi. n: a
 * multiple of 32. */
void kvb_qquant_query(const float *q, int n, int8_t *qi, float *sq);
void kvb_qround_query(const float *q, int n, float *out);

/* The weights as the integer value pass sees them, for n <= KVB_QWEIGHT_TILE
 * rows of one head and group: u_t = w_t d_t (w_t, d_t >= 0), amax = max u_t,
 * wq_t = round(u_t * 255 / amax) in 0..255 and delta = amax / 255, so u_t reads
 * back as delta * wq_t (within delta / 2); amax below KVB_QWEIGHT_TINY gives
 * wq_t = 0 and delta = 0. */
void kvb_qround_weights(const float *w, const float *d, int n, uint8_t *wq, float *delta);

/* The fastest table for rows of head_dim values in groups of `group`:
 * AVX512-VNNI, then AVX-512 when the CPU has it and head_dim and group are
 * multiples of 32, else portable. */
const kvb_qkernels *kvb_qkernels_pick(int head_dim, int group);

/* Portable helpers shared by both tables and by the per-channel key path. */
void  kvb_qrow_dequant(const kvb_qrows *r, int t, float *dst);
void  kvb_qrow_codes(const kvb_qrows *r, int t, float *dst);     /* x' = c */
float kvb_softmax_exp_portable(float *s, int n);

#endif
