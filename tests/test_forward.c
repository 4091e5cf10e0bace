/* test_forward.c: the decoder's forward passes over typed weights (cmocka).
 *
 * A float64 decoder written here from the Llama definition (RMSNorm with the
 * config's eps, RoPE in either layout with Llama 3.1's frequency scaling, GQA
 * softmax attention, SwiGLU), over the model's weights dequantized, is the
 * reference for kvb_forward_token, kvb_forward_seq and kvb_forward_seq_cached
 * on MHA, GQA and MQA shapes; the wrong RoPE layout is shown to miss it. f16,
 * bf16 and q8_0 models match their dequantized f32 twin and stay near the f32
 * model of the same seed; 1 and 2 matvec threads agree bit for bit; the cached
 * sequence pass equals step-by-step decoding; GGUF export writes each matrix
 * in its stored type; kvb_model_finish and the writers refuse what they
 * cannot hold.
 * Usage: test_forward [REGEX] (or KVB_TEST_FILTER=REGEX): see testlib.h. */

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
#include "../model/gguf.h"
#include "../impls/kvb_backend.h"
#include "testlib.h"
#include "model_fixture.h"

/* f32 forward against float64: what f32 arithmetic over a small model reaches */
#define TOL_F32 1e-4

/* ---- the float64 reference ---------------------------------------------- */

/* w's values in double: [rows][cols] */
static double *deq(const kvb_wmat *w)
{
    size_t rb = kvb_wtype_row_bytes(w->type, w->cols);
    double *out = malloc((size_t)w->rows * w->cols * sizeof *out);
    float *row = malloc((size_t)w->cols * sizeof *row);
    assert_non_null(out);
    assert_non_null(row);
    for (int r = 0; r < w->rows; r++) {
        kvb_wrow_to_f32(w->type, (const char *)w->data + (size_t)r * rb, row, w->cols);
        for (int i = 0; i < w->cols; i++) out[(size_t)r * w->cols + i] = row[i];
    }
    free(row);
    return out;
}

/* Pair i's RoPE frequency, from the config alone (Llama 3.1's rule for LLAMA3). */
static double ref_freq(const kvb_model_config *c, int i)
{
    double f = 1.0 / pow((double)c->rope_theta, 2.0 * i / c->head_dim);
    if (c->rope_scaling == KVB_ROPE_SCALING_LINEAR) f /= c->rope_factor;
    if (c->rope_scaling == KVB_ROPE_SCALING_LLAMA3) {
        double wl = 2 * 3.14159265358979323846 / f, ctx = c->rope_orig_ctx;
        double lo = c->rope_low_freq, hi = c->rope_high_freq;
        if (wl > ctx / lo) {
            f /= c->rope_factor;
        } else if (wl >= ctx / hi) {
            double s = (ctx / wl - lo) / (hi - lo);
            f = (1 - s) * f / c->rope_factor + s * f;
        }
    }
    return f;
}

/* x[n] <- w * x / rms(x) */
static void ref_norm(double *out, const double *x, const float *w, int n, double eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) out[i] = w[i] * x[i] * r;
}

/* y[rows] = W x */
static void ref_mv(double *y, const double *W, const double *x, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        double acc = 0;
        for (int i = 0; i < cols; i++) acc += W[(size_t)r * cols + i] * x[i];
        y[r] = acc;
    }
}

static void ref_rope(double *v, int heads, int hd, int pos, const kvb_model_config *c, int layout)
{
    for (int h = 0; h < heads; h++)
        for (int i = 0; i < hd / 2; i++) {
            double a = pos * ref_freq(c, i), cs = cos(a), sn = sin(a);
            int j0 = layout == KVB_ROPE_LAYOUT_HALF ? i : 2 * i;
            int j1 = layout == KVB_ROPE_LAYOUT_HALF ? i + hd / 2 : 2 * i + 1;
            double *p = v + (size_t)h * hd;
            double x0 = p[j0], x1 = p[j1];
            p[j0] = x0 * cs - x1 * sn;
            p[j1] = x0 * sn + x1 * cs;
        }
}

/* Logits of every position of tok[0..T) (positions 0..T-1): out[T][vocab].
 * layout: the RoPE layout to apply (the model's, or a planted wrong one). */
