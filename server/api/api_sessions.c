/* api_sessions.c - /v1/sessions: create, list (paged, newest first), get (with its
 * token meter), messages, update, delete. Every call is scoped to the caller: another
 * user's session answers 404 exactly like a missing one. */
#include "api/api.h"
#include "api/oai.h"
#include "server.h"

#include <stdlib.h>
#include <string.h>

int api_store_error(struct http_req *r, int rc, const char *what)
{
    switch (srv_error_of(SRV_MOD_STORE, rc).code) {
    case SRV_ENOTFOUND:
        return http_send_error(r, SRV_MOD_STORE, rc, NULL, "%s not found", what);
    case SRV_EINVAL:
        return http_send_error(r, SRV_MOD_STORE, rc, NULL, "%s", store_errmsg());
    case SRV_ECONFLICT:
        return http_send_error(r, SRV_MOD_STORE, rc, NULL, "%s already exists", what);
    default:
        return http_send_error(r, SRV_MOD_STORE, rc, NULL,
                               "the database is unavailable (%s); nothing was changed",
                               store_strerror(rc));
    }
}

json_t *api_session_json(const struct store_session *s)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "id", s->id, "object",
                     "session", "title", s->title, "model", s->model, "system_prompt",
                     s->system_prompt, "created_at", (json_int_t)(s->created_ms / 1000),
                     "updated_at", (json_int_t)(s->updated_ms / 1000), "n_messages",
                     (json_int_t)s->n_messages, "n_tokens", (json_int_t)s->n_tokens);
}

/* Reads an optional string field; -1 (400 sent) when present but not a string. */
static int opt_string(struct http_req *r, json_t *body, const char *key, size_t max,
                      const char **out)
{
    json_t *v = json_object_get(body, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v) || json_string_length(v) > max) {
        http_send_error(r, SRV_MOD_SERVER, SRV_EINVAL, key, "%s must be a string of at most %zu bytes", key, max);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

/* The session's token meter: per-turn token counts, how full the window is, and which
 * stored messages the next request would drop (an estimate from the stored counts: a
 * user message counts the ids it was fed with, template included; a reply its own). */
static json_t *session_meter(struct srv *s, int64_t user_id, const struct store_session *sess)
{
    const struct srv_model *sm = srv_find_model(s, sess->model);
    if (!sm && s->n_models)
        sm = &s->models[0];
    struct store_msg_size *msgs; /* sizes only: a long session's text is not loaded */
    size_t n;
    if (!sm || store_message_sizes(s->store, user_id, sess->id, &msgs, &n) != 0)
        return NULL;
    json_t *turns = json_array();
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += msgs[i].n_tokens;
        json_array_append_new(turns, json_pack("{s:I, s:s, s:I, s:s}", "seq", (json_int_t)msgs[i].seq,
                                               "role", msgs[i].role, "n_tokens",
                                               (json_int_t)msgs[i].n_tokens, "status",
                                               store_status_name(msgs[i].status)));
    }
    uint32_t n_ctx = eng_n_ctx(sm->eng);
    int64_t reserve = s->cfg->default_max_tokens < n_ctx / 4 ? s->cfg->default_max_tokens : n_ctx / 4;
    int64_t budget = (int64_t)n_ctx - reserve, left = total;
    json_t *drop = json_array();
    if (total > budget) {
        int64_t target = budget * s->cfg->context_target_fill / 100;
        for (size_t i = 0; i < n && left > target; i++) {
            if (strcmp(msgs[i].role, "system") == 0)
                continue;
            left -= msgs[i].n_tokens;
            json_array_append_new(drop, json_integer(msgs[i].seq));
        }
    }
    free(msgs);
    return json_pack("{s:o, s:I, s:I, s:f, s:o, s:b, s:s}", "turns", turns, "stored_tokens",
                     (json_int_t)total, "n_ctx", (json_int_t)n_ctx, "context_fill",
                     n_ctx ? (double)total / n_ctx : 0.0, "would_drop", drop, "kv_resident",
                     eng_is_resident(sm->eng, user_id, sess->id), "model", sm->id);
}

int api_session_create(struct http_req *r)
{
    json_t *body = r->body_len ? http_body_json(r) : json_object();
    if (!body)
        return 0;
    const char *title, *model, *sys;
    int rc = -1;
    if (opt_string(r, body, "title", 1024, &title) || opt_string(r, body, "model", 256, &model) ||
        opt_string(r, body, "system_prompt", 1 << 20, &sys))
        goto out;
    if (model && !srv_find_model(r->srv, model)) {
        http_send_error(r, SRV_MOD_SERVER, SRV_ENOMODEL, "model", "model '%.64s' does not exist", model);
        goto out;
    }
    struct store_session s;
    rc = store_session_create(r->srv->store, r->user_id, title, model ? model : srv_default_model_id(r->srv), sys, &s);
    if (rc != 0) {
        api_store_error(r, rc, "session");
        goto out;
    }
    http_send_json(r, 200, api_session_json(&s));
    store_session_fini(&s);
out:
    json_decref(body);
    return 0;
}

