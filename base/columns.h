/* columns.h: the CSV columns and JSON keys that kvbench's writers and
 * readers share, named once, so renaming one is one edit here.
 *
 * Contract. KVB_COL_* are CSV column names, KVB_KEY_* JSON keys (a dotted
 * path, as kvb_json_at takes it, where the key sits inside another object).
 * Each *_HEAD is a file's header line as its writer prints it, built from the
 * names; readers find every column by name (csv.h), never by position.
 * Writers: harness/results.c (tokens, positions, summary, meta), harness/
 * sweep_run.c (sweep.csv), the run, attend and serve-sim commands (quality,
 * attend, serve). Readers: analysis/ (report, compare) and harness/ (sweep
 * status, merge). Only what a reader reads is named here. */
#ifndef KVB_COLUMNS_H
#define KVB_COLUMNS_H

/* ---- shared by several files ---- */
#define KVB_COL_BACKEND        "backend"
#define KVB_COL_DTYPE          "dtype"
#define KVB_COL_MODE           "mode"
#define KVB_COL_RESERVED_BYTES "reserved_bytes"
#define KVB_COL_USED_BYTES     "used_bytes"

/* ---- tokens.csv: one row per point x repetition x step ---- */
#define KVB_COL_REP     "rep"
#define KVB_COL_STEP    "step"
#define KVB_COL_STEP_NS "step_ns"
#define KVB_COL_PHASE   "phase"
#define KVB_TOKENS_HEAD                                                                            \
    KVB_COL_BACKEND "," KVB_COL_DTYPE "," KVB_COL_MODE "," KVB_COL_REP "," KVB_COL_STEP            \
                    ",position,token," KVB_COL_STEP_NS ",attn_ns," KVB_COL_RESERVED_BYTES          \
                    "," KVB_COL_USED_BYTES ",metadata_bytes,rss_bytes," KVB_COL_PHASE
#define KVB_PHASE_PREFILL "prefill"
#define KVB_PHASE_DECODE  "decode"

/* ---- positions.csv: one row per point x position ---- */
#define KVB_COL_LABEL       "label"
#define KVB_COL_POSITION    "position"
#define KVB_COL_STEP_MEDIAN "step_ns_median"
#define KVB_COL_STEP_P10    "step_ns_p10"
#define KVB_COL_STEP_P90    "step_ns_p90"
#define KVB_COL_ATTN_MEDIAN "attn_ns_median"
#define KVB_POSITIONS_HEAD                                                                         \
    KVB_COL_LABEL "," KVB_COL_POSITION ",samples," KVB_COL_STEP_MEDIAN "," KVB_COL_STEP_P10        \
                  "," KVB_COL_STEP_P90 "," KVB_COL_ATTN_MEDIAN "," KVB_COL_RESERVED_BYTES          \
                  "," KVB_COL_USED_BYTES ",metadata_bytes"

/* ---- attend.csv: one row per attend case ---- */
#define KVB_COL_CASE            "case"
#define KVB_COL_BLOCK           "block_tokens"
#define KVB_COL_HEADS           "n_heads"
#define KVB_COL_KV_HEADS        "n_kv_heads"
#define KVB_COL_HEAD_DIM        "head_dim"
#define KVB_COL_CTX             "ctx"
#define KVB_COL_MEDIAN_NS       "median_ns"
#define KVB_COL_GBS             "gbs"
#define KVB_COL_CEILING         "read_ceiling_gbs"
#define KVB_COL_OF_CEILING      "fraction_of_read_ceiling"
#define KVB_COL_RATIO           "ratio_to_contiguous"
#define KVB_COL_KV_BYTES        "kv_bytes"
#define KVB_COL_BYTES_PER_TOKEN "bytes_per_token"
#define KVB_COL_REL_ERR         "rel_err"
#define KVB_COL_THREADS         "threads"
#define KVB_COL_SAMPLES         "samples_ns"
#define KVB_COL_KERNEL          "kernel"
#define KVB_COL_QKERNEL         "qkernel"
#define KVB_ATTEND_HEAD                                                                            \
    KVB_COL_CASE                                                                                   \
        "," KVB_COL_BACKEND "," KVB_COL_DTYPE "," KVB_COL_BLOCK "," KVB_COL_HEADS                  \
        "," KVB_COL_KV_HEADS "," KVB_COL_HEAD_DIM "," KVB_COL_CTX ",reps," KVB_COL_MEDIAN_NS       \
        ",p10_ns,p90_ns," KVB_COL_KV_BYTES "," KVB_COL_GBS "," KVB_COL_RATIO                       \
        "," KVB_COL_RESERVED_BYTES "," KVB_COL_USED_BYTES ",waste," KVB_COL_REL_ERR                \
        ",max_abs_err,group,residual,key_axis,key_outliers," KVB_COL_BYTES_PER_TOKEN               \
        ",analytic_bytes_per_token," KVB_COL_CEILING "," KVB_COL_OF_CEILING "," KVB_COL_THREADS    \
        "," KVB_COL_KERNEL ",threads_oversubscribed," KVB_COL_SAMPLES

