/* api_tokenize.c - the token endpoints: /tokenize and /detokenize (text <-> ids),
 * /v1/tokens/count (what a conversation costs in tokens before it is sent) and
 * /apply-template (the rendered prompt). Nothing here generates or stores. */
#include "api/api.h"
#include "api/oai.h"
#include "gen/gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        http_send_error(r, SRV_MOD_SERVER, SRV_ETYPE, "content", "content must be a string");
        goto out;
    }
    json_t *aso = json_object_get(body, "add_special"), *ps = json_object_get(body, "parse_special");
    int32_t *ids;
    size_t n;
    if (tok_encode(sm->tok, json_string_value(content), json_string_length(content),
                   json_is_true(aso), json_is_true(ps), &ids, &n) != 0) {
        http_send_error(r, SRV_MOD_SERVER, SRV_EINTERNAL, NULL, "tokenizer failed");
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
        http_send_error(r, SRV_MOD_SERVER, SRV_ETYPE, "tokens", "tokens must be an array of token ids");
        goto out;
    }
    size_t n = json_array_size(tokens), i;
    json_t *t;
    ids = malloc((n + 1) * sizeof(*ids));
    if (!ids) {
        http_send_error(r, SRV_MOD_SERVER, SRV_EINTERNAL, NULL, "out of memory");
        goto out;
    }
    json_array_foreach(tokens, i, t) {
        json_int_t v = json_is_integer(t) ? json_integer_value(t) : -1;
        if (!json_is_integer(t) || v < 0 || v >= (json_int_t)tok_n_vocab(sm->tok)) {
            http_send_error(r, SRV_MOD_SERVER, SRV_EINVAL, "tokens", "tokens[%zu] is not a token id in [0, %d)", i, tok_n_vocab(sm->tok));
            goto out;
        }
        ids[i] = (int32_t)v;
    }
    char *text;
    size_t len;
    if (tok_decode(sm->tok, ids, n, 0, &text, &len) != 0) {
        http_send_error(r, SRV_MOD_SERVER, SRV_EINTERNAL, NULL, "detokenizer failed");
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

int api_tokens_count(struct http_req *r)
{
    return gen_count(r, false);
}

int api_apply_template(struct http_req *r)
{
    json_t *body = http_body_json(r);
    if (!body)
        return 0;
    const struct srv_model *sm = api_body_model(r, body);
    if (!sm) {
        json_decref(body);
        return 0;
    }
    struct oai_request q;
    struct oai_error e;
    oai_request_init(&q);
    if (oai_parse_messages(json_object_get(body, "messages"), &q, &e) != 0) {
        json_decref(body);
        oai_request_fini(&q);
        return http_send_error(r, SRV_MOD_SERVER, e.code, e.param, "%s", e.message);
    }
    json_t *agp = json_object_get(body, "add_generation_prompt");
    bool add_gen = !agp || json_is_true(agp);
    json_decref(body);
    struct tmpl_message *m = calloc(q.n_msgs + 1, sizeof(*m));
    for (size_t i = 0; m && i < q.n_msgs; i++)
        m[i] = (struct tmpl_message){.role = q.msgs[i].role, .content = q.msgs[i].content};
    char err[256];
    struct srv_prompt pr = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = m ? srv_model_render(sm, m, q.n_msgs, NULL, add_gen, &pr, err, sizeof(err)) : 0;
    if (!m)
        rc = http_send_error(r, SRV_MOD_SERVER, SRV_EINTERNAL, NULL, "out of memory");
    else if (rc != 0)
        rc = http_send_error(r, SRV_MOD_TEMPLATE, rc, "messages", "the chat template failed: %s", err);
    else if ((rc = srv_model_tokenize(sm, &pr, &ids, &n)) != 0)
        rc = http_send_error(r, SRV_MOD_TOKENIZER, rc, NULL, "tokenizer failed");
    else
        rc = http_send_json(r, 200, json_pack("{s:s, s:I, s:s}", "prompt", pr.text, "prompt_tokens",
                                              (json_int_t)n, "template", sm->template_name));
    free(ids);
    srv_prompt_fini(&pr);
    free(m);
    oai_request_fini(&q);
    return rc;
}
