/* cmd_compare.c: kvbench compare BASE NEW, the regression gate's command:
 * loads both sides (compare.h), judges each case, prints the table and writes
 * the Markdown / JSON reports through temporary files. */
#define _XOPEN_SOURCE 700
#include "cli.h"
#include "../analysis/compare.h"
#include "../base/afile.h"
#include "../base/json.h"

#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const cmp_kind_names[KVB_CMP_KIND_COUNT] = {"time", "ratio", "ceiling", "exact",
                                                               "tolerance"};

/* compare.json: the gate's settings, the verdict counts and a row per case */
static void write_json(FILE *f, const kvb_cmp_set *b, const kvb_cmp_set *nw,
                       const kvb_cmp_case *const *bc, const kvb_cmp_case *const *nc,
                       const kvb_cmp_result *res, int n, const kvb_cmp_opts *o, const int *counts,
                       int missing)
{
    kvb_jw w;
    kvb_jw_init(&w, f);
    kvb_jw_open(&w, '{', " ");
    kvb_jw_break(&w, "\n  ");
    kvb_jw_kstr(&w, "base_machine", b->machine);
    kvb_jw_kstr(&w, "new_machine", nw->machine);
    kvb_jw_key(&w, "base_stale");
    if (b->stale[0])
        kvb_jw_str(&w, b->stale);
    else
        kvb_jw_null(&w);
    kvb_jw_key(&w, "gated_kinds");
    kvb_jw_open(&w, '[', " ");
    for (int k = 0; k < KVB_CMP_KIND_COUNT; k++)
        if (o->gate & (1u << k)) kvb_jw_str(&w, cmp_kind_names[k]);
    kvb_jw_close(&w, "");
    kvb_jw_break(&w, "\n  ");
    kvb_jw_knum(&w, "alpha", "%g", o->alpha);
    kvb_jw_knum(&w, "min_change", "%g", o->min_change);
    kvb_jw_knum(&w, "tolerance", "%g", o->tolerance);
    kvb_jw_break(&w, "\n  ");
    kvb_jw_key(&w, "counts");
    kvb_jw_open(&w, '{', " ");
    for (int v = 0; v < KVB_VERDICT_COUNT; v++)
        kvb_jw_kint(&w, kvb_verdict_name((kvb_verdict)v), counts[v]);
    kvb_jw_close(&w, "");
    kvb_jw_kint(&w, "missing_from_new", missing); /* gated base cases new lacks */
    kvb_jw_break(&w, "\n  ");
    kvb_jw_key(&w, "cases");
    kvb_jw_open(&w, '[', "\n    ");
    for (int i = 0; i < n; i++) {
        kvb_jw_open(&w, '{', " ");
        kvb_jw_kstr(&w, "case", bc[i]->name);
        kvb_jw_kstr(&w, "kind", cmp_kind_names[bc[i]->kind]);
        kvb_jw_knum(&w, "base", "%.9g", res[i].base);
        kvb_jw_knum(&w, "new", "%.9g", res[i].new_);
        kvb_jw_knum(&w, "change", "%.9g", res[i].change);
        kvb_jw_kint(&w, "n_base", bc[i]->n);
        kvb_jw_kint(&w, "n_new", nc[i]->n);
        kvb_jw_knum(&w, "p", "%.9g", res[i].p);
        kvb_jw_kstr(&w, "verdict", kvb_verdict_name(res[i].verdict));
        kvb_jw_close(&w, "");
    }
    kvb_jw_close(&w, "\n  ");
    kvb_jw_close(&w, "\n");
    fputc('\n', f);
}

