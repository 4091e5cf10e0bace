/* gbench.h: a C interface to Google Benchmark, so kvbench's micro-benchmarks are
 * plain C and users keep Google Benchmark's flags, output formats and tools.
 *
 * Contract. Register C functions (with a user pointer) before kvb_gb_run; inside
 * one, loop `while (kvb_gb_keep_running(st)) { ... }` exactly as with
 * `for (auto _ : state)`. Everything before the loop is setup and is not timed.
 * The implementation (gbench.cc) is the only C++ in the project; it builds
 * against Google Benchmark 1.7.1 (Debian 12) and later releases, whose report
 * of a failed case changed shape. No global state of ours: the error count comes
 * from a reporter that lives inside kvb_gb_run. */
#ifndef KVB_GBENCH_H
#define KVB_GBENCH_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kvb_gb_state kvb_gb_state;   /* a benchmark::State */
typedef struct kvb_gb_bench kvb_gb_bench;   /* a registered benchmark */
typedef void (*kvb_gb_fn)(kvb_gb_state *st, void *user);

/* Counter flags, as Google Benchmark's Counter::Flags (rates per second of
 * measured time; averages over iterations; 1000 or 1024 as the unit). */
enum {
    KVB_GB_COUNTER_DEFAULT = 0,
    KVB_GB_COUNTER_RATE = 1 << 0,             /* value / seconds */
    KVB_GB_COUNTER_AVG_ITERATIONS = 1 << 1,   /* value / iterations */
    KVB_GB_COUNTER_ITERATION_INVARIANT = 1 << 2, /* value x iterations */
    KVB_GB_COUNTER_BASE_1024 = 1 << 3,        /* display with 1024 steps (default 1000) */
};

typedef enum kvb_gb_time_unit {
    KVB_GB_NANOSECOND = 0, KVB_GB_MICROSECOND, KVB_GB_MILLISECOND, KVB_GB_SECOND,
} kvb_gb_time_unit;

/* Setup: consumes Google Benchmark's flags from argv (argc updated). Returns 0,
 * or -1 when an argument is left that neither it nor the caller knows (the
 * caller decides; kvb_gb_report_unrecognized prints them). */
void kvb_gb_initialize(int *argc, char **argv);
int  kvb_gb_report_unrecognized(int argc, char **argv);   /* 1 if any were printed */

/* A key/value pair for the JSON "context" block (topology, ceilings, commit). */
void kvb_gb_add_context(const char *key, const char *value);

/* Registration; name is copied. NULL when Google Benchmark refused it. */
kvb_gb_bench *kvb_gb_register(const char *name, kvb_gb_fn fn, void *user);
void kvb_gb_args(kvb_gb_bench *b, const int64_t *args, int n);   /* one argument list */
void kvb_gb_range(kvb_gb_bench *b, int64_t lo, int64_t hi);      /* powers of 8 between, as Range */
void kvb_gb_arg_name(kvb_gb_bench *b, const char *name);          /* "T" names cases .../T:128 */
void kvb_gb_use_manual_time(kvb_gb_bench *b);
void kvb_gb_repetitions(kvb_gb_bench *b, int n);
void kvb_gb_min_time(kvb_gb_bench *b, double seconds);
void kvb_gb_unit(kvb_gb_bench *b, kvb_gb_time_unit u);

/* Inside a benchmark. */
int     kvb_gb_keep_running(kvb_gb_state *st);
int64_t kvb_gb_arg(const kvb_gb_state *st, int i);
void    kvb_gb_pause(kvb_gb_state *st);
void    kvb_gb_resume(kvb_gb_state *st);
void    kvb_gb_set_iteration_time(kvb_gb_state *st, double seconds);   /* with manual time */
void    kvb_gb_counter(kvb_gb_state *st, const char *name, double value, unsigned flags);
void    kvb_gb_set_label(kvb_gb_state *st, const char *label);
/* Marks the case failed with msg; the caller must then leave without looping
 * (or break out of the loop). kvb_gb_run counts such cases. */
void    kvb_gb_skip_with_error(kvb_gb_state *st, const char *msg);
int64_t kvb_gb_iterations(const kvb_gb_state *st);

/* Runs the benchmarks the flags select with the default console reporter (and
 * the file reporter --benchmark_out asks for). Returns the number of runs that
 * reported an error (Google Benchmark itself would exit 0); *n_run gets how many
 * benchmarks ran (0: the filter matched none). */
int  kvb_gb_run(int *n_run);
void kvb_gb_shutdown(void);

#ifdef __cplusplus
}
#endif

#endif
