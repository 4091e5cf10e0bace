/* load.c: see load.h. kvb_model_open judges a path by its first bytes, not its
 * name; kvb_load_fill is the part of a loader that does not depend on the
 * format: which tensor goes where, and every shape checked against the config. */
#define _POSIX_C_SOURCE 200809L
#include "load.h"
#include "gguf.h"
#include "safetensors.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

kvb_status kvb_map_file(const char *path, size_t min, const char *what, const uint8_t **map,
                        size_t *size, char *msg, size_t msg_len)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        snprintf(msg, msg_len, "cannot open '%s': %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return KVB_STATUS_IO;
    }
    if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size < min) {
        snprintf(msg, msg_len, "'%s' is %s: %s is a regular file of at least %zu bytes", path,
                 !S_ISREG(sb.st_mode) ? "not a regular file" : "too short", what, min);
        close(fd);
        return S_ISREG(sb.st_mode) ? KVB_STATUS_FORMAT : KVB_STATUS_IO;
    }
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED) {
        snprintf(msg, msg_len, "cannot map '%s': %s", path, strerror(e));
        return KVB_STATUS_IO;
    }
    *map = m;
    *size = (size_t)sb.st_size;
    return KVB_STATUS_OK;
}

kvb_model_format kvb_model_format_of(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return KVB_MODEL_FORMAT_NONE;
    if (S_ISDIR(sb.st_mode)) return KVB_MODEL_FORMAT_HF;
    if (!S_ISREG(sb.st_mode)) {
        errno = EINVAL;
        return KVB_MODEL_FORMAT_NONE;
    }
    /* the first bytes, without blocking (the file may have been replaced by a FIFO) */
    unsigned char head[64];
    ssize_t n = -1;
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd >= 0) {
        n = read(fd, head, sizeof head);
        int e = errno;
        close(fd);
        errno = e;
    }
    if (n < 0) return KVB_MODEL_FORMAT_NONE;
    if (n >= 4 && memcmp(head, "GGUF", 4) == 0) return KVB_MODEL_FORMAT_GGUF;
    ssize_t i = 0;
    while (i < n && isspace(head[i])) i++;
    return i < n && head[i] == '{' ? KVB_MODEL_FORMAT_HF : KVB_MODEL_FORMAT_LLAMA2C;
}

kvb_status kvb_model_open(kvb_model *m, const char *path, int max_seq_override, char *msg,
                          size_t msg_len)
{
    memset(m, 0, sizeof *m);
    errno = 0;
    switch (kvb_model_format_of(path)) {
    case KVB_MODEL_FORMAT_HF: return kvb_hf_load_model(m, path, max_seq_override, msg, msg_len);
    case KVB_MODEL_FORMAT_GGUF:
        return kvb_gguf_load_model(m, path, max_seq_override, msg, msg_len);
    case KVB_MODEL_FORMAT_LLAMA2C: break;
    default:
        snprintf(msg, msg_len, "cannot open model '%s': %s", path,
                 errno == EINVAL ? "neither a regular file nor a directory" : strerror(errno));
        return KVB_STATUS_IO;
    }
    char why[512];
    kvb_status st = kvb_model_load(m, path, max_seq_override, why, sizeof why);
    if (st == KVB_STATUS_FORMAT)
        snprintf(msg, msg_len, "model '%s' is not a Hugging Face checkpoint (a directory or its "
                 "config.json), not GGUF (no 'GGUF' magic), and not a llama2.c checkpoint: %s",
                 path, why);
    else if (st != KVB_STATUS_OK)
        snprintf(msg, msg_len, "%s", why);
    return st;
}

/* A tensor found and checked: rank n_dims, rows x cols (a norm: cols alone). */
static int get(void *ctx, kvb_load_find_fn find, const char *name, int n_dims, int rows, int cols,
               kvb_load_tensor *t, char *msg, size_t msg_len)
{
    int r = find(ctx, name, t, msg, msg_len);
    if (r > 0) snprintf(msg, msg_len, "tensor '%s' is missing", name);
    if (r) return -1;
    if (t->n_dims != n_dims || t->rows != (uint64_t)rows || t->cols != (uint64_t)cols) {
        if (n_dims == 1)
            snprintf(msg, msg_len, "tensor '%s': %d dims of %llu x %llu: the config needs one "
                     "dim of %d", name, t->n_dims, (unsigned long long)t->rows,
                     (unsigned long long)t->cols, cols);
        else
            snprintf(msg, msg_len, "tensor '%s': %d dims, %llu rows (out) x %llu cols (in): the "
                     "config needs 2 dims, %d x %d", name, t->n_dims, (unsigned long long)t->rows,
                     (unsigned long long)t->cols, rows, cols);
        return -1;
    }
    if (kvb_wtype_row_bytes(t->type, cols) == 0) {
        snprintf(msg, msg_len, "tensor '%s': %d cols are not a multiple of %s's block", name,
                 cols, kvb_wtype_name(t->type));
        return -1;
    }
    return 0;
}

