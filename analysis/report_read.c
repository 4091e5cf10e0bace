/* report_read.c: the result files read into a report (report.h):
 * positions.csv and summary.json of decode runs, attend.csv, quality.csv,
 * serve.csv, a sweep's sweep.csv and a run's meta.json. CSV columns are
 * found by name in the header, never by position or count. */
#define _XOPEN_SOURCE 700
#include "report_int.h"
#include "../base/columns.h"
#include "../base/csv.h"
#include "../base/json.h"
#include "../base/textio.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- decode runs: latency, memory, scaling ------------------------------- */

/* summary.json's entry for each point label, NULL when there is none. A
 * missing or unreadable file: -1; one that is not JSON draws with no fits. */
static int load_summary(const char *dir, cJSON **sum)
{
    char path[2400], msg[600];
    int err;
    snprintf(path, sizeof path, "%s/summary.json", dir);
    *sum = kvb_json_load(path, &err, msg, sizeof msg);
    return *sum || err == EBADMSG ? 0 : -1;
}

/* The scaling table's row and legend for the series just read. */
static void scaling_row(report *r, const cJSON *pt, const char *name, double b, int nocache,
                        int over, int last_pos, int first_pos)
{
    char st[32], ci[CELL], c4[CELL], c5[CELL];
    kvb_json_copy_at(pt, KVB_KEY_STATUS, st, sizeof st);
    double lo = kvb_json_num_at(pt, KVB_KEY_FIT_TOTAL "." KVB_KEY_B_CI95 ".0");
    double hi = kvb_json_num_at(pt, KVB_KEY_FIT_TOTAL "." KVB_KEY_B_CI95 ".1");
    if (isnan(lo))
        snprintf(ci, sizeof ci, "%.3f", b);
    else
        snprintf(ci, sizeof ci, "%.3f [%.3f, %.3f]", b, lo, hi);
    kvb_rp_fmt(c4, sizeof c4, "%.3f", kvb_json_num_at(pt, KVB_KEY_FIT_TAIL "." KVB_KEY_B));
    if (nocache)
        snprintf(c5, sizeof c5, "(no cache)");
    else if (over >= 0)
        snprintf(c5, sizeof c5, "position %d", over);
    else
        snprintf(c5, sizeof c5, "not by position %d", last_pos);
    kvb_rp_row(r, &r->p[P_SCALING], 5, name, st[0] ? st : "ok", ci, c4, c5);
    /* the legend carries the exponent */
    plot *ps = &r->p[P_SCALING];
    snprintf(ps->label[ps->n_label - 1], sizeof ps->label[0], "%s: b = %s", name, ci);
    if (over >= 0) /* the plot's x is tokens decoded, n = position - first + 1 */
        EXTRA(r, P_SCALING, "over[%d] = %d\n", ps->n_label, over - first_pos + 1);
}

