/* gguf_write.c: kvb_gguf_save (gguf.h): a model written as GGUF v3, each
 * matrix in its stored type (F32, F16, BF16, Q8_0; norms F32), under
 * llama.cpp's names and the llama.* metadata, through a temporary file linked
 * into place (never over an existing file). The weights are row-major
 * [out][in]: ggml's dims {in, out} over the same bytes. */
#include "gguf.h"
#include "../base/afile.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

enum { ALIGN = 32 };

typedef struct wtensor {
    char         name[48];
    uint64_t     dims[2];
    int          n_dims;
    const void  *data;       /* [dims[1]][dims[0]] */
    kvb_wtype    type;
} wtensor;

static int w(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n ? 0 : -1; }
static int w_u32(FILE *f, uint32_t v) { return w(f, &v, 4); }
static int w_u64(FILE *f, uint64_t v) { return w(f, &v, 8); }
static int w_str(FILE *f, const char *s) { return w_u64(f, strlen(s)) || w(f, s, strlen(s)); }
static int kv_u32(FILE *f, const char *k, uint32_t v)
{
    return w_str(f, k) || w_u32(f, KVB_GGUF_U32) || w_u32(f, v);
}
static int kv_f32(FILE *f, const char *k, float v)
{
    return w_str(f, k) || w_u32(f, KVB_GGUF_F32V) || w(f, &v, 4);
}
static int kv_str(FILE *f, const char *k, const char *v)
{
    return w_str(f, k) || w_u32(f, KVB_GGUF_STRING) || w_str(f, v);
}
static int pad(FILE *f, uint64_t *pos)
{
    static const uint8_t zero[ALIGN];
    uint64_t k = (ALIGN - *pos % ALIGN) % ALIGN;
    *pos += k;
    return w(f, zero, (size_t)k);
}

/* the tensors outside the layers: 2 or 3 of them */
static int n_tensors_of(const kvb_model *m, wtensor *t)
{
    const kvb_model_config *c = &m->cfg;
    const kvb_model_weights *wt = &m->w;
    uint64_t d = (uint64_t)c->dim;
    int n = 0;
#define T(nm, p, ty, a, b, nd) \
    (snprintf(t[n].name, sizeof t[n].name, "%s", nm), t[n].data = (p), t[n].type = (ty), \
     t[n].dims[0] = (a), t[n].dims[1] = (b), t[n].n_dims = (nd), n++)
    T("token_embd.weight", wt->token_embedding.data, wt->token_embedding.type, d,
      (uint64_t)c->vocab_size, 2);
    T("output_norm.weight", wt->rms_final, KVB_WTYPE_F32, d, 1, 1);
    if (!c->shared_classifier)
        T("output.weight", wt->wcls.data, wt->wcls.type, d, (uint64_t)c->vocab_size, 2);
#undef T
    return n;
}

/* the per-layer tensors of layer l: 9 of them */
static void layer_tensors(const kvb_model *m, int l, wtensor *t)
{
    const kvb_model_config *c = &m->cfg;
    const kvb_model_weights *wt = &m->w;
    const kvb_layer_weights *lw = &wt->layer[l];
    const struct { const char *nm; const kvb_wmat *mat; const float *norm; } r[9] = {
        {"attn_norm", NULL, lw->rms_att},  {"attn_q", &lw->wq, NULL},
        {"attn_k", &lw->wk, NULL},         {"attn_v", &lw->wv, NULL},
        {"attn_output", &lw->wo, NULL},    {"ffn_norm", NULL, lw->rms_ffn},
        {"ffn_gate", &lw->w1, NULL},       {"ffn_down", &lw->w2, NULL},
        {"ffn_up", &lw->w3, NULL},
    };
    for (int i = 0; i < 9; i++) {
        const kvb_wmat *mt = r[i].mat;
        snprintf(t[i].name, sizeof t[i].name, "blk.%d.%s.weight", l, r[i].nm);
        t[i].data = mt ? mt->data : r[i].norm;
        t[i].type = mt ? mt->type : KVB_WTYPE_F32;
        t[i].dims[0] = mt ? (uint64_t)mt->cols : (uint64_t)c->dim;
        t[i].dims[1] = mt ? (uint64_t)mt->rows : 1;
        t[i].n_dims = mt ? 2 : 1;
    }
}

/* GGML's id of a weight type */
static uint32_t ggml_type(kvb_wtype t)
{
    const kvb_wtype_traits *tr = kvb_wtype_traits_of(t);
    return tr ? tr->ggml : KVB_GGML_F32;
}

