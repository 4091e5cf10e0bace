// gbench.cc: gbench.h over Google Benchmark's C++ API. The only C++ file in
// kvbench; it holds no state of its own beyond what Google Benchmark keeps.
#include "gbench.h"

#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

namespace {

benchmark::State *S(kvb_gb_state *st) { return reinterpret_cast<benchmark::State *>(st); }
const benchmark::State *S(const kvb_gb_state *st)
{
    return reinterpret_cast<const benchmark::State *>(st);
}
benchmark::internal::Benchmark *B(kvb_gb_bench *b)
{
    return reinterpret_cast<benchmark::internal::Benchmark *>(b);
}

// Whether a run failed: 1.7 reports `error_occurred`, 1.8 and later `skipped`
// (an enum that also says "skipped by the user", which is not a failure).
template <class R>
auto run_failed(const R &r, int) -> decltype(r.error_occurred, bool()) { return r.error_occurred; }
template <class R>
auto run_failed(const R &r, long) -> decltype(r.skipped, bool())
{
    using Skipped = decltype(r.skipped);          // named through R: only 1.8+ instantiates this
    return r.skipped == Skipped::SkippedWithError;
}

// Forwards everything to the default display reporter and counts failed runs.
class CountingReporter : public benchmark::BenchmarkReporter {
  public:
    explicit CountingReporter(benchmark::BenchmarkReporter *inner) : inner_(inner) {}
    bool ReportContext(const Context &c) override { return inner_->ReportContext(c); }
    void ReportRuns(const std::vector<Run> &runs) override
    {
        for (const Run &r : runs)
            if (run_failed(r, 0)) failed_++;
        inner_->ReportRuns(runs);
    }
    void Finalize() override { inner_->Finalize(); }
    int failed() const { return failed_; }

  private:
    std::unique_ptr<benchmark::BenchmarkReporter> inner_;
    int failed_ = 0;
};

}  // namespace

extern "C" {

void kvb_gb_initialize(int *argc, char **argv) { benchmark::Initialize(argc, argv); }

int kvb_gb_report_unrecognized(int argc, char **argv)
{
    return benchmark::ReportUnrecognizedArguments(argc, argv) ? 1 : 0;
}

void kvb_gb_add_context(const char *key, const char *value)
{
    benchmark::AddCustomContext(key, value);
}

kvb_gb_bench *kvb_gb_register(const char *name, kvb_gb_fn fn, void *user)
{
    benchmark::internal::Benchmark *b = benchmark::RegisterBenchmark(
        name, [fn, user](benchmark::State &s) { fn(reinterpret_cast<kvb_gb_state *>(&s), user); });
    return reinterpret_cast<kvb_gb_bench *>(b);
}

void kvb_gb_args(kvb_gb_bench *b, const int64_t *args, int n)
{
    B(b)->Args(std::vector<int64_t>(args, args + n));
}

void kvb_gb_range(kvb_gb_bench *b, int64_t lo, int64_t hi) { B(b)->Range(lo, hi); }
void kvb_gb_arg_name(kvb_gb_bench *b, const char *name) { B(b)->ArgName(name); }
void kvb_gb_use_manual_time(kvb_gb_bench *b) { B(b)->UseManualTime(); }
void kvb_gb_repetitions(kvb_gb_bench *b, int n) { B(b)->Repetitions(n); }
void kvb_gb_min_time(kvb_gb_bench *b, double seconds) { B(b)->MinTime(seconds); }

void kvb_gb_unit(kvb_gb_bench *b, kvb_gb_time_unit u)
{
    static const benchmark::TimeUnit units[] = {benchmark::kNanosecond, benchmark::kMicrosecond,
                                                benchmark::kMillisecond, benchmark::kSecond};
    B(b)->Unit(units[u >= KVB_GB_NANOSECOND && u <= KVB_GB_SECOND ? u : 0]);
}

int kvb_gb_keep_running(kvb_gb_state *st) { return S(st)->KeepRunning() ? 1 : 0; }
int64_t kvb_gb_arg(const kvb_gb_state *st, int i)
{
    return S(st)->range(static_cast<std::size_t>(i));
}
void kvb_gb_pause(kvb_gb_state *st) { S(st)->PauseTiming(); }
void kvb_gb_resume(kvb_gb_state *st) { S(st)->ResumeTiming(); }
void kvb_gb_set_iteration_time(kvb_gb_state *st, double seconds)
{
    S(st)->SetIterationTime(seconds);
}
void kvb_gb_set_label(kvb_gb_state *st, const char *label) { S(st)->SetLabel(label); }
void kvb_gb_skip_with_error(kvb_gb_state *st, const char *msg) { S(st)->SkipWithError(msg); }
int64_t kvb_gb_iterations(const kvb_gb_state *st)
{
    return static_cast<int64_t>(S(st)->iterations());
}

void kvb_gb_counter(kvb_gb_state *st, const char *name, double value, unsigned flags)
{
    int f = benchmark::Counter::kDefaults;
    if (flags & KVB_GB_COUNTER_RATE) f |= benchmark::Counter::kIsRate;
    if (flags & KVB_GB_COUNTER_AVG_ITERATIONS) f |= benchmark::Counter::kAvgIterations;
    if (flags & KVB_GB_COUNTER_ITERATION_INVARIANT) f |= benchmark::Counter::kIsIterationInvariant;
    S(st)->counters[name] =
        benchmark::Counter(value, static_cast<benchmark::Counter::Flags>(f),
                           (flags & KVB_GB_COUNTER_BASE_1024) ? benchmark::Counter::kIs1024
                                                              : benchmark::Counter::kIs1000);
}

int kvb_gb_run(int *n_run)
{
    CountingReporter reporter(benchmark::CreateDefaultDisplayReporter());
    std::size_t n = benchmark::RunSpecifiedBenchmarks(&reporter);
    if (n_run) *n_run = static_cast<int>(n);
    return reporter.failed();
}

void kvb_gb_shutdown(void) { benchmark::Shutdown(); }

}  // extern "C"