static int get_mat(void *ctx, kvb_load_find_fn find, const char *name, int rows, int cols,
                   kvb_wmat *w, char *msg, size_t msg_len)
{
    kvb_load_tensor t;
    if (get(ctx, find, name, 2, rows, cols, &t, msg, msg_len)) return -1;
    *w = (kvb_wmat){.data = t.data, .type = t.type, .rows = rows, .cols = cols};
    return 0;
}

/* a norm in place when aligned f32, else converted into room[dim] */
static int get_norm(void *ctx, kvb_load_find_fn find, const char *name, int dim, float *room,
                    const float **out, char *msg, size_t msg_len)
{
    kvb_load_tensor t;
    if (get(ctx, find, name, 1, 1, dim, &t, msg, msg_len)) return -1;
    if (t.type == KVB_WTYPE_F32 && (uintptr_t)t.data % sizeof(float) == 0) {
        *out = t.data;
    } else {
        kvb_wrow_to_f32(t.type, t.data, room, dim);
        *out = room;
    }
    return 0;
}

kvb_status kvb_load_finish(kvb_model *m, char *msg, size_t msg_len)
{
    char why[400];
    kvb_status st = kvb_model_finish(m, why, sizeof why);
    if (st != KVB_STATUS_OK) {
        snprintf(msg, msg_len, "%s", why);
        kvb_model_free(m);
    }
    return st;
}

kvb_status kvb_load_fill(kvb_model *m, const kvb_load_names *names, kvb_load_find_fn find,
                         void *ctx, char *msg, size_t msg_len)
{
    kvb_model_config *c = &m->cfg;
    const int L = c->n_layers, d = c->dim, qd = c->n_heads * c->head_dim,
              kvd = c->n_kv_heads * c->head_dim, h = c->hidden_dim;
    /* the layer table (kvb_model_free frees it apart), and room for every norm in
     * mem: [2 L + 1][dim] */
    kvb_model_weights *w = &m->w;
    m->mem_bytes = (2 * (size_t)L + 1) * (size_t)d * sizeof(float);
    m->mem = malloc(m->mem_bytes);
    w->layer = calloc((size_t)L, sizeof *w->layer);
    if (!m->mem || !w->layer) {
        snprintf(msg, msg_len, "cannot allocate the layer table and %zu bytes of norms",
                 m->mem_bytes);
        kvb_model_free(m);
        return KVB_STATUS_NO_MEMORY;
    }
    float *room = m->mem;
    if (get_mat(ctx, find, names->embed, c->vocab_size, d, &w->token_embedding, msg, msg_len) ||
        get_norm(ctx, find, names->norm_final, d, room + (size_t)2 * L * d, &w->rms_final, msg,
                 msg_len))
        goto bad;
    for (int l = 0; l < L; l++) {
        kvb_layer_weights *lw = &w->layer[l];
        kvb_wmat *mats[7] = {&lw->wq, &lw->wk, &lw->wv, &lw->wo, &lw->w1, &lw->w2, &lw->w3};
        const int shape[7][2] = {{qd, d}, {kvd, d}, {kvd, d}, {d, qd}, {h, d}, {d, h}, {h, d}};
        const int which[7] = {1, 2, 3, 4, 6, 7, 8};   /* their place in names->layer */
        char name[160];
        snprintf(name, sizeof name, names->layer[0], l);
        if (get_norm(ctx, find, name, d, room + (size_t)2 * l * d, &lw->rms_att, msg, msg_len))
            goto bad;
        snprintf(name, sizeof name, names->layer[5], l);
        if (get_norm(ctx, find, name, d, room + (size_t)(2 * l + 1) * d, &lw->rms_ffn, msg,
                     msg_len))
            goto bad;
        for (int i = 0; i < 7; i++) {
            snprintf(name, sizeof name, names->layer[which[i]], l);
            if (get_mat(ctx, find, name, shape[i][0], shape[i][1], mats[i], msg, msg_len))
                goto bad;
        }
    }
    if (!c->shared_classifier) {
        kvb_load_tensor t;
        int r = find(ctx, names->output, &t, msg, msg_len);
        if (r < 0) goto bad;
        if (r > 0) c->shared_classifier = 1;   /* no classifier: the embedding is shared */
        else if (get_mat(ctx, find, names->output, c->vocab_size, d, &w->wcls, msg, msg_len))
            goto bad;
    }
    if (c->shared_classifier) w->wcls = w->token_embedding;
    return kvb_load_finish(m, msg, msg_len);
bad:
    kvb_model_free(m);
    return KVB_STATUS_FORMAT;
}
