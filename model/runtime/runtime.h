/* runtime.h - generation at run time: the sampler (logits -> token), the engine
 * (continuous batching over a backend), and what turns a reply's text into what the
 * client sees: the reasoning splitter and the stop-string matcher. The engine runs on
 * its own thread; everything else belongs to one generation and is not thread-safe.
 */
#ifndef CHATD_RUNTIME_H
#define CHATD_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- sampler ---- */

/* The sampler picks the next token from a row of logits.
 *
 * The chain, in llama.cpp's default order: repetition / frequency / presence penalties
 * over the last penalty_last_n accepted tokens -> top-k -> top-p -> min-p ->
 * temperature -> a draw from a seeded generator. temperature <= 0 means greedy (argmax
 * after penalties, ties to the lower id). The same seed, parameters and logits give the
 * same tokens on every run. A sampler belongs to one generation; not thread-safe.
 */

struct sampler_params {
    float temperature;       /* <= 0: greedy */
    int32_t top_k;           /* <= 0: off */
    float top_p;             /* >= 1: off */
    float min_p;             /* <= 0: off */
    float repeat_penalty;    /* 1: off */
    float frequency_penalty; /* 0: off */
    float presence_penalty;  /* 0: off */
    int32_t penalty_last_n;  /* tokens of history the penalties look at */
    uint64_t seed;
};

/* temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, penalties off, last_n 64, seed 0. */
void sampler_default_params(struct sampler_params *p);

struct sampler;

/* Returns a new sampler for a vocabulary of n_vocab, or NULL (out of memory / bad n). */
struct sampler *sampler_new(const struct sampler_params *p, uint32_t n_vocab);
void sampler_free(struct sampler *s); /* accepts NULL */

/* Records a token of the context (prompt or generated) for the penalties. */
void sampler_accept(struct sampler *s, int32_t token);
/* Forgets the history (penalties) and re-seeds the generator. */
void sampler_reset(struct sampler *s);

/* The next token for a row of n_vocab logits (not modified). Does not accept it. */
int32_t sampler_sample(struct sampler *s, const float *logits);
/* Speculative decoding: the next token when a draft proposed `draft` for this position
 * (a deterministic proposal: a draft model's greedy choice or an n-gram lookup). At
 * temperature 0 it is the greedy token (*accepted when it is the draft); above, the draft
 * is kept with the probability the sampler's distribution gives it, else a token is
 * drawn from that distribution without the draft. Either way the token has exactly the
 * distribution sampler_sample gives: speculation changes the speed, not the output's
 * law. Does not accept the token. */
int32_t sampler_sample_draft(struct sampler *s, const float *logits, int32_t draft, bool *accepted);
/* Candidate comparisons the last sampler_sample made (its work: O(n_vocab log top_k)). */
uint64_t sampler_comparisons(const struct sampler *s);

/* The k most likely tokens of the model's raw distribution (log-softmax of the logits,
 * before any sampling transform), highest first: ids[k], logprobs[k]. Returns how many
 * were written (min(k, n_vocab)). */
int sampler_top_logprobs(const float *logits, uint32_t n_vocab, int k, int32_t *ids,
                         float *logprobs);
/* log-softmax of one id's logit. */
float sampler_logprob(const float *logits, uint32_t n_vocab, int32_t id);

/* ---- engine ---- */

/* The generation engine: one thread owns the backend and its KV cache and
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

#define ENG_ERRORS(X)                                                                     \
    X(ENG_EBUSY, -1, "all generation slots are busy and the queue is full")               \
    X(ENG_ETOOLONG, -2, "the prompt does not fit a sequence slot")                        \
    X(ENG_ENOMEM, -3, "out of memory")                                                    \
    X(ENG_EINVAL, -4, "invalid argument")                                                 \
    X(ENG_ESTOPPED, -5, "the engine is stopping")

enum eng_error {
#define ENG_ERR_ENUM_(name, code, text) name = code,
    ENG_ERRORS(ENG_ERR_ENUM_)
#undef ENG_ERR_ENUM_
};

/* Static text of an ENG_E* code; "unknown error" otherwise. */
const char *eng_strerror(int code);

#define ENG_MAX_TOP 20
#define ENG_MAX_DRAFT 16

/* Speculative decoding: where the draft tokens come from. */
enum eng_spec {
    ENG_SPEC_NONE = 0,
    ENG_SPEC_NGRAM, /* copied from earlier in the sequence (prompt lookup) */
    ENG_SPEC_DRAFT, /* a small draft model's greedy tokens */
};

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

/* Whether a token ends the model's turn (the tokenizer decides; see mdl_engine_start). */
typedef bool (*eng_is_eog_fn)(const void *ctx, int32_t id);

/* A logit bias: added to the token's logit before sampling (OpenAI's logit_bias). */
struct eng_bias {
    int32_t id;
    float bias;
};

struct gram;
struct gram_vocab;

/* How a job picks its tokens, all of it run by the engine: the request's logit bias,
 * the sampler chain, a reasoning budget and the log-probabilities it reports. */
