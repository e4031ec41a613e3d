/* gen_tools.c - tool calling: the model family's call format, the grammar that
 * constrains a call, and the reply's text parsed back into OpenAI's `tool_calls`
 * (whole for a response, incrementally for `delta.tool_calls` chunks).
 *
 * A format is chosen per model from its chat template (or the tool_format option): how
 * calls are introduced (a marker such as <tool_call> or [TOOL_CALLS]), how one call
 * spells its function's name and arguments (a JSON object with two keys, or the name
 * between delimiters followed by the arguments' JSON), and what separates and ends
 * calls. A template that knows no tools gets the generic format: the tools are described
 * in the system message and calls are written as Hermes does (<tool_call>{...}</tool_call>).
 *
 * tool_choice required or a named function constrains the reply to calls from its first
 * token; `strict` tools with tool_choice auto constrain the text after the format's
 * marker (a lazy grammar), so the model may still answer in prose. A call's arguments
 * are the exact JSON text the model wrote, so the streamed pieces add up to the final
 * `arguments` string.
 *
 * Runs on the request's connection thread; the format table is static. */
#include "gen/gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GT_MAX_CALLS 64

enum call_shape {
    SHAPE_OBJECT, /* {"<name_key>": "f", "<args_key>": {...}} after the call prefix */
    SHAPE_NAMED,  /* <name_open>f<name_close>{...}<args_close> */
};

struct tool_fmt {
    const char *name;
    const char *begin;       /* before the first call ("" none) */
    const char *end;         /* after the last call */
    const char *sep;         /* between calls (parse: optional, whitespace around allowed) */
    enum call_shape shape;
    const char *call_open;   /* SHAPE_OBJECT: text before each call's object */
    const char *call_close;  /* SHAPE_OBJECT: text after it */
    const char *name_key, *args_key, *args_key2;
    const char *name_open, *name_close, *args_close; /* SHAPE_NAMED */
    const char *trigger;     /* where calls start in free text (lazy grammar, parsing) */
    bool special_markers;    /* markers are control tokens: render them as text */
};

static const struct tool_fmt formats[] = {
    [GT_GENERIC] = {"generic", "", "", "\n", SHAPE_OBJECT, "<tool_call>\n", "\n</tool_call>",
                    "name", "arguments", "parameters", NULL, NULL, NULL, "<tool_call>", false},
    [GT_HERMES] = {"hermes", "", "", "\n", SHAPE_OBJECT, "<tool_call>\n", "\n</tool_call>", "name",
                   "arguments", "parameters", NULL, NULL, NULL, "<tool_call>", false},
    [GT_LLAMA3] = {"llama3", "", "", ";", SHAPE_OBJECT, "", "", "name", "parameters", "arguments",
                   NULL, NULL, NULL, "", true},
    [GT_MISTRAL] = {"mistral", "[TOOL_CALLS][", "]", ", ", SHAPE_OBJECT, "", "", "name",
                    "arguments", "parameters", NULL, NULL, NULL, "[TOOL_CALLS]", true},
    [GT_DEEPSEEK_R1] = {"deepseek-r1", "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "\n",
                        SHAPE_NAMED, NULL, NULL, NULL, NULL, NULL,
                        "<｜tool▁call▁begin｜>function<｜tool▁sep｜>", "\n```json\n",
                        "\n```<｜tool▁call▁end｜>", "<｜tool▁calls▁begin｜>", true},
    [GT_FIREFUNCTION] = {"firefunction", " functools[", "]", ", ", SHAPE_OBJECT, "", "", "name",
                         "arguments", "parameters", NULL, NULL, NULL, "functools[", false},
    [GT_FUNCTIONARY_V31] = {"functionary-v3.1", "", "", "", SHAPE_NAMED, NULL, NULL, NULL, NULL,
                            NULL, "<function=", ">", "</function>", "<function=", false},
    [GT_FUNCTIONARY_V32] = {"functionary-v3.2", "", "", "", SHAPE_NAMED, NULL, NULL, NULL, NULL,
                            NULL, ">>>", "\n", "", ">>>", false},
    [GT_COMMAND_R] = {"command-r", "<|START_ACTION|>[", "]<|END_ACTION|>", ", ", SHAPE_OBJECT, "",
                      "", "tool_name", "parameters", "arguments", NULL, NULL, NULL,
                      "<|START_ACTION|>", true},
};

