#!/bin/sh
# cli_report.sh: what `kvbench report` (and sweep and merge, which end with it)
# writes: plots drawn by the command itself from any directory, a clear word
# when gnuplot is missing, readable SVG text in report.html, keys that hide no
# data, one colour per series and one read ceiling per machine in a merge, a
# quantized point that quantized nothing said to be so, merged sweeps of
# different definitions kept apart, both shapes of quality.csv, and the real
# cause when the directory is read-only. Result directories are assembled from
# real tiny kvbench commands (no sweep: no ceiling measurement, about 5 s).
# Usage: sh tests/cli_report.sh path/to/kvbench [path/to/kvbench-gbench]
set -u
KVB=${1:?usage: cli_report.sh path/to/kvbench [path/to/kvbench-gbench]}
case $KVB in /*) ;; *) KVB=$(pwd)/$KVB ;; esac
ROOT=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
T=$(mktemp -d /tmp/kvbench-cli-report.XXXXXX)
RO=""
cleanup() {
  [ -n "$RO" ] && umount "$RO" 2>/dev/null
  if [ -n "${KEEP_TMP:-}" ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
pass=0 fail=0

ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
have_gnuplot() { command -v gnuplot >/dev/null 2>&1; }

# set_ceiling GBS FILE: attend.csv with its read_ceiling_gbs column set to GBS.
# Only the first field (the quoted case name) holds commas: a row's column k
# is k plus the row's extra fields.
set_ceiling() {
  awk -F, -v OFS=, -v c="$1" 'NR == 1 { nh = NF
      for (i = 1; i <= NF; i++) if ($i == "read_ceiling_gbs") k = i; print; next }
    { if (k) $(k + NF - nh) = c; print }' "$2"
}

# mk_sweep DIR HOST CEILING [TOKENS]: a finished sweep directory as kvbench
# sweep leaves it, its points made by the very commands a sweep runs
mk_sweep() {
  d=$1 host=$2 ceil=$3 tok=${4:-4}
  mkdir -p "$d/points"
  printf '# sweep test, as run\nrun.preset = tiny\nrun.tokens = %s\nquality.dtypes = q8,q2\n' \
    "$tok" > "$d/sweep.def"
  printf 'host: %s\ndate: 2026-12-02 05:00 UTC\ncpu:            test cpu of %s\n' \
    "$host" "$host" > "$d/machine.txt"
  echo "point,kind,status,seconds,budget_s,command" > "$d/sweep.csv"
  for b in contiguous paged; do
    p=run-tiny-$b-f32-t1
    "$KVB" run --preset tiny --backend $b --tokens "$tok" --reps 1 --warmup 0 --no-ceilings \
      --quiet --out "$d/points/$p" >/dev/null 2>&1 \
      || { bad "mk_sweep: run $b"; return; }
    echo "$p,run,ok,0.1,30,\"kvbench run\"" >> "$d/sweep.csv"
  done
  "$KVB" run --preset tiny --backend contiguous,quant --dtype f32,q8,q2 --group 16 --untied \
    --tokens 4 --reps 1 --warmup 0 --no-ceilings --quiet --out "$d/points/quality-tiny" \
    >/dev/null 2>&1 || { bad "mk_sweep: quality"; return; }
  echo "quality-tiny,quality,ok,0.1,30,\"kvbench run\"" >> "$d/sweep.csv"
  p=attend-4x2x16-paged-f32-t1
  mkdir -p "$d/points/$p"
  "$KVB" attend --backend contiguous,paged --heads 4 --kv-heads 2 --head-dim 16 --ctx 64,128 \
    --block 4,16 --reps 3 --no-ceilings --csv "$d/points/$p/raw.csv" >/dev/null 2>&1 \
    || { bad "mk_sweep: attend"; return; }
  # this machine's read ceiling, as a sweep's attend would have measured it
  set_ceiling "$ceil" "$d/points/$p/raw.csv" > "$d/points/$p/attend.csv" \
    && rm "$d/points/$p/raw.csv"
  echo "$p,attend,ok,0.1,30,\"kvbench attend\"" >> "$d/sweep.csv"
  mkdir -p "$d/points/serve-tiny"
  "$KVB" serve-sim --preset tiny --backend contiguous,paged --block 4,16 --no-attend --sequences 4 \
    --csv "$d/points/serve-tiny/serve.csv" >/dev/null 2>&1 || { bad "mk_sweep: serve"; return; }
  echo "serve-tiny,serve,ok,0.1,30,\"kvbench serve-sim\"" >> "$d/sweep.csv"
}

# svg_ok SVG: its text is at least 12 px when report.html shows it in a 1400 px
# window (the page is 1200 px wide; a wider or size-less SVG is scaled to fit,
# and its text with it)
svg_min_px() {
  awk 'BEGIN { w = 0; min = 1e9 }
    match($0, /width="[0-9.]+"/) && !w { w = substr($0, RSTART + 7, RLENGTH - 8) + 0 }
    match($0, /viewBox="[0-9. ]+"/) && !vb {
      split(substr($0, RSTART + 9, RLENGTH - 10), a, " "); vb = a[3] + 0 }
    { s = $0
      while (match(s, /font-size="[0-9.]+"/)) {
        f = substr(s, RSTART + 11, RLENGTH - 12) + 0; if (f < min) min = f
        s = substr(s, RSTART + RLENGTH)
      } }
    END { shown = w ? w : 1200; if (shown > 1200) shown = 1200
          scale = shown / (vb ? vb : (w ? w : 1200)); printf "%.1f\n", min * scale }' "$1"
}

mk_sweep "$T/sw" hostA 11
[ -s "$T/sw/points/quality-tiny/quality.csv" ] \
  && [ -s "$T/sw/points/attend-4x2x16-paged-f32-t1/attend.csv" ] && ok \
  || bad "the test's sweep directory is incomplete"

# --- 1. the command that writes a report draws its plots, from any directory ---
if have_gnuplot; then
  (cd / && "$KVB" report "$T/sw" >"$T/stdout" 2>"$T/stderr"); rc=$?
  [ $rc -eq 0 ] && ok || bad "report exit $rc: $(cat "$T/stderr")"
  n=0
  for v in "$T"/sw/plots/*.vars; do
    b=${v%.vars}
    if [ -s "$b.svg" ] && [ -s "$b.png" ]; then n=$((n + 1))
    else bad "report drew no image for $(basename "$b")"; fi
  done
  [ $n -ge 5 ] && ok || bad "only $n plots drawn"
  missing=$(sed -n 's/.*<img src="\([^"]*\)".*/\1/p' "$T/sw/report.html" |
    while read -r f; do [ -s "$T/sw/$f" ] || echo "$f"; done)
  [ -z "$missing" ] && grep -q '<img src="plots/latency.svg"' "$T/sw/report.html" && ok \
    || bad "report.html links missing images: $missing"
  # the scripts themselves, from another directory (they find common.gp beside them)
  (cd "$T" && gnuplot -e "dir='$T/sw'; term='svg'; out_suffix='.any'" "$ROOT/plots/latency.gp" \
    2>"$T/gp.err") \
    && [ -s "$T/sw/plots/latency.svg.any" ] && ok \
    || bad "latency.gp fails outside the repository root: $(cat "$T/gp.err")"
  (cd "$T" && KVBENCH="$KVB" sh "$ROOT/plots/plot.sh" "$T/sw" >"$T/stdout" 2>"$T/stderr") \
    && grep -q "plots:.*latency" "$T/stdout" && ok \
    || bad "plot.sh fails outside the repository root: $(cat "$T/stderr")"
  # a sweep's own report (kvbench sweep, not make sweep) has its images too
  "$KVB" sweep --set run.preset=tiny --set run.backends=contiguous --set run.tokens=4 \
    --set run.reps=1 --set run.warmup=0 --quiet --out "$T/swq" >/dev/null 2>"$T/stderr"
  [ -s "$T/swq/plots/latency.svg" ] && [ -s "$T/swq/plots/memory.png" ] && ok \
    || bad "kvbench sweep left no images: $(cat "$T/stderr")"
  # a script gnuplot rejects: exit 1 with gnuplot's own words, and the report says which plot
  # is missing
  mkdir -p "$T/data" && cp -r "$ROOT/plots" "$T/data/plots" \
    && echo "plot nonsense_function(x)" >> "$T/data/plots/memory.gp"
  cp -r "$T/sw" "$T/gpbad"
  KVBENCH_DATA=$T/data "$KVB" report "$T/gpbad" >"$T/stdout" 2>"$T/stderr"; rc=$?
  m="gnuplot failed on '$T/data/plots/memory.gp' (png):.*nonsense_function"
  [ $rc -eq 1 ] && grep -q "$m" "$T/stderr" \
    && grep -q 'Plot not drawn: gnuplot failed on it' "$T/gpbad/report.md" \
    && ! grep -q 'plots/memory.svg' "$T/gpbad/report.html" \
    && grep -q 'plots/latency.svg' "$T/gpbad/report.html" \
    && [ ! -e "$T/gpbad/plots/memory.svg" ] && [ ! -e "$T/gpbad/plots/memory.png" ] \
    && ok || bad "a failing plot script: exit $rc (or its old image kept): $(cat "$T/stderr")"
