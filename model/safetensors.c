/* safetensors.c: the safetensors reader and a checkpoint's set of files
 * (safetensors.h). The header is read with cJSON; every number in it is
 * checked to be an integer in range before it sizes or places anything, and the
 * tensors' extents are checked against each other after sorting, so a header
 * cannot make the reader touch a byte outside the map. */
#define _POSIX_C_SOURCE 200809L
#include "safetensors.h"
#include "load.h"
#include "../base/json.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* safetensors' spelling of the types the kernels read; q8_0 has none */
static const struct { const char *name; kvb_wtype t; size_t size; } dtypes[] = {
    {"F32", KVB_WTYPE_F32, 4}, {"F16", KVB_WTYPE_F16, 2}, {"BF16", KVB_WTYPE_BF16, 2},
};
enum { N_DTYPES = sizeof dtypes / sizeof dtypes[0] };

/* 100 MB, the limit of safetensors' own reader: a longer header is not a checkpoint */
#define HEADER_MAX 100000000ull
/* per dim and per tensor, as the GGUF reader allows */
#define ELEMS_MAX (1ull << 40)

const char *kvb_st_dtype_name(kvb_wtype t)
{
    for (int i = 0; i < (int)N_DTYPES; i++)
        if (dtypes[i].t == t) return dtypes[i].name;
    return NULL;
}

static size_t dtype_size(kvb_wtype t)
{
    for (int i = 0; i < (int)N_DTYPES; i++)
        if (dtypes[i].t == t) return dtypes[i].size;
    return 0;
}

/* v as an integer in [0, hi]; -1 when it is not one */
static int u64_of(const cJSON *v, uint64_t hi, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0.0 && d <= (double)hi) || d != floor(d)) return -1;
    *out = (uint64_t)d;
    return 0;
}

/* name cut to fit a message, unprintable bytes as '?' */
static const char *show(const char *s, char *buf, size_t n)
{
    size_t k = 0;
    for (; s[k] && k < n - 1; k++) buf[k] = s[k] >= 32 && s[k] < 127 ? s[k] : '?';
    buf[k] = 0;
    return buf;
}

static int read_tensor(const cJSON *e, kvb_st_tensor *t, uint64_t data_bytes, char *msg,
                       size_t msg_len)
{
    char b[96];
    const char *nm = show(e->string, b, sizeof b);
    if (!cJSON_IsObject(e)) {
        snprintf(msg, msg_len, "tensor '%s': not a JSON object", nm);
        return -1;
    }
    const char *dt = kvb_json_str_at(e, "dtype");
    int k = -1;
    for (int i = 0; dt && i < (int)N_DTYPES; i++)
        if (strcmp(dt, dtypes[i].name) == 0) k = i;
    if (k < 0) {
        char d[32];
        snprintf(msg, msg_len, "tensor '%s': dtype %s%s%s: allowed are F32, F16, BF16", nm,
                 dt ? "'" : "", dt ? show(dt, d, sizeof d) : "missing", dt ? "'" : "");
        return -1;
    }
    t->type = dtypes[k].t;
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    int nd = cJSON_IsArray(shape) ? cJSON_GetArraySize(shape) : -1;
    if (nd < 0 || nd > KVB_ST_MAX_DIMS) {
        snprintf(msg, msg_len, "tensor '%s': shape %s: an array of at most %d dims is needed", nm,
                 nd < 0 ? "missing or not an array" : "too long", KVB_ST_MAX_DIMS);
        return -1;
    }
    t->n_dims = nd;
    uint64_t elems = 1;
    for (int i = 0; i < nd; i++) {
        uint64_t d;
        if (u64_of(cJSON_GetArrayItem(shape, i), ELEMS_MAX, &d) ||
            (d && elems > ELEMS_MAX / d)) {
            snprintf(msg, msg_len, "tensor '%s': shape[%d] is not an integer from 0 to 2^40, or "
                     "the product of the dims passes 2^40", nm, i);
            return -1;
        }
        t->dims[i] = d;
        elems *= d;
    }
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
        u64_of(cJSON_GetArrayItem(off, 0), UINT64_MAX >> 11, &t->begin) ||
        u64_of(cJSON_GetArrayItem(off, 1), UINT64_MAX >> 11, &t->end)) {
        snprintf(msg, msg_len, "tensor '%s': data_offsets must be [begin, end], two integers", nm);
        return -1;
    }
    if (t->begin > t->end || t->end > data_bytes) {
        snprintf(msg, msg_len, "tensor '%s': data_offsets [%llu, %llu] are not in order inside "
                 "the data section of %llu bytes", nm, (unsigned long long)t->begin,
                 (unsigned long long)t->end, (unsigned long long)data_bytes);
        return -1;
    }
    uint64_t want = elems * dtypes[k].size;
    if (t->end - t->begin != want) {
        snprintf(msg, msg_len, "tensor '%s': data_offsets span %llu bytes but shape x %s's %zu "
                 "bytes is %llu", nm, (unsigned long long)(t->end - t->begin), dt,
                 dtypes[k].size, (unsigned long long)want);
        return -1;
    }
    t->name = strdup(e->string);
    if (!t->name) {
        snprintf(msg, msg_len, "cannot allocate tensor '%s''s name", nm);
        return -1;
    }
    return 0;
}

