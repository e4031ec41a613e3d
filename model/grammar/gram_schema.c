/* gram_schema.c - JSON schemas to grammar text (the format of grammar.h).
 *
 * Each schema node becomes a rule; $ref targets get one rule per reference string,
 * named before their body is written, so recursive schemas become recursive rules. The
 * JSON the grammar admits is compact JSON with bounded whitespace ([ \t\n]{0,20} around
 * punctuation), object members in the order the schema declares them (each optional
 * one present or not), strings of JSON characters (\u escapes of non-surrogates only,
 * so every escape is one character for minLength/maxLength), and numbers without an
 * exponent: integers of at most 15 digits and fractions of at most 15. Every text the
 * grammar admits validates against the schema; some valid texts are not admitted (e.g.
 * reordered members, 16-digit integers, February 29th for format date).
 *
 * Keywords outside the supported list are refused by name with the JSON pointer of the
 * schema node, never ignored. */
#include "grammar.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SC_MAX_DEPTH 64
#define SC_MAX_ITEMS 1000
#define SC_INT_MAX 999999999999999LL /* 15 digits */

struct sc_ref {
    char *ref;
    char name[96];
};

struct sc {
    const struct gram_json *root;
    const char *prefix;
    struct strbuf *out;
    char *err;
    size_t err_len;
    char *kw;
    size_t kw_len;
    int rc;
    int n_rules;
    int depth;
    struct sc_ref *refs;
    size_t n_refs, cap_refs;
    bool used_value, used_char;
};

static int sfail(struct sc *c, const char *kw, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int sfail(struct sc *c, const char *kw, const char *path, const char *fmt, ...)
{
    if (c->rc)
        return c->rc;
    c->rc = GRAM_ESCHEMA;
    char msg[240];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->err_len)
        snprintf(c->err, c->err_len, "%s at %s", msg, path[0] ? path : "/");
    if (c->kw_len)
        snprintf(c->kw, c->kw_len, "%s", kw ? kw : "");
    return c->rc;
}

static int nomem(struct sc *c)
{
    if (!c->rc) {
        c->rc = GRAM_ENOMEM;
        if (c->err_len)
            snprintf(c->err, c->err_len, "out of memory");
    }
    return c->rc;
}

static void put(struct strbuf *b, const char *s)
{
    strbuf_append(b, s, strlen(s));
}

