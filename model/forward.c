/* forward.c: the forward passes of model.h. The decode step is matrix-vector
 * work over the weights in their stored type (matvec.h's kernels, rows split
 * over the state's pool); the sequence passes are matrix-matrix work (sgemm:
 * f32 weights directly, other types a tile of rows at a time converted to f32)
 * plus attention, causal GEMM or through the cache. The batched step of B
 * sequences reads each weight once for all B (matvec.h's B-vector rows, or
 * sgemm from KVB_BATCH_SGEMM_* rows on) into the sequence pass's buffers, and
 * attends through kvb_cache_attend_batch. All share the RMSNorm, RoPE and
 * SwiGLU code so their logits agree to f32 rounding. */
#include "model.h"
#include "../base/probe.h"
#include "../impls/kernels/kernels.h"
#include "../impls/kernels/matvec.h"
#include "model_slots.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

static float norm_eps(const kvb_model_config *c)
{
    return c->norm_eps > 0.0f ? c->norm_eps : 1e-5f;
}

static void rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    float ss = kvb_dot_f32(x, x, n) / (float)n + eps;
    float r = 1.0f / sqrtf(ss);
    for (int i = 0; i < n; i++) out[i] = w[i] * (x[i] * r);
}

/* Rotates each pair of every head by pos * freq[pair]: (2i, 2i+1) interleaved,
 * (i, i + head_dim/2) in the half layout. */
static void rope(float *x, int n_heads, int head_dim, int pos, const float *freq, int layout)
{
    const int half = head_dim / 2, step = layout == KVB_ROPE_LAYOUT_HALF ? 1 : 2,
              other = layout == KVB_ROPE_LAYOUT_HALF ? half : 1;
    for (int i = 0; i < half; i++) {
        float a = (float)pos * freq[i], c = cosf(a), s = sinf(a);
        for (int h = 0; h < n_heads; h++) {
            float *p = x + (size_t)h * head_dim + (size_t)step * i;
            float x0 = p[0], x1 = p[other];
            p[0] = x0 * c - x1 * s;
            p[other] = x0 * s + x1 * c;
        }
    }
}

static void swiglu(float *h1, const float *h3, size_t n)
{
    for (size_t i = 0; i < n; i++) h1[i] = h1[i] / (1.0f + expf(-h1[i])) * h3[i];
}

/* The kernels one forward call uses, found once per (type, cols). */
typedef struct kfound_entry {
    kvb_wtype t;
    int cols;
    const kvb_matvec_kernel *k;
} kfound_entry;
typedef struct kfound {
    int n;
    kfound_entry e[8];
    int sgemm_f32, sgemm_other;   /* the batched step: rows from which sgemm takes over */
} kfound;

/* The kernel for W (--matvec's where it has one, else auto); NULL when none
 * reads W (finish rules that out). */
static const kvb_matvec_kernel *kernel_for(const kvb_state *s, kfound *kf, const kvb_wmat *w)
{
    for (int i = 0; i < kf->n; i++)
        if (kf->e[i].t == w->type && kf->e[i].cols == w->cols) return kf->e[i].k;
    const kvb_matvec_kernel *k = NULL;
    if (s->matvec) k = kvb_matvec_find(s->matvec, w->type, w->cols, NULL, 0);
    if (!k) k = kvb_matvec_find(NULL, w->type, w->cols, NULL, 0);
    if (k && kf->n < 8) kf->e[kf->n++] = (kfound_entry){w->type, w->cols, k};
    return k;
}

/* y_i[rows_i] = W_i x for n (<= 3) matrices that read the same x, in one
 * hand-off to the pool; -1 when no kernel reads one of them */
static int matvec_n(kvb_state *s, kfound *kf, int n, const kvb_wmat *const *w, const float *x,
                    float *const *y)
{
    kvb_matvec_task t[3];
    for (int i = 0; i < n; i++) {
        t[i] = (kvb_matvec_task){kernel_for(s, kf, w[i]), w[i]->data, w[i]->rows, w[i]->cols,
                                 x, y[i]};
        if (!t[i].k) return -1;
    }
    kvb_matvec_pool_many(s->pool, t, n);
    return 0;
}

