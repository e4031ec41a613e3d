/* test_template.c - chat template interpreter: conformance with every fixture in
 * tests/fixtures/templates (rendered by Python jinja2; see its README), plus unit
 * tests for whitespace control, loops, scoping, namespaces, slicing, undefined
 * values, filters, errors with line numbers, limits and the built-in templates. */
#include "test.h"
#include "gguf.h"
#include "template.h"

#include <pthread.h>

#include <dirent.h>
#include <jansson.h>

#define NOW_2026_11_28 1795824000 /* the fixtures' fixed clock */

/* ------------------------------------------------------------------ helpers */

static char *render_msgs(const char *src, const struct tmpl_message *msgs, size_t n, bool gen,
                         int *rc, char *err, size_t err_len)
{
    struct tmpl *t = tmpl_new(src, strlen(src), err, err_len);
    if (!t) {
        *rc = TMPL_ESYNTAX;
        return NULL;
    }
    struct tmpl_params p = tmpl_default_params();
    p.messages = msgs;
    p.n_messages = n;
    p.add_generation_prompt = gen;
    p.bos_token = "<s>";
    p.eos_token = "</s>";
    p.now_unix = NOW_2026_11_28;
    char *out = NULL;
    *rc = tmpl_render(t, &p, &out, NULL, err, err_len);
    tmpl_free(t);
    return out;
}

static const struct tmpl_message two_msgs[] = {
    {.role = "user", .content = "Hi"},
    {.role = "assistant", .content = "Hello"},
};

/* Renders src with two_msgs; "ERR:" + message on failure. Static buffer. */
static const char *R(const char *src)
{
    static char buf[8192];
    char err[512];
    int rc;
    char *out = render_msgs(src, two_msgs, 2, true, &rc, err, sizeof(err));
    if (out)
        snprintf(buf, sizeof(buf), "%s", out);
    else
        snprintf(buf, sizeof(buf), "ERR:%s", err);
    free(out);
    return buf;
}

/* ------------------------------------------------------------------ conformance */

static int n_cases_checked;

static void check_fixture(const char *path)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    ASSERT_TRUE(root != NULL);
    const char *src = json_string_value(json_object_get(root, "template"));
    ASSERT_TRUE(src != NULL);
    char err[1024];
    struct tmpl *t = tmpl_new(src, json_string_length(json_object_get(root, "template")), err, sizeof(err));
    if (!t) {
        json_decref(root);
        TEST_FAIL_("%s: parse failed: %s", path, err);
    }
    json_t *cases = json_object_get(root, "cases");
    size_t i;
    json_t *c;
    int failed = 0;
    json_array_foreach(cases, i, c) {
        json_t *jm = json_object_get(c, "messages");
        size_t n = json_array_size(jm);
        struct tmpl_message *msgs = calloc(n ? n : 1, sizeof(*msgs));
        for (size_t k = 0; k < n; k++) {
            json_t *m = json_array_get(jm, k);
            msgs[k].role = json_string_value(json_object_get(m, "role"));
            msgs[k].content = json_string_value(json_object_get(m, "content"));
        }
        struct tmpl_params p = tmpl_default_params();
        p.messages = msgs;
        p.n_messages = n;
        p.add_generation_prompt = json_is_true(json_object_get(c, "add_generation_prompt"));
        p.bos_token = json_string_value(json_object_get(c, "bos_token"));
        p.eos_token = json_string_value(json_object_get(c, "eos_token"));
        p.now_unix = NOW_2026_11_28;
        char *out = NULL;
        size_t out_len = 0;
        int rc = tmpl_render(t, &p, &out, &out_len, err, sizeof(err));
        const char *name = json_string_value(json_object_get(c, "name"));
        json_t *expected = json_object_get(c, "expected");
        const char *raises = json_string_value(json_object_get(c, "raises"));
        const char *raised_by = json_string_value(json_object_get(c, "raised_by"));
        if (json_is_string(expected)) {
            const char *exp = json_string_value(expected);
            if (rc != 0) {
                fprintf(stderr, "  %s / %s: render failed (%d): %s\n", path, name, rc, err);
                failed++;
            } else if (out_len != json_string_length(expected) || memcmp(out, exp, out_len) != 0) {
                size_t d = 0;
                while (d < out_len && exp[d] && out[d] == exp[d])
                    d++;
                fprintf(stderr, "  %s / %s: mismatch at byte %zu\n    got:      \"%.60s\"\n    expected: \"%.60s\"\n",
                        path, name, d, out + (d > 20 ? d - 20 : 0), exp + (d > 20 ? d - 20 : 0));
                failed++;
            }
        } else {
            if (rc == 0) {
                fprintf(stderr, "  %s / %s: expected an error (%s), rendered\n", path, name, raises);
                failed++;
            } else if (raised_by && strcmp(raised_by, "raise_exception") == 0 &&
                       (rc != TMPL_ERAISE || strcmp(err, raises) != 0)) {
                fprintf(stderr, "  %s / %s: raised \"%s\" (%d), expected \"%s\"\n", path, name, err, rc, raises);
                failed++;
            }
        }
        n_cases_checked++;
        free(out);
        free(msgs);
    }
    tmpl_free(t);
    json_decref(root);
    ASSERT_INT_EQ(failed, 0);
}

