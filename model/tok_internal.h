/* tok_internal.h: the tokenizer's representation, shared by its files
 * (tokenizer.c: tables, open, tokenizer.bin; tok_encode.c: the merge engine;
 * tok_bpe.c: byte-level BPE's mapping and pre-tokenizer; tok_load.c: GGUF;
 * tok_json.c: tokenizer.json). Not for other layers (tests and fuzz aside).
 *
 * A loader makes one with kvb_tok_new, sets every piece (kvb_tok_set_piece, in
 * any id order), scores, types, special ids and merges, then kvb_tok_finish,
 * which checks that every id has a piece, builds the lookup tables and the
 * decoded bytes, and refuses what is inconsistent. */
#ifndef KVB_TOK_INTERNAL_H
#define KVB_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "tokenizer.h"

/* token types (GGUF's tokenizer.ggml.token_type numbering) */
enum {
    KVB_TOK_TYPE_UNDEF = 0, KVB_TOK_TYPE_NORMAL = 1, KVB_TOK_TYPE_UNKNOWN = 2,
    KVB_TOK_TYPE_CONTROL = 3, KVB_TOK_TYPE_USER = 4, KVB_TOK_TYPE_UNUSED = 5,
    KVB_TOK_TYPE_BYTE = 6
};

struct kvb_tokenizer {
    kvb_tok_kind kind;
    int       n;            /* vocab size */
    char     *blob;         /* [blob_len] every piece, then every decoded text */
    size_t    blob_len, blob_cap;
    size_t   *pos;          /* [n] piece id at blob[pos[id]] */
    uint32_t *len;          /* [n] its length; UINT32_MAX: not set yet */
    size_t   *dpos;         /* [n] decoded bytes of id at blob[dpos[id]] */
    uint32_t *dlen;         /* [n] */
    float    *score;        /* [n] spm merge priority; NULL for bpe */
    uint8_t  *type;         /* [n] KVB_TOK_TYPE_* */
    int       byte_id[256]; /* spm: "<0xAB>" token of byte AB; bpe: byte's mapped char; -1 */
    int       bos, eos, unk; /* -1: none */
    int       add_bos;      /* the file's default */
    int       add_space;    /* spm: add_dummy_prefix */
    int       ignore_merges; /* bpe: a chunk that is a piece is that token */
    int32_t  *map;          /* [map_cap] piece -> id, open addressing; -1 empty */
    uint32_t  map_cap;
    /* bpe merges, (left id, right id) -> rank and result, open addressing */
    uint64_t *mkey;         /* [mcap] left << 32 | right; UINT64_MAX empty */
    int32_t  *mrank;        /* [mcap] */
    int32_t  *mres;         /* [mcap] */
    uint32_t  mcap, n_merges;
};

kvb_tokenizer *kvb_tok_new(kvb_tok_kind kind, int n, int with_scores);
/* copies len bytes as id's piece; -1 when id already has one, or on no memory */
int kvb_tok_set_piece(kvb_tokenizer *t, int id, const char *p, size_t len);
/* the id whose piece is p[0..len), or -1 (the lowest id of a repeated piece) */
int kvb_tok_find(const kvb_tokenizer *t, const char *p, size_t len);
/* bpe: merge table for up to n merges; then each merge of two pieces by rank
 * order (refused naming the merge when a side or the result is no piece) */
kvb_status kvb_tok_merges_init(kvb_tokenizer *t, uint32_t n, char *msg, size_t msg_len);
kvb_status kvb_tok_add_merge(kvb_tokenizer *t, const char *field, uint32_t rank, const char *a,
                             size_t alen, const char *b, size_t blen, char *msg, size_t msg_len);
/* p[0..len) for a message: at most 40 bytes, control bytes and quotes as \xNN */
const char *kvb_tok_show(const char *p, size_t len, char *buf, size_t n);
/* checks, tables, decoded bytes; frees t on failure. vocab_size as in open. */
kvb_status kvb_tok_finish(kvb_tokenizer *t, int vocab_size, const char *what, char *msg,
                          size_t msg_len);
/* the "<0xAB>" piece's byte, or -1 */
int kvb_tok_byte_piece(const char *p, size_t len);

/* ---- byte-level BPE (tok_bpe.c) ---- */

/* GPT-2's bytes_to_unicode: the printable code point byte b stands for */
uint32_t kvb_bpe_byte_cp(int b);
/* its inverse: the byte of code point cp, or -1 */
int kvb_bpe_cp_byte(uint32_t cp);
/* UTF-8 of cp into out (at most 4 bytes); returns the count */
int kvb_utf8_put(uint32_t cp, char *out);
/* the code point at s[0..n) and its length; an invalid byte: 0xFFFFFFFF, 1 */
uint32_t kvb_utf8_get(const unsigned char *s, size_t n, int *len);
/* Llama 3's pre-tokenizer: the chunks of cp[0..n) as ends, end[k] the index
 * after chunk k's last code point; returns the chunk count (<= n). */
int kvb_bpe_split(const uint32_t *cp, int n, int *end);

/* the encode of each kind into ids (tokenizer.c's merge engine) */
kvb_status kvb_tok_encode_spm(const kvb_tokenizer *t, const char *text, size_t n, int *ids,
                              int cap, int *count, char *msg, size_t msg_len);
kvb_status kvb_tok_encode_bpe(const kvb_tokenizer *t, const char *text, size_t n, int *ids,
                              int cap, int *count, char *msg, size_t msg_len);

/* loaders (tok_load.c) */
kvb_status kvb_tok_load_json(kvb_tokenizer **out, const char *path, int vocab_size, char *msg,
                             size_t msg_len);

#endif
