/* Integration: server-side sessions on the real binary: CRUD, multi-turn equals the
 * stateless request with the full history, KV reuse on the second turn, restart and
 * kill -9 durability, and dropping old turns when the history outgrows the context. */
#include "itest.h"
#include "test.h"

#include <sqlite3.h>
#include <stdio.h>
#include <unistd.h>

static struct itest_server srv;
static const char *args[16];

static json_t *req(const char *method, const char *path, const char *body, long *status)
{
    struct itest_resp r;
    itest_request(&srv, method, path, body, NULL, &r);
    *status = r.status;
    json_t *j = itest_json(&r);
    itest_resp_free(&r);
    return j;
}

static char *new_session(const char *body)
{
    long st;
    json_t *j = req("POST", "/v1/sessions", body, &st);
    char *id = st == 200 ? strdup(json_string_value(json_object_get(j, "id"))) : NULL;
    json_decref(j);
    return id;
}

/* Only the HTTP status of a request (its body is dropped). */
static long req_status(const char *method, const char *path, const char *body)
{
    long st;
    json_decref(req(method, path, body, &st));
    return st;
}

/* The body of one greedy turn in a session (caller frees). */
static char *turn_body(const char *sid, const char *user_text, int max_tokens)
{
    json_t *body = json_pack("{s:s, s:[{s:s, s:s}], s:i, s:i}", "session_id", sid, "messages",
                             "role", "user", "content", user_text, "temperature", 0, "max_tokens",
                             max_tokens);
    char *text = json_dumps(body, 0);
    json_decref(body);
    return text;
}

/* One greedy turn in a session; returns the whole response. */
static json_t *turn(const char *sid, const char *user_text, int max_tokens, long *status)
{
    char *text = turn_body(sid, user_text, max_tokens);
    json_t *j = req("POST", "/v1/chat/completions", text, status);
    free(text);
    return j;
}

/* Only the HTTP status of a turn. */
static long turn_status(const char *sid, const char *user_text, int max_tokens)
{
    long st;
    json_decref(turn(sid, user_text, max_tokens, &st));
    return st;
}

/* GET /v1/sessions/SID/messages: the parsed body (new reference). */
static json_t *messages_of(const char *sid)
{
    char path[256];
    long st;
    snprintf(path, sizeof(path), "/v1/sessions/%s/messages", sid);
    return req("GET", path, NULL, &st);
}

static const char *content_of(json_t *resp)
{
    return json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(resp, "choices"), 0), "message"), "content"));
}

static json_int_t usage_of(json_t *resp, const char *key)
{
    json_t *u = json_object_get(resp, "usage");
    if (strcmp(key, "cached_tokens") == 0)
        return json_integer_value(json_object_get(json_object_get(u, "prompt_tokens_details"), key));
    return json_integer_value(json_object_get(u, key));
}

static void test_crud(void)
{
    long st;
    char *a = new_session("{\"title\":\"first\",\"system_prompt\":\"Be brief.\"}");
    char *b = new_session("{\"title\":\"second\"}");
    ASSERT_TRUE(a && b);
    ASSERT_TRUE(strncmp(a, "sess_", 5) == 0);
    char path[256];
    snprintf(path, sizeof(path), "/v1/sessions/%s", a);
    json_t *j = req("GET", path, NULL, &st);
    ASSERT_INT_EQ(st, 200);
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "title")), "first");
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "system_prompt")), "Be brief.");
    ASSERT_TRUE(json_is_object(json_object_get(j, "meter")));
    json_decref(j);
    j = req("PATCH", path, "{\"title\":\"renamed\"}", &st);
    ASSERT_INT_EQ(st, 200);
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "title")), "renamed");
    json_decref(j);
    j = req("GET", "/v1/sessions?limit=1", NULL, &st);
    ASSERT_INT_EQ(st, 200);
    ASSERT_INT_EQ(json_array_size(json_object_get(j, "data")), 1);
    ASSERT_TRUE(json_is_true(json_object_get(j, "has_more")));
    json_decref(j);
    snprintf(path, sizeof(path), "/v1/sessions/%s", b);
    ASSERT_INT_EQ(req_status("DELETE", path, NULL), 200);
    ASSERT_INT_EQ(req_status("GET", path, NULL), 404);
    ASSERT_INT_EQ(req_status("GET", "/v1/sessions/sess_doesnotexist", NULL), 404);
    ASSERT_INT_EQ(req_status("GET", "/v1/sessions/1%27%20OR%201=1", NULL), 404);
    free(a);
    free(b);
}