static void read_run(report *r, const char *dir, const char *host, int threads)
{
    char path[2400], msg[600];
    cJSON *sum;
    kvb_csv c;
    snprintf(path, sizeof path, "%s/positions.csv", dir);
    if (load_summary(dir, &sum)) return;
    if (kvb_csv_open(&c, path, msg, sizeof msg)) {
        cJSON_Delete(sum);
        return;
    }
    const cJSON *points = kvb_json_at(sum, KVB_KEY_POINTS), *pt = NULL;
    char cur[128] = "";
    double cum = 0, a = NAN, b = NAN, bpt = NAN, first = NAN, last = NAN, lp10 = NAN, lp90 = NAN;
    double reserved = 0, used = 0, analytic = 0;
    int n = 0, over = -1, streak = 0, nocache = 0, last_pos = 0, first_pos = 0, need = -1;
    enum { C_LABEL, C_POS, C_MED, C_P10, C_P90, C_ATT, C_RES, C_USED };
    int col[8];
    char name[160];
    for (int more = 1; more;) {
        more = kvb_csv_next(&c) > 0;
        if (more && c.n &&
            strcmp(c.field[0], KVB_COL_LABEL) == 0) { /* a header, wherever it comes */
            static const char *const names[8] = {
                KVB_COL_LABEL,    KVB_COL_POSITION,    KVB_COL_STEP_MEDIAN,    KVB_COL_STEP_P10,
                KVB_COL_STEP_P90, KVB_COL_ATTN_MEDIAN, KVB_COL_RESERVED_BYTES, KVB_COL_USED_BYTES};
            if (kvb_csv_header(&c)) {
                r->failed = 1;
                break;
            }
            need = kvb_csv_columns(&c, names, col, 8);
            continue;
        }
        if (more && (need < 0 || c.n <= need)) continue;
        const char *label = more ? c.field[col[C_LABEL]] : "";
        if (!more || strcmp(label, cur) != 0) {
            if (cur[0]) { /* the previous series' table rows */
                char c1[CELL], c2[CELL], c3[CELL], c4[CELL];
                kvb_rp_fmt(c1, sizeof c1, "%.2f", first);
                kvb_rp_fmt(c2, sizeof c2, "%.2f", last);
                snprintf(c3, sizeof c3, "%.2f-%.2f", lp10, lp90);
                kvb_rp_row(r, &r->p[P_LATENCY], 4, name, c1, c2, c3);
                kvb_rp_fmt(c1, sizeof c1, "%.2f", reserved / 1e6);
                kvb_rp_fmt(c2, sizeof c2, "%.2f", used / 1e6);
                kvb_rp_fmt(c3, sizeof c3, "%.2f", analytic / 1e6);
                kvb_rp_fmt(c4, sizeof c4, "%.3f", reserved > 0 ? 1 - used / reserved : NAN);
                kvb_rp_row(r, &r->p[P_MEMORY], 5, name, c1, c2, c3, c4);
                scaling_row(r, pt, name, b, nocache, over, last_pos, first_pos);
            }
            if (!more) break;
            snprintf(cur, sizeof cur, "%s", label);
            snprintf(name, sizeof name, "%s", cur);
            if (threads > 1)
                snprintf(name + strlen(name), sizeof name - strlen(name), " x%d", threads);
            if (r->multi) snprintf(name + strlen(name), sizeof name - strlen(name), " on %s", host);
            pt = kvb_json_find(points, KVB_KEY_LABEL, cur);
            a = kvb_json_num_at(pt, KVB_KEY_FIT_TOTAL "." KVB_KEY_A_NS);
            b = kvb_json_num_at(pt, KVB_KEY_FIT_TOTAL "." KVB_KEY_B);
            bpt = kvb_json_num_at(pt, KVB_PATH_ANALYTIC_USED) /
                  (kvb_json_num_at(pt, KVB_KEY_LAST_POSITION) + 1);
            nocache = strncmp(cur, "nocache", 7) == 0;
            cum = 0;
            n = 0;
            over = -1;
            streak = 0;
            first = NAN;
            kvb_rp_block(r, P_LATENCY, name);
            kvb_rp_block(r, P_MEMORY, name);
            kvb_rp_block(r, P_SCALING, name);
        }
        int pos = atoi(c.field[col[C_POS]]);
        double med = atof(c.field[col[C_MED]]), p10 = atof(c.field[col[C_P10]]),
               p90 = atof(c.field[col[C_P90]]);
        double attn = atof(c.field[col[C_ATT]]);
        reserved = atof(c.field[col[C_RES]]);
        used = atof(c.field[col[C_USED]]);
        analytic = isnan(bpt) ? NAN : (pos + 1) * bpt;
        if (isnan(first)) {
            first = med / 1e6;
            first_pos = pos;
        }
        last = med / 1e6;
        lp10 = p10 / 1e6;
        lp90 = p90 / 1e6;
        last_pos = pos;
        fprintf(kvb_rp_dat(r, P_LATENCY), "%d %.6g %.6g %.6g\n", pos, med / 1e6, p10 / 1e6,
                p90 / 1e6);
        fprintf(kvb_rp_dat(r, P_MEMORY), "%d %.6g %.6g %.6g\n", pos + 1, reserved / 1e6, used / 1e6,
                isnan(analytic) ? 0.0 : analytic / 1e6);
        cum += med;
        n++;
        fprintf(kvb_rp_dat(r, P_SCALING), "%d %.6g %.6g\n", n, cum / 1e9,
                isnan(a) ? NAN : a * pow(n, b) / 1e9);
        /* attention over the rest of the step, three positions in a row */
        streak = attn > med - attn ? streak + 1 : 0;
        if (!nocache && over < 0 && streak == 3) over = pos - 2;
    }
    kvb_csv_close(&c);
    cJSON_Delete(sum);
}

/* ---- attend tables --------------------------------------------------------- */

