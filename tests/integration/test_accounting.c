/* Integration: users, API keys and metered usage on the real binary in `keys` auth
 * mode: isolation between users, revoked keys, quotas, usage totals equal to what the
 * client received, cache hits billed at the hit price, concurrency, and the admin API
 * and `chatd usage` agreeing with the REST totals. */
#include "itest.h"
#include "test.h"

#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>

static struct itest_server srv;
static char key_alice[128], key_bob[128], key_carol[128], key_admin[128];

static json_t *call(const char *key, const char *method, const char *path, const char *body, long *status)
{
    char auth[200];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
    const char *h[] = {auth, NULL};
    struct itest_resp r;
    itest_request(&srv, method, path, body, key ? h : NULL, &r);
    *status = r.status;
    json_t *j = itest_json(&r);
    itest_resp_free(&r);
    return j;
}

/* The HTTP status of a call (its body is dropped). */
static long status_of(const char *key, const char *method, const char *path, const char *body)
{
    long st;
    json_decref(call(key, method, path, body, &st));
    return st;
}

static const char *code_of(json_t *j)
{
    return json_string_value(json_object_get(json_object_get(j, "error"), "code"));
}

static void test_auth_required(void)
{
    long st;
    json_t *j = call(NULL, "GET", "/v1/models", NULL, &st);
    ASSERT_INT_EQ(st, 401);
    ASSERT_STR_EQ(code_of(j), "invalid_api_key");
    json_decref(j);
    ASSERT_INT_EQ(status_of("sk-chatd-notarealkeyatallnotarealkeyatallnotareal", "GET",
                            "/v1/models", NULL),
                  401);
    ASSERT_INT_EQ(status_of(key_alice, "GET", "/v1/models", NULL), 200);
    ASSERT_INT_EQ(status_of(key_alice, "GET", "/admin/users", NULL), 403);
    j = call(key_admin, "GET", "/admin/users", NULL, &st);
    ASSERT_INT_EQ(st, 200);
    ASSERT_TRUE(json_array_size(json_object_get(j, "data")) >= 3);
    json_decref(j);
}

/* /metrics lists every user's tokens and cost: an admin key is needed; /health is open. */
static void test_metrics_need_admin(void)
{
    ASSERT_INT_EQ(status_of(NULL, "GET", "/metrics", NULL), 401);
    ASSERT_INT_EQ(status_of(key_alice, "GET", "/metrics", NULL), 403);
    ASSERT_INT_EQ(status_of(key_admin, "GET", "/metrics", NULL), 200);
    ASSERT_INT_EQ(status_of(NULL, "GET", "/health", NULL), 200);
}

static void test_sessions_are_private(void)
{
    long st;
    json_t *j = call(key_alice, "POST", "/v1/sessions", "{\"title\":\"alice's\"}", &st);
    ASSERT_INT_EQ(st, 200);
    char path[256];
    snprintf(path, sizeof(path), "/v1/sessions/%s", json_string_value(json_object_get(j, "id")));
    json_decref(j);
    /* not 403: do not reveal that it exists */
    ASSERT_INT_EQ(status_of(key_bob, "GET", path, NULL), 404);
    j = call(key_bob, "GET", "/v1/sessions", NULL, &st);
    ASSERT_INT_EQ(json_array_size(json_object_get(j, "data")), 0);
    json_decref(j);
    ASSERT_INT_EQ(status_of(key_alice, "GET", path, NULL), 200);
}

/* Streams one chat with include_usage as `key`; returns the usage object it received. */
static json_t *stream_usage(const char *key, const char *text)
{
    char auth[200], body[512];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
    const char *h[] = {auth, NULL};
    snprintf(body, sizeof(body),
             "{\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}],\"max_tokens\":6,"
             "\"stream\":true,\"stream_options\":{\"include_usage\":true}}", text);
    struct itest_stream s;
    itest_stream_post(&srv, "/v1/chat/completions", body, h, 0, &s);
    bool done;
    json_t *ev = itest_sse_events(s.body, &done);
    itest_stream_free(&s);
    json_t *last = json_array_get(ev, json_array_size(ev) - 1);
    json_t *u = json_incref(json_object_get(last, "usage"));
    json_decref(ev);
    return u;
}

