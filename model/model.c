/* model.c: see model.h. The shapes (presets, checks, sizes), the weights'
 * in-memory layout and seeded random init, kvb_model_finish (every matrix
 * checked against the config, RoPE's scaled frequencies) and the activation
 * state. The llama2.c files are in llama2c.c, the forward passes in forward.c. */
#include "model.h"
#include "model_slots.h"
#include "../impls/kernels/kernels.h"
#include "../impls/kernels/pool.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the llama2.c-era fields; the rest (eps, RoPE layout and scaling) left at their defaults */
#define P(...) {__VA_ARGS__, 0.0f, 0, 0, 0.0f, 0.0f, 0.0f, 0}
static const struct { const char *name; kvb_model_config cfg; } presets[] = {
    /* name          dim  hidden layers heads kv  hd  vocab  max_seq theta shared */
    /* tiny keeps a separate classifier: with a shared one, random weights make
     * greedy decoding repeat its input token, which would hide ordering bugs */
    {"tiny",        P(64,   172,  2,    4,   2,  16,  256,    256, 10000.0f, 0)},
    {"stories15m",  P(288,  768,  6,    6,   6,  48,  32000, 1024, 10000.0f, 1)},
    {"stories110m", P(768,  2048, 12,   12,  12, 64,  32000, 1024, 10000.0f, 1)},
    /* TinyLlama-1.1B proportions: 32 query heads share 4 KV heads (8:1) */
    {"gqa1b",       P(2048, 5632, 22,   32,  4,  64,  32000, 2048, 10000.0f, 0)},
    /* published models' shapes (their config.json), for shape-only use (attend, serve-sim);
     * Mistral's sliding window of 4096 and Llama 3.2's RoPE scaling are left out */
    {"llama2-7b",   P(4096, 11008, 32,  32,  32, 128, 32000, 4096, 10000.0f, 0)},
    {"llama3-8b",   P(4096, 14336, 32,  32,  8,  128, 128256, 8192, 500000.0f, 0)},
    {"mistral-7b",  P(4096, 14336, 32,  32,  8,  128, 32000, 32768, 10000.0f, 0)},
    {"llama3.2-1b", P(2048, 8192,  16,  32,  8,  64,  128256, 131072, 500000.0f, 1)},
    {"tinyllama",   P(2048, 5632,  22,  32,  4,  64,  32000, 2048, 10000.0f, 0)},
};
#undef P
enum { N_PRESETS = sizeof presets / sizeof presets[0] };

const char *kvb_model_preset_name(int i)
{
    return (i >= 0 && i < (int)N_PRESETS) ? presets[i].name : NULL;
}

kvb_status kvb_model_preset(const char *name, kvb_model_config *out)
{
    for (int i = 0; name && i < (int)N_PRESETS; i++)
        if (strcmp(presets[i].name, name) == 0) { *out = presets[i].cfg; return KVB_STATUS_OK; }
    return KVB_STATUS_INVALID_ARG;
}

/* The RoPE fields beyond theta: a layout and a scaling this code knows, with
 * factors that give finite, positive frequencies. */
static kvb_status rope_check(const kvb_model_config *c, char *msg, size_t msg_len)
{
    if (c->rope_layout != KVB_ROPE_LAYOUT_INTERLEAVED && c->rope_layout != KVB_ROPE_LAYOUT_HALF) {
        snprintf(msg, msg_len, "rope-layout = %d: allowed are %d (interleaved) and %d (half)",
                 c->rope_layout, KVB_ROPE_LAYOUT_INTERLEAVED, KVB_ROPE_LAYOUT_HALF);
        return KVB_STATUS_INVALID_ARG;
    }
    if (c->rope_scaling < KVB_ROPE_SCALING_NONE || c->rope_scaling > KVB_ROPE_SCALING_LLAMA3) {
        snprintf(msg, msg_len, "rope-scaling = %d: allowed are %d (none), %d (linear), %d (llama3)",
                 c->rope_scaling, KVB_ROPE_SCALING_NONE, KVB_ROPE_SCALING_LINEAR,
                 KVB_ROPE_SCALING_LLAMA3);
        return KVB_STATUS_INVALID_ARG;
    }
    if (c->rope_scaling == KVB_ROPE_SCALING_NONE) return KVB_STATUS_OK;
    if (!(c->rope_factor > 0.0f) || !isfinite(c->rope_factor)) {
        snprintf(msg, msg_len, "rope-factor = %g: must be a finite number above 0",
                 (double)c->rope_factor);
        return KVB_STATUS_INVALID_ARG;
    }
    if (c->rope_scaling == KVB_ROPE_SCALING_LLAMA3 &&
        (!(c->rope_low_freq > 0.0f) || !(c->rope_high_freq > c->rope_low_freq) ||
         !isfinite(c->rope_high_freq) || c->rope_orig_ctx < 1)) {
        snprintf(msg, msg_len, "llama3 rope scaling: low_freq_factor %g, high_freq_factor %g, "
                 "original context %d: need 0 < low < high (finite) and a context of at least 1",
                 (double)c->rope_low_freq, (double)c->rope_high_freq, c->rope_orig_ctx);
        return KVB_STATUS_INVALID_ARG;
    }
    return KVB_STATUS_OK;
}

