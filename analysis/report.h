/* report.h: turns a result directory into plot data, plots, report.md and report.html.
 *
 * Contract. The directory is a single run (results/<run-id>/ from kvbench run),
 * a sweep (sweep.csv and points/), or a merge (machines/<host>/ each a sweep).
 * kvb_report writes <dir>/plots/<name>.dat (gnuplot blocks) and <name>.vars
 * (titles, labels, a distinct colour per series, each machine's read
 * ceilings; `load`ed by plots/<name>.gp) for every plot it has data for, and
 * nothing for the others, so no panel is drawn empty. It then draws each as
 * <name>.png and <name>.svg by running gnuplot (found on PATH) on the scripts
 * kvb_data_path finds (plots/<name>.gp), and writes report.md and report.html
 * with the machine, the configuration, the points, a table of key numbers per
 * plot and the images. Without gnuplot (or the scripts) it says so once, on
 * `notes`, and the report carries a note in place of each image, never a
 * broken link. A merge whose machines ran different sweep definitions is
 * reported set by set (files <name>-set<k>.*), never drawn on shared axes,
 * and the report says how the definitions differ. A quantized point that
 * quantized no token (all in its f32 window) is labelled so in the table and
 * the plot. Each file is written to a temporary name and renamed. Failures
 * name the failing call's path and errno text (a read-only directory says
 * "Read-only file system"); a gnuplot error fails the report (KVB_STATUS_IO)
 * with gnuplot's own message. */
#ifndef KVB_REPORT_H
#define KVB_REPORT_H

#include <stddef.h>
#include <stdio.h>
#include "../impls/types/kvb_types.h"

kvb_status kvb_report(const char *dir, char *msg, size_t msg_len);

/* kvb_report with its notes (no gnuplot, gnuplot's warnings: the report is
 * still written, and says so) to `notes` (NULL: none); kvb_report gives stderr. */
kvb_status kvb_report_to(const char *dir, FILE *notes, char *msg, size_t msg_len);

#endif
