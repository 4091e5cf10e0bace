/* sweep_merge.c: kvbench merge (see sweep.h): several machines' sweep
 * directories copied side by side under one new directory, with its report. */
#define _GNU_SOURCE
#include "sweep.h"
#include "sweep_int.h"
#include "../analysis/report.h"
#include "../base/afile.h"
#include "../base/columns.h"
#include "../base/csv.h"
#include "../base/textio.h"

#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ---- merging ------------------------------------------------------------- */

/* A host name that can be a folder: letters, digits, '.', '-', '_', not
 * starting with '.' or '-', at most 64 characters; nothing read from a result
 * file becomes a path unchecked. */
static int plain_name(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 64 || h[0] == '.' || h[0] == '-') return 0;
    for (const char *c = h; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '-' || *c == '_'))
            return 0;
    return 1;
}

/* 1 when the sweep.csv at path lists a point pending or failed */
static int unfinished_points(const char *path)
{
    kvb_csv c;
    char msg[512];
    if (kvb_csv_open(&c, path, msg, sizeof msg)) return 0;
    int found = 0, col = -1;
    while (!found && kvb_csv_next(&c) > 0) {
        if (c.no == 1) {
            kvb_csv_header(&c);
            col = kvb_csv_column(&c, KVB_COL_STATUS);
            continue;
        }
        const char *st = kvb_csv_get(&c, col);
        found = st && (strcmp(st, "pending") == 0 || strcmp(st, "failed") == 0);
    }
    kvb_csv_close(&c);
    return found;
}

/* "" when a and b define the same sweep, time budgets aside (a slower machine
 * may need longer); else the first key that differs */
static void definition_diff(const kvb_sweep *a, const kvb_sweep *b, char *what, size_t n)
{
    what[0] = 0;
    for (int pass = 0; pass < 2 && !what[0]; pass++) {
        const kvb_sweep *x = pass ? b : a, *y = pass ? a : b;
        for (int i = 0; i < x->n && !what[0]; i++) {
            if (strstr(x->key[i], ".budget")) continue;
            const char *v = kvb_sweep_get(y, x->key[i]);
            if (!v || strcmp(v, x->val[i]) != 0)
                snprintf(what, n, "%s = %s in one, %s in the other", x->key[i], x->val[i],
                         v ? v : "unset");
        }
    }
}

kvb_status kvb_sweep_merge(const char *out_arg, const char *const *dirs, int n, char *msg,
                           size_t msg_len)
{
    char hosts[16][256], path[2400], tmp[2400], out[2300], what[600];
    if (n < 1 || n > 16) {
        snprintf(msg, msg_len, "merge takes 1 to 16 sweep directories, got %d", n);
        return KVB_STATUS_INVALID_ARG;
    }
    snprintf(out, sizeof out, "%s", out_arg);
    size_t ol = strlen(out);
    while (ol > 1 && out[ol - 1] == '/') out[--ol] = 0;
    if (!out[0] || strlen(out_arg) >= sizeof out - 16) {
        snprintf(msg, msg_len, "merge OUT '%s': expected a new directory's name", out_arg);
        return KVB_STATUS_INVALID_ARG;
    }
    if (kvb_sweep_lexists(out)) {
        snprintf(msg, msg_len, "'%s' exists: merge writes a new directory", out);
        return KVB_STATUS_INVALID_ARG;
    }
    kvb_partial_name(out, tmp, sizeof tmp);
    if (kvb_sweep_lexists(tmp)) {
        snprintf(msg, msg_len,
                 "'%s' exists (an unfinished sweep or merge of that name): merge never removes it; "
                 "choose another OUT",
                 tmp);
        return KVB_STATUS_INVALID_ARG;
    }
    kvb_sweep *first = calloc(2, sizeof *first), *other = first + 1;
    if (!first) {
        snprintf(msg, msg_len, "out of memory");
        return KVB_STATUS_NO_MEMORY;
    }
    kvb_status st = KVB_STATUS_INVALID_ARG;
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/sweep.csv", dirs[i]);
        char mfile[2400];
        snprintf(mfile, sizeof mfile, "%s/machine.txt", dirs[i]);
        if (!kvb_sweep_exists(path) || kvb_sweep_host_of(mfile, hosts[i], sizeof hosts[i]) != 0) {
            snprintf(msg, msg_len,
                     "'%s' is not a sweep directory (no sweep.csv or machine.txt with a host)",
                     dirs[i]);
            goto fail;
        }
        if (!plain_name(hosts[i])) {
            kvb_sweep_clean_field(hosts[i]);
            snprintf(
                msg, msg_len,
                "'%s': machine.txt's host '%s' is not a plain host name (letters, digits, '.', "
                "'-', '_'; at most 64): refused, it would name a folder",
                dirs[i], hosts[i]);
            goto fail;
        }
        size_t len = strlen(dirs[i]);
        int unfinished =
            (len >= 8 && strcmp(dirs[i] + len - 8, ".partial") == 0) || unfinished_points(path);
        if (unfinished) {
            snprintf(msg, msg_len,
                     "'%s' is an unfinished sweep: finish it with kvbench sweep --resume first",
                     dirs[i]);
            goto fail;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(hosts[i], hosts[j]) == 0) {
                snprintf(msg, msg_len,
                         "'%s' and '%s' both come from host %s: merge compares machines", dirs[j],
                         dirs[i], hosts[i]);
                goto fail;
            }
        /* one sweep across machines: the same definition, or the plots would set unlike beside
         * unlike */
        kvb_sweep *d = i ? other : first;
        memset(d, 0, sizeof *d);
        snprintf(path, sizeof path, "%s/sweep.def", dirs[i]);
        if (kvb_sweep_load(d, path, what, sizeof what) != KVB_STATUS_OK) {
            snprintf(msg, msg_len, "'%s': no readable definition (%s)", dirs[i], what);
            goto fail;
        }
        definition_diff(first, d, what, sizeof what);
        if (what[0]) {
            snprintf(msg, msg_len,
                     "'%s' and '%s' are different sweeps (%s): merge sets one sweep's results "
                     "from several machines side by side",
                     dirs[0], dirs[i], what);
            goto fail;
        }
    }
    st = KVB_STATUS_IO;
    snprintf(path, sizeof path, "%s/machines", tmp);
    if (mkdir(tmp, 0755) != 0) {
        snprintf(msg, msg_len, "cannot create '%s': %s", tmp, strerror(errno));
        goto fail;
    }
    if (mkdir(path, 0755) != 0) {
        snprintf(msg, msg_len, "cannot create '%s': %s", path, strerror(errno));
        goto fail_rm;
    }
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/machines/%s", tmp, hosts[i]);
        char *argv[] = {"cp", "-R", "--", (char *)dirs[i], path, NULL};
        pid_t pid;
        int status = 1;
        if (posix_spawnp(&pid, "cp", NULL, NULL, argv, environ) == 0) waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            snprintf(msg, msg_len, "copying '%s' to '%s' failed (cp said why above)", dirs[i],
                     path);
            goto fail_rm;
        }
    }
    /* the report before the rename: a finished-looking directory always has one */
    if ((st = kvb_report(tmp, msg, msg_len)) != KVB_STATUS_OK) goto fail_rm;
    if (kvb_partial_publish(tmp, out, msg, msg_len)) {
        st = KVB_STATUS_IO;
        goto fail_rm;
    }
    free(first);
    return KVB_STATUS_OK;
fail_rm:
    kvb_rmtree(tmp);
    if (st == KVB_STATUS_OK || st == KVB_STATUS_INVALID_ARG) st = KVB_STATUS_IO;
fail:
    free(first);
    return st;
}
