/* test_cli_models.c - `chatd models` (the real binary, CHATD_BIN) over a temporary
 * model directory holding links to the fixture models, a file that is not GGUF and
 * an unfinished download. Expected values come from tests/fixtures/README.md (shapes,
 * context length, tensor types) and the files' sizes. */
#include "test.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[256];
static char out[65536];

static int run(const char *env, const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "%s '%s' models %s 2>&1", env ? env : "", getenv("CHATD_BIN"), args);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(out, 1, sizeof(out) - 1, p) : 0;
    out[n] = 0;
    int st = p ? pclose(p) : -1;
    fprintf(stderr, "  $ chatd models %s\n%s", args, out);
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The output line that starts with `name`, or "" (static buffer). */
static const char *line_of(const char *name)
{
    static char line[1024];
    line[0] = 0;
    for (const char *s = out; *s;) {
        const char *e = strchr(s, '\n');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (strncmp(s, name, strlen(name)) == 0 && s[strlen(name)] == ' ' && n < sizeof(line)) {
            memcpy(line, s, n);
            line[n] = 0;
            break;
        }
        s += n + (e ? 1 : 0);
    }
    return line;
}

static void link_fixture(const char *rel, const char *name)
{
    char dst[512];
    char *src = realpath(test_fixture(rel), NULL);
    snprintf(dst, sizeof(dst), "%s/%s", dir, name);
    if (!src || symlink(src, dst) != 0)
        fprintf(stderr, "symlink %s: %s\n", dst, strerror(errno));
    free(src);
}

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_lists_models(void)
{
    char args[400];
    snprintf(args, sizeof(args), "--model-dir '%s'", dir);
    ASSERT_INT_EQ(run(NULL, args), 0);
    ASSERT_STR_CONTAINS(out, "NAME");
    ASSERT_STR_CONTAINS(out, "PARAMS");
    /* tiny-llama: 32000x64 embedding + 2 layers x 49280 + 64 = 2146624 parameters */
    const char *l = line_of("tiny-llama-f32.gguf");
    ASSERT_STR_CONTAINS(l, " llama ");
    ASSERT_STR_CONTAINS(l, " 2.15M ");
    ASSERT_STR_CONTAINS(l, " F32 ");
    ASSERT_STR_CONTAINS(l, " 512 ");
    ASSERT_STR_CONTAINS(l, "MiB");
    l = line_of("tiny-llama-q4_0.gguf");
    ASSERT_STR_CONTAINS(l, " 2.15M ");
    ASSERT_STR_CONTAINS(l, " Q4_0 ");
    ASSERT_STR_CONTAINS(l, " 2.8 MiB");
    /* tiny-qwen2: 2 x 50259 x 64 (embedding + output) + 2 layers x 43264 + 64 = 6519744 */
    l = line_of("tiny-qwen2-q8_0.gguf");
    ASSERT_STR_CONTAINS(l, " qwen2 ");
    ASSERT_STR_CONTAINS(l, " 6.52M ");
    ASSERT_STR_CONTAINS(l, " Q8_0 ");
    l = line_of("small-llama-kq-q4_k_m.gguf");
    ASSERT_STR_CONTAINS(l, " Q4_K ");
    ASSERT_STR_CONTAINS(line_of("broken.gguf"), "unreadable");
    ASSERT_STR_CONTAINS(line_of("half.gguf.part"), "partial download");
    ASSERT_TRUE(strstr(out, "notes.txt") == NULL);
}

static void test_env_and_empty_dir(void)
{
    char env[400];
    snprintf(env, sizeof(env), "CHATD_MODEL_DIR='%s'", dir);
    ASSERT_INT_EQ(run(env, ""), 0);
    ASSERT_STR_CONTAINS(line_of("tiny-qwen2-q8_0.gguf"), " qwen2 ");
    snprintf(env, sizeof(env), "CHATD_MODEL_DIR='%s/none'", dir);
    ASSERT_INT_EQ(run(env, ""), 0);
    ASSERT_STR_CONTAINS(out, "no models in");
    ASSERT_STR_CONTAINS(out, "chatd pull");
    ASSERT_INT_EQ(run(NULL, "--bogus"), 2);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "%s/chatd-models-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        return 1;
    unsetenv("CHATD_MODEL_DIR");
    unsetenv("CHATD_CONFIG");
    link_fixture("models/tiny-llama-f32.gguf", "tiny-llama-f32.gguf");
    link_fixture("models/tiny-llama-q4_0.gguf", "tiny-llama-q4_0.gguf");
    link_fixture("models/tiny-qwen2-q8_0.gguf", "tiny-qwen2-q8_0.gguf");
    link_fixture("models/small-llama-kq-q4_k_m.gguf", "small-llama-kq-q4_k_m.gguf");
    write_file("broken.gguf", "GGUF but not really");
    write_file("half.gguf.part", "0123456789");
    write_file("notes.txt", "not a model");

    RUN(test_lists_models);
    RUN(test_env_and_empty_dir);
    test_remove_dir(dir);
    return TEST_DONE();
}
