/* main.c: the kvbench command line. Parses and validates every flag before any
 * work starts (bad input: a message naming the value and what is allowed, exit
 * 2), runs the points, writes results/<run-id>/ through a .partial directory
 * renamed at the end. Exit status: 0 done, 1 a point failed or a file could not
 * be written, 2 bad usage. Only this file exits. */
#define _GNU_SOURCE               /* sched_getaffinity, CPU_COUNT */
#include "cli.h"
#include "../harness/attend_bench.h"
#include "../harness/quality.h"
#include "../harness/ceiling.h"
#include "../analysis/compare.h"
#include "../analysis/report.h"
#include "../harness/sweep.h"
#include "../model/model.h"
#include "../base/probe.h"
#include "../harness/results.h"
#include "../harness/run.h"
#include "../harness/serve.h"
#include "../harness/topo.h"
#include "../base/textio.h"
#include "../impls/kernels/kernels.h"

#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <regex.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { MAX_LIST = 16 };

typedef struct cli {
    const char *backends, *dtypes, *modes, *blocks, *preset, *checkpoint, *prompt_ids, *out;
    const char *ctxs, *csv;           /* kvbench attend */
    const char *lengths, *forks;      /* kvbench serve-sim */
    const char *key_axes, *qkernels;  /* quantized backends */
    const char *kernels;              /* attend loops of contiguous and paged */
    const char *pin;                  /* none, compact, spread */
    int  group, residual, key_outliers, untied;
    int  sequences, max_prompt, max_output, fork_n, no_attend;
    double budget_mb;
    int  prompt, tokens, reps, warmup, threads, quiet, no_ceilings, dry_run;
    long long pool_mb, pool_blocks;  /* paged pool size; 0: room for every sequence */
    long long seed;
    double time_budget;
    /* model overrides; 0 = keep the preset's value */
    int dim, hidden, layers, heads, kv_heads, head_dim, vocab, max_seq;
    double rope_theta;
} cli;

void kvb_print_help(const char *cmd)
{
    if (cmd && strcmp(cmd, "list") == 0) {
        puts("usage: kvbench list\n\nBackends, model presets and storage types this build knows.");
    } else if (cmd && strcmp(cmd, "info") == 0) {
        puts("usage: kvbench info [--threads N] [--bw-mb MB] | --cpu-key\n\n"
             "CPU model, hwloc topology (packages, cores, PUs, NUMA nodes, caches), whether\n"
             "threads can be pinned, the attention kernel path, OpenBLAS configuration and\n"
             "this machine's measured ceilings: read bandwidth (STREAM-style sum over an\n"
             "array of --bw-mb MiB, default 1024, by one thread and by one thread per online\n"
             "core, and over a cache-sized 64 MiB one; warm-up excluded, median of 7 and 21\n"
             "passes) and OpenBLAS sgemm GFLOP/s.\n\n"
             "--cpu-key prints only the CPU model as a folder name (make regress picks\n"
             "results/baselines/smoke/<that> as the baseline) and measures nothing.");
    } else if (cmd && strcmp(cmd, "attend") == 0) {
        puts("usage: kvbench attend [flags]\n\n"
             "Fills one layer of each cache with the same seeded K/V, then times attend alone,\n"
             "the cases interleaved round by round, and checks each output against float64.\n\n"
             "  --backend LIST      backends with an attend (default contiguous,paged)\n"
             "  --dtype LIST        f32,f16,bf16; q8,q4,q4_1,q2 for quant (default f32)\n"
             "  --block LIST        paged block sizes, 1..256 (default 16)\n"
             "  --group N           quant: values per scale, a power of two 8..256 (default 32)\n"
             "  --residual N        quant: newest tokens kept in f32 (default 128 for q2, else 0)\n"
             "  --key-axis LIST     quant: default,token,channel: keys grouped per token or per\n"
             "                      channel across --group tokens (default: channel for q2)\n"
             "  --qkernel LIST      quant's fused loops: auto,portable,avx512,avx512-vnni\n"
             "                      (default auto: the fastest this CPU has), timed side by side\n"
             "  --kernel LIST       contiguous and paged attend loops: auto,portable,avx2,avx512\n"
             "                      (default auto), timed side by side\n"
             "  --key-outliers N    make N channel pairs of the keys 30x larger (queries /30:\n"
             "                      same scores), as in real models' keys\n"
             "  --ctx LIST          context lengths (default 1024,8192,32768)\n"
             "  --heads N --kv-heads N --head-dim N   shape (default 32, 8, 128)\n"
             "  --reps R            timed rounds (default 21); medians and p10/p90 reported\n"
             "  --sequences N       fill N sequences in turn and time the first (default 1):\n"
             "                      a paged sequence's blocks then lie scattered in the pool\n"
             "  --seed N            data seed (default 1)\n"
             "  --threads N         attention threads (default 1): over KV heads, and over parts\n"
             "                      of the context (contiguous, paged) when heads are fewer\n"
             "  --pin POLICY        none (default), compact, spread: bind this thread and each\n"
             "                      attention worker (--threads) to its own core (hwloc)\n"
             "  --no-ceilings       skip measuring the read ceiling (the ceil column shows -)\n"
             "  --csv FILE          also write the table as CSV (temporary file, then renamed)\n"
             "  --dry-run           check every flag and case, measure nothing\n\n"
             "ceil = GB/s / this machine's read ceiling (one thread's, or all cores' with\n"
             "--threads above 1), the higher of the measurements just before and just after\n"
             "that context's cases.\n"
             "ratio = median / contiguous's median at the same storage type (f32 for the\n"
             "quantized ones) and context; waste = 1 - used / reserved bytes; GB/s = bytes\n"
             "the sequence holds (codes, scales, f32 residual) / median, GB = 1e9;\n"
             "rel_err, max_abs: relative L2 and largest absolute error against float64.");
    } else if (cmd && strcmp(cmd, "serve-sim") == 0) {
        puts("usage: kvbench serve-sim [flags]\n\n"
             "Serves --sequences requests with seeded prompt/output lengths in rounds under one\n"
             "KV memory budget: admit first come first served while prompts fit, decode one\n"
             "token per running sequence per round, preempt the latest request when memory\n"
             "runs out. Only the preset's KV shape is used; K/V values are seeded noise.\n\n"
             "  --backend LIST      contiguous,paged (default)\n"
             "  --mode LIST         contiguous: prealloc,grow (default both)\n"
             "  --block LIST        paged block sizes (default 16)\n"
             "  --dtype LIST        f32,f16,bf16; q8,q4,q4_1,q2 for quant (default f32)\n"
             "  --group N --residual N   quant settings as for run\n"
             "  --preset NAME       KV shape (default stories15m)\n"
             "  --sequences N       requests (default 64)\n"
             "  --max-prompt N --max-output N   length bounds (default 128, 384)\n"
             "  --lengths LIST      uniform,longtail (default both; longtail: lognormal, median\n"
             "                      max/8, sigma 1)\n"
             "  --fork LIST         none,parallel,beam (default none) with --fork-n N (default 4)\n"
             "  --budget-mb X       KV budget in MiB (default: a quarter of what every sequence,\n"
             "                      forks included, would need at its longest)\n"
             "  --no-attend         memory only: skip attention (much faster)\n"
             "  --time-budget S     seconds per cache; one past it stops, marked cut_short\n"
             "  --seed N, --csv FILE\n"
             "  --dry-run           check every flag and cache, measure nothing\n\n"
             "Columns: max_run = most sequences running at once; mean_run = their mean over\n"
             "rounds: the sequences the budget holds;\n"
             "util = used / reserved KV bytes (mean over rounds); live/bud = used / budget;\n"
             "shared = 1 - bytes held / bytes the same sequences would hold without sharing;\n"
             "preempt = requests preempted; step_us = median time of one sequence's token\n"
             "(append + attend over every layer).");
    } else if (cmd && strcmp(cmd, "export") == 0) {
        puts("usage: kvbench export --preset NAME [--seed N] [model overrides] --out FILE\n\n"
             "Writes the seeded random model as a llama2.c checkpoint (needs head-dim x heads = dim).");
    } else if (cmd && strcmp(cmd, "run") == 0) {
        puts("usage: kvbench run [flags]\n\n"
             "Prefills a prompt, then decodes --tokens tokens greedily with every backend x\n"
             "storage type x allocation mode, --reps times after a warm-up, timing each step.\n\n"
             "  --backend LIST      backends (default nocache,contiguous; see 'kvbench list')\n"
             "  --dtype LIST        cache storage types: f32,f16,bf16; q8,q4,q4_1,q2 for the\n"
             "                      quant backend (default f32). Every lossy type also gets\n"
             "                      KL, top-1 agreement and attend error against the f32\n"
             "                      cache over the same tokens (quality.csv)\n"
             "  --mode LIST         contiguous allocation: grow,prealloc (default grow)\n"
             "  --block LIST        paged block sizes in tokens, 1..256 (default 16)\n"
             "  --pool-mb N         paged pool size in MiB (or --pool-blocks N); default:\n"
             "                      room for the whole sequence\n"
             "  --preset NAME       model shape (default stories15m; see 'kvbench list')\n"
             "  --checkpoint FILE   llama2.c checkpoint instead of seeded random weights\n"
             "  --dim --hidden --layers --heads --kv-heads --head-dim --vocab --max-seq N\n"
             "  --rope-theta X      override one field of the preset\n"
             "  --untied            random weights with a separate classifier (a tied one makes\n"
             "                      random models copy their input token: KL would be ~0)\n"
             "  --key-outliers N    scale N channel pairs of Wk by 30 and of Wq by 1/30: same\n"
             "                      model, keys with outlier channels\n"
             "  --qkernel NAME      quant's fused loops: auto (default), portable, avx512,\n"
             "                      avx512-vnni\n"
             "  --kernel NAME       contiguous and paged attend loops: auto (default), portable,\n"
             "                      avx2, avx512\n"
             "  --group N           quant: values per scale, a power of two 8..256 (default 32)\n"
             "  --residual N        quant: newest tokens kept in f32 (default 128 for q2, else 0)\n"
             "  --key-axis LIST     quant: default,token,channel: keys grouped per token or per\n"
             "                      channel across --group tokens (default: channel for q2)\n"
             "  --seed N            weights and prompt seed (default 1)\n"
             "  --prompt P          prompt length in tokens (default 16)\n"
             "  --prompt-ids LIST   explicit prompt token ids, e.g. 1,450,4996\n"
             "  --tokens N          decode steps per repetition (default 128)\n"
             "  --reps R            timed repetitions (default 3)\n"
             "  --warmup N          untimed decode steps before them (default 32)\n"
             "  --time-budget S     seconds per point; a point past it stops and is marked\n"
             "                      cut_short (default 0: none)\n"
             "  --threads N         OpenBLAS threads, and attention threads for the contiguous\n"
             "                      and quant caches (default 1)\n"
             "  --pin POLICY        none (default), compact, spread: bind the decode thread and\n"
             "                      each attention worker (--threads) to its own core (hwloc,\n"
             "                      verified; recorded per thread in meta.json)\n"
             "  --out DIR           result directory (default results/<run-id>); must not exist\n"
             "  --no-ceilings       skip measuring read bandwidth and sgemm for meta.json\n"
             "  --quiet             no progress line, summary or quality table\n"
             "  --dry-run           check every flag, the model shape and each point, measure\n"
             "                      nothing and write nothing\n\n"
             "--group defaults to 32, or to the largest power of two from 8 that divides the\n"
             "head dimension when 32 does not (said on stderr). More --threads than online\n"
             "cores is warned about and recorded in meta.json.");
    } else if (cmd && strcmp(cmd, "sweep") == 0) {
        puts("usage: kvbench sweep NAME|FILE [--set section.key=value ...] [--out DIR] [--quiet]\n"
             "       kvbench sweep NAME --emit-jobs [--out DIR]   (one command per point)\n"
             "       kvbench sweep --resume DIR.partial [--only POINT]\n\n"
             "Runs a named sweep (bench/sweeps/NAME.sweep: smoke, default, long-context), a\n"
             "definition file, or one made of --set alone. A sweep is the product of its lists:\n"
             "  run.     preset backends dtypes blocks threads prompt tokens reps warmup max_seq\n"
             "           group budget\n"
             "  attend.  backends dtypes shapes (H/KV/HD) ctxs blocks threads reps group budget\n"
             "  quality. preset dtypes tokens max_seq group residual budget\n"
             "  serve.   preset backends blocks sequences budget\n"
             "Each point is one kvbench command run as a child process into DIR/points/<point>/;\n"
             "budget is seconds per point: a decode point stops there and is marked cut_short,\n"
             "and any point still running at twice its budget plus a minute is stopped and\n"
             "marked timed_out (never dropped). DIR (default results/<UTC>-sweep-NAME) is built\n"
             "as DIR.partial: an interrupted sweep keeps every finished point and --resume runs\n"
             "the rest. DIR/sweep.csv lists every point's status, time, command, and the host\n"
             "and CPU that ran it. Every value, and each point's own command (--dry-run), is\n"
             "checked before anything runs. At the end: report.md, report.html, plot data and\n"
             "images (gnuplot), written before DIR.partial becomes DIR.\n\n"
             "--emit-jobs creates DIR.partial and prints one command per point instead\n"
             "(kvbench sweep --resume DIR.partial --only POINT), for GNU parallel or a Slurm\n"
             "array on machines of one kind; a last --resume finishes the sweep. To compare\n"
             "machines, sweep on each, then 'kvbench merge OUT DIR...'.\n\n"
             "SIGINT, SIGTERM or SIGHUP stop the running point's child (left pending) before the\n"
             "sweep dies; a point's lock is held until its child is gone.\n"
             "exit status: 0 done; 1 a point failed or is not done, or a file could not be\n"
             "written (--resume continues); 2 refused before anything was made; 3 nothing\n"
             "measured (every point skipped or timed out).");
    } else if (cmd && strcmp(cmd, "report") == 0) {
        puts("usage: kvbench report DIR\n\n"
             "Writes DIR/plots/*.dat and *.vars, draws them as DIR/plots/*.png and *.svg with\n"
             "gnuplot (found on PATH; without it, one note and 'Plot not drawn' in the report),\n"
             "then DIR/report.md and DIR/report.html, for a run, a sweep or a merge.\n"
             "exit status: 0 done; 1 a file could not be written or gnuplot failed on a\n"
             "script; 2 DIR is not a kvbench result.");
    } else if (cmd && strcmp(cmd, "compare") == 0) {
        puts("usage: kvbench compare BASE NEW [--alpha A] [--min-change F] [--tolerance F]\n"
             "                       [--gate all|KINDS] [--any-machine] [--allow-missing]\n"
             "                       [--filter REGEX]\n"
             "                       [--markdown FILE] [--json FILE] [--quiet]\n\n"
             "BASE and NEW: result directories (run, sweep, merge) or Google Benchmark JSON\n"
             "files. Cases are matched by name:\n"
             "  time        each repetition's time (decode totals, attend rounds, gbench runs);\n"
             "  ratio       paged or quant over the contiguous cache timed beside it, per round;\n"
             "  of ceiling  the fraction of the run's own read ceiling, per round;\n"
             "  exact       cache bytes: any growth regresses;\n"
             "  tolerance   errors on seeded inputs: growth past --tolerance (default 0.05)\n"
             "              AND past the round-off floor of the case's storage type\n"
             "              (max(2^-17, step/64): f32 round-off never gates, q8 2^-13).\n"
             "A sampled case regresses only when the two-sided Mann-Whitney U test gives p <\n"
             "--alpha (default 0.05) AND its median moved the wrong way by at least\n"
             "--min-change (default 0.10); sample sizes that cannot reach alpha are reported\n"
             "as too few. --gate names the kinds that can regress (time,ratio,ceiling,exact,\n"
             "tolerance; default all). Of those, absolute times are gated only when both sides\n"
             "ran on the same machine (CPU model and host), ratios and ceilings only on the\n"
             "same CPU model, tolerances only between results of the same kernels (or the\n"
             "same CPU model where a side does not record them); --any-machine lifts that.\n"
             "A BASE with a STALE file gates bytes and seeded errors only. Other changes are\n"
             "reported. A gated case of BASE missing from NEW fails the comparison\n"
             "(--allow-missing: reported).\n"
             "Exit status: 0 nothing regressed; 1 something did, or a gated case is missing;\n"
             "2 unusable input, refused before judging (file and line named).");
    } else if (cmd && strcmp(cmd, "merge") == 0) {
        puts("usage: kvbench merge OUT SWEEP_DIR...\n\n"
             "Copies each machine's sweep directory to OUT/machines/<host>/ (its machine.txt,\n"
             "definition and points kept), refuses two from the same host, and writes the\n"
             "report: the plots then carry every machine, each series marked @host, with a\n"
             "colour and a read ceiling per machine. Sweeps of different definitions are\n"
             "refused, naming the first key that differs.\n"
             "exit status: 0 merged; 1 a copy, the report or the rename failed (OUT.partial\n"
             "removed); 2 refused: an empty or existing OUT or OUT.partial, a directory that\n"
             "is not a finished sweep, two from one host, a host that is not a plain name.");
    } else {
        puts("kvbench: what a KV cache buys and costs in autoregressive decoding\n\n"
             "usage: kvbench <command> [flags]\n\n"
             "commands:\n"
             "  run      decode with each backend and write results/<run-id>/\n"
             "  attend   time attend alone across backends, block sizes and contexts\n"
             "  serve-sim  many sequences under one memory budget: utilization, fit, sharing\n"
             "  sweep    a named product of runs, attend tables, quality and serving points\n"
             "  report   report.md, report.html and plot data for a result directory\n"
             "  merge    combine several machines' sweep directories\n"
             "  compare  BASE NEW: regressions, with a Mann-Whitney U test per case\n"
             "  list     backends, presets, storage types\n"
             "  info     machine description and measured ceilings\n"
             "  export   write a seeded random model as a llama2.c checkpoint\n"
             "  version  the commit and compiler of this build (also --version)\n"
             "  help [COMMAND]\n\n"
             "'kvbench help run' (or 'kvbench run --help') lists the run flags.\n\n"
             "exit status: 0 done; 1 a point failed or a file could not be read or written;\n"
             "2 bad usage (refused before any work); 3 nothing measured (every point\n"
             "unsupported or timed out).");
    }
}

