#!/bin/sh
# plot.sh RESULT_DIR: draws per-token latency and cache memory from
# RESULT_DIR/positions.csv with plots/*.gp, writing PNG and SVG next to the data.
# gnuplot reads one block per point, so the CSV is regrouped into blank-line
# separated blocks first (positions.dat, removed afterwards).
set -eu
dir=${1:?usage: plot.sh RESULT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
[ -s "$dir/positions.csv" ] || { echo "plot.sh: no $dir/positions.csv" >&2; exit 2; }
command -v gnuplot >/dev/null 2>&1 || { echo "plot.sh: gnuplot not installed (apt-get install gnuplot-nox)" >&2; exit 2; }
dat="$dir/.positions.dat"
awk -F, 'NR > 1 { if ($1 != last) { if (NR > 2) printf "\n\n"; printf "# %s\n", $1; last = $1 }
                  print $2, $4, $5, $6, $7, $8, $9 }' "$dir/positions.csv" > "$dat"
labels=$(awk -F, 'NR > 1 && $1 != last { printf "%s ", $1; last = $1 }' "$dir/positions.csv")
title=$(sed -n 's/.*"source": "\([^"]*\)".*/\1/p' "$dir/meta.json" | head -n 1)
cpu=$(sed -n 's/.*"cpu_model": "\([^"]*\)".*/\1/p' "$dir/meta.json" | head -n 1)
date=$(sed -n 's/.*"date": "\([^"]*\)".*/\1/p' "$dir/meta.json" | head -n 1)
for gp in latency memory; do
  for term in png svg; do
    gnuplot -e "datafile='$dat'; labels='$labels'; model='$title'; cpu='$cpu'; date='$date'; \
                term='$term'; outfile='$dir/$gp.$term'" "$here/$gp.gp"
  done
done
rm -f "$dat"
echo "plots: $dir/latency.png $dir/memory.png (and .svg)"
