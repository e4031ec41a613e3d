/* gram_json.c - a small JSON reader for the documents the grammar library reads (JSON
 * schemas) and a compact writer for enum and const values.
 *
 * RFC 8259: one value with optional whitespace around it; strings must be valid UTF-8
 * with escapes decoded (a \u escape pair forms one code point; a lone surrogate is an
 * error); nesting is capped at GJ_MAX_DEPTH so recursion stays bounded. Object members
 * keep their order; duplicate keys are kept (gram_json_get finds the first). */
#include "grammar.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GJ_MAX_DEPTH 128

struct jp {
    const char *s;
    size_t len;
    size_t pos;
    char *err;
    size_t err_len;
    bool failed;
};

static void jfail(struct jp *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void jfail(struct jp *p, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = true;
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (p->err_len)
        snprintf(p->err, p->err_len, "invalid JSON at byte %zu: %s", p->pos, msg);
}

static void skip_ws(struct jp *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                               p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

static void put_utf8(struct strbuf *b, uint32_t c)
{
    char u[4];
    size_t n;
    if (c < 0x80) {
        u[0] = (char)c;
        n = 1;
    } else if (c < 0x800) {
        u[0] = (char)(0xC0 | (c >> 6));
        u[1] = (char)(0x80 | (c & 0x3F));
        n = 2;
    } else if (c < 0x10000) {
        u[0] = (char)(0xE0 | (c >> 12));
        u[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        u[2] = (char)(0x80 | (c & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (c >> 18));
        u[1] = (char)(0x80 | ((c >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((c >> 6) & 0x3F));
        u[3] = (char)(0x80 | (c & 0x3F));
        n = 4;
    }
    strbuf_append(b, u, n);
}

static int hex4(struct jp *p, uint32_t *out)
{
    uint32_t v = 0;
    if (p->pos + 4 > p->len) {
        jfail(p, "truncated \\u escape");
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos++];
        int d = c >= '0' && c <= '9' ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) {
            jfail(p, "bad hex digit in \\u escape");
            return -1;
        }
        v = v * 16 + (uint32_t)d;
    }
    *out = v;
    return 0;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t k = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
                          : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (k == 0 || k > n)
        return 0;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) || (c == 0xF0 && s[1] < 0x90) ||
        (c == 0xF4 && s[1] > 0x8F))
        return 0;
    return k;
}

static int escape(struct jp *p, struct strbuf *b)
{
    char c = p->s[p->pos++];
    const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
    const char *k = c ? strchr(from, c) : NULL;
    if (k) {
        strbuf_append(b, &to[k - from], 1);
        return 0;
    }
    if (c != 'u') {
        jfail(p, "bad escape \\%c", c);
        return -1;
    }
    uint32_t u;
    if (hex4(p, &u) != 0)
        return -1;
    if (u >= 0xDC00 && u <= 0xDFFF) {
        jfail(p, "lone low surrogate");
        return -1;
    }
    if (u >= 0xD800 && u <= 0xDBFF) {
        uint32_t lo;
        if (p->pos + 2 > p->len || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u') {
            jfail(p, "lone high surrogate");
            return -1;
        }
        p->pos += 2;
        if (hex4(p, &lo) != 0)
            return -1;
        if (lo < 0xDC00 || lo > 0xDFFF) {
            jfail(p, "bad surrogate pair");
            return -1;
        }
        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
    }
    put_utf8(b, u);
    return 0;
}

/* A string at p->pos (the opening quote); *out is a heap copy. */
static int parse_string(struct jp *p, char **out, size_t *out_len)
{
    struct strbuf b = {0};
    p->pos++;
    for (;;) {
        if (p->pos >= p->len) {
            jfail(p, "unterminated string");
            break;
        }
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            p->pos++;
            if (strbuf_append(&b, "", 0) != 0)
                break;
            *out = b.data;
            *out_len = b.len;
            return 0;
        }
        if (c < 0x20) {
            jfail(p, "control character in string");
            break;
        }
        if (c == '\\') {
            p->pos++;
            if (p->pos >= p->len) {
                jfail(p, "unterminated escape");
                break;
            }
            if (escape(p, &b) != 0)
                break;
            continue;
        }
        size_t k = utf8_len((const unsigned char *)p->s + p->pos, p->len - p->pos);
        if (k == 0) {
            jfail(p, "invalid UTF-8");
            break;
        }
        strbuf_append(&b, p->s + p->pos, k);
        p->pos += k;
    }
    strbuf_free(&b);
    return -1;
}

static int parse_number(struct jp *p, struct gram_json *v)
{
    size_t start = p->pos;
    const char *s = p->s;
    size_t i = p->pos;
    bool is_int = true;
    if (i < p->len && s[i] == '-')
        i++;
    if (i < p->len && s[i] == '0') {
        i++;
    } else if (i < p->len && s[i] >= '1' && s[i] <= '9') {
        while (i < p->len && s[i] >= '0' && s[i] <= '9')
            i++;
    } else {
        p->pos = i;
        jfail(p, "bad number");
        return -1;
    }
    if (i < p->len && s[i] == '.') {
        is_int = false;
        size_t d = ++i;
        while (i < p->len && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d) {
            p->pos = i;
            jfail(p, "bad number fraction");
            return -1;
        }
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        is_int = false;
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t d = i;
        while (i < p->len && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d) {
            p->pos = i;
            jfail(p, "bad number exponent");
            return -1;
        }
    }
    char *text = strndup(s + start, i - start);
    if (!text) {
        jfail(p, "out of memory");
        return -1;
    }
    v->kind = GJ_NUMBER;
    v->str = text;
    v->len = i - start;
    v->num = strtod(text, NULL);
    v->is_int = is_int;
    p->pos = i;
    return 0;
}

static int parse_value(struct jp *p, struct gram_json *v, int depth);

static int grow(void **arr, size_t elem, size_t *cap, size_t n)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 4;
    void *a = realloc(*arr, c * elem);
    if (!a)
        return -1;
    *arr = a;
    *cap = c;
    return 0;
}

