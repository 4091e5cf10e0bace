/* test_matvec.c: the matvec kernel rows (impls/kernels/matvec.h) against the
 * float64 reference.
 *
 * Every row this CPU runs, over a grid of shapes, is checked per output row:
 * |y - ref| <= tol * sum_i |w_i x_i| with ref the float64 product of the
 * DEQUANTIZED weights (and, for a row that rounds x, of the rounded x), so
 * only the order and width of the f32 sums count. A planted variant that drops
 * each row's last block must fail that same check in every case. Rows the CPU
 * or build lacks are reported as skipped. Also: the q8_0 row format, the VNNI
 * row's error against the unrounded x and its rounding of x value by value
 * (ties, a block of zeros), the pool split and its pieces. The B-vector rows
 * (runn) are held per vector to the same check, through the pool; planted
 * variants that skip each chunk's last row or read x[0] for every vector fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../impls/kernels/matvec.h"
#include "../impls/kernels/quant.h"
#include "testlib.h"

/* ins a row's type does not divide (the k types' blocks of 256) are left out;
 * 8448 takes the rows that tile x past 8192 values into a second tile */
static const int outs[] = {1, 7, 64, 300}, ins[] = {32, 64, 96, 256, 2080, 4096, 8448};

/* the largest error a row may show, over sum |w x|, per weight type: the f32
 * sums of up to 4096 products measured below 1e-7 here (the block types add
 * one rounding per block scale); one dropped block of 4096 values is near 1e-3 */
static double tol_of(kvb_wtype wt)
{
    return kvb_wtype_traits_of(wt)->block > 1 ? 2e-6 : 1e-6;
}

/* a row length every type divides, for the tests that take one shape */
static int in_for(kvb_wtype wt)
{
    return kvb_wtype_traits_of(wt)->block > 96 ? 512 : 96;
}

typedef struct mv_case {
    kvb_wtype wt;
    int out, in;
    void *w;          /* stored weights */
    float *wd, *x, *xr, *y;   /* dequantized weights, x, x as the kernel sees it, output */
} mv_case;

static void case_make(mv_case *c, kvb_wtype wt, int out, int in, uint64_t seed)
{
    c->wt = wt; c->out = out; c->in = in;
    size_t rb = kvb_wtype_row_bytes(wt, in), n = (size_t)out * in;
    float *w32 = malloc(n * 4);
    c->w = malloc((size_t)out * rb);
    c->wd = malloc(n * 4); c->x = malloc((size_t)in * 4); c->xr = malloc((size_t)in * 4);
    c->y = malloc((size_t)out * 4);
    assert_true(w32 && c->w && c->wd && c->x && c->xr && c->y);
    kvbt_fill(w32, n, 1.0f, &seed);
    kvbt_fill(c->x, (size_t)in, 2.0f, &seed);
    for (int r = 0; r < out; r++) {
        kvb_wrow_from_f32(wt, w32 + (size_t)r * in, (char *)c->w + (size_t)r * rb, in);
        kvb_wrow_to_f32(wt, (char *)c->w + (size_t)r * rb, c->wd + (size_t)r * in, in);
    }
    free(w32);
}

static void case_free(mv_case *c)
{
    free(c->w); free(c->wd); free(c->x); free(c->xr); free(c->y);
}

/* the worst row's |y - ref| / sum |w x|, x rounded as the kernel rounds it */
static double case_error(mv_case *c, int rounds_x)
{
    if (rounds_x) kvb_qround_query(c->x, c->in, c->xr);
    else memcpy(c->xr, c->x, (size_t)c->in * 4);
    double worst = 0.0;
    for (int r = 0; r < c->out; r++) {
        const float *w = c->wd + (size_t)r * c->in;
        double ref = 0.0, mag = 0.0;
        for (int i = 0; i < c->in; i++) {
            ref += (double)w[i] * c->xr[i];
            mag += fabs((double)w[i] * c->xr[i]);
        }
        double e = fabs((double)c->y[r] - ref) / (mag > 0 ? mag : 1.0);
        if (!(e <= worst)) worst = e;   /* NaN wins */
    }
    return worst;
}

