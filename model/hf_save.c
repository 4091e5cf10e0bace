/* hf_save.c: kvb_hf_save (safetensors.h): a model as a Hugging Face Llama
 * checkpoint directory. The directory is built as <dir>.partial and renamed
 * into place only when every file is whole. In each safetensors file the f32
 * tensors come first, then the 2-byte ones, with no gaps (safetensors' own
 * reader refuses holes): after the header, padded with spaces to a multiple of
 * 8 bytes, every tensor is aligned to its element size. */
#define _POSIX_C_SOURCE 200809L
#include "safetensors.h"
#include "permute.h"
#include "../base/afile.h"
#include "../base/json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct out_tensor {
    char        name[96];
    kvb_wtype   type;
    int         n_dims;
    int         rows, cols;
    const void *data;         /* [rows][cols] */
    int         perm;         /* 1: rows permuted from interleaved to half per head */
    uint64_t    bytes, begin; /* begin: in its file's data section */
} out_tensor;

static void add_mat(out_tensor *t, int *n, const char *name, const kvb_wmat *w, int perm)
{
    out_tensor *o = &t[(*n)++];
    *o = (out_tensor){.type = w->type, .n_dims = 2, .rows = w->rows, .cols = w->cols,
                      .data = w->data, .perm = perm,
                      .bytes = (uint64_t)w->rows * kvb_wtype_row_bytes(w->type, w->cols)};
    snprintf(o->name, sizeof o->name, "%s", name);
}

static void add_norm(out_tensor *t, int *n, const char *name, const float *v, int dim)
{
    out_tensor *o = &t[(*n)++];
    *o = (out_tensor){.type = KVB_WTYPE_F32, .n_dims = 1, .rows = 1, .cols = dim, .data = v,
                      .bytes = (uint64_t)dim * 4};
    snprintf(o->name, sizeof o->name, "%s", name);
}

/* every tensor of m under Hugging Face's names, in its order; the count */
static int list_tensors(const kvb_model *m, out_tensor *t)
{
    const kvb_model_config *c = &m->cfg;
    const int perm = c->rope_layout == KVB_ROPE_LAYOUT_INTERLEAVED;
    int n = 0;
    char nm[96];
    add_mat(t, &n, "model.embed_tokens.weight", &m->w.token_embedding, 0);
    for (int l = 0; l < c->n_layers; l++) {
        const kvb_layer_weights *w = &m->w.layer[l];
#define P(s) (snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", l, s), nm)
        add_norm(t, &n, P("input_layernorm"), w->rms_att, c->dim);
        add_mat(t, &n, P("self_attn.q_proj"), &w->wq, perm);
        add_mat(t, &n, P("self_attn.k_proj"), &w->wk, perm);
        add_mat(t, &n, P("self_attn.v_proj"), &w->wv, 0);
        add_mat(t, &n, P("self_attn.o_proj"), &w->wo, 0);
        add_norm(t, &n, P("post_attention_layernorm"), w->rms_ffn, c->dim);
        add_mat(t, &n, P("mlp.gate_proj"), &w->w1, 0);
        add_mat(t, &n, P("mlp.down_proj"), &w->w2, 0);
        add_mat(t, &n, P("mlp.up_proj"), &w->w3, 0);
#undef P
    }
    add_norm(t, &n, "model.norm.weight", m->w.rms_final, c->dim);
    if (!c->shared_classifier) add_mat(t, &n, "lm_head.weight", &m->w.wcls, 0);
    return n;
}

static int w_all(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n ? 0 : -1; }

static int write_data(FILE *f, const out_tensor *t, int head_dim)
{
    if (!t->perm) return w_all(f, t->data, (size_t)t->bytes);
    size_t rb = kvb_wtype_row_bytes(t->type, t->cols);
    for (int r = 0; r < t->rows; r++)
        if (w_all(f, (const char *)t->data + (size_t)kvb_rope_perm_row(r, head_dim, 1) * rb, rb))
            return -1;
    return 0;
}

