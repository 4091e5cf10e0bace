/* main.c: kvbench's entry point: the command table (name, function, one-line
 * help, flag rows) and the dispatch to it. 'kvbench help' lists the table;
 * 'kvbench help CMD' and 'kvbench CMD --help' print help generated from that
 * command's rows. Only this file exits: each command returns its status.
 * To add a command: a cmd_NAME.c with its function and kvb_cmd_spec, a bit
 * in flags.h, and a line in the table below. */
#define _XOPEN_SOURCE 700
#include "cli.h"
#include "../harness/results.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static kvb_command_fn cmd_version, cmd_help;
/* cmd_serve_real.c's (cli.h is another's file) */

static const kvb_cmd_spec version_spec = {
    .usage = "",
    .intro = "The commit and compiler of this build (also kvbench --version).",
};

/* the topic of 'kvbench help TOPIC' */
static int help_topic(void *opts, const char *arg)
{
    const char **topic = opts;
    if (*topic) return kvb_usage_error("help takes one command, got '%s' and '%s'", *topic, arg);
    *topic = arg;
    return 0;
}

static const kvb_cmd_spec help_spec = {
    .usage = "[COMMAND]",
    .intro = "The commands, or one command's usage and flags.",
    .positional = help_topic,
};

static const kvb_command commands[] = {
    {"run", KVB_CMD_RUN, kvb_cmd_run, "decode with each backend and write results/<run-id>/",
     &kvb_run_spec},
    {"attend", KVB_CMD_ATTEND, kvb_cmd_attend,
     "time attend alone across backends, block sizes and contexts", &kvb_attend_spec},
    {"serve-sim", KVB_CMD_SERVE, kvb_cmd_serve,
     "many sequences under one memory budget: utilization, fit, sharing", &kvb_serve_spec},
    {"serve", KVB_CMD_SERVE_REAL, kvb_cmd_serve_real,
     "requests through the model, continuous batching under one KV budget", &kvb_serve_real_spec},
    {"sweep", KVB_CMD_SWEEP, kvb_cmd_sweep,
     "a named product of runs, attend tables, quality and serving points", &kvb_sweep_spec},
    {"report", KVB_CMD_REPORT, kvb_cmd_report,
     "report.md, report.html and plot data for a result directory", &kvb_report_spec},
    {"merge", KVB_CMD_MERGE, kvb_cmd_merge, "combine several machines' sweep directories",
     &kvb_merge_spec},
    {"compare", KVB_CMD_COMPARE, kvb_cmd_compare,
     "BASE NEW: regressions, with a Mann-Whitney U test per case", &kvb_compare_spec},
    {"ab", KVB_CMD_AB, kvb_cmd_ab,
     "BASE_REV [NEW_REV]: two commits' binaries in turn on one sweep, then compare",
     &kvb_ab_spec},
    {"history", KVB_CMD_HISTORY, kvb_cmd_history,
     "add|show|check: results per machine and commit, the newest judged", &kvb_history_spec},
    {"list", KVB_CMD_LIST, kvb_cmd_list, "backends, presets, storage types", &kvb_list_spec},
    {"info", KVB_CMD_INFO, kvb_cmd_info, "machine description and measured ceilings",
     &kvb_info_spec},
    {"export", KVB_CMD_EXPORT, kvb_cmd_export,
     "write a seeded random model as a llama2.c checkpoint", &kvb_export_spec},
    {"tokenize", KVB_CMD_TOKENIZE, kvb_cmd_tokenize, "text to token ids with a model's own vocab",
     &kvb_tokenize_spec},
    {"ppl", KVB_CMD_PPL, kvb_cmd_ppl,
     "perplexity, KL and top-1 of every cache type on the same text windows", &kvb_ppl_spec},
    {"version", KVB_CMD_VERSION, cmd_version,
     "the commit and compiler of this build (also --version)", &version_spec},
    {"help", KVB_CMD_HELP, cmd_help, "this list, or one command's flags (help COMMAND)",
     &help_spec},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static const kvb_command *find_command(const char *name)
{
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

/* "run, attend, ..., help" into names */
static const char *command_names(char *names, size_t n)
{
    names[0] = 0;
    for (int i = 0; i < N_COMMANDS; i++)
        snprintf(names + strlen(names), n - strlen(names), "%s%s", i ? ", " : "", commands[i].name);
    return names;
}

static int cmd_version(const kvb_cli *cli, const kvb_command *self, int argc, char **argv)
{
    int r = kvb_flags_parse(cli, self, argc, argv, NULL);
    if (r) return r < 0 ? 0 : r;
    char v[256];
    kvb_version(v, sizeof v);
    puts(v);
    return 0;
}

static int cmd_help(const kvb_cli *cli, const kvb_command *self, int argc, char **argv)
{
    const char *topic = NULL;
    int r = kvb_flags_parse(cli, self, argc, argv, &topic);
    if (r) return r < 0 ? 0 : r;
    if (topic) {
        const kvb_command *c = find_command(topic);
        char names[256];
        if (!c)
            return kvb_usage_error("help: unknown command '%s': allowed are %s", topic,
                                   command_names(names, sizeof names));
        kvb_flags_help(c);
        return 0;
    }
    puts("kvbench: what a KV cache buys and costs in autoregressive decoding\n\n"
         "usage: kvbench <command> [flags]\n\n"
         "commands:");
    for (int i = 0; i < N_COMMANDS; i++)
        printf("  %-10s %s\n", commands[i].name, commands[i].summary);
    puts("\n'kvbench help run' (or 'kvbench run --help') lists the run flags; a command\n"
         "refuses a flag it does not take, naming the commands that take it.\n\n"
         "exit status: 0 done; 1 a point failed or a file could not be read or written;\n"
         "2 bad usage (refused before any work); 3 nothing measured (every point\n"
         "unsupported or timed out).");
    return 0;
}

int main(int argc, char **argv)
{
    /* an ignored SIGCHLD inherited from the caller would make every waitpid
     * (sweep points, their dry runs, gnuplot, merge's copies) fail */
    signal(SIGCHLD, SIG_DFL);
    char cmdline[8192] = "";
    for (int i = 0; i < argc; i++)
        snprintf(cmdline + strlen(cmdline), sizeof cmdline - strlen(cmdline), "%s%s", i ? " " : "",
                 argv[i]);
    char names[256];
    if (argc < 2)
        return kvb_usage_error("no command given: allowed are %s",
                               command_names(names, sizeof names));
    const char *name = argv[1];
    if (strcmp(name, "--version") == 0) name = "version";
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) name = "help";
    const kvb_command *cmd = find_command(name);
    if (!cmd)
        return kvb_usage_error("unknown command '%s': allowed are %s", name,
                               command_names(names, sizeof names));
    kvb_cli cli = {commands, N_COMMANDS, argv[0], cmdline};
    return cmd->run(&cli, cmd, argc - 2, argv + 2);
}