/* One attend point's table. Rows of other backends (the contiguous cache run
 * beside it for the ratio) are not drawn again. */
static void read_attend(report *r, const char *path, const char *host, int threads,
                        const char *backend)
{
    kvb_csv c;
    char msg[600];
    if (kvb_csv_open(&c, path, msg, sizeof msg)) return;
    if (kvb_csv_next(&c) <= 0 || kvb_csv_header(&c)) {
        kvb_csv_close(&c);
        return;
    }
    int c_b = kvb_csv_column(&c, KVB_COL_BACKEND), c_d = kvb_csv_column(&c, KVB_COL_DTYPE);
    int c_k = kvb_csv_column(&c, KVB_COL_BLOCK), c_h = kvb_csv_column(&c, KVB_COL_HEADS);
    int c_v = kvb_csv_column(&c, KVB_COL_KV_HEADS), c_hd = kvb_csv_column(&c, KVB_COL_HEAD_DIM);
    int c_ctx = kvb_csv_column(&c, KVB_COL_CTX), c_ns = kvb_csv_column(&c, KVB_COL_MEDIAN_NS);
    int c_gbs = kvb_csv_column(&c, KVB_COL_GBS), c_ceil = kvb_csv_column(&c, KVB_COL_CEILING);
    int c_frac = kvb_csv_column(&c, KVB_COL_OF_CEILING),
        c_ratio = kvb_csv_column(&c, KVB_COL_RATIO);
    if (c_b < 0 || c_d < 0 || c_ctx < 0 || c_ns < 0 || c_gbs < 0 || c_h < 0 || c_v < 0 ||
        c_hd < 0) {
        kvb_csv_close(&c);
        return;
    }
    char **fl = NULL;
    /* rows come context by context; a series is one block size of one backend and type */
    struct arow {
        char name[160];
        int ctx;
        double gbs, frac;
    } *rows = NULL;
    int n = 0, cap = 0;
    while (kvb_csv_next(&c) > 0) {
        if (kvb_rp_grow(&rows, &cap, n + 1, sizeof *rows)) {
            r->failed = 1;
            break;
        }
        fl = c.field;
        if (c.n < c.n_head || (backend && strcmp(fl[c_b], backend) != 0)) continue;
        int blk = c_k >= 0 ? atoi(fl[c_k]) : 0, ctx = atoi(fl[c_ctx]);
        double ceil = c_ceil >= 0 ? atof(fl[c_ceil]) : NAN;
        char shape[32];
        snprintf(shape, sizeof shape, "%s/%s/%s", fl[c_h], fl[c_v], fl[c_hd]);
        char *name = rows[n].name;
        snprintf(name, sizeof rows[n].name, "%s/%s", fl[c_b], fl[c_d]);
        if (blk) snprintf(name + strlen(name), sizeof rows[n].name - strlen(name), "/bs%d", blk);
        snprintf(name + strlen(name), sizeof rows[n].name - strlen(name), " x%d %s", threads,
                 shape);
        if (r->multi)
            snprintf(name + strlen(name), sizeof rows[n].name - strlen(name), " on %s", host);
        rows[n].ctx = ctx;
        if (!r->ctx_min || ctx < r->ctx_min) r->ctx_min = ctx;
        if (ctx > r->ctx_max) r->ctx_max = ctx;
        rows[n].gbs = atof(fl[c_gbs]);
        rows[n].frac = c_frac >= 0 ? atof(fl[c_frac]) : NAN;
        n++;
        if (ceil > 0) { /* each machine's own ceiling: one line per machine */
            int k = 0;
            while (k < r->n_hc && strcmp(r->hc[k].host, host) != 0) k++;
            if (k == r->n_hc) {
                if (kvb_rp_grow(&r->hc, &r->cap_hc, k + 1, sizeof *r->hc)) {
                    r->failed = 1;
                    break;
                }
                memset(&r->hc[k], 0, sizeof r->hc[k]);
                snprintf(r->hc[k].host, sizeof r->hc[k].host, "%s", host);
                r->n_hc++;
            }
            double *hc = threads > 1 ? &r->hc[k].cn : &r->hc[k].c1;
            if (ceil > *hc) *hc = ceil;
        }
        if (kvb_rp_grow(&r->rec, &r->cap_rec, r->n_rec + 1, sizeof *r->rec) == 0) {
            attend_rec *x = &r->rec[r->n_rec++];
            snprintf(x->host, sizeof x->host, "%s", host);
            snprintf(x->shape, sizeof x->shape, "%s", shape);
            snprintf(x->dtype, sizeof x->dtype, "%s", fl[c_d]);
            snprintf(x->backend, sizeof x->backend, "%s", fl[c_b]);
            x->block = blk;
            x->threads = threads;
            x->ctx = ctx;
            x->ratio = c_ratio >= 0 ? atof(fl[c_ratio]) : NAN;
        }
    }
    kvb_csv_close(&c);
    for (int i = 0; i < n; i++) {
        int first = 1;
        for (int j = 0; j < i; j++) first &= strcmp(rows[j].name, rows[i].name) != 0;
        if (!first) continue;
        if (kvb_rp_grow(&r->bw, &r->cap_bw, r->n_bw + 1, sizeof *r->bw)) {
            r->failed = 1;
            break;
        }
        struct bw_series *b = &r->bw[r->n_bw++];
        memset(b, 0, sizeof *b);
        snprintf(b->name, sizeof b->name, "%s", rows[i].name);
        b->threads = threads;
        const char *bs = strstr(rows[i].name, "/bs");
        b->block = bs ? atoi(bs + 3) : 0;
        int last = i;
        for (int j = i; j < n; j++)
            if (strcmp(rows[j].name, rows[i].name) == 0) {
                kvb_rp_appendf(r, &b->points, &b->len, &b->cap, "%d %.6g\n", rows[j].ctx,
                               rows[j].gbs);
                last = j;
            }
        char c1[CELL], c2[CELL], c3[CELL];
        snprintf(c1, sizeof c1, "%d", rows[last].ctx);
        snprintf(c2, sizeof c2, "%.2f", rows[last].gbs);
        kvb_rp_fmt(c3, sizeof c3, "%.2f", rows[last].frac);
        kvb_rp_row(r, &r->p[P_BANDWIDTH], 4, rows[i].name, c1, c2, c3);
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
        snprintf(series, sizeof series, "%s/%s x%d %s ctx %d%s%s", p->backend, p->dtype, p->threads,
                 p->shape, p->ctx, r->multi ? " on " : "", r->multi ? p->host : "");
        if (strcmp(series, last_series) != 0) {
            kvb_rp_block(r, P_PAGED, series);
            snprintf(last_series, sizeof last_series, "%s", series);
        }
        fprintf(kvb_rp_dat(r, P_PAGED), "%d %.6g\n", p->block, p->ratio);
        snprintf(cb, sizeof cb, "%d", p->block);
        snprintf(cv, sizeof cv, "%.3f", p->ratio);
        kvb_rp_row(r, &r->p[P_PAGED], 4, series, cb, cv, "attend time / contiguous (same run)");
    }
}

