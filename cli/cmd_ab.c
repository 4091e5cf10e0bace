/* cmd_ab.c: kvbench ab BASE_REV [NEW_REV], one commit against another in one
 * run: both binaries (built from git, cached by commit, or this one for the
 * working tree) run the sweep's points in turn (harness/sweep_ab.c), then
 * this binary's compare judges side b against side a, times too, since both
 * ran on this machine minutes apart. DIR is DIR.partial until judged. */
#define _GNU_SOURCE /* strsignal */
#include "cli.h"
#include "../analysis/compare.h"
#include "../base/afile.h"
#include "../harness/results.h"
#include "../harness/sweep.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct ab_opts {
    kvb_sweep sw;
    const char *rev[2];
    int nrev;
    const char *def, *out, *gate, *cache, *exe[2];
    int rounds, confirm, jobs, quiet;
    double alpha, min_change;
} ab_opts;

static int ab_rev(void *opts, const char *arg)
{
    ab_opts *o = opts;
    if (o->nrev == 2)
        return kvb_usage_error("ab takes BASE_REV and NEW_REV, got a third: '%s'", arg);
    o->rev[o->nrev++] = arg;
    return 0;
}

static int ab_set(void *opts, const char *kv)
{
    ab_opts *o = opts;
    char msg[2048];
    if (kvb_sweep_set(&o->sw, kv, msg, sizeof msg) != KVB_STATUS_OK)
        return kvb_usage_error("%s", msg);
    return 0;
}

#define A      KVB_CMD_AB
#define OFF(f) offsetof(ab_opts, f)
/* clang-format off */
static const kvb_flag ab_flags[] = {
    {.name = "--sweep", .cmds = A, .kind = KVB_FLAG_STRING, .def = "ab", .meta = "NAME|FILE",
     .help = "the points both sides run (bench/sweeps/NAME.sweep or a file)", .off = OFF(def)},
    {.name = "--set", .cmds = A, .kind = KVB_FLAG_CALL, .meta = "KEY=VALUE",
     .help = "one value of the definition, as for sweep", .call = ab_set},
    {.name = "--rounds", .cmds = A, .kind = KVB_FLAG_INT, .lo = 1, .hi = 64, .def = "10",
     .meta = "R", .help = "times each side runs every point (a pair per round)",
     .off = OFF(rounds)},
    {.name = "--confirm", .cmds = A, .kind = KVB_FLAG_INT, .lo = 0, .hi = 64, .def = "16",
     .meta = "R", .help = "rounds of each point that holds a regressed time or ratio, run "
     "again: a case fails only if they move it too and all rounds pooled regress (0: no rerun)",
     .off = OFF(confirm)},
    {.name = "--out", .cmds = A, .kind = KVB_FLAG_TEXT, .meta = "DIR",
     .def_help = "results/<UTC>-ab-<base>-<new>", .help = "where both sides' rounds and the "
     "comparison go; must not exist", .off = OFF(out)},
    {.name = "--gate", .cmds = A, .kind = KVB_FLAG_TEXT, .def = "all", .meta = "all|KINDS",
     .help = "the kinds that can regress (compare's): time,ratio,ceiling,exact,tolerance",
     .off = OFF(gate)},
    {.name = "--alpha", .cmds = A, .kind = KVB_FLAG_DOUBLE, .dlo = 1e-6, .dhi = 0.5,
     .def = "0.01", .meta = "A", .help = "significance level of the paired test",
     .off = OFF(alpha)},
    {.name = "--min-change", .cmds = A, .kind = KVB_FLAG_DOUBLE, .dlo = 0, .dhi = 10,
     .def = "0.03", .meta = "F",
     .help = "smallest change of the median pair's ratio that can regress",
     .off = OFF(min_change)},
    {.name = "--base-exe", .cmds = A, .kind = KVB_FLAG_STRING, .meta = "PATH",
     .help = "side a is this kvbench binary instead of a built BASE_REV", .off = OFF(exe[0])},
    {.name = "--new-exe", .cmds = A, .kind = KVB_FLAG_STRING, .meta = "PATH",
     .help = "side b is this kvbench binary instead of NEW_REV or this one", .off = OFF(exe[1])},
    {.name = "--cache", .cmds = A, .kind = KVB_FLAG_STRING, .def = "build-ab", .meta = "DIR",
     .help = "built revisions, one DIR/<commit>/kvbench each, relative to the checkout's top",
     .off = OFF(cache)},
    {.name = "--jobs", .cmds = A, .kind = KVB_FLAG_INT, .lo = 1, .hi = 1024, .meta = "N",
     .def_help = "online cores", .help = "make -jN for a revision's build", .off = OFF(jobs)},
    {.name = "--quiet", .cmds = A, .kind = KVB_FLAG_SWITCH,
     .help = "no progress lines; compare prints the gate and regressions only",
     .off = OFF(quiet)},
    {.name = NULL},
};
/* clang-format on */
#undef OFF
#undef A

