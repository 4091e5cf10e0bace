/* cmd_sweep.c: kvbench sweep, report and merge: a sweep's points run as child
 * processes into NAME.partial, renamed when every point is done, or are
 * printed as commands (--emit-jobs) or submitted as Slurm jobs (--slurm) that
 * a last --resume collects; report and merge read finished result directories. */
#define _GNU_SOURCE /* strsignal */
#include "cli.h"
#include "../base/afile.h"
#include "../base/datadir.h"
#include "../analysis/report.h"
#include "../harness/sweep.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The kvbench binary itself, for the sweep's child processes. */
void kvb_self_path(const char *argv0, char *buf, size_t n)
{
    ssize_t len = readlink("/proc/self/exe", buf, n - 1);
    if (len > 0) {
        buf[len] = 0;
        return;
    }
    if (!realpath(argv0, buf)) snprintf(buf, n, "%s", argv0);
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
    return 128 + sig; /* not reached unless the signal is ignored */
}

enum { MAX_SBATCH_ARGS = 32 };
typedef struct sweep_opts {
    kvb_sweep sw;
    const char *def; /* "": a sweep of --set alone */
    const char *out, *resume, *only;
    int emit, quiet;
    int slurm, dry_run, max_parallel;
    const char *partition;
    const char *sbatch[MAX_SBATCH_ARGS];
    int n_sbatch;
} sweep_opts;

static int sweep_sbatch_arg(void *opts, const char *arg)
{
    sweep_opts *o = opts;
    if (o->n_sbatch == MAX_SBATCH_ARGS)
        return kvb_usage_error("--sbatch-arg '%s': at most %d are taken", arg, MAX_SBATCH_ARGS);
    o->sbatch[o->n_sbatch++] = arg;
    return 0;
}

static int sweep_set(void *opts, const char *kv)
{
    sweep_opts *o = opts;
    char msg[2048];
    if (!o->def) o->def = ""; /* a sweep may come from --set alone */
    if (kvb_sweep_set(&o->sw, kv, msg, sizeof msg) != KVB_STATUS_OK)
        return kvb_usage_error("%s", msg);
    return 0;
}

/* The definition is named first: --set changes it, so it must be loaded before them. */
static int sweep_name(void *opts, const char *name)
{
    sweep_opts *o = opts;
    if (o->def && o->def[0])
        return kvb_usage_error("sweep takes one definition, got '%s' and '%s'", o->def, name);
    if (o->sw.n) return kvb_usage_error("name the sweep '%s' before any --set", name);
    o->def = name;
    return 0;
}

