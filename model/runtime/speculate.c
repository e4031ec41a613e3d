/* speculate.c - draft tokens for speculative decoding (the engine verifies them, see
 * engine.c's sample_all and sampler_sample_draft).
 *
 * Each step, a decoding sequence may feed up to n_draft proposed tokens after its pending
 * one; the target model checks them all in the same forward. Proposals are deterministic,
 * which keeps the verification rule simple and exact: at temperature 0 a draft is kept
 * when it is the greedy token, above it is kept with the probability the target gives it.
 *
 *  - n-grams (ENG_SPEC_NGRAM, prompt lookup): the longest recent suffix of the sequence
 *    (3, 2 or 1 tokens) that occurred before is followed by what followed it then. Chat
 *    replies quote and repeat their context, and this costs no model.
 *  - a draft model (ENG_SPEC_DRAFT): a small model with the same vocabulary runs n_draft
 *    greedy steps. It has its own KV cache per slot, holding a prefix of the slot's tokens
 *    (slot->dn of them), caught up at the start of each proposal and trimmed to what the
 *    target kept (spec_trim), so it is reused across steps and turns like the target's.
 *
 * Engine thread only, without the engine lock (the slots' contents are the engine
 * thread's). */
#include "runtime_int.h"

#include <string.h>

/* Longest suffix tried, in tokens. */
#define NGRAM_MAX 3

/* The tokens that followed the most recent earlier occurrence of the sequence's last g
 * tokens (g = 3, 2, 1, the first that occurred), at most max of them. seq has n tokens. */
static uint32_t ngram(const int32_t *seq, uint32_t n, int32_t *out, uint32_t max)
{
    for (uint32_t g = NGRAM_MAX; g >= 1; g--) {
        if (n < g + 1)
            continue;
        const int32_t *pat = seq + n - g;
        for (uint32_t end = n - 1; end >= g; end--) { /* seq[end - g .. end) == pat */
            if (memcmp(seq + end - g, pat, g * sizeof(*seq)) != 0)
                continue;
            uint32_t k = 0;
            while (k < max && end + k < n)
                out[k] = seq[end + k], k++;
            return k;
        }
    }
    return 0;
}

/* How many drafts a decoding slot may feed: not past the context (the pending token and
 * its drafts must fit, with room for the token drawn after them) nor past what its job
 * may still generate. */
static uint32_t room(const struct engine *e, const struct slot *s)
{
    const struct eng_job *j = s->job;
    uint32_t left_ctx = e->p.n_ctx > s->n + 2 ? e->p.n_ctx - s->n - 2 : 0;
    uint32_t left_out = j->max_tokens > j->n_out + 1 ? j->max_tokens - j->n_out - 1 : 0;
    uint32_t r = e->p.n_draft;
    r = r < left_ctx ? r : left_ctx;
    return r < left_out ? r : left_out;
}

static void propose_ngram(struct engine *e, const bool *decoding)
{
    for (uint32_t i = 0; i < e->p.n_slots; i++) {
        struct slot *s = &e->slots[i];
        s->n_draft = 0;
        if (!decoding[i])
            continue;
        uint32_t max = room(e, s);
        if (!max)
            continue;
        s->toks[s->n] = s->pending; /* the sequence as it will be, for the lookup */
        s->n_draft = ngram(s->toks, s->n + 1, s->draft, max);
    }
}

/* ---- the draft model ---- */

static uint32_t argmax(const float *l, uint32_t n)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (l[i] > l[best])
            best = i;
    return best;
}

/* One forward of the draft model over its batch of n tokens; false on failure. */
static bool draft_forward(struct engine *e, uint32_t n)
{
    struct bk_batch b = {n, e->d_tok, e->d_pos, e->d_slot, e->d_want};
    return e->p.draft_ops->forward(e->p.draft_bk, &b, e->d_logits) == 0;
}

/* Feeds the draft model what it has not seen of each proposing slot's tokens, in
 * batches of at most n_batch, all but the last token of each; returns false on failure. */
static bool catch_up(struct engine *e, const bool *go)
{
    for (;;) {
        uint32_t n = 0;
        for (uint32_t i = 0; i < e->p.n_slots && n < e->p.n_batch; i++) {
            struct slot *s = &e->slots[i];
            while (go[i] && s->dn < s->n && n < e->p.n_batch) { /* toks[n] is the pending one */
                e->d_tok[n] = s->toks[s->dn];
                e->d_pos[n] = (int32_t)s->dn;
                e->d_slot[n] = (int32_t)i;
                e->d_want[n] = false;
                s->dn++;
                n++;
            }
        }
        if (n == 0)
            return true;
        if (!draft_forward(e, n))
            return false;
    }
}

static void propose_draft(struct engine *e, const bool *decoding)
{
    bool go[ENG_MAX_SLOTS_ON_STACK], *gp = go;
    uint32_t max[ENG_MAX_SLOTS_ON_STACK];
    if (e->p.n_slots > ENG_MAX_SLOTS_ON_STACK)
        return; /* engine_start refuses that many slots with a draft model */
    uint32_t most = 0;
    for (uint32_t i = 0; i < e->p.n_slots; i++) {
        struct slot *s = &e->slots[i];
        s->n_draft = 0;
        max[i] = decoding[i] ? room(e, s) : 0;
        gp[i] = max[i] > 0;
        most = max[i] > most ? max[i] : most;
    }
    if (!most || !catch_up(e, go))
        goto fail;
    /* then the pending token, and each draft in turn, for every slot still proposing */
    for (uint32_t r = 0; r < most; r++) {
        uint32_t n = 0;
        for (uint32_t i = 0; i < e->p.n_slots; i++) {
            struct slot *s = &e->slots[i];
            if (!go[i] || s->n_draft >= max[i])
                continue;
            e->d_tok[n] = r ? s->draft[r - 1] : s->pending;
            e->d_pos[n] = (int32_t)(s->n + r);
            e->d_slot[n] = (int32_t)i;
            e->d_want[n] = true;
            n++;
        }
        if (n == 0)
            break;
        if (!draft_forward(e, n))
            goto fail;
        uint32_t row = 0;
        for (uint32_t i = 0; i < e->p.n_slots; i++) {
            struct slot *s = &e->slots[i];
            if (!go[i] || s->n_draft >= max[i])
                continue;
            s->draft[s->n_draft++] =
                (int32_t)argmax(e->d_logits + (size_t)row++ * e->n_vocab, e->n_vocab);
            s->dn = s->n + r + 1; /* it has seen the pending token and r drafts */
        }
    }
    return;
fail:
    /* no drafts this step; the draft cache starts over (the target's is unaffected) */
    for (uint32_t i = 0; i < e->p.n_slots; i++) {
        e->slots[i].n_draft = 0;
        spec_trim(e, i, 0);
    }
}

void spec_propose(struct engine *e, const bool *decoding)
{
    if (e->p.spec == ENG_SPEC_NGRAM)
        propose_ngram(e, decoding);
    else if (e->p.spec == ENG_SPEC_DRAFT)
        propose_draft(e, decoding);
}

void spec_trim(struct engine *e, uint32_t slot, uint32_t n)
{
    struct slot *s = &e->slots[slot];
    s->n_draft = 0;
    if (e->p.spec != ENG_SPEC_DRAFT || s->dn <= n)
        return;
    s->dn = n;
    e->p.draft_ops->kv_truncate(e->p.draft_bk, slot, n);
}
