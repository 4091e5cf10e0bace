/* tok_bpe.c: byte-level BPE's pieces (tok_internal.h): GPT-2's
 * bytes_to_unicode and its inverse, strict UTF-8, the character classes of
 * Llama 3's pre-tokenizer and the pattern itself as a matcher over code
 * points (no regex library; tokenizer.h says what is exact and what is
 * approximated). */
#include "tok_internal.h"

/* ---- GPT-2's bytes_to_unicode ----------------------------------------------
 * Bytes 33..126, 161..172 and 174..255 stand for themselves; the 68 others
 * (0..32, 127..160, 173), in order, for 256..323. */

uint32_t kvb_bpe_byte_cp(int b)
{
    if (b <= 32) return 256u + (uint32_t)b;
    if (b >= 127 && b <= 160) return 256u + 33u + (uint32_t)(b - 127);
    if (b == 173) return 323;
    return (uint32_t)b;
}

int kvb_bpe_cp_byte(uint32_t cp)
{
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255))
        return (int)cp;
    if (cp >= 256 && cp <= 288) return (int)cp - 256;
    if (cp >= 289 && cp <= 322) return (int)cp - 289 + 127;
    if (cp == 323) return 173;
    return -1;
}

/* ---- UTF-8 ----------------------------------------------------------------- */

int kvb_utf8_put(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xc0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | (cp >> 18 & 0x07));
    o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

uint32_t kvb_utf8_get(const unsigned char *s, size_t n, int *len)
{
    unsigned char c = s[0];
    int k = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
          : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    *len = 1;
    if (k == 1) return c;
    if (k == 0 || (size_t)k > n) return UINT32_MAX;
    uint32_t cp = c & (0x7f >> k);
    for (int i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80) return UINT32_MAX;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    /* overlong forms, UTF-16 surrogates and past U+10FFFF are not UTF-8 */
    if ((k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return UINT32_MAX;
    *len = k;
    return cp;
}

/* ---- character classes ----------------------------------------------------- */

enum { CL_OTHER, CL_LETTER, CL_NUMBER, CL_SPACE };

typedef struct range { uint32_t lo, hi; } range;

/* \p{L} beyond ASCII, approximated by script blocks (sorted) */
static const range letters[] = {
    {0x00aa, 0x00aa}, {0x00b5, 0x00b5}, {0x00ba, 0x00ba}, {0x00c0, 0x00d6}, {0x00d8, 0x00f6},
    {0x00f8, 0x02c1}, {0x02c6, 0x02d1}, {0x02e0, 0x02e4}, {0x02ec, 0x02ec}, {0x02ee, 0x02ee},
    {0x0370, 0x0374}, {0x0376, 0x0377}, {0x037a, 0x037d}, {0x037f, 0x037f}, {0x0386, 0x0386},
    {0x0388, 0x03f5}, {0x03f7, 0x0481}, {0x048a, 0x052f}, {0x0531, 0x0556}, {0x0560, 0x0588},
    {0x05d0, 0x05ea}, {0x0620, 0x064a}, {0x0671, 0x06d3}, {0x0904, 0x0939}, {0x0e01, 0x0e30},
    {0x10a0, 0x10ff}, {0x1100, 0x11ff}, {0x1e00, 0x1fbc}, {0x3041, 0x3096}, {0x30a1, 0x30fa},
    {0x3400, 0x4dbf}, {0x4e00, 0x9fff}, {0xac00, 0xd7a3}, {0xf900, 0xfaff}, {0xff21, 0xff3a},
    {0xff41, 0xff5a}, {0x20000, 0x2ffff},
};

/* \p{N} beyond ASCII: digits of those scripts, super/subscripts, fractions,
 * Roman, circled and ideographic numerals */
static const range numbers[] = {
    {0x00b2, 0x00b3}, {0x00b9, 0x00b9}, {0x00bc, 0x00be}, {0x0660, 0x0669}, {0x06f0, 0x06f9},
    {0x0966, 0x096f}, {0x0e50, 0x0e59}, {0x2070, 0x2070}, {0x2074, 0x2079}, {0x2080, 0x2089},
    {0x2150, 0x2189}, {0x2460, 0x249b}, {0x24ea, 0x24ff}, {0x2776, 0x2793}, {0x3007, 0x3007},
    {0x3021, 0x3029}, {0xff10, 0xff19},
};

/* \s: Unicode White_Space, exactly */
static const range spaces[] = {
    {0x0009, 0x000d}, {0x0020, 0x0020}, {0x0085, 0x0085}, {0x00a0, 0x00a0}, {0x1680, 0x1680},
    {0x2000, 0x200a}, {0x2028, 0x2029}, {0x202f, 0x202f}, {0x205f, 0x205f}, {0x3000, 0x3000},
};

static int in(const range *r, int n, uint32_t c)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (c < r[mid].lo) hi = mid - 1;
        else if (c > r[mid].hi) lo = mid + 1;
        else return 1;
    }
    return 0;
}

