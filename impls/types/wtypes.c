/* wtypes.c: see kvb_types.h. The weight storage types' table and their row
 * conversions (f16/bf16 through types.c's scalar converters; the block types
 * in ggml's layouts, dequantized as ggml's dequantize_row_* do). Pure
 * functions over caller-owned memory. */
#include "kvb_types.h"

#include <math.h>
#include <string.h>

static const kvb_wtype_traits wtypes[KVB_WTYPE_COUNT] = {
    {KVB_WTYPE_F32, "f32", 1, 4, 0},
    {KVB_WTYPE_F16, "f16", 1, 2, 1},
    {KVB_WTYPE_BF16, "bf16", 1, 2, 30},
    {KVB_WTYPE_Q8_0, "q8_0", KVB_Q8_0_BLOCK, KVB_Q8_0_BYTES, 8},
    {KVB_WTYPE_Q4_0, "q4_0", KVB_Q4_0_BLOCK, KVB_Q4_0_BYTES, 2},
    {KVB_WTYPE_Q4_K, "q4_k", KVB_QK_BLOCK, KVB_Q4_K_BYTES, 12},
    {KVB_WTYPE_Q6_K, "q6_k", KVB_QK_BLOCK, KVB_Q6_K_BYTES, 14},
};

static void put_f16(uint8_t *b, float f)
{
    uint16_t h = kvb_f32_to_f16(f);
    memcpy(b, &h, 2);
}

static float get_f16(const uint8_t *b)
{
    uint16_t h;
    memcpy(&h, b, 2);
    return kvb_f16_to_f32(h);
}

static int clampi(long v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : (int)v;
}

/* ggml's quantize_row_q4_0_ref: the value of largest magnitude maps to -8 */
static void q4_0_from(const float *x, uint8_t *b)
{
    float amax = 0.0f, max = 0.0f;
    for (int e = 0; e < KVB_Q4_0_BLOCK; e++)
        if (fabsf(x[e]) > amax) { amax = fabsf(x[e]); max = x[e]; }
    const float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(b, d);
    for (int j = 0; j < KVB_Q4_0_BLOCK / 2; j++) {
        int lo = clampi((long)(x[j] * id + 8.5f), 0, 15);
        int hi = clampi((long)(x[j + 16] * id + 8.5f), 0, 15);
        b[2 + j] = (uint8_t)(lo | hi << 4);
    }
}

static void q4_0_to(const uint8_t *b, float *y)
{
    const float d = get_f16(b);
    for (int j = 0; j < KVB_Q4_0_BLOCK / 2; j++) {
        y[j] = d * (float)((b[2 + j] & 15) - 8);
        y[j + 16] = d * (float)((b[2 + j] >> 4) - 8);
    }
}

/* ggml's get_scale_min_k4: sub-block j's 6-bit scale and min from the 12 bytes */
void kvb_q4_k_scale_min(int j, const uint8_t *q, int *sc, int *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 15) | (q[j - 4] >> 6) << 4;
        *m = (q[j + 4] >> 4) | (q[j] >> 6) << 4;
    }
}

/* [d f16][dmin f16][scales 12][qs 128]: per sub-block of 32 a min/max fit */
static void q4_k_from(const float *x, uint8_t *b)
{
    float scale[8], min[8], smax = 0.0f, mmax = 0.0f;
    for (int s = 0; s < 8; s++) {
        float lo = x[32 * s], hi = x[32 * s];
        for (int l = 1; l < 32; l++) {
            lo = fminf(lo, x[32 * s + l]);
            hi = fmaxf(hi, x[32 * s + l]);
        }
        if (lo > 0.0f) lo = 0.0f;
        scale[s] = (hi - lo) / 15.0f;
        min[s] = -lo;
        smax = fmaxf(smax, scale[s]);
        mmax = fmaxf(mmax, min[s]);
    }
    put_f16(b, smax / 63.0f);
    put_f16(b + 2, mmax / 63.0f);
    const float d = get_f16(b), dmin = get_f16(b + 2);
    uint8_t *sc = b + 4, *qs = b + 16;
    int isc[8], im[8];
    for (int s = 0; s < 8; s++) {
        isc[s] = d > 0.0f ? clampi(lrintf(scale[s] / d), 0, 63) : 0;
        im[s] = dmin > 0.0f ? clampi(lrintf(min[s] / dmin), 0, 63) : 0;
    }
    for (int j = 0; j < 4; j++) {
        sc[j] = (uint8_t)(isc[j] | (isc[j + 4] >> 4) << 6);
        sc[j + 4] = (uint8_t)(im[j] | (im[j + 4] >> 4) << 6);
        sc[j + 8] = (uint8_t)((isc[j + 4] & 15) | (im[j + 4] & 15) << 4);
    }
    for (int s = 0; s < 8; s++) {
        const float ds = d * (float)isc[s], dm = dmin * (float)im[s];
        for (int l = 0; l < 32; l++) {
            int q = ds > 0.0f ? clampi(lrintf((x[32 * s + l] + dm) / ds), 0, 15) : 0;
            uint8_t *o = &qs[32 * (s / 2) + l];
            *o = (uint8_t)(s % 2 ? (*o & 15) | q << 4 : q);
        }
    }
}

