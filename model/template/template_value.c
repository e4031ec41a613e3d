/* template_value.c - chat templates: what values are and do. Python's str()/repr()
 * and json.dumps, equality, ordering and arithmetic, iteration, item and slice
 * access, and the string helpers (strip, split, replace, join, case mapping) the
 * library in template_lib.c builds on.
 *
 * Strings are UTF-8 and indexed by code point as Python does (length, subscripts,
 * slices, iteration). Case mapping is ASCII-only. Every allocation goes to the
 * render arena (template_eval.c) and is checked; nothing here frees.
 */
#include "template.h"
#include "template_lib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include <time.h>

/* ------------------------------------------------------------------ basic values */

struct tv tv_str(const char *s, size_t len)
{
    struct tv v = {.kind = TV_STR, .len = len, .u.s = s};
    return v;
}

struct tv tv_bool(bool b)
{
    struct tv v = {.kind = TV_BOOL, .u.b = b};
    return v;
}

struct tv tv_int(int64_t i)
{
    struct tv v = {.kind = TV_INT, .u.i = i};
    return v;
}

struct tv tv_float(double f)
{
    struct tv v = {.kind = TV_FLOAT, .u.f = f};
    return v;
}

struct tv tv_none(void)
{
    struct tv v = {.kind = TV_NONE};
    return v;
}

struct tv tv_undef(void)
{
    struct tv v = {.kind = TV_UNDEF};
    return v;
}

bool tv_str_eq(struct tv s, const char *p, size_t n)
{
    return s.kind == TV_STR && s.len == n && memcmp(s.u.s, p, n) == 0;
}

bool tv_is_cstr(struct tv s, const char *p)
{
    return tv_str_eq(s, p, strlen(p));
}

bool tv_truthy(struct tv v)
{
    switch (v.kind) {
    case TV_UNDEF:
    case TV_NONE:
        return false;
    case TV_BOOL:
        return v.u.b;
    case TV_INT:
        return v.u.i != 0;
    case TV_FLOAT:
        return v.u.f != 0.0;
    case TV_STR:
        return v.len > 0;
    case TV_LIST:
    case TV_TUPLE:
        return v.gen || v.u.l->n > 0;
    case TV_DICT:
        return v.u.d->n > 0;
    default:
        return true;
    }
}

const char *tv_type_name(struct tv v)
{
    if (v.gen)
        return "generator";
    static const char *const names[] = {
        [TV_UNDEF] = "Undefined", [TV_NONE] = "NoneType", [TV_BOOL] = "bool",
        [TV_INT] = "int", [TV_FLOAT] = "float", [TV_STR] = "str", [TV_LIST] = "list",
        [TV_TUPLE] = "tuple", [TV_DICT] = "dict", [TV_NS] = "Namespace",
        [TV_LOOP] = "LoopContext", [TV_FUNC] = "function",
    };
    return names[v.kind];
}

bool tv_is_num(struct tv v)
{
    return v.kind == TV_INT || v.kind == TV_FLOAT || v.kind == TV_BOOL;
}

bool tv_is_intlike(struct tv v)
{
    return v.kind == TV_INT || v.kind == TV_BOOL;
}

int64_t tv_as_int(struct tv v)
{
    return v.kind == TV_BOOL ? (int64_t)v.u.b : v.u.i;
}

double tv_as_float(struct tv v)
{
    return v.kind == TV_FLOAT ? v.u.f : (double)tv_as_int(v);
}

/* A real list or tuple (not a generator). */
bool tv_is_seq(struct tv v)
{
    return (v.kind == TV_LIST || v.kind == TV_TUPLE) && !v.gen;
}


/* ------------------------------------------------------------------ UTF-8 */

/* A character starts at every byte that is not a continuation byte, and at byte 0
 * (stray continuation bytes at the start form one character with what follows, as in
 * u8_char_len), so counting, indexing and iterating always agree on invalid UTF-8. */
static bool u8_starts_char(const char *s, size_t i)
{
    return i == 0 || ((unsigned char)s[i] & 0xc0) != 0x80;
}

size_t tl_u8_count(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += u8_starts_char(s, i);
    return c;
}

/* Byte offset of code point `idx` (idx may equal the count: returns n). */
static size_t u8_offset(const char *s, size_t n, size_t idx)
{
    for (size_t i = 0; i < n; i++) {
        if (u8_starts_char(s, i)) {
            if (idx == 0)
                return i;
            idx--;
        }
    }
    return n;
}

static size_t u8_char_len(const char *s, size_t n, size_t i)
{
    size_t j = i + 1;
    while (j < n && ((unsigned char)s[j] & 0xc0) == 0x80)
        j++;
    return j - i;
}

/* Length of the Python-whitespace character at s, or 0. */
size_t tl_space_len(const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    if (n == 0)
        return 0;
    unsigned c = s[0];
    if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f))
        return 1;
    if (c == 0xc2 && n >= 2 && (s[1] == 0x85 || s[1] == 0xa0))
        return 2;
    if (c == 0xe1 && n >= 3 && s[1] == 0x9a && s[2] == 0x80)
        return 3;
    if (c == 0xe2 && n >= 3) {
        unsigned cp = ((c & 0x0fu) << 12) | ((s[1] & 0x3fu) << 6) | (s[2] & 0x3fu);
        if ((cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
            cp == 0x205f)
            return 3;
    }
    if (c == 0xe3 && n >= 3 && s[1] == 0x80 && s[2] == 0x80)
        return 3;
    return 0;
}

static size_t space_len_before(const char *s, size_t start, size_t end)
{
    for (size_t w = 1; w <= 3 && w <= end - start; w++)
        if (tl_space_len(s + end - w, w) == w)
            return w;
    return 0;
}

/* ------------------------------------------------------------------ containers */

struct tv_list *tl_list_new(struct rctx *R, size_t cap, int line)
{
    if (cap > SIZE_MAX / sizeof(struct tv) / 2) {
        tl_nomem(R, line);
        return NULL;
    }
    struct tv_list *l = tl_alloc(R, sizeof(*l) + cap * sizeof(struct tv));
    if (!l) {
        tl_nomem(R, line);
        return NULL;
    }
    l->n = 0;
    l->items = (struct tv *)(l + 1);
    return l;
}

int tl_list_value(struct rctx *R, size_t cap, enum tv_kind kind, struct tv *out, int line)
{
    struct tv_list *l = tl_list_new(R, cap, line);
    if (!l)
        return R->err_code;
    *out = (struct tv){.kind = kind, .u.l = l};
    return 0;
}

