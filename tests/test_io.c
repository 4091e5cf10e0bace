/* test_io.c: the I/O layer under every result file (cmocka): the JSON
 * writer's one escaping rule and its layouts, JSON read through cJSON
 * whatever the key order and whitespace, CSV rows of any length, and files
 * and directories that appear whole or not at all. Files go under a mkdtemp
 * folder, removed at the end. */
#define _GNU_SOURCE /* open_memstream, mkdtemp */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/afile.h"
#include "../base/csv.h"
#include "../base/json.h"
#include "../base/textio.h"

static char root[64];

static char *path_in(const char *name)
{
    static char p[2][256];
    static int k;
    k ^= 1;
    snprintf(p[k], sizeof p[k], "%s/%s", root, name);
    return p[k];
}

static void put(const char *name, const char *text)
{
    FILE *f = fopen(path_in(name), "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* ---- writing JSON ---------------------------------------------------------- */

static char *escaped(const char *s)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    assert_non_null(f);
    kvb_json_escape(f, s);
    fclose(f);
    return buf;
}

static void test_escape(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain", "\"plain\""},
        {"a \"quoted\" \\ back", "\"a \\\"quoted\\\" \\\\ back\""},
        {"line\nnext\ttab\r\x01\x1f", "\"line\\nnext\\u0009tab\\u000d\\u0001\\u001f\""},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
         "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""},
        {"bad \xff byte, \xf8\x80\x80, cut \xc3",
         "\"bad \\ufffd byte, \\ufffd\\ufffd\\ufffd, cut \\ufffd\""},
        {"surrogate \xed\xa0\x80", "\"surrogate \\ufffd\\ufffd\\ufffd\""},
        {"", "\"\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = escaped(cases[i].in);
        assert_string_equal(got, cases[i].out);
        /* what it writes is JSON that reads back as the input (valid UTF-8 inputs) */
        if (!strstr(cases[i].in, "\xff") && !strstr(cases[i].in, "\xed") &&
            !strstr(cases[i].in, "cut")) {
            cJSON *j = cJSON_Parse(got);
            assert_non_null(j);
            assert_string_equal(j->valuestring, cases[i].in);
            cJSON_Delete(j);
        }
        free(got);
    }
    char *null = escaped(NULL);
    assert_string_equal(null, "\"\"");
    free(null);
}

/* The layouts kvbench's files use: multi-line containers indent their first
 * item, inline ones hug their brackets, a break moves one item to a new line. */
static void test_writer_layout(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    kvb_jw w;
    kvb_jw_init(&w, f);
    kvb_jw_open(&w, '{', "\n  ");
    kvb_jw_kstr(&w, "id", "r1");
    kvb_jw_key(&w, "git");
    kvb_jw_open(&w, '{', " ");
    kvb_jw_kstr(&w, "commit", "abc");
    kvb_jw_key(&w, "dirty");
    kvb_jw_null(&w);
    kvb_jw_close(&w, "");
    kvb_jw_key(&w, "ids");
    kvb_jw_open(&w, '[', "");
    for (int i = 1; i <= 3; i++) kvb_jw_int(&w, i);
    kvb_jw_close(&w, "");
    kvb_jw_key(&w, "points");
    kvb_jw_open(&w, '[', "\n    ");
    for (int i = 0; i < 2; i++) {
        kvb_jw_open(&w, '{', " ");
        kvb_jw_knum(&w, "x", "%.6g", i ? NAN : 1.0 / 3);
        kvb_jw_break(&w, "\n     ");
        kvb_jw_kuint(&w, "bytes", 18446744073709551615ull);
        kvb_jw_kbool(&w, "ok", i);
        kvb_jw_key(&w, "ci");
        kvb_jw_open(&w, '[', " ");
        kvb_jw_num(&w, "%.6g", 0.5);
        kvb_jw_num(&w, "%.6g", INFINITY);
        kvb_jw_close(&w, "");
        kvb_jw_close(&w, "");
    }
    kvb_jw_close(&w, "\n  ");
    kvb_jw_close(&w, "\n");
    fclose(f);
    assert_false(w.bad);
    assert_string_equal(
        buf, "{\n  \"id\": \"r1\",\n  \"git\": {\"commit\": \"abc\", \"dirty\": null},\n"
             "  \"ids\": [1,2,3],\n  \"points\": [\n"
             "    {\"x\": 0.333333,\n     \"bytes\": 18446744073709551615, \"ok\": false, "
             "\"ci\": [0.5, null]},\n"
             "    {\"x\": null,\n     \"bytes\": 18446744073709551615, \"ok\": true, "
             "\"ci\": [0.5, null]}\n  ]\n}");
    cJSON *j = cJSON_Parse(buf);
    assert_non_null(j);
    cJSON_Delete(j);
    free(buf);
    /* misuse is flagged, not written */
    f = open_memstream(&buf, &n);
    kvb_jw_init(&w, f);
    kvb_jw_close(&w, "");
    assert_true(w.bad);
    kvb_jw_init(&w, f);
    kvb_jw_open(&w, '[', "");
    kvb_jw_key(&w, "a key in an array");
    assert_true(w.bad);
    fclose(f);
    free(buf);
}

