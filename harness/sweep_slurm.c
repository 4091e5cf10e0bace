/* sweep_slurm.c: a sweep's points as Slurm jobs (see sweep.h): the array job
 * script (one point per task; the node's cores to the task alone unless the
 * user's sbatch arguments say otherwise; a time limit per task from its
 * point's budget), the collection job that finishes the sweep once every task
 * ended well (afterok), and their submission with sbatch. The scripts live in
 * DIR.slurm/, beside the sweep rather than in it, so that a task that starts
 * after the sweep was collected (DIR.partial renamed DIR) still finds them
 * and its output file. */
#define _GNU_SOURCE
#include "sweep.h"
#include "sweep_int.h"
#include "../base/afile.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void kvb_sweep_shell_quote(const char *s, char *out, size_t n)
{
    size_t o = 0;
    if (n < 3) {
        if (n) out[0] = 0;
        return;
    }
    if (*s &&
        strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@%+=:,./_-") ==
            strlen(s)) {
        snprintf(out, n, "%s", s);
        return;
    }
    out[o++] = '\'';
    for (; *s && o + 6 < n; s++) {
        if (*s == '\'') {
            memcpy(out + o, "'\\''", 4);
            o += 4;
        } else
            out[o++] = *s;
    }
    out[o++] = '\'';
    out[o] = 0;
}

/* A point's Slurm time limit in whole minutes: the sweep stops a point at twice its budget
 * plus a minute; two more minutes for describing a node the first time (kvbench info) and
 * one for starting. Slurm's limit is the backstop for a node that hangs. */
static int limit_minutes(double budget_s)
{
    return (int)ceil((2 * budget_s + 60 + 120 + 60) / 60);
}

/* The user asked for sharing or for a core count: then the task is not given the node. */
static int user_sizes_task(const kvb_slurm_opts *o)
{
    static const char *const own[] = {
        "--exclusive", "--oversubscribe", "-s",       "--cpus-per-task",
        "-c",          "--mincpus",       "--ntasks", "-n"};
    for (int i = 0; i < o->n_sbatch_args; i++)
        for (size_t k = 0; k < sizeof own / sizeof own[0]; k++) {
            size_t l = strlen(own[k]);
            const char *a = o->sbatch_args[i];
            if (strncmp(a, own[k], l) == 0 &&
                (a[l] == 0 || a[l] == '=' || a[l] == ' ' || (own[k][1] != '-' && a[l] != 0)))
                return 1;
        }
    return 0;
}

/* What both scripts share in their header: the name, the partition, the user's arguments. */
static void header(FILE *f, const char *name, const char *suffix, const kvb_slurm_opts *o)
{
    fprintf(f, "#SBATCH --job-name=kvb-%s%s\n#SBATCH --nodes=1\n", name, suffix);
    if (o->partition) fprintf(f, "#SBATCH --partition=%s\n", o->partition);
    for (int i = 0; i < o->n_sbatch_args; i++) fprintf(f, "#SBATCH %s\n", o->sbatch_args[i]);
}