const char *gen_tool_format_name(int f)
{
    return f >= 0 && f < GT_N_FORMATS ? formats[f].name : "none";
}

int gen_tool_format_detect(const char *src, const char *override)
{
    if (override && override[0] && strcmp(override, "auto") != 0) {
        for (int f = 0; f < GT_N_FORMATS; f++)
            if (strcmp(formats[f].name, override) == 0)
                return f;
        return GT_GENERIC;
    }
    static const struct {
        const char *marker;
        int fmt;
    } markers[] = {
        {"<tool_call>", GT_HERMES},          {"[TOOL_CALLS]", GT_MISTRAL},
        {"<｜tool▁calls▁begin｜>", GT_DEEPSEEK_R1}, {"functools[", GT_FIREFUNCTION},
        {"<function=", GT_FUNCTIONARY_V31},  {">>>all", GT_FUNCTIONARY_V32},
        {"<|START_ACTION|>", GT_COMMAND_R},  {"<|start_header_id|>", GT_LLAMA3},
    };
    if (!src || (!strstr(src, "tools") && !strstr(src, "tool_calls")))
        return GT_GENERIC;
    for (size_t i = 0; i < sizeof(markers) / sizeof(markers[0]); i++)
        if (strstr(src, markers[i].marker))
            return markers[i].fmt;
    return GT_GENERIC;
}

/* ---- per request ---- */

struct gt_call {
    char name[128];
    bool name_done;
    size_t args_start;
    size_t args_len;   /* bytes of arguments so far */
    bool args_done;
    char id[40];
};

/* What the stream has sent of a call (kept apart: every parse rewrites the calls). */
struct gt_sent {
    bool head;   /* index, id, type and name */
    size_t args; /* argument bytes */
    char id[40];
};

struct gen_tools {
    const struct tool_fmt *f;
    bool active;          /* parse the reply for calls */
    char *system_text;    /* generic format: the system message with the tools described */
    struct gt_call calls[GT_MAX_CALLS];
    size_t n_calls;
    size_t content_end;   /* the reply's text before the calls */
    bool parsed_ok;       /* the final parse found well-formed calls */
    size_t sent_content;  /* streaming: content bytes already sent */
    struct gt_sent sent[GT_MAX_CALLS];
};

void gen_tools_free(struct gen_tools *t)
{
    if (!t)
        return;
    free(t->system_text);
    free(t);
}

/* ---- JSON scanning over text that may still be growing ---- */

enum scan { SCAN_DONE, SCAN_MORE, SCAN_BAD };

static size_t skip_ws(const char *s, size_t len, size_t i)
{
    while (i < len && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r'))
        i++;
    return i;
}

/* One JSON value at s[i]: *end is just past it (SCAN_DONE), or the text ends inside it
 * (SCAN_MORE), or it is not JSON (SCAN_BAD). */
static enum scan scan_value(const char *s, size_t len, size_t i, size_t *end)
{
    int depth = 0;
    bool in_str = false;
    if (i >= len)
        return SCAN_MORE;
    char c0 = s[i];
    bool scalar = c0 != '{' && c0 != '[' && c0 != '"';
    for (; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"') {
                in_str = false;
                if (depth == 0) {
                    *end = i + 1;
                    return SCAN_DONE;
                }
            }
            continue;
        }
        if (scalar) {
            if (strchr(",}] \n\t\r", c)) {
                *end = i;
                return SCAN_DONE;
            }
            if (!strchr("0123456789+-.eEtruefalsn", c))
                return SCAN_BAD;
            continue;
        }
        if (c == '"')
            in_str = true;
        else if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']') {
            if (--depth == 0) {
                *end = i + 1;
                return SCAN_DONE;
            }
            if (depth < 0)
                return SCAN_BAD;
        }
    }
    return SCAN_MORE;
}

/* A JSON string at s[i] decoded into out (at most cap-1 bytes). */
static enum scan scan_string(const char *s, size_t len, size_t i, char *out, size_t cap,
                             size_t *end)
{
    if (i >= len)
        return SCAN_MORE;
    if (s[i] != '"')
        return SCAN_BAD;
    enum scan r = scan_value(s, len, i, end);
    if (r != SCAN_DONE)
        return r;
    json_error_t e;
    json_t *j = json_loadb(s + i, *end - i, JSON_DECODE_ANY, &e);
    if (!json_is_string(j)) {
        json_decref(j);
        return SCAN_BAD;
    }
    snprintf(out, cap, "%s", json_string_value(j));
    json_decref(j);
    return SCAN_DONE;
}

