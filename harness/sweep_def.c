/* sweep_def.c: a sweep's definition (see sweep.h): its keys read from a file
 * or --set, checked, saved back as sweep.def, and expanded into the points'
 * commands. */
#define _GNU_SOURCE
#include "sweep.h"
#include "sweep_int.h"
#include "../base/afile.h"
#include "../model/model.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const known_keys[] = {
    "run.preset",    "run.backends",     "run.dtypes",      "run.blocks",     "run.threads",
    "run.prompt",    "run.tokens",       "run.reps",        "run.warmup",     "run.max_seq",
    "run.group",     "run.budget",       "attend.backends", "attend.dtypes",  "attend.shapes",
    "attend.ctxs",   "attend.blocks",    "attend.threads",  "attend.reps",    "attend.group",
    "attend.budget", "quality.preset",   "quality.dtypes",  "quality.tokens", "quality.max_seq",
    "quality.group", "quality.residual", "quality.budget",  "serve.preset",   "serve.backends",
    "serve.blocks",  "serve.sequences",  "serve.budget",    "run.ceilings",   "attend.ceilings",
};
enum { N_KNOWN = (int)(sizeof known_keys / sizeof known_keys[0]) };

static void trim(char *s)
{
    size_t n = strlen(s), i = 0;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = 0;
    while (s[i] == ' ' || s[i] == '\t') i++;
    memmove(s, s + i, n - i + 1);
}

