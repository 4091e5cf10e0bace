#!/bin/sh
# ab_plant.sh PCT [REV]: prints the id of a new commit, REV (default HEAD) plus one line that
# makes the contiguous cache's attend take PCT% longer: it waits PCT% of its own time
# (impls/contiguous.c, KVB_PLANT_CONTIG_SLOWDOWN_PCT; before 2026-12-03 the plant attended
# PCT% of the context again, which a large last-level cache can absorb), for measuring what
# `kvbench ab` catches:
#   kvbench ab HEAD $(sh bench/ab_plant.sh 20)
# The commit is on no branch (git gc drops it in time); the worktree it is made in is removed.
set -eu
pct=${1:?usage: ab_plant.sh PCT [REV]}
rev=${2:-HEAD}
case $pct in
  '' | *[!0-9]*) echo "ab_plant.sh: PCT '$pct': expected a whole number of percent" >&2; exit 2;;
esac
base=$(git rev-parse --verify "$rev^{commit}")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kvb-plant.XXXXXX")
trap 'git worktree remove --force "$tmp/src" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
git worktree add --quiet --detach "$tmp/src" "$base"
sed -i "1i #define KVB_PLANT_CONTIG_SLOWDOWN_PCT $pct" "$tmp/src/impls/contiguous.c"
git -C "$tmp/src" -c user.name=kvbench -c user.email=kvbench@localhost \
    commit --quiet -am "plant: contiguous attend takes $pct% longer (bench/ab_plant.sh)"
git -C "$tmp/src" rev-parse HEAD
