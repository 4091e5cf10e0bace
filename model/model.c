/* model.c: see model.h. The decode step is matrix-vector work (sgemv); the
 * sequence pass is matrix-matrix work (sgemm) plus causal attention. Both use
 * the same RMSNorm, RoPE and SwiGLU code so their logits agree to f32 rounding. */
#define _POSIX_C_SOURCE 200809L   /* fileno, fstat */
#include "model.h"
#include "../base/probe.h"
#include "../base/afile.h"
#include "../impls/kernels/kernels.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct { const char *name; kvb_model_config cfg; } presets[] = {
    /* name          dim  hidden layers heads kv  hd  vocab  max_seq theta shared */
    /* tiny keeps a separate classifier: with a shared one, random weights make
     * greedy decoding repeat its input token, which would hide ordering bugs */
    {"tiny",        {64,   172,  2,    4,   2,  16,  256,    256, 10000.0f, 0}},
    {"stories15m",  {288,  768,  6,    6,   6,  48,  32000, 1024, 10000.0f, 1}},
    {"stories110m", {768,  2048, 12,   12,  12, 64,  32000, 1024, 10000.0f, 1}},
    /* TinyLlama-1.1B proportions: 32 query heads share 4 KV heads (8:1) */
    {"gqa1b",       {2048, 5632, 22,   32,  4,  64,  32000, 2048, 10000.0f, 0}},
    /* published models' shapes (their config.json), for shape-only use (attend, serve-sim);
     * Mistral's sliding window of 4096 and Llama 3's rope scaling are not modelled here */
    {"llama2-7b",   {4096, 11008, 32,  32,  32, 128, 32000, 4096, 10000.0f, 0}},
    {"llama3-8b",   {4096, 14336, 32,  32,  8,  128, 128256, 8192, 500000.0f, 0}},
    {"mistral-7b",  {4096, 14336, 32,  32,  8,  128, 32000, 32768, 10000.0f, 0}},
    {"llama3.2-1b", {2048, 8192,  16,  32,  8,  64,  128256, 131072, 500000.0f, 1}},
    {"tinyllama",   {2048, 5632,  22,  32,  4,  64,  32000, 2048, 10000.0f, 0}},
};
enum { N_PRESETS = sizeof presets / sizeof presets[0] };

const char *kvb_model_preset_name(int i)
{
    return (i >= 0 && i < (int)N_PRESETS) ? presets[i].name : NULL;
}

kvb_status kvb_model_preset(const char *name, kvb_model_config *out)
{
    for (int i = 0; name && i < (int)N_PRESETS; i++)
        if (strcmp(presets[i].name, name) == 0) { *out = presets[i].cfg; return KVB_STATUS_OK; }
    return KVB_STATUS_INVALID_ARG;
}

