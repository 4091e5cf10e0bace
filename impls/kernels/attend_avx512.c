/* attend_avx512.c: the AVX-512 row of the attend kernels (kernels.h) for f32,
 * f16 and bf16 rows (head_dim a multiple of 16), chosen at run time; kernels.c
 * keeps the portable reference, and the tests hold every path to float64.
 *
 * Keys: rows R at a time (4/HB rows for HB <= 2 heads; for four, 4 rows of
 * f16/bf16 and 2 of f32), 16 values per vector, converted in registers (f16:
 * vcvtph2ps; bf16: a 16-bit shift), each row read once for all HB query heads
 * of its GQA group and each query vector loaded once for the R rows; the
 * horizontal sums of four (head, row) pairs share one shuffle tree. Softmax:
 * vectorized max and exp. Values: for
 * one or two heads and head_dim <= 128, whole rows of accumulators stay in
 * registers and rows stream front to back; four heads at head_dim 64, and f32
 * at 128, take tiles of 32 rows, read whole by two passes of two heads; other
 * four-head shapes (f16/bf16 at 128 among them: each value converted once, not
 * once a pass) take tiles 64 columns at a time (4 x 4 sums); otherwise tiles are
 * walked 16 values at a time with up to 8 heads' sums in registers. The key
 * loops and the one-or-two-head value loop prefetch kvb_attend_prefetch_bytes()
 * ahead, the four-head key loops and the tiled value loops also into L2
 * kvb_attend_l2_bytes() ahead. */
#include "kernels.h"

/* How far ahead the loops prefetch: about 4 KiB, at least 4 rows (16 rows of
 * head_dim-128 f16, 8 of f32). 4 rows (1 KiB of f16) leave the stream short of
 * misses in flight: on AMD Zen 5 about 6 KiB ahead was best, and on the Xeon VM
 * in 2026-12 4 KiB beat 4 rows for f16 and for GQA (the A/B runs:
 * docs/tuning.md). Targets past a run's end are redirected to the next runs
 * (below), which a paged cache needs at this distance. */
size_t kvb_attend_prefetch_bytes(size_t row_bytes)
{
    size_t bytes = 4096;
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_is("amd")) bytes = 6144;
#endif
    size_t rows = (bytes + row_bytes - 1) / (row_bytes ? row_bytes : 1);
    return (rows < 4 ? 4 : rows) * row_bytes;
}

/* The L2 prefetch 16 KiB ahead of the four-head key loops (and of the tiled
 * value loops, dense_values_tiles): with the 4 KiB prefetcht0 alone, the
 * loads wait on line-fill buffers held for the whole trip to memory (perf:
 * docs/tuning.md); lines already in L2 free them sooner. On the Xeon VM
 * (2026-12-04, GQA 32/8 at 32768 tokens, one thread, eight rounds) the key
 * loops' took f32 to 0.93-0.95 of the time, q8 (VNNI) 0.91-0.92, f16 0.97, q4
 * 1.00; 8 and 32 KiB measured alike. Not measured on AMD: none there until it
 * is (the matvec's q8_0 row has its own, matvec_avx512.c). */
size_t kvb_attend_l2_bytes(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_is("amd")) return 0;
#endif
    return 16384;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <string.h>

#include "simd_avx512.h"

enum { TILE_ROWS = 64, PAIR_ROWS = 32 };

/* 16 values of a stored row from element e on, as f32. */
static KVB_INLINE KVB_AVX512 __m512 load16(const int dt, const char *row, int e)
{
    if (dt == KVB_DTYPE_F16)
        return _mm512_cvtph_ps(
            _mm256_loadu_si256((const __m256i *)(const void *)(row + 2 * (size_t)e)));
    if (dt == KVB_DTYPE_BF16)
        return _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(
                                  (const __m256i *)(const void *)(row + 2 * (size_t)e))),
                              16));
    return _mm512_loadu_ps((const float *)(const void *)row + e);
}

