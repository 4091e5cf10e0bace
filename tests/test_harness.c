/* test_harness.c: what the measurements stand on (cmocka).
 *
 * The CPU key that names a baseline folder, hwloc topology and thread pinning
 * (a threaded cache's workers are bound when create returns), sweep definitions
 * and their expansion into points (every named sweep in the repository loads),
 * the serving simulation (paging holds more live bytes per byte reserved), and
 * the per-point summary (medians, bytes, fitted exponents), and the float64
 * attention every attend and quality figure's error is measured against.
 * Usage: test_harness [REGEX] (or KVB_TEST_FILTER=REGEX): see testlib.h. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/datadir.h"
#include "../base/probe.h"
#include "../harness/attend_bench.h"
#include "../harness/results.h"
#include "../harness/run.h"
#include "../harness/serve.h"
#include "../harness/sweep.h"
#include "../harness/topo.h"
#include "../model/model.h"
#include "../impls/kvb_backend.h"
#include "testlib.h"

/* The baseline folder of a CPU model: make regress finds it by this name. */
static void test_cpu_key(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"Intel(R) Xeon(R) Processor", "intel-r-xeon-r-processor"},
        {"AMD EPYC", "amd-epyc"},
        {"  AMD Ryzen 9 7950X 16-Core Processor  ", "amd-ryzen-9-7950x-16-core-processor"},
        {"Neoverse-N1", "neoverse-n1"},
        {"(R)", "r"},
        {"() --", "unknown"},
        {"", "unknown"},
    };
    char key[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kvb_cpu_key_of(cases[i][0], key, sizeof key);
        assert_string_equal(key, cases[i][1]);
    }
    kvb_cpu_key_of("Intel(R) Xeon(R) Processor", key, 9);   /* cut short: no dangling dash */
    assert_string_equal(key, "intel-r");
    kvb_cpu_key(key, sizeof key);                   /* this machine's: a folder name */
    size_t len = strlen(key);
    assert_true(len > 0 && key[0] != '-' && key[len - 1] != '-');
    for (size_t i = 0; i < len; i++)
        assert_true((key[i] >= 'a' && key[i] <= 'z') || (key[i] >= '0' && key[i] <= '9') ||
                    (key[i] == '-' && key[i + 1] != '-'));
}

static void test_topology_and_pin(void **state)
{
    (void)state;
    kvb_topo t;
    char msg[256];
    if (kvb_topo_init(&t, msg, sizeof msg) != KVB_STATUS_OK) { print_message("%s\n", msg); skip(); }
    /* some virtual machines hide packages or cores from hwloc: only what must hold */
    assert_true(t.pus >= 1 && t.pus >= t.cores);
    if (t.packages > 0 && t.cores > 0) assert_true(t.cores >= t.packages);
    for (int i = 0; i < KVB_TOPO_CACHE_LEVELS; i++)
        if (t.cache_count[i])
            assert_true(t.cache_bytes[i] >= 1024); /* a cache level is at least 1 KiB */
    kvb_pin p;
    assert_int_equal(kvb_pin_parse("spread", &p), KVB_STATUS_OK);
    assert_int_equal(p, KVB_PIN_SPREAD);
    assert_int_equal(kvb_pin_parse("loose", &p), KVB_STATUS_INVALID_ARG);
    int core, cpu;
    assert_int_equal(kvb_topo_pin(&t, KVB_PIN_NONE, 0, &core, &cpu, msg, sizeof msg),
                     KVB_STATUS_OK);
    assert_int_equal(core, -1);
    /* thread i of a compact pool lands on core i (mod cores), verified by hwloc */
    for (int i = 0; i < 2 * t.cores && i < 8; i++) {
        kvb_status st = kvb_topo_pin(&t, KVB_PIN_COMPACT, i, &core, &cpu, msg, sizeof msg);
        if (st == KVB_STATUS_UNSUPPORTED) { print_message("pin: %s\n", msg); break; }
        assert_int_equal(st, KVB_STATUS_OK);
        assert_int_equal(core, i % t.cores);
        assert_true(cpu >= 0);
    }
    /* a threaded cache's workers bind themselves through kvb_options.thread_start:
     * the record is complete when create returns */
    kvb_pin_set ps;
    if (kvb_pin_set_init(&ps, &t, KVB_PIN_COMPACT) == KVB_STATUS_OK) {
        kvb_shape sh = {1, 4, 2, 32, 64};
        kvb_options o = {.dtype = KVB_DTYPE_F32,
                         .alloc = KVB_ALLOC_GROW,
                         .max_seqs = 1,
                         .threads = 3,
                         .thread_start = kvb_pin_thread_start,
                         .thread_start_arg = &ps};
        static const char *const names[] = {"contiguous", "paged", "quant"};
        for (int bi = 0; bi < 3; bi++) {
            memset(ps.ran + 1, 0, sizeof ps.ran - sizeof ps.ran[0]);
            o.dtype = bi == 2 ? KVB_DTYPE_Q8 : KVB_DTYPE_F32;
            kvb_cache *c = kvbt_cache_new(kvb_backend_find(names[bi]), &sh, &o);
            assert_int_equal(kvb_pin_set_threads(&ps), 3);
            assert_int_equal(kvb_pin_set_bound(&ps), 3);
            for (int i = 0; i < 3; i++) assert_int_equal(ps.core[i], i % t.cores);
            kvb_cache_destroy(c);
        }
    } else
        print_message("pin set: %s\n", ps.note);
    kvb_topo_unpin(&t);                  /* the tests after this one run unbound again */
    kvb_topo_free(&t);
}

