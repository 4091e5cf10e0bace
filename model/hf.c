/* hf.c: a Hugging Face config.json as a model shape (hf.h). The keys and defaults
 * are those of transformers' LlamaConfig and MistralConfig; a key that holds the
 * wrong JSON type, a fraction or a value out of range is refused by name rather
 * than read as 0, so a shape is never half made up. */
#define _POSIX_C_SOURCE 200809L
#include "hf.h"
#include "../base/json.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int kvb_hf_is_config(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    if (S_ISDIR(st.st_mode)) return 1;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    int ch;
    while ((ch = fgetc(f)) != EOF && isspace(ch)) {}
    fclose(f);
    return ch == '{';
}

/* key as an integer in [lo, hi] into *out; absent: *out = def, or refused when
 * def < 0 (required). 0 on success. */
static int int_key(const cJSON *j, const char *key, long lo, long hi, long def, int *out,
                   const char *file, char *msg, size_t msg_len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v)) {
        if (def >= 0) {
            *out = (int)def;
            return 0;
        }
        snprintf(msg, msg_len, "%s: no \"%s\" (required)", file, key);
        return -1;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d)) {
        char shown[48] = "a non-number";
        if (cJSON_IsNumber(v)) snprintf(shown, sizeof shown, "%g", d);
        snprintf(msg, msg_len, "%s: \"%s\" = %s: must be an integer from %ld to %ld", file, key,
                 shown, lo, hi);
        return -1;
    }
    *out = (int)d;
    return 0;
}

/* key as a finite number above lo; absent: def. */
static int num_key(const cJSON *j, const char *key, double lo, double def, double *out,
                   const char *file, char *msg, size_t msg_len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || !(v->valuedouble > lo)) {
        snprintf(msg, msg_len, "%s: \"%s\" must be a finite number above %g", file, key, lo);
        return -1;
    }
    *out = v->valuedouble;
    return 0;
}

