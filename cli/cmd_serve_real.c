/* cmd_serve_real.c: kvbench serve: requests through the real model with
 * continuous batching under one KV budget, every cache case on the same
 * requests, at one arrival rate or several; writes serve.csv, requests.csv,
 * steps.csv, report.md and plots/ into a .partial directory renamed when
 * complete. Every flag, the trace, the model's shape and the budget against
 * one request are checked before the model is built. */
#define _GNU_SOURCE /* gmtime_r */
#include "cli.h"
#include "opts.h"
#include "../base/afile.h"
#include "../harness/results.h"
#include "../harness/serve_run.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


const kvb_cmd_spec kvb_serve_real_spec = {
    .usage = "[flags]",
    .intro = "Serves seeded requests through the model (--preset, --model) with continuous\n"
             "batching: requests arrive (Poisson at --rate, all at once, or from a --trace),\n"
             "are admitted first come first served while the --kv-budget holds, prefill their\n"
             "prompt, then decode one greedy token per step in one batch; when a step would\n"
             "pass the budget the newest request is preempted and later recomputed. Every\n"
             "backend x storage type x mode (or block) serves the same requests under the same\n"
             "budget. The clock is simulated: each model call advances it by its wall time.",
    .epilogue =
        "Columns: tok/s = output tokens per simulated second; batch = mean (max) sequences\n"
        "per decode step; ttft, tpot, itl = time to first token, per output token and\n"
        "between tokens (p50/p99, ms); kv = mean used / budget; saved = mean bytes the\n"
        "prefix cache's forks did not store. docs/serving.md says more.",
    .flags = kvb_opts_flags,
};

enum { MAX_CASES = 64 };

/* "64MiB", "1.5GB", "1048576" into bytes */
static int parse_bytes(const char *flag, const char *s, size_t *out)
{
    static const struct {
        const char *sfx;
        double mul;
    } units[] = {
        {"", 1},     {"B", 1},        {"KB", 1e3},        {"MB", 1e6},
        {"GB", 1e9}, {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0},
    };
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    for (size_t i = 0; end != s && !errno && i < sizeof units / sizeof units[0]; i++)
        if (strcmp(end, units[i].sfx) == 0 && v * units[i].mul >= 1 && v * units[i].mul < 1e15) {
            *out = (size_t)(v * units[i].mul);
            return 0;
        }
    return kvb_usage_error("%s '%s': expected bytes from 1 with an optional KB, MB, GB, "
                           "KiB, MiB or GiB",
                           flag, s);
}

/* "N" or "A:B" with 1 <= A <= B */
static int parse_range(const char *flag, const char *s, int *lo, int *hi)
{
    long long a, b;
    const char *colon = strchr(s, ':');
    char first[32];
    if (!colon) {
        if (kvb_parse_int(flag, s, 1, 1 << 20, &a)) return KVB_EXIT_USAGE;
        *lo = *hi = (int)a;
        return 0;
    }
    snprintf(first, sizeof first, "%.*s", (int)(colon - s < 31 ? colon - s : 31), s);
    if (kvb_parse_int(flag, first, 1, 1 << 20, &a) ||
        kvb_parse_int(flag, colon + 1, a, 1 << 20, &b))
        return KVB_EXIT_USAGE;
    *lo = (int)a;
    *hi = (int)b;
    return 0;
}

/* --kv-budget's list: bytes, and each item as given for the case names */
static int parse_budgets(const kvb_opts *c, size_t *bytes, char (*names)[32], int *n)
{
    char buf[1024], *items[KVB_MAX_LIST];
    snprintf(buf, sizeof buf, "%s", c->kv_budget);
    if (kvb_split_list("--kv-budget", buf, items, KVB_MAX_LIST, n)) return KVB_EXIT_USAGE;
    for (int i = 0; i < *n; i++) {
        int r = parse_bytes("--kv-budget", items[i], &bytes[i]);
        if (r) return r;
        snprintf(names[i], sizeof names[i], "%.31s", items[i]);
    }
    return 0;
}

