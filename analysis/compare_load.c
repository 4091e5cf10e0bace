/* compare_load.c: compare's readers (compare.h): cases from what kvbench
 * wrote: tokens.csv and summary.json of decode runs, attend.csv of attend
 * points (each round's time), quality.csv, and Google Benchmark's JSON.
 * Whatever cannot be judged is refused with the file and line, never
 * skipped: a skipped row is a case the gate silently stops checking. */
#define _XOPEN_SOURCE 700
#include "compare.h"
#include "../base/textio.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- reading: errors name the file and line ------------------------------------- */

typedef struct ld {
    kvb_cmp_set *s;
    char        *msg;
    size_t       len;
    int          bad;
} ld;

static int fail(ld *L, const char *fmt, ...)
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
                fail(L, "'%s' holds two results named '%s' (repeated list items make points of one label; "
                        "a result must name each once)", file, name);
                return NULL;
            }
            s->c[i].load = s->load;
            return &s->c[i];
        }
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        kvb_cmp_case *c = realloc(s->c, (size_t)cap * sizeof *c);
        if (!c) { fail(L, "out of memory reading '%s'", file); return NULL; }
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
    if (c->n <= 1) snprintf(c->kernel, sizeof c->kernel, "%s", kernel);
    else if (strcmp(c->kernel, kernel) != 0) snprintf(c->kernel, sizeof c->kernel, "mixed");
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
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

/* Line by line, any length; a last line without its newline is a file cut
 * short (kvbench ends every line). Returns the line (newline stripped) or NULL
 * at the end, or on a truncated line (L->bad set). */
typedef struct lines { FILE *f; char *buf; size_t cap; int no; const char *path; } lines;

static char *next_line(ld *L, lines *r)
{
    ssize_t n = getline(&r->buf, &r->cap, r->f);
    if (n < 0) return NULL;
    r->no++;
    if (r->buf[n - 1] != '\n') {
        fail(L, "'%s' line %d: cut short (no end of line): the file is truncated", r->path, r->no);
        return NULL;
    }
    r->buf[--n] = 0;
    if (n && r->buf[n - 1] == '\r') r->buf[--n] = 0;
    return r->buf;
}

/* A number field of a row: must be a finite number, >= lo, or > lo when strict;
 * counts (steps, contexts, threads) also below KVB_CMP_MAX_COUNT, so they fit an int. */
enum { KVB_CMP_MAX_COUNT = 1000000000 };
static int field(ld *L, const lines *r, const char *col, const char *f, double lo, int strict, double *v)
{
    int k = num(f, v);
    int count = !strcmp(col, "step") || !strcmp(col, "rep") || !strcmp(col, "ctx") || !strcmp(col, "threads") ||
                !strcmp(col, "layer");
    if (k < 0 || (k == 1 && (strict ? !(*v > lo) : !(*v >= lo))) || (k == 1 && count && *v >= KVB_CMP_MAX_COUNT))
        return fail(L, "'%s' line %d: %s '%s' is not a usable value (allowed: a number %s %g%s)", r->path, r->no, col,
                    f, strict ? ">" : ">=", lo, count ? " and below 1e9" : "");
    if (k == 0) return fail(L, "'%s' line %d: %s is empty", r->path, r->no, col);
    return 0;
}

/* ---- decode runs: per-repetition totals, and the cache's final bytes ------- */

static int read_kernels(const char *meta, const char *label, char *out, size_t n);

