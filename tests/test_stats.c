/* test_stats.c: the statistics behind reports and the regression gate (cmocka).
 *
 * Medians, quantiles and the power fit (its 95% interval covers the true exponent
 * about 95% of the time); the Mann-Whitney U test against exhaustive enumeration;
 * and compare's verdicts: a planted 20% slowdown is always flagged, identical
 * distributions never, too few repetitions are reported as such.
 * Usage: test_stats [REGEX] (or KVB_TEST_FILTER=REGEX): see testlib.h. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/compare.h"
#include "../base/stats.h"
#include "testlib.h"

/* ---- statistics ----------------------------------------------------------- */

static void test_stats(void **state)
{
    (void)state;
    double x[] = {5, 1, 4, 2, 3};
    assert_true(kvb_median(x, 5) == 3.0);
    assert_true(fabs(kvb_quantile(x, 5, 0.1) - 1.4) < 1e-12);   /* numpy: 1.4 */
    assert_true(fabs(kvb_quantile(x, 4, 0.5) - 3.0) < 1e-12);   /* {5,1,4,2}: 3.0 */
    assert_true(isnan(kvb_median(x, 0)));
    assert_true(x[0] == 5);                                      /* input untouched */
    double n[50], y[50], yn[50];
    uint64_t s = 11;
    for (int i = 0; i < 50; i++) {
        n[i] = i + 1;
        y[i] = 3.0 * pow(n[i], 2.0);
    }
    kvb_powerfit f = kvb_fit_power(n, y, 50);
    assert_true(fabs(f.b - 2.0) < 1e-9 && fabs(f.a - 3.0) < 1e-9 && f.r2 > 0.999999);
    /* the 95% interval covers the true exponent in about 95% of noisy trials */
    int covered = 0;
    for (int trial = 0; trial < 400; trial++) {
        for (int i = 0; i < 50; i++)
            yn[i] = y[i] * exp(0.05 * (kvbt_urand(&s) + kvbt_urand(&s) + kvbt_urand(&s)));
        f = kvb_fit_power(n, yn, 50);
        covered += f.b_lo < 2.0 && 2.0 < f.b_hi;
        assert_true(f.b_hi - f.b_lo < 0.1);
    }
    print_message("power fit: 95%% interval covered the true exponent in %d of 400 trials\n",
                  covered);
    assert_true(covered >= 360 && covered <= 396);
    assert_true(fabs(kvb_t975(10) - 2.228) < 1e-9);
    assert_true(fabs(kvb_t975(120) - 1.980) < 2e-3);
    f = kvb_fit_power(n, y, 2);
    assert_true(f.n == 2 && isnan(f.b));
}

/* ---- the regression gate: Mann-Whitney U and the verdicts ----------------- */

/* Two-sided p by brute force over every split of the pooled values (mid-ranks for ties). */
static double brute_mwu_p(const double *x, int nx, const double *y, int ny)
{
    int N = nx + ny;
    double v[24], rank[24];
    for (int i = 0; i < nx; i++) v[i] = x[i];
    for (int i = 0; i < ny; i++) v[nx + i] = y[i];
    for (int i = 0; i < N; i++) {
        int below = 0, equal = 0;
        for (int j = 0; j < N; j++) { below += v[j] < v[i]; equal += v[j] == v[i]; }
        rank[i] = below + (equal + 1) / 2.0;
    }
    double obs = 0, mean = nx * (N + 1) / 2.0, hits = 0, all = 0;
    for (int i = 0; i < nx; i++) obs += rank[i];
    for (unsigned m = 0; m < (1u << N); m++) {
        if (__builtin_popcount(m) != nx) continue;
        double s = 0;
        for (int i = 0; i < N; i++) s += (m >> i & 1) ? rank[i] : 0;
        all++;
        hits += fabs(s - mean) >= fabs(obs - mean) - 1e-9;
    }
    return hits / all;
}

