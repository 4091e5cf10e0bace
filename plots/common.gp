# common.gp: what every plot script shares. Called with dir (a result
# directory that `kvbench report` has written plots/ into), term (png or svg)
# and name (the plot); loads plots/<name>.vars (machine, n, labels[]) and sets
# the output file plots/<name>.<term> and the data file.
if (term eq 'png') { set terminal pngcairo size w, h font 'sans,10' } else { set terminal svg size w, h font 'sans,10' dynamic }
set output dir.'/plots/'.name.'.'.term
load dir.'/plots/'.name.'.vars'
data = dir.'/plots/'.name.'.dat'
set grid
set termoption noenhanced   # labels are names: '_' and '@' are literal
set key box opaque samplen 2 spacing 1.1 font 'sans,8'