static void load_run(ld *L, const char *dir, const char *prefix)
{
    char path[2400], *f[16];
    snprintf(path, sizeof path, "%s/tokens.csv", dir);
    lines r = {fopen(path, "r"), NULL, 0, 0, path};
    if (!r.f) { fail(L, "'%s': %s", path, strerror(errno)); return; }
    L->s->load++;
    /* backend,dtype,mode,rep,step,position,token,step_ns,...[,phase]: the prefill's row
     * (phase "prefill", step -1) is not part of a decode total */
    enum { MAXL = 32, MAXR = KVB_CMP_MAX_SAMPLES };
    char label[MAXL][96];
    double total[MAXL][MAXR];
    int steps[MAXL][MAXR], last[MAXL][MAXR], nl = 0, c_phase = -1;
    memset(steps, 0, sizeof steps);
    for (char *line; !L->bad && (line = next_line(L, &r)) != NULL;) {
        if (r.no == 1 && strncmp(line, "backend,", 8) == 0) {
            int nh = kvb_csv_fields(line, f, 16);
            c_phase = kvb_csv_col(f, nh, "phase");
            continue;
        }
        int nf = kvb_csv_fields(line, f, 16);
        if (nf < 8 || nf <= c_phase) { fail(L, "'%s' line %d: %d fields, a row has at least %d", path, r.no, nf, c_phase >= 8 ? c_phase + 1 : 8); break; }
        if ((c_phase >= 0 && strcmp(f[c_phase], "decode") != 0) || (c_phase < 0 && !strcmp(f[4], "-1"))) continue;
        char lb[96];
        snprintf(lb, sizeof lb, "%s/%s/%s", f[0], f[1], f[2]);
        int i = 0;
        while (i < nl && strcmp(label[i], lb)) i++;
        if (i == nl) {
            if (nl == MAXL) { fail(L, "'%s' line %d: more than %d labels", path, r.no, MAXL); break; }
            snprintf(label[nl], sizeof label[nl], "%s", lb);
            for (int k = 0; k < MAXR; k++) total[nl][k] = 0, last[nl][k] = -1;
            nl++;
        }
        double rep, step, ns;
        if (field(L, &r, "rep", f[3], 0, 0, &rep) || field(L, &r, "step", f[4], 0, 0, &step) ||
            field(L, &r, "step_ns", f[7], 0, 1, &ns))
            break;
        if (rep >= MAXR) { fail(L, "'%s' line %d: repetition %g (at most %d are read)", path, r.no, rep, MAXR); break; }
        int k = (int)rep;
        /* a label's steps count up within a repetition: a step again is a second point of that label */
        if ((int)step <= last[i][k]) {
            fail(L, "'%s' line %d: %s repetition %d step %d comes twice (two points with one label?)", path, r.no, lb,
                 k, (int)step);
            break;
        }
        last[i][k] = (int)step;
        total[i][k] += ns;
        steps[i][k]++;
    }
    free(r.buf);
    fclose(r.f);
    if (L->bad) return;
    for (int i = 0; i < nl; i++) {
        int full = 0;                            /* repetitions that decoded every step */
        for (int k = 0; k < MAXR; k++) full = steps[i][k] > full ? steps[i][k] : full;
        kvb_cmp_case *c = add_case(L, path, KVB_CMP_TIME, "%sdecode(%s)/total_ns", prefix, label[i]);
        if (!c) return;
        for (int k = 0; k < MAXR; k++)
            if (full && steps[i][k] == full) push(c, total[i][k]);
    }
    snprintf(path, sizeof path, "%s/summary.json", dir);
    char *sum = kvb_slurp(path);
    L->s->load++;
    for (const char *p = sum; p && !L->bad && (p = strstr(p, "{\"label\": \"")) != NULL; p++) {
        char lb[96];
        kvb_json_str(p, NULL, "label", lb, sizeof lb);
        const char *end = strstr(p + 1, "{\"label\": \""), *cb = strstr(p, "\"cache_bytes\"");
        if (!cb || (end && cb > end)) continue;
        double used = kvb_json_num(cb, end, "used"), reserved = kvb_json_num(cb, end, "reserved");
        if (used < 0 || reserved < 0) {
            fail(L, "'%s': %s: cache bytes %g used, %g reserved: a negative byte count", path, lb, used, reserved);
            break;
        }
        if (isfinite(used)) push(add_case(L, path, KVB_CMP_EXACT, "%sdecode(%s)/used_bytes", prefix, lb), used);
        if (isfinite(reserved)) push(add_case(L, path, KVB_CMP_EXACT, "%sdecode(%s)/reserved_bytes", prefix, lb), reserved);
    }
    free(sum);
}

/* ---- attend tables: each round's time, ratios within the run, ceilings ----- */

typedef struct att_row {
    char   name[200], backend[32], dtype[16], kernel[64];
    int    ctx, threads, n;
    double kv_bytes, ceil, bpt, err;
    double t[KVB_CMP_MAX_SAMPLES];
} att_row;

