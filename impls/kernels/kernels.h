/* kernels.h: hot loops shared by backends and by the harness's recompute path.
 *
 * Contract: pure functions over caller-owned memory, no allocation, no global
 * state. Storage may be f32, f16 or bf16; arithmetic is always f32. The portable
 * C here is the reference; on x86-64 with GCC the same source is also compiled
 * for x86-64-v3 (AVX2/F16C) and x86-64-v4 (AVX-512) and picked at load time
 * from CPUID (target_clones), so one binary runs on any x86-64 and on arm64. */
#ifndef KVB_KERNELS_H
#define KVB_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include "../kvb_backend.h"

/* Zeroed memory for K/V planes and pools; kvb_kv_free(p, the same bytes)
 * releases it. From 4 MiB on (Linux), mapped 2 MiB-aligned and offered as
 * transparent huge pages (madvise): fewer TLB misses for the streaming reads
 * of attend. A/B in one process on the AMD EPYC VM, the same K/V on 4 KiB and
 * on huge pages, 32768 tokens: f32 GQA 32/8 20% faster, f16 GQA 12%, f16 MHA
 * 8-10%. Pages still become resident on first touch, 2 MiB at a time. */
void *kvb_kv_alloc(size_t bytes);
void  kvb_kv_free(void *p, size_t bytes);

/* Scalar conversions, round to nearest even; NaN stays NaN, overflow goes to Inf. */
uint16_t kvb_f32_to_f16(float f);
float    kvb_f16_to_f32(uint16_t h);
uint16_t kvb_f32_to_bf16(float f);
float    kvb_bf16_to_f32(uint16_t h);

/* Row conversions: n elements of storage type dt <-> f32. */
void kvb_row_from_f32(kvb_dtype dt, const float *src, void *dst, int n);
void kvb_row_to_f32(kvb_dtype dt, const void *src, float *dst, int n);

float kvb_dot_f32(const float *a, const float *b, int n);
void  kvb_axpy_f32(float a, const float *x, float *y, int n);   /* y += a x */

/* Sum of n floats: a pure streaming read, used to measure read bandwidth. */
float kvb_sum_f32(const float *x, size_t n);

/* Scratch floats kvb_attend_group needs for g heads over n tokens. */
size_t kvb_attend_scratch_floats(int g, int n, int head_dim);

/* Attention for the g query heads that share one KV head.
 *   q, out:  [g][head_dim]
 *   k, v:    n token rows of head_dim elements of type dt; row t starts
 *            t * row_stride elements after row 0 (so one kernel serves a
 *            [kv_head][token][head_dim] store, stride head_dim, and a
 *            [token][kv_head][head_dim] activation, stride n_kv*head_dim)
 *   scratch: kvb_attend_scratch_floats(g, n, head_dim) floats
 * out = softmax(q k^T / sqrt(head_dim)) v, stable: the max score is
 * subtracted before exp. n == 0 gives out = 0. */
void kvb_attend_group(kvb_dtype dt, const void *k, const void *v, size_t row_stride,
                      int n, int head_dim, int g, const float *q, float *out,
                      float *scratch);

/* The same attention over K/V held in separate runs of rows (the blocks of a
 * paged cache, in sequence order): run r holds n rows starting at k and v, row
 * to row row_stride elements apart. Scores, softmax and the weighted sum are
 * computed exactly as for one run, so a paged cache gives bit-identical output
 * to a contiguous one. scratch: kvb_attend_scratch_floats(g, total rows, head_dim). */
typedef struct kvb_kv_run {
    const void *k, *v;
    int         n;
} kvb_kv_run;
void kvb_attend_runs(kvb_dtype dt, const kvb_kv_run *runs, int n_runs, size_t row_stride,
                     int head_dim, int g, const float *q, float *out, float *scratch);

/* The implementations kvb_attend_runs chooses between, at every call, from
 * CPUID and the shape: AVX-512 (attend_avx512.c; head_dim a multiple of 16),
 * else AVX2 with FMA and F16C (attend_avx2.c; a multiple of 8), else the
 * portable C (which GCC also builds for x86-64-v3 and picks at load time).
 * All are exposed so the tests hold each to the float64 reference; a getter
 * returns NULL where the CPU (or the compiler) lacks its instructions. */
