/* kvb_backend.h: the one interface every KV-cache backend implements, and the
 * kvb_cache_* calls everything above impls/ makes.
 *
 * Contract. A backend is a `static const kvb_backend` table of function pointers
 * over its own state (struct kvb_backend_ctx, defined in the backend's file
 * alone). A cache is an opaque kvb_cache that carries its backend, as SQLite's
 * sqlite3_file carries its pMethods: callers hold only the cache and call
 * kvb_cache_*, which check every argument once (indices, lengths, pointers) and
 * apply the NULL fallback of each optional slot, so a slot runs only on
 * arguments already checked and holds only its backend's own logic. The harness
 * never looks inside a cache; a backend never knows the harness exists. Every
 * call that can fail returns a kvb_status and, where a person must act, writes
 * a message into the caller's buffer. Adding a backend is one file in impls/
 * and one line in the registry (impls/registry.c).
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
    const char *kernel;       /* attend loops over f32/f16/bf16 rows (the dense backends):
                               * NULL or "auto" (fastest here), "avx512", "avx2",
                               * "portable" (impls/kernels/kernels.h) */
    /* sliding-window backends (KVB_BACKEND_WINDOW) only; beside block_tokens,
     * in what was padding, so the struct and every byte count of a backend
     * that embeds it keep their size */
    int       window;         /* newest tokens attended, 1 or more; 0: max_seq */
    /* paged backends (KVB_BACKEND_PAGED) only; 0 picks the default */
    int       block_tokens;   /* tokens per block, 1..256; default 16 */
    size_t    pool_blocks;    /* blocks in the pool; 0: from pool_bytes */
    size_t    pool_bytes;     /* pool size in bytes; both 0: room for max_seqs x max_seq */
    /* quantized backends (KVB_BACKEND_QUANT) only */
    int          group;       /* values per scale: 8..256, a power of two; 0: 32 */
    int          residual;    /* newest tokens kept in f32 before they are quantized, 0..65536 */
    kvb_key_axis key_axis;
    const char  *qkernel;     /* fused loops: NULL or one of kvb_qkernel_names
                               * (impls/kernels/quant.h) */
} kvb_options;

/* Checks sizes and divisibility; on failure writes a message naming the value. */
kvb_status kvb_shape_check(const kvb_shape *s, char *msg, size_t msg_len);

typedef struct kvb_memory {
    size_t reserved;          /* bytes held for K/V by sequences, slack included */
    size_t used;              /* bytes holding live tokens' K/V (scales included);
                               * a token shared by forked sequences counts once */
    size_t metadata;          /* bookkeeping: tables, lengths, counts (the backend's) */
    size_t capacity;          /* bytes allocated for K/V, held or not (a pool's
                               * free blocks included); >= reserved */
} kvb_memory;

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
    /* Holds only the newest `window` tokens of each (seq, layer) (kvb_options;
     * 0: max_seq) and attend reads those alone, as sliding-window attention
     * does; older ones are dropped, so length and read_kv see only the tokens
     * held and append never returns KVB_STATUS_FULL for length. */
    KVB_BACKEND_WINDOW = 1u << 3,
};

/* The version of the slot contract below. A table says the version it was
 * written against: 2 has the slots up to read_kv, 3 adds attend_batch, 4
 * seq_save and seq_load, and a slot past a table's version is never read (as
 * SQLite's iVersion). Versions outside KVB_BACKEND_VERSION_MIN..
 * KVB_BACKEND_VERSION are refused at create (and by kvb_backend_supports). */
enum { KVB_BACKEND_VERSION = 4, KVB_BACKEND_VERSION_MIN = 2 };

/* One (sequence, query) pair of a batched attend (kvb_cache_attend_batch). */
typedef struct kvb_attend_item {
    int          seq;
    const float *q;           /* [n_heads][head_dim] */
    float       *out;         /* [n_heads][head_dim] */
} kvb_attend_item;

/* The head every seq_save writes first: who wrote it and for what shape, so
 * seq_load refuses another backend's or shape's bytes (KVB_STATUS_FORMAT)
 * instead of reading them as its own. */
typedef struct kvb_save_head {
    uint32_t magic;           /* KVB_SAVE_MAGIC */
    uint32_t writer;          /* FNV-1a of the writing backend's name */
    int32_t  n_layers, n_kv_heads, head_dim, dtype;
    int32_t  unit;            /* the writer's own layout unit: block tokens, group, or 0 */
    int32_t  tokens;          /* tokens of every layer */
} kvb_save_head;

enum { KVB_SAVE_MAGIC = 0x4b565353 /* "KVSS" */ };

kvb_save_head kvb_save_head_of(const char *writer, const kvb_shape *s, kvb_dtype t, int unit,
                               int tokens);
/* The tokens src's head holds, or -1 when src is shorter than a head or its
 * head is not (writer, s, t, unit)'s or its tokens are outside 0..max_seq. */
