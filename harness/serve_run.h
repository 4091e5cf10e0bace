/* serve_run.h: `kvbench serve`'s workloads, cases and figures around the
 * scheduler of sched.h.
 *
 * Contract. A workload is a list of requests: seeded prompt tokens and
 * lengths (fixed or uniform in a range), arriving all at once, as a Poisson
 * process at a rate, or as a trace file says; --shared-prefix puts the same
 * seeded tokens before every prompt. The same seed gives the same requests at
 * every rate (Poisson gaps are drawn at rate 1 and scaled), so cases and rates
 * serve the same list.
 *
 * The budget means the same bytes for every backend: a paged cache's pool is
 * the budget; a contiguous prealloc cache holds budget / (max_len x token
 * bytes) sequences, each reserving max_len tokens; a contiguous grow cache
 * admits and appends while its reserved bytes stay within the budget. max_len
 * is the longest request's prompt plus output (a server's max model length),
 * the cache's max_seq. */
#ifndef KVB_SERVE_RUN_H
#define KVB_SERVE_RUN_H

#include <stdio.h>
#include "sched.h"

typedef enum kvb_arrival {
    KVB_ARRIVAL_POISSON = 0,
    KVB_ARRIVAL_ALL,   /* every request at time 0 */
    KVB_ARRIVAL_TRACE, /* times and lengths from a file */
    KVB_ARRIVAL_COUNT
} kvb_arrival;

const char *kvb_arrival_name(kvb_arrival a);

typedef struct kvb_workload_config {
    kvb_arrival arrival;
    double rate;              /* requests per simulated second (POISSON) */
    int n_requests;           /* POISSON, ALL */
    int prompt_lo, prompt_hi; /* each prompt's own tokens, uniform in [lo, hi] */
    int output_lo, output_hi;
    int shared_prefix; /* tokens every prompt starts with, before its own */
    int max_len;       /* positions a sequence may hold (a server's max model length;
                        * prealloc reserves them); 0: the longest request's */
    int vocab;
    uint64_t seed;
    const char *trace; /* TRACE: CSV lines arrival_s,prompt,output */
} kvb_workload_config;

typedef struct kvb_workload {
    kvb_request *req; /* [n] sorted by arrival */
    int *tokens;      /* every prompt's ids, owned */
    int n, max_len;   /* max_len: config's, or the longest prompt + output */
} kvb_workload;

/* The requests; a trace's bad line is refused naming its line and field
 * (KVB_STATUS_FORMAT), an unreadable file with errno's text (KVB_STATUS_IO). */
kvb_status kvb_workload_make(const kvb_workload_config *c, kvb_workload *w, char *msg,
                             size_t msg_len);
void kvb_workload_free(kvb_workload *w);

/* One cache configuration served. */
typedef struct kvb_serve_case {
    const kvb_backend *backend;
    kvb_options opt;     /* dtype, alloc, block_tokens, quant options, threads */
    kvb_preempt preempt; /* SWAP on a backend without seq_save: recompute */
    size_t budget_bytes; /* this case's KV budget; 0: the setup's */
    char name[96];       /* "paged/f32/bs16", "contiguous/f32/prealloc/swap@48MiB" */
} kvb_serve_case;

/* Whether c's backend can swap a sequence out (seq_save and seq_load). */
int kvb_serve_can_swap(const kvb_serve_case *c);

typedef struct kvb_serve_setup {
    size_t swap_bytes;   /* host bytes swapped-out sequences may hold (sched.h) */
    size_t budget_bytes;
    int max_batch;    /* running requests at most (prealloc: what the budget holds) */
    int prefix_cache; /* 1: the prefix table of sched.h */
} kvb_serve_setup;

/* K/V bytes of one token over every layer in the case's storage type. */
size_t kvb_serve_token_bytes(const kvb_model_config *mc, const kvb_serve_case *c);
/* The cache options and scheduler configuration for the budget rule above;
 * INVALID_ARG, naming the budget and the need, when it cannot hold one
 * request of max_len tokens. */
