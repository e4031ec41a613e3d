/* gram_ebnf.c - compiles grammar text (the format in grammar.h) into rules of byte
 * sets and rule references (gram_int.h).
 *
 * Parsing builds each alternative as a vector of elements and commits a rule only when
 * all its alternatives are read, so helper rules made on the way (groups, repetitions,
 * non-ASCII character classes) never move an alternative being built. A character
 * class over code points becomes UTF-8 byte sequences: the ranges are split until
 * every byte position is one contiguous range. After parsing, every referenced rule
 * must be defined and no rule may reach itself without consuming a byte (checked on
 * the graph "A can start with B"), which is what lets a matcher's closure terminate. */
#include "gram_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GB_MAX_ELEMS (1u << 20)
#define GB_MAX_RULES (1u << 18)
#define GB_MAX_REPEAT 10000
#define GB_MAX_DEPTH 200

const char *gram_strerror(int code)
{
    switch (code) {
#define GRAM_ERR_CASE_(name, c, text)                                                     \
    case c:                                                                               \
        return text;
        GRAM_ERRORS(GRAM_ERR_CASE_)
#undef GRAM_ERR_CASE_
    default:
        return "unknown error";
    }
}

/* ---- builder ---- */

struct evec {
    struct gram_elem *e;
    size_t n, cap;
};

struct alist {
    struct evec *a;
    size_t n, cap;
};

struct brule {
    char *name; /* NULL: a helper rule */
    size_t name_len;
    struct alist alts;
    bool defined;
    int line; /* first reference, for "undefined rule" */
};

struct gb {
    struct brule *rules;
    size_t n_rules, cap_rules;
    uint64_t (*sets)[4];
    size_t n_sets, cap_sets;
    int32_t byte_set[256]; /* set index of each single-byte set, or -1 */
    size_t n_elems;
    /* parser */
    const char *s;
    size_t len, pos;
    int line;
    int depth;
    int rc;
    char *err;
    size_t err_len;
};

static int gfail(struct gb *b, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int gfail(struct gb *b, int rc, const char *fmt, ...)
{
    if (b->rc)
        return b->rc;
    b->rc = rc;
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (b->err_len)
        snprintf(b->err, b->err_len, "line %d: %s", b->line, msg);
    return rc;
}

static int evec_push(struct gb *b, struct evec *v, uint32_t type, uint32_t arg)
{
    if (++b->n_elems > GB_MAX_ELEMS)
        return gfail(b, GRAM_ELIMIT, "grammar has more than %u elements", GB_MAX_ELEMS);
    if (v->n == v->cap) {
        size_t c = v->cap ? v->cap * 2 : 8;
        struct gram_elem *e = realloc(v->e, c * sizeof(*e));
        if (!e)
            return gfail(b, GRAM_ENOMEM, "out of memory");
        v->e = e;
        v->cap = c;
    }
    v->e[v->n++] = (struct gram_elem){type, arg};
    return 0;
}

static void alist_free(struct alist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->a[i].e);
    free(l->a);
    memset(l, 0, sizeof(*l));
}

/* Moves v (emptied) into a new alternative of l. */
static int alist_take(struct gb *b, struct alist *l, struct evec *v)
{
    if (l->n == l->cap) {
        size_t c = l->cap ? l->cap * 2 : 4;
        struct evec *a = realloc(l->a, c * sizeof(*a));
        if (!a) {
            free(v->e);
            memset(v, 0, sizeof(*v));
            return gfail(b, GRAM_ENOMEM, "out of memory");
        }
        l->a = a;
        l->cap = c;
    }
    l->a[l->n++] = *v;
    memset(v, 0, sizeof(*v));
    return 0;
}

/* A new rule slot; returns its index or -1. */
static int64_t rule_new(struct gb *b, const char *name, size_t name_len)
{
    if (b->n_rules >= GB_MAX_RULES) {
        gfail(b, GRAM_ELIMIT, "grammar has more than %u rules", GB_MAX_RULES);
        return -1;
    }
    if (b->n_rules == b->cap_rules) {
        size_t c = b->cap_rules ? b->cap_rules * 2 : 16;
        struct brule *r = realloc(b->rules, c * sizeof(*r));
        if (!r) {
            gfail(b, GRAM_ENOMEM, "out of memory");
            return -1;
        }
        b->rules = r;
        b->cap_rules = c;
    }
    struct brule *r = &b->rules[b->n_rules];
    memset(r, 0, sizeof(*r));
    r->line = b->line;
    if (name) {
        r->name = strndup(name, name_len);
        r->name_len = name_len;
        if (!r->name) {
            gfail(b, GRAM_ENOMEM, "out of memory");
            return -1;
        }
    }
    return (int64_t)b->n_rules++;
}

