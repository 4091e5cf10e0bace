/* test_tok_bpe.c: byte-level BPE's parts (model/tok_internal.h) (cmocka):
 * GPT-2's byte mapping against its published values, the Llama 3
 * pre-tokenizer's chunks of hand-split texts (contractions, digits in threes,
 * the space before a word, trailing whitespace, newlines, non-ASCII letters,
 * marks and invalid bytes), and decode(encode(x)) == x on seeded random ASCII,
 * UTF-8 and arbitrary bytes through a small merged vocab; long merges; a
 * SentencePiece BPE read from a Hugging Face tokenizer.json (byte_fallback).
 * Usage: test_tok_bpe [REGEX] (or KVB_TEST_FILTER=REGEX). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/tok_internal.h"
#include "testlib.h"

static void test_byte_map(void **state)
{
    (void)state;
    /* bytes_to_unicode: printable ones are themselves, the 68 others 256.. in order */
    static const struct { int b; uint32_t cp; } known[] = {
        {'A', 'A'}, {'!', '!'}, {'~', '~'}, {0xa1, 0xa1}, {0xff, 0xff}, {0x00, 0x100},
        {'\n', 0x10a}, {' ', 0x120}, {0x7f, 0x121}, {0xa0, 0x142}, {0xad, 0x143},
    };
    for (size_t i = 0; i < KVBT_COUNT(known); i++)
        assert_int_equal(kvb_bpe_byte_cp(known[i].b), known[i].cp);
    int seen[324] = {0};
    for (int b = 0; b < 256; b++) {
        uint32_t cp = kvb_bpe_byte_cp(b);
        assert_true(cp < 324);
        assert_int_equal(seen[cp]++, 0);
        assert_int_equal(kvb_bpe_cp_byte(cp), b);
    }
    assert_int_equal(kvb_bpe_cp_byte(0x144), -1);
    assert_int_equal(kvb_bpe_cp_byte(0x20), -1);
    /* strict UTF-8: overlong, surrogate, truncated and stray bytes are one byte each */
    static const char *const invalid[] = {"\xc0\x80", "\xed\xa0\x80", "\xe2\x82", "\x80",
                                          "\xf4\x90\x80\x80", "\xff"};
    for (size_t i = 0; i < KVBT_COUNT(invalid); i++) {
        int len;
        assert_int_equal(kvb_utf8_get((const unsigned char *)invalid[i], strlen(invalid[i]),
                                      &len), UINT32_MAX);
        assert_int_equal(len, 1);
    }
    int len;
    char out[4];
    assert_int_equal(kvb_utf8_get((const unsigned char *)"\xf0\x9f\x98\x80", 4, &len), 0x1f600);
    assert_int_equal(len, 4);
    assert_int_equal(kvb_utf8_put(0x1f600, out), 4);
    assert_memory_equal(out, "\xf0\x9f\x98\x80", 4);
}

/* the chunks of text, joined by '|' */
static void split(const char *text, char *out, size_t cap)
{
    uint32_t cp[128];
    size_t off[129];
    int n = 0, end[128];
    size_t len = strlen(text);
    for (size_t i = 0; i < len; n++) {
        int l;
        off[n] = i;
        cp[n] = kvb_utf8_get((const unsigned char *)text + i, len - i, &l);
        i += (size_t)l;
    }
    off[n] = len;
    int nch = kvb_bpe_split(cp, n, end);
    size_t o = 0;
    for (int k = 0, a = 0; k < nch; a = end[k++]) {
        assert_true(end[k] > a && end[k] <= n);
        size_t bytes = off[end[k]] - off[a];
        assert_true(o + bytes + 2 < cap);
        if (k) out[o++] = '|';
        memcpy(out + o, text + off[a], bytes);
        o += bytes;
    }
    out[o] = 0;
}

