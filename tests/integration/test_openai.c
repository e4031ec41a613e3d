/* Integration: the OpenAI-compatible API of the real chatd binary on a fixture model
 * (tiny-qwen2-q8_0: ChatML template, byte-level BPE), driven with libcurl. */
#include "itest.h"
#include "test.h"

#include <stdio.h>
#include <unistd.h>

static struct itest_server srv;

#define USER_HI "\"messages\":[{\"role\":\"user\",\"content\":\"Hello, how are you?\"}]"

/* POSTs body to path and returns the parsed JSON (status in *status). */
static json_t *post_json(const char *path, const char *body, long *status, struct itest_resp *keep)
{
    struct itest_resp r;
    itest_request(&srv, "POST", path, body, NULL, &r);
    *status = r.status;
    json_t *j = itest_json(&r);
    if (keep)
        *keep = r;
    else
        itest_resp_free(&r);
    return j;
}

static const char *err_code(json_t *j)
{
    return json_string_value(json_object_get(json_object_get(j, "error"), "code"));
}

static const char *err_param(json_t *j)
{
    return json_string_value(json_object_get(json_object_get(j, "error"), "param"));
}

static void test_models(void)
{
    struct itest_resp r;
    itest_request(&srv, "GET", "/v1/models", NULL, NULL, &r);
    ASSERT_INT_EQ(r.status, 200);
    json_t *j = itest_json(&r);
    itest_resp_free(&r);
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "object")), "list");
    json_t *m = json_array_get(json_object_get(j, "data"), 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(m, "id")), "tiny-qwen2-q8_0");
    ASSERT_STR_EQ(json_string_value(json_object_get(m, "object")), "model");
    ASSERT_TRUE(json_is_integer(json_object_get(m, "created")));
    json_t *x = json_object_get(m, "chatd");
    ASSERT_STR_EQ(json_string_value(json_object_get(x, "architecture")), "qwen2");
    ASSERT_STR_EQ(json_string_value(json_object_get(x, "weight_type")), "Q8_0");
    ASSERT_INT_EQ(json_integer_value(json_object_get(x, "context_length")), 512);
    ASSERT_TRUE(json_integer_value(json_object_get(x, "parameters")) > 1000000);
    json_decref(j);
    itest_request(&srv, "GET", "/v1/models/tiny-qwen2-q8_0", NULL, NULL, &r);
    ASSERT_INT_EQ(r.status, 200);
    itest_resp_free(&r);
    itest_request(&srv, "GET", "/v1/models/nope", NULL, NULL, &r);
    ASSERT_INT_EQ(r.status, 404);
    itest_resp_free(&r);
}

/* A greedy non-streamed chat; returns the content (caller frees). */
static char *chat_text(const char *extra, json_t **full)
{
    char body[2048];
    snprintf(body, sizeof(body), "{%s,\"max_tokens\":24%s%s}", USER_HI,
             strstr(extra, "temperature") ? "" : ",\"temperature\":0", extra);
    long st;
    json_t *j = post_json("/v1/chat/completions", body, &st, NULL);
    if (st != 200 || !j) {
        json_decref(j);
        return NULL;
    }
    json_t *msg = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message");
    char *text = strdup(json_string_value(json_object_get(msg, "content")));
    if (full)
        *full = j;
    else
        json_decref(j);
    return text;
}

