/* quality.h: what a lossy cache costs in accuracy on the full model.
 *
 * The reference is the f32 contiguous cache: it generates n tokens greedily
 * from the prompt and keeps every step's next-token distribution. A candidate
 * cache is then fed the same tokens (teacher forcing, so both see the same
 * history) and compared at the n - 1 steps whose distribution comes through
 * the cache (the first comes from the prefill's GEMM attention):
 *   KL(ref || cand) of the next-token distributions, in nats;
 *   top-1 agreement: the fraction of steps whose argmax is the same token.
 * While it runs, every attend of the candidate is also checked against float64
 * attention over the exact K/V it was given (its own activations, before
 * storage): relative L2 and max absolute error, per layer and context length.
 * Prefill goes through the GEMM path and is not measured; decode steps are. */
#ifndef KVB_QUALITY_H
#define KVB_QUALITY_H

#include "../model/model.h"

typedef struct kvb_quality_ref {
    int    n_steps;           /* decode steps compared */
    int   *tokens;            /* [prompt_len + n_steps]: prompt, then the greedy choices */
    float *logp;              /* [n_steps][vocab]: log-softmax of each step's logits */
    int    prompt_len, vocab;
} kvb_quality_ref;

enum { KVB_QUALITY_MAX_CTX = 24 };

typedef struct kvb_quality {
    int    n_steps;           /* distributions compared: generated tokens - 1 */
    double kl_mean, kl_p50, kl_p99, kl_max;   /* nats; NaN when n_steps is 0 */
    double top1;                               /* fraction of steps that agree */
    int    n_layers;
    double *rel_l2_mean; /* [n_layers]: attend's relative L2 against float64, mean over steps */
    double *max_abs;          /* [n_layers]: largest |attend - float64| over all steps */
    int    n_ctx;             /* contexts recorded: powers of two and the last one */
    int    ctx[KVB_QUALITY_MAX_CTX];
    double *rel_l2_at;        /* [n_layers][n_ctx] */
} kvb_quality;

/* Runs the reference: the prompt, then n_steps greedy decode steps. */
kvb_status kvb_quality_reference(const kvb_model *m, kvb_state *s, const int *prompt,
                                 int prompt_len, int n_steps, kvb_quality_ref *ref, char *msg,
                                 size_t msg_len);
void       kvb_quality_ref_free(kvb_quality_ref *ref);

/* Replays ref's tokens through backend b with options o and fills q. */
kvb_status kvb_quality_compare(const kvb_model *m, kvb_state *s, const kvb_backend *b,
                               const kvb_options *o, const kvb_quality_ref *ref, kvb_quality *q,
                               char *msg, size_t msg_len);
void       kvb_quality_free(kvb_quality *q);

/* Makes n_pairs channel pairs of every layer's keys KVB_OUTLIER_SCALE times
 * larger and the same query channels as much smaller: the model computes the
 * same function (up to rounding), its keys hold outlier channels as trained
 * models' keys do. Weights in a stored type are rescaled through f32 (and
 * rounded again); a mapped model's weights are read-only: refused. */
kvb_status kvb_model_key_outliers(kvb_model *m, int n_pairs, char *msg, size_t msg_len);

#endif
