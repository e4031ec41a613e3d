/* server.h - what every part of server/ shares (private to server/): the running
 * server's state (struct srv), the models it serves (models.c), per-user meters and quota
 * reservations (serve.c), logging (log.c) and small helpers (util.c).
 *
 * server/ sees the model through model/model.h and the database through
 * storage/store.h only; its sub-folders are http/ (libmicrohttpd glue, routing, auth,
 * errors), api/ (one file per endpoint family), gen/ (the chat pipeline) and cli/ (every
 * `chatd <command>`). */
#ifndef CHATD_SERVER_H
#define CHATD_SERVER_H

#include "config.h"
#include "model.h"
#include "store.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct http_req;
struct http_route;
struct MHD_Daemon;

/* ---- errors (http/http_error.c) ----
 *
 * What a request can fail with, one list for server/: name, value, HTTP status, OpenAI
 * error type, OpenAI error code, default param, message. Every handler and every step of
 * the chat pipeline returns one of these (or a code of another module, which
 * http_error_of maps onto this list); callers test codes, never message text. */
#define SRV_ERRORS(X)                                                                              \
    X(SRV_EJSON, -1, 400, "invalid_request_error", "invalid_json", NULL,                           \
      "the request body is not a JSON object")                                                     \
    X(SRV_EINVAL, -2, 400, "invalid_request_error", "invalid_value", NULL,                         \
      "invalid parameter value")                                                                   \
    X(SRV_ETYPE, -3, 400, "invalid_request_error", "invalid_type", NULL,                           \
      "parameter of the wrong type")                                                               \
    X(SRV_EMISSING, -22, 400, "invalid_request_error", "missing_required_parameter", NULL,         \
      "a required parameter is missing")                                                           \
    X(SRV_ECONTEXT, -4, 400, "invalid_request_error", "context_length_exceeded", "messages",       \
      "the prompt does not fit the model's context")                                               \
    X(SRV_ETEMPLATE, -5, 400, "invalid_request_error", "template_error", "messages",               \
      "the chat template failed")                                                                  \
    X(SRV_EAUTH, -6, 401, "invalid_request_error", "invalid_api_key", NULL,                        \
      "missing, unknown or revoked API key")                                                       \
    X(SRV_EFORBIDDEN, -7, 403, "invalid_request_error", "permission_denied", NULL,                 \
      "not allowed for this key")                                                                  \
    X(SRV_ENOTFOUND, -8, 404, "invalid_request_error", "not_found", NULL, "not found")             \
    X(SRV_ENOMODEL, -9, 404, "invalid_request_error", "model_not_found", "model",                  \
      "model not found")                                                                           \
    X(SRV_ENOSESSION, -10, 404, "invalid_request_error", "session_not_found", "session_id",        \
      "session not found")                                                                         \
    X(SRV_EMETHOD, -11, 405, "invalid_request_error", "method_not_allowed", NULL,                  \
      "method not allowed")                                                                        \
    X(SRV_ECONFLICT, -12, 409, "invalid_request_error", "conflict", NULL, "already exists")        \
    X(SRV_EIDEMBUSY, -13, 409, "invalid_request_error", "idempotency_in_progress", NULL,           \
      "a request with this Idempotency-Key is still running or did not complete")                  \
    X(SRV_EIDEMREUSED, -23, 422, "invalid_request_error", "idempotency_key_reused", NULL,          \
      "this Idempotency-Key was used with another request body")                                   \
    X(SRV_ETOOLARGE, -14, 413, "invalid_request_error", "request_too_large", NULL,                 \
      "request body too large")                                                                    \
    X(SRV_EQUOTA, -15, 429, "insufficient_quota", "insufficient_quota", NULL,                      \
      "monthly token quota exceeded")                                                              \
    X(SRV_EBUSY, -16, 429, "requests", "server_busy", NULL,                                        \
      "all generation slots are busy and the queue is full; retry shortly")                        \
    X(SRV_ERATE, -17, 429, "requests", "rate_limit_exceeded", NULL, "rate limit exceeded")         \
    X(SRV_EHEADERS, -18, 431, "invalid_request_error", "request_header_fields_too_large", NULL,    \
      "request headers too large")                                                                 \
    X(SRV_EINTERNAL, -19, 500, "server_error", NULL, NULL, "internal error")                       \
    X(SRV_EGENERATE, -20, 500, "server_error", "generation_failed", NULL, "generation failed")     \
    X(SRV_ESTORE, -21, 503, "server_error", "storage_unavailable", NULL,                           \
      "the database is unavailable")

enum srv_error {
#define SRV_ERR_ENUM_(name, value, status, type, code, param, text) name = value,
    SRV_ERRORS(SRV_ERR_ENUM_)
#undef SRV_ERR_ENUM_
};

/* The module a code comes from: the same number means different things in each. */
enum srv_errmod {
    SRV_MOD_SERVER,    /* SRV_E* */
    SRV_MOD_STORE,     /* STORE_E* */
    SRV_MOD_ENGINE,    /* ENG_E* */
    SRV_MOD_TEMPLATE,  /* TMPL_E* */
    SRV_MOD_TOKENIZER, /* TOK_E* */
    SRV_MOD_MODEL,     /* MDL_E* */
};

/* What the client is told for a module's code. */
struct srv_error_info {
    int code;            /* the SRV_E* code it maps to */
    unsigned status;     /* HTTP status */
    const char *type;    /* OpenAI error type */
    const char *oai_code; /* OpenAI error code, or NULL */
    const char *param;   /* default param, or NULL */
    const char *message; /* default message */
};

