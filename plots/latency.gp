# latency.gp: per-token decode latency against position, one line per series
# (median over repetitions) with its p10-p90 band. Left: linear axes; right:
# log-log, where no-cache's growth and a cache's flat line separate clearly.
# Data blocks: position, median, p10, p90 (ms). The key sits below both
# panels, where it hides no line.
name = 'latency'; w = 1200; h = 520
key_entries = 'n'; key_cols = '3'
here = exists('ARG0') ? ARG0 : ''; k = strlen(here); while (k > 0 && here[k:k] ne '/') { k = k - 1 }
load (k > 0 ? here[1:k] : './').'common.gp'
set multiplot title sprintf('Per-token decode latency (%s)', machine)
set lmargin at screen 0.07; set rmargin at screen 0.48
set bmargin at screen (key_rows * lh + 90.0) / h; set tmargin at screen 1 - 75.0 / h
set key at screen 0.5, screen 0.01 center bottom vertical maxrows key_rows
set xlabel 'position (tokens already in context)'
set ylabel 'step latency (ms)'
set title 'linear axes'
plot for [i=1:n] data index (i-1) using 1:3:4 with filledcurves \
         fs transparent solid 0.2 lc rgb colour[i] notitle, \
     for [i=1:n] data index (i-1) using 1:2 with lines lw 2 lc rgb colour[i] title labels[i]
set lmargin at screen 0.57; set rmargin at screen 0.98
set logscale xy
set title 'log-log axes'
unset key
plot for [i=1:n] data index (i-1) using 1:3:4 with filledcurves \
         fs transparent solid 0.2 lc rgb colour[i] notitle, \
     for [i=1:n] data index (i-1) using 1:2 with lines lw 2 lc rgb colour[i] notitle
unset multiplot
