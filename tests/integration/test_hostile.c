/* Integration: hostile requests against the real chatd binary (tiny-qwen2-q8_0, one
 * slot, 2 s connection timeout). Each request must get its status and an OpenAI error
 * object ({"error": {"message", "type", "param", "code"}}); after each, /health must
 * still answer 200; the server's RSS must stay bounded across the whole battery. Also
 * slowloris (a request never finished) and a client that never reads its stream: both
 * connections are dropped by the server and the slot is freed. */
#include "itest.h"
#include "test.h"
#include "test_sys.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_S 2

static struct itest_server srv;

static void assert_alive(void)
{
    struct itest_resp r;
    int rc = itest_request(&srv, "GET", "/health", NULL, NULL, &r);
    ASSERT_INT_EQ(rc, 0);
    ASSERT_INT_EQ(r.status, 200);
    itest_resp_free(&r);
}

/* Sends the request and checks status, the error object, and param/code when given. */
static void expect_error(const char *method, const char *path, const char *body,
                         const char *const *headers, long status, const char *param,
                         const char *code)
{
    struct itest_resp r;
    ASSERT_INT_EQ(itest_request(&srv, method, path, body, headers, &r), 0);
    if (r.status != status)
        fprintf(stderr, "  %s %s: got %ld: %.300s\n", method, path, r.status, r.body ? r.body : "");
    long got = r.status;
    json_t *j = itest_json(&r);
    itest_resp_free(&r);
    if (got != status)
        json_decref(j);
    ASSERT_INT_EQ(got, status);
    ASSERT_TRUE(j != NULL);
    json_t *e = json_object_get(j, "error");
    ASSERT_TRUE(json_is_object(e));
    ASSERT_TRUE(json_is_string(json_object_get(e, "message")));
    ASSERT_TRUE(json_string_length(json_object_get(e, "message")) > 0);
    ASSERT_TRUE(json_is_string(json_object_get(e, "type")));
    ASSERT_TRUE(json_object_get(e, "param") != NULL);
    ASSERT_TRUE(json_object_get(e, "code") != NULL);
    if (param) {
        const char *p = json_string_value(json_object_get(e, "param"));
        ASSERT_STR_EQ(p ? p : "(null)", param);
    }
    if (code) {
        const char *c = json_string_value(json_object_get(e, "code"));
        ASSERT_STR_EQ(c ? c : "(null)", code);
    }
    json_decref(j);
    assert_alive();
}

static void chat_error(const char *body, long status, const char *param, const char *code)
{
    expect_error("POST", "/v1/chat/completions", body, NULL, status, param, code);
}

#define MSG "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

static void test_malformed_and_types(void)
{
    chat_error("{\"messages\":[", 400, NULL, "invalid_json");
    chat_error("", 400, NULL, "invalid_json");
    chat_error("[]", 400, NULL, "invalid_json");
    chat_error("{\"a\":1,\"a\":2}", 400, NULL, "invalid_json");
    chat_error("{\"messages\":\"hi\"}", 400, "messages", "invalid_type");
    chat_error("{" MSG ",\"max_tokens\":\"5\"}", 400, "max_tokens", NULL);
    chat_error("{" MSG ",\"temperature\":\"hot\"}", 400, "temperature", "invalid_type");
    chat_error("{" MSG ",\"stream\":1}", 400, "stream", NULL);
    chat_error("{" MSG ",\"model\":42}", 400, "model", NULL);
    chat_error("{\"messages\":[{\"role\":\"user\",\"content\":42}]}", 400, "messages[0].content",
               "invalid_type");
    chat_error("{\"messages\":[42]}", 400, "messages[0]", "invalid_type");
}

static void test_numbers(void)
{
    chat_error("{" MSG ",\"max_tokens\":1e308}", 400, "max_tokens", NULL);
    chat_error("{" MSG ",\"max_tokens\":123456789012345678901234567890}", 400, NULL, "invalid_json");
    chat_error("{" MSG ",\"temperature\":1e999}", 400, NULL, "invalid_json");
    chat_error("{" MSG ",\"max_tokens\":-1}", 400, "max_tokens", NULL);
    chat_error("{" MSG ",\"max_tokens\":0}", 400, "max_tokens", NULL);
    chat_error("{" MSG ",\"max_tokens\":100000}", 400, "max_tokens", "context_length_exceeded");
    chat_error("{" MSG ",\"max_tokens\":512}", 400, "max_tokens", "context_length_exceeded");
    chat_error("{" MSG ",\"seed\":1.5}", 400, "seed", "invalid_type");
    chat_error("{" MSG ",\"top_k\":-3}", 400, "top_k", NULL);
    chat_error("{" MSG ",\"n\":2}", 400, "n", "invalid_value");
    chat_error("{" MSG ",\"n\":0}", 400, "n", NULL);
}