static void ref_logits(const kvb_model *m, int layout, const int *tok, int T, double *out)
{
    const kvb_model_config *c = &m->cfg;
    const int d = c->dim, hd = c->head_dim, nh = c->n_heads, nkv = c->n_kv_heads,
              H = c->hidden_dim, qd = nh * hd, kvd = nkv * hd, V = c->vocab_size;
    const double eps = c->norm_eps > 0 ? c->norm_eps : 1e-5;
    double *x = calloc((size_t)T * d, 8), *xn = calloc((size_t)d, 8);
    double *q = calloc((size_t)T * qd, 8), *k = calloc((size_t)T * kvd, 8);
    double *v = calloc((size_t)T * kvd, 8), *att = calloc((size_t)qd, 8);
    double *h1 = calloc((size_t)H, 8), *h3 = calloc((size_t)H, 8), *o = calloc((size_t)d, 8);
    double *sc = calloc((size_t)T, 8);
    double *emb = deq(&m->w.token_embedding), *cls = deq(&m->w.wcls);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < d; i++) x[(size_t)t * d + i] = emb[(size_t)tok[t] * d + i];
    for (int l = 0; l < c->n_layers; l++) {
        const kvb_layer_weights *lw = &m->w.layer[l];
        double *wq = deq(&lw->wq), *wk = deq(&lw->wk), *wv = deq(&lw->wv), *wo = deq(&lw->wo),
               *w1 = deq(&lw->w1), *w2 = deq(&lw->w2), *w3 = deq(&lw->w3);
        for (int t = 0; t < T; t++) {
            ref_norm(xn, x + (size_t)t * d, lw->rms_att, d, eps);
            ref_mv(q + (size_t)t * qd, wq, xn, qd, d);
            ref_mv(k + (size_t)t * kvd, wk, xn, kvd, d);
            ref_mv(v + (size_t)t * kvd, wv, xn, kvd, d);
            ref_rope(q + (size_t)t * qd, nh, hd, t, c, layout);
            ref_rope(k + (size_t)t * kvd, nkv, hd, t, c, layout);
        }
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < nh; h++) {
                int g = h / (nh / nkv);
                double mx = -INFINITY, sum = 0;
                for (int u = 0; u <= t; u++) {
                    double dd = 0;
                    for (int i = 0; i < hd; i++)
                        dd += q[(size_t)t * qd + h * hd + i] * k[(size_t)u * kvd + g * hd + i];
                    sc[u] = dd / sqrt((double)hd);
                    mx = sc[u] > mx ? sc[u] : mx;
                }
                for (int u = 0; u <= t; u++) { sc[u] = exp(sc[u] - mx); sum += sc[u]; }
                for (int i = 0; i < hd; i++) {
                    double acc = 0;
                    for (int u = 0; u <= t; u++) acc += sc[u] * v[(size_t)u * kvd + g * hd + i];
                    att[h * hd + i] = acc / sum;
                }
            }
            double *xt = x + (size_t)t * d;
            ref_mv(o, wo, att, d, qd);
            for (int i = 0; i < d; i++) xt[i] += o[i];
            ref_norm(xn, xt, lw->rms_ffn, d, eps);
            ref_mv(h1, w1, xn, H, d);
            ref_mv(h3, w3, xn, H, d);
            for (int i = 0; i < H; i++) h1[i] = h1[i] / (1 + exp(-h1[i])) * h3[i];
            ref_mv(o, w2, h1, d, H);
            for (int i = 0; i < d; i++) xt[i] += o[i];
        }
        free(wq); free(wk); free(wv); free(wo); free(w1); free(w2); free(w3);
    }
    for (int t = 0; t < T; t++) {
        ref_norm(xn, x + (size_t)t * d, m->w.rms_final, d, eps);
        ref_mv(out + (size_t)t * V, cls, xn, V, d);
    }
    free(x); free(xn); free(q); free(k); free(v); free(att); free(h1); free(h3); free(o);
    free(sc); free(emb); free(cls);
}

/* ---- helpers ------------------------------------------------------------- */

/* worst over positions [t0, t1) of rel L2 of got[t] against ref[t] */
static double worst_vs_ref(const float *got, const double *ref, int t0, int t1, int V)
{
    double w = 0;
    for (int t = t0; t < t1; t++) {
        double e = kvbt_rel_l2(got + (size_t)t * V, ref + (size_t)t * V, (size_t)V);
        w = e > w ? e : w;
    }
    return w;
}

/* ---- the passes against float64 ----------------------------------------- */