static void test_fixtures_all(void)
{
    const char *dir = test_fixture("templates");
    char dirbuf[4096];
    snprintf(dirbuf, sizeof(dirbuf), "%s", dir);
    DIR *d = opendir(dirbuf);
    ASSERT_TRUE(d != NULL);
    struct dirent *e;
    int n_files = 0, n_failed = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json") != 0)
            continue;
        char path[8192];
        snprintf(path, sizeof(path), "%s/%s", dirbuf, e->d_name);
        int before = test_n_fail;
        test_cur_failed = 0;
        check_fixture(path);
        if (test_cur_failed)
            n_failed++;
        test_n_fail = before;
        n_files++;
    }
    closedir(d);
    fprintf(stderr, "  %d fixture files, %d cases, %d files failing\n", n_files, n_cases_checked, n_failed);
    test_cur_failed = 0;
    ASSERT_INT_OP(n_files, >=, 12);
    ASSERT_INT_OP(n_cases_checked, >=, 80);
    ASSERT_INT_EQ(n_failed, 0);
}

/* ------------------------------------------------------------------ whitespace */

static void test_whitespace_readme_example(void)
{
    /* the worked example of tests/fixtures/templates/README.md */
    ASSERT_STR_EQ(R("  {% if true %}\n  x\n  {%- endif %}\n{{ 1 }}\n{# c #}\n  {# c2 #}\nend\n"),
                  "  x1\nend");
}

static void test_whitespace_control(void)
{
    ASSERT_STR_EQ(R("a  {{- 'b' -}}  \n c"), "abc");
    ASSERT_STR_EQ(R("a\n{% if true %}\nb\n{% endif %}\nc"), "a\nb\nc");
    ASSERT_STR_EQ(R("a {{ 'x' }}\nb"), "a x\nb");              /* no trim after }} */
    ASSERT_STR_EQ(R("x  {% if true %}y{% endif %}"), "x  y");    /* lstrip only at line start */
    ASSERT_STR_EQ(R("x\n\t {% if true %}y{% endif %}"), "x\ny");
    ASSERT_STR_EQ(R("  {{ 'v' }}"), "  v");                       /* not for {{ */
    ASSERT_STR_EQ(R("a\n  {%+ if true %}b{% endif %}"), "a\n  b"); /* + disables lstrip */
    ASSERT_STR_EQ(R("{% if true +%}\nb{% endif %}"), "\nb");        /* + disables trim */
    ASSERT_STR_EQ(R("a\r\nb\r\n"), "a\nb");                          /* newline normalisation */
    ASSERT_STR_EQ(R("a\n\n"), "a\n");                                /* one trailing newline */
    ASSERT_STR_EQ(R("{{ 'x' }}\n  {%- if true %}y{% endif %}"), "xy");
    ASSERT_STR_EQ(R("a {#- c -#} b"), "ab");
    ASSERT_STR_EQ(R("\xe3\x80\x80" "a{{- 'b' }}"), "\xe3\x80\x80" "ab"); /* data stays */
    ASSERT_STR_EQ(R("a\xe3\x80\x80{{- 'b' }}"), "ab");                /* U+3000 is whitespace */
}

/* ------------------------------------------------------------------ statements */

static void test_loops(void)
{
    ASSERT_STR_EQ(R("{% for m in messages %}{{ loop.index }}/{{ loop.length }}:{{ m.role }}"
                    "{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %};{% endfor %}"),
                  "1/2:userF;2/2:assistantL;");
    ASSERT_STR_EQ(R("{% for i in range(5) %}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }},{% endfor %}"),
                  "054,143,232,321,410,");
    ASSERT_STR_EQ(R("{% for i in range(10) %}{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}"), "012");
    ASSERT_STR_EQ(R("{% for i in range(5) %}{% if i is odd %}{% continue %}{% endif %}{{ i }}{% endfor %}"), "024");
    ASSERT_STR_EQ(R("{% for x in [] %}a{% else %}empty{% endfor %}"), "empty");
    ASSERT_STR_EQ(R("{% for x in nothing %}a{% else %}u{% endfor %}"), "u");
    ASSERT_STR_EQ(R("{% for x in [1,2,3,4] if x is even %}{{ x }}{{ loop.length }}{% endfor %}"), "2242");
    ASSERT_STR_EQ(R("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}"), "a=1;b=2;");
    ASSERT_STR_EQ(R("{% for k, v in {'a': 1}|items %}{{ k }}{{ v }}{% endfor %}"), "a1");
    ASSERT_STR_EQ(R("{% for c in 'h\xc3\xa9!' %}[{{ c }}]{% endfor %}"), "[h][\xc3\xa9][!]");
    ASSERT_STR_EQ(R("{% for x in [1,2,3] %}{{ loop.previtem }}-{{ loop.nextitem }},{% endfor %}"), "-2,1-3,2-,");
    ASSERT_STR_EQ(R("{% for a in [1,2] %}{% for b in [3,4] %}{{ loop.index }}{% endfor %}{{ loop.index }}{% endfor %}"),
                  "121122");
    ASSERT_STR_EQ(R("{% for x in none %}{% endfor %}"), "ERR:line 1: 'NoneType' object is not iterable");
    /* jinja2 runs for-else unless an iteration reached the end of the body */
    ASSERT_STR_EQ(R("{% for x in [1, 2] %}{% if x == 1 %}{% break %}{% endif %}{% else %}E{% endfor %}"), "E");
    ASSERT_STR_EQ(R("{% for x in [1, 2] %}{% if x == 2 %}{% break %}{% endif %}{% else %}E{% endfor %}"), "");
    ASSERT_STR_EQ(R("{% for x in [1, 2] %}{% continue %}{% else %}E{% endfor %}"), "E");
    ASSERT_STR_EQ(R("{% for x in [] %}{% else %}{{ loop is defined }}{% endfor %}"), "False");
    ASSERT_STR_EQ(R("{% for i in [1] %}{% for j in [] %}{% else %}{{ loop.index }}{% endfor %}{% endfor %}"), "1");
}

