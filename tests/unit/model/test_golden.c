/* test_golden.c - the CPU backend against the reference implementation's golden logits
 * for every fixture model (rules and tolerances: tests/fixtures/README.md and README-new-archs.md;
 * tiny-llama3rope-q5_k_m has its own program, test_golden_llama3rope). */
#include "test.h"

#include "golden.h"

static void check(const char *model, double tol)
{
    golden_check(&bk_cpu_ops, model, tol, 2, golden_tokenize);
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
