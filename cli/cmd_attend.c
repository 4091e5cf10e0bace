/* cmd_attend.c: kvbench attend: one layer of each cache filled with the same
 * seeded K/V, attend timed alone with the cases interleaved round by round,
 * each output checked against float64, each GB/s figure set against the read
 * ceiling measured around its context's cases. */
#define _GNU_SOURCE
#include "cli.h"
#include "opts.h"
#include "../base/afile.h"
#include "../base/columns.h"
#include "../harness/attend_bench.h"
#include "../harness/ceiling.h"
#include "../impls/kernels/quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const kvb_cmd_spec kvb_attend_spec = {
    .usage = "[flags]",
    .intro = "Fills one layer of each cache with the same seeded K/V, then times attend alone,\n"
             "the cases interleaved round by round, and checks each output against float64.",
    .epilogue = "ceil = GB/s / this machine's read ceiling (one thread's, or all cores' with\n"
                "--threads above 1), the higher of the measurements just before and just after\n"
                "that context's cases.\n"
                "ratio = median / contiguous's median at the same storage type (f32 for the\n"
                "quantized ones) and context; waste = 1 - used / reserved bytes; GB/s = bytes\n"
                "the sequence holds (codes, scales, f32 residual) / median, GB = 1e9;\n"
                "rel_err, max_abs: relative L2 and largest absolute error against float64.",
    .flags = kvb_opts_flags,
};

