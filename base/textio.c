/* textio.c: see textio.h. */
#include "textio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

char *kvb_slurp_len(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = NULL;
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t)n + 1)) != NULL) {
        if (fread(b, 1, (size_t)n, f) != (size_t)n) {
            free(b);
            b = NULL;
        } else
            b[n] = 0;
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
