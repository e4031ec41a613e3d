/* template_json.c - JSON the caller hands the template (the request's tools, a message's
 * tool calls) as template values: objects become dicts in member order, arrays lists,
 * integers ints, other numbers floats, as Python's json.loads makes them. Strings are
 * copied into the render's arena, so the parsed document is freed at once, and are
 * tainted as message contents are (template_taint.c): a tool's description or a call's
 * arguments holding a control token's text stay plain text in the prompt.
 *
 * Runs inside tmpl_render, on the caller's thread. */
#include "grammar.h"
#include "template.h"
#include "template_lib.h"

#include <stdlib.h>
#include <string.h>

static int to_value(struct rctx *R, const struct gram_json *j, struct tv *out, int depth);

static int str_value(struct rctx *R, const char *s, size_t len, struct tv *out)
{
    char *p = tl_alloc(R, len + 1);
    if (!p)
        return tl_nomem(R, 0);
    memcpy(p, s, len);
    p[len] = 0;
    *out = tv_str(p, len);
    out->taint = tl_taint_all; /* the request's text: never read as control tokens */
    return 0;
}

static int container_value(struct rctx *R, const struct gram_json *j, struct tv *out, int depth)
{
    if (j->kind == GJ_ARRAY) {
        struct tv_list *l = tl_list_new(R, j->n, 0);
        if (!l)
            return R->err_code;
        for (size_t i = 0; i < j->n; i++)
            if (to_value(R, &j->items[i], &l->items[l->n++], depth + 1) < 0)
                return R->err_code;
        *out = (struct tv){.kind = TV_LIST, .u.l = l};
        return 0;
    }
    if (tl_dict_new(R, out, TV_DICT, 0) < 0)
        return R->err_code;
    for (size_t i = 0; i < j->n; i++) {
        struct tv k, v;
        if (str_value(R, j->keys[i], j->key_lens[i], &k) < 0 ||
            to_value(R, &j->items[i], &v, depth + 1) < 0 || tl_dict_set(R, *out, k, v, 0) < 0)
            return R->err_code;
    }
    return 0;
}

static int to_value(struct rctx *R, const struct gram_json *j, struct tv *out, int depth)
{
    switch (j->kind) {
    case GJ_NULL:
        *out = tv_none();
        return 0;
    case GJ_BOOL:
        *out = tv_bool(j->b);
        return 0;
    case GJ_NUMBER:
        *out = j->is_int && j->num > -9.2e18 && j->num < 9.2e18 ? tv_int(strtoll(j->str, NULL, 10))
                                                               : tv_float(j->num);
        return 0;
    case GJ_STRING:
        return str_value(R, j->str, j->len, out);
    default:
        return container_value(R, j, out, depth);
    }
}

int tl_json_value(struct rctx *R, const char *json, const char *what, struct tv *out)
{
    char err[160];
    struct gram_json *j = gram_json_parse(json, strlen(json), err, sizeof(err));
    if (!j)
        return tl_fail(R, TMPL_EINVAL, 0, "%s: %s", what, err);
    int rc = to_value(R, j, out, 0);
    gram_json_free(j);
    return rc < 0 ? rc : 0;
}
