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
 *   attend.  backends dtypes shapes (HEADS/KV_HEADS/HEAD_DIM) ctxs blocks threads reps budget
 *   quality. preset dtypes tokens max_seq budget
 *   serve.   preset backends blocks sequences budget
 * run.KEY@BACKEND gives one backend its own tokens, reps, warmup, prompt,
 * max_seq or budget (no-cache cannot decode as far as a cache in the time).
 * budget: seconds per point. A decode point stops itself there and is marked
 * cut short (kvbench run --time-budget); any point still running at twice its
 * budget plus a minute is stopped and marked timed_out. Never dropped. */
#ifndef KVB_SWEEP_H
#define KVB_SWEEP_H

#include <stddef.h>
#include "../impls/kvb_backend.h"

enum { KVB_SWEEP_MAX_KEYS = 64, KVB_SWEEP_MAX_ARGS = 48 };

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

/* Reads a definition file (name: its base name without .sweep). */
kvb_status kvb_sweep_load(kvb_sweep *s, const char *file, char *msg, size_t msg_len);
/* One `section.key=value`: checked against the keys above; replaces an existing one. */
kvb_status kvb_sweep_set(kvb_sweep *s, const char *assignment, char *msg, size_t msg_len);
/* Writes the definition back as a file (temporary name, then renamed). */
kvb_status kvb_sweep_save(const kvb_sweep *s, const char *file, char *msg, size_t msg_len);

/* The points, in the order they run. *out is malloc'd (free it); returns the
 * count, or -1 with a message for a bad value. out_dir: the sweep directory
 * the points write into (the commands name their output paths under it). */
int kvb_sweep_expand(const kvb_sweep *s, const char *out_dir, kvb_sweep_point **out, char *msg, size_t msg_len);

/* Runs every point not yet done under dir (a .partial directory), or only the
 * point named `only`, each as a child process of `exe`; a point's status goes
 * to points/<id>.status and dir/sweep.csv is rebuilt after each; progress and
 * ETA on stderr when it is a terminal. Returns the number of failed points,
 * -2 when none failed but some are still missing (another job's), -1 on bad
 * input; 0 when every point (or `only`) is done. */
int kvb_sweep_run(const kvb_sweep *s, const char *exe, const char *dir, int quiet, const char *only);

/* Writes dir/machine.txt once (host, date, and `exe info`: description and
 * ceilings); kept when it exists. 0, or -1 when it could not be written. */
int kvb_sweep_describe(const char *exe, const char *dir, int quiet);

/* Copies each source sweep directory to out/machines/<host>/ (its own meta and
 * points kept), refusing two with the same host and unfinished sweeps. */
kvb_status kvb_sweep_merge(const char *out, const char *const *dirs, int n, char *msg, size_t msg_len);

#endif
