#!/bin/sh
# run.sh DIR SECONDS TARGET...: runs each libFuzzer binary DIR/fuzz-TARGET for
# SECONDS from its seeds (fuzz/corpus/TARGET) and saved regressions, growing
# its own corpus in DIR/work-TARGET (kept, so runs add up), and prints per
# target the executions, the coverage and the findings (crash, leak, timeout
# or out-of-memory inputs, saved in DIR/findings-TARGET/). Exit 1 on any
# finding, or when a fuzzer did not run or left temporary files behind.
# Bounds: 2 GB of RSS, 20 s per input, 64 MB in one malloc: far above what
# any seed needs, and a loader that allocated what a checkpoint header
# declares instead of refusing it crosses it (stories110m's: 438 MB).
dir=$1 secs=$2
shift 2
rc=0
tmp=
trap '[ -n "$tmp" ] && rm -rf "$tmp"; exit 130' INT TERM
for t in "$@"; do
  bin=$dir/fuzz-$t work=$dir/work-$t found=$dir/findings-$t tmp=$dir/tmp-$t log=$dir/log-$t.txt
  # the inputs' files in memory where there is a tmpfs: directory operations
  # on a disk cost compare's target most of its time
  [ -d /dev/shm ] && [ -w /dev/shm ] && tmp=/dev/shm/kvb-fuzz-$t-$$
  rm -rf "$found" "$tmp"
  mkdir -p "$work" "$found" "$tmp"
  corp="$work fuzz/corpus/$t"
  [ -d fuzz/regressions/$t ] && corp="$corp fuzz/regressions/$t"
  dict=; [ -f fuzz/dict/$t.dict ] && dict=-dict=fuzz/dict/$t.dict
  start=$(date +%s)
  # $corp and $dict split on purpose: paths under the repository have no spaces
  TMPDIR=$tmp ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
    UBSAN_OPTIONS=print_stacktrace=1 \
    "$bin" $corp $dict -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=64 -timeout=20 \
    -artifact_prefix="$found/" -print_final_stats=1 > "$log" 2>&1
  frc=$?
  took=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  cov=$(grep -E '^#[0-9]+' "$log" | grep 'cov: ' | tail -n 1 |
        sed 's/.*\(cov: [0-9]*\) \(ft: [0-9]*\) \(corp: [^ ]*\).*/\1 edges, \2 features, \3/')
  nfound=$(ls "$found" | wc -l)
  left=$(find "$tmp" -mindepth 1 | wc -l)
  echo "fuzz $t: ${execs:-?} executions in $took s, ${cov:-no coverage line}; findings: $nfound"
  if [ "$nfound" -gt 0 ]; then
    rc=1
    for f in "$found"/*; do echo "  finding: $f"; done
    echo "  ---- $log (the report, tail):"
    grep -v '^#[0-9]' "$log" | tail -n 40 | sed 's/^/  /'
  elif [ "$frc" -ne 0 ] || [ -z "$execs" ]; then
    rc=1
    echo "  the fuzzer exited $frc without a finding; $log:"
    tail -n 20 "$log" | sed 's/^/  /'
  elif [ "$left" -gt 0 ]; then
    rc=1
    echo "  left $left temporary files in $tmp"
  fi
  # a crash leaves its input's files: the finding has the input
  rm -rf "$tmp"
done
exit $rc
