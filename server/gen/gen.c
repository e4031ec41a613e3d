/* gen.c - the chat pipeline in order: parse and validate, build the prompt, claim the
 * idempotency key, admit against the quota, set up the engine job, commit the session's
 * new messages, submit, then answer as one JSON object (here) or as server-sent events
 * (gen_sse.c). Each step returns 0 or an error code; gen_send_error is the one place a
 * failed step becomes a response.
 *
 * Runs on the request's connection thread. The engine thread only fills the job. */
#include "gen/gen.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int gen_fail(struct gen *g, enum srv_errmod mod, int code, const char *param, const char *fmt, ...)
{
    g->err.mod = mod;
    g->err.code = code;
    g->err.param = param;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->err.msg, sizeof(g->err.msg), fmt, ap);
    va_end(ap);
    return srv_error_of(mod, code).code;
}

static int gen_send_error(struct http_req *r, const struct gen *g)
{
    return http_send_error(r, g->err.mod, g->err.code, g->err.param, "%s", g->err.msg);
}

void gen_free(struct gen *g)
{
    if (!g)
        return;
    if (g->job) {
        atomic_store(&g->job->cancel, true);
        eng_job_release(g->job);
    }
    gen_release(g);
    tok_stream_fini(&g->ts);
    gen_tools_free(g->tools);
    gram_unref(g->grammar);
    rsn_free(g->rsn);
    stop_free(g->stop);
    strbuf_free(&g->content);
    strbuf_free(&g->reasoning);
    json_decref(g->logprobs);
    free(g->prompt);
    oai_request_fini(&g->q);
    free(g);
}

/* Parses the body and picks the model into a new gen. Returns NULL with the error
 * response sent. */
static struct gen *gen_new(struct http_req *r, bool chat)
{
    json_t *body = http_body_json(r);
    if (!body)
        return NULL;
    struct gen *g = calloc(1, sizeof(*g));
    if (!g) {
        json_decref(body);
        http_send_error(r, SRV_MOD_SERVER, SRV_EINTERNAL, NULL, "out of memory");
        return NULL;
    }
    g->srv = r->srv;
    struct oai_error e;
    oai_request_init(&g->q);
    int rc = oai_parse(body, chat, &g->q, &e);
    json_decref(body);
    if (rc != 0)
        gen_fail(g, SRV_MOD_SERVER, e.code, NULL, "%s", e.message);
    if (rc == 0) {
        g->sm = g->q.model ? srv_find_model(r->srv, g->q.model) : &r->srv->models[0];
        if (!g->sm)
            rc = gen_fail(g, SRV_MOD_SERVER, SRV_ENOMODEL, "model", "model '%.64s' does not exist",
                          g->q.model);
    }
    for (size_t i = 0; rc == 0 && i < g->q.n_bias; i++)
        if (g->q.bias[i].id >= (int64_t)mdl_n_vocab(g->sm->mdl))
            rc = gen_fail(g, SRV_MOD_SERVER, SRV_EINVAL, "logit_bias",
                          "logit_bias token id %lld is outside the vocabulary (%u tokens)",
                          (long long)g->q.bias[i].id, mdl_n_vocab(g->sm->mdl));
    if (rc != 0) {
        /* the param text lives in e, which goes out of scope: send it now */
        http_send_error(r, g->err.mod, g->err.code,
                        g->err.param ? g->err.param : e.param[0] ? e.param : NULL, "%s",
                        g->err.msg);
        gen_free(g);
        return NULL;
    }
    g->user_id = r->user_id;
    g->created = time(NULL);
    g->n_ctx = eng_n_ctx(g->sm->eng);
    snprintf(g->request_id, sizeof(g->request_id), "%s", r->request_id);
    snprintf(g->id, sizeof(g->id), "%s%s", chat ? "chatcmpl-" : "cmpl-", r->request_id + 4);
    g->split_reasoning = chat && g->q.reasoning_split;
    tok_stream_init(&g->ts, g->sm->tok, false);
    g->rsn = rsn_new(g->sm->thinks);
    g->stop = stop_new((const char *const *)g->q.stop, g->q.n_stop);
    if (!g->rsn || !g->stop) {
        http_send_error(r, SRV_MOD_SERVER, SRV_EINTERNAL, NULL, "out of memory");
        gen_free(g);
        return NULL;
    }
    return g;
}

/* Puts the job in the engine's queue: a place is held first, then the session's new
 * messages are committed, then the job goes in (so a request the engine refuses stores
 * nothing, and one it takes has its messages stored before inference). */
static int submit(struct gen *g)
{
    struct engine *e = g->sm->eng;
    int rc = eng_hold_place(e, g->job->n_prompt);
    if (rc == ENG_ETOOLONG)
        return gen_fail(g, SRV_MOD_ENGINE, rc, "messages", "the prompt does not fit a sequence slot");
    if (rc != 0)
        return gen_fail(g, SRV_MOD_ENGINE, rc, NULL, "%s; retry shortly", eng_strerror(rc));
    rc = gen_save_messages(g);
    if (rc != 0) {
        eng_release_place(e);
        return rc;
    }
    rc = eng_submit_held(e, g->job);
    if (rc != 0)
        return gen_fail(g, SRV_MOD_ENGINE, rc, NULL, "%s; retry shortly", eng_strerror(rc));
    /* a reply that is not streamed gets its (empty, unbilled) row now, so each turn of the
     * session is whole whatever happens; a streamed one opens at its first token */
    if (g->session_id[0] && !g->q.stream)
        g->reply_begun = store_reply_begin(g->srv->store, g->user_id, g->session_id, &g->reply) == 0;
    return 0;
}