/* compare.md: the same as a table */
static void write_markdown(FILE *f, const kvb_cmp_set *b, const kvb_cmp_set *nw,
                           const kvb_cmp_case *const *bc, const kvb_cmp_result *res, int n,
                           const kvb_cmp_opts *o, const int *counts)
{
    fprintf(f, "## kvbench compare\n\nbase: %s  \nnew: %s  \n", b->machine, nw->machine);
    if (b->stale[0])
        fprintf(f, "base is stale: %s (only bytes and seeded errors gate)  \n", b->stale);
    fprintf(f, "alpha %g, minimum change %.0f%%, tolerance %.0f%%; gated kinds:", o->alpha,
            100 * o->min_change, 100 * o->tolerance);
    for (int k = 0; k < KVB_CMP_KIND_COUNT; k++)
        if (o->gate & (1u << k)) fprintf(f, " %s", cmp_kind_names[k]);
    fprintf(f, "\n\n");
    fprintf(f,
            "| case | kind | base | new | change | p | verdict |\n|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        fprintf(f, "| %s | %s | %.4g | %.4g | %+.1f%% | ", bc[i]->name, cmp_kind_names[bc[i]->kind],
                res[i].base, res[i].new_, 100 * res[i].change);
        if (isnan(res[i].p))
            fprintf(f, "-");
        else
            fprintf(f, "%.3g", res[i].p);
        const char *mark = res[i].verdict == KVB_VERDICT_REGRESSED ? "**" : "";
        fprintf(f, " | %s%s%s |\n", mark, kvb_verdict_name(res[i].verdict), mark);
    }
    fprintf(f,
            "\n%d regressed, %d improved, %d same, %d too few samples, %d changed but not gated\n",
            counts[KVB_VERDICT_REGRESSED], counts[KVB_VERDICT_IMPROVED], counts[KVB_VERDICT_SAME],
            counts[KVB_VERDICT_TOO_FEW], counts[KVB_VERDICT_INFO]);
}

/* Writes the comparison as markdown or JSON into path, whole or not at all. */
static int write_compare(const char *path, int json, const kvb_cmp_set *b, const kvb_cmp_set *nw,
                         const kvb_cmp_case *const *bc, const kvb_cmp_case *const *nc,
                         const kvb_cmp_result *res, int n, const kvb_cmp_opts *o, const int *counts,
                         int missing)
{
    char why[KVB_PATH_MAX + 256];
    kvb_afile a;
    if (kvb_afile_open(&a, path, why, sizeof why)) return kvb_usage_error("%s", why);
    if (json)
        write_json(a.f, b, nw, bc, nc, res, n, o, counts, missing);
    else
        write_markdown(a.f, b, nw, bc, res, n, o, counts);
    if (kvb_afile_commit(&a, why, sizeof why)) {
        fprintf(stderr, "kvbench: %s\n", why);
        return KVB_EXIT_USAGE; /* not 1: that means a regression */
    }
    return 0;
}

typedef struct compare_opts {
    const char *side[2];
    int ns;
    const char *md, *js, *filter, *gate;
    int quiet, any_machine, allow_missing, run_medians, paired;
    double alpha, min_change, tolerance;
} compare_opts;

static int compare_side(void *opts, const char *arg)
{
    compare_opts *o = opts;
    if (o->ns == 2) return kvb_usage_error("compare takes BASE and NEW, got a third: '%s'", arg);
    o->side[o->ns++] = arg;
    return 0;
}

/* tolerance 5%: a seeded error on one kernel repeats to the last bit, and
 * round-off is the floor's (kvb_cmp_tol_floor), so a tenth's growth is real */