int kvb_save_head_tokens(const void *src, size_t bytes, const char *writer, const kvb_shape *s,
                         kvb_dtype t, int unit);

/* A backend's own state: each backend file defines the struct for itself. */
typedef struct kvb_backend_ctx kvb_backend_ctx;

/* The slots. kvb_cache_* has checked, before any slot runs: seq in
 * [0, max_seqs), layer in [0, n_layers), kv_head in [0, n_kv_heads), token in
 * [0, length), and every pointer non-NULL; create runs only on a shape and
 * options kvb_backend_supports accepts. */
typedef struct kvb_backend {
    unsigned    version;      /* KVB_BACKEND_VERSION */
    const char *name;         /* registry key: "contiguous", "nocache", ... */
    const char *description;  /* one line for `kvbench list` */
    unsigned    flags;        /* KVB_BACKEND_* */

    /* supports: may this shape/options pair be created? Writes the reason when
     * not, so the harness reports "skipped" instead of "failed". Called after
     * the checks every backend shares (kvb_backend_supports). Optional: NULL
     * means every pair those accept. */
    kvb_status (*supports)(const kvb_shape *shape, const kvb_options *opt,
                           char *why, size_t why_len);

    /* create: the state of a cache with max_seqs empty sequences. Writes a
     * message when it fails for a reason other than memory. */
    kvb_status (*create)(kvb_backend_ctx **out, const kvb_shape *shape,
                         const kvb_options *opt, char *msg, size_t msg_len);

    /* destroy: frees everything create and later calls allocated. */
    void (*destroy)(kvb_backend_ctx *c);

    /* append: stores one token's K and V for one layer of one sequence.
     * k, v: [n_kv_heads][head_dim], keys after RoPE. Tokens of a layer are
     * appended in position order. NULL only for KVB_BACKEND_RECOMPUTE. */
    kvb_status (*append)(kvb_backend_ctx *c, int seq, int layer,
                         const float *k, const float *v);

    /* attend: out = softmax(q K^T / sqrt(head_dim)) V over every token held
     * for (seq, layer), per query head. q, out: [n_heads][head_dim].
     * NULL only for KVB_BACKEND_RECOMPUTE. */
    kvb_status (*attend)(kvb_backend_ctx *c, int seq, int layer,
                         const float *q, float *out);

    /* memory: bytes reserved, used and metadata over the whole cache. */
    kvb_memory (*memory)(const kvb_backend_ctx *c);

    /* length: tokens held by (seq, layer). */
    int (*length)(const kvb_backend_ctx *c, int seq, int layer);

    /* seq_clear: drops a sequence's tokens and gives back what it can.
     * Optional: NULL means the backend holds no tokens to drop (RECOMPUTE):
     * kvb_cache_seq_clear then returns UNSUPPORTED. */
    kvb_status (*seq_clear)(kvb_backend_ctx *c, int seq);

    /* seq_fork: the empty sequence child (child != parent, every layer empty)
     * receives parent's tokens (every layer of parent holds the same count;
     * kvb_cache_seq_fork checks both). Where the backend can, they are shared,
     * and copied only when one side first writes into a shared block.
     * Optional: NULL means the backend cannot fork: kvb_cache_seq_fork
     * returns UNSUPPORTED and callers report "skipped". */
    kvb_status (*seq_fork)(kvb_backend_ctx *c, int parent, int child);

    /* seq_memory: the bytes one sequence holds (reserved counts every block
     * or slot it references, shared ones too) and uses. Optional: NULL means
     * only the whole-cache figure exists: kvb_cache_seq_memory returns
     * UNSUPPORTED. */
    kvb_memory (*seq_memory)(const kvb_backend_ctx *c, int seq);

    /* read_kv: copies one held token of one KV head back out as f32
     * (k, v: [head_dim]) as attend reads it, for tests and debugging. Token 0
     * is the oldest held. Optional: NULL means the storage cannot be
     * inspected: kvb_cache_read_kv returns UNSUPPORTED and tests that need it
     * report "skipped". */
    kvb_status (*read_kv)(const kvb_backend_ctx *c, int seq, int layer, int kv_head,
                          int token, float *k, float *v);

    /* ---- version 3 ---- */

    /* attend_batch: attend for n (>= 1) items of one layer in one call, as a
     * serving step does for every running sequence, so a backend can walk
     * many sequences' storage in one pass and spread it over its threads.
     * Each item's out gets exactly what attend(seq, layer, q, out) would
     * write. Items may name the same seq; no out overlaps another out or any
     * q. Optional: NULL (or a version 2 table) means kvb_cache_attend_batch
     * calls attend once per item, in order. */
    kvb_status (*attend_batch)(kvb_backend_ctx *c, int layer, const kvb_attend_item *items,
                               int n);

    /* ---- version 4 ---- */

    /* seq_save: the sequence's tokens of every layer (each layer holds the
     * same count: kvb_cache_seq_save checks), in the backend's own stored
     * bytes, so a server can swap a preempted sequence out to host memory and
     * give its cache memory to others (vLLM's swap preemption). dst NULL:
     * only *bytes is set, to what a save writes; else dst holds *bytes (at
     * least that) and *bytes becomes what was written. The sequence is left
     * as it was. Optional, with seq_load: NULL means the backend cannot swap:
     * kvb_cache_seq_save returns UNSUPPORTED and a scheduler recomputes. */
    kvb_status (*seq_save)(const kvb_backend_ctx *c, int seq, void *dst, size_t *bytes);

    /* seq_load: the empty sequence seq (every layer) takes back what seq_save
     * wrote, from a cache of the same backend, shape and options; attend and
     * read_kv then give exactly what they gave the saved sequence (forked
     * blocks come back unshared). KVB_STATUS_FULL, the sequence still empty,
     * when the memory is not free; KVB_STATUS_FORMAT when src[0..bytes) is
     * not a save of this backend and shape. */
    kvb_status (*seq_load)(kvb_backend_ctx *c, int seq, const void *src, size_t bytes);
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

/* Whether table b is one this build can call: its version, and every slot the
 * contract requires filled (create, destroy, memory, length; append and
 * attend unless it recomputes). */
kvb_status kvb_backend_check(const kvb_backend *b, char *msg, size_t msg_len);

/* Whether b may create shape s with options o: kvb_backend_check, the shape,
 * the option ranges every backend shares and the storage type's readers
 * (types/kvb_types.h) against b's flags, the attend kernel of dense stores,
 * then b's own supports(). Writes the first reason it finds. */
kvb_status kvb_backend_supports(const kvb_backend *b, const kvb_shape *s,
                                const kvb_options *o, char *why, size_t why_len);

/* ---- the cache: what callers hold and call ---------------------------------- */

typedef struct kvb_cache kvb_cache;   /* opaque: a backend and its state */

/* A cache of backend b: kvb_backend_supports, then b's create. *out is NULL
 * on failure, with the reason in msg. */
kvb_status kvb_cache_create(kvb_cache **out, const kvb_backend *b, const kvb_shape *s,
                            const kvb_options *o, char *msg, size_t msg_len);

/* A cache around state a caller built itself (a backend that wraps another
 * cache, e.g. to check it): ctx is b's, and kvb_cache_destroy calls b's
 * destroy on it. Checks the table only (kvb_backend_check). */
kvb_status kvb_cache_wrap(kvb_cache **out, const kvb_backend *b, kvb_backend_ctx *ctx,
                          const kvb_shape *s, const kvb_options *o, char *msg, size_t msg_len);

void kvb_cache_destroy(kvb_cache *c);                         /* NULL-safe */

const kvb_backend *kvb_cache_backend(const kvb_cache *c);
const kvb_shape   *kvb_cache_shape(const kvb_cache *c);

/* The slots above, arguments checked (INVALID_ARG when one is out of range or
 * NULL, UNSUPPORTED where the slot is NULL). */
kvb_status kvb_cache_append(kvb_cache *c, int seq, int layer, const float *k, const float *v);
kvb_status kvb_cache_attend(kvb_cache *c, int seq, int layer, const float *q, float *out);
/* Every item's seq, q and out checked, then the backend's attend_batch or one
 * attend per item. n == 0 is a no-op. */
kvb_status kvb_cache_attend_batch(kvb_cache *c, int layer, const kvb_attend_item *items, int n);
kvb_memory kvb_cache_memory(const kvb_cache *c);              /* zeros for NULL */
int        kvb_cache_length(const kvb_cache *c, int seq, int layer);   /* -1: bad index */
kvb_status kvb_cache_seq_clear(kvb_cache *c, int seq);
kvb_status kvb_cache_seq_fork(kvb_cache *c, int parent, int child);
kvb_status kvb_cache_seq_memory(const kvb_cache *c, int seq, kvb_memory *out);
kvb_status kvb_cache_read_kv(const kvb_cache *c, int seq, int layer, int kv_head, int token,
                             float *k, float *v);
/* seq_save and seq_load of a version 4 table (UNSUPPORTED when either is NULL
 * or the table older). Save: INVALID_ARG when the sequence's layers hold
 * different counts, or dst is given with *bytes below the save's size. Load:
 * INVALID_ARG when the sequence is not empty. */
kvb_status kvb_cache_seq_save(const kvb_cache *c, int seq, void *dst, size_t *bytes);
kvb_status kvb_cache_seq_load(kvb_cache *c, int seq, const void *src, size_t bytes);

/* Of the newest `appended` tokens of a layer, how many attend reads: all of
 * them, or the window of a KVB_BACKEND_WINDOW cache. What a reference
 * attention must cover. */
int kvb_cache_attended(const kvb_cache *c, int appended);

#endif
