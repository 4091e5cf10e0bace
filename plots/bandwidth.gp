# bandwidth.gp: attend's K/V bytes per second against context length, one
# line per backend/type/threads/shape, with the read ceilings measured in the
# same runs (dashed: one thread; dotted: all cores). Data blocks: context, GB/s.
name = 'bandwidth'; w = 1100; h = 680
load 'plots/common.gp'
set title sprintf('Attend bandwidth against context (%s)', machine)
set key outside right top
set logscale x 2
set xrange [ctx_min / 1.3 : ctx_max * 1.3]
set xlabel 'context length (tokens)'
set ylabel 'K/V read (GB/s, 10^9 bytes)'
set yrange [0:*]
plot for [i=1:n] data index (i-1) using 1:2 with linespoints lw 2 pt 7 ps 0.6 lc i title labels[i], \
     (ceil1 > 0 ? ceil1 : 1/0) with lines dt 2 lw 2 lc black title (ceil1 > 0 ? sprintf('read ceiling, 1 thread: %.1f GB/s', ceil1) : ''), \
     (ceil_n > 0 ? ceil_n : 1/0) with lines dt 3 lw 2 lc black title (ceil_n > 0 ? sprintf('read ceiling, all cores: %.1f GB/s', ceil_n) : '')
