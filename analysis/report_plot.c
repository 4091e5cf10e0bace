/* report_plot.c: the report's plots (report.h): what each shows, its data
 * and vars files, and gnuplot drawing them as a child (posix_spawnp, no
 * shell: paths are never parsed), its output to a temporary name renamed
 * when it succeeds. */
#define _XOPEN_SOURCE 700
#include "report_int.h"
#include "../base/textio.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

const kvb_plot_desc kvb_plot_info[P_COUNT] = {
    {"latency",
     "Per-token latency against position",
     "Median step time over repetitions at each position, with the p10-p90 band; linear and "
     "log-log axes. "
     "A cache gives a flat line plus a slow rise (one linear read of the cache per step); no-cache "
     "rises "
     "with position because every step recomputes the whole sequence.",
     4,
     {"series", "first token (ms)", "last token (ms)", "last token p10-p90 (ms)"}},
    {"memory",
     "Cache memory against tokens",
     "Bytes reserved (dashed) and holding live tokens (solid) after each step, with the analytic "
     "line "
     "tokens x 2 x layers x kv_heads x head_dim x bytes per element (dotted). Used must lie on it; "
     "reserved shows the allocation policy.",
     5,
     {"series", "reserved (MB)", "used (MB)", "analytic (MB)", "waste"}},
    {"scaling",
     "Total generation time against tokens (log-log)",
     "Cumulative decode time for n tokens with each backend's fitted power law T = a n^b (exponent "
     "and "
     "its 95% interval in the legend). No-cache should sit near 2 or above, a cache near 1 until "
     "its "
     "attention term, linear in position, dominates the step. The marker shows where a cache's "
     "attention "
     "time overtakes the rest of its step.",
     5,
     {"series", "status", "b [95% interval]", "b, last quarter", "attention > rest of step from"}},
    {"bandwidth",
     "Attend bandwidth against context",
     "K/V bytes read per second by one attend call (GB = 10^9) at each context length, with the "
     "read "
     "ceiling measured in the same runs (dashed: one thread; dotted: all cores).",
     4,
     {"series", "largest context", "GB/s there", "fraction of read ceiling"}},
    {"quant",
     "Quantization: error against bytes per token",
     "Each lossy storage type at its measured bytes per token: the relative L2 error of attention "
     "against float64 and the KL divergence of the next-token distribution against the f32 cache "
     "(teacher-forced). Lower-left is better: the trade-off frontier.",
     5,
     {"point", "bytes/token", "attend rel L2", "KL mean (nats)", "top-1"}},
    {"paged",
     "Paged cache: overhead, waste and fit against block size",
     "Left: attend time of the paged cache over the contiguous one at the largest context (1 = no "
     "overhead). Middle: KV memory waste (1 - used/reserved) in the serving simulation, paged at "
     "each "
     "block size, contiguous allocation as horizontal lines. Right: sequences held at once (mean "
     "over "
     "rounds) under the same memory budget.",
     4,
     {"series", "block", "value", "what"}},
    {"ppl",
     "Perplexity increase against cache bytes per token",
     "kvbench ppl: every cache on the same text windows, each scored position attending "
     "through the cache. Perplexity over the f32 cache's, minus 1 (left), and the KL of the "
     "next-token distribution against the f32 cache (right), at each cache's measured bytes per "
     "token. Lower-left is better. On random weights only the differences mean something.",
     6,
     {"cache", "bytes/token", "perplexity", "increase", "KL mean (nats)", "top-1"}},
};

/* Grows *buf (elements of size el) to hold at least need; 0 or -1. */
int kvb_rp_grow(void *buf, int *cap, int need, size_t el)
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

void kvb_rp_appendf(report *r, char **s, size_t *len, size_t *cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        r->failed = 1;
        return;
    }
    if (*len + (size_t)n + 1 > *cap) {
        size_t c = *cap ? *cap : 1024;
        while (c < *len + (size_t)n + 1) c *= 2;
        char *b = realloc(*s, c);
        if (!b) {
            r->failed = 1;
            return;
        }
        *s = b;
        *cap = c;
    }
    va_start(ap, fmt);
    vsnprintf(*s + *len, *cap - *len, fmt, ap);
    va_end(ap);
    *len += (size_t)n;
}

