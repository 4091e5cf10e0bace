/* fuzz_checkpoint.c: the llama2.c checkpoint reader, kvb_model_load, on any
 * bytes. Beyond not crashing: a refusal names its reason, and a load never
 * holds more weights than the file had bytes for (a header declaring a huge
 * model must be refused, not allocated: the file length is what bounds it),
 * and what loads saves back (kvbench export's writer) as a checkpoint that
 * loads to the same model. */
#include "fuzz_util.h"
#include "../model/model.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[1200], msg[512];
    snprintf(path, sizeof path, "%s/checkpoint.bin", kvb_fuzz_dir());
    kvb_fuzz_write(path, data, size);
    kvb_model m;
    msg[0] = 0;
    kvb_status st = kvb_model_load(&m, path, 0, msg, sizeof msg);
    if (st == KVB_STATUS_OK) {
        KVB_FUZZ_CHECK(m.mem && m.weight_bytes + 28 <= size,
                       "%llu bytes of weights loaded from a %zu-byte file",
                       (unsigned long long)m.weight_bytes, size);
        KVB_FUZZ_CHECK(kvb_model_config_check(&m.cfg, msg, sizeof msg) == KVB_STATUS_OK,
                       "loaded a config its own check refuses: %s", msg);
        KVB_FUZZ_CHECK(m.weight_bytes == 4 * (uint64_t)kvb_model_param_count(&m.cfg),
                       "weight_bytes %llu vs %zu parameters", (unsigned long long)m.weight_bytes,
                       kvb_model_param_count(&m.cfg));
        char again[1200];
        snprintf(again, sizeof again, "%s/saved.bin", kvb_fuzz_dir());
        KVB_FUZZ_CHECK(kvb_model_save(&m, again, msg, sizeof msg) == KVB_STATUS_OK,
                       "a loaded model does not save: %s", msg);
        kvb_model back;
        KVB_FUZZ_CHECK(kvb_model_load(&back, again, 0, msg, sizeof msg) == KVB_STATUS_OK,
                       "a saved model does not load back: %s", msg);
        KVB_FUZZ_CHECK(!memcmp(&back.cfg, &m.cfg, sizeof m.cfg) && back.mem_bytes == m.mem_bytes &&
                           !memcmp(back.mem, m.mem, m.mem_bytes),
                       "the saved model loads back different");
        kvb_model_free(&back);
        unlink(again);
        kvb_model_free(&m);
    } else {
        KVB_FUZZ_CHECK(msg[0] && memchr(msg, 0, sizeof msg),
                       "refused (status %d) without a message", (int)st);
        KVB_FUZZ_CHECK(m.mem == NULL, "refused (status %d) but kept weights", (int)st);
    }
    unlink(path);
    return 0;
}
