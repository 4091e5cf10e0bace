#!/bin/sh
# cli_test.sh: the kvbench command as a user meets it. Bad input must give a
# clear message naming the value, a non-zero exit (2 for usage), no crash and
# no result directory; good input must give complete, consistent result files.
# Usage: sh tests/cli_test.sh path/to/kvbench [path/to/kvbench-gbench]
set -u
KVB=${1:?usage: cli_test.sh path/to/kvbench [path/to/kvbench-gbench]}
GB=${2:-}
T=$(mktemp -d /tmp/kvbench-cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0

ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# expect_fail CODE NEEDLE ARGS...: exit status CODE, stderr mentions NEEDLE,
# and the --out directory (always $T/out) was not created.
expect_fail() {
  code=$1 needle=$2; shift 2
  rm -rf "$T/out" "$T/out.partial"
  "$KVB" "$@" >"$T/stdout" 2>"$T/stderr"; rc=$?
  if [ "$rc" -ne "$code" ]; then
    bad "kvbench $* -> exit $rc, wanted $code: $(cat "$T/stderr")"; return
  fi
  if ! grep -qF -- "$needle" "$T/stderr"; then
    bad "kvbench $* -> message lacks '$needle': $(cat "$T/stderr")"; return
  fi
  if [ -e "$T/out" ] || [ -e "$T/out.partial" ]; then
    bad "kvbench $* left a result directory"; return
  fi
  ok
}

expect_ok() {
  "$KVB" "$@" >"$T/stdout" 2>"$T/stderr"; rc=$?
  if [ "$rc" -ne 0 ]; then bad "kvbench $* -> exit $rc: $(cat "$T/stderr")"; else ok; fi
}

R="run --preset tiny --tokens 4 --reps 1 --no-ceilings --quiet --out $T/out"

# --- usage and help ---
expect_fail 2 "no command given"
expect_ok help
expect_ok help run
expect_ok run --help
expect_ok list
grep -q "contiguous" "$T/stdout" && grep -q "stories110m" "$T/stdout" \
  && grep -q "bf16" "$T/stdout" && ok || bad "list lacks a backend, preset or dtype"
expect_ok info --help
expect_fail 2 "frobnicate" frobnicate
expect_fail 2 "extra" list extra

# --- bad run flags: each names its value ---
expect_fail 2 "unknown backend 'bogus'"      $R --backend bogus
expect_fail 2 "allowed are nocache"          $R --backend contiguous,bogus
expect_fail 2 "unknown preset 'huge'"        run --preset huge --out "$T/out"
expect_fail 2 "unknown storage type 'f8'"    $R --dtype f8
expect_fail 2 "unknown mode 'static'"        $R --mode static
expect_fail 2 "--tokens '0'"                 $R --tokens 0
expect_fail 2 "--tokens '-5'"                $R --tokens -5
expect_fail 2 "--tokens 'abc'"               $R --tokens abc
expect_fail 2 "--reps '1x'"                  $R --reps 1x
expect_fail 2 "--time-budget 'soon'"         $R --time-budget soon
expect_fail 2 "--dim '0'"                    $R --dim 0
expect_fail 2 "heads = 6 is not a multiple of kv-heads = 4" $R --heads 6 --kv-heads 4 --head-dim 16
expect_fail 2 "head-dim = 15"                $R --head-dim 15
expect_fail 2 "unknown flag '--frobnicate'"  $R --frobnicate
expect_fail 2 "--tokens needs a value"       run --preset tiny --out "$T/out" --tokens
expect_fail 2 "--quiet takes no value"       $R --quiet=yes
expect_fail 2 "item 2 is empty"              $R --prompt-ids 1,,2
expect_fail 2 "item 3 '4996'"                $R --prompt-ids 1,45,4996
expect_fail 2 "exceed the model's max-seq 256" $R --tokens 300
expect_fail 2 "unexpected argument 'stray'"  $R stray
expect_fail 2 "cannot create output directory" run --preset tiny --tokens 2 \
  --out /proc/kvbench-nope/out
expect_fail 2 "exclude each other"           $R --checkpoint "$T/none.bin" --preset tiny
expect_fail 2 "cannot open checkpoint"       run --checkpoint "$T/none.bin" --out "$T/out"
expect_fail 2 "only --max-seq may override" run --checkpoint "$T/none.bin" --heads 2 --out "$T/out"
expect_fail 2 "not a regular file"           run --checkpoint "$T" --out "$T/out"
expect_fail 2 "rope-theta"                   export --preset tiny --rope-theta 500000 \
  --out "$T/theta.bin"
[ ! -e "$T/theta.bin" ] && ok || bad "export with an unsupported rope-theta wrote a file"
mkdir -p "$T/left.partial"
"$KVB" $R --out "$T/left" >/dev/null 2>"$T/stderr"; rc=$?
[ $rc -eq 2 ] && grep -q "was interrupted" "$T/stderr" && [ ! -e "$T/left" ] && ok \
  || bad "a leftover .partial was not reported (exit $rc): $(cat "$T/stderr")"
mkdir -p "$T/exists"
"$KVB" $R --out "$T/exists" >/dev/null 2>"$T/stderr"; rc=$?
[ $rc -eq 2 ] && grep -q "never overwrites" "$T/stderr" && ok \
  || bad "existing --out accepted (exit $rc)"

# --- a complete run: files, rows, and nocache == contiguous tokens ---
expect_ok run --preset tiny --prompt 4 --tokens 20 --reps 2 --dtype f32,f16 --mode grow,prealloc \
  --no-ceilings --quiet --out "$T/ok"
for f in meta.json tokens.csv summary.json; do [ -s "$T/ok/$f" ] && ok || bad "missing $f"; done
[ ! -e "$T/ok.partial" ] && ok || bad "partial directory left behind"
ls -a "$T/ok" | grep -q '\.tmp$' && bad "temporary file left in result" || ok
hdr='^backend,dtype,mode,rep,step,position,token,step_ns,attn_ns,reserved_bytes,used_bytes,'
hdr="$hdr"'metadata_bytes,rss_bytes,phase$'
head -n 1 "$T/ok/tokens.csv" | grep -q "$hdr" \
  && ok || bad "tokens.csv header"
rows=$(($(wc -l < "$T/ok/tokens.csv") - 1))
# nocache once + contiguous x 2 dtypes x 2 modes, each 2 reps x (the prefill + 20 steps)
[ "$rows" -eq 210 ] && ok || bad "tokens.csv has $rows rows, wanted 210"
[ "$(grep -c '"status": "ok"' "$T/ok/summary.json")" -eq 5 ] && ok \
  || bad "summary.json lacks 5 ok points"
grep -q '"attend_threads": 1' "$T/ok/summary.json" && ok || bad "summary.json lacks attend_threads"
nc=$(awk -F, '$1=="nocache" && $4==0 {print $7}' "$T/ok/tokens.csv" | tr '\n' ' ')
ct=$(awk -F, '$1=="contiguous" && $2=="f32" && $3=="grow" && $4==0 {print $7}' \
  "$T/ok/tokens.csv" | tr '\n' ' ')
[ -n "$nc" ] && [ "$nc" = "$ct" ] && ok || bad "nocache tokens '$nc' differ from contiguous '$ct'"
# used bytes at the last step: 2 x 2 layers x 2 kv heads x 16 x 4 bytes x 24 tokens
last=$(awk -F, '$1=="contiguous" && $2=="f32" && $3=="grow" && $4==0 && $5==19 {print $11}' \
  "$T/ok/tokens.csv")
[ "$last" = "12288" ] && ok || bad "used bytes $last, wanted 12288"
grep -q '"commit"' "$T/ok/meta.json" && grep -q '"openblas"' "$T/ok/meta.json" && ok \
  || bad "meta.json lacks git/openblas"
if command -v python3 >/dev/null 2>&1; then
  python3 -c "import json,sys; [json.load(open(f)) for f in sys.argv[1:]]" "$T/ok/meta.json" \
    "$T/ok/summary.json" && ok || bad "result JSON does not parse"
else
  echo "note: python3 not installed: the result JSON was not parsed"
fi

# --- the time budget cuts a slow point short and says so ---
expect_ok run --preset stories15m --backend nocache --tokens 400 --reps 2 --warmup 0 \
  --time-budget 0.3 --no-ceilings --quiet --out "$T/cut"
grep -q '"status": "cut_short"' "$T/cut/summary.json" && grep -q "cut short" "$T/stderr" && ok \
  || bad "time budget did not mark the point cut_short"

# --- paged runs, attend timing and the serving simulation ---
expect_ok run --preset tiny --backend contiguous,paged --block 1,16 --tokens 20 --reps 1 \
  --no-ceilings --quiet --out "$T/pg"
grep -q '"label": "paged/f32/bs1"' "$T/pg/summary.json" && ok \
  || bad "paged point missing from summary"
a=$(awk -F, '$1=="contiguous" {print $7}' "$T/pg/tokens.csv" | tr '\n' ' ')
p=$(awk -F, '$1=="paged" && $3=="bs1" {print $7}' "$T/pg/tokens.csv" | tr '\n' ' ')
[ -n "$a" ] && [ "$a" = "$p" ] && ok || bad "paged tokens '$p' differ from contiguous '$a'"
"$KVB" run --preset tiny --backend paged --pool-blocks 2 --tokens 100 --reps 1 --no-ceilings \
  --quiet --out "$T/full" >/dev/null 2>"$T/stderr"; rc=$?
[ $rc -eq 1 ] && grep -q "pool full at token 32, sequence 0" "$T/stderr" && ok \
  || bad "pool exhaustion not reported (exit $rc): $(cat "$T/stderr")"
expect_fail 2 "--block '0'"                  $R --backend paged --block 0
expect_fail 2 "--block '300'"                $R --backend paged --block 300
expect_fail 2 "exclude each other"           $R --pool-mb 1 --pool-blocks 4
expect_ok attend --ctx 64,100 --block 3,16 --heads 4 --kv-heads 2 --head-dim 16 --reps 3 \
  --csv "$T/att.csv"
[ "$(grep -c 'attend(backend=paged,dt=f32,bs=3,nh=4,nkv=2,hd=16,ctx=100)' "$T/stdout")" -eq 1 ] \
  && ok || bad "attend case missing"
[ "$(wc -l < "$T/att.csv")" -eq 7 ] && ok || bad "attend csv rows: $(wc -l < "$T/att.csv")"
# every GB/s figure also as a fraction of the read ceiling measured in the same run
# (each context against the higher of the measurements just before and after its cases)
ceil_re='^read ceiling around these cases: [0-9.]* GB/s (before [0-9.]*, after [0-9.]*;'
att_hdr=',read_ceiling_gbs,fraction_of_read_ceiling,threads,kernel,threads_oversubscribed,'
att_hdr="$att_hdr"'samples_ns$'
[ "$(grep -c "$ceil_re" "$T/stdout")" -eq 2 ] \
  && awk '/^read ceiling around/ { c = $6; b = $9; a = $11; sub(/,/, "", b); sub(/;/, "", a);
          m = (a + 0 > b + 0) ? a : b; if (c + 0 <= 0 || c + 0 != m + 0) bad = 1 }
          END { exit bad }' "$T/stdout" \
  && head -n 1 "$T/att.csv" | grep -q "$att_hdr" \
  && [ "$(awk -F, 'NR > 1 && $(NF - 4) + 0 > 0' "$T/att.csv" | wc -l)" -eq 6 ] && ok \
  || bad "attend lacks the fraction of the read ceiling: $(head -n 2 "$T/att.csv")"