static int matvec(kvb_state *s, kfound *kf, const kvb_wmat *w, const float *x, float *y)
{
    return matvec_n(s, kf, 1, &w, x, &y);
}

/* Y[T][rows] (+)= X[T][cols] W[rows][cols]^T (beta 1: add), a block of W's
 * rows a pool item: f32 a quarter of W (at least KVB_TILE_ROWS rows), straight
 * to sgemm; other types KVB_TILE_ROWS rows, converted first into the item's
 * thread's tile. Every sgemm call packs X again, so f32 takes few, large
 * items: with 128 rows the no-cache step of stories110m ran 9% slower on two
 * threads than with OpenBLAS's own threads, with quarters 2% (docs/weights.md).
 * Four items (or 128-row ones) keep two threads evenly busy. The items depend
 * on W alone, not on the thread count, and OpenBLAS runs one thread inside
 * each (the callers set it), so every element's sum is the same code's: 1 and
 * 2 threads give the same bits. One pool for all of a pass's threads:
 * OpenBLAS's own workers poll for work between calls, and beside the pool's
 * they took cores from the decode steps after a prefill (docs/weights.md). */
typedef struct mm_job {
    kvb_state *s;
    float *Y;
    const float *X;
    const kvb_wmat *w;
    int T, rows;   /* rows: of W a task */
    float beta;
} mm_job;

static void mm_item(void *arg, int item, int thread)
{
    const mm_job *j = arg;
    const kvb_wmat *w = j->w;
    const int out = w->rows, in = w->cols, r0 = item * j->rows;
    const int n = out - r0 < j->rows ? out - r0 : j->rows;
    const size_t rb = kvb_wtype_row_bytes(w->type, in);
    const char *src = (const char *)w->data + (size_t)r0 * rb;
    const float *W = (const float *)(const void *)src;
    if (w->type != KVB_WTYPE_F32) {
        float *tile = j->s->tile + (size_t)thread * j->s->tile_floats;   /* [n][in] */
        for (int r = 0; r < n; r++)
            kvb_wrow_to_f32(w->type, src + (size_t)r * rb, tile + (size_t)r * in, in);
        W = tile;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->T, n, in, 1.0f, j->X, in, W, in,
                j->beta, j->Y + r0, out);
}

static void matmul(kvb_state *s, float *Y, const float *X, const kvb_wmat *w, int T, float beta)
{
    int rows = KVB_TILE_ROWS;
    if (w->type == KVB_WTYPE_F32) {   /* a quarter of W a task, in whole lines */
        int quarter = ((w->rows + 3) / 4 + 15) / 16 * 16;
        if (quarter > rows) rows = quarter;
    }
    mm_job j = {s, Y, X, w, T, rows, beta};
    kvb_pool_run(s->pool, (w->rows + rows - 1) / rows, mm_item, &j);
}

int kvb_argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

kvb_status kvb_state_set_matvec(kvb_state *s, const kvb_model *m, const char *name, char *msg,
                                size_t msg_len)
{
    if (!name || strcmp(name, "auto") == 0) {
        s->matvec = NULL;
        return KVB_STATUS_OK;
    }
    char why[160] = "";
    int reads = 0;
    for (int i = 0, n = kvb_model_slot_count(&m->cfg); i < n; i++) {
        kvb_tslot t;
        kvb_model_slot(m, i, &t);
        if (t.is_norm || (t.kind == KVB_TKIND_EMB && m->w.wcls.data != t.data)) continue;
        char w1[160];
        if (kvb_matvec_find(name, t.type, t.cols, w1, sizeof w1)) reads++;
        else if (!why[0]) snprintf(why, sizeof why, "%s", w1);
    }
    if (!reads) {
        snprintf(msg, msg_len, "--matvec %s reads none of this model's matrices (%s)", name,
                 why);
        return KVB_STATUS_INVALID_ARG;
    }
    s->matvec = name;
    return KVB_STATUS_OK;
}

