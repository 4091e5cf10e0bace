/* test_sched.c: the continuous-batching scheduler (harness/sched.h) on the
 * tiny model of model_fixture.h, with budgets small enough to force
 * preemption: after every model call the budget holds, every request ends
 * exactly once with its whole output, a preempted and resumed request's greedy
 * tokens equal an uninterrupted decode's, a prefix-shared request's equal its
 * unshared twin's, with preemption by recompute and by swap to host memory
 * (whole, and with a host budget too small for some), and two planted bugs (no
 * budget check; a backend whose swap save zeroes a layer) are caught. The clock
 * advances by a fixed cost per call: nothing here depends on timing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/sched.h"
#include "model_fixture.h"
#include "testlib.h"

enum { N_REQ = 8, PROMPT_MAX = 12, SHARED = 8 };

typedef struct workload {
    kvb_request req[N_REQ];
    int prompt[N_REQ][PROMPT_MAX]; /* [request][token] */
} workload;

/* prompts of 3..10 tokens, outputs of 4..13, arriving two per simulated
 * second; shared > 0 gives every prompt the same first `shared` tokens */
static void make_workload(workload *w, int vocab, int shared)
{
    for (int i = 0; i < N_REQ; i++) {
        int P = shared ? shared + 1 + i % 3 : 3 + (i * 5) % 8;
        kvbt_seeded_tokens(w->prompt[i], P, vocab, 100 + (uint64_t)i);
        if (shared) kvbt_seeded_tokens(w->prompt[i], shared, vocab, 7);
        w->req[i] = (kvb_request){.id = i,
                                  .arrival_s = 0.5 * i,
                                  .prompt_len = P,
                                  .output_len = 4 + (i * 5) % 10,
                                  .prefix_len = shared,
                                  .prompt = w->prompt[i]};
    }
}

/* the uninterrupted greedy decode of q alone: prompt through the cache, then
 * one step per token */
static void reference_tokens(const kvb_model *m, kvb_state *s, const kvb_request *q, int *out)
{
    kvb_cache *c = kvbt_model_cache(m, "contiguous", KVB_DTYPE_F32);
    assert_int_equal(kvb_forward_seq_cached(m, s, c, 0, q->prompt, q->prompt_len, 0, NULL, NULL),
                     KVB_STATUS_OK);
    for (int j = 0; j < q->output_len; j++) {
        out[j] = kvb_argmax(s->logits, m->cfg.vocab_size);
        if (j + 1 < q->output_len)
            assert_int_equal(kvb_forward_token(m, s, c, 0, out[j], q->prompt_len + j, NULL),
                             KVB_STATUS_OK);
    }
    kvb_cache_destroy(c);
}

typedef struct serve_case {
    const char *backend;
    kvb_alloc alloc;
    int max_batch, prefix_slots;
    size_t budget;
    kvb_preempt preempt;
    size_t swap_bytes; /* SWAP: host bytes; 0: a budget no save fits */
    int burst;         /* every request at time 0: more preemptions */
} serve_case;

/* A planted wrong backend: contiguous whose swap save zeroes its last layer. */
static kvb_status w_save(const kvb_backend_ctx *w, int seq, void *dst, size_t *bytes)
{
    const kvb_cache *in = kvbt_wrap_inner(w);
    kvb_status st = kvb_cache_seq_save(in, seq, dst, bytes);
    if (st == KVB_STATUS_OK && dst) {
        /* contiguous's save: [layer][K|V][kv_head][token][head_dim] after its head */
        size_t layer = (*bytes - sizeof(kvb_save_head)) / (size_t)kvb_cache_shape(in)->n_layers;
        memset((char *)dst + *bytes - layer, 0, layer);
    }
    return st;
}
static kvb_status w_load(kvb_backend_ctx *w, int seq, const void *src, size_t bytes)
{
    return kvb_cache_seq_load(kvbt_wrap_inner(w), seq, src, bytes);
}
static const kvb_backend wrong_swap = {
    .name = "wrong-swap", .description = "planted bug: a swapped sequence loses its last layer",
    .seq_save = w_save, .seq_load = w_load, KVBT_WRAP_SLOTS,
};