static void test_messages(void)
{
    chat_error("{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", 400,
               "messages[0].role", "invalid_value");
    chat_error("{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", 400,
               "messages[0].tool_call_id", "missing_required_parameter");
    chat_error("{\"messages\":[{\"role\":\"user\",\"content\":\"x\",\"tool_calls\":[]}]}", 400,
               "messages[0].tool_calls", "invalid_value");
    chat_error("{\"messages\":[{\"content\":\"x\"}]}", 400, "messages[0].role", "invalid_type");
    chat_error("{\"messages\":[]}", 400, "messages", "invalid_value");
    chat_error("{}", 400, "messages", "missing_required_parameter");
    chat_error("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
               "\"image_url\":{\"url\":\"http://x/y.png\"}}]}]}",
               400, "messages[0].content[0].type", NULL);
    chat_error("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}", 400,
               "messages[0].content[0].text", "invalid_type");
    chat_error("{\"messages\":[{\"role\":\"user\",\"content\":[7]}]}", 400, NULL, NULL);
    /* invalid UTF-8 and NUL: refused by the JSON parser */
    chat_error("{\"messages\":[{\"role\":\"user\",\"content\":\"a\xff\xfe b\xc0\xaf\"}]}", 400, NULL,
               "invalid_json");
    chat_error("{\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b\"}]}", 400, NULL,
               "invalid_json");
    chat_error("{\"messages\":[{\"role\":\"us\\u0000er\",\"content\":\"x\"}]}", 400, NULL,
               "invalid_json");
    /* a lone surrogate escape */
    chat_error("{\"messages\":[{\"role\":\"user\",\"content\":\"\\ud800\"}]}", 400, NULL,
               "invalid_json");
}

/* Builds a string of n copies of `unit` between head and tail (caller frees). */
static char *repeat(const char *head, const char *unit, size_t n, const char *sep,
                    const char *tail)
{
    size_t hl = strlen(head), ul = strlen(unit), sl = strlen(sep), tl = strlen(tail);
    char *s = malloc(hl + n * (ul + sl) + tl + 1);
    char *p = s;
    memcpy(p, head, hl);
    p += hl;
    for (size_t i = 0; i < n; i++) {
        if (i) {
            memcpy(p, sep, sl);
            p += sl;
        }
        memcpy(p, unit, ul);
        p += ul;
    }
    memcpy(p, tail, tl);
    p += tl;
    *p = 0;
    return s;
}

static void test_big_bodies(void)
{
    /* 10 MB body: 413 (the limit is 4 MiB) */
    char *big = repeat("{\"messages\":[{\"role\":\"user\",\"content\":\"", "x", 10u << 20, "", "\"}]}");
    ASSERT_TRUE(itest_too_large(&srv, "/v1/chat/completions", big));
    free(big);
    assert_alive();
    /* 100k messages (about 3 MB): too many */
    char *many = repeat("{\"messages\":[", "{\"role\":\"user\",\"content\":\"a\"}", 100000, ",", "]}");
    chat_error(many, 400, "messages", "invalid_value");
    free(many);
    /* 100k nested arrays */
    char *deep = repeat("{\"messages\":", "[", 100000, "", "}");
    chat_error(deep, 400, NULL, "invalid_json");
    free(deep);
    char *deep_obj = repeat("", "{\"a\":", 50000, "", "1");
    chat_error(deep_obj, 400, NULL, "invalid_json");
    free(deep_obj);
    /* 1000 stop strings */
    char *stops = repeat("{" MSG ",\"stop\":[", "\"s\"", 1000, ",", "]}");
    chat_error(stops, 400, "stop", "invalid_value");
    free(stops);
    chat_error("{" MSG ",\"stop\":[\"a\",7]}", 400, "stop", "invalid_type");
    /* one very long stop string: capped like the array entries (the matcher holds back
     * up to a stop string's length of text) */
    char *long_stop = repeat("{" MSG ",\"stop\":\"", "x", 300, "", "\"}");
    chat_error(long_stop, 400, "stop", "invalid_value");
    free(long_stop);
    /* a 1000-entry logit_bias of valid ids is fine in size but 1025 entries are not */
    char buf[64];
    char *lb = malloc(1100 * 16 + 128);
    strcpy(lb, "{" MSG ",\"logit_bias\":{");
    for (int i = 0; i < 1025; i++) {
        snprintf(buf, sizeof(buf), "%s\"%d\":1", i ? "," : "", i);
        strcat(lb, buf);
    }
    strcat(lb, "}}");
    chat_error(lb, 400, "logit_bias", "invalid_value");
    free(lb);
}

