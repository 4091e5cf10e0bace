/* wtypes.c: see kvb_types.h. The weight storage types' table and their row
 * conversions (f16/bf16 through types.c's scalar converters; q8_0 as ggml
 * writes it). Pure functions over caller-owned memory. */
#include "kvb_types.h"

#include <math.h>
#include <string.h>

static const kvb_wtype_traits wtypes[KVB_WTYPE_COUNT] = {
    {KVB_WTYPE_F32, "f32", 1, 4},
    {KVB_WTYPE_F16, "f16", 1, 2},
    {KVB_WTYPE_BF16, "bf16", 1, 2},
    {KVB_WTYPE_Q8_0, "q8_0", KVB_Q8_0_BLOCK, KVB_Q8_0_BYTES},
};

const kvb_wtype_traits *kvb_wtype_traits_of(kvb_wtype t)
{
    return (t >= 0 && t < KVB_WTYPE_COUNT) ? &wtypes[t] : NULL;
}

const char *kvb_wtype_name(kvb_wtype t)
{
    const kvb_wtype_traits *r = kvb_wtype_traits_of(t);
    return r ? r->name : "?";
}

kvb_status kvb_wtype_parse(const char *name, kvb_wtype *out)
{
    for (int i = 0; name && i < KVB_WTYPE_COUNT; i++)
        if (strcmp(name, wtypes[i].name) == 0) { *out = (kvb_wtype)i; return KVB_STATUS_OK; }
    return KVB_STATUS_INVALID_ARG;
}

size_t kvb_wtype_row_bytes(kvb_wtype t, int n)
{
    const kvb_wtype_traits *r = kvb_wtype_traits_of(t);
    if (!r || n < 0 || n % r->block) return 0;
    return (size_t)(n / r->block) * r->block_bytes;
}

void kvb_wrow_from_f32(kvb_wtype t, const float *src, void *dst, int n)
{
    uint8_t *b = dst;
    switch (t) {
    case KVB_WTYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case KVB_WTYPE_F16: kvb_row_from_f32(KVB_DTYPE_F16, src, dst, n); break;
    case KVB_WTYPE_BF16: kvb_row_from_f32(KVB_DTYPE_BF16, src, dst, n); break;
    case KVB_WTYPE_Q8_0:
        for (int c = 0; c + KVB_Q8_0_BLOCK <= n; c += KVB_Q8_0_BLOCK, b += KVB_Q8_0_BYTES) {
            float amax = 0.0f;
            for (int e = 0; e < KVB_Q8_0_BLOCK; e++) amax = fmaxf(amax, fabsf(src[c + e]));
            uint16_t h = kvb_f32_to_f16(amax / 127.0f);
            float d = kvb_f16_to_f32(h), id = d > 0.0f ? 1.0f / d : 0.0f;
            memcpy(b, &h, 2);
            for (int e = 0; e < KVB_Q8_0_BLOCK; e++)   /* the clamp first: d was rounded */
                b[2 + e] = (uint8_t)(int8_t)lrintf(fminf(fmaxf(src[c + e] * id, -127.0f), 127.0f));
        }
        break;
    default: break;
    }
}

void kvb_wrow_to_f32(kvb_wtype t, const void *src, float *dst, int n)
{
    const uint8_t *b = src;
    switch (t) {
    case KVB_WTYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case KVB_WTYPE_F16: kvb_row_to_f32(KVB_DTYPE_F16, src, dst, n); break;
    case KVB_WTYPE_BF16: kvb_row_to_f32(KVB_DTYPE_BF16, src, dst, n); break;
    case KVB_WTYPE_Q8_0:
        for (int c = 0; c + KVB_Q8_0_BLOCK <= n; c += KVB_Q8_0_BLOCK, b += KVB_Q8_0_BYTES) {
            uint16_t h;
            memcpy(&h, b, 2);
            float d = kvb_f16_to_f32(h);
            for (int e = 0; e < KVB_Q8_0_BLOCK; e++) dst[c + e] = d * (float)(int8_t)b[2 + e];
        }
        break;
    default: for (int i = 0; i < n; i++) dst[i] = 0.0f; break;
    }
}