static const kvb_backend *case_backend(const serve_case *sc)
{
    return strcmp(sc->backend, wrong_swap.name) == 0 ? &wrong_swap
                                                      : kvb_backend_find(sc->backend);
}

static kvb_cache *case_cache(const kvb_model *m, const serve_case *sc)
{
    kvb_shape sh = kvb_model_kv_shape(&m->cfg);
    kvb_options o = {.dtype = KVB_DTYPE_F32,
                     .alloc = sc->alloc,
                     .max_seqs = sc->max_batch + sc->prefix_slots,
                     .block_tokens = 4};
    if (strcmp(sc->backend, "paged") == 0) o.pool_bytes = sc->budget;
    kvb_cache *c = NULL;
    char msg[256];
    if (kvb_cache_create(&c, case_backend(sc), &sh, &o, msg, sizeof msg) !=
        KVB_STATUS_OK)
        fail_msg("cache %s: %s", sc->backend, msg);
    return c;
}

static size_t token_bytes(const kvb_model *m)
{
    return 2 * (size_t)m->cfg.n_layers * m->cfg.n_kv_heads * m->cfg.head_dim * sizeof(float);
}

/* The first broken invariant of a finished run, or NULL. */
static const char *violation(const serve_case *sc, const workload *w, const kvb_req_result *res,
                             const kvb_sched_stats *st, char *buf, size_t n)
{
    for (int i = 0; i < st->n_steps; i++)
        if (st->steps[i].reserved > sc->budget) {
            snprintf(buf, n, "step %d: reserved %zu over the budget %zu", i, st->steps[i].reserved,
                     sc->budget);
            return buf;
        }
    if (st->finished + st->rejected != N_REQ) {
        snprintf(buf, n, "%d finished + %d rejected of %d requests", st->finished, st->rejected,
                 N_REQ);
        return buf;
    }
    for (int i = 0; i < N_REQ; i++)
        if (res[i].outcome != KVB_REQ_OUTCOME_FINISHED || res[i].n_out != w->req[i].output_len) {
            snprintf(buf, n, "request %d: outcome %d with %d of %d tokens", i, res[i].outcome,
                     res[i].n_out, w->req[i].output_len);
            return buf;
        }
    return NULL;
}

static void run_case(const kvb_model *m, kvb_state *s, const serve_case *sc, const workload *w,
                     kvb_sched_bug bug, kvb_req_result *res, kvb_sched_stats *st)
{
    kvb_cache *c = case_cache(m, sc);
    kvb_sched_config cfg = {.max_batch = sc->max_batch,
                            .prefix_slots = sc->prefix_slots,
                            .block_tokens = 4,
                            .budget_bytes = sc->budget,
                            .token_bytes = token_bytes(m),
                            .step_cost_s = 0.25,
                            .bug = bug,
                            .preempt = sc->preempt,
                            .swap_bytes = sc->swap_bytes,
                            .reserve_tokens = sc->alloc == KVB_ALLOC_PREALLOC ? m->cfg.max_seq : 0};
    if (strcmp(sc->backend, "paged") == 0) cfg.reserve_tokens = 0;
    char msg[256];
    kvb_status r = kvb_sched_run(m, s, c, &cfg, w->req, N_REQ, res, st, msg, sizeof msg);
    if (r != KVB_STATUS_OK) fail_msg("%s: %s", sc->backend, msg);
    kvb_cache_destroy(c);
}

typedef struct fixture {
    kvb_model_config mc;
    kvb_model m;
    kvb_state s;
    workload w;
    int ref[N_REQ][24]; /* [request][output token]: each decoded alone */
} fixture;

static void fixture_init(fixture *f, uint64_t seed, int shared)
{
    f->mc = kvbt_tiny_shape(4, 2, KVB_ROPE_LAYOUT_INTERLEAVED);
    f->m = kvbt_tiny_model(&f->mc, seed, KVB_WTYPE_F32);
    assert_int_equal(kvb_state_init(&f->s, &f->mc, 1), KVB_STATUS_OK);
    make_workload(&f->w, f->mc.vocab_size, shared);
    for (int i = 0; i < N_REQ; i++) reference_tokens(&f->m, &f->s, &f->w.req[i], f->ref[i]);
}