static int64_t rule_find(struct gb *b, const char *name, size_t len)
{
    for (size_t i = 0; i < b->n_rules; i++)
        if (b->rules[i].name && b->rules[i].name_len == len &&
            memcmp(b->rules[i].name, name, len) == 0)
            return (int64_t)i;
    return rule_new(b, name, len);
}

/* A helper rule with the alternatives of l (taken). Returns its index or -1. */
static int64_t rule_helper(struct gb *b, struct alist *l)
{
    int64_t r = rule_new(b, NULL, 0);
    if (r < 0) {
        alist_free(l);
        return -1;
    }
    b->rules[r].alts = *l;
    b->rules[r].defined = true;
    memset(l, 0, sizeof(*l));
    return r;
}

static int64_t set_add(struct gb *b, const uint64_t bits[4])
{
    if (b->n_sets == b->cap_sets) {
        size_t c = b->cap_sets ? b->cap_sets * 2 : 64;
        uint64_t(*s)[4] = realloc(b->sets, c * sizeof(*s));
        if (!s) {
            gfail(b, GRAM_ENOMEM, "out of memory");
            return -1;
        }
        b->sets = s;
        b->cap_sets = c;
    }
    memcpy(b->sets[b->n_sets], bits, sizeof(b->sets[0]));
    return (int64_t)b->n_sets++;
}

static int push_range(struct gb *b, struct evec *v, unsigned lo, unsigned hi)
{
    int64_t id;
    if (lo == hi && b->byte_set[lo] >= 0) {
        id = b->byte_set[lo];
    } else {
        uint64_t bits[4] = {0};
        for (unsigned c = lo; c <= hi; c++)
            bits[c >> 6] |= 1ull << (c & 63);
        if ((id = set_add(b, bits)) < 0)
            return b->rc;
        if (lo == hi)
            b->byte_set[lo] = (int32_t)id;
    }
    return evec_push(b, v, GE_SET, (uint32_t)id);
}

/* ---- lexing ---- */

static void skip_space(struct gb *b)
{
    while (b->pos < b->len) {
        char c = b->s[b->pos];
        if (c == '#') {
            while (b->pos < b->len && b->s[b->pos] != '\n')
                b->pos++;
        } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            if (c == '\n')
                b->line++;
            b->pos++;
        } else {
            break;
        }
    }
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

static size_t name_len_at(const struct gb *b, size_t pos)
{
    size_t n = 0;
    while (pos + n < b->len && is_name_char(b->s[pos + n]))
        n++;
    return n;
}

/* Whether a rule definition (name ::=) starts at pos. */
static bool definition_at(const struct gb *b, size_t pos)
{
    size_t n = name_len_at(b, pos);
    if (n == 0)
        return false;
    pos += n;
    while (pos < b->len && (b->s[pos] == ' ' || b->s[pos] == '\t' || b->s[pos] == '\r' ||
                            b->s[pos] == '\n'))
        pos++;
    return b->len - pos >= 3 && memcmp(b->s + pos, "::=", 3) == 0;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                        : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Decodes one UTF-8 character at b->pos (invalid bytes stand for themselves). */
static uint32_t next_utf8(struct gb *b)
{
    const unsigned char *s = (const unsigned char *)b->s + b->pos;
    size_t left = b->len - b->pos;
    unsigned c = s[0];
    size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (n > left)
        n = 1;
    uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            b->pos++;
            return c;
        }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    b->pos += n;
    return cp;
}

/* One character of a literal or class: an escape or a UTF-8 character. *is_byte is set
 * for \xHH, which names a byte rather than a code point. */
