/* tokenizer.c: the tokenizer's tables (tok_internal.h), kvb_tokenizer_open's
 * choice of source, the llama2.c tokenizer.bin reader, and the public
 * accessors (tokenizer.h). Encoding is in tok_encode.c. */
#define _POSIX_C_SOURCE 200809L
#include "tok_internal.h"
#include "gguf.h"
#include "../base/textio.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- tables --------------------------------------------------------------- */

kvb_tokenizer *kvb_tok_new(kvb_tok_kind kind, int n, int with_scores)
{
    kvb_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->kind = kind;
    t->n = n;
    t->bos = t->eos = t->unk = -1;
    t->add_space = 1;
    size_t un = n > 0 ? (size_t)n : 1;
    t->pos = calloc(un, sizeof *t->pos);
    t->len = malloc(un * sizeof *t->len);
    t->dpos = calloc(un, sizeof *t->dpos);
    t->dlen = calloc(un, sizeof *t->dlen);
    t->type = calloc(un, 1);
    t->score = with_scores ? calloc(un, sizeof *t->score) : NULL;
    if (!t->pos || !t->len || !t->dpos || !t->dlen || !t->type || (with_scores && !t->score)) {
        kvb_tokenizer_free(t);
        return NULL;
    }
    memset(t->len, 0xff, un * sizeof *t->len);
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    return t;
}

void kvb_tokenizer_free(kvb_tokenizer *t)
{
    if (!t) return;
    free(t->blob);
    free(t->pos);
    free(t->len);
    free(t->dpos);
    free(t->dlen);
    free(t->score);
    free(t->type);
    free(t->map);
    free(t->mkey);
    free(t->mrank);
    free(t->mres);
    free(t);
}

/* room for n more bytes in the blob (which may move); -1 on no memory */
static int blob_reserve(kvb_tokenizer *t, size_t n)
{
    if (t->blob_len + n + 1 <= t->blob_cap) return 0;
    size_t cap = (t->blob_len + n + 1) * 2;
    char *b = realloc(t->blob, cap);
    if (!b) return -1;
    t->blob = b;
    t->blob_cap = cap;
    return 0;
}

/* appends n bytes to the blob; their offset, or SIZE_MAX on no memory. p must
 * not point into the blob unless blob_reserve made room first. */
static size_t blob_add(kvb_tokenizer *t, const char *p, size_t n)
{
    if (blob_reserve(t, n) != 0) return SIZE_MAX;
    size_t at = t->blob_len;
    if (n) memcpy(t->blob + at, p, n);
    t->blob_len += n;
    return at;
}

int kvb_tok_set_piece(kvb_tokenizer *t, int id, const char *p, size_t len)
{
    if (id < 0 || id >= t->n || t->len[id] != UINT32_MAX || len >= UINT32_MAX) return -1;
    size_t at = blob_add(t, p, len);
    if (at == SIZE_MAX) return -1;
    t->pos[id] = at;
    t->len[id] = (uint32_t)len;
    return 0;
}

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;   /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint64_t hash_pair(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    return k ^ (k >> 33);
}

/* the smallest power of two >= 2 n (at least 16) */
static uint32_t table_cap(uint64_t n)
{
    uint32_t c = 16;
    while (c < 2 * n && c < (1u << 31)) c <<= 1;
    return c;
}

int kvb_tok_find(const kvb_tokenizer *t, const char *p, size_t len)
{
    if (!t->map) return -1;
    uint32_t mask = t->map_cap - 1;
    for (uint32_t i = (uint32_t)hash_bytes(p, len) & mask;; i = (i + 1) & mask) {
        int32_t id = t->map[i];
        if (id < 0) return -1;
        if (t->len[id] == len && memcmp(t->blob + t->pos[id], p, len) == 0) return id;
    }
}