/* Records the first failure's cause (the caller formats errno's text in). */
void kvb_rp_fail(report *r, const char *fmt, ...)
{
    r->failed = 1;
    if (r->err[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof r->err, fmt, ap);
    va_end(ap);
}

void kvb_rp_row(report *r, plot *p, int n, ...)
{
    if (kvb_rp_grow(&p->cell, &p->cap_rows, p->rows + 1, sizeof *p->cell)) {
        r->failed = 1;
        return;
    }
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < MAX_COLS; i++) p->cell[p->rows][i][0] = 0;
    for (int i = 0; i < n && i < MAX_COLS; i++)
        snprintf(p->cell[p->rows][i], CELL, "%s", va_arg(ap, const char *));
    va_end(ap);
    p->rows++;
}

FILE *kvb_rp_create(report *r, kvb_afile *a, const char *path)
{
    char msg[600];
    if (kvb_afile_open(a, path, msg, sizeof msg) == 0) return a->f;
    kvb_rp_fail(r, "%s", msg);
    return fopen("/dev/null", "w");
}

int kvb_rp_commit(report *r, kvb_afile *a, FILE *f)
{
    char msg[600];
    if (!a->f) { /* /dev/null: its failure is recorded */
        if (f) fclose(f);
        return -1;
    }
    if (kvb_afile_commit(a, msg, sizeof msg) == 0) return 0;
    kvb_rp_fail(r, "%s", msg);
    return -1;
}

void kvb_rp_discard(kvb_afile *a, FILE *f)
{
    if (a->f)
        kvb_afile_abort(a);
    else if (f)
        fclose(f);
}

FILE *kvb_rp_dat(report *r, plot_id id)
{
    plot *p = &r->p[id];
    if (p->dat) return p->dat;
    char path[2400];
    snprintf(path, sizeof path, "%s/%s%s.dat", r->plots_dir, kvb_plot_info[id].name, r->tag);
    return p->dat = kvb_rp_create(r, &p->out, path);
}

/* A new gnuplot data block (index i) named for the legend. */
void kvb_rp_block(report *r, plot_id id, const char *label)
{
    plot *p = &r->p[id];
    FILE *f = kvb_rp_dat(r, id);
    if (kvb_rp_grow(&p->label, &p->cap_label, p->n_label + 1, sizeof *p->label)) {
        r->failed = 1;
        return;
    }
    if (p->blocks++) fprintf(f, "\n\n");
    fprintf(f, "# %s\n", label);
    snprintf(p->label[p->n_label++], sizeof p->label[0], "%s", label);
}

void kvb_rp_fmt(char *b, size_t n, const char *f, double v)
{
    if (isnan(v))
        snprintf(b, n, "-");
    else
        snprintf(b, n, f, v);
}

/* The i-th series' colour (i from 0): ten well-separated ones (Tableau 10),
 * then hues a golden angle apart at alternating saturation and value, so no
 * two series of one plot share a colour however many machines a merge holds. */
static void series_colour(int i, char out[8])
{
    static const char *const tab[10] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                        "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
    if (i < 10) {
        snprintf(out, 8, "%s", tab[i]);
        return;
    }
    double hue = fmod((i - 10) * 0.6180339887498949 + 0.05, 1.0) * 6;
    double s = (i / 7) % 2 ? 0.55 : 0.9, v = (i / 3) % 2 ? 0.6 : 0.85;
    int k = (int)hue;
    double fr = hue - k, p = v * (1 - s), q = v * (1 - s * fr), t = v * (1 - s * (1 - fr)), rgb[3];
    /* each sixth of the hue circle takes its red, green and blue from v, q, p, t */
    enum { V, Q, P, T };
    static const unsigned char pick[6][3] = {{V, T, P}, {Q, V, P}, {P, V, T},
                                             {P, Q, V}, {T, P, V}, {V, P, Q}};
    const double val[4] = {v, q, p, t};
    for (int c = 0; c < 3; c++) rgb[c] = val[pick[k % 6][c]];
    snprintf(out, 8, "#%02x%02x%02x", (int)(rgb[0] * 255 + 0.5) & 255,
             (int)(rgb[1] * 255 + 0.5) & 255, (int)(rgb[2] * 255 + 0.5) & 255);
}

