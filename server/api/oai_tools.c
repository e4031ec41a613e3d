/* oai_tools.c - the tool-use and structured-output parts of a request body: `tools`,
 * `tool_choice`, `parallel_tool_calls`, `response_format`, `grammar`, and the tool
 * fields of messages (an assistant's `tool_calls`, a tool result's `tool_call_id`).
 *
 * Schemas are translated to grammar text here (gram_schema_ebnf) and the grammar is
 * compiled once as a check, so an unsupported keyword or a bad grammar is a 400 naming
 * the parameter before anything runs. Tool calls are kept in OpenAI's wire form
 * (arguments as a JSON string), compact, with ids. Runs on connection threads. */
#include "api/oai.h"
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OAI_MAX_TOOLS 128
#define OAI_MAX_GRAMMAR (256 * 1024)


/* Checks that grammar text compiles (root rule `root`). */
static int check_grammar(const char *text, const char *param, struct oai_error *e)
{
    struct gram *g = NULL;
    char err[256];
    int rc = gram_compile(&g, text, strlen(text), "root", err, sizeof(err));
    gram_unref(g);
    if (rc == GRAM_ENOMEM)
        return oai_fail(e, param, SRV_EINTERNAL, "out of memory");
    if (rc != 0)
        return oai_fail(e, param, SRV_EINVAL, "%s: %s", param, err);
    return 0;
}

/* Grammar rules for a JSON schema (root rule root_name, others under prefix) appended to
 * out; a schema the translator refuses is a 400 naming the keyword. */
static int schema_rules(const json_t *schema, const char *prefix, const char *root_name,
                        const char *param, struct strbuf *out, struct oai_error *e)
{
    char *text = json_dumps(schema, JSON_COMPACT | JSON_ENCODE_ANY);
    char err[256], kw[64];
    if (!text)
        return oai_fail(e, param, SRV_EINTERNAL, "out of memory");
    struct gram_json *doc = gram_json_parse(text, strlen(text), err, sizeof(err));
    free(text);
    if (!doc)
        return oai_fail(e, param, SRV_EINVAL, "%s is not a JSON schema: %s", param, err);
    int rc = gram_schema_ebnf(doc, prefix, root_name, out, err, sizeof(err), kw, sizeof(kw));
    gram_json_free(doc);
    if (rc == GRAM_ESCHEMA)
        return oai_fail(e, param, SRV_EINVAL, "%s: %s (supported: see the README, \"Structured outputs\")",
                     param, err);
    if (rc != 0)
        return oai_fail(e, param, SRV_EINTERNAL, "out of memory");
    return 0;
}

/* ---- response_format and grammar ---- */

static int parse_response_format(const json_t *body, struct oai_request *q, struct oai_error *e)
{
    json_t *rf = json_object_get(body, "response_format");
    if (!rf || json_is_null(rf))
        return 0;
    json_t *type = json_object_get(rf, "type");
    if (!json_is_object(rf) || !json_is_string(type))
        return oai_fail(e, "response_format", SRV_ETYPE,
                     "response_format must be an object with a string 'type'");
    const char *t = json_string_value(type);
    struct strbuf g = {0};
    if (strcmp(t, "text") == 0)
        return 0;
    if (strcmp(t, "json_object") == 0) {
        q->response_format = OAI_RF_JSON_OBJECT;
        gram_any_json_ebnf("j", "root", true, &g);
    } else if (strcmp(t, "json_schema") == 0) {
        json_t *js = json_object_get(rf, "json_schema");
        if (!json_is_object(js))
            return oai_fail(e, "response_format.json_schema", SRV_EMISSING,
                         "response_format.json_schema must be an object with a 'schema'");
        json_t *name = json_object_get(js, "name");
        if (name && !json_is_string(name))
            return oai_fail(e, "response_format.json_schema.name", SRV_ETYPE,
                         "response_format.json_schema.name must be a string");
        json_t *schema = json_object_get(js, "schema");
        if (!json_is_object(schema) && !json_is_boolean(schema))
            return oai_fail(e, "response_format.json_schema.schema", SRV_EMISSING,
                         "response_format.json_schema.schema must be a JSON schema object");
        q->response_format = OAI_RF_JSON_SCHEMA;
        if (schema_rules(schema, "j", "root", "response_format.json_schema.schema", &g, e) != 0) {
            strbuf_free(&g);
            return -1;
        }
    } else {
        return oai_fail(e, "response_format.type", SRV_EINVAL,
                     "response_format.type must be one of text, json_object, json_schema");
    }
    if (!g.data)
        return oai_fail(e, "response_format", SRV_EINTERNAL, "out of memory");
    q->format_ebnf = g.data;
    return check_grammar(q->format_ebnf, "response_format", e);
}

