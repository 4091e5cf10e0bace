#!/bin/sh
# cli_tokenize.sh: kvbench tokenize on a small byte-level BPE tokenizer.json
# written here (the 256 byte pieces of GPT-2's bytes_to_unicode, the merges
# " t", "he", " the", and <|begin_of_text|> added first by the template): the
# ids, count and pieces it prints, --no-bos, a model directory, and each
# refusal with its exit status (1 unreadable, 2 refused).
# Usage: sh tests/cli_tokenize.sh path/to/kvbench [path/to/kvbench-gbench]
set -u
KVB=${1:?usage: cli_tokenize.sh path/to/kvbench [path/to/kvbench-gbench]}
T=$(mktemp -d /tmp/kvbench-tokenize.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# expect CODE NEEDLE ARGS...: exit status CODE and stdout+stderr hold NEEDLE
expect() {
  code=$1 needle=$2; shift 2
  "$KVB" "$@" >"$T/stdout" 2>"$T/stderr"; rc=$?
  if [ "$rc" -ne "$code" ]; then
    bad "kvbench $* -> exit $rc, wanted $code: $(cat "$T/stderr")"; return 1
  fi
  if ! cat "$T/stderr" "$T/stdout" | grep -qF -- "$needle"; then
    bad "kvbench $* -> lacks '$needle': $(cat "$T/stdout" "$T/stderr")"; return 1
  fi
  ok
}

# the vocab: byte b's printable code point (itself, or 256 + k for the k-th
# unprintable byte) as UTF-8, id b; then the merges' results and BOS
G=$(printf '\304\240')   # U+0120, the space's piece
{
  printf '{"model": {"type": "BPE", "vocab": {'
  LC_ALL=C awk 'BEGIN {
    k = 0
    for (b = 0; b < 256; b++) {
      cp = ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) ? b : 256 + k++
      s = cp < 128 ? sprintf("%c", cp) \
                   : sprintf("%c%c", 192 + int(cp / 64), 128 + cp % 64)
      if (b == 34 || b == 92) s = "\\" s
      printf "%s\"%s\": %d", (b ? ", " : ""), s, b
    } }'
  printf ', "%st": 256, "he": 257, "%sthe": 258}, ' "$G" "$G"
  printf '"merges": ["%s t", "h e", "%st he"]},\n' "$G" "$G"
  printf '"added_tokens": [{"id": 259, "content": "<|begin_of_text|>", "special": true}],\n'
  printf '"post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": '
  printf '{"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A"}}]}}\n'
} > "$T/tok.json"

expect 0 "tokenizer: $T/tok.json (bpe, 260 tokens, bos 259, eos -1)" \
  tokenize --tokenizer "$T/tok.json" " the"
grep -qx "ids: 259 258" "$T/stdout" && ok || bad "' the': $(cat "$T/stdout")"
grep -qx "count: 2" "$T/stdout" && ok || bad "' the' count: $(cat "$T/stdout")"
grep -qF "1      258  \"${G}the\"  \" the\"" "$T/stdout" && ok \
  || bad "' the' piece line: $(cat "$T/stdout")"
# --text, --no-bos; a special written in the text is bytes, not BOS
expect 0 "ids: 60 124 98 101 103 105 110 95 111 102 95 116 101 120 116 124 62" \
  tokenize --tokenizer "$T/tok.json" --no-bos --text "<|begin_of_text|>"
# newline and a byte that is not UTF-8 print as escapes, on one line
NL_PIECE=$(printf '\304\212')   # U+010A, the newline's piece
expect 0 "\"$NL_PIECE\"  \"\\n\"" tokenize --tokenizer "$T/tok.json" --no-bos "$(printf 'a\nb')"
expect 0 '"\xFF"' tokenize --tokenizer "$T/tok.json" --no-bos "$(printf 'x\377')"
expect 0 "count: 1" tokenize --tokenizer "$T/tok.json" --text ""
# a Hugging Face model directory
mkdir "$T/model" && cp "$T/tok.json" "$T/model/tokenizer.json"
expect 0 "ids: 259 257" tokenize --tokenizer "$T/model" "he"

# refusals
expect 2 "tokenize needs --tokenizer PATH" tokenize "the"
expect 2 "tokenize needs the text" tokenize --tokenizer "$T/tok.json"
expect 2 "tokenize takes one text, got a second: 'b'" tokenize --tokenizer "$T/tok.json" a b
expect 1 "No such file" tokenize --tokenizer "$T/absent.json" a
expect 2 "260 tokens, the model's vocab_size is 300" \
  tokenize --tokenizer "$T/tok.json" --vocab 300 a
sed 's/"h e"/"h q"/' "$T/tok.json" > "$T/bad.json"
expect 2 "model.merges[1]" tokenize --tokenizer "$T/bad.json" a
printf '\020\000\000\000' > "$T/tokenizer.bin"
expect 2 "give the model's vocab size" tokenize --tokenizer "$T/tokenizer.bin" a
expect 2 "tokenizer.bin: token 0 of 5" tokenize --tokenizer "$T/tokenizer.bin" --vocab 5 a

# the same vocab in run (--prompt-text: BOS, " the", " ", "he") and ppl (--tokenizer), on a
# tiny random model of 260 tokens
R="--preset tiny --vocab 260 --backend contiguous --tokens 3 --reps 1 --warmup 0 --no-ceilings"
expect 0 "prompt: 4 tokens (bpe vocab of $T/tok.json)" \
  run $R --tokenizer "$T/tok.json" --prompt-text " the he" --out "$T/run"
grep -q "^text (contiguous/f32/grow, greedy, repetition 1):  the he" "$T/stdout" && ok ||
  bad "run --prompt-text printed no continuation: $(cat "$T/stdout")"
expect 2 "--prompt-text needs a vocab" run $R --prompt-text "the"
expect 2 "--prompt-text and --prompt-ids exclude each other" \
  run $R --tokenizer "$T/tok.json" --prompt-text "the" --prompt-ids 1,2
expect 2 "260 tokens, the model's vocab_size is 256" \
  run --preset tiny --tokenizer "$T/tok.json" --prompt-text "the" --no-ceilings
awk 'BEGIN { for (i = 0; i < 400; i++) printf "the he %d\n", i }' > "$T/text"
expect 0 "(bpe vocab of $T/tok.json, BOS first in each window)" \
  ppl --preset tiny --vocab 260 --tokenizer "$T/tok.json" --text-file "$T/text" --ctx 32 \
  --windows 1 --backend contiguous --dtype f16 --quiet

echo "cli-tokenize: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