static void test_mann_whitney(void **state)
{
    (void)state;
    kvb_mwu m;
    /* by hand: complete separation; p = 2 / C(n1 + n2, n1) */
    const double a[] = {1, 2, 3}, b[] = {4, 5, 6};
    assert_int_equal(kvb_mann_whitney(a, 3, b, 3, &m), 0);
    assert_true(m.u == 0 && fabs(m.p - 0.1) < 1e-12 && fabs(m.p_min - 0.1) < 1e-12);
    const double c[] = {1, 2, 3, 4, 5}, d[] = {6, 7, 8, 9, 10};
    assert_int_equal(kvb_mann_whitney(d, 5, c, 5, &m), 0);
    assert_true(m.u == 25 && fabs(m.p - 2.0 / 252) < 1e-12);
    /* U counts pairs x > y: {1, 4} vs {2, 3} -> U = 2 (4 beats both), p = 1 */
    const double e[] = {1, 4}, f[] = {2, 3};
    assert_int_equal(kvb_mann_whitney(e, 2, f, 2, &m), 0);
    assert_true(m.u == 2 && fabs(m.p - 1.0) < 1e-12);
    /* ties and every size pair up to 6 x 6, against exhaustive enumeration */
    uint64_t seed = 99;
    for (int nx = 1; nx <= 6; nx++)
        for (int ny = 1; ny <= 6; ny++)
            for (int trial = 0; trial < 6; trial++) {
                double x[6], y[6];
                for (int i = 0; i < nx; i++)
                    x[i] = floor(3 * (kvbt_urand(&seed) + 1)); /* 0..5: ties */
                for (int i = 0; i < ny; i++) y[i] = floor(3 * (kvbt_urand(&seed) + 1)) + trial % 3;
                assert_int_equal(kvb_mann_whitney(x, (size_t)nx, y, (size_t)ny, &m), 0);
                double want = brute_mwu_p(x, nx, y, ny);
                if (fabs(m.p - want) > 1e-9)
                    fail_msg("nx=%d ny=%d: p %.9g, enumeration %.9g", nx, ny, m.p, want);
            }
    /* the normal approximation past the exact range agrees with the exact test near it */
    double big_x[40], big_y[40];
    for (int i = 0; i < 40; i++) {
        big_x[i] = i + 0.5 * kvbt_urand(&seed);
        big_y[i] = i + 6 + 0.5 * kvbt_urand(&seed);
    }
    kvb_mwu exact, approx;
    assert_int_equal(kvb_mann_whitney(big_x, 30, big_y, 30, &exact), 0);     /* 60: exact */
    assert_int_equal(kvb_mann_whitney(big_x, 31, big_y, 31, &approx), 0);    /* 62: normal */
    assert_true(fabs(exact.p - approx.p) < 0.05);
    assert_int_equal(kvb_mann_whitney(a, 0, b, 3, &m), -1);
}

