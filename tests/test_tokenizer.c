/* test_tokenizer.c: the tokenizers (model/tokenizer.h) on vocabularies made
 * here, whose encodings are worked out by hand in the comments (cmocka).
 *
 * SentencePiece (a llama2.c tokenizer.bin and a GGUF built in memory): merges
 * by score, the leftmost of tied pairs, byte fallback, unk without byte
 * tokens, empty text, multi-byte characters, the dummy prefix. Byte-level BPE
 * (tokenizer.json, a directory, GGUF "gpt2"): GPT-2's byte mapping, the Llama 3
 * pre-tokenizer's splits, merges by rank, ignore_merges, decode(encode(x)) ==
 * x on random text. Every malformed input refused naming its field. Each
 * expectation is checked to differ from what the wrong rule would give.
 * Usage: test_tokenizer [REGEX] (or KVB_TEST_FILTER=REGEX). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../model/gguf.h"
#include "../model/tok_internal.h"
#include "../model/tokenizer.h"
#include "testlib.h"

#define SP "\xe2\x96\x81"   /* U+2581, SentencePiece's space */

/* ---- helpers ------------------------------------------------------------------ */

typedef struct bytes {
    uint8_t *p;   /* [n] */
    size_t   n, cap;
} bytes;

static void add(bytes *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = 2 * (b->n + n) + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void add32(bytes *b, uint32_t v) { add(b, &v, 4); }
static void add64(bytes *b, uint64_t v) { add(b, &v, 8); }
static void addf(bytes *b, float v) { add(b, &v, 4); }
static void adds(bytes *b, const char *s) { add64(b, strlen(s)); add(b, s, strlen(s)); }
/* a GGUF array key's head: its name, ARRAY, the element type, the count */
static void add_array(bytes *b, const char *key, uint32_t type, int n)
{
    adds(b, key);
    add32(b, KVB_GGUF_ARRAY);
    add32(b, type);
    add64(b, (uint64_t)n);
}

/* encodes text and checks the ids against want[0..nw) */
static void expect_ids(const kvb_tokenizer *t, const char *text, int add_bos, const int *want,
                       int nw)
{
    int ids[256], n = -1;
    char msg[512] = "";
    kvb_status st = kvb_tokenizer_encode(t, text, strlen(text), add_bos, ids, 256, &n, msg,
                                         sizeof msg);
    if (st != KVB_STATUS_OK) fail_msg("encode '%s': %s", text, msg);
    int same = n == nw && (nw == 0 || memcmp(ids, want, (size_t)nw * sizeof *ids) == 0);
    if (!same) {
        char got[1024] = "";
        for (int i = 0; i < n && i < 64; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), " %d", ids[i]);
        fail_msg("encode '%s': %d ids:%s (wanted %d)", text, n, got, nw);
    }
}

/* the concatenated decodes of ids into out (NUL-terminated); its length */
static size_t decode_all(const kvb_tokenizer *t, const int *ids, int n, char *out, size_t cap)
{
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        size_t len;
        const char *p = kvb_tokenizer_decode(t, ids[i], &len);
        assert_non_null(p);
        assert_true(o + len < cap);
        memcpy(out + o, p, len);
        o += len;
    }
    out[o] = 0;
    return o;
}

static void expect_refused(kvb_status got, kvb_status want, const char *msg, const char *needle)
{
    if (got != want || !strstr(msg, needle))
        fail_msg("status %d (wanted %d), message '%s' (wanted '%s' in it)", (int)got, (int)want,
                 msg, needle);
}

/* ---- SentencePiece: a llama2.c tokenizer.bin --------------------------------
 * ids 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, then the pieces below */
enum { SPM_SP = 259, SPM_A, SPM_B, SPM_C, SPM_AB, SPM_BC, SPM_SPA, SPM_EACUTE, SPM_AA, SPM_N };
static const struct { const char *piece; float score; } spm_pieces[] = {
    {SP, -1}, {"a", -2}, {"b", -2}, {"c", -2}, {"ab", -5}, {"bc", -3}, {SP "a", -4},
    {"\xc3\xa9", -2}, {"aa", -1},
};

/* the image of the first n tokens */
static bytes spm_bin_n(int n)
{
    bytes b = {0};
    char piece[8];
    add32(&b, 16);
    for (int id = 0; id < n; id++) {
        const char *p = id == 0 ? "<unk>" : id == 1 ? "<s>" : id == 2 ? "</s>" : piece;
        if (id >= 3 && id < SPM_SP) snprintf(piece, sizeof piece, "<0x%02X>", id - 3);
        if (id >= SPM_SP) p = spm_pieces[id - SPM_SP].piece;
        addf(&b, id >= SPM_SP ? spm_pieces[id - SPM_SP].score : 0);
        add32(&b, (uint32_t)strlen(p));
        add(&b, p, strlen(p));
    }
    return b;
}

