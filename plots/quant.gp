# quant.gp: each lossy storage type at its measured bytes per token against
# its error: attention's relative L2 against float64 (left) and the KL of the
# next-token distribution against the f32 cache (right), log y. Lower-left is
# better. Data: bytes/token, rel L2, KL, name.
name = 'quant'; w = 1300; h = 560
load 'plots/common.gp'
set multiplot layout 1,2 title sprintf('Quantized KV cache: error against bytes per token (%s)', machine)
unset key
set logscale y
set format y '%.0e'
set xlabel 'cache bytes per token'
set offsets graph 0.05, graph 0.35, graph 0.15, graph 0.15   # room for the labels
set title 'attention output, relative L2 vs float64'
set ylabel 'relative L2 error'
plot data using 1:2 with points pt 7 ps 1.3 lc 1, data using 1:2:4 with labels offset 1.2,0.6 left font 'sans,9'
set title 'next-token KL(f32 cache || lossy cache), mean'
set ylabel 'KL (nats)'
plot data using 1:3 with points pt 7 ps 1.3 lc 2, data using 1:3:4 with labels offset 1.2,0.6 left font 'sans,9'
unset multiplot
