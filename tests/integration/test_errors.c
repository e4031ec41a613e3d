/* Integration: every error code a client can provoke from outside, through the real
 * binary (tiny-qwen2-q8_0, keys mode), answers with the HTTP status and OpenAI error
 * object of server/http/http_error.c's table: status, type, code and param. A storage
 * failure (503 storage_unavailable) is driven in test_faults (disk full); out of memory
 * and a failing backend (500) have no outside trigger and are covered by the table's
 * unit test (tests/unit/server/http/test_http_error.c). */
#include "itest.h"
#include "test.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct itest_server srv;
static char model[1024];
static char key_user[128];
static char key_quota[128];
static char key_admin[128];

/* One request as `key` (NULL: none) with optional extra headers. */
static void request(const char *key, const char *method, const char *path, const char *body,
                    const char *extra, struct itest_resp *r)
{
    char auth[200];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key ? key : "");
    const char *h[3] = {NULL, NULL, NULL};
    int n = 0;
    if (key)
        h[n++] = auth;
    if (extra)
        h[n++] = extra;
    if (itest_request(&srv, method, path, body, h, r) != 0)
        r->status = -1;
}

/* The response is `status` with an error object of this type, code and param (NULL:
 * JSON null) and a message. */
static void expect(const struct itest_resp *r, long status, const char *type, const char *code,
                   const char *param)
{
    json_t *j = itest_json(r);
    json_t *e = json_object_get(j, "error");
    const char *t = json_string_value(json_object_get(e, "type"));
    const char *c = json_string_value(json_object_get(e, "code"));
    json_t *p = json_object_get(e, "param");
    bool ok = r->status == status && t && strcmp(t, type) == 0 && c && strcmp(c, code) == 0 &&
              json_is_string(json_object_get(e, "message")) &&
              (param ? json_is_string(p) && strcmp(json_string_value(p), param) == 0
                     : json_is_null(p));
    json_decref(j);
    if (!ok)
        TEST_FAIL_("want %ld %s/%s param %s, got %ld: %s", status, type, code,
                   param ? param : "null", r->status, r->body ? r->body : "");
}

static void check(const char *key, const char *method, const char *path, const char *body,
                  const char *extra, long status, const char *type, const char *code,
                  const char *param)
{
    struct itest_resp r;
    request(key, method, path, body, extra, &r);
    expect(&r, status, type, code, param);
    itest_resp_free(&r);
}

#define CHAT "/v1/chat/completions"
#define BAD "invalid_request_error"

static void test_request_errors(void)
{
    check(key_user, "POST", CHAT, "{\"messages\":", NULL, 400, BAD, "invalid_json", NULL);
    check(key_user, "POST", CHAT, "{}", NULL, 400, BAD, "missing_required_parameter", "messages");
    check(key_user, "POST", CHAT, "{\"messages\":\"hi\"}", NULL, 400, BAD, "invalid_type",
          "messages");
    check(key_user, "POST", CHAT,
          "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":9}", NULL, 400,
          BAD, "invalid_value", "temperature");
    check(key_user, "POST", CHAT,
          "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":100000}", NULL,
          400, BAD, "context_length_exceeded", "max_tokens");
    check(key_user, "POST", CHAT,
          "{\"model\":\"nope\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", NULL, 404,
          BAD, "model_not_found", "model");
    check(key_user, "POST", CHAT,
          "{\"session_id\":\"sess_missing\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
          NULL, 404, BAD, "session_not_found", "session_id");
    check(key_user, "GET", "/no/such/endpoint", NULL, NULL, 404, BAD, "not_found", NULL);
    check(key_user, "DELETE", CHAT, NULL, NULL, 405, BAD, "method_not_allowed", NULL);
    check(key_user, "POST", CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
          "Idempotency-Key: has spaces", 400, BAD, "invalid_value", "Idempotency-Key");
}