static bytes spm_bin(void) { return spm_bin_n(SPM_N); }

static kvb_tokenizer *spm_open(void)
{
    bytes b = spm_bin();
    kvb_tokenizer *t = NULL;
    char msg[512];
    kvb_status st = kvb_tokenizer_from_bin(&t, b.p, b.n, SPM_N, msg, sizeof msg);
    if (st != KVB_STATUS_OK) fail_msg("tokenizer.bin: %s", msg);
    free(b.p);
    return t;
}

static void test_spm_merges(void **state)
{
    (void)state;
    kvb_tokenizer *t = spm_open();
    assert_string_equal(kvb_tokenizer_kind_name(t), "spm");
    assert_int_equal(kvb_tokenizer_vocab_size(t), SPM_N);
    assert_int_equal(kvb_tokenizer_bos(t), 1);
    assert_int_equal(kvb_tokenizer_eos(t), 2);
    /* "abc" -> "▁abc": pairs ▁a -4, ab -5, bc -3; the highest, bc, first: ▁ a bc;
     * then ▁a -4: ▁a bc. The lowest score first would give ▁ ab c (259 263 262). */
    expect_ids(t, "abc", 0, (int[]){SPM_SPA, SPM_BC}, 2);
    /* "aaa" -> "▁aaa": aa at 1 and at 2 tie at -1; the leftmost merges: ▁ aa a,
     * and neither ▁aa nor aaa is a piece. The rightmost would give ▁ a aa, then
     * ▁a aa (265 266). */
    expect_ids(t, "aaa", 0, (int[]){SPM_SP, SPM_AA, SPM_A}, 3);
    /* BOS first with add_bos 1, and with -1 (a tokenizer.bin's default) */
    expect_ids(t, "b", 1, (int[]){1, SPM_SP, SPM_B}, 3);
    expect_ids(t, "b", -1, (int[]){1, SPM_SP, SPM_B}, 3);
    /* empty text: no dummy prefix, so just BOS or nothing */
    expect_ids(t, "", 1, (int[]){1}, 1);
    expect_ids(t, "", 0, NULL, 0);
    /* "é" is one piece (2 bytes): ▁ é; split into bytes it would be <0xC3> <0xA9> */
    expect_ids(t, "\xc3\xa9", 0, (int[]){SPM_SP, SPM_EACUTE}, 2);
    /* "a ü": ▁a ▁ then ü (C3 BC), no piece: byte fallback <0xC3> <0xBC> (ids 3 + byte) */
    expect_ids(t, "a \xc3\xbc", 0, (int[]){SPM_SPA, SPM_SP, 3 + 0xc3, 3 + 0xbc}, 4);
    /* a byte that is not UTF-8 (0xFF) is a symbol of its own: <0xFF> */
    expect_ids(t, "c\xff", 0, (int[]){SPM_SP, SPM_C, 3 + 0xff}, 3);
    /* decode: ▁ as a space, byte tokens as bytes, BOS as nothing */
    int ids[] = {1, SPM_SPA, SPM_SP, 3 + 0xc3, 3 + 0xbc, SPM_BC};
    char out[64];
    decode_all(t, ids, 6, out, sizeof out);
    assert_string_equal(out, " a \xc3\xbc" "bc");
    size_t len;
    assert_memory_equal(kvb_tokenizer_piece(t, SPM_SPA, &len), SP "a", 4);
    assert_null(kvb_tokenizer_decode(t, SPM_N, &len));
    assert_null(kvb_tokenizer_decode(t, -1, &len));
    /* too small an array: FULL, and the whole count */
    int n = 0;
    char msg[256];
    assert_int_equal(kvb_tokenizer_encode(t, "abc", 3, 1, ids, 2, &n, msg, sizeof msg),
                     KVB_STATUS_FULL);
    assert_int_equal(n, 3);
    int *all = NULL;
    assert_int_equal(kvb_tokenizer_encode_alloc(t, "abc", 3, 1, &all, &n, msg, sizeof msg),
                     KVB_STATUS_OK);
    assert_int_equal(n, 3);
    assert_int_equal(all[2], SPM_BC);
    free(all);
    kvb_tokenizer_free(t);
}

/* a vocab of bytes alone (the image's first SPM_SP tokens: no ▁ piece): each
 * space, and the leading one, is three byte tokens, more ids than n + 2; the
 * allocating call sizes its array again and returns them all */