kvb_status kvb_model_config_check(const kvb_model_config *c, char *msg, size_t msg_len)
{
    const struct { const char *name; int v; } f[] = {
        {"dim", c->dim}, {"hidden", c->hidden_dim}, {"layers", c->n_layers},
        {"heads", c->n_heads}, {"kv-heads", c->n_kv_heads}, {"head-dim", c->head_dim},
        {"vocab", c->vocab_size}, {"max-seq", c->max_seq},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v < 1 || f[i].v > (1 << 24)) {
            snprintf(msg, msg_len, "%s = %d: must be between 1 and %d", f[i].name, f[i].v, 1 << 24);
            return KVB_STATUS_INVALID_ARG;
        }
    if (c->n_heads % c->n_kv_heads != 0) {
        snprintf(msg, msg_len, "heads = %d is not a multiple of kv-heads = %d",
                 c->n_heads, c->n_kv_heads);
        return KVB_STATUS_INVALID_ARG;
    }
    if (c->head_dim % 2 != 0) {
        snprintf(msg, msg_len, "head-dim = %d: must be even (RoPE rotates pairs)", c->head_dim);
        return KVB_STATUS_INVALID_ARG;
    }
    if (!(c->rope_theta > 1.0f) || !isfinite(c->rope_theta)) {
        snprintf(msg, msg_len, "rope-theta = %g: must be a finite number above 1",
                 (double)c->rope_theta);
        return KVB_STATUS_INVALID_ARG;
    }
    if (!(c->norm_eps >= 0.0f && c->norm_eps < 1.0f)) {
        snprintf(msg, msg_len, "norm-eps = %g: must be in [0, 1) (0 means 1e-5)",
                 (double)c->norm_eps);
        return KVB_STATUS_INVALID_ARG;
    }
    kvb_status st = rope_check(c, msg, msg_len);
    if (st != KVB_STATUS_OK) return st;
    if ((double)c->n_heads * c->head_dim > (1 << 24)) {
        snprintf(msg, msg_len, "heads x head-dim = %.0f: at most %d",
                 (double)c->n_heads * c->head_dim, 1 << 24);
        return KVB_STATUS_INVALID_ARG;
    }
    /* counted in double: the size_t count could wrap for absurd shapes */
    double d = c->dim, qd = (double)c->n_heads * c->head_dim,
           kvd = (double)c->n_kv_heads * c->head_dim;
    double bytes = 4.0 * ((double)c->vocab_size * d * 2 + c->n_layers * (2 * d + 2 * d * qd +
                          2 * d * kvd + 3 * d * c->hidden_dim) + d);
    if (bytes > 64e9) {
        snprintf(msg, msg_len,
                 "model needs %.1f GB of f32 weights: over the 64 GB this tool allows",
                 bytes / 1e9);
        return KVB_STATUS_INVALID_ARG;
    }
    return KVB_STATUS_OK;
}


static size_t layer_params(const kvb_model_config *c)
{
    size_t d = (size_t)c->dim, qd = (size_t)c->n_heads * c->head_dim,
           kvd = (size_t)c->n_kv_heads * c->head_dim, h = (size_t)c->hidden_dim;
    return 2 * d + d * qd + 2 * d * kvd + qd * d + 3 * d * h;
}

