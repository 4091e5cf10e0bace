/* tok_json.c: a tokenizer from a Hugging Face tokenizer.json (model.type
 * "BPE", model.vocab, model.merges as "a b" strings or [a, b] pairs,
 * added_tokens), read through cJSON: byte-level BPE, or with byte_fallback a
 * SentencePiece BPE (scores from the merges' order, spm_scores). BOS and EOS come from
 * tokenizer_config.json beside it where it names them (bos_token, eos_token,
 * add_bos_token), else from the well-known pieces (<|begin_of_text|>, <s>;
 * <|end_of_text|>, </s>, <|endoftext|>); whether BOS is added by default, from
 * the post-processor's template (a special token first) where the config does
 * not say. Each refusal names the JSON path, the value and what is allowed. */
#define _POSIX_C_SOURCE 200809L
#include "tok_internal.h"
#include "../base/json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_VOCAB = 1 << 24 };

/* an integer id in 0..MAX_VOCAB-1, or -1 */
static int json_id(const cJSON *v)
{
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    return d >= 0 && d < MAX_VOCAB && d == floor(d) ? (int)d : -1;
}

/* a token named as a string or as {"content": string}; NULL otherwise */
static const char *token_text(const cJSON *v)
{
    if (cJSON_IsString(v)) return v->valuestring;
    return cJSON_IsObject(v) ? kvb_json_str_at(v, "content") : NULL;
}

/* the first TemplateProcessing in a post-processor (alone or in a Sequence) */
static const cJSON *template_of(const cJSON *pp, int depth)
{
    const char *ty = cJSON_IsObject(pp) ? kvb_json_str_at(pp, "type") : NULL;
    if (!ty || depth > 4) return NULL;
    if (strcmp(ty, "TemplateProcessing") == 0) return pp;
    const cJSON *p;
    if (strcmp(ty, "Sequence") == 0)
        cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(pp, "processors"))
        {
            const cJSON *r = template_of(p, depth + 1);
            if (r) return r;
        }
    return NULL;
}

/* the vocab's size: one past the largest id of model.vocab and added_tokens */
static int vocab_count(const cJSON *vocab, const cJSON *added, const char *path, char *msg,
                       size_t msg_len)
{
    int n = 0, i = 0;
    const cJSON *v;
    char b[200];
    cJSON_ArrayForEach(v, vocab)
    {
        int id = json_id(v);
        if (id < 0) {
            snprintf(msg, msg_len, "%s: model.vocab['%s']: an integer id 0..%d is needed", path,
                     kvb_tok_show(v->string, strlen(v->string), b, sizeof b), MAX_VOCAB - 1);
            return -1;
        }
        if (id >= n) n = id + 1;
    }
    cJSON_ArrayForEach(v, added)
    {
        int id = json_id(cJSON_GetObjectItemCaseSensitive(v, "id"));
        if (id < 0 || !kvb_json_str_at(v, "content")) {
            snprintf(msg, msg_len, "%s: added_tokens[%d]: an integer \"id\" 0..%d and a string "
                     "\"content\" are needed", path, i, MAX_VOCAB - 1);
            return -1;
        }
        if (id >= n) n = id + 1;
        i++;
    }
    if (n == 0) {
        snprintf(msg, msg_len, "%s: model.vocab is empty", path);
        return -1;
    }
    /* ids are dense: refused here, before tables for the largest id are made */
    int given = cJSON_GetArraySize(vocab) + (added ? cJSON_GetArraySize(added) : 0);
    if (given < n) {
        snprintf(msg, msg_len, "%s: token ids reach %d, but model.vocab and added_tokens give "
                 "%d tokens: some id in 0..%d has none", path, n - 1, given, n - 1);
        return -1;
    }
    return n;
}

static kvb_status json_pieces(kvb_tokenizer *t, const cJSON *vocab, const cJSON *added,
                              const char *path, char *msg, size_t msg_len)
{
    const cJSON *v;
    char b[200], c[200];
    cJSON_ArrayForEach(v, vocab)
    {
        int id = json_id(v);
        if (kvb_tok_set_piece(t, id, v->string, strlen(v->string)) != 0) {
            snprintf(msg, msg_len, "%s: model.vocab: id %d is given to '%s' and to '%s'", path,
                     id, kvb_tok_show(t->blob + t->pos[id], t->len[id], b, sizeof b),
                     kvb_tok_show(v->string, strlen(v->string), c, sizeof c));
            return KVB_STATUS_FORMAT;
        }
        t->type[id] = KVB_TOK_TYPE_NORMAL;
    }
    int i = 0;
    cJSON_ArrayForEach(v, added)
    {
        int id = json_id(cJSON_GetObjectItemCaseSensitive(v, "id"));
        const char *s = kvb_json_str_at(v, "content");
        size_t len = strlen(s);
        int same = t->len[id] == len && memcmp(t->blob + t->pos[id], s, len) == 0;
        if (t->len[id] != UINT32_MAX && !same) {
            snprintf(msg, msg_len, "%s: added_tokens[%d]: id %d is '%s', but model.vocab gives "
                     "it to '%s'", path, i, id, kvb_tok_show(s, len, b, sizeof b),
                     kvb_tok_show(t->blob + t->pos[id], t->len[id], c, sizeof c));
            return KVB_STATUS_FORMAT;
        }
        if (!same && kvb_tok_set_piece(t, id, s, len) != 0) {
            snprintf(msg, msg_len, "no memory for the vocab's pieces (%d tokens)", t->n);
            return KVB_STATUS_NO_MEMORY;
        }
        t->type[id] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "special"))
                          ? KVB_TOK_TYPE_CONTROL : KVB_TOK_TYPE_USER;
        i++;
    }
    return KVB_STATUS_OK;
}

