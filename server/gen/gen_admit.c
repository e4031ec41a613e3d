/* gen_admit.c - admitting a request: its Idempotency-Key, the user's monthly quota
 * (the worst case, prompt + max_tokens, is reserved until the reply is billed), the
 * engine job with the request's sampling, and the session's new messages, committed
 * before inference so a crash never loses what the user said (and only once the engine
 * has a place for the job, so a refused request stores nothing).
 *
 * Runs on the request's connection thread. */
#include "gen/gen.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The request body's identity for its Idempotency-Key: BLAKE2b-128, in hex. */
static void body_hash(const char *body, size_t len, char out[33])
{
    unsigned char h[16];
    crypto_generichash(h, sizeof(h), (const unsigned char *)body, len, NULL, 0);
    sodium_bin2hex(out, 33, h, sizeof(h));
}

int gen_idem_claim(struct gen *g, const char *key, const char *body, size_t body_len,
                   char **replay)
{
    *replay = NULL;
    if (!key)
        return 0;
    if (!oai_valid_id(key, STORE_ID_MAX))
        return gen_fail(g, SRV_MOD_SERVER, SRV_EINVAL, "Idempotency-Key",
                        "Idempotency-Key must be 1-64 characters of [A-Za-z0-9._:-]");
    char hash[33];
    body_hash(body, body_len, hash);
    int64_t ttl_ms = g->srv->cfg->idempotency_ttl_s * 1000;
    int rc = store_idem_begin(g->srv->store, g->user_id, key, g->request_id, hash, ttl_ms);
    if (rc == 0) {
        snprintf(g->idem_key, sizeof(g->idem_key), "%s", key);
        return 0;
    }
    if (rc != STORE_EEXISTS)
        return gen_fail(g, SRV_MOD_STORE, rc, NULL, "the Idempotency-Key could not be claimed");
    char rid[STORE_ID_MAX + 1], was[STORE_ID_MAX + 1];
    rc = store_idem_get(g->srv->store, g->user_id, key, rid, was, replay);
    if (rc == 0 && strcmp(was, hash) != 0) {
        free(*replay);
        *replay = NULL;
        return gen_fail(g, SRV_MOD_SERVER, SRV_EIDEMREUSED, "Idempotency-Key",
                        "this Idempotency-Key was used with another request body (request %s)", rid);
    }
    if (rc != 0 || !*replay)
        return gen_fail(g, SRV_MOD_SERVER, SRV_EIDEMBUSY, NULL,
                        "a request with this Idempotency-Key is still running (request %s)", rid);
    return 0;
}

void gen_idem_complete(struct gen *g, const char *response)
{
    if (!g->idem_key[0] || g->idem_done)
        return;
    g->idem_done = store_idem_complete(g->srv->store, g->user_id, g->idem_key, response) == 0;
}

int gen_quota_admit(struct gen *g)
{
    int64_t max = g->max_tokens;
    struct store_quota q;
    int rc = store_quota_reserve(g->srv->store, g->user_id, g->request_id, g->n_prompt, &max,
                                 g->srv->cfg->reservation_ttl_s * 1000, &q);
    if (rc == STORE_EQUOTA)
        return gen_fail(g, SRV_MOD_STORE, rc, NULL,
                        "monthly token quota of %lld exceeded (used %lld, in flight %lld, this prompt %u)",
                        (long long)q.quota, (long long)q.used, (long long)q.reserved, g->n_prompt);
    if (rc != 0)
        return gen_fail(g, SRV_MOD_STORE, rc, NULL, "the user's quota could not be checked: %s",
                        store_strerror(rc));
    g->reserved = q.quota > 0;
    if (max < (int64_t)g->max_tokens) {
        g->max_tokens = (uint32_t)max;
        g->quota_capped = true;
    }
    return 0;
}

void gen_release(struct gen *g)
{
    /* billed requests settled their reservation with the usage row; this drops the one
     * of a request that ended without */
    if (g->reserved)
        store_quota_release(g->srv->store, g->request_id);
    g->reserved = false;
    /* a key whose request produced nothing to replay is given back for a retry */
    if (g->idem_key[0] && !g->idem_done)
        store_idem_release(g->srv->store, g->user_id, g->idem_key);
    g->idem_key[0] = 0;
}