static void test_pretokenize(void **state)
{
    (void)state;
    static const struct { const char *text, *chunks; } cases[] = {
        {"Hello world", "Hello| world"},
        /* contractions, any case; a quote not starting one leads its word */
        {"I'm here", "I|'m| here"},
        {"THEY'RE we'll it's", "THEY|'RE| we|'ll| it|'s"},
        {"don't 've", "don|'t| '|ve"},
        {"'hello", "'hello"},
        /* numbers in groups of 3, never led by a space or a letter */
        {"12345", "123|45"},
        {"1234567", "123|456|7"},
        {" 42", " |42"},
        {"abc123", "abc|123"},
        {"3.14", "3|.|14"},
        {"$100", "$|100"},
        /* whitespace: the last space of a run goes with the word after it */
        {"a  b", "a| | b"},
        {"a   b", "a|  | b"},
        {"a\tb", "a|\tb"},
        {"x  ", "x|  "},
        {"x \n\ny", "x| \n\n|y"},
        {"x\n  y", "x|\n| | y"},
        {"\r\n", "\r\n"},
        /* punctuation, with one space before and newlines after */
        {"hi!!\n\nyo", "hi|!!\n\n|yo"},
        {"a !? b", "a| !?| b"},
        {"a  !", "a| | !"},
        /* beyond ASCII: letters, NBSP as a space, CJK, a combining mark and an
         * invalid byte (neither a letter: each leads the word after it) */
        {"na\xc3\xafve caf\xc3\xa9", "na\xc3\xafve| caf\xc3\xa9"},
        {"\xe6\x97\xa5\xe6\x9c\xac 123", "\xe6\x97\xa5\xe6\x9c\xac| |123"},
        {"\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82!", "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2"
                                                            "\xd0\xb5\xd1\x82|!"},
        {"a\xc2\xa0" "b", "a|\xc2\xa0" "b"},
        {"x\xcc\x81y", "x|\xcc\x81y"},
        {"x\xffy", "x|\xffy"},
        {"\xc2\xb2\xc2\xb3", "\xc2\xb2\xc2\xb3"},
    };
    char got[512];
    for (size_t i = 0; i < KVBT_COUNT(cases); i++) {
        split(cases[i].text, got, sizeof got);
        if (strcmp(got, cases[i].chunks) != 0)
            fail_msg("case %zu: '%s' split as '%s', wanted '%s'", i, cases[i].text, got,
                     cases[i].chunks);
    }
}

/* raw's bytes as their mapped characters into out; the length */
static int map_raw(const char *raw, char *out)
{
    int k = 0;
    for (const unsigned char *c = (const unsigned char *)raw; *c; c++)
        k += kvb_utf8_put(kvb_bpe_byte_cp(*c), out + k);
    return k;
}

/* 256 byte pieces, a few merges (one of a 2-byte character's bytes), BOS */
static kvb_tokenizer *small_bpe(void)
{
    static const char *const merges[][2] = {
        {" ", "t"}, {"h", "e"}, {" t", "he"}, {"\xc3", "\xa9"}, {"e", "r"}, {"\n", "\n"},
    };
    enum { NM = 6, BOS = 256 + NM, N };
    kvb_tokenizer *t = kvb_tok_new(KVB_TOK_KIND_BPE, N, 0);
    assert_non_null(t);
    char a[16], b[16], both[32];
    for (int i = 0; i < 256 + NM; i++) {
        int k;
        if (i < 256) {
            k = kvb_utf8_put(kvb_bpe_byte_cp(i), both);
        } else {
            k = map_raw(merges[i - 256][0], both);
            k += map_raw(merges[i - 256][1], both + k);
        }
        assert_int_equal(kvb_tok_set_piece(t, i, both, (size_t)k), 0);
        t->type[i] = KVB_TOK_TYPE_NORMAL;
    }
    assert_int_equal(kvb_tok_set_piece(t, BOS, "<|begin_of_text|>", 17), 0);
    t->type[BOS] = KVB_TOK_TYPE_CONTROL;
    t->bos = BOS;
    char msg[512];
    assert_int_equal(kvb_tok_merges_init(t, NM, msg, sizeof msg), KVB_STATUS_OK);
    for (int i = 0; i < NM; i++) {
        int la = map_raw(merges[i][0], a), lb = map_raw(merges[i][1], b);
        if (kvb_tok_add_merge(t, "merges", (uint32_t)i, a, (size_t)la, b, (size_t)lb, msg,
                              sizeof msg) != KVB_STATUS_OK)
            fail_msg("%s", msg);
    }
    if (kvb_tok_finish(t, N, "small", msg, sizeof msg) != KVB_STATUS_OK) fail_msg("%s", msg);
    return t;
}

