/* llama2c.c: llama2.c checkpoints (model.h): kvb_model_read_config,
 * kvb_model_load (f32 weights into memory), kvb_model_save (f32 models whose
 * config the format can hold), and kvb_model_file_publish, the end of both
 * model writers. The tensors are read and written in model_slots.h's order,
 * which is the file's, with the RoPE tables between rms_final and wcls. */
#define _POSIX_C_SOURCE 200809L   /* fileno, fstat */
#include "model.h"
#include "model_slots.h"
#include "../base/afile.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- llama2.c checkpoints ---------------------------------------------- */

static size_t rope_table_floats(const kvb_model_config *c)   /* freq_cis_real + imag */
{
    return (size_t)c->max_seq * (size_t)(c->head_dim / 2) * 2;
}

/* Opens a checkpoint without blocking (a FIFO or device would hang a plain
 * open or read), refuses anything but a regular file, and reads and checks
 * the header against the file's size. *fp is left after the header. */
static kvb_status open_checkpoint(const char *path, FILE **fp, kvb_model_config *c, long *size,
                                  char *msg, size_t msg_len)
{
    *fp = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        snprintf(msg, msg_len, "cannot open checkpoint '%s': %s", path, strerror(errno));
        return KVB_STATUS_IO;
    }
    if (!S_ISREG(sb.st_mode)) {
        snprintf(msg, msg_len, "checkpoint '%s' is not a regular file (a %s)", path,
                 S_ISDIR(sb.st_mode) ? "directory" : S_ISFIFO(sb.st_mode) ? "FIFO" :
                 S_ISCHR(sb.st_mode) || S_ISBLK(sb.st_mode) ? "device" : "special file");
        return KVB_STATUS_IO;
    }
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(msg, msg_len, "cannot open checkpoint '%s': %s", path, strerror(errno));
        return KVB_STATUS_IO;
    }
    /* replaced between stat and open: judge what was opened */
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(msg, msg_len, "checkpoint '%s' is not a regular file", path);
        close(fd);
        return KVB_STATUS_IO;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        snprintf(msg, msg_len, "cannot read checkpoint '%s': %s", path, strerror(errno));
        close(fd);
        return KVB_STATUS_IO;
    }
    int32_t hdr[7];
    long file_size = (long)sb.st_size;
    if (file_size < (long)sizeof hdr || fread(hdr, sizeof hdr, 1, f) != 1) {
        snprintf(msg, msg_len, "checkpoint '%s' is %ld bytes: shorter than its 28-byte header",
                 path, file_size);
        goto bad;
    }
    for (int i = 0; i < 7; i++)
        if (hdr[i] == 0 || (i != 5 && hdr[i] < 0)) {
            snprintf(msg, msg_len, "checkpoint '%s': header field %d is %d (dim, hidden, layers, "
                     "heads, kv_heads, vocab, seq_len must be positive; vocab < 0 marks a "
                     "separate classifier)", path, i, (int)hdr[i]);
            goto bad;
        }
    if (hdr[0] % hdr[3] != 0) {
        snprintf(msg, msg_len, "checkpoint '%s': dim %d is not a multiple of heads %d",
                 path, (int)hdr[0], (int)hdr[3]);
        goto bad;
    }
    if (hdr[5] == INT32_MIN) {
        snprintf(msg, msg_len, "checkpoint '%s': vocab field %d is out of range", path,
                 (int)hdr[5]);
        goto bad;
    }
    *c = (kvb_model_config){
        .dim = hdr[0], .hidden_dim = hdr[1], .n_layers = hdr[2], .n_heads = hdr[3],
        .n_kv_heads = hdr[4], .head_dim = hdr[0] / hdr[3], .vocab_size = abs(hdr[5]),
        .max_seq = hdr[6], .rope_theta = 10000.0f, .shared_classifier = hdr[5] > 0,
    };
    if (kvb_model_config_check(c, msg, msg_len) != KVB_STATUS_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", msg);
        snprintf(msg, msg_len, "checkpoint '%s' is inconsistent: %s", path, why);
        goto bad;
    }
    size_t params = kvb_model_param_count(c), rope = rope_table_floats(c);
    double expect = 28.0 + 4.0 * (double)(params + rope);
    if ((double)file_size != expect) {
        snprintf(msg, msg_len,
                 "checkpoint '%s' is %ld bytes but its header (dim %d, hidden %d, "
                 "%d layers, %d heads, %d kv heads, vocab %d, seq_len %d, %s classifier) implies "
                 "%.0f: %s",
                 path, file_size, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                 c->vocab_size, c->max_seq, c->shared_classifier ? "shared" : "separate", expect,
                 (double)file_size < expect ? "truncated" : "trailing bytes");
        goto bad;
    }
    *fp = f;
    *size = file_size;
    return KVB_STATUS_OK;
