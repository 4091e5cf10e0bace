/* report_read.c: the result files read into a report (report.h):
 * positions.csv and summary.json of decode runs, attend.csv, quality.csv,
 * serve.csv, a sweep's sweep.csv and a run's meta.json. CSV columns are
 * found by name in the header, never by position or count. */
#define _XOPEN_SOURCE 700
#include "report_int.h"
#include "../base/textio.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
                kvb_rp_fmt(c1, sizeof c1, "%.2f", first);
                kvb_rp_fmt(c2, sizeof c2, "%.2f", last);
                snprintf(c3, sizeof c3, "%.2f-%.2f", lp10, lp90);
                kvb_rp_row(r, &r->p[P_LATENCY], 4, name, c1, c2, c3);
                kvb_rp_fmt(c1, sizeof c1, "%.2f", reserved / 1e6);
                kvb_rp_fmt(c2, sizeof c2, "%.2f", used / 1e6);
                kvb_rp_fmt(c3, sizeof c3, "%.2f", analytic / 1e6);
                kvb_rp_fmt(c4, sizeof c4, "%.3f", reserved > 0 ? 1 - used / reserved : NAN);
                kvb_rp_row(r, &r->p[P_MEMORY], 5, name, c1, c2, c3, c4);
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
                kvb_rp_fmt(c4, sizeof c4, "%.3f", tt ? kvb_json_num(tt, seg_end, "b") : NAN);
                if (nocache) snprintf(c5, sizeof c5, "(no cache)");
                else if (over >= 0) snprintf(c5, sizeof c5, "position %d", over);
                else snprintf(c5, sizeof c5, "not by position %d", last_pos);
                kvb_rp_row(r, &r->p[P_SCALING], 5, name, st[0] ? st : "ok", ci, c4, c5);
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
            kvb_rp_block(r, P_LATENCY, name);
            kvb_rp_block(r, P_MEMORY, name);
            kvb_rp_block(r, P_SCALING, name);
        }
        int pos = atoi(fl[1]);
        double med = atof(fl[3]), p10 = atof(fl[4]), p90 = atof(fl[5]), attn = atof(fl[6]);
        reserved = atof(fl[7]);
        used = atof(fl[8]);
        analytic = isnan(bpt) ? NAN : (pos + 1) * bpt;
        if (isnan(first)) { first = med / 1e6; first_pos = pos; }
        last = med / 1e6; lp10 = p10 / 1e6; lp90 = p90 / 1e6; last_pos = pos;
        fprintf(kvb_rp_dat(r, P_LATENCY), "%d %.6g %.6g %.6g\n", pos, med / 1e6, p10 / 1e6, p90 / 1e6);
        fprintf(kvb_rp_dat(r, P_MEMORY), "%d %.6g %.6g %.6g\n", pos + 1, reserved / 1e6, used / 1e6,
                isnan(analytic) ? 0.0 : analytic / 1e6);
        cum += med;
        n++;
        fprintf(kvb_rp_dat(r, P_SCALING), "%d %.6g %.6g\n", n, cum / 1e9, isnan(a) ? NAN : a * pow(n, b) / 1e9);
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
        if (kvb_rp_grow(&rows, &cap, n + 1, sizeof *rows)) { r->failed = 1; break; }
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
                if (kvb_rp_grow(&r->hc, &r->cap_hc, k + 1, sizeof *r->hc)) { r->failed = 1; break; }
                memset(&r->hc[k], 0, sizeof r->hc[k]);
                snprintf(r->hc[k].host, sizeof r->hc[k].host, "%s", host);
                r->n_hc++;
            }
            double *c = threads > 1 ? &r->hc[k].cn : &r->hc[k].c1;
            if (ceil > *c) *c = ceil;
        }
        if (kvb_rp_grow(&r->rec, &r->cap_rec, r->n_rec + 1, sizeof *r->rec) == 0) {
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
        if (kvb_rp_grow(&r->bw, &r->cap_bw, r->n_bw + 1, sizeof *r->bw)) { r->failed = 1; break; }
        struct bw_series *b = &r->bw[r->n_bw++];
        memset(b, 0, sizeof *b);
        snprintf(b->name, sizeof b->name, "%s", rows[i].name);
        b->threads = threads;
        const char *bs = strstr(rows[i].name, "/bs");
        b->block = bs ? atoi(bs + 3) : 0;
        int last = i;
        for (int j = i; j < n; j++)
            if (strcmp(rows[j].name, rows[i].name) == 0) {
                kvb_rp_appendf(r, &b->points, &b->len, &b->cap, "%d %.6g\n", rows[j].ctx, rows[j].gbs);
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
        snprintf(series, sizeof series, "%s/%s x%d %s ctx %d%s%s", p->backend, p->dtype, p->threads, p->shape, p->ctx,
                 r->multi ? " on " : "", r->multi ? p->host : "");
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
                    kvb_rp_appendf(r, &r->p[P_QUANT].extra_note, &r->p[P_QUANT].note_len, &r->p[P_QUANT].note_cap,
                            "%s%s%s quantized no token: all %.0f tokens it held stayed in %s f32 window, so its "
                            "error and bytes per token are the f32 cache's, not %s's. Run more tokens than the window "
                            "to measure %s.\n",
                            cur, on, hn, lpos + 1, w, dtype, dtype);
                } else {
                    snprintf(name, sizeof name, "%s%s%s", cur, on, hn);
                    snprintf(shortname, sizeof shortname, "%s%s%s%s", dtype, strstr(cur, "kchannel") ? " (channel keys)" : "",
                             on, hn);
                }
                if (!r->p[P_QUANT].blocks) kvb_rp_block(r, P_QUANT, "full model (teacher-forced)");
                fprintf(kvb_rp_dat(r, P_QUANT), "%.6g %.6g %.6g \"%s\" %d\n", bpt, err / layers, kl, shortname, nq == 0);
                kvb_rp_fmt(c1, sizeof c1, "%.0f", bpt);
                kvb_rp_fmt(c2, sizeof c2, "%.2e", err / layers);
                kvb_rp_fmt(c3, sizeof c3, "%.2e", kl);
                kvb_rp_fmt(c4, sizeof c4, "%.1f%%", top1 * 100);
                kvb_rp_row(r, &r->p[P_QUANT], 5, name, c1, c2, c3, c4);
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
        kvb_rp_row(r, p, 4, name, cb, cv, "waste / sequences held");
    }
    fclose(f);
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
    snprintf(path, sizeof path, "%s/summary.json", mdir);
    if (!kvb_rp_is_dir(mdir)) return;
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

int kvb_rp_cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

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
            if (kvb_rp_grow(&names, &cap, n + 1, sizeof *names)) { r->failed = 1; break; }
            names[n++] = strdup(e->d_name);
        }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, kvb_rp_cmp_str);
    /* every point's status, so a timed-out or failed point is listed, never silently missing */
    snprintf(path, sizeof path, "%s/sweep.csv", mdir);
    FILE *idx = fopen(path, "r");
    char line[4096], *f[8];
    while (idx && fgets(line, sizeof line, idx)) {
        if (strncmp(line, "point,", 6) == 0 || kvb_csv_fields(line, f, 8) < 4) continue;
        kvb_rp_appendf(r, &r->points, &r->points_len, &r->points_cap, "| %s%s%s | %s | %s | %s |\n", f[0],
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
    if (r->serve) {     /* the serving data went to its own file: the paged plot reads both */
        char tmp[2600];
        snprintf(tmp, sizeof tmp, "%s/serve%s.dat.tmp", r->plots_dir, r->tag);
        FILE *s = r->serve;
        r->serve = NULL;
        kvb_rp_finish_file(r, tmp, s);
        kvb_rp_dat(r, P_PAGED);
    }
    kvb_rp_write_plot_data(r);
}

