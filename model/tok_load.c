/* tok_load.c: a tokenizer from GGUF metadata (tokenizer.ggml.*; tokenizer.h
 * says which kinds). Each refusal names the key, the value and what is
 * allowed. */
#define _POSIX_C_SOURCE 200809L
#include "tok_internal.h"
#include "gguf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_VOCAB = 1 << 24 };

/* ---- GGUF ------------------------------------------------------------------ */

/* an array key of element type et: NULL when absent (msg empty) or wrong (msg says) */
static const kvb_gguf_kv *gguf_array(const kvb_gguf *g, const char *key, uint32_t et,
                                     const char *et_name, char *msg, size_t msg_len)
{
    const kvb_gguf_kv *kv = kvb_gguf_find_kv(g, key);
    msg[0] = 0;
    if (!kv) return NULL;
    if (kv->type != KVB_GGUF_ARRAY || kv->arr_type != et) {
        snprintf(msg, msg_len, "%s has value type %u (array of %u): an array of %s is needed",
                 key, kv->type, kv->type == KVB_GGUF_ARRAY ? kv->arr_type : 0, et_name);
        return NULL;
    }
    return kv;
}

/* the string value of key into buf (cut to fit): 1, 0 absent, -1 not a string */
static int gguf_string(const kvb_gguf *g, const char *key, char *buf, size_t n)
{
    const kvb_gguf_kv *kv = kvb_gguf_find_kv(g, key);
    buf[0] = 0;
    if (!kv) return 0;
    if (kv->type != KVB_GGUF_STRING) return -1;
    uint64_t len;
    memcpy(&len, kv->val, 8);
    size_t k = len < n - 1 ? (size_t)len : n - 1;
    memcpy(buf, kv->val + 8, k);
    buf[k] = 0;
    return 1;
}

/* a bool (or integer) key: 0/1, def when absent, -1 (msg) when of another type */
static int gguf_flag(const kvb_gguf *g, const char *key, int def, char *msg, size_t msg_len)
{
    const kvb_gguf_kv *kv = kvb_gguf_find_kv(g, key);
    if (!kv) return def;
    if (kv->type == KVB_GGUF_BOOL) return kv->val[0] != 0;
    int64_t v;
    if (kvb_gguf_get_int(g, key, 0, 1, &v, msg, msg_len) != KVB_STATUS_OK) return -1;
    return (int)v;
}

/* a special token id in 0..n-1, def when absent; -2 (msg) when wrong */
static int gguf_special(const kvb_gguf *g, const char *key, int n, int def, char *msg,
                        size_t msg_len)
{
    int64_t v;
    kvb_status st = kvb_gguf_get_int(g, key, 0, n - 1, &v, msg, msg_len);
    if (st == KVB_STATUS_INVALID_ARG) return def;
    return st == KVB_STATUS_OK ? (int)v : -2;
}

/* element i of a string array: walks from *p, bounded by end */
static int gguf_next_str(const uint8_t **p, const uint8_t *end, const char **s, size_t *len)
{
    uint64_t l;
    if (end - *p < 8) return -1;
    memcpy(&l, *p, 8);
    if (l > (uint64_t)(end - *p - 8) || l >= UINT32_MAX) return -1;
    *s = (const char *)*p + 8;
    *len = (size_t)l;
    *p += 8 + l;
    return 0;
}

