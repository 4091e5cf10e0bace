/* sweep.c: see sweep.h. Points run as child processes of the kvbench binary,
 * so a crash or a hang in one point costs that point only, the time limit can
 * be enforced from outside, and --emit-jobs can print exactly the commands the
 * sweep itself would run. */
#define _XOPEN_SOURCE 700
#include "sweep.h"
#include "textio.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char *const known_keys[] = {
    "run.preset", "run.backends", "run.dtypes", "run.blocks", "run.threads", "run.prompt", "run.tokens",
    "run.reps", "run.warmup", "run.max_seq", "run.group", "run.budget",
    "attend.backends", "attend.dtypes", "attend.shapes", "attend.ctxs", "attend.blocks", "attend.threads",
    "attend.reps", "attend.group", "attend.budget",
    "quality.preset", "quality.dtypes", "quality.tokens", "quality.max_seq", "quality.group", "quality.budget",
    "serve.preset", "serve.backends", "serve.blocks", "serve.sequences", "serve.budget",
};
enum { N_KNOWN = (int)(sizeof known_keys / sizeof known_keys[0]) };

static void trim(char *s)
{
    size_t n = strlen(s), i = 0;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n')) s[--n] = 0;
    while (s[i] == ' ' || s[i] == '\t') i++;
    memmove(s, s + i, n - i + 1);
}

kvb_status kvb_sweep_set(kvb_sweep *s, const char *assignment, char *msg, size_t msg_len)
{
    char key[64], val[512];
    const char *eq = strchr(assignment, '=');
    if (!eq || (size_t)(eq - assignment) >= sizeof key || strlen(eq + 1) >= sizeof val) {
        snprintf(msg, msg_len, "'%s': expected section.key=value (e.g. run.tokens=512)", assignment);
        return KVB_STATUS_INVALID_ARG;
    }
    memcpy(key, assignment, (size_t)(eq - assignment));
    key[eq - assignment] = 0;
    snprintf(val, sizeof val, "%s", eq + 1);
    trim(key);
    trim(val);
    /* run.KEY@BACKEND: that backend's own value (no-cache's tokens and budget, say) */
    char base[64];
    snprintf(base, sizeof base, "%s", key);
    char *at = strchr(base, '@');
    int known = 0;
    if (at) {
        *at = 0;
        static const char *const per_backend[] = {"run.tokens", "run.reps", "run.warmup", "run.prompt", "run.budget",
                                                  "run.max_seq"};
        for (size_t i = 0; i < sizeof per_backend / sizeof per_backend[0]; i++)
            known |= strcmp(base, per_backend[i]) == 0 && at[1];
        if (!known) {
            snprintf(msg, msg_len, "sweep key '%s': a per-backend value (KEY@BACKEND) is allowed for run.tokens, "
                     "run.reps, run.warmup, run.prompt, run.budget and run.max_seq", key);
            return KVB_STATUS_INVALID_ARG;
        }
    }
    for (int i = 0; i < N_KNOWN; i++) known |= strcmp(key, known_keys[i]) == 0;
    if (!known) {
        snprintf(msg, msg_len, "unknown sweep key '%s': allowed are run.{preset,backends,dtypes,blocks,threads,"
                 "prompt,tokens,reps,warmup,max_seq,group,budget}, attend.{backends,dtypes,shapes,ctxs,blocks,threads,"
                 "reps,group,budget}, quality.{preset,dtypes,tokens,max_seq,group,budget}, serve.{preset,backends,blocks,"
                 "sequences,budget}", key);
        return KVB_STATUS_INVALID_ARG;
    }
    if (!val[0] || strlen(val) >= sizeof s->val[0] || strpbrk(val, " \t'\"\\$`;|&<>")) {
        snprintf(msg, msg_len, "sweep key '%s': value '%s' must be non-empty, under %zu characters, without "
                 "spaces or shell characters", key, val, sizeof s->val[0]);
        return KVB_STATUS_INVALID_ARG;
    }
    int i = 0;
    while (i < s->n && strcmp(s->key[i], key) != 0) i++;
    if (i == KVB_SWEEP_MAX_KEYS) {
        snprintf(msg, msg_len, "too many sweep keys");
        return KVB_STATUS_INVALID_ARG;
    }
    snprintf(s->key[i], sizeof s->key[i], "%s", key);
    snprintf(s->val[i], sizeof s->val[i], "%s", val);
    if (i == s->n) s->n++;
    return KVB_STATUS_OK;
}

