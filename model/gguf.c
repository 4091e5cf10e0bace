/* gguf.c: see gguf.h. A cursor walks the bytes; every read is checked against
 * what is left first, and every count against the least room its items need
 * before anything is allocated for them, so a header claiming billions of
 * keys is refused by the file's own length. */
#define _POSIX_C_SOURCE 200809L
#include "gguf.h"
#include "load.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct { uint32_t type; const char *name; uint32_t block, bytes; } ttypes[] = {
    {KVB_GGML_F32, "f32", 1, 4},       {KVB_GGML_F16, "f16", 1, 2},
    {KVB_GGML_Q4_0, "q4_0", 32, 18},   {KVB_GGML_Q4_1, "q4_1", 32, 20},
    {KVB_GGML_Q5_0, "q5_0", 32, 22},   {KVB_GGML_Q5_1, "q5_1", 32, 24},
    {KVB_GGML_Q8_0, "q8_0", 32, 34},   {KVB_GGML_Q2_K, "q2_k", 256, 84},
    {KVB_GGML_Q3_K, "q3_k", 256, 110}, {KVB_GGML_Q4_K, "q4_k", 256, 144},
    {KVB_GGML_Q5_K, "q5_k", 256, 176}, {KVB_GGML_Q6_K, "q6_k", 256, 210},
    {KVB_GGML_BF16, "bf16", 1, 2},
};
enum { N_TTYPES = sizeof ttypes / sizeof ttypes[0] };

static int ttype_index(uint32_t type)
{
    for (int i = 0; i < (int)N_TTYPES; i++)
        if (ttypes[i].type == type) return i;
    return -1;
}

const char *kvb_gguf_type_name(uint32_t type)
{
    int i = ttype_index(type);
    return i < 0 ? NULL : ttypes[i].name;
}

uint64_t kvb_gguf_type_size(uint32_t type, uint64_t n)
{
    int i = ttype_index(type);
    if (i < 0 || n % ttypes[i].block) return 0;
    return n / ttypes[i].block * ttypes[i].bytes;
}