int tl_dict_new(struct rctx *R, struct tv *out, enum tv_kind kind, int line)
{
    struct tv_dict *d = tl_alloc(R, sizeof(*d));
    if (!d)
        return tl_nomem(R, line);
    memset(d, 0, sizeof(*d));
    *out = (struct tv){.kind = kind, .u.d = d};
    return 0;
}

struct tv *tl_dict_find(struct tv_dict *d, struct tv key)
{
    for (size_t i = 0; i < d->n; i++)
        if (tv_equal(d->keys[i], key))
            return &d->vals[i];
    return NULL;
}

int tl_dict_set(struct rctx *R, struct tv dv, struct tv key, struct tv val, int line)
{
    struct tv_dict *d = dv.u.d;
    struct tv *slot = tl_dict_find(d, key);
    if (slot) {
        *slot = val;
        return 0;
    }
    if (key.kind == TV_LIST || key.kind == TV_DICT || key.kind == TV_NS || key.kind == TV_UNDEF)
        return tl_fail(R, TMPL_EEVAL, line, "unhashable type: '%s'", tv_type_name(key));
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        struct tv *nk = tl_alloc(R, cap * sizeof(*nk));
        struct tv *nv = tl_alloc(R, cap * sizeof(*nv));
        if (!nk || !nv)
            return tl_nomem(R, line);
        if (d->n) {
            memcpy(nk, d->keys, d->n * sizeof(*nk));
            memcpy(nv, d->vals, d->n * sizeof(*nv));
        }
        d->keys = nk;
        d->vals = nv;
        d->cap = cap;
    }
    d->keys[d->n] = key;
    d->vals[d->n] = val;
    d->n++;
    return 0;
}

int tl_dict_set_cstr(struct rctx *R, struct tv *d, bool create, const char *key, const char *val)
{
    if (create && tl_dict_new(R, d, TV_DICT, 1) < 0)
        return R->err_code;
    struct tv v = val ? tv_str(val, strlen(val)) : tv_none();
    return tl_dict_set(R, *d, tv_str(key, strlen(key)), v, 1);
}

/* ------------------------------------------------------------------ str(), repr(), json */

static int put(struct rctx *R, struct strbuf *b, const char *s, size_t n)
{
    return tl_sbuf_put(R, b, s, n, 0);
}

static int puts_(struct rctx *R, struct strbuf *b, const char *s)
{
    return tl_sbuf_put(R, b, s, strlen(s), 0);
}

/* Python's repr(float): the shortest string that reads back as the same double. */
static void format_float(double f, char *out, size_t n)
{
    if (isnan(f)) {
        snprintf(out, n, "nan");
        return;
    }
    if (isinf(f)) {
        snprintf(out, n, f < 0 ? "-inf" : "inf");
        return;
    }
    char buf[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec - 1, f);
        if (strtod(buf, NULL) == f)
            break;
    }
    /* buf = [-]d[.ddd]e[+-]xx */
    char digits[24];
    size_t nd = 0;
    const char *p = buf;
    bool neg = *p == '-';
    if (neg)
        p++;
    for (; *p && *p != 'e'; p++)
        if (*p != '.')
            digits[nd++] = *p;
    int exp = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = 0;
    char *o = out;
    size_t left = n;
    int w;
    if (exp >= -4 && exp < 16) {
        if (exp < 0) {
            w = snprintf(o, left, "%s0.%.*s%s", neg ? "-" : "", -exp - 1, "0000", digits);
        } else if ((size_t)exp + 1 >= nd) {
            w = snprintf(o, left, "%s%s%.*s.0", neg ? "-" : "", digits, (int)((size_t)exp + 1 - nd),
                         "0000000000000000");
        } else {
            w = snprintf(o, left, "%s%.*s.%s", neg ? "-" : "", exp + 1, digits, digits + exp + 1);
        }
    } else {
        if (nd > 1)
            w = snprintf(o, left, "%s%c.%se%c%02d", neg ? "-" : "", digits[0], digits + 1,
                         exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
        else
            w = snprintf(o, left, "%s%ce%c%02d", neg ? "-" : "", digits[0], exp < 0 ? '-' : '+',
                         exp < 0 ? -exp : exp);
    }
    (void)w;
}

static int put_int(struct rctx *R, struct strbuf *b, int64_t i)
{
    char num[32];
    snprintf(num, sizeof(num), "%lld", (long long)i);
    return puts_(R, b, num);
}

/* A float as Python prints it (format_float). */
static int put_float(struct rctx *R, struct strbuf *b, double f)
{
    char num[64];
    format_float(f, num, sizeof(num));
    return puts_(R, b, num);
}

static int write_repr(struct rctx *R, struct strbuf *b, struct tv v, int depth);

static int write_str_quoted(struct rctx *R, struct strbuf *b, struct tv v)
{
    bool has_sq = memchr(v.u.s, '\'', v.len) != NULL;
    bool has_dq = memchr(v.u.s, '"', v.len) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    if (put(R, b, &q, 1) < 0)
        return R->err_code;
    size_t start = 0;
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.u.s[i];
        char esc[8];
        const char *e = NULL;
        if (c == '\\')
            e = "\\\\";
        else if (c == (unsigned char)q)
            e = q == '\'' ? "\\'" : "\\\"";
        else if (c == '\n')
            e = "\\n";
        else if (c == '\r')
            e = "\\r";
        else if (c == '\t')
            e = "\\t";
        else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\x%02x", c);
            e = esc;
        }
        if (e) {
            if (put(R, b, v.u.s + start, i - start) < 0 || puts_(R, b, e) < 0)
                return R->err_code;
            start = i + 1;
        }
    }
    if (put(R, b, v.u.s + start, v.len - start) < 0 || put(R, b, &q, 1) < 0)
        return R->err_code;
    return 0;
}

