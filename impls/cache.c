/* cache.c: the kvb_cache_* calls of kvb_backend.h. A cache is its backend's
 * table and state plus what the checks need; each call checks its arguments
 * here, once, and applies the NULL fallbacks of the optional slots, so no
 * backend repeats an index or precondition check. */
#include "kvb_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kvb_cache {
    const kvb_backend *backend;
    kvb_backend_ctx   *ctx;
    kvb_shape          shape;
    int                max_seqs;
    int                window;    /* KVB_BACKEND_WINDOW: tokens attend reads; else 0 */
};

static kvb_cache *cache_new(const kvb_backend *b, const kvb_shape *s, const kvb_options *o)
{
    kvb_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->backend = b;
    c->shape = *s;
    c->max_seqs = o->max_seqs;
    if (b->flags & KVB_BACKEND_WINDOW) c->window = o->window ? o->window : s->max_seq;
    return c;
}

kvb_status kvb_cache_create(kvb_cache **out, const kvb_backend *b, const kvb_shape *s,
                            const kvb_options *o, char *msg, size_t msg_len)
{
    *out = NULL;
    kvb_status st = kvb_backend_supports(b, s, o, msg, msg_len);
    if (st != KVB_STATUS_OK) return st;
    kvb_cache *c = cache_new(b, s, o);
    if (!c) return KVB_STATUS_NO_MEMORY;
    st = b->create(&c->ctx, s, o, msg, msg_len);
    if (st != KVB_STATUS_OK) {
        free(c);
        return st;
    }
    *out = c;
    return KVB_STATUS_OK;
}

kvb_status kvb_cache_wrap(kvb_cache **out, const kvb_backend *b, kvb_backend_ctx *ctx,
                          const kvb_shape *s, const kvb_options *o, char *msg, size_t msg_len)
{
    *out = NULL;
    kvb_status st = kvb_backend_check(b, msg, msg_len);
    if (st != KVB_STATUS_OK) return st;
    kvb_cache *c = cache_new(b, s, o);
    if (!c) return KVB_STATUS_NO_MEMORY;
    c->ctx = ctx;
    *out = c;
    return KVB_STATUS_OK;
}

void kvb_cache_destroy(kvb_cache *c)
{
    if (!c) return;
    c->backend->destroy(c->ctx);
    free(c);
}

const kvb_backend *kvb_cache_backend(const kvb_cache *c) { return c ? c->backend : NULL; }
const kvb_shape *kvb_cache_shape(const kvb_cache *c) { return c ? &c->shape : NULL; }

static int seq_ok(const kvb_cache *c, int seq) { return c && seq >= 0 && seq < c->max_seqs; }

static int index_ok(const kvb_cache *c, int seq, int layer)
{
    return seq_ok(c, seq) && layer >= 0 && layer < c->shape.n_layers;
}

kvb_status kvb_cache_append(kvb_cache *c, int seq, int layer, const float *k, const float *v)
{
    if (!index_ok(c, seq, layer) || !k || !v) return KVB_STATUS_INVALID_ARG;
    if (!c->backend->append) return KVB_STATUS_UNSUPPORTED;
    return c->backend->append(c->ctx, seq, layer, k, v);
}

kvb_status kvb_cache_attend(kvb_cache *c, int seq, int layer, const float *q, float *out)
{
    if (!index_ok(c, seq, layer) || !q || !out) return KVB_STATUS_INVALID_ARG;
    if (!c->backend->attend) return KVB_STATUS_UNSUPPORTED;
    return c->backend->attend(c->ctx, seq, layer, q, out);
}

kvb_status kvb_cache_attend_batch(kvb_cache *c, int layer, const kvb_attend_item *items, int n)
{
    if (!c || layer < 0 || layer >= c->shape.n_layers || n < 0 || (n && !items))
        return KVB_STATUS_INVALID_ARG;
    for (int i = 0; i < n; i++)
        if (!seq_ok(c, items[i].seq) || !items[i].q || !items[i].out)
            return KVB_STATUS_INVALID_ARG;
    if (!c->backend->attend) return KVB_STATUS_UNSUPPORTED;
    if (!n) return KVB_STATUS_OK;
    if (c->backend->version >= 3 && c->backend->attend_batch)
        return c->backend->attend_batch(c->ctx, layer, items, n);
    for (int i = 0; i < n; i++) {
        kvb_status st = c->backend->attend(c->ctx, items[i].seq, layer, items[i].q, items[i].out);
        if (st != KVB_STATUS_OK) return st;
    }
    return KVB_STATUS_OK;
}

kvb_memory kvb_cache_memory(const kvb_cache *c)
{
    kvb_memory none = {0, 0, 0, 0};
    return c ? c->backend->memory(c->ctx) : none;
}

int kvb_cache_length(const kvb_cache *c, int seq, int layer)
{
    return index_ok(c, seq, layer) ? c->backend->length(c->ctx, seq, layer) : -1;
}