/* bytes of one scalar value; 0 for STRING and ARRAY (variable) and unknown types */
static uint64_t scalar_size(uint32_t t)
{
    static const uint8_t sz[KVB_GGUF_NVALUE_TYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < KVB_GGUF_NVALUE_TYPES ? sz[t] : 0;
}

typedef struct cursor {
    const uint8_t *p;
    uint64_t pos, n;
    char *msg;
    size_t msg_len;
} cursor;

static uint64_t left(const cursor *c) { return c->n - c->pos; }

/* what (a field's name) needs k bytes at the cursor */
static int need(cursor *c, uint64_t k, const char *what)
{
    if (k <= left(c)) return 0;
    snprintf(c->msg, c->msg_len, "%s: needs %llu bytes at offset %llu, the file has %llu left "
             "(truncated or a length too large)", what, (unsigned long long)k,
             (unsigned long long)c->pos, (unsigned long long)left(c));
    return -1;
}

static int rd(cursor *c, void *out, uint64_t k, const char *what)
{
    if (need(c, k, what)) return -1;
    memcpy(out, c->p + c->pos, (size_t)k);
    c->pos += k;
    return 0;
}

static int rd_str(cursor *c, kvb_gguf_str *s, const char *what)
{
    uint64_t n;
    if (rd(c, &n, 8, what) || need(c, n, what)) return -1;
    s->p = (const char *)c->p + c->pos;
    s->n = n;
    c->pos += n;
    return 0;
}

static int str_eq(kvb_gguf_str s, const char *z)
{
    size_t n = strlen(z);
    return s.n == n && memcmp(s.p, z, n) == 0;
}

/* s printable, cut to fit a message */
static const char *show(kvb_gguf_str s, char *buf, size_t n)
{
    size_t k = s.n < n - 1 ? (size_t)s.n : n - 1;
    for (size_t i = 0; i < k; i++) buf[i] = s.p[i] >= 32 && s.p[i] < 127 ? s.p[i] : '?';
    buf[k] = 0;
    return buf;
}

/* the name of key or tensor i; what then says "key 'NAME' (i)" for its messages */
static int read_name(cursor *c, const char *kind, uint64_t i, kvb_gguf_str *name, char *what,
                     size_t n)
{
    char b[64];
    snprintf(what, n, "%s %llu's name", kind, (unsigned long long)i);
    if (rd_str(c, name, what)) return -1;
    snprintf(what, n, "%s '%s' (%llu)", kind, show(*name, b, sizeof b), (unsigned long long)i);
    return 0;
}

static int read_kv(cursor *c, uint64_t i, kvb_gguf_kv *kv)
{
    char what[160];
    if (read_name(c, "key", i, &kv->key, what, sizeof what)) return -1;
    if (rd(c, &kv->type, 4, what)) return -1;
    if (kv->type >= KVB_GGUF_NVALUE_TYPES) {
        snprintf(c->msg, c->msg_len, "%s: value type %u unknown: allowed are 0..%d", what,
                 kv->type, KVB_GGUF_NVALUE_TYPES - 1);
        return -1;
    }
    uint32_t et = kv->type;
    uint64_t count = 1, start;
    if (kv->type == KVB_GGUF_ARRAY) {
        if (rd(c, &kv->arr_type, 4, what) || rd(c, &kv->arr_n, 8, what)) return -1;
        et = kv->arr_type;
        count = kv->arr_n;
        if (et >= KVB_GGUF_NVALUE_TYPES || et == KVB_GGUF_ARRAY) {
            snprintf(c->msg, c->msg_len, "%s: array element type %u: allowed are 0..%d "
                     "except 9 (nested arrays)", what, et, KVB_GGUF_NVALUE_TYPES - 1);
            return -1;
        }
    }
    start = c->pos;
    if (et == KVB_GGUF_STRING) {
        /* each string takes at least its 8-byte length */
        if (count > left(c) / 8) {
            snprintf(c->msg, c->msg_len, "%s: %llu strings cannot fit in the %llu bytes left",
                     what, (unsigned long long)count, (unsigned long long)left(c));
            return -1;
        }
        for (uint64_t j = 0; j < count; j++) {
            kvb_gguf_str s;
            if (rd_str(c, &s, what)) return -1;
        }
    } else {
        uint64_t es = scalar_size(et);
        if (count > left(c) / es) {
            snprintf(c->msg, c->msg_len, "%s: %llu values of %llu bytes cannot fit in the %llu "
                     "bytes left", what, (unsigned long long)count, (unsigned long long)es,
                     (unsigned long long)left(c));
            return -1;
        }
        c->pos += count * es;
    }
    kv->val = c->p + start;
    kv->val_bytes = c->pos - start;
    return 0;
}

static int read_tensor(cursor *c, uint64_t i, kvb_gguf_tensor *t)
{
    char what[160];
    if (read_name(c, "tensor", i, &t->name, what, sizeof what)) return -1;
    uint32_t nd;
    if (rd(c, &nd, 4, what)) return -1;
    if (nd < 1 || nd > 4) {
        snprintf(c->msg, c->msg_len, "%s: n_dims = %u: allowed are 1..4", what, nd);
        return -1;
    }
    t->n_dims = (int)nd;
    uint64_t elems = 1;
    for (int d = 0; d < 4; d++) t->dims[d] = 1;
    for (uint32_t d = 0; d < nd; d++) {
        if (rd(c, &t->dims[d], 8, what)) return -1;
        /* 2^40 elements per tensor is far past any model this tool could hold */
        if (t->dims[d] < 1 || t->dims[d] > (1ull << 40) || elems > (1ull << 40) / t->dims[d]) {
            snprintf(c->msg, c->msg_len, "%s: dims[%u] = %llu: each must be >= 1 and the "
                     "product at most 2^40", what, d, (unsigned long long)t->dims[d]);
            return -1;
        }
        elems *= t->dims[d];
    }
    if (rd(c, &t->type, 4, what) || rd(c, &t->offset, 8, what)) return -1;
    int k = ttype_index(t->type);
    if (k < 0) {
        snprintf(c->msg, c->msg_len, "%s: tensor type %u unknown: allowed are f32 (0), f16 (1), "
                 "q4_0 (2), q4_1 (3), q5_0 (6), q5_1 (7), q8_0 (8), q2_k..q6_k (10..14), "
                 "bf16 (30)", what, t->type);
        return -1;
    }
    if (t->dims[0] % ttypes[k].block) {
        snprintf(c->msg, c->msg_len, "%s: dims[0] = %llu is not a multiple of %s's block of %u",
                 what, (unsigned long long)t->dims[0], ttypes[k].name, ttypes[k].block);
        return -1;
    }
    t->bytes = kvb_gguf_type_size(t->type, elems);
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    const kvb_gguf_str *x = *(const kvb_gguf_str *const *)a, *y = *(const kvb_gguf_str *const *)b;
    uint64_t n = x->n < y->n ? x->n : y->n;
    int r = memcmp(x->p, y->p, (size_t)n);
    return r ? r : (x->n > y->n) - (x->n < y->n);
}

/* Refuses a name given twice (sorted copies of the pointers, so n log n). */
static int unique(kvb_gguf_str **v, uint64_t n, const char *what, char *msg, size_t msg_len)
{
    if (n < 2) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_name);
    for (uint64_t i = 1; i < n; i++)
        if (!cmp_name(&v[i - 1], &v[i])) {
            char b[64];
            snprintf(msg, msg_len, "%s '%s' appears twice: each must be unique", what,
                     show(*v[i], b, sizeof b));
            return -1;
        }
    return 0;
}