kvb_status kvb_model_config_check(const kvb_model_config *c, char *msg, size_t msg_len)
{
    const struct { const char *name; int v; } f[] = {
        {"dim", c->dim}, {"hidden", c->hidden_dim}, {"layers", c->n_layers},
        {"heads", c->n_heads}, {"kv-heads", c->n_kv_heads}, {"head-dim", c->head_dim},
        {"vocab", c->vocab_size}, {"max-seq", c->max_seq},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v < 1 || f[i].v > (1 << 24)) {
            snprintf(msg, msg_len, "%s = %d: must be between 1 and %d", f[i].name, f[i].v, 1 << 24);
            return KVB_STATUS_INVALID_ARG;
        }
    if (c->n_heads % c->n_kv_heads != 0) {
        snprintf(msg, msg_len, "heads = %d is not a multiple of kv-heads = %d",
                 c->n_heads, c->n_kv_heads);
        return KVB_STATUS_INVALID_ARG;
    }
    if (c->head_dim % 2 != 0) {
        snprintf(msg, msg_len, "head-dim = %d: must be even (RoPE rotates pairs)", c->head_dim);
        return KVB_STATUS_INVALID_ARG;
    }
    if (!(c->rope_theta > 1.0f) || !isfinite(c->rope_theta)) {
        snprintf(msg, msg_len, "rope-theta = %g: must be a finite number above 1",
                 (double)c->rope_theta);
        return KVB_STATUS_INVALID_ARG;
    }
    if ((double)c->n_heads * c->head_dim > (1 << 24)) {
        snprintf(msg, msg_len, "heads x head-dim = %.0f: at most %d",
                 (double)c->n_heads * c->head_dim, 1 << 24);
        return KVB_STATUS_INVALID_ARG;
    }
    /* counted in double: the size_t count could wrap for absurd shapes */
    double d = c->dim, qd = (double)c->n_heads * c->head_dim,
           kvd = (double)c->n_kv_heads * c->head_dim;
    double bytes = 4.0 * ((double)c->vocab_size * d * 2 + c->n_layers * (2 * d + 2 * d * qd +
                          2 * d * kvd + 3 * d * c->hidden_dim) + d);
    if (bytes > 64e9) {
        snprintf(msg, msg_len,
                 "model needs %.1f GB of f32 weights: over the 64 GB this tool allows",
                 bytes / 1e9);
        return KVB_STATUS_INVALID_ARG;
    }
    return KVB_STATUS_OK;
}

static size_t layer_params(const kvb_model_config *c)
{
    size_t d = (size_t)c->dim, qd = (size_t)c->n_heads * c->head_dim,
           kvd = (size_t)c->n_kv_heads * c->head_dim, h = (size_t)c->hidden_dim;
    return 2 * d + d * qd + 2 * d * kvd + qd * d + 3 * d * h;
}

size_t kvb_model_param_count(const kvb_model_config *c)
{
    size_t ve = (size_t)c->vocab_size * c->dim;
    return ve + (size_t)c->n_layers * layer_params(c) + (size_t)c->dim +
           (c->shared_classifier ? 0 : ve);
}

/* Points every weight at its slice of m->mem, in llama2.c's file order. */
static void map_weights(kvb_model *m)
{
    const kvb_model_config *c = &m->cfg;
    size_t L = (size_t)c->n_layers, d = (size_t)c->dim, qd = (size_t)c->n_heads * c->head_dim,
           kvd = (size_t)c->n_kv_heads * c->head_dim, h = (size_t)c->hidden_dim;
    float *p = m->mem;
    kvb_model_weights *w = &m->w;
    w->token_embedding = p; p += (size_t)c->vocab_size * d;
    w->rms_att = p; p += L * d;
    w->wq = p; p += L * qd * d;
    w->wk = p; p += L * kvd * d;
    w->wv = p; p += L * kvd * d;
    w->wo = p; p += L * d * qd;
    w->rms_ffn = p; p += L * d;
    w->w1 = p; p += L * h * d;
    w->w2 = p; p += L * d * h;
    w->w3 = p; p += L * h * d;
    w->rms_final = p; p += d;
    w->wcls = c->shared_classifier ? w->token_embedding : p;
}

static kvb_status model_alloc(kvb_model *m, const kvb_model_config *c, char *msg, size_t msg_len)
{
    memset(m, 0, sizeof *m);
    kvb_status st = kvb_model_config_check(c, msg, msg_len);
    if (st != KVB_STATUS_OK) return st;
    m->cfg = *c;
    m->n_floats = kvb_model_param_count(c);
    m->mem = malloc(m->n_floats * sizeof(float));
    if (!m->mem) {
        snprintf(msg, msg_len, "cannot allocate %zu bytes of weights", m->n_floats * sizeof(float));
        return KVB_STATUS_NO_MEMORY;
    }
    map_weights(m);
    return KVB_STATUS_OK;
}

void kvb_model_free(kvb_model *m)
{
    if (!m) return;
    free(m->mem);
    memset(m, 0, sizeof *m);
}

/* splitmix64: a seeded, platform-independent stream, so a seed names one model. */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void fill_uniform(float *p, size_t n, float a, uint64_t *s)
{
    for (size_t i = 0; i < n; i++)
        p[i] = a * ((float)(splitmix64(s) >> 40) * (2.0f / 16777216.0f) - 1.0f);
}

