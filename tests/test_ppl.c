/* test_ppl.c: kvbench ppl's arithmetic (harness/ppl.h). A model whose
 * classifier is zero predicts the uniform distribution: its perplexity is the
 * vocabulary size exactly, worked by hand. On random weights the f32 cache's
 * perplexity equals the one computed step by step through kvb_forward_token in
 * double here; a copy of the reference case diverges by exactly 0; a 2-bit
 * cache diverges (KL > 0) at fewer bytes per token; an unsupported case is
 * skipped while the others run; bad arguments are refused naming the value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/ppl.h"
#include "../model/model.h"
#include "testlib.h"

enum { CTX = 24, N_TOK = 3 * CTX + 5 };   /* three windows and a dropped tail */

static void tiny_model(kvb_model *m, kvb_state *s, int kv_heads)
{
    kvb_model_config c;
    char msg[256];
    assert_int_equal(kvb_model_preset("tiny", &c), KVB_STATUS_OK);
    c.n_kv_heads = kv_heads;
    c.max_seq = 64;
    assert_int_equal(kvb_model_init_random(m, &c, 7, KVB_WTYPE_F32, msg, sizeof msg),
                     KVB_STATUS_OK);
    assert_int_equal(kvb_state_init(s, &m->cfg, 1), KVB_STATUS_OK);
}

static void text(int *tok, int n, int vocab, uint64_t seed)
{
    for (int i = 0; i < n; i++) tok[i] = (int)((kvbt_urand(&seed) + 1.0f) * 0.5f * vocab) % vocab;
}

static kvb_ppl_case pcase(const char *backend, kvb_dtype dt, const char *label)
{
    kvb_ppl_case c = {.backend = kvb_backend_find(backend), .opts = {.dtype = dt}};
    assert_non_null(c.backend);
    snprintf(c.label, sizeof c.label, "%s", label);
    return c;
}

static void test_ppl_uniform_model_is_vocab(void **state)
{
    (void)state;
    kvb_model m;
    kvb_state s;
    tiny_model(&m, &s, 2);
    const kvb_wmat *w = &m.w.wcls;
    assert_int_equal(w->type, KVB_WTYPE_F32);
    /* zero logits at every position: p = 1/V for every token, NLL = ln V */
    memset((void *)w->data, 0, (size_t)w->rows * w->cols * sizeof(float));
    int tok[N_TOK];
    text(tok, N_TOK, m.cfg.vocab_size, 3);
    kvb_ppl_case cases[2] = {pcase("contiguous", KVB_DTYPE_F32, "contiguous-f32"),
                             pcase("quant", KVB_DTYPE_Q4, "quant-q4")};
    cases[1].opts.group = 16;             /* tiny's head_dim 16: the default 32 does not fit */
    kvb_ppl_result r[2];
    char msg[256];
    assert_int_equal(kvb_ppl_run(&m, &s, tok, N_TOK, CTX, 0, cases, 2, r, NULL, NULL, msg,
                                 sizeof msg),
                     KVB_STATUS_OK);
    for (int c = 0; c < 2; c++) {
        assert_int_equal(r[c].status, KVB_STATUS_OK);
        assert_int_equal(r[c].n_windows, 3);
        assert_int_equal(r[c].n_scored, 3 * (CTX - CTX / 2 - 1));
        assert_true(fabs(r[c].ppl - m.cfg.vocab_size) < 1e-3 * m.cfg.vocab_size);
        assert_true(fabs(r[c].nll_mean - log((double)m.cfg.vocab_size)) < 1e-5);
        assert_true(r[c].ppl_err < 1e-3);
        assert_true(r[c].kl_mean < 1e-9 && r[c].top1 == 1.0);
    }
    kvb_state_free(&s);
    kvb_model_free(&m);
}

/* NLL of window w's scored positions through kvb_forward_token, in double. */
static double stepwise_nll(const kvb_model *m, kvb_state *s, const int *tok, int *n)
{
    const kvb_backend *b = kvb_backend_find("contiguous");
    kvb_shape sh = kvb_model_kv_shape(&m->cfg);
    kvb_options o = {.dtype = KVB_DTYPE_F32, .max_seqs = 1};
    kvb_cache *c = kvbt_cache_new(b, &sh, &o);
    double sum = 0;
    const int V = m->cfg.vocab_size;
    for (int i = 0; i < CTX - 1; i++) {
        assert_int_equal(kvb_forward_token(m, s, c, 0, tok[i], i, NULL), KVB_STATUS_OK);
        if (i < CTX / 2) continue;
        double mx = s->logits[0], z = 0;
        for (int j = 1; j < V; j++) mx = s->logits[j] > mx ? s->logits[j] : mx;
        for (int j = 0; j < V; j++) z += exp((double)s->logits[j] - mx);
        sum += -((double)s->logits[tok[i + 1]] - mx - log(z));
        (*n)++;
    }
    kvb_cache_destroy(c);
    return sum;
}