kvb_status kvb_sweep_load(kvb_sweep *s, const char *file, char *msg, size_t msg_len)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        snprintf(msg, msg_len, "cannot read sweep file '%s': %s", file, strerror(errno));
        return KVB_STATUS_IO;
    }
    const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
    snprintf(s->name, sizeof s->name, "%s", base);
    char *dot = strstr(s->name, ".sweep");
    if (dot) *dot = 0;
    char line[1024], why[512];
    int ln = 0;
    kvb_status st = KVB_STATUS_OK;
    while (st == KVB_STATUS_OK && fgets(line, sizeof line, f)) {
        ln++;
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        trim(line);
        if (!line[0]) continue;
        if ((st = kvb_sweep_set(s, line, why, sizeof why)) != KVB_STATUS_OK)
            snprintf(msg, msg_len, "%s:%d: %s", file, ln, why);
    }
    fclose(f);
    if (st == KVB_STATUS_OK && s->n == 0) {
        snprintf(msg, msg_len, "sweep file '%s' defines no keys", file);
        return KVB_STATUS_FORMAT;
    }
    return st;
}

kvb_status kvb_sweep_save(const kvb_sweep *s, const char *file, char *msg, size_t msg_len)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", file);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(msg, msg_len, "cannot write '%s': %s", tmp, strerror(errno));
        return KVB_STATUS_IO;
    }
    fprintf(f, "# sweep %s, as run (kvbench sweep --resume reads this)\n", s->name);
    for (int i = 0; i < s->n; i++) fprintf(f, "%s = %s\n", s->key[i], s->val[i]);
    int bad = ferror(f) | (fclose(f) != 0);
    if (bad || rename(tmp, file) != 0) {
        remove(tmp);
        snprintf(msg, msg_len, "writing '%s' failed", file);
        return KVB_STATUS_IO;
    }
    return KVB_STATUS_OK;
}

static const char *get(const kvb_sweep *s, const char *key)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->key[i], key) == 0) return s->val[i];
    return NULL;
}

/* KEY@backend when the definition gives one, else KEY. */
static const char *get_for(const kvb_sweep *s, const char *key, const char *backend)
{
    char k[96];
    snprintf(k, sizeof k, "%s@%s", key, backend);
    const char *v = get(s, k);
    return v ? v : get(s, key);
}

/* Splits a comma list into items (pointers into buf); -1 past max. */
static int split(const char *list, char *buf, size_t buf_len, char **items, int max)
{
    snprintf(buf, buf_len, "%s", list ? list : "");
    int n = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == max) return -1;
        items[n++] = t;
    }
    return n;
}

static int is_quant(const char *dt) { return dt[0] == 'q'; }

/* Appends words to a point's argv, copying them into its buffer. */
static int add_args(kvb_sweep_point *p, size_t *used, int n, ...)
{
    va_list ap;
    va_start(ap, n);
    int ok = 1;
    for (int i = 0; i < n && ok; i++) {
        const char *w = va_arg(ap, const char *);
        size_t len = strlen(w) + 1;
        if (p->argc + 1 >= KVB_SWEEP_MAX_ARGS || *used + len > sizeof p->buf) { ok = 0; break; }
        memcpy(p->buf + *used, w, len);
        p->argv[p->argc++] = p->buf + *used;
        *used += len;
    }
    va_end(ap);
    p->argv[p->argc] = NULL;
    return ok;
}

static double budget_of(const kvb_sweep *s, const char *section, double dflt)
{
    char key[48];
    snprintf(key, sizeof key, "%s.budget", section);
    const char *v = get(s, key);
    return v ? atof(v) : dflt;
}

#define OR(v, d) ((v) ? (v) : (d))