/* Flags shared by run and export; returns 1 when handled, 0 when unknown, or
 * 2 + error when the value is bad. */
static int parse_flag(cli *c, const char *flag, const char *val, int *used_val)
{
    struct { const char *name; int *dst; long long lo, hi; } ints[] = {
        {"--prompt", &c->prompt, 1, 1 << 20}, {"--tokens", &c->tokens, 1, 1 << 20},
        {"--reps", &c->reps, 1, 1000}, {"--warmup", &c->warmup, 0, 1 << 20},
        {"--threads", &c->threads, 1, 1024}, {"--dim", &c->dim, 1, 1 << 20},
        {"--hidden", &c->hidden, 1, 1 << 20}, {"--layers", &c->layers, 1, 4096},
        {"--heads", &c->heads, 1, 4096}, {"--kv-heads", &c->kv_heads, 1, 4096},
        {"--head-dim", &c->head_dim, 2, 65536}, {"--vocab", &c->vocab, 1, 1 << 24},
        {"--max-seq", &c->max_seq, 1, 1 << 24}, {"--sequences", &c->sequences, 1, 4096},
        {"--max-prompt", &c->max_prompt, 1, 1 << 20}, {"--max-output", &c->max_output, 1, 1 << 20},
        {"--fork-n", &c->fork_n, 2, 64}, {"--group", &c->group, 8, 256},
        {"--residual", &c->residual, 0, 65536}, {"--key-outliers", &c->key_outliers, 0, 4096},
    };
    struct { const char *name; const char **dst; } strs[] = {
        {"--backend", &c->backends}, {"--dtype", &c->dtypes}, {"--mode", &c->modes},
        {"--preset", &c->preset}, {"--checkpoint", &c->checkpoint},
        {"--prompt-ids", &c->prompt_ids}, {"--out", &c->out}, {"--block", &c->blocks},
        {"--ctx", &c->ctxs}, {"--csv", &c->csv}, {"--lengths", &c->lengths}, {"--fork", &c->forks},
        {"--key-axis", &c->key_axes}, {"--qkernel", &c->qkernels}, {"--kernel", &c->kernels}, {"--pin", &c->pin},
    };
    *used_val = 1;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (strcmp(flag, ints[i].name) == 0) {
            if (!val) return 2 + kvb_usage_error("%s needs a value", flag);
            long long v = 0;
            if (kvb_parse_int(flag, val, ints[i].lo, ints[i].hi, &v)) return 2 + KVB_EXIT_USAGE;
            *ints[i].dst = (int)v;
            return 1;
        }
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (strcmp(flag, strs[i].name) == 0) {
            if (!val || !*val) return 2 + kvb_usage_error("%s needs a value", flag);
            *strs[i].dst = val;
            return 1;
        }
    if (strcmp(flag, "--pool-mb") == 0 || strcmp(flag, "--pool-blocks") == 0) {
        if (!val) return 2 + kvb_usage_error("%s needs a value", flag);
        return kvb_parse_int(flag, val, 1, 1ll << 40, flag[7] == 'm' ? &c->pool_mb : &c->pool_blocks)
                   ? 2 + KVB_EXIT_USAGE : 1;
    }
    if (strcmp(flag, "--seed") == 0) {
        if (!val) return 2 + kvb_usage_error("--seed needs a value");
        return kvb_parse_int(flag, val, 0, LLONG_MAX, &c->seed) ? 2 + KVB_EXIT_USAGE : 1;
    }
    if (strcmp(flag, "--time-budget") == 0) {
        if (!val) return 2 + kvb_usage_error("--time-budget needs a value");
        return kvb_parse_double(flag, val, 0, 1e7, &c->time_budget) ? 2 + KVB_EXIT_USAGE : 1;
    }
    if (strcmp(flag, "--budget-mb") == 0) {
        if (!val) return 2 + kvb_usage_error("--budget-mb needs a value");
        return kvb_parse_double(flag, val, 0.001, 1e7, &c->budget_mb) ? 2 + KVB_EXIT_USAGE : 1;
    }
    if (strcmp(flag, "--rope-theta") == 0) {
        if (!val) return 2 + kvb_usage_error("--rope-theta needs a value");
        return kvb_parse_double(flag, val, 1.0001, 1e12, &c->rope_theta) ? 2 + KVB_EXIT_USAGE : 1;
    }
    *used_val = 0;
    if (strcmp(flag, "--quiet") == 0) { c->quiet = 1; return 1; }
    if (strcmp(flag, "--dry-run") == 0) { c->dry_run = 1; return 1; }
    if (strcmp(flag, "--no-ceilings") == 0) { c->no_ceilings = 1; return 1; }
    if (strcmp(flag, "--no-attend") == 0) { c->no_attend = 1; return 1; }
    if (strcmp(flag, "--untied") == 0) { c->untied = 1; return 1; }
    return 0;
}

