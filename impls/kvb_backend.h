/* kvb_backend.h: the one interface every KV-cache backend implements.
 *
 * Contract. A backend is a `static const kvb_backend` table of function pointers
 * over an opaque kvb_cache. The harness never looks inside a cache; a backend never
 * knows the harness exists. Every call that can fail returns a kvb_status and, where
 * a person must act, writes a message into the cache's or caller's buffer.
 * Optional slots may be NULL; each says its fallback. Adding a backend is one file
 * in impls/ and one line in the registry (impls/registry.c).
 *
 * Units: tokens are counted per sequence and per layer; bytes are bytes. Keys are
 * stored after RoPE. Query head h reads KV head h / (n_heads / n_kv_heads). */
#ifndef KVB_BACKEND_H
#define KVB_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include "types/kvb_types.h"

/* How a dense store obtains its memory. */
typedef enum kvb_alloc {
    KVB_ALLOC_GROW = 0,       /* capacity starts small and doubles as tokens arrive */
    KVB_ALLOC_PREALLOC,       /* capacity = max_seq from the start */
    KVB_ALLOC_COUNT
} kvb_alloc;

const char *kvb_alloc_name(kvb_alloc a);
kvb_status  kvb_alloc_parse(const char *name, kvb_alloc *out);

/* Which way keys are grouped for quantization (values are always per token). */
typedef enum kvb_key_axis {
    KVB_KEY_AXIS_DEFAULT = 0, /* the format's own: channel for q2 (KIVI), token otherwise */
    KVB_KEY_AXIS_TOKEN,       /* groups along head_dim within one token */
    KVB_KEY_AXIS_CHANNEL,     /* groups along `group` tokens within one channel */
    KVB_KEY_AXIS_COUNT
} kvb_key_axis;

const char *kvb_key_axis_name(kvb_key_axis a);
kvb_status  kvb_key_axis_parse(const char *name, kvb_key_axis *out);
/* DEFAULT made concrete for storage type t: its traits row's default. */
kvb_key_axis kvb_key_axis_resolve(kvb_dtype t, kvb_key_axis a);

typedef struct kvb_shape {
    int n_layers;
    int n_heads;              /* query heads */
    int n_kv_heads;           /* divides n_heads: == n_heads is MHA, 1 is MQA */
    int head_dim;
    int max_seq;              /* most tokens one sequence may hold */
} kvb_shape;

typedef struct kvb_options {
    kvb_dtype dtype;
    kvb_alloc alloc;
    int       max_seqs;       /* sequences 0..max_seqs-1 exist from create, empty */
    int       threads;        /* threads one attend may use, 0 or 1: the caller's alone;
                               * backends without threading run single-threaded */
    /* called once in each worker thread a backend starts for attend (thread
     * 1..threads-1; the caller's own is 0) before it takes any work: the
     * harness pins them to cores. NULL: nothing. */
    void      (*thread_start)(void *arg, int thread);
    void       *thread_start_arg;
    const char *kernel;       /* attend loops over f32/f16/bf16 rows (contiguous, paged):
                               * NULL or "auto" (fastest here), "avx512", "avx2",
                               * "portable" (impls/kernels/kernels.h) */
    /* paged backends (KVB_BACKEND_PAGED) only; 0 picks the default */
    int       block_tokens;   /* tokens per block, 1..256; default 16 */
    size_t    pool_blocks;    /* blocks in the pool; 0: from pool_bytes */
    size_t    pool_bytes;     /* pool size in bytes; both 0: room for max_seqs x max_seq */
    /* quantized backends (KVB_BACKEND_QUANT) only */
    int          group;       /* values per scale: 8..256, a power of two; 0: 32 */
    int          residual;    /* newest tokens kept in f32 before they are quantized, 0..65536 */
    kvb_key_axis key_axis;
    const char  *qkernel;     /* fused loops: NULL or "auto" (fastest here), "portable",
                               * "avx512", "avx512-vnni" (impls/kernels/quant.h) */
} kvb_options;

/* Checks sizes and divisibility; on failure writes a message naming the value. */
kvb_status kvb_shape_check(const kvb_shape *s, char *msg, size_t msg_len);

typedef struct kvb_memory {
    size_t reserved;          /* bytes held for K/V by sequences, slack included */
    size_t used;              /* bytes holding live tokens' K/V (scales included);
                               * a token shared by forked sequences counts once */
    size_t metadata;          /* bookkeeping: tables, lengths, counts */
    size_t capacity;          /* bytes allocated for K/V, held or not (a pool's
                               * free blocks included); >= reserved */
} kvb_memory;