kvb_status kvb_hf_config(const char *path, kvb_model_config *c, kvb_hf_extra *extra, char *msg,
                         size_t msg_len)
{
    char file[4096];
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(file, sizeof file, "%s/config.json", path);
    else
        snprintf(file, sizeof file, "%s", path);
    int err = 0;
    cJSON *j = kvb_json_load(file, &err, msg, msg_len);
    if (!j) return err == EBADMSG ? KVB_STATUS_FORMAT : KVB_STATUS_IO;
    kvb_hf_extra x = {.norm_eps = 1e-6f, .rope_factor = 1.0f};
    kvb_status st_out = KVB_STATUS_FORMAT;
    if (!cJSON_IsObject(j)) {
        snprintf(msg, msg_len, "%s: not a JSON object", file);
        goto out;
    }
    /* the architecture: the decoder is Llama's; Mistral's is the same plus a window */
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(j, "architectures");
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    if (!cJSON_IsString(a0) ||
        (strcmp(a0->valuestring, "LlamaForCausalLM") != 0 &&
         strcmp(a0->valuestring, "MistralForCausalLM") != 0)) {
        snprintf(msg, msg_len, "%s: \"architectures\" = %s: allowed are LlamaForCausalLM, "
                 "MistralForCausalLM", file, cJSON_IsString(a0) ? a0->valuestring : "(none)");
        st_out = KVB_STATUS_UNSUPPORTED;
        goto out;
    }
    snprintf(x.arch, sizeof x.arch, "%s", a0->valuestring);
    const long big = 1L << 24;
    kvb_model_config m = {0};
    if (int_key(j, "hidden_size", 1, big, -1, &m.dim, file, msg, msg_len) ||
        int_key(j, "intermediate_size", 1, big, -1, &m.hidden_dim, file, msg, msg_len) ||
        int_key(j, "num_hidden_layers", 1, big, -1, &m.n_layers, file, msg, msg_len) ||
        int_key(j, "num_attention_heads", 1, big, -1, &m.n_heads, file, msg, msg_len) ||
        int_key(j, "num_key_value_heads", 1, big, m.n_heads, &m.n_kv_heads, file, msg,
                msg_len) ||
        int_key(j, "vocab_size", 1, big, -1, &m.vocab_size, file, msg, msg_len) ||
        int_key(j, "max_position_embeddings", 1, big, -1, &m.max_seq, file, msg, msg_len))
        goto out;
    if (int_key(j, "head_dim", 1, big, m.dim % m.n_heads ? 0 : m.dim / m.n_heads, &m.head_dim,
                file, msg, msg_len))
        goto out;
    if (m.head_dim == 0) {
        snprintf(msg, msg_len, "%s: no \"head_dim\", and hidden_size %d is not a multiple of "
                 "num_attention_heads %d", file, m.dim, m.n_heads);
        goto out;
    }
    double theta, eps;
    if (num_key(j, "rope_theta", 1.0, 10000.0, &theta, file, msg, msg_len) ||
        num_key(j, "rms_norm_eps", 0.0, 1e-6, &eps, file, msg, msg_len))
        goto out;
    m.rope_theta = (float)theta;
    x.norm_eps = (float)eps;
    m.norm_eps = (float)eps;
    m.rope_layout = KVB_ROPE_LAYOUT_HALF;   /* transformers rotates halves */
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(j, "tie_word_embeddings");
    if (tie && !cJSON_IsBool(tie) && !cJSON_IsNull(tie)) {
        snprintf(msg, msg_len, "%s: \"tie_word_embeddings\" must be true or false", file);
        goto out;
    }
    m.shared_classifier = cJSON_IsTrue(tie);
    if (int_key(j, "sliding_window", 1, big, 0, &x.sliding_window, file, msg, msg_len)) goto out;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
    if (cJSON_IsObject(rs)) {
        const char *t = kvb_json_str_at(rs, "rope_type");
        if (!t) t = kvb_json_str_at(rs, "type");
        snprintf(x.rope_type, sizeof x.rope_type, "%s", t ? t : "");
        double f, lo, hi;
        if (num_key(rs, "factor", 0.0, 1.0, &f, file, msg, msg_len)) goto out;
        x.rope_factor = (float)f;
        /* the decoder's scalings; any other type is left to the loader to refuse */
        if (t && strcmp(t, "linear") == 0) {
            m.rope_scaling = KVB_ROPE_SCALING_LINEAR;
            m.rope_factor = (float)f;
        } else if (t && strcmp(t, "llama3") == 0) {
            if (num_key(rs, "low_freq_factor", 0.0, 1.0, &lo, file, msg, msg_len) ||
                num_key(rs, "high_freq_factor", 0.0, 4.0, &hi, file, msg, msg_len) ||
                int_key(rs, "original_max_position_embeddings", 1, big, 8192, &m.rope_orig_ctx,
                        file, msg, msg_len))
                goto out;
            if (!(hi > lo)) {
                snprintf(msg, msg_len, "%s: rope_scaling's high_freq_factor %g must be above its "
                         "low_freq_factor %g", file, hi, lo);
                goto out;
            }
            m.rope_scaling = KVB_ROPE_SCALING_LLAMA3;
            m.rope_factor = (float)f;
            m.rope_low_freq = (float)lo;
            m.rope_high_freq = (float)hi;
        }
    }
    /* the shape's own checks, without the limit on f32 weights (hf.h) */
    kvb_model_config shape = m;
    shape.hidden_dim = shape.n_layers = shape.vocab_size = 1;
    char why[256];
    if (kvb_model_config_check(&shape, why, sizeof why) != KVB_STATUS_OK) {
        snprintf(msg, msg_len, "%s: inconsistent shape: %s", file, why);
        goto out;
    }
    *c = m;
    if (extra) *extra = x;
    st_out = KVB_STATUS_OK;
out:
    cJSON_Delete(j);
    return st_out;
}
