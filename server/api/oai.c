/* oai.c - parses and validates OpenAI chat/completions request bodies. Every field is
 * checked for type and range before anything else runs; the first problem found is
 * reported with the JSON path of the parameter (OpenAI's `param`). Unknown fields are
 * ignored, as OpenAI does. Runs on connection threads; no shared state. */
#include "api/oai.h"
#include "server.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void oai_request_init(struct oai_request *q)
{
    memset(q, 0, sizeof(*q));
    q->max_tokens = -1;
    q->temperature = 1.0;
    q->top_p = 1.0;
    q->repetition_penalty = 1.0;
    q->reasoning_split = true;
    q->max_reasoning_tokens = -1;
}

void oai_request_fini(struct oai_request *q)
{
    for (size_t i = 0; i < q->n_msgs; i++) {
        free(q->msgs[i].role);
        free(q->msgs[i].content);
        free(q->msgs[i].tool_calls);
        free(q->msgs[i].tool_call_id);
        free(q->msgs[i].name);
    }
    oai_tools_fini(q);
    free(q->msgs);
    for (size_t i = 0; i < q->n_stop; i++)
        free(q->stop[i]);
    free(q->model);
    free(q->prompt);
    free(q->bias);
    free(q->user);
    free(q->session_id);
    memset(q, 0, sizeof(*q));
}

/* fail: the one error setter of request parsing (oai_tools.c uses it too) */
#define fail oai_fail

int oai_fail(struct oai_error *e, const char *param, int code, const char *fmt, ...)
{
    e->code = code;
    snprintf(e->param, sizeof(e->param), "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return -1;
}

bool oai_valid_id(const char *s, size_t max_len)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max_len || strcmp(s, ".") == 0 || strcmp(s, "..") == 0 || strstr(s, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-' || c == ':';
        if (!ok)
            return false;
    }
    return true;
}

/* ---- typed field readers: absent or null leaves *out untouched ---- */

static int get_number(const json_t *body, const char *key, double lo, double hi, double *out,
                      struct oai_error *e)
{
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v))
        return fail(e, key, SRV_ETYPE, "%s must be a number", key);
    double d = json_number_value(v);
    if (!isfinite(d) || d < lo || d > hi)
        return fail(e, key, SRV_EINVAL, "%s must be between %g and %g, got %g", key, lo, hi, d);
    *out = d;
    return 0;
}

static int get_int(const json_t *body, const char *key, int64_t lo, int64_t hi, int64_t *out,
                   struct oai_error *e)
{
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v))
        return 0;
    if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
        fabs(json_real_value(v)) < 9e15) {
        *out = (int64_t)json_real_value(v);
    } else if (json_is_integer(v)) {
        *out = json_integer_value(v);
    } else {
        return fail(e, key, SRV_ETYPE, "%s must be an integer", key);
    }
    if (*out < lo || *out > hi)
        return fail(e, key, SRV_EINVAL, "%s must be between %lld and %lld, got %lld", key,
                    (long long)lo, (long long)hi, (long long)*out);
    return 0;
}

static int get_bool(const json_t *body, const char *key, bool *out, struct oai_error *e)
{
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return fail(e, key, SRV_ETYPE, "%s must be a boolean", key);
    *out = json_is_true(v);
    return 0;
}

static int get_string(const json_t *body, const char *key, size_t max_len, char **out,
                      struct oai_error *e)
{
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return fail(e, key, SRV_ETYPE, "%s must be a string", key);
    if (json_string_length(v) > max_len)
        return fail(e, key, SRV_EINVAL, "%s is longer than %zu bytes", key, max_len);
    free(*out);
    *out = strdup(json_string_value(v));
    return *out ? 0 : fail(e, key, SRV_EINTERNAL, "out of memory");
}

/* ---- messages ---- */

