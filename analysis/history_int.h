/* history_int.h: what history.c and history_plot.c share (history.h is the
 * contract). */
#ifndef KVB_HISTORY_INT_H
#define KVB_HISTORY_INT_H

#include <stddef.h>
#include "history.h"

enum { KVB_HIST_PATH = 2400 }; /* the paths history builds */

/* Runs argv[0] (found on PATH) with no input, its stdout into out (at most n - 1 bytes) and its
 * stderr into err (en bytes; both may be NULL). Its exit status; -1 when it could not be
 * started (*missing set when it is not installed) or did not exit. */
int kvb_hist_run(char *const argv[], char *out, size_t n, char *err, size_t en, int *missing);

#endif
