/* template.c - chat templates: lexer and parser for the Jinja2 subset, the public
 * tmpl_* entry points (the built-in templates are in template_builtin.c).
 *
 * The source is normalised first (\r\n and \r become \n, one trailing newline is
 * dropped), then lexed into one token array: data runs, tag delimiters and the tokens
 * inside tags. Whitespace control happens in the lexer exactly as jinja2 does it with
 * trim_blocks and lstrip_blocks: a '-' marker strips all whitespace on that side, a
 * block or comment tag alone on its line loses its indentation, and the newline right
 * after a block or comment tag goes. The recursive-descent parser turns the tokens
 * into a tree of struct tn (template_int.h) allocated from the template's arena; its
 * depth is capped so hostile templates cannot exhaust the stack. Filter and test
 * names are resolved while parsing, so an unknown one fails at load, with its line.
 * Evaluation lives in template_eval.c.
 */
#include "template.h"
#include "template_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TMPL_MAX_DEPTH 64        /* nesting of statements and expressions */
#define TMPL_MAX_SOURCE (16u << 20)
#define TMPL_MAX_ARGS 32

/* ------------------------------------------------------------------ arena */

struct tmpl_chunk {
    struct tmpl_chunk *next;
    size_t size;
    size_t used;
    _Alignas(16) unsigned char data[];
};