/* the planted bug: a correct dot product over all but the last block */
static void planted(const mv_case *c, float *y)
{
    for (int r = 0; r < c->out; r++) {
        float s = 0.0f;
        for (int i = 0; i < c->in - 32; i++) s += c->wd[(size_t)r * c->in + i] * c->x[i];
        y[r] = s;
    }
}

static void test_kernels_match_reference(void **state)
{
    int ran = 0, n_rows = kvb_matvec_kernel_count();
    for (int ki = 0; ki < n_rows; ki++) {
        const kvb_matvec_kernel *k = kvb_matvec_kernel_at(ki);
        const char *wn = kvb_wtype_name(k->wtype);
        if (!k->run || !k->usable()) {
            print_message("matvec(wt=%s,k=%s): not in this build or CPU, skipped\n", wn, k->name);
            continue;
        }
        for (size_t oi = 0; oi < KVBT_COUNT(outs); oi++)
            for (size_t ii = 0; ii < KVBT_COUNT(ins); ii++) {
                char name[160];
                int out = outs[oi], in = ins[ii];
                if (in % k->multiple) continue;
                if (!kvbt_case(state, name, sizeof name, "matvec(wt=%s,k=%s,out=%d,in=%d)", wn,
                               k->name, out, in))
                    continue;
                assert_non_null(kvb_matvec_find(k->name, k->wtype, in, NULL, 0));
                mv_case c;
                case_make(&c, k->wtype, out, in, 1000u + 31u * ki + 7u * oi + ii);
                for (int r = 0; r < out; r++) c.y[r] = NAN;
                k->run(c.w, in, c.x, c.y, 0, out);
                double e = case_error(&c, k->rounds_x);
                if (!(e <= tol_of(k->wtype)))
                    fail_msg("%s: error %.3g over sum|wx| (tolerance %.3g)", name, e,
                             tol_of(k->wtype));
                /* the same check catches a kernel that drops the last block */
                planted(&c, c.y);
                double ep = case_error(&c, 0);
                if (ep <= tol_of(k->wtype))
                    fail_msg("%s: the planted bug passed (error %.3g)", name, ep);
                case_free(&c);
                ran++;
            }
    }
    if (!ran) skip();
}

/* the VNNI row's error against the f32 x (its documented cost), and rows
 * r0..r1 only: neighbours untouched */
static void test_rounded_x_error(void **state)
{
    (void)state;
    const kvb_matvec_kernel *k = kvb_matvec_find("avx512-vnni", KVB_WTYPE_Q8_0, 4096, NULL, 0);
    if (!k) { print_message("avx512-vnni: not in this build or CPU, skipped\n"); skip(); }
    mv_case c;
    case_make(&c, KVB_WTYPE_Q8_0, 64, 4096, 77);
    for (int r = 0; r < 64; r++) c.y[r] = -1.0f;
    k->run(c.w, 4096, c.x, c.y, 5, 61);
    assert_true(c.y[4] == -1.0f && c.y[61] == -1.0f);
    double num = 0.0, den = 0.0;
    for (int r = 5; r < 61; r++) {
        double ref = 0.0;
        for (int i = 0; i < 4096; i++) ref += (double)c.wd[(size_t)r * 4096 + i] * c.x[i];
        num += (c.y[r] - ref) * (c.y[r] - ref);
        den += ref * ref;
    }
    double rel = sqrt(num / den);
    print_message("avx512-vnni q8_0: relative L2 error against the f32 x: %.4f\n", rel);
    assert_true(rel > 0.0 && rel < 0.02);
    case_free(&c);
}

