/* quant.c: see quant.h. Quantization, packing and the portable fused loops. */
#include "quant.h"
#include "kernels.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define KVB_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define KVB_HOT
#endif

const kvb_qformat *kvb_qformat_of(kvb_dtype dt)
{
    const kvb_type_traits *t = kvb_type_traits_of(dt);
    return t && t->readers == KVB_READ_QUANT ? t : NULL;
}

enum { F16_MAX_BITS = 0x7bffu };      /* 65504 */

/* Smallest f16 >= x, for 0 <= x; capped at 65504. */
static uint16_t f16_round_up(float x)
{
    if (!(x < 65504.0f)) return F16_MAX_BITS;
    uint16_t h = kvb_f32_to_f16(x);
    if (kvb_f16_to_f32(h) < x) h++;    /* positive: the next code is the next larger value */
    return h;
}

/* Largest f16 <= x; capped at -65504 and 65504. */
static uint16_t f16_round_down(float x)
{
    if (!(x > -65504.0f)) return 0x8000u | F16_MAX_BITS;
    if (x > 65504.0f) return F16_MAX_BITS;
    uint16_t h = kvb_f32_to_f16(x);
    if (kvb_f16_to_f32(h) > x) {
        if (h == 0) h = 0x8001u;                 /* +0 -> the smallest negative */
        else if (h & 0x8000u) h++;               /* negative: larger magnitude */
        else h--;
    }
    return h;
}

/* round(v) clamped to [lo, hi]; the clamp comes first so huge v never reaches lrintf */
static int clampi(float v, int lo, int hi)
{
    return (int)lrintf(fminf(fmaxf(v, (float)lo), (float)hi));
}

void kvb_quant_group(const kvb_qformat *f, const float *x, size_t stride, int n,
                     uint8_t *codes, uint16_t *p)
{
    if (!f->asym) {
        const int qs = f->zero - 1;              /* 127 or 7: a symmetric code range */
        float amax = 0.0f;
        for (int i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[(size_t)i * stride]));
#ifdef KVB_PLANT_COARSER_Q8_PCT
        /* a planted fault for the regression gate's test (make regress PLANT_Q8=pct):
         * q8's step pct% coarser, so its errors grow about as much */
        if (qs == 127) amax *= 1.0f + (float)(KVB_PLANT_COARSER_Q8_PCT) / 100.0f;
#endif
        p[0] = f16_round_up(amax / (float)qs);
        float d = kvb_f16_to_f32(p[0]), id = d > 0.0f ? 1.0f / d : 0.0f;
        for (int i = 0; i < n; i++)
            codes[i] = (uint8_t)(clampi(x[(size_t)i * stride] * id, -qs, qs) + f->zero);
        return;
    }
    float mn = x[0], mx = x[0];
    for (int i = 1; i < n; i++) {
        mn = fminf(mn, x[(size_t)i * stride]);
        mx = fmaxf(mx, x[(size_t)i * stride]);
    }
    p[1] = f16_round_down(mn);
    float m = kvb_f16_to_f32(p[1]);
    /* halves first: mx - m may overflow f32 where both are huge */
    float span = 2.0f * (0.5f * mx - 0.5f * m);
    p[0] = f16_round_up(span / (float)f->cmax);
    float d = kvb_f16_to_f32(p[0]), id = d > 0.0f ? 1.0f / d : 0.0f;
    for (int i = 0; i < n; i++)
        codes[i] = (uint8_t)clampi((x[(size_t)i * stride] - m) * id, 0, f->cmax);
}

void kvb_qgroup_coeffs(const kvb_qformat *f, const uint16_t *p, float *d, float *a)
{
    *d = kvb_f16_to_f32(p[0]);
    *a = f->asym ? kvb_f16_to_f32(p[1]) : -(float)f->zero * *d;
}

void kvb_qpack(const kvb_qformat *f, const uint8_t *codes, int n, uint8_t *dst)
{
    const int per = 8 / f->bits;                 /* codes per byte */
    for (int j = 0; j < n / per; j++) {
        unsigned b = 0;
        for (int r = 0; r < per; r++) b |= (unsigned)codes[j * per + r] << (r * f->bits);
        dst[j] = (uint8_t)b;
    }
}

void kvb_qunpack(const kvb_qformat *f, const uint8_t *src, int n, uint8_t *codes)
{
    const int per = 8 / f->bits;
    const unsigned mask = (unsigned)f->cmax;
    for (int j = 0; j < n / per; j++)
        for (int r = 0; r < per; r++)
            codes[j * per + r] = (uint8_t)((src[j] >> (r * f->bits)) & mask);
}

/* One row's codes, unpacked and dequantized into dst[head_dim]. The three
 * widths are separate loops so each vectorizes. */