void *tmpl_arena_alloc(struct tmpl_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    struct tmpl_chunk *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t size = 64 * 1024;
        if (n > size / 4)
            size = n;
        if (a->cap_bytes && (size > a->cap_bytes || a->used_bytes > a->cap_bytes - size)) {
            a->hit_cap = true;
            return NULL;
        }
        if (size > SIZE_MAX - sizeof(*c))
            return NULL;
        struct tmpl_chunk *nc = malloc(sizeof(*nc) + size);
        if (!nc)
            return NULL;
        nc->size = size;
        nc->used = 0;
        a->used_bytes += size;
        if (c && n == size && c->size - c->used >= 1024) {
            /* a big one-off block: keep filling the current chunk afterwards */
            nc->next = c->next;
            c->next = nc;
        } else {
            nc->next = c;
            a->head = nc;
        }
        c = nc;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

void tmpl_arena_fini(struct tmpl_arena *a)
{
    struct tmpl_chunk *c = a->head;
    while (c) {
        struct tmpl_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->used_bytes = 0;
}

/* ------------------------------------------------------------------ errors */

const char *tmpl_strerror(int code)
{
    switch (code) {
#define X(name, c, msg) case c: return msg;
        TMPL_ERRORS(X)
#undef X
    }
    return "unknown template error";
}

struct tmpl {
    struct tmpl_arena arena;
    char *src;          /* normalised source; data and names point into it */
    struct tn *body;
};

/* ------------------------------------------------------------------ lexer */

enum tk_kind {
    TK_DATA,
    TK_VAR_BEGIN,
    TK_VAR_END,
    TK_BLOCK_BEGIN,
    TK_BLOCK_END,
    TK_NAME,
    TK_STRING,
    TK_INT,
    TK_FLOAT,
    TK_OP,
    TK_EOF,
};

struct tk {
    enum tk_kind kind;
    int line;
    const char *s;      /* source text of the token (data, name, operator) */
    size_t len;
    struct tv val;      /* TK_STRING (decoded), TK_INT, TK_FLOAT */
};

struct parser {
    struct tmpl_arena *arena;
    const char *src;
    size_t len;
    struct tk *toks;
    size_t n_toks;
    size_t cap_toks;
    size_t pos;
    int depth;
    int loop_depth;
    int macro_depth;
    char *err;
    size_t err_len;
    bool failed;
};

static void perr(struct parser *P, int line, const char *fmt, ...)
{
    if (P->failed)
        return;
    P->failed = true;
    if (!P->err || P->err_len == 0)
        return;
    int n = snprintf(P->err, P->err_len, "line %d: ", line);
    if (n < 0 || (size_t)n >= P->err_len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(P->err + n, P->err_len - (size_t)n, fmt, ap);
    va_end(ap);
}

static struct tk *push_tok(struct parser *P, enum tk_kind kind, int line, const char *s, size_t len)
{
    if (P->n_toks == P->cap_toks) {
        size_t cap = P->cap_toks ? P->cap_toks * 2 : 256;
        if (cap > SIZE_MAX / sizeof(*P->toks)) {
            perr(P, line, "template too large");
            return NULL;
        }
        struct tk *t = realloc(P->toks, cap * sizeof(*t));
        if (!t) {
            perr(P, line, "out of memory");
            return NULL;
        }
        P->toks = t;
        P->cap_toks = cap;
    }
    struct tk *t = &P->toks[P->n_toks++];
    memset(t, 0, sizeof(*t));
    t->kind = kind;
    t->line = line;
    t->s = s;
    t->len = len;
    return t;
}

/* Length of the UTF-8 whitespace character at s (Python's str.isspace), or 0. */
static size_t py_space_len(const unsigned char *s, size_t n)
{
    if (n == 0)
        return 0;
    unsigned c = s[0];
    if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f))
        return 1;
    if (c == 0xc2 && n >= 2 && (s[1] == 0x85 || s[1] == 0xa0))
        return 2;
    if (c == 0xe1 && n >= 3 && s[1] == 0x9a && s[2] == 0x80)
        return 3; /* U+1680 */
    if (c == 0xe2 && n >= 3) {
        unsigned cp = ((c & 0x0fu) << 12) | ((s[1] & 0x3fu) << 6) | (s[2] & 0x3fu);
        if ((cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
            cp == 0x205f)
            return 3;
    }
    if (c == 0xe3 && n >= 3 && s[1] == 0x80 && s[2] == 0x80)
        return 3; /* U+3000 */
    return 0;
}

/* End of the whitespace run starting at i. */
static size_t skip_py_space(const char *s, size_t i, size_t n)
{
    size_t k;
    while (i < n && (k = py_space_len((const unsigned char *)s + i, n - i)) > 0)
        i += k;
    return i;
}

/* Start of the whitespace run ending at `end` (not before `start`). */
static size_t rstrip_py_space(const char *s, size_t start, size_t end)
{
    while (end > start) {
        size_t k = 0;
        for (size_t w = 1; w <= 3 && w <= end - start; w++) {
            size_t l = py_space_len((const unsigned char *)s + end - w, w);
            if (l == w) {
                k = w;
                break;
            }
        }
        if (!k)
            break;
        end -= k;
    }
    return end;
}

static int count_lines(const char *s, size_t a, size_t b)
{
    int n = 0;
    for (size_t i = a; i < b; i++)
        n += s[i] == '\n';
    return n;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decodes a Python string literal body (between the quotes) into the arena, with
 * Python's escapes; an unknown escape keeps its backslash. */
static int decode_string(struct parser *P, int line, const char *s, size_t n, struct tv *out)
{
    char *o = tmpl_arena_alloc(P->arena, n + 1);
    if (!o) {
        perr(P, line, "out of memory");
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 >= n) {
            o[k++] = s[i];
            continue;
        }
        char c = s[++i];
        int digits = 0;
        switch (c) {
        case 'n': o[k++] = '\n'; break;
        case 't': o[k++] = '\t'; break;
        case 'r': o[k++] = '\r'; break;
        case '\\': o[k++] = '\\'; break;
        case '\'': o[k++] = '\''; break;
        case '"': o[k++] = '"'; break;
        case 'a': o[k++] = '\a'; break;
        case 'b': o[k++] = '\b'; break;
        case 'f': o[k++] = '\f'; break;
        case 'v': o[k++] = '\v'; break;
        case '\n': break; /* line continuation */
        case 'x': digits = 2; break;
        case 'u': digits = 4; break;
        case 'U': digits = 8; break;
        default:
            if (c >= '0' && c <= '7') {
                uint32_t v = 0;
                int m = 0;
                while (m < 3 && i < n && s[i] >= '0' && s[i] <= '7') {
                    v = v * 8 + (uint32_t)(s[i] - '0');
                    i++;
                    m++;
                }
                i--;
                k += put_utf8(o + k, v);
            } else {
                o[k++] = '\\';
                o[k++] = c;
            }
        }
        if (digits) {
            uint32_t v = 0;
            for (int d = 0; d < digits; d++) {
                int h = i + 1 + (size_t)d < n ? hexval((unsigned char)s[i + 1 + d]) : -1;
                if (h < 0) {
                    perr(P, line, "truncated \\%c escape in string literal", c);
                    return -1;
                }
                v = v * 16 + (uint32_t)h;
            }
            i += (size_t)digits;
            if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
                perr(P, line, "invalid code point in string literal");
                return -1;
            }
            /* a \u escape may expand 6 source bytes to at most 3, \U 10 to 4: fits */
            k += put_utf8(o + k, v);
        }
    }
    o[k] = 0;
    *out = tv_str(o, k);
    return 0;
}

static bool is_name_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* Lexes the tokens inside one {{ }} or {% %} tag starting at *pos (just after the
 * opener and its marker). Stops after the closer; *pos is then just past it and any
 * whitespace the closer removes. */
static int lex_tag(struct parser *P, size_t *pos, int *line, bool block)
{
    const char *s = P->src;
    size_t n = P->len;
    size_t i = *pos;
    int open_line = *line;
    int balance = 0;
    for (;;) {
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' ||
                         s[i] == '\f' || s[i] == '\v')) {
            *line += s[i] == '\n';
            i++;
        }
        if (i >= n) {
            perr(P, open_line, "unexpected end of template, expected '%s'", block ? "%}" : "}}");
            return -1;
        }
        char c2 = block ? '%' : '}';
        if (balance == 0) {
            bool minus = s[i] == '-' && i + 2 < n && s[i + 1] == c2 && s[i + 2] == '}';
            bool plus = block && s[i] == '+' && i + 2 < n && s[i + 1] == c2 && s[i + 2] == '}';
            bool plain = s[i] == c2 && i + 1 < n && s[i + 1] == '}';
            if (minus || plus || plain) {
                i += plain ? 2 : 3;
                if (!push_tok(P, block ? TK_BLOCK_END : TK_VAR_END, *line, NULL, 0))
                    return -1;
                if (minus) {
                    size_t j = skip_py_space(s, i, n);
                    *line += count_lines(s, i, j);
                    i = j;
                } else if (block && plain && i < n && s[i] == '\n') {
                    i++; /* trim_blocks */
                    (*line)++;
                }
                *pos = i;
                return 0;
            }
        }
        size_t st = i;
        unsigned char c = (unsigned char)s[i];
        struct tk *t;
        if (is_name_start(c)) {
            while (i < n && (is_name_start((unsigned char)s[i]) || is_digit((unsigned char)s[i])))
                i++;
            if (!push_tok(P, TK_NAME, *line, s + st, i - st))
                return -1;
        } else if (is_digit(c)) {
            while (i < n && (is_digit((unsigned char)s[i]) || s[i] == '_'))
                i++;
            bool is_float = false;
            if (i + 1 < n && s[i] == '.' && is_digit((unsigned char)s[i + 1])) {
                is_float = true;
                i++;
                while (i < n && (is_digit((unsigned char)s[i]) || s[i] == '_'))
                    i++;
            }
            if (i < n && (s[i] == 'e' || s[i] == 'E')) {
                size_t j = i + 1;
                if (j < n && (s[j] == '+' || s[j] == '-'))
                    j++;
                if (j < n && is_digit((unsigned char)s[j])) {
                    is_float = true;
                    i = j;
                    while (i < n && is_digit((unsigned char)s[i]))
                        i++;
                }
            }
            char buf[64];
            size_t k = 0;
            for (size_t j = st; j < i && k + 1 < sizeof(buf); j++)
                if (s[j] != '_')
                    buf[k++] = s[j];
            buf[k] = 0;
            t = push_tok(P, is_float ? TK_FLOAT : TK_INT, *line, s + st, i - st);
            if (!t)
                return -1;
            if (is_float) {
                t->val.kind = TV_FLOAT;
                t->val.u.f = strtod(buf, NULL);
            } else {
                char *end;
                unsigned long long v = strtoull(buf, &end, 10);
                if (k >= 20 || v > (unsigned long long)INT64_MAX) {
                    perr(P, *line, "integer literal too large");
                    return -1;
                }
                t->val.kind = TV_INT;
                t->val.u.i = (int64_t)v;
            }
        } else if (c == '\'' || c == '"') {
            i++;
            int sline = *line;
            while (i < n && (unsigned char)s[i] != c) {
                if (s[i] == '\\' && i + 1 < n) {
                    *line += s[i + 1] == '\n';
                    i++;
                }
                *line += s[i] == '\n';
                i++;
            }
            if (i >= n) {
                perr(P, sline, "unterminated string literal");
                return -1;
            }
            i++;
            t = push_tok(P, TK_STRING, sline, s + st, i - st);
            if (!t || decode_string(P, sline, s + st + 1, i - st - 2, &t->val) < 0)
                return -1;
        } else {
            static const char *const ops2[] = {"//", "**", "==", "!=", "<=", ">="};
            size_t len = 0;
            for (size_t k = 0; k < sizeof(ops2) / sizeof(ops2[0]); k++)
                if (i + 1 < n && s[i] == ops2[k][0] && s[i + 1] == ops2[k][1])
                    len = 2;
            if (!len && strchr("+-*/%~<>=()[]{},.:|;", c) && c)
                len = 1;
            if (!len) {
                if (c == '#' || c >= 0x80)
                    perr(P, *line, "unexpected character in tag");
                else
                    perr(P, *line, "unexpected character '%c' in tag", c);
                return -1;
            }
            if (c == '(' || c == '[' || c == '{')
                balance++;
            else if ((c == ')' || c == ']' || c == '}') && balance > 0)
                balance--;
            i += len;
            if (!push_tok(P, TK_OP, *line, s + st, len))
                return -1;
        }
    }
}