static void test_spm_bytes_only(void **state)
{
    (void)state;
    bytes b = spm_bin_n(SPM_SP);
    kvb_tokenizer *t = NULL;
    char msg[512];
    kvb_status st = kvb_tokenizer_from_bin(&t, b.p, b.n, SPM_SP, msg, sizeof msg);
    free(b.p);
    if (st != KVB_STATUS_OK) fail_msg("tokenizer.bin, bytes only: %s", msg);
    enum { E2 = 3 + 0xe2, X96 = 3 + 0x96, X81 = 3 + 0x81 };
    const int want[] = {1, E2, X96, X81, 3 + 'a', E2, X96, X81, E2, X96, X81, 3 + 'b'};
    int *ids = NULL, n = 0;
    assert_int_equal(kvb_tokenizer_encode_alloc(t, "a  b", 4, 1, &ids, &n, msg, sizeof msg),
                     KVB_STATUS_OK);
    assert_int_equal(n, 12);
    assert_memory_equal(ids, want, sizeof want);
    free(ids);
    char out[16];
    /* byte tokens decode to their bytes as they are: U+2581, not a space */
    decode_all(t, want, 12, out, sizeof out);
    assert_string_equal(out, SP "a" SP SP "b");
    kvb_tokenizer_free(t);
}

/* a long text: the heap keeps its order over thousands of symbols */
static void test_spm_long(void **state)
{
    (void)state;
    kvb_tokenizer *t = spm_open();
    enum { REPS = 5000 };
    char *text = malloc(4 * REPS + 1);
    for (int i = 0; i < REPS; i++) memcpy(text + 4 * i, "abc ", 4);
    int *ids, n;
    char msg[256];
    assert_int_equal(kvb_tokenizer_encode_alloc(t, text, 4 * REPS - 1, 0, &ids, &n, msg,
                                                sizeof msg), KVB_STATUS_OK);
    /* every word as "abc" alone: ▁a bc */
    assert_int_equal(n, 2 * REPS);
    for (int i = 0; i < n; i++) assert_int_equal(ids[i], i % 2 ? SPM_BC : SPM_SPA);
    free(ids);
    free(text);
    kvb_tokenizer_free(t);
}

static void test_spm_bin_malformed(void **state)
{
    (void)state;
    bytes b = spm_bin();
    kvb_tokenizer *t = (kvb_tokenizer *)1;
    char msg[512];
    /* every prefix is refused, none crashes */
    for (size_t k = 0; k < b.n; k++) {
        msg[0] = 0;
        assert_int_equal(kvb_tokenizer_from_bin(&t, b.p, k, SPM_N, msg, sizeof msg),
                         KVB_STATUS_FORMAT);
        assert_null(t);
        assert_true(msg[0] != 0);
    }
    expect_refused(kvb_tokenizer_from_bin(&t, b.p, b.n, SPM_N - 1, msg, sizeof msg),
                   KVB_STATUS_FORMAT, msg, "more tokens than the model's vocab_size");
    expect_refused(kvb_tokenizer_from_bin(&t, b.p, b.n, 0, msg, sizeof msg),
                   KVB_STATUS_INVALID_ARG, msg, "vocab size");
    uint32_t len = 17;   /* token 0's length past max_token_length (16) */
    memcpy(b.p + 8, &len, 4);
    expect_refused(kvb_tokenizer_from_bin(&t, b.p, b.n, SPM_N, msg, sizeof msg),
                   KVB_STATUS_FORMAT, msg, "token 0: len outside 0..max_token_length");
    len = 5;
    memcpy(b.p + 8, &len, 4);
    float inf = 1.0f / 0.0f;
    memcpy(b.p + 4, &inf, 4);
    expect_refused(kvb_tokenizer_from_bin(&t, b.p, b.n, SPM_N, msg, sizeof msg),
                   KVB_STATUS_FORMAT, msg, "score is not finite");
    free(b.p);
}

/* ---- SentencePiece from GGUF metadata ---------------------------------------- */

enum { G_MODEL = 1, G_SCORES = 2, G_TYPES = 4, G_SPECIAL = 8, G_MERGES = 16 };

/* a GGUF with no tensors and the tokenizer.ggml keys of `keys`; pieces[n],
 * scores and types for them; merges[nm] for gpt2 */
