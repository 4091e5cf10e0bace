/* flags.c: reads a command's argv against its flag rows and prints its help
 * from them (flags.h). Every refusal is one line naming the flag, the value
 * and what is allowed, and returns KVB_EXIT_USAGE; a flag another command
 * takes is refused naming the commands that take it. */
#define _XOPEN_SOURCE 700
#include "flags.h"
#include "cli.h"

#include <stdio.h>
#include <string.h>

enum { HELP_WIDTH = 80, HELP_INDENT = 22, MAX_FLAG_NAME = 64 };

/* self's row named name, or NULL when self does not take it. */
static const kvb_flag *find_row(const kvb_command *self, const char *name)
{
    for (const kvb_flag *f = self->spec->flags; f && f->name; f++)
        if ((f->cmds & self->bit) && strcmp(f->name, name) == 0) return f;
    return NULL;
}

/* Stores one value (or the default) where the row says; 0 or KVB_EXIT_USAGE. */
static int set_value(const kvb_flag *f, const char *val, void *opts)
{
    char *dst = (char *)opts + f->off;
    if (f->kind == KVB_FLAG_SWITCH) {
        *(int *)dst = 1;
        return 0;
    }
    int empty_ok = f->kind != KVB_FLAG_STRING && f->kind != KVB_FLAG_LIST;
    if (!val || (!*val && !empty_ok)) return kvb_usage_error("%s needs a value", f->name);
    long long v = 0;
    switch (f->kind) {
    case KVB_FLAG_INT:
        if (kvb_parse_int(f->name, val, f->lo, f->hi, &v)) return KVB_EXIT_USAGE;
        *(int *)dst = (int)v;
        return 0;
    case KVB_FLAG_INT64:
        return kvb_parse_int(f->name, val, f->lo, f->hi, (long long *)dst) ? KVB_EXIT_USAGE : 0;
    case KVB_FLAG_DOUBLE:
        return kvb_parse_double(f->name, val, f->dlo, f->dhi, (double *)dst) ? KVB_EXIT_USAGE : 0;
    case KVB_FLAG_CALL:
        return f->call(opts, val);
    default:
        *(const char **)dst = val;
        return 0;
    }
}

/* The commands other than self that take name, as "a", "a and b", "a, b and c". */
static int takers(const kvb_cli *cli, const kvb_command *self, const char *name, char *out,
                  size_t n)
{
    const char *who[32];
    int k = 0;
    for (int c = 0; c < cli->n_cmds && k < 32; c++)
        if (&cli->cmds[c] != self && find_row(&cli->cmds[c], name)) who[k++] = cli->cmds[c].name;
    out[0] = 0;
    for (int i = 0; i < k; i++)
        snprintf(out + strlen(out), n - strlen(out), "%s%s",
                 i == 0       ? ""
                 : i + 1 == k ? " and "
                              : ", ",
                 who[i]);
    return k;
}

