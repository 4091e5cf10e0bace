/* compare.c: see compare.h. The verdicts: each case's tolerance floor and
 * its judgement; compare_load.c reads the cases. */
#define _XOPEN_SOURCE 700
#include "compare.h"
#include "../base/stats.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const verdict_names[KVB_VERDICT_COUNT] = {
    [KVB_VERDICT_SAME] = "same",
    [KVB_VERDICT_REGRESSED] = "REGRESSED",
    [KVB_VERDICT_IMPROVED] = "improved",
    [KVB_VERDICT_TOO_FEW] = "too few samples",
    [KVB_VERDICT_INFO] = "changed (not gated)",
};

const char *kvb_verdict_name(kvb_verdict v)
{
    return v < KVB_VERDICT_COUNT ? verdict_names[v] : "?";
}

/* ---- the tolerance floor ------------------------------------------------------- */

double kvb_cmp_tol_floor(const char *name)
{
    static const struct {
        const char *dt;
        double step;
    } steps[] = {
        {"f32", 0x1p-24}, {"f16", 0x1p-11}, {"bf16", 0x1p-8}, {"q8", 0x1p-7},
        {"q4_1", 0x1p-3}, {"q4", 0x1p-3},   {"q2", 0x1p-1},
    };
    char dt[16] = "";
    const char *p = strstr(name, "dt=");
    if (p)
        sscanf(p + 3, "%15[^,)]", dt);
    else if ((p = strstr(name, "quality(")) != NULL)
        sscanf(p + 8, "%*[^/]/%15[^/)]", dt);
    double step = 0x1p-24;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        if (strcmp(dt, steps[i].dt) == 0) {
            step = steps[i].step;
            break;
        }
    size_t n = strlen(name);
    int kl = n >= 7 && strcmp(name + n - 7, "kl_mean") == 0;
    double part = step / 64;
    return kl ? fmax(0x1p-22, part * part) : fmax(0x1p-17, part);
}

/* ---- the verdict --------------------------------------------------------------- */

/* a sampled case's verdict from its test (either one's p and p_min) and r.change:
 * too few when p < alpha is out of reach, else p < alpha AND min_change the wrong
 * way (a ceiling's drop is the wrong way); a kind out of the gate is reported */
static kvb_cmp_result sampled_verdict(kvb_cmp_kind kind, kvb_cmp_result r, const kvb_mwu *t,
                                      const kvb_cmp_opts *o)
{
    r.p = t->p;
    r.p_min = t->p_min;
    if (t->p_min >= o->alpha) {
        r.verdict = KVB_VERDICT_TOO_FEW;
        return r;
    }
    double worse = kind == KVB_CMP_CEILING ? -r.change : r.change; /* > 0: the wrong way */
    if (r.p < o->alpha && worse >= o->min_change)
        r.verdict = KVB_VERDICT_REGRESSED;
    else if (r.p < o->alpha && -worse >= o->min_change)
        r.verdict = KVB_VERDICT_IMPROVED;
    if (!(o->gate & (1u << kind)) && r.verdict != KVB_VERDICT_SAME) r.verdict = KVB_VERDICT_INFO;
    return r;
}

kvb_cmp_result kvb_cmp_judge(kvb_cmp_kind kind, const double *base, int nb, const double *new_,
                             int nn, const kvb_cmp_opts *o)
{
    return kvb_cmp_judge_floor(kind, 0, base, nb, new_, nn, o);
}

kvb_cmp_result kvb_cmp_judge_floor(kvb_cmp_kind kind, double floor, const double *base, int nb,
                                   const double *new_, int nn, const kvb_cmp_opts *o)
{
    kvb_cmp_result r = {NAN, NAN, NAN, NAN, NAN, KVB_VERDICT_SAME};
    if (nb < 1 || nn < 1) {
        r.verdict = KVB_VERDICT_TOO_FEW;
        return r;
    }
    r.base = kvb_median(base, (size_t)nb);
    r.new_ = kvb_median(new_, (size_t)nn);
    r.change = r.base != 0 ? r.new_ / r.base - 1 : (r.new_ == 0 ? 0 : INFINITY);
    if (kind == KVB_CMP_EXACT || kind == KVB_CMP_TOL) {
        /* errors: round-off moves them by up to the floor, however small they are */
        double slack = kind == KVB_CMP_TOL ? fmax(o->tolerance * fabs(r.base), floor) + 1e-12 : 0;
        r.verdict = r.new_ > r.base + slack   ? KVB_VERDICT_REGRESSED
                    : r.new_ < r.base - slack ? KVB_VERDICT_IMPROVED
                                              : KVB_VERDICT_SAME;
        if (!(o->gate & (1u << kind)) && r.verdict != KVB_VERDICT_SAME)
            r.verdict = KVB_VERDICT_INFO;
        return r;
    }
    kvb_mwu m;
    if (kvb_mann_whitney(base, (size_t)nb, new_, (size_t)nn, &m) != 0) {
        r.verdict = KVB_VERDICT_TOO_FEW;
        return r;
    }
    return sampled_verdict(kind, r, &m, o);
}

kvb_cmp_result kvb_cmp_judge_paired(kvb_cmp_kind kind, double floor, const double *base,
                                    const double *new_, int n, const kvb_cmp_opts *o)
{
    if (kind == KVB_CMP_EXACT || kind == KVB_CMP_TOL || n < 2)
        return kvb_cmp_judge_floor(kind, floor, base, n, new_, n, o);
    kvb_cmp_result r = {NAN, NAN, NAN, NAN, NAN, KVB_VERDICT_SAME};
    double d[KVB_CMP_MAX_SAMPLES];
    for (int i = 0; i < n; i++) {
        if (!(base[i] > 0) || !(new_[i] > 0)) /* ratios need positive values */
            return kvb_cmp_judge_floor(kind, floor, base, n, new_, n, o);
        d[i] = log(new_[i] / base[i]);
    }
    r.base = kvb_median(base, (size_t)n);
    r.new_ = kvb_median(new_, (size_t)n);
    r.change = expm1(kvb_median(d, (size_t)n)); /* the median pair's ratio, less one */
    kvb_mwu w;
    if (kvb_wilcoxon_signed(d, (size_t)n, &w) != 0) return r; /* every pair equal: same */
    return sampled_verdict(kind, r, &w, o);
}

int kvb_cmp_ratio_explained(const kvb_cmp_case *c, const kvb_cmp_case *const *cases,
                            const kvb_cmp_result *res, int n)
{
    if (c->kind != KVB_CMP_RATIO || !c->num[0] || !c->den[0]) return 0;
    int den = 0, num = 0;
    for (int i = 0; i < n; i++) {
        if (cases[i]->kind != KVB_CMP_TIME) continue;
        if (!strcmp(cases[i]->name, c->den)) den = res[i].verdict == KVB_VERDICT_IMPROVED;
        if (!strcmp(cases[i]->name, c->num))
            num = res[i].verdict != KVB_VERDICT_REGRESSED && res[i].verdict != KVB_VERDICT_TOO_FEW;
    }
    return den && num;
}