kvb_status kvb_cache_seq_clear(kvb_cache *c, int seq)
{
    if (!seq_ok(c, seq)) return KVB_STATUS_INVALID_ARG;
    if (!c->backend->seq_clear) return KVB_STATUS_UNSUPPORTED;
    return c->backend->seq_clear(c->ctx, seq);
}

kvb_status kvb_cache_seq_fork(kvb_cache *c, int parent, int child)
{
    if (!seq_ok(c, parent) || !seq_ok(c, child) || parent == child) return KVB_STATUS_INVALID_ARG;
    if (!c->backend->seq_fork) return KVB_STATUS_UNSUPPORTED;
    /* every layer of the parent as long as its first, the child empty */
    int n = c->backend->length(c->ctx, parent, 0);
    for (int l = 0; l < c->shape.n_layers; l++)
        if (c->backend->length(c->ctx, parent, l) != n || c->backend->length(c->ctx, child, l))
            return KVB_STATUS_INVALID_ARG;
    return c->backend->seq_fork(c->ctx, parent, child);
}

kvb_status kvb_cache_seq_memory(const kvb_cache *c, int seq, kvb_memory *out)
{
    kvb_memory none = {0, 0, 0, 0};
    if (out) *out = none;
    if (!seq_ok(c, seq) || !out) return KVB_STATUS_INVALID_ARG;
    if (!c->backend->seq_memory) return KVB_STATUS_UNSUPPORTED;
    *out = c->backend->seq_memory(c->ctx, seq);
    return KVB_STATUS_OK;
}

kvb_status kvb_cache_read_kv(const kvb_cache *c, int seq, int layer, int kv_head, int token,
                             float *k, float *v)
{
    if (!index_ok(c, seq, layer) || kv_head < 0 || kv_head >= c->shape.n_kv_heads || !k || !v)
        return KVB_STATUS_INVALID_ARG;
    if (!c->backend->read_kv) return KVB_STATUS_UNSUPPORTED;
    if (token < 0 || token >= c->backend->length(c->ctx, seq, layer)) return KVB_STATUS_INVALID_ARG;
    return c->backend->read_kv(c->ctx, seq, layer, kv_head, token, k, v);
}

static uint32_t name_hash(const char *name)
{
    uint32_t h = 2166136261u;
    for (; *name; name++) h = (h ^ (unsigned char)*name) * 16777619u;
    return h;
}

kvb_save_head kvb_save_head_of(const char *writer, const kvb_shape *s, kvb_dtype t, int unit,
                               int tokens)
{
    kvb_save_head h = {KVB_SAVE_MAGIC, name_hash(writer), s->n_layers, s->n_kv_heads,
                       s->head_dim, (int32_t)t, unit, tokens};
    return h;
}

int kvb_save_head_tokens(const void *src, size_t bytes, const char *writer, const kvb_shape *s,
                         kvb_dtype t, int unit)
{
    kvb_save_head h, want = kvb_save_head_of(writer, s, t, unit, 0);
    if (bytes < sizeof h) return -1;
    memcpy(&h, src, sizeof h);
    want.tokens = h.tokens;
    if (memcmp(&h, &want, sizeof h) != 0 || h.tokens < 0 || h.tokens > s->max_seq) return -1;
    return h.tokens;
}

static int can_swap(const kvb_cache *c)
{
    return c->backend->version >= 4 && c->backend->seq_save && c->backend->seq_load;
}

kvb_status kvb_cache_seq_save(const kvb_cache *c, int seq, void *dst, size_t *bytes)
{
    if (!seq_ok(c, seq) || !bytes) return KVB_STATUS_INVALID_ARG;
    if (!can_swap(c)) return KVB_STATUS_UNSUPPORTED;
    int n = c->backend->length(c->ctx, seq, 0);
    for (int l = 1; l < c->shape.n_layers; l++)
        if (c->backend->length(c->ctx, seq, l) != n) return KVB_STATUS_INVALID_ARG;
    size_t need = 0;
    kvb_status st = c->backend->seq_save(c->ctx, seq, NULL, &need);
    if (st != KVB_STATUS_OK || !dst) {
        *bytes = need;
        return st;
    }
    if (*bytes < need) return KVB_STATUS_INVALID_ARG;
    return c->backend->seq_save(c->ctx, seq, dst, bytes);
}

kvb_status kvb_cache_seq_load(kvb_cache *c, int seq, const void *src, size_t bytes)
{
    if (!seq_ok(c, seq) || !src) return KVB_STATUS_INVALID_ARG;
    if (!can_swap(c)) return KVB_STATUS_UNSUPPORTED;
    for (int l = 0; l < c->shape.n_layers; l++)
        if (c->backend->length(c->ctx, seq, l) != 0) return KVB_STATUS_INVALID_ARG;
    return c->backend->seq_load(c->ctx, seq, src, bytes);
}

int kvb_cache_attended(const kvb_cache *c, int appended)
{
    return c && c->window && c->window < appended ? c->window : appended;
}