[ "$(awk -F, 'NR > 1 { print split($NF, s, ";") }' "$T/att.csv" | sort -u)" = "3" ] && ok \
  || bad "attend csv does not keep each of the 3 rounds' times"
expect_fail 2 "--ctx '0'"                    attend --ctx 0
expect_fail 2 "not a multiple"               attend --heads 6 --kv-heads 4
expect_ok serve-sim --preset tiny --sequences 12 --max-prompt 16 --max-output 32 --fork none,beam \
  --csv "$T/serve.csv"
[ "$(wc -l < "$T/serve.csv")" -eq 13 ] && ok || bad "serve-sim csv rows: $(wc -l < "$T/serve.csv")"
grep -q "paged/f32/bs16 *longtail *beam" "$T/stdout" && ok || bad "serve-sim lacks a paged beam row"
expect_fail 2 "unknown --lengths 'zipf'"     serve-sim --lengths zipf
expect_fail 2 "unknown --fork 'tree'"        serve-sim --fork tree
expect_fail 2 "--fork-n '1'"                 serve-sim --fork-n 1
"$KVB" serve-sim --preset tiny --sequences 4 --max-prompt 64 --budget-mb 0.01 \
  >"$T/stdout" 2>&1; rc=$?
[ $rc -eq 1 ] && grep -q "does not fit" "$T/stdout" && ok \
  || bad "an impossible budget was not reported (exit $rc)"