/* The VNNI row's x, value by value, against kvb_qround_query: W the identity
 * (one code of 127 a row) reads x' back, so a value rounded the other way
 * (ties: x * 127 / amax on .5, both signs), a block of zeros (sx = 0) or a
 * clamped value shows as an error of a code, 1/127 of the value or more. */
static void test_rounded_x_values(void **state)
{
    (void)state;
    enum { N = 64 };
    const kvb_matvec_kernel *k = kvb_matvec_find("avx512-vnni", KVB_WTYPE_Q8_0, N, NULL, 0);
    if (!k) { print_message("avx512-vnni: not in this build or CPU, skipped\n"); skip(); }
    size_t rb = kvb_wtype_row_bytes(KVB_WTYPE_Q8_0, N);
    uint8_t *w = malloc(N * rb);
    float *one = calloc(N, 4), x[N], xr[N], y[N], back[N];   /* one: [N] a row of W */
    assert_true(w && one);
    for (int r = 0; r < N; r++) {
        memset(one, 0, N * 4);
        one[r] = 1.0f;
        kvb_wrow_from_f32(KVB_WTYPE_Q8_0, one, w + r * rb, N);
    }
    for (int i = 0; i < 31; i++) x[i] = (i % 2 ? -1.0f : 1.0f) * ((float)i + 0.5f);
    x[31] = 127.0f;                            /* amax 127: x * 127 / amax = x */
    for (int i = 32; i < N; i++) x[i] = 0.0f;  /* sx = 0 */
    kvb_qround_query(x, N, xr);
    k->run(w, N, x, y, 0, N);
    for (int r = 0; r < N; r++) {
        kvb_wrow_to_f32(KVB_WTYPE_Q8_0, w + r * rb, back, N);
        double want = (double)back[r] * xr[r];
        if (!(fabs(y[r] - want) <= 1e-6 * fabs(want)))
            fail_msg("row %d: x %g rounded to %g, the VNNI row read %g (want %g)", r, x[r],
                     xr[r], y[r], want);
    }
    free(w);
    free(one);
}

/* q8_0 as stored: 34 bytes a block, d first, |w - w'| <= d/2 */
static void test_q8_0_format(void **state)
{
    (void)state;
    assert_int_equal(kvb_wtype_row_bytes(KVB_WTYPE_Q8_0, 4096), 128 * 34);
    assert_int_equal(kvb_wtype_row_bytes(KVB_WTYPE_Q8_0, 33), 0);
    assert_int_equal(kvb_wtype_row_bytes(KVB_WTYPE_BF16, 7), 14);
    assert_null(kvb_matvec_find(NULL, KVB_WTYPE_Q8_0, 48, NULL, 0));
    assert_null(kvb_matvec_find("nonsense", KVB_WTYPE_F32, 64, NULL, 0));
    assert_non_null(kvb_matvec_find(NULL, KVB_WTYPE_F32, 7, NULL, 0));
    assert_int_equal(kvb_matvec_find(NULL, KVB_WTYPE_Q8_0, 64, NULL, 0)->rounds_x, 0);
    kvb_wtype t;
    assert_int_equal(kvb_wtype_parse("q8_0", &t), KVB_STATUS_OK);
    assert_int_equal(t, KVB_WTYPE_Q8_0);
    uint64_t seed = 5;
    float x[64], back[64];
    uint8_t b[68];
    kvbt_fill(x, 64, 3.0f, &seed);
    x[40] = 0.0f;
    for (int i = 32; i < 64; i++) x[i] = 0.0f;   /* a block of zeros: d = 0, exact */
    kvb_wrow_from_f32(KVB_WTYPE_Q8_0, x, b, 64);
    kvb_wrow_to_f32(KVB_WTYPE_Q8_0, b, back, 64);
    float d = kvb_f16_to_f32((uint16_t)(b[0] | b[1] << 8));
    assert_true(d > 0.0f);
    for (int i = 0; i < 32; i++) assert_true(fabsf(x[i] - back[i]) <= 0.5f * d * 1.0001f);
    for (int i = 32; i < 64; i++) assert_true(back[i] == 0.0f);
    assert_true(b[34] == 0 && b[35] == 0);
}

