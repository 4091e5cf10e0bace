/* compare_load.c: compare's file readers (compare_int.h): cases from what
 * kvbench wrote: tokens.csv and summary.json of decode runs, attend.csv of
 * attend points (each round's time), quality.csv, and Google Benchmark's JSON.
 * Whatever cannot be judged is refused with the file and line, never
 * skipped: a skipped row is a case the gate silently stops checking. */
#define _XOPEN_SOURCE 700
#include "compare_int.h"
#include "../base/columns.h"
#include "../base/csv.h"
#include "../base/json.h"
#include "../base/textio.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- reading: errors name the file and line ------------------------------------- */

int kvb_cmp_fail(ld *L, const char *fmt, ...)
{
    if (!L->bad) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(L->msg, L->len, fmt, ap);
        va_end(ap);
    }
    L->bad = 1;
    return -1;
}

/* The case of that name and kind, made on first use: a side of several runs
 * (a baseline's runs/) pools each case's samples across them; one file naming
 * a case twice (two points of one label) is refused. */
static kvb_cmp_case *add_case(ld *L, const char *file, kvb_cmp_kind kind, const char *fmt, ...)
{
    kvb_cmp_set *s = L->s;
    char name[sizeof s->c[0].name];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    for (int i = 0; i < s->n; i++)
        if (s->c[i].kind == kind && strcmp(s->c[i].name, name) == 0) {
            if (s->c[i].load == s->load) {
                kvb_cmp_fail(L,
                             "'%s' holds two results named '%s' (repeated list items make points "
                             "of one label; "
                             "a result must name each once)",
                             file, name);
                return NULL;
            }
            s->c[i].load = s->load;
            return &s->c[i];
        }
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        kvb_cmp_case *c = realloc(s->c, (size_t)cap * sizeof *c);
        if (!c) {
            kvb_cmp_fail(L, "out of memory reading '%s'", file);
            return NULL;
        }
        s->c = c;
        s->cap = cap;
    }
    kvb_cmp_case *c = &s->c[s->n++];
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->load = s->load;
    snprintf(c->name, sizeof c->name, "%s", name);
    return c;
}

static void push(kvb_cmp_case *c, double v)
{
    if (c && c->n < KVB_CMP_MAX_SAMPLES && isfinite(v)) c->v[c->n++] = v;
}

/* A pooled case keeps its kernels when every run agrees. */
static void tag_kernel(kvb_cmp_case *c, const char *kernel)
{
    if (!c) return;
    if (c->n <= 1)
        snprintf(c->kernel, sizeof c->kernel, "%s", kernel);
    else if (strcmp(c->kernel, kernel) != 0)
        snprintf(c->kernel, sizeof c->kernel, "mixed");
}

/* A whole field as a finite number: 1 yes, 0 empty, -1 anything else. */
static int num(const char *f, double *v)
{
    while (*f == ' ') f++;
    if (!*f) return 0;
    char *e;
    errno = 0;
    *v = strtod(f, &e);
    while (*e == ' ') e++;
    return *e == 0 && e != f && isfinite(*v) ? 1 : -1;
}

/* A file's rows, any length; a last line without its newline is a file cut
 * short (kvbench ends every line). */
typedef struct lines {
    kvb_csv c;
    const char *path;
} lines;

static int open_rows(ld *L, lines *r, const char *path)
{
    char msg[600];
    r->path = path;
    if (kvb_csv_open(&r->c, path, msg, sizeof msg) == 0) return 0;
    kvb_cmp_fail(L, "%s", msg);
    return -1;
}

/* 1: the next row in r->c; 0: the end, or a truncated line (L->bad set). */
static int next_row(ld *L, lines *r)
{
    int k = kvb_csv_next(&r->c);
    if (k < 0) return kvb_cmp_fail(L, "out of memory reading '%s'", r->path), 0;
    if (k == 0) return 0;
    if (r->c.cut) {
        kvb_cmp_fail(L, "'%s' line %d: cut short (no end of line): the file is truncated", r->path,
                     r->c.no);
        return 0;
    }
    return 1;
}

/* A number field of a row: must be a finite number, >= lo, or > lo when strict;
 * counts (steps, contexts, threads) also below KVB_CMP_MAX_COUNT, so they fit an int. */
