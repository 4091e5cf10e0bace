# memory.gp: cache bytes against position for every backend: reserved (dashed)
# and used (solid). Used must lie on the analytic line 2 x layers x kv_heads x
# head_dim x bytes per element x tokens; reserved shows each allocation policy.
# Variables as in latency.gp.
if (term eq 'png') { set terminal pngcairo size 900,560 font 'sans,11' } else { set terminal svg size 900,560 font 'sans,11' }
set output outfile
n = words(labels)
set title sprintf('kvbench KV cache memory: %s, %s, %s', model, cpu, date)
set key top left box opaque
set grid
set xlabel 'position (tokens already in context)'
set ylabel 'cache bytes (MB, 10^6)'
plot for [i=1:n] datafile index (i-1) using 1:($6/1e6) with lines dt 2 lw 2 lc i title word(labels, i).' reserved', \
     for [i=1:n] datafile index (i-1) using 1:($7/1e6) with lines lw 2 lc i title word(labels, i).' used'
