/* textio.h: whole text files, and the temporary file the command line
 * still publishes by hand.
 *
 * Contract. kvb_slurp reads a whole file (machine.txt, sweep.def, a child's
 * messages) into memory; CSV and JSON have their own readers (csv.h, json.h).
 * kvb_tmp_open is kvb_afile_open's file handed out with its name, for the
 * callers in cli/ that rename it themselves; kept until they use kvb_afile. */
#ifndef KVB_TEXTIO_H
#define KVB_TEXTIO_H

#include <stddef.h>
#include <stdio.h>

/* The file's bytes plus a terminating 0 (malloc'd), or NULL with errno set. */
char *kvb_slurp(const char *path);
/* The same, and its length (it may hold NUL bytes) into *len. */
char *kvb_slurp_len(const char *path, size_t *len);

/* A new temporary file beside path (afile.h: "<path>.XXXXXX.tmp", created
 * exclusively), open for writing; tmp receives its name for the rename or
 * link that publishes it. NULL with msg set when it cannot be made. */
FILE *kvb_tmp_open(const char *path, char *tmp, size_t tmp_len, char *msg, size_t msg_len);

#endif