static void load_attend(ld *L, const char *path, const char *prefix)
{
    lines r = {fopen(path, "r"), NULL, 0, 0, path};
    if (!r.f) { fail(L, "'%s': %s", path, strerror(errno)); return; }
    L->s->load++;
    char *head_line = next_line(L, &r), *h[48], *f[48];
    char *head = head_line ? strdup(head_line) : NULL;
    int nh = head ? kvb_csv_fields(head, h, 48) : 0;
    int c_case = kvb_csv_col(h, nh, "case"), c_b = kvb_csv_col(h, nh, "backend"), c_d = kvb_csv_col(h, nh, "dtype");
    int c_ctx = kvb_csv_col(h, nh, "ctx"), c_kv = kvb_csv_col(h, nh, "kv_bytes"), c_e = kvb_csv_col(h, nh, "rel_err");
    int c_bpt = kvb_csv_col(h, nh, "bytes_per_token"), c_ceil = kvb_csv_col(h, nh, "read_ceiling_gbs");
    int c_th = kvb_csv_col(h, nh, "threads"), c_s = kvb_csv_col(h, nh, "samples_ns");
    int c_k = kvb_csv_col(h, nh, "kernel"), c_qk = kvb_csv_col(h, nh, "qkernel");
    if (!L->bad && (c_case < 0 || c_b < 0 || c_d < 0 || c_ctx < 0 || c_s < 0))
        fail(L, "'%s' line 1: not an attend table's header (needs case, backend, dtype, ctx, samples_ns)", path);
    enum { MAXROWS = 512 };
    att_row *rows = L->bad ? NULL : calloc(MAXROWS, sizeof *rows);
    int n = 0;
    for (char *line; rows && !L->bad && (line = next_line(L, &r)) != NULL;) {
        int nf = kvb_csv_fields(line, f, 48);
        if (nf != nh) { fail(L, "'%s' line %d: %d fields, the header has %d", path, r.no, nf, nh); break; }
        if (n == MAXROWS) { fail(L, "'%s' line %d: more than %d rows", path, r.no, MAXROWS); break; }
        att_row *a = &rows[n];
        snprintf(a->name, sizeof a->name, "%s", f[c_case]);
        for (int j = 0; j < n; j++)
            if (!strcmp(rows[j].name, a->name)) {
                fail(L, "'%s' line %d: case '%s' comes twice (two points with one label?)", path, r.no, a->name);
                break;
            }
        snprintf(a->backend, sizeof a->backend, "%s", f[c_b]);
        snprintf(a->dtype, sizeof a->dtype, "%s", f[c_d]);
        snprintf(a->kernel, sizeof a->kernel, "%s%s%s", c_k >= 0 ? f[c_k] : "", c_qk >= 0 ? "/" : "",
                 c_qk >= 0 ? f[c_qk] : "");
        double v = 1;
        if (L->bad || field(L, &r, "ctx", f[c_ctx], 0, 1, &v)) break;
        a->ctx = (int)v;
        a->threads = 1;
        if (c_th >= 0) { if (field(L, &r, "threads", f[c_th], 0, 1, &v)) break; a->threads = (int)v; }
        a->kv_bytes = a->ceil = a->bpt = a->err = NAN;
        /* optional figures may be empty; present, they must be numbers in range */
        const struct { int col; const char *name; double *dst; } opt[] = {
            {c_kv, "kv_bytes", &a->kv_bytes}, {c_ceil, "read_ceiling_gbs", &a->ceil},
            {c_bpt, "bytes_per_token", &a->bpt}, {c_e, "rel_err", &a->err}};
        for (size_t o = 0; o < sizeof opt / sizeof opt[0] && !L->bad; o++) {
            if (opt[o].col < 0) continue;
            const char *txt = f[opt[o].col];
            if (!strcmp(txt, "nan") || !strcmp(txt, "-nan")) continue;   /* not measured (printf of NaN) */
            int k = num(txt, &v);
            if (k == 0 && opt[o].dst != &a->ceil) continue;
            /* a ceiling not measured is written nan or 0: not a case */
            if (opt[o].dst == &a->ceil && (k != 1 || v <= 0)) continue;
            if (k < 0 || v < 0)
                fail(L, "'%s' line %d: %s '%s' is not a usable value (allowed: a number >= 0)", path, r.no,
                     opt[o].name, f[opt[o].col]);
            else *opt[o].dst = v;
        }
        if (L->bad) break;
        char *save = NULL;
        for (char *t = strtok_r(f[c_s], ";", &save); t; t = strtok_r(NULL, ";", &save)) {
            if (a->n == KVB_CMP_MAX_SAMPLES) { fail(L, "'%s' line %d: more than %d samples", path, r.no, KVB_CMP_MAX_SAMPLES); break; }
            if (field(L, &r, "samples_ns", t, 0, 1, &a->t[a->n])) break;
            a->n++;
        }
        if (!L->bad && a->n == 0) fail(L, "'%s' line %d: no samples_ns", path, r.no);
        n++;
    }
    free(r.buf);
    free(head);
    fclose(r.f);
    for (int i = 0; i < n && !L->bad; i++) {
        att_row *a = &rows[i];
        kvb_cmp_case *c = add_case(L, path, KVB_CMP_TIME, "%s%s/time_ns", prefix, a->name);
        for (int k = 0; c && k < a->n; k++) push(c, a->t[k]);
        if (a->ceil > 0 && a->kv_bytes > 0) {
            c = add_case(L, path, KVB_CMP_CEILING, "%s%s/of_read_ceiling", prefix, a->name);
            for (int k = 0; c && k < a->n; k++) push(c, a->kv_bytes / a->t[k] / a->ceil);
        }
        if (isfinite(a->bpt)) push(add_case(L, path, KVB_CMP_EXACT, "%s%s/bytes_per_token", prefix, a->name), a->bpt);
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
            for (int k = 0; c && k < a->n; k++) push(c, a->t[k] / b->t[k]);
            break;
        }
    }
    free(rows);
}

