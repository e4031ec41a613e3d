/* api_admin.c - admin REST (users and keys) and the caller's usage report. Admin routes
 * are marked admin_only in the route table, so handlers here run only for admins. */
#include "api.h"
#include "oai.h"
#include "srv.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static json_t *user_json(const struct store_user *u)
{
    return json_pack("{s:I, s:s, s:s, s:b, s:I, s:I}", "id", (json_int_t)u->id, "object", "user",
                     "name", u->name, "is_admin", u->is_admin, "token_quota",
                     (json_int_t)u->token_quota, "created_at", (json_int_t)(u->created_ms / 1000));
}

int api_admin_user_add(struct http_req *r)
{
    json_t *body = http_body_json(r);
    if (!body)
        return 0;
    json_t *name = json_object_get(body, "name");
    json_t *admin = json_object_get(body, "is_admin");
    json_t *quota = json_object_get(body, "token_quota");
    if (!json_is_string(name)) {
        json_decref(body);
        return http_send_error(r, 400, "invalid_request_error", "name", "invalid_value",
                               "name must be a string");
    }
    if ((admin && !json_is_boolean(admin)) || (quota && !json_is_integer(quota))) {
        json_decref(body);
        return http_send_error(r, 400, "invalid_request_error", admin && !json_is_boolean(admin) ? "is_admin" : "token_quota",
                               "invalid_type", "is_admin must be a boolean and token_quota an integer");
    }
    struct store_user u;
    int rc = store_user_add(r->srv->store, json_string_value(name), json_is_true(admin),
                            quota ? json_integer_value(quota) : 0, &u);
    json_decref(body);
    if (rc != 0)
        return api_store_error(r, rc, "user");
    return http_send_json(r, 200, user_json(&u));
}

int api_admin_user_list(struct http_req *r)
{
    struct store_user *users;
    size_t n;
    int rc = store_user_list(r->srv->store, &users, &n);
    if (rc != 0)
        return api_store_error(r, rc, "user");
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(data, user_json(&users[i]));
    free(users);
    return http_send_json(r, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

int api_admin_key_create(struct http_req *r)
{
    char *end;
    long long id = strtoll(r->params[0], &end, 10);
    if (*end || id <= 0)
        return http_send_error(r, 404, "invalid_request_error", NULL, "not_found", "user not found");
    char key[STORE_KEY_LEN + 1];
    struct store_key info;
    int rc = store_key_create(r->srv->store, id, key, sizeof(key), &info);
    if (rc != 0)
        return api_store_error(r, rc, "user");
    return http_send_json(r, 200, json_pack("{s:s, s:s, s:s, s:I, s:I}", "object", "api_key",
                                            "key", key, "prefix", info.prefix, "user_id",
                                            (json_int_t)id, "created_at",
                                            (json_int_t)(info.created_ms / 1000)));
}

int api_admin_key_revoke(struct http_req *r)
{
    struct store_key info;
    if (!oai_valid_id(r->params[0], STORE_KEY_LEN))
        return http_send_error(r, 404, "invalid_request_error", NULL, "not_found", "key not found");
    int rc = store_key_revoke(r->srv->store, r->params[0], &info);
    if (rc != 0)
        return api_store_error(r, rc, "key");
    return http_send_json(r, 200, json_pack("{s:s, s:s, s:b}", "object", "api_key.revoked",
                                            "prefix", info.prefix, "revoked", 1));
}

/* "2026-11-28" (UTC midnight) or unix seconds -> ms; false if neither. */
static bool parse_time(const char *s, int64_t *ms)
{
    struct tm tm = {0};
    char *end = strptime(s, "%Y-%m-%d", &tm);
    if (end && !*end) {
        *ms = (int64_t)timegm(&tm) * 1000;
        return true;
    }
    long long v = strtoll(s, &end, 10);
    if (*s && !*end && v >= 0) {
        *ms = (int64_t)v * 1000;
        return true;
    }
    return false;
}

json_t *api_usage_total_json(const struct store_usage_total *t)
{
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "key", t->key, "requests",
                     (json_int_t)t->requests, "prompt_tokens", (json_int_t)t->prompt_tokens,
                     "prompt_cache_hit_tokens", (json_int_t)t->cached_tokens,
                     "prompt_cache_miss_tokens", (json_int_t)t->miss_tokens,
                     "completion_tokens", (json_int_t)t->completion_tokens, "reasoning_tokens",
                     (json_int_t)t->reasoning_tokens, "cost_micros", (json_int_t)t->cost_micros);
}

json_t *api_usage_row_json(const struct store_usage *u)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:I}", "request_id",
                     u->request_id, "session_id", u->session_id, "model", u->model,
                     "prompt_tokens", (json_int_t)u->prompt_tokens, "prompt_cache_hit_tokens",
                     (json_int_t)u->cached_tokens, "prompt_cache_miss_tokens",
                     (json_int_t)(u->prompt_tokens - u->cached_tokens), "completion_tokens",
                     (json_int_t)u->completion_tokens, "reasoning_tokens",
                     (json_int_t)u->reasoning_tokens, "cost_micros", (json_int_t)u->cost_micros,
                     "status", store_status_name(u->status), "created_at",
                     (json_int_t)(u->created_ms / 1000));
}

