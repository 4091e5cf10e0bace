/* cmd_history.c: kvbench history add|show|check, a results history per
 * machine and commit (analysis/history.h): add files a result, show prints
 * (and charts) cases across commits, check judges the newest commit against
 * the ones before it, as compare judges BASE and NEW. */
#define _XOPEN_SOURCE 700
#include "cli.h"
#include "../analysis/history.h"
#include "../base/probe.h"
#include "../base/stats.h"

#include <math.h>
#include <regex.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[KVB_CMP_KIND_COUNT] = {"time", "ratio", "ceiling", "exact",
                                                           "tolerance"};

typedef struct history_opts {
    const char *action, *arg[KVB_MAX_LIST];
    int n_arg;
    const char *root, *commit, *machine, *out, *gate;
    int last;
    double alpha, min_change, tolerance;
} history_opts;

static int history_arg(void *opts, const char *arg)
{
    history_opts *o = opts;
    if (!o->action)
        o->action = arg;
    else if (o->n_arg == KVB_MAX_LIST)
        return kvb_usage_error("history takes at most %d arguments after the action", KVB_MAX_LIST);
    else
        o->arg[o->n_arg++] = arg;
    return 0;
}

#define H      KVB_CMD_HISTORY
#define OFF(f) offsetof(history_opts, f)
/* clang-format off */
static const kvb_flag history_flags[] = {
    {.name = "--history", .cmds = H, .kind = KVB_FLAG_STRING, .def = "results/history",
     .meta = "ROOT", .help = "the history's folder", .off = OFF(root)},
    {.name = "--commit", .cmds = H, .kind = KVB_FLAG_STRING, .meta = "REV",
     .help = "add: the commit, where the result records none (or a dirty build)",
     .off = OFF(commit)},
    {.name = "--machine", .cmds = H, .kind = KVB_FLAG_STRING, .meta = "KEY",
     .def_help = "this machine's, kvbench info --cpu-key",
     .help = "show, check: the machine key whose history to read", .off = OFF(machine)},
    {.name = "--out", .cmds = H, .kind = KVB_FLAG_STRING, .meta = "DIR",
     .help = "show: also write DIR/history.md (tables and chart), history.dat, history.gp "
             "and the chart history.png",
     .off = OFF(out)},
    {.name = "--last", .cmds = H, .kind = KVB_FLAG_INT, .lo = 1, .hi = 1000, .def = "5",
     .meta = "N", .help = "check: how many commits before the newest make the base",
     .off = OFF(last)},
    {.name = "--gate", .cmds = H, .kind = KVB_FLAG_TEXT, .def = "all", .meta = "all|KINDS",
     .help = "check: the kinds that can regress: time,ratio,ceiling,exact,tolerance",
     .off = OFF(gate)},
    {.name = "--alpha", .cmds = H, .kind = KVB_FLAG_DOUBLE, .dlo = 1e-6, .dhi = 0.5, .def = "0.05",
     .meta = "A", .help = "check: significance level of the Mann-Whitney U test",
     .off = OFF(alpha)},
    {.name = "--min-change", .cmds = H, .kind = KVB_FLAG_DOUBLE, .dlo = 0, .dhi = 10,
     .def = "0.10", .meta = "F", .help = "check: smallest change of a median that can regress",
     .off = OFF(min_change)},
    {.name = "--tolerance", .cmds = H, .kind = KVB_FLAG_DOUBLE, .dlo = 0, .dhi = 10,
     .def = "0.05", .meta = "F", .help = "check: growth of a seeded error that regresses",
     .off = OFF(tolerance)},
    {.name = NULL},
};
/* clang-format on */
#undef OFF
#undef H