/* every piece into the map, lowest id first so that a repeated piece finds it */
static int build_map(kvb_tokenizer *t)
{
    t->map_cap = table_cap((uint64_t)t->n);
    t->map = malloc((size_t)t->map_cap * sizeof *t->map);
    if (!t->map) return -1;
    memset(t->map, 0xff, (size_t)t->map_cap * sizeof *t->map);
    uint32_t mask = t->map_cap - 1;
    for (int id = 0; id < t->n; id++) {
        const char *p = t->blob + t->pos[id];
        if (kvb_tok_find(t, p, t->len[id]) >= 0) continue;
        uint32_t i = (uint32_t)hash_bytes(p, t->len[id]) & mask;
        while (t->map[i] >= 0) i = (i + 1) & mask;
        t->map[i] = id;
    }
    return 0;
}

kvb_status kvb_tok_merges_init(kvb_tokenizer *t, uint32_t n, char *msg, size_t msg_len)
{
    if (!t->map && build_map(t) != 0) goto oom;
    t->mcap = table_cap(n);
    t->mkey = malloc((size_t)t->mcap * sizeof *t->mkey);
    t->mrank = malloc((size_t)t->mcap * sizeof *t->mrank);
    t->mres = malloc((size_t)t->mcap * sizeof *t->mres);
    if (!t->mkey || !t->mrank || !t->mres) goto oom;
    memset(t->mkey, 0xff, (size_t)t->mcap * sizeof *t->mkey);
    return KVB_STATUS_OK;
oom:
    snprintf(msg, msg_len, "no memory for the vocab's tables (%d tokens, %u merges)", t->n, n);
    return KVB_STATUS_NO_MEMORY;
}

const char *kvb_tok_show(const char *p, size_t len, char *buf, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < len && i < 40 && o + 5 < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c == 0x7f || c == '\'')
            o += (size_t)snprintf(buf + o, n - o, "\\x%02X", c);
        else
            buf[o++] = (char)c;
    }
    if (len > 40 && o + 4 < n) o += (size_t)snprintf(buf + o, n - o, "...");
    buf[o] = 0;
    return buf;
}

kvb_status kvb_tok_add_merge(kvb_tokenizer *t, const char *field, uint32_t rank, const char *a,
                             size_t alen, const char *b, size_t blen, char *msg, size_t msg_len)
{
    char sa[200], sb[200], local[512];
    int ia = kvb_tok_find(t, a, alen), ib = kvb_tok_find(t, b, blen), ir = -1;
    if (ia >= 0 && ib >= 0) {
        /* the merged piece: the two sides are pieces, so it is as long as a piece can be */
        char *cat = alen + blen <= sizeof local ? local : malloc(alen + blen);
        if (!cat) {
            snprintf(msg, msg_len, "%s[%u]: no memory", field, rank);
            return KVB_STATUS_NO_MEMORY;
        }
        memcpy(cat, a, alen);
        memcpy(cat + alen, b, blen);
        ir = kvb_tok_find(t, cat, alen + blen);
        if (cat != local) free(cat);
    }
    if (ia < 0 || ib < 0 || ir < 0) {
        snprintf(msg, msg_len, "%s[%u] '%s %s': %s is not a token of the vocab", field, rank,
                 kvb_tok_show(a, alen, sa, sizeof sa), kvb_tok_show(b, blen, sb, sizeof sb),
                 ia < 0 ? "its left side" : ib < 0 ? "its right side" : "the merged piece");
        return KVB_STATUS_FORMAT;
    }
    if (t->n_merges >= t->mcap / 2) {
        snprintf(msg, msg_len, "%s: more merges than counted (%u)", field, t->n_merges);
        return KVB_STATUS_FORMAT;
    }
    uint64_t key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
    uint32_t mask = t->mcap - 1, i = (uint32_t)hash_pair(key) & mask;
    while (t->mkey[i] != UINT64_MAX && t->mkey[i] != key) i = (i + 1) & mask;
    if (t->mkey[i] == key) return KVB_STATUS_OK;   /* repeated: the lower rank stands */
    t->mkey[i] = key;
    t->mrank[i] = (int32_t)rank;
    t->mres[i] = ir;
    t->n_merges++;
    return KVB_STATUS_OK;
}

