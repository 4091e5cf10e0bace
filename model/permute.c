/* permute.c: see permute.h. */
#include "permute.h"

#include <string.h>

int kvb_rope_perm_row(int r, int head_dim, int to_half)
{
    int head = r / head_dim, j = r % head_dim, half = head_dim / 2;
    /* to half: half row j = interleaved row 2j (j < half) or 2(j - half) + 1 */
    int src = to_half ? (j < half ? 2 * j : 2 * (j - half) + 1)
                      : (j % 2 ? half + j / 2 : j / 2);
    return head * head_dim + src;
}

void kvb_rope_permute_rows(const void *src, void *dst, size_t row_bytes, int n_heads,
                           int head_dim, int to_half)
{
    const unsigned char *s = src;
    unsigned char *d = dst;
    for (int r = 0; r < n_heads * head_dim; r++)
        memcpy(d + (size_t)r * row_bytes,
               s + (size_t)kvb_rope_perm_row(r, head_dim, to_half) * row_bytes, row_bytes);
}