static void test_scoping(void)
{
    /* a set inside a loop is local to the iteration; a top-level if opens no scope */
    ASSERT_STR_EQ(R("{% set x = 1 %}{% for i in [1,2] %}{{ x }}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}"), "12121");
    ASSERT_STR_EQ(R("{% if true %}{% set y = 'in' %}{% endif %}{{ y }}"), "in");
    ASSERT_STR_EQ(R("{% set messages = messages[1:] %}{{ messages|length }}{{ messages[0].role }}"), "1assistant");
    ASSERT_STR_EQ(R("{% set ns = namespace(n=0, s='') %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
                    "{% set ns.s = ns.s ~ m.role[0] %}{% endfor %}{{ ns.n }}{{ ns.s }}"), "2ua");
    ASSERT_STR_EQ(R("{% set ns = namespace() %}{% set ns.flag = true %}{{ ns.flag }}{{ ns.missing is defined }}"), "TrueFalse");
    ASSERT_STR_EQ(R("{% set x = 5 %}{% set x = 7 %}{% set a, b = [1, 2] %}{{ x }}{{ a }}{{ b }}"), "712");
    ASSERT_STR_EQ(R("{% set x %}a{{ 1 + 1 }}b{% endset %}[{{ x }}]"), "[a2b]");
    ASSERT_STR_EQ(R("{% set x | upper %}ab{% endset %}{{ x }}"), "AB");
    ASSERT_STR_EQ(R("{% filter upper %}hi {{ 'there' }}{% endfilter %}"), "HI THERE");
    ASSERT_STR_EQ(R("{% filter trim %}  x  {% endfilter %}|"), "x|");
    /* set-block and filter-block bodies have their own scope */
    ASSERT_STR_EQ(R("{% set y %}{% set x = 1 %}{% endset %}{{ x is defined }}"), "False");
    ASSERT_STR_EQ(R("{% set x = 0 %}{% filter upper %}{{ x }}{% set x = 1 %}{{ x }}{% endfilter %}{{ x }}"), "010");
    ASSERT_STR_EQ(R("{% set v = 1 %}{% set x = 2 %}{{ x.y is defined }}"), "False");
}

static void test_macros(void)
{
    ASSERT_STR_EQ(R("{% macro m(a, b=2) %}{{ a }}{{ b }}{{ c }}{% endmacro %}{% set c = 5 %}{{ m(1) }}{{ m(1, b=3) }}"),
                  "125135");
    ASSERT_STR_EQ(R("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}"), "321");
    ASSERT_STR_EQ(R("{% macro m() %}{% set local = 1 %}{% endmacro %}{{ m() }}{{ local is defined }}"), "False");
    ASSERT_STR_EQ(R("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}"),
                  "ERR:line 1: macro 'm' takes not more than 1 argument(s)");
    ASSERT_STR_EQ(R("{%- macro m(x) -%}\n  <{{ x }}>\n{%- endmacro -%}\n{{ m('a') ~ m('b') }}"), "<a><b>");
    /* runaway recursion stops at the stack cap (main runs every test on a thread with
     * the 256 KiB stack of the server's request threads: no overflow) */
    ASSERT_STR_CONTAINS(R("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"), "recursion too deep");
    ASSERT_STR_CONTAINS(R("{% macro f(n) %}{{ f(n + 1) ~ n }}{% endmacro %}{{ f(0) }}"), "recursion too deep");
}

/* ------------------------------------------------------------------ expressions */

