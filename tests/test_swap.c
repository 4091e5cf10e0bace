/* test_swap.c: seq_save and seq_load (swap out to host memory and back) of every
 * backend that has them, and the refusals of kvb_cache_seq_save/_load.
 *
 * A grid over each registered backend x each storage type it supports x MHA 8/8,
 * GQA 8/2, MQA 8/1 x head_dim 32 and 128, in a 2-layer cache. Saved sequences: a
 * child forked from a 100-token parent then grown to 137 tokens (shared blocks where
 * the backend shares), one of 1 token, one of 45, and an empty one. Each is saved and
 * loaded into an empty sequence of the same cache; then, for both layers, (1) the
 * loaded sequence's length, read_kv rows and attend output equal the original's bit
 * for bit, (2) its attend matches the float64 reference over the K/V held to f32
 * rounding, (3) after one more identical token appended to both, their attends are
 * again equal bit for bit (a partly filled last block resumes right), (4) its
 * seq_memory used equals the original's. Two planted wrong backends (a contiguous
 * cache whose save shifts the rows by one token, or zeroes the last layer) must
 * fail every case. Refusals: a non-empty target, a short buffer, a truncated or
 * foreign save (FORMAT), a pool without the blocks (FULL, target still empty, the
 * pool unchanged), backends without the slots (UNSUPPORTED).
 * Usage: test_swap [REGEX], e.g. test_swap 'swap\(paged,f16,h=8,kv=2,hd=128\)'. */

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

enum { LAYERS = 2, MAX_SEQ = 300, PARENT = 0, CHILD = 1, SEQS = 10 };

/* the saved sequences and their lengths; CHILD is forked from PARENT's 100 */
static const int saved_seq[4] = {CHILD, 2, 3, 4};
static const int saved_len[4] = {137, 1, 45, 0};

/* ---- planted wrong backends: contiguous with a bad save ---------------------------- */

typedef enum wrong_bug { WRONG_SHIFT, WRONG_LAST_LAYER } wrong_bug;

static kvb_status w_save(const kvb_backend_ctx *w, int seq, void *dst, size_t *bytes,
                         wrong_bug bug)
{
    const kvb_cache *in = kvbt_wrap_inner(w);
    kvb_status st = kvb_cache_seq_save(in, seq, dst, bytes);
    if (st != KVB_STATUS_OK || !dst) return st;
    const kvb_shape *s = kvb_cache_shape(in);
    const int n = kvb_cache_length(in, seq, 0);
    /* contiguous's save: [layer][K|V][kv_head][token][head_dim] after its head */
    const size_t layer = (*bytes - sizeof(kvb_save_head)) / LAYERS;
    const size_t row = n ? layer / (2 * (size_t)s->n_kv_heads * (size_t)n) : 0;
    char *p = (char *)dst + sizeof(kvb_save_head);
    if (n > 1 && bug == WRONG_SHIFT)   /* an offset one token off: rows 1.. where 0.. belong */
        memmove(p, p + row, (size_t)LAYERS * layer - row);
    if (bug == WRONG_LAST_LAYER) memset(p + (LAYERS - 1) * layer, 0, layer);
    return KVB_STATUS_OK;
}
static kvb_status w_save_shift(const kvb_backend_ctx *w, int seq, void *dst, size_t *bytes)
{
    return w_save(w, seq, dst, bytes, WRONG_SHIFT);
}
static kvb_status w_save_layer(const kvb_backend_ctx *w, int seq, void *dst, size_t *bytes)
{
    return w_save(w, seq, dst, bytes, WRONG_LAST_LAYER);
}
static kvb_status w_load(kvb_backend_ctx *w, int seq, const void *src, size_t bytes)
{
    return kvb_cache_seq_load(kvbt_wrap_inner(w), seq, src, bytes);
}

static const kvb_backend wrong_shift = {
    .name = "wrong-shift", .description = "planted bug: save's rows one token off",
    .seq_save = w_save_shift, .seq_load = w_load, KVBT_WRAP_SLOTS,
};
static const kvb_backend wrong_layer = {
    .name = "wrong-layer", .description = "planted bug: save zeroes the last layer",
    .seq_save = w_save_layer, .seq_load = w_load, KVBT_WRAP_SLOTS,
};

/* ---- the check --------------------------------------------------------------------- */

typedef struct swap_result {
    int cases, skipped, failed;
    double worst_held;
} swap_result;