static void fill_const(float *p, size_t n, float v)
{
    for (size_t i = 0; i < n; i++) p[i] = v;
}

kvb_status kvb_model_init_random(kvb_model *m, const kvb_model_config *c, uint64_t seed,
                                 char *msg, size_t msg_len)
{
    kvb_status st = model_alloc(m, c, msg, msg_len);
    if (st != KVB_STATUS_OK) return st;
    kvb_model_weights *w = &m->w;
    size_t L = (size_t)c->n_layers, d = (size_t)c->dim, qd = (size_t)c->n_heads * c->head_dim,
           kvd = (size_t)c->n_kv_heads * c->head_dim, h = (size_t)c->hidden_dim;
    uint64_t s = seed;
    /* uniform with variance 1/fan_in keeps the residual stream near unit scale */
    const float sq3 = sqrtf(3.0f);
    fill_uniform(w->token_embedding, (size_t)c->vocab_size * d, sq3, &s);
    fill_const(w->rms_att, L * d, 1.0f);
    fill_uniform(w->wq, L * qd * d, sq3 / sqrtf((float)d), &s);
    fill_uniform(w->wk, L * kvd * d, sq3 / sqrtf((float)d), &s);
    fill_uniform(w->wv, L * kvd * d, sq3 / sqrtf((float)d), &s);
    fill_uniform(w->wo, L * d * qd, sq3 / sqrtf((float)qd), &s);
    fill_const(w->rms_ffn, L * d, 1.0f);
    fill_uniform(w->w1, L * h * d, sq3 / sqrtf((float)d), &s);
    fill_uniform(w->w2, L * d * h, sq3 / sqrtf((float)h), &s);
    fill_uniform(w->w3, L * h * d, sq3 / sqrtf((float)d), &s);
    fill_const(w->rms_final, d, 1.0f);
    if (!c->shared_classifier)
        fill_uniform(w->wcls, (size_t)c->vocab_size * d, sq3 / sqrtf((float)d), &s);
    return KVB_STATUS_OK;
}

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
    size_t params = kvb_model_param_count(&c), rope = rope_table_floats(&c);
    st = model_alloc(m, &c, msg, msg_len);
    if (st != KVB_STATUS_OK) goto out;
    /* file order: everything up to rms_final, the RoPE tables (skipped: RoPE is
     * recomputed), then the classifier when it is separate */
    size_t before_rope = params - (c.shared_classifier ? 0 : (size_t)c.vocab_size * c.dim);
    if (fread(m->mem, sizeof(float), before_rope, f) != before_rope ||
        fseek(f, (long)(rope * sizeof(float)), SEEK_CUR) != 0 ||
        (!c.shared_classifier &&
         fread(m->w.wcls, sizeof(float), (size_t)c.vocab_size * c.dim, f) !=
             (size_t)c.vocab_size * c.dim)) {
        /* a short read with no error: the file got shorter after its size was checked */
        if (feof(f) && !ferror(f))
            snprintf(msg, msg_len,
                     "checkpoint '%s' ended at byte %ld of the %ld it had when opened: it "
                     "shrank while being read",
                     path, ftell(f), file_size);
        else
            snprintf(msg, msg_len, "checkpoint '%s': read failed: %s", path, strerror(errno));
        kvb_model_free(m);
        st = KVB_STATUS_IO;
        goto out;
    }
    for (size_t i = 0; i < m->n_floats; i++)
        if (!isfinite(m->mem[i])) {
            snprintf(msg, msg_len, "checkpoint '%s': weight %zu is not finite", path, i);
            kvb_model_free(m);
            st = KVB_STATUS_FORMAT;
            goto out;
        }
    if (max_seq_override > 0) m->cfg.max_seq = max_seq_override;
    st = KVB_STATUS_OK;
out:
    fclose(f);
    return st;
}

