/* test_step.c: the decode step's choices (cmocka): matvec kernels by name
 * (--matvec) and the batched step of many sequences (kvb_forward_batch),
 * each against the one-sequence step on the tiny model of model_fixture.h,
 * and the batched step's refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../impls/kernels/matvec.h"
#include "model_fixture.h"
#include "testlib.h"

/* --matvec by name: a q8_0 model through every q8_0 kernel this CPU runs. The
 * exact ones agree with auto to float rounding (rows summed in another order);
 * the VNNI row rounds x to int8 per block, which moves the logits (measured
 * 1.2e-2 rel L2 on this dim-64 model when written, as much as rounding the
 * weights to q8_0 moves them; bound 3x, floor a tenth to show it ran).
 * Names that read none of a model's matrices are refused. */
static void test_forward_matvec_named(void **state)
{
    (void)state;
    kvb_model_config c = kvbt_tiny_shape(4, 2, KVB_ROPE_LAYOUT_HALF);
    const int T = 8, V = c.vocab_size;
    kvb_model m = kvbt_tiny_model(&c, 9, KVB_WTYPE_Q8_0);
    kvb_model mf = kvbt_tiny_model(&c, 9, KVB_WTYPE_F32);
    int tok[8];
    kvbt_seeded_tokens(tok, T, V, 6);
    kvb_state s;
    char msg[256];
    assert_int_equal(kvb_state_init(&s, &c, 1), KVB_STATUS_OK);
    float *la = malloc((size_t)T * V * 4), *ln = malloc((size_t)T * V * 4);
    kvbt_decode_steps(&m, &s, tok, T, la);
    for (int i = 0; i < kvb_matvec_kernel_count(); i++) {
        const kvb_matvec_kernel *k = kvb_matvec_kernel_at(i);
        if (k->wtype != KVB_WTYPE_Q8_0) continue;
        int usable = k->run && k->usable();
        kvb_status st = kvb_state_set_matvec(&s, &m, k->name, msg, sizeof msg);
        if (!usable) {
            assert_int_equal(st, KVB_STATUS_INVALID_ARG);
            assert_non_null(strstr(msg, k->name));
            continue;
        }
        assert_int_equal(st, KVB_STATUS_OK);
        kvbt_decode_steps(&m, &s, tok, T, ln);
        double e = kvbt_rel_l2_rows(ln, la, T, (size_t)V);
        print_message("matvec(%s,q8_0): rel L2 %.2g against auto\n", k->name, e);
        if (k->rounds_x ? !(e > 1.2e-3 && e < 3.6e-2) : !(e < 1e-6))
            fail_msg("matvec(%s,q8_0): rel L2 %.3g against auto", k->name, e);
    }
    assert_int_equal(kvb_state_set_matvec(&s, &m, "bogus", msg, sizeof msg),
                     KVB_STATUS_INVALID_ARG);
    assert_non_null(strstr(msg, "allowed are"));
    assert_int_equal(kvb_state_set_matvec(&s, &m, "auto", msg, sizeof msg), KVB_STATUS_OK);
    assert_null(s.matvec);
    /* the VNNI row has no f32 one: an f32 model gives it nothing to read */
    if (kvb_matvec_find("avx512-vnni", KVB_WTYPE_Q8_0, 64, NULL, 0)) {
        assert_int_equal(kvb_state_set_matvec(&s, &mf, "avx512-vnni", msg, sizeof msg),
                         KVB_STATUS_INVALID_ARG);
        assert_non_null(strstr(msg, "no f32 row"));
    }
    free(la); free(ln);
    kvb_state_free(&s);
    kvb_model_free(&m); kvb_model_free(&mf);
}

/* The batched step against one-sequence steps, on two caches of one kind:
 * sequence ids in reverse (seqs[i] = B - 1 - i), sequence i first fed
 * 2 (i % 5) + 1 prompt tokens (mixed positions), then `steps` batched steps; each step's
 * greedy tokens must be equal (unless same_tokens is 0: a row that rounds x in
 * the single steps only moves logits near a tie). matvec: the kernel by name
 * (NULL: auto).
 * Returns the worst relative L2 of the logits. */
