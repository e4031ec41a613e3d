/* Integration: a reasoning model (a generated qwen2 model with the Qwen vocabulary, whose
 * <think>/</think> are tokens, and the DeepSeek-R1-Distill chat template, which opens the
 * thought in the prompt) streams its thought as reasoning_content and then its answer as
 * content; non-streamed replies carry message.reasoning_content; sessions store the
 * reasoning apart; reasoning_format none turns the split off. */
#include "itest.h"
#include "test.h"

#include <stdio.h>
#include <unistd.h>

static struct itest_server srv;
static int seed = -1;
static int close_id = -1;

static json_t *post(const char *path, json_t *body, long *status)
{
    char *text = json_dumps(body, 0);
    json_decref(body);
    struct itest_resp r;
    itest_request(&srv, "POST", path, text, NULL, &r);
    free(text);
    *status = r.status;
    json_t *j = itest_json(&r);
    itest_resp_free(&r);
    return j;
}

/* A sampled request that makes </think> likely, so that some seed closes the thought. */
static json_t *request(int s, bool stream, const char *session)
{
    char bias_key[16];
    snprintf(bias_key, sizeof(bias_key), "%d", close_id);
    json_t *j = json_pack("{s:[{s:s, s:s}], s:f, s:i, s:i, s:{s:f}, s:b}", "messages", "role",
                          "user", "content", "What is 2+2?", "temperature", 1.0, "seed", s,
                          "max_tokens", 16, "logit_bias", bias_key, 10.0, "stream", stream);
    if (session)
        json_object_set_new(j, "session_id", json_string(session));
    return j;
}

static const char *msg_field(json_t *resp, const char *key)
{
    json_t *m = json_object_get(json_array_get(json_object_get(resp, "choices"), 0), "message");
    return json_string_value(json_object_get(m, key));
}

static void test_find_close_token(void)
{
    long st;
    json_t *j = post("/tokenize", json_pack("{s:s}", "content", "</think>"), &st);
    ASSERT_INT_EQ(st, 200);
    ASSERT_INT_EQ(json_array_size(json_object_get(j, "tokens")), 1); /* a token of its own */
    close_id = (int)json_integer_value(json_array_get(json_object_get(j, "tokens"), 0));
    json_decref(j);
    j = post("/v1/models", NULL, &st);
    json_decref(j);
}

static void test_non_streamed_split(void)
{
    long st;
    for (int s = 1; s <= 40 && seed < 0; s++) {
        json_t *j = post("/v1/chat/completions", request(s, false, NULL), &st);
        ASSERT_INT_EQ(st, 200);
        const char *r = msg_field(j, "reasoning_content"), *c = msg_field(j, "content");
        if (r && c && strlen(r) > 0 && strlen(c) > 0) {
            seed = s;
            /* the first </think> ends the thought; the biased model may write more later */
            ASSERT_TRUE(strstr(r, "</think>") == NULL);
            ASSERT_TRUE(strstr(r, "<think>") == NULL);
            json_t *d = json_object_get(json_object_get(j, "usage"), "completion_tokens_details");
            ASSERT_TRUE(json_integer_value(json_object_get(d, "reasoning_tokens")) > 0);
        }
        json_decref(j);
    }
    ASSERT_TRUE(seed > 0);
}

static void test_stream_reasoning_then_content(void)
{
    ASSERT_TRUE(seed > 0);
    long st;
    json_t *full = post("/v1/chat/completions", request(seed, false, NULL), &st);
    json_t *body = request(seed, true, NULL);
    char *text = json_dumps(body, 0);
    json_decref(body);
    struct itest_stream s;
    itest_stream_post(&srv, "/v1/chat/completions", text, NULL, 0, &s);
    free(text);
    bool done;
    json_t *ev = itest_sse_events(s.body, &done);
    itest_stream_free(&s);
    ASSERT_TRUE(done);
    char reasoning[8192] = "", content[8192] = "";
    bool content_seen = false, order_ok = true;
    size_t i;
    json_t *e;
    json_array_foreach(ev, i, e) {
        json_t *d = json_object_get(json_array_get(json_object_get(e, "choices"), 0), "delta");
        const char *r = json_string_value(json_object_get(d, "reasoning_content"));
        const char *c = json_string_value(json_object_get(d, "content"));
        if (r) {
            order_ok &= !content_seen;
            strncat(reasoning, r, sizeof(reasoning) - strlen(reasoning) - 1);
        }
        if (c && *c) {
            content_seen = true;
            strncat(content, c, sizeof(content) - strlen(content) - 1);
        }
    }
    json_decref(ev);
    ASSERT_TRUE(order_ok);
    ASSERT_STR_EQ(reasoning, msg_field(full, "reasoning_content"));
    ASSERT_STR_EQ(content, msg_field(full, "content"));
    json_decref(full);
}

