/* gen_store.c - the end of a request: the reply (for a session) and its usage row,
 * stored once, in one transaction for a session; the usage and context objects the
 * response reports.
 *
 * Runs on the request's connection thread. */
#include "gen/gen.h"

#include <stdlib.h>
#include <string.h>

json_t *gen_usage_json(const struct gen *g)
{
    uint32_t cached = g->job ? g->job->n_cached : 0;
    return json_pack("{s:I, s:I, s:I, s:{s:I}, s:{s:I}, s:I, s:I}", "prompt_tokens",
                     (json_int_t)g->n_prompt, "completion_tokens", (json_int_t)g->consumed,
                     "total_tokens", (json_int_t)(g->n_prompt + g->consumed),
                     "prompt_tokens_details", "cached_tokens", (json_int_t)cached,
                     "completion_tokens_details", "reasoning_tokens",
                     (json_int_t)g->n_reasoning_tokens, "prompt_cache_hit_tokens",
                     (json_int_t)cached, "prompt_cache_miss_tokens",
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

int gen_store_result(struct gen *g, enum store_msg_status status)
{
    if (g->stored)
        return 0;
    g->stored = true;
    struct cfg_price cp = cfg_price_for(g->srv->cfg, g->sm->id);
    struct store_price fb = {.input_miss = cp.input_miss, .input_hit = cp.input_hit,
                             .output = cp.output};
    struct store_usage_in u = {
        .request_id = g->request_id,
        .user_id = g->user_id,
        .session_id = g->session_id[0] ? g->session_id : NULL,
        .model = g->sm->id,
        .prompt_tokens = g->n_prompt,
        .cached_tokens = g->job ? g->job->n_cached : 0,
        .completion_tokens = g->consumed,
        .reasoning_tokens = g->n_reasoning_tokens,
        .status = status,
        .fallback_price = &fb,
    };
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
