# scaling.gp: total decode time for n tokens on log-log axes, each series with
# its fitted power law T = a n^b (dashed; b and its 95% interval in the
# legend), and a vertical line where a cache's attention time overtakes the
# rest of its step (over[i] > 0). Data blocks: n, total (s), fit (s).
name = 'scaling'; w = 1200; h = 640
key_entries = 'n + 1'; key_right = '1'
here = exists('ARG0') ? ARG0 : ''; k = strlen(here); while (k > 0 && here[k:k] ne '/') { k = k - 1 }
load (k > 0 ? here[1:k] : './').'common.gp'
set title sprintf('Total generation time against tokens, log-log (%s)', machine)
set key outside right top vertical
set logscale xy
set format y '%g'
set xlabel 'tokens generated n'
set ylabel 'total decode time (s)'
do for [i=1:n] {
  if (over[i] > 0) {
    set arrow from over[i], graph 0 to over[i], graph 1 nohead dt 3 lw 1.5 lc rgb colour[i]
  }
}
plot for [i=1:n] data index (i-1) using 1:2 with lines lw 2.5 lc rgb colour[i] title labels[i], \
     for [i=1:n] data index (i-1) using 1:3 with lines dt 2 lw 1 lc rgb colour[i] notitle, \
     NaN with lines dt 3 lw 1.5 lc black title 'attention time > rest of step from here'
