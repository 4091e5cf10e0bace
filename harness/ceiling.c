/* ceiling.c: see ceiling.h. The read array is touched once before timing
 * (page faults and first-touch zeroing are not bandwidth); each pass is timed
 * alone and the median is kept, with p10/p90 as the spread. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE               /* pthread_attr_setaffinity_np */
#endif
#include "ceiling.h"
#include "../base/probe.h"
#include "../base/stats.h"
#include "../impls/kernels/kernels.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct slice { const float *a; size_t n; float sum; } slice;

static void *sum_slice(void *p)
{
    slice *s = p;
    s->sum = kvb_sum_f32(s->a, s->n);
    return NULL;
}

void kvb_cpu_mask_capture(kvb_cpu_mask *m)
{
    memset(m, 0, sizeof *m);
#ifdef __linux__
    cpu_set_t set;
    _Static_assert(sizeof set <= sizeof m->bits, "cpu_set_t fits kvb_cpu_mask");
    if (pthread_getaffinity_np(pthread_self(), sizeof set, &set) == 0) {
        memcpy(m->bits, &set, sizeof set);
        m->valid = 1;
    }
#endif
}

/* A reader thread on the CPUs of `on` (see kvb_cpu_mask): the caller's binding
 * once held the "all cores" ceiling's readers on one pinned core, so the ceiling
 * read less than two pinned attention threads (docs/tuning.md). */
static int start_reader(pthread_t *tid, slice *s, const kvb_cpu_mask *on)
{
#ifdef __linux__
    pthread_attr_t at;
    if (on && on->valid && pthread_attr_init(&at) == 0) {
        cpu_set_t set;
        memcpy(&set, on->bits, sizeof set);
        int ok = pthread_attr_setaffinity_np(&at, sizeof set, &set) == 0 &&
                 pthread_create(tid, &at, sum_slice, s) == 0;
        pthread_attr_destroy(&at);
        if (ok) return 1;
    }
#else
    (void)on;
#endif
    return pthread_create(tid, NULL, sum_slice, s) == 0;
}

/* One pass over a[0..n) by `threads` threads; the wall time of the whole pass.
 * Thread start-up (tens of microseconds) is inside it, under 0.1% of a pass. */
static double read_pass(const float *a, size_t n, int threads, slice *sl, pthread_t *tid,
                        const kvb_cpu_mask *on)
{
    uint64_t t0 = kvb_now_ns();
    size_t per = n / (size_t)threads;
    int started[30] = {0};
    for (int i = 0; i < threads; i++) {
        sl[i] = (slice){a + (size_t)i * per, i + 1 == threads ? n - (size_t)i * per : per, 0};
        if (i > 0) started[i] = start_reader(&tid[i], &sl[i], on);
        if (i > 0 && !started[i]) sum_slice(&sl[i]);     /* could not start one: read it here */
    }
    sum_slice(&sl[0]);
    for (int i = 1; i < threads; i++)
        if (started[i]) pthread_join(tid[i], NULL);
    return (double)(kvb_now_ns() - t0);
}

int kvb_measure_read(kvb_read_bw *r, size_t bytes, int passes)
{
    return kvb_measure_read_threads(r, bytes, passes, 1);
}

int kvb_measure_read_threads(kvb_read_bw *r, size_t bytes, int passes, int threads)
{
    kvb_cpu_mask here;
    kvb_cpu_mask_capture(&here);
    return kvb_measure_read_threads_on(r, bytes, passes, threads, &here);
}

int kvb_measure_read_threads_on(kvb_read_bw *r, size_t bytes, int passes, int threads,
                                const kvb_cpu_mask *readers)
{
    memset(r, 0, sizeof *r);
    if (threads < 1) threads = 1;
    if (threads > 30) threads = 30;
    if (passes < 3) passes = 3;
    size_t n = bytes / sizeof(float);
    if (n < 1024) n = 1024;
    float *a = malloc(n * sizeof(float));
    double *s = malloc((size_t)passes * sizeof(double));
    slice sl[30];
    pthread_t tid[30];
    if (!a || !s) { free(a); free(s); return -1; }
    for (size_t i = 0; i < n; i++) a[i] = (float)(i & 1023) * 1e-3f;
    read_pass(a, n, threads, sl, tid, readers);               /* warm-up pass */
    for (int p = 0; p < passes; p++)
        s[p] = (double)(n * sizeof(float)) /
               read_pass(a, n, threads, sl, tid, readers); /* bytes/ns = GB/s */
    r->bytes = n * sizeof(float);
    r->passes = passes;
    r->threads = threads;
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
    if (kvb_measure_read(&c->dram, dram_bytes ? dram_bytes : (size_t)1 << 30, passes) != 0)
        return -1;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    c->dram_all.gbs = NAN;
    if (cores > 1 &&
        kvb_measure_read_threads(&c->dram_all, dram_bytes ? dram_bytes : (size_t)1 << 30, passes,
                                 (int)cores) != 0)
        return -1;
    if (ws_bytes && kvb_measure_read(&c->working_set, ws_bytes, 3 * passes) != 0) return -1;

    const int m = 1024;
    float *A = malloc((size_t)m * m * sizeof(float) * 3);
    double *s = malloc((size_t)passes * sizeof(double));
    if (!A || !s) { free(A); free(s); return -1; }
    float *B = A + (size_t)m * m, *C = B + (size_t)m * m;
    for (size_t i = 0; i < (size_t)m * m; i++) {
        A[i] = (float)(i % 7) * 0.1f;
        B[i] = (float)(i % 5) * 0.1f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, m, m, 1.0f, A, m, B, m, 0.0f, C, m);
    for (int p = 0; p < passes; p++) {
        uint64_t t0 = kvb_now_ns();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, m, m, 1.0f, A, m, B, m, 0.0f, C,
                    m);
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