/* ---- quality.csv: one row per lossy point x layer ---- */
#define KVB_COL_POINT       "point"
#define KVB_COL_KL_MEAN     "kl_mean"
#define KVB_COL_TOP1        "top1"
#define KVB_COL_LAYER       "layer"
#define KVB_COL_ATTN_REL_L2 "attn_rel_l2_mean"
#define KVB_QUALITY_HEAD                                                                           \
    KVB_COL_POINT "," KVB_COL_BACKEND "," KVB_COL_DTYPE "," KVB_COL_MODE ",steps," KVB_COL_KL_MEAN \
                  ",kl_p50,kl_p99,kl_max," KVB_COL_TOP1 "," KVB_COL_LAYER "," KVB_COL_ATTN_REL_L2  \
                  ",attn_max_abs"

/* ---- serve.csv: one row per cache x request lengths ---- */
#define KVB_COL_CACHE        "cache"
#define KVB_COL_LENGTHS      "lengths"
#define KVB_COL_UTILIZATION  "utilization"
#define KVB_COL_MEAN_RUNNING "mean_running"
#define KVB_SERVE_HEAD                                                                             \
    KVB_COL_CACHE "," KVB_COL_LENGTHS                                                              \
                  ",fork,fork_n,requests,budget_bytes,max_running," KVB_COL_MEAN_RUNNING           \
                  "," KVB_COL_UTILIZATION ",budget_live,sharing_saved,preemptions,step_ns_median," \
                  "step_ns_p10,step_ns_p90,tokens,rounds,wall_s,status,reason"

/* ---- ppl.csv: one row per cache of kvbench ppl ---- */
#define KVB_COL_PPL  "ppl"
#define KVB_COL_DPPL "dppl"
#define KVB_PPL_HEAD                                                                               \
    KVB_COL_CASE "," KVB_COL_BACKEND "," KVB_COL_DTYPE                                             \
                 ",status,model,ctx,windows,scored,nll," KVB_COL_PPL ",ppl_err," KVB_COL_DPPL      \
                 "," KVB_COL_KL_MEAN ",kl_p99," KVB_COL_TOP1 "," KVB_COL_BYTES_PER_TOKEN ",seconds"

/* ---- sweep.csv: one row per point of a sweep ---- */
#define KVB_COL_KIND    "kind"
#define KVB_COL_STATUS  "status"
#define KVB_COL_SECONDS "seconds"
#define KVB_SWEEP_HEAD                                                                             \
    KVB_COL_POINT "," KVB_COL_KIND "," KVB_COL_STATUS "," KVB_COL_SECONDS                          \
                  ",budget_s,command,host,cpu"

/* ---- summary.json and meta.json ---- */
#define KVB_KEY_POINTS        "points"
#define KVB_KEY_LABEL         "label"
#define KVB_KEY_DTYPE         "dtype"
#define KVB_KEY_STATUS        "status"
#define KVB_KEY_LAST_POSITION "last_position"
#define KVB_KEY_QUANTIZED     "quantized_tokens" /* read when there; no writer yet */
#define KVB_KEY_CACHE_BYTES   "cache_bytes"
#define KVB_KEY_USED          "used"
#define KVB_KEY_RESERVED      "reserved"
#define KVB_KEY_ANALYTIC_USED "analytic_used"
#define KVB_KEY_FIT_TOTAL     "fit_total_time"
#define KVB_KEY_FIT_TAIL      "fit_total_time_tail"
#define KVB_KEY_B             "b"
#define KVB_KEY_B_CI95        "b_ci95"
#define KVB_KEY_A_NS          "a_ns"
#define KVB_KEY_KERNEL        "kernel"
#define KVB_KEY_QKERNEL       "qkernel"
#define KVB_KEY_DATE          "date"
#define KVB_KEY_COMMAND       "command"
#define KVB_KEY_MACHINE       "machine"
#define KVB_KEY_HOST          "host"
#define KVB_KEY_CPU_MODEL     "cpu_model"
/* paths for readers */
#define KVB_PATH_HOST          KVB_KEY_MACHINE "." KVB_KEY_HOST
#define KVB_PATH_CPU_MODEL     KVB_KEY_MACHINE "." KVB_KEY_CPU_MODEL
#define KVB_PATH_USED          KVB_KEY_CACHE_BYTES "." KVB_KEY_USED
#define KVB_PATH_RESERVED      KVB_KEY_CACHE_BYTES "." KVB_KEY_RESERVED
#define KVB_PATH_ANALYTIC_USED KVB_KEY_CACHE_BYTES "." KVB_KEY_ANALYTIC_USED

/* ---- point statuses (summary.json "status", sweep.csv "status") ---- */
#define KVB_STATUS_NAME_OK        "ok"
#define KVB_STATUS_NAME_CUT_SHORT "cut_short"
#define KVB_STATUS_NAME_SKIPPED   "skipped"

#endif