/* ---- sweeps: definitions and their expansion into points ------------------ */

static void test_sweep_expand(void **state)
{
    (void)state;
    kvb_sweep s;
    memset(&s, 0, sizeof s);
    char msg[512];
    static const char *const set[] = {"run.backends=nocache,contiguous,paged,quant",
                                      "run.dtypes = f32,f16,q8",
                                      "run.blocks=4,16",
                                      "run.threads=1,2",
                                      "run.tokens=64",
                                      "attend.backends=contiguous,paged,quant",
                                      "attend.dtypes=f32,q4",
                                      "attend.blocks=4,16",
                                      "quality.dtypes=q8,q2",
                                      "serve.backends=contiguous,paged",
                                      "run.tokens=32",
                                      "run.tokens@nocache=16"};
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++)
        assert_int_equal(kvb_sweep_set(&s, set[i], msg, sizeof msg), KVB_STATUS_OK);
    assert_int_equal(s.n, 11);                  /* run.tokens replaced, not added */
    kvb_sweep_point *p;
    int n = kvb_sweep_expand(&s, "/out", &p, msg, sizeof msg);
    /* run: nocache once per thread count (2), contiguous f32,f16 x 2 threads (4),
     * paged 2 types x 2 blocks x 2 threads (8), quant q8 x 2 (2); attend: contiguous
     * f32, paged f32 (blocks inside), quant q4 (3); quality 1; serve 1 */
    assert_int_equal(n, 16 + 3 + 1 + 1);
    int runs = 0, attends = 0, tokens32 = 0, tokens16 = 0;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < i; j++) assert_string_not_equal(p[i].id, p[j].id);
        int out = 0;
        for (int a = 0; a < p[i].argc; a++) {
            out |= strncmp(p[i].argv[a], "/out/points/", 12) == 0;
            tokens32 += a > 0 && strcmp(p[i].argv[a - 1], "--tokens") == 0 &&
                        strcmp(p[i].argv[a], "32") == 0;
            /* the per-backend value reaches no-cache's points only */
            if (a > 0 && strcmp(p[i].argv[a - 1], "--tokens") == 0 &&
                strcmp(p[i].argv[a], "16") == 0) {
                assert_non_null(strstr(p[i].id, "nocache"));
                tokens16++;
            }
            /* quantized types only on quant, paged block sizes only on paged */
            if (a > 0 && strcmp(p[i].argv[a - 1], "--dtype") == 0 && strcmp(p[i].kind, "run") == 0)
                assert_int_equal(strstr(p[i].id, "quant") != NULL, p[i].argv[a][0] == 'q');
            if (strcmp(p[i].argv[a], "--block") == 0 && strcmp(p[i].kind, "serve") != 0)
                assert_non_null(strstr(p[i].id, "paged"));
        }
        assert_true(out);
        assert_null(p[i].argv[p[i].argc]);
        runs += strcmp(p[i].kind, "run") == 0;
        attends += strcmp(p[i].kind, "attend") == 0;
    }
    assert_int_equal(runs, 16);
    assert_int_equal(attends, 3);
    assert_int_equal(tokens32, 14);
    assert_int_equal(tokens16, 2);
    assert_string_equal(p[0].id, "run-stories15m-nocache-f32-t1");
    free(p);
    /* bad input names the key or value */
    assert_int_equal(kvb_sweep_set(&s, "run.tokenz=5", msg, sizeof msg), KVB_STATUS_INVALID_ARG);
    assert_non_null(strstr(msg, "run.tokenz"));
    assert_int_equal(kvb_sweep_set(&s, "run.tokens", msg, sizeof msg), KVB_STATUS_INVALID_ARG);
    assert_int_equal(kvb_sweep_set(&s, "run.dtypes@paged=f16", msg, sizeof msg),
                     KVB_STATUS_INVALID_ARG);
    assert_non_null(strstr(msg, "KEY@BACKEND"));
    assert_int_equal(kvb_sweep_set(&s, "run.tokens=5;rm", msg, sizeof msg), KVB_STATUS_INVALID_ARG);
    assert_int_equal(kvb_sweep_set(&s, "attend.shapes=32x8", msg, sizeof msg), KVB_STATUS_OK);
    assert_int_equal(kvb_sweep_expand(&s, "/out", &p, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "32x8"));
    /* a preset names its model's KV shape; a path is read by the point's attend --model */
    {
        kvb_sweep ms;
        memset(&ms, 0, sizeof ms);
        assert_int_equal(kvb_sweep_set(&ms, "attend.backends=contiguous", msg, sizeof msg),
                         KVB_STATUS_OK);
        assert_int_equal(kvb_sweep_set(&ms, "attend.shapes=llama3-8b,/tmp/", msg, sizeof msg),
                         KVB_STATUS_OK);
        assert_int_equal(kvb_sweep_expand(&ms, "/out", &p, msg, sizeof msg), 2);
        assert_string_equal(p[0].id, "attend-llama3-8b-contiguous-f32-t1");
        assert_string_equal(p[1].id, "attend-tmp-contiguous-f32-t1");
        char line[2][1024] = {"", ""};
        for (int k = 0; k < 2; k++)
            for (int a = 0; a < p[k].argc; a++)
                snprintf(line[k] + strlen(line[k]), sizeof line[k] - strlen(line[k]), " %s",
                         p[k].argv[a]);
        assert_non_null(strstr(line[0], " --heads 32 --kv-heads 8 --head-dim 128"));
        assert_non_null(strstr(line[1], " --model /tmp/"));
        assert_null(strstr(line[1], "--heads"));
        free(p);
        assert_int_equal(kvb_sweep_set(&ms, "attend.shapes=no-such-preset", msg, sizeof msg),
                         KVB_STATUS_OK);
        assert_int_equal(kvb_sweep_expand(&ms, "/out", &p, msg, sizeof msg), -1);
        assert_non_null(strstr(msg, "no-such-preset"));
    }
    assert_int_equal(kvb_sweep_set(&s, "attend.shapes=32/8/128", msg, sizeof msg), KVB_STATUS_OK);
    assert_int_equal(kvb_sweep_set(&s, "run.budget=0", msg, sizeof msg), KVB_STATUS_OK);
    assert_int_equal(kvb_sweep_expand(&s, "/out", &p, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "budget"));
    kvb_sweep empty;
    memset(&empty, 0, sizeof empty);
    assert_int_equal(kvb_sweep_expand(&empty, "/out", &p, msg, sizeof msg), -1);
    /* every named sweep in the repository loads and expands */
    static const char *const named[] = {"bench/sweeps/smoke.sweep", "bench/sweeps/default.sweep",
                                        "bench/sweeps/long-context.sweep"};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        kvb_sweep d;
        char file[4096];
        memset(&d, 0, sizeof d);
        /* found from this binary's location, so the test runs from any directory */
        if (kvb_data_path(named[i], file, sizeof file) != 0)
            fail_msg("cannot find %s (looked at %s)", named[i], file);
        if (kvb_sweep_load(&d, file, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("%s", msg);
        int m = kvb_sweep_expand(&d, "/out", &p, msg, sizeof msg);
        if (m <= 0) fail_msg("%s: %s", named[i], msg);
        free(p);
    }
}

