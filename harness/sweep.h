/* sweep.h: named sweeps. A definition is `section.key = value` lines (a file
 * in bench/sweeps/, plus `--set` overrides from the command line); it expands
 * into points, each one kvbench command (a decode run, an attend table, a
 * quality run, a serving simulation), whose results land in their own
 * directory under <sweep>/points/. The sweep directory is built as .partial,
 * each finished point stays, and a resumed sweep runs only the points that
 * are missing. Several machines' sweep directories merge into one.
 *
 * Sections and keys (lists are comma-separated; a point per combination):
 *   run.     preset backends dtypes blocks threads prompt tokens reps warmup max_seq budget
 *            ceilings
 *   attend.  backends dtypes shapes (HEADS/KV_HEADS/HEAD_DIM) ctxs blocks threads reps budget
 *            ceilings
 *   quality. preset dtypes tokens max_seq group residual budget
 *   serve.   preset backends blocks sequences budget
 * run.KEY@BACKEND gives one backend its own tokens, reps, warmup, prompt,
 * max_seq or budget (no-cache cannot decode as far as a cache in the time).
 * ceilings = off: the points skip measuring the read ceiling (on by default).
 * budget: seconds per point. A decode point stops itself there and is marked
 * cut short (kvbench run --time-budget); any point still running at twice its
 * budget plus a minute is stopped and marked timed_out. Never dropped. */
#ifndef KVB_SWEEP_H
#define KVB_SWEEP_H

#include <stddef.h>
#include <stdio.h>
#include "../impls/kvb_backend.h"

enum {
    KVB_SWEEP_MAX_KEYS = 64,
    KVB_SWEEP_MAX_ARGS = 48,
    KVB_SWEEP_MAX_LINE = 1023,
    KVB_SWEEP_MAX_FILE = 65536
};

typedef struct kvb_sweep {
    char name[64];
    int  n;
    char key[KVB_SWEEP_MAX_KEYS][32];     /* "run.tokens" */
    char val[KVB_SWEEP_MAX_KEYS][256];
} kvb_sweep;

typedef struct kvb_sweep_point {
    char   id[160];                        /* names the point by its parameters; its directory */
    char   kind[16];                       /* run, attend, quality, serve */
    double budget_s;
    int    argc;                           /* kvbench argv after the program name */
    char  *argv[KVB_SWEEP_MAX_ARGS];
    char   buf[2048];                      /* holds argv's strings */
} kvb_sweep_point;

/* Reads a definition file (name: its base name without .sweep). Refused
 * before reading: anything but a regular file (a FIFO, a device such as
 * /dev/zero, a directory) and files over KVB_SWEEP_MAX_FILE bytes; while
 * reading: a line over KVB_SWEEP_MAX_LINE bytes or a NUL byte, by line number. */
kvb_status kvb_sweep_load(kvb_sweep *s, const char *file, char *msg, size_t msg_len);
/* The same for text already in memory (where: the name messages give it). */
kvb_status kvb_sweep_parse(kvb_sweep *s, const char *where, const char *text, size_t len, char *msg,
                           size_t msg_len);
/* One `section.key=value`: checked against the keys above; replaces an existing one. */
kvb_status kvb_sweep_set(kvb_sweep *s, const char *assignment, char *msg, size_t msg_len);
/* Writes the definition back as a file (temporary name, then renamed). */
kvb_status kvb_sweep_save(const kvb_sweep *s, const char *file, char *msg, size_t msg_len);

/* The points, in the order they run. *out is malloc'd (free it); returns the
 * count, or -1 with a message for a bad value: every value is checked here
 * (backends, types, presets, whole numbers in range, finite budgets, no
 * repeated or empty list item), so a bad one is refused before anything runs.
 * out_dir: the sweep directory the points write into (the commands name their
 * output paths under it). */
int kvb_sweep_expand(const kvb_sweep *s, const char *out_dir, kvb_sweep_point **out, char *msg,
                     size_t msg_len);

/* Runs each point's own command with --dry-run (kvbench run, attend and
 * serve-sim check every flag, the model's shape and each case, measure and
 * write nothing): a point its command would refuse refuses the sweep before
 * anything is measured or made; msg names the point and the command's reason.
 * Exit 0, or 3 (nothing it can measure: the point will be marked skipped),
 * passes. INVALID_ARG for a refusal (exit 2), IO for any other failure. */
kvb_status kvb_sweep_dry_run(const kvb_sweep_point *pts, int n, const char *exe, char *msg,
                             size_t msg_len);