# --- the quantized backend: flags, the quality file, attend cases ---
expect_ok list
grep -q "^  q8 *8.50" "$T/stdout" && grep -q "^  q2 *3.00" "$T/stdout" && ok \
  || bad "list lacks the bits of q8/q2"
expect_fail 2 "--group 24: must be a power of two" $R --backend quant --dtype q8 --group 24
expect_fail 2 "--group '7'"                  $R --backend quant --dtype q8 --group 7
expect_fail 2 "--residual '-1'"              $R --backend quant --dtype q8 --residual -1
expect_fail 2 "unknown --key-axis 'diagonal'" $R --backend quant --dtype q8 --key-axis diagonal
expect_fail 2 "--key-outliers 100: at most head_dim / 2 = 8" $R --backend quant --dtype q8 \
  --key-outliers 100
expect_fail 2 \
  "unknown --qkernel 'neon': allowed are auto, portable, avx512, avx512-vnni, avx512-vnni-int8" \
  $R --backend quant --dtype q8 --qkernel neon
expect_fail 2 "run takes one kernel"         $R --backend quant --dtype q8 --qkernel portable,avx512
expect_fail 2 "only --max-seq may override" run --checkpoint "$T/none.bin" --untied --out "$T/out"
expect_ok run --preset tiny --backend contiguous,quant --dtype f32,q8,q2 --group 16 --residual 4 \
  --key-axis token,channel --key-outliers 2 --tokens 20 --reps 1 --no-ceilings --quiet --out "$T/q"
grep -q '"label": "quant/q8/g16-r4-ktoken"' "$T/q/summary.json" \
  && grep -q '"label": "quant/q2/g16-r4-kchannel"' "$T/q/summary.json" \
  && ok || bad "quant points missing from summary.json"
grep -q '"label": "contiguous/q8' "$T/q/summary.json" && bad "a contiguous/q8 point was made" || ok
# 4 quantized points x 2 layers, plus the header
[ "$(wc -l < "$T/q/quality.csv")" -eq 9 ] && ok \
  || bad "quality.csv rows: $(wc -l < "$T/q/quality.csv")"
