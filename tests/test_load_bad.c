/* test_load_bad.c: the loaders against planted faults (cmocka).
 *
 * In written GGUF and safetensors files: two same-size tensors' offsets
 * swapped load (nothing can tell) but change the logits; an offset into
 * another tensor (overlap) or off the alignment is refused; a tensor renamed
 * away, a matrix's dims swapped, an unsupported type are refused naming the
 * tensor. Hand-built safetensors headers (truncated, length past the file, not
 * JSON, sizes that disagree, unknown dtype, absurd dims, offsets out of order,
 * duplicate names, misaligned data) are refused naming the field; every
 * prefix of a real file up to its first tensors is refused; sharded indexes
 * that point at the wrong shard or out of the directory are refused.
 * Usage: test_load_bad [REGEX] (or KVB_TEST_FILTER=REGEX). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../base/afile.h"
#include "../base/json.h"
#include "../model/gguf.h"
#include "../model/load.h"
#include "../model/safetensors.h"
#include "load_fixture.h"
#include "testlib.h"

/* opening path is refused with status st and a message holding want */
static void refused(const char *path, kvb_status st, const char *want)
{
    kvb_model m;
    char msg[1024] = "";
    kvb_status got = kvb_model_open(&m, path, 0, msg, sizeof msg);
    if (got == KVB_STATUS_OK) {
        kvb_model_free(&m);
        fail_msg("%s: loaded; expected a refusal naming '%s'", path, want);
    }
    if (got != st || !strstr(msg, want))
        fail_msg("%s: status %d, message '%s'; expected %d naming '%s'", path, (int)got, msg,
                 (int)st, want);
}

/* A planted fault: refused naming want, or (want NULL) loaded with logits
 * far from ref's: a consistent file that reads the wrong bytes. */
