/* Integration: the real chatd binary serves /health, the page, 404/405 with OpenAI error
 * objects, 413 for oversized bodies, x-request-id on every response, refuses bad config
 * naming the key, and exits 0 on SIGTERM. */
#include "itest.h"
#include "test.h"

#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static struct itest_server srv;

static void check_error_object(const struct itest_resp *r, const char *code)
{
    json_t *j = itest_json(r);
    json_t *e = json_object_get(j, "error");
    if (!json_is_object(e) || !json_is_string(json_object_get(e, "message")) ||
        !json_is_string(json_object_get(e, "type")) || !json_object_get(e, "param") ||
        !json_is_string(json_object_get(e, "code")) ||
        strcmp(json_string_value(json_object_get(e, "code")), code) != 0) {
        fprintf(stderr, "  bad error object: %s\n", r->body);
        test_cur_failed = 1;
    }
    json_decref(j);
}

static void test_health(void)
{
    struct itest_resp r;
    ASSERT_INT_EQ(itest_request(&srv, "GET", "/health", NULL, NULL, &r), 0);
    ASSERT_INT_EQ(r.status, 200);
    json_t *j = itest_json(&r);
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "status")), "ok");
    ASSERT_TRUE(json_is_integer(json_object_get(j, "uptime_s")));
    char id[64];
    ASSERT_TRUE(itest_header(&r, "x-request-id", id, sizeof(id)));
    ASSERT_TRUE(strncmp(id, "req_", 4) == 0);
    json_decref(j);
    itest_resp_free(&r);
}

static void test_page(void)
{
    struct itest_resp r;
    ASSERT_INT_EQ(itest_request(&srv, "GET", "/", NULL, NULL, &r), 0);
    ASSERT_INT_EQ(r.status, 200);
    char type[128];
    ASSERT_TRUE(itest_header(&r, "content-type", type, sizeof(type)));
    ASSERT_STR_CONTAINS(type, "text/html");
    ASSERT_STR_CONTAINS(r.body, "<html");
    itest_resp_free(&r);
}

static void test_not_found(void)
{
    struct itest_resp r;
    ASSERT_INT_EQ(itest_request(&srv, "GET", "/no/such/path", NULL, NULL, &r), 0);
    ASSERT_INT_EQ(r.status, 404);
    check_error_object(&r, "not_found");
    itest_resp_free(&r);
}

static void test_wrong_method(void)
{
    struct itest_resp r;
    ASSERT_INT_EQ(itest_request(&srv, "DELETE", "/health", NULL, NULL, &r), 0);
    ASSERT_INT_EQ(r.status, 405);
    char allow[64];
    ASSERT_TRUE(itest_header(&r, "allow", allow, sizeof(allow)));
    ASSERT_STR_CONTAINS(allow, "GET");
    check_error_object(&r, "method_not_allowed");
    itest_resp_free(&r);
}

static void test_body_too_large(void)
{
    size_t n = 5u << 20; /* over the 4 MiB default */
    char *big = malloc(n + 1);
    memset(big, 'a', n);
    big[n] = 0;
    bool ok = itest_too_large(&srv, "/v1/chat/completions", big);
    free(big);
    ASSERT_TRUE(ok);
    /* a body just over the limit but sent whole gets the error object */
    size_t m = (4u << 20) + 100;
    big = malloc(m + 1);
    memset(big, 'a', m);
    big[m] = 0;
    ok = itest_too_large(&srv, "/v1/chat/completions", big);
    free(big);
    ASSERT_TRUE(ok);
    struct itest_resp r;
    ASSERT_INT_EQ(itest_request(&srv, "GET", "/health", NULL, NULL, &r), 0);
    ASSERT_INT_EQ(r.status, 200);
    itest_resp_free(&r);
}

/* Runs `chatd serve ARGS` expecting a refusal: exit code 2 and stderr naming `needle`. */
static void expect_config_error(const char *args, const char *env, const char *needle)
{
    char cmd[1024], out[2048] = "";
    snprintf(cmd, sizeof(cmd), "%s %s serve %s 2>&1", env ? env : "", getenv("CHATD_BIN"), args);
    FILE *p = popen(cmd, "r");
    ASSERT_TRUE(p != NULL);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = 0;
    int st = pclose(p);
    ASSERT_INT_EQ(WEXITSTATUS(st), 2);
    ASSERT_STR_CONTAINS(out, needle);
}

/* Open mode trusts whoever connects, so its admin endpoints answer only requests to the
 * loopback host from the page's own origin: a web page elsewhere (a rebound DNS name, a
 * cross-origin request) cannot create keys. The start-up log says what open mode is for. */
