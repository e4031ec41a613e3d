/* Integration: one server holding two models (the `models` option, ID=PATH entries):
 * /v1/models lists both, a request's `model` picks one, an unknown id is 404, and a model
 * too large for memory is refused at start with a clear message. */
#include "itest.h"
#include "test.h"

#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static struct itest_server srv;

static void test_two_models(void)
{
    struct itest_resp r;
    itest_request(&srv, "GET", "/v1/models", NULL, NULL, &r);
    ASSERT_INT_EQ(r.status, 200);
    json_t *j = itest_json(&r);
    itest_resp_free(&r);
    json_t *data = json_object_get(j, "data");
    ASSERT_INT_EQ(json_array_size(data), 2);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(data, 0), "id")), "qwen");
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(data, 1), "id")), "tiny-llama-q4_0");
    json_decref(j);
    const char *bodies[] = {
        "{\"model\":\"tiny-llama-q4_0\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":3}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":3}",
    };
    const char *expect[] = {"tiny-llama-q4_0", "qwen"}; /* the first entry is the default */
    for (int i = 0; i < 2; i++) {
        itest_request(&srv, "POST", "/v1/chat/completions", bodies[i], NULL, &r);
        ASSERT_INT_EQ(r.status, 200);
        j = itest_json(&r);
        ASSERT_STR_EQ(json_string_value(json_object_get(j, "model")), expect[i]);
        json_decref(j);
        itest_resp_free(&r);
    }
    itest_request(&srv, "POST", "/v1/chat/completions",
                  "{\"model\":\"other\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", NULL, &r);
    ASSERT_INT_EQ(r.status, 404);
    ASSERT_STR_CONTAINS(r.body, "model_not_found");
    itest_resp_free(&r);
}

/* A model file larger than the memory available is refused before it is read (a sparse
 * file of 1 TiB stands in for a model that does not fit). */
static void test_too_big_refused(void)
{
    char path[400], cmd[1200], out[4096] = "";
    snprintf(path, sizeof(path), "%s/huge.gguf", srv.dir);
    FILE *f = fopen(path, "w");
    ASSERT_TRUE(f != NULL);
    ASSERT_INT_EQ(ftruncate(fileno(f), (off_t)1 << 40), 0);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "%s serve --port 1 --db %s/x.db --model %s 2>&1", getenv("CHATD_BIN"),
             srv.dir, path);
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = 0;
    int st = pclose(p);
    unlink(path);
    ASSERT_INT_EQ(WEXITSTATUS(st), 1);
    ASSERT_STR_CONTAINS(out, "needs about 1048576 MiB but only");
}

int main(void)
{
    char list[2200];
    snprintf(list, sizeof(list), "qwen=%s,", itest_fixture("models/tiny-qwen2-q8_0.gguf"));
    snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s", itest_fixture("models/tiny-llama-q4_0.gguf"));
    const char *args[] = {"--models", list, "--threads", "2", NULL};
    if (itest_start(&srv, args) != 0)
        return 1;
    RUN(test_two_models);
    RUN(test_too_big_refused);
    itest_stop(&srv);
    itest_cleanup(&srv);
    return TEST_DONE();
}