static int lex(struct parser *P)
{
    const char *s = P->src;
    size_t n = P->len;
    size_t pos = 0;
    int line = 1;
    bool line_starting = true;
    while (pos < n) {
        size_t t = pos;
        while (t + 1 < n && !(s[t] == '{' && (s[t + 1] == '{' || s[t + 1] == '%' || s[t + 1] == '#')))
            t++;
        if (t + 1 >= n) {
            if (!push_tok(P, TK_DATA, line, s + pos, n - pos))
                return -1;
            break;
        }
        char kind = s[t + 1];
        char sign = (t + 2 < n && (s[t + 2] == '-' || s[t + 2] == '+')) ? s[t + 2] : 0;
        size_t dend = t;
        if (sign == '-') {
            dend = rstrip_py_space(s, pos, t);
        } else if (sign != '+' && kind != '{') {
            /* lstrip_blocks: only whitespace between line start and the tag (jinja2
             * tests the text after the last newline with Python's \s+) */
            size_t lp = t;
            while (lp > pos && s[lp - 1] != '\n')
                lp--;
            bool newline_found = lp > pos;
            if ((newline_found || line_starting) && skip_py_space(s, lp, t) == t)
                dend = lp;
        }
        if (dend > pos && !push_tok(P, TK_DATA, line, s + pos, dend - pos))
            return -1;
        line += count_lines(s, pos, t);
        size_t i = t + 2 + (sign ? 1 : 0);
        if (kind == '#') {
            size_t e = i;
            while (e + 1 < n && !(s[e] == '#' && s[e + 1] == '}'))
                e++;
            if (e + 1 >= n) {
                perr(P, line, "unclosed comment");
                return -1;
            }
            char esign = (e > i && (s[e - 1] == '-' || s[e - 1] == '+')) ? s[e - 1] : 0;
            line += count_lines(s, i, e);
            i = e + 2;
            if (esign == '-') {
                size_t j = skip_py_space(s, i, n);
                line += count_lines(s, i, j);
                i = j;
            } else if (esign != '+' && i < n && s[i] == '\n') {
                i++;
                line++;
            }
        } else {
            bool block = kind == '%';
            if (!push_tok(P, block ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, line, s + t, 2))
                return -1;
            if (lex_tag(P, &i, &line, block) < 0)
                return -1;
        }
        line_starting = i > 0 && s[i - 1] == '\n';
        pos = i;
    }
    return push_tok(P, TK_EOF, line, NULL, 0) ? 0 : -1;
}

/* ------------------------------------------------------------------ parser */

static struct tk *cur(struct parser *P)
{
    return &P->toks[P->pos];
}

static struct tk *advance(struct parser *P)
{
    struct tk *t = &P->toks[P->pos];
    if (t->kind != TK_EOF)
        P->pos++;
    return t;
}

static bool tok_is(const struct tk *t, enum tk_kind kind, const char *text)
{
    if (t->kind != kind)
        return false;
    if (!text)
        return true;
    size_t l = strlen(text);
    return t->len == l && memcmp(t->s, text, l) == 0;
}

static bool is_op(struct parser *P, const char *op)
{
    return tok_is(cur(P), TK_OP, op);
}

static bool is_name(struct parser *P, const char *name)
{
    return tok_is(cur(P), TK_NAME, name);
}

static bool accept_op(struct parser *P, const char *op)
{
    if (!is_op(P, op))
        return false;
    advance(P);
    return true;
}

static bool accept_name(struct parser *P, const char *name)
{
    if (!is_name(P, name))
        return false;
    advance(P);
    return true;
}

static const char *tok_desc(const struct tk *t, char *buf, size_t n)
{
    switch (t->kind) {
    case TK_EOF: return "end of template";
    case TK_DATA: return "template text";
    case TK_VAR_BEGIN: return "'{{'";
    case TK_VAR_END: return "'}}'";
    case TK_BLOCK_BEGIN: return "'{%'";
    case TK_BLOCK_END: return "'%}'";
    default:
        snprintf(buf, n, "'%.*s'", (int)(t->len > 40 ? 40 : t->len), t->s);
        return buf;
    }
}

static int expect_op(struct parser *P, const char *op)
{
    if (accept_op(P, op))
        return 0;
    char buf[64];
    perr(P, cur(P)->line, "expected '%s', got %s", op, tok_desc(cur(P), buf, sizeof(buf)));
    return -1;
}

static int expect_kind(struct parser *P, enum tk_kind kind, const char *what)
{
    if (cur(P)->kind == kind) {
        advance(P);
        return 0;
    }
    char buf[64];
    perr(P, cur(P)->line, "expected %s, got %s", what, tok_desc(cur(P), buf, sizeof(buf)));
    return -1;
}

static struct tn *node(struct parser *P, enum tn_kind kind, int line)
{
    struct tn *n = tmpl_arena_alloc(P->arena, sizeof(*n));
    if (!n) {
        perr(P, line, "out of memory");
        return NULL;
    }
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    n->line = line;
    return n;
}

static bool enter(struct parser *P)
{
    if (++P->depth > TMPL_MAX_DEPTH) {
        perr(P, cur(P)->line, "template nested too deeply (limit %d)", TMPL_MAX_DEPTH);
        return false;
    }
    return true;
}

