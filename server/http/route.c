/* route.c - the table of every HTTP endpoint chatd serves. http.c matches a request
 * against it in order: the first pattern that matches the path and method wins; a path
 * that matches with another method answers 405. The last two flags are: needs an
 * authenticated caller, and needs an admin. */
#include "api/api.h"
#include "server.h"

const struct http_route srv_routes[] = {
    {"GET", "/health", api_health, false, false},
    {"GET", "/metrics", api_metrics, true, true},
    {"GET", "/v1/models", api_models, true, false},
    {"GET", "/v1/models/{id}", api_model_get, true, false},
    {"POST", "/v1/chat/completions", api_chat, true, false},
    {"POST", "/v1/completions", api_completions, true, false},
    {"POST", "/v1/tokens/count", api_tokens_count, true, false},
    {"POST", "/tokenize", api_tokenize, true, false},
    {"POST", "/detokenize", api_detokenize, true, false},
    {"POST", "/apply-template", api_apply_template, true, false},
    {"POST", "/v1/sessions", api_session_create, true, false},
    {"GET", "/v1/sessions", api_session_list, true, false},
    {"GET", "/v1/sessions/{id}", api_session_get, true, false},
    {"PATCH", "/v1/sessions/{id}", api_session_update, true, false},
    {"DELETE", "/v1/sessions/{id}", api_session_delete, true, false},
    {"GET", "/v1/sessions/{id}/messages", api_session_messages, true, false},
    {"GET", "/v1/usage", api_usage, true, false},
    {"POST", "/v1/usage/quote", api_usage_quote, true, false},
    {"POST", "/admin/users", api_admin_user_add, true, true},
    {"GET", "/admin/users", api_admin_user_list, true, true},
    {"POST", "/admin/users/{id}/keys", api_admin_key_create, true, true},
    {"DELETE", "/admin/keys/{prefix}", api_admin_key_revoke, true, true},
    {"GET", "/", api_static, false, false},
    {"GET", "/{file}", api_static, false, false},
    {NULL, NULL, NULL, false, false},
};
