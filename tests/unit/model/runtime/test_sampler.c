/* test_sampler.c - greedy, truncation, temperature, penalties, seeding, logprobs, and the
 * work of one draw bounded whatever top_k a request asks for. */
#include "test.h"

#include "runtime.h"

#define NV 6

static const float logits[NV] = {1.0f, 3.0f, 2.5f, -1.0f, 0.0f, 2.9f};

static struct sampler *make(float temp, int top_k, float top_p, float min_p, uint64_t seed)
{
    struct sampler_params p;
    sampler_default_params(&p);
    p.temperature = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.seed = seed;
    return sampler_new(&p, NV);
}

static void test_greedy(void)
{
    struct sampler *s = make(0.0f, 0, 1.0f, 0.0f, 1);
    ASSERT_INT_EQ(sampler_sample(s, logits), 1);
    sampler_free(s);
    float tie[NV] = {0, 2, 2, 0, 0, 0};
    s = make(0.0f, 0, 1.0f, 0.0f, 1);
    ASSERT_INT_EQ(sampler_sample(s, tie), 1); /* lower id wins a tie */
    sampler_free(s);
}

static void test_top_k_one_is_greedy(void)
{
    struct sampler *s = make(1.5f, 1, 1.0f, 0.0f, 7);
    for (int i = 0; i < 50; i++)
        ASSERT_INT_EQ(sampler_sample(s, logits), 1);
    sampler_free(s);
}

static void test_top_k_limits(void)
{
    struct sampler *s = make(5.0f, 2, 1.0f, 0.0f, 3);
    for (int i = 0; i < 200; i++) {
        int t = sampler_sample(s, logits);
        ASSERT_TRUE(t == 1 || t == 5);
    }
    sampler_free(s);
}

static void test_top_p(void)
{
    /* probabilities: id1 .40 id5 .36 id2 .24 (roughly): top_p 0.5 keeps ids 1 and 5 */
    struct sampler *s = make(1.0f, 0, 0.5f, 0.0f, 9);
    int seen[NV] = {0};
    for (int i = 0; i < 400; i++)
        seen[sampler_sample(s, logits)]++;
    ASSERT_INT_EQ(seen[0] + seen[2] + seen[3] + seen[4], 0);
    ASSERT_TRUE(seen[1] > 0 && seen[5] > 0);
    sampler_free(s);
}

static void test_min_p(void)
{
    /* min_p 0.7: keeps ids whose probability >= 0.7 * p(id1): id5 (e^-0.1 = .90) stays,
     * id2 (e^-0.5 = .61) goes */
    struct sampler *s = make(1.0f, 0, 1.0f, 0.7f, 5);
    for (int i = 0; i < 300; i++) {
        int t = sampler_sample(s, logits);
        ASSERT_TRUE(t == 1 || t == 5);
    }
    sampler_free(s);
}

static void test_distribution(void)
{
    struct sampler *s = make(1.0f, 0, 1.0f, 0.0f, 11);
    int seen[NV] = {0};
    enum { DRAWS = 20000 };
    for (int i = 0; i < DRAWS; i++)
        seen[sampler_sample(s, logits)]++;
    double sum = 0;
    for (int i = 0; i < NV; i++)
        sum += exp(logits[i]);
    for (int i = 0; i < NV; i++)
        ASSERT_NEAR((double)seen[i] / DRAWS, exp(logits[i]) / sum, 0.015);
    sampler_free(s);
}

static void test_seed_reproducible(void)
{
    struct sampler *a = make(1.0f, 0, 1.0f, 0.0f, 42);
    struct sampler *b = make(1.0f, 0, 1.0f, 0.0f, 42);
    struct sampler *c = make(1.0f, 0, 1.0f, 0.0f, 43);
    int same_ac = 1;
    for (int i = 0; i < 100; i++) {
        int x = sampler_sample(a, logits);
        ASSERT_INT_EQ(x, sampler_sample(b, logits));
        same_ac &= x == sampler_sample(c, logits);
    }
    ASSERT_TRUE(!same_ac);
    sampler_reset(a);
    sampler_reset(b);
    ASSERT_INT_EQ(sampler_sample(a, logits), sampler_sample(b, logits));
    sampler_free(a);
    sampler_free(b);
    sampler_free(c);
}