static void test_multi_turn_equals_stateless(void)
{
    long st;
    char *sid = new_session("{\"system_prompt\":\"You are terse.\"}");
    ASSERT_TRUE(sid != NULL);
    json_t *t1 = turn(sid, "Name three colours.", 8, &st);
    ASSERT_INT_EQ(st, 200);
    json_t *t2 = turn(sid, "And three animals?", 8, &st);
    ASSERT_INT_EQ(st, 200);
    /* the second turn reuses the first turn's KV cache */
    ASSERT_TRUE(usage_of(t2, "cached_tokens") > 0);
    json_t *body = json_pack("{s:[{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s}], s:i, s:i}", "messages",
                             "role", "system", "content", "You are terse.", "role", "user",
                             "content", "Name three colours.", "role", "assistant", "content",
                             content_of(t1), "role", "user", "content", "And three animals?",
                             "temperature", 0, "max_tokens", 8);
    char *text = json_dumps(body, 0);
    json_decref(body);
    json_t *s2 = req("POST", "/v1/chat/completions", text, &st);
    free(text);
    ASSERT_INT_EQ(st, 200);
    ASSERT_STR_EQ(content_of(s2), content_of(t2));
    ASSERT_INT_EQ(usage_of(s2, "prompt_tokens"), usage_of(t2, "prompt_tokens"));
    json_t *m = messages_of(sid);
    json_t *data = json_object_get(m, "data");
    ASSERT_INT_EQ(json_array_size(data), 4);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(data, 1), "role")), "assistant");
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(data, 1), "content")), content_of(t1));
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(data, 3), "status")), "complete");
    json_decref(m);
    json_decref(t1);
    json_decref(t2);
    json_decref(s2);
    free(sid);
}

static void test_header_and_unknown_session(void)
{
    char *sid = new_session(NULL);
    char hdr[128];
    snprintf(hdr, sizeof(hdr), "X-Session-Id: %s", sid);
    const char *headers[] = {hdr, NULL};
    struct itest_resp r;
    itest_request(&srv, "POST", "/v1/chat/completions",
                  "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":3}", headers, &r);
    ASSERT_INT_EQ(r.status, 200);
    itest_resp_free(&r);
    json_t *m = messages_of(sid);
    ASSERT_INT_EQ(json_array_size(json_object_get(m, "data")), 2);
    json_decref(m);
    ASSERT_INT_EQ(turn_status("sess_00000000000000000000000000000000", "hi", 3), 404);
    free(sid);
}

static void test_restart_continues(void)
{
    char *sid = new_session(NULL);
    ASSERT_INT_EQ(turn_status(sid, "Remember the number 42.", 4), 200);
    ASSERT_INT_EQ(itest_stop(&srv), 0);
    ASSERT_INT_EQ(itest_start(&srv, args), 0);
    ASSERT_INT_EQ(turn_status(sid, "What number?", 4), 200);
    json_t *m = messages_of(sid);
    ASSERT_INT_EQ(json_array_size(json_object_get(m, "data")), 4);
    json_decref(m);
    free(sid);
}

static void test_kill_mid_stream(void)
{
    char *sid = new_session(NULL);
    json_t *body = json_pack("{s:s, s:[{s:s, s:s}], s:f, s:i, s:b}", "session_id", sid, "messages",
                             "role", "user", "content", "Tell a long story.", "temperature", 0.8,
                             "max_tokens", 400, "stream", 1);
    char *text = json_dumps(body, 0);
    json_decref(body);
    struct itest_stream s;
    itest_stream_post(&srv, "/v1/chat/completions", text, NULL, 600, &s);
    free(text);
    itest_stream_free(&s);
    itest_kill(&srv); /* kill -9 while the reply may still be generating */
    sqlite3 *db;
    ASSERT_INT_EQ(sqlite3_open(srv.db, &db), SQLITE_OK);
    sqlite3_stmt *q;
    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL);
    ASSERT_INT_EQ(sqlite3_step(q), SQLITE_ROW);
    ASSERT_STR_EQ((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    sqlite3_close(db);
    ASSERT_INT_EQ(itest_start(&srv, args), 0);
    json_t *m = messages_of(sid);
    json_t *data = json_object_get(m, "data");
    ASSERT_TRUE(json_array_size(data) >= 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(data, 0), "content")), "Tell a long story.");
    if (json_array_size(data) == 2) {
        const char *status = json_string_value(json_object_get(json_array_get(data, 1), "status"));
        ASSERT_TRUE(strcmp(status, "partial") == 0 || strcmp(status, "complete") == 0);
    }
    json_decref(m);
    free(sid);
}

