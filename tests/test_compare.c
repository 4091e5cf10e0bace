/* test_compare.c: compare's verdicts on deterministic figures and its readers'
 * refusals (compare.h). The tolerance cases use the figures real runs gave:
 * the f32 errors that moved with issue 5's summation order (2.406e-7 ->
 * 2.648e-7, 3.627e-7 -> 4.516e-7) must pass, a q8 error a tenth larger must
 * not. Each reader test writes a small result directory under a temporary
 * directory, damages one thing, and checks the load is refused with a message
 * naming the file (and line), and that JSON is read whatever its layout. */
#define _XOPEN_SOURCE 700
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../analysis/compare.h"

/* ---- the tolerance floor ---------------------------------------------------- */

static const char F32_4K[] =
    "attend-x:attend(backend=contiguous,dt=f32,nh=32,nkv=8,hd=128,ctx=4096)/rel_err";
static const char F32_16K[] =
    "attend-x:attend(backend=paged,dt=f32,bs=4,nh=32,nkv=8,hd=128,ctx=16384)/rel_err";
static const char Q8_4K[] =
    "attend-x:attend(backend=quant,dt=q8,g=32,r=0,keys=token,nh=32,nkv=8,hd=128,ctx=4096)/rel_err";
static const char F16_4K[] =
    "attend-x:attend(backend=contiguous,dt=f16,nh=32,nkv=8,hd=128,ctx=4096)/rel_err";
static const char Q8_KL[] = "quality-stories15m:quality(quant/q8/g16-r0-ktoken)/kl_mean";
static const char Q8_L5[] = "quality-stories15m:quality(quant/q8/g16-r0-ktoken)/layer5_rel_l2";

static kvb_verdict tol(const char *name, double base, double new_)
{
    kvb_cmp_opts o = {0.05, 0.10, 0.05, 1u << KVB_CMP_TOL};   /* compare's defaults */
    return kvb_cmp_judge_floor(KVB_CMP_TOL, kvb_cmp_tol_floor(name), &base, 1, &new_, 1, &o)
        .verdict;
}

static void test_tolerance_floor(void **state)
{
    (void)state;
    /* the floors by storage type: f32's is round-off of long sums; coarse types 1/64 of a step */
    assert_true(fabs(kvb_cmp_tol_floor(F32_4K) - 0x1p-17) < 1e-12);
    assert_true(fabs(kvb_cmp_tol_floor(F16_4K) - 0x1p-17) < 1e-12);
    assert_true(fabs(kvb_cmp_tol_floor(Q8_4K) - 0x1p-13) < 1e-12);
    assert_true(fabs(kvb_cmp_tol_floor(Q8_L5) - 0x1p-13) < 1e-12);
    assert_true(fabs(kvb_cmp_tol_floor(Q8_KL) - 0x1p-22) < 1e-15);
    assert_true(fabs(kvb_cmp_tol_floor("quality(quant/q4/g16-r0-ktoken)/layer0_rel_l2") - 0x1p-9) <
                1e-12);
    assert_true(fabs(kvb_cmp_tol_floor("some/unknown/figure") - 0x1p-17) < 1e-12);
    /* a summation-order change of the f32 kernels (issue 5, measured): round-off, passes */
    assert_int_equal(tol(F32_4K, 2.406e-07, 2.648e-07), KVB_VERDICT_SAME);
    assert_int_equal(tol(F32_16K, 3.627e-07, 4.516e-07), KVB_VERDICT_SAME);
    /* even doubled, f32 round-off stays round-off */
    assert_int_equal(tol(F32_16K, 3.627e-07, 7.3e-07), KVB_VERDICT_SAME);
    /* but an f32 path that loses a row (errors of 1e-4 and up) is caught */
    assert_int_equal(tol(F32_16K, 3.627e-07, 1e-4), KVB_VERDICT_REGRESSED);
    /* a q8 error a tenth larger (a coarser step) regresses; its round-off does not */
    assert_int_equal(tol(Q8_4K, 5.331e-03, 5.331e-03 * 1.10), KVB_VERDICT_REGRESSED);
    assert_int_equal(tol(Q8_4K, 5.331e-03, 5.331e-03 + 1e-6), KVB_VERDICT_SAME);
    assert_int_equal(tol(Q8_L5, 2.3212e-03, 2.3212e-03 * 1.10), KVB_VERDICT_REGRESSED);
    assert_int_equal(tol(Q8_L5, 2.3212e-03, 2.3153e-03),
                     KVB_VERDICT_SAME); /* Xeon vs AMD kernels */
    /* KL grows with the square of the error: a tenth more error is a fifth more KL */
    assert_int_equal(tol(Q8_KL, 5.194e-06, 5.194e-06 * 1.21), KVB_VERDICT_REGRESSED);
    assert_int_equal(tol(Q8_KL, 5.194e-06, 5.1886e-06), KVB_VERDICT_SAME);
    /* f16 storage rounding a tenth worse */
    assert_int_equal(tol(F16_4K, 2.234e-04, 2.234e-04 * 1.10), KVB_VERDICT_REGRESSED);
    /* smaller errors beyond the floor are improvements */
    assert_int_equal(tol(Q8_4K, 5.331e-03, 4.5e-03), KVB_VERDICT_IMPROVED);
    /* kvb_cmp_judge keeps no floor */
    kvb_cmp_opts o = {0.05, 0.10, 0.05, 1u << KVB_CMP_TOL};
    double b = 2.406e-07, n = 2.648e-07;
    assert_int_equal(kvb_cmp_judge(KVB_CMP_TOL, &b, 1, &n, 1, &o).verdict, KVB_VERDICT_REGRESSED);
}

