/* tok_encode.c: encoding (tokenizer.h): one merge engine for both kinds over
 * a doubly linked list of symbols and a heap of candidate pairs, as
 * llama.cpp's tokenizers: O(n log n) in the text's length, so a whole corpus
 * for perplexity encodes in one call. A candidate records both sides' lengths
 * when it was pushed; a side that grew or died since makes it stale (symbols
 * only grow, and are named by where they start, so equal lengths mean equal
 * text). */
#include "tok_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sym {
    int      prev, next;   /* neighbours in the list; -1 at the ends */
    uint32_t start, len;   /* its bytes in the text; len 0: merged into its left */
    int      id;           /* its token, -1 (spm: a character that is no piece) */
} sym;

typedef struct cand {
    double   pri;          /* higher first: spm the piece's score, bpe minus the rank */
    int      left, right;  /* symbol indices */
    uint32_t llen, rlen;   /* their lengths when pushed */
    int      id;           /* the merged token */
} cand;

typedef struct heap {
    cand *a;               /* [3 * symbols]: n - 1 pairs, then at most 2 per merge */
    int   n;
} heap;

/* ties go to the leftmost pair */
static int before(const cand *x, const cand *y)
{
    return x->pri > y->pri || (x->pri == y->pri && x->left < y->left);
}

