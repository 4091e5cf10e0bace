/* kvbench_gbench.c: kvbench's micro-benchmarks on Google Benchmark (gbench.h).
 *
 * Cases, each named by its parameters:
 *   attend/<backend>/<dtype>/nh=N/nkv=N/hd=N/ctx=N   attend over ctx cached tokens, one layer,
 *       for an MHA (32/32/128) and a GQA (32/8/128) shape, ctx 256..32768 (powers of two),
 *       every backend and storage type that supports the shape;
 *   attend_batch/<backend>/<dtype>/B=8/ctx=N[/threads=N]   one batched attend over 8
 *       sequences of N tokens (GQA 32/8/128), and attend_loop/... the same as 8 attends;
 *   append/<backend>/<dtype>/nh=N/nkv=N/hd=N         one token's K/V into one layer;
 *   prefill/stories15m/T:N                           the GEMM prompt pass (contiguous f32);
 *   decode/stories15m/ctx:N                          one full model step (contiguous f32) at
 *       context N..N+255;
 *   matvec/<wt>/<kernel>/out=N/in=N[/threads=N]       y = W x over weights stored as wt (f32,
 *       f16, bf16, q8_0), every kernel row this CPU runs, at 4096 x 4096 and Llama 3 8B's FFN
 *       matrix (14336 x 4096); each checked against float64 on sampled rows before it is
 *       timed. Counter weight_bytes_per_second: W's stored bytes (scales included) per
 *       wall-clock second, GB = 10^9.
 *   matvecn/<wt>/<kernel>/out=N/in=N/B=K             Y = X W^T for K (1, 4, 8) vectors at once
 *       (the batched decode step's B-vector rows), same kernels, shapes and counter (W read
 *       once for the K), plus tokens_per_second (vectors per wall-clock second).
 * Counters: kv_bytes_per_second (K/V bytes the step reads or writes, declared below,
 * GB = 10^9: Google Benchmark's own bytes_per_second uses 1024), tokens_per_second,
 * attend's fraction_of_read_ceiling (bytes per wall-clock second over the read
 * ceiling; a plain value). In cases that start threads (/threads=N) every rate
 * is per wall-clock second: Google Benchmark's rates divide by the benchmark
 * thread's CPU time, which the other threads' work is not part of.
 * Setup (filling a cache) is outside the timed loop and done once per case, not
 * once per Google Benchmark run of it. Every Google Benchmark flag works
 * (--benchmark_filter, _repetitions, _out, _out_format, _min_time); the exit
 * status is 1 when any run reported an error or none ran, 2 for a bad flag.
 * --pin compact|spread binds the benchmark thread (hwloc; verified, or a note);
 * --no-ceilings skips measuring read bandwidth and sgemm for the context block;
 * --selftest-failure adds a case that always fails (the tests use it). */
#include "gbench.h"
#include "../harness/ceiling.h"
#include "../model/model.h"
#include "../base/probe.h"
#include "../harness/topo.h"
#include "../impls/kvb_backend.h"
#include "../impls/kernels/kernels.h"
#include "../impls/kernels/matvec.h"
#include "../impls/kernels/quant.h"
#include "kvb_build_info.h"

#include <math.h>

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { N_CTX = 8, CTX0 = 256, APPEND_SEQ = 4096, DECODE_SPAN = 256, KVB_BENCH_MAX_BATCH = 8 };

typedef struct bench_ctx bench_ctx;

typedef struct kv_case {
    bench_ctx         *ctx;
    const kvb_backend *backend;
    kvb_options        opt;
    kvb_shape          shape;       /* one layer; max_seq = the context for attend */
    int                batch;       /* 0: one sequence; else sequences of max_seq tokens each, */
    int                loop;        /* attended by one attend_batch (0) or an attend each (1) */
} kv_case;

/* What the running case built, kept across Google Benchmark's runs of it so a
 * 32768-token cache is filled once; the next case frees it. */
struct bench_ctx {
    const void *owner;               /* the case the state below belongs to */
    kvb_cache  *cache;
    float      *q, *out;
    kvb_model   model;
    kvb_state   state;
    int         have_model;
    double read_gbs[2]; /* measured read ceilings: one thread, all cores; 0: not measured */
    const void *mv_owner;            /* the matvec case the weights below belong to */
    void       *mv_w;
    size_t      mv_bytes;
    float      *mv_x, *mv_y;
    kvb_pool   *mv_pool;
};