static void test_expressions(void)
{
    ASSERT_STR_EQ(R("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }}"),
                  "7 9 3 -4 2 3.5 1024");
    ASSERT_STR_EQ(R("{{ 'ab' * 3 }} {{ [1] * 2 }} {{ 'a' ~ 1 ~ none ~ true }} {{ 'a' + 'b' }}"),
                  "ababab [1, 1] a1NoneTrue ab");
    ASSERT_STR_EQ(R("{{ 1 == 1.0 }} {{ 1 == '1' }} {{ true == 1 }} {{ [1, 'a'] == [1, 'a'] }} {{ none == none }}"),
                  "True False True True True");
    ASSERT_STR_EQ(R("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' < 'b' }} {{ 2 >= 2 }} {{ 1 != 2 }}"),
                  "True False True True True");
    ASSERT_STR_EQ(R("{{ 'ell' in 'hello' }} {{ 'x' not in 'hello' }} {{ 'role' in messages[0] }} {{ 2 in [1,2] }}"),
                  "True True True True");
    ASSERT_STR_EQ(R("{{ 0 or 'b' }} {{ 'a' and 'b' }} {{ '' and 'b' }}| {{ not 0 }} {{ not x is defined }}"),
                  "b b | True True");
    ASSERT_STR_EQ(R("{{ 'y' if 1 else 'n' }} {{ 'y' if 0 else 'n' }} [{{ 'y' if 0 }}]"), "y n []");
    ASSERT_STR_EQ(R("{{ 'a' + ' b ' | trim + 'c' }}"), "abc");       /* filter binds tighter */
    ASSERT_STR_EQ(R("{{ -1 }} {{ - 2 + 3 }} {{ 1.5 }} {{ 1e20 }} {{ 0.1 + 0.2 }} {{ 10 / 4 }} {{ 4 / 2 }}"),
                  "-1 1 1.5 1e+20 0.30000000000000004 2.5 2.0");
    ASSERT_STR_EQ(R("{{ [1, 'a', none, true, {'k': (1, 2)}] }} {{ (1,) }} {{ {'q': \"it's\"} }}"),
                  "[1, 'a', None, True, {'k': (1, 2)}] (1,) {'q': \"it's\"}");
    ASSERT_STR_EQ(R("{{ \"a\\tb\\n\\u00e9\\x41\\\\\" }}"), "a\tb\n\xc3\xa9" "A\\");
    ASSERT_STR_EQ(R("{{ 'multi\nline' }}"), "multi\nline");
    ASSERT_STR_EQ(R("{{ 'a' 'b' }}"), "ab");
    ASSERT_STR_EQ(R("{{ messages[0]['role'] }} {{ messages[-1].content }} {{ messages[0].nope }}|"),
                  "user Hello |");
    ASSERT_STR_EQ(R("{{ {'items': 1}.items() | list }} {{ {'a': 1}.get('a') }} {{ {'a': 1}.get('b', 2) }} {{ {}.get('x') }}"),
                  "[('items', 1)] 1 2 None");
    ASSERT_STR_EQ(R("{{ 9223372036854775807 + 1 }}"), "ERR:line 1: integer overflow");
}

static void test_slicing(void)
{
    ASSERT_STR_EQ(R("{{ 'abcdef'[1:3] }} {{ 'abcdef'[::-1] }} {{ 'abcdef'[::2] }} {{ 'abcdef'[-2:] }} {{ 'abc'[:-1] }}"),
                  "bc fedcba ace ef ab");
    ASSERT_STR_EQ(R("{{ [1,2,3,4][1:] }} {{ [1,2,3,4][::-1] }} {{ [1,2,3,4][5:] }} {{ [1,2,3][-10:1] }} {{ [1,2,3,4][3:0:-2] }}"),
                  "[2, 3, 4] [4, 3, 2, 1] [] [1] [4, 2]");
    ASSERT_STR_EQ(R("{{ 'h\xc3\xa9llo'[1] }} {{ 'h\xc3\xa9llo'[::-1] }} {{ 'h\xc3\xa9llo'|length }} {{ 'abc'[5] is defined }}"),
                  "\xc3\xa9 oll\xc3\xa9h 5 False");
    ASSERT_STR_EQ(R("{{ 'a</think>b</think>c'.split('</think>')[-1] }}"), "c");
}

static void test_undefined(void)
{
    ASSERT_STR_EQ(R("[{{ nope }}] {{ nope is defined }} {{ nope is undefined }} {{ nope|length }} {{ nope|default('d') }}"),
                  "[] False True 0 d");
    ASSERT_STR_EQ(R("{% if nope %}t{% else %}f{% endif %}{% for x in nope %}x{% endfor %}"), "f");
    ASSERT_STR_EQ(R("{{ nope ~ 'a' }} {{ 'a' in nope }} {{ nope == nope }} {{ nope|string }}|"), "a False True |");
    /* arithmetic with, or lookups on, an undefined value are errors (jinja2's Undefined) */
    ASSERT_STR_EQ(R("{{ 'text' + nope }}"), "ERR:line 1: 'nope' is undefined");
    ASSERT_STR_EQ(R("\n{{ nope.attr }}"), "ERR:line 2: 'nope' is undefined");
    ASSERT_STR_EQ(R("{{ nope['k'] }}"), "ERR:line 1: 'nope' is undefined");
    ASSERT_STR_EQ(R("{{ nope() }}"), "ERR:line 1: 'nope' is undefined");
    ASSERT_STR_EQ(R("{{ messages[0].missing.deeper }}"), "ERR:line 1: 'missing' is undefined");
    ASSERT_STR_EQ(R("{{ none | selectattr('type', 'equalto', 'x') | list | length }}"), "0");
}

