/* model_fixture.c: see model_fixture.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "model_fixture.h"
#include "testlib.h"

kvb_model_config kvbt_tiny_shape(int heads, int kv_heads, int layout)
{
    return (kvb_model_config){.dim = 64, .hidden_dim = 96, .n_layers = 2, .n_heads = heads,
                              .n_kv_heads = kv_heads, .head_dim = 16, .vocab_size = 300,
                              .max_seq = 24, .rope_theta = 500.0f, .norm_eps = 1e-6f,
                              .rope_layout = layout, .rope_scaling = KVB_ROPE_SCALING_LLAMA3,
                              .rope_factor = 8.0f, .rope_low_freq = 1.0f,
                              .rope_high_freq = 4.0f, .rope_orig_ctx = 64};
}

kvb_model kvbt_tiny_model(const kvb_model_config *c, uint64_t seed, kvb_wtype wt)
{
    kvb_model m;
    char msg[256];
    kvb_status st = kvb_model_init_random(&m, c, seed, wt, msg, sizeof msg);
    if (st != KVB_STATUS_OK) fail_msg("init_random: %s", msg);
    return m;
}

void kvbt_seeded_tokens(int *tok, int n, int vocab, uint64_t seed)
{
    for (int i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (int)((seed >> 33) % (uint64_t)vocab);
    }
}

kvb_cache *kvbt_model_cache(const kvb_model *m, const char *backend, kvb_dtype dt)
{
    kvb_shape sh = kvb_model_kv_shape(&m->cfg);
    /* quant: groups of 16, the head dimension here */
    kvb_options o = {.dtype = dt, .alloc = KVB_ALLOC_GROW, .max_seqs = 1, .group = 16};
    return kvbt_cache_new(kvb_backend_find(backend), &sh, &o);
}

void kvbt_decode_steps(const kvb_model *m, kvb_state *s, const int *tok, int T, float *logits)
{
    kvb_cache *c = kvbt_model_cache(m, "contiguous", KVB_DTYPE_F32);
    int V = m->cfg.vocab_size;
    for (int t = 0; t < T; t++) {
        assert_int_equal(kvb_forward_token(m, s, c, 0, tok[t], t, NULL), KVB_STATUS_OK);
        memcpy(logits + (size_t)t * V, s->logits, (size_t)V * sizeof(float));
    }
    kvb_cache_destroy(c);
}

