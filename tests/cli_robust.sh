#!/bin/sh
# cli_robust.sh: run, attend, serve-sim and export as a careless or hostile
# user meets them: exit statuses that say what happened (3: nothing measured),
# asks beyond the machine refused before any work, files never clobbered,
# special files never blocking, and result files that name what they hold.
# Usage: sh tests/cli_robust.sh path/to/kvbench [path/to/kvbench-gbench]
set -u
KVB=${1:?usage: cli_robust.sh path/to/kvbench [path/to/kvbench-gbench]}
T=$(mktemp -d /tmp/kvbench-robust.XXXXXX)
cleanup() { umount "$T/full" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# expect CODE NEEDLE ARGS...: exit status CODE and stderr+stdout mention NEEDLE
expect() {
  code=$1 needle=$2; shift 2
  timeout 60 "$KVB" "$@" >"$T/stdout" 2>"$T/stderr"; rc=$?
  if [ "$rc" -ne "$code" ]; then
    bad "kvbench $* -> exit $rc, wanted $code: $(tail -n 3 "$T/stderr")"; return 1
  fi
  if ! cat "$T/stderr" "$T/stdout" | grep -qF -- "$needle"; then
    bad "kvbench $* -> output lacks '$needle': $(tail -n 3 "$T/stderr")"; return 1
  fi
  ok
}
absent() { if [ -e "$1" ] || [ -e "$1.partial" ]; then bad "$2 left $1"; else ok; fi; }
field() {
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"
}

Q="--preset tiny --tokens 4 --reps 1 --warmup 0 --no-ceilings --quiet"

# --- nothing measured: exit 3, said, and no result directory ---
expect 3 "nothing to measure" run $Q --backend contiguous --dtype q8 --out "$T/o1"
absent "$T/o1" "all-skipped run"
expect 3 "stores nothing" attend --backend nocache --ctx 64 --reps 3 --no-ceilings
expect 3 "holds no KV" serve-sim --backend nocache --preset tiny --sequences 4
expect 0 "dry run" run $Q --backend nocache,contiguous --dry-run --out "$T/o2"
absent "$T/o2" "--dry-run"
expect 2 "unknown backend 'bogus'" attend --backend bogus --dry-run

# --- the default quant group fits the head dimension (48: 16), and says so ---
if expect 0 "quant group 16" run $Q --preset stories15m --layers 1 --vocab 64 --backend quant \
     --dtype q8 --out "$T/q"; then
  [ "$(field "$T/q/meta.json" "[p['group'] for p in d['points']]")" = "[16]" ] && ok \
    || bad "meta.json lacks group 16"
  grep -q '"status": "ok"' "$T/q/summary.json" && ok || bad "q8 on head_dim 48 did not run"
fi

# --- repeated list items would make two points with one label ---
expect 2 "'contiguous' is listed twice" run $Q --backend contiguous,contiguous --out "$T/o3"
absent "$T/o3" "repeated backend"
expect 2 "'f16' is listed twice" attend --dtype f16,f32,f16 --dry-run

# --- asks beyond the machine: refused before anything is allocated or created ---
expect 2 "MemAvailable" run $Q --backend paged --pool-blocks 1099511627776 --out "$T/o4"
absent "$T/o4" "--pool-blocks 2^40"
expect 2 "MemAvailable" run $Q --backend paged --pool-mb 1000000000 --out "$T/o5"
absent "$T/o5" "--pool-mb 1e9"
expect 2 "MemAvailable" serve-sim --preset tiny --budget-mb 10000000 --no-attend
expect 2 "MemAvailable" attend --ctx 4194304 --sequences 4096 --no-ceilings
expect 0 "cut short" serve-sim --preset stories15m --backend paged --lengths uniform \
  --sequences 512 --max-prompt 4096 --max-output 4096 --budget-mb 256 --time-budget 0.5 \
  --no-attend --csv "$T/serve.csv"
grep -q ",cut_short," "$T/serve.csv" && ok \
  || bad "serve-sim --time-budget: no cut_short row in the CSV"

# --- threads above the core count: warned and recorded ---
cores=$(nproc)
if expect 0 "above the $cores cores this process may use" run $Q --threads $((cores + 1)) \
     --out "$T/th"; then
  [ "$(field "$T/th/meta.json" "d['threads']['oversubscribed']")" = "True" ] && ok \
    || bad "meta.json: oversubscribed not recorded"
fi

# --- special and existing files ---
mkfifo "$T/fifo"
expect 2 "not a regular file (a FIFO)" run --tokens 4 --reps 1 --no-ceilings \
  --checkpoint "$T/fifo" --out "$T/o6"
absent "$T/o6" "FIFO checkpoint"
ln -s "$T/nowhere/run" "$T/dangling"
expect 2 "(a symbolic link)" run $Q --out "$T/dangling"
[ -L "$T/dangling" ] && [ ! -e "$T/dangling.partial" ] && ok \
  || bad "--out dangling symlink was replaced or left a .partial"
printf 'precious' > "$T/ckpt.bin"
expect 2 "never overwrites" export --preset tiny --out "$T/ckpt.bin"
[ "$(cat "$T/ckpt.bin")" = "precious" ] && ok || bad "export overwrote an existing file"
# the temporary file is a new one: a link where a fixed NAME.tmp would be is never followed
ln -s "$T/ckpt.bin" "$T/tiny.bin.tmp"
if expect 0 "wrote" export --preset tiny --out "$T/tiny.bin"; then
  [ "$(cat "$T/ckpt.bin")" = "precious" ] && [ ! -L "$T/tiny.bin" ] && ok \
    || bad "export wrote through a link at its temporary name"
  expect 0 "never trained" run --checkpoint "$T/tiny.bin" --max-seq 1024 --tokens 4 --reps 1 \
    --warmup 0 --no-ceilings --quiet --out "$T/ms"
fi

# --- a prompt of 700 ids is kept whole ---
ids=$(awk 'BEGIN { for (i = 0; i < 700; i++) printf "%s%d", (i ? "," : ""), 100 + i % 150 }')
if expect 0 "results:" run $Q --max-seq 1024 --backend contiguous --prompt-ids "$ids" \
     --out "$T/ids"; then
  pe="len(d['generation']['prompt_ids']), d['generation']['prompt_ids'][-1]"
  [ "$(field "$T/ids/meta.json" "$pe")" = "(700, 199)" ] \
    && ok || bad "--prompt-ids: 700 ids not kept whole"
fi

# --- what the result files say: the prefill's token and time, kernels, tidy quality rows ---
if expect 0 "results:" run --preset tiny --tokens 6 --reps 2 --warmup 0 --no-ceilings \
     --backend nocache,contiguous --dtype f32,f16 --out "$T/f"; then
  grep -q "quality against" "$T/stdout" && ok || bad "without --quiet the quality table is printed"
  m="tokens.csv/summary.json/meta.json: prefill row, ttft or kernels wrong"
  python3 - "$T/f" <<'PY' && ok || bad "$m"
import csv, json, sys
d = sys.argv[1]
rows = list(csv.DictReader(open(d + "/tokens.csv")))
meta = json.load(open(d + "/meta.json"))
P = meta["generation"]["prompt_len"]
for label in {(r["backend"], r["dtype"], r["mode"]) for r in rows}:
    for rep in ("0", "1"):
        rr = [r for r in rows if (r["backend"], r["dtype"], r["mode"]) == label and r["rep"] == rep]
        pre = [r for r in rr if r["phase"] == "prefill"]
        dec = [r for r in rr if r["phase"] == "decode"]
        assert len(pre) == 1 and pre[0]["step"] == "-1" and int(pre[0]["position"]) == P - 1, pre
        assert len(dec) == 6 and dec[0]["step"] == "0" and int(dec[0]["position"]) == P, dec[:1]
        assert int(pre[0]["step_ns"]) > 0
summ = json.load(open(d + "/summary.json"))
for p in summ["points"]:
    assert p["ttft_ns"]["median"] > 0 and p["first_decode_step_ns"]["median"] > 0, p["label"]
    assert p["ttft_ns"]["median"] == p["prefill_ns_median"]
# every exact backend's first generated token is the same (it comes from the prefill)
firsts = {r["token"] for r in rows if r["phase"] == "prefill"}
assert len(firsts) == 1, firsts
kern = {p["label"]: p["kernel"] for p in meta["points"]}
assert kern["nocache"] == "causal-gemm", kern
assert all(k in ("avx512", "avx2", "portable") for l, k in kern.items() if l != "nocache"), kern
PY
fi
if expect 0 "results:" run --preset tiny --tokens 9 --reps 1 --warmup 0 --no-ceilings --quiet \
     --backend contiguous --dtype f16 --out "$T/g"; then
  ! grep -q "quality against" "$T/stdout" && ok || bad "--quiet still prints the quality table"
  [ "$(head -n 1 "$T/f/quality.csv")" = "$(head -n 1 "$T/g/quality.csv")" ] && ok \
    || bad "quality.csv's columns change with --tokens"
  [ "$(head -n 1 "$T/g/quality_ctx.csv")" = "point,backend,dtype,mode,layer,ctx,attn_rel_l2" ] \
    && ok || bad "quality_ctx.csv missing or with other columns"
fi
if expect 0 "case" attend --dtype f32,q8 --backend contiguous,quant --ctx 64 --reps 3 \
     --no-ceilings --csv "$T/att.csv"; then
  python3 - "$T/att.csv" <<'PY' && ok || bad "attend.csv lacks the kernel each case ran"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert rows and all(r["kernel"] not in ("", "unsupported") for r in rows), rows
assert {r["threads_oversubscribed"] for r in rows} == {"0"}
PY
fi

# --- a full disk: the cause is printed, the measurements kept where they can be ---
mkdir "$T/full"
if mount -t tmpfs -o size=48k tmpfs "$T/full" 2>/dev/null; then
  expect 1 "No space left on device" run --preset tiny --max-seq 1024 --tokens 400 --reps 2 \
    --warmup 0 --no-ceilings --quiet --backend contiguous --out "$T/full/r"
  grep -q "contiguous/f32/grow" "$T/stdout" && ok \
    || bad "full disk: the measured table was not printed"
  [ -d "$T/full/r.partial" ] && [ ! -e "$T/full/r" ] && ok \
    || bad "full disk: the .partial was not kept, or was renamed"
  umount "$T/full"
else
  echo "cli-robust: skipped the full-disk case (cannot mount a tmpfs here)"
fi

# --- the test binaries: from any directory, and no temporary files left when killed ---
# (sweep_expand lives in test_harness; test_backends runs long enough to be killed mid-way)
TH="$(cd "$(dirname "$KVB")" && pwd)/test_harness"
TK="$(cd "$(dirname "$KVB")" && pwd)/test_backends"
if [ -x "$TK" ] && [ -x "$TH" ]; then
  (cd / && "$TH" sweep_expand >"$T/tk.out" 2>&1) && ok \
    || bad "test_harness sweep_expand fails outside the repository: $(tail -n 5 "$T/tk.out")"
  mkdir "$T/tk"
  TMPDIR="$T/tk" "$TK" >/dev/null 2>&1 &
  tk=$!
  sleep 2
  kill -TERM "$tk" 2>/dev/null
  wait "$tk"
  [ -z "$(ls -A "$T/tk")" ] && [ ! -e "/tmp/kvbench-test-$tk" ] && ok \
    || bad "a killed test_backends left $(ls "$T/tk") $(ls -d "/tmp/kvbench-test-$tk" 2>/dev/null)"
  rm -rf "/tmp/kvbench-test-$tk"
fi

# --- installed: the binary finds its sweeps and plot scripts in PREFIX/share/kvbench ---
ROOT=$(cd "$(dirname "$KVB")/.." && pwd)
B=$(basename "$(dirname "$KVB")")
if [ -f "$ROOT/Makefile" ] && command -v make >/dev/null 2>&1 &&
   [ -x "$ROOT/$B/kvbench-gbench" ]; then
  if make -s -C "$ROOT" -o "$B/kvbench" -o "$B/kvbench-gbench" install BUILD="$B" \
       PREFIX="$T/inst" >"$T/mk" 2>&1; then
    (cd / && "$T/inst/bin/kvbench" sweep smoke --emit-jobs --out "$T/isw" \
      >"$T/jobs" 2>"$T/stderr") \
      && [ "$(wc -l < "$T/jobs")" -gt 5 ] && ok \
      || bad "installed kvbench cannot find its sweeps: $(cat "$T/stderr")"
    "$T/inst/bin/kvbench" --version | grep -q '^kvbench [0-9a-f]\{7,\}\|^kvbench unknown' \
      && ok || bad "--version: $("$T/inst/bin/kvbench" --version)"
  else
    bad "make install PREFIX=$T/inst failed: $(cat "$T/mk")"
  fi
fi

echo "cli-robust: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
