/* test_cache.c: what a cache holds, sequence by sequence, through kvb_cache_* (cmocka).
 *
 * Tokens are written with values that name them, so a read-back tells which
 * sequence wrote which token: the paged caches' fork, copy on write and pool
 * exhaustion (and a randomized model of what each sequence holds), the window
 * backend's ring dropping its oldest tokens, and the checks and NULL-slot
 * fallbacks that kvb_cache_* apply before any backend code runs.
 * Usage: test_cache [REGEX] (or KVB_TEST_FILTER=REGEX): see testlib.h. */
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

/* ---- paged: fork, copy on write, exhaustion, and a randomized model ------- */

/* Token t of sequence "lineage" x: K/V values that name it, so a read-back
 * tells which sequence wrote which token. */
static void token_kv(int L_idx, int id, int nkv, int hd, float *k, float *v)
{
    for (int i = 0; i < nkv * hd; i++) {
        k[i] = (float)id + 0.001f * (float)i + 0.5f * (float)L_idx;
        v[i] = -k[i];
    }
}

static void append_token(kvb_cache *c, int seq, int L, int nkv, int hd, int id)
{
    float k[64], v[64];
    for (int l = 0; l < L; l++) {
        token_kv(l, id, nkv, hd, k, v);
        assert_int_equal(kvb_cache_append(c, seq, l, k, v), KVB_STATUS_OK);
    }
}

/* Every token of seq reads back as ids[0..n) in every layer and head. */
static void expect_tokens(const kvb_cache *c, int seq, int L, int nkv, int hd, const int *ids,
                          int n)
{
    float k[64], v[64], rk[16], rv[16];
    for (int l = 0; l < L; l++) {
        assert_int_equal(kvb_cache_length(c, seq, l), n);
        for (int t = 0; t < n; t++) {
            token_kv(l, ids[t], nkv, hd, k, v);
            for (int h = 0; h < nkv; h++) {
                assert_int_equal(kvb_cache_read_kv(c, seq, l, h, t, rk, rv), KVB_STATUS_OK);
                if (memcmp(rk, k + h * hd, (size_t)hd * 4) != 0 ||
                    memcmp(rv, v + h * hd, (size_t)hd * 4) != 0)
                    fail_msg("seq %d layer %d head %d token %d: expected id %d", seq, l, h, t,
                             ids[t]);
            }
        }
    }
}