kvb_status kvb_sweep_set(kvb_sweep *s, const char *assignment, char *msg, size_t msg_len)
{
    char key[64], val[512];
    const char *eq = strchr(assignment, '=');
    if (!eq || (size_t)(eq - assignment) >= sizeof key || strlen(eq + 1) >= sizeof val) {
        snprintf(msg, msg_len, "'%s': expected section.key=value (e.g. run.tokens=512)",
                 assignment);
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
        static const char *const per_backend[] = {"run.tokens", "run.reps",   "run.warmup",
                                                  "run.prompt", "run.budget", "run.max_seq"};
        for (size_t i = 0; i < sizeof per_backend / sizeof per_backend[0]; i++)
            known |= strcmp(base, per_backend[i]) == 0 && at[1];
        if (!known) {
            snprintf(msg, msg_len,
                     "sweep key '%s': a per-backend value (KEY@BACKEND) is allowed for run.tokens, "
                     "run.reps, run.warmup, run.prompt, run.budget and run.max_seq",
                     key);
            return KVB_STATUS_INVALID_ARG;
        }
    }
    for (int i = 0; i < N_KNOWN; i++) known |= strcmp(key, known_keys[i]) == 0;
    if (!known) {
        snprintf(
            msg, msg_len,
            "unknown sweep key '%s': allowed are run.{preset,backends,dtypes,blocks,threads,"
            "prompt,tokens,reps,warmup,max_seq,group,budget}, "
            "attend.{backends,dtypes,shapes,ctxs,blocks,threads,"
            "reps,group,budget}, quality.{preset,dtypes,tokens,max_seq,group,residual,budget}, "
            "serve.{preset,backends,blocks,"
            "sequences,budget}",
            key);
        return KVB_STATUS_INVALID_ARG;
    }
    /* what sweep.def cannot hold back (a newline, '#' starts a comment) would
     * make --resume run another definition: refused, as in the key */
    if (strlen(key) >= sizeof s->key[0] ||
        strspn(key, "abcdefghijklmnopqrstuvwxyz0123456789._@-") != strlen(key)) {
        snprintf(msg, msg_len,
                 "sweep key '%s': at most %zu characters of a-z, 0-9, '.', '_', '@' and '-'", key,
                 sizeof s->key[0] - 1);
        return KVB_STATUS_INVALID_ARG;
    }
    int ctl = 0;
    for (const unsigned char *c = (const unsigned char *)val; *c; c++)
        ctl |= *c < 0x20 || *c == 0x7f;
    if (!val[0] || strlen(val) >= sizeof s->val[0] || ctl || strpbrk(val, " \t'\"\\$`;|&<>#")) {
        snprintf(msg, msg_len,
                 "sweep key '%s': value '%s' must be non-empty, under %zu characters, without "
                 "spaces, control characters, '#' or shell characters",
                 key, val, sizeof s->val[0]);
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
            snprintf(msg, msg_len, "%s:%d: line of %zu bytes: at most %d", where, ln, j - i,
                     KVB_SWEEP_MAX_LINE);
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
    if (stat(file, &st) != 0 ||
        (S_ISREG(st.st_mode) && (fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0) ||
        (fd >= 0 && fstat(fd, &st) != 0)) {
        snprintf(msg, msg_len, "cannot read sweep file '%s': %s", file, strerror(errno));
        if (fd >= 0) close(fd);
        return KVB_STATUS_IO;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(msg, msg_len, "sweep file '%s' is not a regular file (%s)", file,
                 S_ISDIR(st.st_mode)                          ? "a directory"
                 : S_ISFIFO(st.st_mode)                       ? "a FIFO"
                 : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                                                              : "a socket or other special file");
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
    if (!text) {
        close(fd);
        snprintf(msg, msg_len, "out of memory");
        return KVB_STATUS_NO_MEMORY;
    }
    size_t len = 0;
    for (;;) { /* to its end, or past the limit if it grows meanwhile */
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
        snprintf(msg, msg_len, "sweep file '%s' grew past %d bytes while read", file,
                 KVB_SWEEP_MAX_FILE);
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
    kvb_afile a;
    if (kvb_afile_open(&a, file, msg, msg_len)) return KVB_STATUS_IO;
    fprintf(a.f, "# sweep %s, as run (kvbench sweep --resume reads this)\n", s->name);
    for (int i = 0; i < s->n; i++) fprintf(a.f, "%s = %s\n", s->key[i], s->val[i]);
    return kvb_afile_commit(&a, msg, msg_len) ? KVB_STATUS_IO : KVB_STATUS_OK;
}

const char *kvb_sweep_get(const kvb_sweep *s, const char *key)
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
    const char *v = kvb_sweep_get(s, k);
    return v ? v : kvb_sweep_get(s, key);
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

static int is_quant(const char *dt)
{
    return dt[0] == 'q';
}

/* Appends words to a point's argv, copying them into its buffer. */
static int add_args(kvb_sweep_point *p, size_t *used, int n, ...)
{
    va_list ap;
    va_start(ap, n);
    int ok = 1;
    for (int i = 0; i < n && ok; i++) {
        const char *w = va_arg(ap, const char *);
        size_t len = strlen(w) + 1;
        if (p->argc + 1 >= KVB_SWEEP_MAX_ARGS || *used + len > sizeof p->buf) {
            ok = 0;
            break;
        }
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
    const char *v = kvb_sweep_get(s, key);
    return v ? atof(v) : dflt;
}

/* A point name for a model path: its last component (a config.json's folder),
 * with what is not [a-z0-9.] made '_'. */
static void model_point_name(const char *path, char *out, size_t n)
{
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s", path);
    size_t len = strlen(tmp);
    while (len > 1 && tmp[len - 1] == '/') tmp[--len] = 0;
    char *base = strrchr(tmp, '/');
    if (base && strcmp(base, "/config.json") == 0 && base > tmp) {
        *base = 0;
        base = strrchr(tmp, '/');
    }
    snprintf(out, n, "%s", base ? base + 1 : tmp);
    for (char *q = out; *q; q++)
        if (!((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '.')) *q = '_';
}

/* What each key's items must be: the kinds below, each item checked here so a
 * bad value is refused before the machine is measured or a directory made. */
enum { V_BACKEND, V_DTYPE, V_PRESET, V_SHAPE, V_BUDGET, V_INT, V_ONOFF };
static const struct {
    const char *key;
    int kind, list;
    long long lo, hi;
} value_rules[] = {
    {"preset", V_PRESET, 0, 0, 0},     {"backends", V_BACKEND, 1, 0, 0},
    {"dtypes", V_DTYPE, 1, 0, 0},      {"shapes", V_SHAPE, 1, 0, 0},
    {"budget", V_BUDGET, 0, 0, 0},     {"blocks", V_INT, 1, 1, 1 << 24},
    {"threads", V_INT, 1, 1, 1024},    {"ctxs", V_INT, 1, 1, 1 << 24},
    {"prompt", V_INT, 0, 1, 1 << 20},  {"tokens", V_INT, 0, 1, 1 << 20},
    {"reps", V_INT, 0, 1, 1000},       {"warmup", V_INT, 0, 0, 1 << 20},
    {"max_seq", V_INT, 0, 1, 1 << 24}, {"group", V_INT, 0, 8, 256},
    {"sequences", V_INT, 0, 1, 4096},  {"residual", V_INT, 0, 0, 65536},
    {"ceilings", V_ONOFF, 0, 0, 0},
};

static void backend_names(char *buf, size_t n)
{
    buf[0] = 0;
    for (int i = 0; i < kvb_backend_count(); i++)
        snprintf(buf + strlen(buf), n - strlen(buf), "%s%s", i ? ", " : "",
                 kvb_backend_at(i)->name);
}

static int check_item(const char *key, int kind, long long lo, long long hi, const char *item,
                      char *msg, size_t msg_len)
{
    char names[256], *end;
    kvb_dtype dt;
    kvb_model_config cfg;
    switch (kind) {
    case V_BACKEND:
        if (kvb_backend_find(item)) return 0;
        backend_names(names, sizeof names);
        snprintf(msg, msg_len, "sweep key '%s': unknown backend '%s' (allowed: %s)", key, item,
                 names);
        return -1;
    case V_DTYPE:
        if (kvb_dtype_parse(item, &dt) == KVB_STATUS_OK) return 0;
        snprintf(msg, msg_len,
                 "sweep key '%s': unknown storage type '%s' (kvbench list shows them)", key, item);
        return -1;
    case V_ONOFF:
        if (strcmp(item, "on") == 0 || strcmp(item, "off") == 0) return 0;
        snprintf(msg, msg_len, "sweep key '%s': '%s' (allowed: on, off)", key, item);
        return -1;
    case V_PRESET:
        if (kvb_model_preset(item, &cfg) == KVB_STATUS_OK) return 0;
        snprintf(msg, msg_len, "sweep key '%s': unknown preset '%s' (kvbench list shows them)", key,
                 item);
        return -1;
    case V_SHAPE: {
        int nh, nkv, hd;
        char tail;
        struct stat sb;
        if ((sscanf(item, "%d/%d/%d%c", &nh, &nkv, &hd, &tail) == 3 && nh > 0 && nkv > 0 &&
             hd > 0) ||
            kvb_model_preset(item, &cfg) == KVB_STATUS_OK ||
            (strchr(item, '/') && !stat(item, &sb)))
            return 0;
        snprintf(msg, msg_len,
                 "attend.shapes: '%s' is not HEADS/KV_HEADS/HEAD_DIM (e.g. 32/8/128), "
                 "a preset (kvbench list) or an existing model file or directory (a path with '/')",
                 item);
        return -1;
    }
    case V_BUDGET: {
        errno = 0;
        double v = strtod(item, &end);
        if (!errno && end != item && !*end && isfinite(v) && v > 0 && v <= 1e6) return 0;
        snprintf(msg, msg_len,
                 "sweep key '%s': budget '%s' must be a positive number of seconds, at most 1e6",
                 key, item);
        return -1;
    }
    default: {
        errno = 0;
        long long v = strtoll(item, &end, 10);
        if (!errno && end != item && !*end && v >= lo && v <= hi) return 0;
        snprintf(msg, msg_len, "sweep key '%s': '%s' is not a whole number from %lld to %lld", key,
                 item, lo, hi);
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
        snprintf(field, sizeof field, "%.*s",
                 (int)((at ? at : key + strlen(key)) - (dot ? dot + 1 : key)), dot ? dot + 1 : key);
        if (at && !kvb_backend_find(at + 1)) {
            char names[256];
            backend_names(names, sizeof names);
            snprintf(msg, msg_len, "sweep key '%s': unknown backend '%s' after '@' (allowed: %s)",
                     key, at + 1, names);
            return -1;
        }
        /* the items, each non-empty and each once: a repeated one would make two points with one
         * name */
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
                    snprintf(msg, msg_len,
                             "sweep key '%s': '%s' is repeated in '%s' (each value is one point)",
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
                if (check_item(key, value_rules[r].kind, value_rules[r].lo, value_rules[r].hi,
                               items[j], msg, msg_len))
                    return -1;
        }
    }
    return 0;
}

#define OR(v, d) ((v) ? (v) : (d))

/* a KEY = off: its points skip the read ceiling (kvbench ab's rounds time the two
 * commits against each other, not against the memory) */
static int off(const kvb_sweep *s, const char *key)
{
    const char *v = kvb_sweep_get(s, key);
    return v && strcmp(v, "off") == 0;
}

/* The next point, cleared, of that kind; NULL when the list is full (*overflow set). */
static kvb_sweep_point *new_point(kvb_sweep_point *pts, int n, size_t cap, const char *kind,
                                  int *overflow)
{
    if (n >= (int)cap) {
        *overflow = 1;
        return NULL;
    }
    kvb_sweep_point *p = &pts[n];
    memset(p, 0, sizeof *p);
    snprintf(p->kind, sizeof p->kind, "%s", kind);
    return p;
}

int kvb_sweep_expand(const kvb_sweep *s, const char *out_dir, kvb_sweep_point **out, char *msg,
                     size_t msg_len)
{
    enum { MAXL = 16 };
    size_t cap = 256;
    kvb_sweep_point *pts = calloc(cap, sizeof *pts);
    if (!pts) {
        snprintf(msg, msg_len, "out of memory");
        return -1;
    }
    int n = 0, overflow = 0;
    char b1[512], b2[512], b3[512], b4[512], b5[512], path[2400], num[32];
    char *backs[MAXL], *dts[MAXL], *blocks[MAXL], *threads[MAXL], *shapes[MAXL];
    if (check_values(s, msg, msg_len) != 0) {
        free(pts);
        return -1;
    }

    /* decode runs: backend x dtype x block (paged) x threads */
    if (kvb_sweep_get(s, "run.backends")) {
        int nb = split(kvb_sweep_get(s, "run.backends"), b1, sizeof b1, backs, MAXL);
        int nd = split(OR(kvb_sweep_get(s, "run.dtypes"), "f32"), b2, sizeof b2, dts, MAXL);
        int nk = split(OR(kvb_sweep_get(s, "run.blocks"), "16"), b3, sizeof b3, blocks, MAXL);
        int nt = split(OR(kvb_sweep_get(s, "run.threads"), "1"), b4, sizeof b4, threads, MAXL);
        const char *preset = OR(kvb_sweep_get(s, "run.preset"), "stories15m");
        for (int i = 0; i < nb; i++)
            for (int j = 0; j < nd; j++)
                for (int k = 0; k < nk; k++)
                    for (int t = 0; t < nt; t++) {
                        int nocache = strcmp(backs[i], "nocache") == 0,
                            paged = strncmp(backs[i], "paged", 5) == 0;
                        int quant = strcmp(backs[i], "quant") == 0;
                        if (nocache && j > 0) continue; /* stores nothing: one point */
                        if (!nocache && quant != is_quant(dts[j])) continue;
                        if (!paged && k > 0) continue;
                        kvb_sweep_point *p = new_point(pts, n, cap, "run", &overflow);
                        if (!p) continue;
                        snprintf(p->id, sizeof p->id, "run-%s-%s-%s%s%s-t%s", preset, backs[i],
                                 nocache ? "f32" : dts[j], paged ? "-bs" : "",
                                 paged ? blocks[k] : "", threads[t]);
                        const char *bud = get_for(s, "run.budget", backs[i]);
                        p->budget_s = bud ? atof(bud) : 120;
                        snprintf(path, sizeof path, "%s/points/%s", out_dir, p->id);
                        snprintf(num, sizeof num, "%g", p->budget_s);
                        size_t used = 0;
                        int ok = add_args(p, &used, 12, "run", "--preset", preset, "--backend",
                                          backs[i], "--dtype", nocache ? "f32" : dts[j],
                                          "--threads", threads[t], "--time-budget", num, "--quiet");
                        if (paged) ok = ok && add_args(p, &used, 2, "--block", blocks[k]);
                        static const char *const opt[][2] = {
                            {"run.prompt", "--prompt"},   {"run.tokens", "--tokens"},
                            {"run.reps", "--reps"},       {"run.warmup", "--warmup"},
                            {"run.max_seq", "--max-seq"}, {"run.group", "--group"}};
                        for (size_t o = 0; o < sizeof opt / sizeof opt[0]; o++)
                            if (get_for(s, opt[o][0], backs[i]))
                                ok = ok && add_args(p, &used, 2, opt[o][1],
                                                    get_for(s, opt[o][0], backs[i]));
                        if (off(s, "run.ceilings"))
                            ok = ok && add_args(p, &used, 1, "--no-ceilings");
                        ok = ok && add_args(p, &used, 2, "--out", path);
                        if (!ok) goto too_long;
                        n++;
                    }
    }

    /* attend tables: shape x backend x dtype x threads; contexts and block sizes inside */
    if (kvb_sweep_get(s, "attend.backends")) {
        int nb = split(kvb_sweep_get(s, "attend.backends"), b1, sizeof b1, backs, MAXL);
        int nd = split(OR(kvb_sweep_get(s, "attend.dtypes"), "f32"), b2, sizeof b2, dts, MAXL);
        int nt = split(OR(kvb_sweep_get(s, "attend.threads"), "1"), b4, sizeof b4, threads, MAXL);
        int ns =
            split(OR(kvb_sweep_get(s, "attend.shapes"), "32/8/128"), b5, sizeof b5, shapes, MAXL);
        for (int h = 0; h < ns; h++) {
            int nh = 0, nkv = 0, hd = 0;
            char tail, sname[48], a[16], b[16], c[16];
            kvb_model_config mc;
            /* a preset's KV shape, or a model file's (read by the point's attend --model) */
            if (kvb_model_preset(shapes[h], &mc) == KVB_STATUS_OK) {
                nh = mc.n_heads, nkv = mc.n_kv_heads, hd = mc.head_dim;
                snprintf(sname, sizeof sname, "%s", shapes[h]);
            } else if (sscanf(shapes[h], "%d/%d/%d%c", &nh, &nkv, &hd, &tail) == 3)
                snprintf(sname, sizeof sname, "%dx%dx%d", nh, nkv, hd);
            else
                model_point_name(shapes[h], sname, sizeof sname);
            snprintf(a, sizeof a, "%d", nh);
            snprintf(b, sizeof b, "%d", nkv);
            snprintf(c, sizeof c, "%d", hd);
            for (int i = 0; i < nb; i++)
                for (int j = 0; j < nd; j++)
                    for (int t = 0; t < nt; t++) {
                        int paged = strncmp(backs[i], "paged", 5) == 0,
                            quant = strcmp(backs[i], "quant") == 0;
                        if (quant != is_quant(dts[j]) || strcmp(backs[i], "nocache") == 0) continue;
                        kvb_sweep_point *p = new_point(pts, n, cap, "attend", &overflow);
                        if (!p) continue;
                        snprintf(p->id, sizeof p->id, "attend-%s-%s-%s-t%s", sname, backs[i],
                                 dts[j], threads[t]);
                        p->budget_s = budget_of(s, "attend", 120);
                        snprintf(path, sizeof path, "%s/points/%s.partial/attend.csv", out_dir,
                                 p->id);
                        size_t used = 0;
                        /* the contiguous cache runs beside every other backend in the same command,
                         * so the ratio to it (ratio_to_contiguous: f32 for quantized types) is
                         * measured within one run */
                        char bl[80], dl[40];
                        int contig = strcmp(backs[i], "contiguous") == 0;
                        snprintf(bl, sizeof bl, "%s%s", contig ? "" : "contiguous,", backs[i]);
                        snprintf(dl, sizeof dl, "%s%s", contig ? "" : quant ? "f32," : "", dts[j]);
                        int ok = add_args(p, &used, 11, "attend", "--backend", bl, "--dtype", dl,
                                          "--threads", threads[t], "--ctx",
                                          OR(kvb_sweep_get(s, "attend.ctxs"), "1024,8192"), "--csv",
                                          path);
                        ok = ok && (nh ? add_args(p, &used, 6, "--heads", a, "--kv-heads", b,
                                                  "--head-dim", c)
                                       : add_args(p, &used, 2, "--model", shapes[h]));
                        if (paged)
                            ok = ok && add_args(p, &used, 2, "--block",
                                                OR(kvb_sweep_get(s, "attend.blocks"), "16"));
                        if (off(s, "attend.ceilings"))
                            ok = ok && add_args(p, &used, 1, "--no-ceilings");
                        if (kvb_sweep_get(s, "attend.reps"))
                            ok = ok &&
                                 add_args(p, &used, 2, "--reps", kvb_sweep_get(s, "attend.reps"));
                        if (quant && kvb_sweep_get(s, "attend.group"))
                            ok = ok &&
                                 add_args(p, &used, 2, "--group", kvb_sweep_get(s, "attend.group"));
                        if (!ok) goto too_long;
                        n++;
                    }
        }
    }

    /* quality: one run of the f32 cache and every lossy type, teacher-forced */
    overflow |= n + 2 > (int)cap; /* room for quality and serve */
    if (kvb_sweep_get(s, "quality.dtypes") && !overflow) {
        kvb_sweep_point *p = &pts[n];
        memset(p, 0, sizeof *p);
        const char *preset = OR(kvb_sweep_get(s, "quality.preset"), "stories15m");
        snprintf(p->kind, sizeof p->kind, "quality");
        snprintf(p->id, sizeof p->id, "quality-%s", preset);
        p->budget_s = budget_of(s, "quality", 300);
        char dlist[300];
        snprintf(dlist, sizeof dlist, "f32,%s", kvb_sweep_get(s, "quality.dtypes"));
        snprintf(path, sizeof path, "%s/points/%s", out_dir, p->id);
        size_t used = 0;
        int ok = add_args(p, &used, 14, "run", "--preset", preset, "--backend", "contiguous,quant",
                          "--dtype", dlist, "--untied", "--reps", "1", "--warmup", "0", "--quiet",
                          "--no-ceilings");
        if (kvb_sweep_get(s, "quality.tokens"))
            ok = ok && add_args(p, &used, 2, "--tokens", kvb_sweep_get(s, "quality.tokens"));
        if (kvb_sweep_get(s, "quality.max_seq"))
            ok = ok && add_args(p, &used, 2, "--max-seq", kvb_sweep_get(s, "quality.max_seq"));
        if (kvb_sweep_get(s, "quality.group"))
            ok = ok && add_args(p, &used, 2, "--group", kvb_sweep_get(s, "quality.group"));
        if (kvb_sweep_get(s, "quality.residual"))
            ok = ok && add_args(p, &used, 2, "--residual", kvb_sweep_get(s, "quality.residual"));
        ok = ok && add_args(p, &used, 2, "--out", path);
        if (!ok) goto too_long;
        n++;
    }

    /* serving: the same requests on each backend under one budget */
    if (kvb_sweep_get(s, "serve.backends") && !overflow) {
        kvb_sweep_point *p = &pts[n];
        memset(p, 0, sizeof *p);
        const char *preset = OR(kvb_sweep_get(s, "serve.preset"), "stories15m");
        snprintf(p->kind, sizeof p->kind, "serve");
        snprintf(p->id, sizeof p->id, "serve-%s", preset);
        p->budget_s = budget_of(s, "serve", 120);
        snprintf(path, sizeof path, "%s/points/%s.partial/serve.csv", out_dir, p->id);
        size_t used = 0;
        int ok = add_args(p, &used, 10, "serve-sim", "--preset", preset, "--backend",
                          kvb_sweep_get(s, "serve.backends"), "--block",
                          OR(kvb_sweep_get(s, "serve.blocks"), "16"), "--no-attend", "--csv", path);
        if (kvb_sweep_get(s, "serve.sequences"))
            ok = ok && add_args(p, &used, 2, "--sequences", kvb_sweep_get(s, "serve.sequences"));
        if (!ok) goto too_long;
        n++;
    }
    if (overflow) {
        snprintf(msg, msg_len, "more than %zu points: split the sweep", cap - 2);
        free(pts);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (strlen(pts[i].id) + 1 >= sizeof pts[i].id || strchr(pts[i].id, '/') ||
            pts[i].id[0] == '.') {
            snprintf(msg, msg_len, "point name too long or not a folder name: %.60s...", pts[i].id);
            free(pts);
            return -1;
        }
    if (n == 0) {
        snprintf(msg, msg_len,
                 "sweep '%s' has no points: set at least one of run.backends, attend.backends, "
                 "quality.dtypes, serve.backends",
                 s->name);
        free(pts);
        return -1;
    }
    *out = pts;
    return n;
too_long: /* pts[n] is the point being built */
    snprintf(msg, msg_len, "point %s: command too long", pts[n].id);
    free(pts);
    return -1;
}