/* A marker (the format's begin, end or call delimiters) at s[i], whitespace around it in
 * the text and at its ends ignored. */
static enum scan scan_mark(const char *s, size_t len, size_t i, const char *lit, size_t *end)
{
    i = skip_ws(s, len, i);
    lit += skip_ws(lit, strlen(lit), 0);
    size_t n = strlen(lit);
    while (n && strchr(" \n\t\r", lit[n - 1]))
        n--;
    size_t have = len - i < n ? len - i : n;
    if (memcmp(s + i, lit, have) != 0)
        return SCAN_BAD;
    if (have < n)
        return SCAN_MORE;
    *end = i + n;
    return SCAN_DONE;
}

/* One call as a JSON object with a name and an arguments key, from s[i]. */
static enum scan scan_object_call(const struct tool_fmt *f, const char *s, size_t len, size_t i,
                                  struct gt_call *c, size_t *end)
{
    i = skip_ws(s, len, i);
    if (i >= len)
        return SCAN_MORE;
    if (s[i] != '{')
        return SCAN_BAD;
    i++;
    for (;;) {
        i = skip_ws(s, len, i);
        if (i >= len)
            return SCAN_MORE;
        if (s[i] == '}') {
            *end = i + 1;
            return c->name_done && c->args_done ? SCAN_DONE : SCAN_BAD;
        }
        if (s[i] == ',') {
            i++;
            continue;
        }
        char key[64];
        size_t e;
        enum scan r = scan_string(s, len, i, key, sizeof(key), &e);
        if (r != SCAN_DONE)
            return r;
        i = skip_ws(s, len, e);
        if (i >= len)
            return SCAN_MORE;
        if (s[i] != ':')
            return SCAN_BAD;
        i = skip_ws(s, len, i + 1);
        if (strcmp(key, f->name_key) == 0 || (strcmp(f->name_key, "tool_name") == 0 && strcmp(key, "name") == 0)) {
            r = scan_string(s, len, i, c->name, sizeof(c->name), &e);
            if (r != SCAN_DONE)
                return r;
            c->name_done = true;
        } else if (strcmp(key, f->args_key) == 0 || strcmp(key, f->args_key2) == 0) {
            c->args_start = i;
            r = scan_value(s, len, i, &e);
            c->args_len = (r == SCAN_DONE ? e : len) - i;
            if (r != SCAN_DONE)
                return r;
            c->args_done = true;
        } else {
            if (strcmp(key, "id") == 0 && i < len && s[i] == '"')
                scan_string(s, len, i, c->id, sizeof(c->id), &e);
            r = scan_value(s, len, i, &e);
            if (r != SCAN_DONE)
                return r;
        }
        i = e;
    }
}

/* One call as name delimiters followed by the arguments' JSON, from s[i]. */
static enum scan scan_named_call(const struct tool_fmt *f, const char *s, size_t len, size_t i,
                                 struct gt_call *c, size_t *end)
{
    size_t e;
    enum scan r = scan_mark(s, len, i, f->name_open, &e);
    if (r != SCAN_DONE)
        return r;
    const char *close = memmem(s + e, len - e, f->name_close, strlen(f->name_close));
    if (!close)
        return len - e < sizeof(c->name) ? SCAN_MORE : SCAN_BAD;
    size_t nl = (size_t)(close - (s + e));
    if (nl == 0 || nl >= sizeof(c->name) || memchr(s + e, '\n', nl))
        return SCAN_BAD;
    memcpy(c->name, s + e, nl);
    c->name[nl] = 0;
    c->name_done = true;
    i = skip_ws(s, len, e + nl + strlen(f->name_close));
    c->args_start = i;
    r = scan_value(s, len, i, &e);
    c->args_len = (r == SCAN_DONE ? e : len) - i;
    if (r != SCAN_DONE)
        return r;
    c->args_done = true;
    if (!f->args_close[0]) {
        *end = e;
        return SCAN_DONE;
    }
    return scan_mark(s, len, e, f->args_close, end);
}