/* The rows a prefetch aims at may lie past the end of the run being read (a
 * paged cache's block): later_row finds row j of the `left` rows that follow
 * it, in the runs from `later` on (up to 4 runs on; NULL beyond). Prefetching
 * straight past a block's end would fetch other sequences' rows, which slows
 * interleaved paged sequences (docs/tuning.md). */
static KVB_INLINE const char *later_row(const kvb_kv_run *later, size_t left, size_t j,
                                        size_t row_bytes, int values)
{
    if (j >= left) return NULL;
    for (int hop = 0; hop < 4; hop++, later++) {
        if (j < (size_t)later->n)
            return (const char *)(values ? later->v : later->k) + j * row_bytes;
        j -= (size_t)later->n;
    }
    return NULL;
}

static KVB_INLINE void prefetch_line_row(const char *p, size_t row_bytes)
{
    if (p)
        for (size_t b = 0; b < row_bytes; b += 64) _mm_prefetch(p + b, _MM_HINT_T0);
}

static KVB_INLINE void prefetch_l2_row(const char *p, size_t row_bytes)
{
    if (p) kvb_prefetch_l2(p, 0, row_bytes, row_bytes);
}

/* Key row idx of a run of n rows at row0 (left rows in the runs after it):
 * past the end of the last run the address is kept as it is (in a contiguous
 * cache, the next KV head's keys; a prefetch never faults). */
static KVB_INLINE void prefetch_key_row(const char *row0, const kvb_kv_run *later, size_t left,
                                        size_t row_bytes, int n, size_t idx)
{
    prefetch_line_row(idx < (size_t)n || !left
                          ? row0 + idx * row_bytes
                          : later_row(later, left, idx - (size_t)n, row_bytes, 0),
                      row_bytes);
}

static KVB_INLINE KVB_AVX512 void dense_scores(const int dt, const int HB, const int R,
                                               const char *row0, size_t row_bytes,
                                               const kvb_kv_run *later, size_t left, size_t pf,
                                               size_t l2, int n, int hd, const float *q,
                                               float scale, float *s, size_t s_stride)
{
    const size_t pfr = pf / row_bytes;
    int t = 0;
    for (; t + R <= n; t += R) {
        __m512 acc[16];
        for (int j = 0; j < R * HB; j++) acc[j] = _mm512_setzero_ps();
        if (HB >= 4) {
            /* each query vector loaded once for the R rows: with four heads, the
             * loads of one row at a time limit the key pass; with one or two heads,
             * rows one after the other are faster, so they keep that order
             * (docs/tuning.md) */
            const char *row = row0 + (size_t)t * row_bytes;
            for (int r = 0; r < R; r++)
                prefetch_key_row(row0, later, left, row_bytes, n, (size_t)(t + r) + pfr);
            if (l2)   /* within this run only: a paged block is shorter than l2 */
                kvb_prefetch_l2(row0, (size_t)t * row_bytes + l2, (size_t)R * row_bytes,
                                (size_t)n * row_bytes);
            for (int e = 0; e < hd; e += 16) {
                __m512 x[4];
                for (int r = 0; r < R; r++) x[r] = load16(dt, row + (size_t)r * row_bytes, e);
                for (int h = 0; h < HB; h++) {
                    __m512 qh = _mm512_loadu_ps(q + (size_t)h * hd + e);
                    for (int r = 0; r < R; r++)
                        acc[h * R + r] = _mm512_fmadd_ps(qh, x[r], acc[h * R + r]);
                }
            }
        } else
            for (int r = 0; r < R; r++) {
                const char *row = row0 + (size_t)(t + r) * row_bytes;
                prefetch_key_row(row0, later, left, row_bytes, n, (size_t)(t + r) + pfr);
                for (int e = 0; e < hd; e += 16) {
                    __m512 x = load16(dt, row, e);
                    for (int h = 0; h < HB; h++)
                        acc[h * R + r] = _mm512_fmadd_ps(_mm512_loadu_ps(q + (size_t)h * hd + e), x,
                                                         acc[h * R + r]);
                }
            }
        store_scores(acc, HB, R, t, scale, s, s_stride);
    }
    for (; t < n; t++) {                         /* the rows left over: one at a time */
        __m512 acc[8];
        const char *row = row0 + (size_t)t * row_bytes;
        for (int h = 0; h < HB; h++) acc[h] = _mm512_setzero_ps();
        for (int e = 0; e < hd; e += 16) {
            __m512 x = load16(dt, row, e);
            for (int h = 0; h < HB; h++)
                acc[h] = _mm512_fmadd_ps(_mm512_loadu_ps(q + (size_t)h * hd + e), x, acc[h]);
        }
        store_scores(acc, HB, 1, t, scale, s, s_stride);
    }
}

