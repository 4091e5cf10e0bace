/* report.c: see report.h. Reads what kvbench itself wrote (positions.csv,
 * summary.json, attend.csv, quality.csv, serve.csv), so the JSON reading here
 * is a search for known keys in kvbench's own, stable output, not a parser;
 * CSV columns are found by name in the header, never by position or count.
 * gnuplot runs as a child (posix_spawnp, no shell: paths are never parsed),
 * its output to a temporary name renamed when it succeeds. */
#define _XOPEN_SOURCE 700
#include "report.h"
#include "../base/textio.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../base/datadir.h"

extern char **environ;

enum { CELL = 200, MAX_COLS = 8 };

typedef enum plot_id { P_LATENCY, P_MEMORY, P_SCALING, P_BANDWIDTH, P_QUANT, P_PAGED, P_COUNT } plot_id;

static const struct {
    const char *name, *title, *how;
    int cols;
    const char *head[MAX_COLS];
} plot_info[P_COUNT] = {
    {"latency", "Per-token latency against position",
     "Median step time over repetitions at each position, with the p10-p90 band; linear and log-log axes. "
     "A cache gives a flat line plus a slow rise (one linear read of the cache per step); no-cache rises "
     "with position because every step recomputes the whole sequence.",
     4, {"series", "first token (ms)", "last token (ms)", "last token p10-p90 (ms)"}},
    {"memory", "Cache memory against tokens",
     "Bytes reserved (dashed) and holding live tokens (solid) after each step, with the analytic line "
     "tokens x 2 x layers x kv_heads x head_dim x bytes per element (dotted). Used must lie on it; "
     "reserved shows the allocation policy.",
     5, {"series", "reserved (MB)", "used (MB)", "analytic (MB)", "waste"}},
    {"scaling", "Total generation time against tokens (log-log)",
     "Cumulative decode time for n tokens with each backend's fitted power law T = a n^b (exponent and "
     "its 95% interval in the legend). No-cache should sit near 2 or above, a cache near 1 until its "
     "attention term, linear in position, dominates the step. The marker shows where a cache's attention "
     "time overtakes the rest of its step.",
     5, {"series", "status", "b [95% interval]", "b, last quarter", "attention > rest of step from"}},
    {"bandwidth", "Attend bandwidth against context",
     "K/V bytes read per second by one attend call (GB = 10^9) at each context length, with the read "
     "ceiling measured in the same runs (dashed: one thread; dotted: all cores).",
     4, {"series", "largest context", "GB/s there", "fraction of read ceiling"}},
    {"quant", "Quantization: error against bytes per token",
     "Each lossy storage type at its measured bytes per token: the relative L2 error of attention "
     "against float64 and the KL divergence of the next-token distribution against the f32 cache "
     "(teacher-forced). Lower-left is better: the trade-off frontier.",
     5, {"point", "bytes/token", "attend rel L2", "KL mean (nats)", "top-1"}},
    {"paged", "Paged cache: overhead, waste and fit against block size",
     "Left: attend time of the paged cache over the contiguous one at the largest context (1 = no "
     "overhead). Middle: KV memory waste (1 - used/reserved) in the serving simulation, paged at each "
     "block size, contiguous allocation as horizontal lines. Right: sequences held at once (mean over "
     "rounds) under the same memory budget.",
     4, {"series", "block", "value", "what"}},
};

/* Every list grows as needed: a merge of many machines must not drop series. */
typedef struct plot {
    FILE  *dat;
    int    drawn;                     /* its data and vars were written */
    int    img;                       /* gnuplot drew its png and svg */
    int    blocks;
    char (*label)[160];               /* [n_label], the legend of each block */
    int    n_label, cap_label;
    char  *extra;                     /* more gnuplot assignments (malloc'd) */
    size_t extra_len, extra_cap;
    char  *extra_note;                /* what the report says under the table (malloc'd) */
    size_t note_len, note_cap;
    char (*cell)[MAX_COLS][CELL];     /* [rows] the report's table */
    int    rows, cap_rows;
} plot;

typedef struct attend_rec {
    char   shape[32], dtype[16], backend[32], host[64];
    int    block, threads, ctx;
    double ratio;
} attend_rec;

typedef struct report {
    const char *dir;
    char        plots_dir[2200];
    const char *tag;                  /* "" or, in a merge of different sweeps, "-set<k>" */
    char        tag_own[24];
    int         set_hosts;            /* machines in this set */
    plot        p[P_COUNT];
    int         multi;                /* several machines: series carry their host */
    int         failed;               /* out of memory or a file that would not open */
    char        err[600];             /* the first failure: the call, the path and errno's text */
    struct host_ceil { char host[64]; double c1, cn; } *hc;   /* read ceilings, machine by machine */
    int         n_hc, cap_hc;
    int         ctx_min, ctx_max;     /* attend contexts seen */
    attend_rec *rec;
    int         n_rec, cap_rec;
    struct bw_series { char name[160]; int threads, block; char *points; size_t len, cap; } *bw;
    int         n_bw, cap_bw;         /* attend bandwidth series, drawn one thread first */
    FILE       *serve;                /* serve.dat: every machine's serving series */
    int         n_serve, n_ref;
    char        last_serve[160];
    char        machine[4096], config[4096];
    char       *points;               /* the points' statuses, as the report lists them */
    size_t      points_len, points_cap;
} report;

/* Grows *buf (elements of size el) to hold at least need; 0 or -1. */
static int grow(void *buf, int *cap, int need, size_t el)
{
    if (need <= *cap) return 0;
    int c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *b = realloc(*(void **)buf, (size_t)c * el);
    if (!b) return -1;
    *(void **)buf = b;
    *cap = c;
    return 0;
}

static void appendf(report *r, char **s, size_t *len, size_t *cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) { r->failed = 1; return; }
    if (*len + (size_t)n + 1 > *cap) {
        size_t c = *cap ? *cap : 1024;
        while (c < *len + (size_t)n + 1) c *= 2;
        char *b = realloc(*s, c);
        if (!b) { r->failed = 1; return; }
        *s = b;
        *cap = c;
    }
    va_start(ap, fmt);
    vsnprintf(*s + *len, *cap - *len, fmt, ap);
    va_end(ap);
    *len += (size_t)n;
}

/* Records the first failure's cause (the caller formats errno's text in). */
static void fail(report *r, const char *fmt, ...)
{
    r->failed = 1;
    if (r->err[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof r->err, fmt, ap);
    va_end(ap);
}

#define EXTRA(r, id, ...) appendf((r), &(r)->p[id].extra, &(r)->p[id].extra_len, &(r)->p[id].extra_cap, __VA_ARGS__)

static void row(report *r, plot *p, int n, ...)
{
    if (grow(&p->cell, &p->cap_rows, p->rows + 1, sizeof *p->cell)) { r->failed = 1; return; }
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < MAX_COLS; i++) p->cell[p->rows][i][0] = 0;
    for (int i = 0; i < n && i < MAX_COLS; i++) snprintf(p->cell[p->rows][i], CELL, "%s", va_arg(ap, const char *));
    va_end(ap);
    p->rows++;
}

/* The plot's data file, opened on first use; a file that will not open makes
 * the whole report fail (writes then go to /dev/null so callers need no check). */
static FILE *dat(report *r, plot_id id)
{
    plot *p = &r->p[id];
    if (p->dat) return p->dat;
    char path[2400];
    snprintf(path, sizeof path, "%s/%s%s.dat.tmp", r->plots_dir, plot_info[id].name, r->tag);
    if (!(p->dat = fopen(path, "w"))) {
        fail(r, "cannot create '%s': %s", path, strerror(errno));
        p->dat = fopen("/dev/null", "w");
    }
    return p->dat;
}

/* A new gnuplot data block (index i) named for the legend. */
static void block(report *r, plot_id id, const char *label)
{
    plot *p = &r->p[id];
    FILE *f = dat(r, id);
    if (grow(&p->label, &p->cap_label, p->n_label + 1, sizeof *p->label)) { r->failed = 1; return; }
    if (p->blocks++) fprintf(f, "\n\n");
    fprintf(f, "# %s\n", label);
    snprintf(p->label[p->n_label++], sizeof p->label[0], "%s", label);
}

static void fmt(char *b, size_t n, const char *f, double v)
{
    if (isnan(v)) snprintf(b, n, "-");
    else snprintf(b, n, f, v);
}

/* ---- decode runs: latency, memory, scaling ------------------------------- */