/* Where the calls start in text: the trigger's position, or len when none (and
 * *hold the length of a tail that could still become the trigger). */
static size_t calls_start(const struct tool_fmt *f, const char *s, size_t len, size_t *hold)
{
    *hold = 0;
    if (!f->trigger[0]) { /* llama3: a JSON object (or <|python_tag|>) opening the reply */
        size_t i = skip_ws(s, len, 0);
        const char *tag = "<|python_tag|>";
        if (i == len)
            *hold = len;
        else if (s[i] == '{' || strncmp(s + i, tag, len - i < 14 ? len - i : 14) == 0)
            return 0;
        return len;
    }
    const char *hit = memmem(s, len, f->trigger, strlen(f->trigger));
    if (hit) {
        size_t at = (size_t)(hit - s);
        size_t b = strlen(f->begin) - (f->begin[0] ? strlen(strstr(f->begin, f->trigger)) : 0);
        return at >= b ? at - b : at; /* the begin text may stand before the trigger */
    }
    size_t tl = strlen(f->trigger);
    for (size_t k = tl - 1; k > 0; k--)
        if (len >= k && memcmp(s + len - k, f->trigger, k) == 0) {
            *hold = k;
            break;
        }
    return len;
}

/* Parses text for calls into t; returns SCAN_DONE when every call is complete and only
 * the format's end (or nothing) follows, SCAN_MORE when the text may still grow into
 * that, SCAN_BAD when it is not calls. */
static enum scan parse_calls(struct gen_tools *t, const char *s, size_t len)
{
    const struct tool_fmt *f = t->f;
    size_t hold;
    size_t at = calls_start(f, s, len, &hold);
    t->n_calls = 0;
    t->content_end = at < len ? at : len - hold;
    if (at >= len)
        return hold ? SCAN_MORE : SCAN_BAD;
    size_t i = at, e;
    if (f == &formats[GT_LLAMA3] && strncmp(s + skip_ws(s, len, i), "<|python_tag|>", 14) == 0)
        i = skip_ws(s, len, i) + 14;
    if (f->begin[0]) {
        enum scan r = scan_mark(s, len, i, f->begin, &e);
        if (r != SCAN_DONE)
            return r;
        i = e;
    }
    for (;;) {
        i = skip_ws(s, len, i);
        if (t->n_calls && f->end[0]) {
            enum scan r = scan_mark(s, len, i, f->end, &e);
            if (r == SCAN_DONE)
                return skip_ws(s, len, e) == len ? SCAN_DONE : SCAN_BAD;
            if (r == SCAN_MORE)
                return SCAN_MORE;
        }
        if (i >= len)
            return t->n_calls && !f->end[0] ? SCAN_DONE : SCAN_MORE;
        if (t->n_calls && f->sep[0] && strchr(f->sep, s[i]) && s[i] != ' ') {
            i++;
            continue;
        }
        if (t->n_calls == GT_MAX_CALLS)
            return SCAN_BAD;
        struct gt_call *c = &t->calls[t->n_calls++];
        memset(c, 0, sizeof(*c));
        enum scan r;
        if (f->shape == SHAPE_NAMED) {
            r = scan_named_call(f, s, len, i, c, &e);
        } else {
            r = scan_mark(s, len, i, f->call_open, &e);
            if (r == SCAN_DONE)
                r = scan_object_call(f, s, len, e, c, &e);
            if (r == SCAN_DONE && f->call_close[0])
                r = scan_mark(s, len, e, f->call_close, &e);
        }
        if (r != SCAN_DONE)
            return r;
        i = e;
    }
}

/* ---- setup: the format, the template's view, the grammar ---- */

static void call_prefix(const struct tool_fmt *f, const char *name, struct strbuf *out)
{
    if (f->shape == SHAPE_NAMED) {
        strbuf_append(out, f->name_open, strlen(f->name_open));
        strbuf_append(out, name, strlen(name));
        strbuf_append(out, f->name_close, strlen(f->name_close));
        return;
    }
    char head[256];
    if (f == &formats[GT_COMMAND_R])
        snprintf(head, sizeof(head), "{\"tool_call_id\": \"0\", \"%s\": \"%s\", \"%s\": ", f->name_key,
                 name, f->args_key);
    else
        snprintf(head, sizeof(head), "%s{\"%s\": \"%s\", \"%s\": ", f->call_open, f->name_key, name,
                 f->args_key);
    strbuf_append(out, head, strlen(head));
}

