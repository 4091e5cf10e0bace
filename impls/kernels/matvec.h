/* matvec.h: the decode step's matrix-vector product over weights kept in their
 * stored type: y[r] = sum_i W[r][i] x[i] for rows r in [r0, r1), W of
 * any kvb_wtype (kvb_types.h), x and y f32.
 *
 * Contract. Pure functions over caller-owned memory: no allocation, no global
 * state. W is `out` rows of `in` values, row r at w + r * kvb_wtype_row_bytes(
 * wt, in); only rows r0..r1-1 are read and only y[r0..r1) written, so threads
 * may split the rows (kvb_matvec_pool). Arithmetic is f32 with several
 * independent partial sums per row; every kernel row is held by the tests to
 * the float64 product of the dequantized weights. One exception, flagged
 * rounds_x: the VNNI q8_0 and q4_k rows round x to int8 per block of 32 (as
 * kvb_qquant_query, quant.h: qi = round(x / sx), sx = max|x| / 127) and are
 * exact to float rounding for that rounded x; against the f32 x the error is
 * that of the rounding, |x - x'| <= sx/2 per value: 0.0037 relative L2 over
 * 56 rows of uniform weights and x at in = 4096 (tests/test_matvec.c). It is
 * what llama.cpp does with these weights and the faster row on the Xeon VM
 * (docs/models.md), but "auto" never picks it: --matvec avx512-vnni asks. */
#ifndef KVB_MATVEC_H
#define KVB_MATVEC_H

#include <stddef.h>
#include "../types/kvb_types.h"
#include "pool.h"

typedef void (*kvb_matvec_fn)(const void *w, int in, const float *x, float *y, int r0, int r1);

/* The multi-vector product of the batched decode step: y[b][r] = sum_i W[r][i]
 * x[b][i] for b < B and r in [r0, r1); x is [B][in], y is [B][ldy] (ldy >=
 * out). The SIMD rows take columns in blocks of 512 (x's block stays in L1),
 * every row of a panel (AVX-512: 64 rows; AVX2: [r0, r1)) through a block
 * before the next; each 16 (AVX2: 8)
 * weights are loaded and converted once per pass of up to 8 vectors and FMA'd
 * against them (larger B: passes of 8, 4, 2, 1 over weights still in L1), so W
 * is read from memory once for all B. x is used in f32 as given (no
 * rounding); the sums run in another order than the one-vector row's, so the
 * two agree to float rounding, not bit for bit. */
typedef void (*kvb_matvecn_fn)(const void *w, int in, int B, const float *x, float *y, int ldy,
                               int r0, int r1);
enum { KVB_MATVECN_PASS = 8 };

/* A kernel file's B-vector rows, mvn_f32 .. mvn_q8_0: each calls
 * body(type, w, in, B, x, y, ldy, r0, r1) with its type; attr is the file's
 * target attribute (empty for none). */
#define KVB_MATVECN_ONE(attr, body, name, wt)                                                \
    static attr void name(const void *w, int in, int B, const float *x, float *y, int ldy,  \
                          int r0, int r1)                                                   \
    {                                                                                       \
        body(wt, w, in, B, x, y, ldy, r0, r1);                                              \
    }
#define KVB_MATVECN_ROWS(attr, body)                                                         \
    KVB_MATVECN_ONE(attr, body, mvn_f32, KVB_WTYPE_F32)                                     \
    KVB_MATVECN_ONE(attr, body, mvn_f16, KVB_WTYPE_F16)                                     \
    KVB_MATVECN_ONE(attr, body, mvn_bf16, KVB_WTYPE_BF16)                                   \
    KVB_MATVECN_ONE(attr, body, mvn_q8_0, KVB_WTYPE_Q8_0)

/* The byte of a stored row where value e starts (for a block type, e within
 * its block gives the block's start). */
static inline size_t kvb_wrow_offset(kvb_wtype wt, int e)
{
    const kvb_wtype_traits *tr = kvb_wtype_traits_of(wt);
    return tr ? (size_t)(e / tr->block) * tr->block_bytes : 0;
}

/* One implementation for one weight type: a row of the const table
 * kvb_matvec_find looks up, fastest first. */
