/* matvec.c: see matvec.h. The portable rows (the reference every SIMD row is
 * timed beside), the kernel table and the pool split. Dense rows go through
 * kvb_dot_f32 (16 partial sums, also built for x86-64-v3/v4); f16 and bf16
 * rows are converted 256 values at a time into a stack buffer first, and so
 * are the 4- and 6-bit block types (by kvb_wrow_to_f32); q8_0 keeps 8 partial
 * sums per block and scales each block's sum by its d. The portable B-vector
 * rows convert each row 256 values at a time (any type) and dot the chunk
 * with every x[b]. */
#include "matvec.h"

#include "kernels.h"

#include <stdio.h>
#include <string.h>

enum { CONV = 256 };   /* values converted at a time: a whole k-type block */

static void mv_f32(const void *w, int in, const float *x, float *y, int r0, int r1)
{
    for (int r = r0; r < r1; r++) y[r] = kvb_dot_f32((const float *)w + (size_t)r * in, x, in);
}

/* any type through kvb_wrow_to_f32, CONV values (whole blocks) at a time */
static void mv_conv(kvb_wtype wt, const void *w, int in, const float *x, float *y, int r0,
                    int r1)
{
    const size_t rb = kvb_wtype_row_bytes(wt, in);
    float buf[CONV];   /* [CONV] one chunk of the row in f32 */
    for (int r = r0; r < r1; r++) {
        const char *row = (const char *)w + (size_t)r * rb;
        float s = 0.0f;
        for (int i = 0; i < in; i += CONV) {
            int n = in - i < CONV ? in - i : CONV;
            kvb_wrow_to_f32(wt, row + kvb_wrow_offset(wt, i), buf, n);
            s += kvb_dot_f32(buf, x + i, n);
        }
        y[r] = s;
    }
}

static void mv_f16(const void *w, int in, const float *x, float *y, int r0, int r1)
{
    mv_conv(KVB_WTYPE_F16, w, in, x, y, r0, r1);
}

static void mv_bf16(const void *w, int in, const float *x, float *y, int r0, int r1)
{
    mv_conv(KVB_WTYPE_BF16, w, in, x, y, r0, r1);
}

/* per block: d * sum(q * x), the block sums added up in order */
static void mv_q8_0(const void *w, int in, const float *x, float *y, int r0, int r1)
{
    const size_t rb = kvb_wtype_row_bytes(KVB_WTYPE_Q8_0, in);
    for (int r = r0; r < r1; r++) {
        const uint8_t *b = (const uint8_t *)w + (size_t)r * rb;
        float s = 0.0f;
        for (int c = 0; c < in; c += KVB_Q8_0_BLOCK, b += KVB_Q8_0_BYTES) {
            uint16_t h;
            memcpy(&h, b, 2);
            float acc[8] = {0};
            for (int e = 0; e < KVB_Q8_0_BLOCK; e += 8)
                for (int j = 0; j < 8; j++) acc[j] += (float)(int8_t)b[2 + e + j] * x[c + e + j];
            float t = 0.0f;
            for (int j = 0; j < 8; j++) t += acc[j];
            s += kvb_f16_to_f32(h) * t;
        }
        y[r] = s;
    }
}

static void mv_q4_0(const void *w, int in, const float *x, float *y, int r0, int r1)
{
    mv_conv(KVB_WTYPE_Q4_0, w, in, x, y, r0, r1);
}

static void mv_q4_k(const void *w, int in, const float *x, float *y, int r0, int r1)
{
    mv_conv(KVB_WTYPE_Q4_K, w, in, x, y, r0, r1);
}

static void mv_q6_k(const void *w, int in, const float *x, float *y, int r0, int r1)
{
    mv_conv(KVB_WTYPE_Q6_K, w, in, x, y, r0, r1);
}

/* per pass of up to KVB_MATVECN_PASS vectors: one sum per vector, each chunk
 * of the row converted once for the pass (CONV is a whole number of every
 * type's blocks, so chunks start on a block) */
static void mvn_any(kvb_wtype wt, const void *w, int in, int B, const float *x, float *y,
                    int ldy, int r0, int r1)
{
    const size_t rb = kvb_wtype_row_bytes(wt, in);
    float buf[CONV];                 /* [CONV] one chunk of the row in f32 */
    float s[KVB_MATVECN_PASS];       /* [pass] */
    for (int r = r0; r < r1; r++) {
        const char *row = (const char *)w + (size_t)r * rb;
        for (int b0 = 0; b0 < B; b0 += KVB_MATVECN_PASS) {
            const int nb = B - b0 < KVB_MATVECN_PASS ? B - b0 : KVB_MATVECN_PASS;
            for (int b = 0; b < nb; b++) s[b] = 0.0f;
            for (int i = 0; i < in; i += CONV) {
                int n = in - i < CONV ? in - i : CONV;
                kvb_wrow_to_f32(wt, row + kvb_wrow_offset(wt, i), buf, n);
                for (int b = 0; b < nb; b++)
                    s[b] += kvb_dot_f32(buf, x + (size_t)(b0 + b) * in + i, n);
            }
            for (int b = 0; b < nb; b++) y[(size_t)(b0 + b) * ldy + r] = s[b];
        }
    }
}

