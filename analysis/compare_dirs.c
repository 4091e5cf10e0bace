/* compare_dirs.c: the sides compare reads (compare.h): a result directory
 * (a run, a sweep or a merge), a pool of runs (runs/<n>/, samples pooled), or
 * a Google Benchmark file; each result file goes to compare_load.c. */
#define _XOPEN_SOURCE 700
#include "compare_int.h"
#include "../base/json.h"
#include "../base/columns.h"
#include "../base/textio.h"
#include "../base/stats.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
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
        char msg[600];
        int err;
        snprintf(path, sizeof path, "%s/meta.json", dir);
        cJSON *meta = kvb_json_load(path, &err, msg, sizeof msg);
        kvb_json_copy_at(meta, KVB_PATH_CPU_MODEL, cpu, sizeof cpu);
        kvb_json_copy_at(meta, KVB_PATH_HOST, host, sizeof host);
        cJSON_Delete(meta);
    }
    if (!s->machine[0] && (cpu[0] || host[0]))
        snprintf(s->machine, sizeof s->machine, "%s @ %s", cpu, host);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

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

/* The machine a sweep point ran on, from its status file (the node's host, CPU and cores:
 * a Slurm task's node, not the host that submitted the sweep): "" where it does not say. */
typedef struct point_machine {
    char host[72], cpu[160], kind[200]; /* kind: "CPU, N cores" */
} point_machine;

static void point_machine_of(const char *dir, const char *name, point_machine *pm)
{
    char path[2400], *cpu = pm->cpu;
    int cores = 0;
    memset(pm, 0, sizeof *pm);
    snprintf(path, sizeof path, "%s/points/%s.status", dir, name);
    char *t = kvb_slurp(path);
    for (const char *l = t; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        sscanf(l, "host: %71[^\n]", pm->host);
        sscanf(l, "cpu: %159[^\n]", cpu);
        sscanf(l, "cores: %d", &cores);
    }
    free(t);
    for (char *f[] = {pm->host, cpu}, **q = f; q < f + 2; q++) /* the record's padding */
        for (size_t k = strlen(*q); k && (*q)[k - 1] == ' ';) (*q)[--k] = 0;
    if (cpu[0]) snprintf(pm->kind, sizeof pm->kind, cores > 0 ? "%s, %d cores" : "%s", cpu, cores);
}

static void load_dir(ld *L, const char *dir, const char *prefix)
{
    char path[2400];
    snprintf(path, sizeof path, "%s/points", dir);
    int n;
    char **names = list_dir(path, &n);
    /* the machine: the points' own record where they have one, else machine.txt. Points that
     * ran on several kinds of node are grouped by kind (their cases named after it), since one
     * kind's times are not another's; several hosts of one kind keep ratios comparable */
    point_machine *pm = names ? calloc((size_t)n + 1, sizeof *pm) : NULL;
    int kinds = 0, hosts = 0, first = -1;
    for (int i = 0; pm && i < n; i++) {
        if (strchr(names[i], '.')) continue;
        point_machine_of(dir, names[i], &pm[i]);
        if (!pm[i].kind[0]) continue;
        if (first < 0) first = i;
        int new_kind = 1, new_host = 1;
        for (int k = first; k < i; k++) {
            new_kind &= strcmp(pm[k].kind, pm[i].kind) != 0 || !pm[k].kind[0];
            new_host &= strcmp(pm[k].host, pm[i].host) != 0 || !pm[k].kind[0];
        }
        kinds += new_kind;
        hosts += new_host;
    }
    if (first >= 0 && !L->s->machine[0]) {
        if (kinds > 1)
            snprintf(L->s->machine, sizeof L->s->machine, "several machines");
        else if (hosts > 1)
            snprintf(L->s->machine, sizeof L->s->machine, "%s @ %d hosts", pm[first].cpu, hosts);
        else
            snprintf(L->s->machine, sizeof L->s->machine, "%s @ %s", pm[first].cpu, pm[first].host);
    }
    machine_of(L->s, dir);
    if (!names) { /* a single run */
        if (exists(dir, "tokens.csv")) kvb_cmp_load_run(L, dir, prefix);
        if (!L->bad && exists(dir, "quality.csv")) kvb_cmp_load_quality(L, dir, prefix);
        return;
    }
    for (int i = 0; i < n && !L->bad; i++) {
        if (strchr(names[i], '.')) continue; /* .status, .lock, .partial beside the points */
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
                snprintf(L->s->first_unfinished, sizeof L->s->first_unfinished, "%s (%s)", pd,
                         status);
            continue;
        }
        /* the point names its cases: the same backend in another point (another preset, or a
         * contiguous row timed beside a paged one) is another case */
        char pp[800];
        snprintf(pp, sizeof pp, "%s%s%s%s:", prefix, kinds > 1 && pm ? pm[i].kind : "",
                 kinds > 1 ? ":" : "", names[i]);
        const char *need = !strncmp(names[i], "run-", 4)       ? "tokens.csv"
                           : !strncmp(names[i], "quality-", 8) ? "quality.csv"
                           : !strncmp(names[i], "attend-", 7)  ? "attend.csv"
                                                               : NULL;
        if (!need) continue; /* serve points: nothing compare reads */
        if (!exists(pd, need)) {
            kvb_cmp_fail(L,
                         "'%s/%s' is missing, though the point is marked %s: the result is damaged",
                         pd, need, status[0] ? status : "finished");
            break;
        }
        if (need[0] == 't')
            kvb_cmp_load_run(L, pd, pp);
        else if (need[0] == 'q')
            kvb_cmp_load_quality(L, pd, pp);
        else {
            snprintf(path, sizeof path, "%s/attend.csv", pd);
            kvb_cmp_load_attend(L, path, pp);
        }
    }
    free_list(names, n);
    free(pm);
}

