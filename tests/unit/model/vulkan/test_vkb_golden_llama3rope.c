/* test_vkb_golden_llama3rope.c - the Vulkan backend against the reference
 * implementation's golden logits of tiny-llama3rope-q5_k_m (Llama 3 RoPE scaling), as
 * test_golden_llama3rope does for the CPU: SKIPPED (exit 77) with the loader's reason
 * while the file's Q5_K weights are refused, never a pass without checking. */
#include "test.h"

#include "unit/model/golden.h"

#define MODEL "tiny-llama3rope-q5_k_m"

static void test_vkb_tiny_llama3rope_q5_k_m(void)
{
    golden_check(&bk_vulkan_ops, MODEL, 0.2, 0, NULL);
}

int main(void)
{
    char why[256];
    if (!golden_types_supported(MODEL, why, sizeof(why))) {
        printf("SKIPPED: %s: %s\n", MODEL, why);
        return 77;
    }
    RUN(test_vkb_tiny_llama3rope_q5_k_m);
    return TEST_DONE();
}
