/* cmd_ppl.c: kvbench ppl: perplexity and divergence of every cache type on the
 * same text windows (harness/ppl.h), as llama-perplexity with its cache-type
 * flags. The model is a preset's seeded random weights, a checkpoint or a model
 * file (--model); the text is tokenized with --tokenizer's or the model file's
 * own vocabulary where it has one, else read as bytes (token = byte + 3:
 * Llama's byte tokens <0x00>..<0xFF>).
 * With --out DIR: DIR/ppl.csv and the report's plot of perplexity increase
 * against bytes per token, written through DIR.partial. */
#define _GNU_SOURCE
#include "cli.h"
#include "opts.h"
#include "../analysis/report.h"
#include "../base/afile.h"
#include "../base/probe.h"
#include "../base/textio.h"
#include "../base/columns.h"
#include "../harness/results.h"
#include "../harness/ppl.h"
#include "../model/tokenizer.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const kvb_cmd_spec kvb_ppl_spec = {
    .usage = "[flags]",
    .intro = "Perplexity of the model over a text, cut into windows of --ctx tokens (loss over\n"
             "the second half of each), with every cache backend and storage type on the same\n"
             "windows, every scored position attending through the cache; KL and top-1\n"
             "agreement against the f32 contiguous cache (always the first case).",
    .epilogue = "ppl = exp(mean NLL) +/- ppl x stddev(NLL) / sqrt(n); dppl = ppl / the f32\n"
                "cache's - 1; KL(f32 cache || this cache) of the next-token distributions, in\n"
                "nats, mean and p99; top1 = fraction of positions whose most likely token is\n"
                "the f32 cache's; B/token = cache bytes holding a window's K/V / ctx.\n"
                "Random weights (a preset, no file) give a model that predicts nothing: its\n"
                "perplexity is near or above the vocabulary size, and only the differences\n"
                "between caches mean something. Exit 3 when every case but the reference was\n"
                "skipped.",
    .flags = kvb_opts_flags,
};

enum { MAX_CASES = 2 * KVB_MAX_LIST * KVB_MAX_LIST };