/* Rows in sequence order across runs: the value loops walk tokens in one global
 * order, with tiles over the global index, so splitting the same rows into
 * other runs (a paged cache's blocks) changes no addition: bit-identical output. */
typedef struct row_cursor { const kvb_kv_run *runs; int r, off; } row_cursor;

static KVB_INLINE const char *cursor_next(row_cursor *c, size_t row_bytes)
{
    while (c->runs[c->r].n == c->off) { c->r++; c->off = 0; }
    return (const char *)c->runs[c->r].v + (size_t)c->off++ * row_bytes;
}

/* The value row k rows after the one cursor_next last gave (row t of n in
 * global order), for a prefetch: in its run when the run is long enough (a
 * contiguous cache: always; one compare), else in the runs after it. */
static KVB_INLINE const char *cursor_ahead(const row_cursor *c, size_t row_bytes, int k, int t,
                                           int n)
{
    const kvb_kv_run *run = &c->runs[c->r];
    int i = c->off - 1 + k;
    if (i < run->n) return (const char *)run->v + (size_t)i * row_bytes;
    int left = n - (t + 1) - (run->n - c->off);
    return left > 0 ? later_row(run + 1, (size_t)left, (size_t)(i - run->n), row_bytes, 1) : NULL;
}

/* out[h] += sum_t w[h][t] row_t, one or two heads, NC16 = head_dim / 16 <= 8:
 * whole rows of sums in registers, rows streamed once, front to back. */
static KVB_INLINE KVB_AVX512 void dense_values_rows(const int dt, const int HB, const int NC16,
                                                    const kvb_kv_run *runs, size_t row_bytes,
                                                    size_t pf, int n, const float *w,
                                                    size_t w_stride, float *out, int hd)
{
    __m512 acc[2][8];
    for (int h = 0; h < HB; h++)
        for (int c = 0; c < NC16; c++) acc[h][c] = _mm512_setzero_ps();
    const size_t pfr = pf / row_bytes;
    for (int r = 0, t = 0; t < n; r++) {          /* run by run: no cursor in this light loop */
        const char *v0 = runs[r].v;
        const size_t left = (size_t)(n - t - runs[r].n);
        for (int i = 0; i < runs[r].n; i++, t++) {
            const char *row = v0 + (size_t)i * row_bytes;
            size_t idx = (size_t)i + pfr;
            prefetch_line_row(
                idx < (size_t)runs[r].n
                    ? row + pf
                    : later_row(runs + r + 1, left, idx - (size_t)runs[r].n, row_bytes, 1),
                row_bytes);
            for (int c = 0; c < NC16; c++) {
                __m512 x = load16(dt, row, 16 * c);
                for (int h = 0; h < HB; h++)
                    acc[h][c] =
                        _mm512_fmadd_ps(_mm512_set1_ps(w[(size_t)h * w_stride + t]), x, acc[h][c]);
            }
        }
    }
    for (int h = 0; h < HB; h++)
        for (int c = 0; c < NC16; c++) {
            float *o = out + (size_t)h * hd + 16 * c;
            _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), acc[h][c]));
        }
}

