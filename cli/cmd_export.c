/* cmd_export.c: kvbench export: the seeded random model (or a checkpoint, or
 * --model's file, with its --max-seq) written as a llama2.c checkpoint, a GGUF
 * file or a Hugging Face safetensors directory (--format) through a temporary
 * file or directory; never over an existing path. llama2.c and GGUF hold RoPE's
 * interleaved layout: a rotate-half model (a Hugging Face checkpoint) has its wq
 * and wk rows permuted back first (model/permute.h), so every file computes the
 * same function. */
#define _XOPEN_SOURCE 700
#include "cli.h"
#include "opts.h"
#include "../model/gguf.h"
#include "../model/permute.h"
#include "../model/safetensors.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

const kvb_cmd_spec kvb_export_spec = {
    .usage = "--out PATH [flags]",
    .intro = "Writes the seeded random model as a llama2.c checkpoint (f32 weights; needs\n"
             "head-dim x heads = dim) or, with --format gguf, as GGUF v3 with its tensors in\n"
             "--wtype (F32, F16, BF16 or Q8_0; norms F32), or with --format safetensors as a\n"
             "Hugging Face Llama checkpoint directory (F32, F16 or BF16). --model converts a\n"
             "model file instead (GGUF, safetensors, llama2.c) keeping its weight types.",
    .flags = kvb_opts_flags,
};

int kvb_cmd_export(const kvb_cli *cli, const kvb_command *self, int argc, char **argv)
{
    kvb_opts c;
    int r = kvb_opts_parse(cli, self, argc, argv, &c);
    if (r) return r < 0 ? 0 : r;
    if (!c.out) return kvb_usage_error("export needs --out PATH");
    int gguf = strcmp(c.format, "gguf") == 0, st_dir = strcmp(c.format, "safetensors") == 0;
    if (!gguf && !st_dir && strcmp(c.format, "llama2c") != 0)
        return kvb_usage_error("unknown --format '%s': allowed are llama2c, gguf, safetensors",
                               c.format);
    struct stat sb;
    if (lstat(c.out, &sb) == 0)
        return kvb_usage_error(
            "--out '%s' exists: export never overwrites a file; choose another name", c.out);
    kvb_model_config cfg;
    const char *src;
    if ((r = kvb_opts_model_config(&c, &cfg, &src)) != 0) return r;
    kvb_wtype wt;
    if ((r = kvb_opts_wtype(&c, &wt)) != 0) return r;
    double bytes = kvb_opts_weight_bytes(&c, &cfg, wt);
    if ((r = kvb_check_memory("the model's weights", bytes)) != 0) return r;
    kvb_model m;
    if ((r = kvb_opts_build_model(&c, &cfg, &m)) != 0) return r;
    char msg[512];
    kvb_model il = {0};   /* m in the interleaved layout, for llama2.c and GGUF */
    kvb_status st = KVB_STATUS_OK;
    if (!st_dir && m.cfg.rope_layout != KVB_ROPE_LAYOUT_INTERLEAVED)
        st = kvb_model_relayout(&m, &il, KVB_ROPE_LAYOUT_INTERLEAVED, msg, sizeof msg);
    const kvb_model *out = il.w.layer ? &il : &m;
    if (st == KVB_STATUS_OK)
        st = st_dir ? kvb_hf_save(out, c.out, msg, sizeof msg)
             : gguf ? kvb_gguf_save(out, c.out, msg, sizeof msg)
                    : kvb_model_save(out, c.out, msg, sizeof msg);
    kvb_model_free(&il);
    kvb_model_free(&m);
    if (st != KVB_STATUS_OK) {
        fprintf(stderr, "kvbench: %s\n", msg);
        return st == KVB_STATUS_UNSUPPORTED || st == KVB_STATUS_INVALID_ARG ? KVB_EXIT_USAGE : 1;
    }
    printf("wrote %s\n", c.out);
    return 0;
}