/* The serving simulation on a small shape: every backend decodes the same
 * tokens; paging holds more live bytes per byte reserved than a preallocated
 * store; forks share blocks only where the backend can share. */
static void test_serve_sim(void **state)
{
    (void)state;
    kvb_serve_config sc = {.shape = {2, 4, 2, 16, 96}, .n_requests = 24, .max_prompt = 32,
                           .max_output = 64, .lengths = KVB_LEN_UNIFORM, .fork = KVB_FORK_NONE,
                           .fork_n = 3, .attend = 1, .seed = 5};
    size_t tok = 2 * 2 * 2 * 16 * 4;
    sc.budget_bytes = 6 * 96 * tok;                       /* six requests at their longest */
    const kvb_backend *ct = kvb_backend_find("contiguous"), *pg = kvb_backend_find("paged");
    kvb_options pre = {.dtype = KVB_DTYPE_F32, .alloc = KVB_ALLOC_PREALLOC};
    kvb_options grow = {.dtype = KVB_DTYPE_F32, .alloc = KVB_ALLOC_GROW};
    kvb_options pag = {.dtype = KVB_DTYPE_F32, .alloc = KVB_ALLOC_GROW, .block_tokens = 8};
    for (int f = 0; f < KVB_FORK_COUNT; f++) {
        sc.fork = (kvb_fork_kind)f;
        kvb_serve_result rp, rg, rq;
        assert_int_equal(kvb_serve_run(ct, pre, &sc, &rp), KVB_STATUS_OK);
        assert_int_equal(kvb_serve_run(ct, grow, &sc, &rg), KVB_STATUS_OK);
        assert_int_equal(kvb_serve_run(pg, pag, &sc, &rq), KVB_STATUS_OK);
        print_message(
            "serve %s: util prealloc %.3f grow %.3f paged %.3f; mean running %.1f %.1f %.1f; "
            "shared %.3f\n",
            kvb_fork_kind_name(sc.fork), rp.utilization, rg.utilization, rq.utilization,
            rp.mean_running, rg.mean_running, rq.mean_running, rq.sharing_saved);
        /* the same requests finish everywhere; preemption only adds redone work */
        assert_true(rp.output_tokens == rg.output_tokens && rg.output_tokens == rq.output_tokens);
        assert_true(rp.tokens >= rp.output_tokens && rq.tokens >= rq.output_tokens);
        assert_true(rp.max_running <= 6);                 /* each sequence reserves its longest */
        assert_true(rq.utilization > rg.utilization && rg.utilization > rp.utilization);
        assert_true(rq.utilization > 0.8);
        assert_true(rq.mean_running > rp.mean_running);
        assert_true(rp.sharing_saved == 0 && rg.sharing_saved == 0);
        if (sc.fork == KVB_FORK_NONE) assert_true(rq.sharing_saved == 0);
        else assert_true(rq.sharing_saved > 0.05);
    }
    /* a request that can never fit is reported, not looped on */
    sc.fork = KVB_FORK_NONE;
    sc.budget_bytes = 20 * tok;
    kvb_serve_result r;
    assert_int_equal(kvb_serve_run(pg, pag, &sc, &r), KVB_STATUS_FULL);
    assert_non_null(strstr(r.reason, "budget"));
    assert_int_equal(kvb_serve_run(ct, pre, &sc, &r), KVB_STATUS_FULL);
}