static bytes gguf_vocab(const char *model, const char *const *pieces, int n, const float *scores,
                        const int32_t *types, const char *const *merges, int nm,
                        const char *extra_key, uint32_t extra_val, const char *pre)
{
    bytes b = {0};
    add(&b, "GGUF", 4);
    add32(&b, 3);
    add64(&b, 0);
    add64(&b, 2 + !!scores + !!types + !!merges + !!extra_key + !!pre);
    adds(&b, "tokenizer.ggml.model");
    add32(&b, KVB_GGUF_STRING);
    adds(&b, model);
    add_array(&b, "tokenizer.ggml.tokens", KVB_GGUF_STRING, n);
    for (int i = 0; i < n; i++) adds(&b, pieces[i]);
    if (scores) {
        add_array(&b, "tokenizer.ggml.scores", KVB_GGUF_F32V, n);
        add(&b, scores, (size_t)n * 4);
    }
    if (types) {
        add_array(&b, "tokenizer.ggml.token_type", KVB_GGUF_I32, n);
        add(&b, types, (size_t)n * 4);
    }
    if (merges) {
        add_array(&b, "tokenizer.ggml.merges", KVB_GGUF_STRING, nm);
        for (int i = 0; i < nm; i++) adds(&b, merges[i]);
    }
    if (extra_key) {   /* a bool when the key says so, else a u32 */
        adds(&b, extra_key);
        int is_bool = strstr(extra_key, "add_") != NULL;
        add32(&b, is_bool ? KVB_GGUF_BOOL : KVB_GGUF_U32);
        if (is_bool) add(&b, &(uint8_t){(uint8_t)extra_val}, 1);
        else add32(&b, extra_val);
    }
    if (pre) {
        adds(&b, "tokenizer.ggml.pre");
        add32(&b, KVB_GGUF_STRING);
        adds(&b, pre);
    }
    while (b.n % 32) add(&b, "", 1);
    return b;
}

/* no byte tokens: an unknown character is unk */
static const char *const g_pieces[] = {"<unk>", "<s>", "</s>", SP, "a", "b", SP "a", "ab"};
static const float g_scores[] = {0, 0, 0, -3, -3, -3, -1, -2};
static const int32_t g_types[] = {2, 3, 3, 1, 1, 1, 1, 1};
enum { G_N = 8 };

static kvb_status gguf_tok(bytes b, kvb_tokenizer **t, int vocab, char *msg, size_t n)
{
    kvb_gguf g;
    kvb_status st = kvb_gguf_parse(&g, b.p, b.n, msg, n);
    if (st != KVB_STATUS_OK) fail_msg("the test's GGUF: %s", msg);
    st = kvb_tokenizer_from_gguf(t, &g, vocab, msg, n);
    kvb_gguf_close(&g);
    free(b.p);
    return st;
}

static void test_spm_gguf(void **state)
{
    kvb_tokenizer *t;
    char msg[512], path[1024];
    bytes b = gguf_vocab("llama", g_pieces, G_N, g_scores, g_types, NULL, 0, NULL, 0, NULL);
    /* through the file, as kvb_tokenizer_open finds it */
    kvbt_tmp_path(state, "vocab.gguf", path, sizeof path);
    kvbt_write_file(path, b.p, b.n);
    free(b.p);
    if (kvb_tokenizer_open(&t, path, G_N, msg, sizeof msg) != KVB_STATUS_OK)
        fail_msg("open %s: %s", path, msg);
    assert_string_equal(kvb_tokenizer_kind_name(t), "spm");
    assert_int_equal(kvb_tokenizer_unk(t), 0);
    /* "ab ü" -> "▁ab▁ü": ▁a -1 before ab -2: ▁a b ▁ ü; no ▁ab, b▁ or ▁ü;
     * ü has no piece and no byte token: unk. ab first would give ▁ ab ▁ unk
     * (3 7 3 0). */
    expect_ids(t, "ab \xc3\xbc", 0, (int[]){6, 5, 3, 0}, 4);
    /* add_bos_token absent: a llama vocab adds BOS */
    expect_ids(t, "a", -1, (int[]){1, 6}, 2);
    kvb_tokenizer_free(t);
    /* add_space_prefix false: "ab" is just ab */
    b = gguf_vocab("llama", g_pieces, G_N, g_scores, g_types, NULL, 0,
                   "tokenizer.ggml.add_space_prefix", 0, NULL);
    assert_int_equal(gguf_tok(b, &t, G_N, msg, sizeof msg), KVB_STATUS_OK);
    expect_ids(t, "ab", 0, (int[]){7}, 1);
    kvb_tokenizer_free(t);
    /* add_bos_token false */
    b = gguf_vocab("llama", g_pieces, G_N, g_scores, g_types, NULL, 0,
                   "tokenizer.ggml.add_bos_token", 0, NULL);
    assert_int_equal(gguf_tok(b, &t, G_N, msg, sizeof msg), KVB_STATUS_OK);
    expect_ids(t, "b", -1, (int[]){3, 5}, 2);
    kvb_tokenizer_free(t);
    /* no unk either (a GGUF always has one: 0 by default; so planted here): refused */
    b = gguf_vocab("llama", g_pieces, G_N, g_scores, g_types, NULL, 0, NULL, 0, NULL);
    assert_int_equal(gguf_tok(b, &t, G_N, msg, sizeof msg), KVB_STATUS_OK);
    t->unk = -1;
    int ids[8], n;
    expect_refused(kvb_tokenizer_encode(t, "\xc3\xbc", 2, 0, ids, 8, &n, msg, sizeof msg),
                   KVB_STATUS_INVALID_ARG, msg, "no byte token and the vocab has no unk");
    kvb_tokenizer_free(t);
}