/* Joins the text parts of a content array; any other part type is refused. */
static int content_parts(const json_t *arr, size_t mi, char **out, struct oai_error *e)
{
    size_t total = 0, i;
    json_t *part;
    char param[64];
    json_array_foreach(arr, i, part) {
        snprintf(param, sizeof(param), "messages[%zu].content[%zu]", mi, i);
        json_t *type = json_object_get(part, "type");
        if (!json_is_object(part) || !json_is_string(type))
            return fail(e, param, SRV_ETYPE, "%s must be an object with a string 'type'", param);
        if (strcmp(json_string_value(type), "text") != 0) {
            snprintf(param, sizeof(param), "messages[%zu].content[%zu].type", mi, i);
            return fail(e, param, SRV_EINVAL,
                        "content part type '%.40s' is not supported (only 'text')",
                        json_string_value(type));
        }
        json_t *text = json_object_get(part, "text");
        if (!json_is_string(text)) {
            snprintf(param, sizeof(param), "messages[%zu].content[%zu].text", mi, i);
            return fail(e, param, SRV_ETYPE, "%s must be a string", param);
        }
        total += json_string_length(text);
    }
    char *s = malloc(total + 1);
    if (!s)
        return fail(e, "messages", SRV_EINTERNAL, "out of memory");
    size_t n = 0;
    json_array_foreach(arr, i, part) {
        json_t *text = json_object_get(part, "text");
        memcpy(s + n, json_string_value(text), json_string_length(text));
        n += json_string_length(text);
    }
    s[n] = 0;
    *out = s;
    return 0;
}

static int parse_message(const json_t *m, size_t i, struct oai_message *out, struct oai_error *e)
{
    char param[64];
    snprintf(param, sizeof(param), "messages[%zu]", i);
    if (!json_is_object(m))
        return fail(e, param, SRV_ETYPE, "%s must be an object", param);
    json_t *role = json_object_get(m, "role");
    snprintf(param, sizeof(param), "messages[%zu].role", i);
    if (!json_is_string(role))
        return fail(e, param, SRV_ETYPE, "%s must be a string", param);
    const char *r = json_string_value(role);
    if (strcmp(r, "developer") == 0)
        r = "system";
    if (strcmp(r, "system") != 0 && strcmp(r, "user") != 0 && strcmp(r, "assistant") != 0 &&
        strcmp(r, "tool") != 0)
        return fail(e, param, SRV_EINVAL,
                    "%s must be one of system, developer, user, assistant, tool", param);
    if (oai_parse_message_tools(m, i, r, out, e) != 0)
        return -1;
    json_t *content = json_object_get(m, "content");
    snprintf(param, sizeof(param), "messages[%zu].content", i);
    out->role = strdup(r);
    if (json_is_string(content)) {
        out->content = strdup(json_string_value(content));
    } else if (json_is_array(content)) {
        if (content_parts(content, i, &out->content, e) != 0)
            return -1;
    } else if ((json_is_null(content) || (!content && out->tool_calls)) &&
               strcmp(r, "assistant") == 0) {
        out->content = strdup("");
    } else {
        return fail(e, param, SRV_ETYPE, "%s must be a string or an array of text parts",
                    param);
    }
    if (!out->role || !out->content)
        return fail(e, param, SRV_EINTERNAL, "out of memory");
    return 0;
}

int oai_parse_messages(const json_t *msgs, struct oai_request *q, struct oai_error *e)
{
    if (!msgs)
        return fail(e, "messages", SRV_EMISSING, "messages is required");
    if (!json_is_array(msgs))
        return fail(e, "messages", SRV_ETYPE, "messages must be an array");
    size_t n = json_array_size(msgs);
    if (n == 0)
        return fail(e, "messages", SRV_EINVAL, "messages must not be empty");
    if (n > OAI_MAX_MESSAGES)
        return fail(e, "messages", SRV_EINVAL, "messages has %zu entries; at most %d allowed",
                    n, OAI_MAX_MESSAGES);
    q->msgs = calloc(n, sizeof(*q->msgs));
    if (!q->msgs)
        return fail(e, "messages", SRV_EINTERNAL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        q->n_msgs = i + 1;
        if (parse_message(json_array_get(msgs, i), i, &q->msgs[i], e) != 0)
            return -1;
    }
    return 0;
}

