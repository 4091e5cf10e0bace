/* compare.h: kvbench compare BASE NEW, the regression gate.
 *
 * Contract. A side is a result directory (a run, a sweep or a merge), a
 * directory of several runs of one sweep (runs/<n>/: their samples pooled,
 * so the spread between runs is part of the side), or a Google Benchmark
 * JSON file. kvb_cmp_load turns it into named cases, each a
 * set of samples of one kind:
 *   TIME     per-repetition times (decode totals, attend rounds, gbench
 *            repetitions); lower is better; absolute, so meaningful only when
 *            both sides ran on the same machine;
 *   RATIO    per-round ratios measured within one run (paged or quant over the
 *            contiguous cache timed beside it); lower is better;
 *   CEILING  per-round fraction of the run's own read ceiling; higher is better;
 *   EXACT    a deterministic figure (cache bytes): any growth regresses;
 *   TOL      a deterministic figure that may differ in the last bits between
 *            kernels (errors on seeded inputs): it regresses when it grows past
 *            both the relative tolerance and the absolute floor of its storage
 *            type (kvb_cmp_tol_floor: what round-off of the f32 arithmetic can
 *            move it by, so an f32 path's error, which is all round-off, never
 *            gates, while a q8 error that grows by a tenth does).
 * kvb_cmp_judge gives each matched case a verdict. Sampled kinds regress only
 * when the Mann-Whitney U test rejects equality at alpha AND the median moved
 * the wrong way by at least min_change; a pair of sample sizes that cannot
 * reach alpha is reported as too few, not judged. Only the kinds in the
 * options' gate mask can regress; the caller leaves absolute times out of it
 * when the sides ran on different machines. Where times are gated, a RATIO
 * that regressed only because the time it divides by improved (its own time
 * did not regress) is not a regression: kvbench compare reports it as changed,
 * not gated (kvb_cmp_ratio_explained). */
#ifndef KVB_COMPARE_H
#define KVB_COMPARE_H

#include <stddef.h>
#include "../impls/types/kvb_types.h"

enum { KVB_CMP_MAX_SAMPLES = 64 };

typedef enum kvb_cmp_kind {
    KVB_CMP_TIME = 0, KVB_CMP_RATIO, KVB_CMP_CEILING, KVB_CMP_EXACT, KVB_CMP_TOL, KVB_CMP_KIND_COUNT
} kvb_cmp_kind;

typedef struct kvb_cmp_case {
    char         name[224];
    kvb_cmp_kind kind;
    int          n;
    double       v[KVB_CMP_MAX_SAMPLES];
    char         kernel[64];  /* TOL: "attend kernel/quant kernel" the figure came from,
                               * "" where the result does not say, "mixed" when pooled
                               * runs disagree */
    int load; /* the file load that made it: one file naming a case twice is refused */
    char num[224], den[224];  /* RATIO: the TIME cases it is the quotient of (its own
                               * and the contiguous one timed beside it); "" otherwise */
} kvb_cmp_case;

typedef struct kvb_cmp_set {
    kvb_cmp_case *c;
    int           n, cap;
    char          machine[256];   /* "cpu model @ host": decides whether times are comparable */
    int           load;           /* files read so far */
    int           unfinished;     /* sweep points that failed, timed out or are pending: no cases */
    char          first_unfinished[320];   /* "point (status)" of the first of them */
    char          stale[320];     /* a baseline directory's STALE file, its first line: the
                                   * kernels changed since it was recorded ("" when none) */
} kvb_cmp_set;

/* Refuses (KVB_STATUS_FORMAT, msg naming the file and line) what cannot be
 * judged: a truncated or short row, a time that is not a positive number, a
 * negative byte count or error, a Google Benchmark run with "error_occurred",
 * a file naming one case twice (duplicate points of one label), a sweep point
 * marked finished whose result file is missing, a run of a runs/ pool that
 * holds no results. Points that did not finish are counted, not read. */