static void fixture_free(fixture *f)
{
    kvb_state_free(&f->s);
    kvb_model_free(&f->m);
}

/* One case served and judged: the invariants, and every token against the
 * request decoded alone. */
static void serve_checked(fixture *f, const serve_case *sc, kvb_req_result *res,
                          kvb_sched_stats *st)
{
    workload w = f->w; /* prompts still point into f->w */
    for (int i = 0; sc->burst && i < N_REQ; i++) w.req[i].arrival_s = 0;
    run_case(&f->m, &f->s, sc, &w, KVB_SCHED_BUG_NONE, res, st);
    char buf[256];
    const char *v = violation(sc, &w, res, st, buf, sizeof buf);
    if (v) fail_msg("%s/%s: %s", sc->backend, kvb_alloc_name(sc->alloc), v);
    for (int i = 0; i < N_REQ; i++)
        for (int j = 0; j < f->w.req[i].output_len; j++)
            if (res[i].tokens[j] != f->ref[i][j])
                fail_msg("%s: request %d (preempted %d times, prefix hit %d tokens) token %d: "
                         "%d, alone %d",
                         sc->backend, i, res[i].preemptions, res[i].prefix_hit_tokens, j,
                         res[i].tokens[j], f->ref[i][j]);
}

/* budgets of 20 (paged) and 32 (grow) tokens for requests of up to 22 positions:
 * a few run at once, and growing ones push the newest out */
static void test_budget_and_resume(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, 3, 0);
    const size_t tb = token_bytes(&f.m);
    const serve_case cases[] = {
        {"paged", KVB_ALLOC_GROW, 6, 0, 24 * tb, KVB_PREEMPT_RECOMPUTE, 0, 0},
        {"contiguous", KVB_ALLOC_GROW, 6, 0, 32 * tb, KVB_PREEMPT_RECOMPUTE, 0, 0},
        {"contiguous", KVB_ALLOC_PREALLOC, 2, 0, 2 * 24 * tb, KVB_PREEMPT_RECOMPUTE, 0, 0},
        {"paged", KVB_ALLOC_GROW, 6, 0, 24 * tb, KVB_PREEMPT_RECOMPUTE, 0, 1},
        {"paged", KVB_ALLOC_GROW, 6, 0, 24 * tb, KVB_PREEMPT_SWAP, 1 << 30, 1},
        {"contiguous", KVB_ALLOC_GROW, 6, 0, 32 * tb, KVB_PREEMPT_SWAP, 1 << 30, 1},
        /* a host budget no save fits: every preemption recomputes */
        {"paged", KVB_ALLOC_GROW, 6, 0, 24 * tb, KVB_PREEMPT_SWAP, 64, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const serve_case *sc = &cases[k];
        kvb_req_result res[N_REQ];
        kvb_sched_stats st;
        serve_checked(&f, sc, res, &st);
        int resumed = 0, swapped = 0;
        for (int i = 0; i < N_REQ; i++) resumed += res[i].preemptions > 0;
        for (int i = 0; i < N_REQ; i++) swapped += res[i].swaps;
        print_message("%s/%s/%s%s: %d steps, %d preemptions (%d requests resumed), %d swapped "
                      "out, %d in, host peak %zu bytes, end %.2f s\n",
                      sc->backend, kvb_alloc_name(sc->alloc), kvb_preempt_name(sc->preempt),
                      sc->burst ? "/burst" : "", st.n_steps, st.preemptions, resumed,
                      st.swaps_out, st.swaps_in,
                      st.swap_peak, st.end_s);
        if (sc->alloc == KVB_ALLOC_GROW && resumed == 0)
            fail_msg("%s: the budget forced no preemption: the test checks nothing",
                     sc->backend);
        assert_int_equal(swapped, st.swaps_out);
        assert_true(st.swap_peak <= sc->swap_bytes);
        if (sc->preempt == KVB_PREEMPT_SWAP) {
            /* every swapped request came back from host memory */
            assert_int_equal(st.swaps_in, st.swaps_out);
            assert_true(sc->swap_bytes < 4096 ? st.swaps_out == 0 : st.swaps_out > 0);
        } else
            assert_int_equal(st.swaps_out, 0);
        kvb_sched_free(res, N_REQ, &st);
    }
    fixture_free(&f);
}

