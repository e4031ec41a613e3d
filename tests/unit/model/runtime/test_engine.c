/* test_engine.c - the engine's scheduling on the real CPU backend (tiny-llama-f32):
 * a job cancelled while it waits in the queue leaves the queue usable (the next
 * submission is admitted and finishes), and jobs finish with their token counts. */
#include "test.h"

#include "model.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct mdl_model *model;
static struct engine *eng;

static struct eng_job *job(uint32_t max_tokens, bool endless)
{
    struct eng_job *j = eng_job_new();
    static const int32_t prompt[] = {1, 450, 4996, 17354, 1701};
    j->n_prompt = sizeof(prompt) / sizeof(prompt[0]);
    j->prompt = malloc(sizeof(prompt));
    memcpy(j->prompt, prompt, sizeof(prompt));
    j->max_tokens = max_tokens;
    j->user_id = 1;
    struct eng_sampling s;
    eng_default_sampling(&s);
    s.sampler.temperature = 0.0f;
    s.ignore_eos = endless;
    if (eng_job_set_sampling(j, &s, mdl_n_vocab(model)) != 0) {
        eng_job_release(j);
        return NULL;
    }
    return j;
}

/* Waits (at most 60 s) for the job to finish; returns whether it did. */
static bool finishes(struct eng_job *j)
{
    bool done = false;
    for (int i = 0; i < 60 && !done; i++)
        eng_wait(j, UINT32_MAX - 1, 1000, &done);
    return done;
}

static uint32_t queued(void)
{
    struct eng_stats st;
    eng_get_stats(eng, &st);
    return st.queued;
}

/* One slot, busy with a long job; a second job waits in the queue and is cancelled
 * there (its client hung up); the engine drops it. A third job must still be admitted:
 * dropping the last queued job has to leave the queue empty, tail included. */
static void test_cancelled_while_queued(void)
{
    struct eng_job *a = job(300, true), *b = job(5, false), *c = job(5, false);
    ASSERT_TRUE(a && b && c);
    ASSERT_INT_EQ(eng_submit(eng, a), 0);
    ASSERT_INT_EQ(eng_submit(eng, b), 0);
    atomic_store(&b->cancel, true);
    for (int i = 0; i < 6000 && queued() > 0; i++) /* the engine drops b at its next step */
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    ASSERT_INT_EQ(queued(), 0);
    ASSERT_INT_EQ(eng_submit(eng, c), 0);
    ASSERT_TRUE(finishes(a));
    ASSERT_TRUE(finishes(c));
    ASSERT_INT_EQ(b->finish, ENG_FINISH_CANCELLED);
    ASSERT_INT_EQ(b->n_out, 0);
    ASSERT_INT_EQ(a->n_out, 300);
    ASSERT_INT_EQ(a->finish, ENG_FINISH_LENGTH);
    ASSERT_TRUE(c->n_out >= 1 && c->n_out <= 5);
    eng_job_release(a);
    eng_job_release(b);
    eng_job_release(c);
}

int main(void)
{
    struct mdl_params mp;
    mdl_default_params(&mp);
    mp.n_slots = 1;
    mp.n_ctx = 512;
    mp.n_threads = 2;
    char err[256];
    if (mdl_open(&model, test_fixture("models/tiny-llama-f32.gguf"), &mp, err, sizeof(err)) != 0) {
        fprintf(stderr, "mdl_open: %s\n", err);
        return 1;
    }
    struct eng_params ep = {.n_slots = 1, .n_ctx = 512, .n_batch = 64, .queue_depth = 4};
    eng = mdl_engine_start(model, NULL, &ep, err, sizeof(err));
    if (!eng) {
        fprintf(stderr, "engine: %s\n", err);
        return 1;
    }
    RUN(test_cancelled_while_queued);
    eng_stop(eng);
    mdl_close(model);
    return TEST_DONE();
}
