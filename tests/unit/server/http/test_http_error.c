/* test_http_error.c - the one error table (server/http/http_error.c): every SRV_E* code
 * gives the HTTP status, OpenAI error type and code that OpenAI's API uses for that kind
 * of failure; every code of the other modules maps onto the right SRV_E* code; the error
 * object has exactly OpenAI's shape. The expectations are written out here, row by row,
 * from OpenAI's documented error codes, not read from the table under test. */
#include "server.h"
#include "test.h"

struct want {
    int code;
    unsigned status;
    const char *type;
    const char *oai_code; /* NULL: JSON null */
};

static const struct want server_codes[] = {
    {SRV_EJSON, 400, "invalid_request_error", "invalid_json"},
    {SRV_EINVAL, 400, "invalid_request_error", "invalid_value"},
    {SRV_ETYPE, 400, "invalid_request_error", "invalid_type"},
    {SRV_EMISSING, 400, "invalid_request_error", "missing_required_parameter"},
    {SRV_ECONTEXT, 400, "invalid_request_error", "context_length_exceeded"},
    {SRV_ETEMPLATE, 400, "invalid_request_error", "template_error"},
    {SRV_EAUTH, 401, "invalid_request_error", "invalid_api_key"},
    {SRV_EFORBIDDEN, 403, "invalid_request_error", "permission_denied"},
    {SRV_ENOTFOUND, 404, "invalid_request_error", "not_found"},
    {SRV_ENOMODEL, 404, "invalid_request_error", "model_not_found"},
    {SRV_ENOSESSION, 404, "invalid_request_error", "session_not_found"},
    {SRV_EMETHOD, 405, "invalid_request_error", "method_not_allowed"},
    {SRV_ECONFLICT, 409, "invalid_request_error", "conflict"},
    {SRV_EIDEMBUSY, 409, "invalid_request_error", "idempotency_in_progress"},
    {SRV_EIDEMREUSED, 422, "invalid_request_error", "idempotency_key_reused"},
    {SRV_ETOOLARGE, 413, "invalid_request_error", "request_too_large"},
    {SRV_EQUOTA, 429, "insufficient_quota", "insufficient_quota"},
    {SRV_EBUSY, 429, "requests", "server_busy"},
    {SRV_ERATE, 429, "requests", "rate_limit_exceeded"},
    {SRV_EHEADERS, 431, "invalid_request_error", "request_header_fields_too_large"},
    {SRV_EINTERNAL, 500, "server_error", NULL},
    {SRV_EGENERATE, 500, "server_error", "generation_failed"},
    {SRV_ESTORE, 503, "server_error", "storage_unavailable"},
};

#define N_SERVER (sizeof(server_codes) / sizeof(server_codes[0]))

static void test_every_server_code(void)
{
    /* every code of the X-macro list is covered above, and only those */
    int listed = 0;
#define COUNT_(name, value, status, type, code, param, text) listed++;
    SRV_ERRORS(COUNT_)
#undef COUNT_
    ASSERT_INT_EQ(listed, N_SERVER);
    for (size_t i = 0; i < N_SERVER; i++) {
        const struct want *w = &server_codes[i];
        struct srv_error_info e = srv_error_of(SRV_MOD_SERVER, w->code);
        ASSERT_INT_EQ(e.code, w->code);
        ASSERT_INT_EQ(e.status, w->status);
        ASSERT_STR_EQ(e.type, w->type);
        if (w->oai_code)
            ASSERT_STR_EQ(e.oai_code, w->oai_code);
        else
            ASSERT_TRUE(e.oai_code == NULL);
        ASSERT_TRUE(e.message && e.message[0]);
        ASSERT_TRUE(strcmp(srv_strerror(w->code), "unknown error") != 0);
    }
    /* an unknown code is an internal error, never a client error */
    ASSERT_INT_EQ(srv_error_of(SRV_MOD_SERVER, -999).status, 500);
    ASSERT_STR_EQ(srv_strerror(-999), "unknown error");
}

struct map_want {
    enum srv_errmod mod;
    int code;
    int srv;
};

