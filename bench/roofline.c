/* roofline.c: kvbench-roofline, the machine's side of a kernel's roofline, on
 * one core. Two measurements (docs/attention.md turns them into each attend
 * case's reachable fraction of the read ceiling):
 *   1. 512-bit vector instructions a second, by kind: 16 independent chains in
 *      registers (inline assembly, so no compiler folds or spills them), so
 *      latency does not count; a kind that runs on one port only shows as half
 *      the rate of one that runs on two.
 *   2. A stream that computes: a 1 GiB read (4 lines per step, prefetcht0 4 KiB
 *      ahead, as the attend loops prefetch) doing F independent FMAs per 256
 *      bytes, against the same loop over 64 KiB that stays in L2 (compute
 *      alone). If memory and compute overlapped fully, the stream would take
 *      the longer of the two; k = (t_stream - t_read) / t_compute says what
 *      share of the compute time it adds instead (0: full overlap, 1: none).
 * GB = 10^9 bytes; medians of 5 runs. x86-64 with AVX-512F and AVX512-VNNI/VBMI
 * for the rows that need them (skipped otherwise); elsewhere it says so and
 * exits 2. Usage: kvbench-roofline [--quick] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/probe.h"
#include "../base/stats.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define KVB_AVX512F __attribute__((target("avx512f")))

/* 16 instructions writing zmm0..zmm15 from zmm30/zmm31: one step of 16 chains */
#define X16(op, src)                                                                       \
    op " " src ", %%zmm0\n\t" op " " src ", %%zmm1\n\t" op " " src ", %%zmm2\n\t"         \
    op " " src ", %%zmm3\n\t" op " " src ", %%zmm4\n\t" op " " src ", %%zmm5\n\t"         \
    op " " src ", %%zmm6\n\t" op " " src ", %%zmm7\n\t" op " " src ", %%zmm8\n\t"         \
    op " " src ", %%zmm9\n\t" op " " src ", %%zmm10\n\t" op " " src ", %%zmm11\n\t"       \
    op " " src ", %%zmm12\n\t" op " " src ", %%zmm13\n\t" op " " src ", %%zmm14\n\t"     \
    op " " src ", %%zmm15\n\t"
#define ZREGS                                                                               \
    "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", \
        "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm30", "xmm31"

enum { STEPS = 4000000 };   /* 64 M instructions a run: about 10-25 ms */

/* One kind's loop: STEPS steps of 16 instructions; the sources zeroed first,
 * so no value is a NaN or denormal. */
#define OP_LOOP(fn, isa, body)                                                          \
    static __attribute__((target(isa))) void fn(void)                                  \
    {                                                                                      \
        __asm__ volatile("vpxord %%zmm30, %%zmm30, %%zmm30\n\t"                            \
                         "vpxord %%zmm31, %%zmm31, %%zmm31" ::: ZREGS);                   \
        for (int i = 0; i < STEPS; i++) __asm__ volatile(body ::: ZREGS);                  \
    }

OP_LOOP(op_fma, "avx512f", X16("vfmadd231ps", "%%zmm30, %%zmm31"))
OP_LOOP(op_add, "avx512f", X16("vpaddd", "%%zmm30, %%zmm31"))
OP_LOOP(op_cvt, "avx512f", X16("vcvtdq2ps", "%%zmm30"))
OP_LOOP(op_dpbusd, "avx512f,avx512vnni", X16("vpdpbusd", "%%zmm30, %%zmm31"))
OP_LOOP(op_sxbd, "avx512f", X16("vpmovsxbd", "%%xmm30"))
OP_LOOP(op_cvtph, "avx512f", X16("vcvtph2ps", "%%ymm30"))
OP_LOOP(op_permps, "avx512f", X16("vpermps", "%%zmm30, %%zmm31"))
OP_LOOP(op_shufb, "avx512f,avx512bw", X16("vpshufb", "%%zmm30, %%zmm31"))
OP_LOOP(op_permb, "avx512f,avx512vbmi", X16("vpermb", "%%zmm30, %%zmm31"))

typedef struct op_row {
    const char *name, *what, *feature;   /* feature: NULL, or the CPUID name it needs */
    void (*run)(void);
} op_row;

static const op_row OPS[] = {
    {"vfmadd231ps", "FMA (the float kernels' arithmetic)", NULL, op_fma},
    {"vpaddd", "integer add", NULL, op_add},
    {"vcvtdq2ps", "int32 -> float", NULL, op_cvt},
    {"vpdpbusd", "VNNI u8 x s8 dot (the int8 key pass)", "avx512vnni", op_dpbusd},
    {"vpmovsxbd", "widen 16 bytes (the codes' unpack)", NULL, op_sxbd},
    {"vcvtph2ps", "f16 -> float", NULL, op_cvtph},
    {"vpermps", "32-bit lane permute (4-bit lookups)", NULL, op_permps},
    {"vpshufb", "byte shuffle", "avx512bw", op_shufb},
    {"vpermb", "byte permute", "avx512vbmi", op_permb},
};

/* whether this CPU has a row's extra feature (__builtin_cpu_supports takes
 * only literal names) */
