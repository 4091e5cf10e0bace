/* sweep_ab.c: kvbench ab, one commit against another in one run (sweep.h).
 * A revision is built from its own detached git worktree into its own build
 * directory (cached by commit: a commit's binary never changes), then the
 * sweep's points run with the two binaries back to back, point by point, the
 * side that goes first alternating, so whatever the machine does meanwhile
 * (a neighbour's job, a frequency change) falls on both sides alike. Each
 * side's rounds are kept as runs/<r>/, the layout compare pools. git and make
 * run as child processes through the sweep's own runner (sweep_child.c). */
#define _GNU_SOURCE
#include "sweep.h"
#include "sweep_int.h"
#include "../analysis/compare.h"
#include "../base/afile.h"
#include "../base/json.h"
#include "../base/textio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* mkdir -p: 0, or -1 with msg */
static int mkdirs(const char *path, char *msg, size_t msg_len)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", path);
    for (char *c = p + 1;; c++) {
        char was = *c;
        if (was != '/' && was != 0) continue;
        *c = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            snprintf(msg, msg_len, "cannot create '%s': %s", p, strerror(errno));
            return -1;
        }
        *c = was;
        if (!was) return 0;
    }
}

/* name's full path on PATH (execv takes no search) */
static int on_path(const char *name, char *out, size_t n)
{
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path; *p;) {
        const char *e = strchr(p, ':');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len && len < PATH_MAX) {
            snprintf(out, n, "%.*s/%s", (int)len, p, name);
            if (access(out, X_OK) == 0) return 0;
        }
        p += len + (e != NULL);
    }
    return -1;
}

/* git ARGS in repo, its output captured (trailing newlines cut): 0 when it exits 0 */
static int git(const char *repo, char *out, size_t n, char **args)
{
    char exe[PATH_MAX], *argv[KVB_SWEEP_MAX_ARGS];
    if (on_path("git", exe, sizeof exe) != 0) {
        snprintf(out, n, "git is not on PATH");
        return -1;
    }
    int a = 0;
    argv[a++] = "-C";
    argv[a++] = (char *)repo;
    for (int i = 0; args[i] && a < KVB_SWEEP_MAX_ARGS - 1; i++) argv[a++] = args[i];
    argv[a] = NULL;
    child_run r = {.capture = 1};
    kvb_sweep_run_child(exe, argv, -1, 600, &r);
    size_t len = r.out ? r.out_len : 0;
    while (len && (r.out[len - 1] == '\n' || r.out[len - 1] == '\r')) len--;
    snprintf(out, n, "%.*s", (int)len, r.out ? r.out : "");
    free(r.out);
    return r.code == 0 ? 0 : -1;
}

kvb_status kvb_ab_repo(char *top, size_t n, char *msg, size_t msg_len)
{
    char out[PATH_MAX + 256];
    if (git(".", out, sizeof out, (char *[]){"rev-parse", "--show-toplevel", NULL}) != 0) {
        snprintf(msg, msg_len, "ab builds revisions from the git checkout it runs in: %s",
                 out[0] ? out : "git found none here");
        return KVB_STATUS_INVALID_ARG;
    }
    snprintf(top, n, "%s", out);
    return KVB_STATUS_OK;
}

kvb_status kvb_ab_resolve(const char *repo, const char *rev, char *sha, size_t n, char *msg,
                          size_t msg_len)
{
    char spec[300], out[512];
    if (!rev[0] || rev[0] == '-' || strlen(rev) > 200) {
        snprintf(msg, msg_len, "revision '%s': expected a commit (a hash, HEAD~1, a branch)", rev);
        return KVB_STATUS_INVALID_ARG;
    }
    snprintf(spec, sizeof spec, "%s^{commit}", rev);
    if (git(repo, out, sizeof out, (char *[]){"rev-parse", "--verify", "--quiet", spec, NULL}) !=
            0 ||
        strlen(out) != 40) {
        snprintf(msg, msg_len, "revision '%s': not a commit of %s (git rev-parse --verify)", rev,
                 repo);
        return KVB_STATUS_INVALID_ARG;
    }
    snprintf(sha, n, "%s", out);
    return KVB_STATUS_OK;
}