/* ---- quality tables: errors of the quantized caches on a seeded decode ------ */

static void load_quality(ld *L, const char *dir, const char *prefix)
{
    char path[2400], *h[64], *f[64];
    snprintf(path, sizeof path, "%s/quality.csv", dir);
    lines r = {fopen(path, "r"), NULL, 0, 0, path};
    if (!r.f) { fail(L, "'%s': %s", path, strerror(errno)); return; }
    L->s->load++;
    snprintf(path, sizeof path, "%s/meta.json", dir);
    char *meta = kvb_slurp(path);
    snprintf(path, sizeof path, "%s/quality.csv", dir);
    char *hl = next_line(L, &r), *head = hl ? strdup(hl) : NULL;
    int nh = head ? kvb_csv_fields(head, h, 64) : 0;
    int c_kl = kvb_csv_col(h, nh, "kl_mean"), c_l = kvb_csv_col(h, nh, "layer"), c_e = kvb_csv_col(h, nh, "attn_rel_l2_mean");
    if (!L->bad && (c_kl < 0 || c_l < 0 || c_e < 0))
        fail(L, "'%s' line 1: not a quality table's header (needs kl_mean, layer, attn_rel_l2_mean)", path);
    for (char *line; !L->bad && (line = next_line(L, &r)) != NULL;) {
        int nf = kvb_csv_fields(line, f, 64);
        if (nf != nh) { fail(L, "'%s' line %d: %d fields, the header has %d", path, r.no, nf, nh); break; }
        double layer, kl, e;
        if (field(L, &r, "layer", f[c_l], 0, 0, &layer) || field(L, &r, "kl_mean", f[c_kl], 0, 0, &kl) ||
            field(L, &r, "attn_rel_l2_mean", f[c_e], 0, 0, &e))
            break;
        char kernel[64] = "";
        read_kernels(meta, f[0], kernel, sizeof kernel);
        kvb_cmp_case *c;
        if ((int)layer == 0) {
            push(c = add_case(L, path, KVB_CMP_TOL, "%squality(%s)/kl_mean", prefix, f[0]), kl);
            tag_kernel(c, kernel);
        }
        push(c = add_case(L, path, KVB_CMP_TOL, "%squality(%s)/layer%d_rel_l2", prefix, f[0], (int)layer), e);
        tag_kernel(c, kernel);
    }
    free(r.buf);
    free(head);
    free(meta);
    fclose(r.f);
}

/* The kernels meta.json records: "kernel" and "qkernel" in the entry of that
 * label in "points" where there, else the file's first. 1 when found. */
