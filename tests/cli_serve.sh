#!/bin/sh
# cli_serve.sh: kvbench serve from the outside: a tiny run (stories15m, a few
# requests, two rates, the prefix cache on) writes complete files through
# DIR.partial, every request finishes, no step's reserved KV passes the budget;
# a trace file is served; bad flags, budgets and traces are refused before any
# work with a message naming the value (exit 2). A few seconds.
# Usage: sh tests/cli_serve.sh path/to/kvbench [path/to/kvbench-gbench]
set -u
KVB=${1:?usage: cli_serve.sh path/to/kvbench}
T=$(mktemp -d /tmp/kvbench-cli-serve.XXXXXX)
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT TERM
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
# expect CODE TEXT ARGS...: exit status CODE and TEXT in stdout or stderr
expect() {
  code=$1 text=$2; shift 2
  "$KVB" serve "$@" > "$T/out" 2>&1; rc=$?
  if [ "$rc" = "$code" ] && grep -qF -- "$text" "$T/out"; then ok
  else bad "serve $* -> exit $rc (want $code), output lacks '$text': $(head -c 300 "$T/out")"; fi
}
S="--preset stories15m --requests 6 --prompt-len 2:6 --output-len 3:6 --quiet"
BUDGET=1048576

"$KVB" serve $S --rates 50,200 --shared-prefix 16 --prefix-cache on --kv-budget 1MiB \
  --out "$T/dir" > "$T/table" 2> "$T/err"
[ $? = 0 ] && ok || bad "serve exit $?: $(cat "$T/err")"
for f in serve.csv requests.csv steps.csv report.md plots/serve.gp plots/serve.dat plots/kv.dat; do
  [ -s "$T/dir/$f" ] && ok || bad "--out lacks $f"
done
[ -e "$T/dir.partial" ] && bad "the .partial directory is left" || ok
if command -v gnuplot > /dev/null 2>&1; then
  for p in serve load kv; do
    [ -s "$T/dir/plots/$p.png" ] && ok || bad "no plots/$p.png"
  done
fi
# three cases (contiguous prealloc and grow, paged) at two rates
[ "$(wc -l < "$T/dir/serve.csv")" = 7 ] && ok || bad "serve.csv rows: $(cat "$T/dir/serve.csv")"
[ "$(wc -l < "$T/dir/requests.csv")" = 37 ] && ok ||
  bad "requests.csv: $(wc -l < "$T/dir/requests.csv") lines"
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
  { n++; if ($(c["outcome"]) == "finished" && $(c["generated"]) == $(c["output"])) f++ }
  END { exit !(n == 36 && f == 36) }' "$T/dir/requests.csv" && ok ||
  bad "not every request finished with its whole output: $(cat "$T/dir/requests.csv")"
awk -F, -v b=$BUDGET 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
  { n++; if ($(c["kv_reserved"]) > b) over++ } END { exit !(n > 0 && over == 0) }' \
  "$T/dir/steps.csv" && ok || bad "a step's reserved KV passes the budget"
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
  $(c["backend"]) == "paged" { if ($(c["prefix_hits"]) > 0 && $(c["saved_max_bytes"]) > 0) p++ }
  $(c["backend"]) == "contiguous" { if ($(c["saved_max_bytes"]) == 0) q++ }
  END { exit !(p == 2 && q == 4) }' "$T/dir/serve.csv" && ok ||
  bad "paged forks do not share or contiguous ones do: $(cat "$T/dir/serve.csv")"
for c in contiguous/f32/prealloc contiguous/f32/grow paged/f32/bs16; do
  grep -qF "| $c | 200 |" "$T/dir/report.md" && ok || bad "report.md lacks $c at rate 200"
  grep -qF "$c " "$T/table" && ok || bad "the table lacks $c"
done

# preemption by recompute and by swap side by side at two budgets (all at once,
# outputs long enough to preempt): every request finishes, each swap case swaps
# out and back in as often, recompute cases never swap, no step passes its
# case's budget; quant cannot swap and says so
"$KVB" serve --preset stories15m --requests 8 --prompt-len 2:6 --output-len 20:40 --quiet \
  --arrival all --backend contiguous,paged,quant --dtype f32,q8 --mode grow \
  --preempt recompute,swap --kv-budget 700KB,1MB --out "$T/sw" > "$T/table" 2> "$T/err"
