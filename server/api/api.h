/* api.h - HTTP handlers (private to server/). Each sends exactly one response. */
#ifndef CHATD_API_H
#define CHATD_API_H

#include "http/http.h"

struct srv_model;
struct store_session;
struct store_message;
struct store_usage;
struct store_usage_total;

int api_health(struct http_req *r);
int api_static(struct http_req *r);
int api_metrics(struct http_req *r);

int api_models(struct http_req *r);
int api_model_get(struct http_req *r);
int api_tokenize(struct http_req *r);
int api_detokenize(struct http_req *r);
int api_chat(struct http_req *r);
int api_completions(struct http_req *r);
int api_tokens_count(struct http_req *r);
int api_usage_quote(struct http_req *r);
int api_apply_template(struct http_req *r);

int api_session_create(struct http_req *r);
int api_session_list(struct http_req *r);
int api_session_get(struct http_req *r);
int api_session_messages(struct http_req *r);
int api_session_update(struct http_req *r);
int api_session_delete(struct http_req *r);

int api_usage(struct http_req *r);
int api_admin_user_add(struct http_req *r);
int api_admin_user_list(struct http_req *r);
int api_admin_key_create(struct http_req *r);
int api_admin_key_revoke(struct http_req *r);

/* Shared helpers. */
int api_store_error(struct http_req *r, int rc, const char *what);
const struct srv_model *api_body_model(struct http_req *r, const json_t *body);
json_t *api_session_json(const struct store_session *s);
json_t *api_message_json(const struct store_message *m);
json_t *api_usage_row_json(const struct store_usage *u);
json_t *api_usage_total_json(const struct store_usage_total *t);

#endif
