/* attend_bench.c: see attend_bench.h. */
#include "attend_bench.h"
#include "../base/probe.h"
#include "../base/stats.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kvb_attend_case_name(const kvb_attend_case *c, const kvb_shape *s, char *buf, size_t n)
{
    char blk[80] = "";
    if (c->backend->flags & KVB_BACKEND_PAGED)
        snprintf(blk, sizeof blk, ",bs=%d", c->opt.block_tokens ? c->opt.block_tokens : 16);
    if (c->opt.kernel && strcmp(c->opt.kernel, "auto") && !(c->backend->flags & KVB_BACKEND_QUANT))
        snprintf(blk + strlen(blk), sizeof blk - strlen(blk), ",kernel=%s", c->opt.kernel);
    if (c->backend->flags & KVB_BACKEND_QUANT)
        snprintf(blk + strlen(blk), sizeof blk - strlen(blk), ",g=%d,r=%d,keys=%s%s%s",
                 c->opt.group ? c->opt.group : 32,
                 c->opt.residual,
                 kvb_key_axis_name(kvb_key_axis_resolve(c->opt.dtype, c->opt.key_axis)),
                 c->opt.qkernel && strcmp(c->opt.qkernel, "auto") ? ",kernel=" : "",
                 c->opt.qkernel && strcmp(c->opt.qkernel, "auto") ? c->opt.qkernel : "");
    if ((c->backend->flags & KVB_BACKEND_WINDOW) && c->opt.window)
        snprintf(blk + strlen(blk), sizeof blk - strlen(blk), ",window=%d", c->opt.window);
    if (c->opt.threads > 1)
        snprintf(blk + strlen(blk), sizeof blk - strlen(blk), ",threads=%d", c->opt.threads);
    snprintf(buf, n, "attend(backend=%s,dt=%s%s,nh=%d,nkv=%d,hd=%d,ctx=%d)", c->backend->name,
             kvb_dtype_name(c->opt.dtype), blk, s->n_heads, s->n_kv_heads, s->head_dim, s->max_seq);
}

static float urand(uint64_t *s)       /* uniform in [-1, 1) */
{
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return (float)((*s >> 40) * (2.0 / 16777216.0) - 1.0);
}

void kvb_attend_reference(const float *q, const float *k, const float *v, int ctx, int nh, int nkv,
                          int hd, double *out, double *sc)
{
    /* A KV head's g query heads together: each key and value row is read once
     * for the group, and the g dot products run as g independent chains. Every
     * sum keeps its own order (a score over i, a max and a sum over t, an
     * output element over t), so the result is the bits of the head-by-head
     * loop; it was 35% of a 131072-token attend command. */
    const int g = nh / nkv;
    enum { G = KVB_REF_HEADS };                       /* g in passes of <= G heads */
    const double rs = sqrt((double)hd);
    for (int j = 0; j < nkv; j++)
        for (int h0 = j * g; h0 < (j + 1) * g; h0 += G) {
            const int gn = (j + 1) * g - h0 < G ? (j + 1) * g - h0 : G;
            double mx[G], sum[G];
            for (int a = 0; a < gn; a++) { mx[a] = -INFINITY; sum[a] = 0; }
            for (int t = 0; t < ctx; t++) {          /* sc: [gn][ctx] */
                const float *kt = k + ((size_t)t * nkv + j) * hd;
                double d[G];
                for (int a = 0; a < gn; a++) d[a] = 0;
                for (int i = 0; i < hd; i++)
                    for (int a = 0; a < gn; a++)
                        d[a] += (double)q[(size_t)(h0 + a) * hd + i] * kt[i];
                for (int a = 0; a < gn; a++) {
                    double x = d[a] / rs;
                    sc[(size_t)a * ctx + t] = x;
                    mx[a] = x > mx[a] ? x : mx[a];
                }
            }
            for (int a = 0; a < gn; a++) {
                double *sa = sc + (size_t)a * ctx;
                for (int t = 0; t < ctx; t++) { sa[t] = exp(sa[t] - mx[a]); sum[a] += sa[t]; }
                for (int i = 0; i < hd; i++) out[(size_t)(h0 + a) * hd + i] = 0;
            }
            for (int t = 0; t < ctx; t++) {
                const float *vt = v + ((size_t)t * nkv + j) * hd;
                for (int a = 0; a < gn; a++) {
                    double *o = out + (size_t)(h0 + a) * hd, w = sc[(size_t)a * ctx + t] / sum[a];
                    for (int i = 0; i < hd; i++) o[i] += w * vt[i];
                }
            }
        }
}

/* Over the newest n of the max_seq tokens: all of them, or a sliding window's. */
static void reference(const float *q, const float *k, const float *v, const kvb_shape *s, int n,
                      double *out)
{
    double *sc = malloc(kvb_attend_reference_scratch(s->max_seq, s->n_heads, s->n_kv_heads) *
                        sizeof *sc);
    if (!sc) return;
    size_t first = (size_t)(s->max_seq - n) * s->n_kv_heads * s->head_dim;
    kvb_attend_reference(q, k + first, v + first, n, s->n_heads, s->n_kv_heads, s->head_dim, out,
                         sc);
    free(sc);
}

int kvb_outlier_channel(int i, int head_dim)
{
    /* pairs kept whole for RoPE, spread over the head: a stride coprime to the
     * number of pairs visits every pair once before any repeats */
    int pairs = head_dim / 2, step = 1;
    static const int primes[] = {7, 5, 3, 11, 13, 17, 19, 23};
    for (size_t j = 0; j < sizeof primes / sizeof primes[0] && step == 1; j++)
        if (pairs % primes[j]) step = primes[j];
    return 2 * ((i * step + 3) % pairs);
}