int kvb_sweep_expand(const kvb_sweep *s, const char *out_dir, kvb_sweep_point **out, char *msg, size_t msg_len)
{
    enum { MAXL = 16 };
    size_t cap = 256;
    kvb_sweep_point *pts = calloc(cap, sizeof *pts);
    if (!pts) { snprintf(msg, msg_len, "out of memory"); return -1; }
    int n = 0, overflow = 0;
    char b1[512], b2[512], b3[512], b4[512], b5[512], path[2400], num[32];
    char *backs[MAXL], *dts[MAXL], *blocks[MAXL], *threads[MAXL], *shapes[MAXL];
    for (int i = 0; i < s->n; i++) {
        char *items[MAXL], tmp[512];
        if (split(s->val[i], tmp, sizeof tmp, items, MAXL) < 0) {
            snprintf(msg, msg_len, "sweep key '%s': more than %d values", s->key[i], MAXL);
            free(pts);
            return -1;
        }
        if (strstr(s->key[i], ".budget") && !(atof(s->val[i]) > 0)) {
            snprintf(msg, msg_len, "sweep key '%s': budget '%s' must be a positive number of seconds", s->key[i],
                     s->val[i]);
            free(pts);
            return -1;
        }
    }

    /* decode runs: backend x dtype x block (paged) x threads */
    if (get(s, "run.backends")) {
        int nb = split(get(s, "run.backends"), b1, sizeof b1, backs, MAXL);
        int nd = split(OR(get(s, "run.dtypes"), "f32"), b2, sizeof b2, dts, MAXL);
        int nk = split(OR(get(s, "run.blocks"), "16"), b3, sizeof b3, blocks, MAXL);
        int nt = split(OR(get(s, "run.threads"), "1"), b4, sizeof b4, threads, MAXL);
        const char *preset = OR(get(s, "run.preset"), "stories15m");
        for (int i = 0; i < nb; i++)
        for (int j = 0; j < nd; j++)
        for (int k = 0; k < nk; k++)
        for (int t = 0; t < nt; t++) {
            int nocache = strcmp(backs[i], "nocache") == 0, paged = strncmp(backs[i], "paged", 5) == 0;
            int quant = strcmp(backs[i], "quant") == 0;
            if (nocache && j > 0) continue;                 /* stores nothing: one point */
            if (!nocache && quant != is_quant(dts[j])) continue;
            if (!paged && k > 0) continue;
            if (n >= (int)cap) { overflow = 1; continue; }
            kvb_sweep_point *p = &pts[n];
            memset(p, 0, sizeof *p);
            snprintf(p->kind, sizeof p->kind, "run");
            snprintf(p->id, sizeof p->id, "run-%s-%s-%s%s%s-t%s", preset, backs[i], nocache ? "f32" : dts[j],
                     paged ? "-bs" : "", paged ? blocks[k] : "", threads[t]);
            const char *bud = get_for(s, "run.budget", backs[i]);
            p->budget_s = bud ? atof(bud) : 120;
            snprintf(path, sizeof path, "%s/points/%s", out_dir, p->id);
            snprintf(num, sizeof num, "%g", p->budget_s);
            size_t used = 0;
            int ok = add_args(p, &used, 12, "run", "--preset", preset, "--backend", backs[i], "--dtype",
                              nocache ? "f32" : dts[j], "--threads", threads[t], "--time-budget", num, "--quiet");
            if (paged) ok = ok && add_args(p, &used, 2, "--block", blocks[k]);
            static const char *const opt[][2] = {{"run.prompt", "--prompt"}, {"run.tokens", "--tokens"},
                                                 {"run.reps", "--reps"}, {"run.warmup", "--warmup"},
                                                 {"run.max_seq", "--max-seq"}, {"run.group", "--group"}};
            for (size_t o = 0; o < sizeof opt / sizeof opt[0]; o++)
                if (get_for(s, opt[o][0], backs[i]))
                    ok = ok && add_args(p, &used, 2, opt[o][1], get_for(s, opt[o][0], backs[i]));
            ok = ok && add_args(p, &used, 2, "--out", path);
            if (!ok) { snprintf(msg, msg_len, "point %s: command too long", p->id); free(pts); return -1; }
            n++;
        }
    }

    /* attend tables: shape x backend x dtype x threads; contexts and block sizes inside */
    if (get(s, "attend.backends")) {
        int nb = split(get(s, "attend.backends"), b1, sizeof b1, backs, MAXL);
        int nd = split(OR(get(s, "attend.dtypes"), "f32"), b2, sizeof b2, dts, MAXL);
        int nt = split(OR(get(s, "attend.threads"), "1"), b4, sizeof b4, threads, MAXL);
        int ns = split(OR(get(s, "attend.shapes"), "32/8/128"), b5, sizeof b5, shapes, MAXL);
        for (int h = 0; h < ns; h++) {
            int nh, nkv, hd;
            char tail;
            if (sscanf(shapes[h], "%d/%d/%d%c", &nh, &nkv, &hd, &tail) != 3) {
                snprintf(msg, msg_len, "attend.shapes: '%s' is not HEADS/KV_HEADS/HEAD_DIM (e.g. 32/8/128)",
                         shapes[h]);
                free(pts);
                return -1;
            }
            for (int i = 0; i < nb; i++)
            for (int j = 0; j < nd; j++)
            for (int t = 0; t < nt; t++) {
                int paged = strncmp(backs[i], "paged", 5) == 0, quant = strcmp(backs[i], "quant") == 0;
                if (quant != is_quant(dts[j]) || strcmp(backs[i], "nocache") == 0) continue;
                if (n >= (int)cap) { overflow = 1; continue; }
                kvb_sweep_point *p = &pts[n];
                memset(p, 0, sizeof *p);
                snprintf(p->kind, sizeof p->kind, "attend");
                snprintf(p->id, sizeof p->id, "attend-%dx%dx%d-%s-%s-t%s", nh, nkv, hd, backs[i], dts[j], threads[t]);
                p->budget_s = budget_of(s, "attend", 120);
                char a[16], b[16], c[16];
                snprintf(a, sizeof a, "%d", nh);
                snprintf(b, sizeof b, "%d", nkv);
                snprintf(c, sizeof c, "%d", hd);
                snprintf(path, sizeof path, "%s/points/%s.partial/attend.csv", out_dir, p->id);
                size_t used = 0;
                /* the contiguous cache runs beside every other backend in the same command, so the
                 * ratio to it (ratio_to_contiguous: f32 for quantized types) is measured within one run */
                char bl[80], dl[40];
                int contig = strcmp(backs[i], "contiguous") == 0;
                snprintf(bl, sizeof bl, "%s%s", contig ? "" : "contiguous,", backs[i]);
                snprintf(dl, sizeof dl, "%s%s", contig ? "" : quant ? "f32," : "", dts[j]);
                int ok = add_args(p, &used, 17, "attend", "--backend", bl, "--dtype", dl, "--heads", a,
                                  "--kv-heads", b, "--head-dim", c, "--threads", threads[t], "--ctx",
                                  OR(get(s, "attend.ctxs"), "1024,8192"), "--csv", path);
                if (paged) ok = ok && add_args(p, &used, 2, "--block", OR(get(s, "attend.blocks"), "16"));
                if (get(s, "attend.reps")) ok = ok && add_args(p, &used, 2, "--reps", get(s, "attend.reps"));
                if (quant && get(s, "attend.group")) ok = ok && add_args(p, &used, 2, "--group", get(s, "attend.group"));
                if (!ok) { snprintf(msg, msg_len, "point %s: command too long", p->id); free(pts); return -1; }
                n++;
            }
        }
    }

    /* quality: one run of the f32 cache and every lossy type, teacher-forced */
    overflow |= n + 2 > (int)cap;                         /* room for quality and serve */
    if (get(s, "quality.dtypes") && !overflow) {
        kvb_sweep_point *p = &pts[n];
        memset(p, 0, sizeof *p);
        const char *preset = OR(get(s, "quality.preset"), "stories15m");
        snprintf(p->kind, sizeof p->kind, "quality");
        snprintf(p->id, sizeof p->id, "quality-%s", preset);
        p->budget_s = budget_of(s, "quality", 300);
        char dlist[300];
        snprintf(dlist, sizeof dlist, "f32,%s", get(s, "quality.dtypes"));
        snprintf(path, sizeof path, "%s/points/%s", out_dir, p->id);
        size_t used = 0;
        int ok = add_args(p, &used, 14, "run", "--preset", preset, "--backend", "contiguous,quant", "--dtype", dlist,
                          "--untied", "--reps", "1", "--warmup", "0", "--quiet", "--no-ceilings");
        if (get(s, "quality.tokens")) ok = ok && add_args(p, &used, 2, "--tokens", get(s, "quality.tokens"));
        if (get(s, "quality.max_seq")) ok = ok && add_args(p, &used, 2, "--max-seq", get(s, "quality.max_seq"));
        if (get(s, "quality.group")) ok = ok && add_args(p, &used, 2, "--group", get(s, "quality.group"));
        ok = ok && add_args(p, &used, 2, "--out", path);
        if (!ok) { snprintf(msg, msg_len, "point %s: command too long", p->id); free(pts); return -1; }
        n++;
    }

    /* serving: the same requests on each backend under one budget */
    if (get(s, "serve.backends") && !overflow) {
        kvb_sweep_point *p = &pts[n];
        memset(p, 0, sizeof *p);
        const char *preset = OR(get(s, "serve.preset"), "stories15m");
        snprintf(p->kind, sizeof p->kind, "serve");
        snprintf(p->id, sizeof p->id, "serve-%s", preset);
        p->budget_s = budget_of(s, "serve", 120);
        snprintf(path, sizeof path, "%s/points/%s.partial/serve.csv", out_dir, p->id);
        size_t used = 0;
        int ok = add_args(p, &used, 10, "serve-sim", "--preset", preset, "--backend", get(s, "serve.backends"),
                          "--block", OR(get(s, "serve.blocks"), "16"), "--no-attend", "--csv", path);
        if (get(s, "serve.sequences")) ok = ok && add_args(p, &used, 2, "--sequences", get(s, "serve.sequences"));
        if (!ok) { snprintf(msg, msg_len, "point %s: command too long", p->id); free(pts); return -1; }
        n++;
    }
    if (overflow) { snprintf(msg, msg_len, "more than %zu points: split the sweep", cap - 2); free(pts); return -1; }
    for (int i = 0; i < n; i++)
        if (strlen(pts[i].id) + 1 >= sizeof pts[i].id) {
            snprintf(msg, msg_len, "point name too long: %.60s...", pts[i].id);
            free(pts);
            return -1;
        }
    if (n == 0) {
        snprintf(msg, msg_len, "sweep '%s' has no points: set at least one of run.backends, attend.backends, "
                 "quality.dtypes, serve.backends", s->name);
        free(pts);
        return -1;
    }
    *out = pts;
    return n;
}