/* the cases: backend x storage type x (mode, or block for a paged backend) x
 * preemption x budget; a swap case of a backend that cannot swap is skipped,
 * said on stderr */
static int make_cases(const kvb_opts *c, int head_dim, kvb_serve_case *cs, int *n)
{
    const kvb_backend *backs[KVB_MAX_LIST];
    kvb_dtype dts[KVB_MAX_LIST];
    int nb, nd, nm, nk, np, nbud, blocks[KVB_MAX_LIST], mi[KVB_MAX_LIST], pi[KVB_MAX_LIST], r;
    size_t budgets[KVB_MAX_LIST];
    char bnames[KVB_MAX_LIST][32];
    static const char *const mode_names[] = {"grow", "prealloc"};
    static const char *const preempt_names[] = {"recompute", "swap"};
    if ((r = kvb_opts_backends_dtypes(c, backs, &nb, dts, &nd)) != 0 ||
        (r = kvb_parse_int_list("--block", c->blocks, 1, 256, blocks, &nk)) != 0 ||
        (r = kvb_parse_enum_list("--mode", c->modes, mode_names, 2, mi, &nm)) != 0 ||
        (r = kvb_parse_enum_list("--preempt", c->preempt, preempt_names, 2, pi, &np)) != 0 ||
        (r = parse_budgets(c, budgets, bnames, &nbud)) != 0)
        return r;
    *n = 0;
    for (int i = 0; i < nb; i++) {
        if (backs[i]->flags & KVB_BACKEND_RECOMPUTE)
            return kvb_usage_error("--backend %s holds no KV to serve from", backs[i]->name);
        int pg = (backs[i]->flags & KVB_BACKEND_PAGED) != 0;
        for (int j = 0; j < nd; j++) {
            if (!kvb_pair_wanted(backs[i], dts, nd, j)) continue;
            for (int k = 0; k < (pg ? nk : nm); k++)
            for (int p = 0; p < np; p++)
            for (int bu = 0; bu < nbud; bu++) {
                if (*n == MAX_CASES)
                    return kvb_usage_error("more than %d cases: fewer backends, types, modes, "
                                           "preemptions or budgets", MAX_CASES);
                kvb_serve_case *x = &cs[*n];
                x->backend = backs[i];
                x->preempt = (kvb_preempt)pi[p];
                x->budget_bytes = budgets[bu];
                if (x->preempt == KVB_PREEMPT_SWAP && !kvb_serve_can_swap(x)) {
                    if (bu == 0 && k == 0)
                        fprintf(stderr, "kvbench: %s cannot swap (no seq_save): its swap "
                                        "cases are skipped\n", backs[i]->name);
                    continue;
                }
                x->opt = (kvb_options){.dtype = dts[j],
                                       .alloc = pg ? KVB_ALLOC_GROW : (kvb_alloc)mi[k],
                                       .block_tokens = pg ? blocks[k] : 0,
                                       .threads = c->threads};
                kvb_opts_case(c, head_dim, KVB_KEY_AXIS_DEFAULT, &x->opt);
                char mode[16];
                if (pg)
                    snprintf(mode, sizeof mode, "bs%d", blocks[k]);
                else
                    snprintf(mode, sizeof mode, "%s", mode_names[mi[k]]);
                snprintf(x->name, sizeof x->name, "%s/%s/%s%s%s%s", backs[i]->name,
                         kvb_dtype_name(dts[j]), mode, x->preempt ? "/swap" : "",
                         nbud > 1 ? "@" : "", nbud > 1 ? bnames[bu] : "");
                (*n)++;
            }
        }
    }
    if (*n == 0) return kvb_usage_error("no case: --backend and --dtype share no pair");
    return 0;
}

