#!/bin/sh
# cli_style.sh: the house rules a reader relies on, checked on every tracked source file.
#  1. layers: a file includes, and its object calls, only its own layer and those below:
#       base, impls/types (neither uses the other)  <-  impls/kernels  <-  impls  <-  model
#       <-  analysis  <-  harness  <-  cli, bench  <-  tests, fuzz
#     (analysis reads result files; harness's sweeps write a report through it)
#  2. size: no source file over 700 lines, no line over 100 characters (.editorconfig)
# The call check reads the objects' symbol tables (nm), so a call through a header-less
# extern declaration is caught too. Usage: sh tests/cli_style.sh path/to/kvbench
set -u
KVB=${1:?usage: cli_style.sh path/to/kvbench}
BUILD=$(cd "$(dirname "$KVB")" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# the layer of a path: its rank; a file may use ranks <= its own (and only its own
# folder at its own rank)
rank() {
  case "$1" in
    base/*|impls/types/*) echo 0 ;;
    impls/kernels/*) echo 1 ;;
    impls/*) echo 2 ;;
    model/*) echo 3 ;;
    analysis/*) echo 4 ;;
    harness/*) echo 5 ;;
    cli/*|bench/*) echo 6 ;;
    tests/*|fuzz/*) echo 7 ;;
    *) echo 9 ;;
  esac
}
folder() {
  case "$1" in
    impls/types/*|impls/kernels/*) echo "${1%/*}" ;;
    *) echo "${1%%/*}" ;;
  esac
}

allowed() {   # allowed FROM TO: may FROM use TO?
  rf=$(rank "$1") rt=$(rank "$2")
  [ "$rt" -lt "$rf" ] && return 0
  [ "$rt" -eq "$rf" ] && [ "$(folder "$1")" = "$(folder "$2")" ] && return 0
  [ "$rt" -eq "$rf" ] && [ "$rf" -ge 6 ] && return 0    # the programs and their tests
  return 1
}

# the rule itself refuses what the layers forbid (the circles this check was written
# against: kernels calling the registry, the library calling the command line)
for pair in "impls/kernels/kernels.c impls/registry.c" "impls/paged.c model/model.c" \
            "harness/run.c cli/opts.c" "analysis/report.c harness/sweep_def.c" \
            "base/json.c impls/types/types.c" "impls/types/types.c base/json.c"; do
  # shellcheck disable=SC2086
  allowed $pair && bad "layers: the rule lets $pair" || ok
done
for pair in "cli/main.c harness/run.c" "harness/sweep_run.c analysis/report.c" \
            "impls/paged.c impls/kernels/pool.c" "impls/kernels/quant.c impls/types/types.c"; do
  # shellcheck disable=SC2086
  allowed $pair && ok || bad "layers: the rule refuses $pair"
done

srcs=$(git ls-files '*.c' '*.h' '*.cc')

# 1a. includes
viol=0
for f in $srcs; do
  d=$(dirname "$f")
  for inc in $(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f"); do
    t=$(realpath -m --relative-to=. "$d/$inc")
    [ -f "$t" ] || continue                  # generated (kvb_build_info.h)
    allowed "$f" "$t" || { bad "layers: $f includes $t"; viol=$((viol + 1)); }
  done
done
[ "$viol" -eq 0 ] && ok

# 1b. calls: every kvb_ symbol an object needs is defined in a layer it may use
if command -v nm >/dev/null 2>&1 && [ -d "$BUILD" ]; then
  defs=$(mktemp /tmp/kvbench-style.XXXXXX)
  for f in $srcs; do
    case "$f" in *.c|*.cc) ;; *) continue ;; esac
    o="$BUILD/${f%.*}.o"
    [ -f "$o" ] && nm --defined-only "$o" 2>/dev/null | awk -v f="$f" '$2 ~ /[TDRB]/ {print $3, f}'
  done > "$defs"
  viol=0 seen=0
  for f in $srcs; do
    case "$f" in *.c|*.cc) ;; *) continue ;; esac
    o="$BUILD/${f%.*}.o"
    [ -f "$o" ] || continue
    seen=$((seen + 1))
    for sym in $(nm --undefined-only "$o" 2>/dev/null | awk '$2 ~ /^kvb_/ {print $2}'); do
      for t in $(awk -v s="$sym" '$1 == s {print $2}' "$defs"); do
        allowed "$f" "$t" || { bad "layers: $f calls $sym of $t"; viol=$((viol + 1)); }
      done
    done
  done
  rm -f "$defs"
  if [ "$seen" -eq 0 ]; then bad "layers: no objects under $BUILD to read"
  else [ "$viol" -eq 0 ] && ok; fi
fi

# 2. sizes
viol=0
for f in $srcs $(git ls-files '*.sh' '*.mk' '*.gp' Makefile); do
  n=$(wc -l < "$f")
  [ "$n" -le 700 ] || { bad "size: $f has $n lines (at most 700)"; viol=$((viol + 1)); }
  long=$(awk 'length($0) > 100 {n++} END {print n + 0}' "$f")
  [ "$long" -eq 0 ] || { bad "size: $f has $long lines over 100 characters"; viol=$((viol + 1)); }
done
[ "$viol" -eq 0 ] && ok

echo "cli-style: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