static int read_char(struct gb *b, uint32_t *out, bool *is_byte)
{
    *is_byte = false;
    if (b->pos >= b->len)
        return gfail(b, GRAM_ESYNTAX, "unexpected end of grammar");
    if (b->s[b->pos] == '\n')
        b->line++;
    if (b->s[b->pos] != '\\') {
        *out = next_utf8(b);
        return 0;
    }
    if (++b->pos >= b->len)
        return gfail(b, GRAM_ESYNTAX, "unexpected end after '\\'");
    char c = b->s[b->pos++];
    const char *from = "nrt\\\"'[]-/^.", *to = "\n\r\t\\\"'[]-/^.";
    const char *k = strchr(from, c);
    if (k && c) {
        *out = (unsigned char)to[k - from];
        return 0;
    }
    int digits = c == 'x' ? 2 : c == 'u' ? 4 : c == 'U' ? 8 : 0;
    if (!digits)
        return gfail(b, GRAM_ESYNTAX, "unknown escape '\\%c'", c);
    uint32_t v = 0;
    for (int i = 0; i < digits; i++) {
        int h = b->pos < b->len ? hexval(b->s[b->pos]) : -1;
        if (h < 0)
            return gfail(b, GRAM_ESYNTAX, "bad hex digit in '\\%c' escape", c);
        v = v * 16 + (uint32_t)h;
        b->pos++;
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return gfail(b, GRAM_ESYNTAX, "escape names no character (0x%X)", v);
    *out = v;
    *is_byte = c == 'x';
    return 0;
}

static int push_utf8(struct gb *b, struct evec *v, uint32_t cp)
{
    unsigned char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (unsigned char)(0xC0 | (cp >> 6));
        u[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (unsigned char)(0xE0 | (cp >> 12));
        u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (unsigned char)(0xF0 | (cp >> 18));
        u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    for (size_t i = 0; i < n; i++)
        if (push_range(b, v, u[i], u[i]) != 0)
            return b->rc;
    return 0;
}

static int parse_literal(struct gb *b, struct evec *v)
{
    b->pos++; /* the opening quote */
    while (b->pos < b->len && b->s[b->pos] != '"') {
        uint32_t c;
        bool is_byte;
        if (read_char(b, &c, &is_byte) != 0)
            return b->rc;
        int rc = is_byte ? push_range(b, v, c, c) : push_utf8(b, v, c);
        if (rc != 0)
            return rc;
    }
    if (b->pos >= b->len)
        return gfail(b, GRAM_ESYNTAX, "unterminated literal");
    b->pos++;
    return 0;
}

/* ---- character classes ---- */

struct cp_range {
    uint32_t lo, hi;
};

struct cp_set {
    struct cp_range *r;
    size_t n, cap;
};

static int cps_add(struct gb *b, struct cp_set *s, uint32_t lo, uint32_t hi)
{
    if (s->n == s->cap) {
        size_t c = s->cap ? s->cap * 2 : 8;
        struct cp_range *r = realloc(s->r, c * sizeof(*r));
        if (!r)
            return gfail(b, GRAM_ENOMEM, "out of memory");
        s->r = r;
        s->cap = c;
    }
    s->r[s->n++] = (struct cp_range){lo, hi};
    return 0;
}

static int cmp_range(const void *a, const void *b)
{
    const struct cp_range *x = a, *y = b;
    return (x->lo > y->lo) - (x->lo < y->lo);
}

/* Sorts and merges the ranges; with negate, replaces them by their complement over
 * the code points (surrogates excluded). */
static int cps_normalise(struct gb *b, struct cp_set *s, bool negate)
{
    if (s->n)
        qsort(s->r, s->n, sizeof(*s->r), cmp_range);
    size_t m = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (m && s->r[i].lo <= s->r[m - 1].hi + 1) {
            if (s->r[i].hi > s->r[m - 1].hi)
                s->r[m - 1].hi = s->r[i].hi;
        } else {
            s->r[m++] = s->r[i];
        }
    }
    s->n = m;
    if (!negate)
        return 0;
    struct cp_set c = {0};
    uint32_t next = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (s->r[i].lo > next && cps_add(b, &c, next, s->r[i].lo - 1) != 0)
            break;
        next = s->r[i].hi + 1;
    }
    if (!b->rc && next <= 0x10FFFF)
        cps_add(b, &c, next, 0x10FFFF);
    free(s->r);
    *s = c;
    return b->rc;
}

