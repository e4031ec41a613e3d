/* test_spec.c - speculative decoding on the real CPU backend: at temperature 0 the tokens
 * are exactly those of decoding without speculation, for drafts copied from the sequence
 * (n-grams) and for a draft model (tiny-llama-q4_0 drafting for tiny-llama-f32: the same
 * vocabulary, different weights), with several sequences batched together; the drafts are
 * really used (some kept, some refused). Above temperature 0, sequences sampled with drafts
 * follow the same law as without: a two-sample chi-square test on many seeded runs. */
#include "test.h"

#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { SLOTS = 3, N_OUT = 80 };

/* A prompt per sequence; the first repeats itself, so n-grams have something to copy. */
static const int32_t prompts[SLOTS][12] = {
    {1, 450, 4996, 17354, 1701, 450, 4996, 17354, 1701, 450, 4996, 17354},
    {1, 1576, 338, 263, 1243, 29889, 0, 0, 0, 0, 0, 0},
    {1, 29871, 13, 2277, 29937, 3869, 29901, 0, 0, 0, 0, 0},
};
static const uint32_t prompt_len[SLOTS] = {12, 6, 7};

struct run {
    struct mdl_model *model, *draft;
    struct engine *eng;
    int32_t out[SLOTS][N_OUT];
    uint32_t n_out[SLOTS];
    uint32_t accepted, rejected;
};

/* Starts the target (and the draft model) on a backend. */
static int start_on(struct run *r, const char *backend, enum eng_spec spec, const char *draft)
{
    struct mdl_params mp;
    mdl_default_params(&mp);
    mp.backend = backend;
    mp.n_slots = SLOTS;
    mp.n_ctx = 256;
    mp.n_threads = 1;
    char err[256];
    memset(r, 0, sizeof(*r));
    if (mdl_open(&r->model, test_fixture("models/tiny-llama-f32.gguf"), &mp, err, sizeof(err)) != 0 ||
        (draft && mdl_open(&r->draft, test_fixture(draft), &mp, err, sizeof(err)) != 0)) {
        fprintf(stderr, "  open: %s\n", err);
        return -1;
    }
    struct eng_params ep = {.n_slots = SLOTS, .n_ctx = 256, .n_batch = 64, .queue_depth = 4,
                            .spec = spec, .n_draft = spec ? 4 : 0};
    r->eng = mdl_engine_start(r->model, r->draft, &ep, err, sizeof(err));
    if (!r->eng)
        fprintf(stderr, "  engine: %s\n", err);
    return r->eng ? 0 : -1;
}

static int start(struct run *r, enum eng_spec spec, const char *draft)
{
    return start_on(r, "cpu", spec, draft);
}

/* All sequences at once (greedy, to N_OUT tokens), as a batch. */
static int generate(struct run *r, float temperature)
{
    struct eng_job *jobs[SLOTS];
    for (int i = 0; i < SLOTS; i++) {
        struct eng_job *j = jobs[i] = eng_job_new();
        j->n_prompt = prompt_len[i];
        j->prompt = malloc(sizeof(prompts[i]));
        memcpy(j->prompt, prompts[i], sizeof(prompts[i]));
        j->max_tokens = N_OUT;
        j->user_id = i + 1;
        struct eng_sampling s;
        eng_default_sampling(&s);
        s.sampler.temperature = temperature;
        s.sampler.seed = 42;
        s.ignore_eos = true;
        int rc = eng_job_set_sampling(j, &s, mdl_n_vocab(r->model));
        rc = rc ? rc : eng_submit(r->eng, j);
        if (rc != 0) {
            fprintf(stderr, "  job %d refused: %s\n", i, eng_strerror(rc));
            return -1;
        }
    }
    for (int i = 0; i < SLOTS; i++) {
        bool done = false;
        for (int t = 0; t < 120 && !done; t++)
            eng_wait(jobs[i], UINT32_MAX - 1, 500, &done);
        if (!done) {
            fprintf(stderr, "  job %d did not finish: %u tokens, slot %d, prompt %u/%u\n", i,
                    jobs[i]->n_out, jobs[i]->slot, jobs[i]->n_prefilled, jobs[i]->n_prompt);
            return -1;
        }
        r->n_out[i] = jobs[i]->n_out;
        for (uint32_t k = 0; k < jobs[i]->n_out && k < N_OUT; k++)
            r->out[i][k] = jobs[i]->out[k].id;
        r->accepted += jobs[i]->n_draft_accepted;
        r->rejected += jobs[i]->n_draft_rejected;
        eng_job_release(jobs[i]);
    }
    return 0;
}

static void stop(struct run *r)
{
    eng_stop(r->eng);
    mdl_close(r->draft);
    mdl_close(r->model);
}

