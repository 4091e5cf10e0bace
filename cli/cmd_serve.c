/* cmd_serve.c: kvbench serve-sim: many requests served in rounds under one KV
 * memory budget, first come first served, the latest preempted when memory
 * runs out; how many sequences each cache holds, how full it is, how much
 * forks share. Only the model's KV shape is used (a preset's, a checkpoint's,
 * or overridden); K/V values are noise. */
#define _GNU_SOURCE
#include "cli.h"
#include "opts.h"
#include "../base/afile.h"
#include "../base/columns.h"
#include "../harness/serve.h"

#include <stdio.h>
#include <string.h>

const kvb_cmd_spec kvb_serve_spec = {
    .usage = "[flags]",
    .intro = "Serves --sequences requests with seeded prompt/output lengths in rounds under one\n"
             "KV memory budget: admit first come first served while prompts fit, decode one\n"
             "token per running sequence per round, preempt the latest request when memory\n"
             "runs out. Only the model's KV shape is used: the preset's, a checkpoint's, or\n"
             "as --layers, --heads, --kv-heads, --head-dim and --dim change it; K/V values\n"
             "are seeded noise.",
    .epilogue = "Columns: max_run = most sequences running at once; mean_run = their mean over\n"
                "rounds: the sequences the budget holds;\n"
                "util = used / reserved KV bytes (mean over rounds); live/bud = used / budget;\n"
                "shared = 1 - bytes held / bytes the same sequences would hold without sharing;\n"
                "preempt = requests preempted; step_us = median time of one sequence's token\n"
                "(append + attend over every layer).",
    .flags = kvb_opts_flags,
};