static kvb_status gguf_merges(kvb_tokenizer *t, const kvb_gguf_kv *kv, char *msg, size_t msg_len)
{
    const char *key = "tokenizer.ggml.merges";
    if (kv->arr_n > UINT32_MAX / 4) {
        snprintf(msg, msg_len, "%s: %llu merges: at most %u", key, (unsigned long long)kv->arr_n,
                 UINT32_MAX / 4);
        return KVB_STATUS_FORMAT;
    }
    kvb_status st = kvb_tok_merges_init(t, (uint32_t)kv->arr_n, msg, msg_len);
    const uint8_t *p = kv->val, *end = kv->val + kv->val_bytes;
    for (uint32_t i = 0; st == KVB_STATUS_OK && i < kv->arr_n; i++) {
        const char *s, *sp;
        size_t len;
        char b[200];
        if (gguf_next_str(&p, end, &s, &len) != 0) {
            snprintf(msg, msg_len, "%s[%u]: its length lies past the array's bytes", key, i);
            return KVB_STATUS_FORMAT;
        }
        /* "a b": the first space after the first byte (no byte-level piece holds one) */
        sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp) {
            snprintf(msg, msg_len, "%s[%u] '%s': no space between its two tokens", key, i,
                     kvb_tok_show(s, len, b, sizeof b));
            return KVB_STATUS_FORMAT;
        }
        st = kvb_tok_add_merge(t, key, i, s, (size_t)(sp - s), sp + 1,
                               len - (size_t)(sp - s) - 1, msg, msg_len);
    }
    return st;
}

/* pieces, scores and types of a GGUF vocab into t */
static kvb_status gguf_vocab(kvb_tokenizer *t, const kvb_gguf *g, const kvb_gguf_kv *tok,
                             char *msg, size_t msg_len)
{
    const char *sk = "tokenizer.ggml.scores", *tk = "tokenizer.ggml.token_type";
    const kvb_gguf_kv *sc = gguf_array(g, sk, KVB_GGUF_F32V, "f32", msg, msg_len);
    if (!sc && msg[0]) return KVB_STATUS_FORMAT;
    const kvb_gguf_kv *ty = gguf_array(g, tk, KVB_GGUF_I32, "i32", msg, msg_len);
    if (!ty && msg[0]) return KVB_STATUS_FORMAT;
    if (!sc && t->kind == KVB_TOK_KIND_SPM) {
        snprintf(msg, msg_len, "%s is missing: a SentencePiece (llama) vocab merges by score", sk);
        return KVB_STATUS_FORMAT;
    }
    const kvb_gguf_kv *chk[2] = {sc, ty};
    for (int k = 0; k < 2; k++)
        if (chk[k] && chk[k]->arr_n != tok->arr_n) {
            snprintf(msg, msg_len, "%s holds %llu values, tokenizer.ggml.tokens %llu tokens",
                     k ? tk : sk, (unsigned long long)chk[k]->arr_n,
                     (unsigned long long)tok->arr_n);
            return KVB_STATUS_FORMAT;
        }
    const uint8_t *p = tok->val, *end = tok->val + tok->val_bytes;
    for (int id = 0; id < t->n; id++) {
        const char *s;
        size_t len;
        if (gguf_next_str(&p, end, &s, &len) != 0) {
            snprintf(msg, msg_len, "tokenizer.ggml.tokens[%d]: its length lies past the array's "
                     "bytes", id);
            return KVB_STATUS_FORMAT;
        }
        if (kvb_tok_set_piece(t, id, s, len) != 0) {
            snprintf(msg, msg_len, "no memory for the vocab's pieces (%d tokens)", t->n);
            return KVB_STATUS_NO_MEMORY;
        }
        int32_t type = kvb_tok_byte_piece(s, len) >= 0 ? KVB_TOK_TYPE_BYTE : KVB_TOK_TYPE_NORMAL;
        if (ty) memcpy(&type, ty->val + 4 * (size_t)id, 4);
        if (type < 0 || type > KVB_TOK_TYPE_BYTE) {
            snprintf(msg, msg_len, "%s[%d] = %d: allowed are 0..6", tk, id, (int)type);
            return KVB_STATUS_FORMAT;
        }
        t->type[id] = (uint8_t)type;
        if (t->score) {
            memcpy(&t->score[id], sc->val + 4 * (size_t)id, 4);
            if (!isfinite(t->score[id])) {
                snprintf(msg, msg_len, "%s[%d] is not finite", sk, id);
                return KVB_STATUS_FORMAT;
            }
        }
    }
    return KVB_STATUS_OK;
}