typedef struct mv_case {
    bench_ctx *ctx;
    const kvb_matvec_kernel *k;
    int out, in, threads;
    int B;                           /* matvecn: vectors per product; 0: matvec */
} mv_case;

static float urand(uint64_t *s)
{
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return (float)((*s >> 40) * (2.0 / 16777216.0) - 1.0);
}

static void release(bench_ctx *c)
{
    kvb_cache_destroy(c->cache);
    free(c->q); free(c->out);
    c->cache = NULL; c->q = c->out = NULL; c->owner = NULL;
}

/* K/V bytes of n tokens as stored (scales included; quantized types at their bits). */
static double kv_bytes(const kv_case *k, double n)
{
    return 2.0 * n * k->shape.n_kv_heads * k->shape.head_dim *
           kvb_dtype_bits(k->opt.dtype, k->opt.group) / 8.0;
}

/* One iteration of an attend case: one attend, a batch of them, or a loop of them. */
static kvb_status attend_once(const kv_case *k, bench_ctx *c, kvb_attend_item *items)
{
    if (!k->batch) return kvb_cache_attend(c->cache, 0, 0, c->q, c->out);
    if (!k->loop) return kvb_cache_attend_batch(c->cache, 0, items, k->batch);
    kvb_status st = KVB_STATUS_OK;
    for (int i = 0; i < k->batch && st == KVB_STATUS_OK; i++)
        st = kvb_cache_attend(c->cache, items[i].seq, 0, items[i].q, items[i].out);
    return st;
}

static void bm_attend(kvb_gb_state *st, void *user)
{
    kv_case *k = user;
    bench_ctx *c = k->ctx;
    const kvb_shape *s = &k->shape;
    const int seqs = k->batch ? k->batch : 1;
    const size_t nq = (size_t)s->n_heads * s->head_dim;
    char msg[256] = "";
    if (c->owner != k) {
        release(c);
        size_t row = (size_t)s->n_kv_heads * s->head_dim;
        float *kv = malloc(2 * row * sizeof *kv);
        c->q = malloc(seqs * nq * sizeof *c->q);      /* [seqs][n_heads][head_dim] */
        c->out = malloc(seqs * nq * sizeof *c->out);  /* [seqs][n_heads][head_dim] */
        kvb_status st2 = kv && c->q && c->out
                             ? kvb_cache_create(&c->cache, k->backend, s, &k->opt, msg, sizeof msg)
                             : KVB_STATUS_NO_MEMORY;
        uint64_t r = 0x9e3779b97f4a7c15ull;
        /* a batch's sequences grow together, as a server's do */
        for (int t = 0; st2 == KVB_STATUS_OK && t < s->max_seq; t++)
            for (int q = 0; st2 == KVB_STATUS_OK && q < seqs; q++) {
                for (size_t i = 0; i < 2 * row; i++) kv[i] = urand(&r);
                st2 = kvb_cache_append(c->cache, q, 0, kv, kv + row);
            }
        for (size_t i = 0; c->q && i < seqs * nq; i++) c->q[i] = 2.0f * urand(&r);
        free(kv);
        if (st2 != KVB_STATUS_OK) {
            char e[300];
            snprintf(e, sizeof e, "filling the cache failed: %s%s%s", kvb_status_str(st2),
                     msg[0] ? ": " : "", msg);
            release(c);
            kvb_gb_skip_with_error(st, e);
            return;
        }
        c->owner = k;
    }
    kvb_attend_item items[KVB_BENCH_MAX_BATCH];
    for (int i = 0; i < k->batch; i++)
        items[i] = (kvb_attend_item){i, c->q + i * nq, c->out + i * nq};
    uint64_t t0 = kvb_now_ns();
    while (kvb_gb_keep_running(st))
        if (attend_once(k, c, items) != KVB_STATUS_OK) {
            kvb_gb_skip_with_error(st, "attend failed");
            break;
        }
    double wall_s = (double)(kvb_now_ns() - t0) * 1e-9;
    /* one attend of one sequence counts as one token's layer */
    double it = (double)kvb_gb_iterations(st) * seqs;
    /* where attend starts threads, the benchmark thread's CPU time (what a rate counter
     * divides by) misses their work, which inflates the rate (docs/attention.md).
     * There the rates are per wall-clock second, computed here (UseRealTime would do it
     * too, but renames the case .../real_time); one thread keeps Google Benchmark's */
    double bytes = kv_bytes(k, s->max_seq) * it;
    if (k->opt.threads > 1) {
        if (wall_s > 0) {
            kvb_gb_counter(st, "kv_bytes_per_second", bytes / wall_s, KVB_GB_COUNTER_DEFAULT);
            kvb_gb_counter(st, "tokens_per_second", it / wall_s, KVB_GB_COUNTER_DEFAULT);
        }
    } else {
        kvb_gb_counter(st, "kv_bytes_per_second", bytes, KVB_GB_COUNTER_RATE);
        kvb_gb_counter(st, "tokens_per_second", it,
                       KVB_GB_COUNTER_RATE); /* one attend = one token's layer */
    }
    double ceil = c->read_gbs[k->opt.threads > 1];
    /* a fraction, not a rate: the bytes read per wall-clock second over the ceiling's
     * (Google Benchmark would divide a rate counter by CPU time again) */
    if (ceil > 0 && wall_s > 0 && it > 0)
        kvb_gb_counter(st, "fraction_of_read_ceiling", bytes / wall_s / (ceil * 1e9),
                       KVB_GB_COUNTER_DEFAULT);
}