static void read_run(report *r, const char *dir, const char *host, int threads)
{
    char path[2400], line[1024];
    snprintf(path, sizeof path, "%s/summary.json", dir);
    char *sum = kvb_slurp(path);
    snprintf(path, sizeof path, "%s/positions.csv", dir);
    FILE *f = fopen(path, "r");
    if (!sum || !f) { free(sum); if (f) fclose(f); return; }
    char cur[128] = "";
    double cum = 0, a = NAN, b = NAN, bpt = NAN, first = NAN, last = NAN, lp10 = NAN, lp90 = NAN;
    double reserved = 0, used = 0, analytic = 0;
    int n = 0, over = -1, streak = 0, nocache = 0, last_pos = 0, first_pos = 0;
    const char *seg = NULL, *seg_end = NULL;
    char name[160];
    for (int more = 1; more;) {
        char *fl[16];
        int nf = 0;
        more = fgets(line, sizeof line, f) != NULL;
        if (more) {
            if (strncmp(line, "label,", 6) == 0) continue;
            nf = kvb_csv_fields(line, fl, 16);
            if (nf < 10) continue;
        }
        if (!more || strcmp(fl[0], cur) != 0) {
            if (cur[0]) {                    /* the previous series' table rows */
                char c1[CELL], c2[CELL], c3[CELL], c4[CELL], c5[CELL];
                fmt(c1, sizeof c1, "%.2f", first);
                fmt(c2, sizeof c2, "%.2f", last);
                snprintf(c3, sizeof c3, "%.2f-%.2f", lp10, lp90);
                row(r, &r->p[P_LATENCY], 4, name, c1, c2, c3);
                fmt(c1, sizeof c1, "%.2f", reserved / 1e6);
                fmt(c2, sizeof c2, "%.2f", used / 1e6);
                fmt(c3, sizeof c3, "%.2f", analytic / 1e6);
                fmt(c4, sizeof c4, "%.3f", reserved > 0 ? 1 - used / reserved : NAN);
                row(r, &r->p[P_MEMORY], 5, name, c1, c2, c3, c4);
                char st[32], ci[CELL];
                kvb_json_str(seg, seg_end, "status", st, sizeof st);
                const char *ft = seg ? strstr(seg, "\"fit_total_time\"") : NULL;
                const char *tt = seg ? strstr(seg, "\"fit_total_time_tail\"") : NULL;
                double lo = ft ? kvb_json_num(ft, seg_end, "b_ci95") : NAN, hi = NAN;
                if (ft && !isnan(lo)) {
                    const char *q = strstr(ft, "\"b_ci95\": [");
                    q = q ? strchr(q, ',') : NULL;
                    hi = q ? strtod(q + 1, NULL) : NAN;
                }
                if (isnan(lo)) snprintf(ci, sizeof ci, "%.3f", b);
                else snprintf(ci, sizeof ci, "%.3f [%.3f, %.3f]", b, lo, hi);
                fmt(c4, sizeof c4, "%.3f", tt ? kvb_json_num(tt, seg_end, "b") : NAN);
                if (nocache) snprintf(c5, sizeof c5, "(no cache)");
                else if (over >= 0) snprintf(c5, sizeof c5, "position %d", over);
                else snprintf(c5, sizeof c5, "not by position %d", last_pos);
                row(r, &r->p[P_SCALING], 5, name, st[0] ? st : "ok", ci, c4, c5);
                /* the legend carries the exponent */
                plot *ps = &r->p[P_SCALING];
                snprintf(ps->label[ps->n_label - 1], sizeof ps->label[0], "%s: b = %s", name, ci);
                if (over >= 0)             /* the plot's x is tokens decoded, n = position - first + 1 */
                    EXTRA(r, P_SCALING, "over[%d] = %d\n", ps->n_label, over - first_pos + 1);
            }
            if (!more) break;
            snprintf(cur, sizeof cur, "%s", fl[0]);
            snprintf(name, sizeof name, "%s", cur);
            if (threads > 1) snprintf(name + strlen(name), sizeof name - strlen(name), " x%d", threads);
            if (r->multi) snprintf(name + strlen(name), sizeof name - strlen(name), " on %s", host);
            char pat[200];
            snprintf(pat, sizeof pat, "{\"label\": \"%s\",", cur);
            seg = strstr(sum, pat);
            seg_end = seg ? strstr(seg + 1, "{\"label\": \"") : NULL;
            a = seg ? kvb_json_num(seg, seg_end, "a_ns") : NAN;
            b = seg ? kvb_json_num(seg, seg_end, "b") : NAN;
            double au = seg ? kvb_json_num(seg, seg_end, "analytic_used") : NAN;
            double lpos = seg ? kvb_json_num(seg, seg_end, "last_position") : NAN;
            bpt = au / (lpos + 1);
            nocache = strncmp(cur, "nocache", 7) == 0;
            cum = 0; n = 0; over = -1; streak = 0; first = NAN;
            block(r, P_LATENCY, name);
            block(r, P_MEMORY, name);
            block(r, P_SCALING, name);
        }
        int pos = atoi(fl[1]);
        double med = atof(fl[3]), p10 = atof(fl[4]), p90 = atof(fl[5]), attn = atof(fl[6]);
        reserved = atof(fl[7]);
        used = atof(fl[8]);
        analytic = isnan(bpt) ? NAN : (pos + 1) * bpt;
        if (isnan(first)) { first = med / 1e6; first_pos = pos; }
        last = med / 1e6; lp10 = p10 / 1e6; lp90 = p90 / 1e6; last_pos = pos;
        fprintf(dat(r, P_LATENCY), "%d %.6g %.6g %.6g\n", pos, med / 1e6, p10 / 1e6, p90 / 1e6);
        fprintf(dat(r, P_MEMORY), "%d %.6g %.6g %.6g\n", pos + 1, reserved / 1e6, used / 1e6,
                isnan(analytic) ? 0.0 : analytic / 1e6);
        cum += med;
        n++;
        fprintf(dat(r, P_SCALING), "%d %.6g %.6g\n", n, cum / 1e9, isnan(a) ? NAN : a * pow(n, b) / 1e9);
        /* attention over the rest of the step, three positions in a row */
        streak = attn > med - attn ? streak + 1 : 0;
        if (!nocache && over < 0 && streak == 3) over = pos - 2;
    }
    fclose(f);
    free(sum);
}

/* ---- attend tables --------------------------------------------------------- */

/* One attend point's table. Rows of other backends (the contiguous cache run
 * beside it for the ratio) are not drawn again. */
