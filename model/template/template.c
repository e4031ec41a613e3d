/* template.c - chat templates: the parser for the Jinja2 subset and the public tmpl_*
 * entry points (the lexer is in template_lex.c, the built-in templates in
 * template_builtin.c).
 *
 * The source is normalised first (\r\n and \r become \n, one trailing newline is
 * dropped), then lexed into one token array. The recursive-descent parser turns the tokens
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
    tmpl_perr(P, cur(P)->line, "expected '%s', got %s", op, tok_desc(cur(P), buf, sizeof(buf)));
    return -1;
}

static int expect_kind(struct parser *P, enum tk_kind kind, const char *what)
{
    if (cur(P)->kind == kind) {
        advance(P);
        return 0;
    }
    char buf[64];
    tmpl_perr(P, cur(P)->line, "expected %s, got %s", what, tok_desc(cur(P), buf, sizeof(buf)));
    return -1;
}

static struct tn *node(struct parser *P, enum tn_kind kind, int line)
{
    struct tn *n = tmpl_arena_alloc(P->arena, sizeof(*n));
    if (!n) {
        tmpl_perr(P, line, "out of memory");
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
        tmpl_perr(P, cur(P)->line, "template nested too deeply (limit %d)", TMPL_MAX_DEPTH);
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
            tmpl_perr(P, cur(P)->line, "too many arguments (limit %d)", TMPL_MAX_ARGS);
            return -1;
        }
        if (is_op(P, "*") || is_op(P, "**")) {
            tmpl_perr(P, cur(P)->line, "unsupported construct: *args / **kwargs in a call");
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
                    tmpl_perr(P, cur(P)->line, "positional argument follows keyword argument");
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

/* A call of `callee` at the current '(': `callee(args)`. */
static struct tn *parse_call(struct parser *P, struct tn *callee)
{
    struct tn *c = node(P, TN_CALL, cur(P)->line);
    if (!c || parse_call_args(P, &c->b) < 0)
        return NULL;
    c->a = callee;
    return c;
}