static struct tn *parse_expr(struct parser *P);
static struct tn *parse_or(struct parser *P);
static struct tn *parse_unary(struct parser *P, bool with_filter);
static struct tn *parse_primary(struct parser *P);
static struct tn *parse_postfix(struct parser *P, struct tn *n);

/* Appends to a singly linked list kept as head/tail. */
static void list_add(struct tn **head, struct tn **tail, struct tn *n)
{
    if (*tail)
        (*tail)->next = n;
    else
        *head = n;
    *tail = n;
}

/* Call arguments after '(' up to ')': positional then keyword (name=value). */
static int parse_call_args(struct parser *P, struct tn **args)
{
    struct tn *head = NULL, *tail = NULL;
    int count = 0;
    *args = NULL;
    if (expect_op(P, "(") < 0)
        return -1;
    while (!is_op(P, ")")) {
        if (count > 0 && expect_op(P, ",") < 0)
            return -1;
        if (is_op(P, ")"))
            break; /* trailing comma */
        if (++count > TMPL_MAX_ARGS) {
            perr(P, cur(P)->line, "too many arguments (limit %d)", TMPL_MAX_ARGS);
            return -1;
        }
        if (is_op(P, "*") || is_op(P, "**")) {
            perr(P, cur(P)->line, "unsupported construct: *args / **kwargs in a call");
            return -1;
        }
        struct tn *a;
        if (cur(P)->kind == TK_NAME && tok_is(&P->toks[P->pos + 1], TK_OP, "=")) {
            struct tk *nt = advance(P);
            advance(P);
            a = node(P, TN_KWARG, nt->line);
            if (!a)
                return -1;
            a->val = tv_str(nt->s, nt->len);
            if (!(a->a = parse_expr(P)))
                return -1;
        } else {
            for (struct tn *k = head; k; k = k->next)
                if (k->kind == TN_KWARG) {
                    perr(P, cur(P)->line, "positional argument follows keyword argument");
                    return -1;
                }
            if (!(a = parse_expr(P)))
                return -1;
        }
        list_add(&head, &tail, a);
    }
    advance(P);
    *args = head;
    return 0;
}

/* `| name(.name)* [(args)]`, repeated; `base` may be NULL for a filter block. */
static struct tn *parse_filter(struct parser *P, struct tn *base)
{
    struct tk *nt = cur(P);
    if (nt->kind != TK_NAME) {
        perr(P, nt->line, "expected a filter name after '|'");
        return NULL;
    }
    advance(P);
    int idx = tmpl_filter_index(nt->s, nt->len);
    if (idx < 0) {
        perr(P, nt->line, "unsupported construct: no filter named '%.*s'", (int)nt->len, nt->s);
        return NULL;
    }
    struct tn *f = node(P, TN_FILTER, nt->line);
    if (!f)
        return NULL;
    f->op = idx;
    f->a = base;
    f->val = tv_str(nt->s, nt->len);
    if (is_op(P, "(") && parse_call_args(P, &f->b) < 0)
        return NULL;
    return f;
}

static struct tn *parse_test(struct parser *P, struct tn *base)
{
    bool neg = accept_name(P, "not");
    struct tk *nt = cur(P);
    if (nt->kind != TK_NAME && !(nt->kind == TK_OP && (tok_is(nt, TK_OP, "==") ||
        tok_is(nt, TK_OP, "!=") || tok_is(nt, TK_OP, "<") || tok_is(nt, TK_OP, ">") ||
        tok_is(nt, TK_OP, "<=") || tok_is(nt, TK_OP, ">=")))) {
        perr(P, nt->line, "expected a test name after 'is'");
        return NULL;
    }
    advance(P);
    int idx = tmpl_test_index(nt->s, nt->len);
    if (idx < 0) {
        perr(P, nt->line, "unsupported construct: no test named '%.*s'", (int)nt->len, nt->s);
        return NULL;
    }
    struct tn *t = node(P, TN_TEST, nt->line);
    if (!t)
        return NULL;
    t->op = idx;
    t->neg = neg;
    t->a = base;
    t->val = tv_str(nt->s, nt->len);
    struct tk *c = cur(P);
    if (is_op(P, "(")) {
        if (parse_call_args(P, &t->b) < 0)
            return NULL;
    } else if ((c->kind == TK_NAME || c->kind == TK_STRING || c->kind == TK_INT ||
                c->kind == TK_FLOAT || is_op(P, "[") || is_op(P, "{")) &&
               !is_name(P, "else") && !is_name(P, "or") && !is_name(P, "and") &&
               !is_name(P, "if")) {
        if (is_name(P, "is")) {
            perr(P, c->line, "cannot chain multiple tests with 'is'");
            return NULL;
        }
        struct tn *arg = parse_primary(P);
        if (!arg || !(arg = parse_postfix(P, arg)))
            return NULL;
        t->b = arg;
    }
    return t;
}

static struct tn *parse_subscript(struct parser *P, struct tn *obj, int line)
{
    struct tn *parts[3] = {NULL, NULL, NULL};
    int n_colon = 0;
    int k = 0;
    for (;;) {
        if (is_op(P, ":")) {
            if (++n_colon > 2) {
                perr(P, cur(P)->line, "invalid slice");
                return NULL;
            }
            advance(P);
            k = n_colon;
            continue;
        }
        if (is_op(P, "]"))
            break;
        if (parts[k]) {
            char buf[64];
            perr(P, cur(P)->line, "expected ']', got %s", tok_desc(cur(P), buf, sizeof(buf)));
            return NULL;
        }
        if (!(parts[k] = parse_expr(P)))
            return NULL;
    }
    advance(P);
    struct tn *n;
    if (n_colon == 0) {
        if (!parts[0]) {
            perr(P, line, "empty subscript");
            return NULL;
        }
        n = node(P, TN_ITEM, line);
        if (n) {
            n->a = obj;
            n->b = parts[0];
        }
    } else {
        n = node(P, TN_SLICE, line);
        if (n) {
            n->a = obj;
            n->b = parts[0];
            n->c = parts[1];
            n->d = parts[2];
        }
    }
    return n;
}