static int check_unique(kvb_gguf *g, char *msg, size_t msg_len)
{
    uint64_t n = g->n_kv > g->n_tensors ? g->n_kv : g->n_tensors;
    kvb_gguf_str **v = malloc((size_t)(n ? n : 1) * sizeof *v);
    if (!v) {
        snprintf(msg, msg_len, "cannot allocate %llu name pointers", (unsigned long long)n);
        return -1;
    }
    for (uint64_t i = 0; i < g->n_kv; i++) v[i] = &g->kv[i].key;
    int r = unique(v, g->n_kv, "key", msg, msg_len);
    for (uint64_t i = 0; !r && i < g->n_tensors; i++) v[i] = &g->t[i].name;
    if (!r) r = unique(v, g->n_tensors, "tensor name", msg, msg_len);
    free(v);
    return r;
}

/* general.alignment: a u32 power of two */
static int read_alignment(kvb_gguf *g, char *msg, size_t msg_len)
{
    g->alignment = 32;
    const kvb_gguf_kv *kv = kvb_gguf_find_kv(g, "general.alignment");
    if (!kv) return 0;
    uint32_t a = 0;
    if (kv->type == KVB_GGUF_U32) memcpy(&a, kv->val, 4);
    if (kv->type != KVB_GGUF_U32 || a == 0 || (a & (a - 1))) {
        snprintf(msg, msg_len, "general.alignment = %u (type %u): must be a u32 (type 4) power "
                 "of two", a, kv->type);
        return -1;
    }
    g->alignment = a;
    return 0;
}