/* q4_0, q4_k and q6_k as ggml lays them out: blocks built here byte by byte
 * with known values (d = 1.0 is f16 0x3c00, 0.5 is 0x3800), read back by
 * kvb_wrow_to_f32; then each type's own quantizer within half a step of the
 * values it was given, and the sizes. A nibble or bit pair read from the
 * wrong place changes one of the values checked. */
static void test_k_formats(void **state)
{
    (void)state;
    float y[256];
    /* q4_0: byte j holds value j (low) and j + 16 (high); d * (q - 8) */
    uint8_t q40[18] = {0x00, 0x3c};
    for (int j = 0; j < 16; j++) q40[2 + j] = (uint8_t)(j | (15 - j) << 4);
    kvb_wrow_to_f32(KVB_WTYPE_Q4_0, q40, y, 32);
    for (int j = 0; j < 16; j++) {
        assert_true(y[j] == (float)(j - 8));
        assert_true(y[j + 16] == (float)(7 - j));
    }
    /* q4_k: d 1, dmin 0.5; scales/mins of sub-blocks 0..7 packed as ggml's
     * get_scale_min_k4 reads them: sc = 1, 2, 3, 4, 17, 3, 5, 7 and m = 5, 6, 7, 8,
     * 2, 4, 6, 8; qs byte 32p + l holds sub-block 2p (low) and 2p + 1 (high) */
    uint8_t q4k[144] = {0x00, 0x3c, 0x00, 0x38, 0x41, 2, 3, 4, 5, 6, 7, 8,
                        0x21, 0x43, 0x65, 0x87};
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++)
            q4k[16 + 32 * p + l] = (uint8_t)((l % 16) | (15 - l % 16) << 4);
    static const int sc[8] = {1, 2, 3, 4, 17, 3, 5, 7}, mn[8] = {5, 6, 7, 8, 2, 4, 6, 8};
    kvb_wrow_to_f32(KVB_WTYPE_Q4_K, q4k, y, 256);
    for (int s = 0; s < 8; s++)
        for (int l = 0; l < 32; l++) {
            int q = s % 2 ? 15 - l % 16 : l % 16;
            if (y[32 * s + l] != (float)(sc[s] * q) - 0.5f * (float)mn[s])
                fail_msg("q4_k value %d: %g, want %g", 32 * s + l, y[32 * s + l],
                         (double)(sc[s] * q) - 0.5 * mn[s]);
        }
    /* q6_k: d 1, scales[s] = s + 1; codes 0 (value -32 * scale) but for
     * those set through ql[0], ql[32], qh[0] (values 0, 32, 64, 96) and ql[69],
     * qh[37] (value 133, in the second half) */
    uint8_t q6k[210] = {0};
    for (int s = 0; s < 16; s++) q6k[192 + s] = (uint8_t)(s + 1);
    q6k[209] = 0x3c;
    q6k[0] = 0xa3; q6k[32] = 0x5c; q6k[128] = 0xe4;   /* qh pairs 0, 1, 2, 3 */
    q6k[69] = 0x07; q6k[128 + 37] = 0x02;
    kvb_wrow_to_f32(KVB_WTYPE_Q6_K, q6k, y, 256);
    for (int i = 0; i < 256; i++) {
        int q = i == 0 ? 3 : i == 32 ? 12 + 16 : i == 64 ? 10 + 32 : i == 96 ? 5 + 48
              : i == 133 ? 7 + 32 : 0;
        if (y[i] != (float)((q - 32) * (i / 16 + 1)))
            fail_msg("q6_k value %d: %g, want %d", i, y[i], (q - 32) * (i / 16 + 1));
    }
    /* each quantizer against its own values: within half a step and a min */
    static const kvb_wtype types[3] = {KVB_WTYPE_Q4_0, KVB_WTYPE_Q4_K, KVB_WTYPE_Q6_K};
    static const double step[3] = {2.0 / 15, 2.0 / 15, 2.0 / 63};   /* of the range 2 */
    for (int t = 0; t < 3; t++) {
        uint64_t seed = 11u + (unsigned)t;
        float x[512], back[512];
        uint8_t b[2 * 210];
        kvbt_fill(x, 512, 1.0f, &seed);
        kvb_wrow_from_f32(types[t], x, b, 512);
        kvb_wrow_to_f32(types[t], b, back, 512);
        double worst = 0.0;
        for (int i = 0; i < 512; i++) worst = fmax(worst, fabs((double)x[i] - back[i]));
        print_message("%s: largest |x - x'| %.4f on values in [-1, 1]\n",
                      kvb_wtype_name(types[t]), worst);
        /* half a step, with room for the 6-bit scale's rounding */
        if (!(worst > 0.0 && worst < 1.5 * step[t]))
            fail_msg("%s: |x - x'| up to %g", kvb_wtype_name(types[t]), worst);
    }
    assert_int_equal(kvb_wtype_row_bytes(KVB_WTYPE_Q4_0, 64), 36);
    assert_int_equal(kvb_wtype_row_bytes(KVB_WTYPE_Q4_K, 512), 288);
    assert_int_equal(kvb_wtype_row_bytes(KVB_WTYPE_Q6_K, 256), 210);
    assert_int_equal(kvb_wtype_row_bytes(KVB_WTYPE_Q4_K, 96), 0);
    assert_null(kvb_matvec_find(NULL, KVB_WTYPE_Q6_K, 96, NULL, 0));
}

