/* api_admin.c - admin REST (users and keys) and the caller's usage report. Admin routes
 * are marked admin_only in the route table, so handlers here run only for admins. */
#include "api/api.h"
#include "api/oai.h"
#include "server.h"

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
        return http_send_error(r, SRV_MOD_SERVER, SRV_EINVAL, "name", "name must be a string");
    }
    if ((admin && !json_is_boolean(admin)) || (quota && !json_is_integer(quota))) {
        json_decref(body);
        return http_send_error(r, SRV_MOD_SERVER, SRV_ETYPE, admin && !json_is_boolean(admin) ? "is_admin" : "token_quota", "is_admin must be a boolean and token_quota an integer");
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
        return http_send_error(r, SRV_MOD_SERVER, SRV_ENOTFOUND, NULL, "user not found");
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
        return http_send_error(r, SRV_MOD_SERVER, SRV_ENOTFOUND, NULL, "key not found");
    int rc = store_key_revoke(r->srv->store, r->params[0], &info);
    if (rc != 0)
        return api_store_error(r, rc, "key");
    return http_send_json(r, 200, json_pack("{s:s, s:s, s:b}", "object", "api_key.revoked",
                                            "prefix", info.prefix, "revoked", 1));
}

/* "2026-11-28" (UTC midnight) or unix seconds -> ms; false if neither. */
