/* cmd_run.c: kvbench run: decodes with every backend x storage type x
 * allocation mode and writes results/<run-id>/ through a .partial directory
 * renamed only when every file is complete. Every flag, the model shape and
 * each point are checked before anything is allocated or created. */
#define _GNU_SOURCE /* gmtime_r, isatty */
#include "cli.h"
#include "opts.h"
#include "../base/probe.h"
#include "../model/tokenizer.h"
#include "../harness/ceiling.h"
#include "../impls/kernels/quant.h"
#include "../harness/quality.h"
#include "../harness/results.h"
#include "../harness/run.h"
#include "../base/afile.h"
#include "../base/columns.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const kvb_cmd_spec kvb_run_spec = {
    .usage = "[flags]",
    .intro = "Prefills a prompt, then decodes --tokens tokens greedily with every backend x\n"
             "storage type x allocation mode, --reps times after a warm-up, timing each step.",
    .epilogue = "--dim, --hidden, --layers, --heads, --kv-heads, --head-dim, --vocab, --max-seq\n"
                "and --rope-theta each override one field of the preset. More --threads than\n"
                "online cores is warned about and recorded in meta.json.",
    .flags = kvb_opts_flags,
    .positional = NULL,
};

static void print_table(const kvb_point *pts, int n, const kvb_model_config *mc, int prompt_len)
{
    printf("%-24s %-9s %9s %9s %9s %11s %12s %12s %9s %9s\n", "point", "status", "ttft_ms",
           "step1_ms", "last_ms", "total_ms", "cache_used_B", "reserved_B", "exp_total",
           "exp_tail");
    for (int i = 0; i < n; i++) {
        char label[128];
        kvb_point_label(&pts[i], label, sizeof label);
        if (pts[i].status == KVB_POINT_SKIPPED || pts[i].status == KVB_POINT_FAILED) {
            printf("%-24s %-9s %s\n", label, kvb_point_status_name(pts[i].status), pts[i].reason);
            continue;
        }
        kvb_point_summary s;
        kvb_point_summarize(&pts[i], mc, prompt_len, 0, &s);
        printf("%-24s %-9s %9.3f %9.3f %9.3f %11.1f %12zu %12zu %9.2f %9.2f\n", label,
               kvb_point_status_name(pts[i].status), s.prefill_ns_median / 1e6,
               s.first_ns_median / 1e6, s.last_ns_median / 1e6, s.total_ns_median / 1e6, s.used,
               s.reserved, s.fit_total_b, s.fit_tail_b);
    }
}

/* For every point whose storage is lossy (f16, bf16, quantized): KL and top-1
 * agreement against the f32 contiguous cache over the run's tokens, and the
 * per-layer attend error; printed, and written as quality.csv into dir (a
 * temporary name, then renamed). 0 when there is nothing to do or all is
 * written; -1 with msg set otherwise. */