/* the pool split gives the single-thread result, bit for bit */
static void test_pool_split(void **state)
{
    (void)state;
    kvb_pool *pool;
    assert_int_equal(kvb_pool_create(&pool, 3, NULL, NULL), KVB_STATUS_OK);
    for (int wt = 0; wt < KVB_WTYPE_COUNT; wt++) {
        const int in = in_for((kvb_wtype)wt);
        const kvb_matvec_kernel *k = kvb_matvec_find(NULL, (kvb_wtype)wt, in, NULL, 0);
        mv_case c;
        case_make(&c, (kvb_wtype)wt, 301, in, 9u + (unsigned)wt);
        float *y1 = malloc(301 * 4);
        assert_non_null(y1);
        k->run(c.w, in, c.x, y1, 0, 301);
        kvb_matvec_pool(pool, k, c.w, 301, in, c.x, c.y);
        assert_memory_equal(y1, c.y, 301 * 4);
        free(y1);
        case_free(&c);
    }
    kvb_pool_destroy(pool);
}

/* Several products in one hand-off (more than KVB_MATVEC_TASKS_MAX, one under
 * 32 rows, mixed types): each y equals its kernel run alone over all rows, and
 * nothing past a y's rows is written. */
static void test_pool_many(void **state)
{
    (void)state;
    enum { N = KVB_MATVEC_TASKS_MAX + 2 };
    static const int outs_n[N] = {301, 7, 64, 1, 33, 160};
    kvb_pool *pool;
    assert_int_equal(kvb_pool_create(&pool, 2, NULL, NULL), KVB_STATUS_OK);
    mv_case c[N];
    kvb_matvec_task t[N];
    float *want[N];
    for (int i = 0; i < N; i++) {
        kvb_wtype wt = (kvb_wtype)(i % KVB_WTYPE_COUNT);
        const int in = in_for(wt);
        case_make(&c[i], wt, outs_n[i], in, 40u + (unsigned)i);
        const kvb_matvec_kernel *k = kvb_matvec_find(NULL, wt, in, NULL, 0);
        want[i] = malloc((size_t)outs_n[i] * 4);
        assert_non_null(want[i]);
        k->run(c[i].w, in, c[i].x, want[i], 0, outs_n[i]);
        t[i] = (kvb_matvec_task){k, c[i].w, outs_n[i], in, c[i].x, c[i].y};
    }
    kvb_matvec_pool_many(pool, t, N);
    for (int i = 0; i < N; i++) {
        assert_memory_equal(want[i], c[i].y, (size_t)outs_n[i] * 4);
        free(want[i]);
        case_free(&c[i]);
    }
    kvb_pool_destroy(pool);
}