/* Non-empty content deltas in raw stream bytes. */
static size_t content_deltas(const char *buf)
{
    size_t n = 0;
    for (const char *p = buf; (p = strstr(p, "\"delta\":{\"content\":\"")); p++)
        n += p[strlen("\"delta\":{\"content\":\"")] != '"';
    return n;
}

/* kill -9 while a streamed session reply is being generated: the client read a few
 * events and then stopped reading (its small receive window holds the server's writes
 * back, so the reply cannot finish). After the restart the request is billed once, as
 * partial, for at least the tokens the client received (every flush is a commit here:
 * flush_interval_ms 0, so what was sent was stored first). */
static void test_crash_bills_what_was_streamed(void)
{
    itest_stop(&srv);
    const char *flags[20];
    int n = 0;
    while (args[n])
        flags[n] = args[n], n++;
    flags[n++] = "--flush-interval-ms";
    flags[n++] = "0";
    flags[n] = NULL;
    ASSERT_INT_EQ(itest_start(&srv, flags), 0);
    char *sid = new_session(NULL);
    char body[400], req[800];
    int blen = snprintf(body, sizeof(body),
                        "{\"session_id\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"go on\"}],"
                        "\"max_tokens\":450,\"ignore_eos\":true,\"stream\":true}",
                        sid);
    int rlen = snprintf(req, sizeof(req),
                        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        "Content-Length: %d\r\n\r\n%s",
                        blen, body);
    int fd = itest_connect(&srv);
    ASSERT_TRUE(fd >= 0);
    ASSERT_INT_EQ(write(fd, req, (size_t)rlen), rlen);
    static char got[2048];
    size_t have = 0;
    while (have < 1500 && content_deltas(got) < 3) {
        ssize_t k = read(fd, got + have, sizeof(got) - 1 - have);
        if (k <= 0)
            break;
        have += (size_t)k;
        got[have] = 0;
    }
    size_t n_content = content_deltas(got);
    char rid[80] = "";
    const char *p = strstr(got, "\"id\":\"chatcmpl-");
    if (p) {
        p += strlen("\"id\":\"chatcmpl-");
        snprintf(rid, sizeof(rid), "req_%.*s", (int)strcspn(p, "\""), p);
    }
    itest_kill(&srv); /* the connection is still open: the reply is mid-stream */
    close(fd);
    ASSERT_TRUE(rid[0] && n_content >= 1);
    ASSERT_INT_EQ(itest_start(&srv, args), 0);
    sqlite3 *db;
    ASSERT_INT_EQ(sqlite3_open(srv.db, &db), SQLITE_OK);
    sqlite3_stmt *q;
    ASSERT_INT_EQ(sqlite3_prepare_v2(db, "SELECT completion_tokens, status FROM usage WHERE request_id = ?1",
                                     -1, &q, NULL),
                  SQLITE_OK);
    sqlite3_bind_text(q, 1, rid, -1, SQLITE_STATIC);
    ASSERT_INT_EQ(sqlite3_step(q), SQLITE_ROW);
    ASSERT_TRUE(sqlite3_column_int64(q, 0) >= (sqlite3_int64)n_content);
    ASSERT_STR_EQ((const char *)sqlite3_column_text(q, 1), "partial");
    ASSERT_INT_EQ(sqlite3_step(q), SQLITE_DONE); /* billed once */
    sqlite3_finalize(q);
    sqlite3_close(db);
    json_t *m = messages_of(sid);
    json_t *reply = json_array_get(json_object_get(m, "data"), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(reply, "status")), "partial");
    ASSERT_TRUE(strlen(json_string_value(json_object_get(reply, "content"))) > 0);
    json_decref(m);
    size_t loglen;
    char *log = test_read_file(srv.log_path, &loglen);
    ASSERT_STR_CONTAINS(log, "recovered_interrupted_replies=1");
    free(log);
    free(sid);
}

