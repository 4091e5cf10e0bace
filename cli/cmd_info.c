/* cmd_info.c: kvbench info (this machine: CPU, topology, kernels, measured
 * ceilings) and kvbench list (what this build knows: backends, presets,
 * storage types). */
#define _GNU_SOURCE
#include "cli.h"
#include "opts.h"
#include "../base/probe.h"
#include "../harness/ceiling.h"
#include "../impls/kernels/kernels.h"

#include <cblas.h>
#include <stdio.h>
#include <unistd.h>

const kvb_cmd_spec kvb_info_spec = {
    .usage = "[--threads N] [--bw-mb MB] | --cpu-key",
    .intro = "CPU model, hwloc topology (packages, cores, PUs, NUMA nodes, caches), whether\n"
             "threads can be pinned, the attention kernel path, OpenBLAS configuration and\n"
             "this machine's measured ceilings: read bandwidth (STREAM-style sum over an\n"
             "array of --bw-mb MiB by one thread and by one thread per online core, and over\n"
             "a cache-sized 64 MiB one; warm-up excluded, median of 7 and 21 passes) and\n"
             "OpenBLAS sgemm GFLOP/s.",
    .flags = kvb_opts_flags,
};

const kvb_cmd_spec kvb_list_spec = {
    .usage = "",
    .intro = "Backends, model presets and storage types this build knows.",
};

int kvb_cmd_info(const kvb_cli *cli, const kvb_command *self, int argc, char **argv)
{
    kvb_opts o;
    int r = kvb_opts_parse(cli, self, argc, argv, &o);
    if (r) return r < 0 ? 0 : r;
    if (o.cpu_key) { /* for scripts: nothing measured */
        char key[256];
        kvb_cpu_key(key, sizeof key);
        printf("%s\n", key);
        return 0;
    }
    long long bw_mb = o.bw_mb;
    openblas_set_num_threads(o.threads);
    kvb_ceilings k;
    if (kvb_measure_ceilings(&k, (size_t)bw_mb << 20, (size_t)64 << 20, 7) != 0) {
        fprintf(stderr, "kvbench: not enough memory for a %lld MB bandwidth array\n", bw_mb);
        return 1;
    }
    char cpu[256], msg[256], topo_line[512];
    kvb_cpu_model(cpu, sizeof cpu);
    printf("cpu:            %s\n", cpu);
    printf("online cores:   %ld\n", sysconf(_SC_NPROCESSORS_ONLN));
    kvb_topo topo;
    if (kvb_topo_init(&topo, msg, sizeof msg) == KVB_STATUS_OK) {
        kvb_topo_describe(&topo, topo_line, sizeof topo_line);
        printf("topology:       %s (hwloc)\n", topo_line);
        printf("pinning:        %s\n", topo.can_bind
                                           ? "hwloc can bind threads here (--pin compact|spread)"
                                           : "hwloc cannot bind threads here: --pin runs unpinned");
        kvb_topo_free(&topo);
    } else
        printf("topology:       %s\n", msg);
    printf("openblas:       %s (threads %d)\n", openblas_get_config(), openblas_get_num_threads());
    printf("clock:          CLOCK_MONOTONIC, resolution %.0f ns\n", k.clock_res_ns);
    printf("attend kernels: %s\n", kvb_kernels_path());
    const kvb_read_bw *rb[3] = {&k.dram, &k.working_set, &k.dram_all};
    for (int i = 0; i < 3; i++)
        if (rb[i]->threads)
            printf(
                "read bandwidth: %.1f GB/s %d thread%s over a %zu MiB array (p10 %.1f, p90 %.1f)\n",
                rb[i]->gbs, rb[i]->threads, rb[i]->threads == 1 ? "" : "s", rb[i]->bytes >> 20,
                rb[i]->gbs_p10, rb[i]->gbs_p90);
    printf("sgemm:          %.1f GFLOP/s (n = %d, %d thread%s)\n", k.sgemm_gflops, k.sgemm_n,
           k.blas_threads, k.blas_threads == 1 ? "" : "s");
    return 0;
}

int kvb_cmd_list(const kvb_cli *cli, const kvb_command *self, int argc, char **argv)
{
    int r = kvb_flags_parse(cli, self, argc, argv, NULL);
    if (r) return r < 0 ? 0 : r;
    puts("backends:");
    for (int i = 0; i < kvb_backend_count(); i++)
        printf("  %-12s %s\n", kvb_backend_at(i)->name, kvb_backend_at(i)->description);
    puts("presets:            dim hidden layers heads kv_heads head_dim  vocab max_seq  params");
    for (int i = 0; kvb_model_preset_name(i); i++) {
        kvb_model_config c;
        kvb_model_preset(kvb_model_preset_name(i), &c);
        printf("  %-14s %7d %6d %6d %5d %8d %8d %6d %7d %6.1fM\n", kvb_model_preset_name(i), c.dim,
               c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.vocab_size,
               c.max_seq, (double)kvb_model_param_count(&c) / 1e6);
    }
    puts("storage types (--dtype): bits per value, scales and minimums included (groups of 32)");
    static const char *const what[KVB_DTYPE_COUNT] = {
        "IEEE binary32",
        "IEEE binary16",
        "bfloat16",
        "int8 codes, f16 scale per group (llama.cpp q8_0)",
        "4-bit symmetric codes, f16 scale per group (q4_0)",
        "4-bit codes, f16 scale and minimum per group (q4_1)",
        "2-bit codes, f16 scale and zero point per group; KIVI: keys per channel, 128 f32 residual",
    };
    for (int i = 0; i < KVB_DTYPE_COUNT; i++)
        printf("  %-6s %5.2f  %s%s\n", kvb_dtype_name((kvb_dtype)i),
               kvb_dtype_bits((kvb_dtype)i, 32), what[i],
               kvb_dtype_is_quant((kvb_dtype)i) ? " [backend quant]" : "");
    puts("allocation modes (--mode): grow (capacity doubles), prealloc (max_seq up front)");
    return 0;
}