kvb_status kvb_ab_build(const char *repo, const char *sha, const char *cache, int jobs, int quiet,
                        char *exe, size_t n, char *msg, size_t msg_len)
{
    char dir[PATH_MAX], src[PATH_MAX + 8], bdir[PATH_MAX + 8], log[PATH_MAX + 16],
        built[PATH_MAX + 16], lockp[PATH_MAX + 8], out[1024], make[PATH_MAX], target[PATH_MAX + 16],
        bflag[PATH_MAX + 16], jflag[32];
    if (mkdirs(cache, msg, msg_len) != 0) return KVB_STATUS_IO;
    char abs[PATH_MAX];
    if (!realpath(cache, abs)) {
        snprintf(msg, msg_len, "cannot resolve '%s': %s", cache, strerror(errno));
        return KVB_STATUS_IO;
    }
    snprintf(dir, sizeof dir, "%s/%.40s", abs, sha);
    snprintf(exe, n, "%s/kvbench", dir);
    if (access(exe, X_OK) == 0) return KVB_STATUS_OK; /* a commit's binary does not change */
    if (mkdirs(dir, msg, msg_len) != 0) return KVB_STATUS_IO;
    /* one build per commit at a time: a second ab waits, then finds the binary */
    snprintf(lockp, sizeof lockp, "%s/lock", dir);
    int lk = open(lockp, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (lk < 0) {
        snprintf(msg, msg_len, "cannot open '%s': %s", lockp, strerror(errno));
        return KVB_STATUS_IO;
    }
    while (flock(lk, LOCK_EX) != 0 && errno == EINTR) {
    }
    kvb_status st = KVB_STATUS_OK;
    if (access(exe, X_OK) == 0) goto done;
    snprintf(src, sizeof src, "%s/src", dir);
    snprintf(bdir, sizeof bdir, "%s/build", dir);
    snprintf(log, sizeof log, "%s/build.log", dir);
    /* a worktree left by an interrupted build goes first */
    git(repo, out, sizeof out, (char *[]){"worktree", "remove", "--force", src, NULL});
    kvb_rmtree(src);
    git(repo, out, sizeof out, (char *[]){"worktree", "prune", NULL});
    if (!quiet) fprintf(stderr, "kvbench: ab: building %.12s in %s\n", sha, dir);
    if (git(repo, out, sizeof out,
            (char *[]){"worktree", "add", "--detach", "--force", src, (char *)sha, NULL}) != 0) {
        snprintf(msg, msg_len, "git worktree add %s %.12s failed: %s", src, sha, out);
        st = KVB_STATUS_IO;
        goto done;
    }
    if (on_path("make", make, sizeof make) != 0) {
        snprintf(msg, msg_len, "make is not on PATH");
        st = KVB_STATUS_IO;
        goto clean;
    }
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(msg, msg_len, "cannot write '%s': %s", log, strerror(errno));
        st = KVB_STATUS_IO;
        goto clean;
    }
    snprintf(bflag, sizeof bflag, "BUILD=%s", bdir);
    snprintf(target, sizeof target, "%s/kvbench", bdir);
    snprintf(jflag, sizeof jflag, "-j%d", jobs);
    child_run r = {0};
    kvb_sweep_run_child(make, (char *[]){"-C", src, jflag, bflag, target, NULL}, fd, 3600, &r);
    close(fd);
    if (r.signo || r.code != 0) {
        char last[400];
        kvb_sweep_last_line(r.tail, last, sizeof last);
        snprintf(msg, msg_len, "building %.12s failed%s: %s (the whole output: %s)", sha,
                 r.signo ? " (interrupted)" : "", last, log);
        st = KVB_STATUS_IO;
        goto clean;
    }
    /* the binary appears under its name only when whole */
    snprintf(built, sizeof built, "%s.tmp", exe);
    if (rename(target, built) != 0 || rename(built, exe) != 0) {
        snprintf(msg, msg_len, "cannot move '%s' to '%s': %s", target, exe, strerror(errno));
        st = KVB_STATUS_IO;
    }
clean:
    git(repo, out, sizeof out, (char *[]){"worktree", "remove", "--force", src, NULL});
    kvb_rmtree(src);
    git(repo, out, sizeof out, (char *[]){"worktree", "prune", NULL});
done:
    close(lk);
    return st;
}

/* a point's status in a round directory, as the sweep recorded it */
static void point_status(const char *round, const char *id, char *out, size_t n)
{
    char path[2400];
    snprintf(path, sizeof path, "%s/points/%s.status", round, id);
    char *text = kvb_slurp(path);
    snprintf(out, n, "%s", "missing");
    if (text) {
        size_t len = strcspn(text, ",\n ");
        snprintf(out, n, "%.*s", (int)len, text);
    }
    free(text);
}