/* the rates: --rates's list, or --rate */
static int parse_rates(const kvb_opts *c, kvb_arrival arr, double *rates, int *n)
{
    *n = 1;
    rates[0] = c->rate;
    if (c->rates) {
        char buf[1024], *items[KVB_MAX_LIST];
        snprintf(buf, sizeof buf, "%s", c->rates);
        if (kvb_split_list("--rates", buf, items, KVB_MAX_LIST, n)) return KVB_EXIT_USAGE;
        for (int i = 0; i < *n; i++)
            if (kvb_parse_double("--rates", items[i], -1e12, 1e12, &rates[i]))
                return KVB_EXIT_USAGE;
        if (arr != KVB_ARRIVAL_POISSON)
            return kvb_usage_error("--rates needs --arrival poisson, not %s",
                                   kvb_arrival_name(arr));
    }
    for (int i = 0; i < *n; i++)
        if (!(rates[i] > 0))
            return kvb_usage_error("%s %g: requests per simulated second must be above 0",
                                   c->rates ? "--rates item" : "--rate", rates[i]);
    return 0;
}

static void print_row(const kvb_serve_case *x, const kvb_serve_summary *s)
{
    printf("%-30s %6g %4d %4d %6d %5d %5.1f(%3d) %9.1f %8.1f %8.1f %7.2f %7.2f %7.2f %5.3f %5d "
           "%9.0f\n",
           x->name, s->rate, s->finished, s->rejected, s->preemptions, s->swaps_out, s->batch_mean,
           s->batch_max,
           s->throughput, s->ttft[0] * 1e3, s->ttft[2] * 1e3, s->tpot[0] * 1e3, s->tpot[2] * 1e3,
           s->itl[2] * 1e3, s->kv_used_mean, s->prefix_hits, s->saved_mean);
    fflush(stdout);
}

/* report.md: the command, the workload and a table per run */
static int write_report(const char *dir, const char *cmdline, const char *source,
                        const kvb_workload_config *wc, const char *budgets,
                        const kvb_serve_case *cs,
                        int n_cases, const kvb_serve_summary *sums, int n, char *msg,
                        size_t msg_len)
{
    char path[KVB_PATH_MAX];
    kvb_afile a;
    snprintf(path, sizeof path, "%s/report.md", dir);
    if (kvb_afile_open(&a, path, msg, msg_len)) return -1;
    FILE *f = a.f;
    fprintf(f,
            "# kvbench serve\n\n`%s`\n\nModel %s; KV budget %s; arrivals %s; "
            "prompts %d..%d own tokens after a shared prefix of %d; outputs %d..%d tokens.\n\n",
            cmdline, source, budgets, kvb_arrival_name(wc->arrival),
            wc->prompt_lo, wc->prompt_hi, wc->shared_prefix, wc->output_lo, wc->output_hi);
    fprintf(f, "| case | rate | budget bytes | finished | rejected | preempted (swapped) | "
               "seqs/step mean (max) | tok/s | TTFT p50 / p99 ms | TPOT p50 / p99 ms | "
               "ITL p99 ms | KV used | prefix hits | saved bytes mean (max blocks) "
               "|\n|---|---|---|---|---|---|---|---|---|---|---|---|"
               "---|---|\n");
    for (int i = 0; i < n; i++) {
        const kvb_serve_summary *s = &sums[i];
        fprintf(f,
                "| %s | %g | %zu | %d | %d | %d (%d) | %.1f (%d) | %.1f | %.1f / %.1f | "
                "%.2f / %.2f | %.2f | %.3f | %d/%d | %.0f (%.0f) |\n",
                cs[i % n_cases].name, s->rate, s->budget_bytes, s->finished, s->rejected,
                s->preemptions, s->swaps_out,
                s->batch_mean, s->batch_max, s->throughput, s->ttft[0] * 1e3, s->ttft[2] * 1e3,
                s->tpot[0] * 1e3, s->tpot[2] * 1e3, s->itl[2] * 1e3, s->kv_used_mean,
                s->prefix_hits, s->prefix_lookups, s->saved_mean, s->saved_max_blocks);
    }
    fprintf(f, "\nRate is requests per simulated second; the clock advances by each model call's "
               "wall time. Files: serve.csv (these rows), requests.csv, steps.csv (KV used and "
               "reserved after every model call); docs/serving.md explains each figure.\n");
    return kvb_afile_commit(&a, msg, msg_len) ? -1 : 0;
}

