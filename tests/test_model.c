/* test_model.c: the Llama-style decoder and llama2.c checkpoints (cmocka).
 *
 * Greedy decoding gives the same tokens and logits with no cache, a contiguous
 * cache (grow and prealloc bit-identical) and every paged layout and block size;
 * both decode paths match a float64 decoder written from the Llama definition
 * (RoPE, RMSNorm, SwiGLU, GQA) without any of the model's code; a hand-written
 * checkpoint pins each tensor's position in the file, and damaged files (cut
 * short, trailing bytes, broken header fields, non-finite weights) are refused.
 * Usage: test_model [REGEX] (or KVB_TEST_FILTER=REGEX): see testlib.h. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/model.h"
#include "../impls/kvb_backend.h"
#include "testlib.h"

/* ---- the full model ----------------------------------------------------- */

/* Greedy generation of n tokens after a prompt; logits of every step kept. */
static void generate(const kvb_model *m, const kvb_backend *b, kvb_options o, const int *prompt,
                     int P, int n, int *tokens_out, float *logits_out)
{
    kvb_state st;
    assert_int_equal(kvb_state_init(&st, &m->cfg, 1), KVB_STATUS_OK);
    kvb_shape shape = kvb_model_kv_shape(&m->cfg);
    kvb_cache *c = kvbt_cache_new(b, &shape, &o);
    int *toks = malloc((size_t)(P + n + 1) * sizeof *toks);
    memcpy(toks, prompt, (size_t)P * sizeof *toks);
    assert_int_equal(kvb_forward_seq(m, &st, c, 0, toks, P, NULL), KVB_STATUS_OK);
    int V = m->cfg.vocab_size;
    toks[P] = kvb_argmax(st.logits, V);
    for (int i = 0; i < n; i++) {
        int pos = P + i;
        kvb_status s = (b->flags & KVB_BACKEND_RECOMPUTE)
                           ? kvb_forward_seq(m, &st, NULL, 0, toks, pos + 1, NULL)
                           : kvb_forward_token(m, &st, c, 0, toks[pos], pos, NULL);
        assert_int_equal(s, KVB_STATUS_OK);
        memcpy(logits_out + (size_t)i * V, st.logits, (size_t)V * sizeof(float));
        toks[pos + 1] = kvb_argmax(st.logits, V);
        tokens_out[i] = toks[pos + 1];
    }
    if (!(b->flags & KVB_BACKEND_RECOMPUTE)) assert_int_equal(kvb_cache_length(c, 0, 0), P + n);
    free(toks);
    kvb_cache_destroy(c);
    kvb_state_free(&st);
}