static int by_offset(const void *a, const void *b)
{
    const kvb_gguf_tensor *x = *(const kvb_gguf_tensor *const *)a,
                          *y = *(const kvb_gguf_tensor *const *)b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

/* No two tensors share a byte: a planted offset pointing into another tensor
 * would read its weights (ggml goes further and wants them packed in order). */
static int check_overlap(kvb_gguf *g, char *msg, size_t msg_len)
{
    if (g->n_tensors < 2) return 0;
    kvb_gguf_tensor **v = malloc((size_t)g->n_tensors * sizeof *v);
    if (!v) {
        snprintf(msg, msg_len, "cannot allocate %llu tensor pointers",
                 (unsigned long long)g->n_tensors);
        return -1;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) v[i] = &g->t[i];
    qsort(v, (size_t)g->n_tensors, sizeof *v, by_offset);
    int r = 0;
    const kvb_gguf_tensor *last = v[0];   /* the one reaching furthest so far */
    for (uint64_t i = 1; i < g->n_tensors && !r; i++) {
        if (v[i]->offset < last->offset + last->bytes) {
            char a[64], b[64];
            snprintf(msg, msg_len, "tensor '%s': bytes [%llu, %llu) of the data section overlap "
                     "tensor '%s''s [%llu, %llu)", show(v[i]->name, a, sizeof a),
                     (unsigned long long)v[i]->offset,
                     (unsigned long long)(v[i]->offset + v[i]->bytes),
                     show(last->name, b, sizeof b), (unsigned long long)last->offset,
                     (unsigned long long)(last->offset + last->bytes));
            r = -1;
        }
        if (v[i]->offset + v[i]->bytes > last->offset + last->bytes) last = v[i];
    }
    free(v);
    return r;
}

kvb_status kvb_gguf_parse(kvb_gguf *g, const uint8_t *p, size_t n, char *msg, size_t msg_len)
{
    memset(g, 0, sizeof *g);
    g->base = p;
    g->size = n;
    cursor c = {p, 0, n, msg, msg_len};
    char magic[4];
    if (rd(&c, magic, 4, "magic") || rd(&c, &g->version, 4, "version")) goto bad;
    if (memcmp(magic, "GGUF", 4) != 0) {
        snprintf(msg, msg_len, "magic is not 'GGUF': not a GGUF file");
        goto bad;
    }
    if (g->version != 2 && g->version != 3) {
        snprintf(msg, msg_len, "version = %u: allowed are 2 and 3", g->version);
        goto bad;
    }
    if (rd(&c, &g->n_tensors, 8, "tensor_count") || rd(&c, &g->n_kv, 8, "metadata_kv_count"))
        goto bad;
    /* a key takes at least 13 bytes (length, type, a u8), a tensor info 32 */
    if (g->n_kv > left(&c) / 13 || g->n_tensors > left(&c) / 32) {
        snprintf(msg, msg_len, "metadata_kv_count = %llu, tensor_count = %llu: cannot fit in the "
                 "%llu bytes left", (unsigned long long)g->n_kv,
                 (unsigned long long)g->n_tensors, (unsigned long long)left(&c));
        goto bad;
    }
    g->kv = calloc((size_t)(g->n_kv ? g->n_kv : 1), sizeof *g->kv);
    g->t = calloc((size_t)(g->n_tensors ? g->n_tensors : 1), sizeof *g->t);
    if (!g->kv || !g->t) {
        snprintf(msg, msg_len, "cannot allocate %llu keys and %llu tensor infos",
                 (unsigned long long)g->n_kv, (unsigned long long)g->n_tensors);
        kvb_gguf_close(g);
        return KVB_STATUS_NO_MEMORY;
    }
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (read_kv(&c, i, &g->kv[i])) goto bad;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (read_tensor(&c, i, &g->t[i])) goto bad;
    if (check_unique(g, msg, msg_len) || read_alignment(g, msg, msg_len)) goto bad;
    g->data_off = (c.pos + g->alignment - 1) / g->alignment * g->alignment;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        kvb_gguf_tensor *t = &g->t[i];
        char b[64];
        if (t->offset % g->alignment) {
            snprintf(msg, msg_len, "tensor '%s': offset %llu is not a multiple of the alignment "
                     "%llu", show(t->name, b, sizeof b), (unsigned long long)t->offset,
                     (unsigned long long)g->alignment);
            goto bad;
        }
        if (g->data_off > n || t->offset > n - g->data_off || t->bytes > n - g->data_off -
            t->offset) {
            snprintf(msg, msg_len, "tensor '%s': %llu bytes at offset %llu of the data section "
                     "(from byte %llu) end past the file's %zu bytes", show(t->name, b, sizeof b),
                     (unsigned long long)t->bytes, (unsigned long long)t->offset,
                     (unsigned long long)g->data_off, n);
            goto bad;
        }
        t->data = p + g->data_off + t->offset;
    }
    if (check_overlap(g, msg, msg_len)) goto bad;
    return KVB_STATUS_OK;
bad:
    free(g->kv);
    free(g->t);
    g->kv = NULL;
    g->t = NULL;
    return KVB_STATUS_FORMAT;
}