static void read_attend(report *r, const char *path, const char *host, int threads, const char *backend)
{
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[2048], head_line[2048];
    char *h[40], *fl[40];
    if (!fgets(head_line, sizeof head_line, f)) { fclose(f); return; }
    int nh = kvb_csv_fields(head_line, h, 40);
    int c_b = kvb_csv_col(h, nh, "backend"), c_d = kvb_csv_col(h, nh, "dtype"), c_k = kvb_csv_col(h, nh, "block_tokens");
    int c_h = kvb_csv_col(h, nh, "n_heads"), c_v = kvb_csv_col(h, nh, "n_kv_heads"), c_hd = kvb_csv_col(h, nh, "head_dim");
    int c_ctx = kvb_csv_col(h, nh, "ctx"), c_ns = kvb_csv_col(h, nh, "median_ns"), c_gbs = kvb_csv_col(h, nh, "gbs");
    int c_ceil = kvb_csv_col(h, nh, "read_ceiling_gbs"), c_frac = kvb_csv_col(h, nh, "fraction_of_read_ceiling");
    int c_ratio = kvb_csv_col(h, nh, "ratio_to_contiguous");
    if (c_b < 0 || c_d < 0 || c_ctx < 0 || c_ns < 0 || c_gbs < 0 || c_h < 0 || c_v < 0 || c_hd < 0) {
        fclose(f);
        return;
    }
    /* rows come context by context; a series is one block size of one backend and type */
    struct arow { char name[160]; int ctx; double gbs, frac; } *rows = NULL;
    int n = 0, cap = 0;
    while (fgets(line, sizeof line, f)) {
        if (grow(&rows, &cap, n + 1, sizeof *rows)) { r->failed = 1; break; }
        if (kvb_csv_fields(line, fl, 40) < nh || (backend && strcmp(fl[c_b], backend) != 0)) continue;
        int blk = c_k >= 0 ? atoi(fl[c_k]) : 0, ctx = atoi(fl[c_ctx]);
        double ceil = c_ceil >= 0 ? atof(fl[c_ceil]) : NAN;
        char shape[32];
        snprintf(shape, sizeof shape, "%s/%s/%s", fl[c_h], fl[c_v], fl[c_hd]);
        char *name = rows[n].name;
        snprintf(name, sizeof rows[n].name, "%s/%s", fl[c_b], fl[c_d]);
        if (blk) snprintf(name + strlen(name), sizeof rows[n].name - strlen(name), "/bs%d", blk);
        snprintf(name + strlen(name), sizeof rows[n].name - strlen(name), " x%d %s", threads, shape);
        if (r->multi) snprintf(name + strlen(name), sizeof rows[n].name - strlen(name), " on %s", host);
        rows[n].ctx = ctx;
        if (!r->ctx_min || ctx < r->ctx_min) r->ctx_min = ctx;
        if (ctx > r->ctx_max) r->ctx_max = ctx;
        rows[n].gbs = atof(fl[c_gbs]);
        rows[n].frac = c_frac >= 0 ? atof(fl[c_frac]) : NAN;
        n++;
        if (ceil > 0) {                 /* each machine's own ceiling: one line per machine */
            int k = 0;
            while (k < r->n_hc && strcmp(r->hc[k].host, host) != 0) k++;
            if (k == r->n_hc) {
                if (grow(&r->hc, &r->cap_hc, k + 1, sizeof *r->hc)) { r->failed = 1; break; }
                memset(&r->hc[k], 0, sizeof r->hc[k]);
                snprintf(r->hc[k].host, sizeof r->hc[k].host, "%s", host);
                r->n_hc++;
            }
            double *c = threads > 1 ? &r->hc[k].cn : &r->hc[k].c1;
            if (ceil > *c) *c = ceil;
        }
        if (grow(&r->rec, &r->cap_rec, r->n_rec + 1, sizeof *r->rec) == 0) {
            attend_rec *x = &r->rec[r->n_rec++];
            snprintf(x->host, sizeof x->host, "%s", host);
            snprintf(x->shape, sizeof x->shape, "%s", shape);
            snprintf(x->dtype, sizeof x->dtype, "%s", fl[c_d]);
            snprintf(x->backend, sizeof x->backend, "%s", fl[c_b]);
            x->block = blk; x->threads = threads; x->ctx = ctx;
            x->ratio = c_ratio >= 0 ? atof(fl[c_ratio]) : NAN;
        }
    }
    fclose(f);
    for (int i = 0; i < n; i++) {
        int first = 1;
        for (int j = 0; j < i; j++) first &= strcmp(rows[j].name, rows[i].name) != 0;
        if (!first) continue;
        if (grow(&r->bw, &r->cap_bw, r->n_bw + 1, sizeof *r->bw)) { r->failed = 1; break; }
        struct bw_series *b = &r->bw[r->n_bw++];
        memset(b, 0, sizeof *b);
        snprintf(b->name, sizeof b->name, "%s", rows[i].name);
        b->threads = threads;
        const char *bs = strstr(rows[i].name, "/bs");
        b->block = bs ? atoi(bs + 3) : 0;
        int last = i;
        for (int j = i; j < n; j++)
            if (strcmp(rows[j].name, rows[i].name) == 0) {
                appendf(r, &b->points, &b->len, &b->cap, "%d %.6g\n", rows[j].ctx, rows[j].gbs);
                last = j;
            }
        char c1[CELL], c2[CELL], c3[CELL];
        snprintf(c1, sizeof c1, "%d", rows[last].ctx);
        snprintf(c2, sizeof c2, "%.2f", rows[last].gbs);
        fmt(c3, sizeof c3, "%.2f", rows[last].frac);
        row(r, &r->p[P_BANDWIDTH], 4, rows[i].name, c1, c2, c3);
    }
    free(rows);
}

/* Paged over contiguous at the largest context of each series: the ratio
 * measured within its own attend command. */
static void paged_overhead(report *r)
{
    char last_series[160] = "";
    for (int i = 0; i < r->n_rec; i++) {
        attend_rec *p = &r->rec[i];
        if (strncmp(p->backend, "paged", 5) != 0 || isnan(p->ratio)) continue;
        int larger = 0;
        for (int k = 0; k < r->n_rec; k++)
            larger |= r->rec[k].ctx > p->ctx && !strcmp(r->rec[k].backend, p->backend) &&
                      r->rec[k].block == p->block && !strcmp(r->rec[k].dtype, p->dtype) &&
                      r->rec[k].threads == p->threads && !strcmp(r->rec[k].shape, p->shape) &&
                      !strcmp(r->rec[k].host, p->host);
        if (larger) continue;
        char series[160], cb[CELL], cv[CELL];
        snprintf(series, sizeof series, "%s/%s x%d %s ctx %d%s%s", p->backend, p->dtype, p->threads, p->shape, p->ctx,
                 r->multi ? " on " : "", r->multi ? p->host : "");
        if (strcmp(series, last_series) != 0) {
            block(r, P_PAGED, series);
            snprintf(last_series, sizeof last_series, "%s", series);
        }
        fprintf(dat(r, P_PAGED), "%d %.6g\n", p->block, p->ratio);
        snprintf(cb, sizeof cb, "%d", p->block);
        snprintf(cv, sizeof cv, "%.3f", p->ratio);
        row(r, &r->p[P_PAGED], 4, series, cb, cv, "attend time / contiguous (same run)");
    }
}

/* ---- quality and serving ---------------------------------------------------- */

/* The summary.json entry of one point label: [*seg, *end). */
static const char *entry(const char *sum, const char *label, const char **end)
{
    char pat[200];
    snprintf(pat, sizeof pat, "{\"label\": \"%s\",", label);
    const char *seg = strstr(sum, pat);
    *end = seg ? strstr(seg + 1, "{\"label\": \"") : NULL;
    return seg;
}

/* How many of a quantized point's tokens were quantized: -1 unknown. The
 * quant cache keeps its newest `residual` tokens (mode g<G>-r<R>-...) in f32
 * and quantizes only older ones, so a run shorter than its window quantizes
 * none, and its error and size are the f32 cache's. A recorded count wins;
 * else the window against the tokens held; else bytes held against the f32
 * cache's in the same run. */
static long quantized_tokens(const char *seg, const char *end, const char *mode, double ref_used, long *window)
{
    double q = kvb_json_num(seg, end, "quantized_tokens");
    double lpos = kvb_json_num(seg, end, "last_position");
    const char *cb = seg ? strstr(seg, "\"cache_bytes\"") : NULL;
    double used = cb && (!end || cb < end) ? kvb_json_num(cb, end, "used") : NAN;
    const char *rp = mode ? strstr(mode, "-r") : NULL;
    *window = rp ? strtol(rp + 2, NULL, 10) : -1;
    if (!isnan(q)) return (long)q;
    if (*window > 0 && !isnan(lpos) && lpos + 1 <= *window) return 0;
    if (ref_used > 0 && used >= ref_used) return 0;
    return -1;
}

