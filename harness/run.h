/* run.h: the generation loop. One "point" is one backend with one storage type
 * and allocation mode; running it means R repetitions, after an untimed warm-up,
 * of: create cache -> prefill P prompt tokens -> decode N tokens greedily, each
 * step timed. The point owns everything it records. */
#ifndef KVB_RUN_H
#define KVB_RUN_H

#include <stdint.h>
#include <stddef.h>
#include "../model/model.h"

typedef struct kvb_step_record {
    int      position;        /* position of the token this step fed in */
    int      token;           /* greedy choice made from this step's logits */
    uint64_t step_ns;         /* whole model step, CLOCK_MONOTONIC */
    uint64_t attn_ns;         /* inside append + attend (causal kernel for nocache) */
    size_t   reserved, used, metadata;   /* cache bytes after the step */
    size_t   rss;             /* process resident set after the step */
} kvb_step_record;

typedef enum kvb_point_status {
    KVB_POINT_PENDING = 0,
    KVB_POINT_OK,
    KVB_POINT_CUT_SHORT,      /* the time budget stopped it; what ran is kept */
    KVB_POINT_SKIPPED,        /* the backend does not support this case */
    KVB_POINT_FAILED,
} kvb_point_status;

const char *kvb_point_status_name(kvb_point_status s);

typedef struct kvb_gen_config {
    const int *prompt;        /* [prompt_len] token ids */
    int        prompt_len;
    int        n_tokens;      /* decode steps per repetition */
    int        reps;
    int        warmup;        /* untimed decode steps before the repetitions */
    double     time_budget_s; /* per point, <= 0: none */
    int        progress;      /* 1: redraw a progress line with ETA on stderr */
} kvb_gen_config;

typedef struct kvb_point {
    const kvb_backend *backend;
    kvb_options        opt;
    kvb_point_status   status;
    char               reason[256];
    int                reps_done;       /* repetitions that ran to their end */
    int               *steps_done;      /* [reps] */
    kvb_step_record   *rec;             /* [reps][n_tokens] */
    kvb_step_record   *prefill;         /* [reps] the prefill as one step: it fed positions
                                         * 0..P-1 (position = P-1) and chose the first
                                         * generated token; step_ns is the time to it */
    int                n_tokens, reps;
} kvb_point;

/* A point's label, e.g. "contiguous/f16/grow", "paged/f32/bs16" or "nocache";
 * its storage type ("-" for nocache) and mode: the allocation mode of a dense
 * store, "bs<N>" for a paged one, "g<group>-r<residual>-k<token|channel>" (and
 * "-prealloc") for a quantized one, "-" for nocache. */
void kvb_point_label(const kvb_point *p, char *buf, size_t n);
const char *kvb_point_dtype(const kvb_point *p);
void kvb_point_mode(const kvb_point *p, char *buf, size_t n);

kvb_status kvb_point_init(kvb_point *p, const kvb_backend *b, const kvb_options *o,
                          int n_tokens, int reps);
void       kvb_point_free(kvb_point *p);

/* Runs every repetition of p. Returns OK when the point ran, was cut short or
 * was skipped (p->status says which), an error status when it failed. idx and
 * count only label the progress line. */
kvb_status kvb_run_point(const kvb_model *m, kvb_state *s, kvb_point *p,
                         const kvb_gen_config *g, int idx, int count);

#endif