enum { KVB_CMP_MAX_COUNT = 1000000000 };
static int field(ld *L, const lines *r, const char *col, const char *f, double lo, int strict,
                 double *v)
{
    int k = num(f, v);
    int count = !strcmp(col, "step") || !strcmp(col, "rep") || !strcmp(col, "ctx") ||
                !strcmp(col, "threads") || !strcmp(col, "layer");
    if (k < 0 || (k == 1 && (strict ? !(*v > lo) : !(*v >= lo))) ||
        (k == 1 && count && *v >= KVB_CMP_MAX_COUNT))
        return kvb_cmp_fail(
            L, "'%s' line %d: %s '%s' is not a usable value (allowed: a number %s %g%s)", r->path,
            r->c.no, col, f, strict ? ">" : ">=", lo, count ? " and below 1e9" : "");
    if (k == 0) return kvb_cmp_fail(L, "'%s' line %d: %s is empty", r->path, r->c.no, col);
    return 0;
}

/* ---- decode runs: per-repetition totals, and the cache's final bytes ------- */

static int read_kernels(const cJSON *meta, const char *label, char *out, size_t n);

/* A JSON file beside the rows: NULL when it is missing (nothing to read), or
 * when it is not JSON (refused, L->bad set). */
static cJSON *load_json(ld *L, const char *path)
{
    char msg[600];
    int err;
    cJSON *j = kvb_json_load(path, &err, msg, sizeof msg);
    if (!j && err != ENOENT) kvb_cmp_fail(L, "%s", msg);
    return j;
}

/* summary.json's cache bytes of each point: deterministic, any growth regresses */
static void load_run_bytes(ld *L, const char *path, const char *prefix)
{
    cJSON *sum = load_json(L, path);
    L->s->load++;
    const cJSON *p;
    cJSON_ArrayForEach(p, kvb_json_at(sum, KVB_KEY_POINTS))
    {
        char lb[96];
        if (L->bad || !kvb_json_str_at(p, KVB_KEY_LABEL) ||
            !cJSON_IsObject(kvb_json_at(p, KVB_KEY_CACHE_BYTES)))
            continue;
        kvb_json_copy_at(p, KVB_KEY_LABEL, lb, sizeof lb);
        double used = kvb_json_num_at(p, KVB_PATH_USED),
               reserved = kvb_json_num_at(p, KVB_PATH_RESERVED);
        if (used < 0 || reserved < 0) {
            kvb_cmp_fail(L, "'%s': %s: cache bytes %g used, %g reserved: a negative byte count",
                         path, lb, used, reserved);
            break;
        }
        if (isfinite(used))
            push(add_case(L, path, KVB_CMP_EXACT, "%sdecode(%s)/used_bytes", prefix, lb), used);
        if (isfinite(reserved))
            push(add_case(L, path, KVB_CMP_EXACT, "%sdecode(%s)/reserved_bytes", prefix, lb),
                 reserved);
    }
    cJSON_Delete(sum);
}

