# bandwidth.gp: attend's K/V bytes per second against context length, one
# line per backend/type/shape: one thread on the left (the dashed line is the
# one-thread read ceiling), more threads on the right (dotted: all cores'),
# both measured in the same runs. Data blocks: context, GB/s; the first n1 are
# one-thread series. A paged cache is drawn at 16-token blocks (paged.gp has
# the other sizes).
name = 'bandwidth'; w = 1500; h = 700
load 'plots/common.gp'
panels = (n1 > 0) + (n > n1)
set multiplot layout 1,panels title sprintf('Attend bandwidth against context (%s)', machine)
set logscale x 2
set xrange [ctx_min / 1.3 : ctx_max * 1.3]
set xlabel 'context length (tokens)'
set ylabel 'K/V read (GB/s, 10^9 bytes)'
set yrange [0:*]
set key outside below center maxrows 4 width -2
set bmargin 9
if (n1 > 0) {
  set title 'one thread'
  plot for [i=1:n1] data index (i-1) using 1:2 with linespoints lw 2 pt 7 ps 0.7 lc i title labels[i], \
       (ceil1 > 0 ? ceil1 : 1/0) with lines dt 2 lw 2 lc black title (ceil1 > 0 ? sprintf('read ceiling, 1 thread: %.1f GB/s', ceil1) : '')
}
if (n > n1) {
  set title 'all threads'
  plot for [i=n1+1:n] data index (i-1) using 1:2 with linespoints lw 2 pt 7 ps 0.7 lc (i - n1) title labels[i], \
       (ceil_n > 0 ? ceil_n : 1/0) with lines dt 3 lw 2 lc black title (ceil_n > 0 ? sprintf('read ceiling, all cores: %.1f GB/s', ceil_n) : '')
}
unset multiplot
