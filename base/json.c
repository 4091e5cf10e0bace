/* json.c: see json.h. */
#define _POSIX_C_SOURCE 200809L
#include "json.h"
#include "textio.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- writing ------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s, or 0. */
static int utf8_len(const unsigned char *s)
{
    int n = s[0] >= 0xf0 && s[0] <= 0xf4  ? 4
            : s[0] >= 0xe0                ? 3
            : s[0] >= 0xc2 && s[0] < 0xe0 ? 2
                                          : 0;
    if (s[0] >= 0xf5) n = 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    /* overlong forms and UTF-16 surrogates are not UTF-8 */
    if (n == 3 && ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0))) return 0;
    if (n == 4 && ((s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))) return 0;
    return n;
}

void kvb_json_escape(FILE *f, const char *str)
{
    const unsigned char *s = (const unsigned char *)(str ? str : "");
    fputc('"', f);
    while (*s) {
        unsigned char c = *s;
        if (c >= 0x80) {
            int n = utf8_len(s);
            if (n) {
                fwrite(s, 1, (size_t)n, f);
                s += n;
            } else {
                fputs("\\ufffd", f);
                s++;
            }
            continue;
        }
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
        s++;
    }
    fputc('"', f);
}

void kvb_jw_init(kvb_jw *w, FILE *f)
{
    memset(w, 0, sizeof *w);
    w->f = f;
}

/* What comes before an item: a comma after an earlier one, then whitespace. */
static int item(kvb_jw *w)
{
    if (w->bad) return -1;
    if (w->keyed) {
        w->keyed = 0;
        return 0;
    }
    if (w->depth == 0) return 0;
    int d = w->depth - 1;
    const char *ws = w->next_ws ? w->next_ws : w->count[d] || w->ws[d][0] == '\n' ? w->ws[d] : "";
    if (w->count[d]) fputc(',', w->f);
    fputs(ws, w->f);
    w->count[d]++;
    w->next_ws = NULL;
    return 0;
}

void kvb_jw_open(kvb_jw *w, char bracket, const char *ws)
{
    if (w->depth == KVB_JW_DEPTH || (bracket != '{' && bracket != '[')) w->bad = 1;
    if (item(w)) return;
    fputc(bracket, w->f);
    w->close[w->depth] = bracket == '{' ? '}' : ']';
    w->ws[w->depth] = ws ? ws : "";
    w->count[w->depth++] = 0;
}

void kvb_jw_close(kvb_jw *w, const char *ws)
{
    if (w->depth == 0 || w->keyed) w->bad = 1;
    if (w->bad) return;
    fputs(ws ? ws : "", w->f);
    fputc(w->close[--w->depth], w->f);
    w->next_ws = NULL;
}

void kvb_jw_break(kvb_jw *w, const char *ws)
{
    w->next_ws = ws;
}

void kvb_jw_key(kvb_jw *w, const char *key)
{
    if (w->keyed || w->depth == 0 || w->close[w->depth - 1] != '}') w->bad = 1;
    if (item(w)) return;
    kvb_json_escape(w->f, key);
    fputs(": ", w->f);
    w->keyed = 1;
}

void kvb_jw_str(kvb_jw *w, const char *s)
{
    if (!item(w)) kvb_json_escape(w->f, s);
}

void kvb_jw_num(kvb_jw *w, const char *fmt, double v)
{
    if (item(w)) return;
    if (isfinite(v))
        fprintf(w->f, fmt, v);
    else
        fputs("null", w->f);
}

void kvb_jw_int(kvb_jw *w, long long v)
{
    if (!item(w)) fprintf(w->f, "%lld", v);
}

void kvb_jw_uint(kvb_jw *w, unsigned long long v)
{
    if (!item(w)) fprintf(w->f, "%llu", v);
}

void kvb_jw_bool(kvb_jw *w, int v)
{
    if (!item(w)) fputs(v ? "true" : "false", w->f);
}

void kvb_jw_null(kvb_jw *w)
{
    if (!item(w)) fputs("null", w->f);
}

