# paged.gp: the paged cache against block size. Attend time over the
# contiguous cache's at the largest context (from paged.dat, if attend points
# ran); KV memory waste and sequences held at once in the serving simulation
# (serve.dat), contiguous allocation as horizontal lines. Side by side, keys
# below; with many series (a merge of several machines) the panels stack,
# each key to the right of its panel, so no key covers another panel.
name = 'paged'; w = 1200; h = 480
many = '(n > 16 || n_serve + n_ref > 16)'
key_right = many
rows = '((n > n_serve + n_ref) ? n : n_serve + n_ref)'
key_entries = '(@many) ? ((n > 0) + 2 * (n_serve > 0)) * (@rows + 4) : @rows'
here = exists('ARG0') ? ARG0 : ''; k = strlen(here); while (k > 0 && here[k:k] ne '/') { k = k - 1 }
load (k > 0 ? here[1:k] : './').'common.gp'
panels = (n > 0) + 2 * (n_serve > 0)
if (@many) {
  set multiplot layout panels,1 title sprintf('Paged KV cache against block size (%s)', machine)
  set key outside right top vertical
} else {
  set multiplot layout 1,panels title sprintf('Paged KV cache against block size (%s)', machine)
  set key outside below center vertical maxrows key_rows
  set bmargin at screen (key_rows * lh + 80.0) / h
  set tmargin at screen 1 - 80.0 / h
}
set logscale x 2
set xrange [0.7:370]           # block sizes are 1..256
set xtics (1, 4, 16, 64, 256)  # every power of 2 crowds at 14 px
set xlabel 'block size (tokens)'
if (n > 0) {
  set title 'attend time / contiguous'
  set ylabel 'ratio (1 = no overhead)'
  plot for [i=1:n] data index (i-1) using 1:2 with linespoints lw 2 pt 7 lc rgb colour[i] \
       title labels[i], \
       1 with lines dt 2 lc black notitle
}
if (n_serve > 0) {
  sdata = dir.'/plots/serve'.tag.'.dat'
  set title 'serving: KV memory waste'
  set ylabel '1 - used / reserved'
  set yrange [0:1]
  plot for [i=1:n_serve] sdata index (i-1) using 1:2 with linespoints lw 2 pt 7 lc rgb colour[i] \
           title serve_label[i], \
       for [j=1:n_ref] ref_waste[j] with lines dt 2 lw 1.5 lc rgb colour[n_serve + j] \
           title ref_label[j]
  set title 'serving: sequences held at once'.((@many) ? ' (key as above)' : '')
  set ylabel 'mean running sequences'
  set autoscale y
  set yrange [0:*]
  unset key
  plot for [i=1:n_serve] sdata index (i-1) using 1:3 with linespoints lw 2 pt 7 lc rgb colour[i], \
       for [j=1:n_ref] ref_run[j] with lines dt 2 lw 1.5 lc rgb colour[n_serve + j]
}
unset multiplot