static void bm_append(kvb_gb_state *st, void *user)
{
    kv_case *k = user;
    bench_ctx *c = k->ctx;
    char msg[256] = "";
    release(c);
    size_t row = (size_t)k->shape.n_kv_heads * k->shape.head_dim;
    float *kv = malloc(2 * row * sizeof *kv);
    if (!kv || kvb_cache_create(&c->cache, k->backend, &k->shape, &k->opt, msg, sizeof msg) !=
                   KVB_STATUS_OK) {
        free(kv);
        kvb_gb_skip_with_error(st, msg[0] ? msg : "out of memory");
        return;
    }
    uint64_t r = 7;
    for (size_t i = 0; i < 2 * row; i++) kv[i] = urand(&r);
    int len = 0;
    while (kvb_gb_keep_running(st)) {
        if (len == k->shape.max_seq) {         /* full: start over, untimed */
            kvb_gb_pause(st);
            kvb_cache_seq_clear(c->cache, 0);
            len = 0;
            kvb_gb_resume(st);
        }
        if (kvb_cache_append(c->cache, 0, 0, kv, kv + row) != KVB_STATUS_OK) {
            kvb_gb_skip_with_error(st, "append failed");
            break;
        }
        len++;
    }
    free(kv);
    release(c);
    double it = (double)kvb_gb_iterations(st);
    kvb_gb_counter(st, "kv_bytes_per_second", kv_bytes(k, 1) * it, KVB_GB_COUNTER_RATE);
    kvb_gb_counter(st, "tokens_per_second", it, KVB_GB_COUNTER_RATE);
}

/* The model (stories15m, seeded) and its activations, built on first use. */
static int need_model(bench_ctx *c, kvb_gb_state *st)
{
    if (c->have_model) return 0;
    kvb_model_config cfg;
    char msg[256];
    if (kvb_model_preset("stories15m", &cfg) != KVB_STATUS_OK ||
        kvb_model_init_random(&c->model, &cfg, 1, KVB_WTYPE_F32, msg, sizeof msg) !=
            KVB_STATUS_OK) {
        kvb_gb_skip_with_error(st, "cannot build the stories15m model");
        return -1;
    }
    if (kvb_state_init(&c->state, &cfg, 1) != KVB_STATUS_OK) {
        kvb_model_free(&c->model);
        kvb_gb_skip_with_error(st, "out of memory for activations");
        return -1;
    }
    c->have_model = 1;
    return 0;
}