/* Every pass of an f32 model against the reference: the no-cache sequence pass,
 * prefill then decode steps, and the cached sequence pass in two chunks. */
static double passes_vs_ref(const kvb_model *m, kvb_state *s, const int *tok, int T,
                            const double *ref)
{
    const int V = m->cfg.vocab_size, P = 4, C = 5;
    float *lg = malloc((size_t)T * V * sizeof *lg);
    double worst = 0, e;
    assert_int_equal(kvb_forward_seq(m, s, NULL, 0, tok, T, NULL), KVB_STATUS_OK);
    e = kvbt_rel_l2(s->logits, ref + (size_t)(T - 1) * V, (size_t)V);
    worst = e > worst ? e : worst;
    kvb_cache *c = kvbt_model_cache(m, "contiguous", KVB_DTYPE_F32);
    assert_int_equal(kvb_forward_seq(m, s, c, 0, tok, P, NULL), KVB_STATUS_OK);   /* prefill */
    e = kvbt_rel_l2(s->logits, ref + (size_t)(P - 1) * V, (size_t)V);
    worst = e > worst ? e : worst;
    for (int t = P; t < T; t++) {
        assert_int_equal(kvb_forward_token(m, s, c, 0, tok[t], t, NULL), KVB_STATUS_OK);
        memcpy(lg + (size_t)t * V, s->logits, (size_t)V * sizeof *lg);
    }
    e = worst_vs_ref(lg, ref, P, T, V);
    worst = e > worst ? e : worst;
    kvb_cache_destroy(c);
    c = kvbt_model_cache(m, "contiguous", KVB_DTYPE_F32);
    assert_int_equal(kvb_forward_seq_cached(m, s, c, 0, tok, C, 0, lg, NULL), KVB_STATUS_OK);
    assert_int_equal(kvb_forward_seq_cached(m, s, c, 0, tok + C, T - C, C, lg + (size_t)C * V,
                                            NULL), KVB_STATUS_OK);
    assert_int_equal(kvb_cache_length(c, 0, m->cfg.n_layers - 1), T);
    e = worst_vs_ref(lg, ref, 0, T, V);
    worst = e > worst ? e : worst;
    kvb_cache_destroy(c);
    free(lg);
    return worst;
}

static void test_forward_matches_float64(void **state)
{
    const struct { const char *name; int heads, kv; } shapes[] = {
        {"mha", 4, 4}, {"gqa", 4, 2}, {"mqa", 4, 1}};
    const char *layouts[] = {"interleaved", "half"};
    const char *scalings[] = {"none", "linear", "llama3"};
    const int T = 12;
    int ran = 0;
    for (int si = 0; si < 3; si++)
        for (int lay = 0; lay < 2; lay++)
            for (int sc = 0; sc < 3; sc++) {
                /* every shape and layout with llama3 scaling; the other scalings on mha */
                if (sc != KVB_ROPE_SCALING_LLAMA3 && si != 0) continue;
                char name[128];
                if (!kvbt_case(state, name, sizeof name, "forward(%s,%s,scaling=%s)",
                               shapes[si].name, layouts[lay], scalings[sc]))
                    continue;
                ran++;
                kvb_model_config c = kvbt_tiny_shape(shapes[si].heads, shapes[si].kv, lay);
                c.rope_scaling = sc;
                kvb_model m = kvbt_tiny_model(&c, 11 + (uint64_t)si, KVB_WTYPE_F32);
                kvb_state s;
                assert_int_equal(kvb_state_init(&s, &c, 1), KVB_STATUS_OK);
                int tok[12];
                kvbt_seeded_tokens(tok, T, c.vocab_size, 3 + (uint64_t)si);
                double *ref = malloc((size_t)T * c.vocab_size * sizeof *ref);
                ref_logits(&m, lay, tok, T, ref);
                double worst = passes_vs_ref(&m, &s, tok, T, ref);
                print_message("%s: worst rel L2 against float64 %.2g\n", name, worst);
                if (!(worst < TOL_F32)) fail_msg("%s: rel L2 %.3g against float64", name, worst);
                for (int i = 0; i < c.head_dim / 2; i++)     /* the model's own frequencies */
                    assert_true(fabs(m.rope_freq[i] - ref_freq(&c, i)) <=
                                1e-6 * ref_freq(&c, i));
                free(ref);
                kvb_state_free(&s);
                kvb_model_free(&m);
            }
    if (!ran) skip();
}