/* Which user the usage query is about: the caller, or `user=NAME` for admins. */
static int usage_user(struct http_req *r, int64_t *uid)
{
    const char *name = http_query(r, "user");
    *uid = r->user_id;
    if (!name)
        return 0;
    if (!r->is_admin) {
        http_send_error(r, 403, "invalid_request_error", "user", "permission_denied",
                        "only admins may read another user's usage");
        return -1;
    }
    struct store_user u;
    int rc = store_user_get_by_name(r->srv->store, name, &u);
    if (rc != 0) {
        api_store_error(r, rc, "user");
        return -1;
    }
    *uid = u.id;
    return 0;
}

int api_usage(struct http_req *r)
{
    int64_t uid;
    if (usage_user(r, &uid) != 0)
        return 0;
    const char *rid = http_query(r, "request_id");
    if (rid) {
        struct store_usage u;
        if (!oai_valid_id(rid, STORE_ID_MAX))
            return http_send_error(r, 404, "invalid_request_error", "request_id", "not_found",
                                   "no usage for that request id");
        int rc = store_usage_get(r->srv->store, uid, rid, &u);
        if (rc != 0)
            return api_store_error(r, rc, "usage for that request id");
        return http_send_json(r, 200, api_usage_row_json(&u));
    }
    struct store_usage_query q = {.user_id = uid};
    const char *from = http_query(r, "from"), *to = http_query(r, "to");
    const char *group = http_query(r, "group_by");
    if (from && !parse_time(from, &q.from_ms))
        return http_send_error(r, 400, "invalid_request_error", "from", "invalid_value",
                               "from must be YYYY-MM-DD or unix seconds");
    if (to && !parse_time(to, &q.to_ms))
        return http_send_error(r, 400, "invalid_request_error", "to", "invalid_value",
                               "to must be YYYY-MM-DD or unix seconds");
    if (!group || strcmp(group, "day") == 0)
        q.group_by = STORE_GROUP_DAY;
    else if (strcmp(group, "session") == 0)
        q.group_by = STORE_GROUP_SESSION;
    else if (strcmp(group, "model") == 0)
        q.group_by = STORE_GROUP_MODEL;
    else
        return http_send_error(r, 400, "invalid_request_error", "group_by", "invalid_value",
                               "group_by must be day, session or model");
    struct store_usage_total *rows, *total;
    size_t n, n_total;
    int rc = store_usage_totals(r->srv->store, &q, &rows, &n);
    if (rc != 0)
        return api_store_error(r, rc, "usage");
    q.group_by = STORE_GROUP_NONE;
    rc = store_usage_totals(r->srv->store, &q, &total, &n_total);
    if (rc != 0) {
        free(rows);
        return api_store_error(r, rc, "usage");
    }
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(data, api_usage_total_json(&rows[i]));
    json_t *j = json_pack("{s:s, s:s, s:o, s:o, s:s}", "object", "list", "group_by",
                          group ? group : "day", "data", data, "total",
                          api_usage_total_json(&total[0]), "currency", r->srv->cfg->currency);
    free(rows);
    free(total);
    return http_send_json(r, 200, j);
}
