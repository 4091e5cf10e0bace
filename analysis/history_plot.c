/* history_plot.c: show's chart (history.h: kvb_hist_plot) and the children
 * history runs, git and gnuplot (history_int.h), started as report_plot.c
 * starts gnuplot: posix_spawnp, no shell, no signal blocked. */
#define _XOPEN_SOURCE 700
#include "history_int.h"
#include "../base/afile.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ---- a child's output ------------------------------------------------------------ */

int kvb_hist_run(char *const argv[], char *out, size_t n, char *err, size_t en, int *missing)
{
    FILE *fo = tmpfile(), *fe = tmpfile();
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int rc = -1, st = 0, have_fa = 0, have_at = 0;
    *missing = 0;
    if (out && n) out[0] = 0;
    if (err && en) err[0] = 0;
    if (!fo || !fe || posix_spawn_file_actions_init(&fa) != 0) goto done;
    have_fa = 1;
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fileno(fo), 1);
    posix_spawn_file_actions_adddup2(&fa, fileno(fe), 2);
    /* no signal blocked in the child, whatever the caller blocks */
    sigset_t none;
    sigemptyset(&none);
    if ((have_at = posix_spawnattr_init(&at) == 0)) {
        posix_spawnattr_setsigmask(&at, &none);
        posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
    }
    pid_t pid;
    int e = posix_spawnp(&pid, argv[0], &fa, have_at ? &at : NULL, argv, environ);
    if (e) {
        *missing = e == ENOENT;
        goto done;
    }
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) goto done;
    *missing = WIFEXITED(st) && WEXITSTATUS(st) == 127;
    rc = WIFEXITED(st) && !*missing ? WEXITSTATUS(st) : -1;
    FILE *fs[2] = {fo, fe};
    char *buf[2] = {out, err};
    size_t cap[2] = {n, en};
    for (int i = 0; i < 2; i++)
        if (buf[i] && cap[i]) {
            rewind(fs[i]);
            buf[i][fread(buf[i], 1, cap[i] - 1, fs[i])] = 0;
        }
done:
    if (have_fa) posix_spawn_file_actions_destroy(&fa);
    if (have_at) posix_spawnattr_destroy(&at);
    if (fo) fclose(fo);
    if (fe) fclose(fe);
    return rc;
}

/* ---- the chart ------------------------------------------------------------------ */

/* gnuplot's single-quoted string: a quote inside is doubled */
static void gp_str(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) fputs(*s == '\'' ? "''" : (char[2]){*s, 0}, f);
    fputc('\'', f);
}