head -n 1 "$T/q/quality.csv" |
  grep -q '^point,backend,dtype,mode,steps,kl_mean,kl_p50,kl_p99,kl_max,top1,layer,' \
  && ok || bad "quality.csv header"
ls -a "$T/q" | grep -q '\.tmp$' && bad "temporary file left in the quantized result" || ok
expect_ok attend --backend contiguous,quant --dtype f32,q4 --heads 4 --kv-heads 2 --head-dim 32 \
  --ctx 64 --reps 3 --no-ceilings
grep -q 'attend(backend=quant,dt=q4,g=32,r=0,keys=token,nh=4,nkv=2,hd=32,ctx=64) ' "$T/stdout" \
  && ok || bad "attend lacks the quant case"
grep -q 'skipped' "$T/stdout" && bad "attend paired contiguous with q4 or quant with f32" || ok
expect_ok attend --backend quant --dtype q8 --qkernel portable,avx512 --group 16 --heads 4 \
  --kv-heads 2 --head-dim 16 --ctx 8 --reps 1 --no-ceilings
grep -q 'kernel=avx512.*skipped: quant kernel .avx512. needs head_dim and group multiples of 32' \
  "$T/stdout" && ok \
  || bad "a SIMD kernel on head_dim 16 was not reported as skipped: $(cat "$T/stdout")"
# the integer values' table beside the float one: both run (a rel_err printed), or it is
# skipped where this CPU lacks AVX512-VNNI or AVX512-VBMI
expect_ok attend --backend quant --dtype q4 --qkernel avx512-vnni,avx512-vnni-int8 --heads 8 \
  --kv-heads 2 --head-dim 128 --ctx 300 --reps 2 --no-ceilings
I8='kernel=avx512-vnni-int8,.*ctx=300\) +([0-9.]+ .*[0-9]e-0[0-9]|.*skipped: .*this CPU)'
grep -Eq "$I8" "$T/stdout" && ok || bad "attend lacks the avx512-vnni-int8 case: $(cat "$T/stdout")"
expect_fail 2 "unknown --kernel 'sse9': allowed are auto, portable, avx2, avx512" \
  attend --kernel sse9
expect_ok attend --backend contiguous,paged --dtype f16 --kernel portable,avx2,avx512 --heads 4 \
  --kv-heads 2 --head-dim 8 --ctx 40 --reps 1 --no-ceilings
grep -q 'attend(backend=contiguous,dt=f16,kernel=portable,nh=4,nkv=2,hd=8,ctx=40) *[0-9]' \
  "$T/stdout" && ok \
  || bad "attend --kernel portable did not run: $(cat "$T/stdout")"
want="kernel=avx512,nh=4,nkv=2,hd=8,ctx=40) *skipped: attend kernel 'avx512'"
want="$want needs head_dim a multiple of 16"
grep -q "$want" \
  "$T/stdout" && ok || bad "avx512 on head_dim 8 was not reported as skipped: $(cat "$T/stdout")"

# --- topology and pinning ---
expect_ok info --cpu-key
grep -Eqx '[a-z0-9]+(-[a-z0-9]+)*' "$T/stdout" && [ "$(wc -l < "$T/stdout")" -eq 1 ] && ok \
  || bad "info --cpu-key is not one folder name: $(cat "$T/stdout")"
expect_ok info
grep -q "^topology: .*cores [0-9]" "$T/stdout" && ok \
  || bad "info lacks the hwloc topology: $(cat "$T/stdout")"
grep -q "^attend kernels: " "$T/stdout" \
  && grep -q "^read bandwidth: .* 1 thread over a 1024 MiB array" "$T/stdout" \
  && ok || bad "info lacks the kernel path or the read ceiling"
expect_fail 2 "unknown --pin 'tight'"        $R --pin tight
expect_ok run --preset tiny --tokens 4 --reps 1 --no-ceilings --quiet --pin compact --threads 2 \
  --out "$T/pin2"
# the decode thread and the cache's attention worker each bound and verified, or a note
# saying why not
want='"threads_bound": 2, "core": [0-9]*, "cpu": [0-9]*, "threads": \[{"thread": 0, "core": [0-9]'
{ grep -q "$want" "$T/pin2/meta.json" \
  && grep -q '{"thread": 1, "core": [0-9]*, "cpu": [0-9]*}' "$T/pin2/meta.json"; } \
  || grep -q 'running unpinned' "$T/stderr" \
  && ok \
  || bad "--pin with --threads 2 did not bind both threads: $(grep pinning "$T/pin2/meta.json")"
expect_ok run --preset tiny --tokens 4 --reps 1 --no-ceilings --quiet --pin compact --out "$T/pin"
want='"label": "contiguous/f32/grow", "backend": "contiguous", "dtype": "f32", "mode": "grow",'
want="$want"' "attend_threads": 2'
grep -q "$want" "$T/pin2/summary.json" && ok \
  || bad "--threads 2 not recorded as the contiguous point's attend_threads"