/* The summary of a hand-made point: medians per position and bytes. */
static void test_point_summary(void **state)
{
    (void)state;
    kvb_point p;
    kvb_options o = {.dtype = KVB_DTYPE_F16, .alloc = KVB_ALLOC_GROW, .max_seqs = 1};
    assert_int_equal(kvb_point_init(&p, kvb_backend_find("contiguous"), &o, 4, 3), KVB_STATUS_OK);
    kvb_model_config cfg;
    kvb_model_preset("tiny", &cfg);
    for (int r = 0; r < 3; r++) {
        p.steps_done[r] = 4;
        p.prefill[r].step_ns = 100;
        for (int i = 0; i < 4; i++)
            p.rec[r * 4 + i] =
                (kvb_step_record){10 + i, 0, (uint64_t)(1000 * (i + 1) + r), 0, 0, 0, 0, 0};
    }
    p.rec[3].used = 123;
    kvb_point_summary s;
    kvb_point_summarize(&p, &cfg, 10, 0, &s);
    assert_int_equal(s.steps, 4);
    assert_true(s.first_ns_median == 1001 && s.last_ns_median == 4001);
    assert_true(s.total_ns_median == 10000 + 4);   /* reps total 10000+4r: median r = 1 */
    assert_int_equal(s.used, 123);
    assert_int_equal(s.analytic_used, 2 * 2 * 2 * 16 * 2 * 14);   /* layers kv hd es tokens */
    p.steps_done[2] = 2;                                           /* a cut-short repetition */
    kvb_point_summarize(&p, &cfg, 10, 0, &s);
    assert_int_equal(s.full_reps, 2);
    kvb_point_free(&p);

    /* fitted exponents: constant steps give total ~ n^1; steps growing with
     * position give an exponent that approaches 2 in the tail */
    for (int growing = 0; growing <= 1; growing++) {
        assert_int_equal(kvb_point_init(&p, kvb_backend_find("contiguous"), &o, 400, 1),
                         KVB_STATUS_OK);
        p.steps_done[0] = 400;
        for (int i = 0; i < 400; i++)
            p.rec[i] =
                (kvb_step_record){i, 0, (uint64_t)(growing ? 1000 * (i + 1) : 5000), 0, 0, 0, 0, 0};
        kvb_point_summarize(&p, &cfg, 0, 0, &s);
        if (!growing) {
            assert_true(fabs(s.fit_total_b - 1.0) < 1e-9 && fabs(s.fit_tail_b - 1.0) < 1e-9);
            assert_true(fabs(s.fit_latency_b) < 1e-9);
        } else {
            /* sum of 1..n = n(n+1)/2: the tail's local slope is 2 - 1/n-ish */
            assert_true(s.fit_tail_b > 1.99 && s.fit_tail_b < 2.0);
            assert_true(s.fit_total_b > 1.8 && s.fit_total_b < 2.0);
            assert_true(fabs(s.fit_latency_b - 1.0) < 1e-9);
        }
        kvb_point_free(&p);
    }
}