static int by_begin(const void *a, const void *b)
{
    const kvb_st_tensor *x = *(const kvb_st_tensor *const *)a,
                        *y = *(const kvb_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(const kvb_st_tensor *const *)a)->name,
                  (*(const kvb_st_tensor *const *)b)->name);
}

/* no two tensors share a byte or a name; each is aligned to its element size */
static int check_extents(kvb_st_file *f, char *msg, size_t msg_len)
{
    int n = f->n_tensors, r = 0;
    if (n == 0) return 0;
    kvb_st_tensor **v = malloc((size_t)n * sizeof *v);
    if (!v) {
        snprintf(msg, msg_len, "cannot allocate %d tensor pointers", n);
        return -1;
    }
    char a[96], b[96];
    for (int i = 0; i < n; i++) v[i] = &f->t[i];
    qsort(v, (size_t)n, sizeof *v, by_name);
    for (int i = 1; i < n && !r; i++)
        if (strcmp(v[i - 1]->name, v[i]->name) == 0) {
            snprintf(msg, msg_len, "tensor '%s' appears twice: each name must be unique",
                     show(v[i]->name, a, sizeof a));
            r = -1;
        }
    qsort(v, (size_t)n, sizeof *v, by_begin);
    /* empty tensors occupy nothing; last: the non-empty one reaching furthest so far */
    const kvb_st_tensor *last = NULL;
    for (int i = 0; i < n && !r; i++) {
        if (v[i]->end == v[i]->begin) continue;
        if (last && v[i]->begin < last->end) {
            snprintf(msg, msg_len, "tensor '%s': data_offsets [%llu, %llu] overlap tensor '%s''s "
                     "[%llu, %llu]", show(v[i]->name, a, sizeof a),
                     (unsigned long long)v[i]->begin, (unsigned long long)v[i]->end,
                     show(last->name, b, sizeof b), (unsigned long long)last->begin,
                     (unsigned long long)last->end);
            r = -1;
        }
        if (!last || v[i]->end > last->end) last = v[i];
    }
    for (int i = 0; i < n && !r; i++) {   /* an empty tensor's data is never read */
        size_t es = f->t[i].begin == f->t[i].end ? 1 : dtype_size(f->t[i].type);
        uintptr_t at = (uintptr_t)(f->base + f->data_off + f->t[i].begin);
        if (at % es) {
            snprintf(msg, msg_len, "tensor '%s': data at file byte %llu is misaligned for %s "
                     "(a multiple of %zu is needed)", show(f->t[i].name, a, sizeof a),
                     (unsigned long long)(f->data_off + f->t[i].begin),
                     kvb_st_dtype_name(f->t[i].type), es);
            r = -1;
        }
    }
    free(v);
    return r;
}

static void free_tensors(kvb_st_file *f)
{
    for (int i = 0; f->t && i < f->n_tensors; i++) free(f->t[i].name);
    free(f->t);
    f->t = NULL;
    f->n_tensors = 0;
}

