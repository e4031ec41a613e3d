/* template_taint.c - chat templates: which output bytes came from message text.
 *
 * Message contents enter the render tainted whole. Strings carry their taint as a list
 * of byte ranges; writing a value to the output turns its ranges into spans of the
 * output (tmpl_render_spans), which the prompt's tokenizer reads as plain text, so a
 * user cannot write a control token whatever the template does with the text. The
 * rules err on the side of taint: only concatenation keeps exact ranges (templates build
 * `'<|im_start|>' + role + '\n' + content + '<|im_end|>'` that way, and the control
 * tokens around the content must stay control tokens); every other operation that
 * makes a string from tainted input taints its result whole. */
#include "template.h"
#include "template_lib.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TAINT_SCAN_DEPTH 32 /* deeper values (or a namespace holding itself) count as tainted */

static const struct {
    size_t n;
    struct tmpl_span r[1];
} all = {1, {{0, SIZE_MAX}}};

const struct tl_taint *const tl_taint_all = (const struct tl_taint *)&all;

static bool scan(struct tv v, int depth)
{
    if (depth > TAINT_SCAN_DEPTH)
        return true;
    switch (v.kind) {
    case TV_STR:
        return v.taint != NULL;
    case TV_LIST:
    case TV_TUPLE:
        for (size_t i = 0; i < v.u.l->n; i++)
            if (scan(v.u.l->items[i], depth + 1))
                return true;
        return false;
    case TV_DICT:
    case TV_NS:
        for (size_t i = 0; i < v.u.d->n; i++)
            if (scan(v.u.d->keys[i], depth + 1) || scan(v.u.d->vals[i], depth + 1))
                return true;
        return false;
    case TV_FUNC: /* a bound method: its object */
        return v.u.fn->kind == FN_METHOD && scan(v.u.fn->self, depth + 1);
    default:
        return false;
    }
}

bool tl_has_taint(struct tv v)
{
    return scan(v, 0);
}

static void mark(struct tv *v, int depth)
{
    if (depth > TAINT_SCAN_DEPTH)
        return;
    switch (v->kind) {
    case TV_STR:
        if (!v->taint)
            v->taint = tl_taint_all;
        break;
    case TV_LIST:
    case TV_TUPLE:
        for (size_t i = 0; i < v->u.l->n; i++)
            mark(&v->u.l->items[i], depth + 1);
        break;
    case TV_DICT:
    case TV_NS:
        for (size_t i = 0; i < v->u.d->n; i++) {
            mark(&v->u.d->keys[i], depth + 1);
            mark(&v->u.d->vals[i], depth + 1);
        }
        break;
    default:
        break;
    }
}

void tl_taint_whole(struct tv *v)
{
    mark(v, 0);
}

/* Appends [a, b) (clamped to len, shifted by `at`) to list, merging with the last. */
static void add_range(struct tmpl_span *list, size_t *n, size_t a, size_t b, size_t len,
                      size_t at)
{
    if (b > len)
        b = len;
    if (a >= b)
        return;
    if (*n && list[*n - 1].end >= at + a) {
        if (list[*n - 1].end < at + b)
            list[*n - 1].end = at + b;
        return;
    }
    list[(*n)++] = (struct tmpl_span){at + a, at + b};
}

int tl_taint_concat(struct rctx *R, struct tv a, struct tv b, struct tv *out, int line)
{
    char *p;
    if (tl_str_new(R, a.len + b.len, &p, line) < 0)
        return R->err_code;
    if (a.len)
        memcpy(p, a.u.s, a.len);
    if (b.len)
        memcpy(p + a.len, b.u.s, b.len);
    *out = tv_str(p, a.len + b.len);
    size_t na = a.taint ? a.taint->n : 0, nb = b.taint ? b.taint->n : 0;
    if (na + nb == 0)
        return 0;
    struct tl_taint *t = tl_alloc(R, sizeof(*t) + (na + nb) * sizeof(t->r[0]));
    if (!t)
        return tl_nomem(R, line);
    t->n = 0;
    for (size_t i = 0; i < na; i++)
        add_range(t->r, &t->n, a.taint->r[i].start, a.taint->r[i].end, a.len, 0);
    for (size_t i = 0; i < nb; i++)
        add_range(t->r, &t->n, b.taint->r[i].start, b.taint->r[i].end, b.len, a.len);
    out->taint = t->n ? t : NULL;
    return 0;
}

static int span_add(struct rctx *R, size_t a, size_t b, int line)
{
    struct tl_spans *sp = R->out_spans;
    if (!sp || a >= b)
        return 0;
    if (sp->n && sp->v[sp->n - 1].end >= a) {
        if (sp->v[sp->n - 1].end < b)
            sp->v[sp->n - 1].end = b;
        return 0;
    }
    if (sp->n == sp->cap) {
        size_t cap = sp->cap ? sp->cap * 2 : 16;
        struct tmpl_span *v = realloc(sp->v, cap * sizeof(*v));
        if (!v)
            return tl_fail(R, TMPL_ENOMEM, line, "out of memory");
        sp->v = v;
        sp->cap = cap;
    }
    sp->v[sp->n++] = (struct tmpl_span){a, b};
    return 0;
}

int tl_taint_written(struct rctx *R, struct tv v, size_t from, size_t to, int line)
{
    if (v.kind != TV_STR)
        return tl_has_taint(v) ? span_add(R, from, to, line) : 0;
    for (size_t i = 0; v.taint && i < v.taint->n; i++) {
        size_t a = v.taint->r[i].start, b = v.taint->r[i].end;
        if (b > to - from)
            b = to - from;
        if (a < b && span_add(R, from + a, from + b, line) < 0)
            return R->err_code;
    }
    return 0;
}

const struct tl_taint *tl_taint_of_spans(struct rctx *R, const struct tl_spans *sp, int line)
{
    if (!sp->n)
        return NULL;
    struct tl_taint *t = tl_alloc(R, sizeof(*t) + sp->n * sizeof(t->r[0]));
    if (!t) {
        tl_nomem(R, line);
        return NULL;
    }
    t->n = sp->n;
    memcpy(t->r, sp->v, sp->n * sizeof(t->r[0]));
    return t;
}