static kvb_status json_merges(kvb_tokenizer *t, const cJSON *merges, const char *path,
                              char *msg, size_t msg_len)
{
    char field[1200], b[200];
    snprintf(field, sizeof field, "%s: model.merges", path);
    if (!cJSON_IsArray(merges)) {
        snprintf(msg, msg_len, "%s: an array is needed", field);
        return KVB_STATUS_FORMAT;
    }
    kvb_status st = kvb_tok_merges_init(t, (uint32_t)cJSON_GetArraySize(merges), msg, msg_len);
    uint32_t i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges)
    {
        if (st != KVB_STATUS_OK) break;
        const char *a = NULL, *bs = NULL;
        size_t alen = 0;
        if (cJSON_IsString(m)) {
            a = m->valuestring;
            bs = a[0] ? strchr(a + 1, ' ') : NULL;
            alen = bs ? (size_t)(bs - a) : 0;
            if (bs) bs++;
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 &&
                   cJSON_IsString(m->child) && cJSON_IsString(m->child->next)) {
            a = m->child->valuestring;
            alen = strlen(a);
            bs = m->child->next->valuestring;
        }
        if (!bs) {
            snprintf(msg, msg_len, "%s[%u]%s%s%s: a string \"a b\" or a pair [\"a\", \"b\"] "
                     "is needed", field, i, a ? " '" : "",
                     a ? kvb_tok_show(a, strlen(a), b, sizeof b) : "", a ? "'" : "");
            return KVB_STATUS_FORMAT;
        }
        st = kvb_tok_add_merge(t, field, i++, a, alen, bs, strlen(bs), msg, msg_len);
    }
    return st;
}

/* bos, eos, unk and add_bos; cfg is tokenizer_config.json's, or NULL */
static kvb_status json_specials(kvb_tokenizer *t, const cJSON *root, const cJSON *cfg,
                                const char *path, char *msg, size_t msg_len)
{
    static const char *const bos_names[] = {"<|begin_of_text|>", "<s>"};
    static const char *const eos_names[] = {"<|end_of_text|>", "</s>", "<|endoftext|>"};
    const char *keys[3] = {"bos_token", "eos_token", "model.unk_token"};
    int *ids[3] = {&t->bos, &t->eos, &t->unk};
    char b[200];
    for (int k = 0; k < 3; k++) {
        const char *s = k < 2 ? token_text(kvb_json_at(cfg, keys[k]))
                              : kvb_json_str_at(root, keys[k]);
        if (!s) continue;
        if ((*ids[k] = kvb_tok_find(t, s, strlen(s))) < 0) {
            snprintf(msg, msg_len, "%s: %s '%s' is not a token of the vocab",
                     k < 2 ? "tokenizer_config.json" : path, keys[k],
                     kvb_tok_show(s, strlen(s), b, sizeof b));
            return KVB_STATUS_FORMAT;
        }
    }
    for (int i = 0; i < 2 && t->bos < 0; i++)
        t->bos = kvb_tok_find(t, bos_names[i], strlen(bos_names[i]));
    for (int i = 0; i < 3 && t->eos < 0; i++)
        t->eos = kvb_tok_find(t, eos_names[i], strlen(eos_names[i]));
    const cJSON *ab = kvb_json_at(cfg, "add_bos_token");
    if (cJSON_IsBool(ab)) {
        t->add_bos = cJSON_IsTrue(ab);
    } else {
        const cJSON *tp = template_of(cJSON_GetObjectItemCaseSensitive(root, "post_processor"), 0);
        const char *first = tp ? kvb_json_str_at(tp, "single.0.SpecialToken.id") : NULL;
        int id = first ? kvb_tok_find(t, first, strlen(first)) : -1;
        if (id >= 0 && t->bos < 0) t->bos = id;
        t->add_bos = id >= 0 && id == t->bos;
    }
    if (t->add_bos && t->bos < 0) {
        snprintf(msg, msg_len, "%s: BOS is to be added, but no BOS token is named", path);
        return KVB_STATUS_FORMAT;
    }
    return KVB_STATUS_OK;
}

