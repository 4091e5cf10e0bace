#!/bin/sh
# slurm_test.sh: kvbench sweep --slurm against a real Slurm (issue 17). Starts
# munged, slurmctld and slurmd for one node (this machine) from a slurm.conf
# this script writes into a temp dir (its ports, spool, state, logs and pid
# files there too), runs the smoke sweep through --slurm, waits for the
# collection job, and checks that the collected sweep holds every point exactly
# once with this node's description (host, CPU, cores, ceilings), that a task
# run again after the collection exits 0 saying so, and that compare against a
# local run of the same sweep finds every case. Bounded: SLURM_TEST_LIMIT
# seconds (default 1200) in all. Every daemon, and anything a job left, is
# stopped by PID at the end. Prints "SKIP: ..." and exits 0 where Slurm's
# packages are missing (make test-slurm installs them), where it is not run as
# root (slurmd must be), or where the daemons do not start.
# Usage: sh tests/slurm_test.sh path/to/kvbench
set -u
KVB=${1:?usage: slurm_test.sh path/to/kvbench}
case "$KVB" in /*) ;; *) KVB="$(pwd)/$KVB" ;; esac
LIMIT=${SLURM_TEST_LIMIT:-1200}
START=$(date +%s)
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
say() { echo "slurm-test: [$(( $(date +%s) - START )) s] $*"; }
# what is left of the limit, for the commands that take long (a shell runs its traps, the
# watchdog's among them, only between commands)
left() { l=$(( LIMIT - ($(date +%s) - START) )); [ $l -gt 1 ] && echo $l || echo 1; }

for c in munged slurmctld slurmd sbatch squeue scontrol scancel sinfo; do
  command -v $c >/dev/null 2>&1 || {
    echo "SKIP: slurm-test: $c is not installed (Debian's slurm-wlm and munge;" \
      "make test-slurm installs them)"
    exit 0
  }
done
[ "$(id -u)" = 0 ] || { echo "SKIP: slurm-test: not root (slurmd runs jobs as root here)"; exit 0; }

T=$(mktemp -d /tmp/kvbench-slurm.XXXXXX)
chmod 755 "$T"
export SLURM_CONF="$T/slurm.conf"
DAEMONS="" WATCH="" CTLD=""
# jobs and their processes carry SLURM_CONF=$T/slurm.conf in their environment: found by it
leftovers() {
  for d in /proc/[0-9]*; do
    [ "${d#/proc/}" = $$ ] && continue
    { tr "\0" "\n" < "$d/environ"; } 2>/dev/null | grep -qxF "SLURM_CONF=$T/slurm.conf" \
      && echo "${d#/proc/}"
  done
}
cleanup() {
  if [ -n "$WATCH" ]; then
    kill "$WATCH" 2>/dev/null
    [ -s "$T/watch.pid" ] && kill "$(cat "$T/watch.pid")" 2>/dev/null
  fi
  if [ -n "$CTLD" ]; then # (scancel and squeue wait long for a controller that is not there)
    scancel --quiet --user=root 2>/dev/null
    i=0; while [ -n "$(squeue -h 2>/dev/null)" ] && [ $i -lt 20 ]; do sleep 0.5; i=$((i + 1)); done
  fi
  # the daemons by PID, newest first: slurmd, slurmctld, munged
  for p in $DAEMONS; do kill -TERM "$p" 2>/dev/null; done
  i=0
  while [ $i -lt 20 ]; do
    up=""; for p in $DAEMONS; do kill -0 "$p" 2>/dev/null && up=1; done
    [ -z "$up" ] && break
    sleep 0.5; i=$((i + 1))
  done
  for p in $DAEMONS; do kill -KILL "$p" 2>/dev/null; done
  for p in $(leftovers); do kill -KILL "$p" 2>/dev/null; done
  if [ "$fail" -ne 0 ] && [ -d "$T/log" ]; then
    for f in "$T"/log/*; do echo "--- $f (last lines)"; tail -n 15 "$f"; done
  fi
  rm -rf "$T"
}
trap cleanup EXIT
trap 'echo "FAIL: slurm-test: stopped by a signal or its time limit ($LIMIT s)"; fail=1; exit 1' \
  INT TERM HUP
# the hard limit on the whole test: a watchdog signals this shell (its sleep stopped by PID too)
( sleep "$LIMIT" & echo $! > "$T/watch.pid"; wait; kill -TERM $$ ) 2>/dev/null &
WATCH=$!
mkdir -p "$T/munge" "$T/run" "$T/spool" "$T/state" "$T/log"
chmod 700 "$T/munge"

# --- munge: its own key and socket here ---
dd if=/dev/urandom of="$T/munge/munge.key" bs=1024 count=1 2>/dev/null
chmod 600 "$T/munge/munge.key"
munged -F --force --key-file="$T/munge/munge.key" --socket="$T/run/munge.socket" \
  --pid-file="$T/run/munged.pid" --log-file="$T/log/munged.log" --seed-file="$T/munge/seed" \
  >"$T/log/munged.out" 2>&1 &
DAEMONS="$! $DAEMONS"
i=0; while [ ! -S "$T/run/munge.socket" ] && [ $i -lt 40 ]; do sleep 0.25; i=$((i + 1)); done
[ -S "$T/run/munge.socket" ] || {
  echo "SKIP: slurm-test: munged did not start: $(tail -n 3 "$T/log/munged.out")"; exit 0; }

# --- slurm.conf: one node, this machine, its CPUs and most of its memory ---
port_free() { # nothing listens on TCP port $1 (IPv4 or IPv6)
  h=$(printf ':%04X ' "$1")
  ! cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$4 == "0A" {print $2 " "}' | grep -q "$h"
}
P=$((20000 + $$ % 20000))
while ! port_free $P || ! port_free $((P + 1)); do P=$((P + 2)); done
H=$(hostname -s)      # the node's name to Slurm
HN=$(hostname)        # what kvbench records: the kernel's host name, maybe longer
N=$(nproc)
MEM=$(free -m | awk '/^Mem:/ {print $2}')
MEM=$((MEM > 2048 ? MEM - 1024 : MEM / 2)) # slack for the daemons and the OS
cat > "$T/slurm.conf" <<EOF
# written by tests/slurm_test.sh: a one-node cluster on this machine
ClusterName=kvbtest
SlurmctldHost=$H(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$P
SlurmdPort=$((P + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/run/munge.socket
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/run/slurmctld.pid
SlurmdPidFile=$T/run/slurmd.pid
SlurmctldLogFile=$T/log/slurmctld.log
SlurmdLogFile=$T/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
MinJobAge=600
KillWait=5
NodeName=$H NodeAddr=127.0.0.1 CPUs=$N RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$H Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -D -i >"$T/log/slurmctld.out" 2>&1 &
DAEMONS="$! $DAEMONS" CTLD=$!
sleep 1
slurmd -D >"$T/log/slurmd.out" 2>&1 &
DAEMONS="$! $DAEMONS"
i=0
while [ "$(sinfo -h -n "$H" -o %t 2>/dev/null)" != idle ] && [ $i -lt 60 ]; do
  sleep 0.5; i=$((i + 1))
done
state=$(sinfo -h -n "$H" -o %t 2>/dev/null)
if [ "$state" != idle ]; then
  echo "SKIP: slurm-test: the node did not come up (state '$state'):" \
    "$(tail -n 2 "$T/log/slurmctld.out" "$T/log/slurmd.out" | tr '\n' ' ')"
  exit 0
fi
say "Slurm $(sinfo -V | cut -d' ' -f2) up: node $H, $N CPUs, ${MEM} MB, port $P"

# --- the smoke sweep here first, then through Slurm: one after the other, both timing ---
timeout "$(left)" "$KVB" sweep smoke --quiet --out "$T/local" >"$T/local.out" 2>&1 && ok \
  || bad "the local smoke sweep: $(tail -n 5 "$T/local.out")"
say "local sweep done"
timeout "$(left)" "$KVB" sweep smoke --slurm --out "$T/sw" >"$T/submit.out" 2>&1; rc=$?
cat "$T/submit.out"
collect=$(sed -n 's/^collection job \([0-9]*\):.*/\1/p' "$T/submit.out")
ids=$(sed -n 's/^watch:  squeue -j \([0-9,]*\)$/\1/p' "$T/submit.out")
[ $rc -eq 0 ] && [ -n "$collect" ] && [ -n "$ids" ] && ok \
  || { bad "kvbench sweep smoke --slurm: exit $rc"; exit 1; }
