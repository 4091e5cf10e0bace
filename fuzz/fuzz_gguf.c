/* fuzz_gguf.c: the GGUF reader, kvb_gguf_parse and kvb_gguf_llama_config
 * (model/gguf.h), on any bytes, and kvb_gguf_open on the same bytes as a file.
 * Beyond not crashing: a refusal names its reason and keeps nothing; what is
 * accepted is consistent: every tensor's bytes follow from its type and dims
 * and lie inside the input at an aligned offset, no two share a byte, every
 * name finds its own tensor, the first row of a tensor of a type the decoder
 * reads dequantizes (kvb_wrow_to_f32, inside the tensor's bytes), and a llama
 * config that is read passes the model's own shape check. */
#include "fuzz_util.h"
#include "../model/gguf.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void check_parsed(const kvb_gguf *g, const uint8_t *data, size_t size)
{
    KVB_FUZZ_CHECK(g->alignment && !(g->alignment & (g->alignment - 1)),
                   "alignment %llu", (unsigned long long)g->alignment);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const kvb_gguf_tensor *t = &g->t[i];
        uint64_t n = t->dims[0] * t->dims[1] * t->dims[2] * t->dims[3];
        KVB_FUZZ_CHECK(t->n_dims >= 1 && t->n_dims <= 4, "n_dims %d", t->n_dims);
        KVB_FUZZ_CHECK(t->bytes && t->bytes == kvb_gguf_type_size(t->type, n),
                       "tensor %llu: %llu bytes for %llu elements of type %u",
                       (unsigned long long)i, (unsigned long long)t->bytes,
                       (unsigned long long)n, t->type);
        KVB_FUZZ_CHECK(t->data >= data && t->data + t->bytes <= data + size,
                       "tensor %llu lies outside the input", (unsigned long long)i);
        KVB_FUZZ_CHECK(t->offset % g->alignment == 0, "tensor %llu unaligned",
                       (unsigned long long)i);
        for (uint64_t j = 0; j < i && g->n_tensors <= 256; j++)
            KVB_FUZZ_CHECK(t->offset + t->bytes <= g->t[j].offset ||
                               g->t[j].offset + g->t[j].bytes <= t->offset,
                           "tensors %llu and %llu overlap", (unsigned long long)i,
                           (unsigned long long)j);
        /* the weight types the decoder reads dequantize whatever bytes they hold */
        for (int w = 0; w < KVB_WTYPE_COUNT && t->dims[0] <= 4096; w++)
            if (kvb_wtype_traits_of((kvb_wtype)w)->ggml == t->type) {
                float row[4096];   /* [dims[0]] the tensor's first row */
                kvb_wrow_to_f32((kvb_wtype)w, t->data, row, (int)t->dims[0]);
            }
        char name[256];
        if (t->name.n < sizeof name && !memchr(t->name.p, 0, (size_t)t->name.n)) {
            memcpy(name, t->name.p, (size_t)t->name.n);
            name[t->name.n] = 0;
            KVB_FUZZ_CHECK(kvb_gguf_find_tensor(g, name) == t, "name %s finds another", name);
        }
    }
    kvb_model_config c;
    kvb_gguf_llama_extra x;
    char msg[512] = "";
    if (kvb_gguf_llama_config(g, &c, &x, msg, sizeof msg) == KVB_STATUS_OK) {
        /* the shape's check: the limit on f32 weights is not the reader's (gguf.h) */
        kvb_model_config shape = c;
        shape.hidden_dim = shape.n_layers = shape.vocab_size = 1;
        KVB_FUZZ_CHECK(kvb_model_config_check(&shape, msg, sizeof msg) == KVB_STATUS_OK &&
                           c.hidden_dim >= 1 && c.n_layers >= 1 && c.vocab_size >= 1,
                       "read a config its own check refuses: %s", msg);
    } else
        KVB_FUZZ_CHECK(msg[0] && memchr(msg, 0, sizeof msg), "llama config refused silently");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kvb_gguf g;
    char msg[512] = "";
    kvb_status st = kvb_gguf_parse(&g, data, size, msg, sizeof msg);
    if (st == KVB_STATUS_OK) {
        check_parsed(&g, data, size);
        kvb_gguf_close(&g);
    } else {
        KVB_FUZZ_CHECK(msg[0] && memchr(msg, 0, sizeof msg),
                       "refused (status %d) without a message", (int)st);
        KVB_FUZZ_CHECK(!g.kv && !g.t, "refused (status %d) but kept its tables", (int)st);
    }
    /* the same bytes through the file path: the map agrees with the buffer */
    char path[1200];
    snprintf(path, sizeof path, "%s/model.gguf", kvb_fuzz_dir());
    kvb_fuzz_write(path, data, size);
    kvb_status fst = kvb_gguf_open(&g, path, msg, sizeof msg);
    KVB_FUZZ_CHECK(fst == st || (size < 24 && st != KVB_STATUS_OK && fst != KVB_STATUS_OK),
                   "the file gives status %d, the buffer %d", (int)fst, (int)st);
    if (fst == KVB_STATUS_OK) kvb_gguf_close(&g);
    unlink(path);
    return 0;
}