/* The layout matters: the reference in the other layout is far off, while the
 * right one matches (so the comparison can tell them apart). */
static void test_forward_wrong_rope_layout_fails(void **state)
{
    (void)state;
    const int T = 10;
    for (int lay = 0; lay < 2; lay++) {
        kvb_model_config c = kvbt_tiny_shape(4, 2, lay);
        kvb_model m = kvbt_tiny_model(&c, 21, KVB_WTYPE_F32);
        kvb_state s;
        assert_int_equal(kvb_state_init(&s, &c, 1), KVB_STATUS_OK);
        int tok[10];
        kvbt_seeded_tokens(tok, T, c.vocab_size, 8);
        double *right = malloc((size_t)T * c.vocab_size * sizeof *right);
        double *wrong = malloc((size_t)T * c.vocab_size * sizeof *wrong);
        ref_logits(&m, lay, tok, T, right);
        ref_logits(&m, !lay, tok, T, wrong);
        float *lg = malloc((size_t)T * c.vocab_size * sizeof *lg);
        kvbt_decode_steps(&m, &s, tok, T, lg);
        double ok = worst_vs_ref(lg, right, 0, T, c.vocab_size);
        /* position 0 rotates nothing: the layouts differ from position 1 on */
        double off = 0;
        for (int t = 1; t < T; t++)
            off += kvbt_rel_l2(lg + (size_t)t * c.vocab_size, wrong + (size_t)t * c.vocab_size,
                               (size_t)c.vocab_size) / (T - 1);
        print_message("model %s: right layout rel L2 %.2g, wrong layout mean %.2g\n",
                      lay ? "half" : "interleaved", ok, off);
        assert_true(ok < TOL_F32);
        assert_true(off > 0.05);
        free(right); free(wrong); free(lg);
        kvb_state_free(&s);
        kvb_model_free(&m);
    }
}

/* ---- stored weight types ------------------------------------------------- */

/* An f32 model holding typed's weights dequantized: the same function as typed,
 * evaluated by the f32 kernels. */
static kvb_model f32_twin(const kvb_model *typed, uint64_t seed)
{
    kvb_model f = kvbt_tiny_model(&typed->cfg, seed, KVB_WTYPE_F32);
    const kvb_model_weights *a = &typed->w;
    kvb_model_weights *b = &f.w;
    const kvb_wmat *src[2 + 7 * 8], *dst[2 + 7 * 8];
    int n = 0;
    src[n] = &a->token_embedding; dst[n++] = &b->token_embedding;
    src[n] = &a->wcls; dst[n++] = &b->wcls;
    assert_true(typed->cfg.n_layers <= 8);
    for (int l = 0; l < typed->cfg.n_layers; l++) {
        const kvb_layer_weights *x = &a->layer[l], *y = &b->layer[l];
        const kvb_wmat *xs[7] = {&x->wq, &x->wk, &x->wv, &x->wo, &x->w1, &x->w2, &x->w3};
        const kvb_wmat *ys[7] = {&y->wq, &y->wk, &y->wv, &y->wo, &y->w1, &y->w2, &y->w3};
        for (int i = 0; i < 7; i++) { src[n] = xs[i]; dst[n++] = ys[i]; }
    }
    for (int i = 0; i < n; i++) {
        /* f's own memory: writable */
        float *out = (float *)((char *)f.mem + ((const char *)dst[i]->data - (char *)f.mem));
        size_t rb = kvb_wtype_row_bytes(src[i]->type, src[i]->cols);
        assert_int_equal(dst[i]->type, KVB_WTYPE_F32);
        for (int r = 0; r < src[i]->rows; r++)
            kvb_wrow_to_f32(src[i]->type, (const char *)src[i]->data + (size_t)r * rb,
                            out + (size_t)r * src[i]->cols, src[i]->cols);
    }
    return f;
}

/* Greedy decode of n tokens after a prompt, threads matvec threads: tokens
 * and every step's logits. */
