/* hf_load.c: kvb_hf_load_model (safetensors.h): a Hugging Face Llama checkpoint
 * directory as a model, its matrices in place in the safetensors maps. The shape
 * is config.json's (model/hf.h); every tensor is checked against it. */
#define _POSIX_C_SOURCE 200809L
#include "safetensors.h"
#include "hf.h"
#include "load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void release(void *s)
{
    kvb_st_set_close(s);
    free(s);
}

static int find(void *ctx, const char *name, kvb_load_tensor *t, char *msg, size_t msg_len)
{
    const kvb_st_tensor *s = kvb_st_set_find(ctx, name);
    if (!s) return 1;
    if (s->n_dims < 1 || s->n_dims > 2) {
        snprintf(msg, msg_len, "tensor '%s' has %d dims: matrices have 2, norms 1", name,
                 s->n_dims);
        return -1;
    }
    *t = (kvb_load_tensor){.data = s->data, .type = s->type, .n_dims = s->n_dims,
                           .rows = s->n_dims == 2 ? s->dims[0] : 1,
                           .cols = s->dims[s->n_dims - 1]};
    return 0;
}

/* config's refusals of what the decoder cannot compute */
static kvb_status check_extra(const kvb_model_config *c, const kvb_hf_extra *x, char *msg,
                              size_t msg_len)
{
    const char *t = x->rope_type;
    if (t[0] && strcmp(t, "default") && strcmp(t, "linear") && strcmp(t, "llama3")) {
        snprintf(msg, msg_len, "rope_scaling's type '%s': the decoder has linear and llama3", t);
        return KVB_STATUS_UNSUPPORTED;
    }
    if (x->sliding_window && x->sliding_window < c->max_seq) {
        snprintf(msg, msg_len, "sliding_window = %d is below the context %d: the decoder attends "
                 "to every position (a --max-seq of at most the window computes the same "
                 "model)", x->sliding_window, c->max_seq);
        return KVB_STATUS_UNSUPPORTED;
    }
    if (!(c->norm_eps > 0.0f && c->norm_eps < 1.0f)) {
        snprintf(msg, msg_len, "rms_norm_eps = %g: must be above 0 and below 1",
                 (double)c->norm_eps);
        return KVB_STATUS_FORMAT;
    }
    return KVB_STATUS_OK;
}

kvb_status kvb_hf_load_model(kvb_model *m, const char *path, int max_seq_override, char *msg,
                             size_t msg_len)
{
    memset(m, 0, sizeof *m);
    char dir[4096];
    struct stat sb;
    snprintf(dir, sizeof dir, "%s", path);
    if (stat(path, &sb) == 0 && !S_ISDIR(sb.st_mode)) {   /* config.json: its directory */
        char *slash = strrchr(dir, '/');
        if (!slash) snprintf(dir, sizeof dir, ".");
        else if (slash == dir) dir[1] = 0;
        else *slash = 0;
    }
    kvb_hf_extra x;
    kvb_status st = kvb_hf_config(path, &m->cfg, &x, msg, msg_len);
    if (st != KVB_STATUS_OK) return st;
    if (max_seq_override > 0) m->cfg.max_seq = max_seq_override;
    char why[512];
    if ((st = check_extra(&m->cfg, &x, why, sizeof why)) != KVB_STATUS_OK) {
        snprintf(msg, msg_len, "Hugging Face checkpoint '%s': %s", path, why);
        memset(m, 0, sizeof *m);
        return st;
    }
    kvb_st_set *s = malloc(sizeof *s);
    if (!s) {
        snprintf(msg, msg_len, "cannot allocate the safetensors set");
        return KVB_STATUS_NO_MEMORY;
    }
    if ((st = kvb_st_set_open(s, dir, msg, msg_len)) != KVB_STATUS_OK) {
        free(s);
        memset(m, 0, sizeof *m);
        return st;
    }
    m->map = s;
    m->map_release = release;
    snprintf(m->source, sizeof m->source, "safetensors");
    static const kvb_load_names names = {
        "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
        {"model.layers.%d.input_layernorm.weight", "model.layers.%d.self_attn.q_proj.weight",
         "model.layers.%d.self_attn.k_proj.weight", "model.layers.%d.self_attn.v_proj.weight",
         "model.layers.%d.self_attn.o_proj.weight",
         "model.layers.%d.post_attention_layernorm.weight", "model.layers.%d.mlp.gate_proj.weight",
         "model.layers.%d.mlp.down_proj.weight", "model.layers.%d.mlp.up_proj.weight"},
    };
    st = kvb_load_fill(m, &names, find, s, why, sizeof why);
    if (st != KVB_STATUS_OK) snprintf(msg, msg_len, "Hugging Face checkpoint '%s': %s", dir, why);
    return st;
}