static void test_spm_gguf_malformed(void **state)
{
    (void)state;
    kvb_tokenizer *t;
    char msg[512];
    int32_t bad_types[G_N];
    memcpy(bad_types, g_types, sizeof bad_types);
    bad_types[4] = 6;   /* "a" called a byte token */
    expect_refused(gguf_tok(gguf_vocab("llama", g_pieces, G_N, g_scores, g_types, NULL, 0, NULL,
                                       0, NULL), &t, G_N + 1, msg, sizeof msg),
                   KVB_STATUS_INVALID_ARG, msg, "8 tokens, the model's vocab_size is 9");
    expect_refused(gguf_tok(gguf_vocab("llama", g_pieces, G_N, g_scores, bad_types, NULL, 0, NULL,
                                       0, NULL), &t, G_N, msg, sizeof msg),
                   KVB_STATUS_FORMAT, msg, "token 4 'a' has type byte");
    bad_types[4] = 9;
    expect_refused(gguf_tok(gguf_vocab("llama", g_pieces, G_N, g_scores, bad_types, NULL, 0, NULL,
                                       0, NULL), &t, G_N, msg, sizeof msg),
                   KVB_STATUS_FORMAT, msg, "tokenizer.ggml.token_type[4] = 9");
    expect_refused(
        gguf_tok(gguf_vocab("llama", g_pieces, G_N, NULL, g_types, NULL, 0, NULL, 0, NULL), &t, G_N,
                 msg, sizeof msg),
        KVB_STATUS_FORMAT, msg, "tokenizer.ggml.scores is missing");
    expect_refused(
        gguf_tok(gguf_vocab("bert", g_pieces, G_N, g_scores, g_types, NULL, 0, NULL, 0, NULL), &t,
                 G_N, msg, sizeof msg),
        KVB_STATUS_UNSUPPORTED, msg, "tokenizer.ggml.model = 'bert'");
    expect_refused(gguf_tok(gguf_vocab("llama", g_pieces, G_N, g_scores, g_types, NULL, 0,
                                       "tokenizer.ggml.bos_token_id", 8, NULL), &t, G_N, msg,
                            sizeof msg),
                   KVB_STATUS_FORMAT, msg, "tokenizer.ggml.bos_token_id = 8: allowed are 0..7");
    /* scores count != tokens count: the reader checks each array's bytes, so the
     * count is planted in the parsed table */
    bytes b = gguf_vocab("llama", g_pieces, G_N, g_scores, NULL, NULL, 0, NULL, 0, NULL);
    kvb_gguf g;
    assert_int_equal(kvb_gguf_parse(&g, b.p, b.n, msg, sizeof msg), KVB_STATUS_OK);
    kvb_gguf_kv *kv = (kvb_gguf_kv *)kvb_gguf_find_kv(&g, "tokenizer.ggml.scores");
    kv->arr_n--;
    expect_refused(kvb_tokenizer_from_gguf(&t, &g, G_N, msg, sizeof msg), KVB_STATUS_FORMAT, msg,
                   "tokenizer.ggml.scores holds 7 values, tokenizer.ggml.tokens 8 tokens");
    kvb_gguf_close(&g);
    free(b.p);
}

/* ---- byte-level BPE ---------------------------------------------------------
 * ids 0..255: byte b's mapped character (so an unmerged byte's id is the byte);
 * 256 + rank: each merge's result, in rank order; then "xyz" (no merge makes
 * it), <|begin_of_text|>, <|end_of_text|>. */
static const char *const bpe_merges[][2] = {
    {"b", "c"}, {"a", "b"}, {"a", "a"}, {" ", "t"}, {"h", "e"}, {" t", "he"},
    {"1", "2"}, {"12", "3"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"},
};
enum { NM = 11, BPE_XYZ = 256 + NM, BPE_BOS, BPE_EOS, BPE_N };

/* raw bytes -> their mapped characters */
static void map_bytes(const char *raw, char *out)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)raw; *p; p++)
        o += (size_t)kvb_utf8_put(kvb_bpe_byte_cp(*p), out + o);
    out[o] = 0;
}

/* a JSON string of s (mapped pieces hold no control characters) */
static void add_jstr(bytes *b, const char *s)
{
    add(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') add(b, "\\", 1);
        add(b, s, 1);
    }
    add(b, "\"", 1);
}

enum jbad {
    J_GOOD, J_PAIRS, J_IGNORE, J_MERGE_UNKNOWN, J_MERGE_FORM, J_DUP_ID, J_GAP, J_NO_BYTE,
    J_UNIGRAM
};

