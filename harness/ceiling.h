/* ceiling.h: this machine's own limits, measured STREAM-style so every figure
 * can be given as a fraction of them. GB = 10^9 bytes, GFLOP = 10^9 flops. */
#ifndef KVB_CEILING_H
#define KVB_CEILING_H

#include <stddef.h>

typedef struct kvb_ceilings {
    double read_gbs;          /* one thread, median of passes, warm-up excluded */
    double read_gbs_p10, read_gbs_p90;
    size_t read_bytes;        /* array size: well past the last-level cache */
    double sgemm_gflops;      /* OpenBLAS sgemm, n x n x n, median */
    int    sgemm_n;
    int    blas_threads;
    double clock_res_ns;
} kvb_ceilings;

/* bytes = 0 picks 1 GiB; passes >= 3. Returns 0, or -1 when memory is short. */
int kvb_measure_ceilings(kvb_ceilings *c, size_t bytes, int passes);

#endif
