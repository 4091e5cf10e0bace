/* types.c: see kvb_types.h. The one table of storage types, the status strings,
 * and the f16/bf16 conversions the dense rows are stored through. */
#include "kvb_types.h"

#include <string.h>

/* Row loops that vectorize: on x86-64 with GCC also built for x86-64-v3 and
 * x86-64-v4 and picked at load time from CPUID */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define KVB_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define KVB_HOT
#endif

static const char *const status_names[KVB_STATUS_COUNT] = {
    [KVB_STATUS_OK] = "ok",
    [KVB_STATUS_INVALID_ARG] = "invalid argument",
    [KVB_STATUS_NO_MEMORY] = "out of memory",
    [KVB_STATUS_UNSUPPORTED] = "unsupported by this backend",
    [KVB_STATUS_FULL] = "cache full",
    [KVB_STATUS_IO] = "input/output error",
    [KVB_STATUS_FORMAT] = "bad file format",
};

const char *kvb_status_str(kvb_status s)
{
    return (s >= 0 && s < KVB_STATUS_COUNT) ? status_names[s] : "unknown status";
}

static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

uint16_t kvb_f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u)                     /* Inf or NaN (keep NaN quiet) */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u));
    if (ax >= 0x477ff000u)                     /* rounds to >= 65520: overflow */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) {                    /* below 2^-14: f16 subnormal or 0 */
        /* adding 0.5 aligns the mantissa so the FPU's own RNE does the rounding */
        float r = bits_f32(ax) + 0.5f;
        return (uint16_t)(sign | (uint16_t)(f32_bits(r) - 0x3f000000u));
    }
    uint32_t mant_odd = (ax >> 13) & 1u;
    ax += 0xc8000fffu + mant_odd;              /* rebias exponent and round */
    return (uint16_t)(sign | (uint16_t)(ax >> 13));
}

float kvb_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t em = h & 0x7fffu;
    if (em >= 0x7c00u)                         /* Inf/NaN */
        return bits_f32(sign | 0x7f800000u | ((em & 0x3ffu) << 13));
    if (em < 0x0400u)                          /* subnormal or zero: m * 2^-24 */
        return bits_f32(sign | f32_bits((float)em * 5.9604644775390625e-8f));
    return bits_f32(sign | ((em << 13) + 0x38000000u));
}

uint16_t kvb_f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)       /* NaN: keep it a quiet NaN */
        return (uint16_t)((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

float kvb_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

static void f32_copy_from(const float *src, void *dst, int n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static void f32_copy_to(const void *src, float *dst, int n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static void f16_from_f32(const float *src, void *dst, int n)
{
    uint16_t *d = dst;
    for (int i = 0; i < n; i++) d[i] = kvb_f32_to_f16(src[i]);
}

static void bf16_from_f32(const float *src, void *dst, int n)
{
    uint16_t *d = dst;
    for (int i = 0; i < n; i++) d[i] = kvb_f32_to_bf16(src[i]);
}

KVB_HOT
static void f16_to_f32(const void *src, float *d, int n)
{
    const uint16_t *s = src;
    for (int i = 0; i < n; i++) d[i] = kvb_f16_to_f32(s[i]);
}

KVB_HOT
static void bf16_to_f32(const void *src, float *d, int n)
{
    const uint16_t *s = src;
    for (int i = 0; i < n; i++) d[i] = bits_f32((uint32_t)s[i] << 16);
}

/* Indexed by kvb_dtype. The quantized rows' asym, zero and cmax are the
 * formats kernels/quant.h reads; keys_per_channel is KIVI's choice for q2. */
static const kvb_type_traits traits[KVB_DTYPE_COUNT] = {
    [KVB_DTYPE_F32] = {KVB_DTYPE_F32, "f32", "IEEE binary32", 4, 32, 1, KVB_READ_DENSE, 0,
                       f32_copy_from, f32_copy_to, 0, 0, 0},
    [KVB_DTYPE_F16] = {KVB_DTYPE_F16, "f16", "IEEE binary16", 2, 16, 1, KVB_READ_DENSE, 0,
                       f16_from_f32, f16_to_f32, 0, 0, 0},
    [KVB_DTYPE_BF16] = {KVB_DTYPE_BF16, "bf16", "bfloat16", 2, 16, 1, KVB_READ_DENSE, 0,
                        bf16_from_f32, bf16_to_f32, 0, 0, 0},
    [KVB_DTYPE_Q8] = {KVB_DTYPE_Q8, "q8", "int8 codes, f16 scale per group (llama.cpp q8_0)",
                      0, 8, 32, KVB_READ_QUANT, 0, NULL, NULL, 0, 128, 255},
    [KVB_DTYPE_Q4] = {KVB_DTYPE_Q4, "q4", "4-bit symmetric codes, f16 scale per group (q4_0)",
                      0, 4, 32, KVB_READ_QUANT, 0, NULL, NULL, 0, 8, 15},
    [KVB_DTYPE_Q4_1] = {KVB_DTYPE_Q4_1, "q4_1",
                        "4-bit codes, f16 scale and minimum per group (q4_1)",
                        0, 4, 32, KVB_READ_QUANT, 0, NULL, NULL, 1, 0, 15},
    [KVB_DTYPE_Q2] = {KVB_DTYPE_Q2, "q2",
                      "2-bit codes, f16 scale and zero point per group; KIVI: keys per channel, "
                      "128 f32 residual",
                      0, 2, 32, KVB_READ_QUANT, 1, NULL, NULL, 1, 0, 3},
};

const kvb_type_traits *kvb_type_traits_of(kvb_dtype t)
{
    return (t >= 0 && t < KVB_DTYPE_COUNT) ? &traits[t] : NULL;
}

const char *kvb_dtype_name(kvb_dtype t)
{
    const kvb_type_traits *r = kvb_type_traits_of(t);
    return r ? r->name : "?";
}

size_t kvb_dtype_size(kvb_dtype t)
{
    const kvb_type_traits *r = kvb_type_traits_of(t);
    return r ? r->size : 0;
}

int kvb_dtype_is_quant(kvb_dtype t)
{
    const kvb_type_traits *r = kvb_type_traits_of(t);
    return r && r->readers == KVB_READ_QUANT;
}

double kvb_dtype_bits(kvb_dtype t, int group)
{
    const kvb_type_traits *r = kvb_type_traits_of(t);
    if (!r) return 0.0;
    if (r->readers != KVB_READ_QUANT) return 8.0 * (double)r->size;
    if (group <= 0) group = r->block;
    return r->bits + 16.0 * (r->asym ? 2 : 1) / group;     /* an f16 scale (and minimum) */
}

kvb_status kvb_dtype_parse(const char *name, kvb_dtype *out)
{
    for (int i = 0; name && i < KVB_DTYPE_COUNT; i++)
        if (strcmp(name, traits[i].name) == 0) {
            *out = (kvb_dtype)i;
            return KVB_STATUS_OK;
        }
    return KVB_STATUS_INVALID_ARG;
}

void kvb_row_from_f32(kvb_dtype dt, const float *src, void *dst, int n)
{
    const kvb_type_traits *r = kvb_type_traits_of(dt);
    if (r && r->from_f32) r->from_f32(src, dst, n);   /* others are refused at create */
}

void kvb_row_to_f32(kvb_dtype dt, const void *src, float *dst, int n)
{
    const kvb_type_traits *r = kvb_type_traits_of(dt);
    if (r && r->to_f32) r->to_f32(src, dst, n);
    else memset(dst, 0, (size_t)n * sizeof(float));
}