/* A prompt longer than the context (the model's is 512 tokens). */
static void test_context(void)
{
    size_t n = 40000;
    char *body = malloc(n + 100);
    int k = snprintf(body, n + 100, "{\"messages\":[{\"role\":\"user\",\"content\":\"");
    for (size_t i = 0; i < 3000; i++)
        k += snprintf(body + k, n + 100 - (size_t)k, "w%zu ", i);
    snprintf(body + k, n + 100 - (size_t)k, "\"}]}");
    check(key_user, "POST", CHAT, body, NULL, 400, BAD, "context_length_exceeded", "messages");
    free(body);
}

static void test_access(void)
{
    check(NULL, "GET", "/v1/models", NULL, NULL, 401, BAD, "invalid_api_key", NULL);
    check("sk-chatd-notarealkeyatallnotarealkeyatallnotareal", "GET", "/v1/models", NULL, NULL,
          401, BAD, "invalid_api_key", NULL);
    check(key_user, "GET", "/admin/users", NULL, NULL, 403, BAD, "permission_denied", NULL);
    check(key_admin, "POST", "/admin/users", "{\"name\":\"plain\"}", NULL, 409, BAD, "conflict",
          NULL);
    check(key_quota, "POST", CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
          NULL, 429, "insufficient_quota", "insufficient_quota", NULL);
}

static void test_sizes(void)
{
    size_t n = 5 << 20;
    char *big = malloc(n + 1);
    memset(big, 'a', n);
    big[n] = 0;
    struct itest_resp r;
    request(key_user, "POST", CHAT, big, NULL, &r);
    /* the server may answer 413 and close while the body is still being sent */
    if (r.status != -1)
        expect(&r, 413, BAD, "request_too_large", NULL);
    itest_resp_free(&r);
    char *hdr = malloc(40000);
    int k = snprintf(hdr, 40000, "X-Filler: ");
    memset(hdr + k, 'b', 40000 - (size_t)k - 1);
    hdr[39999] = 0;
    check(key_user, "GET", "/v1/models", NULL, hdr, 431, BAD, "request_header_fields_too_large",
          NULL);
    free(hdr);
    free(big);
}

/* A chat template that raises: the llama2 built-in refuses two user turns in a row. */
static void test_template(void)
{
    check(key_user, "POST", "/apply-template",
          "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\"}]}",
          NULL, 400, BAD, "template_error", "messages");
    check(key_user, "POST", CHAT,
          "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\"}]}",
          NULL, 400, BAD, "template_error", "messages");
}

#define LONG_BODY                                                                            \
    "{\"messages\":[{\"role\":\"user\",\"content\":\"go\"}],\"max_tokens\":480,"                 \
    "\"ignore_eos\":true,\"stream\":true}"

struct bg {
    const char *key;
    const char *extra;
    struct itest_stream st;
};

/* A long generation (ignore_eos: it runs to max_tokens) holding the only slot. */
static void *long_stream(void *arg)
{
    struct bg *b = arg;
    char auth[200];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", b->key);
    const char *h[] = {auth, b->extra, NULL};
    itest_stream_post(&srv, CHAT, LONG_BODY, h, 0, &b->st);
    return NULL;
}

/* Waits until the engine runs a sequence (from /metrics). */
static bool wait_active(void)
{
    for (int i = 0; i < 2000; i++) {
        struct itest_resp r;
        request(key_admin, "GET", "/metrics", NULL, NULL, &r);
        bool on = r.body && strstr(r.body, "chatd_active_sequences{model=\"tiny-qwen2-q8_0\"} 1");
        itest_resp_free(&r);
        if (on)
            return true;
        usleep(2000);
    }
    return false;
}

/* With one slot and no queue, a request while a generation runs is refused (429
 * server_busy); the same Idempotency-Key while its first request runs is 409, and with
 * another body 422. */