static void test_paged_fork_cow_and_exhaustion(void **state)
{
    (void)state;
    const int L = 2, nkv = 2, hd = 8, bt = 4;
    kvb_shape shape = {L, 4, nkv, hd, 64};
    kvb_options o = {.dtype = KVB_DTYPE_F32, .alloc = KVB_ALLOC_GROW, .max_seqs = 4,
                     .block_tokens = bt, .pool_blocks = 8};
    const char *names[] = {"paged", "paged-blockmajor", "paged-tokmajor"};
    for (int ni = 0; ni < 3; ni++) {
        const kvb_backend *b = kvb_backend_find(names[ni]);
        kvb_cache *c;
        char msg[128];
        assert_int_equal(kvb_cache_create(&c, b, &shape, &o, msg, sizeof msg), KVB_STATUS_OK);
        size_t block_b = 2 * (size_t)L * nkv * bt * hd * 4, tok_b = 2 * (size_t)L * nkv * hd * 4;
        assert_int_equal(kvb_cache_memory(c).capacity, 8 * block_b);
        int pa[32], ch[32];
        for (int t = 0; t < 6; t++) {
            pa[t] = ch[t] = 100 + t;
            append_token(c, 0, L, nkv, hd, pa[t]);
        }
        kvb_memory m = kvb_cache_memory(c);
        assert_int_equal(m.reserved, 2 * block_b);              /* 6 tokens in 4-token blocks */
        assert_int_equal(m.used, 6 * tok_b);
        assert_true(m.reserved - m.used < block_b);              /* waste below one block */
        /* fork: nothing is copied, both see the same 6 tokens */
        assert_int_equal(kvb_cache_seq_fork(c, 0, 1), KVB_STATUS_OK);
        assert_int_equal(kvb_cache_memory(c).reserved, 2 * block_b);
        /* shared tokens count once */
        assert_int_equal(kvb_cache_memory(c).used, 6 * tok_b);
        assert_int_equal(kvbt_seq_memory(c, 1).reserved, 2 * block_b);
        expect_tokens(c, 1, L, nkv, hd, ch, 6);
        /* diverge: the first write into the shared, partly filled block copies it */
        pa[6] = 200; append_token(c, 0, L, nkv, hd, pa[6]);
        assert_int_equal(kvb_cache_memory(c).reserved, 3 * block_b);
        ch[6] = 300; append_token(c, 1, L, nkv, hd, ch[6]);  /* old block now private: no copy */
        assert_int_equal(kvb_cache_memory(c).reserved, 3 * block_b);
        for (int t = 7; t < 10; t++) {
            pa[t] = 200 + t; append_token(c, 0, L, nkv, hd, pa[t]);
            ch[t] = 300 + t; append_token(c, 1, L, nkv, hd, ch[t]);
        }
        expect_tokens(c, 0, L, nkv, hd, pa, 10);
        expect_tokens(c, 1, L, nkv, hd, ch, 10);
        /* 1 shared full block + 2 private x 2 = 5 blocks; used counts the shared 4 tokens once */
        assert_int_equal(kvb_cache_memory(c).reserved, 5 * block_b);
        assert_int_equal(kvb_cache_memory(c).used, (4 + 2 * 6) * tok_b);
        /* exhaustion: fill the pool, then the failing append changes nothing */
        int n0 = 10;
        while (kvb_cache_memory(c).reserved < 8 * block_b) {
            pa[n0] = 400 + n0;
            append_token(c, 0, L, nkv, hd, pa[n0]);
            n0++;
        }
        while (n0 % bt) { pa[n0] = 400 + n0; append_token(c, 0, L, nkv, hd, pa[n0]); n0++; }
        kvb_memory before = kvb_cache_memory(c);
        float k[64], v[64];
        token_kv(0, 999, nkv, hd, k, v);
        assert_int_equal(kvb_cache_append(c, 0, 0, k, v), KVB_STATUS_FULL);
        /* a new sequence too */
        assert_int_equal(kvb_cache_append(c, 2, 0, k, v), KVB_STATUS_FULL);
        kvb_memory after = kvb_cache_memory(c);
        assert_memory_equal(&before, &after, sizeof before);
        expect_tokens(c, 0, L, nkv, hd, pa, n0);
        expect_tokens(c, 1, L, nkv, hd, ch, 10);
        /* freeing the child returns only its private blocks; the shared one stays with the parent
         */
        assert_int_equal(kvb_cache_seq_clear(c, 1), KVB_STATUS_OK);
        assert_int_equal(kvb_cache_memory(c).reserved, 6 * block_b);
        expect_tokens(c, 0, L, nkv, hd, pa, n0);
        append_token(c, 2, L, nkv, hd, 7);                    /* room again */
        /* a fork of a sequence mid-step (layers of unequal length) is refused */
        token_kv(0, 8, nkv, hd, k, v);
        assert_int_equal(kvb_cache_append(c, 2, 0, k, v), KVB_STATUS_OK);
        assert_int_equal(kvb_cache_seq_fork(c, 2, 3), KVB_STATUS_INVALID_ARG);
        /* child not empty */
        assert_int_equal(kvb_cache_seq_fork(c, 0, 2), KVB_STATUS_INVALID_ARG);
        assert_int_equal(kvb_cache_seq_clear(c, 0), KVB_STATUS_OK);
        assert_int_equal(kvb_cache_seq_clear(c, 2), KVB_STATUS_OK);
        assert_int_equal(kvb_cache_memory(c).reserved, 0);
        assert_int_equal(kvb_cache_memory(c).used, 0);
        kvb_cache_destroy(c);
    }
    /* bad block sizes and pools are refused at create */
    kvb_cache *c;
    char msg[160];
    kvb_options bad = o;
    bad.block_tokens = 257;
    assert_int_equal(kvb_cache_create(&c, kvb_backend_find("paged"), &shape, &bad, msg, sizeof msg),
                     KVB_STATUS_INVALID_ARG);
    assert_non_null(strstr(msg, "257"));
    bad = o;
    bad.pool_blocks = 0;
    bad.pool_bytes = 100;                                        /* smaller than one block */
    assert_int_equal(kvb_cache_create(&c, kvb_backend_find("paged"), &shape, &bad, msg, sizeof msg),
                     KVB_STATUS_INVALID_ARG);
}

/* Thousands of random add/append/fork/free operations against a plain model
 * of what each sequence holds; the pool must end fully returned. */