/* The key and ':' of the object member v->items[v->n - 1]. */
static int parse_key(struct jp *p, struct gram_json *v)
{
    skip_ws(p);
    if (p->pos >= p->len || p->s[p->pos] != '"') {
        jfail(p, "expected a string key");
        return -1;
    }
    char *key;
    if (parse_string(p, &key, &v->key_lens[v->n - 1]) != 0)
        return -1;
    v->keys[v->n - 1] = key;
    skip_ws(p);
    if (p->pos >= p->len || p->s[p->pos] != ':') {
        jfail(p, "expected ':'");
        return -1;
    }
    p->pos++;
    return 0;
}

/* An array or an object at p->pos (its opening bracket). */
static int parse_container(struct jp *p, struct gram_json *v, int depth)
{
    bool obj = p->s[p->pos] == '{';
    char close = obj ? '}' : ']';
    size_t cap = 0, kcap = 0, lcap = 0;
    v->kind = obj ? GJ_OBJECT : GJ_ARRAY;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return 0;
    }
    for (;;) {
        if (grow((void **)&v->items, sizeof(*v->items), &cap, v->n) != 0 ||
            (obj && (grow((void **)&v->keys, sizeof(*v->keys), &kcap, v->n) != 0 ||
                     grow((void **)&v->key_lens, sizeof(*v->key_lens), &lcap, v->n) != 0))) {
            jfail(p, "out of memory");
            return -1;
        }
        memset(&v->items[v->n], 0, sizeof(v->items[0]));
        if (obj)
            v->keys[v->n] = NULL;
        v->n++;
        if ((obj && parse_key(p, v) != 0) || parse_value(p, &v->items[v->n - 1], depth + 1) != 0)
            return -1;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
            return 0;
        }
        jfail(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        return -1;
    }
}

static bool word(struct jp *p, const char *w)
{
    size_t n = strlen(w);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, w, n) != 0)
        return false;
    p->pos += n;
    return true;
}

