/* compare.c: see compare.h. Cases are read from what kvbench wrote: tokens.csv
 * and summary.json of decode runs, attend.csv of attend points (each round's
 * time), quality.csv, and Google Benchmark's JSON. */
#define _XOPEN_SOURCE 700
#include "compare.h"
#include "stats.h"
#include "textio.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const verdict_names[KVB_VERDICT_COUNT] = {
    [KVB_VERDICT_SAME] = "same", [KVB_VERDICT_REGRESSED] = "REGRESSED", [KVB_VERDICT_IMPROVED] = "improved",
    [KVB_VERDICT_TOO_FEW] = "too few samples", [KVB_VERDICT_INFO] = "changed (not gated)",
};

const char *kvb_verdict_name(kvb_verdict v) { return v < KVB_VERDICT_COUNT ? verdict_names[v] : "?"; }

/* The case of that name and kind, made on first use: a side of several runs
 * (a baseline's runs/) pools each case's samples across them. */
static kvb_cmp_case *add_case(kvb_cmp_set *s, kvb_cmp_kind kind, const char *fmt, ...)
{
    char name[sizeof s->c[0].name];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    for (int i = 0; i < s->n; i++)
        if (s->c[i].kind == kind && strcmp(s->c[i].name, name) == 0) return &s->c[i];
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        kvb_cmp_case *c = realloc(s->c, (size_t)cap * sizeof *c);
        if (!c) return NULL;
        s->c = c;
        s->cap = cap;
    }
    kvb_cmp_case *c = &s->c[s->n++];
    memset(c, 0, sizeof *c);
    c->kind = kind;
    snprintf(c->name, sizeof c->name, "%s", name);
    return c;
}

static void push(kvb_cmp_case *c, double v)
{
    if (c && c->n < KVB_CMP_MAX_SAMPLES && isfinite(v)) c->v[c->n++] = v;
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- decode runs: per-repetition totals, and the cache's final bytes ------- */

static void load_run(kvb_cmp_set *s, const char *dir, const char *prefix)
{
    char path[2400], line[1024], *f[16];
    snprintf(path, sizeof path, "%s/tokens.csv", dir);
    FILE *fp = fopen(path, "r");
    if (!fp) return;
    /* backend,dtype,mode,rep,step,position,token,step_ns,... */
    enum { MAXL = 32, MAXR = KVB_CMP_MAX_SAMPLES };
    char label[MAXL][96];
    double total[MAXL][MAXR];
    int steps[MAXL][MAXR], nl = 0;
    memset(steps, 0, sizeof steps);
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, "backend,", 8) == 0 || kvb_csv_fields(line, f, 16) < 8) continue;
        char lb[96];
        snprintf(lb, sizeof lb, "%s/%s/%s", f[0], f[1], f[2]);
        int i = 0;
        while (i < nl && strcmp(label[i], lb)) i++;
        if (i == nl) {
            if (nl == MAXL) continue;
            snprintf(label[nl], sizeof label[nl], "%s", lb);
            for (int r = 0; r < MAXR; r++) total[nl][r] = 0;
            nl++;
        }
        int rep = atoi(f[3]);
        if (rep < 0 || rep >= MAXR) continue;
        total[i][rep] += atof(f[7]);
        steps[i][rep]++;
    }
    fclose(fp);
    for (int i = 0; i < nl; i++) {
        int full = 0;                            /* repetitions that decoded every step */
        for (int r = 0; r < MAXR; r++) full = steps[i][r] > full ? steps[i][r] : full;
        kvb_cmp_case *c = add_case(s, KVB_CMP_TIME, "%sdecode(%s)/total_ns", prefix, label[i]);
        for (int r = 0; r < MAXR; r++)
            if (full && steps[i][r] == full) push(c, total[i][r]);
    }
    snprintf(path, sizeof path, "%s/summary.json", dir);
    char *sum = kvb_slurp(path);
    for (const char *p = sum; p && (p = strstr(p, "{\"label\": \"")) != NULL; p++) {
        char lb[96];
        kvb_json_str(p, NULL, "label", lb, sizeof lb);
        const char *end = strstr(p + 1, "{\"label\": \""), *cb = strstr(p, "\"cache_bytes\"");
        if (!cb || (end && cb > end)) continue;
        double used = kvb_json_num(cb, end, "used"), reserved = kvb_json_num(cb, end, "reserved");
        if (isfinite(used)) push(add_case(s, KVB_CMP_EXACT, "%sdecode(%s)/used_bytes", prefix, lb), used);
        if (isfinite(reserved)) push(add_case(s, KVB_CMP_EXACT, "%sdecode(%s)/reserved_bytes", prefix, lb), reserved);
    }
    free(sum);
}

