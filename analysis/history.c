/* history.c: see history.h. Filing a result (its commit from meta.json, its
 * machine key from what compare reads, a copy under runs/<n>/, the index),
 * reading the index and a commit's pool; history_plot.c draws show's chart. */
#define _XOPEN_SOURCE 700
#include "history_int.h"
#include "../base/afile.h"
#include "../base/csv.h"
#include "../base/json.h"
#include "../base/probe.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int visible(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

/* What git (in the working directory's repository) knows of rev: its full hash, time and
 * subject into c; c->commit stays rev where git does not know it. */
static void git_describe(const char *rev, kvb_hist_commit *c)
{
    char spec[KVB_HIST_NAME_MAX + 16], out[512];
    snprintf(spec, sizeof spec, "%s^{commit}", rev);
    char *argv[] = {"git", "log", "-1", "--format=%H%x09%ct%x09%s", spec, "--", NULL};
    int missing;
    snprintf(c->commit, sizeof c->commit, "%s", rev);
    c->time[0] = c->subject[0] = 0;
    if (kvb_hist_run(argv, out, sizeof out, NULL, 0, &missing) != 0) return;
    char hash[KVB_HIST_NAME_MAX] = "";
    long long t = -1;
    int used = 0;
    if (sscanf(out, "%71[0-9a-f]\t%lld\t%n", hash, &t, &used) < 2 || t < 0) return;
    snprintf(c->commit, sizeof c->commit, "%s", hash);
    time_t tt = (time_t)t;
    struct tm tmv;
    gmtime_r(&tt, &tmv);
    strftime(c->time, sizeof c->time, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    snprintf(c->subject, sizeof c->subject, "%s", out + used);
    c->subject[strcspn(c->subject, "\r\n")] = 0;
}

void kvb_hist_short(const char *commit, char out[16])
{
    size_t n = strlen(commit);
    int hash = n >= 40 && strspn(commit, "0123456789abcdef") == n; /* SHA-1 or SHA-256 */
    snprintf(out, 16, "%.*s", hash ? 7 : 12, commit);
}

/* letters, digits, '.', '_', '-', not starting with '.' or '-': a folder name and a revision */
static int valid_name(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n < KVB_HIST_NAME_MAX && s[0] != '.' && s[0] != '-' &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* ---- the commit a result records ------------------------------------------------- */

typedef struct recorded {
    char commit[KVB_HIST_NAME_MAX], where[KVB_HIST_PATH];
    int dirty, clash;
    char other[KVB_HIST_NAME_MAX], other_where[KVB_HIST_PATH];
} recorded;

/* Every meta.json at most depth folders below dir: git.commit and git.dirty. */
static void scan_meta(const char *dir, int depth, recorded *r)
{
    char path[KVB_HIST_PATH];
    snprintf(path, sizeof path, "%s/meta.json", dir);
    int err;
    char why[600], c[KVB_HIST_NAME_MAX] = "";
    cJSON *meta = kvb_json_load(path, &err, why, sizeof why);
    if (meta) {
        kvb_json_copy_at(meta, "git.commit", c, sizeof c);
        const cJSON *d = kvb_json_at(meta, "git.dirty");
        if (c[0] && strcmp(c, "unknown") != 0) {
            if (!r->commit[0]) {
                snprintf(r->commit, sizeof r->commit, "%s", c);
                snprintf(r->where, sizeof r->where, "%s", path);
            } else if (strcmp(r->commit, c) != 0 && !r->clash++) {
                snprintf(r->other, sizeof r->other, "%s", c);
                snprintf(r->other_where, sizeof r->other_where, "%s", path);
            }
            r->dirty |= cJSON_IsTrue(d);
        }
        cJSON_Delete(meta);
    }
    if (depth == 0) return;
    struct dirent **e;
    int n = scandir(dir, &e, visible, alphasort);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, e[i]->d_name);
        if (strcmp(e[i]->d_name, "plots") != 0 && is_dir(path)) scan_meta(path, depth - 1, r);
        free(e[i]);
    }
    if (n >= 0) free(e);
}

