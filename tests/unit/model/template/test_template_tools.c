/* test_template_tools.c - chat templates with tools: every fixture template that uses
 * `tools` or `tool_calls` renders the tool conversations of
 * tests/fixtures/template-tools/cases.json byte for byte as Jinja2 rendered them
 * (make_cases.py beside that file), or fails where Jinja2 raised; plus the binding of
 * tools and tool fields and a bad tools text. */
#include "test.h"
#include "template.h"

#include <jansson.h>

#define NOW_2026_11_28 1795824000

/* A case's message array as tmpl_message structs (strings borrowed from the JSON,
 * tool_calls dumped into *owned, which the caller frees). */
static struct tmpl_message *case_messages(json_t *jm, size_t *n, char ***owned)
{
    *n = json_array_size(jm);
    struct tmpl_message *m = calloc(*n + 1, sizeof(*m));
    *owned = calloc(*n + 1, sizeof(char *));
    for (size_t k = 0; k < *n; k++) {
        json_t *j = json_array_get(jm, k);
        m[k].role = json_string_value(json_object_get(j, "role"));
        m[k].content = json_string_value(json_object_get(j, "content"));
        m[k].tool_call_id = json_string_value(json_object_get(j, "tool_call_id"));
        m[k].name = json_string_value(json_object_get(j, "name"));
        json_t *calls = json_object_get(j, "tool_calls");
        if (calls)
            m[k].tool_calls_json = (*owned)[k] = json_dumps(calls, JSON_COMPACT);
    }
    return m;
}

static int check_case(const struct tmpl *t, json_t *c, const char *tools, const char *file)
{
    size_t n;
    char **owned;
    struct tmpl_message *m = case_messages(json_object_get(c, "messages"), &n, &owned);
    struct tmpl_params p = tmpl_default_params();
    p.messages = m;
    p.n_messages = n;
    p.tools_json = tools;
    p.add_generation_prompt = json_is_true(json_object_get(c, "add_generation_prompt"));
    p.bos_token = json_string_value(json_object_get(c, "bos_token"));
    p.eos_token = json_string_value(json_object_get(c, "eos_token"));
    p.now_unix = NOW_2026_11_28;
    char *out = NULL, err[512];
    size_t out_len = 0;
    int rc = tmpl_render(t, &p, &out, &out_len, err, sizeof(err));
    const char *name = json_string_value(json_object_get(c, "name"));
    json_t *exp = json_object_get(c, "expected");
    const char *raises = json_string_value(json_object_get(c, "raises"));
    int failed = 0;
    if (json_is_string(exp)) {
        const char *e = json_string_value(exp);
        if (rc != 0) {
            fprintf(stderr, "  %s / %s: render failed: %s\n", file, name, err);
            failed = 1;
        } else if (out_len != json_string_length(exp) || memcmp(out, e, out_len) != 0) {
            size_t d = 0;
            while (d < out_len && e[d] && out[d] == e[d])
                d++;
            fprintf(stderr, "  %s / %s: mismatch at byte %zu\n    got:      \"%.80s\"\n    expected: \"%.80s\"\n",
                    file, name, d, out + (d > 20 ? d - 20 : 0), e + (d > 20 ? d - 20 : 0));
            failed = 1;
        }
    } else if (rc == 0) {
        fprintf(stderr, "  %s / %s: expected an error (%s), rendered\n", file, name, raises);
        failed = 1;
    } else if (rc == TMPL_ERAISE && strcmp(err, raises) != 0) {
        fprintf(stderr, "  %s / %s: raised \"%s\", expected \"%s\"\n", file, name, err, raises);
        failed = 1;
    }
    free(out);
    for (size_t k = 0; k < n; k++)
        free(owned[k]);
    free(owned);
    free(m);
    return failed;
}