static int parse_args(cli *c, int argc, char **argv, const char *cmd)
{
    for (int i = 0; i < argc; i++) {
        char flag[64];
        const char *a = argv[i], *val = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { kvb_print_help(cmd); return -1; }
        if (strncmp(a, "--", 2) != 0) return kvb_usage_error("unexpected argument '%s' to %s", a, cmd);
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        if (len >= sizeof flag) return kvb_usage_error("unknown flag '%s' for %s", a, cmd);
        memcpy(flag, a, len);
        flag[len] = 0;
        val = eq ? eq + 1 : (i + 1 < argc ? argv[i + 1] : NULL);
        int used;
        int r = parse_flag(c, flag, val, &used);
        if (r == 0) return kvb_usage_error("unknown flag '%s' for %s", flag, cmd);
        if (r >= 2) return KVB_EXIT_USAGE;
        if (eq && !used) return kvb_usage_error("%s takes no value", flag);
        if (used && !eq) i++;
    }
    return 0;
}

/* The model's shape from --checkpoint's header (no weights read) or from the
 * preset plus overrides; every refusal names the value. */
static int model_config(const cli *c, kvb_model_config *cfg, const char **source)
{
    char msg[512];
    if (c->checkpoint) {
        if (c->preset) return kvb_usage_error("--preset and --checkpoint exclude each other");
        if (c->dim || c->hidden || c->layers || c->heads || c->kv_heads || c->head_dim || c->vocab ||
            c->rope_theta > 0 || c->untied)
            return kvb_usage_error("--checkpoint takes its shape from the file: only --max-seq may "
                               "override it");
        if (kvb_model_read_config(c->checkpoint, cfg, msg, sizeof msg) != KVB_STATUS_OK) {
            fprintf(stderr, "kvbench: %s\n", msg);
            return KVB_EXIT_USAGE;
        }
        if (c->max_seq > cfg->max_seq)
            fprintf(stderr, "kvbench: note: --max-seq %d is above checkpoint '%s''s own seq_len %d: "
                    "positions past %d were never trained (RoPE extrapolates)\n", c->max_seq, c->checkpoint,
                    cfg->max_seq, cfg->max_seq);
        if (c->max_seq) cfg->max_seq = c->max_seq;
        *source = c->checkpoint;
        return 0;
    }
    const char *preset = c->preset ? c->preset : "stories15m";
    if (kvb_model_preset(preset, cfg) != KVB_STATUS_OK) {
        char names[256] = "";
        for (int i = 0; kvb_model_preset_name(i); i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                     kvb_model_preset_name(i));
        return kvb_usage_error("unknown preset '%s': allowed are %s", preset, names);
    }
    if (c->dim) cfg->dim = c->dim;
    if (c->hidden) cfg->hidden_dim = c->hidden;
    if (c->layers) cfg->n_layers = c->layers;
    if (c->heads) cfg->n_heads = c->heads;
    if (c->kv_heads) cfg->n_kv_heads = c->kv_heads;
    if (c->head_dim) cfg->head_dim = c->head_dim;
    else if (c->dim || c->heads) cfg->head_dim = cfg->dim / cfg->n_heads;
    if (c->vocab) cfg->vocab_size = c->vocab;
    if (c->max_seq) cfg->max_seq = c->max_seq;
    if (c->rope_theta > 0) cfg->rope_theta = (float)c->rope_theta;
    if (c->untied) cfg->shared_classifier = 0;
    if (kvb_model_config_check(cfg, msg, sizeof msg) != KVB_STATUS_OK)
        return kvb_usage_error("bad model shape: %s", msg);
    *source = preset;
    return 0;
}

/* The weights for a shape model_config accepted: the checkpoint's, or seeded
 * random ones. */
static int build_model(const cli *c, const kvb_model_config *cfg, kvb_model *m)
{
    char msg[512];
    kvb_status st = c->checkpoint ? kvb_model_load(m, c->checkpoint, c->max_seq, msg, sizeof msg)
                                  : kvb_model_init_random(m, cfg, (uint64_t)c->seed, msg, sizeof msg);
    if (st != KVB_STATUS_OK) {
        fprintf(stderr, "kvbench: %s\n", msg);
        return st == KVB_STATUS_FORMAT ? KVB_EXIT_USAGE : KVB_EXIT_FAIL;
    }
    return 0;
}

/* Refuses, before anything is allocated, an ask beyond the memory the OS
 * reports available; what names the ask for the message. */
static int check_memory(const char *what, double bytes)
{
    size_t avail = kvb_mem_available();
    if (avail && bytes > (double)avail)
        return kvb_usage_error("%s needs %.2f GB, but the OS reports %.2f GB available (MemAvailable): "
                               "ask for less", what, bytes / 1e9, (double)avail / 1e9);
    return 0;
}

/* Every case of a command is unsupported: said with the last reason; exit 3. */
static int nothing_to_measure(const char *noun, int n, const char *why)
{
    fprintf(stderr, "kvbench: nothing to measure: all %d %s%s unsupported (the last: %s) (exit %d)\n", n, noun,
            n == 1 ? " is" : "s are", why, KVB_EXIT_NOTHING);
    return KVB_EXIT_NOTHING;
}

/* More threads than online cores share cores: the figures then measure the
 * scheduler, not the machine. Said on stderr; the caller records it too. */
static int threads_oversubscribed(int threads)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
#if defined(__linux__)
    cpu_set_t set;                            /* a taskset or a container's cpuset: fewer to share */
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0 && CPU_COUNT(&set) < cores)
        cores = CPU_COUNT(&set);
#endif
    if (cores > 0 && threads > cores) {
        fprintf(stderr, "kvbench: warning: --threads %d is above the %ld core%s this process may use: threads will "
                "share cores and the times will not show this machine's speed\n", threads, cores, cores == 1 ? "" : "s");
        return 1;
    }
    return 0;
}

static void cli_defaults(cli *c)
{
    memset(c, 0, sizeof *c);
    c->backends = "nocache,contiguous";
    c->dtypes = "f32";
    c->modes = "grow";
    c->blocks = "16";
    c->prompt = 16;
    c->tokens = 128;
    c->reps = 3;
    c->warmup = 32;
    c->threads = 1;
    c->seed = 1;
    c->residual = -1;                 /* the format's default: 128 for q2, else 0 */
    c->key_axes = "default";
    c->qkernels = "auto";
    c->kernels = "auto";
    c->pin = "none";
}

/* --pin: binds the calling (decode) thread as thread 0, and (through
 * kvb_options.thread_start) each attention worker a cache starts; a machine
 * where hwloc cannot bind gets a note on stderr and runs unpinned. */
static int apply_pin(const cli *c, const kvb_topo *topo, kvb_pin_set *ps)
{
    kvb_pin pin;
    if (kvb_pin_parse(c->pin, &pin) != KVB_STATUS_OK)
        return kvb_usage_error("unknown --pin '%s': allowed are none, compact, spread", c->pin);
    if (c->threads > KVB_PIN_MAX_THREADS && pin != KVB_PIN_NONE)
        return kvb_usage_error("--pin with --threads %d: at most %d threads can be pinned", c->threads,
                           KVB_PIN_MAX_THREADS);
    if (kvb_pin_set_init(ps, topo, pin) != KVB_STATUS_OK)
        fprintf(stderr, "kvbench: --pin %s: %s\n", c->pin, ps->note);
    return 0;
}

/* The options' hook that pins a cache's workers, when pinning is on. */
static void pin_workers(kvb_options *o, kvb_pin_set *ps)
{
    if (ps->policy == KVB_PIN_NONE || ps->core[0] < 0) return;
    o->thread_start = kvb_pin_thread_start;
    o->thread_start_arg = ps;
}

/* Whether backend b is paired with storage type dts[j] in a cross product:
 * quantized types go with quantized backends only, and the mismatched pairs
 * are left out silently unless b has no type of its kind in the list (then
 * they are kept, to be reported as skipped with the reason). */
static int pair_wanted(const kvb_backend *b, const kvb_dtype *dts, int nd, int j)
{
    int quant = (b->flags & KVB_BACKEND_QUANT) != 0, any = 0;
    if (b->flags & KVB_BACKEND_RECOMPUTE) return 1;
    for (int i = 0; i < nd; i++) any |= kvb_dtype_is_quant(dts[i]) == quant;
    return !any || kvb_dtype_is_quant(dts[j]) == quant;
}

/* The values per quantization scale when --group is not given: 32 (as in
 * llama.cpp's q8_0), or the largest power of two from 8 that divides head_dim
 * when 32 does not; 0 when none does (the quant points are then skipped). */
static int default_group(int head_dim)
{
    for (int g = 32; g >= 8; g /= 2)
        if (head_dim % g == 0) return g;
    return 0;
}

/* Says once which group a quantized command uses when it is not the usual 32. */
static void note_group(const cli *c, int head_dim, int any_quant)
{
    int g = default_group(head_dim);
    if (c->group || !any_quant || g == 32) return;
    if (g) fprintf(stderr, "kvbench: quant group %d: the default 32 does not divide head_dim %d\n", g, head_dim);
    else fprintf(stderr, "kvbench: no quant group from 8 to 32 divides head_dim %d: give --group\n", head_dim);
}

/* The quantization options of one case: --group (default_group otherwise),
 * --residual (default 128 for q2 as in KIVI, 0 otherwise) and one key axis. */
static void set_quant_options(const cli *c, int head_dim, kvb_key_axis axis, kvb_options *o)
{
    if (!kvb_dtype_is_quant(o->dtype)) return;
    int g = default_group(head_dim);
    o->group = c->group ? c->group : g ? g : 32;
    o->residual = c->residual >= 0 ? c->residual : o->dtype == KVB_DTYPE_Q2 ? 128 : 0;
    o->key_axis = axis;
}

/* --key-axis: a list of default, token, channel; --group must be a power of two. */
static int parse_key_axes(const cli *c, kvb_key_axis *axes, int *n)
{
    char buf[256];
    char *items[MAX_LIST];
    snprintf(buf, sizeof buf, "%s", c->key_axes);
    if (kvb_split_list("--key-axis", buf, items, MAX_LIST, n)) return KVB_EXIT_USAGE;
    for (int i = 0; i < *n; i++)
        if (kvb_key_axis_parse(items[i], &axes[i]) != KVB_STATUS_OK)
            return kvb_usage_error("unknown --key-axis '%s': allowed are default, token, channel", items[i]);
    if (c->group && (c->group & (c->group - 1)))
        return kvb_usage_error("--group %d: must be a power of two from 8 to 256", c->group);
    return 0;
}

static int cmd_list(void)
{
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
        "IEEE binary32", "IEEE binary16", "bfloat16",
        "int8 codes, f16 scale per group (llama.cpp q8_0)",
        "4-bit symmetric codes, f16 scale per group (q4_0)",
        "4-bit codes, f16 scale and minimum per group (q4_1)",
        "2-bit codes, f16 scale and zero point per group; KIVI: keys per channel, 128 f32 residual",
    };
    for (int i = 0; i < KVB_DTYPE_COUNT; i++)
        printf("  %-6s %5.2f  %s%s\n", kvb_dtype_name((kvb_dtype)i), kvb_dtype_bits((kvb_dtype)i, 32), what[i],
               kvb_dtype_is_quant((kvb_dtype)i) ? " [backend quant]" : "");
    puts("allocation modes (--mode): grow (capacity doubles), prealloc (max_seq up front)");
    return 0;
}