else
  echo "skip: gnuplot is not installed: the drawing checks need it (apt-get install gnuplot-nox)"
fi

# --- 2. gnuplot missing: said once, and a report without broken image links ---
# its old images must go
cp -r "$T/sw" "$T/nogp" && rm -f "$T/nogp/report.md" "$T/nogp/report.html"
env PATH=/nonexistent "$KVB" report "$T/nogp" >"$T/stdout" 2>"$T/stderr"; rc=$?
[ $rc -eq 0 ] && [ "$(grep -c 'gnuplot not found' "$T/stderr")" -eq 1 ] && ok \
  || bad "no gnuplot: exit $rc, wanted 0 and one note: $(cat "$T/stderr")"
! grep -q '<img' "$T/nogp/report.html" \
  && grep -q 'Plot not drawn: gnuplot is not installed' "$T/nogp/report.html" \
  && [ -z "$(ls "$T"/nogp/plots/*.svg "$T"/nogp/plots/*.png 2>/dev/null)" ] \
  && grep -q 'Plot not drawn' "$T/nogp/report.md" && [ -s "$T/nogp/plots/latency.dat" ] && ok \
  || bad "no gnuplot: report.html still links images or says nothing"
# a binary far from its plot scripts says where it looked
mkdir -p "$T/bin" && cp "$KVB" "$T/bin/kvbench"
cp -r "$T/nogp" "$T/noscr" && rm -rf "$T/noscr/plots"
(cd "$T" && env -u KVBENCH_DATA "$T/bin/kvbench" report "$T/noscr" \
  >"$T/stdout" 2>"$T/stderr"); rc=$?