static void q4_k_to(const uint8_t *b, float *y)
{
    const float d = get_f16(b), dmin = get_f16(b + 2);
    for (int s = 0; s < 8; s++) {
        int sc, m;
        kvb_q4_k_scale_min(s, b + 4, &sc, &m);
        const float ds = d * (float)sc, dm = dmin * (float)m;
        const uint8_t *q = b + 16 + 32 * (s / 2);
        for (int l = 0; l < 32; l++)
            y[32 * s + l] = ds * (float)(s % 2 ? q[l] >> 4 : q[l] & 15) - dm;
    }
}

/* [ql 128][qh 64][scales 16][d f16]. In each half of 128 values, l < 32:
 * values l, l+32, l+64, l+96 take ql[l] low, ql[l+32] low, ql[l] high,
 * ql[l+32] high for their low 4 bits and qh[l]'s bit pairs 0, 1, 2, 3 for
 * their high 2; ql moves on 64 bytes, qh 32 and the scales 8 a half. */
static void q6_k_from(const float *x, uint8_t *b)
{
    float scale[16], smax = 0.0f, samax = 0.0f;
    for (int s = 0; s < 16; s++) {
        float amax = 0.0f, max = 0.0f;
        for (int l = 0; l < 16; l++)
            if (fabsf(x[16 * s + l]) > amax) { amax = fabsf(x[16 * s + l]); max = x[16 * s + l]; }
        scale[s] = max / -32.0f;
        if (fabsf(scale[s]) > samax) { samax = fabsf(scale[s]); smax = scale[s]; }
    }
    uint8_t *ql = b, *qh = b + 128, *sc = b + 192;
    put_f16(b + 208, smax / -128.0f);
    const float d = get_f16(b + 208);
    memset(b, 0, 192);
    for (int s = 0; s < 16; s++) {
        int is = d != 0.0f ? clampi(lrintf(scale[s] / d), -128, 127) : 0;
        sc[s] = (uint8_t)(int8_t)is;
        const float ds = d * (float)is;
        for (int l = 0; l < 16; l++) {
            const int i = 16 * s + l, h = i / 128, k = i % 128, j = k % 32, part = k / 32;
            int q = ds != 0.0f ? clampi(lrintf(x[i] / ds), -32, 31) + 32 : 32;
            ql[64 * h + j + (part & 1) * 32] |= (uint8_t)((q & 15) << (part & 2 ? 4 : 0));
            qh[32 * h + j] |= (uint8_t)((q >> 4) << (2 * part));
        }
    }
}

/* one value: (d * scale) * (code - 32), code from its low 4 and high 2 bits */
static float q6v(float d, int8_t sc, int lo4, int hi2)
{
    return d * (float)sc * (float)((lo4 | hi2 << 4) - 32);
}

/* per half and l < 32 the four values of the layout above */
static void q6_k_to(const uint8_t *b, float *y)
{
    const float d = get_f16(b + 208);
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
        const int8_t *sc = (const int8_t *)(b + 192 + 8 * h);
        float *o = y + 128 * h;
        for (int l = 0; l < 32; l++) {
            const int is = l / 16;
            o[l] = q6v(d, sc[is], ql[l] & 15, qh[l] & 3);
            o[l + 32] = q6v(d, sc[is + 2], ql[l + 32] & 15, (qh[l] >> 2) & 3);
            o[l + 64] = q6v(d, sc[is + 4], ql[l] >> 4, (qh[l] >> 4) & 3);
            o[l + 96] = q6v(d, sc[is + 6], ql[l + 32] >> 4, qh[l] >> 6);
        }
    }
}

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
    case KVB_WTYPE_Q4_0:
        for (int c = 0; c + KVB_Q4_0_BLOCK <= n; c += KVB_Q4_0_BLOCK, b += KVB_Q4_0_BYTES)
            q4_0_from(src + c, b);
        break;
    case KVB_WTYPE_Q4_K:
        for (int c = 0; c + KVB_QK_BLOCK <= n; c += KVB_QK_BLOCK, b += KVB_Q4_K_BYTES)
            q4_k_from(src + c, b);
        break;
    case KVB_WTYPE_Q6_K:
        for (int c = 0; c + KVB_QK_BLOCK <= n; c += KVB_QK_BLOCK, b += KVB_Q6_K_BYTES)
            q6_k_from(src + c, b);
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
    case KVB_WTYPE_Q4_0:
        for (int c = 0; c + KVB_Q4_0_BLOCK <= n; c += KVB_Q4_0_BLOCK, b += KVB_Q4_0_BYTES)
            q4_0_to(b, dst + c);
        break;
    case KVB_WTYPE_Q4_K:
        for (int c = 0; c + KVB_QK_BLOCK <= n; c += KVB_QK_BLOCK, b += KVB_Q4_K_BYTES)
            q4_k_to(b, dst + c);
        break;
    case KVB_WTYPE_Q6_K:
        for (int c = 0; c + KVB_QK_BLOCK <= n; c += KVB_QK_BLOCK, b += KVB_Q6_K_BYTES)
            q6_k_to(b, dst + c);
        break;
    default: for (int i = 0; i < n; i++) dst[i] = 0.0f; break;
    }
}