/* ---- reading JSON ---------------------------------------------------------- */

/* Keys in another order, other whitespace, a nested key of the same name
 * first: a search for "key": in the text (what came before cJSON) read these
 * wrong or not at all. */
static void test_read_any_layout(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "{\"points\": [{\"label\": \"a\", \"fit\": {\"b\": 2.5}, \"b\": 1.5, \"host\": \"h\"}]}",
        "{\"points\":[{\"b\":1.5,\"fit\":{\"b\":2.5},\"host\":\"h\",\"label\":\"a\"}]}",
        "{\n\t\"points\" :\n[ {\"host\" : \"h\" ,\"b\"\n:\n1.5e0, \"fit\": { \"b\" : 25e-1 }, "
        "\"label\":\"a\"} ] }\n",
    };
    char msg[256];
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        cJSON *j = kvb_json_parse(texts[i], strlen(texts[i]), "t.json", msg, sizeof msg);
        assert_non_null(j);
        const cJSON *p = kvb_json_find(kvb_json_at(j, "points"), "label", "a");
        assert_non_null(p);
        assert_true(kvb_json_num_at(p, "b") == 1.5);
        assert_true(kvb_json_num_at(p, "fit.b") == 2.5);
        assert_string_equal(kvb_json_str_at(p, "host"), "h");
        assert_true(isnan(kvb_json_num_at(p, "host"))); /* a string is not a number */
        assert_null(kvb_json_str_at(p, "b"));
        assert_null(kvb_json_at(p, "fit.b.c"));
        assert_null(kvb_json_find(kvb_json_at(j, "points"), "label", "b"));
        char s[4];
        kvb_json_copy_at(p, "host", s, sizeof s);
        assert_string_equal(s, "h");
        kvb_json_copy_at(p, "missing", s, sizeof s);
        assert_string_equal(s, "");
        cJSON_Delete(j);
    }
    /* escaped strings come back unescaped; array items by index; null is no number */
    const char *t = "{\"command\": \"run --out \\\"a b\\\" \\u00e9\", \"ci\": [0.9, null]}";
    cJSON *j = kvb_json_parse(t, strlen(t), "t.json", msg, sizeof msg);
    assert_non_null(j);
    assert_string_equal(kvb_json_str_at(j, "command"), "run --out \"a b\" \xc3\xa9");
    assert_true(kvb_json_num_at(j, "ci.0") == 0.9);
    assert_true(isnan(kvb_json_num_at(j, "ci.1")));
    assert_null(kvb_json_at(j, "ci.2"));
    cJSON_Delete(j);
}

static void test_read_errors(void **state)
{
    (void)state;
    char msg[256];
    int err = 0;
    assert_null(kvb_json_load(path_in("nope.json"), &err, msg, sizeof msg));
    assert_int_equal(err, ENOENT);
    assert_non_null(strstr(msg, "nope.json': No such file"));
    put("cut.json", "{\"a\": 1,\n \"b\": [1, 2");
    msg[0] = 0;
    assert_null(kvb_json_load(path_in("cut.json"), &err, msg, sizeof msg));
    assert_int_equal(err, EBADMSG);
    assert_non_null(strstr(msg, "cut.json' line 2: not valid JSON"));
    assert_non_null(strstr(msg, "truncated"));
    put("bad.json", "{\"a\": 1}\n{\"b\": 2}\n");
    assert_null(kvb_json_load(path_in("bad.json"), &err, msg, sizeof msg));
    assert_non_null(strstr(msg, "bad.json' line 2: not valid JSON"));
    assert_null(strstr(msg, "truncated"));
    put("nan.json", "{\"a\": nan}");
    assert_null(kvb_json_load(path_in("nan.json"), &err, msg, sizeof msg));
    put("ok.json", "  {\"a\": [1]}  \n\n");
    cJSON *j = kvb_json_load(path_in("ok.json"), &err, msg, sizeof msg);
    assert_non_null(j);
    assert_int_equal(err, 0);
    cJSON_Delete(j);
    /* the line of each element, for messages */
    const char *gb = "{\"context\": {\"x\": [\"benchmarks\", {\"a\": 1}]},\n \"benchmarks\": [\n"
                     "  {\"name\": \"a\\\"]\"},\n  {\"name\": \"b\"}, 7,\n  [1, 2]\n ]}\n";
    int lines[8];
    assert_int_equal(kvb_json_elem_lines(gb, "benchmarks", lines, 8), 4);
    assert_int_equal(lines[0], 3);
    assert_int_equal(lines[1], 4);
    assert_int_equal(lines[2], 4);
    assert_int_equal(lines[3], 5);
    assert_int_equal(kvb_json_elem_lines(gb, "none", lines, 8), 0);
    assert_int_equal(kvb_json_elem_lines("{\"b\": []}", "b", lines, 8), 0);
}