/* The alternatives for code points [lo, hi] of one UTF-8 length, split until each byte
 * position is a contiguous range. */
static int utf8_split(struct gb *b, struct alist *out, uint32_t lo, uint32_t hi, int depth)
{
    static const uint32_t bounds[] = {0x7F, 0x7FF, 0xFFFF};
    if (depth > 16)
        return gfail(b, GRAM_ESYNTAX, "character class too complex");
    for (int i = 0; i < 3; i++)
        if (lo <= bounds[i] && hi > bounds[i]) {
            int rc = utf8_split(b, out, lo, bounds[i], depth + 1);
            return rc ? rc : utf8_split(b, out, bounds[i] + 1, hi, depth + 1);
        }
    int n = hi < 0x80 ? 1 : hi < 0x800 ? 2 : hi < 0x10000 ? 3 : 4;
    for (int i = 1; i < n; i++) {
        uint32_t m = (1u << (6 * i)) - 1;
        if ((lo & ~m) == (hi & ~m))
            continue;
        if ((lo & m) != 0) {
            int rc = utf8_split(b, out, lo, lo | m, depth + 1);
            return rc ? rc : utf8_split(b, out, (lo | m) + 1, hi, depth + 1);
        }
        if ((hi & m) != m) {
            int rc = utf8_split(b, out, lo, (hi & ~m) - 1, depth + 1);
            return rc ? rc : utf8_split(b, out, hi & ~m, hi, depth + 1);
        }
    }
    struct evec v = {0};
    for (int k = 0; k < n; k++) {
        int shift = 6 * (n - 1 - k);
        unsigned lb, hb;
        if (k == 0) {
            unsigned lead = n == 1 ? 0 : n == 2 ? 0xC0 : n == 3 ? 0xE0 : 0xF0;
            lb = lead | (lo >> shift);
            hb = lead | (hi >> shift);
        } else {
            lb = 0x80 | ((lo >> shift) & 0x3F);
            hb = 0x80 | ((hi >> shift) & 0x3F);
        }
        if (push_range(b, &v, lb, hb) != 0) {
            free(v.e);
            return b->rc;
        }
    }
    return alist_take(b, out, &v);
}

/* Pushes the element(s) matching one character of the set: one byte set when it is
 * all ASCII, else a helper rule of UTF-8 sequences. */
static int push_cp_set(struct gb *b, struct evec *v, struct cp_set *s)
{
    struct alist alts = {0};
    uint64_t ascii[4] = {0};
    bool any_ascii = false;
    for (size_t i = 0; i < s->n && !b->rc; i++) {
        uint32_t lo = s->r[i].lo, hi = s->r[i].hi;
        if (lo < 0x80) {
            any_ascii = true;
            for (uint32_t c = lo; c <= hi && c < 0x80; c++)
                ascii[c >> 6] |= 1ull << (c & 63);
            if (hi < 0x80)
                continue;
            lo = 0x80;
        }
        /* surrogates are not characters */
        if (lo <= 0xDFFF && hi >= 0xD800) {
            if (lo < 0xD800)
                utf8_split(b, &alts, lo, 0xD7FF, 0);
            if (hi > 0xDFFF)
                utf8_split(b, &alts, 0xE000, hi, 0);
        } else {
            utf8_split(b, &alts, lo, hi, 0);
        }
    }
    if (b->rc) {
        alist_free(&alts);
        return b->rc;
    }
    if (!any_ascii && alts.n == 0)
        return gfail(b, GRAM_ESYNTAX, "character class matches nothing");
    int64_t id = -1;
    if (any_ascii && (id = set_add(b, ascii)) < 0) {
        alist_free(&alts);
        return b->rc;
    }
    if (alts.n == 0)
        return evec_push(b, v, GE_SET, (uint32_t)id);
    if (any_ascii) {
        struct evec a = {0};
        if (evec_push(b, &a, GE_SET, (uint32_t)id) != 0 || alist_take(b, &alts, &a) != 0) {
            free(a.e);
            alist_free(&alts);
            return b->rc;
        }
    }
    int64_t r = rule_helper(b, &alts);
    return r < 0 ? b->rc : evec_push(b, v, GE_RULE, (uint32_t)r);
}