static int have_feature(const char *f)
{
    if (!f) return 1;
    if (strcmp(f, "avx512vnni") == 0) return __builtin_cpu_supports("avx512vnni");
    if (strcmp(f, "avx512bw") == 0) return __builtin_cpu_supports("avx512bw");
    return strcmp(f, "avx512vbmi") == 0 && __builtin_cpu_supports("avx512vbmi");
}

/* 4 lines a step, F FMAs (8 chains) per 256 bytes; returns GB/s of reads */
static KVB_AVX512F double stream(const char *a, size_t bytes, int passes, int f, int pf)
{
    __m512 acc[8];
    for (int i = 0; i < 8; i++) acc[i] = _mm512_setzero_ps();
    const __m512 m = _mm512_set1_ps(0.5f);
    uint64_t t0 = kvb_now_ns();
    for (int p = 0; p < passes; p++)
        for (size_t o = 0; o < bytes; o += 256) {
            if (pf)
                for (int l = 0; l < 4; l++) _mm_prefetch(a + o + 4096 + 64 * l, _MM_HINT_T0);
            const float *x = (const float *)(const void *)(a + o);
            __m512 x0 = _mm512_load_ps(x), x1 = _mm512_load_ps(x + 16);
            __m512 x2 = _mm512_load_ps(x + 32), x3 = _mm512_load_ps(x + 48);
            acc[0] = _mm512_add_ps(acc[0], x0);
            acc[1] = _mm512_add_ps(acc[1], x1);
            acc[2] = _mm512_add_ps(acc[2], x2);
            acc[3] = _mm512_add_ps(acc[3], x3);
            for (int k = 0; k < f; k += 8)
                for (int i = 0; i < 8; i++) acc[i] = _mm512_fmadd_ps(acc[i], m, x0);
        }
    double s = (double)(kvb_now_ns() - t0) * 1e-9;
    float sink = 0.0f;
    for (int i = 0; i < 8; i++) sink += _mm512_reduce_add_ps(acc[i]);
    __asm__ volatile("" ::"x"(sink));   /* keep the sums alive */
    return (double)bytes * passes / s / 1e9;
}

int main(int argc, char **argv)
{
    int quick = argc == 2 && strcmp(argv[1], "--quick") == 0;
    if (argc > 2 || (argc == 2 && !quick)) {
        fprintf(stderr, "kvbench-roofline: '%s' is not a flag (usage: kvbench-roofline "
                        "[--quick])\n", argv[argc - 1]);
        return 2;
    }
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f")) {
        fprintf(stderr, "kvbench-roofline: this CPU has no AVX-512F; nothing to measure\n");
        return 2;
    }
    char model[128];
    kvb_cpu_model(model, sizeof model);
    printf("kvbench-roofline on %s, one thread\n\n", model);
    printf("512-bit instructions a second, 16 independent chains (G/s, median of 5):\n");
    for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++) {
        const op_row *o = &OPS[i];
        if (!have_feature(o->feature)) {
            printf("  %-12s  skipped (no %s)\n", o->name, o->feature);
            continue;
        }
        double r[5];
        o->run();   /* warm-up: the core's vector unit at its full width */
        for (int k = 0; k < 5; k++) {
            uint64_t t0 = kvb_now_ns();
            o->run();
            r[k] = 16.0 * STEPS / (double)(kvb_now_ns() - t0);
        }
        printf("  %-12s %6.2f   %s\n", o->name, kvb_median(r, 5), o->what);
    }

    const size_t big = (size_t)1 << 30, hot = (size_t)64 << 10;
    char *a = aligned_alloc(4096, big + 8192);
    if (!a) {
        fprintf(stderr, "kvbench-roofline: cannot allocate 1 GiB for the stream\n");
        return 1;
    }
    memset(a, 0, big + 8192);   /* zeros: touched, and no NaN in the sums */
    printf("\nA 1 GiB read doing F FMAs per 256 bytes (prefetcht0 4 KiB ahead; GB/s, "
           "median of 5):\n");
    printf("  %4s %10s %10s %8s %6s\n", "F", "compute", "stream", "of F=0", "k");
    const int fs[] = {0, 16, 32, 48, 64, 96, 128};
    double t_read = 0.0;
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) {
        if (quick && fs[i] % 32) continue;
        double c[5], s[5];
        for (int k = 0; k < 5; k++) {
            c[k] = stream(a, hot, 2048, fs[i], 0);
            s[k] = stream(a, big, 1, fs[i], 1);
        }
        double cm = kvb_median(c, 5), sm = kvb_median(s, 5), ts = 1.0 / sm;
        if (i == 0) {
            t_read = ts;
            printf("  %4d %10.2f %10.2f %8.2f %6s\n", fs[i], cm, sm, 1.0, "-");
            continue;
        }
        printf("  %4d %10.2f %10.2f %8.2f %6.2f\n", fs[i], cm, sm, t_read / ts,
               (ts - t_read) * cm);
    }
    free(a);
    return 0;
}

#else
int main(void)
{
    fprintf(stderr, "kvbench-roofline: x86-64 with GCC or clang only\n");
    return 2;
}
#endif