/* ---- the rest of the body ---- */

static int parse_stop(const json_t *body, struct oai_request *q, struct oai_error *e)
{
    json_t *v = json_object_get(body, "stop");
    if (!v || json_is_null(v))
        return 0;
    if (json_is_string(v)) {
        if (json_string_length(v) == 0)
            return 0;
        if (json_string_length(v) > 256)
            return fail(e, "stop", SRV_EINVAL, "stop is longer than 256 bytes");
        if (!(q->stop[q->n_stop] = strdup(json_string_value(v))))
            return fail(e, "stop", SRV_EINTERNAL, "out of memory");
        q->n_stop++;
        return 0;
    }
    if (!json_is_array(v))
        return fail(e, "stop", SRV_ETYPE, "stop must be a string or an array of strings");
    if (json_array_size(v) > OAI_MAX_STOP)
        return fail(e, "stop", SRV_EINVAL, "stop has %zu entries; at most %d allowed",
                    json_array_size(v), OAI_MAX_STOP);
    size_t i;
    json_t *s;
    json_array_foreach(v, i, s) {
        if (!json_is_string(s))
            return fail(e, "stop", SRV_ETYPE, "stop[%zu] must be a string", i);
        if (json_string_length(s) > 256)
            return fail(e, "stop", SRV_EINVAL, "stop[%zu] is longer than 256 bytes", i);
        if (json_string_length(s) == 0)
            continue;
        if (!(q->stop[q->n_stop] = strdup(json_string_value(s))))
            return fail(e, "stop", SRV_EINTERNAL, "out of memory");
        q->n_stop++;
    }
    return 0;
}

static int parse_logit_bias(const json_t *body, struct oai_request *q, struct oai_error *e)
{
    json_t *v = json_object_get(body, "logit_bias");
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return fail(e, "logit_bias", SRV_ETYPE, "logit_bias must be an object of token id -> bias");
    if (json_object_size(v) > OAI_MAX_LOGIT_BIAS)
        return fail(e, "logit_bias", SRV_EINVAL, "logit_bias has more than %d entries",
                    OAI_MAX_LOGIT_BIAS);
    q->bias = calloc(json_object_size(v) + 1, sizeof(*q->bias));
    if (!q->bias)
        return fail(e, "logit_bias", SRV_EINTERNAL, "out of memory");
    const char *k;
    json_t *b;
    json_object_foreach((json_t *)v, k, b) {
        char *end;
        long long id = strtoll(k, &end, 10);
        if (!*k || *end || id < 0)
            return fail(e, "logit_bias", SRV_EINVAL, "logit_bias key '%.32s' is not a token id", k);
        if (!json_is_number(b) || json_number_value(b) < -100 || json_number_value(b) > 100)
            return fail(e, "logit_bias", SRV_EINVAL, "logit_bias values must be numbers in [-100, 100]");
        q->bias[q->n_bias].id = id;
        q->bias[q->n_bias].bias = json_number_value(b);
        q->n_bias++;
    }
    return 0;
}

static int parse_sampling(const json_t *body, struct oai_request *q, struct oai_error *e)
{
    int64_t mt = -1, mct = -1, n = 1;
    if (get_int(body, "max_tokens", 1, 1 << 24, &mt, e) ||
        get_int(body, "max_completion_tokens", 1, 1 << 24, &mct, e) ||
        get_number(body, "temperature", 0, 2, &q->temperature, e) ||
        get_number(body, "top_p", 0, 1, &q->top_p, e) ||
        get_number(body, "min_p", 0, 1, &q->min_p, e) ||
        get_int(body, "top_k", 0, 1 << 20, &q->top_k, e) ||
        get_number(body, "presence_penalty", -2, 2, &q->presence_penalty, e) ||
        get_number(body, "frequency_penalty", -2, 2, &q->frequency_penalty, e) ||
        get_number(body, "repetition_penalty", 0.01, 10, &q->repetition_penalty, e) ||
        get_int(body, "n", 1, 1 << 20, &n, e))
        return -1;
    if (n != 1)
        return fail(e, "n", SRV_EINVAL, "only n=1 is supported, got %lld", (long long)n);
    q->max_tokens = mct > 0 ? mct : mt;
    json_t *seed = json_object_get(body, "seed");
    if (seed && !json_is_null(seed)) {
        if (!json_is_integer(seed))
            return fail(e, "seed", SRV_ETYPE, "seed must be an integer");
        q->has_seed = true;
        q->seed = (uint64_t)json_integer_value(seed);
    }
    return 0;
}