void kvb_jw_kstr(kvb_jw *w, const char *key, const char *s)
{
    kvb_jw_key(w, key);
    kvb_jw_str(w, s);
}
void kvb_jw_knum(kvb_jw *w, const char *key, const char *fmt, double v)
{
    kvb_jw_key(w, key);
    kvb_jw_num(w, fmt, v);
}
void kvb_jw_kint(kvb_jw *w, const char *key, long long v)
{
    kvb_jw_key(w, key);
    kvb_jw_int(w, v);
}
void kvb_jw_kuint(kvb_jw *w, const char *key, unsigned long long v)
{
    kvb_jw_key(w, key);
    kvb_jw_uint(w, v);
}
void kvb_jw_kbool(kvb_jw *w, const char *key, int v)
{
    kvb_jw_key(w, key);
    kvb_jw_bool(w, v);
}

/* ---- reading -------------------------------------------------------------- */

/* 1 when text ends inside a string or with a bracket open: cut short, not malformed */
static int unclosed(const char *s, size_t n)
{
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"')
            in_str = 1;
        else if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']')
            depth--;
    }
    return in_str || depth > 0;
}

cJSON *kvb_json_parse(const char *text, size_t len, const char *where, char *msg, size_t msg_len)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    /* only whitespace may follow the document */
    const char *p = end ? end : text;
    while (j && p < text + len && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    if (j && p == text + len) return j;
    cJSON_Delete(j);
    int line = 1;
    for (const char *q = text; q < p && q < text + len; q++) line += *q == '\n';
    snprintf(msg, msg_len, "'%s' line %d: not valid JSON%s", where, line,
             unclosed(text, len) ? ": it ends early, the file is truncated" : "");
    return NULL;
}

cJSON *kvb_json_load(const char *path, int *err, char *msg, size_t msg_len)
{
    size_t len = 0;
    errno = 0;
    char *text = kvb_slurp_len(path, &len);
    if (!text) {
        *err = errno ? errno : EIO;
        snprintf(msg, msg_len, "cannot read '%s': %s", path, strerror(*err));
        return NULL;
    }
    cJSON *j = kvb_json_parse(text, len, path, msg, msg_len);
    free(text);
    *err = j ? 0 : EBADMSG;
    return j;
}

const cJSON *kvb_json_at(const cJSON *j, const char *path)
{
    for (const char *p = path; j && p && *p;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        char key[96];
        if (n >= sizeof key) return NULL;
        memcpy(key, p, n);
        key[n] = 0;
        if (cJSON_IsArray(j) && n && strspn(key, "0123456789") == n)
            j = cJSON_GetArrayItem(j, atoi(key));
        else
            j = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, key) : NULL;
        p = dot ? dot + 1 : NULL;
    }
    return j;
}

double kvb_json_num_at(const cJSON *j, const char *path)
{
    const cJSON *v = kvb_json_at(j, path);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

const char *kvb_json_str_at(const cJSON *j, const char *path)
{
    const cJSON *v = kvb_json_at(j, path);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

void kvb_json_copy_at(const cJSON *j, const char *path, char *out, size_t n)
{
    const char *s = kvb_json_str_at(j, path);
    if (n) snprintf(out, n, "%s", s ? s : "");
}

const cJSON *kvb_json_find(const cJSON *array, const char *key, const char *value)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, array)
    {
        const char *s = kvb_json_str_at(e, key);
        if (s && strcmp(s, value) == 0) return e;
    }
    return NULL;
}

/* A scan of the text for positions only; the values come from cJSON. */
int kvb_json_elem_lines(const char *text, const char *key, int *lines, int max)
{
    int depth = 0, line = 1, n = 0, want = 0, in_array = 0, expect = 0;
    size_t klen = strlen(key);
    for (const char *p = text; *p; p++) {
        char c = *p;
        if (c == '\n') line++;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        if (expect && c != ']') {
            if (n < max) lines[n] = line;
            n++;
            expect = 0;
        }
        if (c == '"') {
            const char *s = ++p;
            while (*p && *p != '"') p += p[0] == '\\' && p[1] ? 2 : 1;
            if (!*p) break;
            if (depth == 1 && (size_t)(p - s) == klen && strncmp(s, key, klen) == 0) want = 1;
            continue;
        }
        if (c == ':') continue;
        if (c == '[' || c == '{') {
            depth++;
            if (want && c == '[' && depth == 2) in_array = expect = 1;
        } else if (c == ']' || c == '}') {
            if (in_array && depth == 2) return n < max ? n : max;
            depth--;
        } else if (c == ',' && in_array && depth == 2)
            expect = 1;
        want = 0;
    }
    return n < max ? n : max;
}