static struct tn *parse_postfix(struct parser *P, struct tn *n)
{
    for (;;) {
        struct tk *t = cur(P);
        if (tok_is(t, TK_OP, ".")) {
            advance(P);
            struct tk *a = advance(P);
            if (a->kind != TK_NAME && a->kind != TK_INT) {
                perr(P, a->line, "expected an attribute name after '.'");
                return NULL;
            }
            struct tn *m;
            if (a->kind == TK_INT) {
                m = node(P, TN_ITEM, a->line);
                struct tn *lit = node(P, TN_LIT, a->line);
                if (!m || !lit)
                    return NULL;
                lit->val = a->val;
                m->b = lit;
            } else {
                if (!(m = node(P, TN_ATTR, a->line)))
                    return NULL;
                m->val = tv_str(a->s, a->len);
            }
            m->a = n;
            n = m;
        } else if (tok_is(t, TK_OP, "[")) {
            advance(P);
            if (!(n = parse_subscript(P, n, t->line)))
                return NULL;
        } else if (tok_is(t, TK_OP, "(")) {
            struct tn *c = node(P, TN_CALL, t->line);
            if (!c || parse_call_args(P, &c->b) < 0)
                return NULL;
            c->a = n;
            n = c;
        } else {
            return n;
        }
    }
}

/* Filters, tests and calls after a unary expression (jinja2's parse_filter_expr). */
static struct tn *parse_filter_expr(struct parser *P, struct tn *n)
{
    for (;;) {
        if (accept_op(P, "|")) {
            if (!(n = parse_filter(P, n)))
                return NULL;
        } else if (accept_name(P, "is")) {
            if (!(n = parse_test(P, n)))
                return NULL;
        } else if (is_op(P, "(")) {
            struct tn *c = node(P, TN_CALL, cur(P)->line);
            if (!c || parse_call_args(P, &c->b) < 0)
                return NULL;
            c->a = n;
            n = c;
        } else {
            return n;
        }
    }
}

/* Items of a list/tuple/dict literal up to the closing bracket, into *items (NULL
 * when there are none). Returns 0, or -1 on a syntax error. */
static int parse_seq(struct parser *P, const char *close, bool dict, struct tn **items)
{
    struct tn *head = NULL, *tail = NULL;
    int count = 0;
    *items = NULL;
    while (!is_op(P, close)) {
        if (count > 0 && expect_op(P, ",") < 0)
            return -1;
        if (is_op(P, close))
            break;
        struct tn *item = parse_expr(P);
        if (!item)
            return -1;
        if (dict) {
            struct tn *pair = node(P, TN_PAIR, item->line);
            if (!pair || expect_op(P, ":") < 0)
                return -1;
            pair->a = item;
            if (!(pair->b = parse_expr(P)))
                return -1;
            item = pair;
        }
        list_add(&head, &tail, item);
        count++;
    }
    advance(P);
    *items = head;
    return 0;
}

static struct tn *parse_primary(struct parser *P)
{
    if (!enter(P))
        return NULL;
    struct tk *t = cur(P);
    struct tn *n = NULL;
    char buf[64];
    if (t->kind == TK_NAME) {
        advance(P);
        n = node(P, TN_LIT, t->line);
        if (!n)
            goto out;
        if (tok_is(t, TK_NAME, "true") || tok_is(t, TK_NAME, "True")) {
            n->val.kind = TV_BOOL;
            n->val.u.b = true;
        } else if (tok_is(t, TK_NAME, "false") || tok_is(t, TK_NAME, "False")) {
            n->val.kind = TV_BOOL;
        } else if (tok_is(t, TK_NAME, "none") || tok_is(t, TK_NAME, "None")) {
            n->val.kind = TV_NONE;
        } else {
            n->kind = TN_NAME;
            n->val = tv_str(t->s, t->len);
        }
    } else if (t->kind == TK_STRING) {
        advance(P);
        n = node(P, TN_LIT, t->line);
        if (!n)
            goto out;
        n->val = t->val;
        /* adjacent string literals concatenate */
        while (cur(P)->kind == TK_STRING) {
            struct tk *u = advance(P);
            size_t len = n->val.len + u->val.len;
            char *s = tmpl_arena_alloc(P->arena, len + 1);
            if (!s) {
                perr(P, u->line, "out of memory");
                n = NULL;
                goto out;
            }
            memcpy(s, n->val.u.s, n->val.len);
            memcpy(s + n->val.len, u->val.u.s, u->val.len);
            s[len] = 0;
            n->val = tv_str(s, len);
        }
    } else if (t->kind == TK_INT || t->kind == TK_FLOAT) {
        advance(P);
        n = node(P, TN_LIT, t->line);
        if (n)
            n->val = t->val;
    } else if (tok_is(t, TK_OP, "(")) {
        advance(P);
        if (accept_op(P, ")")) {
            n = node(P, TN_TUPLE, t->line);
            goto out;
        }
        struct tn *first = parse_expr(P);
        if (!first)
            goto out;
        if (accept_op(P, ")")) {
            n = first;
            goto out;
        }
        if (expect_op(P, ",") < 0)
            goto out;
        n = node(P, TN_TUPLE, t->line);
        if (!n)
            goto out;
        if (parse_seq(P, ")", false, &first->next) < 0) {
            n = NULL;
            goto out;
        }
        n->a = first;
    } else if (tok_is(t, TK_OP, "[") || tok_is(t, TK_OP, "{")) {
        bool dict = tok_is(t, TK_OP, "{");
        advance(P);
        struct tn *items;
        if (parse_seq(P, dict ? "}" : "]", dict, &items) < 0)
            goto out;
        n = node(P, dict ? TN_DICT : TN_LIST, t->line);
        if (n)
            n->a = items;
    } else {
        perr(P, t->line, "unexpected %s in expression", tok_desc(t, buf, sizeof(buf)));
    }
out:
    P->depth--;
    return n;
}

static struct tn *parse_unary(struct parser *P, bool with_filter)
{
    if (!enter(P))
        return NULL;
    struct tk *t = cur(P);
    struct tn *n = NULL;
    if (tok_is(t, TK_OP, "-") || tok_is(t, TK_OP, "+")) {
        advance(P);
        struct tn *e = parse_unary(P, false);
        if (e && (n = node(P, tok_is(t, TK_OP, "-") ? TN_NEG : TN_POS, t->line)))
            n->a = e;
    } else {
        n = parse_primary(P);
    }
    if (n)
        n = parse_postfix(P, n);
    if (n && with_filter)
        n = parse_filter_expr(P, n);
    P->depth--;
    return n;
}