static void greedy(const kvb_model *m, int threads, const int *prompt, int P, int n, int *tok,
                   float *logits)
{
    kvb_state s;
    assert_int_equal(kvb_state_init(&s, &m->cfg, threads), KVB_STATUS_OK);
    assert_true(threads == 1 ? s.pool == NULL : s.pool != NULL);
    kvb_cache *c = kvbt_model_cache(m, "contiguous", KVB_DTYPE_F32);
    const int V = m->cfg.vocab_size;
    memcpy(tok, prompt, (size_t)P * sizeof *tok);
    assert_int_equal(kvb_forward_seq(m, &s, c, 0, tok, P, NULL), KVB_STATUS_OK);
    tok[P] = kvb_argmax(s.logits, V);
    for (int i = 0; i < n; i++) {
        assert_int_equal(kvb_forward_token(m, &s, c, 0, tok[P + i], P + i, NULL), KVB_STATUS_OK);
        memcpy(logits + (size_t)i * V, s.logits, (size_t)V * sizeof *logits);
        tok[P + i + 1] = kvb_argmax(s.logits, V);
    }
    kvb_cache_destroy(c);
    kvb_state_free(&s);
}

/* What rounding the weights to each type does to the logits of this model
 * (rel L2 against the f32 model of the same seed): bounds 2 to 4 times what
 * was measured (f16 5.8e-4, bf16 4.9e-3, q8_0 1.1e-2, q4_0 0.18, q4_k 0.16,
 * q6_k 3.9e-2 when this was written; the k types on the 256-wide shape), and
 * a floor about a tenth of it that shows the rounding happened. */
static const struct { kvb_wtype t; double lo, hi; } wcases[] = {
    {KVB_WTYPE_F16, 5e-5, 2e-3}, {KVB_WTYPE_BF16, 5e-4, 2e-2}, {KVB_WTYPE_Q8_0, 1e-3, 4e-2},
    {KVB_WTYPE_Q4_0, 2e-2, 0.5}, {KVB_WTYPE_Q4_K, 2e-2, 0.45}, {KVB_WTYPE_Q6_K, 4e-3, 0.12}};

static void test_forward_typed_weights(void **state)
{
    const int P = 4, n = 12, N = P + n + 1;
    int prompt[4] = {5, 17, 230, 99};
    int ran = 0;
    for (size_t wi = 0; wi < sizeof wcases / sizeof wcases[0]; wi++) {
        char name[96];
        if (!kvbt_case(state, name, sizeof name, "typed(%s)", kvb_wtype_name(wcases[wi].t)))
            continue;
        ran++;
        kvb_model_config c = kvbt_shape_for(kvbt_tiny_shape(4, 2, KVB_ROPE_LAYOUT_HALF),
                                            wcases[wi].t);
        const int V = c.vocab_size;
        kvb_model mt = kvbt_tiny_model(&c, 5, wcases[wi].t);
        kvb_model mf = kvbt_tiny_model(&c, 5, KVB_WTYPE_F32);
        kvb_model twin = f32_twin(&mt, 5);
        assert_true(mt.weight_bytes == kvb_model_weight_bytes(&c, wcases[wi].t));
        assert_true(mt.weight_bytes < mf.weight_bytes);
        int tt[17], tt2[17], tw[17];
        float *lt = malloc((size_t)n * V * 4), *lt2 = malloc((size_t)n * V * 4);
        float *lf = malloc((size_t)(N - 1) * V * 4), *lw = malloc((size_t)n * V * 4);
        greedy(&mt, 1, prompt, P, n, tt, lt);
        greedy(&mt, 2, prompt, P, n, tt2, lt2);
        greedy(&twin, 1, prompt, P, n, tw, lw);
        /* rows split over threads are each computed as by one thread */
        assert_memory_equal(tt, tt2, sizeof tt);
        assert_memory_equal(lt, lt2, (size_t)n * V * 4);
        /* the f32 model of the same seed, fed the typed model's tokens */
        kvb_state s;
        assert_int_equal(kvb_state_init(&s, &c, 1), KVB_STATUS_OK);
        kvbt_decode_steps(&mf, &s, tt, N - 1, lf);
        double twin_e = kvbt_rel_l2_rows(lt, lw, n, (size_t)V),
               round_e = kvbt_rel_l2_rows(lt, lf + (size_t)P * V, n, (size_t)V);
        /* and the float64 reference over the dequantized weights, every pass */
        double *ref = malloc((size_t)(N - 1) * V * sizeof *ref);
        ref_logits(&mt, c.rope_layout, tt, N - 1, ref);
        double ref_e = passes_vs_ref(&mt, &s, tt, N - 1, ref);
        print_message("%s: twin rel L2 %.2g, float64 %.2g, vs the f32 model %.2g (bound %g)\n",
                      name, twin_e, ref_e, round_e, wcases[wi].hi);
        assert_true(twin_e < 1e-5);
        assert_memory_equal(tt, tw, sizeof tt);
        if (!(ref_e < TOL_F32)) fail_msg("%s: rel L2 %.3g against float64", name, ref_e);
        if (!(round_e > wcases[wi].lo && round_e < wcases[wi].hi))
            fail_msg("%s: rel L2 %.3g against the f32 model, outside (%g, %g)", name, round_e,
                     wcases[wi].lo, wcases[wi].hi);
        free(ref); free(lt); free(lt2); free(lf); free(lw);
        kvb_state_free(&s);
        kvb_model_free(&twin); kvb_model_free(&mt); kvb_model_free(&mf);
    }
    if (!ran) skip();
}

