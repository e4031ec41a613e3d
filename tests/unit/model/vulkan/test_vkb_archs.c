/* test_vkb_archs.c - the Vulkan backend against the CPU backend on generated models of
 * every architecture and feature the golden fixtures cannot reach or reach only in
 * part: qwen2moe (no reference fixture), Llama 3 rope_freqs at F32 (the fixture is
 * Q5_K_M), gemma3's global layer with linear scaling, phi3 with a window shorter than
 * the prompt and LongRoPE factors, experts. Each model is F32, so the two backends
 * differ only in where they round (the CPU's F16 query and probabilities in attention):
 * every logit of a 70-token prompt and 4 decode steps within 0.01.
 */
#include "test.h"

#include "unit/model/gen_fixture.h"

#define N_PROMPT 70
#define N_STEPS 4

static void tokens(int32_t *t, int n)
{
    uint32_t s = 12345;
    for (int i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        t[i] = 3 + (int32_t)((s >> 8) % 31000);
    }
    t[0] = 1; /* BOS */
}

/* max |cpu - vulkan| over every logit of the prompt and the decode steps, with slots
 * of n_ctx positions */
static double cpu_vs_vulkan(const struct mdl_weights *w, uint32_t n_ctx)
{
    struct bk_params p = {.n_slots = 1, .n_ctx = n_ctx, .n_threads = 2, .device = -1};
    struct bk_backend *cb = NULL;
    struct bk_backend *vb = NULL;
    char err[256];
    size_t n = (size_t)(N_PROMPT + N_STEPS) * w->hp.n_vocab;
    float *lc = malloc(n * sizeof(float));
    float *lv = malloc(n * sizeof(float));
    int32_t toks[N_PROMPT + N_STEPS];
    tokens(toks, N_PROMPT + N_STEPS);
    double m = 1e9;
    if (bk_cpu_ops.init(&cb, w, &p, err, sizeof(err)) != 0 ||
        bk_vulkan_ops.init(&vb, w, &p, err, sizeof(err)) != 0) {
        fprintf(stderr, "  init: %s\n", err);
    } else if (gen_fixture_run(&bk_cpu_ops, cb, toks, N_PROMPT, N_STEPS, w->hp.n_vocab, lc) == 0 &&
               gen_fixture_run(&bk_vulkan_ops, vb, toks, N_PROMPT, N_STEPS, w->hp.n_vocab, lv) ==
                   0) {
        m = 0;
        for (size_t i = 0; i < n; i++)
            m = fabs((double)lc[i] - lv[i]) > m ? fabs((double)lc[i] - lv[i]) : m;
    }
    if (cb)
        bk_cpu_ops.free(cb);
    if (vb)
        bk_vulkan_ops.free(vb);
    free(lc);
    free(lv);
    return m;
}

static void check_arch_ctx(enum mdl_arch arch, void (*tune)(struct mdl_gen_params *p),
                           uint32_t n_ctx)
{
    struct gen_fixture fx;
    ASSERT_INT_EQ(gen_fixture_open(&fx, arch, tune), 0);
    double d = cpu_vs_vulkan(&fx.w, n_ctx);
    fprintf(stderr, "  %s: max |cpu - vulkan| %.5f\n", mdl_arch_str(arch), d);
    gen_fixture_close(&fx);
    ASSERT_TRUE(d <= 0.01);
}

static void check_arch(enum mdl_arch arch, void (*tune)(struct mdl_gen_params *p))
{
    check_arch_ctx(arch, tune, 128);
}

static void tune_qwen3(struct mdl_gen_params *p)
{
    p->head_dim = 32; /* 4 heads of 32: q is 128 wide, n_embd 64 */
}

static void tune_phi3(struct mdl_gen_params *p)
{
    p->n_swa = 24;
    p->longrope = 1;
    p->n_ctx = 8192; /* the long factors apply when a slot holds more than 4096 */
}

static void tune_gemma2(struct mdl_gen_params *p)
{
    p->head_dim = 32;
    p->n_swa = 16;
    p->attn_softcap = 4.0f;
    p->final_softcap = 8.0f;
}

static void tune_gemma3(struct mdl_gen_params *p)
{
    p->head_dim = 32;
    p->n_layer = 6; /* layer 5 is global */
    p->n_swa = 16;
    p->rope_scale = 8.0f;
    p->rope_freq_base = 1e6f;
}

static void tune_moe(struct mdl_gen_params *p)
{
    p->n_expert = 4;
    p->n_expert_used = 2;
}

static void tune_llama3rope(struct mdl_gen_params *p)
{
    p->n_head = 2;
    p->n_head_kv = 1; /* head 32 */
    p->llama3_rope = 8.0f;
    p->rope_freq_base = 500000.0f;
}

static void test_qwen3(void)
{
    check_arch(MDL_ARCH_QWEN3, tune_qwen3);
}

/* slots of 128 positions use LongRoPE's short factors, of 4200 its long ones */
static void test_phi3(void)
{
    check_arch(MDL_ARCH_PHI3, tune_phi3);
    check_arch_ctx(MDL_ARCH_PHI3, tune_phi3, 4200);
}

static void test_gemma2(void)
{
    check_arch(MDL_ARCH_GEMMA2, tune_gemma2);
}

static void test_gemma3(void)
{
    check_arch(MDL_ARCH_GEMMA3, tune_gemma3);
}

static void test_llama_moe(void)
{
    check_arch(MDL_ARCH_LLAMA, tune_moe);
}

static void test_qwen2moe(void)
{
    check_arch(MDL_ARCH_QWEN2MOE, NULL);
}

static void test_llama3_rope_freqs(void)
{
    check_arch(MDL_ARCH_LLAMA, tune_llama3rope);
}

static void tune_moe8(struct mdl_gen_params *p)
{
    p->n_expert = 8;
    p->n_expert_used = 2;
}

/* A one-token decode reads only the router's choice: of 8 experts, every other may hold
 * NaNs without changing the logits. */
static void test_decode_reads_chosen_experts(void)
{
    struct gen_fixture fx;
    ASSERT_INT_EQ(gen_fixture_open(&fx, MDL_ARCH_LLAMA, tune_moe8), 0);
    int l0 = gen_fixture_experts_read(&bk_vulkan_ops, &fx.w, 0);
    int l1 = gen_fixture_experts_read(&bk_vulkan_ops, &fx.w, 1);
    gen_fixture_close(&fx);
    ASSERT_INT_EQ(l0, 2);
    ASSERT_INT_EQ(l1, 2);
}

int main(void)
{
    RUN(test_qwen3);
    RUN(test_phi3);
    RUN(test_gemma2);
    RUN(test_gemma3);
    RUN(test_llama_moe);
    RUN(test_qwen2moe);
    RUN(test_llama3_rope_freqs);
    RUN(test_decode_reads_chosen_experts);
    return TEST_DONE();
}