/* The text file's bytes (at most 64 MiB, a regular file), malloc'd. */
static int read_text(const char *path, char **out, size_t *n)
{
    /* stat first: a FIFO or device would block or never end */
    struct stat sb;
    if (stat(path, &sb) != 0)
        return kvb_usage_error("--text-file '%s': %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return kvb_usage_error("--text-file '%s' is not a regular file", path);
    if (sb.st_size > (1 << 26))
        return kvb_usage_error("--text-file '%s' is %lld bytes: at most %d (64 MiB)", path,
                               (long long)sb.st_size, 1 << 26);
    if (!(*out = kvb_slurp_len(path, n)))
        return kvb_usage_error("--text-file '%s': %s", path, strerror(errno));
    if (*n > (1u << 26)) *n = 1u << 26;       /* grew after the stat */
    return 0;
}

/* The text as tokens: with --tokenizer's vocab, or --model's own where it has
 * one (said), else its bytes + 3 (Llama's byte tokens <0x00>..<0xFF>). With a
 * BOS token each window starts with it, as llama-perplexity's chunks do. */
static int tokenize(const kvb_opts *c, const kvb_model_config *mc, int ctx, int **out, int *n_out,
                    char *how, size_t how_len)
{
    char *text, msg[512];
    size_t n;
    int r = read_text(c->text_file, &text, &n);
    if (r) return r;
    kvb_tokenizer *tk = NULL;
    const char *vocab = c->tokenizer ? c->tokenizer : c->model;
    kvb_status st = vocab ? kvb_tokenizer_open(&tk, vocab, mc->vocab_size, msg, sizeof msg)
                          : KVB_STATUS_UNSUPPORTED;
    if (st != KVB_STATUS_OK && c->tokenizer) {
        free(text);
        return kvb_usage_error("--tokenizer: %s", msg);
    }
    if (st != KVB_STATUS_OK && vocab)
        fprintf(stderr, "kvbench: note: no vocab in --model (%s): the text is read as bytes\n",
                msg);
    if (tk) {
        st = kvb_tokenizer_encode_alloc(tk, text, n, 0, out, n_out, msg, sizeof msg);
        int bos = kvb_tokenizer_bos(tk);
        for (int i = 0; st == KVB_STATUS_OK && bos >= 0 && i < *n_out; i += ctx) (*out)[i] = bos;
        snprintf(how, how_len, "%s vocab of %s%s", kvb_tokenizer_kind_name(tk), vocab,
                 bos >= 0 ? ", BOS first in each window" : "");
        kvb_tokenizer_free(tk);
        free(text);
        if (st != KVB_STATUS_OK) return kvb_usage_error("--text-file: %s", msg);
        return 0;
    }
    if (mc->vocab_size < 259) {
        free(text);
        return kvb_usage_error("--text-file: the model has no vocabulary and its %d tokens cannot "
                               "hold the 256 byte tokens (ids 3..258) text is read as",
                               mc->vocab_size);
    }
    int *t = malloc((n ? n : 1) * sizeof *t);
    if (!t) {
        free(text);
        return KVB_EXIT_FAIL;
    }
    for (size_t i = 0; i < n; i++) t[i] = (unsigned char)text[i] + 3;
    free(text);
    *out = t;
    *n_out = (int)n;
    snprintf(how, how_len, "bytes: the model has no vocabulary");
    return 0;
}

/* The cases: contiguous f32 first (the reference), then each wanted pair. */
static int build_cases(const kvb_opts *c, int head_dim, kvb_ppl_case *pc, int *n)
{
    const kvb_backend *backs[KVB_MAX_LIST];
    kvb_dtype dts[KVB_MAX_LIST];
    int nb, nd, r, any_quant = 0;
    if ((r = kvb_opts_backends_dtypes(c, backs, &nb, dts, &nd)) != 0) return r;
    *n = 0;
    pc[(*n)++] = (kvb_ppl_case){.backend = kvb_backend_find("contiguous"),
                                .opts = {.dtype = KVB_DTYPE_F32, .threads = c->threads},
                                .label = "contiguous-f32"};
    for (int i = 0; i < nb; i++)
        for (int j = 0; j < nd; j++) {
            if (!kvb_pair_wanted(backs[i], dts, nd, j)) continue;
            if (!backs[i]->attend) continue;        /* nocache: nothing to attend through */
            kvb_ppl_case *p = &pc[*n];
            *p = (kvb_ppl_case){.backend = backs[i],
                                .opts = {.dtype = dts[j], .threads = c->threads}};
            any_quant |= kvb_dtype_is_quant(dts[j]);
            kvb_opts_case(c, head_dim, KVB_KEY_AXIS_DEFAULT, &p->opts);
            snprintf(p->label, sizeof p->label, "%s-%s", backs[i]->name, kvb_dtype_name(dts[j]));
            /* a residual names its case: q2 keeps its newest 128 tokens in f32 by default */
            if (p->opts.residual > 0)
                snprintf(p->label + strlen(p->label), sizeof p->label - strlen(p->label), "-r%d",
                         p->opts.residual);
            if (strcmp(p->label, "contiguous-f32") != 0) (*n)++;
        }
    kvb_opts_note_group(c, head_dim, any_quant);
    return 0;
}

static void progress(void *arg, int w, int n_win, int c)
{
    const kvb_ppl_case *pc = arg;
    fprintf(stderr, "\rwindow %d of %d: %-32s", w + 1, n_win, pc[c].label);
    fflush(stderr);
}

static void csv_rows(FILE *f, const kvb_ppl_case *pc, const kvb_ppl_result *r, int n, int ctx,
                     const char *model)
{
    fprintf(f, KVB_PPL_HEAD "\n");
    for (int i = 0; i < n; i++)
        fprintf(f, "%s,%s,%s,%s,\"%s\",%d,%d,%d,%.6f,%.6g,%.4g,%.6g,%.4e,%.4e,%.5f,%.1f,%.2f\n",
                pc[i].label, pc[i].backend->name, kvb_dtype_name(pc[i].opts.dtype),
                r[i].status == KVB_STATUS_OK ? "ok" : "skipped", model, ctx, r[i].n_windows,
                r[i].n_scored, r[i].nll_mean, r[i].ppl, r[i].ppl_err, r[i].ppl / r[0].ppl - 1,
                r[i].kl_mean, r[i].kl_p99, r[i].top1, r[i].bytes_per_token, r[i].seconds);
}

/* One whole file through a temporary: the table (ppl.csv) or the machine's lines. */
static int write_file(const char *path, const kvb_ppl_case *pc, const kvb_ppl_result *r, int n,
                      int ctx, const char *model, const char *machine)
{
    kvb_afile a;
    char why[KVB_PATH_MAX + 128];
    if (kvb_afile_open(&a, path, why, sizeof why)) return kvb_usage_error("%s", why);
    if (machine)
        fputs(machine, a.f);
    else
        csv_rows(a.f, pc, r, n, ctx, model);
    if (kvb_afile_commit(&a, why, sizeof why)) {
        fprintf(stderr, "kvbench: %s\n", why);
        return KVB_EXIT_FAIL;
    }
    return 0;
}

/* --out DIR: ppl.csv, machine.txt and the report with its plot, built in
 * DIR.partial and renamed whole; an existing DIR or DIR.partial is refused
 * before anything runs (check_out). */
static int check_out(const char *dir)
{
    char partial[KVB_PATH_MAX + 16];
    struct stat sb;
    if (kvb_partial_name(dir, partial, sizeof partial) != 0)
        return kvb_usage_error("--out '%s': name too long", dir);
    if (lstat(dir, &sb) == 0) return kvb_usage_error("--out '%s' exists: choose another", dir);
    if (lstat(partial, &sb) == 0)
        return kvb_usage_error("'%s' exists (an unfinished ppl?): remove it or choose another "
                               "--out", partial);
    return 0;
}

static int write_out(const char *dir, const kvb_ppl_case *pc, const kvb_ppl_result *r, int n,
                     int ctx, const char *model, const char *cmdline)
{
    char partial[KVB_PATH_MAX + 16], path[KVB_PATH_MAX + 64], why[KVB_PATH_MAX + 256];
    char machine[2048], cpu[256], host[256] = "unknown", date[64], ver[256];
    kvb_partial_name(dir, partial, sizeof partial);
    if (mkdir(partial, 0777) != 0)
        return kvb_usage_error("cannot create '%s': %s", partial, strerror(errno));
    kvb_cpu_model(cpu, sizeof cpu);
    gethostname(host, sizeof host - 1);
    time_t t = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&t));
    kvb_version(ver, sizeof ver);
    snprintf(machine, sizeof machine, "host: %s\ndate: %s\ncpu: %s\nmodel: %s\nbuild: %s\n"
             "command: %s\n", host, date, cpu, model, ver, cmdline);
    int rc;
    snprintf(path, sizeof path, "%s/ppl.csv", partial);
    if ((rc = write_file(path, pc, r, n, ctx, model, NULL)) == 0) {
        snprintf(path, sizeof path, "%s/machine.txt", partial);
        rc = write_file(path, NULL, NULL, 0, 0, NULL, machine);
    }
    if (rc == 0 && kvb_report_to(partial, stderr, why, sizeof why) != KVB_STATUS_OK) {
        fprintf(stderr, "kvbench: the report: %s\n", why);
        rc = KVB_EXIT_FAIL;
    }
    if (rc == 0 && kvb_partial_publish(partial, dir, why, sizeof why) != 0) {
        fprintf(stderr, "kvbench: %s\n", why);
        rc = KVB_EXIT_FAIL;
    }
    if (rc != 0) kvb_rmtree(partial);
    else printf("wrote %s (ppl.csv, report.md, plots/ppl.png)\n", dir);
    return rc;
}

