#!/bin/sh
# cli_flags.sh: every command takes exactly the flags its help lists. The help
# is generated from the flag rows, so each flag one command's help lists is
# tried on every command: the ones that list it must accept it, the others must
# refuse it (exit 2) naming the flag, the command and those that take it.
# Nothing is measured: each try ends on a flag no command has.
# Usage: sh tests/cli_flags.sh path/to/kvbench [path/to/kvbench-gbench]
set -u
KVB=${1:?usage: cli_flags.sh path/to/kvbench [path/to/kvbench-gbench]}
T=$(mktemp -d /tmp/kvbench-flags.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

CMDS="run attend serve-sim serve sweep report merge compare ab history list info export"
CMDS="$CMDS tokenize ppl"
CMDS="$CMDS version help"

# --- the help of each command, and the flags it lists ---
for c in $CMDS; do
  "$KVB" help "$c" >"$T/help-$c" 2>"$T/stderr" && ok || bad "help $c: $(cat "$T/stderr")"
  "$KVB" "$c" --help >"$T/help2-$c" 2>&1
  cmp -s "$T/help-$c" "$T/help2-$c" && ok || bad "'kvbench $c --help' is not 'kvbench help $c'"
  sed -n 's/^  \(--[a-z0-9-]*\).*/\1/p' "$T/help-$c" > "$T/flags-$c"
  twice=$(sort "$T/flags-$c" | uniq -d)
  [ -z "$twice" ] && ok || bad "help $c lists a flag twice: $twice"
done
sort -u "$T"/flags-* > "$T/all"
[ "$(wc -l < "$T/all")" -gt 50 ] && ok || bad "the helps list only $(wc -l < "$T/all") flags"
# every command in 'kvbench help', and nothing else
"$KVB" help | sed -n 's/^  \([a-z-]*\)  .*/\1/p' | tr '\n' ' ' > "$T/listed"
[ "$(cat "$T/listed")" = "$CMDS " ] && ok || bad "kvbench help lists: $(cat "$T/listed")"

# --- each flag on each command: accepted where listed, refused naming the takers elsewhere ---
for c in $CMDS; do
  while read -r f; do
    "$KVB" "$c" "$f=1" --zz-no-such-flag >"$T/out" 2>&1; rc=$?
    if grep -qx -- "$f" "$T/flags-$c"; then
      # parsed (its value may be refused), then the next flag is: never run
      if [ $rc -eq 2 ] && ! grep -q "is not a flag of" "$T/out"; then ok
      else bad "$c refuses its own $f (exit $rc): $(head -n 1 "$T/out")"; fi
      continue
    fi
    if [ $rc -ne 2 ] || ! grep -q -- "^kvbench: $f is not a flag of $c (" "$T/out"; then
      bad "$c $f: exit $rc, not refused as another command's: $(head -n 1 "$T/out")"; continue
    fi
    for o in $CMDS; do
      [ "$o" = "$c" ] && continue
      if grep -qx -- "$f" "$T/flags-$o"; then
        head -n 1 "$T/out" | grep -q -- "[ (]$o[ ,)]" \
          || bad "$c $f: the refusal does not name $o: $(head -n 1 "$T/out")"
      fi
    done
    ok
  done < "$T/all"
done

# --- the issue's cases, word for word ---
expect() {
  code=$1 needle=$2; shift 2
  "$KVB" "$@" >"$T/stdout" 2>"$T/stderr"; rc=$?
  if [ "$rc" -ne "$code" ]; then
    bad "kvbench $* -> exit $rc, wanted $code: $(cat "$T/stderr")"; return 1
  fi
  if ! cat "$T/stderr" "$T/stdout" | grep -qF -- "$needle"; then
    bad "kvbench $* -> lacks '$needle': $(cat "$T/stderr")"; return 1
  fi
  ok
}
expect 2 "--lengths is not a flag of run (serve-sim takes it)" run --lengths 5 --fork 1
expect 2 "(see 'kvbench help run' for run's flags)" run --lengths 5 --fork 1
expect 2 "--checkpoint is not a flag of attend (run, serve-sim, export and ppl take it)" \
  attend --checkpoint F --preset gqa1b
expect 2 "--hidden is not a flag of serve-sim (run, export and ppl take it)" serve-sim --hidden 64
expect 2 "--quiet is not a flag of attend" attend --quiet --dry-run
expect 2 "--backend is not a flag of list" list --backend paged
expect 2 "(list takes no flags)" list --backend paged
expect 2 "unknown flag '--tokns' for run (did you mean --tokens?)" run --tokns 5
expect 2 "unknown flag '--frobnicate' for serve-sim" serve-sim --frobnicate
expect 2 "help: unknown command 'bogus'" help bogus
# a flag given twice keeps its last value, as before
expect 0 "dry run: 1 point" run --preset tiny --backend nocache --backend contiguous --dry-run

# --- serve-sim sizes the model it is given: its shape flags change the memory figures ---
S="serve-sim --preset tiny --sequences 16 --max-prompt 32 --max-output 64 --lengths uniform"
S="$S --backend paged --no-attend"
if expect 0 "tiny shape (2 layers, 2 kv heads x 16, 512 f32 bytes per token)" \
     $S --budget-mb 2; then
  base=$(awk '$1 == "paged/f32/bs16" { print $5 }' "$T/stdout")
  if expect 0 "tiny + overrides shape (8 layers, 4 kv heads x 32, 8192 f32 bytes per token)" \
       $S --budget-mb 2 --layers 8 --heads 8 --kv-heads 4 --head-dim 32; then
    big=$(awk '$1 == "paged/f32/bs16" { print $5 }' "$T/stdout")
    [ -n "$base" ] && [ -n "$big" ] && [ "$big" -lt "$base" ] && ok \
      || bad "a 16x larger KV shape under the same budget runs as many sequences ($base, $big)"
  fi
fi
expect 2 "n_heads = 6 is not a multiple of n_kv_heads = 4" $S --heads 6 --kv-heads 4
rm -f "$T/tiny.bin"
if expect 0 "wrote" export --preset tiny --layers 3 --out "$T/tiny.bin"; then
  expect 0 "tiny.bin shape (3 layers, 2 kv heads x 16, 768 f32 bytes per token)" \
    serve-sim --checkpoint "$T/tiny.bin" --sequences 4 --lengths uniform --backend paged --no-attend
  expect 2 "no shape flag may override it" serve-sim --checkpoint "$T/tiny.bin" --layers 2
fi

# --- --window reaches the window backend in each command that takes it ---
# a window past the context holds every token: measured, not skipped
expect 0 "window=100,nh=4,nkv=2,hd=16,ctx=50)" attend --backend window --window 100 --ctx 50 \
  --heads 4 --kv-heads 2 --head-dim 16 --reps 1 --no-ceilings
grep -q "skipped" "$T/stdout" && bad "attend: a window past the context skipped" || ok
expect 0 "window/f32/grow" run --preset tiny --backend window --window 4 --tokens 8 \
  --out "$T/run-window"
# a cache that cannot fork is skipped in a fork workload (exit 3: nothing measured), not failed
expect 3 "skipped: window cannot fork" serve-sim --preset tiny --backend window --fork parallel \
  --sequences 4 --no-attend
expect 2 "--window" attend --backend window --window -1

# the default budget holds at least one request at its longest: with 1 or 2 requests a
# quarter of them did not, and every cache failed
for n in 1 2; do
  if expect 0 "paged/f32/bs16" serve-sim --preset tiny --sequences "$n" --no-attend; then
    grep -q "failed" "$T/stdout" && bad "serve-sim --sequences $n: a cache failed" || ok
  fi
done

echo "cli-flags: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
