/* ceiling.c: see ceiling.h. The read array is touched once before timing
 * (page faults and first-touch zeroing are not bandwidth); each pass is timed
 * alone and the median is kept, with p10/p90 as the spread. */
#include "ceiling.h"
#include "probe.h"
#include "stats.h"
#include "../impls/kernels/kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int kvb_measure_read(kvb_read_bw *r, size_t bytes, int passes)
{
    memset(r, 0, sizeof *r);
    if (passes < 3) passes = 3;
    size_t n = bytes / sizeof(float);
    if (n < 1024) n = 1024;
    float *a = malloc(n * sizeof(float));
    double *s = malloc((size_t)passes * sizeof(double));
    if (!a || !s) { free(a); free(s); return -1; }
    for (size_t i = 0; i < n; i++) a[i] = (float)(i & 1023) * 1e-3f;
    volatile float sink = kvb_sum_f32(a, n);                  /* warm-up pass */
    for (int p = 0; p < passes; p++) {
        uint64_t t0 = kvb_now_ns();
        sink += kvb_sum_f32(a, n);
        s[p] = (double)(n * sizeof(float)) / (double)(kvb_now_ns() - t0);   /* bytes/ns = GB/s */
    }
    (void)sink;
    r->bytes = n * sizeof(float);
    r->passes = passes;
    r->gbs = kvb_median(s, (size_t)passes);
    r->gbs_p10 = kvb_quantile(s, (size_t)passes, 0.1);
    r->gbs_p90 = kvb_quantile(s, (size_t)passes, 0.9);
    free(a);
    free(s);
    return 0;
}

int kvb_measure_ceilings(kvb_ceilings *c, size_t dram_bytes, size_t ws_bytes, int passes)
{
    memset(c, 0, sizeof *c);
    c->working_set.gbs = NAN;
    if (passes < 3) passes = 3;
    if (kvb_measure_read(&c->dram, dram_bytes ? dram_bytes : (size_t)1 << 30, passes) != 0) return -1;
    if (ws_bytes && kvb_measure_read(&c->working_set, ws_bytes, 3 * passes) != 0) return -1;

    const int m = 1024;
    float *A = malloc((size_t)m * m * sizeof(float) * 3);
    double *s = malloc((size_t)passes * sizeof(double));
    if (!A || !s) { free(A); free(s); return -1; }
    float *B = A + (size_t)m * m, *C = B + (size_t)m * m;
    for (size_t i = 0; i < (size_t)m * m; i++) { A[i] = (float)(i % 7) * 0.1f; B[i] = (float)(i % 5) * 0.1f; }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, m, m, 1.0f, A, m, B, m, 0.0f, C, m);
    for (int p = 0; p < passes; p++) {
        uint64_t t0 = kvb_now_ns();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, m, m, 1.0f, A, m, B, m, 0.0f, C, m);
        s[p] = 2.0 * m * m * (double)m / (double)(kvb_now_ns() - t0);     /* flops/ns = GFLOP/s */
    }
    c->sgemm_n = m;
    c->sgemm_gflops = kvb_median(s, (size_t)passes);
    c->blas_threads = openblas_get_num_threads();
    c->clock_res_ns = (double)kvb_clock_resolution_ns();
    free(A);
    free(s);
    return 0;
}
