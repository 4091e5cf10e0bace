# ppl.gp: kvbench ppl's caches at their bytes per token: perplexity increase
# over the f32 cache (left, linear: on random weights a lossy cache can come out
# a little below it) and KL against it (right, log y; the reference's exact 0
# sits at the floor 1e-12). Data: bytes/token, increase, KL, name.
name = 'ppl'; w = 1200; h = 560
here = exists('ARG0') ? ARG0 : ''; k = strlen(here); while (k > 0 && here[k:k] ne '/') { k = k - 1 }
load (k > 0 ? here[1:k] : './').'common.gp'
set multiplot layout 1,2 title sprintf('Perplexity per KV cache type (%s)', machine)
unset key
set xlabel 'cache bytes per token'
set format x '%.0s%c'
set offsets 0, graph 0.35, graph 0.15, graph 0.15   # room for the labels
set xrange [0:*]
set title 'perplexity / f32 cache perplexity - 1'
set ylabel 'perplexity increase'
set format y '%.1e'
plot data using 1:2 with points pt 7 ps 1.3 lc rgb colour[1], \
     data using 1:2:4 with labels offset 1.2,0.6 left font fnt_small
set title 'next-token KL(f32 cache || cache), mean'
set ylabel 'KL (nats)'
set logscale y
set format y '%.0e'
plot data using 1:3 with points pt 7 ps 1.3 lc rgb colour[2], \
     data using 1:3:4 with labels offset 1.2,0.6 left font fnt_small
unset multiplot
