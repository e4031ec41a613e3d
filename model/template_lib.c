/* template_lib.c - chat templates: what values can do. Python's str()/repr(),
 * json.dumps, equality, ordering and arithmetic; attribute, item and slice access;
 * and the library real chat templates call: jinja2's filters and tests, the str and
 * dict methods, and the globals range, namespace, dict, raise_exception and
 * strftime_now.
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

static struct tv tv_float(double f)
{
    struct tv v = {.kind = TV_FLOAT, .u.f = f};
    return v;
}

static struct tv tv_none(void)
{
    struct tv v = {.kind = TV_NONE};
    return v;
}

static struct tv tv_undef(void)
{
    struct tv v = {.kind = TV_UNDEF};
    return v;
}

bool tv_str_eq(struct tv s, const char *p, size_t n)
{
    return s.kind == TV_STR && s.len == n && memcmp(s.u.s, p, n) == 0;
}

static bool is_cstr(struct tv s, const char *p)
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

static const char *type_name(struct tv v)
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

static bool is_num(struct tv v)
{
    return v.kind == TV_INT || v.kind == TV_FLOAT || v.kind == TV_BOOL;
}

static bool is_intlike(struct tv v)
{
    return v.kind == TV_INT || v.kind == TV_BOOL;
}

static int64_t as_int(struct tv v)
{
    return v.kind == TV_BOOL ? (int64_t)v.u.b : v.u.i;
}

static double as_float(struct tv v)
{
    return v.kind == TV_FLOAT ? v.u.f : (double)as_int(v);
}

/* A real list or tuple (not a generator). */
static bool is_seq(struct tv v)
{
    return (v.kind == TV_LIST || v.kind == TV_TUPLE) && !v.gen;
}


/* ------------------------------------------------------------------ UTF-8 */

static size_t u8_count(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xc0) != 0x80;
    return c;
}