static int cmd_info(int argc, char **argv)
{
    long long threads = 1, bw_mb = 1024;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) { kvb_print_help("info"); return 0; }
        if (strcmp(argv[i], "--cpu-key") == 0) {   /* for scripts: nothing measured */
            char key[256];
            kvb_cpu_key(key, sizeof key);
            printf("%s\n", key);
            return 0;
        }
        if (i + 1 >= argc) return kvb_usage_error("unknown or incomplete flag '%s' for info", argv[i]);
        if (strcmp(argv[i], "--threads") == 0) {
            if (kvb_parse_int("--threads", argv[++i], 1, 1024, &threads)) return KVB_EXIT_USAGE;
        } else if (strcmp(argv[i], "--bw-mb") == 0) {
            if (kvb_parse_int("--bw-mb", argv[++i], 16, 1 << 20, &bw_mb)) return KVB_EXIT_USAGE;
        } else
            return kvb_usage_error("unknown flag '%s' for info", argv[i]);
    }
    openblas_set_num_threads((int)threads);
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
        printf("pinning:        %s\n", topo.can_bind ? "hwloc can bind threads here (--pin compact|spread)"
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
            printf("read bandwidth: %.1f GB/s %d thread%s over a %zu MiB array (p10 %.1f, p90 %.1f)\n",
                   rb[i]->gbs, rb[i]->threads, rb[i]->threads == 1 ? "" : "s", rb[i]->bytes >> 20,
                   rb[i]->gbs_p10, rb[i]->gbs_p90);
    printf("sgemm:          %.1f GFLOP/s (n = %d, %d thread%s)\n", k.sgemm_gflops, k.sgemm_n,
           k.blas_threads, k.blas_threads == 1 ? "" : "s");
    return 0;
}

static int cmd_export(int argc, char **argv)
{
    cli c;
    cli_defaults(&c);
    int r = parse_args(&c, argc, argv, "export");
    if (r) return r < 0 ? 0 : r;
    if (!c.out) return kvb_usage_error("export needs --out FILE");
    struct stat sb;
    if (lstat(c.out, &sb) == 0)
        return kvb_usage_error("--out '%s' exists: export never overwrites a file; choose another name", c.out);
    kvb_model_config cfg;
    const char *src;
    if ((r = model_config(&c, &cfg, &src)) != 0) return r;
    if ((r = check_memory("the model's f32 weights", 4.0 * (double)kvb_model_param_count(&cfg))) != 0) return r;
    kvb_model m;
    if ((r = build_model(&c, &cfg, &m)) != 0) return r;
    char msg[512];
    kvb_status st = kvb_model_save(&m, c.out, msg, sizeof msg);
    kvb_model_free(&m);
    if (st != KVB_STATUS_OK) {
        fprintf(stderr, "kvbench: %s\n", msg);
        return st == KVB_STATUS_UNSUPPORTED || st == KVB_STATUS_INVALID_ARG ? KVB_EXIT_USAGE : 1;
    }
    printf("wrote %s\n", c.out);
    return 0;
}

static void print_table(const kvb_point *pts, int n, const kvb_model_config *mc, int prompt_len)
{
    printf("%-24s %-9s %9s %9s %9s %11s %12s %12s %9s %9s\n", "point", "status", "ttft_ms", "step1_ms", "last_ms",
           "total_ms", "cache_used_B", "reserved_B", "exp_total", "exp_tail");
    for (int i = 0; i < n; i++) {
        char label[128];
        kvb_point_label(&pts[i], label, sizeof label);
        if (pts[i].status == KVB_POINT_SKIPPED || pts[i].status == KVB_POINT_FAILED) {
            printf("%-24s %-9s %s\n", label, kvb_point_status_name(pts[i].status), pts[i].reason);
            continue;
        }
        kvb_point_summary s;
        kvb_point_summarize(&pts[i], mc, prompt_len, &s);
        printf("%-24s %-9s %9.3f %9.3f %9.3f %11.1f %12zu %12zu %9.2f %9.2f\n", label,
               kvb_point_status_name(pts[i].status), s.prefill_ns_median / 1e6, s.first_ns_median / 1e6,
               s.last_ns_median / 1e6, s.total_ns_median / 1e6, s.used, s.reserved, s.fit_total_b,
               s.fit_tail_b);
    }
}

/* Parses a comma list of integers in [lo, hi] into out (at most MAX_LIST). */
static int parse_int_list(const char *flag, const char *list, long long lo, long long hi, int *out, int *n)
{
    char buf[512];
    char *items[MAX_LIST];
    snprintf(buf, sizeof buf, "%s", list);
    if (kvb_split_list(flag, buf, items, MAX_LIST, n)) return KVB_EXIT_USAGE;
    for (int i = 0; i < *n; i++) {
        long long v = 0;
        if (kvb_parse_int(flag, items[i], lo, hi, &v)) return KVB_EXIT_USAGE;
        out[i] = (int)v;
    }
    return 0;
}

/* Parses a comma list of names into their indices in names[]; an unknown one
 * is refused with the allowed names. */
static int parse_enum_list(const char *flag, const char *list, const char *const *names, int n_names,
                           int *out, int *n)
{
    char buf[512], allowed[256] = "";
    char *items[MAX_LIST];
    snprintf(buf, sizeof buf, "%s", list);
    if (kvb_split_list(flag, buf, items, MAX_LIST, n)) return KVB_EXIT_USAGE;
    for (int j = 0; j < n_names; j++)
        snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed), "%s%s", j ? ", " : "", names[j]);
    for (int i = 0; i < *n; i++) {
        int j = 0;
        while (j < n_names && strcmp(items[i], names[j]) != 0) j++;
        if (j == n_names) return kvb_usage_error("unknown %s '%s': allowed are %s", flag, items[i], allowed);
        out[i] = j;
    }
    return 0;
}

/* Resolves --backend and --dtype lists; names every bad one. */
static int parse_backends_dtypes(const cli *c, const kvb_backend **backs, int *nb, kvb_dtype *dts, int *nd)
{
    char bl[1024], dl[256];
    char *bn[MAX_LIST], *dn[MAX_LIST];
    snprintf(bl, sizeof bl, "%s", c->backends);
    snprintf(dl, sizeof dl, "%s", c->dtypes);
    if (kvb_split_list("--backend", bl, bn, MAX_LIST, nb) || kvb_split_list("--dtype", dl, dn, MAX_LIST, nd))
        return KVB_EXIT_USAGE;
    for (int i = 0; i < *nb; i++)
        if (!(backs[i] = kvb_backend_find(bn[i]))) {
            char names[256] = "";
            for (int j = 0; j < kvb_backend_count(); j++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", j ? ", " : "",
                         kvb_backend_at(j)->name);
            return kvb_usage_error("unknown backend '%s': allowed are %s", bn[i], names);
        }
    for (int i = 0; i < *nd; i++)
        if (kvb_dtype_parse(dn[i], &dts[i]) != KVB_STATUS_OK)
            return kvb_usage_error("unknown storage type '%s': allowed are f32, f16, bf16, q8, q4, q4_1, q2", dn[i]);
    return 0;
}

