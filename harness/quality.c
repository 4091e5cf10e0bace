/* quality.c: see quality.h. The per-layer attend check wraps the candidate
 * cache in a "shadow" backend that keeps an exact f32 copy of every K/V the
 * model appends and, on each attend, compares the cache's output with float64
 * attention over that copy; the model code is unchanged and unaware of it. */
#include "quality.h"
#include "attend_bench.h"
#include "ppl.h"
#include "../base/stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- reference run ---------------------------------------------------------- */

void kvb_quality_ref_free(kvb_quality_ref *ref)
{
    free(ref->tokens);
    free(ref->logp);
    memset(ref, 0, sizeof *ref);
}

kvb_status kvb_quality_reference(const kvb_model *m, kvb_state *s, const int *prompt,
                                 int prompt_len, int n_steps, kvb_quality_ref *ref, char *msg,
                                 size_t msg_len)
{
    memset(ref, 0, sizeof *ref);
    const kvb_backend *b = kvb_backend_find("contiguous");
    const int V = m->cfg.vocab_size;
    kvb_shape sh = kvb_model_kv_shape(&m->cfg);
    kvb_options o = {.dtype = KVB_DTYPE_F32, .alloc = KVB_ALLOC_GROW, .max_seqs = 1};
    kvb_cache *c = NULL;
    kvb_status st = kvb_cache_create(&c, b, &sh, &o, msg, msg_len);
    if (st != KVB_STATUS_OK) return st;
    ref->tokens = malloc((size_t)(prompt_len + n_steps) * sizeof *ref->tokens);
    ref->logp = malloc((size_t)n_steps * V * sizeof *ref->logp);
    if (!ref->tokens || !ref->logp) { st = KVB_STATUS_NO_MEMORY; goto out; }
    ref->n_steps = n_steps;
    ref->prompt_len = prompt_len;
    ref->vocab = V;
    memcpy(ref->tokens, prompt, (size_t)prompt_len * sizeof *prompt);
    /* step i's distribution predicts the token at position prompt_len + i */
    st = kvb_forward_seq(m, s, c, 0, prompt, prompt_len, NULL);
    for (int i = 0; st == KVB_STATUS_OK && i < n_steps; i++) {
        kvb_log_softmax(s->logits, V, ref->logp + (size_t)i * V);
        ref->tokens[prompt_len + i] = kvb_argmax(s->logits, V);
        if (i + 1 < n_steps)
            st = kvb_forward_token(m, s, c, 0, ref->tokens[prompt_len + i], prompt_len + i, NULL);
    }
out:
    kvb_cache_destroy(c);
    if (st != KVB_STATUS_OK) {
        snprintf(msg, msg_len, "reference generation (contiguous f32) failed: %s",
                 kvb_status_str(st));
        kvb_quality_ref_free(ref);
    }
    return st;
}

/* ---- the shadow backend ----------------------------------------------------- */

/* The shadow's state: the cache it wraps and the exact K/V appended to it. */
struct kvb_backend_ctx {
    kvb_cache *inner;
    kvb_shape  shape;
    float   *k, *v;           /* [layer][max_seq][n_kv_heads * head_dim]: as appended */
    int     *len;             /* [layer] */
    double  *ref, *sc;        /* [n_heads * head_dim], kvb_attend_reference_scratch's */
    kvb_quality *q;
    long    *n_checked;       /* [layer] */
};
typedef kvb_backend_ctx shadow;

static kvb_status sh_create(kvb_backend_ctx **out, const kvb_shape *s, const kvb_options *o,
                            char *m, size_t n)
{
    (void)out; (void)s; (void)o;
    snprintf(m, n, "the shadow cache is built by kvb_quality_compare only");
    return KVB_STATUS_UNSUPPORTED;
}

static void sh_destroy(shadow *w) { (void)w; }   /* kvb_quality_compare owns it */

static kvb_status sh_append(shadow *w, int seq, int layer, const float *k, const float *v)
{
    kvb_status st = kvb_cache_append(w->inner, seq, layer, k, v);
    if (st != KVB_STATUS_OK) return st;
    size_t row = (size_t)w->shape.n_kv_heads * w->shape.head_dim;
    size_t off = ((size_t)layer * w->shape.max_seq + (size_t)w->len[layer]) * row;
    memcpy(w->k + off, k, row * sizeof *k);
    memcpy(w->v + off, v, row * sizeof *v);
    w->len[layer]++;
    return KVB_STATUS_OK;
}

