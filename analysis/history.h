/* history.h: kvbench history, results filed per machine and commit, as asv's
 * continuous mode keeps them.
 *
 * Contract. A history root (results/history) holds one folder per machine key
 * (the CPU model as a folder name, kvb_cpu_key_of: the key the baselines use):
 *   ROOT/<key>/index.csv              commit,added,commit_time,subject: one row
 *                                     per commit, oldest first
 *   ROOT/<key>/<commit>/runs/<n>/     a copy of each result filed for that
 *                                     commit: what compare reads, no plots or
 *                                     reports; kvb_cmp_load pools the runs
 * The commits are ordered by the commit's own time (git's, where git knows the
 * commit when it is filed), else by when it was first filed; ties keep the
 * order of filing. A run is copied under a hidden name and renamed into place;
 * index.csv is rewritten through a temporary file, so a reader never sees half
 * of either. Adds are not meant to run at once on one key (the index is read,
 * changed and written back). Functions return a status with msg saying why;
 * nothing exits and nothing is kept between calls. */
#ifndef KVB_HISTORY_H
#define KVB_HISTORY_H

#include <stddef.h>
#include "compare.h"

enum { KVB_HIST_NAME_MAX = 72 }; /* a SHA-256 hash too */

typedef struct kvb_hist_commit {
    char commit[KVB_HIST_NAME_MAX]; /* the folder's name: a full hash where git knew it */
    char added[24];                 /* first filed, UTC "YYYY-MM-DDTHH:MM:SSZ" */
    char time[24];                  /* the commit's time, UTC, "" where git did not know it */
    char subject[200];              /* its subject line, "" where git did not know it */
} kvb_hist_commit;

typedef struct kvb_hist_added {
    char key[128]; /* the machine key it went under */
    int key_here;  /* 1: the result names no CPU: this machine's key */
    kvb_hist_commit commit;
    int first_run, runs; /* runs/<first_run>.. : runs filed by this add */
} kvb_hist_added;

/* Files the result directory dir (a run, a sweep, or a pool of runs/<n>/,
 * each of whose runs is filed as one run) under root. The commit is the one
 * the result's meta.json files record (git.commit); commit (NULL: none given)
 * names it where they record none or record a build with uncommitted changes,
 * and must agree with a clean record. Refused (KVB_STATUS_INVALID_ARG or
 * _FORMAT, msg naming the value and what is allowed): a dir compare cannot
 * read or that holds points that did not finish, several machines' results (a
 * merge), results of two commits, no commit recorded or given, a commit name
 * other than letters, digits, '.', '_', '-'. */
kvb_status kvb_hist_add(const char *root, const char *dir, const char *commit, kvb_hist_added *out,
                        char *msg, size_t msg_len);

/* The commits of one machine key, oldest first, into *c (malloc'd, *n of
 * them). An unknown key is refused naming the keys root holds. */
kvb_status kvb_hist_index(const char *root, const char *key, kvb_hist_commit **c, int *n, char *msg,
                          size_t msg_len);

/* One commit's results, its runs pooled (kvb_cmp_load of ROOT/<key>/<commit>). */
kvb_status kvb_hist_load(const char *root, const char *key, const char *commit, kvb_cmp_set *s,
                         char *msg, size_t msg_len);

/* The case of that name and kind in s, or NULL. */
const kvb_cmp_case *kvb_hist_find(const kvb_cmp_set *s, const char *name, kvb_cmp_kind kind);

/* The samples of one case from sets[0..n) (oldest first) taken newest first
 * until KVB_CMP_MAX_SAMPLES: what check pools as the base. Returns how many
 * went into out; *commits gets how many sets gave some. */
int kvb_hist_pool(const kvb_cmp_set *sets, int n, const char *name, kvb_cmp_kind kind,
                  double out[KVB_CMP_MAX_SAMPLES], int *commits);

/* "abc1234" for a full hash, the name itself otherwise (at most 12 characters). */
void kvb_hist_short(const char *commit, char out[16]);

/* show's chart: dir/history.dat (a block per case: commit index, median, low,
 * high), dir/history.gp (one line per case with error bars, the commits' short
 * ids as x tics), and dir/history.png drawn by gnuplot. med, lo, hi are
 * n_cases x n_commits, NaN where a commit lacks the case. *drawn: 1 drawn, 0
 * gnuplot is not installed (the script stays). */
kvb_status kvb_hist_plot(const char *dir, const kvb_hist_commit *commits, int n_commits,
                         const char *const *cases, int n_cases, const double *med, const double *lo,
                         const double *hi, int *drawn, char *msg, size_t msg_len);
/* show's report, dir/history.md: per case a table of the commits (short id,
 * time, subject, median, p10, p90, change from the commit before) and the
 * chart (drawn: history.png is there). The same arrays as kvb_hist_plot. */
kvb_status kvb_hist_report(const char *dir, const kvb_hist_commit *commits, int n_commits,
                           const char *const *cases, int n_cases, const double *med,
                           const double *lo, const double *hi, int drawn, char *msg,
                           size_t msg_len);

#endif