/* The pieces a hand-off is cut into, as a counting row sees them: y[r] += 1
 * for every row it is given, and each call's (y, r0, r1) logged. */
enum { PIECE_LOG_MAX = 8192 };
typedef struct piece { const float *y; int r0, r1; } piece;
static struct { atomic_int n; piece at[PIECE_LOG_MAX]; } plog;

static void count_rows(const void *w, int in, const float *x, float *y, int r0, int r1)
{
    (void)w; (void)in; (void)x;
    for (int r = r0; r < r1; r++) y[r] += 1.0f;
    int i = atomic_fetch_add(&plog.n, 1);
    if (i < PIECE_LOG_MAX) plog.at[i] = (piece){y, r0, r1};
}

static void count_rows_n(const void *w, int in, int B, const float *x, float *y, int ldy, int r0,
                         int r1)
{
    (void)B; (void)ldy;
    count_rows(w, in, x, y, r0, r1);
}

static int piece_cmp(const void *a, const void *b)
{
    const piece *p = a, *q = b;
    if (p->y != q->y) return p->y < q->y ? -1 : 1;
    return (p->r0 > q->r0) - (p->r0 < q->r0);
}

/* How one hand-off is cut, through a row that only counts (no weights read):
 * the 1B model's classifier (128256 q8_0 rows of 2048, 279 MB), a product under
 * 32 rows and one of 1000, on 1 (NULL), 2 and 3 threads, one-vector and
 * B-vector. Every row of every task is given out exactly once; a task under 32
 * rows, or any task on one thread, goes whole; pieces are whole multiples of
 * 16 rows but a task's last, never grow along a task, none is over the bytes
 * left / (2 * threads) when it was cut, and the big task's last piece is under
 * 1/64 of it (guided: even pieces of 1/(4 threads) left a thread idle for up
 * to 1/8 of a product). */
