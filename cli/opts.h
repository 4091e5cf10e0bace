/* opts.h: the options of the commands that build caches and models (run,
 * attend, serve-sim, export, info), their flag rows (kvb_opts_flags: each row
 * names the commands that take it) and the helpers that turn options into a
 * model, cache options and pinning. Each helper refuses a bad value with a
 * message naming it and returns KVB_EXIT_USAGE; 0 when all is well. */
#ifndef KVB_OPTS_H
#define KVB_OPTS_H

#include "flags.h"
#include "../harness/topo.h"
#include "../impls/kvb_backend.h"
#include "../model/model.h"

/* A field is set only by the rows of the commands that take it; the others keep
 * kvb_opts_init's value. */
typedef struct kvb_opts {
    /* caches: run, attend, serve-sim */
    const char *backends, *dtypes, *modes, *blocks;
    const char *key_axes, *qkernels, *kernels;
    int group, residual;              /* 0, -1: the rule in kvb_opts_case */
    int window;                       /* 0: max_seq (the window backend) */
    long long pool_mb, pool_blocks;   /* paged pool size; 0: room for every sequence */
    /* the model: run, export, serve-sim (its KV shape); 0 keeps the preset's value */
    const char *preset, *checkpoint;
    const char *model;                /* --model: a model file or checkpoint directory */
    int dim, hidden, layers, heads, kv_heads, head_dim, vocab, max_seq;
    double rope_theta;
    int untied, key_outliers;
    long long seed;
    const char *wtype;                /* run, export: seeded weights' stored type (NULL: f32) */
    const char *matvec;               /* run, ppl: the decode matvec kernel (NULL: auto) */
    /* run */
    int prompt, tokens, reps, warmup;
    const char *prompt_ids, *out;
    const char *format;               /* export: llama2c or gguf */
    double time_budget;
    /* attend */
    const char *ctxs;
    /* serve-sim */
    const char *lengths, *forks;
    int sequences, max_prompt, max_output, fork_n, no_attend;
    double budget_mb;
    /* serve: the workload and the budget */
    const char *kv_budget, *arrival, *rates, *prompt_len, *output_len, *trace, *prefix_cache;
    const char *preempt, *swap_space, *interleave;
    double rate;
    int requests, shared_prefix, max_batch, max_len;
    /* ppl */
    const char *text_file;
    int windows;
    /* measuring */
    int threads, quiet, no_ceilings, dry_run;
    const char *pin, *csv;
    /* info */
    long long bw_mb;
    int cpu_key;
    /* tokenize (and vocab takes --vocab) */
    const char *tokenizer, *text;
    const char *prompt_text;          /* run: the prompt as text (a vocab needed) */
    int no_bos;
} kvb_opts;

/* the rows, ending with a row whose name is NULL */
extern const kvb_flag kvb_opts_flags[];

/* The values no row's default sets, then kvb_flags_parse with self's rows. */
int kvb_opts_parse(const kvb_cli *cli, const kvb_command *self, int argc, char **argv,
                   kvb_opts *o);

/* The model's shape from --checkpoint's header or --model's file (no weights
 * read) or from the preset plus overrides; *source names it.
 * kvb_opts_kv_config checks only the fields given; kvb_opts_model_config checks
 * the whole model (its weights too). */
int kvb_opts_kv_config(const kvb_opts *c, kvb_model_config *cfg, const char **source);
int kvb_opts_model_config(const kvb_opts *c, kvb_model_config *cfg, const char **source);
/* One line on stdout: the model's KV shape (for --model, whose shape the user did not type). */
void kvb_opts_say_model(const char *source, const kvb_model_config *mc);
/* --wtype resolved (f32 when the command has no such flag). */
int kvb_opts_wtype(const kvb_opts *c, kvb_wtype *wt);
/* Bytes of the weights the command will hold: --model's file (or its directory's
 * files), else the shape's stored as wt. */
double kvb_opts_weight_bytes(const kvb_opts *c, const kvb_model_config *cfg, kvb_wtype wt);
/* The weights for a shape kvb_opts_model_config accepted: --model's (model/load.h:
 * GGUF, safetensors or llama2.c, in place where the format allows), the checkpoint's,
 * or seeded ones stored as --wtype. */
int kvb_opts_build_model(const kvb_opts *c, const kvb_model_config *cfg, kvb_model *m);

/* run's --prompt-text as ids (malloc'd) with --tokenizer's or --model's vocab,
 * kept in *tk for kvb_print_continuation; says how many tokens. */
struct kvb_tokenizer;
struct kvb_point;
int kvb_opts_prompt_text(const kvb_opts *c, int vocab, int **ids, int *n,
                         struct kvb_tokenizer **tk);
/* The first measured point's generated tokens after prompt, decoded. */
void kvb_print_continuation(const struct kvb_tokenizer *tk, const char *prompt,
                            const struct kvb_point *pts, int n_pts);

/* --backend and --dtype resolved; every bad one named. */
int kvb_opts_backends_dtypes(const kvb_opts *c, const kvb_backend **backs, int *nb, kvb_dtype *dts,
                             int *nd);
/* --key-axis resolved; --group must be a power of two. */
int kvb_opts_key_axes(const kvb_opts *c, kvb_key_axis *axes, int *n);
/* The backend options of one case that flags set: the quantized backend's --group,
 * --residual and one key axis, and the window backend's --window. */
void kvb_opts_case(const kvb_opts *c, int head_dim, kvb_key_axis axis, kvb_options *o);
/* Says once which group a quantized command uses when it is not the usual 32. */
void kvb_opts_note_group(const kvb_opts *c, int head_dim, int any_quant);
/* Whether backend b goes with storage type dts[j] in a cross product. */
int kvb_pair_wanted(const kvb_backend *b, const kvb_dtype *dts, int nd, int j);

/* --pin: binds this thread as thread 0; a machine that cannot bind gets a note. */
int kvb_opts_pin(const kvb_opts *c, const kvb_topo *topo, kvb_pin_set *ps);
/* The options' hook that pins a cache's workers, when pinning is on. */
void kvb_opts_pin_workers(kvb_options *o, kvb_pin_set *ps);

/* An ask beyond the memory the OS reports available is refused; what names it. */
int kvb_check_memory(const char *what, double bytes);
/* Every case is unsupported: said with the last reason; KVB_EXIT_NOTHING. */
int kvb_nothing_to_measure(const char *noun, int n, const char *why);
/* More threads than this process's cores: warned on stderr; 1 when so. */
int kvb_threads_oversubscribed(int threads);

#endif