static int parse_options(const json_t *body, struct oai_request *q, struct oai_error *e)
{
    if (get_bool(body, "stream", &q->stream, e) || get_bool(body, "logprobs", &q->logprobs, e) ||
        get_bool(body, "ignore_eos", &q->ignore_eos, e) ||
        get_int(body, "top_logprobs", 0, 20, &q->top_logprobs, e) ||
        get_string(body, "user", 256, &q->user, e) ||
        get_string(body, "session_id", 128, &q->session_id, e) ||
        get_int(body, "max_reasoning_tokens", 0, 1 << 24, &q->max_reasoning_tokens, e))
        return -1;
    if (q->top_logprobs > 0 && !q->logprobs)
        return fail(e, "top_logprobs", SRV_EINVAL, "top_logprobs requires logprobs: true");
    json_t *so = json_object_get(body, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so))
            return fail(e, "stream_options", SRV_ETYPE, "stream_options must be an object");
        if (!q->stream)
            return fail(e, "stream_options", SRV_EINVAL,
                        "stream_options is only allowed when stream is true");
        if (get_bool(so, "include_usage", &q->include_usage, e))
            return -1;
    }
    json_t *rf = json_object_get(body, "reasoning_format");
    if (rf && !json_is_null(rf)) {
        if (!json_is_string(rf))
            return fail(e, "reasoning_format", SRV_ETYPE, "reasoning_format must be a string");
        const char *s = json_string_value(rf);
        if (strcmp(s, "none") == 0)
            q->reasoning_split = false;
        else if (strcmp(s, "deepseek") != 0 && strcmp(s, "auto") != 0)
            return fail(e, "reasoning_format", SRV_EINVAL,
                        "reasoning_format must be one of none, auto, deepseek");
    }
    if (q->session_id && !oai_valid_id(q->session_id, 128))
        return fail(e, "session_id", SRV_EINVAL, "session_id is not a valid session id");
    return 0;
}

int oai_parse(const json_t *body, bool chat, struct oai_request *q, struct oai_error *e)
{
    memset(e, 0, sizeof(*e));
    q->chat = chat;
    if (!json_is_object(body))
        return fail(e, NULL, SRV_EJSON, "request body must be a JSON object");
    if (get_string(body, "model", 256, &q->model, e))
        return -1;
    if (q->model && !oai_valid_id(q->model, 256))
        return fail(e, "model", SRV_EINVAL, "model '%.64s' is not a valid model id", q->model);
    if (chat) {
        if (oai_parse_messages(json_object_get(body, "messages"), q, e) != 0)
            return -1;
    } else {
        json_t *p = json_object_get(body, "prompt");
        if (!p)
            return fail(e, "prompt", SRV_EMISSING, "prompt is required");
        if (json_is_array(p) && json_array_size(p) == 1 && json_is_string(json_array_get(p, 0)))
            p = json_array_get(p, 0);
        if (!json_is_string(p))
            return fail(e, "prompt", SRV_ETYPE, "prompt must be a string");
        q->prompt = strdup(json_string_value(p));
        if (get_bool(body, "echo", &q->echo, e))
            return -1;
    }
    if (parse_sampling(body, q, e) || parse_stop(body, q, e) || parse_logit_bias(body, q, e) ||
        parse_options(body, q, e) || oai_parse_tools(body, q, e))
        return -1;
    return 0;
}
