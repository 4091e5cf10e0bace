# memory.gp: cache bytes against tokens for every series: reserved (dashed)
# and used (solid), with the analytic line tokens x bytes per token (dotted,
# black); used must lie on it. Data blocks: tokens, reserved, used, analytic
# (MB). The key sits outside the axes, on the right: inside, its box hid a line.
name = 'memory'; w = 1200; h = 640
key_entries = '2 * n + 1'; key_right = '1'
here = exists('ARG0') ? ARG0 : ''; k = strlen(here); while (k > 0 && here[k:k] ne '/') { k = k - 1 }
load (k > 0 ? here[1:k] : './').'common.gp'
set title sprintf('KV cache memory against tokens (%s)', machine)
set key outside right top vertical
# a cache that holds nothing (no-cache) is drawn above the axis, not on it
set offsets 0, 0, graph 0.04, graph 0.04
set xlabel 'tokens in the cache'
set ylabel 'cache bytes (MB, 10^6)'
plot for [i=1:n] data index (i-1) using 1:2 with lines dt 2 lw 2 lc rgb colour[i] \
         title labels[i].' reserved', \
     for [i=1:n] data index (i-1) using 1:3 with lines lw 2 lc rgb colour[i] \
         title labels[i].' used', \
     for [i=1:n] data index (i-1) using 1:($4 > 0 ? $4 : 1/0) with lines dt 3 lw 1 lc black \
         title (i == 1 ? 'analytic: tokens x bytes per token' : '')