/* ---- quality and serving ---------------------------------------------------- */

/* How many of a quantized point's tokens were quantized: -1 unknown. The
 * quant cache keeps its newest `residual` tokens (mode g<G>-r<R>-...) in f32
 * and quantizes only older ones, so a run shorter than its window quantizes
 * none, and its error and size are the f32 cache's. A recorded count wins;
 * else the window against the tokens held; else bytes held against the f32
 * cache's in the same run. */
static long quantized_tokens(const cJSON *pt, const char *mode, double ref_used, long *window)
{
    double q = kvb_json_num_at(pt, KVB_KEY_QUANTIZED);
    double lpos = kvb_json_num_at(pt, KVB_KEY_LAST_POSITION);
    double used = kvb_json_num_at(pt, KVB_PATH_USED);
    const char *rp = mode ? strstr(mode, "-r") : NULL;
    *window = rp ? strtol(rp + 2, NULL, 10) : -1;
    if (!isnan(q)) return (long)q;
    if (*window > 0 && !isnan(lpos) && lpos + 1 <= *window) return 0;
    if (ref_used > 0 && used >= ref_used) return 0;
    return -1;
}

/* The quant plot's point and the table's row for one point's layers. */
static void quality_row(report *r, const char *host, const cJSON *sum, const char *cur,
                        const char *dtype, const char *mode, double ref_used, double err, double kl,
                        double top1, int layers)
{
    const cJSON *pt = kvb_json_find(kvb_json_at(sum, KVB_KEY_POINTS), KVB_KEY_LABEL, cur);
    double used = kvb_json_num_at(pt, KVB_PATH_USED);
    double lpos = kvb_json_num_at(pt, KVB_KEY_LAST_POSITION);
    double bpt = used / (lpos + 1);
    long window = -1, nq = quantized_tokens(pt, mode, ref_used, &window);
    char name[200], c1[CELL], c2[CELL], c3[CELL], c4[CELL], shortname[160];
    const char *on = r->multi ? " on " : "", *hn = r->multi ? host : "";
    plot *q = &r->p[P_QUANT];
    if (nq == 0) {
        /* its figures are the f32 cache's: say so wherever they appear */
        static const char none[] = "(none quantized: every token in the f32 window)";
        snprintf(name, sizeof name, "%s%s%s %s", cur, on, hn, none);
        snprintf(shortname, sizeof shortname, "%s%s%s %s", dtype, on, hn, none);
        char w[48] = "its";
        if (window > 0) snprintf(w, sizeof w, "the %ld-token", window);
        kvb_rp_appendf(
            r, &q->extra_note, &q->note_len, &q->note_cap,
            "%s%s%s quantized no token: all %.0f tokens it held stayed in %s f32 window, so "
            "its error and bytes per token are the f32 cache's, not %s's. Run more tokens "
            "than the window to measure %s.\n",
            cur, on, hn, lpos + 1, w, dtype, dtype);
    } else {
        snprintf(name, sizeof name, "%s%s%s", cur, on, hn);
        snprintf(shortname, sizeof shortname, "%s%s%s%s", dtype,
                 strstr(cur, "kchannel") ? " (channel keys)" : "", on, hn);
    }
    if (!q->blocks) kvb_rp_block(r, P_QUANT, "full model (teacher-forced)");
    fprintf(kvb_rp_dat(r, P_QUANT), "%.6g %.6g %.6g \"%s\" %d\n", bpt, err / layers, kl, shortname,
            nq == 0);
    kvb_rp_fmt(c1, sizeof c1, "%.0f", bpt);
    kvb_rp_fmt(c2, sizeof c2, "%.2e", err / layers);
    kvb_rp_fmt(c3, sizeof c3, "%.2e", kl);
    kvb_rp_fmt(c4, sizeof c4, "%.1f%%", top1 * 100);
    kvb_rp_row(r, q, 5, name, c1, c2, c3, c4);
}

