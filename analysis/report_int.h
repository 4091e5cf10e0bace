/* report_int.h: what the report's files share (report.h is the contract):
 * the plots it can draw, the report being built, and the helpers that fill
 * it. report_read.c reads result files into a report, report_plot.c writes
 * its plot data and draws them, report.c writes report.md and report.html. */
#ifndef KVB_REPORT_INT_H
#define KVB_REPORT_INT_H

#include <stddef.h>
#include <stdio.h>
#include "report.h"
#include "../base/afile.h"

enum { CELL = 200, MAX_COLS = 8 };

typedef enum plot_id {
    P_LATENCY,
    P_MEMORY,
    P_SCALING,
    P_BANDWIDTH,
    P_QUANT,
    P_PAGED,
    P_PPL,
    P_COUNT
} plot_id;

typedef struct kvb_plot_desc {
    const char *name, *title, *how;
    int cols;
    const char *head[MAX_COLS];
} kvb_plot_desc;
extern const kvb_plot_desc kvb_plot_info[P_COUNT];

/* Every list grows as needed: a merge of many machines must not drop series. */
typedef struct plot {
    FILE *dat; /* out's file, or /dev/null when it would not open */
    kvb_afile out;
    int drawn; /* its data and vars were written */
    int img;   /* gnuplot drew its png and svg */
    int blocks;
    char (*label)[160]; /* [n_label], the legend of each block */
    int n_label, cap_label;
    char *extra; /* more gnuplot assignments (malloc'd) */
    size_t extra_len, extra_cap;
    char *extra_note; /* what the report says under the table (malloc'd) */
    size_t note_len, note_cap;
    char (*cell)[MAX_COLS][CELL]; /* [rows] the report's table */
    int rows, cap_rows;
} plot;

typedef struct attend_rec {
    char shape[32], dtype[16], backend[32], host[64];
    int block, threads, ctx;
    double ratio;
} attend_rec;

typedef struct report {
    const char *dir;
    char plots_dir[2200];
    const char *tag; /* "" or, in a merge of different sweeps, "-set<k>" */
    char tag_own[24];
    int set_hosts; /* machines in this set */
    plot p[P_COUNT];
    int multi;     /* several machines: series carry their host */
    int failed;    /* out of memory or a file that would not open */
    char err[600]; /* the first failure: the call, the path and errno's text */
    struct host_ceil {
        char host[64];
        double c1, cn;
    } * hc; /* read ceilings, machine by machine */
    int n_hc, cap_hc;
    int ctx_min, ctx_max; /* attend contexts seen */
    attend_rec *rec;
    int n_rec, cap_rec;
    struct bw_series {
        char name[160];
        int threads, block;
        char *points;
        size_t len, cap;
    } * bw;
    int n_bw, cap_bw; /* attend bandwidth series, drawn one thread first */
    FILE *serve;      /* serve.dat: every machine's serving series */
    kvb_afile serve_file;
    int n_serve, n_ref;
    char last_serve[160];
    char machine[4096], config[4096];
    char *points; /* the points' statuses, as the report lists them */
    size_t points_len, points_cap;
} report;

/* Drawing: gnuplot runs each plots/<name>.gp (found with kvb_data_path, so
 * from any working directory) for png and svg; what it lacks is said once. */
typedef struct drawer {
    const char *dir;
    FILE *notes;
    char scripts[2400]; /* the folder of the .gp scripts */
    int no_scripts, no_gnuplot, said;
    char why[600]; /* why there are no images, for the report */
} drawer;

/* Grows *buf (elements of size el) to hold at least need; 0 or -1. */
int kvb_rp_grow(void *buf, int *cap, int need, size_t el);
/* Appends printf output to the growing string *s. */
void kvb_rp_appendf(report *r, char **s, size_t *len, size_t *cap, const char *fmt, ...);
/* Records the first failure's cause (the caller formats errno's text in). */
void kvb_rp_fail(report *r, const char *fmt, ...);
/* more gnuplot assignments for a plot's vars file */
#define EXTRA(r, id, ...)                                                                          \
    kvb_rp_appendf((r), &(r)->p[id].extra, &(r)->p[id].extra_len, &(r)->p[id].extra_cap,           \
                   __VA_ARGS__)
/* A row of n cells of the plot's table. */
void kvb_rp_row(report *r, plot *p, int n, ...);
/* The plot's data file, opened on first use (kvb_rp_create). */
FILE *kvb_rp_dat(report *r, plot_id id);
/* A file written whole or not at all: its FILE, or, when it cannot be made,
 * /dev/null with the cause recorded (the report fails at its end), so that
 * writers need no check. */
FILE *kvb_rp_create(report *r, kvb_afile *a, const char *path);
/* Publishes what kvb_rp_create made: 0, or -1 with the cause recorded. */
int kvb_rp_commit(report *r, kvb_afile *a, FILE *f);
/* Drops it (an error path). */
void kvb_rp_discard(kvb_afile *a, FILE *f);
/* A new gnuplot data block named for the legend. */
void kvb_rp_block(report *r, plot_id id, const char *label);
/* v with format f, or "-" when it is NaN. */
void kvb_rp_fmt(char *b, size_t n, const char *f, double v);
void kvb_rp_note(drawer *d, const char *fmt, ...);
void kvb_rp_draw(report *r, drawer *d);
int kvb_rp_write_plot_data(report *r);

/* Reads one set of machines (or the one directory) into r and writes its plot data. */
void kvb_rp_collect(report *r, const char *mpath, char **hosts, int nh);
int kvb_rp_is_dir(const char *p);
/* dir/ppl.csv (kvbench ppl), when there, into the ppl plot and its table. */
void kvb_rp_read_ppl(report *r, const char *dir, const char *host);
int kvb_rp_cmp_str(const void *a, const void *b);

#endif