kvb_status kvb_model_save(const kvb_model *m, const char *path, char *msg, size_t msg_len)
{
    const kvb_model_config *c = &m->cfg;
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
    kvb_afile a;
    if (kvb_afile_open(&a, path, msg, msg_len)) return KVB_STATUS_IO;
    FILE *f = a.f;
    int32_t hdr[7] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                      c->shared_classifier ? c->vocab_size : -c->vocab_size, c->max_seq};
    size_t cls = c->shared_classifier ? 0 : (size_t)c->vocab_size * c->dim;
    size_t before_rope = m->n_floats - cls;
    int ok = fwrite(hdr, sizeof hdr, 1, f) == 1 &&
             fwrite(m->mem, sizeof(float), before_rope, f) == before_rope;
    for (int part = 0; ok && part < 2; part++)          /* freq_cis_real, then imag */
        for (int p = 0; ok && p < c->max_seq; p++)
            for (int i = 0; ok && i < c->head_dim / 2; i++) {
                double ang = p * pow(c->rope_theta, -2.0 * i / c->head_dim);
                float v = (float)(part ? sin(ang) : cos(ang));
                ok = fwrite(&v, sizeof v, 1, f) == 1;
            }
    if (ok && cls) ok = fwrite(m->w.wcls, sizeof(float), cls, f) == cls;
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

/* ---- activations ------------------------------------------------------- */

kvb_status kvb_state_init(kvb_state *s, const kvb_model_config *c)
{
    memset(s, 0, sizeof *s);
    size_t T = (size_t)c->max_seq, d = (size_t)c->dim, qd = (size_t)c->n_heads * c->head_dim,
           kvd = (size_t)c->n_kv_heads * c->head_dim, h = (size_t)c->hidden_dim;
    s->max_seq = c->max_seq;
    s->x = malloc(d * sizeof(float));
    s->xb = malloc(d * sizeof(float));
    s->xb2 = malloc(d * sizeof(float));
    s->q = malloc(qd * sizeof(float));
    s->att = malloc(qd * sizeof(float));
    s->k = malloc(kvd * sizeof(float));
    s->v = malloc(kvd * sizeof(float));
    s->hb = malloc(h * sizeof(float));
    s->hb2 = malloc(h * sizeof(float));
    s->logits = malloc((size_t)c->vocab_size * sizeof(float));
    s->inv_freq = malloc((size_t)(c->head_dim / 2) * sizeof(float));
    s->X = malloc(T * d * sizeof(float));
    s->XB = malloc(T * d * sizeof(float));
    s->Q = malloc(T * qd * sizeof(float));
    s->O = malloc(T * qd * sizeof(float));
    s->K = malloc(T * kvd * sizeof(float));
    s->V = malloc(T * kvd * sizeof(float));
    s->H1 = malloc(T * h * sizeof(float));
    s->H3 = malloc(T * h * sizeof(float));
    s->scratch = malloc(kvb_attend_causal_scratch_floats(c->n_heads, c->n_kv_heads, c->max_seq,
                                                         c->head_dim) * sizeof(float));
    float *all[] = {s->x, s->xb, s->xb2, s->q, s->att, s->k, s->v, s->hb, s->hb2, s->logits,
                    s->inv_freq, s->X, s->XB, s->Q, s->O, s->K, s->V, s->H1, s->H3, s->scratch};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!all[i]) { kvb_state_free(s); return KVB_STATUS_NO_MEMORY; }
    for (int i = 0; i < c->head_dim / 2; i++)
        s->inv_freq[i] = (float)pow(c->rope_theta, -2.0 * i / c->head_dim);
    return KVB_STATUS_OK;
}

void kvb_state_free(kvb_state *s)
{
    if (!s) return;
    float *all[] = {s->x, s->xb, s->xb2, s->q, s->att, s->k, s->v, s->hb, s->hb2, s->logits,
                    s->inv_freq, s->X, s->XB, s->Q, s->O, s->K, s->V, s->H1, s->H3, s->scratch};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    memset(s, 0, sizeof *s);
}

