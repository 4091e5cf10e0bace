# latency.gp: per-token decode latency against position, one line per backend
# (median over repetitions) with its p10-p90 band. Left: linear axes; right:
# log-log, where no-cache's growth and the cache's flat line separate clearly.
# Variables from plot.sh: datafile (blocks: position median p10 p90 attn reserved
# used, in ns and bytes), labels, model, cpu, date, term, outfile.
if (term eq 'png') { set terminal pngcairo size 1400,560 font 'sans,11' } else { set terminal svg size 1400,560 font 'sans,11' }
set output outfile
n = words(labels)
set multiplot layout 1,2 title sprintf('kvbench per-token latency: %s, %s, %s', model, cpu, date)
set key top left box opaque
set grid
set xlabel 'position (tokens already in context)'
set ylabel 'step latency (ms)'
set title 'linear axes'
plot for [i=1:n] datafile index (i-1) using 1:($3/1e6):($4/1e6) with filledcurves fs transparent solid 0.2 lc i notitle, \
     for [i=1:n] datafile index (i-1) using 1:($2/1e6) with lines lw 2 lc i title word(labels, i)
set logscale xy
set title 'log-log axes'
plot for [i=1:n] datafile index (i-1) using 1:($3/1e6):($4/1e6) with filledcurves fs transparent solid 0.2 lc i notitle, \
     for [i=1:n] datafile index (i-1) using 1:($2/1e6) with lines lw 2 lc i title word(labels, i)
unset multiplot
