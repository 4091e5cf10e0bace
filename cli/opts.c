/* opts.c: from options to what the cache and model commands build (opts.h):
 * the model's shape and weights, the backends, storage types and quantization
 * options, pinning, and the checks every measuring command makes before any
 * work. A refusal names the value and what is allowed (KVB_EXIT_USAGE). */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "opts.h"
#include "cli.h"
#include "../base/probe.h"
#include "../model/gguf.h"
#include "../model/hf.h"
#include "../model/load.h"

#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int kvb_opts_parse(const kvb_cli *cli, const kvb_command *self, int argc, char **argv, kvb_opts *o)
{
    memset(o, 0, sizeof *o);
    o->residual = -1; /* the format's default: 128 for q2, else 0 */
    return kvb_flags_parse(cli, self, argc, argv, o);
}

/* "unknown preset 'x': allowed are ..." */
static int unknown_preset(const char *preset)
{
    char names[256] = "";
    for (int i = 0; kvb_model_preset_name(i); i++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                 kvb_model_preset_name(i));
    return kvb_usage_error("unknown preset '%s': allowed are %s", preset, names);
}

/* --model: the shape in a Hugging Face config.json, a GGUF file's llama metadata or a
 * llama2.c checkpoint's header (chosen by what the path holds, model/load.h); only
 * --max-seq overrides it */
static int model_file_config(const kvb_opts *c, kvb_model_config *cfg)
{
    char msg[640] = "", why[512] = "";
    if (c->preset || c->checkpoint)
        return kvb_usage_error("--model excludes --preset and --checkpoint: give one of them");
    if (c->dim || c->hidden || c->layers || c->heads || c->kv_heads || c->head_dim || c->vocab ||
        c->rope_theta > 0 || c->untied)
        return kvb_usage_error("--model takes its shape from the file: no shape flag may "
                               "override it");
    kvb_gguf g;
    kvb_status st = KVB_STATUS_IO;
    errno = 0;
    switch (kvb_model_format_of(c->model)) {
    case KVB_MODEL_FORMAT_HF:
        st = kvb_hf_config(c->model, cfg, NULL, why, sizeof why);
        break;
    case KVB_MODEL_FORMAT_GGUF:
        if ((st = kvb_gguf_open(&g, c->model, why, sizeof why)) != KVB_STATUS_OK) {
            snprintf(msg, sizeof msg, "%s", why);
            break;
        }
        st = kvb_gguf_llama_config(&g, cfg, NULL, why, sizeof why);
        kvb_gguf_close(&g);
        break;
    case KVB_MODEL_FORMAT_LLAMA2C:
        if ((st = kvb_model_read_config(c->model, cfg, why, sizeof why)) != KVB_STATUS_OK)
            snprintf(msg, sizeof msg, "--model '%s' is not a Hugging Face config or directory, "
                     "not GGUF (no 'GGUF' magic), and not a llama2.c checkpoint: %s", c->model,
                     why);
        break;
    default:
        snprintf(why, sizeof why, "%s", errno == EINVAL ? "neither a regular file nor a directory"
                                                         : strerror(errno));
    }
    if (st != KVB_STATUS_OK) {
        if (!strstr(msg, c->model)) snprintf(msg, sizeof msg, "--model '%s': %s", c->model, why);
        fprintf(stderr, "kvbench: %s\n", msg);
        return KVB_EXIT_USAGE;
    }
    if (c->max_seq) cfg->max_seq = c->max_seq;
    return 0;
}