bad:
    fclose(f);
    return KVB_STATUS_FORMAT;
}

kvb_status kvb_model_read_config(const char *path, kvb_model_config *c, char *msg, size_t msg_len)
{
    FILE *f;
    long size;
    kvb_status st = open_checkpoint(path, &f, c, &size, msg, msg_len);
    if (st == KVB_STATUS_OK) fclose(f);
    return st;
}

kvb_status kvb_model_load(kvb_model *m, const char *path, int max_seq_override,
                          char *msg, size_t msg_len)
{
    memset(m, 0, sizeof *m);
    FILE *f;
    long file_size;
    kvb_model_config c;
    kvb_status st = open_checkpoint(path, &f, &c, &file_size, msg, msg_len);
    if (st != KVB_STATUS_OK) return st;
    st = kvb_model_alloc_f32(m, &c, msg, msg_len);
    if (st != KVB_STATUS_OK) goto out;
    /* file order: everything up to rms_final, the RoPE tables (skipped: RoPE is
     * recomputed), then the classifier when it is separate */
    size_t index = 0;   /* of the weight, counted over the file's weights */
    for (int i = 0, n = kvb_model_slot_count(&c); i < n; i++) {
        kvb_tslot t;
        kvb_model_slot(m, i, &t);
        size_t count = (size_t)t.rows * (size_t)t.cols;
        float *dst = (float *)((char *)m->mem + ((const char *)t.data - (const char *)m->mem));
        if (fread(dst, sizeof(float), count, f) != count ||
            (t.kind == KVB_TKIND_FINAL_NORM &&
             fseek(f, (long)(rope_table_floats(&c) * sizeof(float)), SEEK_CUR) != 0)) {
            /* a short read with no error: the file got shorter after its size was checked */
            if (feof(f) && !ferror(f))
                snprintf(msg, msg_len,
                         "checkpoint '%s' ended at byte %ld of the %ld it had when opened: it "
                         "shrank while being read",
                         path, ftell(f), file_size);
            else
                snprintf(msg, msg_len, "checkpoint '%s': read failed: %s", path, strerror(errno));
            st = KVB_STATUS_IO;
            goto fail;
        }
        for (size_t j = 0; j < count; j++, index++)
            if (!isfinite(dst[j])) {
                snprintf(msg, msg_len, "checkpoint '%s': weight %zu (%s) is not finite", path,
                         index, t.name);
                st = KVB_STATUS_FORMAT;
                goto fail;
            }
    }
    if (max_seq_override > 0) m->cfg.max_seq = max_seq_override;
    snprintf(m->source, sizeof m->source, "llama2.c");
    st = kvb_model_finish(m, msg, msg_len);
    if (st == KVB_STATUS_OK) goto out;
fail:
    kvb_model_free(m);
out:
    fclose(f);
    return st;
}