static void test_ppl_matches_stepwise_and_ranks_caches(void **state)
{
    static const int kv[] = {4, 2, 1};   /* MHA, GQA, MQA of tiny's 4 query heads */
    for (size_t k = 0; k < KVBT_COUNT(kv); k++) {
        char name[96];
        if (!kvbt_case(state, name, sizeof name, "ppl(nh=4,nkv=%d,ctx=%d)", kv[k], CTX)) continue;
        kvb_model m;
        kvb_state s;
        tiny_model(&m, &s, kv[k]);
        int tok[N_TOK];
        text(tok, N_TOK, m.cfg.vocab_size, 11 + k);
        kvb_ppl_case cases[4] = {pcase("contiguous", KVB_DTYPE_F32, "contiguous-f32"),
                                 pcase("paged", KVB_DTYPE_F32, "paged-f32"),
                                 pcase("quant", KVB_DTYPE_Q2, "quant-q2"),
                                 pcase("quant", KVB_DTYPE_Q8, "quant-q8-group-3")};
        cases[2].opts.group = 8;          /* tiny's head_dim 16: a group that fits */
        cases[3].opts.group = 3;          /* not a power of two: refused at create */
        kvb_ppl_result r[4];
        char msg[256];
        assert_int_equal(kvb_ppl_run(&m, &s, tok, N_TOK, CTX, 2, cases, 4, r, NULL, NULL, msg,
                                     sizeof msg),
                         KVB_STATUS_OK);
        double sum = 0;
        int n = 0;
        for (int w = 0; w < 2; w++) sum += stepwise_nll(&m, &s, tok + w * CTX, &n);
        assert_int_equal(r[0].n_scored, n);
        assert_true(fabs(r[0].nll_mean - sum / n) < 1e-4 * (sum / n));
        assert_true(r[0].ppl > 1.0 && r[0].ppl_err > 0 && r[0].ppl_err < r[0].ppl);
        /* an exact cache through another layout: the same distributions */
        assert_int_equal(r[1].status, KVB_STATUS_OK);
        assert_true(r[1].kl_mean < 1e-9 && r[1].top1 == 1.0);
        assert_true(fabs(r[1].ppl - r[0].ppl) < 1e-5 * r[0].ppl);
        /* 2 bits: a measurable divergence, at a fraction of f32's bytes */
        assert_int_equal(r[2].status, KVB_STATUS_OK);
        assert_true(r[2].kl_mean > 1e-6 && r[2].kl_p99 >= r[2].kl_mean * 0.5);
        assert_true(r[2].bytes_per_token < 0.5 * r[0].bytes_per_token);
        assert_true(r[0].bytes_per_token == 2.0 * m.cfg.n_layers * kv[k] * 16 * 4);
        /* skipped, with its reason, while the rest ran */
        assert_int_not_equal(r[3].status, KVB_STATUS_OK);
        assert_int_equal(r[3].n_windows, 0);
        assert_true(r[3].why[0] != 0);
        kvb_state_free(&s);
        kvb_model_free(&m);
    }
}

static void test_ppl_refuses_bad_arguments(void **state)
{
    (void)state;
    kvb_model m;
    kvb_state s;
    tiny_model(&m, &s, 2);
    int tok[N_TOK];
    text(tok, N_TOK, m.cfg.vocab_size, 5);
    kvb_ppl_case c = pcase("contiguous", KVB_DTYPE_F32, "contiguous-f32");
    kvb_ppl_result r;
    char msg[256];
    assert_int_equal(kvb_ppl_run(&m, &s, tok, N_TOK, 3, 0, &c, 1, &r, NULL, NULL, msg, sizeof msg),
                     KVB_STATUS_INVALID_ARG);
    assert_non_null(strstr(msg, "ctx = 3"));
    assert_int_equal(kvb_ppl_run(&m, &s, tok, 10, CTX, 0, &c, 1, &r, NULL, NULL, msg, sizeof msg),
                     KVB_STATUS_INVALID_ARG);
    assert_non_null(strstr(msg, "10 tokens"));
    tok[30] = m.cfg.vocab_size;
    assert_int_equal(
        kvb_ppl_run(&m, &s, tok, N_TOK, CTX, 0, &c, 1, &r, NULL, NULL, msg, sizeof msg),
        KVB_STATUS_INVALID_ARG);
    assert_non_null(strstr(msg, "position 30"));
    kvb_state_free(&s);
    kvb_model_free(&m);
}

int main(int argc, char **argv)
{
    static const kvbt_test all[] = {
        {"ppl_uniform_model_is_vocab", test_ppl_uniform_model_is_vocab, 0},
        {"ppl_matches_stepwise_and_ranks_caches", test_ppl_matches_stepwise_and_ranks_caches, 1},
        {"ppl_refuses_bad_arguments", test_ppl_refuses_bad_arguments, 0},
    };
    return kvbt_main(argc, argv, "ppl", all, KVBT_COUNT(all));
}
