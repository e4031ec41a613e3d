/* template_eval.c - chat templates: the evaluator. Walks the tree template.c built,
 * with jinja2's semantics (see tests/fixtures/templates/README.md).
 *
 * Values (struct tv, template_int.h) are small and copied; everything they point to
 * that the render creates lives in one arena freed when the render ends, so no value
 * is ever freed on its own. Scopes are a chain: the root scope holds the context
 * (messages, bos_token, ...) and the template's top-level sets; every for-loop
 * iteration and macro call gets a fresh child scope, so a set inside a loop body is
 * forgotten at the end of the iteration, exactly as in jinja2. Namespaces are the
 * only mutable values.
 *
 * Every evaluated node costs one step and every loop iteration one iteration; both,
 * the recursion depth, the arena and the output size are capped, so a hostile
 * template ends with TMPL_ELIMIT instead of exhausting time, stack or memory.
 * The filters, tests, methods and globals are in template_lib.c.
 */
#include "template.h"
#include "template_int.h"
#include "template_lib.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVAL_MAX_DEPTH 400

/* ------------------------------------------------------------------ errors */

int tl_fail(struct rctx *R, int code, int line, const char *fmt, ...)
{
    if (R->err_code)
        return R->err_code;
    R->err_code = code;
    if (line <= 0)
        line = R->line;
    if (!R->err || R->err_len == 0)
        return code;
    int n = 0;
    if (code != TMPL_ERAISE) {
        n = snprintf(R->err, R->err_len, "line %d: ", line);
        if (n < 0 || (size_t)n >= R->err_len)
            return code;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(R->err + n, R->err_len - (size_t)n, fmt, ap);
    va_end(ap);
    return code;
}

int tl_nomem(struct rctx *R, int line)
{
    if (R->arena.hit_cap)
        return tl_fail(R, TMPL_ELIMIT, line, "template used more than %zu bytes of memory",
                       R->arena.cap_bytes);
    return tl_fail(R, TMPL_ENOMEM, line, "out of memory");
}

int tl_undefined(struct rctx *R, int line, struct tv v)
{
    if (v.u.s)
        return tl_fail(R, TMPL_EEVAL, line, "'%.*s' is undefined", (int)(v.len > 80 ? 80 : v.len), v.u.s);
    return tl_fail(R, TMPL_EEVAL, line, "value is undefined");
}

void *tl_alloc(struct rctx *R, size_t n)
{
    return tmpl_arena_alloc(&R->arena, n);
}

/* ------------------------------------------------------------------ output buffers */

int tl_sbuf_put(struct rctx *R, struct strbuf *b, const char *s, size_t n, int line)
{
    if (n == 0)
        return 0;
    if (n > R->max_out || b->len > R->max_out - n)
        return tl_fail(R, TMPL_ELIMIT, line, "output larger than %zu bytes", R->max_out);
    if (strbuf_append(b, s, n) != 0)
        return tl_fail(R, TMPL_ENOMEM, line, "out of memory");
    return 0;
}

int tl_sbuf_take(struct rctx *R, struct strbuf *b, struct tv *out, int line)
{
    char *s = tl_alloc(R, b->len + 1);
    if (!s)
        return tl_nomem(R, line);
    if (b->len)
        memcpy(s, b->data, b->len);
    s[b->len] = 0;
    *out = tv_str(s, b->len);
    b->len = 0;
    return 0;
}

int tl_sbuf_finish(struct rctx *R, struct strbuf *b, int rc, struct tv *out, int line)
{
    if (rc >= 0)
        rc = tl_sbuf_take(R, b, out, line);
    strbuf_free(b);
    return rc < 0 ? R->err_code : 0;
}

/* ------------------------------------------------------------------ scopes */

struct scope {
    struct scope *parent;
    size_t n;
    size_t cap;
    struct tv *names;
    struct tv *vals;
};

static struct tv *scope_find(struct scope *s, const char *name, size_t len)
{
    for (; s; s = s->parent)
        for (size_t i = s->n; i-- > 0;)
            if (s->names[i].len == len && memcmp(s->names[i].u.s, name, len) == 0)
                return &s->vals[i];
    return NULL;
}

static int scope_set(struct rctx *R, struct scope *s, struct tv name, struct tv val, int line)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->names[i].len == name.len && memcmp(s->names[i].u.s, name.u.s, name.len) == 0) {
            s->vals[i] = val;
            return 0;
        }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        struct tv *nn = tl_alloc(R, cap * sizeof(*nn));
        struct tv *nv = tl_alloc(R, cap * sizeof(*nv));
        if (!nn || !nv)
            return tl_nomem(R, line);
        if (s->n) {
            memcpy(nn, s->names, s->n * sizeof(*nn));
            memcpy(nv, s->vals, s->n * sizeof(*nv));
        }
        s->names = nn;
        s->vals = nv;
        s->cap = cap;
    }
    s->names[s->n] = name;
    s->vals[s->n] = val;
    s->n++;
    return 0;
}