[ $rc -eq 0 ] && grep -q 'plot scripts not found' "$T/stderr" \
  && ! grep -q '<img' "$T/noscr/report.html" && ok \
  || bad "no plot scripts: exit $rc: $(cat "$T/stderr")"

# --- 3. readable SVG text, 4. keys that hide no data ---
if have_gnuplot; then
  grep -q 'img{max-width:100%;height:auto}' "$T/sw/report.html" \
    && ! grep -q '<img [^>]*width=' "$T/sw/report.html" && ok \
    || bad "report.html scales its images by width"
  for s in "$T"/sw/plots/*.svg; do
    px=$(svg_min_px "$s")
    awk -v p="$px" 'BEGIN { exit !(p >= 12) }' && ok \
      || bad "$(basename "$s"): smallest text $px px in a 1400 px window (want >= 12)"
  done
  sizes=$(for s in "$T"/sw/plots/*.svg; do
    printf '%s %s px; ' "$(basename "$s" .svg)" "$(svg_min_px "$s")"
  done)
  echo "cli-report: smallest SVG text in a 1400 px window: $sizes"
  for gp in memory scaling; do
    gnuplot -e "dir='$T/sw'; term='svg'; out_suffix='.key'" "$ROOT/plots/$gp.gp" -e "show key" \
      2>"$T/key.txt"
    grep -q 'key is ON, position: .* outside' "$T/key.txt" && ok \
      || bad "$gp.gp: key inside the axes: $(head -2 "$T/key.txt")"
  done
fi

# --- 5. a merge: one colour per series, one ceiling per machine ---
M=$T/merge
mkdir -p "$M/machines"
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
  cp -r "$T/sw" "$M/machines/host$i"
  sed -i "s/^host: .*/host: host$i/" "$M/machines/host$i/machine.txt"
  a=$M/machines/host$i/points/attend-4x2x16-paged-f32-t1/attend.csv
  set_ceiling "$((10 + i))" "$a" > "$a.new" && mv "$a.new" "$a"
  rm -rf "$M/machines/host$i/plots" "$M/machines/host$i/report.md" "$M/machines/host$i/report.html"