static void test_tool_cases(void)
{
    json_error_t jerr;
    json_t *root = json_load_file(test_fixture("template-tools/cases.json"), 0, &jerr);
    ASSERT_TRUE(root != NULL);
    char *tools = json_dumps(json_object_get(root, "tools"), JSON_COMPACT);
    size_t i, k;
    json_t *tf, *c;
    int failed = 0, checked = 0, templates = 0;
    json_array_foreach(json_object_get(root, "templates"), i, tf) {
        char rel[512];
        const char *file = json_string_value(json_object_get(tf, "file"));
        snprintf(rel, sizeof(rel), "templates/%s", file);
        json_t *fx = json_load_file(test_fixture(rel), 0, &jerr);
        ASSERT_TRUE(fx != NULL);
        json_t *src = json_object_get(fx, "template");
        char err[512];
        struct tmpl *t = tmpl_new(json_string_value(src), json_string_length(src), err, sizeof(err));
        ASSERT_TRUE(t != NULL);
        templates++;
        json_array_foreach(json_object_get(tf, "cases"), k, c) {
            failed += check_case(t, c, tools, file);
            checked++;
        }
        tmpl_free(t);
        json_decref(fx);
    }
    free(tools);
    json_decref(root);
    ASSERT_INT_EQ(failed, 0);
    ASSERT_INT_OP(templates, >=, 10);
    ASSERT_INT_OP(checked, >=, 40);
}

static void test_tool_binding(void)
{
    const char *src = "{{ tools | length }}|{{ tools[0].function.name }}|{{ tools[0].x | tojson }}"
                      "{% for m in messages %}|{{ m.role }}:{{ m.tool_call_id }}:{{ m.name }}:"
                      "{{ m.tool_calls is defined }}{% if m.tool_calls %}:{{ m.tool_calls[0].function.arguments.a }}{% endif %}{% endfor %}";
    char err[256];
    struct tmpl *t = tmpl_new(src, strlen(src), err, sizeof(err));
    ASSERT_TRUE(t != NULL);
    struct tmpl_message m[] = {
        {.role = "assistant", .content = NULL,
         .tool_calls_json = "[{\"id\":\"c1\",\"function\":{\"name\":\"f\",\"arguments\":{\"a\":[1,2.5,true,null]}}}]"},
        {.role = "tool", .content = "ok", .tool_call_id = "c1", .name = "f"},
    };
    struct tmpl_params p = tmpl_default_params();
    p.messages = m;
    p.n_messages = 2;
    p.tools_json = "[{\"function\":{\"name\":\"f\"},\"x\":{\"k\":\"é\\\"\",\"n\":1.0}}]";
    char *out = NULL;
    ASSERT_INT_EQ(tmpl_render(t, &p, &out, NULL, err, sizeof(err)), 0);
    ASSERT_STR_EQ(out, "1|f|{\"k\": \"é\\\"\", \"n\": 1.0}|assistant:::True:[1, 2.5, True, None]|tool:c1:f:False");
    free(out);
    p.tools_json = "[{\"function\":";
    ASSERT_INT_EQ(tmpl_render(t, &p, &out, NULL, err, sizeof(err)), TMPL_EINVAL);
    ASSERT_STR_CONTAINS(err, "tools: invalid JSON");
    ASSERT_TRUE(out == NULL);
    tmpl_free(t);
}

/* |safe makes markupsafe's Markup: `+` with a plain string escapes that string (what
 * Functionary's tool list does with descriptions and tojson output). */
static void test_markup_concat(void)
{
    const char *src = "{% set x = '\"q\" & <b>' %}"
                      "{{ \"<a '\"|safe + x + \"'>\"|safe }}|{{ x + \"&\" }}|{{ (x|e) + '\"' }}|{{ 5|safe + x }}";
    char err[256];
    struct tmpl *t = tmpl_new(src, strlen(src), err, sizeof(err));
    ASSERT_TRUE(t != NULL);
    struct tmpl_message m = {.role = "user", .content = "x"};
    struct tmpl_params p = tmpl_default_params();
    p.messages = &m;
    p.n_messages = 1;
    char *out = NULL;
    ASSERT_INT_EQ(tmpl_render(t, &p, &out, NULL, err, sizeof(err)), 0);
    ASSERT_STR_EQ(out, "<a '&#34;q&#34; &amp; &lt;b&gt;'>|\"q\" & <b>&|&#34;q&#34; &amp; &lt;b&gt;&#34;|5&#34;q&#34; &amp; &lt;b&gt;");
    free(out);
    tmpl_free(t);
}

int main(void)
{
    RUN(test_tool_cases);
    RUN(test_markup_concat);
    RUN(test_tool_binding);
    return TEST_DONE();
}