static void test_model_nocache_equals_contiguous(void **state)
{
    const struct {
        const char *name;
        int heads, kv;
    } shapes[] = {{"mha", 4, 4}, {"gqa", 4, 2}, {"mqa", 4, 1}};
    int ran = 0;
    for (size_t si = 0; si < 3; si++) {
        char name[96];
        if (!kvbt_case(state, name, sizeof name, "model(preset=tiny,%s,steps=64)", shapes[si].name))
            continue;
        ran++;
        kvb_model_config cfg;
        kvb_model_preset("tiny", &cfg);
        cfg.n_heads = shapes[si].heads;
        cfg.n_kv_heads = shapes[si].kv;
        cfg.head_dim = cfg.dim / cfg.n_heads;
        kvb_model m;
        char msg[256];
        assert_int_equal(kvb_model_init_random(&m, &cfg, 42 + si, KVB_WTYPE_F32, msg, sizeof msg),
                         KVB_STATUS_OK);
        const int P = 5, n = 64, V = cfg.vocab_size;
        int prompt[5] = {1, 17, 99, 3, 200};
        int *tk[3];
        float *lg[3];
        const kvb_backend *nc = kvb_backend_find("nocache"), *ct = kvb_backend_find("contiguous");
        kvb_options o_nc = {.dtype = KVB_DTYPE_F32, .alloc = KVB_ALLOC_GROW, .max_seqs = 1},
                    o_grow = o_nc,
                    o_pre = {.dtype = KVB_DTYPE_F32, .alloc = KVB_ALLOC_PREALLOC, .max_seqs = 1};
        for (int i = 0; i < 3; i++) {
            tk[i] = malloc((size_t)n * sizeof(int));
            lg[i] = malloc((size_t)n * V * sizeof(float));
        }
        generate(&m, nc, o_nc, prompt, P, n, tk[0], lg[0]);
        generate(&m, ct, o_grow, prompt, P, n, tk[1], lg[1]);
        generate(&m, ct, o_pre, prompt, P, n, tk[2], lg[2]);
        double worst = 0;
        for (int i = 0; i < n; i++) {
            double e = kvbt_rel_l2_rows(lg[1] + (size_t)i * V, lg[0] + (size_t)i * V, 1, (size_t)V);
            if (e > worst) worst = e;
            if (!(e < 1e-4)) fail_msg("%s: step %d logits differ, rel L2 %.3g", name, i, e);
            assert_int_equal(tk[0][i], tk[1][i]);
        }
        /* grow and prealloc do the same arithmetic in the same order */
        assert_memory_equal(lg[1], lg[2], (size_t)n * V * sizeof(float));
        assert_memory_equal(tk[1], tk[2], (size_t)n * sizeof(int));
        /* so does a paged cache, whatever its block size or layout */
        const char *paged[] = {"paged", "paged-blockmajor", "paged-tokmajor"};
        const int blocks[] = {1, 3, 16, 256};
        for (int pi = 0; pi < 3; pi++)
            for (int bi = 0; bi < 4; bi++) {
                kvb_options o = {.dtype = KVB_DTYPE_F32, .alloc = KVB_ALLOC_GROW, .max_seqs = 1,
                                 .block_tokens = blocks[bi]};
                generate(&m, kvb_backend_find(paged[pi]), o, prompt, P, n, tk[2], lg[2]);
                if (memcmp(lg[1], lg[2], (size_t)n * V * sizeof(float)) != 0)
                    fail_msg("%s: %s with %d-token blocks differs from contiguous", name, paged[pi],
                             blocks[bi]);
                assert_memory_equal(tk[1], tk[2], (size_t)n * sizeof(int));
            }
        int distinct = 0;
        for (int i = 0; i < n; i++) distinct += i == 0 || tk[0][i] != tk[0][i - 1];
        print_message("%s: worst logits rel L2 nocache vs contiguous %.2g, %d token changes\n",
                      name, worst, distinct);
        /* f16 and bf16 caches run the same model; their logits stay close */
        for (int dt = KVB_DTYPE_F16; dt <= KVB_DTYPE_BF16; dt++) {
            kvb_options o = {.dtype = (kvb_dtype)dt, .alloc = KVB_ALLOC_GROW, .max_seqs = 1};
            generate(&m, ct, o, prompt, P, 1, tk[2], lg[2]);
            double e = kvbt_rel_l2_rows(lg[2], lg[0], 1, (size_t)V);
            assert_true(e < (dt == KVB_DTYPE_F16 ? 5e-3 : 3e-2));
        }
        for (int i = 0; i < 3; i++) { free(tk[i]); free(lg[i]); }
        kvb_model_free(&m);
    }
    if (!ran) skip();
}

/* An f32 matrix's values (the tests here build f32 models). */
static const float *f32_of(const kvb_wmat *w)
{
    assert_int_equal(w->type, KVB_WTYPE_F32);
    return w->data;
}

/* The whole decoder in float64, written from the Llama definition without any
 * of the model's code: logits of the last of T tokens. */