/* ------------------------------------------------------------------ evaluation */

static int eval(struct rctx *R, struct scope *S, const struct tn *n, struct tv *out);
static int exec_body(struct rctx *R, struct scope *S, const struct tn *n);

static int step(struct rctx *R, int line)
{
    R->line = line;
    if (++R->steps > R->max_steps)
        return tl_fail(R, TMPL_ELIMIT, line, "template ran for more than %llu steps",
                       (unsigned long long)R->max_steps);
    if (R->depth >= EVAL_MAX_DEPTH)
        return tl_fail(R, TMPL_ELIMIT, line, "template recursion too deep: more than %d levels", EVAL_MAX_DEPTH);
    char here;
    uintptr_t at = (uintptr_t)&here;
    size_t used = at < R->stack_top ? R->stack_top - at : at - R->stack_top;
    if (used > R->max_stack)
        return tl_fail(R, TMPL_ELIMIT, line, "template recursion too deep: more than %zu KiB of stack",
                       R->max_stack >> 10);
    return 0;
}

int tl_count_iteration(struct rctx *R, int line)
{
    if (++R->iters > R->max_iters)
        return tl_fail(R, TMPL_ELIMIT, line, "template loops ran more than %llu iterations",
                       (unsigned long long)R->max_iters);
    return 0;
}