static int read_kernels(const char *meta, const char *label, char *out, size_t n)
{
    char pat[160], k[48] = "", qk[48] = "";
    out[0] = 0;
    if (!meta) return 0;
    snprintf(pat, sizeof pat, "{\"label\": \"%s\"", label);
    const char *p = strstr(meta, pat), *end = p ? strstr(p + 1, "{\"label\": \"") : NULL;
    if (p) {
        kvb_json_str(p, end, "kernel", k, sizeof k);
        kvb_json_str(p, end, "qkernel", qk, sizeof qk);
    }
    if (!k[0]) kvb_json_str(meta, NULL, "kernel", k, sizeof k);
    if (!qk[0]) kvb_json_str(meta, NULL, "qkernel", qk, sizeof qk);
    if (!k[0] && !qk[0]) return 0;
    snprintf(out, n, "%s/%s", k, qk);
    return 1;
}

/* ---- Google Benchmark JSON: each repetition's time --------------------------- */

static int line_of(const char *start, const char *p)
{
    int n = 1;
    for (const char *q = start; q < p; q++) n += *q == '\n';
    return n;
}

/* 1 a number, 0 absent, -1 present but not a number (a string, true, null) */
static int json_number(const char *p, const char *end, const char *key, double *v)
{
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *k = strstr(p, pat);
    if (!k || k >= end) return 0;
    k += strlen(pat);
    while (*k == ' ') k++;
    char *e;
    *v = strtod(k, &e);
    return e != k && isfinite(*v) && (*e == ',' || *e == '}' || *e == ' ' || *e == '\n' || *e == '\r') ? 1 : -1;
}

static void load_gbench(ld *L, const char *path)
{
    kvb_cmp_set *s = L->s;
    char *js = kvb_slurp(path);
    const char *b = js ? strstr(js, "\"benchmarks\"") : NULL;
    if (!b) {
        fail(L, "'%s': not a Google Benchmark JSON file (no \"benchmarks\")", path);
        free(js);
        return;
    }
    s->load++;
    char cpu[128] = "", host[96] = "";
    kvb_json_str(js, b, "cpu_model", cpu, sizeof cpu);   /* kvbench-gbench adds it; plain gbench does not */
    if (!cpu[0])
        snprintf(cpu, sizeof cpu, "%g CPUs at %g MHz", kvb_json_num(js, b, "num_cpus"), kvb_json_num(js, b, "mhz_per_cpu"));
    kvb_json_str(js, b, "host_name", host, sizeof host);
    snprintf(s->machine, sizeof s->machine, "%s @ %s", cpu, host);
    /* one flat object per run: {"name": ..., "run_name": ..., "run_type": ..., "real_time": ...};
     * the repetitions of a case share its run_name and differ in repetition_index */
    typedef struct seen { char name[200]; double rep; } seen;
    seen *done = NULL;
    int n_done = 0, cap = 0;
    for (const char *p = strchr(b, '['); p && !L->bad && (p = strstr(p, "{")) != NULL;) {
        const char *end = strchr(p, '}');
        if (!end) { fail(L, "'%s' line %d: a run's object is not closed: the file is truncated", path, line_of(js, p)); break; }
        char name[200], type[32], unit[8], err[8] = "";
        int line = line_of(js, p);
        kvb_json_str(p, end, "run_name", name, sizeof name);
        if (!name[0]) kvb_json_str(p, end, "name", name, sizeof name);
        kvb_json_str(p, end, "run_type", type, sizeof type);
        kvb_json_str(p, end, "time_unit", unit, sizeof unit);
        const char *eo = strstr(p, "\"error_occurred\":");
        if (eo && eo < end) sscanf(eo + 17, " %7[a-z]", err);
        double t = NAN, rep = -1;
        int k = json_number(p, end, "real_time", &t);
        json_number(p, end, "repetition_index", &rep);
        double scale = !strcmp(unit, "us") ? 1e3 : !strcmp(unit, "ms") ? 1e6 : !strcmp(unit, "s") ? 1e9 : 1;
        if (!strcmp(err, "true")) {
            char why[200] = "";
            kvb_json_str(p, end, "error_message", why, sizeof why);
            fail(L, "'%s' line %d: %s reported an error (\"%s\"): a failed run has no time to judge", path, line,
                 name[0] ? name : "a run", why);
        } else if (!name[0] || strcmp(type, "aggregate") == 0) {
            /* aggregates (mean, median, stddev) repeat what the repetitions say */
        } else if (k <= 0 || !(t > 0)) {
            fail(L, "'%s' line %d: %s: real_time %s is not a usable time (allowed: a number > 0)", path, line, name,
                 k == 0 ? "missing" : k < 0 ? "not a number" : t == 0 ? "0" : "negative");
        } else {
            for (int i = 0; i < n_done; i++)
                if (!strcmp(done[i].name, name) && done[i].rep == rep) {
                    fail(L, "'%s' line %d: %s repetition %g comes twice (two cases with one name?)", path, line, name, rep);
                    break;
                }
            if (n_done == cap) {
                cap = cap ? 2 * cap : 64;
                seen *d = realloc(done, (size_t)cap * sizeof *d);
                if (!d) { fail(L, "out of memory reading '%s'", path); break; }
                done = d;
            }
            snprintf(done[n_done].name, sizeof done[n_done].name, "%s", name);
            done[n_done++].rep = rep;
            /* a case gathers its repetitions: found here, not through add_case's one-per-file rule */
            char cn[224];
            snprintf(cn, sizeof cn, "%s/real_time_ns", name);
            kvb_cmp_case *c = NULL;
            for (int i = 0; i < s->n && !c; i++)
                if (s->c[i].kind == KVB_CMP_TIME && !strcmp(s->c[i].name, cn)) c = &s->c[i];
            if (!c && !L->bad) c = add_case(L, path, KVB_CMP_TIME, "%s", cn);
            push(c, t * scale);
        }
        p = end + 1;
    }
    free(done);
    free(js);
}

