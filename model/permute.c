/* permute.c: see permute.h. */
#include "permute.h"
#include "model.h"
#include "load.h"

#include <stdio.h>
#include <stdlib.h>

#include <string.h>

int kvb_rope_perm_row(int r, int head_dim, int to_half)
{
    int head = r / head_dim, j = r % head_dim, half = head_dim / 2;
    /* to half: half row j = interleaved row 2j (j < half) or 2(j - half) + 1 */
    int src = to_half ? (j < half ? 2 * j : 2 * (j - half) + 1)
                      : (j % 2 ? half + j / 2 : j / 2);
    return head * head_dim + src;
}

void kvb_rope_permute_rows(const void *src, void *dst, size_t row_bytes, int n_heads,
                           int head_dim, int to_half)
{
    const unsigned char *s = src;
    unsigned char *d = dst;
    for (int r = 0; r < n_heads * head_dim; r++)
        memcpy(d + (size_t)r * row_bytes,
               s + (size_t)kvb_rope_perm_row(r, head_dim, to_half) * row_bytes, row_bytes);
}

kvb_status kvb_model_relayout(const kvb_model *src, kvb_model *dst, int layout, char *msg,
                              size_t msg_len)
{
    memset(dst, 0, sizeof *dst);
    const kvb_model_config *c = &src->cfg;
    const int move = layout != c->rope_layout, to_half = layout == KVB_ROPE_LAYOUT_HALF;
    size_t per = 0;
    if (move)
        per = (size_t)c->head_dim * (kvb_wtype_row_bytes(src->w.layer[0].wq.type, c->dim) *
                                         (size_t)c->n_heads +
                                     kvb_wtype_row_bytes(src->w.layer[0].wk.type, c->dim) *
                                         (size_t)c->n_kv_heads);
    per = (per + 63) / 64 * 64;   /* each layer's matrices from a multiple of 64 bytes */
    dst->mem_bytes = per * (size_t)c->n_layers;
    dst->mem = dst->mem_bytes ? malloc(dst->mem_bytes) : NULL;
    kvb_layer_weights *layer = malloc((size_t)c->n_layers * sizeof *layer);
    if ((dst->mem_bytes && !dst->mem) || !layer) {
        snprintf(msg, msg_len, "cannot allocate %zu bytes for the permuted wq and wk",
                 dst->mem_bytes);
        free(dst->mem);
        free(layer);
        dst->mem = NULL;
        return KVB_STATUS_NO_MEMORY;
    }
    dst->cfg = *c;
    dst->cfg.rope_layout = layout;
    dst->w = src->w;
    dst->w.layer = layer;   /* kvb_model_free frees it apart from mem */
    snprintf(dst->source, sizeof dst->source, "%s", src->source);
    for (int l = 0; l < c->n_layers; l++) {
        kvb_layer_weights *d = &dst->w.layer[l];
        *d = src->w.layer[l];
        if (!move) continue;
        char *q = (char *)dst->mem + per * (size_t)l;
        size_t qrb = kvb_wtype_row_bytes(d->wq.type, d->wq.cols);
        char *k = q + qrb * (size_t)d->wq.rows;
        kvb_rope_permute_rows(src->w.layer[l].wq.data, q, qrb, c->n_heads, c->head_dim, to_half);
        kvb_rope_permute_rows(src->w.layer[l].wk.data, k,
                              kvb_wtype_row_bytes(d->wk.type, d->wk.cols), c->n_kv_heads,
                              c->head_dim, to_half);
        d->wq.data = q;
        d->wk.data = k;
    }
    return kvb_load_finish(dst, msg, msg_len);
}