static void push(heap *h, cand c)
{
    int i = h->n++;
    while (i > 0 && before(&c, &h->a[(i - 1) / 2])) {
        h->a[i] = h->a[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->a[i] = c;
}

static cand pop(heap *h)
{
    cand top = h->a[0], last = h->a[--h->n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && before(&h->a[c + 1], &h->a[c])) c++;
        if (!before(&h->a[c], &last)) break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (h->n) h->a[i] = last;
    return top;
}

/* bpe: the merge of tokens a and b: its rank and result; 0 when none */
static int merge_find(const kvb_tokenizer *t, int a, int b, int32_t *rank, int32_t *res)
{
    if (!t->mkey || a < 0 || b < 0) return 0;
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    uint64_t k = key ^ key >> 33;
    k *= 0xff51afd7ed558ccdull;
    uint32_t mask = t->mcap - 1;
    for (uint32_t i = (uint32_t)(k ^ k >> 33) & mask;; i = (i + 1) & mask) {
        if (t->mkey[i] == UINT64_MAX) return 0;
        if (t->mkey[i] == key) {
            *rank = t->mrank[i];
            *res = t->mres[i];
            return 1;
        }
    }
}

/* the pair starting at symbol l, when it can merge */
static void try_pair(const kvb_tokenizer *t, const char *text, const sym *s, int l, heap *h)
{
    int r = s[l].next;
    if (r < 0) return;
    cand c = {.left = l, .right = r, .llen = s[l].len, .rlen = s[r].len};
    if (t->kind == KVB_TOK_KIND_SPM) {
        c.id = kvb_tok_find(t, text + s[l].start, (size_t)s[l].len + s[r].len);
        if (c.id < 0) return;
        c.pri = t->score[c.id];
    } else {
        int32_t rank, res;
        if (!merge_find(t, s[l].id, s[r].id, &rank, &res)) return;
        c.pri = -(double)rank;
        c.id = res;
    }
    push(h, c);
}

/* merges s[0..n) (a list in index order) until no pair can */
static void merge_all(const kvb_tokenizer *t, const char *text, sym *s, int n, heap *h)
{
    h->n = 0;
    for (int i = 0; i + 1 < n; i++) try_pair(t, text, s, i, h);
    while (h->n) {
        cand c = pop(h);
        sym *l = &s[c.left], *r = &s[c.right];
        if (l->next != c.right || l->len != c.llen || r->len != c.rlen) continue;
        l->len += r->len;
        l->id = c.id;
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = c.left;
        r->len = 0;
        if (l->prev >= 0) try_pair(t, text, s, l->prev, h);
        try_pair(t, text, s, c.left, h);
    }
}

static void emit(int *ids, int cap, int *count, int id)
{
    if (*count < cap) ids[*count] = id;
    (*count)++;
}

kvb_status kvb_tok_encode_spm(const kvb_tokenizer *t, const char *text, size_t n, int *ids,
                              int cap, int *count, char *msg, size_t msg_len)
{
    if (n == 0) return KVB_STATUS_OK;
    /* [m] the normalized text: a leading space, then every ' ' as U+2581 */
    char *norm = malloc(3 * n + 3);
    size_t m = 0;
    sym *s = malloc((3 * n + 3) * sizeof *s);
    heap h = {malloc((9 * n + 9) * sizeof *h.a), 0};
    kvb_status st = KVB_STATUS_OK;
    if (!norm || !s || !h.a) {
        snprintf(msg, msg_len, "no memory to encode %zu bytes", n);
        st = KVB_STATUS_NO_MEMORY;
        goto done;
    }
    static const char space[] = "\xe2\x96\x81";   /* U+2581 */
    if (t->add_space) {
        memcpy(norm, space, 3);
        m = 3;
    }
    for (size_t i = 0; i < n; i++) {
        if (text[i] == ' ') {
            memcpy(norm + m, space, 3);
            m += 3;
        } else {
            norm[m++] = text[i];
        }
    }
    int ns = 0;
    for (size_t i = 0; i < m;) {
        int l;
        kvb_utf8_get((const unsigned char *)norm + i, m - i, &l);
        s[ns] = (sym){ns - 1, ns + 1, (uint32_t)i, (uint32_t)l,
                      kvb_tok_find(t, norm + i, (size_t)l)};
        ns++;
        i += (size_t)l;
    }
    s[ns - 1].next = -1;
    merge_all(t, norm, s, ns, &h);
    for (int k = 0; k >= 0; k = s[k].next) {
        if (s[k].id >= 0) {
            emit(ids, cap, count, s[k].id);
            continue;
        }
        /* byte fallback: every byte has a token, or the character is one unk */
        const unsigned char *c = (const unsigned char *)norm + s[k].start;
        uint32_t b = 0;
        while (b < s[k].len && t->byte_id[c[b]] >= 0) b++;
        if (b == s[k].len) {
            for (b = 0; b < s[k].len; b++) emit(ids, cap, count, t->byte_id[c[b]]);
        } else if (t->unk >= 0) {
            emit(ids, cap, count, t->unk);
        } else {
            snprintf(msg, msg_len, "the character at normalized byte %u (first byte 0x%02X) "
                     "has no piece, no byte token and the vocab has no unk", s[k].start, c[0]);
            st = KVB_STATUS_INVALID_ARG;
            goto done;
        }
    }
done:
    free(norm);
    free(s);
    free(h.a);
    return st;
}

kvb_status kvb_tok_encode_bpe(const kvb_tokenizer *t, const char *text, size_t n, int *ids,
                              int cap, int *count, char *msg, size_t msg_len)
{
    if (n == 0) return KVB_STATUS_OK;
    uint32_t *cp = malloc(n * sizeof *cp);       /* [ncp] code points */
    size_t *off = malloc((n + 1) * sizeof *off); /* [ncp + 1] where each starts in text */
    int *end = malloc(n * sizeof *end);          /* [chunks] kvb_bpe_split's */
    char *mapped = malloc(2 * n);                /* [<= 2 x chunk bytes] a chunk's mapped chars */
    sym *s = malloc(n * sizeof *s);              /* [chunk bytes] */
    heap h = {malloc(3 * n * sizeof *h.a), 0};
    kvb_status st = KVB_STATUS_OK;
    if (!cp || !off || !end || !mapped || !s || !h.a) {
        snprintf(msg, msg_len, "no memory to encode %zu bytes", n);
        st = KVB_STATUS_NO_MEMORY;
        goto done;
    }
    int ncp = 0;
    for (size_t i = 0; i < n;) {
        int l;
        off[ncp] = i;
        cp[ncp++] = kvb_utf8_get((const unsigned char *)text + i, n - i, &l);
        i += (size_t)l;
    }
    off[ncp] = n;
    int nch = kvb_bpe_split(cp, ncp, end);
    for (int k = 0, a = 0; k < nch; a = end[k++]) {
        int ns = 0;
        size_t m = 0;
        for (size_t i = off[a]; i < off[end[k]]; i++) {
            unsigned char b = (unsigned char)text[i];
            int l = kvb_utf8_put(kvb_bpe_byte_cp(b), mapped + m);
            s[ns] = (sym){ns - 1, ns + 1, (uint32_t)m, (uint32_t)l, t->byte_id[b]};
            ns++;
            m += (size_t)l;
        }
        s[ns - 1].next = -1;
        int whole = t->ignore_merges ? kvb_tok_find(t, mapped, m) : -1;
        if (whole >= 0) {
            emit(ids, cap, count, whole);
            continue;
        }
        merge_all(t, mapped, s, ns, &h);
        for (int i = 0; i >= 0; i = s[i].next) emit(ids, cap, count, s[i].id);
    }
done:
    free(cp);
    free(off);
    free(end);
    free(mapped);
    free(s);
    free(h.a);
    return st;
}

kvb_status kvb_tokenizer_encode(const kvb_tokenizer *t, const char *text, size_t n, int add_bos,
                                int *ids, int cap, int *n_ids, char *msg, size_t msg_len)
{
    int count = 0;
    if (n_ids) *n_ids = 0;
    if (!t || !n_ids || (!text && n) || cap < 0 || (!ids && cap) || add_bos < -1 || add_bos > 1) {
        snprintf(msg, msg_len, "encode: a NULL tokenizer, text, ids or count, cap < 0 (%d) or "
                 "add_bos outside -1..1 (%d)", cap, add_bos);
        return KVB_STATUS_INVALID_ARG;
    }
    if (n > (size_t)(INT_MAX / 9 - 8)) {
        snprintf(msg, msg_len, "encode: text of %zu bytes: at most %d in one call", n,
                 INT_MAX / 9 - 8);
        return KVB_STATUS_INVALID_ARG;
    }
    if (add_bos < 0) add_bos = t->add_bos;
    if (add_bos && t->bos < 0) {
        snprintf(msg, msg_len, "encode: add_bos asked, but this vocab has no BOS token");
        return KVB_STATUS_INVALID_ARG;
    }
    if (add_bos) emit(ids, cap, &count, t->bos);
    kvb_status st = t->kind == KVB_TOK_KIND_SPM
                        ? kvb_tok_encode_spm(t, text, n, ids, cap, &count, msg, msg_len)
                        : kvb_tok_encode_bpe(t, text, n, ids, cap, &count, msg, msg_len);
    if (st != KVB_STATUS_OK) return st;
    *n_ids = count;
    if (count > cap) {
        snprintf(msg, msg_len, "encode: %d ids, room for %d", count, cap);
        return KVB_STATUS_FULL;
    }
    return KVB_STATUS_OK;
}

kvb_status kvb_tokenizer_encode_alloc(const kvb_tokenizer *t, const char *text, size_t n,
                                      int add_bos, int **ids, int *n_ids, char *msg,
                                      size_t msg_len)
{
    *ids = NULL;
    if (n > (size_t)(INT_MAX / 9 - 8))
        return kvb_tokenizer_encode(t, text, n, add_bos, NULL, 0, n_ids, msg, msg_len);
    /* n + 2 holds every bpe encoding and nearly every spm one; an spm vocab
     * without U+2581 spends three byte tokens on a space: then once more at
     * the count the first call found (at most 3 n + 4, under INT_MAX here) */
    int cap = (int)n + 2;
    kvb_status st = KVB_STATUS_FULL;
    int *p = NULL;
    for (int pass = 0; pass < 2 && st == KVB_STATUS_FULL; pass++) {
        if (pass) cap = *n_ids;
        free(p);
        p = malloc((size_t)cap * sizeof *p);
        if (!p) {
            snprintf(msg, msg_len, "no memory for %d ids", cap);
            return KVB_STATUS_NO_MEMORY;
        }
        st = kvb_tokenizer_encode(t, text, n, add_bos, p, cap, n_ids, msg, msg_len);
    }
    if (st != KVB_STATUS_OK) free(p);
    else *ids = p;
    return st;
}