/* plots/serve.gp and serve.dat (kv.dat was written as the cases ran):
 * serve.png, throughput against p99 TPOT, a line per case over the rates;
 * load.png, throughput, p99 TPOT and p99 TTFT against the arrival rate;
 * kv.png, KV used / budget over the clock, a line per case and rate. Drawn
 * when gnuplot is on PATH. */
static int write_plot(const char *dir, const kvb_serve_case *cs, const kvb_serve_summary *sums,
                      int n_cases, int n_rates, char *msg, size_t msg_len)
{
    char pdir[KVB_PATH_MAX], path[KVB_PATH_MAX];
    snprintf(pdir, sizeof pdir, "%s/plots", dir);
    kvb_afile d, g;
    snprintf(path, sizeof path, "%s/serve.dat", pdir);
    if (kvb_afile_open(&d, path, msg, msg_len)) return -1;
    for (int k = 0; k < n_cases; k++) {
        fprintf(d.f, "%s\"%s\"\n# rate tpot_p99_ms throughput_tok_s ttft_p99_s\n",
                k ? "\n\n" : "", cs[k].name);
        for (int r = 0; r < n_rates; r++) {
            const kvb_serve_summary *s = &sums[r * n_cases + k];
            fprintf(d.f, "%g %.4f %.3f %.4f\n", s->rate, s->tpot[2] * 1e3, s->throughput,
                    s->ttft[2]);
        }
    }
    if (kvb_afile_commit(&d, msg, msg_len)) return -1;
    snprintf(path, sizeof path, "%s/serve.gp", pdir);
    if (kvb_afile_open(&g, path, msg, msg_len)) return -1;
    fprintf(g.f,
            "# gnuplot serve.gp (in this folder): serve.png\n"
            "set terminal pngcairo size 900,600 noenhanced\nset output 'serve.png'\n"
            "set title 'kvbench serve: throughput against p99 TPOT over arrival rates'\n"
            "set xlabel 'p99 time per output token (ms)'\n"
            "set ylabel 'throughput (output tokens / simulated s)'\nset key outside right\n"
            "set grid\nplot for [i=0:%d] 'serve.dat' index i using 2:3 with linespoints "
            "title columnheader(1)\n\n"
            "set terminal pngcairo size 1800,560 noenhanced\nset output 'load.png'\n"
            "set multiplot title 'kvbench serve: against load (arrival rate)'\nunset title\n"
            "set key at screen 0.76, screen 0.9 left top\n"
            "set xlabel 'arrival rate (requests / simulated s)'\n"
            "set size 0.25,0.9\nset origin 0,0\nset ylabel 'throughput (output tokens / s)'\n"
            "plot for [i=0:%d] 'serve.dat' index i using 1:3 with linespoints notitle\n"
            "set origin 0.25,0\nset ylabel 'p99 TPOT (ms)'\n"
            "plot for [i=0:%d] 'serve.dat' index i using 1:2 with linespoints notitle\n"
            "set origin 0.5,0\nset ylabel 'p99 TTFT (s)'\n"
            "plot for [i=0:%d] 'serve.dat' index i using 1:4 with linespoints "
            "title columnheader(1)\n"
            "unset multiplot\nset size 1,1\nset origin 0,0\n\n"
            "set terminal pngcairo size 1000,600 noenhanced\nset output 'kv.png'\n"
            "set title 'kvbench serve: KV used / budget over the clock, at rate %g'\n"
            "set key outside right\nset xlabel 'simulated time (s)'\n"
            "set ylabel 'KV used / budget'\nset yrange [0:1.05]\n"
            "plot for [i=%d:%d] 'kv.dat' index i using 1:2 with lines title columnheader(1)\n",
            n_cases - 1, n_cases - 1, n_cases - 1, n_cases - 1, sums[(n_rates - 1) * n_cases].rate,
            (n_rates - 1) * n_cases, n_rates * n_cases - 1);
    if (kvb_afile_commit(&g, msg, msg_len)) return -1;
    char cmd[KVB_PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "cd '%s' && gnuplot serve.gp >/dev/null 2>&1", pdir);
    if (strchr(pdir, '\'') || system(cmd) != 0)
        fprintf(stderr,
                "kvbench: plots/serve.png not drawn (gnuplot missing or failed); "
                "run gnuplot serve.gp in '%s'\n",
                pdir);
    return 0;
}

