/* test_gen_tools.c - tool-call formats: each model family's output parsed into calls
 * (names, the arguments' exact JSON text, the content before them), partial or broken
 * calls refused, the format detected from each fixture template, and tool calls turned
 * into what templates expect (arguments as objects or as text). */
#include "test.h"

#include "gen/gen.h"

#include <jansson.h>

static void expect_calls(int fmt, const char *text, int n, const char *name0, const char *args0,
                         size_t content_len)
{
    json_t *calls;
    size_t clen;
    int got = gen_tools_parse_text(fmt, text, &calls, &clen);
    if (got != n) {
        json_decref(calls);
        fprintf(stderr, "  FAIL %s: %d calls in \"%s\", expected %d\n", gen_tool_format_name(fmt), got, text, n);
        test_cur_failed = 1;
        return;
    }
    if (n > 0) {
        json_t *c = json_array_get(calls, 0);
        if (strcmp(json_string_value(json_object_get(c, "name")), name0) != 0 ||
            strcmp(json_string_value(json_object_get(c, "arguments")), args0) != 0) {
            fprintf(stderr, "  FAIL %s: call 0 is %s(%s), expected %s(%s)\n", gen_tool_format_name(fmt),
                    json_string_value(json_object_get(c, "name")),
                    json_string_value(json_object_get(c, "arguments")), name0, args0);
            test_cur_failed = 1;
        }
        if (clen != content_len) {
            fprintf(stderr, "  FAIL %s: content length %zu, expected %zu\n", gen_tool_format_name(fmt), clen, content_len);
            test_cur_failed = 1;
        }
    }
    json_decref(calls);
}

static void test_families(void)
{
    expect_calls(GT_HERMES, "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
                 1, "get_weather", "{\"city\": \"Paris\"}", 14);
    expect_calls(GT_HERMES, "<tool_call>\n{\"arguments\": {\"a\": [1, \"}\"]}, \"name\": \"f\"}\n</tool_call>\n<tool_call>\n{\"name\": \"g\", \"arguments\": {}}\n</tool_call>\n",
                 2, "f", "{\"a\": [1, \"}\"]}", 0);
    expect_calls(GT_LLAMA3, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}", 1, "get_weather",
                 "{\"city\": \"Paris\"}", 0);
    expect_calls(GT_LLAMA3, "<|python_tag|>{\"type\": \"function\", \"name\": \"f\", \"parameters\": {}}", 1, "f", "{}", 0);
    expect_calls(GT_MISTRAL, "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"x\": 1}, \"id\": \"abcdefghi\"}, {\"name\": \"g\", \"arguments\": {}}]",
                 2, "f", "{\"x\": 1}", 0);
    expect_calls(GT_DEEPSEEK_R1, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
                 1, "get_weather", "{\"city\": \"Paris\"}", 0);
    expect_calls(GT_FIREFUNCTION, " functools[{\"name\": \"f\", \"arguments\": {\"q\": \"x\"}}]", 1, "f", "{\"q\": \"x\"}", 0);
    expect_calls(GT_FUNCTIONARY_V31, "Sure <function=get_weather>{\"city\": \"Paris\"}</function>", 1, "get_weather",
                 "{\"city\": \"Paris\"}", 5);
    expect_calls(GT_FUNCTIONARY_V32, ">>>get_weather\n{\"city\": \"Paris\"}>>>calc\n{\"e\": \"1+1\"}", 2, "get_weather",
                 "{\"city\": \"Paris\"}", 0);
    expect_calls(GT_COMMAND_R, "<|START_ACTION|>[\n    {\"tool_call_id\": \"0\", \"tool_name\": \"f\", \"parameters\": {\"a\": true}}\n]<|END_ACTION|>",
                 1, "f", "{\"a\": true}", 0);
    expect_calls(GT_GENERIC, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"k\": \"v\"}}\n</tool_call>", 1, "f", "{\"k\": \"v\"}", 0);
}

static void test_not_calls(void)
{
    const char *texts[] = {
        "Just an answer.",
        "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}", /* cut */
        "<tool_call>\n{\"arguments\": {}}\n</tool_call>",           /* no name */
        "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call> and more text after",
        "<tool_call>\nnot json\n</tool_call>",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        expect_calls(GT_HERMES, texts[i], 0, NULL, NULL, 0);
    expect_calls(GT_LLAMA3, "The answer is {\"name\"}", 0, NULL, NULL, 0);
    expect_calls(GT_MISTRAL, "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {}}", 0, NULL, NULL, 0);
}

static void test_detect_fixtures(void)
{
    struct {
        const char *file;
        int fmt;
    } cases[] = {
        {"Qwen-Qwen2.5-7B-Instruct.json", GT_HERMES},
        {"NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.json", GT_HERMES},
        {"meta-llama-Llama-3.1-8B-Instruct.json", GT_LLAMA3},
        {"mistralai-Mistral-Nemo-Instruct-2407.json", GT_MISTRAL},
        {"deepseek-ai-DeepSeek-R1-Distill-Llama-8B.json", GT_DEEPSEEK_R1},
        {"meetkai-functionary-medium-v3.1.json", GT_FUNCTIONARY_V31},
        {"CohereForAI-c4ai-command-r7b-12-2024-tool_use.json", GT_COMMAND_R},
        {"google-gemma-2-2b-it.json", GT_GENERIC},
        {"microsoft-Phi-3.5-mini-instruct.json", GT_GENERIC},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char rel[256];
        snprintf(rel, sizeof(rel), "templates/%s", cases[i].file);
        json_error_t e;
        json_t *j = json_load_file(test_fixture(rel), 0, &e);
        ASSERT_TRUE(j != NULL);
        int f = gen_tool_format_detect(json_string_value(json_object_get(j, "template")), NULL);
        json_decref(j);
        if (f != cases[i].fmt)
            TEST_FAIL_("%s: detected %s, expected %s", cases[i].file, gen_tool_format_name(f),
                       gen_tool_format_name(cases[i].fmt));
    }
    ASSERT_INT_EQ(gen_tool_format_detect("anything", "mistral"), GT_MISTRAL);
    ASSERT_INT_EQ(gen_tool_format_detect("<tool_call> tools", "auto"), GT_HERMES);
}

static void test_template_view(void)
{
    const char *wire = "[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}},"
                       "{\"id\":\"c2\",\"type\":\"function\",\"function\":{\"name\":\"g\",\"arguments\":\"not json\"}}]";
    char *obj = gen_tool_calls_for_template(wire, false);
    ASSERT_STR_EQ(obj, "[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":{\"a\":1}}},"
                       "{\"id\":\"c2\",\"type\":\"function\",\"function\":{\"name\":\"g\",\"arguments\":\"not json\"}}]");
    free(obj);
    char *str = gen_tool_calls_for_template(wire, true);
    ASSERT_STR_EQ(str, wire);
    free(str);
    ASSERT_TRUE(gen_tool_calls_for_template("{}", false) == NULL);
}

int main(void)
{
    RUN(test_families);
    RUN(test_not_calls);
    RUN(test_detect_fixtures);
    RUN(test_template_view);
    return TEST_DONE();
}