const kvb_cmd_spec kvb_ab_spec = {
    .usage = "BASE_REV [NEW_REV] [--sweep NAME] [--rounds R] [--out DIR] [flags]\n"
             "       kvbench ab --base-exe PATH [--new-exe PATH] [flags]",
    .intro = "One commit against another on this machine, in one run. Side a is BASE_REV, side b\n"
             "NEW_REV, or without it this binary (the working tree as built). A revision is built\n"
             "from a detached git worktree into --cache/<commit>/ (kept: the next ab reuses it).\n"
             "Then R rounds: every point of the sweep (default bench/sweeps/ab.sweep: attend\n"
             "tables at 512 MiB of K/V and short decodes, about 13 s a round and side) runs with\n"
             "one binary, then with the other, the side that goes first alternating point by\n"
             "point and round by round, so the machine's slow moments fall on both. Each side's\n"
             "rounds are DIR/a/runs/<r>/ and DIR/b/runs/<r>/. compare --paired judges b\n"
             "against a, absolute times included: each round gives each case its median, rounds\n"
             "r of a "
             "and b are a pair, and a case regresses when the Wilcoxon signed-rank test on the\n"
             "pairs' ratios gives p < --alpha and the median pair's ratio moved the wrong way by\n"
             "--min-change (6 rounds are the fewest that can reach p < 0.05, 8 for 0.01).\n"
             "A time, ratio or ceiling can move that far with nothing changed (a process's\n"
             "memory, a neighbour): each point holding such a regression runs --confirm more\n"
             "rounds into DIR/confirm/, and the case fails only if the rerun moved it the\n"
             "wrong way by --min-change too and all rounds pooled (DIR/pooled/) are judged\n"
             "regressed (DIR/confirm.txt). Bytes and seeded errors fail at once.\n"
             "DIR/ab.csv lists every run (round, point, side, order, status, seconds);\n"
             "DIR/compare.md and compare.json the verdicts. DIR is DIR.partial until judged.",
    .epilogue = "exit status: 0 nothing regressed; 1 something did, a point failed on a side, or\n"
                "a build failed (its log named); 2 refused before anything ran: an unknown\n"
                "revision, no git checkout, a bad flag or sweep value, an existing DIR.",
    .flags = ab_flags,
    .positional = ab_rev,
};

/* "kvbench ab ..." and what the two sides are, for DIR/ab.txt */
static int write_about(const char *dir, const char *const label[2], const char *const exe[2],
                       const ab_opts *o, char *msg, size_t msg_len)
{
    char path[1400], version[256];
    snprintf(path, sizeof path, "%s/ab.txt", dir);
    kvb_afile a;
    if (kvb_afile_open(&a, path, msg, msg_len) != 0) return -1;
    kvb_version(version, sizeof version);
    fprintf(a.f, "a: %s\n   binary %s\nb: %s\n   binary %s\n", label[0], exe[0], label[1], exe[1]);
    fprintf(a.f,
            "sweep: %s, %d rounds (%d more of a point to confirm a regression); judged by %s\n"
            "gate: %s, alpha %g, min change %g\n",
            o->sw.name, o->rounds, o->confirm, version, o->gate, o->alpha, o->min_change);
    return kvb_afile_commit(&a, msg, msg_len);
}

