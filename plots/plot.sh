#!/bin/sh
# plot.sh [RESULT_DIR]: writes RESULT_DIR's plot data and report (kvbench
# report), then draws every plot it has data for with plots/*.gp, as PNG and
# SVG in RESULT_DIR/plots/. Without an argument: the newest directory under
# results/ (baselines excluded). KVBENCH names the binary (default
# ./build/kvbench). Run from the repository root.
set -eu
kvb=${KVBENCH:-./build/kvbench}
dir=${1:-}
if [ -z "$dir" ]; then
  dir=$(ls -1d results/*/ 2>/dev/null | grep -v -e '/baselines/' -e '\.partial/' -e 'gbench/' | sort | tail -n 1)
  dir=${dir%/}
  [ -n "$dir" ] || { echo "plot.sh: no result directory under results/" >&2; exit 2; }
fi
[ -d "$dir" ] || { echo "plot.sh: '$dir' is not a directory" >&2; exit 2; }
command -v gnuplot >/dev/null 2>&1 || { echo "plot.sh: gnuplot not installed (apt-get install gnuplot-nox)" >&2; exit 2; }
"$kvb" report "$dir" >/dev/null
drawn=""
for gp in latency memory scaling bandwidth quant paged; do
  [ -s "$dir/plots/$gp.vars" ] || continue
  for term in png svg; do
    gnuplot -e "dir='$dir'; term='$term'" "plots/$gp.gp" 2> "$dir/plots/$gp.err" || {
      echo "plot.sh: gnuplot failed on $gp.gp:" >&2; cat "$dir/plots/$gp.err" >&2; exit 1; }
    [ -s "$dir/plots/$gp.err" ] && { echo "plot.sh: gnuplot warned on $gp.gp:" >&2; cat "$dir/plots/$gp.err" >&2; }
    rm -f "$dir/plots/$gp.err"
  done
  drawn="$drawn $gp"
done
echo "plots:$drawn in $dir/plots/ (png, svg); report: $dir/report.md, $dir/report.html"
