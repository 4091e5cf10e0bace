/* serve.h: a serving workload under one KV memory budget (`kvbench serve-sim`).
 *
 * N requests with seeded prompt and output lengths arrive at once and are
 * served in rounds, first come first served: each round admits waiting
 * requests while their prompts fit, then every running sequence appends one
 * token to every layer (and attends, unless attention is off). When memory
 * runs out (a paged pool refuses a block, or a dense cache's reserved bytes
 * pass the budget) the most recently admitted request is preempted: its
 * sequences are freed and it waits again at the front of the queue, as vLLM
 * does by recomputation. The backend's own allocator decides what fits; the
 * simulation only reads kvb_memory. Only the KV shape of the model is used: the
 * K/V values are seeded noise, since memory and attention time do not depend
 * on them.
 *
 * Fork-heavy variants: "parallel" decodes n samples per request from one
 * shared prompt; "beam" keeps n beams that every 4 rounds drop about half
 * of themselves and refill from survivors by forking, so they share ever
 * longer prefixes, as beam search does. */
#ifndef KVB_SERVE_H
#define KVB_SERVE_H

#include <stdint.h>
#include <stddef.h>
#include "../impls/kvb_backend.h"

typedef enum kvb_len_dist {
    KVB_LEN_UNIFORM = 0,      /* uniform on [1, max] */
    KVB_LEN_LONGTAIL,         /* lognormal, median max/8, sigma 1, clipped to [1, max] */
    KVB_LEN_COUNT
} kvb_len_dist;

typedef enum kvb_fork_kind {
    KVB_FORK_NONE = 0,
    KVB_FORK_PARALLEL,        /* n samples from one prompt */
    KVB_FORK_BEAM,            /* n beams, re-forked every 4 rounds */
    KVB_FORK_COUNT
} kvb_fork_kind;

const char *kvb_len_dist_name(kvb_len_dist d);
const char *kvb_fork_kind_name(kvb_fork_kind f);

typedef struct kvb_serve_config {
    kvb_shape     shape;          /* max_seq = max_prompt + max_output */
    int           n_requests;
    int           max_prompt, max_output;
    kvb_len_dist  lengths;
    kvb_fork_kind fork;
    int           fork_n;         /* samples or beams per request (>= 2 with a fork) */
    size_t        budget_bytes;   /* KV memory the cache may hold */
    int           attend;         /* 1: each step attends over every layer too */
    uint64_t      seed;
    double        time_budget_s;  /* > 0: stop after this long; what ran is kept (cut_short) */
} kvb_serve_config;

typedef struct kvb_serve_result {
    kvb_status status;
    char       reason[200];
    int        rounds;
    long long  tokens;            /* decode steps run, redone ones after preemption included */
    long long  output_tokens;     /* output tokens of the finished sequences */
    int        preemptions;
    int        max_running;       /* most sequences running at once */
    double     mean_running;      /* over rounds */
    double     utilization;       /* used / reserved, mean over rounds */
    double     budget_live;       /* used / budget, mean over rounds */
    double     sharing_saved;     /* 1 - held / held without sharing, mean over rounds */
    double     step_ns_median, step_ns_p10, step_ns_p90;   /* one sequence, one token */
    double     wall_s;
    int        cut_short;         /* 1: the time budget stopped it before every request finished */
    int        finished;          /* requests finished */
} kvb_serve_result;

/* Runs the workload on backend b with options o (max_seqs and, for a paged
 * backend, pool_bytes = the budget are set here). */
kvb_status kvb_serve_run(const kvb_backend *b, kvb_options o, const kvb_serve_config *cfg,
                         kvb_serve_result *out);

#endif
