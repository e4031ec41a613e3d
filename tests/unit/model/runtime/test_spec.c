/* test_spec.c - speculative decoding on the real CPU backend: at temperature 0 the tokens
 * are exactly those of decoding without speculation, for drafts copied from the sequence
 * (n-grams) and for a draft model (tiny-llama-q4_0 drafting for tiny-llama-f32: the same
 * vocabulary, different weights), with several sequences batched together; the drafts are
 * really used (some kept, some refused). */
#include "test.h"

#include "model.h"

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

static int start(struct run *r, enum eng_spec spec, const char *draft)
{
    struct mdl_params mp;
    mdl_default_params(&mp);
    mp.n_slots = SLOTS;
    mp.n_ctx = 256;
    mp.n_threads = 2;
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

int main(void)
{
    RUN(test_greedy_identical);
    return TEST_DONE();
}
