/* sweep.c: see sweep.h. Points run as child processes of the kvbench binary,
 * so a crash or a hang in one point costs that point only, the time limit can
 * be enforced from outside, and --emit-jobs can print exactly the commands the
 * sweep itself would run. */
#define _GNU_SOURCE          /* flock, pipe2, prctl: Linux, where the sweep runs */
#include "sweep.h"
#include "../model/model.h"
#include "../base/probe.h"
#include "../analysis/report.h"
#include "../base/textio.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

extern char **environ;

static const char *const known_keys[] = {
    "run.preset", "run.backends", "run.dtypes", "run.blocks", "run.threads", "run.prompt", "run.tokens",
    "run.reps", "run.warmup", "run.max_seq", "run.group", "run.budget",
    "attend.backends", "attend.dtypes", "attend.shapes", "attend.ctxs", "attend.blocks", "attend.threads",
    "attend.reps", "attend.group", "attend.budget",
    "quality.preset", "quality.dtypes", "quality.tokens", "quality.max_seq", "quality.group", "quality.residual",
    "quality.budget",
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
                 "reps,group,budget}, quality.{preset,dtypes,tokens,max_seq,group,residual,budget}, serve.{preset,backends,blocks,"
                 "sequences,budget}", key);
        return KVB_STATUS_INVALID_ARG;
    }
    /* what sweep.def cannot hold back (a newline, '#' starts a comment) would
     * make --resume run another definition: refused, as in the key */
    if (strlen(key) >= sizeof s->key[0] || strspn(key, "abcdefghijklmnopqrstuvwxyz0123456789._@-") != strlen(key)) {
        snprintf(msg, msg_len, "sweep key '%s': at most %zu characters of a-z, 0-9, '.', '_', '@' and '-'", key,
                 sizeof s->key[0] - 1);
        return KVB_STATUS_INVALID_ARG;
    }
    int ctl = 0;
    for (const unsigned char *c = (const unsigned char *)val; *c; c++) ctl |= *c < 0x20 || *c == 0x7f;
    if (!val[0] || strlen(val) >= sizeof s->val[0] || ctl || strpbrk(val, " \t'\"\\$`;|&<>#")) {
        snprintf(msg, msg_len, "sweep key '%s': value '%s' must be non-empty, under %zu characters, without "
                 "spaces, control characters, '#' or shell characters", key, val, sizeof s->val[0]);
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

kvb_status kvb_sweep_parse(kvb_sweep *s, const char *where, const char *text, size_t len, char *msg,
                           size_t msg_len)
{
    char line[KVB_SWEEP_MAX_LINE + 1], why[512];
    int ln = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && text[j] != '\n' && text[j] != 0) j++;
        ln++;
        if (j < len && text[j] == 0) {
            snprintf(msg, msg_len, "%s:%d: a NUL byte: a sweep file is text", where, ln);
            return KVB_STATUS_FORMAT;
        }
        /* a longer line is refused whole, never cut with its rest read as a setting */
        if (j - i > KVB_SWEEP_MAX_LINE) {
            snprintf(msg, msg_len, "%s:%d: line of %zu bytes: at most %d", where, ln, j - i, KVB_SWEEP_MAX_LINE);
            return KVB_STATUS_FORMAT;
        }
        memcpy(line, text + i, j - i);
        line[j - i] = 0;
        i = j + 1;
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        trim(line);
        if (!line[0]) continue;
        if (kvb_sweep_set(s, line, why, sizeof why) != KVB_STATUS_OK) {
            snprintf(msg, msg_len, "%s:%d: %s", where, ln, why);
            return KVB_STATUS_INVALID_ARG;
        }
    }
    if (s->n == 0) {
        snprintf(msg, msg_len, "sweep file '%s' defines no keys", where);
        return KVB_STATUS_FORMAT;
    }
    return KVB_STATUS_OK;
}

/* Checked before it is opened (a FIFO would block open, /dev/zero never ends),
 * opened without blocking, and checked again on what was opened. */
