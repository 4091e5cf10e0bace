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
    .intro = "Writes the seeded random model as a llama2.c checkpoint (needs head-dim x heads =\n"
             "dim) or, with --format gguf, as GGUF v3 with F32 tensors.",
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
    if ((r = kvb_check_memory("the model's f32 weights",
                              4.0 * (double)kvb_model_param_count(&cfg))) != 0)
        return r;
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
