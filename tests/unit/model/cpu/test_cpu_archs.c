/* test_cpu_archs.c - features of the new architectures on the CPU backend, on generated
 * models: a one-token decode reads only the experts the router chose (every other
 * expert may hold NaNs without changing a bit), Llama 3 rope_freqs and LongRoPE's long
 * factors change the logits (they are applied), a sliding window changes the logits of
 * positions past it and only those. */
#include "test.h"

#include "unit/model/gen_fixture.h"

static void tune_moe(struct mdl_gen_params *p)
{
    p->n_expert = 8;
    p->n_expert_used = 2;
}

static void test_decode_reads_chosen_experts(void)
{
    struct gen_fixture fx;
    ASSERT_INT_EQ(gen_fixture_open(&fx, MDL_ARCH_LLAMA, tune_moe), 0);
    int l0 = gen_fixture_experts_read(&bk_cpu_ops, &fx.w, 0);
    int l1 = gen_fixture_experts_read(&bk_cpu_ops, &fx.w, 1);
    gen_fixture_close(&fx);
    ASSERT_INT_EQ(l0, 2);
    ASSERT_INT_EQ(l1, 2);
}

/* max |a - b| of the CPU logits of two models over the same 80 tokens, and the same
 * over the first `head` positions only */
static double logits_diff(const struct mdl_weights *a, const struct mdl_weights *b,
                          uint32_t n_ctx, int head, double *head_diff)
{
    enum { N = 80 };
    int32_t toks[N];
    uint32_t s = 99;
    for (int i = 0; i < N; i++) {
        s = s * 1103515245u + 12345u;
        toks[i] = 3 + (int32_t)((s >> 8) % 31000);
    }
    const struct mdl_weights *ws[2] = {a, b};
    float *l[2];
    struct bk_params p = {.n_slots = 1, .n_ctx = n_ctx, .n_threads = 2, .device = -1};
    char err[256];
    double m = -1;
    for (int i = 0; i < 2; i++) {
        struct bk_backend *bk = NULL;
        l[i] = malloc((size_t)N * a->hp.n_vocab * sizeof(float));
        if (bk_cpu_ops.init(&bk, ws[i], &p, err, sizeof(err)) == 0 &&
            gen_fixture_run(&bk_cpu_ops, bk, toks, N, 0, a->hp.n_vocab, l[i]) == 0)
            m = 0;
        if (bk)
            bk_cpu_ops.free(bk);
    }
    *head_diff = 0;
    for (size_t i = 0; m >= 0 && i < (size_t)N * a->hp.n_vocab; i++) {
        double d = fabs((double)l[0][i] - l[1][i]);
        m = d > m ? d : m;
        if (i < (size_t)head * a->hp.n_vocab && d > *head_diff)
            *head_diff = d;
    }
    free(l[0]);
    free(l[1]);
    return m;
}

static float llama3_factor;

static void tune_llama3(struct mdl_gen_params *p)
{
    p->rope_freq_base = 10000.0f;
    p->llama3_rope = llama3_factor;
}

/* The same weights with and without rope_freqs.weight (tensors depend only on the
 * seed and their name). */
static void test_rope_freqs_applied(void)
{
    struct gen_fixture with, without;
    llama3_factor = 8.0f;
    ASSERT_INT_EQ(gen_fixture_open(&with, MDL_ARCH_LLAMA, tune_llama3), 0);
    llama3_factor = 0.0f;
    ASSERT_INT_EQ(gen_fixture_open(&without, MDL_ARCH_LLAMA, tune_llama3), 0);
    ASSERT_TRUE(with.w.rope_freqs.data != NULL && without.w.rope_freqs.data == NULL);
    double first;
    double d = logits_diff(&with.w, &without.w, 128, 1, &first);
    fprintf(stderr, "  rope_freqs: max change %.4f (position 0: %.6f)\n", d, first);
    gen_fixture_close(&with);
    gen_fixture_close(&without);
    ASSERT_TRUE(d > 0.01);
    ASSERT_TRUE(first == 0); /* position 0 has no rotation at all */
}

static uint32_t phi3_window;

static void tune_phi3(struct mdl_gen_params *p)
{
    p->longrope = 1;
    p->n_ctx = 8192;
    p->n_swa = phi3_window;
}

/* LongRoPE: slots longer than the original 4096 positions use the long factors. */
static void test_longrope_factors_chosen_by_context(void)
{
    struct gen_fixture fx;
    phi3_window = 0;
    ASSERT_INT_EQ(gen_fixture_open(&fx, MDL_ARCH_PHI3, tune_phi3), 0);
    /* the same model with 4096-position slots (short factors) and 4097 (long ones) */
    enum { N = 80 };
    int32_t toks[N];
    for (int i = 0; i < N; i++)
        toks[i] = 3 + 37 * i;
    float *l[2];
    const uint32_t ctx[2] = {4096, 4097};
    for (int i = 0; i < 2; i++) {
        struct bk_params p = {.n_slots = 1, .n_ctx = ctx[i], .n_threads = 2, .device = -1};
        struct bk_backend *bk = NULL;
        char err[256];
        l[i] = calloc((size_t)N * fx.w.hp.n_vocab, sizeof(float));
        ASSERT_INT_EQ(bk_cpu_ops.init(&bk, &fx.w, &p, err, sizeof(err)), 0);
        ASSERT_INT_EQ(gen_fixture_run(&bk_cpu_ops, bk, toks, N, 0, fx.w.hp.n_vocab, l[i]), 0);
        bk_cpu_ops.free(bk);
    }
    double d = 0;
    for (size_t i = 0; i < (size_t)N * fx.w.hp.n_vocab; i++)
        d = fabs((double)l[0][i] - l[1][i]) > d ? fabs((double)l[0][i] - l[1][i]) : d;
    fprintf(stderr, "  LongRoPE: long vs short factors, max change %.4f\n", d);
    free(l[0]);
    free(l[1]);
    gen_fixture_close(&fx);
    ASSERT_TRUE(d > 0.01);
}

/* phi3 with a window of 20: positions 0-19 see all their keys either way, later ones
 * lose the oldest. */
static void test_sliding_window(void)
{
    struct gen_fixture windowed, full;
    phi3_window = 20;
    ASSERT_INT_EQ(gen_fixture_open(&windowed, MDL_ARCH_PHI3, tune_phi3), 0);
    phi3_window = 0;
    ASSERT_INT_EQ(gen_fixture_open(&full, MDL_ARCH_PHI3, tune_phi3), 0);
    double head;
    double d = logits_diff(&windowed.w, &full.w, 128, 20, &head);
    fprintf(stderr, "  window 20: max change %.4f, within the window %.6f\n", d, head);
    gen_fixture_close(&windowed);
    gen_fixture_close(&full);
    ASSERT_TRUE(head == 0);
    ASSERT_TRUE(d > 0.01);
}

int main(void)
{
    RUN(test_decode_reads_chosen_experts);
    RUN(test_rope_freqs_applied);
    RUN(test_longrope_factors_chosen_by_context);
    RUN(test_sliding_window);
    return TEST_DONE();
}