/* The commit to file dir under: the recorded one, or the one given. */
static kvb_status commit_of(const char *dir, const char *given, kvb_hist_commit *c, char *msg,
                            size_t msg_len)
{
    recorded r;
    memset(&r, 0, sizeof r);
    scan_meta(dir, 4, &r);
    if (r.clash) {
        snprintf(msg, msg_len,
                 "'%s' holds results of two commits, %s ('%s') and %s ('%s'): "
                 "file each commit's results on their own",
                 dir, r.commit, r.where, r.other, r.other_where);
        return KVB_STATUS_INVALID_ARG;
    }
    /* a revision git knows becomes its hash; any other name is the folder's */
    int usable = given && given[0] != '-' && strlen(given) < KVB_HIST_NAME_MAX;
    if (usable) git_describe(given, c);
    if (given && (!usable || (!c->time[0] && !valid_name(given)))) {
        snprintf(msg, msg_len,
                 "--commit '%s' is not a usable commit name (allowed: a revision git knows, or "
                 "letters, digits, '.', '_', '-', at most %d, not starting with '.' or '-')",
                 given, KVB_HIST_NAME_MAX - 1);
        return KVB_STATUS_INVALID_ARG;
    }
    if (!given && !r.commit[0]) {
        snprintf(msg, msg_len,
                 "'%s' records no commit (no meta.json with git.commit): name it "
                 "with --commit REV",
                 dir);
        return KVB_STATUS_INVALID_ARG;
    }
    if (!given && r.dirty) {
        snprintf(msg, msg_len,
                 "'%s' was built from %s with uncommitted changes ('%s'): not that "
                 "commit's result; file it under a name of your own with --commit",
                 dir, r.commit, r.where);
        return KVB_STATUS_INVALID_ARG;
    }
    if (r.commit[0] && !valid_name(r.commit)) {
        snprintf(msg, msg_len, "'%s' records the commit '%s', not a usable commit name", r.where,
                 r.commit);
        return KVB_STATUS_FORMAT;
    }
    if (!given) git_describe(r.commit, c);
    if (given && r.commit[0] && !r.dirty) {
        kvb_hist_commit rc;
        git_describe(r.commit, &rc);
        if (strcmp(rc.commit, c->commit) != 0) {
            snprintf(msg, msg_len, "--commit %s disagrees with the commit '%s' records, %s", given,
                     r.where, r.commit);
            return KVB_STATUS_INVALID_ARG;
        }
    }
    return KVB_STATUS_OK;
}

/* ---- copying what compare reads ------------------------------------------------- */

/* a report, its plots, a point's lock, an unfinished directory: not filed */
static int filed(const char *name)
{
    size_t n = strlen(name);
    static const char *const skip_end[] = {".lock", ".partial", ".tmp"};
    if (!strcmp(name, "plots") || !strcmp(name, "report.md") || !strcmp(name, "report.html"))
        return 0;
    for (size_t i = 0; i < sizeof skip_end / sizeof skip_end[0]; i++) {
        size_t k = strlen(skip_end[i]);
        if (n >= k && !strcmp(name + n - k, skip_end[i])) return 0;
    }
    return 1;
}

static int copy_file(const char *from, const char *to, char *msg, size_t msg_len)
{
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    char buf[65536];
    size_t k;
    int bad = !in || !out;
    while (!bad && (k = fread(buf, 1, sizeof buf, in)) > 0) bad = fwrite(buf, 1, k, out) != k;
    bad |= in && ferror(in);
    int e = errno;
    if (in) fclose(in);
    if (out && fclose(out) != 0) bad = 1, e = errno;
    if (bad) snprintf(msg, msg_len, "copying '%s' to '%s': %s", from, to, strerror(e));
    return bad ? -1 : 0;
}