static int parse_class(struct gb *b, struct evec *v)
{
    struct cp_set s = {0};
    b->pos++; /* [ */
    bool negate = b->pos < b->len && b->s[b->pos] == '^';
    if (negate)
        b->pos++;
    while (!b->rc && b->pos < b->len && b->s[b->pos] != ']') {
        uint32_t lo, hi;
        bool is_byte;
        if (read_char(b, &lo, &is_byte) != 0)
            break;
        hi = lo;
        if (b->pos + 1 < b->len && b->s[b->pos] == '-' && b->s[b->pos + 1] != ']') {
            b->pos++;
            if (read_char(b, &hi, &is_byte) != 0)
                break;
            if (hi < lo) {
                gfail(b, GRAM_ESYNTAX, "range end before its start in a class");
                break;
            }
        }
        cps_add(b, &s, lo, hi);
    }
    if (!b->rc && b->pos >= b->len)
        gfail(b, GRAM_ESYNTAX, "unterminated character class");
    if (!b->rc) {
        b->pos++;
        if (cps_normalise(b, &s, negate) == 0)
            push_cp_set(b, v, &s);
    }
    free(s.r);
    return b->rc;
}

/* ---- sequences, repetition ---- */

static int parse_alternatives(struct gb *b, struct alist *out);

/* The unit x of a postfix operator as one element (a helper rule when it spans
 * several), moved out of v[from..]. */
static int unit_of(struct gb *b, struct evec *v, size_t from, struct gram_elem *x)
{
    if (v->n - from == 1) {
        *x = v->e[from];
        v->n = from;
        return 0;
    }
    struct evec w = {0};
    for (size_t i = from; i < v->n; i++)
        evec_push(b, &w, v->e[i].type, v->e[i].arg);
    v->n = from;
    struct alist l = {0};
    if (b->rc || alist_take(b, &l, &w) != 0) {
        free(w.e);
        return b->rc;
    }
    int64_t r = rule_helper(b, &l);
    if (r < 0)
        return b->rc;
    *x = (struct gram_elem){GE_RULE, (uint32_t)r};
    return 0;
}

/* `r ::= x r | ""` (many) or `r ::= x | ""` (one), returned as a rule index; for
 * `chain`, `r ::= x chain | ""`. */
static int64_t rule_opt(struct gb *b, struct gram_elem x, bool many, int64_t chain)
{
    int64_t r = rule_new(b, NULL, 0);
    if (r < 0)
        return -1;
    struct evec a = {0}, e = {0};
    struct alist l = {0};
    evec_push(b, &a, x.type, x.arg);
    if (many)
        evec_push(b, &a, GE_RULE, (uint32_t)r);
    else if (chain >= 0)
        evec_push(b, &a, GE_RULE, (uint32_t)chain);
    if (b->rc || alist_take(b, &l, &a) != 0 || alist_take(b, &l, &e) != 0) {
        free(a.e);
        alist_free(&l);
        return -1;
    }
    b->rules[r].alts = l;
    b->rules[r].defined = true;
    return r;
}

static int read_count(struct gb *b, unsigned *out)
{
    unsigned v = 0;
    size_t start = b->pos;
    while (b->pos < b->len && b->s[b->pos] >= '0' && b->s[b->pos] <= '9') {
        v = v * 10 + (unsigned)(b->s[b->pos++] - '0');
        if (v > GB_MAX_REPEAT)
            return gfail(b, GRAM_ELIMIT, "repetition count over %d", GB_MAX_REPEAT);
    }
    if (b->pos == start)
        return gfail(b, GRAM_ESYNTAX, "expected a number in {m,n}");
    *out = v;
    return 0;
}

/* {m}, {m,}, {m,n} after a unit (b->pos at '{'). */
static int parse_braces(struct gb *b, unsigned *lo, unsigned *hi, bool *open)
{
    b->pos++;
    *open = false;
    if (read_count(b, lo) != 0)
        return b->rc;
    *hi = *lo;
    if (b->pos < b->len && b->s[b->pos] == ',') {
        b->pos++;
        if (b->pos < b->len && b->s[b->pos] == '}')
            *open = true;
        else if (read_count(b, hi) != 0)
            return b->rc;
    }
    if (b->pos >= b->len || b->s[b->pos] != '}')
        return gfail(b, GRAM_ESYNTAX, "expected '}'");
    b->pos++;
    if (*hi < *lo)
        return gfail(b, GRAM_ESYNTAX, "{%u,%u}: the maximum is below the minimum", *lo, *hi);
    return 0;
}

