/* test_vkb_forward.c - the Vulkan backend's batch semantics against the CPU backend.
 *
 * One batch mixes tokens of several slots with logits wanted for some of them; the
 * rows must come back in batch order and agree with the CPU backend (tolerance 0.01:
 * the CPU backend rounds activations as the reference does, the Vulkan one keeps F32;
 * both are within 0.005 of the golden data on the F32 model). Batch invariance is
 * checked bit for bit: a slot's logits do not depend on what else is in the batch or on
 * how its prompt was split. Also: kv_truncate, refused batches, logits == NULL.
 */
#include "test.h"

#include "backend.h"
#include "gguf.h"
#include "loader.h"

static struct gguf_file *gf;
static struct mdl_weights w;

static int open_model(const char *name)
{
    char err[256];
    char rel[128];
    snprintf(rel, sizeof(rel), "models/%s.gguf", name);
    if (gguf_open(&gf, test_fixture(rel), err, sizeof(err)) != 0 ||
        mdl_load_weights(&w, gf, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", rel, err);
        return -1;
    }
    return 0;
}

static void close_model(void)
{
    mdl_weights_fini(&w);
    gguf_close(gf);
    gf = NULL;
}

static struct bk_backend *start(const struct bk_ops *ops)
{
    char err[256];
    struct bk_params p = {.n_slots = 3, .n_ctx = 256, .n_threads = 1, .device = -1};
    struct bk_backend *b = NULL;
    if (ops->init(&b, &w, &p, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s init: %s\n", ops->name, err);
        return NULL;
    }
    return b;
}

/* Batch A: slot 0 positions 0-4 interleaved with slot 2 positions 0-2. */
static const int32_t a_tok[8] = {1, 1, 450, 3303, 310, 3444, 338, 263};
static const int32_t a_pos[8] = {0, 0, 1, 1, 2, 2, 3, 4};
static const int32_t a_slot[8] = {0, 2, 0, 2, 0, 2, 0, 0};
static const bool a_want[8] = {false, false, false, true, false, true, false, true};
/* Batch B: one decode step for slots 0, 2 and a first token for slot 1. */
static const int32_t b_tok[3] = {4996, 1724, 1};
static const int32_t b_pos[3] = {5, 3, 0};
static const int32_t b_slot[3] = {0, 2, 1};

static int run(const struct bk_ops *ops, struct bk_backend *b, uint32_t n, const int32_t *tok,
               const int32_t *pos, const int32_t *slot, const bool *want, float *logits)
{
    struct bk_batch batch = {n, tok, pos, slot, want};
    return ops->forward(b, &batch, logits);
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m))
            m = d;
    }
    return m;
}

static void test_mixed_slots_match_cpu(void)
{
    const uint32_t V = w.hp.n_vocab;
    struct bk_backend *vk = start(&bk_vulkan_ops);
    struct bk_backend *cpu = start(&bk_cpu_ops);
    ASSERT_TRUE(vk && cpu);
    float *lv = malloc(3 * (size_t)V * sizeof(float));
    float *lc = malloc(3 * (size_t)V * sizeof(float));
    ASSERT_INT_EQ(run(&bk_vulkan_ops, vk, 8, a_tok, a_pos, a_slot, a_want, lv), 0);
    ASSERT_INT_EQ(run(&bk_cpu_ops, cpu, 8, a_tok, a_pos, a_slot, a_want, lc), 0);
    double d = max_diff(lv, lc, 3 * (size_t)V);
    fprintf(stderr, "  batch A: max |vulkan - cpu| = %.5f\n", d);
    ASSERT_TRUE(d <= 0.01);
    ASSERT_INT_EQ(run(&bk_vulkan_ops, vk, 3, b_tok, b_pos, b_slot, NULL, lv), 0);
    ASSERT_INT_EQ(run(&bk_cpu_ops, cpu, 3, b_tok, b_pos, b_slot, NULL, lc), 0);
    d = max_diff(lv, lc, 3 * (size_t)V);
    fprintf(stderr, "  batch B: max |vulkan - cpu| = %.5f\n", d);
    ASSERT_TRUE(d <= 0.01);
    bk_vulkan_ops.free(vk);
    bk_cpu_ops.free(cpu);
    free(lv);
    free(lc);
}

/* Slot 0 fed alone, one token per forward, must give the same bits as inside the
 * mixed batches above; then kv_truncate and a refill reproduce them again. */