typedef struct kvb_cache kvb_cache;   /* opaque; owned by its backend */

enum {
    /* The backend stores nothing: the harness recomputes the whole causal pass
     * every step and never calls append/attend. */
    KVB_BACKEND_RECOMPUTE = 1u << 0,
    /* Tokens live in blocks of a shared pool: block_tokens and the pool size
     * in kvb_options apply, and append may return KVB_STATUS_FULL when the
     * pool is exhausted (leaving every sequence as it was). */
    KVB_BACKEND_PAGED = 1u << 1,
    /* Stores the quantized types (KVB_DTYPE_Q*), and only those; group,
     * residual and key_axis in kvb_options apply. */
    KVB_BACKEND_QUANT = 1u << 2,
};

typedef struct kvb_backend {
    const char *name;         /* registry key: "contiguous", "nocache", ... */
    const char *description;  /* one line for `kvbench list` */
    unsigned    flags;        /* KVB_BACKEND_* */

    /* supports: may this shape/options pair be created? Writes the reason when
     * not, so the harness reports "skipped" instead of "failed". Optional:
     * NULL means every pair that kvb_shape_check accepts. */
    kvb_status (*supports)(const kvb_shape *shape, const kvb_options *opt,
                           char *why, size_t why_len);

    /* create: a cache with max_seqs empty sequences. Refuses bad shapes. */
    kvb_status (*create)(kvb_cache **out, const kvb_shape *shape,
                         const kvb_options *opt, char *msg, size_t msg_len);

    /* destroy: frees everything create and later calls allocated. NULL-safe. */
    void (*destroy)(kvb_cache *c);

    /* append: stores one token's K and V for one layer of one sequence.
     * k, v: [n_kv_heads][head_dim], keys after RoPE. Tokens of a layer are
     * appended in position order. NULL only for KVB_BACKEND_RECOMPUTE. */
    kvb_status (*append)(kvb_cache *c, int seq, int layer,
                         const float *k, const float *v);

    /* attend: out = softmax(q K^T / sqrt(head_dim)) V over every token cached
     * for (seq, layer), per query head. q, out: [n_heads][head_dim].
     * NULL only for KVB_BACKEND_RECOMPUTE. */
    kvb_status (*attend)(kvb_cache *c, int seq, int layer,
                         const float *q, float *out);

    /* memory: bytes reserved, used and metadata over the whole cache. */
    kvb_memory (*memory)(const kvb_cache *c);

    /* length: tokens held by (seq, layer). */
    int (*length)(const kvb_cache *c, int seq, int layer);

    /* seq_clear: drops a sequence's tokens and gives back what it can.
     * Optional: NULL means only destroy releases memory. */
    kvb_status (*seq_clear)(kvb_cache *c, int seq);

    /* seq_fork: the empty sequence child receives parent's tokens (every layer
     * of parent must hold the same count). Where the backend can, they are
     * shared, and copied only when one side first writes into a shared block.
     * Optional: NULL means the backend cannot fork; callers report "skipped". */
    kvb_status (*seq_fork)(kvb_cache *c, int parent, int child);

    /* seq_memory: the bytes one sequence holds (reserved counts every block
     * or slot it references, shared ones too) and uses. Optional: NULL means
     * only the whole-cache figure exists. */
    kvb_memory (*seq_memory)(const kvb_cache *c, int seq);

    /* read_kv: copies one stored token of one KV head back out as f32
     * (k, v: [head_dim]), for tests and debugging. Optional: NULL means the
     * storage cannot be inspected; tests that need it report "skipped". */
    kvb_status (*read_kv)(const kvb_cache *c, int seq, int layer, int kv_head,
                          int token, float *k, float *v);
} kvb_backend;

/* The registry: a const table of every backend, looked up by name. */
const kvb_backend *kvb_backend_find(const char *name);
int                kvb_backend_count(void);
const kvb_backend *kvb_backend_at(int i);

/* The loops a cache of b with options o and shape s runs: the quantized
 * backend's fused kernel ("avx512-vnni", ...), the attend kernel of the dense
 * stores ("avx512", "avx2", "portable"), "causal-gemm" for recompute, or
 * "unsupported" when none fits (supports() then says why). A static string. */
const char *kvb_backend_kernel(const kvb_backend *b, const kvb_shape *s, const kvb_options *o);

/* Shorthand used by callers: supports() with its NULL fallback applied. */
kvb_status kvb_backend_supports(const kvb_backend *b, const kvb_shape *s,
                                const kvb_options *o, char *why, size_t why_len);

#endif