int kvb_tok_byte_piece(const char *p, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    if (len != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>') return -1;
    const char *h = strchr(hex, p[3]), *l = strchr(hex, p[4]);
    if (!p[3] || !p[4] || !h || !l) return -1;
    return (int)(h - hex) * 16 + (int)(l - hex);
}

/* id's decoded bytes appended to the blob. They are never longer than the
 * piece, so one reservation first keeps the blob, and pointers into it, still. */
static int decode_piece(kvb_tokenizer *t, int id)
{
    if (blob_reserve(t, t->len[id]) != 0) return -1;
    const char *p = t->blob + t->pos[id];
    size_t n = t->len[id], at = t->blob_len;
    char out[4];
    uint8_t ty = t->type[id];
    int none = ty == KVB_TOK_TYPE_CONTROL || ty == KVB_TOK_TYPE_UNKNOWN || id == t->bos ||
               id == t->eos || id == t->unk;
    if (none) {
        n = 0;
    } else if (t->kind == KVB_TOK_KIND_SPM && ty == KVB_TOK_TYPE_BYTE) {
        out[0] = (char)kvb_tok_byte_piece(p, n);
        blob_add(t, out, 1);
    } else if (t->kind == KVB_TOK_KIND_SPM) {
        for (size_t i = 0; i < n; i++) {
            int space = i + 3 <= n && memcmp(p + i, "\xe2\x96\x81", 3) == 0;
            blob_add(t, space ? " " : p + i, 1);
            if (space) i += 2;
        }
    } else {
        /* byte-level: every code point back to its byte; a piece with one that
         * is not a mapped byte (an added token of plain text) stays as it is */
        for (size_t i = 0; i < n;) {
            int l;
            int b = kvb_bpe_cp_byte(kvb_utf8_get((const unsigned char *)p + i, n - i, &l));
            if (b < 0) {
                t->blob_len = at;
                blob_add(t, p, n);
                break;
            }
            out[0] = (char)b;
            blob_add(t, out, 1);
            i += (size_t)l;
        }
    }
    t->dpos[id] = at;
    t->dlen[id] = (uint32_t)(t->blob_len - at);
    return 0;
}

kvb_status kvb_tok_finish(kvb_tokenizer *t, int vocab_size, const char *what, char *msg,
                          size_t msg_len)
{
    kvb_status st = KVB_STATUS_FORMAT;
    char s[200];
    for (int id = 0; id < t->n; id++)
        if (t->len[id] == UINT32_MAX) {
            snprintf(msg, msg_len, "%s: token id %d of %d has no piece", what, id, t->n);
            goto fail;
        }
    if (vocab_size > 0 && t->n != vocab_size) {
        snprintf(msg, msg_len, "%s holds %d tokens, the model's vocab_size is %d", what, t->n,
                 vocab_size);
        st = KVB_STATUS_INVALID_ARG;
        goto fail;
    }
    if (!t->map && build_map(t) != 0) goto oom;
    for (int id = t->n - 1; id >= 0; id--) {
        const char *p = t->blob + t->pos[id];
        if (t->kind == KVB_TOK_KIND_SPM && t->type[id] == KVB_TOK_TYPE_BYTE) {
            int b = kvb_tok_byte_piece(p, t->len[id]);
            if (b < 0) {
                snprintf(msg, msg_len, "%s: token %d '%s' has type byte (6) but is no <0xAB> piece",
                         what, id, kvb_tok_show(p, t->len[id], s, sizeof s));
                goto fail;
            }
            t->byte_id[b] = id;   /* downward: the lowest id stands */
        }
    }
    if (t->kind == KVB_TOK_KIND_BPE)
        for (int b = 0; b < 256; b++) {
            char u[4];
            int l = kvb_utf8_put(kvb_bpe_byte_cp(b), u);
            if ((t->byte_id[b] = kvb_tok_find(t, u, (size_t)l)) < 0) {
                snprintf(msg, msg_len,
                         "%s: no token for byte 0x%02X (piece '%s'): a byte-level "
                         "BPE vocab holds all 256",
                         what, b, kvb_tok_show(u, (size_t)l, s, sizeof s));
                goto fail;
            }
        }
    for (int id = 0; id < t->n; id++)
        if (decode_piece(t, id) != 0) goto oom;
    return KVB_STATUS_OK;
oom:
    snprintf(msg, msg_len, "%s: no memory for the vocab's tables (%d tokens)", what, t->n);
    st = KVB_STATUS_NO_MEMORY;
fail:
    kvb_tokenizer_free(t);
    return st;
}

/* ---- llama2.c tokenizer.bin ---------------------------------------------- */

kvb_status kvb_tokenizer_from_bin(kvb_tokenizer **out, const void *data, size_t n, int vocab_size,
                                  char *msg, size_t msg_len)
{
    const unsigned char *p = data;
    *out = NULL;
    if (vocab_size <= 0) {
        snprintf(msg, msg_len, "a llama2.c tokenizer.bin does not hold its token count: give "
                 "the model's vocab size (got %d)", vocab_size);
        return KVB_STATUS_INVALID_ARG;
    }
    int32_t maxlen;
    if (n < 4) {
        snprintf(msg, msg_len, "tokenizer.bin: %zu bytes, too short for max_token_length", n);
        return KVB_STATUS_FORMAT;
    }
    memcpy(&maxlen, p, 4);
    if (maxlen < 1 || maxlen > 65536) {
        snprintf(msg, msg_len, "tokenizer.bin: max_token_length = %d: allowed are 1..65536",
                 (int)maxlen);
        return KVB_STATUS_FORMAT;
    }
    kvb_tokenizer *t = kvb_tok_new(KVB_TOK_KIND_SPM, vocab_size, 1);
    if (!t) {
        snprintf(msg, msg_len, "no memory for a vocab of %d tokens", vocab_size);
        return KVB_STATUS_NO_MEMORY;
    }
    size_t at = 4;
    for (int id = 0; id < vocab_size; id++) {
        float sc;
        int32_t len;
        if (n - at < 8) {
            snprintf(msg, msg_len, "tokenizer.bin: token %d of %d (the model's vocab_size): its "
                     "score and length lie past the end (%zu bytes)", id, vocab_size, n);
            goto bad;
        }
        memcpy(&sc, p + at, 4);
        memcpy(&len, p + at + 4, 4);
        at += 8;
        if (!isfinite(sc) || len < 0 || len > maxlen || (size_t)len > n - at) {
            snprintf(msg, msg_len, "tokenizer.bin: token %d: %s (score %g, len %d, "
                     "max_token_length %d, %zu bytes left)", id,
                     !isfinite(sc) ? "score is not finite"
                     : len < 0 || len > maxlen ? "len outside 0..max_token_length"
                                               : "its bytes lie past the end",
                     (double)sc, (int)len, (int)maxlen, n - at);
            goto bad;
        }
        if (kvb_tok_set_piece(t, id, (const char *)p + at, (size_t)len) != 0) goto oom;
        t->score[id] = sc;
        t->type[id] = kvb_tok_byte_piece((const char *)p + at, (size_t)len) >= 0
                          ? KVB_TOK_TYPE_BYTE : KVB_TOK_TYPE_NORMAL;
        at += (size_t)len;
    }
    if (at != n) {
        snprintf(msg, msg_len, "tokenizer.bin: %zu bytes after token %d: the file holds more "
                 "tokens than the model's vocab_size %d", n - at, vocab_size - 1, vocab_size);
        goto bad;
    }
    /* llama2.c's convention: 0 <unk>, 1 <s>, 2 </s> */
    t->unk = 0;
    t->type[0] = KVB_TOK_TYPE_UNKNOWN;
    if (vocab_size > 1) {
        t->bos = 1;
        t->type[1] = KVB_TOK_TYPE_CONTROL;
    }
    if (vocab_size > 2) {
        t->eos = 2;
        t->type[2] = KVB_TOK_TYPE_CONTROL;
    }
    t->add_bos = 1;
    kvb_status st = kvb_tok_finish(t, vocab_size, "tokenizer.bin", msg, msg_len);
    if (st == KVB_STATUS_OK) *out = t;
    return st;
oom:
    snprintf(msg, msg_len, "no memory for a vocab of %d tokens", vocab_size);
    kvb_tokenizer_free(t);
    return KVB_STATUS_NO_MEMORY;
bad:
    kvb_tokenizer_free(t);
    return KVB_STATUS_FORMAT;
}

/* ---- open by what the path holds ----------------------------------------- */

kvb_status kvb_tokenizer_open(kvb_tokenizer **out, const char *path, int vocab_size, char *msg,
                              size_t msg_len)
{
    *out = NULL;
    struct stat sb;
    char file[4096];
    if (stat(path, &sb) != 0) {
        snprintf(msg, msg_len, "tokenizer '%s': %s", path, strerror(errno));
        return KVB_STATUS_IO;
    }
    if (S_ISDIR(sb.st_mode)) {
        snprintf(file, sizeof file, "%s/tokenizer.json", path);
        if (stat(file, &sb) != 0) {
            snprintf(msg, msg_len, "tokenizer '%s' is a directory without tokenizer.json (%s)",
                     path, strerror(errno));
            return KVB_STATUS_IO;
        }
        return kvb_tok_load_json(out, file, vocab_size, msg, msg_len);
    }
    if (!S_ISREG(sb.st_mode)) {
        snprintf(msg, msg_len, "tokenizer '%s' is not a regular file or a directory", path);
        return KVB_STATUS_IO;
    }
    unsigned char head[64] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(msg, msg_len, "tokenizer '%s': %s", path, strerror(errno));
        return KVB_STATUS_IO;
    }
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    if (got >= 4 && memcmp(head, "GGUF", 4) == 0) {
        kvb_gguf g;
        kvb_status st = kvb_gguf_open(&g, path, msg, msg_len);
        if (st != KVB_STATUS_OK) return st;
        st = kvb_tokenizer_from_gguf(out, &g, vocab_size, msg, msg_len);
        kvb_gguf_close(&g);
        return st;
    }
    size_t i = 0;
    while (i < got && (head[i] == ' ' || head[i] == '\n' || head[i] == '\r' || head[i] == '\t'))
        i++;
    if (i < got && head[i] == '{') return kvb_tok_load_json(out, path, vocab_size, msg, msg_len);
    size_t n;
    char *data = kvb_slurp_len(path, &n);
    if (!data) {
        snprintf(msg, msg_len, "tokenizer '%s': %s", path, strerror(errno));
        return KVB_STATUS_IO;
    }
    kvb_status st = kvb_tokenizer_from_bin(out, data, n, vocab_size, msg, msg_len);
    free(data);
    return st;
}

/* ---- accessors ------------------------------------------------------------ */

const char *kvb_tokenizer_decode(const kvb_tokenizer *t, int id, size_t *len)
{
    if (id < 0 || id >= t->n) return NULL;
    *len = t->dlen[id];
    return t->blob + t->dpos[id];
}

const char *kvb_tokenizer_piece(const kvb_tokenizer *t, int id, size_t *len)
{
    if (id < 0 || id >= t->n) return NULL;
    *len = t->len[id];
    return t->blob + t->pos[id];
}

int kvb_tokenizer_vocab_size(const kvb_tokenizer *t) { return t->n; }
int kvb_tokenizer_bos(const kvb_tokenizer *t) { return t->bos; }
int kvb_tokenizer_eos(const kvb_tokenizer *t) { return t->eos; }
int kvb_tokenizer_unk(const kvb_tokenizer *t) { return t->unk; }
int kvb_tokenizer_add_bos(const kvb_tokenizer *t) { return t->add_bos; }
kvb_tok_kind kvb_tokenizer_kind(const kvb_tokenizer *t) { return t->kind; }
const char *kvb_tokenizer_kind_name(const kvb_tokenizer *t)
{
    return t->kind == KVB_TOK_KIND_SPM ? "spm" : "bpe";
}