/* the result directory: --out, or results/<UTC>-serve; must not exist */
static int choose_out(const kvb_opts *c, char *dir, size_t n, char *partial, size_t pn)
{
    struct stat sb;
    if (c->out)
        snprintf(dir, n, "%s", c->out);
    else {
        char stamp[64];
        time_t now = time(NULL);
        struct tm tmv;
        gmtime_r(&now, &tmv);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tmv);
        if (mkdir("results", 0777) != 0 && errno != EEXIST)
            return kvb_usage_error("cannot create 'results/': %s", strerror(errno));
        snprintf(dir, n, "results/%s-serve", stamp);
    }
    kvb_partial_name(dir, partial, pn);
    if (lstat(dir, &sb) == 0)
        return kvb_usage_error("output '%s' exists: kvbench never overwrites a run; choose "
                               "another --out",
                               dir);
    if (lstat(partial, &sb) == 0)
        return kvb_usage_error("'%s' exists: an earlier run into it was interrupted; remove it",
                               partial);
    return 0;
}

typedef struct out_files {
    kvb_afile f[4]; /* serve.csv, requests.csv, steps.csv, plots/kv.dat */
    int open;
} out_files;

static int open_files(out_files *o, const char *dir, char *msg, size_t msg_len)
{
    static const char *const names[4] = {"serve.csv", "requests.csv", "steps.csv",
                                         "plots/kv.dat"};
    static const char *const heads[4] = {KVB_SERVE_REAL_HEAD, KVB_SERVE_REQ_HEAD,
                                         KVB_SERVE_STEP_HEAD, "# kv.png's lines, one block each"};
    char pdir[KVB_PATH_MAX];
    snprintf(pdir, sizeof pdir, "%s/plots", dir);
    if (mkdir(pdir, 0777) != 0 && errno != EEXIST) {
        snprintf(msg, msg_len, "cannot create '%s': %s", pdir, strerror(errno));
        return -1;
    }
    for (o->open = 0; o->open < 4; o->open++) {
        char path[KVB_PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, names[o->open]);
        if (kvb_afile_open(&o->f[o->open], path, msg, msg_len)) return -1;
        fprintf(o->f[o->open].f, "%s\n", heads[o->open]);
    }
    return 0;
}

static int close_files(out_files *o, int ok, char *msg, size_t msg_len)
{
    int rc = ok ? 0 : -1;
    for (int i = 0; i < o->open; i++)
        if (rc)
            kvb_afile_abort(&o->f[i]);
        else if (kvb_afile_commit(&o->f[i], msg, msg_len))
            rc = -1;
    o->open = 0;
    return rc;
}

/* One (case, rate)'s kv.dat block for kv.png: clock, used and reserved over
 * the budget after each model call. Blocks appear in serve's order, rate by
 * rate, as kv.png indexes them. */