static int write_value(struct rctx *R, struct strbuf *b, struct tv v, bool repr, int depth)
{
    char num[64];
    if (depth > 100)
        return tl_fail(R, TMPL_ELIMIT, 0, "value nested too deeply to print");
    switch (v.kind) {
    case TV_UNDEF:
        return repr ? puts_(R, b, "Undefined") : 0;
    case TV_NONE:
        return puts_(R, b, "None");
    case TV_BOOL:
        return puts_(R, b, v.u.b ? "True" : "False");
    case TV_INT:
        return put_int(R, b, v.u.i);
    case TV_FLOAT:
        return put_float(R, b, v.u.f);
    case TV_STR:
        return repr ? write_str_quoted(R, b, v) : put(R, b, v.u.s, v.len);
    case TV_LIST:
    case TV_TUPLE: {
        bool tup = v.kind == TV_TUPLE;
        if (v.gen)
            return puts_(R, b, "<generator object>");
        if (puts_(R, b, tup ? "(" : "[") < 0)
            return R->err_code;
        for (size_t i = 0; i < v.u.l->n; i++)
            if ((i && puts_(R, b, ", ") < 0) || write_repr(R, b, v.u.l->items[i], depth + 1) < 0)
                return R->err_code;
        if (tup && v.u.l->n == 1 && puts_(R, b, ",") < 0)
            return R->err_code;
        return puts_(R, b, tup ? ")" : "]");
    }
    case TV_DICT:
    case TV_NS: {
        if (puts_(R, b, v.kind == TV_NS ? "<Namespace {" : "{") < 0)
            return R->err_code;
        for (size_t i = 0; i < v.u.d->n; i++)
            if ((i && puts_(R, b, ", ") < 0) || write_repr(R, b, v.u.d->keys[i], depth + 1) < 0 ||
                puts_(R, b, ": ") < 0 || write_repr(R, b, v.u.d->vals[i], depth + 1) < 0)
                return R->err_code;
        return puts_(R, b, v.kind == TV_NS ? "}>" : "}");
    }
    case TV_LOOP:
        snprintf(num, sizeof(num), "<LoopContext %zu/%zu>", v.u.loop->index0 + 1, v.u.loop->items->n);
        return puts_(R, b, num);
    case TV_FUNC:
        return puts_(R, b, "<function>");
    }
    return 0;
}

static int write_repr(struct rctx *R, struct strbuf *b, struct tv v, int depth)
{
    return write_value(R, b, v, true, depth);
}

int tl_write_str(struct rctx *R, struct strbuf *b, struct tv v, int line)
{
    int rc = write_value(R, b, v, false, 0);
    if (rc < 0 && R->err_code && line) {
        /* messages from put() carry line 0; fine: the limit message names the cap */
    }
    return rc;
}

/* str(v) as a string value (strings are returned as they are). */
int tl_to_str(struct rctx *R, struct tv v, struct tv *out, int line)
{
    if (v.kind == TV_STR) {
        *out = v;
        return 0;
    }
    if (v.kind == TV_UNDEF) {
        *out = tv_str("", 0);
        return 0;
    }
    struct strbuf b = {0};
    int rc = tl_write_str(R, &b, v, line);
    if (rc >= 0) {
        char *s = tl_alloc(R, b.len + 1);
        if (!s)
            rc = tl_nomem(R, line);
        else {
            if (b.len)
                memcpy(s, b.data, b.len);
            s[b.len] = 0;
            *out = tv_str(s, b.len);
        }
    }
    free(b.data);
    return rc < 0 ? rc : 0;
}


static int json_string(struct rctx *R, struct strbuf *b, const char *s, size_t n, bool ascii)
{
    if (put(R, b, "\"", 1) < 0)
        return R->err_code;
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[16];
        const char *e = NULL;
        size_t skip = 1;
        if (c == '"')
            e = "\\\"";
        else if (c == '\\')
            e = "\\\\";
        else if (c == '\n')
            e = "\\n";
        else if (c == '\r')
            e = "\\r";
        else if (c == '\t')
            e = "\\t";
        else if (c == '\b')
            e = "\\b";
        else if (c == '\f')
            e = "\\f";
        else if (c < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            e = esc;
        } else if (c >= 0x80 && ascii) {
            size_t l = u8_char_len(s, n, i);
            uint32_t cp = l == 2 ? c & 0x1fu : l == 3 ? c & 0x0fu : c & 0x07u;
            for (size_t k = 1; k < l; k++)
                cp = (cp << 6) | ((unsigned char)s[i + k] & 0x3fu);
            if (cp >= 0x10000) {
                cp -= 0x10000;
                snprintf(esc, sizeof(esc), "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
            } else {
                snprintf(esc, sizeof(esc), "\\u%04x", cp);
            }
            e = esc;
            skip = l;
        }
        if (e) {
            if (put(R, b, s + start, i - start) < 0 || puts_(R, b, e) < 0)
                return R->err_code;
            i += skip - 1;
            start = i + 1;
        }
    }
    if (put(R, b, s + start, n - start) < 0 || put(R, b, "\"", 1) < 0)
        return R->err_code;
    return 0;
}

static int json_newline(struct rctx *R, struct strbuf *b, const struct tl_json_opts *o, int level)
{
    if (o->indent < 0)
        return 0;
    if (put(R, b, "\n", 1) < 0)
        return R->err_code;
    for (int i = 0; i < level * o->indent; i++)
        if (put(R, b, " ", 1) < 0)
            return R->err_code;
    return 0;
}

