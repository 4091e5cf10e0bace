/* fuzz_safetensors.c: the safetensors reader, kvb_st_parse (model/safetensors.h),
 * on any bytes, then kvb_st_open on the same bytes as a file and
 * kvb_st_set_open on a directory holding it as model.safetensors.
 * Beyond not crashing: a refusal names its reason and keeps nothing; what is
 * accepted is consistent: every tensor's bytes follow from its dtype and shape
 * and lie inside the data section, aligned to the element size, no two
 * overlap, and every name finds its own tensor; the file, the directory and
 * the buffer agree. */
#include "fuzz_util.h"
#include "../model/safetensors.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void check_parsed(const kvb_st_file *f, const uint8_t *data, size_t size)
{
    KVB_FUZZ_CHECK(f->data_off >= 10 && f->data_off <= size, "data section at %llu of %zu",
                   (unsigned long long)f->data_off, size);
    for (int i = 0; i < f->n_tensors; i++) {
        const kvb_st_tensor *t = &f->t[i];
        uint64_t n = 1;
        for (int d = 0; d < t->n_dims; d++) n *= t->dims[d];
        size_t es = kvb_wtype_row_bytes(t->type, 1);
        KVB_FUZZ_CHECK(es && t->end - t->begin == n * es, "tensor %d: %llu bytes for %llu "
                       "elements of %zu", i, (unsigned long long)(t->end - t->begin),
                       (unsigned long long)n, es);
        KVB_FUZZ_CHECK(t->data == data + f->data_off + t->begin && t->begin <= t->end &&
                           t->end <= size - f->data_off,
                       "tensor %d lies outside the data section", i);
        KVB_FUZZ_CHECK(n == 0 || (uintptr_t)t->data % es == 0, "tensor %d misaligned", i);
        KVB_FUZZ_CHECK(kvb_st_find(f, t->name) == t, "name of tensor %d finds another", i);
        for (int j = 0; j < i; j++) {
            const kvb_st_tensor *u = &f->t[j];
            int empty = t->begin == t->end || u->begin == u->end;
            KVB_FUZZ_CHECK(empty || t->end <= u->begin || u->end <= t->begin,
                           "tensors %d and %d overlap", i, j);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kvb_st_file f;
    char msg[512] = "";
    kvb_status st = kvb_st_parse(&f, data, size, msg, sizeof msg);
    int n = -1;
    if (st == KVB_STATUS_OK) {
        check_parsed(&f, data, size);
        n = f.n_tensors;
        kvb_st_close(&f);
    } else {
        KVB_FUZZ_CHECK(msg[0] && memchr(msg, 0, sizeof msg),
                       "refused (status %d) without a message", (int)st);
        KVB_FUZZ_CHECK(!f.t && !f.n_tensors, "refused (status %d) but kept its tensors", (int)st);
    }
    /* the same bytes as a file, then as a checkpoint directory's only file */
    char dir[1200], path[1300];
    snprintf(dir, sizeof dir, "%s/ckpt", kvb_fuzz_dir());
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    kvb_fuzz_write(path, data, size);
    kvb_status fst = kvb_st_open(&f, path, msg, sizeof msg);
    /* the file's map is page-aligned where the buffer may not be: alignment may differ */
    int align = strstr(msg, "misaligned") != NULL;
    KVB_FUZZ_CHECK(fst == st || align, "the file gives status %d, the buffer %d", (int)fst,
                   (int)st);
    if (fst == KVB_STATUS_OK) {
        KVB_FUZZ_CHECK(n < 0 || f.n_tensors == n, "the file has %d tensors, the buffer %d",
                       f.n_tensors, n);
        kvb_st_close(&f);
    }
    kvb_st_set s;
    kvb_status sst = kvb_st_set_open(&s, dir, msg, sizeof msg);
    KVB_FUZZ_CHECK(sst == fst, "the directory gives status %d, the file %d", (int)sst, (int)fst);
    if (sst == KVB_STATUS_OK) kvb_st_set_close(&s);
    kvb_fuzz_rmtree(dir);
    return 0;
}
