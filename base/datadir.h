/* datadir.h: where kvbench finds its own data (the sweep definitions in bench/sweeps, the plot
 * scripts in plots) and plots/plot.sh) from any working directory.
 *
 * Contract. kvb_data_path(rel, out, n) writes the first existing file or
 * folder of, in order:
 *   $KVBENCH_DATA/rel                  (set by hand, or by a test);
 *   <dir of the running binary>/../rel   (a build tree: build/kvbench);
 *   <dir of the running binary>/../share/kvbench/rel  (make install PREFIX=...);
 *   ./rel                              (the working directory, last);
 * and returns 0; -1 with out holding the binary-relative candidate when none
 * exists, so a message can name where it looked. */
#ifndef KVB_DATADIR_H
#define KVB_DATADIR_H

#include <stddef.h>

int kvb_data_path(const char *rel, char *out, size_t n);

#endif