static int str_cmp(struct tv a, struct tv b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = memcmp(a.u.s, b.u.s, n);
    if (c)
        return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

int tl_write_json(struct rctx *R, struct strbuf *b, struct tv v, const struct tl_json_opts *o,
                      int level, int line)
{
    if (level > 100)
        return tl_fail(R, TMPL_ELIMIT, line, "value nested too deeply for tojson");
    switch (v.kind) {
    case TV_NONE:
        return puts_(R, b, "null");
    case TV_BOOL:
        return puts_(R, b, v.u.b ? "true" : "false");
    case TV_INT:
        return put_int(R, b, v.u.i);
    case TV_FLOAT:
        if (isnan(v.u.f))
            return puts_(R, b, "NaN");
        if (isinf(v.u.f))
            return puts_(R, b, v.u.f < 0 ? "-Infinity" : "Infinity");
        return put_float(R, b, v.u.f);
    case TV_STR:
        return json_string(R, b, v.u.s, v.len, o->ascii);
    case TV_LIST:
    case TV_TUPLE: {
        struct tv_list *l = v.u.l;
        if (v.gen)
            return tl_fail(R, TMPL_EEVAL, line, "Object of type generator is not JSON serializable");
        if (l->n == 0)
            return puts_(R, b, "[]");
        if (puts_(R, b, "[") < 0)
            return R->err_code;
        for (size_t i = 0; i < l->n; i++) {
            if (i && put(R, b, o->item_sep.u.s, o->item_sep.len) < 0)
                return R->err_code;
            if (json_newline(R, b, o, level + 1) < 0 ||
                tl_write_json(R, b, l->items[i], o, level + 1, line) < 0)
                return R->err_code;
        }
        if (json_newline(R, b, o, level) < 0)
            return R->err_code;
        return puts_(R, b, "]");
    }
    case TV_DICT: {
        struct tv_dict *d = v.u.d;
        if (d->n == 0)
            return puts_(R, b, "{}");
        size_t *tl_order = tl_alloc(R, d->n * sizeof(*tl_order));
        if (!tl_order)
            return tl_nomem(R, line);
        for (size_t i = 0; i < d->n; i++)
            tl_order[i] = i;
        if (o->sort_keys) {
            for (size_t i = 1; i < d->n; i++) { /* insertion sort: dicts are small */
                size_t k = tl_order[i], j = i;
                if (d->keys[k].kind != TV_STR)
                    return tl_fail(R, TMPL_EEVAL, line, "tojson: sort_keys needs string keys");
                while (j > 0 && str_cmp(d->keys[tl_order[j - 1]], d->keys[k]) > 0) {
                    tl_order[j] = tl_order[j - 1];
                    j--;
                }
                tl_order[j] = k;
            }
        }
        if (puts_(R, b, "{") < 0)
            return R->err_code;
        for (size_t i = 0; i < d->n; i++) {
            struct tv k = d->keys[tl_order[i]];
            if (i && put(R, b, o->item_sep.u.s, o->item_sep.len) < 0)
                return R->err_code;
            if (json_newline(R, b, o, level + 1) < 0)
                return R->err_code;
            if (k.kind == TV_STR) {
                if (json_string(R, b, k.u.s, k.len, o->ascii) < 0)
                    return R->err_code;
            } else if (k.kind == TV_NONE || k.kind == TV_BOOL || k.kind == TV_INT || k.kind == TV_FLOAT) {
                struct strbuf t = {0};
                int rc = tl_write_json(R, &t, k, o, level + 1, line);
                if (rc >= 0)
                    rc = json_string(R, b, t.data ? t.data : "", t.len, false);
                free(t.data);
                if (rc < 0)
                    return rc;
            } else {
                return tl_fail(R, TMPL_EEVAL, line, "tojson: keys must be str, int, float, bool or None, not %s",
                               tv_type_name(k));
            }
            if (put(R, b, o->key_sep.u.s, o->key_sep.len) < 0 ||
                tl_write_json(R, b, d->vals[tl_order[i]], o, level + 1, line) < 0)
                return R->err_code;
        }
        if (json_newline(R, b, o, level) < 0)
            return R->err_code;
        return puts_(R, b, "}");
    }
    default:
        return tl_fail(R, TMPL_EEVAL, line, "Object of type %s is not JSON serializable", tv_type_name(v));
    }
}

/* ------------------------------------------------------------------ comparison */

/* Value equality; containers nested deeper than TV_EQ_MAX_DEPTH (only a hostile
 * template builds those) compare unequal instead of recursing further. */
#define TV_EQ_MAX_DEPTH 100

static bool equal_depth(struct tv a, struct tv b, int depth)
{
    if (depth > TV_EQ_MAX_DEPTH)
        return false;
    if (tv_is_num(a) && tv_is_num(b)) {
        if (a.kind == TV_FLOAT || b.kind == TV_FLOAT)
            return tv_as_float(a) == tv_as_float(b);
        return tv_as_int(a) == tv_as_int(b);
    }
    if (a.kind != b.kind || a.gen != b.gen)
        return false;
    if (a.gen)
        return a.u.l == b.u.l;
    switch (a.kind) {
    case TV_UNDEF:
    case TV_NONE:
        return true;
    case TV_STR:
        return a.len == b.len && memcmp(a.u.s, b.u.s, a.len) == 0;
    case TV_LIST:
    case TV_TUPLE:
        if (a.u.l->n != b.u.l->n)
            return false;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!equal_depth(a.u.l->items[i], b.u.l->items[i], depth + 1))
                return false;
        return true;
    case TV_DICT:
        if (a.u.d->n != b.u.d->n)
            return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            struct tv *o = tl_dict_find(b.u.d, a.u.d->keys[i]);
            if (!o || !equal_depth(a.u.d->vals[i], *o, depth + 1))
                return false;
        }
        return true;
    case TV_NS:
        return a.u.d == b.u.d;
    case TV_LOOP:
        return a.u.loop == b.u.loop;
    case TV_FUNC:
        return a.u.fn == b.u.fn;
    default:
        return false;
    }
}

bool tv_equal(struct tv a, struct tv b)
{
    return equal_depth(a, b, 0);
}

/* Python ordering: *out < 0, 0, > 0. Numbers, strings and sequences only. */
int tl_order(struct rctx *R, struct tv a, struct tv b, int *out, int line, int depth)
{
    if (depth > 100)
        return tl_fail(R, TMPL_ELIMIT, line, "value nested too deeply to compare");
    if (tv_is_num(a) && tv_is_num(b)) {
        if (a.kind == TV_FLOAT || b.kind == TV_FLOAT) {
            double x = tv_as_float(a), y = tv_as_float(b);
            *out = x < y ? -1 : x > y;
        } else {
            int64_t x = tv_as_int(a), y = tv_as_int(b);
            *out = x < y ? -1 : x > y;
        }
        return 0;
    }
    if (a.kind == TV_STR && b.kind == TV_STR) {
        *out = str_cmp(a, b);
        return 0;
    }
    if (tv_is_seq(a) && a.kind == b.kind) {
        size_t n = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (tv_equal(a.u.l->items[i], b.u.l->items[i]))
                continue;
            return tl_order(R, a.u.l->items[i], b.u.l->items[i], out, line, depth + 1);
        }
        *out = a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n;
        return 0;
    }
    if (a.kind == TV_UNDEF)
        return tl_undefined(R, line, a);
    if (b.kind == TV_UNDEF)
        return tl_undefined(R, line, b);
    return tl_fail(R, TMPL_EEVAL, line, "ordering not supported between instances of '%s' and '%s'",
                   tv_type_name(a), tv_type_name(b));
}

static bool str_contains(struct tv hay, struct tv needle)
{
    if (needle.len == 0)
        return true;
    if (needle.len > hay.len)
        return false;
    return memmem(hay.u.s, hay.len, needle.u.s, needle.len) != NULL;
}

int tl_contains(struct rctx *R, struct tv container, struct tv item, bool *out, int line)
{
    switch (container.kind) {
    case TV_STR:
        if (item.kind != TV_STR)
            return tl_fail(R, TMPL_EEVAL, line, "'in <string>' requires string as left operand, not %s",
                           tv_type_name(item));
        *out = str_contains(container, item);
        return 0;
    case TV_LIST:
    case TV_TUPLE:
        *out = false;
        for (size_t i = 0; i < container.u.l->n && !*out; i++)
            *out = tv_equal(container.u.l->items[i], item);
        return 0;
    case TV_DICT:
    case TV_NS:
        *out = tl_dict_find(container.u.d, item) != NULL;
        return 0;
    case TV_UNDEF:
        *out = false;
        return 0;
    default:
        return tl_fail(R, TMPL_EEVAL, line, "argument of type '%s' is not iterable", tv_type_name(container));
    }
}

