/* runtime_int.h - private to runtime/: the per-job sampling state the engine drives
 * (sampling.c). */
#ifndef CHATD_RUNTIME_INT_H
#define CHATD_RUNTIME_INT_H

#include "runtime.h"

/* Picks the job's next token from one row of logits (modified and restored) and fills
 * out: bias, sampler chain, reasoning budget, log-probabilities. Engine thread only.
 * Returns 0, or ENG_EINVAL when the sampler produced no token. */
int eng_sampler_next(struct eng_sampler *c, float *logits, uint32_t n_vocab,
                     struct eng_token *out);
void eng_sampler_free(struct eng_sampler *c); /* accepts NULL */

#endif