static void putf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void putf(struct strbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        strbuf_append(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* A fresh rule name "<prefix><n>" into name. */
static void new_name(struct sc *c, char *name, size_t len)
{
    snprintf(name, len, "%s%d", c->prefix, c->n_rules++);
}

/* Appends `name ::= body` to the output. */
static void emit_rule(struct sc *c, const char *name, const struct strbuf *body)
{
    put(c->out, name);
    put(c->out, " ::= ");
    strbuf_append(c->out, strbuf_str(body), body->len);
    put(c->out, "\n");
}

/* ---- shared rules: whitespace, characters, any JSON value ---- */

static void shared_rules(struct strbuf *o, const char *p, bool value)
{
    putf(o, "%sws ::= [ \\t\\n]{0,20}\n", p);
    putf(o, "%shex ::= [0-9a-fA-F]\n", p);
    putf(o, "%schar ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" ([0-9a-cA-CeEfF] %shex %shex %shex | [dD] [0-7] %shex %shex))\n",
         p, p, p, p, p, p);
    if (!value)
        return;
    putf(o, "%sstring ::= \"\\\"\" %schar* \"\\\"\"\n", p, p);
    putf(o, "%snumber ::= \"-\"? (\"0\" | [1-9] [0-9]{0,14}) (\".\" [0-9]{1,15})?\n", p);
    putf(o, "%smember ::= %sstring %sws \":\" %sws %svalue\n", p, p, p, p, p);
    putf(o, "%sobject ::= \"{\" %sws (%smember (%sws \",\" %sws %smember)*)? %sws \"}\"\n", p, p,
         p, p, p, p, p);
    putf(o, "%sarray ::= \"[\" %sws (%svalue (%sws \",\" %sws %svalue)*)? %sws \"]\"\n", p, p, p,
         p, p, p, p);
    putf(o, "%svalue ::= %sobject | %sarray | %sstring | %snumber | \"true\" | \"false\" | \"null\"\n",
         p, p, p, p, p);
}

int gram_any_json_ebnf(const char *prefix, const char *root_name, bool object_only,
                       struct strbuf *out)
{
    putf(out, "%s ::= %s%s\n", root_name, prefix, object_only ? "object" : "value");
    shared_rules(out, prefix, true);
    return out->data ? 0 : GRAM_ENOMEM;
}

/* ---- keywords ---- */

static const char *const supported[] = {
    "type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
    "enum", "const", "pattern", "format", "minLength", "maxLength", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "anyOf", "allOf", "nullable", "$ref", "$defs",
    "definitions",
    /* annotations */
    "title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated",
    "readOnly", "writeOnly", "strict", NULL,
};

static int check_keywords(struct sc *c, const struct gram_json *s, const char *path)
{
    for (size_t i = 0; i < s->n; i++) {
        bool ok = false;
        for (int k = 0; supported[k] && !ok; k++)
            ok = strcmp(s->keys[i], supported[k]) == 0;
        if (!ok)
            return sfail(c, s->keys[i], path, "unsupported keyword '%.60s'", s->keys[i]);
    }
    return 0;
}

static int emit_schema(struct sc *c, const struct gram_json *s, const char *path, char *name,
                       size_t name_len);

/* Reads an integer keyword (absent: def). */
static int get_count(struct sc *c, const struct gram_json *s, const char *key, const char *path,
                     long long def, long long *out)
{
    const struct gram_json *v = gram_json_get(s, key);
    *out = def;
    if (!v)
        return 0;
    if (v->kind != GJ_NUMBER || v->num < 0 || v->num != floor(v->num) || v->num > SC_MAX_ITEMS)
        return sfail(c, key, path, "'%s' must be an integer between 0 and %d", key, SC_MAX_ITEMS);
    *out = (long long)v->num;
    return 0;
}

/* ---- $ref ---- */

/* Resolves a JSON pointer "#/a/b" against the root schema. */
static const struct gram_json *resolve(struct sc *c, const char *ref)
{
    if (ref[0] != '#')
        return NULL;
    const struct gram_json *at = c->root;
    const char *p = ref + 1;
    while (*p == '/' && at) {
        p++;
        char seg[256];
        size_t n = 0;
        while (*p && *p != '/' && n + 1 < sizeof(seg)) {
            if (p[0] == '~' && (p[1] == '0' || p[1] == '1')) {
                seg[n++] = p[1] == '0' ? '~' : '/';
                p += 2;
            } else {
                seg[n++] = *p++;
            }
        }
        seg[n] = 0;
        if (at->kind == GJ_OBJECT) {
            at = gram_json_get(at, seg);
        } else if (at->kind == GJ_ARRAY) {
            char *end;
            unsigned long i = strtoul(seg, &end, 10);
            at = *end || i >= at->n ? NULL : &at->items[i];
        } else {
            at = NULL;
        }
    }
    return *p ? NULL : at;
}

static int emit_ref(struct sc *c, const struct gram_json *r, const char *path, char *name,
                    size_t name_len)
{
    if (r->kind != GJ_STRING)
        return sfail(c, "$ref", path, "'$ref' must be a string");
    for (size_t i = 0; i < c->n_refs; i++)
        if (strcmp(c->refs[i].ref, r->str) == 0) {
            snprintf(name, name_len, "%s", c->refs[i].name);
            return 0;
        }
    const struct gram_json *target = resolve(c, r->str);
    if (!target)
        return sfail(c, "$ref", path, "'$ref' %.80s does not name a schema of this document (only local references \"#/...\")",
                     r->str);
    if (c->n_refs == c->cap_refs) {
        size_t cap = c->cap_refs ? c->cap_refs * 2 : 8;
        struct sc_ref *a = realloc(c->refs, cap * sizeof(*a));
        if (!a)
            return nomem(c);
        c->refs = a;
        c->cap_refs = cap;
    }
    struct sc_ref *e = &c->refs[c->n_refs];
    if (!(e->ref = strdup(r->str)))
        return nomem(c);
    new_name(c, e->name, sizeof(e->name));
    c->n_refs++;
    snprintf(name, name_len, "%s", e->name);
    /* the body: a rule that forwards to the target's own rule */
    char inner[96];
    char *tpath = strdup(r->str + 1);
    if (!tpath)
        return nomem(c);
    int rc = emit_schema(c, target, tpath, inner, sizeof(inner));
    free(tpath);
    if (rc)
        return rc;
    struct strbuf body = {0};
    put(&body, inner);
    emit_rule(c, name, &body);
    strbuf_free(&body);
    return c->rc;
}

/* ---- literals: enum and const ---- */

static int json_literal(struct sc *c, struct strbuf *body, const struct gram_json *v)
{
    struct strbuf js = {0};
    if (gram_json_write(&js, v) != 0 || gram_ebnf_literal(body, strbuf_str(&js), js.len) != 0) {
        strbuf_free(&js);
        return nomem(c);
    }
    strbuf_free(&js);
    return 0;
}

static int emit_enum(struct sc *c, const struct gram_json *e, const char *path, struct strbuf *body)
{
    if (e->kind != GJ_ARRAY || e->n == 0)
        return sfail(c, "enum", path, "'enum' must be a non-empty array");
    put(body, "(");
    for (size_t i = 0; i < e->n && !c->rc; i++) {
        if (i)
            put(body, " | ");
        json_literal(c, body, &e->items[i]);
    }
    put(body, ")");
    return c->rc;
}

/* ---- numbers ---- */

/* Decimal strings of equal length from lo to hi (leading zeros allowed) as a group. */
static void fixed_range(struct strbuf *b, const char *lo, const char *hi, size_t n)
{
    if (n == 0) {
        put(b, "\"\"");
        return;
    }
    if (memcmp(lo, hi, n) == 0) {
        gram_ebnf_literal(b, lo, n);
        return;
    }
    if (n == 1) {
        putf(b, "[%c-%c]", lo[0], hi[0]);
        return;
    }
    if (lo[0] == hi[0]) {
        putf(b, "(\"%c\" ", lo[0]);
        fixed_range(b, lo + 1, hi + 1, n - 1);
        put(b, ")");
        return;
    }
    char nines[32], zeros[32];
    memset(nines, '9', n - 1);
    memset(zeros, '0', n - 1);
    put(b, "(\"");
    strbuf_append(b, lo, 1);
    put(b, "\" ");
    fixed_range(b, lo + 1, nines, n - 1);
    if (hi[0] - lo[0] > 1)
        putf(b, " | [%c-%c] [0-9]{%zu}", lo[0] + 1, hi[0] - 1, n - 1);
    put(b, " | \"");
    strbuf_append(b, hi, 1);
    put(b, "\" ");
    fixed_range(b, zeros, hi + 1, n - 1);
    put(b, ")");
}

/* Decimal integers a..b (0 <= a <= b), no leading zeros, as a group. */
static void mag_range(struct strbuf *b, long long a, long long hi)
{
    put(b, "(");
    bool first = true;
    long long p10 = 1;
    for (int d = 1; d <= 16 && a <= hi; d++, p10 *= 10) {
        long long dlo = d == 1 ? 0 : p10, dhi = p10 * 10 - 1;
        if (a > dhi)
            continue;
        long long from = a > dlo ? a : dlo, to = hi < dhi ? hi : dhi;
        if (from > to)
            continue;
        char ls[32], hs[32];
        snprintf(ls, sizeof(ls), "%lld", from);
        snprintf(hs, sizeof(hs), "%lld", to);
        if (!first)
            put(b, " | ");
        first = false;
        fixed_range(b, ls, hs, strlen(ls));
    }
    put(b, ")");
}

static int read_bound(struct sc *c, const struct gram_json *s, const char *key, const char *path,
                      bool *has, double *v)
{
    const struct gram_json *j = gram_json_get(s, key);
    *has = false;
    if (!j)
        return 0;
    if (j->kind == GJ_BOOL && (strcmp(key, "exclusiveMinimum") == 0 || strcmp(key, "exclusiveMaximum") == 0))
        return sfail(c, key, path, "boolean '%s' (draft 4) is not supported; give the bound as a number", key);
    if (j->kind != GJ_NUMBER)
        return sfail(c, key, path, "'%s' must be a number", key);
    *has = true;
    *v = j->num;
    return 0;
}

/* Integer bounds [lo, hi] from minimum/maximum/exclusive*, clamped to 15 digits. */
static int int_bounds(struct sc *c, const struct gram_json *s, const char *path, long long *lo,
                      long long *hi, bool *bounded)
{
    bool hmin, hmax, hxmin, hxmax;
    double vmin = 0, vmax = 0, vxmin = 0, vxmax = 0;
    if (read_bound(c, s, "minimum", path, &hmin, &vmin) ||
        read_bound(c, s, "maximum", path, &hmax, &vmax) ||
        read_bound(c, s, "exclusiveMinimum", path, &hxmin, &vxmin) ||
        read_bound(c, s, "exclusiveMaximum", path, &hxmax, &vxmax))
        return c->rc;
    double l = -(double)SC_INT_MAX, h = (double)SC_INT_MAX;
    if (hmin && ceil(vmin) > l)
        l = ceil(vmin);
    if (hxmin && floor(vxmin) + 1 > l)
        l = floor(vxmin) + 1;
    if (hmax && floor(vmax) < h)
        h = floor(vmax);
    if (hxmax && ceil(vxmax) - 1 < h)
        h = ceil(vxmax) - 1;
    *bounded = hmin || hmax || hxmin || hxmax;
    if (l > h || l > (double)SC_INT_MAX || h < -(double)SC_INT_MAX)
        return sfail(c, hmin ? "minimum" : hxmin ? "exclusiveMinimum" : "maximum", path,
                     "no integer of at most 15 digits lies between the minimum and the maximum");
    *lo = (long long)l;
    *hi = (long long)h;
    return 0;
}

static int emit_integer(struct sc *c, const struct gram_json *s, const char *path,
                        struct strbuf *body)
{
    long long lo, hi;
    bool bounded;
    if (int_bounds(c, s, path, &lo, &hi, &bounded))
        return c->rc;
    if (!bounded) {
        put(body, "\"-\"? (\"0\" | [1-9] [0-9]{0,14})");
        return 0;
    }
    put(body, "(");
    bool alt = false;
    if (lo < 0) { /* negative: magnitudes max(1, -hi) .. -lo */
        put(body, "\"-\" ");
        mag_range(body, hi < 0 ? -hi : 1, -lo);
        alt = true;
    }
    if (hi >= 0) {
        if (alt)
            put(body, " | ");
        mag_range(body, lo > 0 ? lo : 0, hi);
    }
    put(body, ")");
    return 0;
}

/* Numbers within the bounds: integer parts that leave room for any fraction, plus the
 * integral bounds themselves (see the file comment: a subset of the valid numbers). */
static int emit_number(struct sc *c, const struct gram_json *s, const char *path,
                       struct strbuf *body)
{
    long long lo, hi;
    bool bounded;
    if (int_bounds(c, s, path, &lo, &hi, &bounded))
        return c->rc;
    const char *frac = "(\".\" [0-9]{1,15})?";
    if (!bounded) {
        putf(body, "\"-\"? (\"0\" | [1-9] [0-9]{0,14}) %s", frac);
        return 0;
    }
    put(body, "(");
    bool alt = false;
    long long plo = lo > 0 ? lo : 0;
    if (hi >= 0 && plo <= hi - 1) { /* ip.f in [plo, hi) */
        mag_range(body, plo, hi - 1);
        putf(body, " %s", frac);
        alt = true;
    }
    if (hi >= plo && hi >= 0) {
        putf(body, "%s\"%lld\"", alt ? " | " : "", hi);
        alt = true;
    }
    if (lo < 0) {
        long long nlo = hi < 0 ? -hi : 0; /* -(ip.f) with ip.f in [nlo, -lo] */
        if (nlo <= -lo - 1) {
            putf(body, "%s\"-\" ", alt ? " | " : "");
            mag_range(body, nlo, -lo - 1);
            putf(body, " %s", frac);
            alt = true;
        }
        if (-lo >= nlo && -lo >= 1) {
            putf(body, "%s\"-%lld\"", alt ? " | " : "", -lo);
            alt = true;
        }
    }
    put(body, ")");
    if (!alt)
        return sfail(c, "minimum", path, "no number can be generated between the minimum and the maximum");
    return 0;
}

/* ---- strings ---- */

/* A code point as an EBNF class member. */
static void class_cp(struct strbuf *b, uint32_t cp)
{
    putf(b, "\\U%08X", cp);
}

struct rx {
    struct sc *c;
    const char *path;
    const char *s;
    size_t len, pos;
    struct strbuf *out;
    int depth;
};

static int rx_fail(struct rx *r, const char *what)
{
    return sfail(r->c, "pattern", r->path, "pattern: %s (at character %zu) is not supported", what,
                 r->pos);
}

struct rx_set {
    uint64_t ascii[2];  /* code points 0-127 */
    bool negate;        /* then: everything not in ascii (non-ASCII included) */
};

static void rx_set_range(struct rx_set *s, unsigned lo, unsigned hi)
{
    for (unsigned c = lo; c <= hi && c < 128; c++)
        s->ascii[c >> 6] |= 1ull << (c & 63);
}

/* \d \w \s and their negations into a set; false for any other letter. */
static bool rx_class_escape(struct rx_set *s, char e, bool *neg)
{
    char l = e | 0x20;
    *neg = e >= 'A' && e <= 'Z';
    if (l == 'd') {
        rx_set_range(s, '0', '9');
    } else if (l == 'w') {
        rx_set_range(s, 'a', 'z');
        rx_set_range(s, 'A', 'Z');
        rx_set_range(s, '0', '9');
        rx_set_range(s, '_', '_');
    } else if (l == 's') {
        rx_set_range(s, ' ', ' ');
        rx_set_range(s, '\t', '\r');
    } else {
        return false;
    }
    return true;
}

/* Writes a set as an EBNF class of raw JSON string characters (never '"', '\\' or a
 * control character, which would need escaping). */
static void rx_write_set(struct strbuf *b, const struct rx_set *s)
{
    put(b, s->negate ? "[^\"\\\\\\x00-\\x1F" : "[");
    int n = 0;
    for (unsigned c = 0; c < 128; c++) {
        bool in = (s->ascii[c >> 6] >> (c & 63)) & 1;
        bool json_ok = c >= 0x20 && c != '"' && c != '\\';
        if (in && (s->negate || json_ok)) {
            class_cp(b, c);
            n++;
        }
    }
    if (!s->negate && n == 0)
        class_cp(b, 0x7F); /* nothing encodable: DEL stands for an empty match set */
    put(b, "]");
}

static unsigned rx_escape_char(char e)
{
    switch (e) {
    case 'n': return '\n';
    case 't': return '\t';
    case 'r': return '\r';
    case 'f': return '\f';
    case 'v': return '\v';
    default: return (unsigned char)e;
    }
}

static int rx_class(struct rx *r)
{
    struct rx_set set = {{0, 0}, false};
    r->pos++; /* [ */
    if (r->pos < r->len && r->s[r->pos] == '^') {
        set.negate = true;
        r->pos++;
    }
    bool first = true;
    while (r->pos < r->len && (r->s[r->pos] != ']' || first)) {
        first = false;
        unsigned lo = (unsigned char)r->s[r->pos++];
        if (lo == '\\') {
            if (r->pos >= r->len)
                return rx_fail(r, "a trailing backslash");
            char e = r->s[r->pos++];
            bool neg;
            struct rx_set tmp = {{0, 0}, false};
            if (rx_class_escape(&tmp, e, &neg)) {
                if (neg)
                    return rx_fail(r, "a negated class escape inside [...]");
                set.ascii[0] |= tmp.ascii[0];
                set.ascii[1] |= tmp.ascii[1];
                continue;
            }
            if ((e >= 'a' && e <= 'z') && !strchr("ntrfv", e))
                return rx_fail(r, "this escape");
            lo = rx_escape_char(e);
        }
        if (lo >= 128)
            return rx_fail(r, "a non-ASCII character in a class");
        unsigned hi = lo;
        if (r->pos + 1 < r->len && r->s[r->pos] == '-' && r->s[r->pos + 1] != ']') {
            r->pos++;
            hi = (unsigned char)r->s[r->pos++];
            if (hi == '\\') {
                if (r->pos >= r->len)
                    return rx_fail(r, "a trailing backslash");
                hi = rx_escape_char(r->s[r->pos++]);
            }
            if (hi >= 128 || hi < lo)
                return rx_fail(r, "this range");
        }
        rx_set_range(&set, lo, hi);
    }
    if (r->pos >= r->len)
        return rx_fail(r, "an unterminated class");
    r->pos++;
    rx_write_set(r->out, &set);
    return 0;
}

/* One character c of the decoded string, written as its JSON encoding. */
static void rx_char(struct strbuf *b, unsigned char c)
{
    char lit[8];
    if (c == '"' || c == '\\') {
        lit[0] = '\\';
        lit[1] = (char)c;
        gram_ebnf_literal(b, lit, 2);
    } else if (c < 0x20) {
        const char *named = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r"
                            : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
        if (named)
            gram_ebnf_literal(b, named, 2);
        else {
            snprintf(lit, sizeof(lit), "\\u%04x", c);
            gram_ebnf_literal(b, lit, 6);
        }
    } else {
        gram_ebnf_literal(b, (const char *)&c, 1);
    }
}

static int rx_alternatives(struct rx *r);

static int rx_quantifier(struct rx *r)
{
    if (r->pos >= r->len)
        return 0;
    char q = r->s[r->pos];
    if (q == '*' || q == '+' || q == '?') {
        r->pos++;
        putf(r->out, "%c", q);
    } else if (q == '{') {
        size_t end = r->pos + 1;
        while (end < r->len && ((r->s[end] >= '0' && r->s[end] <= '9') || r->s[end] == ','))
            end++;
        if (end >= r->len || r->s[end] != '}' || end == r->pos + 1)
            return rx_fail(r, "this '{'");
        strbuf_append(r->out, r->s + r->pos, end + 1 - r->pos);
        r->pos = end + 1;
    } else {
        return 0;
    }
    if (r->pos < r->len && r->s[r->pos] == '?')
        r->pos++; /* lazy and greedy match the same strings */
    if (r->pos < r->len && strchr("*+?{", r->s[r->pos]))
        return rx_fail(r, "a repeated quantifier");
    return 0;
}

static int rx_atom(struct rx *r)
{
    char ch = r->s[r->pos];
    if (ch == '(') {
        r->pos++;
        if (r->pos + 1 < r->len && r->s[r->pos] == '?') {
            if (r->s[r->pos + 1] != ':')
                return rx_fail(r, "a lookaround or named group");
            r->pos += 2;
        }
        if (++r->depth > 32)
            return rx_fail(r, "groups this deep");
        put(r->out, "(");
        if (rx_alternatives(r))
            return r->c->rc;
        r->depth--;
        if (r->pos >= r->len || r->s[r->pos] != ')')
            return rx_fail(r, "an unbalanced group");
        r->pos++;
        put(r->out, ")");
    } else if (ch == '[') {
        if (rx_class(r))
            return r->c->rc;
    } else if (ch == '.') {
        r->pos++;
        put(r->out, "[^\"\\\\\\x00-\\x1F]");
    } else if (ch == '\\') {
        if (++r->pos >= r->len)
            return rx_fail(r, "a trailing backslash");
        char e = r->s[r->pos++];
        struct rx_set set = {{0, 0}, false};
        bool neg;
        if (rx_class_escape(&set, e, &neg)) {
            set.negate = neg;
            rx_write_set(r->out, &set);
        } else if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '0' && e <= '9')) {
            if (!strchr("ntrfv", e))
                return rx_fail(r, "this escape (back-reference, boundary or code)");
            rx_char(r->out, (unsigned char)rx_escape_char(e));
        } else {
            rx_char(r->out, (unsigned char)e);
        }
    } else if (ch == '^' || ch == '$') {
        return rx_fail(r, "an anchor inside the pattern");
    } else if (ch == '*' || ch == '+' || ch == '?' || ch == '{') {
        return rx_fail(r, "a quantifier with nothing to repeat");
    } else {
        /* one UTF-8 character, copied whole */
        size_t n = 1;
        while (r->pos + n < r->len && ((unsigned char)r->s[r->pos + n] & 0xC0) == 0x80)
            n++;
        if (n == 1)
            rx_char(r->out, (unsigned char)ch);
        else
            gram_ebnf_literal(r->out, r->s + r->pos, n);
        r->pos += n;
    }
    return rx_quantifier(r);
}