static void test_filters(void)
{
    ASSERT_STR_EQ(R("{{ '  a b \n'|trim }}|{{ 'aBc'|upper }}|{{ 'aBc'|lower }}|{{ 'hello world'|capitalize }}|{{ 'hello world'|title }}"),
                  "a b|ABC|abc|Hello world|Hello World");
    ASSERT_STR_EQ(R("{{ [1,2,3]|length }} {{ [1,2,3]|first }} {{ [1,2,3]|last }} {{ [3,1,2]|sort }} {{ [1,2]|reverse|list }} {{ [1,2]|sum }}"),
                  "3 1 3 [1, 2, 3] [2, 1] 3");
    ASSERT_STR_EQ(R("{{ ['a','b']|join(', ') }} {{ 'abc'|list }} {{ 'a-b'|replace('-', '+') }} {{ ['a','A','b']|unique|list }}"),
                  "a, b ['a', 'b', 'c'] a+b ['a', 'b']");
    ASSERT_STR_EQ(R("{{ ''|default('d') }}|{{ ''|default('d', true) }}|{{ 0|string }}|{{ '42'|int + 1 }}|{{ 'x'|int }}|{{ -3|abs }}"),
                  "|d|0|43|0|3");
    ASSERT_STR_EQ(R("{{ messages|map(attribute='role')|join(',') }} {{ messages|selectattr('role', 'equalto', 'user')|list|length }}"
                    " {{ messages|rejectattr('role', 'equalto', 'user')|map(attribute='content')|first }}"),
                  "user,assistant 1 Hello");
    ASSERT_STR_EQ(R("{{ [1,2,3,4]|select('odd')|list }} {{ [1,2,3,4]|reject('equalto', 2)|list }} {{ ['a', ' b']|map('trim')|list }}"),
                  "[1, 3] [1, 3, 4] ['a', 'b']");
    ASSERT_STR_EQ(R("{{ 'a\nb\n\nc'|indent(2) }}|{{ 'a\nb'|indent(2, first=true) }}|{{ 'x\n'|indent }}"),
                  "a\n  b\n\n  c|  a\n  b|x\n");
    ASSERT_STR_EQ(R("{{ 'h\xc3\xa9llo w\xc3\xb6rld'|upper }}|{{ '\xc3\x89" "COLE \xd0\x9c\xd0\x98\xd0\xa0'|lower }}|"
                    "{{ \"it's a-b\"|title }}|{{ \"it's a-b\".title() }}|{{ 'stra\xc3\x9f' 'e'|upper }}"),
                  "H\xc3\x89LLO W\xc3\x96RLD|\xc3\xa9" "cole \xd0\xbc\xd0\xb8\xd1\x80|It's A-B|It'S A-B|STRASSE");
    ASSERT_STR_EQ(R("{{ '<a href=\"x\">&</a>'|e }} {{ '<b>'|safe }}"), "&lt;a href=&#34;x&#34;&gt;&amp;&lt;/a&gt; <b>");
    ASSERT_STR_EQ(R("{{ {'b': 1, 'a': 2}|dictsort }} {{ ['b', 'A', 'c']|max }} {{ [3, 1]|min }}"),
                  "[('a', 2), ('b', 1)] c 1");
}

static void test_tojson(void)
{
    ASSERT_STR_EQ(R("{{ {'a': 'b', 'n': [1, 2.5, true, none]}|tojson }}"), "{\"a\": \"b\", \"n\": [1, 2.5, true, null]}");
    ASSERT_STR_EQ(R("{{ '\xe5\xa4\xa7 \"q\" \\\\ \n\t\x01'|tojson }}"), "\"\xe5\xa4\xa7 \\\"q\\\" \\\\ \\n\\t\\u0001\"");
    ASSERT_STR_EQ(R("{{ [1, [2], {}, []]|tojson(indent=2) }}"), "[\n  1,\n  [\n    2\n  ],\n  {},\n  []\n]");
    ASSERT_STR_EQ(R("{{ {'k': {'x': 1}}|tojson(indent=4) }}"), "{\n    \"k\": {\n        \"x\": 1\n    }\n}");
    ASSERT_STR_EQ(R("{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }} {{ '\xc3\xa9'|tojson(ensure_ascii=true) }}"),
                  "{\"a\": 2, \"b\": 1} \"\\u00e9\"");
    ASSERT_STR_EQ(R("{{ nope|tojson }}"), "ERR:line 1: Object of type Undefined is not JSON serializable");
}