static void write_kv_block(FILE *f, const kvb_serve_case *c, const kvb_serve_summary *s,
                           const kvb_sched_stats *st)
{
    fprintf(f, "\"%s rate %g\"\n# t_s kv_used/budget kv_reserved/budget\n", c->name, s->rate);
    for (int i = 0; i < st->n_steps; i++)
        fprintf(f, "%.4f %.4f %.4f\n", st->steps[i].t_s,
                (double)st->steps[i].used / (double)s->budget_bytes,
                (double)st->steps[i].reserved / (double)s->budget_bytes);
    fprintf(f, "\n\n");
}

/* Every case at every rate; rows printed and written as they finish. */
static int serve_all(const kvb_opts *c, const kvb_model *m, kvb_state *st, kvb_workload_config *wc,
                     const double *rates, int n_rates, const kvb_serve_case *cs, int n_cases,
                     const kvb_serve_setup *su, int interleave, kvb_serve_summary *sums,
                     out_files *of, char *msg, size_t msg_len)
{
    int failed = 0;
    for (int ri = 0; ri < n_rates; ri++) {
        wc->rate = rates[ri];
        kvb_workload w;
        if (kvb_workload_make(wc, &w, msg, msg_len) != KVB_STATUS_OK) return -1;
        double rate = wc->arrival == KVB_ARRIVAL_POISSON ? rates[ri] : 0;
        /* per case: its requests' results, its scheduler's records, status, message */
        kvb_req_result *res = calloc((size_t)w.n * n_cases, sizeof *res);
        kvb_sched_stats *sst = calloc((size_t)n_cases, sizeof *sst);
        kvb_status *rcs = calloc((size_t)n_cases, sizeof *rcs);
        char(*msgs)[KVB_SERVE_MSG] = calloc((size_t)n_cases, sizeof *msgs);
        int oom = !res || !sst || !rcs || !msgs;
        if (!oom && !c->quiet)
            fprintf(stderr, "serve: %d case%s %s at rate %g: %d requests...\n", n_cases,
                    n_cases == 1 ? "" : "s", interleave ? "interleaved" : "one after another",
                    rate, w.n);
        if (!oom)
            kvb_serve_cases_run(m, st, cs, n_cases, su, &w, rate, interleave,
                                &sums[ri * n_cases], res, sst, rcs, msgs);
        for (int k = 0; !oom && k < n_cases; k++) {
            kvb_serve_summary *s = &sums[ri * n_cases + k];
            kvb_req_result *rk = res + (size_t)k * w.n;
            if (rcs[k] != KVB_STATUS_OK) {
                fprintf(stderr, "kvbench: %s failed: %s\n", cs[k].name, msgs[k]);
                failed = 1;
            } else {
                print_row(&cs[k], s);
                kvb_serve_write_row(of->f[0].f, &cs[k], s);
                kvb_serve_write_requests(of->f[1].f, &cs[k], rate, &w, rk);
                kvb_serve_write_steps(of->f[2].f, &cs[k], rate, &sst[k]);
                write_kv_block(of->f[3].f, &cs[k], s, &sst[k]);
            }
            kvb_sched_free(rk, w.n, &sst[k]);
        }
        if (oom) snprintf(msg, msg_len, "out of memory for %d requests of %d cases", w.n, n_cases);
        free(res);
        free(sst);
        free(rcs);
        free(msgs);
        kvb_workload_free(&w);
        if (oom) return -1;
    }
    return failed;
}

