/* cli.c: the parsing helpers every kvbench command shares. Each refusal prints
 * one line naming the flag, the value and what is allowed, and returns
 * KVB_EXIT_USAGE for the command to return. */
#define _XOPEN_SOURCE 700
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kvb_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("kvbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n(see 'kvbench help')\n", stderr);
    va_end(ap);
    return KVB_EXIT_USAGE;
}

int kvb_parse_int(const char *flag, const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return kvb_usage_error("%s '%s': expected an integer from %lld to %lld", flag, s, lo, hi);
    *out = v;
    return 0;
}

int kvb_parse_double(const char *flag, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return kvb_usage_error("%s '%s': expected a number from %g to %g", flag, s, lo, hi);
    *out = v;
    return 0;
}

/* Splits a comma list in place; refuses empty items and more than max items. */
int kvb_split_list(const char *flag, char *s, char **items, int max, int *n)
{
    *n = 0;
    for (char *tok = s;;) {
        char *comma = strchr(tok, ',');
        if (comma) *comma = 0;
        if (!*tok) return kvb_usage_error("%s: empty item in list", flag);
        if (*n == max) return kvb_usage_error("%s: more than %d items", flag, max);
        /* a repeated item would make two points with one label, which readers add together */
        for (int i = 0; i < *n; i++)
            if (strcmp(items[i], tok) == 0)
                return kvb_usage_error("%s: '%s' is listed twice; each item may appear once", flag,
                                       tok);
        items[(*n)++] = tok;
        if (!comma) break;
        tok = comma + 1;
    }
    return 0;
}

int kvb_parse_int_list(const char *flag, const char *list, long long lo, long long hi, int *out,
                       int *n)
{
    char buf[512];
    char *items[KVB_MAX_LIST];
    snprintf(buf, sizeof buf, "%s", list);
    if (kvb_split_list(flag, buf, items, KVB_MAX_LIST, n)) return KVB_EXIT_USAGE;
    for (int i = 0; i < *n; i++) {
        long long v = 0;
        if (kvb_parse_int(flag, items[i], lo, hi, &v)) return KVB_EXIT_USAGE;
        out[i] = (int)v;
    }
    return 0;
}

int kvb_parse_enum_list(const char *flag, const char *list, const char *const *names, int n_names,
                        int *out, int *n)
{
    char buf[512], allowed[256] = "";
    char *items[KVB_MAX_LIST];
    snprintf(buf, sizeof buf, "%s", list);
    if (kvb_split_list(flag, buf, items, KVB_MAX_LIST, n)) return KVB_EXIT_USAGE;
    for (int j = 0; j < n_names; j++)
        snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed), "%s%s", j ? ", " : "",
                 names[j]);
    for (int i = 0; i < *n; i++) {
        int j = 0;
        while (j < n_names && strcmp(items[i], names[j]) != 0) j++;
        if (j == n_names)
            return kvb_usage_error("unknown %s '%s': allowed are %s", flag, items[i], allowed);
        out[i] = j;
    }
    return 0;
}
