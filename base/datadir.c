/* datadir.c: see datadir.h. The binary's own location comes from
 * /proc/self/exe (Linux); elsewhere only $KVBENCH_DATA and ./ are tried. */
#define _XOPEN_SOURCE 700
#include "datadir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int exists_at(char *out, size_t n, const char *a, const char *b, const char *rel)
{
    struct stat st;
    int w = snprintf(out, n, "%s%s%s", a, b, rel);
    return w > 0 && (size_t)w < n && stat(out, &st) == 0;
}

int kvb_data_path(const char *rel, char *out, size_t n)
{
    const char *env = getenv("KVBENCH_DATA");
    if (env && env[0] && exists_at(out, n, env, "/", rel)) return 0;
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        if (exists_at(out, n, exe, "/../", rel)) return 0;
        if (exists_at(out, n, exe, "/../share/kvbench/", rel)) return 0;
    }
    if (exists_at(out, n, "", "", rel)) return 0;
    if (len > 0) snprintf(out, n, "%s/../%s", exe, rel);
    else snprintf(out, n, "%s", rel);
    return -1;
}