/* ---- directories ----------------------------------------------------------------- */

static void machine_of(kvb_cmp_set *s, const char *dir)
{
    char path[2400], cpu[128] = "", host[96] = "";
    snprintf(path, sizeof path, "%s/machine.txt", dir);
    char *m = kvb_slurp(path);
    for (const char *l = m; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (!cpu[0]) sscanf(l, "cpu: %127[^\n]", cpu);
        if (!host[0]) sscanf(l, "host: %95[^\n]", host);
    }
    free(m);
    if (!cpu[0]) {
        snprintf(path, sizeof path, "%s/meta.json", dir);
        char *meta = kvb_slurp(path);
        kvb_json_str(meta, NULL, "cpu_model", cpu, sizeof cpu);
        kvb_json_str(meta, NULL, "host", host, sizeof host);
        free(meta);
    }
    if (!s->machine[0] && (cpu[0] || host[0])) snprintf(s->machine, sizeof s->machine, "%s @ %s", cpu, host);
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int exists(const char *dir, const char *file)
{
    char p[2600];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    struct stat st;
    return stat(p, &st) == 0;
}

/* The entries of a directory, sorted, hidden ones left out; NULL when it cannot
 * be read. *n gets the count; free each and the array. */
static char **list_dir(const char *path, int *n)
{
    DIR *d = opendir(path);
    *n = 0;
    if (!d) return NULL;
    int cap = 64;
    char **names = malloc((size_t)cap * sizeof *names);
    for (struct dirent *e; names && (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.') continue;
        if (*n == cap) {
            char **nn = realloc(names, (size_t)(cap *= 2) * sizeof *names);
            if (!nn) break;
            names = nn;
        }
        names[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (names) qsort(names, (size_t)*n, sizeof *names, cmp_names);
    return names;
}

static void free_list(char **names, int n)
{
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

static void load_dir(ld *L, const char *dir, const char *prefix)
{
    char path[2400];
    machine_of(L->s, dir);
    snprintf(path, sizeof path, "%s/points", dir);
    int n;
    char **names = list_dir(path, &n);
    if (!names) {                                /* a single run */
        if (exists(dir, "tokens.csv")) load_run(L, dir, prefix);
        if (!L->bad && exists(dir, "quality.csv")) load_quality(L, dir, prefix);
        return;
    }
    for (int i = 0; i < n && !L->bad; i++) {
        if (strchr(names[i], '.')) continue;     /* .status, .lock, .partial beside the points */
        char pd[2400], status[32] = "";
        snprintf(pd, sizeof pd, "%s/points/%s", dir, names[i]);
        /* a point that did not finish has no cases: counted, so a baseline can refuse it */
        snprintf(path, sizeof path, "%s/points/%s.status", dir, names[i]);
        FILE *sf = fopen(path, "r");
        if (sf) {
            if (fscanf(sf, "%31s", status) != 1) snprintf(status, sizeof status, "pending");
            fclose(sf);
        }
        if (status[0] && strcmp(status, "ok") && strcmp(status, "cut_short")) {
            if (strcmp(status, "skipped") != 0 && !L->s->unfinished++)
                snprintf(L->s->first_unfinished, sizeof L->s->first_unfinished, "%s (%s)", pd, status);
            continue;
        }
        /* the point names its cases: the same backend in another point (another preset, or a
         * contiguous row timed beside a paged one) is another case */
        char pp[600];
        snprintf(pp, sizeof pp, "%s%s:", prefix, names[i]);
        const char *need = !strncmp(names[i], "run-", 4) ? "tokens.csv" : !strncmp(names[i], "quality-", 8) ? "quality.csv"
                           : !strncmp(names[i], "attend-", 7) ? "attend.csv" : NULL;
        if (!need) continue;                     /* serve points: nothing compare reads */
        if (!exists(pd, need)) {
            fail(L, "'%s/%s' is missing, though the point is marked %s: the result is damaged", pd, need,
                 status[0] ? status : "finished");
            break;
        }
        if (need[0] == 't') load_run(L, pd, pp);
        else if (need[0] == 'q') load_quality(L, pd, pp);
        else {
            snprintf(path, sizeof path, "%s/attend.csv", pd);
            load_attend(L, path, pp);
        }
    }
    free_list(names, n);
}

kvb_status kvb_cmp_load(kvb_cmp_set *s, const char *path, char *msg, size_t msg_len)
{
    memset(s, 0, sizeof *s);
    ld L = {s, msg, msg_len, 0};
    if (!is_dir(path)) {
        FILE *f = fopen(path, "r");
        if (!f) {
            snprintf(msg, msg_len, "'%s': no such result directory or Google Benchmark JSON file", path);
            return KVB_STATUS_IO;
        }
        fclose(f);
        load_gbench(&L, path);
    } else {
        char sub[2400];
        int n;
        char **names;
        snprintf(sub, sizeof sub, "%s/runs", path);
        if ((names = list_dir(sub, &n)) != NULL) {   /* several runs of one sweep: samples pooled */
            for (int i = 0; i < n && !L.bad; i++) {
                char rd[2600];
                snprintf(rd, sizeof rd, "%s/%s", sub, names[i]);
                int before = s->n, loads = s->load;
                if (!is_dir(rd)) fail(&L, "'%s' in a pool of runs is not a result directory", rd);
                else load_dir(&L, rd, "");
                /* every run of a pool must hold results: a dropped run narrows the baseline */
                if (!L.bad && s->load == loads && s->n == before)
                    fail(&L, "'%s' (a run of the pool '%s') holds no kvbench results", rd, sub);
            }
            if (!n) fail(&L, "'%s' holds no runs", sub);
            free_list(names, n);
        } else if (snprintf(sub, sizeof sub, "%s/machines", path) > 0 && (names = list_dir(sub, &n)) != NULL) {
            for (int i = 0; i < n && !L.bad; i++) {  /* a merge: each machine's cases under its host */
                char md[2600], prefix[300];
                snprintf(md, sizeof md, "%s/%s", sub, names[i]);
                snprintf(prefix, sizeof prefix, "%s:", names[i]);
                load_dir(&L, md, prefix);
            }
            free_list(names, n);
            snprintf(s->machine, sizeof s->machine, "several machines");
        } else
            load_dir(&L, path, "");
    }
    if (L.bad) {
        kvb_cmp_free(s);
        return KVB_STATUS_FORMAT;
    }
    if (is_dir(path)) {                          /* make baseline on another CPU model wrote it */
        char sp[2400];
        snprintf(sp, sizeof sp, "%s/STALE", path);
        FILE *f = fopen(sp, "r");
        if (f) {
            if (!fgets(s->stale, sizeof s->stale, f) || !s->stale[0]) snprintf(s->stale, sizeof s->stale, "(no reason given)");
            s->stale[strcspn(s->stale, "\n")] = 0;
            fclose(f);
        }
    }
    if (s->n == 0 && !s->unfinished) {
        snprintf(msg, msg_len, "'%s' holds no kvbench results (tokens.csv, attend.csv, quality.csv)", path);
        kvb_cmp_free(s);
        return KVB_STATUS_FORMAT;
    }
    return KVB_STATUS_OK;
}

void kvb_cmp_free(kvb_cmp_set *s)
{
    free(s->c);
    s->c = NULL;
    s->n = s->cap = 0;
}