static void same_tokens(const struct run *a, const struct run *b, const char *what)
{
    for (int i = 0; i < SLOTS; i++) {
        if (a->n_out[i] != N_OUT || b->n_out[i] != N_OUT)
            TEST_FAIL_("%s: sequence %d got %u and %u tokens", what, i, a->n_out[i], b->n_out[i]);
        for (int k = 0; k < N_OUT; k++)
            if (a->out[i][k] != b->out[i][k])
                TEST_FAIL_("%s: sequence %d differs at token %d (%d vs %d)", what, i, k,
                           a->out[i][k], b->out[i][k]);
    }
}

static void test_greedy_identical(void)
{
    static struct run plain, ngram, draft;
    ASSERT_INT_EQ(start(&plain, ENG_SPEC_NONE, NULL), 0);
    ASSERT_INT_EQ(start(&ngram, ENG_SPEC_NGRAM, NULL), 0);
    ASSERT_INT_EQ(start(&draft, ENG_SPEC_DRAFT, "models/tiny-llama-q4_0.gguf"), 0);
    ASSERT_INT_EQ(generate(&plain, 0.0f), 0);
    ASSERT_INT_EQ(generate(&ngram, 0.0f), 0);
    ASSERT_INT_EQ(generate(&draft, 0.0f), 0);
    same_tokens(&plain, &ngram, "n-gram drafts");
    same_tokens(&plain, &draft, "draft model");
    fprintf(stderr, "  n-grams: %u drafts kept, %u refused; draft model: %u kept, %u refused\n",
            ngram.accepted, ngram.rejected, draft.accepted, draft.rejected);
    ASSERT_TRUE(plain.accepted == 0 && plain.rejected == 0);
    ASSERT_TRUE(ngram.accepted > 0 && ngram.rejected > 0);
    ASSERT_TRUE(draft.accepted > 0);
    /* a second round on the same engines: the draft caches are reused and stay right */
    ASSERT_INT_EQ(generate(&draft, 0.0f), 0);
    same_tokens(&plain, &draft, "draft model, second round");
    /* above temperature 0 the runs complete with valid tokens (the law is test_sampler's) */
    ASSERT_INT_EQ(generate(&ngram, 0.9f), 0);
    for (int i = 0; i < SLOTS; i++)
        for (uint32_t k = 0; k < ngram.n_out[i]; k++)
            ASSERT_TRUE(ngram.out[i][k] >= 0 && ngram.out[i][k] < (int32_t)mdl_n_vocab(ngram.model));
    stop(&plain);
    stop(&ngram);
    stop(&draft);
}

/* The same on the Vulkan backend (lavapipe without a GPU): its batched forward verifies
 * drafts too. */
static void test_greedy_identical_vulkan(void)
{
    static struct run plain, ngram, draft;
    ASSERT_INT_EQ(start_on(&plain, "vulkan", ENG_SPEC_NONE, NULL), 0);
    ASSERT_INT_EQ(generate(&plain, 0.0f), 0);
    stop(&plain);
    ASSERT_INT_EQ(start_on(&ngram, "vulkan", ENG_SPEC_NGRAM, NULL), 0);
    ASSERT_INT_EQ(generate(&ngram, 0.0f), 0);
    stop(&ngram);
    ASSERT_INT_EQ(start_on(&draft, "vulkan", ENG_SPEC_DRAFT, "models/tiny-llama-q4_0.gguf"), 0);
    ASSERT_INT_EQ(generate(&draft, 0.0f), 0);
    stop(&draft);
    same_tokens(&plain, &ngram, "vulkan, n-gram drafts");
    same_tokens(&plain, &draft, "vulkan, draft model");
    fprintf(stderr, "  n-grams: %u drafts kept, %u refused; draft model: %u kept, %u refused\n",
            ngram.accepted, ngram.rejected, draft.accepted, draft.rejected);
    ASSERT_TRUE(ngram.accepted > 0 && draft.accepted > 0);
}

/* ---- the law above temperature 0 ---- */

/* Fewer runs under the sanitizers, which check memory here, not the law (a smaller test
 * with fewer degrees of freedom, still a chi-square test). */
#if defined(__SANITIZE_ADDRESS__)
enum { LAW_RUNS = 450 };
#else
enum { LAW_RUNS = 2000 };
#endif
enum { LAW_TOKENS = 4, LAW_TOP_K = 3 };

/* Each run's LAW_TOKENS tokens, sampled from law_prompt with top-k 3 at temperature 1 and
 * seeds seed0.. (each engine its own: equal seeds would make the samples equal, not
 * independent), as one outcome: the index of the sequence among those seen (names[],
 * shared by the runs compared) counted in hist[]. law_prompt is prompt 0 and 44 tokens of
 * its greedy continuation, which repeat themselves (this random model's greedy text runs
 * in loops), so that n-gram drafts propose what the model tends to say and some are
 * kept. */
static int32_t law_prompt[64];
static uint32_t law_len;