int kvb_opts_kv_config(const kvb_opts *c, kvb_model_config *cfg, const char **source)
{
    char msg[512];
    if (c->model) {
        *source = c->model;
        return model_file_config(c, cfg);
    }
    if (c->checkpoint) {
        if (c->preset) return kvb_usage_error("--preset and --checkpoint exclude each other");
        if (c->dim || c->hidden || c->layers || c->heads || c->kv_heads || c->head_dim ||
            c->vocab || c->rope_theta > 0 || c->untied)
            return kvb_usage_error("--checkpoint takes its shape from the file: only --max-seq may "
                                   "override it");
        if (kvb_model_read_config(c->checkpoint, cfg, msg, sizeof msg) != KVB_STATUS_OK) {
            fprintf(stderr, "kvbench: %s\n", msg);
            return KVB_EXIT_USAGE;
        }
        if (c->max_seq > cfg->max_seq)
            fprintf(stderr,
                    "kvbench: note: --max-seq %d is above checkpoint '%s''s own seq_len %d: "
                    "positions past %d were never trained (RoPE extrapolates)\n",
                    c->max_seq, c->checkpoint, cfg->max_seq, cfg->max_seq);
        if (c->max_seq) cfg->max_seq = c->max_seq;
        *source = c->checkpoint;
        return 0;
    }
    const char *preset = c->preset ? c->preset : "stories15m";
    if (kvb_model_preset(preset, cfg) != KVB_STATUS_OK) return unknown_preset(preset);
    if (c->dim) cfg->dim = c->dim;
    if (c->hidden) cfg->hidden_dim = c->hidden;
    if (c->layers) cfg->n_layers = c->layers;
    if (c->heads) cfg->n_heads = c->heads;
    if (c->kv_heads) cfg->n_kv_heads = c->kv_heads;
    if (c->head_dim)
        cfg->head_dim = c->head_dim;
    else if (c->dim || c->heads)
        cfg->head_dim = cfg->dim / cfg->n_heads;
    if (c->vocab) cfg->vocab_size = c->vocab;
    if (c->max_seq) cfg->max_seq = c->max_seq;
    if (c->rope_theta > 0) cfg->rope_theta = (float)c->rope_theta;
    if (c->untied) cfg->shared_classifier = 0;
    *source = preset;
    return 0;
}

void kvb_opts_say_model(const char *source, const kvb_model_config *mc)
{
    double kib = 2.0 * mc->n_layers * mc->n_kv_heads * mc->head_dim * 4 / 1024;
    printf("model %s: %d layers, %d heads, %d KV heads, head_dim %d, context %d; "
           "KV %.1f KiB per token at f32\n", source, mc->n_layers, mc->n_heads, mc->n_kv_heads,
           mc->head_dim, mc->max_seq, kib);
}

int kvb_opts_model_config(const kvb_opts *c, kvb_model_config *cfg, const char **source)
{
    char msg[512];
    int r = kvb_opts_kv_config(c, cfg, source);
    if (r || c->checkpoint || c->model) return r;   /* the loader checks a file's model */
    if (kvb_model_config_check(cfg, msg, sizeof msg) != KVB_STATUS_OK)
        return kvb_usage_error("bad model shape: %s", msg);
    kvb_wtype wt;
    if ((r = kvb_opts_wtype(c, &wt)) != 0) return r;
    if (kvb_model_wtype_check(cfg, wt, msg, sizeof msg) != KVB_STATUS_OK)
        return kvb_usage_error("--wtype %s: %s", c->wtype, msg);
    return 0;
}

int kvb_opts_wtype(const kvb_opts *c, kvb_wtype *wt)
{
    *wt = KVB_WTYPE_F32;
    if (!c->wtype) return 0;
    if (kvb_wtype_parse(c->wtype, wt) != KVB_STATUS_OK)
        return kvb_usage_error("unknown --wtype '%s': allowed are f32, f16, bf16, q8_0, q4_0, "
                               "q4_k, q6_k", c->wtype);
    if (*wt != KVB_WTYPE_F32 && c->checkpoint)
        return kvb_usage_error("--wtype %s: a llama2.c checkpoint's weights are f32 (--wtype "
                               "stores seeded random weights)", c->wtype);
    if (*wt != KVB_WTYPE_F32 && c->model)
        return kvb_usage_error("--wtype %s: --model's weights keep the file's types (--wtype "
                               "stores seeded random weights)", c->wtype);
    return 0;
}