/* from's files and folders into to (made here), regular files only, links left out */
static int copy_tree(const char *from, const char *to, char *msg, size_t msg_len)
{
    if (mkdir(to, 0755) != 0) {
        snprintf(msg, msg_len, "cannot create '%s': %s", to, strerror(errno));
        return -1;
    }
    struct dirent **e;
    int n = scandir(from, &e, visible, alphasort), rc = 0;
    if (n < 0) {
        snprintf(msg, msg_len, "cannot read '%s': %s", from, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char a[KVB_HIST_PATH], b[KVB_HIST_PATH];
        struct stat st;
        snprintf(a, sizeof a, "%s/%s", from, e[i]->d_name);
        snprintf(b, sizeof b, "%s/%s", to, e[i]->d_name);
        if (!rc && filed(e[i]->d_name) && lstat(a, &st) == 0) {
            if (S_ISDIR(st.st_mode))
                rc = copy_tree(a, b, msg, msg_len);
            else if (S_ISREG(st.st_mode))
                rc = copy_file(a, b, msg, msg_len);
        }
        free(e[i]);
    }
    free(e);
    return rc;
}

/* the largest number among the names in dir (0 when none) */
static int last_run(const char *dir)
{
    struct dirent **e;
    int n = scandir(dir, &e, visible, NULL), last = 0;
    for (int i = 0; i < n; i++) {
        char *end;
        long v = strtol(e[i]->d_name, &end, 10);
        if (!*end && v > last && v < 1000000) last = (int)v;
        free(e[i]);
    }
    if (n >= 0) free(e);
    return last;
}

/* one run copied to runs/<n>/ (the next free n) under a hidden name, then renamed */
static int file_run(const char *runs, const char *src, int *no, char *msg, size_t msg_len)
{
    char tmp[KVB_HIST_PATH], dst[KVB_HIST_PATH];
    snprintf(tmp, sizeof tmp, "%s/.adding-%ld", runs, (long)getpid());
    kvb_rmtree(tmp);
    if (copy_tree(src, tmp, msg, msg_len)) {
        kvb_rmtree(tmp);
        return -1;
    }
    for (int n = last_run(runs) + 1, tries = 0; tries < 100; n++, tries++) {
        snprintf(dst, sizeof dst, "%s/%d", runs, n);
        int e = kvb_partial_publish(tmp, dst, msg, msg_len);
        if (e == 0) {
            *no = n;
            return 0;
        }
        if (e != EEXIST && e != ENOTEMPTY) break;
    }
    kvb_rmtree(tmp);
    return -1;
}

/* ---- the index ------------------------------------------------------------------ */

static kvb_status read_index(const char *path, kvb_hist_commit **c, int *n, char *msg,
                             size_t msg_len)
{
    kvb_csv r;
    *c = NULL;
    *n = 0;
    if (kvb_csv_open(&r, path, msg, msg_len)) return KVB_STATUS_IO;
    static const char *const names[4] = {"commit", "added", "commit_time", "subject"};
    int col[4], cap = 0;
    int last = -1, bad = kvb_csv_next(&r) != 1 || kvb_csv_header(&r) ||
                         (last = kvb_csv_columns(&r, names, col, 4)) < 0;
    if (bad) snprintf(msg, msg_len, "'%s' line 1: not a history index (commit,added,...)", path);
    for (int k; !bad && (k = kvb_csv_next(&r)) != 0;) {
        if (k < 0 || r.n <= last || r.cut || !valid_name(r.field[col[0]])) {
            snprintf(msg, msg_len, "'%s' line %d: %s", path, r.no,
                     k < 0 ? "out of memory" : "not a row of commit,added,commit_time,subject");
            bad = 1;
            break;
        }
        if (*n == cap) {
            kvb_hist_commit *m = realloc(*c, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *m);
            if (!m) {
                bad = 1;
                snprintf(msg, msg_len, "out of memory reading '%s'", path);
                break;
            }
            *c = m;
        }
        kvb_hist_commit *h = &(*c)[(*n)++];
        memset(h, 0, sizeof *h);
        char *dst[4] = {h->commit, h->added, h->time, h->subject};
        size_t len[4] = {sizeof h->commit, sizeof h->added, sizeof h->time, sizeof h->subject};
        for (int i = 0; i < 4; i++) snprintf(dst[i], len[i], "%s", r.field[col[i]]);
    }
    kvb_csv_close(&r);
    if (!bad) return KVB_STATUS_OK;
    free(*c);
    *c = NULL;
    *n = 0;
    return KVB_STATUS_FORMAT;
}

static void csv_field(FILE *f, const char *s, const char *after)
{
    fputc('"', f);
    for (; *s; s++) fputs(*s == '"' ? "\"\"" : (char[2]){*s, 0}, f);
    fprintf(f, "\"%s", after);
}

static kvb_status write_index(const char *path, const kvb_hist_commit *c, int n, char *msg,
                              size_t msg_len)
{
    kvb_afile a;
    if (kvb_afile_open(&a, path, msg, msg_len)) return KVB_STATUS_IO;
    fprintf(a.f, "commit,added,commit_time,subject\n");
    for (int i = 0; i < n; i++) {
        fprintf(a.f, "%s,%s,%s,", c[i].commit, c[i].added, c[i].time);
        csv_field(a.f, c[i].subject, "\n");
    }
    return kvb_afile_commit(&a, msg, msg_len) ? KVB_STATUS_IO : KVB_STATUS_OK;
}

/* a commit's place: its own time, else when it was filed */
static const char *order_key(const kvb_hist_commit *c)
{
    return c->time[0] ? c->time : c->added;
}

/* adds c (if new) to root/key/index.csv, the rows kept in order */
static kvb_status index_add(const char *kdir, const kvb_hist_commit *c, char *msg, size_t msg_len)
{
    char path[KVB_HIST_PATH];
    snprintf(path, sizeof path, "%s/index.csv", kdir);
    kvb_hist_commit *all = NULL;
    int n = 0;
    kvb_status st = KVB_STATUS_OK;
    struct stat sb;
    if (stat(path, &sb) == 0 && (st = read_index(path, &all, &n, msg, msg_len)) != KVB_STATUS_OK)
        return st;
    for (int i = 0; i < n; i++)
        if (!strcmp(all[i].commit, c->commit)) {
            free(all);
            return KVB_STATUS_OK;
        }
    kvb_hist_commit *m = realloc(all, (size_t)(n + 1) * sizeof *m);
    if (!m) {
        free(all);
        snprintf(msg, msg_len, "out of memory");
        return KVB_STATUS_NO_MEMORY;
    }
    all = m;
    /* after every row that comes before it or ties with it */
    int at = n;
    while (at > 0 && strcmp(order_key(&all[at - 1]), order_key(c)) > 0) at--;
    memmove(&all[at + 1], &all[at], (size_t)(n - at) * sizeof *all);
    all[at] = *c;
    st = write_index(path, all, n + 1, msg, msg_len);
    free(all);
    return st;
}

/* ---- add ------------------------------------------------------------------------- */

static int mkdir_p(char *path)
{
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            int bad = mkdir(path, 0755) != 0 && errno != EEXIST;
            *p = '/';
            if (bad) return -1;
        }
    return mkdir(path, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* The machine key of a loaded result: its CPU model's (compare's "cpu @ host") */
static kvb_status key_of(const kvb_cmp_set *s, const char *dir, kvb_hist_added *out, char *msg,
                         size_t msg_len)
{
    if (!strcmp(s->machine, "several machines")) {
        snprintf(msg, msg_len,
                 "'%s' holds several machines' results (a merge, or points on "
                 "several kinds of node): a history is one machine's; file each machine's "
                 "sweep",
                 dir);
        return KVB_STATUS_INVALID_ARG;
    }
    const char *at = NULL;
    for (const char *q = s->machine; (q = strstr(q, " @ ")); q++) at = q;
    char cpu[256];
    snprintf(cpu, sizeof cpu, "%.*s", (int)(at ? at - s->machine : (long)strlen(s->machine)),
             s->machine);
    out->key_here = !cpu[0];
    if (out->key_here)
        kvb_cpu_key(out->key, sizeof out->key);
    else
        kvb_cpu_key_of(cpu, out->key, sizeof out->key);
    return KVB_STATUS_OK;
}

kvb_status kvb_hist_add(const char *root, const char *dir, const char *commit, kvb_hist_added *out,
                        char *msg, size_t msg_len)
{
    memset(out, 0, sizeof *out);
    size_t dl = strlen(dir);
    struct stat sb;
    if (!is_dir(dir)) {
        snprintf(msg, msg_len,
                 stat(dir, &sb) == 0 ? "'%s' is not a directory: a history files result "
                                       "directories (a run, a sweep, a pool of runs)"
                                     : "'%s': no such result directory",
                 dir);
        return KVB_STATUS_INVALID_ARG;
    }
    if (dl >= 8 && !strcmp(dir + dl - 8, ".partial")) {
        snprintf(msg, msg_len,
                 "'%s' is an unfinished result (.partial): a history files "
                 "finished ones",
                 dir);
        return KVB_STATUS_INVALID_ARG;
    }
    kvb_cmp_set s;
    char why[1024];
    if (kvb_cmp_load(&s, dir, why, sizeof why) != KVB_STATUS_OK) {
        snprintf(msg, msg_len, "%s", why);
        return KVB_STATUS_FORMAT;
    }
    kvb_status st = KVB_STATUS_INVALID_ARG;
    if (s.unfinished)
        snprintf(msg, msg_len,
                 "'%s': %d point(s) did not finish, the first %s: a history files "
                 "finished results (resume or rerun the sweep)",
                 dir, s.unfinished, s.first_unfinished);
    else
        st = key_of(&s, dir, out, msg, msg_len);
    kvb_cmp_free(&s);
    if (st != KVB_STATUS_OK) return st;
    if ((st = commit_of(dir, commit, &out->commit, msg, msg_len)) != KVB_STATUS_OK) return st;
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(out->commit.added, sizeof out->commit.added, "%Y-%m-%dT%H:%M:%SZ", &tmv);

    char kdir[KVB_HIST_PATH], runs[KVB_HIST_PATH], src[KVB_HIST_PATH];
    snprintf(kdir, sizeof kdir, "%s/%s", root, out->key);
    /* an index that cannot be read is refused before anything is filed */
    snprintf(src, sizeof src, "%s/index.csv", kdir);
    kvb_hist_commit *old = NULL;
    int n_old;
    st = stat(src, &sb) == 0 ? read_index(src, &old, &n_old, msg, msg_len) : KVB_STATUS_OK;
    free(old);
    if (st != KVB_STATUS_OK) return st;
    snprintf(runs, sizeof runs, "%s/%s/runs", kdir, out->commit.commit);
    if (mkdir_p(runs)) {
        snprintf(msg, msg_len, "cannot create '%s': %s", runs, strerror(errno));
        return KVB_STATUS_IO;
    }
    /* a pool's runs each become one run here; anything else is one run */
    snprintf(src, sizeof src, "%s/runs", dir);
    struct dirent **e = NULL;
    int n = is_dir(src) ? scandir(src, &e, visible, alphasort) : -1;
    for (int i = 0; i < (n < 0 ? 1 : n); i++) {
        char one[KVB_HIST_PATH];
        int no = 0;
        if (n >= 0) snprintf(one, sizeof one, "%s/%s", src, e[i]->d_name);
        if (st == KVB_STATUS_OK && file_run(runs, n >= 0 ? one : dir, &no, msg, msg_len) != 0)
            st = KVB_STATUS_IO;
        if (st == KVB_STATUS_OK && !out->runs++) out->first_run = no;
        if (n >= 0) free(e[i]);
    }
    free(e);
    if (st == KVB_STATUS_OK) st = index_add(kdir, &out->commit, msg, msg_len);
    return st;
}

/* ---- reading ------------------------------------------------------------------- */

kvb_status kvb_hist_index(const char *root, const char *key, kvb_hist_commit **c, int *n, char *msg,
                          size_t msg_len)
{
    char path[KVB_HIST_PATH];
    struct stat sb;
    *c = NULL;
    *n = 0;
    snprintf(path, sizeof path, "%s/%s/index.csv", root, key);
    if (valid_name(key) && stat(path, &sb) == 0) return read_index(path, c, n, msg, msg_len);
    /* name the keys there are */
    char keys[600] = "";
    struct dirent **e;
    int k = scandir(root, &e, visible, alphasort);
    for (int i = 0; i < k; i++) {
        snprintf(path, sizeof path, "%s/%s/index.csv", root, e[i]->d_name);
        if (stat(path, &sb) == 0)
            snprintf(keys + strlen(keys), sizeof keys - strlen(keys), "%s%s", keys[0] ? ", " : "",
                     e[i]->d_name);
        free(e[i]);
    }
    if (k >= 0) free(e);
    if (k < 0)
        snprintf(msg, msg_len, "no history at '%s' (kvbench history add DIR files a result)", root);
    else
        snprintf(msg, msg_len, "unknown machine key '%s': '%s' holds %s", key, root,
                 keys[0] ? keys : "none (kvbench history add DIR files a result)");
    return KVB_STATUS_INVALID_ARG;
}

kvb_status kvb_hist_load(const char *root, const char *key, const char *commit, kvb_cmp_set *s,
                         char *msg, size_t msg_len)
{
    char path[KVB_HIST_PATH];
    snprintf(path, sizeof path, "%s/%s/%s", root, key, commit);
    return kvb_cmp_load(s, path, msg, msg_len);
}

const kvb_cmp_case *kvb_hist_find(const kvb_cmp_set *s, const char *name, kvb_cmp_kind kind)
{
    for (int i = 0; i < s->n; i++)
        if (s->c[i].kind == kind && !strcmp(s->c[i].name, name)) return &s->c[i];
    return NULL;
}

int kvb_hist_pool(const kvb_cmp_set *sets, int n, const char *name, kvb_cmp_kind kind,
                  double out[KVB_CMP_MAX_SAMPLES], int *commits)
{
    int k = 0;
    *commits = 0;
    for (int i = n - 1; i >= 0 && k < KVB_CMP_MAX_SAMPLES; i--) {
        const kvb_cmp_case *c = kvb_hist_find(&sets[i], name, kind);
        if (!c || !c->n) continue;
        (*commits)++;
        for (int j = 0; j < c->n && k < KVB_CMP_MAX_SAMPLES; j++) out[k++] = c->v[j];
    }
    return k;
}
