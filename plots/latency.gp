# latency.gp: per-token decode latency against position, one line per series
# (median over repetitions) with its p10-p90 band. Left: linear axes; right:
# log-log, where no-cache's growth and a cache's flat line separate clearly.
# Data blocks: position, median, p10, p90 (ms).
name = 'latency'; w = 1400; h = 600
load 'plots/common.gp'
set multiplot layout 1,2 title sprintf('Per-token decode latency (%s)', machine)
set key top left
set xlabel 'position (tokens already in context)'
set ylabel 'step latency (ms)'
set title 'linear axes'
plot for [i=1:n] data index (i-1) using 1:3:4 with filledcurves fs transparent solid 0.2 lc i notitle, \
     for [i=1:n] data index (i-1) using 1:2 with lines lw 2 lc i title labels[i]
set logscale xy
set title 'log-log axes'
set key top left
plot for [i=1:n] data index (i-1) using 1:3:4 with filledcurves fs transparent solid 0.2 lc i notitle, \
     for [i=1:n] data index (i-1) using 1:2 with lines lw 2 lc i title labels[i]
unset multiplot