/* the samples run i added to each case (from *before, the counts before it: cases it
 * made start at 0) replaced by their median */
static void to_run_medians(kvb_cmp_set *s, const int *before, int n_before)
{
    for (int j = 0; j < s->n; j++) {
        kvb_cmp_case *c = &s->c[j];
        int from = j < n_before ? before[j] : 0;
        if (c->n - from > 1) {
            c->v[from] = kvb_median(c->v + from, (size_t)(c->n - from));
            c->n = from + 1;
        }
    }
}

kvb_status kvb_cmp_load(kvb_cmp_set *s, const char *path, char *msg, size_t msg_len)
{
    return kvb_cmp_load_runs(s, path, 0, msg, msg_len);
}

kvb_status kvb_cmp_load_runs(kvb_cmp_set *s, const char *path, int run_medians, char *msg,
                             size_t msg_len)
{
    memset(s, 0, sizeof *s);
    ld L = {s, msg, msg_len, 0};
    if (!is_dir(path)) {
        FILE *f = fopen(path, "r");
        if (!f) {
            snprintf(msg, msg_len, "'%s': no such result directory or Google Benchmark JSON file",
                     path);
            return KVB_STATUS_IO;
        }
        fclose(f);
        kvb_cmp_load_gbench(&L, path);
    } else {
        char sub[2400];
        int n;
        char **names;
        snprintf(sub, sizeof sub, "%s/runs", path);
        if ((names = list_dir(sub, &n)) != NULL) { /* several runs of one sweep: samples pooled */
            for (int i = 0; i < n && !L.bad; i++) {
                char rd[2600];
                snprintf(rd, sizeof rd, "%s/%s", sub, names[i]);
                int before = s->n, loads = s->load, *counts = NULL;
                if (run_medians && before) {
                    counts = malloc((size_t)before * sizeof *counts);
                    if (!counts) {
                        kvb_cmp_fail(&L, "out of memory reading '%s'", rd);
                        break;
                    }
                    for (int j = 0; j < before; j++) counts[j] = s->c[j].n;
                }
                if (!is_dir(rd))
                    kvb_cmp_fail(&L, "'%s' in a pool of runs is not a result directory", rd);
                else
                    load_dir(&L, rd, "");
                if (run_medians) to_run_medians(s, counts, counts ? before : 0);
                free(counts);
                /* every run of a pool must hold results: a dropped run narrows the baseline */
                if (!L.bad && s->load == loads && s->n == before)
                    kvb_cmp_fail(&L, "'%s' (a run of the pool '%s') holds no kvbench results", rd,
                                 sub);
            }
            if (!n) kvb_cmp_fail(&L, "'%s' holds no runs", sub);
            free_list(names, n);
        } else if (snprintf(sub, sizeof sub, "%s/machines", path) > 0 &&
                   (names = list_dir(sub, &n)) != NULL) {
            for (int i = 0; i < n && !L.bad;
                 i++) { /* a merge: each machine's cases under its host */
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
    if (is_dir(path)) { /* make baseline on another CPU model wrote it */
        char sp[2400];
        snprintf(sp, sizeof sp, "%s/STALE", path);
        FILE *f = fopen(sp, "r");
        if (f) {
            if (!fgets(s->stale, sizeof s->stale, f) || !s->stale[0])
                snprintf(s->stale, sizeof s->stale, "(no reason given)");
            s->stale[strcspn(s->stale, "\n")] = 0;
            fclose(f);
        }
    }
    if (s->n == 0 && !s->unfinished) {
        snprintf(msg, msg_len,
                 "'%s' holds no kvbench results (tokens.csv, attend.csv, quality.csv)", path);
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