/* ---- reading CSV ------------------------------------------------------------- */

static void test_csv(void **state)
{
    (void)state;
    /* a samples field of 20000 bytes: read whole, the row after it intact */
    size_t big = 20000;
    char *text = malloc(big + 256);
    assert_non_null(text);
    int k = snprintf(text, big + 256, "case,samples_ns,after\n\"a,b\",");
    while ((size_t)k < big) k += snprintf(text + k, big + 256 - (size_t)k, "123456;");
    k += snprintf(text + k, big + 256 - (size_t)k, "9,x\r\n\"say \"\"hi\"\"\",,\n\nlast,1,2");
    put("t.csv", text);
    free(text);
    kvb_csv c;
    char msg[256];
    assert_int_equal(kvb_csv_open(&c, path_in("t.csv"), msg, sizeof msg), 0);
    assert_int_equal(kvb_csv_next(&c), 1);
    assert_int_equal(kvb_csv_header(&c), 0);
    int c_s = kvb_csv_column(&c, "samples_ns"), c_a = kvb_csv_column(&c, "after");
    assert_int_equal(c_s, 1);
    assert_int_equal(kvb_csv_column(&c, "nope"), -1);
    assert_int_equal(kvb_csv_next(&c), 1);
    assert_int_equal(c.n, 3);
    assert_string_equal(kvb_csv_get(&c, 0), "a,b");
    assert_true(strlen(kvb_csv_get(&c, c_s)) > big - 64);
    assert_string_equal(kvb_csv_get(&c, c_s) + strlen(kvb_csv_get(&c, c_s)) - 8, "123456;9");
    assert_string_equal(kvb_csv_get(&c, c_a), "x");
    assert_false(c.cut);
    assert_int_equal(kvb_csv_next(&c), 1);
    assert_int_equal(c.no, 3);
    assert_string_equal(kvb_csv_get(&c, 0), "say \"hi\"");
    assert_string_equal(kvb_csv_get(&c, 1), "");
    assert_string_equal(kvb_csv_get(&c, 2), "");
    assert_null(kvb_csv_get(&c, 3));
    assert_null(kvb_csv_get(&c, -1));
    assert_int_equal(kvb_csv_next(&c), 1);
    assert_int_equal(c.n, 0); /* an empty line */
    assert_int_equal(kvb_csv_next(&c), 1);
    assert_true(c.cut); /* no end of line: cut short */
    assert_string_equal(kvb_csv_get(&c, c_a), "2");
    assert_int_equal(kvb_csv_next(&c), 0);
    kvb_csv_close(&c);
    assert_int_equal(kvb_csv_open(&c, path_in("none.csv"), msg, sizeof msg), ENOENT);
    assert_non_null(strstr(msg, "none.csv': No such file"));
}

/* ---- files and directories that appear whole ------------------------------------ */

