# paged.gp: the paged cache against block size. Attend time over the
# contiguous cache's at the largest context (from paged.dat, if attend points
# ran); KV memory waste and sequences held at once in the serving simulation
# (serve.dat), contiguous allocation as horizontal lines.
name = 'paged'; w = 1500; h = 580
load 'plots/common.gp'
panels = (n > 0) + 2 * (n_serve > 0)
set multiplot layout 1,panels title sprintf('Paged KV cache against block size (%s)', machine)
set logscale x 2
set xrange [0.7:370]           # block sizes are 1..256
set xlabel 'block size (tokens)'
set key top left
if (n > 0) {
  set title 'attend time / contiguous'
  set ylabel 'ratio (1 = no overhead)'
  set offsets 0, 0, graph 0.4, 0      # headroom for the key above the lines
  plot for [i=1:n] data index (i-1) using 1:2 with linespoints lw 2 pt 7 lc i title labels[i], 1 with lines dt 2 lc black notitle
}
if (n_serve > 0) {
  sdata = dir.'/plots/serve.dat'
  set offsets 0, 0, 0, 0
  set key top right
  set title 'serving: KV memory waste'
  set ylabel '1 - used / reserved'
  set yrange [0:1.4]      # headroom for the key above the lines
  set ytics 0, 0.2, 1
  plot for [i=1:n_serve] sdata index (i-1) using 1:2 with linespoints lw 2 pt 7 lc i title serve_label[i], \
       for [j=1:n_ref] ref_waste[j] with lines dt 2 lw 1.5 lc (n_serve + j) title ref_label[j]
  set title 'serving: sequences held at once (key as in the middle)'
  set ylabel 'mean running sequences'
  set autoscale y
  set yrange [0:*]
  set ytics autofreq
  unset key
  plot for [i=1:n_serve] sdata index (i-1) using 1:3 with linespoints lw 2 pt 7 lc i, \
       for [j=1:n_ref] ref_run[j] with lines dt 2 lw 1.5 lc (n_serve + j)
}
unset multiplot