static int apply_postfix(struct gb *b, struct evec *v, size_t from)
{
    char c = b->pos < b->len ? b->s[b->pos] : 0;
    if (c != '*' && c != '+' && c != '?' && c != '{')
        return 0;
    struct gram_elem x;
    unsigned lo = 0, hi = 0;
    bool open = false;
    if (c == '{') {
        if (parse_braces(b, &lo, &hi, &open) != 0)
            return b->rc;
    } else {
        b->pos++;
        lo = c == '+' ? 1 : 0;
        hi = c == '?' ? 1 : 0;
        open = c != '?';
    }
    if (unit_of(b, v, from, &x) != 0)
        return b->rc;
    for (unsigned i = 0; i < lo; i++)
        if (evec_push(b, v, x.type, x.arg) != 0)
            return b->rc;
    int64_t tail = -1;
    if (open) {
        tail = rule_opt(b, x, true, -1);
    } else {
        for (unsigned i = lo; i < hi && !b->rc; i++)
            tail = rule_opt(b, x, false, tail);
    }
    if (b->rc)
        return b->rc;
    return tail >= 0 ? evec_push(b, v, GE_RULE, (uint32_t)tail) : 0;
}

static int parse_item(struct gb *b, struct evec *v)
{
    size_t from = v->n;
    char c = b->s[b->pos];
    if (c == '"') {
        if (parse_literal(b, v) != 0)
            return b->rc;
    } else if (c == '[') {
        if (parse_class(b, v) != 0)
            return b->rc;
    } else if (c == '.') {
        b->pos++;
        struct cp_set s = {0};
        if (cps_add(b, &s, 0, 0x10FFFF) == 0)
            push_cp_set(b, v, &s);
        free(s.r);
        if (b->rc)
            return b->rc;
    } else if (c == '(') {
        b->pos++;
        if (++b->depth > GB_MAX_DEPTH)
            return gfail(b, GRAM_ELIMIT, "groups nested more than %d deep", GB_MAX_DEPTH);
        struct alist l = {0};
        if (parse_alternatives(b, &l) != 0) {
            alist_free(&l);
            return b->rc;
        }
        b->depth--;
        skip_space(b);
        if (b->pos >= b->len || b->s[b->pos] != ')') {
            alist_free(&l);
            return gfail(b, GRAM_ESYNTAX, "expected ')'");
        }
        b->pos++;
        int64_t r = rule_helper(b, &l);
        if (r < 0 || evec_push(b, v, GE_RULE, (uint32_t)r) != 0)
            return b->rc;
    } else if (is_name_char(c)) {
        size_t n = name_len_at(b, b->pos);
        int64_t r = rule_find(b, b->s + b->pos, n);
        b->pos += n;
        if (r < 0 || evec_push(b, v, GE_RULE, (uint32_t)r) != 0)
            return b->rc;
    } else {
        return gfail(b, GRAM_ESYNTAX, "unexpected character '%c'", c);
    }
    return apply_postfix(b, v, from);
}

static int parse_sequence(struct gb *b, struct evec *v)
{
    for (;;) {
        skip_space(b);
        if (b->pos >= b->len)
            return 0;
        char c = b->s[b->pos];
        if (c == '|' || c == ')' || definition_at(b, b->pos))
            return 0;
        if (parse_item(b, v) != 0)
            return b->rc;
    }
}

static int parse_alternatives(struct gb *b, struct alist *out)
{
    for (;;) {
        struct evec v = {0};
        if (parse_sequence(b, &v) != 0 || alist_take(b, out, &v) != 0) {
            free(v.e);
            return b->rc;
        }
        skip_space(b);
        if (b->pos < b->len && b->s[b->pos] == '|') {
            b->pos++;
            continue;
        }
        return 0;
    }
}