static void embed(const kvb_model *m, int token, float *x)
{
    const kvb_wmat *e = &m->w.token_embedding;
    kvb_wrow_to_f32(e->type, (const char *)e->data + (size_t)token * kvb_wtype_row_bytes(
                        e->type, e->cols), x, e->cols);
}

static int logits_from(const kvb_model *m, kvb_state *s, kfound *kf, const float *x)
{
    const kvb_model_config *c = &m->cfg;
    rmsnorm(s->xb, x, m->w.rms_final, c->dim, norm_eps(c));
    return matvec(s, kf, &m->w.wcls, s->xb, s->logits);
}

kvb_status kvb_forward_token(const kvb_model *m, kvb_state *s, kvb_cache *cache, int seq,
                             int token, int pos, kvb_step_timing *t)
{
    const kvb_model_config *c = &m->cfg;
    if (token < 0 || token >= c->vocab_size || pos < 0 || pos >= c->max_seq)
        return KVB_STATUS_INVALID_ARG;
    if (!cache || (kvb_cache_backend(cache)->flags & KVB_BACKEND_RECOMPUTE))
        return KVB_STATUS_UNSUPPORTED;
    const int d = c->dim, h = c->hidden_dim;
    const float eps = norm_eps(c);
    kfound kf = {0};
    int bad = 0;
    uint64_t attn = 0;
    embed(m, token, s->x);
    for (int l = 0; l < c->n_layers; l++) {
        const kvb_layer_weights *w = &m->w.layer[l];
        rmsnorm(s->xb, s->x, w->rms_att, d, eps);
        bad |= matvec_n(s, &kf, 3, (const kvb_wmat *[]){&w->wq, &w->wk, &w->wv}, s->xb,
                        (float *[]){s->q, s->k, s->v});
        rope(s->q, c->n_heads, c->head_dim, pos, m->rope_freq, c->rope_layout);
        rope(s->k, c->n_kv_heads, c->head_dim, pos, m->rope_freq, c->rope_layout);
        uint64_t t0 = kvb_now_ns();
        kvb_status st = kvb_cache_append(cache, seq, l, s->k, s->v);
        if (st == KVB_STATUS_OK) st = kvb_cache_attend(cache, seq, l, s->q, s->att);
        attn += kvb_now_ns() - t0;
        if (st != KVB_STATUS_OK) return st;
        bad |= matvec(s, &kf, &w->wo, s->att, s->xb2);
        for (int i = 0; i < d; i++) s->x[i] += s->xb2[i];
        rmsnorm(s->xb, s->x, w->rms_ffn, d, eps);
        bad |= matvec_n(s, &kf, 2, (const kvb_wmat *[]){&w->w1, &w->w3}, s->xb,
                        (float *[]){s->hb, s->hb2});
        swiglu(s->hb, s->hb2, (size_t)h);
        bad |= matvec(s, &kf, &w->w2, s->hb, s->xb2);
        for (int i = 0; i < d; i++) s->x[i] += s->xb2[i];
    }
    bad |= logits_from(m, s, &kf, s->x);
    if (t) t->attn_ns = attn;
    return bad ? KVB_STATUS_UNSUPPORTED : KVB_STATUS_OK;
}

/* From how many rows on the batched step's products go through matmul (f32
 * weights straight to sgemm, others converted to f32 tiles first) rather than
 * the B-vector rows. Measured one thread, 768..32000 x 768..2048 and 4096 x
 * 4096 (docs/weights.md): with OpenBLAS's AVX-512 kernels the B-vector rows
 * won at 16 rows and lost at 32 for f32 weights; for bf16 and q8_0 (which
 * sgemm must convert first) they won at 32 and mostly lost at 48; with
 * OpenBLAS's SSE kernels (DYNAMIC_ARCH falls back to Prescott on CPUs it does
 * not know) they still won at 64, the most measured. */
