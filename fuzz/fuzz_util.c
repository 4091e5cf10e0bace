/* fuzz_util.c: see fuzz_util.h. The directory's name is the one piece of
 * process-wide state the targets keep: libFuzzer calls a target millions of
 * times with no context argument, and making a directory per input would cost
 * more than the call under test. */
#define _XOPEN_SOURCE 700
#include "fuzz_util.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fuzz_dir[1024];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    remove(p);
    return 0;
}

void kvb_fuzz_rmtree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void remove_dir_at_exit(void)
{
    if (fuzz_dir[0]) kvb_fuzz_rmtree(fuzz_dir);
}

const char *kvb_fuzz_dir(void)
{
    if (fuzz_dir[0]) return fuzz_dir;
    const char *tmp = getenv("TMPDIR");
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s/kvb-fuzz-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(fuzz_dir)) {
        fprintf(stderr, "fuzz: cannot make a temporary directory '%s': %s\n", fuzz_dir,
                strerror(errno));
        abort();
    }
    atexit(remove_dir_at_exit);
    return fuzz_dir;
}

void kvb_fuzz_write(const char *path, const void *data, size_t n)
{
    char dir[1200];
    snprintf(dir, sizeof dir, "%s", path);
    for (char *p = dir + 1; *p; p++)            /* mkdir -p of the parent */
        if (*p == '/') {
            *p = 0;
            mkdir(dir, 0755);
            *p = '/';
        }
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        fprintf(stderr, "fuzz: cannot write '%s': %s\n", path, strerror(errno));
        abort();
    }
}

void kvb_fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    fprintf(stderr, "fuzz: %s:%d: invariant '%s' broken: ", file, line, cond);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}