static double batch_vs_single(const kvb_model *m, int threads, const char *backend, kvb_dtype dt,
                              int B, int steps, const char *name, const char *matvec,
                              int same_tokens)
{
    const int V = m->cfg.vocab_size;
    kvb_state s;
    char msg[256];
    assert_int_equal(kvb_state_init(&s, &m->cfg, threads), KVB_STATUS_OK);
    assert_int_equal(kvb_state_set_matvec(&s, m, matvec, msg, sizeof msg), KVB_STATUS_OK);
    kvb_shape sh = kvb_model_kv_shape(&m->cfg);
    kvb_options o = {.dtype = dt, .alloc = KVB_ALLOC_GROW, .max_seqs = B, .group = 16};
    kvb_cache *cb = kvbt_cache_new(kvb_backend_find(backend), &sh, &o);
    kvb_cache *c1 = kvbt_cache_new(kvb_backend_find(backend), &sh, &o);
    float *lb = malloc((size_t)B * V * 4);   /* [B][V] */
    int *seqs = malloc((size_t)B * 3 * sizeof(int)), *tok = seqs + B, *pos = tok + B;
    assert_true(lb && seqs);
    for (int i = 0; i < B; i++) {
        int p[9];
        const int n = 2 * (i % 5) + 1;
        seqs[i] = B - 1 - i;
        kvbt_seeded_tokens(p, n, V, 20u + (unsigned)i);
        for (int t = 0; t < n; t++) {
            assert_int_equal(kvb_forward_token(m, &s, cb, seqs[i], p[t], t, NULL), KVB_STATUS_OK);
            assert_int_equal(kvb_forward_token(m, &s, c1, seqs[i], p[t], t, NULL), KVB_STATUS_OK);
        }
        tok[i] = kvb_argmax(s.logits, V);
        pos[i] = n;
    }
    double worst = 0.0;
    for (int step = 0; step < steps; step++) {
        kvb_step_timing t = {0};
        assert_int_equal(kvb_forward_batch(m, &s, cb, B, seqs, tok, pos, lb, &t), KVB_STATUS_OK);
        for (int i = 0; i < B; i++) {
            assert_int_equal(kvb_forward_token(m, &s, c1, seqs[i], tok[i], pos[i], NULL),
                             KVB_STATUS_OK);
            double e = kvbt_rel_l2_rows(lb + (size_t)i * V, s.logits, 1, (size_t)V);
            if (!(e <= worst)) worst = e;
            int next = kvb_argmax(lb + (size_t)i * V, V);
            if (same_tokens && next != kvb_argmax(s.logits, V))
                fail_msg("%s: step %d seq %d: greedy tokens differ (rel L2 %.3g)", name, step,
                         seqs[i], e);
            tok[i] = next;
            pos[i]++;
        }
    }
    free(lb); free(seqs);
    kvb_cache_destroy(cb); kvb_cache_destroy(c1);
    kvb_state_free(&s);
    return worst;
}

/* B sequences at different positions advanced together equal each advanced
 * alone, for every weight type and cache kind, B 1, 2 and 5 and 1 or 2
 * threads: same greedy tokens, logits within rel L2 1e-5 (f32 sums in another
 * order: measured at most 6.1e-7 when written), 5e-3 through the q8 cache
 * (9.2e-4 measured: a K or V value on a rounding edge may take the other code).
 * Also B = 33 and 130: products by sgemm (from 24 rows on at f32, 48 at the
 * other types, 128 where OpenBLAS runs its SSE kernels). */
static void test_forward_batch(void **state)
{
    static const struct {
        const char *backend;
        kvb_dtype dt;
        double tol;
    } caches[] = {{"contiguous", KVB_DTYPE_F32, 1e-5}, {"paged", KVB_DTYPE_F32, 1e-5},
                  {"quant", KVB_DTYPE_Q8, 5e-3}};
    static const int bs[] = {1, 2, 5, 33, 130};
    kvb_model_config c = kvbt_tiny_shape(4, 2, KVB_ROPE_LAYOUT_HALF);
    c.max_seq = 130;   /* the sequence pass's buffers hold the B rows */
    for (int wt = 0; wt < KVB_WTYPE_COUNT; wt++) {
        const kvb_model_config cw = kvbt_shape_for(c, (kvb_wtype)wt);
        kvb_model m = kvbt_tiny_model(&cw, 12, (kvb_wtype)wt);
        for (size_t ci = 0; ci < KVBT_COUNT(caches); ci++) {
            double worst = 0.0;
            for (size_t bi = 0; bi < KVBT_COUNT(bs); bi++)
                for (int th = 1; th <= 2; th++) {
                    char name[160];
                    const int B = bs[bi];
                    if (!kvbt_case(state, name, sizeof name,
                                   "forward_batch(wt=%s,cache=%s-%s,B=%d,threads=%d)",
                                   kvb_wtype_name((kvb_wtype)wt), caches[ci].backend,
                                   kvb_dtype_name(caches[ci].dt), B, th))
                        continue;
                    double e = batch_vs_single(&m, th, caches[ci].backend, caches[ci].dt, B,
                                               B > 5 ? 2 : 4, name, NULL, 1);
                    if (!(e < caches[ci].tol))
                        fail_msg("%s: rel L2 %.3g (tolerance %.3g)", name, e, caches[ci].tol);
                    if (!(e <= worst)) worst = e;
                }
            print_message("forward_batch(wt=%s,cache=%s): worst rel L2 %.2g\n",
                          kvb_wtype_name((kvb_wtype)wt), caches[ci].backend, worst);
        }
        kvb_model_free(&m);
    }
}

/* The batched step through each named kernel's B-vector rows (--matvec):
 * avx512, avx2 and portable where this CPU runs them, the VNNI row (which has
 * none and leaves the batch to auto's), every weight type, B 5 on 2 threads:
 * the same check as above against one-sequence steps through that kernel. */
