/* kvmem.c: see kernels.h (kvb_kv_alloc). Large K/V planes are mapped whole
 * huge pages at a time where the OS has transparent huge pages; small ones,
 * and other systems, use calloc. */
#define _DEFAULT_SOURCE           /* MAP_ANONYMOUS, madvise under -std=c11 */
#include "kernels.h"

#include <stdint.h>
#include <stdlib.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#if defined(__linux__) && defined(MADV_HUGEPAGE)
#define KVB_KV_HUGE   ((size_t)2 << 20)
#define KVB_KV_MAPPED ((size_t)4 << 20)   /* from here on: mapped, 2 MiB aligned */

static size_t mapped_len(size_t bytes)
{
    return (bytes + KVB_KV_HUGE - 1) / KVB_KV_HUGE * KVB_KV_HUGE;
}
#endif

void *kvb_kv_alloc(size_t bytes)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (bytes >= KVB_KV_MAPPED) {
        size_t len = mapped_len(bytes), span = len + KVB_KV_HUGE;
        char *m = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return NULL;
        char *p = (char *)(((uintptr_t)m + KVB_KV_HUGE - 1) & ~(uintptr_t)(KVB_KV_HUGE - 1));
        if (p > m) munmap(m, (size_t)(p - m));
        if (m + span > p + len) munmap(p + len, (size_t)(m + span - (p + len)));
        madvise(p, len, MADV_HUGEPAGE);   /* a hint: with THP off, 4 KiB pages as before */
        return p;
    }
#endif
    return calloc(1, bytes ? bytes : 1);
}

void kvb_kv_free(void *p, size_t bytes)
{
    if (!p) return;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (bytes >= KVB_KV_MAPPED) {
        munmap(p, mapped_len(bytes));
        return;
    }
#endif
    free(p);
}
