/* model.h: a Llama-style decoder (RMSNorm, RoPE, grouped-query attention,
 * SwiGLU), driven one token at a time through a KV-cache backend, or over a
 * whole sequence at once (prefill, and the no-cache path).
 *
 * Contract: weights stay in their stored type (f32, f16, bf16, GGUF q8_0, q4_0,
 * q4_k, q6_k): the decode step reads them with impls/kernels/matvec.h's kernels
 * over the state's threads; sequence passes split their products over the same
 * threads, blocks of rows converted to f32 for OpenBLAS's sgemm (run it on one
 * thread: openblas_set_num_threads(1), or its workers and the pool's share the
 * cores).
 * Activations are f32. The model owns its weights' memory or the loader's map;
 * a kvb_state owns every activation buffer a forward pass needs, sized once for
 * max_seq, so no forward call allocates. Weight matrices are row-major
 * [out][in], as in llama2.c and GGUF. */
#ifndef KVB_MODEL_H
#define KVB_MODEL_H

#include <stdint.h>
#include <stddef.h>
#include "../impls/kvb_backend.h"

/* How RoPE pairs the values of a head: llama2.c and GGUF's llama files rotate
 * (2i, 2i+1); Hugging Face checkpoints rotate (i, i + head_dim/2) ("rotate
 * half"). The same weights give different models under the two. */
typedef enum kvb_rope_layout {
    KVB_ROPE_LAYOUT_INTERLEAVED = 0,
    KVB_ROPE_LAYOUT_HALF,
} kvb_rope_layout;

/* Scaling of RoPE's frequencies for long contexts: none, linear (every
 * frequency divided by factor), or Llama 3.1's (low frequencies divided by
 * factor, high ones kept, a smooth ramp between, from low/high_freq_factor and
 * the original context). */
typedef enum kvb_rope_scaling {
    KVB_ROPE_SCALING_NONE = 0,
    KVB_ROPE_SCALING_LINEAR,
    KVB_ROPE_SCALING_LLAMA3,
} kvb_rope_scaling;

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
    /* fields a zeroed config leaves at llama2.c's behaviour */
    float norm_eps;           /* RMSNorm epsilon; 0 means 1e-5 */
    int   rope_layout;        /* kvb_rope_layout */
    int   rope_scaling;       /* kvb_rope_scaling */
    float rope_factor;        /* LINEAR, LLAMA3: divisor of the (low) frequencies */
    float rope_low_freq;      /* LLAMA3: low_freq_factor (1 in Llama 3.1) */
    float rope_high_freq;     /* LLAMA3: high_freq_factor (4 in Llama 3.1) */
    int   rope_orig_ctx;      /* LLAMA3: original_max_position_embeddings (8192) */
} kvb_model_config;

/* A weight matrix in its stored type (impls/types/kvb_types.h): rows of cols
 * values, row r at data + r * kvb_wtype_row_bytes(type, cols). data points into
 * the model's own memory or into a mapped file; the model never writes it. */
typedef struct kvb_wmat {
    const void *data;         /* [rows][cols] */
    kvb_wtype   type;
    int         rows, cols;
} kvb_wmat;

typedef struct kvb_layer_weights {
    const float *rms_att;     /* [dim] */
    const float *rms_ffn;     /* [dim] */
    kvb_wmat     wq;          /* [n_heads * head_dim][dim] */
    kvb_wmat     wk;          /* [n_kv_heads * head_dim][dim] */
    kvb_wmat     wv;          /* [n_kv_heads * head_dim][dim] */
    kvb_wmat     wo;          /* [dim][n_heads * head_dim] */
    kvb_wmat     w1;          /* [hidden][dim]  gate */
    kvb_wmat     w2;          /* [dim][hidden]  down */
    kvb_wmat     w3;          /* [hidden][dim]  up */
} kvb_layer_weights;

typedef struct kvb_model_weights {
    kvb_wmat           token_embedding;   /* [vocab][dim] */
    kvb_layer_weights *layer;             /* [n_layers] */
    const float       *rms_final;         /* [dim] */
    kvb_wmat           wcls;   /* [vocab][dim]; token_embedding's data when shared */
} kvb_model_weights;

