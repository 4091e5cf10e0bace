/* test_load.c: model files' weights loaded in place (model/load.h, gguf.h,
 * safetensors.h) and the Hugging Face writer (cmocka).
 *
 * One seeded model (GQA, 4 query heads on 2 KV heads) decoded on an exact cache
 * (contiguous, f32) gives bit-identical logits from memory, a llama2.c .bin, GGUF
 * and safetensors, single and sharded; f16, bf16 (GGUF, safetensors) and q8_0
 * (GGUF) files give the logits of the same model in memory, bit for bit, and
 * those of its dequantized f32 twin within 1e-4 (relative L2); an interleaved
 * model exported to Hugging Face's rotate-half layout computes the same function
 * (and the same weights unpermuted would not), and kvb_model_relayout brings
 * it back to the original bit for bit. A GGUF rope_freqs.weight divides each
 * pair's frequency (ones: the same logits); norms stored as bf16 are
 * converted. Planted faults: swapped tensor
 * offsets load but change the logits; overlapping or misaligned ones, truncated
 * files, bad headers, unknown dtypes, absurd dims, missing tensors and wrong
 * shapes are refused with a message naming the field (test_load_bad.c).
 * Files are written in the run's temporary directory, removed at exit.
 * Usage: test_load [REGEX] (or KVB_TEST_FILTER=REGEX). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../base/json.h"
#include "../model/gguf.h"
#include "../model/hf.h"
#include "../model/load.h"
#include "../model/permute.h"
#include "../model/safetensors.h"
#include "load_fixture.h"
#include "testlib.h"

/* (a) the same f32 weights through every format: the same logits, bit for bit */
static void test_formats_identical(void **state)
{
    char msg[512], path[1200];
    for (int shared = 0; shared < 2; shared++) {
        kvb_model m0, mh, l;
        kvb_model_config c = kvbt_load_shape(shared, KVB_ROPE_LAYOUT_INTERLEAVED);
        assert_int_equal(kvb_model_init_random(&m0, &c, 7, KVB_WTYPE_F32, msg, sizeof msg),
                         KVB_STATUS_OK);
        float *ref = kvbt_logits(&m0);
        const char *ext[2] = {"bin", "gguf"};
        for (int f = 0; f < 2; f++) {
            snprintf(path, sizeof path, "%s/a%d.%s", kvbt_tmpdir(state), shared, ext[f]);
            kvb_status st = f ? kvb_gguf_save(&m0, path, msg, sizeof msg)
                              : kvb_model_save(&m0, path, msg, sizeof msg);
            if (st != KVB_STATUS_OK) fail_msg("%s", msg);
            if (kvb_model_open(&l, path, 0, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("%s", msg);
            assert_int_equal(l.cfg.shared_classifier, shared);
            kvbt_assert_same_logits(&l, ref, path);
            if (f) {   /* in place: the matrices are the map's bytes, not copies */
                assert_string_equal(l.source, "gguf");
                kvbt_assert_in_map(&l);
            }
            kvb_model_free(&l);
        }
        /* safetensors holds rotate-half: the same weights as a HALF model, bit for bit */
        c.rope_layout = KVB_ROPE_LAYOUT_HALF;
        assert_int_equal(kvb_model_init_random(&mh, &c, 7, KVB_WTYPE_F32, msg, sizeof msg),
                         KVB_STATUS_OK);
        float *refh = kvbt_logits(&mh);
        snprintf(path, sizeof path, "%s/a%d-hf", kvbt_tmpdir(state), shared);
        if (kvb_hf_save(&mh, path, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("%s", msg);
        if (kvb_model_open(&l, path, 0, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("%s", msg);
        assert_string_equal(l.source, "safetensors");
        assert_int_equal(l.cfg.rope_layout, KVB_ROPE_LAYOUT_HALF);
        assert_int_equal(l.cfg.shared_classifier, shared);
        kvbt_assert_in_map(&l);
        kvbt_assert_same_logits(&l, refh, path);
        kvb_model_free(&l);
        /* config.json itself opens the checkpoint too */
        char cfgp[1300];
        snprintf(cfgp, sizeof cfgp, "%s/config.json", path);
        if (kvb_model_open(&l, cfgp, 5, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("%s", msg);
        assert_int_equal(l.cfg.max_seq, 5);
        kvb_model_free(&l);
        /* (e) the same checkpoint in 3 shards and an index */
        snprintf(path, sizeof path, "%s/a%d-hf3", kvbt_tmpdir(state), shared);
        if (kvb_hf_save_sharded(&mh, path, 3, msg, sizeof msg) != KVB_STATUS_OK)
            fail_msg("%s", msg);
        if (kvb_model_open(&l, path, 0, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("%s", msg);
        assert_int_equal(((const kvb_st_set *)l.map)->n_files, 3);
        kvbt_assert_same_logits(&l, refh, path);
        kvb_model_free(&l);
        /* never over an existing path */
        assert_int_equal(kvb_hf_save(&mh, path, msg, sizeof msg), KVB_STATUS_INVALID_ARG);
        assert_non_null(strstr(msg, "exists"));
        free(ref);
        free(refh);
        kvb_model_free(&m0);
        kvb_model_free(&mh);
    }
}

/* (b) stored types: the file's model is the memory's, and near its f32 twin */
static void test_typed_files(void **state)
{
    char msg[512], path[1200];
    for (int i = KVB_WTYPE_F16; i < KVB_WTYPE_COUNT; i++) {
        kvb_wtype wt = (kvb_wtype)i;
        for (int half = 0; half < 2; half++) {
            kvb_model m, twin, l;
            kvb_model_config c = kvbt_shape_for(
                kvbt_load_shape(0, half ? KVB_ROPE_LAYOUT_HALF : KVB_ROPE_LAYOUT_INTERLEAVED), wt);
            assert_int_equal(kvb_model_init_random(&m, &c, 11, wt, msg, sizeof msg),
                             KVB_STATUS_OK);
            kvbt_dequant_twin(&m, &twin);
            float *ref = kvbt_logits(&m), *ref32 = kvbt_logits(&twin);
            snprintf(path, sizeof path, "%s/b-%s-%s", kvbt_tmpdir(state), kvb_wtype_name(wt),
                     half ? "hf" : "gguf");
            kvb_status st = half ? kvb_hf_save(&m, path, msg, sizeof msg)
                                 : kvb_gguf_save(&m, path, msg, sizeof msg);
            if (half && kvb_wtype_traits_of(wt)->block > 1) {   /* safetensors has no blocks */
                assert_int_equal(st, KVB_STATUS_UNSUPPORTED);
                assert_non_null(strstr(msg, kvb_wtype_name(wt)));
                assert_non_null(strstr(msg, "model.embed_tokens.weight"));
            } else {
                if (st != KVB_STATUS_OK) fail_msg("%s", msg);
                if (kvb_model_open(&l, path, 0, msg, sizeof msg) != KVB_STATUS_OK)
                    fail_msg("%s", msg);
                assert_int_equal(l.w.layer[1].w2.type, wt);
                assert_int_equal(l.w.token_embedding.type, wt);
                kvbt_assert_same_logits(&l, ref, path);
                double e = kvbt_rel(ref, ref32);
                if (!(e < 1e-4))
                    fail_msg("%s: %g from the dequantized f32 twin (allowed 1e-4)", path, e);
                kvb_model_free(&l);
            }
            free(ref);
            free(ref32);
            kvb_model_free(&twin);
            kvb_model_free(&m);
        }
    }
}

/* (f) an interleaved model exported to Hugging Face computes the same function */
static void test_hf_export_permutes(void **state)
{
    char msg[512], path[1200];
    /* the permutation: half row i <- interleaved 2i, half row i + hd/2 <- 2i + 1 */
    const int hd = 8;
    for (int r = 0; r < 3 * hd; r++) {
        int head = r / hd, j = r % hd;
        int want = head * hd + (j < hd / 2 ? 2 * j : 2 * (j - hd / 2) + 1);
        assert_int_equal(kvb_rope_perm_row(r, hd, 1), want);
        assert_int_equal(kvb_rope_perm_row(kvb_rope_perm_row(r, hd, 0), hd, 1), r);
    }
    for (int shared = 0; shared < 2; shared++) {
        kvb_model m0, mh, l;
        kvb_model_config c = kvbt_load_shape(shared, KVB_ROPE_LAYOUT_INTERLEAVED);
        assert_int_equal(kvb_model_init_random(&m0, &c, 5, KVB_WTYPE_F32, msg, sizeof msg),
                         KVB_STATUS_OK);
        float *ref = kvbt_logits(&m0);
        snprintf(path, sizeof path, "%s/f%d", kvbt_tmpdir(state), shared);
        if (kvb_hf_save(&m0, path, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("%s", msg);
        if (kvb_model_open(&l, path, 0, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("%s", msg);
        assert_int_equal(l.cfg.rope_layout, KVB_ROPE_LAYOUT_HALF);
        float *got = kvbt_logits(&l);
        double e = kvbt_rel(got, ref);
        if (!(e < 1e-5)) fail_msg("%s: %g from the interleaved original (allowed 1e-5)", path, e);
        /* the check can fail: the same weights read as rotate-half, unpermuted, differ */
        c.rope_layout = KVB_ROPE_LAYOUT_HALF;
        assert_int_equal(kvb_model_init_random(&mh, &c, 5, KVB_WTYPE_F32, msg, sizeof msg),
                         KVB_STATUS_OK);
        float *unperm = kvbt_logits(&mh);
        assert_true(kvbt_rel(unperm, ref) > 1e-3);
        /* kvb_model_relayout: the loaded model back to interleaved is the original, bit for
         * bit; to interleaved and exported as GGUF (which writes interleaved) it loads alike */
        kvb_model back, again;
        if (kvb_model_relayout(&l, &back, KVB_ROPE_LAYOUT_INTERLEAVED, msg, sizeof msg))
            fail_msg("%s", msg);
        kvbt_assert_same_logits(&back, ref, "relayout to interleaved");
        snprintf(path, sizeof path, "%s/f%d.gguf", kvbt_tmpdir(state), shared);
        if (kvb_gguf_save(&back, path, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("%s", msg);
        if (kvb_model_open(&again, path, 0, msg, sizeof msg) != KVB_STATUS_OK)
            fail_msg("%s", msg);
        kvbt_assert_same_logits(&again, ref, path);
        kvb_model_free(&again);
        kvb_model_free(&back);
        free(ref);
        free(got);
        free(unperm);
        kvb_model_free(&l);
        kvb_model_free(&m0);
        kvb_model_free(&mh);
    }
}

/* The GGUF file at path with a rope_freqs.weight tensor of the n factors f
 * added (after every other tensor's bytes), written to out. */
static void add_rope_freqs(const char *path, const char *out, const float *f, int n)
{
    size_t sz;
    uint8_t *b = kvbt_read_file(path, &sz);
    kvb_gguf g;
    char msg[512];
    assert_int_equal(kvb_gguf_parse(&g, b, sz, msg, sizeof msg), KVB_STATUS_OK);
    const kvb_gguf_kv *kl = &g.kv[g.n_kv - 1];
    const kvb_gguf_tensor *tl = &g.t[g.n_tensors - 1];
    size_t kv_end = (size_t)(kl->val - b + kl->val_bytes);
    size_t info_end = (size_t)((const uint8_t *)tl->name.p - b) + tl->name.n + 4 +
                      8 * (size_t)tl->n_dims + 12;
    const char *name = "rope_freqs.weight";
    uint64_t a = g.alignment, old_data = sz - g.data_off, len = strlen(name), dim = n;
    uint64_t off = (old_data + a - 1) / a * a, count = g.n_tensors + 1;
    uint32_t nd = 1, type = KVB_GGML_F32;
    size_t head = info_end + 8 + len + 4 + 8 + 4 + 8, data_off = (head + a - 1) / a * a;
    uint8_t *o = calloc(1, data_off + off + 4 * (size_t)n);
    memcpy(o, b, info_end);
    memcpy(o + 8, &count, 8);
    uint8_t *p = o + info_end;
#define PUT(v, k) (memcpy(p, v, k), p += k)
    PUT(&len, 8);
    PUT(name, len);
    PUT(&nd, 4);
    PUT(&dim, 8);
    PUT(&type, 4);
    PUT(&off, 8);
#undef PUT
    memcpy(o + data_off, b + g.data_off, old_data);
    memcpy(o + data_off + off, f, 4 * (size_t)n);
    kvbt_write_file(out, o, data_off + off + 4 * (size_t)n);
    assert_true(kv_end < info_end);
    kvb_gguf_close(&g);
    free(o);
    free(b);
}

/* Llama 3's rope_freqs.weight divides each pair's frequency; ones change nothing */
static void test_gguf_rope_freqs(void **state)
{
    char msg[512], path[1200], out[1200];
    kvb_model m0, l;
    kvb_model_config c = kvbt_load_shape(0, KVB_ROPE_LAYOUT_INTERLEAVED);
    assert_int_equal(kvb_model_init_random(&m0, &c, 13, KVB_WTYPE_F32, msg, sizeof msg),
                     KVB_STATUS_OK);
    float *ref = kvbt_logits(&m0);
    kvbt_tmp_path(state, "rf.gguf", path, sizeof path);
    if (kvb_gguf_save(&m0, path, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("%s", msg);
    float f[8];
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < 8; i++) f[i] = k == 0 ? 1.0f : k == 1 ? 1.0f + (float)i : 1.0f;
        if (k == 2) f[3] = 0.0f;
        snprintf(out, sizeof out, "%s/rf%d.gguf", kvbt_tmpdir(state), k);
        add_rope_freqs(path, out, f, 8);
        kvb_status st = kvb_model_open(&l, out, 0, msg, sizeof msg);
        if (k == 2) {   /* a factor of 0 would make an infinite frequency */
            assert_int_equal(st, KVB_STATUS_FORMAT);
            assert_non_null(strstr(msg, "rope_freqs.weight': value 3 is 0"));
            continue;
        }
        if (st != KVB_STATUS_OK) fail_msg("%s", msg);
        for (int i = 0; i < 8; i++) assert_true(l.rope_freq[i] == m0.rope_freq[i] / f[i]);
        float *got = kvbt_logits(&l);
        if (k == 0) assert_memory_equal(got, ref, sizeof(float) * KVBT_LOAD_T * KVBT_LOAD_V);
        else assert_true(kvbt_rel(got, ref) > 1e-3);
        free(got);
        kvb_model_free(&l);
    }
    free(ref);
    kvb_model_free(&m0);
}

/* norm value i, exact in bf16 */
static float norm_value(int i)
{
    return kvb_bf16_to_f32(kvb_f32_to_bf16(1.0f + 0.5f * sinf(0.7f * (float)i)));
}

static int is_norm(const char *name)
{
    return strstr(name, "layernorm.weight") || strcmp(name, "model.norm.weight") == 0;
}

/* checkpoint src's model.safetensors rewritten into dir with every norm in bf16,
 * values norm_value(0..): the f32 tensors first, then the norms */
static void bf16_norms(const char *src, const char *dir)
{
    char p[1300];
    snprintf(p, sizeof p, "%s/model.safetensors", src);
    size_t n, cn;
    uint8_t *f = kvbt_read_file(p, &n);
    kvb_st_file sf;
    char msg[512];
    assert_int_equal(kvb_st_parse(&sf, f, n, msg, sizeof msg), KVB_STATUS_OK);
    cJSON *h = cJSON_CreateObject();
    uint64_t off = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < sf.n_tensors; i++) {
            const kvb_st_tensor *t = &sf.t[i];
            if (is_norm(t->name) != pass) continue;
            uint64_t bytes = pass ? (t->end - t->begin) / 2 : t->end - t->begin;
            cJSON *e = cJSON_AddObjectToObject(h, t->name);
            cJSON *sh = cJSON_AddArrayToObject(e, "shape");
            cJSON_AddStringToObject(e, "dtype", pass ? "BF16" : kvb_st_dtype_name(t->type));
            for (int d = 0; d < t->n_dims; d++)
                cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->dims[d]));
            cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
            cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
            cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + bytes)));
            off += bytes;
        }
    char *text = cJSON_PrintUnformatted(h);
    uint64_t len = strlen(text), hl = (len + 8 + 7) / 8 * 8 - 8;
    uint8_t *o = malloc(8 + hl + off), *d = o + 8 + hl;
    memcpy(o, &hl, 8);
    memset(o + 8, ' ', hl);
    memcpy(o + 8, text, len);
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < sf.n_tensors; i++) {
            const kvb_st_tensor *t = &sf.t[i];
            if (is_norm(t->name) != pass) continue;
            if (!pass) {
                memcpy(d, t->data, t->end - t->begin);
                d += t->end - t->begin;
            }
            for (uint64_t j = 0; pass && j < t->dims[0]; j++, d += 2) {
                uint16_t b = kvb_f32_to_bf16(norm_value((int)j));
                memcpy(d, &b, 2);
            }
        }
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    kvbt_write_file(p, o, 8 + hl + off);
    snprintf(p, sizeof p, "%s/config.json", src);
    void *cfg = kvbt_read_file(p, &cn);
    snprintf(p, sizeof p, "%s/config.json", dir);
    kvbt_write_file(p, cfg, cn);
    free(cfg);
    free(text);
    free(o);
    cJSON_Delete(h);
    kvb_st_close(&sf);
    free(f);
}

/* norms stored as bf16 are converted into the model's memory: the same logits as
 * an f32 model holding those values */
static void test_hf_bf16_norms(void **state)
{
    char msg[512], src[1200], dir[1200];
    kvb_model m, twin, l;
    kvb_model_config c = kvbt_load_shape(0, KVB_ROPE_LAYOUT_HALF);
    assert_int_equal(kvb_model_init_random(&m, &c, 17, KVB_WTYPE_F32, msg, sizeof msg),
                     KVB_STATUS_OK);
    kvbt_tmp_path(state, "n-f32", src, sizeof src);
    kvbt_tmp_path(state, "n-bf16", dir, sizeof dir);
    if (kvb_hf_save(&m, src, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("%s", msg);
    bf16_norms(src, dir);
    kvbt_dequant_twin(&m, &twin);
    for (int i = 0; i < c.dim; i++) {   /* the twin's own memory: its norms may change */
        for (int k = 0; k < c.n_layers; k++) {
            ((float *)twin.w.layer[k].rms_att)[i] = norm_value(i);
            ((float *)twin.w.layer[k].rms_ffn)[i] = norm_value(i);
        }
        ((float *)twin.w.rms_final)[i] = norm_value(i);
    }
    float *ref = kvbt_logits(&twin), *plain = kvbt_logits(&m);
    assert_true(kvbt_rel(plain, ref) > 1e-3);   /* the norms matter */
    if (kvb_model_open(&l, dir, 0, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("%s", msg);
    const char *lo = l.mem, *at = (const char *)l.w.layer[1].rms_ffn;
    assert_true(at >= lo && at < lo + l.mem_bytes);
    kvbt_assert_same_logits(&l, ref, dir);
    free(ref);
    free(plain);
    kvb_model_free(&l);
    kvb_model_free(&twin);
    kvb_model_free(&m);
}

/* config.json carries every config field the decoder uses, Llama 3's scaling too */
static void test_hf_config_round_trip(void **state)
{
    char msg[512], path[1200];
    kvb_model m;
    kvb_model_config c = kvbt_load_shape(1, KVB_ROPE_LAYOUT_HALF), r;
    c.rope_theta = 500000.0f;
    c.norm_eps = 1e-6f;
    c.rope_scaling = KVB_ROPE_SCALING_LLAMA3;
    c.rope_factor = 8.0f;
    c.rope_low_freq = 1.0f;
    c.rope_high_freq = 4.0f;
    c.rope_orig_ctx = 16;
    assert_int_equal(kvb_model_init_random(&m, &c, 3, KVB_WTYPE_BF16, msg, sizeof msg),
                     KVB_STATUS_OK);
    snprintf(path, sizeof path, "%s/cfg", kvbt_tmpdir(state));
    if (kvb_hf_save(&m, path, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("%s", msg);
    if (kvb_hf_config(path, &r, NULL, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("%s", msg);
    assert_int_equal(r.dim, c.dim);
    assert_int_equal(r.hidden_dim, c.hidden_dim);
    assert_int_equal(r.n_layers, c.n_layers);
    assert_int_equal(r.n_heads, c.n_heads);
    assert_int_equal(r.n_kv_heads, c.n_kv_heads);
    assert_int_equal(r.head_dim, c.head_dim);
    assert_int_equal(r.vocab_size, c.vocab_size);
    assert_int_equal(r.max_seq, c.max_seq);
    assert_int_equal(r.shared_classifier, 1);
    assert_int_equal(r.rope_layout, KVB_ROPE_LAYOUT_HALF);
    assert_int_equal(r.rope_scaling, KVB_ROPE_SCALING_LLAMA3);
    assert_true(r.rope_theta == c.rope_theta && r.norm_eps == c.norm_eps);
    assert_true(r.rope_factor == 8.0f && r.rope_low_freq == 1.0f && r.rope_high_freq == 4.0f);
    assert_int_equal(r.rope_orig_ctx, 16);
    kvb_model l;
    if (kvb_model_open(&l, path, 0, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("%s", msg);
    assert_int_equal(l.cfg.rope_scaling, KVB_ROPE_SCALING_LLAMA3);
    for (int i = 0; i < c.head_dim / 2; i++) assert_true(l.rope_freq[i] == m.rope_freq[i]);
    kvb_model_free(&l);
    kvb_model_free(&m);
}

int main(int argc, char **argv)
{
    static const kvbt_test all[] = {
        {"formats_identical", test_formats_identical, 0},
        {"typed_files", test_typed_files, 0},
        {"hf_export_permutes", test_hf_export_permutes, 0},
        {"hf_config_round_trip", test_hf_config_round_trip, 0},
        {"gguf_rope_freqs", test_gguf_rope_freqs, 0},
        {"hf_bf16_norms", test_hf_bf16_norms, 0},
    };
    return kvbt_main(argc, argv, "load", all, KVBT_COUNT(all));
}
