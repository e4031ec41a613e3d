/* api_usage.c - metering: GET /v1/usage (the caller's usage rows or totals, grouped by
 * day, session or model; admins may name another user) and POST /v1/usage/quote (what a
 * request would cost now, given the caller's resident KV cache). */
#include "api/api.h"
#include "api/oai.h"
#include "gen/gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
        http_send_error(r, SRV_MOD_SERVER, SRV_EFORBIDDEN, "user", "only admins may read another user's usage");
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
            return http_send_error(r, SRV_MOD_SERVER, SRV_ENOTFOUND, "request_id", "no usage for that request id");
        int rc = store_usage_get(r->srv->store, uid, rid, &u);
        if (rc != 0)
            return api_store_error(r, rc, "usage for that request id");
        return http_send_json(r, 200, api_usage_row_json(&u));
    }
    struct store_usage_query q = {.user_id = uid};
    const char *from = http_query(r, "from"), *to = http_query(r, "to");
    const char *group = http_query(r, "group_by");
    if (from && !parse_time(from, &q.from_ms))
        return http_send_error(r, SRV_MOD_SERVER, SRV_EINVAL, "from", "from must be YYYY-MM-DD or unix seconds");
    if (to && !parse_time(to, &q.to_ms))
        return http_send_error(r, SRV_MOD_SERVER, SRV_EINVAL, "to", "to must be YYYY-MM-DD or unix seconds");
    if (!group || strcmp(group, "day") == 0)
        q.group_by = STORE_GROUP_DAY;
    else if (strcmp(group, "session") == 0)
        q.group_by = STORE_GROUP_SESSION;
    else if (strcmp(group, "model") == 0)
        q.group_by = STORE_GROUP_MODEL;
    else
        return http_send_error(r, SRV_MOD_SERVER, SRV_EINVAL, "group_by", "group_by must be day, session or model");
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

int api_usage_quote(struct http_req *r)
{
    return gen_count(r, true);
}