static void test_usage_equals_received(void)
{
    long sum_prompt = 0, sum_completion = 0, sum_hit = 0;
    for (int i = 0; i < 3; i++) {
        json_t *u = stream_usage(key_alice, "Count to three.");
        ASSERT_TRUE(u != NULL);
        sum_prompt += (long)json_integer_value(json_object_get(u, "prompt_tokens"));
        sum_completion += (long)json_integer_value(json_object_get(u, "completion_tokens"));
        sum_hit += (long)json_integer_value(json_object_get(u, "prompt_cache_hit_tokens"));
        json_decref(u);
    }
    ASSERT_TRUE(sum_hit > 0); /* the same prompt again hits the KV cache */
    long st;
    json_t *j = call(key_alice, "GET", "/v1/usage?group_by=model", NULL, &st);
    ASSERT_INT_EQ(st, 200);
    json_t *t = json_object_get(j, "total");
    ASSERT_INT_EQ(json_integer_value(json_object_get(t, "prompt_tokens")), sum_prompt);
    ASSERT_INT_EQ(json_integer_value(json_object_get(t, "completion_tokens")), sum_completion);
    ASSERT_INT_EQ(json_integer_value(json_object_get(t, "prompt_cache_hit_tokens")), sum_hit);
    /* prices (config): miss 1,000,000, hit 100,000, output 2,000,000 micro-units per
     * million tokens -> each request costs ceil((miss*1e6 + hit*1e5 + out*2e6) / 1e6) */
    long expect = (sum_prompt - sum_hit) + (sum_hit + 9) / 10 + 2 * sum_completion;
    long cost = (long)json_integer_value(json_object_get(t, "cost_micros"));
    ASSERT_TRUE(cost >= expect && cost <= expect + 3);
    json_decref(j);
    /* bob sees none of it */
    j = call(key_bob, "GET", "/v1/usage", NULL, &st);
    ASSERT_INT_EQ(json_integer_value(json_object_get(json_object_get(j, "total"), "requests")), 0);
    json_decref(j);
}

static void *concurrent_worker(void *arg)
{
    json_t *u = stream_usage(key_admin, (const char *)arg);
    json_decref(u);
    return NULL;
}

static void test_concurrent_rows(void)
{
    pthread_t t[6];
    for (int i = 0; i < 6; i++)
        pthread_create(&t[i], NULL, concurrent_worker, (void *)"Hi there.");
    for (int i = 0; i < 6; i++)
        pthread_join(t[i], NULL);
    long st;
    json_t *j = call(key_admin, "GET", "/v1/usage", NULL, &st);
    ASSERT_INT_EQ(json_integer_value(json_object_get(json_object_get(j, "total"), "requests")), 6);
    json_decref(j);
}

static void test_quota(void)
{
    long st;
    /* bob's quota is 60 tokens a month */
    ASSERT_INT_EQ(status_of(key_bob, "POST", "/v1/chat/completions",
                            "{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],"
                            "\"max_tokens\":5}"),
                  200);
    /* a reply larger than what is left is cut at the quota, and says so */
    json_t *j = call(key_bob, "POST", "/v1/chat/completions",
             "{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],\"max_tokens\":45,\"ignore_eos\":true}", &st);
    ASSERT_INT_EQ(st, 200);
    json_t *c = json_array_get(json_object_get(j, "choices"), 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(c, "finish_reason")), "length");
    ASSERT_STR_CONTAINS(json_string_value(json_object_get(c, "finish_detail")), "quota");
    ASSERT_TRUE(json_integer_value(json_object_get(json_object_get(j, "usage"), "completion_tokens")) < 45);
    json_decref(j);
    /* nothing is left: refused before any inference */
    j = call(key_bob, "POST", "/v1/chat/completions",
             "{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],\"max_tokens\":5}", &st);
    ASSERT_INT_EQ(st, 429);
    ASSERT_STR_EQ(code_of(j), "insufficient_quota");
    json_decref(j);
    j = call(key_bob, "GET", "/v1/usage", NULL, &st);
    json_t *t = json_object_get(j, "total");
    long used = (long)(json_integer_value(json_object_get(t, "prompt_tokens")) +
                       json_integer_value(json_object_get(t, "completion_tokens")));
    ASSERT_TRUE(used <= 60); /* never billed past the quota */
    ASSERT_INT_EQ(json_integer_value(json_object_get(t, "requests")), 2);
    json_decref(j);
}