static void test_penalties(void)
{
    struct sampler_params p;
    sampler_default_params(&p);
    p.temperature = 0.0f;
    p.repeat_penalty = 1.5f; /* 3.0 / 1.5 = 2.0 < 2.9 */
    struct sampler *s = sampler_new(&p, NV);
    sampler_accept(s, 1);
    ASSERT_INT_EQ(sampler_sample(s, logits), 5);
    sampler_free(s);
    p.repeat_penalty = 1.0f;
    p.presence_penalty = 0.2f; /* 3.0 - 0.2 < 2.9 */
    s = sampler_new(&p, NV);
    sampler_accept(s, 1);
    ASSERT_INT_EQ(sampler_sample(s, logits), 5);
    sampler_free(s);
    p.presence_penalty = 0.0f;
    p.frequency_penalty = 0.06f; /* once: 2.94 > 2.9; twice: 2.88 < 2.9 */
    s = sampler_new(&p, NV);
    sampler_accept(s, 1);
    ASSERT_INT_EQ(sampler_sample(s, logits), 1);
    sampler_accept(s, 1);
    ASSERT_INT_EQ(sampler_sample(s, logits), 5);
    sampler_free(s);
    p.penalty_last_n = 1; /* only the last token counts */
    s = sampler_new(&p, NV);
    sampler_accept(s, 1);
    sampler_accept(s, 1);
    sampler_accept(s, 3);
    ASSERT_INT_EQ(sampler_sample(s, logits), 1);
    sampler_free(s);
}

static void test_logprobs(void)
{
    int32_t ids[3];
    float lp[3];
    ASSERT_INT_EQ(sampler_top_logprobs(logits, NV, 3, ids, lp), 3);
    ASSERT_INT_EQ(ids[0], 1);
    ASSERT_INT_EQ(ids[1], 5);
    ASSERT_INT_EQ(ids[2], 2);
    double sum = 0;
    for (int i = 0; i < NV; i++)
        sum += exp(logits[i]);
    ASSERT_NEAR(lp[0], 3.0 - log(sum), 1e-6);
    ASSERT_NEAR(sampler_logprob(logits, NV, 3), -1.0 - log(sum), 1e-6);
    int32_t all_ids[NV];
    float all_lp[NV];
    ASSERT_INT_EQ(sampler_top_logprobs(logits, NV, NV, all_ids, all_lp), NV);
    ASSERT_INT_EQ(all_ids[NV - 1], 3);
}

/* top_k is client-controlled: the selection must cost O(n log k) comparisons, not O(n k)
 * (40000 on a 32000-token vocabulary once took 1.8 s for ten tokens). The kept set and
 * its order are those of a full sort. */
static void test_top_k_work_bounded(void)
{
    enum { NVB = 32000 };
    static float big[NVB];
    uint64_t x = 99;
    for (int i = 0; i < NVB; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        big[i] = (float)(x >> 40) / (float)(1 << 24) * 10.0f;
    }
    big[123] = 50.0f; /* far ahead: at temperature 0.01 every draw is it */
    int ks[] = {40, 16000, 40000, 1 << 20};
    for (size_t t = 0; t < sizeof(ks) / sizeof(ks[0]); t++) {
        struct sampler_params p;
        sampler_default_params(&p);
        p.temperature = 0.01f;
        p.top_k = ks[t];
        p.top_p = 0.999f;
        p.min_p = 0.0f;
        struct sampler *s = sampler_new(&p, NVB);
        ASSERT_INT_EQ(sampler_sample(s, big), 123);
        uint64_t k = (uint64_t)(ks[t] < NVB ? ks[t] : NVB), lg = 1;
        while ((1ull << lg) < k)
            lg++;
        /* one comparison per candidate plus at most 2 per heap level for those that
         * enter, and the final heap sort */
        uint64_t bound = NVB + 4ull * (NVB + k) * lg;
        if (sampler_comparisons(s) > bound)
            TEST_FAIL_("top_k %d: %llu comparisons > %llu", ks[t],
                       (unsigned long long)sampler_comparisons(s), (unsigned long long)bound);
        sampler_free(s);
    }
}

/* A draw from the whole vocabulary (top_k off, the API's default) sorts only as far as
 * it looks: on a distribution whose mass is near the top that is a few hundred
 * candidates, O(n) work; and it picks exactly what a draw over the fully sorted
 * vocabulary picks. */
static void test_whole_vocabulary_draw(void)
{
    enum { NVB = 32000 };
    static float l[NVB];
    uint64_t x = 5;
    for (int i = 0; i < NVB; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        l[i] = (float)(x >> 40) / (float)(1 << 24) * 4.0f - (i % 97 == 0 ? 0.0f : 12.0f);
    }
    l[NVB - 1] = -1000.0f; /* never drawn: lets top_k = n - 1 sort everything else */
    struct sampler_params p;
    sampler_default_params(&p);
    p.temperature = 1.0f;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 11;
    p.top_k = 0;
    struct sampler *a = sampler_new(&p, NVB);
    p.top_k = NVB - 1;
    struct sampler *b = sampler_new(&p, NVB);
    uint64_t work = 0;
    for (int i = 0; i < 500; i++) {
        int32_t ta = sampler_sample(a, l), tb = sampler_sample(b, l);
        if (ta != tb)
            TEST_FAIL_("draw %d: %d from the progressive sort, %d from the full one", i, ta, tb);
        work += sampler_comparisons(a);
    }
    ASSERT_INT_OP(work / 500, <, 4 * NVB);
    ASSERT_INT_OP(sampler_comparisons(b), >, 10 * NVB); /* the full sort: n log n */
    sampler_free(a);
    sampler_free(b);
}