/* What a run of the points came to. signo: a SIGINT, SIGTERM or SIGHUP that
 * reached the sweep (the caller blocks them; see kvb_sweep_run): the running
 * point's child was stopped and reaped, its lock released, and nothing more
 * runs; the caller re-raises it. */
typedef struct kvb_sweep_tally {
    int total, ok, cut_short, skipped, timed_out, failed, missing, signo;
} kvb_sweep_tally;

/* Runs every point not yet done under dir (a .partial directory), or only the
 * point named `only`, each as a child process of `exe`; a point's status goes
 * to points/<id>.status and dir/sweep.csv is rebuilt after each; progress and
 * ETA on stderr when it is a terminal. Each point's record names the machine
 * that ran it (host, CPU, cores, ceilings) and its description: machine.txt
 * when that is this host, else nodes/<host>.txt, measured once per node (with
 * `only`, a job on a node, machine.txt is not written).
 * Each child runs in its own process group (stopped with its group at its time
 * limit or when the sweep is interrupted), dies with the sweep where the OS
 * allows (PR_SET_PDEATHSIG on Linux), and holds its point's lock (an flock
 * the child inherits) until it is gone, so a --resume never starts a second
 * child on a point. A child that exits KVB_EXIT_NOTHING (3) marks its point
 * skipped. With SIGINT, SIGTERM and SIGHUP blocked by the caller, they are
 * taken here (t->signo) instead of killing the sweep mid-point.
 * Returns KVB_STATUS_OK when the points ran (the tally says how: failed or
 * missing points are not an error here), INVALID_ARG for a bad definition or
 * `only`, IO when a status, log or sweep.csv could not be written (msg names
 * the file and the cause; the sweep stops there, finished points are kept). */
kvb_status kvb_sweep_run(const kvb_sweep *s, const char *exe, const char *dir, int quiet,
                         const char *only, kvb_sweep_tally *t, char *msg, size_t msg_len);

/* Writes dir/machine.txt once (host, date, and `exe info`: description and
 * ceilings); kept when it exists. Where points ran as jobs on other nodes
 * (dir/nodes/<host>.txt exist) it is the first node's description instead,
 * and this host measures nothing. The description is held in memory until
 * machine.txt is written (no temporary file left by a kill). Returns 0, -1
 * when it could not be written (msg), or the signal number that interrupted it. */
int kvb_sweep_describe(const char *exe, const char *dir, int quiet, char *msg, size_t msg_len);

/* Copies each source sweep directory to out/machines/<host>/ (its own meta and
 * points kept), refusing: an empty or existing out, or an existing out.partial;
 * a host name from machine.txt that is not a plain name (it becomes a folder);
 * two with the same host; unfinished sweeps; sweeps of different definitions
 * (time budgets aside). The report is written before the final rename. */
kvb_status kvb_sweep_merge(const char *out, const char *const *dirs, int n, char *msg,
                           size_t msg_len);

/* ---- Slurm (sweep_slurm.c) ---- */
typedef struct kvb_slurm_opts {
    const char *partition;          /* NULL: the cluster's default */
    int max_parallel;               /* 0: as many tasks at once as Slurm gives */
    const char *const *sbatch_args; /* each one sbatch option, a #SBATCH line of both scripts */
    int n_sbatch_args;
    int dry_run; /* print the scripts and the sbatch lines; make and submit nothing */
} kvb_slurm_opts;

/* Refuses (INVALID_ARG, msg naming the value and what is allowed) a partition
 * that is not a name or a list of them, an sbatch argument that is not one
 * option on one line, and, unless dry_run, a PATH without sbatch. */
kvb_status kvb_sweep_slurm_check(const kvb_slurm_opts *o, char *msg, size_t msg_len);
/* DIR.slurm for DIR.partial: where the scripts, points.txt, submit.sh and each
 * point's <point>.out and .err go; beside the sweep, so it outlives the rename. */
void kvb_sweep_slurm_dir(const char *partial, char *out, size_t n);
/* Writes DIR.slurm/ (points.txt: a point a line, array task i runs line i;
 * points.sbatch: one point per task, the node to itself unless the user's
 * sbatch arguments size the task (-c, --exclusive=..., --oversubscribe);
 * collect.sbatch: kvbench sweep --resume DIR.partial) and submits the points
 * as one array job per time limit (2 x budget + 4 minutes, whole minutes;
 * with max_parallel, each after the one before) and the collection job after
 * them (afterok, cancelled if one fails); prints the job ids and how to watch
 * them on out. DIR.partial and its sweep.def must exist (the caller makes
 * them), DIR.slurm must not. With dry_run, prints the files and the sbatch
 * lines instead and makes nothing. IO with msg when a file or a submission
 * fails (msg names the jobs already submitted). */
