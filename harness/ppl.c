/* ppl.c: see ppl.h. Windows outside, cases inside: the reference's
 * log-probabilities of one window are kept ([scored][vocab]) while every other
 * case runs that window, so memory is two windows' halves of logits whatever
 * the number of windows. */
#include "ppl.h"
#include "../base/probe.h"
#include "../base/stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kvb_log_softmax(const float *x, int n, float *out)
{
    double mx = x[0], sum = 0;
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (int i = 0; i < n; i++) sum += exp((double)x[i] - mx);
    double lse = mx + log(sum);
    for (int i = 0; i < n; i++) out[i] = (float)((double)x[i] - lse);
}

double kvb_kl_logp(const float *lp, const float *lq, int n)
{
    double d = 0;
    for (int j = 0; j < n; j++) d += exp((double)lp[j]) * ((double)lp[j] - (double)lq[j]);
    return d > 0 ? d : 0;
}

/* What one case accumulates over the windows. */
typedef struct acc {
    double  nll_sum, nll_sq;
    double *kl;           /* [windows x scored] */
    int     n, agree;
    double  ns;
} acc;

/* One window through one case's fresh cache: logits of the second half into
 * logits[H][V]. */
static kvb_status run_window(const kvb_model *m, kvb_state *s, const kvb_ppl_case *pc,
                             const int *tok, int ctx, float *logits, double *bytes_per_token,
                             char *msg, size_t msg_len)
{
    kvb_shape sh = kvb_model_kv_shape(&m->cfg);
    sh.max_seq = ctx;
    kvb_options o = pc->opts;
    o.max_seqs = 1;
    kvb_cache *c = NULL;
    kvb_status st = kvb_cache_create(&c, pc->backend, &sh, &o, msg, msg_len);
    if (st != KVB_STATUS_OK) return st;
    const int half = ctx / 2;
    st = kvb_forward_seq_cached(m, s, c, 0, tok, half, 0, NULL, NULL);
    if (st == KVB_STATUS_OK)
        st = kvb_forward_seq_cached(m, s, c, 0, tok + half, ctx - half, half, logits, NULL);
    if (st != KVB_STATUS_OK)
        snprintf(msg, msg_len, "%s: the forward pass through the cache failed: %s", pc->label,
                 kvb_status_str(st));
    *bytes_per_token = (double)kvb_cache_memory(c).used / ctx;
    kvb_cache_destroy(c);
    return st;
}

kvb_status kvb_ppl_run(const kvb_model *m, kvb_state *s, const int *tokens, int n_tokens, int ctx,
                       int max_windows, const kvb_ppl_case *cases, int n_cases,
                       kvb_ppl_result *out, kvb_ppl_progress progress, void *progress_arg,
                       char *msg, size_t msg_len)
{
    const int V = m->cfg.vocab_size;
    if (n_cases < 1 || ctx < 4 || ctx > m->cfg.max_seq || ctx > s->max_seq) {
        snprintf(msg, msg_len, "ctx = %d: must be between 4 and the model's max_seq %d", ctx,
                 m->cfg.max_seq < s->max_seq ? m->cfg.max_seq : s->max_seq);
        return KVB_STATUS_INVALID_ARG;
    }
    int n_win = n_tokens / ctx;
    if (max_windows > 0 && n_win > max_windows) n_win = max_windows;
    if (n_win < 1) {
        snprintf(msg, msg_len, "the text is %d tokens: shorter than one window of ctx = %d",
                 n_tokens, ctx);
        return KVB_STATUS_INVALID_ARG;
    }
    for (int i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= V) {
            snprintf(msg, msg_len, "token %d at position %d: outside the vocabulary 0..%d",
                     tokens[i], i, V - 1);
            return KVB_STATUS_INVALID_ARG;
        }
    const int half = ctx / 2, H = ctx - half, scored = H - 1;
    memset(out, 0, (size_t)n_cases * sizeof *out);
    float *logits = malloc((size_t)H * V * sizeof *logits);        /* [H][V] */
    float *ref = malloc((size_t)scored * V * sizeof *ref);          /* [scored][V] */
    float *lp = malloc((size_t)V * sizeof *lp);                     /* [V] */
    int *ref_top = malloc((size_t)scored * sizeof *ref_top);        /* [scored] its argmax */
    acc *a = calloc((size_t)n_cases, sizeof *a);
    int ok = logits && ref && lp && ref_top && a;
    for (int c = 0; ok && c < n_cases; c++)
        ok = (a[c].kl = malloc((size_t)n_win * scored * sizeof *a[c].kl)) != NULL;
    kvb_status st = KVB_STATUS_OK;
    if (!ok) {
        snprintf(msg, msg_len, "out of memory for %d x %d logits", H, V);
        st = KVB_STATUS_NO_MEMORY;
        goto done;
    }
    for (int w = 0; w < n_win; w++) {
        const int *tok = tokens + (size_t)w * ctx;
        for (int c = 0; c < n_cases; c++) {
            kvb_ppl_result *r = &out[c];
            if (r->status != KVB_STATUS_OK) continue;       /* skipped or failed earlier */
            uint64_t t0 = kvb_now_ns();
            kvb_status cs = run_window(m, s, &cases[c], tok, ctx, logits, &r->bytes_per_token,
                                       r->why, sizeof r->why);
            a[c].ns += (double)(kvb_now_ns() - t0);
            if (cs != KVB_STATUS_OK) {
                r->status = cs;
                if (c == 0) {
                    snprintf(msg, msg_len, "the reference %s", r->why);
                    st = cs;
                    goto done;
                }
                continue;
            }
            for (int j = 0; j < scored; j++) {
                float *row = c == 0 ? ref + (size_t)j * V : lp;
                kvb_log_softmax(logits + (size_t)j * V, V, row);
                double nll = -(double)row[tok[half + j + 1]];
                a[c].nll_sum += nll;
                a[c].nll_sq += nll * nll;
                if (c == 0) ref_top[j] = kvb_argmax(row, V);
                a[c].kl[a[c].n] = c == 0 ? 0 : kvb_kl_logp(ref + (size_t)j * V, row, V);
                a[c].agree += c == 0 || kvb_argmax(row, V) == ref_top[j];
                a[c].n++;
            }
            r->n_windows++;
            if (progress) progress(progress_arg, w, n_win, c);
        }
    }
    for (int c = 0; c < n_cases; c++) {
        kvb_ppl_result *r = &out[c];
        const acc *x = &a[c];
        r->seconds = x->ns / 1e9;
        if (r->status != KVB_STATUS_OK || x->n == 0) continue;
        r->n_scored = x->n;
        r->nll_mean = x->nll_sum / x->n;
        double var = x->n > 1 ? (x->nll_sq - x->n * r->nll_mean * r->nll_mean) / (x->n - 1) : 0;
        r->ppl = exp(r->nll_mean);
        r->ppl_err = r->ppl * sqrt(var > 0 ? var : 0) / sqrt((double)x->n);
        double sum = 0;
        for (int i = 0; i < x->n; i++) sum += x->kl[i];
        r->kl_mean = sum / x->n;
        r->kl_p99 = kvb_quantile(x->kl, (size_t)x->n, 0.99);
        r->top1 = (double)x->agree / x->n;
    }
done:
    for (int c = 0; a && c < n_cases; c++) free(a[c].kl);
    free(a);
    free(logits);
    free(ref);
    free(ref_top);
    free(lp);
    return st;
}