/* ---- attend tables: each round's time, ratios within the run, ceilings ----- */

typedef struct att_row {
    char   name[200], backend[32], dtype[16];
    int    ctx, threads, n;
    double kv_bytes, ceil, bpt, err;
    double t[KVB_CMP_MAX_SAMPLES];
} att_row;

static void load_attend(kvb_cmp_set *s, const char *path, const char *prefix)
{
    FILE *fp = fopen(path, "r");
    if (!fp) return;
    char head_line[2048], line[8192], *h[40], *f[40];
    if (!fgets(head_line, sizeof head_line, fp)) { fclose(fp); return; }
    int nh = kvb_csv_fields(head_line, h, 40);
    int c_case = kvb_csv_col(h, nh, "case"), c_b = kvb_csv_col(h, nh, "backend"), c_d = kvb_csv_col(h, nh, "dtype");
    int c_ctx = kvb_csv_col(h, nh, "ctx"), c_kv = kvb_csv_col(h, nh, "kv_bytes"), c_e = kvb_csv_col(h, nh, "rel_err");
    int c_bpt = kvb_csv_col(h, nh, "bytes_per_token"), c_ceil = kvb_csv_col(h, nh, "read_ceiling_gbs");
    int c_th = kvb_csv_col(h, nh, "threads"), c_s = kvb_csv_col(h, nh, "samples_ns");
    if (c_case < 0 || c_b < 0 || c_d < 0 || c_ctx < 0 || c_s < 0) { fclose(fp); return; }
    att_row *rows = calloc(256, sizeof *rows);
    int n = 0;
    while (rows && n < 256 && fgets(line, sizeof line, fp)) {
        if (kvb_csv_fields(line, f, 40) < nh) continue;
        att_row *r = &rows[n++];
        snprintf(r->name, sizeof r->name, "%s", f[c_case]);
        snprintf(r->backend, sizeof r->backend, "%s", f[c_b]);
        snprintf(r->dtype, sizeof r->dtype, "%s", f[c_d]);
        r->ctx = atoi(f[c_ctx]);
        r->threads = c_th >= 0 ? atoi(f[c_th]) : 1;
        r->kv_bytes = c_kv >= 0 ? atof(f[c_kv]) : NAN;
        r->ceil = c_ceil >= 0 ? atof(f[c_ceil]) : NAN;
        r->bpt = c_bpt >= 0 ? atof(f[c_bpt]) : NAN;
        r->err = c_e >= 0 ? atof(f[c_e]) : NAN;
        for (char *save = NULL, *t = strtok_r(f[c_s], ";", &save); t && r->n < KVB_CMP_MAX_SAMPLES;
             t = strtok_r(NULL, ";", &save))
            r->t[r->n++] = atof(t);
    }
    fclose(fp);
    for (int i = 0; i < n; i++) {
        att_row *r = &rows[i];
        kvb_cmp_case *c = add_case(s, KVB_CMP_TIME, "%s%s/time_ns", prefix, r->name);
        for (int k = 0; k < r->n; k++) push(c, r->t[k]);
        if (r->ceil > 0 && r->kv_bytes > 0) {
            c = add_case(s, KVB_CMP_CEILING, "%s%s/of_read_ceiling", prefix, r->name);
            for (int k = 0; k < r->n; k++) push(c, r->kv_bytes / r->t[k] / r->ceil);
        }
        if (isfinite(r->bpt)) push(add_case(s, KVB_CMP_EXACT, "%s%s/bytes_per_token", prefix, r->name), r->bpt);
        if (isfinite(r->err)) push(add_case(s, KVB_CMP_TOL, "%s%s/rel_err", prefix, r->name), r->err);
        /* against the contiguous cache timed beside it, round by round (f32 for quantized types) */
        if (strcmp(r->backend, "contiguous") == 0) continue;
        const char *base_dt = r->dtype[0] == 'q' ? "f32" : r->dtype;
        for (int j = 0; j < n; j++) {
            att_row *b = &rows[j];
            if (strcmp(b->backend, "contiguous") || strcmp(b->dtype, base_dt) || b->ctx != r->ctx ||
                b->threads != r->threads || b->n != r->n)
                continue;
            c = add_case(s, KVB_CMP_RATIO, "%s%s/vs_contiguous", prefix, r->name);
            for (int k = 0; k < r->n; k++) push(c, r->t[k] / b->t[k]);
            break;
        }
    }
    free(rows);
}

