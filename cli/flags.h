/* flags.h: kvbench's commands and their flags as data. A flag row names the
 * flag, the commands that take it, its kind, range, default and help; a
 * command parses argv against its rows (kvb_flags_parse) and prints its help
 * from the same rows (kvb_flags_help), so a flag is documented exactly where
 * it is accepted, and a flag of another command is refused, naming both.
 *
 * A flag's value is the next argument or follows '=' (--tokens=8). A flag
 * given twice keeps its last value (a KVB_FLAG_CALL row sees every one). */
#ifndef KVB_FLAGS_H
#define KVB_FLAGS_H

#include <stddef.h>

/* One bit per command: a row's cmds says which commands take it. */
enum {
    KVB_CMD_RUN = 1u << 0, KVB_CMD_ATTEND = 1u << 1, KVB_CMD_SERVE = 1u << 2,
    KVB_CMD_EXPORT = 1u << 3, KVB_CMD_INFO = 1u << 4, KVB_CMD_LIST = 1u << 5,
    KVB_CMD_SWEEP = 1u << 6, KVB_CMD_REPORT = 1u << 7, KVB_CMD_MERGE = 1u << 8,
    KVB_CMD_COMPARE = 1u << 9, KVB_CMD_VERSION = 1u << 10, KVB_CMD_HELP = 1u << 11,
    KVB_CMD_TOKENIZE = 1u << 12,
    KVB_CMD_PPL = 1u << 13, KVB_CMD_SERVE_REAL = 1u << 14, KVB_CMD_HISTORY = 1u << 15,
    KVB_CMD_AB = 1u << 16,
};

typedef enum {
    KVB_FLAG_INT,    /* int in [lo, hi] */
    KVB_FLAG_INT64,  /* long long in [lo, hi] */
    KVB_FLAG_DOUBLE, /* double in [dlo, dhi] */
    KVB_FLAG_STRING, /* const char *, not empty: a name or a path */
    KVB_FLAG_LIST,   /* const char *, a comma list the command splits and checks */
    KVB_FLAG_TEXT,   /* const char *, empty too: the command judges it */
    KVB_FLAG_SWITCH, /* int set to 1; takes no value */
    KVB_FLAG_CALL,   /* call(opts, value) for each one given, in order */
} kvb_flag_kind;

typedef struct kvb_flag {
    const char *name;   /* "--tokens" */
    unsigned cmds;      /* KVB_CMD_* of the commands that take it */
    kvb_flag_kind kind;
    long long lo, hi;   /* KVB_FLAG_INT, KVB_FLAG_INT64 */
    double dlo, dhi;    /* KVB_FLAG_DOUBLE */
    /* the default as a value: set before argv is read, so help cannot disagree
     * with what runs; NULL leaves the field as the command initialised it */
    const char *def;
    const char *def_help; /* shown instead of def where a rule, not a value, decides */
    const char *meta;     /* the value's name in help: N, LIST, FILE; NULL for a switch */
    const char *help;
    size_t off;           /* where the value goes: offsetof into the command's options */
    int (*call)(void *opts, const char *value);   /* KVB_FLAG_CALL: 0 or an exit status */
} kvb_flag;

/* What a command is made of besides its function: its rows and its help. */
typedef struct kvb_cmd_spec {
    const char *usage;    /* after "usage: kvbench NAME ": "[flags]"; may hold more lines */
    const char *intro;    /* before the flags */
    const char *epilogue; /* after them: columns, exit statuses; NULL for none */
    const kvb_flag *flags; /* ends with a row whose name is NULL; NULL: no flags */
    /* each argument that is not a flag, in order: 0 or an exit status; NULL: none taken */
    int (*positional)(void *opts, const char *arg);
} kvb_cmd_spec;

typedef struct kvb_command kvb_command;

/* What main() hands every command. */
typedef struct kvb_cli {
    const kvb_command *cmds;   /* every command: a refused flag names those that take it */
    int n_cmds;
    const char *argv0, *cmdline;
} kvb_cli;

struct kvb_command {
    const char *name;
    unsigned bit;
    int (*run)(const kvb_cli *cli, const kvb_command *self, int argc, char **argv);
    const char *summary;       /* one line in 'kvbench help' */
    const kvb_cmd_spec *spec;
};

/* Sets the defaults of self's rows into opts, then reads argv against them.
 * 0: parsed; -1: help was asked for and printed (the command returns 0);
 * else the exit status of a refusal, said on stderr. */
int kvb_flags_parse(const kvb_cli *cli, const kvb_command *self, int argc, char **argv,
                    void *opts);
/* self's help on stdout: usage, intro, a line per row it takes, epilogue. */
void kvb_flags_help(const kvb_command *self);

#endif
