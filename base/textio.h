/* textio.h: reading back what kvbench itself wrote: whole files, CSV lines
 * (a quoted field may hold commas), and numbers or strings after a key in its
 * own JSON. Searching kvbench's stable output for known keys, not parsing
 * arbitrary JSON. */
#ifndef KVB_TEXTIO_H
#define KVB_TEXTIO_H

#include <stddef.h>
#include <stdio.h>

/* The file's bytes plus a terminating 0 (malloc'd), or NULL with errno set. */
char *kvb_slurp(const char *path);
/* The same, and its length (it may hold NUL bytes) into *len. */
char *kvb_slurp_len(const char *path, size_t *len);

/* Splits one CSV line in place; returns the field count (at most max). */
int kvb_csv_fields(char *line, char **f, int max);

/* The column of name among the n header fields, or -1. */
int kvb_csv_col(char *const *head, int n, const char *name);

/* The number after "key": within [s, end) (end NULL: to the string's end); a
 * '[' before it is skipped (the first of a pair); NaN when absent or null. */
double kvb_json_num(const char *s, const char *end, const char *key);

/* The string after "key": within [s, end) into out; "" when absent. */
void kvb_json_str(const char *s, const char *end, const char *key, char *out, size_t n);

/* A new temporary file beside path, "path.XXXXXX", created exclusively (an
 * existing file or link of that name is never opened or replaced), open for
 * writing; tmp receives its name for the rename or link that publishes it.
 * NULL with msg set when it cannot be made. */
FILE *kvb_tmp_open(const char *path, char *tmp, size_t tmp_len, char *msg, size_t msg_len);

#endif