static int parse_grammar(const json_t *body, struct oai_request *q, struct oai_error *e)
{
    json_t *gr = json_object_get(body, "grammar");
    if (!gr || json_is_null(gr))
        return 0;
    if (!json_is_string(gr))
        return oai_fail(e, "grammar", SRV_ETYPE, "grammar must be a string (the grammar format of the README)");
    if (json_string_length(gr) > OAI_MAX_GRAMMAR)
        return oai_fail(e, "grammar", SRV_EINVAL, "grammar is longer than %d bytes", OAI_MAX_GRAMMAR);
    if (q->format_ebnf)
        return oai_fail(e, "grammar", SRV_EINVAL, "grammar and response_format cannot be combined");
    if (!(q->format_ebnf = strdup(json_string_value(gr))))
        return oai_fail(e, "grammar", SRV_EINTERNAL, "out of memory");
    return check_grammar(q->format_ebnf, "grammar", e);
}

/* ---- tools ---- */

static bool valid_function_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

static int parse_tool(const json_t *t, size_t i, struct oai_tool *out, struct oai_error *e)
{
    char param[96];
    snprintf(param, sizeof(param), "tools[%zu]", i);
    json_t *type = json_object_get(t, "type");
    if (!json_is_object(t) || !json_is_string(type))
        return oai_fail(e, param, SRV_ETYPE, "%s must be an object with a string 'type'", param);
    if (strcmp(json_string_value(type), "function") != 0) {
        snprintf(param, sizeof(param), "tools[%zu].type", i);
        return oai_fail(e, param, SRV_EINVAL, "%s must be 'function'", param);
    }
    json_t *fn = json_object_get(t, "function");
    snprintf(param, sizeof(param), "tools[%zu].function", i);
    if (!json_is_object(fn))
        return oai_fail(e, param, SRV_EMISSING, "%s must be an object", param);
    json_t *name = json_object_get(fn, "name");
    snprintf(param, sizeof(param), "tools[%zu].function.name", i);
    if (!json_is_string(name) || !valid_function_name(json_string_value(name)))
        return oai_fail(e, param, SRV_EINVAL, "%s must be 1-64 characters of [A-Za-z0-9_.-]", param);
    json_t *desc = json_object_get(fn, "description");
    snprintf(param, sizeof(param), "tools[%zu].function.description", i);
    if (desc && !json_is_string(desc) && !json_is_null(desc))
        return oai_fail(e, param, SRV_ETYPE, "%s must be a string", param);
    json_t *strict = json_object_get(fn, "strict");
    snprintf(param, sizeof(param), "tools[%zu].function.strict", i);
    if (strict && !json_is_boolean(strict) && !json_is_null(strict))
        return oai_fail(e, param, SRV_ETYPE, "%s must be a boolean", param);
    out->strict = json_is_true(strict);
    if (!(out->name = strdup(json_string_value(name))))
        return oai_fail(e, param, SRV_EINTERNAL, "out of memory");
    json_t *params = json_object_get(fn, "parameters");
    snprintf(param, sizeof(param), "tools[%zu].function.parameters", i);
    struct strbuf g = {0};
    char prefix[32], root[32];
    snprintf(prefix, sizeof(prefix), "t%zu-", i);
    snprintf(root, sizeof(root), "t%zu-args", i);
    int rc;
    if (!params || json_is_null(params)) {
        rc = gram_any_json_ebnf(prefix, root, true, &g) == 0 ? 0 : -1;
    } else if (!json_is_object(params)) {
        return oai_fail(e, param, SRV_ETYPE, "%s must be a JSON schema object", param);
    } else {
        rc = schema_rules(params, prefix, root, param, &g, e);
    }
    out->params_ebnf = g.data;
    if (rc != 0 || !g.data)
        return rc != 0 ? -1 : oai_fail(e, param, SRV_EINTERNAL, "out of memory");
    /* the arguments must describe an object: check that the rules compile */
    struct strbuf check = {0};
    strbuf_append(&check, "root ::= ", 9);
    strbuf_append(&check, root, strlen(root));
    strbuf_append(&check, "\n", 1);
    strbuf_append(&check, g.data, g.len);
    rc = check.data ? check_grammar(check.data, param, e) : oai_fail(e, param, SRV_EINTERNAL, "out of memory");
    strbuf_free(&check);
    return rc;
}