static void test_string_methods(void)
{
    ASSERT_STR_EQ(R("{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith('bc') }} {{ 'abc'.endswith(('x', 'c')) }}"),
                  "True True True");
    ASSERT_STR_EQ(R("[{{ '  x  '.strip() }}][{{ '  x  '.lstrip() }}][{{ '  x  '.rstrip() }}][{{ 'xxaxx'.strip('x') }}]"),
                  "[x][x  ][  x][a]");
    ASSERT_STR_EQ(R("{{ ' a  b '.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }}"),
                  "['a', 'b'] ['a', 'b', '', 'c'] ['a', 'b,c'] ['a,b', 'c']");
    ASSERT_STR_EQ(R("{{ 'aXbX'.replace('X', '-') }} {{ 'ab'.upper() }} {{ 'AB'.lower() }} {{ 'hi there'.title() }} {{ '-'.join(['a','b']) }}"),
                  "a-b- AB ab Hi There a-b");
    ASSERT_STR_EQ(R("{{ strftime_now('%d %b %Y') }} {{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(3, 0, -1)|list }}"),
                  "28 Nov 2026 [0, 1, 2] [1, 3, 5] [3, 2, 1]");
    ASSERT_STR_EQ(R("{{ dict(a=1) }} {{ namespace(a=1).a }} {{ x is string }} {{ 'x' is string }} {{ {} is mapping }} {{ [] is iterable }}"),
                  "{'a': 1} 1 False True True True");
}

/* ------------------------------------------------------------------ errors */

static void expect_parse_error(const char *src, const char *msg)
{
    char err[256];
    struct tmpl *t = tmpl_new(src, strlen(src), err, sizeof(err));
    if (t) {
        tmpl_free(t);
        TEST_FAIL_("parsed, expected error \"%s\": %s", msg, src);
    }
    ASSERT_STR_EQ(err, msg);
}

static void test_parse_errors(void)
{
    expect_parse_error("a\nb\n{% extends 'x' %}", "line 3: unsupported construct: 'extends' tag");
    expect_parse_error("{% include 'x' %}", "line 1: unsupported construct: 'include' tag");
    expect_parse_error("\n\n\n{{ x | nosuchfilter }}", "line 4: unsupported construct: no filter named 'nosuchfilter'");
    expect_parse_error("{% if x is nosuchtest %}{% endif %}", "line 1: unsupported construct: no test named 'nosuchtest'");
    expect_parse_error("x\n{% if x %}\nfoo", "line 2: unclosed 'if' (missing '{% elif %}')");
    expect_parse_error("{% for x in y %}{% endif %}", "line 1: unexpected 'endif'");
    expect_parse_error("{{ 'abc }}", "line 1: unterminated string literal");
    expect_parse_error("{{ x ", "line 1: unexpected end of template, expected '}}'");
    expect_parse_error("{# open", "line 1: unclosed comment");
    expect_parse_error("{% break %}", "line 1: 'break' outside of a loop");
    expect_parse_error("{% for x in y recursive %}{% endfor %}", "line 1: unsupported construct: recursive for loop");
    expect_parse_error("{{ (((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((1)))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))) }}",
                       "line 1: template nested too deeply (limit 64)");
    expect_parse_error("{% raw %}x{% endraw %}", "line 1: unsupported construct: 'raw' tag");
}

static void test_render_errors(void)
{
    ASSERT_STR_EQ(R("{{ raise_exception('custom message') }}"), "ERR:custom message");
    ASSERT_STR_EQ(R("a\n\n{{ 1 + 'a' }}"), "ERR:line 3: unsupported operand type(s) for +: 'int' and 'str'");
    ASSERT_STR_EQ(R("{{ 1 // 0 }}"), "ERR:line 1: integer division or modulo by zero");
    ASSERT_STR_EQ(R("{% set x = 1 %}{% set x.y = 2 %}"), "ERR:line 1: cannot assign attribute on non-namespace object");
    char err[256];
    int rc;
    char *out = render_msgs("{{ raise_exception('boom') }}", NULL, 0, false, &rc, err, sizeof(err));
    ASSERT_TRUE(out == NULL);
    ASSERT_INT_EQ(rc, TMPL_ERAISE);
    ASSERT_STR_EQ(err, "boom");
}