static void load_quality(kvb_cmp_set *s, const char *dir, const char *prefix)
{
    char path[2400], line[2048], head_line[2048], *h[32], *f[32];
    snprintf(path, sizeof path, "%s/quality.csv", dir);
    FILE *fp = fopen(path, "r");
    if (!fp) return;
    int nh = fgets(head_line, sizeof head_line, fp) ? kvb_csv_fields(head_line, h, 32) : 0;
    int c_kl = kvb_csv_col(h, nh, "kl_mean"), c_l = kvb_csv_col(h, nh, "layer"), c_e = kvb_csv_col(h, nh, "attn_rel_l2_mean");
    while (c_kl >= 0 && c_l >= 0 && c_e >= 0 && fgets(line, sizeof line, fp)) {
        if (kvb_csv_fields(line, f, 32) < nh) continue;
        if (atoi(f[c_l]) == 0) push(add_case(s, KVB_CMP_TOL, "%squality(%s)/kl_mean", prefix, f[0]), atof(f[c_kl]));
        push(add_case(s, KVB_CMP_TOL, "%squality(%s)/layer%s_rel_l2", prefix, f[0], f[c_l]), atof(f[c_e]));
    }
    fclose(fp);
}

/* ---- Google Benchmark JSON: each repetition's time --------------------------- */

static kvb_status load_gbench(kvb_cmp_set *s, const char *path, char *msg, size_t msg_len)
{
    char *js = kvb_slurp(path);
    const char *b = js ? strstr(js, "\"benchmarks\"") : NULL;
    if (!b) {
        snprintf(msg, msg_len, "'%s': not a Google Benchmark JSON file (no \"benchmarks\")", path);
        free(js);
        return KVB_STATUS_FORMAT;
    }
    char cpu[128] = "", host[96] = "";
    kvb_json_str(js, b, "cpu_model", cpu, sizeof cpu);   /* kvbench-gbench adds it; plain gbench does not */
    if (!cpu[0])
        snprintf(cpu, sizeof cpu, "%g CPUs at %g MHz", kvb_json_num(js, b, "num_cpus"), kvb_json_num(js, b, "mhz_per_cpu"));
    kvb_json_str(js, b, "host_name", host, sizeof host);
    snprintf(s->machine, sizeof s->machine, "%s @ %s", cpu, host);
    /* one flat object per run: {"name": ..., "run_name": ..., "run_type": ..., "real_time": ...} */
    for (const char *p = strchr(b, '['); p && (p = strstr(p, "{")) != NULL;) {
        const char *end = strchr(p, '}');
        if (!end) break;
        char name[200], type[32], unit[8];
        kvb_json_str(p, end, "run_name", name, sizeof name);
        if (!name[0]) kvb_json_str(p, end, "name", name, sizeof name);
        kvb_json_str(p, end, "run_type", type, sizeof type);
        kvb_json_str(p, end, "time_unit", unit, sizeof unit);
        double t = kvb_json_num(p, end, "real_time");
        double scale = !strcmp(unit, "us") ? 1e3 : !strcmp(unit, "ms") ? 1e6 : !strcmp(unit, "s") ? 1e9 : 1;
        if (name[0] && strcmp(type, "aggregate") != 0 && isfinite(t)) {
            push(add_case(s, KVB_CMP_TIME, "%s/real_time_ns", name), t * scale);
        }
        p = end + 1;
    }
    free(js);
    return KVB_STATUS_OK;
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

static void load_dir(kvb_cmp_set *s, const char *dir, const char *prefix)
{
    char path[2400];
    machine_of(s, dir);
    snprintf(path, sizeof path, "%s/points", dir);
    DIR *d = opendir(path);
    if (!d) {                                    /* a single run */
        load_run(s, dir, prefix);
        load_quality(s, dir, prefix);
        return;
    }
    char *names[512];
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < 512;)
        if (e->d_name[0] != '.' && !strchr(e->d_name, '.')) names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_names);
    for (int i = 0; i < n; i++) {
        char pd[2400];
        snprintf(pd, sizeof pd, "%s/points/%s", dir, names[i]);
        /* the point names its cases: the same backend in another point (another preset, or a
         * contiguous row timed beside a paged one) is another case */
        char pp[600];
        snprintf(pp, sizeof pp, "%s%s:", prefix, names[i]);
        if (!strncmp(names[i], "run-", 4)) load_run(s, pd, pp);
        else if (!strncmp(names[i], "quality-", 8)) load_quality(s, pd, pp);
        else if (!strncmp(names[i], "attend-", 7)) {
            snprintf(path, sizeof path, "%s/attend.csv", pd);
            load_attend(s, path, pp);
        }
        free(names[i]);
    }
}

