/* http_error.c - the one table from error codes to what the client is told.
 *
 * Every module keeps its own X-macro list of codes (STORE_ERRNO_MAP, ENG_ERRORS,
 * TMPL_ERRORS, TOK_ERRORS, MDL_ERRORS, and SRV_ERRORS for server/ itself). The codes of
 * the other modules are first mapped onto SRV_E* codes here; the SRV_ERRORS row then
 * gives the HTTP status, OpenAI error type, code and default param. Pure functions,
 * called from any thread. */
#include "http/http.h"
#include "server.h"

#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

static const struct srv_error_info srv_rows[] = {
#define SRV_ERR_ROW_(name, value, status, type, code, param, text)                                 \
    {value, status, type, code, param, text},
    SRV_ERRORS(SRV_ERR_ROW_)
#undef SRV_ERR_ROW_
};

/* A module's code and the SRV_E* code it means for a client. */
struct err_map {
    enum srv_errmod mod;
    int code;
    int srv;
};

/* Codes not listed map to SRV_EINTERNAL, except storage codes (SRV_ESTORE) and template
 * codes (SRV_ETEMPLATE): a database that fails or a template that fails is that, whatever
 * the detail. */
static const struct err_map maps[] = {
    {SRV_MOD_STORE, STORE_ENOTFOUND, SRV_ENOTFOUND},
    {SRV_MOD_STORE, STORE_EEXISTS, SRV_ECONFLICT},
    {SRV_MOD_STORE, STORE_EINVAL, SRV_EINVAL},
    {SRV_MOD_STORE, STORE_EREVOKED, SRV_EAUTH},
    {SRV_MOD_STORE, STORE_EQUOTA, SRV_EQUOTA},
    {SRV_MOD_ENGINE, ENG_EBUSY, SRV_EBUSY},
    {SRV_MOD_ENGINE, ENG_ESTOPPED, SRV_EBUSY},
    {SRV_MOD_ENGINE, ENG_ETOOLONG, SRV_ECONTEXT},
    {SRV_MOD_ENGINE, ENG_EINVAL, SRV_EINVAL},
    {SRV_MOD_TOKENIZER, TOK_ERANGE, SRV_EINVAL},
};

static int to_srv(enum srv_errmod mod, int code)
{
    if (mod == SRV_MOD_SERVER)
        return code;
    for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++)
        if (maps[i].mod == mod && maps[i].code == code)
            return maps[i].srv;
    if (mod == SRV_MOD_STORE)
        return SRV_ESTORE;
    if (mod == SRV_MOD_TEMPLATE)
        return SRV_ETEMPLATE;
    return SRV_EINTERNAL;
}

struct srv_error_info srv_error_of(enum srv_errmod mod, int code)
{
    int srv = to_srv(mod, code);
    for (size_t i = 0; i < sizeof(srv_rows) / sizeof(srv_rows[0]); i++)
        if (srv_rows[i].code == srv)
            return srv_rows[i];
    return srv_error_of(SRV_MOD_SERVER, SRV_EINTERNAL);
}

const char *srv_strerror(int code)
{
    for (size_t i = 0; i < sizeof(srv_rows) / sizeof(srv_rows[0]); i++)
        if (srv_rows[i].code == code)
            return srv_rows[i].message;
    return "unknown error";
}

json_t *srv_error_json(enum srv_errmod mod, int code, const char *param, const char *message)
{
    struct srv_error_info e = srv_error_of(mod, code);
    param = param ? param : e.param;
    /* The message may quote user input; jansson refuses invalid UTF-8, so fall back. */
    json_t *m = json_string(message ? message : e.message);
    json_t *err = json_object();
    json_object_set_new(err, "message", m ? m : json_string(e.message));
    json_object_set_new(err, "type", json_string(e.type));
    json_object_set_new(err, "param", param ? json_string(param) : json_null());
    json_object_set_new(err, "code", e.oai_code ? json_string(e.oai_code) : json_null());
    return json_pack("{s:o}", "error", err);
}

int http_send_error(struct http_req *r, enum srv_errmod mod, int code, const char *param,
                    const char *fmt, ...)
{
    char msg[1024];
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
    }
    struct srv_error_info e = srv_error_of(mod, code);
    bool retry_set = false;
    for (int i = 0; i < r->n_hdr; i++)
        retry_set |= r->hdr_name[i] && strcasecmp(r->hdr_name[i], "Retry-After") == 0;
    if (!retry_set && (e.code == SRV_EQUOTA || e.code == SRV_EBUSY || e.code == SRV_ERATE))
        http_add_header(r, "Retry-After", e.code == SRV_EQUOTA ? "3600" : "2");
    return http_send_json(r, e.status, srv_error_json(mod, code, param, fmt ? msg : NULL));
}