size_t kvb_model_param_count(const kvb_model_config *c)
{
    size_t ve = (size_t)c->vocab_size * c->dim;
    return ve + (size_t)c->n_layers * layer_params(c) + (size_t)c->dim +
           (c->shared_classifier ? 0 : ve);
}

/* ---- the tensors, in llama2.c's order ------------------------------------ */

static const struct { const char *name; int per_layer, is_norm; } tkinds[KVB_TKIND_COUNT] = {
    [KVB_TKIND_EMB] = {"token_embedding", 0, 0}, [KVB_TKIND_ATT_NORM] = {"rms_att", 1, 1},
    [KVB_TKIND_WQ] = {"wq", 1, 0},               [KVB_TKIND_WK] = {"wk", 1, 0},
    [KVB_TKIND_WV] = {"wv", 1, 0},               [KVB_TKIND_WO] = {"wo", 1, 0},
    [KVB_TKIND_FFN_NORM] = {"rms_ffn", 1, 1},    [KVB_TKIND_W1] = {"w1", 1, 0},
    [KVB_TKIND_W2] = {"w2", 1, 0},               [KVB_TKIND_W3] = {"w3", 1, 0},
    [KVB_TKIND_FINAL_NORM] = {"rms_final", 0, 1}, [KVB_TKIND_CLS] = {"wcls", 0, 0},
};

int kvb_model_slot_count(const kvb_model_config *c)
{
    return 3 + 9 * c->n_layers - (c->shared_classifier ? 1 : 0);
}

/* [rows][cols] of a tensor kind under c */
static void kind_shape(const kvb_model_config *c, kvb_tkind k, int *rows, int *cols)
{
    int d = c->dim, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim,
        h = c->hidden_dim;
    *rows = 1;
    *cols = d;
    switch (k) {
    case KVB_TKIND_EMB: case KVB_TKIND_CLS: *rows = c->vocab_size; break;
    case KVB_TKIND_WQ: *rows = qd; break;
    case KVB_TKIND_WK: case KVB_TKIND_WV: *rows = kvd; break;
    case KVB_TKIND_WO: *rows = d; *cols = qd; break;
    case KVB_TKIND_W1: case KVB_TKIND_W3: *rows = h; break;
    case KVB_TKIND_W2: *rows = d; *cols = h; break;
    default: break;
    }
}

static kvb_wmat *slot_mat(kvb_model_weights *w, kvb_tkind k, int l)
{
    kvb_layer_weights *L = l >= 0 ? &w->layer[l] : NULL;
    switch (k) {
    case KVB_TKIND_EMB: return &w->token_embedding;
    case KVB_TKIND_WQ: return &L->wq;
    case KVB_TKIND_WK: return &L->wk;
    case KVB_TKIND_WV: return &L->wv;
    case KVB_TKIND_WO: return &L->wo;
    case KVB_TKIND_W1: return &L->w1;
    case KVB_TKIND_W2: return &L->w2;
    case KVB_TKIND_W3: return &L->w3;
    case KVB_TKIND_CLS: return &w->wcls;
    default: return NULL;
    }
}

static const float **slot_norm(kvb_model_weights *w, kvb_tkind k, int l)
{
    return k == KVB_TKIND_ATT_NORM ? &w->layer[l].rms_att
           : k == KVB_TKIND_FFN_NORM ? &w->layer[l].rms_ffn : &w->rms_final;
}

void kvb_model_slot(const kvb_model *m, int i, kvb_tslot *out)
{
    const kvb_model_config *c = &m->cfg;
    int L = c->n_layers, k = 0;
    /* walk the kinds in order: one slot each, or one per layer */
    for (; k < KVB_TKIND_COUNT; k++) {
        int n = tkinds[k].per_layer ? L : 1;
        if (i < n) break;
        i -= n;
    }
    *out = (kvb_tslot){.kind = (kvb_tkind)k, .layer = tkinds[k].per_layer ? i : -1,
                       .name = tkinds[k].name, .is_norm = tkinds[k].is_norm,
                       .type = KVB_WTYPE_F32};
    kind_shape(c, out->kind, &out->rows, &out->cols);
    kvb_model_weights *w = (kvb_model_weights *)&m->w;   /* read here, never written */
    if (out->is_norm) {
        out->data = *slot_norm(w, out->kind, out->layer);
    } else {
        const kvb_wmat *mat = slot_mat(w, out->kind, out->layer);
        out->data = mat->data;
        out->type = mat->type;
    }
}