KVB_MATVECN_ROWS(, mvn_any)
KVB_MATVECN_ONE(, mvn_any, mvn_q4_0, KVB_WTYPE_Q4_0)
KVB_MATVECN_ONE(, mvn_any, mvn_q4_k, KVB_WTYPE_Q4_K)
KVB_MATVECN_ONE(, mvn_any, mvn_q6_k, KVB_WTYPE_Q6_K)

static int always(void) { return 1; }

static const kvb_matvec_kernel portable_rows[KVB_WTYPE_COUNT] = {
    {"portable", KVB_WTYPE_F32, 1, 0, always, mv_f32, mvn_f32},
    {"portable", KVB_WTYPE_F16, 1, 0, always, mv_f16, mvn_f16},
    {"portable", KVB_WTYPE_BF16, 1, 0, always, mv_bf16, mvn_bf16},
    {"portable", KVB_WTYPE_Q8_0, KVB_Q8_0_BLOCK, 0, always, mv_q8_0, mvn_q8_0},
    {"portable", KVB_WTYPE_Q4_0, KVB_Q4_0_BLOCK, 0, always, mv_q4_0, mvn_q4_0},
    {"portable", KVB_WTYPE_Q4_K, KVB_QK_BLOCK, 0, always, mv_q4_k, mvn_q4_k},
    {"portable", KVB_WTYPE_Q6_K, KVB_QK_BLOCK, 0, always, mv_q6_k, mvn_q6_k},
};

/* fastest first: the AVX-512 rows (VNNI q8_0 first), AVX2, then portable */
static const struct {
    const kvb_matvec_kernel *rows;
    int n;
} tables[] = {
    {kvb_matvec_avx512_rows, KVB_MATVEC_BASE_ROWS + 1},
    {kvb_matvec_avx512_qk_rows, KVB_MATVEC_QK_ROWS},
    {kvb_matvec_avx2_rows, KVB_MATVEC_BASE_ROWS},
    {portable_rows, KVB_WTYPE_COUNT},
};

static const kvb_matvec_kernel *row_at(int i)
{
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; i -= tables[t++].n)
        if (i < tables[t].n) return &tables[t].rows[i];
    return NULL;
}

int kvb_matvec_kernel_count(void)
{
    int n = 0;
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) n += tables[t].n;
    return n;
}

const kvb_matvec_kernel *kvb_matvec_kernel_at(int i)
{
    return i >= 0 ? row_at(i) : NULL;
}

const kvb_matvec_kernel *kvb_matvec_find(const char *name, kvb_wtype wt, int in, char *why,
                                         size_t why_len)
{
    int any = !name || strcmp(name, "auto") == 0, known = any;
    if (!kvb_wtype_traits_of(wt) || in <= 0 || kvb_wtype_row_bytes(wt, in) == 0) {
        if (why)
            snprintf(why, why_len, "matvec: %s rows of %d values are not allowed",
                     kvb_wtype_name(wt), in);
        return NULL;
    }
    for (int i = 0, n = kvb_matvec_kernel_count(); i < n; i++) {
        const kvb_matvec_kernel *k = row_at(i);
        if (any ? k->rounds_x : strcmp(name, k->name) != 0) continue;
        known = 1;
        if (k->wtype != wt) continue;
        if (k->run && k->usable() && in % k->multiple == 0) return k;
        if (any) continue;
        if (why) {
            if (in % k->multiple)
                snprintf(why, why_len, "matvec kernel '%s' needs in a multiple of %d (got %d)",
                         name, k->multiple, in);
            else
                snprintf(why, why_len, "matvec kernel '%s': this CPU (or this build) lacks it",
                         name);
        }
        return NULL;
    }
    if (why && known)
        snprintf(why, why_len, "matvec kernel '%s' has no %s row", name ? name : "auto",
                 kvb_wtype_name(wt));
    else if (why)
        snprintf(why, why_len,
                 "matvec kernel '%s': allowed are auto, avx512-vnni, avx512, avx2, portable", name);
    return NULL;
}