static void bm_model(kvb_gb_state *st, void *user, int decode)
{
    bench_ctx *c = user;
    if (need_model(c, st)) return;
    release(c);
    const kvb_model *m = &c->model;
    const kvb_backend *b = kvb_backend_find("contiguous");
    int n = (int)kvb_gb_arg(st, 0);
    kvb_shape sh = kvb_model_kv_shape(&m->cfg);
    kvb_options o = {.dtype = KVB_DTYPE_F32, .alloc = KVB_ALLOC_PREALLOC, .max_seqs = 1};
    char msg[256];
    int *tokens = malloc((size_t)(n + DECODE_SPAN) * sizeof *tokens);
    if (!tokens || n + DECODE_SPAN > sh.max_seq ||
        kvb_cache_create(&c->cache, b, &sh, &o, msg, sizeof msg) != KVB_STATUS_OK) {
        free(tokens);
        kvb_gb_skip_with_error(st, "cannot set up the model case");
        return;
    }
    for (int i = 0; i < n + DECODE_SPAN; i++) tokens[i] = 1 + (i * 7919) % (m->cfg.vocab_size - 1);
    kvb_status s = KVB_STATUS_OK;
    int pos = n;
    if (decode) s = kvb_forward_seq(m, &c->state, c->cache, 0, tokens, n, NULL);
    while (s == KVB_STATUS_OK && kvb_gb_keep_running(st)) {
        if (!decode || pos == n + DECODE_SPAN) {          /* start over, untimed */
            kvb_gb_pause(st);
            kvb_cache_seq_clear(c->cache, 0);
            if (decode) s = kvb_forward_seq(m, &c->state, c->cache, 0, tokens, n, NULL);
            pos = n;
            kvb_gb_resume(st);
        }
        if (s != KVB_STATUS_OK) break;
        s = decode ? kvb_forward_token(m, &c->state, c->cache, 0, tokens[pos], pos, NULL)
                   : kvb_forward_seq(m, &c->state, c->cache, 0, tokens, n, NULL);
        pos++;
    }
    if (s != KVB_STATUS_OK) kvb_gb_skip_with_error(st, kvb_status_str(s));
    free(tokens);
    release(c);
    double it = (double)kvb_gb_iterations(st);
    kvb_gb_counter(st, "tokens_per_second", decode ? it : it * n, KVB_GB_COUNTER_RATE);
}

static void bm_prefill(kvb_gb_state *st, void *user) { bm_model(st, user, 0); }
static void bm_decode(kvb_gb_state *st, void *user) { bm_model(st, user, 1); }

static void mv_release(bench_ctx *c)
{
    kvb_kv_free(c->mv_w, c->mv_bytes);
    free(c->mv_x); free(c->mv_y);
    kvb_pool_destroy(c->mv_pool);
    c->mv_w = NULL; c->mv_x = c->mv_y = NULL; c->mv_pool = NULL; c->mv_owner = NULL;
}

/* The worst of 16 sampled rows' |y - ref| over sum |w x|, ref in float64 over the
 * dequantized row (and the rounded x where the kernel rounds it). */
static double mv_check(const mv_case *m, const bench_ctx *c)
{
    size_t rb = kvb_wtype_row_bytes(m->k->wtype, m->in);
    float *wd = malloc((size_t)m->in * 2 * sizeof *wd), *xr = wd ? wd + m->in : NULL;
    if (!wd) return INFINITY;
    /* matvecn: the last of the B vectors is the one checked */
    const size_t lx = m->B ? (size_t)(m->B - 1) * m->in : 0,
                 ly = m->B ? (size_t)(m->B - 1) * m->out : 0;
    if (m->B) m->k->runn(c->mv_w, m->in, m->B, c->mv_x, c->mv_y, m->out, 0, m->out);
    else m->k->run(c->mv_w, m->in, c->mv_x, c->mv_y, 0, m->out);
    if (m->k->rounds_x) kvb_qround_query(c->mv_x, m->in, xr);
    else memcpy(xr, c->mv_x + lx, (size_t)m->in * sizeof *xr);
    double worst = 0.0;
    for (int i = 0; i < 16; i++) {
        int r = (int)((long long)i * (m->out - 1) / 15);
        kvb_wrow_to_f32(m->k->wtype, (const char *)c->mv_w + (size_t)r * rb, wd, m->in);
        double ref = 0.0, mag = 0.0;
        for (int e = 0; e < m->in; e++) {
            ref += (double)wd[e] * xr[e];
            mag += fabs((double)wd[e] * xr[e]);
        }
        double err = fabs(c->mv_y[ly + r] - ref) / (mag > 0 ? mag : 1.0);
        if (!(err <= worst)) worst = err;
    }
    free(wd);
    return worst;
}