const kvb_cmd_spec kvb_history_spec = {
    .usage = "add DIR [--commit REV] [--history ROOT]\n"
             "       kvbench history show REGEX... [--machine KEY] [--out DIR] [--history ROOT]\n"
             "       kvbench history check [REGEX...] [--last N] [--gate KINDS] [--machine KEY]",
    .intro = "A results history, one per machine key (the CPU model, as the baselines use):\n"
             "  add DIR     files a result directory (a run, a sweep, a pool of runs/<n>/) under\n"
             "              ROOT/<key>/<commit>/runs/<n>/: what compare reads, no plots; the\n"
             "              commit is the one its meta.json records (else --commit), the key\n"
             "              its CPU's; ROOT/<key>/index.csv orders the commits by their time\n"
             "              (git's), else by when they were filed.\n"
             "  show REGEX  each matching case per commit: samples, median, p10, p90 and the\n"
             "              change from the commit before; --out DIR charts them.\n"
             "  check       the newest commit's samples against those of the --last N commits\n"
             "              before it, pooled (at most 64 a case, the most recent kept), judged\n"
             "              as compare judges (Mann-Whitney U and --min-change; all kinds gate,\n"
             "              absolute times too: a history is one machine's). REGEX: only those.",
    .epilogue = "Exit status: 0 done (check: nothing regressed); 1 check: a case regressed, or a\n"
                "case of the commit before is missing from the newest, or a file could not be\n"
                "written; 2 bad usage or unusable input (check: fewer than 2 commits).",
    .flags = history_flags,
    .positional = history_arg,
};

/* the REGEX arguments compiled into re (n of them) */
static int compile(const history_opts *o, regex_t *re, int *n)
{
    for (*n = 0; *n < o->n_arg; (*n)++)
        if (regcomp(&re[*n], o->arg[*n], REG_EXTENDED | REG_NOSUB) != 0) {
            for (int i = 0; i < *n; i++) regfree(&re[i]);
            return kvb_usage_error("'%s' is not a valid extended regular expression", o->arg[*n]);
        }
    return 0;
}

static int matches(const regex_t *re, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (regexec(&re[i], name, 0, NULL, 0) == 0) return 1;
    return n == 0;
}

static void free_all(kvb_hist_commit *c, kvb_cmp_set *sets, int n)
{
    for (int i = 0; sets && i < n; i++) kvb_cmp_free(&sets[i]);
    free(sets);
    free(c);
}

/* the key's commits and each one's pooled results: 0 or an exit status */
static int load_all(const history_opts *o, char *key, size_t key_n, kvb_hist_commit **c, int *n,
                    kvb_cmp_set **sets)
{
    char msg[1200];
    if (o->machine)
        snprintf(key, key_n, "%s", o->machine);
    else
        kvb_cpu_key(key, key_n);
    *sets = NULL;
    if (kvb_hist_index(o->root, key, c, n, msg, sizeof msg) != KVB_STATUS_OK)
        return kvb_usage_error("%s%s", msg,
                               o->machine ? "" : " (this machine's key; --machine KEY names one)");
    *sets = calloc((size_t)*n + 1, sizeof **sets);
    for (int i = 0; *sets && i < *n; i++)
        if (kvb_hist_load(o->root, key, (*c)[i].commit, &(*sets)[i], msg, sizeof msg) !=
            KVB_STATUS_OK) {
            int rc = kvb_usage_error("commit %s of %s: %s", (*c)[i].commit, key, msg);
            free_all(*c, *sets, i);
            *sets = NULL;
            return rc;
        }
    return *sets ? 0 : kvb_usage_error("out of memory");
}

static int do_add(const history_opts *o)
{
    if (o->n_arg != 1)
        return kvb_usage_error("history add takes one result directory, got %d", o->n_arg);
    kvb_hist_added a;
    char msg[1200], s[16];
    kvb_status st = kvb_hist_add(o->root, o->arg[0], o->commit, &a, msg, sizeof msg);
    if (st == KVB_STATUS_IO || st == KVB_STATUS_NO_MEMORY) {
        fprintf(stderr, "kvbench: %s\n", msg);
        return KVB_EXIT_FAIL;
    }
    if (st != KVB_STATUS_OK) return kvb_usage_error("%s", msg);
    kvb_hist_short(a.commit.commit, s);
    if (a.key_here) printf("'%s' names no CPU: filed under this machine's key\n", o->arg[0]);
    printf("history: %s/%s/%s/runs/%d%s (commit %s%s%s)\n", o->root, a.key, a.commit.commit,
           a.first_run, a.runs > 1 ? " and on" : "", s, a.commit.subject[0] ? ": " : "",
           a.commit.subject);
    return 0;
}