/* The one mapping from any module's error code to HTTP status, OpenAI type, code and
 * param. An unknown code maps to SRV_EINTERNAL. */
struct srv_error_info srv_error_of(enum srv_errmod mod, int code);
/* Static text of an SRV_E* code; "unknown error" otherwise. */
const char *srv_strerror(int code);
/* OpenAI's {"error": {"message", "type", "param", "code"}} for a code; param NULL takes
 * the code's default, message NULL its text. New reference. */
json_t *srv_error_json(enum srv_errmod mod, int code, const char *param, const char *message);

/* ---- logging (log.c): one-line events to stderr, "2026-11-28T17:20:01.123Z info
 * key=value ...". Thread-safe (one write per line); the level is checked before
 * formatting. ---- */

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

extern enum log_level log_min_level;

/* Sets the level from its name ("debug", "info", "warn", "error"); returns -1 if unknown. */
int log_set_level(const char *name);
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vwrite(enum log_level level, const char *fmt, va_list ap);

#define log_debug(...) (log_min_level <= LOG_DEBUG ? log_write(LOG_DEBUG, __VA_ARGS__) : (void)0)
#define log_info(...) (log_min_level <= LOG_INFO ? log_write(LOG_INFO, __VA_ARGS__) : (void)0)
#define log_warn(...) (log_min_level <= LOG_WARN ? log_write(LOG_WARN, __VA_ARGS__) : (void)0)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

/* ---- served models (models.c): each is a model file with its tokenizer, chat template
 * and generation engine. Loaded at start-up, read-only afterwards except inside the
 * engine. ---- */

struct srv_model {
    char id[128];
    char path[1024];
    struct mdl_model *mdl;
    struct mdl_model *draft;     /* speculative decoding's draft model, or NULL */
    const struct tok_vocab *tok; /* the model's own (model.h) */
    struct tmpl *tmpl;
    char template_name[64];  /* "gguf" or the built-in's name */
    char *bos_text;          /* "" when none */
    char *eos_text;
    char fingerprint[96];    /* model file + template: stored with every turn's tokens */
    bool thinks;             /* the rendered generation prompt opens a <think> block */
    int tool_format;         /* enum gen_tool_fmt of the template (or the tool_format option) */
    bool tool_args_string;   /* the template wants tool-call arguments as JSON text */
    struct gram_vocab *gram_vocab; /* the tokens for constrained decoding */
    struct engine *eng;
    int64_t created;         /* file mtime, for /v1/models */
};

/* Opens the model, its tokenizer and template, and starts its engine. Returns 0, or -1
 * with a message in err. */
int srv_model_open(struct srv_model *sm, const char *path, const char *id,
                   const struct chatd_config *cfg, char *err, size_t err_len);
void srv_model_close(struct srv_model *sm);

/* A rendered prompt: the text and the spans of it that hold message text. */
struct srv_prompt {
    char *text;
    struct tok_span *plain; /* from tmpl_render_spans */
    size_t n_plain;
};

/* Renders messages (and the request's tools: JSON array text, NULL for none) with the
 * model's template into p (free with srv_prompt_fini). Returns 0, or a TMPL_E* code with
 * the template's message in err. */
int srv_model_render(const struct srv_model *sm, const struct tmpl_message *msgs, size_t n,
                     const char *tools_json, bool add_generation_prompt, struct srv_prompt *p,
                     char *err, size_t err_len);
void srv_prompt_fini(struct srv_prompt *p);

/* Tokenizes a rendered prompt (tok_encode_prompt): no control token is read inside the
 * text that came from the request (message contents, tools, tool calls), so a user
 * cannot inject one. Returns 0 or a negative TOK_E* code. */
int srv_model_tokenize(const struct srv_model *sm, const struct srv_prompt *p, int32_t **ids,
                       size_t *n_ids);

/* ---- the running server (serve.c) ---- */

#define SRV_MAX_METER_USERS 256

/* Per-user counters for /metrics (since start). */
struct srv_meter {
    int64_t user_id;
    uint64_t requests;
    uint64_t input_hit;
    uint64_t input_miss;
    uint64_t output;
    uint64_t reasoning;
    int64_t cost_micros;
};

struct srv {
    const struct chatd_config *cfg;
    struct store *store;
    int64_t local_user_id; /* the user of open auth */
    struct srv_model *models;
    int n_models;
    struct MHD_Daemon *daemon;
    time_t started;
    atomic_bool stopping;
    /* metrics */
    atomic_ullong n_requests;
    atomic_ullong n_errors; /* status >= 400 */
    atomic_ullong n_prompt_renders;  /* chat templates rendered to build prompts */
    atomic_ullong n_history_loaded;  /* stored messages loaded to build prompts */
    pthread_mutex_t meter_mu;
    struct srv_meter meters[SRV_MAX_METER_USERS];
    int n_meters;
};

/* The auth step for a route that needs it: sets r->user_id / is_admin, or sends 401/403
 * and returns -1. */
int srv_authenticate(struct http_req *r, bool admin_only);
void srv_count_request(struct srv *s, unsigned status);

/* A served model by id, or NULL. The first model is the default. */
const struct srv_model *srv_find_model(const struct srv *s, const char *id);
const char *srv_default_model_id(const struct srv *s);


/* Adds a stored usage row to the user's /metrics counters. */
void srv_meter_add(struct srv *s, int64_t user_id, const struct store_usage *u);

/* Copies len bytes as valid UTF-8 (invalid bytes and NUL become U+FFFD). Caller frees. */
char *srv_utf8_sanitize(const char *s, size_t len, size_t *out_len);

#endif