static int cmd_attend(int argc, char **argv)
{
    cli c;
    cli_defaults(&c);
    c.backends = "contiguous,paged";
    c.ctxs = "1024,8192,32768";
    c.reps = 21;
    c.sequences = 1;
    int r = parse_args(&c, argc, argv, "attend");
    if (r) return r < 0 ? 0 : r;
    const kvb_backend *backs[MAX_LIST];
    kvb_dtype dts[MAX_LIST];
    int nb, nd, nk, nc, na, nq, nf, blocks[MAX_LIST], ctxs[MAX_LIST], qk[MAX_LIST], fk[MAX_LIST];
    kvb_key_axis axes[MAX_LIST];
    static const char *const qk_names[] = {"auto", "portable", "avx512", "avx512-vnni"};
    static const char *const fk_names[] = {"auto", "portable", "avx2", "avx512"};
    if ((r = parse_backends_dtypes(&c, backs, &nb, dts, &nd)) != 0) return r;
    if ((r = parse_int_list("--block", c.blocks, 1, 256, blocks, &nk)) != 0) return r;
    if ((r = parse_int_list("--ctx", c.ctxs, 1, 1 << 22, ctxs, &nc)) != 0) return r;
    if ((r = parse_key_axes(&c, axes, &na)) != 0) return r;
    if ((r = parse_enum_list("--qkernel", c.qkernels, qk_names, 4, qk, &nq)) != 0) return r;
    if ((r = parse_enum_list("--kernel", c.kernels, fk_names, 4, fk, &nf)) != 0) return r;
    kvb_shape shape = {1, c.heads ? c.heads : 32, c.kv_heads ? c.kv_heads : 8,
                       c.head_dim ? c.head_dim : 128, ctxs[0]};
    char msg[512];
    if (kvb_shape_check(&shape, msg, sizeof msg) != KVB_STATUS_OK) return kvb_usage_error("%s", msg);
    if (c.key_outliers > shape.head_dim / 2)
        return kvb_usage_error("--key-outliers %d: at most head_dim / 2 = %d channel pairs", c.key_outliers,
                           shape.head_dim / 2);
    /* every case is checked before anything is measured: a command whose
     * every case is unsupported measures nothing and says so (exit 3) */
    {
        int runnable = 0, cases_n = 0, any_quant = 0;
        double kv_max = 0;
        char why[256] = "";
        for (int ci = 0; ci < nc; ci++)
            for (int i = 0; i < nb; i++)
                for (int j = 0; j < nd; j++) {
                    if (!pair_wanted(backs[i], dts, nd, j)) continue;
                    int pg = (backs[i]->flags & KVB_BACKEND_PAGED) != 0, qt = kvb_dtype_is_quant(dts[j]);
                    any_quant |= qt;
                    for (int k = 0; k < (pg ? nk * nf : qt ? na * nq : nf); k++) {
                        kvb_options o = {.dtype = dts[j], .max_seqs = c.sequences, .threads = c.threads,
                                         .block_tokens = pg ? blocks[k / nf] : 0};
                        if (!qt) o.kernel = fk_names[fk[k % nf]];
                        set_quant_options(&c, shape.head_dim, qt ? axes[k / nq] : KVB_KEY_AXIS_DEFAULT, &o);
                        if (qt) o.qkernel = qk_names[qk[k % nq]];
                        kvb_shape sh = shape;
                        sh.max_seq = ctxs[ci];
                        cases_n++;
                        if (!backs[i]->attend) {
                            snprintf(why, sizeof why, "%s stores nothing to attend over", backs[i]->name);
                            continue;
                        }
                        if (kvb_backend_supports(backs[i], &sh, &o, why, sizeof why) != KVB_STATUS_OK) continue;
                        runnable++;
                        /* K/V of every sequence, f32 staging of the seeded data, and the f32 store
                         * the quantized cases are compared against */
                        double kv = 2.0 * sh.n_kv_heads * sh.head_dim * (double)ctxs[ci] *
                                    (kvb_dtype_bits(o.dtype, o.group) / 8.0 * c.sequences + 8.0);
                        if (kv > kv_max) kv_max = kv;
                    }
                }
        note_group(&c, shape.head_dim, any_quant);
        if (runnable == 0) {
            return nothing_to_measure("case", cases_n, why);
        }
        char what[96];
        snprintf(what, sizeof what, "attend's largest case (%d sequence%s at %d tokens)", c.sequences,
                 c.sequences == 1 ? "" : "s", ctxs[nc - 1]);
        if ((r = check_memory(what, kv_max + (c.no_ceilings ? 0 : (double)(1u << 30)))) != 0) return r;
        if (c.dry_run) {
            printf("dry run: %d case%s (%d runnable); flags valid, nothing measured\n", cases_n,
                   cases_n == 1 ? "" : "s", runnable);
            return 0;
        }
    }
    int oversubscribed = threads_oversubscribed(c.threads);
    /* the ceiling every GB/s figure is given against: one thread's read, or all
     * cores' with --threads above 1, over a 1 GiB array. Measured first (before
     * pinning) and again after each context's cases; a context's cases are
     * judged against the higher of the two around them. On a shared machine the
     * bandwidth drifts by a third within minutes (a Zen 5 VM: 20 to 38 GB/s),
     * so the highest of a whole run would judge a slow spell's cases against a
     * fast spell's ceiling. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int ceil_threads = c.threads > 1 && cores > 1 ? (int)cores : 1;
    double ceil_gbs = 0, ceil_before = 0;
    kvb_cpu_mask readers;              /* taken before --pin binds this thread */
    kvb_cpu_mask_capture(&readers);
    if (!c.no_ceilings) {
        kvb_read_bw rb;
        fprintf(stderr, "measuring the read ceiling...\n");
        if (kvb_measure_read_threads_on(&rb, (size_t)1 << 30, 5, ceil_threads, &readers) == 0)
            ceil_before = rb.gbs;
    }
    kvb_topo topo;
    kvb_pin_set pins;
    char tmsg[256];
    int have_topo = kvb_topo_init(&topo, tmsg, sizeof tmsg) == KVB_STATUS_OK;
    if ((r = apply_pin(&c, have_topo ? &topo : NULL, &pins)) != 0) {
        if (have_topo) kvb_topo_free(&topo);
        return r;
    }
    if (pins.core[0] >= 0) printf("pinned (%s): thread 0 on core %d, cpu %d\n", c.pin, pins.core[0], pins.cpu[0]);

    size_t max_cases = (size_t)nb * nd * (size_t)(nk * nf > na * nq ? nk * nf : na * nq);
    kvb_attend_case *cases = calloc(max_cases, sizeof *cases);
    double *samples = calloc(max_cases * (size_t)c.reps, sizeof *samples);   /* [case][round] */
    if (!cases || !samples) {
        free(cases);
        free(samples);
        if (have_topo) kvb_topo_free(&topo);
        return 1;
    }
    FILE *csv = NULL;
    char tmp[4200] = "";
    if (c.csv) {
        char why[4400];
        if (!(csv = kvb_tmp_open(c.csv, tmp, sizeof tmp, why, sizeof why))) {
            free(cases);
            free(samples);
            if (have_topo) kvb_topo_free(&topo);
            return kvb_usage_error("--csv: %s", why);
        }
        fprintf(csv, "case,backend,dtype,block_tokens,n_heads,n_kv_heads,head_dim,ctx,reps,median_ns,"
                     "p10_ns,p90_ns,kv_bytes,gbs,ratio_to_contiguous,reserved_bytes,used_bytes,"
                     "waste,rel_err,max_abs_err,group,residual,key_axis,key_outliers,bytes_per_token,"
                     "analytic_bytes_per_token,read_ceiling_gbs,fraction_of_read_ceiling,threads,kernel,"
                     "threads_oversubscribed,samples_ns\n");
    }
    if (c.key_outliers)
        printf("keys: %d channel pairs x%d (queries /%d: same scores)\n", c.key_outliers,
               KVB_OUTLIER_SCALE, KVB_OUTLIER_SCALE);
    printf("%-100s %10s %10s %10s %7s %5s %7s %6s %8s %8s %8s\n", "case", "median_us", "p10_us", "p90_us", "GB/s",
           "ceil", "ratio", "waste", "B/token", "rel_err", "max_abs");
    int rc = 0, measured = 0;
    for (int ci = 0; ci < nc && rc == 0; ci++) {
        shape.max_seq = ctxs[ci];
        int n = 0;
        for (int i = 0; i < nb; i++)
            for (int j = 0; j < nd; j++) {
                int pg = (backs[i]->flags & KVB_BACKEND_PAGED) != 0, qt = kvb_dtype_is_quant(dts[j]);
                if (!pair_wanted(backs[i], dts, nd, j)) continue;
                for (int k = 0; k < (pg ? nk * nf : qt ? na * nq : nf); k++) {
                    memset(&cases[n], 0, sizeof cases[n]);
                    cases[n].backend = backs[i];
                    cases[n].opt.dtype = dts[j];
                    cases[n].opt.block_tokens = pg ? blocks[k / nf] : 0;
                    if (!qt) cases[n].opt.kernel = fk_names[fk[k % nf]];
                    set_quant_options(&c, shape.head_dim, qt ? axes[k / nq] : KVB_KEY_AXIS_DEFAULT, &cases[n].opt);
                    if (qt) cases[n].opt.qkernel = qk_names[qk[k % nq]];
                    cases[n].opt.threads = c.threads;
                    cases[n].samples_ns = samples + (size_t)n * (size_t)c.reps;
                    pin_workers(&cases[n].opt, &pins);
                    n++;
                }
            }
        if (kvb_attend_bench(cases, n, &shape, c.reps, c.sequences, c.key_outliers,
                             (unsigned long long)c.seed, msg, sizeof msg) !=
            KVB_STATUS_OK) {
            fprintf(stderr, "kvbench: %s\n", msg);
            rc = 1;
            break;
        }
        double after = 0;
        ceil_gbs = 0;
        if (!c.no_ceilings) {
            kvb_read_bw rb;
            if (kvb_measure_read_threads_on(&rb, (size_t)1 << 30, 5, ceil_threads, &readers) == 0) after = rb.gbs;
            ceil_gbs = after > ceil_before ? after : ceil_before;   /* a failed one counts as 0 */
        }
        if (ceil_gbs > 0) {
            printf("read ceiling around these cases: %.2f GB/s (before %.2f, after %.2f; %d thread%s, 1 GiB "
                   "array, median of 5); ceil = GB/s / that\n", ceil_gbs, ceil_before, after, ceil_threads,
                   ceil_threads == 1 ? "" : "s");
            if (after > 0) ceil_before = after;
        }
        for (int i = 0; i < n; i++) {
            const kvb_attend_case *a = &cases[i];
            char name[192];
            kvb_attend_case_name(a, &shape, name, sizeof name);
            if (a->skipped) { printf("%-100s skipped: %s\n", name, a->why); continue; }
            measured++;
            /* quantized types compare with the f32 store they replace */
            kvb_dtype bdt = kvb_dtype_is_quant(a->opt.dtype) ? KVB_DTYPE_F32 : a->opt.dtype;
            double base = NAN;
            for (int j = 0; j < n; j++)
                if (!cases[j].skipped && strcmp(cases[j].backend->name, "contiguous") == 0 &&
                    cases[j].opt.dtype == bdt)
                    base = cases[j].median_ns;
            double waste = a->mem.reserved ? 1.0 - (double)a->mem.used / (double)a->mem.reserved : 0;
            char frac[16] = "-";
            if (ceil_gbs > 0) snprintf(frac, sizeof frac, "%.2f", a->gbs / ceil_gbs);
            printf("%-100s %10.1f %10.1f %10.1f %7.2f %5s %7.3f %6.3f %8.0f %8.1e %8.1e\n", name, a->median_ns / 1e3,
                   a->p10_ns / 1e3, a->p90_ns / 1e3, a->gbs, frac, a->median_ns / base, waste,
                   (double)a->kv_bytes / shape.max_seq, a->rel_err, a->max_abs_err);
            if (csv) {
                fprintf(csv, "\"%s\",%s,%s,%d,%d,%d,%d,%d,%d,%.0f,%.0f,%.0f,%zu,%.4f,%.4f,%zu,%zu,%.5f,%.3e,"
                             "%.3e,%d,%d,%s,%d,%.1f,%.1f,%.3f,%.4f,%d,%s,%d,",
                        name, a->backend->name, kvb_dtype_name(a->opt.dtype), a->opt.block_tokens,
                        shape.n_heads, shape.n_kv_heads, shape.head_dim, shape.max_seq, c.reps,
                        a->median_ns, a->p10_ns, a->p90_ns, a->kv_bytes, a->gbs, a->median_ns / base,
                        a->mem.reserved, a->mem.used, waste, a->rel_err, a->max_abs_err,
                        a->opt.group ? a->opt.group : 32, a->opt.residual,
                        kvb_key_axis_name(kvb_key_axis_resolve(a->opt.dtype, a->opt.key_axis)), c.key_outliers,
                        (double)a->kv_bytes / shape.max_seq,
                        2.0 * shape.n_kv_heads * shape.head_dim * kvb_dtype_bits(a->opt.dtype, a->opt.group) / 8.0,
                        ceil_gbs, ceil_gbs > 0 ? a->gbs / ceil_gbs : NAN, c.threads > 1 ? c.threads : 1,
                        kvb_backend_kernel(a->backend, &shape, &a->opt), oversubscribed);
                /* every round's time, in round order: rounds interleave the cases, so
                 * two cases' i-th samples were taken side by side (kvbench compare pairs them) */
                for (int k = 0; k < c.reps; k++) fprintf(csv, "%s%.0f", k ? ";" : "", a->samples_ns[k]);
                fputc('\n', csv);
            }
        }
        fflush(stdout);
    }
    free(cases);
    free(samples);
    for (int i = 1; i < kvb_pin_set_threads(&pins); i++)
        printf("pinned (%s): thread %d on core %d, cpu %d\n", c.pin, i, pins.core[i], pins.cpu[i]);
    if (have_topo) kvb_topo_free(&topo);
    if (csv) {
        int bad = ferror(csv) | (fclose(csv) != 0);
        if (rc || bad || rename(tmp, c.csv) != 0) {
            if (!rc) fprintf(stderr, "kvbench: writing '%s' failed\n", c.csv);
            remove(tmp);
            rc = 1;
        }
    }
    if (rc == 0 && measured == 0) {
        fprintf(stderr, "kvbench: nothing measured: every case was skipped (exit %d)\n", KVB_EXIT_NOTHING);
        rc = KVB_EXIT_NOTHING;
    }
    return rc;
}