void kvb_model_slot_set(kvb_model *m, const kvb_tslot *s, const void *data, kvb_wtype type)
{
    if (s->is_norm) {
        *slot_norm(&m->w, s->kind, s->layer) = data;
        return;
    }
    *slot_mat(&m->w, s->kind, s->layer) =
        (kvb_wmat){.data = data, .type = type, .rows = s->rows, .cols = s->cols};
}

/* bytes of rows x cols values stored as t; a partial block counts whole */
static uint64_t tensor_bytes(kvb_wtype t, int rows, int cols)
{
    const kvb_wtype_traits *tr = kvb_wtype_traits_of(t);
    if (!tr) return 0;
    uint64_t blocks = ((uint64_t)cols + (uint64_t)tr->block - 1) / (uint64_t)tr->block;
    return (uint64_t)rows * blocks * tr->block_bytes;
}

uint64_t kvb_model_weight_bytes(const kvb_model_config *c, kvb_wtype wt)
{
    uint64_t sum = 0;
    for (int k = 0; k < KVB_TKIND_COUNT; k++) {
        if (k == KVB_TKIND_CLS && c->shared_classifier) continue;
        int rows, cols;
        kind_shape(c, (kvb_tkind)k, &rows, &cols);
        uint64_t b = tensor_bytes(tkinds[k].is_norm ? KVB_WTYPE_F32 : wt, rows, cols);
        sum += tkinds[k].per_layer ? b * (uint64_t)c->n_layers : b;
    }
    return sum;
}

/* ---- models built in memory -------------------------------------------- */

enum { TENSOR_ALIGN = 64 };   /* each tensor on its own cache line: SIMD rows start aligned */

kvb_status kvb_model_wtype_check(const kvb_model_config *c, kvb_wtype wt, char *msg,
                                 size_t msg_len)
{
    const kvb_wtype_traits *tr = kvb_wtype_traits_of(wt);
    if (!tr) {
        snprintf(msg, msg_len, "weight type %d: allowed are f32, f16, bf16, q8_0, q4_0, q4_k, "
                 "q6_k", (int)wt);
        return KVB_STATUS_INVALID_ARG;
    }
    int qd = c->n_heads * c->head_dim;
    if (c->dim % tr->block || c->hidden_dim % tr->block || qd % tr->block) {
        snprintf(msg, msg_len, "%s weights need rows in whole blocks of %d values: dim %d, "
                 "hidden %d, heads x head-dim %d", tr->name, tr->block, c->dim, c->hidden_dim,
                 qd);
        return KVB_STATUS_INVALID_ARG;
    }
    return KVB_STATUS_OK;
}

/* m->cfg set: allocates the layer array and one block for every tensor, stored
 * as wt (norms f32), and points the weights into it. */
