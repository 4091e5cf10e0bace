/* testlib.c: the shared part of the test binaries (see testlib.h for the contract).
 * The runner keeps the one test binary's behaviour from before the split: tests run in a
 * forked child so that a crash or a kill still leaves no temporary directory, and a
 * parametric test always runs, with its cases filtered, unless its own name matches. */
#define _XOPEN_SOURCE 700 /* nftw, sigaction, mkdtemp */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"
#include "../impls/kernels/quant.h"

typedef struct kvbt_ctx {
    regex_t re;
    int has_re;
    char tmpdir[256];
} kvbt_ctx;

/* ---- running ----------------------------------------------------------------- */

int kvbt_case(void **state, char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    if (!state) return 1;
    const kvbt_ctx *t = *state;
    return !t->has_re || regexec(&t->re, buf, 0, NULL, 0) == 0;
}

const char *kvbt_tmpdir(void **state) { return ((const kvbt_ctx *)*state)->tmpdir; }

void kvbt_tmp_path(void **state, const char *name, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", kvbt_tmpdir(state), name);
}

void kvbt_write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

void *kvbt_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    void *p = malloc(*n ? *n : 1);
    assert_int_equal(fread(p, 1, *n, f), *n);
    fclose(f);
    return p;
}

static volatile sig_atomic_t forward_to; /* the test child, for the parent's handler */

static void forward_signal(int sig)
{
    if (forward_to > 0) kill((pid_t)forward_to, sig);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path); /* best effort: go on with the rest */
    return 0;
}

/* Waits for the test child (forwarding SIGINT/SIGTERM/SIGHUP to it), removes
 * the temporary directory and returns the child's status. */
static int supervise(const char *suite, pid_t child, const char *dir)
{
    forward_to = child;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    fprintf(stderr, "test_%s: the tests were ended by signal %d\n", suite, WTERMSIG(status));
    return 128 + WTERMSIG(status);
}

int kvbt_main(int argc, char **argv, const char *suite, const kvbt_test *all, size_t n_all)
{
    static kvbt_ctx ctx, unfiltered; /* handed to the tests as their initial state */
    const char *filter = argc > 1 ? argv[1] : getenv("KVB_TEST_FILTER");
    if (filter && *filter) {
        if (regcomp(&ctx.re, filter, REG_EXTENDED | REG_NOSUB) != 0) {
            fprintf(stderr, "test_%s: '%s' is not a valid extended regex\n", suite, filter);
            return 2;
        }
        ctx.has_re = 1;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(ctx.tmpdir, sizeof ctx.tmpdir, "%s/kvbench-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(ctx.tmpdir)) {
        fprintf(stderr, "test_%s: cannot create %s: %s\n", suite, ctx.tmpdir, strerror(errno));
        return 2;
    }
    /* the tests run in a child; this process only waits and removes the
     * temporary directory, however the child ends (a crash, a kill).
     * INT/TERM/HUP are held until the parent's handlers stand, so none falls
     * between the fork and them (it would end the parent and leave the directory) */
    sigset_t hold, old;
    sigemptyset(&hold);
    sigaddset(&hold, SIGINT);
    sigaddset(&hold, SIGTERM);
    sigaddset(&hold, SIGHUP);
    sigprocmask(SIG_BLOCK, &hold, &old);
    pid_t child = fork();
    if (child == 0) sigprocmask(SIG_SETMASK, &old, NULL);
    if (child < 0) {
        if (ctx.has_re) regfree(&ctx.re);
        rmdir(ctx.tmpdir);
        return 2;
    }
    if (child > 0) {
        if (ctx.has_re) regfree(&ctx.re);
        return supervise(suite, child, ctx.tmpdir);
    }
    unfiltered = ctx; /* for a parametric test selected by its own name */
    unfiltered.has_re = 0;
    struct CMUnitTest *tests = calloc(n_all ? n_all : 1, sizeof *tests);
    size_t n = 0;
    for (size_t i = 0; i < n_all; i++) {
        int name_hit = !ctx.has_re || regexec(&ctx.re, all[i].name, 0, NULL, 0) == 0;
        if (name_hit || all[i].parametric) {
            struct CMUnitTest u = {all[i].name, all[i].fn, NULL, NULL,
                                   name_hit ? &unfiltered : &ctx};
            tests[n++] = u;
        }
    }
    int failed = _cmocka_run_group_tests(suite, tests, n, NULL, NULL);
    free(tests);
    if (ctx.has_re) regfree(&ctx.re);
    return failed ? 1 : 0;
}

/* ---- inputs -------------------------------------------------------------------- */

float kvbt_urand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (float)((*s >> 40) * (2.0 / 16777216.0) - 1.0);
}