kvb_status kvb_cmp_load(kvb_cmp_set *s, const char *path, char *msg, size_t msg_len)
{
    memset(s, 0, sizeof *s);
    if (!is_dir(path)) {
        FILE *f = fopen(path, "r");
        if (!f) {
            snprintf(msg, msg_len, "'%s': no such result directory or Google Benchmark JSON file", path);
            return KVB_STATUS_IO;
        }
        fclose(f);
        return load_gbench(s, path, msg, msg_len);
    }
    char sub[2400];
    snprintf(sub, sizeof sub, "%s/runs", path);
    DIR *d = opendir(sub);
    if (d) {                                     /* several runs of one sweep: samples pooled */
        char *names[64];
        int n = 0;
        for (struct dirent *e; (e = readdir(d)) && n < 64;)
            if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
        closedir(d);
        qsort(names, (size_t)n, sizeof *names, cmp_names);
        for (int i = 0; i < n; i++) {
            char rd[2600];
            snprintf(rd, sizeof rd, "%s/%s", sub, names[i]);
            load_dir(s, rd, "");
            free(names[i]);
        }
        d = NULL;
    } else if (snprintf(sub, sizeof sub, "%s/machines", path) > 0 && (d = opendir(sub)) != NULL) {                                     /* a merge: each machine's cases under its host */
        for (struct dirent *e; (e = readdir(d));) {
            if (e->d_name[0] == '.') continue;
            char md[2600], prefix[300];
            snprintf(md, sizeof md, "%s/%s", sub, e->d_name);
            snprintf(prefix, sizeof prefix, "%s:", e->d_name);
            load_dir(s, md, prefix);
        }
        closedir(d);
        snprintf(s->machine, sizeof s->machine, "several machines");
    } else if (!s->n)
        load_dir(s, path, "");
    if (s->n == 0) {
        snprintf(msg, msg_len, "'%s' holds no kvbench results (tokens.csv, attend.csv, quality.csv)", path);
        return KVB_STATUS_FORMAT;
    }
    return KVB_STATUS_OK;
}

void kvb_cmp_free(kvb_cmp_set *s)
{
    free(s->c);
    memset(s, 0, sizeof *s);
}

/* ---- the verdict --------------------------------------------------------------- */

kvb_cmp_result kvb_cmp_judge(kvb_cmp_kind kind, const double *base, int nb, const double *new_, int nn,
                             const kvb_cmp_opts *o)
{
    kvb_cmp_result r = {NAN, NAN, NAN, NAN, NAN, KVB_VERDICT_SAME};
    if (nb < 1 || nn < 1) { r.verdict = KVB_VERDICT_TOO_FEW; return r; }
    r.base = kvb_median(base, (size_t)nb);
    r.new_ = kvb_median(new_, (size_t)nn);
    r.change = r.base != 0 ? r.new_ / r.base - 1 : (r.new_ == 0 ? 0 : INFINITY);
    if (kind == KVB_CMP_EXACT || kind == KVB_CMP_TOL) {
        double slack = kind == KVB_CMP_TOL ? o->tolerance * fabs(r.base) + 1e-12 : 0;
        r.verdict = r.new_ > r.base + slack ? KVB_VERDICT_REGRESSED
                    : r.new_ < r.base - slack ? KVB_VERDICT_IMPROVED : KVB_VERDICT_SAME;
        if (!(o->gate & (1u << kind)) && r.verdict != KVB_VERDICT_SAME) r.verdict = KVB_VERDICT_INFO;
        return r;
    }
    kvb_mwu m;
    if (kvb_mann_whitney(base, (size_t)nb, new_, (size_t)nn, &m) != 0) { r.verdict = KVB_VERDICT_TOO_FEW; return r; }
    r.p = m.p;
    r.p_min = m.p_min;
    if (m.p_min >= o->alpha) { r.verdict = KVB_VERDICT_TOO_FEW; return r; }   /* p < alpha unreachable */
    double worse = kind == KVB_CMP_CEILING ? -r.change : r.change;   /* > 0: the wrong way */
    if (r.p < o->alpha && worse >= o->min_change) r.verdict = KVB_VERDICT_REGRESSED;
    else if (r.p < o->alpha && -worse >= o->min_change) r.verdict = KVB_VERDICT_IMPROVED;
    if (!(o->gate & (1u << kind)) && r.verdict != KVB_VERDICT_SAME) r.verdict = KVB_VERDICT_INFO;
    return r;
}