static void read_quality(report *r, const char *dir, const char *host)
{
    char path[2400];
    snprintf(path, sizeof path, "%s/quality.csv", dir);
    FILE *f = fopen(path, "r");
    snprintf(path, sizeof path, "%s/summary.json", dir);
    char *sum = kvb_slurp(path);
    char *head_line = NULL, *line = NULL;
    size_t head_cap = 0, line_cap = 0;
    /* columns by name, never by count: quality.csv's per-context columns
     * (attn_rel_l2_ctx<N>, older files) may be there or not */
    enum { MAXF = 256 };
    char **h = malloc(MAXF * sizeof *h), **fl = malloc(MAXF * sizeof *fl);
    if (!f || !sum || !h || !fl || getline(&head_line, &head_cap, f) < 0) {
        if (f) fclose(f);
        free(sum); free(h); free(fl); free(head_line);
        return;
    }
    int nh = kvb_csv_fields(head_line, h, MAXF);
    int c_kl = kvb_csv_col(h, nh, "kl_mean"), c_t1 = kvb_csv_col(h, nh, "top1"), c_e = kvb_csv_col(h, nh, "attn_rel_l2_mean");
    int c_dt = kvb_csv_col(h, nh, "dtype"), c_pt = kvb_csv_col(h, nh, "point"), c_md = kvb_csv_col(h, nh, "mode");
    if (c_pt < 0) c_pt = 0;
    int need = c_kl > c_e ? c_kl : c_e;
    if (c_pt > need) need = c_pt;
    /* the f32 cache's bytes in the same run: a point holding as many quantized nothing */
    double ref_used = NAN;
    for (const char *q = strstr(sum, "\"dtype\": \"f32\""); q && isnan(ref_used); q = strstr(q + 1, "\"dtype\": \"f32\"")) {
        const char *cb = strstr(q, "\"cache_bytes\"");
        if (cb) ref_used = kvb_json_num(cb, NULL, "used");
    }
    char cur[128] = "", dtype[16] = "", mode[64] = "";
    double err = 0, kl = NAN, top1 = NAN;
    int layers = 0;
    for (int more = 1; more && c_kl >= 0 && c_e >= 0;) {
        int n = 0;
        more = getline(&line, &line_cap, f) >= 0;
        if (more && ((n = kvb_csv_fields(line, fl, MAXF)) <= need || n < (nh < MAXF ? nh : MAXF))) continue;
        if (!more || strcmp(fl[c_pt], cur) != 0) {
            if (cur[0] && layers) {
                const char *end, *seg = entry(sum, cur, &end);
                const char *cb = seg ? strstr(seg, "\"cache_bytes\"") : NULL;
                double used = cb && (!end || cb < end) ? kvb_json_num(cb, end, "used") : NAN;
                double lpos = seg ? kvb_json_num(seg, end, "last_position") : NAN;
                double bpt = used / (lpos + 1);
                long window = -1, nq = quantized_tokens(seg, end, mode, ref_used, &window);
                char name[200], c1[CELL], c2[CELL], c3[CELL], c4[CELL], shortname[160];
                const char *on = r->multi ? " on " : "", *hn = r->multi ? host : "";
                if (nq == 0) {
                    /* its figures are the f32 cache's: say so wherever they appear */
                    snprintf(name, sizeof name, "%s%s%s (none quantized: every token in the f32 window)", cur, on, hn);
                    snprintf(shortname, sizeof shortname, "%s%s%s (none quantized: every token in the f32 window)", dtype,
                             on, hn);
                    char w[48] = "its";
                    if (window > 0) snprintf(w, sizeof w, "the %ld-token", window);
                    appendf(r, &r->p[P_QUANT].extra_note, &r->p[P_QUANT].note_len, &r->p[P_QUANT].note_cap,
                            "%s%s%s quantized no token: all %.0f tokens it held stayed in %s f32 window, so its "
                            "error and bytes per token are the f32 cache's, not %s's. Run more tokens than the window "
                            "to measure %s.\n",
                            cur, on, hn, lpos + 1, w, dtype, dtype);
                } else {
                    snprintf(name, sizeof name, "%s%s%s", cur, on, hn);
                    snprintf(shortname, sizeof shortname, "%s%s%s%s", dtype, strstr(cur, "kchannel") ? " (channel keys)" : "",
                             on, hn);
                }
                if (!r->p[P_QUANT].blocks) block(r, P_QUANT, "full model (teacher-forced)");
                fprintf(dat(r, P_QUANT), "%.6g %.6g %.6g \"%s\" %d\n", bpt, err / layers, kl, shortname, nq == 0);
                fmt(c1, sizeof c1, "%.0f", bpt);
                fmt(c2, sizeof c2, "%.2e", err / layers);
                fmt(c3, sizeof c3, "%.2e", kl);
                fmt(c4, sizeof c4, "%.1f%%", top1 * 100);
                row(r, &r->p[P_QUANT], 5, name, c1, c2, c3, c4);
            }
            if (!more) break;
            snprintf(cur, sizeof cur, "%s", fl[c_pt]);
            snprintf(dtype, sizeof dtype, "%s", c_dt >= 0 && c_dt < n ? fl[c_dt] : "");
            snprintf(mode, sizeof mode, "%s", c_md >= 0 && c_md < n ? fl[c_md] : cur);
            err = 0; layers = 0;
        }
        kl = atof(fl[c_kl]);
        top1 = c_t1 >= 0 && c_t1 < n ? atof(fl[c_t1]) : NAN;
        err += atof(fl[c_e]);
        layers++;
    }
    fclose(f);
    free(sum); free(h); free(fl); free(head_line); free(line);
}

static void read_serve(report *r, const char *path, const char *host)
{
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[2048], head_line[2048], *h[32], *fl[32];
    int nh = fgets(head_line, sizeof head_line, f) ? kvb_csv_fields(head_line, h, 32) : 0;
    int c_c = kvb_csv_col(h, nh, "cache"), c_l = kvb_csv_col(h, nh, "lengths"), c_u = kvb_csv_col(h, nh, "utilization");
    int c_m = kvb_csv_col(h, nh, "mean_running");
    if (c_c < 0 || c_l < 0 || c_u < 0 || c_m < 0) { fclose(f); return; }
    plot *p = &r->p[P_PAGED];
    const char *on = r->multi ? " on " : "", *hn = r->multi ? host : "";
    while (fgets(line, sizeof line, f)) {
        if (kvb_csv_fields(line, fl, 32) < nh) continue;
        double util = atof(fl[c_u]), run = atof(fl[c_m]);
        char cb[CELL], cv[CELL], name[160];
        snprintf(name, sizeof name, "%s %s%s%s", fl[c_c], fl[c_l], on, hn);
        const char *bs = strstr(fl[c_c], "/bs");
        if (bs) {                               /* paged: a point per block size, a block per lengths */
            char series[160];
            snprintf(series, sizeof series, "paged %s%s%s", fl[c_l], on, hn);
            if (!r->serve) {
                char sp[2400];
                snprintf(sp, sizeof sp, "%s/serve%s.dat.tmp", r->plots_dir, r->tag);
                if (!(r->serve = fopen(sp, "w"))) { r->failed = 1; break; }
            }
            if (strcmp(series, r->last_serve)) {
                if (r->n_serve) fprintf(r->serve, "\n\n");
                fprintf(r->serve, "# %s\n", series);
                snprintf(r->last_serve, sizeof r->last_serve, "%s", series);
                EXTRA(r, P_PAGED, "serve_label[%d] = \"%s\"\n", ++r->n_serve, series);
            }
            fprintf(r->serve, "%d %.6g %.6g\n", atoi(bs + 3), 1 - util, run);
            snprintf(cb, sizeof cb, "%d", atoi(bs + 3));
        } else {                                 /* contiguous modes: reference lines */
            r->n_ref++;
            EXTRA(r, P_PAGED, "ref_label[%d] = \"%s\"; ref_waste[%d] = %.6g; ref_run[%d] = %.6g\n", r->n_ref, name,
                  r->n_ref, 1 - util, r->n_ref, run);
            snprintf(cb, sizeof cb, "-");
        }
        snprintf(cv, sizeof cv, "%.3f / %.1f", 1 - util, run);
        row(r, p, 4, name, cb, cv, "waste / sequences held");
    }
    fclose(f);
}

/* ---- walking the directory ---------------------------------------------------- */

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int threads_of(const char *id)
{
    const char *t = strrchr(id, '-');
    return t && t[1] == 't' ? atoi(t + 2) : 1;
}