/* `| name(.name)* [(args)]`, repeated; `base` may be NULL for a filter block. */
static struct tn *parse_filter(struct parser *P, struct tn *base)
{
    struct tk *nt = cur(P);
    if (nt->kind != TK_NAME) {
        tmpl_perr(P, nt->line, "expected a filter name after '|'");
        return NULL;
    }
    advance(P);
    int idx = tmpl_filter_index(nt->s, nt->len);
    if (idx < 0) {
        tmpl_perr(P, nt->line, "unsupported construct: no filter named '%.*s'", (int)nt->len, nt->s);
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
        tmpl_perr(P, nt->line, "expected a test name after 'is'");
        return NULL;
    }
    advance(P);
    int idx = tmpl_test_index(nt->s, nt->len);
    if (idx < 0) {
        tmpl_perr(P, nt->line, "unsupported construct: no test named '%.*s'", (int)nt->len, nt->s);
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
            tmpl_perr(P, c->line, "cannot chain multiple tests with 'is'");
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
                tmpl_perr(P, cur(P)->line, "invalid slice");
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
            tmpl_perr(P, cur(P)->line, "expected ']', got %s", tok_desc(cur(P), buf, sizeof(buf)));
            return NULL;
        }
        if (!(parts[k] = parse_expr(P)))
            return NULL;
    }
    advance(P);
    struct tn *n;
    if (n_colon == 0) {
        if (!parts[0]) {
            tmpl_perr(P, line, "empty subscript");
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
                tmpl_perr(P, a->line, "expected an attribute name after '.'");
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
            if (!(n = parse_call(P, n)))
                return NULL;
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
            if (!(n = parse_call(P, n)))
                return NULL;
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
                tmpl_perr(P, u->line, "out of memory");
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
        tmpl_perr(P, t->line, "unexpected %s in expression", tok_desc(t, buf, sizeof(buf)));
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

/* One operator of a binary precedence level: its token and the node it makes. */
struct binop_tok {
    enum tk_kind tk_kind; /* TK_OP, or TK_NAME for the keywords 'and' and 'or' */
    const char *text;
    enum tn_kind kind; /* TN_BINOP, TN_AND or TN_OR */
    int op;            /* OP_* of a TN_BINOP node */
};

/* The operator of `ops` (ended by a NULL text) at the current token, or NULL. */
static const struct binop_tok *match_binop(struct parser *P, const struct binop_tok *ops)
{
    for (; ops->text; ops++)
        if (tok_is(cur(P), ops->tk_kind, ops->text))
            return ops;
    return NULL;
}

/* A left-associative binary level: level := next (op next)*, with op from `ops`. */
static struct tn *parse_binary(struct parser *P, struct tn *(*next)(struct parser *P),
                               const struct binop_tok *ops)
{
    struct tn *n = next(P);
    const struct binop_tok *o;
    while (n && (o = match_binop(P, ops))) {
        int line = advance(P)->line;
        struct tn *r = next(P);
        struct tn *m = r ? node(P, o->kind, line) : NULL;
        if (!m)
            return NULL;
        m->op = o->op;
        m->a = n;
        m->b = r;
        n = m;
    }
    return n;
}

static struct tn *parse_filtered_unary(struct parser *P)
{
    return parse_unary(P, true);
}

static struct tn *parse_pow(struct parser *P)
{
    static const struct binop_tok ops[] = {{TK_OP, "**", TN_BINOP, OP_POW}, {0}};
    return parse_binary(P, parse_filtered_unary, ops);
}

static struct tn *parse_math2(struct parser *P)
{
    static const struct binop_tok ops[] = {
        {TK_OP, "*", TN_BINOP, OP_MUL},
        {TK_OP, "/", TN_BINOP, OP_DIV},
        {TK_OP, "//", TN_BINOP, OP_FLOORDIV},
        {TK_OP, "%", TN_BINOP, OP_MOD},
        {0},
    };
    return parse_binary(P, parse_pow, ops);
}

static struct tn *parse_concat(struct parser *P)
{
    static const struct binop_tok ops[] = {{TK_OP, "~", TN_BINOP, OP_CONCAT}, {0}};
    return parse_binary(P, parse_math2, ops);
}

static struct tn *parse_math1(struct parser *P)
{
    static const struct binop_tok ops[] = {
        {TK_OP, "+", TN_BINOP, OP_ADD},
        {TK_OP, "-", TN_BINOP, OP_SUB},
        {0},
    };
    return parse_binary(P, parse_concat, ops);
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
    static const struct binop_tok ops[] = {{TK_NAME, "and", TN_AND, 0}, {0}};
    return parse_binary(P, parse_not, ops);
}

static struct tn *parse_or(struct parser *P)
{
    static const struct binop_tok ops[] = {{TK_NAME, "or", TN_OR, 0}, {0}};
    return parse_binary(P, parse_and, ops);
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
        tmpl_perr(P, t->line, "expected a name, got %s", tok_desc(t, buf, sizeof(buf)));
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
        tmpl_perr(P, cur(P)->line, "expected 'in' in for loop");
        return NULL;
    }
    /* jinja2 parses the iterable without a conditional expression: `if` filters */
    if (!(n->a = parse_or(P)))
        return NULL;
    if (accept_name(P, "if") && !(n->e = parse_expr(P)))
        return NULL;
    if (is_name(P, "recursive")) {
        tmpl_perr(P, cur(P)->line, "unsupported construct: recursive for loop");
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
            tmpl_perr(P, a->line, "expected an attribute name after '.'");
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
        tmpl_perr(P, line, "a block set needs a plain name");
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
        tmpl_perr(P, nt->line, "expected a macro name");
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
            tmpl_perr(P, cur(P)->line, "too many macro parameters (limit %d)", TMPL_MAX_ARGS);
            return NULL;
        }
        struct tk *pt = cur(P);
        if (pt->kind != TK_NAME) {
            tmpl_perr(P, pt->line, "expected a parameter name");
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
        tmpl_perr(P, line, "expected a statement name, got %s", tok_desc(t, buf, sizeof(buf)));
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
            tmpl_perr(P, line, "'%s' outside of a loop", brk ? "break" : "continue");
            return NULL;
        }
        struct tn *n = node(P, brk ? TN_BREAK : TN_CONTINUE, line);
        return n && end_block(P) == 0 ? n : NULL;
    }
    tmpl_perr(P, line, "unsupported construct: '%.*s' tag", (int)(t->len > 40 ? 40 : t->len), t->s);
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
                tmpl_perr(P, open_line, "unclosed '%s' (missing '{%% %s %%}')", opener, ends[0] ? ends[0] : "");
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
                tmpl_perr(P, nt->line, "unexpected '%.*s'", (int)(nt->len > 40 ? 40 : nt->len), nt->s);
                break;
            }
            if (tok_is(nt, TK_NAME, "else") || tok_is(nt, TK_NAME, "elif")) {
                tmpl_perr(P, nt->line, "unexpected '%.*s'", (int)nt->len, nt->s);
                break;
            }
            n = parse_statement(P);
        } else {
            char buf[64];
            tmpl_perr(P, t->line, "unexpected %s", tok_desc(t, buf, sizeof(buf)));
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
    if (tmpl_lex(&P) < 0)
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

int tmpl_render_spans(const struct tmpl *t, const struct tmpl_params *params, char **out,
                      size_t *out_len, struct tmpl_span **spans, size_t *n_spans, char *err,
                      size_t err_len)
{
    if (out)
        *out = NULL;
    if (out_len)
        *out_len = 0;
    if (spans)
        *spans = NULL;
    if (n_spans)
        *n_spans = 0;
    if (err && err_len)
        err[0] = 0;
    if (!t || !params || !out || (params->n_messages && !params->messages)) {
        if (err && err_len)
            snprintf(err, err_len, "invalid argument");
        return TMPL_EINVAL;
    }
    return tmpl_eval(t->body, params, out, out_len, spans, n_spans, err, err_len);
}

int tmpl_render(const struct tmpl *t, const struct tmpl_params *params, char **out,
                size_t *out_len, char *err, size_t err_len)
{
    return tmpl_render_spans(t, params, out, out_len, NULL, NULL, err, err_len);
}