static void ref_model_logits(const kvb_model *m, const int *tok, int T, double *logits)
{
    const kvb_model_config *c = &m->cfg;
    const kvb_model_weights *w = &m->w;
    const float *emb = f32_of(&w->token_embedding), *cls = f32_of(&w->wcls);
    int d = c->dim, hd = c->head_dim, nh = c->n_heads, nkv = c->n_kv_heads, H = c->hidden_dim;
    int qd = nh * hd, kvd = nkv * hd;
    double *x = calloc((size_t)T * d, 8), *xn = calloc((size_t)T * d, 8);
    double *q = calloc((size_t)T * qd, 8), *k = calloc((size_t)T * kvd, 8),
           *v = calloc((size_t)T * kvd, 8);
    double *att = calloc((size_t)T * qd, 8), *h1 = calloc((size_t)H, 8), *h3 = calloc((size_t)H, 8);
    double *sc = calloc((size_t)T, 8);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < d; i++) x[t * d + i] = emb[(size_t)tok[t] * d + i];
    for (int l = 0; l < c->n_layers; l++) {
        const kvb_layer_weights *lw = &w->layer[l];
        const float *wq = f32_of(&lw->wq), *wk = f32_of(&lw->wk), *wv = f32_of(&lw->wv),
                    *wo = f32_of(&lw->wo), *w1 = f32_of(&lw->w1), *w2 = f32_of(&lw->w2),
                    *w3 = f32_of(&lw->w3);
        for (int t = 0; t < T; t++) {
            double ss = 0;
            for (int i = 0; i < d; i++) ss += x[t * d + i] * x[t * d + i];
            double r = 1.0 / sqrt(ss / d + 1e-5);
            for (int i = 0; i < d; i++)
                xn[t * d + i] = lw->rms_att[i] * x[t * d + i] * r;
            for (int o = 0; o < qd + 2 * kvd; o++) {
                const float *row = o < qd ? wq + (size_t)o * d
                                 : o < qd + kvd ? wk + (size_t)(o - qd) * d
                                                : wv + (size_t)(o - qd - kvd) * d;
                double acc = 0;
                for (int i = 0; i < d; i++) acc += row[i] * xn[t * d + i];
                if (o < qd) q[t * qd + o] = acc;
                else if (o < qd + kvd) k[t * kvd + o - qd] = acc;
                else v[t * kvd + o - qd - kvd] = acc;
            }
            for (int hh = 0; hh < nh + nkv; hh++)        /* rotate pairs (2j, 2j+1) */
                for (int j = 0; j < hd / 2; j++) {
                    double a = t * pow((double)c->rope_theta, -2.0 * j / hd);
                    double *p = hh < nh ? q + t * qd + hh * hd + 2 * j
                                        : k + t * kvd + (hh - nh) * hd + 2 * j;
                    double p0 = p[0], p1 = p[1];
                    p[0] = p0 * cos(a) - p1 * sin(a);
                    p[1] = p0 * sin(a) + p1 * cos(a);
                }
        }
        for (int t = 0; t < T; t++)
            for (int h = 0; h < nh; h++) {
                int j = h / (nh / nkv);
                double mx = -INFINITY, sum = 0;
                for (int u = 0; u <= t; u++) {
                    double dd = 0;
                    for (int i = 0; i < hd; i++)
                        dd += q[t * qd + h * hd + i] * k[u * kvd + j * hd + i];
                    sc[u] = dd / sqrt((double)hd);
                    mx = sc[u] > mx ? sc[u] : mx;
                }
                for (int u = 0; u <= t; u++) { sc[u] = exp(sc[u] - mx); sum += sc[u]; }
                for (int i = 0; i < hd; i++) {
                    double acc = 0;
                    for (int u = 0; u <= t; u++) acc += sc[u] * v[u * kvd + j * hd + i];
                    att[t * qd + h * hd + i] = acc / sum;
                }
            }
        for (int t = 0; t < T; t++) {
            for (int o = 0; o < d; o++) {
                double acc = 0;
                for (int i = 0; i < qd; i++)
                    acc += wo[(size_t)o * qd + i] * att[t * qd + i];
                x[t * d + o] += acc;
            }
            double ss = 0;
            for (int i = 0; i < d; i++) ss += x[t * d + i] * x[t * d + i];
            double r = 1.0 / sqrt(ss / d + 1e-5);
            for (int i = 0; i < d; i++)
                xn[t * d + i] = lw->rms_ffn[i] * x[t * d + i] * r;
            for (int o = 0; o < H; o++) {
                double a1 = 0, a3 = 0;
                for (int i = 0; i < d; i++) {
                    a1 += w1[(size_t)o * d + i] * xn[t * d + i];
                    a3 += w3[(size_t)o * d + i] * xn[t * d + i];
                }
                h1[o] = a1 / (1 + exp(-a1)) * a3;
            }
            for (int o = 0; o < d; o++) {
                double acc = 0;
                for (int i = 0; i < H; i++) acc += w2[(size_t)o * H + i] * h1[i];
                x[t * d + o] += acc;
            }
        }
    }
    double *xl = x + (size_t)(T - 1) * d, ss = 0;
    for (int i = 0; i < d; i++) ss += xl[i] * xl[i];
    double r = 1.0 / sqrt(ss / d + 1e-5);
    for (int o = 0; o < c->vocab_size; o++) {
        double acc = 0;
        for (int i = 0; i < d; i++) acc += cls[(size_t)o * d + i] * w->rms_final[i] * xl[i] * r;
        logits[o] = acc;
    }
    free(x); free(xn); free(q); free(k); free(v); free(att); free(h1); free(h3); free(sc);
}