static void bm_matvec(kvb_gb_state *st, void *user)
{
    mv_case *m = user;
    bench_ctx *c = m->ctx;
    size_t rb = kvb_wtype_row_bytes(m->k->wtype, m->in);
    if (c->mv_owner != m) {
        mv_release(c);
        release(c);                   /* the attend cases' cache: room for the weights */
        c->mv_bytes = rb * (size_t)m->out;
        c->mv_w = kvb_kv_alloc(c->mv_bytes);
        c->mv_x = malloc((size_t)(m->B ? m->B : 1) * m->in * sizeof *c->mv_x);
        c->mv_y = malloc((size_t)(m->B ? m->B : 1) * m->out * sizeof *c->mv_y);
        float *row = malloc((size_t)m->in * sizeof *row);
        if (!c->mv_w || !c->mv_x || !c->mv_y || !row ||
            (m->threads > 1 && kvb_pool_create(&c->mv_pool, m->threads, NULL, NULL))) {
            free(row);
            mv_release(c);
            kvb_gb_skip_with_error(st, "out of memory for the weights");
            return;
        }
        uint64_t r = 0x2545f4914f6cdd1dull;
        for (int i = 0; i < (m->B ? m->B : 1) * m->in; i++) c->mv_x[i] = urand(&r);
        for (int o = 0; o < m->out; o++) {
            for (int i = 0; i < m->in; i++) row[i] = 0.05f * urand(&r);
            kvb_wrow_from_f32(m->k->wtype, row, (char *)c->mv_w + (size_t)o * rb, m->in);
        }
        free(row);
        double err = mv_check(m, c);
        if (!(err <= 1e-5)) {
            char e[160];
            snprintf(e, sizeof e, "kernel differs from the float64 reference: %.3g", err);
            mv_release(c);
            kvb_gb_skip_with_error(st, e);
            return;
        }
        c->mv_owner = m;
    }
    uint64_t t0 = kvb_now_ns();
    kvb_matvecn_task tn = {m->k, c->mv_w, m->out, m->in, m->B, c->mv_x, c->mv_y};
    while (kvb_gb_keep_running(st))
        if (m->B) kvb_matvecn_pool_many(c->mv_pool, &tn, 1);
        else kvb_matvec_pool(c->mv_pool, m->k, c->mv_w, m->out, m->in, c->mv_x, c->mv_y);
    double wall_s = (double)(kvb_now_ns() - t0) * 1e-9, it = (double)kvb_gb_iterations(st);
    double bytes = (double)c->mv_bytes * it, ceil = c->read_gbs[m->threads > 1];
    if (wall_s > 0) {
        kvb_gb_counter(st, "weight_bytes_per_second", bytes / wall_s, KVB_GB_COUNTER_DEFAULT);
        if (m->B)
            kvb_gb_counter(st, "tokens_per_second", it * m->B / wall_s, KVB_GB_COUNTER_DEFAULT);
        if (ceil > 0)
            kvb_gb_counter(st, "fraction_of_read_ceiling", bytes / wall_s / (ceil * 1e9),
                           KVB_GB_COUNTER_DEFAULT);
    }
}

/* matvec cases for every kernel row this CPU runs, then matvecn's (the array
 * to free) */
static mv_case *register_matvec(bench_ctx *ctx, int threads)
{
    static const int shapes[][2] = {{4096, 4096}, {14336, 4096}}, bs[] = {1, 4, 8};
    int nk = kvb_matvec_kernel_count(), n = 0;
    mv_case *cases = calloc((size_t)nk * 10, sizeof *cases);
    char name[160];
    for (int ki = 0; cases && ki < nk; ki++) {
        const kvb_matvec_kernel *k = kvb_matvec_kernel_at(ki);
        if (!k->run || !k->usable()) continue;
        for (int si = 0; si < 2; si++)
            for (int ti = 0; ti < (threads > 1 ? 2 : 1); ti++) {
                mv_case *m = &cases[n++];
                *m = (mv_case){ctx, k, shapes[si][0], shapes[si][1], ti ? threads : 1, 0};
                int len = snprintf(name, sizeof name, "matvec/%s/%s/out=%d/in=%d",
                                   kvb_wtype_name(k->wtype), k->name, m->out, m->in);
                if (ti) snprintf(name + len, sizeof name - (size_t)len, "/threads=%d", threads);
                kvb_gb_bench *g = kvb_gb_register(name, bm_matvec, m);
                if (g) kvb_gb_unit(g, KVB_GB_MICROSECOND);
            }
    }
    /* matvecn: one thread, B vectors */
    for (int ki = 0; cases && ki < nk; ki++) {
        const kvb_matvec_kernel *k = kvb_matvec_kernel_at(ki);
        if (!k->runn || !k->usable()) continue;
        for (int si = 0; si < 2; si++)
            for (int bi = 0; bi < 3; bi++) {
                mv_case *m = &cases[n++];
                *m = (mv_case){ctx, k, shapes[si][0], shapes[si][1], 1, bs[bi]};
                snprintf(name, sizeof name, "matvecn/%s/%s/out=%d/in=%d/B=%d",
                         kvb_wtype_name(k->wtype), k->name, m->out, m->in, m->B);
                kvb_gb_bench *g = kvb_gb_register(name, bm_matvec, m);
                if (g) kvb_gb_unit(g, KVB_GB_MICROSECOND);
            }
    }
    return cases;
}