int kvb_cmd_serve_real(const kvb_cli *cli, const kvb_command *self, int argc, char **argv)
{
    kvb_opts c;
    int r = kvb_opts_parse(cli, self, argc, argv, &c);
    if (r) return r < 0 ? 0 : r;
    static const char *const arr_names[] = {"poisson", "all", "trace"};
    static const char *const pc_names[] = {"off", "on"};
    int arr, pc, n1, interleave;
    size_t budget = 0, swap_space = 0;
    if ((r = kvb_parse_enum_list("--arrival", c.arrival, arr_names, 3, &arr, &n1)) != 0 ||
        (r = kvb_parse_enum_list("--prefix-cache", c.prefix_cache, pc_names, 2, &pc, &n1)) != 0 ||
        (r = kvb_parse_enum_list("--interleave", c.interleave, pc_names, 2, &interleave, &n1)) !=
            0 ||
        (r = parse_bytes("--swap-space", c.swap_space, &swap_space)) != 0)
        return r;
    kvb_workload_config wc = {.arrival = (kvb_arrival)arr,
                              .n_requests = c.requests,
                              .shared_prefix = c.shared_prefix,
                              .max_len = c.max_len,
                              .seed = (uint64_t)c.seed,
                              .trace = c.trace};
    double rates[KVB_MAX_LIST];
    int n_rates, n_cases;
    if ((r = parse_rates(&c, wc.arrival, rates, &n_rates)) != 0 ||
        (r = parse_range("--prompt-len", c.prompt_len, &wc.prompt_lo, &wc.prompt_hi)) != 0 ||
        (r = parse_range("--output-len", c.output_len, &wc.output_lo, &wc.output_hi)) != 0)
        return r;
    if ((wc.arrival == KVB_ARRIVAL_TRACE) != (c.trace != NULL))
        return kvb_usage_error(c.trace ? "--trace '%s' needs --arrival trace"
                                       : "--arrival trace needs --trace FILE%s",
                               c.trace ? c.trace : "");
    if (pc && c.shared_prefix == 0)
        return kvb_usage_error("--prefix-cache on needs --shared-prefix N: nothing to share");
    kvb_model_config mc;
    const char *source = NULL;
    if ((r = kvb_opts_model_config(&c, &mc, &source)) != 0) return r;
    kvb_serve_case cs[MAX_CASES];
    if ((r = make_cases(&c, mc.head_dim, cs, &n_cases)) != 0) return r;
    budget = cs[0].budget_bytes; /* the first; report.md names each case's */
    int any_quant = 0;
    for (int k = 0; k < n_cases; k++) any_quant |= kvb_dtype_is_quant(cs[k].opt.dtype);
    kvb_opts_note_group(&c, mc.head_dim, any_quant);
    wc.vocab = mc.vocab_size;
    char msg[2 * KVB_PATH_MAX + 256];
    /* the requests once here: the trace and the lengths are checked before any work */
    kvb_workload w0;
    wc.rate = rates[0];
    kvb_status ws = kvb_workload_make(&wc, &w0, msg, sizeof msg);
    if (ws != KVB_STATUS_OK)
        return ws == KVB_STATUS_NO_MEMORY ? KVB_EXIT_FAIL : kvb_usage_error("%s", msg);
    int max_len = w0.max_len;
    kvb_workload_free(&w0);
    if (max_len > mc.max_seq)
        return kvb_usage_error("a sequence would hold %d positions (%s), past the model's "
                               "max-seq %d: shorten them or raise --max-seq",
                               max_len, c.max_len ? "--max-len" : "the longest prompt + output",
                               mc.max_seq);
    kvb_serve_setup su = {swap_space, budget, c.max_batch, pc};
    kvb_shape sh = kvb_model_kv_shape(&mc);
    sh.max_seq = max_len;
    for (int k = 0; k < n_cases; k++) {
        kvb_options o;
        kvb_sched_config sc;
        char why[256];
        if (kvb_serve_plan(&mc, &cs[k], &su, max_len, mc.max_seq, &o, &sc, msg, sizeof msg) !=
            KVB_STATUS_OK)
            return kvb_usage_error("%s", msg);
        if (kvb_backend_supports(cs[k].backend, &sh, &o, why, sizeof why) != KVB_STATUS_OK)
            return kvb_usage_error("%s: %s", cs[k].name, why);
    }
    /* interleaved cases hold every cache at once: not past half the memory */
    double all = 0, phys = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    for (int k = 0; k < n_cases; k++) all += (double)cs[k].budget_bytes;
    if (interleave && n_cases > 1 && phys > 0 && all > phys / 2) {
        fprintf(stderr, "kvbench: the %d cases' budgets together (%.0f MiB) pass half the memory "
                        "(%.0f MiB): served one after another, not interleaved\n",
                n_cases, all / 1048576, phys / 1048576);
        interleave = 0;
    }
    char dir[KVB_PATH_MAX], partial[KVB_PATH_MAX + 16];
    if ((r = choose_out(&c, dir, sizeof dir, partial, sizeof partial)) != 0) return r;
    if (c.dry_run) {
        printf("dry run: %d case%s x %d rate%s, model %s, budget %s; flags valid, nothing "
               "measured\n",
               n_cases, n_cases == 1 ? "" : "s", n_rates, n_rates == 1 ? "" : "s", source,
               c.kv_budget);
        return 0;
    }
    if (mkdir(partial, 0777) != 0)
        return kvb_usage_error("cannot create '%s': %s", partial, strerror(errno));
    kvb_model m = {0};
    kvb_state st = {0};
    out_files of = {0};
    kvb_serve_summary *sums = calloc((size_t)n_rates * n_cases, sizeof *sums);
    int rc = 0, kept = 0;
    if (!sums || (rc = kvb_opts_build_model(&c, &mc, &m)) != 0) {
        rc = rc ? rc : KVB_EXIT_FAIL;
        goto done;
    }
    if (kvb_state_init(&st, &m.cfg, c.threads) != KVB_STATUS_OK ||
        kvb_state_set_matvec(&st, &m, c.matvec, msg, sizeof msg) != KVB_STATUS_OK) {
        fprintf(stderr, "kvbench: %s\n", st.X ? msg : "out of memory for activations");
        rc = KVB_EXIT_FAIL;
        goto done;
    }
    openblas_set_num_threads(1);   /* the passes split sgemm over the state's pool */
    printf("serve: model %s, KV budget %s (%zu bytes%s), %s arrivals, max %d tokens per "
           "request\n",
           source, c.kv_budget, budget, strchr(c.kv_budget, ',') ? " the first" : "",
           kvb_arrival_name(wc.arrival), max_len);
    printf("%-30s %6s %4s %4s %6s %5s %10s %9s %8s %8s %7s %7s %7s %5s %5s %9s\n", "case",
           "rate", "fin", "rej", "preempt", "swap", "batch(max)", "tok/s", "ttft50", "ttft99",
           "tpot50", "tpot99",
           "itl99", "kv", "hits", "saved_B");
    int failed = open_files(&of, partial, msg, sizeof msg)
                     ? -1
                     : serve_all(&c, &m, &st, &wc, rates, n_rates, cs, n_cases, &su, interleave,
                                 sums, &of, msg, sizeof msg);
    if (failed < 0 || close_files(&of, 1, msg, sizeof msg) ||
        write_report(partial, cli->cmdline, source, &wc, c.kv_budget, cs, n_cases, sums,
                     n_rates * n_cases, msg, sizeof msg) ||
        write_plot(partial, cs, sums, n_cases, n_rates, msg, sizeof msg) ||
        kvb_partial_publish(partial, dir, msg, sizeof msg)) {
        fprintf(stderr, "kvbench: %s; what was written stays in '%s'\n", msg, partial);
        kept = 1;
        rc = KVB_EXIT_FAIL;
        goto done;
    }
    kept = 1;
    printf("results: %s\n", dir);
    rc = failed ? KVB_EXIT_FAIL : 0;
done:
    close_files(&of, 0, msg, sizeof msg);
    if (!kept) kvb_rmtree(partial);
    free(sums);
    kvb_state_free(&st);
    kvb_model_free(&m);
    return rc;
}