KVB_HOT
void kvb_qrow_dequant(const kvb_qrows *r, int t, float *dst)
{
    const kvb_qformat *f = r->fmt;
    const uint8_t *c = r->codes + (size_t)t * r->code_stride;
    const uint16_t *p = r->params + (size_t)t * r->param_stride;
    const int np = kvb_qparams(f);
    for (int g0 = 0, gi = 0; g0 < r->head_dim; g0 += r->group, gi++) {
        float d, a;
        kvb_qgroup_coeffs(f, p + gi * np, &d, &a);
        float *o = dst + g0;
        if (f->bits == 8) {
            const uint8_t *s = c + g0;
            for (int i = 0; i < r->group; i++) o[i] = d * (float)s[i] + a;
        } else if (f->bits == 4) {
            const uint8_t *s = c + g0 / 2;
            for (int i = 0; i < r->group / 2; i++) {
                o[2 * i] = d * (float)(s[i] & 15u) + a;
                o[2 * i + 1] = d * (float)(s[i] >> 4) + a;
            }
        } else {
            const uint8_t *s = c + g0 / 4;
            for (int i = 0; i < r->group / 4; i++) {
                o[4 * i] = d * (float)(s[i] & 3u) + a;
                o[4 * i + 1] = d * (float)((s[i] >> 2) & 3u) + a;
                o[4 * i + 2] = d * (float)((s[i] >> 4) & 3u) + a;
                o[4 * i + 3] = d * (float)(s[i] >> 6) + a;
            }
        }
    }
}

/* Row t's codes as floats, no coefficients (params-less rows). */
KVB_HOT
void kvb_qrow_codes(const kvb_qrows *r, int t, float *dst)
{
    const uint8_t *c = r->codes + (size_t)t * r->code_stride;
    if (r->fmt->bits == 8) {
        for (int i = 0; i < r->head_dim; i++) dst[i] = (float)c[i];
    } else if (r->fmt->bits == 4) {
        for (int i = 0; i < r->head_dim / 2; i++) {
            dst[2 * i] = (float)(c[i] & 15u);
            dst[2 * i + 1] = (float)(c[i] >> 4);
        }
    } else {
        for (int i = 0; i < r->head_dim / 4; i++)
            for (int j = 0; j < 4; j++) dst[4 * i + j] = (float)((c[i] >> (2 * j)) & 3u);
    }
}

static void scores_portable(const kvb_qrows *k, int g, const float *q, float scale,
                            float *s, size_t s_stride, float *scratch)
{
    for (int t = 0; t < k->n; t++) {
        if (k->params) kvb_qrow_dequant(k, t, scratch);
        else           kvb_qrow_codes(k, t, scratch);
        for (int i = 0; i < g; i++)
            s[(size_t)i * s_stride + t] =
                scale * kvb_dot_f32(q + (size_t)i * k->head_dim, scratch, k->head_dim);
    }
}

static void accum_portable(const kvb_qrows *v, int g, const float *w, size_t w_stride, float *out,
                           float *scratch)
{
    for (int t = 0; t < v->n; t++) {
        kvb_qrow_dequant(v, t, scratch);
        for (int i = 0; i < g; i++)
            kvb_axpy_f32(w[(size_t)i * w_stride + t], scratch, out + (size_t)i * v->head_dim,
                         v->head_dim);
    }
}

float kvb_softmax_exp_portable(float *s, int n)
{
    float mx = s[0], sum = 0.0f;
    for (int t = 1; t < n; t++) mx = s[t] > mx ? s[t] : mx;
    for (int t = 0; t < n; t++) { s[t] = expf(s[t] - mx); sum += s[t]; }
    return sum;
}

const kvb_qkernels kvb_qkernels_portable = {
    .name = "portable",
    .rounds_query = 0,
    .scores = scores_portable,
    .accum = accum_portable,
    .softmax_exp = kvb_softmax_exp_portable,
};

const kvb_qkernels *kvb_qkernels_pick(int head_dim, int group)
{
    const kvb_qkernels *vnni = kvb_qkernels_avx512_vnni(), *simd = kvb_qkernels_avx512();
    if (head_dim % 32 == 0 && group % 32 == 0) {
        if (vnni) return vnni;
        if (simd) return simd;
    }
    return &kvb_qkernels_portable;
}

const char *const kvb_qkernel_names[KVB_QKERNEL_COUNT] = {"auto", "portable", "avx512",
                                                           "avx512-vnni", "avx512-vnni-int8"};

int kvb_qkernels_known(const char *name)
{
    if (!name || !*name) return 1;
    for (int i = 0; i < KVB_QKERNEL_COUNT; i++)
        if (strcmp(name, kvb_qkernel_names[i]) == 0) return 1;
    return 0;
}

const kvb_qkernels *kvb_qkernels_find(const char *name, int head_dim, int group, char *why,
                                      size_t why_len)
{
    if (!name || !*name || strcmp(name, "auto") == 0) return kvb_qkernels_pick(head_dim, group);
    if (strcmp(name, "portable") == 0) return &kvb_qkernels_portable;
    if (!kvb_qkernels_known(name)) {   /* the allowed names, from the one list */
        int at = snprintf(why, why_len, "quant kernel '%s': allowed are", name);
        for (int i = 0; i < KVB_QKERNEL_COUNT && at >= 0 && (size_t)at < why_len; i++)
            at += snprintf(why + at, why_len - (size_t)at, "%s %s", i ? "," : "",
                           kvb_qkernel_names[i]);
        return NULL;
    }
    /* the shape first: the same answer on every CPU */
    if (head_dim % 32 || group % 32) {
        snprintf(why, why_len,
                 "quant kernel '%s' needs head_dim and group multiples of 32 (have %d, %d)", name,
                 head_dim, group);
        return NULL;
    }
    const kvb_qkernels *t = strcmp(name, "avx512") == 0        ? kvb_qkernels_avx512()
                            : strcmp(name, "avx512-vnni") == 0 ? kvb_qkernels_avx512_vnni()
                                                               : kvb_qkernels_avx512_vnni_int8();
    if (!t) snprintf(why, why_len, "quant kernel '%s': this CPU or build lacks it", name);
    return t;
}
