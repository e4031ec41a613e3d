/* gen_store.c - storing the reply: a streamed session reply is opened at its first token
 * and billed as pending, its text handed to the group commit as it streams (a crash
 * bills what was stored of what the client was sent, at most a flush interval short, and
 * that text stays in the session as partial); at the end the reply and its usage row are
 * stored once, in one transaction for a session. A reply that is not streamed reaches
 * the client only at the end, so a crash before leaves nothing of it and bills nothing. Also the usage and context objects
 * the response reports.
 *
 * Runs on the request's connection thread. */
#include "gen/gen.h"

#include <stdlib.h>
#include <string.h>

json_t *gen_usage_json(const struct gen *g)
{
    uint32_t cached = g->job ? g->job->n_cached : 0;
    uint32_t accepted = 0, rejected = 0;
    if (g->job) {
        pthread_mutex_lock(&g->job->mu); /* the engine counts them as it steps */
        accepted = g->job->n_draft_accepted;
        rejected = g->job->n_draft_rejected;
        pthread_mutex_unlock(&g->job->mu);
    }
    return json_pack("{s:I, s:I, s:I, s:{s:I}, s:{s:I, s:I, s:I}, s:I, s:I}", "prompt_tokens",
                     (json_int_t)g->n_prompt, "completion_tokens", (json_int_t)g->consumed,
                     "total_tokens", (json_int_t)(g->n_prompt + g->consumed),
                     "prompt_tokens_details", "cached_tokens", (json_int_t)cached,
                     "completion_tokens_details", "reasoning_tokens",
                     (json_int_t)g->n_reasoning_tokens, "accepted_prediction_tokens",
                     (json_int_t)accepted, "rejected_prediction_tokens", (json_int_t)rejected,
                     "prompt_cache_hit_tokens", (json_int_t)cached, "prompt_cache_miss_tokens",
                     (json_int_t)(g->n_prompt - cached));
}

json_t *gen_context_json(const struct gen *g)
{
    return json_pack("{s:i, s:i, s:I, s:I}", "dropped_messages", g->dropped_messages,
                     "retokenized_messages", g->retokenized_messages, "prompt_tokens",
                     (json_int_t)g->n_prompt, "n_ctx", (json_int_t)g->n_ctx);
}

json_t *gen_message_json(const struct gen *g)
{
    json_t *m = json_pack("{s:s, s:s}", "role", "assistant", "content", strbuf_str(&g->content));
    if (g->split_reasoning && g->reasoning.len)
        json_object_set_new(m, "reasoning_content", json_string(strbuf_str(&g->reasoning)));
    gen_tools_message(g, m);
    return m;
}

void gen_add_finish_detail(const struct gen *g, json_t *choice)
{
    if (g->quota_capped && g->finish_reason && strcmp(g->finish_reason, "length") == 0)
        json_object_set_new(choice, "finish_detail",
                            json_string("the monthly token quota is used up; the reply was cut there"));
}

/* The ids the model generated for this reply (caller frees), read under the job's lock. */
static int32_t *reply_ids(const struct gen *g, uint32_t *n)
{
    *n = 0;
    if (!g->job)
        return NULL;
    pthread_mutex_lock(&g->job->mu);
    int32_t *ids = malloc(((size_t)g->consumed + 1) * sizeof(*ids));
    for (uint32_t i = 0; ids && i < g->consumed; i++)
        ids[i] = g->job->out[i].id;
    *n = ids ? g->consumed : 0;
    pthread_mutex_unlock(&g->job->mu);
    return ids;
}

/* The request's usage as it stands (fb receives the configured prices). */
static struct store_usage_in usage_of(const struct gen *g, enum store_msg_status status,
                                      struct store_price *fb)
{
    struct cfg_price cp = cfg_price_for(g->srv->cfg, g->sm->id);
    *fb = (struct store_price){.input_miss = cp.input_miss, .input_hit = cp.input_hit,
                               .output = cp.output};
    return (struct store_usage_in){
        .request_id = g->request_id,
        .user_id = g->user_id,
        .session_id = g->session_id[0] ? g->session_id : NULL,
        .model = g->sm->id,
        .prompt_tokens = g->n_prompt,
        .cached_tokens = g->job ? g->job->n_cached : 0,
        .completion_tokens = g->consumed,
        .reasoning_tokens = g->n_reasoning_tokens,
        .status = status,
        .fallback_price = fb,
    };
}

void gen_reply_progress(struct gen *g, bool force)
{
    if (!g->session_id[0] || !g->q.stream || g->stored || !g->consumed)
        return;
    struct store *st = g->srv->store;
    if (!g->reply_begun) {
        /* opened at the first token, when the cache split is known: from now on a crash
         * bills what was stored */
        struct store_price fb;
        struct store_usage_in u = usage_of(g, STORE_MSG_PARTIAL, &fb);
        u.completion_tokens = u.reasoning_tokens = 0;
        g->reply_begun = store_reply_begin_billed(st, &u, &g->reply) == 0;
        if (!g->reply_begun)
            return;
    }
    store_reply_flush_tokens(st, &g->reply, strbuf_str(&g->content), strbuf_str(&g->reasoning),
                             g->consumed, g->n_reasoning_tokens, force);
}

int gen_store_result(struct gen *g, enum store_msg_status status)
{
    if (g->stored)
        return 0;
    g->stored = true;
    struct store_price fb;
    struct store_usage_in u = usage_of(g, status, &fb);
    struct store_usage row;
    int rc;
    if (g->session_id[0]) {
        uint32_t n;
        int32_t *ids = reply_ids(g, &n);
        char *content, *calls;
        gen_tools_store_fields(g, &content, &calls);
        struct store_msg_in m = {
            .role = "assistant",
            .content = content ? content : strbuf_str(&g->content),
            .tool_calls = calls,
            .reasoning = strbuf_str(&g->reasoning),
            .token_ids = ids,
            .n_token_ids = n,
            .n_tokens = n,
            .fingerprint = g->sm->fingerprint,
            .status = status,
        };
        rc = store_finish_turn(g->srv->store, g->reply_begun ? &g->reply : NULL, &m, &u, NULL, &row);
        free(ids);
        free(content);
        free(calls);
    } else {
        rc = store_usage_record(g->srv->store, &u, &row);
    }
    if (rc != 0) {
        log_error("usage store failed request_id=%s error=\"%s\"", g->request_id, store_errmsg());
        return rc;
    }
    srv_meter_add(g->srv, g->user_id, &row);
    return 0;
}