static void test_history_overflow_drops_oldest(void)
{
    long st;
    char *sid = new_session("{\"system_prompt\":\"Keep me.\"}");
    char text[2048];
    int n = 0;
    for (int i = 0; i < 60; i++)
        n += snprintf(text + n, sizeof(text) - (size_t)n, "apple%d ", i);
    int dropped = 0;
    for (int t = 0; t < 8 && !dropped; t++) {
        json_t *r = turn(sid, text, 4, &st);
        ASSERT_INT_EQ(st, 200);
        dropped = (int)json_integer_value(json_object_get(json_object_get(r, "context"), "dropped_messages"));
        ASSERT_TRUE(usage_of(r, "prompt_tokens") <= 512);
        json_decref(r);
    }
    ASSERT_TRUE(dropped > 0);
    /* the oldest turns went in a block: the prompt now sits near the target fill, and the
     * next turns keep that start (no further drop) and so their KV cache prefix */
    for (int t = 0; t < 2; t++) {
        json_t *r = turn(sid, "short", 4, &st);
        ASSERT_INT_EQ(st, 200);
        ASSERT_INT_EQ(json_integer_value(json_object_get(json_object_get(r, "context"), "dropped_messages")),
                      dropped);
        ASSERT_TRUE(usage_of(r, "cached_tokens") * 2 > usage_of(r, "prompt_tokens"));
        json_decref(r);
    }
    /* the meter: per-turn counts, the window, what the next request drops, KV residency */
    char path[160];
    snprintf(path, sizeof(path), "/v1/sessions/%s", sid);
    json_t *sess = req("GET", path, NULL, &st);
    json_t *meter = json_object_get(sess, "meter");
    ASSERT_INT_EQ(json_integer_value(json_object_get(meter, "n_ctx")), 512);
    ASSERT_TRUE(json_integer_value(json_object_get(meter, "stored_tokens")) > 384); /* 512 - 128 reserved */
    ASSERT_TRUE(json_array_size(json_object_get(meter, "would_drop")) > 0);
    ASSERT_TRUE(json_is_true(json_object_get(meter, "kv_resident")));
    json_t *t0 = json_array_get(json_object_get(meter, "turns"), 0);
    ASSERT_TRUE(json_integer_value(json_object_get(t0, "n_tokens")) > 60);
    json_decref(sess);
    /* a single message larger than the window is refused */
    char big[8192];
    n = 0;
    for (int i = 0; i < 700; i++)
        n += snprintf(big + n, sizeof(big) - (size_t)n, "w%d ", i);
    json_t *r = turn(sid, big, 4, &st);
    ASSERT_INT_EQ(st, 400);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(r, "error"), "code")), "context_length_exceeded");
    json_decref(r);
    free(sid);
}

/* A counter of /metrics, or -1. */
static long long metric_of(const char *name)
{
    long st;
    struct itest_resp r;
    itest_request(&srv, "GET", "/metrics", NULL, NULL, &r);
    st = r.status;
    const char *p = r.body ? strstr(r.body, name) : NULL;
    long long v = st == 200 && p ? atoll(p + strlen(name) + 1) : -1;
    itest_resp_free(&r);
    return v;
}

/* A session of thousands of short messages costs a request a few renders of a window of
 * the context's size, not a render per dropped turn over the whole history (which took
 * minutes of CPU). The messages are written straight into the database. */