static const char *call_suffix(const struct tool_fmt *f, char *buf, size_t n)
{
    if (f->shape == SHAPE_NAMED)
        snprintf(buf, n, "%s", f->args_close);
    else
        snprintf(buf, n, "}%s", f->call_close);
    return buf;
}

/* Whether s starts with the trigger; *rest is what follows it. */
static bool strip_trigger(const char *s, const char *trigger, const char **rest)
{
    size_t n = strlen(trigger);
    const char *p = s[0] == ' ' && trigger[0] != ' ' ? s + 1 : s;
    if (strncmp(p, trigger, n) != 0)
        return false;
    *rest = p + n;
    return true;
}

/* The grammar of the calls the request allows; lazy: without the trigger's text. */
static int call_grammar(struct gen *g, bool lazy, struct strbuf *out)
{
    const struct tool_fmt *f = g->tools->f;
    const struct oai_request *q = &g->q;
    bool many = q->parallel_tool_calls && f != &formats[GT_LLAMA3];
    const char *begin = f->begin, *rest;
    bool trig_in_begin = lazy && f->begin[0] && strip_trigger(f->begin, f->trigger, &rest);
    if (trig_in_begin)
        begin = rest;
    struct strbuf b = {0};
    strbuf_append(&b, "root ::= ", 9);
    gram_ebnf_literal(&b, begin, strlen(begin));
    strbuf_append(&b, lazy && !trig_in_begin ? " first" : " call", lazy && !trig_in_begin ? 6 : 5);
    if (many) {
        strbuf_append(&b, " (", 2);
        gram_ebnf_literal(&b, f->sep, strlen(f->sep));
        strbuf_append(&b, " call)*", 7);
    }
    strbuf_append(&b, " ", 1);
    gram_ebnf_literal(&b, f->end, strlen(f->end));
    strbuf_append(&b, "\n", 1);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && !(lazy && !trig_in_begin))
            break;
        strbuf_append(&b, pass ? "first ::= " : "call ::= ", pass ? 10 : 9);
        int n = 0;
        for (size_t i = 0; i < q->n_tools; i++) {
            if (q->tool_choice == OAI_TOOLS_NAMED && strcmp(q->tools[i].name, q->tool_choice_name) != 0)
                continue;
            struct strbuf pre = {0};
            char suf[128], rule[48];
            call_prefix(f, q->tools[i].name, &pre);
            const char *p = strbuf_str(&pre);
            if (pass == 1 && !strip_trigger(p, f->trigger, &p)) {
                strbuf_free(&pre);
                continue;
            }
            if (n++)
                strbuf_append(&b, " | ", 3);
            gram_ebnf_literal(&b, p, strlen(p));
            snprintf(rule, sizeof(rule), " t%zu-args ", i);
            strbuf_append(&b, rule, strlen(rule));
            call_suffix(f, suf, sizeof(suf));
            gram_ebnf_literal(&b, suf, strlen(suf));
            strbuf_free(&pre);
        }
        strbuf_append(&b, "\n", 1);
        if (n == 0) {
            strbuf_free(&b);
            return gen_fail(g, SRV_MOD_SERVER, SRV_EINVAL, "tools", "no tool can be called");
        }
    }
    for (size_t i = 0; i < q->n_tools; i++)
        strbuf_append(&b, q->tools[i].params_ebnf, strlen(q->tools[i].params_ebnf));
    if (!b.data)
        return gen_fail(g, SRV_MOD_SERVER, SRV_EINTERNAL, NULL, "out of memory");
    *out = b;
    return 0;
}

static int compile_into(struct gen *g, const char *text, const char *param)
{
    char err[256];
    int rc = gram_compile(&g->grammar, text, strlen(text), "root", err, sizeof(err));
    if (rc != 0)
        return gen_fail(g, SRV_MOD_SERVER, rc == GRAM_ENOMEM ? SRV_EINTERNAL : SRV_EINVAL, param,
                        "the grammar could not be built: %.200s", err);
    return 0;
}

