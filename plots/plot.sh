#!/bin/sh
# plot.sh [RESULT_DIR]: writes RESULT_DIR's plot data, plots (PNG and SVG in
# RESULT_DIR/plots/) and report: `kvbench report` does all of it, drawing with
# the plots/*.gp scripts beside this file. Without an argument: the newest
# directory under results/ (baselines excluded). KVBENCH names the binary
# (default: build/kvbench beside this folder, or for an installed copy in
# PREFIX/share/kvbench/plots, PREFIX/bin/kvbench). Works from any directory.
set -eu
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
kvb=${KVBENCH:-$here/../build/kvbench}
[ -n "${KVBENCH:-}" ] || [ -x "$kvb" ] || kvb=$here/../../../bin/kvbench
dir=${1:-}
if [ -z "$dir" ]; then
  dir=$(ls -1d results/*/ 2>/dev/null | grep -v -e '/baselines/' -e '\.partial/' -e 'gbench/' |
        sort | tail -n 1)
  dir=${dir%/}
  [ -n "$dir" ] || { echo "plot.sh: no result directory under results/" >&2; exit 2; }
fi
[ -d "$dir" ] || { echo "plot.sh: '$dir' is not a directory" >&2; exit 2; }
command -v gnuplot >/dev/null 2>&1 ||
  { echo "plot.sh: gnuplot not installed (apt-get install gnuplot-nox)" >&2; exit 2; }
# these scripts, whichever copy kvbench would find on its own
KVBENCH_DATA=$here/.. "$kvb" report "$dir" >/dev/null
drawn=""
for f in "$dir"/plots/*.svg; do
  [ -s "$f" ] && { f=${f##*/}; drawn="$drawn ${f%.svg}"; }
done
echo "plots:$drawn in $dir/plots/ (png, svg); report: $dir/report.md, $dir/report.html"