static const struct map_want module_codes[] = {
    {SRV_MOD_STORE, STORE_ENOTFOUND, SRV_ENOTFOUND},
    {SRV_MOD_STORE, STORE_EEXISTS, SRV_ECONFLICT},
    {SRV_MOD_STORE, STORE_EINVAL, SRV_EINVAL},
    {SRV_MOD_STORE, STORE_EREVOKED, SRV_EAUTH},
    {SRV_MOD_STORE, STORE_EQUOTA, SRV_EQUOTA},
    {SRV_MOD_STORE, STORE_ENOMEM, SRV_ESTORE},
    {SRV_MOD_STORE, STORE_EBUSY, SRV_ESTORE},
    {SRV_MOD_STORE, STORE_ETOONEW, SRV_ESTORE},
    {SRV_MOD_STORE, STORE_ENOTDB, SRV_ESTORE},
    {SRV_MOD_STORE, STORE_EOVERFLOW, SRV_ESTORE},
    {SRV_MOD_STORE, STORE_ESQL, SRV_ESTORE},
    {SRV_MOD_ENGINE, ENG_EBUSY, SRV_EBUSY},
    {SRV_MOD_ENGINE, ENG_ESTOPPED, SRV_EBUSY},
    {SRV_MOD_ENGINE, ENG_ETOOLONG, SRV_ECONTEXT},
    {SRV_MOD_ENGINE, ENG_EINVAL, SRV_EINVAL},
    {SRV_MOD_ENGINE, ENG_ENOMEM, SRV_EINTERNAL},
    {SRV_MOD_TEMPLATE, TMPL_ESYNTAX, SRV_ETEMPLATE},
    {SRV_MOD_TEMPLATE, TMPL_ERAISE, SRV_ETEMPLATE},
    {SRV_MOD_TEMPLATE, TMPL_EEVAL, SRV_ETEMPLATE},
    {SRV_MOD_TEMPLATE, TMPL_ELIMIT, SRV_ETEMPLATE},
    {SRV_MOD_TEMPLATE, TMPL_ENOMEM, SRV_ETEMPLATE},
    {SRV_MOD_TOKENIZER, TOK_ERANGE, SRV_EINVAL},
    {SRV_MOD_TOKENIZER, TOK_ENOMEM, SRV_EINTERNAL},
    {SRV_MOD_TOKENIZER, TOK_EFORMAT, SRV_EINTERNAL},
    {SRV_MOD_MODEL, MDL_ENOMEM, SRV_EINTERNAL},
    {SRV_MOD_MODEL, MDL_EBACKEND, SRV_EINTERNAL},
};

static void test_module_codes(void)
{
    for (size_t i = 0; i < sizeof(module_codes) / sizeof(module_codes[0]); i++) {
        const struct map_want *w = &module_codes[i];
        struct srv_error_info e = srv_error_of(w->mod, w->code);
        if (e.code != w->srv)
            TEST_FAIL_("module %d code %d maps to %d, want %d", w->mod, w->code, e.code, w->srv);
    }
    /* a module's code is not read as a server code: STORE_ENOTFOUND (-1) is not JSON */
    ASSERT_INT_EQ(srv_error_of(SRV_MOD_STORE, -1).status, 404);
    ASSERT_INT_EQ(srv_error_of(SRV_MOD_SERVER, -1).status, 400);
}

static void test_error_object(void)
{
    json_t *j = srv_error_json(SRV_MOD_SERVER, SRV_ENOSESSION, NULL, "session 'x' not found");
    json_t *e = json_object_get(j, "error");
    ASSERT_INT_EQ(json_object_size(j), 1);
    ASSERT_INT_EQ(json_object_size(e), 4);
    ASSERT_STR_EQ(json_string_value(json_object_get(e, "message")), "session 'x' not found");
    ASSERT_STR_EQ(json_string_value(json_object_get(e, "type")), "invalid_request_error");
    ASSERT_STR_EQ(json_string_value(json_object_get(e, "param")), "session_id"); /* the default */
    ASSERT_STR_EQ(json_string_value(json_object_get(e, "code")), "session_not_found");
    json_decref(j);
    /* an explicit param wins; a NULL message takes the code's text; a NULL code is null */
    j = srv_error_json(SRV_MOD_SERVER, SRV_EINTERNAL, "tokens", NULL);
    e = json_object_get(j, "error");
    ASSERT_STR_EQ(json_string_value(json_object_get(e, "param")), "tokens");
    ASSERT_STR_EQ(json_string_value(json_object_get(e, "message")), srv_strerror(SRV_EINTERNAL));
    ASSERT_TRUE(json_is_null(json_object_get(e, "code")));
    json_decref(j);
    /* a message that is not valid UTF-8 (it may quote user input) still gives an object */
    j = srv_error_json(SRV_MOD_SERVER, SRV_EINVAL, NULL, "bad \xff value");
    e = json_object_get(j, "error");
    ASSERT_TRUE(json_is_string(json_object_get(e, "message")));
    ASSERT_TRUE(json_is_null(json_object_get(e, "param")));
    json_decref(j);
}

int main(void)
{
    RUN(test_every_server_code);
    RUN(test_module_codes);
    RUN(test_error_object);
    return TEST_DONE();
}