static void read_quality(report *r, const char *dir, const char *host)
{
    char path[2400], msg[600];
    cJSON *sum;
    kvb_csv c;
    snprintf(path, sizeof path, "%s/quality.csv", dir);
    if (kvb_csv_open(&c, path, msg, sizeof msg)) return;
    if (load_summary(dir, &sum) || kvb_csv_next(&c) <= 0 || kvb_csv_header(&c)) {
        kvb_csv_close(&c);
        cJSON_Delete(sum);
        return;
    }
    /* columns by name, never by count: quality.csv's per-context columns
     * (attn_rel_l2_ctx<N>, older files) may be there or not */
    int c_kl = kvb_csv_column(&c, KVB_COL_KL_MEAN), c_t1 = kvb_csv_column(&c, KVB_COL_TOP1);
    int c_e = kvb_csv_column(&c, KVB_COL_ATTN_REL_L2), c_dt = kvb_csv_column(&c, KVB_COL_DTYPE);
    int c_pt = kvb_csv_column(&c, KVB_COL_POINT), c_md = kvb_csv_column(&c, KVB_COL_MODE);
    if (c_pt < 0) c_pt = 0;
    int need = c_kl > c_e ? c_kl : c_e;
    if (c_pt > need) need = c_pt;
    /* the f32 cache's bytes in the same run: a point holding as many quantized nothing */
    double ref_used = NAN;
    const cJSON *p;
    cJSON_ArrayForEach(p, kvb_json_at(sum, KVB_KEY_POINTS))
    {
        const char *dt = kvb_json_str_at(p, KVB_KEY_DTYPE);
        if (dt && strcmp(dt, "f32") == 0 && isnan(ref_used))
            ref_used = kvb_json_num_at(p, KVB_PATH_USED);
    }
    char cur[128] = "", dtype[16] = "", mode[64] = "";
    double err = 0, kl = NAN, top1 = NAN;
    int layers = 0;
    for (int more = 1; more && c_kl >= 0 && c_e >= 0;) {
        more = kvb_csv_next(&c) > 0;
        if (more && (c.n <= need || c.n < c.n_head)) continue;
        if (!more || strcmp(c.field[c_pt], cur) != 0) {
            if (cur[0] && layers)
                quality_row(r, host, sum, cur, dtype, mode, ref_used, err, kl, top1, layers);
            if (!more) break;
            snprintf(cur, sizeof cur, "%s", c.field[c_pt]);
            snprintf(dtype, sizeof dtype, "%s", c_dt >= 0 ? c.field[c_dt] : "");
            snprintf(mode, sizeof mode, "%s", c_md >= 0 ? c.field[c_md] : cur);
            err = 0;
            layers = 0;
        }
        kl = atof(c.field[c_kl]);
        top1 = c_t1 >= 0 ? atof(c.field[c_t1]) : NAN;
        err += atof(c.field[c_e]);
        layers++;
    }
    kvb_csv_close(&c);
    cJSON_Delete(sum);
}

