/* test_gguf.c: the GGUF reader and writer (model/gguf.h) (cmocka).
 *
 * A small GGUF file built here byte by byte (f32, f16, bf16 and q8_0 tensors,
 * string and array metadata) parses, with each tensor's bytes where they were
 * written; every prefix of it is refused; each planted malformation is refused
 * with a message naming its field; a planted wrong offset is caught by the
 * byte check; a 70B model's shape is read; a random model exported as GGUF
 * reads back to the same config and weights.
 * Usage: test_gguf [REGEX] (or KVB_TEST_FILTER=REGEX). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/gguf.h"
#include "testlib.h"

/* ---- a file built byte by byte ------------------------------------------ */

typedef struct buf {
    uint8_t *p;   /* [n] */
    size_t   n, cap;
} buf;

static void put(buf *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void str(buf *b, const char *s) { u64(b, strlen(s)); put(b, s, strlen(s)); }
static void kv_u32(buf *b, const char *k, uint32_t v) { str(b, k); u32(b, 4); u32(b, v); }

enum bad {
    GOOD, VERSION1, STR_PAST_END, ARRAY_ABSURD, NDIMS5, PAST_END, UNKNOWN_TYPE, ALIGN_NOT_POW2,
    DUP_TENSOR, ARCH_GPT2, MISSING_KEY, NESTED_ARRAY, ZERO_DIM, SWAP_OFFSETS, N_BAD
};

/* tensors: name, type, dims[0], dims[1] (n_dims 2 when dims[1] > 1), bytes */
static const struct { const char *name; uint32_t type; uint64_t d0, d1, bytes; } tens[] = {
    {"token_embd.weight", KVB_GGML_F32, 16, 8, 512},
    {"blk.0.attn_q.weight", KVB_GGML_Q8_0, 32, 2, 68},
    {"output_norm.weight", KVB_GGML_F16, 16, 1, 32},
    {"blk.0.attn_norm.weight", KVB_GGML_BF16, 16, 1, 32},
};
enum { NT = 4 };

/* byte i of tensor t's data */
static uint8_t pattern(int t, uint64_t i) { return (uint8_t)(t * 61 + i * 7 + 1); }

static buf build(enum bad bad)
{
    buf b = {0};
    put(&b, "GGUF", 4);
    u32(&b, bad == VERSION1 ? 1 : 3);
    u64(&b, NT);
    u64(&b, 12);
    str(&b, "general.architecture");
    u32(&b, KVB_GGUF_STRING);
    str(&b, bad == ARCH_GPT2 ? "gpt2" : "llama");
    kv_u32(&b, "general.alignment", bad == ALIGN_NOT_POW2 ? 48 : 32);
    kv_u32(&b, bad == MISSING_KEY ? "llama.context_lengthX" : "llama.context_length", 64);
    kv_u32(&b, "llama.embedding_length", 16);
    kv_u32(&b, "llama.feed_forward_length", 32);
    kv_u32(&b, "llama.block_count", 1);
    kv_u32(&b, "llama.attention.head_count", 4);
    kv_u32(&b, "llama.attention.head_count_kv", 2);
    float theta = 500000.0f, eps = 1e-6f;
    str(&b, "llama.rope.freq_base"); u32(&b, KVB_GGUF_F32V); put(&b, &theta, 4);
    str(&b, "llama.attention.layer_norm_rms_epsilon"); u32(&b, KVB_GGUF_F32V); put(&b, &eps, 4);
    str(&b, "tokenizer.ggml.tokens");
    u32(&b, KVB_GGUF_ARRAY);
    u32(&b, bad == NESTED_ARRAY ? KVB_GGUF_ARRAY : KVB_GGUF_STRING);
    u64(&b, 3);
    str(&b, "a"); str(&b, "b");
    if (bad == STR_PAST_END) u64(&b, 1ull << 40); else str(&b, "c");
    str(&b, "tokenizer.ggml.scores");
    u32(&b, KVB_GGUF_ARRAY);
    u32(&b, KVB_GGUF_F32V);
    u64(&b, bad == ARRAY_ABSURD ? (1ull << 62) : 3);
    float sc[3] = {0, -1, -2};
    put(&b, sc, sizeof sc);
    uint64_t off[NT], o = 0;
    for (int t = 0; t < NT; t++) { off[t] = o; o += (tens[t].bytes + 31) / 32 * 32; }
    if (bad == SWAP_OFFSETS) { uint64_t x = off[2]; off[2] = off[3]; off[3] = x; }
    for (int t = 0; t < NT; t++) {
        str(&b, bad == DUP_TENSOR && t == 3 ? tens[0].name : tens[t].name);
        int nd = tens[t].d1 > 1 ? 2 : 1;
        u32(&b, bad == NDIMS5 && t == 1 ? 5 : (uint32_t)nd);
        u64(&b, bad == ZERO_DIM && t == 2 ? 0 : tens[t].d0);
        if (nd == 2) u64(&b, tens[t].d1);
        u32(&b, bad == UNKNOWN_TYPE && t == 2 ? 99 : tens[t].type);
        u64(&b, bad == PAST_END && t == 3 ? off[t] + 4096 : off[t]);
    }
    static const uint8_t zero[32];
    put(&b, zero, (32 - b.n % 32) % 32);
    for (int t = 0; t < NT; t++) {
        for (uint64_t i = 0; i < tens[t].bytes; i++) {
            uint8_t v = pattern(t, i);
            put(&b, &v, 1);
        }
        put(&b, zero, (32 - b.n % 32) % 32);
    }
    return b;
}

/* 1 when every tensor's bytes are the ones written for it */
static int bytes_match(const kvb_gguf *g)
{
    for (int t = 0; t < NT; t++) {
        const kvb_gguf_tensor *x = kvb_gguf_find_tensor(g, tens[t].name);
        if (!x || x->bytes != tens[t].bytes) return 0;
        for (uint64_t i = 0; i < x->bytes; i++)
            if (x->data[i] != pattern(t, i)) return 0;
    }
    return 1;
}

static void test_valid(void **state)
{
    (void)state;
    buf b = build(GOOD);
    kvb_gguf g;
    char msg[512] = "";
    assert_int_equal(kvb_gguf_parse(&g, b.p, b.n, msg, sizeof msg), KVB_STATUS_OK);
    assert_int_equal(g.version, 3);
    assert_int_equal(g.n_tensors, NT);
    assert_int_equal(g.alignment, 32);
    assert_true(bytes_match(&g));
    const kvb_gguf_tensor *q = kvb_gguf_find_tensor(&g, "blk.0.attn_q.weight");
    assert_int_equal(q->type, KVB_GGML_Q8_0);
    assert_int_equal(q->n_dims, 2);
    assert_string_equal(kvb_gguf_type_name(q->type), "q8_0");
    const kvb_gguf_kv *tk = kvb_gguf_find_kv(&g, "tokenizer.ggml.tokens");
    assert_non_null(tk);
    assert_int_equal(tk->arr_n, 3);
    assert_null(kvb_gguf_find_kv(&g, "no.such.key"));
    kvb_model_config c;
    kvb_gguf_llama_extra x;
    assert_int_equal(kvb_gguf_llama_config(&g, &c, &x, msg, sizeof msg), KVB_STATUS_OK);
    assert_int_equal(c.dim, 16);
    assert_int_equal(c.hidden_dim, 32);
    assert_int_equal(c.n_layers, 1);
    assert_int_equal(c.n_heads, 4);
    assert_int_equal(c.n_kv_heads, 2);
    assert_int_equal(c.head_dim, 4);
    assert_int_equal(c.vocab_size, 8);            /* token_embd.weight's rows */
    assert_int_equal(c.max_seq, 64);
    assert_true(c.rope_theta == 500000.0f);
    assert_int_equal(c.shared_classifier, 1);     /* no output.weight */
    assert_true(x.norm_eps == 1e-6f);
    assert_string_equal(x.rope_scaling, "none");
    kvb_gguf_close(&g);
    /* every prefix is refused, read from a buffer of exactly that length (ASan sees over-reads) */
    for (size_t n = 0; n < b.n; n++) {
        uint8_t *p = malloc(n ? n : 1);
        memcpy(p, b.p, n);
        msg[0] = 0;
        assert_int_not_equal(kvb_gguf_parse(&g, p, n, msg, sizeof msg), KVB_STATUS_OK);
        assert_true(msg[0] != 0);
        free(p);
    }
    free(b.p);
}

static void test_malformed(void **state)
{
    static const struct { enum bad bad; const char *field; } cases[] = {
        {VERSION1, "version = 1"},
        {STR_PAST_END, "tokenizer.ggml.tokens"},
        {ARRAY_ABSURD, "tokenizer.ggml.scores"},
        {NDIMS5, "n_dims = 5"},
        {PAST_END, "blk.0.attn_norm.weight"},
        {UNKNOWN_TYPE, "tensor type 99"},
        {ALIGN_NOT_POW2, "general.alignment = 48"},
        {DUP_TENSOR, "tensor name 'token_embd.weight' appears twice"},
        {NESTED_ARRAY, "nested arrays"},
        {ZERO_DIM, "dims[0] = 0"},
    };
    for (size_t i = 0; i < KVBT_COUNT(cases); i++) {
        char name[64], msg[512] = "";
        if (!kvbt_case(state, name, sizeof name, "malformed(bad=%d)", (int)cases[i].bad)) continue;
        buf b = build(cases[i].bad);
        kvb_gguf g;
        kvb_status st = kvb_gguf_parse(&g, b.p, b.n, msg, sizeof msg);
        if (st != KVB_STATUS_FORMAT || !strstr(msg, cases[i].field))
            fail_msg("%s: status %d, message '%s' does not name '%s'", name, (int)st, msg,
                     cases[i].field);
        free(b.p);
    }
    /* parsed, but not a llama model this tool reads */
    static const struct { enum bad bad; kvb_status st; const char *field; } cfg[] = {
        {ARCH_GPT2, KVB_STATUS_UNSUPPORTED, "general.architecture = 'gpt2'"},
        {MISSING_KEY, KVB_STATUS_FORMAT, "llama.context_length is missing"},
    };
    for (size_t i = 0; i < KVBT_COUNT(cfg); i++) {
        buf b = build(cfg[i].bad);
        kvb_gguf g;
        char msg[512] = "";
        kvb_model_config c;
        assert_int_equal(kvb_gguf_parse(&g, b.p, b.n, msg, sizeof msg), KVB_STATUS_OK);
        kvb_status st = kvb_gguf_llama_config(&g, &c, NULL, msg, sizeof msg);
        if (st != cfg[i].st || !strstr(msg, cfg[i].field))
            fail_msg("bad=%d: status %d, message '%s' does not name '%s'", (int)cfg[i].bad,
                     (int)st, msg, cfg[i].field);
        kvb_gguf_close(&g);
        free(b.p);
    }
}

/* a reader looking at the wrong offset: the byte check must see it */
static void test_wrong_offset(void **state)
{
    (void)state;
    buf b = build(SWAP_OFFSETS);
    kvb_gguf g;
    char msg[512];
    assert_int_equal(kvb_gguf_parse(&g, b.p, b.n, msg, sizeof msg), KVB_STATUS_OK);
    assert_false(bytes_match(&g));
    kvb_gguf_close(&g);
    free(b.p);
}

/* a 70B model's shape (metadata only) is read: the f32-weights limit is not the reader's */
static void test_large_shape(void **state)
{
    (void)state;
    buf b = {0};
    put(&b, "GGUF", 4);
    u32(&b, 3);
    u64(&b, 0);
    u64(&b, 8);
    str(&b, "general.architecture");
    u32(&b, KVB_GGUF_STRING);
    str(&b, "llama");
    kv_u32(&b, "llama.context_length", 131072);
    kv_u32(&b, "llama.embedding_length", 8192);
    kv_u32(&b, "llama.feed_forward_length", 28672);
    kv_u32(&b, "llama.block_count", 80);
    kv_u32(&b, "llama.attention.head_count", 64);
    kv_u32(&b, "llama.attention.head_count_kv", 8);
    kv_u32(&b, "llama.vocab_size", 128256);
    kvb_gguf g;
    char msg[512];
    kvb_model_config c;
    assert_int_equal(kvb_gguf_parse(&g, b.p, b.n, msg, sizeof msg), KVB_STATUS_OK);
    if (kvb_gguf_llama_config(&g, &c, NULL, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("%s", msg);
    assert_int_equal(c.n_layers, 80);
    assert_int_equal(c.head_dim, 128);
    assert_int_equal(c.max_seq, 131072);
    assert_int_equal(c.shared_classifier, 0);
    assert_int_equal(kvb_model_config_check(&c, msg, sizeof msg), KVB_STATUS_INVALID_ARG);
    kvb_gguf_close(&g);
    free(b.p);
}

/* ---- export's writer, read back ----------------------------------------- */

static void test_export_round_trip(void **state)
{
    for (int shared = 0; shared < 2; shared++) {
        kvb_model_config c = {.dim = 64, .hidden_dim = 96, .n_layers = 2, .n_heads = 4,
                              .n_kv_heads = 2, .head_dim = 8, .vocab_size = 40, .max_seq = 128,
                              .rope_theta = 500000.0f, .shared_classifier = shared};
        /* (head-dim x heads != dim) */
        kvb_model m;
        char msg[512], path[1024], name[32];
        snprintf(name, sizeof name, "m%d.gguf", shared);
        kvbt_tmp_path(state, name, path, sizeof path);
        assert_int_equal(kvb_model_init_random(&m, &c, 7, KVB_WTYPE_F32, msg, sizeof msg),
                         KVB_STATUS_OK);
        assert_int_equal(kvb_gguf_save(&m, path, msg, sizeof msg), KVB_STATUS_OK);
        assert_int_equal(kvb_gguf_save(&m, path, msg, sizeof msg), KVB_STATUS_INVALID_ARG);
        kvb_gguf g;
        if (kvb_gguf_open(&g, path, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("%s", msg);
        kvb_model_config back;
        if (kvb_gguf_llama_config(&g, &back, NULL, msg, sizeof msg) != KVB_STATUS_OK)
            fail_msg("%s", msg);
        assert_memory_equal(&back, &c, sizeof c);
        assert_int_equal(g.n_tensors, 9 * 2 + 2 + !shared);
        const kvb_gguf_tensor *t = kvb_gguf_find_tensor(&g, "token_embd.weight");
        assert_int_equal(t->dims[0], 64);
        assert_int_equal(t->dims[1], 40);
        assert_memory_equal(t->data, m.w.token_embedding.data, 64 * 40 * 4);
        t = kvb_gguf_find_tensor(&g, "blk.1.attn_output.weight");
        assert_int_equal(t->dims[0], 32);
        assert_int_equal(t->dims[1], 64);
        assert_memory_equal(t->data, m.w.layer[1].wo.data, 64 * 32 * 4);
        t = kvb_gguf_find_tensor(&g, "blk.1.ffn_down.weight");
        assert_memory_equal(t->data, m.w.layer[1].w2.data, 64 * 96 * 4);
        t = kvb_gguf_find_tensor(&g, "blk.0.attn_k.weight");
        assert_memory_equal(t->data, m.w.layer[0].wk.data, 16 * 64 * 4);
        t = kvb_gguf_find_tensor(&g, "output_norm.weight");
        assert_memory_equal(t->data, m.w.rms_final, 64 * 4);
        t = kvb_gguf_find_tensor(&g, "output.weight");
        if (shared) assert_null(t);
        else assert_memory_equal(t->data, m.w.wcls.data, 64 * 40 * 4);
        kvb_gguf_close(&g);
        kvb_model_free(&m);
    }
    /* not a GGUF file, and not a file */
    kvb_gguf g;
    char msg[512], path[1024];
    kvbt_tmp_path(state, "junk.gguf", path, sizeof path);
    kvbt_write_file(path, "GGML junk junk junk junk junk", 29);
    assert_int_equal(kvb_gguf_open(&g, path, msg, sizeof msg), KVB_STATUS_FORMAT);
    assert_non_null(strstr(msg, "magic"));
    assert_int_equal(kvb_gguf_open(&g, kvbt_tmpdir(state), msg, sizeof msg), KVB_STATUS_IO);
}

int main(int argc, char **argv)
{
    static const kvbt_test all[] = {
        {"valid", test_valid, 0},
        {"malformed", test_malformed, 1},
        {"wrong_offset", test_wrong_offset, 0},
        {"large_shape", test_large_shape, 0},
        {"export_round_trip", test_export_round_trip, 0},
    };
    return kvbt_main(argc, argv, "gguf", all, KVBT_COUNT(all));
}