#define OFF(f) offsetof(sweep_opts, f)
/* clang-format off */
static const kvb_flag sweep_flags[] = {
    {.name = "--set", .cmds = KVB_CMD_SWEEP, .kind = KVB_FLAG_CALL, .meta = "KEY=VALUE",
     .help = "one value of the definition (section.key=value, as in a .sweep file); given "
             "alone, they make the definition",
     .call = sweep_set},
    {.name = "--out", .cmds = KVB_CMD_SWEEP, .kind = KVB_FLAG_TEXT, .meta = "DIR",
     .def_help = "results/<UTC>-sweep-NAME", .help = "the sweep's directory; must not exist",
     .off = OFF(out)},
    {.name = "--emit-jobs", .cmds = KVB_CMD_SWEEP, .kind = KVB_FLAG_SWITCH,
     .help = "create DIR.partial and print one command per point instead of running them",
     .off = OFF(emit)},
    {.name = "--resume", .cmds = KVB_CMD_SWEEP, .kind = KVB_FLAG_TEXT, .meta = "DIR.partial",
     .help = "run the points an interrupted sweep has not finished, then its report",
     .off = OFF(resume)},
    {.name = "--only", .cmds = KVB_CMD_SWEEP, .kind = KVB_FLAG_TEXT, .meta = "POINT",
     .help = "with --resume: run this one point only (what --emit-jobs prints)", .off = OFF(only)},
    {.name = "--quiet", .cmds = KVB_CMD_SWEEP, .kind = KVB_FLAG_SWITCH,
     .help = "no progress lines", .off = OFF(quiet)},
    {.name = "--slurm", .cmds = KVB_CMD_SWEEP, .kind = KVB_FLAG_SWITCH,
     .help = "create DIR.partial and submit the points as a Slurm array job (a node per task) "
             "and a job that collects them (DIR.slurm/ holds the scripts and outputs)",
     .off = OFF(slurm)},
    {.name = "--partition", .cmds = KVB_CMD_SWEEP, .kind = KVB_FLAG_STRING, .meta = "P",
     .def_help = "the cluster's default", .help = "with --slurm: the partition of every job",
     .off = OFF(partition)},
    {.name = "--max-parallel", .cmds = KVB_CMD_SWEEP, .kind = KVB_FLAG_INT, .meta = "N", .lo = 1,
     .hi = 100000, .def_help = "no limit",
     .help = "with --slurm: at most N points' tasks at once", .off = OFF(max_parallel)},
    {.name = "--sbatch-arg", .cmds = KVB_CMD_SWEEP, .kind = KVB_FLAG_CALL, .meta = "OPTION",
     .help = "with --slurm: one more sbatch option for both jobs (--account=A, "
             "--constraint=F; -c N or --oversubscribe lets tasks share a node); repeatable",
     .call = sweep_sbatch_arg},
    {.name = "--dry-run", .cmds = KVB_CMD_SWEEP, .kind = KVB_FLAG_SWITCH,
     .help = "with --slurm: print the job scripts and sbatch lines; make and submit nothing",
     .off = OFF(dry_run)},
    {.name = NULL},
};
/* clang-format on */
#undef OFF

const kvb_cmd_spec kvb_sweep_spec = {
    .usage = "NAME|FILE [--set section.key=value ...] [--out DIR] [--quiet]\n"
             "       kvbench sweep NAME --emit-jobs [--out DIR]   (one command per point)\n"
             "       kvbench sweep NAME --slurm [--partition P] [--max-parallel N]\n"
             "             [--sbatch-arg OPTION ...] [--dry-run] [--out DIR]\n"
             "       kvbench sweep --resume DIR.partial [--only POINT]",
    .intro = "Runs a named sweep (bench/sweeps/NAME.sweep: smoke, default, long-context), a\n"
             "definition file, or one made of --set alone. A sweep is the product of its lists:\n"
             "  run.     preset backends dtypes blocks threads prompt tokens reps warmup max_seq\n"
             "           group budget ceilings\n"
             "  attend.  backends dtypes shapes (H/KV/HD) ctxs blocks threads reps group budget\n"
             "           ceilings\n"
             "  quality. preset dtypes tokens max_seq group residual budget\n"
             "  serve.   preset backends blocks sequences budget\n"
             "Each point is one kvbench command run as a child process into DIR/points/<point>/;\n"
             "ceilings = off skips its read ceiling. budget is seconds per point: a decode point\n"
             "stops there and is marked cut_short, and any point still running at twice its\n"
             "budget plus a minute is stopped and marked timed_out (never dropped). DIR\n"
             "(default results/<UTC>-sweep-NAME) is built as DIR.partial: an interrupted sweep\n"
             "keeps every finished point and --resume runs the rest. DIR/sweep.csv lists every\n"
             "point's status, time, command, and the host and CPU that ran it. Every value, and\n"
             "each point's own command (--dry-run), is checked before anything runs. At the\n"
             "end: report.md, report.html, plot data and images (gnuplot), written before\n"
             "DIR.partial becomes DIR.",
    .epilogue =
        "--emit-jobs creates DIR.partial and prints one command per point instead\n"
        "(kvbench sweep --resume DIR.partial --only POINT), for GNU parallel or any\n"
        "runner (parallel -j1 < jobs.txt); a last --resume finishes the sweep. --slurm submits\n"
        "the points as a Slurm array job (each task a node to itself, a time limit from its\n"
        "point's budget, its output in DIR.slurm/<point>.out and .err) and a job that runs\n"
        "that --resume after them; it prints the job ids and how to watch them. A requeued\n"
        "or repeated task leaves a done point alone, and exits 0 once the sweep is collected.\n"
        "Each point records the host, CPU, cores and ceilings of the node that ran it. To\n"
        "compare machines, sweep on each, then 'kvbench merge OUT DIR...'.\n\n"
        "SIGINT, SIGTERM or SIGHUP stop the running point's child (left pending) before the\n"
        "sweep dies; a point's lock is held until its child is gone.\n"
        "exit status: 0 done; 1 a point failed or is not done, or a file could not be\n"
        "written (--resume continues); 2 refused before anything was made; 3 nothing\n"
        "measured (every point skipped or timed out).",
    .flags = sweep_flags,
    .positional = sweep_name,
};