void kvb_cmp_load_run(ld *L, const char *dir, const char *prefix)
{
    char path[2400];
    snprintf(path, sizeof path, "%s/tokens.csv", dir);
    lines r;
    if (open_rows(L, &r, path)) return;
    L->s->load++;
    /* backend,dtype,mode,rep,step,position,token,step_ns,...[,phase], by name where
     * there is a header: the prefill's row (phase "prefill", step -1) is not part of
     * a decode total */
    enum { C_BACKEND, C_DTYPE, C_MODE, C_REP, C_STEP, C_NS, NC };
    static const char *const names[NC] = {KVB_COL_BACKEND, KVB_COL_DTYPE, KVB_COL_MODE,
                                          KVB_COL_REP,     KVB_COL_STEP,  KVB_COL_STEP_NS};
    int col[NC] = {0, 1, 2, 3, 4, 7}, need = 7, c_phase = -1;
    enum { MAXL = 32, MAXR = KVB_CMP_MAX_SAMPLES };
    char label[MAXL][96];
    double total[MAXL][MAXR];
    int steps[MAXL][MAXR], last[MAXL][MAXR], nl = 0;
    memset(steps, 0, sizeof steps);
    while (!L->bad && next_row(L, &r)) {
        char **f = r.c.field;
        int nf = r.c.n;
        if (r.c.no == 1 && nf && strcmp(f[0], KVB_COL_BACKEND) == 0) {
            if (kvb_csv_header(&r.c)) {
                kvb_cmp_fail(L, "out of memory reading '%s'", path);
                break;
            }
            need = kvb_csv_columns(&r.c, names, col, NC);
            c_phase = kvb_csv_column(&r.c, KVB_COL_PHASE);
            if (need < 0)
                kvb_cmp_fail(L,
                             "'%s' line 1: not a tokens table's header (needs backend, dtype, "
                             "mode, rep, step, "
                             "step_ns)",
                             path);
            if (c_phase > need) need = c_phase;
            continue;
        }
        if (nf <= need) {
            kvb_cmp_fail(L, "'%s' line %d: %d fields, a row has at least %d", path, r.c.no, nf,
                         need + 1);
            break;
        }
        if ((c_phase >= 0 && strcmp(f[c_phase], KVB_PHASE_DECODE) != 0) ||
            (c_phase < 0 && !strcmp(f[col[C_STEP]], "-1")))
            continue;
        char lb[96];
        snprintf(lb, sizeof lb, "%s/%s/%s", f[col[C_BACKEND]], f[col[C_DTYPE]], f[col[C_MODE]]);
        int i = 0;
        while (i < nl && strcmp(label[i], lb)) i++;
        if (i == nl) {
            if (nl == MAXL) {
                kvb_cmp_fail(L, "'%s' line %d: more than %d labels", path, r.c.no, MAXL);
                break;
            }
            snprintf(label[nl], sizeof label[nl], "%s", lb);
            for (int k = 0; k < MAXR; k++) total[nl][k] = 0, last[nl][k] = -1;
            nl++;
        }
        double rep, step, ns;
        if (field(L, &r, "rep", f[col[C_REP]], 0, 0, &rep) ||
            field(L, &r, "step", f[col[C_STEP]], 0, 0, &step) ||
            field(L, &r, "step_ns", f[col[C_NS]], 0, 1, &ns))
            break;
        if (rep >= MAXR) {
            kvb_cmp_fail(L, "'%s' line %d: repetition %g (at most %d are read)", path, r.c.no, rep,
                         MAXR);
            break;
        }
        int k = (int)rep;
        /* a label's steps count up within a repetition: a step again is a second point of that
         * label */
        if ((int)step <= last[i][k]) {
            kvb_cmp_fail(
                L,
                "'%s' line %d: %s repetition %d step %d comes twice (two points with one label?)",
                path, r.c.no, lb, k, (int)step);
            break;
        }
        last[i][k] = (int)step;
        total[i][k] += ns;
        steps[i][k]++;
    }
    kvb_csv_close(&r.c);
    if (L->bad) return;
    for (int i = 0; i < nl; i++) {
        int full = 0; /* repetitions that decoded every step */
        for (int k = 0; k < MAXR; k++) full = steps[i][k] > full ? steps[i][k] : full;
        kvb_cmp_case *c =
            add_case(L, path, KVB_CMP_TIME, "%sdecode(%s)/total_ns", prefix, label[i]);
        if (!c) return;
        for (int k = 0; k < MAXR; k++)
            if (full && steps[i][k] == full) push(c, total[i][k]);
    }
    snprintf(path, sizeof path, "%s/summary.json", dir);
    load_run_bytes(L, path, prefix);
}

/* ---- attend tables: each round's time, ratios within the run, ceilings ----- */

typedef struct att_row {
    char name[200], backend[32], dtype[16], kernel[64];
    int ctx, threads, n;
    double kv_bytes, ceil, bpt, err;
    double t[KVB_CMP_MAX_SAMPLES];
} att_row;