static int parse_tool_choice(const json_t *body, struct oai_request *q, struct oai_error *e)
{
    json_t *tc = json_object_get(body, "tool_choice");
    q->tool_choice = q->n_tools ? OAI_TOOLS_AUTO : OAI_TOOLS_NONE;
    if (!tc || json_is_null(tc))
        return 0;
    if (json_is_string(tc)) {
        const char *s = json_string_value(tc);
        if (strcmp(s, "none") == 0)
            q->tool_choice = OAI_TOOLS_NONE;
        else if (strcmp(s, "auto") == 0)
            q->tool_choice = q->n_tools ? OAI_TOOLS_AUTO : OAI_TOOLS_NONE;
        else if (strcmp(s, "required") == 0)
            q->tool_choice = OAI_TOOLS_REQUIRED;
        else
            return oai_fail(e, "tool_choice", SRV_EINVAL,
                         "tool_choice must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\": ...}}");
    } else {
        json_t *fn = json_object_get(tc, "function");
        json_t *name = json_object_get(fn, "name");
        if (!json_is_object(tc) || !json_is_string(name))
            return oai_fail(e, "tool_choice", SRV_EINVAL,
                         "tool_choice must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\": ...}}");
        q->tool_choice = OAI_TOOLS_NAMED;
        if (!(q->tool_choice_name = strdup(json_string_value(name))))
            return oai_fail(e, "tool_choice", SRV_EINTERNAL, "out of memory");
        bool found = false;
        for (size_t i = 0; i < q->n_tools && !found; i++)
            found = strcmp(q->tools[i].name, q->tool_choice_name) == 0;
        if (!found)
            return oai_fail(e, "tool_choice", SRV_EINVAL, "tool_choice names '%.64s', which is not in tools",
                         q->tool_choice_name);
    }
    if (q->tool_choice != OAI_TOOLS_NONE && q->n_tools == 0)
        return oai_fail(e, "tool_choice", SRV_EINVAL, "tool_choice requires tools");
    return 0;
}

int oai_parse_tools(const json_t *body, struct oai_request *q, struct oai_error *e)
{
    if (parse_response_format(body, q, e) != 0 || parse_grammar(body, q, e) != 0)
        return -1;
    q->parallel_tool_calls = true;
    json_t *ptc = json_object_get(body, "parallel_tool_calls");
    if (ptc && !json_is_null(ptc)) {
        if (!json_is_boolean(ptc))
            return oai_fail(e, "parallel_tool_calls", SRV_ETYPE, "parallel_tool_calls must be a boolean");
        q->parallel_tool_calls = json_is_true(ptc);
    }
    json_t *tools = json_object_get(body, "tools");
    if (tools && !json_is_null(tools)) {
        if (!json_is_array(tools))
            return oai_fail(e, "tools", SRV_ETYPE, "tools must be an array");
        if (json_array_size(tools) > OAI_MAX_TOOLS)
            return oai_fail(e, "tools", SRV_EINVAL, "tools has more than %d entries", OAI_MAX_TOOLS);
        size_t n = json_array_size(tools);
        q->tools = calloc(n + 1, sizeof(*q->tools));
        if (!q->tools)
            return oai_fail(e, "tools", SRV_EINTERNAL, "out of memory");
        for (size_t i = 0; i < n; i++) {
            q->n_tools = i + 1;
            if (parse_tool(json_array_get(tools, i), i, &q->tools[i], e) != 0)
                return -1;
            for (size_t k = 0; k < i; k++)
                if (strcmp(q->tools[k].name, q->tools[i].name) == 0)
                    return oai_fail(e, "tools", SRV_EINVAL, "two tools are named '%s'", q->tools[i].name);
        }
        if (n && !(q->tools_json = json_dumps(tools, JSON_COMPACT)))
            return oai_fail(e, "tools", SRV_EINTERNAL, "out of memory");
    }
    if (parse_tool_choice(body, q, e) != 0)
        return -1;
    if (q->format_ebnf && q->tool_choice != OAI_TOOLS_NONE)
        return oai_fail(e, "tools", SRV_EINVAL, "tools cannot be combined with response_format or grammar");
    return 0;
}

