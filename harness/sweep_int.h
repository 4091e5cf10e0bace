/* sweep_int.h: what the sweep's files share and nothing outside them uses:
 * a definition's lookups (sweep_def.c), running a point's command as a child
 * process (sweep_child.c), the sweep.csv field cleaner and a description's
 * host (sweep_run.c). */
#ifndef KVB_SWEEP_INT_H
#define KVB_SWEEP_INT_H

#include <stddef.h>
#include <sys/stat.h>
#include "sweep.h"
#include "../base/probe.h"

/* The value of key in the definition, or NULL. */
const char *kvb_sweep_get(const kvb_sweep *s, const char *key);

typedef struct child_run {
    int code;       /* its exit status; -1 when it did not exit (killed, or never started) */
    int timed_out;  /* stopped at its time limit */
    int signo;      /* stopped because the sweep was interrupted by this signal */
    int log_errno;  /* its output could not all be written to the log: why */
    char tail[640]; /* the end of its output, for a message when the log is not there to read */
    size_t tail_len;
    int capture; /* keep all its output in out (kvbench info's description) */
    char *out;
    size_t out_len, out_cap;
} child_run;

/* Runs exe argv as a child, its output into log_fd (when >= 0) and r
 * (sweep_child.c says how it is stopped and what it inherits). */
void kvb_sweep_run_child(const char *exe, char **argv, int log_fd, double limit_s, child_run *r);
/* A SIGINT, SIGTERM or SIGHUP pending for the sweep, taken (0: none). */
int kvb_sweep_take_signal(void);
/* The cause a child's output gives, on one line. */
void kvb_sweep_last_line(const char *tail, char *out, size_t n);
/* A description's (machine.txt, nodes/<host>.txt) `host:` value, whole (to the end of its
 * line): 0, or -1 when the file cannot be read or has none. */
int kvb_sweep_host_of(const char *file, char *host, size_t n);
/* s without what would break a line of sweep.csv or the status file */
void kvb_sweep_clean_field(char *s);

static inline double kvb_sweep_now_s(void)
{
    return (double)kvb_now_ns() * 1e-9;
}

static inline int kvb_sweep_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* a dangling symlink counts: it is a name that something else owns */
static inline int kvb_sweep_lexists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

#endif