static void points_script(FILE *f, const char *name, const char *qexe, const char *qpart,
                          const char *qslurm, const char *slurm, const kvb_slurm_opts *o)
{
    fprintf(f,
            "#!/bin/sh\n"
            "# kvbench sweep %s: one point per array task (written by kvbench sweep --slurm).\n"
            "# Task i runs the point on line i of points.txt; its output goes to <point>.out and\n"
            "# <point>.err here. A point takes a lock and records its state, so a requeued or\n"
            "# repeated task leaves a finished or running point alone, and one that starts after\n"
            "# the sweep was collected exits 0 saying so. submit.sh has the --array and --time\n"
            "# each group of points was submitted with (a time limit per point's budget).\n",
            name);
    header(f, name, "", o);
    fprintf(f, "#SBATCH --ntasks=1\n");
    if (!user_sizes_task(o))
        fprintf(f, "# the node to this task alone: two timing points never share its cores\n"
                   "#SBATCH --exclusive\n");
    fprintf(f,
            "#SBATCH --output=%s/task-%%a.log\n"
            "S=%s\n"
            "id=$(sed -n \"${SLURM_ARRAY_TASK_ID:?not run as an array task}p\" \"$S/points.txt\")\n"
            "if [ -z \"$id\" ]; then\n"
            "  echo \"kvbench: array task $SLURM_ARRAY_TASK_ID: no such line in $S/points.txt\" "
            ">&2\n"
            "  exit 2\n"
            "fi\n"
            "exec >>\"$S/$id.out\" 2>>\"$S/$id.err\"\n"
            "echo \"kvbench: point $id, job ${SLURM_ARRAY_JOB_ID}_$SLURM_ARRAY_TASK_ID on "
            "$(hostname), $(date -u '+%%F %%T UTC')\"\n"
            "%s sweep --quiet --resume %s --only \"$id\"\n"
            "rc=$?\n"
            "# 3: the point measured nothing (skipped) or was stopped at its limit (timed_out);\n"
            "# the sweep records it and goes on: only a failure holds back the collection job\n"
            "[ $rc -eq 3 ] && rc=0\n"
            "exit $rc\n",
            slurm, qslurm, qexe, qpart);
}

static void collect_script(FILE *f, const char *name, const char *qexe, const char *qpart,
                           const char *slurm, const kvb_slurm_opts *o)
{
    fprintf(f,
            "#!/bin/sh\n"
            "# kvbench sweep %s: collects the sweep once every point's task ended well\n"
            "# (afterok): runs any point still missing, writes the report, renames DIR.partial\n"
            "# to DIR. A repeat after that exits 0 saying the sweep was collected.\n",
            name);
    header(f, name, "-collect", o);
    fprintf(f, "#SBATCH --ntasks=1\n#SBATCH --time=30\n#SBATCH --output=%s/collect.out\n", slurm);
    fprintf(f, "exec %s sweep --quiet --resume %s\n", qexe, qpart);
}

/* The array tasks (1-based lines of points.txt) of the points with this limit, "1-3,7" */
static void task_list(const int *lim, int n, int minutes, char *out, size_t len)
{
    size_t k = 0;
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        if (lim[i] != minutes) continue;
        int j = i;
        while (j + 1 < n && lim[j + 1] == minutes) j++;
        if (k < len)
            k += (size_t)(j > i ? snprintf(out + k, len - k, "%s%d-%d", k ? "," : "", i + 1, j + 1)
                                : snprintf(out + k, len - k, "%s%d", k ? "," : "", i + 1));
        i = j;
    }
}

/* sbatch's path from PATH, "" when it is not there */
static void find_sbatch(char *out, size_t n)
{
    const char *path = getenv("PATH");
    out[0] = 0;
    for (const char *p = path ? path : "/usr/bin:/bin"; p && *p && !out[0];) {
        const char *e = strchr(p, ':');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char cand[PATH_MAX];
        snprintf(cand, sizeof cand, "%.*s/sbatch", (int)len, len ? p : ".");
        if (access(cand, X_OK) == 0) snprintf(out, n, "%s", cand);
        p = e ? e + 1 : NULL;
    }
}

