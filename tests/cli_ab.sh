#!/bin/sh
# cli_ab.sh: kvbench ab (issue 18): refusals before anything is built or run; two
# binaries taking turns (the side that goes first alternating), each side's rounds
# pooled and judged; a side b that holds more per sequence (a stand-in binary that
# decodes more tokens) regresses and exits 1, the same as side a improves and exits 0. A
# time that regressed is rerun (--confirm): a slowdown that lasts fails, one that was only
# in the first rounds (a stand-in slow for its first runs) passes, named in confirm.txt.
# Building a revision is what CI's gate runs (.ci/run); here the sides are binaries.
# Usage: sh tests/cli_ab.sh path/to/kvbench
set -u
KVB=${1:?usage: cli_ab.sh path/to/kvbench}
case "$KVB" in /*) ;; *) KVB="$(pwd)/$KVB" ;; esac
T=$(mktemp -d /tmp/kvbench-ab.XXXXXX)
trap 'rm -rf "$T"' EXIT
trap 'exit 1' INT TERM
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# expect_fail CODE NEEDLE ARGS...: that exit status, NEEDLE on stderr, no $T/out made
expect_fail() {
  code=$1 needle=$2; shift 2
  rm -rf "$T/out" "$T/out.partial"
  timeout 60 "$KVB" "$@" >"$T/stdout" 2>"$T/stderr"; rc=$?
  if [ "$rc" -ne "$code" ]; then
    bad "kvbench $* -> exit $rc, wanted $code: $(head -c 400 "$T/stderr")"; return
  fi
  if ! grep -qF -- "$needle" "$T/stderr"; then
    bad "kvbench $* -> no '$needle' in: $(head -c 400 "$T/stderr")"; return
  fi
  if [ -e "$T/out" ] || [ -e "$T/out.partial" ]; then
    bad "kvbench $* left a result directory"; return
  fi
  ok
}

# a sweep of two short points: an attend table and a decode
cat > "$T/tiny.sweep" <<'EOF'
attend.backends = contiguous
attend.shapes   = 8/2/64
attend.ctxs     = 512
attend.reps     = 5
attend.ceilings = off
run.preset      = tiny
run.backends    = contiguous
run.prompt      = 4
run.tokens      = 8
run.reps        = 1
run.warmup      = 0
run.ceilings    = off
EOF
SW="--sweep $T/tiny.sweep --quiet"

# --- refused before anything runs ---
expect_fail 2 "ab needs BASE_REV" ab $SW --out "$T/out"
expect_fail 2 "not an executable file" ab --base-exe "$T/none" $SW --out "$T/out"
expect_fail 2 "replaces BASE_REV" ab --base-exe "$KVB" HEAD HEAD $SW --out "$T/out"
expect_fail 2 "unknown --gate kind 'speed'" ab --base-exe "$KVB" --gate speed $SW --out "$T/out"
expect_fail 2 "--rounds" ab --base-exe "$KVB" --rounds 0 $SW --out "$T/out"
expect_fail 2 "no sweep named 'nosuch'" ab --base-exe "$KVB" --sweep nosuch --out "$T/out"
expect_fail 2 "unknown sweep key" ab --base-exe "$KVB" $SW --set attend.speed=1 --out "$T/out"
expect_fail 2 "'attend.ceilings': 'maybe'" ab --base-exe "$KVB" $SW --set attend.ceilings=maybe \
  --out "$T/out"
mkdir -p "$T/taken"
expect_fail 2 "exists" ab --base-exe "$KVB" $SW --out "$T/taken"
# revisions need the git checkout ab runs in
if command -v git >/dev/null 2>&1 && git rev-parse --show-toplevel >/dev/null 2>&1; then
  expect_fail 2 "revision 'no-such-rev-kvb': not a commit" ab no-such-rev-kvb $SW --out "$T/out"
  expect_fail 2 "--new-exe replaces NEW_REV" ab HEAD HEAD --new-exe "$KVB" $SW --out "$T/out"
fi
if command -v git >/dev/null 2>&1; then
  mkdir -p "$T/nogit"
  (cd "$T/nogit" && GIT_CEILING_DIRECTORIES="$T" expect_fail 2 "git checkout" ab HEAD $SW \
    --out "$T/out")
fi

# --- the same binary on both sides: turns alternate, the rounds pool, nothing regresses ---
"$KVB" ab --base-exe "$KVB" --rounds 4 $SW --out "$T/same" >"$T/stdout" 2>"$T/stderr"; rc=$?
[ "$rc" -eq 0 ] && ok || bad "ab of one binary against itself: exit $rc: $(tail -c 600 "$T/stderr")"
for s in a b; do for r in 1 2 3 4; do
  [ -f "$T/same/$s/runs/$r/points/attend-8x2x64-contiguous-f32-t1/attend.csv" ] \
    && [ -f "$T/same/$s/runs/$r/machine.txt" ] && ok || bad "no round $r of side $s in $T/same"
done; done
[ -f "$T/same/compare.md" ] && [ -f "$T/same/compare.json" ] && ok || bad "no compare.md/json"
grep -q "^a: the binary $KVB" "$T/same/ab.txt" && ok || bad "ab.txt: $(cat "$T/same/ab.txt")"
# ab.csv: 4 rounds x 2 points x 2 sides, every run ok; a first in half the (round, point) turns
rows=$(grep -c ',ok,' "$T/same/ab.csv")
[ "$rows" -eq 16 ] && ok || bad "ab.csv: $rows ok runs, wanted 16: $(cat "$T/same/ab.csv")"
afirst=$(grep -c ',a,1,' "$T/same/ab.csv"); bfirst=$(grep -c ',b,1,' "$T/same/ab.csv")
[ "$afirst" -eq 4 ] && [ "$bfirst" -eq 4 ] && ok \
  || bad "a first $afirst, b first $bfirst times (wanted 4 each)"
grep -q '"REGRESSED": 0' "$T/same/compare.json" && ok \
  || bad "compare.json: $(head -c 600 "$T/same/compare.json")"

# --- side b keeps more K/V per sequence: a stand-in binary that decodes 8 tokens more ---
cat > "$T/more" <<EOF
#!/bin/sh
case "\$1" in run) exec "$KVB" "\$@" --tokens 16;; *) exec "$KVB" "\$@";; esac
EOF
chmod +x "$T/more"
"$KVB" ab --base-exe "$KVB" --new-exe "$T/more" --rounds 4 $SW --out "$T/worse" \
  >"$T/stdout" 2>"$T/stderr"; rc=$?
[ "$rc" -eq 1 ] && ok || bad "b holding more bytes: exit $rc, wanted 1: $(tail -c 600 "$T/stderr")"
grep -q 'REGRESSED: .*/used_bytes' "$T/stdout" && ok \
  || bad "no used_bytes regression in: $(cat "$T/stdout")"