static void test_paged_randomized(void **state)
{
    (void)state;
    const int L = 2, nkv = 1, hd = 4, S = 6, MAXT = 40;
    uint64_t seed = 12345;
    for (int bt = 1; bt <= 8; bt += 7) {
        kvb_shape shape = {L, 2, nkv, hd, MAXT};
        kvb_options o = {.dtype = KVB_DTYPE_F32, .alloc = KVB_ALLOC_GROW, .max_seqs = S,
                         .block_tokens = bt, .pool_blocks = (size_t)(MAXT / bt + 4)};
        const kvb_backend *b = kvb_backend_find("paged");
        kvb_cache *c;
        char msg[128];
        assert_int_equal(kvb_cache_create(&c, b, &shape, &o, msg, sizeof msg), KVB_STATUS_OK);
        int ids[6][40], len[6] = {0}, next_id = 1, fulls = 0, forks = 0;
        for (int op = 0; op < 4000; op++) {
            int r = (int)((kvbt_urand(&seed) + 1.0f) * 50.0f),
                s1 = (int)((kvbt_urand(&seed) + 1.0f) * 3.0f) % S;
            int s2 = (int)((kvbt_urand(&seed) + 1.0f) * 3.0f) % S;
            if (r < 70) {                                    /* append one token, every layer */
                if (len[s1] == MAXT) continue;
                float k[4], v[4];
                kvb_memory before = kvb_cache_memory(c);
                token_kv(0, next_id, nkv, hd, k, v);
                kvb_status st = kvb_cache_append(c, s1, 0, k, v);
                if (st == KVB_STATUS_FULL) {
                    kvb_memory after = kvb_cache_memory(c);
                    assert_memory_equal(&before, &after, sizeof before);
                    fulls++;
                    continue;
                }
                assert_int_equal(st, KVB_STATUS_OK);
                for (int l = 1; l < L; l++) {
                    token_kv(l, next_id, nkv, hd, k, v);
                    assert_int_equal(kvb_cache_append(c, s1, l, k, v),
                                     KVB_STATUS_OK); /* block already held */
                }
                ids[s1][len[s1]++] = next_id++;
            } else if (r < 85) {                             /* fork into an empty slot */
                if (len[s2] != 0 || s1 == s2) continue;
                assert_int_equal(kvb_cache_seq_fork(c, s1, s2), KVB_STATUS_OK);
                memcpy(ids[s2], ids[s1], sizeof ids[0]);
                len[s2] = len[s1];
                forks++;
            } else {                                         /* free */
                assert_int_equal(kvb_cache_seq_clear(c, s1), KVB_STATUS_OK);
                len[s1] = 0;
            }
            if (op % 97 == 0)
                for (int q = 0; q < S; q++) expect_tokens(c, q, L, nkv, hd, ids[q], len[q]);
            /* sharing can only save: used lies between the longest sequence and
             * the sum of all of them, and never above what is held */
            kvb_memory m = kvb_cache_memory(c);
            size_t tok_b = 2 * (size_t)L * nkv * hd * 4, sum = 0, mx = 0;
            for (int q = 0; q < S; q++) {
                sum += (size_t)len[q] * tok_b;
                mx = (size_t)len[q] * tok_b > mx ? (size_t)len[q] * tok_b : mx;
            }
            assert_true(m.reserved <= m.capacity && m.used <= m.reserved);
            assert_true(m.used >= mx && m.used <= sum);
        }
        for (int q = 0; q < S; q++) expect_tokens(c, q, L, nkv, hd, ids[q], len[q]);
        print_message("paged randomized (block %d): %d forks, %d pool-full refusals\n", bt, forks,
                      fulls);
        assert_true(forks > 50 && fulls > 0);
        for (int q = 0; q < S; q++) assert_int_equal(kvb_cache_seq_clear(c, q), KVB_STATUS_OK);
        kvb_memory m = kvb_cache_memory(c);
        assert_int_equal(m.reserved, 0);
        assert_int_equal(m.used, 0);
        kvb_cache_destroy(c);
    }
}

/* ---- the sliding window ------------------------------------------------------ */

/* W < context: the oldest tokens are gone (length, read_kv, attention over the
 * newest W alone), the ring takes W slots and no more, and clear empties it. */