static void read_machine(report *r, const char *mdir, const char *host)
{
    char path[2400];
    snprintf(path, sizeof path, "%s/machine.txt", mdir);
    char *m = kvb_slurp(path);
    size_t len = strlen(r->machine);
    if (m) snprintf(r->machine + len, sizeof r->machine - len, "%s%s", len ? "\n" : "", m);
    free(m);
    snprintf(path, sizeof path, "%s/sweep.def", mdir);
    char *d = kvb_slurp(path);
    if (d && !r->config[0]) snprintf(r->config, sizeof r->config, "%s", d);
    free(d);
    snprintf(path, sizeof path, "%s/summary.json", mdir);
    if (!is_dir(mdir)) return;
    if (!r->machine[0] || !r->config[0]) {       /* a single run: its meta.json says what ran, where */
        snprintf(path, sizeof path, "%s/meta.json", mdir);
        char *meta = kvb_slurp(path);
        if (meta) {
            char cpu[256], cmd[1024], date[64], mhost[128];
            kvb_json_str(meta, NULL, "cpu_model", cpu, sizeof cpu);
            kvb_json_str(meta, NULL, "command", cmd, sizeof cmd);
            kvb_json_str(meta, NULL, "date", date, sizeof date);
            kvb_json_str(meta, NULL, "host", mhost, sizeof mhost);
            if (!r->machine[0])
                snprintf(r->machine, sizeof r->machine, "host: %s\ncpu: %s\ndate: %s", mhost[0] ? mhost : host, cpu, date);
            if (!r->config[0]) snprintf(r->config, sizeof r->config, "%s", cmd);
        }
        free(meta);
    }
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void read_sweep_or_run(report *r, const char *mdir, const char *host)
{
    char path[2400];
    read_machine(r, mdir, host);
    snprintf(path, sizeof path, "%s/points", mdir);
    DIR *d = opendir(path);
    if (!d) {                                    /* a single kvbench run */
        read_run(r, mdir, host, 1);
        read_quality(r, mdir, host);
        return;
    }
    char **names = NULL;
    int n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.' && !strchr(e->d_name, '.')) {   /* points, not .partial/.log/.status */
            if (grow(&names, &cap, n + 1, sizeof *names)) { r->failed = 1; break; }
            names[n++] = strdup(e->d_name);
        }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    /* every point's status, so a timed-out or failed point is listed, never silently missing */
    snprintf(path, sizeof path, "%s/sweep.csv", mdir);
    FILE *idx = fopen(path, "r");
    char line[4096], *f[8];
    while (idx && fgets(line, sizeof line, idx)) {
        if (strncmp(line, "point,", 6) == 0 || kvb_csv_fields(line, f, 8) < 4) continue;
        appendf(r, &r->points, &r->points_len, &r->points_cap, "| %s%s%s | %s | %s | %s |\n", f[0],
                r->multi ? " on " : "", r->multi ? host : "", f[1], f[2], f[3]);
    }
    if (idx) fclose(idx);
    for (int i = 0; i < n; i++) {
        char pd[2400], st[32] = "ok";
        snprintf(pd, sizeof pd, "%s/points/%s.status", mdir, names[i]);
        FILE *sf = fopen(pd, "r");
        if (sf) { if (fscanf(sf, "%31s", st) != 1) st[0] = 0; fclose(sf); }
        snprintf(pd, sizeof pd, "%s/points/%s", mdir, names[i]);
        if (strcmp(st, "failed") == 0) { free(names[i]); continue; }   /* listed above, not drawn */
        if (strncmp(names[i], "run-", 4) == 0) read_run(r, pd, host, threads_of(names[i]));
        else if (strncmp(names[i], "quality-", 8) == 0) read_quality(r, pd, host);
        else if (strncmp(names[i], "attend-", 7) == 0) {
            /* attend-<shape>-<backend>-<dtype>-t<N>; a backend name may hold '-' */
            char backend[64] = "";
            const char *b0 = strchr(names[i] + 7, '-'), *t = strrchr(names[i], '-');
            const char *dt0 = t && t > names[i] ? t - 1 : NULL;
            while (dt0 && dt0 > names[i] && *dt0 != '-') dt0--;
            if (b0 && dt0 && dt0 > b0) snprintf(backend, sizeof backend, "%.*s", (int)(dt0 - b0 - 1), b0 + 1);
            snprintf(path, sizeof path, "%s/attend.csv", pd);
            read_attend(r, path, host, threads_of(names[i]), backend[0] ? backend : NULL);
        } else if (strncmp(names[i], "serve-", 6) == 0) {
            snprintf(path, sizeof path, "%s/serve.csv", pd);
            read_serve(r, path, host);
        }
        free(names[i]);
    }
    free(names);
}

/* ---- writing ------------------------------------------------------------------- */