static kvb_status model_alloc(kvb_model *m, const kvb_model_config *c, kvb_wtype wt, char *msg,
                              size_t msg_len)
{
    memset(m, 0, sizeof *m);
    kvb_status st = kvb_model_config_check(c, msg, msg_len);
    if (st != KVB_STATUS_OK) return st;
    st = kvb_model_wtype_check(c, wt, msg, msg_len);
    if (st != KVB_STATUS_OK) return st;
    m->cfg = *c;
    m->w.layer = calloc((size_t)c->n_layers, sizeof *m->w.layer);
    int n = kvb_model_slot_count(c);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        kvb_tslot s;
        kvb_model_slot(m, i, &s);
        total += (tensor_bytes(s.is_norm ? KVB_WTYPE_F32 : wt, s.rows, s.cols) + TENSOR_ALIGN - 1)
                 / TENSOR_ALIGN * TENSOR_ALIGN;
    }
    m->mem = m->w.layer ? aligned_alloc(TENSOR_ALIGN, total) : NULL;
    if (!m->mem) {
        snprintf(msg, msg_len, "cannot allocate %zu bytes of weights", total);
        kvb_model_free(m);
        return KVB_STATUS_NO_MEMORY;
    }
    m->mem_bytes = total;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        kvb_tslot s;
        kvb_model_slot(m, i, &s);
        kvb_wtype t = s.is_norm ? KVB_WTYPE_F32 : wt;
        kvb_model_slot_set(m, &s, (char *)m->mem + off, t);
        size_t b = tensor_bytes(t, s.rows, s.cols), padded = (b + TENSOR_ALIGN - 1) /
                                                              TENSOR_ALIGN * TENSOR_ALIGN;
        memset((char *)m->mem + off + b, 0, padded - b);   /* defined bytes: models compare whole */
        off += padded;
    }
    if (c->shared_classifier) m->w.wcls = m->w.token_embedding;
    return KVB_STATUS_OK;
}

kvb_status kvb_model_alloc_f32(kvb_model *m, const kvb_model_config *c, char *msg, size_t msg_len)
{
    return model_alloc(m, c, KVB_WTYPE_F32, msg, msg_len);
}

void kvb_model_free(kvb_model *m)
{
    if (!m) return;
    free(m->mem);
    free(m->rope_freq);
    free(m->w.layer);
    if (m->map_release) m->map_release(m->map);
    memset(m, 0, sizeof *m);
}

/* splitmix64: a seeded, platform-independent stream, so a seed names one model. */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void fill_uniform(float *p, size_t n, float a, uint64_t *s)
{
    for (size_t i = 0; i < n; i++)
        p[i] = a * ((float)(splitmix64(s) >> 40) * (2.0f / 16777216.0f) - 1.0f);
}

/* Uniform with variance 1/fan_in keeps the residual stream near unit scale;
 * the embedding has unit variance. */
static float init_scale(const kvb_model_config *c, kvb_tkind k)
{
    const float sq3 = sqrtf(3.0f);
    switch (k) {
    case KVB_TKIND_EMB: return sq3;
    case KVB_TKIND_WO: return sq3 / sqrtf((float)(c->n_heads * c->head_dim));
    case KVB_TKIND_W2: return sq3 / sqrtf((float)c->hidden_dim);
    default: return sq3 / sqrtf((float)c->dim);
    }
}

kvb_status kvb_model_init_random(kvb_model *m, const kvb_model_config *c, uint64_t seed,
                                 kvb_wtype wt, char *msg, size_t msg_len)
{
    kvb_status st = model_alloc(m, c, wt, msg, msg_len);
    if (st != KVB_STATUS_OK) return st;
    int width = c->dim > c->hidden_dim ? c->dim : c->hidden_dim;
    if (c->n_heads * c->head_dim > width) width = c->n_heads * c->head_dim;
    float *row = malloc((size_t)width * sizeof *row);   /* [width]: one row drawn in f32 */
    if (!row) {
        kvb_model_free(m);
        snprintf(msg, msg_len, "cannot allocate a row of %d floats", width);
        return KVB_STATUS_NO_MEMORY;
    }
    uint64_t s = seed;
    /* row by row in file order: the same stream, in the same order, as one f32
     * array of every weight, so an f32 model is the same whatever the chunking */
    for (int i = 0, n = kvb_model_slot_count(c); i < n; i++) {
        kvb_tslot t;
        kvb_model_slot(m, i, &t);
        char *dst = (char *)m->mem + ((const char *)t.data - (const char *)m->mem);
        if (t.is_norm) {
            for (int j = 0; j < t.cols; j++) ((float *)dst)[j] = 1.0f;
            continue;
        }
        float a = init_scale(c, t.kind);
        size_t rb = kvb_wtype_row_bytes(t.type, t.cols);
        for (int r = 0; r < t.rows; r++) {
            fill_uniform(row, (size_t)t.cols, a, &s);
            kvb_wrow_from_f32(t.type, row, dst + (size_t)r * rb, t.cols);
        }
    }
    free(row);
    snprintf(m->source, sizeof m->source, "random");
    st = kvb_model_finish(m, msg, msg_len);
    if (st != KVB_STATUS_OK) kvb_model_free(m);
    return st;
}

