/* test_cli_tok.c - the info / tokenize / detokenize subcommands, run as the real
 * binary (CHATD_BIN) with popen; expected ids are llama.cpp's, from the fixture
 * vectors (tokenizer/ *.out). */
#include "test.h"

#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

static char out[65536];

/* Runs `chatd ARGS < input` and captures stdout (stderr too when `merge`); returns
 * the exit code. */
static int run_chatd(const char *args, const char *input, size_t input_len, bool merge)
{
    const char *bin = getenv("CHATD_BIN");
    char in_path[] = "/tmp/chatd-cli-in-XXXXXX";
    int fd = mkstemp(in_path);
    if (fd < 0 || write(fd, input, input_len) != (ssize_t)input_len)
        return -1;
    close(fd);
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "'%s' %s < '%s'%s", bin ? bin : "chatd", args, in_path,
             merge ? " 2>&1" : " 2>/dev/null");
    FILE *p = popen(cmd, "r");
    size_t n = 0;
    if (p) {
        n = fread(out, 1, sizeof(out) - 1, p);
    }
    out[n] = 0;
    int st = p ? pclose(p) : -1;
    remove(in_path);
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_tokenize_llama_spm(void)
{
    char args[4096];
    snprintf(args, sizeof(args), "tokenize --model '%s'",
             test_fixture("tokenizer/ggml-vocab-llama-spm.gguf"));
    /* vector 12 and 13 of ggml-vocab-llama-spm.gguf.inp/.out */
    ASSERT_INT_EQ(run_chatd(args, "Hello world", 11, false), 0);
    ASSERT_STR_EQ(out, "15043 3186\n");
    ASSERT_INT_EQ(run_chatd(args, " Hello world", 12, false), 0);
    ASSERT_STR_EQ(out, "29871 15043 3186\n");
    /* special-token text is not parsed */
    ASSERT_INT_EQ(run_chatd(args, "<s>", 3, false), 0);
    ASSERT_TRUE(strcmp(out, "1\n") != 0);
    strcat(args, " --bos");
    ASSERT_INT_EQ(run_chatd(args, "Hello world", 11, false), 0);
    ASSERT_STR_EQ(out, "1 15043 3186\n");
}

static void test_tokenize_qwen3(void)
{
    char args[4096];
    snprintf(args, sizeof(args), "tokenize --model '%s'",
             test_fixture("tokenizer/ggml-vocab-qwen3.gguf"));
    ASSERT_INT_EQ(run_chatd(args, " Hello World!", 13, false), 0);
    ASSERT_STR_EQ(out, "21927 4337 0\n");
    ASSERT_INT_EQ(run_chatd(args, "", 0, false), 0);
    ASSERT_STR_EQ(out, "\n");
}

static void test_detokenize(void)
{
    char args[4096];
    snprintf(args, sizeof(args), "detokenize --model '%s'",
             test_fixture("tokenizer/ggml-vocab-llama-spm.gguf"));
    ASSERT_INT_EQ(run_chatd(args, "29871 15043 3186\n", 17, false), 0);
    ASSERT_STR_EQ(out, " Hello world");
    ASSERT_INT_EQ(run_chatd(args, "1 15043 3186", 12, false), 0);
    ASSERT_STR_EQ(out, "Hello world");
    ASSERT_INT_EQ(run_chatd(args, "15043 99999", 11, true), 2);
    ASSERT_STR_CONTAINS(out, "out of range");
    ASSERT_INT_EQ(run_chatd(args, "15043 x", 7, true), 2);
}

static void test_info(void)
{
    char args[4096];
    snprintf(args, sizeof(args), "info '%s'", test_fixture("models/tiny-llama-q4_0.gguf"));
    ASSERT_INT_EQ(run_chatd(args, "", 0, false), 0);
    ASSERT_STR_CONTAINS(out, "architecture: llama\n");
    ASSERT_STR_CONTAINS(out, "context length: 512\n");
    ASSERT_STR_CONTAINS(out, "tensor types: F32=5 Q4_0=14 Q8_0=1\n");
    ASSERT_STR_CONTAINS(out, "tokenizer: llama");
    ASSERT_STR_CONTAINS(out, "chat template: yes\n");

    /* a truncated copy: one line naming the problem, exit 2 */
    char path[] = "/tmp/chatd-cli-bad-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_TRUE(fd >= 0);
    FILE *src = fopen(test_fixture("models/tiny-llama-q4_0.gguf"), "rb");
    ASSERT_TRUE(src != NULL);
    char buf[2000];
    size_t n = fread(buf, 1, sizeof(buf), src);
    fclose(src);
    ASSERT_INT_EQ(write(fd, buf, n), (long long)n);
    close(fd);
    snprintf(args, sizeof(args), "info '%s'", path);
    int rc = run_chatd(args, "", 0, true);
    remove(path);
    ASSERT_INT_EQ(rc, 2);
    ASSERT_STR_CONTAINS(out, "offset ");
    ASSERT_STR_CONTAINS(out, "exceeds remaining");
    ASSERT_TRUE(strchr(out, '\n') == out + strlen(out) - 1); /* one line */
    ASSERT_INT_EQ(run_chatd("info", "", 0, true), 2);
}

int main(void)
{
    RUN(test_tokenize_llama_spm);
    RUN(test_tokenize_qwen3);
    RUN(test_detokenize);
    RUN(test_info);
    return TEST_DONE();
}