typedef void (*kvb_attend_runs_fn)(kvb_dtype dt, const kvb_kv_run *runs, int n_runs, size_t row_stride,
                                   int head_dim, int g, const float *q, float *out, float *scratch,
                                   float *ml);
void kvb_attend_runs_portable(kvb_dtype dt, const kvb_kv_run *runs, int n_runs, size_t row_stride,
                              int head_dim, int g, const float *q, float *out, float *scratch, float *ml);
kvb_attend_runs_fn kvb_attend_runs_avx512(void);
kvb_attend_runs_fn kvb_attend_runs_avx2(void);

/* By name: "avx512", "avx2", "portable"; NULL or "auto" gives the fastest
 * this CPU runs at head_dim (never NULL). A named kernel the CPU lacks, or
 * whose vector width does not divide head_dim, gives NULL and says why.
 * _known: whether the name is one of these at all (for checking flags). */
kvb_attend_runs_fn kvb_attend_kernel_find(const char *name, int head_dim, char *why, size_t why_len);
int                kvb_attend_kernel_known(const char *name);
const char        *kvb_attend_kernel_name(kvb_attend_runs_fn f);

/* kvb_attend_runs that also gives, per query head i, ml[2i] = the largest
 * scaled score and ml[2i+1] = the sum of exp(score - that max) over the rows
 * (n >= 1): what merging attention over parts of one context needs
 * (Flash-Decoding): out = sum_p w_p out_p / sum_p w_p, w_p = l_p exp(m_p - m). */
void kvb_attend_runs_ml(kvb_dtype dt, const kvb_kv_run *runs, int n_runs, size_t row_stride,
                        int head_dim, int g, const float *q, float *out, float *scratch, float *ml);

/* Flash-Decoding's merge of attention over `parts` disjoint parts of one
 * context for the same g query heads: part_out [parts][g][head_dim] holds
 * each part's normalized output and part_ml [parts][g][2] its (max, sum) from
 * kvb_attend_runs_ml; out [g][head_dim] gets the attention over the whole. */
void kvb_attend_merge(int parts, int g, int head_dim, const float *part_out, const float *part_ml, float *out);

/* How far ahead of the row it reads a row loop of the AVX-512 path prefetches,
 * in bytes (a whole number of rows of row_bytes): the CPU's own prefetchers
 * differ, so the distance is measured per vendor (see kernels.c). */
size_t kvb_attend_prefetch_bytes(size_t row_bytes);

/* The path kvb_attend_runs takes for head_dim 128 on this CPU, for `kvbench info`. */
const char *kvb_kernels_path(void);

/* Causal self-attention over T positions held in activations (the no-cache and
 * prefill path): position i attends to positions 0..i.
 *   q, out: [T][n_heads][head_dim]    k, v: [T][n_kv_heads][head_dim]
 *   scratch: kvb_attend_causal_scratch_floats(n_heads, n_kv_heads, T, head_dim)
 * Two variants, both checked against the float64 reference by the tests:
 *   _rows  one kvb_attend_group call per position (streams K/V once per group);
 *   _gemm  query rows in blocks of KVB_CAUSAL_BLOCK: scores and the weighted sum
 *          of values as OpenBLAS sgemm, masked to the causal triangle. It does up
 *          to twice the flops of the triangle, at GEMM speed; the harness uses it. */
enum { KVB_CAUSAL_BLOCK = 128 };
size_t kvb_attend_causal_scratch_floats(int n_heads, int n_kv_heads, int T, int head_dim);
void kvb_attend_causal_rows(const float *q, const float *k, const float *v, int T,
                            int n_heads, int n_kv_heads, int head_dim, float *out,
                            float *scratch);
void kvb_attend_causal_gemm(const float *q, const float *k, const float *v, int T,
                            int n_heads, int n_kv_heads, int head_dim, float *out,
                            float *scratch);

#endif
