/* replay.c: a main() for a fuzz target built with the normal compiler (no
 * clang, no libFuzzer): feeds it every file named, and every file in every
 * directory named, in name order, so the seed corpora and the saved
 * regressions stay tested by make fuzz-replay. A missing directory counts as
 * empty (a target may have no regressions yet). Exit 0 when every input went
 * through; a crash or a broken invariant aborts, and the input is named on
 * stderr (by a signal handler, or by the sanitizers' death callback in an
 * ASan build); -v names every input before it runs. */
#define _XOPEN_SOURCE 700
#include "fuzz_util.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

/* the input under test, for the crash handlers (which may not call printf) */
static const char *current;

static void name_current(void)
{
    if (!current) return;
    static const char pre[] = "\nreplay: the failing input is ";
    (void)!write(STDERR_FILENO, pre, sizeof pre - 1);
    (void)!write(STDERR_FILENO, current, strlen(current));
    (void)!write(STDERR_FILENO, "\n", 1);
}

static void on_signal(int sig)
{
    name_current();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ASan and UBSan end the process themselves; present only in such a build */
void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

static int replay_file(const char *path, int verbose)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot read '%s': %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, n = 0;
    unsigned char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) {
            unsigned char *b = realloc(buf, cap *= 2);
            if (!b) { free(buf); buf = NULL; }
            buf = b;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        fprintf(stderr, "replay: cannot read '%s'\n", path);
        free(buf);
        return -1;
    }
    if (verbose) fprintf(stderr, "replay: %s\n", path);
    current = path;
    LLVMFuzzerTestOneInput(buf, n);
    current = NULL;
    free(buf);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    int files = 0, errors = 0, verbose = 0;
    /* under a sanitizer, its own handlers report the faults (and call back);
     * an abort from a broken invariant is ours to name either way */
    static const int sigs[] = {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL};
    int sanitized = __sanitizer_set_death_callback != NULL;
    if (sanitized) __sanitizer_set_death_callback(name_current);
    for (size_t i = 0; i < (sanitized ? 1 : sizeof sigs / sizeof sigs[0]); i++)
        signal(sigs[i], on_signal);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-v")) { verbose = 1; continue; }
        struct stat st;
        if (stat(argv[i], &st) != 0) continue;           /* no such directory: nothing to replay */
        if (!S_ISDIR(st.st_mode)) {
            errors += replay_file(argv[i], verbose) != 0;
            files++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        if (!d) { fprintf(stderr, "replay: cannot list '%s'\n", argv[i]); errors++; continue; }
        char **names = NULL;
        size_t n = 0, cap = 0;
        for (struct dirent *e; (e = readdir(d));) {
            if (e->d_name[0] == '.') continue;             /* ., .., .gitkeep */
            if (n == cap) {
                char **nn = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *names);
                if (!nn) { fprintf(stderr, "replay: out of memory\n"); return 1; }
                names = nn;
            }
            names[n++] = strdup(e->d_name);
        }
        closedir(d);
        if (n) qsort(names, n, sizeof *names, cmp_str);
        for (size_t k = 0; k < n; k++) {
            char path[4200];
            snprintf(path, sizeof path, "%s/%s", argv[i], names[k]);
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                errors += replay_file(path, verbose) != 0;
                files++;
            }
            free(names[k]);
        }
        free(names);
    }
    printf("%d inputs replayed%s\n", files, errors ? ", some unreadable" : "");
    return errors ? 1 : 0;
}