static struct tn *binop(struct parser *P, int op, struct tn *l, struct tn *r, int line)
{
    if (!l || !r)
        return NULL;
    struct tn *n = node(P, TN_BINOP, line);
    if (n) {
        n->op = op;
        n->a = l;
        n->b = r;
    }
    return n;
}

static struct tn *parse_pow(struct parser *P)
{
    struct tn *n = parse_unary(P, true);
    while (n && is_op(P, "**")) {
        int line = advance(P)->line;
        n = binop(P, OP_POW, n, parse_unary(P, true), line);
    }
    return n;
}

static struct tn *parse_math2(struct parser *P)
{
    struct tn *n = parse_pow(P);
    for (;;) {
        int op = is_op(P, "*") ? OP_MUL : is_op(P, "/") ? OP_DIV : is_op(P, "//") ? OP_FLOORDIV
               : is_op(P, "%") ? OP_MOD : 0;
        if (!n || !op)
            return n;
        int line = advance(P)->line;
        n = binop(P, op, n, parse_pow(P), line);
    }
}

static struct tn *parse_concat(struct parser *P)
{
    struct tn *n = parse_math2(P);
    while (n && is_op(P, "~")) {
        int line = advance(P)->line;
        n = binop(P, OP_CONCAT, n, parse_math2(P), line);
    }
    return n;
}

static struct tn *parse_math1(struct parser *P)
{
    struct tn *n = parse_concat(P);
    for (;;) {
        int op = is_op(P, "+") ? OP_ADD : is_op(P, "-") ? OP_SUB : 0;
        if (!n || !op)
            return n;
        int line = advance(P)->line;
        n = binop(P, op, n, parse_concat(P), line);
    }
}

static struct tn *parse_compare(struct parser *P)
{
    struct tn *first = parse_math1(P);
    if (!first)
        return NULL;
    struct tn *head = NULL, *tail = NULL;
    for (;;) {
        struct tk *t = cur(P);
        int op = 0;
        if (tok_is(t, TK_OP, "=="))
            op = OP_EQ;
        else if (tok_is(t, TK_OP, "!="))
            op = OP_NE;
        else if (tok_is(t, TK_OP, "<"))
            op = OP_LT;
        else if (tok_is(t, TK_OP, "<="))
            op = OP_LE;
        else if (tok_is(t, TK_OP, ">"))
            op = OP_GT;
        else if (tok_is(t, TK_OP, ">="))
            op = OP_GE;
        else if (tok_is(t, TK_NAME, "in"))
            op = OP_IN;
        else if (tok_is(t, TK_NAME, "not") && tok_is(&P->toks[P->pos + 1], TK_NAME, "in"))
            op = OP_NOTIN;
        if (!op)
            break;
        advance(P);
        if (op == OP_NOTIN)
            advance(P);
        struct tn *c = node(P, TN_CMPOP, t->line);
        if (!c || !(c->a = parse_math1(P)))
            return NULL;
        c->op = op;
        list_add(&head, &tail, c);
    }
    if (!head)
        return first;
    struct tn *n = node(P, TN_COMPARE, first->line);
    if (n) {
        n->a = first;
        n->b = head;
    }
    return n;
}

static struct tn *parse_not(struct parser *P)
{
    if (is_name(P, "not")) {
        if (!enter(P))
            return NULL;
        int line = advance(P)->line;
        struct tn *e = parse_not(P);
        struct tn *n = e ? node(P, TN_NOT, line) : NULL;
        if (n)
            n->a = e;
        P->depth--;
        return n;
    }
    return parse_compare(P);
}

static struct tn *parse_and(struct parser *P)
{
    struct tn *n = parse_not(P);
    while (n && is_name(P, "and")) {
        int line = advance(P)->line;
        struct tn *r = parse_not(P);
        struct tn *m = r ? node(P, TN_AND, line) : NULL;
        if (!m)
            return NULL;
        m->a = n;
        m->b = r;
        n = m;
    }
    return n;
}

static struct tn *parse_or(struct parser *P)
{
    struct tn *n = parse_and(P);
    while (n && is_name(P, "or")) {
        int line = advance(P)->line;
        struct tn *r = parse_and(P);
        struct tn *m = r ? node(P, TN_OR, line) : NULL;
        if (!m)
            return NULL;
        m->a = n;
        m->b = r;
        n = m;
    }
    return n;
}

/* expression := or ['if' or ['else' expression]] */
static struct tn *parse_expr(struct parser *P)
{
    if (!enter(P))
        return NULL;
    struct tn *n = parse_or(P);
    while (n && is_name(P, "if")) {
        int line = advance(P)->line;
        struct tn *c = node(P, TN_COND, line);
        if (!c || !(c->a = parse_or(P))) {
            n = NULL;
            break;
        }
        c->b = n;
        if (accept_name(P, "else") && !(c->c = parse_expr(P))) {
            n = NULL;
            break;
        }
        n = c;
    }
    P->depth--;
    return n;
}

/* An expression, or a bare tuple `a, b` (as in `{{ a, b }}` or `set x = a, b`). */
static struct tn *parse_tuple_expr(struct parser *P)
{
    struct tn *first = parse_expr(P);
    if (!first || !is_op(P, ","))
        return first;
    struct tn *t = node(P, TN_TUPLE, first->line);
    if (!t)
        return NULL;
    struct tn *tail = first;
    t->a = first;
    while (accept_op(P, ",")) {
        if (cur(P)->kind == TK_VAR_END || cur(P)->kind == TK_BLOCK_END)
            break;
        struct tn *e = parse_expr(P);
        if (!e)
            return NULL;
        tail->next = e;
        tail = e;
    }
    return t;
}

/* ------------------------------------------------------------------ statements */

static struct tn *parse_body(struct parser *P, const char *const *ends, const char *opener,
                             int open_line, int *which);

static int end_block(struct parser *P)
{
    return expect_kind(P, TK_BLOCK_END, "'%}'");
}

static struct tn *name_node(struct parser *P)
{
    struct tk *t = cur(P);
    if (t->kind != TK_NAME) {
        char buf[64];
        perr(P, t->line, "expected a name, got %s", tok_desc(t, buf, sizeof(buf)));
        return NULL;
    }
    advance(P);
    struct tn *n = node(P, TN_NAME, t->line);
    if (n)
        n->val = tv_str(t->s, t->len);
    return n;
}

