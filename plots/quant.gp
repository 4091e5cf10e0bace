# quant.gp: each lossy storage type at its measured bytes per token against
# its error: attention's relative L2 against float64 (left) and the KL of the
# next-token distribution against the f32 cache (right), log y. Lower-left is
# better. Data: bytes/token, rel L2, KL, name, none (1: a point that quantized
# no token, every one in its f32 window, so its figures are f32's: drawn open
# and grey, its label saying so, never as a quantized figure).
name = 'quant'; w = 1200; h = 560
here = exists('ARG0') ? ARG0 : ''; k = strlen(here); while (k > 0 && here[k:k] ne '/') { k = k - 1 }
load (k > 0 ? here[1:k] : './').'common.gp'
set multiplot layout 1,2 \
    title sprintf('Quantized KV cache: error against bytes per token (%s)', machine)
unset key
set logscale y
set format y '%.0e'
set xlabel 'cache bytes per token'
set offsets 0, graph 0.35, graph 0.15, graph 0.15   # room for the labels
set xrange [0:*]
set title 'attention output, relative L2 vs float64'
set ylabel 'relative L2 error'
plot data using 1:($5 == 0 ? $2 : 1/0) with points pt 7 ps 1.3 lc rgb colour[1], \
     data using 1:($5 == 0 ? $2 : 1/0):4 with labels offset 1.2,0.6 left font fnt_small, \
     data using 1:($5 != 0 ? ($2 > 0 ? $2 : 1e-12) : 1/0) with points pt 6 ps 1.3 lc rgb 'gray40', \
     data using 1:($5 != 0 ? ($2 > 0 ? $2 : 1e-12) : 1/0):4 with labels \
         offset -1.2,0.6 right tc rgb 'gray30' font fnt_small
set title 'next-token KL(f32 cache || lossy cache), mean'
set ylabel 'KL (nats)'
plot data using 1:($5 == 0 ? $3 : 1/0) with points pt 7 ps 1.3 lc rgb colour[2], \
     data using 1:($5 == 0 ? $3 : 1/0):4 with labels offset 1.2,0.6 left font fnt_small, \
     data using 1:($5 != 0 ? ($3 > 0 ? $3 : 1e-12) : 1/0) with points pt 6 ps 1.3 lc rgb 'gray40', \
     data using 1:($5 != 0 ? ($3 > 0 ? $3 : 1e-12) : 1/0):4 with labels \
         offset -1.2,0.6 right tc rgb 'gray30' font fnt_small
unset multiplot