/* "+3.9% (p 0.00195)" */
static void change_text(const kvb_ab_case *c, char *out, size_t n)
{
    if (isnan(c->p))
        snprintf(out, n, "%+.1f%%", 100 * c->change);
    else
        snprintf(out, n, "%+.1f%% (p %.3g)", 100 * c->change, c->p);
}

/* dir/pooled/<side>/runs/: a link to each of the first rounds (1-<r>) and of the
 * rerun's (2-<r>) for sides a and b, the same names on both, so compare --paired
 * pairs them as they ran. 0, or -1 with msg. */
static int pool_rounds(const char *dir, char *msg, size_t msg_len)
{
    static const char *const stage[2] = {"", "confirm/"};
    char p[1600];
    snprintf(p, sizeof p, "%s/pooled", dir);
    if (mkdir(p, 0755) != 0) goto fail;
    for (int k = 0; k < 2; k++) {
        const char *side = k ? "b" : "a";
        snprintf(p, sizeof p, "%s/pooled/%s", dir, side);
        if (mkdir(p, 0755) != 0) goto fail;
        snprintf(p, sizeof p, "%s/pooled/%s/runs", dir, side);
        if (mkdir(p, 0755) != 0) goto fail;
        for (int g = 0; g < 2; g++) {
            snprintf(p, sizeof p, "%s/%s%s/runs", dir, stage[g], side);
            DIR *d = opendir(p);
            if (!d) goto fail;
            for (struct dirent *e; (e = readdir(d)) != NULL;) {
                char to[1200], at[1600];
                if (e->d_name[0] == '.') continue;
                snprintf(to, sizeof to, "../../../%s%s/runs/%s", stage[g], side, e->d_name);
                snprintf(at, sizeof at, "%s/pooled/%s/runs/%d-%s", dir, side, g + 1, e->d_name);
                if (symlink(to, at) != 0) {
                    snprintf(p, sizeof p, "%s", at);
                    closedir(d);
                    goto fail;
                }
            }
            closedir(d);
        }
    }
    return 0;
fail:
    snprintf(msg, msg_len, "cannot create '%s': %s", p, strerror(errno));
    return -1;
}

/* The case named name among c[0..n), or NULL */
static const kvb_ab_case *find_case(const kvb_ab_case *c, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(c[i].name, name)) return &c[i];
    return NULL;
}

/* The first rounds flagged a case (compare exited 1): each point holding a regressed
 * time, ratio or ceiling runs o->confirm more rounds into dir/confirm/. A case fails
 * where the rerun alone moved it the wrong way by --min-change too AND all rounds
 * pooled (dir/pooled/: first and rerun, paired as they ran) are judged regressed. The
 * rerun's own significance is not asked: 2026-12-04 a real 5% slowdown, all 10 first
 * pairs slower, read +5.1% at p 0.044 in 16 rerun rounds a noisy stretch had scattered,
 * and was cleared. With nothing changed a shared VM flags one run in ten to thirty
 * (docs/regression.md); the pooled median needs more than half of the pairs past
 * --min-change, so the rerun, holding more pairs than the first rounds, must agree. Bytes
 * and seeded errors are deterministic, as is a case missing from a side: no rerun could
 * clear them. Returns the exit status; *signo a signal that stopped the rerun. */