/* Both decode paths against the float64 decoder, step by step. */
static void test_model_matches_float64_reference(void **state)
{
    (void)state;
    const struct { int heads, kv; } shapes[] = {{4, 4}, {4, 1}};
    for (size_t si = 0; si < 2; si++) {
        kvb_model_config cfg;
        kvb_model_preset("tiny", &cfg);
        cfg.n_heads = shapes[si].heads;
        cfg.n_kv_heads = shapes[si].kv;
        cfg.head_dim = cfg.dim / cfg.n_heads;
        cfg.rope_theta = 500.0f;                 /* large rotations within a few positions */
        kvb_model m;
        char msg[128];
        assert_int_equal(kvb_model_init_random(&m, &cfg, 9, KVB_WTYPE_F32, msg, sizeof msg),
                         KVB_STATUS_OK);
        const int P = 3, n = 6, V = cfg.vocab_size;
        int prompt[3] = {1, 77, 200}, toks[16];
        float *lg[2];
        const kvb_backend *bk[2] = {kvb_backend_find("nocache"), kvb_backend_find("contiguous")};
        kvb_options o = {.dtype = KVB_DTYPE_F32, .alloc = KVB_ALLOC_GROW, .max_seqs = 1};
        for (int b = 0; b < 2; b++) {
            lg[b] = malloc((size_t)n * V * sizeof(float));
            generate(&m, bk[b], o, prompt, P, n, toks + P + 1, lg[b]);
        }
        memcpy(toks, prompt, sizeof prompt);
        /* the token fed at each step is the one chosen before it */
        kvb_state st;
        assert_int_equal(kvb_state_init(&st, &cfg, 1), KVB_STATUS_OK);
        assert_int_equal(kvb_forward_seq(&m, &st, NULL, 0, toks, P, NULL), KVB_STATUS_OK);
        toks[P] = kvb_argmax(st.logits, V);
        kvb_state_free(&st);
        double *ref = malloc((size_t)V * sizeof *ref);
        for (int i = 0; i < n; i++) {
            ref_model_logits(&m, toks, P + i + 1, ref);
            for (int b = 0; b < 2; b++) {
                double e = kvbt_rel_l2(lg[b] + (size_t)i * V, ref, (size_t)V);
                if (!(e < 1e-4)) fail_msg("%s, heads %d/%d, step %d: rel L2 %.3g against float64",
                                          bk[b]->name, cfg.n_heads, cfg.n_kv_heads, i, e);
            }
        }
        free(ref); free(lg[0]); free(lg[1]);
        kvb_model_free(&m);
    }
}

/* ---- llama2.c checkpoints ------------------------------------------------ */

/* A checkpoint written by hand in llama2.c's order, each tensor filled with
 * id * 1000 + index, so every weight's position in the file is checked
 * independently of kvb_model_save. */
