/* Unit tests for server/api/oai.c: request bodies are either fully parsed or refused with
 * an error naming the parameter. */
#include "api/oai.h"
#include "server.h"
#include "test.h"

/* Parses `text` as a chat body; returns the rc and fills q/e. */
static int parse(const char *text, bool chat, struct oai_request *q, struct oai_error *e)
{
    json_t *j = json_loads(text, 0, NULL);
    oai_request_init(q);
    int rc = j ? oai_parse(j, chat, q, e) : -2;
    json_decref(j);
    return rc;
}

static void expect_error(const char *text, const char *param, const char *code)
{
    struct oai_request q;
    struct oai_error e;
    int rc = parse(text, true, &q, &e);
    oai_request_fini(&q);
    ASSERT_INT_EQ(rc, -1);
    struct srv_error_info info = srv_error_of(SRV_MOD_SERVER, e.code);
    ASSERT_INT_EQ(info.status, 400);
    ASSERT_STR_EQ(e.param, param);
    ASSERT_STR_EQ(info.oai_code, code);
    ASSERT_TRUE(e.message[0] != 0);
}

static void test_full_request(void)
{
    struct oai_request q;
    struct oai_error e;
    const char *body =
        "{\"model\":\"m1\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
        "{\"type\":\"text\",\"text\":\"b\"}]}],\"max_completion_tokens\":7,\"temperature\":0,"
        "\"top_p\":0.5,\"top_k\":4,\"min_p\":0.1,\"seed\":42,\"stop\":[\"x\",\"yy\"],"
        "\"presence_penalty\":0.5,\"frequency_penalty\":-0.5,\"logprobs\":true,"
        "\"top_logprobs\":3,\"user\":\"u\",\"stream\":true,"
        "\"stream_options\":{\"include_usage\":true},\"logit_bias\":{\"5\":-100}}";
    ASSERT_INT_EQ(parse(body, true, &q, &e), 0);
    ASSERT_STR_EQ(q.model, "m1");
    ASSERT_INT_EQ(q.n_msgs, 2);
    ASSERT_STR_EQ(q.msgs[1].content, "ab");
    ASSERT_INT_EQ(q.max_tokens, 7);
    ASSERT_NEAR(q.temperature, 0, 0);
    ASSERT_INT_EQ(q.top_k, 4);
    ASSERT_TRUE(q.has_seed && q.seed == 42);
    ASSERT_INT_EQ(q.n_stop, 2);
    ASSERT_STR_EQ(q.stop[1], "yy");
    ASSERT_TRUE(q.stream && q.include_usage && q.logprobs);
    ASSERT_INT_EQ(q.top_logprobs, 3);
    ASSERT_INT_EQ(q.n_bias, 1);
    ASSERT_INT_EQ(q.bias[0].id, 5);
    oai_request_fini(&q);
}

static void test_defaults(void)
{
    struct oai_request q;
    struct oai_error e;
    ASSERT_INT_EQ(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", true, &q, &e), 0);
    ASSERT_TRUE(q.model == NULL);
    ASSERT_INT_EQ(q.max_tokens, -1);
    ASSERT_NEAR(q.temperature, 1.0, 0);
    ASSERT_TRUE(!q.stream && !q.include_usage && q.reasoning_split);
    oai_request_fini(&q);
}

static void test_errors_name_the_param(void)
{
    expect_error("{}", "messages", "missing_required_parameter");
    expect_error("{\"messages\":[]}", "messages", "invalid_value");
    expect_error("{\"messages\":\"hi\"}", "messages", "invalid_type");
    expect_error("{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", "messages[0].role",
                 "invalid_value");
    expect_error("{\"messages\":[{\"role\":\"user\"}]}", "messages[0].content", "invalid_type");
    expect_error("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}",
                 "messages[0].content[0].type", "invalid_value");
    const char *ok = "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]";
    char b[512];
    snprintf(b, sizeof(b), "{%s,\"n\":2}", ok);
    expect_error(b, "n", "invalid_value");
    snprintf(b, sizeof(b), "{%s,\"max_tokens\":-5}", ok);
    expect_error(b, "max_tokens", "invalid_value");
    snprintf(b, sizeof(b), "{%s,\"max_tokens\":\"ten\"}", ok);
    expect_error(b, "max_tokens", "invalid_type");
    snprintf(b, sizeof(b), "{%s,\"max_tokens\":1e300}", ok);
    expect_error(b, "max_tokens", "invalid_type");
    snprintf(b, sizeof(b), "{%s,\"temperature\":3}", ok);
    expect_error(b, "temperature", "invalid_value");
    snprintf(b, sizeof(b), "{%s,\"stream\":\"yes\"}", ok);
    expect_error(b, "stream", "invalid_type");
    snprintf(b, sizeof(b), "{%s,\"stream_options\":{\"include_usage\":true}}", ok);
    expect_error(b, "stream_options", "invalid_value");
    snprintf(b, sizeof(b), "{%s,\"stop\":5}", ok);
    expect_error(b, "stop", "invalid_type");
    snprintf(b, sizeof(b), "{%s,\"model\":\"../etc/passwd\"}", ok);
    expect_error(b, "model", "invalid_value");
    snprintf(b, sizeof(b), "{%s,\"session_id\":\"1; DROP TABLE x\"}", ok);
    expect_error(b, "session_id", "invalid_value");
    snprintf(b, sizeof(b), "{%s,\"logit_bias\":{\"abc\":1}}", ok);
    expect_error(b, "logit_bias", "invalid_value");
    snprintf(b, sizeof(b), "{%s,\"top_logprobs\":2}", ok);
    expect_error(b, "top_logprobs", "invalid_value");
}

static void test_stop_array_cap(void)
{
    char body[20000];
    int n = snprintf(body, sizeof(body), "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[");
    for (int i = 0; i < 1000; i++)
        n += snprintf(body + n, sizeof(body) - (size_t)n, "%s\"s%d\"", i ? "," : "", i);
    snprintf(body + n, sizeof(body) - (size_t)n, "]}");
    expect_error(body, "stop", "invalid_value");
}

static void test_legacy_prompt(void)
{
    struct oai_request q;
    struct oai_error e;
    ASSERT_INT_EQ(parse("{\"prompt\":\"Once\",\"max_tokens\":3}", false, &q, &e), 0);
    ASSERT_STR_EQ(q.prompt, "Once");
    oai_request_fini(&q);
    oai_request_init(&q);
    json_t *j = json_loads("{\"prompt\":7}", 0, NULL);
    ASSERT_INT_EQ(oai_parse(j, false, &q, &e), -1);
    ASSERT_STR_EQ(e.param, "prompt");
    json_decref(j);
    oai_request_fini(&q);
}

static void test_valid_id(void)
{
    ASSERT_TRUE(oai_valid_id("sess_0123abcd", 64));
    ASSERT_TRUE(oai_valid_id("qwen2.5-0.5b-instruct-q8_0", 64));
    ASSERT_TRUE(!oai_valid_id("", 64));
    ASSERT_TRUE(!oai_valid_id("..", 64));
    ASSERT_TRUE(!oai_valid_id("a/b", 64));
    ASSERT_TRUE(!oai_valid_id("a..b", 64));
    ASSERT_TRUE(!oai_valid_id("a\nb", 64));
    ASSERT_TRUE(!oai_valid_id("abcdef", 5));
}

int main(void)
{
    RUN(test_full_request);
    RUN(test_defaults);
    RUN(test_errors_name_the_param);
    RUN(test_stop_array_cap);
    RUN(test_legacy_prompt);
    RUN(test_valid_id);
    return TEST_DONE();
}
