# common.gp: what every plot script shares. Called with dir (a result
# directory that `kvbench report` has written plots/ into), term (png or svg),
# optionally tag (a set of a merge whose sweeps differ: '-set2') and out_suffix
# (kvbench report draws to '.tmp' and renames); the calling script has set
# name, w and h. Loads plots/<name><tag>.vars (machine, n, labels[], colour[])
# and sets the output plots/<name><tag>.<term> and the data file.
#
# Sizes: report.html shows an SVG at its own width (every plot is at most
# 1200 px wide, the page's width), so its 14-unit text is 14 px on screen; an
# SVG scaled down to fit would shrink its text with it.
#
# Keys: a script may set key_entries and key_cols (strings: expressions over
# the vars, e.g. 'n + n_ceil') and key_right (an expression too; true: the
# key stands right of the axes). The canvas then grows to hold key_rows rows of
# key_cols entries, so a merge of many machines gets a taller plot, never a clipped or covering key.
if (!exists('tag')) tag = ''
if (!exists('out_suffix')) out_suffix = ''
load dir.'/plots/'.name.tag.'.vars'
fs = (term eq 'png') ? 12 : 14  # pngcairo draws a point larger than svg's unit
lh = ceil(fs * 1.6)           # one key line, in pixels
fnt = sprintf('sans,%d', fs); fnt_small = sprintf('sans,%d', fs - 1)
if (!exists('key_entries')) key_entries = '0'
if (!exists('key_cols')) key_cols = '1'
if (!exists('key_right')) key_right = '0'
key_rows = ceil((@key_entries) / ((@key_cols) * 1.0))
key_rows = key_rows > 0 ? key_rows : 1
if (@key_right) { h = (key_rows * lh + 140 > h) ? key_rows * lh + 140 : h } \
else { h = h + key_rows * lh }
if (term eq 'png') { set terminal pngcairo size w, h font fnt } \
else { set terminal svg size w, h fixed font fnt }
set output dir.'/plots/'.name.tag.'.'.term.out_suffix
data = dir.'/plots/'.name.tag.'.dat'
set grid
set termoption noenhanced   # labels are names: '_' and '@' are literal
set key box opaque samplen 4 spacing 1.1 font fnt_small   # long enough to tell dashed from solid