static void test_logit_bias_and_detokenize(void)
{
    chat_error("{" MSG ",\"logit_bias\":{\"99999999\":5}}", 400, "logit_bias", NULL);
    chat_error("{" MSG ",\"logit_bias\":{\"151936\":5}}", 400, "logit_bias", NULL);
    chat_error("{" MSG ",\"logit_bias\":{\"-5\":5}}", 400, "logit_bias", "invalid_value");
    chat_error("{" MSG ",\"logit_bias\":{\"99999999999999999999999\":5}}", 400, "logit_bias", NULL);
    chat_error("{" MSG ",\"logit_bias\":{\"abc\":5}}", 400, "logit_bias", "invalid_value");
    chat_error("{" MSG ",\"logit_bias\":{\"5\":1000}}", 400, "logit_bias", "invalid_value");
    chat_error("{" MSG ",\"logit_bias\":[1,2]}", 400, "logit_bias", "invalid_type");
    expect_error("POST", "/detokenize", "{\"tokens\":[1,2,999999999]}", NULL, 400, "tokens",
                 "invalid_value");
    expect_error("POST", "/detokenize", "{\"tokens\":[-1]}", NULL, 400, "tokens", "invalid_value");
    expect_error("POST", "/detokenize", "{\"tokens\":[1.5]}", NULL, 400, "tokens", NULL);
    expect_error("POST", "/detokenize", "{\"tokens\":[9223372036854775807]}", NULL, 400, "tokens",
                 NULL);
    expect_error("POST", "/detokenize", "{\"tokens\":\"1 2\"}", NULL, 400, "tokens", NULL);
    expect_error("POST", "/detokenize", "{\"tokens\":[1],\"model\":\"../../etc/passwd\"}", NULL,
                 404, "model", "model_not_found");
}

static void test_ids(void)
{
    const char *sql[] = {"X-Session-Id: 1' OR '1'='1", NULL};
    chat_error("{" MSG ",\"session_id\":\"x'; DROP TABLE sessions;--\"}", 400, "session_id",
               "invalid_value");
    chat_error("{" MSG ",\"session_id\":\"../../etc/passwd\"}", 400, "session_id", "invalid_value");
    chat_error("{" MSG ",\"session_id\":\"..\"}", 400, "session_id", "invalid_value");
    expect_error("POST", "/v1/chat/completions", "{" MSG "}", sql, 404, "session_id",
                 "session_not_found");
    const char *trav[] = {"X-Session-Id: ../../../etc/passwd", NULL};
    expect_error("POST", "/v1/chat/completions", "{" MSG "}", trav, 404, "session_id",
                 "session_not_found");
    expect_error("GET", "/v1/sessions/1'%20OR%20'1'='1", NULL, NULL, 404, NULL, NULL);
    expect_error("GET", "/v1/sessions/..%2F..%2Fetc%2Fpasswd", NULL, NULL, 404, NULL, NULL);
    expect_error("DELETE", "/v1/sessions/%2e%2e", NULL, NULL, 404, NULL, NULL);
    expect_error("GET", "/v1/sessions/nope/messages", NULL, NULL, 404, NULL, NULL);
    /* model names are ids, never paths */
    chat_error("{" MSG ",\"model\":\"../../etc/passwd\"}", 400, "model", "invalid_value");
    chat_error("{" MSG ",\"model\":\"..\"}", 400, "model", "invalid_value");
    chat_error("{" MSG ",\"model\":\"/etc/passwd\"}", 400, "model", "invalid_value");
    chat_error("{" MSG ",\"model\":\"unknown-model\"}", 404, "model", "model_not_found");
    expect_error("GET", "/v1/models/..%2F..%2Fetc%2Fpasswd", NULL, NULL, 404, NULL, NULL);
    expect_error("GET", "/v1/models/%2e%2e", NULL, NULL, 404, NULL, NULL);
}