/* Any head count and head_dim: tiles of TILE_ROWS rows (global index), COLS
 * values at a time (64 for four heads: 4 x 4 sums, one broadcast per row and
 * block; 16 otherwise, up to 8 heads' sums), so each tile is read from memory
 * once and re-read from cache for the next column block. The first column
 * block prefetches as the key loops do: whole rows pf bytes on, and every
 * second line l2 bytes on into L2; without an l2 distance (AMD, where it was
 * not measured) the next tile's rows, whole, by prefetcht0, as before
 * 2026-12-04 (on the Xeon VM f16 GQA 32/8 at 32768 tokens takes 0.95 of that
 * time: docs/tuning.md). */
static KVB_INLINE KVB_AVX512 void dense_values_tiles(const int dt, const int HB, const int NCV,
                                                     const kvb_kv_run *runs, size_t row_bytes,
                                                     size_t pf, size_t l2, int n, const float *w,
                                                     size_t w_stride, float *out, int hd)
{
    const int pfr = (int)(pf / row_bytes), l2r = (int)(l2 / row_bytes);
    row_cursor start = {runs, 0, 0};
    for (int t0 = 0; t0 < n; t0 += TILE_ROWS) {
        int t1 = t0 + TILE_ROWS < n ? t0 + TILE_ROWS : n;
        row_cursor cur = start;
        for (int e0 = 0; e0 < hd; e0 += 16 * NCV) {
            __m512 acc[8][4];
            for (int h = 0; h < HB; h++)
                for (int c = 0; c < NCV; c++) acc[h][c] = _mm512_setzero_ps();
            cur = start;
            for (int t = t0; t < t1; t++) {
                const char *row = cursor_next(&cur, row_bytes);
                if (e0 == 0 && l2r) {
                    prefetch_line_row(cursor_ahead(&cur, row_bytes, pfr, t, n), row_bytes);
                    prefetch_l2_row(cursor_ahead(&cur, row_bytes, l2r, t, n), row_bytes);
                } else if (e0 == 0)     /* no L2 distance (AMD): as measured there */
                    prefetch_line_row(cursor_ahead(&cur, row_bytes, TILE_ROWS, t, n), row_bytes);
                __m512 x[4];
                for (int c = 0; c < NCV; c++) x[c] = load16(dt, row, e0 + 16 * c);
                for (int h = 0; h < HB; h++) {
                    __m512 wt = _mm512_set1_ps(w[(size_t)h * w_stride + t]);
                    for (int c = 0; c < NCV; c++) acc[h][c] = _mm512_fmadd_ps(wt, x[c], acc[h][c]);
                }
            }
            for (int h = 0; h < HB; h++)
                for (int c = 0; c < NCV; c++) {
                    float *o = out + (size_t)h * hd + e0 + 16 * c;
                    _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), acc[h][c]));
                }
        }
        start = cur;
    }
}

/* out[h] += sum_t w[h][t] row_t for four heads, NC16 = head_dim / 16 <= 8:
 * tiles of PAIR_ROWS rows (global index), each read whole, front to back, by
 * two passes of two heads (16 sums in registers), the second pass from L1.
 * Against 64-column tiles (dense_values_tiles) it reads rows in order, which
 * the hardware prefetchers follow; the first pass prefetches whole rows pf
 * bytes on, as the key loop does (the next tile's lines spread over both
 * passes, 32 rows on, left f32 GQA 7-13% slower on the Xeon VM:
 * docs/tuning.md); 32 rows keep a tile in L1 even in f32. */