/* The generic format's addition to the system message: the tools and how to call them. */
static int generic_system(struct gen *g)
{
    struct strbuf b = {0};
    const char *intro = "You can call these tools (JSON schemas of their arguments):\n";
    const char *how = "\nTo call a tool, reply with one line per call:\n<tool_call>\n{\"name\": \"TOOL_NAME\", \"arguments\": {ARGUMENTS}}\n</tool_call>\nOtherwise answer normally.";
    strbuf_append(&b, intro, strlen(intro));
    strbuf_append(&b, g->q.tools_json, strlen(g->q.tools_json));
    strbuf_append(&b, how, strlen(how));
    if (!b.data)
        return gen_fail(g, SRV_MOD_SERVER, SRV_EINTERNAL, NULL, "out of memory");
    g->tools->system_text = b.data;
    return 0;
}

int gen_tools_setup(struct gen *g)
{
    const struct oai_request *q = &g->q;
    if (q->format_ebnf)
        return compile_into(g, q->format_ebnf, q->response_format ? "response_format" : "grammar");
    if (!q->chat || q->tool_choice == OAI_TOOLS_NONE || !q->n_tools)
        return 0;
    g->tools = calloc(1, sizeof(*g->tools));
    if (!g->tools)
        return gen_fail(g, SRV_MOD_SERVER, SRV_EINTERNAL, NULL, "out of memory");
    g->tools->f = &formats[g->sm->tool_format];
    g->tools->active = true;
    g->ts.special = g->tools->f->special_markers;
    int rc = g->sm->tool_format == GT_GENERIC ? generic_system(g) : 0;
    if (rc != 0)
        return rc;
    bool strict = false;
    for (size_t i = 0; i < q->n_tools; i++)
        strict = strict || q->tools[i].strict;
    bool forced = q->tool_choice == OAI_TOOLS_REQUIRED || q->tool_choice == OAI_TOOLS_NAMED;
    bool lazy = !forced && strict && g->tools->f->trigger[0];
    if (!forced && !lazy)
        return 0;
    struct strbuf text = {0};
    rc = call_grammar(g, lazy, &text);
    if (rc == 0)
        rc = compile_into(g, text.data, "tools");
    strbuf_free(&text);
    if (rc == 0 && lazy)
        g->grammar_trigger = g->tools->f->trigger;
    return rc;
}

bool gen_tools_render_special(const struct gen *g)
{
    return g->tools && g->tools->f->special_markers;
}

const char *gen_tools_template_json(const struct gen *g)
{
    return g->tools && g->tools->f != &formats[GT_GENERIC] ? g->q.tools_json : NULL;
}

const char *gen_tools_system_text(const struct gen *g)
{
    return g->tools ? g->tools->system_text : NULL;
}

/* ---- template views of stored or sent tool calls ---- */

char *gen_tool_calls_for_template(const char *wire, bool args_as_string)
{
    json_error_t e;
    json_t *arr = wire ? json_loads(wire, 0, &e) : NULL;
    if (!json_is_array(arr)) {
        json_decref(arr);
        return NULL;
    }
    size_t i;
    json_t *c;
    json_array_foreach(arr, i, c) {
        json_t *fn = json_object_get(c, "function");
        json_t *args = json_object_get(fn, "arguments");
        if (args_as_string || !json_is_string(args))
            continue;
        json_t *obj = json_loads(json_string_value(args), JSON_DECODE_ANY, &e);
        if (obj)
            json_object_set_new(fn, "arguments", obj);
    }
    char *out = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return out;
}

/* Appends one call in the generic (Hermes) text form. */
static void generic_call_text(struct strbuf *b, json_t *call)
{
    json_t *fn = json_object_get(call, "function");
    const char *name = json_string_value(json_object_get(fn, "name"));
    const char *args = json_string_value(json_object_get(fn, "arguments"));
    json_t *line = json_pack("{s:s}", "name", name ? name : "");
    char *head = json_dumps(line, JSON_COMPACT);
    json_decref(line);
    strbuf_append(b, "<tool_call>\n", 12);
    if (head) /* {"name":"f"} -> {"name": "f", "arguments": ...} */
        strbuf_append(b, head, strlen(head) - 1);
    strbuf_append(b, ", \"arguments\": ", 15);
    strbuf_append(b, args ? args : "{}", strlen(args ? args : "{}"));
    strbuf_append(b, "}\n</tool_call>", 14);
    free(head);
}