/* attend_batch/<backend>/<dtype>/B=8/ctx=N[/threads=N]: one kvb_cache_attend_batch over
 * 8 sequences of N tokens each, and attend_loop/... the same 8 as one attend each, for
 * every storing backend in f16 (q8 where it stores only quantized types) at GQA 32/8/128.
 * Short contexts are where they differ: one sequence's K/V is too little to wake a
 * backend's threads, eight are not. Adds to cases[n..]; returns the new count. */
static size_t register_batch(kv_case *cases, size_t n, bench_ctx *ctx, const int threads[2],
                             int n_threads, kvb_pin_set *pins)
{
    static const int ctxs[] = {32, 512};
    char name[256], why[256];
    for (int bi = 0; bi < kvb_backend_count(); bi++) {
        const kvb_backend *b = kvb_backend_at(bi);
        if (b->flags & KVB_BACKEND_RECOMPUTE) continue;
        const kvb_dtype dt = b->flags & KVB_BACKEND_QUANT ? KVB_DTYPE_Q8 : KVB_DTYPE_F16;
        for (size_t ci = 0; ci < sizeof ctxs / sizeof ctxs[0]; ci++)
            for (int ti = 0; ti < n_threads; ti++)
                for (int loop = 0; loop < 2; loop++) {
                    kv_case *k = &cases[n];
                    *k = (kv_case){ctx, b,
                                   {.dtype = dt, .max_seqs = KVB_BENCH_MAX_BATCH,
                                    .threads = threads[ti]},
                                   {1, 32, 8, 128, ctxs[ci]}, KVB_BENCH_MAX_BATCH, loop};
                    if (pins->core[0] >= 0) {
                        k->opt.thread_start = kvb_pin_thread_start;
                        k->opt.thread_start_arg = pins;
                    }
                    if (kvb_backend_supports(b, &k->shape, &k->opt, why, sizeof why) !=
                        KVB_STATUS_OK)
                        continue;
                    int len = snprintf(name, sizeof name, "%s/%s/%s/B=%d/ctx=%d",
                                       loop ? "attend_loop" : "attend_batch", b->name,
                                       kvb_dtype_name(dt), k->batch, ctxs[ci]);
                    if (ti)
                        snprintf(name + len, sizeof name - (size_t)len, "/threads=%d",
                                 threads[ti]);
                    kvb_gb_bench *g = kvb_gb_register(name, bm_attend, k);
                    if (g) kvb_gb_unit(g, KVB_GB_MICROSECOND);
                    n++;
                }
    }
    return n;
}

static void bm_fail(kvb_gb_state *st, void *user)
{
    (void)user;
    kvb_gb_skip_with_error(st, "selftest: this case fails on purpose");
}