struct eng_sampling {
    struct sampler_params sampler;
    const struct eng_bias *bias; /* n_bias entries, ids < n_vocab; copied */
    size_t n_bias;
    int n_top_logprobs;          /* 0: none; else each token's log-probability and its n
                                  * most likely alternatives (at most ENG_MAX_TOP) */
    int64_t reasoning_budget;    /* -1: none; else a thought this many tokens long is
                                  * closed by forcing think_close */
    int32_t think_open;          /* ids of <think> and </think>; -1 when absent */
    int32_t think_close;
    bool start_in_thought;       /* the prompt ended inside an open thought */
    bool ignore_eos;             /* keep going past end-of-generation tokens */
    /* Constrained decoding (grammar.h): every token must continue a text of the grammar,
     * and an end-of-generation token comes exactly when the text is complete (forced
     * when nothing else can follow). NULL: unconstrained. The job takes a reference. A
     * thought the prompt opened is not constrained; the grammar applies after it. */
    struct gram *grammar;
    const struct gram_vocab *gram_vocab; /* the model's tokens (borrowed; outlives the job) */
    /* NULL: the grammar applies from the first token. Else it applies to the text after
     * the first occurrence of this string in the reply (copied); a text that then leaves
     * the grammar ends the constraint (a lazy grammar, for tool calls a model may or may
     * not make). */
    const char *grammar_trigger;
};

/* Sampler defaults, no bias, no log-probabilities, no budget, no think tokens. */
void eng_default_sampling(struct eng_sampling *s);

struct eng_job {
    /* Set before eng_submit; read-only afterwards. */
    int32_t *prompt;            /* owned by the job (freed with it) */
    uint32_t n_prompt;
    uint32_t max_tokens;
    int64_t user_id;
    char cache_key[96];         /* e.g. the session id; "" for none */
    bool ignore_eos;            /* set by eng_job_set_sampling */

    /* Written by the engine under mu; waiters use eng_wait. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct eng_token *out;      /* generated tokens, EOG included */
    uint32_t n_out;
    uint32_t cap_out;
    uint32_t n_cached;          /* prompt tokens reused from the KV cache */
    uint32_t n_draft_accepted;  /* speculation: draft tokens kept, and thrown away */
    uint32_t n_draft_rejected;
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
    struct eng_sampler *smp;    /* the job's sampling state (eng_job_set_sampling) */
};

struct eng_params {
    uint32_t n_slots;
    uint32_t n_ctx;        /* per slot */
    uint32_t n_batch;      /* most tokens in one forward */
    uint32_t queue_depth;  /* jobs waiting for a slot beyond n_slots */
    uint32_t prefill_chunk; /* most tokens of one prompt in a step that also decodes (0: no cap) */
    bool no_reuse;         /* never reuse a cached prefix (benchmarks) */
    eng_is_eog_fn is_eog;  /* NULL: no token ends a turn (max_tokens does) */
    const void *eog_ctx;
    /* speculative decoding: each decoding sequence feeds its next token with up to n_draft
     * proposed ones, verified in the same forward; the output is the same as without */
    enum eng_spec spec;
    uint32_t n_draft;              /* at most ENG_MAX_DRAFT */
    const struct bk_ops *draft_ops; /* ENG_SPEC_DRAFT: the draft model's backend (borrowed), */
    struct bk_backend *draft_bk;    /* with as many slots of as many positions */
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
    uint64_t drafted;        /* draft tokens proposed and verified */
    uint64_t draft_accepted; /* of which kept */
};

struct engine;
struct bk_ops;
struct bk_backend;

/* Starts the engine thread over an initialised backend (borrowed). Returns NULL with a
 * message in err on failure. */
struct engine *eng_start(const struct bk_ops *ops, struct bk_backend *bk, uint32_t n_vocab,
                         const struct eng_params *p, char *err, size_t err_len);
/* Cancels everything, joins the thread. Accepts NULL. */
void eng_stop(struct engine *e);

/* A new job with refs = 1 (the caller's). */
struct eng_job *eng_job_new(void);
void eng_job_release(struct eng_job *j); /* drops one reference; frees at zero */
/* Sets how the job samples (before eng_submit, after its prompt is set: the penalties
 * start from the end of the prompt). Returns 0, ENG_EINVAL (a bias id outside the
 * vocabulary, too many log-probabilities) or ENG_ENOMEM. */
int eng_job_set_sampling(struct eng_job *j, const struct eng_sampling *s, uint32_t n_vocab);

/* Queues a job (takes a reference for the engine). Returns 0, ENG_EBUSY when the queue
 * is full, ENG_ETOOLONG when the prompt cannot fit a slot, ENG_ESTOPPED while the engine
 * stops, ENG_EINVAL for a job without sampling. */
int eng_submit(struct engine *e, struct eng_job *j);
/* eng_submit in two steps: a place in the queue is held first (the same checks, given
 * the prompt's length), so that the caller can do its last work (commit the user's
 * message) knowing the job will be taken; then the job goes in. A held place is given
 * back with eng_release_place when the caller does not submit after all. */
