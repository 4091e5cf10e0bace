/* report.c: see report.h. The report's pages, report.md and report.html,
 * from what report_read.c read and report_plot.c drew (report_int.h). */
#define _XOPEN_SOURCE 700
#include "report_int.h"
#include "../base/datadir.h"
#include "../base/textio.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void html_escape(FILE *f, const char *s)
{
    for (; *s; s++)
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else if (*s == '"')
            fputs("&quot;", f);
        else
            fputc(*s, f);
}

static void report_free(report *r)
{
    for (int i = 0; i < P_COUNT; i++) {
        kvb_rp_discard(&r->p[i].out, r->p[i].dat); /* still open only on an error path */
        free(r->p[i].label);
        free(r->p[i].extra);
        free(r->p[i].extra_note);
        free(r->p[i].cell);
    }
    kvb_rp_discard(&r->serve_file, r->serve);
    free(r->rec);
    free(r->points);
    free(r->hc);
    for (int i = 0; i < r->n_bw; i++) free(r->bw[i].points);
    free(r->bw);
    free(r);
}

static void write_points(report *r, FILE *md_f, FILE *h, const char *hd)
{
    fprintf(md_f, "%s Points\n\n| point | kind | status | seconds |\n|---|---|---|---|\n%s\n", hd,
            r->points);
    fprintf(h,
            "<h%zu>Points</h%zu>\n<table>\n<tr><th>point</th><th>kind</th><th>status</"
            "th><th>seconds</th></tr>\n",
            strlen(hd), strlen(hd));
    for (const char *l = r->points; *l;) { /* the markdown rows, as HTML */
        const char *e = strchr(l, '\n');
        size_t len = e ? (size_t)(e - l) : strlen(l);
        char rowbuf[512];
        snprintf(rowbuf, sizeof rowbuf, "%.*s", (int)len, l);
        fprintf(h, "<tr>");
        for (char *save = NULL, *c = strtok_r(rowbuf, "|", &save); c;
             c = strtok_r(NULL, "|", &save)) {
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
    fprintf(md_f, "%s Machine\n\n```\n%s\n```\n\n%s Configuration\n\n```\n%s\n```\n\n", hd,
            r->machine, hd, r->config);
    fprintf(h, "<h%zu>Machine</h%zu>\n<pre>", lv, lv);
    html_escape(h, r->machine);
    fprintf(h, "</pre>\n<h%zu>Configuration</h%zu>\n<pre>", lv, lv);
    html_escape(h, r->config);
    fprintf(h, "</pre>\n");
    if (r->points) write_points(r, md_f, h, hd);
    for (int i = 0; i < P_COUNT; i++) {
        plot *p = &r->p[i];
        const char *nm = kvb_plot_info[i].name;
        fprintf(md_f, "%s %s\n\n", hd, kvb_plot_info[i].title);
        fprintf(h, "<h%zu>%s</h%zu>\n", lv, kvb_plot_info[i].title, lv);
        if (!p->drawn) {
            fprintf(md_f, "Not in this run.\n\n");
            fprintf(h, "<p>Not in this run.</p>\n");
            continue;
        }
        fprintf(md_f, "%s\n\n", kvb_plot_info[i].how);
        fprintf(h, "<p>%s</p>\n", kvb_plot_info[i].how);
        if (p->img) {
            fprintf(md_f, "![%s](plots/%s%s.png)\n\n", nm, nm, r->tag);
            fprintf(h, "<p><img src=\"plots/%s%s.svg\" alt=\"%s\"></p>\n", nm, r->tag, nm);
        } else {
            /* never a broken image link: say why there is none and where the data is */
            char why[800];
            snprintf(
                why, sizeof why,
                "Plot not drawn: %s. Its data is in plots/%s%s.dat; draw it with `kvbench report "
                "DIR` once gnuplot is installed.",
                d->why[0] ? d->why : "gnuplot failed on it", nm, r->tag);
            fprintf(md_f, "*%s*\n\n", why);
            fprintf(h, "<p class=\"note\">");
            html_escape(h, why);
            fprintf(h, "</p>\n");
        }
        fprintf(h, "<table>\n<tr>");
        fprintf(md_f, "|");
        for (int c = 0; c < kvb_plot_info[i].cols; c++) {
            fprintf(md_f, " %s |", kvb_plot_info[i].head[c]);
            fprintf(h, "<th>%s</th>", kvb_plot_info[i].head[c]);
        }
        fprintf(md_f, "\n|");
        for (int c = 0; c < kvb_plot_info[i].cols; c++) fprintf(md_f, "---|");
        fprintf(md_f, "\n");
        fprintf(h, "</tr>\n");
        for (int k = 0; k < p->rows; k++) {
            fprintf(md_f, "|");
            fprintf(h, "<tr>");
            for (int c = 0; c < kvb_plot_info[i].cols; c++) {
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
        if (!found && k + len + 3 < n)
            k += (size_t)snprintf(out + k, n - k, "%s%.*s", k ? "; " : "", (int)len, l);
    }
}

kvb_status kvb_report(const char *dir, char *msg, size_t msg_len)
{
    return kvb_report_to(dir, stderr, msg, msg_len);
}

kvb_status kvb_report_to(const char *dir, FILE *notes, char *msg, size_t msg_len)
{
    char path[2400], tmp[2500], mpath[2400], plots_dir[2400], ppl[2400];
    struct stat st;
    snprintf(path, sizeof path, "%s/summary.json", dir);
    snprintf(mpath, sizeof mpath, "%s/machines", dir);
    snprintf(tmp, sizeof tmp, "%s/sweep.csv", dir);
    snprintf(ppl, sizeof ppl, "%s/ppl.csv", dir);
    if (!kvb_rp_is_dir(dir) || (stat(path, &st) != 0 && !kvb_rp_is_dir(mpath) &&
                                stat(tmp, &st) != 0 && stat(ppl, &st) != 0)) {
        snprintf(msg, msg_len,
                 "'%s' is not a kvbench result: no summary.json, sweep.csv, ppl.csv or machines/",
                 dir);
        return KVB_STATUS_INVALID_ARG;
    }
    snprintf(plots_dir, sizeof plots_dir, "%s/plots", dir);
    /* the failing call's own errno: a read-only directory says so */
    if (mkdir(plots_dir, 0755) != 0 && errno != EEXIST) {
        snprintf(msg, msg_len, "cannot create '%s': %s", plots_dir, strerror(errno));
        return KVB_STATUS_IO;
    }
    if (!kvb_rp_is_dir(plots_dir)) {
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
            if (kvb_rp_grow(&hosts, &cap, nm + 1, sizeof *hosts) ||
                !(hosts[nm] = strdup(e->d_name))) {
                oom = 1;
                break;
            }
            nm++;
        }
        closedir(md);
        qsort(hosts, (size_t)nm, sizeof *hosts, kvb_rp_cmp_str);
        if (!oom && (!(defs = calloc((size_t)nm + 1, sizeof *defs)) ||
                     !(set = calloc((size_t)nm + 1, sizeof *set))))
            oom = 1;
        n_sets = 0;
        for (int i = 0; i < nm && !oom; i++) {
            char sub[2400];
            snprintf(sub, sizeof sub, "%s/%s", mpath, hosts[i]);
            if (!(defs[i] = definition(sub))) {
                oom = 1;
                break;
            }
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
        kvb_rp_note(&d,
                    "plot scripts not found (looked for %s; set KVBENCH_DATA to the folder holding "
                    "plots/): no images drawn",
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
        if (!r) {
            oom = 1;
            break;
        }
        r->dir = dir;
        /* one set: the plain names; several: every file carries its set */
        if (n_sets > 1) snprintf(r->tag_own, sizeof r->tag_own, "-set%d", s + 1);
        r->tag = r->tag_own;
        if (!merged)
            kvb_rp_collect(r, NULL, NULL, 0);
        else {
            char **mine = malloc(((size_t)nm + 1) * sizeof *mine);
            int k = 0;
            if (!mine) {
                oom = 1;
                break;
            }
            for (int i = 0; i < nm; i++)
                if (set[i] == s) mine[k++] = hosts[i];
            kvb_rp_collect(r, mpath, mine, k);
            r->set_hosts = k;
            free(mine);
        }
        kvb_rp_draw(r, &d);
    }

    /* report.md and report.html */
    kvb_status ret = KVB_STATUS_OK;
    kvb_afile mda, hta;
    char why_open[600] = "";
    FILE *md_f = NULL, *h = NULL;
    snprintf(path, sizeof path, "%s/report.md", dir);
    if (!oom && kvb_afile_open(&mda, path, why_open, sizeof why_open) == 0) {
        snprintf(path, sizeof path, "%s/report.html", dir);
        if (kvb_afile_open(&hta, path, why_open, sizeof why_open) == 0) {
            md_f = mda.f;
            h = hta.f;
        } else
            kvb_afile_abort(&mda);
    }
    if (oom) {
        snprintf(msg, msg_len, "out of memory");
        ret = KVB_STATUS_NO_MEMORY;
    } else if (!md_f) {
        const char *first = NULL; /* the first failure: plot data fails before the report */
        for (int s = 0; s < n_sets && !first; s++)
            if (rs[s]->err[0]) first = rs[s]->err;
        if (first)
            snprintf(msg, msg_len, "report of '%s': %s", dir, first);
        else
            snprintf(msg, msg_len, "%s", why_open);
        ret = KVB_STATUS_IO;
    } else {
        const char *base = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
        fprintf(md_f, "# kvbench report: %s\n\n", base);
        fprintf(h, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>kvbench report: ");
        html_escape(h, base);
        /* an image is shown at its own size (each plot is at most 1200 px wide),
         * shrunk only to fit a narrower window: its text stays at 14 px */
        fprintf(h,
                "</"
                "title>\n<style>body{font-family:sans-serif;font-size:16px;max-width:1200px;margin:"
                "auto;"
                "padding:0 8px}table{border-collapse:collapse}td,th{border:1px solid "
                "#bbb;padding:2px 8px;"
                "text-align:right}td:first-child{text-align:left}img{max-width:100%%;height:auto}"
                "pre{background:#f4f4f4;padding:8px;overflow-x:auto}.note{background:#fff4d6;"
                "padding:6px}"
                "</style></head><body>\n<h1>kvbench report: ");
        html_escape(h, base);
        fprintf(h, "</h1>\n");
        if (n_sets > 1) {
            char line[4096];
            snprintf(line, sizeof line,
                     "These machines ran different sweep definitions, so their figures are not "
                     "comparable: each set is reported apart, with its own plots.");
            fprintf(md_f, "**%s**\n\n", line);
            fprintf(h, "<p class=\"note\"><b>");
            html_escape(h, line);
            fprintf(h, "</b></p>\n<ul>\n");
            for (int s = 0; s < n_sets; s++) {
                int k = 0, first = -1;
                for (int i = 0; i < nm; i++)
                    if (set[i] == s) {
                        k += snprintf(line + k, sizeof line - (size_t)k, "%s%s", k ? ", " : "",
                                      hosts[i]);
                        if (first < 0) first = i;
                        if (k >= (int)sizeof line - 1) break;
                    }
                char diff[2048] = "",
                     back[2048] = ""; /* its lines set 1 lacks, and set 1's it lacks */
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
                    fprintf(md_f, "; differs from set 1 in: `%s` (set 1: `%s`)",
                            diff[0] ? diff : "-", back[0] ? back : "-");
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
        char why_md[600] = "", why_h[600] = "";
        /* both are committed (or dropped) whatever the other did */
        int bad_md = kvb_afile_commit(&mda, why_md, sizeof why_md) != 0;
        int bad = kvb_afile_commit(&hta, why_h, sizeof why_h) != 0 || bad_md;
        const char *why = why_md[0] ? why_md : why_h;
        for (int s = 0; s < n_sets && !why[0]; s++)
            if (rs[s]->failed) why = rs[s]->err[0] ? rs[s]->err : "out of memory";
        for (int s = 0; s < n_sets; s++) bad |= rs[s]->failed;
        if (bad) {
            snprintf(msg, msg_len, "report of '%s': %s", dir,
                     why[0] ? why : "a file could not be written");
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