int tl_compare(struct rctx *R, int op, struct tv a, struct tv b, bool *out, int line)
{
    int c;
    int rc;
    switch (op) {
    case OP_EQ:
        *out = tv_equal(a, b);
        return 0;
    case OP_NE:
        *out = !tv_equal(a, b);
        return 0;
    case OP_IN:
        return tl_contains(R, b, a, out, line);
    case OP_NOTIN:
        if ((rc = tl_contains(R, b, a, out, line)) < 0)
            return rc;
        *out = !*out;
        return 0;
    default:
        if ((rc = tl_order(R, a, b, &c, line, 0)) < 0)
            return rc;
        *out = op == OP_LT ? c < 0 : op == OP_LE ? c <= 0 : op == OP_GT ? c > 0 : c >= 0;
        return 0;
    }
}

/* ------------------------------------------------------------------ arithmetic */

int tl_concat(struct rctx *R, struct tv a, struct tv b, struct tv *out, int line)
{
    if (a.len > SIZE_MAX / 2 || b.len > SIZE_MAX / 2)
        return tl_nomem(R, line);
    char *s = tl_alloc(R, a.len + b.len + 1);
    if (!s)
        return tl_nomem(R, line);
    memcpy(s, a.u.s, a.len);
    memcpy(s + a.len, b.u.s, b.len);
    s[a.len + b.len] = 0;
    *out = tv_str(s, a.len + b.len);
    return 0;
}

int tl_repeat(struct rctx *R, struct tv seq, int64_t times, struct tv *out, int line)
{
    if (times < 0 || (seq.kind == TV_STR ? seq.len == 0 : seq.u.l->n == 0))
        times = 0; /* nothing to repeat: do not loop `times` times over it */
    if (seq.kind == TV_STR) {
        if (seq.len && (uint64_t)times > (R->arena.cap_bytes ? R->arena.cap_bytes : SIZE_MAX) / seq.len)
            return tl_fail(R, TMPL_ELIMIT, line, "string repetition too large");
        size_t n = seq.len * (size_t)times;
        char *s = tl_alloc(R, n + 1);
        if (!s)
            return tl_nomem(R, line);
        for (int64_t i = 0; i < times; i++)
            memcpy(s + (size_t)i * seq.len, seq.u.s, seq.len);
        s[n] = 0;
        *out = tv_str(s, n);
        return 0;
    }
    size_t n = seq.u.l->n;
    if (n && (uint64_t)times > R->max_iters / n)
        return tl_fail(R, TMPL_ELIMIT, line, "list repetition too large");
    if (tl_list_value(R, n * (size_t)times, seq.kind, out, line) < 0)
        return R->err_code;
    for (int64_t i = 0; i < times; i++)
        for (size_t k = 0; k < n; k++)
            out->u.l->items[out->u.l->n++] = seq.u.l->items[k];
    return 0;
}

static int arith_error(struct rctx *R, const char *op, struct tv a, struct tv b, int line)
{
    if (a.kind == TV_UNDEF)
        return tl_undefined(R, line, a);
    if (b.kind == TV_UNDEF)
        return tl_undefined(R, line, b);
    return tl_fail(R, TMPL_EEVAL, line, "unsupported operand type(s) for %s: '%s' and '%s'", op,
                   tv_type_name(a), tv_type_name(b));
}

static int int_arith(struct rctx *R, int op, int64_t x, int64_t y, struct tv *out, int line)
{
    int64_t r = 0;
    bool ovf = false;
    switch (op) {
    case OP_ADD:
        ovf = __builtin_add_overflow(x, y, &r);
        break;
    case OP_SUB:
        ovf = __builtin_sub_overflow(x, y, &r);
        break;
    case OP_MUL:
        ovf = __builtin_mul_overflow(x, y, &r);
        break;
    case OP_FLOORDIV:
    case OP_MOD:
        if (y == 0)
            return tl_fail(R, TMPL_EEVAL, line, "integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) {
            ovf = op == OP_FLOORDIV;
            r = 0;
            break;
        }
        {
            int64_t q = x / y, m = x % y;
            if (m != 0 && ((m < 0) != (y < 0))) {
                q--;
                m += y;
            }
            r = op == OP_FLOORDIV ? q : m;
        }
        break;
    case OP_POW:
        if (y < 0) {
            *out = tv_float(pow((double)x, (double)y));
            return 0;
        }
        r = 1;
        for (int64_t i = 0; i < y && !ovf; i++) {
            ovf = __builtin_mul_overflow(r, x, &r);
            if (r == 0 || r == 1)
                break;
            if (r == -1 && x == -1) {
                r = (y % 2) ? -1 : 1;
                break;
            }
        }
        break;
    }
    if (ovf)
        return tl_fail(R, TMPL_EEVAL, line, "integer overflow");
    *out = tv_int(r);
    return 0;
}

