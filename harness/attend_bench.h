/* attend_bench.h: attend alone, timed across backends, storage types, block
 * sizes and contexts for one head shape, as `kvbench attend` reports it.
 *
 * Every case of one context holds the same seeded K/V and query, and the cases
 * are timed interleaved (one call of each per round), so slow drifts of a shared
 * machine fall on all of them alike and their ratios stay meaningful. Each
 * case's output is also checked against a float64 reference over the tokens its
 * cache attends (a sliding window's newest): the timed call is the checked call. Bytes read = K and
 * V of every cached token in the storage type; GB = 10^9 bytes. */
#ifndef KVB_ATTEND_BENCH_H
#define KVB_ATTEND_BENCH_H

#include <stddef.h>
#include "../impls/kvb_backend.h"

typedef struct kvb_attend_case {
    const kvb_backend *backend;
    kvb_options        opt;          /* dtype, block_tokens */
    /* results */
    int         skipped;
    char        why[160];
    double      median_ns, p10_ns, p90_ns;
    double      gbs;                 /* kv_bytes / median */
    size_t      kv_bytes;            /* K and V of every token, as stored */
    kvb_memory  mem;
    double      rel_err;             /* relative L2 against float64 */
    double      max_abs_err;         /* largest |out - float64| over every element */
    double     *samples_ns;          /* [reps] each round's time, in round order (the caller
                                      * may point it at room for reps values; NULL: not kept) */
} kvb_attend_case;

/* Cases' name, in the form the tests use: attend(backend=...,dt=...,bs=...,nh=..,...). */
void kvb_attend_case_name(const kvb_attend_case *c, const kvb_shape *s, char *buf, size_t n);

/* Times every case at shape s (one layer; max_seq = the context) over reps
 * interleaved rounds after 2 warm-up rounds. With n_seqs > 1 the cache holds
 * that many sequences, filled token by token in turn, so a paged sequence's
 * blocks are scattered through the pool as in a server; sequence 0 is timed.
 * K, V uniform in [-1, 1), q in [-2, 2). key_outliers > 0 multiplies that many
 * channel pairs of every key by KVB_OUTLIER_SCALE and the same query channels
 * by its inverse: the scores are unchanged, the keys hold outlier channels as
 * real models' keys do. kv_bytes: what sequence 0 holds (codes, scales, f32
 * residual), i.e. what attend reads. */
enum { KVB_OUTLIER_SCALE = 30 };
kvb_status kvb_attend_bench(kvb_attend_case *cases, int n_cases, const kvb_shape *s, int reps,
                            int n_seqs, int key_outliers, unsigned long long seed, char *msg,
                            size_t msg_len);

/* Attention in float64, the reference every lossy figure is measured against:
 * out[h] for query head h reading KV head h / (nh / nkv) over ctx tokens;
 * q: [nh][hd], k, v: [ctx][nkv][hd], out: [nh][hd], sc: scratch of
 * kvb_attend_reference_scratch(ctx, nh, nkv) doubles. */
void kvb_attend_reference(const float *q, const float *k, const float *v, int ctx, int nh, int nkv,
                          int hd, double *out, double *sc);
enum { KVB_REF_HEADS = 16 };   /* query heads the reference takes together, at most */
static inline size_t kvb_attend_reference_scratch(int ctx, int nh, int nkv)
{
    int g = nh / (nkv > 0 ? nkv : 1);
    return (size_t)(ctx > 0 ? ctx : 1) *
           (size_t)(g < KVB_REF_HEADS ? (g > 0 ? g : 1) : KVB_REF_HEADS);
}

/* The channel of the i-th outlier pair's first element (its pair is +1);
 * i < head_dim / 2 gives distinct pairs. */
int kvb_outlier_channel(int i, int head_dim);

#endif