[ $? = 0 ] && ok || bad "swap run exit: $(cat "$T/err")"
grep -qF "quant cannot swap (no seq_save)" "$T/err" && ok || bad "no note that quant cannot swap"
[ "$(wc -l < "$T/sw/serve.csv")" = 11 ] && ok || bad "swap run rows: $(cat "$T/sw/serve.csv")"
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
  { n++; pre += $(c["preemptions"])
    if ($(c["case"]) ~ /\/swap@/) { if ($(c["preempt"]) == "swap" && $(c["swaps_out"]) > 0 &&
        $(c["swaps_out"]) == $(c["swaps_in"]) && $(c["swap_peak_bytes"]) > 0) s++ }
    else if ($(c["preempt"]) == "recompute" && $(c["swaps_out"]) == 0) r++
    if ($(c["finished"]) == 8) f++ }
  END { exit !(n == 10 && s == 4 && r == 6 && f == 10 && pre > 0) }' "$T/sw/serve.csv" && ok ||
  bad "swap cases do not swap, or recompute ones do: $(cat "$T/sw/serve.csv")"
awk -F, 'FNR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
  FILENAME ~ /serve.csv/ { b[$(c["case"])] = $(c["budget_bytes"]); next }
  { n++; if ($(c["kv_reserved"]) > b[$(c["case"])]) over++ }
  END { exit !(n > 0 && over == 0) }' "$T/sw/serve.csv" "$T/sw/steps.csv" && ok ||
  bad "a step passes its case's budget"
grep -qF "paged/f32/bs16/swap@700KB " "$T/table" && ok || bad "the table lacks the swap case"

# a trace: times and lengths from the file
printf 'arrival_s,prompt,output\n0,4,3\n# a comment\n0.01,6,2\n0.5,3,4\n' > "$T/trace.csv"
"$KVB" serve $S --arrival trace --trace "$T/trace.csv" --backend paged --out "$T/tr" \
  > "$T/out" 2>&1 && ok || bad "trace run: $(cat "$T/out")"
[ "$(wc -l < "$T/tr/requests.csv" 2>/dev/null)" = 4 ] && ok || bad "trace run's requests.csv"

# refusals: exit 2, naming the value, nothing written
expect 2 "--rate 0" $S --rate 0 --out "$T/x"
expect 2 "--rates item -1" $S --rates 1,-1 --out "$T/x"
expect 2 "bogus" $S --arrival bogus --out "$T/x"
expect 2 "--kv-budget '12XB'" $S --kv-budget 12XB --out "$T/x"
expect 2 "--kv-budget: empty item" $S --kv-budget 2MiB,, --out "$T/x"
expect 2 "--swap-space 'lots'" $S --swap-space lots --out "$T/x"
expect 2 "--preempt 'evict'" $S --preempt evict --out "$T/x"
expect 2 "--kv-budget 1000 bytes is below" $S --kv-budget 1000 --out "$T/x"
expect 2 "needs --trace" $S --arrival trace --out "$T/x"
expect 2 "needs --arrival trace" $S --trace "$T/trace.csv" --out "$T/x"
expect 2 "trace '$T/none.csv'" $S --arrival trace --trace "$T/none.csv" --out "$T/x"
printf '0,4,3\n0.1,four,3\n' > "$T/bad.csv"
expect 2 "line 2 field 2 (prompt) 'four'" $S --arrival trace --trace "$T/bad.csv" --out "$T/x"
printf '0.5,4,3\n0.1,4,3\n' > "$T/order.csv"
expect 2 "line 2 field 1 (arrival_s)" $S --arrival trace --trace "$T/order.csv" --out "$T/x"
printf '0,4,3,9\n' > "$T/extra.csv"
expect 2 "line 1 field 3 (output)" $S --arrival trace --trace "$T/extra.csv" --out "$T/x"
expect 2 "past the model's max-seq" $S --prompt-len 5000 --out "$T/x"
expect 2 "--max-len 3 is below the longest request" $S --max-len 3 --out "$T/x"
expect 2 "past the model's max-seq" $S --max-len 100000 --out "$T/x"
expect 2 "--prefix-cache on needs --shared-prefix" $S --prefix-cache on --out "$T/x"
expect 2 "holds no KV" $S --backend nocache --out "$T/x"
expect 2 "exists" $S --out "$T/dir"
[ -e "$T/x" ] || [ -e "$T/x.partial" ] && bad "a refused run wrote '$T/x'" || ok
expect 0 "dry run: 3 cases x 1 rate" $S --dry-run --out "$T/x"

echo "cli-serve: $pass passed, $fail failed"
[ "$fail" = 0 ]