kvb_status kvb_sweep_slurm_check(const kvb_slurm_opts *o, char *msg, size_t msg_len)
{
    if (o->partition) {
        const char *p = o->partition;
        if (!*p ||
            strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.,-") !=
                strlen(p)) {
            snprintf(msg, msg_len,
                     "--partition '%s': expected a Slurm partition name or a comma list of them "
                     "(letters, digits, '_', '.', '-')",
                     p);
            return KVB_STATUS_INVALID_ARG;
        }
    }
    for (int i = 0; i < o->n_sbatch_args; i++) {
        const char *a = o->sbatch_args[i];
        int ctl = 0;
        for (const char *c = a; *c; c++) ctl |= (unsigned char)*c < 0x20 || *c == 0x7f;
        if (a[0] != '-' || ctl || strlen(a) > 200) {
            snprintf(msg, msg_len,
                     "--sbatch-arg '%s': expected one sbatch option such as --account=NAME or "
                     "--constraint=FEATURE (starting with '-', one line, at most 200 bytes)",
                     a);
            return KVB_STATUS_INVALID_ARG;
        }
    }
    char sb[PATH_MAX];
    find_sbatch(sb, sizeof sb);
    if (!o->dry_run && !sb[0]) {
        snprintf(msg, msg_len,
                 "--slurm: sbatch is not on PATH (it submits the jobs); run this where Slurm's "
                 "commands are, or add --dry-run to see the scripts");
        return KVB_STATUS_INVALID_ARG;
    }
    return KVB_STATUS_OK;
}

/* One sbatch --parsable: its job id in id (32 bytes), or -1 with sbatch's own words in msg. */
static int submit(const char *sbatch, char **argv, const char *what, char *id, char *msg,
                  size_t msg_len)
{
    child_run cr = {.capture = 1};
    kvb_sweep_run_child(sbatch, argv, -1, 120, &cr);
    id[0] = 0;
    if (cr.code == 0 && cr.out) sscanf(cr.out, "%31[0-9]", id);
    if (cr.code != 0 || !id[0]) {
        char why[400];
        kvb_sweep_last_line(cr.tail, why, sizeof why);
        snprintf(msg, msg_len, "sbatch of %s failed (exit %d): %s", what, cr.code,
                 why[0] ? why : "no output");
    }
    free(cr.out);
    return id[0] ? 0 : -1;
}

/* path made absolute against the working directory (jobs start elsewhere) */
static void absolute(const char *path, char *out, size_t n)
{
    char cwd[PATH_MAX];
    if (path[0] == '/' || !getcwd(cwd, sizeof cwd))
        snprintf(out, n, "%s", path);
    else
        snprintf(out, n, "%s/%s", cwd, path);
}

static int write_text(const char *path, const char *text, char *msg, size_t msg_len)
{
    kvb_afile a;
    if (kvb_afile_open(&a, path, msg, msg_len)) return -1;
    fputs(text, a.f);
    return kvb_afile_commit(&a, msg, msg_len) ? -1 : 0;
}

void kvb_sweep_slurm_dir(const char *partial, char *out, size_t n)
{
    size_t len = strlen(partial);
    snprintf(out, n, "%.*s.slurm", (int)(len > 8 ? len - 8 : len), partial);
}