void kvb_cmp_load_attend(ld *L, const char *path, const char *prefix)
{
    lines r;
    if (open_rows(L, &r, path)) return;
    L->s->load++;
    if (next_row(L, &r) && kvb_csv_header(&r.c))
        kvb_cmp_fail(L, "out of memory reading '%s'", path);
    int c_case = kvb_csv_column(&r.c, KVB_COL_CASE), c_b = kvb_csv_column(&r.c, KVB_COL_BACKEND);
    int c_d = kvb_csv_column(&r.c, KVB_COL_DTYPE), c_ctx = kvb_csv_column(&r.c, KVB_COL_CTX);
    int c_kv = kvb_csv_column(&r.c, KVB_COL_KV_BYTES), c_e = kvb_csv_column(&r.c, KVB_COL_REL_ERR);
    int c_bpt = kvb_csv_column(&r.c, KVB_COL_BYTES_PER_TOKEN),
        c_ceil = kvb_csv_column(&r.c, KVB_COL_CEILING);
    int c_th = kvb_csv_column(&r.c, KVB_COL_THREADS), c_s = kvb_csv_column(&r.c, KVB_COL_SAMPLES);
    int c_k = kvb_csv_column(&r.c, KVB_COL_KERNEL), c_qk = kvb_csv_column(&r.c, KVB_COL_QKERNEL);
    int nh = r.c.n_head;
    if (!L->bad && (c_case < 0 || c_b < 0 || c_d < 0 || c_ctx < 0 || c_s < 0))
        kvb_cmp_fail(L,
                     "'%s' line 1: not an attend table's header (needs case, backend, dtype, ctx, "
                     "samples_ns)",
                     path);
    enum { MAXROWS = 512 };
    att_row *rows = L->bad ? NULL : calloc(MAXROWS, sizeof *rows);
    int n = 0;
    while (rows && !L->bad && next_row(L, &r)) {
        char **f = r.c.field;
        int nf = r.c.n;
        if (nf != nh) {
            kvb_cmp_fail(L, "'%s' line %d: %d fields, the header has %d", path, r.c.no, nf, nh);
            break;
        }
        if (n == MAXROWS) {
            kvb_cmp_fail(L, "'%s' line %d: more than %d rows", path, r.c.no, MAXROWS);
            break;
        }
        att_row *a = &rows[n];
        snprintf(a->name, sizeof a->name, "%s", f[c_case]);
        for (int j = 0; j < n; j++)
            if (!strcmp(rows[j].name, a->name)) {
                kvb_cmp_fail(L, "'%s' line %d: case '%s' comes twice (two points with one label?)",
                             path, r.c.no, a->name);
                break;
            }
        snprintf(a->backend, sizeof a->backend, "%s", f[c_b]);
        snprintf(a->dtype, sizeof a->dtype, "%s", f[c_d]);
        snprintf(a->kernel, sizeof a->kernel, "%s%s%s", c_k >= 0 ? f[c_k] : "",
                 c_qk >= 0 ? "/" : "", c_qk >= 0 ? f[c_qk] : "");
        double v = 1;
        if (L->bad || field(L, &r, "ctx", f[c_ctx], 0, 1, &v)) break;
        a->ctx = (int)v;
        a->threads = 1;
        if (c_th >= 0) {
            if (field(L, &r, "threads", f[c_th], 0, 1, &v)) break;
            a->threads = (int)v;
        }
        a->kv_bytes = a->ceil = a->bpt = a->err = NAN;
        /* optional figures may be empty; present, they must be numbers in range */
        const struct {
            int col;
            const char *name;
            double *dst;
        } opt[] = {{c_kv, "kv_bytes", &a->kv_bytes},
                   {c_ceil, "read_ceiling_gbs", &a->ceil},
                   {c_bpt, "bytes_per_token", &a->bpt},
                   {c_e, "rel_err", &a->err}};
        for (size_t o = 0; o < sizeof opt / sizeof opt[0] && !L->bad; o++) {
            if (opt[o].col < 0) continue;
            const char *txt = f[opt[o].col];
            if (!strcmp(txt, "nan") || !strcmp(txt, "-nan"))
                continue; /* not measured (printf of NaN) */
            int k = num(txt, &v);
            if (k == 0 && opt[o].dst != &a->ceil) continue;
            /* a ceiling not measured is written nan or 0: not a case */
            if (opt[o].dst == &a->ceil && (k != 1 || v <= 0)) continue;
            if (k < 0 || v < 0)
                kvb_cmp_fail(L,
                             "'%s' line %d: %s '%s' is not a usable value (allowed: a number >= 0)",
                             path, r.c.no, opt[o].name, f[opt[o].col]);
            else
                *opt[o].dst = v;
        }
        if (L->bad) break;
        char *save = NULL;
        for (char *t = strtok_r(f[c_s], ";", &save); t; t = strtok_r(NULL, ";", &save)) {
            if (a->n == KVB_CMP_MAX_SAMPLES) {
                kvb_cmp_fail(L, "'%s' line %d: more than %d samples", path, r.c.no,
                             KVB_CMP_MAX_SAMPLES);
                break;
            }
            if (field(L, &r, "samples_ns", t, 0, 1, &a->t[a->n])) break;
            a->n++;
        }
        if (!L->bad && a->n == 0) kvb_cmp_fail(L, "'%s' line %d: no samples_ns", path, r.c.no);
        n++;
    }
    kvb_csv_close(&r.c);
    for (int i = 0; i < n && !L->bad; i++) {
        att_row *a = &rows[i];
        kvb_cmp_case *c = add_case(L, path, KVB_CMP_TIME, "%s%s/time_ns", prefix, a->name);
        for (int k = 0; c && k < a->n; k++) push(c, a->t[k]);
        if (a->ceil > 0 && a->kv_bytes > 0) {
            c = add_case(L, path, KVB_CMP_CEILING, "%s%s/of_read_ceiling", prefix, a->name);
            for (int k = 0; c && k < a->n; k++) push(c, a->kv_bytes / a->t[k] / a->ceil);
        }
        if (isfinite(a->bpt))
            push(add_case(L, path, KVB_CMP_EXACT, "%s%s/bytes_per_token", prefix, a->name), a->bpt);
        if (isfinite(a->err)) {
            c = add_case(L, path, KVB_CMP_TOL, "%s%s/rel_err", prefix, a->name);
            push(c, a->err);
            tag_kernel(c, a->kernel);
        }
        /* against the contiguous cache timed beside it, round by round (f32 for quantized types) */
        if (strcmp(a->backend, "contiguous") == 0) continue;
        const char *base_dt = a->dtype[0] == 'q' ? "f32" : a->dtype;
        for (int j = 0; j < n; j++) {
            att_row *b = &rows[j];
            if (strcmp(b->backend, "contiguous") || strcmp(b->dtype, base_dt) || b->ctx != a->ctx ||
                b->threads != a->threads || b->n != a->n)
                continue;
            c = add_case(L, path, KVB_CMP_RATIO, "%s%s/vs_contiguous", prefix, a->name);
            if (c) {
                snprintf(c->num, sizeof c->num, "%s%s/time_ns", prefix, a->name);
                snprintf(c->den, sizeof c->den, "%s%s/time_ns", prefix, b->name);
            }
            for (int k = 0; c && k < a->n; k++) push(c, a->t[k] / b->t[k]);
            break;
        }
    }
    free(rows);
}