/* Where the weights live. A model built in memory (random, llama2.c) owns one
 * allocation, mem; a loaded file's tensors stay in its map, which the loader
 * hands over as (map_release, map) and kvb_model_free gives back. */
typedef struct kvb_model {
    kvb_model_config  cfg;
    kvb_model_weights w;
    float            *rope_freq;  /* [head_dim / 2] owned: each pair's frequency, scaled */
    void             *mem;        /* owned: weights built or read into memory, or NULL */
    size_t            mem_bytes;
    void             *map;        /* a loader's mapped file(s), or NULL */
    void            (*map_release)(void *map);
    uint64_t          weight_bytes;  /* every weight as stored */
    uint64_t          step_bytes;    /* what a decode step reads of them: weight_bytes less
                                      * the embedding table but the token's row (all of it
                                      * where it is also the classifier) */
    char              source[32];    /* "random", "llama2.c", "gguf", "safetensors" */
} kvb_model;

/* Activations for one sequence. Decode buffers hold one position; the
 * sequence buffers hold up to max_seq positions. */
struct kvb_pool;
typedef struct kvb_state {
    float *x, *xb, *xb2;      /* [dim] */
    float *q, *att;           /* [n_heads * head_dim] */
    float *k, *v;             /* [n_kv_heads * head_dim] */
    float *hb, *hb2;          /* [hidden] */
    float *logits;            /* [vocab] */
    float *X, *XB;            /* [max_seq][dim] */
    float *Q, *O;             /* [max_seq][n_heads * head_dim] */
    float *K, *V;             /* [max_seq][n_kv_heads * head_dim] */
    float *H1, *H3;           /* [max_seq][hidden] */
    float *scratch;           /* [threads][kvb_attend_causal_scratch_floats for max_seq] */
    float *tile;              /* [threads][KVB_TILE_ROWS][max(dim, hidden, n_heads *
                               * head_dim)]: stored-type weight rows converted for sgemm */
    size_t tile_floats;       /* one thread's tile */
    struct kvb_pool *pool;    /* owned: the decode step's matvec threads (NULL: one) */
    const char *matvec;       /* matvec kernel by name (NULL: auto; kvb_state_set_matvec) */
    int    max_seq;
    int    threads;
} kvb_state;

enum { KVB_TILE_ROWS = 128 };

/* how long the state's pool workers poll for the next product before they
 * sleep (kvb_pool_set_poll): past the gaps inside a step (norms, RoPE, a short
 * attention: tens of microseconds) */
enum { KVB_STATE_POLL_US = 200 };

/* Time spent in the step's attention (append + attend, or the causal kernel). */
typedef struct kvb_step_timing {
    uint64_t attn_ns;
} kvb_step_timing;

kvb_status kvb_model_preset(const char *name, kvb_model_config *out);
const char *kvb_model_preset_name(int i);          /* NULL past the last */
/* The shape's checks, and that its weights in f32 would fit in 64 GB (the limit
 * of what this tool builds; readers of a shape alone skip that one). */
kvb_status kvb_model_config_check(const kvb_model_config *c, char *msg, size_t msg_len);
size_t     kvb_model_param_count(const kvb_model_config *c);
/* That wt's block divides every row length of c (dim, hidden, n_heads x head_dim):
 * what storing c's weights as wt needs. */
kvb_status kvb_model_wtype_check(const kvb_model_config *c, kvb_wtype wt, char *msg,
                                 size_t msg_len);
/* Bytes of every weight stored as wt (norms as f32). */
uint64_t   kvb_model_weight_bytes(const kvb_model_config *c, kvb_wtype wt);

/* Seeded random weights stored as wt. The values are drawn in f32 from one
 * stream whatever wt is, then rounded to wt: a seed names one f32 model and
 * its f16/bf16/q8_0 twins are that model rounded. Needs wt's block to divide
 * dim, hidden and n_heads * head_dim. */