static void test_batch_invariance_and_truncate(void)
{
    const uint32_t V = w.hp.n_vocab;
    struct bk_backend *mixed = start(&bk_vulkan_ops);
    struct bk_backend *solo = start(&bk_vulkan_ops);
    ASSERT_TRUE(mixed && solo);
    float *lm = malloc(3 * (size_t)V * sizeof(float));
    float *ls = malloc((size_t)V * sizeof(float));
    ASSERT_INT_EQ(run(&bk_vulkan_ops, mixed, 8, a_tok, a_pos, a_slot, a_want, lm), 0);
    ASSERT_INT_EQ(run(&bk_vulkan_ops, mixed, 3, b_tok, b_pos, b_slot, NULL, lm), 0);
    const int32_t seq[6] = {1, 450, 310, 338, 263, 4996};
    const int32_t zero = 0;
    for (int32_t p = 0; p < 6; p++)
        ASSERT_INT_EQ(run(&bk_vulkan_ops, solo, 1, &seq[p], &p, &zero, NULL, ls), 0);
    ASSERT_TRUE(memcmp(ls, lm, (size_t)V * sizeof(float)) == 0);
    /* forget positions 3.., refill 3-5 as one prefill batch */
    bk_vulkan_ops.kv_truncate(solo, 0, 3);
    const int32_t pos3[3] = {3, 4, 5};
    const int32_t slot0[3] = {0, 0, 0};
    const bool last[3] = {false, false, true};
    ASSERT_INT_EQ(run(&bk_vulkan_ops, solo, 3, seq + 3, pos3, slot0, last, ls), 0);
    ASSERT_TRUE(memcmp(ls, lm, (size_t)V * sizeof(float)) == 0);
    bk_vulkan_ops.free(mixed);
    bk_vulkan_ops.free(solo);
    free(lm);
    free(ls);
}

static void test_refuses_bad_batches(void)
{
    const uint32_t V = w.hp.n_vocab;
    struct bk_backend *vk = start(&bk_vulkan_ops);
    ASSERT_TRUE(vk != NULL);
    float *l = malloc((size_t)V * sizeof(float));
    int32_t tok = 1;
    int32_t pos = 1; /* slot 0 is empty: position 1 does not continue it */
    int32_t slot = 0;
    ASSERT_TRUE(run(&bk_vulkan_ops, vk, 1, &tok, &pos, &slot, NULL, l) < 0);
    pos = 0;
    slot = 3; /* n_slots is 3 */
    ASSERT_TRUE(run(&bk_vulkan_ops, vk, 1, &tok, &pos, &slot, NULL, l) < 0);
    slot = 0;
    tok = (int32_t)V;
    ASSERT_TRUE(run(&bk_vulkan_ops, vk, 1, &tok, &pos, &slot, NULL, l) < 0);
    tok = 1;
    ASSERT_INT_EQ(run(&bk_vulkan_ops, vk, 1, &tok, &pos, &slot, NULL, NULL), 0); /* no logits */
    pos = 1;
    ASSERT_INT_EQ(run(&bk_vulkan_ops, vk, 1, &tok, &pos, &slot, NULL, l), 0);
    ASSERT_TRUE(isfinite(l[0]) && isfinite(l[V - 1]));
    ASSERT_TRUE(strstr(bk_vulkan_ops.describe(vk), "vulkan") != NULL);
    bk_vulkan_ops.free(vk);
    free(l);
}

static void test_long_batch_over_chunk_limits(void)
{
    /* 150 tokens with logits everywhere: three internal chunks (64 logits rows each) */
    const uint32_t V = w.hp.n_vocab;
    const uint32_t n = 150;
    struct bk_backend *vk = start(&bk_vulkan_ops);
    struct bk_backend *cpu = start(&bk_cpu_ops);
    ASSERT_TRUE(vk && cpu);
    int32_t tok[150];
    int32_t pos[150];
    int32_t slot[150];
    for (uint32_t i = 0; i < n; i++) {
        tok[i] = (int32_t)((i * 7919u + 13u) % V);
        pos[i] = (int32_t)i;
        slot[i] = 1;
    }
    float *lv = malloc((size_t)n * V * sizeof(float));
    float *lc = malloc((size_t)n * V * sizeof(float));
    ASSERT_INT_EQ(run(&bk_vulkan_ops, vk, n, tok, pos, slot, NULL, lv), 0);
    ASSERT_INT_EQ(run(&bk_cpu_ops, cpu, n, tok, pos, slot, NULL, lc), 0);
    double d = max_diff(lv, lc, (size_t)n * V);
    fprintf(stderr, "  150-token prefill: max |vulkan - cpu| = %.5f\n", d);
    ASSERT_TRUE(d <= 0.01);
    bk_vulkan_ops.free(vk);
    bk_cpu_ops.free(cpu);
    free(lv);
    free(lc);
}

int main(void)
{
    if (open_model("tiny-llama-f32") != 0)
        return 1;
    RUN(test_mixed_slots_match_cpu);
    RUN(test_batch_invariance_and_truncate);
    RUN(test_refuses_bad_batches);
    RUN(test_long_batch_over_chunk_limits);
    close_model();
    return TEST_DONE();
}