static void test_big_headers(void)
{
    /* a 64 KB header, known or not: 431 with an error object before any handler runs */
    char *h = malloc(70000);
    strcpy(h, "X-Session-Id: ");
    memset(h + strlen(h), 'a', 65536);
    h[14 + 65536] = 0;
    const char *hs[] = {h, NULL};
    expect_error("POST", "/v1/chat/completions", "{" MSG "}", hs, 431, NULL,
                 "request_header_fields_too_large");
    memcpy(h, "X-Junk-Hdr:   ", 14);
    expect_error("GET", "/v1/models", NULL, hs, 431, NULL, "request_header_fields_too_large");
    /* a 20 KB one is within the limit */
    h[14 + 20000] = 0;
    struct itest_resp r;
    ASSERT_INT_EQ(itest_request(&srv, "GET", "/v1/models", NULL, hs, &r), 0);
    ASSERT_INT_EQ(r.status, 200);
    itest_resp_free(&r);
    memset(h + 14, 'a', 65536);
    h[14 + 65536] = 0;
    assert_alive();
    /* 4 headers of 64 KB each: over the per-connection memory limit, where
     * libmicrohttpd answers on its own */
    const char *h4[] = {h, h, h, h, NULL};
    ASSERT_INT_EQ(itest_request(&srv, "GET", "/v1/models", NULL, h4, &r), 0);
    ASSERT_TRUE(r.status == 431 || r.status == 413 || r.status == 400);
    itest_resp_free(&r);
    free(h);
    assert_alive();
}

/* Reads until EOF or error; returns seconds waited, or -1 when still open after limit_s. */
static char last_tail[200];

static double wait_closed(int fd, double limit_s, size_t *n_read)
{
    double t0 = test_now_s();
    char buf[8192];
    *n_read = 0;
    last_tail[0] = 0;
    while (test_now_s() - t0 < limit_s) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int rc = poll(&p, 1, 200);
        if (rc < 0 && errno != EINTR)
            break;
        if (rc <= 0)
            continue;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0)
            return test_now_s() - t0;
        *n_read += (size_t)n;
        size_t k = (size_t)n < sizeof(last_tail) - 1 ? (size_t)n : sizeof(last_tail) - 1;
        memcpy(last_tail, buf + n - k, k);
        last_tail[k] = 0;
    }
    return -1;
}

static void test_slowloris(void)
{
    /* headers never finished */
    int a = itest_connect(&srv);
    ASSERT_TRUE(a >= 0);
    const char *part = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Ty";
    ASSERT_TRUE(send(a, part, strlen(part), 0) > 0);
    /* body promised but never sent */
    int b = itest_connect(&srv);
    ASSERT_TRUE(b >= 0);
    const char *req = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      "application/json\r\nContent-Length: 1000\r\n\r\n{\"messages\":";
    ASSERT_TRUE(send(b, req, strlen(req), 0) > 0);
    /* connected and silent */
    int c = itest_connect(&srv);
    ASSERT_TRUE(c >= 0);
    assert_alive(); /* others are still served meanwhile */
    size_t n;
    double ta = wait_closed(a, TIMEOUT_S + 8, &n);
    double tb = wait_closed(b, TIMEOUT_S + 8, &n);
    double tc = wait_closed(c, TIMEOUT_S + 8, &n);
    fprintf(stderr, "  slowloris closed after %.1f / %.1f / %.1f s\n", ta, tb, tc);
    ASSERT_TRUE(ta >= 0 && tb >= 0 && tc >= 0);
    close(a);
    close(b);
    close(c);
    assert_alive();
}

/* How many requests on path the server log records as finished (completed, or
 * aborted when either side dropped the connection first). */
static int count_logged(const char *path)
{
    FILE *fp = fopen(srv.log_path, "r");
    if (!fp)
        return -1;
    char line[4096], want[256];
    snprintf(want, sizeof(want), "request method=POST path=%s ", path);
    int n = 0;
    while (fgets(line, sizeof(line), fp))
        if (strstr(line, want))
            n++;
    fclose(fp);
    return n;
}

