/* Integration: one server holding a model of each of three new architectures (the gemma2,
 * qwen3 and phi3 fixtures): /v1/models names their architectures, each answers a chat
 * request (non-streamed and streamed) through its own chat template, and the prompts
 * are what the templates and tokenizers make of them (Qwen3's ChatML with no BOS;
 * the llama-spm models' Llama-2 format). The weights are random, so the text is not
 * checked, only that a reply of the requested length comes back. */
#include "itest.h"
#include "test.h"

#include <stdio.h>

static struct itest_server srv;

static const char *const ids[3] = {"gemma2", "qwen3", "phi3"};
static const char *const archs[3] = {"gemma2", "qwen3", "phi3"};

static void test_models_listed(void)
{
    struct itest_resp r;
    itest_request(&srv, "GET", "/v1/models", NULL, NULL, &r);
    ASSERT_INT_EQ(r.status, 200);
    json_t *j = itest_json(&r);
    itest_resp_free(&r);
    json_t *data = json_object_get(j, "data");
    ASSERT_INT_EQ(json_array_size(data), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *m = json_array_get(data, i);
        ASSERT_STR_EQ(json_string_value(json_object_get(m, "id")), ids[i]);
        ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(m, "chatd"), "architecture")),
                      archs[i]);
    }
    json_decref(j);
}

static void test_chat_each(void)
{
    for (int i = 0; i < 3; i++) {
        char body[256];
        snprintf(body, sizeof(body),
                 "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello there\"}],"
                 "\"max_tokens\":5,\"temperature\":0}",
                 ids[i]);
        struct itest_resp r;
        itest_request(&srv, "POST", "/v1/chat/completions", body, NULL, &r);
        ASSERT_INT_EQ(r.status, 200);
        json_t *j = itest_json(&r);
        itest_resp_free(&r);
        json_t *choice = json_array_get(json_object_get(j, "choices"), 0);
        ASSERT_STR_EQ(json_string_value(json_object_get(j, "model")), ids[i]);
        ASSERT_TRUE(json_is_string(json_object_get(json_object_get(choice, "message"), "content")));
        json_t *usage = json_object_get(j, "usage");
        /* random weights: the reply runs to max_tokens unless it happens to end */
        ASSERT_INT_OP(json_integer_value(json_object_get(usage, "completion_tokens")), >=, 1);
        ASSERT_INT_OP(json_integer_value(json_object_get(usage, "completion_tokens")), <=, 5);
        ASSERT_INT_OP(json_integer_value(json_object_get(usage, "prompt_tokens")), >, 3);
        json_decref(j);
    }
}

static void test_stream_qwen3(void)
{
    struct itest_stream st;
    const char *body = "{\"model\":\"qwen3\",\"stream\":true,\"max_tokens\":4,\"temperature\":0,"
                       "\"messages\":[{\"role\":\"user\",\"content\":\"大模型很厲害。\"}]}";
    ASSERT_INT_EQ(itest_stream_post(&srv, "/v1/chat/completions", body, NULL, 0, &st), 0);
    ASSERT_INT_EQ(st.status, 200);
    bool done = false;
    json_t *ev = itest_sse_events(st.body, &done);
    itest_stream_free(&st);
    ASSERT_TRUE(done);
    ASSERT_TRUE(json_array_size(ev) >= 2);
    json_decref(ev);
}

/* The rendered prompts: Qwen3's own template (ChatML, no BOS) and the Llama-2 template
 * of the llama-spm fixtures (BOS first). */
static void test_templates(void)
{
    const char *msgs = "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]";
    char body[256];
    struct itest_resp r;
    snprintf(body, sizeof(body), "{\"model\":\"qwen3\",%s}", msgs);
    itest_request(&srv, "POST", "/apply-template", body, NULL, &r);
    ASSERT_INT_EQ(r.status, 200);
    ASSERT_STR_CONTAINS(r.body, "<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n");
    itest_resp_free(&r);
    snprintf(body, sizeof(body), "{\"model\":\"phi3\",%s}", msgs);
    itest_request(&srv, "POST", "/apply-template", body, NULL, &r);
    ASSERT_INT_EQ(r.status, 200);
    ASSERT_STR_CONTAINS(r.body, "[INST] Hi [/INST]");
    itest_resp_free(&r);
}

int main(void)
{
    char list[2400];
    snprintf(list, sizeof(list), "gemma2=%s,", itest_fixture("models/tiny-gemma2-q8_0.gguf"));
    snprintf(list + strlen(list), sizeof(list) - strlen(list), "qwen3=%s,",
             itest_fixture("models/tiny-qwen3-q8_0.gguf"));
    snprintf(list + strlen(list), sizeof(list) - strlen(list), "phi3=%s",
             itest_fixture("models/tiny-phi3-f16.gguf"));
    const char *args[] = {"--models", list, "--threads", "2", "--ctx-size", "512", NULL};
    if (itest_start(&srv, args) != 0)
        return 1;
    RUN(test_models_listed);
    RUN(test_chat_each);
    RUN(test_stream_qwen3);
    RUN(test_templates);
    itest_stop(&srv);
    itest_cleanup(&srv);
    return TEST_DONE();
}