static void test_revoked_key(void)
{
    long st;
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "%.17s", key_alice);
    char path[64];
    snprintf(path, sizeof(path), "/admin/keys/%s", prefix);
    ASSERT_INT_EQ(status_of(key_admin, "DELETE", path, NULL), 200);
    ASSERT_INT_EQ(status_of(key_alice, "GET", "/v1/models", NULL), 401);
    /* a new key through the admin API works */
    json_t *j = call(key_admin, "GET", "/admin/users", NULL, &st);
    json_int_t alice_id = 0;
    size_t i;
    json_t *u;
    json_array_foreach(json_object_get(j, "data"), i, u)
        if (strcmp(json_string_value(json_object_get(u, "name")), "alice") == 0)
            alice_id = json_integer_value(json_object_get(u, "id"));
    json_decref(j);
    snprintf(path, sizeof(path), "/admin/users/%lld/keys", (long long)alice_id);
    j = call(key_admin, "POST", path, NULL, &st);
    ASSERT_INT_EQ(st, 200);
    snprintf(key_alice, sizeof(key_alice), "%s", json_string_value(json_object_get(j, "key")));
    json_decref(j);
    ASSERT_INT_EQ(status_of(key_alice, "GET", "/v1/models", NULL), 200);
}

static void test_cli_usage_matches_rest(void)
{
    long st;
    json_t *j = call(key_admin, "GET", "/v1/usage?user=alice", NULL, &st);
    ASSERT_INT_EQ(st, 200);
    long requests = (long)json_integer_value(json_object_get(json_object_get(j, "total"), "requests"));
    json_decref(j);
    char cmd[1200], line[512];
    snprintf(cmd, sizeof(cmd), "%s usage --user alice --db %s", getenv("CHATD_BIN"), srv.db);
    FILE *p = popen(cmd, "r");
    int found = 0;
    while (p && fgets(line, sizeof(line), p)) {
        char name[64];
        long n;
        if (sscanf(line, "%63s %ld", name, &n) == 2 && strcmp(name, "alice") == 0) {
            found = 1;
            ASSERT_INT_EQ(n, requests);
        }
    }
    if (p)
        pclose(p);
    ASSERT_TRUE(found);
}

/* POST with extra headers as `key`; returns the parsed body. */
static json_t *call_h(const char *key, const char *path, const char *body, const char *extra,
                      long *status)
{
    char auth[200];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
    const char *h[] = {auth, extra, NULL};
    struct itest_resp r;
    itest_request(&srv, "POST", path, body, h, &r);
    *status = r.status;
    json_t *j = itest_json(&r);
    itest_resp_free(&r);
    return j;
}

static void test_idempotency_key(void)
{
    long st;
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"once\"}],\"max_tokens\":4,\"temperature\":1}";
    json_t *before = call(key_admin, "GET", "/v1/usage", NULL, &st);
    json_int_t n0 = json_integer_value(json_object_get(json_object_get(before, "total"), "requests"));
    json_decref(before);
    json_t *a = call_h(key_admin, "/v1/chat/completions", body, "Idempotency-Key: retry-123", &st);
    ASSERT_INT_EQ(st, 200);
    json_t *b = call_h(key_admin, "/v1/chat/completions", body, "Idempotency-Key: retry-123", &st);
    ASSERT_INT_EQ(st, 200);
    /* the retry is answered with the first response: same id, same text, not billed */
    ASSERT_STR_EQ(json_string_value(json_object_get(a, "id")), json_string_value(json_object_get(b, "id")));
    json_t *after = call(key_admin, "GET", "/v1/usage", NULL, &st);
    ASSERT_INT_EQ(json_integer_value(json_object_get(json_object_get(after, "total"), "requests")), n0 + 1);
    json_decref(after);
    json_decref(a);
    json_decref(b);
}

/* A key whose request ended without a response to replay (here: refused for quota) is
 * given back: the retry is refused the same way, not told the key is still running. A
 * streamed response is kept for replays: the retry gets the same events, billed once. */