static int write_quality(const kvb_opts *c, const kvb_model *m, kvb_state *st, const kvb_point *pts,
                         int n_pts, const int *prompt, int P, const char *dir, char *msg,
                         size_t msg_len)
{
    int any = 0;
    for (int i = 0; i < n_pts; i++)
        any |= !(pts[i].backend->flags & KVB_BACKEND_RECOMPUTE) &&
               pts[i].opt.dtype != KVB_DTYPE_F32 && pts[i].status != KVB_POINT_SKIPPED &&
               pts[i].status != KVB_POINT_FAILED;
    if (!any) return 0;
    if (!c->quiet)
        fprintf(stderr, "quality: reference generation (contiguous f32), %d tokens...\n",
                c->tokens);
    kvb_quality_ref ref;
    if (kvb_quality_reference(m, st, prompt, P, c->tokens, &ref, msg, msg_len) != KVB_STATUS_OK)
        return -1;
    /* two tidy files with fixed columns, so runs' files concatenate: a row per
     * point x layer, and a row per point x layer x context length */
    const char *names[2] = {"quality.csv", "quality_ctx.csv"};
    kvb_afile out[2];
    FILE *f[2] = {NULL, NULL};
    int rc = 0;
    for (int k = 0; k < 2 && rc == 0; k++) {
        char path[KVB_PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        if (kvb_afile_open(&out[k], path, msg, msg_len))
            rc = -1;
        else
            f[k] = out[k].f;
    }
    if (rc == 0) {
        fprintf(f[0], KVB_QUALITY_HEAD "\n");
        fprintf(f[1], "point,backend,dtype,mode,layer,ctx,attn_rel_l2\n");
    }
    if (rc == 0 && !c->quiet) {
        printf("quality against contiguous/f32 over %d generated tokens: %d next-token "
               "distributions through "
               "the cache (teacher-forced; attend vs float64 per layer, mean over steps):\n",
               c->tokens, c->tokens - 1);
        printf("%-28s %10s %10s %10s %7s %12s %12s  rel_l2 at context", "point", "KL_mean",
               "KL_p99", "KL_max", "top1", "attn_rel_l2", "attn_maxabs");
    }
    int first = 1;
    for (int i = 0; i < n_pts && rc == 0; i++) {
        const kvb_point *p = &pts[i];
        if ((p->backend->flags & KVB_BACKEND_RECOMPUTE) || p->opt.dtype == KVB_DTYPE_F32 ||
            p->status == KVB_POINT_SKIPPED || p->status == KVB_POINT_FAILED)
            continue;
        kvb_quality q;
        if (kvb_quality_compare(m, st, p->backend, &p->opt, &ref, &q, msg, msg_len) !=
            KVB_STATUS_OK) {
            rc = -1;
            break;
        }
        char label[128], mode[32];
        kvb_point_label(p, label, sizeof label);
        kvb_point_mode(p, mode, sizeof mode);
        if (!c->quiet) {
            if (first) {
                for (int j = 0; j < q.n_ctx; j++) printf(" %d", q.ctx[j]);
                putchar('\n');
                first = 0;
            }
            double rel = 0, mabs = 0;
            for (int l = 0; l < q.n_layers; l++) {
                rel += q.rel_l2_mean[l] / q.n_layers;
                mabs = fmax(mabs, q.max_abs[l]);
            }
            printf("%-28s %10.2e %10.2e %10.2e %7.3f %12.2e %12.2e  layers 0..%d:", label,
                   q.kl_mean, q.kl_p99, q.kl_max, q.top1, rel, mabs, q.n_layers - 1);
            for (int j = 0; j < q.n_ctx; j++) {
                double r2 = 0;
                for (int l = 0; l < q.n_layers; l++)
                    r2 += q.rel_l2_at[(size_t)l * q.n_ctx + j] / q.n_layers;
                printf(" %.1e", r2);
            }
            putchar('\n');
        }
        for (int l = 0; l < q.n_layers; l++) {
            fprintf(f[0], "%s,%s,%s,%s,%d,%.6e,%.6e,%.6e,%.6e,%.6f,%d,%.6e,%.6e\n", label,
                    p->backend->name, kvb_dtype_name(p->opt.dtype), mode, q.n_steps, q.kl_mean,
                    q.kl_p50, q.kl_p99, q.kl_max, q.top1, l, q.rel_l2_mean[l], q.max_abs[l]);
            for (int j = 0; j < q.n_ctx; j++)
                fprintf(f[1], "%s,%s,%s,%s,%d,%d,%.6e\n", label, p->backend->name,
                        kvb_dtype_name(p->opt.dtype), mode, l, q.ctx[j],
                        q.rel_l2_at[(size_t)l * q.n_ctx + j]);
        }
        kvb_quality_free(&q);
    }
    kvb_quality_ref_free(&ref);
    for (int k = 0; k < 2; k++) {
        if (!f[k]) continue;
        if (rc)
            kvb_afile_abort(&out[k]);
        else if (kvb_afile_commit(&out[k], msg, msg_len))
            rc = -1;
    }
    return rc;
}

/* --prompt-ids: a comma list of token ids in [0, vocab), any length (the
 * string is read in place, never cut); *ids is malloc'd. */
static int parse_prompt_ids(const char *list, int vocab, int **ids, int *n)
{
    size_t count = 1;
    for (const char *p = list; *p; p++) count += *p == ',';
    if (count > (1u << 24))
        return kvb_usage_error("--prompt-ids: %zu ids; at most %d", count, 1 << 24);
    int *out = malloc(count * sizeof *out);
    if (!out) {
        fprintf(stderr, "kvbench: out of memory for %zu prompt ids\n", count);
        return 1;
    }
    const char *p = list;
    for (size_t i = 0; i < count; i++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[32], what[64];
        snprintf(what, sizeof what, "--prompt-ids item %zu", i + 1);
        if (len == 0) {
            free(out);
            return kvb_usage_error("%s is empty", what);
        }
        if (len >= sizeof item) {
            free(out);
            return kvb_usage_error("%s '%.*s...': not a token id", what, 20, p);
        }
        memcpy(item, p, len);
        item[len] = 0;
        long long v = 0;
        if (kvb_parse_int(what, item, 0, vocab - 1, &v)) {
            free(out);
            return KVB_EXIT_USAGE;
        }
        out[i] = (int)v;
        p = comma ? comma + 1 : p + len;
    }
    *ids = out;
    *n = (int)count;
    return 0;
}

int kvb_cmd_run(const kvb_cli *cli, const kvb_command *self, int argc, char **argv)
{
    kvb_opts c;
    int r = kvb_opts_parse(cli, self, argc, argv, &c);
    if (r) return r < 0 ? 0 : r;
    const char *cmdline = cli->cmdline;

    /* every list and name is checked before the model is built */
    char ml[256];
    char *mn[KVB_MAX_LIST];
    int nb, nd, nm;
    const kvb_backend *backs[KVB_MAX_LIST];
    kvb_dtype dts[KVB_MAX_LIST];
    kvb_alloc modes[KVB_MAX_LIST];
    if ((r = kvb_opts_backends_dtypes(&c, backs, &nb, dts, &nd)) != 0) return r;
    snprintf(ml, sizeof ml, "%s", c.modes);
    if (kvb_split_list("--mode", ml, mn, KVB_MAX_LIST, &nm)) return KVB_EXIT_USAGE;
    for (int i = 0; i < nm; i++)
        if (kvb_alloc_parse(mn[i], &modes[i]) != KVB_STATUS_OK)
            return kvb_usage_error("unknown mode '%s': allowed are grow, prealloc", mn[i]);
    int nk, na, nq, qk[KVB_MAX_LIST], blocks[KVB_MAX_LIST];
    kvb_key_axis axes[KVB_MAX_LIST];
    if ((r = kvb_parse_int_list("--block", c.blocks, 1, 256, blocks, &nk)) != 0) return r;
    if ((r = kvb_opts_key_axes(&c, axes, &na)) != 0) return r;
    if ((r = kvb_parse_enum_list("--qkernel", c.qkernels, kvb_qkernel_names, KVB_QKERNEL_COUNT,
                                   qk, &nq)) != 0) return r;
    if (nq != 1)
        return kvb_usage_error("--qkernel: run takes one kernel (attend compares several)");
    static const char *const fk_names[] = {"auto", "portable", "avx2", "avx512"};
    int fk[KVB_MAX_LIST], nf;
    if ((r = kvb_parse_enum_list("--kernel", c.kernels, fk_names, 4, fk, &nf)) != 0) return r;
    if (nf != 1) return kvb_usage_error("--kernel: run takes one kernel (attend compares several)");
    if (c.pool_mb && c.pool_blocks)
        return kvb_usage_error("--pool-mb and --pool-blocks exclude each other");

    /* the model's shape, the prompt and every point are checked before
     * anything is allocated or created */
    kvb_model_config mc;
    const char *source = NULL;
    if ((r = kvb_opts_model_config(&c, &mc, &source)) != 0) return r;
    int P = c.prompt, *prompt = NULL;
    if (c.prompt_text && c.prompt_ids)
        return kvb_usage_error("--prompt-text and --prompt-ids exclude each other");
    if (c.prompt_ids && (r = parse_prompt_ids(c.prompt_ids, mc.vocab_size, &prompt, &P)) != 0)
        return r;
    struct kvb_tokenizer *tk = NULL;
    if (c.prompt_text &&
        (r = kvb_opts_prompt_text(&c, mc.vocab_size, &prompt, &P, &tk)) != 0)
        return r;
    if ((long long)P + c.tokens > mc.max_seq) {
        free(prompt);
        kvb_tokenizer_free(tk);
        return kvb_usage_error(
            "prompt %d + tokens %d = %lld positions exceed the model's max-seq %d: "
            "lower them or raise --max-seq",
            P, c.tokens, (long long)P + c.tokens, mc.max_seq);
    }
    if (c.key_outliers > mc.head_dim / 2) {
        free(prompt);
        kvb_tokenizer_free(tk);
        return kvb_usage_error("--key-outliers %d: at most head_dim / 2 = %d channel pairs",
                               c.key_outliers, mc.head_dim / 2);
    }
    /* a point per backend x storage type x (allocation mode, or block size for
     * a paged backend); nocache stores nothing, so it is one point */
    kvb_point *pts = calloc((size_t)nb * nd * (size_t)(nm + nk + na * nm),
                            sizeof *pts); /* enough for any kind */
    int n_pts = 0, n_runnable = 0, any_quant = 0, rc = 0, renamed = 0, made = 0;
    if (!pts) {
        free(prompt);
        kvb_tokenizer_free(tk);
        fprintf(stderr, "kvbench: out of memory\n");
        return 1;
    }
    kvb_shape kv_shape = kvb_model_kv_shape(&mc);
    double kv_token_f32 = 2.0 * kv_shape.n_layers * kv_shape.n_kv_heads * kv_shape.head_dim * 4;
    double cache_bytes = 0; /* the largest one point's cache may take */
    for (int i = 0; i < nb; i++) {
        int recompute = (backs[i]->flags & KVB_BACKEND_RECOMPUTE) != 0;
        int paged = (backs[i]->flags & KVB_BACKEND_PAGED) != 0;
        int quant = (backs[i]->flags & KVB_BACKEND_QUANT) != 0;
        for (int j = 0; j < (recompute ? 1 : nd); j++) {
            /* a quantized point per key axis x allocation mode */
            int qt = quant && kvb_dtype_is_quant(dts[j]);
            any_quant |= qt;
            for (int k = 0; k < (recompute ? 1 : paged ? nk : qt ? na * nm : quant ? 1 : nm); k++) {
                if (!kvb_pair_wanted(backs[i], dts, nd, j)) continue;
                kvb_options o = {.dtype = recompute ? KVB_DTYPE_F32 : dts[j],
                                 .alloc =
                                     recompute || paged ? KVB_ALLOC_GROW : modes[qt ? k % nm : k],
                                 .max_seqs = 1,
                                 .block_tokens = paged ? blocks[k] : 0,
                                 .pool_blocks = (size_t)c.pool_blocks,
                                 .pool_bytes = (size_t)c.pool_mb << 20,
                                 .threads = c.threads};
                kvb_opts_case(&c, mc.head_dim, qt ? axes[k / nm] : KVB_KEY_AXIS_DEFAULT, &o);
                if (quant) o.qkernel = kvb_qkernel_names[qk[0]];
                o.kernel = fk_names[fk[0]];
                if (kvb_point_init(&pts[n_pts], backs[i], &o, c.tokens, c.reps) != KVB_STATUS_OK) {
                    fprintf(stderr, "kvbench: out of memory for %d x %d step records\n", c.reps,
                            c.tokens);
                    rc = 1;
                    goto done;
                }
                kvb_point *p = &pts[n_pts++];
                char why[256];
                if (kvb_backend_supports(backs[i], &kv_shape, &o, why, sizeof why) !=
                    KVB_STATUS_OK) {
                    p->status = KVB_POINT_SKIPPED; /* recorded as skipped, with the reason */
                    snprintf(p->reason, sizeof p->reason, "%s", why);
                    continue;
                }
                n_runnable++;
                double es =
                    recompute ? 0 : kvb_dtype_bits(o.dtype, o.group) / 8.0 / 4.0; /* of f32 */
                double positions =
                    o.alloc == KVB_ALLOC_PREALLOC ? mc.max_seq : 2.0 * (P + c.tokens);
                double bytes = kv_token_f32 * es * positions +
                               (qt ? kv_token_f32 * (o.residual + o.group) : 0);
                if (paged) {
                    double block = kv_token_f32 * es * o.block_tokens;
                    bytes = c.pool_mb       ? (double)c.pool_mb * 1048576.0
                            : c.pool_blocks ? (double)c.pool_blocks * block
                                            : bytes;
                }
                if (bytes > cache_bytes) cache_bytes = bytes;
            }
        }
    }
    kvb_opts_note_group(&c, mc.head_dim, any_quant);
    if (n_runnable == 0) {
        for (int i = 0; i < n_pts; i++) {
            char label[128];
            kvb_point_label(&pts[i], label, sizeof label);
            fprintf(stderr, "kvbench: skipped %s: %s\n", label, pts[i].reason);
        }
        fprintf(stderr, "kvbench: nothing to measure: every point is unsupported (exit %d)\n",
                KVB_EXIT_NOTHING);
        rc = KVB_EXIT_NOTHING;
        goto done;
    }
    {
        /* weights, activations for max_seq positions, the largest cache, the records */
        double hd = (double)mc.n_heads * mc.head_dim, kvd = (double)mc.n_kv_heads * mc.head_dim;
        double act =
            4.0 * mc.max_seq * (2.0 * mc.dim + 2 * hd + 2 * kvd + 2.0 * mc.hidden_dim + mc.max_seq);
        kvb_wtype wt;
        if ((rc = kvb_opts_wtype(&c, &wt)) != 0) goto done;
        double need = kvb_opts_weight_bytes(&c, &mc, wt) + act + cache_bytes +
                      (double)n_pts * c.reps * c.tokens * sizeof(kvb_step_record);
        char what[160];
        snprintf(what, sizeof what,
                 "this run (weights, activations, a cache of %.2f GB, step records)",
                 cache_bytes / 1e9);
        if ((rc = kvb_check_memory(what, need)) != 0) goto done;
    }
    int oversubscribed = kvb_threads_oversubscribed(c.threads);

    /* the result directory: must not exist (nor be a dangling link, which
     * rename would replace) and must be creatable now, not after an hour of work */
    char final_dir[4096], partial[4200] = "", run_id[128];
    time_t now = time(NULL);
    struct tm tmv;
    struct stat sb;
    gmtime_r(&now, &tmv);
    strftime(run_id, sizeof run_id, "%Y%m%d-%H%M%S", &tmv);
    if (c.out) {
        snprintf(final_dir, sizeof final_dir, "%s", c.out);
        const char *slash = strrchr(final_dir, '/');
        snprintf(run_id, sizeof run_id, "%s", slash ? slash + 1 : final_dir);
        kvb_partial_name(final_dir, partial, sizeof partial);
        if (lstat(final_dir, &sb) == 0) {
            rc = kvb_usage_error(
                "output '%s' exists%s: kvbench never overwrites a run; choose another --out",
                final_dir, S_ISLNK(sb.st_mode) ? " (a symbolic link)" : "");
            goto done;
        }
        if (lstat(partial, &sb) == 0) {
            rc = kvb_usage_error(
                "'%s' exists: an earlier run into this --out was interrupted; remove it or "
                "choose another --out",
                partial);
            goto done;
        }
    }
    if (c.dry_run) {
        printf("dry run: %d point%s (%d runnable), model %s, %d + %d positions; flags valid, "
               "nothing measured\n",
               n_pts, n_pts == 1 ? "" : "s", n_runnable, source, P, c.tokens);
        goto done;
    }
    if (c.out) {
        if (mkdir(partial, 0777) != 0) {
            rc = kvb_usage_error("cannot create output directory '%s': %s", partial,
                                 strerror(errno));
            goto done;
        }
    } else {
        if (mkdir("results", 0777) != 0 && errno != EEXIST) {
            rc = kvb_usage_error("cannot create 'results/': %s", strerror(errno));
            goto done;
        }
        char base[128];
        snprintf(base, sizeof base, "%s-%s", run_id,
                 c.checkpoint ? "ckpt"
                 : c.model    ? "model"
                 : c.preset   ? c.preset
                              : "stories15m");
        snprintf(run_id, sizeof run_id, "%s", base);
        /* a run started in the same second, or interrupted, holds the name: take the next */
        for (int k = 2;; k++) {
            snprintf(final_dir, sizeof final_dir, "results/%s", run_id);
            kvb_partial_name(final_dir, partial, sizeof partial);
            if (lstat(final_dir, &sb) != 0) {
                if (mkdir(partial, 0777) == 0) break;
                if (errno != EEXIST) {
                    rc = kvb_usage_error("cannot create output directory '%s': %s", partial,
                                         strerror(errno));
                    goto done;
                }
            }
            if (k > 1000) {
                rc = kvb_usage_error("no free run name under results/ for '%s'", base);
                goto done;
            }
            snprintf(run_id, sizeof run_id, "%s-%d", base, k);
        }
    }
    made = 1;

    kvb_model m = {0};
    kvb_state st = {0};
    kvb_topo topo;
    kvb_pin_set pins;
    int have_topo = 0;
    if ((rc = kvb_opts_build_model(&c, &mc, &m)) != 0) goto done_model;
    if (!prompt) {
        /* seeded ids after a BOS of 1 as in llama2.c */
        prompt = malloc((size_t)P * sizeof *prompt);
        uint64_t s = (uint64_t)c.seed * 2654435761u + 12345u;
        for (int i = 0; prompt && i < P; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            prompt[i] =
                i == 0 ? (m.cfg.vocab_size > 1) : (int)((s >> 33) % (uint64_t)m.cfg.vocab_size);
        }
        if (!prompt) {
            fprintf(stderr, "kvbench: out of memory\n");
            rc = 1;
            goto done_model;
        }
    }
    /* --threads: OpenBLAS's, and the decode step's matvec threads */
    if (kvb_state_init(&st, &m.cfg, c.threads) != KVB_STATUS_OK) {
        fprintf(stderr, "kvbench: out of memory for activations (max-seq %d) or matvec threads\n",
                m.cfg.max_seq);
        rc = 1;
        goto done_model;
    }
    char mvmsg[256];
    if (kvb_state_set_matvec(&st, &m, c.matvec, mvmsg, sizeof mvmsg) != KVB_STATUS_OK) {
        fprintf(stderr, "kvbench: %s\n", mvmsg);
        rc = KVB_EXIT_USAGE;
        goto done_model;
    }
    openblas_set_num_threads(c.threads);
    if (!c.quiet)
        fprintf(stderr, "weights: %s, %.1f MB (what a decode step reads); %d matvec thread%s\n",
                kvb_model_wtype_name(&m), (double)m.weight_bytes / 1e6, c.threads,
                c.threads == 1 ? "" : "s");
    if (c.key_outliers) {
        char omsg[256];
        if (kvb_model_key_outliers(&m, c.key_outliers, omsg, sizeof omsg) != KVB_STATUS_OK) {
            fprintf(stderr, "kvbench: %s\n", omsg);
            rc = KVB_EXIT_USAGE;
            goto done_model;
        }
    }

    kvb_ceilings ceil;
    int have_ceil = 0;
    if (!c.no_ceilings) {
        if (!c.quiet) fprintf(stderr, "measuring read bandwidth and sgemm ceilings...\n");
        /* the second array is what one cached decode step streams at the last
         * position: every weight once plus the f32 K/V of the whole context */
        size_t ws = (size_t)m.weight_bytes + (size_t)(kv_token_f32 * (P + c.tokens));
        /* an array as large as an 8B model would push the model's own pages (a mapped
         * file's) out of memory: past a quarter of what is free, the 1 GiB figure alone */
        if (ws > kvb_mem_available() / 4) ws = 0;
        have_ceil = kvb_measure_ceilings(&ceil, 0, ws, 7) == 0;
    }
    /* the sgemm ceiling above ran on --threads of OpenBLAS's; the model's passes
     * split their sgemm over the state's pool instead, one OpenBLAS thread each */
    openblas_set_num_threads(1);
    char topo_msg[256];
    have_topo = kvb_topo_init(&topo, topo_msg, sizeof topo_msg) == KVB_STATUS_OK;
    if ((rc = kvb_opts_pin(&c, have_topo ? &topo : NULL, &pins)) != 0) goto done_model;
    for (int i = 0; i < n_pts; i++) kvb_opts_pin_workers(&pts[i].opt, &pins);
    kvb_gen_config g = {
        prompt, P, c.tokens, c.reps, c.warmup, c.time_budget, !c.quiet && isatty(STDERR_FILENO)};
    uint64_t started = (uint64_t)now;
    int failed = 0, measured = 0;
    for (int i = 0; i < n_pts; i++) {
        char label[128];
        kvb_point_label(&pts[i], label, sizeof label);
        kvb_status s = pts[i].status == KVB_POINT_SKIPPED
                           ? KVB_STATUS_OK
                           : kvb_run_point(&m, &st, &pts[i], &g, i, n_pts);
        if (pts[i].status == KVB_POINT_SKIPPED)
            fprintf(stderr, "kvbench: skipped %s: %s\n", label, pts[i].reason);
        else if (s != KVB_STATUS_OK) {
            fprintf(stderr, "kvbench: %s failed: %s\n", label, pts[i].reason);
            failed = 1;
        } else {
            measured++;
            if (pts[i].status == KVB_POINT_CUT_SHORT)
                fprintf(stderr, "kvbench: %s cut short: %s\n", label, pts[i].reason);
        }
    }

    kvb_run_info info = {run_id,
                         cmdline,
                         source,
                         (uint64_t)c.seed,
                         &m.cfg,
                         kvb_model_wtype_name(&m),
                         m.weight_bytes,
                         m.step_bytes,
                         &g,
                         openblas_get_num_threads(),
                         have_ceil ? &ceil : NULL,
                         started,
                         have_topo ? &topo : NULL,
                         &pins,
                         c.threads,
                         oversubscribed};
    char msg[2 * KVB_PATH_MAX + 128]; /* two paths and a cause */
    /* every measurement is written before anything can fail on it; a write
     * that fails (a full disk) keeps what was written in the .partial
     * directory, never renamed to look complete, and the table is printed */
    if (kvb_results_write(partial, &info, pts, n_pts, msg, sizeof msg) != 0 ||
        write_quality(&c, &m, &st, pts, n_pts, prompt, P, partial, msg, sizeof msg) != 0) {
        fprintf(
            stderr,
            "kvbench: %s\nkvbench: the results are incomplete; what was written stays in '%s'\n",
            msg, partial);
        print_table(pts, n_pts, &m.cfg, P);
        renamed = 1; /* kept, not renamed */
        rc = 1;
        goto done_model;
    }
    /* the results are complete: from here on they are kept whatever happens */
    renamed = 1;
    if (lstat(final_dir, &sb) == 0) {
        fprintf(stderr,
                "kvbench: '%s' appeared during the run; the complete results stay in '%s'\n",
                final_dir, partial);
        rc = 1;
        goto done_model;
    }
    if (kvb_partial_publish(partial, final_dir, msg, sizeof msg)) {
        fprintf(stderr, "kvbench: %s; the complete results stay there\n", msg);
        rc = 1;
        goto done_model;
    }
    if (!c.quiet) print_table(pts, n_pts, &m.cfg, P);
    if (!c.quiet) kvb_print_continuation(tk, c.prompt_text, pts, n_pts);
    printf("results: %s\n", final_dir);
    rc = failed ? 1 : measured ? 0 : KVB_EXIT_NOTHING;
    if (rc == KVB_EXIT_NOTHING)
        fprintf(stderr, "kvbench: nothing measured: every point was skipped (exit %d)\n",
                KVB_EXIT_NOTHING);
done_model:
    kvb_state_free(&st);
    kvb_model_free(&m);
    if (have_topo) kvb_topo_free(&topo);
done:
    if (!renamed && made) kvb_results_remove(partial);
    for (int i = 0; i < n_pts; i++) kvb_point_free(&pts[i]);
    free(pts);
    free(prompt);
    kvb_tokenizer_free(tk);
    return rc;
}