void kvb_rp_note(drawer *d, const char *fmt, ...)
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
    if (n < 3) {
        if (n) out[0] = 0;
        return;
    }
    out[k++] = '\'';
    for (; *s && k + 3 < n; s++) {
        if (*s == '\'') out[k++] = '\'';
        out[k++] = *s;
    }
    out[k++] = '\'';
    out[k] = 0;
}

/* Runs gnuplot on one script for one terminal; 0 drawn, 1 gnuplot missing, -1 failed (r->err says
 * why). */
static int run_gnuplot(report *r, drawer *d, plot_id id, const char *term)
{
    const char *name = kvb_plot_info[id].name;
    char script[2600], errpath[2600], out[2600], assign[6000], qdir[5000], tag[64];
    snprintf(script, sizeof script, "%s/%s.gp", d->scripts, name);
    snprintf(errpath, sizeof errpath, "%s/%s%s.err", r->plots_dir, name, r->tag);
    snprintf(out, sizeof out, "%s/%s%s.%s", r->plots_dir, name, r->tag, term);
    gp_quote(qdir, sizeof qdir, d->dir);
    gp_quote(tag, sizeof tag, r->tag);
    /* gnuplot writes the image into a temporary file made for it beside its name */
    kvb_afile img;
    char why[600];
    if (kvb_afile_open(&img, out, why, sizeof why)) {
        kvb_rp_fail(r, "%s", why);
        return -1;
    }
    snprintf(assign, sizeof assign, "dir=%s; term='%s'; tag=%s; out_suffix='%s'", qdir, term, tag,
             img.tmp + strlen(out));
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0) {
        kvb_rp_fail(r, "cannot start gnuplot: out of memory");
        kvb_afile_abort(&img);
        return -1;
    }
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
    if (e == ENOENT) {
        remove(errpath);
        kvb_afile_abort(&img);
        return 1;
    }
    if (e != 0) {
        kvb_rp_fail(r, "cannot run gnuplot on '%s': %s", script, strerror(e));
        remove(errpath);
        kvb_afile_abort(&img);
        return -1;
    }
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) {
            kvb_rp_fail(r, "waiting for gnuplot: %s", strerror(errno));
            kvb_afile_abort(&img);
            return -1;
        }
    char *msg = kvb_slurp(errpath);
    remove(errpath);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127 && (!msg || !msg[0])) {
        free(msg);
        kvb_afile_abort(&img);
        return 1;
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        size_t l = msg ? strlen(msg) : 0;
        while (l && (msg[l - 1] == '\n' || msg[l - 1] == ' ')) msg[--l] = 0;
        kvb_rp_fail(r, "gnuplot failed on '%s' (%s): %s", script, term, l ? msg : "no message");
        free(msg);
        kvb_afile_abort(&img);
        return -1;
    }
    if (msg && msg[0]) kvb_rp_note(d, "gnuplot warned on %s (%s): %s", script, term, msg);
    free(msg);
    /* gnuplot wrote through its own descriptor: nothing of ours is buffered */
    if (kvb_afile_commit(&img, why, sizeof why)) {
        kvb_rp_fail(r, "%s", why);
        return -1;
    }
    return 0;
}

/* An image this report did not draw is removed: one left from an earlier
 * report would show other data under this report's name. */
static void drop_images(report *r, plot_id id)
{
    char path[2600];
    snprintf(path, sizeof path, "%s/%s%s.png", r->plots_dir, kvb_plot_info[id].name, r->tag);
    remove(path);
    snprintf(path, sizeof path, "%s/%s%s.svg", r->plots_dir, kvb_plot_info[id].name, r->tag);
    remove(path);
}