#define C      KVB_CMD_COMPARE
#define OFF(f) offsetof(compare_opts, f)
/* clang-format off */
static const kvb_flag compare_flags[] = {
    {.name = "--alpha", .cmds = C, .kind = KVB_FLAG_DOUBLE, .dlo = 1e-6, .dhi = 0.5, .def = "0.05",
     .meta = "A", .help = "significance level of the Mann-Whitney U test", .off = OFF(alpha)},
    {.name = "--min-change", .cmds = C, .kind = KVB_FLAG_DOUBLE, .dlo = 0, .dhi = 10,
     .def = "0.10", .meta = "F", .help = "smallest change of a median that can regress",
     .off = OFF(min_change)},
    {.name = "--tolerance", .cmds = C, .kind = KVB_FLAG_DOUBLE, .dlo = 0, .dhi = 10,
     .def = "0.05", .meta = "F", .help = "growth of a seeded error that regresses",
     .off = OFF(tolerance)},
    {.name = "--gate", .cmds = C, .kind = KVB_FLAG_TEXT, .def = "all", .meta = "all|KINDS",
     .help = "the kinds that can regress: time,ratio,ceiling,exact,tolerance", .off = OFF(gate)},
    {.name = "--any-machine", .cmds = C, .kind = KVB_FLAG_SWITCH,
     .help = "gate times, ratios and tolerances whatever machines the sides ran on",
     .off = OFF(any_machine)},
    {.name = "--allow-missing", .cmds = C, .kind = KVB_FLAG_SWITCH,
     .help = "report a gated case of BASE missing from NEW instead of failing",
     .off = OFF(allow_missing)},
    {.name = "--run-medians", .cmds = C, .kind = KVB_FLAG_SWITCH,
     .help = "a side of several runs (runs/<n>/) gives one sample per run, its median "
             "(kvbench ab's rounds)", .off = OFF(run_medians)},
    {.name = "--paired", .cmds = C, .kind = KVB_FLAG_SWITCH,
     .help = "run r of BASE and run r of NEW are a pair (kvbench ab's rounds; implies "
             "--run-medians): judged by the Wilcoxon signed-rank test on the pairs' ratios",
     .off = OFF(paired)},
    {.name = "--filter", .cmds = C, .kind = KVB_FLAG_TEXT, .meta = "REGEX",
     .help = "compare only the cases whose name matches (extended regular expression)",
     .off = OFF(filter)},
    {.name = "--markdown", .cmds = C, .kind = KVB_FLAG_TEXT, .meta = "FILE",
     .help = "also write the comparison as Markdown", .off = OFF(md)},
    {.name = "--json", .cmds = C, .kind = KVB_FLAG_TEXT, .meta = "FILE",
     .help = "also write the comparison as JSON", .off = OFF(js)},
    {.name = "--quiet", .cmds = C, .kind = KVB_FLAG_SWITCH,
     .help = "no table of cases: the gate, the regressions and the counts only", .off = OFF(quiet)},
    {.name = NULL},
};
/* clang-format on */
#undef OFF
#undef C

const kvb_cmd_spec kvb_compare_spec = {
    .usage = "BASE NEW [flags]",
    .intro = "BASE and NEW: result directories (run, sweep, merge) or Google Benchmark JSON\n"
             "files. Cases are matched by name:\n"
             "  time        each repetition's time (decode totals, attend rounds, gbench runs);\n"
             "  ratio       paged or quant over the contiguous cache timed beside it, per round;\n"
             "  of ceiling  the fraction of the run's own read ceiling, per round;\n"
             "  exact       cache bytes: any growth regresses;\n"
             "  tolerance   errors on seeded inputs: growth past --tolerance AND past the\n"
             "              round-off floor of the case's storage type\n"
             "              (max(2^-17, step/64): f32 round-off never gates, q8 2^-13).\n"
             "A sampled case regresses only when the two-sided Mann-Whitney U test gives p <\n"
             "--alpha AND its median moved the wrong way by at least --min-change; sample\n"
             "sizes that cannot reach alpha are reported as too few. Of the --gate kinds,\n"
             "absolute times are gated only when both sides ran on the same machine (CPU\n"
             "model and host), ratios and ceilings only on the same CPU model, tolerances only\n"
             "between results of the same kernels (or the same CPU model where a side does\n"
             "not record them); --any-machine lifts that. A BASE with a STALE file gates bytes\n"
             "and seeded errors only. Other changes are reported. A gated case of BASE missing\n"
             "from NEW fails the comparison (--allow-missing: reported).",
    .epilogue = "Exit status: 0 nothing regressed; 1 something did, or a gated case is missing;\n"
                "2 unusable input, refused before judging (file and line named).",
    .flags = compare_flags,
    .positional = compare_side,
};

/* which kinds can regress: "all", or a list of them */
int kvb_gate_parse(const char *gate, unsigned *mask)
{
    *mask = 0;
    if (strcmp(gate, "all") == 0) {
        *mask = (1u << KVB_CMP_KIND_COUNT) - 1;
        return 0;
    }
    char gl[256], *items[8];
    int ng;
    snprintf(gl, sizeof gl, "%s", gate);
    if (kvb_split_list("--gate", gl, items, 8, &ng)) return KVB_EXIT_USAGE;
    for (int i = 0; i < ng; i++) {
        int k = 0;
        while (k < KVB_CMP_KIND_COUNT && strcmp(items[i], cmp_kind_names[k])) k++;
        if (k == KVB_CMP_KIND_COUNT)
            return kvb_usage_error("unknown --gate kind '%s': allowed are all, or a list of time, "
                                   "ratio, ceiling, exact, tolerance",
                                   items[i]);
        *mask |= 1u << k;
    }
    return 0;
}

