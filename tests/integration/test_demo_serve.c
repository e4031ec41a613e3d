/* test_demo_serve.c - `chatd serve` with no model configured and an empty model
 * directory starts on the generated demo model (banner in the log, /v1/models lists
 * chatd-demo, a chat completion answers), reuses the file on restart, and once a real
 * model sits beside it, serves that one instead. */
#include "itest.h"
#include "test.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static struct itest_server srv;
static char model_dir[320];

static char *read_log(void)
{
    FILE *f = fopen(srv.log_path, "rb");
    if (!f)
        return NULL;
    char *buf = calloc(1, 1 << 20);
    if (buf)
        fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    return buf;
}

static int start(void)
{
    const char *extra[] = {"--model-dir", model_dir, "--backend", "cpu", "--threads", "1", NULL};
    return itest_start(&srv, extra);
}

/* The id of the first model /v1/models lists (static buffer). */
static const char *first_model_id(void)
{
    static char id[128];
    struct itest_resp r;
    id[0] = 0;
    if (itest_request(&srv, "GET", "/v1/models", NULL, NULL, &r) == 0) {
        json_t *j = itest_json(&r);
        const char *s =
            json_string_value(json_object_get(json_array_get(json_object_get(j, "data"), 0), "id"));
        snprintf(id, sizeof(id), "%s", s ? s : "");
        json_decref(j);
        itest_resp_free(&r);
    }
    return id;
}

static void test_starts_on_demo_model(void)
{
    ASSERT_INT_EQ(start(), 0);
    ASSERT_STR_EQ(first_model_id(), "chatd-demo");
    struct itest_resp r;
    const char *hdr[] = {"Content-Type: application/json", NULL};
    ASSERT_INT_EQ(
        itest_request(&srv, "POST", "/v1/chat/completions",
                      "{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],\"max_tokens\":4}",
                      hdr, &r),
        0);
    long status = r.status;
    json_t *j = itest_json(&r);
    itest_resp_free(&r);
    const char *content = json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message"), "content"));
    bool has_content = content != NULL;
    json_decref(j);
    ASSERT_INT_EQ(status, 200);
    ASSERT_TRUE(has_content);
    ASSERT_INT_EQ(itest_stop(&srv), 0);
    char *log = read_log();
    ASSERT_TRUE(log != NULL);
    bool banner = strstr(log, "weights are random") && strstr(log, "chatd pull");
    free(log);
    ASSERT_TRUE(banner);
}

static void test_reused_then_shadowed_by_real_model(void)
{
    char demo[400];
    struct stat st1, st2;
    snprintf(demo, sizeof(demo), "%s/chatd-demo.gguf", model_dir);
    ASSERT_INT_EQ(stat(demo, &st1), 0);
    ASSERT_INT_EQ(start(), 0);
    ASSERT_STR_EQ(first_model_id(), "chatd-demo");
    ASSERT_INT_EQ(itest_stop(&srv), 0);
    ASSERT_INT_EQ(stat(demo, &st2), 0);
    ASSERT_INT_EQ(st1.st_ino, st2.st_ino);
    ASSERT_INT_EQ(st1.st_mtime, st2.st_mtime);

    /* a downloaded model beside the demo one wins, whatever the names' order */
    char link[400];
    char *src = realpath(itest_fixture("models/tiny-qwen2-q8_0.gguf"), NULL);
    snprintf(link, sizeof(link), "%s/tiny-qwen2-q8_0.gguf", model_dir);
    ASSERT_TRUE(src && symlink(src, link) == 0);
    free(src);
    ASSERT_INT_EQ(start(), 0);
    ASSERT_STR_EQ(first_model_id(), "tiny-qwen2-q8_0");
    ASSERT_INT_EQ(itest_stop(&srv), 0);
}

int main(void)
{
    /* the prefix itest_cleanup knows how to remove */
    snprintf(srv.dir, sizeof(srv.dir), "/tmp/chatd-itest-XXXXXX");
    if (!mkdtemp(srv.dir))
        return 1;
    snprintf(srv.db, sizeof(srv.db), "%s/chatd.db", srv.dir);
    snprintf(srv.log_path, sizeof(srv.log_path), "%s/server.log", srv.dir);
    snprintf(model_dir, sizeof(model_dir), "%s/models", srv.dir); /* created by the server */
    unsetenv("CHATD_MODEL");
    unsetenv("CHATD_MODEL_DIR");
    unsetenv("CHATD_CONFIG");

    RUN(test_starts_on_demo_model);
    RUN(test_reused_then_shadowed_by_real_model);

    if (srv.pid > 0)
        itest_kill(&srv);
    itest_cleanup(&srv);
    return TEST_DONE();
}