static int append_random(kvb_cache *c, int seq, int nkv, int hd, uint64_t *seed)
{
    float k[8 * 128], v[8 * 128];   /* [nkv][hd], the grid's largest */
    int ok = 1;
    for (int l = 0; l < LAYERS && ok; l++) {
        kvbt_fill(k, (size_t)nkv * hd, 1.0f, seed);
        kvbt_fill(v, (size_t)nkv * hd, 1.0f, seed);
        ok = kvb_cache_append(c, seq, l, k, v) == KVB_STATUS_OK;
    }
    return ok;
}

/* Layer l of a and b: lengths, read_kv rows and attends to q equal bit for bit;
 * b's attend within f32 rounding of float64 over what it holds. 1 when they differ. */
static int differs(kvb_cache *c, const kvb_backend *be, const kvb_shape *sh,
                   const kvb_options *o, int a, int b, const float *q, swap_result *r)
{
    const int nh = sh->n_heads, nkv = sh->n_kv_heads, hd = sh->head_dim;
    const size_t nq = (size_t)nh * hd, kvn = (size_t)MAX_SEQ * nkv * hd;
    float *oa = malloc(nq * sizeof *oa), *ob = malloc(nq * sizeof *ob);
    float *ka = malloc(kvn * sizeof *ka), *va = malloc(kvn * sizeof *va);
    float *kb = malloc(kvn * sizeof *kb), *vb = malloc(kvn * sizeof *vb);
    float *qa = malloc(nq * sizeof *qa);
    double *ref = malloc(nq * sizeof *ref);
    assert_true(oa && ob && ka && va && kb && vb && qa && ref);
    int bad = 0;
    for (int l = 0; l < LAYERS; l++) {
        const int n = kvb_cache_length(c, a, l);
        bad |= n != kvb_cache_length(c, b, l);
        if (bad || n == 0) continue;
        assert_int_equal(kvb_cache_attend(c, a, l, q, oa), KVB_STATUS_OK);
        assert_int_equal(kvb_cache_attend(c, b, l, q, ob), KVB_STATUS_OK);
        bad |= memcmp(oa, ob, nq * sizeof *oa) != 0;
        if (kvbt_read_back(c, a, l, ka, va) == KVB_STATUS_OK &&
            kvbt_read_back(c, b, l, kb, vb) == KVB_STATUS_OK) {
            size_t m = (size_t)n * nkv * hd * sizeof *ka;
            bad |= memcmp(ka, kb, m) != 0 || memcmp(va, vb, m) != 0;
            kvbt_query_as_attended(be, sh, o, q, qa);
            kvbt_ref_attend(qa, kb, vb, n, nh, nkv, hd, ref);
            double e = kvbt_rel_l2(ob, ref, nq);
            if (!(e <= r->worst_held)) r->worst_held = e;
            bad |= !(e <= 2 * kvbt_tolerance(KVB_DTYPE_F32));
        }
    }
    free(oa); free(ob); free(ka); free(va); free(kb); free(vb); free(qa); free(ref);
    return bad;
}