kvb_status kvb_gguf_open(kvb_gguf *g, const char *path, char *msg, size_t msg_len)
{
    memset(g, 0, sizeof *g);
    const uint8_t *m;
    size_t n;
    kvb_status st = kvb_map_file(path, 24, "a GGUF file", &m, &n, msg, msg_len);
    if (st != KVB_STATUS_OK) return st;
    char why[400];
    st = kvb_gguf_parse(g, m, n, why, sizeof why);
    if (st != KVB_STATUS_OK) {
        snprintf(msg, msg_len, "GGUF '%s': %s", path, why);
        munmap((void *)m, n);
        memset(g, 0, sizeof *g);
        return st;
    }
    g->map = m;
    return KVB_STATUS_OK;
}

void kvb_gguf_close(kvb_gguf *g)
{
    if (!g) return;
    free(g->kv);
    free(g->t);
    if (g->map) munmap((void *)g->map, g->size);
    memset(g, 0, sizeof *g);
}

const kvb_gguf_kv *kvb_gguf_find_kv(const kvb_gguf *g, const char *key)
{
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (str_eq(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

const kvb_gguf_tensor *kvb_gguf_find_tensor(const kvb_gguf *g, const char *name)
{
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (str_eq(g->t[i].name, name)) return &g->t[i];
    return NULL;
}

static kvb_status absent(const char *key, char *msg, size_t msg_len)
{
    snprintf(msg, msg_len, "required key %s is missing", key);
    return KVB_STATUS_INVALID_ARG;
}

kvb_status kvb_gguf_get_int(const kvb_gguf *g, const char *key, int64_t lo, int64_t hi,
                            int64_t *out, char *msg, size_t msg_len)
{
    const kvb_gguf_kv *kv = kvb_gguf_find_kv(g, key);
    if (!kv) return absent(key, msg, msg_len);
    const uint8_t *p = kv->val;
    int64_t v = 0;
    uint64_t u;
    int ok = 1;
    switch (kv->type) {
    case KVB_GGUF_U8: v = p[0]; break;
    case KVB_GGUF_I8: v = (int8_t)p[0]; break;
    case KVB_GGUF_U16: { uint16_t x; memcpy(&x, p, 2); v = x; break; }
    case KVB_GGUF_I16: { int16_t x; memcpy(&x, p, 2); v = x; break; }
    case KVB_GGUF_U32: { uint32_t x; memcpy(&x, p, 4); v = x; break; }
    case KVB_GGUF_I32: { int32_t x; memcpy(&x, p, 4); v = x; break; }
    case KVB_GGUF_U64: memcpy(&u, p, 8); ok = u <= INT64_MAX; v = (int64_t)(ok ? u : 0); break;
    case KVB_GGUF_I64: memcpy(&v, p, 8); break;
    default:
        snprintf(msg, msg_len, "%s has value type %u: an integer type is needed", key, kv->type);
        return KVB_STATUS_FORMAT;
    }
    if (!ok || v < lo || v > hi) {
        snprintf(msg, msg_len, "%s = %lld: allowed are %lld..%lld", key,
                 ok ? (long long)v : -1ll, (long long)lo, (long long)hi);
        return KVB_STATUS_FORMAT;
    }
    *out = v;
    return KVB_STATUS_OK;
}

kvb_status kvb_gguf_get_float(const kvb_gguf *g, const char *key, double *out, char *msg,
                              size_t msg_len)
{
    const kvb_gguf_kv *kv = kvb_gguf_find_kv(g, key);
    if (!kv) return absent(key, msg, msg_len);
    if (kv->type == KVB_GGUF_F32V) {
        float f;
        memcpy(&f, kv->val, 4);
        *out = f;
    } else if (kv->type == KVB_GGUF_F64V) {
        memcpy(out, kv->val, 8);
    } else {
        snprintf(msg, msg_len, "%s has value type %u: f32 (6) or f64 (12) is needed", key,
                 kv->type);
        return KVB_STATUS_FORMAT;
    }
    if (!isfinite(*out)) {
        snprintf(msg, msg_len, "%s = %g: must be finite", key, *out);
        return KVB_STATUS_FORMAT;
    }
    return KVB_STATUS_OK;
}

/* a string value, or an absent one: KVB_STATUS_INVALID_ARG */
static kvb_status get_str(const kvb_gguf *g, const char *key, kvb_gguf_str *s, char *msg,
                          size_t msg_len)
{
    const kvb_gguf_kv *kv = kvb_gguf_find_kv(g, key);
    if (!kv) return absent(key, msg, msg_len);
    if (kv->type != KVB_GGUF_STRING) {
        snprintf(msg, msg_len, "%s has value type %u: a string (8) is needed", key, kv->type);
        return KVB_STATUS_FORMAT;
    }
    memcpy(&s->n, kv->val, 8);
    s->p = (const char *)kv->val + 8;
    return KVB_STATUS_OK;
}

/* an int field: required, or optional (def when absent) */
static kvb_status field(const kvb_gguf *g, const char *key, int required, int def, int *out,
                        char *msg, size_t msg_len)
{
    int64_t v;
    kvb_status st = kvb_gguf_get_int(g, key, 1, 1 << 24, &v, msg, msg_len);
    if (st == KVB_STATUS_INVALID_ARG && !required) { *out = def; return KVB_STATUS_OK; }
    if (st != KVB_STATUS_OK) return KVB_STATUS_FORMAT;
    *out = (int)v;
    return KVB_STATUS_OK;
}

static kvb_status fopt(const kvb_gguf *g, const char *key, double def, double *out, char *msg,
                       size_t msg_len)
{
    kvb_status st = kvb_gguf_get_float(g, key, out, msg, msg_len);
    if (st == KVB_STATUS_INVALID_ARG) { *out = def; return KVB_STATUS_OK; }
    return st;
}

kvb_status kvb_gguf_llama_config(const kvb_gguf *g, kvb_model_config *c,
                                 kvb_gguf_llama_extra *extra, char *msg, size_t msg_len)
{
    kvb_gguf_str arch;
    char b[64];
    if (get_str(g, "general.architecture", &arch, msg, msg_len) != KVB_STATUS_OK)
        return KVB_STATUS_FORMAT;
    if (!str_eq(arch, "llama")) {
        snprintf(msg, msg_len, "general.architecture = '%s': only 'llama' is read",
                 show(arch, b, sizeof b));
        return KVB_STATUS_UNSUPPORTED;
    }
    memset(c, 0, sizeof *c);
    kvb_gguf_llama_extra x = {.norm_eps = 1e-5f, .rope_factor = 1.0f};
    snprintf(x.rope_scaling, sizeof x.rope_scaling, "none");
    const char *req[] = {"llama.embedding_length", "llama.feed_forward_length",
                         "llama.block_count", "llama.attention.head_count",
                         "llama.context_length"};
    int *dst[] = {&c->dim, &c->hidden_dim, &c->n_layers, &c->n_heads, &c->max_seq};
    for (int i = 0; i < 5; i++)
        if (field(g, req[i], 1, 0, dst[i], msg, msg_len)) return KVB_STATUS_FORMAT;
    if (field(g, "llama.attention.head_count_kv", 0, c->n_heads, &c->n_kv_heads, msg, msg_len) ||
        field(g, "llama.attention.key_length", 0, c->dim / c->n_heads, &c->head_dim, msg,
              msg_len))
        return KVB_STATUS_FORMAT;
    int rope_dims;
    if (field(g, "llama.rope.dimension_count", 0, c->head_dim, &rope_dims, msg, msg_len))
        return KVB_STATUS_FORMAT;
    if (rope_dims != c->head_dim) {
        snprintf(msg, msg_len, "llama.rope.dimension_count = %d: only head_dim = %d (RoPE over "
                 "the whole head) is supported", rope_dims, c->head_dim);
        return KVB_STATUS_UNSUPPORTED;
    }
    double theta, eps, factor;
    if (fopt(g, "llama.rope.freq_base", 10000.0, &theta, msg, msg_len) ||
        fopt(g, "llama.attention.layer_norm_rms_epsilon", 1e-5, &eps, msg, msg_len) ||
        fopt(g, "llama.rope.scaling.factor", 1.0, &factor, msg, msg_len))
        return KVB_STATUS_FORMAT;
    c->rope_theta = (float)theta;
    x.norm_eps = (float)eps;
    x.rope_factor = (float)factor;
    if (field(g, "llama.rope.scaling.original_context_length", 0, 0, &x.rope_orig_ctx, msg,
              msg_len))
        return KVB_STATUS_FORMAT;
    kvb_gguf_str sc;
    kvb_status st = get_str(g, "llama.rope.scaling.type", &sc, msg, msg_len);
    if (st == KVB_STATUS_FORMAT) return st;
    if (st == KVB_STATUS_OK) show(sc, x.rope_scaling, sizeof x.rope_scaling);
    c->norm_eps = x.norm_eps;
    if (strcmp(x.rope_scaling, "linear") == 0) {
        c->rope_scaling = KVB_ROPE_SCALING_LINEAR;
        c->rope_factor = x.rope_factor;
    }
    x.rope_freqs = kvb_gguf_find_tensor(g, "rope_freqs.weight") != NULL;
    /* vocab: llama.vocab_size, else token_embd.weight's rows, else the tokenizer's list */
    const kvb_gguf_tensor *emb = kvb_gguf_find_tensor(g, "token_embd.weight");
    const kvb_gguf_kv *toks = kvb_gguf_find_kv(g, "tokenizer.ggml.tokens");
    int vdef = emb && emb->n_dims == 2 && emb->dims[1] <= (1 << 24) ? (int)emb->dims[1]
               : toks && toks->type == KVB_GGUF_ARRAY && toks->arr_n <= (1 << 24)
                   ? (int)toks->arr_n : 0;
    if (field(g, "llama.vocab_size", 0, vdef, &c->vocab_size, msg, msg_len))
        return KVB_STATUS_FORMAT;
    if (c->vocab_size == 0) {
        snprintf(msg, msg_len, "no vocabulary size: none of llama.vocab_size, a 2-d "
                 "token_embd.weight, tokenizer.ggml.tokens");
        return KVB_STATUS_FORMAT;
    }
    c->shared_classifier = emb && !kvb_gguf_find_tensor(g, "output.weight");
    /* the shape's checks without the limit on f32 weights (64 GB): a 70B model's shape is
     * read for attend and serve-sim, and what builds f32 weights checks the whole model */
    kvb_model_config shape = *c;
    shape.hidden_dim = shape.n_layers = shape.vocab_size = 1;
    char why[256];
    if (kvb_model_config_check(&shape, why, sizeof why) != KVB_STATUS_OK) {
        snprintf(msg, msg_len, "llama metadata inconsistent: %s", why);
        return KVB_STATUS_FORMAT;
    }
    if (extra) *extra = x;
    return KVB_STATUS_OK;
}