kvb_status kvb_tokenizer_from_gguf(kvb_tokenizer **out, const kvb_gguf *g, int vocab_size,
                                   char *msg, size_t msg_len)
{
    char model[64], pre[64];
    const char *mk = "tokenizer.ggml.model", *tk = "tokenizer.ggml.tokens";
    *out = NULL;
    int r = gguf_string(g, mk, model, sizeof model);
    if (r <= 0) {
        snprintf(msg, msg_len, "%s %s", mk, r ? "is not a string" : "is missing: no vocab");
        return KVB_STATUS_FORMAT;
    }
    int spm = strcmp(model, "llama") == 0;
    if (!spm && strcmp(model, "gpt2") != 0) {
        snprintf(msg, msg_len, "%s = '%s': allowed are llama (SentencePiece) and gpt2 "
                 "(byte-level BPE)", mk, model);
        return KVB_STATUS_UNSUPPORTED;
    }
    const kvb_gguf_kv *tok = gguf_array(g, tk, KVB_GGUF_STRING, "string", msg, msg_len);
    if (!tok) {
        if (!msg[0]) snprintf(msg, msg_len, "%s is missing", tk);
        return KVB_STATUS_FORMAT;
    }
    if (tok->arr_n < 1 || tok->arr_n > MAX_VOCAB) {
        snprintf(msg, msg_len, "%s holds %llu tokens: allowed are 1..%d", tk,
                 (unsigned long long)tok->arr_n, MAX_VOCAB);
        return KVB_STATUS_FORMAT;
    }
    int n = (int)tok->arr_n;
    kvb_tokenizer *t = kvb_tok_new(spm ? KVB_TOK_KIND_SPM : KVB_TOK_KIND_BPE, n, spm);
    if (!t) {
        snprintf(msg, msg_len, "no memory for a vocab of %d tokens", n);
        return KVB_STATUS_NO_MEMORY;
    }
    kvb_status st = gguf_vocab(t, g, tok, msg, msg_len);
    if (st != KVB_STATUS_OK) goto fail;
    if (!spm) {
        const kvb_gguf_kv *mg =
            gguf_array(g, "tokenizer.ggml.merges", KVB_GGUF_STRING, "string", msg, msg_len);
        if (!mg) {
            if (!msg[0]) snprintf(msg, msg_len, "tokenizer.ggml.merges is missing (gpt2 vocab)");
            st = KVB_STATUS_FORMAT;
            goto fail;
        }
        if ((st = gguf_merges(t, mg, msg, msg_len)) != KVB_STATUS_OK) goto fail;
        if (gguf_string(g, "tokenizer.ggml.pre", pre, sizeof pre) > 0)
            t->ignore_merges = strcmp(pre, "llama-bpe") == 0;
    }
    /* llama.cpp's defaults for a SentencePiece vocab: bos 1, eos 2, unk 0 */
    static const char *const keys[3] = {"tokenizer.ggml.bos_token_id",
                                        "tokenizer.ggml.eos_token_id",
                                        "tokenizer.ggml.unknown_token_id"};
    int *ids[3] = {&t->bos, &t->eos, &t->unk};
    int defs[3] = {spm && n > 1 ? 1 : -1, spm && n > 2 ? 2 : -1, spm ? 0 : -1};
    st = KVB_STATUS_FORMAT;
    for (int k = 0; k < 3; k++)
        if ((*ids[k] = gguf_special(g, keys[k], n, defs[k], msg, msg_len)) == -2) goto fail;
    t->add_bos = gguf_flag(g, "tokenizer.ggml.add_bos_token", spm, msg, msg_len);
    if (t->add_bos < 0) goto fail;
    t->add_space = gguf_flag(g, "tokenizer.ggml.add_space_prefix", 1, msg, msg_len);
    if (t->add_space < 0) goto fail;
    /* kvb_tok_finish frees t when it refuses */
    st = kvb_tok_finish(t, vocab_size, "the GGUF vocab", msg, msg_len);
    if (st == KVB_STATUS_OK) *out = t;
    return st;
fail:
    kvb_tokenizer_free(t);
    return st;
}
