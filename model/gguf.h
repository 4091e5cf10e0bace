/* gguf.h: a GGUF v2/v3 reader (llama.cpp's model file) over a read-only map of
 * the file, and the llama architecture's shape from its metadata.
 *
 * Contract: kvb_gguf_open maps the file (never copied) and checks everything
 * before use: header, every key/value (all value types, arrays and strings;
 * each length or count against the bytes left), the tensor infos (n_dims <= 4,
 * dims, a known type, offsets aligned) and that every tensor lies inside the
 * file and shares no byte with another. Keys and tensor names are unique. A
 * refusal names the field and what is allowed. Strings point into the map and
 * are not NUL-terminated. The file is read as little-endian (GGUF's order on
 * every machine this tool runs on).
 * A file cut short after it was mapped would fault on access: nothing guards
 * against another process truncating it. */
#ifndef KVB_GGUF_H
#define KVB_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include "model.h"

/* metadata value types (GGUF spec) */
enum {
    KVB_GGUF_U8, KVB_GGUF_I8, KVB_GGUF_U16, KVB_GGUF_I16, KVB_GGUF_U32, KVB_GGUF_I32,
    KVB_GGUF_F32V, KVB_GGUF_BOOL, KVB_GGUF_STRING, KVB_GGUF_ARRAY, KVB_GGUF_U64, KVB_GGUF_I64,
    KVB_GGUF_F64V, KVB_GGUF_NVALUE_TYPES
};

/* tensor types (ggml's numbering); the ones kvb_gguf_type_size knows */
enum {
    KVB_GGML_F32 = 0, KVB_GGML_F16 = 1, KVB_GGML_Q4_0 = 2, KVB_GGML_Q4_1 = 3,
    KVB_GGML_Q5_0 = 6, KVB_GGML_Q5_1 = 7, KVB_GGML_Q8_0 = 8, KVB_GGML_Q2_K = 10,
    KVB_GGML_Q3_K = 11, KVB_GGML_Q4_K = 12, KVB_GGML_Q5_K = 13, KVB_GGML_Q6_K = 14,
    KVB_GGML_BF16 = 30
};

typedef struct kvb_gguf_str {
    const char *p;      /* [n] bytes in the map, no NUL */
    uint64_t    n;
} kvb_gguf_str;

typedef struct kvb_gguf_kv {
    kvb_gguf_str   key;
    uint32_t       type;       /* KVB_GGUF_* */
    uint32_t       arr_type;   /* arrays: the elements' type (never ARRAY) */
    uint64_t       arr_n;      /* arrays: element count */
    const uint8_t *val;        /* [val_bytes] the value (arrays: from the first element) */
    uint64_t       val_bytes;
} kvb_gguf_kv;

typedef struct kvb_gguf_tensor {
    kvb_gguf_str   name;
    int            n_dims;     /* 1..4 */
    uint64_t       dims[4];    /* dims[0] varies fastest (ggml's ne); unused ones 1 */
    uint32_t       type;       /* KVB_GGML_* */
    uint64_t       offset;     /* from the data section's start, a multiple of alignment */
    uint64_t       bytes;      /* from type and dims */
    const uint8_t *data;       /* [bytes] in the map */
} kvb_gguf_tensor;

typedef struct kvb_gguf {
    const uint8_t   *map;      /* [size] the file, read-only; NULL for kvb_gguf_parse's */
    size_t           size;
    const uint8_t   *base;     /* [size] what was parsed */
    uint32_t         version;  /* 2 or 3 */
    uint64_t         n_kv, n_tensors;
    kvb_gguf_kv     *kv;       /* [n_kv] */
    kvb_gguf_tensor *t;        /* [n_tensors] */
    uint64_t         alignment;   /* general.alignment, else 32 */
    uint64_t         data_off;    /* the data section's start in the file */
} kvb_gguf;