enum { KVB_BATCH_SGEMM_F32 = 24, KVB_BATCH_SGEMM_OTHER = 48, KVB_BATCH_SGEMM_SSE = 128,
       KVB_BATCH_ITEMS = 64 };

static void batch_sgemm_from(kfound *kf)
{
    static const char *const vector_cores[] = {"haswell", "zen", "skylakex", "cooperlake",
                                               "sapphirerapids"};
    const char *core = openblas_get_corename();
    char low[32] = "";
    for (size_t i = 0; core && core[i] && i + 1 < sizeof low; i++)
        low[i] = (char)(core[i] >= 'A' && core[i] <= 'Z' ? core[i] - 'A' + 'a' : core[i]);
    int fast = 0;
    for (size_t i = 0; i < sizeof vector_cores / sizeof *vector_cores; i++)
        fast |= strstr(low, vector_cores[i]) != NULL;
    kf->sgemm_f32 = fast ? KVB_BATCH_SGEMM_F32 : KVB_BATCH_SGEMM_SSE;
    kf->sgemm_other = fast ? KVB_BATCH_SGEMM_OTHER : KVB_BATCH_SGEMM_SSE;
}

/* Y_i[B][rows_i] = X[B][cols] W_i^T for n (<= 3) matrices that read the same
 * X: every weight read once for the B rows, in one hand-off to the pool (the
 * B-vector rows), or matmul's sgemm for large B; -1 when no kernel reads one */
static int matvecn_n(kvb_state *s, kfound *kf, int n, const kvb_wmat *const *w, int B,
                     const float *X, float *const *Y)
{
    /* one row: the one-vector rows (four weight rows at a time) are faster */
    if (B == 1) return matvec_n(s, kf, n, w, X, Y);
    kvb_matvecn_task t[3];
    for (int i = 0; i < n; i++) {
        const kvb_matvec_kernel *k = kernel_for(s, kf, w[i]);
        /* a row without a B-vector form (VNNI rounds x) leaves it to auto */
        if (k && !k->runn) k = kvb_matvec_find(NULL, w[i]->type, w[i]->cols, NULL, 0);
        if (!k || !k->runn) return -1;
        t[i] = (kvb_matvecn_task){k, w[i]->data, w[i]->rows, w[i]->cols, B, X, Y[i]};
    }
    int m = 0;   /* the B-vector tasks to the pool together, the rest to sgemm */
    for (int i = 0; i < n; i++)
        if (B >= (w[i]->type == KVB_WTYPE_F32 ? kf->sgemm_f32 : kf->sgemm_other))
            matmul(s, Y[i], X, w[i], B, 0.0f);
        else
            t[m++] = t[i];
    kvb_matvecn_pool_many(s->pool, t, m);
    return 0;
}

static int matvecn(kvb_state *s, kfound *kf, const kvb_wmat *w, int B, const float *X, float *Y)
{
    return matvecn_n(s, kf, 1, &w, B, X, &Y);
}

/* Every argument of a batched step checked before anything is appended. */
static kvb_status batch_args(const kvb_model *m, const kvb_state *s, const kvb_cache *cache,
                             int B, const int *seqs, const int *tokens, const int *pos,
                             const float *logits)
{
    const kvb_model_config *c = &m->cfg;
    if (B < 1 || B > s->max_seq || !seqs || !tokens || !pos || !logits)
        return KVB_STATUS_INVALID_ARG;
    if (!cache || (kvb_cache_backend(cache)->flags & KVB_BACKEND_RECOMPUTE))
        return KVB_STATUS_UNSUPPORTED;
    for (int i = 0; i < B; i++) {
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size || pos[i] < 0 || pos[i] >= c->max_seq ||
            kvb_cache_length(cache, seqs[i], 0) != pos[i])
            return KVB_STATUS_INVALID_ARG;
        for (int j = 0; j < i; j++)
            if (seqs[j] == seqs[i]) return KVB_STATUS_INVALID_ARG;
    }
    return KVB_STATUS_OK;
}