/* ---- finishing: checks, RoPE frequencies, sizes ------------------------- */

/* Pair i's frequency theta^(-2i/head_dim), then scaled (model.h). */
static double rope_freq(const kvb_model_config *c, int i)
{
    double f = pow(c->rope_theta, -2.0 * i / c->head_dim);
    if (c->rope_scaling == KVB_ROPE_SCALING_LINEAR) return f / c->rope_factor;
    if (c->rope_scaling != KVB_ROPE_SCALING_LLAMA3) return f;
    /* Llama 3.1: short wavelengths kept, long ones divided by factor, a ramp between */
    double wavelen = 2.0 * 3.14159265358979323846 / f, lo = c->rope_low_freq,
           hi = c->rope_high_freq, ctx = c->rope_orig_ctx;
    if (wavelen < ctx / hi) return f;
    if (wavelen > ctx / lo) return f / c->rope_factor;
    double smooth = (ctx / wavelen - lo) / (hi - lo);
    return (1.0 - smooth) * f / c->rope_factor + smooth * f;
}

kvb_status kvb_model_finish(kvb_model *m, char *msg, size_t msg_len)
{
    const kvb_model_config *c = &m->cfg;
    kvb_status st = kvb_model_config_check(c, msg, msg_len);
    if (st != KVB_STATUS_OK) return st;
    if (!m->w.layer || !m->w.rms_final) {
        snprintf(msg, msg_len, "model has no %s", m->w.layer ? "rms_final" : "layer array");
        return KVB_STATUS_INVALID_ARG;
    }
    if (c->shared_classifier && !m->w.wcls.data) m->w.wcls = m->w.token_embedding;
    uint64_t bytes = 0, step = 0;
    for (int i = 0, n = kvb_model_slot_count(c) + (c->shared_classifier ? 1 : 0); i < n; i++) {
        kvb_tslot t;
        kvb_model_slot(m, i, &t);
        char where[48];
        if (t.layer >= 0) snprintf(where, sizeof where, "layer %d %s", t.layer, t.name);
        else snprintf(where, sizeof where, "%s", t.name);
        if (!t.data) {
            snprintf(msg, msg_len, "tensor %s is missing (no data)", where);
            return KVB_STATUS_INVALID_ARG;
        }
        if (t.is_norm) {
            bytes += 4u * (uint64_t)t.cols;
            step += 4u * (uint64_t)t.cols;
            continue;
        }
        const kvb_wmat *w = slot_mat(&m->w, t.kind, t.layer);
        const kvb_wtype_traits *tr = kvb_wtype_traits_of(w->type);
        if (!tr) {
            snprintf(msg, msg_len, "tensor %s: weight type %d is not one of f32, f16, bf16, "
                     "q8_0, q4_0, q4_k, q6_k", where, (int)w->type);
            return KVB_STATUS_INVALID_ARG;
        }
        if (w->rows != t.rows || w->cols != t.cols) {
            snprintf(msg, msg_len, "tensor %s is [%d][%d]: the config asks for [%d][%d]", where,
                     w->rows, w->cols, t.rows, t.cols);
            return KVB_STATUS_INVALID_ARG;
        }
        if (w->cols % tr->block) {
            snprintf(msg, msg_len, "tensor %s: rows of %d values are not whole %s blocks of %d",
                     where, w->cols, tr->name, tr->block);
            return KVB_STATUS_INVALID_ARG;
        }
        /* a shared classifier is the embedding's bytes, read once */
        if (t.kind == KVB_TKIND_CLS && w->data == m->w.token_embedding.data) continue;
        bytes += tensor_bytes(w->type, w->rows, w->cols);
        const int table = t.kind == KVB_TKIND_EMB && m->w.wcls.data != w->data;
        step += tensor_bytes(w->type, table ? 1 : w->rows, w->cols);
    }
    float *f = malloc((size_t)(c->head_dim / 2) * sizeof *f);
    if (!f) {
        snprintf(msg, msg_len, "cannot allocate RoPE's %d frequencies", c->head_dim / 2);
        return KVB_STATUS_NO_MEMORY;
    }
    for (int i = 0; i < c->head_dim / 2; i++) f[i] = (float)rope_freq(c, i);
    free(m->rope_freq);
    m->rope_freq = f;
    m->weight_bytes = bytes;
    m->step_bytes = step;
    return KVB_STATUS_OK;
}