/* ---- running ------------------------------------------------------------ */


static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb; (void)flag; (void)f;
    return remove(p);
}

static void remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0) nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Runs exe argv with stdout and stderr into log; returns the exit status, or
 * -2 when it was stopped at limit_s. */
static int run_child(const char *exe, char **argv, const char *log, double limit_s)
{
    char *full[KVB_SWEEP_MAX_ARGS + 1];
    full[0] = (char *)exe;
    int i = 0;
    for (; argv[i]; i++) full[i + 1] = argv[i];
    full[i + 1] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int rc = posix_spawn(&pid, exe, &fa, NULL, full, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return -1;
    double t0 = now_s();
    int status = 0, stopped = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) return -1;
        if (!stopped && now_s() - t0 > limit_s) {
            kill(pid, SIGTERM);
            stopped = 1;
        } else if (stopped && now_s() - t0 > limit_s + 10)
            kill(pid, SIGKILL);
        struct timespec d = {0, 50 * 1000 * 1000};
        nanosleep(&d, NULL);
    }
    if (stopped) return -2;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The status of a finished decode point: cut_short when kvbench run says so. */
static const char *run_status(const char *point_dir)
{
    char path[2400], buf[4096];
    snprintf(path, sizeof path, "%s/summary.json", point_dir);
    FILE *f = fopen(path, "r");
    if (!f) return "ok";
    /* the worst of its points: skipped (nothing ran), cut short, ok */
    const char *st = "ok";
    int any_ok = 0, skipped = 0;
    while (fgets(buf, sizeof buf, f)) {
        if (strstr(buf, "\"status\": \"cut_short\"")) st = "cut_short";
        skipped |= strstr(buf, "\"status\": \"skipped\"") != NULL;
        any_ok |= strstr(buf, "\"status\": \"ok\"") != NULL || strstr(buf, "\"status\": \"cut_short\"") != NULL;
    }
    if (skipped && !any_ok) st = "skipped";
    fclose(f);
    return st;
}

