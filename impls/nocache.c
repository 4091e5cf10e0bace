/* nocache.c: the baseline that stores nothing.
 *
 * Flagged KVB_BACKEND_RECOMPUTE: at every decode step the harness re-runs the
 * causal forward pass over the whole sequence (every layer recomputes K and V
 * for every earlier token, attention uses kvb_attend_causal_gemm) and keeps the last
 * position. That is the quadratic path a KV cache removes. Its cache object only
 * exists so the harness treats every backend alike; it holds no K/V, so its
 * memory is zero and the transient activations show up in the resident set. */
#include "kvb_backend.h"

#include <stdio.h>
#include <stdlib.h>

struct kvb_backend_ctx {
    kvb_shape shape;
};

static kvb_status nocache_supports(const kvb_shape *s, const kvb_options *o,
                                   char *why, size_t why_len)
{
    (void)s;
    if (o->dtype != KVB_DTYPE_F32 || o->alloc != KVB_ALLOC_GROW) {
        snprintf(why, why_len, "nocache stores nothing: storage type %s / mode %s do not apply "
                 "(it runs once, as f32/grow)", kvb_dtype_name(o->dtype), kvb_alloc_name(o->alloc));
        return KVB_STATUS_UNSUPPORTED;
    }
    return KVB_STATUS_OK;
}

static kvb_status nocache_create(kvb_backend_ctx **out, const kvb_shape *shape,
                                 const kvb_options *opt, char *msg, size_t msg_len)
{
    (void)opt; (void)msg; (void)msg_len;
    *out = calloc(1, sizeof **out);
    if (!*out) return KVB_STATUS_NO_MEMORY;
    (*out)->shape = *shape;
    return KVB_STATUS_OK;
}

static void nocache_destroy(kvb_backend_ctx *c) { free(c); }

static kvb_memory nocache_memory(const kvb_backend_ctx *c)
{
    kvb_memory m = {0, 0, sizeof *c, 0};
    return m;
}

static int nocache_length(const kvb_backend_ctx *c, int seq, int layer)
{
    (void)c; (void)seq; (void)layer;
    return 0;
}

const kvb_backend kvb_backend_nocache = {
    .version = KVB_BACKEND_VERSION,
    .name = "nocache",
    .description = "stores no K/V; every step recomputes the causal pass over all tokens",
    .flags = KVB_BACKEND_RECOMPUTE,
    .supports = nocache_supports,
    .create = nocache_create,
    .destroy = nocache_destroy,
    .append = NULL,                   /* RECOMPUTE: never called */
    .attend = NULL,                   /* RECOMPUTE: never called */
    .memory = nocache_memory,
    .length = nocache_length,
    .seq_clear = NULL,                /* nothing to clear */
    .seq_fork = NULL,                 /* nothing to share */
    .seq_memory = NULL,
    .read_kv = NULL,                  /* nothing stored */
};