static int rx_alternatives(struct rx *r)
{
    put(r->out, "(\"\" ");
    while (r->pos < r->len && !r->c->rc) {
        char ch = r->s[r->pos];
        if (ch == ')')
            break;
        if (ch == '|') {
            r->pos++;
            put(r->out, " | \"\" ");
            continue;
        }
        if (ch == '$' && r->pos + 1 == r->len)
            break;
        if (rx_atom(r))
            return r->c->rc;
        put(r->out, " ");
    }
    put(r->out, ")");
    return r->c->rc;
}

static int emit_pattern(struct sc *c, const struct gram_json *p, const char *path,
                        struct strbuf *body)
{
    if (p->kind != GJ_STRING)
        return sfail(c, "pattern", path, "'pattern' must be a string");
    struct rx r = {c, path, p->str, p->len, 0, body, 0};
    bool start = r.len && r.s[0] == '^';
    bool end = r.len && r.s[r.len - 1] == '$' && (r.len < 2 || r.s[r.len - 2] != '\\');
    if (start)
        r.pos++;
    c->used_char = true;
    put(body, "\"\\\"\" ");
    if (!start)
        putf(body, "%schar* ", c->prefix);
    if (rx_alternatives(&r))
        return c->rc;
    if (r.pos < r.len && !(end && r.pos + 1 == r.len))
        return rx_fail(&r, "an unbalanced ')'");
    if (!end)
        putf(body, " %schar*", c->prefix);
    put(body, " \"\\\"\"");
    return 0;
}