static int cmd_serve(int argc, char **argv)
{
    cli c;
    cli_defaults(&c);
    c.backends = "contiguous,paged";
    c.modes = "prealloc,grow";
    c.lengths = "uniform,longtail";
    c.forks = "none";
    c.sequences = 64;
    c.max_prompt = 128;
    c.max_output = 384;
    c.fork_n = 4;
    int r = parse_args(&c, argc, argv, "serve-sim");
    if (r) return r < 0 ? 0 : r;
    const kvb_backend *backs[MAX_LIST];
    kvb_dtype dts[MAX_LIST];
    kvb_alloc modes[MAX_LIST];
    kvb_len_dist lens[MAX_LIST];
    kvb_fork_kind forks[MAX_LIST];
    int nb, nd, nm, nk, nl, nf, blocks[MAX_LIST];
    if ((r = parse_backends_dtypes(&c, backs, &nb, dts, &nd)) != 0) return r;
    if ((r = parse_int_list("--block", c.blocks, 1, 256, blocks, &nk)) != 0) return r;
    static const char *const mode_names[] = {"grow", "prealloc"};
    static const char *const len_names[] = {"uniform", "longtail"};
    static const char *const fork_names[] = {"none", "parallel", "beam"};
    int mi[MAX_LIST], lsel[MAX_LIST], fsel[MAX_LIST];
    if ((r = parse_enum_list("--mode", c.modes, mode_names, 2, mi, &nm)) != 0 ||
        (r = parse_enum_list("--lengths", c.lengths, len_names, 2, lsel, &nl)) != 0 ||
        (r = parse_enum_list("--fork", c.forks, fork_names, 3, fsel, &nf)) != 0)
        return r;
    for (int i = 0; i < nm; i++) modes[i] = (kvb_alloc)mi[i];
    for (int i = 0; i < nl; i++) lens[i] = (kvb_len_dist)lsel[i];
    for (int i = 0; i < nf; i++) forks[i] = (kvb_fork_kind)fsel[i];
    kvb_model_config mc;
    if (kvb_model_preset(c.preset ? c.preset : "stories15m", &mc) != KVB_STATUS_OK)
        return kvb_usage_error("unknown preset '%s': allowed are tiny, stories15m, stories110m, gqa1b", c.preset);
    kvb_serve_config sc = {
        .shape = {mc.n_layers, mc.n_heads, mc.n_kv_heads, mc.head_dim, c.max_prompt + c.max_output},
        .n_requests = c.sequences, .max_prompt = c.max_prompt, .max_output = c.max_output,
        .fork_n = c.fork_n, .attend = !c.no_attend, .seed = (uint64_t)c.seed,
        .time_budget_s = c.time_budget,
    };
    size_t tok_bytes = 2 * (size_t)mc.n_layers * mc.n_kv_heads * mc.head_dim * 4;
    /* default budget: a quarter of what every sequence at its longest would need */
    size_t quarter = (size_t)c.sequences * sc.shape.max_seq * tok_bytes / 4;
    char why[256];
    if (kvb_shape_check(&sc.shape, why, sizeof why) != KVB_STATUS_OK) return kvb_usage_error("%s", why);
    int runnable = 0, cases_n = 0, any_quant = 0;
    double budget_max = 0;
    for (int i = 0; i < nb; i++)
        for (int j = 0; j < nd; j++) {
            if (!pair_wanted(backs[i], dts, nd, j)) continue;
            any_quant |= kvb_dtype_is_quant(dts[j]);
            cases_n++;
            if (backs[i]->flags & KVB_BACKEND_RECOMPUTE) {
                snprintf(why, sizeof why, "%s holds no KV to serve from", backs[i]->name);
                continue;
            }
            kvb_options o = {.dtype = dts[j], .max_seqs = 1};
            set_quant_options(&c, mc.head_dim, KVB_KEY_AXIS_DEFAULT, &o);
            if (kvb_backend_supports(backs[i], &sc.shape, &o, why, sizeof why) != KVB_STATUS_OK) continue;
            runnable++;
            for (int fi = 0; fi < nf; fi++) {
                double bud = c.budget_mb > 0 ? c.budget_mb * 1048576.0
                             : (double)quarter * (forks[fi] == KVB_FORK_NONE ? 1 : c.fork_n);
                if (bud > budget_max) budget_max = bud;
            }
        }
    note_group(&c, mc.head_dim, any_quant);
    if (runnable == 0) {
        return nothing_to_measure("cache", cases_n, why);
    }
    /* the KV budget (a prealloc cache reserves up to it), plus the noise K/V per sequence */
    if ((r = check_memory("serve-sim's KV budget", budget_max + 3.0 * sc.shape.max_seq * tok_bytes)) != 0) return r;
    if (c.dry_run) {
        printf("dry run: %d cache%s (%d runnable); flags valid, nothing measured\n", cases_n,
               cases_n == 1 ? "" : "s", runnable);
        return 0;
    }
    printf("serve-sim: %d requests, prompt <= %d, output <= %d tokens, %s shape (%d layers, %d kv "
           "heads x %d, %zu f32 bytes per token), budget %s%s\n", c.sequences, c.max_prompt,
           c.max_output, c.preset ? c.preset : "stories15m", mc.n_layers, mc.n_kv_heads, mc.head_dim,
           tok_bytes, c.budget_mb > 0 ? "as given" : "a quarter of all sequences at their longest",
           sc.attend ? "" : ", attention off");
    printf("%-26s %-9s %-9s %8s %7s %8s %8s %8s %7s %7s %9s %7s %7s\n", "cache", "lengths", "fork",
           "budgetMB", "max_run", "mean_run", "util", "live/bud", "shared", "preempt", "step_us", "rounds", "wall_s");
    FILE *csv = NULL;
    char tmp[4200] = "";
    if (c.csv) {
        char cause[4400];
        if (!(csv = kvb_tmp_open(c.csv, tmp, sizeof tmp, cause, sizeof cause))) return kvb_usage_error("--csv: %s", cause);
        fprintf(csv, "cache,lengths,fork,fork_n,requests,budget_bytes,max_running,mean_running,"
                     "utilization,budget_live,sharing_saved,preemptions,step_ns_median,step_ns_p10,"
                     "step_ns_p90,tokens,rounds,wall_s,status,reason\n");
    }
    int rc = 0, measured = 0;
    for (int li = 0; li < nl; li++)
        for (int fi = 0; fi < nf; fi++)
            for (int i = 0; i < nb; i++)
                for (int j = 0; j < nd; j++) {
                    int pg = (backs[i]->flags & KVB_BACKEND_PAGED) != 0;
                    if (backs[i]->flags & KVB_BACKEND_RECOMPUTE) continue;   /* holds no KV */
                    if (!pair_wanted(backs[i], dts, nd, j)) continue;
                    for (int k = 0; k < (pg ? nk : nm); k++) {
                        kvb_options o = {.dtype = dts[j], .alloc = pg ? KVB_ALLOC_GROW : modes[k],
                                         .block_tokens = pg ? blocks[k] : 0};
                        set_quant_options(&c, mc.head_dim, KVB_KEY_AXIS_DEFAULT, &o);
                        sc.lengths = lens[li];
                        sc.fork = forks[fi];
                        sc.budget_bytes = c.budget_mb > 0 ? (size_t)(c.budget_mb * 1048576.0)
                                          : quarter * (size_t)(sc.fork == KVB_FORK_NONE ? 1 : sc.fork_n);
                        char name[64];
                        snprintf(name, sizeof name, "%s/%s/%s%d", backs[i]->name, kvb_dtype_name(dts[j]),
                                 pg ? "bs" : kvb_alloc_name(modes[k]), pg ? blocks[k] : 0);
                        if (!pg) name[strlen(name) - 1] = 0;          /* drop the 0 */
                        kvb_serve_result res;
                        kvb_serve_run(backs[i], o, &sc, &res);
                        if (res.status == KVB_STATUS_OK) measured++;
                        if (res.status != KVB_STATUS_OK) {
                            printf("%-26s %-9s %-9s failed: %s\n", name, kvb_len_dist_name(sc.lengths),
                                   kvb_fork_kind_name(sc.fork), res.reason);
                            rc = 1;
                        } else
                            printf("%-26s %-9s %-9s %8.2f %7d %8.1f %8.3f %8.3f %7.3f %7d %9.1f %7d %7.1f\n",
                                   name, kvb_len_dist_name(sc.lengths), kvb_fork_kind_name(sc.fork),
                                   (double)sc.budget_bytes / 1e6, res.max_running, res.mean_running, res.utilization, res.budget_live,
                                   res.sharing_saved, res.preemptions, res.step_ns_median / 1e3,
                                   res.rounds, res.wall_s);
                        fflush(stdout);
                        if (csv)
                            fprintf(csv, "%s,%s,%s,%d,%d,%zu,%d,%.3f,%.5f,%.5f,%.5f,%d,%.0f,%.0f,%.0f,%lld,%d,%.3f,%s,\"%s\"\n",
                                    name, kvb_len_dist_name(sc.lengths), kvb_fork_kind_name(sc.fork),
                                    sc.fork == KVB_FORK_NONE ? 1 : sc.fork_n, sc.n_requests, sc.budget_bytes,
                                    res.max_running, res.mean_running, res.utilization, res.budget_live,
                                    res.sharing_saved, res.preemptions, res.step_ns_median, res.step_ns_p10,
                                    res.step_ns_p90, res.tokens, res.rounds, res.wall_s,
                                    res.cut_short ? "cut_short" : kvb_status_str(res.status), res.reason);
                        if (res.cut_short) fprintf(stderr, "kvbench: %s cut short: %s\n", name, res.reason);
                    }
                }
    if (csv) {
        int bad = ferror(csv) | (fclose(csv) != 0);
        if (bad || rename(tmp, c.csv) != 0) {
            fprintf(stderr, "kvbench: writing '%s' failed\n", c.csv);
            remove(tmp);
            rc = 1;
        }
    }
    if (rc == 0 && measured == 0) rc = KVB_EXIT_NOTHING;
    return rc;
}

/* For every point whose storage is lossy (f16, bf16, quantized): KL and top-1
 * agreement against the f32 contiguous cache over the run's tokens, and the
 * per-layer attend error; printed, and written as quality.csv into dir (a
 * temporary name, then renamed). 0 when there is nothing to do or all is
 * written; -1 with msg set otherwise. */
