/* template_lib.h - private to the template interpreter: the render context shared by
 * template_eval.c (statements, expressions) and template_lib.c (value operations, * filters, tests, methods, globals). Not part of the model/ interface. */
#ifndef CHATD_TEMPLATE_LIB_H
#define CHATD_TEMPLATE_LIB_H

#include "strbuf.h"
#include "template_int.h"

#define TL_MAX_ARGS 32


struct scope;

/* Spans of an output buffer that hold message text (template_taint.c). */
struct tl_spans {
    struct tmpl_span *v;
    size_t n;
    size_t cap;
};

struct rctx {
    struct tmpl_arena arena;
    const struct tmpl_params *params;
    struct scope *root;
    struct strbuf *out;
    struct tl_spans *out_spans; /* the message-text spans of *out */
    size_t max_out;
    uint64_t steps;
    uint64_t max_steps;
    uint64_t iters;
    uint64_t max_iters;
    int depth;
    uintptr_t stack_top;  /* address of tmpl_eval's frame */
    size_t max_stack;
    int line;           /* template line being evaluated, for errors raised deep down */
    int err_code;
    char *err;
    size_t err_len;
};

struct targs {
    int npos;
    int nkw;
    struct tv pos[TL_MAX_ARGS];
    struct tv kwname[TL_MAX_ARGS];
    struct tv kw[TL_MAX_ARGS];
};

enum fn_kind { FN_GLOBAL, FN_MACRO, FN_METHOD, FN_LOOP_CYCLE };

struct tv_func {
    enum fn_kind kind;
    int id;              /* global or method index */
    struct tv self;      /* FN_METHOD: the bound object */
    const struct tn *macro;
};

struct tv_loop {
    struct tv_list *items;
    size_t index0;
};

