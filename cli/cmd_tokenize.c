/* cmd_tokenize.c: kvbench tokenize: text to token ids with a model's own
 * vocab (model/tokenizer.h), printed as the ids, their count and one line per
 * token (id, the vocab's piece, the bytes it decodes to). Bytes that are not
 * printable UTF-8 are shown as \xNN, so every line is one line. */
#define _XOPEN_SOURCE 700
#include "cli.h"
#include "opts.h"
#include "../model/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the text as the one argument (or --text) */
static int tokenize_text(void *opts, const char *arg)
{
    kvb_opts *o = opts;
    if (o->text) return kvb_usage_error("tokenize takes one text, got a second: '%s'", arg);
    o->text = arg;
    return 0;
}

const kvb_cmd_spec kvb_tokenize_spec = {
    .usage = "--tokenizer PATH [flags] [TEXT]",
    .intro = "Encodes TEXT (or --text) with the vocab in PATH: SentencePiece BPE (Llama 2,\n"
             "Mistral: a GGUF of tokenizer.ggml.model llama, a llama2.c tokenizer.bin, or a\n"
             "tokenizer.json with byte_fallback) or byte-level BPE (Llama 3, GPT-2: a GGUF of\n"
             "gpt2, or a tokenizer.json). Special tokens written in the text are encoded as\n"
             "text.",
    .epilogue = "Prints the ids, their count, and per token its id, piece and decoded bytes.\n"
                "Exit status: 0 encoded; 1 the file could not be read; 2 a flag, the file or\n"
                "the text refused.",
    .flags = kvb_opts_flags,
    .positional = tokenize_text,
};

/* p[0..n) quoted: printable ASCII and valid multi-byte UTF-8 as they are */
static void put_quoted(const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    putchar('"');
    for (size_t i = 0; i < n;) {
        size_t k = s[i] >= 0xc2 && s[i] <= 0xdf ? 2 : s[i] >= 0xe0 && s[i] <= 0xef ? 3
                 : s[i] >= 0xf0 && s[i] <= 0xf4 ? 4 : 1;
        int ok = k > 1 && i + k <= n;
        for (size_t j = 1; ok && j < k; j++) ok = (s[i + j] & 0xc0) == 0x80;
        if (ok) {
            fwrite(s + i, 1, k, stdout);
            i += k;
            continue;
        }
        if (s[i] == '"' || s[i] == '\\') printf("\\%c", s[i]);
        else if (s[i] == '\n') fputs("\\n", stdout);
        else if (s[i] >= 0x20 && s[i] < 0x7f) putchar(s[i]);
        else printf("\\x%02X", s[i]);
        i++;
    }
    putchar('"');
}

int kvb_cmd_tokenize(const kvb_cli *cli, const kvb_command *self, int argc, char **argv)
{
    kvb_opts o;
    int r = kvb_opts_parse(cli, self, argc, argv, &o);
    if (r) return r < 0 ? 0 : r;
    if (!o.tokenizer) return kvb_usage_error("tokenize needs --tokenizer PATH");
    if (!o.text) return kvb_usage_error("tokenize needs the text: as the argument or --text");
    kvb_tokenizer *t;
    char msg[1024];
    kvb_status st = kvb_tokenizer_open(&t, o.tokenizer, o.vocab, msg, sizeof msg);
    if (st != KVB_STATUS_OK) {
        fprintf(stderr, "kvbench: %s\n", msg);
        return st == KVB_STATUS_IO || st == KVB_STATUS_NO_MEMORY ? KVB_EXIT_FAIL : KVB_EXIT_USAGE;
    }
    int *ids = NULL, n = 0;
    st = kvb_tokenizer_encode_alloc(t, o.text, strlen(o.text), o.no_bos ? 0 : -1, &ids, &n, msg,
                                    sizeof msg);
    if (st != KVB_STATUS_OK) {
        fprintf(stderr, "kvbench: --text: %s\n", msg);
        kvb_tokenizer_free(t);
        return st == KVB_STATUS_NO_MEMORY ? KVB_EXIT_FAIL : KVB_EXIT_USAGE;
    }
    printf("tokenizer: %s (%s, %d tokens, bos %d, eos %d)\nids:", o.tokenizer,
           kvb_tokenizer_kind_name(t), kvb_tokenizer_vocab_size(t), kvb_tokenizer_bos(t),
           kvb_tokenizer_eos(t));
    for (int i = 0; i < n; i++) printf(" %d", ids[i]);
    printf("\ncount: %d\n", n);
    for (int i = 0; i < n; i++) {
        size_t pl, dl;
        const char *piece = kvb_tokenizer_piece(t, ids[i], &pl);
        const char *dec = kvb_tokenizer_decode(t, ids[i], &dl);
        printf("%6d %8d  ", i, ids[i]);
        put_quoted(piece, pl);
        fputs("  ", stdout);
        put_quoted(dec, dl);
        putchar('\n');
    }
    free(ids);
    kvb_tokenizer_free(t);
    return 0;
}