static int write_quality(const cli *c, const kvb_model *m, kvb_state *st, const kvb_point *pts, int n_pts,
                         const int *prompt, int P, const char *dir, char *msg, size_t msg_len)
{
    int any = 0;
    for (int i = 0; i < n_pts; i++)
        any |= !(pts[i].backend->flags & KVB_BACKEND_RECOMPUTE) && pts[i].opt.dtype != KVB_DTYPE_F32 &&
               pts[i].status != KVB_POINT_SKIPPED && pts[i].status != KVB_POINT_FAILED;
    if (!any) return 0;
    if (!c->quiet) fprintf(stderr, "quality: reference generation (contiguous f32), %d tokens...\n", c->tokens);
    kvb_quality_ref ref;
    if (kvb_quality_reference(m, st, prompt, P, c->tokens, &ref, msg, msg_len) != KVB_STATUS_OK) return -1;
    /* two tidy files with fixed columns, so runs' files concatenate: a row per
     * point x layer, and a row per point x layer x context length */
    const char *names[2] = {"quality.csv", "quality_ctx.csv"};
    char path[2][4400], tmp[2][4500];
    FILE *f[2] = {NULL, NULL};
    int rc = 0;
    for (int k = 0; k < 2; k++) {
        snprintf(path[k], sizeof path[k], "%s/%s", dir, names[k]);
        snprintf(tmp[k], sizeof tmp[k], "%s/.%s.tmp", dir, names[k]);
        if (!(f[k] = fopen(tmp[k], "w"))) {
            snprintf(msg, msg_len, "cannot write '%s': %s", tmp[k], strerror(errno));
            rc = -1;
        }
    }
    if (rc == 0) {
        fprintf(f[0], "point,backend,dtype,mode,steps,kl_mean,kl_p50,kl_p99,kl_max,top1,layer,attn_rel_l2_mean,"
                      "attn_max_abs\n");
        fprintf(f[1], "point,backend,dtype,mode,layer,ctx,attn_rel_l2\n");
    }
    if (rc == 0 && !c->quiet) {
        printf("quality against contiguous/f32 over %d generated tokens: %d next-token distributions through "
               "the cache (teacher-forced; attend vs float64 per layer, mean over steps):\n", c->tokens, c->tokens - 1);
        printf("%-28s %10s %10s %10s %7s %12s %12s  rel_l2 at context", "point", "KL_mean", "KL_p99", "KL_max",
               "top1", "attn_rel_l2", "attn_maxabs");
    }
    int first = 1;
    for (int i = 0; i < n_pts && rc == 0; i++) {
        const kvb_point *p = &pts[i];
        if ((p->backend->flags & KVB_BACKEND_RECOMPUTE) || p->opt.dtype == KVB_DTYPE_F32 ||
            p->status == KVB_POINT_SKIPPED || p->status == KVB_POINT_FAILED)
            continue;
        kvb_quality q;
        if (kvb_quality_compare(m, st, p->backend, &p->opt, &ref, &q, msg, msg_len) != KVB_STATUS_OK) {
            rc = -1;
            break;
        }
        char label[128], mode[32];
        kvb_point_label(p, label, sizeof label);
        kvb_point_mode(p, mode, sizeof mode);
        if (!c->quiet) {
            if (first) {
                for (int j = 0; j < q.n_ctx; j++) printf(" %d", q.ctx[j]);
                putchar('\n');
                first = 0;
            }
            double rel = 0, mabs = 0;
            for (int l = 0; l < q.n_layers; l++) { rel += q.rel_l2_mean[l] / q.n_layers; mabs = fmax(mabs, q.max_abs[l]); }
            printf("%-28s %10.2e %10.2e %10.2e %7.3f %12.2e %12.2e  layers 0..%d:", label, q.kl_mean, q.kl_p99,
                   q.kl_max, q.top1, rel, mabs, q.n_layers - 1);
            for (int j = 0; j < q.n_ctx; j++) {
                double r2 = 0;
                for (int l = 0; l < q.n_layers; l++) r2 += q.rel_l2_at[(size_t)l * q.n_ctx + j] / q.n_layers;
                printf(" %.1e", r2);
            }
            putchar('\n');
        }
        for (int l = 0; l < q.n_layers; l++) {
            fprintf(f[0], "%s,%s,%s,%s,%d,%.6e,%.6e,%.6e,%.6e,%.6f,%d,%.6e,%.6e\n", label, p->backend->name,
                    kvb_dtype_name(p->opt.dtype), mode, q.n_steps, q.kl_mean, q.kl_p50, q.kl_p99, q.kl_max,
                    q.top1, l, q.rel_l2_mean[l], q.max_abs[l]);
            for (int j = 0; j < q.n_ctx; j++)
                fprintf(f[1], "%s,%s,%s,%s,%d,%d,%.6e\n", label, p->backend->name, kvb_dtype_name(p->opt.dtype),
                        mode, l, q.ctx[j], q.rel_l2_at[(size_t)l * q.n_ctx + j]);
        }
        kvb_quality_free(&q);
    }
    kvb_quality_ref_free(&ref);
    for (int k = 0; k < 2; k++) {
        if (!f[k]) continue;
        int bad = ferror(f[k]), e = bad ? errno : 0;
        if (fclose(f[k]) != 0 && !bad) { bad = 1; e = errno; }
        if (rc == 0 && (bad || rename(tmp[k], path[k]) != 0)) {
            if (!bad) e = errno;
            snprintf(msg, msg_len, "writing '%s' failed: %s", path[k], e ? strerror(e) : "write error");
            rc = -1;
        }
        if (rc) remove(tmp[k]);
    }
    return rc;
}

/* --prompt-ids: a comma list of token ids in [0, vocab), any length (the
 * string is read in place, never cut); *ids is malloc'd. */
static int parse_prompt_ids(const char *list, int vocab, int **ids, int *n)
{
    size_t count = 1;
    for (const char *p = list; *p; p++) count += *p == ',';
    if (count > (1u << 24)) return kvb_usage_error("--prompt-ids: %zu ids; at most %d", count, 1 << 24);
    int *out = malloc(count * sizeof *out);
    if (!out) { fprintf(stderr, "kvbench: out of memory for %zu prompt ids\n", count); return 1; }
    const char *p = list;
    for (size_t i = 0; i < count; i++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[32], what[64];
        snprintf(what, sizeof what, "--prompt-ids item %zu", i + 1);
        if (len == 0) { free(out); return kvb_usage_error("%s is empty", what); }
        if (len >= sizeof item) { free(out); return kvb_usage_error("%s '%.*s...': not a token id", what, 20, p); }
        memcpy(item, p, len);
        item[len] = 0;
        long long v = 0;
        if (kvb_parse_int(what, item, 0, vocab - 1, &v)) { free(out); return KVB_EXIT_USAGE; }
        out[i] = (int)v;
        p = comma ? comma + 1 : p + len;
    }
    *ids = out;
    *n = (int)count;
    return 0;
}

