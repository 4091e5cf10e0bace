#!/bin/sh
# ab_calibrate.sh RUNS BASE NEW [ab flags...]: RUNS runs of `kvbench ab BASE NEW`, a line
# each: exit status, seconds, the cases the first rounds flagged (named) and those the rerun
# confirmed (kvbench ab --confirm), and the change of each time case of the contiguous
# attend in the first rounds (the case bench/ab_plant.sh slows); then how many runs failed.
# With BASE = NEW it counts false alarms, with NEW = $(sh bench/ab_plant.sh PCT) detections.
# KVB names the binary (default build/kvbench); results under results/ab-calibrate-<UTC>/.
set -u
runs=${1:?usage: ab_calibrate.sh RUNS BASE NEW [ab flags...]}
base=${2:?usage: ab_calibrate.sh RUNS BASE NEW [ab flags...]}
new=${3:?usage: ab_calibrate.sh RUNS BASE NEW [ab flags...]}
shift 3
KVB=${KVB:-./build/kvbench}
out=results/ab-calibrate-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$out"
failed=0
i=1
while [ "$i" -le "$runs" ]; do
  start=$(date +%s)
  "$KVB" ab "$base" "$new" --quiet --out "$out/$i" "$@" > "$out/$i.txt" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  [ "$rc" -ne 0 ] && failed=$((failed + 1))
  js="$out/$i/compare.json"
  reg=$(grep '"verdict": "REGRESSED"' "$js" 2>/dev/null | sed 's/.*"case": "\([^"]*\)".*/\1/' |
        sed 's/^[^:]*://' | tr '\n' ' ')
  cont=$(grep '"kind": "time"' "$js" 2>/dev/null | grep 'attend(backend=contiguous' |
         sed -n 's/.*"change": \([-0-9.e+]*\).*"p": \([0-9.e+-]*\).*/\1 (p \2)/p' | tr '\n' ' ')
  conf=$(grep '^REGRESSED (confirmed): ' "$out/$i/confirm.txt" 2>/dev/null |
         sed 's/^REGRESSED (confirmed): [^:]*:\([^ ]*\) .*/\1/' | tr '\n' ' ')
  [ -f "$out/$i/confirm.txt" ] || conf="(no rerun)"
  echo "run $i: exit $rc, ${took} s; flagged: ${reg:-none}; confirmed: ${conf:-none};" \
       "contiguous attend: $cont"
  i=$((i + 1))
done
echo "ab_calibrate: $failed of $runs runs failed ($out)"
