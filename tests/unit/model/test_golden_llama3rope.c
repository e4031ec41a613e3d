/* test_golden_llama3rope.c - the CPU backend against the reference implementation's
 * golden logits of tiny-llama3rope-q5_k_m: llama with Llama 3 RoPE scaling (the
 * rope_freqs.weight divisors), rules and tolerance in tests/fixtures/README-new-archs.md.
 *
 * Its layer matrices are Q5_K. While the loader refuses that weight type this program
 * reports SKIPPED (exit 77) with the loader's reason; it never passes without checking.
 * The scaling itself is checked without Q5_K by test_cpu_ops (the rotation against a
 * direct computation) and test_vkb_forward (a generated model, CPU against Vulkan). */
#include "test.h"

#include "golden.h"

#define MODEL "tiny-llama3rope-q5_k_m"

static void test_tiny_llama3rope_q5_k_m(void)
{
    golden_check(&bk_cpu_ops, MODEL, 0.2, 2, golden_tokenize);
}

int main(void)
{
    char why[256];
    if (!golden_types_supported(MODEL, why, sizeof(why))) {
        printf("SKIPPED: %s: %s\n", MODEL, why);
        return 77;
    }
    RUN(test_tiny_llama3rope_q5_k_m);
    return TEST_DONE();
}
