/* test_batch.c: the batched attend (kvb_cache_attend_batch) of every backend that stores.
 *
 * A grid over each registered backend x each storage type it supports x MHA 8/8, GQA 8/2,
 * MQA 8/1 x head_dim 32 and 128 x 1 and 2 threads, with a batch of 5 sequences of mixed
 * lengths (1, 2, 17, 520, 600) in layer 1 of a 2-layer cache (layer 0 holds other data).
 * The two longest are forked from a common parent of 500 tokens (shared blocks where the
 * backend shares; appended alike where it cannot fork) and then diverge; appends
 * interleave across sequences, so block tables are fragmented. Every item's out must
 * (1) match the float64 reference over the tokens appended, within the storage type's
 * tolerance (kvbt_tolerance); (2) match the float64 reference over what the cache holds
 * (kvbt_read_back, the query as its kernel meets it) to f32 rounding; (3) equal, bit for
 * bit, what kvb_cache_attend writes for that item alone (also in a batch that names one
 * sequence twice). Three planted wrong backends (a contiguous cache whose attend_batch
 * swaps two outs, skips one item, or drops the newest token of one item) must fail every
 * case of the same check.
 * Usage: test_batch [REGEX] (or KVB_TEST_FILTER=REGEX), e.g.
 *   test_batch 'attend_batch\(paged,f16,h=8,kv=2,hd=128,B=5,th=2\)'. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../impls/kvb_backend.h"
#include "testlib.h"

enum { BATCH = 5, PARENT = BATCH, PARENT_LEN = 500, MAX_SEQ = 640, WINDOW = 64 };

/* against the K/V held, f32 rounding over up to 600 tokens: the fused quantized
 * loops reach 1.8e-5 at 600 (q4, hd 128; test_quant's 2e-5 is for 300 at most) */
static double held_tolerance(void) { return 2 * kvbt_tolerance(KVB_DTYPE_F32); }

/* tokens of layer 1 per batch sequence; 3 and 4 start as forks of PARENT */
static const int seq_len[BATCH] = {1, 2, 17, 520, 600};
/* the batch's order: neither by length nor by sequence */
static const int item_seq[BATCH] = {4, 0, 3, 1, 2};

/* ---- planted wrong backends: contiguous with one attend_batch bug each ------------ */

typedef enum wrong_bug { WRONG_SWAP, WRONG_SKIP_ITEM, WRONG_DROP_NEWEST } wrong_bug;

/* attention of (seq, layer) without its newest token: those before it, read back
 * into a scratch f32 cache of one sequence */
static kvb_status attend_but_newest(kvb_backend_ctx *w, int seq, int layer, const float *q,
                                    float *out)
{
    const kvb_cache *in = kvbt_wrap_inner(w);
    const int n = kvb_cache_length(in, seq, layer);
    kvb_shape s1 = *kvb_cache_shape(in);
    const size_t row = (size_t)s1.n_kv_heads * s1.head_dim;
    s1.n_layers = 1;
    kvb_options o1 = {.dtype = KVB_DTYPE_F32, .max_seqs = 1};
    kvb_cache *tmp = NULL;
    char msg[128];
    float *k = malloc((size_t)n * row * sizeof *k), *v = malloc((size_t)n * row * sizeof *v);
    kvb_status st = k && v ? kvb_cache_create(&tmp, kvb_backend_find("contiguous"), &s1, &o1,
                                              msg, sizeof msg)
                           : KVB_STATUS_NO_MEMORY;
    if (st == KVB_STATUS_OK) st = kvbt_read_back(in, seq, layer, k, v);
    for (int t = 0; st == KVB_STATUS_OK && t + 1 < n; t++)
        st = kvb_cache_append(tmp, 0, 0, k + (size_t)t * row, v + (size_t)t * row);
    if (st == KVB_STATUS_OK) st = kvb_cache_attend(tmp, 0, 0, q, out);
    kvb_cache_destroy(tmp);
    free(k);
    free(v);
    return st;
}

