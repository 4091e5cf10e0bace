/* afile.h: files and directories that appear whole or not at all.
 *
 * Contract. kvb_afile_open creates a new temporary file beside its target,
 * "<path>.XXXXXX.tmp" (mkstemps: created exclusively, so a file or a link of
 * that name is never opened; unique, so writers running at once never share
 * one), mode 0644, open for writing. kvb_afile_commit flushes and closes it
 * and renames it onto the target, replacing what is there;
 * kvb_afile_commit_new links it instead, so that a file which appeared under
 * the name meanwhile is never replaced (EEXIST). Each returns 0, or the
 * errno of what failed with msg naming the target and errno's text ("No space
 * left on device"): base/ sits below the status codes of impls/. Every
 * failure, and kvb_afile_abort, removes the temporary file: no call returns
 * leaving one behind. No fsync: the rename guards against a process
 * stopped mid-write, which is what the callers need; a benchmark lost to a
 * power cut is run again.
 *
 * A result directory is built as "<dir>.partial" and renamed onto <dir> when
 * complete: kvb_partial_publish renames without ever replacing (a <dir> that
 * appeared meanwhile, even an empty one, refuses with EEXIST's text), and
 * kvb_rmtree removes what a failed attempt left. */
#ifndef KVB_AFILE_H
#define KVB_AFILE_H

#include <stddef.h>
#include <stdio.h>

enum { KVB_PATH_MAX = 4096 };

typedef struct kvb_afile {
    FILE *f;                     /* write here; NULL once committed or aborted */
    char path[KVB_PATH_MAX];     /* the target */
    char tmp[KVB_PATH_MAX + 16]; /* the temporary file beside it */
} kvb_afile;

int kvb_afile_open(kvb_afile *a, const char *path, char *msg, size_t msg_len);
int kvb_afile_commit(kvb_afile *a, char *msg, size_t msg_len);
int kvb_afile_commit_new(kvb_afile *a, char *msg, size_t msg_len);
void kvb_afile_abort(kvb_afile *a);

/* "<dir>.partial" into out; -1 when it does not fit. */
int kvb_partial_name(const char *dir, char *out, size_t n);

/* Renames partial onto dir, never replacing anything there: 0 or an errno. */
int kvb_partial_publish(const char *partial, const char *dir, char *msg, size_t msg_len);

/* Removes path and, for a directory, all below it (links are not followed). */
void kvb_rmtree(const char *path);

#endif
