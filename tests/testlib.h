/* testlib.h: what the cmocka test binaries (tests/test_*.c) share.
 *
 * Contract: a test binary lists its tests as kvbt_test entries and hands them to
 * kvbt_main, which gives each test a state for kvbt_case / kvbt_tmpdir. Cases of a
 * parametric test are named by their parameters in ggml test-backend-ops style,
 * e.g. attend(backend=paged,mode=grow,dt=f16,bs=16,nh=8,nkv=2,hd=64,ctx=17), and
 * the filter (argv[1], else the environment variable KVB_TEST_FILTER, a POSIX
 * extended regex) selects them by name; a test whose own name matches runs whole.
 * Numerical checks compare against the float64 reference here (kvbt_ref_attend)
 * with one tolerance per storage type (kvbt_tolerance), so every file judges alike.
 * Random inputs come from kvbt_urand: deterministic per seed, so a failing case
 * named in the output fails again when rerun alone. */
#ifndef KVB_TESTLIB_H
#define KVB_TESTLIB_H

#include <stddef.h>
#include <stdint.h>

#include "../impls/kvb_backend.h"
#include "../model/model.h"

/* ---- running: filter, temporary directory, a supervising parent ------------ */

typedef void (*kvbt_fn)(void **state);

typedef struct kvbt_test {
    const char *name;
    kvbt_fn fn;
    int parametric;   /* 1: its cases are named and filtered one by one */
} kvbt_test;

/* Runs the selected tests as one cmocka group named suite, in a child process;
 * the parent waits (passing SIGINT/SIGTERM/SIGHUP on) and removes the temporary
 * directory however the child ends. Returns the exit status for main. */
int kvbt_main(int argc, char **argv, const char *suite, const kvbt_test *tests, size_t n);

/* Formats a case name into buf (printf-style) and says whether the filter
 * selects it; state NULL selects every case (a check judging planted bugs must
 * see the whole grid whatever the filter says). */
int kvbt_case(void **state, char *buf, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* This run's temporary directory (removed at exit), and a path inside it. */
const char *kvbt_tmpdir(void **state);
void kvbt_tmp_path(void **state, const char *name, char *buf, size_t n);

/* Whole-file helpers that fail the test on any I/O error. */
void kvbt_write_file(const char *path, const void *p, size_t n);
void *kvbt_read_file(const char *path, size_t *n);

/* ---- inputs ------------------------------------------------------------------ */

/* xorshift uniform in [-1, 1), deterministic per seed */
float kvbt_urand(uint64_t *seed);
/* x[i] = scale * uniform[-1, 1) */
void kvbt_fill(float *x, size_t n, float scale, uint64_t *seed);

/* The attention shape grid: MHA (8/8), GQA 4:1 (8/2), MQA (8/1) x head sizes
 * x contexts from 1 up (48 and 768 fill whole paged blocks of 3, 16 and 256). */
typedef struct kvbt_heads { int nh, nkv; } kvbt_heads;
extern const kvbt_heads kvbt_head_shapes[3];
extern const int kvbt_head_dims[3];
extern const int kvbt_contexts[6];
#define KVBT_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the float64 reference --------------------------------------------------- */

/* out[h] = softmax(q_h K_j^T / sqrt(hd)) V_j with j = h / (nh / nkv);
 * k, v: [ctx][nkv][hd], q: [nh][hd]. */
void kvbt_ref_attend(const float *q, const float *k, const float *v, int ctx, int nh, int nkv,
                     int hd, double *out);
/* ||x - ref|| / ||ref|| (infinite when x holds a NaN or Inf) */
double kvbt_rel_l2(const float *x, const double *ref, size_t n);
/* the same against an f32 reference: the largest over rows [0, rows) of `n`
 * values each (rows 1: one vector) */
double kvbt_rel_l2_rows(const float *x, const float *ref, int rows, size_t n);
/* the largest relative L2 error a storage type may show against float64 */
double kvbt_tolerance(kvb_dtype dt);
/* " f32 4.5e-07 f16 0.00026 ...": each storage type's worst error, those above 0 */
void kvbt_worst_by_type(const double worst[KVB_DTYPE_COUNT], char *buf, size_t n);

/* ---- caches -------------------------------------------------------------------- */

/* kvb_cache_create and kvb_cache_seq_memory that fail the test, with the
 * backend's message, where they do not succeed. */
kvb_cache *kvbt_cache_new(const kvb_backend *b, const kvb_shape *shape, const kvb_options *opt);
kvb_memory kvbt_seq_memory(const kvb_cache *c, int seq);

/* Every token (seq, layer) holds, oldest first, read back through
 * kvb_cache_read_kv as attend reads it: k, v [kvb_cache_length][n_kv_heads][head_dim].
 * UNSUPPORTED where the backend cannot be read (nothing written then). */
kvb_status kvbt_read_back(const kvb_cache *c, int seq, int layer, float *k, float *v);
/* The query as the loops of backend b (created with shape s, options o) meet it:
 * integer quantized kernels round it (kvb_qround_query) where keys are grouped per
 * token; otherwise a copy. With kvbt_read_back, attention over exactly what a
 * lossy cache computes with, so its float64 reference holds to f32 rounding.
 * q, out: [n_heads][head_dim] */
void kvbt_query_as_attended(const kvb_backend *b, const kvb_shape *s, const kvb_options *o,
                            const float *q, float *out);

/* ---- planted wrong backends ----------------------------------------------------------- */

/* The slots of a backend whose state is a contiguous cache of the same shape and
 * options, each forwarding to it: a planted wrong backend takes KVBT_WRAP_SLOTS and
 * replaces the one slot it gets wrong (a later initializer wins). kvbt_wrap_inner is
 * the cache a replaced slot calls. */
kvb_status kvbt_wrap_create(kvb_backend_ctx **out, const kvb_shape *s, const kvb_options *o,
                            char *msg, size_t msg_len);
void kvbt_wrap_destroy(kvb_backend_ctx *w);
kvb_cache *kvbt_wrap_inner(const kvb_backend_ctx *w);
kvb_status kvbt_wrap_append(kvb_backend_ctx *w, int seq, int layer, const float *k,
                            const float *v);
kvb_status kvbt_wrap_attend(kvb_backend_ctx *w, int seq, int layer, const float *q, float *out);
kvb_memory kvbt_wrap_memory(const kvb_backend_ctx *w);
int kvbt_wrap_length(const kvb_backend_ctx *w, int seq, int layer);
kvb_status kvbt_wrap_seq_fork(kvb_backend_ctx *w, int parent, int child);
kvb_status kvbt_wrap_seq_clear(kvb_backend_ctx *w, int seq);
kvb_status kvbt_wrap_read_kv(const kvb_backend_ctx *w, int seq, int layer, int kv_head,
                             int token, float *k, float *v);
#define KVBT_WRAP_SLOTS                                                                  \
    .version = KVB_BACKEND_VERSION, .create = kvbt_wrap_create,                          \
    .destroy = kvbt_wrap_destroy, .append = kvbt_wrap_append, .attend = kvbt_wrap_attend, \
    .memory = kvbt_wrap_memory, .length = kvbt_wrap_length,                              \
    .seq_fork = kvbt_wrap_seq_fork, .seq_clear = kvbt_wrap_seq_clear,                    \
    .read_kv = kvbt_wrap_read_kv

/* c where wt's blocks divide its rows; else widened to dim 256, hidden 512 and
 * head_dim 256 / heads (the k types' blocks are 256 values) */
kvb_model_config kvbt_shape_for(kvb_model_config c, kvb_wtype wt);

#endif