kvb_status kvb_st_parse(kvb_st_file *f, const uint8_t *p, size_t n, char *msg, size_t msg_len)
{
    memset(f, 0, sizeof *f);
    f->base = p;
    f->size = n;
    uint64_t hl = 0;
    if (n < 8) {
        snprintf(msg, msg_len, "header length: needs 8 bytes, the file has %zu (truncated)", n);
        return KVB_STATUS_FORMAT;
    }
    memcpy(&hl, p, 8);
    if (hl < 2 || hl > HEADER_MAX || hl > n - 8) {
        snprintf(msg, msg_len, "header length %llu: must be from 2 to %llu and within the "
                 "file's %zu bytes after the length (truncated, or not a safetensors file)",
                 (unsigned long long)hl, HEADER_MAX, n - 8);
        return KVB_STATUS_FORMAT;
    }
    f->data_off = 8 + hl;
    char where[] = "safetensors header";
    char why[256];
    cJSON *j = kvb_json_parse((const char *)p + 8, (size_t)hl, where, why, sizeof why);
    if (!j) {
        snprintf(msg, msg_len, "header: %s", why);
        return KVB_STATUS_FORMAT;
    }
    kvb_status st = KVB_STATUS_FORMAT;
    if (!cJSON_IsObject(j)) {
        snprintf(msg, msg_len, "header: not a JSON object");
        goto out;
    }
    int count = 0;
    for (const cJSON *e = j->child; e; e = e->next) count += strcmp(e->string, "__metadata__") != 0;
    f->t = calloc((size_t)(count ? count : 1), sizeof *f->t);
    if (!f->t) {
        snprintf(msg, msg_len, "cannot allocate %d tensor entries", count);
        st = KVB_STATUS_NO_MEMORY;
        goto out;
    }
    for (const cJSON *e = j->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        if (read_tensor(e, &f->t[f->n_tensors], n - f->data_off, msg, msg_len)) goto out;
        f->n_tensors++;
    }
    if (check_extents(f, msg, msg_len)) goto out;
    for (int i = 0; i < f->n_tensors; i++) f->t[i].data = p + f->data_off + f->t[i].begin;
    st = KVB_STATUS_OK;
out:
    cJSON_Delete(j);
    if (st != KVB_STATUS_OK) free_tensors(f);
    return st;
}

kvb_status kvb_st_open(kvb_st_file *f, const char *path, char *msg, size_t msg_len)
{
    memset(f, 0, sizeof *f);
    const uint8_t *m;
    size_t n;
    kvb_status st = kvb_map_file(path, 10, "a safetensors file", &m, &n, msg, msg_len);
    if (st != KVB_STATUS_OK) return st;
    char why[512];
    st = kvb_st_parse(f, m, n, why, sizeof why);
    if (st != KVB_STATUS_OK) {
        snprintf(msg, msg_len, "safetensors '%s': %s", path, why);
        munmap((void *)m, n);
        memset(f, 0, sizeof *f);
        return st;
    }
    f->map = m;
    return KVB_STATUS_OK;
}

void kvb_st_close(kvb_st_file *f)
{
    if (!f) return;
    free_tensors(f);
    if (f->map) munmap((void *)f->map, f->size);
    memset(f, 0, sizeof *f);
}

const kvb_st_tensor *kvb_st_find(const kvb_st_file *f, const char *name)
{
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->t[i].name, name) == 0) return &f->t[i];
    return NULL;
}

/* ---- a checkpoint's files ------------------------------------------------- */

void kvb_st_set_close(kvb_st_set *s)
{
    if (!s) return;
    for (int i = 0; s->files && i < s->n_files; i++) kvb_st_close(&s->files[i]);
    free(s->files);
    memset(s, 0, sizeof *s);
}

const kvb_st_tensor *kvb_st_set_find(const kvb_st_set *s, const char *name)
{
    for (int i = 0; i < s->n_files; i++) {
        const kvb_st_tensor *t = kvb_st_find(&s->files[i], name);
        if (t) return t;
    }
    return NULL;
}

/* A shard's name from the index: a plain file name, never a path out of dir. */
static int plain_name(const char *s)
{
    return s[0] && strcmp(s, ".") && strcmp(s, "..") && !strchr(s, '/');
}