static void test_limits(void)
{
    char err[256];
    const char *src = "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}x{% endfor %}{% endfor %}{% endfor %}";
    /* 10^9 iterations: stopped by the loop cap long before */
    struct tmpl *t = tmpl_new(src, strlen(src), err, sizeof(err));
    ASSERT_TRUE(t != NULL);
    struct tmpl_params p = tmpl_default_params();
    char *out = NULL;
    int rc = tmpl_render(t, &p, &out, NULL, err, sizeof(err));
    ASSERT_INT_EQ(rc, TMPL_ELIMIT);
    ASSERT_TRUE(out == NULL);
    p.max_output_bytes = 100;
    p.max_loop_iterations = 10000000;
    rc = tmpl_render(t, &p, &out, NULL, err, sizeof(err));
    ASSERT_INT_EQ(rc, TMPL_ELIMIT);
    ASSERT_STR_CONTAINS(err, "output larger than 100 bytes");
    tmpl_free(t);

    const char *wide = "a\nb\n{% for i in range(100) %}{{ 'x' * 100 }}{% endfor %}";
    t = tmpl_new(wide, strlen(wide), err, sizeof(err));
    ASSERT_TRUE(t != NULL);
    p = tmpl_default_params();
    p.max_output_bytes = 1000;
    rc = tmpl_render(t, &p, &out, NULL, err, sizeof(err));
    ASSERT_INT_EQ(rc, TMPL_ELIMIT);
    ASSERT_STR_EQ(err, "line 3: output larger than 1000 bytes");
    tmpl_free(t);

    const char *grow = "{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}";
    t = tmpl_new(grow, strlen(grow), err, sizeof(err));
    ASSERT_TRUE(t != NULL);
    p = tmpl_default_params();
    p.max_memory_bytes = 8 << 20;
    rc = tmpl_render(t, &p, &out, NULL, err, sizeof(err));
    ASSERT_INT_EQ(rc, TMPL_ELIMIT);
    tmpl_free(t);

    ASSERT_STR_CONTAINS(R("{{ range(100001)|length }}"), "too big");
    ASSERT_STR_EQ(R("{{ range(100000)|length }}"), "100000");
    ASSERT_STR_CONTAINS(R("{{ 'x' * 10000000000 }}"), "too large");
}

static void test_null_content_and_reasoning(void)
{
    struct tmpl_message m[] = {
        {.role = "assistant", .content = NULL, .reasoning_content = "thought"},
        {.role = "user", .content = "x"},
    };
    char err[256];
    int rc;
    char *out = render_msgs("{% for m in messages %}{{ m.content is none }}{{ m.reasoning_content }}"
                            "{{ m.reasoning_content is defined }};{% endfor %}",
                            m, 2, false, &rc, err, sizeof(err));
    ASSERT_TRUE(out != NULL);
    ASSERT_STR_EQ(out, "TruethoughtTrue;FalseFalse;");
    free(out);
}

/* Qwen3's own template, as the tiny-qwen3 fixture carries it: the system turn, a
 * thought dropped from the history, the generation prompt. */
static void test_qwen3_template(void)
{
    char err[256];
    struct gguf_file *f = NULL;
    ASSERT_INT_EQ(gguf_open(&f, test_fixture("models/tiny-qwen3-q8_0.gguf"), err, sizeof(err)), 0);
    char *src = NULL;
    int rc = gguf_get_str(f, "tokenizer.chat_template", &src);
    gguf_close(f);
    ASSERT_INT_EQ(rc, 0);
    struct tmpl_message m[] = {
        {.role = "system", .content = "Be brief."},
        {.role = "user", .content = "Hi"},
        {.role = "assistant", .content = "<think>\nplan\n</think>\n\nHello!"},
        {.role = "user", .content = "Again"},
    };
    char *out = render_msgs(src, m, 4, true, &rc, err, sizeof(err));
    free(src);
    ASSERT_TRUE(out != NULL);
    ASSERT_STR_EQ(out, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                       "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nAgain<|im_end|>\n"
                       "<|im_start|>assistant\n");
    free(out);
}

/* ------------------------------------------------------------------ built-ins */

static char *render_builtin(const char *name, const struct tmpl_message *m, size_t n, bool gen,
                            const char *bos, const char *eos, char *err, size_t err_len)
{
    const char *src = tmpl_builtin(name);
    if (!src) {
        snprintf(err, err_len, "no builtin %s", name);
        return NULL;
    }
    struct tmpl *t = tmpl_new(src, strlen(src), err, err_len);
    if (!t)
        return NULL;
    struct tmpl_params p = tmpl_default_params();
    p.messages = m;
    p.n_messages = n;
    p.add_generation_prompt = gen;
    p.bos_token = bos;
    p.eos_token = eos;
    char *out = NULL;
    tmpl_render(t, &p, &out, NULL, err, err_len);
    tmpl_free(t);
    return out;
}

static void test_builtins_parse(void)
{
    const char *const *names = tmpl_builtin_names();
    int n = 0;
    for (; names[n]; n++) {
        const char *src = tmpl_builtin(names[n]);
        ASSERT_TRUE(src != NULL);
        char err[256];
        struct tmpl *t = tmpl_new(src, strlen(src), err, sizeof(err));
        if (!t)
            TEST_FAIL_("builtin %s: %s", names[n], err);
        tmpl_free(t);
    }
    ASSERT_INT_EQ(n, 5);
    ASSERT_TRUE(tmpl_builtin("nope") == NULL);
}