int api_session_list(struct http_req *r)
{
    const char *lim = http_query(r, "limit");
    const char *after = http_query(r, "after");
    int limit = lim ? atoi(lim) : 20;
    if (limit < 1 || limit > 1000)
        return http_send_error(r, SRV_MOD_SERVER, SRV_EINVAL, "limit", "limit must be between 1 and 1000");
    if (after && !oai_valid_id(after, STORE_ID_MAX))
        return http_send_error(r, SRV_MOD_SERVER, SRV_EINVAL, "after", "after is not a session id");
    struct store_session *arr;
    size_t n;
    bool more;
    int rc = store_session_list(r->srv->store, r->user_id, after, limit, &arr, &n, &more);
    if (rc != 0)
        return api_store_error(r, rc, "session");
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(data, api_session_json(&arr[i]));
    json_t *j = json_pack("{s:s, s:o, s:b}", "object", "list", "data", data, "has_more", more);
    if (n)
        json_object_set_new(j, "last_id", json_string(arr[n - 1].id));
    store_sessions_free(arr, n);
    return http_send_json(r, 200, j);
}

/* Validates the {id} capture; sends 404 for ids that cannot exist. */
static const char *session_param(struct http_req *r)
{
    if (!oai_valid_id(r->params[0], STORE_ID_MAX)) {
        http_send_error(r, SRV_MOD_SERVER, SRV_ENOTFOUND, NULL, "session not found");
        return NULL;
    }
    return r->params[0];
}

int api_session_get(struct http_req *r)
{
    const char *id = session_param(r);
    if (!id)
        return 0;
    struct store_session s;
    int rc = store_session_get(r->srv->store, r->user_id, id, &s);
    if (rc != 0)
        return api_store_error(r, rc, "session");
    json_t *j = api_session_json(&s);
    json_t *meter = session_meter(r->srv, r->user_id, &s);
    if (meter)
        json_object_set_new(j, "meter", meter);
    store_session_fini(&s);
    return http_send_json(r, 200, j);
}

json_t *api_message_json(const struct store_message *m)
{
    json_t *j = json_pack("{s:I, s:I, s:s, s:s, s:s, s:I, s:s, s:I}", "id", (json_int_t)m->id, "seq",
                          (json_int_t)m->seq, "role", m->role, "content", m->content,
                          "reasoning_content", m->reasoning, "n_tokens", (json_int_t)m->n_tokens,
                          "status", store_status_name(m->status), "created_at",
                          (json_int_t)(m->created_ms / 1000));
    json_error_t e;
    json_t *calls = m->tool_calls ? json_loads(m->tool_calls, 0, &e) : NULL;
    if (calls)
        json_object_set_new(j, "tool_calls", calls);
    if (m->tool_call_id)
        json_object_set_new(j, "tool_call_id", json_string(m->tool_call_id));
    return j;
}

int api_session_messages(struct http_req *r)
{
    const char *id = session_param(r);
    if (!id)
        return 0;
    struct store_message *msgs;
    size_t n;
    int rc = store_message_list(r->srv->store, r->user_id, id, &msgs, &n);
    if (rc != 0)
        return api_store_error(r, rc, "session");
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(data, api_message_json(&msgs[i]));
    store_messages_free(msgs, n);
    return http_send_json(r, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

int api_session_update(struct http_req *r)
{
    const char *id = session_param(r);
    if (!id)
        return 0;
    json_t *body = http_body_json(r);
    if (!body)
        return 0;
    const char *title, *sys;
    if (opt_string(r, body, "title", 1024, &title) ||
        opt_string(r, body, "system_prompt", 1 << 20, &sys)) {
        json_decref(body);
        return 0;
    }
    int rc = store_session_update(r->srv->store, r->user_id, id, title, sys);
    json_decref(body);
    if (rc != 0)
        return api_store_error(r, rc, "session");
    struct store_session s;
    rc = store_session_get(r->srv->store, r->user_id, id, &s);
    if (rc != 0)
        return api_store_error(r, rc, "session");
    json_t *j = api_session_json(&s);
    store_session_fini(&s);
    return http_send_json(r, 200, j);
}

int api_session_delete(struct http_req *r)
{
    const char *id = session_param(r);
    if (!id)
        return 0;
    int rc = store_session_delete(r->srv->store, r->user_id, id);
    if (rc != 0)
        return api_store_error(r, rc, "session");
    return http_send_json(r, 200, json_pack("{s:s, s:s, s:b}", "id", id, "object",
                                            "session.deleted", "deleted", 1));
}
