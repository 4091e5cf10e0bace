#!/bin/sh
# cli_baseline.sh: the committed regression baselines still hold what this code
# computes. The deterministic figures of the smoke sweep (cache bytes, errors on
# seeded inputs) need no timing: one cheap run of it (one repetition a point)
# is compared, bytes and seeded errors only (any change, up or down), with EVERY
# committed baseline in results/baselines/smoke/*/, whatever CPU model made it,
# so a change that moves them fails here, before CI, and not only on the machine
# whose baseline it is.
# Seeded errors depend on the kernels a CPU picks: where a baseline's kernels
# differ from this machine's (or it does not record them and came from another
# CPU model) compare says so and gates its bytes only.
# The fix when it fails: re-record the baseline of each CPU model (make baseline
# on one), or, for a model you cannot run on, see README (stale baselines).
# Usage: sh tests/cli_baseline.sh path/to/kvbench [path/to/kvbench-gbench]
# KVB_BASELINES=dir checks another set.
set -u
KVB=${1:?usage: cli_baseline.sh path/to/kvbench [path/to/kvbench-gbench]}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BASELINES=${KVB_BASELINES:-$ROOT/results/baselines/smoke}
T=$(mktemp -d /tmp/kvbench-cli-baseline.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0

ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

n=0
for d in "$BASELINES"/*/; do
  case "$d" in *.new/) continue;; esac
  [ -d "$d" ] && n=$((n + 1))
done
if [ "$n" -eq 0 ]; then
  echo "cli-baseline: no committed baselines in $BASELINES: nothing to check"
  echo "cli-baseline: 0 passed, 0 failed"
  exit 0
fi

# the smoke sweep as make regress runs it, each point once: what it computes, not how fast
start=$(date +%s)
"$KVB" sweep smoke --quiet --set run.reps=1 --set run.warmup=0 --set attend.reps=1 \
  --out "$T/smoke" >"$T/out" 2>&1
rc=$?
[ $rc -eq 0 ] && ok ||
  bad "the smoke sweep, one repetition a point: exit $rc: $(tail -n 5 "$T/out")"
echo "cli-baseline: smoke sweep, one repetition a point: $(( $(date +%s) - start )) s"

for d in "$BASELINES"/*/; do
  case "$d" in *.new/) continue;; esac
  [ -d "$d" ] || continue
  d=${d%/}
  "$KVB" compare "$d" "$T/smoke" --gate exact,tolerance >"$T/cmp" 2>&1; rc=$?
  # smaller bytes or errors change what the baseline holds as much as larger ones
  improved=$(grep -c ' improved$' "$T/cmp")
  [ $rc -ne 0 ] || [ "$improved" -eq 0 ] || rc=1
  # what was gated, and why some was not (another CPU's kernels, a stale baseline)
  sed -n -e 's/^\(tolerance: .*\)/  \1/p' -e 's/^\(base is stale: .*\)/  \1/p' \
    -e 's/^\(compare: .*\)/  \1/p' "$T/cmp" \
    | sed "s|^|$(basename "$d"):|"
  if [ $rc -eq 0 ]; then ok
  else
    hint="  If the change is meant, re-record that CPU model's baseline (make baseline on one)"
    hint="$hint in the same commit."
    bad "$(basename "$d"): this code's bytes or seeded errors differ from the committed" \
      "baseline $d (exit $rc):
$(grep -E '^(REGRESSED|MISSING|kvbench:)| improved$' "$T/cmp" | head -n 20)
$hint"
  fi
done

# make baseline marks every other CPU model's baseline under BASELINES stale, naming the
# commit, keeps earlier lines, and marks nothing outside BASELINES (no sweep run: 0 runs)
ROOT=$(cd "$(dirname "$KVB")/.." && pwd)
B=$(basename "$(dirname "$KVB")")
if [ -f "$ROOT/Makefile" ] && command -v make >/dev/null 2>&1; then
  mkdir -p "$T/bl/other-cpu/runs" "$T/elsewhere/other/runs"
  printf 'since old1234: an earlier line\n' > "$T/bl/other-cpu/STALE"
  key=$("$KVB" info --cpu-key)
  make -s -C "$ROOT" -o "$B/kvbench" baseline-only BUILD="$B" BASELINE_RUNS=0 \
    BASELINES="$T/bl/" >"$T/mk" 2>&1; rc=$?
  [ $rc -eq 0 ] && grep -q "^since .*: the $key baseline was re-recorded there" \
    "$T/bl/other-cpu/STALE" \
    && grep -q "^earlier: since old1234" "$T/bl/other-cpu/STALE" \
    && [ ! -e "$T/bl/$key/STALE" ] && ok \
    || bad "make baseline did not mark the other baseline stale (exit $rc):" \
      "$(cat "$T/mk" "$T/bl/other-cpu/STALE" 2>&1)"
  make -s -C "$ROOT" -o "$B/kvbench" baseline-only BUILD="$B" BASELINE_RUNS=0 BASELINES="$T/bl" \
    BASELINE="$T/elsewhere/mine" >"$T/mk" 2>&1
  [ ! -e "$T/elsewhere/other/STALE" ] && ok ||
    bad "make baseline BASELINE=elsewhere marked a folder outside BASELINES stale"
fi

echo "cli-baseline: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