/* Layer l's attention for the B rows: each row's K/V appended to its
 * sequence, then the queries in batched calls of up to KVB_BATCH_ITEMS (the
 * items live on the stack: a forward call does not allocate). */
static kvb_status batch_attend(const kvb_model *m, kvb_state *s, kvb_cache *cache, int l, int B,
                               const int *seqs)
{
    const int qd = m->cfg.n_heads * m->cfg.head_dim, kvd = m->cfg.n_kv_heads * m->cfg.head_dim;
    kvb_attend_item items[KVB_BATCH_ITEMS];   /* [KVB_BATCH_ITEMS] */
    for (int i = 0; i < B; i++) {
        kvb_status st = kvb_cache_append(cache, seqs[i], l, s->K + (size_t)i * kvd,
                                         s->V + (size_t)i * kvd);
        if (st != KVB_STATUS_OK) return st;
    }
    for (int i0 = 0; i0 < B; i0 += KVB_BATCH_ITEMS) {
        int n = B - i0 < KVB_BATCH_ITEMS ? B - i0 : KVB_BATCH_ITEMS;
        for (int i = 0; i < n; i++)
            items[i] = (kvb_attend_item){seqs[i0 + i], s->Q + (size_t)(i0 + i) * qd,
                                         s->O + (size_t)(i0 + i) * qd};
        kvb_status st = kvb_cache_attend_batch(cache, l, items, n);
        if (st != KVB_STATUS_OK) return st;
    }
    return KVB_STATUS_OK;
}

static void add_rows(float *X, const float *Y, size_t n)
{
    for (size_t i = 0; i < n; i++) X[i] += Y[i];
}

/* The B rows in the sequence pass's buffers: X [B][dim] the residual stream,
 * XB [B][dim] normed rows and then each product's output before it is added,
 * Q/O [B][qd], K/V [B][kvd], H1/H3 [B][hidden]. */
kvb_status kvb_forward_batch(const kvb_model *m, kvb_state *s, kvb_cache *cache, int B,
                             const int *seqs, const int *tokens, const int *pos, float *logits,
                             kvb_step_timing *t)
{
    kvb_status st = batch_args(m, s, cache, B, seqs, tokens, pos, logits);
    if (st != KVB_STATUS_OK) return st;
    const kvb_model_config *c = &m->cfg;
    const int d = c->dim, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim,
              h = c->hidden_dim;
    const float eps = norm_eps(c);
    kfound kf = {0};
    batch_sgemm_from(&kf);
    int bad = 0;
    uint64_t attn = 0;
    for (int i = 0; i < B; i++) embed(m, tokens[i], s->X + (size_t)i * d);
    for (int l = 0; l < c->n_layers; l++) {
        const kvb_layer_weights *w = &m->w.layer[l];
        for (int i = 0; i < B; i++)
            rmsnorm(s->XB + (size_t)i * d, s->X + (size_t)i * d, w->rms_att, d, eps);
        bad |= matvecn_n(s, &kf, 3, (const kvb_wmat *[]){&w->wq, &w->wk, &w->wv}, B, s->XB,
                         (float *[]){s->Q, s->K, s->V});
        for (int i = 0; i < B; i++) {
            rope(s->Q + (size_t)i * qd, c->n_heads, c->head_dim, pos[i], m->rope_freq,
                 c->rope_layout);
            rope(s->K + (size_t)i * kvd, c->n_kv_heads, c->head_dim, pos[i], m->rope_freq,
                 c->rope_layout);
        }
        uint64_t t0 = kvb_now_ns();
        st = batch_attend(m, s, cache, l, B, seqs);
        attn += kvb_now_ns() - t0;
        if (st != KVB_STATUS_OK) return st;
        bad |= matvecn(s, &kf, &w->wo, B, s->O, s->XB);
        add_rows(s->X, s->XB, (size_t)B * d);
        for (int i = 0; i < B; i++)
            rmsnorm(s->XB + (size_t)i * d, s->X + (size_t)i * d, w->rms_ffn, d, eps);
        bad |= matvecn_n(s, &kf, 2, (const kvb_wmat *[]){&w->w1, &w->w3}, B, s->XB,
                         (float *[]){s->H1, s->H3});
        swiglu(s->H1, s->H3, (size_t)B * h);
        bad |= matvecn(s, &kf, &w->w2, B, s->H1, s->XB);
        add_rows(s->X, s->XB, (size_t)B * d);
    }
    for (int i = 0; i < B; i++)
        rmsnorm(s->XB + (size_t)i * d, s->X + (size_t)i * d, m->w.rms_final, d, eps);
    bad |= matvecn(s, &kf, &m->w.wcls, B, s->XB, logits);
    if (t) t->attn_ns = attn;
    return bad ? KVB_STATUS_UNSUPPORTED : KVB_STATUS_OK;
}