kvb_status kvb_hist_plot(const char *dir, const kvb_hist_commit *commits, int n_commits,
                         const char *const *cases, int n_cases, const double *med, const double *lo,
                         const double *hi, int *drawn, char *msg, size_t msg_len)
{
    char path[KVB_HIST_PATH], png[KVB_HIST_PATH];
    kvb_afile a;
    *drawn = 0;
    struct stat st;
    if (mkdir(dir, 0755) != 0 && !(errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))) {
        snprintf(msg, msg_len, "cannot create '%s': %s", dir, strerror(errno));
        return KVB_STATUS_IO;
    }
    /* the data: a block per case, a row per commit that has it */
    snprintf(path, sizeof path, "%s/history.dat", dir);
    if (kvb_afile_open(&a, path, msg, msg_len)) return KVB_STATUS_IO;
    double ymin = INFINITY, ymax = 0;
    for (int i = 0; i < n_cases; i++) {
        fprintf(a.f, "%s# %s\n# commit median low high\n", i ? "\n\n" : "", cases[i]);
        for (int j = 0; j < n_commits; j++) {
            size_t k = (size_t)i * (size_t)n_commits + (size_t)j;
            if (isnan(med[k])) continue;
            char s[16];
            kvb_hist_short(commits[j].commit, s);
            fprintf(a.f, "%d %.9g %.9g %.9g %s\n", j, med[k], lo[k], hi[k], s);
            if (lo[k] > 0 && lo[k] < ymin) ymin = lo[k];
            if (hi[k] > ymax) ymax = hi[k];
        }
    }
    if (kvb_afile_commit(&a, msg, msg_len)) return KVB_STATUS_IO;
    /* the script: standalone (gnuplot history.gp in dir), or told where by -e */
    snprintf(path, sizeof path, "%s/history.gp", dir);
    if (kvb_afile_open(&a, path, msg, msg_len)) return KVB_STATUS_IO;
    FILE *f = a.f;
    fprintf(f,
            "# kvbench history show: each case's median per commit, bars p10 to p90\n"
            "if (!exists('dat')) dat = 'history.dat'\n"
            "if (!exists('out')) out = 'history.png'\n"
            "set terminal pngcairo size 1200, %d font 'sans,10' noenhanced\n"
            "set output out\n"
            "set title 'kvbench history: median per commit, bars p10 to p90'\n"
            "set ylabel 'median (the case''s unit)'\n"
            "set grid ytics\nset key outside below\n"
            "set xrange [-0.5:%g]\n",
            500 + 16 * (n_cases < 200 ? n_cases : 200), n_commits - 0.5); /* a key line a case */
    /* figures a hundredfold apart share one chart on a log scale */
    if (ymax > 0 && isfinite(ymin) && ymax / ymin > 100) fprintf(f, "set logscale y\n");
    fprintf(f, "set xtics rotate by -45 (");
    for (int j = 0; j < n_commits; j++) {
        char s[16];
        kvb_hist_short(commits[j].commit, s);
        fprintf(f, "%s", j ? ", " : "");
        gp_str(f, s);
        fprintf(f, " %d", j);
    }
    fprintf(f, ")\nplot \\\n");
    for (int i = 0; i < n_cases; i++) {
        fprintf(f, "  dat index %d using 1:2:3:4 with yerrorlines pt 7 title ", i);
        gp_str(f, cases[i]);
        fprintf(f, "%s\n", i + 1 < n_cases ? ", \\" : "");
    }
    if (kvb_afile_commit(&a, msg, msg_len)) return KVB_STATUS_IO;
    /* gnuplot draws into a temporary file beside history.png, renamed when it is done */
    snprintf(png, sizeof png, "%s/history.png", dir);
    kvb_afile img;
    if (kvb_afile_open(&img, png, msg, msg_len)) return KVB_STATUS_IO;
    char assign[3 * KVB_HIST_PATH], dat[KVB_HIST_PATH], err[1024];
    snprintf(dat, sizeof dat, "%s/history.dat", dir);
    FILE *mem = fmemopen(assign, sizeof assign, "w");
    if (mem) {
        fprintf(mem, "dat = ");
        gp_str(mem, dat);
        fprintf(mem, "; out = ");
        gp_str(mem, img.tmp);
        fclose(mem);
    }
    char *argv[] = {"gnuplot", "-e", assign, path, NULL};
    int missing, rc = mem ? kvb_hist_run(argv, NULL, 0, err, sizeof err, &missing) : -1;
    if (rc != 0) {
        kvb_afile_abort(&img);
        if (missing) return KVB_STATUS_OK;
        err[strcspn(err, "\n")] = 0;
        snprintf(msg, msg_len, "gnuplot failed on '%s': %s", path, err[0] ? err : "no message");
        return KVB_STATUS_IO;
    }
    if (kvb_afile_commit(&img, msg, msg_len)) return KVB_STATUS_IO;
    *drawn = 1;
    return KVB_STATUS_OK;
}

kvb_status kvb_hist_report(const char *dir, const kvb_hist_commit *commits, int n_commits,
                           const char *const *cases, int n_cases, const double *med,
                           const double *lo, const double *hi, int drawn, char *msg,
                           size_t msg_len)
{
    char path[KVB_HIST_PATH];
    snprintf(path, sizeof path, "%s/history.md", dir);
    kvb_afile a;
    if (kvb_afile_open(&a, path, msg, msg_len)) return KVB_STATUS_IO;
    FILE *f = a.f;
    fprintf(f, "# kvbench history: %d commit(s), oldest first\n\n", n_commits);
    if (drawn)
        fprintf(f, "![median per commit, bars p10 to p90](history.png)\n\n");
    else
        fprintf(f, "Chart not drawn (gnuplot is not installed): `gnuplot history.gp`.\n\n");
    for (int i = 0; i < n_cases; i++) {
        fprintf(f,
                "## `%s`\n\n| commit | time | subject | median | p10 | p90 | change |\n"
                "|---|---|---|---|---|---|---|\n",
                cases[i]);
        double prev = NAN;
        for (int j = 0; j < n_commits; j++) {
            size_t k = (size_t)i * (size_t)n_commits + (size_t)j;
            if (isnan(med[k])) continue;
            char s[16], ch[16] = "", subj[200];
            kvb_hist_short(commits[j].commit, s);
            snprintf(subj, sizeof subj, "%s", commits[j].subject);
            for (char *c = subj; *c; c++)
                if (*c == '|' || *c == '\n') *c = ' '; /* one table cell */
            if (!isnan(prev) && prev != 0)
                snprintf(ch, sizeof ch, "%+.1f%%", 100 * (med[k] / prev - 1));
            fprintf(f, "| `%s` | %s | %s | %.5g | %.5g | %.5g | %s |\n", s,
                    commits[j].time[0] ? commits[j].time : "-", subj, med[k], lo[k], hi[k], ch);
            prev = med[k];
        }
        fputc('\n', f);
    }
    return kvb_afile_commit(&a, msg, msg_len) ? KVB_STATUS_IO : KVB_STATUS_OK;
}