static kvb_status sh_attend(shadow *w, int seq, int layer, const float *q, float *out)
{
    kvb_status st = kvb_cache_attend(w->inner, seq, layer, q, out);
    if (st != KVB_STATUS_OK) return st;
    const int nh = w->shape.n_heads, nkv = w->shape.n_kv_heads, hd = w->shape.head_dim;
    const int n = w->len[layer], held = kvb_cache_attended(w->inner, n);
    /* the reference reads what the cache attends: its newest `held` tokens */
    size_t first = ((size_t)layer * w->shape.max_seq + (size_t)(n - held)) * nkv * hd;
    kvb_attend_reference(q, w->k + first, w->v + first, held, nh, nkv, hd, w->ref, w->sc);
    double e = 0, r = 0, mabs = 0;
    for (int i = 0; i < nh * hd; i++) {
        double d = out[i] - w->ref[i];
        e += d * d;
        r += w->ref[i] * w->ref[i];
        mabs = fmax(mabs, fabs(d));
    }
    double rel = sqrt(e / (r > 0 ? r : 1));
    kvb_quality *qq = w->q;
    qq->rel_l2_mean[layer] += rel;
    qq->max_abs[layer] = fmax(qq->max_abs[layer], isfinite(mabs) ? mabs : INFINITY);
    w->n_checked[layer]++;
    for (int j = 0; j < qq->n_ctx; j++)
        if (qq->ctx[j] == n) qq->rel_l2_at[(size_t)layer * qq->n_ctx + j] = rel;
    return KVB_STATUS_OK;
}

static kvb_memory sh_memory(const shadow *w) { return kvb_cache_memory(w->inner); }

static int sh_length(const shadow *w, int seq, int layer)
{
    return kvb_cache_length(w->inner, seq, layer);
}

static const kvb_backend shadow_backend = {
    .version = KVB_BACKEND_VERSION,
    .name = "shadow",
    .description = "wraps a cache; checks every attend against float64 over exact K/V",
    .create = sh_create,
    .destroy = sh_destroy,
    .append = sh_append,
    .attend = sh_attend,
    .memory = sh_memory,
    .length = sh_length,
};

/* ---- comparison ------------------------------------------------------------- */

void kvb_quality_free(kvb_quality *q)
{
    free(q->rel_l2_mean);
    free(q->max_abs);
    free(q->rel_l2_at);
    memset(q, 0, sizeof *q);
}

kvb_status kvb_quality_compare(const kvb_model *m, kvb_state *s, const kvb_backend *b,
                               const kvb_options *o, const kvb_quality_ref *ref, kvb_quality *q,
                               char *msg, size_t msg_len)
{
    memset(q, 0, sizeof *q);
    const int V = ref->vocab, L = m->cfg.n_layers, P = ref->prompt_len, N = ref->n_steps;
    shadow w = {.shape = kvb_model_kv_shape(&m->cfg), .q = q};
    kvb_options oo = *o;
    oo.max_seqs = 1;
    kvb_status st = kvb_cache_create(&w.inner, b, &w.shape, &oo, msg, msg_len);
    if (st != KVB_STATUS_OK) return st;
    kvb_cache *wc = NULL;
    size_t row = (size_t)w.shape.n_kv_heads * w.shape.head_dim;
    w.k = malloc((size_t)L * w.shape.max_seq * row * sizeof *w.k);
    w.v = malloc((size_t)L * w.shape.max_seq * row * sizeof *w.v);
    w.len = calloc((size_t)L, sizeof *w.len);
    w.n_checked = calloc((size_t)L, sizeof *w.n_checked);
    w.ref = malloc((size_t)w.shape.n_heads * w.shape.head_dim * sizeof *w.ref);
    w.sc = malloc(kvb_attend_reference_scratch(w.shape.max_seq, w.shape.n_heads,
                                               w.shape.n_kv_heads) * sizeof *w.sc);
    q->n_layers = L;
    q->n_steps = N;
    /* decode step i attends over P + i + 1 tokens, i < N - 1 (the last
     * distribution comes from the step before): contexts P+1 .. P+N-1 */
    const int last = P + N - 1;
    for (int c = 1; c <= last && q->n_ctx < KVB_QUALITY_MAX_CTX - 1; c *= 2)
        if (c > P) q->ctx[q->n_ctx++] = c;
    if (N > 1 && (q->n_ctx == 0 || q->ctx[q->n_ctx - 1] != last)) q->ctx[q->n_ctx++] = last;
    q->rel_l2_mean = calloc((size_t)L, sizeof *q->rel_l2_mean);
    q->max_abs = calloc((size_t)L, sizeof *q->max_abs);
    q->rel_l2_at = calloc((size_t)L * (q->n_ctx ? q->n_ctx : 1), sizeof *q->rel_l2_at);
    double *kl = malloc((size_t)(N > 0 ? N : 1) * sizeof *kl);
    float *lp = malloc((size_t)V * sizeof *lp);
    if (!w.k || !w.v || !w.len || !w.n_checked || !w.ref || !w.sc || !q->rel_l2_mean ||
        !q->max_abs || !q->rel_l2_at || !kl || !lp ||
        kvb_cache_wrap(&wc, &shadow_backend, &w, &w.shape, &oo, msg, msg_len) != KVB_STATUS_OK) {
        st = KVB_STATUS_NO_MEMORY;
        snprintf(msg, msg_len, "out of memory for the quality comparison");
        goto out;
    }
    /* step 0's distribution comes from the prefill, whose attention runs on
     * the activations, not the cache: it is not compared (it would add a 0) */
    st = kvb_forward_seq(m, s, wc, 0, ref->tokens, P, NULL);
    int agree = 0, n_cmp = 0;
    for (int i = 0; st == KVB_STATUS_OK && i < N; i++) {
        if (i > 0) {
            kvb_log_softmax(s->logits, V, lp);
            const float *lr = ref->logp + (size_t)i * V;
            kl[n_cmp++] = kvb_kl_logp(lr, lp, V);
            agree += kvb_argmax(lp, V) == ref->tokens[P + i];
        }
        if (i + 1 < N) st = kvb_forward_token(m, s, wc, 0, ref->tokens[P + i], P + i, NULL);
    }
    if (st != KVB_STATUS_OK) {
        snprintf(msg, msg_len, "replaying the reference tokens failed: %s", kvb_status_str(st));
        goto out;
    }
    q->n_steps = n_cmp;
    q->top1 = n_cmp ? (double)agree / n_cmp : NAN;
    q->kl_mean = n_cmp ? 0 : NAN;
    for (int i = 0; i < n_cmp; i++) q->kl_mean += kl[i] / n_cmp;
    q->kl_p50 = n_cmp ? kvb_quantile(kl, (size_t)n_cmp, 0.5) : NAN;
    q->kl_p99 = n_cmp ? kvb_quantile(kl, (size_t)n_cmp, 0.99) : NAN;
    q->kl_max = n_cmp ? kvb_quantile(kl, (size_t)n_cmp, 1.0) : NAN;
    for (int l = 0; l < L; l++)
        if (w.n_checked[l]) q->rel_l2_mean[l] /= (double)w.n_checked[l];
out:
    kvb_cache_destroy(wc);
    kvb_cache_destroy(w.inner);
    free(w.k); free(w.v); free(w.len); free(w.n_checked); free(w.ref); free(w.sc);
    free(kl); free(lp);
    if (st != KVB_STATUS_OK) kvb_quality_free(q);
    return st;
}