static int parse_value(struct jp *p, struct gram_json *v, int depth)
{
    if (depth > GJ_MAX_DEPTH) {
        jfail(p, "nested more than %d deep", GJ_MAX_DEPTH);
        return -1;
    }
    skip_ws(p);
    if (p->pos >= p->len) {
        jfail(p, "unexpected end");
        return -1;
    }
    char c = p->s[p->pos];
    if (c == '{' || c == '[')
        return parse_container(p, v, depth);
    if (c == '"') {
        char *s;
        if (parse_string(p, &s, &v->len) != 0)
            return -1;
        v->kind = GJ_STRING;
        v->str = s;
        return 0;
    }
    if (c == '-' || (c >= '0' && c <= '9'))
        return parse_number(p, v);
    if (word(p, "true") || word(p, "false")) {
        v->kind = GJ_BOOL;
        v->b = c == 't';
        return 0;
    }
    if (word(p, "null")) {
        v->kind = GJ_NULL;
        return 0;
    }
    jfail(p, "unexpected character");
    return -1;
}

static void json_fini(struct gram_json *v)
{
    for (size_t i = 0; i < v->n; i++) {
        json_fini(&v->items[i]);
        if (v->keys)
            free((char *)v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->key_lens);
    free((char *)v->str);
}

void gram_json_free(struct gram_json *doc)
{
    if (!doc)
        return;
    json_fini(doc);
    free(doc);
}

struct gram_json *gram_json_parse(const char *text, size_t len, char *err, size_t err_len)
{
    struct jp p = {.s = text, .len = len, .err = err, .err_len = err_len};
    struct gram_json *v = calloc(1, sizeof(*v));
    if (!v) {
        if (err_len)
            snprintf(err, err_len, "out of memory");
        return NULL;
    }
    if (parse_value(&p, v, 0) == 0) {
        skip_ws(&p);
        if (p.pos != p.len)
            jfail(&p, "trailing characters");
    }
    if (p.failed) {
        gram_json_free(v);
        return NULL;
    }
    return v;
}

const struct gram_json *gram_json_get(const struct gram_json *obj, const char *key)
{
    if (!obj || obj->kind != GJ_OBJECT)
        return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < obj->n; i++)
        if (obj->key_lens[i] == kl && memcmp(obj->keys[i], key, kl) == 0)
            return &obj->items[i];
    return NULL;
}

static int write_string(struct strbuf *out, const char *s, size_t len)
{
    int rc = strbuf_append(out, "\"", 1);
    for (size_t i = 0; i < len && rc == 0; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            rc = strbuf_append(out, esc, 2);
        } else if (c < 0x20) {
            const char *named = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r"
                                : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
            if (named)
                rc = strbuf_append(out, named, 2);
            else {
                snprintf(esc, sizeof(esc), "\\u%04x", c);
                rc = strbuf_append(out, esc, 6);
            }
        } else {
            rc = strbuf_append(out, (const char *)&s[i], 1);
        }
    }
    return rc ? rc : strbuf_append(out, "\"", 1);
}

int gram_json_write(struct strbuf *out, const struct gram_json *v)
{
    int rc = 0;
    switch (v->kind) {
    case GJ_NULL:
        return strbuf_append(out, "null", 4);
    case GJ_BOOL:
        return v->b ? strbuf_append(out, "true", 4) : strbuf_append(out, "false", 5);
    case GJ_NUMBER:
        return strbuf_append(out, v->str, v->len);
    case GJ_STRING:
        return write_string(out, v->str, v->len);
    case GJ_ARRAY:
    case GJ_OBJECT:
        rc = strbuf_append(out, v->kind == GJ_ARRAY ? "[" : "{", 1);
        for (size_t i = 0; i < v->n && rc == 0; i++) {
            if (i)
                rc = strbuf_append(out, ",", 1);
            if (rc == 0 && v->kind == GJ_OBJECT) {
                rc = write_string(out, v->keys[i], v->key_lens[i]);
                rc = rc ? rc : strbuf_append(out, ":", 1);
            }
            rc = rc ? rc : gram_json_write(out, &v->items[i]);
        }
        return rc ? rc : strbuf_append(out, v->kind == GJ_ARRAY ? "]" : "}", 1);
    }
    return -1;
}