static int sample_law(struct run *r, uint64_t seed0, int32_t (*names)[LAW_TOKENS],
                      uint32_t *n_names, uint32_t *hist, uint32_t cap)
{
    for (uint32_t base = 0; base < LAW_RUNS; base += SLOTS) {
        struct eng_job *jobs[SLOTS];
        for (int i = 0; i < SLOTS; i++) {
            struct eng_job *j = jobs[i] = eng_job_new();
            j->n_prompt = law_len;
            j->prompt = malloc(sizeof(law_prompt));
            memcpy(j->prompt, law_prompt, sizeof(law_prompt));
            j->max_tokens = LAW_TOKENS;
            j->user_id = 1;
            struct eng_sampling s;
            eng_default_sampling(&s);
            s.sampler.temperature = 1.0f;
            s.sampler.top_k = LAW_TOP_K;
            s.sampler.top_p = 1.0f;
            s.sampler.min_p = 0.0f;
            s.sampler.seed = seed0 + base + (uint32_t)i;
            s.ignore_eos = true;
            if (eng_job_set_sampling(j, &s, mdl_n_vocab(r->model)) != 0 || eng_submit(r->eng, j) != 0)
                return -1;
        }
        for (int i = 0; i < SLOTS; i++) {
            bool done = false;
            for (int t = 0; t < 120 && !done; t++)
                eng_wait(jobs[i], UINT32_MAX - 1, 500, &done);
            if (!done || jobs[i]->n_out != LAW_TOKENS)
                return -1;
            int32_t seq[LAW_TOKENS];
            for (int k = 0; k < LAW_TOKENS; k++)
                seq[k] = jobs[i]->out[k].id;
            r->accepted += jobs[i]->n_draft_accepted;
            r->rejected += jobs[i]->n_draft_rejected;
            eng_job_release(jobs[i]);
            uint32_t o = 0;
            while (o < *n_names && memcmp(names[o], seq, sizeof(seq)) != 0)
                o++;
            if (o == *n_names) {
                if (o == cap)
                    return -1;
                memcpy(names[(*n_names)++], seq, sizeof(seq));
            }
            hist[o]++;
        }
    }
    return 0;
}

/* Two-sample chi-square statistic of equal-size samples a and b over n outcomes, bins
 * with fewer than 10 observations in both samples together pooled into one; *df gets the
 * degrees of freedom. */
static double chi_square(const uint32_t *a, const uint32_t *b, uint32_t n, uint32_t *df)
{
    double stat = 0, pa = 0, pb = 0;
    uint32_t bins = 0;
    for (uint32_t o = 0; o <= n; o++) {
        double x = o < n ? a[o] : pa, y = o < n ? b[o] : pb;
        if (o < n && x + y < 10) {
            pa += x, pb += y;
            continue;
        }
        if (x + y > 0) {
            stat += (x - y) * (x - y) / (x + y);
            bins++;
        }
    }
    *df = bins - 1;
    return stat;
}

/* The chi-square quantile for probability 1 - 0.001 (Wilson-Hilferty). */
static double chi_square_999(uint32_t df)
{
    double k = df, z = 3.0902;
    double t = 1 - 2 / (9 * k) + z * sqrt(2 / (9 * k));
    return k * t * t * t;
}

static void test_sampled_law(void)
{
    enum { CAP = 1 << 10 };
    static int32_t names[CAP][LAW_TOKENS];
    static uint32_t hist[3][CAP];
    static struct run runs[3];
    uint32_t n_names = 0;
    ASSERT_INT_EQ(start(&runs[0], ENG_SPEC_NONE, NULL), 0);
    ASSERT_INT_EQ(start(&runs[1], ENG_SPEC_NGRAM, NULL), 0);
    ASSERT_INT_EQ(start(&runs[2], ENG_SPEC_DRAFT, "models/tiny-llama-q4_0.gguf"), 0);
    ASSERT_INT_EQ(generate(&runs[0], 0.0f), 0);
    memcpy(law_prompt, prompts[0], prompt_len[0] * sizeof(int32_t));
    memcpy(law_prompt + prompt_len[0], runs[0].out[0], 44 * sizeof(int32_t));
    law_len = prompt_len[0] + 44;
    for (int c = 0; c < 3; c++)
        ASSERT_INT_EQ(sample_law(&runs[c], 1 + (uint64_t)c * 1000000, names, &n_names, hist[c], CAP), 0);
    for (int c = 1; c < 3; c++) {
        uint32_t df;
        double stat = chi_square(hist[0], hist[c], n_names, &df);
        fprintf(stderr, "  %s: %u drafts kept, %u refused; chi-square %.1f, %u df, limit %.1f\n",
                c == 1 ? "n-grams" : "draft model", runs[c].accepted, runs[c].rejected, stat, df,
                chi_square_999(df));
        ASSERT_TRUE(runs[c].accepted > LAW_RUNS / 10 && runs[c].rejected > LAW_RUNS / 10);
        ASSERT_TRUE(df >= 8);
        ASSERT_TRUE(stat < chi_square_999(df));
    }
    for (int c = 0; c < 3; c++)
        stop(&runs[c]);
}

int main(void)
{
    RUN(test_greedy_identical);
    RUN(test_greedy_identical_vulkan);
    RUN(test_sampled_law);
    return TEST_DONE();
}