/* one safetensors file of tensors v[0..n) (f32 ones first: see the top) */
static kvb_status write_st(const char *path, out_tensor **v, int n, int head_dim, char *msg,
                           size_t msg_len)
{
    cJSON *h = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(h, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    uint64_t off = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            out_tensor *t = v[i];
            if ((t->type == KVB_WTYPE_F32) != (pass == 0)) continue;
            cJSON *e = cJSON_AddObjectToObject(h, t->name);
            cJSON *sh = cJSON_AddArrayToObject(e, "shape"), *o;
            cJSON_AddStringToObject(e, "dtype", kvb_st_dtype_name(t->type));
            if (t->n_dims == 2) cJSON_AddItemToArray(sh, cJSON_CreateNumber(t->rows));
            cJSON_AddItemToArray(sh, cJSON_CreateNumber(t->cols));
            o = cJSON_AddArrayToObject(e, "data_offsets");
            cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
            cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + t->bytes)));
            t->begin = off;
            off += t->bytes;
        }
    char *text = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    if (!text) {
        snprintf(msg, msg_len, "cannot allocate the safetensors header for '%s'", path);
        return KVB_STATUS_NO_MEMORY;
    }
    uint64_t len = strlen(text), hl = (len + 8 + 7) / 8 * 8 - 8;
    kvb_afile a;
    if (kvb_afile_open(&a, path, msg, msg_len)) {
        free(text);
        return KVB_STATUS_IO;
    }
    errno = 0;
    int bad = w_all(a.f, &hl, 8) || w_all(a.f, text, (size_t)len) ||
              w_all(a.f, "       ", (size_t)(hl - len));
    free(text);
    for (int pass = 0; pass < 2 && !bad; pass++)
        for (int i = 0; i < n && !bad; i++)
            if ((v[i]->type == KVB_WTYPE_F32) == (pass == 0)) bad = write_data(a.f, v[i], head_dim);
    if (bad) {
        snprintf(msg, msg_len, "writing '%s' failed: %s", path, strerror(errno ? errno : EIO));
        kvb_afile_abort(&a);
        return KVB_STATUS_IO;
    }
    return kvb_afile_commit(&a, msg, msg_len) ? KVB_STATUS_IO : KVB_STATUS_OK;
}

/* the JSON document's end, then the file renamed into place (or removed) */
static kvb_status end_json(kvb_afile *a, kvb_jw *w, char *msg, size_t msg_len)
{
    kvb_jw_close(w, "\n");
    fputc('\n', a->f);
    if (w->bad || ferror(a->f)) {
        snprintf(msg, msg_len, "writing '%s' failed: %s", a->path, strerror(errno ? errno : EIO));
        kvb_afile_abort(a);
        return KVB_STATUS_IO;
    }
    return kvb_afile_commit(a, msg, msg_len) ? KVB_STATUS_IO : KVB_STATUS_OK;
}

static const char *torch_dtype(kvb_wtype t)
{
    return t == KVB_WTYPE_F16 ? "float16" : t == KVB_WTYPE_BF16 ? "bfloat16" : "float32";
}

static kvb_status write_config(const kvb_model *m, const char *path, char *msg, size_t msg_len)
{
    const kvb_model_config *c = &m->cfg;
    kvb_afile a;
    if (kvb_afile_open(&a, path, msg, msg_len)) return KVB_STATUS_IO;
    kvb_jw w;
    kvb_jw_init(&w, a.f);
    kvb_jw_open(&w, '{', "\n  ");
    kvb_jw_key(&w, "architectures");
    kvb_jw_open(&w, '[', "");
    kvb_jw_str(&w, "LlamaForCausalLM");
    kvb_jw_close(&w, "");
    kvb_jw_kstr(&w, "model_type", "llama");
    kvb_jw_kstr(&w, "hidden_act", "silu");
    kvb_jw_kint(&w, "hidden_size", c->dim);
    kvb_jw_kint(&w, "intermediate_size", c->hidden_dim);
    kvb_jw_kint(&w, "num_hidden_layers", c->n_layers);
    kvb_jw_kint(&w, "num_attention_heads", c->n_heads);
    kvb_jw_kint(&w, "num_key_value_heads", c->n_kv_heads);
    kvb_jw_kint(&w, "head_dim", c->head_dim);
    kvb_jw_kint(&w, "vocab_size", c->vocab_size);
    kvb_jw_kint(&w, "max_position_embeddings", c->max_seq);
    /* %.9g: an f32 read back as a double and rounded to f32 is the same f32 */
    kvb_jw_knum(&w, "rms_norm_eps", "%.9g", c->norm_eps > 0.0f ? c->norm_eps : 1e-5f);
    kvb_jw_knum(&w, "rope_theta", "%.9g", c->rope_theta);
    kvb_jw_key(&w, "rope_scaling");
    if (c->rope_scaling == KVB_ROPE_SCALING_NONE) {
        kvb_jw_null(&w);
    } else {
        kvb_jw_open(&w, '{', " ");
        int l3 = c->rope_scaling == KVB_ROPE_SCALING_LLAMA3;
        kvb_jw_kstr(&w, "rope_type", l3 ? "llama3" : "linear");
        kvb_jw_knum(&w, "factor", "%.9g", c->rope_factor);
        if (l3) {
            kvb_jw_knum(&w, "low_freq_factor", "%.9g", c->rope_low_freq);
            kvb_jw_knum(&w, "high_freq_factor", "%.9g", c->rope_high_freq);
            kvb_jw_kint(&w, "original_max_position_embeddings", c->rope_orig_ctx);
        }
        kvb_jw_close(&w, " ");
    }
    kvb_jw_kbool(&w, "tie_word_embeddings", c->shared_classifier);
    kvb_jw_kstr(&w, "torch_dtype", torch_dtype(m->w.token_embedding.type));
    return end_json(&a, &w, msg, msg_len);
}