static void test_builtins_render(void)
{
    const struct tmpl_message conv[] = {
        {.role = "system", .content = "Be brief."},
        {.role = "user", .content = "Hi"},
        {.role = "assistant", .content = "Hello!"},
        {.role = "user", .content = "Bye"},
    };
    char err[256];
    char *out = render_builtin("chatml", conv, 4, true, "", "", err, sizeof(err));
    ASSERT_STR_EQ(out, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                       "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
                       "<|im_start|>assistant\n");
    free(out);
    out = render_builtin("llama3", conv, 4, true, "<|begin_of_text|>", "<|eot_id|>", err, sizeof(err));
    ASSERT_STR_EQ(out, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                       "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                       "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
                       "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
                       "<|start_header_id|>assistant<|end_header_id|>\n\n");
    free(out);
    out = render_builtin("llama2", conv, 4, true, "<s>", "</s>", err, sizeof(err));
    ASSERT_STR_EQ(out, "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Bye [/INST]");
    free(out);
    out = render_builtin("mistral", conv, 4, true, "<s>", "</s>", err, sizeof(err));
    ASSERT_STR_EQ(out, "<s>[INST]Hi[/INST]Hello!</s>[INST]Be brief.\n\nBye[/INST]");
    free(out);
    out = render_builtin("mistral", conv + 1, 1, true, "<s>", "</s>", err, sizeof(err));
    ASSERT_STR_EQ(out, "<s>[INST]Hi[/INST]");
    free(out);
    const struct tmpl_message bad[] = {{.role = "user", .content = "a"}, {.role = "user", .content = "b"}};
    out = render_builtin("llama2", bad, 2, true, "<s>", "</s>", err, sizeof(err));
    ASSERT_TRUE(out == NULL);
    ASSERT_STR_EQ(err, "Conversation roles must alternate user/assistant/user/assistant/...");
}

/* The built-ins must behave like the real family templates on the fixture cases
 * their layout covers. */
static void check_builtin_against(const char *builtin, const char *fixture, bool only_with_system)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s", test_fixture(fixture));
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    ASSERT_TRUE(root != NULL);
    size_t i;
    json_t *c;
    int checked = 0, failed = 0;
    json_array_foreach(json_object_get(root, "cases"), i, c) {
        json_t *jm = json_object_get(c, "messages");
        size_t n = json_array_size(jm);
        if (only_with_system &&
            strcmp(json_string_value(json_object_get(json_array_get(jm, 0), "role")), "system") != 0)
            continue;
        struct tmpl_message *msgs = calloc(n ? n : 1, sizeof(*msgs));
        for (size_t k = 0; k < n; k++) {
            msgs[k].role = json_string_value(json_object_get(json_array_get(jm, k), "role"));
            msgs[k].content = json_string_value(json_object_get(json_array_get(jm, k), "content"));
        }
        char err[512];
        char *out = render_builtin(builtin, msgs, n, json_is_true(json_object_get(c, "add_generation_prompt")),
                                   json_string_value(json_object_get(c, "bos_token")),
                                   json_string_value(json_object_get(c, "eos_token")), err, sizeof(err));
        const char *exp = json_string_value(json_object_get(c, "expected"));
        const char *raises = json_string_value(json_object_get(c, "raises"));
        const char *name = json_string_value(json_object_get(c, "name"));
        if (exp && (!out || strcmp(out, exp) != 0)) {
            fprintf(stderr, "  builtin %s vs %s / %s: %s\n", builtin, fixture, name, out ? "mismatch" : err);
            failed++;
        } else if (!exp && (out || strcmp(err, raises) != 0)) {
            fprintf(stderr, "  builtin %s vs %s / %s: expected error \"%s\"\n", builtin, fixture, name, raises);
            failed++;
        }
        checked++;
        free(out);
        free(msgs);
    }
    json_decref(root);
    ASSERT_INT_OP(checked, >, 0);
    ASSERT_INT_EQ(failed, 0);
}

static void test_builtins_match_fixtures(void)
{
    check_builtin_against("deepseek-r1", "templates/deepseek-ai-DeepSeek-R1-Distill-Llama-8B.json", false);
    check_builtin_against("mistral", "templates/mistralai-Mistral-Nemo-Instruct-2407.json", false);
    check_builtin_against("chatml", "templates/Qwen-Qwen2.5-7B-Instruct.json", true);
}

/* Every test runs on a thread with the stack of the server's request threads (256 KiB,
 * server/http/http.c): templates must render, or fail cleanly, within it. */
static void *run_all(void *result)
{
    RUN(test_fixtures_all);
    RUN(test_whitespace_readme_example);
    RUN(test_whitespace_control);
    RUN(test_loops);
    RUN(test_scoping);
    RUN(test_macros);
    RUN(test_expressions);
    RUN(test_slicing);
    RUN(test_undefined);
    RUN(test_filters);
    RUN(test_tojson);
    RUN(test_string_methods);
    RUN(test_parse_errors);
    RUN(test_render_errors);
    RUN(test_limits);
    RUN(test_null_content_and_reasoning);
    RUN(test_builtins_parse);
    RUN(test_builtins_render);
    RUN(test_builtins_match_fixtures);
    RUN(test_qwen3_template);
    *(int *)result = TEST_DONE();
    return NULL;
}

int main(void)
{
    pthread_attr_t attr;
    pthread_t t;
    int result = 1;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    if (pthread_create(&t, &attr, run_all, &result) != 0)
        return 1;
    pthread_join(t, NULL);
    return result;
}