void kvbt_fill(float *x, size_t n, float scale, uint64_t *seed)
{
    for (size_t i = 0; i < n; i++) x[i] = scale * kvbt_urand(seed);
}

const kvbt_heads kvbt_head_shapes[3] = {{8, 8}, {8, 2}, {8, 1}}; /* MHA, GQA 4:1, MQA */
const int kvbt_head_dims[3] = {16, 64, 128};
const int kvbt_contexts[6] = {1, 2, 17, 48, 768, 1000};

/* ---- the float64 reference -------------------------------------------------------- */

void kvbt_ref_attend(const float *q, const float *k, const float *v, int ctx, int nh, int nkv,
                     int hd, double *out)
{
    int g = nh / nkv;
    double *s = malloc((size_t)ctx * sizeof *s);
    for (int h = 0; h < nh; h++) {
        int j = h / g;
        double mx = -INFINITY, sum = 0;
        for (int t = 0; t < ctx; t++) {
            double d = 0;
            for (int i = 0; i < hd; i++)
                d += (double)q[h * hd + i] * k[((size_t)t * nkv + j) * hd + i];
            s[t] = d / sqrt((double)hd);
            if (s[t] > mx) mx = s[t];
        }
        for (int t = 0; t < ctx; t++) {
            s[t] = exp(s[t] - mx);
            sum += s[t];
        }
        for (int i = 0; i < hd; i++) {
            double acc = 0;
            for (int t = 0; t < ctx; t++) acc += s[t] * v[((size_t)t * nkv + j) * hd + i];
            out[h * hd + i] = acc / sum;
        }
    }
    free(s);
}

double kvbt_rel_l2(const float *x, const double *ref, size_t n)
{
    double e = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        double d = x[i] - ref[i];
        e += d * d;
        r += ref[i] * ref[i];
        if (!isfinite(x[i])) return INFINITY;
    }
    return sqrt(e / (r > 0 ? r : 1));
}

double kvbt_rel_l2_rows(const float *x, const float *ref, int rows, size_t n)
{
    double worst = 0;
    for (int r = 0; r < rows; r++) {
        double e = 0, s = 0;
        for (size_t i = 0; i < n; i++) {
            double d = (double)x[(size_t)r * n + i] - ref[(size_t)r * n + i];
            e += d * d;
            s += (double)ref[(size_t)r * n + i] * ref[(size_t)r * n + i];
            if (!isfinite(x[(size_t)r * n + i])) return INFINITY;
        }
        double q = sqrt(e / (s > 0 ? s : 1));
        worst = q > worst ? q : worst;
    }
    return worst;
}

/* Inputs as the tests make them (keys and values in [-1,1), queries in [-2,2)):
 * f32 is at rounding level; f16 keeps 11 significant bits, bf16 keeps 8. The
 * quantized types: about 1.4x the worst measured over the whole grid (q8 5.7e-3
 * with the integer kernel's rounded query, q4 9.3e-2, q4_1 8.6e-2, q2 0.43 with
 * uniform values: 4 levels leave an rms error of a third of the values' rms, and
 * the average over tokens keeps it). */
double kvbt_tolerance(kvb_dtype dt)
{
    switch (dt) {
    case KVB_DTYPE_F16: return 2e-3;
    case KVB_DTYPE_BF16: return 1.5e-2;
    case KVB_DTYPE_Q8: return 8e-3;
    case KVB_DTYPE_Q4: return 0.13;
    case KVB_DTYPE_Q4_1: return 0.12;
    case KVB_DTYPE_Q2: return 0.6;
    default: return 2e-5;
    }
}

void kvbt_worst_by_type(const double worst[KVB_DTYPE_COUNT], char *buf, size_t n)
{
    size_t at = 0;
    buf[0] = '\0';
    for (int dt = 0; dt < KVB_DTYPE_COUNT && at < n; dt++)
        if (worst[dt] > 0)
            at += (size_t)snprintf(buf + at, n - at, " %s %.2g", kvb_dtype_name((kvb_dtype)dt),
                                   worst[dt]);
}

/* ---- caches ----------------------------------------------------------------------- */

kvb_cache *kvbt_cache_new(const kvb_backend *b, const kvb_shape *shape, const kvb_options *opt)
{
    kvb_cache *c = NULL;
    char msg[256] = "";
    if (kvb_cache_create(&c, b, shape, opt, msg, sizeof msg) != KVB_STATUS_OK)
        fail_msg("%s: create: %s", b->name, msg);
    return c;
}