/* The request's sampling, as the engine runs it. */
static void sampling_of(const struct gen *g, struct eng_sampling *s, struct eng_bias *bias)
{
    eng_default_sampling(s);
    s->sampler.temperature = (float)g->q.temperature;
    s->sampler.top_k = (int32_t)g->q.top_k;
    s->sampler.top_p = (float)g->q.top_p;
    s->sampler.min_p = (float)g->q.min_p;
    s->sampler.presence_penalty = (float)g->q.presence_penalty;
    s->sampler.frequency_penalty = (float)g->q.frequency_penalty;
    s->sampler.repeat_penalty = (float)g->q.repetition_penalty;
    s->sampler.seed = g->q.has_seed ? g->q.seed : ((uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)g);
    for (size_t i = 0; i < g->q.n_bias; i++)
        bias[i] = (struct eng_bias){(int32_t)g->q.bias[i].id, (float)g->q.bias[i].bias};
    s->bias = bias;
    s->n_bias = g->q.n_bias;
    s->n_top_logprobs = g->q.logprobs ? (int)(g->q.top_logprobs > 0 ? g->q.top_logprobs : 1) : 0;
    s->reasoning_budget = g->split_reasoning ? g->q.max_reasoning_tokens : -1;
    s->think_open = tok_find(g->sm->tok, "<think>");
    s->think_close = tok_find(g->sm->tok, "</think>");
    s->start_in_thought = g->sm->thinks;
    s->ignore_eos = g->q.ignore_eos;
    s->grammar = g->grammar;
    s->gram_vocab = g->sm->gram_vocab;
    s->grammar_trigger = g->grammar_trigger;
}

int gen_setup_job(struct gen *g)
{
    struct eng_job *j = eng_job_new();
    struct eng_bias *bias = calloc(g->q.n_bias + 1, sizeof(*bias));
    if (!j || !bias) {
        free(bias);
        eng_job_release(j);
        return gen_fail(g, SRV_MOD_SERVER, SRV_EINTERNAL, NULL, "out of memory");
    }
    j->prompt = g->prompt;
    g->prompt = NULL;
    j->n_prompt = g->n_prompt;
    j->max_tokens = g->max_tokens;
    j->user_id = g->user_id;
    snprintf(j->cache_key, sizeof(j->cache_key), "%s", g->session_id);
    g->job = j;
    struct eng_sampling s;
    sampling_of(g, &s, bias);
    int rc = eng_job_set_sampling(j, &s, mdl_n_vocab(g->sm->mdl));
    free(bias);
    if (rc != 0)
        return gen_fail(g, SRV_MOD_ENGINE, rc, NULL, "the sampling parameters were refused: %s",
                        eng_strerror(rc));
    return 0;
}

int gen_save_messages(struct gen *g)
{
    if (!g->session_id[0])
        return 0;
    for (size_t i = 0; i < g->q.n_msgs; i++) {
        const char *c = g->q.msgs[i].content;
        bool last = i + 1 == g->q.n_msgs;
        /* The last message keeps the prompt ids that follow the stored ones reused (its
         * own text and the template around it), so the next turn feeds them again
         * unchanged; its token count is theirs. Earlier ones are counted alone. */
        size_t n = last ? g->n_prompt - g->prompt_tail_from : 0;
        int32_t *ids = NULL;
        if (!last && tok_encode(g->sm->tok, c, strlen(c), false, false, &ids, &n) != 0)
            n = 0;
        free(ids);
        struct store_msg_in m = {.role = g->q.msgs[i].role, .content = c,
                                 .token_ids = last ? g->job->prompt + g->prompt_tail_from : NULL,
                                 .n_token_ids = last ? g->n_prompt - g->prompt_tail_from : 0,
                                 .n_tokens = (int64_t)n, .fingerprint = g->sm->fingerprint,
                                 .status = STORE_MSG_COMPLETE, .tool_calls = g->q.msgs[i].tool_calls,
                                 .tool_call_id = g->q.msgs[i].tool_call_id};
        int rc = store_message_append(g->srv->store, g->user_id, g->session_id, &m, NULL, NULL);
        if (rc != 0)
            return gen_fail(g, SRV_MOD_STORE, rc, NULL, "could not store the message: %s",
                            store_errmsg());
    }
    return 0;
}