[ -d "$T/worse" ] && [ ! -e "$T/worse.partial" ] && ok \
  || bad "a judged ab is not published as $T/worse"
"$KVB" ab --base-exe "$T/more" --new-exe "$KVB" --rounds 4 $SW --out "$T/better" \
  >"$T/stdout" 2>"$T/stderr"; rc=$?
[ "$rc" -eq 0 ] && ok || bad "b holding fewer bytes: exit $rc, wanted 0: $(tail -c 600 "$T/stderr")"
grep -q '"improved": [1-9]' "$T/better/compare.json" \
  && grep -q '"REGRESSED": 0' "$T/better/compare.json" \
  && ok || bad "no improvement in: $(head -c 600 "$T/better/compare.json")"

# --- a side whose points fail: reported, exit 1, the run kept ---
cat > "$T/broken" <<EOF
#!/bin/sh
case "\$1" in attend) echo "kvbench: planted failure" >&2; exit 1;; *) exec "$KVB" "\$@";; esac
EOF
chmod +x "$T/broken"
"$KVB" ab --base-exe "$KVB" --new-exe "$T/broken" --rounds 4 $SW --out "$T/broke" \
  >"$T/stdout" 2>"$T/stderr"; rc=$?
[ "$rc" -eq 1 ] && ok || bad "a failing side: exit $rc, wanted 1"
grep -q "runs failed, the first attend-8x2x64-contiguous-f32-t1 of b" "$T/stderr" && ok \
  || bad "failed runs not named: $(tail -c 600 "$T/stderr")"