void kvb_rp_draw(report *r, drawer *d)
{
    for (int i = 0; i < P_COUNT; i++) {
        plot *p = &r->p[i];
        if (!p->drawn || d->no_gnuplot || d->no_scripts) {
            drop_images(r, (plot_id)i);
            continue;
        }
        int ok = 1;
        for (int t = 0; t < 2 && ok; t++) {
            int rc = run_gnuplot(r, d, (plot_id)i, t ? "svg" : "png");
            if (rc == 1) {
                d->no_gnuplot = 1;
                snprintf(d->why, sizeof d->why, "gnuplot is not installed (not found on PATH)");
                kvb_rp_note(d,
                            "gnuplot not found on PATH: no plot images drawn, the report says so; "
                            "install it "
                            "(apt-get install gnuplot-nox) and run kvbench report %s again",
                            d->dir);
            }
            ok = rc == 0;
        }
        p->img = ok;
        if (!ok) drop_images(r, (plot_id)i);
    }
}

/* plots/<name><tag>.dat and .vars for every plot with data; 0 or -1 */
int kvb_rp_write_plot_data(report *r)
{
    char path[2600];
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
        status |= kvb_rp_commit(r, &p->out, p->dat);
        p->dat = NULL;
        p->drawn = 1;
        snprintf(path, sizeof path, "%s/%s%s.vars", r->plots_dir, kvb_plot_info[i].name, r->tag);
        kvb_afile vars;
        FILE *v = kvb_rp_create(r, &vars, path);
        fprintf(v, "# written by kvbench report: what %s.gp draws\n", kvb_plot_info[i].name);
        fprintf(v, "machine = \"%s%s%s\"\n", r->multi ? "several machines" : cpu,
                date[0] && !r->multi ? ", " : "", r->multi ? "" : date);
        fprintf(v, "n = %d\narray labels[%d]\n", p->n_label, p->n_label > 0 ? p->n_label : 1);
        for (int k = 0; k < p->n_label; k++)
            fprintf(v, "labels[%d] = \"%s\"\n", k + 1, p->label[k]);
        /* a colour for every series a panel can hold: no two alike */
        int nc = p->n_label;
        if (i == P_PAGED && r->n_serve + r->n_ref > nc) nc = r->n_serve + r->n_ref;
        if (i == P_BANDWIDTH)
            nc += r->n_hc; /* several machines' ceilings: a colour each, after the series */
        if (nc < 2) nc = 2;
        fprintf(v, "array colour[%d]\n", nc);
        for (int k = 0; k < nc; k++) {
            char c[8];
            series_colour(k, c);
            fprintf(v, "colour[%d] = \"%s\"\n", k + 1, c);
        }
        if (i == P_SCALING)
            fprintf(v, "array over[%d]\ndo for [k = 1:%d] { over[k] = -1 }\n",
                    p->n_label > 0 ? p->n_label : 1, p->n_label > 0 ? p->n_label : 1);
        if (i == P_BANDWIDTH) { /* one ceiling per machine, named when there are several */
            int nh = r->n_hc > 0 ? r->n_hc : 1;
            fprintf(v,
                    "ctx_min = %d\nctx_max = %d\nn_ceil = %d\narray ceil1s[%d]\narray "
                    "ceilns[%d]\narray ceil_host[%d]\n",
                    r->ctx_min, r->ctx_max, r->n_hc, nh, nh, nh);
            if (!r->n_hc) fprintf(v, "ceil1s[1] = 0; ceilns[1] = 0; ceil_host[1] = \"\"\n");
            for (int k = 0; k < r->n_hc; k++)
                fprintf(v, "ceil1s[%d] = %.6g; ceilns[%d] = %.6g; ceil_host[%d] = \"%s%s\"\n",
                        k + 1, r->hc[k].c1, k + 1, r->hc[k].cn, k + 1, r->multi ? " of " : "",
                        r->multi ? r->hc[k].host : "");
        }
        if (i == P_PAGED) {
            int nr = r->n_ref ? r->n_ref : 1, ns = r->n_serve ? r->n_serve : 1;
            fprintf(v, "n_ref = %d\narray ref_label[%d]\narray ref_waste[%d]\narray ref_run[%d]\n",
                    r->n_ref, nr, nr, nr);
            fprintf(v, "n_serve = %d\narray serve_label[%d]\n", r->n_serve, ns);
        }
        if (p->extra) fputs(p->extra, v);
        status |= kvb_rp_commit(r, &vars, v);
    }
    return status;
}
