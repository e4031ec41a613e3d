/* test_cpu_backend.c - the CPU backend's contract: batch invariance across slots and
 * batch sizes, KV truncation, and refusal of malformed batches. */
#include "test.h"

#include "backend.h"
#include "gguf.h"
#include "loader.h"

struct fixture {
    struct gguf_file *f;
    struct mdl_weights w;
    struct bk_backend *b;
};

static int open_fixture(struct fixture *fx, const char *model, uint32_t n_slots)
{
    char err[256];
    memset(fx, 0, sizeof(*fx));
    if (gguf_open(&fx->f, test_fixture(model), err, sizeof(err)) ||
        mdl_load_weights(&fx->w, fx->f, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    struct bk_params p = {n_slots, 64, 2, -1};
    if (bk_cpu_ops.init(&fx->b, &fx->w, &p, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

static void close_fixture(struct fixture *fx)
{
    if (fx->b)
        bk_cpu_ops.free(fx->b);
    mdl_weights_fini(&fx->w);
    gguf_close(fx->f);
}

static const int32_t seq_a[] = {1, 15043, 29892, 920, 526, 366, 29973};
static const int32_t seq_b[] = {1, 450, 7483, 310, 3444, 338};

/* Logits of seq (prefix of n tokens) in slot s as one batch; last row into out. */
static int run_seq(struct bk_backend *b, const int32_t *seq, int n, int slot, int pos0, float *out,
                   uint32_t nv)
{
    int32_t pos[16], sl[16];
    bool want[16];
    for (int i = 0; i < n; i++) {
        pos[i] = pos0 + i;
        sl[i] = slot;
        want[i] = i == n - 1;
    }
    struct bk_batch bt = {(uint32_t)n, seq, pos, sl, want};
    (void)nv;
    return bk_cpu_ops.forward(b, &bt, out);
}

static void invariance(const char *model)
{
    struct fixture fx;
    ASSERT_INT_EQ(open_fixture(&fx, model, 3), 0);
    uint32_t nv = fx.w.hp.n_vocab;
    float *a_alone = malloc(nv * sizeof(float));
    float *b_alone = malloc(nv * sizeof(float));
    float *mixed = malloc(2 * nv * sizeof(float));
    float *stepwise = malloc(nv * sizeof(float));
    /* A and B each alone in slot 0 */
    ASSERT_INT_EQ(run_seq(fx.b, seq_a, 7, 0, 0, a_alone, nv), 0);
    bk_cpu_ops.kv_truncate(fx.b, 0, 0);
    ASSERT_INT_EQ(run_seq(fx.b, seq_b, 6, 0, 0, b_alone, nv), 0);
    /* A in slot 1 and B in slot 2, interleaved in one batch */
    int32_t toks[13], pos[13], sl[13];
    bool want[13];
    int n = 0;
    for (int i = 0; i < 7; i++) {
        if (i < 6) {
            toks[n] = seq_b[i];
            pos[n] = i;
            sl[n] = 2;
            want[n] = i == 5;
            n++;
        }
        toks[n] = seq_a[i];
        pos[n] = i;
        sl[n] = 1;
        want[n] = i == 6;
        n++;
    }
    struct bk_batch bt = {13, toks, pos, sl, want};
    ASSERT_INT_EQ(bk_cpu_ops.forward(fx.b, &bt, mixed), 0);
    /* rows come out in batch order: B's last (index 10) before A's last (index 12) */
    ASSERT_TRUE(memcmp(mixed, b_alone, nv * sizeof(float)) == 0);
    ASSERT_TRUE(memcmp(mixed + nv, a_alone, nv * sizeof(float)) == 0);
    /* A fed one token per forward in slot 0 */
    bk_cpu_ops.kv_truncate(fx.b, 0, 0);
    for (int i = 0; i < 7; i++)
        ASSERT_INT_EQ(run_seq(fx.b, seq_a + i, 1, 0, i, stepwise, nv), 0);
    ASSERT_TRUE(memcmp(stepwise, a_alone, nv * sizeof(float)) == 0);
    /* truncate to 3 and re-feed the rest as one batch */
    bk_cpu_ops.kv_truncate(fx.b, 0, 3);
    ASSERT_INT_EQ(run_seq(fx.b, seq_a + 3, 4, 0, 3, stepwise, nv), 0);
    ASSERT_TRUE(memcmp(stepwise, a_alone, nv * sizeof(float)) == 0);
    free(a_alone);
    free(b_alone);
    free(mixed);
    free(stepwise);
    close_fixture(&fx);
}

static void test_invariance_q4_0(void)
{
    invariance("models/tiny-llama-q4_0.gguf");
}

static void test_invariance_f32(void)
{
    invariance("models/tiny-llama-f32.gguf");
}

static void test_invariance_kq(void)
{
    invariance("models/small-llama-kq-q4_k_m.gguf");
}

static void test_bad_batches(void)
{
    struct fixture fx;
    ASSERT_INT_EQ(open_fixture(&fx, "models/tiny-llama-q4_0.gguf", 1), 0);
    float *l = malloc(fx.w.hp.n_vocab * sizeof(float));
    int32_t tok = 1, pos = 1, slot = 0, big = 99999999, bad_slot = 1;
    bool want = true;
    struct bk_batch b = {1, &tok, &pos, &slot, &want};
    ASSERT_TRUE(bk_cpu_ops.forward(fx.b, &b, l) < 0); /* pos 1 on an empty slot */
    pos = 0;
    b.tokens = &big;
    ASSERT_TRUE(bk_cpu_ops.forward(fx.b, &b, l) < 0); /* token out of range */
    b.tokens = &tok;
    b.slot = &bad_slot;
    ASSERT_TRUE(bk_cpu_ops.forward(fx.b, &b, l) < 0); /* no such slot */
    b.slot = &slot;
    ASSERT_INT_EQ(bk_cpu_ops.forward(fx.b, &b, l), 0);
    pos = 64;
    ASSERT_TRUE(bk_cpu_ops.forward(fx.b, &b, l) < 0); /* beyond n_ctx */
    ASSERT_STR_CONTAINS(bk_cpu_ops.describe(fx.b), "cpu");
    free(l);
    close_fixture(&fx);
}

int main(void)
{
    RUN(test_invariance_q4_0);
    RUN(test_invariance_f32);
    RUN(test_invariance_kq);
    RUN(test_bad_batches);
    return TEST_DONE();
}
