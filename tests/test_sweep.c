/* test_sweep.c: the sweep definition's reader and checks (issue 13, cmocka):
 * special and oversized files refused before they are read, long lines
 * refused by number, every value checked at expansion (repeated items,
 * unknown names, numbers that are not numbers, infinite budgets), and the
 * smoke sweep's quantized points quantizing tokens. Uses only
 * kvb_sweep_load/set/expand, so it also builds against older sweep code. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/datadir.h"
#include "../harness/sweep.h"

/* a temp folder per test, removed after */
static int setup(void **state)
{
    char *dir = malloc(64);
    snprintf(dir, 64, "/tmp/kvbench-test-sweep-XXXXXX");
    if (!mkdtemp(dir)) { free(dir); return -1; }
    *state = dir;
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", (char *)*state);
    int rc = system(cmd);
    free(*state);
    return rc == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* kvb_sweep_load's status for the file; msg holds its message */
static kvb_status load(const char *path, char *msg, size_t n)
{
    kvb_sweep s;
    memset(&s, 0, sizeof s);
    msg[0] = 0;
    return kvb_sweep_load(&s, path, msg, n);
}

static void test_special_files(void **state)
{
    const char *dir = *state;
    char path[256], msg[1024];
    /* a watchdog: before the fix /dev/zero read forever and a FIFO blocked in open */
    alarm(20);
    assert_int_not_equal(load("/dev/zero", msg, sizeof msg), KVB_STATUS_OK);
    assert_non_null(strstr(msg, "not a regular file"));
    assert_non_null(strstr(msg, "/dev/zero"));
    snprintf(path, sizeof path, "%s/fifo.sweep", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_not_equal(load(path, msg, sizeof msg), KVB_STATUS_OK);
    assert_non_null(strstr(msg, "FIFO"));
    assert_int_not_equal(load(dir, msg, sizeof msg), KVB_STATUS_OK);
    assert_non_null(strstr(msg, "not a regular file"));
    /* absurd sizes: refused by size, naming it */
    size_t big = 200000;
    char *text = malloc(big);
    assert_non_null(text);
    memset(text, '#', big);
    snprintf(path, sizeof path, "%s/big.sweep", dir);
    write_file(path, text, big);
    free(text);
    assert_int_not_equal(load(path, msg, sizeof msg), KVB_STATUS_OK);
    assert_non_null(strstr(msg, "200000 bytes"));
    alarm(0);
}

static void test_long_lines(void **state)
{
    const char *dir = *state;
    char path[256], msg[1024], text[4096];
    /* a 1,100-byte comment whose end would have been read as a setting */
    int n = snprintf(text, sizeof text, "run.backends = contiguous\n#%1080s", "");
    n += snprintf(text + n, sizeof text - (size_t)n, "run.tokenz=5\nrun.tokens = 4\n");
    snprintf(path, sizeof path, "%s/long.sweep", dir);
    write_file(path, text, (size_t)n);
    assert_int_not_equal(load(path, msg, sizeof msg), KVB_STATUS_OK);
    assert_non_null(strstr(msg, "long.sweep:2:"));
    assert_null(strstr(msg, "tokenz"));
    /* 1,023 bytes is a line still */
    n = snprintf(text, sizeof text, "run.backends = contiguous\n#%1022s\nrun.tokens = 4\n", "");
    write_file(path, text, (size_t)n);
    if (load(path, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("a 1023-byte line: %s", msg);
    /* a NUL byte: not a text file, by line */
    snprintf(path, sizeof path, "%s/nul.sweep", dir);
    write_file(path, "run.backends = contiguous\nrun.tok\0ens = 4\n", 42);
    assert_int_not_equal(load(path, msg, sizeof msg), KVB_STATUS_OK);
    assert_non_null(strstr(msg, "nul.sweep:2:"));
}

/* expand's verdict on a definition of these assignments (each accepted by set) */
static int expand(const char *const *set, int n, char *msg, size_t msg_len)
{
    kvb_sweep s;
    memset(&s, 0, sizeof s);
    for (int i = 0; i < n; i++)
        if (kvb_sweep_set(&s, set[i], msg, msg_len) != KVB_STATUS_OK) return -2;
    kvb_sweep_point *p = NULL;
    int r = kvb_sweep_expand(&s, "/out", &p, msg, msg_len);
    if (r > 0) free(p);
    return r;
}

static void test_values(void **state)
{
    (void)state;
    char msg[1024];
    static const struct { const char *set[3]; const char *needle;
    } bad[] = {
        {{"run.backends=contiguous", "run.threads=1,1"}, "'1' is repeated in '1,1'"},
        {{"run.backends=contiguous,contiguous"}, "'contiguous' is repeated"},
        {{"attend.backends=paged", "attend.blocks=16,4,16"}, "'16' is repeated"},
        {{"quality.dtypes=q8,q4,q8"}, "'q8' is repeated"},
        {{"run.backends=contiguous,bogus"}, "unknown backend 'bogus'"},
        {{"run.backends=contiguous", "run.preset=huge"}, "unknown preset 'huge'"},
        {{"serve.backends=contiguous", "serve.preset=huge"}, "unknown preset 'huge'"},
        {{"run.backends=contiguous", "run.preset=../../x"},
         "unknown preset '../../x'"}, /* a point's folder */
        {{"run.backends=paged", "run.blocks=../16"}, "'../16' is not a whole number"},
        {{"run.backends=contiguous", "run.dtypes=f8"}, "unknown storage type 'f8'"},
        {{"run.backends=contiguous", "run.tokens=abc"}, "'abc' is not a whole number"},
        {{"run.backends=contiguous", "run.tokens=0"}, "'0' is not a whole number"},
        {{"run.backends=contiguous", "run.tokens=4,8"}, "one value"},
        {{"run.backends=contiguous", "run.budget=inf"}, "budget 'inf'"},
        {{"run.backends=contiguous", "run.budget=nan"}, "budget 'nan'"},
        {{"run.backends=contiguous", "run.budget=1e300"}, "budget '1e300'"},
        {{"run.backends=nocache", "run.budget@nocache=-1"}, "budget '-1'"},
        {{"run.backends=contiguous", "run.tokens@bogus=4"}, "unknown backend 'bogus' after '@'"},
        {{"attend.backends=contiguous", "attend.ctxs=64,x"}, "'x' is not a whole number"},
        {{"attend.backends=contiguous", "attend.threads=1,,2"}, "empty item"},
        {{"serve.backends=contiguous", "serve.sequences=1e3"}, "'1e3' is not a whole number"},
        {{"quality.dtypes=q8", "quality.group=7"}, "'7' is not a whole number from 8"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int n = 0;
        while (n < 3 && bad[i].set[n]) n++;
        int r = expand(bad[i].set, n, msg, sizeof msg);
        if (r >= 0)
            fail_msg("%s %s: accepted (%d points)", bad[i].set[0], n > 1 ? bad[i].set[1] : "", r);
        if (!strstr(msg, bad[i].needle))
            fail_msg("%s: message '%s' lacks '%s'", bad[i].set[n - 1], msg, bad[i].needle);
    }
    /* and good ones pass */
    static const char *const good[] = {"run.backends=nocache,contiguous",
                                       "run.tokens=4",
                                       "run.budget=0.5",
                                       "run.budget@nocache=30",
                                       "run.tokens@nocache=2",
                                       "attend.backends=paged",
                                       "attend.ctxs=64,128",
                                       "attend.blocks=4,16",
                                       "quality.dtypes=q8,q2",
                                       "quality.residual=0"};
    int r = expand(good, (int)(sizeof good / sizeof good[0]), msg, sizeof msg);
    if (r <= 0) fail_msg("a good definition refused: %s", msg);
}

/* the value after flag in a point's command, or NULL */
static const char *arg(const kvb_sweep_point *p, const char *flag)
{
    for (int a = 0; a + 1 < p->argc; a++)
        if (strcmp(p->argv[a], flag) == 0) return p->argv[a + 1];
    return NULL;
}

/* Every quantized point of the smoke sweep quantizes tokens: its positions go
 * past the f32 residual window (kvbench's default: 128 for q2, 0 for the
 * others) and a group of per-channel keys. Before: q2's quality point kept all
 * its 80 positions in f32. */
static void test_smoke_quantizes(void **state)
{
    (void)state;
    char path[1024], msg[1024];
    if (kvb_data_path("bench/sweeps/smoke.sweep", path, sizeof path) != 0)
        fail_msg("no smoke sweep at %s", path);
    kvb_sweep s;
    memset(&s, 0, sizeof s);
    if (kvb_sweep_load(&s, path, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("%s", msg);
    kvb_sweep_point *p;
    int n = kvb_sweep_expand(&s, "/out", &p, msg, sizeof msg);
    if (n <= 0) fail_msg("%s", msg);
    int checked = 0;
    for (int i = 0; i < n; i++) {
        const char *dt = arg(&p[i], "--dtype");
        if (!dt) continue;
        char types[128];
        snprintf(types, sizeof types, "%s", dt);
        for (char *save = NULL, *t = strtok_r(types, ",", &save); t;
             t = strtok_r(NULL, ",", &save)) {
            if (t[0] != 'q') continue;
            const char *r = arg(&p[i], "--residual"), *g = arg(&p[i], "--group");
            long residual = r ? atol(r) : strcmp(t, "q2") == 0 ? 128 : 0, group = g ? atol(g) : 32;
            long positions;
            if (strcmp(p[i].kind, "attend") == 0) {
                const char *c = arg(&p[i], "--ctx");
                positions = c ? atol(c) : 1024;          /* the first (smallest) context */
            } else {
                const char *pr = arg(&p[i], "--prompt"), *tk = arg(&p[i], "--tokens");
                positions = (pr ? atol(pr) : 16) + (tk ? atol(tk) : 256);
            }
            if (positions <= residual + group)
                fail_msg(
                    "%s: %s's %ld positions stay inside its f32 window (residual %ld + group %ld)",
                    p[i].id, t, positions, residual, group);
            checked++;
        }
    }
    assert_true(checked >= 3);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_special_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_lines, setup, teardown),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_smoke_quantizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
