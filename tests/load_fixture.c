/* load_fixture.c: see load_fixture.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load_fixture.h"
#include "testlib.h"

kvb_model_config kvbt_load_shape(int shared, int rope_layout)
{
    kvb_model_config c = {.dim = 64, .hidden_dim = 96, .n_layers = 2, .n_heads = 4,
                          .n_kv_heads = 2, .head_dim = 16, .vocab_size = KVBT_LOAD_V,
                          .max_seq = 24, .rope_theta = 10000.0f, .shared_classifier = shared,
                          .rope_layout = rope_layout};
    return c;
}

float *kvbt_logits(const kvb_model *m)
{
    const int V = m->cfg.vocab_size;
    assert_int_equal(V, KVBT_LOAD_V);
    kvb_state s;
    assert_int_equal(kvb_state_init(&s, &m->cfg, 1), KVB_STATUS_OK);
    kvb_shape shape = kvb_model_kv_shape(&m->cfg);
    kvb_options o = {.dtype = KVB_DTYPE_F32, .alloc = KVB_ALLOC_GROW, .max_seqs = 1};
    kvb_cache *c = kvbt_cache_new(kvb_backend_find("contiguous"), &shape, &o);
    float *out = malloc((size_t)KVBT_LOAD_T * V * sizeof *out);   /* [T][V] */
    assert_non_null(out);
    for (int t = 0; t < KVBT_LOAD_T; t++) {
        assert_int_equal(kvb_forward_token(m, &s, c, 0, (7 * t + 3) % V, t, NULL), KVB_STATUS_OK);
        memcpy(out + (size_t)t * V, s.logits, (size_t)V * sizeof *out);
    }
    kvb_cache_destroy(c);
    kvb_state_free(&s);
    return out;
}

void kvbt_assert_same_logits(const kvb_model *m, const float *ref, const char *what)
{
    float *got = kvbt_logits(m);
    if (memcmp(got, ref, (size_t)KVBT_LOAD_T * KVBT_LOAD_V * sizeof *got) != 0)
        fail_msg("%s: logits differ from the model in memory (relative L2 %g)", what,
                 kvbt_rel(got, ref));
    free(got);
}

double kvbt_rel(const float *a, const float *b)
{
    double e = 0, r = 0;
    for (size_t i = 0; i < (size_t)KVBT_LOAD_T * KVBT_LOAD_V; i++) {
        e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r += (double)b[i] * b[i];
    }
    return isfinite(e) ? sqrt(e / r) : INFINITY;
}

static int in_mem(const kvb_model *m, const void *p)
{
    const char *b = m->mem, *q = p;
    return b && q >= b && q < b + m->mem_bytes;
}

void kvbt_assert_in_map(const kvb_model *m)
{
    assert_non_null(m->map);
    assert_false(in_mem(m, m->w.token_embedding.data));
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const kvb_layer_weights *w = &m->w.layer[l];
        const kvb_wmat *all[7] = {&w->wq, &w->wk, &w->wv, &w->wo, &w->w1, &w->w2, &w->w3};
        for (int i = 0; i < 7; i++) assert_false(in_mem(m, all[i]->data));
    }
}

/* src's matrix as f32 rows at *p, which moves past them */
static kvb_wmat to_f32(const kvb_wmat *w, float **p)
{
    size_t rb = kvb_wtype_row_bytes(w->type, w->cols);
    for (int r = 0; r < w->rows; r++)
        kvb_wrow_to_f32(w->type, (const char *)w->data + (size_t)r * rb, *p + (size_t)r * w->cols,
                        w->cols);
    kvb_wmat o = {.data = *p, .type = KVB_WTYPE_F32, .rows = w->rows, .cols = w->cols};
    *p += (size_t)w->rows * w->cols;
    return o;
}

static const float *norm_copy(const float *v, int n, float **p)
{
    memcpy(*p, v, (size_t)n * sizeof **p);
    *p += n;
    return *p - n;
}

void kvbt_dequant_twin(const kvb_model *src, kvb_model *dst)
{
    memset(dst, 0, sizeof *dst);
    dst->cfg = src->cfg;
    const kvb_model_config *c = &src->cfg;
    dst->mem_bytes = kvb_model_param_count(c) * sizeof(float);
    dst->mem = malloc(dst->mem_bytes);
    dst->w.layer = malloc((size_t)c->n_layers * sizeof *dst->w.layer);   /* freed apart */
    assert_non_null(dst->mem);
    assert_non_null(dst->w.layer);
    float *p = dst->mem;
    dst->w.token_embedding = to_f32(&src->w.token_embedding, &p);
    for (int l = 0; l < c->n_layers; l++) {
        const kvb_layer_weights *s = &src->w.layer[l];
        kvb_layer_weights *d = &dst->w.layer[l];
        d->rms_att = norm_copy(s->rms_att, c->dim, &p);
        d->rms_ffn = norm_copy(s->rms_ffn, c->dim, &p);
        d->wq = to_f32(&s->wq, &p);
        d->wk = to_f32(&s->wk, &p);
        d->wv = to_f32(&s->wv, &p);
        d->wo = to_f32(&s->wo, &p);
        d->w1 = to_f32(&s->w1, &p);
        d->w2 = to_f32(&s->w2, &p);
        d->w3 = to_f32(&s->w3, &p);
    }
    dst->w.rms_final = norm_copy(src->w.rms_final, c->dim, &p);
    dst->w.wcls = c->shared_classifier ? dst->w.token_embedding : to_f32(&src->w.wcls, &p);
    snprintf(dst->source, sizeof dst->source, "twin");
    char msg[512];
    if (kvb_model_finish(dst, msg, sizeof msg) != KVB_STATUS_OK) fail_msg("twin: %s", msg);
}