static kvb_status w_batch(kvb_backend_ctx *w, int layer, const kvb_attend_item *items, int n,
                          wrong_bug bug)
{
    for (int i = 0; i < n; i++) {
        int from = bug == WRONG_SWAP && n > 1 && i < 2 ? 1 - i : i;   /* items 0 and 1 swap */
        kvb_status st = KVB_STATUS_OK;
        if (bug == WRONG_SKIP_ITEM && i == n - 1) continue;          /* an off-by-one loop */
        if (bug == WRONG_DROP_NEWEST && i == 3)        /* seq 1: one of its 2 tokens */
            st = attend_but_newest(w, items[i].seq, layer, items[i].q, items[i].out);
        else
            st = kvb_cache_attend(kvbt_wrap_inner(w), items[from].seq, layer, items[from].q,
                                  items[i].out);
        if (st != KVB_STATUS_OK) return st;
    }
    return KVB_STATUS_OK;
}
static kvb_status w_batch_swap(kvb_backend_ctx *w, int layer, const kvb_attend_item *it, int n)
{
    return w_batch(w, layer, it, n, WRONG_SWAP);
}
static kvb_status w_batch_skip(kvb_backend_ctx *w, int layer, const kvb_attend_item *it, int n)
{
    return w_batch(w, layer, it, n, WRONG_SKIP_ITEM);
}
static kvb_status w_batch_drop(kvb_backend_ctx *w, int layer, const kvb_attend_item *it, int n)
{
    return w_batch(w, layer, it, n, WRONG_DROP_NEWEST);
}

static const kvb_backend wrong_swap = {
    .name = "wrong-swap", .description = "planted bug: items 0 and 1 get each other's out",
    .attend_batch = w_batch_swap, KVBT_WRAP_SLOTS,
};
static const kvb_backend wrong_skip = {
    .name = "wrong-skip", .description = "planted bug: the last item is not attended",
    .attend_batch = w_batch_skip, KVBT_WRAP_SLOTS,
};
static const kvb_backend wrong_drop = {
    .name = "wrong-drop", .description = "planted bug: one item misses its newest token",
    .attend_batch = w_batch_drop, KVBT_WRAP_SLOTS,
};

/* ---- the batch check ------------------------------------------------------------- */

typedef struct batch_result {
    int cases, skipped, forked;
    int failed, failed_ref, failed_held, failed_bits;   /* a case counts once in each */
    double worst_ref[KVB_DTYPE_COUNT], worst_held;
    char   worst_held_case[192];
} batch_result;

/* One case's inputs and outputs; k, v keep every token appended to layer 1 of a
 * sequence, oldest first, forked history included: [BATCH + 1][MAX_SEQ][nkv][hd]. */
typedef struct batch_case {
    kvb_cache *c;
    int        nh, nkv, hd;
    float     *k, *v, *q, *out, *one;   /* q, out, one: [BATCH][nh][hd] */
    int        len[BATCH + 1];
    uint64_t   seed;
} batch_case;

static float *hist(const batch_case *t, float *base, int seq, int tok)
{
    return base + (((size_t)seq * MAX_SEQ + (size_t)tok) * t->nkv) * t->hd;
}

/* One token of seq: random K/V in layer 1 (recorded), junk in layer 0. */
static int append_token(batch_case *t, int seq)
{
    const size_t row = (size_t)t->nkv * t->hd;
    float *k = hist(t, t->k, seq, t->len[seq]), *v = hist(t, t->v, seq, t->len[seq]);
    float junk[8 * 128];                              /* [nkv][hd], the grid's largest */
    kvbt_fill(k, row, 1.0f, &t->seed);
    kvbt_fill(v, row, 1.0f, &t->seed);
    kvbt_fill(junk, row, 50.0f, &t->seed);
    t->len[seq]++;
    return kvb_cache_append(t->c, seq, 0, junk, junk) == KVB_STATUS_OK &&
           kvb_cache_append(t->c, seq, 1, k, v) == KVB_STATUS_OK;
}