static int confirm(const ab_opts *o, const char *const exe[2], const char *me, const char *dir,
                   int *signo)
{
    char msg[2048], cdir[1400];
    kvb_ab_case *first = NULL, *again = NULL, *all = NULL;
    kvb_sweep_point *pts = NULL;
    const char **only = NULL;
    int missing, rc = KVB_EXIT_FAIL, fixed = 0;
    int n = kvb_ab_cases(dir, 1, &first, &missing, msg, sizeof msg);
    if (n < 0) fprintf(stderr, "kvbench: ab: %s\n", msg);
    if (n <= 0) goto done;
    for (int i = 0; i < n; i++)
        fixed += !strcmp(first[i].kind, "exact") || !strcmp(first[i].kind, "tolerance");
    if (fixed || missing) {
        printf("ab: not rerun: %d byte or seeded-error case(s) regressed and %d gated case(s) "
               "are missing from b, which a rerun cannot change\n",
               fixed, missing);
        goto done;
    }
    int np = kvb_sweep_expand(&o->sw, dir, &pts, msg, sizeof msg), nonly = 0;
    only = np > 0 ? calloc((size_t)np + 1, sizeof *only) : NULL;
    for (int i = 0; only && i < np; i++) {
        int held = 0;
        for (int j = 0; j < n && !held; j++) held = kvb_ab_case_of(first[j].name, pts[i].id);
        if (held) only[nonly++] = pts[i].id;
    }
    if (!nonly) {
        fprintf(stderr, "kvbench: ab: no point of the sweep holds the regressed cases\n");
        goto done;
    }
    printf("ab: %d case(s) regressed in %d rounds; %d point(s) run %d rounds more to confirm\n",
           n, o->rounds, nonly, o->confirm);
    fflush(stdout);
    snprintf(cdir, sizeof cdir, "%s/confirm", dir);
    kvb_ab_tally t;
    if (mkdir(cdir, 0755) != 0) {
        fprintf(stderr, "kvbench: cannot create '%s': %s\n", cdir, strerror(errno));
        goto done;
    }
    if (kvb_ab_run(&o->sw, exe, cdir, o->confirm, only, o->quiet, &t, msg, sizeof msg) !=
        KVB_STATUS_OK) {
        fprintf(stderr, "kvbench: ab: %s\n", msg);
        goto done;
    }
    if ((*signo = t.signo) != 0) goto done;
    if (t.failed) {
        fprintf(stderr, "kvbench: ab: %d of %d runs of the rerun failed, the first %s\n",
                t.failed, t.runs, t.first_failed);
        goto done;
    }
    int code = kvb_ab_judge(me, cdir, o->gate, o->alpha, o->min_change, 1);
    int m = code == 0 || code == 1 ? kvb_ab_cases(cdir, 0, &again, &missing, msg, sizeof msg) : -1;
    if (m < 0) {
        fprintf(stderr, "kvbench: ab: the rerun could not be judged (exit %d)\n", code);
        goto done;
    }
    char pdir[1400];
    snprintf(pdir, sizeof pdir, "%s/pooled", dir);
    if (pool_rounds(dir, msg, sizeof msg) != 0) {
        fprintf(stderr, "kvbench: ab: %s\n", msg);
        goto done;
    }
    code = kvb_ab_judge(me, pdir, o->gate, o->alpha, o->min_change, 1);
    int np2 = code == 0 || code == 1 ? kvb_ab_cases(pdir, 0, &all, &missing, msg, sizeof msg) : -1;
    if (np2 < 0) {
        fprintf(stderr, "kvbench: ab: the pooled rounds could not be judged (exit %d)\n", code);
        goto done;
    }
    kvb_afile a;
    char path[1500];
    snprintf(path, sizeof path, "%s/confirm.txt", dir);
    if (kvb_afile_open(&a, path, msg, sizeof msg) != 0) {
        fprintf(stderr, "kvbench: %s\n", msg);
        goto done;
    }
    int confirmed = 0;
    for (int i = 0; i < n; i++) {
        const kvb_ab_case *r = find_case(again, m, first[i].name),
                          *pl = find_case(all, np2, first[i].name);
        /* a case the rerun did not measure cannot be cleared by it */
        int yes = !r || !pl ||
                  (r->change >= o->min_change &&
                   !strcmp(pl->verdict, kvb_verdict_name(KVB_VERDICT_REGRESSED)));
        char c1[64], c2[64] = "not measured", c3[64] = "not judged";
        change_text(&first[i], c1, sizeof c1);
        if (r) change_text(r, c2, sizeof c2);
        if (pl) change_text(pl, c3, sizeof c3);
        confirmed += yes;
        for (int k = 0; k < 2; k++)
            fprintf(k ? a.f : stdout, "%s: %s %s in %d rounds, %s in %d more, %s in all\n",
                    yes ? "REGRESSED (confirmed)" : "not confirmed", first[i].name, c1, o->rounds,
                    c2, o->confirm, c3);
    }
    for (int k = 0; k < 2; k++)
        fprintf(k ? a.f : stdout, "ab: %d of %d regressed case(s) confirmed by the rerun%s\n",
                confirmed, n, confirmed ? "" : ": nothing regressed");
    rc = kvb_afile_commit(&a, msg, sizeof msg) != 0 ? KVB_EXIT_FAIL : confirmed ? 1 : 0;
    if (rc == KVB_EXIT_FAIL) fprintf(stderr, "kvbench: %s\n", msg);
done:
    free(first);
    free(again);
    free(all);
    free(only);
    free(pts);
    return rc;
}