static void test_forward_batch_named(void **state)
{
    (void)state;
    kvb_model_config c = kvbt_tiny_shape(4, 2, KVB_ROPE_LAYOUT_INTERLEAVED);
    char msg[256];
    for (int wt = 0; wt < KVB_WTYPE_COUNT; wt++) {
        const kvb_model_config cw = kvbt_shape_for(c, (kvb_wtype)wt);
        kvb_model m = kvbt_tiny_model(&cw, 31, (kvb_wtype)wt);
        for (int i = 0; i < kvb_matvec_kernel_count(); i++) {
            const kvb_matvec_kernel *k = kvb_matvec_kernel_at(i);
            if (k->wtype != (kvb_wtype)wt || !k->run || !k->usable()) continue;
            kvb_state probe;
            assert_int_equal(kvb_state_init(&probe, &cw, 1), KVB_STATUS_OK);
            assert_int_equal(kvb_state_set_matvec(&probe, &m, k->name, msg, sizeof msg),
                             KVB_STATUS_OK);
            kvb_state_free(&probe);
            char name[96];
            snprintf(name, sizeof name, "forward_batch(wt=%s,matvec=%s)", kvb_wtype_name(k->wtype),
                     k->name);
            double e = batch_vs_single(&m, 2, "paged", KVB_DTYPE_F32, 5, 3, name, k->name,
                                       !k->rounds_x);
            print_message("%s: rel L2 %.2g\n", name, e);
            /* the VNNI single steps round x, the batch does not */
            if (!(e < (k->rounds_x ? 3.6e-2 : 1e-5))) fail_msg("%s: rel L2 %.3g", name, e);
        }
        kvb_model_free(&m);
    }
}

/* Refused batches (B out of range, no logits, a duplicate sequence, a wrong
 * position, a token out of range; each bad entry last) append nothing. */
static void test_forward_batch_refusals(void **state)
{
    (void)state;
    kvb_model_config c = kvbt_tiny_shape(4, 2, KVB_ROPE_LAYOUT_HALF);
    const int V = c.vocab_size;
    kvb_model m = kvbt_tiny_model(&c, 12, KVB_WTYPE_F32);
    kvb_state s;
    assert_int_equal(kvb_state_init(&s, &c, 1), KVB_STATUS_OK);
    kvb_shape sh = kvb_model_kv_shape(&c);
    kvb_options o = {.dtype = KVB_DTYPE_F32, .max_seqs = 3};
    kvb_cache *cb = kvbt_cache_new(kvb_backend_find("paged"), &sh, &o);
    float *lb = malloc((size_t)3 * V * 4);
    assert_non_null(lb);
    int seqs[3] = {0, 1, 2}, tok[3] = {1, 2, 3}, pos[3] = {0, 0, 0};
    assert_int_equal(kvb_forward_batch(&m, &s, cb, 2, seqs, tok, pos, lb, NULL), KVB_STATUS_OK);
    /* seqs 0 and 1 hold 1 token, seq 2 none */
    const int dup[3] = {0, 1, 0}, badpos[3] = {1, 1, 1}, badtok[3] = {1, 2, V};
    const int okpos[3] = {1, 1, 0};
    assert_int_equal(kvb_forward_batch(&m, &s, cb, 0, seqs, tok, okpos, lb, NULL),
                     KVB_STATUS_INVALID_ARG);
    assert_int_equal(kvb_forward_batch(&m, &s, cb, c.max_seq + 1, seqs, tok, okpos, lb, NULL),
                     KVB_STATUS_INVALID_ARG);
    assert_int_equal(kvb_forward_batch(&m, &s, cb, 3, seqs, tok, okpos, NULL, NULL),
                     KVB_STATUS_INVALID_ARG);
    assert_int_equal(kvb_forward_batch(&m, &s, cb, 3, dup, tok, okpos, lb, NULL),
                     KVB_STATUS_INVALID_ARG);
    assert_int_equal(kvb_forward_batch(&m, &s, cb, 3, seqs, tok, badpos, lb, NULL),
                     KVB_STATUS_INVALID_ARG);
    assert_int_equal(kvb_forward_batch(&m, &s, cb, 3, seqs, badtok, okpos, lb, NULL),
                     KVB_STATUS_INVALID_ARG);
    for (int q = 0; q < 3; q++)
        for (int l = 0; l < c.n_layers; l++)
            assert_int_equal(kvb_cache_length(cb, q, l), okpos[q]);
    assert_int_equal(kvb_forward_batch(&m, &s, cb, 3, seqs, tok, okpos, lb, NULL),
                     KVB_STATUS_OK);
    free(lb);
    kvb_cache_destroy(cb);
    kvb_state_free(&s);
    kvb_model_free(&m);
}

int main(int argc, char **argv)
{
    static const kvbt_test all[] = {
        {"matvec_named", test_forward_matvec_named, 0},
        {"forward_batch", test_forward_batch, 1},
        {"forward_batch_named", test_forward_batch_named, 0},
        {"forward_batch_refusals", test_forward_batch_refusals, 0},
    };
    return kvbt_main(argc, argv, "step", all, KVBT_COUNT(all));
}