kvb_status kvb_attend_bench(kvb_attend_case *cases, int n_cases, const kvb_shape *s, int reps,
                            int n_seqs, int key_outliers, unsigned long long seed, char *msg,
                            size_t msg_len)
{
    const int ctx = s->max_seq, nkv = s->n_kv_heads, hd = s->head_dim, nh = s->n_heads;
    const size_t kvn = (size_t)ctx * nkv * hd, qn = (size_t)nh * hd;
    float *k = malloc(kvn * sizeof *k), *v = malloc(kvn * sizeof *v), *q = malloc(qn * sizeof *q);
    float *out = malloc(qn * sizeof *out);
    double *ref = malloc(qn * sizeof *ref), *t = malloc((size_t)reps * n_cases * sizeof *t);
    kvb_cache **caches = calloc((size_t)n_cases, sizeof *caches);
    kvb_status st = KVB_STATUS_OK;
    if (!k || !v || !q || !out || !ref || !t || !caches) {
        snprintf(msg, msg_len, "out of memory for %d tokens of K/V", ctx);
        st = KVB_STATUS_NO_MEMORY;
        goto out;
    }
    uint64_t r = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < kvn; i++) { k[i] = urand(&r); v[i] = urand(&r); }
    for (size_t i = 0; i < qn; i++) q[i] = 2.0f * urand(&r);
    for (int o = 0; o < key_outliers && o < hd / 2; o++) {
        int ch = kvb_outlier_channel(o, hd);
        for (size_t row = 0; row < (size_t)ctx * nkv; row++) {
            k[row * hd + ch] *= KVB_OUTLIER_SCALE;
            k[row * hd + ch + 1] *= KVB_OUTLIER_SCALE;
        }
        for (int h = 0; h < nh; h++) {
            q[(size_t)h * hd + ch] /= KVB_OUTLIER_SCALE;
            q[(size_t)h * hd + ch + 1] /= KVB_OUTLIER_SCALE;
        }
    }
    reference(q, k, v, s, ctx, ref);

    for (int c = 0; c < n_cases; c++) {
        kvb_attend_case *a = &cases[c];
        a->opt.max_seqs = n_seqs > 1 ? n_seqs : 1;
        a->opt.alloc = KVB_ALLOC_GROW;
        char why[160];
        if (kvb_backend_supports(a->backend, s, &a->opt, why, sizeof why) != KVB_STATUS_OK ||
            !a->backend->attend) {
            a->skipped = 1;
            snprintf(a->why, sizeof a->why, "%s", a->backend->attend ? why : "stores nothing");
            continue;
        }
        st = kvb_cache_create(&caches[c], a->backend, s, &a->opt, msg, msg_len);
        for (int i = 0; st == KVB_STATUS_OK && i < ctx; i++)
            for (int q2 = 0; st == KVB_STATUS_OK && q2 < a->opt.max_seqs; q2++)
                st = kvb_cache_append(caches[c], q2, 0, k + (size_t)i * nkv * hd,
                                      v + (size_t)i * nkv * hd);
        if (st != KVB_STATUS_OK) {
            char name[160];
            kvb_attend_case_name(a, s, name, sizeof name);
            snprintf(msg, msg_len, "%s: filling the cache failed: %s", name, kvb_status_str(st));
            goto out;
        }
        a->mem = kvb_cache_memory(caches[c]);
        kvb_memory seq0;
        a->kv_bytes = kvb_cache_seq_memory(caches[c], 0, &seq0) == KVB_STATUS_OK
                          ? seq0.used : 2 * kvn * kvb_dtype_size(a->opt.dtype);
        kvb_cache_attend(caches[c], 0, 0, q, out);
        int held = kvb_cache_attended(caches[c], ctx);
        double *want = held < ctx ? malloc(qn * sizeof *want) : ref;
        if (held < ctx && want) reference(q, k, v, s, held, want);
        double e = want ? 0 : NAN, rr = 0, mx = 0;
        for (size_t i = 0; want && i < qn; i++) {
            e += (out[i] - want[i]) * (out[i] - want[i]);
            rr += want[i] * want[i];
            mx = fmax(mx, fabs(out[i] - want[i]));
        }
        if (want != ref) free(want);
        a->rel_err = sqrt(e / (rr > 0 ? rr : 1));
        a->max_abs_err = isfinite(e) ? mx : INFINITY;
    }
    for (int round = -2; round < reps; round++)        /* two untimed warm-up rounds */
        for (int c = 0; c < n_cases; c++) {
            if (!caches[c]) continue;
            uint64_t t0 = kvb_now_ns();
            kvb_cache_attend(caches[c], 0, 0, q, out);
            uint64_t dt = kvb_now_ns() - t0;
            if (round >= 0) t[(size_t)c * reps + round] = (double)dt;
        }
    for (int c = 0; c < n_cases; c++) {
        if (!caches[c]) continue;
        const double *x = t + (size_t)c * reps;
        cases[c].median_ns = kvb_median(x, (size_t)reps);
        cases[c].p10_ns = kvb_quantile(x, (size_t)reps, 0.1);
        cases[c].p90_ns = kvb_quantile(x, (size_t)reps, 0.9);
        cases[c].gbs = (double)cases[c].kv_bytes / cases[c].median_ns;
        if (cases[c].samples_ns) memcpy(cases[c].samples_ns, x, (size_t)reps * sizeof *x);
    }
out:
    for (int c = 0; caches && c < n_cases; c++)
        kvb_cache_destroy(caches[c]);
    free(caches); free(k); free(v); free(q); free(out); free(ref); free(t);
    return st;
}