static int run_case(const kvb_backend *b, const kvb_shape *sh, const kvb_options *o,
                    const char *name, int verbose, swap_result *r)
{
    uint64_t seed = 0x2545f4914f6cdd1dull;
    const int nkv = sh->n_kv_heads, hd = sh->head_dim;
    const size_t nq = (size_t)sh->n_heads * hd;
    kvb_cache *c = kvbt_cache_new(b, sh, o);
    float *q = malloc(nq * sizeof *q);
    assert_non_null(q);
    kvbt_fill(q, nq, 2.0f, &seed);
    int ok = 1;
    for (int t = 0; t < 100 && ok; t++) ok = append_random(c, PARENT, nkv, hd, &seed);
    kvb_status fs = kvb_cache_seq_fork(c, PARENT, CHILD);
    for (int t = 0; fs == KVB_STATUS_UNSUPPORTED && t < 100 && ok; t++)
        ok = append_random(c, CHILD, nkv, hd, &seed);
    ok = ok && (fs == KVB_STATUS_OK || fs == KVB_STATUS_UNSUPPORTED);
    for (int i = 0; i < 4 && ok; i++)
        while (ok && kvb_cache_length(c, saved_seq[i], 0) < saved_len[i])
            ok = append_random(c, saved_seq[i], nkv, hd, &seed);
    if (!ok) fail_msg("%s: append failed", name);
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        const int s = saved_seq[i], d = 5 + i;
        size_t bytes = 0;
        assert_int_equal(kvb_cache_seq_save(c, s, NULL, &bytes), KVB_STATUS_OK);
        void *buf = malloc(bytes);
        assert_non_null(buf);
        size_t got = bytes;
        assert_int_equal(kvb_cache_seq_save(c, s, buf, &got), KVB_STATUS_OK);
        assert_int_equal(got, bytes);
        assert_int_equal(kvb_cache_seq_load(c, d, buf, bytes), KVB_STATUS_OK);
        free(buf);
        int bad1 = differs(c, b, sh, o, s, d, q, r);
        kvb_memory ms, md;
        if (kvb_cache_seq_memory(c, s, &ms) == KVB_STATUS_OK &&
            kvb_cache_seq_memory(c, d, &md) == KVB_STATUS_OK)
            bad1 |= ms.used != md.used;
        /* the same token to both: a partly filled last block resumes alike */
        uint64_t s2 = seed + (uint64_t)i;
        uint64_t s3 = s2;
        assert_true(append_random(c, s, nkv, hd, &s2));
        assert_true(append_random(c, d, nkv, hd, &s3));
        bad1 |= differs(c, b, sh, o, s, d, q, r);
        if (bad1 && verbose)
            print_message("FAIL %s: seq %d (%d tokens) saved and loaded into %d differs\n", name,
                          s, saved_len[i], d);
        bad |= bad1;
    }
    kvb_cache_destroy(c);
    free(q);
    r->failed += bad;
    return bad;
}

static swap_result check_swap(void **state, const kvb_backend *b, int verbose)
{
    static const kvbt_heads heads[] = {{8, 8}, {8, 2}, {8, 1}};
    static const int hds[] = {32, 128};
    swap_result r = {0};
    for (int dt = 0; dt < KVB_DTYPE_COUNT; dt++)
    for (size_t hs = 0; hs < KVBT_COUNT(heads); hs++)
    for (size_t hi = 0; hi < KVBT_COUNT(hds); hi++) {
        char name[160];
        if (!kvbt_case(state, name, sizeof name, "swap(%s,%s,h=%d,kv=%d,hd=%d)", b->name,
                       kvb_dtype_name((kvb_dtype)dt), heads[hs].nh, heads[hs].nkv, hds[hi]))
            continue;
        kvb_shape sh = {LAYERS, heads[hs].nh, heads[hs].nkv, hds[hi], MAX_SEQ};
        kvb_options o = {.dtype = (kvb_dtype)dt, .max_seqs = SEQS};
        char why[256];
        if (kvb_backend_supports(b, &sh, &o, why, sizeof why) != KVB_STATUS_OK) {
            r.skipped++;
            continue;
        }
        r.cases++;
        run_case(b, &sh, &o, name, verbose, &r);
    }
    return r;
}

static int can_swap(const kvb_backend *b)
{
    return b->version >= 4 && b->seq_save && b->seq_load;
}

static void test_swap_every_backend(void **state)
{
    int backends = 0;
    for (int i = 0; i < kvb_backend_count(); i++) {
        const kvb_backend *b = kvb_backend_at(i);
        if (!can_swap(b)) continue;
        swap_result r = check_swap(state, b, 1);
        if (r.cases + r.skipped == 0) continue;
        print_message("%s: %d cases, %d failed, %d skipped; worst rel L2 against the K/V "
                      "held %.2g\n", b->name, r.cases, r.failed, r.skipped, r.worst_held);
        assert_int_equal(r.failed, 0);
        backends += r.cases > 0;
    }
    if (backends == 0) skip();
}

static void test_swap_rejects_planted_bugs(void **state)
{
    (void)state;
    const kvb_backend *wrong[] = {&wrong_shift, &wrong_layer};
    for (size_t i = 0; i < KVBT_COUNT(wrong); i++) {
        swap_result r = check_swap(NULL, wrong[i], 0);
        print_message("%s: %d of %d cases rejected\n", wrong[i]->name, r.failed, r.cases);
        assert_true(r.cases > 0);
        assert_int_equal(r.failed, r.cases);
    }
}