static uint64_t tensor_bytes(const wtensor *t)
{
    return t->dims[1] * kvb_wtype_row_bytes(t->type, (int)t->dims[0]);
}

static int write_info(FILE *f, const wtensor *t, uint64_t *off)
{
    if (w_str(f, t->name) || w_u32(f, (uint32_t)t->n_dims) || w_u64(f, t->dims[0]) ||
        (t->n_dims == 2 && w_u64(f, t->dims[1])) || w_u32(f, ggml_type(t->type)) ||
        w_u64(f, *off))
        return -1;
    uint64_t bytes = tensor_bytes(t);
    *off += (bytes + ALIGN - 1) / ALIGN * ALIGN;
    return 0;
}

static int write_data(FILE *f, const wtensor *t, uint64_t *pos)
{
    uint64_t bytes = tensor_bytes(t);
    *pos += bytes;
    return w(f, t->data, (size_t)bytes) || pad(f, pos);
}

static int write_all(const kvb_model *m, FILE *f)
{
    const kvb_model_config *c = &m->cfg;
    wtensor top[3], lt[9];
    int nt = n_tensors_of(m, top);
    const int n_kv = 14;
    if (w(f, "GGUF", 4) || w_u32(f, 3) || w_u64(f, (uint64_t)nt + 9ull * c->n_layers) ||
        w_u64(f, n_kv))
        return -1;
    if (kv_str(f, "general.architecture", "llama") || kv_str(f, "general.name", "kvbench-random") ||
        kv_u32(f, "general.alignment", ALIGN) ||
        kv_u32(f, "llama.context_length", (uint32_t)c->max_seq) ||
        kv_u32(f, "llama.embedding_length", (uint32_t)c->dim) ||
        kv_u32(f, "llama.feed_forward_length", (uint32_t)c->hidden_dim) ||
        kv_u32(f, "llama.block_count", (uint32_t)c->n_layers) ||
        kv_u32(f, "llama.attention.head_count", (uint32_t)c->n_heads) ||
        kv_u32(f, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads) ||
        kv_u32(f, "llama.attention.key_length", (uint32_t)c->head_dim) ||
        kv_u32(f, "llama.rope.dimension_count", (uint32_t)c->head_dim) ||
        kv_f32(f, "llama.rope.freq_base", c->rope_theta) ||
        kv_f32(f, "llama.attention.layer_norm_rms_epsilon",
               c->norm_eps > 0.0f ? c->norm_eps : 1e-5f) ||
        kv_u32(f, "llama.vocab_size", (uint32_t)c->vocab_size))
        return -1;
    uint64_t off = 0;
    for (int i = 0; i < nt; i++)
        if (write_info(f, &top[i], &off)) return -1;
    for (int l = 0; l < c->n_layers; l++) {
        layer_tensors(m, l, lt);
        for (int i = 0; i < 9; i++)
            if (write_info(f, &lt[i], &off)) return -1;
    }
    long here = ftell(f);
    if (here < 0) return -1;
    uint64_t pos = (uint64_t)here;
    if (pad(f, &pos)) return -1;
    for (int i = 0; i < nt; i++)
        if (write_data(f, &top[i], &pos)) return -1;
    for (int l = 0; l < c->n_layers; l++) {
        layer_tensors(m, l, lt);
        for (int i = 0; i < 9; i++)
            if (write_data(f, &lt[i], &pos)) return -1;
    }
    return 0;
}

kvb_status kvb_gguf_save(const kvb_model *m, const char *path, char *msg, size_t msg_len)
{
    const kvb_model_config *c = &m->cfg;
    /* llama.cpp rotates interleaved pairs and reads scaling from keys not written here */
    if (c->rope_layout != KVB_ROPE_LAYOUT_INTERLEAVED || c->rope_scaling != KVB_ROPE_SCALING_NONE) {
        snprintf(msg, msg_len, "GGUF export holds interleaved, unscaled RoPE only (this model: "
                 "layout %d, scaling %d)", c->rope_layout, c->rope_scaling);
        return KVB_STATUS_UNSUPPORTED;
    }
    kvb_afile a;
    if (kvb_afile_open(&a, path, msg, msg_len)) return KVB_STATUS_IO;
    errno = 0;
    return kvb_model_file_publish(&a, write_all(m, a.f) == 0, "a model file", msg, msg_len);
}