int kvb_cmd_serve(const kvb_cli *cli, const kvb_command *self, int argc, char **argv)
{
    kvb_opts c;
    int r = kvb_opts_parse(cli, self, argc, argv, &c);
    if (r) return r < 0 ? 0 : r;
    const kvb_backend *backs[KVB_MAX_LIST];
    kvb_dtype dts[KVB_MAX_LIST];
    kvb_alloc modes[KVB_MAX_LIST];
    kvb_len_dist lens[KVB_MAX_LIST];
    kvb_fork_kind forks[KVB_MAX_LIST];
    int nb, nd, nm, nk, nl, nf, blocks[KVB_MAX_LIST];
    if ((r = kvb_opts_backends_dtypes(&c, backs, &nb, dts, &nd)) != 0) return r;
    if ((r = kvb_parse_int_list("--block", c.blocks, 1, 256, blocks, &nk)) != 0) return r;
    static const char *const mode_names[] = {"grow", "prealloc"};
    static const char *const len_names[] = {"uniform", "longtail"};
    static const char *const fork_names[] = {"none", "parallel", "beam"};
    int mi[KVB_MAX_LIST], lsel[KVB_MAX_LIST], fsel[KVB_MAX_LIST];
    if ((r = kvb_parse_enum_list("--mode", c.modes, mode_names, 2, mi, &nm)) != 0 ||
        (r = kvb_parse_enum_list("--lengths", c.lengths, len_names, 2, lsel, &nl)) != 0 ||
        (r = kvb_parse_enum_list("--fork", c.forks, fork_names, 3, fsel, &nf)) != 0)
        return r;
    for (int i = 0; i < nm; i++) modes[i] = (kvb_alloc)mi[i];
    for (int i = 0; i < nl; i++) lens[i] = (kvb_len_dist)lsel[i];
    for (int i = 0; i < nf; i++) forks[i] = (kvb_fork_kind)fsel[i];
    /* only the KV shape is simulated: the weights' limits do not apply (kvb_shape_check below) */
    kvb_model_config mc;
    const char *source;
    int overridden = c.dim || c.layers || c.heads || c.kv_heads || c.head_dim;
    if (c.checkpoint && overridden && !c.preset)
        return kvb_usage_error("--checkpoint takes its shape from the file: no shape flag may "
                               "override it");
    if ((r = kvb_opts_kv_config(&c, &mc, &source)) != 0) return r;
    if (c.model) kvb_opts_say_model(source, &mc);
    kvb_serve_config sc = {
        .shape = {mc.n_layers, mc.n_heads, mc.n_kv_heads, mc.head_dim, c.max_prompt + c.max_output},
        .n_requests = c.sequences,
        .max_prompt = c.max_prompt,
        .max_output = c.max_output,
        .fork_n = c.fork_n,
        .attend = !c.no_attend,
        .seed = (uint64_t)c.seed,
        .time_budget_s = c.time_budget,
    };
    size_t tok_bytes = 2 * (size_t)mc.n_layers * mc.n_kv_heads * mc.head_dim * 4;
    /* default budget: a quarter of what every sequence at its longest would need, and
     * never less than one sequence at its longest (with under 4 requests a quarter
     * would hold no preallocated request at all) */
    size_t one_seq = (size_t)sc.shape.max_seq * tok_bytes;
    size_t quarter = (size_t)c.sequences * one_seq / 4;
    if (quarter < one_seq) quarter = one_seq;
    char why[256];
    if (kvb_shape_check(&sc.shape, why, sizeof why) != KVB_STATUS_OK)
        return kvb_usage_error("%s", why);
    int runnable = 0, cases_n = 0, any_quant = 0;
    double budget_max = 0;
    for (int i = 0; i < nb; i++)
        for (int j = 0; j < nd; j++) {
            if (!kvb_pair_wanted(backs[i], dts, nd, j)) continue;
            any_quant |= kvb_dtype_is_quant(dts[j]);
            cases_n++;
            if (backs[i]->flags & KVB_BACKEND_RECOMPUTE) {
                snprintf(why, sizeof why, "%s holds no KV to serve from", backs[i]->name);
                continue;
            }
            kvb_options o = {.dtype = dts[j], .max_seqs = 1};
            kvb_opts_case(&c, mc.head_dim, KVB_KEY_AXIS_DEFAULT, &o);
            if (kvb_backend_supports(backs[i], &sc.shape, &o, why, sizeof why) != KVB_STATUS_OK)
                continue;
            runnable++;
            for (int fi = 0; fi < nf; fi++) {
                double bud = c.budget_mb > 0
                                 ? c.budget_mb * 1048576.0
                                 : (double)quarter * (forks[fi] == KVB_FORK_NONE ? 1 : c.fork_n);
                if (bud > budget_max) budget_max = bud;
            }
        }
    kvb_opts_note_group(&c, mc.head_dim, any_quant);
    if (runnable == 0) {
        return kvb_nothing_to_measure("cache", cases_n, why);
    }
    /* the KV budget (a prealloc cache reserves up to it), plus the noise K/V per sequence */
    if ((r = kvb_check_memory("serve-sim's KV budget",
                              budget_max + 3.0 * sc.shape.max_seq * tok_bytes)) != 0)
        return r;
    if (c.dry_run) {
        printf("dry run: %d cache%s (%d runnable); flags valid, nothing measured\n", cases_n,
               cases_n == 1 ? "" : "s", runnable);
        return 0;
    }
    printf("serve-sim: %d requests, prompt <= %d, output <= %d tokens, %s%s shape (%d layers, %d "
           "kv heads x %d, %zu f32 bytes per token), budget %s%s\n",
           c.sequences, c.max_prompt, c.max_output, source, overridden ? " + overrides" : "",
           mc.n_layers, mc.n_kv_heads, mc.head_dim, tok_bytes,
           c.budget_mb > 0 ? "as given" : "a quarter of all sequences at their longest",
           sc.attend ? "" : ", attention off");
    printf("%-26s %-9s %-9s %8s %7s %8s %8s %8s %7s %7s %9s %7s %7s\n", "cache", "lengths", "fork",
           "budgetMB", "max_run", "mean_run", "util", "live/bud", "shared", "preempt", "step_us",
           "rounds", "wall_s");
    FILE *csv = NULL;
    kvb_afile out;
    char cause[KVB_PATH_MAX + 256];
    if (c.csv) {
        if (kvb_afile_open(&out, c.csv, cause, sizeof cause))
            return kvb_usage_error("--csv: %s", cause);
        csv = out.f;
        fprintf(csv, KVB_SERVE_HEAD "\n");
    }
    int rc = 0, measured = 0;
    for (int li = 0; li < nl; li++)
        for (int fi = 0; fi < nf; fi++)
            for (int i = 0; i < nb; i++)
                for (int j = 0; j < nd; j++) {
                    int pg = (backs[i]->flags & KVB_BACKEND_PAGED) != 0;
                    if (backs[i]->flags & KVB_BACKEND_RECOMPUTE) continue; /* holds no KV */
                    if (!kvb_pair_wanted(backs[i], dts, nd, j)) continue;
                    for (int k = 0; k < (pg ? nk : nm); k++) {
                        kvb_options o = {.dtype = dts[j],
                                         .alloc = pg ? KVB_ALLOC_GROW : modes[k],
                                         .block_tokens = pg ? blocks[k] : 0};
                        kvb_opts_case(&c, mc.head_dim, KVB_KEY_AXIS_DEFAULT, &o);
                        sc.lengths = lens[li];
                        sc.fork = forks[fi];
                        sc.budget_bytes =
                            c.budget_mb > 0
                                ? (size_t)(c.budget_mb * 1048576.0)
                                : quarter * (size_t)(sc.fork == KVB_FORK_NONE ? 1 : sc.fork_n);
                        char name[64];
                        snprintf(name, sizeof name, "%s/%s/%s%d", backs[i]->name,
                                 kvb_dtype_name(dts[j]), pg ? "bs" : kvb_alloc_name(modes[k]),
                                 pg ? blocks[k] : 0);
                        if (!pg) name[strlen(name) - 1] = 0; /* drop the 0 */
                        kvb_serve_result res;
                        kvb_serve_run(backs[i], o, &sc, &res);
                        if (res.status == KVB_STATUS_OK) measured++;
                        if (res.status != KVB_STATUS_OK) {
                            /* a cache that cannot do this (window cannot fork): skipped */
                            int skip = res.status == KVB_STATUS_UNSUPPORTED;
                            printf("%-26s %-9s %-9s %s: %s\n", name,
                                   kvb_len_dist_name(sc.lengths), kvb_fork_kind_name(sc.fork),
                                   skip ? "skipped" : "failed", res.reason);
                            if (!skip) rc = 1;
                        } else
                            printf("%-26s %-9s %-9s %8.2f %7d %8.1f %8.3f %8.3f %7.3f %7d %9.1f "
                                   "%7d %7.1f\n",
                                   name, kvb_len_dist_name(sc.lengths), kvb_fork_kind_name(sc.fork),
                                   (double)sc.budget_bytes / 1e6, res.max_running, res.mean_running,
                                   res.utilization, res.budget_live, res.sharing_saved,
                                   res.preemptions, res.step_ns_median / 1e3, res.rounds,
                                   res.wall_s);
                        fflush(stdout);
                        if (csv)
                            fprintf(csv,
                                    "%s,%s,%s,%d,%d,%zu,%d,%.3f,%.5f,%.5f,%.5f,%d,%.0f,%.0f,%.0f,%"
                                    "lld,%d,%.3f,%s,\"%s\"\n",
                                    name, kvb_len_dist_name(sc.lengths),
                                    kvb_fork_kind_name(sc.fork),
                                    sc.fork == KVB_FORK_NONE ? 1 : sc.fork_n, sc.n_requests,
                                    sc.budget_bytes, res.max_running, res.mean_running,
                                    res.utilization, res.budget_live, res.sharing_saved,
                                    res.preemptions, res.step_ns_median, res.step_ns_p10,
                                    res.step_ns_p90, res.tokens, res.rounds, res.wall_s,
                                    res.cut_short ? "cut_short" : kvb_status_str(res.status),
                                    res.reason);
                        if (res.cut_short)
                            fprintf(stderr, "kvbench: %s cut short: %s\n", name, res.reason);
                    }
                }
    /* a failed case is a row of its own: the table is kept */
    if (csv && kvb_afile_commit(&out, cause, sizeof cause)) {
        fprintf(stderr, "kvbench: %s\n", cause);
        rc = 1;
    }
    if (rc == 0 && measured == 0) rc = KVB_EXIT_NOTHING;
    return rc;
}