/* Waits for the whole reply and answers with one chat.completion / text_completion. */
static int respond_full(struct http_req *r, struct gen *g)
{
    while (!gen_pump(g, 1000, UINT32_MAX))
        ;
    int rc = gen_store_result(g, g->failed ? STORE_MSG_ERROR : STORE_MSG_COMPLETE);
    if (rc != 0)
        return http_send_error(r, SRV_MOD_STORE, rc, NULL, "the reply could not be stored (database unavailable) and was not billed; try again");
    if (g->failed)
        return gen_send_error(r, g);
    json_t *choice = json_pack("{s:i, s:s}", "index", 0, "finish_reason", g->finish_reason);
    gen_add_finish_detail(g, choice);
    if (g->q.chat)
        json_object_set_new(choice, "message", gen_message_json(g));
    else
        json_object_set_new(choice, "text", json_string(strbuf_str(&g->content)));
    json_object_set_new(choice, "logprobs",
                        g->logprobs ? json_pack("{s:O}", "content", g->logprobs) : json_null());
    json_t *j = json_pack("{s:s, s:s, s:I, s:s, s:[o], s:o}", "id", g->id, "object",
                          g->q.chat ? "chat.completion" : "text_completion", "created",
                          (json_int_t)g->created, "model", g->sm->id, "choices", choice, "usage",
                          gen_usage_json(g));
    json_object_set_new(j, "context", gen_context_json(g));
    if (g->session_id[0])
        json_object_set_new(j, "session_id", json_string(g->session_id));
    if (g->idem_key[0]) {
        char *text = json_dumps(j, JSON_COMPACT);
        if (text)
            gen_idem_complete(g, text);
        free(text);
    }
    return http_send_json(r, 200, j);
}

int gen_run(struct http_req *r, bool chat)
{
    struct gen *g = gen_new(r, chat);
    if (!g)
        return 0;
    char *replay = NULL;
    int rc = gen_tools_setup(g);
    rc = rc ? rc : gen_build_prompt(g, http_header(r, "X-Session-Id"));
    rc = rc ? rc : gen_idem_claim(g, http_header(r, "Idempotency-Key"), r->body, r->body_len, &replay);
    if (rc == 0 && replay) { /* the first response: JSON, or the text of its stream */
        http_add_header(r, "Idempotent-Replayed", "true");
        http_send_bytes(r, 200, strncmp(replay, "data:", 5) == 0 ? "text/event-stream" : "application/json",
                        replay, strlen(replay), true);
        free(replay);
        gen_free(g);
        return 0;
    }
    rc = rc ? rc : gen_quota_admit(g);
    rc = rc ? rc : gen_setup_job(g);
    rc = rc ? rc : submit(g);
    if (rc != 0) {
        gen_send_error(r, g);
        gen_free(g);
        return 0;
    }
    char num[16];
    snprintf(num, sizeof(num), "%d", g->dropped_messages);
    http_add_header(r, "X-Context-Dropped-Messages", num);
    if (g->retokenized_messages) {
        snprintf(num, sizeof(num), "%d", g->retokenized_messages);
        http_add_header(r, "X-Context-Retokenized-Messages", num);
    }
    if (g->q.stream)
        return gen_respond_stream(r, g);
    rc = respond_full(r, g);
    gen_free(g);
    return rc;
}

/* The cache split of the prompt given the caller's resident KV, with the price. */
static void add_quote(struct gen *g, json_t *j)
{
    uint32_t hit = eng_peek_cached(g->sm->eng, g->user_id, g->session_id, g->prompt, g->n_prompt);
    struct cfg_price cp = cfg_price_for(g->srv->cfg, g->sm->id);
    struct store_price fb = {.input_miss = cp.input_miss, .input_hit = cp.input_hit,
                             .output = cp.output};
    struct store_price price;
    if (store_price_current(g->srv->store, g->sm->id, &fb, &price) != 0)
        price = fb;
    int64_t in_cost = 0, max_cost = 0;
    store_cost_micros(&price, g->n_prompt, hit, 0, &in_cost);
    store_cost_micros(&price, g->n_prompt, hit, g->max_tokens, &max_cost);
    json_object_set_new(j, "prompt_cache_hit_tokens", json_integer(hit));
    json_object_set_new(j, "prompt_cache_miss_tokens", json_integer(g->n_prompt - hit));
    json_object_set_new(j, "max_completion_tokens", json_integer(g->max_tokens));
    json_object_set_new(j, "price", json_pack("{s:I, s:I, s:I, s:s}", "input_miss",
                                              (json_int_t)price.input_miss, "input_hit",
                                              (json_int_t)price.input_hit, "output",
                                              (json_int_t)price.output, "currency",
                                              g->srv->cfg->currency));
    json_object_set_new(j, "input_cost_micros", json_integer(in_cost));
    json_object_set_new(j, "max_cost_micros", json_integer(max_cost));
}

int gen_count(struct http_req *r, bool quote)
{
    struct gen *g = gen_new(r, true);
    if (!g)
        return 0;
    if (gen_tools_setup(g) != 0 || gen_build_prompt(g, http_header(r, "X-Session-Id")) != 0) {
        gen_send_error(r, g);
        gen_free(g);
        return 0;
    }
    json_t *j = json_pack("{s:s, s:s, s:I, s:o}", "object", quote ? "usage.quote" : "tokens.count",
                          "model", g->sm->id, "prompt_tokens", (json_int_t)g->n_prompt, "context",
                          gen_context_json(g));
    if (quote)
        add_quote(g, j);
    gen_free(g);
    return http_send_json(r, 200, j);
}