/* Edit distance of two short strings (flag names), for a suggestion. */
static int distance(const char *a, const char *b)
{
    int row[MAX_FLAG_NAME + 1];
    size_t la = strlen(a), lb = strlen(b);
    if (la > MAX_FLAG_NAME || lb > MAX_FLAG_NAME) return MAX_FLAG_NAME;
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* A flag self does not take: another command's (named), or a likely typo of one of self's. */
static int refuse_flag(const kvb_cli *cli, const kvb_command *self, const char *name)
{
    char who[256];
    int k = takers(cli, self, name, who, sizeof who);
    if (k) {
        fprintf(stderr, "kvbench: %s is not a flag of %s (%s take%s it)\n", name, self->name, who,
                k == 1 ? "s" : "");
        if (self->spec->flags)
            fprintf(stderr, "(see 'kvbench help %s' for %s's flags)\n", self->name, self->name);
        else
            fprintf(stderr, "(%s takes no flags)\n", self->name);
        return KVB_EXIT_USAGE;
    }
    const char *best = NULL;
    int best_d = 3; /* two edits at most: further is a guess */
    for (const kvb_flag *f = self->spec->flags; f && f->name; f++) {
        int d = (f->cmds & self->bit) ? distance(name, f->name) : best_d;
        if (d < best_d) {
            best_d = d;
            best = f->name;
        }
    }
    if (best)
        return kvb_usage_error("unknown flag '%s' for %s (did you mean %s?)", name, self->name,
                               best);
    return kvb_usage_error("unknown flag '%s' for %s", name, self->name);
}

int kvb_flags_parse(const kvb_cli *cli, const kvb_command *self, int argc, char **argv, void *opts)
{
    const kvb_cmd_spec *s = self->spec;
    for (const kvb_flag *f = s->flags; f && f->name; f++)
        if ((f->cmds & self->bit) && f->def) {
            int r = set_value(f, f->def, opts);
            if (r) return r;
        }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            kvb_flags_help(self);
            return -1;
        }
        if (a[0] != '-' || a[1] == 0) { /* "-" alone names stdin or a file */
            if (!s->positional)
                return kvb_usage_error("unexpected argument '%s' to %s", a, self->name);
            int r = s->positional(opts, a);
            if (r) return r;
            continue;
        }
        char name[MAX_FLAG_NAME];
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        if (len >= sizeof name) return kvb_usage_error("unknown flag '%s' for %s", a, self->name);
        memcpy(name, a, len);
        name[len] = 0;
        const kvb_flag *f = find_row(self, name);
        if (!f) return refuse_flag(cli, self, name);
        if (f->kind == KVB_FLAG_SWITCH && eq) return kvb_usage_error("%s takes no value", name);
        const char *val = eq                           ? eq + 1
                          : f->kind == KVB_FLAG_SWITCH ? NULL
                          : i + 1 < argc               ? argv[++i]
                                                       : NULL;
        int r = set_value(f, val, opts);
        if (r) return r;
    }
    return 0;
}

/* text from column HELP_INDENT on, wrapped at HELP_WIDTH, later lines indented as far */
static void wrap(const char *text)
{
    int col = HELP_INDENT, first = 1;
    while (*text) {
        int word = (int)strcspn(text, " ");
        if (!first && col + 1 + word > HELP_WIDTH) {
            printf("\n%*s", HELP_INDENT, "");
            col = HELP_INDENT;
            first = 1;
        }
        if (!first) {
            putchar(' ');
            col++;
        }
        printf("%.*s", word, text);
        col += word;
        first = 0;
        text += word;
        while (*text == ' ') text++;
    }
    putchar('\n');
}

void kvb_flags_help(const kvb_command *self)
{
    const kvb_cmd_spec *s = self->spec;
    printf("usage: kvbench %s%s%s\n", self->name, s->usage[0] ? " " : "", s->usage);
    if (s->intro) printf("\n%s\n", s->intro);
    int any = 0;
    for (const kvb_flag *f = s->flags; f && f->name; f++) {
        if (!(f->cmds & self->bit)) continue;
        if (!any++) putchar('\n');
        char left[96], text[1024];
        int col = snprintf(left, sizeof left, "  %s%s%s", f->name, f->meta ? " " : "",
                           f->meta ? f->meta : "");
        printf("%s", left);
        if (col >= HELP_INDENT) {
            printf("\n%*s", HELP_INDENT, "");
        } else
            printf("%*s", HELP_INDENT - col, "");
        if (f->def_help)
            snprintf(text, sizeof text, "%s (default: %s)", f->help, f->def_help);
        else if (f->def)
            snprintf(text, sizeof text, "%s (default %s)", f->help, f->def);
        else
            snprintf(text, sizeof text, "%s", f->help);
        wrap(text);
    }
    if (s->epilogue) printf("\n%s\n", s->epilogue);
}
