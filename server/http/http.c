/* http.c - libmicrohttpd glue: one struct http_req per request, body collection with a
 * cap (413 without reading an oversized body), route matching (404 unknown path, 405 with
 * Allow for a known path and wrong method), the auth step, response helpers, and one log
 * line per request (method, path, status, bytes, duration, request id).
 *
 * MHD runs thread-per-connection, so every function here runs on a connection thread;
 * the only shared state is the in-flight counter. */
#include "http/http.h"
#include "server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static atomic_int n_active;

int http_active(void)
{
    return atomic_load(&n_active);
}

void http_random_id(const char *prefix, char *buf, size_t len)
{
    unsigned char raw[12];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        static atomic_ulong counter;
        unsigned long c = atomic_fetch_add(&counter, 1) + (unsigned long)time(NULL);
        memcpy(raw, &c, sizeof(c) < sizeof(raw) ? sizeof(c) : sizeof(raw));
    }
    int n = snprintf(buf, len, "%s", prefix);
    for (size_t i = 0; i < sizeof(raw) && (size_t)n + 2 < len; i++)
        n += snprintf(buf + n, len - (size_t)n, "%02x", raw[i]);
}

/* ---- responses ---- */

void http_add_header(struct http_req *r, const char *name, const char *value)
{
    if (r->n_hdr >= HTTP_MAX_HEADERS)
        return;
    r->hdr_name[r->n_hdr] = strdup(name);
    r->hdr_value[r->n_hdr] = strdup(value);
    r->n_hdr++;
}

static int queue(struct http_req *r, unsigned status, const char *content_type,
                 struct MHD_Response *resp)
{
    if (!resp)
        return -1;
    if (r->responded) {
        MHD_destroy_response(resp);
        return -1;
    }
    if (content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, "x-request-id", r->request_id);
    for (int i = 0; i < r->n_hdr; i++)
        if (r->hdr_name[i] && r->hdr_value[i])
            MHD_add_response_header(resp, r->hdr_name[i], r->hdr_value[i]);
    r->status = status;
    r->responded = true;
    enum MHD_Result ok = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    return ok == MHD_YES ? 0 : -1;
}

int http_send_bytes(struct http_req *r, unsigned status, const char *content_type,
                    const void *data, size_t len, bool copy)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, (void *)data, copy ? MHD_RESPMEM_MUST_COPY : MHD_RESPMEM_PERSISTENT);
    r->bytes_out += len;
    return queue(r, status, content_type, resp);
}

int http_send_json(struct http_req *r, unsigned status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text)
        return -1;
    size_t len = strlen(text);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return -1;
    }
    r->bytes_out += len;
    return queue(r, status, "application/json", resp);
}

int http_send_stream(struct http_req *r, unsigned status, const char *content_type,
                     MHD_ContentReaderCallback reader, void *cls,
                     MHD_ContentReaderFreeCallback free_cb)
{
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, reader, cls, free_cb);
    if (!resp) {
        if (free_cb)
            free_cb(cls);
        return -1;
    }
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    return queue(r, status, content_type, resp);
}

const char *http_header(struct http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_query(struct http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

json_t *http_body_json(struct http_req *r)
{
    json_error_t e;
    if (r->body_len == 0) {
        http_send_error(r, SRV_MOD_SERVER, SRV_EJSON, NULL, "request body is empty; expected a JSON object");
        return NULL;
    }
    json_t *j = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &e);
    if (!j) {
        http_send_error(r, SRV_MOD_SERVER, SRV_EJSON, NULL, "malformed JSON at line %d column %d: %s", e.line, e.column, e.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        http_send_error(r, SRV_MOD_SERVER, SRV_EJSON, NULL, "request body must be a JSON object");
        return NULL;
    }
    return j;
}

/* ---- routing ---- */

/* Matches path against pattern; {x} matches one non-empty segment, captured in order. */
static bool route_match(const char *pattern, const char *path, struct http_req *r)
{
    int n_param = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            const char *seg_end = strchr(s, '/');
            size_t len = seg_end ? (size_t)(seg_end - s) : strlen(s);
            if (!close || len == 0 || n_param >= HTTP_MAX_PARAMS)
                return false;
            if (r) {
                if (len >= sizeof(r->params[0]))
                    len = sizeof(r->params[0]) - 1; /* validators reject it later */
                memcpy(r->params[n_param], s, len);
                r->params[n_param][len] = 0;
            }
            n_param++;
            p = close + 1;
            s += seg_end ? (size_t)(seg_end - s) : strlen(s);
            continue;
        }
        if (*p != *s)
            return false;
        p++;
        s++;
    }
    return *p == 0 && *s == 0;
}