/* a case seen in some commit: its name and kind */
typedef struct seen {
    const char *name;
    kvb_cmp_kind kind;
} seen;

/* the distinct cases of sets[0..n) that match, oldest commit's first */
static seen *cases_of(const kvb_cmp_set *sets, int n, const regex_t *re, int nre, int *count)
{
    int cap = 0;
    seen *cs = NULL;
    *count = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < sets[i].n; j++) {
            const kvb_cmp_case *c = &sets[i].c[j];
            int k = 0;
            while (k < *count && (cs[k].kind != c->kind || strcmp(cs[k].name, c->name))) k++;
            if (k < *count || !matches(re, nre, c->name)) continue;
            if (*count == cap) {
                seen *m = realloc(cs, (size_t)(cap = cap ? 2 * cap : 64) * sizeof *m);
                if (!m) return cs;
                cs = m;
            }
            cs[(*count)++] = (seen){c->name, c->kind};
        }
    return cs;
}

static int do_show(const history_opts *o)
{
    if (o->n_arg == 0) return kvb_usage_error("history show needs a REGEX naming the cases");
    regex_t re[KVB_MAX_LIST];
    int nre, n, nc = 0, rc;
    if ((rc = compile(o, re, &nre)) != 0) return rc;
    char key[128];
    kvb_hist_commit *c;
    kvb_cmp_set *sets;
    if ((rc = load_all(o, key, sizeof key, &c, &n, &sets)) != 0) goto done_re;
    seen *cs = cases_of(sets, n, re, nre, &nc);
    if (nc == 0) {
        rc =
            kvb_usage_error("no case of %s's history (%d commits) matches the REGEX given", key, n);
        goto done;
    }
    size_t cells = (size_t)nc * (size_t)n;
    double *med = malloc(cells * sizeof *med), *lo = malloc(cells * sizeof *lo),
           *hi = malloc(cells * sizeof *hi);
    const char **names = malloc((size_t)nc * sizeof *names);
    if (!med || !lo || !hi || !names) {
        rc = kvb_usage_error("out of memory");
        goto done_cells;
    }
    printf("history of %s in %s: %d commit(s)\n", key, o->root, n);
    for (int i = 0; i < nc; i++) {
        names[i] = cs[i].name;
        printf("\n%s (%s)\n  %-12s %-20s %4s %12s %12s %12s %8s\n", cs[i].name,
               kind_names[cs[i].kind], "commit", "commit time", "n", "median", "p10", "p90",
               "change");
        double prev = NAN;
        for (int j = 0; j < n; j++) {
            size_t k = (size_t)i * (size_t)n + (size_t)j;
            const kvb_cmp_case *x = kvb_hist_find(&sets[j], cs[i].name, cs[i].kind);
            med[k] = lo[k] = hi[k] = NAN;
            if (!x || !x->n) continue;
            med[k] = kvb_median(x->v, (size_t)x->n);
            lo[k] = kvb_quantile(x->v, (size_t)x->n, 0.1);
            hi[k] = kvb_quantile(x->v, (size_t)x->n, 0.9);
            char s[16], ch[16] = "";
            kvb_hist_short(c[j].commit, s);
            if (!isnan(prev) && prev != 0)
                snprintf(ch, sizeof ch, "%+.1f%%", 100 * (med[k] / prev - 1));
            printf("  %-12s %-20s %4d %12.5g %12.5g %12.5g %8s\n", s,
                   c[j].time[0] ? c[j].time : "-", x->n, med[k], lo[k], hi[k], ch);
            prev = med[k];
        }
    }
    if (o->out) {
        char msg[1200];
        int drawn;
        if (kvb_hist_plot(o->out, c, n, names, nc, med, lo, hi, &drawn, msg, sizeof msg) !=
            KVB_STATUS_OK) {
            fprintf(stderr, "kvbench: %s\n", msg);
            rc = KVB_EXIT_FAIL;
        } else if (kvb_hist_report(o->out, c, n, names, nc, med, lo, hi, drawn, msg,
                                   sizeof msg) != KVB_STATUS_OK) {
            fprintf(stderr, "kvbench: %s\n", msg);
            rc = KVB_EXIT_FAIL;
        } else
            printf("\nchart: %s/history.%s; report: %s/history.md\n", o->out,
                   drawn ? "png" : "gp (gnuplot is not installed: history.png not drawn)",
                   o->out);
    }
done_cells:
    free(med);
    free(lo);
    free(hi);
    free(names);
done:
    free(cs);
    free_all(c, sets, n);
done_re:
    for (int i = 0; i < nre; i++) regfree(&re[i]);
    return rc;
}