static int emit_format(struct sc *c, const struct gram_json *f, const char *path,
                       struct strbuf *body)
{
    static const char *date = "[0-9]{4} \"-\" ((\"0\" [13578] | \"1\" [02]) \"-\" (\"0\" [1-9] | [12] [0-9] | \"3\" [01]) | (\"0\" [469] | \"11\") \"-\" (\"0\" [1-9] | [12] [0-9] | \"30\") | \"02\" \"-\" (\"0\" [1-9] | \"1\" [0-9] | \"2\" [0-8]))";
    static const char *time = "([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] (\".\" [0-9]{1,6})? (\"Z\" | [+-] ([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9])";
    static const char *uuid = "[0-9a-f]{8} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{12}";
    static const char *email = "[a-zA-Z0-9_%+-]{1,20} (\".\" [a-zA-Z0-9_%+-]{1,20}){0,2} \"@\" ([a-zA-Z0-9] ([a-zA-Z0-9-]{0,20} [a-zA-Z0-9])? \".\"){1,3} [a-zA-Z] ([a-zA-Z0-9-]{0,20} [a-zA-Z0-9])?";
    if (f->kind != GJ_STRING)
        return sfail(c, "format", path, "'format' must be a string");
    put(body, "\"\\\"\" ");
    if (strcmp(f->str, "date") == 0)
        put(body, date);
    else if (strcmp(f->str, "time") == 0)
        put(body, time);
    else if (strcmp(f->str, "date-time") == 0)
        putf(body, "%s \"T\" %s", date, time);
    else if (strcmp(f->str, "uuid") == 0)
        put(body, uuid);
    else if (strcmp(f->str, "email") == 0)
        put(body, email);
    else
        return sfail(c, "format", path,
                     "format '%.40s' is not supported (date, time, date-time, uuid, email)", f->str);
    put(body, " \"\\\"\"");
    return 0;
}