kvb_status kvb_sweep_slurm(const char *name, const kvb_sweep_point *pts, int n, const char *exe,
                           const char *partial, const kvb_slurm_opts *o, FILE *out, char *msg,
                           size_t msg_len);
/* s as one shell word: as it is when every character is safe (as Python's
 * shlex.quote), else in single quotes, each ' as '\'' */
void kvb_sweep_shell_quote(const char *s, char *out, size_t n);

/* ---- kvbench ab (sweep_ab.c): one commit against another, interleaved ---- */
/* The top of the git checkout holding the working directory; INVALID_ARG when
 * there is none (ab builds revisions from it). */
kvb_status kvb_ab_repo(char *top, size_t n, char *msg, size_t msg_len);
/* rev (a hash, HEAD~1, a branch, a tag) as the full commit id of repo's
 * history; INVALID_ARG naming it when git knows no such commit. */
kvb_status kvb_ab_resolve(const char *repo, const char *rev, char *sha, size_t n, char *msg,
                          size_t msg_len);
/* The kvbench binary of commit sha, *exe: cache/<sha>/kvbench, built before
 * or now: a detached worktree cache/<sha>/src made with git, `make -jJOBS
 * BUILD=cache/<sha>/build` there (its output in cache/<sha>/build.log), the
 * binary moved in whole, the worktree removed. One build per commit at a time
 * (an flock on cache/<sha>/lock). IO with the output's last line on failure. */
kvb_status kvb_ab_build(const char *repo, const char *sha, const char *cache, int jobs, int quiet,
                        char *exe, size_t n, char *msg, size_t msg_len);

typedef struct kvb_ab_tally {
    int rounds;             /* rounds completed */
    int points, runs;       /* points per round; point runs done, both sides */
    int failed;             /* runs neither ok, cut short nor skipped */
    char first_failed[256]; /* "point of side in round r (status)" */
    int signo;              /* a SIGINT, SIGTERM or SIGHUP took it (kvb_sweep_run's rule) */
} kvb_ab_tally;

/* rounds x the sweep's points: every point run by exe[0] into
 * dir/a/runs/<r>/ and by exe[1] into dir/b/runs/<r>/, back to back, the side
 * that goes first alternating from point to point and round to round (each
 * leads half the time); every round directory holds the definition and one
 * description of the machine (exe[1]'s, measured once), so compare pools each
 * side's rounds and judges times as from one machine. dir/ab.csv: a row per
 * run (round, point, side, order, status, seconds). dir must exist. A failed
 * run is counted and the rounds go on; IO stops them (msg). only: NULL for
 * every point, else a NULL-terminated list of the point ids to run. */
kvb_status kvb_ab_run(const kvb_sweep *s, const char *const exe[2], const char *dir, int rounds,
                      const char *const *only, int quiet, kvb_ab_tally *t, char *msg,
                      size_t msg_len);
/* `exe compare dir/a dir/b` with those settings, writing dir/compare.md and
 * compare.json, its output on this stdout: its exit status (0 same, 1
 * regressed, 2 unusable input), -1 when it did not run. */
int kvb_ab_judge(const char *exe, const char *dir, const char *gate, double alpha,
                 double min_change, int quiet);

/* A case of dir/compare.json: its name, kind, change, p and verdict. */
typedef struct kvb_ab_case {
    char   name[512];
    char   kind[16];    /* time, ratio, ceiling, exact, tolerance */
    char   verdict[24]; /* kvb_verdict_name's */
    double change, p;   /* the median pair's change (0.05: 5% worse); p NaN where untested */
} kvb_ab_case;

/* The cases of dir/compare.json (only those judged regressed where
 * regressed_only) into *out (malloc'd, the caller frees; NULL when none):
 * their count, or -1 when the file cannot be read (msg). *missing: the gated
 * cases of side a that side b lacks (-1 when the file does not say). */
int kvb_ab_cases(const char *dir, int regressed_only, kvb_ab_case **out, int *missing, char *msg,
                 size_t msg_len);
/* 1 when case names a case of point id: "<id>:..." or "<kind>:<id>:...". */
int kvb_ab_case_of(const char *case_name, const char *id);

#endif
