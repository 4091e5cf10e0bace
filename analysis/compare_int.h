/* compare_int.h: what compare's readers share (compare.h is the contract):
 * compare_load.c reads one result file into cases, compare_dirs.c walks the
 * layouts (a run, a sweep, a pool of runs, a merge) and calls it. */
#ifndef KVB_COMPARE_INT_H
#define KVB_COMPARE_INT_H

#include <stddef.h>
#include "compare.h"

/* a load in progress: the first failure is kept in msg, bad set */
typedef struct ld {
    kvb_cmp_set *s;
    char *msg;
    size_t len;
    int bad;
} ld;

/* Records a refusal (the first one wins); returns -1. */
int kvb_cmp_fail(ld *L, const char *fmt, ...);
/* A decode run's tokens.csv and summary.json under dir; prefix names its cases. */
void kvb_cmp_load_run(ld *L, const char *dir, const char *prefix);
/* An attend point's table at path. */
void kvb_cmp_load_attend(ld *L, const char *path, const char *prefix);
/* A run's quality.csv, tagged with the kernels its meta.json records. */
void kvb_cmp_load_quality(ld *L, const char *dir, const char *prefix);
/* A Google Benchmark JSON file. */
void kvb_cmp_load_gbench(ld *L, const char *path);

#endif
