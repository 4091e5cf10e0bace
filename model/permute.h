/* permute.h: the row permutation between RoPE's two layouts (model.h's
 * kvb_rope_layout), as transformers' convert_llama_weights_to_hf.py applies it
 * to wq and wk and llama.cpp's convert_hf_to_gguf.py undoes it.
 *
 * Contract. Within each head of head_dim rows, the interleaved layout's rows
 * (2i, 2i+1) are the half layout's rows (i, i + head_dim/2). A model whose wq
 * and wk rows are permuted this way, run with the other layout, computes the
 * same function: q.k is a sum over the same pairs, each rotated alike. Rows are
 * moved whole, so any stored type (q8_0 included) is permuted as bytes. */
#ifndef KVB_PERMUTE_H
#define KVB_PERMUTE_H

#include <stddef.h>
#include "../impls/types/kvb_types.h"

/* The source row of row r of the permuted matrix (head_dim even):
 * to_half = 1 gives the half layout's row r from an interleaved matrix;
 * to_half = 0 the interleaved row r from a half-layout matrix. */
int kvb_rope_perm_row(int r, int head_dim, int to_half);

/* dst = src with rows permuted (n_heads * head_dim rows of row_bytes bytes
 * each); dst and src must not overlap. */
void kvb_rope_permute_rows(const void *src, void *dst, size_t row_bytes, int n_heads,
                           int head_dim, int to_half);

/* dst: src computing the same function under RoPE layout `layout`: a new layer
 * table and wq, wk with rows permuted per head (to_half as layout says) in
 * dst->mem; every other weight, norm included, borrowed from src, which must
 * outlive dst (kvb_model_free(dst) first). The same layout: every matrix
 * borrowed. For writers of one layout (llama2.c and GGUF write interleaved). */
struct kvb_model;
kvb_status kvb_model_relayout(const struct kvb_model *src, struct kvb_model *dst, int layout,
                              char *msg, size_t msg_len);

#endif