int tl_binop(struct rctx *R, int op, struct tv a, struct tv b, struct tv *out, int line)
{
    static const char *const names[] = {
        [OP_ADD] = "+", [OP_SUB] = "-", [OP_MUL] = "*", [OP_DIV] = "/", [OP_FLOORDIV] = "//",
        [OP_MOD] = "%", [OP_POW] = "**",
    };
    if (op == OP_CONCAT) {
        struct tv x, y;
        if (tl_to_str(R, a, &x, line) < 0 || tl_to_str(R, b, &y, line) < 0)
            return R->err_code;
        return tl_concat(R, x, y, out, line);
    }
    if (tv_is_num(a) && tv_is_num(b)) {
        if (op == OP_DIV || a.kind == TV_FLOAT || b.kind == TV_FLOAT) {
            double x = tv_as_float(a), y = tv_as_float(b), r;
            switch (op) {
            case OP_ADD: r = x + y; break;
            case OP_SUB: r = x - y; break;
            case OP_MUL: r = x * y; break;
            case OP_POW: r = pow(x, y); break;
            default:
                if (y == 0.0)
                    return tl_fail(R, TMPL_EEVAL, line, "division by zero");
                if (op == OP_DIV)
                    r = x / y;
                else if (op == OP_FLOORDIV)
                    r = floor(x / y);
                else {
                    r = fmod(x, y);
                    if (r != 0.0 && ((r < 0) != (y < 0)))
                        r += y;
                }
            }
            *out = tv_float(r);
            return 0;
        }
        return int_arith(R, op, tv_as_int(a), tv_as_int(b), out, line);
    }
    if (op == OP_ADD && a.kind == TV_STR && b.kind == TV_STR && a.markup != b.markup) {
        /* Markup + str escapes the str (markupsafe), and the sum is Markup */
        if ((a.markup ? tl_escape(R, b, &b, line) : tl_escape(R, a, &a, line)) < 0 ||
            tl_concat(R, a, b, out, line) < 0)
            return R->err_code;
        out->markup = true;
        return 0;
    }
    if (op == OP_ADD && a.kind == TV_STR && b.kind == TV_STR) {
        if (tl_concat(R, a, b, out, line) < 0)
            return R->err_code;
        out->markup = a.markup;
        return 0;
    }
    if (op == OP_ADD && tv_is_seq(a) && a.kind == b.kind) {
        size_t n = a.u.l->n + b.u.l->n;
        if (tl_list_value(R, n, a.kind, out, line) < 0)
            return R->err_code;
        memcpy(out->u.l->items, a.u.l->items, a.u.l->n * sizeof(struct tv));
        memcpy(out->u.l->items + a.u.l->n, b.u.l->items, b.u.l->n * sizeof(struct tv));
        out->u.l->n = n;
        return 0;
    }
    if (op == OP_MUL && (a.kind == TV_STR || tv_is_seq(a)) && tv_is_intlike(b))
        return tl_repeat(R, a, tv_as_int(b), out, line);
    if (op == OP_MUL && (b.kind == TV_STR || tv_is_seq(b)) && tv_is_intlike(a))
        return tl_repeat(R, b, tv_as_int(a), out, line);
    return arith_error(R, names[op], a, b, line);
}

int tl_unary(struct rctx *R, bool neg, struct tv a, struct tv *out, int line)
{
    if (a.kind == TV_FLOAT) {
        *out = tv_float(neg ? -a.u.f : a.u.f);
        return 0;
    }
    if (tv_is_intlike(a)) {
        int64_t x = tv_as_int(a);
        if (neg && x == INT64_MIN)
            return tl_fail(R, TMPL_EEVAL, line, "integer overflow");
        *out = tv_int(neg ? -x : x);
        return 0;
    }
    if (a.kind == TV_UNDEF)
        return tl_undefined(R, line, a);
    return tl_fail(R, TMPL_EEVAL, line, "bad operand type for unary %c: '%s'", neg ? '-' : '+', tv_type_name(a));
}

/* ------------------------------------------------------------------ iteration */

static int str_chars(struct rctx *R, struct tv s, struct tv *out, int line)
{
    size_t n = tl_u8_count(s.u.s, s.len);
    if (tl_list_value(R, n, TV_LIST, out, line) < 0)
        return R->err_code;
    for (size_t i = 0; i < s.len;) {
        size_t l = u8_char_len(s.u.s, s.len, i);
        struct tv c = tv_str(s.u.s + i, l);
        c.taint = s.taint ? tl_taint_all : NULL; /* a character of message text */
        out->u.l->items[out->u.l->n++] = c;
        i += l;
    }
    return 0;
}

int tl_iterable(struct rctx *R, struct tv v, struct tv *out, int line)
{
    switch (v.kind) {
    case TV_LIST:
    case TV_TUPLE:
        *out = v;
        out->kind = TV_LIST;
        out->gen = false;
        return 0;
    case TV_STR:
        return str_chars(R, v, out, line);
    case TV_DICT:
        if (tl_list_value(R, v.u.d->n, TV_LIST, out, line) < 0)
            return R->err_code;
        if (v.u.d->n) /* an empty dict may have no key array at all */
            memcpy(out->u.l->items, v.u.d->keys, v.u.d->n * sizeof(struct tv));
        out->u.l->n = v.u.d->n;
        return 0;
    case TV_UNDEF:
        return tl_list_value(R, 0, TV_LIST, out, line);
    default:
        return tl_fail(R, TMPL_EEVAL, line, "'%s' object is not iterable", tv_type_name(v));
    }
}

/* ------------------------------------------------------------------ arguments */

/* Positional argument i or keyword `name`, or NULL. */
struct tv *tl_arg(struct targs *a, int i, const char *name)
{
    if (i >= 0 && i < a->npos)
        return &a->pos[i];
    if (name)
        for (int k = 0; k < a->nkw; k++)
            if (tv_is_cstr(a->kwname[k], name))
                return &a->kw[k];
    return NULL;
}

int tl_want_str(struct rctx *R, struct tv *v, const char *what, int line)
{
    if (!v || v->kind != TV_STR)
        return tl_fail(R, TMPL_EEVAL, line, "%s: expected a string argument", what);
    return 0;
}

int tl_want_int(struct rctx *R, struct tv *v, const char *what, int line)
{
    if (!v || !tv_is_intlike(*v))
        return tl_fail(R, TMPL_EEVAL, line, "%s: expected an integer argument", what);
    return 0;
}

/* ------------------------------------------------------------------ string helpers */

int tl_str_new(struct rctx *R, size_t n, char **p, int line)
{
    *p = tl_alloc(R, n + 1);
    if (!*p)
        return tl_nomem(R, line);
    (*p)[n] = 0;
    return 0;
}

/* Case comes from utf8proc's Unicode tables; a mapping is used only where it keeps
 * the UTF-8 length (as the string operations here need). */
bool tl_is_cased(uint32_t c)
{
    utf8proc_int32_t u = (utf8proc_int32_t)c;
    return utf8proc_toupper(u) != u || utf8proc_tolower(u) != u || c == 0xdf;
}

/* Decodes the character at s[i] (length l); invalid sequences give U+FFFD. */
uint32_t tl_u8_decode(const char *s, size_t l)
{
    utf8proc_int32_t cp;
    if (utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)l, &cp) != (utf8proc_ssize_t)l)
        return 0xfffd;
    return (uint32_t)cp;
}

static bool title_boundary(uint32_t c)
{
    /* jinja2's |title starts a word after -, whitespace, ( { [ < */
    return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || c == ' ' ||
           (c >= 0x09 && c <= 0x0d);
}

