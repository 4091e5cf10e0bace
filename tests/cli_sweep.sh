#!/bin/sh
# cli_sweep.sh: kvbench sweep and merge as a hostile user meets them (issue 13):
# kills by PID, special and oversized sweep files, bad values refused before
# anything runs, full disks, leftovers, quoting, merges that would escape or
# mix; Slurm submission (--slurm, with a stand-in sbatch; tests/slurm_test.sh
# runs a real one). Each check failed before its fix.
# Usage: sh tests/cli_sweep.sh path/to/kvbench [path/to/kvbench-gbench]
set -u
KVB=${1:?usage: cli_sweep.sh path/to/kvbench [path/to/kvbench-gbench]}
case "$KVB" in /*) ;; *) KVB="$(pwd)/$KVB" ;; esac
T=$(mktemp -d /tmp/kvbench-sweep.XXXXXX)
MNT=""
cleanup() {
  # any sweep or child this script started and a failed check left running
  for p in $PIDS; do kill -KILL "$p" 2>/dev/null; done
  # and any process still writing under this script's own temp dir (a child a broken sweep left)
  for d in /proc/[0-9]*; do
    { tr "\0" " " < "$d/cmdline"; } 2>/dev/null | grep -qF -- "$T/" \
      && kill -KILL "${d#/proc/}" 2>/dev/null
  done
  [ -n "$MNT" ] && umount "$MNT" 2>/dev/null
  rm -rf "$T"
}
PIDS=""
trap cleanup EXIT
trap 'exit 1' INT TERM
pass=0 fail=0

ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# expect_fail CODE NEEDLE ARGS...: exit status CODE, stderr mentions NEEDLE,
# and neither $T/out nor $T/out.partial was created.
expect_fail() {
  code=$1 needle=$2; shift 2
  rm -rf "$T/out" "$T/out.partial"
  timeout 20 "$KVB" "$@" >"$T/stdout" 2>"$T/stderr"; rc=$?
  if [ "$rc" -ne "$code" ]; then
    bad "kvbench $* -> exit $rc, wanted $code: $(head -c 400 "$T/stderr")"; return
  fi
  if ! grep -qF -- "$needle" "$T/stderr"; then
    bad "kvbench $* -> message lacks '$needle': $(head -c 400 "$T/stderr")"; return
  fi
  if [ -e "$T/out" ] || [ -e "$T/out.partial" ]; then
    bad "kvbench $* left a result directory"; return
  fi
  ok
}

# the pid of a child of $1 whose command is `kvbench $2 ...`, waited for up to 20 s
child_of() {
  i=0
  while [ $i -lt 100 ]; do
    for s in /proc/[0-9]*/stat; do
      d=${s%/stat}
      [ "$(cut -d' ' -f4 "$s" 2>/dev/null)" = "$1" ] || continue
      [ "$({ tr "\0" "\n" < "$d/cmdline"; } 2>/dev/null | sed -n 2p)" = "$2" ] \
        && { echo "${d#/proc/}"; return 0; }
    done
    sleep 0.2; i=$((i + 1))
  done
  return 1
}
# alive PID: the process exists and is not a zombie
alive() { [ -e "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
# how many live processes run the point writing into $1
runners() {
  c=0
  for d in /proc/[0-9]*; do
    { tr "\0" " " < "$d/cmdline"; } 2>/dev/null | grep -qF -- "--out $1 " \
      && alive "${d#/proc/}" && c=$((c + 1))
  done
  echo $c
}

DEFSIG=""
env --default-signal=INT true 2>/dev/null && DEFSIG="env --default-signal=INT"
TINY="--set run.preset=tiny --set run.tokens=4 --set run.reps=1 --set run.warmup=0"

# --- a finished two-point sweep to merge and copy (the machine described once) ---
"$KVB" sweep $TINY --set run.backends=contiguous,paged --quiet --out "$T/base" \
  >/dev/null 2>"$T/stderr" \
  && ok || bad "base sweep: $(cat "$T/stderr")"
# mkpartial DIR LINES: an unfinished sweep of that definition with base's machine.txt, for --resume
# (kvbench info measures read ceilings for seconds: once is enough)
mkpartial() {
  mkdir -p "$1/points" && printf "$2" > "$1/sweep.def" && cp "$T/base/machine.txt" "$1/"
}
TINYDEF='run.preset = tiny\nrun.tokens = 4\nrun.reps = 1\nrun.warmup = 0\n'

# --- §4: special and oversized sweep files, refused before they are read ---
expect_fail 2 "is not a regular file (a device)" sweep /dev/zero
mkfifo "$T/fifo.sweep"
expect_fail 2 "is not a regular file (a FIFO)" sweep "$T/fifo.sweep"
expect_fail 2 "is not a regular file (a directory)" sweep "$T/"
head -c 70000 /dev/zero | tr '\0' '#' > "$T/big.sweep"
expect_fail 2 "is 70000 bytes" sweep "$T/big.sweep"
# a line past 1023 bytes is refused by number, not cut with its rest read as a setting
{ echo "run.preset = tiny"; printf '#%1100s' ' '; echo "run.backends=nocache"
  echo "run.backends = contiguous"; } > "$T/long.sweep"
expect_fail 2 "long.sweep:2: line of 1121 bytes" sweep "$T/long.sweep" --out "$T/out"
printf 'run.backends = contiguous\nrun.tokens = 4\0\n' > "$T/nul.sweep"
expect_fail 2 "nul.sweep:2: a NUL byte" sweep "$T/nul.sweep" --out "$T/out"

# --- §3, §5: every value checked before the machine is measured or a directory made ---
expect_fail 2 "'1' is repeated in '1,1'" \
  sweep $TINY --set run.backends=contiguous --set run.threads=1,1 --out "$T/out"
expect_fail 2 "'contiguous' is repeated" \
  sweep $TINY --set run.backends=contiguous,contiguous --out "$T/out"
expect_fail 2 "unknown backend 'bogus'" \
  sweep $TINY --set run.backends=contiguous,bogus --emit-jobs --out "$T/out"
expect_fail 2 "unknown preset 'huge'" \
  sweep $TINY --set run.backends=contiguous --set run.preset=huge --emit-jobs --out "$T/out"
expect_fail 2 "'abc' is not a whole number" \
  sweep $TINY --set run.backends=contiguous --set run.tokens=abc --emit-jobs --out "$T/out"
expect_fail 2 "budget 'inf'" \
  sweep $TINY --set run.backends=contiguous --set run.budget=inf --emit-jobs --out "$T/out"
expect_fail 2 "unknown backend 'bogus' after '@'" \
  sweep $TINY --set run.backends=contiguous --set run.tokens@bogus=4 --out "$T/out"
expect_fail 2 "unknown storage type 'f8'" \
  sweep $TINY --set attend.backends=contiguous --set attend.dtypes=f8 --out "$T/out"
expect_fail 2 "empty item" sweep $TINY --set run.backends=contiguous, --out "$T/out"
mkdir -p "$T/empty"                              # --out '': refused, nothing left where it ran
(cd "$T/empty" && "$KVB" sweep $TINY --set run.backends=contiguous --out "" \
  >/dev/null 2>"$T/stderr"); rc=$?
[ $rc -eq 2 ] && grep -q "expected a new directory's name" "$T/stderr" \
  && [ -z "$(ls -A "$T/empty")" ] && ok \
  || bad "sweep --out '' -> exit $rc, left: $(ls -A "$T/empty")"
# what only the point's own command knows (the model's max-seq, a shape) is asked of it with
# --dry-run first
m="point run-tiny-contiguous-f32-t1: its command refuses it (exit 2): prompt 16 + tokens 300"
expect_fail 2 "$m" \
  sweep $TINY --set run.backends=contiguous --set run.tokens=300 --out "$T/out"
expect_fail 2 "n_heads = 4 is not a multiple of n_kv_heads = 3" \
  sweep --set attend.backends=contiguous --set attend.shapes=4/3/16 --emit-jobs --out "$T/out"

# --- §5: a named sweep is found from any directory (kvb_data_path) ---
mkdir -p "$T/elsewhere"
(cd "$T/elsewhere" && "$KVB" sweep smoke --set run.tokens=abc >/dev/null 2>"$T/stderr"); rc=$?
[ $rc -eq 2 ] && grep -q "run.tokens': 'abc'" "$T/stderr" && ok \
  || bad "sweep smoke from another directory: exit $rc: $(cat "$T/stderr")"
expect_fail 2 "no sweep named 'nosuch'" sweep nosuch

# --- §3: a sweep that measured nothing (every point skipped) exits 3 and says so ---
# (q8 with group 32 does not divide stories15m's head_dim 48: the point is skipped)
def='run.backends = quant\nrun.dtypes = q8\nrun.group = 32\n'
mkpartial "$T/skip.partial" "${def}run.tokens = 4\nrun.reps = 1\nrun.warmup = 0\n"
"$KVB" sweep --quiet --resume "$T/skip.partial" >/dev/null 2>"$T/stderr"; rc=$?
[ $rc -eq 3 ] && grep -q "nothing measured: all 1 points were skipped (1)" "$T/stderr" \
  && grep -q ',skipped,' "$T/skip/sweep.csv" \
  && ok || bad "an all-skipped sweep: exit $rc: $(cat "$T/stderr")"

# --- §5, §6: --emit-jobs quotes its paths; each point records the host and CPU it ran on ---
mkdir -p "$T/with space"
"$KVB" sweep $TINY --set run.backends=contiguous --emit-jobs --out "$T/with space/jobs" \
  >"$T/jobs.txt" 2>"$T/stderr"; rc=$?
sed -i 's/^host: .*/host: emitter/' "$T/with space/jobs.partial/machine.txt"
[ $rc -eq 0 ] && sh "$T/jobs.txt" >/dev/null 2>&1 \
  && "$KVB" sweep --quiet --resume "$T/with space/jobs.partial" >/dev/null 2>"$T/stderr" \
  && [ -s "$T/with space/jobs/report.md" ] && ok \
  || bad "jobs under a path with a space: $(cat "$T/jobs.txt" "$T/stderr")"
host=$(hostname 2>/dev/null || cat /proc/sys/kernel/hostname)
m="^run-tiny-contiguous-f32-t1,run,ok,.*,\"$host\",\"[^\"]"
head -n 1 "$T/with space/jobs/sweep.csv" | grep -q ',command,host,cpu,cores,ceilings,node$' \
  && grep -q "$m" "$T/with space/jobs/sweep.csv" && ok \
  || bad "sweep.csv lacks the point's own host and cpu: $(cat "$T/with space/jobs/sweep.csv")"
# (issue 17) and its cores and ceilings, from the description of the node that ran it, made
# there once: machine.txt names another host (the emitter), so not that one
m=",$(nproc),\"read [0-9.]* GB/s x1.*sgemm [0-9.]* GFLOP/s\",\"nodes/$host.txt\"\$"
grep -q "$m" "$T/with space/jobs/sweep.csv" && grep -q "^host: $host" \
  "$T/with space/jobs/nodes/$host.txt" && ok \
  || bad "the point lacks its node's cores and ceilings: $(cat "$T/with space/jobs/sweep.csv")"

# --- issue 17: a job that starts after the sweep was collected exits 0 and says so ---
"$KVB" sweep --quiet --resume "$T/with space/jobs.partial" --only run-tiny-contiguous-f32-t1 \
  >"$T/stdout" 2>"$T/stderr"; rc=$?
[ $rc -eq 0 ] && grep -q "was collected already into .*jobs: nothing to do for point run-tiny" \
  "$T/stdout" && [ ! -e "$T/with space/jobs.partial" ] && ok \
  || bad "a late job after collection: exit $rc: $(cat "$T/stdout" "$T/stderr")"

# --- issue 17: --slurm: the scripts, checked with --dry-run (nothing made), then submitted
# through a stand-in sbatch that records what it was asked ---
expect_fail 2 "--dry-run goes with --slurm" sweep $TINY --set run.backends=contiguous --dry-run \
  --out "$T/out"
expect_fail 2 "--slurm submits a new sweep: not with --emit-jobs" \
  sweep $TINY --set run.backends=contiguous --slurm --emit-jobs --out "$T/out"
expect_fail 2 "--partition 'a b': expected a Slurm partition name" \
  sweep $TINY --set run.backends=contiguous --slurm --dry-run --partition 'a b' --out "$T/out"
expect_fail 2 "--sbatch-arg 'account=x': expected one sbatch option" \
  sweep $TINY --set run.backends=contiguous --slurm --dry-run --sbatch-arg account=x \
  --out "$T/out"
expect_fail 2 "--max-parallel" \
  sweep $TINY --set run.backends=contiguous --slurm --dry-run --max-parallel 0 --out "$T/out"
mkdir -p "$T/nobin"
env PATH="$T/nobin" "$KVB" sweep $TINY --set run.backends=contiguous --slurm --out "$T/out" \
  >/dev/null 2>"$T/stderr"; rc=$?
[ $rc -eq 2 ] && grep -q "sbatch is not on PATH" "$T/stderr" && [ ! -e "$T/out.partial" ] && ok \
  || bad "--slurm without sbatch: exit $rc: $(cat "$T/stderr")"
SL="$TINY --set run.backends=contiguous,paged --set attend.backends=contiguous"
SL="$SL --set attend.shapes=4/2/16 --set attend.ctxs=64 --set attend.reps=3 --set attend.budget=30"
"$KVB" sweep $SL --slurm --dry-run --max-parallel 1 --partition short --out "$T/out" \
  >"$T/dry" 2>"$T/stderr"; rc=$?
[ $rc -eq 0 ] && [ ! -e "$T/out.partial" ] && [ ! -e "$T/out.slurm" ] \
  && grep -q '^#SBATCH --exclusive$' "$T/dry" && grep -q '^#SBATCH --partition=short$' "$T/dry" \
  && grep -q "^sbatch --array=3%1 --time=5 .*points.sbatch$" "$T/dry" \
  && grep -q "^sbatch --array=1-2%1 --time=8 --dependency=afterany" "$T/dry" && ok \
  || bad "--slurm --dry-run: exit $rc: $(cat "$T/dry" "$T/stderr")"
"$KVB" sweep $SL --slurm --dry-run --sbatch-arg=-c2 --out "$T/out" >"$T/dry" 2>&1
grep -q '^#SBATCH -c2$' "$T/dry" && ! grep -q 'exclusive' "$T/dry" && ok \
  || bad "--sbatch-arg=-c2 still takes the whole node: $(cat "$T/dry")"
mkdir -p "$T/bin"
cat > "$T/bin/sbatch" <<EOF
#!/bin/sh
n=\$(( \$(cat "$T/bin/n" 2>/dev/null || echo 100) + 1 )); echo \$n > "$T/bin/n"
echo "\$n: \$*" >> "$T/bin/log"; echo "\$n"
EOF
chmod +x "$T/bin/sbatch"
PATH="$T/bin:$PATH" "$KVB" sweep $SL --slurm --quiet --out "$T/sl" >"$T/stdout" 2>"$T/stderr"
rc=$?
[ $rc -eq 0 ] && grep -q "^collection job 103: " "$T/stdout" \
  && grep -q "^watch:  squeue -j 101,102,103$" "$T/stdout" \
  && grep -q "^103: --parsable --dependency=afterok:101:102 --kill-on-invalid-dep=yes .*coll" \
     "$T/bin/log" && [ -d "$T/sl.partial" ] && [ -s "$T/sl.slurm/points.sbatch" ] \
  && [ "$(wc -l < "$T/sl.slurm/points.txt")" -eq 3 ] && ok \
  || bad "--slurm with a stand-in sbatch: exit $rc: $(cat "$T/stdout" "$T/stderr" "$T/bin/log")"
# a task of the array as Slurm would start it, twice (a requeue): the second leaves it alone
# (this host described already: base's machine.txt)
cp "$T/base/machine.txt" "$T/sl.partial/"
for k in 1 1; do
  SLURM_ARRAY_TASK_ID=$k SLURM_ARRAY_JOB_ID=101 sh "$T/sl.slurm/points.sbatch" || bad "task $k"
done
grep -c "^kvbench: point run-tiny-contiguous-f32-t1, job 101_1" \
  "$T/sl.slurm/run-tiny-contiguous-f32-t1.out" | grep -qx 2 \
  && grep -q "^ok " "$T/sl.partial/points/run-tiny-contiguous-f32-t1.status" && ok \
  || bad "a requeued task: $(cat "$T/sl.slurm/"*.out "$T/sl.slurm/"*.err)"

# --- issue 17: a sweep whose points ran on two kinds of node: the report and compare keep the
# kinds apart (one point's record edited to another node) ---
cp -R "$T/base" "$T/kinds.partial"
sed -i 's/^host: .*/host: nodeb/; s/^cpu: .*/cpu: Other CPU 9000/; s/^cores: .*/cores: 96/
  s|^node: .*|node: nodes/nodeb.txt|' "$T/kinds.partial/points/run-tiny-paged-f32-bs16-t1.status"
"$KVB" sweep --quiet --resume "$T/kinds.partial" >/dev/null 2>"$T/stderr" \
  && grep -q "^| paged/f32/bs16 on Other CPU 9000, 96 cores |" "$T/kinds/report.md" \
  && grep -q "^| contiguous/f32/grow on .*, [0-9]* cores |" "$T/kinds/report.md" \
  && grep -q "^node nodeb (Other CPU 9000, 96 cores) ran 1 point;" "$T/kinds/report.md" && ok \
  || bad "a sweep over two kinds of node: $(cat "$T/stderr"; grep -n ' on ' "$T/kinds/report.md")"
"$KVB" compare "$T/kinds" "$T/kinds" >"$T/stdout" 2>&1
grep -q "(several machines)" "$T/stdout" \
  && grep -q "^Other CPU 9000, 96 cores:run-tiny-paged-f32-bs16-t1:" "$T/stdout" && ok \
  || bad "compare does not group by node kind: $(head -n 8 "$T/stdout")"

# --- §5: the report is written before the final rename: a directory without one stays .partial ---
mkpartial "$T/rep.partial" "${TINYDEF}run.backends = contiguous\n"
"$KVB" sweep --quiet --resume "$T/rep.partial" --only run-tiny-contiguous-f32-t1 >/dev/null 2>&1
# a file where the report's folder goes: the report fails
: > "$T/rep.partial/plots"
"$KVB" sweep --quiet --resume "$T/rep.partial" >/dev/null 2>"$T/stderr"; rc=$?
[ $rc -eq 1 ] && [ ! -e "$T/rep" ] && [ -d "$T/rep.partial" ] \
  && grep -q "retries the report" "$T/stderr" && ok \
  || bad "a failed report left a finished-looking directory (exit $rc): $(ls "$T")"
rm -f "$T/rep.partial/plots"
"$KVB" sweep --quiet --resume "$T/rep.partial" >/dev/null 2>"$T/stderr" \
  && [ -s "$T/rep/report.md" ] && ok \
  || bad "resume after the report failed: $(cat "$T/stderr")"

# --- §2: merge: OUT.partial kept, hosts that are not names refused, '' refused, definitions
# not mixed ---
mkdir -p "$T/m1.partial" && echo keep > "$T/m1.partial/mine"
"$KVB" merge "$T/m1" "$T/base" >/dev/null 2>"$T/stderr"; rc=$?
[ $rc -eq 2 ] && grep -q "m1.partial' exists" "$T/stderr" && [ -s "$T/m1.partial/mine" ] \
  && [ ! -e "$T/m1" ] && ok \
  || bad "merge over an existing OUT.partial: exit $rc: $(cat "$T/stderr")"
mkdir -p "$T/deep/a/b"
cp -R "$T/base" "$T/evil" && sed -i 's|^host: .*|host: ../../../escaped|' "$T/evil/machine.txt"
(cd "$T/deep/a/b" && "$KVB" merge m2 "$T/evil" >/dev/null 2>"$T/stderr"); rc=$?
[ $rc -eq 2 ] && grep -q "host '../../../escaped' is not a plain host name" "$T/stderr" \
  && [ ! -e "$T/escaped" ] && [ ! -e "$T/deep/escaped" ] && [ ! -e "$T/deep/a/b/m2" ] && ok \
  || bad "a host path escaped merge: exit $rc: $(cat "$T/stderr")"
sed -i 's|^host: .*|host: a/b|' "$T/evil/machine.txt"
"$KVB" merge "$T/m3" "$T/evil" >/dev/null 2>"$T/stderr"; rc=$?
[ $rc -eq 2 ] && [ ! -e "$T/m3" ] && [ ! -e "$T/m3.partial" ] && ok \
  || bad "host 'a/b' accepted: exit $rc"
(cd "$T/elsewhere" && "$KVB" merge '' "$T/base" >/dev/null 2>"$T/stderr"); rc=$?
[ $rc -eq 2 ] && [ -z "$(ls -A "$T/elsewhere")" ] && ok \
  || bad "merge '' -> exit $rc, left: $(ls -A "$T/elsewhere")"
cp -R "$T/base" "$T/other" && sed -i 's/^host: .*/host: othermachine/' "$T/other/machine.txt"
sed -i 's/^run.preset = tiny/run.preset = stories15m/' "$T/other/sweep.def"
"$KVB" merge "$T/m4" "$T/base" "$T/other" >/dev/null 2>"$T/stderr"; rc=$?
m="are different sweeps (run.preset = tiny in one, stories15m in the other)"
[ $rc -eq 2 ] && grep -q "$m" "$T/stderr" \
  && grep -qF "'$T/base' and '$T/other'" "$T/stderr" && [ ! -e "$T/m4" ] && ok \
  || bad "merge of two definitions: exit $rc: $(cat "$T/stderr")"
sed -i 's/^run.preset = stories15m/run.preset = tiny/' "$T/other/sweep.def"
"$KVB" merge "$T/m5" "$T/base" "$T/other" >/dev/null 2>"$T/stderr" && [ -s "$T/m5/report.md" ] \
  && [ -d "$T/m5/machines/othermachine/points" ] && ok || bad "a good merge: $(cat "$T/stderr")"

# --- §2: killing the sweep by PID: the point's child dies with it, the lock holds while it
# lives ---
# one long decode point (no-cache on stories15m, its budget far away); the machine described once
def='run.backends = nocache\nrun.tokens = 4000\nrun.max_seq = 4096\n'
mkpartial "$T/long.partial" "${def}run.warmup = 0\nrun.reps = 1\nrun.budget = 100\n"
for sig in INT TERM KILL; do
  rm -rf "$T/k$sig.partial"; cp -R "$T/long.partial" "$T/k$sig.partial"
  # (a background job of a script starts with SIGINT ignored; env gives it back its default)
  $DEFSIG "$KVB" sweep --quiet --resume "$T/k$sig.partial" >/dev/null 2>"$T/k$sig.err" &
  sp=$!; PIDS="$PIDS $sp"
  cp=$(child_of $sp run) || { bad "$sig: no point child seen"; continue; }
  PIDS="$PIDS $cp"
  sleep 0.5
  kill -s $sig $sp; { wait $sp; } 2>/dev/null; rc=$?
  if [ $sig = KILL ]; then
    # a --resume racing the dying child must not start a second one on the point
    "$KVB" sweep --quiet --resume "$T/k$sig.partial" >/dev/null 2>"$T/race.err" &
    rp=$!; PIDS="$PIDS $rp"
    i=0; while alive $cp && [ $i -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
    alive $cp && bad "SIGKILL: the point's child $cp outlived its sweep by 3 s" || ok
    sleep 0.3
    n=$(runners "$T/k$sig.partial/points/run-stories15m-nocache-f32-t1")
    [ "$n" -le 1 ] && ok || bad "SIGKILL then --resume: $n children run one point"
    kill -TERM $rp 2>/dev/null; { wait $rp; } 2>/dev/null
  else
    # the sweep waited for its child: gone by the time the sweep is
    [ $rc -gt 128 ] && ! alive $cp && ok \
      || bad "SIG$sig: exit $rc, child $cp alive: $(alive $cp && echo yes || echo no)"
    csv=$T/k$sig.partial/sweep.csv
    grep -q "interrupted" "$T/k$sig.err" \
      && grep -q "run-stories15m-nocache-f32-t1,run,pending," "$csv" \
      && ok || bad "SIG$sig: the point not left pending: $(cat "$T/k$sig.err" "$csv" 2>&1)"
  fi
done
# interrupted while describing the machine: no info.<pid>.txt left
"$KVB" sweep $TINY --set run.backends=contiguous --quiet --out "$T/desc" >/dev/null 2>&1 &
sp=$!; PIDS="$PIDS $sp"
child_of $sp info >/dev/null || bad "no machine description child seen"
kill -TERM $sp; { wait $sp; } 2>/dev/null
[ -d "$T/desc.partial" ] && [ -z "$(ls -a "$T/desc.partial" | grep -E '^info\.|\.tmp$')" ] && ok \
  || bad "an interrupted description left: $(ls "$T/desc.partial" 2>&1)"

# --- §5: a full disk: the cause printed, finished points kept and marked (tmpfs, root only) ---
if [ "$(id -u)" = 0 ] && mkdir -p "$T/full" \
  && mount -t tmpfs -o size=4m tmpfs "$T/full" 2>/dev/null; then
  MNT="$T/full"
  mkpartial "$T/full/f.partial" "${TINYDEF}run.backends = contiguous,paged\n"
  # the first point's results fit, the disk is full by the second's
  "$KVB" sweep --quiet --resume "$T/full/f.partial" --only run-tiny-contiguous-f32-t1 \
    >/dev/null 2>&1
  dd if=/dev/zero of="$T/full/filler" bs=4096 2>/dev/null
  # four pages free: the next point starts, its results do not fit
  truncate -s -16k "$T/full/filler"
  "$KVB" sweep --quiet --resume "$T/full/f.partial" >/dev/null 2>"$T/stderr"; rc=$?
  [ $rc -eq 1 ] && grep -q "No space left on device" "$T/stderr" && ok \
    || bad "full disk: exit $rc, no cause: $(cat "$T/stderr")"
  fp=$T/full/f.partial/points
  grep -q "^ok " "$fp/run-tiny-contiguous-f32-t1.status" \
    && [ -d "$fp/run-tiny-contiguous-f32-t1" ] \
    && ok || bad "full disk: the finished point was lost or shown pending"
  st=$fp/run-tiny-paged-f32-bs16-t1.status
  grep -q "^failed " "$st" && ok \
    || bad "full disk: the failed point is not marked failed: $(head -c 40 "$st" 2>&1)"
  # what the failed point had written is kept under its name, not deleted
  [ -d "$fp/run-tiny-paged-f32-bs16-t1" ] && ok \
    || bad "full disk: the failed point's partial results were deleted: $(ls "$fp")"
  umount "$T/full" && MNT=""
else
  echo "cli-sweep: full-disk check skipped: not root, or mount -t tmpfs refused"
fi

echo "cli-sweep: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