static int parse_grammar(struct gb *b)
{
    for (;;) {
        skip_space(b);
        if (b->pos >= b->len)
            return 0;
        size_t n = name_len_at(b, b->pos);
        if (n == 0 || !definition_at(b, b->pos))
            return gfail(b, GRAM_ESYNTAX, "expected a rule definition (name ::= ...)");
        int64_t r = rule_find(b, b->s + b->pos, n);
        if (r < 0)
            return b->rc;
        if (b->rules[r].defined)
            return gfail(b, GRAM_ESYNTAX, "rule '%.*s' is defined twice", (int)n, b->s + b->pos);
        b->pos += n;
        skip_space(b);
        b->pos += 3; /* ::= */
        struct alist l = {0};
        if (parse_alternatives(b, &l) != 0) {
            alist_free(&l);
            return b->rc;
        }
        b->rules[r].alts = l;
        b->rules[r].defined = true;
    }
}

/* ---- checks and the flat form ---- */

/* Fails when some rule can reach itself without consuming a byte. */
static int check_left_recursion(struct gb *b)
{
    size_t n = b->n_rules;
    bool *nullable = calloc(n ? n : 1, sizeof(bool));
    uint8_t *mark = calloc(n ? n : 1, 1);
    size_t *stack = malloc((n ? n : 1) * sizeof(size_t));
    size_t *edge = calloc(n ? n : 1, sizeof(size_t)); /* DFS cursor: alt * 2^32 + elem */
    if (!nullable || !mark || !stack || !edge) {
        gfail(b, GRAM_ENOMEM, "out of memory");
        goto out;
    }
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t r = 0; r < n; r++) {
            if (nullable[r])
                continue;
            for (size_t a = 0; a < b->rules[r].alts.n && !nullable[r]; a++) {
                const struct evec *v = &b->rules[r].alts.a[a];
                size_t i = 0;
                while (i < v->n && v->e[i].type == GE_RULE && nullable[v->e[i].arg])
                    i++;
                if (i == v->n)
                    nullable[r] = changed = true;
            }
        }
    }
    /* iterative DFS over "r can start with s" edges; mark 1 = on the stack, 2 = done */
    for (size_t root = 0; root < n && !b->rc; root++) {
        if (mark[root])
            continue;
        size_t sp = 0;
        stack[sp++] = root;
        mark[root] = 1;
        edge[root] = 0;
        while (sp && !b->rc) {
            size_t r = stack[sp - 1];
            size_t a = edge[r] >> 32, i = edge[r] & 0xFFFFFFFFu;
            const struct alist *l = &b->rules[r].alts;
            int64_t next = -1;
            while (a < l->n && next < 0) {
                const struct evec *v = &l->a[a];
                /* elements 0..i-1 of this alternative were nullable rules already taken */
                if (i < v->n && v->e[i].type == GE_RULE) {
                    next = v->e[i].arg;
                    if (nullable[next])
                        i++;
                    else
                        i = v->n; /* a non-nullable rule ends the alternative's prefix */
                } else {
                    a++;
                    i = 0;
                }
            }
            edge[r] = ((size_t)a << 32) | i;
            if (next < 0) {
                mark[r] = 2;
                sp--;
                continue;
            }
            if (mark[next] == 1) {
                const char *name = b->rules[next].name;
                b->line = b->rules[next].line;
                gfail(b, GRAM_ESYNTAX,
                      "rule '%s' can repeat without consuming input (left recursion or a repeated empty match)",
                      name ? name : "(group)");
            } else if (mark[next] == 0) {
                mark[next] = 1;
                edge[next] = 0;
                stack[sp++] = (size_t)next;
            }
        }
    }
out:
    free(nullable);
    free(mark);
    free(stack);
    free(edge);
    return b->rc;
}