/* Byte offset of code point `idx` (idx may equal the count: returns n). */
static size_t u8_offset(const char *s, size_t n, size_t idx)
{
    size_t i = 0;
    while (i < n) {
        if (((unsigned char)s[i] & 0xc0) != 0x80) {
            if (idx == 0)
                return i;
            idx--;
        }
        i++;
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
static size_t space_len(const char *p, size_t n)
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
        if (space_len(s + end - w, w) == w)
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

static int list_value(struct rctx *R, size_t cap, enum tv_kind kind, struct tv *out, int line)
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

static bool values_eq(struct tv a, struct tv b);

static struct tv *dict_find(struct tv_dict *d, struct tv key)
{
    for (size_t i = 0; i < d->n; i++)
        if (values_eq(d->keys[i], key))
            return &d->vals[i];
    return NULL;
}

int tl_dict_set(struct rctx *R, struct tv dv, struct tv key, struct tv val, int line)
{
    struct tv_dict *d = dv.u.d;
    struct tv *slot = dict_find(d, key);
    if (slot) {
        *slot = val;
        return 0;
    }
    if (key.kind == TV_LIST || key.kind == TV_DICT || key.kind == TV_NS || key.kind == TV_UNDEF)
        return tl_fail(R, TMPL_EEVAL, line, "unhashable type: '%s'", type_name(key));
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

static int put(struct rctx *R, struct sbuf *b, const char *s, size_t n)
{
    return tl_sbuf_put(R, b, s, n, 0);
}

static int puts_(struct rctx *R, struct sbuf *b, const char *s)
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

static int write_repr(struct rctx *R, struct sbuf *b, struct tv v, int depth);

static int write_str_quoted(struct rctx *R, struct sbuf *b, struct tv v)
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

static int write_value(struct rctx *R, struct sbuf *b, struct tv v, bool repr, int depth)
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
        snprintf(num, sizeof(num), "%lld", (long long)v.u.i);
        return puts_(R, b, num);
    case TV_FLOAT:
        format_float(v.u.f, num, sizeof(num));
        return puts_(R, b, num);
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

static int write_repr(struct rctx *R, struct sbuf *b, struct tv v, int depth)
{
    return write_value(R, b, v, true, depth);
}

int tl_write_str(struct rctx *R, struct sbuf *b, struct tv v, int line)
{
    int rc = write_value(R, b, v, false, 0);
    if (rc < 0 && R->err_code && line) {
        /* messages from put() carry line 0; fine: the limit message names the cap */
    }
    return rc;
}

/* str(v) as a string value (strings are returned as they are). */
static int to_str(struct rctx *R, struct tv v, struct tv *out, int line)
{
    if (v.kind == TV_STR) {
        *out = v;
        return 0;
    }
    if (v.kind == TV_UNDEF) {
        *out = tv_str("", 0);
        return 0;
    }
    struct sbuf b = {0};
    int rc = tl_write_str(R, &b, v, line);
    if (rc >= 0) {
        char *s = tl_alloc(R, b.n + 1);
        if (!s)
            rc = tl_nomem(R, line);
        else {
            if (b.n)
                memcpy(s, b.p, b.n);
            s[b.n] = 0;
            *out = tv_str(s, b.n);
        }
    }
    free(b.p);
    return rc < 0 ? rc : 0;
}

struct json_opts {
    bool ascii;
    bool sort_keys;
    int indent;          /* -1: none */
    struct tv item_sep;  /* strings */
    struct tv key_sep;
};

static int json_string(struct rctx *R, struct sbuf *b, const char *s, size_t n, bool ascii)
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

static int json_newline(struct rctx *R, struct sbuf *b, const struct json_opts *o, int level)
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

static int write_json(struct rctx *R, struct sbuf *b, struct tv v, const struct json_opts *o,
                      int level, int line)
{
    char num[64];
    if (level > 100)
        return tl_fail(R, TMPL_ELIMIT, line, "value nested too deeply for tojson");
    switch (v.kind) {
    case TV_NONE:
        return puts_(R, b, "null");
    case TV_BOOL:
        return puts_(R, b, v.u.b ? "true" : "false");
    case TV_INT:
        snprintf(num, sizeof(num), "%lld", (long long)v.u.i);
        return puts_(R, b, num);
    case TV_FLOAT:
        if (isnan(v.u.f))
            return puts_(R, b, "NaN");
        if (isinf(v.u.f))
            return puts_(R, b, v.u.f < 0 ? "-Infinity" : "Infinity");
        format_float(v.u.f, num, sizeof(num));
        return puts_(R, b, num);
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
                write_json(R, b, l->items[i], o, level + 1, line) < 0)
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
        size_t *order = tl_alloc(R, d->n * sizeof(*order));
        if (!order)
            return tl_nomem(R, line);
        for (size_t i = 0; i < d->n; i++)
            order[i] = i;
        if (o->sort_keys) {
            for (size_t i = 1; i < d->n; i++) { /* insertion sort: dicts are small */
                size_t k = order[i], j = i;
                if (d->keys[k].kind != TV_STR)
                    return tl_fail(R, TMPL_EEVAL, line, "tojson: sort_keys needs string keys");
                while (j > 0 && str_cmp(d->keys[order[j - 1]], d->keys[k]) > 0) {
                    order[j] = order[j - 1];
                    j--;
                }
                order[j] = k;
            }
        }
        if (puts_(R, b, "{") < 0)
            return R->err_code;
        for (size_t i = 0; i < d->n; i++) {
            struct tv k = d->keys[order[i]];
            if (i && put(R, b, o->item_sep.u.s, o->item_sep.len) < 0)
                return R->err_code;
            if (json_newline(R, b, o, level + 1) < 0)
                return R->err_code;
            if (k.kind == TV_STR) {
                if (json_string(R, b, k.u.s, k.len, o->ascii) < 0)
                    return R->err_code;
            } else if (k.kind == TV_NONE || k.kind == TV_BOOL || k.kind == TV_INT || k.kind == TV_FLOAT) {
                struct sbuf t = {0};
                int rc = write_json(R, &t, k, o, level + 1, line);
                if (rc >= 0)
                    rc = json_string(R, b, t.p ? t.p : "", t.n, false);
                free(t.p);
                if (rc < 0)
                    return rc;
            } else {
                return tl_fail(R, TMPL_EEVAL, line, "tojson: keys must be str, int, float, bool or None, not %s",
                               type_name(k));
            }
            if (put(R, b, o->key_sep.u.s, o->key_sep.len) < 0 ||
                write_json(R, b, d->vals[order[i]], o, level + 1, line) < 0)
                return R->err_code;
        }
        if (json_newline(R, b, o, level) < 0)
            return R->err_code;
        return puts_(R, b, "}");
    }
    default:
        return tl_fail(R, TMPL_EEVAL, line, "Object of type %s is not JSON serializable", type_name(v));
    }
}

/* ------------------------------------------------------------------ comparison */

static bool values_eq(struct tv a, struct tv b)
{
    if (is_num(a) && is_num(b)) {
        if (a.kind == TV_FLOAT || b.kind == TV_FLOAT)
            return as_float(a) == as_float(b);
        return as_int(a) == as_int(b);
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
            if (!values_eq(a.u.l->items[i], b.u.l->items[i]))
                return false;
        return true;
    case TV_DICT:
        if (a.u.d->n != b.u.d->n)
            return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            struct tv *o = dict_find(b.u.d, a.u.d->keys[i]);
            if (!o || !values_eq(a.u.d->vals[i], *o))
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

/* Python ordering: *out < 0, 0, > 0. Numbers, strings and sequences only. */
static int order(struct rctx *R, struct tv a, struct tv b, int *out, int line, int depth)
{
    if (depth > 100)
        return tl_fail(R, TMPL_ELIMIT, line, "value nested too deeply to compare");
    if (is_num(a) && is_num(b)) {
        if (a.kind == TV_FLOAT || b.kind == TV_FLOAT) {
            double x = as_float(a), y = as_float(b);
            *out = x < y ? -1 : x > y;
        } else {
            int64_t x = as_int(a), y = as_int(b);
            *out = x < y ? -1 : x > y;
        }
        return 0;
    }
    if (a.kind == TV_STR && b.kind == TV_STR) {
        *out = str_cmp(a, b);
        return 0;
    }
    if (is_seq(a) && a.kind == b.kind) {
        size_t n = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (values_eq(a.u.l->items[i], b.u.l->items[i]))
                continue;
            return order(R, a.u.l->items[i], b.u.l->items[i], out, line, depth + 1);
        }
        *out = a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n;
        return 0;
    }
    if (a.kind == TV_UNDEF)
        return tl_undefined(R, line, a);
    if (b.kind == TV_UNDEF)
        return tl_undefined(R, line, b);
    return tl_fail(R, TMPL_EEVAL, line, "ordering not supported between instances of '%s' and '%s'",
                   type_name(a), type_name(b));
}

static bool str_contains(struct tv hay, struct tv needle)
{
    if (needle.len == 0)
        return true;
    if (needle.len > hay.len)
        return false;
    return memmem(hay.u.s, hay.len, needle.u.s, needle.len) != NULL;
}

static int contains(struct rctx *R, struct tv container, struct tv item, bool *out, int line)
{
    switch (container.kind) {
    case TV_STR:
        if (item.kind != TV_STR)
            return tl_fail(R, TMPL_EEVAL, line, "'in <string>' requires string as left operand, not %s",
                           type_name(item));
        *out = str_contains(container, item);
        return 0;
    case TV_LIST:
    case TV_TUPLE:
        *out = false;
        for (size_t i = 0; i < container.u.l->n && !*out; i++)
            *out = values_eq(container.u.l->items[i], item);
        return 0;
    case TV_DICT:
    case TV_NS:
        *out = dict_find(container.u.d, item) != NULL;
        return 0;
    case TV_UNDEF:
        *out = false;
        return 0;
    default:
        return tl_fail(R, TMPL_EEVAL, line, "argument of type '%s' is not iterable", type_name(container));
    }
}

int tl_compare(struct rctx *R, int op, struct tv a, struct tv b, bool *out, int line)
{
    int c;
    int rc;
    switch (op) {
    case OP_EQ:
        *out = values_eq(a, b);
        return 0;
    case OP_NE:
        *out = !values_eq(a, b);
        return 0;
    case OP_IN:
        return contains(R, b, a, out, line);
    case OP_NOTIN:
        if ((rc = contains(R, b, a, out, line)) < 0)
            return rc;
        *out = !*out;
        return 0;
    default:
        if ((rc = order(R, a, b, &c, line, 0)) < 0)
            return rc;
        *out = op == OP_LT ? c < 0 : op == OP_LE ? c <= 0 : op == OP_GT ? c > 0 : c >= 0;
        return 0;
    }
}

/* ------------------------------------------------------------------ arithmetic */

static int concat_str(struct rctx *R, struct tv a, struct tv b, struct tv *out, int line)
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

static int repeat(struct rctx *R, struct tv seq, int64_t times, struct tv *out, int line)
{
    if (times < 0)
        times = 0;
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
    if (list_value(R, n * (size_t)times, seq.kind, out, line) < 0)
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
                   type_name(a), type_name(b));
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
        if (to_str(R, a, &x, line) < 0 || to_str(R, b, &y, line) < 0)
            return R->err_code;
        return concat_str(R, x, y, out, line);
    }
    if (is_num(a) && is_num(b)) {
        if (op == OP_DIV || a.kind == TV_FLOAT || b.kind == TV_FLOAT) {
            double x = as_float(a), y = as_float(b), r;
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
        return int_arith(R, op, as_int(a), as_int(b), out, line);
    }
    if (op == OP_ADD && a.kind == TV_STR && b.kind == TV_STR)
        return concat_str(R, a, b, out, line);
    if (op == OP_ADD && is_seq(a) && a.kind == b.kind) {
        size_t n = a.u.l->n + b.u.l->n;
        if (list_value(R, n, a.kind, out, line) < 0)
            return R->err_code;
        memcpy(out->u.l->items, a.u.l->items, a.u.l->n * sizeof(struct tv));
        memcpy(out->u.l->items + a.u.l->n, b.u.l->items, b.u.l->n * sizeof(struct tv));
        out->u.l->n = n;
        return 0;
    }
    if (op == OP_MUL && (a.kind == TV_STR || is_seq(a)) && is_intlike(b))
        return repeat(R, a, as_int(b), out, line);
    if (op == OP_MUL && (b.kind == TV_STR || is_seq(b)) && is_intlike(a))
        return repeat(R, b, as_int(a), out, line);
    return arith_error(R, names[op], a, b, line);
}

int tl_unary(struct rctx *R, bool neg, struct tv a, struct tv *out, int line)
{
    if (a.kind == TV_FLOAT) {
        *out = tv_float(neg ? -a.u.f : a.u.f);
        return 0;
    }
    if (is_intlike(a)) {
        int64_t x = as_int(a);
        if (neg && x == INT64_MIN)
            return tl_fail(R, TMPL_EEVAL, line, "integer overflow");
        *out = tv_int(neg ? -x : x);
        return 0;
    }
    if (a.kind == TV_UNDEF)
        return tl_undefined(R, line, a);
    return tl_fail(R, TMPL_EEVAL, line, "bad operand type for unary %c: '%s'", neg ? '-' : '+', type_name(a));
}

/* ------------------------------------------------------------------ iteration */

static int str_chars(struct rctx *R, struct tv s, struct tv *out, int line)
{
    size_t n = u8_count(s.u.s, s.len);
    if (list_value(R, n, TV_LIST, out, line) < 0)
        return R->err_code;
    for (size_t i = 0; i < s.len;) {
        size_t l = u8_char_len(s.u.s, s.len, i);
        out->u.l->items[out->u.l->n++] = tv_str(s.u.s + i, l);
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
        if (list_value(R, v.u.d->n, TV_LIST, out, line) < 0)
            return R->err_code;
        memcpy(out->u.l->items, v.u.d->keys, v.u.d->n * sizeof(struct tv));
        out->u.l->n = v.u.d->n;
        return 0;
    case TV_UNDEF:
        return list_value(R, 0, TV_LIST, out, line);
    default:
        return tl_fail(R, TMPL_EEVAL, line, "'%s' object is not iterable", type_name(v));
    }
}

/* ------------------------------------------------------------------ arguments */

/* Positional argument i or keyword `name`, or NULL. */
static struct tv *arg(struct targs *a, int i, const char *name)
{
    if (i >= 0 && i < a->npos)
        return &a->pos[i];
    if (name)
        for (int k = 0; k < a->nkw; k++)
            if (is_cstr(a->kwname[k], name))
                return &a->kw[k];
    return NULL;
}

static int want_str(struct rctx *R, struct tv *v, const char *what, int line)
{
    if (!v || v->kind != TV_STR)
        return tl_fail(R, TMPL_EEVAL, line, "%s: expected a string argument", what);
    return 0;
}

static int want_int(struct rctx *R, struct tv *v, const char *what, int line)
{
    if (!v || !is_intlike(*v))
        return tl_fail(R, TMPL_EEVAL, line, "%s: expected an integer argument", what);
    return 0;
}

/* ------------------------------------------------------------------ string helpers */

static int str_new(struct rctx *R, size_t n, char **p, int line)
{
    *p = tl_alloc(R, n + 1);
    if (!*p)
        return tl_nomem(R, line);
    (*p)[n] = 0;
    return 0;
}

static int case_map(struct rctx *R, struct tv s, int mode, struct tv *out, int line)
{
    /* mode: 0 lower, 1 upper, 2 capitalize, 3 title */
    char *p;
    if (str_new(R, s.len, &p, line) < 0)
        return R->err_code;
    bool word_start = true;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.u.s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        bool up;
        if (mode == 0)
            up = false;
        else if (mode == 1)
            up = true;
        else if (mode == 2)
            up = i == 0;
        else
            up = word_start;
        if (alpha)
            c = up ? (char)(c & ~0x20) : (char)(c | 0x20);
        if (mode == 3)
            word_start = !alpha && !((unsigned char)c >= 0x80);
        p[i] = c;
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
static struct tv strip(struct tv s, const struct tv *chars, bool left, bool right)
{
    size_t a = 0, b = s.len;
    bool ws = !chars || chars->kind != TV_STR;
    while (left && a < b) {
        size_t l = ws ? space_len(s.u.s + a, b - a) : u8_char_len(s.u.s, b, a);
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
static int split(struct rctx *R, struct tv s, struct tv *sep, int64_t maxsplit, bool from_right,
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
    if (list_value(R, cap, TV_LIST, out, line) < 0)
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
            for (size_t i = 0; i < count / 2; i++) { /* reverse into order */
                struct tv t = tmp[i];
                tmp[i] = tmp[count - 1 - i];
                tmp[count - 1 - i] = t;
            }
            l->n = count;
        }
        return 0;
    }
    /* whitespace split: runs of whitespace, no empty strings */
    size_t i = 0;
    if (from_right) {
        struct tv t = strip(s, NULL, false, true);
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
        while (i < s.len && (w = space_len(s.u.s + i, s.len - i)))
            i += w;
        if (i >= s.len)
            break;
        if (maxsplit >= 0 && splits >= maxsplit) {
            struct tv rest = strip(tv_str(s.u.s + i, s.len - i), NULL, false, true);
            l->items[l->n++] = rest;
            break;
        }
        size_t st = i;
        while (i < s.len && !space_len(s.u.s + i, s.len - i))
            i++;
        l->items[l->n++] = tv_str(s.u.s + st, i - st);
        splits++;
    }
    return 0;
}

static int replace(struct rctx *R, struct tv s, struct tv old, struct tv new, int64_t count,
                   struct tv *out, int line)
{
    struct sbuf b = {0};
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
    if (rc >= 0) {
        char *p;
        if ((rc = str_new(R, b.n, &p, line)) >= 0) {
            if (b.n)
                memcpy(p, b.p, b.n);
            *out = tv_str(p, b.n);
        }
    }
    free(b.p);
    return rc < 0 ? R->err_code : 0;
}

static int join(struct rctx *R, struct tv items, struct tv sep, struct tv *out, int line)
{
    struct sbuf b = {0};
    int rc = 0;
    struct tv_list *l = items.u.l;
    for (size_t i = 0; i < l->n && rc >= 0; i++) {
        struct tv s;
        if (i && (rc = tl_sbuf_put(R, &b, sep.u.s, sep.len, line)) < 0)
            break;
        if ((rc = to_str(R, l->items[i], &s, line)) >= 0)
            rc = tl_sbuf_put(R, &b, s.u.s, s.len, line);
    }
    if (rc >= 0) {
        char *p;
        if ((rc = str_new(R, b.n, &p, line)) >= 0) {
            if (b.n)
                memcpy(p, b.p, b.n);
            *out = tv_str(p, b.n);
        }
    }
    free(b.p);
    return rc < 0 ? R->err_code : 0;
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
        struct tv *v = dict_find(obj.u.d, key);
        if (v) {
            *out = *v;
            return 0;
        }
        break;
    }
    case TV_LIST:
    case TV_TUPLE:
        if (is_intlike(key) && !obj.gen) {
            if (resolve_index(as_int(key), obj.u.l->n, &idx))
                *out = obj.u.l->items[idx];
            else
                *out = tv_undef();
            return 0;
        }
        break;
    case TV_STR:
        if (is_intlike(key)) {
            size_t n = u8_count(obj.u.s, obj.len);
            if (resolve_index(as_int(key), n, &idx)) {
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
        if (parts[i].kind != TV_NONE && !is_intlike(parts[i]))
            return tl_fail(R, TMPL_EEVAL, line, "slice indices must be integers or None");
    bool str = obj.kind == TV_STR;
    if (!str && !is_seq(obj)) {
        *out = tv_undef(); /* jinja2: a failed subscript is undefined */
        return 0;
    }
    int64_t n = (int64_t)(str ? u8_count(obj.u.s, obj.len) : obj.u.l->n);
    int64_t stepv = parts[2].kind == TV_NONE ? 1 : as_int(parts[2]);
    if (stepv == 0)
        return tl_fail(R, TMPL_EEVAL, line, "slice step cannot be zero");
    int64_t lo, hi;
    if (stepv > 0) {
        lo = parts[0].kind == TV_NONE ? 0 : as_int(parts[0]);
        hi = parts[1].kind == TV_NONE ? n : as_int(parts[1]);
        if (lo < 0)
            lo = lo + n < 0 ? 0 : lo + n;
        if (hi < 0)
            hi = hi + n < 0 ? 0 : hi + n;
        if (lo > n)
            lo = n;
        if (hi > n)
            hi = n;
    } else {
        lo = parts[0].kind == TV_NONE ? n - 1 : as_int(parts[0]);
        hi = parts[1].kind == TV_NONE ? -1 : as_int(parts[1]);
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
        if (list_value(R, count, obj.kind, out, line) < 0)
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
    if (str_new(R, obj.len, &p, line) < 0)
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

/* ------------------------------------------------------------------ methods */

enum method {
    M_STARTSWITH, M_ENDSWITH, M_STRIP, M_LSTRIP, M_RSTRIP, M_SPLIT, M_RSPLIT, M_REPLACE,
    M_UPPER, M_LOWER, M_TITLE, M_CAPITALIZE, M_FIND, M_COUNT, M_JOIN, M_SPLITLINES,
    M_ISSPACE, M_ISDIGIT, M_ISALPHA, M_ISUPPER, M_ISLOWER,
    M_ITEMS, M_KEYS, M_VALUES, M_GET,
    M_N,
};

static const struct {
    const char *name;
    enum tv_kind on;
} methods[M_N] = {
    [M_STARTSWITH] = {"startswith", TV_STR}, [M_ENDSWITH] = {"endswith", TV_STR},
    [M_STRIP] = {"strip", TV_STR}, [M_LSTRIP] = {"lstrip", TV_STR},
    [M_RSTRIP] = {"rstrip", TV_STR}, [M_SPLIT] = {"split", TV_STR},
    [M_RSPLIT] = {"rsplit", TV_STR}, [M_REPLACE] = {"replace", TV_STR},
    [M_UPPER] = {"upper", TV_STR}, [M_LOWER] = {"lower", TV_STR},
    [M_TITLE] = {"title", TV_STR}, [M_CAPITALIZE] = {"capitalize", TV_STR},
    [M_FIND] = {"find", TV_STR}, [M_COUNT] = {"count", TV_STR}, [M_JOIN] = {"join", TV_STR},
    [M_SPLITLINES] = {"splitlines", TV_STR}, [M_ISSPACE] = {"isspace", TV_STR},
    [M_ISDIGIT] = {"isdigit", TV_STR}, [M_ISALPHA] = {"isalpha", TV_STR},
    [M_ISUPPER] = {"isupper", TV_STR}, [M_ISLOWER] = {"islower", TV_STR},
    [M_ITEMS] = {"items", TV_DICT}, [M_KEYS] = {"keys", TV_DICT},
    [M_VALUES] = {"values", TV_DICT}, [M_GET] = {"get", TV_DICT},
};

static int bound_method(struct rctx *R, struct tv obj, struct tv name, struct tv *out, int line)
{
    for (int i = 0; i < M_N; i++) {
        if (methods[i].on != obj.kind || !is_cstr(name, methods[i].name))
            continue;
        struct tv_func *f = tl_alloc(R, sizeof(*f));
        if (!f)
            return tl_nomem(R, line);
        memset(f, 0, sizeof(*f));
        f->kind = FN_METHOD;
        f->id = i;
        f->self = obj;
        *out = (struct tv){.kind = TV_FUNC, .u.fn = f};
        return 1;
    }
    return 0;
}

static int dict_view(struct rctx *R, struct tv d, int which, struct tv *out, int line)
{
    size_t n = d.u.d->n;
    if (list_value(R, n, TV_LIST, out, line) < 0)
        return R->err_code;
    for (size_t i = 0; i < n; i++) {
        struct tv item;
        if (which == 0) {
            if (list_value(R, 2, TV_TUPLE, &item, line) < 0)
                return R->err_code;
            item.u.l->items[0] = d.u.d->keys[i];
            item.u.l->items[1] = d.u.d->vals[i];
            item.u.l->n = 2;
        } else {
            item = which == 1 ? d.u.d->keys[i] : d.u.d->vals[i];
        }
        out->u.l->items[out->u.l->n++] = item;
    }
    return 0;
}

static bool all_chars(struct tv s, int kind)
{
    if (s.len == 0)
        return false;
    bool cased = false;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.u.s[i];
        switch (kind) {
        case M_ISDIGIT:
            if (c < '0' || c > '9')
                return false;
            break;
        case M_ISALPHA:
            if (!((c | 0x20) >= 'a' && (c | 0x20) <= 'z'))
                return false;
            break;
        case M_ISUPPER:
            if (c >= 'a' && c <= 'z')
                return false;
            cased |= c >= 'A' && c <= 'Z';
            break;
        case M_ISLOWER:
            if (c >= 'A' && c <= 'Z')
                return false;
            cased |= c >= 'a' && c <= 'z';
            break;
        }
    }
    return kind == M_ISUPPER || kind == M_ISLOWER ? cased : true;
}

static int prefix_test(struct rctx *R, struct tv s, struct tv *p, bool end, bool *out, int line)
{
    if (p && is_seq(*p)) {
        *out = false;
        for (size_t i = 0; i < p->u.l->n && !*out; i++)
            if (prefix_test(R, s, &p->u.l->items[i], end, out, line) < 0)
                return R->err_code;
        return 0;
    }
    if (want_str(R, p, end ? "endswith" : "startswith", line) < 0)
        return R->err_code;
    *out = p->len <= s.len && memcmp(end ? s.u.s + s.len - p->len : s.u.s, p->u.s, p->len) == 0;
    return 0;
}

static int splitlines(struct rctx *R, struct tv s, bool keepends, struct tv *out, int line)
{
    if (list_value(R, s.len + 1, TV_LIST, out, line) < 0)
        return R->err_code;
    size_t st = 0, i = 0;
    while (i < s.len) {
        unsigned char c = (unsigned char)s.u.s[i];
        size_t l = 0;
        if (c == '\r' && i + 1 < s.len && s.u.s[i + 1] == '\n')
            l = 2;
        else if (c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == 0x1c || c == 0x1d || c == 0x1e)
            l = 1;
        else if (c == 0xc2 && i + 1 < s.len && (unsigned char)s.u.s[i + 1] == 0x85)
            l = 2;
        else if (c == 0xe2 && i + 2 < s.len && (unsigned char)s.u.s[i + 1] == 0x80 &&
                 ((unsigned char)s.u.s[i + 2] == 0xa8 || (unsigned char)s.u.s[i + 2] == 0xa9))
            l = 3;
        if (!l) {
            i++;
            continue;
        }
        out->u.l->items[out->u.l->n++] = tv_str(s.u.s + st, i - st + (keepends ? l : 0));
        i += l;
        st = i;
    }
    if (st < s.len)
        out->u.l->items[out->u.l->n++] = tv_str(s.u.s + st, s.len - st);
    return 0;
}

static int call_method(struct rctx *R, struct tv_func *f, struct targs *a, struct tv *out, int line)
{
    struct tv s = f->self;
    struct tv *a0 = arg(a, 0, NULL), *a1 = arg(a, 1, NULL);
    bool b;
    switch (f->id) {
    case M_STARTSWITH:
    case M_ENDSWITH:
        if (prefix_test(R, s, a0, f->id == M_ENDSWITH, &b, line) < 0)
            return R->err_code;
        *out = tv_bool(b);
        return 0;
    case M_STRIP:
    case M_LSTRIP:
    case M_RSTRIP:
        if (a0 && a0->kind != TV_STR && a0->kind != TV_NONE)
            return want_str(R, a0, methods[f->id].name, line);
        *out = strip(s, a0, f->id != M_RSTRIP, f->id != M_LSTRIP);
        return 0;
    case M_SPLIT:
    case M_RSPLIT: {
        struct tv *sep = arg(a, 0, "sep"), *maxs = arg(a, 1, "maxsplit");
        if (sep && sep->kind != TV_STR && sep->kind != TV_NONE)
            return want_str(R, sep, "split", line);
        if (maxs && want_int(R, maxs, "split", line) < 0)
            return R->err_code;
        return split(R, s, sep, maxs ? as_int(*maxs) : -1, f->id == M_RSPLIT, out, line);
    }
    case M_REPLACE: {
        struct tv *cnt = arg(a, 2, "count");
        if (want_str(R, a0, "replace", line) < 0 || want_str(R, a1, "replace", line) < 0 ||
            (cnt && want_int(R, cnt, "replace", line) < 0))
            return R->err_code;
        return replace(R, s, *a0, *a1, cnt ? as_int(*cnt) : -1, out, line);
    }
    case M_UPPER:
        return case_map(R, s, 1, out, line);
    case M_LOWER:
        return case_map(R, s, 0, out, line);
    case M_TITLE:
        return case_map(R, s, 3, out, line);
    case M_CAPITALIZE: {
        struct tv low;
        if (case_map(R, s, 0, &low, line) < 0)
            return R->err_code;
        if (low.len && low.u.s[0] >= 'a' && low.u.s[0] <= 'z')
            ((char *)low.u.s)[0] = (char)(low.u.s[0] & ~0x20);
        *out = low;
        return 0;
    }
    case M_FIND:
    case M_COUNT: {
        if (want_str(R, a0, methods[f->id].name, line) < 0)
            return R->err_code;
        if (f->id == M_FIND) {
            const char *p = a0->len ? memmem(s.u.s, s.len, a0->u.s, a0->len) : s.u.s;
            *out = tv_int(p ? (int64_t)u8_count(s.u.s, (size_t)(p - s.u.s)) : -1);
        } else {
            int64_t c = 0;
            if (a0->len == 0)
                c = (int64_t)u8_count(s.u.s, s.len) + 1;
            else
                for (const char *p = s.u.s; (p = memmem(p, s.len - (size_t)(p - s.u.s), a0->u.s, a0->len));
                     p += a0->len)
                    c++;
            *out = tv_int(c);
        }
        return 0;
    }
    case M_JOIN: {
        struct tv items;
        if (!a0 || tl_iterable(R, *a0, &items, line) < 0)
            return R->err_code ? R->err_code : tl_fail(R, TMPL_EEVAL, line, "join: missing argument");
        for (size_t i = 0; i < items.u.l->n; i++)
            if (items.u.l->items[i].kind != TV_STR)
                return tl_fail(R, TMPL_EEVAL, line, "sequence item %zu: expected str instance, %s found",
                               i, type_name(items.u.l->items[i]));
        return join(R, items, s, out, line);
    }
    case M_SPLITLINES:
        return splitlines(R, s, a0 && tv_truthy(*a0), out, line);
    case M_ISSPACE: {
        bool all = s.len > 0;
        for (size_t i = 0; i < s.len && all;) {
            size_t l = space_len(s.u.s + i, s.len - i);
            all = l > 0;
            i += l;
        }
        *out = tv_bool(all);
        return 0;
    }
    case M_ISDIGIT:
    case M_ISALPHA:
    case M_ISUPPER:
    case M_ISLOWER:
        *out = tv_bool(all_chars(s, f->id));
        return 0;
    case M_ITEMS:
        return dict_view(R, s, 0, out, line);
    case M_KEYS:
        return dict_view(R, s, 1, out, line);
    case M_VALUES:
        return dict_view(R, s, 2, out, line);
    case M_GET: {
        if (!a0)
            return tl_fail(R, TMPL_EEVAL, line, "get expected at least 1 argument");
        struct tv *v = dict_find(s.u.d, *a0);
        *out = v ? *v : a1 ? *a1 : tv_none();
        return 0;
    }
    }
    return tl_fail(R, TMPL_EEVAL, line, "internal error: bad method");
}

/* ------------------------------------------------------------------ attributes */

static int loop_attr(struct rctx *R, struct tv_loop *lp, struct tv name, struct tv *out, int line)
{
    size_t i = lp->index0, n = lp->items->n;
    if (is_cstr(name, "index0"))
        *out = tv_int((int64_t)i);
    else if (is_cstr(name, "index"))
        *out = tv_int((int64_t)i + 1);
    else if (is_cstr(name, "revindex"))
        *out = tv_int((int64_t)(n - i));
    else if (is_cstr(name, "revindex0"))
        *out = tv_int((int64_t)(n - i - 1));
    else if (is_cstr(name, "first"))
        *out = tv_bool(i == 0);
    else if (is_cstr(name, "last"))
        *out = tv_bool(i + 1 == n);
    else if (is_cstr(name, "length"))
        *out = tv_int((int64_t)n);
    else if (is_cstr(name, "depth"))
        *out = tv_int(1);
    else if (is_cstr(name, "depth0"))
        *out = tv_int(0);
    else if (is_cstr(name, "previtem"))
        *out = i > 0 ? lp->items->items[i - 1] : tv_undef();
    else if (is_cstr(name, "nextitem"))
        *out = i + 1 < n ? lp->items->items[i + 1] : tv_undef();
    else if (is_cstr(name, "cycle")) {
        struct tv_func *f = tl_alloc(R, sizeof(*f));
        if (!f)
            return tl_nomem(R, line);
        memset(f, 0, sizeof(*f));
        f->kind = FN_LOOP_CYCLE;
        f->self = (struct tv){.kind = TV_LOOP, .u.loop = lp};
        *out = (struct tv){.kind = TV_FUNC, .u.fn = f};
    } else
        *out = tv_undef();
    return 0;
}

int tl_getattr(struct rctx *R, struct tv obj, struct tv name, struct tv *out, int line)
{
    int rc;
    switch (obj.kind) {
    case TV_UNDEF:
        return tl_undefined(R, line, obj);
    case TV_DICT:
        if ((rc = bound_method(R, obj, name, out, line)) != 0)
            return rc < 0 ? rc : 0;
        {
            struct tv *v = dict_find(obj.u.d, name);
            *out = v ? *v : tv_undef();
        }
        if (out->kind == TV_UNDEF) {
            out->u.s = name.u.s;
            out->len = name.len;
        }
        return 0;
    case TV_NS: {
        struct tv *v = dict_find(obj.u.d, name);
        *out = v ? *v : tv_undef();
        return 0;
    }
    case TV_STR:
        if ((rc = bound_method(R, obj, name, out, line)) != 0)
            return rc < 0 ? rc : 0;
        break;
    case TV_LOOP:
        return loop_attr(R, obj.u.loop, name, out, line);
    default:
        break;
    }
    *out = tv_undef();
    out->u.s = name.u.s;
    out->len = name.len;
    return 0;
}

/* ------------------------------------------------------------------ globals */

enum global { G_RANGE, G_NAMESPACE, G_DICT, G_RAISE, G_STRFTIME, G_N };

static const char *const global_names[G_N] = {
    [G_RANGE] = "range", [G_NAMESPACE] = "namespace", [G_DICT] = "dict",
    [G_RAISE] = "raise_exception", [G_STRFTIME] = "strftime_now",
};

bool tl_global(struct rctx *R, struct tv name, struct tv *out)
{
    /* never written after load, so concurrent renders may share them */
    static struct tv_func funcs[G_N] = {
        [G_RANGE] = {.kind = FN_GLOBAL, .id = G_RANGE},
        [G_NAMESPACE] = {.kind = FN_GLOBAL, .id = G_NAMESPACE},
        [G_DICT] = {.kind = FN_GLOBAL, .id = G_DICT},
        [G_RAISE] = {.kind = FN_GLOBAL, .id = G_RAISE},
        [G_STRFTIME] = {.kind = FN_GLOBAL, .id = G_STRFTIME},
    };
    (void)R;
    for (int i = 0; i < G_N; i++)
        if (is_cstr(name, global_names[i])) {
            *out = (struct tv){.kind = TV_FUNC, .u.fn = &funcs[i]};
            return true;
        }
    return false;
}

static int g_range(struct rctx *R, struct targs *a, struct tv *out, int line)
{
    int64_t start = 0, stop, stepv = 1;
    for (int i = 0; i < a->npos; i++)
        if (!is_intlike(a->pos[i]))
            return tl_fail(R, TMPL_EEVAL, line, "range() arguments must be integers");
    if (a->npos == 1) {
        stop = as_int(a->pos[0]);
    } else if (a->npos == 2 || a->npos == 3) {
        start = as_int(a->pos[0]);
        stop = as_int(a->pos[1]);
        if (a->npos == 3)
            stepv = as_int(a->pos[2]);
    } else {
        return tl_fail(R, TMPL_EEVAL, line, "range expected 1 to 3 arguments");
    }
    if (stepv == 0)
        return tl_fail(R, TMPL_EEVAL, line, "range() arg 3 must not be zero");
    uint64_t n = 0;
    if (stepv > 0 && stop > start)
        n = ((uint64_t)stop - (uint64_t)start - 1) / (uint64_t)stepv + 1;
    else if (stepv < 0 && start > stop)
        n = ((uint64_t)start - (uint64_t)stop - 1) / ((uint64_t)(-(stepv + 1)) + 1) + 1;
    /* jinja2's sandbox refuses ranges over MAX_RANGE = 100000 items */
    if (n > 100000 || n > R->max_iters)
        return tl_fail(R, TMPL_ELIMIT, line, "range() of %llu items is too big (limit 100000)",
                       (unsigned long long)n);
    if (list_value(R, (size_t)n, TV_LIST, out, line) < 0)
        return R->err_code;
    for (uint64_t i = 0; i < n; i++)
        out->u.l->items[out->u.l->n++] = tv_int(start + (int64_t)i * stepv);
    return 0;
}

static int g_mapping(struct rctx *R, struct targs *a, enum tv_kind kind, struct tv *out, int line)
{
    if (tl_dict_new(R, out, kind, line) < 0)
        return R->err_code;
    if (a->npos > 1)
        return tl_fail(R, TMPL_EEVAL, line, "expected at most 1 positional argument");
    if (a->npos == 1) {
        struct tv src = a->pos[0];
        if (src.kind != TV_DICT)
            return tl_fail(R, TMPL_EEVAL, line, "expected a mapping argument");
        for (size_t i = 0; i < src.u.d->n; i++)
            if (tl_dict_set(R, *out, src.u.d->keys[i], src.u.d->vals[i], line) < 0)
                return R->err_code;
    }
    for (int k = 0; k < a->nkw; k++)
        if (tl_dict_set(R, *out, a->kwname[k], a->kw[k], line) < 0)
            return R->err_code;
    return 0;
}

static int g_strftime(struct rctx *R, struct targs *a, struct tv *out, int line)
{
    struct tv *fmt = arg(a, 0, NULL);
    if (want_str(R, fmt, "strftime_now", line) < 0)
        return R->err_code;
    time_t now = R->params->now_unix ? (time_t)R->params->now_unix : time(NULL);
    struct tm tm;
    if (!gmtime_r(&now, &tm))
        return tl_fail(R, TMPL_EEVAL, line, "strftime_now: bad clock");
    char f[256];
    if (fmt->len >= sizeof(f) - 1)
        return tl_fail(R, TMPL_EEVAL, line, "strftime_now: format too long");
    memcpy(f, fmt->u.s, fmt->len);
    f[fmt->len] = 0;
    char buf[1024];
    size_t n = fmt->len ? strftime(buf, sizeof(buf), f, &tm) : 0;
    char *p;
    if (str_new(R, n, &p, line) < 0)
        return R->err_code;
    memcpy(p, buf, n);
    *out = tv_str(p, n);
    return 0;
}

int tl_call(struct rctx *R, struct tv fn, struct targs *a, struct tv *out, int line)
{
    if (fn.kind == TV_UNDEF)
        return tl_undefined(R, line, fn);
    if (fn.kind != TV_FUNC)
        return tl_fail(R, TMPL_EEVAL, line, "'%s' object is not callable", type_name(fn));
    struct tv_func *f = fn.u.fn;
    switch (f->kind) {
    case FN_MACRO:
        return tl_call_macro(R, f->macro, a, out, line);
    case FN_METHOD:
        return call_method(R, f, a, out, line);
    case FN_LOOP_CYCLE:
        if (a->npos == 0)
            return tl_fail(R, TMPL_EEVAL, line, "no items for cycling given");
        *out = a->pos[f->self.u.loop->index0 % (size_t)a->npos];
        return 0;
    case FN_GLOBAL:
        break;
    }
    switch (f->id) {
    case G_RANGE:
        return g_range(R, a, out, line);
    case G_NAMESPACE:
        return g_mapping(R, a, TV_NS, out, line);
    case G_DICT:
        return g_mapping(R, a, TV_DICT, out, line);
    case G_RAISE: {
        struct tv msg = tv_str("", 0);
        if (a->npos > 0 && to_str(R, a->pos[0], &msg, line) < 0)
            return R->err_code;
        return tl_fail(R, TMPL_ERAISE, line, "%.*s", (int)(msg.len > 4096 ? 4096 : msg.len), msg.u.s);
    }
    case G_STRFTIME:
        return g_strftime(R, a, out, line);
    }
    return tl_fail(R, TMPL_EEVAL, line, "internal error: bad global");
}

/* ------------------------------------------------------------------ tests */

enum test {
    T_DEFINED, T_UNDEFINED, T_NONE, T_STRING, T_NUMBER, T_INTEGER, T_FLOAT, T_BOOLEAN,
    T_TRUE, T_FALSE, T_MAPPING, T_ITERABLE, T_SEQUENCE, T_CALLABLE, T_EQ, T_NE, T_LT,
    T_LE, T_GT, T_GE, T_IN, T_ODD, T_EVEN, T_DIVISIBLEBY, T_LOWER, T_UPPER, T_SAMEAS,
    T_ESCAPED,
};

static const struct {
    const char *name;
    enum test id;
} tests[] = {
    {"defined", T_DEFINED}, {"undefined", T_UNDEFINED}, {"none", T_NONE},
    {"string", T_STRING}, {"number", T_NUMBER}, {"integer", T_INTEGER}, {"float", T_FLOAT},
    {"boolean", T_BOOLEAN}, {"true", T_TRUE}, {"false", T_FALSE}, {"mapping", T_MAPPING},
    {"iterable", T_ITERABLE}, {"sequence", T_SEQUENCE}, {"callable", T_CALLABLE},
    {"equalto", T_EQ}, {"eq", T_EQ}, {"==", T_EQ}, {"ne", T_NE}, {"!=", T_NE},
    {"lessthan", T_LT}, {"lt", T_LT}, {"<", T_LT}, {"le", T_LE}, {"<=", T_LE},
    {"greaterthan", T_GT}, {"gt", T_GT}, {">", T_GT}, {"ge", T_GE}, {">=", T_GE},
    {"in", T_IN}, {"odd", T_ODD}, {"even", T_EVEN}, {"divisibleby", T_DIVISIBLEBY},
    {"lower", T_LOWER}, {"upper", T_UPPER}, {"sameas", T_SAMEAS}, {"escaped", T_ESCAPED},
};

int tmpl_test_index(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
        if (strlen(tests[i].name) == len && memcmp(tests[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

static int run_test(struct rctx *R, enum test id, struct tv v, struct targs *a, bool *out, int line)
{
    struct tv *x = arg(a, 0, NULL);
    int rc;
    static const int cmp_op[] = {[T_EQ] = OP_EQ, [T_NE] = OP_NE, [T_LT] = OP_LT, [T_LE] = OP_LE,
                                 [T_GT] = OP_GT, [T_GE] = OP_GE};
    switch (id) {
    case T_DEFINED: *out = v.kind != TV_UNDEF; return 0;
    case T_UNDEFINED: *out = v.kind == TV_UNDEF; return 0;
    case T_NONE: *out = v.kind == TV_NONE; return 0;
    case T_STRING: *out = v.kind == TV_STR; return 0;
    case T_NUMBER: *out = is_num(v); return 0;
    case T_INTEGER: *out = v.kind == TV_INT; return 0;
    case T_FLOAT: *out = v.kind == TV_FLOAT; return 0;
    case T_BOOLEAN: *out = v.kind == TV_BOOL; return 0;
    case T_TRUE: *out = v.kind == TV_BOOL && v.u.b; return 0;
    case T_FALSE: *out = v.kind == TV_BOOL && !v.u.b; return 0;
    case T_MAPPING: *out = v.kind == TV_DICT; return 0;
    case T_ITERABLE:
        *out = v.kind == TV_STR || is_seq(v) || v.kind == TV_DICT || v.kind == TV_UNDEF ||
               v.kind == TV_LOOP;
        return 0;
    case T_SEQUENCE: *out = v.kind == TV_STR || is_seq(v) || v.kind == TV_DICT; return 0;
    case T_CALLABLE: *out = v.kind == TV_FUNC; return 0;
    case T_EQ: case T_NE: case T_LT: case T_LE: case T_GT: case T_GE:
        if (!x)
            return tl_fail(R, TMPL_EEVAL, line, "test needs an argument");
        return tl_compare(R, cmp_op[id], v, *x, out, line);
    case T_IN:
        if (!x)
            return tl_fail(R, TMPL_EEVAL, line, "test 'in' needs an argument");
        return contains(R, *x, v, out, line);
    case T_ODD:
    case T_EVEN:
        if (!is_intlike(v))
            return tl_fail(R, TMPL_EEVAL, line, "test '%s' needs an integer", id == T_ODD ? "odd" : "even");
        *out = (as_int(v) % 2 != 0) == (id == T_ODD);
        return 0;
    case T_DIVISIBLEBY:
        if (!is_intlike(v) || !x || !is_intlike(*x) || as_int(*x) == 0)
            return tl_fail(R, TMPL_EEVAL, line, "divisibleby needs non-zero integers");
        *out = as_int(*x) == -1 || as_int(v) % as_int(*x) == 0;
        return 0;
    case T_LOWER:
    case T_UPPER: {
        struct tv s; /* str(v).islower() / isupper(): needs a cased character */
        if ((rc = to_str(R, v, &s, line)) < 0)
            return rc;
        *out = all_chars(s, id == T_UPPER ? M_ISUPPER : M_ISLOWER);
        return 0;
    }
    case T_SAMEAS:
        if (!x)
            return tl_fail(R, TMPL_EEVAL, line, "sameas needs an argument");
        *out = v.kind == x->kind && (v.kind == TV_NONE || v.kind == TV_UNDEF ||
               (v.kind == TV_BOOL && v.u.b == x->u.b) ||
               ((v.kind == TV_LIST || v.kind == TV_TUPLE) && v.u.l == x->u.l) ||
               ((v.kind == TV_DICT || v.kind == TV_NS) && v.u.d == x->u.d));
        return 0;
    case T_ESCAPED:
        *out = false;
        return 0;
    }
    return tl_fail(R, TMPL_EEVAL, line, "internal error: bad test");
}

int tl_test(struct rctx *R, int idx, struct tv v, struct targs *a, bool *out, int line)
{
    return run_test(R, tests[idx].id, v, a, out, line);
}

/* ------------------------------------------------------------------ filters */

enum filter {
    F_TRIM, F_LENGTH, F_LOWER, F_UPPER, F_CAPITALIZE, F_TITLE, F_LIST, F_JOIN, F_DEFAULT,
    F_STRING, F_REPLACE, F_UNIQUE, F_ITEMS, F_INDENT, F_MAP, F_SELECT, F_REJECT,
    F_SELECTATTR, F_REJECTATTR, F_TOJSON, F_FIRST, F_LAST, F_REVERSE, F_SORT, F_SUM, F_MIN,
    F_MAX, F_ABS, F_INT, F_FLOAT, F_SAFE, F_ESCAPE, F_ATTR, F_DICTSORT, F_WORDCOUNT,
    F_CENTER, F_ROUND,
};

static const struct {
    const char *name;
    enum filter id;
} filters[] = {
    {"trim", F_TRIM}, {"length", F_LENGTH}, {"count", F_LENGTH}, {"lower", F_LOWER},
    {"upper", F_UPPER}, {"capitalize", F_CAPITALIZE}, {"title", F_TITLE}, {"list", F_LIST},
    {"join", F_JOIN}, {"default", F_DEFAULT}, {"d", F_DEFAULT}, {"string", F_STRING},
    {"replace", F_REPLACE}, {"unique", F_UNIQUE}, {"items", F_ITEMS}, {"indent", F_INDENT},
    {"map", F_MAP}, {"select", F_SELECT}, {"reject", F_REJECT}, {"selectattr", F_SELECTATTR},
    {"rejectattr", F_REJECTATTR}, {"tojson", F_TOJSON}, {"first", F_FIRST}, {"last", F_LAST},
    {"reverse", F_REVERSE}, {"sort", F_SORT}, {"sum", F_SUM}, {"min", F_MIN}, {"max", F_MAX},
    {"abs", F_ABS}, {"int", F_INT}, {"float", F_FLOAT}, {"safe", F_SAFE}, {"escape", F_ESCAPE},
    {"e", F_ESCAPE}, {"attr", F_ATTR}, {"dictsort", F_DICTSORT}, {"wordcount", F_WORDCOUNT},
    {"center", F_CENTER}, {"round", F_ROUND},
};

int tmpl_filter_index(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++)
        if (strlen(filters[i].name) == len && memcmp(filters[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

/* Follows a dotted attribute path ("a.b", "0") like jinja2's make_attrgetter. */
static int attr_path(struct rctx *R, struct tv v, struct tv path, struct tv *out, int line)
{
    if (path.kind == TV_INT)
        return tl_getitem(R, v, path, out, line);
    if (path.kind != TV_STR)
        return tl_fail(R, TMPL_EEVAL, line, "attribute name must be a string");
    size_t st = 0;
    for (size_t i = 0; i <= path.len; i++) {
        if (i < path.len && path.u.s[i] != '.')
            continue;
        struct tv part = tv_str(path.u.s + st, i - st);
        bool digits = part.len > 0;
        int64_t num = 0;
        for (size_t k = 0; k < part.len && digits; k++) {
            digits = part.u.s[k] >= '0' && part.u.s[k] <= '9' && k < 18;
            num = num * 10 + (part.u.s[k] - '0');
        }
        int rc = tl_getitem(R, v, digits ? tv_int(num) : part, &v, line);
        if (rc < 0)
            return rc;
        st = i + 1;
    }
    *out = v;
    return 0;
}

/* Sequence input of the select/map family: false/none/undefined give nothing. */
static int seq_input(struct rctx *R, struct tv v, struct tv *items, int line)
{
    if (!tv_truthy(v))
        return list_value(R, 0, TV_LIST, items, line);
    return tl_iterable(R, v, items, line);
}

static int select_like(struct rctx *R, enum filter id, struct tv v, struct targs *a, struct tv *out, int line)
{
    struct tv items;
    if (seq_input(R, v, &items, line) < 0)
        return R->err_code;
    bool attr = id == F_SELECTATTR || id == F_REJECTATTR;
    bool want = id == F_SELECT || id == F_SELECTATTR;
    int first_test = attr ? 1 : 0;
    struct tv *attrname = attr ? arg(a, 0, NULL) : NULL;
    if (attr && !attrname)
        return tl_fail(R, TMPL_EEVAL, line, "missing attribute name");
    struct tv *testname = arg(a, first_test, NULL);
    int tidx = -1;
    if (testname) {
        if (testname->kind != TV_STR ||
            (tidx = tmpl_test_index(testname->u.s, testname->len)) < 0)
            return tl_fail(R, TMPL_EEVAL, line, "no test named '%.*s'",
                           testname->kind == TV_STR ? (int)testname->len : 1,
                           testname->kind == TV_STR ? testname->u.s : "?");
    }
    struct targs targs;
    memset(&targs, 0, sizeof(targs));
    for (int i = first_test + 1; i < a->npos; i++)
        targs.pos[targs.npos++] = a->pos[i];
    if (list_value(R, items.u.l->n, TV_LIST, out, line) < 0)
        return R->err_code;
    for (size_t i = 0; i < items.u.l->n; i++) {
        struct tv item = items.u.l->items[i], probe = item;
        if (attr && attr_path(R, item, *attrname, &probe, line) < 0)
            return R->err_code;
        bool r;
        if (tidx >= 0) {
            if (run_test(R, tests[tidx].id, probe, &targs, &r, line) < 0)
                return R->err_code;
        } else {
            r = tv_truthy(probe);
        }
        if (r == want)
            out->u.l->items[out->u.l->n++] = item;
    }
    return 0;
}

static int f_map(struct rctx *R, struct tv v, struct targs *a, struct tv *out, int line)
{
    struct tv items;
    if (seq_input(R, v, &items, line) < 0)
        return R->err_code;
    struct tv *attrname = arg(a, -1, "attribute");
    struct tv *def = arg(a, -1, "default");
    int fidx = -1;
    struct targs fargs;
    memset(&fargs, 0, sizeof(fargs));
    if (!attrname) {
        struct tv *fname = arg(a, 0, NULL);
        if (!fname || fname->kind != TV_STR || (fidx = tmpl_filter_index(fname->u.s, fname->len)) < 0)
            return tl_fail(R, TMPL_EEVAL, line, "map: needs attribute= or a filter name");
        for (int i = 1; i < a->npos; i++)
            fargs.pos[fargs.npos++] = a->pos[i];
        for (int i = 0; i < a->nkw; i++) {
            fargs.kwname[fargs.nkw] = a->kwname[i];
            fargs.kw[fargs.nkw++] = a->kw[i];
        }
    }
    if (list_value(R, items.u.l->n, TV_LIST, out, line) < 0)
        return R->err_code;
    for (size_t i = 0; i < items.u.l->n; i++) {
        struct tv r;
        if (attrname) {
            if (attr_path(R, items.u.l->items[i], *attrname, &r, line) < 0)
                return R->err_code;
            if (r.kind == TV_UNDEF && def)
                r = *def;
        } else {
            struct targs copy = fargs;
            if (tl_filter(R, fidx, items.u.l->items[i], &copy, &r, line) < 0)
                return R->err_code;
        }
        out->u.l->items[out->u.l->n++] = r;
    }
    return 0;
}

static int f_tojson(struct rctx *R, struct tv v, struct targs *a, struct tv *out, int line)
{
    /* the transformers override: tojson(x, ensure_ascii=False, indent=None,
     * separators=None, sort_keys=False) -> json.dumps(...) */
    struct tv *ascii = arg(a, 0, "ensure_ascii"), *indent = arg(a, 1, "indent");
    struct tv *seps = arg(a, 2, "separators"), *sortk = arg(a, 3, "sort_keys");
    struct json_opts o = {
        .ascii = ascii && tv_truthy(*ascii),
        .sort_keys = sortk && tv_truthy(*sortk),
        .indent = -1,
        .item_sep = tv_str(", ", 2),
        .key_sep = tv_str(": ", 2),
    };
    if (indent && indent->kind != TV_NONE) {
        if (!is_intlike(*indent))
            return tl_fail(R, TMPL_EEVAL, line, "tojson: indent must be an integer");
        int64_t ind = as_int(*indent);
        o.indent = ind < 0 ? 0 : ind > 64 ? 64 : (int)ind;
        o.item_sep = tv_str(",", 1);
    }
    if (seps && seps->kind != TV_NONE) {
        if (!is_seq(*seps) || seps->u.l->n != 2 || seps->u.l->items[0].kind != TV_STR ||
            seps->u.l->items[1].kind != TV_STR)
            return tl_fail(R, TMPL_EEVAL, line, "tojson: separators must be a pair of strings");
        o.item_sep = seps->u.l->items[0];
        o.key_sep = seps->u.l->items[1];
    }
    struct sbuf b = {0};
    int rc = write_json(R, &b, v, &o, 0, line);
    if (rc >= 0) {
        char *p;
        if ((rc = str_new(R, b.n, &p, line)) >= 0) {
            if (b.n)
                memcpy(p, b.p, b.n);
            *out = tv_str(p, b.n);
        }
    }
    free(b.p);
    return rc < 0 ? R->err_code : 0;
}

static int f_indent(struct rctx *R, struct tv v, struct targs *a, struct tv *out, int line)
{
    if (v.kind == TV_UNDEF)
        return tl_undefined(R, line, v);
    if (v.kind != TV_STR) /* jinja2 appends "\n" to its input: only strings work */
        return tl_fail(R, TMPL_EEVAL, line, "indent: expected a string, got %s", type_name(v));
    struct tv s = v;
    struct tv *w = arg(a, 0, "width"), *first = arg(a, 1, "first"), *blank = arg(a, 2, "blank");
    struct tv ind;
    if (!w) {
        ind = tv_str("    ", 4);
    } else if (w->kind == TV_STR) {
        ind = *w;
    } else if (is_intlike(*w)) {
        int64_t n = as_int(*w);
        if (n < 0)
            n = 0;
        if (n > 1024)
            return tl_fail(R, TMPL_ELIMIT, line, "indent width too large");
        if (repeat(R, tv_str(" ", 1), n, &ind, line) < 0)
            return R->err_code;
    } else {
        return tl_fail(R, TMPL_EEVAL, line, "indent: width must be an integer or a string");
    }
    /* jinja2: s += "\n"; lines = s.splitlines(); first line as is, others indented
     * unless empty (blank=True indents empty ones too) */
    struct tv s2, lines;
    if (concat_str(R, s, tv_str("\n", 1), &s2, line) < 0 || splitlines(R, s2, false, &lines, line) < 0)
        return R->err_code;
    struct sbuf b = {0};
    int rc = 0;
    if (first && tv_truthy(*first))
        rc = tl_sbuf_put(R, &b, ind.u.s, ind.len, line);
    for (size_t i = 0; i < lines.u.l->n && rc >= 0; i++) {
        struct tv ln = lines.u.l->items[i];
        if (i > 0) {
            rc = tl_sbuf_put(R, &b, "\n", 1, line);
            if (rc >= 0 && (ln.len > 0 || (blank && tv_truthy(*blank))))
                rc = tl_sbuf_put(R, &b, ind.u.s, ind.len, line);
        }
        if (rc >= 0)
            rc = tl_sbuf_put(R, &b, ln.u.s, ln.len, line);
    }
    if (rc >= 0) {
        char *p;
        if ((rc = str_new(R, b.n, &p, line)) >= 0) {
            if (b.n)
                memcpy(p, b.p, b.n);
            *out = tv_str(p, b.n);
        }
    }
    free(b.p);
    return rc < 0 ? R->err_code : 0;
}

/* Lowercases strings for the case-insensitive comparisons of unique/sort/min/max. */
static int fold(struct rctx *R, struct tv v, bool case_sensitive, struct tv *out, int line)
{
    if (v.kind == TV_STR && !case_sensitive)
        return case_map(R, v, 0, out, line);
    *out = v;
    return 0;
}

static int f_sort_like(struct rctx *R, enum filter id, struct tv v, struct targs *a, struct tv *out, int line)
{
    struct tv items;
    if (tl_iterable(R, v, &items, line) < 0)
        return R->err_code;
    bool rev = id == F_SORT && arg(a, 0, "reverse") && tv_truthy(*arg(a, 0, "reverse"));
    struct tv *cs = arg(a, id == F_SORT ? 1 : 0, "case_sensitive");
    bool case_sensitive = cs && tv_truthy(*cs);
    struct tv *attrname = arg(a, id == F_SORT ? 2 : 1, "attribute");
    size_t n = items.u.l->n;
    struct tv *keys = tl_alloc(R, (n ? n : 1) * sizeof(*keys));
    if (!keys || list_value(R, n, TV_LIST, out, line) < 0)
        return keys ? R->err_code : tl_nomem(R, line);
    for (size_t i = 0; i < n; i++) {
        struct tv k = items.u.l->items[i];
        if (attrname && attr_path(R, k, *attrname, &k, line) < 0)
            return R->err_code;
        if (fold(R, k, case_sensitive, &keys[i], line) < 0)
            return R->err_code;
        out->u.l->items[i] = items.u.l->items[i];
    }
    out->u.l->n = n;
    if (id == F_MIN || id == F_MAX) {
        if (n == 0) {
            *out = tv_undef();
            return 0;
        }
        size_t best = 0;
        for (size_t i = 1; i < n; i++) {
            int c;
            if (order(R, keys[i], keys[best], &c, line, 0) < 0)
                return R->err_code;
            if ((id == F_MIN && c < 0) || (id == F_MAX && c > 0))
                best = i;
        }
        *out = items.u.l->items[best];
        return 0;
    }
    /* stable insertion sort; templates sort a handful of items */
    if (n > 10000)
        return tl_fail(R, TMPL_ELIMIT, line, "sort of more than 10000 items");
    for (size_t i = 1; i < n; i++) {
        struct tv k = keys[i], item = out->u.l->items[i];
        size_t j = i;
        while (j > 0) {
            int c;
            if (order(R, keys[j - 1], k, &c, line, 0) < 0)
                return R->err_code;
            if (rev ? c >= 0 : c <= 0)
                break;
            keys[j] = keys[j - 1];
            out->u.l->items[j] = out->u.l->items[j - 1];
            j--;
        }
        keys[j] = k;
        out->u.l->items[j] = item;
    }
    return 0;
}

static int f_unique(struct rctx *R, struct tv v, struct targs *a, struct tv *out, int line)
{
    struct tv items;
    if (tl_iterable(R, v, &items, line) < 0)
        return R->err_code;
    struct tv *cs = arg(a, 0, "case_sensitive"), *attrname = arg(a, 1, "attribute");
    size_t n = items.u.l->n;
    if (n > 10000)
        return tl_fail(R, TMPL_ELIMIT, line, "unique of more than 10000 items");
    struct tv *seen = tl_alloc(R, (n ? n : 1) * sizeof(*seen));
    if (!seen || list_value(R, n, TV_LIST, out, line) < 0)
        return seen ? R->err_code : tl_nomem(R, line);
    size_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        struct tv k = items.u.l->items[i];
        if (attrname && attr_path(R, k, *attrname, &k, line) < 0)
            return R->err_code;
        if (fold(R, k, cs && tv_truthy(*cs), &k, line) < 0)
            return R->err_code;
        if (k.kind == TV_LIST || k.kind == TV_DICT || k.kind == TV_NS) /* jinja2 uses a set */
            return tl_fail(R, TMPL_EEVAL, line, "unhashable type: '%s'", type_name(k));
        bool dup = false;
        for (size_t j = 0; j < ns && !dup; j++)
            dup = values_eq(seen[j], k);
        if (dup)
            continue;
        seen[ns++] = k;
        out->u.l->items[out->u.l->n++] = items.u.l->items[i];
    }
    return 0;
}

static int f_escape(struct rctx *R, struct tv v, struct tv *out, int line)
{
    struct tv s;
    if (to_str(R, v, &s, line) < 0)
        return R->err_code;
    struct sbuf b = {0};
    int rc = 0;
    size_t st = 0;
    for (size_t i = 0; i < s.len && rc >= 0; i++) {
        const char *e = NULL;
        switch (s.u.s[i]) {
        case '&': e = "&amp;"; break;
        case '<': e = "&lt;"; break;
        case '>': e = "&gt;"; break;
        case '"': e = "&#34;"; break;
        case '\'': e = "&#39;"; break;
        }
        if (e) {
            if ((rc = tl_sbuf_put(R, &b, s.u.s + st, i - st, line)) >= 0)
                rc = tl_sbuf_put(R, &b, e, strlen(e), line);
            st = i + 1;
        }
    }
    if (rc >= 0)
        rc = tl_sbuf_put(R, &b, s.u.s + st, s.len - st, line);
    if (rc >= 0) {
        char *p;
        if ((rc = str_new(R, b.n, &p, line)) >= 0) {
            if (b.n)
                memcpy(p, b.p, b.n);
            *out = tv_str(p, b.n);
        }
    }
    free(b.p);
    return rc < 0 ? R->err_code : 0;
}

static int f_int(struct rctx *R, struct tv v, struct targs *a, struct tv *out, int line)
{
    struct tv *def = arg(a, 0, "default");
    struct tv dflt = def ? *def : tv_int(0);
    if (is_intlike(v)) {
        *out = tv_int(as_int(v));
    } else if (v.kind == TV_FLOAT) {
        *out = isfinite(v.u.f) && fabs(v.u.f) < 9.2e18 ? tv_int((int64_t)v.u.f) : dflt;
    } else if (v.kind == TV_STR) {
        char buf[64];
        struct tv t = strip(v, NULL, true, true);
        if (t.len == 0 || t.len >= sizeof(buf)) {
            *out = dflt;
            return 0;
        }
        memcpy(buf, t.u.s, t.len);
        buf[t.len] = 0;
        char *end;
        long long x = strtoll(buf, &end, 10);
        if (*end == 0) {
            *out = tv_int(x);
        } else {
            double d = strtod(buf, &end);
            *out = *end == 0 && isfinite(d) && fabs(d) < 9.2e18 ? tv_int((int64_t)d) : dflt;
        }
    } else {
        *out = dflt;
    }
    return 0;
}

static int f_float(struct rctx *R, struct tv v, struct targs *a, struct tv *out, int line)
{
    struct tv *def = arg(a, 0, "default");
    (void)R;
    (void)line;
    if (is_num(v)) {
        *out = tv_float(as_float(v));
    } else if (v.kind == TV_STR) {
        char buf[64];
        struct tv t = strip(v, NULL, true, true);
        char *end = buf;
        if (t.len && t.len < sizeof(buf)) {
            memcpy(buf, t.u.s, t.len);
            buf[t.len] = 0;
            double d = strtod(buf, &end);
            if (*end == 0) {
                *out = tv_float(d);
                return 0;
            }
        }
        *out = def ? *def : tv_float(0.0);
    } else {
        *out = def ? *def : tv_float(0.0);
    }
    return 0;
}

static int f_sum(struct rctx *R, struct tv v, struct targs *a, struct tv *out, int line)
{
    struct tv items;
    if (tl_iterable(R, v, &items, line) < 0)
        return R->err_code;
    struct tv *attrname = arg(a, 0, "attribute"), *start = arg(a, 1, "start");
    struct tv acc = start ? *start : tv_int(0);
    for (size_t i = 0; i < items.u.l->n; i++) {
        struct tv x = items.u.l->items[i];
        if (attrname && attr_path(R, x, *attrname, &x, line) < 0)
            return R->err_code;
        if (tl_binop(R, OP_ADD, acc, x, &acc, line) < 0)
            return R->err_code;
    }
    *out = acc;
    return 0;
}

static int f_length(struct rctx *R, struct tv v, struct tv *out, int line)
{
    if (v.gen)
        return tl_fail(R, TMPL_EEVAL, line, "object of type 'generator' has no len()");
    switch (v.kind) {
    case TV_STR:
        *out = tv_int((int64_t)u8_count(v.u.s, v.len));
        return 0;
    case TV_LIST:
    case TV_TUPLE:
        *out = tv_int((int64_t)v.u.l->n);
        return 0;
    case TV_DICT:
    case TV_NS:
        *out = tv_int((int64_t)v.u.d->n);
        return 0;
    case TV_UNDEF:
        *out = tv_int(0);
        return 0;
    case TV_LOOP:
        *out = tv_int((int64_t)v.u.loop->items->n);
        return 0;
    default:
        return tl_fail(R, TMPL_EEVAL, line, "object of type '%s' has no len()", type_name(v));
    }
}

static int f_first_last(struct rctx *R, bool last, struct tv v, struct tv *out, int line)
{
    struct tv items;
    if (tl_iterable(R, v, &items, line) < 0)
        return R->err_code;
    size_t n = items.u.l->n;
    *out = n ? items.u.l->items[last ? n - 1 : 0] : tv_undef();
    return 0;
}

static int f_string_op(struct rctx *R, enum filter id, struct tv v, struct targs *a, struct tv *out, int line)
{
    struct tv s;
    if (to_str(R, v, &s, line) < 0)
        return R->err_code;
    switch (id) {
    case F_TRIM: {
        struct tv *chars = arg(a, 0, "chars");
        *out = strip(s, chars, true, true);
        return 0;
    }
    case F_LOWER:
        return case_map(R, s, 0, out, line);
    case F_UPPER:
        return case_map(R, s, 1, out, line);
    case F_TITLE:
        return case_map(R, s, 3, out, line);
    case F_CAPITALIZE: {
        if (case_map(R, s, 0, out, line) < 0)
            return R->err_code;
        if (out->len && out->u.s[0] >= 'a' && out->u.s[0] <= 'z')
            ((char *)out->u.s)[0] = (char)(out->u.s[0] & ~0x20);
        return 0;
    }
    case F_REPLACE: {
        struct tv *old = arg(a, 0, "old"), *new = arg(a, 1, "new"), *cnt = arg(a, 2, "count");
        struct tv o, nw;
        if (!old || !new)
            return tl_fail(R, TMPL_EEVAL, line, "replace needs two arguments");
        if (to_str(R, *old, &o, line) < 0 || to_str(R, *new, &nw, line) < 0)
            return R->err_code;
        if (cnt && cnt->kind != TV_NONE && want_int(R, cnt, "replace", line) < 0)
            return R->err_code;
        return replace(R, s, o, nw, cnt && cnt->kind != TV_NONE ? as_int(*cnt) : -1, out, line);
    }
    case F_WORDCOUNT: {
        struct tv words;
        if (split(R, s, NULL, -1, false, &words, line) < 0)
            return R->err_code;
        *out = tv_int((int64_t)words.u.l->n);
        return 0;
    }
    case F_CENTER: {
        struct tv *w = arg(a, 0, "width");
        int64_t width = w && is_intlike(*w) ? as_int(*w) : 80;
        int64_t len = (int64_t)u8_count(s.u.s, s.len);
        if (width > 100000)
            return tl_fail(R, TMPL_ELIMIT, line, "center width too large");
        if (width <= len) {
            *out = s;
            return 0;
        }
        int64_t pad = width - len, left = pad / 2 + (pad & width & 1);
        struct tv l = {0}, r = {0}, t = {0};
        if (repeat(R, tv_str(" ", 1), left, &l, line) < 0 ||
            repeat(R, tv_str(" ", 1), pad - left, &r, line) < 0 ||
            concat_str(R, l, s, &t, line) < 0)
            return R->err_code;
        return concat_str(R, t, r, out, line);
    }
    default:
        return tl_fail(R, TMPL_EEVAL, line, "internal error: bad string filter");
    }
}

/* Marks the list a lazy jinja2 filter returned as a generator. */
static int as_generator(int rc, struct tv *out)
{
    if (rc >= 0 && out->kind == TV_LIST)
        out->gen = true;
    return rc;
}

int tl_filter(struct rctx *R, int idx, struct tv v, struct targs *a, struct tv *out, int line)
{
    enum filter id = filters[idx].id;
    struct tv items;
    switch (id) {
    case F_TRIM: case F_LOWER: case F_UPPER: case F_TITLE: case F_CAPITALIZE:
    case F_REPLACE: case F_WORDCOUNT: case F_CENTER:
        return f_string_op(R, id, v, a, out, line);
    case F_LENGTH:
        return f_length(R, v, out, line);
    case F_LIST:
        if (tl_iterable(R, v, &items, line) < 0)
            return R->err_code;
        if (list_value(R, items.u.l->n, TV_LIST, out, line) < 0)
            return R->err_code;
        memcpy(out->u.l->items, items.u.l->items, items.u.l->n * sizeof(struct tv));
        out->u.l->n = items.u.l->n;
        return 0;
    case F_JOIN: {
        struct tv *sep = arg(a, 0, "d"), *attrname = arg(a, 1, "attribute");
        struct tv sp = tv_str("", 0);
        if (sep && to_str(R, *sep, &sp, line) < 0)
            return R->err_code;
        if (tl_iterable(R, v, &items, line) < 0)
            return R->err_code;
        if (attrname) {
            struct targs m;
            memset(&m, 0, sizeof(m));
            m.kwname[0] = tv_str("attribute", 9);
            m.kw[0] = *attrname;
            m.nkw = 1;
            if (f_map(R, items, &m, &items, line) < 0)
                return R->err_code;
        }
        return join(R, items, sp, out, line);
    }
    case F_DEFAULT: {
        struct tv *def = arg(a, 0, "default_value"), *boolean = arg(a, 1, "boolean");
        bool use = v.kind == TV_UNDEF || (boolean && tv_truthy(*boolean) && !tv_truthy(v));
        *out = use ? (def ? *def : tv_str("", 0)) : v;
        return 0;
    }
    case F_STRING:
        return to_str(R, v, out, line);
    case F_UNIQUE:
        return as_generator(f_unique(R, v, a, out, line), out);
    case F_ITEMS:
        if (v.kind == TV_UNDEF)
            return as_generator(list_value(R, 0, TV_LIST, out, line), out);
        if (v.kind != TV_DICT)
            return tl_fail(R, TMPL_EEVAL, line, "items: expected a mapping, got %s", type_name(v));
        return as_generator(dict_view(R, v, 0, out, line), out);
    case F_DICTSORT: {
        if (v.kind != TV_DICT)
            return tl_fail(R, TMPL_EEVAL, line, "dictsort: expected a mapping, got %s", type_name(v));
        if (dict_view(R, v, 0, &items, line) < 0)
            return R->err_code;
        struct targs s;
        memset(&s, 0, sizeof(s));
        s.kwname[0] = tv_str("attribute", 9);
        s.kw[0] = tv_int(0);
        s.nkw = 1;
        return f_sort_like(R, F_SORT, items, &s, out, line);
    }
    case F_INDENT:
        return f_indent(R, v, a, out, line);
    case F_MAP:
        return as_generator(f_map(R, v, a, out, line), out);
    case F_SELECT: case F_REJECT: case F_SELECTATTR: case F_REJECTATTR:
        return as_generator(select_like(R, id, v, a, out, line), out);
    case F_TOJSON:
        return f_tojson(R, v, a, out, line);
    case F_FIRST:
    case F_LAST:
        return f_first_last(R, id == F_LAST, v, out, line);
    case F_REVERSE:
        if (v.kind == TV_STR) {
            struct tv parts[3] = {tv_none(), tv_none(), tv_int(-1)};
            return tl_slice(R, v, parts, out, line);
        }
        if (tl_iterable(R, v, &items, line) < 0 || list_value(R, items.u.l->n, TV_LIST, out, line) < 0)
            return R->err_code;
        for (size_t i = items.u.l->n; i-- > 0;)
            out->u.l->items[out->u.l->n++] = items.u.l->items[i];
        return as_generator(0, out);
    case F_SORT: case F_MIN: case F_MAX:
        return f_sort_like(R, id, v, a, out, line);
    case F_SUM:
        return f_sum(R, v, a, out, line);
    case F_ABS:
        if (v.kind == TV_FLOAT) {
            *out = tv_float(fabs(v.u.f));
            return 0;
        }
        if (!is_intlike(v) || as_int(v) == INT64_MIN)
            return tl_fail(R, TMPL_EEVAL, line, "bad operand type for abs(): '%s'", type_name(v));
        *out = tv_int(as_int(v) < 0 ? -as_int(v) : as_int(v));
        return 0;
    case F_INT:
    case F_FLOAT:
        if (v.kind == TV_UNDEF) /* int(Undefined) raises in jinja2 */
            return tl_undefined(R, line, v);
        return id == F_INT ? f_int(R, v, a, out, line) : f_float(R, v, a, out, line);
    case F_ROUND: {
        struct tv *prec = arg(a, 0, "precision");
        double p = prec && is_intlike(*prec) ? (double)as_int(*prec) : 0;
        if (!is_num(v))
            return tl_fail(R, TMPL_EEVAL, line, "round: expected a number");
        if (is_intlike(v)) {
            *out = tv_int(as_int(v));
            return 0;
        }
        double m = pow(10.0, p);
        *out = tv_float(round(as_float(v) * m) / m);
        return 0;
    }
    case F_SAFE:
        *out = v;
        return 0;
    case F_ESCAPE:
        return f_escape(R, v, out, line);
    case F_ATTR: {
        struct tv *name = arg(a, 0, NULL);
        if (want_str(R, name, "attr", line) < 0)
            return R->err_code;
        return tl_getattr(R, v, *name, out, line);
    }
    }
    return tl_fail(R, TMPL_EEVAL, line, "internal error: bad filter");
}
