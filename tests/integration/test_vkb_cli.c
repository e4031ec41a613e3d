/* test_vkb_cli.c - the Vulkan backend through the chatd binary: `chatd devices` lists
 * at least one device and the --backend auto choice, and `chatd eval --backend vulkan`
 * gives the same top tokens as `--backend cpu` on the F32 fixture model (logits within
 * 0.01, see test_vkb_forward.c for why not bit-equal). */
#include "test.h"

#include <jansson.h>
#include <sys/wait.h>

static char *run_cmd(const char *cmd, int *rc)
{
    FILE *f = popen(cmd, "r");
    if (!f)
        return NULL;
    size_t cap = 1 << 20;
    size_t n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - 1 - n, f)) > 0)
        n += got;
    if (buf)
        buf[n] = 0;
    *rc = pclose(f);
    return buf;
}

static void test_devices_lists_and_decides(void)
{
    char cmd[9000];
    int rc;
    snprintf(cmd, sizeof(cmd), "%s devices", getenv("CHATD_BIN"));
    char *out = run_cmd(cmd, &rc);
    ASSERT_TRUE(out != NULL);
    ASSERT_INT_EQ(rc, 0);
    ASSERT_STR_CONTAINS(out, "subgroup");
    ASSERT_STR_CONTAINS(out, "backend auto: ");
    free(out);
    snprintf(cmd, sizeof(cmd), "%s devices --bogus 2>/dev/null", getenv("CHATD_BIN"));
    out = run_cmd(cmd, &rc);
    ASSERT_INT_EQ(WEXITSTATUS(rc), 2);
    free(out);
}

static json_t *eval(const char *backend)
{
    char cmd[9000];
    int rc;
    snprintf(cmd, sizeof(cmd),
             "%s eval --model %s --tokens \"1 15043 29892 920 526 366 29973\" --top 5 --backend %s "
             "--json",
             getenv("CHATD_BIN"), test_fixture("models/tiny-llama-f32.gguf"), backend);
    char *out = run_cmd(cmd, &rc);
    json_t *j = out && rc == 0 ? json_loads(out, 0, NULL) : NULL;
    free(out);
    return j;
}

static void test_eval_vulkan_matches_cpu(void)
{
    json_t *v = eval("vulkan");
    json_t *c = eval("cpu");
    ASSERT_TRUE(v != NULL && c != NULL);
    json_t *tv = json_object_get(v, "top");
    json_t *tc = json_object_get(c, "top");
    ASSERT_INT_EQ(json_array_size(tv), 7);
    ASSERT_INT_EQ(json_array_size(tc), 7);
    for (size_t p = 0; p < 7; p++) {
        json_t *a = json_array_get(json_array_get(tv, p), 0);
        json_t *b = json_array_get(json_array_get(tc, p), 0);
        double la = json_number_value(json_array_get(a, 1));
        double lb = json_number_value(json_array_get(b, 1));
        ASSERT_NEAR(la, lb, 0.01);
    }
    json_decref(v);
    json_decref(c);
}

int main(void)
{
    RUN(test_devices_lists_and_decides);
    RUN(test_eval_vulkan_matches_cpu);
    return TEST_DONE();
}
