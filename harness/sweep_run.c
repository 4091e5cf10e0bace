/* sweep_run.c: running a sweep's points (see sweep.h): each point's status
 * file, sweep.csv rebuilt after each, machine.txt and the description of each
 * node that ran a point (nodes/<host>.txt), the dry run, and the loop that
 * runs what is not yet done. */
#define _GNU_SOURCE /* flock, strsignal */
#include "sweep.h"
#include "sweep_int.h"
#include "../base/afile.h"
#include "../base/columns.h"
#include "../base/json.h"
#include "../base/textio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The status of a finished decode point: the worst of its points' in its
 * summary.json: skipped (nothing ran), cut short, ok. */
static const char *run_status(const char *point_dir)
{
    char path[2400], msg[512];
    snprintf(path, sizeof path, "%s/summary.json", point_dir);
    int err;
    cJSON *sum = kvb_json_load(path, &err, msg, sizeof msg);
    const char *st = KVB_STATUS_NAME_OK;
    int any_ok = 0, skipped = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, kvb_json_at(sum, KVB_KEY_POINTS))
    {
        const char *v = kvb_json_str_at(p, KVB_KEY_STATUS);
        if (!v) continue;
        if (strcmp(v, KVB_STATUS_NAME_CUT_SHORT) == 0) st = KVB_STATUS_NAME_CUT_SHORT;
        skipped |= strcmp(v, KVB_STATUS_NAME_SKIPPED) == 0;
        any_ok |= strcmp(v, KVB_STATUS_NAME_OK) == 0 || strcmp(v, KVB_STATUS_NAME_CUT_SHORT) == 0;
    }
    cJSON_Delete(sum);
    return skipped && !any_ok ? KVB_STATUS_NAME_SKIPPED : st;
}

/* A point's status lives in points/<id>.status, so points run as separate
 * jobs (--only) never rewrite each other's; sweep.csv is rebuilt from them.
 * "STATUS SECONDS\nhost: H\ncpu: C\ncores: N\nceilings: ...\nnode: FILE\n",
 * padded to STATUS_BYTES: the file is made (pending) before its point runs and
 * rewritten in place after, so a disk that fills during the point cannot keep
 * a finished point pending. host, cpu, cores and ceilings are the node's that
 * ran the point (a Slurm node, not the host that submitted the sweep); node
 * names its whole description: machine.txt or nodes/<host>.txt. */
enum { STATUS_BYTES = 512 };
typedef struct point_state {
    char status[16];
    double seconds;
    char host[72];
    char cpu[160];
    int cores;
    char ceilings[96];
    char node[96];
} point_state;

/* s without what would break a line of sweep.csv or the status file */
void kvb_sweep_clean_field(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == '"' || *s == '\\' || *s == 0x7f) *s = '?';
}

static void status_path(const char *dir, const kvb_sweep_point *p, char *path, size_t n)
{
    snprintf(path, n, "%s/points/%s.status", dir, p->id);
}

static void status_record(const point_state *ps, char *rec)
{
    memset(rec, ' ', STATUS_BYTES);
    int w = snprintf(rec, STATUS_BYTES,
                     "%s %.1f\nhost: %s\ncpu: %s\ncores: %d\nceilings: %s\nnode: %s\n", ps->status,
                     ps->seconds, ps->host, ps->cpu, ps->cores, ps->ceilings, ps->node);
    if (w >= 0 && w < STATUS_BYTES) rec[w] = ' ';
    rec[STATUS_BYTES - 1] = '\n';
}

/* The point's status file, pending, made whole before it runs. */
static int prepare_status(const char *dir, const kvb_sweep_point *p, char *msg, size_t msg_len)
{
    char path[2400], rec[STATUS_BYTES];
    point_state ps = {.status = "pending"};
    status_record(&ps, rec);
    status_path(dir, p, path, sizeof path);
    kvb_afile a;
    if (kvb_afile_open(&a, path, msg, msg_len)) return -1;
    fwrite(rec, 1, sizeof rec, a.f);
    return kvb_afile_commit(&a, msg, msg_len) ? -1 : 0;
}

