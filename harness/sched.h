/* sched.h: continuous batching of requests through the real model under one
 * KV budget (`kvbench serve`).
 *
 * Contract. Requests arrive on a simulated clock; each model call (a prefill,
 * a batched decode step) advances it by its measured wall time, or by a fixed
 * cost when one is given (tests), so queueing is real while a run takes only
 * its compute. Waiting requests are admitted first come first served while a
 * cache slot is free and the budget holds; each admission prefills the prompt
 * (which yields the first token), then every step decodes one token for every
 * running request with kvb_forward_batch (greedy). When a step would pass the
 * budget (a paged pool has no block for it, an append returns
 * KVB_STATUS_FULL, or the cache's reserved bytes pass budget_bytes) the newest
 * running request is preempted: its sequence is cleared, it waits again at the
 * front of the queue, keeping the tokens it generated, and on readmission
 * either its prompt plus those tokens are prefilled again (recompute), or,
 * with KVB_PREEMPT_SWAP on a backend that has seq_save/seq_load, its sequence
 * was copied to host memory first (at most swap_bytes at once) and is copied
 * back, with no model call (vLLM's two preemption modes). A swap that does not
 * fit the host budget, or a backend that cannot swap, recomputes; each copy's
 * wall time advances the clock. After every model call reserved <=
 * budget_bytes holds. Every request ends finished with
 * all its output tokens, or rejected (it cannot fit even alone), never lost.
 *
 * Prefix caching (prefix_slots > 0): a request's first prefix_len tokens, cut
 * to whole block_tokens blocks, are looked up by hash (tokens compared too) in
 * a table of resident cache sequences; a hit forks that sequence
 * (kvb_cache_seq_fork: a paged cache shares the blocks, a contiguous one
 * copies) and prefills only the rest; a miss fills a new entry first. Entries
 * count the running requests forked from them and are cleared least recently
 * used when their slot or memory is needed and nobody holds them. */
#ifndef KVB_SCHED_H
#define KVB_SCHED_H

#include <stddef.h>
#include <stdint.h>
#include "../model/model.h"

typedef struct kvb_request {
    int id;
    double arrival_s;  /* on the simulated clock; requests sorted by it */
    int prompt_len;    /* >= 1 */
    int output_len;    /* >= 1 tokens to generate */
    int prefix_len;    /* leading prompt tokens others share (a system prompt); 0: none */
    const int *prompt; /* [prompt_len] token ids */
} kvb_request;

typedef enum kvb_req_outcome {
    KVB_REQ_OUTCOME_PENDING = 0,
    KVB_REQ_OUTCOME_FINISHED,
    KVB_REQ_OUTCOME_REJECTED, /* longer than the cache's max_seq, or over the budget alone */
} kvb_req_outcome;

/* What a preempted request's sequence becomes. */
typedef enum kvb_preempt {
    KVB_PREEMPT_RECOMPUTE = 0, /* dropped; prompt and tokens so far prefilled again */
    KVB_PREEMPT_SWAP,          /* copied to host memory and back (kvb_cache_seq_save/_load) */
    KVB_PREEMPT_COUNT
} kvb_preempt;

const char *kvb_preempt_name(kvb_preempt p);

typedef struct kvb_req_result {
    int *tokens;     /* [output_len] greedy tokens, owned (kvb_sched_free) */
    double *token_s; /* [output_len] clock when each token came out */
    int n_out;
    double first_s, finish_s; /* clock of the first and the last token */
    int preemptions;          /* times this request was preempted */
    int swaps;                /* of those, the ones swapped out (not recomputed) */
    int prefix_hit_tokens;    /* prompt tokens its last admission took from the prefix cache */
    kvb_req_outcome outcome;
} kvb_req_result;