typedef struct point_state { char status[16]; double seconds; } point_state;

/* A point's status lives in points/<id>.status ("status seconds"), so points
 * run as separate jobs (--only) never rewrite each other's; sweep.csv is
 * rebuilt from them. */
static void save_status(const char *dir, const kvb_sweep_point *p, const point_state *ps)
{
    char path[2400];
    char tmp[2500];
    snprintf(path, sizeof path, "%s/points/%s.status", dir, p->id);
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    fprintf(f, "%s %.1f\n", ps->status, ps->seconds);
    if ((ferror(f) | (fclose(f) != 0)) == 0) rename(tmp, path);
    else remove(tmp);
}

static void load_status(const char *dir, const kvb_sweep_point *p, point_state *ps)
{
    char path[2400];
    snprintf(path, sizeof path, "%s/points/%s.status", dir, p->id);
    FILE *f = fopen(path, "r");
    snprintf(ps->status, sizeof ps->status, "pending");
    ps->seconds = 0;
    if (!f) return;
    if (fscanf(f, "%15s %lf", ps->status, &ps->seconds) != 2) snprintf(ps->status, sizeof ps->status, "pending");
    fclose(f);
}

static void write_index(const char *dir, const kvb_sweep_point *pts, int n)
{
    char path[2400], tmp[2500];
    snprintf(path, sizeof path, "%s/sweep.csv", dir);
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    fprintf(f, "point,kind,status,seconds,budget_s,command\n");
    for (int i = 0; i < n; i++) {
        point_state ps;
        load_status(dir, &pts[i], &ps);
        fprintf(f, "%s,%s,%s,%.1f,%g,\"kvbench", pts[i].id, pts[i].kind, ps.status, ps.seconds, pts[i].budget_s);
        for (int a = 0; a < pts[i].argc; a++) fprintf(f, " %s", pts[i].argv[a]);
        fprintf(f, "\"\n");
    }
    if ((ferror(f) | (fclose(f) != 0)) == 0) rename(tmp, path);
    else remove(tmp);
}