int tl_case_map(struct rctx *R, struct tv s, int mode, struct tv *out, int line)
{
    /* mode: 0 lower, 1 upper, 2 capitalize, 3 str.title, 4 jinja2's |title */
    char *p;
    if (tl_str_new(R, s.len, &p, line) < 0)
        return R->err_code;
    bool word_start = true;
    size_t k = 0;
    utf8proc_uint8_t buf[4];
    for (size_t i = 0; i < s.len;) {
        size_t l = u8_char_len(s.u.s, s.len, i);
        uint32_t c = tl_u8_decode(s.u.s + i, l);
        bool up = mode == 1 || (mode == 2 && i == 0) || (mode >= 3 && word_start);
        uint32_t m = (uint32_t)(up ? utf8proc_toupper((utf8proc_int32_t)c)
                                   : utf8proc_tolower((utf8proc_int32_t)c));
        bool cased = tl_is_cased(c);
        if (mode == 3)
            word_start = !cased;
        else if (mode == 4)
            word_start = title_boundary(c);
        if (c == 0xdf && up) {
            memcpy(p + k, "SS", 2); /* Python: 'ß'.upper() == 'SS', same byte length */
        } else if (m != c && utf8proc_encode_char((utf8proc_int32_t)m, buf) == (utf8proc_ssize_t)l) {
            memcpy(p + k, buf, l); /* only where the UTF-8 length stays, as the string's does */
        } else {
            memcpy(p + k, s.u.s + i, l);
        }
        k += l;
        i += l;
    }
    *out = tv_str(p, s.len);
    return 0;
}

static bool in_chars(struct tv chars, const char *s, size_t l)
{
    for (size_t i = 0; i < chars.len;) {
        size_t cl = u8_char_len(chars.u.s, chars.len, i);
        if (cl == l && memcmp(chars.u.s + i, s, l) == 0)
            return true;
        i += cl;
    }
    return false;
}

/* str.strip / lstrip / rstrip: whitespace, or the characters of `chars`. */
struct tv tl_strip(struct tv s, const struct tv *chars, bool left, bool right)
{
    size_t a = 0, b = s.len;
    bool ws = !chars || chars->kind != TV_STR;
    while (left && a < b) {
        size_t l = ws ? tl_space_len(s.u.s + a, b - a) : u8_char_len(s.u.s, b, a);
        if (!l || (!ws && !in_chars(*chars, s.u.s + a, l)))
            break;
        a += l;
    }
    while (right && b > a) {
        size_t l;
        if (ws) {
            l = space_len_before(s.u.s, a, b);
        } else {
            l = 1;
            while (l < b - a && ((unsigned char)s.u.s[b - l] & 0xc0) == 0x80)
                l++;
            if (!in_chars(*chars, s.u.s + b - l, l))
                l = 0;
        }
        if (!l)
            break;
        b -= l;
    }
    return tv_str(s.u.s + a, b - a);
}

/* str.split(sep=None, maxsplit=-1); rsplit when `from_right`. */
int tl_split(struct rctx *R, struct tv s, struct tv *sep, int64_t maxsplit, bool from_right,
                 struct tv *out, int line)
{
    size_t cap = 1;
    if (sep && sep->kind == TV_STR) {
        if (sep->len == 0)
            return tl_fail(R, TMPL_EEVAL, line, "empty separator");
        for (const char *p = s.u.s; (p = memmem(p, s.len - (size_t)(p - s.u.s), sep->u.s, sep->len));
             p += sep->len)
            cap++;
    } else {
        cap = s.len / 2 + 2;
    }
    if (tl_list_value(R, cap, TV_LIST, out, line) < 0)
        return R->err_code;
    struct tv_list *l = out->u.l;
    int64_t splits = 0;
    if (sep && sep->kind == TV_STR) {
        if (!from_right) {
            size_t start = 0;
            const char *p;
            while ((maxsplit < 0 || splits < maxsplit) &&
                   (p = memmem(s.u.s + start, s.len - start, sep->u.s, sep->len))) {
                size_t at = (size_t)(p - s.u.s);
                l->items[l->n++] = tv_str(s.u.s + start, at - start);
                start = at + sep->len;
                splits++;
            }
            l->items[l->n++] = tv_str(s.u.s + start, s.len - start);
        } else {
            size_t end = s.len;
            size_t count = 0;
            struct tv *tmp = l->items;
            while ((maxsplit < 0 || splits < maxsplit) && end >= sep->len) {
                size_t i = end - sep->len + 1;
                bool found = false;
                while (i-- > 0)
                    if (memcmp(s.u.s + i, sep->u.s, sep->len) == 0) {
                        found = true;
                        break;
                    }
                if (!found)
                    break;
                tmp[count++] = tv_str(s.u.s + i + sep->len, end - i - sep->len);
                end = i;
                splits++;
            }
            tmp[count++] = tv_str(s.u.s, end);
            for (size_t i = 0; i < count / 2; i++) { /* reverse into tl_order */
                struct tv t = tmp[i];
                tmp[i] = tmp[count - 1 - i];
                tmp[count - 1 - i] = t;
            }
            l->n = count;
        }
        return 0;
    }
    /* whitespace tl_split: runs of whitespace, no empty strings */
    size_t i = 0;
    if (from_right) {
        struct tv t = tl_strip(s, NULL, false, true);
        size_t end = t.len;
        size_t count = 0;
        while (end > 0) {
            size_t st = end;
            while (st > 0 && !space_len_before(s.u.s, 0, st))
                st--;
            if (maxsplit >= 0 && splits >= maxsplit) {
                l->items[count++] = tv_str(s.u.s, end);
                break;
            }
            l->items[count++] = tv_str(s.u.s + st, end - st);
            splits++;
            end = st;
            size_t w;
            while (end > 0 && (w = space_len_before(s.u.s, 0, end)))
                end -= w;
        }
        for (size_t k = 0; k < count / 2; k++) {
            struct tv x = l->items[k];
            l->items[k] = l->items[count - 1 - k];
            l->items[count - 1 - k] = x;
        }
        l->n = count;
        return 0;
    }
    for (;;) {
        size_t w;
        while (i < s.len && (w = tl_space_len(s.u.s + i, s.len - i)))
            i += w;
        if (i >= s.len)
            break;
        if (maxsplit >= 0 && splits >= maxsplit) {
            struct tv rest = tl_strip(tv_str(s.u.s + i, s.len - i), NULL, false, true);
            l->items[l->n++] = rest;
            break;
        }
        size_t st = i;
        while (i < s.len && !tl_space_len(s.u.s + i, s.len - i))
            i++;
        l->items[l->n++] = tv_str(s.u.s + st, i - st);
        splits++;
    }
    return 0;
}