/* ---- quality tables: errors of the quantized caches on a seeded decode ------ */

void kvb_cmp_load_quality(ld *L, const char *dir, const char *prefix)
{
    char path[2400], msg[600];
    int err;
    snprintf(path, sizeof path, "%s/quality.csv", dir);
    lines r;
    if (open_rows(L, &r, path)) return;
    L->s->load++;
    /* the kernels are a tag, not a figure: a meta.json that cannot be read leaves them unknown */
    snprintf(path, sizeof path, "%s/meta.json", dir);
    cJSON *meta = kvb_json_load(path, &err, msg, sizeof msg);
    snprintf(path, sizeof path, "%s/quality.csv", dir);
    if (next_row(L, &r) && kvb_csv_header(&r.c))
        kvb_cmp_fail(L, "out of memory reading '%s'", path);
    int c_kl = kvb_csv_column(&r.c, KVB_COL_KL_MEAN), c_l = kvb_csv_column(&r.c, KVB_COL_LAYER);
    int c_e = kvb_csv_column(&r.c, KVB_COL_ATTN_REL_L2), nh = r.c.n_head;
    if (!L->bad && (c_kl < 0 || c_l < 0 || c_e < 0))
        kvb_cmp_fail(
            L, "'%s' line 1: not a quality table's header (needs kl_mean, layer, attn_rel_l2_mean)",
            path);
    while (!L->bad && next_row(L, &r)) {
        char **f = r.c.field;
        int nf = r.c.n;
        if (nf != nh) {
            kvb_cmp_fail(L, "'%s' line %d: %d fields, the header has %d", path, r.c.no, nf, nh);
            break;
        }
        double layer, kl, e;
        if (field(L, &r, "layer", f[c_l], 0, 0, &layer) ||
            field(L, &r, "kl_mean", f[c_kl], 0, 0, &kl) ||
            field(L, &r, "attn_rel_l2_mean", f[c_e], 0, 0, &e))
            break;
        char kernel[64] = "";
        read_kernels(meta, f[0], kernel, sizeof kernel);
        kvb_cmp_case *c;
        if ((int)layer == 0) {
            push(c = add_case(L, path, KVB_CMP_TOL, "%squality(%s)/kl_mean", prefix, f[0]), kl);
            tag_kernel(c, kernel);
        }
        push(c = add_case(L, path, KVB_CMP_TOL, "%squality(%s)/layer%d_rel_l2", prefix, f[0],
                          (int)layer),
             e);
        tag_kernel(c, kernel);
    }
    kvb_csv_close(&r.c);
    cJSON_Delete(meta);
}