static kvb_status write_index(out_tensor *t, int n, const int *shard_of, int shards,
                              const char *path, char *msg, size_t msg_len)
{
    kvb_afile a;
    if (kvb_afile_open(&a, path, msg, msg_len)) return KVB_STATUS_IO;
    uint64_t total = 0;
    for (int i = 0; i < n; i++) total += t[i].bytes;
    kvb_jw w;
    kvb_jw_init(&w, a.f);
    kvb_jw_open(&w, '{', "\n  ");
    kvb_jw_key(&w, "metadata");
    kvb_jw_open(&w, '{', " ");
    kvb_jw_kuint(&w, "total_size", total);
    kvb_jw_close(&w, "");
    kvb_jw_key(&w, "weight_map");
    kvb_jw_open(&w, '{', "\n    ");
    char file[64];
    for (int i = 0; i < n; i++) {
        snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", shard_of[i] + 1, shards);
        kvb_jw_kstr(&w, t[i].name, file);
    }
    kvb_jw_close(&w, "\n  ");
    return end_json(&a, &w, msg, msg_len);
}

/* config.json and the safetensors file(s) into the directory part */
static kvb_status write_dir(const kvb_model *m, const char *part, int shards, out_tensor *t,
                            int n, char *msg, size_t msg_len)
{
    char path[KVB_PATH_MAX];
    snprintf(path, sizeof path, "%s/config.json", part);
    kvb_status st = write_config(m, path, msg, msg_len);
    out_tensor **v = malloc((size_t)n * sizeof *v);
    int *shard_of = malloc((size_t)n * sizeof *shard_of);
    if (!v || !shard_of) {
        snprintf(msg, msg_len, "cannot allocate %d tensor entries", n);
        st = KVB_STATUS_NO_MEMORY;
    }
    for (int i = 0; i < n && st == KVB_STATUS_OK; i++) shard_of[i] = (int)((long)i * shards / n);
    for (int k = 0; k < shards && st == KVB_STATUS_OK; k++) {
        int nv = 0;
        for (int i = 0; i < n; i++)
            if (shard_of[i] == k) v[nv++] = &t[i];
        if (shards == 1)
            snprintf(path, sizeof path, "%s/model.safetensors", part);
        else
            snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", part, k + 1, shards);
        st = write_st(path, v, nv, m->cfg.head_dim, msg, msg_len);
    }
    if (st == KVB_STATUS_OK && shards > 1) {
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", part);
        st = write_index(t, n, shard_of, shards, path, msg, msg_len);
    }
    free(v);
    free(shard_of);
    return st;
}

kvb_status kvb_hf_save_sharded(const kvb_model *m, const char *dir, int shards, char *msg,
                               size_t msg_len)
{
    const kvb_model_config *c = &m->cfg;
    int n_max = 3 + 9 * c->n_layers;
    if (shards < 1 || shards > n_max || shards > 99999) {
        snprintf(msg, msg_len, "shards = %d: must be from 1 to the %d tensors", shards, n_max);
        return KVB_STATUS_INVALID_ARG;
    }
    out_tensor *t = malloc((size_t)n_max * sizeof *t);
    if (!t) {
        snprintf(msg, msg_len, "cannot allocate %d tensor entries", n_max);
        return KVB_STATUS_NO_MEMORY;
    }
    int n = list_tensors(m, t);
    for (int i = 0; i < n; i++)
        if (!kvb_st_dtype_name(t[i].type)) {
            snprintf(msg, msg_len, "tensor '%s' is stored as %s: safetensors has F32, F16 and "
                     "BF16 (export from f32 weights, or write GGUF)", t[i].name,
                     kvb_wtype_name(t[i].type));
            free(t);
            return KVB_STATUS_UNSUPPORTED;
        }
    char part[KVB_PATH_MAX];
    struct stat sb;
    kvb_status st = KVB_STATUS_INVALID_ARG;
    if (lstat(dir, &sb) == 0) {
        snprintf(msg, msg_len, "'%s' exists: a checkpoint is never written over a path", dir);
    } else if (kvb_partial_name(dir, part, sizeof part)) {
        snprintf(msg, msg_len, "'%s': the path is too long", dir);
    } else if (mkdir(part, 0755) != 0) {
        snprintf(msg, msg_len, "cannot create '%s': %s%s", part, strerror(errno),
                 errno == EEXIST ? " (left by an unfinished export: remove it)" : "");
        st = KVB_STATUS_IO;
    } else {
        st = write_dir(m, part, shards, t, n, msg, msg_len);
        if (st == KVB_STATUS_OK && kvb_partial_publish(part, dir, msg, msg_len)) st = KVB_STATUS_IO;
        if (st != KVB_STATUS_OK) kvb_rmtree(part);
    }
    free(t);
    return st;
}

kvb_status kvb_hf_save(const kvb_model *m, const char *dir, char *msg, size_t msg_len)
{
    return kvb_hf_save_sharded(m, dir, 1, msg, msg_len);
}
