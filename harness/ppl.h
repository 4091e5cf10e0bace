/* ppl.h: perplexity and divergence per cache type on the same text, as
 * llama.cpp's llama-perplexity measures them with its cache-type flags.
 *
 * The token stream is cut into windows of ctx tokens (a tail shorter than ctx
 * is dropped). Each window starts from an empty cache. Its first half goes
 * through the cache unscored; its second half through kvb_forward_seq_cached,
 * where every position attends through the cache, so a lossy cache's error
 * reaches each scored position. Position i in [ctx/2, ctx - 1) predicts token
 * i + 1: NLL = -log p(token i + 1), in nats.
 *
 * Per case: perplexity exp(mean NLL) and its error ppl * s / sqrt(n) (s: the
 * NLLs' standard deviation, as llama-perplexity's +/-); against case 0 (the
 * reference, normally the f32 contiguous cache) on the same positions: mean and
 * p99 of KL(ref || case) in nats, and top-1 agreement (the fraction of
 * positions whose argmax is the reference's); the cache's bytes per token after
 * a whole window (kvb_cache_memory's used / ctx).
 *
 * Contract: the model and state are the caller's; each case's cache is created
 * and destroyed here, one at a time. A case its backend does not support is
 * reported with status UNSUPPORTED and its reason, and the others still run. */
#ifndef KVB_PPL_H
#define KVB_PPL_H

#include "../model/model.h"

typedef struct kvb_ppl_case {
    const kvb_backend *backend;
    kvb_options        opts;         /* dtype and the backend's options; max_seqs is set to 1 */
    char               label[64];    /* "contiguous-f32", "quant-q8", ... */
} kvb_ppl_case;

typedef struct kvb_ppl_result {
    kvb_status status;               /* OK, UNSUPPORTED (skipped: why), or the failure */
    char       why[200];
    int        n_windows, n_scored;  /* windows run; positions scored in all */
    double     nll_mean;             /* nats per token */
    double     ppl, ppl_err;
    double     kl_mean, kl_p99;      /* nats; 0 for the reference itself */
    double     top1;                 /* fraction of positions agreeing with the reference */
    double     bytes_per_token;      /* cache bytes holding the window's K/V / ctx */
    double     seconds;              /* wall time of this case's windows */
} kvb_ppl_result;

/* Windows of ctx tokens (4 <= ctx <= the model's and state's max_seq), at most
 * max_windows of them (0: every whole window). out has n_cases rows; case 0 is
 * the reference and must run (its failure fails the call). progress, when not
 * NULL, is called after each window of each case. */
typedef void (*kvb_ppl_progress)(void *arg, int window, int n_windows, int c);
kvb_status kvb_ppl_run(const kvb_model *m, kvb_state *s, const int *tokens, int n_tokens, int ctx,
                       int max_windows, const kvb_ppl_case *cases, int n_cases,
                       kvb_ppl_result *out, kvb_ppl_progress progress, void *progress_arg,
                       char *msg, size_t msg_len);

/* out[0..n) = x - logsumexp(x), summed in double. */
void   kvb_log_softmax(const float *x, int n, float *out);
/* KL(p || q) of two log-probability rows, in nats, clamped at 0 (rounding). */
double kvb_kl_logp(const float *lp, const float *lq, int n);

#endif