static int emit_string(struct sc *c, const struct gram_json *s, const char *path,
                       struct strbuf *body)
{
    const struct gram_json *fmt = gram_json_get(s, "format");
    const struct gram_json *pat = gram_json_get(s, "pattern");
    bool lens = gram_json_get(s, "minLength") || gram_json_get(s, "maxLength");
    if ((fmt && pat) || ((fmt || pat) && lens))
        return sfail(c, fmt ? "format" : "pattern", path,
                     "'%s' together with '%s' is not supported", fmt ? "format" : "pattern",
                     fmt && pat ? "pattern" : "minLength/maxLength");
    if (fmt)
        return emit_format(c, fmt, path, body);
    if (pat)
        return emit_pattern(c, pat, path, body);
    long long lo, hi;
    if (get_count(c, s, "minLength", path, 0, &lo) || get_count(c, s, "maxLength", path, -1, &hi))
        return c->rc;
    if (hi >= 0 && hi < lo)
        return sfail(c, "maxLength", path, "'maxLength' is below 'minLength'");
    c->used_char = true;
    if (hi < 0 && lo == 0)
        putf(body, "\"\\\"\" %schar* \"\\\"\"", c->prefix);
    else if (hi < 0)
        putf(body, "\"\\\"\" %schar{%lld,} \"\\\"\"", c->prefix, lo);
    else
        putf(body, "\"\\\"\" %schar{%lld,%lld} \"\\\"\"", c->prefix, lo, hi);
    return 0;
}