/* the BPE vocab as tokenizer.json text (NUL-terminated), with one change */
static char *bpe_json(enum jbad bad)
{
    bytes b = {0};
    char piece[128], num[32];
    const char *type = bad == J_UNIGRAM ? "Unigram" : "BPE";
    snprintf(piece, sizeof piece, "{\"model\": {\"type\": \"%s\", \"ignore_merges\": %s, ", type,
             bad == J_IGNORE ? "true" : "false");
    add(&b, piece, strlen(piece));
    add(&b, "\"vocab\": {", 10);
    for (int id = 0; id < BPE_BOS; id++) {
        if (id == 100 && bad == J_GAP) continue;
        char raw[16] = {(char)id, 0};
        if (id >= 256 && id < 256 + NM)
            snprintf(raw, sizeof raw, "%s%s", bpe_merges[id - 256][0], bpe_merges[id - 256][1]);
        if (id == BPE_XYZ) snprintf(raw, sizeof raw, "xyz");
        if (id == 'q' && bad == J_NO_BYTE) snprintf(raw, sizeof raw, "qq");
        if (id == 0) piece[0] = 0, kvb_utf8_put(kvb_bpe_byte_cp(0), piece), piece[2] = 0;
        else map_bytes(raw, piece);
        add(&b, id ? ", " : "", id ? 2 : 0);
        add_jstr(&b, piece);
        snprintf(num, sizeof num, ": %d", bad == J_DUP_ID && id == BPE_XYZ ? 5 : id);
        add(&b, num, strlen(num));
    }
    add(&b, "}, \"merges\": [", 14);
    for (int i = 0; i < NM + (bad == J_MERGE_UNKNOWN || bad == J_MERGE_FORM); i++) {
        char a[16], c[16], both[40];
        map_bytes(i < NM ? bpe_merges[i][0] : "q", a);
        map_bytes(i < NM ? bpe_merges[i][1] : "zz", c);
        add(&b, i ? ", " : "", i ? 2 : 0);
        if (bad == J_PAIRS) {
            add(&b, "[", 1);
            add_jstr(&b, a);
            add(&b, ", ", 2);
            add_jstr(&b, c);
            add(&b, "]", 1);
        } else {
            snprintf(both, sizeof both, bad == J_MERGE_FORM && i == NM ? "%s%s" : "%s %s", a, c);
            add_jstr(&b, both);
        }
    }
    static const char tail[] =
        "]},\n\"added_tokens\": [{\"id\": 268, \"content\": \"<|begin_of_text|>\", \"special\": "
        "true}, {\"id\": 269, \"content\": \"<|end_of_text|>\", \"special\": true}],\n"
        "\"post_processor\": {\"type\": \"Sequence\", \"processors\": [{\"type\": \"ByteLevel\"}, "
        "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": "
        "\"<|begin_of_text|>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": "
        "0}}]}]}}\n";
    add(&b, tail, sizeof tail);
    return (char *)b.p;
}

static kvb_tokenizer *bpe_open(void **state, enum jbad bad, const char *name)
{
    char path[1024], msg[512];
    kvbt_tmp_path(state, name, path, sizeof path);
    char *text = bpe_json(bad);
    kvbt_write_file(path, text, strlen(text));
    free(text);
    kvb_tokenizer *t;
    if (kvb_tokenizer_open(&t, path, BPE_N, msg, sizeof msg) != KVB_STATUS_OK)
        fail_msg("open %s: %s", path, msg);
    return t;
}