static int is_done(const char *status)
{
    return strcmp(status, "ok") == 0 || strcmp(status, "cut_short") == 0 || strcmp(status, "timed_out") == 0 ||
           strcmp(status, "skipped") == 0;
}

static void fmt_time(double s, char *buf, size_t n)
{
    int t = (int)(s + 0.5);
    snprintf(buf, n, "%d:%02d", t / 60, t % 60);
}

int kvb_sweep_describe(const char *exe, const char *dir, int quiet)
{
    char path[2400], info[2500], host[256] = "unknown", date[64], tmp[2500];
    snprintf(path, sizeof path, "%s/machine.txt", dir);
    if (exists(path)) return 0;
    snprintf(info, sizeof info, "%s/info.%ld.txt", dir, (long)getpid());
    char *argv[] = {"info", NULL};
    if (!quiet) fprintf(stderr, "kvbench: describing the machine (kvbench info)...\n");
    int rc = run_child(exe, argv, info, 120);
    gethostname(host, sizeof host - 1);
    time_t t = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&t));
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *in = fopen(info, "r"), *out = fopen(tmp, "w");
    int ok = out != NULL;
    if (out) {
        fprintf(out, "host: %s\ndate: %s\n", host, date);
        if (rc != 0) fprintf(out, "note: kvbench info failed (exit %d): no ceilings\n", rc);
        for (int c; in && (c = fgetc(in)) != EOF;) fputc(c, out);
        ok = (ferror(out) | (fclose(out) != 0)) == 0 && rename(tmp, path) == 0;
        if (!ok) remove(tmp);
    }
    if (in) fclose(in);
    remove(info);
    return ok ? 0 : -1;
}