/* ---- objects and arrays ---- */

static int emit_map(struct sc *c, const struct gram_json *ap, const char *path,
                    struct strbuf *body)
{
    char v[96], sub[512];
    snprintf(sub, sizeof(sub), "%s/additionalProperties", path);
    if (emit_schema(c, ap, sub, v, sizeof(v)))
        return c->rc;
    c->used_value = true;
    const char *p = c->prefix;
    putf(body, "\"{\" %sws (%sstring %sws \":\" %sws %s (%sws \",\" %sws %sstring %sws \":\" %sws %s)*)? %sws \"}\"",
         p, p, p, p, v, p, p, p, p, p, v, p);
    return 0;
}

/* Object with declared properties: R_i(comma) rules, see the file comment. */
static int emit_object(struct sc *c, const struct gram_json *s, const char *path,
                       struct strbuf *body)
{
    const struct gram_json *props = gram_json_get(s, "properties");
    const struct gram_json *req = gram_json_get(s, "required");
    const struct gram_json *ap = gram_json_get(s, "additionalProperties");
    if (props && props->kind != GJ_OBJECT)
        return sfail(c, "properties", path, "'properties' must be an object");
    if (req && req->kind != GJ_ARRAY)
        return sfail(c, "required", path, "'required' must be an array of names");
    if (ap && ap->kind != GJ_BOOL && ap->kind != GJ_OBJECT)
        return sfail(c, "additionalProperties", path, "'additionalProperties' must be a boolean or a schema");
    for (size_t i = 0; req && i < req->n; i++)
        if (req->items[i].kind != GJ_STRING || !gram_json_get(props, req->items[i].str))
            return sfail(c, "required", path,
                         "'required' names '%.60s', which is not in 'properties'",
                         req->items[i].kind == GJ_STRING ? req->items[i].str : "?");
    if (!props || props->n == 0) {
        if (ap && ap->kind == GJ_OBJECT)
            return emit_map(c, ap, path, body);
        if (ap && !ap->b) {
            putf(body, "\"{\" %sws \"}\"", c->prefix);
            return 0;
        }
        c->used_value = true;
        putf(body, "%sobject", c->prefix);
        return 0;
    }
    size_t n = props->n;
    char base[96];
    new_name(c, base, sizeof(base));
    for (size_t k = n; k-- > 0 && !c->rc;) {
        char vname[96], sub[512];
        snprintf(sub, sizeof(sub), "%s/properties/%s", path, props->keys[k]);
        if (emit_schema(c, &props->items[k], sub, vname, sizeof(vname)))
            return c->rc;
        bool required = false;
        for (size_t i = 0; req && i < req->n; i++)
            required = required || strcmp(req->items[i].str, props->keys[k]) == 0;
        struct gram_json kj = {.kind = GJ_STRING, .str = props->keys[k], .len = props->key_lens[k]};
        for (int comma = 0; comma < 2; comma++) {
            struct strbuf rb = {0};
            char rname[128];
            snprintf(rname, sizeof(rname), "%s-%zu-%d", base, k, comma);
            if (comma)
                putf(&rb, "%sws \",\" %sws ", c->prefix, c->prefix);
            json_literal(c, &rb, &kj);
            putf(&rb, " %sws \":\" %sws %s", c->prefix, c->prefix, vname);
            if (k + 1 < n)
                putf(&rb, " %s-%zu-1", base, k + 1);
            if (!required) {
                if (k + 1 < n)
                    putf(&rb, " | %s-%zu-%d", base, k + 1, comma);
                else
                    put(&rb, " | \"\"");
            }
            emit_rule(c, rname, &rb);
            strbuf_free(&rb);
        }
    }
    putf(body, "\"{\" %sws %s-0-0 %sws \"}\"", c->prefix, base, c->prefix);
    return c->rc;
}