static void test_window_drops_old_tokens(void **state)
{
    (void)state;
    const kvb_backend *b = kvb_backend_find("window");
    enum { L = 2, NKV = 2, HD = 16, W = 5, N = 13 };
    kvb_shape shape = {L, 4, NKV, HD, 64};
    char why[256];
    for (int mode = 0; mode < KVB_ALLOC_COUNT; mode++) {
        kvb_options o = {.dtype = KVB_DTYPE_F32, .alloc = (kvb_alloc)mode, .max_seqs = 2,
                         .window = W};
        kvb_cache *c = kvbt_cache_new(b, &shape, &o);
        int ids[N];
        for (int t = 0; t < N; t++) append_token(c, 1, L, NKV, HD, ids[t] = 10 + t);
        expect_tokens(c, 1, L, NKV, HD, ids + N - W, W);   /* the newest W, oldest first */
        assert_int_equal(kvb_cache_attended(c, N), W);
        kvb_memory m = kvbt_seq_memory(c, 1);
        size_t slot_b = 2 * (size_t)NKV * HD * sizeof(float);
        assert_int_equal(m.reserved, (size_t)L * W * slot_b);
        assert_int_equal(m.used, (size_t)L * W * slot_b);
        /* attention reads the newest W: the first token's values (all 10.x) are absent */
        float q[4 * HD] = {0}, out[4 * HD];
        assert_int_equal(kvb_cache_attend(c, 1, 0, q, out), KVB_STATUS_OK);
        assert_true(fabsf(out[0] + (float)(10 + N - 1 + 10 + N - W) / 2) < 1e-4f);
        assert_int_equal(kvb_cache_seq_fork(c, 1, 0), KVB_STATUS_UNSUPPORTED);
        assert_int_equal(kvb_cache_seq_clear(c, 1), KVB_STATUS_OK);
        assert_int_equal(kvb_cache_length(c, 1, 0), 0);
        assert_int_equal(kvb_cache_memory(c).reserved, 0);
        kvb_cache_destroy(c);
    }
    kvb_options o = {.dtype = KVB_DTYPE_F32, .max_seqs = 1, .window = -1};
    assert_int_equal(kvb_backend_supports(b, &shape, &o, why, sizeof why), KVB_STATUS_INVALID_ARG);
    assert_non_null(strstr(why, "window = -1"));
    /* a window past max_seq (a model's window over a shorter context) holds every token,
     * in a ring no larger than a sequence */
    o.window = shape.max_seq + 1;
    o.alloc = KVB_ALLOC_PREALLOC;
    kvb_cache *c = kvbt_cache_new(b, &shape, &o);
    int ids[N];
    for (int t = 0; t < N; t++) append_token(c, 0, L, NKV, HD, ids[t] = 10 + t);
    expect_tokens(c, 0, L, NKV, HD, ids, N);
    assert_int_equal(kvb_cache_attended(c, N), N);
    size_t slot_b = 2 * (size_t)NKV * HD * sizeof(float);
    assert_int_equal(kvb_cache_memory(c).reserved, (size_t)L * shape.max_seq * slot_b);
    kvb_cache_destroy(c);
}

/* What kvb_cache_* check before any slot runs, and the optional slots' fallbacks. */
static void test_cache_checks_and_fallbacks(void **state)
{
    (void)state;
    kvb_shape shape = {2, 4, 2, 16, 32};
    kvb_options o = {.dtype = KVB_DTYPE_F32, .max_seqs = 2};
    char msg[256];
    kvb_backend old = *kvb_backend_find("contiguous");
    kvb_cache *c = NULL;
    for (int bad = 0; bad < 2; bad++) {
        old.version = bad ? KVB_BACKEND_VERSION + 1 : KVB_BACKEND_VERSION_MIN - 1;
        assert_int_equal(kvb_cache_create(&c, &old, &shape, &o, msg, sizeof msg),
                         KVB_STATUS_UNSUPPORTED);
        assert_null(c);
        assert_non_null(strstr(msg, "interface version"));
    }
    c = kvbt_cache_new(kvb_backend_find("contiguous"), &shape, &o);
    float k[32] = {0}, out[64];
    kvb_memory m;
    assert_int_equal(kvb_cache_append(c, 0, 0, NULL, k), KVB_STATUS_INVALID_ARG);
    assert_int_equal(kvb_cache_attend(c, 0, 2, k, out), KVB_STATUS_INVALID_ARG);
    assert_int_equal(kvb_cache_length(c, -1, 0), -1);
    assert_int_equal(kvb_cache_seq_fork(c, 1, 1), KVB_STATUS_INVALID_ARG);
    assert_int_equal(kvb_cache_seq_memory(c, 2, &m), KVB_STATUS_INVALID_ARG);
    assert_int_equal(kvb_cache_read_kv(c, 0, 0, 2, 0, k, k), KVB_STATUS_INVALID_ARG);
    assert_int_equal(kvb_cache_read_kv(c, 0, 0, 0, 0, k, k), KVB_STATUS_INVALID_ARG);  /* empty */
    kvb_cache_destroy(c);
    /* a backend without the optional slots (nocache): UNSUPPORTED, nothing called */
    c = kvbt_cache_new(kvb_backend_find("nocache"), &shape, &o);
    assert_int_equal(kvb_cache_append(c, 0, 0, k, k), KVB_STATUS_UNSUPPORTED);
    assert_int_equal(kvb_cache_seq_clear(c, 0), KVB_STATUS_UNSUPPORTED);
    assert_int_equal(kvb_cache_seq_fork(c, 0, 1), KVB_STATUS_UNSUPPORTED);
    assert_int_equal(kvb_cache_seq_memory(c, 0, &m), KVB_STATUS_UNSUPPORTED);
    assert_int_equal(kvb_cache_read_kv(c, 0, 0, 0, 0, k, k), KVB_STATUS_UNSUPPORTED);
    kvb_cache_destroy(c);
    kvb_cache_destroy(NULL);
}