static void test_compare_verdicts(void **state)
{
    (void)state;
    kvb_cmp_opts o = {0.05, 0.10, 0.10, (1u << KVB_CMP_KIND_COUNT) - 1};
    uint64_t seed = 7;
    /* a planted 20% slowdown with 3% noise, 9 repetitions a side: flagged every time;
     * identical distributions: never (the 10% floor keeps noise out even when p < alpha) */
    int flagged = 0, false_alarms = 0, pvalue_hits = 0;
    for (int trial = 0; trial < 200; trial++) {
        double base[9], same[9], slow[9];
        for (int i = 0; i < 9; i++) {
            base[i] = 1e6 * (1 + 0.03 * kvbt_urand(&seed));
            same[i] = 1e6 * (1 + 0.03 * kvbt_urand(&seed));
            slow[i] = 1.2e6 * (1 + 0.03 * kvbt_urand(&seed));
        }
        flagged +=
            kvb_cmp_judge(KVB_CMP_TIME, base, 9, slow, 9, &o).verdict == KVB_VERDICT_REGRESSED;
        kvb_cmp_result r = kvb_cmp_judge(KVB_CMP_TIME, base, 9, same, 9, &o);
        false_alarms += r.verdict == KVB_VERDICT_REGRESSED;
        pvalue_hits += r.p < 0.05;
        /* the same shift in a ratio, and as a drop in the fraction of the ceiling */
        assert_int_equal(kvb_cmp_judge(KVB_CMP_RATIO, base, 9, slow, 9, &o).verdict,
                         KVB_VERDICT_REGRESSED);
        assert_int_equal(kvb_cmp_judge(KVB_CMP_CEILING, slow, 9, base, 9, &o).verdict,
                         KVB_VERDICT_REGRESSED);
        assert_int_equal(kvb_cmp_judge(KVB_CMP_TIME, slow, 9, base, 9, &o).verdict,
                         KVB_VERDICT_IMPROVED);
    }
    assert_int_equal(flagged, 200);
    assert_int_equal(false_alarms, 0);
    assert_true(pvalue_hits < 30);                   /* about alpha x 200 = 10 expected */
    /* a significant but small change is not a regression */
    double b5[5] = {100, 101, 102, 103, 104}, n5[5] = {105, 106, 107, 108, 109};
    kvb_cmp_result r = kvb_cmp_judge(KVB_CMP_TIME, b5, 5, n5, 5, &o);
    assert_true(r.p < 0.05);
    assert_int_equal(r.verdict, KVB_VERDICT_SAME);
    /* three repetitions a side cannot reach alpha 0.05 (p >= 0.1): too few to judge */
    double b3[3] = {1, 1.01, 1.02}, n3[3] = {2, 2.01, 2.02};
    assert_int_equal(kvb_cmp_judge(KVB_CMP_TIME, b3, 3, n3, 3, &o).verdict, KVB_VERDICT_TOO_FEW);
    /* 1 against 39: the smallest p is exactly 2/40 = alpha, so p < alpha cannot happen */
    double one[1] = {10}, many[39];
    for (int i = 0; i < 39; i++) many[i] = 1 + 0.01 * i;
    assert_int_equal(kvb_cmp_judge(KVB_CMP_TIME, many, 39, one, 1, &o).verdict,
                     KVB_VERDICT_TOO_FEW);
    /* a kind left out of the gate (times from another machine) is reported, not judged */
    o.gate &= ~(1u << KVB_CMP_TIME);
    double s9[9], f9[9];
    for (int i = 0; i < 9; i++) { s9[i] = 1 + 0.01 * i; f9[i] = 2 + 0.01 * i; }
    assert_int_equal(kvb_cmp_judge(KVB_CMP_TIME, s9, 9, f9, 9, &o).verdict, KVB_VERDICT_INFO);
    assert_int_equal(kvb_cmp_judge(KVB_CMP_RATIO, s9, 9, f9, 9, &o).verdict, KVB_VERDICT_REGRESSED);
    /* fixed figures: any growth of bytes; errors past the tolerance */
    double by[1] = {4096}, by2[1] = {4097}, e1[1] = {1e-3}, e2[1] = {1.05e-3}, e3[1] = {1.2e-3};
    assert_int_equal(kvb_cmp_judge(KVB_CMP_EXACT, by, 1, by2, 1, &o).verdict,
                     KVB_VERDICT_REGRESSED);
    assert_int_equal(kvb_cmp_judge(KVB_CMP_EXACT, by, 1, by, 1, &o).verdict, KVB_VERDICT_SAME);
    assert_int_equal(kvb_cmp_judge(KVB_CMP_TOL, e1, 1, e2, 1, &o).verdict, KVB_VERDICT_SAME);
    assert_int_equal(kvb_cmp_judge(KVB_CMP_TOL, e1, 1, e3, 1, &o).verdict, KVB_VERDICT_REGRESSED);
}

/* exact p by hand: 6 positive differences, 2 of 64 sign patterns as far from
 * the mean (scipy.stats.wilcoxon gives the same); mid-ranks for ties; zeros dropped */
