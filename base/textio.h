/* textio.h: whole text files.
 *
 * Contract. kvb_slurp reads a whole file (machine.txt, sweep.def, a child's
 * messages) into memory; CSV and JSON have their own readers (csv.h, json.h),
 * and files are written through afile.h. */
#ifndef KVB_TEXTIO_H
#define KVB_TEXTIO_H

#include <stddef.h>

/* The file's bytes plus a terminating 0 (malloc'd), or NULL with errno set. */
char *kvb_slurp(const char *path);
/* The same, and its length (it may hold NUL bytes) into *len. */
char *kvb_slurp_len(const char *path, size_t *len);

#endif
