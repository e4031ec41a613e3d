/* template_lex.c - chat templates: the lexer. Turns the normalised source into one
 * token array: data runs, tag delimiters and the tokens inside tags (names, string,
 * integer and float literals with Python's escapes, operators).
 *
 * Whitespace control happens here exactly as jinja2 does it with trim_blocks and
 * lstrip_blocks: a '-' marker strips all whitespace on that side, a block or comment
 * tag alone on its line loses its indentation, and the newline right after a block or
 * comment tag goes. Whitespace is Python's (str.isspace, tl_space_len). */
#include "template.h"
#include "template_int.h"
#include "template_lib.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

void tmpl_perr(struct parser *P, int line, const char *fmt, ...)
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
            tmpl_perr(P, line, "template too large");
            return NULL;
        }
        struct tk *t = realloc(P->toks, cap * sizeof(*t));
        if (!t) {
            tmpl_perr(P, line, "out of memory");
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

/* End of the whitespace run starting at i. */
static size_t skip_py_space(const char *s, size_t i, size_t n)
{
    size_t k;
    while (i < n && (k = tl_space_len(s + i, n - i)) > 0)
        i += k;
    return i;
}

/* Start of the whitespace run ending at `end` (not before `start`). */
static size_t rstrip_py_space(const char *s, size_t start, size_t end)
{
    while (end > start) {
        size_t k = 0;
        for (size_t w = 1; w <= 3 && w <= end - start; w++) {
            size_t l = tl_space_len(s + end - w, w);
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

/* Decodes a Python string literal body (between the quotes) into the arena, with
 * Python's escapes; an unknown escape keeps its backslash. */
static int decode_string(struct parser *P, int line, const char *s, size_t n, struct tv *out)
{
    char *o = tmpl_arena_alloc(P->arena, n + 1);
    if (!o) {
        tmpl_perr(P, line, "out of memory");
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
                k += (size_t)utf8proc_encode_char((utf8proc_int32_t)v, (utf8proc_uint8_t *)o + k);
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
                    tmpl_perr(P, line, "truncated \\%c escape in string literal", c);
                    return -1;
                }
                v = v * 16 + (uint32_t)h;
            }
            i += (size_t)digits;
            if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
                tmpl_perr(P, line, "invalid code point in string literal");
                return -1;
            }
            /* a \u escape may expand 6 source bytes to at most 3, \U 10 to 4: fits */
            k += (size_t)utf8proc_encode_char((utf8proc_int32_t)v, (utf8proc_uint8_t *)o + k);
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
            tmpl_perr(P, open_line, "unexpected end of template, expected '%s'", block ? "%}" : "}}");
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
                    tmpl_perr(P, *line, "integer literal too large");
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
                tmpl_perr(P, sline, "unterminated string literal");
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
                    tmpl_perr(P, *line, "unexpected character in tag");
                else
                    tmpl_perr(P, *line, "unexpected character '%c' in tag", c);
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

int tmpl_lex(struct parser *P)
{
    const char *s = P->src;
    size_t n = P->len;
    const char *nul = memchr(s, 0, n);
    if (nul) {
        tmpl_perr(P, 1 + count_lines(s, 0, (size_t)(nul - s)), "NUL byte in template");
        return -1;
    }
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
                tmpl_perr(P, line, "unclosed comment");
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