/* kvb_cache_attend_batch's checks and fallback: a version 2 table's slot past
 * its version is never called (one planted there would fail), NULL means one
 * attend per item, and either way each out is attend's. */
static kvb_status planted_batch(kvb_backend_ctx *c, int layer, const kvb_attend_item *it, int n)
{
    (void)c; (void)layer; (void)it; (void)n;
    return KVB_STATUS_FORMAT;
}

static void test_attend_batch_fallback(void **state)
{
    (void)state;
    kvb_shape shape = {1, 4, 2, 8, 16};
    kvb_options o = {.dtype = KVB_DTYPE_F32, .max_seqs = 3};
    kvb_backend b = *kvb_backend_find("contiguous");
    for (int v = 0; v < 3; v++) {
        b.version = v == 2 ? KVB_BACKEND_VERSION : KVB_BACKEND_VERSION_MIN;
        b.attend_batch = v == 1 ? NULL : planted_batch;
        kvb_cache *c = kvbt_cache_new(&b, &shape, &o);
        float kv[16], q[3][32], want[3][32], got[3][32];
        for (int s = 0; s < 3; s++)
            for (int t = 0; t <= 2 * s; t++) {
                for (int i = 0; i < 16; i++) kv[i] = (float)((s * 7 + t * 3 + i) % 11) - 5.0f;
                assert_int_equal(kvb_cache_append(c, s, 0, kv, kv), KVB_STATUS_OK);
            }
        kvb_attend_item it[3];
        for (int s = 0; s < 3; s++) {
            for (int i = 0; i < 32; i++) q[s][i] = (float)((s + i) % 5) * 0.25f;
            assert_int_equal(kvb_cache_attend(c, 2 - s, 0, q[s], want[s]), KVB_STATUS_OK);
            it[s] = (kvb_attend_item){2 - s, q[s], got[s]};
        }
        kvb_status st = kvb_cache_attend_batch(c, 0, it, 3);
        if (v == 2) {
            assert_int_equal(st, KVB_STATUS_FORMAT); /* the version 3 slot is called */
        } else {
            assert_int_equal(st, KVB_STATUS_OK);
            assert_memory_equal(want, got, sizeof want);
        }
        assert_int_equal(kvb_cache_attend_batch(c, 0, it, 0), KVB_STATUS_OK);
        assert_int_equal(kvb_cache_attend_batch(c, 1, it, 3), KVB_STATUS_INVALID_ARG);
        assert_int_equal(kvb_cache_attend_batch(c, 0, NULL, 2), KVB_STATUS_INVALID_ARG);
        it[1].seq = 3;
        assert_int_equal(kvb_cache_attend_batch(c, 0, it, 3), KVB_STATUS_INVALID_ARG);
        it[1].seq = 1;
        it[2].out = NULL;
        assert_int_equal(kvb_cache_attend_batch(c, 0, it, 3), KVB_STATUS_INVALID_ARG);
        kvb_cache_destroy(c);
    }
}

int main(int argc, char **argv)
{
    static const kvbt_test all[] = {
        {"paged_fork_cow_and_exhaustion", test_paged_fork_cow_and_exhaustion, 0},
        {"paged_randomized", test_paged_randomized, 0},
        {"window_drops_old_tokens", test_window_drops_old_tokens, 0},
        {"cache_checks_and_fallbacks", test_cache_checks_and_fallbacks, 0},
        {"attend_batch_fallback", test_attend_batch_fallback, 0},
    };
    return kvbt_main(argc, argv, "cache", all, KVBT_COUNT(all));
}
