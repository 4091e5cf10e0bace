/* model_fixture.h: the tiny random decoder test_forward.c and test_step.c
 * share, its caches and step-by-step decoding (cmocka assertions inside). */
#ifndef KVBT_MODEL_FIXTURE_H
#define KVBT_MODEL_FIXTURE_H

#include <stdint.h>
#include "../model/model.h"
#include "../impls/kvb_backend.h"

/* dim 64, hidden 96, 2 layers, head_dim 16 (all in whole q8_0 blocks); a vocab
 * over KVB_TILE_ROWS so the classifier's tiles include a partial one; theta
 * 500 and llama3 scaling over a 64-token original context put RoPE's pairs in
 * all three of its regimes (kept, divided, ramp). max_seq 24. */
kvb_model_config kvbt_tiny_shape(int heads, int kv_heads, int layout);
/* kvb_model_init_random of c, or the test fails */
kvb_model kvbt_tiny_model(const kvb_model_config *c, uint64_t seed, kvb_wtype wt);
/* n ids in [0, vocab) from seed */
void kvbt_seeded_tokens(int *tok, int n, int vocab, uint64_t seed);
/* a one-sequence cache of m's KV shape (quant: groups of 16, the head size) */
kvb_cache *kvbt_model_cache(const kvb_model *m, const char *backend, kvb_dtype dt);
/* step-by-step decode of tok[0..T) from position 0 on a contiguous f32 cache:
 * logits[T][vocab] */
void kvbt_decode_steps(const kvb_model *m, kvb_state *s, const int *tok, int T, float *logits);

#endif