static int emit_array(struct sc *c, const struct gram_json *s, const char *path,
                      struct strbuf *body)
{
    const struct gram_json *items = gram_json_get(s, "items");
    long long lo, hi;
    if (get_count(c, s, "minItems", path, 0, &lo) || get_count(c, s, "maxItems", path, -1, &hi))
        return c->rc;
    if (hi >= 0 && hi < lo)
        return sfail(c, "maxItems", path, "'maxItems' is below 'minItems'");
    char item[96];
    if (items) {
        if (items->kind == GJ_ARRAY)
            return sfail(c, "items", path, "'items' as an array (tuple) is not supported");
        char sub[512];
        snprintf(sub, sizeof(sub), "%s/items", path);
        if (emit_schema(c, items, sub, item, sizeof(item)))
            return c->rc;
    } else {
        c->used_value = true;
        snprintf(item, sizeof(item), "%svalue", c->prefix);
    }
    const char *p = c->prefix;
    if (hi == 0) {
        putf(body, "\"[\" %sws \"]\"", p);
        return 0;
    }
    char rep[64];
    long long rlo = lo > 0 ? lo - 1 : 0;
    if (hi < 0)
        snprintf(rep, sizeof(rep), "{%lld,}", rlo);
    else
        snprintf(rep, sizeof(rep), "{%lld,%lld}", rlo, hi - 1);
    putf(body, "\"[\" %sws %s%s (%sws \",\" %sws %s)%s%s %sws \"]\"", p, lo == 0 ? "(" : "", item,
         p, p, item, rep, lo == 0 ? ")?" : "", p);
    return 0;
}

/* ---- one schema node ---- */

static int emit_typed(struct sc *c, const struct gram_json *s, const char *type,
                      const char *path, struct strbuf *body)
{
    if (strcmp(type, "object") == 0)
        return emit_object(c, s, path, body);
    if (strcmp(type, "array") == 0)
        return emit_array(c, s, path, body);
    if (strcmp(type, "string") == 0)
        return emit_string(c, s, path, body);
    if (strcmp(type, "integer") == 0)
        return emit_integer(c, s, path, body);
    if (strcmp(type, "number") == 0)
        return emit_number(c, s, path, body);
    if (strcmp(type, "boolean") == 0) {
        put(body, "(\"true\" | \"false\")");
        return 0;
    }
    if (strcmp(type, "null") == 0) {
        put(body, "\"null\"");
        return 0;
    }
    return sfail(c, "type", path, "unknown type '%.40s'", type);
}