static void test_checkpoint_llama2c_layout(void **state)
{
    char path[512], msg[256];
    kvbt_tmp_path(state, "hand.bin", path, sizeof path);
    const int dim = 8, hidden = 12, L = 2, nh = 2, nkv = 1, vocab = 10, seq = 4, hd = dim / nh;
    int32_t hdr[7] = {dim, hidden, L, nh, nkv, -vocab, seq};    /* separate classifier */
    const size_t sizes[] = {(size_t)vocab * dim,
                            (size_t)L * dim,
                            (size_t)L * dim * nh * hd,
                            (size_t)L * dim * nkv * hd,
                            (size_t)L * dim * nkv * hd,
                            (size_t)L * nh * hd * dim,
                            (size_t)L * dim,
                            (size_t)L * dim * hidden,
                            (size_t)L * hidden * dim,
                            (size_t)L * dim * hidden,
                            (size_t)dim,
                            (size_t)seq * hd / 2,
                            (size_t)seq * hd / 2,
                            (size_t)vocab * dim};
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(hdr, sizeof hdr, 1, f);
    for (size_t id = 0; id < 14; id++)
        for (size_t i = 0; i < sizes[id]; i++) {
            float v = (float)(id * 1000 + i);
            fwrite(&v, 4, 1, f);
        }
    fclose(f);
    kvb_model m;
    kvb_status st = kvb_model_load(&m, path, 0, msg, sizeof msg);
    if (st != KVB_STATUS_OK) fail_msg("load: %s", msg);
    /* each kind's first value (layer 0) and last value (the last layer) */
    const kvb_layer_weights *l0 = &m.w.layer[0], *lL = &m.w.layer[L - 1];
    const float *first[] = {f32_of(&m.w.token_embedding), l0->rms_att, f32_of(&l0->wq),
                            f32_of(&l0->wk), f32_of(&l0->wv), f32_of(&l0->wo), l0->rms_ffn,
                            f32_of(&l0->w1), f32_of(&l0->w2), f32_of(&l0->w3), m.w.rms_final};
    const float *last[] = {f32_of(&m.w.token_embedding), lL->rms_att, f32_of(&lL->wq),
                           f32_of(&lL->wk), f32_of(&lL->wv), f32_of(&lL->wo), lL->rms_ffn,
                           f32_of(&lL->w1), f32_of(&lL->w2), f32_of(&lL->w3), m.w.rms_final};
    for (size_t id = 0; id < 11; id++) {
        size_t per = id == 0 || id == 10 ? sizes[id] : sizes[id] / L;   /* one layer's */
        assert_true(first[id][0] == (float)(id * 1000));
        assert_true(last[id][per - 1] == (float)(id * 1000 + sizes[id] - 1));
    }
    const float *cls = f32_of(&m.w.wcls);
    assert_true(cls[0] == 13000.0f && cls[sizes[13] - 1] == (float)(13000 + sizes[13] - 1));
    assert_int_equal(m.cfg.head_dim, hd);
    assert_int_equal(m.cfg.n_kv_heads, nkv);
    assert_int_equal(m.cfg.max_seq, seq);
    assert_int_equal(m.cfg.shared_classifier, 0);
    kvb_model_free(&m);
    assert_int_equal(kvb_model_load(&m, kvbt_tmpdir(state), 0, msg, sizeof msg), KVB_STATUS_IO);
    assert_non_null(strstr(msg, "not a regular file"));
    remove(path);
}

/* Two models' weights hold the same bytes, tensor by tensor. */
static int same_weights(const kvb_model *a, const kvb_model *b)
{
    const kvb_model_config *c = &a->cfg;
    int d = c->dim;
    const kvb_wmat *ma[] = {&a->w.token_embedding, &a->w.wcls}, *mb[] = {&b->w.token_embedding,
                                                                        &b->w.wcls};
    for (int i = 0; i < 2; i++)
        if (ma[i]->type != mb[i]->type || memcmp(ma[i]->data, mb[i]->data, (size_t)ma[i]->rows *
                   kvb_wtype_row_bytes(ma[i]->type, ma[i]->cols)) != 0)
            return 0;
    if (memcmp(a->w.rms_final, b->w.rms_final, (size_t)d * 4)) return 0;
    for (int l = 0; l < c->n_layers; l++) {
        const kvb_layer_weights *la = &a->w.layer[l], *lb = &b->w.layer[l];
        const kvb_wmat *xa[] = {&la->wq, &la->wk, &la->wv, &la->wo, &la->w1, &la->w2, &la->w3},
                       *xb[] = {&lb->wq, &lb->wk, &lb->wv, &lb->wo, &lb->w1, &lb->w2, &lb->w3};
        for (int i = 0; i < 7; i++)
            if (xa[i]->type != xb[i]->type || xa[i]->rows != xb[i]->rows ||
                memcmp(xa[i]->data, xb[i]->data, (size_t)xa[i]->rows *
                       kvb_wtype_row_bytes(xa[i]->type, xa[i]->cols)) != 0)
                return 0;
        if (memcmp(la->rms_att, lb->rms_att, (size_t)d * 4) ||
            memcmp(la->rms_ffn, lb->rms_ffn, (size_t)d * 4))
            return 0;
    }
    return 1;
}