/* kvb_attend_reference (heads of a KV head's group taken together, up to
 * KVB_REF_HEADS a pass) against the test library's head-by-head float64
 * attention: MHA, GQA, MQA and a group of 32 (two passes), contexts from 1. */
static void test_attend_reference(void **state)
{
    static const int shapes[][3] = {{8, 8, 64}, {32, 8, 128}, {8, 1, 32}, {32, 1, 64}, {12, 4, 48}};
    static const int ctxs[] = {1, 2, 17, 300};
    uint64_t seed = 7;
    for (size_t s = 0; s < KVBT_COUNT(shapes); s++)
        for (size_t c = 0; c < KVBT_COUNT(ctxs); c++) {
            const int nh = shapes[s][0], nkv = shapes[s][1], hd = shapes[s][2], ctx = ctxs[c];
            char name[96];
            if (!kvbt_case(state, name, sizeof name, "reference(nh=%d,nkv=%d,hd=%d,ctx=%d)", nh,
                           nkv, hd, ctx))
                continue;
            size_t kvn = (size_t)ctx * nkv * hd, qn = (size_t)nh * hd;
            float *k = malloc(kvn * sizeof *k), *v = malloc(kvn * sizeof *v),
                  *q = malloc(qn * sizeof *q);
            double *want = malloc(qn * sizeof *want), *got = malloc(qn * sizeof *got),
                   *sc = malloc(kvb_attend_reference_scratch(ctx, nh, nkv) * sizeof *sc);
            assert_non_null(k); assert_non_null(v); assert_non_null(q);
            assert_non_null(want); assert_non_null(got); assert_non_null(sc);
            kvbt_fill(k, kvn, 1.0f, &seed);
            kvbt_fill(v, kvn, 1.0f, &seed);
            kvbt_fill(q, qn, 3.0f, &seed);
            kvbt_ref_attend(q, k, v, ctx, nh, nkv, hd, want);
            kvb_attend_reference(q, k, v, ctx, nh, nkv, hd, got, sc);
            double e = 0, r = 0;
            for (size_t i = 0; i < qn; i++) {
                e += (got[i] - want[i]) * (got[i] - want[i]);
                r += want[i] * want[i];
            }
            if (!(sqrt(e / r) < 1e-12))
                fail_msg("%s: relative L2 %g from the test library's float64 attention", name,
                         sqrt(e / r));
            free(k); free(v); free(q); free(want); free(got); free(sc);
        }
}

int main(int argc, char **argv)
{
    static const kvbt_test all[] = {
        {"cpu_key", test_cpu_key, 0},
        {"topology_and_pin", test_topology_and_pin, 0},
        {"sweep_expand", test_sweep_expand, 0},
        {"serve_sim", test_serve_sim, 0},
        {"point_summary", test_point_summary, 0},
        {"attend_reference", test_attend_reference, 0},
    };
    return kvbt_main(argc, argv, "harness", all, KVBT_COUNT(all));
}
