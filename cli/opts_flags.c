/* opts_flags.c: the flag rows of run, attend, serve-sim, export and info, in
 * the order their help lists them. A flag whose meaning or default differs
 * between commands has a row per meaning; a command takes exactly the rows
 * that name it, and every one of them must change what it does.
 * To add a flag: a field in kvb_opts (opts.h), a row here naming the commands
 * that honour it, and the code in those commands that reads the field. */
#include "opts.h"

#include <limits.h>
#include <stddef.h>

#define RUN    KVB_CMD_RUN
#define ATTEND KVB_CMD_ATTEND
#define SERVE  KVB_CMD_SERVE
#define EXPORT KVB_CMD_EXPORT
#define INFO   KVB_CMD_INFO
#define TOKENIZE KVB_CMD_TOKENIZE
#define PPL    KVB_CMD_PPL
#define REAL   KVB_CMD_SERVE_REAL
#define OFF(f) offsetof(kvb_opts, f)

/* clang-format off */
const kvb_flag kvb_opts_flags[] = {
    /* caches */
    {.name = "--backend", .cmds = RUN, .kind = KVB_FLAG_LIST, .def = "nocache,contiguous",
     .meta = "LIST", .help = "backends, see 'kvbench list'", .off = OFF(backends)},
    {.name = "--backend", .cmds = ATTEND, .kind = KVB_FLAG_LIST, .def = "contiguous,paged",
     .meta = "LIST", .help = "backends with an attend", .off = OFF(backends)},
    {.name = "--backend", .cmds = SERVE, .kind = KVB_FLAG_LIST, .def = "contiguous,paged",
     .meta = "LIST", .help = "backends that hold KV", .off = OFF(backends)},
    {.name = "--dtype", .cmds = RUN, .kind = KVB_FLAG_LIST, .def = "f32", .meta = "LIST",
     .help = "cache storage types: f32,f16,bf16; q8,q4,q4_1,q2 for the quant backend. Every lossy "
             "type also gets KL, top-1 agreement and attend error against the f32 cache over the "
             "same tokens (quality.csv)",
     .off = OFF(dtypes)},
    {.name = "--dtype", .cmds = ATTEND | SERVE | REAL, .kind = KVB_FLAG_LIST, .def = "f32",
     .meta = "LIST",
     .help = "storage types: f32,f16,bf16; q8,q4,q4_1,q2 for quant", .off = OFF(dtypes)},
    {.name = "--mode", .cmds = RUN, .kind = KVB_FLAG_LIST, .def = "grow", .meta = "LIST",
     .help = "contiguous allocation: grow (capacity doubles), prealloc (max-seq up front)",
     .off = OFF(modes)},
    {.name = "--mode", .cmds = SERVE | REAL, .kind = KVB_FLAG_LIST, .def = "prealloc,grow",
     .meta = "LIST",
     .help = "contiguous allocation: prealloc, grow", .off = OFF(modes)},
    {.name = "--block", .cmds = RUN | ATTEND | SERVE | REAL, .kind = KVB_FLAG_LIST, .def = "16",
     .meta = "LIST", .help = "paged block sizes in tokens, 1..256", .off = OFF(blocks)},
    {.name = "--pool-mb", .cmds = RUN, .kind = KVB_FLAG_INT64, .lo = 1, .hi = 1ll << 40,
     .def_help = "room for the whole sequence", .meta = "N",
     .help = "paged pool size in MiB (or --pool-blocks)", .off = OFF(pool_mb)},
    {.name = "--pool-blocks", .cmds = RUN, .kind = KVB_FLAG_INT64, .lo = 1, .hi = 1ll << 40,
     .def_help = "room for the whole sequence", .meta = "N",
     .help = "paged pool size in blocks (or --pool-mb)", .off = OFF(pool_blocks)},
    {.name = "--group", .cmds = RUN | ATTEND | SERVE | PPL | REAL, .kind = KVB_FLAG_INT, .lo = 8,
     .hi = 256,
     .def_help = "32, or the largest power of two from 8 dividing the head dimension when 32 "
                 "does not, said on stderr",
     .meta = "N", .help = "quant: values per scale, a power of two 8..256", .off = OFF(group)},
    {.name = "--residual", .cmds = RUN | ATTEND | SERVE | PPL | REAL, .kind = KVB_FLAG_INT, .lo = 0,
     .hi = 65536, .def_help = "128 for q2, else 0", .meta = "N",
     .help = "quant: newest tokens kept in f32", .off = OFF(residual)},
    {.name = "--window", .cmds = RUN | ATTEND | SERVE, .kind = KVB_FLAG_INT, .lo = 0,
     .hi = INT_MAX, .def = "0", .def_help = "0: max-seq, every token", .meta = "N",
     .help = "window backend: the newest N tokens each sequence holds and attends "
             "(sliding-window attention, as Mistral's)",
     .off = OFF(window)},
    {.name = "--key-axis", .cmds = RUN | ATTEND, .kind = KVB_FLAG_LIST, .def = "default",
     .def_help = "channel for q2, else token", .meta = "LIST",
     .help = "quant: default,token,channel: keys grouped per token or per channel across --group "
             "tokens",
     .off = OFF(key_axes)},
    {.name = "--qkernel", .cmds = RUN, .kind = KVB_FLAG_STRING, .def = "auto", .meta = "NAME",
     .help = "quant's fused loops: auto (the fastest this CPU has), portable, avx512, avx512-vnni, "
             "avx512-vnni-int8 (values summed in int8: weights rounded to 8 bits)",
     .off = OFF(qkernels)},
    {.name = "--qkernel", .cmds = ATTEND, .kind = KVB_FLAG_LIST, .def = "auto", .meta = "LIST",
     .help = "quant's fused loops: auto,portable,avx512,avx512-vnni,avx512-vnni-int8 (auto: the "
             "fastest this CPU has; int8: weights rounded to 8 bits), timed side by side",
     .off = OFF(qkernels)},
    {.name = "--kernel", .cmds = RUN, .kind = KVB_FLAG_STRING, .def = "auto", .meta = "NAME",
     .help = "contiguous and paged attend loops: auto, portable, avx2, avx512",
     .off = OFF(kernels)},
    {.name = "--kernel", .cmds = ATTEND, .kind = KVB_FLAG_LIST, .def = "auto", .meta = "LIST",
     .help = "contiguous and paged attend loops: auto,portable,avx2,avx512, timed side by side",
     .off = OFF(kernels)},

    /* the model */
    {.name = "--preset", .cmds = RUN | EXPORT | SERVE | PPL | REAL, .kind = KVB_FLAG_STRING,
     .def_help = "stories15m", .meta = "NAME", .help = "model shape, see 'kvbench list'",
     .off = OFF(preset)},
    {.name = "--preset", .cmds = ATTEND, .kind = KVB_FLAG_STRING, .def_help = "none: --heads, "
     "--kv-heads, --head-dim", .meta = "NAME",
     .help = "the KV shape (heads, KV heads, head dimension) of a model, see 'kvbench list'",
     .off = OFF(preset)},
    {.name = "--checkpoint", .cmds = RUN | EXPORT | PPL, .kind = KVB_FLAG_STRING, .meta = "FILE",
     .help = "llama2.c checkpoint instead of seeded random weights", .off = OFF(checkpoint)},
    {.name = "--checkpoint", .cmds = SERVE, .kind = KVB_FLAG_STRING, .meta = "FILE",
     .help = "llama2.c checkpoint whose header gives the KV shape (no weights read)",
     .off = OFF(checkpoint)},
    {.name = "--model", .cmds = ATTEND | SERVE, .kind = KVB_FLAG_STRING, .meta = "PATH",
     .help = "a GGUF file (llama architecture) or a Hugging Face config.json (Llama, Mistral; "
             "or its directory) whose metadata gives the exact KV shape: layers, heads, KV "
             "heads, head dimension, context (no weights read)",
     .off = OFF(model)},
    {.name = "--model", .cmds = RUN | EXPORT | PPL | REAL, .kind = KVB_FLAG_STRING, .meta = "PATH",
     .help = "a model's weights instead of seeded random ones, by what PATH holds: a GGUF file "
             "(llama; f32, f16, bf16, q8_0, q4_0, q4_k, q6_k tensors), a Hugging Face checkpoint "
             "directory or its "
             "config.json (safetensors, sharded or not), or a llama2.c .bin; GGUF and safetensors "
             "are mapped, never copied. Only --max-seq overrides its shape",
     .off = OFF(model)},
    {.name = "--dim", .cmds = RUN | EXPORT | SERVE | PPL, .kind = KVB_FLAG_INT, .lo = 1,
     .hi = 1 << 20,
     .def_help = "the preset's", .meta = "N", .help = "model width", .off = OFF(dim)},
    {.name = "--hidden", .cmds = RUN | EXPORT | PPL, .kind = KVB_FLAG_INT, .lo = 1, .hi = 1 << 20,
     .def_help = "the preset's", .meta = "N", .help = "feed-forward width", .off = OFF(hidden)},
    {.name = "--layers", .cmds = RUN | EXPORT | SERVE | PPL, .kind = KVB_FLAG_INT, .lo = 1,
     .hi = 4096,
     .def_help = "the preset's", .meta = "N", .help = "layers", .off = OFF(layers)},
    {.name = "--heads", .cmds = RUN | EXPORT | SERVE | PPL, .kind = KVB_FLAG_INT, .lo = 1,
     .hi = 4096,
     .def_help = "the preset's", .meta = "N", .help = "query heads", .off = OFF(heads)},
    {.name = "--kv-heads", .cmds = RUN | EXPORT | SERVE | PPL, .kind = KVB_FLAG_INT, .lo = 1,
     .hi = 4096, .def_help = "the preset's", .meta = "N",
     .help = "key/value heads, a divisor of the query heads", .off = OFF(kv_heads)},
    {.name = "--head-dim", .cmds = RUN | EXPORT | SERVE | PPL, .kind = KVB_FLAG_INT, .lo = 2,
     .hi = 65536, .def_help = "the preset's, or dim / heads when --dim or --heads is given",
     .meta = "N", .help = "dimension of one head", .off = OFF(head_dim)},
    {.name = "--vocab", .cmds = RUN | EXPORT | PPL, .kind = KVB_FLAG_INT, .lo = 1, .hi = 1 << 24,
     .def_help = "the preset's", .meta = "N", .help = "vocabulary size", .off = OFF(vocab)},
    {.name = "--max-seq", .cmds = RUN | EXPORT | REAL, .kind = KVB_FLAG_INT, .lo = 1, .hi = 1 << 24,
     .def_help = "the preset's or the checkpoint's", .meta = "N",
     .help = "positions the model holds; the one override a checkpoint takes",
     .off = OFF(max_seq)},
    {.name = "--rope-theta", .cmds = RUN | EXPORT | PPL, .kind = KVB_FLAG_DOUBLE, .dlo = 1.0001,
     .dhi = 1e12, .def_help = "the preset's", .meta = "X", .help = "RoPE base",
     .off = OFF(rope_theta)},
    {.name = "--untied", .cmds = RUN | EXPORT | PPL, .kind = KVB_FLAG_SWITCH,
     .help = "random weights with a separate classifier (a tied one makes random models copy "
             "their input token: KL would be ~0)",
     .off = OFF(untied)},
    {.name = "--key-outliers", .cmds = RUN, .kind = KVB_FLAG_INT, .lo = 0, .hi = 4096, .meta = "N",
     .help = "scale N channel pairs of Wk by 30 and of Wq by 1/30: same model, keys with outlier "
             "channels",
     .off = OFF(key_outliers)},
    {.name = "--key-outliers", .cmds = ATTEND, .kind = KVB_FLAG_INT, .lo = 0, .hi = 4096,
     .meta = "N",
     .help = "make N channel pairs of the keys 30x larger (queries /30: same scores), as in real "
             "models' keys",
     .off = OFF(key_outliers)},
    {.name = "--seed", .cmds = RUN, .kind = KVB_FLAG_INT64, .lo = 0, .hi = LLONG_MAX, .def = "1",
     .meta = "N", .help = "weights and prompt seed", .off = OFF(seed)},
    {.name = "--seed", .cmds = EXPORT | PPL, .kind = KVB_FLAG_INT64, .lo = 0, .hi = LLONG_MAX,
     .def = "1", .meta = "N", .help = "weights seed", .off = OFF(seed)},
    {.name = "--matvec", .cmds = RUN | PPL | REAL, .kind = KVB_FLAG_STRING, .def = "auto",
     .meta = "NAME",
     .help = "the decode step's matrix-vector kernel: auto (the fastest that keeps x in f32), "
             "avx512-vnni (q8_0, q4_k: x rounded to int8 per block, as llama.cpp), avx512, avx2, "
             "portable; matrices of types it lacks keep auto",
     .off = OFF(matvec)},
    {.name = "--wtype", .cmds = RUN | EXPORT | PPL | REAL, .kind = KVB_FLAG_STRING, .def = "f32",
     .meta = "TYPE",
     .help = "stored type of the seeded random weights: f32, f16, bf16, q8_0, q4_0 (GGUF's; "
             "need dim, hidden and heads x head-dim in blocks of 32), q4_k, q6_k (GGUF's "
             "k-quants: blocks of 256). The values are the f32 model's "
             "of the same seed, rounded; decode reads them in this type",
     .off = OFF(wtype)},
    {.name = "--seed", .cmds = ATTEND, .kind = KVB_FLAG_INT64, .lo = 0, .hi = LLONG_MAX,
     .def = "1", .meta = "N", .help = "K/V data seed", .off = OFF(seed)},
    {.name = "--seed", .cmds = SERVE, .kind = KVB_FLAG_INT64, .lo = 0, .hi = LLONG_MAX,
     .def = "1", .meta = "N", .help = "request lengths and K/V noise seed", .off = OFF(seed)},

    /* attend's cases */
    {.name = "--ctx", .cmds = ATTEND, .kind = KVB_FLAG_LIST, .def = "1024,8192,32768",
     .meta = "LIST", .help = "context lengths", .off = OFF(ctxs)},
    {.name = "--heads", .cmds = ATTEND, .kind = KVB_FLAG_INT, .lo = 1, .hi = 4096,
     .def_help = "32, or the --preset's or --model's", .meta = "N", .help = "query heads",
     .off = OFF(heads)},
    {.name = "--kv-heads", .cmds = ATTEND, .kind = KVB_FLAG_INT, .lo = 1, .hi = 4096,
     .def_help = "8, or the --preset's or --model's", .meta = "N",
     .help = "key/value heads, a divisor of --heads", .off = OFF(kv_heads)},
    {.name = "--head-dim", .cmds = ATTEND, .kind = KVB_FLAG_INT, .lo = 2, .hi = 65536,
     .def_help = "128, or the --preset's or --model's", .meta = "N",
     .help = "dimension of one head", .off = OFF(head_dim)},
    {.name = "--reps", .cmds = ATTEND, .kind = KVB_FLAG_INT, .lo = 1, .hi = 1000, .def = "21",
     .meta = "R", .help = "timed rounds; medians and p10/p90 reported", .off = OFF(reps)},
    {.name = "--sequences", .cmds = ATTEND, .kind = KVB_FLAG_INT, .lo = 1, .hi = 4096, .def = "1",
     .meta = "N",
     .help = "fill N sequences in turn and time the first: a paged sequence's blocks then lie "
             "scattered in the pool",
     .off = OFF(sequences)},

    /* serve-sim's requests */
    {.name = "--sequences", .cmds = SERVE, .kind = KVB_FLAG_INT, .lo = 1, .hi = 4096, .def = "64",
     .meta = "N", .help = "requests", .off = OFF(sequences)},
    {.name = "--max-prompt", .cmds = SERVE, .kind = KVB_FLAG_INT, .lo = 1, .hi = 1 << 20,
     .def = "128", .meta = "N", .help = "longest prompt in tokens", .off = OFF(max_prompt)},
    {.name = "--max-output", .cmds = SERVE, .kind = KVB_FLAG_INT, .lo = 1, .hi = 1 << 20,
     .def = "384", .meta = "N", .help = "longest output in tokens", .off = OFF(max_output)},
    {.name = "--lengths", .cmds = SERVE, .kind = KVB_FLAG_LIST, .def = "uniform,longtail",
     .meta = "LIST", .help = "uniform,longtail (longtail: lognormal, median max/8, sigma 1)",
     .off = OFF(lengths)},
    {.name = "--fork", .cmds = SERVE, .kind = KVB_FLAG_LIST, .def = "none", .meta = "LIST",
     .help = "none,parallel,beam: parallel decodes --fork-n samples per request from one shared "
             "prompt, beam keeps --fork-n beams re-forked every 4 rounds",
     .off = OFF(forks)},
    {.name = "--fork-n", .cmds = SERVE, .kind = KVB_FLAG_INT, .lo = 2, .hi = 64, .def = "4",
     .meta = "N", .help = "samples or beams per request", .off = OFF(fork_n)},
    {.name = "--budget-mb", .cmds = SERVE, .kind = KVB_FLAG_DOUBLE, .dlo = 0.001, .dhi = 1e7,
     .def_help = "a quarter of what every sequence, forks included, would need at its longest; "
                 "at least one sequence's",
     .meta = "X", .help = "KV budget in MiB", .off = OFF(budget_mb)},
    {.name = "--no-attend", .cmds = SERVE, .kind = KVB_FLAG_SWITCH,
     .help = "memory only: skip attention (much faster)", .off = OFF(no_attend)},
    {.name = "--time-budget", .cmds = SERVE, .kind = KVB_FLAG_DOUBLE, .dlo = 0, .dhi = 1e7,
     .def = "0", .meta = "S",
     .help = "seconds per cache, 0 for none; one past it stops and is marked cut_short",
     .off = OFF(time_budget)},

    /* run's generation */
    {.name = "--prompt", .cmds = RUN, .kind = KVB_FLAG_INT, .lo = 1, .hi = 1 << 20, .def = "16",
     .meta = "P", .help = "prompt length in tokens", .off = OFF(prompt)},
    {.name = "--prompt-text", .cmds = RUN, .kind = KVB_FLAG_TEXT, .meta = "TEXT",
     .help = "the prompt as text, in the vocab of --tokenizer or of --model's file (instead of "
             "--prompt); the first point's greedy continuation is printed",
     .off = OFF(prompt_text)},
    {.name = "--prompt-ids", .cmds = RUN, .kind = KVB_FLAG_LIST, .meta = "LIST",
     .help = "explicit prompt token ids, e.g. 1,450,4996 (instead of --prompt)",
     .off = OFF(prompt_ids)},
    {.name = "--tokens", .cmds = RUN, .kind = KVB_FLAG_INT, .lo = 1, .hi = 1 << 20, .def = "128",
     .meta = "N", .help = "decode steps per repetition", .off = OFF(tokens)},
    {.name = "--reps", .cmds = RUN, .kind = KVB_FLAG_INT, .lo = 1, .hi = 1000, .def = "3",
     .meta = "R", .help = "timed repetitions", .off = OFF(reps)},
    {.name = "--warmup", .cmds = RUN, .kind = KVB_FLAG_INT, .lo = 0, .hi = 1 << 20, .def = "32",
     .meta = "N", .help = "untimed decode steps before them", .off = OFF(warmup)},
    {.name = "--time-budget", .cmds = RUN, .kind = KVB_FLAG_DOUBLE, .dlo = 0, .dhi = 1e7,
     .def = "0", .meta = "S",
     .help = "seconds per point, 0 for none; a point past it stops and is marked cut_short",
     .off = OFF(time_budget)},

    /* ppl's text and cases */
    {.name = "--backend", .cmds = PPL, .kind = KVB_FLAG_LIST, .def = "contiguous,quant",
     .meta = "LIST", .help = "backends whose caches are compared (contiguous f32 is always the "
     "reference)", .off = OFF(backends)},
    {.name = "--dtype", .cmds = PPL, .kind = KVB_FLAG_LIST, .def = "f32,f16,q8,q4,q2",
     .meta = "LIST", .help = "storage types: f32,f16,bf16; q8,q4,q4_1,q2 for quant",
     .off = OFF(dtypes)},
    {.name = "--ctx", .cmds = PPL, .kind = KVB_FLAG_LIST, .def = "512", .meta = "N",
     .help = "tokens per window (4 or more); loss over the second half of each",
     .off = OFF(ctxs)},
    {.name = "--text-file", .cmds = PPL, .kind = KVB_FLAG_STRING,
     .def = "/usr/share/common-licenses/GPL-3", .meta = "FILE",
     .help = "the text (a regular file, at most 64 MiB)", .off = OFF(text_file)},
    {.name = "--windows", .cmds = PPL, .kind = KVB_FLAG_INT, .lo = 0, .hi = 1 << 20, .def = "0",
     .meta = "N", .help = "at most N windows (0: every whole window of the text)",
     .off = OFF(windows)},
    {.name = "--threads", .cmds = PPL, .kind = KVB_FLAG_INT, .lo = 1, .hi = 1024, .def = "1",
     .meta = "N", .help = "threads of the model's pool (matvec rows, sgemm tiles, attention heads)",
     .off = OFF(threads)},
    {.name = "--csv", .cmds = PPL, .kind = KVB_FLAG_STRING, .meta = "FILE",
     .help = "also write the table as CSV (ppl.csv's columns; temporary file, then renamed)",
     .off = OFF(csv)},
    {.name = "--out", .cmds = PPL, .kind = KVB_FLAG_STRING, .meta = "DIR",
     .help = "also write DIR (must not exist): ppl.csv, machine.txt, report.md and the plot of "
             "perplexity increase against bytes per token (plots/ppl.png)",
     .off = OFF(out)},
    {.name = "--tokenizer", .cmds = PPL | RUN, .kind = KVB_FLAG_STRING, .meta = "PATH",
     .def_help = "--model's own vocab where it has one (ppl: else the text's bytes)",
     .help = "the vocab: a GGUF file, a tokenizer.json or a directory holding one, or a llama2.c "
             "tokenizer.bin",
     .off = OFF(tokenizer)},
    {.name = "--quiet", .cmds = PPL, .kind = KVB_FLAG_SWITCH,
     .help = "no progress line on stderr", .off = OFF(quiet)},

    /* measuring and writing */
    {.name = "--threads", .cmds = RUN, .kind = KVB_FLAG_INT, .lo = 1, .hi = 1024, .def = "1",
     .meta = "N",
     .help = "threads of the model's pool (the step's matvec rows, the sequence passes' sgemm "
             "tiles) and attention threads for every cache; the sgemm ceiling's OpenBLAS threads",
     .off = OFF(threads)},
    {.name = "--threads", .cmds = ATTEND, .kind = KVB_FLAG_INT, .lo = 1, .hi = 1024, .def = "1",
     .meta = "N",
     .help = "attention threads: over KV heads, and over parts of the context (contiguous, "
             "paged) when heads are fewer",
     .off = OFF(threads)},
    {.name = "--threads", .cmds = INFO, .kind = KVB_FLAG_INT, .lo = 1, .hi = 1024, .def = "1",
     .meta = "N", .help = "OpenBLAS threads of the sgemm ceiling", .off = OFF(threads)},
    {.name = "--bw-mb", .cmds = INFO, .kind = KVB_FLAG_INT64, .lo = 16, .hi = 1 << 20,
     .def = "1024", .meta = "MB", .help = "the read-bandwidth array in MiB", .off = OFF(bw_mb)},
    {.name = "--cpu-key", .cmds = INFO, .kind = KVB_FLAG_SWITCH,
     .help = "print only the CPU model as a folder name (make regress picks "
             "results/baselines/smoke/<that> as the baseline) and measure nothing",
     .off = OFF(cpu_key)},
    {.name = "--pin", .cmds = RUN, .kind = KVB_FLAG_STRING, .def = "none", .meta = "POLICY",
     .help = "none, compact, spread: bind the decode thread and each attention worker "
             "(--threads) to its own core (hwloc, verified; recorded per thread in meta.json)",
     .off = OFF(pin)},
    {.name = "--pin", .cmds = ATTEND, .kind = KVB_FLAG_STRING, .def = "none", .meta = "POLICY",
     .help = "none, compact, spread: bind this thread and each attention worker (--threads) to "
             "its own core (hwloc)",
     .off = OFF(pin)},
    {.name = "--out", .cmds = RUN, .kind = KVB_FLAG_STRING, .def_help = "results/<run-id>",
     .meta = "DIR", .help = "result directory; must not exist", .off = OFF(out)},
    {.name = "--out", .cmds = EXPORT, .kind = KVB_FLAG_STRING, .meta = "PATH",
     .help = "the file to write (a directory for safetensors; required); must not exist",
     .off = OFF(out)},
    {.name = "--format", .cmds = EXPORT, .kind = KVB_FLAG_STRING, .def = "llama2c",
     .meta = "NAME",
     .help = "llama2c (a llama2.c .bin, f32 weights), gguf (GGUF v3 under llama.cpp's names, "
             "tensors in --wtype) or safetensors (a Hugging Face Llama checkpoint directory: "
             "config.json and model.safetensors; f32, f16 or bf16)",
     .off = OFF(format)},
    {.name = "--csv", .cmds = ATTEND | SERVE, .kind = KVB_FLAG_STRING, .meta = "FILE",
     .help = "also write the table as CSV (temporary file, then renamed)", .off = OFF(csv)},
    {.name = "--no-ceilings", .cmds = RUN, .kind = KVB_FLAG_SWITCH,
     .help = "skip measuring read bandwidth and sgemm for meta.json", .off = OFF(no_ceilings)},
    {.name = "--no-ceilings", .cmds = ATTEND, .kind = KVB_FLAG_SWITCH,
     .help = "skip measuring the read ceiling (the ceil column shows -)", .off = OFF(no_ceilings)},
    {.name = "--quiet", .cmds = RUN, .kind = KVB_FLAG_SWITCH,
     .help = "no progress line, summary or quality table", .off = OFF(quiet)},
    {.name = "--dry-run", .cmds = RUN, .kind = KVB_FLAG_SWITCH,
     .help = "check every flag, the model shape and each point, measure nothing and write "
             "nothing",
     .off = OFF(dry_run)},
    {.name = "--dry-run", .cmds = ATTEND | SERVE, .kind = KVB_FLAG_SWITCH,
     .help = "check every flag and case, measure nothing", .off = OFF(dry_run)},

    /* serve: requests through the model under one KV budget */
    {.name = "--backend", .cmds = REAL, .kind = KVB_FLAG_LIST, .def = "contiguous,paged",
     .meta = "LIST", .help = "backends that hold KV, served side by side on the same requests",
     .off = OFF(backends)},
    {.name = "--seed", .cmds = REAL, .kind = KVB_FLAG_INT64, .lo = 0, .hi = LLONG_MAX, .def = "1",
     .meta = "N", .help = "weights, prompts, lengths and arrivals seed", .off = OFF(seed)},
    {.name = "--kv-budget", .cmds = REAL, .kind = KVB_FLAG_LIST, .def = "64MiB",
     .meta = "BYTES[,...]",
     .help = "KV bytes every cache may hold, with KB, MB, GB (10^3) or KiB, MiB, GiB (2^10): a "
             "paged pool's size, a prealloc cache's sequences, a grow cache's reserved bytes; "
             "several: every case at each (names end @BUDGET)",
     .off = OFF(kv_budget)},
    {.name = "--preempt", .cmds = REAL, .kind = KVB_FLAG_LIST, .def = "recompute",
     .meta = "LIST",
     .help = "what a preempted request's KV becomes: recompute (dropped, prefilled again on "
             "readmission) or swap (copied to host memory and back, for backends with "
             "seq_save: contiguous, paged, paged-quant); both: side by side (names end /swap)",
     .off = OFF(preempt)},
    {.name = "--interleave", .cmds = REAL, .kind = KVB_FLAG_STRING, .def = "on",
     .meta = "on|off",
     .help = "on: every case's cache set up at once and their schedulers take turns a round "
             "each, so a noisy stretch of a shared machine falls on all cases alike (off, or "
             "budgets past half the memory: one case after another)",
     .off = OFF(interleave)},
    {.name = "--swap-space", .cmds = REAL, .kind = KVB_FLAG_STRING, .def = "4GiB",
     .meta = "BYTES",
     .help = "host memory swapped-out sequences may hold at once (vLLM's default); a swap "
             "that does not fit recomputes",
     .off = OFF(swap_space)},
    {.name = "--arrival", .cmds = REAL, .kind = KVB_FLAG_STRING, .def = "poisson", .meta = "NAME",
     .help = "poisson (at --rate), all (at time 0), trace (--trace's times and lengths)",
     .off = OFF(arrival)},
    {.name = "--rate", .cmds = REAL, .kind = KVB_FLAG_DOUBLE, .dlo = -1e12, .dhi = 1e12,
     .def = "4", .meta = "R", .help = "Poisson arrivals per simulated second, above 0",
     .off = OFF(rate)},
    {.name = "--rates", .cmds = REAL, .kind = KVB_FLAG_LIST, .meta = "LIST",
     .help = "several rates (instead of --rate): the same requests at each, one serve.csv row "
             "per case and rate, and plots/serve.png of throughput against p99 TPOT",
     .off = OFF(rates)},
    {.name = "--requests", .cmds = REAL, .kind = KVB_FLAG_INT, .lo = 1, .hi = 1 << 20,
     .def = "32", .meta = "N", .help = "requests (poisson, all)", .off = OFF(requests)},
    {.name = "--prompt-len", .cmds = REAL, .kind = KVB_FLAG_STRING, .def = "16:64",
     .meta = "N|A:B", .help = "each prompt's own tokens: fixed, or uniform in A..B (seeded)",
     .off = OFF(prompt_len)},
    {.name = "--output-len", .cmds = REAL, .kind = KVB_FLAG_STRING, .def = "16:64",
     .meta = "N|A:B", .help = "tokens each request generates: fixed, or uniform in A..B",
     .off = OFF(output_len)},
    {.name = "--trace", .cmds = REAL, .kind = KVB_FLAG_STRING, .meta = "FILE",
     .help = "--arrival trace's requests: CSV lines arrival_s,prompt,output (a header line "
             "'arrival_s,...' and # comments are skipped)",
     .off = OFF(trace)},
    {.name = "--max-len", .cmds = REAL, .kind = KVB_FLAG_INT, .lo = 0, .hi = 1 << 20,
     .def = "0", .def_help = "the longest request's prompt + output", .meta = "N",
     .help = "positions a sequence may hold, as a server's max model length: contiguous "
             "prealloc reserves N per sequence (vLLM's comparison reserved the maximum)",
     .off = OFF(max_len)},
    {.name = "--shared-prefix", .cmds = REAL, .kind = KVB_FLAG_INT, .lo = 0, .hi = 1 << 20,
     .def = "0", .meta = "N",
     .help = "every prompt starts with the same N seeded tokens (a system prompt)",
     .off = OFF(shared_prefix)},
    {.name = "--prefix-cache", .cmds = REAL, .kind = KVB_FLAG_STRING, .def = "off",
     .meta = "on|off",
     .help = "on: the shared prefix's whole blocks are prefilled once and forked (paged shares "
             "the blocks, contiguous copies them)",
     .off = OFF(prefix_cache)},
    {.name = "--max-batch", .cmds = REAL, .kind = KVB_FLAG_INT, .lo = 1, .hi = 4096, .def = "64",
     .meta = "N", .help = "running requests at most (and the model's max-seq at most)",
     .off = OFF(max_batch)},
    {.name = "--threads", .cmds = REAL, .kind = KVB_FLAG_INT, .lo = 1, .hi = 1024, .def = "1",
     .meta = "N", .help = "threads of the model's pool (matvec rows, sgemm tiles, attention heads)",
     .off = OFF(threads)},
    {.name = "--out", .cmds = REAL, .kind = KVB_FLAG_STRING, .def_help = "results/<UTC>-serve",
     .meta = "DIR",
     .help = "result directory, must not exist: serve.csv, requests.csv, steps.csv, report.md, "
             "plots/",
     .off = OFF(out)},
    {.name = "--quiet", .cmds = REAL, .kind = KVB_FLAG_SWITCH,
     .help = "no progress lines on stderr", .off = OFF(quiet)},
    {.name = "--dry-run", .cmds = REAL, .kind = KVB_FLAG_SWITCH,
     .help = "check every flag, case and the budget, build no model, measure nothing",
     .off = OFF(dry_run)},

    /* tokenize */
    {.name = "--tokenizer", .cmds = TOKENIZE, .kind = KVB_FLAG_STRING, .meta = "PATH",
     .help = "the vocab (required): a GGUF file, a tokenizer.json or a Hugging Face model "
             "directory holding one, or a llama2.c tokenizer.bin (with --vocab)",
     .off = OFF(tokenizer)},
    {.name = "--text", .cmds = TOKENIZE, .kind = KVB_FLAG_TEXT, .meta = "TEXT",
     .help = "the text to encode (or give it as the argument)", .off = OFF(text)},
    {.name = "--vocab", .cmds = TOKENIZE, .kind = KVB_FLAG_INT, .lo = 1, .hi = 1 << 24,
     .def_help = "whatever the file holds", .meta = "N",
     .help = "the model's vocab size, which the file must hold (a tokenizer.bin needs it)",
     .off = OFF(vocab)},
    {.name = "--no-bos", .cmds = TOKENIZE, .kind = KVB_FLAG_SWITCH,
     .help = "no BOS first (else as the file says)", .off = OFF(no_bos)},
    {.name = NULL},
};
/* clang-format on */
