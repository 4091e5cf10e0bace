/* safetensors.h: Hugging Face checkpoints: the safetensors reader and writer,
 * a whole model directory (config.json + model.safetensors, or shards listed by
 * model.safetensors.index.json) loaded into a kvb_model, and a model saved as one.
 *
 * Contract. A safetensors file is an 8-byte little-endian header length n, n
 * bytes of JSON ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 * "__metadata__": {...}}), then the data section, offsets counted from its start.
 * kvb_st_open maps the file read-only (never copied) and checks everything before
 * use: n within the file, each tensor's dtype (F32, F16, BF16; others refused by
 * name), shape (at most KVB_ST_MAX_DIMS dims, each and their product at most
 * 2^40), begin <= end inside the data section, end - begin = product(shape) x
 * the dtype's size, no two tensors overlapping, and each tensor's data aligned to
 * its element size in memory (the kernels read typed rows). A refusal names the
 * tensor and field and what is allowed. A file cut short after it was mapped
 * would fault on access: nothing guards against another process truncating it. */
#ifndef KVB_SAFETENSORS_H
#define KVB_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "model.h"

enum { KVB_ST_MAX_DIMS = 8 };

typedef struct kvb_st_tensor {
    char          *name;      /* owned, NUL-terminated */
    kvb_wtype      type;      /* F32, F16 or BF16 */
    int            n_dims;    /* 0..KVB_ST_MAX_DIMS */
    uint64_t       dims[KVB_ST_MAX_DIMS];  /* row-major: dims[0] slowest ([out, in]) */
    uint64_t       begin, end;             /* data_offsets, from the data section */
    const uint8_t *data;      /* [end - begin] in the map */
} kvb_st_tensor;

typedef struct kvb_st_file {
    const uint8_t *map;       /* [size] the file, read-only; NULL for kvb_st_parse's */
    size_t         size;
    const uint8_t *base;      /* [size] what was parsed */
    uint64_t       data_off;  /* 8 + the header's length */
    int            n_tensors;
    kvb_st_tensor *t;         /* [n_tensors] */
} kvb_st_file;

/* Parses n bytes at p, which must outlive f (the fuzz target, tests). */
kvb_status kvb_st_parse(kvb_st_file *f, const uint8_t *p, size_t n, char *msg, size_t msg_len);
/* Maps and parses path (a regular file, opened without blocking). */
kvb_status kvb_st_open(kvb_st_file *f, const char *path, char *msg, size_t msg_len);
void       kvb_st_close(kvb_st_file *f);
const kvb_st_tensor *kvb_st_find(const kvb_st_file *f, const char *name);
/* "F32", "F16", "BF16" (safetensors' spelling); NULL for q8_0, which it lacks. */
const char *kvb_st_dtype_name(kvb_wtype t);

/* A checkpoint's safetensors files: dir/model.safetensors, or the shards that
 * dir/model.safetensors.index.json's weight_map names (each a plain file name
 * in dir, opened once; every tensor must be in the shard the index says, and
 * no tensor in two shards). */
typedef struct kvb_st_set {
    int          n_files;
    kvb_st_file *files;       /* [n_files] */
} kvb_st_set;

kvb_status kvb_st_set_open(kvb_st_set *s, const char *dir, char *msg, size_t msg_len);
void       kvb_st_set_close(kvb_st_set *s);
const kvb_st_tensor *kvb_st_set_find(const kvb_st_set *s, const char *name);

/* A Hugging Face Llama checkpoint as a model: path is its directory or its
 * config.json (model/hf.h reads the shape, RoPE layout HALF). Tensors
 * model.embed_tokens.weight, model.layers.N.{input_layernorm, self_attn.
 * {q,k,v,o}_proj, post_attention_layernorm, mlp.{gate,down,up}_proj}.weight,
 * model.norm.weight, lm_head.weight (absent, or tie_word_embeddings: shared);
 * matrices [out, in] point into the maps; norms stored as f16/bf16 are
 * converted into the model's own memory. max_seq_override > 0 replaces
 * max_position_embeddings. */
kvb_status kvb_hf_load_model(kvb_model *m, const char *path, int max_seq_override, char *msg,
                             size_t msg_len);

/* m written as a new directory dir (built as dir.partial, renamed into place;
 * never over an existing path): config.json (LlamaForCausalLM) and
 * model.safetensors, or with shards > 1 model-0000K-of-0000N.safetensors and
 * model.safetensors.index.json. Matrices keep their stored type (f32, f16,
 * bf16; q8_0 is refused: safetensors has no such dtype), norms f32. A model
 * whose RoPE layout is INTERLEAVED has the rows of wq and wk permuted per head
 * as transformers' convert_llama_weights_to_hf.py does (model/permute.h), so
 * that the checkpoint, read with rotate-half RoPE, computes the same function. */
kvb_status kvb_hf_save(const kvb_model *m, const char *dir, char *msg, size_t msg_len);
kvb_status kvb_hf_save_sharded(const kvb_model *m, const char *dir, int shards, char *msg,
                               size_t msg_len);

#endif