static void test_open_mode_admin_is_local(void)
{
    struct itest_resp r;
    const char *rebound[] = {"Host: attacker.example", NULL};
    ASSERT_INT_EQ(itest_request(&srv, "GET", "/admin/users", NULL, rebound, &r), 0);
    ASSERT_INT_EQ(r.status, 403);
    check_error_object(&r, "permission_denied");
    itest_resp_free(&r);
    char host[64], origin[96];
    snprintf(host, sizeof(host), "Host: 127.0.0.1:%d", srv.port);
    const char *cross[] = {host, "Origin: http://attacker.example", NULL};
    ASSERT_INT_EQ(itest_request(&srv, "POST", "/admin/users", "{\"name\":\"mallory\"}", cross, &r), 0);
    ASSERT_INT_EQ(r.status, 403);
    itest_resp_free(&r);
    snprintf(origin, sizeof(origin), "Origin: http://127.0.0.1:%d", srv.port);
    const char *same[] = {host, origin, NULL};
    ASSERT_INT_EQ(itest_request(&srv, "GET", "/admin/users", NULL, same, &r), 0);
    ASSERT_INT_EQ(r.status, 200);
    itest_resp_free(&r);
    const char *local[] = {"Host: localhost", NULL};
    ASSERT_INT_EQ(itest_request(&srv, "GET", "/metrics", NULL, local, &r), 0);
    ASSERT_INT_EQ(r.status, 200);
    itest_resp_free(&r);
    size_t n;
    char *log = test_read_file(srv.log_path, &n);
    ASSERT_STR_CONTAINS(log, "this mode is for a single local user");
    free(log);
}

static void test_bad_config_refused(void)
{
    expect_config_error("--port 70000", NULL, "flag --port: port: 70000 is out of range");
    expect_config_error("--port abc", NULL, "'abc' is not a whole number");
    expect_config_error("--no-such-option 1", NULL, "unknown option 'no_such_option'");
    expect_config_error("", "CHATD_PORT=0x10", "environment CHATD_PORT: port");
    expect_config_error("", "CHATD_BOGUS=1", "environment CHATD_BOGUS: unknown option 'bogus'");
    char ini[512];
    snprintf(ini, sizeof(ini), "%s/bad.ini", srv.dir);
    FILE *f = fopen(ini, "w");
    ASSERT_TRUE(f != NULL);
    fputs("[server]\nport = 8080\nlog_level = loud\n", f);
    fclose(f);
    char args[600];
    snprintf(args, sizeof(args), "--config %s", ini);
    expect_config_error(args, NULL, "bad.ini:3: log_level: 'loud' is not one of");
}

static void test_help_lists_options(void)
{
    char cmd[512], out[16384] = "";
    snprintf(cmd, sizeof(cmd), "%s serve --help", getenv("CHATD_BIN"));
    FILE *p = popen(cmd, "r");
    ASSERT_TRUE(p != NULL);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = 0;
    ASSERT_INT_EQ(WEXITSTATUS(pclose(p)), 0);
    ASSERT_STR_CONTAINS(out, "--port");
    ASSERT_STR_CONTAINS(out, "default 8080");
    ASSERT_STR_CONTAINS(out, "--db");
    ASSERT_STR_CONTAINS(out, "--max-body-bytes");
}

static void test_sigterm_exits_zero(void)
{
    ASSERT_INT_EQ(itest_stop(&srv), 0);
    FILE *f = fopen(srv.log_path, "r");
    ASSERT_TRUE(f != NULL);
    char line[1024];
    int logged = 0;
    while (fgets(line, sizeof(line), f))
        if (strstr(line, "request method=GET path=/health status=200"))
            logged = 1;
    fclose(f);
    ASSERT_TRUE(logged);
}

int main(void)
{
    char model[1024];
    snprintf(model, sizeof(model), "%s", itest_fixture("models/tiny-llama-q4_0.gguf"));
    const char *args[] = {"--model", model, NULL};
    if (itest_start(&srv, args) != 0) {
        fprintf(stderr, "server did not start\n");
        return 1;
    }
    RUN(test_health);
    RUN(test_page);
    RUN(test_not_found);
    RUN(test_wrong_method);
    RUN(test_body_too_large);
    RUN(test_open_mode_admin_is_local);
    RUN(test_bad_config_refused);
    RUN(test_help_lists_options);
    RUN(test_sigterm_exits_zero);
    itest_cleanup(&srv);
    return TEST_DONE();
}
