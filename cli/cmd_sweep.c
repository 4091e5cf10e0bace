/* cli_sweep.c: kvbench sweep, report and merge: a sweep's points run as child
 * processes into NAME.partial, renamed when every point is done; report and
 * merge read finished result directories. */
#define _GNU_SOURCE          /* strsignal */
#include "cli.h"
#include "../base/datadir.h"
#include "../analysis/report.h"
#include "../harness/sweep.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The kvbench binary itself, for the sweep's child processes. */
static void self_path(const char *argv0, char *buf, size_t n)
{
    ssize_t len = readlink("/proc/self/exe", buf, n - 1);
    if (len > 0) { buf[len] = 0; return; }
    if (!realpath(argv0, buf)) snprintf(buf, n, "%s", argv0);
}

/* s as one shell word: as it is when every character is safe (as Python's
 * shlex.quote), else in single quotes, each ' as '\'' */
static void shell_quote(const char *s, char *out, size_t n)
{
    size_t o = 0;
    if (n < 3) { if (n) out[0] = 0; return; }
    if (*s && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@%+=:,./_-") == strlen(s)) {
        snprintf(out, n, "%s", s);
        return;
    }
    out[o++] = '\'';
    for (; *s && o + 6 < n; s++) {
        if (*s == '\'') { memcpy(out + o, "'\\''", 4); o += 4; }
        else out[o++] = *s;
    }
    out[o++] = '\'';
    out[o] = 0;
}

/* SIGINT, SIGTERM and SIGHUP wait while the sweep works: kvb_sweep_run takes
 * them between points and while a child runs, stops and reaps the child and
 * drops its lock; then the sweep dies of the signal (die_of). One that came
 * while the report was written acts when the mask is restored. */
static void block_stop_signals(sigset_t *old)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, old);
}

static int die_of(int sig, const sigset_t *old)
{
    signal(sig, SIG_DFL);
    sigprocmask(SIG_SETMASK, old, NULL);
    raise(sig);
    return 128 + sig;                            /* not reached unless the signal is ignored */
}