/* The parent, the forks (or the same tokens appended, where the backend cannot
 * fork), then every sequence's own tokens interleaved. Returns 1 when all went in. */
static int fill_sequences(batch_case *t, int *forked)
{
    const size_t bytes = (size_t)PARENT_LEN * t->nkv * t->hd * sizeof(float);
    int ok = 1;
    for (int i = 0; i < PARENT_LEN && ok; i++) ok = append_token(t, PARENT);
    for (int s = 3; s < BATCH && ok; s++) {
        kvb_status st = kvb_cache_seq_fork(t->c, PARENT, s);
        *forked = st == KVB_STATUS_OK;
        for (int i = 0; st == KVB_STATUS_UNSUPPORTED && i < PARENT_LEN && ok; i++) {
            const size_t at = ((size_t)PARENT * MAX_SEQ + (size_t)i) * t->nkv * t->hd;
            const float *pk = t->k + at, *pv = t->v + at;
            ok = kvb_cache_append(t->c, s, 0, pk, pv) == KVB_STATUS_OK &&   /* any layer-0 data */
                 kvb_cache_append(t->c, s, 1, pk, pv) == KVB_STATUS_OK;
        }
        ok = ok && (st == KVB_STATUS_OK || st == KVB_STATUS_UNSUPPORTED);
        memcpy(hist(t, t->k, s, 0), hist(t, t->k, PARENT, 0), bytes);
        memcpy(hist(t, t->v, s, 0), hist(t, t->v, PARENT, 0), bytes);
        t->len[s] = PARENT_LEN;
    }
    for (int more = 1; more && ok;) {
        more = 0;
        for (int s = 0; s < BATCH && ok; s++)
            if (t->len[s] < seq_len[s]) {
                ok = append_token(t, s);
                more = 1;
            }
    }
    return ok;
}

/* The three checks of one case; adds its failures to r, bad_bits (a bitwise
 * failure found before) among them. */
static void judge(batch_case *t, const kvb_backend *b, const kvb_shape *shape,
                  const kvb_options *opt, const char *name, int verbose, int bad_bits,
                  batch_result *r)
{
    const size_t nq = (size_t)t->nh * t->hd, kvn = (size_t)MAX_SEQ * t->nkv * t->hd;
    const kvb_dtype dt = opt->dtype;
    double *ref = malloc(nq * sizeof *ref);
    float *hk = malloc(kvn * sizeof *hk), *hv = malloc(kvn * sizeof *hv),
          *qa = malloc(nq * sizeof *qa);
    int bad_ref = 0, bad_held = 0;
    for (int i = 0; i < BATCH; i++) {
        const int s = item_seq[i], n = kvb_cache_attended(t->c, t->len[s]);
        const float *out = t->out + i * nq;
        kvbt_ref_attend(t->q + i * nq, hist(t, t->k, s, t->len[s] - n),
                        hist(t, t->v, s, t->len[s] - n), n, t->nh, t->nkv, t->hd, ref);
        double e = kvbt_rel_l2(out, ref, nq);
        if (!(e <= r->worst_ref[dt])) r->worst_ref[dt] = e;
        int bad = !(e <= kvbt_tolerance(dt));
        if (bad && verbose)
            print_message("FAIL %s: item %d (seq %d, %d tokens): rel L2 %.3g against the "
                          "appended K/V > %.3g\n", name, i, s, n, e, kvbt_tolerance(dt));
        bad_ref |= bad;
        if (kvb_cache_length(t->c, s, 1) == n &&
            kvbt_read_back(t->c, s, 1, hk, hv) == KVB_STATUS_OK) {
            kvbt_query_as_attended(b, shape, opt, t->q + i * nq, qa);
            kvbt_ref_attend(qa, hk, hv, n, t->nh, t->nkv, t->hd, ref);
            e = kvbt_rel_l2(out, ref, nq);
            if (!(e <= r->worst_held)) {
                r->worst_held = e;
                snprintf(r->worst_held_case, sizeof r->worst_held_case, "%s", name);
            }
            bad = !(e <= held_tolerance());
            if (bad && verbose)
                print_message("FAIL %s: item %d (seq %d): rel L2 %.3g against the K/V held "
                              "> %.3g\n", name, i, s, e, held_tolerance());
            bad_held |= bad;
        }
        bad = memcmp(out, t->one + i * nq, nq * sizeof *out) != 0;
        if (bad && verbose)
            print_message("FAIL %s: item %d (seq %d): out differs from its own attend\n", name,
                          i, s);
        bad_bits |= bad;
    }
    r->failed_ref += bad_ref;
    r->failed_held += bad_held;
    r->failed_bits += bad_bits;
    r->failed += bad_ref || bad_held || bad_bits;
    free(ref); free(hk); free(hv); free(qa);
}

