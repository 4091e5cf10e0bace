/* load.h: a model file of any supported format opened by what it holds, and
 * what the format loaders (gguf_load.c, hf_load.c) share.
 *
 * Contract. kvb_model_open: a directory, or a file whose first non-space byte
 * is '{' (a config.json), is a Hugging Face checkpoint (safetensors.h); a file
 * starting with "GGUF" is GGUF (gguf.h); any other file is tried as a llama2.c
 * checkpoint (model.h's kvb_model_load), and a refusal then names the path and
 * the three formats. Weights of the first two stay in their read-only maps,
 * which the model releases (kvb_model_free). */
#ifndef KVB_LOAD_H
#define KVB_LOAD_H

#include <stddef.h>
#include <stdint.h>
#include "model.h"

kvb_status kvb_model_open(kvb_model *m, const char *path, int max_seq_override, char *msg,
                          size_t msg_len);

/* What path holds, judged as kvb_model_open does, without blocking; NONE
 * (errno set) when it cannot be read or is neither a regular file nor a
 * directory. LLAMA2C is only "none of the others". */
typedef enum kvb_model_format {
    KVB_MODEL_FORMAT_NONE = 0,
    KVB_MODEL_FORMAT_HF,
    KVB_MODEL_FORMAT_GGUF,
    KVB_MODEL_FORMAT_LLAMA2C,
} kvb_model_format;
kvb_model_format kvb_model_format_of(const char *path);

/* ---- for the loaders -------------------------------------------------------- */

/* path mapped whole, read-only: a regular file (opened without blocking) of at
 * least min bytes; what names the format in a refusal ("a GGUF file"). */
kvb_status kvb_map_file(const char *path, size_t min, const char *what, const uint8_t **map,
                        size_t *size, char *msg, size_t msg_len);

/* One tensor as a format stores it: rows x cols, row-major (1-d: rows = 1). */
typedef struct kvb_load_tensor {
    const void *data;         /* [rows][cols] in the map */
    kvb_wtype   type;
    int         n_dims;       /* 1 or 2 */
    uint64_t    rows, cols;
} kvb_load_tensor;

/* Looks a tensor up: 0 found (*t filled), 1 absent, -1 refused (its type or
 * rank is not one the decoder reads; msg names the tensor and why). */
typedef int (*kvb_load_find_fn)(void *ctx, const char *name, kvb_load_tensor *t, char *msg,
                                size_t msg_len);

/* A format's tensor names; the layer's are printf formats taking the layer. */
typedef struct kvb_load_names {
    const char *embed, *norm_final, *output;
    /* attn_norm, wq, wk, wv, wo, ffn_norm, w1 (gate), w2 (down), w3 (up) */
    const char *layer[9];
} kvb_load_names;

/* With m->cfg set (and m->map / map_release, so a refusal frees them): every
 * tensor found, its rank, shape and type checked (a refusal names it), the
 * matrices pointed at in place, the norms too when they are aligned f32, else
 * converted into m->mem; the layer table is its own allocation (kvb_model_free
 * frees m->w.layer); output absent or
 * cfg.shared_classifier: the classifier is token_embedding. Then
 * kvb_model_finish. On failure m is freed. */
kvb_status kvb_load_fill(kvb_model *m, const kvb_load_names *names, kvb_load_find_fn find,
                         void *ctx, char *msg, size_t msg_len);
/* kvb_model_finish, and on failure kvb_model_free (msg says why). */
kvb_status kvb_load_finish(kvb_model *m, char *msg, size_t msg_len);

#endif
