/* registry.c: the const table of backends, looked up by name, and the checks
 * every backend shares (kvb_backend_check, kvb_backend_supports). Adding a
 * backend: declare its table here and add one line below. Nothing below the
 * registry calls into it: the backends' shared vocabulary is options.c. */
#include "kvb_backend.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"

#include <stdio.h>
#include <string.h>

extern const kvb_backend kvb_backend_nocache;
extern const kvb_backend kvb_backend_contiguous;
extern const kvb_backend kvb_backend_paged;
extern const kvb_backend kvb_backend_paged_blockmajor;
extern const kvb_backend kvb_backend_paged_tokmajor;
extern const kvb_backend kvb_backend_quant;
extern const kvb_backend kvb_backend_paged_quant;
extern const kvb_backend kvb_backend_window;

static const kvb_backend *const registry[] = {
    &kvb_backend_nocache,
    &kvb_backend_contiguous,
    &kvb_backend_paged,
    &kvb_backend_paged_blockmajor,
    &kvb_backend_paged_tokmajor,
    &kvb_backend_quant,
    &kvb_backend_paged_quant,
    &kvb_backend_window,
};

int kvb_backend_count(void) { return (int)(sizeof registry / sizeof registry[0]); }

const kvb_backend *kvb_backend_at(int i)
{
    return (i >= 0 && i < kvb_backend_count()) ? registry[i] : NULL;
}

const kvb_backend *kvb_backend_find(const char *name)
{
    for (int i = 0; name && i < kvb_backend_count(); i++)
        if (strcmp(registry[i]->name, name) == 0) return registry[i];
    return NULL;
}

const char *kvb_backend_kernel(const kvb_backend *b, const kvb_shape *s, const kvb_options *o)
{
    if (b->flags & KVB_BACKEND_RECOMPUTE) return "causal-gemm";
    if (b->flags & KVB_BACKEND_QUANT) {
        int group = o->group ? o->group : 32;
        const kvb_qkernels *k = kvb_qkernels_find(o->qkernel, s->head_dim, group, NULL, 0);
        return k ? k->name : "unsupported";
    }
    const kvb_attend_kernel *k = kvb_attend_kernel_find(o->kernel, s->head_dim, NULL, 0);
    return k ? k->name : "unsupported";
}

kvb_status kvb_backend_check(const kvb_backend *b, char *msg, size_t msg_len)
{
    if (!b) {
        snprintf(msg, msg_len, "no backend");
        return KVB_STATUS_INVALID_ARG;
    }
    if (b->version < KVB_BACKEND_VERSION_MIN || b->version > KVB_BACKEND_VERSION) {
        snprintf(msg, msg_len, "backend %s: interface version %u, this build speaks %d to %d",
                 b->name, b->version, KVB_BACKEND_VERSION_MIN, KVB_BACKEND_VERSION);
        return KVB_STATUS_UNSUPPORTED;
    }
    int stores = !(b->flags & KVB_BACKEND_RECOMPUTE);
    if (!b->create || !b->destroy || !b->memory || !b->length ||
        (stores && (!b->append || !b->attend))) {
        snprintf(msg, msg_len, "backend %s: a slot the contract requires is NULL", b->name);
        return KVB_STATUS_INVALID_ARG;
    }
    return KVB_STATUS_OK;
}

kvb_status kvb_backend_supports(const kvb_backend *b, const kvb_shape *s,
                                const kvb_options *o, char *why, size_t why_len)
{
    kvb_status st = kvb_backend_check(b, why, why_len);
    if (st != KVB_STATUS_OK) return st;
    st = kvb_shape_check(s, why, why_len);
    if (st != KVB_STATUS_OK) return st;
    const kvb_type_traits *t = kvb_type_traits_of(o->dtype);
    if (!t || o->alloc < 0 || o->alloc >= KVB_ALLOC_COUNT) {
        snprintf(why, why_len, "storage type %d or allocation mode %d out of range",
                 (int)o->dtype, (int)o->alloc);
        return KVB_STATUS_INVALID_ARG;
    }
    /* the type's readers must be the loops the backend runs */
    int quant = (b->flags & KVB_BACKEND_QUANT) != 0;
    if ((t->readers == KVB_READ_QUANT) != quant) {
        snprintf(why, why_len, "storage type %s: %s", t->name,
                 quant ? "this backend stores only q8, q4, q4_1 and q2"
                       : "quantized types are stored by backend quant");
        return KVB_STATUS_UNSUPPORTED;
    }
    if (o->max_seqs < 1) {
        snprintf(why, why_len, "max_seqs = %d: must be at least 1", o->max_seqs);
        return KVB_STATUS_INVALID_ARG;
    }
    if (!kvb_attend_kernel_known(o->kernel)) {
        snprintf(why, why_len, "attend kernel '%s': allowed are auto, avx512, avx2, portable",
                 o->kernel);
        return KVB_STATUS_INVALID_ARG;
    }
    /* the quantized backend has its own loops (qkernel); recompute attends activations */
    if (!(b->flags & (KVB_BACKEND_QUANT | KVB_BACKEND_RECOMPUTE)) &&
        !kvb_attend_kernel_find(o->kernel, s->head_dim, why, why_len))
        return KVB_STATUS_UNSUPPORTED;
    return b->supports ? b->supports(s, o, why, why_len) : KVB_STATUS_OK;
}