# the collection job ends by renaming sw.partial to sw; until then some job is queued
while [ ! -d "$T/sw" ] && [ -n "$(squeue -h -j "$ids" 2>/dev/null)" ]; do sleep 2; done
i=0; while [ ! -d "$T/sw" ] && [ $i -lt 10 ]; do sleep 0.5; i=$((i + 1)); done
say "jobs done: $(ls "$T/sw" 2>/dev/null | tr '\n' ' ')"
[ -d "$T/sw" ] && [ -s "$T/sw/report.md" ] && ok \
  || bad "the collection job did not finish the sweep: $(cat "$T/sw.slurm/collect.out" \
     "$T/sw.slurm"/*.err 2>&1 | tail -n 20)"
for j in $(echo "$ids" | tr ',' ' '); do
  st=$(scontrol show job "$j" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | sort -u)
  [ "$st" = COMPLETED ] && ok || bad "job $j: state '$st' (every task should have COMPLETED)"
done

# --- every point exactly once, each with this node's description ---
csv="$T/sw/sweep.csv"
sed 1d "$csv" | cut -d, -f1 | sort > "$T/got"
sort "$T/sw.slurm/points.txt" > "$T/want"
[ -s "$T/want" ] && cmp -s "$T/got" "$T/want" && ok \
  || bad "sweep.csv's points are not points.txt's, once each: $(diff "$T/want" "$T/got")"
