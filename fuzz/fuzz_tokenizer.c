/* fuzz_tokenizer.c: the tokenizers (model/tokenizer.h) on any vocab and any
 * text. Input: byte 0 picks the source (0 a llama2.c tokenizer.bin image,
 * its vocab size the count of whole tokens in it; 1 GGUF metadata; 2 a
 * tokenizer.json written as a file), bytes 1-2 the text's length (little
 * endian, cut to what is there), then the text, then the source's bytes.
 * Beyond not crashing: a refusal names its reason and keeps nothing; an
 * accepted vocab encodes the text three ways (BOS on, off, the file's) to ids
 * in range, at most n + 1 of them (bpe) or 3 n + 4 (spm: a space as three
 * byte tokens), the same ids into too small an array
 * (KVB_STATUS_FULL and the whole count); and byte-level BPE decodes them back
 * to the text (where no id decodes to nothing: a control token). */
#include "fuzz_util.h"
#include "../model/gguf.h"
#include "../model/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* the whole tokens in a tokenizer.bin image (at least 1, at most 1 << 16) */
static int bin_count(const uint8_t *p, size_t n)
{
    size_t at = 4;
    int k = 0;
    while (n >= at + 8 && k < (1 << 16)) {
        int32_t len;
        memcpy(&len, p + at + 4, 4);
        if (len < 0 || (size_t)len > n - at - 8) break;
        at += 8 + (size_t)len;
        k++;
    }
    return k ? k : 1;
}

static void check_encode(const kvb_tokenizer *t, const char *text, size_t n)
{
    int vocab = kvb_tokenizer_vocab_size(t);
    for (int bos = -1; bos <= 1; bos++) {
        int *ids = NULL, count = -1;
        char msg[512] = "";
        kvb_status st = kvb_tokenizer_encode_alloc(t, text, n, bos, &ids, &count, msg, sizeof msg);
        if (st != KVB_STATUS_OK) {
            KVB_FUZZ_CHECK(st == KVB_STATUS_INVALID_ARG && msg[0] && !ids,
                           "encode refused (status %d): '%s'", (int)st, msg);
            continue;
        }
        size_t most = kvb_tokenizer_kind(t) == KVB_TOK_KIND_SPM ? 3 * n + 4 : n + 1;
        KVB_FUZZ_CHECK(count >= 0 && (size_t)count <= most, "%d ids for %zu bytes (at most %zu)",
                       count, n, most);
        for (int i = 0; i < count; i++)
            KVB_FUZZ_CHECK(ids[i] >= 0 && ids[i] < vocab, "id %d of %d: %d", i, count, ids[i]);
        if (count > 0) {
            int c2 = -1;
            st = kvb_tokenizer_encode(t, text, n, bos, ids, count - 1, &c2, msg, sizeof msg);
            KVB_FUZZ_CHECK(st == KVB_STATUS_FULL && c2 == count,
                           "too small an array: status %d, %d ids (not %d)", (int)st, c2, count);
        }
        if (kvb_tokenizer_kind(t) == KVB_TOK_KIND_BPE) {
            /* decode(encode(x)) == x unless a control token stands in it */
            char *back = malloc(n + 1);
            size_t o = 0;
            int exact = back != NULL;
            int first = bos == 1 || (bos == -1 && kvb_tokenizer_add_bos(t));
            for (int i = first; exact && i < count; i++) {
                size_t l;
                const char *p = kvb_tokenizer_decode(t, ids[i], &l);
                if (l == 0 || o + l > n) {
                    exact = 0;
                    break;
                }
                memcpy(back + o, p, l);
                o += l;
            }
            if (exact)
                KVB_FUZZ_CHECK(o == n && memcmp(back, text, n) == 0,
                               "byte-level decode(encode(x)) differs (%zu bytes, %zu back)", n, o);
            free(back);
        }
        free(ids);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    int mode = data[0] % 3;
    size_t tn = (size_t)data[1] | (size_t)data[2] << 8;
    if (tn > size - 3) tn = size - 3;
    const char *text = (const char *)data + 3;
    const uint8_t *src = data + 3 + tn;
    size_t sn = size - 3 - tn;
    kvb_tokenizer *t = (kvb_tokenizer *)&mode;   /* must come back NULL on a refusal */
    char msg[512] = "";
    kvb_status st;
    if (mode == 0) {
        st = kvb_tokenizer_from_bin(&t, src, sn, bin_count(src, sn), msg, sizeof msg);
    } else if (mode == 1) {
        kvb_gguf g;
        st = kvb_gguf_parse(&g, src, sn, msg, sizeof msg);
        if (st != KVB_STATUS_OK) return 0;   /* the reader's own target covers it */
        st = kvb_tokenizer_from_gguf(&t, &g, 0, msg, sizeof msg);
        kvb_gguf_close(&g);
    } else {
        char path[1200];
        snprintf(path, sizeof path, "%s/tokenizer.json", kvb_fuzz_dir());
        kvb_fuzz_write(path, src, sn);
        st = kvb_tokenizer_open(&t, path, 0, msg, sizeof msg);
        unlink(path);
    }
    if (st != KVB_STATUS_OK) {
        KVB_FUZZ_CHECK(msg[0] && memchr(msg, 0, sizeof msg), "refused (status %d) silently",
                       (int)st);
        KVB_FUZZ_CHECK(t == NULL, "refused (status %d) but returned a tokenizer", (int)st);
        return 0;
    }
    KVB_FUZZ_CHECK(t != NULL, "accepted but returned no tokenizer");
    check_encode(t, text, tn);
    kvb_tokenizer_free(t);
    return 0;
}