static void read_serve(report *r, const char *path, const char *host)
{
    kvb_csv c;
    char msg[600];
    if (kvb_csv_open(&c, path, msg, sizeof msg)) return;
    if (kvb_csv_next(&c) > 0) kvb_csv_header(&c);
    int c_c = kvb_csv_column(&c, KVB_COL_CACHE), c_l = kvb_csv_column(&c, KVB_COL_LENGTHS);
    int c_u = kvb_csv_column(&c, KVB_COL_UTILIZATION),
        c_m = kvb_csv_column(&c, KVB_COL_MEAN_RUNNING);
    if (c_c < 0 || c_l < 0 || c_u < 0 || c_m < 0) {
        kvb_csv_close(&c);
        return;
    }
    plot *p = &r->p[P_PAGED];
    const char *on = r->multi ? " on " : "", *hn = r->multi ? host : "";
    while (kvb_csv_next(&c) > 0) {
        if (c.n < c.n_head) continue;
        char **fl = c.field;
        double util = atof(fl[c_u]), run = atof(fl[c_m]);
        char cb[CELL], cv[CELL], name[160];
        snprintf(name, sizeof name, "%s %s%s%s", fl[c_c], fl[c_l], on, hn);
        const char *bs = strstr(fl[c_c], "/bs");
        if (bs) { /* paged: a point per block size, a block per lengths */
            char series[160];
            snprintf(series, sizeof series, "paged %s%s%s", fl[c_l], on, hn);
            if (!r->serve) {
                char sp[2400];
                snprintf(sp, sizeof sp, "%s/serve%s.dat", r->plots_dir, r->tag);
                r->serve = kvb_rp_create(r, &r->serve_file, sp);
            }
            if (strcmp(series, r->last_serve)) {
                if (r->n_serve) fprintf(r->serve, "\n\n");
                fprintf(r->serve, "# %s\n", series);
                snprintf(r->last_serve, sizeof r->last_serve, "%s", series);
                EXTRA(r, P_PAGED, "serve_label[%d] = \"%s\"\n", ++r->n_serve, series);
            }
            fprintf(r->serve, "%d %.6g %.6g\n", atoi(bs + 3), 1 - util, run);
            snprintf(cb, sizeof cb, "%d", atoi(bs + 3));
        } else { /* contiguous modes: reference lines */
            r->n_ref++;
            EXTRA(r, P_PAGED, "ref_label[%d] = \"%s\"; ref_waste[%d] = %.6g; ref_run[%d] = %.6g\n",
                  r->n_ref, name, r->n_ref, 1 - util, r->n_ref, run);
            snprintf(cb, sizeof cb, "-");
        }
        snprintf(cv, sizeof cv, "%.3f / %.1f", 1 - util, run);
        kvb_rp_row(r, p, 4, name, cb, cv, "waste / sequences held");
    }
    kvb_csv_close(&c);
}

/* ---- walking the directory ---------------------------------------------------- */