static void test_chat_non_streamed(void)
{
    json_t *j = NULL;
    struct itest_resp keep;
    char body[1024];
    snprintf(body, sizeof(body), "{%s,\"temperature\":0,\"max_tokens\":12}", USER_HI);
    long st;
    j = post_json("/v1/chat/completions", body, &st, &keep);
    ASSERT_INT_EQ(st, 200);
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "object")), "chat.completion");
    ASSERT_TRUE(strncmp(json_string_value(json_object_get(j, "id")), "chatcmpl-", 9) == 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "model")), "tiny-qwen2-q8_0");
    json_t *c = json_array_get(json_object_get(j, "choices"), 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(c, "message"), "role")), "assistant");
    const char *fr = json_string_value(json_object_get(c, "finish_reason"));
    ASSERT_TRUE(fr && (strcmp(fr, "stop") == 0 || strcmp(fr, "length") == 0));
    json_t *u = json_object_get(j, "usage");
    json_int_t pt = json_integer_value(json_object_get(u, "prompt_tokens"));
    json_int_t ct = json_integer_value(json_object_get(u, "completion_tokens"));
    ASSERT_TRUE(pt > 5);
    ASSERT_TRUE(ct >= 1 && ct <= 12);
    ASSERT_INT_EQ(json_integer_value(json_object_get(u, "total_tokens")), pt + ct);
    json_int_t cached = json_integer_value(json_object_get(json_object_get(u, "prompt_tokens_details"), "cached_tokens"));
    ASSERT_INT_EQ(json_integer_value(json_object_get(u, "prompt_cache_hit_tokens")), cached);
    ASSERT_INT_EQ(json_integer_value(json_object_get(u, "prompt_cache_miss_tokens")), pt - cached);
    if (strcmp(fr, "length") == 0)
        ASSERT_INT_EQ(ct, 12);
    /* the request id in the header is the one the usage row was stored under */
    char rid[64], path[128];
    ASSERT_TRUE(itest_header(&keep, "x-request-id", rid, sizeof(rid)));
    itest_resp_free(&keep);
    snprintf(path, sizeof(path), "/v1/usage?request_id=%s", rid);
    struct itest_resp r;
    itest_request(&srv, "GET", path, NULL, NULL, &r);
    ASSERT_INT_EQ(r.status, 200);
    json_t *row = itest_json(&r);
    itest_resp_free(&r);
    ASSERT_INT_EQ(json_integer_value(json_object_get(row, "prompt_tokens")), pt);
    ASSERT_INT_EQ(json_integer_value(json_object_get(row, "completion_tokens")), ct);
    json_decref(row);
    json_decref(j);
}

/* Streams a greedy chat and checks the framing; returns the concatenated content. */
static char *stream_text(const char *extra, bool include_usage, json_t **usage_out)
{
    char body[2048];
    snprintf(body, sizeof(body), "{%s,\"temperature\":0,\"max_tokens\":24,\"stream\":true%s%s}",
             USER_HI, include_usage ? ",\"stream_options\":{\"include_usage\":true}" : "", extra);
    struct itest_stream st;
    itest_stream_post(&srv, "/v1/chat/completions", body, NULL, 0, &st);
    bool done;
    json_t *ev = itest_sse_events(st.body, &done);
    char *text = NULL;
    if (st.status != 200 || !done || json_array_size(ev) < 2) {
        fprintf(stderr, "  bad stream (status %ld): %.400s\n", st.status, st.body);
        goto out;
    }
    size_t i, n_finish = 0, len = 0;
    json_t *e;
    const char *id0 = json_string_value(json_object_get(json_array_get(ev, 0), "id"));
    text = calloc(1, 1);
    json_array_foreach(ev, i, e) {
        if (strcmp(json_string_value(json_object_get(e, "id")), id0) != 0 ||
            strcmp(json_string_value(json_object_get(e, "object")), "chat.completion.chunk") != 0)
            goto bad;
        json_t *choices = json_object_get(e, "choices");
        if (json_array_size(choices) == 0) {
            /* the usage chunk: last, and only when asked */
            if (!include_usage || i != json_array_size(ev) - 1)
                goto bad;
            if (usage_out)
                *usage_out = json_incref(json_object_get(e, "usage"));
            continue;
        }
        if (!include_usage && json_object_get(e, "usage"))
            goto bad;
        json_t *c = json_array_get(choices, 0);
        json_t *d = json_object_get(c, "delta");
        if (i == 0 && strcmp(json_string_value(json_object_get(d, "role")), "assistant") != 0)
            goto bad;
        if (json_is_string(json_object_get(c, "finish_reason")))
            n_finish++;
        const char *piece = json_string_value(json_object_get(d, "content"));
        if (piece) {
            text = realloc(text, len + strlen(piece) + 1);
            memcpy(text + len, piece, strlen(piece) + 1);
            len += strlen(piece);
        }
    }
    if (n_finish != 1)
        goto bad;
    goto out;
bad:
    fprintf(stderr, "  bad event sequence: %.600s\n", st.body);
    free(text);
    text = NULL;
out:
    json_decref(ev);
    itest_stream_free(&st);
    return text;
}