static KVB_INLINE KVB_AVX512 void dense_values_pairs(const int dt, const int NC16,
                                                     const kvb_kv_run *runs, size_t row_bytes,
                                                     size_t pf, int n, const float *w,
                                                     size_t w_stride, float *out, int hd)
{
    const int pfr = (int)(pf / row_bytes);
    row_cursor start = {runs, 0, 0};
    for (int t0 = 0; t0 < n; t0 += PAIR_ROWS) {
        int t1 = t0 + PAIR_ROWS < n ? t0 + PAIR_ROWS : n;
        row_cursor cur = start;
        for (int hp = 0; hp < 4; hp += 2) {
            __m512 acc[2][8];
            for (int h = 0; h < 2; h++)
                for (int c = 0; c < NC16; c++) acc[h][c] = _mm512_setzero_ps();
            cur = start;
            const float *w0 = w + (size_t)hp * w_stride, *w1 = w0 + w_stride;
            for (int t = t0; t < t1; t++) {
                const char *row = cursor_next(&cur, row_bytes);
                /* the first pass reads from memory: the row pfr on, whole */
                if (hp == 0) prefetch_line_row(cursor_ahead(&cur, row_bytes, pfr, t, n), row_bytes);
                __m512 a0 = _mm512_set1_ps(w0[t]), a1 = _mm512_set1_ps(w1[t]);
                for (int c = 0; c < NC16; c++) {
                    __m512 x = load16(dt, row, 16 * c);
                    acc[0][c] = _mm512_fmadd_ps(a0, x, acc[0][c]);
                    acc[1][c] = _mm512_fmadd_ps(a1, x, acc[1][c]);
                }
            }
            for (int h = 0; h < 2; h++)
                for (int c = 0; c < NC16; c++) {
                    float *o = out + (size_t)(hp + h) * hd + 16 * c;
                    _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), acc[h][c]));
                }
        }
        start = cur;
    }
}

static KVB_INLINE KVB_AVX512 void dense_run(const int dt, const kvb_kv_run *runs, int n_runs,
                                            size_t row_bytes, int hd, int g, const float *q,
                                            float *out, float *scores, int n, float *ml)
{
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t pf = kvb_attend_prefetch_bytes(row_bytes), l2 = kvb_attend_l2_bytes();
    for (int h0 = 0; h0 < g;) {
        int left = g - h0, hb = left >= 4 ? 4 : left >= 2 ? 2 : 1;
        const float *qh = q + (size_t)h0 * hd;
        float *sh = scores + (size_t)h0 * n;
        for (int r = 0, t = 0; r < n_runs; t += runs[r].n, r++) {
            const char *k = runs[r].k;
            const size_t after = (size_t)(n - t - runs[r].n); /* rows in the runs after this one */
            /* l2 = 0 for one or two heads: only the four-head loop asks the L2
             * (MHA f32/f16 already read at the ceiling, docs/attention.md). Four
             * rows of 16-bit keys: 16 sums, each a chain of head_dim/16 FMAs;
             * with two rows the FMA latency, not the ports, bound the pass (f16
             * GQA in L2 on the Xeon VM: 29 -> 25 ns a row). f32 stays at two:
             * four rows of 512 bytes in flight were 5% slower streaming */
            if (hb == 4 && dt != KVB_DTYPE_F32)
                dense_scores(dt, 4, 4, k, row_bytes, runs + r + 1, after, pf, l2, runs[r].n, hd, qh,
                             scale, sh + t, (size_t)n);
            else if (hb == 4)
                dense_scores(dt, 4, 2, k, row_bytes, runs + r + 1, after, pf, l2, runs[r].n, hd, qh,
                             scale, sh + t, (size_t)n);
            else if (hb == 2)
                dense_scores(dt, 2, 2, k, row_bytes, runs + r + 1, after, pf, 0, runs[r].n, hd, qh,
                             scale, sh + t, (size_t)n);
            else
                dense_scores(dt, 1, 4, k, row_bytes, runs + r + 1, after, pf, 0, runs[r].n, hd, qh,
                             scale, sh + t, (size_t)n);
        }
        h0 += hb;
    }
    for (int h = 0; h < g; h++) {
        float mx, sum = softmax_exp_max_avx512(scores + (size_t)h * n, n, &mx), inv = 1.0f / sum;
        if (ml) { ml[2 * h] = mx; ml[2 * h + 1] = sum; }
        for (int t = 0; t < n; t++) scores[(size_t)h * n + t] *= inv;   /* weights sum to 1 */
    }
    for (int h0 = 0; h0 < g;) {
        int left = g - h0, hb = left >= 8 && left % 4 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
        const float *wh = scores + (size_t)h0 * n;
        float *oh = out + (size_t)h0 * hd;
        /* constant accumulator counts for the head_dims models use */
        if (hb <= 2 && (hd == 128 || hd == 64)) {
            if (hd == 128 && hb == 2)
                dense_values_rows(dt, 2, 8, runs, row_bytes, pf, n, wh, (size_t)n, oh, hd);
            else if (hd == 128)
                dense_values_rows(dt, 1, 8, runs, row_bytes, pf, n, wh, (size_t)n, oh, hd);
            else if (hb == 2)
                dense_values_rows(dt, 2, 4, runs, row_bytes, pf, n, wh, (size_t)n, oh, hd);
            else
                dense_values_rows(dt, 1, 4, runs, row_bytes, pf, n, wh, (size_t)n, oh, hd);
        } else if (hb == 4 && hd == 128 && dt != KVB_DTYPE_F32)
            dense_values_tiles(dt, 4, 4, runs, row_bytes, pf, l2, n, wh, (size_t)n, oh, hd);
        else if (hb == 4 && hd == 128)
            dense_values_pairs(dt, 8, runs, row_bytes, pf, n, wh, (size_t)n, oh, hd);
        else if (hb == 4 && hd == 64)
            dense_values_pairs(dt, 4, runs, row_bytes, pf, n, wh, (size_t)n, oh, hd);
        else if (hb == 4 && hd % 64 == 0)
            dense_values_tiles(dt, 4, 4, runs, row_bytes, pf, l2, n, wh, (size_t)n, oh, hd);
        else if (hb == 8)
            dense_values_tiles(dt, 8, 1, runs, row_bytes, pf, l2, n, wh, (size_t)n, oh, hd);
        else if (hb == 4)
            dense_values_tiles(dt, 4, 1, runs, row_bytes, pf, l2, n, wh, (size_t)n, oh, hd);
        else if (hb == 2)
            dense_values_tiles(dt, 2, 1, runs, row_bytes, pf, l2, n, wh, (size_t)n, oh, hd);
        else
            dense_values_tiles(dt, 1, 1, runs, row_bytes, pf, l2, n, wh, (size_t)n, oh, hd);
        h0 += hb;
    }
}

