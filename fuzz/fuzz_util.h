/* fuzz_util.h: what the fuzz targets share. Each target is one function,
 * LLVMFuzzerTestOneInput, linked either with libFuzzer (clang, make fuzz) or
 * with replay.c (the normal compiler, make fuzz-replay). The APIs under test
 * take paths, so a target writes its input as files under one per-process
 * temporary directory (made on first use, removed at exit) and removes them
 * again before it returns: a long run leaves nothing behind. */
#ifndef KVB_FUZZ_UTIL_H
#define KVB_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The per-process directory, ${TMPDIR:-/tmp}/kvb-fuzz-XXXXXX; aborts when it
 * cannot be made (a fuzz run without it would test nothing). */
const char *kvb_fuzz_dir(void);

/* Writes n bytes to path, making its parent directories; aborts on failure. */
void kvb_fuzz_write(const char *path, const void *data, size_t n);

/* Removes path and everything under it (nothing when it does not exist). */
void kvb_fuzz_rmtree(const char *path);

/* An invariant of the API under test: prints what broke and aborts, which
 * libFuzzer records as a finding and the replay as a failure. */
#define KVB_FUZZ_CHECK(cond, ...) \
    do { if (!(cond)) kvb_fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); } while (0)
_Noreturn void kvb_fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
