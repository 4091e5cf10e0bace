/* test_report.c: kvb_report's contract at the library level (cmocka): what
 * it says when it cannot do its work, that a machine without gnuplot gets one
 * note and a report without image links, that quality.csv is read by
 * column name, whatever other columns it holds and however long its lines,
 * and that sweep.csv and attend.csv rows of any length are read whole.
 * Each test builds its own small result directory under a mkdtemp folder,
 * removed at the end. The CLI side (drawing, merges, read-only mounts) is in
 * tests/cli_report.sh. */
#define _XOPEN_SOURCE 700
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../analysis/report.h"
#include "../base/textio.h"

static char root[64];

static void put(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static char *slurp_in(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return kvb_slurp(path);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* A single run as kvbench run leaves it: a cache series and a quality set
 * (q8 quantizing every token; q2 with a 128-token f32 window over 20 tokens). */
static void make_run(const char *dir, const char *quality_csv)
{
    assert_int_equal(mkdir(dir, 0755), 0);
    put(dir, "summary.json",
        "{\n  \"run_id\": \"t\",\n  \"points\": [\n"
        "    {\"label\": \"contiguous/f32/grow\", \"backend\": \"contiguous\", \"dtype\": \"f32\", "
        "\"status\": \"ok\", "
        "\"first_position\": 16, \"last_position\": 19, \"cache_bytes\": {\"reserved\": 4096, "
        "\"used\": 2560, "
        "\"analytic_used\": 2560}, \"fit_total_time\": {\"b\": 1.0, \"b_ci95\": [0.9, 1.1], "
        "\"a_ns\": 1000}},\n"
        "    {\"label\": \"quant/q8/g16-r0-ktoken\", \"backend\": \"quant\", \"dtype\": \"q8\", "
        "\"status\": \"ok\", "
        "\"first_position\": 16, \"last_position\": 19, \"cache_bytes\": {\"reserved\": 2048, "
        "\"used\": 720, "
        "\"analytic_used\": 720}},\n"
        "    {\"label\": \"quant/q2/g16-r128-kchannel\", \"backend\": \"quant\", \"dtype\": "
        "\"q2\", \"status\": \"ok\", "
        "\"first_position\": 16, \"last_position\": 19, \"cache_bytes\": {\"reserved\": 8192, "
        "\"used\": 2560, "
        "\"analytic_used\": 320}}\n  ]\n}\n");
    put(dir, "positions.csv",
        "label,position,samples,step_ns_median,step_ns_p10,step_ns_p90,attn_ns_median,reserved_"
        "bytes,used_bytes,"
        "metadata_bytes\n"
        "contiguous/f32/grow,16,1,1000,900,1100,100,4096,2176,0\n"
        "contiguous/f32/grow,17,1,1000,900,1100,100,4096,2304,0\n"
        "contiguous/f32/grow,18,1,1000,900,1100,100,4096,2432,0\n"
        "contiguous/f32/grow,19,1,1000,900,1100,100,4096,2560,0\n");
    if (quality_csv) put(dir, "quality.csv", quality_csv);
}

static const char *quality_fixed =
    "point,backend,dtype,mode,steps,kl_mean,kl_p50,kl_p99,kl_max,top1,layer,attn_rel_l2_mean,attn_"
    "max_abs\n"
    "quant/q8/g16-r0-ktoken,quant,q8,g16-r0-ktoken,3,1e-05,1e-05,1e-05,1e-05,1.0,0,4e-03,1e-02\n"
    "quant/q8/g16-r0-ktoken,quant,q8,g16-r0-ktoken,3,1e-05,1e-05,1e-05,1e-05,1.0,1,6e-03,1e-02\n"
    "quant/q2/"
    "g16-r128-kchannel,quant,q2,g16-r128-kchannel,3,2e-08,2e-08,2e-08,2e-08,1.0,0,1e-07,1e-07\n"
    "quant/q2/"
    "g16-r128-kchannel,quant,q2,g16-r128-kchannel,3,2e-08,2e-08,2e-08,2e-08,1.0,1,3e-07,1e-07\n";

static void test_not_a_result(void **state)
{
    (void)state;
    char dir[128], msg[512];
    snprintf(dir, sizeof dir, "%s/empty", root);
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(kvb_report_to(dir, NULL, msg, sizeof msg), KVB_STATUS_INVALID_ARG);
    assert_non_null(strstr(msg, dir));
    assert_non_null(strstr(msg, "is not a kvbench result"));
}

/* plots/ taken by a file: the message says what is in the way, not a stale errno */
static void test_plots_in_the_way(void **state)
{
    (void)state;
    char dir[128], msg[512];
    snprintf(dir, sizeof dir, "%s/inway", root);
    make_run(dir, NULL);
    put(dir, "plots", "a file\n");
    assert_int_equal(kvb_report_to(dir, NULL, msg, sizeof msg), KVB_STATUS_IO);
    assert_non_null(strstr(msg, "/inway/plots"));
    assert_non_null(strstr(msg, "a file of that name is in the way"));
}

/* no gnuplot: one note, a report, no image links, the data kept */
static void test_no_gnuplot(void **state)
{
    (void)state;
    char dir[128], msg[512];
    snprintf(dir, sizeof dir, "%s/nognuplot", root);
    make_run(dir, quality_fixed);
    char *path = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
    setenv("PATH", "/nonexistent", 1);
    FILE *notes = tmpfile();
    assert_non_null(notes);
    kvb_status st = kvb_report_to(dir, notes, msg, sizeof msg);
    if (path) { setenv("PATH", path, 1); free(path); }
    assert_int_equal(st, KVB_STATUS_OK);
    long n = ftell(notes);
    char text[4096] = "";
    rewind(notes);
    size_t got = fread(text, 1, sizeof text - 1, notes);
    text[got] = 0;
    fclose(notes);
    assert_true(n > 0);
    assert_int_equal(count(text, "gnuplot not found"), 1);
    char *html = slurp_in(dir, "report.html"), *md = slurp_in(dir, "report.md"),
         *dat = slurp_in(dir, "plots/latency.dat");
    assert_non_null(html);
    assert_non_null(md);
    assert_non_null(dat);
    assert_null(strstr(html, "<img"));
    assert_null(strstr(md, "]("));
    assert_true(count(html, "Plot not drawn: gnuplot is not installed") >=
                3); /* latency, memory, scaling, quant */
    free(html);
    free(md);
    free(dat);
}

/* The quant table: by column name, from the fixed columns, whatever follows
 * them; the q2 point that quantized nothing is labelled so. */
static char *quant_rows(const char *dir)
{
    char *md = slurp_in(dir, "report.md");
    assert_non_null(md);
    char *a = strstr(md, "| point | bytes/token");
    assert_non_null(a);
    char *e = strstr(a, "\n\n");
    if (e) *e = 0;
    char *out = strdup(a);
    free(md);
    return out;
}

static void test_quality_shapes(void **state)
{
    (void)state;
    char dir[128], msg[512];
    char *path = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
    setenv("PATH", "/nonexistent", 1);   /* the table is what is checked: no drawing */
    snprintf(dir, sizeof dir, "%s/fixed", root);
    make_run(dir, quality_fixed);
    assert_int_equal(kvb_report_to(dir, NULL, msg, sizeof msg), KVB_STATUS_OK);
    char *ref = quant_rows(dir);
    assert_non_null(strstr(ref, "| quant/q8/g16-r0-ktoken | 36 | 5.00e-03 | 1.00e-05 | 100.0% |"));
    assert_non_null(strstr(
        ref,
        "| quant/q2/g16-r128-kchannel (none quantized: every token in the f32 window) | 128 |"));
    char *q = slurp_in(dir, "plots/quant.dat");
    assert_non_null(q);
    assert_non_null(strstr(q, "\"q2 (none quantized: every token in the f32 window)\" 1\n"));
    assert_non_null(strstr(q, "\"q8\" 0\n"));
    free(q);

    /* the older shape: 500 per-context columns after the fixed ones, lines of 8 KB */
    size_t cap = 1 << 20, len = 0;
    char *wide = malloc(cap);
    assert_non_null(wide);
    int head = 1;
    for (const char *l = quality_fixed, *e; *l; l = e + 1, head = 0) {
        e = strchr(l, '\n');
        len += (size_t)snprintf(wide + len, cap - len, "%.*s", (int)(e - l), l);
        for (int c = 0; c < 500; c++)
            len += head ? (size_t)snprintf(wide + len, cap - len, ",attn_rel_l2_ctx%d", c + 1)
                        : (size_t)snprintf(wide + len, cap - len, ",9.999999e-01");
        len += (size_t)snprintf(wide + len, cap - len, "\n");
    }
    snprintf(dir, sizeof dir, "%s/wide", root);
    make_run(dir, wide);
    free(wide);
    assert_int_equal(kvb_report_to(dir, NULL, msg, sizeof msg), KVB_STATUS_OK);
    char *got = quant_rows(dir);
    assert_string_equal(got, ref);
    free(got);

    /* columns in another order, and one more at the end */
    snprintf(dir, sizeof dir, "%s/reordered", root);
    make_run(dir,
             "backend,point,mode,dtype,layer,top1,kl_mean,attn_rel_l2_mean,extra\n"
             "quant,quant/q8/g16-r0-ktoken,g16-r0-ktoken,q8,0,1.0,1e-05,4e-03,x\n"
             "quant,quant/q8/g16-r0-ktoken,g16-r0-ktoken,q8,1,1.0,1e-05,6e-03,x\n"
             "quant,quant/q2/g16-r128-kchannel,g16-r128-kchannel,q2,0,1.0,2e-08,1e-07,x\n"
             "quant,quant/q2/g16-r128-kchannel,g16-r128-kchannel,q2,1,1.0,2e-08,3e-07,x\n");
    assert_int_equal(kvb_report_to(dir, NULL, msg, sizeof msg), KVB_STATUS_OK);
    got = quant_rows(dir);
    assert_string_equal(got, ref);
    free(got);
    free(ref);
    if (path) { setenv("PATH", path, 1); free(path); }
}

/* A sweep whose sweep.csv command and attend.csv samples run past 8 KB (a
 * fixed line buffer cut them, and read the rest as rows): one point listed,
 * its series drawn from the columns after the long field. */
static void test_long_lines(void **state)
{
    (void)state;
    char dir[128], pts[160], pd[200], msg[512];
    snprintf(dir, sizeof dir, "%s/long", root);
    snprintf(pts, sizeof pts, "%s/points", dir);
    snprintf(pd, sizeof pd, "%s/attend-32x8x128-contiguous-f32-t1", pts);
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(mkdir(pts, 0755), 0);
    assert_int_equal(mkdir(pd, 0755), 0);
    put(dir, "machine.txt", "host: h\ncpu: c\n");
    put(dir, "sweep.def", "attend.backends = contiguous\n");
    put(pts, "attend-32x8x128-contiguous-f32-t1.status", "ok 4.3\n");
    size_t cap = 64 << 10, n = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    n += (size_t)snprintf(text + n, cap - n,
                          "point,kind,status,seconds,budget_s,command,host,cpu\n"
                          "attend-32x8x128-contiguous-f32-t1,attend,ok,4.3,60,"
                          "\"kvbench attend --ctx ");
    for (int i = 0; n < 12000; i++) n += (size_t)snprintf(text + n, cap - n, "%d,", 1000 + i);
    n += (size_t)snprintf(text + n, cap - n, "1\",\"h\",\"c\"\n");
    put(dir, "sweep.csv", text);
    n = (size_t)snprintf(text, cap,
                         "case,backend,dtype,samples_ns,n_heads,n_kv_heads,head_dim,ctx,"
                         "median_ns,gbs\n"
                         "\"attend(contiguous)\",contiguous,f32,");
    for (int i = 0; n < 20000; i++)
        n += (size_t)snprintf(text + n, cap - n, "%s%d", i ? ";" : "", 100000 + i);
    n += (size_t)snprintf(text + n, cap - n, ",32,8,128,1024,5000,42.5\n");
    put(pd, "attend.csv", text);
    free(text);
    char *path = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
    setenv("PATH", "/nonexistent", 1);
    kvb_status st = kvb_report_to(dir, NULL, msg, sizeof msg);
    if (path) { setenv("PATH", path, 1); free(path); }
    assert_int_equal(st, KVB_STATUS_OK);
    char *md = slurp_in(dir, "report.md");
    assert_non_null(md);
    const char *list = strstr(md, "| point | kind | status | seconds |");
    assert_non_null(list);
    assert_non_null(strstr(
        list, "|---|---|---|---|\n| attend-32x8x128-contiguous-f32-t1 | attend | ok | 4.3 |\n\n"));
    assert_non_null(strstr(md, "| contiguous/f32 x1 32/8/128 | 1024 | 42.50 | - |"));
    free(md);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(p);
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/kvbench-test-report.XXXXXX");
    if (!mkdtemp(root)) {
        perror("test_report: mkdtemp");
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_a_result),
        cmocka_unit_test(test_plots_in_the_way),
        cmocka_unit_test(test_no_gnuplot),
        cmocka_unit_test(test_quality_shapes),
        cmocka_unit_test(test_long_lines),
    };
    int failed = cmocka_run_group_tests_name("report", tests, NULL, NULL);
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return failed ? 1 : 0;
}