grep -q '"pinning": {"policy": "compact"' "$T/pin/meta.json" \
  && grep -q '"topology": {"source": "hwloc"' "$T/pin/meta.json" \
  && ok || bad "meta.json lacks the pinning or topology record"
# bound and verified (core 0), or a note saying why not
grep -q '"core": 0, "cpu": [0-9]' "$T/pin/meta.json" || grep -q 'running unpinned' "$T/stderr" \
  && ok || bad "--pin compact neither bound nor said why: $(grep pinning "$T/pin/meta.json")"

# --- llama2.c checkpoints through the CLI ---
expect_ok export --preset tiny --out "$T/tiny.bin"
expect_ok run --checkpoint "$T/tiny.bin" --tokens 8 --reps 1 --no-ceilings --quiet --out "$T/ck"
size=$(wc -c < "$T/tiny.bin")
head -c $((size - 3)) "$T/tiny.bin" > "$T/trunc.bin"
expect_fail 2 "truncated" run --checkpoint "$T/trunc.bin" --out "$T/out"

# --- --wtype: the seeded weights stored as f16, bf16 or q8_0 ---
expect_ok run --preset tiny --hidden 192 --wtype q8_0 --tokens 4 --reps 1 --no-ceilings --quiet \
  --out "$T/q8"
grep -q '"wtype": "q8_0", "weight_bytes": [1-9]' "$T/q8/meta.json" && ok \
  || bad "meta.json lacks wtype q8_0: $(grep '"model"' "$T/q8/meta.json")"
expect_ok export --preset tiny --wtype bf16 --format gguf --out "$T/bf16.gguf"
expect_fail 2 "llama2.c checkpoints hold f32 weights" export --preset tiny --wtype bf16 \
  --out "$T/bf16.bin"
[ ! -e "$T/bf16.bin" ] && ok || bad "export of bf16 weights as llama2.c wrote a file"
expect_fail 2 "whole blocks of 32 values: dim 64, hidden 172" run --preset tiny --wtype q8_0 \
  --out "$T/out"
expect_fail 2 "unknown --wtype 'q4'" run --preset tiny --wtype q4 --out "$T/out"
expect_fail 2 "a llama2.c checkpoint's weights are f32" run --checkpoint "$T/tiny.bin" \
  --wtype f16 --out "$T/out"

# --- GGUF: export writes one; attend and serve-sim take its KV shape (--model) ---
expect_ok export --preset tiny --format gguf --out "$T/tiny.gguf"
expect_ok attend --model "$T/tiny.gguf" --ctx 64 --reps 3 --no-ceilings --backend contiguous
grep -q "tiny.gguf: 2 layers, 4 heads, 2 KV heads, head_dim 16, context 256" "$T/stdout" \
  && grep -q "nh=4,nkv=2,hd=16,ctx=64" "$T/stdout" && ok || bad "attend --model: $(cat "$T/stdout")"
expect_ok serve-sim --model "$T/tiny.gguf" --sequences 4 --no-attend --backend paged
grep -q "tiny.gguf shape (2 layers, 2 kv heads x 16" "$T/stdout" && ok \
  || bad "serve-sim --model: $(cat "$T/stdout")"
expect_fail 2 "no shape flag may override"     attend --model "$T/tiny.gguf" --heads 8
expect_fail 2 "excludes --preset"              serve-sim --model "$T/tiny.gguf" --preset tiny
head -c 100 "$T/tiny.gguf" > "$T/trunc.gguf"
expect_fail 2 "GGUF '$T/trunc.gguf'"           attend --model "$T/trunc.gguf"
expect_fail 2 "unknown --format 'onnx'"        export --format onnx --out "$T/x.onnx"
expect_ok attend --preset llama3-8b --ctx 64 --dry-run
grep -q "llama3-8b: 32 layers, 32 heads, 8 KV heads, head_dim 128, context 8192" "$T/stdout" \
  && ok || bad "attend --preset llama3-8b: $(cat "$T/stdout")"
expect_ok serve-sim --preset llama3-8b --sequences 4 --max-prompt 8 --max-output 8 --no-attend \
  --budget-mb 64

# --- a Hugging Face config.json (or its directory) gives the same: Mistral 7B's shape ---
mkdir -p "$T/hf"
printf '%s\n' '{"architectures": ["MistralForCausalLM"], "hidden_size": 4096,' \
  '"intermediate_size": 14336, "max_position_embeddings": 32768, "num_attention_heads": 32,' \
  '"num_hidden_layers": 32, "num_key_value_heads": 8, "sliding_window": 4096,' \
  '"vocab_size": 32000}' > "$T/hf/config.json"
expect_ok attend --model "$T/hf" --ctx 64 --dry-run
grep -q "hf: 32 layers, 32 heads, 8 KV heads, head_dim 128, context 32768" "$T/stdout" \
  && ok || bad "attend --model DIR: $(cat "$T/stdout")"
expect_ok serve-sim --model "$T/hf/config.json" --sequences 4 --max-prompt 8 --max-output 8 \
  --no-attend --budget-mb 64
