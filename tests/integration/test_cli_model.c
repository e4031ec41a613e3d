/* test_cli_model.c - the model subcommands through the chatd binary (CHATD_BIN):
 * eval and generate --json against the golden data, gen-model + bench, usage errors. */
#include "test.h"

#include <jansson.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs a shell command; returns its exit status and (if out) its stdout parsed as JSON. */
static int run(const char *cmd, json_t **out)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    json_error_t err;
    json_t *j = json_loadf(p, JSON_DISABLE_EOF_CHECK, &err);
    char sink[4096];
    while (fread(sink, 1, sizeof(sink), p) > 0) {
    }
    int st = pclose(p);
    if (out)
        *out = j;
    else
        json_decref(j);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *bin(void)
{
    const char *b = getenv("CHATD_BIN");
    return b ? b : "./chatd";
}

static json_t *golden(int i)
{
    char rel[128];
    snprintf(rel, sizeof(rel), "golden/tiny-llama-f32.%d.json", i);
    return json_load_file(test_fixture(rel), 0, NULL);
}

static void test_eval_matches_golden(void)
{
    json_t *g = golden(1);
    ASSERT_TRUE(g != NULL);
    json_t *pt = json_object_get(g, "prompt_tokens");
    char toks[256] = "";
    for (size_t i = 0; i < json_array_size(pt); i++) {
        char one[16];
        snprintf(one, sizeof(one), "%s%lld", i ? " " : "",
                 json_integer_value(json_array_get(pt, i)));
        strcat(toks, one);
    }
    char cmd[1024];
    char model[512];
    snprintf(model, sizeof(model), "%s", test_fixture("models/tiny-llama-f32.gguf"));
    snprintf(cmd, sizeof(cmd),
             "%s eval --model %s --tokens \"%s\" --prefill 3 --top 5 --last-logits --json", bin(),
             model, toks);
    json_t *o = NULL;
    ASSERT_INT_EQ(run(cmd, &o), 0);
    ASSERT_TRUE(o != NULL);
    json_t *top = json_object_get(o, "top");
    ASSERT_INT_EQ(json_array_size(top), json_array_size(pt));
    json_t *gt = json_object_get(g, "prompt_top10");
    for (size_t p = 0; p < json_array_size(top); p++) {
        json_t *ours = json_array_get(json_array_get(top, p), 0);
        json_t *theirs = json_array_get(json_array_get(gt, p), 0);
        ASSERT_INT_EQ(json_integer_value(json_array_get(ours, 0)),
                      json_integer_value(json_array_get(theirs, 0)));
        ASSERT_NEAR(json_real_value(json_array_get(ours, 1)),
                    json_number_value(json_array_get(theirs, 1)), 0.005);
    }
    ASSERT_INT_EQ(json_array_size(json_object_get(o, "last_logits")), 32000);
    json_decref(o);
    json_decref(g);
}

static void test_generate_json_greedy(void)
{
    json_t *g = golden(0);
    ASSERT_TRUE(g != NULL);
    char cmd[1024];
    char model[512];
    snprintf(model, sizeof(model), "%s", test_fixture("models/tiny-llama-f32.gguf"));
    snprintf(cmd, sizeof(cmd), "%s generate --model %s --prompt \"%s\" -n 16 --temp 0 --json",
             bin(), model, json_string_value(json_object_get(g, "prompt")));
    json_t *o = NULL;
    ASSERT_INT_EQ(run(cmd, &o), 0);
    ASSERT_TRUE(o != NULL);
    ASSERT_TRUE(json_equal(json_object_get(o, "prompt_ids"), json_object_get(g, "prompt_tokens")));
    json_t *ids = json_object_get(o, "ids");
    json_t *greedy = json_object_get(g, "greedy");
    ASSERT_INT_EQ(json_array_size(ids), 16);
    for (size_t s = 0; s < 16; s++) /* every margin of this prompt is > 0.01 */
        ASSERT_INT_EQ(json_integer_value(json_array_get(ids, s)),
                      json_integer_value(json_object_get(json_array_get(greedy, s), "token")));
    ASSERT_INT_EQ(json_array_size(json_object_get(o, "top")), 16);
    ASSERT_INT_EQ(json_array_size(json_array_get(json_object_get(o, "top"), 0)), 10);
    ASSERT_TRUE(json_is_string(json_object_get(o, "text")));
    ASSERT_TRUE(json_real_value(json_object_get(o, "decode_tokens_per_s")) > 0);
    ASSERT_TRUE(json_real_value(json_object_get(o, "prefill_tokens_per_s")) > 0);
    json_decref(o);
    json_decref(g);
}

