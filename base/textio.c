/* textio.c: see textio.h. */
#define _XOPEN_SOURCE 700     /* mkstemp, fchmod */
#include "textio.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

char *kvb_slurp_len(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = NULL;
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t)n + 1)) != NULL) {
        if (fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
        else b[n] = 0;
    }
    int e = errno;
    fclose(f);
    errno = e;
    if (b && len) *len = (size_t)n;
    return b;
}

char *kvb_slurp(const char *path)
{
    return kvb_slurp_len(path, NULL);
}

int kvb_csv_fields(char *line, char **f, int max)
{
    int n = 0;
    char *p = line;
    while (*p && n < max) {
        if (*p == '"') {
            f[n++] = ++p;
            while (*p && *p != '"') p++;
            if (*p) *p++ = 0;
            if (*p == ',') p++;
            else { *p = 0; break; }
        } else {
            f[n++] = p;
            while (*p && *p != ',' && *p != '\n' && *p != '\r') p++;
            if (*p == ',') *p++ = 0;
            else { *p = 0; break; }
        }
    }
    return n;
}

int kvb_csv_col(char *const *head, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(head[i], name) == 0) return i;
    return -1;
}

double kvb_json_num(const char *s, const char *end, const char *key)
{
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = s ? strstr(s, pat) : NULL;
    if (!p || (end && p >= end)) return NAN;
    p += strlen(pat);
    if (*p == '[') p++;
    if (strncmp(p, "null", 4) == 0) return NAN;
    char *e;
    double v = strtod(p, &e);
    return e == p ? NAN : v;
}

void kvb_json_str(const char *s, const char *end, const char *key, char *out, size_t n)
{
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\": \"", key);
    const char *p = s ? strstr(s, pat) : NULL;
    out[0] = 0;
    if (!p || (end && p >= end) || n == 0) return;
    p += strlen(pat);
    size_t i = 0;
    while (p[i] && p[i] != '"' && i + 1 < n) { out[i] = p[i]; i++; }
    out[i] = 0;
}

FILE *kvb_tmp_open(const char *path, char *tmp, size_t tmp_len, char *msg, size_t msg_len)
{
    int w = snprintf(tmp, tmp_len, "%s.XXXXXX", path);
    if (w < 0 || (size_t)w >= tmp_len) {
        snprintf(msg, msg_len, "'%s': path too long", path);
        return NULL;
    }
    int fd = mkstemp(tmp);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        snprintf(msg, msg_len, "cannot write beside '%s': %s", path, strerror(errno));
        if (fd >= 0) { close(fd); remove(tmp); }
        return NULL;
    }
    fchmod(fd, 0644);                        /* mkstemp's 0600 is for secrets; results are shared */
    return f;
}