int kvb_sweep_run(const kvb_sweep *s, const char *exe, const char *dir, int quiet, const char *only)
{
    char msg[512], path[2400], log[2500], fin[2400];
    kvb_sweep_point *pts;
    int n = kvb_sweep_expand(s, dir, &pts, msg, sizeof msg);
    if (n < 0) { fprintf(stderr, "kvbench: %s\n", msg); return -1; }
    int found = !only;
    for (int i = 0; only && i < n; i++) found |= strcmp(pts[i].id, only) == 0;
    if (!found) {
        fprintf(stderr, "kvbench: --only '%s': no such point in this sweep (see %s/sweep.csv)\n", only, dir);
        free(pts);
        return -1;
    }
    point_state *ps = calloc((size_t)n, sizeof *ps);
    if (!ps) { free(pts); return -1; }
    snprintf(path, sizeof path, "%s/points", dir);
    mkdir(path, 0755);
    kvb_sweep_describe(exe, dir, quiet);
    int tty = !quiet && isatty(STDERR_FILENO), failed = 0, done = 0, todo = 0;
    double spent = 0;
    for (int i = 0; i < n; i++) {
        load_status(dir, &pts[i], &ps[i]);
        snprintf(fin, sizeof fin, "%s/points/%s", dir, pts[i].id);
        if (!(exists(fin) && is_done(ps[i].status)) && (!only || strcmp(only, pts[i].id) == 0)) todo++;
    }
    if (!only && todo < n && !quiet) fprintf(stderr, "kvbench: resuming: %d of %d points already done\n", n - todo, n);
    double t_start = now_s();
    for (int i = 0; i < n; i++) {
        kvb_sweep_point *p = &pts[i];
        if (only && strcmp(only, p->id) != 0) continue;
        snprintf(fin, sizeof fin, "%s/points/%s", dir, p->id);
        if (exists(fin) && is_done(ps[i].status)) continue;
        /* one job per point: a lock the system drops when its holder dies, so a
         * requeued or duplicate job, or a --resume while jobs run, leaves it alone */
        snprintf(path, sizeof path, "%s.lock", fin);
        int lk = open(path, O_CREAT | O_RDWR, 0644);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        if (lk < 0 || fcntl(lk, F_SETLK, &fl) != 0) {
            if (lk >= 0) close(lk);
            if (!quiet) fprintf(stderr, "kvbench: %s is being run by another job; left to it\n", p->id);
            continue;
        }
        load_status(dir, p, &ps[i]);                 /* it may have finished meanwhile */
        if (exists(fin) && is_done(ps[i].status)) { close(lk); continue; }
        /* leftovers of an interrupted attempt */
        remove_tree(fin);
        snprintf(path, sizeof path, "%s.partial", fin);
        remove_tree(path);
        int own_dir = strcmp(p->kind, "run") != 0 && strcmp(p->kind, "quality") != 0;
        if (own_dir && mkdir(path, 0755) != 0) {
            fprintf(stderr, "kvbench: cannot create '%s': %s\n", path, strerror(errno));
            failed++;
            close(lk);
            continue;
        }
        snprintf(log, sizeof log, "%s.log", fin);
        if (tty) {
            char el[16], eta[16] = "?";
            fmt_time(now_s() - t_start, el, sizeof el);
            if (done) fmt_time(spent / done * (todo - done), eta, sizeof eta);
            fprintf(stderr, "\r\033[K[%d/%d] %s  elapsed %s  ETA %s", done + 1, todo, p->id, el, eta);
        } else if (!quiet)
            fprintf(stderr, "kvbench: [%d/%d] %s\n", done + 1, todo, p->id);
        double t0 = now_s();
        int rc = run_child(exe, p->argv, log, 2 * p->budget_s + 60);
        ps[i].seconds = now_s() - t0;
        spent += ps[i].seconds;
        done++;
        if (rc == 0) {
            if (own_dir) rename(path, fin);
            snprintf(ps[i].status, sizeof ps[i].status, "%s", own_dir ? "ok" : run_status(fin));
            char moved[2500];
            snprintf(moved, sizeof moved, "%s/log.txt", fin);
            rename(log, moved);
        } else if (rc == -2) {
            /* stopped at its limit: whatever it wrote stays, marked */
            if (exists(path)) rename(path, fin);
            else mkdir(fin, 0755);
            snprintf(ps[i].status, sizeof ps[i].status, "timed_out");
            if (tty) fputc('\n', stderr);
            fprintf(stderr, "kvbench: %s stopped at %.0f s (budget %g s): marked timed_out\n", p->id,
                    ps[i].seconds, p->budget_s);
        } else {
            remove_tree(path);
            snprintf(ps[i].status, sizeof ps[i].status, "failed");
            if (tty) fputc('\n', stderr);
            fprintf(stderr, "kvbench: %s failed (exit %d); its output: %s\n", p->id, rc, log);
            failed++;
        }
        save_status(dir, p, &ps[i]);
        write_index(dir, pts, n);
        close(lk);                                   /* drops the lock */
    }
    if (tty) fprintf(stderr, "\r\033[K");
    write_index(dir, pts, n);
    /* a sweep is finished when every point is: the caller renames it then */
    int missing = 0;
    for (int i = 0; i < n; i++) {
        load_status(dir, &pts[i], &ps[i]);
        missing += !is_done(ps[i].status);
    }
    free(ps);
    free(pts);
    return failed ? failed : only ? 0 : missing ? -2 : 0;
}

