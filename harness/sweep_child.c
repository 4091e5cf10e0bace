/* sweep_child.c: a point's command run as a child process of the kvbench
 * binary (sweep_int.h), so a crash or a hang in one point costs that point
 * only, the time limit can be enforced from outside, and --emit-jobs can
 * print exactly the commands the sweep itself would run. */
#define _GNU_SOURCE /* pipe2, prctl: Linux, where the sweep runs */
#include "sweep_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

/* A SIGINT, SIGTERM or SIGHUP pending for the sweep, taken (0: none). They
 * are pending only when the caller blocks them (sweep.h); otherwise they act
 * as they always do. */
int kvb_sweep_take_signal(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    struct timespec zero = {0, 0};
    int sig = sigtimedwait(&set, NULL, &zero);
    return sig > 0 ? sig : 0;
}

static void take_output(child_run *r, int log_fd, const char *buf, size_t n)
{
    for (size_t done = 0; log_fd >= 0 && !r->log_errno && done < n;) {
        ssize_t w = write(log_fd, buf + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            r->log_errno = w < 0 ? errno : EIO;
        else
            done += (size_t)w;
    }
    if (r->capture && r->out_len + n + 1 <= (1u << 20)) { /* a description is a few KB */
        if (r->out_len + n + 1 > r->out_cap) {
            size_t cap = (r->out_len + n + 1) * 2;
            char *o = realloc(r->out, cap);
            if (o) {
                r->out = o;
                r->out_cap = cap;
            }
        }
        if (r->out_len + n + 1 <= r->out_cap) {
            memcpy(r->out + r->out_len, buf, n);
            r->out_len += n;
            r->out[r->out_len] = 0;
        }
    }
    size_t room = sizeof r->tail - 1;
    if (n >= room) {
        memcpy(r->tail, buf + n - room, room);
        r->tail_len = room;
    } else {
        size_t keep = r->tail_len < room - n ? r->tail_len : room - n;
        memmove(r->tail, r->tail + r->tail_len - keep, keep);
        memcpy(r->tail + keep, buf, n);
        r->tail_len = keep + n;
    }
    r->tail[r->tail_len] = 0;
}

/* What the pipe holds now; closes it at its end. */
static void drain(int *rd, child_run *r, int log_fd)
{
    char buf[4096];
    while (*rd >= 0) {
        ssize_t n = read(*rd, buf, sizeof buf);
        if (n > 0) {
            take_output(r, log_fd, buf, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) {
            close(*rd);
            *rd = -1;
        }
        break; /* EAGAIN: nothing more for now */
    }
}

/* Runs exe argv, its output (stdout and stderr) through a pipe into log_fd
 * (when >= 0) and r's tail (and r->out with r->capture), so a log that cannot
 * be written still leaves the cause to print. The child leads its own process
 * group, which is what gets stopped (SIGTERM, then SIGKILL 10 s on) at
 * limit_s or when a signal reaches the sweep; it dies with the sweep on Linux
 * (PR_SET_PDEATHSIG) and keeps every inherited descriptor without
 * close-on-exec: the point's lock among them, held until it is gone. */
void kvb_sweep_run_child(const char *exe, char **argv, int log_fd, double limit_s, child_run *r)
{
    int capture = r->capture;
    memset(r, 0, sizeof *r);
    r->capture = capture;
    r->code = -1;
    char *full[KVB_SWEEP_MAX_ARGS + 2];
    full[0] = (char *)exe;
    int i = 0;
    for (; argv[i] && i < KVB_SWEEP_MAX_ARGS; i++) full[i + 1] = argv[i];
    full[i + 1] = NULL;
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        snprintf(r->tail, sizeof r->tail, "kvbench: cannot make a pipe for the child: %s\n",
                 strerror(errno));
        return;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(r->tail, sizeof r->tail, "kvbench: cannot start a child process: %s\n",
                 strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        return;
    }
    if (pid == 0) {
        setpgid(0, 0);
#ifdef __linux__
        prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
        if (getppid() != parent) _exit(127); /* the sweep died before the line above took hold */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int dn = open("/dev/null", O_RDONLY); /* its own group cannot read the terminal */
        if (dn > 0) {
            dup2(dn, 0);
            close(dn);
        }
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        execv(exe, full);
        dprintf(2, "kvbench: cannot run '%s': %s\n", exe, strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* both sides, so the group exists before either goes on */
    close(pfd[1]);
    int rd = pfd[0];
    fcntl(rd, F_SETFL, O_NONBLOCK);
    double t0 = kvb_sweep_now_s(), t_stop = 0;
    int status = 0;
    for (;;) {
        struct pollfd pf = {.fd = rd, .events = POLLIN};
        poll(&pf, rd >= 0 ? 1 : 0, 50);
        drain(&rd, r, log_fd);
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) {
            status = -1;
            break;
        }
        int sig = kvb_sweep_take_signal();
        if (sig && !r->signo) r->signo = sig;
        double t = kvb_sweep_now_s();
        if (!t_stop && (r->signo || t - t0 > limit_s)) {
            r->timed_out = !r->signo;
            kill(-pid, SIGTERM);
            t_stop = t;
        } else if (t_stop && t - t_stop > 10)
            kill(-pid, SIGKILL);
    }
    drain(&rd, r, log_fd); /* what it wrote last; a grandchild holding the pipe is not waited for */
    if (rd >= 0) close(rd);
    r->code = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The cause a child's output gives: its last "kvbench: " line (a usage
 * error ends with a pointer to help, a failed run with a table), else its
 * last line. */
void kvb_sweep_last_line(const char *tail, char *out, size_t n)
{
    const char *why = NULL;
    for (const char *l = tail; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, "kvbench: ", 9) == 0) why = l + 9;
    if (why) {
        const char *e = strchr(why, '\n');
        snprintf(out, n, "%.*s", (int)(e ? e - why : (long)strlen(why)), why);
        return;
    }
    size_t len = strlen(tail);
    while (len && (tail[len - 1] == '\n' || tail[len - 1] == '\r' || tail[len - 1] == ' ')) len--;
    size_t b = len;
    while (b && tail[b - 1] != '\n') b--;
    snprintf(out, n, "%.*s", (int)(len - b), tail + b);
}
