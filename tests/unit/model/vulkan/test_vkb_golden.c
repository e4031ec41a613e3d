/* test_vkb_golden.c - the Vulkan backend against the reference implementation's golden
 * logits for every fixture model and prompt (rules and tolerances:
 * tests/fixtures/README.md and README-new-archs.md; the checker is shared with the CPU
 * test). The Vulkan backend keeps activations in F32 and the KV cache in F16; each model
 * gets the tolerance the fixtures' README suggests for its type and architecture.
 * tiny-llama3rope-q5_k_m has its own program, test_vkb_golden_llama3rope. */
#include "test.h"

#include "unit/model/golden.h"

static void check(const char *model, double tol)
{
    golden_check(&bk_vulkan_ops, model, tol, 0, NULL);
}

static void test_vkb_tiny_llama_f32(void)
{
    check("tiny-llama-f32", 0.005);
}

static void test_vkb_tiny_llama_q4_0(void)
{
    check("tiny-llama-q4_0", 0.15);
}

static void test_vkb_tiny_qwen2_q8_0(void)
{
    check("tiny-qwen2-q8_0", 0.15);
}

static void test_vkb_small_llama_kq_q4_k_m(void)
{
    check("small-llama-kq-q4_k_m", 0.15);
}

static void test_vkb_tiny_phi3_f16(void)
{
    check("tiny-phi3-f16", 0.01);
}

static void test_vkb_tiny_gemma2_q8_0(void)
{
    check("tiny-gemma2-q8_0", 0.2);
}

static void test_vkb_tiny_gemma3_q8_0(void)
{
    check("tiny-gemma3-q8_0", 0.25);
}

static void test_vkb_tiny_qwen3_q8_0(void)
{
    check("tiny-qwen3-q8_0", 0.15);
}

static void test_vkb_tiny_moe_q4_0(void)
{
    check("tiny-moe-q4_0", 0.15);
}

int main(void)
{
    RUN(test_vkb_tiny_llama_f32);
    RUN(test_vkb_tiny_llama_q4_0);
    RUN(test_vkb_tiny_qwen2_q8_0);
    RUN(test_vkb_small_llama_kq_q4_k_m);
    RUN(test_vkb_tiny_phi3_f16);
    RUN(test_vkb_tiny_gemma2_q8_0);
    RUN(test_vkb_tiny_gemma3_q8_0);
    RUN(test_vkb_tiny_qwen3_q8_0);
    RUN(test_vkb_tiny_moe_q4_0);
    return TEST_DONE();
}