const char *kvb_model_wtype_name(const kvb_model *m)
{
    kvb_wtype t = m->w.token_embedding.type;
    for (int i = 0, n = kvb_model_slot_count(&m->cfg); i < n; i++) {
        kvb_tslot s;
        kvb_model_slot(m, i, &s);
        if (!s.is_norm && s.type != t) return "mixed";
    }
    return kvb_wtype_name(t);
}

/* ---- activations ------------------------------------------------------- */

kvb_status kvb_state_init(kvb_state *s, const kvb_model_config *c, int threads)
{
    memset(s, 0, sizeof *s);
    if (threads < 1) return KVB_STATUS_INVALID_ARG;
    size_t T = (size_t)c->max_seq, d = (size_t)c->dim, qd = (size_t)c->n_heads * c->head_dim,
           kvd = (size_t)c->n_kv_heads * c->head_dim, h = (size_t)c->hidden_dim;
    size_t wide = d > h ? d : h;
    if (qd > wide) wide = qd;
    s->max_seq = c->max_seq;
    s->threads = threads;
    s->x = malloc(d * sizeof(float));
    s->xb = malloc(d * sizeof(float));
    s->xb2 = malloc(d * sizeof(float));
    s->q = malloc(qd * sizeof(float));
    s->att = malloc(qd * sizeof(float));
    s->k = malloc(kvd * sizeof(float));
    s->v = malloc(kvd * sizeof(float));
    s->hb = malloc(h * sizeof(float));
    s->hb2 = malloc(h * sizeof(float));
    s->logits = malloc((size_t)c->vocab_size * sizeof(float));
    s->X = malloc(T * d * sizeof(float));
    s->XB = malloc(T * d * sizeof(float));
    s->Q = malloc(T * qd * sizeof(float));
    s->O = malloc(T * qd * sizeof(float));
    s->K = malloc(T * kvd * sizeof(float));
    s->V = malloc(T * kvd * sizeof(float));
    s->H1 = malloc(T * h * sizeof(float));
    s->H3 = malloc(T * h * sizeof(float));
    s->scratch = malloc((size_t)threads * sizeof(float) *
                        kvb_attend_causal_scratch_floats(c->n_heads, c->n_kv_heads, c->max_seq,
                                                         c->head_dim));
    s->tile_floats = (size_t)KVB_TILE_ROWS * wide;
    s->tile = malloc((size_t)threads * s->tile_floats * sizeof(float));
    float *all[] = {s->x, s->xb, s->xb2, s->q, s->att, s->k, s->v, s->hb, s->hb2, s->logits,
                    s->X, s->XB, s->Q, s->O, s->K, s->V, s->H1, s->H3, s->scratch, s->tile};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!all[i]) { kvb_state_free(s); return KVB_STATUS_NO_MEMORY; }
    if (threads > 1) {
        kvb_status st = kvb_pool_create(&s->pool, threads, NULL, NULL);
        if (st != KVB_STATUS_OK) { kvb_state_free(s); return st; }
        /* a step hands the pool 4 products a layer, microseconds apart: its
         * workers poll between them (pool.h; the step's idle threads, docs/weights.md) */
        kvb_pool_set_poll(s->pool, KVB_STATE_POLL_US);
    }
    return KVB_STATUS_OK;
}

void kvb_state_free(kvb_state *s)
{
    if (!s) return;
    float *all[] = {s->x, s->xb, s->xb2, s->q, s->att, s->k, s->v, s->hb, s->hb2, s->logits,
                    s->X, s->XB, s->Q, s->O, s->K, s->V, s->H1, s->H3, s->scratch, s->tile};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    kvb_pool_destroy(s->pool);
    memset(s, 0, sizeof *s);
}

kvb_shape kvb_model_kv_shape(const kvb_model_config *c)
{
    kvb_shape sh = {c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->max_seq};
    return sh;
}