static void planted(const char *path, kvb_status st, const char *want, const float *ref)
{
    if (want) {
        refused(path, st, want);
        return;
    }
    kvb_model l;
    char msg[512];
    if (kvb_model_open(&l, path, 0, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("%s", msg);
    float *got = kvbt_logits(&l);
    if (!(kvbt_rel(got, ref) > 1e-3))
        fail_msg("%s: a planted offset did not change the logits (%g)", path,
                 kvbt_rel(got, ref));
    free(got);
    kvb_model_free(&l);
}

/* ---- GGUF: a written file, patched ---------------------------------------- */

/* the byte after tensor name's info's name (its n_dims) */
static size_t ginfo(const uint8_t *p, size_t n, const char *name)
{
    uint64_t len = strlen(name);
    for (size_t i = 8; i + len <= n; i++)
        if (memcmp(p + i, name, len) == 0 && memcmp(p + i - 8, &len, 8) == 0) return i + len;
    fail_msg("tensor info '%s' not found", name);
    return 0;
}
static size_t g_off(const uint8_t *p, size_t n, const char *name)   /* its offset field */
{
    size_t at = ginfo(p, n, name);
    uint32_t nd;
    memcpy(&nd, p + at, 4);
    return at + 4 + 8 * nd + 4;
}

static void test_gguf_planted(void **state)
{
    char msg[512], path[1200], bad[1200];
    kvb_model m0;
    kvb_model_config c = kvbt_load_shape(0, KVB_ROPE_LAYOUT_INTERLEAVED);
    assert_int_equal(kvb_model_init_random(&m0, &c, 9, KVB_WTYPE_F32, msg, sizeof msg),
                     KVB_STATUS_OK);
    float *ref = kvbt_logits(&m0);
    kvbt_tmp_path(state, "c.gguf", path, sizeof path);
    kvbt_tmp_path(state, "c-bad.gguf", bad, sizeof bad);
    if (kvb_gguf_save(&m0, path, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("%s", msg);
    size_t n;
    uint8_t *f = kvbt_read_file(path, &n), *p = malloc(n);
    /* wq and wo are both 64 x 64 f32: swapped, the file is consistent but wrong */
    size_t oq = g_off(f, n, "blk.0.attn_q.weight"), oo = g_off(f, n, "blk.0.attn_output.weight");
    for (int k = 0; k < 6; k++) {
        memcpy(p, f, n);
        const char *want = NULL;
        kvb_status st = KVB_STATUS_FORMAT;
        if (k == 0) {
            memcpy(p + oq, f + oo, 8);
            memcpy(p + oo, f + oq, 8);
        } else if (k == 1) {   /* wq's offset at wo's: the two overlap */
            memcpy(p + oq, f + oo, 8);
            want = "overlap";
        } else if (k == 2) {   /* off the alignment */
            p[oq] += 4;
            want = "alignment";
        } else if (k == 3) {   /* a tensor renamed away */
            p[ginfo(p, n, "blk.1.ffn_up.weight") - 8] = 'X';
            want = "tensor 'blk.1.ffn_up.weight' is missing";
        } else if (k == 4) {   /* ffn_gate's dims {64, 96} swapped: same bytes, wrong shape */
            size_t at = ginfo(p, n, "blk.0.ffn_gate.weight") + 4;
            memcpy(p + at, f + at + 8, 8);
            memcpy(p + at + 8, f + at, 8);
            want = "tensor 'blk.0.ffn_gate.weight': 2 dims, 64 rows (out) x 96 cols";
        } else {               /* q4_1: fewer bytes, a type the decoder lacks */
            uint32_t q4 = KVB_GGML_Q4_1;
            memcpy(p + oq - 4, &q4, 4);
            want = "tensor 'blk.0.attn_q.weight' has type q4_1";
        }
        remove(bad);
        kvbt_write_file(bad, p, n);
        planted(bad, st, want, ref);
    }
    free(f);
    free(p);
    free(ref);
    kvb_model_free(&m0);
}

/* ---- safetensors: a written checkpoint, its header rewritten --------------- */

/* the file's bytes with header h printed in place of its own (padded with
 * spaces to a multiple of 8, so the data stays aligned); *n updated */
static uint8_t *repack(const uint8_t *f, size_t *n, const cJSON *h)
{
    uint64_t hl;
    memcpy(&hl, f, 8);
    char *t = cJSON_PrintUnformatted(h);
    size_t len = strlen(t), data = *n - 8 - (size_t)hl;
    uint64_t nl = (len + 8 + 7) / 8 * 8 - 8;
    uint8_t *p = malloc(8 + nl + data);
    memcpy(p, &nl, 8);
    memset(p + 8, ' ', (size_t)nl);
    memcpy(p + 8, t, len);
    memcpy(p + 8 + nl, f + 8 + hl, data);
    *n = 8 + (size_t)nl + data;
    free(t);
    return p;
}

static cJSON *header_of(const uint8_t *f)
{
    uint64_t hl;
    memcpy(&hl, f, 8);
    char msg[256];
    cJSON *h = kvb_json_parse((const char *)f + 8, (size_t)hl, "header", msg, sizeof msg);
    assert_non_null(h);
    return h;
}

/* a copy of checkpoint src as dir with model.safetensors's bytes p */
static void make_ckpt(const char *src, const char *dir, const uint8_t *p, size_t n)
{
    char a[1300], b[1300];
    kvb_rmtree(dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(a, sizeof a, "%s/config.json", src);
    snprintf(b, sizeof b, "%s/config.json", dir);
    size_t cn;
    void *cfg = kvbt_read_file(a, &cn);
    kvbt_write_file(b, cfg, cn);
    free(cfg);
    snprintf(b, sizeof b, "%s/model.safetensors", dir);
    kvbt_write_file(b, p, n);
}

static void test_safetensors_planted(void **state)
{
    char msg[512], src[1200], dir[1200], file[1300];
    kvb_model mh;
    kvb_model_config c = kvbt_load_shape(0, KVB_ROPE_LAYOUT_HALF);
    assert_int_equal(kvb_model_init_random(&mh, &c, 9, KVB_WTYPE_F32, msg, sizeof msg),
                     KVB_STATUS_OK);
    float *ref = kvbt_logits(&mh);
    kvbt_tmp_path(state, "st", src, sizeof src);
    kvbt_tmp_path(state, "st-bad", dir, sizeof dir);
    if (kvb_hf_save(&mh, src, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("%s", msg);
    snprintf(file, sizeof file, "%s/model.safetensors", src);
    size_t n;
    uint8_t *f = kvbt_read_file(file, &n);
    const char *q = "model.layers.0.self_attn.q_proj.weight",
               *o = "model.layers.0.self_attn.o_proj.weight",
               *g = "model.layers.0.mlp.gate_proj.weight";
    for (int k = 0; k < 5; k++) {
        cJSON *h = header_of(f);
        cJSON *qo = cJSON_GetObjectItem(cJSON_GetObjectItem(h, q), "data_offsets"),
              *oo = cJSON_GetObjectItem(cJSON_GetObjectItem(h, o), "data_offsets");
        const char *want = NULL;
        if (k <= 1) {   /* 0: swapped (consistent, wrong); 1: q at o's (overlap) */
            cJSON *qd = cJSON_Duplicate(qo, 1), *od = cJSON_Duplicate(oo, 1);
            cJSON_ReplaceItemInObject(cJSON_GetObjectItem(h, q), "data_offsets", od);
            if (k == 0) cJSON_ReplaceItemInObject(cJSON_GetObjectItem(h, o), "data_offsets", qd);
            else cJSON_Delete(qd);
            want = k ? "overlap" : NULL;
        } else if (k == 2) {   /* renamed away */
            cJSON *t = cJSON_DetachItemFromObject(h, "model.layers.1.mlp.up_proj.weight");
            cJSON_AddItemToObject(h, "model.layers.1.mlp.up_proj.weighX", t);
            want = "tensor 'model.layers.1.mlp.up_proj.weight' is missing";
        } else if (k == 3) {   /* [96, 64] as [64, 96] */
            cJSON *sh = cJSON_GetObjectItem(cJSON_GetObjectItem(h, g), "shape");
            cJSON_ReplaceItemInArray(sh, 0, cJSON_CreateNumber(64));
            cJSON_ReplaceItemInArray(sh, 1, cJSON_CreateNumber(96));
            want = "tensor 'model.layers.0.mlp.gate_proj.weight': 2 dims, 64 rows (out) x 96";
        } else {               /* 3 dims */
            cJSON *sh = cJSON_GetObjectItem(cJSON_GetObjectItem(h, g), "shape");
            cJSON_ReplaceItemInArray(sh, 0, cJSON_CreateNumber(48));
            cJSON_InsertItemInArray(sh, 0, cJSON_CreateNumber(2));
            want = "has 3 dims";
        }
        size_t pn = n;
        uint8_t *p = repack(f, &pn, h);
        cJSON_Delete(h);
        make_ckpt(src, dir, p, pn);
        free(p);
        planted(dir, KVB_STATUS_FORMAT, want, ref);
    }
    /* every prefix through the first tensors is refused, then a sample of the rest */
    uint64_t hl;
    memcpy(&hl, f, 8);
    kvb_st_file sf;
    for (size_t k = 0; k < n; k += k < 8 + hl + 256 ? 1 : 4099) {
        msg[0] = 0;
        assert_int_not_equal(kvb_st_parse(&sf, f, k, msg, sizeof msg), KVB_STATUS_OK);
        assert_true(strstr(msg, "header") || strstr(msg, "data_offsets"));
    }
    assert_int_equal(kvb_st_parse(&sf, f, n, msg, sizeof msg), KVB_STATUS_OK);
    kvb_st_close(&sf);
    free(f);
    free(ref);
    kvb_model_free(&mh);
}

/* ---- safetensors headers built by hand ---------------------------------- */

/* 8-byte length, header (padded to 8), then data bytes of zeros */
static uint8_t *st_buf(const char *json, size_t data, size_t *n)
{
    size_t len = strlen(json), hl = (len + 8 + 7) / 8 * 8 - 8;
    *n = 8 + hl + data;
    uint8_t *p = calloc(1, *n);
    uint64_t h = hl;
    memcpy(p, &h, 8);
    memset(p + 8, ' ', hl);
    memcpy(p + 8, json, len);
    return p;
}

static void test_safetensors_headers(void **state)
{
    (void)state;
    static const struct { const char *json; size_t data; const char *want; } cases[] = {
        {"{\"a\":", 0, "truncated"},
        {"[1,2]", 0, "not a JSON object"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 16,
         "data_offsets span 12 bytes but shape x F32's 4 bytes is 16"},
        {"{\"a\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16,
         "tensor 'a': dtype 'F64': allowed are F32, F16, BF16"},
        {"{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "dtype missing"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],"
         "\"data_offsets\":[0,8]}}", 8, "tensor 'a': shape[1]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "shape[0]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8,
         "at most 8 dims"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "not in order"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8,
         "inside the data section of 8 bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 24, "overlap"},
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}", 6, "misaligned"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "appears twice"},
        /* accepted: __metadata__ skipped, an empty tensor beside another */
        {"{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"BF16\",\"shape\":[3],"
         "\"data_offsets\":[0,6]},\"e\":{\"dtype\":\"F32\",\"shape\":[0,4],"
         "\"data_offsets\":[2,2]}}", 6, NULL},
    };
    char msg[512];
    kvb_st_file f;
    for (size_t i = 0; i < KVBT_COUNT(cases); i++) {
        size_t n;
        uint8_t *p = st_buf(cases[i].json, cases[i].data, &n);
        msg[0] = 0;
        kvb_status st = kvb_st_parse(&f, p, n, msg, sizeof msg);
        if (!cases[i].want) {
            if (st != KVB_STATUS_OK) fail_msg("case %zu refused: %s", i, msg);
            assert_int_equal(f.n_tensors, 2);
            assert_int_equal(kvb_st_find(&f, "a")->type, KVB_WTYPE_BF16);
            kvb_st_close(&f);
        } else if (st == KVB_STATUS_OK || !strstr(msg, cases[i].want)) {
            fail_msg("case %zu: status %d, message '%s'; expected '%s'", i, (int)st, msg,
                     cases[i].want);
        }
        /* the header length beyond the file, and a file cut inside the length */
        uint64_t big = n;
        memcpy(p, &big, 8);
        assert_int_equal(kvb_st_parse(&f, p, n, msg, sizeof msg), KVB_STATUS_FORMAT);
        assert_non_null(strstr(msg, "header length"));
        assert_int_equal(kvb_st_parse(&f, p, 5, msg, sizeof msg), KVB_STATUS_FORMAT);
        assert_non_null(strstr(msg, "header length"));
        free(p);
    }
}

/* ---- sharded indexes, directories and unknown files ----------------------- */

static void test_sharded_and_paths(void **state)
{
    char msg[512], src[1200], path[1300], junk[1200];
    kvb_model m;
    kvb_model_config c = kvbt_load_shape(1, KVB_ROPE_LAYOUT_HALF);
    assert_int_equal(kvb_model_init_random(&m, &c, 4, KVB_WTYPE_F16, msg, sizeof msg),
                     KVB_STATUS_OK);
    kvbt_tmp_path(state, "sh", src, sizeof src);
    if (kvb_hf_save_sharded(&m, src, 2, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("%s", msg);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", src);
    size_t n;
    char *idx = kvbt_read_file(path, &n);
    const char *norm = "\"model.norm.weight\": \"model-00002-of-00002";
    for (int k = 0; k < 2; k++) {
        char *e = malloc(n + 8), *at = strstr(idx, norm);
        assert_non_null(at);
        memcpy(e, idx, n);
        e[n] = 0;
        size_t pos = (size_t)(at - idx) + strlen("\"model.norm.weight\": \"");
        if (k == 0) e[pos + 10] = '1';                    /* the other shard */
        else memcpy(e + pos, "../el-00002", 11);          /* out of the directory */
        remove(path);
        kvbt_write_file(path, e, n);
        free(e);
        refused(src, KVB_STATUS_FORMAT, k ? "must be a file name in the directory"
                                          : "puts tensor 'model.norm.weight' in 'model-00001");
    }
    free(idx);
    /* a file of no known format names the path and the formats tried */
    kvbt_tmp_path(state, "junk.bin", junk, sizeof junk);
    kvbt_write_file(junk, "not a model at all, not even close", 34);
    refused(junk, KVB_STATUS_FORMAT, "not GGUF (no 'GGUF' magic), and not a llama2.c");
    refused(junk, KVB_STATUS_FORMAT, "junk.bin");
    /* a directory without weights; a scaling the decoder lacks */
    kvbt_tmp_path(state, "empty-ckpt", path, sizeof path);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(junk, sizeof junk, "%s/config.json", src);
    void *cfg = kvbt_read_file(junk, &n);
    snprintf(junk, sizeof junk, "%s/config.json", path);
    kvbt_write_file(junk, cfg, n);
    free(cfg);
    refused(path, KVB_STATUS_IO, "neither model.safetensors nor");
    kvb_model_free(&m);
}

int main(int argc, char **argv)
{
    static const kvbt_test all[] = {
        {"gguf_planted", test_gguf_planted, 0},
        {"safetensors_planted", test_safetensors_planted, 0},
        {"safetensors_headers", test_safetensors_headers, 0},
        {"sharded_and_paths", test_sharded_and_paths, 0},
    };
    return kvbt_main(argc, argv, "load_bad", all, KVBT_COUNT(all));
}