int kvb_cmd_sweep(int argc, char **argv, const char *argv0)
{
    kvb_sweep sw;
    memset(&sw, 0, sizeof sw);
    const char *def = NULL, *out = NULL, *resume = NULL, *only = NULL;
    int emit = 0, quiet = 0;
    char msg[2048], file[1200], dir[1200], exe[1200], trimmed[1200];
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { kvb_print_help("sweep"); return 0; }
        if (strcmp(a, "--emit-jobs") == 0) { emit = 1; continue; }
        if (strcmp(a, "--quiet") == 0) { quiet = 1; continue; }
        if ((strcmp(a, "--set") == 0 || strcmp(a, "--out") == 0 || strcmp(a, "--resume") == 0 ||
             strcmp(a, "--only") == 0) && i + 1 >= argc)
            return kvb_usage_error("%s needs a value", a);
        if (strcmp(a, "--set") == 0) {
            if (!def) def = "";                      /* a sweep may come from --set alone */
            if (kvb_sweep_set(&sw, argv[++i], msg, sizeof msg) != KVB_STATUS_OK) return kvb_usage_error("%s", msg);
        } else if (strcmp(a, "--out") == 0) out = argv[++i];
        else if (strcmp(a, "--resume") == 0) resume = argv[++i];
        else if (strcmp(a, "--only") == 0) only = argv[++i];
        else if (a[0] == '-') return kvb_usage_error("unknown flag '%s' for sweep", a);
        else if (def && def[0]) return kvb_usage_error("sweep takes one definition, got '%s' and '%s'", def, a);
        else {
            if (sw.n) return kvb_usage_error("name the sweep '%s' before any --set", a);
            def = a;
        }
    }
    self_path(argv0, exe, sizeof exe);
    char partial[1300];
    if (resume) {
        if (def || out || emit) return kvb_usage_error("--resume DIR takes the definition and directory from DIR");
        snprintf(trimmed, sizeof trimmed, "%s", resume);
        size_t len = strlen(trimmed);
        while (len > 1 && trimmed[len - 1] == '/') trimmed[--len] = 0;
        resume = trimmed;
        if (len < 9 || strcmp(resume + len - 8, ".partial") != 0)
            return kvb_usage_error("--resume '%s': expected an unfinished sweep directory (NAME.partial)", resume);
        snprintf(file, sizeof file, "%s/sweep.def", resume);
        if (kvb_sweep_load(&sw, file, msg, sizeof msg) != KVB_STATUS_OK)
            return kvb_usage_error("--resume '%s': %s", resume, msg);
        /* the name it was started under: results/<stamp>-sweep-NAME.partial, or the directory's own */
        const char *nm = strstr(resume, "-sweep-"), *base = strrchr(resume, '/');
        nm = nm ? nm + 7 : base ? base + 1 : resume;
        snprintf(sw.name, sizeof sw.name, "%.*s", (int)(resume + len - 8 - nm), nm);
        snprintf(partial, sizeof partial, "%s", resume);
    } else {
        if (only) return kvb_usage_error("--only ID goes with --resume DIR (the commands --emit-jobs prints)");
        if (!def) return kvb_usage_error("sweep needs a definition: a name in bench/sweeps/ (smoke, default, "
                                     "long-context), a .sweep file, or --set section.key=value");
        if (def[0]) {
            kvb_sweep overrides = sw;
            memset(&sw, 0, sizeof sw);
            if (strchr(def, '/') || strstr(def, ".sweep")) snprintf(file, sizeof file, "%s", def);
            else {
                /* a named sweep: bench/sweeps/ beside the binary, installed, or here (datadir.h) */
                char rel[300], where[1200];
                snprintf(rel, sizeof rel, "bench/sweeps/%s.sweep", def);
                if (kvb_data_path(rel, where, sizeof where) != 0)
                    return kvb_usage_error("no sweep named '%s': cannot read sweep file '%s' (looked in "
                                           "$KVBENCH_DATA, beside the binary (%s), in an installed share/kvbench "
                                           "and the working directory)", def, rel, where);
                snprintf(file, sizeof file, "%s", where);
            }
            if (kvb_sweep_load(&sw, file, msg, sizeof msg) != KVB_STATUS_OK) return kvb_usage_error("%s", msg);
            for (int i = 0; i < overrides.n; i++) {
                char kv[400];
                snprintf(kv, sizeof kv, "%s=%s", overrides.key[i], overrides.val[i]);
                if (kvb_sweep_set(&sw, kv, msg, sizeof msg) != KVB_STATUS_OK) return kvb_usage_error("%s", msg);
            }
        } else
            snprintf(sw.name, sizeof sw.name, "custom");
        if (out) {
            snprintf(dir, sizeof dir, "%s", out);
            size_t len = strlen(dir);
            while (len > 1 && dir[len - 1] == '/') dir[--len] = 0;
            if (!dir[0] || strlen(out) > 1000) return kvb_usage_error("--out '%s': expected a new directory's name", out);
        } else {
            time_t t = time(NULL);
            char stamp[32];
            strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", gmtime(&t));
            snprintf(dir, sizeof dir, "results/%s-sweep-%s", stamp, sw.name);
        }
        snprintf(partial, sizeof partial, "%s.partial", dir);
    }
    /* every point's values checked before anything is measured or made */
    kvb_sweep_point *pts;
    int n = kvb_sweep_expand(&sw, partial, &pts, msg, sizeof msg);
    if (n < 0) return kvb_usage_error("%s", msg);
    if (!resume) {
        struct stat st;
        if (lstat(dir, &st) == 0 || lstat(partial, &st) == 0) {
            free(pts);
            return kvb_usage_error("'%s' (or its .partial) exists: choose another --out, or --resume it", dir);
        }
        /* and each point's own command with --dry-run: what it would refuse is refused now, not an hour in
         * (a resumed sweep was checked when it started) */
        kvb_status dr = kvb_sweep_dry_run(pts, n, exe, msg, sizeof msg);
        if (dr != KVB_STATUS_OK) {
            free(pts);
            if (dr == KVB_STATUS_INVALID_ARG) return kvb_usage_error("%s", msg);
            fprintf(stderr, "kvbench: %s\n", msg);
            return KVB_EXIT_FAIL;
        }
    }
    sigset_t old;
    block_stop_signals(&old);
    if (!resume) {
        if (mkdir(partial, 0755) != 0) {
            free(pts);
            fprintf(stderr, "kvbench: cannot create '%s': %s\n", partial, strerror(errno));
            sigprocmask(SIG_SETMASK, &old, NULL);
            return 1;
        }
        snprintf(file, sizeof file, "%s/sweep.def", partial);
        if (kvb_sweep_save(&sw, file, msg, sizeof msg) != KVB_STATUS_OK) {
            fprintf(stderr, "kvbench: %s\n", msg);
            free(pts);
            sigprocmask(SIG_SETMASK, &old, NULL);
            return 1;
        }
    }
    if (emit) {
        /* one command per point, for GNU parallel or a Slurm array; each runs its
         * point into this directory, and a last --resume finishes the sweep */
        char abs[PATH_MAX], qexe[2600], qdir[2 * PATH_MAX], qid[400];
        const char *where = realpath(partial, abs) ? abs : partial;
        /* the machine once, now: jobs starting together must not all measure it */
        int d = kvb_sweep_describe(exe, partial, quiet, msg, sizeof msg);
        if (d != 0) {
            free(pts);
            if (d > 0) return die_of(d, &old);
            fprintf(stderr, "kvbench: %s\n", msg);
            sigprocmask(SIG_SETMASK, &old, NULL);
            return 1;
        }
        shell_quote(exe, qexe, sizeof qexe);
        shell_quote(where, qdir, sizeof qdir);
        for (int i = 0; i < n; i++) {
            shell_quote(pts[i].id, qid, sizeof qid);
            printf("%s sweep --quiet --resume %s --only %s\n", qexe, qdir, qid);
        }
        free(pts);
        fprintf(stderr, "kvbench: %d jobs for %s; when they are done: %s sweep --resume %s\n", n, where, qexe, qdir);
        sigprocmask(SIG_SETMASK, &old, NULL);
        return 0;
    }
    free(pts);
    if (!quiet && !only) fprintf(stderr, "kvbench: sweep %s: %d points into %s\n", sw.name, n, partial);
    kvb_sweep_tally t;
    kvb_status st = kvb_sweep_run(&sw, exe, partial, quiet, only, &t, msg, sizeof msg);
    if (t.signo) {
        fprintf(stderr, "\nkvbench: interrupted (%s): the running point was stopped; finished points are kept: "
                "resume with\n  kvbench sweep --resume %s\n", strsignal(t.signo), partial);
        return die_of(t.signo, &old);
    }
    int rc;
    if (st == KVB_STATUS_INVALID_ARG) {
        fprintf(stderr, "kvbench: %s\n", msg);
        rc = only ? KVB_EXIT_USAGE : KVB_EXIT_FAIL;
    } else if (st != KVB_STATUS_OK) {
        fprintf(stderr, "kvbench: %s\nkvbench: the sweep stopped there; finished points are kept: resume with\n"
                "  kvbench sweep --resume %s\n", msg, partial);
        rc = KVB_EXIT_FAIL;
    } else if (only)
        rc = t.failed ? KVB_EXIT_FAIL : t.ok + t.cut_short == 0 && t.missing == 0 ? KVB_EXIT_NOTHING : KVB_EXIT_OK;
    else if (t.failed || t.missing) {
        fprintf(stderr, "kvbench: %s; finished points are kept: resume with\n  kvbench sweep --resume %s\n",
                t.failed ? "some points failed" : "some points are not done", partial);
        rc = KVB_EXIT_FAIL;
    } else {
        /* every point done: the report first, then the rename, so a finished-looking directory has one */
        char final[1300];
        snprintf(final, sizeof final, "%.*s", (int)(strlen(partial) - strlen(".partial")), partial);
        if (kvb_report(partial, msg, sizeof msg) != KVB_STATUS_OK) {
            fprintf(stderr, "kvbench: %s\nkvbench: every point is done; kvbench sweep --resume %s retries the "
                    "report\n", msg, partial);
            rc = KVB_EXIT_FAIL;
        } else if (rename(partial, final) != 0) {
            fprintf(stderr, "kvbench: cannot rename '%s': %s\n", partial, strerror(errno));
            rc = KVB_EXIT_FAIL;
        } else {
            printf("results: %s\n", final);
            rc = KVB_EXIT_OK;
            if (t.ok + t.cut_short == 0) {
                fprintf(stderr, "kvbench: nothing measured: all %d points were skipped (%d) or timed out (%d)\n",
                        t.total, t.skipped, t.timed_out);
                rc = KVB_EXIT_NOTHING;
            }
        }
    }
    fflush(stdout);
    sigprocmask(SIG_SETMASK, &old, NULL);       /* a signal that came meanwhile acts now */
    return rc;
}

int kvb_cmd_report(int argc, char **argv)
{
    if (argc == 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) { kvb_print_help("report"); return 0; }
    if (argc != 1) return kvb_usage_error("report takes one result directory");
    char msg[1024];
    kvb_status st = kvb_report(argv[0], msg, sizeof msg);
    if (st != KVB_STATUS_OK) {
        fprintf(stderr, "kvbench: %s\n", msg);
        return st == KVB_STATUS_INVALID_ARG ? KVB_EXIT_USAGE : 1;
    }
    printf("report: %s/report.md, %s/report.html\n", argv[0], argv[0]);
    return 0;
}

int kvb_cmd_merge(int argc, char **argv)
{
    if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) { kvb_print_help("merge"); return 0; }
    if (argc < 2) return kvb_usage_error("merge needs OUT and at least one sweep directory");
    char msg[1024];
    kvb_status st = kvb_sweep_merge(argv[0], (const char *const *)argv + 1, argc - 1, msg, sizeof msg);
    if (st != KVB_STATUS_OK) {
        fprintf(stderr, "kvbench: %s\n", msg);
        return st == KVB_STATUS_INVALID_ARG ? KVB_EXIT_USAGE : 1;
    }
    printf("results: %s\n", argv[0]);
    return 0;
}
