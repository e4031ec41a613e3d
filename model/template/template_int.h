/* template_int.h - private to template.c / template_eval.c / template_value.c: the
 * syntax tree the parser builds and the evaluator walks, the value type and the
 * bump arena both use. Not part of the model/ interface. */
#ifndef CHATD_TEMPLATE_INT_H
#define CHATD_TEMPLATE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- arena: bump allocation with a byte cap, freed all at once ---- */

struct tmpl_chunk;

struct tmpl_arena {
    struct tmpl_chunk *head;
    size_t used_bytes;  /* total of chunk sizes */
    size_t cap_bytes;   /* 0: unlimited */
    bool hit_cap;       /* an allocation was refused because of cap_bytes */
};

void *tmpl_arena_alloc(struct tmpl_arena *a, size_t n);
void tmpl_arena_fini(struct tmpl_arena *a);

/* ---- values ---- */

enum tv_kind {
    TV_UNDEF = 0, /* jinja2's lenient Undefined; `name` says what was missing */
    TV_NONE,
    TV_BOOL,
    TV_INT,
    TV_FLOAT,
    TV_STR,
    TV_LIST,
    TV_TUPLE,
    TV_DICT,
    TV_NS,    /* namespace(): the one mutable object */
    TV_LOOP,  /* the `loop` variable of a for */
    TV_FUNC,  /* global function, macro or bound method */
};

struct tv_list;
struct tv_dict;
struct tv_loop;
struct tv_func;
struct tl_taint;

/* A value, passed by copy. Strings are immutable UTF-8 byte ranges (s, len) that may
 * point into the template, the caller's messages or the arena; lists and dicts are
 * immutable once built (the sandbox forbids mutating them); namespaces are mutable. */
struct tv {
    enum tv_kind kind;
    bool gen;               /* TV_LIST made by a lazy filter (select, map, ...): jinja2
                               returns a generator there, which is always true, has no
                               len() and cannot be indexed */
    bool markup;            /* TV_STR from |safe or |escape: markupsafe's Markup, whose `+`
                               escapes a plain string operand */
    size_t len;             /* TV_STR: byte length */
    const struct tl_taint *taint; /* TV_STR: which bytes came from a message's text (the
                               user's or a tool's), or NULL for none (template_taint.c) */
    union {
        bool b;
        int64_t i;
        double f;
        const char *s;      /* TV_STR: bytes; TV_UNDEF: the missing name or NULL */
        struct tv_list *l;  /* TV_LIST, TV_TUPLE */
        struct tv_dict *d;  /* TV_DICT, TV_NS */
        struct tv_loop *loop;
        struct tv_func *fn;
    } u;
};

struct tv_list {
    size_t n;
    struct tv *items;
};

struct tv_dict {
    size_t n;
    size_t cap;
    struct tv *keys;
    struct tv *vals;
};

/* ---- syntax tree ---- */

enum tn_kind {
    /* expressions */
    TN_LIT,     /* val */
    TN_NAME,    /* val: the name (string) */
    TN_ATTR,    /* a.val */
    TN_ITEM,    /* a[b] */
    TN_SLICE,   /* a[b:c:d]; absent parts are NULL */
    TN_CALL,    /* a(args...) args: b (list via next), kwargs are TN_KWARG */
    TN_FILTER,  /* a | op(args in b) */
    TN_TEST,    /* a is [not] op(args in b); neg */
    TN_BINOP,   /* a op b */
    TN_NEG,     /* -a */
    TN_POS,     /* +a */
    TN_NOT,     /* not a */
    TN_AND,
    TN_OR,
    TN_COND,    /* b if a else c */
    TN_COMPARE, /* a, then TN_CMPOP nodes in b (each op, operand a) */
    TN_CMPOP,
    TN_LIST,    /* items in a */
    TN_TUPLE,   /* items in a */
    TN_DICT,    /* TN_PAIR nodes in a (key a, value b) */
    TN_PAIR,
    TN_KWARG,   /* val = name, a = value */
    /* statements */
    TN_TEXT,    /* val */
    TN_OUTPUT,  /* {{ a }} */
    TN_IF,      /* if a: body b else c */
    TN_FOR,     /* for targets(d) in a [if e]: b else c */
    TN_SET,     /* set d = a  (d is TN_NAME, TN_ATTR or TN_TUPLE of names) */
    TN_SETBLOCK,/* set d [| filters in e]: body b */
    TN_MACRO,   /* macro val(params in d as TN_KWARG with default or NULL): body b */
    TN_FILTERBLOCK, /* filter e: body b; e is a TN_FILTER chain on a NULL input */
    TN_BREAK,
    TN_CONTINUE,
};

enum tn_op {
    OP_ADD = 1, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_CONCAT,
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN,
};

struct tn {
    enum tn_kind kind;
    int line;
    int op;         /* enum tn_op, filter or test index */
    bool neg;       /* TN_TEST: is not */
    struct tv val;
    struct tn *a, *b, *c, *d, *e;
    struct tn *next; /* next sibling in an argument list or a statement body */
};

/* ---- filters and tests (template_eval.c); the parser resolves names to indexes ---- */

int tmpl_filter_index(const char *name, size_t len);
int tmpl_test_index(const char *name, size_t len);

/* ---- values helpers shared by the parser (template_eval.c) ---- */

struct tv tv_str(const char *s, size_t len);

/* Walks a parsed body; defined in template_eval.c. spans may be NULL. */
struct tmpl_params;
struct tmpl_span;
int tmpl_eval(const struct tn *body, const struct tmpl_params *p, char **out, size_t *out_len,
              struct tmpl_span **spans, size_t *n_spans, char *err, size_t err_len);

/* ---- lexer and parser state (template_lex.c, template.c) ---- */

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

/* Records the first parse error ("line N: ..."); later ones are ignored. */
void tmpl_perr(struct parser *P, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Lexes P->src into P->toks. Returns 0, or -1 with the error recorded. */
int tmpl_lex(struct parser *P);

#endif
