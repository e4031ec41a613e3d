/* runtime_int.h - private to runtime/: the engine's state (engine.c schedules,
 * speculate.c drafts) and the per-job sampling state it drives (sampling.c). */
#ifndef CHATD_RUNTIME_INT_H
#define CHATD_RUNTIME_INT_H

#include "backend.h"
#include "runtime.h"

struct slot {
    int32_t *toks;       /* [n_ctx] tokens held in the KV cache */
    uint32_t n;
    int64_t user_id;     /* -1: never used */
    char key[96];
    uint64_t last_used;
    struct eng_job *job; /* NULL when idle */
    int32_t pending;     /* sampled token to feed next step, or -1 */
    /* speculation: this step's drafts, and the draft model's cache (its first dn tokens
     * are toks') */
    int32_t draft[ENG_MAX_DRAFT];
    uint32_t n_draft;
    uint32_t dn;
};

struct engine {
    const struct bk_ops *ops;
    struct bk_backend *bk;
    uint32_t n_vocab;
    struct eng_params p;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    bool stop;
    struct eng_job *queue_head, *queue_tail;
    uint32_t n_queued;
    uint32_t n_held; /* places held for jobs about to be submitted (eng_hold_place) */
    struct slot *slots;
    uint64_t clock;
    uint64_t seq;
    struct eng_stats stats;
    /* batch buffers, engine thread only */
    int32_t *b_tok, *b_pos, *b_slot;
    bool *b_want;
    float *logits;            /* [n_slots * (1 + n_draft)][n_vocab] */
    struct eng_token *picked; /* [n_slots][1 + ENG_MAX_DRAFT] the tokens each entry got */
    uint32_t *n_picked;       /* [n_slots] */
    uint32_t *n_accepted;     /* [n_slots] drafts each entry kept */
    int *picked_rc;
    /* the draft model's batch and logits (ENG_SPEC_DRAFT) */
    int32_t *d_tok, *d_pos, *d_slot;
    bool *d_want;
    float *d_logits; /* [n_slots][n_vocab] */
};

/* Slots a draft model can serve (the most `parallel` allows). */
#define ENG_MAX_SLOTS_ON_STACK 256

/* One slot's part of a step's batch. */
struct step_entry {
    int slot;
    uint32_t first;    /* index of its first token in the batch */
    uint32_t count;    /* tokens fed: a prompt chunk, or the pending token and its drafts */
    uint32_t n_logits; /* rows of logits it gets: the last token's (or each one's when
                          drafts are verified), or none for a chunk inside a prompt */
    uint32_t n_draft;  /* draft tokens among them */
};

/* Picks the job's next token from one row of logits (modified and restored) and fills
 * out: bias, sampler chain, reasoning budget, log-probabilities. Engine thread only.
 * Returns 0, or ENG_EINVAL when the sampler produced no token. */
int eng_sampler_next(struct eng_sampler *c, float *logits, uint32_t n_vocab,
                     struct eng_token *out);
/* The same for a position where a draft proposed `draft`: *accepted tells whether the
 * token is the draft (sampler_sample_draft). */
int eng_sampler_next_draft(struct eng_sampler *c, float *logits, uint32_t n_vocab, int32_t draft,
                           bool *accepted, struct eng_token *out);
void eng_sampler_free(struct eng_sampler *c); /* accepts NULL */

/* ---- speculative decoding (speculate.c), engine thread ---- */

/* Fills the drafts of every slot that decodes this step (decoding[i]): copied from the
 * sequence's own history (n-grams) or the draft model's greedy tokens. Runs without the
 * engine lock (only the engine thread touches slot contents). */
void spec_propose(struct engine *e, const bool *decoding);
/* A slot's tokens became toks[0..n): the draft model's cache keeps only what matches. */
void spec_trim(struct engine *e, uint32_t slot, uint32_t n);

#endif
