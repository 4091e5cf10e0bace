/* stats.c: see stats.h. */
#include "stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double kvb_quantile(const double *x, size_t n, double q)
{
    if (n == 0) return NAN;
    double *c = malloc(n * sizeof *c);
    if (!c) return NAN;
    memcpy(c, x, n * sizeof *c);
    qsort(c, n, sizeof *c, cmp_double);
    double h = (double)(n - 1) * (q < 0 ? 0 : q > 1 ? 1 : q);
    size_t lo = (size_t)floor(h);
    size_t hi = lo + 1 < n ? lo + 1 : lo;
    double r = c[lo] + (h - (double)lo) * (c[hi] - c[lo]);
    free(c);
    return r;
}

double kvb_median(const double *x, size_t n) { return kvb_quantile(x, n, 0.5); }

double kvb_t975(size_t df)
{
    static const double t[] = {NAN, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306,
                               2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110,
                               2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
                               2.052, 2.048, 2.045, 2.042};
    if (df < sizeof t / sizeof t[0]) return t[df];
    /* Cornish-Fisher expansion around the normal quantile: within 1e-3 past df 30 */
    double z = 1.959964, z3 = z * z * z, z5 = z3 * z * z, d = (double)df;
    return z + (z3 + z) / (4 * d) + (5 * z5 + 16 * z3 + 3 * z) / (96 * d * d);
}

kvb_powerfit kvb_fit_power(const double *x, const double *y, size_t n)
{
    kvb_powerfit f = {NAN, NAN, NAN, NAN, NAN, 0};
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(x[i] > 0) || !(y[i] > 0)) continue;
        double lx = log(x[i]), ly = log(y[i]);
        sx += lx; sy += ly; sxx += lx * lx; sxy += lx * ly; m++;
    }
    f.n = m;
    if (m < 3) return f;
    double mx = sx / (double)m, my = sy / (double)m;
    double vxx = sxx - (double)m * mx * mx, vxy = sxy - (double)m * mx * my;
    if (!(vxx > 0)) return f;
    f.b = vxy / vxx;
    f.a = exp(my - f.b * mx);
    double sse = 0, sst = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(x[i] > 0) || !(y[i] > 0)) continue;
        double lx = log(x[i]), ly = log(y[i]);
        double e = ly - (my + f.b * (lx - mx));
        sse += e * e;
        sst += (ly - my) * (ly - my);
    }
    double se = sqrt(sse / (double)(m - 2) / vxx);
    double tq = kvb_t975(m - 2);
    f.b_lo = f.b - tq * se;
    f.b_hi = f.b + tq * se;
    f.r2 = sst > 0 ? 1.0 - sse / sst : 1.0;
    return f;
}

typedef struct ranked { double v; int from_x; double rank; } ranked;

static int cmp_ranked(const void *a, const void *b)
{
    double x = ((const ranked *)a)->v, y = ((const ranked *)b)->v;
    return x < y ? -1 : x > y;
}