static void test_stream_equals_non_stream(void)
{
    char *a = chat_text("", NULL);
    json_t *usage = NULL;
    char *b = stream_text("", true, &usage);
    char *c = stream_text("", false, NULL);
    ASSERT_TRUE(a && b && c);
    ASSERT_STR_EQ(b, a);
    ASSERT_STR_EQ(c, a);
    ASSERT_TRUE(json_integer_value(json_object_get(usage, "completion_tokens")) >= 1);
    ASSERT_TRUE(json_integer_value(json_object_get(usage, "prompt_tokens")) > 5);
    json_decref(usage);
    free(a);
    free(b);
    free(c);
}

/* Streams a chat of USER_HI with the members `params` (and "stream":true) into st,
 * closing the connection after abort_after bytes (0: reads it all). */
static void stream_hi(const char *params, size_t abort_after, struct itest_stream *st)
{
    char body[512];
    snprintf(body, sizeof(body), "{%s,%s,\"stream\":true}", USER_HI, params);
    itest_stream_post(&srv, "/v1/chat/completions", body, NULL, abort_after, st);
}

static void test_tokens_arrive_one_by_one(void)
{
    struct itest_stream st;
    stream_hi("\"temperature\":0,\"max_tokens\":16", 0, &st);
    ASSERT_INT_EQ(st.status, 200);
    /* role chunk, content chunks, finish chunk, [DONE]: several separate writes */
    ASSERT_TRUE(st.n_chunks >= 4);
    itest_stream_free(&st);
}

static void test_stop_strings(void)
{
    char *full = chat_text("", NULL);
    ASSERT_TRUE(full != NULL);
    size_t n = strlen(full);
    if (n < 6) {
        fprintf(stderr, "  greedy output too short for a stop-string test: '%s'\n", full);
        free(full);
        TEST_FAIL_("greedy output too short");
    }
    /* a stop string from the middle, crossing whatever token boundary lies there */
    char stop[8];
    memcpy(stop, full + n / 2, 3);
    stop[3] = 0;
    const char *first = strstr(full, stop);
    size_t keep = (size_t)(first - full);
    json_t *js = json_string(stop);
    char *stop_json = json_dumps(js, JSON_ENCODE_ANY);
    json_decref(js);
    char extra[128];
    snprintf(extra, sizeof(extra), ",\"stop\":[%s]", stop_json);
    free(stop_json);
    json_t *resp = NULL;
    char *a = chat_text(extra, &resp);
    char *b = stream_text(extra, false, NULL);
    ASSERT_TRUE(a && b);
    ASSERT_INT_EQ(strlen(a), keep);
    ASSERT_TRUE(strncmp(a, full, keep) == 0);
    ASSERT_STR_EQ(b, a);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(json_object_get(resp, "choices"), 0), "finish_reason")), "stop");
    json_decref(resp);
    free(a);
    free(b);
    free(full);
}

static void test_utf8_chinese_stream(void)
{
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"大模型很厲害。請用中文回答。\"}],"
                       "\"temperature\":0.9,\"seed\":7,\"max_tokens\":40,\"stream\":true}";
    struct itest_stream st;
    itest_stream_post(&srv, "/v1/chat/completions", body, NULL, 0, &st);
    ASSERT_INT_EQ(st.status, 200);
    bool done;
    json_t *ev = itest_sse_events(st.body, &done); /* json_loads rejects invalid UTF-8 */
    ASSERT_TRUE(done);
    size_t i;
    json_t *e;
    json_array_foreach(ev, i, e)
        ASSERT_TRUE(json_is_object(e));
    json_decref(ev);
    itest_stream_free(&st);
}