kvb_status kvb_ab_run(const kvb_sweep *s, const char *const exe[2], const char *dir, int rounds,
                      const char *const *only, int quiet, kvb_ab_tally *t, char *msg,
                      size_t msg_len)
{
    static const char side_name[2] = {'a', 'b'};
    memset(t, 0, sizeof *t);
    char round[2400], path[2600], first[2400];
    kvb_sweep_point *pts;
    int n = kvb_sweep_expand(s, dir, &pts, msg, msg_len);
    if (n < 0) return KVB_STATUS_INVALID_ARG;
    if (only) { /* the listed points, in the sweep's order */
        int kept = 0;
        for (int i = 0; i < n; i++) {
            int want = 0;
            for (int j = 0; only[j] && !want; j++) want = strcmp(only[j], pts[i].id) == 0;
            if (want) pts[kept++] = pts[i];
        }
        n = kept;
    }
    kvb_status st = KVB_STATUS_OK;
    /* every round's directory, its definition and one description of the machine: the
     * same file in all of them, so compare sees both sides on one machine */
    for (int r = 1; r <= rounds && st == KVB_STATUS_OK; r++)
        for (int k = 0; k < 2 && st == KVB_STATUS_OK; k++) {
            snprintf(round, sizeof round, "%s/%c/runs/%d", dir, side_name[k], r);
            snprintf(path, sizeof path, "%s/sweep.def", round);
            if (mkdirs(round, msg, msg_len) != 0 ||
                kvb_sweep_save(s, path, msg, msg_len) != KVB_STATUS_OK)
                st = KVB_STATUS_IO;
        }
    snprintf(first, sizeof first, "%s/b/runs/1", dir);
    int d = st == KVB_STATUS_OK ? kvb_sweep_describe(exe[1], first, quiet, msg, msg_len) : 0;
    if (d > 0) t->signo = d;
    if (d < 0) st = KVB_STATUS_IO;
    snprintf(path, sizeof path, "%s/machine.txt", first);
    char *desc = st == KVB_STATUS_OK && !t->signo ? kvb_slurp(path) : NULL;
    for (int r = 1; desc && r <= rounds && st == KVB_STATUS_OK; r++)
        for (int k = 0; k < 2 && st == KVB_STATUS_OK; k++) {
            if (r == 1 && k == 1) continue;
            kvb_afile a;
            snprintf(path, sizeof path, "%s/%c/runs/%d/machine.txt", dir, side_name[k], r);
            if (kvb_afile_open(&a, path, msg, msg_len) != 0) {
                st = KVB_STATUS_IO;
                break;
            }
            fputs(desc, a.f);
            if (kvb_afile_commit(&a, msg, msg_len) != 0) st = KVB_STATUS_IO;
        }
    free(desc);
    snprintf(path, sizeof path, "%s/ab.csv", dir);
    FILE *csv = st == KVB_STATUS_OK && !t->signo ? fopen(path, "w") : NULL;
    if (st == KVB_STATUS_OK && !t->signo && !csv) {
        snprintf(msg, msg_len, "cannot write '%s': %s", path, strerror(errno));
        st = KVB_STATUS_IO;
    }
    if (csv) fprintf(csv, "round,point,side,order,status,seconds\n");
    for (int r = 1; csv && r <= rounds && st == KVB_STATUS_OK && !t->signo; r++) {
        for (int i = 0; i < n && st == KVB_STATUS_OK && !t->signo; i++) {
            /* a goes first in odd rounds at even points and the reverse: each side leads
             * half the time, at every point and in every round */
            int lead = (r + i) % 2 == 1 ? 0 : 1;
            double secs[2] = {0, 0};
            for (int o = 0; o < 2 && st == KVB_STATUS_OK; o++) {
                int k = lead ^ o;
                snprintf(round, sizeof round, "%s/%c/runs/%d", dir, side_name[k], r);
                kvb_sweep_tally pt;
                double t0 = kvb_sweep_now_s();
                st = kvb_sweep_run(s, exe[k], round, 1, pts[i].id, &pt, msg, msg_len);
                secs[k] = kvb_sweep_now_s() - t0;
                if (pt.signo) {
                    t->signo = pt.signo;
                    break;
                }
                char status[32];
                point_status(round, pts[i].id, status, sizeof status);
                t->runs++;
                if (strcmp(status, "ok") != 0 && strcmp(status, "cut_short") != 0 &&
                    strcmp(status, "skipped") != 0) {
                    if (!t->failed++)
                        snprintf(t->first_failed, sizeof t->first_failed,
                                 "%s of %c in round %d (%s)", pts[i].id, side_name[k], r, status);
                }
                fprintf(csv, "%d,%s,%c,%d,%s,%.3f\n", r, pts[i].id, side_name[k], o + 1, status,
                        secs[k]);
            }
            fflush(csv);
            if (!quiet && !t->signo)
                fprintf(stderr, "kvbench: ab: round %d/%d %-44s a %6.2f s  b %6.2f s  (%c first)\n",
                        r, rounds, pts[i].id, secs[0], secs[1], side_name[lead]);
        }
        if (!t->signo && st == KVB_STATUS_OK) t->rounds = r;
    }
    if (csv && fclose(csv) != 0 && st == KVB_STATUS_OK) {
        snprintf(msg, msg_len, "cannot write '%s/ab.csv': %s", dir, strerror(errno));
        st = KVB_STATUS_IO;
    }
    t->points = n;
    free(pts);
    return st;
}