/* Row r of w times KVB_OUTLIER_SCALE (grow) or divided by it, through f32 for a
 * stored type (rounded again). */
static void scale_row(const kvb_model *m, const kvb_wmat *w, int r, int grow, float *buf)
{
    size_t rb = kvb_wtype_row_bytes(w->type, w->cols);
    /* the model's own memory (checked by the caller), so writable */
    char *row = (char *)m->mem + ((const char *)w->data + (size_t)r * rb - (const char *)m->mem);
    kvb_wrow_to_f32(w->type, row, buf, w->cols);
    for (int i = 0; i < w->cols; i++)
        buf[i] = grow ? buf[i] * KVB_OUTLIER_SCALE : buf[i] / KVB_OUTLIER_SCALE;
    kvb_wrow_from_f32(w->type, buf, row, w->cols);
}

kvb_status kvb_model_key_outliers(kvb_model *m, int n_pairs, char *msg, size_t msg_len)
{
    const kvb_model_config *c = &m->cfg;
    const int hd = c->head_dim, g = c->n_heads / c->n_kv_heads;
    const char *lo = m->mem, *hi = lo ? lo + m->mem_bytes : NULL;
    for (int l = 0; l < c->n_layers; l++) {
        const char *pk = m->w.layer[l].wk.data, *pq = m->w.layer[l].wq.data;
        if (!lo || pk < lo || pk >= hi || pq < lo || pq >= hi) {
            snprintf(msg, msg_len, "--key-outliers rescales weights in memory: this %s model's "
                     "weights are a mapped file (read-only)", m->source);
            return KVB_STATUS_UNSUPPORTED;
        }
    }
    float *buf = malloc((size_t)c->dim * sizeof *buf);   /* [dim]: one row in f32 */
    if (!buf) {
        snprintf(msg, msg_len, "out of memory for a row of %d floats", c->dim);
        return KVB_STATUS_NO_MEMORY;
    }
    for (int l = 0; l < c->n_layers; l++)
        for (int p = 0; p < n_pairs && p < hd / 2; p++) {
            /* the two channels RoPE rotates together: (2i, 2i+1), or (i, i + hd/2) */
            int ch = kvb_outlier_channel(p, hd), half = c->rope_layout == KVB_ROPE_LAYOUT_HALF;
            int e2[2] = {half ? ch / 2 : ch, half ? ch / 2 + hd / 2 : ch + 1};
            for (int h = 0; h < c->n_kv_heads; h++)
                for (int k = 0; k < 2; k++) {
                    /* key row (h, e) grows; the matching query rows of its group shrink */
                    scale_row(m, &m->w.layer[l].wk, h * hd + e2[k], 1, buf);
                    for (int j = 0; j < g; j++)
                        scale_row(m, &m->w.layer[l].wq, (h * g + j) * hd + e2[k], 0, buf);
                }
        }
    free(buf);
    return KVB_STATUS_OK;
}