/* The refusals, on a paged pool of 8 blocks of 16 tokens. */
static void test_swap_refusals(void **state)
{
    (void)state;
    uint64_t seed = 7;
    kvb_shape sh = {LAYERS, 8, 2, 32, MAX_SEQ};
    kvb_options o = {.dtype = KVB_DTYPE_F32, .max_seqs = 4, .block_tokens = 16, .pool_blocks = 8};
    kvb_cache *c = kvbt_cache_new(kvb_backend_find("paged"), &sh, &o);
    for (int t = 0; t < 70; t++) assert_true(append_random(c, 0, 2, 32, &seed)); /* 5 blocks */
    size_t bytes = 0, small;
    assert_int_equal(kvb_cache_seq_save(c, 0, NULL, &bytes), KVB_STATUS_OK);
    char *buf = malloc(bytes);
    assert_non_null(buf);
    small = bytes - 1;
    assert_int_equal(kvb_cache_seq_save(c, 0, buf, &small), KVB_STATUS_INVALID_ARG);
    assert_int_equal(kvb_cache_seq_save(c, 9, NULL, &bytes), KVB_STATUS_INVALID_ARG);
    assert_int_equal(kvb_cache_seq_save(c, 0, buf, &bytes), KVB_STATUS_OK);
    assert_int_equal(kvb_cache_seq_load(c, 0, buf, bytes), KVB_STATUS_INVALID_ARG); /* not empty */
    assert_int_equal(kvb_cache_seq_load(c, 1, buf, bytes - 1), KVB_STATUS_FORMAT);
    assert_int_equal(kvb_cache_seq_load(c, 1, buf, 3), KVB_STATUS_FORMAT);
    /* 5 blocks wanted, 3 free: FULL, nothing taken */
    kvb_memory before = kvb_cache_memory(c);
    assert_int_equal(kvb_cache_seq_load(c, 1, buf, bytes), KVB_STATUS_FULL);
    assert_int_equal(kvb_cache_length(c, 1, 0), 0);
    assert_int_equal(kvb_cache_memory(c).reserved, before.reserved);
    /* freed, it fits */
    assert_int_equal(kvb_cache_seq_clear(c, 0), KVB_STATUS_OK);
    assert_int_equal(kvb_cache_seq_load(c, 1, buf, bytes), KVB_STATUS_OK);
    assert_int_equal(kvb_cache_length(c, 1, 1), 70);
    /* another backend's or shape's save */
    kvb_options of16 = o;
    of16.dtype = KVB_DTYPE_F16;
    kvb_cache *c16 = kvbt_cache_new(kvb_backend_find("paged"), &sh, &of16);
    assert_int_equal(kvb_cache_seq_load(c16, 0, buf, bytes), KVB_STATUS_FORMAT);
    kvb_options oc = {.dtype = KVB_DTYPE_F32, .max_seqs = 2};
    kvb_cache *cc = kvbt_cache_new(kvb_backend_find("contiguous"), &sh, &oc);
    assert_int_equal(kvb_cache_seq_load(cc, 0, buf, bytes), KVB_STATUS_FORMAT);
    /* layers of different lengths cannot be saved */
    assert_true(append_random(cc, 0, 2, 32, &seed));
    float k[64] = {0}, v[64] = {0};
    assert_int_equal(kvb_cache_append(cc, 0, 0, k, v), KVB_STATUS_OK);
    assert_int_equal(kvb_cache_seq_save(cc, 0, NULL, &bytes), KVB_STATUS_INVALID_ARG);
    free(buf);
    kvb_cache_destroy(c);
    kvb_cache_destroy(c16);
    kvb_cache_destroy(cc);
    /* backends without the slots */
    kvb_options oq = {.dtype = KVB_DTYPE_Q8, .max_seqs = 2};
    kvb_cache *cq = kvbt_cache_new(kvb_backend_find("quant"), &sh, &oq);
    assert_int_equal(kvb_cache_seq_save(cq, 0, NULL, &bytes), KVB_STATUS_UNSUPPORTED);
    assert_int_equal(kvb_cache_seq_load(cq, 0, &bytes, sizeof bytes), KVB_STATUS_UNSUPPORTED);
    kvb_cache_destroy(cq);
}

int main(int argc, char **argv)
{
    static const kvbt_test all[] = {
        {"swap_every_backend", test_swap_every_backend, 1},
        {"swap_rejects_planted_bugs", test_swap_rejects_planted_bugs, 0},
        {"swap_refusals", test_swap_refusals, 0},
    };
    return kvbt_main(argc, argv, "swap", all, KVBT_COUNT(all));
}