int kvb_ab_judge(const char *exe, const char *dir, const char *gate, double alpha,
                 double min_change, int quiet)
{
    char a[2400], b[2400], md[2400], js[2400], al[32], mc[32];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    snprintf(md, sizeof md, "%s/compare.md", dir);
    snprintf(js, sizeof js, "%s/compare.json", dir);
    snprintf(al, sizeof al, "%.17g", alpha);
    snprintf(mc, sizeof mc, "%.17g", min_change);
    char *argv[] = {"compare",
                    a,
                    b,
                    "--gate",
                    (char *)gate,
                    "--alpha",
                    al,
                    "--min-change",
                    mc,
                    "--paired",
                    "--markdown",
                    md,
                    "--json",
                    js,
                    quiet ? "--quiet" : NULL,
                    NULL};
    fflush(stdout);
    child_run r = {0};
    kvb_sweep_run_child(exe, argv, STDOUT_FILENO, 600, &r);
    return r.code;
}

int kvb_ab_case_of(const char *case_name, const char *id)
{
    size_t len = strlen(id);
    if (!strncmp(case_name, id, len) && case_name[len] == ':') return 1;
    const char *c = strchr(case_name, ':'); /* a kind of node first, where several ran */
    return c && !strncmp(c + 1, id, len) && c[1 + len] == ':';
}

int kvb_ab_cases(const char *dir, int regressed_only, kvb_ab_case **out, int *missing, char *msg,
                 size_t msg_len)
{
    char path[2400];
    snprintf(path, sizeof path, "%s/compare.json", dir);
    int err = 0;
    *out = NULL;
    cJSON *doc = kvb_json_load(path, &err, msg, msg_len);
    if (!doc) return -1;
    const cJSON *cases = kvb_json_at(doc, "cases"), *c,
                *miss = kvb_json_at(doc, "missing_from_new");
    if (!cJSON_IsArray(cases)) {
        snprintf(msg, msg_len, "'%s' holds no \"cases\" array", path);
        cJSON_Delete(doc);
        return -1;
    }
    *missing = cJSON_IsNumber(miss) ? miss->valueint : -1;
    int n = 0;
    cJSON_ArrayForEach(c, cases)
    {
        const char *v = kvb_json_str_at(c, "verdict");
        if (!v || (regressed_only && strcmp(v, kvb_verdict_name(KVB_VERDICT_REGRESSED))))
            continue;
        kvb_ab_case *grown = realloc(*out, (size_t)(n + 1) * sizeof **out);
        if (!grown) {
            snprintf(msg, msg_len, "out of memory reading '%s'", path);
            n = -1;
            break;
        }
        *out = grown;
        kvb_ab_case *r = &grown[n++];
        kvb_json_copy_at(c, "case", r->name, sizeof r->name);
        kvb_json_copy_at(c, "kind", r->kind, sizeof r->kind);
        snprintf(r->verdict, sizeof r->verdict, "%s", v);
        const cJSON *p = kvb_json_at(c, "p");
        r->change = kvb_json_num_at(c, "change");
        r->p = cJSON_IsNumber(p) ? p->valuedouble : NAN;
    }
    cJSON_Delete(doc);
    if (n < 0) {
        free(*out);
        *out = NULL;
    }
    return n;
}