static void test_long_session_costs_a_window(void)
{
    char *sid = new_session("{}");
    ASSERT_TRUE(sid != NULL);
    itest_stop(&srv);
    sqlite3 *db;
    ASSERT_INT_EQ(sqlite3_open(srv.db, &db), SQLITE_OK);
    sqlite3_stmt *ins;
    ASSERT_INT_EQ(sqlite3_prepare_v2(db,
                                     "INSERT INTO messages (session_id, seq, role, content, n_tokens, "
                                     "status, created_at) VALUES (?1, ?2, ?3, ?4, 6, 'complete', 0)",
                                     -1, &ins, NULL),
                  SQLITE_OK);
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    enum { N_MSG = 4000 };
    for (int i = 1; i <= N_MSG; i++) {
        char text[32];
        snprintf(text, sizeof(text), "note %d", i);
        sqlite3_bind_text(ins, 1, sid, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(ins, 2, i);
        sqlite3_bind_text(ins, 3, i % 2 ? "user" : "assistant", -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 4, text, -1, SQLITE_TRANSIENT);
        ASSERT_INT_EQ(sqlite3_step(ins), SQLITE_DONE);
        sqlite3_reset(ins);
    }
    ASSERT_INT_EQ(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_finalize(ins);
    sqlite3_close(db);
    ASSERT_INT_EQ(itest_start(&srv, args), 0);
    long long renders = metric_of("chatd_prompt_renders_total");
    long long loaded = metric_of("chatd_history_messages_loaded_total");
    long st;
    json_t *r = turn(sid, "and now?", 4, &st);
    ASSERT_INT_EQ(st, 200);
    int dropped = (int)json_integer_value(json_object_get(json_object_get(r, "context"), "dropped_messages"));
    ASSERT_TRUE(dropped > N_MSG - 200);
    json_decref(r);
    ASSERT_TRUE(metric_of("chatd_prompt_renders_total") - renders <= 3);
    /* a window: at most what fits 512 tokens at ~6 tokens a message */
    ASSERT_TRUE(metric_of("chatd_history_messages_loaded_total") - loaded < 100);
    free(sid);
}

/* Later turns feed the ids stored with earlier ones (the reply exactly as generated), so
 * the whole previous exchange is a KV cache hit; after the template changes the history
 * is tokenized anew and the response says so. */
static void test_stored_tokens_and_template_change(void)
{
    long st;
    char *sid = new_session(NULL);
    json_t *t1 = turn(sid, "Count from one to ten.", 12, &st);
    ASSERT_INT_EQ(st, 200);
    json_int_t p1 = usage_of(t1, "prompt_tokens"), c1 = usage_of(t1, "completion_tokens");
    json_t *t2 = turn(sid, "Again.", 4, &st);
    ASSERT_INT_EQ(st, 200);
    /* all of turn 1 but its last sampled token (never fed) is in the KV cache */
    ASSERT_TRUE(usage_of(t2, "cached_tokens") >= p1 + c1 - 1);
    ASSERT_INT_EQ(json_integer_value(json_object_get(json_object_get(t2, "context"), "retokenized_messages")), 0);
    json_decref(t1);
    json_decref(t2);

    const char *changed[20];
    size_t n = 0;
    while (args[n])
        changed[n] = args[n], n++;
    changed[n++] = "--chat-template";
    changed[n++] = "llama3";
    changed[n] = NULL;
    ASSERT_INT_EQ(itest_stop(&srv), 0);
    ASSERT_INT_EQ(itest_start(&srv, changed), 0);
    char *text = turn_body(sid, "Once more.", 4);
    struct itest_resp r;
    itest_request(&srv, "POST", "/v1/chat/completions", text, NULL, &r);
    free(text);
    ASSERT_INT_EQ(r.status, 200);
    char hdr[16] = "";
    ASSERT_TRUE(itest_header(&r, "x-context-retokenized-messages", hdr, sizeof(hdr)));
    ASSERT_STR_EQ(hdr, "4");
    json_t *t3 = itest_json(&r);
    ASSERT_INT_EQ(json_integer_value(json_object_get(json_object_get(t3, "context"), "retokenized_messages")), 4);
    ASSERT_INT_EQ(usage_of(t3, "cached_tokens"), 0);
    json_decref(t3);
    itest_resp_free(&r);
    ASSERT_INT_EQ(itest_stop(&srv), 0);
    ASSERT_INT_EQ(itest_start(&srv, args), 0);
    free(sid);
}

int main(void)
{
    char model[1024];
    snprintf(model, sizeof(model), "%s", itest_fixture("models/tiny-qwen2-q8_0.gguf"));
    const char *a[] = {"--model", model, "--parallel", "2", "--threads", "2", NULL};
    memcpy(args, a, sizeof(a));
    if (itest_start(&srv, args) != 0)
        return 1;
    RUN(test_crud);
    RUN(test_multi_turn_equals_stateless);
    RUN(test_header_and_unknown_session);
    RUN(test_restart_continues);
    RUN(test_kill_mid_stream);
    RUN(test_crash_bills_what_was_streamed);
    RUN(test_history_overflow_drops_oldest);
    RUN(test_stored_tokens_and_template_change);
    RUN(test_long_session_costs_a_window);
    itest_stop(&srv);
    itest_cleanup(&srv);
    return TEST_DONE();
}