static int cmd_run(int argc, char **argv, const char *cmdline)
{
    cli c;
    cli_defaults(&c);
    int r = parse_args(&c, argc, argv, "run");
    if (r) return r < 0 ? 0 : r;

    /* every list and name is checked before the model is built */
    char ml[256];
    char *mn[MAX_LIST];
    int nb, nd, nm;
    const kvb_backend *backs[MAX_LIST];
    kvb_dtype dts[MAX_LIST];
    kvb_alloc modes[MAX_LIST];
    if ((r = parse_backends_dtypes(&c, backs, &nb, dts, &nd)) != 0) return r;
    snprintf(ml, sizeof ml, "%s", c.modes);
    if (kvb_split_list("--mode", ml, mn, MAX_LIST, &nm)) return KVB_EXIT_USAGE;
    for (int i = 0; i < nm; i++)
        if (kvb_alloc_parse(mn[i], &modes[i]) != KVB_STATUS_OK)
            return kvb_usage_error("unknown mode '%s': allowed are grow, prealloc", mn[i]);
    int nk, na, nq, qk[MAX_LIST], blocks[MAX_LIST];
    kvb_key_axis axes[MAX_LIST];
    static const char *const qk_names[] = {"auto", "portable", "avx512", "avx512-vnni"};
    if ((r = parse_int_list("--block", c.blocks, 1, 256, blocks, &nk)) != 0) return r;
    if ((r = parse_key_axes(&c, axes, &na)) != 0) return r;
    if ((r = parse_enum_list("--qkernel", c.qkernels, qk_names, 4, qk, &nq)) != 0) return r;
    if (nq != 1) return kvb_usage_error("--qkernel: run takes one kernel (attend compares several)");
    static const char *const fk_names[] = {"auto", "portable", "avx2", "avx512"};
    int fk[MAX_LIST], nf;
    if ((r = parse_enum_list("--kernel", c.kernels, fk_names, 4, fk, &nf)) != 0) return r;
    if (nf != 1) return kvb_usage_error("--kernel: run takes one kernel (attend compares several)");
    if (c.pool_mb && c.pool_blocks) return kvb_usage_error("--pool-mb and --pool-blocks exclude each other");

    /* the model's shape, the prompt and every point are checked before
     * anything is allocated or created */
    kvb_model_config mc;
    const char *source = NULL;
    if ((r = model_config(&c, &mc, &source)) != 0) return r;
    int P = c.prompt, *prompt = NULL;
    if (c.prompt_ids && (r = parse_prompt_ids(c.prompt_ids, mc.vocab_size, &prompt, &P)) != 0) return r;
    if ((long long)P + c.tokens > mc.max_seq) {
        free(prompt);
        return kvb_usage_error("prompt %d + tokens %d = %lld positions exceed the model's max-seq %d: "
                               "lower them or raise --max-seq", P, c.tokens, (long long)P + c.tokens, mc.max_seq);
    }
    if (c.key_outliers > mc.head_dim / 2) {
        free(prompt);
        return kvb_usage_error("--key-outliers %d: at most head_dim / 2 = %d channel pairs", c.key_outliers,
                               mc.head_dim / 2);
    }
    /* a point per backend x storage type x (allocation mode, or block size for
     * a paged backend); nocache stores nothing, so it is one point */
    kvb_point *pts = calloc((size_t)nb * nd * (size_t)(nm + nk + na * nm), sizeof *pts);   /* enough for any kind */
    int n_pts = 0, n_runnable = 0, any_quant = 0, rc = 0, renamed = 0, made = 0;
    if (!pts) { free(prompt); fprintf(stderr, "kvbench: out of memory\n"); return 1; }
    kvb_shape kv_shape = kvb_model_kv_shape(&mc);
    double kv_token_f32 = 2.0 * kv_shape.n_layers * kv_shape.n_kv_heads * kv_shape.head_dim * 4;
    double cache_bytes = 0;                    /* the largest one point's cache may take */
    for (int i = 0; i < nb; i++) {
        int recompute = (backs[i]->flags & KVB_BACKEND_RECOMPUTE) != 0;
        int paged = (backs[i]->flags & KVB_BACKEND_PAGED) != 0;
        int quant = (backs[i]->flags & KVB_BACKEND_QUANT) != 0;
        for (int j = 0; j < (recompute ? 1 : nd); j++) {
            /* a quantized point per key axis x allocation mode */
            int qt = quant && kvb_dtype_is_quant(dts[j]);
            any_quant |= qt;
            for (int k = 0; k < (recompute ? 1 : paged ? nk : qt ? na * nm : quant ? 1 : nm); k++) {
                if (!pair_wanted(backs[i], dts, nd, j)) continue;
                kvb_options o = {.dtype = recompute ? KVB_DTYPE_F32 : dts[j],
                                 .alloc = recompute || paged ? KVB_ALLOC_GROW : modes[qt ? k % nm : k],
                                 .max_seqs = 1, .block_tokens = paged ? blocks[k] : 0,
                                 .pool_blocks = (size_t)c.pool_blocks,
                                 .pool_bytes = (size_t)c.pool_mb << 20, .threads = c.threads};
                set_quant_options(&c, mc.head_dim, qt ? axes[k / nm] : KVB_KEY_AXIS_DEFAULT, &o);
                if (quant) o.qkernel = qk_names[qk[0]];
                o.kernel = fk_names[fk[0]];
                if (kvb_point_init(&pts[n_pts], backs[i], &o, c.tokens, c.reps) != KVB_STATUS_OK) {
                    fprintf(stderr, "kvbench: out of memory for %d x %d step records\n", c.reps, c.tokens);
                    rc = 1;
                    goto done;
                }
                kvb_point *p = &pts[n_pts++];
                char why[256];
                if (kvb_backend_supports(backs[i], &kv_shape, &o, why, sizeof why) != KVB_STATUS_OK) {
                    p->status = KVB_POINT_SKIPPED;  /* recorded as skipped, with the reason */
                    snprintf(p->reason, sizeof p->reason, "%s", why);
                    continue;
                }
                n_runnable++;
                double es = recompute ? 0 : kvb_dtype_bits(o.dtype, o.group) / 8.0 / 4.0;   /* of f32 */
                double positions = o.alloc == KVB_ALLOC_PREALLOC ? mc.max_seq : 2.0 * (P + c.tokens);
                double bytes = kv_token_f32 * es * positions + (qt ? kv_token_f32 * (o.residual + o.group) : 0);
                if (paged) {
                    double block = kv_token_f32 * es * o.block_tokens;
                    bytes = c.pool_mb ? (double)c.pool_mb * 1048576.0
                          : c.pool_blocks ? (double)c.pool_blocks * block : bytes;
                }
                if (bytes > cache_bytes) cache_bytes = bytes;
            }
        }
    }
    note_group(&c, mc.head_dim, any_quant);
    if (n_runnable == 0) {
        for (int i = 0; i < n_pts; i++) {
            char label[128];
            kvb_point_label(&pts[i], label, sizeof label);
            fprintf(stderr, "kvbench: skipped %s: %s\n", label, pts[i].reason);
        }
        fprintf(stderr, "kvbench: nothing to measure: every point is unsupported (exit %d)\n", KVB_EXIT_NOTHING);
        rc = KVB_EXIT_NOTHING;
        goto done;
    }
    {
        /* weights, activations for max_seq positions, the largest cache, the records */
        double hd = (double)mc.n_heads * mc.head_dim, kvd = (double)mc.n_kv_heads * mc.head_dim;
        double act = 4.0 * mc.max_seq * (2.0 * mc.dim + 2 * hd + 2 * kvd + 2.0 * mc.hidden_dim + mc.max_seq);
        double need = 4.0 * (double)kvb_model_param_count(&mc) + act + cache_bytes +
                      (double)n_pts * c.reps * c.tokens * sizeof(kvb_step_record);
        char what[160];
        snprintf(what, sizeof what, "this run (weights, activations, a cache of %.2f GB, step records)",
                 cache_bytes / 1e9);
        if ((rc = check_memory(what, need)) != 0) goto done;
    }
    int oversubscribed = threads_oversubscribed(c.threads);

    /* the result directory: must not exist (nor be a dangling link, which
     * rename would replace) and must be creatable now, not after an hour of work */
    char final_dir[4096], partial[4200] = "", run_id[128];
    time_t now = time(NULL);
    struct tm tmv;
    struct stat sb;
    gmtime_r(&now, &tmv);
    strftime(run_id, sizeof run_id, "%Y%m%d-%H%M%S", &tmv);
    if (c.out) {
        snprintf(final_dir, sizeof final_dir, "%s", c.out);
        const char *slash = strrchr(final_dir, '/');
        snprintf(run_id, sizeof run_id, "%s", slash ? slash + 1 : final_dir);
        snprintf(partial, sizeof partial, "%s.partial", final_dir);
        if (lstat(final_dir, &sb) == 0) {
            rc = kvb_usage_error("output '%s' exists%s: kvbench never overwrites a run; choose another --out",
                                 final_dir, S_ISLNK(sb.st_mode) ? " (a symbolic link)" : "");
            goto done;
        }
        if (lstat(partial, &sb) == 0) {
            rc = kvb_usage_error("'%s' exists: an earlier run into this --out was interrupted; remove it or "
                                 "choose another --out", partial);
            goto done;
        }
    }
    if (c.dry_run) {
        printf("dry run: %d point%s (%d runnable), model %s, %d + %d positions; flags valid, nothing measured\n",
               n_pts, n_pts == 1 ? "" : "s", n_runnable, source, P, c.tokens);
        goto done;
    }
    if (c.out) {
        if (mkdir(partial, 0777) != 0) {
            rc = kvb_usage_error("cannot create output directory '%s': %s", partial, strerror(errno));
            goto done;
        }
    } else {
        if (mkdir("results", 0777) != 0 && errno != EEXIST) {
            rc = kvb_usage_error("cannot create 'results/': %s", strerror(errno));
            goto done;
        }
        char base[128];
        snprintf(base, sizeof base, "%s-%s", run_id, c.checkpoint ? "ckpt" : c.preset ? c.preset : "stories15m");
        snprintf(run_id, sizeof run_id, "%s", base);
        /* a run started in the same second, or interrupted, holds the name: take the next */
        for (int k = 2;; k++) {
            snprintf(final_dir, sizeof final_dir, "results/%s", run_id);
            snprintf(partial, sizeof partial, "%s.partial", final_dir);
            if (lstat(final_dir, &sb) != 0) {
                if (mkdir(partial, 0777) == 0) break;
                if (errno != EEXIST) {
                    rc = kvb_usage_error("cannot create output directory '%s': %s", partial, strerror(errno));
                    goto done;
                }
            }
            if (k > 1000) {
                rc = kvb_usage_error("no free run name under results/ for '%s'", base);
                goto done;
            }
            snprintf(run_id, sizeof run_id, "%s-%d", base, k);
        }
    }
    made = 1;

    kvb_model m = {0};
    kvb_state st = {0};
    kvb_topo topo;
    kvb_pin_set pins;
    int have_topo = 0;
    if ((rc = build_model(&c, &mc, &m)) != 0) goto done_model;
    if (!prompt) {
        /* seeded ids after a BOS of 1 as in llama2.c */
        prompt = malloc((size_t)P * sizeof *prompt);
        uint64_t s = (uint64_t)c.seed * 2654435761u + 12345u;
        for (int i = 0; prompt && i < P; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            prompt[i] = i == 0 ? (m.cfg.vocab_size > 1) : (int)((s >> 33) % (uint64_t)m.cfg.vocab_size);
        }
        if (!prompt) { fprintf(stderr, "kvbench: out of memory\n"); rc = 1; goto done_model; }
    }
    if (kvb_state_init(&st, &m.cfg) != KVB_STATUS_OK) {
        fprintf(stderr, "kvbench: out of memory for activations (max-seq %d)\n", m.cfg.max_seq);
        rc = 1;
        goto done_model;
    }
    openblas_set_num_threads(c.threads);
    if (c.key_outliers) kvb_model_key_outliers(&m, c.key_outliers);

    kvb_ceilings ceil;
    int have_ceil = 0;
    if (!c.no_ceilings) {
        if (!c.quiet) fprintf(stderr, "measuring read bandwidth and sgemm ceilings...\n");
        /* the second array is what one cached decode step streams at the last
         * position: every weight once plus the f32 K/V of the whole context */
        size_t ws = 4 * kvb_model_param_count(&m.cfg) + (size_t)(kv_token_f32 * (P + c.tokens));
        have_ceil = kvb_measure_ceilings(&ceil, 0, ws, 7) == 0;
    }
    char topo_msg[256];
    have_topo = kvb_topo_init(&topo, topo_msg, sizeof topo_msg) == KVB_STATUS_OK;
    if ((rc = apply_pin(&c, have_topo ? &topo : NULL, &pins)) != 0) goto done_model;
    for (int i = 0; i < n_pts; i++) pin_workers(&pts[i].opt, &pins);
    kvb_gen_config g = {prompt, P, c.tokens, c.reps, c.warmup, c.time_budget,
                        !c.quiet && isatty(STDERR_FILENO)};
    uint64_t started = (uint64_t)now;
    int failed = 0, measured = 0;
    for (int i = 0; i < n_pts; i++) {
        char label[128];
        kvb_point_label(&pts[i], label, sizeof label);
        kvb_status s = pts[i].status == KVB_POINT_SKIPPED ? KVB_STATUS_OK
                                                          : kvb_run_point(&m, &st, &pts[i], &g, i, n_pts);
        if (pts[i].status == KVB_POINT_SKIPPED)
            fprintf(stderr, "kvbench: skipped %s: %s\n", label, pts[i].reason);
        else if (s != KVB_STATUS_OK) {
            fprintf(stderr, "kvbench: %s failed: %s\n", label, pts[i].reason);
            failed = 1;
        } else {
            measured++;
            if (pts[i].status == KVB_POINT_CUT_SHORT)
                fprintf(stderr, "kvbench: %s cut short: %s\n", label, pts[i].reason);
        }
    }

    kvb_run_info info = {run_id, cmdline, source, (uint64_t)c.seed, &m.cfg, &g,
                         openblas_get_num_threads(), have_ceil ? &ceil : NULL, started,
                         have_topo ? &topo : NULL, &pins, c.threads, oversubscribed};
    char msg[512];
    /* every measurement is written before anything can fail on it; a write
     * that fails (a full disk) keeps what was written in the .partial
     * directory, never renamed to look complete, and the table is printed */
    if (kvb_results_write(partial, &info, pts, n_pts, msg, sizeof msg) != 0 ||
        write_quality(&c, &m, &st, pts, n_pts, prompt, P, partial, msg, sizeof msg) != 0) {
        fprintf(stderr, "kvbench: %s\nkvbench: the results are incomplete; what was written stays in '%s'\n",
                msg, partial);
        print_table(pts, n_pts, &m.cfg, P);
        renamed = 1;                           /* kept, not renamed */
        rc = 1;
        goto done_model;
    }
    /* the results are complete: from here on they are kept whatever happens */
    renamed = 1;
    if (lstat(final_dir, &sb) == 0) {
        fprintf(stderr, "kvbench: '%s' appeared during the run; the complete results stay in '%s'\n",
                final_dir, partial);
        rc = 1;
        goto done_model;
    }
    if (rename(partial, final_dir) != 0) {
        fprintf(stderr, "kvbench: cannot rename '%s' to '%s': %s; the complete results stay there\n",
                partial, final_dir, strerror(errno));
        rc = 1;
        goto done_model;
    }
    if (!c.quiet) print_table(pts, n_pts, &m.cfg, P);
    printf("results: %s\n", final_dir);
    rc = failed ? 1 : measured ? 0 : KVB_EXIT_NOTHING;
    if (rc == KVB_EXIT_NOTHING)
        fprintf(stderr, "kvbench: nothing measured: every point was skipped (exit %d)\n", KVB_EXIT_NOTHING);
done_model:
    kvb_state_free(&st);
    kvb_model_free(&m);
    if (have_topo) kvb_topo_free(&topo);
done:
    if (!renamed && made) kvb_results_remove(partial);
    for (int i = 0; i < n_pts; i++) kvb_point_free(&pts[i]);
    free(pts);
    free(prompt);
    return rc;
}

int main(int argc, char **argv)
{
    /* an ignored SIGCHLD inherited from the caller would make every waitpid
     * (sweep points, their dry runs, gnuplot, merge's copies) fail */
    signal(SIGCHLD, SIG_DFL);
    char cmdline[8192] = "";
    for (int i = 0; i < argc; i++)
        snprintf(cmdline + strlen(cmdline), sizeof cmdline - strlen(cmdline), "%s%s", i ? " " : "", argv[i]);
    if (argc < 2)
        return kvb_usage_error("no command given: allowed are run, attend, serve-sim, sweep, report, merge, compare, "
                           "list, info, export, help");
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        char v[256];
        kvb_version(v, sizeof v);
        puts(v);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        kvb_print_help(argc > 2 ? argv[2] : NULL);
        return 0;
    }
    if (strcmp(cmd, "list") == 0) {
        if (argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) { kvb_print_help("list"); return 0; }
        if (argc > 2) return kvb_usage_error("list takes no arguments, got '%s'", argv[2]);
        return cmd_list();
    }
    if (strcmp(cmd, "info") == 0) return cmd_info(argc - 2, argv + 2);
    if (strcmp(cmd, "run") == 0) return cmd_run(argc - 2, argv + 2, cmdline);
    if (strcmp(cmd, "export") == 0) return cmd_export(argc - 2, argv + 2);
    if (strcmp(cmd, "attend") == 0) return cmd_attend(argc - 2, argv + 2);
    if (strcmp(cmd, "serve-sim") == 0) return cmd_serve(argc - 2, argv + 2);
    if (strcmp(cmd, "sweep") == 0) return kvb_cmd_sweep(argc - 2, argv + 2, argv[0]);
    if (strcmp(cmd, "report") == 0) return kvb_cmd_report(argc - 2, argv + 2);
    if (strcmp(cmd, "merge") == 0) return kvb_cmd_merge(argc - 2, argv + 2);
    if (strcmp(cmd, "compare") == 0) return kvb_cmd_compare(argc - 2, argv + 2);
    return kvb_usage_error("unknown command '%s': allowed are run, attend, serve-sim, sweep, report, merge, compare, "
                       "list, info, export, help", cmd);
}
