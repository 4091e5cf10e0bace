/* cli.h: what the kvbench commands share: exit statuses, the parsing helpers
 * and the commands main() dispatches to (each in its own cmd_*.c, with its
 * flag rows and help). Only main() exits; each command returns one of these.
 *
 * Exit statuses (README, "Exit status"):
 *   0  done: everything asked was measured and written;
 *   1  a point failed, or a file could not be written or read;
 *   2  bad usage: a flag, value, name or file refused before any work;
 *   3  nothing measured: every point was skipped (unsupported) or timed out;
 *      what was written says so. */
#ifndef KVB_CLI_H
#define KVB_CLI_H

#include "flags.h"

enum {
    KVB_EXIT_OK = 0, KVB_EXIT_FAIL = 1, KVB_EXIT_USAGE = 2, KVB_EXIT_NOTHING = 3,
};

enum { KVB_MAX_LIST = 16 };   /* items in one comma list */

/* "kvbench: <message>" and a pointer to help on stderr; returns KVB_EXIT_USAGE */
int kvb_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* *out = s when it is a whole number (or number) in [lo, hi]; else a usage error */
int kvb_parse_int(const char *flag, const char *s, long long lo, long long hi, long long *out);
int kvb_parse_double(const char *flag, const char *s, double lo, double hi, double *out);
/* splits a comma list in place into at most max items; refuses empty items */
int kvb_split_list(const char *flag, char *s, char **items, int max, int *n);
/* --gate's value (compare, ab): "all" or a list of time, ratio, ceiling, exact,
 * tolerance as a mask of 1 << kvb_cmp_kind; else a usage error */
int kvb_gate_parse(const char *gate, unsigned *mask);
/* The definition def names (bench/sweeps/NAME.sweep, a .sweep file, "" for
 * --set alone) into *sw, whose keys on entry (the --set values) override the
 * file's; else a usage error (sweep, ab) */
/* this binary's path, for child processes (sweep, ab) */
void kvb_self_path(const char *argv0, char *buf, size_t n);
struct kvb_sweep;
int kvb_sweep_named(const char *def, struct kvb_sweep *sw);
/* a comma list of integers in [lo, hi] into out (at most KVB_MAX_LIST) */
int kvb_parse_int_list(const char *flag, const char *list, long long lo, long long hi, int *out,
                       int *n);
/* a comma list of names into their indices in names[]; an unknown one refused with the allowed */
int kvb_parse_enum_list(const char *flag, const char *list, const char *const *names, int n_names,
                        int *out, int *n);

/* the commands (main.c's table names them): 0 done, else an exit status */
typedef int kvb_command_fn(const kvb_cli *cli, const kvb_command *self, int argc, char **argv);
kvb_command_fn kvb_cmd_run, kvb_cmd_attend, kvb_cmd_serve, kvb_cmd_export, kvb_cmd_info,
    kvb_cmd_list, kvb_cmd_sweep, kvb_cmd_report, kvb_cmd_merge, kvb_cmd_compare, kvb_cmd_tokenize;
extern const kvb_cmd_spec kvb_run_spec, kvb_attend_spec, kvb_serve_spec, kvb_export_spec,
    kvb_info_spec, kvb_list_spec, kvb_sweep_spec, kvb_report_spec, kvb_merge_spec,
    kvb_compare_spec, kvb_tokenize_spec;
kvb_command_fn kvb_cmd_ppl, kvb_cmd_serve_real;
extern const kvb_cmd_spec kvb_ppl_spec, kvb_serve_real_spec;
kvb_command_fn kvb_cmd_ab;
extern const kvb_cmd_spec kvb_ab_spec;
kvb_command_fn kvb_cmd_history;
extern const kvb_cmd_spec kvb_history_spec;

#endif
