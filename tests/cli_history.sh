#!/bin/sh
# cli_history.sh: kvbench history add|show|check on small synthetic results (an
# attend table in a sweep's layout, fixed samples, so every verdict is
# deterministic) and one real attend table. add files what compare reads under
# ROOT/<cpu key>/<commit>/runs/<n>/ and keeps index.csv in commit order; show
# prints each commit's median; check fails on a planted 30% slower newest
# commit and passes an identical one; bad input is refused with exit 2.
# Usage: sh tests/cli_history.sh path/to/kvbench
set -u
KVB=${1:?usage: cli_history.sh path/to/kvbench}
case "$KVB" in /*) ;; *) KVB="$(pwd)/$KVB" ;; esac
REPO=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d /tmp/kvbench-cli-history.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0

ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# expect CODE NEEDLE ARGS...: kvbench history ARGS exits CODE and its output
# (stdout and stderr) holds NEEDLE
expect() {
  code=$1 needle=$2; shift 2
  "$KVB" history "$@" >"$T/out" 2>&1; rc=$?
  if [ "$rc" -ne "$code" ]; then
    bad "history $* -> exit $rc, wanted $code: $(tail -n 5 "$T/out")"; return
  fi
  if ! grep -qF -- "$needle" "$T/out"; then
    bad "history $* -> output lacks '$needle': $(tail -n 5 "$T/out")"; return
  fi
  ok
}

# mk DIR SCALE [COMMIT [DIRTY]]: a sweep's layout holding one attend table, the contiguous
# row's nine samples fixed (median 1008), the paged row's the same times SCALE; a report and
# plots beside it (not filed); a meta.json recording COMMIT when given
mk() {
  mkdir -p "$1/points/attend-x" "$1/plots"
  printf 'host: testhost\ncpu: Test CPU\n' > "$1/machine.txt"
  echo "ok 1.0" > "$1/points/attend-x.status"
  echo "# report" > "$1/report.md"
  echo "png" > "$1/plots/latency.png"
  awk -v f="$2" 'BEGIN {
    print "case,backend,dtype,ctx,samples_ns"
    s = ""; p = ""
    for (i = 0; i < 9; i++) {
      s = s (i ? ";" : "") (1000 + 2 * i)
      p = p (i ? ";" : "") sprintf("%.1f", (1000 + 2 * i) * f)
    }
    print "\"attend(backend=contiguous,dt=f32,ctx=256)\",contiguous,f32,256," s
    print "\"attend(backend=paged,dt=f32,ctx=256)\",paged,f32,256," p
  }' > "$1/points/attend-x/attend.csv"
  if [ $# -ge 3 ]; then
    printf '{\n  "git": {"commit": "%s", "dirty": %s}\n}\n' "$3" "${4:-false}" > "$1/meta.json"
  fi
}
H="$T/h"
KEY=test-cpu
PAGED='attend-x:attend(backend=paged,dt=f32,ctx=256)'

# --- add: the layout, the commit from meta.json, pools, the index's order ---
mk "$T/r1" 1 1111111111111111111111111111111111111111
expect 0 "history: $H/$KEY/1111111111111111111111111111111111111111/runs/1" add "$T/r1" \
  --history "$H"
C1="$H/$KEY/1111111111111111111111111111111111111111"
[ -f "$C1/runs/1/points/attend-x/attend.csv" ] && [ -f "$C1/runs/1/machine.txt" ] && ok \
  || bad "add: the attend table or machine.txt was not filed: $(find "$C1" | head)"
[ ! -e "$C1/runs/1/plots" ] && [ ! -e "$C1/runs/1/report.md" ] && ok \
  || bad "add filed the report or plots"
[ -z "$(find "$H" -name '.adding-*')" ] && ok || bad "add left a temporary run behind"
# the same commit again: the next run, pooled
expect 0 "runs/2" add "$T/r1" --history "$H"
# a pool of runs (runs/<n>/): each filed as a run of its own
mkdir -p "$T/pool/runs" && mk "$T/pool/runs/1" 1 && mk "$T/pool/runs/2" 1
expect 0 "runs/3 and on" add "$T/pool" --commit 1111111111111111111111111111111111111111 \
  --history "$H"
[ -d "$C1/runs/4" ] && [ ! -d "$C1/runs/5" ] && ok || bad "a pool of two runs: $(ls "$C1/runs")"
# commits git does not know are ordered as filed
for c in c2 c3; do
  mk "$T/$c" 1; expect 0 "(commit $c)" add "$T/$c" --commit "$c" --history "$H"
done
mk "$T/slow" 1.3
expect 0 "(commit c4)" add "$T/slow" --commit c4 --history "$H"
got=$(tail -n +2 "$H/$KEY/index.csv" | cut -d, -f1 | tr '\n' ' ')
[ "$got" = "1111111111111111111111111111111111111111 c2 c3 c4 " ] && ok \
  || bad "index order: '$got'"
head -n 1 "$H/$KEY/index.csv" | grep -qx 'commit,added,commit_time,subject' && ok \
  || bad "index header: $(head -n 1 "$H/$KEY/index.csv")"
# commits git knows go by their own time, whatever order they are filed in (HEAD, then the
# newest commit of an earlier second)
new=$(cd "$REPO" && git log -1 --format=%H 2>/dev/null)
old=$(cd "$REPO" && t=$(git log -1 --format=%ct) && git log --format='%H %ct' 2>/dev/null |
      awk -v t="$t" '$2 < t { print $1; exit }')
if [ -n "$new" ] && [ -n "$old" ]; then
  for rev in HEAD "$old"; do
    (cd "$REPO" && "$KVB" history add "$T/c2" --commit "$rev" --history "$T/hg") >"$T/out" 2>&1 \
      && ok || bad "add --commit $rev: $(cat "$T/out")"
  done
  got=$(tail -n +2 "$T/hg/$KEY/index.csv" | cut -d, -f1 | tr '\n' ' ')
  [ "$got" = "$old $new " ] && ok || bad "git's order: '$got', wanted '$old $new '"
  tail -n 1 "$T/hg/$KEY/index.csv" | grep -q ',20[0-9-]*T[0-9:]*Z,"' && ok \
    || bad "no commit time in the index: $(tail -n 1 "$T/hg/$KEY/index.csv")"
else
  echo "cli-history: no git history here: the commit-time order is not checked"
fi

# --- add refuses ---
mk "$T/nocommit" 1
expect 2 "records no commit" add "$T/nocommit" --history "$H"
expect 2 "no such result directory" add "$T/absent" --history "$H" --commit x1
expect 2 "not a usable commit name" add "$T/nocommit" --history "$H" --commit ../x
mk "$T/dirty" 1 2222222222222222222222222222222222222222 true
expect 2 "uncommitted changes" add "$T/dirty" --history "$H"
mk "$T/mixed" 1 1111111111111111111111111111111111111111
printf '{"git": {"commit": "%s"}}\n' \
  3333333333333333333333333333333333333333 > "$T/mixed/points/attend-x/meta.json"
expect 2 "holds results of two commits" add "$T/mixed" --history "$H"
expect 2 "disagrees with the commit" add "$T/r1" --history "$H" --commit c9
mk "$T/unfinished" 1 && echo "failed 1.0" > "$T/unfinished/points/attend-x.status"
expect 2 "did not finish" add "$T/unfinished" --history "$H" --commit c9
expect 2 "holds no kvbench results" add "$T/r1/plots" --history "$H" --commit c9
expect 2 "is not a directory" add "$T/r1/machine.txt" --history "$H" --commit c9
[ ! -d "$H/$KEY/c9" ] && ok || bad "a refused add left $H/$KEY/c9"
# a damaged index is refused before anything is filed
mkdir -p "$T/hd/$KEY" && echo "garbage" > "$T/hd/$KEY/index.csv"
expect 2 "not a history index" add "$T/r1" --history "$T/hd"
[ -z "$(ls "$T/hd/$KEY" | grep -v index.csv)" ] && ok || bad "filed beside a damaged index"
expect 2 "not a history index" show x --history "$T/hd" --machine $KEY
printf 'commit,added,commit_time,subject\n../../etc,2026-12-03T00:00:00Z,,""\n' \
  > "$T/hd/$KEY/index.csv"
expect 2 "line 2: not a row of commit,added" show x --history "$T/hd" --machine $KEY
expect 2 "--machine is for history show and check" add "$T/r1" --history "$H" --machine x
expect 2 "unknown history action 'ad'" ad "$T/r1"
expect 2 "history needs an action" --history "$H"

# --- show: each commit's median, the change, the chart ---
expect 0 "$PAGED/time_ns (time)" show 'paged.*time_ns' --history "$H" --machine $KEY
grep -E '^  1111111 .* 36 +1008 ' "$T/out" >/dev/null && ok \
  || bad "show: commit 1 (36 samples pooled, median 1008): $(grep 1111111 "$T/out")"
grep -E '^  c4 .* 9 +1310.4 .* \+30\.0%' "$T/out" >/dev/null && ok \
  || bad "show: c4's median 1310.4, +30.0%: $(grep '^  c4' "$T/out")"
expect 0 "chart: $T/chart/history." show 'time_ns' --history "$H" --machine $KEY --out "$T/chart"
[ "$(grep -c '^[0-9]' "$T/chart/history.dat")" -eq 8 ] && ok \
  || bad "history.dat: 2 cases x 4 commits wanted: $(cat "$T/chart/history.dat")"
grep -q "xtics rotate.*'c4' 3" "$T/chart/history.gp" && ok || bad "history.gp: no commit tics"
# the report: a row per commit of each case, c4's change, the chart named
grep -qE '^\| `c4` \|.*\| 1310.4 \|.*\| \+30\.0% \|$' "$T/chart/history.md" \
  && [ "$(grep -c '^| `' "$T/chart/history.md")" -eq 8 ] && ok \
  || bad "history.md: $(cat "$T/chart/history.md")"
if command -v gnuplot >/dev/null 2>&1; then
  [ -s "$T/chart/history.png" ] && ok || bad "gnuplot is here but history.png is not"
fi
expect 2 "matches the REGEX" show 'no-such-case' --history "$H" --machine $KEY
expect 2 "not a valid extended regular expression" show '(' --history "$H" --machine $KEY
expect 2 "needs a REGEX" show --history "$H" --machine $KEY
expect 2 "unknown machine key 'nope': '$H' holds $KEY" show x --history "$H" --machine nope
expect 2 "no history at" show x --history "$T/none" --machine $KEY

# --- check: the planted slowdown regresses, an identical commit passes ---
expect 1 "REGRESSED: $PAGED/time_ns +30.0%" check --history "$H" --machine $KEY
grep -qF "REGRESSED: $PAGED/vs_contiguous" "$T/out" && ok \
  || bad "check: the ratio to contiguous did not regress: $(tail -n 4 "$T/out")"
grep -qF "REGRESSED: attend-x:attend(backend=contiguous" "$T/out" \
  && bad "check: contiguous flagged" || ok
grep -q "against the 3 commit(s) before it, 1111111..c3" "$T/out" && ok \
  || bad "check: the base commits: $(sed -n 2p "$T/out")"
# the same gate without times and ratios: nothing else moved
expect 0 "0 regressed" check --history "$H" --machine $KEY --gate exact,tolerance
H2="$T/h2"
for c in a1 a2 a3 a4; do mk "$T/$c" 1; "$KVB" history add "$T/$c" --commit "$c" --history "$H2" \
  >/dev/null 2>&1 || bad "add $c"; done
expect 0 "0 regressed" check --history "$H2" --machine $KEY
grep -qE '^history check: [1-9][0-9]* cases: 0 regressed' "$T/out" && ok \
  || bad "check judged no cases: $(tail -n 1 "$T/out")"
# --last 1: only a3 is the base
expect 0 "against the 1 commit(s) before it, a3..a3" check --history "$H2" --machine $KEY --last 1
# a case of the commit before that the newest lacks fails the check
mk "$T/a5" 1 && sed -i '/paged/d' "$T/a5/points/attend-x/attend.csv"
"$KVB" history add "$T/a5" --commit a5 --history "$H2" >/dev/null 2>&1 || bad "add a5"
expect 1 "MISSING: $PAGED/time_ns" check --history "$H2" --machine $KEY
# too little history, bad flags
H3="$T/h3"
"$KVB" history add "$T/a1" --commit a1 --history "$H3" >/dev/null 2>&1 || bad "add a1 to h3"
expect 2 "needs at least 2 commits of $KEY" check --history "$H3" --machine $KEY
expect 2 "unknown --gate 'speed'" check --history "$H" --machine $KEY --gate speed
expect 2 "--last" check --history "$H" --machine $KEY --last 0
expect 2 "--commit is for history add only" check --history "$H" --commit c1

# --- a real attend table files and shows ---
mkdir -p "$T/real/points/attend-x"
printf 'host: testhost\ncpu: Test CPU\n' > "$T/real/machine.txt"
echo "ok 1.0" > "$T/real/points/attend-x.status"
"$KVB" attend --backend contiguous,paged --dtype f32 --heads 4 --kv-heads 2 --head-dim 32 \
  --ctx 256 --reps 3 --no-ceilings --csv "$T/real/points/attend-x/attend.csv" >"$T/out" 2>&1 \
  && ok || bad "attend for the fixture: $(tail -n 3 "$T/out")"
expect 0 "(commit r1)" add "$T/real" --commit r1 --history "$T/hr"
expect 0 "/rel_err (tolerance)" show 'contiguous' --history "$T/hr" --machine $KEY

echo "cli-history: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