/* ---- the readers: damaged input is refused --------------------------------- */

static char tmp[256];

static void put(const char *rel, const char *text)
{
    char p[512], d[512];
    snprintf(p, sizeof p, "%s/%s", tmp, rel);
    for (char *s = p + strlen(tmp) + 1; (s = strchr(s, '/')) != NULL; s++) {
        snprintf(d, sizeof d, "%.*s", (int)(s - p), p);
        mkdir(d, 0755);
    }
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void rmtree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

#define ATT_HEAD "case,backend,dtype,ctx,kv_bytes,bytes_per_token,rel_err,threads,samples_ns\n"
#define ATT_C                                                                                      \
    "\"attend(backend=contiguous,dt=f32,ctx=64)\",contiguous,f32,64,4096,64.0,2.4e-07,1,100;110;"  \
    "120\n"
#define ATT_P                                                                                      \
    "\"attend(backend=paged,dt=f32,bs=4,ctx=64)\",paged,f32,64,4096,64.0,2.4e-07,1,130;140;150\n"

/* Loads tmp/<rel>; returns the status, msg gets the refusal. */
static kvb_status load(const char *rel, kvb_cmp_set *s, char *msg, size_t n)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmp, rel);
    msg[0] = 0;
    return kvb_cmp_load(s, p, msg, n);
}

static void refused(const char *rel, const char *needle1, const char *needle2)
{
    kvb_cmp_set s;
    char msg[1024];
    kvb_status st = load(rel, &s, msg, sizeof msg);
    if (st == KVB_STATUS_OK) {
        kvb_cmp_free(&s);
        fail_msg("%s was accepted (%d cases); wanted a refusal naming '%s'", rel, s.n, needle1);
    }
    if (!strstr(msg, needle1) || (needle2 && !strstr(msg, needle2)))
        fail_msg("%s: refusal '%s' lacks '%s' / '%s'", rel, msg, needle1, needle2 ? needle2 : "");
}