static struct tn *parse_if(struct parser *P, int line)
{
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    struct tn *n = node(P, TN_IF, line);
    if (!n || !(n->a = parse_expr(P)) || end_block(P) < 0)
        return NULL;
    int which;
    n->b = parse_body(P, ends, "if", line, &which);
    if (P->failed)
        return NULL;
    if (which == 0) {
        int l2 = P->toks[P->pos - 1].line;
        if (!(n->c = parse_if(P, l2)))
            return NULL;
        return n;
    }
    if (which == 1) {
        static const char *const ends2[] = {"endif", NULL};
        if (end_block(P) < 0)
            return NULL;
        n->c = parse_body(P, ends2, "if", line, &which);
        if (P->failed)
            return NULL;
    }
    return end_block(P) < 0 ? NULL : n;
}

static struct tn *parse_for(struct parser *P, int line)
{
    static const char *const ends[] = {"else", "endfor", NULL};
    struct tn *n = node(P, TN_FOR, line);
    if (!n)
        return NULL;
    struct tn *tail = NULL;
    do {
        struct tn *t = name_node(P);
        if (!t)
            return NULL;
        list_add(&n->d, &tail, t);
    } while (accept_op(P, ","));
    if (!accept_name(P, "in")) {
        perr(P, cur(P)->line, "expected 'in' in for loop");
        return NULL;
    }
    /* jinja2 parses the iterable without a conditional expression: `if` filters */
    if (!(n->a = parse_or(P)))
        return NULL;
    if (accept_name(P, "if") && !(n->e = parse_expr(P)))
        return NULL;
    if (is_name(P, "recursive")) {
        perr(P, cur(P)->line, "unsupported construct: recursive for loop");
        return NULL;
    }
    if (end_block(P) < 0)
        return NULL;
    int which;
    P->loop_depth++;
    n->b = parse_body(P, ends, "for", line, &which);
    P->loop_depth--;
    if (P->failed)
        return NULL;
    if (which == 0) {
        static const char *const ends2[] = {"endfor", NULL};
        if (end_block(P) < 0)
            return NULL;
        n->c = parse_body(P, ends2, "for", line, &which);
        if (P->failed)
            return NULL;
    }
    return end_block(P) < 0 ? NULL : n;
}

static struct tn *parse_filter_chain(struct parser *P)
{
    struct tn *f = NULL;
    do {
        if (!(f = parse_filter(P, f)))
            return NULL;
    } while (accept_op(P, "|"));
    return f;
}

static struct tn *parse_set(struct parser *P, int line)
{
    struct tn *target = name_node(P);
    if (!target)
        return NULL;
    if (is_op(P, ".")) {
        advance(P);
        struct tk *a = cur(P);
        if (a->kind != TK_NAME) {
            perr(P, a->line, "expected an attribute name after '.'");
            return NULL;
        }
        advance(P);
        struct tn *at = node(P, TN_ATTR, a->line);
        if (!at)
            return NULL;
        at->a = target;
        at->val = tv_str(a->s, a->len);
        target = at;
    } else if (is_op(P, ",")) {
        struct tn *tup = node(P, TN_TUPLE, line);
        if (!tup)
            return NULL;
        struct tn *tail = target;
        tup->a = target;
        while (accept_op(P, ",")) {
            struct tn *t = name_node(P);
            if (!t)
                return NULL;
            tail->next = t;
            tail = t;
        }
        target = tup;
    }
    if (accept_op(P, "=")) {
        struct tn *n = node(P, TN_SET, line);
        if (!n || !(n->a = parse_tuple_expr(P)) || end_block(P) < 0)
            return NULL;
        n->d = target;
        return n;
    }
    if (target->kind != TN_NAME) {
        perr(P, line, "a block set needs a plain name");
        return NULL;
    }
    struct tn *n = node(P, TN_SETBLOCK, line);
    if (!n)
        return NULL;
    n->d = target;
    if (accept_op(P, "|") && !(n->e = parse_filter_chain(P)))
        return NULL;
    if (end_block(P) < 0)
        return NULL;
    static const char *const ends[] = {"endset", NULL};
    int which;
    n->b = parse_body(P, ends, "set", line, &which);
    if (P->failed || end_block(P) < 0)
        return NULL;
    return n;
}

static struct tn *parse_macro(struct parser *P, int line)
{
    struct tk *nt = cur(P);
    if (nt->kind != TK_NAME) {
        perr(P, nt->line, "expected a macro name");
        return NULL;
    }
    advance(P);
    struct tn *n = node(P, TN_MACRO, line);
    if (!n || expect_op(P, "(") < 0)
        return NULL;
    n->val = tv_str(nt->s, nt->len);
    struct tn *tail = NULL;
    int count = 0;
    while (!is_op(P, ")")) {
        if (count++ > 0 && expect_op(P, ",") < 0)
            return NULL;
        if (count > TMPL_MAX_ARGS) {
            perr(P, cur(P)->line, "too many macro parameters (limit %d)", TMPL_MAX_ARGS);
            return NULL;
        }
        struct tk *pt = cur(P);
        if (pt->kind != TK_NAME) {
            perr(P, pt->line, "expected a parameter name");
            return NULL;
        }
        advance(P);
        struct tn *p = node(P, TN_KWARG, pt->line);
        if (!p)
            return NULL;
        p->val = tv_str(pt->s, pt->len);
        if (accept_op(P, "=") && !(p->a = parse_expr(P)))
            return NULL;
        list_add(&n->d, &tail, p);
    }
    advance(P);
    if (end_block(P) < 0)
        return NULL;
    static const char *const ends[] = {"endmacro", NULL};
    int which;
    int saved_loop = P->loop_depth;
    P->loop_depth = 0;
    P->macro_depth++;
    n->b = parse_body(P, ends, "macro", line, &which);
    P->macro_depth--;
    P->loop_depth = saved_loop;
    if (P->failed)
        return NULL;
    if (cur(P)->kind == TK_NAME)
        advance(P); /* {% endmacro name %} */
    return end_block(P) < 0 ? NULL : n;
}

