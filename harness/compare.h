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
 *            CPUs (errors on seeded inputs): growth past the tolerance regresses.
 * kvb_cmp_judge gives each matched case a verdict. Sampled kinds regress only
 * when the Mann-Whitney U test rejects equality at alpha AND the median moved
 * the wrong way by at least min_change; a pair of sample sizes that cannot
 * reach alpha is reported as too few, not judged. Only the kinds in the
 * options' gate mask can regress; the caller leaves absolute times out of it
 * when the sides ran on different machines. */
#ifndef KVB_COMPARE_H
#define KVB_COMPARE_H

#include <stddef.h>
#include "../impls/kvb_backend.h"

enum { KVB_CMP_MAX_SAMPLES = 64 };

typedef enum kvb_cmp_kind {
    KVB_CMP_TIME = 0, KVB_CMP_RATIO, KVB_CMP_CEILING, KVB_CMP_EXACT, KVB_CMP_TOL, KVB_CMP_KIND_COUNT
} kvb_cmp_kind;

typedef struct kvb_cmp_case {
    char         name[224];
    kvb_cmp_kind kind;
    int          n;
    double       v[KVB_CMP_MAX_SAMPLES];
} kvb_cmp_case;

typedef struct kvb_cmp_set {
    kvb_cmp_case *c;
    int           n, cap;
    char          machine[256];   /* "cpu model @ host": decides whether times are comparable */
} kvb_cmp_set;

kvb_status kvb_cmp_load(kvb_cmp_set *s, const char *path, char *msg, size_t msg_len);
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

typedef struct kvb_cmp_result {
    double base, new_;        /* medians (or the values) */
    double change;            /* new / base - 1 */
    double p, p_min;          /* NaN for deterministic kinds */
    kvb_verdict verdict;
} kvb_cmp_result;

kvb_cmp_result kvb_cmp_judge(kvb_cmp_kind kind, const double *base, int nb, const double *new_, int nn,
                             const kvb_cmp_opts *o);

#endif
