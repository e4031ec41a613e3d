/* template_lib.c - chat templates: the library real chat templates call. The str and
 * dict methods, attribute lookup (jinja2 tries the attribute, then the key), the
 * globals range, namespace, dict, raise_exception and strftime_now, and jinja2's
 * tests and filters with their argument conventions. Value operations are in
 * template_value.c.
 */
#include "template.h"
#include "template_lib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include <time.h>

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
        if (methods[i].on != obj.kind || !tv_is_cstr(name, methods[i].name))
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
    if (tl_list_value(R, n, TV_LIST, out, line) < 0)
        return R->err_code;
    for (size_t i = 0; i < n; i++) {
        struct tv item;
        if (which == 0) {
            if (tl_list_value(R, 2, TV_TUPLE, &item, line) < 0)
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
    for (size_t i = 0; i < s.len;) {
        size_t l = 1;
        while (i + l < s.len && ((unsigned char)s.u.s[i + l] & 0xc0) == 0x80)
            l++;
        uint32_t c = tl_u8_decode(s.u.s + i, l);
        utf8proc_int32_t u = (utf8proc_int32_t)c;
        bool is_up = utf8proc_tolower(u) != u, is_low = utf8proc_toupper(u) != u || c == 0xdf;
        i += l;
        switch (kind) {
        case M_ISDIGIT:
            if (c < '0' || c > '9')
                return false;
            break;
        case M_ISALPHA:
            if (!is_up && !is_low)
                return false;
            break;
        case M_ISUPPER:
            if (is_low)
                return false;
            cased |= is_up;
            break;
        case M_ISLOWER:
            if (is_up)
                return false;
            cased |= is_low;
            break;
        }
    }
    return kind == M_ISUPPER || kind == M_ISLOWER ? cased : true;
}

static int prefix_test(struct rctx *R, struct tv s, struct tv *p, bool end, bool *out, int line)
{
    if (p && tv_is_seq(*p)) {
        *out = false;
        for (size_t i = 0; i < p->u.l->n && !*out; i++)
            if (prefix_test(R, s, &p->u.l->items[i], end, out, line) < 0)
                return R->err_code;
        return 0;
    }
    if (tl_want_str(R, p, end ? "endswith" : "startswith", line) < 0)
        return R->err_code;
    *out = p->len <= s.len && memcmp(end ? s.u.s + s.len - p->len : s.u.s, p->u.s, p->len) == 0;
    return 0;
}

static int splitlines(struct rctx *R, struct tv s, bool keepends, struct tv *out, int line)
{
    if (tl_list_value(R, s.len + 1, TV_LIST, out, line) < 0)
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
    struct tv *a0 = tl_arg(a, 0, NULL), *a1 = tl_arg(a, 1, NULL);
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
            return tl_want_str(R, a0, methods[f->id].name, line);
        *out = tl_strip(s, a0, f->id != M_RSTRIP, f->id != M_LSTRIP);
        return 0;
    case M_SPLIT:
    case M_RSPLIT: {
        struct tv *sep = tl_arg(a, 0, "sep"), *maxs = tl_arg(a, 1, "maxsplit");
        if (sep && sep->kind != TV_STR && sep->kind != TV_NONE)
            return tl_want_str(R, sep, "split", line);
        if (maxs && tl_want_int(R, maxs, "split", line) < 0)
            return R->err_code;
        return tl_split(R, s, sep, maxs ? tv_as_int(*maxs) : -1, f->id == M_RSPLIT, out, line);
    }
    case M_REPLACE: {
        struct tv *cnt = tl_arg(a, 2, "count");
        if (tl_want_str(R, a0, "replace", line) < 0 || tl_want_str(R, a1, "replace", line) < 0 ||
            (cnt && tl_want_int(R, cnt, "replace", line) < 0))
            return R->err_code;
        return tl_replace(R, s, *a0, *a1, cnt ? tv_as_int(*cnt) : -1, out, line);
    }
    case M_UPPER:
        return tl_case_map(R, s, 1, out, line);
    case M_LOWER:
        return tl_case_map(R, s, 0, out, line);
    case M_TITLE:
        return tl_case_map(R, s, 3, out, line);
    case M_CAPITALIZE:
        return tl_case_map(R, s, 2, out, line);
    case M_FIND:
    case M_COUNT: {
        if (tl_want_str(R, a0, methods[f->id].name, line) < 0)
            return R->err_code;
        if (f->id == M_FIND) {
            const char *p = a0->len ? memmem(s.u.s, s.len, a0->u.s, a0->len) : s.u.s;
            *out = tv_int(p ? (int64_t)tl_u8_count(s.u.s, (size_t)(p - s.u.s)) : -1);
        } else {
            int64_t c = 0;
            if (a0->len == 0)
                c = (int64_t)tl_u8_count(s.u.s, s.len) + 1;
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
                               i, tv_type_name(items.u.l->items[i]));
        return tl_join(R, items, s, out, line);
    }
    case M_SPLITLINES:
        return splitlines(R, s, a0 && tv_truthy(*a0), out, line);
    case M_ISSPACE: {
        bool all = s.len > 0;
        for (size_t i = 0; i < s.len && all;) {
            size_t l = tl_space_len(s.u.s + i, s.len - i);
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
        struct tv *v = tl_dict_find(s.u.d, *a0);
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
    if (tv_is_cstr(name, "index0"))
        *out = tv_int((int64_t)i);
    else if (tv_is_cstr(name, "index"))
        *out = tv_int((int64_t)i + 1);
    else if (tv_is_cstr(name, "revindex"))
        *out = tv_int((int64_t)(n - i));
    else if (tv_is_cstr(name, "revindex0"))
        *out = tv_int((int64_t)(n - i - 1));
    else if (tv_is_cstr(name, "first"))
        *out = tv_bool(i == 0);
    else if (tv_is_cstr(name, "last"))
        *out = tv_bool(i + 1 == n);
    else if (tv_is_cstr(name, "length"))
        *out = tv_int((int64_t)n);
    else if (tv_is_cstr(name, "depth"))
        *out = tv_int(1);
    else if (tv_is_cstr(name, "depth0"))
        *out = tv_int(0);
    else if (tv_is_cstr(name, "previtem"))
        *out = i > 0 ? lp->items->items[i - 1] : tv_undef();
    else if (tv_is_cstr(name, "nextitem"))
        *out = i + 1 < n ? lp->items->items[i + 1] : tv_undef();
    else if (tv_is_cstr(name, "cycle")) {
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
            struct tv *v = tl_dict_find(obj.u.d, name);
            *out = v ? *v : tv_undef();
        }
        if (out->kind == TV_UNDEF) {
            out->u.s = name.u.s;
            out->len = name.len;
        }
        return 0;
    case TV_NS: {
        struct tv *v = tl_dict_find(obj.u.d, name);
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
        if (tv_is_cstr(name, global_names[i])) {
            *out = (struct tv){.kind = TV_FUNC, .u.fn = &funcs[i]};
            return true;
        }
    return false;
}

static int g_range(struct rctx *R, struct targs *a, struct tv *out, int line)
{
    int64_t start = 0, stop, stepv = 1;
    for (int i = 0; i < a->npos; i++)
        if (!tv_is_intlike(a->pos[i]))
            return tl_fail(R, TMPL_EEVAL, line, "range() arguments must be integers");
    if (a->npos == 1) {
        stop = tv_as_int(a->pos[0]);
    } else if (a->npos == 2 || a->npos == 3) {
        start = tv_as_int(a->pos[0]);
        stop = tv_as_int(a->pos[1]);
        if (a->npos == 3)
            stepv = tv_as_int(a->pos[2]);
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
    if (tl_list_value(R, (size_t)n, TV_LIST, out, line) < 0)
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
    struct tv *fmt = tl_arg(a, 0, NULL);
    if (tl_want_str(R, fmt, "strftime_now", line) < 0)
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
    if (tl_str_new(R, n, &p, line) < 0)
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
        return tl_fail(R, TMPL_EEVAL, line, "'%s' object is not callable", tv_type_name(fn));
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
        if (a->npos > 0 && tl_to_str(R, a->pos[0], &msg, line) < 0)
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
    struct tv *x = tl_arg(a, 0, NULL);
    int rc;
    static const int cmp_op[] = {[T_EQ] = OP_EQ, [T_NE] = OP_NE, [T_LT] = OP_LT, [T_LE] = OP_LE,
                                 [T_GT] = OP_GT, [T_GE] = OP_GE};
    switch (id) {
    case T_DEFINED: *out = v.kind != TV_UNDEF; return 0;
    case T_UNDEFINED: *out = v.kind == TV_UNDEF; return 0;
    case T_NONE: *out = v.kind == TV_NONE; return 0;
    case T_STRING: *out = v.kind == TV_STR; return 0;
    case T_NUMBER: *out = tv_is_num(v); return 0;
    case T_INTEGER: *out = v.kind == TV_INT; return 0;
    case T_FLOAT: *out = v.kind == TV_FLOAT; return 0;
    case T_BOOLEAN: *out = v.kind == TV_BOOL; return 0;
    case T_TRUE: *out = v.kind == TV_BOOL && v.u.b; return 0;
    case T_FALSE: *out = v.kind == TV_BOOL && !v.u.b; return 0;
    case T_MAPPING: *out = v.kind == TV_DICT; return 0;
    case T_ITERABLE:
        *out = v.kind == TV_STR || tv_is_seq(v) || v.kind == TV_DICT || v.kind == TV_UNDEF ||
               v.kind == TV_LOOP;
        return 0;
    case T_SEQUENCE: *out = v.kind == TV_STR || tv_is_seq(v) || v.kind == TV_DICT; return 0;
    case T_CALLABLE: *out = v.kind == TV_FUNC; return 0;
    case T_EQ: case T_NE: case T_LT: case T_LE: case T_GT: case T_GE:
        if (!x)
            return tl_fail(R, TMPL_EEVAL, line, "test needs an argument");
        return tl_compare(R, cmp_op[id], v, *x, out, line);
    case T_IN:
        if (!x)
            return tl_fail(R, TMPL_EEVAL, line, "test 'in' needs an argument");
        return tl_contains(R, *x, v, out, line);
    case T_ODD:
    case T_EVEN:
        if (v.kind == TV_FLOAT) { /* Python: value % 2 == 1 */
            double m = fmod(v.u.f, 2.0);
            *out = id == T_ODD ? (m == 1.0 || m == -1.0) : m == 0.0;
            return 0;
        }
        if (!tv_is_intlike(v))
            return tl_fail(R, TMPL_EEVAL, line, "test '%s' needs a number", id == T_ODD ? "odd" : "even");
        *out = (tv_as_int(v) % 2 != 0) == (id == T_ODD);
        return 0;
    case T_DIVISIBLEBY:
        if (!tv_is_intlike(v) || !x || !tv_is_intlike(*x) || tv_as_int(*x) == 0)
            return tl_fail(R, TMPL_EEVAL, line, "divisibleby needs non-zero integers");
        *out = tv_as_int(*x) == -1 || tv_as_int(v) % tv_as_int(*x) == 0;
        return 0;
    case T_LOWER:
    case T_UPPER: {
        struct tv s; /* str(v).islower() / isupper(): needs a cased character */
        if ((rc = tl_to_str(R, v, &s, line)) < 0)
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
            if (digits)
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
        return tl_list_value(R, 0, TV_LIST, items, line);
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
    struct tv *attrname = attr ? tl_arg(a, 0, NULL) : NULL;
    if (attr && !attrname)
        return tl_fail(R, TMPL_EEVAL, line, "missing attribute name");
    struct tv *testname = tl_arg(a, first_test, NULL);
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
    if (tl_list_value(R, items.u.l->n, TV_LIST, out, line) < 0)
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
    struct tv *attrname = tl_arg(a, -1, "attribute");
    struct tv *def = tl_arg(a, -1, "default");
    int fidx = -1;
    struct targs fargs;
    memset(&fargs, 0, sizeof(fargs));
    if (!attrname) {
        struct tv *fname = tl_arg(a, 0, NULL);
        if (!fname || fname->kind != TV_STR || (fidx = tmpl_filter_index(fname->u.s, fname->len)) < 0)
            return tl_fail(R, TMPL_EEVAL, line, "map: needs attribute= or a filter name");
        for (int i = 1; i < a->npos; i++)
            fargs.pos[fargs.npos++] = a->pos[i];
        for (int i = 0; i < a->nkw; i++) {
            fargs.kwname[fargs.nkw] = a->kwname[i];
            fargs.kw[fargs.nkw++] = a->kw[i];
        }
    }
    if (tl_list_value(R, items.u.l->n, TV_LIST, out, line) < 0)
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
    struct tv *ascii = tl_arg(a, 0, "ensure_ascii"), *indent = tl_arg(a, 1, "indent");
    struct tv *seps = tl_arg(a, 2, "separators"), *sortk = tl_arg(a, 3, "sort_keys");
    struct tl_json_opts o = {
        .ascii = ascii && tv_truthy(*ascii),
        .sort_keys = sortk && tv_truthy(*sortk),
        .indent = -1,
        .item_sep = tv_str(", ", 2),
        .key_sep = tv_str(": ", 2),
    };
    if (indent && indent->kind != TV_NONE) {
        if (!tv_is_intlike(*indent))
            return tl_fail(R, TMPL_EEVAL, line, "tojson: indent must be an integer");
        int64_t ind = tv_as_int(*indent);
        o.indent = ind < 0 ? 0 : ind > 64 ? 64 : (int)ind;
        o.item_sep = tv_str(",", 1);
    }
    if (seps && seps->kind != TV_NONE) {
        if (!tv_is_seq(*seps) || seps->u.l->n != 2 || seps->u.l->items[0].kind != TV_STR ||
            seps->u.l->items[1].kind != TV_STR)
            return tl_fail(R, TMPL_EEVAL, line, "tojson: separators must be a pair of strings");
        o.item_sep = seps->u.l->items[0];
        o.key_sep = seps->u.l->items[1];
    }
    struct strbuf b = {0};
    int rc = tl_write_json(R, &b, v, &o, 0, line);
    return tl_sbuf_finish(R, &b, rc, out, line);
}

static int f_indent(struct rctx *R, struct tv v, struct targs *a, struct tv *out, int line)
{
    if (v.kind == TV_UNDEF)
        return tl_undefined(R, line, v);
    if (v.kind != TV_STR) /* jinja2 appends "\n" to its input: only strings work */
        return tl_fail(R, TMPL_EEVAL, line, "indent: expected a string, got %s", tv_type_name(v));
    struct tv s = v;
    struct tv *w = tl_arg(a, 0, "width"), *first = tl_arg(a, 1, "first"), *blank = tl_arg(a, 2, "blank");
    struct tv ind;
    if (!w) {
        ind = tv_str("    ", 4);
    } else if (w->kind == TV_STR) {
        ind = *w;
    } else if (tv_is_intlike(*w)) {
        int64_t n = tv_as_int(*w);
        if (n < 0)
            n = 0;
        if (n > 1024)
            return tl_fail(R, TMPL_ELIMIT, line, "indent width too large");
        if (tl_repeat(R, tv_str(" ", 1), n, &ind, line) < 0)
            return R->err_code;
    } else {
        return tl_fail(R, TMPL_EEVAL, line, "indent: width must be an integer or a string");
    }
    /* jinja2: s += "\n"; lines = s.splitlines(); first line as is, others indented
     * unless empty (blank=True indents empty ones too) */
    struct tv s2, lines;
    if (tl_concat(R, s, tv_str("\n", 1), &s2, line) < 0 || splitlines(R, s2, false, &lines, line) < 0)
        return R->err_code;
    struct strbuf b = {0};
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
    return tl_sbuf_finish(R, &b, rc, out, line);
}

/* Lowercases strings for the case-insensitive comparisons of unique/sort/min/max. */
static int fold(struct rctx *R, struct tv v, bool case_sensitive, struct tv *out, int line)
{
    if (v.kind == TV_STR && !case_sensitive)
        return tl_case_map(R, v, 0, out, line);
    *out = v;
    return 0;
}

/* The key an item of unique/sort/min/max is compared by: its attribute= path when
 * attrname is given, lowercased unless case_sensitive. */
static int item_key(struct rctx *R, struct tv item, const struct tv *attrname, bool case_sensitive,
                    struct tv *out, int line)
{
    if (attrname && attr_path(R, item, *attrname, &item, line) < 0)
        return R->err_code;
    return fold(R, item, case_sensitive, out, line);
}

/* Room for unique/sort/min/max over n items: n scratch keys and an empty output list
 * with room for every item. */
static int keys_and_output(struct rctx *R, size_t n, struct tv **keys, struct tv *out, int line)
{
    *keys = tl_alloc(R, (n ? n : 1) * sizeof(**keys));
    if (!*keys)
        return tl_nomem(R, line);
    return tl_list_value(R, n, TV_LIST, out, line);
}

static int f_sort_like(struct rctx *R, enum filter id, struct tv v, struct targs *a, struct tv *out, int line)
{
    struct tv items;
    if (tl_iterable(R, v, &items, line) < 0)
        return R->err_code;
    bool rev = id == F_SORT && tl_arg(a, 0, "reverse") && tv_truthy(*tl_arg(a, 0, "reverse"));
    struct tv *cs = tl_arg(a, id == F_SORT ? 1 : 0, "case_sensitive");
    bool case_sensitive = cs && tv_truthy(*cs);
    struct tv *attrname = tl_arg(a, id == F_SORT ? 2 : 1, "attribute");
    size_t n = items.u.l->n;
    struct tv *keys;
    if (keys_and_output(R, n, &keys, out, line) < 0)
        return R->err_code;
    for (size_t i = 0; i < n; i++) {
        if (item_key(R, items.u.l->items[i], attrname, case_sensitive, &keys[i], line) < 0)
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
            if (tl_order(R, keys[i], keys[best], &c, line, 0) < 0)
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
            if (tl_order(R, keys[j - 1], k, &c, line, 0) < 0)
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
    struct tv *cs = tl_arg(a, 0, "case_sensitive"), *attrname = tl_arg(a, 1, "attribute");
    size_t n = items.u.l->n;
    if (n > 10000)
        return tl_fail(R, TMPL_ELIMIT, line, "unique of more than 10000 items");
    struct tv *seen;
    if (keys_and_output(R, n, &seen, out, line) < 0)
        return R->err_code;
    size_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        struct tv k;
        if (item_key(R, items.u.l->items[i], attrname, cs && tv_truthy(*cs), &k, line) < 0)
            return R->err_code;
        if (k.kind == TV_LIST || k.kind == TV_DICT || k.kind == TV_NS) /* jinja2 uses a set */
            return tl_fail(R, TMPL_EEVAL, line, "unhashable type: '%s'", tv_type_name(k));
        bool dup = false;
        for (size_t j = 0; j < ns && !dup; j++)
            dup = tv_equal(seen[j], k);
        if (dup)
            continue;
        seen[ns++] = k;
        out->u.l->items[out->u.l->n++] = items.u.l->items[i];
    }
    return 0;
}

int tl_escape(struct rctx *R, struct tv v, struct tv *out, int line)
{
    struct tv s;
    if (tl_to_str(R, v, &s, line) < 0)
        return R->err_code;
    struct strbuf b = {0};
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
    rc = tl_sbuf_finish(R, &b, rc, out, line);
    out->markup = true;
    return rc;
}

static int f_int(struct rctx *R, struct tv v, struct targs *a, struct tv *out, int line)
{
    struct tv *def = tl_arg(a, 0, "default");
    struct tv dflt = def ? *def : tv_int(0);
    if (tv_is_intlike(v)) {
        *out = tv_int(tv_as_int(v));
    } else if (v.kind == TV_FLOAT) {
        *out = isfinite(v.u.f) && fabs(v.u.f) < 9.2e18 ? tv_int((int64_t)v.u.f) : dflt;
    } else if (v.kind == TV_STR) {
        char buf[64];
        struct tv t = tl_strip(v, NULL, true, true);
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
    struct tv *def = tl_arg(a, 0, "default");
    (void)R;
    (void)line;
    if (tv_is_num(v)) {
        *out = tv_float(tv_as_float(v));
    } else if (v.kind == TV_STR) {
        char buf[64];
        struct tv t = tl_strip(v, NULL, true, true);
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
    struct tv *attrname = tl_arg(a, 0, "attribute"), *start = tl_arg(a, 1, "start");
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
        *out = tv_int((int64_t)tl_u8_count(v.u.s, v.len));
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
        return tl_fail(R, TMPL_EEVAL, line, "object of type '%s' has no len()", tv_type_name(v));
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
    if (tl_to_str(R, v, &s, line) < 0)
        return R->err_code;
    switch (id) {
    case F_TRIM: {
        struct tv *chars = tl_arg(a, 0, "chars");
        *out = tl_strip(s, chars, true, true);
        return 0;
    }
    case F_LOWER:
        return tl_case_map(R, s, 0, out, line);
    case F_UPPER:
        return tl_case_map(R, s, 1, out, line);
    case F_TITLE:
        return tl_case_map(R, s, 4, out, line);
    case F_CAPITALIZE:
        return tl_case_map(R, s, 2, out, line);
    case F_REPLACE: {
        struct tv *old = tl_arg(a, 0, "old"), *new = tl_arg(a, 1, "new"), *cnt = tl_arg(a, 2, "count");
        struct tv o, nw;
        if (!old || !new)
            return tl_fail(R, TMPL_EEVAL, line, "replace needs two arguments");
        if (tl_to_str(R, *old, &o, line) < 0 || tl_to_str(R, *new, &nw, line) < 0)
            return R->err_code;
        if (cnt && cnt->kind != TV_NONE && tl_want_int(R, cnt, "replace", line) < 0)
            return R->err_code;
        return tl_replace(R, s, o, nw, cnt && cnt->kind != TV_NONE ? tv_as_int(*cnt) : -1, out, line);
    }
    case F_WORDCOUNT: {
        struct tv words;
        if (tl_split(R, s, NULL, -1, false, &words, line) < 0)
            return R->err_code;
        *out = tv_int((int64_t)words.u.l->n);
        return 0;
    }
    case F_CENTER: {
        struct tv *w = tl_arg(a, 0, "width");
        int64_t width = w && tv_is_intlike(*w) ? tv_as_int(*w) : 80;
        int64_t len = (int64_t)tl_u8_count(s.u.s, s.len);
        if (width > 100000)
            return tl_fail(R, TMPL_ELIMIT, line, "center width too large");
        if (width <= len) {
            *out = s;
            return 0;
        }
        int64_t pad = width - len, left = pad / 2 + (pad & width & 1);
        struct tv l = {0}, r = {0}, t = {0};
        if (tl_repeat(R, tv_str(" ", 1), left, &l, line) < 0 ||
            tl_repeat(R, tv_str(" ", 1), pad - left, &r, line) < 0 ||
            tl_concat(R, l, s, &t, line) < 0)
            return R->err_code;
        return tl_concat(R, t, r, out, line);
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
        if (tl_list_value(R, items.u.l->n, TV_LIST, out, line) < 0)
            return R->err_code;
        memcpy(out->u.l->items, items.u.l->items, items.u.l->n * sizeof(struct tv));
        out->u.l->n = items.u.l->n;
        return 0;
    case F_JOIN: {
        struct tv *sep = tl_arg(a, 0, "d"), *attrname = tl_arg(a, 1, "attribute");
        struct tv sp = tv_str("", 0);
        if (sep && tl_to_str(R, *sep, &sp, line) < 0)
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
        return tl_join(R, items, sp, out, line);
    }
    case F_DEFAULT: {
        struct tv *def = tl_arg(a, 0, "default_value"), *boolean = tl_arg(a, 1, "boolean");
        bool use = v.kind == TV_UNDEF || (boolean && tv_truthy(*boolean) && !tv_truthy(v));
        *out = use ? (def ? *def : tv_str("", 0)) : v;
        return 0;
    }
    case F_STRING:
        return tl_to_str(R, v, out, line);
    case F_UNIQUE:
        return as_generator(f_unique(R, v, a, out, line), out);
    case F_ITEMS:
        if (v.kind == TV_UNDEF)
            return as_generator(tl_list_value(R, 0, TV_LIST, out, line), out);
        if (v.kind != TV_DICT)
            return tl_fail(R, TMPL_EEVAL, line, "items: expected a mapping, got %s", tv_type_name(v));
        return as_generator(dict_view(R, v, 0, out, line), out);
    case F_DICTSORT: {
        if (v.kind != TV_DICT)
            return tl_fail(R, TMPL_EEVAL, line, "dictsort: expected a mapping, got %s", tv_type_name(v));
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
        if (tl_iterable(R, v, &items, line) < 0 || tl_list_value(R, items.u.l->n, TV_LIST, out, line) < 0)
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
        if (!tv_is_intlike(v) || tv_as_int(v) == INT64_MIN)
            return tl_fail(R, TMPL_EEVAL, line, "bad operand type for abs(): '%s'", tv_type_name(v));
        *out = tv_int(tv_as_int(v) < 0 ? -tv_as_int(v) : tv_as_int(v));
        return 0;
    case F_INT:
    case F_FLOAT:
        if (v.kind == TV_UNDEF) /* int(Undefined) raises in jinja2 */
            return tl_undefined(R, line, v);
        return id == F_INT ? f_int(R, v, a, out, line) : f_float(R, v, a, out, line);
    case F_ROUND: {
        struct tv *prec = tl_arg(a, 0, "precision");
        double p = prec && tv_is_intlike(*prec) ? (double)tv_as_int(*prec) : 0;
        if (!tv_is_num(v))
            return tl_fail(R, TMPL_EEVAL, line, "round: expected a number");
        if (tv_is_intlike(v)) {
            *out = tv_int(tv_as_int(v));
            return 0;
        }
        double m = pow(10.0, p);
        *out = tv_float(round(tv_as_float(v) * m) / m);
        return 0;
    }
    case F_SAFE:
        if (v.kind != TV_STR && tl_to_str(R, v, &v, line) < 0)
            return R->err_code;
        *out = v;
        out->markup = true;
        return 0;
    case F_ESCAPE:
        if (v.kind == TV_STR && v.markup) {
            *out = v;
            return 0;
        }
        return tl_escape(R, v, out, line);
    case F_ATTR: {
        struct tv *name = tl_arg(a, 0, NULL);
        if (tl_want_str(R, name, "attr", line) < 0)
            return R->err_code;
        return tl_getattr(R, v, *name, out, line);
    }
    }
    return tl_fail(R, TMPL_EEVAL, line, "internal error: bad filter");
}