int kvb_cmd_ppl(const kvb_cli *cli, const kvb_command *self, int argc, char **argv)
{
    kvb_opts c;
    int r = kvb_opts_parse(cli, self, argc, argv, &c);
    if (r) return r < 0 ? 0 : r;
    int ctxs[KVB_MAX_LIST], n_ctx;
    if ((r = kvb_parse_int_list("--ctx", c.ctxs, 4, 1 << 20, ctxs, &n_ctx)) != 0) return r;
    if (n_ctx != 1) return kvb_usage_error("--ctx %s: ppl takes one window length", c.ctxs);
    const int ctx = ctxs[0];
    if (c.out && (r = check_out(c.out)) != 0) return r;
    kvb_model_config mc;
    const char *src;
    if ((r = kvb_opts_model_config(&c, &mc, &src)) != 0) return r;
    if (ctx > mc.max_seq)
        return kvb_usage_error("--ctx %d: past the model's context length %d", ctx, mc.max_seq);
    kvb_ppl_case *pc = calloc(MAX_CASES, sizeof *pc);
    if (!pc) return KVB_EXIT_FAIL;
    int n_cases = 0, *tok = NULL, n_tok = 0;
    char how[KVB_PATH_MAX + 64];
    if ((r = build_cases(&c, mc.head_dim, pc, &n_cases)) != 0 ||
        (r = tokenize(&c, &mc, ctx, &tok, &n_tok, how, sizeof how)) != 0) {
        free(pc);
        return r;
    }
    if (n_tok / ctx < 1) {
        free(pc);
        free(tok);
        return kvb_usage_error("--text-file '%s' is %d tokens: shorter than one window of --ctx "
                               "%d", c.text_file, n_tok, ctx);
    }
    kvb_model m;
    kvb_state s;
    if ((r = kvb_opts_build_model(&c, &mc, &m)) != 0) {
        free(pc);
        free(tok);
        return r;
    }
    kvb_opts_say_model(src, &m.cfg);
    m.cfg.max_seq = ctx;          /* the state holds one window */
    char msg[512];
    if (kvb_state_init(&s, &m.cfg, c.threads) != KVB_STATUS_OK) {
        kvb_model_free(&m);
        free(pc);
        free(tok);
        return kvb_usage_error("out of memory for the activations of --ctx %d", ctx);
    }
    openblas_set_num_threads(1);   /* the passes split sgemm over the state's pool */
    if (kvb_state_set_matvec(&s, &m, c.matvec, msg, sizeof msg) != KVB_STATUS_OK) {
        kvb_state_free(&s);
        kvb_model_free(&m);
        free(pc);
        free(tok);
        return kvb_usage_error("%s", msg);
    }
    int n_win = n_tok / ctx;
    if (c.windows > 0 && n_win > c.windows) n_win = c.windows;
    printf("text: %s, %d tokens (%s); %d window%s of %d, %d scored each\n", c.text_file, n_tok,
           how, n_win, n_win == 1 ? "" : "s", ctx, ctx - ctx / 2 - 1);
    kvb_ppl_result *res = calloc((size_t)n_cases, sizeof *res);
    kvb_status st = res ? kvb_ppl_run(&m, &s, tok, n_tok, ctx, c.windows, pc, n_cases, res,
                                      c.quiet ? NULL : progress, pc, msg, sizeof msg)
                        : KVB_STATUS_NO_MEMORY;
    if (!c.quiet) fprintf(stderr, "\r%60s\r", "");
    fflush(stderr);
    int measured = 0;
    if (st == KVB_STATUS_OK) {
        printf("%-22s %10s %9s %9s %10s %10s %7s %9s %8s\n", "case", "ppl", "+/-", "dppl",
               "KL_mean", "KL_p99", "top1", "B/token", "seconds");
        for (int i = 0; i < n_cases; i++) {
            if (res[i].status != KVB_STATUS_OK) {
                printf("%-22s skipped: %s\n", pc[i].label, res[i].why);
                continue;
            }
            measured += i > 0;
            if (pc[i].opts.residual >= ctx)
                fprintf(stderr, "kvbench: note: %s kept every token of a window in its f32 "
                        "residual (--residual %d >= --ctx %d): its figures are f32's; give "
                        "--residual 0 or a longer --ctx\n", pc[i].label, pc[i].opts.residual, ctx);
            printf("%-22s %10.4f %9.4f %+9.2e %10.3e %10.3e %7.4f %9.1f %8.2f\n", pc[i].label,
                   res[i].ppl, res[i].ppl_err, res[i].ppl / res[0].ppl - 1, res[i].kl_mean,
                   res[i].kl_p99, res[i].top1, res[i].bytes_per_token, res[i].seconds);
        }
    } else {
        fprintf(stderr, "kvbench: %s\n", msg);
        r = st == KVB_STATUS_INVALID_ARG ? KVB_EXIT_USAGE : KVB_EXIT_FAIL;
    }
    if (r == 0 && c.csv) r = write_file(c.csv, pc, res, n_cases, ctx, src, NULL);
    if (r == 0 && c.out) r = write_out(c.out, pc, res, n_cases, ctx, src, cli->cmdline);
    if (r == 0 && n_cases > 1 && measured == 0)
        r = kvb_nothing_to_measure("case besides the reference", n_cases - 1, res[1].why);
    kvb_state_free(&s);
    kvb_model_free(&m);
    free(res);
    free(pc);
    free(tok);
    return r;
}