int eng_hold_place(struct engine *e, uint32_t n_prompt);
int eng_submit_held(struct engine *e, struct eng_job *j);
void eng_release_place(struct engine *e);
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

/* ---- reasoning split ---- */

/* The reasoning splitter splits a reasoning model's output stream into its thought
 * (`<think>...</think>`) and its answer, incrementally.
 *
 * The generator feeds decoded text pieces as they come (whole UTF-8 characters, cut
 * anywhere else, e.g. "<th" + "ink>"); the splitter calls `emit` with reasoning text
 * and content text in stream order, holding back only what might still be the start
 * of a tag. A thought is recognised at the start of the reply (after optional
 * whitespace) or from the first byte when the prompt already opened one (DeepSeek-R1
 * distills end their prompt with "<think>\n": see rsn_prompt_opens_reasoning).
 * Whitespace around the thought is trimmed: reasoning text starts and ends with a
 * non-space, and the content after "</think>" starts at its first non-space. After
 * the thought everything is content, including any later "<think>".
 *
 * Budget hook: the caller counts reasoning tokens while rsn_in_reasoning() is true
 * and calls rsn_end_reasoning() when its budget is spent (then feeds the model the
 * closing tag itself, without passing it to the splitter).
 *
 * One splitter per reply; not thread-safe.
 */

#define RSN_OPEN_TAG "<think>"
#define RSN_CLOSE_TAG "</think>"

enum rsn_kind { RSN_CONTENT = 0, RSN_REASONING = 1 };

/* Receives text in stream order; `text` is borrowed for the call only. */
typedef void (*rsn_emit_fn)(void *user, enum rsn_kind kind, const char *text, size_t len);

struct rsn_splitter;

/* A splitter; start_in_reasoning when the prompt ended inside a thought. NULL when
 * out of memory. Caller frees with rsn_free. */
struct rsn_splitter *rsn_new(bool start_in_reasoning);
void rsn_free(struct rsn_splitter *s);

/* Feeds len bytes; emits what can be decided now. Returns 0, or -1 when out of memory
 * (the splitter is then unusable). */
int rsn_feed(struct rsn_splitter *s, const char *text, size_t len, rsn_emit_fn emit, void *user);

/* End of the stream: emits everything still held (an unfinished tag is text). */
int rsn_finish(struct rsn_splitter *s, rsn_emit_fn emit, void *user);

/* True while the text being generated belongs to a thought. */
bool rsn_in_reasoning(const struct rsn_splitter *s);

/* Budget reached: ends the thought now, emitting held reasoning text; what follows is
 * content. Returns true if a thought was open. */
bool rsn_end_reasoning(struct rsn_splitter *s, rsn_emit_fn emit, void *user);

/* True when a rendered prompt ends inside an open thought (its last "<think>" has no
 * "</think>" after it), so the reply starts in the reasoning state. */
bool rsn_prompt_opens_reasoning(const char *prompt, size_t len);

/* ---- stop strings ---- */

/* Stop strings over a streamed reply.
 *
 * The generator feeds decoded text pieces; the matcher returns the text that is safe
 * to send now and holds back any tail that could still be the start of a stop string
 * (and any incomplete UTF-8 character, so a character is never split). When a stop
 * string appears, the text before it is returned and the stop string and everything
 * after it are not; the reply should end there. Among overlapping candidates the one
 * that starts first wins (the list order breaks ties), exactly as if the whole text
 * had been searched at once.
 *
 * One matcher per reply; not thread-safe.
 */

#define STOP_MAX_STRINGS 16
#define STOP_MAX_LEN 256 /* bytes per stop string */

struct stop_matcher;

/* Copies n stop strings (non-empty, not starting with a UTF-8 continuation byte,
 * at most STOP_MAX_LEN bytes, at most
 * STOP_MAX_STRINGS of them; n may be 0). Returns NULL on invalid input or when out
 * of memory. Caller frees with stop_free. */
struct stop_matcher *stop_new(const char *const *stops, size_t n);
void stop_free(struct stop_matcher *m);

/* Feeds len bytes. Sets *emit / *emit_len to the text to send now (borrowed until
 * the next call on m; may be empty). Returns 1 when a stop string has matched (now or
 * before: later calls emit nothing), 0 otherwise, -1 when out of memory. */
int stop_feed(struct stop_matcher *m, const char *text, size_t len, const char **emit, size_t *emit_len);

/* End of the stream: sets *emit / *emit_len to the held-back text (up to a stop
 * string that was still waiting on a possibly longer earlier one; an incomplete
 * UTF-8 sequence from the input is passed on as it is). Returns 1 when a stop
 * string matched, else 0. Feed nothing after a flush. */
int stop_flush(struct stop_matcher *m, const char **emit, size_t *emit_len);

/* Index of the stop string that matched, or -1. */
int stop_matched(const struct stop_matcher *m);

#endif
