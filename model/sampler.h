/* sampler.h - picks the next token from a row of logits.
 *
 * The chain, in llama.cpp's default order: repetition / frequency / presence penalties
 * over the last penalty_last_n accepted tokens -> top-k -> top-p -> min-p ->
 * temperature -> a draw from a seeded generator. temperature <= 0 means greedy (argmax
 * after penalties, ties to the lower id). The same seed, parameters and logits give the
 * same tokens on every run. A sampler belongs to one generation; not thread-safe.
 */
#ifndef CHATD_SAMPLER_H
#define CHATD_SAMPLER_H

#include <stdint.h>

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

/* The k most likely tokens of the model's raw distribution (log-softmax of the logits,
 * before any sampling transform), highest first: ids[k], logprobs[k]. Returns how many
 * were written (min(k, n_vocab)). */
int sampler_top_logprobs(const float *logits, uint32_t n_vocab, int k, int32_t *ids,
                         float *logprobs);
/* log-softmax of one id's logit. */
float sampler_logprob(const float *logits, uint32_t n_vocab, int32_t id);

#endif
