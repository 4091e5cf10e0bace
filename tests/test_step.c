/* test_step.c: the decode step's choices (cmocka): matvec kernels by name
 * (--matvec) and the batched step of many sequences (kvb_forward_batch),
 * each against the one-sequence step on the tiny model of model_fixture.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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

/* B sequences of different lengths advanced together equal each advanced
 * alone: same tokens, logits within float rounding (the batch may sum in
 * another order). Sequence i holds 2 i + 1 prompt tokens first. */
static void test_forward_batch(void **state)
{
    (void)state;
    kvb_model_config c = kvbt_tiny_shape(4, 2, KVB_ROPE_LAYOUT_HALF);
    const int V = c.vocab_size, B = 3, steps = 4;
    kvb_model m = kvbt_tiny_model(&c, 12, KVB_WTYPE_F32);
    kvb_state s;
    assert_int_equal(kvb_state_init(&s, &c, 1), KVB_STATUS_OK);
    kvb_shape sh = kvb_model_kv_shape(&c);
    kvb_options o = {.dtype = KVB_DTYPE_F32, .max_seqs = B};
    kvb_cache *cb = kvbt_cache_new(kvb_backend_find("paged"), &sh, &o);
    kvb_cache *c1 = kvbt_cache_new(kvb_backend_find("contiguous"), &sh, &o);
    float *lb = malloc((size_t)B * V * 4), *l1 = malloc((size_t)V * 4);
    int seqs[3] = {0, 1, 2}, tok[3], pos[3], tok1[3];
    for (int i = 0; i < B; i++) {
        int p[5];
        kvbt_seeded_tokens(p, 2 * i + 1, V, 20u + (unsigned)i);
        for (int t = 0; t < 2 * i + 1; t++) {
            assert_int_equal(kvb_forward_token(&m, &s, cb, i, p[t], t, NULL), KVB_STATUS_OK);
            assert_int_equal(kvb_forward_token(&m, &s, c1, i, p[t], t, NULL), KVB_STATUS_OK);
        }
        tok[i] = tok1[i] = kvb_argmax(s.logits, V);
        pos[i] = 2 * i + 1;
    }
    for (int step = 0; step < steps; step++) {
        assert_int_equal(kvb_forward_batch(&m, &s, cb, B, seqs, tok, pos, lb, NULL),
                         KVB_STATUS_OK);
        for (int i = 0; i < B; i++) {
            assert_int_equal(kvb_forward_token(&m, &s, c1, i, tok1[i], pos[i], NULL),
                             KVB_STATUS_OK);
            memcpy(l1, s.logits, (size_t)V * 4);
            double e = kvbt_rel_l2_rows(lb + (size_t)i * V, l1, 1, (size_t)V);
            if (!(e < 1e-5)) fail_msg("batch step %d seq %d: rel L2 %.3g", step, i, e);
            tok[i] = kvb_argmax(lb + (size_t)i * V, V);
            tok1[i] = kvb_argmax(l1, V);
            assert_int_equal(tok[i], tok1[i]);
            pos[i]++;
        }
    }
    /* bad arguments refused before anything is appended */
    assert_int_equal(kvb_forward_batch(&m, &s, cb, 0, seqs, tok, pos, lb, NULL),
                     KVB_STATUS_INVALID_ARG);
    assert_int_equal(kvb_forward_batch(&m, &s, cb, B, seqs, tok, pos, NULL, NULL),
                     KVB_STATUS_INVALID_ARG);
    free(lb); free(l1);
    kvb_cache_destroy(cb); kvb_cache_destroy(c1);
    kvb_state_free(&s);
    kvb_model_free(&m);
}

int main(int argc, char **argv)
{
    static const kvbt_test all[] = {
        {"matvec_named", test_forward_matvec_named, 0},
        {"forward_batch", test_forward_batch, 0},
    };
    return kvbt_main(argc, argv, "step", all, KVBT_COUNT(all));
}