/* ---- merging ------------------------------------------------------------- */

static int host_of(const char *dir, char *host, size_t n)
{
    char path[2400], line[512];
    snprintf(path, sizeof path, "%s/machine.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        if (sscanf(line, "host: %255s", host) == 1) found = 1;
    fclose(f);
    (void)n;
    return found ? 0 : -1;
}

kvb_status kvb_sweep_merge(const char *out, const char *const *dirs, int n, char *msg, size_t msg_len)
{
    char hosts[16][256], path[2400], tmp[2400];
    if (n < 1 || n > 16) {
        snprintf(msg, msg_len, "merge takes 1 to 16 sweep directories, got %d", n);
        return KVB_STATUS_INVALID_ARG;
    }
    if (exists(out)) {
        snprintf(msg, msg_len, "'%s' exists: merge writes a new directory", out);
        return KVB_STATUS_INVALID_ARG;
    }
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/sweep.csv", dirs[i]);
        if (!exists(path) || host_of(dirs[i], hosts[i], sizeof hosts[i]) != 0) {
            snprintf(msg, msg_len, "'%s' is not a sweep directory (no sweep.csv or machine.txt with a host)",
                     dirs[i]);
            return KVB_STATUS_INVALID_ARG;
        }
        size_t len = strlen(dirs[i]);
        char *idx = kvb_slurp(path);
        int unfinished = (len >= 8 && strcmp(dirs[i] + len - 8, ".partial") == 0) ||
                         (idx && (strstr(idx, ",pending,") || strstr(idx, ",failed,")));
        free(idx);
        if (unfinished) {
            snprintf(msg, msg_len, "'%s' is an unfinished sweep: finish it with kvbench sweep --resume first", dirs[i]);
            return KVB_STATUS_INVALID_ARG;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(hosts[i], hosts[j]) == 0) {
                snprintf(msg, msg_len, "'%s' and '%s' both come from host %s: merge compares machines", dirs[j],
                         dirs[i], hosts[i]);
                return KVB_STATUS_INVALID_ARG;
            }
    }
    snprintf(tmp, sizeof tmp, "%s.partial", out);
    remove_tree(tmp);
    snprintf(path, sizeof path, "%s/machines", tmp);
    if (mkdir(tmp, 0755) != 0 || mkdir(path, 0755) != 0) {
        snprintf(msg, msg_len, "cannot create '%s': %s", tmp, strerror(errno));
        return KVB_STATUS_IO;
    }
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/machines/%s", tmp, hosts[i]);
        char *argv[] = {"cp", "-R", (char *)dirs[i], path, NULL};
        pid_t pid;
        int status = 1;
        if (posix_spawnp(&pid, "cp", NULL, NULL, argv, environ) == 0) waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            remove_tree(tmp);
            snprintf(msg, msg_len, "copying '%s' failed", dirs[i]);
            return KVB_STATUS_IO;
        }
    }
    if (rename(tmp, out) != 0) {
        snprintf(msg, msg_len, "cannot rename '%s' to '%s': %s", tmp, out, strerror(errno));
        return KVB_STATUS_IO;
    }
    return KVB_STATUS_OK;
}