static void test_seed_reproducible(void)
{
    char *a = chat_text(",\"temperature\":0.8,\"seed\":1234", NULL);
    char *b = chat_text(",\"temperature\":0.8,\"seed\":1234", NULL);
    ASSERT_TRUE(a && b);
    ASSERT_STR_EQ(a, b);
    free(a);
    free(b);
}

static void test_legacy_completions(void)
{
    long st;
    json_t *j = post_json("/v1/completions",
                          "{\"prompt\":\"The capital of France is\",\"max_tokens\":5,\"temperature\":0}", &st, NULL);
    ASSERT_INT_EQ(st, 200);
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "object")), "text_completion");
    json_t *c = json_array_get(json_object_get(j, "choices"), 0);
    ASSERT_TRUE(json_is_string(json_object_get(c, "text")));
    ASSERT_INT_EQ(json_integer_value(json_object_get(json_object_get(j, "usage"), "prompt_tokens")), 5);
    json_decref(j);
}

static void test_logprobs(void)
{
    long st;
    char body[512];
    snprintf(body, sizeof(body), "{%s,\"temperature\":0,\"max_tokens\":4,\"logprobs\":true,\"top_logprobs\":3}", USER_HI);
    json_t *j = post_json("/v1/chat/completions", body, &st, NULL);
    ASSERT_INT_EQ(st, 200);
    json_t *lp = json_object_get(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "logprobs"), "content");
    ASSERT_TRUE(json_array_size(lp) >= 1);
    json_t *first = json_array_get(lp, 0);
    ASSERT_TRUE(json_real_value(json_object_get(first, "logprob")) <= 0);
    ASSERT_INT_EQ(json_array_size(json_object_get(first, "top_logprobs")), 3);
    json_decref(j);
}

static void test_tokenize_detokenize_count(void)
{
    long st;
    json_t *j = post_json("/tokenize", "{\"content\":\"Hello, how are you?\"}", &st, NULL);
    ASSERT_INT_EQ(st, 200);
    /* gpt-2 ids of the fixture prompt 0 (golden prompt_tokens) */
    const int expect[] = {15496, 11, 703, 389, 345, 30};
    json_t *toks = json_object_get(j, "tokens");
    ASSERT_INT_EQ(json_array_size(toks), 6);
    for (int i = 0; i < 6; i++)
        ASSERT_INT_EQ(json_integer_value(json_array_get(toks, i)), expect[i]);
    json_decref(j);
    j = post_json("/detokenize", "{\"tokens\":[15496,11,703,389,345,30]}", &st, NULL);
    ASSERT_INT_EQ(st, 200);
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "content")), "Hello, how are you?");
    json_decref(j);
    j = post_json("/detokenize", "{\"tokens\":[1,-5]}", &st, NULL);
    ASSERT_INT_EQ(st, 400);
    ASSERT_STR_EQ(err_param(j), "tokens");
    json_decref(j);
    j = post_json("/detokenize", "{\"tokens\":[99999999]}", &st, NULL);
    ASSERT_INT_EQ(st, 400);
    json_decref(j);
    char body[256];
    snprintf(body, sizeof(body), "{%s}", USER_HI);
    j = post_json("/v1/tokens/count", body, &st, NULL);
    ASSERT_INT_EQ(st, 200);
    json_int_t n = json_integer_value(json_object_get(j, "prompt_tokens"));
    json_decref(j);
    j = post_json("/apply-template", body, &st, NULL);
    ASSERT_INT_EQ(st, 200);
    ASSERT_STR_CONTAINS(json_string_value(json_object_get(j, "prompt")), "<|im_start|>user\nHello, how are you?<|im_end|>");
    ASSERT_INT_EQ(json_integer_value(json_object_get(j, "prompt_tokens")), n);
    json_decref(j);
}