grep -q "config.json shape (32 layers, 8 kv heads x 128" "$T/stdout" && ok \
  || bad "serve-sim --model config.json: $(cat "$T/stdout")"
sed 's/MistralForCausalLM/GPT2LMHeadModel/' "$T/hf/config.json" > "$T/gpt2.json"
expect_fail 2 '"architectures" = GPT2LMHeadModel' attend --model "$T/gpt2.json" --dry-run

# --- model files' weights: export converts between formats, run --model decodes any ---
RM="--prompt 4 --tokens 8 --reps 1 --no-ceilings --quiet --backend contiguous"
expect_ok export --preset tiny --wtype bf16 --format safetensors --out "$T/w-hf"
expect_ok export --model "$T/w-hf" --format gguf --out "$T/w.gguf"
expect_ok export --model "$T/w.gguf" --format safetensors --out "$T/w-hf2"
cmp -s "$T/w-hf/model.safetensors" "$T/w-hf2/model.safetensors" && ok \
  || bad "safetensors -> GGUF -> safetensors changed the weights"
for m in w-hf w-hf/config.json w.gguf; do
  expect_ok run --model "$T/$m" $RM --out "$T/run-$(echo $m | tr / -)"
done
cut -d, -f7 "$T/run-w-hf/tokens.csv" > "$T/tok-hf"
cut -d, -f7 "$T/run-w.gguf/tokens.csv" | cmp -s - "$T/tok-hf" && ok \
  || bad "run --model: GGUF and safetensors decode different tokens"
expect_fail 2 "safetensors has F32, F16 and BF16" \
  export --preset tiny --hidden 96 --wtype q8_0 --format safetensors --out "$T/q8-hf"
expect_fail 2 "exists: export never overwrites" export --preset tiny --format safetensors \
  --out "$T/w-hf"
expect_fail 2 "--model's weights keep the file's types" run --model "$T/w.gguf" --wtype f16 $RM
expect_fail 2 "excludes --preset" run --model "$T/w.gguf" --preset tiny $RM
printf 'not a model at all, not even close' > "$T/junk.bin"
expect_fail 2 "not GGUF (no 'GGUF' magic), and not a llama2.c" run --model "$T/junk.bin" $RM
mkfifo "$T/model.fifo"   # judged by its type, never opened to be read: no hang
expect_fail 2 "neither a regular file nor a directory" attend --model "$T/model.fifo" --dry-run

# --- sweeps, reports, merges ---
SW="--set run.preset=tiny --set run.backends=nocache,contiguous,paged --set run.tokens=8 \
 --set run.reps=2 --set run.warmup=0 \
 --set attend.backends=contiguous,paged --set attend.shapes=4/2/16 --set attend.ctxs=64,128 \
 --set attend.blocks=4,16 --set attend.reps=5 \
 --set serve.preset=tiny --set serve.backends=contiguous,paged --set serve.blocks=4,16 \
 --set serve.sequences=4"
expect_fail 2 "unknown sweep key 'run.tokenz'"  sweep --set run.tokenz=4
expect_fail 2 "cannot read sweep file 'bench/sweeps/nosuch.sweep'" sweep nosuch
expect_fail 2 "sweep needs a definition"        sweep
expect_fail 2 "expected an unfinished sweep directory" sweep --resume "$T"
expect_ok sweep $SW --quiet --out "$T/sw"
[ -d "$T/sw" ] && [ ! -e "$T/sw.partial" ] && [ "$(grep -c ',ok,' "$T/sw/sweep.csv")" -eq 6 ] \
  && ok || bad "sweep did not finish its 6 points: $(cat "$T/sw/sweep.csv" 2>/dev/null)"
grep -q '^host: ' "$T/sw/machine.txt" && [ -s "$T/sw/report.md" ] && [ -s "$T/sw/report.html" ] \
  && ok || bad "sweep lacks machine.txt or its report"
for p in latency memory scaling bandwidth paged; do
  [ -s "$T/sw/plots/$p.dat" ] || bad "sweep: no $p.dat"
done; ok
[ ! -e "$T/sw/plots/quant.dat" ] && grep -q 'Not in this run' "$T/sw/report.md" && ok \
  || bad "a plot without data was not left out"
# the paged series come from one attend command with the contiguous cache beside them
grep -q 'paged/f32 x1 4/2/16 ctx 128 | 16 |' "$T/sw/report.md" && ok \
  || bad "report lacks the paged overhead rows"
# a value a point's own command refuses is refused before the sweep starts (its --dry-run),
# no directory made
expect_fail 2 "n_heads = 4 is not a multiple of n_kv_heads = 3" sweep $SW \
  --set attend.shapes=4/3/16 --quiet --out "$T/out"