static void test_readers_refuse(void **state)
{
    (void)state;
    snprintf(tmp, sizeof tmp, "/tmp/kvbench-test-compare-%ld", (long)getpid());
    rmtree(tmp);
    mkdir(tmp, 0755);
    kvb_cmp_set s;
    char msg[1024];
    /* a good sweep loads: 2 rows' times, bytes, errors and one ratio */
    put("good/points/attend-x/attend.csv", ATT_HEAD ATT_C ATT_P);
    put("good/points/attend-x.status", "ok 1.0\n");
    assert_int_equal(load("good", &s, msg, sizeof msg), KVB_STATUS_OK);
    assert_int_equal(s.n, 7);
    kvb_cmp_free(&s);
    /* truncated: the last row cut in the middle */
    put("trunc/points/attend-x/attend.csv",
        ATT_HEAD ATT_C "\"attend(backend=paged,dt=f32,bs=4,ctx=64)\",paged,f3");
    refused("trunc", "trunc/points/attend-x/attend.csv' line 3", "truncated");
    /* a short row in the middle (fields lost) */
    put("short/points/attend-x/attend.csv",
        ATT_HEAD "\"attend(backend=contiguous,dt=f32,ctx=64)\",contiguous,f32\n" ATT_P);
    refused("short", "short/points/attend-x/attend.csv' line 2", "3 fields");
    /* impossible times: negative, zero, not a number */
    put("neg/points/attend-x/attend.csv",
        ATT_HEAD ATT_C "\"attend(backend=paged,dt=f32,bs=4,ctx=64)\",paged,f32,64,4096,64.0,2.4e-"
                       "07,1,130;-140;150\n");
    refused("neg", "neg/points/attend-x/attend.csv' line 3", "'-140'");
    put("zero/points/attend-x/attend.csv",
        ATT_HEAD ATT_C "\"attend(backend=paged,dt=f32,bs=4,ctx=64)\",paged,f32,64,4096,64.0,2.4e-"
                       "07,1,0;140;150\n");
    refused("zero", "line 3", "samples_ns '0'");
    put("nan/points/attend-x/attend.csv",
        ATT_HEAD ATT_C "\"attend(backend=paged,dt=f32,bs=4,ctx=64)\",paged,f32,64,4096,64.0,2.4e-"
                       "07,1,130;fast;150\n");
    refused("nan", "line 3", "'fast'");
    /* negative bytes */
    put("bytes/points/attend-x/attend.csv",
        ATT_HEAD ATT_C "\"attend(backend=paged,dt=f32,bs=4,ctx=64)\",paged,f32,64,4096,-64.0,2.4e-"
                       "07,1,130;140;150\n");
    refused("bytes", "line 3", "bytes_per_token '-64.0'");
    /* one case twice in a file (--backend contiguous,contiguous) */
    put("dup/points/attend-x/attend.csv", ATT_HEAD ATT_C ATT_C);
    refused("dup", "dup/points/attend-x/attend.csv' line 3", "comes twice");
    /* decode runs: a step time of 0, a label whose steps repeat (two points of one label) */
    const char *tok_head = "backend,dtype,mode,rep,step,position,token,step_ns,attn_ns\n";
    char buf[2048];
    snprintf(buf, sizeof buf,
             "%scontiguous,f32,grow,0,0,1,5,1000,10\ncontiguous,f32,grow,0,1,2,5,0,10\n", tok_head);
    put("tok0/tokens.csv", buf);
    refused("tok0", "tok0/tokens.csv' line 3", "step_ns '0'");
    snprintf(buf, sizeof buf,
             "%scontiguous,f32,grow,0,0,1,5,1000,10\ncontiguous,f32,grow,0,1,2,5,900,10\n"
             "contiguous,f32,grow,0,0,1,5,1000,10\ncontiguous,f32,grow,0,1,2,5,900,10\n",
             tok_head);
    put("tokdup/tokens.csv", buf);
    refused("tokdup", "tokdup/tokens.csv' line 4", "comes twice");
    /* the prefill's row (phase prefill, step -1) is not part of the decode total */
    put("prefill/tokens.csv", "backend,dtype,mode,rep,step,position,token,step_ns,attn_ns,phase\n"
                              "contiguous,f32,grow,0,-1,15,5,7000,10,prefill\ncontiguous,f32,grow,"
                              "0,0,16,5,1000,10,decode\n"
                              "contiguous,f32,grow,0,1,17,5,900,10,decode\n");
    assert_int_equal(load("prefill", &s, msg, sizeof msg), KVB_STATUS_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.c[0].n, 1);
    assert_true(s.c[0].v[0] == 1900);
    kvb_cmp_free(&s);
    put("sumdup/tokens.csv", tok_head);
    put("sumdup/summary.json",
        "{\"points\": [\n {\"label\": \"contiguous/f32/grow\", \"cache_bytes\": {\"used\": 10, "
        "\"reserved\": 20}},\n {\"label\": \"contiguous/f32/grow\", \"cache_bytes\": {\"used\": "
        "10, \"reserved\": 20}}]}\n");
    refused("sumdup", "sumdup/summary.json", "two results named");
    put("sumneg/tokens.csv", tok_head);
    put("sumneg/summary.json",
        "{\"points\": [\n {\"label\": \"contiguous/f32/grow\", \"cache_bytes\": {\"used\": -10, "
        "\"reserved\": 20}}]}\n");
    refused("sumneg", "sumneg/summary.json", "negative");
    /* summary.json in another layout (keys reordered, no spaces, one line) reads the same */
    put("sumlay/tokens.csv", tok_head);
    put("sumlay/summary.json", "{\"points\":[{\"cache_bytes\":{\"reserved\":20,\"used\":10},"
        "\"label\":\"contiguous/f32/grow\"},{\"label\" : \"paged/f32/bs16\" ,\n\"cache_bytes\" :\n"
        "{ \"used\" : 1.2e1 , \"reserved\" : 32 } }]}");
    assert_int_equal(load("sumlay", &s, msg, sizeof msg), KVB_STATUS_OK);
    assert_int_equal(s.n, 4);
    static const struct { const char *name; double v; } bytes[] = {
        {"decode(contiguous/f32/grow)/used_bytes", 10},
        {"decode(contiguous/f32/grow)/reserved_bytes", 20},
        {"decode(paged/f32/bs16)/used_bytes", 12}, {"decode(paged/f32/bs16)/reserved_bytes", 32}};
    for (int i = 0; i < 4; i++) {
        assert_string_equal(s.c[i].name, bytes[i].name);
        assert_true(s.c[i].kind == KVB_CMP_EXACT && s.c[i].n == 1 && s.c[i].v[0] == bytes[i].v);
    }
    kvb_cmp_free(&s);
    /* a summary.json that is not JSON: refused with its line, never read as no bytes */
    put("sumbad/tokens.csv", tok_head);
    put("sumbad/summary.json",
        "{\"points\": [\n {\"label\": \"contiguous/f32/grow\", \"cache_bytes\": {\"used\": 10,\n");
    refused("sumbad", "sumbad/summary.json' line 2: not valid JSON", "truncated");
    /* a row of 20 KB (a long extra column before the samples) is read whole */
    char *wide = malloc(32 << 10);
    assert_non_null(wide);
    int k = snprintf(wide, 32 << 10, "case,backend,dtype,ctx,note,samples_ns\n"
                                     "\"attend(dt=f32)\",contiguous,f32,64,");
    while (k < 20000) k += snprintf(wide + k, (32 << 10) - (size_t)k, "padding ");
    snprintf(wide + k, (32 << 10) - (size_t)k, ",100;110;120\n");
    put("wide/points/attend-x/attend.csv", wide);
    free(wide);
    assert_int_equal(load("wide", &s, msg, sizeof msg), KVB_STATUS_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.c[0].n, 3);
    assert_true(s.c[0].v[2] == 120);
    kvb_cmp_free(&s);
    /* Google Benchmark: a failed run, a zero or missing time, a repetition twice */
    const char *gb_head =
        "{\n  \"context\": {\"host_name\": \"h\", \"num_cpus\": 2, \"mhz_per_cpu\": 2000},\n"
        "  \"benchmarks\": [\n";
    snprintf(buf, sizeof buf,
             "%s    {\"name\": \"a\", \"run_name\": \"a\", \"run_type\": \"iteration\", "
             "\"repetition_index\": 0, \"real_time\": 5.0, \"time_unit\": \"us\"},\n"
             "    {\"name\": \"b\", \"run_name\": \"b\", \"run_type\": \"iteration\", "
             "\"repetition_index\": 0, "
             "\"error_occurred\": true, \"error_message\": \"attend failed\", \"real_time\": 0, "
             "\"time_unit\": \"us\"}\n  ]\n}\n",
             gb_head);
    put("gb_err.json", buf);
    refused("gb_err.json", "gb_err.json' line 5", "attend failed");
    snprintf(buf, sizeof buf,
             "%s    {\"name\": \"a\", \"run_name\": \"a\", \"run_type\": \"iteration\", "
             "\"repetition_index\": 0, \"real_time\": 0, \"time_unit\": \"us\"}\n  ]\n}\n",
             gb_head);
    put("gb_zero.json", buf);
    refused("gb_zero.json", "gb_zero.json' line 4", "real_time 0");
    snprintf(buf, sizeof buf,
             "%s    {\"name\": \"a\", \"run_name\": \"a\", \"run_type\": \"iteration\", "
             "\"repetition_index\": 0, \"real_time\": -3, \"time_unit\": \"us\"}\n  ]\n}\n",
             gb_head);
    put("gb_neg.json", buf);
    refused("gb_neg.json", "line 4", "negative");
    snprintf(buf, sizeof buf,
             "%s    {\"name\": \"a\", \"run_name\": \"a\", \"run_type\": \"iteration\", "
             "\"repetition_index\": 0, \"real_time\": \"soon\", \"time_unit\": \"us\"}\n  ]\n}\n",
             gb_head);
    put("gb_str.json", buf);
    refused("gb_str.json", "line 4", "not a number");
    snprintf(buf, sizeof buf,
             "%s    {\"name\": \"a\", \"run_name\": \"a\", \"run_type\": \"iteration\", "
             "\"repetition_index\": 0, \"real_time\": 5, \"time_unit\": \"us\"},\n"
             "    {\"name\": \"a\", \"run_name\": \"a\", \"run_type\": \"iteration\", "
             "\"repetition_index\": 0, \"real_time\": 6, \"time_unit\": \"us\"}\n  ]\n}\n",
             gb_head);
    put("gb_dup.json", buf);
    refused("gb_dup.json", "line 5", "comes twice");
    /* repetitions of one case are one case, aggregates are left out */
    snprintf(buf, sizeof buf,
             "%s    {\"name\": \"a\", \"run_name\": \"a\", \"run_type\": \"iteration\", "
             "\"repetition_index\": 0, \"real_time\": 5, \"time_unit\": \"us\"},\n"
             "    {\"name\": \"a\", \"run_name\": \"a\", \"run_type\": \"iteration\", "
             "\"repetition_index\": 1, \"real_time\": 6, \"time_unit\": \"us\"},\n"
             "    {\"name\": \"a_mean\", \"run_name\": \"a\", \"run_type\": \"aggregate\", "
             "\"real_time\": 5.5, \"time_unit\": \"us\"}\n  ]\n}\n",
             gb_head);
    put("gb_ok.json", buf);
    assert_int_equal(load("gb_ok.json", &s, msg, sizeof msg), KVB_STATUS_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.c[0].n, 2);
    assert_string_equal(s.machine, "2 CPUs at 2000 MHz @ h");
    kvb_cmp_free(&s);
    /* the same runs in another layout: keys in any order, spaces before colons, one line */
    put("gb_lay.json", "{\"benchmarks\" : [{\"time_unit\" : \"us\", \"real_time\" : 5, "
        "\"repetition_index\" : 0, \"run_type\" : \"iteration\", \"run_name\" : \"a\"}, "
        "{\"run_name\":\"a\",\"real_time\":6e0,"
        "\"time_unit\":\"us\",\"run_type\":\"iteration\",\"repetition_index\":1}],"
        "\"context\" : {\"mhz_per_cpu\" : 2000, \"host_name\" : \"h\", \"num_cpus\" : 2}}");
    assert_int_equal(load("gb_lay.json", &s, msg, sizeof msg), KVB_STATUS_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.c[0].n, 2);
    assert_true(s.c[0].v[0] == 5000 && s.c[0].v[1] == 6000);
    assert_string_equal(s.machine, "2 CPUs at 2000 MHz @ h");
    kvb_cmp_free(&s);
    /* cut short: refused with the line where it ends */
    buf[strlen(buf) / 2] = 0;
    put("gb_cut.json", buf);
    refused("gb_cut.json", "gb_cut.json' line", "truncated");
    /* a pool of runs: a run that holds nothing, or is not a directory, is refused by name */
    put("pool/runs/1/points/attend-x/attend.csv", ATT_HEAD ATT_C ATT_P);
    put("pool/runs/2/machine.txt", "host: h\n");
    refused("pool", "pool/runs/2'", "holds no kvbench results");
    put("pool2/runs/1/points/attend-x/attend.csv", ATT_HEAD ATT_C ATT_P);
    put("pool2/runs/2", "not a directory\n");
    refused("pool2", "pool2/runs/2'", "not a result directory");
    /* the pool of two good runs doubles each case's samples */
    put("pool3/runs/1/points/attend-x/attend.csv", ATT_HEAD ATT_C ATT_P);
    put("pool3/runs/2/points/attend-x/attend.csv", ATT_HEAD ATT_C ATT_P);
    assert_int_equal(load("pool3", &s, msg, sizeof msg), KVB_STATUS_OK);
    assert_int_equal(s.n, 7);
    assert_int_equal(s.c[0].n, 6);
    kvb_cmp_free(&s);
    /* a point marked ok whose file is gone: damaged */
    put("gone/points/attend-x.status", "ok 1.0\n");
    put("gone/points/attend-x/log.txt", "\n");
    put("gone/points/attend-y/attend.csv", ATT_HEAD ATT_C);
    refused("gone", "gone/points/attend-x/attend.csv' is missing", "marked ok");
    /* a point that failed: no cases, counted for the caller */
    put("failed/points/attend-x.status", "failed 1.0\n");
    put("failed/points/attend-x/log.txt", "\n");
    put("failed/points/attend-y/attend.csv", ATT_HEAD ATT_C);
    assert_int_equal(load("failed", &s, msg, sizeof msg), KVB_STATUS_OK);
    assert_int_equal(s.unfinished, 1);
    assert_non_null(strstr(s.first_unfinished, "attend-x (failed)"));
    kvb_cmp_free(&s);
    /* a STALE file beside a baseline's runs/ is read */
    put("pool3/STALE", "since abc123: kernels changed\nmore\n");
    assert_int_equal(load("pool3", &s, msg, sizeof msg), KVB_STATUS_OK);
    assert_string_equal(s.stale, "since abc123: kernels changed");
    kvb_cmp_free(&s);
    /* kernel columns tag the error cases; pooled runs that disagree are "mixed" */
    put("kern/runs/1/points/attend-x/attend.csv",
        "case,backend,dtype,ctx,rel_err,kernel,qkernel,samples_ns\n"
        "\"attend(dt=q8)\",quant,q8,64,5e-3,avx512,avx512_vnni,100\n");
    put("kern/runs/2/points/attend-x/attend.csv",
        "case,backend,dtype,ctx,rel_err,kernel,qkernel,samples_ns\n"
        "\"attend(dt=q8)\",quant,q8,64,5e-3,avx512,portable,100\n");
    assert_int_equal(load("kern/runs/1", &s, msg, sizeof msg), KVB_STATUS_OK);
    for (int i = 0; i < s.n; i++)
        if (s.c[i].kind == KVB_CMP_TOL) assert_string_equal(s.c[i].kernel, "avx512/avx512_vnni");
    kvb_cmp_free(&s);
    assert_int_equal(load("kern", &s, msg, sizeof msg), KVB_STATUS_OK);
    for (int i = 0; i < s.n; i++)
        if (s.c[i].kind == KVB_CMP_TOL) assert_string_equal(s.c[i].kernel, "mixed");
    kvb_cmp_free(&s);
    rmtree(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tolerance_floor),
        cmocka_unit_test(test_readers_refuse),
    };
    return cmocka_run_group_tests_name("compare", tests, NULL, NULL);
}