static int dispatch(struct http_req *r, const struct http_route *routes)
{
    char allow[128] = "";
    bool path_known = false;
    for (const struct http_route *rt = routes; rt->pattern; rt++) {
        if (!route_match(rt->pattern, r->path, NULL))
            continue;
        path_known = true;
        if (strcmp(rt->method, r->method) == 0) {
            route_match(rt->pattern, r->path, r);
            if (rt->needs_auth && srv_authenticate(r, rt->admin_only) != 0)
                return 0; /* the auth step sent the error */
            return rt->handler(r);
        }
        if (!strstr(allow, rt->method)) {
            if (allow[0])
                strncat(allow, ", ", sizeof(allow) - strlen(allow) - 1);
            strncat(allow, rt->method, sizeof(allow) - strlen(allow) - 1);
        }
    }
    if (path_known) {
        http_add_header(r, "Allow", allow);
        return http_send_error(r, SRV_MOD_SERVER, SRV_EMETHOD, NULL, "method %s is not allowed on %s (allowed: %s)", r->method,
                               r->path, allow);
    }
    return http_send_error(r, SRV_MOD_SERVER, SRV_ENOTFOUND, NULL, "no such endpoint: %s %s", r->method, r->path);
}

/* ---- MHD callbacks ---- */

struct http_ctx {
    struct srv *srv;
    const struct http_route *routes;
    size_t max_body;
};

static struct http_ctx ctx;

static struct http_req *req_new(struct MHD_Connection *conn, const char *url, const char *method)
{
    struct http_req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->conn = conn;
    r->srv = ctx.srv;
    r->method = method;
    r->path = url;
    r->user_id = -1;
    clock_gettime(CLOCK_MONOTONIC, &r->t0);
    const char *given = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    (void)given; /* ids are always ours: the usage row is keyed by them */
    http_random_id("req_", r->request_id, sizeof(r->request_id));
    atomic_fetch_add(&n_active, 1);
    return r;
}

static bool append_body(struct http_req *r, const char *data, size_t len)
{
    if (r->body_len + len > ctx.max_body) {
        r->too_large = true;
        return false;
    }
    if (r->body_len + len + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 4096;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        char *b = realloc(r->body, cap);
        if (!b) {
            r->too_large = true;
            return false;
        }
        r->body = b;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = 0;
    return true;
}

static enum MHD_Result send_too_large(struct http_req *r)
{
    http_send_error(r, SRV_MOD_SERVER, SRV_ETOOLARGE, NULL, "request body exceeds the limit of %zu bytes", ctx.max_body);
    return MHD_YES;
}

/* Headers larger than this get 431 with an error object (libmicrohttpd itself answers,
 * with its own page, only beyond the per-connection memory limit). */
#define HTTP_MAX_HEADER_BYTES (32 * 1024)

static enum MHD_Result add_header_bytes(void *cls, enum MHD_ValueKind kind, const char *key,
                                        const char *value)
{
    (void)kind;
    *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct http_req *r = *con_cls;
    if (!r) {
        r = req_new(conn, url, method);
        if (!r)
            return MHD_NO;
        *con_cls = r;
        size_t header_bytes = 0;
        MHD_get_connection_values(conn, MHD_HEADER_KIND, add_header_bytes, &header_bytes);
        if (header_bytes > HTTP_MAX_HEADER_BYTES) {
            r->too_large = true;
            http_send_error(r, SRV_MOD_SERVER, SRV_EHEADERS, NULL, "request headers total %zu bytes, over the limit of %d", header_bytes,
                            HTTP_MAX_HEADER_BYTES);
            return MHD_YES;
        }
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > ctx.max_body) {
            r->too_large = true;
            return send_too_large(r); /* queued before the body: MHD closes the connection */
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!r->too_large && !append_body(r, upload_data, *upload_data_size)) {
            *upload_data_size = 0;
            return send_too_large(r);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->responded)
        return MHD_YES;
    if (!r->body)
        append_body(r, "", 0);
    dispatch(r, ctx.routes);
    if (!r->responded)
        http_send_error(r, SRV_MOD_SERVER, SRV_EINTERNAL, NULL, "the handler sent no response");
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_req *r = *con_cls;
    if (!r)
        return;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - r->t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - r->t0.tv_nsec) / 1e6;
    log_info("request method=%s path=%s status=%u bytes=%llu duration_ms=%.1f request_id=%s%s",
             r->method, r->path, r->status, (unsigned long long)r->bytes_out, ms, r->request_id,
             toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
    srv_count_request(r->srv, r->status);
    if (r->state_free)
        r->state_free(r->state, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    for (int i = 0; i < r->n_hdr; i++) {
        free(r->hdr_name[i]);
        free(r->hdr_value[i]);
    }
    free(r->body);
    free(r);
    *con_cls = NULL;
    atomic_fetch_sub(&n_active, 1);
}

static void on_log_error(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = 0;
    log_debug("mhd message=\"%s\"", msg);
}

struct MHD_Daemon *http_start(struct srv *s, const char *host, int port, int max_conns,
                              int timeout_s, const struct http_route *routes, char *err,
                              size_t err_len)
{
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        snprintf(err, err_len, "host: '%s' is not an IPv4 address", host);
        return NULL;
    }
    ctx.srv = s;
    ctx.routes = routes;
    ctx.max_body = (size_t)s->cfg->max_body_bytes;
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
            MHD_USE_ERROR_LOG,
        (uint16_t)port, NULL, NULL, on_request, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)max_conns,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)timeout_s,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)(256 * 1024),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 * 1024),
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_EXTERNAL_LOGGER, on_log_error, NULL,
        MHD_OPTION_END);
    if (!d)
        snprintf(err, err_len, "cannot listen on %s:%d (port in use or not permitted)", host, port);
    return d;
}
