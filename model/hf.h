/* hf.h: a Hugging Face checkpoint's config.json (LlamaForCausalLM, MistralForCausalLM) as
 * a kvb_model_config: the model's exact shape, read through cJSON, no weights.
 *
 * Contract: path is a config.json or a directory holding one. Required keys
 * (hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
 * vocab_size, max_position_embeddings) must be integers in range; optional ones
 * take Hugging Face's defaults (num_key_value_heads = heads, head_dim = hidden /
 * heads, rope_theta 10000, tie_word_embeddings false). Every refusal names the key,
 * the value and what is allowed. Like the GGUF reader, the 64 GB limit on f32
 * weights is not applied: a 70B shape is read for attend and serve-sim. */
#ifndef KVB_HF_H
#define KVB_HF_H

#include <stddef.h>
#include "model.h"

/* What config.json says besides the config: the architecture, the scaling's
 * name (a type the decoder lacks, "yarn" or "dynamic", leaves the config's
 * rope_scaling NONE; kvb_hf_load_model refuses it) and Mistral's window.
 * The config itself gets norm_eps (rms_norm_eps), rope_layout HALF,
 * rope_scaling LINEAR (factor) or LLAMA3 (factor, low_freq_factor default 1,
 * high_freq_factor default 4, original_max_position_embeddings default 8192). */
typedef struct kvb_hf_extra {
    char  arch[64];           /* architectures[0] */
    float norm_eps;           /* rms_norm_eps, else 1e-6 */
    char  rope_type[16];      /* rope_scaling.rope_type (or .type): "" when none */
    float rope_factor;        /* rope_scaling.factor, else 1 */
    int   sliding_window;     /* Mistral's window in tokens; 0: none (null or absent) */
} kvb_hf_extra;

/* Whether path names a Hugging Face config: a directory, or a file whose first
 * non-space byte is '{'. */
int kvb_hf_is_config(const char *path);

/* The shape in path's config.json. extra may be NULL. */
kvb_status kvb_hf_config(const char *path, kvb_model_config *c, kvb_hf_extra *extra, char *msg,
                         size_t msg_len);

#endif