done
"$KVB" report "$M" >"$T/stdout" 2>"$T/stderr"; rc=$?
[ $rc -eq 0 ] && ok || bad "report of a merge: exit $rc: $(cat "$T/stderr")"
V=$M/plots/bandwidth.vars
nser=$(sed -n 's/^n = //p' "$V")
[ "$(sed -n 's/^n_ceil = //p' "$V")" = 12 ] \
  && [ "$(grep -c '^ceil1s\[[0-9]*\] = [12][0-9];' "$V")" -eq 12 ] \
  && grep -q 'ceil_host\[[0-9]*\] = " of host3"' "$V" && ok \
  || bad "bandwidth of a merge: not one ceiling per machine: $(grep ceil "$V")"
for v in "$M"/plots/*.vars; do
  nc=$(grep -c '^colour\[' "$v"); nd=$(grep '^colour\[' "$v" | sed 's/.*= //' | sort -u | wc -l)
  nl=$(sed -n 's/^n = //p' "$v")
  [ "$nc" -eq "$nd" ] && [ "$nc" -ge "$nl" ] && ok \
    || bad "$(basename "$v"): $nd distinct colours for $nl series ($nc given)"
done
if have_gnuplot; then
  # in the drawing: every series' stroke its own colour, every machine's ceiling named
  ncol=$(grep -o "stroke='rgb([^)]*)'" "$M/plots/bandwidth.svg" | sort -u | wc -l)
  [ "$ncol" -ge "$nser" ] && ok || bad "bandwidth.svg: $ncol colours for $nser series"
  for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
    grep -q "read ceiling of host$i, 1 thread: $((10 + i)).0 GB/s" "$M/plots/bandwidth.svg" \
      || bad "no ceiling line for host$i"
  done; ok
  echo "cli-report: a 12-machine merge: $nser bandwidth series in $ncol colours, 12 ceilings"
fi

# --- 6. a quantized point that quantized nothing says so ---
m='quant/q2/g16-r128-kchannel (none quantized: every token in the f32 window) |'
m2='quantized no token: all [0-9]* tokens it held stayed in the 128-token f32 window'
grep -q "$m" "$T/sw/report.md" \
  && grep -q "$m2" "$T/sw/report.md" && ok \
  || bad "q2 that quantized nothing is shown as a q2 figure: $(grep 'q2' "$T/sw/report.md")"
grep -q '"q2 (none quantized: every token in the f32 window)" 1$' "$T/sw/plots/quant.dat" \
  && grep -q '"q8" 0$' "$T/sw/plots/quant.dat" && ok \
  || bad "quant.dat does not mark the point that quantized nothing: $(cat "$T/sw/plots/quant.dat")"

# --- 7. a merge of different definitions: kept apart, and said ---
D=$T/mixed
mkdir -p "$D/machines"
cp -r "$M/machines/host1" "$M/machines/host2" "$D/machines/"
mk_sweep "$D/machines/hostC" hostC 30 8
"$KVB" report "$D" >"$T/stdout" 2>"$T/stderr"; rc=$?
[ $rc -eq 0 ] || bad "report of a merge of different definitions: exit $rc: $(cat "$T/stderr")"
m='set 2: hostC; differs from set 1 in: `run.tokens = 8` (set 1: `run.tokens = 4`)'
grep -q 'different sweep definitions' "$D/report.md" && grep -qF "$m" "$D/report.md" \
  && grep -q '^## Set 2 of 2' "$D/report.md" && ok \
  || bad "different definitions not kept apart: $(head -12 "$D/report.md")"
grep -q 'on host1' "$D/plots/latency-set1.vars" && ! grep -q 'hostC' "$D/plots/latency-set1.vars" \
  && [ -s "$D/plots/latency-set2.vars" ] && ! grep -q 'host1' "$D/plots/latency-set2.vars" \
  && [ ! -e "$D/plots/latency.vars" ] && ok \
  || bad "a plot mixes sweeps of different definitions"
grep -q '^ceil1s\[1\] = 30;' "$D/plots/bandwidth-set2.vars" \
  && [ "$(sed -n 's/^n_ceil = //p' "$D/plots/bandwidth-set1.vars")" = 2 ] && ok \
  || bad "ceilings of different sets mixed"
if have_gnuplot; then
  [ -s "$D/plots/latency-set1.svg" ] && [ -s "$D/plots/latency-set2.svg" ] \
    && grep -q 'src="plots/latency-set2.svg"' "$D/report.html" && ok \
    || bad "the sets' plots were not drawn"
fi

# definitions that differ only in a time budget measured the same things: one set, as merge
# judges them
D=$T/budgets
mkdir -p "$D/machines"
cp -r "$M/machines/host1" "$M/machines/host2" "$D/machines/"
sed -i 's/^run.budget *=.*//' "$D/machines/host2/sweep.def"
echo "run.budget = 200" >> "$D/machines/host2/sweep.def"
"$KVB" report "$D" >/dev/null 2>"$T/stderr" \
  && ! grep -q 'different sweep definitions' "$D/report.md" && [ -e "$D/plots/latency.vars" ] \
  && ok || bad "definitions differing only in a budget were reported apart:" \
    "$(head -12 "$D/report.md")"

