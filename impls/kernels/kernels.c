/* kernels.c: see kernels.h. The dot and axpy loops keep 16 independent partial
 * sums so the compiler can vectorize them without -ffast-math; the attention
 * kernel streams each K row once for all g query heads of its group (GQA reuse)
 * and each V row once likewise. */
#include "kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define KVB_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define KVB_HOT
#endif

KVB_HOT
float kvb_dot_f32(const float *a, const float *b, int n)
{
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += a[i + j] * b[i + j];
    float s = 0.0f;
    for (int j = 0; j < 16; j++) s += acc[j];
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

KVB_HOT
void kvb_axpy_f32(float a, const float *x, float *y, int n)
{
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

size_t kvb_attend_scratch_floats(int g, int n, int head_dim)
{
    return (size_t)g * (size_t)(n > 0 ? n : 1) + (size_t)head_dim + 2u * (size_t)g;
}

void kvb_attend_merge(int parts, int g, int head_dim, const float *part_out, const float *part_ml,
                      float *out)
{
    for (int i = 0; i < g; i++) {
        float m = -INFINITY, wsum = 0.0f, *o = out + (size_t)i * head_dim;
        for (int p = 0; p < parts; p++) {
            float mp = part_ml[((size_t)p * g + i) * 2];
            m = mp > m ? mp : m;
        }
        for (int d = 0; d < head_dim; d++) o[d] = 0.0f;
        for (int p = 0; p < parts; p++) {   /* weights l_p exp(m_p - m) on the normalized outputs */
            const float *ml = part_ml + ((size_t)p * g + i) * 2,
                        *po = part_out + ((size_t)p * g + i) * head_dim;
            float w = ml[1] * expf(ml[0] - m);
            wsum += w;
            for (int d = 0; d < head_dim; d++) o[d] += w * po[d];
        }
        for (int d = 0; d < head_dim; d++) o[d] /= wsum;
    }
}

/* Fastest first: "auto" takes the first row this CPU runs at the head_dim. */
static const kvb_attend_kernel *const attend_kernels[] = {
    &kvb_attend_kernel_avx512, &kvb_attend_kernel_avx2, &kvb_attend_kernel_portable,
};
enum { N_ATTEND_KERNELS = (int)(sizeof attend_kernels / sizeof attend_kernels[0]) };

int kvb_attend_kernel_known(const char *name)
{
    if (!name || strcmp(name, "auto") == 0) return 1;
    for (int i = 0; i < N_ATTEND_KERNELS; i++)
        if (strcmp(name, attend_kernels[i]->name) == 0) return 1;
    return 0;
}

const kvb_attend_kernel *kvb_attend_kernel_find(const char *name, int head_dim, char *why,
                                                size_t why_len)
{
    int any = !name || strcmp(name, "auto") == 0;
    for (int i = 0; i < N_ATTEND_KERNELS; i++) {
        const kvb_attend_kernel *k = attend_kernels[i];
        if (!any && strcmp(name, k->name) != 0) continue;
        if (k->usable() && head_dim % k->multiple == 0) return k;
        if (any) continue;
        if (!why) return NULL;
        if (head_dim % k->multiple)   /* the shape first: the same answer on every CPU */
            snprintf(why, why_len, "attend kernel '%s' needs head_dim a multiple of %d (got %d)",
                     name, k->multiple, head_dim);
        else
            snprintf(why, why_len, "attend kernel '%s': this CPU (or this build) lacks it", name);
        return NULL;
    }
    if (any) return &kvb_attend_kernel_portable;
    if (why)
        snprintf(why, why_len, "attend kernel '%s': allowed are auto, avx512, avx2, portable",
                 name);
    return NULL;
}

const char *kvb_kernels_path(void)
{
    if (kvb_attend_kernel_avx512.usable()) return "avx512 (attend_avx512.c, chosen from CPUID)";
    if (kvb_attend_kernel_avx2.usable()) return "avx2 (attend_avx2.c, chosen from CPUID)";
    return "portable C";
}

static void attend_runs_portable(kvb_dtype dt, const kvb_kv_run *runs, int n_runs,
                                 size_t row_stride, int head_dim, int g, const float *q,
                                 float *out, float *scratch, float *ml)
{
    const size_t row_bytes = row_stride * kvb_dtype_size(dt);
    const float scale = 1.0f / sqrtf((float)head_dim);
    int n = 0;
    for (int r = 0; r < n_runs; r++) n += runs[r].n;
    float *scores = scratch;                         /* [g][n] */
    float *row = scratch + (size_t)g * (size_t)(n > 0 ? n : 1);   /* [head_dim] */
    float *maxs = row + head_dim;                    /* [g] */
    float *inv_sum = maxs + g;                       /* [g] */

    memset(out, 0, (size_t)g * (size_t)head_dim * sizeof(float));
    if (n <= 0) return;
    for (int i = 0; i < g; i++) maxs[i] = -INFINITY;

    for (int r = 0, t = 0; r < n_runs; r++) {
        const char *kp = runs[r].k;
        for (int j = 0; j < runs[r].n; j++, t++, kp += row_bytes) {
            const float *kr = (const float *)(const void *)kp;
            if (dt != KVB_DTYPE_F32) { kvb_row_to_f32(dt, kp, row, head_dim); kr = row; }
            for (int i = 0; i < g; i++) {
                float sc = kvb_dot_f32(q + (size_t)i * head_dim, kr, head_dim) * scale;
                scores[(size_t)i * n + t] = sc;
                if (sc > maxs[i]) maxs[i] = sc;
            }
        }
    }
    for (int i = 0; i < g; i++) {
        float *sc = scores + (size_t)i * n, sum = 0.0f;
        for (int t = 0; t < n; t++) { sc[t] = expf(sc[t] - maxs[i]); sum += sc[t]; }
        inv_sum[i] = 1.0f / sum;                     /* sum >= 1: the max term is exp(0) */
        if (ml) { ml[2 * i] = maxs[i]; ml[2 * i + 1] = sum; }
    }
    for (int r = 0, t = 0; r < n_runs; r++) {
        const char *vp = runs[r].v;
        for (int j = 0; j < runs[r].n; j++, t++, vp += row_bytes) {
            const float *vr = (const float *)(const void *)vp;
            if (dt != KVB_DTYPE_F32) { kvb_row_to_f32(dt, vp, row, head_dim); vr = row; }
            for (int i = 0; i < g; i++)
                kvb_axpy_f32(scores[(size_t)i * n + t], vr, out + (size_t)i * head_dim, head_dim);
        }
    }
    for (int i = 0; i < g; i++)
        for (int d = 0; d < head_dim; d++) out[(size_t)i * head_dim + d] *= inv_sum[i];
}

static int always(void) { return 1; }

const kvb_attend_kernel kvb_attend_kernel_portable = {"portable", 1, always, attend_runs_portable};

size_t kvb_attend_causal_scratch_floats(int n_heads, int n_kv_heads, int T, int head_dim)
{
    size_t rows = kvb_attend_scratch_floats(n_heads / n_kv_heads, T, head_dim);
    size_t gemm = (size_t)KVB_CAUSAL_BLOCK * (size_t)(T > 0 ? T : 1);
    return rows > gemm ? rows : gemm;
}

void kvb_attend_causal_rows(const float *q, const float *k, const float *v, int T,
                            int n_heads, int n_kv_heads, int head_dim, float *out,
                            float *scratch)
{
    const int g = n_heads / n_kv_heads;
    const size_t kv_stride = (size_t)n_kv_heads * head_dim;
    const size_t q_stride = (size_t)n_heads * head_dim;
    const kvb_attend_kernel *kern = kvb_attend_kernel_find(NULL, head_dim, NULL, 0);
    for (int i = 0; i < T; i++)
        for (int h = 0; h < n_kv_heads; h++) {
            size_t qo = (size_t)i * q_stride + (size_t)h * g * head_dim;
            kvb_kv_run run = {k + (size_t)h * head_dim, v + (size_t)h * head_dim, i + 1};
            kern->run(KVB_DTYPE_F32, &run, 1, kv_stride, head_dim, g, q + qo, out + qo, scratch,
                      NULL);
        }
}

KVB_HOT
float kvb_sum_f32(const float *x, size_t n)
{
    /* 64 partial sums (four 512-bit or eight 256-bit chains): fewer chains hold
     * a core below what attend reads (docs/tuning.md), and a ceiling a kernel
     * can beat is no ceiling */
    float acc[64] = {0};
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int j = 0; j < 64; j++) acc[j] += x[i + j];
    float s = 0.0f;
    for (int j = 0; j < 64; j++) s += acc[j];
    for (; i < n; i++) s += x[i];
    return s;
}

typedef struct causal_job {
    const float *q, *k, *v;
    float *out, *scratch;   /* scratch: [threads][kvb_attend_causal_scratch_floats] */
    size_t per_thread;
    int T, n_heads, n_kv_heads, head_dim;
} causal_job;

/* One query head (a pool item): its scores and weighted values per block of rows. */
static void causal_head(void *arg, int h, int thread)
{
    const causal_job *j = arg;
    const int T = j->T, head_dim = j->head_dim, g = j->n_heads / j->n_kv_heads;
    const int qs = j->n_heads * head_dim, kvs = j->n_kv_heads * head_dim;   /* row strides */
    const float scale = 1.0f / sqrtf((float)head_dim);
    float *S = j->scratch + (size_t)thread * j->per_thread;   /* [rows][keys]: scores, weights */
    const float *kh = j->k + (size_t)(h / g) * head_dim, *vh = j->v + (size_t)(h / g) * head_dim;
    for (int i0 = 0; i0 < T; i0 += KVB_CAUSAL_BLOCK) {
        int rows = T - i0 < KVB_CAUSAL_BLOCK ? T - i0 : KVB_CAUSAL_BLOCK;
        int keys = i0 + rows;             /* the block's last row sees every key up to it */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, keys, head_dim, scale,
                    j->q + (size_t)i0 * qs + (size_t)h * head_dim, qs, kh, kvs, 0.0f, S, keys);
        for (int r = 0; r < rows; r++) {
            float *s = S + (size_t)r * keys;
            int n = i0 + r + 1;           /* row i0 + r attends to keys 0..i0 + r */
            float mx = s[0], sum = 0.0f;
            for (int t = 1; t < n; t++) mx = s[t] > mx ? s[t] : mx;
            for (int t = 0; t < n; t++) { s[t] = expf(s[t] - mx); sum += s[t]; }
            float inv = 1.0f / sum;
            for (int t = 0; t < n; t++) s[t] *= inv;
            for (int t = n; t < keys; t++) s[t] = 0.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, head_dim, keys, 1.0f, S,
                    keys, vh, kvs, 0.0f, j->out + (size_t)i0 * qs + (size_t)h * head_dim, qs);
    }
}

void kvb_attend_causal_gemm(const float *q, const float *k, const float *v, int T,
                            int n_heads, int n_kv_heads, int head_dim, float *out,
                            float *scratch, kvb_pool *pool)
{
    causal_job j = {q, k, v, out, scratch,
                    kvb_attend_causal_scratch_floats(n_heads, n_kv_heads, T, head_dim),
                    T, n_heads, n_kv_heads, head_dim};
    kvb_pool_run(pool, n_heads, causal_head, &j);
}
