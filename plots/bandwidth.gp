# bandwidth.gp: attend's K/V bytes per second against context length, one
# line per backend/type/shape (and machine, in a merge): one thread on the
# left, more threads on the right, each with the read ceilings measured in the
# same runs, one per machine (dashed: one thread; dotted: all cores; black
# for one machine, a colour of its own for each of several). Data
# blocks: context, GB/s; the first n1 are one-thread series. A paged cache is
# drawn at 16-token blocks (paged.gp has the other sizes).
name = 'bandwidth'; w = 1200; h = 520
key_entries = '((n1 > n - n1) ? n1 : n - n1) + n_ceil'; key_cols = '(n1 > 0 && n > n1) ? 1 : 2'
here = exists('ARG0') ? ARG0 : ''; k = strlen(here); while (k > 0 && here[k:k] ne '/') { k = k - 1 }
load (k > 0 ? here[1:k] : './').'common.gp'
panels = (n1 > 0) + (n > n1)
set multiplot layout 1,panels title sprintf('Attend bandwidth against context (%s)', machine)
set logscale x 2
set xrange [ctx_min / 1.3 : ctx_max * 1.3]
set xlabel 'context length (tokens)'
set ylabel 'K/V read (GB/s, 10^9 bytes)'
set yrange [0:*]
set key outside below center vertical maxrows key_rows
set bmargin at screen (key_rows * lh + 80.0) / h
set tmargin at screen 1 - 80.0 / h
if (n1 > 0) {
  set title 'one thread'
  plot for [i=1:n1] data index (i-1) using 1:2 with linespoints lw 2 pt 7 ps 0.7 \
           lc rgb colour[i] title labels[i], \
       for [k=1:n_ceil] (ceil1s[k] > 0 ? ceil1s[k] : 1/0) with lines dt 2 lw 2 \
           lc rgb (n_ceil > 1 ? colour[n + k] : 'black') \
           title (ceil1s[k] > 0 ? \
                  sprintf('read ceiling%s, 1 thread: %.1f GB/s', ceil_host[k], ceil1s[k]) : '')
}
if (n > n1) {
  set title 'all threads'
  plot for [i=n1+1:n] data index (i-1) using 1:2 with linespoints lw 2 pt 7 ps 0.7 \
           lc rgb colour[i] title labels[i], \
       for [k=1:n_ceil] (ceilns[k] > 0 ? ceilns[k] : 1/0) with lines dt 3 lw 2 \
           lc rgb (n_ceil > 1 ? colour[n + k] : 'black') \
           title (ceilns[k] > 0 ? \
                  sprintf('read ceiling%s, all cores: %.1f GB/s', ceil_host[k], ceilns[k]) : '')
}
unset multiplot