int kvb_cmd_compare(const kvb_cli *cli, const kvb_command *self, int argc, char **argv)
{
    compare_opts co;
    memset(&co, 0, sizeof co);
    int r = kvb_flags_parse(cli, self, argc, argv, &co);
    if (r) return r < 0 ? 0 : r;
    if (co.ns != 2)
        return kvb_usage_error("compare needs BASE and NEW (result directories or Google "
                               "Benchmark JSON files)");
    kvb_cmp_opts o = {co.alpha, co.min_change, co.tolerance, 0};
    const char *const *side = co.side, *md = co.md, *js = co.js, *filter = co.filter;
    const char *gate = co.gate;
    int quiet = co.quiet, any_machine = co.any_machine, allow_missing = co.allow_missing;
    unsigned mask = 0;
    if (kvb_gate_parse(gate, &mask)) return KVB_EXIT_USAGE;
    regex_t re;
    if (filter && regcomp(&re, filter, REG_EXTENDED | REG_NOSUB) != 0)
        return kvb_usage_error("--filter '%s' is not a valid extended regular expression", filter);
    kvb_cmp_set b, nw;
    char msg[1024];
    if (co.paired) {
        /* pairs are runs: both sides must be pools of them */
        for (int k = 0; k < 2; k++) {
            char runs[1200];
            struct stat st;
            snprintf(runs, sizeof runs, "%s/runs", side[k]);
            if (stat(runs, &st) != 0 || !S_ISDIR(st.st_mode))
                return kvb_usage_error("--paired: '%s' is not a pool of runs (runs/<n>/, as "
                                       "kvbench ab writes each side)",
                                       side[k]);
        }
        co.run_medians = 1;
    }
    if (kvb_cmp_load_runs(&b, side[0], co.run_medians, msg, sizeof msg) != KVB_STATUS_OK) {
        if (filter) regfree(&re);
        return kvb_usage_error("base: %s", msg);
    }
    if (kvb_cmp_load_runs(&nw, side[1], co.run_medians, msg, sizeof msg) != KVB_STATUS_OK) {
        kvb_cmp_free(&b);
        if (filter) regfree(&re);
        return kvb_usage_error("new: %s", msg);
    }
    /* what the sides' machines allow: absolute times need the same machine, ratios and
     * ceilings the same CPU model (its kernels and caches set them); bytes anywhere;
     * seeded errors the same kernels (below, case by case) */
    /* "cpu @ host": the host after the last " @ " (CPU names hold " @ 2.20GHz") */
    const char *bat = NULL, *nat = NULL;
    for (const char *q = b.machine; (q = strstr(q, " @ ")); q++) bat = q;
    for (const char *q = nw.machine; (q = strstr(q, " @ ")); q++) nat = q;
    size_t bl = bat ? (size_t)(bat - b.machine) : strlen(b.machine),
           nl = nat ? (size_t)(nat - nw.machine) : strlen(nw.machine);
    int same_cpu = bl && bl == nl && strncmp(b.machine, nw.machine, bl) == 0;
    int same_machine = same_cpu && !strcmp(b.machine, nw.machine);
    unsigned asked = mask;
    if (!any_machine && !same_machine) mask &= ~(1u << KVB_CMP_TIME);
    if (!any_machine && !same_cpu) mask &= ~((1u << KVB_CMP_RATIO) | (1u << KVB_CMP_CEILING));
    /* a stale baseline's timings came from the kernels before a change: only what the
     * kernels cannot move by speed (bytes, seeded errors) still gates against it */
    if (b.stale[0]) {
        mask &= (1u << KVB_CMP_EXACT) | (1u << KVB_CMP_TOL);
        printf("base is stale: %s\nso only bytes and seeded errors gate against it\n", b.stale);
    }
    o.gate = mask;
    int rc = 0;
    /* a baseline must hold every point: one that did not finish narrows what is checked */
    if (b.unfinished) {
        rc = kvb_usage_error(
            "base: %d point(s) did not finish, the first %s: a baseline must hold every point "
            "(record it again)",
            b.unfinished, b.first_unfinished);
        goto done_early;
    }
    if (nw.unfinished)
        printf("new: %d point(s) did not finish, the first %s: their cases are missing\n",
               nw.unfinished, nw.first_unfinished);
    /* an attend point's rows are fixed by its command: NEW holding a row of a point
     * whose other rows BASE has means BASE's attend.csv lost lines (cut at a line
     * end, which its own reader cannot see) */
    for (int j = 0; j < nw.n; j++) {
        const char *name = nw.c[j].name, *colon = strstr(name, ":attend(");
        if (!colon || nw.c[j].kind != KVB_CMP_TIME) continue;
        int point = 0, row = 0;
        for (int i = 0; i < b.n && !row; i++) {
            point |= strncmp(b.c[i].name, name, (size_t)(colon - name + 1)) == 0;
            row = b.c[i].kind == KVB_CMP_TIME && strcmp(b.c[i].name, name) == 0;
        }
        if (point && !row) {
            rc = kvb_usage_error(
                "base lacks a row of an attend point it holds, '%s': a truncated or damaged "
                "attend.csv (record the baseline again)",
                name);
            goto done_early;
        }
    }
    const kvb_cmp_case **bc = calloc((size_t)b.n, sizeof *bc),
                       **nc = calloc((size_t)b.n, sizeof *nc);
    kvb_cmp_result *res = calloc((size_t)b.n, sizeof *res);
    int n = 0, only_base = 0, counts[KVB_VERDICT_COUNT] = {0};
    int tol_other_kernel = 0, tol_unknown = 0;
    char why_kernel[200] = "";
    for (int i = 0; bc && nc && res && i < b.n; i++) {
        if (filter && regexec(&re, b.c[i].name, 0, NULL, 0) != 0) continue;
        const kvb_cmp_case *m = NULL;
        for (int j = 0; j < nw.n && !m; j++)
            if (!strcmp(nw.c[j].name, b.c[i].name) && nw.c[j].kind == b.c[i].kind) m = &nw.c[j];
        /* a gated case that vanished (its point skipped, timed out, not run) is not a pass */
        if (!m || m->n == 0) {
            if (o.gate & (1u << b.c[i].kind)) {
                if (only_base++ < 20) printf("MISSING: %s\n", b.c[i].name);
            }
            continue;
        }
        /* errors on seeded inputs depend on the kernels that computed them (VNNI rounds the
         * query): gated where both sides name the same kernels, or, where a side does not
         * say, on the same CPU model */
        kvb_cmp_opts oc = o;
        if (b.c[i].kind == KVB_CMP_TOL && (o.gate & (1u << KVB_CMP_TOL)) && !any_machine) {
            int known = b.c[i].kernel[0] && m->kernel[0];
            int same = known ? strcmp(b.c[i].kernel, "mixed") && !strcmp(b.c[i].kernel, m->kernel)
                             : same_cpu;
            if (!same) {
                oc.gate &= ~(1u << KVB_CMP_TOL);
                if (known) {
                    if (!tol_other_kernel++)
                        snprintf(why_kernel, sizeof why_kernel, "base %s, new %s", b.c[i].kernel,
                                 m->kernel);
                } else
                    tol_unknown++;
            }
        }
        bc[n] = &b.c[i];
        nc[n] = m;
        double floor = b.c[i].kind == KVB_CMP_TOL ? kvb_cmp_tol_floor(b.c[i].name) : 0;
        /* paired only where both sides hold one sample per run of equally many runs */
        res[n] = co.paired && b.c[i].n == m->n
                     ? kvb_cmp_judge_paired(b.c[i].kind, floor, b.c[i].v, m->v, m->n, &oc)
                     : kvb_cmp_judge_floor(b.c[i].kind, floor, b.c[i].v, b.c[i].n, m->v, m->n,
                                           &oc);
        counts[res[n].verdict]++;
        n++;
    }
    /* a ratio that rose only because the contiguous case it divides by got faster is
     * no regression of its own: its time, judged beside it, says so */
    int ratio_explained = 0;
    for (int i = 0; i < n; i++)
        if (res[i].verdict == KVB_VERDICT_REGRESSED &&
            kvb_cmp_ratio_explained(bc[i], (const kvb_cmp_case *const *)bc, res, n)) {
            res[i].verdict = KVB_VERDICT_INFO;
            counts[KVB_VERDICT_REGRESSED]--;
            counts[KVB_VERDICT_INFO]++;
            ratio_explained++;
        }
    if (n == 0) {
        fprintf(stderr,
                "kvbench: no common cases between '%s' and '%s' (different sweeps or shapes?)\n",
                side[0], side[1]);
        rc = KVB_EXIT_USAGE;
        goto done;
    }
    /* the gate actually applied, always: a CI log must show when a kind was dropped */
    printf("gated kinds:");
    for (int k = 0; k < KVB_CMP_KIND_COUNT; k++)
        if (o.gate & (1u << k)) printf(" %s", cmp_kind_names[k]);
    printf("%s; alpha %g, minimum change %.0f%%, tolerance %.0f%% above the storage type's "
           "round-off floor\n",
           asked == mask ? ""
           : b.stale[0]  ? " (times, ratios, ceilings not: a stale baseline)"
           : same_cpu    ? " (times not: another host)"
                         : " (times, ratios, ceilings not: another CPU)",
           o.alpha, 100 * o.min_change, 100 * o.tolerance);
    if (tol_other_kernel)
        printf("tolerance: %d case(s) not gated: computed by other kernels (%s)\n",
               tol_other_kernel, why_kernel);
    if (ratio_explained)
        printf("ratio: %d case(s) not gated: the contiguous time they divide by improved and "
               "their own time did not regress\n",
               ratio_explained);
    if (tol_unknown)
        printf("tolerance: %d case(s) not gated: another CPU model, and a side does not record its "
               "kernels\n",
               tol_unknown);
    if (!quiet) {
        printf("base: %s (%s)\nnew:  %s (%s)\n\n", side[0], b.machine, side[1], nw.machine);
        printf("%-96s %-10s %12s %12s %8s %8s  %s\n", "case", "kind", "base", "new", "change", "p",
               "verdict");
        for (int i = 0; i < n; i++) {
            char p[16] = "-";
            if (!isnan(res[i].p)) snprintf(p, sizeof p, "%.3g", res[i].p);
            printf("%-96s %-10s %12.5g %12.5g %+7.1f%% %8s  %s\n", bc[i]->name,
                   cmp_kind_names[bc[i]->kind], res[i].base, res[i].new_, 100 * res[i].change, p,
                   kvb_verdict_name(res[i].verdict));
        }
        printf("\n");
    }
    for (int i = 0; i < n; i++)
        if (res[i].verdict == KVB_VERDICT_REGRESSED)
            fprintf(stdout, "REGRESSED: %s %+.1f%% (p %.3g)\n", bc[i]->name, 100 * res[i].change,
                    res[i].p);
    printf("compare: %d cases: %d regressed, %d improved, %d same, %d too few samples, %d changed "
           "but not gated",
           n, counts[KVB_VERDICT_REGRESSED], counts[KVB_VERDICT_IMPROVED], counts[KVB_VERDICT_SAME],
           counts[KVB_VERDICT_TOO_FEW], counts[KVB_VERDICT_INFO]);
    if (only_base)
        printf("; %d gated base cases missing from new%s", only_base,
               allow_missing ? " (allowed)" : "");
    printf("\n");
    for (int json = 0; json < 2; json++) {
        const char *path = json ? js : md;
        if (path && (rc = write_compare(path, json, &b, &nw, bc, nc, res, n, &o, counts,
                                        only_base)) != 0)
            goto done;
    }
    rc = counts[KVB_VERDICT_REGRESSED] || (only_base && !allow_missing) ? 1 : 0;
done:
    free(bc);
    free(nc);
    free(res);
done_early:
    kvb_cmp_free(&b);
    kvb_cmp_free(&nw);
    if (filter) regfree(&re);
    return rc;
}