/* Google Benchmark's context block: build, machine (hwloc), pinning, ceilings. */
static void add_context(int measure, kvb_pin pin, double read_gbs[2], kvb_topo *topo,
                        int *have_topo, kvb_pin_set *pins)
{
    char cpu[256], buf[512], msg[256];
    /* the ceilings first: their all-cores read must not run on a pinned core */
    kvb_ceilings k;
    if (measure && kvb_measure_ceilings(&k, 0, (size_t)64 << 20, 7) == 0) {
        read_gbs[0] = k.dram.gbs;
        read_gbs[1] = k.dram_all.threads ? k.dram_all.gbs : k.dram.gbs;
        snprintf(buf, sizeof buf, "%.2f", k.dram.gbs);
        kvb_gb_add_context("read_gbs_1thread", buf);
        snprintf(buf, sizeof buf, "%zu", k.dram.bytes);
        kvb_gb_add_context("read_array_bytes", buf);
        if (k.dram_all.threads) {
            snprintf(buf, sizeof buf, "%.2f (%d threads)", k.dram_all.gbs, k.dram_all.threads);
            kvb_gb_add_context("read_gbs_all_cores", buf);
        }
        snprintf(buf, sizeof buf, "%.1f", k.sgemm_gflops);
        kvb_gb_add_context("sgemm_gflops", buf);
    }
    *have_topo = kvb_topo_init(topo, msg, sizeof msg) == KVB_STATUS_OK;
    if (*have_topo) {
        kvb_topo_describe(topo, buf, sizeof buf);
        kvb_gb_add_context("topology", buf);
    } else
        kvb_gb_add_context("topology", msg);
    /* this thread is thread 0; a threaded case's workers bind themselves (kvb_options.thread_start)
     */
    if (kvb_pin_set_init(pins, *have_topo ? topo : NULL, pin) != KVB_STATUS_OK)
        fprintf(stderr, "kvbench-gbench: --pin %s: %s\n", kvb_pin_name(pin), pins->note);
    snprintf(buf, sizeof buf, "%s core %d cpu %d%s%s", kvb_pin_name(pin), pins->core[0],
             pins->cpu[0], pins->note[0] ? ": " : "", pins->note);
    kvb_gb_add_context("pinning", buf);
    kvb_cpu_model(cpu, sizeof cpu);
    kvb_gb_add_context("kvbench_commit", KVB_GIT_COMMIT);
    kvb_gb_add_context("kvbench_dirty", KVB_GIT_DIRTY == 1 ? "1" : "0");
    kvb_gb_add_context("cpu_model", cpu);
    kvb_gb_add_context("openblas", openblas_get_config());
    snprintf(buf, sizeof buf, "%d", openblas_get_num_threads());
    kvb_gb_add_context("openblas_threads", buf);
}