int kvb_rp_is_dir(const char *p)
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
    if (!kvb_rp_is_dir(mdir)) return;
    if (!r->machine[0] || !r->config[0]) { /* a single run: its meta.json says what ran, where */
        char msg[600];
        int err;
        snprintf(path, sizeof path, "%s/meta.json", mdir);
        cJSON *meta = kvb_json_load(path, &err, msg, sizeof msg);
        if (meta) {
            char cpu[256], cmd[1024], date[64], mhost[128];
            kvb_json_copy_at(meta, KVB_PATH_CPU_MODEL, cpu, sizeof cpu);
            kvb_json_copy_at(meta, KVB_KEY_COMMAND, cmd, sizeof cmd);
            kvb_json_copy_at(meta, KVB_KEY_DATE, date, sizeof date);
            kvb_json_copy_at(meta, KVB_PATH_HOST, mhost, sizeof mhost);
            if (!r->machine[0])
                snprintf(r->machine, sizeof r->machine, "host: %s\ncpu: %s\ndate: %s",
                         mhost[0] ? mhost : host, cpu, date);
            if (!r->config[0]) snprintf(r->config, sizeof r->config, "%s", cmd);
        }
        cJSON_Delete(meta);
    }
}

int kvb_rp_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A series' machine in a sweep spread over kinds of node: the kind, after the merge's host. */
static void node_label(char *out, size_t n, const char *host, const char *mach)
{
    if (strcmp(host, "this machine"))
        snprintf(out, n, "%s: %s", host, mach);
    else
        snprintf(out, n, "%s", mach);
}