/* ---- the cached sequence pass --------------------------------------------- */

static void test_forward_seq_cached(void **state)
{
    (void)state;
    kvb_model_config c = kvbt_tiny_shape(4, 1, KVB_ROPE_LAYOUT_INTERLEAVED);
    const int T = 16, V = c.vocab_size;
    kvb_model m = kvbt_tiny_model(&c, 31, KVB_WTYPE_F32);
    kvb_state s;
    assert_int_equal(kvb_state_init(&s, &c, 1), KVB_STATUS_OK);
    int tok[16];
    kvbt_seeded_tokens(tok, T, V, 4);
    float *step = malloc((size_t)T * V * 4), *seq = malloc((size_t)T * V * 4);
    kvbt_decode_steps(&m, &s, tok, T, step);
    /* through an f32 cache: the same attention, sgemm instead of matvec */
    kvb_cache *cc = kvbt_model_cache(&m, "contiguous", KVB_DTYPE_F32);
    assert_int_equal(kvb_forward_seq_cached(&m, &s, cc, 0, tok, T, 0, seq, NULL), KVB_STATUS_OK);
    double e = kvbt_rel_l2_rows(seq, step, T, (size_t)V);
    /* without logits: the last position's in s.logits */
    kvb_cache_destroy(cc);
    cc = kvbt_model_cache(&m, "contiguous", KVB_DTYPE_F32);
    assert_int_equal(kvb_forward_seq_cached(&m, &s, cc, 0, tok, T, 0, NULL, NULL), KVB_STATUS_OK);
    assert_true(kvbt_rel_l2_rows(s.logits, step + (size_t)(T - 1) * V, 1, (size_t)V) < 1e-5);
    /* argument checks: the cache must hold exactly pos0 tokens; T + pos0 <= max_seq */
    assert_int_equal(kvb_forward_seq_cached(&m, &s, cc, 0, tok, 2, T - 1, NULL, NULL),
                     KVB_STATUS_INVALID_ARG);
    assert_int_equal(kvb_forward_seq_cached(&m, &s, cc, 0, tok, c.max_seq - T + 1, T, NULL,
                                            NULL), KVB_STATUS_INVALID_ARG);
    kvb_cache *nc = kvbt_model_cache(&m, "nocache", KVB_DTYPE_F32);
    assert_int_equal(kvb_forward_seq_cached(&m, &s, nc, 0, tok, T, 0, NULL, NULL),
                     KVB_STATUS_UNSUPPORTED);
    kvb_cache_destroy(nc);
    kvb_cache_destroy(cc);
    /* through a q8 cache: its rounding reaches every position, a little */
    kvb_cache *qc = kvbt_model_cache(&m, "quant", KVB_DTYPE_Q8);
    assert_int_equal(kvb_forward_seq_cached(&m, &s, qc, 0, tok, T, 0, seq, NULL), KVB_STATUS_OK);
    double q = kvbt_rel_l2_rows(seq, step, T, (size_t)V);
    kvb_cache_destroy(qc);
    print_message("cached pass vs steps: f32 cache %.2g, q8 cache %.2g\n", e, q);
    assert_true(e < 1e-5);
    assert_true(q > 1e-5 && q < 2e-2);
    free(step); free(seq);
    kvb_state_free(&s);
    kvb_model_free(&m);
}

/* ---- finishing and refusals ---------------------------------------------- */

static int released;
static void count_release(void *map) { (void)map; released++; }