kvb_status kvb_cmp_load(kvb_cmp_set *s, const char *path, char *msg, size_t msg_len);
/* The same; with run_medians, a pool of runs (runs/<n>/) gives each case one
 * sample per run, the median of that run's own: for runs that took turns with
 * the other side's (kvbench ab), where a run slow as a whole is one slow
 * sample, not reps of them. Other sides load as kvb_cmp_load does. */
kvb_status kvb_cmp_load_runs(kvb_cmp_set *s, const char *path, int run_medians, char *msg,
                             size_t msg_len);
void       kvb_cmp_free(kvb_cmp_set *s);

typedef enum kvb_verdict {
    KVB_VERDICT_SAME = 0, KVB_VERDICT_REGRESSED, KVB_VERDICT_IMPROVED, KVB_VERDICT_TOO_FEW,
    KVB_VERDICT_INFO, KVB_VERDICT_COUNT
} kvb_verdict;
const char *kvb_verdict_name(kvb_verdict v);

typedef struct kvb_cmp_opts {
    double alpha;             /* default 0.05 */
    double min_change;        /* default 0.10: a relative change of the median */
    double tolerance;         /* TOL kinds, default 0.10 relative */
    unsigned gate;            /* bit 1 << kind: that kind can regress; the others'
                               * changes are reported as not gated */
} kvb_cmp_opts;

/* The absolute floor of a TOL case, from the storage type its name carries
 * (attend cases "dt=q8", quality cases "quality(quant/q8/...)"): the larger
 * of 2^-17 (7.6e-6: f32 round-off of long sums, the whole error of an f32
 * path, with headroom for a summation order) and 1/64 of the type's step
 * (f16 2^-11, bf16 2^-8, q8 2^-7, q4 2^-3, q2 2^-1). For a KL divergence
 * (a case ending in kl_mean) 2^-22 (2.4e-7) and the square of that step part.
 * A name without a known type gets the f32 floor. */
double kvb_cmp_tol_floor(const char *case_name);

typedef struct kvb_cmp_result {
    double base, new_;        /* medians (or the values) */
    double change;            /* new / base - 1 */
    double p, p_min;          /* NaN for deterministic kinds */
    kvb_verdict verdict;
} kvb_cmp_result;

kvb_cmp_result kvb_cmp_judge(kvb_cmp_kind kind, const double *base, int nb, const double *new_,
                             int nn, const kvb_cmp_opts *o);
/* The same, where a TOL case's change must also pass floor (an absolute
 * amount, kvb_cmp_tol_floor of the case) to count; kvb_cmp_judge uses 0. */
kvb_cmp_result kvb_cmp_judge_floor(kvb_cmp_kind kind, double floor, const double *base, int nb,
                                   const double *new_, int nn, const kvb_cmp_opts *o);

/* Sample i of base and of new_ a pair (the same round of kvbench ab's turns:
 * kvb_cmp_load_runs with run_medians, the same runs on both sides): sampled
 * kinds are judged on the pairs' log ratios by the Wilcoxon signed-rank test,
 * so what moved both sides of a round cancels; change is the median pair's
 * ratio less one, and the verdict takes alpha and min_change as
 * kvb_cmp_judge does (6 pairs are needed to reach p < 0.05: fewer say too few).
 * Deterministic kinds, and pairs with a value not above 0, are judged as
 * kvb_cmp_judge_floor judges them. */
kvb_cmp_result kvb_cmp_judge_paired(kvb_cmp_kind kind, double floor, const double *base,
                                    const double *new_, int n, const kvb_cmp_opts *o);

/* 1 when the RATIO case c regressed for its denominator alone: the TIME case
 * named c->den was judged improved and the one named c->num was judged and did
 * not regress. cases[i] and res[i] are the judged cases and their verdicts. */
int kvb_cmp_ratio_explained(const kvb_cmp_case *c, const kvb_cmp_case *const *cases,
                            const kvb_cmp_result *res, int n);

#endif
