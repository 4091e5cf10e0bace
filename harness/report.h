/* report.h: turns a result directory into plot data, report.md and report.html.
 *
 * Contract. The directory is a single run (results/<run-id>/ from kvbench run),
 * a sweep (sweep.csv and points/), or a merge (machines/<host>/ each a sweep).
 * kvb_report writes <dir>/plots/<name>.dat (gnuplot blocks) and <name>.vars
 * (titles and labels, `load`ed by plots/<name>.gp) for every plot it has data
 * for, and nothing for the others, so no panel is drawn empty; then report.md
 * and report.html with the machine, the configuration, a table of key numbers
 * per plot and the images (which plots/plot.sh draws next). Each file is
 * written to a temporary name and renamed. */
#ifndef KVB_REPORT_H
#define KVB_REPORT_H

#include <stddef.h>
#include <stdio.h>
#include "../impls/kvb_backend.h"

kvb_status kvb_report(const char *dir, char *msg, size_t msg_len);

/* kvb_report with its notes (no gnuplot, gnuplot's warnings: the report is
 * still written, and says so) to `notes` (NULL: none); kvb_report gives stderr. */
kvb_status kvb_report_to(const char *dir, FILE *notes, char *msg, size_t msg_len);

#endif