/* tmp ends in ".tmp": closes it and renames it onto the name without. */
static int finish_file(report *r, const char *tmp, FILE *f)
{
    char final[2400];
    int bad = ferror(f), e = errno;
    if (fclose(f) != 0 && !bad) { bad = 1; e = errno; }
    snprintf(final, sizeof final, "%.*s", (int)(strlen(tmp) - 4), tmp);
    if (bad) {
        fail(r, "cannot write '%s': %s", tmp, strerror(e));
        remove(tmp);
        return -1;
    }
    if (rename(tmp, final) != 0) {
        fail(r, "cannot rename '%s' to '%s': %s", tmp, final, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

static void html_escape(FILE *f, const char *s)
{
    for (; *s; s++)
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
}

/* The i-th series' colour (i from 0): ten well-separated ones (Tableau 10),
 * then hues a golden angle apart at alternating saturation and value, so no
 * two series of one plot share a colour however many machines a merge holds. */
static void series_colour(int i, char out[8])
{
    static const char *const tab[10] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                        "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
    if (i < 10) { snprintf(out, 8, "%s", tab[i]); return; }
    double hue = fmod((i - 10) * 0.6180339887498949 + 0.05, 1.0) * 6;
    double s = (i / 7) % 2 ? 0.55 : 0.9, v = (i / 3) % 2 ? 0.6 : 0.85;
    int k = (int)hue;
    double fr = hue - k, p = v * (1 - s), q = v * (1 - s * fr), t = v * (1 - s * (1 - fr)), rgb[3];
    switch (k % 6) {
    case 0: rgb[0] = v; rgb[1] = t; rgb[2] = p; break;
    case 1: rgb[0] = q; rgb[1] = v; rgb[2] = p; break;
    case 2: rgb[0] = p; rgb[1] = v; rgb[2] = t; break;
    case 3: rgb[0] = p; rgb[1] = q; rgb[2] = v; break;
    case 4: rgb[0] = t; rgb[1] = p; rgb[2] = v; break;
    default: rgb[0] = v; rgb[1] = p; rgb[2] = q; break;
    }
    snprintf(out, 8, "#%02x%02x%02x", (int)(rgb[0] * 255 + 0.5) & 255, (int)(rgb[1] * 255 + 0.5) & 255,
             (int)(rgb[2] * 255 + 0.5) & 255);
}

static void report_free(report *r)
{
    for (int i = 0; i < P_COUNT; i++) {
        if (r->p[i].dat) fclose(r->p[i].dat);   /* still open only on an error path */
        free(r->p[i].label);
        free(r->p[i].extra);
        free(r->p[i].extra_note);
        free(r->p[i].cell);
    }
    if (r->serve) fclose(r->serve);
    free(r->rec);
    free(r->points);
    free(r->hc);
    for (int i = 0; i < r->n_bw; i++) free(r->bw[i].points);
    free(r->bw);
    free(r);
}

/* Drawing: gnuplot runs each plots/<name>.gp (found with kvb_data_path, so
 * from any working directory) for png and svg; what it lacks is said once. */
typedef struct drawer {
    const char *dir;
    FILE       *notes;
    char        scripts[2400];        /* the folder of the .gp scripts */
    int         no_scripts, no_gnuplot, said;
    char        why[600];             /* why there are no images, for the report */
} drawer;

static void note(drawer *d, const char *fmt, ...)
{
    if (!d->notes) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(d->notes, "kvbench: note: ");
    vfprintf(d->notes, fmt, ap);
    fprintf(d->notes, "\n");
    va_end(ap);
}

/* gnuplot's single-quoted string: a quote inside is doubled */
static void gp_quote(char *out, size_t n, const char *s)
{
    size_t k = 0;
    if (n < 3) { if (n) out[0] = 0; return; }
    out[k++] = '\'';
    for (; *s && k + 3 < n; s++) {
        if (*s == '\'') out[k++] = '\'';
        out[k++] = *s;
    }
    out[k++] = '\'';
    out[k] = 0;
}

/* Runs gnuplot on one script for one terminal; 0 drawn, 1 gnuplot missing, -1 failed (r->err says why). */
static int run_gnuplot(report *r, drawer *d, plot_id id, const char *term)
{
    const char *name = plot_info[id].name;
    char script[2600], errpath[2600], out[2600], assign[6000], qdir[5000], tag[64];
    snprintf(script, sizeof script, "%s/%s.gp", d->scripts, name);
    snprintf(errpath, sizeof errpath, "%s/%s%s.err", r->plots_dir, name, r->tag);
    snprintf(out, sizeof out, "%s/%s%s.%s", r->plots_dir, name, r->tag, term);
    gp_quote(qdir, sizeof qdir, d->dir);
    gp_quote(tag, sizeof tag, r->tag);
    snprintf(assign, sizeof assign, "dir=%s; term='%s'; tag=%s; out_suffix='.tmp'", qdir, term, tag);
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0) { fail(r, "cannot start gnuplot: out of memory"); return -1; }
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char *argv[] = {"gnuplot", "-e", assign, script, NULL};
    /* gnuplot starts with no signal blocked: a sweep that writes its report blocks
     * INT/TERM/HUP, and a child inheriting that could be stopped by SIGKILL alone */
    posix_spawnattr_t at;
    sigset_t none;
    sigemptyset(&none);
    int have_at = posix_spawnattr_init(&at) == 0;
    if (have_at) {
        posix_spawnattr_setsigmask(&at, &none);
        posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
    }
    pid_t pid;
    int e = posix_spawnp(&pid, "gnuplot", &fa, have_at ? &at : NULL, argv, environ), st = 0;
    posix_spawn_file_actions_destroy(&fa);
    if (have_at) posix_spawnattr_destroy(&at);
    if (e == ENOENT) { remove(errpath); return 1; }
    if (e != 0) {
        fail(r, "cannot run gnuplot on '%s': %s", script, strerror(e));
        remove(errpath);
        return -1;
    }
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) { fail(r, "waiting for gnuplot: %s", strerror(errno)); return -1; }
    char *msg = kvb_slurp(errpath);
    remove(errpath);
    char tmp[2700];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127 && (!msg || !msg[0])) { free(msg); remove(tmp); return 1; }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        size_t l = msg ? strlen(msg) : 0;
        while (l && (msg[l - 1] == '\n' || msg[l - 1] == ' ')) msg[--l] = 0;
        fail(r, "gnuplot failed on '%s' (%s): %s", script, term, l ? msg : "no message");
        free(msg);
        remove(tmp);
        return -1;
    }
    if (msg && msg[0]) note(d, "gnuplot warned on %s (%s): %s", script, term, msg);
    free(msg);
    if (rename(tmp, out) != 0) {
        fail(r, "cannot rename '%s' to '%s': %s", tmp, out, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

/* An image this report did not draw is removed: one left from an earlier
 * report would show other data under this report's name. */
static void drop_images(report *r, plot_id id)
{
    char path[2600];
    snprintf(path, sizeof path, "%s/%s%s.png", r->plots_dir, plot_info[id].name, r->tag);
    remove(path);
    snprintf(path, sizeof path, "%s/%s%s.svg", r->plots_dir, plot_info[id].name, r->tag);
    remove(path);
}

static void draw(report *r, drawer *d)
{
    for (int i = 0; i < P_COUNT; i++) {
        plot *p = &r->p[i];
        if (!p->drawn || d->no_gnuplot || d->no_scripts) { drop_images(r, (plot_id)i); continue; }
        int ok = 1;
        for (int t = 0; t < 2 && ok; t++) {
            int rc = run_gnuplot(r, d, (plot_id)i, t ? "svg" : "png");
            if (rc == 1) {
                d->no_gnuplot = 1;
                snprintf(d->why, sizeof d->why, "gnuplot is not installed (not found on PATH)");
                note(d, "gnuplot not found on PATH: no plot images drawn, the report says so; install it "
                        "(apt-get install gnuplot-nox) and run kvbench report %s again", d->dir);
            }
            ok = rc == 0;
        }
        p->img = ok;
        if (!ok) drop_images(r, (plot_id)i);
    }
}

/* plots/<name><tag>.dat and .vars for every plot with data; 0 or -1 */
static int write_plot_data(report *r)
{
    char tmp[2600];
    /* title line pieces for every plot */
    char cpu[256] = "", date[64] = "";
    for (const char *l = r->machine; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (!cpu[0]) sscanf(l, "cpu: %255[^\n]", cpu);
        if (!date[0]) sscanf(l, "date: %63[^\n]", date);
    }
    int status = 0;
    for (int i = 0; i < P_COUNT; i++) {
        plot *p = &r->p[i];
        if (!p->dat) continue;
        snprintf(tmp, sizeof tmp, "%s/%s%s.dat.tmp", r->plots_dir, plot_info[i].name, r->tag);
        status |= finish_file(r, tmp, p->dat);
        p->dat = NULL;
        p->drawn = 1;
        snprintf(tmp, sizeof tmp, "%s/%s%s.vars.tmp", r->plots_dir, plot_info[i].name, r->tag);
        FILE *v = fopen(tmp, "w");
        if (!v) { fail(r, "cannot create '%s': %s", tmp, strerror(errno)); status = -1; continue; }
        fprintf(v, "# written by kvbench report: what %s.gp draws\n", plot_info[i].name);
        fprintf(v, "machine = \"%s%s%s\"\n", r->multi ? "several machines" : cpu, date[0] && !r->multi ? ", " : "",
                r->multi ? "" : date);
        fprintf(v, "n = %d\narray labels[%d]\n", p->n_label, p->n_label > 0 ? p->n_label : 1);
        for (int k = 0; k < p->n_label; k++) fprintf(v, "labels[%d] = \"%s\"\n", k + 1, p->label[k]);
        /* a colour for every series a panel can hold: no two alike */
        int nc = p->n_label;
        if (i == P_PAGED && r->n_serve + r->n_ref > nc) nc = r->n_serve + r->n_ref;
        if (i == P_BANDWIDTH) nc += r->n_hc;     /* several machines' ceilings: a colour each, after the series */
        if (nc < 2) nc = 2;
        fprintf(v, "array colour[%d]\n", nc);
        for (int k = 0; k < nc; k++) {
            char c[8];
            series_colour(k, c);
            fprintf(v, "colour[%d] = \"%s\"\n", k + 1, c);
        }
        if (i == P_SCALING)
            fprintf(v, "array over[%d]\ndo for [k = 1:%d] { over[k] = -1 }\n", p->n_label > 0 ? p->n_label : 1,
                    p->n_label > 0 ? p->n_label : 1);
        if (i == P_BANDWIDTH) {      /* one ceiling per machine, named when there are several */
            int nh = r->n_hc > 0 ? r->n_hc : 1;
            fprintf(v, "ctx_min = %d\nctx_max = %d\nn_ceil = %d\narray ceil1s[%d]\narray ceilns[%d]\narray ceil_host[%d]\n",
                    r->ctx_min, r->ctx_max, r->n_hc, nh, nh, nh);
            if (!r->n_hc) fprintf(v, "ceil1s[1] = 0; ceilns[1] = 0; ceil_host[1] = \"\"\n");
            for (int k = 0; k < r->n_hc; k++)
                fprintf(v, "ceil1s[%d] = %.6g; ceilns[%d] = %.6g; ceil_host[%d] = \"%s%s\"\n", k + 1, r->hc[k].c1, k + 1,
                        r->hc[k].cn, k + 1, r->multi ? " of " : "", r->multi ? r->hc[k].host : "");
        }
        if (i == P_PAGED) {
            int nr = r->n_ref ? r->n_ref : 1, ns = r->n_serve ? r->n_serve : 1;
            fprintf(v, "n_ref = %d\narray ref_label[%d]\narray ref_waste[%d]\narray ref_run[%d]\n", r->n_ref, nr, nr,
                    nr);
            fprintf(v, "n_serve = %d\narray serve_label[%d]\n", r->n_serve, ns);
        }
        if (p->extra) fputs(p->extra, v);
        status |= finish_file(r, tmp, v);
    }
    return status;
}

/* Reads one set of machines (or the one directory) into r and writes its plot data. */
static void collect(report *r, const char *mpath, char **hosts, int nh)
{
    snprintf(r->plots_dir, sizeof r->plots_dir, "%s/plots", r->dir);
    r->multi = nh > 1;
    if (hosts)
        for (int i = 0; i < nh; i++) {
            char sub[2400];
            snprintf(sub, sizeof sub, "%s/%s", mpath, hosts[i]);
            read_sweep_or_run(r, sub, hosts[i]);
        }
    else
        read_sweep_or_run(r, r->dir, "this machine");
    paged_overhead(r);
    /* bandwidth: one thread's series, then the threaded ones (two panels); a paged
     * cache at its default block size only (the paged plot has the others) */
    int n1 = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < r->n_bw; i++) {
            struct bw_series *b = &r->bw[i];
            if ((b->threads > 1) != pass || (b->block && b->block != 16 && r->n_bw > 1)) continue;
            block(r, P_BANDWIDTH, b->name);
            if (b->points) fputs(b->points, dat(r, P_BANDWIDTH));
            n1 += !pass;
        }
    EXTRA(r, P_BANDWIDTH, "n1 = %d\n", n1);
    if (r->serve) {     /* the serving data went to its own file: the paged plot reads both */
        char tmp[2600];
        snprintf(tmp, sizeof tmp, "%s/serve%s.dat.tmp", r->plots_dir, r->tag);
        FILE *s = r->serve;
        r->serve = NULL;
        finish_file(r, tmp, s);
        dat(r, P_PAGED);
    }
    write_plot_data(r);
}

static void write_points(report *r, FILE *md_f, FILE *h, const char *hd)
{
    fprintf(md_f, "%s Points\n\n| point | kind | status | seconds |\n|---|---|---|---|\n%s\n", hd, r->points);
    fprintf(h, "<h%zu>Points</h%zu>\n<table>\n<tr><th>point</th><th>kind</th><th>status</th><th>seconds</th></tr>\n",
            strlen(hd), strlen(hd));
    for (const char *l = r->points; *l;) {     /* the markdown rows, as HTML */
        const char *e = strchr(l, '\n');
        size_t len = e ? (size_t)(e - l) : strlen(l);
        char rowbuf[512];
        snprintf(rowbuf, sizeof rowbuf, "%.*s", (int)len, l);
        fprintf(h, "<tr>");
        for (char *save = NULL, *c = strtok_r(rowbuf, "|", &save); c; c = strtok_r(NULL, "|", &save)) {
            while (*c == ' ') c++;
            size_t cl = strlen(c);
            while (cl && c[cl - 1] == ' ') c[--cl] = 0;
            if (!*c) continue;
            fprintf(h, "<td>");
            html_escape(h, c);
            fprintf(h, "</td>");
        }
        fprintf(h, "</tr>\n");
        l = e ? e + 1 : l + len;
    }
    fprintf(h, "</table>\n");
}

/* One set's sections: machine, configuration, points and a section per plot;
 * hd is the heading level's "##" or "###". */
static void write_sections(report *r, drawer *d, FILE *md_f, FILE *h, const char *hd)
{
    size_t lv = strlen(hd);
    fprintf(md_f, "%s Machine\n\n```\n%s\n```\n\n%s Configuration\n\n```\n%s\n```\n\n", hd, r->machine, hd, r->config);
    fprintf(h, "<h%zu>Machine</h%zu>\n<pre>", lv, lv);
    html_escape(h, r->machine);
    fprintf(h, "</pre>\n<h%zu>Configuration</h%zu>\n<pre>", lv, lv);
    html_escape(h, r->config);
    fprintf(h, "</pre>\n");
    if (r->points) write_points(r, md_f, h, hd);
    for (int i = 0; i < P_COUNT; i++) {
        plot *p = &r->p[i];
        const char *nm = plot_info[i].name;
        fprintf(md_f, "%s %s\n\n", hd, plot_info[i].title);
        fprintf(h, "<h%zu>%s</h%zu>\n", lv, plot_info[i].title, lv);
        if (!p->drawn) {
            fprintf(md_f, "Not in this run.\n\n");
            fprintf(h, "<p>Not in this run.</p>\n");
            continue;
        }
        fprintf(md_f, "%s\n\n", plot_info[i].how);
        fprintf(h, "<p>%s</p>\n", plot_info[i].how);
        if (p->img) {
            fprintf(md_f, "![%s](plots/%s%s.png)\n\n", nm, nm, r->tag);
            fprintf(h, "<p><img src=\"plots/%s%s.svg\" alt=\"%s\"></p>\n", nm, r->tag, nm);
        } else {
            /* never a broken image link: say why there is none and where the data is */
            char why[800];
            snprintf(why, sizeof why, "Plot not drawn: %s. Its data is in plots/%s%s.dat; draw it with `kvbench report "
                     "DIR` once gnuplot is installed.", d->why[0] ? d->why : "gnuplot failed on it", nm, r->tag);
            fprintf(md_f, "*%s*\n\n", why);
            fprintf(h, "<p class=\"note\">");
            html_escape(h, why);
            fprintf(h, "</p>\n");
        }
        fprintf(h, "<table>\n<tr>");
        fprintf(md_f, "|");
        for (int c = 0; c < plot_info[i].cols; c++) {
            fprintf(md_f, " %s |", plot_info[i].head[c]);
            fprintf(h, "<th>%s</th>", plot_info[i].head[c]);
        }
        fprintf(md_f, "\n|");
        for (int c = 0; c < plot_info[i].cols; c++) fprintf(md_f, "---|");
        fprintf(md_f, "\n");
        fprintf(h, "</tr>\n");
        for (int k = 0; k < p->rows; k++) {
            fprintf(md_f, "|");
            fprintf(h, "<tr>");
            for (int c = 0; c < plot_info[i].cols; c++) {
                fprintf(md_f, " %s |", p->cell[k][c]);
                fprintf(h, "<td>");
                html_escape(h, p->cell[k][c]);
                fprintf(h, "</td>");
            }
            fprintf(md_f, "\n");
            fprintf(h, "</tr>\n");
        }
        fprintf(md_f, "\n");
        fprintf(h, "</table>\n");
        if (p->extra_note) {
            fprintf(md_f, "%s\n", p->extra_note);
            fprintf(h, "<p class=\"note\">");
            html_escape(h, p->extra_note);
            fprintf(h, "</p>\n");
        }
    }
}

/* A sweep's definition without its comments, blank lines and time budgets
 * (as merge compares them: a budget changes when a point stops, not what it
 * measures): machines whose definitions differ measured different things
 * and are reported apart. */
static char *definition(const char *mdir)
{
    char path[2400];
    snprintf(path, sizeof path, "%s/sweep.def", mdir);
    char *d = kvb_slurp(path);
    if (!d) return strdup("");
    char *o = d;
    for (char *l = d, *e; *l; l = e) {
        e = strchr(l, '\n');
        e = e ? e + 1 : l + strlen(l);
        const char *t = l;
        while (t < e && (*t == ' ' || *t == '\t')) t++;
        if (t == e || *t == '#' || *t == '\n') continue;
        const char *eq = memchr(t, '=', (size_t)(e - t));
        const char *bud = eq ? strstr(t, ".budget") : NULL;
        if (bud && bud < eq) continue;
        memmove(o, l, (size_t)(e - l));
        o += e - l;
    }
    *o = 0;
    return d;
}

/* Lines of a not in b, as "key = value; key = value" */
static void def_diff(const char *a, const char *b, char *out, size_t n)
{
    size_t k = 0;
    out[0] = 0;
    for (const char *l = a, *e; *l; l = e) {
        e = strchr(l, '\n');
        e = e ? e + 1 : l + strlen(l);
        size_t len = (size_t)(e - l) - (e[-1] == '\n');
        int found = 0;
        for (const char *m = b, *f; *m && !found; m = f) {
            f = strchr(m, '\n');
            f = f ? f + 1 : m + strlen(m);
            size_t ml = (size_t)(f - m) - (f[-1] == '\n');
            found = ml == len && strncmp(m, l, len) == 0;
        }
        if (!found && k + len + 3 < n) k += (size_t)snprintf(out + k, n - k, "%s%.*s", k ? "; " : "", (int)len, l);
    }
}

kvb_status kvb_report(const char *dir, char *msg, size_t msg_len)
{
    return kvb_report_to(dir, stderr, msg, msg_len);
}

kvb_status kvb_report_to(const char *dir, FILE *notes, char *msg, size_t msg_len)
{
    char path[2400], tmp[2500], mpath[2400], plots_dir[2400];
    struct stat st;
    snprintf(path, sizeof path, "%s/summary.json", dir);
    snprintf(mpath, sizeof mpath, "%s/machines", dir);
    snprintf(tmp, sizeof tmp, "%s/sweep.csv", dir);
    if (!is_dir(dir) || (stat(path, &st) != 0 && !is_dir(mpath) && stat(tmp, &st) != 0)) {
        snprintf(msg, msg_len, "'%s' is not a kvbench result: no summary.json, sweep.csv or machines/", dir);
        return KVB_STATUS_INVALID_ARG;
    }
    snprintf(plots_dir, sizeof plots_dir, "%s/plots", dir);
    /* the failing call's own errno: a read-only directory says so */
    if (mkdir(plots_dir, 0755) != 0 && errno != EEXIST) {
        snprintf(msg, msg_len, "cannot create '%s': %s", plots_dir, strerror(errno));
        return KVB_STATUS_IO;
    }
    if (!is_dir(plots_dir)) {
        snprintf(msg, msg_len, "cannot create '%s': a file of that name is in the way", plots_dir);
        return KVB_STATUS_IO;
    }

    /* the machines of a merge, grouped by sweep definition */
    char **hosts = NULL, **defs = NULL;
    int *set = NULL, nm = 0, cap = 0, n_sets = 1, oom = 0;
    DIR *md = opendir(mpath);
    int merged = md != NULL;
    if (md) {
        for (struct dirent *e; (e = readdir(md));) {
            if (e->d_name[0] == '.') continue;
            if (grow(&hosts, &cap, nm + 1, sizeof *hosts) || !(hosts[nm] = strdup(e->d_name))) { oom = 1; break; }
            nm++;
        }
        closedir(md);
        qsort(hosts, (size_t)nm, sizeof *hosts, cmp_str);
        if (!oom && (!(defs = calloc((size_t)nm + 1, sizeof *defs)) || !(set = calloc((size_t)nm + 1, sizeof *set))))
            oom = 1;
        n_sets = 0;
        for (int i = 0; i < nm && !oom; i++) {
            char sub[2400];
            snprintf(sub, sizeof sub, "%s/%s", mpath, hosts[i]);
            if (!(defs[i] = definition(sub))) { oom = 1; break; }
            set[i] = -1;
            for (int j = 0; j < i && set[i] < 0; j++)
                if (strcmp(defs[i], defs[j]) == 0) set[i] = set[j];
            if (set[i] < 0) set[i] = n_sets++;
        }
        if (n_sets == 0) n_sets = 1;
    }
    drawer d = {.dir = dir, .notes = notes};
    if (kvb_data_path("plots/common.gp", path, sizeof path) != 0) {
        d.no_scripts = 1;
        snprintf(d.why, sizeof d.why, "the plot scripts were not found (looked for %s)", path);
        note(&d, "plot scripts not found (looked for %s; set KVBENCH_DATA to the folder holding plots/): no images drawn",
             path);
    } else {
        char *slash = strrchr(path, '/');
        if (slash) *slash = 0;
        snprintf(d.scripts, sizeof d.scripts, "%s", path);
    }
    report **rs = calloc((size_t)n_sets, sizeof *rs);
    oom |= !rs;
    for (int s = 0; s < n_sets && !oom; s++) {
        report *r = rs[s] = calloc(1, sizeof *r);
        if (!r) { oom = 1; break; }
        r->dir = dir;
        /* one set: the plain names; several: every file carries its set */
        if (n_sets > 1) snprintf(r->tag_own, sizeof r->tag_own, "-set%d", s + 1);
        r->tag = r->tag_own;
        if (!merged) collect(r, NULL, NULL, 0);
        else {
            char **mine = malloc(((size_t)nm + 1) * sizeof *mine);
            int k = 0;
            if (!mine) { oom = 1; break; }
            for (int i = 0; i < nm; i++)
                if (set[i] == s) mine[k++] = hosts[i];
            collect(r, mpath, mine, k);
            r->set_hosts = k;
            free(mine);
        }
        draw(r, &d);
    }

    /* report.md and report.html */
    kvb_status ret = KVB_STATUS_OK;
    char mdt[2400], htt[2400];
    snprintf(mdt, sizeof mdt, "%s/report.md.tmp", dir);
    snprintf(htt, sizeof htt, "%s/report.html.tmp", dir);
    FILE *md_f = NULL, *h = NULL;
    char bad_path[2400] = "";
    int e_open = 0;
    if (!oom && !(md_f = fopen(mdt, "w"))) { e_open = errno; snprintf(bad_path, sizeof bad_path, "%s", mdt); }
    if (md_f && !(h = fopen(htt, "w"))) {
        e_open = errno;
        snprintf(bad_path, sizeof bad_path, "%s", htt);
        fclose(md_f);
        remove(mdt);
        md_f = NULL;
    }
    if (oom) {
        snprintf(msg, msg_len, "out of memory");
        ret = KVB_STATUS_NO_MEMORY;
    } else if (!md_f) {
        const char *first = NULL;       /* the first failure: plot data fails before the report */
        for (int s = 0; s < n_sets && !first; s++)
            if (rs[s]->err[0]) first = rs[s]->err;
        if (first) snprintf(msg, msg_len, "report of '%s': %s", dir, first);
        else snprintf(msg, msg_len, "cannot create '%s': %s", bad_path, strerror(e_open));
        ret = KVB_STATUS_IO;
    } else {
        const char *base = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
        fprintf(md_f, "# kvbench report: %s\n\n", base);
        fprintf(h, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>kvbench report: ");
        html_escape(h, base);
        /* an image is shown at its own size (each plot is at most 1200 px wide),
         * shrunk only to fit a narrower window: its text stays at 14 px */
        fprintf(h, "</title>\n<style>body{font-family:sans-serif;font-size:16px;max-width:1200px;margin:auto;"
                   "padding:0 8px}table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:2px 8px;"
                   "text-align:right}td:first-child{text-align:left}img{max-width:100%%;height:auto}"
                   "pre{background:#f4f4f4;padding:8px;overflow-x:auto}.note{background:#fff4d6;padding:6px}"
                   "</style></head><body>\n<h1>kvbench report: ");
        html_escape(h, base);
        fprintf(h, "</h1>\n");
        if (n_sets > 1) {
            char line[4096];
            snprintf(line, sizeof line, "These machines ran different sweep definitions, so their figures are not "
                     "comparable: each set is reported apart, with its own plots.");
            fprintf(md_f, "**%s**\n\n", line);
            fprintf(h, "<p class=\"note\"><b>");
            html_escape(h, line);
            fprintf(h, "</b></p>\n<ul>\n");
            for (int s = 0; s < n_sets; s++) {
                int k = 0, first = -1;
                for (int i = 0; i < nm; i++)
                    if (set[i] == s) {
                        k += snprintf(line + k, sizeof line - (size_t)k, "%s%s", k ? ", " : "", hosts[i]);
                        if (first < 0) first = i;
                        if (k >= (int)sizeof line - 1) break;
                    }
                char diff[2048] = "", back[2048] = "";   /* its lines set 1 lacks, and set 1's it lacks */
                int f0 = 0;
                while (f0 < nm && set[f0] != 0) f0++;
                if (s > 0 && first >= 0 && f0 < nm) {
                    def_diff(defs[first], defs[f0], diff, sizeof diff);
                    def_diff(defs[f0], defs[first], back, sizeof back);
                }
                fprintf(md_f, "- set %d: %s", s + 1, line);
                fprintf(h, "<li>set %d: ", s + 1);
                html_escape(h, line);
                if (diff[0] || back[0]) {
                    fprintf(md_f, "; differs from set 1 in: `%s` (set 1: `%s`)", diff[0] ? diff : "-", back[0] ? back : "-");
                    fprintf(h, "; differs from set 1 in: <code>");
                    html_escape(h, diff[0] ? diff : "-");
                    fprintf(h, "</code> (set 1: <code>");
                    html_escape(h, back[0] ? back : "-");
                    fprintf(h, "</code>)");
                }
                fprintf(md_f, "\n");
                fprintf(h, "</li>\n");
            }
            fprintf(md_f, "\n");
            fprintf(h, "</ul>\n");
        }
        for (int s = 0; s < n_sets; s++) {
            if (n_sets > 1) {
                fprintf(md_f, "## Set %d of %d\n\n", s + 1, n_sets);
                fprintf(h, "<h2>Set %d of %d</h2>\n", s + 1, n_sets);
            }
            write_sections(rs[s], &d, md_f, h, n_sets > 1 ? "###" : "##");
        }
        fprintf(h, "</body></html>\n");
        report dummy = {0};
        int bad = finish_file(&dummy, mdt, md_f) | finish_file(&dummy, htt, h);
        const char *why = dummy.err;
        for (int s = 0; s < n_sets && !why[0]; s++)
            if (rs[s]->failed) why = rs[s]->err[0] ? rs[s]->err : "out of memory";
        for (int s = 0; s < n_sets; s++) bad |= rs[s]->failed;
        if (bad) {
            snprintf(msg, msg_len, "report of '%s': %s", dir, why[0] ? why : "a file could not be written");
            ret = KVB_STATUS_IO;
        }
    }
    for (int s = 0; s < n_sets && rs; s++)
        if (rs[s]) report_free(rs[s]);
    free(rs);
    for (int i = 0; i < nm; i++) {
        free(hosts[i]);
        if (defs) free(defs[i]);
    }
    free(hosts);
    free(defs);
    free(set);
    return ret;
}