/* Y[T][rows] (+)= X W^T in the sequence pass. The cached pass (prefill through
 * the cache, as serving and ppl run it) goes through the batched step's choice
 * (B-vector rows below its sgemm threshold, sgemm above), which on OpenBLAS's
 * SSE kernels prefilled stories110m's 32..128-token prompts 3x faster than
 * sgemm; the causal pass keeps sgemm, so run's prefill and no-cache figures
 * and their baselines stay as they were. Beta 1 adds through tmp ([T][rows]). */
static void seq_mm(kvb_state *s, kfound *kf, int cached, float *Y, const float *X,
                   const kvb_wmat *w, int T, float beta, float *tmp)
{
    float *dst = beta != 0.0f ? tmp : Y;
    if (!cached || matvecn(s, kf, w, T, X, dst)) {
        matmul(s, Y, X, w, T, beta);
        return;
    }
    if (beta != 0.0f)
        for (size_t i = 0, n = (size_t)T * w->rows; i < n; i++) Y[i] += tmp[i];
}

/* The sequence pass of tokens[0..T) at positions pos0..: attention by the
 * causal GEMM kernel (cached = 0; K/V appended when store), or each position
 * appended to and attending through the cache (cached = 1). */
static kvb_status seq_pass(const kvb_model *m, kvb_state *s, kvb_cache *cache, int seq,
                           const int *tokens, int T, int pos0, int store, int cached,
                           uint64_t *attn_ns)
{
    const kvb_model_config *c = &m->cfg;
    const int d = c->dim, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim,
              h = c->hidden_dim;
    const float eps = norm_eps(c);
    uint64_t attn = 0;
    kfound kf = {0};
    batch_sgemm_from(&kf);
    for (int i = 0; i < T; i++) embed(m, tokens[i], s->X + (size_t)i * d);
    for (int l = 0; l < c->n_layers; l++) {
        const kvb_layer_weights *w = &m->w.layer[l];
        for (int i = 0; i < T; i++)
            rmsnorm(s->XB + (size_t)i * d, s->X + (size_t)i * d, w->rms_att, d, eps);
        seq_mm(s, &kf, cached, s->Q, s->XB, &w->wq, T, 0.0f, NULL);
        seq_mm(s, &kf, cached, s->K, s->XB, &w->wk, T, 0.0f, NULL);
        seq_mm(s, &kf, cached, s->V, s->XB, &w->wv, T, 0.0f, NULL);
        for (int i = 0; i < T; i++) {
            rope(s->Q + (size_t)i * qd, c->n_heads, c->head_dim, pos0 + i, m->rope_freq,
                 c->rope_layout);
            rope(s->K + (size_t)i * kvd, c->n_kv_heads, c->head_dim, pos0 + i, m->rope_freq,
                 c->rope_layout);
        }
        uint64_t t0 = kvb_now_ns();
        for (int i = 0; store && i < T; i++) {
            const float *ki = s->K + (size_t)i * kvd, *vi = s->V + (size_t)i * kvd;
            kvb_status st = kvb_cache_append(cache, seq, l, ki, vi);
            if (st == KVB_STATUS_OK && cached)
                st = kvb_cache_attend(cache, seq, l, s->Q + (size_t)i * qd, s->O + (size_t)i * qd);
            if (st != KVB_STATUS_OK) return st;
        }
        if (!cached)
            kvb_attend_causal_gemm(s->Q, s->K, s->V, T, c->n_heads, c->n_kv_heads, c->head_dim,
                                   s->O, s->scratch, s->pool);
        attn += kvb_now_ns() - t0;
        seq_mm(s, &kf, cached, s->X, s->O, &w->wo, T, 1.0f, s->XB);   /* X += O Wo^T */
        for (int i = 0; i < T; i++)
            rmsnorm(s->XB + (size_t)i * d, s->X + (size_t)i * d, w->rms_ffn, d, eps);
        seq_mm(s, &kf, cached, s->H1, s->XB, &w->w1, T, 0.0f, NULL);
        seq_mm(s, &kf, cached, s->H3, s->XB, &w->w3, T, 0.0f, NULL);
        swiglu(s->H1, s->H3, (size_t)T * h);
        seq_mm(s, &kf, cached, s->X, s->H1, &w->w2, T, 1.0f, s->XB);  /* X += H W2^T */
    }
    *attn_ns = attn;
    return KVB_STATUS_OK;
}