double kvb_opts_weight_bytes(const kvb_opts *c, const kvb_model_config *cfg, kvb_wtype wt)
{
    if (!c->model) return (double)kvb_model_weight_bytes(cfg, wt);
    /* the file's bytes, or the directory's files' (a checkpoint's shards) */
    struct stat sb;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", c->model);
    if (stat(dir, &sb) == 0 && S_ISREG(sb.st_mode) &&
        kvb_model_format_of(dir) != KVB_MODEL_FORMAT_HF)
        return (double)sb.st_size;
    if (S_ISREG(sb.st_mode)) {   /* config.json: its directory */
        char *slash = strrchr(dir, '/');
        if (!slash) snprintf(dir, sizeof dir, ".");
        else slash[slash == dir] = 0;
    }
    double total = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode)) total += (double)sb.st_size;
    }
    if (d) closedir(d);
    return total;
}

int kvb_opts_build_model(const kvb_opts *c, const kvb_model_config *cfg, kvb_model *m)
{
    char msg[512];
    kvb_wtype wt;
    int r = kvb_opts_wtype(c, &wt);
    if (r) return r;
    kvb_status st = c->model ? kvb_model_open(m, c->model, c->max_seq, msg, sizeof msg)
                    : c->checkpoint
                        ? kvb_model_load(m, c->checkpoint, c->max_seq, msg, sizeof msg)
                        : kvb_model_init_random(m, cfg, (uint64_t)c->seed, wt, msg, sizeof msg);
    if (st != KVB_STATUS_OK) {
        fprintf(stderr, "kvbench: %s\n", msg);
        return st == KVB_STATUS_FORMAT || st == KVB_STATUS_INVALID_ARG ? KVB_EXIT_USAGE
                                                                       : KVB_EXIT_FAIL;
    }
    return 0;
}

int kvb_opts_backends_dtypes(const kvb_opts *c, const kvb_backend **backs, int *nb, kvb_dtype *dts,
                             int *nd)
{
    char bl[1024], dl[256];
    char *bn[KVB_MAX_LIST], *dn[KVB_MAX_LIST];
    snprintf(bl, sizeof bl, "%s", c->backends);
    snprintf(dl, sizeof dl, "%s", c->dtypes);
    if (kvb_split_list("--backend", bl, bn, KVB_MAX_LIST, nb) ||
        kvb_split_list("--dtype", dl, dn, KVB_MAX_LIST, nd))
        return KVB_EXIT_USAGE;
    for (int i = 0; i < *nb; i++)
        if (!(backs[i] = kvb_backend_find(bn[i]))) {
            char names[256] = "";
            for (int j = 0; j < kvb_backend_count(); j++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", j ? ", " : "",
                         kvb_backend_at(j)->name);
            return kvb_usage_error("unknown backend '%s': allowed are %s", bn[i], names);
        }
    for (int i = 0; i < *nd; i++)
        if (kvb_dtype_parse(dn[i], &dts[i]) != KVB_STATUS_OK)
            return kvb_usage_error("unknown storage type '%s': allowed are f32, f16, bf16, q8, q4, "
                                   "q4_1, q2",
                                   dn[i]);
    return 0;
}

int kvb_opts_key_axes(const kvb_opts *c, kvb_key_axis *axes, int *n)
{
    char buf[256];
    char *items[KVB_MAX_LIST];
    snprintf(buf, sizeof buf, "%s", c->key_axes);
    if (kvb_split_list("--key-axis", buf, items, KVB_MAX_LIST, n)) return KVB_EXIT_USAGE;
    for (int i = 0; i < *n; i++)
        if (kvb_key_axis_parse(items[i], &axes[i]) != KVB_STATUS_OK)
            return kvb_usage_error("unknown --key-axis '%s': allowed are default, token, channel",
                                   items[i]);
    if (c->group && (c->group & (c->group - 1)))
        return kvb_usage_error("--group %d: must be a power of two from 8 to 256", c->group);
    return 0;
}

/* The values per quantization scale when --group is not given: 32 (as in
 * llama.cpp's q8_0), or the largest power of two from 8 that divides head_dim
 * when 32 does not; 0 when none does (the quant points are then skipped). */
static int default_group(int head_dim)
{
    for (int g = 32; g >= 8; g /= 2)
        if (head_dim % g == 0) return g;
    return 0;
}