/* Speculative decoding keeps the sampler's distribution: whatever the draft proposes
 * (the most likely token, an unlikely one, one outside top-k), the tokens of
 * sampler_sample_draft are distributed as sampler_sample's. 200000 draws each, against
 * the exact probabilities (a standard error of about 0.001; tolerance 0.005). */
static void check_draft_law(int top_k, float top_p, int32_t draft)
{
    struct sampler *plain = make(1.0f, top_k, top_p, 0.0f, 3);
    struct sampler *spec = make(1.0f, top_k, top_p, 0.0f, 4);
    enum { DRAWS = 200000 };
    static int h_plain[NV], h_spec[NV];
    memset(h_plain, 0, sizeof(h_plain));
    memset(h_spec, 0, sizeof(h_spec));
    int accepted = 0;
    for (int i = 0; i < DRAWS; i++) {
        h_plain[sampler_sample(plain, logits)]++;
        bool acc;
        int32_t t = sampler_sample_draft(spec, logits, draft, &acc);
        h_spec[t]++;
        accepted += acc;
        if (acc && t != draft)
            TEST_FAIL_("accepted a token that is not the draft");
    }
    /* the exact law: softmax over the kept candidates (the logits sorted: 1, 5, 2, 0, 4, 3) */
    static const int order[NV] = {1, 5, 2, 0, 4, 3};
    double w[NV] = {0}, z = 0.0, cum = 0.0;
    int kept = top_k > 0 ? top_k : NV;
    for (int r = 0; r < kept; r++)
        z += exp(logits[order[r]] - logits[1]);
    int n_keep = 0;
    for (int r = 0; r < kept; r++) { /* top-p over the top-k set */
        cum += exp(logits[order[r]] - logits[1]) / z;
        n_keep = r + 1;
        if (cum >= top_p)
            break;
    }
    double zk = 0.0;
    for (int r = 0; r < n_keep; r++)
        zk += exp(logits[order[r]] - logits[1]);
    for (int r = 0; r < n_keep; r++)
        w[order[r]] = exp(logits[order[r]] - logits[1]) / zk;
    for (int t = 0; t < NV; t++) {
        double fp = (double)h_plain[t] / DRAWS, fs = (double)h_spec[t] / DRAWS;
        if (fabs(fp - w[t]) > 0.005 || fabs(fs - w[t]) > 0.005)
            TEST_FAIL_("top_k %d top_p %.2f draft %d: token %d at %.4f (plain %.4f, speculative %.4f)",
                       top_k, (double)top_p, draft, t, w[t], fp, fs);
    }
    /* the draft is accepted as often as its probability */
    if (fabs((double)accepted / DRAWS - w[draft]) > 0.005)
        TEST_FAIL_("draft %d accepted %.4f of the time, its probability is %.4f", draft,
                   (double)accepted / DRAWS, w[draft]);
    sampler_free(plain);
    sampler_free(spec);
}

static void test_draft_keeps_the_law(void)
{
    check_draft_law(0, 1.0f, 1);  /* the most likely token */
    check_draft_law(0, 1.0f, 3);  /* the least likely */
    check_draft_law(3, 1.0f, 0);  /* outside top-k: never accepted */
    check_draft_law(0, 0.8f, 2);  /* inside top-p */
    /* at temperature 0 the draft is accepted exactly when it is the greedy token */
    struct sampler *g = make(0.0f, 0, 1.0f, 0.0f, 1);
    bool acc;
    ASSERT_INT_EQ(sampler_sample_draft(g, logits, 1, &acc), 1);
    ASSERT_TRUE(acc);
    ASSERT_INT_EQ(sampler_sample_draft(g, logits, 5, &acc), 1);
    ASSERT_TRUE(!acc);
    sampler_free(g);
}

int main(void)
{
    RUN(test_greedy);
    RUN(test_top_k_one_is_greedy);
    RUN(test_top_k_limits);
    RUN(test_top_p);
    RUN(test_min_p);
    RUN(test_distribution);
    RUN(test_seed_reproducible);
    RUN(test_penalties);
    RUN(test_logprobs);
    RUN(test_top_k_work_bounded);
    RUN(test_whole_vocabulary_draw);
    RUN(test_draft_keeps_the_law);
    return TEST_DONE();
}