int main(int argc, char **argv)
{
    kvb_gb_initialize(&argc, argv);
    int measure = 1, selftest = 0;
    kvb_pin pin = KVB_PIN_NONE;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-ceilings") == 0) { measure = 0; continue; }
        if (strcmp(argv[i], "--selftest-failure") == 0) { selftest = 1; continue; }
        if (strncmp(argv[i], "--pin=", 6) == 0 || (strcmp(argv[i], "--pin") == 0 && i + 1 < argc)) {
            const char *v = argv[i][5] == '=' ? argv[i] + 6 : argv[++i];
            if (kvb_pin_parse(v, &pin) != KVB_STATUS_OK) {
                fprintf(stderr,
                        "kvbench-gbench: unknown --pin '%s': allowed are none, compact, spread\n",
                        v);
                return 2;
            }
            continue;
        }
        fprintf(stderr, "kvbench-gbench: unknown flag '%s': allowed are Google Benchmark's "
                        "--benchmark_* flags, --pin none|compact|spread, --no-ceilings and "
                        "--selftest-failure\n", argv[i]);
        return 2;
    }
    openblas_set_num_threads(1);
    bench_ctx ctx = {0};
    kvb_topo topo;
    kvb_pin_set pins;
    int have_topo = 0;
    add_context(measure, pin, ctx.read_gbs, &topo, &have_topo, &pins);

    static const struct { int nh, nkv; } shapes[] = {{32, 32}, {32, 8}};
    const int hd = 128;
    /* attend on one thread, and on one per core where there are more (named /threads=N) */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const int n_threads = cores > 1 ? 2 : 1,
              thread_counts[2] = {1, cores > 1 ? (int)(cores < 64 ? cores : 64) : 1};
    /* at most: backends x dtypes x shapes x (contexts x thread counts + 1 append) */
    size_t max_cases = (size_t)kvb_backend_count() * KVB_DTYPE_COUNT * 2 * (N_CTX * n_threads + 1) +
                       (size_t)kvb_backend_count() * 2 * n_threads * 2;    /* register_batch */
    kv_case *cases = calloc(max_cases, sizeof *cases);
    if (!cases) return 1;
    size_t n = 0;
    char name[256], why[256];
    for (int bi = 0; bi < kvb_backend_count(); bi++) {
        const kvb_backend *b = kvb_backend_at(bi);
        if (b->flags & KVB_BACKEND_RECOMPUTE) continue;
        for (int dt = 0; dt < KVB_DTYPE_COUNT; dt++)
            for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
                for (int ci = 0; ci <= N_CTX * n_threads; ci++) {
                    int append = ci == N_CTX * n_threads,
                        len = append ? APPEND_SEQ : CTX0 << (ci % N_CTX);
                    int threads = append ? 1 : thread_counts[ci / N_CTX];
                    kv_case *k = &cases[n];
                    k->ctx = &ctx;
                    k->backend = b;
                    k->opt = (kvb_options){.dtype = (kvb_dtype)dt,
                                           .alloc = KVB_ALLOC_GROW,
                                           .max_seqs = 1,
                                           .residual = dt == KVB_DTYPE_Q2 ? 128 : 0,
                                           .threads = threads};
                    if (pins.core[0] >= 0) {
                        k->opt.thread_start = kvb_pin_thread_start;
                        k->opt.thread_start_arg = &pins;
                    }
                    k->shape = (kvb_shape){1, shapes[si].nh, shapes[si].nkv, hd, len};
                    if (kvb_backend_supports(b, &k->shape, &k->opt, why, sizeof why) !=
                        KVB_STATUS_OK)
                        continue;
                    if (append)
                        snprintf(name, sizeof name, "append/%s/%s/nh=%d/nkv=%d/hd=%d", b->name,
                                 kvb_dtype_name((kvb_dtype)dt), shapes[si].nh, shapes[si].nkv, hd);
                    else if (threads == 1)
                        snprintf(name, sizeof name, "attend/%s/%s/nh=%d/nkv=%d/hd=%d/ctx=%d",
                                 b->name, kvb_dtype_name((kvb_dtype)dt), shapes[si].nh,
                                 shapes[si].nkv, hd, len);
                    else
                        snprintf(name, sizeof name,
                                 "attend/%s/%s/nh=%d/nkv=%d/hd=%d/ctx=%d/threads=%d", b->name,
                                 kvb_dtype_name((kvb_dtype)dt), shapes[si].nh, shapes[si].nkv, hd,
                                 len, threads);
                    kvb_gb_bench *g = kvb_gb_register(name, append ? bm_append : bm_attend, k);
                    if (g) kvb_gb_unit(g, KVB_GB_MICROSECOND);
                    n++;
                }
    }
    n = register_batch(cases, n, &ctx, thread_counts, n_threads, &pins);
    kvb_gb_bench *g = kvb_gb_register("prefill/stories15m", bm_prefill, &ctx);
    static const int64_t prompts[] = {128, 512};
    for (int i = 0; g && i < 2; i++) kvb_gb_args(g, &prompts[i], 1);
    if (g) { kvb_gb_arg_name(g, "T"); kvb_gb_unit(g, KVB_GB_MILLISECOND); }
    g = kvb_gb_register("decode/stories15m", bm_decode, &ctx);
    static const int64_t contexts[] = {16, 512};
    for (int i = 0; g && i < 2; i++) kvb_gb_args(g, &contexts[i], 1);
    if (g) { kvb_gb_arg_name(g, "ctx"); kvb_gb_unit(g, KVB_GB_MILLISECOND); }
    mv_case *mv_cases = register_matvec(&ctx, thread_counts[1]);
    /* a case that always fails, so the tests can check the exit status */
    if (selftest) kvb_gb_register("selftest/fails", bm_fail, NULL);

    int ran = 0, failed = kvb_gb_run(&ran);
    release(&ctx);
    mv_release(&ctx);
    free(mv_cases);
    if (ctx.have_model) { kvb_state_free(&ctx.state); kvb_model_free(&ctx.model); }
    free(cases);
    if (have_topo) kvb_topo_free(&topo);
    kvb_gb_shutdown();
    if (failed) fprintf(stderr, "kvbench-gbench: %d run(s) reported an error\n", failed);
    if (!ran) fprintf(stderr, "kvbench-gbench: no benchmark matched the filter: nothing ran\n");
    return failed || !ran ? 1 : 0;
}