kvb_status kvb_model_init_random(kvb_model *m, const kvb_model_config *c, uint64_t seed,
                                 kvb_wtype wt, char *msg, size_t msg_len);
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
/* As llama2.c's format: f32 weights, interleaved RoPE, theta 10000, eps 1e-5. */
kvb_status kvb_model_save(const kvb_model *m, const char *path, char *msg, size_t msg_len);
/* The end of every model file a writer built in a (base/afile.h) file: aborted with
 * a message when !written, else linked into place, never over an existing file
 * ("'path' exists: <what> is never overwritten"). */
struct kvb_afile;
kvb_status kvb_model_file_publish(struct kvb_afile *a, int written, const char *what, char *msg,
                                  size_t msg_len);
/* For loaders: m->cfg set, m->w filled; computes rope_freq and weight_bytes
 * and checks every matrix's shape and type against the config (a refusal
 * names the tensor). */
kvb_status kvb_model_finish(kvb_model *m, char *msg, size_t msg_len);
/* The name of the type every matrix is stored in ("f32", "bf16", ...), or
 * "mixed" when they differ. */
const char *kvb_model_wtype_name(const kvb_model *m);
void       kvb_model_free(kvb_model *m);

/* Buffers for c, and a pool of `threads` (>= 1) for the decode step's matvec
 * and the sequence passes' products and causal attention. */
kvb_status kvb_state_init(kvb_state *s, const kvb_model_config *c, int threads);
void       kvb_state_free(kvb_state *s);
/* The decode step's matvec kernel by name (matvec.h: "auto", "avx512-vnni", ...)
 * for every matrix whose type it has a row for; the others keep auto. Refused,
 * with why in msg, when the name is unknown, or this CPU lacks the kernel, or
 * it reads none of m's matrices. name must outlive s. */
kvb_status kvb_state_set_matvec(kvb_state *s, const kvb_model *m, const char *name, char *msg,
                                size_t msg_len);

/* The cache's shape for this model. */
kvb_shape kvb_model_kv_shape(const kvb_model_config *c);

/* One decode step: token at position pos; appends its K/V to (cache, seq) and
 * attends over everything cached. Writes state->logits. */
kvb_status kvb_forward_token(const kvb_model *m, kvb_state *s, kvb_cache *cache, int seq,
                             int token, int pos, kvb_step_timing *t);

/* One decode step for B sequences together (a serving step): tokens[i] at
 * position pos[i] of sequence seqs[i] (distinct), each appended to (cache,
 * seqs[i]), which must hold exactly pos[i] tokens, then attending over it. The
 * weights are read once for all B (matrix-matrix work) and each layer's
 * attention is one kvb_cache_attend_batch (per 64 sequences). 1 <= B <=
 * s->max_seq (the sequence pass's buffers hold the B rows). Every argument is
 * checked (INVALID_ARG: B, a token, a duplicate seq, a pos that is not its
 * sequence's length) before anything is appended. Each row's logits equal
 * kvb_forward_token's to f32 rounding (the sums run in another order), not
 * bit for bit. logits: [B][vocab]. t->attn_ns sums the batch's append and
 * attend time. */
kvb_status kvb_forward_batch(const kvb_model *m, kvb_state *s, kvb_cache *cache, int B,
                             const int *seqs, const int *tokens, const int *pos, float *logits,
                             kvb_step_timing *t);

/* Causal pass over tokens[0..T) at positions 0..T-1 with GEMM; state->logits
 * gets the last position's logits. With a cache (non-NULL and not RECOMPUTE)
 * every position's K/V is appended: that is prefill. Without one it is the
 * no-cache step. */
kvb_status kvb_forward_seq(const kvb_model *m, kvb_state *s, kvb_cache *cache, int seq,
                           const int *tokens, int T, kvb_step_timing *t);

/* tokens[0..T) at positions pos0.. with GEMM for the weights, but attention
 * through the cache: each position's K/V is appended to (cache, seq), which
 * must hold exactly pos0 tokens, then its query attends over the cache, so a
 * lossy cache's error reaches every position (perplexity per cache type).
 * logits, when not NULL, gets every position's: [T][vocab]. */
kvb_status kvb_forward_seq_cached(const kvb_model *m, kvb_state *s, kvb_cache *cache, int seq,
                                  const int *tokens, int T, int pos0, float *logits,
                                  kvb_step_timing *t);

int kvb_argmax(const float *x, int n);

#endif