/* The first point's string under key, for a file that does not say per point. */
static void first_of(const cJSON *points, const char *key, char *out, size_t n)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, points)
    {
        if (kvb_json_str_at(p, key)) {
            kvb_json_copy_at(p, key, out, n);
            return;
        }
    }
}

/* The kernels meta.json records: "kernel" and "qkernel" in the entry of that
 * label in "points" where there, else the first point's. 1 when found. */
static int read_kernels(const cJSON *meta, const char *label, char *out, size_t n)
{
    char k[48] = "", qk[48] = "";
    out[0] = 0;
    const cJSON *points = kvb_json_at(meta, KVB_KEY_POINTS);
    const cJSON *p = kvb_json_find(points, KVB_KEY_LABEL, label);
    kvb_json_copy_at(p, KVB_KEY_KERNEL, k, sizeof k);
    kvb_json_copy_at(p, KVB_KEY_QKERNEL, qk, sizeof qk);
    if (!k[0]) first_of(points, KVB_KEY_KERNEL, k, sizeof k);
    if (!qk[0]) first_of(points, KVB_KEY_QKERNEL, qk, sizeof qk);
    if (!k[0] && !qk[0]) return 0;
    snprintf(out, n, "%s/%s", k, qk);
    return 1;
}

/* ---- Google Benchmark JSON: each repetition's time --------------------------- */

struct seen {
    char name[200];
    double rep;
}; /* a run already read */

/* 1 a number, 0 absent, -1 present but not a number (a string, true, null) */
static int json_number(const cJSON *run, const char *key, double *v)
{
    const cJSON *x = kvb_json_at(run, key);
    if (!x) return 0;
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble)) return -1;
    *v = x->valuedouble;
    return 1;
}