void kvb_opts_note_group(const kvb_opts *c, int head_dim, int any_quant)
{
    int g = default_group(head_dim);
    if (c->group || !any_quant || g == 32) return;
    if (g)
        fprintf(stderr, "kvbench: quant group %d: the default 32 does not divide head_dim %d\n", g,
                head_dim);
    else
        fprintf(stderr, "kvbench: no quant group from 8 to 32 divides head_dim %d: give --group\n",
                head_dim);
}

/* --residual defaults to 128 for q2, as in KIVI, and to 0 otherwise. */
void kvb_opts_case(const kvb_opts *c, int head_dim, kvb_key_axis axis, kvb_options *o)
{
    o->window = c->window;
    if (!kvb_dtype_is_quant(o->dtype)) return;
    int g = default_group(head_dim);
    o->group = c->group ? c->group : g ? g : 32;
    o->residual = c->residual >= 0 ? c->residual : o->dtype == KVB_DTYPE_Q2 ? 128 : 0;
    o->key_axis = axis;
}

/* Quantized types go with quantized backends only; the mismatched pairs are
 * left out silently unless b has no type of its kind in the list (then they
 * are kept, to be reported as skipped with the reason). */
int kvb_pair_wanted(const kvb_backend *b, const kvb_dtype *dts, int nd, int j)
{
    int quant = (b->flags & KVB_BACKEND_QUANT) != 0, any = 0;
    if (b->flags & KVB_BACKEND_RECOMPUTE) return 1;
    for (int i = 0; i < nd; i++) any |= kvb_dtype_is_quant(dts[i]) == quant;
    return !any || kvb_dtype_is_quant(dts[j]) == quant;
}

/* The attention workers are pinned through kvb_options.thread_start, which
 * kvb_opts_pin_workers sets on each case's options. */
int kvb_opts_pin(const kvb_opts *c, const kvb_topo *topo, kvb_pin_set *ps)
{
    kvb_pin pin;
    if (kvb_pin_parse(c->pin, &pin) != KVB_STATUS_OK)
        return kvb_usage_error("unknown --pin '%s': allowed are none, compact, spread", c->pin);
    if (c->threads > KVB_PIN_MAX_THREADS && pin != KVB_PIN_NONE)
        return kvb_usage_error("--pin with --threads %d: at most %d threads can be pinned",
                               c->threads, KVB_PIN_MAX_THREADS);
    if (kvb_pin_set_init(ps, topo, pin) != KVB_STATUS_OK)
        fprintf(stderr, "kvbench: --pin %s: %s\n", c->pin, ps->note);
    return 0;
}

void kvb_opts_pin_workers(kvb_options *o, kvb_pin_set *ps)
{
    if (ps->policy == KVB_PIN_NONE || ps->core[0] < 0) return;
    o->thread_start = kvb_pin_thread_start;
    o->thread_start_arg = ps;
}

/* Refused before anything is allocated: past MemAvailable the OS would swap
 * or kill the run halfway. */
int kvb_check_memory(const char *what, double bytes)
{
    size_t avail = kvb_mem_available();
    if (avail && bytes > (double)avail)
        return kvb_usage_error("%s needs %.2f GB, but the OS reports %.2f GB available "
                               "(MemAvailable): ask for less",
                               what, bytes / 1e9, (double)avail / 1e9);
    return 0;
}

int kvb_nothing_to_measure(const char *noun, int n, const char *why)
{
    fprintf(stderr,
            "kvbench: nothing to measure: all %d %s%s unsupported (the last: %s) (exit %d)\n", n,
            noun, n == 1 ? " is" : "s are", why, KVB_EXIT_NOTHING);
    return KVB_EXIT_NOTHING;
}

/* Threads that share cores make the figures measure the scheduler, not the
 * machine; the caller records it too. */
int kvb_threads_oversubscribed(int threads)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
#if defined(__linux__)
    cpu_set_t set; /* a taskset or a container's cpuset: fewer to share */
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0 &&
        CPU_COUNT(&set) < cores)
        cores = CPU_COUNT(&set);
#endif
    if (cores > 0 && threads > cores) {
        fprintf(stderr,
                "kvbench: warning: --threads %d is above the %ld core%s this process may "
                "use: threads will share cores and the times will not show this machine's speed\n",
                threads, cores, cores == 1 ? "" : "s");
        return 1;
    }
    return 0;
}
