/* json.h: kvbench's JSON, written by one writer and read through cJSON.
 *
 * Writing. A kvb_jw writes values into a FILE as they come, placing commas
 * itself; the caller chooses the layout (kvbench's files keep theirs, byte
 * for byte): kvb_jw_open takes what separates a container's items, placed
 * after each comma, and before the first item too when it starts a new line
 * (an inline container hugs its brackets, a multi-line one indents its first
 * item); kvb_jw_break replaces that for the next item only; kvb_jw_close
 * takes what goes before the closing bracket. Strings have one escaping rule,
 * kvb_json_escape: '"' and '\' escaped, newline as \n, other control
 * characters as \u00XX, valid UTF-8 kept as it is, any other byte as \ufffd
 * (paths need not be UTF-8). A number is written with the caller's printf
 * format, or null when it is not finite (JSON has no NaN). Write errors are
 * the FILE's (ferror), for whoever closes it; misuse (nesting past
 * KVB_JW_DEPTH, a close without an open) sets bad and writes nothing.
 *
 * Reading. kvb_json_load parses a whole file with cJSON; lookups go by path,
 * "machine.host" or "fit_total_time.b_ci95.1" (a number indexes an array),
 * and answer NULL, NaN or "" for what is absent or of another type, so keys
 * may come in any order with any whitespace. */
#ifndef KVB_JSON_H
#define KVB_JSON_H

#include <stddef.h>
#include <stdio.h>
#include <cjson/cJSON.h>

enum { KVB_JW_DEPTH = 16 };

typedef struct kvb_jw {
    FILE *f;
    int depth;
    int count[KVB_JW_DEPTH];      /* items written in each open container */
    char close[KVB_JW_DEPTH];     /* its closing bracket */
    const char *ws[KVB_JW_DEPTH]; /* what separates its items */
    const char *next_ws;          /* kvb_jw_break's, for the next item */
    int keyed;                    /* a key was written: its value follows it */
    int bad;
} kvb_jw;

void kvb_json_escape(FILE *f, const char *s);

void kvb_jw_init(kvb_jw *w, FILE *f);
void kvb_jw_open(kvb_jw *w, char bracket, const char *ws); /* '{' or '[' */
void kvb_jw_close(kvb_jw *w, const char *ws);
void kvb_jw_break(kvb_jw *w, const char *ws);
void kvb_jw_key(kvb_jw *w, const char *key);
void kvb_jw_str(kvb_jw *w, const char *s); /* NULL: "" */
void kvb_jw_num(kvb_jw *w, const char *fmt, double v);
void kvb_jw_int(kvb_jw *w, long long v);
void kvb_jw_uint(kvb_jw *w, unsigned long long v);
void kvb_jw_bool(kvb_jw *w, int v);
void kvb_jw_null(kvb_jw *w);
/* a key and its value */
void kvb_jw_kstr(kvb_jw *w, const char *key, const char *s);
void kvb_jw_knum(kvb_jw *w, const char *key, const char *fmt, double v);
void kvb_jw_kint(kvb_jw *w, const char *key, long long v);
void kvb_jw_kuint(kvb_jw *w, const char *key, unsigned long long v);
void kvb_jw_kbool(kvb_jw *w, const char *key, int v);

/* The file parsed (*err 0); NULL when it is missing (*err ENOENT), cannot be
 * read (its errno) or is not JSON (EBADMSG); msg says which file and why, for
 * JSON the line too (a document that ends inside a string or before its
 * brackets close is called truncated). */
cJSON *kvb_json_load(const char *path, int *err, char *msg, size_t msg_len);
/* The same for text in memory; where names it in messages. */
cJSON *kvb_json_parse(const char *text, size_t len, const char *where, char *msg, size_t msg_len);

const cJSON *kvb_json_at(const cJSON *j, const char *path);
double kvb_json_num_at(const cJSON *j, const char *path);
const char *kvb_json_str_at(const cJSON *j, const char *path); /* NULL unless a string */
void kvb_json_copy_at(const cJSON *j, const char *path, char *out, size_t n);
/* The first element of array whose key is the string value; NULL when none. */
const cJSON *kvb_json_find(const cJSON *array, const char *key, const char *value);

/* The line on which each element of the array under the top-level object's
 * key begins (for messages: cJSON keeps no positions); the count, at most max. */
int kvb_json_elem_lines(const char *text, const char *key, int *lines, int max);

#endif