/* What llama2.c's format cannot say: refused by kvb_model_save with the reason. */
static kvb_status save_check(const kvb_model *m, char *msg, size_t msg_len)
{
    const kvb_model_config *c = &m->cfg;
    for (int i = 0, n = kvb_model_slot_count(c); i < n; i++) {
        kvb_tslot t;
        kvb_model_slot(m, i, &t);
        if (t.type != KVB_WTYPE_F32) {
            snprintf(msg, msg_len, "llama2.c checkpoints hold f32 weights: %s%s is %s (export "
                     "this model as GGUF, or build it with f32 weights)",
                     t.name, t.layer >= 0 ? " of a layer" : "", kvb_wtype_name(t.type));
            return KVB_STATUS_UNSUPPORTED;
        }
    }
    if (c->rope_theta != 10000.0f) {
        snprintf(msg, msg_len, "llama2.c checkpoints have no field for rope-theta (%g): only the "
                 "default 10000 round-trips", (double)c->rope_theta);
        return KVB_STATUS_UNSUPPORTED;
    }
    if (c->head_dim * c->n_heads != c->dim) {
        snprintf(msg, msg_len, "llama2.c checkpoints need head_dim x heads = dim (%d x %d != %d)",
                 c->head_dim, c->n_heads, c->dim);
        return KVB_STATUS_UNSUPPORTED;
    }
    if (c->rope_layout != KVB_ROPE_LAYOUT_INTERLEAVED || c->rope_scaling != KVB_ROPE_SCALING_NONE) {
        snprintf(msg, msg_len, "llama2.c checkpoints hold interleaved, unscaled RoPE only (this "
                 "model: %s layout, scaling %d)",
                 c->rope_layout == KVB_ROPE_LAYOUT_HALF ? "half" : "interleaved", c->rope_scaling);
        return KVB_STATUS_UNSUPPORTED;
    }
    if (c->norm_eps != 0.0f && c->norm_eps != 1e-5f) {
        snprintf(msg, msg_len, "llama2.c checkpoints have no field for norm-eps (%g): only 1e-5 "
                 "round-trips", (double)c->norm_eps);
        return KVB_STATUS_UNSUPPORTED;
    }
    return KVB_STATUS_OK;
}

kvb_status kvb_model_save(const kvb_model *m, const char *path, char *msg, size_t msg_len)
{
    const kvb_model_config *c = &m->cfg;
    kvb_status st = save_check(m, msg, msg_len);
    if (st != KVB_STATUS_OK) return st;
    kvb_afile a;
    if (kvb_afile_open(&a, path, msg, msg_len)) return KVB_STATUS_IO;
    FILE *f = a.f;
    int32_t hdr[7] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                      c->shared_classifier ? c->vocab_size : -c->vocab_size, c->max_seq};
    int ok = fwrite(hdr, sizeof hdr, 1, f) == 1;
    for (int i = 0, n = kvb_model_slot_count(c); ok && i < n; i++) {
        kvb_tslot t;
        kvb_model_slot(m, i, &t);
        size_t count = (size_t)t.rows * (size_t)t.cols;
        ok = fwrite(t.data, sizeof(float), count, f) == count;
        if (t.kind == KVB_TKIND_FINAL_NORM)              /* freq_cis_real, then imag */
            for (int part = 0; ok && part < 2; part++)
                for (int p = 0; ok && p < c->max_seq; p++)
                    for (int j = 0; ok && j < c->head_dim / 2; j++) {
                        double ang = p * pow(c->rope_theta, -2.0 * j / c->head_dim);
                        float v = (float)(part ? sin(ang) : cos(ang));
                        ok = fwrite(&v, sizeof v, 1, f) == 1;
                    }
    }
    return kvb_model_file_publish(&a, ok, "a checkpoint", msg, msg_len);
}

kvb_status kvb_model_file_publish(struct kvb_afile *a, int written, const char *what, char *msg,
                                  size_t msg_len)
{
    if (!written) {
        snprintf(msg, msg_len, "writing '%s' failed: %s", a->path, strerror(errno ? errno : EIO));
        kvb_afile_abort(a);
        return KVB_STATUS_IO;
    }
    /* linked, not renamed: a file that appeared under the name meanwhile is never replaced */
    int e = kvb_afile_commit_new(a, msg, msg_len);
    if (e == EEXIST) snprintf(msg, msg_len, "'%s' exists: %s is never overwritten", a->path, what);
    return e == 0 ? KVB_STATUS_OK : e == EEXIST ? KVB_STATUS_INVALID_ARG : KVB_STATUS_IO;
}