static void test_model_finish_and_refusals(void **state)
{
    char msg[512], path[1024];
    kvb_model_config c = kvbt_tiny_shape(4, 2, KVB_ROPE_LAYOUT_INTERLEAVED);
    kvb_model m = kvbt_tiny_model(&c, 2, KVB_WTYPE_BF16), b;
    /* a loader's model: weights borrowed, released through map_release once */
    memset(&b, 0, sizeof b);
    b.cfg = c;
    b.w = m.w;
    b.w.layer = malloc((size_t)c.n_layers * sizeof *b.w.layer);
    memcpy(b.w.layer, m.w.layer, (size_t)c.n_layers * sizeof *b.w.layer);
    b.map_release = count_release;
    assert_int_equal(kvb_model_finish(&b, msg, sizeof msg), KVB_STATUS_OK);
    assert_true(b.weight_bytes == m.weight_bytes);
    assert_string_equal(kvb_model_wtype_name(&b), "bf16");
    /* each matrix checked, the refusal naming it */
    b.w.layer[1].wk.rows--;
    assert_int_equal(kvb_model_finish(&b, msg, sizeof msg), KVB_STATUS_INVALID_ARG);
    assert_non_null(strstr(msg, "layer 1 wk"));
    b.w.layer[1].wk.rows++;
    b.w.layer[0].w2.type = KVB_WTYPE_COUNT;
    assert_int_equal(kvb_model_finish(&b, msg, sizeof msg), KVB_STATUS_INVALID_ARG);
    assert_non_null(strstr(msg, "layer 0 w2"));
    b.w.layer[0].w2.type = KVB_WTYPE_BF16;
    b.w.wcls.data = NULL;
    assert_int_equal(kvb_model_finish(&b, msg, sizeof msg), KVB_STATUS_INVALID_ARG);
    assert_non_null(strstr(msg, "wcls"));
    b.w.wcls = m.w.wcls;
    b.w.layer[0].wo.type = KVB_WTYPE_Q8_0;      /* cols 64 fit; a row of 48 would not */
    b.w.layer[0].wo.cols = 48;
    assert_int_equal(kvb_model_finish(&b, msg, sizeof msg), KVB_STATUS_INVALID_ARG);
    assert_non_null(strstr(msg, "layer 0 wo"));
    b.w.layer[0].wo = m.w.layer[0].wo;
    kvb_model_free(&b);
    assert_int_equal(released, 1);
    assert_null(b.w.layer);
    /* llama2.c files hold f32 weights and llama2.c's RoPE and eps only */
    kvbt_tmp_path(state, "typed.bin", path, sizeof path);
    assert_int_equal(kvb_model_save(&m, path, msg, sizeof msg), KVB_STATUS_UNSUPPORTED);
    assert_non_null(strstr(msg, "bf16"));
    kvb_model_free(&m);
    c.rope_scaling = KVB_ROPE_SCALING_NONE;
    c.rope_theta = 10000.0f;
    c.norm_eps = 0;
    for (int k = 0; k < 4; k++) {
        kvb_model_config x = c;
        const char *want[] = {"layout", "scaling", "norm-eps", NULL};
        if (k == 0) x.rope_layout = KVB_ROPE_LAYOUT_HALF;
        if (k == 1) { x.rope_scaling = KVB_ROPE_SCALING_LINEAR; x.rope_factor = 2; }
        if (k == 2) x.norm_eps = 1e-6f;
        m = kvbt_tiny_model(&x, 2, KVB_WTYPE_F32);
        remove(path);
        kvb_status st = kvb_model_save(&m, path, msg, sizeof msg);
        if (want[k]) {
            assert_int_equal(st, KVB_STATUS_UNSUPPORTED);
            if (!strstr(msg, want[k])) fail_msg("case %d: '%s' lacks '%s'", k, msg, want[k]);
        } else {
            assert_int_equal(st, KVB_STATUS_OK);      /* eps 0 (1e-5), interleaved, unscaled */
        }
        kvb_model_free(&m);
    }
    remove(path);
    /* a type whose block does not divide a row length is refused, naming them */
    kvb_model_config odd = c;
    odd.hidden_dim = 100;
    assert_int_equal(kvb_model_init_random(&m, &odd, 1, KVB_WTYPE_Q8_0, msg, sizeof msg),
                     KVB_STATUS_INVALID_ARG);
    assert_non_null(strstr(msg, "hidden 100"));
    assert_non_null(strstr(msg, "32"));
    assert_null(m.mem);
    /* RoPE scaling's factors are checked */
    odd = c;
    odd.rope_scaling = KVB_ROPE_SCALING_LLAMA3;
    odd.rope_factor = 8;
    odd.rope_low_freq = 4;
    odd.rope_high_freq = 1;
    odd.rope_orig_ctx = 64;
    assert_int_equal(kvb_model_config_check(&odd, msg, sizeof msg), KVB_STATUS_INVALID_ARG);
    assert_non_null(strstr(msg, "llama3"));
}

