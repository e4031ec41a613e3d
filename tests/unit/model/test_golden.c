/* test_golden.c - the CPU backend against the reference implementation's golden logits
 * for every fixture model (rules and tolerances: tests/fixtures/README.md). */
#include "test.h"

#include "golden.h"
#include "tokenizer.h"

/* Rule 2: the prompt ids as the model's own tokenizer makes them (BOS as the model
 * adds it, special-token text not parsed). */
static int tokenize(const struct gguf_file *f, const char *text, int32_t *ids, int max_ids)
{
    struct tok_vocab *v = NULL;
    char err[256];
    if (tok_load(&v, f, err, sizeof(err)) != 0) {
        fprintf(stderr, "  tok_load: %s\n", err);
        return -1;
    }
    int32_t *out = NULL;
    size_t n = 0;
    int rc = tok_encode(v, text, strlen(text), tok_add_bos(v), false, &out, &n);
    if (rc == 0 && n <= (size_t)max_ids)
        memcpy(ids, out, n * sizeof(int32_t));
    free(out);
    tok_free(v);
    return rc == 0 && n <= (size_t)max_ids ? (int)n : -1;
}

static void check(const char *model, double tol)
{
    golden_check(&bk_cpu_ops, model, tol, 2, tokenize);
}

static void test_tiny_llama_f32(void)
{
    check("tiny-llama-f32", 0.005);
}

static void test_tiny_llama_q4_0(void)
{
    check("tiny-llama-q4_0", 0.15);
}

static void test_tiny_qwen2_q8_0(void)
{
    check("tiny-qwen2-q8_0", 0.15);
}

static void test_small_llama_kq_q4_k_m(void)
{
    check("small-llama-kq-q4_k_m", 0.15);
}

static void test_tiny_phi3_f16(void)
{
    check("tiny-phi3-f16", 0.01);
}

static void test_tiny_gemma2_q8_0(void)
{
    check("tiny-gemma2-q8_0", 0.2);
}

static void test_tiny_gemma3_q8_0(void)
{
    check("tiny-gemma3-q8_0", 0.25);
}

static void test_tiny_qwen3_q8_0(void)
{
    check("tiny-qwen3-q8_0", 0.15);
}

static void test_tiny_moe_q4_0(void)
{
    check("tiny-moe-q4_0", 0.15);
}

int main(void)
{
    RUN(test_tiny_llama_f32);
    RUN(test_tiny_llama_q4_0);
    RUN(test_tiny_qwen2_q8_0);
    RUN(test_small_llama_kq_q4_k_m);
    RUN(test_tiny_phi3_f16);
    RUN(test_tiny_gemma2_q8_0);
    RUN(test_tiny_gemma3_q8_0);
    RUN(test_tiny_qwen3_q8_0);
    RUN(test_tiny_moe_q4_0);
    return TEST_DONE();
}