static int do_check(const history_opts *o)
{
    int kinds[KVB_MAX_LIST], nk, rc, nre, n;
    unsigned mask = 0;
    if (strcmp(o->gate, "all") == 0)
        mask = (1u << KVB_CMP_KIND_COUNT) - 1;
    else if ((rc = kvb_parse_enum_list("--gate", o->gate, kind_names, KVB_CMP_KIND_COUNT, kinds,
                                       &nk)) != 0)
        return rc;
    for (int i = 0; mask == 0 && i < nk; i++) mask |= 1u << kinds[i];
    regex_t re[KVB_MAX_LIST];
    if ((rc = compile(o, re, &nre)) != 0) return rc;
    char key[128];
    kvb_hist_commit *c;
    kvb_cmp_set *sets;
    if ((rc = load_all(o, key, sizeof key, &c, &n, &sets)) != 0) goto done_re;
    if (n < 2) {
        rc = kvb_usage_error("history check needs at least 2 commits of %s in %s, it holds %d "
                             "(kvbench history add files more)",
                             key, o->root, n);
        goto done;
    }
    int nb = o->last < n - 1 ? o->last : n - 1; /* the commits before the newest judged against */
    const kvb_cmp_set *nw = &sets[n - 1], *base = &sets[n - 1 - nb];
    kvb_cmp_opts co = {o->alpha, o->min_change, o->tolerance, mask};
    char s[16], s0[16], s1[16];
    kvb_hist_short(c[n - 1].commit, s);
    kvb_hist_short(c[n - 1 - nb].commit, s0);
    kvb_hist_short(c[n - 2].commit, s1);
    printf("history check of %s in %s: newest %s%s%s\nagainst the %d commit(s) before it, %s..%s, "
           "pooled (at most %d samples a case, the most recent kept)\ngated kinds:",
           key, o->root, s, c[n - 1].subject[0] ? ": " : "", c[n - 1].subject, nb, s0, s1,
           KVB_CMP_MAX_SAMPLES);
    for (int k = 0; k < KVB_CMP_KIND_COUNT; k++)
        if (mask & (1u << k)) printf(" %s", kind_names[k]);
    printf("; alpha %g, minimum change %.0f%%, tolerance %.0f%% above the round-off floor\n\n",
           co.alpha, 100 * co.min_change, 100 * co.tolerance);
    printf("%-96s %-10s %12s %12s %8s %8s %5s %5s  %s\n", "case", "kind", "base", "new", "change",
           "p", "n_b", "n_new", "verdict");
    int counts[KVB_VERDICT_COUNT] = {0}, judged = 0, fresh = 0, missing = 0;
    kvb_cmp_result *res = calloc((size_t)nw->n + 1, sizeof *res);
    if (!res) {
        rc = kvb_usage_error("out of memory");
        goto done;
    }
    for (int i = 0; i < nw->n; i++) {
        const kvb_cmp_case *x = &nw->c[i];
        double pool[KVB_CMP_MAX_SAMPLES];
        int commits, np = kvb_hist_pool(base, nb, x->name, x->kind, pool, &commits);
        res[i].verdict = KVB_VERDICT_COUNT; /* not judged */
        if (!matches(re, nre, x->name) || x->n == 0) continue;
        if (np == 0) {
            fresh++;
            continue;
        }
        res[i] =
            kvb_cmp_judge_floor(x->kind, x->kind == KVB_CMP_TOL ? kvb_cmp_tol_floor(x->name) : 0,
                                pool, np, x->v, x->n, &co);
        char p[16] = "-";
        if (!isnan(res[i].p)) snprintf(p, sizeof p, "%.3g", res[i].p);
        printf("%-96s %-10s %12.5g %12.5g %+7.1f%% %8s %5d %5d  %s\n", x->name, kind_names[x->kind],
               res[i].base, res[i].new_, 100 * res[i].change, p, np, x->n,
               kvb_verdict_name(res[i].verdict));
        counts[res[i].verdict]++;
        judged++;
    }
    printf("\n");
    /* a gated case the commit before had and the newest lacks is not a pass */
    const kvb_cmp_set *prev = &sets[n - 2];
    for (int i = 0; i < prev->n; i++)
        if ((mask & (1u << prev->c[i].kind)) && matches(re, nre, prev->c[i].name) &&
            !kvb_hist_find(nw, prev->c[i].name, prev->c[i].kind) && missing++ < 20)
            printf("MISSING: %s\n", prev->c[i].name);
    for (int i = 0; i < nw->n; i++)
        if (res[i].verdict == KVB_VERDICT_REGRESSED)
            printf("REGRESSED: %s %+.1f%% (p %.3g)\n", nw->c[i].name, 100 * res[i].change,
                   res[i].p);
    free(res);
    printf("history check: %d cases: %d regressed, %d improved, %d same, %d too few samples, %d "
           "changed but not gated; %d new (no earlier commit has them); %d missing from the "
           "newest\n",
           judged, counts[KVB_VERDICT_REGRESSED], counts[KVB_VERDICT_IMPROVED],
           counts[KVB_VERDICT_SAME], counts[KVB_VERDICT_TOO_FEW], counts[KVB_VERDICT_INFO], fresh,
           missing);
    if (judged == 0 && !missing)
        rc = kvb_usage_error("no case of the newest commit %s has an earlier commit's to judge "
                             "against",
                             s);
    else
        rc = counts[KVB_VERDICT_REGRESSED] || missing ? 1 : 0;
done:
    free_all(c, sets, n);
done_re:
    for (int i = 0; i < nre; i++) regfree(&re[i]);
    return rc;
}

int kvb_cmd_history(const kvb_cli *cli, const kvb_command *self, int argc, char **argv)
{
    history_opts o;
    memset(&o, 0, sizeof o);
    int r = kvb_flags_parse(cli, self, argc, argv, &o);
    if (r) return r < 0 ? 0 : r;
    if (!o.action) return kvb_usage_error("history needs an action: add, show or check");
    int add = !strcmp(o.action, "add"), show = !strcmp(o.action, "show"),
        check = !strcmp(o.action, "check");
    if (!add && !show && !check)
        return kvb_usage_error("unknown history action '%s': allowed are add, show, check",
                               o.action);
    /* a flag of another action is a mistake, not a no-op */
    if (o.commit && !add) return kvb_usage_error("--commit is for history add only");
    if ((o.machine || o.out) && add)
        return kvb_usage_error("%s is for history show and check: add takes the key from the "
                               "result",
                               o.machine ? "--machine" : "--out");
    if (o.out && !show) return kvb_usage_error("--out is for history show only");
    return add ? do_add(&o) : show ? do_show(&o) : do_check(&o);
}