/* One run's repetition time, into the case of its name. */
static void gbench_run(ld *L, const char *path, const cJSON *run, int line, struct seen **done,
                       int *n_done, int *cap)
{
    kvb_cmp_set *s = L->s;
    char name[200], type[32], unit[8];
    kvb_json_copy_at(run, "run_name", name, sizeof name);
    if (!name[0]) kvb_json_copy_at(run, "name", name, sizeof name);
    kvb_json_copy_at(run, "run_type", type, sizeof type);
    kvb_json_copy_at(run, "time_unit", unit, sizeof unit);
    double t = NAN, rep = -1;
    int k = json_number(run, "real_time", &t);
    json_number(run, "repetition_index", &rep);
    double scale = !strcmp(unit, "us")   ? 1e3
                   : !strcmp(unit, "ms") ? 1e6
                   : !strcmp(unit, "s")  ? 1e9
                                         : 1;
    if (cJSON_IsTrue(kvb_json_at(run, "error_occurred"))) {
        char why[200];
        kvb_json_copy_at(run, "error_message", why, sizeof why);
        kvb_cmp_fail(
            L, "'%s' line %d: %s reported an error (\"%s\"): a failed run has no time to judge",
            path, line, name[0] ? name : "a run", why);
        return;
    }
    if (!name[0] || strcmp(type, "aggregate") == 0) return; /* aggregates repeat the repetitions */
    if (k <= 0 || !(t > 0)) {
        kvb_cmp_fail(L,
                     "'%s' line %d: %s: real_time %s is not a usable time (allowed: a number > 0)",
                     path, line, name,
                     k == 0   ? "missing"
                     : k < 0  ? "not a number"
                     : t == 0 ? "0"
                              : "negative");
        return;
    }
    for (int i = 0; i < *n_done; i++)
        if (!strcmp((*done)[i].name, name) && (*done)[i].rep == rep) {
            kvb_cmp_fail(L, "'%s' line %d: %s repetition %g comes twice (two cases with one name?)",
                         path, line, name, rep);
            return;
        }
    if (*n_done == *cap) {
        int c2 = *cap ? 2 * *cap : 64;
        struct seen *d = realloc(*done, (size_t)c2 * sizeof *d);
        if (!d) {
            kvb_cmp_fail(L, "out of memory reading '%s'", path);
            return;
        }
        *done = d;
        *cap = c2;
    }
    snprintf((*done)[*n_done].name, sizeof(*done)[*n_done].name, "%s", name);
    (*done)[(*n_done)++].rep = rep;
    /* a case gathers its repetitions: found here, not through add_case's one-per-file rule */
    char cn[224];
    snprintf(cn, sizeof cn, "%s/real_time_ns", name);
    kvb_cmp_case *c = NULL;
    for (int i = 0; i < s->n && !c; i++)
        if (s->c[i].kind == KVB_CMP_TIME && !strcmp(s->c[i].name, cn)) c = &s->c[i];
    if (!c) c = add_case(L, path, KVB_CMP_TIME, "%s", cn);
    push(c, t * scale);
}

void kvb_cmp_load_gbench(ld *L, const char *path)
{
    kvb_cmp_set *s = L->s;
    size_t len = 0;
    char *js = kvb_slurp_len(path, &len), msg[600];
    cJSON *doc = js ? kvb_json_parse(js, len, path, msg, sizeof msg) : NULL;
    const cJSON *runs = kvb_json_at(doc, "benchmarks");
    if (!cJSON_IsArray(runs)) {
        if (js && !doc)
            kvb_cmp_fail(L, "%s", msg);
        else
            kvb_cmp_fail(L, "'%s': not a Google Benchmark JSON file (no \"benchmarks\")", path);
        cJSON_Delete(doc);
        free(js);
        return;
    }
    s->load++;
    const cJSON *ctx = kvb_json_at(doc, "context");
    char cpu[128], host[96];
    kvb_json_copy_at(ctx, "cpu_model", cpu,
                     sizeof cpu); /* kvbench-gbench adds it; plain gbench does not */
    if (!cpu[0])
        snprintf(cpu, sizeof cpu, "%g CPUs at %g MHz", kvb_json_num_at(ctx, "num_cpus"),
                 kvb_json_num_at(ctx, "mhz_per_cpu"));
    kvb_json_copy_at(ctx, "host_name", host, sizeof host);
    snprintf(s->machine, sizeof s->machine, "%s @ %s", cpu, host);
    /* one object per run: {"name": ..., "run_name": ..., "run_type": ..., "real_time": ...};
     * the repetitions of a case share its run_name and differ in repetition_index */
    int n = cJSON_GetArraySize(runs), *at = calloc((size_t)n + 1, sizeof *at); /* each run's line */
    if (!at)
        kvb_cmp_fail(L, "out of memory reading '%s'", path);
    else
        kvb_json_elem_lines(js, "benchmarks", at, n);
    struct seen *done = NULL;
    int n_done = 0, cap = 0, i = 0;
    const cJSON *run;
    cJSON_ArrayForEach(run, runs)
    {
        if (L->bad) break;
        if (cJSON_IsObject(run)) gbench_run(L, path, run, at[i], &done, &n_done, &cap);
        i++;
    }
    free(at);
    free(done);
    cJSON_Delete(doc);
    free(js);
}
