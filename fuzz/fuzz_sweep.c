/* fuzz_sweep.c: the sweep definition parser on any bytes, three ways:
 *   - the input as a .sweep file (kvb_sweep_load), then kvb_sweep_expand on
 *     whatever keys it accepted (every accepted key was checked, so expand
 *     must cope), then the save/load round trip kvbench sweep --resume relies
 *     on (sweep.def is written by kvb_sweep_save and read back by load);
 *   - the input up to its first NUL as one --set argument (kvb_sweep_set),
 *     expanded the same way.
 * Beyond not crashing: a refusal names its reason, and a point's argv stays
 * inside its own buffer and is NULL-terminated. */
#include "fuzz_util.h"
#include "../harness/sweep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void check_msg(const char *what, kvb_status st, const char *msg, size_t n)
{
    KVB_FUZZ_CHECK(msg[0] && memchr(msg, 0, n), "%s refused (status %d) without a message", what,
                   (int)st);
}

static void expand(const kvb_sweep *s, const char *out_dir)
{
    kvb_sweep_point *pts = NULL;
    char msg[1024] = "";
    int n = kvb_sweep_expand(s, out_dir, &pts, msg, sizeof msg);
    if (n < 0) {
        check_msg("kvb_sweep_expand", KVB_STATUS_INVALID_ARG, msg, sizeof msg);
        KVB_FUZZ_CHECK(pts == NULL, "failed expand handed back points");
        return;
    }
    for (int i = 0; i < n; i++) {
        const kvb_sweep_point *p = &pts[i];
        KVB_FUZZ_CHECK(p->id[0] && memchr(p->id, 0, sizeof p->id), "point %d has no id", i);
        KVB_FUZZ_CHECK(p->argc > 0 && p->argc < KVB_SWEEP_MAX_ARGS && p->argv[p->argc] == NULL,
                       "point %s: argc %d", p->id, p->argc);
        for (int a = 0; a < p->argc; a++)
            KVB_FUZZ_CHECK(p->argv[a] >= p->buf && p->argv[a] < p->buf + sizeof p->buf &&
                               memchr(p->argv[a], 0, (size_t)(p->buf + sizeof p->buf - p->argv[a])),
                           "point %s: argv[%d] outside its buffer", p->id, a);
    }
    free(pts);
}

/* What --resume reads back is what ran. */
static void round_trip(const kvb_sweep *s, const char *dir)
{
    char path[1200], msg[1024] = "";
    snprintf(path, sizeof path, "%s/sweep.def", dir);
    kvb_status st = kvb_sweep_save(s, path, msg, sizeof msg);
    KVB_FUZZ_CHECK(st == KVB_STATUS_OK, "save failed: %s", msg);
    kvb_sweep *back = calloc(1, sizeof *back);
    KVB_FUZZ_CHECK(back != NULL, "out of memory");
    st = kvb_sweep_load(back, path, msg, sizeof msg);
    KVB_FUZZ_CHECK(st == KVB_STATUS_OK, "a saved definition does not load back: %s", msg);
    KVB_FUZZ_CHECK(back->n == s->n, "%d keys saved, %d loaded back", s->n, back->n);
    for (int i = 0; i < s->n; i++)
        KVB_FUZZ_CHECK(!strcmp(back->key[i], s->key[i]) && !strcmp(back->val[i], s->val[i]),
                       "saved %s=%s, loaded back %s=%s", s->key[i], s->val[i], back->key[i],
                       back->val[i]);
    free(back);
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *dir = kvb_fuzz_dir();
    char path[1200], out_dir[1200], msg[1024];
    snprintf(path, sizeof path, "%s/fuzz.sweep", dir);
    snprintf(out_dir, sizeof out_dir, "%s/out", dir);
    kvb_fuzz_write(path, data, size);

    kvb_sweep *s = calloc(1, sizeof *s);
    KVB_FUZZ_CHECK(s != NULL, "out of memory");
    msg[0] = 0;
    kvb_status st = kvb_sweep_load(s, path, msg, sizeof msg);
    if (st != KVB_STATUS_OK) check_msg("kvb_sweep_load", st, msg, sizeof msg);
    KVB_FUZZ_CHECK(s->n >= 0 && s->n <= KVB_SWEEP_MAX_KEYS, "%d keys", s->n);
    if (s->n > 0) expand(s, out_dir);
    if (st == KVB_STATUS_OK) round_trip(s, dir);
    unlink(path);

    /* the whole input as one --set argument */
    char *arg = malloc(size + 1);
    KVB_FUZZ_CHECK(arg != NULL, "out of memory");
    memcpy(arg, data, size);
    arg[size] = 0;
    memset(s, 0, sizeof *s);
    msg[0] = 0;
    st = kvb_sweep_set(s, arg, msg, sizeof msg);
    if (st != KVB_STATUS_OK) check_msg("kvb_sweep_set", st, msg, sizeof msg);
    else {
        KVB_FUZZ_CHECK(s->n == 1, "one assignment set %d keys", s->n);
        expand(s, out_dir);
        round_trip(s, dir);
    }
    free(arg);
    free(s);
    return 0;
}