/* every prompt starts with the same 8 tokens (two blocks of 4): later
 * requests fork the prefix entry and prefill only their rest */
static void test_prefix_twins(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, 5, SHARED);
    const size_t tb = token_bytes(&f.m);
    const serve_case cases[] = {
        {"paged", KVB_ALLOC_GROW, 4, 1, 64 * tb, KVB_PREEMPT_RECOMPUTE, 0, 0},
        {"contiguous", KVB_ALLOC_GROW, 4, 1, 160 * tb, KVB_PREEMPT_RECOMPUTE, 0, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        kvb_req_result res[N_REQ];
        kvb_sched_stats st;
        serve_checked(&f, &cases[k], res, &st);
        size_t saved = 0;
        for (int i = 0; i < st.n_steps; i++)
            if (st.steps[i].seq_used > st.steps[i].used + saved)
                saved = st.steps[i].seq_used - st.steps[i].used;
        print_message("%s prefix: %d hits of %d lookups, most bytes saved %zu\n", cases[k].backend,
                      st.prefix_hits, st.prefix_lookups, saved);
        assert_true(st.prefix_hits >= N_REQ - 2);
        /* paged forks share the prefix's blocks; contiguous ones copy them */
        if (strcmp(cases[k].backend, "paged") == 0)
            assert_true(saved >= SHARED * tb);
        else
            assert_int_equal(saved, 0);
        kvb_sched_free(res, N_REQ, &st);
    }
    fixture_free(&f);
}

/* Two schedulers (paged swap, contiguous grow recompute) sharing one state and
 * taking rounds in turn, as kvbench serve interleaves its cases: each gives
 * every request the tokens it has alone, and the same records as when run
 * alone (the fixed step cost makes the clocks equal). */
static void test_interleaved_rounds(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, 3, 0);
    const size_t tb = token_bytes(&f.m);
    const serve_case cases[2] = {
        {"paged", KVB_ALLOC_GROW, 6, 0, 24 * tb, KVB_PREEMPT_SWAP, 1 << 30, 1},
        {"contiguous", KVB_ALLOC_GROW, 6, 0, 32 * tb, KVB_PREEMPT_RECOMPUTE, 0, 1},
    };
    workload w = f.w;
    for (int i = 0; i < N_REQ; i++) w.req[i].arrival_s = 0;
    kvb_cache *c[2];
    kvb_sched *e[2];
    kvb_sched_config cfg[2];
    kvb_req_result res[2][N_REQ], alone[N_REQ];
    kvb_sched_stats st[2], st_alone;
    char msg[256];
    for (int k = 0; k < 2; k++) {
        c[k] = case_cache(&f.m, &cases[k]);
        cfg[k] = (kvb_sched_config){.max_batch = 6, .block_tokens = 4,
                                    .budget_bytes = cases[k].budget, .token_bytes = tb,
                                    .step_cost_s = 0.25, .preempt = cases[k].preempt,
                                    .swap_bytes = cases[k].swap_bytes};
        assert_int_equal(kvb_sched_start(&e[k], &f.m, &f.s, c[k], &cfg[k], w.req, N_REQ,
                                         res[k], &st[k], msg, sizeof msg),
                         KVB_STATUS_OK);
    }
    int done[2] = {0, 0}, rounds = 0;
    while (!done[0] || !done[1]) {
        for (int k = 0; k < 2; k++)
            if (!done[k]) assert_int_equal(kvb_sched_round(e[k], &done[k]), KVB_STATUS_OK);
        assert_true(++rounds < 100000);
    }
    for (int k = 0; k < 2; k++) {
        kvb_sched_end(e[k]);
        for (int i = 0; i < N_REQ; i++)
            for (int j = 0; j < w.req[i].output_len; j++)
                if (res[k][i].tokens[j] != f.ref[i][j])
                    fail_msg("%s interleaved: request %d token %d: %d, alone %d",
                             cases[k].backend, i, j, res[k][i].tokens[j], f.ref[i][j]);
        /* the same case alone: the same steps */
        assert_int_equal(kvb_sched_run(&f.m, &f.s, c[k], &cfg[k], w.req, N_REQ, alone,
                                       &st_alone, msg, sizeof msg),
                         KVB_STATUS_OK);
        assert_int_equal(st_alone.n_steps, st[k].n_steps);
        assert_int_equal(st_alone.preemptions, st[k].preemptions);
        assert_true(st_alone.end_s == st[k].end_s);
        print_message("%s: %d rounds interleaved, %d model calls, %d preemptions, as alone\n",
                      cases[k].backend, rounds, st[k].n_steps, st[k].preemptions);
        kvb_sched_free(alone, N_REQ, &st_alone);
        kvb_sched_free(res[k], N_REQ, &st[k]);
        kvb_cache_destroy(c[k]);
    }
    fixture_free(&f);
}