static int save_status(const char *dir, const kvb_sweep_point *p, const point_state *ps, char *msg,
                       size_t msg_len)
{
    char path[2400], rec[STATUS_BYTES];
    status_record(ps, rec);
    status_path(dir, p, path, sizeof path);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t w = fd >= 0 ? pwrite(fd, rec, sizeof rec, 0) : -1;
    int err = fd < 0 || w < 0 ? errno : w != (ssize_t)sizeof rec ? ENOSPC : 0;
    if (fd >= 0 && close(fd) != 0 && !err) err = errno;
    if (err) {
        snprintf(msg, msg_len, "cannot record point %s as %s in '%s': %s", p->id, ps->status, path,
                 strerror(err));
        return -1;
    }
    return 0;
}

static void load_status(const char *dir, const kvb_sweep_point *p, point_state *ps)
{
    char path[2400];
    status_path(dir, p, path, sizeof path);
    memset(ps, 0, sizeof *ps);
    snprintf(ps->status, sizeof ps->status, "pending");
    char *text = kvb_slurp(path);
    if (!text) return;
    if (sscanf(text, "%15s %lf", ps->status, &ps->seconds) != 2) {
        snprintf(ps->status, sizeof ps->status, "pending");
        ps->seconds = 0;
    }
    const char *h = strstr(text, "\nhost: "), *c = strstr(text, "\ncpu: ");
    const char *k = strstr(text, "\ncores: "), *l = strstr(text, "\nceilings: ");
    const char *nd = strstr(text, "\nnode: ");
    if (h) sscanf(h + 7, "%71[^\n]", ps->host);
    if (c) sscanf(c + 6, "%159[^\n]", ps->cpu);
    if (k) sscanf(k + 8, "%d", &ps->cores);
    if (l) sscanf(l + 11, "%95[^\n]", ps->ceilings);
    if (nd) sscanf(nd + 7, "%95[^\n]", ps->node);
    for (char *f[] = {ps->host, ps->cpu, ps->ceilings, ps->node}, **q = f; q < f + 4; q++) {
        size_t n = strlen(*q);
        while (n && (*q)[n - 1] == ' ') (*q)[--n] = 0;
        kvb_sweep_clean_field(*q);
    }
    free(text);
}

static int write_index(const char *dir, const kvb_sweep_point *pts, int n, char *msg,
                       size_t msg_len)
{
    char path[2400];
    snprintf(path, sizeof path, "%s/sweep.csv", dir);
    kvb_afile a;
    if (kvb_afile_open(&a, path, msg, msg_len)) return -1;
    FILE *f = a.f;
    fprintf(f, KVB_SWEEP_HEAD ",cores,ceilings,node\n");
    for (int i = 0; i < n; i++) {
        point_state ps;
        load_status(dir, &pts[i], &ps);
        fprintf(f, "%s,%s,%s,%.1f,%g,\"kvbench", pts[i].id, pts[i].kind, ps.status, ps.seconds,
                pts[i].budget_s);
        for (int k = 0; k < pts[i].argc; k++) {
            fputc(' ', f);
            for (const char *c = pts[i].argv[k]; *c; c++)
                fputc(*c == '"' || *c == '\n' ? '?' : *c, f);
        }
        fprintf(f, "\",\"%s\",\"%s\",%d,\"%s\",\"%s\"\n", ps.host, ps.cpu, ps.cores, ps.ceilings,
                ps.node);
    }
    return kvb_afile_commit(&a, msg, msg_len) ? -1 : 0;
}

static int is_done(const char *status)
{
    return strcmp(status, "ok") == 0 || strcmp(status, "cut_short") == 0 ||
           strcmp(status, "timed_out") == 0 || strcmp(status, "skipped") == 0;
}

static void fmt_time(double s, char *buf, size_t n)
{
    int t = (int)(s + 0.5);
    snprintf(buf, n, "%d:%02d", t / 60, t % 60);
}

/* This host's name as one plain word (it names nodes/<host>.txt): anything but letters, digits,
 * '.', '-' and '_' becomes '_' */