static void test_idempotency_release_and_stream_replay(void)
{
    long st;
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":5}";
    for (int i = 0; i < 2; i++) {
        json_t *j = call_h(key_bob, "/v1/chat/completions", body, "Idempotency-Key: refused-1", &st);
        ASSERT_INT_EQ(st, 429);
        ASSERT_STR_EQ(code_of(j), "insufficient_quota");
        json_decref(j);
    }
    const char *stream = "{\"messages\":[{\"role\":\"user\",\"content\":\"flow\"}],\"max_tokens\":6,"
                         "\"temperature\":1,\"stream\":true}";
    char auth[200];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key_alice);
    const char *h[] = {auth, "Idempotency-Key: stream-1", NULL};
    json_t *before = call(key_alice, "GET", "/v1/usage", NULL, &st);
    json_int_t n0 = json_integer_value(json_object_get(json_object_get(before, "total"), "requests"));
    json_decref(before);
    struct itest_resp a, b;
    ASSERT_INT_EQ(itest_request(&srv, "POST", "/v1/chat/completions", stream, h, &a), 0);
    ASSERT_INT_EQ(itest_request(&srv, "POST", "/v1/chat/completions", stream, h, &b), 0);
    ASSERT_INT_EQ(a.status, 200);
    ASSERT_INT_EQ(b.status, 200);
    char v[64];
    ASSERT_TRUE(itest_header(&b, "idempotent-replayed", v, sizeof(v)));
    ASSERT_TRUE(itest_header(&b, "content-type", v, sizeof(v)));
    ASSERT_STR_CONTAINS(v, "text/event-stream");
    ASSERT_STR_EQ(b.body, a.body); /* every event again, [DONE] included */
    ASSERT_STR_CONTAINS(a.body, "data: [DONE]");
    itest_resp_free(&a);
    itest_resp_free(&b);
    json_t *after = call(key_alice, "GET", "/v1/usage", NULL, &st);
    ASSERT_INT_EQ(json_integer_value(json_object_get(json_object_get(after, "total"), "requests")), n0 + 1);
    json_decref(after);
}

struct quota_call {
    long status;
    long billed;
};

static void *quota_worker(void *arg)
{
    struct quota_call *c = arg;
    long st;
    json_t *j = call_h(key_carol, "/v1/chat/completions",
                       "{\"messages\":[{\"role\":\"user\",\"content\":\"go\"}],\"max_tokens\":30,"
                       "\"ignore_eos\":true}",
                       NULL, &st);
    c->status = st;
    json_t *u = json_object_get(j, "usage");
    c->billed = (long)(json_integer_value(json_object_get(u, "prompt_tokens")) +
                       json_integer_value(json_object_get(u, "completion_tokens")));
    json_decref(j);
    return NULL;
}

/* Concurrent requests of one user share its quota atomically: each is admitted for its
 * worst case against what the others reserved, so together they never pass it. */
static void test_quota_concurrent(void)
{
    enum { N = 6 };
    struct quota_call c[N] = {{0}};
    pthread_t t[N];
    for (int i = 0; i < N; i++)
        pthread_create(&t[i], NULL, quota_worker, &c[i]);
    long billed = 0;
    int ok = 0, refused = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        ok += c[i].status == 200;
        refused += c[i].status == 429;
        billed += c[i].status == 200 ? c[i].billed : 0;
    }
    ASSERT_INT_EQ(ok + refused, N);
    ASSERT_TRUE(ok >= 1 && refused >= 1);
    long st;
    json_t *j = call(key_carol, "GET", "/v1/usage", NULL, &st);
    json_t *tot = json_object_get(j, "total");
    long used = (long)(json_integer_value(json_object_get(tot, "prompt_tokens")) +
                       json_integer_value(json_object_get(tot, "completion_tokens")));
    json_decref(j);
    ASSERT_INT_EQ(used, billed);
    ASSERT_TRUE(used <= 100); /* carol's quota */
}