/* A scheduler that skips its budget checks must be caught by the same
 * checks; requests too long for the cache are rejected, never lost. */
static void test_planted_bug_and_reject(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, 3, 0);
    kvb_model *m = &f.m;
    kvb_state *s = &f.s;
    workload w = f.w;
    const serve_case sc = {"contiguous", KVB_ALLOC_GROW, 6, 0, 40 * token_bytes(m),
                          KVB_PREEMPT_RECOMPUTE, 0, 0};
    kvb_req_result res[N_REQ];
    kvb_sched_stats st;
    run_case(m, s, &sc, &w, KVB_SCHED_BUG_NO_BUDGET, res, &st);
    char buf[256];
    const char *v = violation(&sc, &w, res, &st, buf, sizeof buf);
    if (!v) fail_msg("a scheduler without budget checks went unnoticed");
    print_message("planted bug caught: %s\n", v);
    kvb_sched_free(res, N_REQ, &st);

    /* a backend that loses a layer on the way to host memory and back */
    const serve_case ws = {"wrong-swap", KVB_ALLOC_GROW, 6, 0, 32 * token_bytes(m),
                           KVB_PREEMPT_SWAP, 1 << 30, 0};
    run_case(m, s, &ws, &w, KVB_SCHED_BUG_NONE, res, &st);
    int wrong = 0;
    for (int i = 0; i < N_REQ; i++)
        for (int j = 0; j < res[i].n_out; j++) wrong += res[i].tokens[j] != f.ref[i][j];
    print_message("planted swap bug: %d swapped in, %d tokens differ from the requests alone\n",
                  st.swaps_in, wrong);
    assert_true(st.swaps_in > 0);
    if (wrong == 0) fail_msg("a swap that loses a layer went unnoticed");
    kvb_sched_free(res, N_REQ, &st);

    w.req[3].output_len = 20; /* 20 + its prompt pass the 24 positions */
    run_case(m, s, &sc, &w, KVB_SCHED_BUG_NONE, res, &st);
    assert_int_equal(res[3].outcome, KVB_REQ_OUTCOME_REJECTED);
    assert_int_equal(st.finished, N_REQ - 1);
    assert_int_equal(st.rejected, 1);
    kvb_sched_free(res, N_REQ, &st);
    fixture_free(&f);
}

int main(int argc, char **argv)
{
    static const kvbt_test all[] = {
        {"budget_and_resume", test_budget_and_resume, 0},
        {"prefix_twins", test_prefix_twins, 0},
        {"interleaved_rounds", test_interleaved_rounds, 0},
        {"planted_bug_and_reject", test_planted_bug_and_reject, 0},
    };
    return kvbt_main(argc, argv, "sched", all, KVBT_COUNT(all));
}