/* Evaluates call arguments into a: positional in order, keywords by name. */
static int eval_args(struct rctx *R, struct scope *S, const struct tn *arg, struct targs *a)
{
    memset(a, 0, sizeof(*a));
    for (; arg; arg = arg->next) {
        int rc;
        if (arg->kind == TN_KWARG) {
            if (a->nkw >= TL_MAX_ARGS)
                return tl_fail(R, TMPL_EEVAL, arg->line, "too many arguments");
            a->kwname[a->nkw] = arg->val;
            rc = eval(R, S, arg->a, &a->kw[a->nkw]);
            a->nkw++;
        } else {
            if (a->npos >= TL_MAX_ARGS)
                return tl_fail(R, TMPL_EEVAL, arg->line, "too many arguments");
            rc = eval(R, S, arg, &a->pos[a->npos]);
            a->npos++;
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Renders a body into a fresh buffer and returns it as a string value. */
static int capture(struct rctx *R, struct scope *S, const struct tn *body, struct tv *out, int line)
{
    struct strbuf buf = {0};
    struct tl_spans spans = {0};
    struct strbuf *saved = R->out;
    struct tl_spans *saved_spans = R->out_spans;
    R->out = &buf;
    R->out_spans = &spans;
    int rc = exec_body(R, S, body);
    R->out = saved;
    R->out_spans = saved_spans;
    if (rc >= 0)
        rc = tl_sbuf_take(R, &buf, out, line);
    if (rc >= 0 && spans.n && !(out->taint = tl_taint_of_spans(R, &spans, line)))
        rc = R->err_code;
    free(buf.data);
    free(spans.v);
    return rc < 0 ? rc : 0;
}

/* Writes v to the output, recording where message text went. */
static int write_out(struct rctx *R, struct tv v, int line)
{
    size_t from = R->out->len;
    int rc = tl_write_str(R, R->out, v, line);
    return rc < 0 ? rc : tl_taint_written(R, v, from, R->out->len, line);
}

static bool makes_text(struct tv v)
{
    return v.kind == TV_STR || v.kind == TV_LIST || v.kind == TV_TUPLE || v.kind == TV_DICT;
}

/* After a call, filter or operator: a string (or container of strings) made from
 * tainted input is tainted whole. */
static void taint_from(struct tv *out, struct tv in, const struct targs *args)
{
    if (!makes_text(*out))
        return;
    bool t = tl_has_taint(in);
    for (int i = 0; args && !t && i < args->npos; i++)
        t = tl_has_taint(args->pos[i]);
    for (int i = 0; args && !t && i < args->nkw; i++)
        t = tl_has_taint(args->kw[i]);
    if (t)
        tl_taint_whole(out);
}

int tl_call_macro(struct rctx *R, const struct tn *m, struct targs *a, struct tv *out, int line)
{
    struct scope *S = tl_alloc(R, sizeof(*S));
    if (!S)
        return tl_nomem(R, line);
    memset(S, 0, sizeof(*S));
    S->parent = R->root;
    int n_params = 0;
    for (const struct tn *p = m->d; p; p = p->next)
        n_params++;
    if (a->npos > n_params)
        return tl_fail(R, TMPL_EEVAL, line, "macro '%.*s' takes not more than %d argument(s)",
                       (int)m->val.len, m->val.u.s, n_params);
    for (int k = 0; k < a->nkw; k++) {
        bool found = false;
        for (const struct tn *p = m->d; p; p = p->next)
            found |= tv_str_eq(p->val, a->kwname[k].u.s, a->kwname[k].len);
        if (!found)
            return tl_fail(R, TMPL_EEVAL, line, "macro '%.*s' has no parameter '%.*s'",
                           (int)m->val.len, m->val.u.s, (int)a->kwname[k].len, a->kwname[k].u.s);
    }
    int i = 0;
    for (const struct tn *p = m->d; p; p = p->next, i++) {
        struct tv v = {.kind = TV_UNDEF, .u.s = p->val.u.s, .len = p->val.len};
        bool have = false;
        if (i < a->npos) {
            v = a->pos[i];
            have = true;
        }
        for (int k = 0; k < a->nkw; k++)
            if (tv_str_eq(p->val, a->kwname[k].u.s, a->kwname[k].len)) {
                if (have)
                    return tl_fail(R, TMPL_EEVAL, line, "macro '%.*s' got multiple values for '%.*s'",
                                   (int)m->val.len, m->val.u.s, (int)p->val.len, p->val.u.s);
                v = a->kw[k];
                have = true;
            }
        if (!have && p->a) {
            int rc = eval(R, S, p->a, &v);
            if (rc < 0)
                return rc;
        }
        if (scope_set(R, S, p->val, v, line) < 0)
            return R->err_code;
    }
    R->depth++;
    int rc = capture(R, S, m->b, out, line);
    R->depth--;
    return rc;
}

static int eval_name(struct rctx *R, struct scope *S, const struct tn *n, struct tv *out)
{
    struct tv *v = scope_find(S, n->val.u.s, n->val.len);
    if (v) {
        *out = *v;
        return 0;
    }
    if (tl_global(R, n->val, out))
        return 0;
    *out = (struct tv){.kind = TV_UNDEF, .u.s = n->val.u.s, .len = n->val.len};
    return 0;
}

static int eval_compare(struct rctx *R, struct scope *S, const struct tn *n, struct tv *out)
{
    struct tv left;
    int rc = eval(R, S, n->a, &left);
    if (rc < 0)
        return rc;
    for (const struct tn *c = n->b; c; c = c->next) {
        struct tv right;
        if ((rc = eval(R, S, c->a, &right)) < 0)
            return rc;
        bool r;
        if ((rc = tl_compare(R, c->op, left, right, &r, c->line)) < 0)
            return rc;
        if (!r) {
            *out = tv_bool(false);
            return 0;
        }
        left = right;
    }
    *out = tv_bool(true);
    return 0;
}

static int eval_inner(struct rctx *R, struct scope *S, const struct tn *n, struct tv *out)
{
    struct tv a, b;
    struct targs args;
    int rc;
    switch (n->kind) {
    case TN_LIT:
        *out = n->val;
        return 0;
    case TN_NAME:
        return eval_name(R, S, n, out);
    case TN_ATTR:
        if ((rc = eval(R, S, n->a, &a)) < 0)
            return rc;
        return tl_getattr(R, a, n->val, out, n->line);
    case TN_ITEM:
        if ((rc = eval(R, S, n->a, &a)) < 0 || (rc = eval(R, S, n->b, &b)) < 0 ||
            (rc = tl_getitem(R, a, b, out, n->line)) < 0)
            return rc;
        if (a.kind == TV_STR && a.taint) /* a character of message text */
            taint_from(out, a, NULL);
        return 0;
    case TN_SLICE: {
        struct tv parts[3];
        const struct tn *pn[3] = {n->b, n->c, n->d};
        if ((rc = eval(R, S, n->a, &a)) < 0)
            return rc;
        for (int i = 0; i < 3; i++) {
            parts[i] = (struct tv){.kind = TV_NONE};
            if (pn[i] && (rc = eval(R, S, pn[i], &parts[i])) < 0)
                return rc;
        }
        if ((rc = tl_slice(R, a, parts, out, n->line)) < 0)
            return rc;
        if (a.kind == TV_STR && a.taint)
            taint_from(out, a, NULL);
        return 0;
    }
    case TN_CALL:
        if ((rc = eval(R, S, n->a, &a)) < 0 || (rc = eval_args(R, S, n->b, &args)) < 0 ||
            (rc = tl_call(R, a, &args, out, n->line)) < 0)
            return rc;
        /* a macro's output knows its own spans (capture); anything else is made from
         * its object and arguments */
        if (!(a.kind == TV_FUNC && a.u.fn->kind == FN_MACRO))
            taint_from(out, a, &args);
        return 0;
    case TN_FILTER:
        if ((rc = eval(R, S, n->a, &a)) < 0 || (rc = eval_args(R, S, n->b, &args)) < 0 ||
            (rc = tl_filter(R, n->op, a, &args, out, n->line)) < 0)
            return rc;
        taint_from(out, a, &args);
        return 0;
    case TN_TEST: {
        bool r;
        if ((rc = eval(R, S, n->a, &a)) < 0 || (rc = eval_args(R, S, n->b, &args)) < 0)
            return rc;
        if ((rc = tl_test(R, n->op, a, &args, &r, n->line)) < 0)
            return rc;
        *out = tv_bool(n->neg ? !r : r);
        return 0;
    }
    case TN_BINOP:
        if ((rc = eval(R, S, n->a, &a)) < 0 || (rc = eval(R, S, n->b, &b)) < 0)
            return rc;
        /* two strings joined keep each side's message text exact (Markup + str escapes
         * the str: tl_binop, then tainted whole) */
        if ((n->op == OP_ADD || n->op == OP_CONCAT) && a.kind == TV_STR && b.kind == TV_STR &&
            (a.taint || b.taint) && (n->op == OP_CONCAT || a.markup == b.markup)) {
            if ((rc = tl_taint_concat(R, a, b, out, n->line)) < 0)
                return rc;
            out->markup = n->op == OP_ADD && a.markup;
            return 0;
        }
        if ((rc = tl_binop(R, n->op, a, b, out, n->line)) < 0)
            return rc;
        args = (struct targs){.npos = 1, .pos = {b}};
        taint_from(out, a, &args);
        return 0;
    case TN_NEG:
    case TN_POS:
        if ((rc = eval(R, S, n->a, &a)) < 0)
            return rc;
        return tl_unary(R, n->kind == TN_NEG, a, out, n->line);
    case TN_NOT:
        if ((rc = eval(R, S, n->a, &a)) < 0)
            return rc;
        *out = tv_bool(!tv_truthy(a));
        return 0;
    case TN_AND:
    case TN_OR:
        if ((rc = eval(R, S, n->a, &a)) < 0)
            return rc;
        if (tv_truthy(a) == (n->kind == TN_OR)) {
            *out = a;
            return 0;
        }
        return eval(R, S, n->b, out);
    case TN_COND:
        if ((rc = eval(R, S, n->a, &a)) < 0)
            return rc;
        if (tv_truthy(a))
            return eval(R, S, n->b, out);
        if (n->c)
            return eval(R, S, n->c, out);
        *out = (struct tv){.kind = TV_UNDEF};
        return 0;
    case TN_COMPARE:
        return eval_compare(R, S, n, out);
    case TN_LIST:
    case TN_TUPLE: {
        size_t count = 0;
        for (const struct tn *i = n->a; i; i = i->next)
            count++;
        struct tv_list *l = tl_list_new(R, count, n->line);
        if (!l)
            return R->err_code;
        for (const struct tn *i = n->a; i; i = i->next)
            if ((rc = eval(R, S, i, &l->items[l->n++])) < 0)
                return rc;
        *out = (struct tv){.kind = n->kind == TN_LIST ? TV_LIST : TV_TUPLE, .u.l = l};
        return 0;
    }
    case TN_DICT: {
        struct tv d;
        if (tl_dict_new(R, &d, TV_DICT, n->line) < 0)
            return R->err_code;
        for (const struct tn *p = n->a; p; p = p->next) {
            if ((rc = eval(R, S, p->a, &a)) < 0 || (rc = eval(R, S, p->b, &b)) < 0)
                return rc;
            if ((rc = tl_dict_set(R, d, a, b, p->line)) < 0)
                return rc;
        }
        *out = d;
        return 0;
    }
    default:
        return tl_fail(R, TMPL_EEVAL, n->line, "internal error: bad expression node %d", (int)n->kind);
    }
}

static int eval(struct rctx *R, struct scope *S, const struct tn *n, struct tv *out)
{
    int rc = step(R, n->line);
    if (rc < 0)
        return rc;
    R->depth++;
    rc = eval_inner(R, S, n, out);
    R->depth--;
    return rc;
}

/* Callback for filters that evaluate a loop condition or a sub-filter: none here. */

/* ------------------------------------------------------------------ statements */

enum { FLOW_NORMAL = 0, FLOW_BREAK = 1, FLOW_CONTINUE = 2 };

static int assign(struct rctx *R, struct scope *S, const struct tn *target, struct tv v, int line)
{
    if (target->kind == TN_NAME)
        return scope_set(R, S, target->val, v, line);
    if (target->kind == TN_ATTR) {
        struct tv ns;
        int rc = eval(R, S, target->a, &ns);
        if (rc < 0)
            return rc;
        if (ns.kind != TV_NS)
            return tl_fail(R, TMPL_EEVAL, line, "cannot assign attribute on non-namespace object");
        return tl_dict_set(R, ns, target->val, v, line);
    }
    /* tuple of names: unpack */
    size_t count = 0;
    for (const struct tn *t = target->a; t; t = t->next)
        count++;
    if ((v.kind != TV_LIST && v.kind != TV_TUPLE) || v.u.l->n != count)
        return tl_fail(R, TMPL_EEVAL, line, "cannot unpack value into %zu names", count);
    size_t i = 0;
    for (const struct tn *t = target->a; t; t = t->next, i++) {
        int rc = assign(R, S, t, v.u.l->items[i], line);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Binds a for loop's target names to one item (unpacking when there are several). */
static int bind_targets(struct rctx *R, struct scope *S, const struct tn *targets, struct tv item, int line)
{
    if (!targets->next)
        return scope_set(R, S, targets->val, item, line);
    size_t count = 0;
    for (const struct tn *t = targets; t; t = t->next)
        count++;
    struct tv_list *l = NULL;
    if (item.kind == TV_LIST || item.kind == TV_TUPLE)
        l = item.u.l;
    else if (item.kind == TV_STR) {
        struct tv lst;
        if (tl_iterable(R, item, &lst, line) < 0)
            return R->err_code;
        l = lst.u.l;
    }
    if (!l || l->n != count)
        return tl_fail(R, TMPL_EEVAL, line, "cannot unpack loop item into %zu names", count);
    size_t i = 0;
    for (const struct tn *t = targets; t; t = t->next, i++)
        if (scope_set(R, S, t->val, l->items[i], line) < 0)
            return R->err_code;
    return 0;
}

static int exec_for(struct rctx *R, struct scope *S, const struct tn *n)
{
    struct tv seq;
    int rc = eval(R, S, n->a, &seq);
    if (rc < 0)
        return rc;
    struct tv items;
    if ((rc = tl_iterable(R, seq, &items, n->line)) < 0)
        return rc;
    struct scope *it = tl_alloc(R, sizeof(*it));
    if (!it)
        return tl_nomem(R, n->line);
    memset(it, 0, sizeof(*it));
    it->parent = S;
    struct tv_list *src = items.u.l;
    if (n->e) {
        /* `for x in xs if cond`: filter first, so loop.* counts kept items only */
        struct tv_list *kept = tl_list_new(R, src->n, n->line);
        if (!kept)
            return R->err_code;
        for (size_t i = 0; i < src->n; i++) {
            if ((rc = tl_count_iteration(R, n->line)) < 0)
                return rc;
            it->n = 0;
            if ((rc = bind_targets(R, it, n->d, src->items[i], n->line)) < 0)
                return rc;
            struct tv c;
            if ((rc = eval(R, it, n->e, &c)) < 0)
                return rc;
            if (tv_truthy(c))
                kept->items[kept->n++] = src->items[i];
        }
        src = kept;
    }
    struct tv_loop *loop = tl_alloc(R, sizeof(*loop));
    if (!loop)
        return tl_nomem(R, n->line);
    loop->items = src;
    struct tv lv = {.kind = TV_LOOP, .u.loop = loop};
    static const struct tv loop_name = {.kind = TV_STR, .len = 4, .u.s = "loop"};
    /* jinja2 runs the else block unless some iteration got to the end of the body:
     * an iteration left by break or continue does not count */
    bool completed = false;
    for (size_t i = 0; i < src->n; i++) {
        if ((rc = tl_count_iteration(R, n->line)) < 0)
            return rc;
        loop->index0 = i;
        it->n = 0;
        if ((rc = scope_set(R, it, loop_name, lv, n->line)) < 0 ||
            (rc = bind_targets(R, it, n->d, src->items[i], n->line)) < 0)
            return rc;
        rc = exec_body(R, it, n->b);
        if (rc < 0)
            return rc;
        if (rc == FLOW_NORMAL)
            completed = true;
        if (rc == FLOW_BREAK)
            break;
    }
    if (!completed && n->c) {
        it->n = 0; /* the else block sees the enclosing scope, not this loop */
        return exec_body(R, it, n->c); /* a break here belongs to an outer loop */
    }
    return FLOW_NORMAL;
}

/* Set-block and filter-block bodies run in their own scope, as in jinja2: what they
 * set is gone afterwards. */
static int capture_scoped(struct rctx *R, struct scope *S, const struct tn *body, struct tv *out, int line)
{
    struct scope *inner = tl_alloc(R, sizeof(*inner));
    if (!inner)
        return tl_nomem(R, line);
    memset(inner, 0, sizeof(*inner));
    inner->parent = S;
    return capture(R, inner, body, out, line);
}

static int exec_stmt(struct rctx *R, struct scope *S, const struct tn *n)
{
    struct tv v;
    int rc;
    switch (n->kind) {
    case TN_TEXT:
        return tl_sbuf_put(R, R->out, n->val.u.s, n->val.len, n->line);
    case TN_OUTPUT:
        if ((rc = eval(R, S, n->a, &v)) < 0)
            return rc;
        return write_out(R, v, n->line);
    case TN_IF:
        if ((rc = eval(R, S, n->a, &v)) < 0)
            return rc;
        return exec_body(R, S, tv_truthy(v) ? n->b : n->c);
    case TN_FOR:
        return exec_for(R, S, n);
    case TN_SET:
        if ((rc = eval(R, S, n->a, &v)) < 0)
            return rc;
        return assign(R, S, n->d, v, n->line);
    case TN_SETBLOCK:
        if ((rc = capture_scoped(R, S, n->b, &v, n->line)) < 0)
            return rc;
        if (n->e && (rc = tl_apply_filter_chain(R, n->e, v, &v)) < 0)
            return rc;
        return assign(R, S, n->d, v, n->line);
    case TN_FILTERBLOCK:
        if ((rc = capture_scoped(R, S, n->b, &v, n->line)) < 0)
            return rc;
        if ((rc = tl_apply_filter_chain(R, n->e, v, &v)) < 0)
            return rc;
        return write_out(R, v, n->line);
    case TN_MACRO: {
        struct tv_func *f = tl_alloc(R, sizeof(*f));
        if (!f)
            return tl_nomem(R, n->line);
        memset(f, 0, sizeof(*f));
        f->kind = FN_MACRO;
        f->macro = n;
        v = (struct tv){.kind = TV_FUNC, .u.fn = f};
        return scope_set(R, S, n->val, v, n->line);
    }
    case TN_BREAK:
        return FLOW_BREAK;
    case TN_CONTINUE:
        return FLOW_CONTINUE;
    default:
        return tl_fail(R, TMPL_EEVAL, n->line, "internal error: bad statement node %d", (int)n->kind);
    }
}

/* Runs statements in order; returns FLOW_BREAK / FLOW_CONTINUE when one of them (or
 * a nested if) hit a loop control, so the enclosing for can act on it. */
static int exec_body(struct rctx *R, struct scope *S, const struct tn *n)
{
    for (; n; n = n->next) {
        int rc = step(R, n->line);
        if (rc < 0)
            return rc;
        R->depth++;
        rc = exec_stmt(R, S, n);
        R->depth--;
        if (rc != 0)
            return rc;
    }
    return FLOW_NORMAL;
}

/* Applies a parsed filter chain (TN_FILTER nodes whose innermost input is NULL) to v. */
int tl_apply_filter_chain(struct rctx *R, const struct tn *f, struct tv v, struct tv *out)
{
    if (!f) {
        *out = v;
        return 0;
    }
    struct tv in;
    int rc = tl_apply_filter_chain(R, f->a, v, &in);
    if (rc < 0)
        return rc;
    struct targs args;
    if ((rc = eval_args(R, R->root, f->b, &args)) < 0 ||
        (rc = tl_filter(R, f->op, in, &args, out, f->line)) < 0)
        return rc;
    taint_from(out, in, &args);
    return 0;
}

/* ------------------------------------------------------------------ entry */

/* A message's text as the template sees it: tainted whole (template_taint.c). */
static struct tv message_text(const char *s)
{
    if (!s)
        return (struct tv){.kind = TV_NONE};
    struct tv v = tv_str(s, strlen(s));
    v.taint = tl_taint_all;
    return v;
}

/* A message's tool fields: its tool calls (JSON) and a tool result's id and name. */
static int bind_tool_fields(struct rctx *R, const struct tmpl_message *m, struct tv d)
{
    struct tv calls;
    if (m->tool_calls_json && (tl_json_value(R, m->tool_calls_json, "tool_calls", &calls) < 0 ||
                               tl_dict_set(R, d, tv_str("tool_calls", 10), calls, 1) < 0))
        return R->err_code;
    if (m->tool_call_id && tl_dict_set_cstr(R, &d, false, "tool_call_id", m->tool_call_id) < 0)
        return R->err_code;
    if (m->name && tl_dict_set_cstr(R, &d, false, "name", m->name) < 0)
        return R->err_code;
    return 0;
}

static int bind_context(struct rctx *R, const struct tmpl_params *p)
{
    struct tv_list *msgs = tl_list_new(R, p->n_messages, 1);
    if (!msgs)
        return R->err_code;
    for (size_t i = 0; i < p->n_messages; i++) {
        const struct tmpl_message *m = &p->messages[i];
        struct tv d;
        if (tl_dict_set_cstr(R, &d, true, "role", m->role) < 0 ||
            tl_dict_set(R, d, tv_str("content", 7), message_text(m->content), 1) < 0)
            return R->err_code;
        if (m->reasoning_content &&
            tl_dict_set(R, d, tv_str("reasoning_content", 17), message_text(m->reasoning_content), 1) < 0)
            return R->err_code;
        if (bind_tool_fields(R, m, d) < 0)
            return R->err_code;
        msgs->items[msgs->n++] = d;
    }
    struct tv tools;
    if (p->tools_json && (tl_json_value(R, p->tools_json, "tools", &tools) < 0 ||
                          scope_set(R, R->root, tv_str("tools", 5), tools, 1) < 0))
        return R->err_code;
    struct tv v = {.kind = TV_LIST, .u.l = msgs};
    const char *bos = p->bos_token ? p->bos_token : "";
    const char *eos = p->eos_token ? p->eos_token : "";
    if (scope_set(R, R->root, tv_str("messages", 8), v, 1) < 0 ||
        scope_set(R, R->root, tv_str("add_generation_prompt", 21), tv_bool(p->add_generation_prompt), 1) < 0 ||
        scope_set(R, R->root, tv_str("bos_token", 9), tv_str(bos, strlen(bos)), 1) < 0 ||
        scope_set(R, R->root, tv_str("eos_token", 9), tv_str(eos, strlen(eos)), 1) < 0)
        return R->err_code;
    return 0;
}

int tmpl_eval(const struct tn *body, const struct tmpl_params *p, char **out, size_t *out_len,
              struct tmpl_span **spans, size_t *n_spans, char *err, size_t err_len)
{
    struct rctx R;
    memset(&R, 0, sizeof(R));
    R.params = p;
    R.err = err;
    R.err_len = err_len;
    R.max_out = p->max_output_bytes ? p->max_output_bytes : (size_t)32 << 20;
    R.arena.cap_bytes = p->max_memory_bytes ? p->max_memory_bytes : (size_t)64 << 20;
    R.max_steps = p->max_steps ? p->max_steps : 10000000u;
    R.max_iters = p->max_loop_iterations ? p->max_loop_iterations : 1000000u;
    R.max_stack = p->max_stack_bytes ? p->max_stack_bytes : TMPL_DEFAULT_STACK;
    R.stack_top = (uintptr_t)&R;
    struct scope root;
    memset(&root, 0, sizeof(root));
    R.root = &root;
    struct strbuf buf = {0};
    struct tl_spans out_spans = {0};
    R.out = &buf;
    R.out_spans = &out_spans;
    int rc = bind_context(&R, p);
    if (rc >= 0)
        rc = exec_body(&R, &root, body);
    if (rc >= 0 && tl_sbuf_put(&R, &buf, "", 0, 1) >= 0 && !buf.data) {
        buf.data = malloc(1);
        if (buf.data)
            buf.data[0] = 0;
        else
            rc = tl_fail(&R, TMPL_ENOMEM, 1, "out of memory");
    }
    tmpl_arena_fini(&R.arena);
    if (rc < 0 || R.err_code) {
        free(buf.data);
        free(out_spans.v);
        return R.err_code ? R.err_code : rc;
    }
    *out = buf.data;
    if (out_len)
        *out_len = buf.len;
    if (spans) {
        *spans = out_spans.v;
        *n_spans = out_spans.n;
    } else {
        free(out_spans.v);
    }
    return 0;
}
