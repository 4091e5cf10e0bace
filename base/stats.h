/* stats.h: order statistics and the power-law fit used by summaries and plots.
 * Pure functions; inputs are never reordered (the sorts work on copies). */
#ifndef KVB_STATS_H
#define KVB_STATS_H

#include <stddef.h>

/* q-quantile (0..1) with linear interpolation between order statistics
 * (the "type 7" rule of R and numpy). n == 0 gives NaN. */
double kvb_quantile(const double *x, size_t n, double q);
double kvb_median(const double *x, size_t n);

typedef struct kvb_powerfit {
    double a, b;              /* y = a * x^b */
    double b_lo, b_hi;        /* 95% confidence interval of b (Student t) */
    double r2;                /* of the log-log line */
    size_t n;                 /* points used */
} kvb_powerfit;

/* Least squares of log y on log x over the points with x > 0 and y > 0.
 * Fewer than 3 usable points gives n < 3 and NaN fields. */
kvb_powerfit kvb_fit_power(const double *x, const double *y, size_t n);

/* Two-sided 97.5% quantile of Student's t with df degrees of freedom. */
double kvb_t975(size_t df);

/* Mann-Whitney U test of two independent samples, two-sided (the test Google
 * Benchmark's compare tool runs, there through scipy; exact here where scipy
 * would approximate). u: U of the first sample (the number of
 * pairs with x > y, ties counting one half); p: the exact probability, under
 * the null hypothesis that both come from one distribution, of a rank sum at
 * least as far from its mean as the one observed, counted over every way of
 * splitting the pooled ranks (ties keep their mid-ranks); p_min: the smallest
 * p these sample sizes can give (2 / C(nx + ny, nx) without ties), so a caller
 * can say when there are too few repetitions to reach a significance level.
 * Exact up to KVB_MWU_EXACT values in all; beyond, the normal approximation
 * with tie and continuity corrections. Returns -1 when a sample is empty or
 * nx + ny > KVB_MWU_MAX. */
enum { KVB_MWU_EXACT = 60, KVB_MWU_MAX = 100000 };
typedef struct kvb_mwu { double u, p, p_min; } kvb_mwu;
int kvb_mann_whitney(const double *x, size_t nx, const double *y, size_t ny, kvb_mwu *out);

/* Wilcoxon signed-rank test of paired differences d (new minus base, or their
 * logs), two-sided: whether they are centred on zero. Zeros are dropped (they
 * favour neither side), ties of |d| share their mid-rank. u: the rank sum of
 * the positive differences; p exact over all 2^n sign patterns of the ranks
 * (a count per doubled rank sum, so mid-ranks stay integers), for n up to
 * KVB_MWU_MAX / 100 nonzero pairs; p_min: 2 / 2^n, the smallest p n pairs
 * can give (6 are needed to reach 0.05). Returns -1 with no nonzero d or too
 * many. For runs that took turns (kvbench ab): a drift shared by both sides of
 * a pair cancels, where Mann-Whitney counts it against them. */
int kvb_wilcoxon_signed(const double *d, size_t n, kvb_mwu *out);

#endif