# a point that fails keeps the sweep unfinished; the finished points stay and resume skips them
# (here: the definition changed under a started sweep, which only fails when the point runs)
"$KVB" sweep $SW --emit-jobs --out "$T/sw2" >/dev/null 2>&1
sed -i 's|^attend.shapes = .*|attend.shapes = 4/3/16|' "$T/sw2.partial/sweep.def"
"$KVB" sweep --resume "$T/sw2.partial" --quiet >/dev/null 2>"$T/stderr"; rc=$?
[ $rc -eq 1 ] && grep -q "some points failed" "$T/stderr" \
  && [ "$(grep -c ',ok,' "$T/sw2.partial/sweep.csv")" -eq 4 ] \
  && grep -q ',failed,' "$T/sw2.partial/sweep.csv" && ok \
  || bad "failed sweep: exit $rc: $(cat "$T/stderr" "$T/sw2.partial/sweep.csv")"
"$KVB" sweep --resume "$T/sw2.partial" >"$T/stdout" 2>"$T/stderr"; rc=$?
[ $rc -eq 1 ] && grep -q "resuming: 4 of 6 points already done" "$T/stderr" && ok \
  || bad "resume: exit $rc: $(cat "$T/stderr")"
# a decode point past its budget is cut short and marked, not dropped
expect_ok sweep --set run.backends=nocache --set run.tokens=200 --set run.warmup=0 \
  --set run.budget=0.5 --quiet --out "$T/sw3"
grep -q "run-stories15m-nocache-f32-t1,run,cut_short," "$T/sw3/sweep.csv" && ok \
  || bad "budget: $(cat "$T/sw3/sweep.csv")"
# jobs for GNU parallel or a Slurm array, run one by one, then finished by --resume
"$KVB" sweep $SW --emit-jobs --out "$T/sw4" >"$T/jobs.txt" 2>"$T/stderr"
[ "$(wc -l < "$T/jobs.txt")" -eq 6 ] \
  && grep -q -- "--resume $T/sw4.partial --only run-tiny-contiguous-f32-t1" "$T/jobs.txt" \
  && ok || bad "emit-jobs: $(cat "$T/jobs.txt")"
sh "$T/jobs.txt" && expect_ok sweep --resume "$T/sw4.partial" && [ -s "$T/sw4/report.md" ] \
  && ok || bad "jobs then --resume"
# merging machines: two sweeps of one host are refused; another host's is kept apart
expect_fail 2 "both come from host" merge "$T/m1" "$T/sw" "$T/sw4"
sed -i 's/^host: .*/host: othermachine/' "$T/sw4/machine.txt"
expect_ok merge "$T/m2" "$T/sw" "$T/sw4"
[ -d "$T/m2/machines/othermachine/points" ] \
  && grep -q ' on othermachine' "$T/m2/plots/bandwidth.vars" && ok \
  || bad "merge lost a machine or its label"
# a single run's report: latency, memory, scaling
expect_ok report "$T/ck"
[ -s "$T/ck/plots/scaling.vars" ] && grep -q 'b = ' "$T/ck/plots/scaling.vars" && ok \
  || bad "report of a run lacks the fit"
expect_fail 2 "is not a kvbench result" report "$T"

# --- the regression gate ---
expect_fail 2 "no such result directory"  compare "$T/nothing" "$T/sw"
expect_fail 2 "compare needs BASE and NEW" compare "$T/sw"
expect_fail 2 "unknown --gate kind 'speed'" compare "$T/sw" "$T/sw" --gate speed
expect_fail 2 "no common cases"           compare "$T/sw" "$T/sw3"
expect_ok compare "$T/sw" "$T/sw" --markdown "$T/cmp.md" --json "$T/cmp.json"
grep -q '^compare: [0-9]* cases: 0 regressed' "$T/stdout" \
  && grep -q '| case | kind | base | new | change | p | verdict |' "$T/cmp.md" \
  && grep -q '"verdict": "same"' "$T/cmp.json" && ok \
  || bad "compare of a sweep with itself: $(tail -n 3 "$T/stdout")"
# a planted 2x slowdown of the paged rows in one attend table: caught as ratios to the
# contiguous cache
cp -R "$T/sw" "$T/sw_slow"
f="$T/sw_slow/points/attend-4x2x16-paged-f32-t1/attend.csv"
awk -F, 'BEGIN { OFS = "," } NR > 1 && $0 ~ /backend=paged/ { n = split($NF, s, ";"); o = "";
  for (i = 1; i <= n; i++) o = o (i > 1 ? ";" : "") int(s[i] * 2); $NF = o } { print }' "$f" \
  > "$f.new" && mv "$f.new" "$f"
"$KVB" compare "$T/sw" "$T/sw_slow" --gate ratio >"$T/stdout" 2>"$T/stderr"; rc=$?
want='REGRESSED: attend-4x2x16-paged-f32-t1:attend(backend=paged,dt=f32,bs=[0-9]*,nh=4,nkv=2,'
want="$want"'hd=16,ctx=[0-9]*)/vs_contiguous +'
[ $rc -eq 1 ] && grep -q "$want" \
  "$T/stdout" && ! grep 'REGRESSED' "$T/stdout" | grep -qv 'paged-f32-t1:attend(backend=paged' \
  && ok || bad "a planted slowdown was not flagged: $(grep -c REGRESSED "$T/stdout") flags"