static void test_errors(void)
{
    long st;
    json_t *j = post_json("/v1/chat/completions", "{\"messages\": [", &st, NULL);
    ASSERT_INT_EQ(st, 400);
    ASSERT_STR_EQ(err_code(j), "invalid_json");
    json_decref(j);
    j = post_json("/v1/chat/completions", "{\"model\":\"tiny-qwen2-q8_0\"}", &st, NULL);
    ASSERT_INT_EQ(st, 400);
    ASSERT_STR_EQ(err_param(j), "messages");
    json_decref(j);
    char body[1024];
    snprintf(body, sizeof(body), "{%s,\"model\":\"gpt-9\"}", USER_HI);
    j = post_json("/v1/chat/completions", body, &st, NULL);
    ASSERT_INT_EQ(st, 404);
    ASSERT_STR_EQ(err_code(j), "model_not_found");
    json_decref(j);
    snprintf(body, sizeof(body), "{%s,\"n\":3}", USER_HI);
    j = post_json("/v1/chat/completions", body, &st, NULL);
    ASSERT_INT_EQ(st, 400);
    ASSERT_STR_EQ(err_param(j), "n");
    json_decref(j);
    snprintf(body, sizeof(body), "{%s,\"max_tokens\":100000}", USER_HI);
    j = post_json("/v1/chat/completions", body, &st, NULL);
    ASSERT_INT_EQ(st, 400);
    ASSERT_STR_EQ(err_code(j), "context_length_exceeded");
    json_decref(j);
    /* a prompt longer than the 512-token context */
    char *big = malloc(20000);
    int n = snprintf(big, 20000, "{\"messages\":[{\"role\":\"user\",\"content\":\"");
    for (int i = 0; i < 700; i++)
        n += snprintf(big + n, 20000 - (size_t)n, "word%d ", i);
    snprintf(big + n, 20000 - (size_t)n, "\"}]}");
    j = post_json("/v1/chat/completions", big, &st, NULL);
    free(big);
    ASSERT_INT_EQ(st, 400);
    ASSERT_STR_EQ(err_code(j), "context_length_exceeded");
    json_decref(j);
}

static void test_disconnect_mid_stream(void)
{
    struct itest_stream st;
    stream_hi("\"temperature\":0.7,\"max_tokens\":400", 300, &st);
    ASSERT_INT_EQ(st.status, 200);
    itest_stream_free(&st);
    /* the slot is freed within a step: the server keeps serving and goes idle */
    char *a = chat_text("", NULL);
    ASSERT_TRUE(a != NULL);
    free(a);
    int idle = 0;
    for (int i = 0; i < 50 && !idle; i++) {
        struct itest_resp r;
        itest_request(&srv, "GET", "/metrics", NULL, NULL, &r);
        idle = strstr(r.body, "chatd_active_sequences{model=\"tiny-qwen2-q8_0\"} 0") != NULL;
        itest_resp_free(&r);
        if (!idle)
            usleep(100 * 1000);
    }
    ASSERT_TRUE(idle);
}

int main(void)
{
    const char *args[] = {"--model", NULL, "--parallel", "2", "--threads", "2", NULL};
    char model[1024];
    snprintf(model, sizeof(model), "%s", itest_fixture("models/tiny-qwen2-q8_0.gguf"));
    args[1] = model;
    if (itest_start(&srv, args) != 0)
        return 1;
    RUN(test_models);
    RUN(test_chat_non_streamed);
    RUN(test_stream_equals_non_stream);
    RUN(test_tokens_arrive_one_by_one);
    RUN(test_stop_strings);
    RUN(test_utf8_chinese_stream);
    RUN(test_seed_reproducible);
    RUN(test_legacy_completions);
    RUN(test_logprobs);
    RUN(test_tokenize_detokenize_count);
    RUN(test_errors);
    RUN(test_disconnect_mid_stream);
    if (itest_finish(&srv) != 0)
        test_n_fail++; /* the server did not exit cleanly */
    return TEST_DONE();
}
