/* sampling.c - how one job picks its tokens on the engine thread: the request's logit
 * bias, the sampler chain (sampler.c), a reasoning budget that closes an over-long
 * thought, and the log-probabilities the reply reports.
 *
 * Log-probabilities are the model's own, taken before the bias. The bias is added to
 * the logits row for the draw and taken off again, so the row is unchanged afterwards.
 * The token's own log-probability is a pass over the whole vocabulary: it is computed
 * only when the request shows log-probabilities.
 *
 * A grammar (grammar.h) masks the row: the draw is made from a copy in which every token
 * the matcher does not allow is -inf, so log-probabilities stay the model's own. When
 * the text is complete and nothing can follow, the vocabulary's end token is forced. A
 * lazy grammar waits for its trigger string in the reply's text, then applies to what
 * follows it. */
#include "runtime_int.h"

#include "grammar.h"

#include <math.h>
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
    /* constrained decoding */
    struct gram_matcher *gm;
    const struct gram_vocab *gv;
    float *row;          /* [n_vocab] the masked copy of the logits */
    bool gm_active;      /* the grammar applies to the next token */
    bool gm_dropped;     /* a lazy grammar whose text left it: unconstrained from now */
    char *trigger;       /* lazy grammar: what starts it; NULL when not lazy */
    size_t trig_len;
    struct strbuf seen;  /* the reply's last bytes while waiting for the trigger */
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
    gram_matcher_free(c->gm);
    free(c->row);
    free(c->trigger);
    strbuf_free(&c->seen);
    free(c);
}

/* The grammar part of a job's sampling. Returns 0 or ENG_ENOMEM / ENG_EINVAL. */
static int set_grammar(struct eng_sampler *c, const struct eng_sampling *s, uint32_t n_vocab)
{
    if (!s->grammar)
        return 0;
    if (!s->gram_vocab || gram_vocab_size(s->gram_vocab) != n_vocab)
        return ENG_EINVAL;
    c->gv = s->gram_vocab;
    c->gm = gram_matcher_new(s->grammar, s->gram_vocab);
    c->row = malloc((size_t)n_vocab * sizeof(*c->row));
    if (s->grammar_trigger && s->grammar_trigger[0]) {
        c->trigger = strdup(s->grammar_trigger);
        c->trig_len = strlen(s->grammar_trigger);
        if (!c->trigger)
            return ENG_ENOMEM;
    }
    c->gm_active = !c->trigger;
    return c->gm && c->row ? 0 : ENG_ENOMEM;
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
    int rc = !c->smp || (s->n_bias && !c->bias) ? ENG_ENOMEM : set_grammar(c, s, n_vocab);
    if (rc != 0) {
        eng_sampler_free(c);
        return rc;
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
    j->ignore_eos = s->ignore_eos && !s->grammar; /* a complete text must end */
    return 0;
}

/* The draw under the grammar: from a copy of the row with the disallowed tokens at -inf
 * (the bias added there), or the end token when nothing else may follow. Returns the
 * token, or a negative ENG_E* code. */
static int32_t sample_masked(struct eng_sampler *c, const float *logits, uint32_t n_vocab)
{
    if (gram_matcher_done(c->gm)) {
        int32_t end = gram_vocab_end_token(c->gv);
        return end >= 0 ? end : ENG_EINVAL;
    }
    const uint32_t *mask = gram_matcher_mask(c->gm);
    if (!mask)
        return ENG_ENOMEM;
    uint32_t allowed = 0;
    for (uint32_t w = 0; w * 32 < n_vocab; w++) {
        uint32_t bits = mask[w];
        uint32_t end = w * 32 + 32 < n_vocab ? w * 32 + 32 : n_vocab;
        for (uint32_t i = w * 32; i < end; i++, bits >>= 1)
            c->row[i] = bits & 1 ? logits[i] : -INFINITY;
        allowed += (uint32_t)__builtin_popcount(mask[w]);
    }
    if (allowed == 0)
        return ENG_EINVAL; /* the grammar needs a byte no token provides */
    for (size_t i = 0; i < c->n_bias; i++)
        c->row[c->bias[i].id] += c->bias[i].bias;
    return sampler_sample(c->smp, c->row);
}

/* After a token: advances the grammar, or looks for a lazy grammar's trigger. */
static int grammar_advance(struct eng_sampler *c, int32_t id)
{
    if (c->gm_active)
        return gram_matcher_accept(c->gm, id) == 0 ? 0 : ENG_EINVAL;
    if (!c->trigger || c->gm_dropped)
        return 0;
    size_t len;
    const char *t = gram_vocab_text(c->gv, id, &len);
    size_t from = c->seen.len > c->trig_len ? c->seen.len - c->trig_len : 0;
    if (!t || strbuf_append(&c->seen, t, len) != 0)
        return ENG_ENOMEM;
    const char *hit = memmem(c->seen.data + from, c->seen.len - from, c->trigger, c->trig_len);
    if (!hit) {
        if (c->seen.len > 4096) { /* keep the tail a trigger could start in */
            memmove(c->seen.data, c->seen.data + c->seen.len - c->trig_len, c->trig_len);
            c->seen.len = c->trig_len;
        }
        return 0;
    }
    size_t after = (size_t)(hit - c->seen.data) + c->trig_len;
    c->gm_active = gram_matcher_feed(c->gm, c->seen.data + after, c->seen.len - after) == 0;
    c->gm_dropped = !c->gm_active;
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
    bool constrained = c->gm && c->gm_active && !c->thinking;
    bool acc = false;
    int32_t id;
    if (constrained) {
        /* a draw from the masked distribution is kept as the draft when it is the draft:
         * the same law as sampler_sample_draft's rule */
        id = sample_masked(c, logits, n_vocab);
        if (id < 0)
            return id == ENG_ENOMEM ? ENG_ENOMEM : ENG_EINVAL;
        acc = id == draft;
    } else {
        for (size_t i = 0; i < c->n_bias; i++)
            logits[c->bias[i].id] += c->bias[i].bias;
        id = draft < 0 ? sampler_sample(c->smp, logits)
                       : sampler_sample_draft(c->smp, logits, draft, &acc);
        for (size_t i = 0; i < c->n_bias; i++)
            logits[c->bias[i].id] -= c->bias[i].bias;
    }
    if (id < 0 || (uint32_t)id >= n_vocab)
        return ENG_EINVAL;
    if (c->thinking && c->budget >= 0 && c->n_thought >= c->budget && c->think_close >= 0)
        id = c->think_close;
    if (c->thinking)
        c->n_thought++;
    bool was_thinking = c->thinking;
    if (id == c->think_open)
        c->thinking = true;
    else if (id == c->think_close)
        c->thinking = false;
    if (c->gm && !was_thinking && (constrained || !c->gm_active)) {
        int rc = grammar_advance(c, id);
        if (rc != 0)
            return rc;
    }
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