/* A hand-off's rows in pieces, guided: each piece is 1 / (2 * threads) of the
 * weight bytes not yet given out (16 rows at least, and MV_PIECE_MIN bytes),
 * so the first pieces are large and the last small, and the thread that runs
 * out first waits for at most one small piece. Even pieces of 1/4 a thread
 * (before) left the other thread waiting for up to 1/8 of the product: the
 * classifier's 35 MB at 1B q8_0, about 64 us a product on average over a step
 * (docs/weights.md). */
enum { MV_PIECE_MIN = 64 * 1024, MV_PIECES_MAX = 512 };

typedef struct mv_piece { int task, r0, r1; } mv_piece;

/* the tasks are one-vector (t) or B-vector (tn) products */
typedef struct mv_job {
    const kvb_matvec_task *t;
    const kvb_matvecn_task *tn;
    int n, n_pieces;
    mv_piece piece[MV_PIECES_MAX];
} mv_job;

static int job_out(const mv_job *j, int i)
{
    return j->tn ? j->tn[i].out : j->t[i].out;
}

/* bytes a row of task i (1 where its type does not divide `in`: no kernel runs then) */
static size_t job_row_bytes(const mv_job *j, int i)
{
    const kvb_matvec_kernel *k = j->tn ? j->tn[i].k : j->t[i].k;
    const size_t rb = kvb_wtype_row_bytes(k->wtype, j->tn ? j->tn[i].in : j->t[i].in);
    return rb ? rb : 1;
}

static void job_rows(const mv_job *j, int i, int r0, int r1)
{
    if (j->tn) {
        const kvb_matvecn_task *t = &j->tn[i];
        t->k->runn(t->w, t->in, t->B, t->x, t->y, t->out, r0, r1);
    } else {
        const kvb_matvec_task *t = &j->t[i];
        t->k->run(t->w, t->in, t->x, t->y, r0, r1);
    }
}

static void mv_item(void *arg, int item, int thread)
{
    const mv_job *j = arg;
    (void)thread;
    job_rows(j, j->piece[item].task, j->piece[item].r0, j->piece[item].r1);
}

/* the pieces of j's tasks for `threads` threads, in order; every row of every
 * task in exactly one piece (tests/test_matvec.c) */
static void job_split(mv_job *j, int threads)
{
    size_t left = 0;
    for (int i = 0; i < j->n; i++) left += (size_t)job_out(j, i) * job_row_bytes(j, i);
    j->n_pieces = 0;
    for (int i = 0; i < j->n; i++) {
        const int out = job_out(j, i);
        const size_t rb = job_row_bytes(j, i);
        for (int r0 = 0; r0 < out;) {
            size_t want = left / (2 * (size_t)threads);
            if (want < MV_PIECE_MIN) want = MV_PIECE_MIN;
            size_t rows = ((want + rb - 1) / rb + 15) / 16 * 16;
            /* small tasks go whole; so does the rest of each task once the slots
             * left are only enough for one piece a task */
            if (out < 32 || j->n_pieces >= MV_PIECES_MAX - j->n) rows = (size_t)out;
            const int r1 = rows >= (size_t)(out - r0) ? out : r0 + (int)rows;
            j->piece[j->n_pieces++] = (mv_piece){i, r0, r1};
            left -= (size_t)(r1 - r0) * rb;
            r0 = r1;
        }
    }
}

static void job_run(kvb_pool *pool, mv_job *j)
{
    int threads = pool ? kvb_pool_threads(pool) : 1;
    if (threads <= 1) {
        for (int i = 0; i < j->n; i++) job_rows(j, i, 0, job_out(j, i));
        return;
    }
    job_split(j, threads);
    kvb_pool_run(pool, j->n_pieces, mv_item, j);
}

void kvb_matvec_pool_many(kvb_pool *pool, const kvb_matvec_task *t, int n)
{
    for (; n > 0; t += KVB_MATVEC_TASKS_MAX, n -= KVB_MATVEC_TASKS_MAX) {
        mv_job j = {t, NULL, n < KVB_MATVEC_TASKS_MAX ? n : KVB_MATVEC_TASKS_MAX, 0, {{0}}};
        job_run(pool, &j);
    }
}

void kvb_matvecn_pool_many(kvb_pool *pool, const kvb_matvecn_task *t, int n)
{
    for (; n > 0; t += KVB_MATVEC_TASKS_MAX, n -= KVB_MATVEC_TASKS_MAX) {
        mv_job j = {NULL, t, n < KVB_MATVEC_TASKS_MAX ? n : KVB_MATVEC_TASKS_MAX, 0, {{0}}};
        job_run(pool, &j);
    }
}

void kvb_matvec_pool(kvb_pool *pool, const kvb_matvec_kernel *k, const void *w, int out, int in,
                     const float *x, float *y)
{
    kvb_matvec_task t = {k, w, out, in, x, y};
    kvb_matvec_pool_many(pool, &t, 1);
}