static struct tn *parse_statement(struct parser *P)
{
    struct tk *t = cur(P);
    int line = t->line;
    if (t->kind != TK_NAME) {
        char buf[64];
        perr(P, line, "expected a statement name, got %s", tok_desc(t, buf, sizeof(buf)));
        return NULL;
    }
    advance(P);
    if (tok_is(t, TK_NAME, "if"))
        return parse_if(P, line);
    if (tok_is(t, TK_NAME, "for"))
        return parse_for(P, line);
    if (tok_is(t, TK_NAME, "set"))
        return parse_set(P, line);
    if (tok_is(t, TK_NAME, "macro"))
        return parse_macro(P, line);
    if (tok_is(t, TK_NAME, "filter")) {
        struct tn *n = node(P, TN_FILTERBLOCK, line);
        if (!n || !(n->e = parse_filter_chain(P)) || end_block(P) < 0)
            return NULL;
        static const char *const ends[] = {"endfilter", NULL};
        int which;
        n->b = parse_body(P, ends, "filter", line, &which);
        if (P->failed || end_block(P) < 0)
            return NULL;
        return n;
    }
    if (tok_is(t, TK_NAME, "break") || tok_is(t, TK_NAME, "continue")) {
        bool brk = tok_is(t, TK_NAME, "break");
        if (P->loop_depth == 0) {
            perr(P, line, "'%s' outside of a loop", brk ? "break" : "continue");
            return NULL;
        }
        struct tn *n = node(P, brk ? TN_BREAK : TN_CONTINUE, line);
        return n && end_block(P) == 0 ? n : NULL;
    }
    perr(P, line, "unsupported construct: '%.*s' tag", (int)(t->len > 40 ? 40 : t->len), t->s);
    return NULL;
}

/* Parses statements until a block tag named in `ends` (NULL: until the end of the
 * template). On return the end tag's name has been consumed and *which is its index
 * in `ends`. Returns the first statement (possibly NULL for an empty body); check
 * P->failed for errors. */
static struct tn *parse_body(struct parser *P, const char *const *ends, const char *opener,
                             int open_line, int *which)
{
    struct tn *head = NULL, *tail = NULL;
    *which = -1;
    if (!enter(P))
        return NULL;
    for (;;) {
        struct tk *t = cur(P);
        struct tn *n = NULL;
        if (t->kind == TK_EOF) {
            if (ends)
                perr(P, open_line, "unclosed '%s' (missing '{%% %s %%}')", opener, ends[0] ? ends[0] : "");
            break;
        }
        if (t->kind == TK_DATA) {
            advance(P);
            if ((n = node(P, TN_TEXT, t->line)))
                n->val = tv_str(t->s, t->len);
        } else if (t->kind == TK_VAR_BEGIN) {
            advance(P);
            if ((n = node(P, TN_OUTPUT, t->line)) && (n->a = parse_tuple_expr(P)))
                expect_kind(P, TK_VAR_END, "'}}'");
        } else if (t->kind == TK_BLOCK_BEGIN) {
            advance(P);
            struct tk *nt = cur(P);
            for (int i = 0; ends && ends[i]; i++) {
                if (tok_is(nt, TK_NAME, ends[i])) {
                    advance(P);
                    *which = i;
                    P->depth--;
                    return head;
                }
            }
            if (nt->kind == TK_NAME && nt->len > 3 &&
                (memcmp(nt->s, "end", 3) == 0 || tok_is(nt, TK_NAME, "elif") ||
                 tok_is(nt, TK_NAME, "else"))) {
                perr(P, nt->line, "unexpected '%.*s'", (int)(nt->len > 40 ? 40 : nt->len), nt->s);
                break;
            }
            if (tok_is(nt, TK_NAME, "else") || tok_is(nt, TK_NAME, "elif")) {
                perr(P, nt->line, "unexpected '%.*s'", (int)nt->len, nt->s);
                break;
            }
            n = parse_statement(P);
        } else {
            char buf[64];
            perr(P, t->line, "unexpected %s", tok_desc(t, buf, sizeof(buf)));
        }
        if (P->failed || !n)
            break;
        list_add(&head, &tail, n);
    }
    P->depth--;
    return head;
}

/* ------------------------------------------------------------------ API */

struct tmpl_params tmpl_default_params(void)
{
    struct tmpl_params p;
    memset(&p, 0, sizeof(p));
    return p;
}

/* \r\n and \r become \n; one trailing newline is dropped. */
static char *normalise(const char *src, size_t len, size_t *out_len)
{
    char *s = malloc(len + 1);
    if (!s)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            s[k++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n')
                i++;
        } else {
            s[k++] = src[i];
        }
    }
    if (k > 0 && s[k - 1] == '\n')
        k--;
    s[k] = 0;
    *out_len = k;
    return s;
}

struct tmpl *tmpl_new(const char *src, size_t len, char *err, size_t err_len)
{
    if (err && err_len)
        err[0] = 0;
    if (!src || len > TMPL_MAX_SOURCE) {
        if (err && err_len)
            snprintf(err, err_len, "line 1: template missing or larger than %u bytes", TMPL_MAX_SOURCE);
        return NULL;
    }
    struct tmpl *t = calloc(1, sizeof(*t));
    if (!t)
        goto fail_alloc;
    t->arena.cap_bytes = 0;
    size_t n;
    t->src = normalise(src, len, &n);
    if (!t->src)
        goto fail_alloc;
    struct parser P;
    memset(&P, 0, sizeof(P));
    P.arena = &t->arena;
    P.src = t->src;
    P.len = n;
    P.err = err;
    P.err_len = err_len;
    if (memchr(t->src, 0, n)) {
        perr(&P, 1 + count_lines(t->src, 0, (size_t)((char *)memchr(t->src, 0, n) - t->src)),
             "NUL byte in template");
        goto fail_parse;
    }
    if (lex(&P) < 0)
        goto fail_parse;
    int which;
    t->body = parse_body(&P, NULL, NULL, 1, &which);
    if (P.failed)
        goto fail_parse;
    free(P.toks);
    return t;

fail_parse:
    free(P.toks);
    tmpl_free(t);
    return NULL;
fail_alloc:
    if (err && err_len)
        snprintf(err, err_len, "line 1: out of memory");
    tmpl_free(t);
    return NULL;
}

void tmpl_free(struct tmpl *t)
{
    if (!t)
        return;
    tmpl_arena_fini(&t->arena);
    free(t->src);
    free(t);
}

int tmpl_render(const struct tmpl *t, const struct tmpl_params *params, char **out,
                size_t *out_len, char *err, size_t err_len)
{
    if (out)
        *out = NULL;
    if (out_len)
        *out_len = 0;
    if (err && err_len)
        err[0] = 0;
    if (!t || !params || !out || (params->n_messages && !params->messages)) {
        if (err && err_len)
            snprintf(err, err_len, "invalid argument");
        return TMPL_EINVAL;
    }
    return tmpl_eval(t->body, params, out, out_len, err, err_len);
}