static void test_stream_never_read(void)
{
    int fd = itest_connect(&srv);
    ASSERT_TRUE(fd >= 0);
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell a long story.\"}],"
                       "\"max_tokens\":200,\"stream\":true,\"temperature\":1,\"seed\":3}";
    char req[1024];
    snprintf(req, sizeof(req),
             "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    int before = count_logged("/v1/chat/completions");
    ASSERT_TRUE(send(fd, req, strlen(req), 0) == (ssize_t)strlen(req));
    /* never read. Meanwhile other requests are served (the reply is buffered per job,
     * at most max_tokens tokens, so the slot is not held by the slow reader) */
    struct itest_resp r;
    ASSERT_INT_EQ(itest_request(&srv, "POST", "/v1/chat/completions",
                                "{" MSG ",\"max_tokens\":4}", NULL, &r),
                  0);
    ASSERT_INT_EQ(r.status, 200);
    itest_resp_free(&r);
    assert_alive();
    /* the server finishes its side and releases the connection without the client
     * reading: the rest lies in the kernel's socket buffer (bounded), or MHD drops the
     * connection after the idle timeout when the buffers are full */
    double t0 = test_now_s();
    bool released = false;
    while (!released && test_now_s() - t0 < 90) {
        usleep(250 * 1000);
        released = count_logged("/v1/chat/completions") >= before + 2;
    }
    fprintf(stderr, "  unread stream released by the server after %.1f s\n", test_now_s() - t0);
    ASSERT_TRUE(released);
    size_t n = 0;
    double t = wait_closed(fd, 20, &n);
    fprintf(stderr, "  then %zu buffered bytes and EOF after %.1f s\n", n, t);
    ASSERT_TRUE(t >= 0);
    close(fd);
    assert_alive();
}

static long rss_v[4];

static void test_rss_bounded(void)
{
    ASSERT_TRUE(rss_v[0] > 0 && rss_v[3] > 0);
    ASSERT_TRUE(rss_v[2] - rss_v[1] < 32 * 1024); /* a repeat of the battery adds little */
    ASSERT_TRUE(rss_v[3] - rss_v[0] < 96 * 1024);
}

#define RUN_RSS_CHECK(a, b, c, d)                                                         \
    do {                                                                                  \
        rss_v[0] = (a), rss_v[1] = (b), rss_v[2] = (c), rss_v[3] = (d);                   \
        RUN(test_rss_bounded);                                                            \
    } while (0)

/* Under AddressSanitizer freed memory waits in a quarantine (256 MB by default) before
 * reuse, which would read as growth: keep the server's small so the bound still means
 * something. */
static void small_asan_quarantine(void)
{
#if defined(__SANITIZE_ADDRESS__)
    static char opts[1024];
    const char *old = getenv("ASAN_OPTIONS");
    snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=8", old ? old : "", old && *old ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
#endif
}

int main(void)
{
    small_asan_quarantine();
    char model[1024];
    snprintf(model, sizeof(model), "%s", itest_fixture("models/tiny-qwen2-q8_0.gguf"));
    const char *args[] = {"--model", model, "--parallel", "1", "--threads", "1",
                          "--connection-timeout-s", "2", NULL};
    if (itest_start(&srv, args) != 0)
        return 1;
    /* warm up so the baseline includes the model and one generation */
    struct itest_resp r;
    itest_request(&srv, "POST", "/v1/chat/completions", "{" MSG ",\"max_tokens\":4}", NULL, &r);
    itest_resp_free(&r);
    long rss0 = test_rss_kb(srv.pid);
    RUN(test_malformed_and_types);
    RUN(test_numbers);
    RUN(test_messages);
    RUN(test_big_bodies);
    RUN(test_logit_bias_and_detokenize);
    RUN(test_ids);
    RUN(test_big_headers);
    long rss1 = test_rss_kb(srv.pid);
    RUN(test_big_bodies); /* again: memory must not grow per request */
    RUN(test_big_headers);
    long rss2 = test_rss_kb(srv.pid);
    RUN(test_slowloris);
    RUN(test_stream_never_read);
    long rss3 = test_rss_kb(srv.pid);
    fprintf(stderr, "  RSS kB: start %ld, after battery %ld, after repeat %ld, end %ld\n", rss0,
            rss1, rss2, rss3);
    RUN_RSS_CHECK(rss0, rss1, rss2, rss3);
    if (itest_finish(&srv) != 0)
        test_n_fail++; /* the server did not exit cleanly */
    return TEST_DONE();
}