static char *own(char **owned, size_t *n_owned, char *s)
{
    if (s)
        owned[(*n_owned)++] = s;
    return s;
}

int gen_tools_view(const struct gen *g, const char *role, const char *content,
                   const char *tool_calls, const char *tool_call_id, const char *name,
                   struct tmpl_message *out, char **owned, size_t *n_owned)
{
    *out = (struct tmpl_message){.role = role, .content = content, .tool_call_id = tool_call_id,
                                 .name = name};
    bool generic = g->sm->tool_format == GT_GENERIC;
    if (strcmp(role, "tool") == 0 && generic) {
        struct strbuf b = {0};
        strbuf_append(&b, "<tool_response>\n", 16);
        strbuf_append(&b, content, strlen(content));
        strbuf_append(&b, "\n</tool_response>", 17);
        *out = (struct tmpl_message){.role = "user", .content = own(owned, n_owned, b.data)};
        return b.data ? 0 : -1;
    }
    if (!tool_calls)
        return 0;
    if (!generic) {
        out->tool_calls_json = own(owned, n_owned, gen_tool_calls_for_template(tool_calls, g->sm->tool_args_string));
        if (content && !content[0])
            out->content = NULL; /* as OpenAI sends it: content null beside tool calls */
        return 0;
    }
    json_error_t e;
    json_t *arr = json_loads(tool_calls, 0, &e);
    struct strbuf b = {0};
    strbuf_append(&b, content, strlen(content));
    size_t i;
    json_t *c;
    json_array_foreach(arr, i, c) {
        if (b.len)
            strbuf_append(&b, "\n", 1);
        generic_call_text(&b, c);
    }
    json_decref(arr);
    out->content = own(owned, n_owned, b.data ? b.data : strdup(""));
    return out->content ? 0 : -1;
}

void gen_tools_store_fields(const struct gen *g, char **content, char **tool_calls)
{
    *content = *tool_calls = NULL;
    json_t *calls = gen_tools_calls_json(g);
    if (!calls)
        return;
    *tool_calls = json_dumps(calls, JSON_COMPACT);
    json_decref(calls);
    const char *s = strbuf_str(&g->content);
    size_t n = g->tools->content_end;
    while (n && strchr(" \n\t\r", s[n - 1]))
        n--;
    *content = strndup(s, n);
}

/* ---- results ---- */