/* errors: each sets R->err_code and the message once, and returns the code */
int tl_fail(struct rctx *R, int code, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int tl_nomem(struct rctx *R, int line);
int tl_undefined(struct rctx *R, int line, struct tv v);

void *tl_alloc(struct rctx *R, size_t n);
int tl_sbuf_put(struct rctx *R, struct strbuf *b, const char *s, size_t n, int line);
/* Copies b into the arena as a string value *out and empties b (keeps its storage). */
int tl_sbuf_take(struct rctx *R, struct strbuf *b, struct tv *out, int line);
/* Ends a function that built its result in b: when rc (the status so far) is not an
 * error, *out becomes b's text; frees b. Returns 0 or the render error code. */
int tl_sbuf_finish(struct rctx *R, struct strbuf *b, int rc, struct tv *out, int line);
int tl_count_iteration(struct rctx *R, int line);
int tl_call_macro(struct rctx *R, const struct tn *m, struct targs *a, struct tv *out, int line);
int tl_apply_filter_chain(struct rctx *R, const struct tn *f, struct tv v, struct tv *out);

/* values */
struct tv tv_bool(bool b);
struct tv tv_int(int64_t i);
bool tv_truthy(struct tv v);
bool tv_str_eq(struct tv s, const char *p, size_t n);
struct tv_list *tl_list_new(struct rctx *R, size_t cap, int line);
int tl_dict_new(struct rctx *R, struct tv *out, enum tv_kind kind, int line);
int tl_dict_set(struct rctx *R, struct tv d, struct tv key, struct tv val, int line);
/* Sets key to a C string (NULL: none) on *d, creating the dict first when `create`. */
int tl_dict_set_cstr(struct rctx *R, struct tv *d, bool create, const char *key, const char *val);

/* operations */
int tl_getattr(struct rctx *R, struct tv obj, struct tv name, struct tv *out, int line);
int tl_getitem(struct rctx *R, struct tv obj, struct tv key, struct tv *out, int line);
int tl_slice(struct rctx *R, struct tv obj, const struct tv parts[3], struct tv *out, int line);
int tl_call(struct rctx *R, struct tv fn, struct targs *a, struct tv *out, int line);
int tl_filter(struct rctx *R, int idx, struct tv v, struct targs *a, struct tv *out, int line);
int tl_test(struct rctx *R, int idx, struct tv v, struct targs *a, bool *out, int line);
int tl_binop(struct rctx *R, int op, struct tv a, struct tv b, struct tv *out, int line);
int tl_unary(struct rctx *R, bool neg, struct tv a, struct tv *out, int line);
int tl_compare(struct rctx *R, int op, struct tv a, struct tv b, bool *out, int line);
/* The items a for loop visits, as a list value (strings: characters; dicts: keys). */
int tl_iterable(struct rctx *R, struct tv v, struct tv *out, int line);
/* Looks a global (range, namespace, raise_exception, ...) up by name. */
bool tl_global(struct rctx *R, struct tv name, struct tv *out);
/* Appends Python's str(v) to b. */
int tl_write_str(struct rctx *R, struct strbuf *b, struct tv v, int line);

/* ---- shared by template_value.c and template_lib.c ---- */
struct tl_json_opts {
    bool ascii;
    bool sort_keys;
    int indent;          /* -1: none */
    struct tv item_sep;  /* strings */
    struct tv key_sep;
};

bool tv_is_cstr(struct tv s, const char *p);
const char *tv_type_name(struct tv v);
bool tv_is_num(struct tv v);
bool tv_is_intlike(struct tv v);
int64_t tv_as_int(struct tv v);
double tv_as_float(struct tv v);
bool tv_is_seq(struct tv v);
size_t tl_u8_count(const char *s, size_t n);
size_t tl_space_len(const char *p, size_t n);
int tl_list_value(struct rctx *R, size_t cap, enum tv_kind kind, struct tv *out, int line);
bool tv_equal(struct tv a, struct tv b);
struct tv *tl_dict_find(struct tv_dict *d, struct tv key);
int tl_to_str(struct rctx *R, struct tv v, struct tv *out, int line);
int tl_write_json(struct rctx *R, struct strbuf *b, struct tv v, const struct tl_json_opts *o, int level, int line);
int tl_order(struct rctx *R, struct tv a, struct tv b, int *out, int line, int depth);
int tl_contains(struct rctx *R, struct tv container, struct tv item, bool *out, int line);
int tl_concat(struct rctx *R, struct tv a, struct tv b, struct tv *out, int line);
int tl_repeat(struct rctx *R, struct tv seq, int64_t times, struct tv *out, int line);
struct tv *tl_arg(struct targs *a, int i, const char *name);
int tl_want_str(struct rctx *R, struct tv *v, const char *what, int line);
int tl_want_int(struct rctx *R, struct tv *v, const char *what, int line);
int tl_str_new(struct rctx *R, size_t n, char **p, int line);
/* Whether a code point has case (an upper or lower form of its own, or U+00DF). */
bool tl_is_cased(uint32_t c);
uint32_t tl_u8_decode(const char *s, size_t l);
int tl_case_map(struct rctx *R, struct tv s, int mode, struct tv *out, int line);
struct tv tl_strip(struct tv s, const struct tv *chars, bool left, bool right);
int tl_split(struct rctx *R, struct tv s, struct tv *sep, int64_t maxsplit, bool from_right, struct tv *out, int line);
int tl_replace(struct rctx *R, struct tv s, struct tv old, struct tv new, int64_t count, struct tv *out, int line);
int tl_join(struct rctx *R, struct tv items, struct tv sep, struct tv *out, int line);
struct tv tv_float(double f);
/* markupsafe's escape(): & < > " ' as entities, the result a markup string. */
int tl_escape(struct rctx *R, struct tv v, struct tv *out, int line);
/* JSON text as a template value (template_json.c); `what` names it in the error. */
int tl_json_value(struct rctx *R, const char *json, const char *what, struct tv *out);
struct tv tv_none(void);
struct tv tv_undef(void);

/* ---- message text through the interpreter (template_taint.c) ----
 * A string's taint lists the byte ranges, relative to the string, that came from a
 * message's text; NULL is none. Values keep their taint when copied; concatenation
 * keeps both sides' ranges; any other operation that makes a string (or a container of
 * strings) from tainted input taints its result whole. */
struct tl_taint {
    size_t n;
    struct tmpl_span r[]; /* sorted, disjoint; an end may exceed the length (whole) */
};

/* The taint "every byte". */
extern const struct tl_taint *const tl_taint_all;
/* Whether any string inside v (lists, dicts, namespaces; bounded depth) is tainted. */
bool tl_has_taint(struct tv v);
/* Taints whole every untainted string inside v (v itself, list items, dict values). */
void tl_taint_whole(struct tv *v);
/* a + b for two strings (OP_ADD, OP_CONCAT): out's taint is a's and b's, b's shifted. */
int tl_taint_concat(struct rctx *R, struct tv a, struct tv b, struct tv *out, int line);
/* Records that out->data[from..to) was written from v: its taint (a string's ranges, a
 * whole range for any other tainted value) becomes spans of the current output. */
int tl_taint_written(struct rctx *R, struct tv v, size_t from, size_t to, int line);
/* The taint of a captured buffer's spans, for the string made from it (NULL: none). */
const struct tl_taint *tl_taint_of_spans(struct rctx *R, const struct tl_spans *sp, int line);

#endif
