/* csv.h: reading kvbench's CSV files row by row, lines of any length.
 *
 * Contract. A row is one line (getline: no length limit, so a long samples
 * field is read whole), split at commas; a field in double quotes may hold
 * commas, and "" inside it stands for one quote; a trailing comma ends the
 * row with an empty field, and an empty line is a row of no fields. The
 * line's end ("\n" or "\r\n") is not part of the last field; a last line
 * without one is still a row, with cut set, for readers that refuse a file
 * cut short. Columns are
 * found by name in a header row (kvb_csv_header keeps a copy of the current
 * row as that header), so a reader never depends on the order or count of
 * the columns; columns.h names them. Fields point into the reader's buffer
 * and last until the next row. */
#ifndef KVB_CSV_H
#define KVB_CSV_H

#include <stddef.h>
#include <stdio.h>

typedef struct kvb_csv {
    FILE *f;
    char *line; /* the current row's text, split in place */
    size_t line_cap;
    char **field; /* the current row: n fields */
    int n, field_cap;
    char *head_text; /* the header: n_head names */
    char **head;
    int n_head;
    int no;  /* the current row's line number, from 1 */
    int cut; /* the current row had no end of line */
} kvb_csv;

/* 0, or an errno with msg "'path': why". */
int kvb_csv_open(kvb_csv *c, const char *path, char *msg, size_t msg_len);
/* 1: a row in field[0..n); 0: the end; -1: out of memory. */
int kvb_csv_next(kvb_csv *c);
/* The current row becomes the header: 0, or -1 out of memory. */
int kvb_csv_header(kvb_csv *c);
/* The header's column of that name, or -1. */
int kvb_csv_column(const kvb_csv *c, const char *name);
/* The columns of n names into col[]: the largest of them, or -1 when one is
 * missing (a row with more fields than that holds them all). */
int kvb_csv_columns(const kvb_csv *c, const char *const *names, int *col, int n);
/* The current row's field in column col; NULL when col < 0 or the row is shorter. */
const char *kvb_csv_get(const kvb_csv *c, int col);
void kvb_csv_close(kvb_csv *c);

/* Splits one line (without its end) in place into *f (grown as needed; *cap
 * its size): the field count, or -1 out of memory. */
int kvb_csv_split(char *line, char ***f, int *cap);

#endif
