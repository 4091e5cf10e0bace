/* textio.c: see textio.h. */
#include "textio.h"
#include "afile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

FILE *kvb_tmp_open(const char *path, char *tmp, size_t tmp_len, char *msg, size_t msg_len)
{
    kvb_afile a;
    if (kvb_afile_open(&a, path, msg, msg_len)) return NULL;
    if (strlen(a.tmp) >= tmp_len) {
        kvb_afile_abort(&a);
        snprintf(msg, msg_len, "'%s': path too long", path);
        return NULL;
    }
    memcpy(tmp, a.tmp, strlen(a.tmp) + 1);
    return a.f;
}
