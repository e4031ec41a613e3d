/* sampling.c - how one job picks its tokens on the engine thread: the request's logit
 * bias, the sampler chain (sampler.c), a reasoning budget that closes an over-long
 * thought, and the log-probabilities the reply reports.
 *
 * Log-probabilities are the model's own, taken before the bias. The bias is added to
 * the logits row for the draw and taken off again, so the row is unchanged afterwards.
 * The token's own log-probability is a pass over the whole vocabulary: it is computed
 * only when the request shows log-probabilities. */
#include "runtime_int.h"

#include <stdlib.h>
#include <string.h>

struct eng_sampler {
    struct sampler *smp;
    struct eng_bias *bias;
    size_t n_bias;
    int top_n;
    int64_t budget; /* -1: none */
    int64_t n_thought;
    bool thinking;
    int32_t think_open, think_close;
};

void eng_default_sampling(struct eng_sampling *s)
{
    memset(s, 0, sizeof(*s));
    sampler_default_params(&s->sampler);
    s->reasoning_budget = -1;
    s->think_open = -1;
    s->think_close = -1;
}

void eng_sampler_free(struct eng_sampler *c)
{
    if (!c)
        return;
    sampler_free(c->smp);
    free(c->bias);
    free(c);
}

int eng_job_set_sampling(struct eng_job *j, const struct eng_sampling *s, uint32_t n_vocab)
{
    if (s->n_top_logprobs < 0 || s->n_top_logprobs > ENG_MAX_TOP)
        return ENG_EINVAL;
    for (size_t i = 0; i < s->n_bias; i++)
        if (s->bias[i].id < 0 || (uint32_t)s->bias[i].id >= n_vocab)
            return ENG_EINVAL;
    struct eng_sampler *c = calloc(1, sizeof(*c));
    if (!c)
        return ENG_ENOMEM;
    c->smp = sampler_new(&s->sampler, n_vocab);
    c->bias = s->n_bias ? malloc(s->n_bias * sizeof(*c->bias)) : NULL;
    if (!c->smp || (s->n_bias && !c->bias)) {
        eng_sampler_free(c);
        return ENG_ENOMEM;
    }
    if (s->n_bias)
        memcpy(c->bias, s->bias, s->n_bias * sizeof(*c->bias));
    c->n_bias = s->n_bias;
    c->top_n = s->n_top_logprobs;
    c->budget = s->reasoning_budget;
    c->thinking = s->start_in_thought;
    c->think_open = s->think_open;
    c->think_close = s->think_close;
    /* the penalties look at the end of the prompt too */
    uint32_t last_n = s->sampler.penalty_last_n > 0 ? (uint32_t)s->sampler.penalty_last_n : 0;
    for (uint32_t i = j->n_prompt > last_n ? j->n_prompt - last_n : 0; i < j->n_prompt; i++)
        sampler_accept(c->smp, j->prompt[i]);
    eng_sampler_free(j->smp);
    j->smp = c;
    j->ignore_eos = s->ignore_eos;
    return 0;
}

/* The shared body of eng_sampler_next and its speculative variant: draft < 0 draws
 * plainly; else the draft is verified (sampler_sample_draft) and *accepted tells. */
static int next(struct eng_sampler *c, float *logits, uint32_t n_vocab, int32_t draft,
                bool *accepted, struct eng_token *out)
{
    int32_t top_id[ENG_MAX_TOP];
    float top_lp[ENG_MAX_TOP];
    int n_top = c->top_n ? sampler_top_logprobs(logits, n_vocab, c->top_n, top_id, top_lp) : 0;
    for (size_t i = 0; i < c->n_bias; i++)
        logits[c->bias[i].id] += c->bias[i].bias;
    bool acc = false;
    int32_t id = draft < 0 ? sampler_sample(c->smp, logits)
                           : sampler_sample_draft(c->smp, logits, draft, &acc);
    for (size_t i = 0; i < c->n_bias; i++)
        logits[c->bias[i].id] -= c->bias[i].bias;
    if (id < 0 || (uint32_t)id >= n_vocab)
        return ENG_EINVAL;
    if (c->thinking && c->budget >= 0 && c->n_thought >= c->budget && c->think_close >= 0)
        id = c->think_close;
    if (c->thinking)
        c->n_thought++;
    if (id == c->think_open)
        c->thinking = true;
    else if (id == c->think_close)
        c->thinking = false;
    sampler_accept(c->smp, id);
    if (accepted)
        *accepted = acc && id == draft; /* a forced </think> is not the draft's */
    out->id = id;
    out->logprob = c->top_n ? sampler_logprob(logits, n_vocab, id) : 0.0f;
    out->n_top = (uint8_t)n_top;
    memcpy(out->top_id, top_id, (size_t)n_top * sizeof(int32_t));
    memcpy(out->top_logprob, top_lp, (size_t)n_top * sizeof(float));
    return 0;
}

int eng_sampler_next(struct eng_sampler *c, float *logits, uint32_t n_vocab,
                     struct eng_token *out)
{
    return next(c, logits, n_vocab, -1, NULL, out);
}

int eng_sampler_next_draft(struct eng_sampler *c, float *logits, uint32_t n_vocab, int32_t draft,
                           bool *accepted, struct eng_token *out)
{
    return next(c, logits, n_vocab, draft, accepted, out);
}
