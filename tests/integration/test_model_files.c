/* Integration: a model file is untrusted input. A chat template that recurses without
 * end (it once overflowed a request thread's stack and killed the server on the first
 * chat request) is refused at start-up with the line it failed at; the server falls
 * back to a built-in template and answers chat requests. */
#include "itest.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct itest_server srv;

/* Writes a tiny llama model whose chat template is `src` into dir/name. */
static int gen_model(const char *src, const char *name, char *path, size_t len)
{
    char tpl[600], cmd[4096];
    snprintf(tpl, sizeof(tpl), "%s/%s.jinja", srv.dir, name);
    FILE *f = fopen(tpl, "w");
    if (!f)
        return -1;
    fputs(src, f);
    fclose(f);
    snprintf(path, len, "%s/%s.gguf", srv.dir, name);
    snprintf(cmd, sizeof(cmd),
             "%s gen-model --arch llama --vocab %s --out %s --type q8_0 --preset tiny "
             "--chat-template %s >/dev/null 2>&1",
             getenv("CHATD_BIN"), itest_fixture("tokenizer/ggml-vocab-llama-spm.gguf"), path, tpl);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_recursive_template(void)
{
    char model[700];
    ASSERT_INT_EQ(gen_model("{% macro f() %}{{ f() }}{% endmacro %}\n{{ f() }}", "recursive", model,
                            sizeof(model)),
                  0);
    const char *args[] = {"--model", model, NULL};
    ASSERT_INT_EQ(itest_start(&srv, args), 0);
    struct itest_resp r;
    ASSERT_INT_EQ(itest_request(&srv, "POST", "/v1/chat/completions",
                                "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":3}",
                                NULL, &r),
                  0);
    ASSERT_INT_EQ(r.status, 200);
    itest_resp_free(&r);
    ASSERT_INT_EQ(itest_request(&srv, "GET", "/v1/models", NULL, NULL, &r), 0);
    json_t *j = itest_json(&r);
    const char *tpl = json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(j, "data"), 0), "chatd"), "chat_template"));
    ASSERT_TRUE(tpl && strcmp(tpl, "gguf") != 0); /* the fallback, not the file's */
    json_decref(j);
    itest_resp_free(&r);
    itest_stop(&srv);
    size_t n;
    char *log = test_read_file(srv.log_path, &n);
    ASSERT_TRUE(log != NULL);
    ASSERT_STR_CONTAINS(log, "template unsupported");
    ASSERT_STR_CONTAINS(log, "line 1: template recursion too deep");
    free(log);
}

int main(void)
{
    const char *first[] = {"--model", itest_fixture("models/tiny-llama-f32.gguf"), NULL};
    if (itest_start(&srv, first) != 0) /* creates the directory */
        return 1;
    itest_stop(&srv);
    RUN(test_recursive_template);
    itest_cleanup(&srv);
    return TEST_DONE();
}