# --- a time regression is rerun before it fails: side b's attend reports every sample ten
# times longer (a stand-in that edits its attend.csv), always, for its first 8 runs only,
# or in the first 8 and 5 of the rerun's 8 (patchy: the rerun alone, 5 pairs of 8, is not
# significant; pooled with the first rounds it is, and its median moved) ---
grep '^attend\.' "$T/tiny.sweep" > "$T/attend.sweep"
AW="--sweep $T/attend.sweep --quiet --rounds 8 --confirm 8"
for how in slow flaky patchy; do
  cat > "$T/$how" <<EOF
#!/bin/sh
csv= prev=
for a in "\$@"; do [ "\$prev" = --csv ] && csv=\$a; prev=\$a; done
"$KVB" "\$@" || exit \$?
[ "\$1" = attend ] && [ -n "\$csv" ] || exit 0
if [ $how != slow ]; then
  n=\$(cat "$T/count" 2>/dev/null || echo 0); n=\$((n + 1)); echo \$n > "$T/count"
  case "$how:\$n" in flaky:[1-8] | patchy:[1-8] | patchy:9 | patchy:1[0135]) ;; *) exit 0;; esac
fi
sed -i -E '2,\$ { s/;/0;/g; s/\$/0/ }' "\$csv"
EOF
done
chmod +x "$T/slow" "$T/flaky" "$T/patchy"
"$KVB" ab --base-exe "$KVB" --new-exe "$T/slow" $AW --out "$T/slowed" >"$T/stdout" 2>"$T/stderr"
rc=$?
[ "$rc" -eq 1 ] && ok || bad "a lasting slowdown: exit $rc, wanted 1: $(tail -c 600 "$T/stderr")"
grep -q '^REGRESSED (confirmed): attend-8x2x64-contiguous-f32-t1:.*/time_ns' \
  "$T/slowed/confirm.txt" && grep -q '^ab: 1 of 1 regressed' "$T/stdout" && ok \
  || bad "slowdown not confirmed: $(cat "$T/stdout")"
rows=$(grep -c ',ok,' "$T/slowed/confirm/ab.csv")
[ "$rows" -eq 16 ] && ok || bad "confirm/ab.csv: $rows ok runs, wanted 8 rounds x 2 sides"
rm -f "$T/count"
"$KVB" ab --base-exe "$KVB" --new-exe "$T/flaky" $AW --out "$T/flaky-run" >"$T/stdout" \
  2>"$T/stderr"; rc=$?
[ "$rc" -eq 0 ] && ok || bad "slow in the first rounds only: exit $rc, wanted 0: $(cat "$T/stdout")"
grep -q '^REGRESSED: .*/time_ns' "$T/stdout" && grep -q '^not confirmed: .*/time_ns' "$T/stdout" \
  && grep -q '^ab: 0 of 1 regressed case(s) confirmed by the rerun: nothing regressed' \
  "$T/flaky-run/confirm.txt" && ok || bad "first-rounds slowdown: $(cat "$T/stdout")"
rm -f "$T/count"
"$KVB" ab --base-exe "$KVB" --new-exe "$T/patchy" $AW --out "$T/patchy-run" >"$T/stdout" \
  2>"$T/stderr"; rc=$?
[ "$rc" -eq 1 ] && grep -q '^REGRESSED (confirmed): .*/time_ns .* in 8 more, .* in all$' \
  "$T/patchy-run/confirm.txt" && [ -L "$T/patchy-run/pooled/b/runs/2-1" ] && ok \
  || bad "a slowdown the rerun sees in 5 pairs of 8: exit $rc (wanted 1): $(cat "$T/stdout")"
rm -f "$T/count"
"$KVB" ab --base-exe "$KVB" --new-exe "$T/flaky" $AW --confirm 0 --out "$T/no-rerun" \
  >"$T/stdout" 2>"$T/stderr"; rc=$?
[ "$rc" -eq 1 ] && [ ! -e "$T/no-rerun/confirm" ] && ok \
  || bad "--confirm 0: exit $rc (wanted 1) or a confirm/ made"
# bytes regress for good: no rerun
"$KVB" ab --base-exe "$KVB" --new-exe "$T/more" --rounds 4 $SW --out "$T/bytes" >"$T/stdout" \
  2>"$T/stderr"; rc=$?
[ "$rc" -eq 1 ] && grep -q '^ab: not rerun: [1-9]' "$T/stdout" && [ ! -e "$T/bytes/confirm" ] \
  && ok || bad "bytes: exit $rc, or rerun: $(cat "$T/stdout")"

echo "cli_ab: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