kvb_shape kvb_model_kv_shape(const kvb_model_config *c)
{
    kvb_shape sh = {c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->max_seq};
    return sh;
}

/* ---- building blocks --------------------------------------------------- */

static void rmsnorm(float *out, const float *x, const float *w, int n)
{
    float ss = kvb_dot_f32(x, x, n) / (float)n + 1e-5f;
    float r = 1.0f / sqrtf(ss);
    for (int i = 0; i < n; i++) out[i] = w[i] * (x[i] * r);
}

/* Rotates each (even, odd) pair of every head by pos * inv_freq[pair]. */
static void rope(float *x, int n_heads, int head_dim, int pos, const float *inv_freq)
{
    for (int i = 0; i < head_dim / 2; i++) {
        float a = (float)pos * inv_freq[i], c = cosf(a), s = sinf(a);
        for (int h = 0; h < n_heads; h++) {
            float *p = x + (size_t)h * head_dim + 2 * i;
            float x0 = p[0], x1 = p[1];
            p[0] = x0 * c - x1 * s;
            p[1] = x0 * s + x1 * c;
        }
    }
}

static void swiglu(float *h1, const float *h3, size_t n)
{
    for (size_t i = 0; i < n; i++) h1[i] = h1[i] / (1.0f + expf(-h1[i])) * h3[i];
}

/* y[out] = W[out][in] x[in] */
static void matvec(float *y, const float *W, const float *x, int out, int in)
{
    cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, W, in, x, 1, 0.0f, y, 1);
}

/* Y[T][out] (+)= X[T][in] W[out][in]^T */
static void matmul(float *Y, const float *X, const float *W, int T, int out, int in, float beta)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, out, in, 1.0f, X, in, W, in, beta, Y,
                out);
}

int kvb_argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static void logits_from(const kvb_model *m, kvb_state *s, const float *x)
{
    const kvb_model_config *c = &m->cfg;
    rmsnorm(s->xb, x, m->w.rms_final, c->dim);
    matvec(s->logits, m->w.wcls, s->xb, c->vocab_size, c->dim);
}

kvb_status kvb_forward_token(const kvb_model *m, kvb_state *s, kvb_cache *cache, int seq,
                             int token, int pos, kvb_step_timing *t)
{
    const kvb_model_config *c = &m->cfg;
    const kvb_model_weights *w = &m->w;
    if (token < 0 || token >= c->vocab_size || pos < 0 || pos >= c->max_seq)
        return KVB_STATUS_INVALID_ARG;
    if (!cache || (kvb_cache_backend(cache)->flags & KVB_BACKEND_RECOMPUTE))
        return KVB_STATUS_UNSUPPORTED;
    const int d = c->dim, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim,
              h = c->hidden_dim;
    uint64_t attn = 0;
    memcpy(s->x, w->token_embedding + (size_t)token * d, (size_t)d * sizeof(float));
    for (int l = 0; l < c->n_layers; l++) {
        rmsnorm(s->xb, s->x, w->rms_att + (size_t)l * d, d);
        matvec(s->q, w->wq + (size_t)l * qd * d, s->xb, qd, d);
        matvec(s->k, w->wk + (size_t)l * kvd * d, s->xb, kvd, d);
        matvec(s->v, w->wv + (size_t)l * kvd * d, s->xb, kvd, d);
        rope(s->q, c->n_heads, c->head_dim, pos, s->inv_freq);
        rope(s->k, c->n_kv_heads, c->head_dim, pos, s->inv_freq);
        uint64_t t0 = kvb_now_ns();
        kvb_status st = kvb_cache_append(cache, seq, l, s->k, s->v);
        if (st == KVB_STATUS_OK) st = kvb_cache_attend(cache, seq, l, s->q, s->att);
        attn += kvb_now_ns() - t0;
        if (st != KVB_STATUS_OK) return st;
        matvec(s->xb2, w->wo + (size_t)l * d * qd, s->att, d, qd);
        for (int i = 0; i < d; i++) s->x[i] += s->xb2[i];
        rmsnorm(s->xb, s->x, w->rms_ffn + (size_t)l * d, d);
        matvec(s->hb, w->w1 + (size_t)l * h * d, s->xb, h, d);
        matvec(s->hb2, w->w3 + (size_t)l * h * d, s->xb, h, d);
        swiglu(s->hb, s->hb2, (size_t)h);
        matvec(s->xb2, w->w2 + (size_t)l * d * h, s->hb, d, h);
        for (int i = 0; i < d; i++) s->x[i] += s->xb2[i];
    }
    logits_from(m, s, s->x);
    if (t) t->attn_ns = attn;
    return KVB_STATUS_OK;
}