int kvb_sweep_named(const char *def, kvb_sweep *sw)
{
    char msg[2048], file[1200];
    if (!def[0]) {
        snprintf(sw->name, sizeof sw->name, "custom");
        return 0;
    }
    kvb_sweep overrides = *sw;
    memset(sw, 0, sizeof *sw);
    if (strchr(def, '/') || strstr(def, ".sweep"))
        snprintf(file, sizeof file, "%s", def);
    else {
        /* a named sweep: bench/sweeps/ beside the binary, installed, or here (datadir.h) */
        char rel[300], where[1200];
        snprintf(rel, sizeof rel, "bench/sweeps/%s.sweep", def);
        if (kvb_data_path(rel, where, sizeof where) != 0)
            return kvb_usage_error("no sweep named '%s': cannot read sweep file '%s' (looked in "
                                   "$KVBENCH_DATA, beside the binary (%s), in an installed "
                                   "share/kvbench and the working directory)",
                                   def, rel, where);
        snprintf(file, sizeof file, "%s", where);
    }
    if (kvb_sweep_load(sw, file, msg, sizeof msg) != KVB_STATUS_OK)
        return kvb_usage_error("%s", msg);
    for (int i = 0; i < overrides.n; i++) {
        char kv[400];
        snprintf(kv, sizeof kv, "%s=%s", overrides.key[i], overrides.val[i]);
        if (kvb_sweep_set(sw, kv, msg, sizeof msg) != KVB_STATUS_OK)
            return kvb_usage_error("%s", msg);
    }
    return 0;
}