# and the same data the other way round is an improvement, not a regression
expect_ok compare "$T/sw_slow" "$T/sw" --gate ratio
grep -q ' improved' "$T/stdout" && ok || bad "the reverse comparison shows no improvement"
# a gated case that vanished from NEW (its point gone) fails the comparison; --allow-missing
# reports it
cp -R "$T/sw" "$T/sw_gone" && rm -rf "$T/sw_gone/points/attend-4x2x16-paged-f32-t1"
"$KVB" compare "$T/sw" "$T/sw_gone" --gate ratio,exact >"$T/stdout" 2>"$T/stderr"; rc=$?
[ $rc -eq 1 ] && grep -q '^MISSING: attend-4x2x16-paged-f32-t1:' "$T/stdout" && ok \
  || bad "a missing case passed: exit $rc"
expect_ok compare "$T/sw" "$T/sw_gone" --gate ratio,exact --allow-missing --json "$T/gone.json"
if command -v python3 >/dev/null 2>&1; then
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['cases']" "$T/gone.json" \
    && ok || bad "compare --json is not valid JSON"
fi
# a side of several runs (a baseline's runs/) pools each case's samples
mkdir -p "$T/pool/runs" && cp -R "$T/sw" "$T/pool/runs/1" && cp -R "$T/sw" "$T/pool/runs/2"
expect_ok compare "$T/pool" "$T/sw" --json "$T/pool.json"
if command -v python3 >/dev/null 2>&1; then
  python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
c = [x for x in d['cases'] if x['kind'] == 'ratio']
assert c and all(x['n_base'] == 2 * x['n_new'] for x in c), c[:2]" "$T/pool.json" \
    && ok || bad "pooled runs: samples not doubled"
fi
# decode runs have too few repetitions (2) to judge: said so, not flagged
grep -q 'run-tiny-contiguous-f32-t1:decode(contiguous/f32/grow)/total_ns.*too few samples' \
  "$T/stdout" && ok || bad "too few samples not reported"

# --- the Google Benchmark binary: flags, JSON, and a failing case's exit status ---
if [ -n "$GB" ]; then
  "$GB" --pin tight >"$T/stdout" 2>"$T/stderr"; rc=$?
  [ $rc -eq 2 ] && grep -q "unknown --pin 'tight'" "$T/stderr" && ok \
    || bad "gbench bad --pin: exit $rc"
  "$GB" --no-ceilings --benchmark_filter=nothing-matches-this >"$T/stdout" 2>"$T/stderr"; rc=$?
  [ $rc -eq 1 ] && grep -q "nothing ran" "$T/stderr" && ok \
    || bad "gbench with an empty filter: exit $rc"
  "$GB" --frobnicate >"$T/stdout" 2>"$T/stderr"; rc=$?
  [ $rc -eq 2 ] && grep -q "unknown flag '--frobnicate'" "$T/stderr" && ok \
    || bad "gbench bad flag: exit $rc"
  gbf='attend/contiguous/f32/nh=32/nkv=8/hd=128/ctx=256(/threads=[0-9]+)?$'
  gbf="$gbf"'|append/quant/q4/nh=32/nkv=8'
  "$GB" --benchmark_filter="$gbf" \
    --benchmark_min_time=0.01 --benchmark_out="$T/gb.json" --benchmark_out_format=json \
    >"$T/stdout" 2>"$T/stderr"; rc=$?
  [ $rc -eq 0 ] && ok || bad "gbench run: exit $rc: $(cat "$T/stderr")"
  if command -v python3 >/dev/null 2>&1; then
    msg="gbench JSON lacks the cases, counters or context"
    python3 - "$T/gb.json" "$(getconf _NPROCESSORS_ONLN)" <<'PY' && ok || bad "$msg"
import json, sys
d = json.load(open(sys.argv[1]))
names = [b["name"] for b in d["benchmarks"]]
assert "attend/contiguous/f32/nh=32/nkv=8/hd=128/ctx=256" in names, names
cores = min(int(sys.argv[2]), 64)
if cores > 1:
    assert "attend/contiguous/f32/nh=32/nkv=8/hd=128/ctx=256/threads=%d" % cores in names, names
# attend figures also as a fraction of the read ceiling measured in the same run
assert float(d["context"]["read_gbs_1thread"]) > 0
assert all(0 < b["fraction_of_read_ceiling"]
           for b in d["benchmarks"] if b["name"].startswith("attend/"))
assert "append/quant/q4/nh=32/nkv=8/hd=128" in names, names
assert all(b["kv_bytes_per_second"] > 0 for b in d["benchmarks"])
assert "kvbench_commit" in d["context"] and "cpu_model" in d["context"]
assert "topology" in d["context"] and "pinning" in d["context"]
PY
  fi
  "$GB" --no-ceilings --selftest-failure --benchmark_filter='selftest' \
    >"$T/stdout" 2>"$T/stderr"; rc=$?
  [ $rc -eq 1 ] && grep -q "1 run(s) reported an error" "$T/stderr" && ok \
    || bad "a failing gbench case did not make the exit status 1 (exit $rc)"
fi

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