kvb_memory kvbt_seq_memory(const kvb_cache *c, int seq)
{
    kvb_memory m;
    kvb_status st = kvb_cache_seq_memory(c, seq, &m);
    if (st != KVB_STATUS_OK)
        fail_msg("%s: seq_memory(%d): %s", kvb_cache_backend(c)->name, seq, kvb_status_str(st));
    return m;
}

kvb_status kvbt_read_back(const kvb_cache *c, int seq, int layer, float *k, float *v)
{
    const kvb_shape *s = kvb_cache_shape(c);
    const size_t hd = (size_t)s->head_dim, nkv = (size_t)s->n_kv_heads;
    const int n = kvb_cache_length(c, seq, layer);
    for (int t = 0; t < n; t++)
        for (size_t h = 0; h < nkv; h++) {
            size_t at = ((size_t)t * nkv + h) * hd;
            kvb_status st = kvb_cache_read_kv(c, seq, layer, (int)h, t, k + at, v + at);
            if (st != KVB_STATUS_OK) return st;
        }
    return KVB_STATUS_OK;
}

void kvbt_query_as_attended(const kvb_backend *b, const kvb_shape *s, const kvb_options *o,
                            const float *q, float *out)
{
    const size_t n = (size_t)s->n_heads * s->head_dim;
    const kvb_qkernels *k = NULL;
    if (b->flags & KVB_BACKEND_QUANT)
        k = kvb_qkernels_find(kvb_backend_kernel(b, s, o), s->head_dim, o->group ? o->group : 32,
                              NULL, 0);
    if (!k || !k->rounds_query ||
        kvb_key_axis_resolve(o->dtype, o->key_axis) != KVB_KEY_AXIS_TOKEN) {
        memcpy(out, q, n * sizeof *out);
        return;
    }
    for (int h = 0; h < s->n_heads; h++)
        kvb_qround_query(q + (size_t)h * s->head_dim, s->head_dim, out + (size_t)h * s->head_dim);
}

/* ---- planted wrong backends ------------------------------------------------------------ */

/* The state is the wrapped cache itself, so no file needs this one's struct. */
kvb_cache *kvbt_wrap_inner(const kvb_backend_ctx *w) { return (kvb_cache *)w; }

kvb_status kvbt_wrap_create(kvb_backend_ctx **out, const kvb_shape *s, const kvb_options *o,
                            char *msg, size_t msg_len)
{
    kvb_cache *c = NULL;
    kvb_status st = kvb_cache_create(&c, kvb_backend_find("contiguous"), s, o, msg, msg_len);
    *out = (kvb_backend_ctx *)c;
    return st;
}
void kvbt_wrap_destroy(kvb_backend_ctx *w) { kvb_cache_destroy(kvbt_wrap_inner(w)); }
kvb_status kvbt_wrap_append(kvb_backend_ctx *w, int seq, int layer, const float *k,
                            const float *v)
{
    return kvb_cache_append(kvbt_wrap_inner(w), seq, layer, k, v);
}
kvb_status kvbt_wrap_attend(kvb_backend_ctx *w, int seq, int layer, const float *q, float *out)
{
    return kvb_cache_attend(kvbt_wrap_inner(w), seq, layer, q, out);
}
kvb_memory kvbt_wrap_memory(const kvb_backend_ctx *w)
{
    return kvb_cache_memory(kvbt_wrap_inner(w));
}
int kvbt_wrap_length(const kvb_backend_ctx *w, int seq, int layer)
{
    return kvb_cache_length(kvbt_wrap_inner(w), seq, layer);
}
kvb_status kvbt_wrap_seq_fork(kvb_backend_ctx *w, int parent, int child)
{
    return kvb_cache_seq_fork(kvbt_wrap_inner(w), parent, child);
}
kvb_status kvbt_wrap_seq_clear(kvb_backend_ctx *w, int seq)
{
    return kvb_cache_seq_clear(kvbt_wrap_inner(w), seq);
}
kvb_status kvbt_wrap_read_kv(const kvb_backend_ctx *w, int seq, int layer, int kv_head,
                             int token, float *k, float *v)
{
    return kvb_cache_read_kv(kvbt_wrap_inner(w), seq, layer, kv_head, token, k, v);
}

kvb_model_config kvbt_shape_for(kvb_model_config c, kvb_wtype wt)
{
    const int b = kvb_wtype_traits_of(wt)->block;
    if (c.dim % b == 0 && c.hidden_dim % b == 0 && (c.n_heads * c.head_dim) % b == 0) return c;
    c.dim = 256;
    c.hidden_dim = 512;
    c.head_dim = 256 / c.n_heads;
    return c;
}
