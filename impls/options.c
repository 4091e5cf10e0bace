/* options.c: the vocabulary of kvb_options and kvb_shape that backends and
 * their callers share (allocation modes, key axes, the shape check). Below the
 * registry and the backends, so a backend that names a mode in a message calls
 * down, never back into the registry that lists it. */
#include "kvb_backend.h"

#include <stdio.h>
#include <string.h>

/* Index of name in names[0..n), or -1, and the name of index i: the lookups
 * behind every *_name and *_parse. */
static int name_index(const char *const *names, int n, const char *name)
{
    for (int i = 0; name && i < n; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

static const char *name_at(const char *const *names, int n, int i)
{
    return i >= 0 && i < n ? names[i] : "?";
}

static const char *const axis_names[KVB_KEY_AXIS_COUNT] = {"default", "token", "channel"};

const char *kvb_key_axis_name(kvb_key_axis a)
{
    return name_at(axis_names, KVB_KEY_AXIS_COUNT, (int)a);
}

kvb_status kvb_key_axis_parse(const char *name, kvb_key_axis *out)
{
    int i = name_index(axis_names, KVB_KEY_AXIS_COUNT, name);
    if (i >= 0) *out = (kvb_key_axis)i;
    return i >= 0 ? KVB_STATUS_OK : KVB_STATUS_INVALID_ARG;
}

kvb_key_axis kvb_key_axis_resolve(kvb_dtype t, kvb_key_axis a)
{
    if (a != KVB_KEY_AXIS_DEFAULT) return a;
    const kvb_type_traits *r = kvb_type_traits_of(t);
    return r && r->keys_per_channel ? KVB_KEY_AXIS_CHANNEL : KVB_KEY_AXIS_TOKEN;
}

static const char *const alloc_names[KVB_ALLOC_COUNT] = {"grow", "prealloc"};

const char *kvb_alloc_name(kvb_alloc a) { return name_at(alloc_names, KVB_ALLOC_COUNT, (int)a); }

kvb_status kvb_alloc_parse(const char *name, kvb_alloc *out)
{
    int i = name_index(alloc_names, KVB_ALLOC_COUNT, name);
    if (i >= 0) *out = (kvb_alloc)i;
    return i >= 0 ? KVB_STATUS_OK : KVB_STATUS_INVALID_ARG;
}

kvb_status kvb_shape_check(const kvb_shape *s, char *msg, size_t msg_len)
{
    const struct { const char *name; int v; } f[] = {
        {"n_layers", s->n_layers}, {"n_heads", s->n_heads}, {"n_kv_heads", s->n_kv_heads},
        {"head_dim", s->head_dim}, {"max_seq", s->max_seq},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v < 1) {
            snprintf(msg, msg_len, "%s = %d: must be at least 1", f[i].name, f[i].v);
            return KVB_STATUS_INVALID_ARG;
        }
    if (s->n_heads % s->n_kv_heads != 0) {
        snprintf(msg, msg_len, "n_heads = %d is not a multiple of n_kv_heads = %d",
                 s->n_heads, s->n_kv_heads);
        return KVB_STATUS_INVALID_ARG;
    }
    /* keep every byte count of one sequence well inside size_t and int token indices */
    double bytes = 2.0 * s->n_layers * s->n_kv_heads * (double)s->head_dim * s->max_seq * 4.0;
    if (s->head_dim > 65536 || bytes > 1e15) {
        snprintf(msg, msg_len, "shape too large: head_dim %d, %d layers x %d KV heads x %d tokens",
                 s->head_dim, s->n_layers, s->n_kv_heads, s->max_seq);
        return KVB_STATUS_INVALID_ARG;
    }
    return KVB_STATUS_OK;
}