static void own_host(char *host, size_t n)
{
    char h[256] = "unknown";
    gethostname(h, sizeof h - 1);
    h[sizeof h - 1] = 0;
    snprintf(host, n, "%s", h);
    for (char *c = host; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '-' || *c == '_'))
            *c = '_';
    if (host[0] == '.' || host[0] == '-') host[0] = '_';
}

/* `exe info` on this host, written whole to path under a host and date line. Returns 0, -1
 * when it could not be written (msg), or the signal number that interrupted it. */
static int describe_to(const char *exe, const char *path, int quiet, char *msg, size_t msg_len)
{
    char host[256] = "unknown", date[64];
    char *argv[] = {"info", NULL};
    if (!quiet) fprintf(stderr, "kvbench: describing the machine (kvbench info)...\n");
    child_run cr = {.capture = 1};
    kvb_sweep_run_child(exe, argv, -1, 120, &cr);
    if (cr.signo) {
        free(cr.out);
        return cr.signo;
    }
    gethostname(host, sizeof host - 1);
    time_t t = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&t));
    kvb_afile a;
    int err = kvb_afile_open(&a, path, msg, msg_len);
    if (!err) {
        fprintf(a.f, "host: %s\ndate: %s\n", host, date);
        if (cr.code != 0)
            fprintf(a.f, "note: kvbench info failed (exit %d): no ceilings\n", cr.code);
        if (cr.out) fputs(cr.out, a.f);
        err = kvb_afile_commit(&a, msg, msg_len);
    }
    free(cr.out);
    return err ? -1 : 0;
}

int kvb_sweep_host_of(const char *file, char *host, size_t n)
{
    char *m = kvb_slurp(file);
    if (!m) return -1;
    int found = 0;
    for (const char *l = m; l && *l && !found; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, "host:", 5) == 0) {
            const char *v = l + 5, *e = strchr(v, '\n');
            while (*v == ' ' || *v == '\t') v++;
            size_t len = e ? (size_t)(e - v) : strlen(v);
            while (len && (v[len - 1] == ' ' || v[len - 1] == '\r' || v[len - 1] == '\t')) len--;
            snprintf(host, n, "%.*s", (int)len, v);
            if (len >= n) host[n - 2] = '~'; /* too long to be plain: merge refuses it */
            found = 1;
        }
    free(m);
    return found ? 0 : -1;
}

/* The first node description under dir/nodes (by name), for a machine.txt that no host wrote:
 * a sweep whose points all ran as jobs on other nodes. 0 with its name in rel, -1 when none. */
static int first_node(const char *dir, char *rel, size_t n)
{
    char path[2400];
    snprintf(path, sizeof path, "%s/nodes", dir);
    DIR *d = opendir(path);
    if (!d) return -1;
    rel[0] = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 5 || strcmp(e->d_name + len - 4, ".txt") != 0) continue;
        if (!rel[0] || strcmp(e->d_name, rel + 6) < 0) snprintf(rel, n, "nodes/%s", e->d_name);
    }
    closedir(d);
    return rel[0] ? 0 : -1;
}

int kvb_sweep_describe(const char *exe, const char *dir, int quiet, char *msg, size_t msg_len)
{
    char path[2400], rel[400], from[2500];
    snprintf(path, sizeof path, "%s/machine.txt", dir);
    if (kvb_sweep_exists(path)) return 0;
    if (first_node(dir, rel, sizeof rel) == 0) {
        /* the points ran elsewhere (Slurm nodes): this host, collecting, measured nothing; the
         * first node's description stands for the sweep, each point names its own */
        snprintf(from, sizeof from, "%s/%s", dir, rel);
        char *text = kvb_slurp(from);
        kvb_afile a;
        int err = !text || kvb_afile_open(&a, path, msg, msg_len);
        if (!text) snprintf(msg, msg_len, "cannot read '%s': %s", from, strerror(errno));
        if (!err) {
            fputs(text, a.f);
            fprintf(a.f,
                    "note: the points ran as jobs; this is %s, each point's node is in "
                    "sweep.csv's node column\n",
                    rel);
            err = kvb_afile_commit(&a, msg, msg_len);
        }
        free(text);
        return err ? -1 : 0;
    }
    return describe_to(exe, path, quiet, msg, msg_len);
}