static void test_pool_pieces(void **state)
{
    (void)state;
    static const kvb_matvec_kernel counter = {"count", KVB_WTYPE_Q8_0, 32, 0, NULL,
                                              count_rows, count_rows_n};
    enum { NT = 3 };
    static const int outs_n[NT] = {20, 1000, 128256};
    const int in = 2048;
    const size_t rb = kvb_wtype_row_bytes(KVB_WTYPE_Q8_0, in);
    float *y[NT], *ys = malloc((size_t)(outs_n[0] + outs_n[1] + outs_n[2]) * 4);
    assert_non_null(ys);
    for (int i = 0; i < NT; i++) y[i] = i ? y[i - 1] + outs_n[i - 1] : ys;   /* in task order */
    static const int thread_counts[] = {1, 2, 3};
    for (size_t ti = 0; ti < KVBT_COUNT(thread_counts); ti++)
        for (int nvec = 0; nvec < 2; nvec++) {
            const int threads = thread_counts[ti];
            kvb_pool *pool = NULL;
            if (threads > 1) assert_int_equal(kvb_pool_create(&pool, threads, NULL, NULL), 0);
            atomic_store(&plog.n, 0);
            kvb_matvec_task t[NT];
            kvb_matvecn_task tn[NT];
            size_t total = 0;
            for (int i = 0; i < NT; i++) {
                memset(y[i], 0, (size_t)outs_n[i] * 4);
                t[i] = (kvb_matvec_task){&counter, NULL, outs_n[i], in, NULL, y[i]};
                tn[i] = (kvb_matvecn_task){&counter, NULL, outs_n[i], in, 2, NULL, y[i]};
                total += (size_t)outs_n[i] * rb;
            }
            if (nvec) kvb_matvecn_pool_many(pool, tn, NT);
            else kvb_matvec_pool_many(pool, t, NT);
            const int n = atomic_load(&plog.n);
            assert_true(n <= PIECE_LOG_MAX);
            for (int i = 0; i < NT; i++)
                for (int r = 0; r < outs_n[i]; r++)
                    if (y[i][r] != 1.0f)
                        fail_msg("threads %d: task %d row %d given out %g times", threads, i, r,
                                 (double)y[i][r]);
            qsort(plog.at, (size_t)n, sizeof plog.at[0], piece_cmp);
            size_t left = total;   /* bytes not yet given out, in the order cut */
            for (int i = 0, k = 0; i < NT; i++) {
                int pieces = 0, last_rows = 0;
                for (; k < n && plog.at[k].y == y[i]; k++, pieces++) {
                    const int rows = plog.at[k].r1 - plog.at[k].r0;
                    const int is_last = plog.at[k].r1 == outs_n[i];
                    if (!is_last && rows % 16)
                        fail_msg("threads %d: task %d piece of %d rows", threads, i, rows);
                    if (!is_last && pieces && rows > last_rows)
                        fail_msg("threads %d: task %d piece grew from %d to %d rows", threads, i,
                                 last_rows, rows);
                    if (threads > 1 && (size_t)rows * rb > left / (2 * (size_t)threads) + 16 * rb &&
                        (size_t)rows * rb > 64 * 1024 + 16 * rb)
                        fail_msg("threads %d: task %d piece of %zu bytes with %zu left", threads,
                                 i, (size_t)rows * rb, left);
                    left -= (size_t)rows * rb;
                    last_rows = rows;
                }
                if (threads == 1 || outs_n[i] < 32) assert_int_equal(pieces, 1);
                if (threads > 1 && i == NT - 1) {
                    assert_true(pieces > 4 * threads);
                    assert_true(last_rows * 64 < outs_n[i]);
                }
            }
            kvb_pool_destroy(pool);
        }
    free(ys);
}

/* the worst |y[b][r] - ref| / sum |w x[b]| over B vectors xs [B][in] */
static double casen_error(const mv_case *c, int B, const float *xs, const float *ys)
{
    double worst = 0.0;
    for (int b = 0; b < B; b++)
        for (int r = 0; r < c->out; r++) {
            const float *w = c->wd + (size_t)r * c->in, *x = xs + (size_t)b * c->in;
            double ref = 0.0, mag = 0.0;
            for (int i = 0; i < c->in; i++) {
                ref += (double)w[i] * x[i];
                mag += fabs((double)w[i] * x[i]);
            }
            double e = fabs((double)ys[(size_t)b * c->out + r] - ref) / (mag > 0 ? mag : 1.0);
            if (!(e <= worst)) worst = e;
        }
    return worst;
}

static const int bs[] = {1, 2, 3, 8, 11};