kvb_status kvb_sweep_slurm(const char *name, const kvb_sweep_point *pts, int n, const char *exe,
                           const char *partial, const kvb_slurm_opts *o, FILE *out, char *msg,
                           size_t msg_len)
{
    char part[PATH_MAX], slurm[PATH_MAX], final[PATH_MAX], qexe[2 * PATH_MAX], qpart[2 * PATH_MAX],
        qslurm[2 * PATH_MAX], sbatch[PATH_MAX], jname[64];
    absolute(partial, part, sizeof part);
    kvb_sweep_slurm_dir(part, slurm, sizeof slurm);
    snprintf(final, sizeof final, "%.*s", (int)(strlen(part) - 8), part);
    snprintf(jname, sizeof jname, "%s", name);
    for (char *c = jname; *c; c++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", *c))
            *c = '_';
    kvb_sweep_shell_quote(exe, qexe, sizeof qexe);
    kvb_sweep_shell_quote(part, qpart, sizeof qpart);
    kvb_sweep_shell_quote(slurm, qslurm, sizeof qslurm);
    find_sbatch(sbatch, sizeof sbatch);
    /* the three files, in memory first: --dry-run prints them and makes nothing */
    char *text[3] = {NULL, NULL, NULL};
    size_t len[3];
    FILE *f;
    if ((f = open_memstream(&text[0], &len[0]))) {
        for (int i = 0; i < n; i++) fprintf(f, "%s\n", pts[i].id);
        fclose(f);
    }
    if ((f = open_memstream(&text[1], &len[1]))) {
        points_script(f, jname, qexe, qpart, qslurm, slurm, o);
        fclose(f);
    }
    if ((f = open_memstream(&text[2], &len[2]))) {
        collect_script(f, jname, qexe, qpart, slurm, o);
        fclose(f);
    }
    static const char *const file[3] = {"points.txt", "points.sbatch", "collect.sbatch"};
    kvb_status st = KVB_STATUS_OK;
    int *lim = NULL;
    char *tasks = NULL;
    if (!text[0] || !text[1] || !text[2]) {
        snprintf(msg, msg_len, "out of memory");
        st = KVB_STATUS_NO_MEMORY;
        goto done;
    }
    /* the groups: one array submission per time limit, shortest first */
    enum { MAX_GROUPS = 16 };
    int mins[MAX_GROUPS + 1], ng = 0, top = 0;
    lim = calloc((size_t)n + 1, sizeof *lim);
    /* a task list is at most every line number and a comma each */
    size_t tasks_len = (size_t)n * 12 + 16;
    tasks = malloc(tasks_len);
    if (!lim || !tasks) {
        snprintf(msg, msg_len, "out of memory");
        st = KVB_STATUS_NO_MEMORY;
        goto done;
    }
    for (int i = 0; i < n; i++) {
        int m = lim[i] = limit_minutes(pts[i].budget_s), k = 0;
        top = m > top ? m : top;
        while (k < ng && mins[k] != m) k++;
        if (k == ng && ng <= MAX_GROUPS) mins[ng++] = m;
    }
    if (ng > MAX_GROUPS) { /* budgets of every size: one array at the longest limit */
        for (int i = 0; i < n; i++) lim[i] = top;
        mins[0] = top;
        ng = 1;
    }
    for (int a = 0; a < ng; a++)
        for (int b = a + 1; b < ng; b++)
            if (mins[b] < mins[a]) {
                int t = mins[a];
                mins[a] = mins[b];
                mins[b] = t;
            }
    char tim[MAX_GROUPS][32], dep[MAX_GROUPS][400], ids[MAX_GROUPS][32];
    char collect_id[32] = "";
    if (o->dry_run) {
        for (int k = 0; k < 3; k++) fprintf(out, "==> %s/%s <==\n%s\n", slurm, file[k], text[k]);
        fprintf(out, "==> what would be submitted <==\n");
    } else {
        if (mkdir(slurm, 0755) != 0) {
            snprintf(msg, msg_len, "cannot create '%s': %s", slurm, strerror(errno));
            st = KVB_STATUS_IO;
            goto done;
        }
        for (int k = 0; k < 3; k++) {
            char path[PATH_MAX + 32];
            snprintf(path, sizeof path, "%s/%s", slurm, file[k]);
            if (write_text(path, text[k], msg, msg_len)) {
                st = KVB_STATUS_IO;
                goto done;
            }
        }
    }
    char script[PATH_MAX + 32], log[PATH_MAX + 32];
    snprintf(log, sizeof log, "%s/submit.sh", slurm);
    FILE *sub = o->dry_run ? NULL : fopen(log, "w");
    if (sub)
        fprintf(sub, "# what kvbench sweep --slurm submitted, in order (job ids as comments)\n");
    for (int g = 0; g < ng; g++) {
        task_list(lim, n, mins[g], tasks, tasks_len);
        char *array_arg = NULL;
        int w = o->max_parallel > 0 ? asprintf(&array_arg, "--array=%s%%%d", tasks, o->max_parallel)
                                    : asprintf(&array_arg, "--array=%s", tasks);
        if (w < 0) {
            snprintf(msg, msg_len, "out of memory");
            st = KVB_STATUS_NO_MEMORY;
            if (sub) fclose(sub);
            goto done;
        }
        snprintf(tim[g], sizeof tim[g], "--time=%d", mins[g]);
        /* --max-parallel bounds the whole sweep: each group starts once the one before ended */
        dep[g][0] = 0;
        if (o->max_parallel > 0 && g > 0)
            snprintf(dep[g], sizeof dep[g], "--dependency=afterany:%s",
                     o->dry_run ? "<the array job before>" : ids[g - 1]);
        snprintf(script, sizeof script, "%s/points.sbatch", slurm);
        char *argv[] = {
            "--parsable", array_arg, tim[g], dep[g][0] ? dep[g] : script, dep[g][0] ? script : NULL,
            NULL};
        if (o->dry_run)
            fprintf(out, "sbatch %s %s%s%s %s/points.sbatch\n", array_arg, tim[g],
                    dep[g][0] ? " " : "", dep[g], qslurm);
        else if (submit(sbatch, argv, "the points' array job", ids[g], msg, msg_len))
            st = KVB_STATUS_IO;
        else if (sub)
            fprintf(sub, "sbatch %s %s%s%s %s/points.sbatch   # job %s\n", array_arg, tim[g],
                    dep[g][0] ? " " : "", dep[g], qslurm, ids[g]);
        free(array_arg);
        if (st != KVB_STATUS_OK) {
            for (int h = 0; h < g; h++) {
                size_t k = strlen(msg);
                snprintf(msg + k, msg_len - k, "%s %s",
                         h ? "" : "; already submitted (scancel):", ids[h]);
            }
            if (sub) fclose(sub);
            goto done;
        }
    }
    /* the collection job: after every array task ended well; cancelled, not left pending
     * forever, when one failed (the README says what to do then) */
    char after[400] = "--dependency=afterok";
    for (int g = 0; g < ng; g++) {
        size_t k = strlen(after);
        snprintf(after + k, sizeof after - k, ":%s", o->dry_run ? "<array>" : ids[g]);
    }
    snprintf(script, sizeof script, "%s/collect.sbatch", slurm);
    char *cargv[] = {"--parsable", after, "--kill-on-invalid-dep=yes", script, NULL};
    if (o->dry_run) {
        fprintf(out, "sbatch %s --kill-on-invalid-dep=yes %s/collect.sbatch\n", after, qslurm);
        goto done;
    }
    if (submit(sbatch, cargv, "the collection job", collect_id, msg, msg_len)) {
        size_t k = strlen(msg);
        snprintf(msg + k, msg_len - k, "; the points' jobs are submitted:");
        for (int g = 0; g < ng; g++) {
            k = strlen(msg);
            snprintf(msg + k, msg_len - k, " %s", ids[g]);
        }
        k = strlen(msg);
        snprintf(msg + k, msg_len - k, " (when they end: kvbench sweep --resume %s)", qpart);
        if (sub) fclose(sub);
        st = KVB_STATUS_IO;
        goto done;
    }
    if (sub) {
        fprintf(sub, "sbatch %s --kill-on-invalid-dep=yes %s/collect.sbatch   # job %s\n", after,
                qslurm, collect_id);
        fclose(sub);
    }
    char all[600] = "";
    for (int g = 0; g < ng; g++) {
        task_list(lim, n, mins[g], tasks, tasks_len);
        fprintf(out, "array job %s: tasks %s (lines of points.txt), %d min each\n", ids[g], tasks,
                mins[g]);
        size_t k = strlen(all);
        snprintf(all + k, sizeof all - k, "%s,", ids[g]);
    }
    fprintf(out, "collection job %s: after them, the report, then %s\n", collect_id, final);
    fprintf(out,
            "watch:  squeue -j %s%s\n"
            "        tail %s/<point>.err   (each point's output; points.txt lists them)\n"
            "        ls %s   (there when the collection job has finished)\n",
            all, collect_id, qslurm, final);
done:
    free(lim);
    free(tasks);
    for (int k = 0; k < 3; k++) free(text[k]);
    return st;
}