/* The description of the node running this process, named in rel: machine.txt when it
 * describes this host, else nodes/<host>.txt, measured once per node: the first point there
 * runs `exe info` holding nodes/<host>.lock, and a second task on that node waits for it
 * rather than measuring beside it. 0, -1 (msg), or the signal number that interrupted it. */
static int describe_node(const char *exe, const char *dir, int quiet, char *rel, size_t rel_n,
                         char *msg, size_t msg_len)
{
    char host[128], mhost[256] = "", path[2400], lock[2400];
    own_host(host, sizeof host);
    snprintf(path, sizeof path, "%s/machine.txt", dir);
    if (kvb_sweep_host_of(path, mhost, sizeof mhost) == 0 && strcmp(mhost, host) == 0) {
        snprintf(rel, rel_n, "machine.txt");
        return 0;
    }
    snprintf(rel, rel_n, "nodes/%s.txt", host);
    snprintf(path, sizeof path, "%s/nodes", dir);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        snprintf(msg, msg_len, "cannot create '%s': %s", path, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    if (kvb_sweep_exists(path)) return 0;
    snprintf(lock, sizeof lock, "%s/nodes/%s.lock", dir, host);
    int lk = open(lock, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (lk < 0) {
        snprintf(msg, msg_len, "cannot open '%s': %s", lock, strerror(errno));
        return -1;
    }
    while (flock(lk, LOCK_EX) != 0 && errno == EINTR) {
    }
    int r = kvb_sweep_exists(path) ? 0 : describe_to(exe, path, quiet, msg, msg_len);
    close(lk);
    return r;
}

/* The ceilings and core count a description gives (kvbench info's lines), for the point's
 * record: "read 7.3 GB/s x1, 6.4 GB/s x2; sgemm 10.6 GFLOP/s" over the large array. */
static void node_fields(const char *dir, point_state *ps)
{
    char path[2400];
    snprintf(path, sizeof path, "%s/%s", dir, ps->node);
    char *text = kvb_slurp(path);
    size_t k = 0;
    ps->ceilings[0] = 0;
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        double v;
        int th, mib, cores;
        if (sscanf(l, "online cores: %d", &cores) == 1 && cores > 0) ps->cores = cores;
        if (sscanf(l, "read bandwidth: %lf GB/s %d thread%*[s] over a %d MiB", &v, &th, &mib) ==
                3 ||
            sscanf(l, "read bandwidth: %lf GB/s %d thread over a %d MiB", &v, &th, &mib) == 3) {
            if (mib >= 256 && k < sizeof ps->ceilings)
                k += (size_t)snprintf(ps->ceilings + k, sizeof ps->ceilings - k, "%s%.1f GB/s x%d",
                                      k ? ", " : "read ", v, th);
        } else if (sscanf(l, "sgemm: %lf GFLOP/s", &v) == 1 && k < sizeof ps->ceilings)
            k += (size_t)snprintf(ps->ceilings + k, sizeof ps->ceilings - k, "%ssgemm %.1f GFLOP/s",
                                  k ? "; " : "", v);
    }
    free(text);
}

kvb_status kvb_sweep_dry_run(const kvb_sweep_point *pts, int n, const char *exe, char *msg,
                             size_t msg_len)
{
    for (int i = 0; i < n; i++) {
        char *argv[KVB_SWEEP_MAX_ARGS + 1];
        int a = 0;
        for (; a < pts[i].argc && a < KVB_SWEEP_MAX_ARGS - 1; a++) argv[a] = pts[i].argv[a];
        argv[a++] = "--dry-run";
        argv[a] = NULL;
        child_run cr = {0};
        kvb_sweep_run_child(exe, argv, -1, 60, &cr);
        if (cr.signo) {
            snprintf(msg, msg_len, "interrupted (%s) while checking point %s", strsignal(cr.signo),
                     pts[i].id);
            return KVB_STATUS_IO;
        }
        if (cr.code == 0 || cr.code == 3)
            continue; /* 3: nothing it can measure; the point will be skipped */
        char why[400];
        kvb_sweep_last_line(cr.tail, why, sizeof why);
        snprintf(msg, msg_len, "point %s: its command refuses it (exit %d): %s", pts[i].id, cr.code,
                 why[0] ? why : "no message");
        return cr.code == 2 ? KVB_STATUS_INVALID_ARG : KVB_STATUS_IO;
    }
    return KVB_STATUS_OK;
}

/* This process's host and CPU, for points whose child wrote no meta.json. */
static void own_machine(point_state *ps)
{
    char host[256] = "unknown";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    snprintf(ps->host, sizeof ps->host, "%s", host);
    kvb_cpu_model(ps->cpu, sizeof ps->cpu);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    ps->cores = n > 0 ? (int)n : 0;
}

/* The host and CPU a point ran on: its own meta.json's record where it wrote
 * one (the node that ran it, under --emit-jobs too), else this process's. */
static void point_machine(const char *fin, const point_state *own, point_state *ps)
{
    char path[2400], msg[512];
    snprintf(path, sizeof path, "%s/meta.json", fin);
    int err;
    cJSON *meta = kvb_json_load(path, &err, msg, sizeof msg);
    kvb_json_copy_at(meta, KVB_PATH_HOST, ps->host, sizeof ps->host);
    kvb_json_copy_at(meta, KVB_PATH_CPU_MODEL, ps->cpu, sizeof ps->cpu);
    cJSON_Delete(meta);
    if (!ps->host[0]) snprintf(ps->host, sizeof ps->host, "%s", own->host);
    if (!ps->cpu[0]) snprintf(ps->cpu, sizeof ps->cpu, "%s", own->cpu);
    ps->cores = own->cores;
    kvb_sweep_clean_field(ps->host);
    kvb_sweep_clean_field(ps->cpu);
}

kvb_status kvb_sweep_run(const kvb_sweep *s, const char *exe, const char *dir, int quiet,
                         const char *only, kvb_sweep_tally *t, char *msg, size_t msg_len)
{
    char path[2400], log[2500], fin[2400], why[512],
        scratch[512]; /* scratch: a message not shown */
    memset(t, 0, sizeof *t);
    kvb_sweep_point *pts;
    int n = kvb_sweep_expand(s, dir, &pts, msg, msg_len);
    if (n < 0) return KVB_STATUS_INVALID_ARG;
    int found = !only;
    for (int i = 0; only && i < n; i++) found |= strcmp(pts[i].id, only) == 0;
    if (!found) {
        snprintf(msg, msg_len, "--only '%s': no such point in this sweep (see %s/sweep.csv)", only,
                 dir);
        free(pts);
        return KVB_STATUS_INVALID_ARG;
    }
    point_state *ps = calloc((size_t)n, sizeof *ps), own;
    if (!ps) {
        free(pts);
        snprintf(msg, msg_len, "out of memory");
        return KVB_STATUS_NO_MEMORY;
    }
    own_machine(&own);
    kvb_status st = KVB_STATUS_OK;
    snprintf(path, sizeof path, "%s/points", dir);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        snprintf(msg, msg_len, "cannot create '%s': %s", path, strerror(errno));
        st = KVB_STATUS_IO;
        goto out;
    }
    /* the machine once for a sweep run here; a job (--only) describes the node it runs on,
     * once per node, when it runs a point (it may find nothing left to run) */
    int d = only ? 0 : kvb_sweep_describe(exe, dir, quiet, msg, msg_len);
    if (d > 0) {
        t->signo = d;
        goto out;
    }
    if (d < 0) {
        st = KVB_STATUS_IO;
        goto out;
    }
    int tty = !quiet && isatty(STDERR_FILENO), done = 0, todo = 0;
    double spent = 0;
    for (int i = 0; i < n; i++) {
        load_status(dir, &pts[i], &ps[i]);
        snprintf(fin, sizeof fin, "%s/points/%s", dir, pts[i].id);
        if (!(kvb_sweep_exists(fin) && is_done(ps[i].status)) &&
            (!only || strcmp(only, pts[i].id) == 0))
            todo++;
    }
    if (!only && todo < n && !quiet)
        fprintf(stderr, "kvbench: resuming: %d of %d points already done\n", n - todo, n);
    double t_start = kvb_sweep_now_s();
    for (int i = 0; i < n && st == KVB_STATUS_OK; i++) {
        kvb_sweep_point *p = &pts[i];
        if (only && strcmp(only, p->id) != 0) continue;
        snprintf(fin, sizeof fin, "%s/points/%s", dir, p->id);
        if (kvb_sweep_exists(fin) && is_done(ps[i].status)) continue;
        if ((t->signo = kvb_sweep_take_signal())) break;
        /* one job per point: an flock on the point's lock file, inherited by its
         * child (no close-on-exec), so it is held until both are gone: a requeued
         * or duplicate job, or a --resume while jobs run, leaves the point alone */
        snprintf(path, sizeof path, "%s.lock", fin);
        int lk = open(path, O_CREAT | O_RDWR, 0644);
        if (lk < 0 || flock(lk, LOCK_EX | LOCK_NB) != 0) {
            if (lk >= 0) close(lk);
            if (!quiet)
                fprintf(stderr, "kvbench: %s is being run by another job; left to it\n", p->id);
            continue;
        }
        load_status(dir, p, &ps[i]); /* it may have finished meanwhile */
        if (kvb_sweep_exists(fin) && is_done(ps[i].status)) {
            close(lk);
            continue;
        }
        char node[96];
        int dn = describe_node(exe, dir, quiet, node, sizeof node, msg, msg_len);
        if (dn != 0) {
            close(lk);
            if (dn > 0)
                t->signo = dn;
            else
                st = KVB_STATUS_IO;
            break;
        }
        /* leftovers of an interrupted attempt */
        kvb_rmtree(fin);
        kvb_partial_name(fin, path, sizeof path);
        kvb_rmtree(path);
        if (prepare_status(dir, p, msg, msg_len) != 0) {
            st = KVB_STATUS_IO;
            close(lk);
            break;
        }
        int own_dir = strcmp(p->kind, "run") != 0 && strcmp(p->kind, "quality") != 0;
        if (own_dir && mkdir(path, 0755) != 0) {
            snprintf(msg, msg_len, "cannot create '%s': %s", path, strerror(errno));
            st = KVB_STATUS_IO;
            close(lk);
            break;
        }
        snprintf(log, sizeof log, "%s.log", fin);
        int log_fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (log_fd < 0) {
            snprintf(msg, msg_len, "cannot write '%s': %s", log, strerror(errno));
            st = KVB_STATUS_IO;
            kvb_rmtree(path);
            close(lk);
            break;
        }
        if (tty) {
            char el[16], eta[16] = "?";
            fmt_time(kvb_sweep_now_s() - t_start, el, sizeof el);
            if (done) fmt_time(spent / done * (todo - done), eta, sizeof eta);
            fprintf(stderr, "\r\033[K[%d/%d] %s  elapsed %s  ETA %s", done + 1, todo, p->id, el,
                    eta);
        } else if (!quiet)
            fprintf(stderr, "kvbench: [%d/%d] %s\n", done + 1, todo, p->id);
        double t0 = kvb_sweep_now_s();
        child_run cr = {0};
        kvb_sweep_run_child(exe, p->argv, log_fd, 2 * p->budget_s + 60, &cr);
        if (close(log_fd) != 0 && !cr.log_errno) cr.log_errno = errno;
        ps[i].seconds = kvb_sweep_now_s() - t0;
        spent += ps[i].seconds;
        done++;
        if (tty) fputc('\n', stderr);
        if (cr.signo) {
            /* interrupted: its child is gone (run_child reaped it); the point stays pending */
            t->signo = cr.signo;
            kvb_rmtree(path);
            close(lk);
            break;
        }
        char last[320];
        kvb_sweep_last_line(cr.tail, last, sizeof last);
        if (cr.code == 0 || cr.code == 3) {
            /* 3: the child measured nothing (every case unsupported): skipped, kept as it wrote it
             */
            if (own_dir) kvb_partial_publish(path, fin, scratch, sizeof scratch);
            if (!kvb_sweep_exists(fin)) mkdir(fin, 0755);
            snprintf(ps[i].status, sizeof ps[i].status, "%s",
                     cr.code == 3 ? "skipped"
                     : own_dir    ? "ok"
                                  : run_status(fin));
            if (cr.code == 3 && !quiet)
                fprintf(stderr, "kvbench: %s measured nothing: marked skipped (%s)\n", p->id, last);
            char moved[2500];
            snprintf(moved, sizeof moved, "%s/log.txt", fin);
            if (!cr.log_errno) rename(log, moved);
        } else if (cr.timed_out) {
            /* stopped at its limit: whatever it wrote stays, marked */
            if (kvb_sweep_exists(path))
                kvb_partial_publish(path, fin, scratch, sizeof scratch);
            else
                mkdir(fin, 0755);
            snprintf(ps[i].status, sizeof ps[i].status, "timed_out");
            fprintf(stderr, "kvbench: %s stopped at %.0f s (budget %g s): marked timed_out\n",
                    p->id, ps[i].seconds, p->budget_s);
        } else {
            /* what a failed point wrote (a run on a full disk keeps its measurements in
             * its .partial directory) stays, under the point's name, marked failed */
            if (kvb_sweep_exists(path)) kvb_partial_publish(path, fin, scratch, sizeof scratch);
            snprintf(ps[i].status, sizeof ps[i].status, "failed");
            fprintf(stderr, "kvbench: %s failed (exit %d): %s\n  its output: %s\n", p->id, cr.code,
                    last[0] ? last : "(no output)", log);
        }
        if (cr.log_errno) {
            /* the log is incomplete (a full disk, say): its end is printed here instead, and the
             * sweep stops, since the next point's results would not fit either */
            snprintf(msg, msg_len, "cannot write %s's log '%s': %s; the end of its output:\n%s",
                     p->id, log, strerror(cr.log_errno), cr.tail);
            st = KVB_STATUS_IO;
        }
        point_machine(fin, &own, &ps[i]);
        snprintf(ps[i].node, sizeof ps[i].node, "%s", node);
        node_fields(dir, &ps[i]);
        if (save_status(dir, p, &ps[i], st == KVB_STATUS_OK ? msg : why,
                        st == KVB_STATUS_OK ? msg_len : sizeof why)) {
            if (st != KVB_STATUS_OK) fprintf(stderr, "kvbench: %s\n", why);
            st = KVB_STATUS_IO;
        }
        if (st == KVB_STATUS_OK && write_index(dir, pts, n, msg, msg_len) != 0) st = KVB_STATUS_IO;
        close(lk); /* drops the lock: the child is gone */
    }
    if (st == KVB_STATUS_OK && write_index(dir, pts, n, msg, msg_len) != 0) st = KVB_STATUS_IO;
    if (st != KVB_STATUS_OK)
        write_index(dir, pts, n, why, sizeof why); /* what can still be recorded */
out:
    for (int i = 0; i < n; i++) {
        if (only && strcmp(only, pts[i].id) != 0) continue;
        load_status(dir, &pts[i], &ps[i]);
        t->total++;
        const char *v = ps[i].status;
        if (strcmp(v, "ok") == 0)
            t->ok++;
        else if (strcmp(v, "cut_short") == 0)
            t->cut_short++;
        else if (strcmp(v, "skipped") == 0)
            t->skipped++;
        else if (strcmp(v, "timed_out") == 0)
            t->timed_out++;
        else if (strcmp(v, "failed") == 0)
            t->failed++;
        else
            t->missing++;
    }
    free(ps);
    free(pts);
    return st;
}