static void test_round_trip(void **state)
{
    (void)state;
    kvb_tokenizer *t = small_bpe();
    /* " the" and "é" merge: the ids are not just the bytes */
    int ids[128], n;
    char msg[256];
    assert_int_equal(kvb_tokenizer_encode(t, " the\xc3\xa9", 6, 0, ids, 128, &n, msg, sizeof msg),
                     KVB_STATUS_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 258);
    assert_int_equal(ids[1], 259);
    static const char *const pool[] = {"\xc3\xa9", "\xe6\x97\xa5", "\xf0\x9f\x98\x80", "\xc2\xa0",
                                       "\xcc\x81", "'s", "'LL", "\r\n", "the", " ", "  "};
    uint64_t seed = 0x70c3b9e5ull;
    for (int c = 0; c < 600; c++) {
        char text[200], back[400];
        size_t len = 0, want = (size_t)((kvbt_urand(&seed) + 1) * 30);
        int kind = c % 3;   /* ASCII, UTF-8 and ASCII, any bytes */
        while (len < want) {
            float r = (kvbt_urand(&seed) + 1) / 2;
            if (kind == 2) {
                text[len++] = (char)(int)(r * 256);
            } else if (kind == 1 && r < 0.3f) {
                const char *p = pool[(int)(r / 0.3f * KVBT_COUNT(pool)) % KVBT_COUNT(pool)];
                memcpy(text + len, p, strlen(p));
                len += strlen(p);
            } else {
                text[len++] = (char)(r < 0.05f ? '\n' : 32 + (int)(r * 95) % 95);
            }
        }
        for (int bos = 0; bos < 2; bos++) {
            assert_int_equal(kvb_tokenizer_encode(t, text, len, bos, ids, 128, &n, msg,
                                                  sizeof msg), KVB_STATUS_OK);
            assert_true(n <= (int)len + 2);
            if (bos) assert_int_equal(ids[0], kvb_tokenizer_bos(t));
            size_t o = 0;
            for (int i = 0; i < n; i++) {
                size_t l;
                const char *p = kvb_tokenizer_decode(t, ids[i], &l);
                memcpy(back + o, p, l);
                o += l;
            }
            if (o != len || memcmp(back, text, len) != 0)
                fail_msg("case %d (kind %d, %zu bytes): decode(encode(x)) differs", c, kind, len);
        }
    }
    kvb_tokenizer_free(t);
}

/* a merge of two long pieces (Llama 3 has runs of 100+ characters, 2 bytes
 * each when mapped) is found whatever its length */
static void test_long_merge(void **state)
{
    (void)state;
    enum { L = 400 };
    kvb_tokenizer *t = kvb_tok_new(KVB_TOK_KIND_BPE, 259, 0);
    assert_non_null(t);
    char *p = malloc(2 * L);
    for (int i = 0; i < 256; i++) {
        int k = kvb_utf8_put(kvb_bpe_byte_cp(i), p);
        assert_int_equal(kvb_tok_set_piece(t, i, p, (size_t)k), 0);
    }
    memset(p, '=', 2 * L);
    assert_int_equal(kvb_tok_set_piece(t, 256, p, L), 0);
    assert_int_equal(kvb_tok_set_piece(t, 257, p, 2 * L), 0);
    assert_int_equal(kvb_tok_set_piece(t, 258, "==", 2), 0);
    char msg[512];
    assert_int_equal(kvb_tok_merges_init(t, 2, msg, sizeof msg), KVB_STATUS_OK);
    assert_int_equal(kvb_tok_add_merge(t, "m", 0, "=", 1, "=", 1, msg, sizeof msg),
                     KVB_STATUS_OK);
    if (kvb_tok_add_merge(t, "m", 1, p, L, p, L, msg, sizeof msg) != KVB_STATUS_OK)
        fail_msg("a merge of two %d-byte pieces: %s", L, msg);
    assert_int_equal(kvb_tok_finish(t, 0, "long", msg, sizeof msg), KVB_STATUS_OK);
    /* 4 '=' merge pairwise: == == (the long merge needs 400-byte sides) */
    int ids[8], n;
    assert_int_equal(kvb_tokenizer_encode(t, "====", 4, 0, ids, 8, &n, msg, sizeof msg),
                     KVB_STATUS_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 258);
    free(p);
    kvb_tokenizer_free(t);
}

