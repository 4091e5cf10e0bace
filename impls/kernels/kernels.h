/* kernels.h: hot loops shared by backends and by the harness's recompute path.
 *
 * Contract: pure functions over caller-owned memory, no allocation, no global
 * state. Storage may be f32, f16 or bf16; arithmetic is always f32. The portable
 * C here is the reference; on x86-64 with GCC the same source is also compiled
 * for x86-64-v3 (AVX2/F16C) and x86-64-v4 (AVX-512) and picked at load time
 * from CPUID (target_clones), so one binary runs on any x86-64 and on arm64.
 * Kernels read storage types through kvb_types.h alone: they know no cache,
 * no backend and no registry. */
#ifndef KVB_KERNELS_H
#define KVB_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include "../types/kvb_types.h"
#include "pool.h"

/* Zeroed memory for K/V planes and pools; kvb_kv_free(p, the same bytes)
 * releases it. From 4 MiB on (Linux), mapped 2 MiB-aligned and offered as
 * transparent huge pages (madvise): fewer TLB misses for the streaming reads
 * of attend (measured in docs/tuning.md). Pages still become resident on first
 * touch, 2 MiB at a time. */
void *kvb_kv_alloc(size_t bytes);
void  kvb_kv_free(void *p, size_t bytes);

float kvb_dot_f32(const float *a, const float *b, int n);
void  kvb_axpy_f32(float a, const float *x, float *y, int n);   /* y += a x */

/* Sum of n floats: a pure streaming read, used to measure read bandwidth. */
float kvb_sum_f32(const float *x, size_t n);

/* Scratch floats the attend kernels need for g heads over n tokens. */
size_t kvb_attend_scratch_floats(int g, int n, int head_dim);

/* Attention for the g query heads that share one KV head, over K/V held in
 * runs of rows (one run for a contiguous store, the blocks of a paged cache in
 * sequence order): run r holds n rows starting at k and v, row to row
 * row_stride elements apart, of storage type dt (f32, f16 or bf16), so one
 * kernel serves a [kv_head][token][head_dim] store (stride head_dim) and a
 * [token][kv_head][head_dim] activation (stride n_kv*head_dim).
 *   q, out:  [g][head_dim]
 *   scratch: kvb_attend_scratch_floats(g, total rows, head_dim) floats
 *   ml:      NULL, or per query head i: ml[2i] = the largest scaled score and
 *            ml[2i+1] = the sum of exp(score - that max) over the rows (n >= 1),
 *            what merging attention over parts of one context needs
 *            (Flash-Decoding): out = sum_p w_p out_p / sum_p w_p, w_p = l_p exp(m_p - m)
 * out = softmax(q k^T / sqrt(head_dim)) v, stable: the max score is subtracted
 * before exp; no rows give out = 0. Scores, softmax and the weighted sum are
 * computed exactly as for one run, so a paged cache gives bit-identical output
 * to a contiguous one. */
typedef struct kvb_kv_run {
    const void *k, *v;
    int         n;
} kvb_kv_run;
typedef void (*kvb_attend_runs_fn)(kvb_dtype dt, const kvb_kv_run *runs, int n_runs,
                                   size_t row_stride, int head_dim, int g, const float *q,
                                   float *out, float *scratch, float *ml);

/* One implementation of those loops: a row of the const table
 * kvb_attend_kernel_find looks names up in, fastest first. AVX-512
 * (attend_avx512.c; head_dim a multiple of 16), AVX2 with FMA and F16C
 * (attend_avx2.c; a multiple of 8), and the portable C (which GCC also builds
 * for x86-64-v3 and picks at load time). A cache looks its row up once, at
 * create, and keeps it, as it does its kvb_qkernels (quant.h). Every row is
 * exposed so the tests hold each to the float64 reference. */
typedef struct kvb_attend_kernel {
    const char        *name;      /* "avx512", "avx2", "portable" */
    int                multiple;  /* head_dim must be a multiple of it */
    int              (*usable)(void);  /* 1: this CPU and build have its instructions */
    kvb_attend_runs_fn run;       /* NULL where the build lacks it */
} kvb_attend_kernel;

extern const kvb_attend_kernel kvb_attend_kernel_avx512;
extern const kvb_attend_kernel kvb_attend_kernel_avx2;
extern const kvb_attend_kernel kvb_attend_kernel_portable;

/* By name: "avx512", "avx2", "portable"; NULL or "auto" gives the fastest
 * this CPU runs at head_dim (never NULL). A named kernel the CPU lacks, or
 * whose vector width does not divide head_dim, gives NULL and says why.
 * _known: whether the name is one of these at all (for checking flags). */
const kvb_attend_kernel *kvb_attend_kernel_find(const char *name, int head_dim, char *why,
                                                size_t why_len);
int kvb_attend_kernel_known(const char *name);

/* Flash-Decoding's merge of attention over `parts` disjoint parts of one
 * context for the same g query heads: part_out [parts][g][head_dim] holds
 * each part's normalized output and part_ml [parts][g][2] its (max, sum) from
 * a kernel's ml; out [g][head_dim] gets the attention over the whole. */
void kvb_attend_merge(int parts, int g, int head_dim, const float *part_out, const float *part_ml,
                      float *out);

/* How far ahead of the row it reads a row loop of the AVX-512 path prefetches,
 * in bytes (a whole number of rows of row_bytes): the CPU's own prefetchers
 * differ, so the distance is measured per vendor (see attend_avx512.c). */
size_t kvb_attend_prefetch_bytes(size_t row_bytes);

/* How far ahead the key loops of four or more query heads, the tiled value
 * loops and the VNNI key pass also ask the L2 for their stream, every other
 * line (prefetcht1); 0: not at all. Per vendor, as above (attend_avx512.c). */
size_t kvb_attend_l2_bytes(void);

/* The kernel "auto" picks for head_dim 128 on this CPU, for `kvbench info`. */
const char *kvb_kernels_path(void);

/* Causal self-attention over T positions held in activations (the no-cache and
 * prefill path): position i attends to positions 0..i.
 *   q, out: [T][n_heads][head_dim]    k, v: [T][n_kv_heads][head_dim]
 *   scratch: kvb_attend_causal_scratch_floats(n_heads, n_kv_heads, T, head_dim)
 * Two variants, both checked against the float64 reference by the tests:
 *   _rows  one attend kernel call per position (streams K/V once per group);
 *   _gemm  query rows in blocks of KVB_CAUSAL_BLOCK: scores and the weighted sum
 *          of values as OpenBLAS sgemm, masked to the causal triangle. It does up
 *          to twice the flops of the triangle, at GEMM speed; the harness uses it.
 *          The heads go over `pool` (NULL: the caller alone), each thread with
 *          its own scratch: `scratch` holds kvb_pool_threads(pool) of them. Each
 *          head is computed as one thread would, so any pool gives the same bits;
 *          OpenBLAS should run one thread inside (openblas_set_num_threads(1)),
 *          or its threads and the pool's oversubscribe the cores. */
enum { KVB_CAUSAL_BLOCK = 128 };
size_t kvb_attend_causal_scratch_floats(int n_heads, int n_kv_heads, int T, int head_dim);
void kvb_attend_causal_rows(const float *q, const float *k, const float *v, int T,
                            int n_heads, int n_kv_heads, int head_dim, float *out,
                            float *scratch);
void kvb_attend_causal_gemm(const float *q, const float *k, const float *v, int T,
                            int n_heads, int n_kv_heads, int head_dim, float *out,
                            float *scratch, kvb_pool *pool);

#endif
