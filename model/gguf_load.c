/* gguf_load.c: kvb_gguf_load_model (gguf.h): a llama GGUF file's weights,
 * in place in the file's map. ggml's dims are {in, out} over row-major
 * [out][in] bytes, so a tensor's dims[0] is the matrix's cols and dims[1] its
 * rows. Llama 3's rope_freqs.weight (one divisor per RoPE pair, llama.cpp's
 * freq_factors) divides the model's rope_freq after kvb_model_finish. */
#include "gguf.h"
#include "load.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void release(void *g)
{
    kvb_gguf_close(g);
    free(g);
}

/* tensor name as a C string, cut to fit */
static const char *cname(kvb_gguf_str s, char *buf, size_t n)
{
    size_t k = s.n < n - 1 ? (size_t)s.n : n - 1;
    for (size_t i = 0; i < k; i++) buf[i] = s.p[i] >= 32 && s.p[i] < 127 ? s.p[i] : '?';
    buf[k] = 0;
    return buf;
}

static int find(void *ctx, const char *name, kvb_load_tensor *t, char *msg, size_t msg_len)
{
    const kvb_gguf_tensor *g = kvb_gguf_find_tensor(ctx, name);
    if (!g) return 1;
    int k = -1;   /* the weight type whose GGUF id the tensor has */
    for (int i = 0; i < KVB_WTYPE_COUNT; i++)
        if (kvb_wtype_traits_of((kvb_wtype)i)->ggml == g->type) k = i;
    char b[96];
    if (k < 0) {
        const char *tn = kvb_gguf_type_name(g->type);
        snprintf(msg, msg_len, "tensor '%s' has type %s: the decoder reads f32, f16, bf16, "
                 "q8_0, q4_0, q4_k and q6_k", cname(g->name, b, sizeof b), tn ? tn : "unknown");
        return -1;
    }
    if (g->n_dims > 2) {
        snprintf(msg, msg_len, "tensor '%s' has %d dims: matrices have 2, norms 1",
                 cname(g->name, b, sizeof b), g->n_dims);
        return -1;
    }
    *t = (kvb_load_tensor){.data = g->data, .type = (kvb_wtype)k, .n_dims = g->n_dims,
                           .rows = g->dims[1], .cols = g->dims[0]};
    return 0;
}

/* rope_freqs.weight: [head_dim / 2] positive divisors of each pair's frequency */
static kvb_status rope_freqs(kvb_model *m, const kvb_gguf *g, char *msg, size_t msg_len)
{
    kvb_load_tensor t;
    int half = m->cfg.head_dim / 2;
    int r = find((void *)g, "rope_freqs.weight", &t, msg, msg_len);
    if (r > 0) return KVB_STATUS_OK;
    if (r < 0) return KVB_STATUS_FORMAT;
    if (t.n_dims != 1 || t.cols != (uint64_t)half || kvb_wtype_row_bytes(t.type, half) == 0) {
        snprintf(msg, msg_len, "tensor 'rope_freqs.weight': %d dims of %llu: one dim of "
                 "head_dim / 2 = %d is needed", t.n_dims, (unsigned long long)t.cols, half);
        return KVB_STATUS_FORMAT;
    }
    float *f = malloc((size_t)half * sizeof *f);   /* [head_dim / 2] */
    if (!f) {
        snprintf(msg, msg_len, "cannot allocate %d rope factors", half);
        return KVB_STATUS_NO_MEMORY;
    }
    kvb_wrow_to_f32(t.type, t.data, f, half);
    kvb_status st = KVB_STATUS_OK;
    for (int i = 0; i < half && st == KVB_STATUS_OK; i++)
        if (!(f[i] > 0.0f) || !isfinite(f[i])) {
            snprintf(msg, msg_len, "tensor 'rope_freqs.weight': value %d is %g: each must be a "
                     "finite number above 0", i, (double)f[i]);
            st = KVB_STATUS_FORMAT;
        }
    for (int i = 0; i < half && st == KVB_STATUS_OK; i++) m->rope_freq[i] /= f[i];
    free(f);
    return st;
}

kvb_status kvb_gguf_load_model(kvb_model *m, const char *path, int max_seq_override, char *msg,
                               size_t msg_len)
{
    memset(m, 0, sizeof *m);
    kvb_gguf *g = malloc(sizeof *g);
    if (!g) {
        snprintf(msg, msg_len, "cannot allocate a GGUF reader");
        return KVB_STATUS_NO_MEMORY;
    }
    kvb_status st = kvb_gguf_open(g, path, msg, msg_len);
    if (st != KVB_STATUS_OK) {
        free(g);
        return st;
    }
    char why[512];
    kvb_gguf_llama_extra x;
    st = kvb_gguf_llama_config(g, &m->cfg, &x, why, sizeof why);
    if (st == KVB_STATUS_OK && strcmp(x.rope_scaling, "none") != 0 &&
        strcmp(x.rope_scaling, "linear") != 0) {
        snprintf(why, sizeof why, "llama.rope.scaling.type = '%s': the decoder has none and "
                 "linear (and Llama 3's rope_freqs.weight)", x.rope_scaling);
        st = KVB_STATUS_UNSUPPORTED;
    }
    if (st == KVB_STATUS_OK && !(x.norm_eps > 0.0f && x.norm_eps < 1.0f)) {
        snprintf(why, sizeof why, "llama.attention.layer_norm_rms_epsilon = %g: must be above 0 "
                 "and below 1", (double)x.norm_eps);
        st = KVB_STATUS_FORMAT;
    }
    if (st != KVB_STATUS_OK) {
        snprintf(msg, msg_len, "GGUF '%s': %s", path, why);
        release(g);
        memset(m, 0, sizeof *m);
        return st;
    }
    if (max_seq_override > 0) m->cfg.max_seq = max_seq_override;
    m->map = g;
    m->map_release = release;
    snprintf(m->source, sizeof m->source, "gguf");
    static const kvb_load_names names = {
        "token_embd.weight", "output_norm.weight", "output.weight",
        {"blk.%d.attn_norm.weight", "blk.%d.attn_q.weight", "blk.%d.attn_k.weight",
         "blk.%d.attn_v.weight", "blk.%d.attn_output.weight", "blk.%d.ffn_norm.weight",
         "blk.%d.ffn_gate.weight", "blk.%d.ffn_down.weight", "blk.%d.ffn_up.weight"},
    };
    st = kvb_load_fill(m, &names, find, g, why, sizeof why);
    if (st == KVB_STATUS_OK && (st = rope_freqs(m, g, why, sizeof why)) != KVB_STATUS_OK)
        kvb_model_free(m);
    if (st != KVB_STATUS_OK) snprintf(msg, msg_len, "GGUF '%s': %s", path, why);
    return st;
}
