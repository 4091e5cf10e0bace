/* cmd_export.c: kvbench export: the seeded random model (or a checkpoint, with
 * its --max-seq) written as a llama2.c checkpoint or a GGUF file (--format)
 * through a temporary file; never over an existing file. */
#define _XOPEN_SOURCE 700
#include "cli.h"
#include "opts.h"
#include "../model/gguf.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

const kvb_cmd_spec kvb_export_spec = {
    .usage = "--out FILE [flags]",
    .intro = "Writes the seeded random model as a llama2.c checkpoint (f32 weights; needs\n"
             "head-dim x heads = dim) or, with --format gguf, as GGUF v3 with its tensors in\n"
             "--wtype (F32, F16, BF16 or Q8_0; norms F32).",
    .flags = kvb_opts_flags,
};

int kvb_cmd_export(const kvb_cli *cli, const kvb_command *self, int argc, char **argv)
{
    kvb_opts c;
    int r = kvb_opts_parse(cli, self, argc, argv, &c);
    if (r) return r < 0 ? 0 : r;
    if (!c.out) return kvb_usage_error("export needs --out FILE");
    int gguf = strcmp(c.format, "gguf") == 0;
    if (!gguf && strcmp(c.format, "llama2c") != 0)
        return kvb_usage_error("unknown --format '%s': allowed are llama2c, gguf", c.format);
    struct stat sb;
    if (lstat(c.out, &sb) == 0)
        return kvb_usage_error(
            "--out '%s' exists: export never overwrites a file; choose another name", c.out);
    kvb_model_config cfg;
    const char *src;
    if ((r = kvb_opts_model_config(&c, &cfg, &src)) != 0) return r;
    kvb_wtype wt;
    if ((r = kvb_opts_wtype(&c, &wt)) != 0) return r;
    double bytes = (double)kvb_model_weight_bytes(&cfg, wt);
    if ((r = kvb_check_memory("the model's weights", bytes)) != 0) return r;
    kvb_model m;
    if ((r = kvb_opts_build_model(&c, &cfg, &m)) != 0) return r;
    char msg[512];
    kvb_status st = gguf ? kvb_gguf_save(&m, c.out, msg, sizeof msg)
                         : kvb_model_save(&m, c.out, msg, sizeof msg);
    kvb_model_free(&m);
    if (st != KVB_STATUS_OK) {
        fprintf(stderr, "kvbench: %s\n", msg);
        return st == KVB_STATUS_UNSUPPORTED || st == KVB_STATUS_INVALID_ARG ? KVB_EXIT_USAGE : 1;
    }
    printf("wrote %s\n", c.out);
    return 0;
}