int kvb_cmd_attend(const kvb_cli *cli, const kvb_command *self, int argc, char **argv)
{
    kvb_opts c;
    int r = kvb_opts_parse(cli, self, argc, argv, &c);
    if (r) return r < 0 ? 0 : r;
    const kvb_backend *backs[KVB_MAX_LIST];
    kvb_dtype dts[KVB_MAX_LIST];
    int nb, nd, nk, nc, na, nq, nf, blocks[KVB_MAX_LIST], ctxs[KVB_MAX_LIST], qk[KVB_MAX_LIST],
        fk[KVB_MAX_LIST];
    kvb_key_axis axes[KVB_MAX_LIST];
    static const char *const fk_names[] = {"auto", "portable", "avx2", "avx512"};
    if ((r = kvb_opts_backends_dtypes(&c, backs, &nb, dts, &nd)) != 0) return r;
    if ((r = kvb_parse_int_list("--block", c.blocks, 1, 256, blocks, &nk)) != 0) return r;
    if ((r = kvb_parse_int_list("--ctx", c.ctxs, 1, 1 << 22, ctxs, &nc)) != 0) return r;
    if ((r = kvb_opts_key_axes(&c, axes, &na)) != 0) return r;
    if ((r = kvb_parse_enum_list("--qkernel", c.qkernels, kvb_qkernel_names, KVB_QKERNEL_COUNT,
                                   qk, &nq)) != 0) return r;
    if ((r = kvb_parse_enum_list("--kernel", c.kernels, fk_names, 4, fk, &nf)) != 0) return r;
    if (c.model || c.preset) {
        kvb_model_config mc;
        const char *src;
        if ((r = kvb_opts_kv_config(&c, &mc, &src)) != 0) return r;
        c.heads = mc.n_heads;
        c.kv_heads = mc.n_kv_heads;
        c.head_dim = mc.head_dim;
        kvb_opts_say_model(src, &mc);
        if (ctxs[nc - 1] > mc.max_seq)
            fprintf(stderr, "kvbench: note: --ctx %d is past the model's context length %d\n",
                    ctxs[nc - 1], mc.max_seq);
    }
    kvb_shape shape = {1, c.heads ? c.heads : 32, c.kv_heads ? c.kv_heads : 8,
                       c.head_dim ? c.head_dim : 128, ctxs[0]};
    char msg[512];
    if (kvb_shape_check(&shape, msg, sizeof msg) != KVB_STATUS_OK)
        return kvb_usage_error("%s", msg);
    if (c.key_outliers > shape.head_dim / 2)
        return kvb_usage_error("--key-outliers %d: at most head_dim / 2 = %d channel pairs",
                               c.key_outliers, shape.head_dim / 2);
    /* every case is checked before anything is measured: a command whose
     * every case is unsupported measures nothing and says so (exit 3) */
    {
        int runnable = 0, cases_n = 0, any_quant = 0;
        double kv_max = 0;
        char why[256] = "";
        for (int ci = 0; ci < nc; ci++)
            for (int i = 0; i < nb; i++)
                for (int j = 0; j < nd; j++) {
                    if (!kvb_pair_wanted(backs[i], dts, nd, j)) continue;
                    int pg = (backs[i]->flags & KVB_BACKEND_PAGED) != 0,
                        qt = kvb_dtype_is_quant(dts[j]);
                    any_quant |= qt;
                    /* block sizes (paged) x (key axes x quant kernels, or dense kernels) */
                    int inner = qt ? na * nq : nf;
                    for (int k = 0; k < (pg ? nk : 1) * inner; k++) {
                        int in = k % inner;
                        kvb_options o = {.dtype = dts[j],
                                         .max_seqs = c.sequences,
                                         .threads = c.threads,
                                         .block_tokens = pg ? blocks[k / inner] : 0};
                        if (!qt) o.kernel = fk_names[fk[in % nf]];
                        kvb_opts_case(&c, shape.head_dim, qt ? axes[in / nq] : KVB_KEY_AXIS_DEFAULT,
                                       &o);
                        if (qt) o.qkernel = kvb_qkernel_names[qk[in % nq]];
                        kvb_shape sh = shape;
                        sh.max_seq = ctxs[ci];
                        cases_n++;
                        if (!backs[i]->attend) {
                            snprintf(why, sizeof why, "%s stores nothing to attend over",
                                     backs[i]->name);
                            continue;
                        }
                        if (kvb_backend_supports(backs[i], &sh, &o, why, sizeof why) !=
                            KVB_STATUS_OK)
                            continue;
                        runnable++;
                        /* K/V of every sequence, f32 staging of the seeded data, and the f32 store
                         * the quantized cases are compared against */
                        double kv = 2.0 * sh.n_kv_heads * sh.head_dim * (double)ctxs[ci] *
                                    (kvb_dtype_bits(o.dtype, o.group) / 8.0 * c.sequences + 8.0);
                        if (kv > kv_max) kv_max = kv;
                    }
                }
        kvb_opts_note_group(&c, shape.head_dim, any_quant);
        if (runnable == 0) {
            return kvb_nothing_to_measure("case", cases_n, why);
        }
        char what[96];
        snprintf(what, sizeof what, "attend's largest case (%d sequence%s at %d tokens)",
                 c.sequences, c.sequences == 1 ? "" : "s", ctxs[nc - 1]);
        if ((r = kvb_check_memory(what, kv_max + (c.no_ceilings ? 0 : (double)(1u << 30)))) != 0)
            return r;
        if (c.dry_run) {
            printf("dry run: %d case%s (%d runnable); flags valid, nothing measured\n", cases_n,
                   cases_n == 1 ? "" : "s", runnable);
            return 0;
        }
    }
    int oversubscribed = kvb_threads_oversubscribed(c.threads);
    /* the ceiling every GB/s figure is given against: one thread's read, or all
     * cores' with --threads above 1, over a 1 GiB array. Measured first (before
     * pinning) and again after each context's cases; a context's cases are
     * judged against the higher of the two around them. On a shared machine the
     * bandwidth drifts by a third within minutes (docs/attention.md), so the
     * highest of a whole run would judge a slow spell's cases against a
     * fast spell's ceiling. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int ceil_threads = c.threads > 1 && cores > 1 ? (int)cores : 1;
    double ceil_gbs = 0, ceil_before = 0;
    kvb_cpu_mask readers; /* taken before --pin binds this thread */
    kvb_cpu_mask_capture(&readers);
    if (!c.no_ceilings) {
        kvb_read_bw rb;
        fprintf(stderr, "measuring the read ceiling...\n");
        if (kvb_measure_read_threads_on(&rb, (size_t)1 << 30, 5, ceil_threads, &readers) == 0)
            ceil_before = rb.gbs;
    }
    kvb_topo topo;
    kvb_pin_set pins;
    char tmsg[256];
    int have_topo = kvb_topo_init(&topo, tmsg, sizeof tmsg) == KVB_STATUS_OK;
    if ((r = kvb_opts_pin(&c, have_topo ? &topo : NULL, &pins)) != 0) {
        if (have_topo) kvb_topo_free(&topo);
        return r;
    }
    if (pins.core[0] >= 0)
        printf("pinned (%s): thread 0 on core %d, cpu %d\n", c.pin, pins.core[0], pins.cpu[0]);

    size_t max_cases = (size_t)nb * nd * (size_t)(nk * nf > na * nq ? nk * nf : na * nq);
    kvb_attend_case *cases = calloc(max_cases, sizeof *cases);
    double *samples = calloc(max_cases * (size_t)c.reps, sizeof *samples); /* [case][round] */
    if (!cases || !samples) {
        free(cases);
        free(samples);
        if (have_topo) kvb_topo_free(&topo);
        return 1;
    }
    FILE *csv = NULL;
    kvb_afile out;
    char why[KVB_PATH_MAX + 256];
    if (c.csv) {
        if (kvb_afile_open(&out, c.csv, why, sizeof why)) {
            free(cases);
            free(samples);
            if (have_topo) kvb_topo_free(&topo);
            return kvb_usage_error("--csv: %s", why);
        }
        csv = out.f;
        fprintf(csv, KVB_ATTEND_HEAD "\n");
    }
    if (c.key_outliers)
        printf("keys: %d channel pairs x%d (queries /%d: same scores)\n", c.key_outliers,
               KVB_OUTLIER_SCALE, KVB_OUTLIER_SCALE);
    printf("%-100s %10s %10s %10s %7s %5s %7s %6s %8s %8s %8s\n", "case", "median_us", "p10_us",
           "p90_us", "GB/s", "ceil", "ratio", "waste", "B/token", "rel_err", "max_abs");
    int rc = 0, measured = 0;
    for (int ci = 0; ci < nc && rc == 0; ci++) {
        shape.max_seq = ctxs[ci];
        int n = 0;
        for (int i = 0; i < nb; i++)
            for (int j = 0; j < nd; j++) {
                int pg = (backs[i]->flags & KVB_BACKEND_PAGED) != 0,
                    qt = kvb_dtype_is_quant(dts[j]);
                if (!kvb_pair_wanted(backs[i], dts, nd, j)) continue;
                int inner = qt ? na * nq : nf;
                for (int k = 0; k < (pg ? nk : 1) * inner; k++) {
                    int in = k % inner;
                    memset(&cases[n], 0, sizeof cases[n]);
                    cases[n].backend = backs[i];
                    cases[n].opt.dtype = dts[j];
                    cases[n].opt.block_tokens = pg ? blocks[k / inner] : 0;
                    if (!qt) cases[n].opt.kernel = fk_names[fk[in % nf]];
                    kvb_opts_case(&c, shape.head_dim, qt ? axes[in / nq] : KVB_KEY_AXIS_DEFAULT,
                                   &cases[n].opt);
                    if (qt) cases[n].opt.qkernel = kvb_qkernel_names[qk[in % nq]];
                    cases[n].opt.threads = c.threads;
                    cases[n].samples_ns = samples + (size_t)n * (size_t)c.reps;
                    kvb_opts_pin_workers(&cases[n].opt, &pins);
                    n++;
                }
            }
        if (kvb_attend_bench(cases, n, &shape, c.reps, c.sequences, c.key_outliers,
                             (unsigned long long)c.seed, msg, sizeof msg) != KVB_STATUS_OK) {
            fprintf(stderr, "kvbench: %s\n", msg);
            rc = 1;
            break;
        }
        double after = 0;
        ceil_gbs = 0;
        if (!c.no_ceilings) {
            kvb_read_bw rb;
            if (kvb_measure_read_threads_on(&rb, (size_t)1 << 30, 5, ceil_threads, &readers) == 0)
                after = rb.gbs;
            ceil_gbs = after > ceil_before ? after : ceil_before; /* a failed one counts as 0 */
        }
        if (ceil_gbs > 0) {
            printf("read ceiling around these cases: %.2f GB/s (before %.2f, after %.2f; %d "
                   "thread%s, 1 GiB "
                   "array, median of 5); ceil = GB/s / that\n",
                   ceil_gbs, ceil_before, after, ceil_threads, ceil_threads == 1 ? "" : "s");
            if (after > 0) ceil_before = after;
        }
        for (int i = 0; i < n; i++) {
            const kvb_attend_case *a = &cases[i];
            char name[192];
            kvb_attend_case_name(a, &shape, name, sizeof name);
            if (a->skipped) {
                printf("%-100s skipped: %s\n", name, a->why);
                continue;
            }
            measured++;
            /* quantized types compare with the f32 store they replace */
            kvb_dtype bdt = kvb_dtype_is_quant(a->opt.dtype) ? KVB_DTYPE_F32 : a->opt.dtype;
            double base = NAN;
            for (int j = 0; j < n; j++)
                if (!cases[j].skipped && strcmp(cases[j].backend->name, "contiguous") == 0 &&
                    cases[j].opt.dtype == bdt)
                    base = cases[j].median_ns;
            double waste =
                a->mem.reserved ? 1.0 - (double)a->mem.used / (double)a->mem.reserved : 0;
            char frac[16] = "-";
            if (ceil_gbs > 0) snprintf(frac, sizeof frac, "%.2f", a->gbs / ceil_gbs);
            printf("%-100s %10.1f %10.1f %10.1f %7.2f %5s %7.3f %6.3f %8.0f %8.1e %8.1e\n", name,
                   a->median_ns / 1e3, a->p10_ns / 1e3, a->p90_ns / 1e3, a->gbs, frac,
                   a->median_ns / base, waste, (double)a->kv_bytes / shape.max_seq, a->rel_err,
                   a->max_abs_err);
            if (csv) {
                fprintf(
                    csv,
                    "\"%s\",%s,%s,%d,%d,%d,%d,%d,%d,%.0f,%.0f,%.0f,%zu,%.4f,%.4f,%zu,%zu,%.5f,%.3e,"
                    "%.3e,%d,%d,%s,%d,%.1f,%.1f,%.3f,%.4f,%d,%s,%d,",
                    name, a->backend->name, kvb_dtype_name(a->opt.dtype), a->opt.block_tokens,
                    shape.n_heads, shape.n_kv_heads, shape.head_dim, shape.max_seq, c.reps,
                    a->median_ns, a->p10_ns, a->p90_ns, a->kv_bytes, a->gbs, a->median_ns / base,
                    a->mem.reserved, a->mem.used, waste, a->rel_err, a->max_abs_err,
                    a->opt.group ? a->opt.group : 32, a->opt.residual,
                    kvb_key_axis_name(kvb_key_axis_resolve(a->opt.dtype, a->opt.key_axis)),
                    c.key_outliers, (double)a->kv_bytes / shape.max_seq,
                    2.0 * shape.n_kv_heads * shape.head_dim *
                        kvb_dtype_bits(a->opt.dtype, a->opt.group) / 8.0,
                    ceil_gbs, ceil_gbs > 0 ? a->gbs / ceil_gbs : NAN, c.threads > 1 ? c.threads : 1,
                    kvb_backend_kernel(a->backend, &shape, &a->opt), oversubscribed);
                /* every round's time, in round order: rounds interleave the cases, so
                 * two cases' i-th samples were taken side by side (kvbench compare pairs them) */
                for (int k = 0; k < c.reps; k++)
                    fprintf(csv, "%s%.0f", k ? ";" : "", a->samples_ns[k]);
                fputc('\n', csv);
            }
        }
        fflush(stdout);
    }
    free(cases);
    free(samples);
    for (int i = 1; i < kvb_pin_set_threads(&pins); i++)
        printf("pinned (%s): thread %d on core %d, cpu %d\n", c.pin, i, pins.core[i], pins.cpu[i]);
    if (have_topo) kvb_topo_free(&topo);
    /* a failed case leaves no table: the file is written whole or not at all */
    if (csv && rc)
        kvb_afile_abort(&out);
    else if (csv && kvb_afile_commit(&out, why, sizeof why)) {
        fprintf(stderr, "kvbench: %s\n", why);
        rc = 1;
    }
    if (rc == 0 && measured == 0) {
        fprintf(stderr, "kvbench: nothing measured: every case was skipped (exit %d)\n",
                KVB_EXIT_NOTHING);
        rc = KVB_EXIT_NOTHING;
    }
    return rc;
}
