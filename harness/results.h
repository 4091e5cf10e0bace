/* results.h: the files a run leaves in results/<run-id>/.
 *   meta.json     what anyone needs to reproduce or distrust a number
 *   tokens.csv    one row per point x repetition x decode step
 *   positions.csv one row per point x position: median, p10, p90 over repetitions
 *   summary.json  per point: totals, per-position medians, bytes, fitted exponents
 *   quality.csv   lossy storage only (f16, bf16, quantized): KL, top-1 agreement
 *                 and attend error per layer against the f32 cache (quality.h)
 * Every file is written under a temporary name and renamed; the directory
 * itself is built as <dir>.partial and renamed to <dir> only when complete. */
#ifndef KVB_RESULTS_H
#define KVB_RESULTS_H

#include "ceiling.h"
#include "../model/model.h"
#include "run.h"
#include "topo.h"

typedef struct kvb_run_info {
    const char           *run_id;
    const char           *command_line;
    const char           *model_source;   /* preset name or checkpoint path */
    uint64_t              seed;
    const kvb_model_config *model;
    const char           *wtype;          /* the weights' stored type, or "mixed" */
    uint64_t              weight_bytes;   /* every weight as stored */
    uint64_t              step_bytes;     /* what a decode step reads of them (kvb_model's) */
    const kvb_gen_config *gen;
    int                   blas_threads;
    const kvb_ceilings   *ceil;           /* NULL when not measured */
    uint64_t              started_unix;
    const kvb_topo       *topo;           /* NULL when hwloc could not load it */
    const kvb_pin_set    *pins;           /* policy asked for, where each thread ran */
    int                   threads;        /* --threads asked for */
    int                   oversubscribed; /* 1: more threads than online cores */
} kvb_run_info;

/* Per-point figures derived from the records (also used by tests). */
typedef struct kvb_point_summary {
    int    steps;                 /* positions with at least one sample */
    double total_ns_median, total_ns_p10, total_ns_p90;   /* over full repetitions */
    int    full_reps;
    double prefill_ns_median, prefill_ns_p10, prefill_ns_p90;   /* = time to first token */
    double first_ns_median, first_ns_p10, first_ns_p90;
    double last_ns_median, last_ns_p10, last_ns_p90;
    double last_attn_ns_median;
    int    first_pos, last_pos;
    size_t reserved, used, metadata, rss;   /* after the last step of repetition 1 */
    size_t analytic_used;                   /* 2 x layers x kv_heads x head_dim x es x tokens */
    double fit_total_b, fit_total_b_lo, fit_total_b_hi, fit_total_a, fit_total_r2;
    double fit_tail_b, fit_tail_b_lo, fit_tail_b_hi;   /* n in the last quarter: the asymptote */
    double fit_latency_b, fit_latency_b_lo, fit_latency_b_hi;
    double last_step_gflop, last_step_gbytes;   /* work and bytes of the last step */
} kvb_point_summary;

/* step_bytes: the weight bytes a decode step reads (kvb_model's step_bytes);
 * 0 counts every weight as f32 (the last step's roofline) */
void kvb_point_summarize(const kvb_point *p, const kvb_model_config *m, int prompt_len,
                         uint64_t step_bytes, kvb_point_summary *out);

/* Writes the three files into dir (which must exist). 0 on success, else -1
 * with msg set; no file is left half-written under its final name. */
int kvb_results_write(const char *dir, const kvb_run_info *info, const kvb_point *pts,
                      int n_pts, char *msg, size_t msg_len);

/* Removes what kvb_results_write may have left in dir, then dir itself. */
void kvb_results_remove(const char *dir);

/* "kvbench <commit>[+dirty] (<compiler>)": the build this binary is, as
 * meta.json records it. */
void kvb_version(char *buf, size_t n);

#endif
