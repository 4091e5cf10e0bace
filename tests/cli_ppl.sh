#!/bin/sh
# cli_ppl.sh: kvbench ppl from the outside: the table and ppl.csv agree, the
# f32 cache is the reference (KL 0, top-1 1), a lossy cache shows KL > 0 at
# fewer bytes per token, --out writes ppl.csv, machine.txt, report.md and the
# plot through DIR.partial, and bad input is refused before any work (exit 2)
# or said to have measured nothing (exit 3). Small: stories15m, two windows
# of 16 tokens (a few seconds).
# Usage: sh tests/cli_ppl.sh path/to/kvbench [path/to/kvbench-gbench]
set -u
KVB=${1:?usage: cli_ppl.sh path/to/kvbench}
T=$(mktemp -d /tmp/kvbench-cli-ppl.XXXXXX)
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT TERM
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
# expect CODE TEXT ARGS...: exit status CODE and TEXT in stdout or stderr
expect() {
  code=$1 text=$2; shift 2
  "$KVB" ppl "$@" > "$T/out" 2>&1; rc=$?
  if [ "$rc" = "$code" ] && grep -qF -- "$text" "$T/out"; then ok
  else bad "ppl $* -> exit $rc (want $code), output lacks '$text': $(head -c 300 "$T/out")"; fi
}
S="--preset stories15m --untied --ctx 16 --windows 2 --quiet"

"$KVB" ppl $S --dtype f32,q8 --csv "$T/p.csv" --out "$T/dir" > "$T/table" 2> "$T/err"
[ $? = 0 ] && ok || bad "ppl exit $?: $(cat "$T/err")"
grep -q '^contiguous-f32 .* 0.000e+00  0.000e+00  1.0000 ' "$T/table" && ok ||
  bad "the reference row is not KL 0, top-1 1: $(cat "$T/table")"
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
  $1 == "quant-q8" { q = ($(c["kl_mean"]) > 0 && $(c["bytes_per_token"]) < ref) }
  $1 == "contiguous-f32" { ref = $(c["bytes_per_token"]) }
  END { exit !q }' "$T/p.csv" && ok || bad "q8's KL is not > 0 below f32's bytes: $(cat "$T/p.csv")"
[ "$(wc -l < "$T/p.csv")" = 3 ] && ok || bad "ppl.csv rows: $(cat "$T/p.csv")"
cmp -s "$T/p.csv" "$T/dir/ppl.csv" && ok || bad "--csv and --out's ppl.csv differ"
for f in machine.txt report.md; do [ -s "$T/dir/$f" ] && ok || bad "--out lacks $f"; done
if command -v gnuplot > /dev/null 2>&1; then
  [ -s "$T/dir/plots/ppl.png" ] && ok || bad "no plots/ppl.png"
fi
grep -q 'quant-q8' "$T/dir/report.md" && ok || bad "report.md lacks the q8 row"
[ ! -e "$T/dir.partial" ] && ok || bad "dir.partial left behind"

expect 2 "--out '$T/dir' exists" $S --out "$T/dir"
expect 2 "--ctx 16,32: ppl takes one window length" --preset stories15m --ctx 16,32
expect 2 "--ctx 2048: past the model's context length 1024" --preset stories15m --ctx 2048
expect 2 "is not a regular file" $S --text-file /dev/zero
expect 2 "--text-file '$T/none'" $S --text-file "$T/none"
printf 'short' > "$T/short.txt"
expect 2 "is 5 tokens: shorter than one window of --ctx 16" $S --text-file "$T/short.txt"
expect 2 "cannot hold the 256 byte tokens" --preset tiny --ctx 16
expect 2 "--lengths is not a flag of ppl" $S --lengths 5
# every case but the reference unsupported: stories15m's head_dim 48 takes no group of 64
expect 3 "nothing" $S --backend quant --dtype q8 --group 64
echo "cli-ppl: $pass passed, $fail failed"
[ "$fail" = 0 ]