/* ---- messages ---- */

/* One tool call of an assistant message, normalised into arr. */
static int parse_call(const json_t *c, size_t mi, size_t ci, json_t *arr, struct oai_error *e)
{
    char param[96];
    snprintf(param, sizeof(param), "messages[%zu].tool_calls[%zu]", mi, ci);
    json_t *fn = json_object_get(c, "function");
    json_t *id = json_object_get(c, "id");
    json_t *name = json_object_get(fn, "name");
    json_t *args = json_object_get(fn, "arguments");
    if (!json_is_object(c) || !json_is_object(fn) || !json_is_string(name))
        return oai_fail(e, param, SRV_EINVAL, "%s must be {\"id\", \"type\": \"function\", \"function\": {\"name\", \"arguments\"}}",
                     param);
    if (id && !json_is_string(id))
        return oai_fail(e, param, SRV_ETYPE, "%s.id must be a string", param);
    char *args_text = NULL;
    if (json_is_string(args))
        args_text = strdup(json_string_value(args));
    else if (json_is_object(args))
        args_text = json_dumps(args, JSON_COMPACT); /* lenient: an object as the arguments */
    else if (!args || json_is_null(args))
        args_text = strdup("{}");
    else
        return oai_fail(e, param, SRV_ETYPE, "%s.function.arguments must be a JSON string", param);
    if (!args_text)
        return oai_fail(e, param, SRV_EINTERNAL, "out of memory");
    char gen_id[32];
    snprintf(gen_id, sizeof(gen_id), "call_%zu_%zu", mi, ci);
    json_array_append_new(arr, json_pack("{s:s, s:s, s:{s:s, s:s}}", "id",
                                         id ? json_string_value(id) : gen_id, "type", "function",
                                         "function", "name", json_string_value(name),
                                         "arguments", args_text));
    free(args_text);
    return 0;
}

int oai_parse_message_tools(const json_t *m, size_t i, const char *role, struct oai_message *out,
                            struct oai_error *e)
{
    char param[96];
    if (strcmp(role, "tool") == 0) {
        json_t *id = json_object_get(m, "tool_call_id");
        snprintf(param, sizeof(param), "messages[%zu].tool_call_id", i);
        if (!json_is_string(id))
            return oai_fail(e, param, SRV_EMISSING, "%s is required for a tool message", param);
        if (!(out->tool_call_id = strdup(json_string_value(id))))
            return oai_fail(e, param, SRV_EINTERNAL, "out of memory");
        json_t *name = json_object_get(m, "name");
        if (json_is_string(name) && !(out->name = strdup(json_string_value(name))))
            return oai_fail(e, param, SRV_EINTERNAL, "out of memory");
        return 0;
    }
    json_t *calls = json_object_get(m, "tool_calls");
    if (!calls || json_is_null(calls))
        return 0;
    snprintf(param, sizeof(param), "messages[%zu].tool_calls", i);
    if (strcmp(role, "assistant") != 0)
        return oai_fail(e, param, SRV_EINVAL, "only assistant messages carry tool_calls");
    if (!json_is_array(calls))
        return oai_fail(e, param, SRV_ETYPE, "%s must be an array", param);
    json_t *arr = json_array();
    size_t ci;
    json_t *c;
    json_array_foreach(calls, ci, c) {
        if (parse_call(c, i, ci, arr, e) != 0) {
            json_decref(arr);
            return -1;
        }
    }
    out->tool_calls = json_array_size(arr) ? json_dumps(arr, JSON_COMPACT) : NULL;
    json_decref(arr);
    return 0;
}

void oai_tools_fini(struct oai_request *q)
{
    for (size_t i = 0; i < q->n_tools; i++) {
        free(q->tools[i].name);
        free(q->tools[i].params_ebnf);
    }
    free(q->tools);
    free(q->tools_json);
    free(q->tool_choice_name);
    free(q->format_ebnf);
}