static void read_sweep_or_run(report *r, const char *mdir, const char *host)
{
    char path[2400];
    read_machine(r, mdir, host);
    snprintf(path, sizeof path, "%s/points", mdir);
    DIR *d = opendir(path);
    if (!d) { /* a single kvbench run */
        read_run(r, mdir, host, 1);
        read_quality(r, mdir, host);
        kvb_rp_read_ppl(r, mdir, host);
        return;
    }
    char **names = NULL;
    int n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.' &&
            !strchr(e->d_name, '.')) { /* points, not .partial/.log/.status */
            if (kvb_rp_grow(&names, &cap, n + 1, sizeof *names)) {
                r->failed = 1;
                break;
            }
            names[n++] = strdup(e->d_name);
        }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, kvb_rp_cmp_str);
    /* every point's status, so a timed-out or failed point is listed, never silently missing;
     * and the machine each ran on, from its own record (the node's CPU and cores): a sweep whose
     * points ran on several kinds of node (Slurm nodes, issue 17) draws each kind apart */
    snprintf(path, sizeof path, "%s/sweep.csv", mdir);
    struct prow {
        char point[160], kind[16], status[16], seconds[16], host[72], mach[64];
        int job; /* described in nodes/: ran as a job on another node */
    } *rows = NULL;
    int nr = 0, cap_r = 0, kinds = 0;
    kvb_csv idx;
    char msg[600];
    if (kvb_csv_open(&idx, path, msg, sizeof msg) == 0) {
        static const char *const cols[8] = {KVB_COL_POINT,   KVB_COL_KIND, KVB_COL_STATUS,
                                            KVB_COL_SECONDS, "host",       "cpu",
                                            "cores",         "node"};
        int c[8], need = -1;
        while (kvb_csv_next(&idx) > 0) {
            if (idx.no == 1) {
                if (kvb_csv_header(&idx) == 0) need = kvb_csv_columns(&idx, cols, c, 4);
                for (int k = 4; k < 8; k++) c[k] = kvb_csv_column(&idx, cols[k]);
                continue;
            }
            if (need < 0 || idx.n <= need) continue;
            if (kvb_rp_grow(&rows, &cap_r, nr + 1, sizeof *rows) && (r->failed = 1)) break;
            struct prow *w = &rows[nr++];
            const char *f[8];
            for (int k = 0; k < 8; k++) f[k] = c[k] >= 0 && c[k] < idx.n ? idx.field[c[k]] : "";
            snprintf(w->point, sizeof w->point, "%s", f[0]);
            snprintf(w->kind, sizeof w->kind, "%s", f[1]);
            snprintf(w->status, sizeof w->status, "%s", f[2]);
            snprintf(w->seconds, sizeof w->seconds, "%s", f[3]);
            snprintf(w->host, sizeof w->host, "%s", f[4]);
            snprintf(w->mach, sizeof w->mach, atoi(f[6]) > 0 ? "%.48s, %s cores" : "%s", f[5],
                     f[6]);
            w->job = !strncmp(f[7], "nodes/", 6);
            int seen = 0;
            for (int k = 0; k < nr - 1 && !seen; k++) seen = !strcmp(rows[k].mach, w->mach);
            kinds += !seen && w->mach[0];
        }
        kvb_csv_close(&idx);
    }
    int by_node = kinds > 1; /* series and rows carry the node's kind */
    r->multi |= by_node;
    for (int i = 0; i < nr; i++) {
        char on[200] = "";
        if (r->multi) snprintf(on, sizeof on, " on %s", host);
        if (by_node) node_label(on + 4, sizeof on - 4, host, rows[i].mach);
        kvb_rp_appendf(r, &r->points, &r->points_len, &r->points_cap, "| %s%s | %s | %s | %s |\n",
                       rows[i].point, on, rows[i].kind, rows[i].status, rows[i].seconds);
        /* a node that ran points as jobs, named once in the machine section */
        int first = rows[i].job, count = 0;
        for (int k = 0; k < i && first; k++)
            first = strcmp(rows[k].host, rows[i].host) || strcmp(rows[k].mach, rows[i].mach);
        for (int k = i; k < nr && first; k++)
            count += !strcmp(rows[k].host, rows[i].host) && !strcmp(rows[k].mach, rows[i].mach);
        size_t len = strlen(r->machine);
        if (first)
            snprintf(r->machine + len, sizeof r->machine - len,
                     "%snode %s (%s) ran %d point%s; its description: nodes/%s.txt",
                     len ? "\n" : "", rows[i].host, rows[i].mach, count, count == 1 ? "" : "s",
                     rows[i].host);
    }
    for (int i = 0; i < n; i++) {
        char pd[2400], st[32] = "ok";
        snprintf(pd, sizeof pd, "%s/points/%s.status", mdir, names[i]);
        FILE *sf = fopen(pd, "r");
        if (sf) {
            if (fscanf(sf, "%31s", st) != 1) st[0] = 0;
            fclose(sf);
        }
        snprintf(pd, sizeof pd, "%s/points/%s", mdir, names[i]);
        if (strcmp(st, "failed") == 0) {
            free(names[i]);
            continue;
        } /* listed above, not drawn */
        /* the machine this point's series belong to: the sweep's, or its node's kind */
        const char *ph = host;
        char both[200];
        snprintf(both, sizeof both, "%s", host);
        for (int k = 0; by_node && k < nr; k++)
            if (!strcmp(rows[k].point, names[i])) node_label(both, sizeof both, host, rows[k].mach);
        if (by_node) ph = both;
        if (strncmp(names[i], "run-", 4) == 0)
            read_run(r, pd, ph, threads_of(names[i]));
        else if (strncmp(names[i], "quality-", 8) == 0)
            read_quality(r, pd, ph);
        else if (strncmp(names[i], "attend-", 7) == 0) {
            /* attend-<shape>-<backend>-<dtype>-t<N>; a backend name may hold '-' */
            char backend[64] = "";
            const char *b0 = strchr(names[i] + 7, '-'), *t = strrchr(names[i], '-');
            const char *dt0 = t && t > names[i] ? t - 1 : NULL;
            while (dt0 && dt0 > names[i] && *dt0 != '-') dt0--;
            if (b0 && dt0 && dt0 > b0)
                snprintf(backend, sizeof backend, "%.*s", (int)(dt0 - b0 - 1), b0 + 1);
            snprintf(path, sizeof path, "%s/attend.csv", pd);
            read_attend(r, path, ph, threads_of(names[i]), backend[0] ? backend : NULL);
        } else if (strncmp(names[i], "serve-", 6) == 0) {
            snprintf(path, sizeof path, "%s/serve.csv", pd);
            read_serve(r, path, ph);
        }
        free(names[i]);
    }
    free(names);
    free(rows);
}

/* Reads one set of machines (or the one directory) into r and writes its plot data. */
void kvb_rp_collect(report *r, const char *mpath, char **hosts, int nh)
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
            kvb_rp_block(r, P_BANDWIDTH, b->name);
            if (b->points) fputs(b->points, kvb_rp_dat(r, P_BANDWIDTH));
            n1 += !pass;
        }
    EXTRA(r, P_BANDWIDTH, "n1 = %d\n", n1);
    if (r->serve) { /* the serving data went to its own file: the paged plot reads both */
        FILE *s = r->serve;
        r->serve = NULL;
        kvb_rp_commit(r, &r->serve_file, s);
        kvb_rp_dat(r, P_PAGED);
    }
    kvb_rp_write_plot_data(r);
}