static void test_wilcoxon(void **state)
{
    (void)state;
    kvb_mwu w;
    double up[6] = {1, 2, 3, 4, 5, 6}, one_down[6] = {1, -2, 3, 4, 5, 6};
    assert_int_equal(kvb_wilcoxon_signed(up, 6, &w), 0);
    assert_true(fabs(w.p - 2.0 / 64) < 1e-12 && fabs(w.p_min - 2.0 / 64) < 1e-12);
    assert_true(fabs(w.u - 21) < 1e-12);
    /* W+ = 19: sums 19, 20, 21 and 0, 1, 2 are as far: 6 of 64 */
    assert_int_equal(kvb_wilcoxon_signed(one_down, 6, &w), 0);
    assert_true(fabs(w.p - 6.0 / 64) < 1e-12);
    /* |d| 1, 1, 1, 2: ranks 2, 2, 2, 4; W+ 8 of 10: 8 of 16 patterns as far */
    double ties[4] = {1, 1, -1, 2};
    assert_int_equal(kvb_wilcoxon_signed(ties, 4, &w), 0);
    assert_true(fabs(w.p - 0.5) < 1e-12 && fabs(w.u - 8) < 1e-12);
    double zeros[7] = {0, 1, 2, 3, 4, 5, 6}, none[3] = {0, 0, 0};
    assert_int_equal(kvb_wilcoxon_signed(zeros, 7, &w), 0);
    assert_true(fabs(w.p - 2.0 / 64) < 1e-12);
    assert_int_equal(kvb_wilcoxon_signed(none, 3, &w), -1);
    /* five pairs cannot reach 0.05 */
    assert_int_equal(kvb_wilcoxon_signed(up, 5, &w), 0);
    assert_true(w.p_min > 0.05);
}

/* rounds that drift together (kvbench ab): a steady 6% in every pair is a
 * regression the pairs see and Mann-Whitney, blind to the pairing, does not;
 * 6% up and down in turn is not one; five pairs are too few */
static void test_compare_paired(void **state)
{
    (void)state;
    kvb_cmp_opts o = {0.05, 0.05, 0.05, (1u << KVB_CMP_KIND_COUNT) - 1};
    double base[8], slow[8], mixed[8];
    for (int i = 0; i < 8; i++) {
        base[i] = 1e6 * (1 + 0.15 * (i % 4));   /* rounds 0-45% apart */
        slow[i] = base[i] * 1.06;
        mixed[i] = base[i] * (i % 2 ? 1.06 : 0.94);
    }
    kvb_cmp_result r = kvb_cmp_judge_paired(KVB_CMP_TIME, 0, base, slow, 8, &o);
    assert_int_equal(r.verdict, KVB_VERDICT_REGRESSED);
    assert_true(fabs(r.change - 0.06) < 1e-9 && r.p < 0.01);
    assert_int_equal(kvb_cmp_judge(KVB_CMP_TIME, base, 8, slow, 8, &o).verdict, KVB_VERDICT_SAME);
    assert_int_equal(kvb_cmp_judge_paired(KVB_CMP_TIME, 0, slow, base, 8, &o).verdict,
                     KVB_VERDICT_IMPROVED);
    assert_int_equal(kvb_cmp_judge_paired(KVB_CMP_CEILING, 0, slow, base, 8, &o).verdict,
                     KVB_VERDICT_REGRESSED);
    assert_int_equal(kvb_cmp_judge_paired(KVB_CMP_TIME, 0, base, mixed, 8, &o).verdict,
                     KVB_VERDICT_SAME);
    assert_int_equal(kvb_cmp_judge_paired(KVB_CMP_TIME, 0, base, slow, 5, &o).verdict,
                     KVB_VERDICT_TOO_FEW);
    /* 3% steady: significant, below min_change */
    for (int i = 0; i < 8; i++) slow[i] = base[i] * 1.03;
    assert_int_equal(kvb_cmp_judge_paired(KVB_CMP_TIME, 0, base, slow, 8, &o).verdict,
                     KVB_VERDICT_SAME);
    /* bytes stay exact */
    double by[1] = {4096}, by2[1] = {4097};
    assert_int_equal(kvb_cmp_judge_paired(KVB_CMP_EXACT, 0, by, by2, 1, &o).verdict,
                     KVB_VERDICT_REGRESSED);
}

int main(int argc, char **argv)
{
    static const kvbt_test all[] = {
        {"stats", test_stats, 0},
        {"mann_whitney", test_mann_whitney, 0},
        {"compare_verdicts", test_compare_verdicts, 0},
        {"wilcoxon", test_wilcoxon, 0},
        {"compare_paired", test_compare_paired, 0},
    };
    return kvbt_main(argc, argv, "stats", all, KVBT_COUNT(all));
}