/* Items may name the same sequence: seq 3 twice (two queries) and seq 4, batched,
 * against the three single attends. 1 when an out differs. Uses t->out and t->one. */
static int same_seq_differs(batch_case *t, const char *name, int verbose)
{
    static const int seqs[3] = {3, 3, 4};
    const size_t nq = (size_t)t->nh * t->hd;
    kvb_attend_item items[3];
    for (int i = 0; i < 3; i++) {
        items[i] = (kvb_attend_item){seqs[i], t->q + i * nq, t->out + i * nq};
        for (size_t j = 0; j < nq; j++) t->out[i * nq + j] = NAN;
    }
    assert_int_equal(kvb_cache_attend_batch(t->c, 1, items, 3), KVB_STATUS_OK);
    int bad = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(kvb_cache_attend(t->c, seqs[i], 1, t->q + i * nq, t->one + i * nq),
                         KVB_STATUS_OK);
        bad |= memcmp(t->out + i * nq, t->one + i * nq, nq * sizeof *t->out) != 0;
    }
    if (bad && verbose)
        print_message("FAIL %s: a batch naming seq 3 twice differs from its attends\n", name);
    return bad;
}

static void run_case(const kvb_backend *b, const kvb_shape *shape, const kvb_options *opt,
                     const char *name, int verbose, batch_result *r)
{
    batch_case t = {.nh = shape->n_heads, .nkv = shape->n_kv_heads, .hd = shape->head_dim,
                    .seed = 0x9e3779b97f4a7c15ull};
    const size_t nq = (size_t)t.nh * t.hd, kvn = (BATCH + 1) * (size_t)MAX_SEQ * t.nkv * t.hd;
    t.k = malloc(kvn * sizeof *t.k);
    t.v = malloc(kvn * sizeof *t.v);
    t.q = malloc(BATCH * nq * sizeof *t.q);
    t.out = malloc(BATCH * nq * sizeof *t.out);
    t.one = malloc(BATCH * nq * sizeof *t.one);
    assert_true(t.k && t.v && t.q && t.out && t.one);
    t.c = kvbt_cache_new(b, shape, opt);
    int forked = 0;
    if (!fill_sequences(&t, &forked)) fail_msg("%s: append failed", name);
    r->forked += forked;
    kvbt_fill(t.q, BATCH * nq, 2.0f, &t.seed);
    const int dup_bad = same_seq_differs(&t, name, verbose);
    kvb_attend_item items[BATCH];
    for (int i = 0; i < BATCH; i++) {
        items[i] = (kvb_attend_item){item_seq[i], t.q + i * nq, t.out + i * nq};
        for (size_t j = 0; j < nq; j++) {          /* what no attend writes */
            t.out[i * nq + j] = NAN;
            t.one[i * nq + j] = -1.0f;
        }
    }
    assert_int_equal(kvb_cache_attend_batch(t.c, 1, items, BATCH), KVB_STATUS_OK);
    for (int i = 0; i < BATCH; i++)
        assert_int_equal(kvb_cache_attend(t.c, item_seq[i], 1, t.q + i * nq, t.one + i * nq),
                         KVB_STATUS_OK);
    judge(&t, b, shape, opt, name, verbose, dup_bad, r);
    kvb_cache_destroy(t.c);
    free(t.k); free(t.v); free(t.q); free(t.out); free(t.one);
}