static int flatten(struct gb *b, struct gram *g)
{
    size_t n_alts = 0, n_elems = 0;
    for (size_t r = 0; r < b->n_rules; r++) {
        n_alts += b->rules[r].alts.n;
        for (size_t a = 0; a < b->rules[r].alts.n; a++)
            n_elems += b->rules[r].alts.a[a].n + 1;
    }
    g->elems = malloc((n_elems ? n_elems : 1) * sizeof(*g->elems));
    g->alt_start = malloc((n_alts ? n_alts : 1) * sizeof(*g->alt_start));
    g->rule_alt = malloc((b->n_rules + 1) * sizeof(*g->rule_alt));
    g->sets = malloc((b->n_sets ? b->n_sets : 1) * sizeof(*g->sets));
    if (!g->elems || !g->alt_start || !g->rule_alt || !g->sets)
        return gfail(b, GRAM_ENOMEM, "out of memory");
    uint32_t ne = 0, na = 0;
    for (size_t r = 0; r < b->n_rules; r++) {
        g->rule_alt[r] = na;
        for (size_t a = 0; a < b->rules[r].alts.n; a++) {
            const struct evec *v = &b->rules[r].alts.a[a];
            g->alt_start[na++] = ne;
            if (v->n)
                memcpy(g->elems + ne, v->e, v->n * sizeof(*v->e));
            ne += (uint32_t)v->n;
            g->elems[ne++] = (struct gram_elem){GE_END, 0};
        }
    }
    g->rule_alt[b->n_rules] = na;
    g->n_elems = ne;
    g->n_rules = (uint32_t)b->n_rules;
    if (b->n_sets)
        memcpy(g->sets, b->sets, b->n_sets * sizeof(*g->sets));
    g->n_sets = (uint32_t)b->n_sets;
    return 0;
}

static void gb_fini(struct gb *b)
{
    for (size_t r = 0; r < b->n_rules; r++) {
        free(b->rules[r].name);
        alist_free(&b->rules[r].alts);
    }
    free(b->rules);
    free(b->sets);
}

static void gram_free(struct gram *g)
{
    if (!g)
        return;
    free(g->elems);
    free(g->alt_start);
    free(g->rule_alt);
    free(g->sets);
    free(g);
}

int gram_compile(struct gram **out, const char *text, size_t len, const char *root, char *err,
                 size_t err_len)
{
    *out = NULL;
    if (err_len)
        err[0] = 0;
    if (!text)
        return GRAM_EINVAL;
    struct gb b = {.s = text, .len = len, .line = 1, .err = err, .err_len = err_len};
    memset(b.byte_set, -1, sizeof(b.byte_set));
    struct gram *g = NULL;
    parse_grammar(&b);
    const char *rn = root ? root : "root";
    int64_t ri = -1;
    for (size_t r = 0; r < b.n_rules && !b.rc; r++) {
        if (!b.rules[r].defined) {
            b.line = b.rules[r].line;
            gfail(&b, GRAM_ESYNTAX, "rule '%s' is used but not defined", b.rules[r].name);
        } else if (b.rules[r].name && strcmp(b.rules[r].name, rn) == 0) {
            ri = (int64_t)r;
        }
    }
    if (!b.rc && ri < 0) {
        b.line = 1;
        gfail(&b, GRAM_ESYNTAX, "the grammar has no '%s' rule", rn);
    }
    if (!b.rc)
        check_left_recursion(&b);
    if (!b.rc && !(g = calloc(1, sizeof(*g))))
        gfail(&b, GRAM_ENOMEM, "out of memory");
    if (!b.rc && flatten(&b, g) == 0) {
        g->root = (uint32_t)ri;
        atomic_init(&g->refs, 1);
        *out = g;
    }
    gb_fini(&b);
    if (b.rc)
        gram_free(g);
    return b.rc;
}

struct gram *gram_ref(struct gram *g)
{
    if (g)
        atomic_fetch_add(&g->refs, 1);
    return g;
}

void gram_unref(struct gram *g)
{
    if (g && atomic_fetch_sub(&g->refs, 1) == 1)
        gram_free(g);
}

int gram_ebnf_literal(struct strbuf *out, const char *s, size_t len)
{
    int rc = strbuf_append(out, "\"", 1);
    for (size_t i = 0; i < len && rc == 0; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            rc = strbuf_append(out, esc, 2);
        } else if (c < 0x20 || c >= 0x7F) {
            /* \xHH names a byte, so bytes of any UTF-8 (valid or not) pass unchanged */
            snprintf(esc, sizeof(esc), "\\x%02X", c);
            rc = strbuf_append(out, esc, 4);
        } else {
            rc = strbuf_append(out, (const char *)&s[i], 1);
        }
    }
    return rc ? rc : strbuf_append(out, "\"", 1);
}