kvb_status kvb_sweep_load(kvb_sweep *s, const char *file, char *msg, size_t msg_len)
{
    struct stat st;
    int fd = -1;
    if (stat(file, &st) != 0 || (S_ISREG(st.st_mode) && (fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0) ||
        (fd >= 0 && fstat(fd, &st) != 0)) {
        snprintf(msg, msg_len, "cannot read sweep file '%s': %s", file, strerror(errno));
        if (fd >= 0) close(fd);
        return KVB_STATUS_IO;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(msg, msg_len, "sweep file '%s' is not a regular file (%s)", file,
                 S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO"
                 : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" : "a socket or other special file");
        if (fd >= 0) close(fd);
        return KVB_STATUS_INVALID_ARG;
    }
    if (st.st_size > KVB_SWEEP_MAX_FILE) {
        snprintf(msg, msg_len, "sweep file '%s' is %lld bytes: a definition is at most %d", file,
                 (long long)st.st_size, KVB_SWEEP_MAX_FILE);
        close(fd);
        return KVB_STATUS_INVALID_ARG;
    }
    char *text = malloc(KVB_SWEEP_MAX_FILE + 1);
    if (!text) { close(fd); snprintf(msg, msg_len, "out of memory"); return KVB_STATUS_NO_MEMORY; }
    size_t len = 0;
    for (;;) {                                   /* to its end, or past the limit if it grows meanwhile */
        ssize_t r = read(fd, text + len, KVB_SWEEP_MAX_FILE + 1 - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(msg, msg_len, "cannot read sweep file '%s': %s", file, strerror(errno));
            free(text);
            close(fd);
            return KVB_STATUS_IO;
        }
        if (r == 0 || (len += (size_t)r) > KVB_SWEEP_MAX_FILE) break;
    }
    close(fd);
    if (len > KVB_SWEEP_MAX_FILE) {
        snprintf(msg, msg_len, "sweep file '%s' grew past %d bytes while read", file, KVB_SWEEP_MAX_FILE);
        free(text);
        return KVB_STATUS_INVALID_ARG;
    }
    const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
    snprintf(s->name, sizeof s->name, "%s", base);
    char *dot = strstr(s->name, ".sweep");
    if (dot) *dot = 0;
    kvb_status st2 = kvb_sweep_parse(s, file, text, len, msg, msg_len);
    free(text);
    return st2;
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

/* What each key's items must be: the kinds below, each item checked here so a
 * bad value is refused before the machine is measured or a directory made. */
enum { V_BACKEND, V_DTYPE, V_PRESET, V_SHAPE, V_BUDGET, V_INT };
static const struct {
    const char *key; int kind, list; long long lo, hi;
} value_rules[] = {
    {"preset", V_PRESET, 0, 0, 0}, {"backends", V_BACKEND, 1, 0, 0}, {"dtypes", V_DTYPE, 1, 0, 0},
    {"shapes", V_SHAPE, 1, 0, 0}, {"budget", V_BUDGET, 0, 0, 0},
    {"blocks", V_INT, 1, 1, 1 << 24}, {"threads", V_INT, 1, 1, 1024}, {"ctxs", V_INT, 1, 1, 1 << 24},
    {"prompt", V_INT, 0, 1, 1 << 20}, {"tokens", V_INT, 0, 1, 1 << 20}, {"reps", V_INT, 0, 1, 1000},
    {"warmup", V_INT, 0, 0, 1 << 20}, {"max_seq", V_INT, 0, 1, 1 << 24}, {"group", V_INT, 0, 8, 256},
    {"sequences", V_INT, 0, 1, 4096}, {"residual", V_INT, 0, 0, 65536},
};

static void backend_names(char *buf, size_t n)
{
    buf[0] = 0;
    for (int i = 0; i < kvb_backend_count(); i++)
        snprintf(buf + strlen(buf), n - strlen(buf), "%s%s", i ? ", " : "", kvb_backend_at(i)->name);
}

static int check_item(const char *key, int kind, long long lo, long long hi, const char *item, char *msg,
                      size_t msg_len)
{
    char names[256], *end;
    kvb_dtype dt;
    kvb_model_config cfg;
    switch (kind) {
    case V_BACKEND:
        if (kvb_backend_find(item)) return 0;
        backend_names(names, sizeof names);
        snprintf(msg, msg_len, "sweep key '%s': unknown backend '%s' (allowed: %s)", key, item, names);
        return -1;
    case V_DTYPE:
        if (kvb_dtype_parse(item, &dt) == KVB_STATUS_OK) return 0;
        snprintf(msg, msg_len, "sweep key '%s': unknown storage type '%s' (kvbench list shows them)", key, item);
        return -1;
    case V_PRESET:
        if (kvb_model_preset(item, &cfg) == KVB_STATUS_OK) return 0;
        snprintf(msg, msg_len, "sweep key '%s': unknown preset '%s' (kvbench list shows them)", key, item);
        return -1;
    case V_SHAPE: {
        int nh, nkv, hd;
        char tail;
        if (sscanf(item, "%d/%d/%d%c", &nh, &nkv, &hd, &tail) == 3 && nh > 0 && nkv > 0 && hd > 0) return 0;
        snprintf(msg, msg_len, "attend.shapes: '%s' is not HEADS/KV_HEADS/HEAD_DIM (e.g. 32/8/128)", item);
        return -1;
    }
    case V_BUDGET: {
        errno = 0;
        double v = strtod(item, &end);
        if (!errno && end != item && !*end && isfinite(v) && v > 0 && v <= 1e6) return 0;
        snprintf(msg, msg_len, "sweep key '%s': budget '%s' must be a positive number of seconds, at most 1e6",
                 key, item);
        return -1;
    }
    default: {
        errno = 0;
        long long v = strtoll(item, &end, 10);
        if (!errno && end != item && !*end && v >= lo && v <= hi) return 0;
        snprintf(msg, msg_len, "sweep key '%s': '%s' is not a whole number from %lld to %lld", key, item, lo, hi);
        return -1;
    }
    }
}

/* Every value of the definition, and every KEY@BACKEND's backend. */
static int check_values(const kvb_sweep *s, char *msg, size_t msg_len)
{
    enum { MAXI = 16 };
    for (int i = 0; i < s->n; i++) {
        const char *key = s->key[i], *dot = strchr(key, '.'), *at = strchr(key, '@');
        char field[32];
        snprintf(field, sizeof field, "%.*s", (int)((at ? at : key + strlen(key)) - (dot ? dot + 1 : key)),
                 dot ? dot + 1 : key);
        if (at && !kvb_backend_find(at + 1)) {
            char names[256];
            backend_names(names, sizeof names);
            snprintf(msg, msg_len, "sweep key '%s': unknown backend '%s' after '@' (allowed: %s)", key, at + 1, names);
            return -1;
        }
        /* the items, each non-empty and each once: a repeated one would make two points with one name */
        char buf[sizeof s->val[0]], *items[MAXI + 1];
        snprintf(buf, sizeof buf, "%s", s->val[i]);
        int n = 0;
        for (char *t = buf;;) {
            char *comma = strchr(t, ',');
            if (comma) *comma = 0;
            if (!*t) {
                snprintf(msg, msg_len, "sweep key '%s': empty item in '%s'", key, s->val[i]);
                return -1;
            }
            if (n == MAXI) {
                snprintf(msg, msg_len, "sweep key '%s': more than %d values", key, MAXI);
                return -1;
            }
            for (int j = 0; j < n; j++)
                if (strcmp(items[j], t) == 0) {
                    snprintf(msg, msg_len, "sweep key '%s': '%s' is repeated in '%s' (each value is one point)",
                             key, t, s->val[i]);
                    return -1;
                }
            items[n++] = t;
            if (!comma) break;
            t = comma + 1;
        }
        for (size_t r = 0; r < sizeof value_rules / sizeof value_rules[0]; r++) {
            if (strcmp(field, value_rules[r].key) != 0) continue;
            if (!value_rules[r].list && n > 1) {
                snprintf(msg, msg_len, "sweep key '%s': one value, got '%s'", key, s->val[i]);
                return -1;
            }
            for (int j = 0; j < n; j++)
                if (check_item(key, value_rules[r].kind, value_rules[r].lo, value_rules[r].hi, items[j], msg,
                               msg_len))
                    return -1;
        }
    }
    return 0;
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
    if (check_values(s, msg, msg_len) != 0) { free(pts); return -1; }

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
        if (get(s, "quality.residual")) ok = ok && add_args(p, &used, 2, "--residual", get(s, "quality.residual"));
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
        if (strlen(pts[i].id) + 1 >= sizeof pts[i].id || strchr(pts[i].id, '/') || pts[i].id[0] == '.') {
            snprintf(msg, msg_len, "point name too long or not a folder name: %.60s...", pts[i].id);
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

/* a dangling symlink counts: it is a name that something else owns */
static int lexists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* A SIGINT, SIGTERM or SIGHUP pending for the sweep, taken (0: none). They
 * are pending only when the caller blocks them (sweep.h); otherwise they act
 * as they always do. */
static int take_signal(void)
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

typedef struct child_run {
    int    code;            /* its exit status; -1 when it did not exit (killed, or never started) */
    int    timed_out;       /* stopped at its time limit */
    int    signo;           /* stopped because the sweep was interrupted by this signal */
    int    log_errno;       /* its output could not all be written to the log: why */
    char   tail[640];       /* the end of its output, for a message when the log is not there to read */
    size_t tail_len;
    int    capture;         /* keep all its output in out (kvbench info's description) */
    char  *out;
    size_t out_len, out_cap;
} child_run;

static void take_output(child_run *r, int log_fd, const char *buf, size_t n)
{
    for (size_t done = 0; log_fd >= 0 && !r->log_errno && done < n;) {
        ssize_t w = write(log_fd, buf + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) r->log_errno = w < 0 ? errno : EIO;
        else done += (size_t)w;
    }
    if (r->capture && r->out_len + n + 1 <= (1u << 20)) {      /* a description is a few KB */
        if (r->out_len + n + 1 > r->out_cap) {
            size_t cap = (r->out_len + n + 1) * 2;
            char *o = realloc(r->out, cap);
            if (o) { r->out = o; r->out_cap = cap; }
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
        if (n > 0) { take_output(r, log_fd, buf, (size_t)n); continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) { close(*rd); *rd = -1; }
        break;                                   /* EAGAIN: nothing more for now */
    }
}

/* Runs exe argv, its output (stdout and stderr) through a pipe into log_fd
 * (when >= 0) and r's tail (and r->out with r->capture), so a log that cannot
 * be written still leaves the cause to print. The child leads its own process
 * group, which is what gets stopped (SIGTERM, then SIGKILL 10 s on) at
 * limit_s or when a signal reaches the sweep; it dies with the sweep on Linux
 * (PR_SET_PDEATHSIG) and keeps every inherited descriptor without
 * close-on-exec: the point's lock among them, held until it is gone. */
static void run_child(const char *exe, char **argv, int log_fd, double limit_s, child_run *r)
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
        snprintf(r->tail, sizeof r->tail, "kvbench: cannot make a pipe for the child: %s\n", strerror(errno));
        return;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(r->tail, sizeof r->tail, "kvbench: cannot start a child process: %s\n", strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        return;
    }
    if (pid == 0) {
        setpgid(0, 0);
#ifdef __linux__
        prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
        if (getppid() != parent) _exit(127);     /* the sweep died before the line above took hold */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int dn = open("/dev/null", O_RDONLY);    /* its own group cannot read the terminal */
        if (dn > 0) { dup2(dn, 0); close(dn); }
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        execv(exe, full);
        dprintf(2, "kvbench: cannot run '%s': %s\n", exe, strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid);                           /* both sides, so the group exists before either goes on */
    close(pfd[1]);
    int rd = pfd[0];
    fcntl(rd, F_SETFL, O_NONBLOCK);
    double t0 = now_s(), t_stop = 0;
    int status = 0;
    for (;;) {
        struct pollfd pf = {.fd = rd, .events = POLLIN};
        poll(&pf, rd >= 0 ? 1 : 0, 50);
        drain(&rd, r, log_fd);
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) { status = -1; break; }
        int sig = take_signal();
        if (sig && !r->signo) r->signo = sig;
        double t = now_s();
        if (!t_stop && (r->signo || t - t0 > limit_s)) {
            r->timed_out = !r->signo;
            kill(-pid, SIGTERM);
            t_stop = t;
        } else if (t_stop && t - t_stop > 10)
            kill(-pid, SIGKILL);
    }
    drain(&rd, r, log_fd);                       /* what it wrote last; a grandchild holding the pipe is not waited for */
    if (rd >= 0) close(rd);
    r->code = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The last non-empty line of a child's output, for a one-line message. */
/* The cause a child's output gives: its last "kvbench: " line (a usage
 * error ends with a pointer to help, a failed run with a table), else its
 * last line. */
static void last_line(const char *tail, char *out, size_t n)
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

/* A point's status lives in points/<id>.status, so points run as separate
 * jobs (--only) never rewrite each other's; sweep.csv is rebuilt from them.
 * "STATUS SECONDS\nhost: H\ncpu: C\n", padded to STATUS_BYTES: the file is
 * made (pending) before its point runs and rewritten in place after, so a
 * disk that fills during the point cannot keep a finished point pending. */
enum { STATUS_BYTES = 320 };
typedef struct point_state { char status[16]; double seconds; char host[72]; char cpu[160]; } point_state;

/* s without what would break a line of sweep.csv or the status file */
static void clean_field(char *s)
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
    int w = snprintf(rec, STATUS_BYTES, "%s %.1f\nhost: %s\ncpu: %s\n", ps->status, ps->seconds, ps->host, ps->cpu);
    if (w >= 0 && w < STATUS_BYTES) rec[w] = ' ';
    rec[STATUS_BYTES - 1] = '\n';
}

/* The point's status file, pending, made whole before it runs. */
/* Gives a written temporary file its name, or, after an error (err: an errno),
 * removes it and says which file could not be written and why. */
static int publish(const char *tmp, const char *path, int err, char *msg, size_t msg_len)
{
    if (!err && rename(tmp, path) != 0) err = errno;
    if (!err) return 0;
    remove(tmp);
    snprintf(msg, msg_len, "cannot write '%s': %s", path, strerror(err));
    return -1;
}

static int prepare_status(const char *dir, const kvb_sweep_point *p, char *msg, size_t msg_len)
{
    char path[2400], tmp[2500], rec[STATUS_BYTES];
    point_state ps = {.status = "pending"};
    status_record(&ps, rec);
    status_path(dir, p, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ssize_t w = fd >= 0 ? write(fd, rec, sizeof rec) : -1;
    int err = fd < 0 || w < 0 ? errno : w != (ssize_t)sizeof rec ? ENOSPC : 0;
    if (fd >= 0 && close(fd) != 0 && !err) err = errno;
    return publish(tmp, path, err, msg, msg_len);
}

static int save_status(const char *dir, const kvb_sweep_point *p, const point_state *ps, char *msg, size_t msg_len)
{
    char path[2400], rec[STATUS_BYTES];
    status_record(ps, rec);
    status_path(dir, p, path, sizeof path);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t w = fd >= 0 ? pwrite(fd, rec, sizeof rec, 0) : -1;
    int err = fd < 0 || w < 0 ? errno : w != (ssize_t)sizeof rec ? ENOSPC : 0;
    if (fd >= 0 && close(fd) != 0 && !err) err = errno;
    if (err) {
        snprintf(msg, msg_len, "cannot record point %s as %s in '%s': %s", p->id, ps->status, path, strerror(err));
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
    if (h) sscanf(h + 7, "%71[^\n]", ps->host);
    if (c) sscanf(c + 6, "%159[^\n]", ps->cpu);
    for (char *f[] = {ps->host, ps->cpu}, **q = f; q < f + 2; q++) {
        size_t n = strlen(*q);
        while (n && (*q)[n - 1] == ' ') (*q)[--n] = 0;
        clean_field(*q);
    }
    free(text);
}

static int write_index(const char *dir, const kvb_sweep_point *pts, int n, char *msg, size_t msg_len)
{
    char path[2400], tmp[2500];
    snprintf(path, sizeof path, "%s/sweep.csv", dir);
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(msg, msg_len, "cannot write '%s': %s", tmp, strerror(errno));
        return -1;
    }
    fprintf(f, "point,kind,status,seconds,budget_s,command,host,cpu\n");
    for (int i = 0; i < n; i++) {
        point_state ps;
        load_status(dir, &pts[i], &ps);
        fprintf(f, "%s,%s,%s,%.1f,%g,\"kvbench", pts[i].id, pts[i].kind, ps.status, ps.seconds, pts[i].budget_s);
        for (int a = 0; a < pts[i].argc; a++) {
            fputc(' ', f);
            for (const char *c = pts[i].argv[a]; *c; c++) fputc(*c == '"' || *c == '\n' ? '?' : *c, f);
        }
        fprintf(f, "\",\"%s\",\"%s\"\n", ps.host, ps.cpu);
    }
    int err = ferror(f) ? (errno ? errno : EIO) : 0;
    if (fclose(f) != 0 && !err) err = errno;
    return publish(tmp, path, err, msg, msg_len);
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

int kvb_sweep_describe(const char *exe, const char *dir, int quiet, char *msg, size_t msg_len)
{
    char path[2400], host[256] = "unknown", date[64], tmp[2500];
    snprintf(path, sizeof path, "%s/machine.txt", dir);
    if (exists(path)) return 0;
    char *argv[] = {"info", NULL};
    if (!quiet) fprintf(stderr, "kvbench: describing the machine (kvbench info)...\n");
    child_run cr = {.capture = 1};
    run_child(exe, argv, -1, 120, &cr);
    if (cr.signo) { free(cr.out); return cr.signo; }
    gethostname(host, sizeof host - 1);
    time_t t = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&t));
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *out = fopen(tmp, "w");
    int err = out ? 0 : errno;
    if (out) {
        fprintf(out, "host: %s\ndate: %s\n", host, date);
        if (cr.code != 0) fprintf(out, "note: kvbench info failed (exit %d): no ceilings\n", cr.code);
        if (cr.out) fputs(cr.out, out);
        err = ferror(out) ? (errno ? errno : EIO) : 0;
        if (fclose(out) != 0 && !err) err = errno;
        if (!err && rename(tmp, path) != 0) err = errno;
        if (err) remove(tmp);
    }
    free(cr.out);
    if (err) {
        snprintf(msg, msg_len, "cannot write '%s': %s", path, strerror(err));
        return -1;
    }
    return 0;
}

kvb_status kvb_sweep_dry_run(const kvb_sweep_point *pts, int n, const char *exe, char *msg, size_t msg_len)
{
    for (int i = 0; i < n; i++) {
        char *argv[KVB_SWEEP_MAX_ARGS + 1];
        int a = 0;
        for (; a < pts[i].argc && a < KVB_SWEEP_MAX_ARGS - 1; a++) argv[a] = pts[i].argv[a];
        argv[a++] = "--dry-run";
        argv[a] = NULL;
        child_run cr = {0};
        run_child(exe, argv, -1, 60, &cr);
        if (cr.signo) {
            snprintf(msg, msg_len, "interrupted (%s) while checking point %s", strsignal(cr.signo), pts[i].id);
            return KVB_STATUS_IO;
        }
        if (cr.code == 0 || cr.code == 3) continue;       /* 3: nothing it can measure; the point will be skipped */
        char why[400];
        last_line(cr.tail, why, sizeof why);
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
}

/* The host and CPU a point ran on: its own meta.json's record where it wrote
 * one (the node that ran it, under --emit-jobs too), else this process's. */
static void point_machine(const char *fin, const point_state *own, point_state *ps)
{
    char path[2400];
    snprintf(path, sizeof path, "%s/meta.json", fin);
    char *meta = kvb_slurp(path);
    ps->host[0] = ps->cpu[0] = 0;
    if (meta) {
        kvb_json_str(meta, NULL, "host", ps->host, sizeof ps->host);
        kvb_json_str(meta, NULL, "cpu_model", ps->cpu, sizeof ps->cpu);
        free(meta);
    }
    if (!ps->host[0]) snprintf(ps->host, sizeof ps->host, "%s", own->host);
    if (!ps->cpu[0]) snprintf(ps->cpu, sizeof ps->cpu, "%s", own->cpu);
    clean_field(ps->host);
    clean_field(ps->cpu);
}

kvb_status kvb_sweep_run(const kvb_sweep *s, const char *exe, const char *dir, int quiet, const char *only,
                         kvb_sweep_tally *t, char *msg, size_t msg_len)
{
    char path[2400], log[2500], fin[2400], why[512];
    memset(t, 0, sizeof *t);
    kvb_sweep_point *pts;
    int n = kvb_sweep_expand(s, dir, &pts, msg, msg_len);
    if (n < 0) return KVB_STATUS_INVALID_ARG;
    int found = !only;
    for (int i = 0; only && i < n; i++) found |= strcmp(pts[i].id, only) == 0;
    if (!found) {
        snprintf(msg, msg_len, "--only '%s': no such point in this sweep (see %s/sweep.csv)", only, dir);
        free(pts);
        return KVB_STATUS_INVALID_ARG;
    }
    point_state *ps = calloc((size_t)n, sizeof *ps), own;
    if (!ps) { free(pts); snprintf(msg, msg_len, "out of memory"); return KVB_STATUS_NO_MEMORY; }
    own_machine(&own);
    kvb_status st = KVB_STATUS_OK;
    snprintf(path, sizeof path, "%s/points", dir);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        snprintf(msg, msg_len, "cannot create '%s': %s", path, strerror(errno));
        st = KVB_STATUS_IO;
        goto out;
    }
    int d = kvb_sweep_describe(exe, dir, quiet, msg, msg_len);
    if (d > 0) { t->signo = d; goto out; }
    if (d < 0) { st = KVB_STATUS_IO; goto out; }
    int tty = !quiet && isatty(STDERR_FILENO), done = 0, todo = 0;
    double spent = 0;
    for (int i = 0; i < n; i++) {
        load_status(dir, &pts[i], &ps[i]);
        snprintf(fin, sizeof fin, "%s/points/%s", dir, pts[i].id);
        if (!(exists(fin) && is_done(ps[i].status)) && (!only || strcmp(only, pts[i].id) == 0)) todo++;
    }
    if (!only && todo < n && !quiet) fprintf(stderr, "kvbench: resuming: %d of %d points already done\n", n - todo, n);
    double t_start = now_s();
    for (int i = 0; i < n && st == KVB_STATUS_OK; i++) {
        kvb_sweep_point *p = &pts[i];
        if (only && strcmp(only, p->id) != 0) continue;
        snprintf(fin, sizeof fin, "%s/points/%s", dir, p->id);
        if (exists(fin) && is_done(ps[i].status)) continue;
        if ((t->signo = take_signal())) break;
        /* one job per point: an flock on the point's lock file, inherited by its
         * child (no close-on-exec), so it is held until both are gone: a requeued
         * or duplicate job, or a --resume while jobs run, leaves the point alone */
        snprintf(path, sizeof path, "%s.lock", fin);
        int lk = open(path, O_CREAT | O_RDWR, 0644);
        if (lk < 0 || flock(lk, LOCK_EX | LOCK_NB) != 0) {
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
        if (prepare_status(dir, p, msg, msg_len) != 0) { st = KVB_STATUS_IO; close(lk); break; }
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
            remove_tree(path);
            close(lk);
            break;
        }
        if (tty) {
            char el[16], eta[16] = "?";
            fmt_time(now_s() - t_start, el, sizeof el);
            if (done) fmt_time(spent / done * (todo - done), eta, sizeof eta);
            fprintf(stderr, "\r\033[K[%d/%d] %s  elapsed %s  ETA %s", done + 1, todo, p->id, el, eta);
        } else if (!quiet)
            fprintf(stderr, "kvbench: [%d/%d] %s\n", done + 1, todo, p->id);
        double t0 = now_s();
        child_run cr = {0};
        run_child(exe, p->argv, log_fd, 2 * p->budget_s + 60, &cr);
        if (close(log_fd) != 0 && !cr.log_errno) cr.log_errno = errno;
        ps[i].seconds = now_s() - t0;
        spent += ps[i].seconds;
        done++;
        if (tty) fputc('\n', stderr);
        if (cr.signo) {
            /* interrupted: its child is gone (run_child reaped it); the point stays pending */
            t->signo = cr.signo;
            remove_tree(path);
            close(lk);
            break;
        }
        char last[320];
        last_line(cr.tail, last, sizeof last);
        if (cr.code == 0 || cr.code == 3) {
            /* 3: the child measured nothing (every case unsupported): skipped, kept as it wrote it */
            if (own_dir) rename(path, fin);
            if (!exists(fin)) mkdir(fin, 0755);
            snprintf(ps[i].status, sizeof ps[i].status, "%s",
                     cr.code == 3 ? "skipped" : own_dir ? "ok" : run_status(fin));
            if (cr.code == 3 && !quiet)
                fprintf(stderr, "kvbench: %s measured nothing: marked skipped (%s)\n", p->id, last);
            char moved[2500];
            snprintf(moved, sizeof moved, "%s/log.txt", fin);
            if (!cr.log_errno) rename(log, moved);
        } else if (cr.timed_out) {
            /* stopped at its limit: whatever it wrote stays, marked */
            if (exists(path)) rename(path, fin);
            else mkdir(fin, 0755);
            snprintf(ps[i].status, sizeof ps[i].status, "timed_out");
            fprintf(stderr, "kvbench: %s stopped at %.0f s (budget %g s): marked timed_out\n", p->id,
                    ps[i].seconds, p->budget_s);
        } else {
            /* what a failed point wrote (a run on a full disk keeps its measurements in
             * its .partial directory) stays, under the point's name, marked failed */
            if (exists(path)) rename(path, fin);
            snprintf(ps[i].status, sizeof ps[i].status, "failed");
            fprintf(stderr, "kvbench: %s failed (exit %d): %s\n  its output: %s\n", p->id, cr.code,
                    last[0] ? last : "(no output)", log);
        }
        if (cr.log_errno) {
            /* the log is incomplete (a full disk, say): its end is printed here instead, and the sweep
             * stops, since the next point's results would not fit either */
            snprintf(msg, msg_len, "cannot write %s's log '%s': %s; the end of its output:\n%s", p->id, log,
                     strerror(cr.log_errno), cr.tail);
            st = KVB_STATUS_IO;
        }
        point_machine(fin, &own, &ps[i]);
        if (save_status(dir, p, &ps[i], st == KVB_STATUS_OK ? msg : why, st == KVB_STATUS_OK ? msg_len : sizeof why)) {
            if (st != KVB_STATUS_OK) fprintf(stderr, "kvbench: %s\n", why);
            st = KVB_STATUS_IO;
        }
        if (st == KVB_STATUS_OK && write_index(dir, pts, n, msg, msg_len) != 0) st = KVB_STATUS_IO;
        close(lk);                                   /* drops the lock: the child is gone */
    }
    if (st == KVB_STATUS_OK && write_index(dir, pts, n, msg, msg_len) != 0) st = KVB_STATUS_IO;
    if (st != KVB_STATUS_OK) write_index(dir, pts, n, why, sizeof why);   /* what can still be recorded */
out:
    for (int i = 0; i < n; i++) {
        if (only && strcmp(only, pts[i].id) != 0) continue;
        load_status(dir, &pts[i], &ps[i]);
        t->total++;
        const char *v = ps[i].status;
        if (strcmp(v, "ok") == 0) t->ok++;
        else if (strcmp(v, "cut_short") == 0) t->cut_short++;
        else if (strcmp(v, "skipped") == 0) t->skipped++;
        else if (strcmp(v, "timed_out") == 0) t->timed_out++;
        else if (strcmp(v, "failed") == 0) t->failed++;
        else t->missing++;
    }
    free(ps);
    free(pts);
    return st;
}

/* ---- merging ------------------------------------------------------------- */

/* A host name that can be a folder: letters, digits, '.', '-', '_', not
 * starting with '.' or '-', at most 64 characters; nothing read from a result
 * file becomes a path unchecked. */
static int plain_name(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 64 || h[0] == '.' || h[0] == '-') return 0;
    for (const char *c = h; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
              *c == '-' || *c == '_'))
            return 0;
    return 1;
}

/* machine.txt's `host:` value, whole (to the end of its line) */
static int host_of(const char *dir, char *host, size_t n)
{
    char path[2400];
    snprintf(path, sizeof path, "%s/machine.txt", dir);
    char *m = kvb_slurp(path);
    if (!m) return -1;
    int found = 0;
    for (const char *l = m; l && *l && !found; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, "host:", 5) == 0) {
            const char *v = l + 5, *e = strchr(v, '\n');
            while (*v == ' ' || *v == '\t') v++;
            size_t len = e ? (size_t)(e - v) : strlen(v);
            while (len && (v[len - 1] == ' ' || v[len - 1] == '\r' || v[len - 1] == '\t')) len--;
            snprintf(host, n, "%.*s", (int)len, v);
            if (len >= n) host[n - 2] = '~';      /* too long to be plain: refused below */
            found = 1;
        }
    free(m);
    return found ? 0 : -1;
}

/* "" when a and b define the same sweep, time budgets aside (a slower machine
 * may need longer); else the first key that differs */
static void definition_diff(const kvb_sweep *a, const kvb_sweep *b, char *what, size_t n)
{
    what[0] = 0;
    for (int pass = 0; pass < 2 && !what[0]; pass++) {
        const kvb_sweep *x = pass ? b : a, *y = pass ? a : b;
        for (int i = 0; i < x->n && !what[0]; i++) {
            if (strstr(x->key[i], ".budget")) continue;
            const char *v = get(y, x->key[i]);
            if (!v || strcmp(v, x->val[i]) != 0)
                snprintf(what, n, "%s = %s in one, %s in the other", x->key[i], x->val[i], v ? v : "unset");
        }
    }
}

kvb_status kvb_sweep_merge(const char *out_arg, const char *const *dirs, int n, char *msg, size_t msg_len)
{
    char hosts[16][256], path[2400], tmp[2400], out[2300], what[600];
    if (n < 1 || n > 16) {
        snprintf(msg, msg_len, "merge takes 1 to 16 sweep directories, got %d", n);
        return KVB_STATUS_INVALID_ARG;
    }
    snprintf(out, sizeof out, "%s", out_arg);
    size_t ol = strlen(out);
    while (ol > 1 && out[ol - 1] == '/') out[--ol] = 0;
    if (!out[0] || strlen(out_arg) >= sizeof out - 16) {
        snprintf(msg, msg_len, "merge OUT '%s': expected a new directory's name", out_arg);
        return KVB_STATUS_INVALID_ARG;
    }
    if (lexists(out)) {
        snprintf(msg, msg_len, "'%s' exists: merge writes a new directory", out);
        return KVB_STATUS_INVALID_ARG;
    }
    snprintf(tmp, sizeof tmp, "%s.partial", out);
    if (lexists(tmp)) {
        snprintf(msg, msg_len, "'%s' exists (an unfinished sweep or merge of that name): merge never removes it; "
                 "choose another OUT", tmp);
        return KVB_STATUS_INVALID_ARG;
    }
    kvb_sweep *first = calloc(2, sizeof *first), *other = first + 1;
    if (!first) { snprintf(msg, msg_len, "out of memory"); return KVB_STATUS_NO_MEMORY; }
    kvb_status st = KVB_STATUS_INVALID_ARG;
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/sweep.csv", dirs[i]);
        if (!exists(path) || host_of(dirs[i], hosts[i], sizeof hosts[i]) != 0) {
            snprintf(msg, msg_len, "'%s' is not a sweep directory (no sweep.csv or machine.txt with a host)",
                     dirs[i]);
            goto fail;
        }
        if (!plain_name(hosts[i])) {
            clean_field(hosts[i]);
            snprintf(msg, msg_len, "'%s': machine.txt's host '%s' is not a plain host name (letters, digits, '.', "
                     "'-', '_'; at most 64): refused, it would name a folder", dirs[i], hosts[i]);
            goto fail;
        }
        size_t len = strlen(dirs[i]);
        char *idx = kvb_slurp(path);
        int unfinished = (len >= 8 && strcmp(dirs[i] + len - 8, ".partial") == 0) ||
                         (idx && (strstr(idx, ",pending,") || strstr(idx, ",failed,")));
        free(idx);
        if (unfinished) {
            snprintf(msg, msg_len, "'%s' is an unfinished sweep: finish it with kvbench sweep --resume first", dirs[i]);
            goto fail;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(hosts[i], hosts[j]) == 0) {
                snprintf(msg, msg_len, "'%s' and '%s' both come from host %s: merge compares machines", dirs[j],
                         dirs[i], hosts[i]);
                goto fail;
            }
        /* one sweep across machines: the same definition, or the plots would set unlike beside unlike */
        kvb_sweep *d = i ? other : first;
        memset(d, 0, sizeof *d);
        snprintf(path, sizeof path, "%s/sweep.def", dirs[i]);
        if (kvb_sweep_load(d, path, what, sizeof what) != KVB_STATUS_OK) {
            snprintf(msg, msg_len, "'%s': no readable definition (%s)", dirs[i], what);
            goto fail;
        }
        definition_diff(first, d, what, sizeof what);
        if (what[0]) {
            snprintf(msg, msg_len, "'%s' and '%s' are different sweeps (%s): merge sets one sweep's results "
                     "from several machines side by side", dirs[0], dirs[i], what);
            goto fail;
        }
    }
    st = KVB_STATUS_IO;
    snprintf(path, sizeof path, "%s/machines", tmp);
    if (mkdir(tmp, 0755) != 0) {
        snprintf(msg, msg_len, "cannot create '%s': %s", tmp, strerror(errno));
        goto fail;
    }
    if (mkdir(path, 0755) != 0) {
        snprintf(msg, msg_len, "cannot create '%s': %s", path, strerror(errno));
        goto fail_rm;
    }
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/machines/%s", tmp, hosts[i]);
        char *argv[] = {"cp", "-R", "--", (char *)dirs[i], path, NULL};
        pid_t pid;
        int status = 1;
        if (posix_spawnp(&pid, "cp", NULL, NULL, argv, environ) == 0) waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            snprintf(msg, msg_len, "copying '%s' to '%s' failed (cp said why above)", dirs[i], path);
            goto fail_rm;
        }
    }
    /* the report before the rename: a finished-looking directory always has one */
    if ((st = kvb_report(tmp, msg, msg_len)) != KVB_STATUS_OK) goto fail_rm;
    if (rename(tmp, out) != 0) {
        snprintf(msg, msg_len, "cannot rename '%s' to '%s': %s", tmp, out, strerror(errno));
        st = KVB_STATUS_IO;
        goto fail_rm;
    }
    free(first);
    return KVB_STATUS_OK;
fail_rm:
    remove_tree(tmp);
    if (st == KVB_STATUS_OK || st == KVB_STATUS_INVALID_ARG) st = KVB_STATUS_IO;
fail:
    free(first);
    return st;
}