static void test_checkpoint_roundtrip_and_refusals(void **state)
{
    char path[512], bad[512], msg[512];
    kvbt_tmp_path(state, "tiny.bin", path, sizeof path);
    kvbt_tmp_path(state, "bad.bin", bad, sizeof bad);
    for (int shared = 0; shared <= 1; shared++) {
        kvb_model_config cfg;
        kvb_model_preset("tiny", &cfg);
        cfg.shared_classifier = shared;
        kvb_model m, l;
        assert_int_equal(kvb_model_init_random(&m, &cfg, 5, KVB_WTYPE_F32, msg, sizeof msg),
                         KVB_STATUS_OK);
        remove(path);
        assert_int_equal(kvb_model_save(&m, path, msg, sizeof msg), KVB_STATUS_OK);
        /* an existing file is never replaced (it may be someone's real checkpoint) */
        assert_int_equal(kvb_model_save(&m, path, msg, sizeof msg), KVB_STATUS_INVALID_ARG);
        assert_non_null(strstr(msg, "exists"));
        kvb_status st = kvb_model_load(&l, path, 0, msg, sizeof msg);
        if (st != KVB_STATUS_OK) fail_msg("load: %s", msg);
        assert_true(l.weight_bytes == m.weight_bytes);
        assert_true(same_weights(&l, &m));
        assert_int_equal(l.cfg.shared_classifier, shared);
        assert_int_equal(l.cfg.n_kv_heads, cfg.n_kv_heads);
        assert_int_equal(l.cfg.max_seq, cfg.max_seq);
        assert_true(shared ? l.w.wcls.data == l.w.token_embedding.data
                           : l.w.wcls.data != l.w.token_embedding.data);
        kvb_model_free(&l);

        /* the file is exactly the size the header implies: header + weights + RoPE tables */
        size_t n;
        unsigned char *bytes = kvbt_read_file(path, &n);
        size_t expect = 28 + 4 * (kvb_model_param_count(&cfg) + (size_t)cfg.max_seq * cfg.head_dim);
        assert_int_equal(n, expect);
        const size_t cuts[] = {n - 1, n - 4, n / 2, 28, 27, 10, 0};
        for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
            kvbt_write_file(bad, bytes, cuts[i]);
            assert_int_equal(kvb_model_load(&l, bad, 0, msg, sizeof msg), KVB_STATUS_FORMAT);
            assert_non_null(strstr(msg, bad));
        }
        unsigned char *longer = calloc(1, n + 8);
        memcpy(longer, bytes, n);
        kvbt_write_file(bad, longer, n + 8);
        assert_int_equal(kvb_model_load(&l, bad, 0, msg, sizeof msg), KVB_STATUS_FORMAT);
        assert_non_null(strstr(msg, "trailing"));
        free(longer);
        /* inconsistent headers: each field broken in turn */
        const struct { int field; int32_t value; } breaks[] = {
            {0, 0}, {0, -64}, {0, 63}, {1, 0}, {2, -1}, {3, 0}, {4, 3}, {4, 0}, {6, 0}, {5, 0}};
        for (size_t i = 0; i < sizeof breaks / sizeof breaks[0]; i++) {
            unsigned char *cp = malloc(n);
            memcpy(cp, bytes, n);
            memcpy(cp + 4 * breaks[i].field, &breaks[i].value, 4);
            kvbt_write_file(bad, cp, n);
            kvb_status s2 = kvb_model_load(&l, bad, 0, msg, sizeof msg);
            if (s2 != KVB_STATUS_FORMAT)
                fail_msg("header field %d = %d accepted", breaks[i].field, breaks[i].value);
            free(cp);
        }
        /* a non-finite weight is refused */
        unsigned char *cp = malloc(n);
        memcpy(cp, bytes, n);
        float inf = INFINITY;
        memcpy(cp + 28 + 4 * 10, &inf, 4);
        kvbt_write_file(bad, cp, n);
        assert_int_equal(kvb_model_load(&l, bad, 0, msg, sizeof msg), KVB_STATUS_FORMAT);
        free(cp);
        free(bytes);
        kvb_model_free(&m);
    }
    assert_int_equal(kvb_model_load(&(kvb_model){0}, "/nonexistent/x.bin", 0, msg, sizeof msg),
                     KVB_STATUS_IO);
    assert_non_null(strstr(msg, "/nonexistent/x.bin"));
    remove(path);
    remove(bad);
}