kvb_status kvb_forward_seq(const kvb_model *m, kvb_state *s, kvb_cache *cache, int seq,
                           const int *tokens, int T, kvb_step_timing *t)
{
    const kvb_model_config *c = &m->cfg;
    const kvb_model_weights *w = &m->w;
    if (T < 1 || T > s->max_seq || T > c->max_seq) return KVB_STATUS_INVALID_ARG;
    for (int i = 0; i < T; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size) return KVB_STATUS_INVALID_ARG;
    const int store = cache && !(kvb_cache_backend(cache)->flags & KVB_BACKEND_RECOMPUTE);
    const int d = c->dim, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim,
              h = c->hidden_dim;
    uint64_t attn = 0;
    for (int i = 0; i < T; i++)
        memcpy(s->X + (size_t)i * d, w->token_embedding + (size_t)tokens[i] * d,
               (size_t)d * sizeof(float));
    for (int l = 0; l < c->n_layers; l++) {
        for (int i = 0; i < T; i++)
            rmsnorm(s->XB + (size_t)i * d, s->X + (size_t)i * d, w->rms_att + (size_t)l * d, d);
        matmul(s->Q, s->XB, w->wq + (size_t)l * qd * d, T, qd, d, 0.0f);
        matmul(s->K, s->XB, w->wk + (size_t)l * kvd * d, T, kvd, d, 0.0f);
        matmul(s->V, s->XB, w->wv + (size_t)l * kvd * d, T, kvd, d, 0.0f);
        for (int i = 0; i < T; i++) {
            rope(s->Q + (size_t)i * qd, c->n_heads, c->head_dim, i, s->inv_freq);
            rope(s->K + (size_t)i * kvd, c->n_kv_heads, c->head_dim, i, s->inv_freq);
        }
        uint64_t t0 = kvb_now_ns();
        for (int i = 0; store && i < T; i++) {
            const float *ki = s->K + (size_t)i * kvd, *vi = s->V + (size_t)i * kvd;
            kvb_status st = kvb_cache_append(cache, seq, l, ki, vi);
            if (st != KVB_STATUS_OK) return st;
        }
        kvb_attend_causal_gemm(s->Q, s->K, s->V, T, c->n_heads, c->n_kv_heads, c->head_dim, s->O,
                          s->scratch);
        attn += kvb_now_ns() - t0;
        matmul(s->X, s->O, w->wo + (size_t)l * d * qd, T, d, qd, 1.0f);    /* X += O Wo^T */
        for (int i = 0; i < T; i++)
            rmsnorm(s->XB + (size_t)i * d, s->X + (size_t)i * d, w->rms_ffn + (size_t)l * d, d);
        matmul(s->H1, s->XB, w->w1 + (size_t)l * h * d, T, h, d, 0.0f);
        matmul(s->H3, s->XB, w->w3 + (size_t)l * h * d, T, h, d, 0.0f);
        swiglu(s->H1, s->H3, (size_t)T * h);
        matmul(s->X, s->H1, w->w2 + (size_t)l * d * h, T, d, h, 1.0f);     /* X += H W2^T */
    }
    logits_from(m, s, s->X + (size_t)(T - 1) * d);
    if (t) t->attn_ns = attn;
    return KVB_STATUS_OK;
}