static batch_result check_batch(void **state, const kvb_backend *b, int verbose)
{
    static const kvbt_heads heads[] = {{8, 8}, {8, 2}, {8, 1}};
    static const int hds[] = {32, 128}, threads[] = {1, 2};
    batch_result r = {0};
    for (int dt = 0; dt < KVB_DTYPE_COUNT; dt++)
    for (size_t hs = 0; hs < KVBT_COUNT(heads); hs++)
    for (size_t hi = 0; hi < KVBT_COUNT(hds); hi++)
    for (size_t ti = 0; ti < KVBT_COUNT(threads); ti++) {
        const int win = b->flags & KVB_BACKEND_WINDOW ? WINDOW : 0;
        char name[192], wtag[16] = "";
        if (win) snprintf(wtag, sizeof wtag, ",w=%d", win);
        if (!kvbt_case(state, name, sizeof name,
                       "attend_batch(%s,%s,h=%d,kv=%d,hd=%d,B=%d,th=%d%s)", b->name,
                       kvb_dtype_name((kvb_dtype)dt), heads[hs].nh, heads[hs].nkv, hds[hi],
                       BATCH, threads[ti], wtag))
            continue;
        kvb_shape shape = {2, heads[hs].nh, heads[hs].nkv, hds[hi], MAX_SEQ};
        /* quantized: a residual window of 20 f32 tokens beside the codes */
        kvb_options opt = {.dtype = (kvb_dtype)dt, .max_seqs = BATCH + 1,
                           .threads = threads[ti], .window = win, .residual = 20};
        char why[256];
        if (kvb_backend_supports(b, &shape, &opt, why, sizeof why) != KVB_STATUS_OK) {
            r.skipped++;
            continue;
        }
        r.cases++;
        run_case(b, &shape, &opt, name, verbose, &r);
    }
    return r;
}

static void test_attend_batch_every_backend(void **state)
{
    int backends = 0;
    for (int i = 0; i < kvb_backend_count(); i++) {
        const kvb_backend *b = kvb_backend_at(i);
        if (b->flags & KVB_BACKEND_RECOMPUTE) continue;     /* attends nothing stored */
        batch_result r = check_batch(state, b, 1);
        char worst[256];
        kvbt_worst_by_type(r.worst_ref, worst, sizeof worst);
        print_message("%s (%s): %d cases, %d failed, %d skipped, %d forked; worst rel L2 "
                      "appended%s, held %.2g %s\n", b->name,
                      b->version >= 3 && b->attend_batch ? "batched" : "fallback", r.cases,
                      r.failed, r.skipped, r.forked, worst, r.worst_held, r.worst_held_case);
        assert_int_equal(r.failed, 0);
        backends += r.cases > 0;
    }
    if (backends == 0) skip();     /* the filter selected no case */
}

/* Each planted bug fails every case, in both the reference and the bitwise checks. */
static void test_attend_batch_rejects_planted_bugs(void **state)
{
    (void)state;
    const kvb_backend *wrong[] = {&wrong_swap, &wrong_skip, &wrong_drop};
    for (size_t i = 0; i < KVBT_COUNT(wrong); i++) {
        batch_result r = check_batch(NULL, wrong[i], 0);
        print_message("%s: %d of %d cases rejected (reference %d, held %d, bitwise %d)\n",
                      wrong[i]->name, r.failed, r.cases, r.failed_ref, r.failed_held,
                      r.failed_bits);
        assert_true(r.cases > 0);
        assert_int_equal(r.failed_ref, r.cases);
        assert_int_equal(r.failed_held, r.cases);
        assert_int_equal(r.failed_bits, r.cases);
    }
}

int main(int argc, char **argv)
{
    static const kvbt_test all[] = {
        {"attend_batch_every_backend", test_attend_batch_every_backend, 1},
        {"attend_batch_rejects_planted_bugs", test_attend_batch_rejects_planted_bugs, 0},
    };
    return kvbt_main(argc, argv, "batch", all, KVBT_COUNT(all));
}