/* ---- seeded weights -------------------------------------------------------- */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) { h ^= b[i]; h *= 0x100000001b3ull; }
    return h;
}

static uint64_t hash_mat(uint64_t h, const kvb_wmat *w)
{
    return fnv1a(h, w->data, (size_t)w->rows * kvb_wtype_row_bytes(w->type, w->cols));
}

/* Every weight's bytes in llama2.c's file order (each kind over all layers). */
static uint64_t model_hash(const kvb_model *m)
{
    const kvb_model_config *c = &m->cfg;
    uint64_t h = hash_mat(0xcbf29ce484222325ull, &m->w.token_embedding);
    for (int k = 0; k < 9; k++)
        for (int l = 0; l < c->n_layers; l++) {
            const kvb_layer_weights *w = &m->w.layer[l];
            const kvb_wmat *mats[9] = {NULL, &w->wq, &w->wk, &w->wv, &w->wo, NULL,
                                       &w->w1, &w->w2, &w->w3};
            if (k == 0) h = fnv1a(h, w->rms_att, (size_t)c->dim * 4);
            else if (k == 5) h = fnv1a(h, w->rms_ffn, (size_t)c->dim * 4);
            else h = hash_mat(h, mats[k]);
        }
    h = fnv1a(h, m->w.rms_final, (size_t)c->dim * 4);
    return c->shared_classifier ? h : hash_mat(h, &m->w.wcls);
}

/* Seeded f32 weights are the bytes the code before typed weights drew (the
 * hashes were computed by that code, over its one f32 array): runs, baselines
 * and exported files made before stay valid. */
static void test_init_random_f32_unchanged(void **state)
{
    (void)state;
    kvb_model_config cfg[2];
    kvb_model_preset("tiny", &cfg[0]);
    cfg[1] = (kvb_model_config){.dim = 64, .hidden_dim = 96, .n_layers = 3, .n_heads = 4,
                                .n_kv_heads = 1, .head_dim = 16, .vocab_size = 40, .max_seq = 32,
                                .rope_theta = 10000.0f, .shared_classifier = 1};
    const uint64_t seed[2] = {42, 7}, want[2] = {0x901580f777385b01ull, 0xe7c709050325542eull};
    for (int i = 0; i < 2; i++) {
        kvb_model m;
        char msg[256];
        assert_int_equal(kvb_model_init_random(&m, &cfg[i], seed[i], KVB_WTYPE_F32, msg,
                                               sizeof msg), KVB_STATUS_OK);
        uint64_t got = model_hash(&m);
        if (got != want[i]) fail_msg("shape %d seed %llu: hash %016llx, before %016llx", i,
                                     (unsigned long long)seed[i], (unsigned long long)got,
                                     (unsigned long long)want[i]);
        assert_true(m.weight_bytes == 4 * (uint64_t)kvb_model_param_count(&cfg[i]));
        assert_true(m.weight_bytes == kvb_model_weight_bytes(&cfg[i], KVB_WTYPE_F32));
        kvb_model_free(&m);
    }
}

int main(int argc, char **argv)
{
    static const kvbt_test all[] = {
        {"model_nocache_equals_contiguous", test_model_nocache_equals_contiguous, 1},
        {"model_matches_float64_reference", test_model_matches_float64_reference, 0},
        {"checkpoint_llama2c_layout", test_checkpoint_llama2c_layout, 0},
        {"checkpoint_roundtrip_and_refusals", test_checkpoint_roundtrip_and_refusals, 0},
        {"init_random_f32_unchanged", test_init_random_f32_unchanged, 0},
    };
    return kvbt_main(argc, argv, "model", all, KVBT_COUNT(all));
}