int kvb_mann_whitney(const double *x, size_t nx, const double *y, size_t ny, kvb_mwu *out)
{
    size_t N = nx + ny;
    if (!nx || !ny || N > KVB_MWU_MAX) return -1;
    ranked *r = malloc(N * sizeof *r);
    if (!r) return -1;
    for (size_t i = 0; i < nx; i++) r[i] = (ranked){x[i], 1, 0};
    for (size_t i = 0; i < ny; i++) r[nx + i] = (ranked){y[i], 0, 0};
    qsort(r, N, sizeof *r, cmp_ranked);
    double tie_term = 0;                         /* sum of t^3 - t over tie groups */
    for (size_t i = 0; i < N;) {                 /* ties share the mean of their ranks */
        size_t j = i;
        while (j + 1 < N && r[j + 1].v == r[i].v) j++;
        for (size_t k = i; k <= j; k++) r[k].rank = (double)(i + j + 2) / 2.0;
        double t = (double)(j - i + 1);
        tie_term += t * t * t - t;
        i = j + 1;
    }
    double rx2 = 0; /* doubled rank sum of x: mid-ranks become integers */
    for (size_t i = 0; i < N; i++) rx2 += r[i].from_x ? 2 * r[i].rank : 0;
    double mean2 = (double)nx * (double)(N + 1);
    out->u = rx2 / 2 - (double)nx * (double)(nx + 1) / 2;
    if (N > KVB_MWU_EXACT) {
        /* normal approximation with the tie correction and a continuity correction */
        double var = (double)nx * (double)ny / 12.0 *
                     ((double)(N + 1) - tie_term / ((double)N * (double)(N - 1)));
        double z = var > 0 ? (fabs(out->u - (double)nx * (double)ny / 2) - 0.5) / sqrt(var) : 0;
        out->p = z > 0 ? erfc(z / sqrt(2.0)) : 1.0;
        out->p_min =
            2.0 * exp(lgamma((double)nx + 1) + lgamma((double)ny + 1) - lgamma((double)N + 1));
        free(r);
        return 0;
    }
    /* exact: ways[k][s], the subsets of k of the pooled items whose doubled rank sum is s */
    size_t smax = N * (N + 1);
    double *ways = calloc((nx + 1) * (smax + 1), sizeof *ways);
    if (!ways) { free(r); return -1; }
    ways[0] = 1;
    for (size_t i = 0; i < N; i++) {
        size_t d = (size_t)(2 * r[i].rank + 0.5);
        size_t top = i + 1 < nx ? i + 1 : nx;
        for (size_t k = top; k >= 1; k--)
            for (size_t s = smax; s >= d; s--)
                ways[k * (smax + 1) + s] += ways[(k - 1) * (smax + 1) + s - d];
    }
    const double *w = ways + nx * (smax + 1);
    double total = 0, extreme = 0, obs = fabs(rx2 - mean2), far = 0;
    for (size_t s = 0; s <= smax; s++)
        if (w[s] != 0) {
            total += w[s];
            if (fabs((double)s - mean2) >= obs - 1e-9) extreme += w[s];
            if (fabs((double)s - mean2) > far) far = fabs((double)s - mean2);
        }
    double least = 0;                            /* the most extreme sums these sizes allow */
    for (size_t s = 0; s <= smax; s++)
        if (w[s] != 0 && fabs((double)s - mean2) >= far - 1e-9) least += w[s];
    out->p = extreme / total;
    out->p_min = least / total;
    free(r);
    free(ways);
    return 0;
}

int kvb_wilcoxon_signed(const double *d, size_t n, kvb_mwu *out)
{
    if (n > KVB_MWU_MAX / 100) return -1;
    ranked *r = malloc((n ? n : 1) * sizeof *r);
    if (!r) return -1;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (d[i] != 0 && !isnan(d[i])) r[m++] = (ranked){fabs(d[i]), d[i] > 0, 0};
    if (!m) {
        free(r);
        return -1;
    }
    qsort(r, m, sizeof *r, cmp_ranked);
    for (size_t i = 0; i < m;) {
        size_t j = i;
        while (j + 1 < m && r[j + 1].v == r[i].v) j++;
        for (size_t k = i; k <= j; k++) r[k].rank = (double)(i + j + 2) / 2.0;
        i = j + 1;
    }
    /* ways[s]: sign patterns whose doubled positive rank sum is s */
    size_t smax = m * (m + 1);
    double *ways = calloc(smax + 1, sizeof *ways), pos2 = 0;
    if (!ways) {
        free(r);
        return -1;
    }
    ways[0] = 1;
    for (size_t i = 0; i < m; i++) {
        size_t w = (size_t)(2 * r[i].rank + 0.5);
        for (size_t s = smax; s >= w; s--) ways[s] += ways[s - w];
        if (r[i].from_x) pos2 += 2 * r[i].rank;
    }
    double mean2 = (double)smax / 2, obs = fabs(pos2 - mean2), total = 0, extreme = 0;
    for (size_t s = 0; s <= smax; s++) {
        total += ways[s];
        if (fabs((double)s - mean2) >= obs - 1e-9) extreme += ways[s];
    }
    out->u = pos2 / 2;
    out->p = extreme / total;
    out->p_min = 2 / total;
    free(ways);
    free(r);
    return 0;
}