/* The shards of index (its weight_map), each opened once, in order of first mention. */
static kvb_status open_shards(kvb_st_set *s, const char *dir, const cJSON *wm, const char *index,
                              char *msg, size_t msg_len)
{
    int n = cJSON_GetArraySize(wm);
    const char **names = calloc((size_t)(n ? n : 1), sizeof *names);
    s->files = calloc((size_t)(n ? n : 1), sizeof *s->files);
    if (!names || !s->files) {
        free(names);
        snprintf(msg, msg_len, "cannot allocate %d shard entries", n);
        return KVB_STATUS_NO_MEMORY;
    }
    kvb_status st = KVB_STATUS_OK;
    char b[96], path[4200];
    for (const cJSON *e = wm->child; e && st == KVB_STATUS_OK; e = e->next) {
        if (!cJSON_IsString(e) || !plain_name(e->valuestring)) {
            snprintf(msg, msg_len, "%s: weight_map[\"%s\"] must be a file name in the directory",
                     index, show(e->string, b, sizeof b));
            st = KVB_STATUS_FORMAT;
            break;
        }
        int k = 0;
        while (k < s->n_files && strcmp(names[k], e->valuestring)) k++;
        if (k == s->n_files) {
            snprintf(path, sizeof path, "%s/%s", dir, e->valuestring);
            st = kvb_st_open(&s->files[k], path, msg, msg_len);
            if (st != KVB_STATUS_OK) break;
            names[k] = e->valuestring;
            s->n_files++;
        }
        if (!kvb_st_find(&s->files[k], e->string)) {
            snprintf(msg, msg_len, "%s: weight_map puts tensor '%s' in '%s', which has no such "
                     "tensor", index, show(e->string, b, sizeof b), e->valuestring);
            st = KVB_STATUS_FORMAT;
        }
    }
    /* a tensor in two shards would be read from whichever comes first */
    for (int i = 0; st == KVB_STATUS_OK && i < s->n_files; i++)
        for (int t = 0; st == KVB_STATUS_OK && t < s->files[i].n_tensors; t++)
            for (int j = i + 1; j < s->n_files; j++)
                if (kvb_st_find(&s->files[j], s->files[i].t[t].name)) {
                    snprintf(msg, msg_len, "tensor '%s' is in two shards, '%s' and '%s'",
                             show(s->files[i].t[t].name, b, sizeof b), names[i], names[j]);
                    st = KVB_STATUS_FORMAT;
                    break;
                }
    free(names);
    return st;
}

kvb_status kvb_st_set_open(kvb_st_set *s, const char *dir, char *msg, size_t msg_len)
{
    memset(s, 0, sizeof *s);
    char path[4200];
    struct stat sb;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (stat(path, &sb) == 0) {
        s->files = calloc(1, sizeof *s->files);
        if (!s->files) {
            snprintf(msg, msg_len, "cannot allocate a file entry");
            return KVB_STATUS_NO_MEMORY;
        }
        kvb_status st = kvb_st_open(&s->files[0], path, msg, msg_len);
        if (st != KVB_STATUS_OK) {
            kvb_st_set_close(s);
            return st;
        }
        s->n_files = 1;
        return KVB_STATUS_OK;
    }
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    int err = 0;
    cJSON *j = kvb_json_load(path, &err, msg, msg_len);
    if (!j) {
        if (err == ENOENT)
            snprintf(msg, msg_len, "'%s' holds neither model.safetensors nor "
                     "model.safetensors.index.json (sharded)", dir);
        return err == EBADMSG ? KVB_STATUS_FORMAT : KVB_STATUS_IO;
    }
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(j, "weight_map");
    kvb_status st;
    if (!cJSON_IsObject(wm) || !wm->child) {
        snprintf(msg, msg_len, "%s: \"weight_map\" must be a non-empty object", path);
        st = KVB_STATUS_FORMAT;
    } else {
        st = open_shards(s, dir, wm, path, msg, msg_len);
    }
    cJSON_Delete(j);
    if (st != KVB_STATUS_OK) kvb_st_set_close(s);
    return st;
}
