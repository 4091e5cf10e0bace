/* load_fixture.h: what test_load.c and test_load_bad.c share: the model shape
 * they write and read, greedy-free decoding of fixed tokens on an exact cache
 * (contiguous, f32) into every position's logits, and their comparisons. */
#ifndef KVB_LOAD_FIXTURE_H
#define KVB_LOAD_FIXTURE_H

#include "../model/model.h"

/* positions decoded; vocabulary */
enum { KVBT_LOAD_T = 12, KVBT_LOAD_V = 40 };

/* dim 64, hidden 96, 2 layers, 4 query heads on 2 KV heads of 16, vocab 40,
 * max_seq 24, theta 10000; every weight type's block divides the widths. */
kvb_model_config kvbt_load_shape(int shared, int rope_layout);
/* [KVBT_LOAD_T][vocab] (malloc'd): tokens (7 i + 3) mod vocab at 0.. */
float *kvbt_logits(const kvb_model *m);
/* memcmp of m's logits against ref; what names the file in the failure */
void kvbt_assert_same_logits(const kvb_model *m, const float *ref, const char *what);
/* ||a - b|| / ||b|| over [KVBT_LOAD_T][KVBT_LOAD_V] */
double kvbt_rel(const float *a, const float *b);
/* every matrix lies outside m->mem: it points into the loader's map */
void kvbt_assert_in_map(const kvb_model *m);
/* dst: src's weights converted to f32 (the dequantized twin), in dst->mem */
void kvbt_dequant_twin(const kvb_model *src, kvb_model *dst);

#endif