/* The type a schema without "type" implies by its keywords ("" for any value). */
static const char *implied_type(const struct gram_json *s)
{
    static const char *const by_kw[][2] = {
        {"properties", "object"}, {"required", "object"}, {"additionalProperties", "object"},
        {"items", "array"}, {"minItems", "array"}, {"maxItems", "array"},
        {"pattern", "string"}, {"format", "string"}, {"minLength", "string"},
        {"maxLength", "string"}, {"minimum", "number"}, {"maximum", "number"},
        {"exclusiveMinimum", "number"}, {"exclusiveMaximum", "number"},
    };
    for (size_t i = 0; i < sizeof(by_kw) / sizeof(by_kw[0]); i++)
        if (gram_json_get(s, by_kw[i][0]))
            return by_kw[i][1];
    return "";
}

static int emit_body(struct sc *c, const struct gram_json *s, const char *path, struct strbuf *body)
{
    const struct gram_json *v;
    if ((v = gram_json_get(s, "$ref"))) {
        char r[96];
        if (emit_ref(c, v, path, r, sizeof(r)))
            return c->rc;
        put(body, r);
        return 0;
    }
    if ((v = gram_json_get(s, "const")))
        return json_literal(c, body, v);
    if ((v = gram_json_get(s, "enum")))
        return emit_enum(c, v, path, body);
    const char *comb = gram_json_get(s, "anyOf") ? "anyOf" : gram_json_get(s, "allOf") ? "allOf" : NULL;
    if (comb) {
        v = gram_json_get(s, comb);
        if (v->kind != GJ_ARRAY || v->n == 0)
            return sfail(c, comb, path, "'%s' must be a non-empty array of schemas", comb);
        if (comb[1] == 'l' && v->n != 1)
            return sfail(c, "allOf", path, "'allOf' with more than one schema is not supported");
        put(body, "(");
        for (size_t i = 0; i < v->n && !c->rc; i++) {
            char sub[512], name[96];
            snprintf(sub, sizeof(sub), "%s/%s/%zu", path, comb, i);
            if (emit_schema(c, &v->items[i], sub, name, sizeof(name)))
                return c->rc;
            putf(body, "%s%s", i ? " | " : "", name);
        }
        put(body, ")");
        return c->rc;
    }
    const struct gram_json *type = gram_json_get(s, "type");
    const struct gram_json *nullable = gram_json_get(s, "nullable");
    bool add_null = nullable && nullable->kind == GJ_BOOL && nullable->b;
    if (!type) {
        const char *t = implied_type(s);
        if (!t[0]) {
            c->used_value = true;
            putf(body, "%svalue", c->prefix);
            return 0;
        }
        return emit_typed(c, s, t, path, body);
    }
    if (type->kind == GJ_STRING && !add_null)
        return emit_typed(c, s, type->str, path, body);
    if (type->kind != GJ_STRING && (type->kind != GJ_ARRAY || type->n == 0))
        return sfail(c, "type", path, "'type' must be a type name or a non-empty list of them");
    put(body, "(");
    size_t n = type->kind == GJ_STRING ? 1 : type->n;
    for (size_t i = 0; i < n && !c->rc; i++) {
        const struct gram_json *t = type->kind == GJ_STRING ? type : &type->items[i];
        if (t->kind != GJ_STRING)
            return sfail(c, "type", path, "'type' entries must be strings");
        if (i)
            put(body, " | ");
        emit_typed(c, s, t->str, path, body);
    }
    if (add_null)
        put(body, " | \"null\"");
    put(body, ")");
    return c->rc;
}

static int emit_schema(struct sc *c, const struct gram_json *s, const char *path, char *name,
                       size_t name_len)
{
    if (c->rc)
        return c->rc;
    if (++c->depth > SC_MAX_DEPTH) {
        c->depth--;
        return sfail(c, NULL, path, "schema nested more than %d deep", SC_MAX_DEPTH);
    }
    struct strbuf body = {0};
    if (s->kind == GJ_BOOL && s->b) {
        c->used_value = true;
        putf(&body, "%svalue", c->prefix);
    } else if (s->kind != GJ_OBJECT) {
        sfail(c, NULL, path, "a schema must be an object or true");
    } else if (check_keywords(c, s, path) == 0) {
        emit_body(c, s, path, &body);
    }
    c->depth--;
    if (!c->rc) {
        new_name(c, name, name_len);
        emit_rule(c, name, &body);
    }
    strbuf_free(&body);
    return c->rc;
}

int gram_schema_ebnf(const struct gram_json *schema, const char *prefix, const char *root_name,
                     struct strbuf *out, char *err, size_t err_len, char *keyword,
                     size_t keyword_len)
{
    struct sc c = {.root = schema, .prefix = prefix, .out = out, .err = err, .err_len = err_len,
                   .kw = keyword, .kw_len = keyword_len};
    if (keyword_len)
        keyword[0] = 0;
    if (err_len)
        err[0] = 0;
    char top[96];
    if (emit_schema(&c, schema, "", top, sizeof(top)) == 0) {
        putf(out, "%s ::= %s\n", root_name, top);
        shared_rules(out, prefix, c.used_value);
        if (!out->data)
            nomem(&c);
    }
    for (size_t i = 0; i < c.n_refs; i++)
        free(c.refs[i].ref);
    free(c.refs);
    return c.rc;
}