/* A SentencePiece BPE converted to tokenizer.json (byte_fallback: Llama 2,
 * TinyLlama, Mistral) keeps no scores, but its merges are in score order, so
 * a piece's score is minus the rank of the first merge making it (pieces no
 * merge makes: -1e30, never preferred); "<0xAB>" pieces are byte tokens. */
static void spm_scores(kvb_tokenizer *t)
{
    for (int id = 0; id < t->n; id++) {
        t->score[id] = -1e30f;
        if (t->type[id] == KVB_TOK_TYPE_NORMAL &&
            kvb_tok_byte_piece(t->blob + t->pos[id], t->len[id]) >= 0)
            t->type[id] = KVB_TOK_TYPE_BYTE;
    }
    for (uint32_t i = 0; i < t->mcap; i++)
        if (t->mkey[i] != UINT64_MAX && -(float)t->mrank[i] > t->score[t->mres[i]])
            t->score[t->mres[i]] = -(float)t->mrank[i];
}

static kvb_status json_build(kvb_tokenizer **out, const cJSON *root, const cJSON *cfg,
                             const char *path, int vocab_size, char *msg, size_t msg_len)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *type = kvb_json_str_at(model, "type");
    if (!cJSON_IsObject(model) || !type || strcmp(type, "BPE") != 0) {
        snprintf(msg, msg_len, "%s: model.type = '%s': only BPE (byte-level) is read", path,
                 type ? type : "(missing)");
        return cJSON_IsObject(model) && type ? KVB_STATUS_UNSUPPORTED : KVB_STATUS_FORMAT;
    }
    int spm = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback"));
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsObject(vocab) || (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))) {
        snprintf(msg, msg_len, "%s: %s", path, !cJSON_IsObject(vocab)
                 ? "model.vocab: an object {piece: id} is needed"
                 : "added_tokens: an array is needed");
        return KVB_STATUS_FORMAT;
    }
    if (!cJSON_IsArray(added)) added = NULL;
    int n = vocab_count(vocab, added, path, msg, msg_len);
    if (n < 0) return KVB_STATUS_FORMAT;
    kvb_tokenizer *t = kvb_tok_new(spm ? KVB_TOK_KIND_SPM : KVB_TOK_KIND_BPE, n, spm);
    if (!t) {
        snprintf(msg, msg_len, "no memory for a vocab of %d tokens", n);
        return KVB_STATUS_NO_MEMORY;
    }
    kvb_status st = json_pieces(t, vocab, added, path, msg, msg_len);
    for (int id = 0; st == KVB_STATUS_OK && id < n; id++)
        if (t->len[id] == UINT32_MAX) {
            snprintf(msg, msg_len, "%s: token id %d (of 0..%d) is in neither model.vocab nor "
                     "added_tokens", path, id, n - 1);
            st = KVB_STATUS_FORMAT;
        }
    if (st == KVB_STATUS_OK)
        st = json_merges(t, cJSON_GetObjectItemCaseSensitive(model, "merges"), path, msg, msg_len);
    if (st == KVB_STATUS_OK) st = json_specials(t, root, cfg, path, msg, msg_len);
    if (st != KVB_STATUS_OK) {
        kvb_tokenizer_free(t);
        return st;
    }
    t->ignore_merges = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "ignore_merges"));
    if (spm) spm_scores(t);
    st = kvb_tok_finish(t, vocab_size, path, msg, msg_len);   /* frees t when it refuses */
    if (st == KVB_STATUS_OK) *out = t;
    return st;
}

kvb_status kvb_tok_load_json(kvb_tokenizer **out, const char *path, int vocab_size, char *msg,
                             size_t msg_len)
{
    int err;
    *out = NULL;
    cJSON *root = kvb_json_load(path, &err, msg, msg_len);
    if (!root) return err == EBADMSG ? KVB_STATUS_FORMAT : KVB_STATUS_IO;
    /* tokenizer_config.json beside it, when there is one that parses */
    char cfg_path[4096];
    const char *slash = strrchr(path, '/');
    snprintf(cfg_path, sizeof cfg_path, "%.*stokenizer_config.json",
             slash ? (int)(slash - path + 1) : 0, path);
    char cmsg[256];
    cJSON *cfg = kvb_json_load(cfg_path, &err, cmsg, sizeof cmsg);
    if (!cfg && err != ENOENT) {
        snprintf(msg, msg_len, "%s", cmsg);
        cJSON_Delete(root);
        return err == EBADMSG ? KVB_STATUS_FORMAT : KVB_STATUS_IO;
    }
    kvb_status st = json_build(out, root, cfg, path, vocab_size, msg, msg_len);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    return st;
}