[ -z "$(sed 1d "$csv" | cut -d, -f1 | sort | uniq -d)" ] && ok || bad "a point listed twice"
# the point's own columns, found by name (quoted fields may hold commas: split outside quotes)
TAB=$(printf '\t')
awk '{ o = ""; q = 0
       for (i = 1; i <= length($0); i++) { c = substr($0, i, 1)
         if (c == "\"") { q = !q; continue }
         if (c == "," && !q) c = "\t"
         o = o c }
       print o }' "$csv" \
  | awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
      { print $c["point"] "\t" $c["status"] "\t" $c["host"] "\t" $c["cpu"] "\t" $c["cores"] \
          "\t" $c["ceilings"] "\t" $c["node"] }' > "$T/rows"
cpu=$(sed -n 's/^cpu: *//p' "$T/sw/nodes/$HN.txt" | head -n 1)
cores=$(getconf _NPROCESSORS_ONLN) # the node's online cores (nproc may be an affinity's share)
while IFS="$TAB" read -r point status host pcpu ncores ceil node; do
  case "$status" in ok|cut_short) ;; *) bad "$point: status $status" ;; esac
  [ "$host" = "$HN" ] && [ "$pcpu" = "$cpu" ] && [ "$ncores" = "$cores" ] \
    && [ "$node" = "nodes/$HN.txt" ] && echo "$ceil" | grep -q 'read .* GB/s.*sgemm' && ok \
    || bad "$point ran on host '$host' cpu '$pcpu' cores '$ncores' ceilings '$ceil' node '$node'"
  grep -q "^kvbench: point $point, job [0-9_]* on $HN," "$T/sw.slurm/$point.out" && ok \
    || bad "$point: its Slurm output does not say where it ran: $(cat "$T/sw.slurm/$point.out")"
done < "$T/rows"
grep -q "^host: $HN" "$T/sw/nodes/$HN.txt" && grep -q "^read bandwidth:" "$T/sw/nodes/$HN.txt" \
  && ok || bad "nodes/$HN.txt is not this node's description"
grep -q "^node $HN (.*) ran [0-9]* points; its description: nodes/$HN.txt" "$T/sw/report.md" \
  && ok || bad "the report does not name the node $HN: $(sed -n '/^## Machine/,/^## Conf/p' \
  "$T/sw/report.md" | tail -n 5)"
say "the collected sweep's points by machine (count, host, cpu, cores, ceilings, node):"
cut -f3- "$T/rows" | sort | uniq -c | sed 's/^/    /'
say "$(wc -l < "$T/rows") points: $(cut -f1,2 "$T/rows" | tr '\t\n' ' ,')"

# --- a task run again after the collection (a requeue): exit 0, saying so ---
first=$(sed -n 1p "$T/sw.slurm/points.txt")
j=$(sbatch --parsable --array=1 --time=5 "$T/sw.slurm/points.sbatch" 2>"$T/err"); rc=$?
while [ $rc -eq 0 ] && [ -n "$(squeue -h -j "$j" 2>/dev/null)" ]; do sleep 1; done
st=$(scontrol show job "$j" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\) .*/\1/p')
[ "$st" = COMPLETED ] && grep -q "was collected already into $T/sw: nothing to do" \
  "$T/sw.slurm/$first.out" && ok \
  || bad "a task after the collection: job $j $st: $(tail -n 3 "$T/sw.slurm/$first."*)"

# --- compare with the local run finds every case, both ways ---
for pair in "local sw" "sw local"; do
  set -- $pair
  timeout "$(left)" "$KVB" compare "$T/$1" "$T/$2" >"$T/cmp" 2>&1; rc=$?
  [ $rc -le 1 ] && grep -q "^compare: [1-9][0-9]* cases" "$T/cmp" \
    && ! grep -q "MISSING\|missing from new\|did not finish" "$T/cmp" && ok \
    || bad "compare $1 $2 (exit $rc): $(grep -v '^ \|^$' "$T/cmp" | tail -n 5)"
  say "compare $1 $2: $(grep '^compare:' "$T/cmp")"
done

say "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
