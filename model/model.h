/* model.h: a Llama-style decoder (RMSNorm, RoPE, grouped-query attention,
 * SwiGLU) in f32 on OpenBLAS, driven one token at a time through a KV-cache
 * backend, or over a whole sequence at once (prefill, and the no-cache path).
 *
 * Contract: the model owns its weights (one allocation); a kvb_state owns every
 * activation buffer a forward pass needs, sized once for max_seq, so no forward
 * call allocates. Weight matrices are row-major [out][in], as in llama2.c, so a
 * llama2.c checkpoint loads without reshaping. */
#ifndef KVB_MODEL_H
#define KVB_MODEL_H

#include <stdint.h>
#include <stddef.h>
#include "../impls/kvb_backend.h"

typedef struct kvb_model_config {
    int   dim;                /* residual stream width */
    int   hidden_dim;         /* SwiGLU inner width */
    int   n_layers;
    int   n_heads;            /* query heads */
    int   n_kv_heads;         /* divides n_heads */
    int   head_dim;           /* even (RoPE rotates pairs) */
    int   vocab_size;
    int   max_seq;            /* most positions a sequence may reach */
    float rope_theta;         /* 10000 for Llama 2 */
    int   shared_classifier;  /* 1: logits use token_embedding */
} kvb_model_config;

typedef struct kvb_model_weights {
    float *token_embedding;   /* [vocab][dim] */
    float *rms_att;           /* [layer][dim] */
    float *wq;                /* [layer][n_heads * head_dim][dim] */
    float *wk;                /* [layer][n_kv_heads * head_dim][dim] */
    float *wv;                /* [layer][n_kv_heads * head_dim][dim] */
    float *wo;                /* [layer][dim][n_heads * head_dim] */
    float *rms_ffn;           /* [layer][dim] */
    float *w1;                /* [layer][hidden][dim]  gate */
    float *w2;                /* [layer][dim][hidden]  down */
    float *w3;                /* [layer][hidden][dim]  up */
    float *rms_final;         /* [dim] */
    float *wcls;              /* [vocab][dim]; aliases token_embedding when shared */
} kvb_model_weights;

typedef struct kvb_model {
    kvb_model_config  cfg;
    kvb_model_weights w;
    float            *mem;    /* owns every weight above */
    size_t            n_floats;
} kvb_model;

/* Activations for one sequence. Decode buffers hold one position; the
 * sequence buffers hold up to max_seq positions. */
typedef struct kvb_state {
    float *x, *xb, *xb2;      /* [dim] */
    float *q, *att;           /* [n_heads * head_dim] */
    float *k, *v;             /* [n_kv_heads * head_dim] */
    float *hb, *hb2;          /* [hidden] */
    float *logits;            /* [vocab] */
    float *inv_freq;          /* [head_dim / 2] RoPE frequencies */
    float *X, *XB;            /* [max_seq][dim] */
    float *Q, *O;             /* [max_seq][n_heads * head_dim] */
    float *K, *V;             /* [max_seq][n_kv_heads * head_dim] */
    float *H1, *H3;           /* [max_seq][hidden] */
    float *scratch;           /* kvb_attend_causal_gemm's, for max_seq */
    int    max_seq;
} kvb_state;

/* Time spent in the step's attention (append + attend, or the causal kernel). */
typedef struct kvb_step_timing {
    uint64_t attn_ns;
} kvb_step_timing;

kvb_status kvb_model_preset(const char *name, kvb_model_config *out);
const char *kvb_model_preset_name(int i);          /* NULL past the last */
kvb_status kvb_model_config_check(const kvb_model_config *c, char *msg, size_t msg_len);
size_t     kvb_model_param_count(const kvb_model_config *c);

kvb_status kvb_model_init_random(kvb_model *m, const kvb_model_config *c, uint64_t seed,
                                 char *msg, size_t msg_len);
/* llama2.c checkpoint: int32 header {dim, hidden, layers, heads, kv_heads,
 * vocab (negative: separate classifier), seq_len}, then f32 weights. The file
 * must be exactly as long as its header implies. max_seq_override > 0 replaces
 * seq_len. */
kvb_status kvb_model_load(kvb_model *m, const char *path, int max_seq_override,
                          char *msg, size_t msg_len);
/* The checkpoint's shape alone, with the same checks as kvb_model_load (the
 * file is opened without blocking and must be a regular file of exactly the
 * size its header implies); no weights are read. */
kvb_status kvb_model_read_config(const char *path, kvb_model_config *c, char *msg, size_t msg_len);
kvb_status kvb_model_save(const kvb_model *m, const char *path, char *msg, size_t msg_len);
/* The end of every model file a writer built in a (base/afile.h) file: aborted with
 * a message when !written, else linked into place, never over an existing file
 * ("'path' exists: <what> is never overwritten"). */
struct kvb_afile;
kvb_status kvb_model_file_publish(struct kvb_afile *a, int written, const char *what, char *msg,
                                  size_t msg_len);
void       kvb_model_free(kvb_model *m);

kvb_status kvb_state_init(kvb_state *s, const kvb_model_config *c);
void       kvb_state_free(kvb_state *s);

/* The cache's shape for this model. */
kvb_shape kvb_model_kv_shape(const kvb_model_config *c);

/* One decode step: token at position pos; appends its K/V to (cache, seq) and
 * attends over everything cached. Writes state->logits. */
kvb_status kvb_forward_token(const kvb_model *m, kvb_state *s, kvb_cache *cache, int seq,
                             int token, int pos, kvb_step_timing *t);

/* Causal pass over tokens[0..T) at positions 0..T-1 with GEMM; state->logits
 * gets the last position's logits. With a cache (non-NULL and not RECOMPUTE)
 * every position's K/V is appended: that is prefill. Without one it is the
 * no-cache step. */
kvb_status kvb_forward_seq(const kvb_model *m, kvb_state *s, kvb_cache *cache, int seq,
                           const int *tokens, int T, kvb_step_timing *t);

int kvb_argmax(const float *x, int n);

#endif