/* one B-vector case through k on the pool: the product, then the planted bugs */
static void casen_check(const char *name, const kvb_matvec_kernel *k, mv_case *c, int B,
                        kvb_pool *pool, uint64_t seed)
{
    const size_t n = (size_t)B * c->out;
    float *xs = malloc((size_t)B * c->in * 4), *ys = malloc(n * 4), *y1 = malloc(n * 4);
    assert_true(xs && ys && y1);
    kvbt_fill(xs, (size_t)B * c->in, 2.0f, &seed);
    for (size_t i = 0; i < n; i++) ys[i] = y1[i] = NAN;
    kvb_matvecn_task t = {k, c->w, c->out, c->in, B, xs, ys};
    kvb_matvecn_pool_many(pool, &t, 1);
    double e = casen_error(c, B, xs, ys);
    if (!(e <= tol_of(k->wtype)))
        fail_msg("%s: error %.3g over sum|wx| (tolerance %.3g)", name, e, tol_of(k->wtype));
    /* the pool's split changes no bit */
    k->runn(c->w, c->in, B, xs, y1, c->out, 0, c->out);
    assert_memory_equal(ys, y1, n * 4);
    /* planted: the last row left out */
    for (size_t i = 0; i < n; i++) y1[i] = NAN;
    k->runn(c->w, c->in, B, xs, y1, c->out, 0, c->out - 1);
    if (casen_error(c, B, xs, y1) <= tol_of(k->wtype))
        fail_msg("%s: the planted skipped row passed", name);
    /* planted: x[0] for every vector (the same as right when B = 1) */
    for (int b = 0; B > 1 && b < B; b++)
        k->runn(c->w, c->in, 1, xs, y1 + (size_t)b * c->out, c->out, 0, c->out);
    if (B > 1 && casen_error(c, B, xs, y1) <= tol_of(k->wtype))
        fail_msg("%s: the planted x[0] for all passed", name);
    free(xs); free(ys); free(y1);
}

static void test_kernelsn_match_reference(void **state)
{
    /* 67: a chunk of 3; 256 and 2304 for the k types */
    static const int outs_n[] = {1, 7, 67}, ins_n[] = {32, 96, 256, 2080, 2304};
    int ran = 0, n_rows = kvb_matvec_kernel_count();
    kvb_pool *pool;
    assert_int_equal(kvb_pool_create(&pool, 3, NULL, NULL), KVB_STATUS_OK);
    for (int ki = 0; ki < n_rows; ki++) {
        const kvb_matvec_kernel *k = kvb_matvec_kernel_at(ki);
        const char *wn = kvb_wtype_name(k->wtype);
        if (k->rounds_x) {
            assert_null(k->runn);
            continue;
        }
        if (!k->runn || !k->usable()) {
            print_message("matvecn(wt=%s,k=%s): not in this build or CPU, skipped\n", wn,
                          k->name);
            continue;
        }
        for (size_t oi = 0; oi < KVBT_COUNT(outs_n); oi++)
            for (size_t ii = 0; ii < KVBT_COUNT(ins_n); ii++)
                for (size_t bi = 0; bi < KVBT_COUNT(bs); bi++) {
                    char name[160];
                    int out = outs_n[oi], in = ins_n[ii], B = bs[bi];
                    if (in % k->multiple) continue;
                    if (!kvbt_case(state, name, sizeof name,
                                   "matvecn(wt=%s,k=%s,out=%d,in=%d,B=%d)", wn, k->name, out,
                                   in, B))
                        continue;
                    mv_case c;
                    case_make(&c, k->wtype, out, in, 500u + 31u * ki + 7u * oi + ii);
                    casen_check(name, k, &c, B, pool, 90u + bi);
                    case_free(&c);
                    ran++;
                }
    }
    kvb_pool_destroy(pool);
    if (!ran) skip();
}

int main(int argc, char **argv)
{
    static const kvbt_test all[] = {
        {"kernels_match_reference", test_kernels_match_reference, 1},
        {"kernelsn_match_reference", test_kernelsn_match_reference, 1},
        {"rounded_x_error", test_rounded_x_error, 0},
        {"rounded_x_values", test_rounded_x_values, 0},
        {"q8_0_format", test_q8_0_format, 0},
        {"k_formats", test_k_formats, 0},
        {"pool_split", test_pool_split, 0},
        {"pool_many", test_pool_many, 0},
        {"pool_pieces", test_pool_pieces, 0},
    };
    return kvbt_main(argc, argv, "matvec", all, KVBT_COUNT(all));
}