typedef struct kvb_matvec_kernel {
    const char   *name;       /* "avx512-vnni", "avx512", "avx2", "portable" */
    kvb_wtype     wtype;
    int           multiple;   /* `in` must be a multiple of it */
    int           rounds_x;   /* 1: x rounded to int8 per block (above) */
    int         (*usable)(void);   /* 1: this CPU and build have its instructions */
    kvb_matvec_fn run;        /* NULL where the build lacks it */
    kvb_matvecn_fn runn;      /* the B-vector product; NULL where the build lacks it,
                               * and for rows that round x */
} kvb_matvec_kernel;

/* Every row, fastest first, for the tests and benchmarks (NULL out of range). */
int kvb_matvec_kernel_count(void);
const kvb_matvec_kernel *kvb_matvec_kernel_at(int i);

/* By name for weight type wt and rows of `in` values; NULL or "auto" gives the
 * fastest this CPU runs that does not round x (NULL only when `in` does not
 * suit wt: q8_0 needs a multiple of 32). A named kernel the CPU lacks or whose
 * multiple does not divide `in` gives NULL and says why. */
const kvb_matvec_kernel *kvb_matvec_find(const char *name, kvb_wtype wt, int in, char *why,
                                         size_t why_len);

/* y[0..out) over the pool's threads (NULL pool: the caller alone), rows split
 * in pieces of whole multiples of 16 rows (but a product's last), large first
 * and shrinking toward the end, so no thread waits long for another (matvec.c). */
void kvb_matvec_pool(kvb_pool *pool, const kvb_matvec_kernel *k, const void *w, int out, int in,
                     const float *x, float *y);

/* Several products in one hand-off to the pool (q, k and v of a layer share x;
 * so do the gate and up projections): each task's rows split as by
 * kvb_matvec_pool, all pieces of all tasks spread over the threads at once,
 * so there is one wait where there were n. Each y as kvb_matvec_pool's. */
typedef struct kvb_matvec_task {
    const kvb_matvec_kernel *k;
    const void *w;
    int out, in;
    const float *x;
    float *y;
} kvb_matvec_task;
enum { KVB_MATVEC_TASKS_MAX = 4 };
void kvb_matvec_pool_many(kvb_pool *pool, const kvb_matvec_task *t, int n);

/* B vectors at once (kvb_matvecn_fn), in one hand-off to the pool: each
 * task's rows split and spread as by kvb_matvec_pool_many; k->runn must be
 * set. y[b] of task i is t[i].y + b * t[i].out. */
typedef struct kvb_matvecn_task {
    const kvb_matvec_kernel *k;
    const void *w;
    int out, in, B;
    const float *x;           /* [B][in] */
    float *y;                 /* [B][out] */
} kvb_matvecn_task;
void kvb_matvecn_pool_many(kvb_pool *pool, const kvb_matvecn_task *t, int n);

/* The SIMD rows, for the table in matvec.c: matvec_avx512.c's and
 * matvec_avx2.c's for f32, f16, bf16 and q8_0 (AVX-512 also the VNNI q8_0
 * row), matvec_qk_avx512.c's for q4_0, q4_k and q6_k. The 4- and 6-bit types
 * have no AVX2 rows: auto takes the portable one there. */
enum { KVB_MATVEC_BASE_ROWS = 4, KVB_MATVEC_QK_ROWS = 4 };

/* matvec_avx512.c's rounding of x for the VNNI rows (x86-64 GCC builds only;
 * call only where kvb_matvec_usable_vnni() says 1): nb blocks of 32 values to
 * xq [nb][32], sx [nb] and corr [nb] = -16 * the block's sum of xq, exactly as
 * kvb_qquant_query rounds. */
void kvb_matvec_round_x(const float *x, int nb, int8_t *xq, float *sx, int *corr);
int kvb_matvec_usable_vnni(void);
extern const kvb_matvec_kernel kvb_matvec_avx512_rows[KVB_MATVEC_BASE_ROWS + 1];
extern const kvb_matvec_kernel kvb_matvec_avx512_qk_rows[KVB_MATVEC_QK_ROWS];
extern const kvb_matvec_kernel kvb_matvec_avx2_rows[KVB_MATVEC_BASE_ROWS];

#endif
