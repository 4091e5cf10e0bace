/* csv.c: see csv.h. */
#define _POSIX_C_SOURCE 200809L /* getline */
#include "csv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int push(char ***f, int *cap, int n, char *p)
{
    if (n == *cap) {
        int c = *cap ? 2 * *cap : 32;
        char **g = realloc(*f, (size_t)c * sizeof *g);
        if (!g) return -1;
        *f = g;
        *cap = c;
    }
    (*f)[n] = p;
    return 0;
}

int kvb_csv_split(char *line, char ***f, int *cap)
{
    if (!*line) return 0; /* an empty line: no fields */
    int n = 0;
    for (char *p = line;;) {
        if (*p == '"') {
            char *start = ++p, *o = p; /* the field, with "" made " in place */
            while (*p && !(p[0] == '"' && p[1] != '"')) {
                if (p[0] == '"') p++;
                *o++ = *p++;
            }
            if (*p) p++;
            int more = *p == ',';
            *o = 0;
            if (push(f, cap, n++, start)) return -1;
            if (!more) break; /* anything else after the quote ends the row */
            p++;
        } else {
            char *start = p;
            while (*p && *p != ',') p++;
            int more = *p == ',';
            *p = 0;
            if (push(f, cap, n++, start)) return -1;
            if (!more) break;
            p++;
        }
    }
    return n;
}

int kvb_csv_open(kvb_csv *c, const char *path, char *msg, size_t msg_len)
{
    memset(c, 0, sizeof *c);
    c->f = fopen(path, "r");
    if (c->f) return 0;
    int e = errno ? errno : EIO;
    snprintf(msg, msg_len, "'%s': %s", path, strerror(e));
    return e;
}

int kvb_csv_next(kvb_csv *c)
{
    ssize_t len = getline(&c->line, &c->line_cap, c->f);
    if (len < 0) return 0;
    c->no++;
    c->cut = c->line[len - 1] != '\n';
    if (!c->cut) c->line[--len] = 0;
    if (len && c->line[len - 1] == '\r') c->line[--len] = 0;
    c->n = kvb_csv_split(c->line, &c->field, &c->field_cap);
    return c->n < 0 ? (c->n = 0, -1) : 1;
}

int kvb_csv_header(kvb_csv *c)
{
    size_t len = 0;
    for (int i = 0; i < c->n; i++) len += strlen(c->field[i]) + 1;
    char *t = malloc(len ? len : 1);
    char **h = malloc((size_t)(c->n ? c->n : 1) * sizeof *h);
    if (!t || !h) {
        free(t);
        free(h);
        return -1;
    }
    free(c->head_text);
    free(c->head);
    c->head_text = t;
    c->head = h;
    c->n_head = c->n;
    for (int i = 0; i < c->n; i++) {
        size_t k = strlen(c->field[i]) + 1;
        memcpy(t, c->field[i], k);
        h[i] = t;
        t += k;
    }
    return 0;
}

int kvb_csv_column(const kvb_csv *c, const char *name)
{
    for (int i = 0; i < c->n_head; i++)
        if (strcmp(c->head[i], name) == 0) return i;
    return -1;
}

int kvb_csv_columns(const kvb_csv *c, const char *const *names, int *col, int n)
{
    int last = -1, all = 1;
    for (int i = 0; i < n; i++) {
        col[i] = kvb_csv_column(c, names[i]);
        all &= col[i] >= 0;
        if (col[i] > last) last = col[i];
    }
    return all ? last : -1;
}

const char *kvb_csv_get(const kvb_csv *c, int col)
{
    return col >= 0 && col < c->n ? c->field[col] : NULL;
}

void kvb_csv_close(kvb_csv *c)
{
    if (c->f) fclose(c->f);
    free(c->line);
    free(c->field);
    free(c->head_text);
    free(c->head);
    memset(c, 0, sizeof *c);
}