# --- 8. quality.csv: long lines (old per-context columns), and the new shape with
# quality_ctx.csv ---
table() { sed -n '/^| point | bytes\/token/,/^$/p' "$1/report.md"; }
Q=$T/sw/points/quality-tiny
table "$T/sw" > "$T/quant.ref"
cp "$Q/quality.csv" "$T/quality.orig"
# old shape, many contexts: lines far past 2 KB
awk -F, -v OFS=, '{ s = $0; for (i = 0; i < 400; i++)
    s = s "," (NR == 1 ? "attn_rel_l2_ctx" (i + 1) : "1.234567e-03"); print s }' \
  "$T/quality.orig" > "$Q/quality.csv"
"$KVB" report "$T/sw" >/dev/null 2>&1
table "$T/sw" > "$T/quant.wide"
[ -s "$T/quant.ref" ] && [ "$(wc -l < "$T/quant.ref")" -ge 4 ] \
  && cmp -s "$T/quant.ref" "$T/quant.wide" && ok \
  || bad "quality.csv with 400 context columns changes the table:" \
    "$(diff "$T/quant.ref" "$T/quant.wide")"
# new shape: fixed columns only, the per-context ones in quality_ctx.csv
cut -d, -f1-13 "$T/quality.orig" > "$Q/quality.csv"
echo "point,backend,dtype,mode,layer,ctx,attn_rel_l2" > "$Q/quality_ctx.csv"
"$KVB" report "$T/sw" >/dev/null 2>&1
table "$T/sw" > "$T/quant.long"
cmp -s "$T/quant.ref" "$T/quant.long" && ok \
  || bad "the new quality.csv shape changes the table: $(diff "$T/quant.ref" "$T/quant.long")"
cp "$T/quality.orig" "$Q/quality.csv"

# --- 9. a read-only directory: the real cause, and the path ---
# root ignores chmod: a read-only bind mount (or one in a user namespace) makes it read-only
mkdir -p "$T/ro"
cp -r "$T/nogp" "$T/ro/new" \
  && rm -rf "$T/ro/new/plots" "$T/ro/new/report.md" "$T/ro/new/report.html"
cp -r "$T/nogp" "$T/ro/old" && rm -f "$T/ro/old/report.md"
ro_check() {   # ro_check RESULT_DIR NEEDLE: exit 1 and the message names the path and the cause
  grep -q "Read-only file system" "$T/stderr" && grep -qF "$2" "$T/stderr" \
    && ! grep -q "No such file" "$T/stderr" && [ "$(cat "$T/rc")" -eq 1 ] && ok \
    || bad "read-only $1: exit $(cat "$T/rc"): $(cat "$T/stderr")"
}
if mount --bind "$T/ro" "$T/ro" 2>/dev/null && RO=$T/ro \
  && mount -o remount,bind,ro "$T/ro" 2>/dev/null; then
  env PATH=/nonexistent "$KVB" report "$T/ro/new" >/dev/null 2>"$T/stderr"; echo $? > "$T/rc"
  ro_check new "cannot create '$T/ro/new/plots'"
  env PATH=/nonexistent "$KVB" report "$T/ro/old" >/dev/null 2>"$T/stderr"; echo $? > "$T/rc"
  ro_check old "$T/ro/old/plots/"
  umount "$T/ro"; RO=""
elif command -v unshare >/dev/null 2>&1 \
  && unshare -rm sh -c 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1"' \
    sh "$T/ro" 2>/dev/null; then
  unshare -rm sh -c 'mount --bind "$1/ro" "$1/ro" && mount -o remount,bind,ro "$1/ro" &&
    { env PATH=/nonexistent "$2" report "$1/ro/new" >/dev/null 2>"$1/stderr"
      echo $? > "$1/rc"; }' sh "$T" "$KVB"
  ro_check new "cannot create '$T/ro/new/plots'"
else
  echo "skip: no read-only bind mount here (neither mount --bind nor unshare -rm works):" \
    "the read-only directory check did not run"
fi

echo "cli-report: $pass passed, $fail failed"
[ $fail -eq 0 ]
