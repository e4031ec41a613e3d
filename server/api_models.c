/* api_models.c - model-facing endpoints that do not generate: /v1/models, /tokenize,
 * /detokenize, /v1/tokens/count, /apply-template, and the Prometheus /metrics page. */
#include "api.h"
#include "models.h"
#include "oai.h"
#include "srv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *model_json(const struct srv_model *sm)
{
    const struct mdl_hparams *hp = mdl_hparams(sm->mdl);
    json_t *extra = json_pack("{s:s, s:I, s:s, s:I, s:I, s:s, s:s, s:b, s:s}", "architecture",
                              mdl_arch_name(sm->mdl), "parameters", (json_int_t)mdl_n_params(sm->mdl),
                              "weight_type", mdl_weight_type(sm->mdl), "context_length",
                              (json_int_t)mdl_n_ctx(sm->mdl), "n_ctx_train",
                              (json_int_t)hp->n_ctx_train, "tokenizer", tok_kind_name(sm->tok),
                              "chat_template", sm->template_name, "reasoning", sm->thinks,
                              "backend", mdl_backend_ops(sm->mdl)->name);
    json_object_set_new(extra, "file_size", json_integer((json_int_t)mdl_file_size(sm->mdl)));
    return json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", sm->id, "object", "model", "created",
                     (json_int_t)sm->created, "owned_by", "chatd", "chatd", extra);
}

int api_models(struct http_req *r)
{
    json_t *data = json_array();
    for (int i = 0; i < r->srv->n_models; i++)
        json_array_append_new(data, model_json(&r->srv->models[i]));
    return http_send_json(r, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

int api_model_get(struct http_req *r)
{
    const struct srv_model *sm = srv_find_model(r->srv, r->params[0]);
    if (!sm)
        return http_send_error(r, 404, "invalid_request_error", "model", "model_not_found",
                               "model '%.64s' does not exist", r->params[0]);
    return http_send_json(r, 200, model_json(sm));
}

/* The model a body's "model" field names (default when absent); sends 404/400 else. */
const struct srv_model *api_body_model(struct http_req *r, const json_t *body)
{
    json_t *m = json_object_get(body, "model");
    if (m && !json_is_null(m) && !json_is_string(m)) {
        http_send_error(r, 400, "invalid_request_error", "model", "invalid_type",
                        "model must be a string");
        return NULL;
    }
    const char *id = json_is_string(m) ? json_string_value(m) : NULL;
    const struct srv_model *sm = id ? srv_find_model(r->srv, id) : &r->srv->models[0];
    if (!sm)
        http_send_error(r, 404, "invalid_request_error", "model", "model_not_found",
                        "model '%.64s' does not exist", id);
    return sm;
}

int api_tokenize(struct http_req *r)
{
    json_t *body = http_body_json(r);
    if (!body)
        return 0;
    const struct srv_model *sm = api_body_model(r, body);
    json_t *content = json_object_get(body, "content");
    if (!sm)
        goto out;
    if (!json_is_string(content)) {
        http_send_error(r, 400, "invalid_request_error", "content", "invalid_type",
                        "content must be a string");
        goto out;
    }
    json_t *aso = json_object_get(body, "add_special"), *ps = json_object_get(body, "parse_special");
    int32_t *ids;
    size_t n;
    if (tok_encode(sm->tok, json_string_value(content), json_string_length(content),
                   json_is_true(aso), json_is_true(ps), &ids, &n) != 0) {
        http_send_error(r, 500, "server_error", NULL, NULL, "tokenizer failed");
        goto out;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_integer(ids[i]));
    free(ids);
    http_send_json(r, 200, json_pack("{s:o, s:I}", "tokens", arr, "count", (json_int_t)n));
out:
    json_decref(body);
    return 0;
}

int api_detokenize(struct http_req *r)
{
    json_t *body = http_body_json(r);
    if (!body)
        return 0;
    const struct srv_model *sm = api_body_model(r, body);
    json_t *tokens = json_object_get(body, "tokens");
    int32_t *ids = NULL;
    if (!sm)
        goto out;
    if (!json_is_array(tokens) || json_array_size(tokens) > (1u << 20)) {
        http_send_error(r, 400, "invalid_request_error", "tokens", "invalid_type",
                        "tokens must be an array of token ids");
        goto out;
    }
    size_t n = json_array_size(tokens), i;
    json_t *t;
    ids = malloc((n + 1) * sizeof(*ids));
    if (!ids) {
        http_send_error(r, 500, "server_error", NULL, NULL, "out of memory");
        goto out;
    }
    json_array_foreach(tokens, i, t) {
        json_int_t v = json_is_integer(t) ? json_integer_value(t) : -1;
        if (!json_is_integer(t) || v < 0 || v >= (json_int_t)tok_n_vocab(sm->tok)) {
            http_send_error(r, 400, "invalid_request_error", "tokens", "invalid_value",
                            "tokens[%zu] is not a token id in [0, %d)", i, tok_n_vocab(sm->tok));
            goto out;
        }
        ids[i] = (int32_t)v;
    }
    char *text;
    size_t len;
    if (tok_decode(sm->tok, ids, n, 0, &text, &len) != 0) {
        http_send_error(r, 500, "server_error", NULL, NULL, "detokenizer failed");
        goto out;
    }
    /* Decoded bytes may end inside a character or be invalid: make them valid UTF-8. */
    char *clean = srv_utf8_sanitize(text, len, &len);
    free(text);
    http_send_json(r, 200, json_pack("{s:s%}", "content", clean ? clean : "", len));
    free(clean);
out:
    free(ids);
    json_decref(body);
    return 0;
}
