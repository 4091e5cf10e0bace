/* ceiling.h: this machine's own limits, measured STREAM-style so every figure
 * can be given as a fraction of them. GB = 10^9 bytes, GFLOP = 10^9 flops. */
#ifndef KVB_CEILING_H
#define KVB_CEILING_H

#include <stddef.h>

/* Streaming read of one array: the median pass and its spread. */
typedef struct kvb_read_bw {
    size_t bytes;             /* array size */
    int    passes;            /* timed passes after one untimed warm-up pass */
    int    threads;           /* threads reading disjoint slices of it at once */
    double gbs, gbs_p10, gbs_p90;
} kvb_read_bw;

typedef struct kvb_ceilings {
    kvb_read_bw dram;         /* 1 GiB by default: well past the last-level cache */
    kvb_read_bw working_set;  /* the size one decode step streams (weights + KV); a
                               * working set that fits a large cache reads faster
                               * than dram, so a step is judged against both */
    kvb_read_bw dram_all;     /* the dram array read by one thread per online core */
    double sgemm_gflops;      /* OpenBLAS sgemm, n x n x n, median */
    int    sgemm_n;
    int    blas_threads;
    double clock_res_ns;
} kvb_ceilings;

/* Median read bandwidth over an array of `bytes`; -1 when memory is short.
 * With threads > 1 each thread sums its own slice and a pass is timed from the
 * common start to the last thread's end. */
int kvb_measure_read(kvb_read_bw *r, size_t bytes, int passes);
int kvb_measure_read_threads(kvb_read_bw *r, size_t bytes, int passes, int threads);

/* The CPUs a ceiling's extra reader threads may run on. A thread inherits its
 * creator's binding, so a caller about to pin itself (--pin) captures its mask
 * first and passes it to every later measurement; otherwise the readers would
 * all share the pinned core. Captured from the calling thread (so a taskset
 * limit holds); where the OS has no such call, valid is 0 and readers start
 * as plain threads. */
typedef struct kvb_cpu_mask {
    unsigned long bits[16];   /* a cpu_set_t's bytes: 1024 CPUs */
    int           valid;
} kvb_cpu_mask;
void kvb_cpu_mask_capture(kvb_cpu_mask *m);
int  kvb_measure_read_threads_on(kvb_read_bw *r, size_t bytes, int passes, int threads,
                                 const kvb_cpu_mask *readers);

/* dram_bytes = 0 picks 1 GiB; ws_bytes = 0 skips the working-set figure.
 * Returns 0, or -1 when memory is short. */
int kvb_measure_ceilings(kvb_ceilings *c, size_t dram_bytes, size_t ws_bytes, int passes);

#endif