/* GGUF export keeps every matrix's stored bytes under GGML's type id. */
static void test_gguf_export_typed(void **state)
{
    const struct { kvb_wtype t; uint32_t ggml; } types[] = {
        {KVB_WTYPE_F16, KVB_GGML_F16}, {KVB_WTYPE_BF16, KVB_GGML_BF16},
        {KVB_WTYPE_Q8_0, KVB_GGML_Q8_0}, {KVB_WTYPE_Q4_0, KVB_GGML_Q4_0},
        {KVB_WTYPE_Q4_K, KVB_GGML_Q4_K}, {KVB_WTYPE_Q6_K, KVB_GGML_Q6_K}};
    for (int i = 0; i < 6; i++) {
        kvb_model_config c = kvbt_shape_for(kvbt_tiny_shape(4, 2, KVB_ROPE_LAYOUT_INTERLEAVED),
                                            types[i].t);
        c.rope_scaling = KVB_ROPE_SCALING_NONE;
        kvb_model m = kvbt_tiny_model(&c, 9, types[i].t);
        char msg[512], path[1024], name[32];
        snprintf(name, sizeof name, "%s.gguf", kvb_wtype_name(types[i].t));
        kvbt_tmp_path(state, name, path, sizeof path);
        remove(path);
        assert_int_equal(kvb_gguf_save(&m, path, msg, sizeof msg), KVB_STATUS_OK);
        kvb_gguf g;
        if (kvb_gguf_open(&g, path, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("%s", msg);
        const kvb_layer_weights *l1 = &m.w.layer[1];
        const struct { const char *name; const kvb_wmat *w; } mats[] = {
            {"token_embd.weight", &m.w.token_embedding}, {"output.weight", &m.w.wcls},
            {"blk.1.attn_q.weight", &l1->wq}, {"blk.1.attn_output.weight", &l1->wo},
            {"blk.1.ffn_down.weight", &l1->w2}, {"blk.1.ffn_up.weight", &l1->w3}};
        for (size_t j = 0; j < sizeof mats / sizeof mats[0]; j++) {
            const kvb_gguf_tensor *t = kvb_gguf_find_tensor(&g, mats[j].name);
            const kvb_wmat *w = mats[j].w;
            size_t bytes = (size_t)w->rows * kvb_wtype_row_bytes(w->type, w->cols);
            assert_non_null(t);
            assert_int_equal(t->type, types[i].ggml);
            assert_int_equal(t->dims[0], w->cols);      /* GGUF's dims: [cols, rows] */
            assert_int_equal(t->dims[1], w->rows);
            assert_int_equal(t->bytes, bytes);
            assert_memory_equal(t->data, w->data, bytes);
        }
        const kvb_gguf_tensor *t = kvb_gguf_find_tensor(&g, "blk.0.ffn_norm.weight");
        assert_int_equal(t->type, KVB_GGML_F32);
        assert_memory_equal(t->data, m.w.layer[0].rms_ffn, (size_t)c.dim * 4);
        kvb_gguf_close(&g);
        remove(path);
        /* the half layout has no GGUF spelling here: refused, not written wrong */
        m.cfg.rope_layout = KVB_ROPE_LAYOUT_HALF;
        assert_int_equal(kvb_gguf_save(&m, path, msg, sizeof msg), KVB_STATUS_UNSUPPORTED);
        assert_non_null(strstr(msg, "layout"));
        kvb_model_free(&m);
    }
}

int main(int argc, char **argv)
{
    static const kvbt_test all[] = {
        {"forward_matches_float64", test_forward_matches_float64, 1},
        {"forward_wrong_rope_layout_fails", test_forward_wrong_rope_layout_fails, 0},
        {"forward_typed_weights", test_forward_typed_weights, 1},
        {"forward_seq_cached", test_forward_seq_cached, 0},
        {"model_finish_and_refusals", test_model_finish_and_refusals, 0},
        {"gguf_export_typed", test_gguf_export_typed, 0},
    };
    return kvbt_main(argc, argv, "forward", all, KVBT_COUNT(all));
}