/* One model call's aftermath. */
typedef struct kvb_sched_step {
    double t_s;            /* clock after it */
    int batch;             /* sequences decoded (0: a prefill) */
    int running;           /* requests holding a sequence after it */
    int waiting;           /* arrived, not running */
    size_t used, reserved; /* kvb_cache_memory after it (and any preemption it caused) */
    size_t seq_used;       /* sum of every sequence's used: what no sharing would hold */
} kvb_sched_step;

typedef enum kvb_sched_bug {
    KVB_SCHED_BUG_NONE = 0,
    KVB_SCHED_BUG_NO_BUDGET, /* tests: skip every budget check, so they can see it caught */
} kvb_sched_bug;

typedef struct kvb_sched_config {
    int max_batch;       /* running requests at most: cache slots 0..max_batch-1 */
    int prefix_slots;    /* slots after those for prefix entries; 0: no prefix cache */
    int block_tokens;    /* a paged cache's block, and the unit of prefix lengths */
    size_t budget_bytes; /* kvb_cache_memory().reserved at most */
    size_t token_bytes;  /* K/V bytes of one token, every layer: admission's estimate */
    int reserve_tokens;  /* tokens a dense sequence reserves at its first (contiguous
                          * prealloc: the cache's max_seq); 0: as it grows */
    double step_cost_s;  /* > 0: each model call (and swap copy) advances the clock by this */
    kvb_preempt preempt;
    size_t swap_bytes;   /* KVB_PREEMPT_SWAP: host bytes swapped sequences may hold at once */
    kvb_sched_bug bug;
} kvb_sched_config;

typedef struct kvb_sched_stats {
    int finished, rejected, preemptions;
    int swaps_out, swaps_in; /* preemptions swapped out; swapped requests resumed */
    size_t swap_peak;        /* most host bytes held by swapped sequences at once */
    double swap_s;           /* clock spent copying to and from host memory */
    int prefix_lookups, prefix_hits;
    long long prefix_tokens; /* prompt tokens taken from the prefix cache */
    long long out_tokens;    /* generated tokens of finished requests */
    double end_s;            /* clock when the last request ended */
    kvb_sched_step *steps;   /* [n_steps] owned */
    int n_steps, cap_steps;
} kvb_sched_stats;

/* Serves reqs[0..n) on cache (kvb_cache_create'd with max_seqs >= max_batch +
 * prefix_slots, every sequence empty) until each is finished or rejected;
 * res[n] and st are filled (free them with kvb_sched_free). 1 <= max_batch <=
 * s->max_seq. A failure other than memory (a model error) returns its status
 * with msg naming the request. */
kvb_status kvb_sched_run(const kvb_model *m, kvb_state *s, kvb_cache *cache,
                         const kvb_sched_config *cfg, const kvb_request *reqs, int n,
                         kvb_req_result *res, kvb_sched_stats *st, char *msg, size_t msg_len);

/* kvb_sched_run in rounds, so several schedulers (one per cache case) can take
 * turns on one machine and meet the same noise: start checks and sets up
 * (the arguments as kvb_sched_run's, kept by reference until end); each round
 * admits what it can and runs one decode step (a few model calls), *done = 1
 * once every request has ended; end clears the cache's sequences and frees the
 * scheduler (not res or st). Schedulers may share s: a round leaves nothing
 * in it that the next round needs. */
typedef struct kvb_sched kvb_sched;
kvb_status kvb_sched_start(kvb_sched **out, const kvb_model *m, kvb_state *s, kvb_cache *cache,
                           const kvb_sched_config *cfg, const kvb_request *reqs, int n,
                           kvb_req_result *res, kvb_sched_stats *st, char *msg, size_t msg_len);
kvb_status kvb_sched_round(kvb_sched *e, int *done);
double kvb_sched_wall_s(const kvb_sched *e); /* wall seconds its rounds took so far */
void kvb_sched_end(kvb_sched *e);            /* NULL-safe */
void kvb_sched_free(kvb_req_result *res, int n, kvb_sched_stats *st);

#endif
