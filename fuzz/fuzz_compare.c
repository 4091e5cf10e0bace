/* fuzz_compare.c: compare's result readers, kvb_cmp_load, on fuzzed files.
 * The input's first byte picks the layout, the rest is split at lines
 * "--8<--" into the files below, in this order (a missing part: no file):
 *   tokens.csv, summary.json, quality.csv, attend.csv, machine.txt, meta.json
 * Layouts (first byte mod 5):
 *   0 a single run: every part in the directory;
 *   1 a sweep: tokens and summary in points/run-x/, quality in
 *     points/quality-x/, attend in points/attend-x/, machine and meta on top;
 *   2 a baseline of runs: layout 1 twice, as runs/1/ and runs/2/ (pooled);
 *   3 a merge: layout 1 as machines/h1/, layout 0 as machines/h2/;
 *   4 a Google Benchmark JSON file: the whole rest, one file.
 * Beyond not crashing: a refusal names its reason, an accepted side has cases
 * with bounded, finite samples, and judging a side against itself (every kind
 * gated) never finds a regression or an improvement. */
#define _GNU_SOURCE                             /* memmem */
#include "fuzz_util.h"
#include "../analysis/compare.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { N_PARTS = 6 };
static const char *const part_names[N_PARTS] = {"tokens.csv", "summary.json", "quality.csv",
                                                "attend.csv", "machine.txt",  "meta.json"};
static const char sep[] = "\n--8<--\n";

typedef struct part { const uint8_t *p; size_t n; } part;

static void put(const char *dir, const char *sub, const part *pt)
{
    char path[1600];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    kvb_fuzz_write(path, pt->p, pt->n);
}

static void write_run(const char *dir, const part *pt, int np)
{
    for (int i = 0; i < np; i++) put(dir, part_names[i], &pt[i]);
}

static void write_sweep(const char *dir, const part *pt, int np)
{
    static const char *const where[N_PARTS] = {"points/run-x/tokens.csv",
                                               "points/run-x/summary.json",
                                               "points/quality-x/quality.csv",
                                               "points/attend-x/attend.csv",
                                               "machine.txt",
                                               "meta.json"};
    for (int i = 0; i < np; i++) put(dir, where[i], &pt[i]);
}

/* A directory without cases is refused; a benchmark file without runs is
 * accepted empty (compare then finds no common cases and says so). */
static void check_side(const kvb_cmp_set *s, int is_file)
{
    KVB_FUZZ_CHECK(s->n >= !is_file && s->n <= s->cap && (s->c || !s->n),
                   "accepted with %d cases (cap %d)", s->n, s->cap);
    KVB_FUZZ_CHECK(memchr(s->machine, 0, sizeof s->machine), "machine not terminated");
    kvb_cmp_opts o = {.alpha = 0.05, .min_change = 0.10, .tolerance = 0.10, .gate = ~0u};
    for (int i = 0; i < s->n; i++) {
        const kvb_cmp_case *c = &s->c[i];
        KVB_FUZZ_CHECK(memchr(c->name, 0, sizeof c->name) && c->kind >= 0 &&
                           c->kind < KVB_CMP_KIND_COUNT && c->n >= 0 && c->n <= KVB_CMP_MAX_SAMPLES,
                       "case %d: kind %d, %d samples", i, (int)c->kind, c->n);
        for (int k = 0; k < c->n; k++)
            KVB_FUZZ_CHECK(isfinite(c->v[k]), "case %s: sample %d is %g", c->name, k, c->v[k]);
        kvb_cmp_result r = kvb_cmp_judge(c->kind, c->v, c->n, c->v, c->n, &o);
        KVB_FUZZ_CHECK(r.verdict != KVB_VERDICT_REGRESSED && r.verdict != KVB_VERDICT_IMPROVED,
                       "case %s judged against itself: %s", c->name, kvb_verdict_name(r.verdict));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int layout = data[0] % 5;
    const uint8_t *rest = data + 1, *end = data + size;
    part pt[N_PARTS];
    int np = 0;
    while (np < N_PARTS) {
        const uint8_t *cut =
            layout == 4 ? NULL : memmem(rest, (size_t)(end - rest), sep, sizeof sep - 1);
        pt[np].p = rest;
        pt[np].n = cut ? (size_t)(cut - rest) : (size_t)(end - rest);
        np++;
        if (!cut) break;
        rest = cut + sizeof sep - 1;
    }

    char side[1200], sub[1400], msg[1024];
    snprintf(side, sizeof side, "%s/side%s", kvb_fuzz_dir(), layout == 4 ? ".json" : "");
    switch (layout) {
    case 0: write_run(side, pt, np); break;
    case 1: write_sweep(side, pt, np); break;
    case 2:
        for (int r = 1; r <= 2; r++) {
            snprintf(sub, sizeof sub, "%s/runs/%d", side, r);
            write_sweep(sub, pt, np);
        }
        break;
    case 3:
        snprintf(sub, sizeof sub, "%s/machines/h1", side);
        write_sweep(sub, pt, np);
        snprintf(sub, sizeof sub, "%s/machines/h2", side);
        write_run(sub, pt, np);
        break;
    default: kvb_fuzz_write(side, pt[0].p, pt[0].n); break;
    }

    kvb_cmp_set s;
    msg[0] = 0;
    kvb_status st = kvb_cmp_load(&s, side, msg, sizeof msg);
    if (st == KVB_STATUS_OK) check_side(&s, layout == 4);
    else
        KVB_FUZZ_CHECK(msg[0] && memchr(msg, 0, sizeof msg),
                       "refused (status %d) without a message", (int)st);
    kvb_cmp_free(&s);
    kvb_fuzz_rmtree(side);
    return 0;
}
