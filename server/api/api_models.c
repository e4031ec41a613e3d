/* api_models.c - GET /v1/models and /v1/models/{id}: the served models with what their
 * files say (architecture, parameters, weight type, context, tokenizer, template). */
#include "api/api.h"
#include "server.h"
#include "api/oai.h"

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
                              "backend", mdl_backend_name(sm->mdl));
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
        return http_send_error(r, SRV_MOD_SERVER, SRV_ENOMODEL, "model", "model '%.64s' does not exist", r->params[0]);
    return http_send_json(r, 200, model_json(sm));
}

/* The model a body's "model" field names (default when absent); sends 404/400 else. */
const struct srv_model *api_body_model(struct http_req *r, const json_t *body)
{
    json_t *m = json_object_get(body, "model");
    if (m && !json_is_null(m) && !json_is_string(m)) {
        http_send_error(r, SRV_MOD_SERVER, SRV_ETYPE, "model", "model must be a string");
        return NULL;
    }
    const char *id = json_is_string(m) ? json_string_value(m) : NULL;
    const struct srv_model *sm = id ? srv_find_model(r->srv, id) : &r->srv->models[0];
    if (!sm)
        http_send_error(r, SRV_MOD_SERVER, SRV_ENOMODEL, "model", "model '%.64s' does not exist", id);
    return sm;
}