static void test_busy_and_idempotency(void)
{
    struct bg b = {.key = key_user, .extra = "Idempotency-Key: key-busy-1"};
    pthread_t t;
    pthread_create(&t, NULL, long_stream, &b);
    ASSERT_TRUE(wait_active());
    struct itest_resp r;
    request(key_user, "POST", CHAT, LONG_BODY, "Idempotency-Key: key-busy-1", &r);
    expect(&r, 409, BAD, "idempotency_in_progress", NULL);
    itest_resp_free(&r);
    request(key_user, "POST", CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
            "Idempotency-Key: key-busy-1", &r);
    expect(&r, 422, BAD, "idempotency_key_reused", "Idempotency-Key");
    itest_resp_free(&r);
    request(key_user, "POST", CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
            NULL, &r);
    expect(&r, 429, "requests", "server_busy", NULL);
    char retry[16];
    ASSERT_TRUE(itest_header(&r, "retry-after", retry, sizeof(retry)));
    itest_resp_free(&r);
    /* a session's message is stored only once the engine takes the request: a client that
     * retries after Retry-After does not find it twice */
    request(key_user, "POST", "/v1/sessions", "{}", NULL, &r);
    json_t *j = itest_json(&r);
    char body[300], path[200];
    snprintf(body, sizeof(body), "{\"session_id\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"once\"}]}",
             json_string_value(json_object_get(j, "id")));
    snprintf(path, sizeof(path), "/v1/sessions/%s/messages", json_string_value(json_object_get(j, "id")));
    json_decref(j);
    itest_resp_free(&r);
    request(key_user, "POST", CHAT, body, NULL, &r);
    expect(&r, 429, "requests", "server_busy", NULL);
    itest_resp_free(&r);
    pthread_join(t, NULL);
    ASSERT_INT_EQ(b.st.status, 200);
    itest_stream_free(&b.st);
    request(key_user, "POST", CHAT, body, NULL, &r); /* the retry, now served */
    ASSERT_INT_EQ(r.status, 200);
    itest_resp_free(&r);
    request(key_user, "GET", path, NULL, NULL, &r);
    j = itest_json(&r);
    json_t *data = json_object_get(j, "data");
    ASSERT_INT_EQ(json_array_size(data), 2); /* one user message, one reply */
    json_decref(j);
    itest_resp_free(&r);
}

static void test_rate_limit(void)
{
    struct itest_resp r;
    int limited = 0;
    for (int i = 0; i < 6 && !limited; i++) {
        request(key_admin, "GET", "/v1/models", NULL, NULL, &r);
        if (r.status == 429) {
            expect(&r, 429, "requests", "rate_limit_exceeded", NULL);
            limited = 1;
        }
        itest_resp_free(&r);
    }
    ASSERT_INT_EQ(limited, 1);
}

static int start(const char *rpm)
{
    char ini[400];
    snprintf(ini, sizeof(ini), "%s/chatd.ini", srv.dir);
    FILE *f = fopen(ini, "w");
    if (!f)
        return -1;
    fprintf(f, "[auth]\nauth = keys\n");
    fclose(f);
    const char *args[] = {"--config", ini, "--model", model, "--parallel", "1", "--queue-depth",
                          "0", "--chat-template", "llama2", "--max-body-bytes", "1048576",
                          "--rate-limit-rpm", rpm, NULL};
    return itest_start(&srv, args);
}

int main(void)
{
    snprintf(model, sizeof(model), "%s", itest_fixture("models/tiny-qwen2-q8_0.gguf"));
    const char *first[] = {"--model", model, NULL};
    if (itest_start(&srv, first) != 0)
        return 1;
    itest_stop(&srv);
    itest_user_key(&srv, "plain", "", key_user, sizeof(key_user));
    itest_user_key(&srv, "tight", "--quota 1", key_quota, sizeof(key_quota));
    itest_user_key(&srv, "boss", "--admin", key_admin, sizeof(key_admin));
    if (strncmp(key_user, "sk-chatd-", 9) != 0 || start("0") != 0)
        return 1;
    RUN(test_request_errors);
    RUN(test_context);
    RUN(test_access);
    RUN(test_sizes);
    RUN(test_template);
    RUN(test_busy_and_idempotency);
    itest_stop(&srv);
    if (start("3") != 0)
        return 1;
    RUN(test_rate_limit);
    itest_stop(&srv);
    itest_cleanup(&srv);
    return TEST_DONE();
}