int kvb_cmd_ab(const kvb_cli *cli, const kvb_command *self, int argc, char **argv)
{
    ab_opts o;
    memset(&o, 0, sizeof o);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    o.jobs = cores > 0 ? (int)cores : 1;
    int r = kvb_flags_parse(cli, self, argc, argv, &o);
    if (r) return r < 0 ? 0 : r;
    unsigned mask;
    if (kvb_gate_parse(o.gate, &mask)) return KVB_EXIT_USAGE;
    /* side a: BASE_REV or --base-exe; side b: NEW_REV, --new-exe, or this binary */
    if (!o.exe[0] && o.nrev == 0)
        return kvb_usage_error("ab needs BASE_REV (a commit: HEAD~1, a hash, a branch) or "
                               "--base-exe PATH");
    if (o.exe[0] && o.nrev == 2)
        return kvb_usage_error("--base-exe replaces BASE_REV: give NEW_REV alone, or --new-exe");
    const char *rev[2] = {o.exe[0] ? NULL : o.rev[0],
                          o.exe[0] ? (o.nrev ? o.rev[0] : NULL) : (o.nrev == 2 ? o.rev[1] : NULL)};
    if (rev[1] && o.exe[1])
        return kvb_usage_error("--new-exe replaces NEW_REV '%s': give one of them", rev[1]);
    char msg[2048], exe[2][1400], label[2][300], repo[1200] = "", sha[2][64] = {"", ""};
    for (int k = 0; k < 2; k++)
        if (o.exe[k]) {
            if (access(o.exe[k], X_OK) != 0 || !realpath(o.exe[k], exe[k]))
                return kvb_usage_error("%s '%s': not an executable file (%s)",
                                       k ? "--new-exe" : "--base-exe", o.exe[k], strerror(errno));
            snprintf(label[k], sizeof label[k], "the binary %s", o.exe[k]);
        }
    if (rev[0] || rev[1]) {
        if (kvb_ab_repo(repo, sizeof repo, msg, sizeof msg) != KVB_STATUS_OK)
            return kvb_usage_error("%s", msg);
        for (int k = 0; k < 2; k++)
            if (rev[k]) {
                if (kvb_ab_resolve(repo, rev[k], sha[k], sizeof sha[k], msg, sizeof msg) !=
                    KVB_STATUS_OK)
                    return kvb_usage_error("%s", msg);
                snprintf(label[k], sizeof label[k], "%s = commit %s", rev[k], sha[k]);
            }
    }
    char me[1200], version[256];
    kvb_self_path(cli->argv0, me, sizeof me);
    if (!o.exe[1] && !rev[1]) {
        snprintf(exe[1], sizeof exe[1], "%s", me);
        kvb_version(version, sizeof version);
        snprintf(label[1], sizeof label[1], "this binary, %s", version);
    }
    /* the definition and every point's values, checked before anything is built or run */
    int dr = kvb_sweep_named(o.def, &o.sw);
    if (dr) return dr;
    kvb_sweep_point *pts;
    int n = kvb_sweep_expand(&o.sw, "ab", &pts, msg, sizeof msg);
    if (n < 0) return kvb_usage_error("%s", msg);
    free(pts);
    if (n == 0) return kvb_usage_error("sweep '%s' has no points", o.sw.name);
    char dir[1200], partial[1300];
    if (o.out) {
        snprintf(dir, sizeof dir, "%s", o.out);
        size_t len = strlen(dir);
        while (len > 1 && dir[len - 1] == '/') dir[--len] = 0;
        if (!dir[0] || strlen(o.out) > 1000)
            return kvb_usage_error("--out '%s': expected a new directory's name", o.out);
    } else {
        time_t t = time(NULL);
        char stamp[32];
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", gmtime(&t));
        snprintf(dir, sizeof dir, "results/%s-ab-%.10s-%.10s", stamp, sha[0][0] ? sha[0] : "exe",
                 sha[1][0]  ? sha[1]
                 : o.exe[1] ? "exe"
                            : "tree");
    }
    kvb_partial_name(dir, partial, sizeof partial);
    struct stat st;
    if (lstat(dir, &st) == 0 || lstat(partial, &st) == 0)
        return kvb_usage_error("'%s' (or its .partial) exists: choose another --out", dir);
    /* the revisions' binaries (cached by commit) */
    char cache[2400];
    snprintf(cache, sizeof cache, "%s%s%s", o.cache[0] == '/' ? "" : repo,
             o.cache[0] == '/' ? "" : "/", o.cache);
    for (int k = 0; k < 2; k++)
        if (rev[k] && kvb_ab_build(repo, sha[k], cache, o.jobs, o.quiet, exe[k], sizeof exe[k], msg,
                                   sizeof msg) != KVB_STATUS_OK) {
            fprintf(stderr, "kvbench: ab: %s\n", msg);
            return KVB_EXIT_FAIL;
        }
    if (mkdir(partial, 0755) != 0) {
        fprintf(stderr, "kvbench: cannot create '%s': %s\n", partial, strerror(errno));
        return KVB_EXIT_FAIL;
    }
    const char *const labels[2] = {label[0], label[1]}, *const exes[2] = {exe[0], exe[1]};
    if (write_about(partial, labels, exes, &o, msg, sizeof msg) != 0) {
        fprintf(stderr, "kvbench: %s\n", msg);
        return KVB_EXIT_FAIL;
    }
    if (!o.quiet)
        fprintf(stderr,
                "kvbench: ab: a = %s\nkvbench: ab: b = %s\nkvbench: ab: %d points x %d "
                "rounds x 2 sides into %s\n",
                label[0], label[1], n, o.rounds, partial);
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, &old);
    kvb_ab_tally t;
    kvb_status rs =
        kvb_ab_run(&o.sw, exes, partial, o.rounds, NULL, o.quiet, &t, msg, sizeof msg);
    /* compare b against a: this binary's judgement, whatever the sides' versions */
    int code = rs == KVB_STATUS_OK && !t.signo
                   ? kvb_ab_judge(me, partial, o.gate, o.alpha, o.min_change, o.quiet)
                   : -1;
    int judged = code == 0 || code == 1, rc = judged ? code : KVB_EXIT_FAIL;
    if (code == 1 && o.confirm && !t.failed) rc = confirm(&o, exes, me, partial, &t.signo);
    if (t.signo) {
        fprintf(stderr, "\nkvbench: ab interrupted (%s): what ran is kept in %s\n",
                strsignal(t.signo), partial);
        signal(t.signo, SIG_DFL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        raise(t.signo);
        return 128 + t.signo;
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (rs != KVB_STATUS_OK) {
        fprintf(stderr, "kvbench: ab: %s (what ran is kept in %s)\n", msg, partial);
        return KVB_EXIT_FAIL;
    }
    if (!judged)
        fprintf(stderr, "kvbench: ab: compare could not judge the sides (exit %d); kept in %s\n",
                code, partial);
    else if (kvb_partial_publish(partial, dir, msg, sizeof msg) != 0) {
        fprintf(stderr, "kvbench: %s\n", msg);
        rc = KVB_EXIT_FAIL;
    } else
        printf("results: %s\n", dir);
    if (t.failed) {
        fprintf(stderr, "kvbench: ab: %d of %d runs failed, the first %s (its log under %s)\n",
                t.failed, t.runs, t.first_failed, judged ? dir : partial);
        rc = KVB_EXIT_FAIL;
    }
    return rc;
}