/* Sampled ids can spell invalid UTF-8 (a byte-level BPE vocabulary, a hot temperature):
 * the JSON output stays whole, with U+FFFD for the bad bytes, as the HTTP API does. These
 * seeds once gave truncated JSON. */
static void test_generate_json_invalid_utf8(void)
{
    for (int seed = 1; seed <= 8; seed++) {
        char cmd[10240];
        snprintf(cmd, sizeof(cmd),
                 "%s generate --model %s --prompt Hello -n 40 --temp 1.5 --seed %d --json 2>/dev/null",
                 bin(), test_fixture("models/tiny-qwen2-q8_0.gguf"), seed);
        json_t *j = NULL;
        ASSERT_INT_EQ(run(cmd, &j), 0);
        ASSERT_TRUE(j != NULL);
        ASSERT_TRUE(json_is_string(json_object_get(j, "text")));
        ASSERT_INT_EQ(json_array_size(json_object_get(j, "ids")), 40);
        json_decref(j);
    }
}

static void test_gen_model_and_bench(void)
{
    char path[128], cmd[1024], vocab[512];
    snprintf(path, sizeof(path), "/tmp/chatd-test-cli-%d.gguf", (int)getpid());
    snprintf(vocab, sizeof(vocab), "%s", test_fixture("tokenizer/ggml-vocab-llama-spm.gguf"));
    snprintf(cmd, sizeof(cmd),
             "%s gen-model --arch llama --preset tiny --vocab %s --type q8_0 --out %s", bin(),
             vocab, path);
    ASSERT_INT_EQ(run(cmd, NULL), 0);
    snprintf(cmd, sizeof(cmd), "%s bench --model %s -p 8 -n 4 -r 2 -t 2 --json", bin(), path);
    json_t *o = NULL;
    int rc = run(cmd, &o);
    unlink(path);
    ASSERT_INT_EQ(rc, 0);
    ASSERT_INT_EQ(json_array_size(o), 2);
    ASSERT_INT_EQ(json_integer_value(json_object_get(json_array_get(o, 0), "n_prompt")), 8);
    ASSERT_INT_EQ(json_integer_value(json_object_get(json_array_get(o, 1), "n_gen")), 4);
    ASSERT_TRUE(json_real_value(json_object_get(json_array_get(o, 1), "avg_ts")) > 0);
    json_decref(o);
}

static void test_usage_errors(void)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s eval --model x.gguf 2>/dev/null", bin());
    ASSERT_INT_EQ(run(cmd, NULL), 2);
    snprintf(cmd, sizeof(cmd), "%s gen-model --type q5_1 --vocab v --out o 2>/dev/null", bin());
    ASSERT_INT_EQ(run(cmd, NULL), 2);
    snprintf(cmd, sizeof(cmd), "%s generate --model /nonexistent.gguf --prompt hi 2>/dev/null",
             bin());
    ASSERT_TRUE(run(cmd, NULL) != 0);
    snprintf(cmd, sizeof(cmd), "%s eval --model %s --tokens \"1 99999999\" --json 2>/dev/null",
             bin(), test_fixture("models/tiny-llama-f32.gguf"));
    ASSERT_INT_EQ(run(cmd, NULL), 2);
}

int main(void)
{
    RUN(test_eval_matches_golden);
    RUN(test_generate_json_greedy);
    RUN(test_generate_json_invalid_utf8);
    RUN(test_gen_model_and_bench);
    RUN(test_usage_errors);
    return TEST_DONE();
}