/* Maps and parses path (a regular file, opened without blocking). */
kvb_status kvb_gguf_open(kvb_gguf *g, const char *path, char *msg, size_t msg_len);
/* Parses n bytes at p, which must outlive g (the fuzz target, tests). */
kvb_status kvb_gguf_parse(kvb_gguf *g, const uint8_t *p, size_t n, char *msg, size_t msg_len);
void       kvb_gguf_close(kvb_gguf *g);

const kvb_gguf_kv     *kvb_gguf_find_kv(const kvb_gguf *g, const char *key);
const kvb_gguf_tensor *kvb_gguf_find_tensor(const kvb_gguf *g, const char *name);

/* Bytes of n elements of a tensor type (n a multiple of its block); 0 for an
 * unknown type. kvb_gguf_type_name: "f32", ..., or NULL when unknown. */
uint64_t    kvb_gguf_type_size(uint32_t type, uint64_t n);
const char *kvb_gguf_type_name(uint32_t type);

/* A key's value as an integer (any integer type; must fit [lo, hi]) or a float
 * (f32 or f64). KVB_STATUS_INVALID_ARG when the key is absent (msg names it),
 * FORMAT when its type or value is wrong. */
kvb_status kvb_gguf_get_int(const kvb_gguf *g, const char *key, int64_t lo, int64_t hi,
                            int64_t *out, char *msg, size_t msg_len);
kvb_status kvb_gguf_get_float(const kvb_gguf *g, const char *key, double *out, char *msg,
                              size_t msg_len);

/* What the llama metadata says, as read. The config gets norm_eps, and
 * rope_scaling LINEAR with rope_factor when the type is "linear" (any other
 * type leaves NONE: kvb_gguf_load_model refuses it); rope_layout is always
 * INTERLEAVED (llama.cpp's converter permutes Hugging Face's wq and wk). */
typedef struct kvb_gguf_llama_extra {
    float norm_eps;            /* llama.attention.layer_norm_rms_epsilon, else 1e-5 */
    char  rope_scaling[16];    /* llama.rope.scaling.type: none, linear, yarn, ... */
    float rope_factor;         /* llama.rope.scaling.factor, else 1 */
    int   rope_orig_ctx;       /* llama.rope.scaling.original_context_length, else 0 */
    int   rope_freqs;          /* 1: a rope_freqs.weight tensor (llama3's scaling) */
} kvb_gguf_llama_extra;

/* The model's shape from llama.* metadata; general.architecture must be
 * "llama". extra may be NULL. The shape passes kvb_model_config_check except
 * its limit on f32 weights (a 70B model's shape is read for attend and
 * serve-sim; whatever builds f32 weights checks the whole model). */
kvb_status kvb_gguf_llama_config(const kvb_gguf *g, kvb_model_config *c,
                                 kvb_gguf_llama_extra *extra, char *msg, size_t msg_len);

/* A llama GGUF file as a model, its tensors in place in the file's map (kept
 * open until kvb_model_free): token_embd, blk.N.{attn_norm, attn_q, attn_k,
 * attn_v, attn_output, ffn_norm, ffn_gate, ffn_down, ffn_up}, output_norm and
 * output (absent: the classifier is token_embd), each .weight, of type f32,
 * f16, bf16 or q8_0 (any other refused naming tensor and type); dims[0] is a
 * matrix's cols (in), dims[1] its rows (out), both checked against the
 * metadata's shape. Norms stored as other than f32 are converted into the
 * model's memory. RoPE is INTERLEAVED; a rope_freqs.weight tensor (Llama 3's
 * per-pair divisors) divides m->rope_freq after kvb_model_finish. A scaling
 * type other than none and linear is refused. max_seq_override > 0 replaces
 * llama.context_length. */
kvb_status kvb_gguf_load_model(kvb_model *m, const char *path, int max_seq_override, char *msg,
                               size_t msg_len);

/* m written as GGUF v3 (F32 tensors, llama.cpp's names, the llama.* metadata)
 * through a temporary file linked into place: never over an existing file. */
kvb_status kvb_gguf_save(const kvb_model *m, const char *path, char *msg, size_t msg_len);

#endif