static void test_quote(void)
{
    long st;
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"Count to three.\"}],\"max_tokens\":10}";
    json_t *q = call_h(key_admin, "/v1/usage/quote", body, NULL, &st);
    ASSERT_INT_EQ(st, 200);
    json_int_t pt = json_integer_value(json_object_get(q, "prompt_tokens"));
    json_int_t hit = json_integer_value(json_object_get(q, "prompt_cache_hit_tokens"));
    json_int_t miss = json_integer_value(json_object_get(q, "prompt_cache_miss_tokens"));
    ASSERT_TRUE(pt > 0);
    ASSERT_INT_EQ(hit + miss, pt);
    ASSERT_INT_EQ(json_integer_value(json_object_get(json_object_get(q, "price"), "input_miss")), 1000000);
    /* cost of the input alone: ceil((miss*1e6 + hit*1e5)/1e6) */
    ASSERT_INT_EQ(json_integer_value(json_object_get(q, "input_cost_micros")), miss + (hit + 9) / 10);
    json_t *c = call_h(key_admin, "/v1/tokens/count", body, NULL, &st);
    ASSERT_INT_EQ(json_integer_value(json_object_get(c, "prompt_tokens")), pt);
    json_decref(c);
    json_decref(q);
}

static void test_rate_limit(void)
{
    char ini[400], model[1024];
    snprintf(ini, sizeof(ini), "%s/chatd.ini", srv.dir);
    snprintf(model, sizeof(model), "%s", itest_fixture("models/tiny-qwen2-q8_0.gguf"));
    const char *args[] = {"--config", ini, "--model", model, "--rate-limit-rpm", "3", NULL};
    itest_stop(&srv);
    ASSERT_INT_EQ(itest_start(&srv, args), 0);
    char auth[200];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key_admin);
    const char *h[] = {auth, NULL};
    int limited = 0;
    for (int i = 0; i < 5; i++) {
        struct itest_resp r;
        itest_request(&srv, "GET", "/v1/models", NULL, h, &r);
        char v[32];
        ASSERT_TRUE(itest_header(&r, "x-ratelimit-limit-requests", v, sizeof(v)));
        ASSERT_STR_EQ(v, "3");
        if (r.status == 429) {
            limited++;
            ASSERT_TRUE(itest_header(&r, "retry-after", v, sizeof(v)));
            ASSERT_STR_CONTAINS(r.body, "rate_limit_exceeded");
        }
        itest_resp_free(&r);
    }
    ASSERT_TRUE(limited >= 1); /* at least the 5th of a minute's window (a window may roll over once) */
}

int main(void)
{
    char model[1024];
    snprintf(model, sizeof(model), "%s", itest_fixture("models/tiny-qwen2-q8_0.gguf"));
    const char *first[] = {"--model", model, NULL};
    if (itest_start(&srv, first) != 0) /* creates the directory and database */
        return 1;
    itest_stop(&srv);
    itest_user_key(&srv, "alice", "", key_alice, sizeof(key_alice));
    itest_user_key(&srv, "bob", "--quota 60", key_bob, sizeof(key_bob));
    itest_user_key(&srv, "carol", "--quota 100", key_carol, sizeof(key_carol));
    itest_user_key(&srv, "boss", "--admin", key_admin, sizeof(key_admin));
    if (strncmp(key_alice, "sk-chatd-", 9) != 0 || strncmp(key_admin, "sk-chatd-", 9) != 0) {
        fprintf(stderr, "key creation failed: '%s'\n", key_alice);
        return 1;
    }
    char ini[400];
    snprintf(ini, sizeof(ini), "%s/chatd.ini", srv.dir);
    FILE *f = fopen(ini, "w");
    fprintf(f, "[auth]\nauth = keys\n[pricing.tiny-qwen2-q8_0]\ninput_miss = 1000000\n"
               "input_hit = 100000\noutput = 2000000\n");
    fclose(f);
    const char *args[] = {"--config", ini, "--model", model, "--parallel", "3", "--threads", "2", NULL};
    if (itest_start(&srv, args) != 0)
        return 1;
    RUN(test_auth_required);
    RUN(test_metrics_need_admin);
    RUN(test_sessions_are_private);
    RUN(test_usage_equals_received);
    RUN(test_concurrent_rows);
    RUN(test_quota);
    RUN(test_revoked_key);
    RUN(test_cli_usage_matches_rest);
    RUN(test_idempotency_key);
    RUN(test_idempotency_release_and_stream_replay);
    RUN(test_quota_concurrent);
    RUN(test_quote);
    RUN(test_rate_limit);
    itest_stop(&srv);
    itest_cleanup(&srv);
    return TEST_DONE();
}
