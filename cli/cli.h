/* cli.h: what the kvbench commands share: exit statuses, the parsing helpers
 * and the help text. Only main() exits; each command returns one of these.
 *
 * Exit statuses (README, "Exit status"):
 *   0  done: everything asked was measured and written;
 *   1  a point failed, or a file could not be written or read;
 *   2  bad usage: a flag, value, name or file refused before any work;
 *   3  nothing measured: every point was skipped (unsupported) or timed out;
 *      what was written says so. */
#ifndef KVB_CLI_H
#define KVB_CLI_H

enum {
    KVB_EXIT_OK = 0, KVB_EXIT_FAIL = 1, KVB_EXIT_USAGE = 2, KVB_EXIT_NOTHING = 3,
};

/* "kvbench: <message>" and a pointer to help on stderr; returns KVB_EXIT_USAGE */
int kvb_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* *out = s when it is a whole number (or number) in [lo, hi]; else a usage error */
int kvb_parse_int(const char *flag, const char *s, long long lo, long long hi, long long *out);
int kvb_parse_double(const char *flag, const char *s, double lo, double hi, double *out);
/* splits a comma list in place into at most max items; refuses empty items */
int kvb_split_list(const char *flag, char *s, char **items, int max, int *n);
/* help for one command (NULL: the overview) on stdout */
void kvb_print_help(const char *cmd);

/* the commands that live outside main.c */
int kvb_cmd_sweep(int argc, char **argv, const char *argv0);
int kvb_cmd_report(int argc, char **argv);
int kvb_cmd_merge(int argc, char **argv);
int kvb_cmd_compare(int argc, char **argv);

#endif