int kvb_cmd_sweep(const kvb_cli *cli, const kvb_command *self, int argc, char **argv)
{
    sweep_opts o;
    memset(&o, 0, sizeof o);
    int r = kvb_flags_parse(cli, self, argc, argv, &o);
    if (r) return r < 0 ? 0 : r;
    kvb_sweep sw = o.sw;
    const char *def = o.def, *out = o.out, *resume = o.resume, *only = o.only;
    int emit = o.emit, quiet = o.quiet;
    kvb_slurm_opts so = {.partition = o.partition,
                         .max_parallel = o.max_parallel,
                         .sbatch_args = o.sbatch,
                         .n_sbatch_args = o.n_sbatch,
                         .dry_run = o.dry_run};
    char msg[2048], file[1200], dir[1200], exe[1200], trimmed[1200];
    kvb_self_path(cli->argv0, exe, sizeof exe);
    char partial[1300];
    if (!o.slurm && (so.partition || so.max_parallel || so.n_sbatch_args || so.dry_run))
        return kvb_usage_error("%s goes with --slurm (the jobs it submits)",
                               so.partition       ? "--partition"
                               : so.max_parallel  ? "--max-parallel"
                               : so.n_sbatch_args ? "--sbatch-arg"
                                                  : "--dry-run");
    if (o.slurm && (emit || resume))
        return kvb_usage_error("--slurm submits a new sweep: not with %s",
                               emit ? "--emit-jobs (pick one)" : "--resume");
    if (o.slurm && kvb_sweep_slurm_check(&so, msg, sizeof msg) != KVB_STATUS_OK)
        return kvb_usage_error("%s", msg);
    if (resume) {
        if (def || out || emit)
            return kvb_usage_error("--resume DIR takes the definition and directory from DIR");
        snprintf(trimmed, sizeof trimmed, "%s", resume);
        size_t len = strlen(trimmed);
        while (len > 1 && trimmed[len - 1] == '/') trimmed[--len] = 0;
        resume = trimmed;
        if (len < 9 || strcmp(resume + len - 8, ".partial") != 0)
            return kvb_usage_error(
                "--resume '%s': expected an unfinished sweep directory (NAME.partial)", resume);
        struct stat st;
        char done_dir[1200], csv[1300];
        snprintf(done_dir, sizeof done_dir, "%.*s", (int)(len - 8), resume);
        snprintf(csv, sizeof csv, "%s/sweep.csv", done_dir);
        if (lstat(resume, &st) != 0 && errno == ENOENT && stat(csv, &st) == 0) {
            /* a requeued or late job (a Slurm task, the collection job again): the sweep was
             * finished and renamed meanwhile; nothing is left to do, and that is not an error */
            printf("kvbench: %s was collected already into %s: nothing to do%s%s\n", resume,
                   done_dir, only ? " for point " : "", only ? only : "");
            return KVB_EXIT_OK;
        }
        snprintf(file, sizeof file, "%s/sweep.def", resume);
        if (kvb_sweep_load(&sw, file, msg, sizeof msg) != KVB_STATUS_OK)
            return kvb_usage_error("--resume '%s': %s", resume, msg);
        /* the name it was started under: results/<stamp>-sweep-NAME.partial, or the directory's own
         */
        const char *nm = strstr(resume, "-sweep-"), *base = strrchr(resume, '/');
        nm = nm ? nm + 7 : base ? base + 1 : resume;
        snprintf(sw.name, sizeof sw.name, "%.*s", (int)(resume + len - 8 - nm), nm);
        snprintf(partial, sizeof partial, "%s", resume);
    } else {
        if (only)
            return kvb_usage_error(
                "--only ID goes with --resume DIR (the commands --emit-jobs prints)");
        if (!def)
            return kvb_usage_error(
                "sweep needs a definition: a name in bench/sweeps/ (smoke, default, "
                "long-context), a .sweep file, or --set section.key=value");
        int dr = kvb_sweep_named(def, &sw);
        if (dr) return dr;
        if (out) {
            snprintf(dir, sizeof dir, "%s", out);
            size_t len = strlen(dir);
            while (len > 1 && dir[len - 1] == '/') dir[--len] = 0;
            if (!dir[0] || strlen(out) > 1000)
                return kvb_usage_error("--out '%s': expected a new directory's name", out);
        } else {
            time_t t = time(NULL);
            char stamp[32];
            strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", gmtime(&t));
            snprintf(dir, sizeof dir, "results/%s-sweep-%s", stamp, sw.name);
        }
        kvb_partial_name(dir, partial, sizeof partial);
    }
    /* every point's values checked before anything is measured or made */
    kvb_sweep_point *pts;
    int n = kvb_sweep_expand(&sw, partial, &pts, msg, sizeof msg);
    if (n < 0) return kvb_usage_error("%s", msg);
    if (!resume) {
        struct stat st;
        char slurm_dir[1400];
        kvb_sweep_slurm_dir(partial, slurm_dir, sizeof slurm_dir);
        if (lstat(dir, &st) == 0 || lstat(partial, &st) == 0) {
            free(pts);
            return kvb_usage_error(
                "'%s' (or its .partial) exists: choose another --out, or --resume it", dir);
        }
        if (o.slurm && lstat(slurm_dir, &st) == 0) {
            free(pts);
            return kvb_usage_error("'%s' exists (another sweep's Slurm jobs): choose another --out",
                                   slurm_dir);
        }
        /* and each point's own command with --dry-run: what it would refuse is refused now, not an
         * hour in (a resumed sweep was checked when it started) */
        kvb_status dr = kvb_sweep_dry_run(pts, n, exe, msg, sizeof msg);
        if (dr != KVB_STATUS_OK) {
            free(pts);
            if (dr == KVB_STATUS_INVALID_ARG) return kvb_usage_error("%s", msg);
            fprintf(stderr, "kvbench: %s\n", msg);
            return KVB_EXIT_FAIL;
        }
    }
    if (o.slurm && so.dry_run) {
        kvb_status st =
            kvb_sweep_slurm(sw.name, pts, n, exe, partial, &so, stdout, msg, sizeof msg);
        free(pts);
        if (st != KVB_STATUS_OK) fprintf(stderr, "kvbench: %s\n", msg);
        return st == KVB_STATUS_OK ? KVB_EXIT_OK : KVB_EXIT_FAIL;
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
    if (o.slurm) {
        /* the machine is not described here (a login node, say): each point's task describes
         * the node it runs on, and the collection job the sweep from them */
        if (!quiet)
            fprintf(stderr, "kvbench: sweep %s: %d points as Slurm jobs into %s\n", sw.name, n,
                    partial);
        kvb_status st =
            kvb_sweep_slurm(sw.name, pts, n, exe, partial, &so, stdout, msg, sizeof msg);
        free(pts);
        if (st != KVB_STATUS_OK) fprintf(stderr, "kvbench: %s\n", msg);
        fflush(stdout);
        sigprocmask(SIG_SETMASK, &old, NULL);
        return st == KVB_STATUS_OK ? KVB_EXIT_OK : KVB_EXIT_FAIL;
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
        kvb_sweep_shell_quote(exe, qexe, sizeof qexe);
        kvb_sweep_shell_quote(where, qdir, sizeof qdir);
        for (int i = 0; i < n; i++) {
            kvb_sweep_shell_quote(pts[i].id, qid, sizeof qid);
            printf("%s sweep --quiet --resume %s --only %s\n", qexe, qdir, qid);
        }
        free(pts);
        fprintf(stderr, "kvbench: %d jobs for %s; when they are done: %s sweep --resume %s\n", n,
                where, qexe, qdir);
        sigprocmask(SIG_SETMASK, &old, NULL);
        return 0;
    }
    free(pts);
    if (!quiet && !only)
        fprintf(stderr, "kvbench: sweep %s: %d points into %s\n", sw.name, n, partial);
    kvb_sweep_tally t;
    kvb_status st = kvb_sweep_run(&sw, exe, partial, quiet, only, &t, msg, sizeof msg);
    if (t.signo) {
        fprintf(
            stderr,
            "\nkvbench: interrupted (%s): the running point was stopped; finished points are kept: "
            "resume with\n  kvbench sweep --resume %s\n",
            strsignal(t.signo), partial);
        return die_of(t.signo, &old);
    }
    int rc;
    if (st == KVB_STATUS_INVALID_ARG) {
        fprintf(stderr, "kvbench: %s\n", msg);
        rc = only ? KVB_EXIT_USAGE : KVB_EXIT_FAIL;
    } else if (st != KVB_STATUS_OK) {
        fprintf(
            stderr,
            "kvbench: %s\nkvbench: the sweep stopped there; finished points are kept: resume with\n"
            "  kvbench sweep --resume %s\n",
            msg, partial);
        rc = KVB_EXIT_FAIL;
    } else if (only)
        rc = t.failed                                    ? KVB_EXIT_FAIL
             : t.ok + t.cut_short == 0 && t.missing == 0 ? KVB_EXIT_NOTHING
                                                         : KVB_EXIT_OK;
    else if (t.failed || t.missing) {
        fprintf(stderr,
                "kvbench: %s; finished points are kept: resume with\n  kvbench sweep --resume %s\n",
                t.failed ? "some points failed" : "some points are not done", partial);
        rc = KVB_EXIT_FAIL;
    } else {
        /* every point done: the report first, then the rename, so a finished-looking directory has
         * one */
        char final[1300];
        snprintf(final, sizeof final, "%.*s", (int)(strlen(partial) - strlen(".partial")), partial);
        if (kvb_report(partial, msg, sizeof msg) != KVB_STATUS_OK) {
            fprintf(
                stderr,
                "kvbench: %s\nkvbench: every point is done; kvbench sweep --resume %s retries the "
                "report\n",
                msg, partial);
            rc = KVB_EXIT_FAIL;
        } else if (kvb_partial_publish(partial, final, msg, sizeof msg)) {
            fprintf(stderr, "kvbench: %s\n", msg);
            rc = KVB_EXIT_FAIL;
        } else {
            printf("results: %s\n", final);
            rc = KVB_EXIT_OK;
            if (t.ok + t.cut_short == 0) {
                fprintf(stderr,
                        "kvbench: nothing measured: all %d points were skipped (%d) or timed out "
                        "(%d)\n",
                        t.total, t.skipped, t.timed_out);
                rc = KVB_EXIT_NOTHING;
            }
        }
    }
    fflush(stdout);
    sigprocmask(SIG_SETMASK, &old, NULL); /* a signal that came meanwhile acts now */
    return rc;
}

typedef struct dirs_opts {
    const char *dir[256];
    int n;
} dirs_opts;

static int report_dir(void *opts, const char *dir)
{
    dirs_opts *o = opts;
    if (o->n) return kvb_usage_error("report takes one result directory");
    o->dir[o->n++] = dir;
    return 0;
}

const kvb_cmd_spec kvb_report_spec = {
    .usage = "DIR",
    .intro = "Writes DIR/plots/*.dat and *.vars, draws them as DIR/plots/*.png and *.svg with\n"
             "gnuplot (found on PATH; without it, one note and 'Plot not drawn' in the report),\n"
             "then DIR/report.md and DIR/report.html, for a run, a sweep or a merge.",
    .epilogue = "exit status: 0 done; 1 a file could not be written or gnuplot failed on a\n"
                "script; 2 DIR is not a kvbench result.",
    .positional = report_dir,
};

int kvb_cmd_report(const kvb_cli *cli, const kvb_command *self, int argc, char **argv)
{
    dirs_opts o = {.n = 0};
    int r = kvb_flags_parse(cli, self, argc, argv, &o);
    if (r) return r < 0 ? 0 : r;
    if (o.n != 1) return kvb_usage_error("report takes one result directory");
    char msg[1024];
    kvb_status st = kvb_report(o.dir[0], msg, sizeof msg);
    if (st != KVB_STATUS_OK) {
        fprintf(stderr, "kvbench: %s\n", msg);
        return st == KVB_STATUS_INVALID_ARG ? KVB_EXIT_USAGE : 1;
    }
    printf("report: %s/report.md, %s/report.html\n", o.dir[0], o.dir[0]);
    return 0;
}

static int merge_dir(void *opts, const char *dir)
{
    dirs_opts *o = opts;
    if (o->n == (int)(sizeof o->dir / sizeof o->dir[0]))
        return kvb_usage_error("merge takes at most %d sweep directories", o->n - 1);
    o->dir[o->n++] = dir;
    return 0;
}

const kvb_cmd_spec kvb_merge_spec = {
    .usage = "OUT SWEEP_DIR...",
    .intro = "Copies each machine's sweep directory to OUT/machines/<host>/ (its machine.txt,\n"
             "definition and points kept), refuses two from the same host, and writes the\n"
             "report: the plots then carry every machine, each series marked @host, with a\n"
             "colour and a read ceiling per machine. Sweeps of different definitions are\n"
             "refused, naming the first key that differs.",
    .epilogue = "exit status: 0 merged; 1 a copy, the report or the rename failed (OUT.partial\n"
                "removed); 2 refused: an empty or existing OUT or OUT.partial, a directory that\n"
                "is not a finished sweep, two from one host, a host that is not a plain name.",
    .positional = merge_dir,
};

int kvb_cmd_merge(const kvb_cli *cli, const kvb_command *self, int argc, char **argv)
{
    dirs_opts o = {.n = 0};
    int r = kvb_flags_parse(cli, self, argc, argv, &o);
    if (r) return r < 0 ? 0 : r;
    if (o.n < 2) return kvb_usage_error("merge needs OUT and at least one sweep directory");
    char msg[1024];
    kvb_status st = kvb_sweep_merge(o.dir[0], o.dir + 1, o.n - 1, msg, sizeof msg);
    if (st != KVB_STATUS_OK) {
        fprintf(stderr, "kvbench: %s\n", msg);
        return st == KVB_STATUS_INVALID_ARG ? KVB_EXIT_USAGE : 1;
    }
    printf("results: %s\n", o.dir[0]);
    return 0;
}