static kvb_status seq_args(const kvb_model *m, const kvb_state *s, const int *tokens, int T,
                           int pos0)
{
    const kvb_model_config *c = &m->cfg;
    if (T < 1 || pos0 < 0 || T > s->max_seq - pos0 || T > c->max_seq - pos0)
        return KVB_STATUS_INVALID_ARG;
    for (int i = 0; i < T; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size) return KVB_STATUS_INVALID_ARG;
    return KVB_STATUS_OK;
}

kvb_status kvb_forward_seq(const kvb_model *m, kvb_state *s, kvb_cache *cache, int seq,
                           const int *tokens, int T, kvb_step_timing *t)
{
    kvb_status st = seq_args(m, s, tokens, T, 0);
    if (st != KVB_STATUS_OK) return st;
    const int store = cache && !(kvb_cache_backend(cache)->flags & KVB_BACKEND_RECOMPUTE);
    uint64_t attn;
    st = seq_pass(m, s, cache, seq, tokens, T, 0, store, 0, &attn);
    if (st != KVB_STATUS_OK) return st;
    kfound kf = {0};
    if (logits_from(m, s, &kf, s->X + (size_t)(T - 1) * m->cfg.dim)) return KVB_STATUS_UNSUPPORTED;
    if (t) t->attn_ns = attn;
    return KVB_STATUS_OK;
}

kvb_status kvb_forward_seq_cached(const kvb_model *m, kvb_state *s, kvb_cache *cache, int seq,
                                  const int *tokens, int T, int pos0, float *logits,
                                  kvb_step_timing *t)
{
    const kvb_model_config *c = &m->cfg;
    kvb_status st = seq_args(m, s, tokens, T, pos0);
    if (st != KVB_STATUS_OK) return st;
    if (!cache || (kvb_cache_backend(cache)->flags & KVB_BACKEND_RECOMPUTE))
        return KVB_STATUS_UNSUPPORTED;
    if (kvb_cache_length(cache, seq, 0) != pos0) return KVB_STATUS_INVALID_ARG;
    uint64_t attn;
    st = seq_pass(m, s, cache, seq, tokens, T, pos0, 1, 1, &attn);
    if (st != KVB_STATUS_OK) return st;
    const int d = c->dim;
    if (logits) {
        /* every position's: one matmul of the classifier over the T normed rows */
        for (int i = 0; i < T; i++)
            rmsnorm(s->XB + (size_t)i * d, s->X + (size_t)i * d, m->w.rms_final, d, norm_eps(c));
        matmul(s, logits, s->XB, &m->w.wcls, T, 0.0f);
    } else {
        kfound kf = {0};
        if (logits_from(m, s, &kf, s->X + (size_t)(T - 1) * d)) return KVB_STATUS_UNSUPPORTED;
    }
    if (t) t->attn_ns = attn;
    return KVB_STATUS_OK;
}