/* One instance per storage type, the type a constant inside. */
static KVB_AVX512 void attend_runs_avx512(kvb_dtype dt, const kvb_kv_run *runs, int n_runs,
                                          size_t row_stride, int head_dim, int g, const float *q,
                                          float *out, float *scratch, float *ml)
{
    int n = 0;
    for (int r = 0; r < n_runs; r++) n += runs[r].n;
    memset(out, 0, (size_t)g * (size_t)head_dim * sizeof(float));
    if (n <= 0) return;
    size_t row_bytes = row_stride * kvb_dtype_size(dt);
    switch (dt) {
    case KVB_DTYPE_F16:
        dense_run(KVB_DTYPE_F16, runs, n_runs, row_bytes, head_dim, g, q, out, scratch, n, ml);
        break;
    case KVB_DTYPE_BF16:
        dense_run(KVB_DTYPE_BF16, runs, n_runs, row_bytes, head_dim, g, q, out, scratch, n, ml);
        break;
    default:
        dense_run(KVB_DTYPE_F32, runs, n_runs, row_bytes, head_dim, g, q, out, scratch, n, ml);
        break;
    }
}

const kvb_attend_kernel kvb_attend_kernel_avx512 = {"avx512", 16, kvb_have_avx512,
                                                    attend_runs_avx512};

#else
static int usable_avx512(void) { return 0; }

const kvb_attend_kernel kvb_attend_kernel_avx512 = {"avx512", 16, usable_avx512, NULL};
#endif