#define NR(a) ((int)(sizeof(a) / sizeof((a)[0])))

static int cls(uint32_t c)
{
    if (c < 0x80) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return CL_LETTER;
        if (c >= '0' && c <= '9') return CL_NUMBER;
        if (c == ' ' || (c >= 0x09 && c <= 0x0d)) return CL_SPACE;
        return CL_OTHER;
    }
    if (in(spaces, NR(spaces), c)) return CL_SPACE;
    if (in(letters, NR(letters), c)) return CL_LETTER;
    if (in(numbers, NR(numbers), c)) return CL_NUMBER;
    return CL_OTHER;   /* invalid bytes (UINT32_MAX) too */
}

static uint32_t lower(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }
static int is_nl(uint32_t c) { return c == '\r' || c == '\n'; }

/* the end of the pattern's match at c[i] (> i): its alternatives in order */
static int match(const uint32_t *c, int n, int i)
{
    /* (?i:'s|'t|'re|'ve|'m|'ll|'d) */
    if (c[i] == '\'' && i + 1 < n) {
        uint32_t a = lower(c[i + 1]), b = i + 2 < n ? lower(c[i + 2]) : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
            return i + 3;
    }
    int k = cls(c[i]), j = i;
    /* [^\r\n\p{L}\p{N}]?\p{L}+ : the optional lead only where a letter follows */
    if (k != CL_LETTER && k != CL_NUMBER && !is_nl(c[i]) && i + 1 < n &&
        cls(c[i + 1]) == CL_LETTER)
        j = i + 1;
    if (cls(c[j]) == CL_LETTER) {
        while (j < n && cls(c[j]) == CL_LETTER) j++;
        return j;
    }
    /* \p{N}{1,3} */
    if (k == CL_NUMBER) {
        while (j < n && j - i < 3 && cls(c[j]) == CL_NUMBER) j++;
        return j;
    }
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    if (c[i] == ' ' && i + 1 < n && cls(c[i + 1]) == CL_OTHER) j = i + 1;
    if (cls(c[j]) == CL_OTHER) {
        while (j < n && cls(c[j]) == CL_OTHER) j++;
        while (j < n && is_nl(c[j])) j++;
        return j;
    }
    if (k == CL_SPACE) {
        int e = i, nl = -1;
        for (; e < n && cls(c[e]) == CL_SPACE; e++)
            if (is_nl(c[e])) nl = e;
        if (nl >= 0) return nl + 1;          /* \s*[\r\n]+ : up to the last newline */
        if (e == n) return e;                /* \s+(?!\S) at the end */
        if (e - i > 1) return e - 1;         /* \s+(?!\S) : all but the space before \S */
        return e;                            /* \s+ */
    }
    return i + 1;   /* unreachable: every class matches above; kept as a guard */
}

int kvb_bpe_split(const uint32_t *cp, int n, int *end)
{
    int nch = 0;
    for (int i = 0; i < n; i = end[nch++]) end[nch] = match(cp, n, i);
    return nch;
}