/* the encodings both sources must give (ignore: ignore_merges is on) */
static void check_bpe(const kvb_tokenizer *t, int ignore)
{
    assert_string_equal(kvb_tokenizer_kind_name(t), "bpe");
    assert_int_equal(kvb_tokenizer_vocab_size(t), BPE_N);
    /* "abc": (b,c) rank 0 before (a,b) rank 1: a bc; rank order reversed: ab c */
    expect_ids(t, "abc", 0, (int[]){'a', 256}, 2);
    /* "aaa": (a,a) at 0 and at 1 tie: the leftmost: aa a (the rightmost: a aa) */
    expect_ids(t, "aaa", 0, (int[]){258, 'a'}, 2);
    /* " the" is one chunk: Ġt (3), he (4), then Ġthe (5) */
    expect_ids(t, " the", 0, (int[]){261}, 1);
    /* "hello": he (4), ll (8), hell (9), hello (10); " world" has no merges */
    expect_ids(t, "hello world", 0, (int[]){266, ' ', 'w', 'o', 'r', 'l', 'd'}, 7);
    /* digits in threes: "121" "2" -> 12 1, 2; as one chunk it would be 12 12 */
    expect_ids(t, "1212", 0, (int[]){262, '1', '2'}, 3);
    /* "xyz" is a piece no merge makes: whole only with ignore_merges */
    if (ignore) expect_ids(t, "xyz", 0, (int[]){BPE_XYZ}, 1);
    else expect_ids(t, "xyz", 0, (int[]){'x', 'y', 'z'}, 3);
    /* the template puts BOS first; a special written in the text is text */
    expect_ids(t, "abc", -1, (int[]){BPE_BOS, 'a', 256}, 3);
    expect_ids(t, "<|begin_of_text|>", 0,
               (int[]){'<', '|', 'b', 'e', 'g', 'i', 'n', '_', 'o', 'f', '_', 't', 'e', 'x', 't',
                       '|', '>'}, 17);
    assert_int_equal(kvb_tokenizer_bos(t), BPE_BOS);
    assert_int_equal(kvb_tokenizer_eos(t), BPE_EOS);
    size_t len;
    const char *p = kvb_tokenizer_decode(t, 261, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(p, " the", 4);
    kvb_tokenizer_decode(t, BPE_BOS, &len);
    assert_int_equal(len, 0);
}

static void test_bpe_json(void **state)
{
    kvb_tokenizer *t = bpe_open(state, J_GOOD, "tokenizer.json");
    check_bpe(t, 0);
    kvb_tokenizer_free(t);
    t = bpe_open(state, J_PAIRS, "pairs.json");
    check_bpe(t, 0);
    kvb_tokenizer_free(t);
    t = bpe_open(state, J_IGNORE, "ignore.json");
    check_bpe(t, 1);
    kvb_tokenizer_free(t);
    /* a model directory, whose tokenizer_config.json names BOS and turns it off */
    char dir[1024], path[1200], msg[512];
    kvbt_tmp_path(state, "hf", dir, sizeof dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    char *text = bpe_json(J_GOOD);
    kvbt_write_file(path, text, strlen(text));
    free(text);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    const char *cfg =
        "{\"bos_token\": {\"content\": \"<|end_of_text|>\"}, \"add_bos_token\": false}";
    kvbt_write_file(path, cfg, strlen(cfg));
    assert_int_equal(kvb_tokenizer_open(&t, dir, 0, msg, sizeof msg), KVB_STATUS_OK);
    assert_int_equal(kvb_tokenizer_bos(t), BPE_EOS);
    assert_int_equal(kvb_tokenizer_add_bos(t), 0);
    expect_ids(t, "abc", 1, (int[]){BPE_EOS, 'a', 256}, 3);
    kvb_tokenizer_free(t);
}

static void test_bpe_json_malformed(void **state)
{
    static const struct { enum jbad bad; int vocab; kvb_status st; const char *needle; } cases[] = {
        {J_GOOD, BPE_N + 1, KVB_STATUS_INVALID_ARG, "270 tokens, the model's vocab_size is 271"},
        {J_MERGE_UNKNOWN, BPE_N, KVB_STATUS_FORMAT, "model.merges[11] 'q zz': its right side"},
        {J_MERGE_FORM, BPE_N, KVB_STATUS_FORMAT, "model.merges[11] 'qzz': a string \"a b\""},
        {J_DUP_ID, BPE_N, KVB_STATUS_FORMAT, "model.vocab: id 5 is given to"},
        {J_GAP, BPE_N, KVB_STATUS_FORMAT, "token ids reach 269, but model.vocab and added_tokens"},
        {J_NO_BYTE, BPE_N, KVB_STATUS_FORMAT, "no token for byte 0x71"},
        {J_UNIGRAM, BPE_N, KVB_STATUS_UNSUPPORTED, "model.type = 'Unigram'"},
    };
    char path[1024], msg[512];
    for (size_t i = 0; i < KVBT_COUNT(cases); i++) {
        kvbt_tmp_path(state, "bad.json", path, sizeof path);
        char *text = bpe_json(cases[i].bad);
        kvbt_write_file(path, text, strlen(text));
        free(text);
        kvb_tokenizer *t = (kvb_tokenizer *)1;
        msg[0] = 0;
        expect_refused(kvb_tokenizer_open(&t, path, cases[i].vocab, msg, sizeof msg), cases[i].st,
                       msg, cases[i].needle);
        assert_null(t);
    }
    /* not JSON, missing, a directory without tokenizer.json */
    kvb_tokenizer *t;
    kvbt_write_file(path, "{\"model\": [", 11);
    assert_int_equal(kvb_tokenizer_open(&t, path, 0, msg, sizeof msg), KVB_STATUS_FORMAT);
    kvbt_tmp_path(state, "absent.json", path, sizeof path);
    assert_int_equal(kvb_tokenizer_open(&t, path, 0, msg, sizeof msg), KVB_STATUS_IO);
    kvbt_tmp_path(state, "empty-dir", path, sizeof path);
    assert_int_equal(mkdir(path, 0700), 0);
    expect_refused(kvb_tokenizer_open(&t, path, 0, msg, sizeof msg), KVB_STATUS_IO, msg,
                   "without tokenizer.json");
}

static void test_bpe_gguf(void **state)
{
    (void)state;
    const char *pieces[BPE_N];
    char store[BPE_N][48];
    const char *merges[NM];
    char mstore[NM][48];
    for (int id = 0; id < BPE_N; id++) {
        char raw[16] = {(char)id, 0};
        if (id >= 256 && id < 256 + NM)
            snprintf(raw, sizeof raw, "%s%s", bpe_merges[id - 256][0], bpe_merges[id - 256][1]);
        if (id == 0) store[0][kvb_utf8_put(kvb_bpe_byte_cp(0), store[0])] = 0;
        else if (id == BPE_XYZ) snprintf(store[id], 48, "xyz");
        else if (id == BPE_BOS) snprintf(store[id], 48, "<|begin_of_text|>");
        else if (id == BPE_EOS) snprintf(store[id], 48, "<|end_of_text|>");
        else map_bytes(raw, store[id]);
        pieces[id] = store[id];
    }
    for (int i = 0; i < NM; i++) {
        char a[16], c[16];
        map_bytes(bpe_merges[i][0], a);
        map_bytes(bpe_merges[i][1], c);
        snprintf(mstore[i], 48, "%s %s", a, c);
        merges[i] = mstore[i];
    }
    int32_t types[BPE_N];
    for (int id = 0; id < BPE_N; id++) types[id] = id >= BPE_BOS ? 3 : 1;
    /* GGUF has no template: BOS by key, added by add_bos_token; "llama-bpe" sets
     * ignore_merges, as llama.cpp does */
    for (int pre = 0; pre < 2; pre++) {
        kvb_tokenizer *t;
        char msg[512];
        bytes b = gguf_vocab("gpt2", pieces, BPE_N, NULL, types, merges, NM,
                             "tokenizer.ggml.add_bos_token", 1, pre ? "llama-bpe" : NULL);
        /* bos and eos by key: a second GGUF would need a second extra key, so set here */
        kvb_gguf g;
        assert_int_equal(kvb_gguf_parse(&g, b.p, b.n, msg, sizeof msg), KVB_STATUS_OK);
        if (kvb_tokenizer_from_gguf(&t, &g, BPE_N, msg, sizeof msg) != KVB_STATUS_OK)
            fail_msg("gpt2 GGUF: %s", msg);
        kvb_gguf_close(&g);
        free(b.p);
        assert_int_equal(kvb_tokenizer_bos(t), -1);
        t->bos = BPE_BOS;
        t->eos = BPE_EOS;
        check_bpe(t, pre);
        kvb_tokenizer_free(t);
    }
    /* a merge naming a piece the vocab lacks */
    merges[3] = "\xc4\xa0 zz";
    kvb_tokenizer *t;
    char msg[512];
    expect_refused(
        gguf_tok(gguf_vocab("gpt2", pieces, BPE_N, NULL, types, merges, NM, NULL, 0, NULL), &t,
                 BPE_N, msg, sizeof msg),
        KVB_STATUS_FORMAT, msg, "tokenizer.ggml.merges[3] '\xc4\xa0 zz': its right side");
    merges[3] = "\xc4\xa0t";
    expect_refused(gguf_tok(gguf_vocab("gpt2", pieces, BPE_N, NULL, types, merges, NM, NULL, 0,
                                       NULL), &t, BPE_N, msg, sizeof msg),
                   KVB_STATUS_FORMAT, msg, "no space between its two tokens");
    expect_refused(gguf_tok(gguf_vocab("gpt2", pieces, BPE_N, NULL, types, NULL, 0, NULL, 0,
                                       NULL), &t, BPE_N, msg, sizeof msg),
                   KVB_STATUS_FORMAT, msg, "tokenizer.ggml.merges is missing");
}

int main(int argc, char **argv)
{
    static const kvbt_test all[] = {
        {"spm_merges", test_spm_merges, 0},
        {"spm_long", test_spm_long, 0},
        {"spm_bytes_only", test_spm_bytes_only, 0},
        {"spm_bin_malformed", test_spm_bin_malformed, 0},
        {"spm_gguf", test_spm_gguf, 0},
        {"spm_gguf_malformed", test_spm_gguf_malformed, 0},
        {"bpe_json", test_bpe_json, 0},
        {"bpe_json_malformed", test_bpe_json_malformed, 0},
        {"bpe_gguf", test_bpe_gguf, 0},
    };
    return kvbt_main(argc, argv, "tokenizer", all, KVBT_COUNT(all));
}