/* A SentencePiece BPE as Hugging Face writes it (Llama 2's tokenizer.json:
 * byte_fallback, "▁" pieces, byte tokens, merges in score order, a template
 * adding <s>). ids: 0 <unk>, 1 <s>, 2 </s>, 3 <0xC3>, 4 <0xBC>, 5 ▁, 6 a, 7 b,
 * 8 c, 9 ab, 10 bc, 11 ▁a, 12 ▁▁; merges b c (0), ▁ a (1), a b (2), ▁ ▁ (3). */
static void test_spm_json(void **state)
{
    static const char json[] =
        "{\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"unk_token\": \"<unk>\",\n"
        " \"vocab\": {\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2, \"<0xC3>\": 3, \"<0xBC>\": 4,\n"
        "  \"\u2581\": 5, \"a\": 6, \"b\": 7, \"c\": 8, \"ab\": 9, \"bc\": 10, \"\u2581a\": 11,\n"
        "  \"\u2581\u2581\": 12},\n"
        " \"merges\": [\"b c\", \"\u2581 a\", \"a b\", \"\u2581 \u2581\"]},\n"
        " \"added_tokens\": [{\"id\": 0, \"content\": \"<unk>\", \"special\": true},\n"
        "  {\"id\": 1, \"content\": \"<s>\", \"special\": true},\n"
        "  {\"id\": 2, \"content\": \"</s>\", \"special\": true}],\n"
        " \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\":\n"
        "  {\"id\": \"<s>\", \"type_id\": 0}},\n"
        "  {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}]}}\n";
    char path[1024], msg[512];
    kvbt_tmp_path(state, "llama2-tokenizer.json", path, sizeof path);
    kvbt_write_file(path, json, strlen(json));
    kvb_tokenizer *t;
    if (kvb_tokenizer_open(&t, path, 13, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("%s", msg);
    assert_int_equal(kvb_tokenizer_kind(t), KVB_TOK_KIND_SPM);
    assert_int_equal(kvb_tokenizer_unk(t), 0);
    int ids[16], n;
    /* "abc" -> "▁abc": bc (rank 0) first, then ▁a (1): <s> ▁a bc; the merges
     * taken in reverse would give ab first: <s> ▁ ab c (1 5 9 8) */
    assert_int_equal(kvb_tokenizer_encode(t, "abc", 3, -1, ids, 16, &n, msg, sizeof msg),
                     KVB_STATUS_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 11);
    assert_int_equal(ids[2], 10);
    /* " ü é": ▁▁ (3), then ü as its byte tokens, ▁, and é (C3 A9: no <0xA9>) as unk */
    static const int want[] = {12, 3, 4, 5, 0};
    assert_int_equal(kvb_tokenizer_encode(t, " \xc3\xbc \xc3\xa9", 6, 0, ids, 16, &n, msg,
                                          sizeof msg), KVB_STATUS_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(ids, want, sizeof want);
    size_t len;
    assert_memory_equal(kvb_tokenizer_decode(t, 12, &len), "  ", 2);
    assert_int_equal(len, 2);
    kvb_tokenizer_free(t);
}

int main(int argc, char **argv)
{
    static const kvbt_test all[] = {
        {"byte_map", test_byte_map, 0},
        {"pretokenize", test_pretokenize, 0},
        {"round_trip", test_round_trip, 0},
        {"long_merge", test_long_merge, 0},
        {"spm_json", test_spm_json, 0},
    };
    return kvbt_main(argc, argv, "tok_bpe", all, KVBT_COUNT(all));
}