static void make_id(const struct gen *g, size_t i, char *out, size_t n)
{
    /* 9 alphanumerics (Mistral's templates require exactly that), unique per request */
    static const char digits[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    uint64_t h = gguf_fnv1a(GGUF_FNV1A_BASIS, g->request_id, strlen(g->request_id));
    h = gguf_fnv1a(h, &i, sizeof(i));
    char id[10];
    for (int k = 0; k < 9; k++, h /= 36)
        id[k] = digits[h % 36];
    id[9] = 0;
    snprintf(out, n, "%s", id);
}

/* Whether the final text holds calls; sets the finish reason to "tool_calls". */
void gen_tools_finish(struct gen *g)
{
    struct gen_tools *t = g->tools;
    if (!t || !t->active)
        return;
    const char *s = strbuf_str(&g->content);
    t->parsed_ok = parse_calls(t, s, g->content.len) == SCAN_DONE && t->n_calls > 0;
    if (!t->parsed_ok) {
        t->n_calls = 0;
        t->content_end = g->content.len;
        return;
    }
    for (size_t i = 0; i < t->n_calls; i++)
        if (!t->calls[i].id[0])
            snprintf(t->calls[i].id, sizeof(t->calls[i].id), "%s", t->sent[i].id);
    for (size_t i = 0; i < t->n_calls; i++)
        if (!t->calls[i].id[0])
            make_id(g, i, t->calls[i].id, sizeof(t->calls[i].id));
    if (g->finish_reason && strcmp(g->finish_reason, "stop") == 0)
        g->finish_reason = "tool_calls";
}

static json_t *call_json(const struct gen *g, const struct gt_call *c)
{
    const char *s = strbuf_str(&g->content);
    return json_pack("{s:s, s:s, s:{s:s, s:s%}}", "id", c->id, "type", "function", "function",
                     "name", c->name, "arguments", s + c->args_start, c->args_len);
}

json_t *gen_tools_calls_json(const struct gen *g)
{
    const struct gen_tools *t = g->tools;
    if (!t || !t->parsed_ok)
        return NULL;
    json_t *arr = json_array();
    for (size_t i = 0; i < t->n_calls; i++)
        json_array_append_new(arr, call_json(g, &t->calls[i]));
    return arr;
}

void gen_tools_message(const struct gen *g, json_t *msg)
{
    json_t *calls = gen_tools_calls_json(g);
    if (!calls)
        return;
    const char *s = strbuf_str(&g->content);
    size_t n = g->tools->content_end;
    while (n && strchr(" \n\t\r", s[n - 1]))
        n--;
    json_object_set_new(msg, "content", n ? json_stringn(s, n) : json_null());
    json_object_set_new(msg, "tool_calls", calls);
}

size_t gen_tools_content_len(const struct gen *g)
{
    const struct gen_tools *t = g->tools;
    return t && t->parsed_ok ? t->content_end : g->content.len;
}

/* ---- streaming ---- */

json_t *gen_tools_stream(struct gen *g, bool final, size_t *content_upto)
{
    struct gen_tools *t = g->tools;
    const char *s = strbuf_str(&g->content);
    *content_upto = g->content.len;
    if (!t || !t->active)
        return NULL;
    if (final) {
        gen_tools_finish(g);
    } else if (parse_calls(t, s, g->content.len) == SCAN_BAD) {
        t->n_calls = 0;
        t->content_end = g->content.len;
    }
    /* content stops where calls start (once a call is sure, or while it may be one); a
     * reply whose streamed calls turn out cut or malformed sends no more text */
    bool streamed = t->sent[0].head;
    *content_upto = !final || t->parsed_ok ? t->content_end
                    : streamed             ? t->sent_content
                                           : g->content.len;
    if (*content_upto < t->sent_content)
        *content_upto = t->sent_content;
    t->sent_content = *content_upto;
    json_t *deltas = json_array();
    for (size_t i = 0; i < t->n_calls; i++) {
        const struct gt_call *c = &t->calls[i];
        struct gt_sent *sent = &t->sent[i];
        if (!c->name_done || (!final && !sent->head && i + 1 == t->n_calls && !c->args_len))
            continue;
        json_t *fn = json_object();
        json_t *d = json_pack("{s:I}", "index", (json_int_t)i);
        if (!sent->head) {
            if (c->id[0])
                snprintf(sent->id, sizeof(sent->id), "%s", c->id);
            else
                make_id(g, i, sent->id, sizeof(sent->id));
            json_object_set_new(d, "id", json_string(sent->id));
            json_object_set_new(d, "type", json_string("function"));
            json_object_set_new(fn, "name", json_string(c->name));
            json_object_set_new(fn, "arguments", json_string(""));
            sent->head = true;
        }
        if (c->args_len > sent->args) {
            json_t *piece = json_stringn(s + c->args_start + sent->args, c->args_len - sent->args);
            if (piece) { /* never a cut UTF-8 character: the piece waits for the rest */
                json_object_set_new(fn, "arguments", piece);
                sent->args = c->args_len;
            }
        }
        if (json_object_size(fn) == 0) {
            json_decref(fn);
            json_decref(d);
            continue;
        }
        json_object_set_new(d, "function", fn);
        json_array_append_new(deltas, d);
    }
    if (json_array_size(deltas) == 0) {
        json_decref(deltas);
        return NULL;
    }
    return deltas;
}

/* ---- parsing alone (tests, tools) ---- */

int gen_tools_parse_text(int fmt, const char *text, json_t **calls, size_t *content_len)
{
    struct gen_tools t;
    memset(&t, 0, sizeof(t));
    t.f = &formats[fmt >= 0 && fmt < GT_N_FORMATS ? fmt : GT_GENERIC];
    size_t len = strlen(text);
    *calls = NULL;
    *content_len = len;
    if (parse_calls(&t, text, len) != SCAN_DONE || t.n_calls == 0)
        return 0;
    *calls = json_array();
    for (size_t i = 0; i < t.n_calls; i++)
        json_array_append_new(*calls, json_pack("{s:s, s:s%}", "name", t.calls[i].name, "arguments",
                                                text + t.calls[i].args_start, t.calls[i].args_len));
    *content_len = t.content_end;
    return (int)t.n_calls;
}