int tl_replace(struct rctx *R, struct tv s, struct tv old, struct tv new, int64_t count,
                   struct tv *out, int line)
{
    struct strbuf b = {0};
    size_t i = 0;
    int64_t done = 0;
    int rc = 0;
    if (old.len == 0) {
        /* Python inserts `new` between characters and at both ends */
        while (rc >= 0 && (count < 0 || done < count)) {
            rc = tl_sbuf_put(R, &b, new.u.s, new.len, line);
            done++;
            if (i >= s.len || rc < 0)
                break;
            size_t l = u8_char_len(s.u.s, s.len, i);
            rc = tl_sbuf_put(R, &b, s.u.s + i, l, line);
            i += l;
        }
    } else {
        const char *p;
        while (rc >= 0 && (count < 0 || done < count) &&
               (p = memmem(s.u.s + i, s.len - i, old.u.s, old.len))) {
            size_t at = (size_t)(p - s.u.s);
            if ((rc = tl_sbuf_put(R, &b, s.u.s + i, at - i, line)) >= 0)
                rc = tl_sbuf_put(R, &b, new.u.s, new.len, line);
            i = at + old.len;
            done++;
        }
    }
    if (rc >= 0)
        rc = tl_sbuf_put(R, &b, s.u.s + i, s.len - i, line);
    return tl_sbuf_finish(R, &b, rc, out, line);
}

int tl_join(struct rctx *R, struct tv items, struct tv sep, struct tv *out, int line)
{
    struct strbuf b = {0};
    int rc = 0;
    struct tv_list *l = items.u.l;
    for (size_t i = 0; i < l->n && rc >= 0; i++) {
        struct tv s;
        if (i && (rc = tl_sbuf_put(R, &b, sep.u.s, sep.len, line)) < 0)
            break;
        if ((rc = tl_to_str(R, l->items[i], &s, line)) >= 0)
            rc = tl_sbuf_put(R, &b, s.u.s, s.len, line);
    }
    return tl_sbuf_finish(R, &b, rc, out, line);
}

/* ------------------------------------------------------------------ subscripts */

static bool resolve_index(int64_t i, size_t n, size_t *out)
{
    if (i < 0)
        i += (int64_t)n;
    if (i < 0 || (uint64_t)i >= n)
        return false;
    *out = (size_t)i;
    return true;
}

int tl_getitem(struct rctx *R, struct tv obj, struct tv key, struct tv *out, int line)
{
    size_t idx;
    switch (obj.kind) {
    case TV_UNDEF:
        return tl_undefined(R, line, obj);
    case TV_DICT: {
        struct tv *v = tl_dict_find(obj.u.d, key);
        if (v) {
            *out = *v;
            return 0;
        }
        break;
    }
    case TV_LIST:
    case TV_TUPLE:
        if (tv_is_intlike(key) && !obj.gen) {
            if (resolve_index(tv_as_int(key), obj.u.l->n, &idx))
                *out = obj.u.l->items[idx];
            else
                *out = tv_undef();
            return 0;
        }
        break;
    case TV_STR:
        if (tv_is_intlike(key)) {
            size_t n = tl_u8_count(obj.u.s, obj.len);
            if (resolve_index(tv_as_int(key), n, &idx)) {
                size_t off = u8_offset(obj.u.s, obj.len, idx);
                *out = tv_str(obj.u.s + off, u8_char_len(obj.u.s, obj.len, off));
            } else {
                *out = tv_undef();
            }
            return 0;
        }
        break;
    default:
        break;
    }
    if (key.kind == TV_STR)
        return tl_getattr(R, obj, key, out, line);
    *out = tv_undef();
    return 0;
}

int tl_slice(struct rctx *R, struct tv obj, const struct tv parts[3], struct tv *out, int line)
{
    if (obj.kind == TV_UNDEF)
        return tl_undefined(R, line, obj);
    for (int i = 0; i < 3; i++)
        if (parts[i].kind != TV_NONE && !tv_is_intlike(parts[i]))
            return tl_fail(R, TMPL_EEVAL, line, "slice indices must be integers or None");
    bool str = obj.kind == TV_STR;
    if (!str && !tv_is_seq(obj)) {
        *out = tv_undef(); /* jinja2: a failed subscript is undefined */
        return 0;
    }
    int64_t n = (int64_t)(str ? tl_u8_count(obj.u.s, obj.len) : obj.u.l->n);
    int64_t stepv = parts[2].kind == TV_NONE ? 1 : tv_as_int(parts[2]);
    if (stepv == 0)
        return tl_fail(R, TMPL_EEVAL, line, "slice step cannot be zero");
    int64_t lo, hi;
    if (stepv > 0) {
        lo = parts[0].kind == TV_NONE ? 0 : tv_as_int(parts[0]);
        hi = parts[1].kind == TV_NONE ? n : tv_as_int(parts[1]);
        if (lo < 0)
            lo = lo + n < 0 ? 0 : lo + n;
        if (hi < 0)
            hi = hi + n < 0 ? 0 : hi + n;
        if (lo > n)
            lo = n;
        if (hi > n)
            hi = n;
    } else {
        lo = parts[0].kind == TV_NONE ? n - 1 : tv_as_int(parts[0]);
        hi = parts[1].kind == TV_NONE ? -1 : tv_as_int(parts[1]);
        if (lo < 0)
            lo = lo + n < 0 ? -1 : lo + n;
        else if (lo >= n)
            lo = n - 1;
        if (parts[1].kind != TV_NONE) {
            if (hi < 0)
                hi = hi + n < 0 ? -1 : hi + n;
            else if (hi >= n)
                hi = n - 1;
        }
    }
    size_t count = 0;
    if (stepv > 0 && hi > lo)
        count = (size_t)((hi - lo + stepv - 1) / stepv);
    else if (stepv < 0 && lo > hi)
        count = (size_t)((lo - hi + (-stepv) - 1) / (-stepv));
    if (!str) {
        if (tl_list_value(R, count, obj.kind, out, line) < 0)
            return R->err_code;
        for (size_t k = 0; k < count; k++)
            out->u.l->items[out->u.l->n++] = obj.u.l->items[lo + (int64_t)k * stepv];
        return 0;
    }
    if (stepv == 1) {
        size_t a = u8_offset(obj.u.s, obj.len, (size_t)lo);
        size_t b = count ? u8_offset(obj.u.s, obj.len, (size_t)hi) : a;
        *out = tv_str(obj.u.s + a, b - a);
        return 0;
    }
    struct tv chars;
    if (str_chars(R, obj, &chars, line) < 0)
        return R->err_code;
    char *p;
    if (tl_str_new(R, obj.len, &p, line) < 0)
        return R->err_code;
    size_t k = 0;
    for (size_t c = 0; c < count; c++) {
        struct tv ch = chars.u.l->items[lo + (int64_t)c * stepv];
        memcpy(p + k, ch.u.s, ch.len);
        k += ch.len;
    }
    p[k] = 0;
    *out = tv_str(p, k);
    return 0;
}