static void test_afile(void **state)
{
    (void)state;
    char msg[512];
    kvb_afile a;
    put("f.txt", "old\n");
    assert_int_equal(kvb_afile_open(&a, path_in("f.txt"), msg, sizeof msg), 0);
    assert_non_null(strstr(a.tmp, "/f.txt."));
    assert_string_equal(a.tmp + strlen(a.tmp) - 4, ".tmp");
    fputs("new\n", a.f);
    char *before = kvb_slurp(path_in("f.txt"));
    assert_string_equal(before, "old\n"); /* not there until committed */
    free(before);
    struct stat st;
    assert_int_equal(stat(a.tmp, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_int_equal(kvb_afile_commit(&a, msg, sizeof msg), 0);
    char *after = kvb_slurp(path_in("f.txt"));
    assert_string_equal(after, "new\n");
    free(after);
    assert_int_not_equal(stat(a.tmp, &st), 0);
    /* aborted: the target untouched, no temporary left */
    assert_int_equal(kvb_afile_open(&a, path_in("f.txt"), msg, sizeof msg), 0);
    fputs("lost\n", a.f);
    kvb_afile_abort(&a);
    assert_int_not_equal(stat(a.tmp, &st), 0);
    after = kvb_slurp(path_in("f.txt"));
    assert_string_equal(after, "new\n");
    free(after);
    /* commit_new never replaces: the existing file kept, the temporary gone */
    assert_int_equal(kvb_afile_open(&a, path_in("f.txt"), msg, sizeof msg), 0);
    fputs("intruder\n", a.f);
    assert_int_equal(kvb_afile_commit_new(&a, msg, sizeof msg), EEXIST);
    assert_non_null(strstr(msg, "exists"));
    assert_int_not_equal(stat(a.tmp, &st), 0);
    after = kvb_slurp(path_in("f.txt"));
    assert_string_equal(after, "new\n");
    free(after);
    assert_int_equal(kvb_afile_open(&a, path_in("g.txt"), msg, sizeof msg), 0);
    fputs("g\n", a.f);
    assert_int_equal(kvb_afile_commit_new(&a, msg, sizeof msg), 0);
    assert_int_not_equal(stat(a.tmp, &st), 0);
    /* a directory that is not there: the cause, naming the target */
    assert_int_equal(kvb_afile_open(&a, path_in("no/dir/f.txt"), msg, sizeof msg), ENOENT);
    assert_non_null(strstr(msg, "no/dir/f.txt': No such file or directory"));
    /* a full disk: the cause at commit, no file under the name, no temporary */
    if (access("/dev/full", W_OK) == 0) {
        assert_int_equal(kvb_afile_open(&a, path_in("full.txt"), msg, sizeof msg), 0);
        FILE *full = freopen("/dev/full", "w", a.f);
        assert_non_null(full);
        a.f = full;
        fputs("x", a.f);
        assert_int_equal(kvb_afile_commit(&a, msg, sizeof msg), ENOSPC);
        assert_non_null(strstr(msg, "No space left on device"));
        assert_int_not_equal(stat(a.tmp, &st), 0);
        assert_int_not_equal(stat(path_in("full.txt"), &st), 0);
    }
}

static void test_partial(void **state)
{
    (void)state;
    char msg[512], partial[300];
    assert_int_equal(kvb_partial_name(path_in("run"), partial, sizeof partial), 0);
    assert_string_equal(partial + strlen(partial) - 12, "/run.partial");
    assert_int_equal(kvb_partial_name(path_in("run"), partial, 8), -1);
    assert_int_equal(kvb_partial_name(path_in("run"), partial, sizeof partial), 0);
    assert_int_equal(mkdir(partial, 0755), 0);
    put("run.partial/a.csv", "a\n");
    /* an empty directory that appeared under the name: never replaced */
    assert_int_equal(mkdir(path_in("run"), 0755), 0);
    assert_int_equal(kvb_partial_publish(partial, path_in("run"), msg, sizeof msg), EEXIST);
    assert_non_null(strstr(msg, "cannot rename"));
    assert_int_equal(rmdir(path_in("run")), 0);
    assert_int_equal(kvb_partial_publish(partial, path_in("run"), msg, sizeof msg), 0);
    char *a = kvb_slurp(path_in("run/a.csv"));
    assert_string_equal(a, "a\n");
    free(a);
    kvb_rmtree(path_in("run"));
    struct stat st;
    assert_int_not_equal(lstat(path_in("run"), &st), 0);
    kvb_rmtree(path_in("run")); /* nothing there: nothing done */
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/kvbench-test-io.XXXXXX");
    if (!mkdtemp(root)) {
        perror("test_io: mkdtemp");
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_writer_layout),
        cmocka_unit_test(test_read_any_layout),
        cmocka_unit_test(test_read_errors),
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_afile),
        cmocka_unit_test(test_partial),
    };
    int failed = cmocka_run_group_tests_name("io", tests, NULL, NULL);
    kvb_rmtree(root);
    return failed ? 1 : 0;
}