kvb_status kvb_serve_plan(const kvb_model_config *mc, const kvb_serve_case *c,
                          const kvb_serve_setup *su, int max_len, int state_rows, kvb_options *o,
                          kvb_sched_config *sc, char *msg, size_t msg_len);

/* What one (case, rate) run gives. Latencies are in simulated seconds over
 * finished requests: TTFT = first token - arrival, TPOT = (last - first) /
 * (output - 1), ITL = each gap between a request's successive tokens. */
typedef struct kvb_serve_summary {
    double rate;
    int n_requests, finished, rejected, preemptions, max_seqs, max_batch;
    int swaps_out, swaps_in;
    size_t swap_peak;
    double swap_s;
    size_t budget_bytes;
    double sim_s, wall_s, throughput; /* output tokens / simulated second */
    double ttft[3], tpot[3], itl[3];  /* p50, p90, p99 */
    double batch_mean;                /* over decode steps */
    int batch_max;
    double kv_used_mean, kv_reserved_mean; /* over model calls, fractions of the budget */
    int prefix_lookups, prefix_hits;
    long long prefix_tokens;
    double saved_mean, saved_max; /* bytes forks did not store, over model calls */
    double saved_max_blocks;      /* saved_max in a paged cache's blocks; 0 otherwise */
} kvb_serve_summary;

enum { KVB_SERVE_MSG = 512 };

/* Serves w with every case cs[0..n), each with its own cache (as kvb_serve_plan
 * says), scheduler and summary: interleave 1
 * sets them all up (every cache at once: the sum of their budgets), then
 * runs a scheduler round of each in turn (kvb_sched_round) until all are
 * done, so the machine's noise falls on every case alike and their ratios
 * hold; 0 runs one after another (one cache at a time). Per case k: sums[k],
 * res[k * w->n ..], sts[k] (kvb_sched_free each), rcs[k] and msgs[k]; a
 * failed case does not stop the others. */
void kvb_serve_cases_run(const kvb_model *m, kvb_state *s, const kvb_serve_case *cs, int n,
                         const kvb_serve_setup *su, const kvb_workload *w, double rate,
                         int interleave, kvb_serve_summary *sums, kvb_req_result *res,
                         kvb_sched_stats *sts, kvb_status *rcs, char (*msgs)[KVB_SERVE_MSG]);

/* The files' rows: serve.csv (a row per case and rate), requests.csv (per
 * request), steps.csv (per model call). */
#define KVB_SERVE_REAL_HEAD                                                                        \
    "case,backend,dtype,mode,rate,requests,budget_bytes,max_seqs,max_batch,finished,rejected,"     \
    "preemptions,sim_s,wall_s,throughput_tok_s,batch_mean,batch_max,ttft_p50,ttft_p90,ttft_p99,"   \
    "tpot_p50,tpot_p90,tpot_p99,itl_p50,itl_p90,itl_p99,kv_used_mean,kv_reserved_mean,"            \
    "prefix_lookups,prefix_hits,prefix_hit_rate,prefix_tokens,saved_mean_bytes,saved_max_bytes,"   \
    "saved_max_blocks,preempt,swaps_out,swaps_in,swap_peak_bytes,swap_s"
#define KVB_SERVE_REQ_HEAD                                                                         \
    "case,rate,id,arrival_s,prompt,output,outcome,generated,first_s,finish_s,ttft_s,tpot_s,"       \
    "preemptions,prefix_hit_tokens,swaps"
#define KVB_SERVE_STEP_HEAD                                                                        \
    "case,rate,call,t_s,batch,running,waiting,kv_used,kv_reserved,kv_seq_used"
void kvb_serve_write_row(FILE *f, const kvb_serve_case *c, const kvb_serve_summary *s);
void kvb_serve_write_requests(FILE *f, const kvb_serve_case *c, double rate, const kvb_workload *w,
                              const kvb_req_result *res);
void kvb_serve_write_steps(FILE *f, const kvb_serve_case *c, double rate,
                           const kvb_sched_stats *st);

#endif
