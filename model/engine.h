/* engine.h - the generation engine: one thread owns the backend and its KV cache and
 * runs continuous batching over every active job (a job = one request's generation).
 *
 * Each step the engine admits queued jobs into free sequence slots, builds one batch with
 * one decode token for every running job plus prompt chunks of jobs still prefilling (the
 * oldest first, within n_batch tokens), runs one forward, samples, and appends each new
 * token to its job, waking the job's waiter. A slot remembers the tokens in its KV cache
 * after its job ends; a later job of the same user (preferring the same cache key, e.g.
 * the session id) reuses the longest common prefix. Slots never cross users.
 *
 * Threads: eng_submit/eng_wait/eng_job_* are called from HTTP threads; everything else
 * runs on the engine thread. A job is reference-counted (the submitter and the engine). */
#ifndef CHATD_ENGINE_H
#define CHATD_ENGINE_H

#include "backend.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define ENG_MAX_TOP 20

enum eng_finish {
    ENG_RUNNING = 0,
    ENG_FINISH_EOG,       /* the model ended its turn */
    ENG_FINISH_LENGTH,    /* max_tokens or the context is full */
    ENG_FINISH_CANCELLED, /* the consumer cancelled (hang-up, stop string, shutdown) */
    ENG_FINISH_ERROR,
};

struct eng_token {
    int32_t id;
    float logprob;
    uint8_t n_top;
    int32_t top_id[ENG_MAX_TOP];
    float top_logprob[ENG_MAX_TOP];
};

/* Sampling hook, run on the engine thread: picks the next token from logits (which it
 * may modify) and fills out. Returns 0, or -1 on failure. */
typedef int (*eng_sample_fn)(void *ctx, float *logits, uint32_t n_vocab, struct eng_token *out);
typedef bool (*eng_is_eog_fn)(void *ctx, int32_t id);

struct eng_job {
    /* Set before eng_submit; read-only afterwards. */
    int32_t *prompt;            /* owned by the job (freed with it) */
    uint32_t n_prompt;
    uint32_t max_tokens;
    int64_t user_id;
    char cache_key[96];         /* e.g. the session id; "" for none */
    eng_sample_fn sample;
    eng_is_eog_fn is_eog;
    void *hook_ctx;
    void (*hook_free)(void *ctx);

    /* Written by the engine under mu; waiters use eng_wait. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct eng_token *out;      /* generated tokens, EOG included */
    uint32_t n_out;
    uint32_t cap_out;
    uint32_t n_cached;          /* prompt tokens reused from the KV cache */
    uint32_t n_prefilled;       /* prompt tokens processed so far */
    enum eng_finish finish;
    char error[160];
    double t_admitted_ms;       /* monotonic ms */
    double t_first_ms;          /* first generated token */
    double t_done_ms;

    atomic_bool cancel;         /* set by the consumer; honoured at the next step */
    atomic_int refs;
    /* engine-private */
    struct eng_job *next;
    int slot;
    uint64_t seq;
};

struct eng_params {
    uint32_t n_slots;
    uint32_t n_ctx;        /* per slot */
    uint32_t n_batch;      /* most tokens in one forward */
    uint32_t queue_depth;  /* jobs waiting for a slot beyond n_slots */
    uint32_t prefill_chunk; /* most tokens of one prompt in a step that also decodes (0: no cap) */
    bool no_reuse;         /* never reuse a cached prefix (benchmarks) */
};

#define ENG_STEP_BUCKETS 8
#define ENG_STEP_BOUNDS_MS {5, 10, 15, 25, 50, 100, 1000}

struct eng_stats {
    uint32_t queued;
    uint32_t active;
    uint64_t steps;
    uint64_t tokens_prefilled;
    uint64_t tokens_generated;
    uint64_t batch_hist[6]; /* forward sizes: 1, 2-4, 5-16, 17-64, 65-256, >256 tokens */
    /* step durations (forward, sampling and hand-off of the tokens), upper bounds in
     * ENG_STEP_BOUNDS_MS, the last bucket open */
    uint64_t step_hist[ENG_STEP_BUCKETS];
    double step_ms_sum;
};

struct engine;

/* Starts the engine thread over an initialised backend (borrowed). Returns NULL with a
 * message in err on failure. */
struct engine *eng_start(const struct bk_ops *ops, struct bk_backend *bk, uint32_t n_vocab,
                         const struct eng_params *p, char *err, size_t err_len);
/* Cancels everything, joins the thread. Accepts NULL. */
void eng_stop(struct engine *e);

/* A new job with refs = 1 (the caller's). */
struct eng_job *eng_job_new(void);
void eng_job_release(struct eng_job *j); /* drops one reference; frees at zero */

/* Queues a job (takes a reference for the engine). Returns 0, -1 when the queue is full
 * (answer 429), -2 when the prompt cannot fit a slot (answer 400). */
int eng_submit(struct engine *e, struct eng_job *j);
/* Waits until the job has more than `have` tokens or is finished, at most timeout_ms.
 * Returns the current token count; *finished tells whether it is done. */
uint32_t eng_wait(struct eng_job *j, uint32_t have, int timeout_ms, bool *finished);

void eng_get_stats(struct engine *e, struct eng_stats *out);
uint32_t eng_n_ctx(const struct engine *e);
/* How many leading tokens of `prompt` an idle slot of this user/cache key holds now
 * (a quote; the slot may be taken before the request runs). */
uint32_t eng_peek_cached(struct engine *e, int64_t user_id, const char *cache_key,
                         const int32_t *prompt, uint32_t n_prompt);
/* Whether an idle slot holds this user's cache key. */
bool eng_is_resident(struct engine *e, int64_t user_id, const char *cache_key);

#endif
