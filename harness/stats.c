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