static void test_format_none(void)
{
    ASSERT_TRUE(seed > 0);
    long st;
    json_t *body = request(seed, false, NULL);
    json_object_set_new(body, "reasoning_format", json_string("none"));
    json_t *j = post("/v1/chat/completions", body, &st);
    ASSERT_INT_EQ(st, 200);
    ASSERT_TRUE(msg_field(j, "reasoning_content") == NULL);
    ASSERT_STR_CONTAINS(msg_field(j, "content"), "</think>");
    json_decref(j);
}

static void test_session_keeps_reasoning_apart(void)
{
    ASSERT_TRUE(seed > 0);
    long st;
    json_t *s = post("/v1/sessions", json_object(), &st);
    char sid[80];
    snprintf(sid, sizeof(sid), "%s", json_string_value(json_object_get(s, "id")));
    json_decref(s);
    json_t *j = post("/v1/chat/completions", request(seed, false, sid), &st);
    ASSERT_INT_EQ(st, 200);
    char path[160];
    snprintf(path, sizeof(path), "/v1/sessions/%s/messages", sid);
    struct itest_resp r;
    itest_request(&srv, "GET", path, NULL, NULL, &r);
    json_t *m = itest_json(&r);
    itest_resp_free(&r);
    json_t *a = json_array_get(json_object_get(m, "data"), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(a, "reasoning_content")), msg_field(j, "reasoning_content"));
    ASSERT_STR_EQ(json_string_value(json_object_get(a, "content")), msg_field(j, "content"));
    json_decref(m);
    json_decref(j);
}

/* max_reasoning_tokens ends the thought (the model is made to write </think>) after the
 * budget; what follows is content. */
static void test_reasoning_budget(void)
{
    long st;
    json_t *body = json_pack("{s:[{s:s, s:s}], s:f, s:i, s:i, s:b}", "messages", "role", "user",
                             "content", "Think briefly.", "temperature", 0.0, "max_tokens", 12,
                             "max_reasoning_tokens", 3, "ignore_eos", 1);
    json_t *j = post("/v1/chat/completions", body, &st);
    ASSERT_INT_EQ(st, 200);
    json_t *d = json_object_get(json_object_get(j, "usage"), "completion_tokens_details");
    /* three thought tokens, then the forced </think> (counted with the thought) */
    ASSERT_TRUE(json_integer_value(json_object_get(d, "reasoning_tokens")) <= 4);
    ASSERT_TRUE(strlen(msg_field(j, "reasoning_content")) > 0);
    ASSERT_TRUE(strlen(msg_field(j, "content")) > 0);
    json_decref(j);
}

int main(void)
{
    char dir[] = "/tmp/chatd-reasoning-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char tmpl[300], model[300], cmd[2048];
    snprintf(tmpl, sizeof(tmpl), "%s/r1.jinja", dir);
    snprintf(model, sizeof(model), "%s/r1.gguf", dir);
    /* the template, verbatim from the fixture */
    json_t *fx = json_load_file(itest_fixture("templates/deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.json"), 0, NULL);
    FILE *f = fopen(tmpl, "w");
    if (!fx || !f)
        return 1;
    fputs(json_string_value(json_object_get(fx, "template")), f);
    fclose(f);
    json_decref(fx);
    snprintf(cmd, sizeof(cmd), "%s gen-model --arch qwen2 --vocab %s --out %s --type q8_0 "
             "--chat-template %s --n-ctx 1024 --seed 5 >/dev/null", getenv("CHATD_BIN"),
             itest_fixture("tokenizer/ggml-vocab-qwen3.gguf"), model, tmpl);
    if (system(cmd) != 0)
        return 1;
    const char *args[] = {"--model", model, "--parallel", "2", "--threads", "2", NULL};
    if (itest_start(&srv, args) != 0)
        return 1;
    RUN(test_find_close_token);
    RUN(test_non_streamed_split);
    RUN(test_stream_reasoning_then_content);
    RUN(test_format_none);
    RUN(test_session_keeps_reasoning_apart);
    RUN(test_reasoning_budget);
    itest_stop(&srv);
    itest_cleanup(&srv);
    unlink(tmpl);
    unlink(model);
    rmdir(dir);
    return TEST_DONE();
}
