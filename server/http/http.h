/* http.h - the HTTP layer over libmicrohttpd (thread-per-connection): request context,
 * body collection with a size cap, routing, response helpers and OpenAI-style errors.
 *
 * Each request gets a struct http_req, created on MHD's first callback and freed in the
 * completion callback after the response is done (or the client went away). Handlers run
 * on the connection's own thread and may block. */
#ifndef CHATD_HTTP_H
#define CHATD_HTTP_H

#include "server.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>


#define HTTP_MAX_PARAMS 2
#define HTTP_MAX_HEADERS 12

struct http_req {
    struct MHD_Connection *conn;
    struct srv *srv;
    const char *method;
    const char *path;
    char *body; /* NUL-terminated; body_len bytes */
    size_t body_len;
    size_t body_cap;
    bool too_large;
    bool responded;
    char request_id[40];
    char params[HTTP_MAX_PARAMS][128]; /* {id} captures of the route */
    struct timespec t0;
    unsigned status;
    uint64_t bytes_out;
    /* Headers added to whatever response is sent. */
    char *hdr_name[HTTP_MAX_HEADERS];
    char *hdr_value[HTTP_MAX_HEADERS];
    int n_hdr;
    /* Authenticated caller (set by the auth step before the handler runs). */
    int64_t user_id;
    bool is_admin;
    char key_prefix[32];
    /* Handler state released when the request completes (e.g. a stream). */
    void *state;
    void (*state_free)(void *state, bool completed_ok);
};

typedef int (*http_handler)(struct http_req *r);

struct http_route {
    const char *method;  /* "GET", "POST", ... */
    const char *pattern; /* "/v1/sessions/{id}/messages": {x} matches one segment */
    http_handler handler;
    bool needs_auth;
    bool admin_only;
};

/* Starts MHD on host:port with the given route table (borrowed, NULL-pattern terminated).
 * Returns NULL with a message in err on failure. */
struct MHD_Daemon *http_start(struct srv *s, const char *host, int port, int max_conns,
                              int timeout_s, const struct http_route *routes, char *err,
                              size_t err_len);
/* The route table (route.c). */
extern const struct http_route srv_routes[];

/* Number of requests in flight (for shutdown). */
int http_active(void);

/* ---- responses (each returns 0, or -1 if the response could not be queued) ---- */

/* Adds a header to the response this request will send. Copies both strings. */
void http_add_header(struct http_req *r, const char *name, const char *value);
/* Sends body (stolen reference) as JSON. */
int http_send_json(struct http_req *r, unsigned status, json_t *body);
int http_send_bytes(struct http_req *r, unsigned status, const char *content_type,
                    const void *data, size_t len, bool copy);
/* OpenAI's error object for a module's error code (see srv_error_of in server.h), with
 * the HTTP status it maps to; param NULL takes the code's default, fmt NULL its text.
 * Codes that ask for a retry (quota, busy, rate limit) add Retry-After unless the
 * handler set one. */
int http_send_error(struct http_req *r, enum srv_errmod mod, int code, const char *param,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* A streamed response of unknown size: MHD calls reader(cls, pos, buf, max) until it
 * returns MHD_CONTENT_READER_END_OF_STREAM; free_cb(cls) runs when done. */
int http_send_stream(struct http_req *r, unsigned status, const char *content_type,
                     MHD_ContentReaderCallback reader, void *cls,
                     MHD_ContentReaderFreeCallback free_cb);

/* Request header or query argument value, or NULL. Borrowed for the request's life. */
const char *http_header(struct http_req *r, const char *name);
const char *http_query(struct http_req *r, const char *name);

/* Parses the body as a JSON object; on failure sends 400 and returns NULL. */
json_t *http_body_json(struct http_req *r);

/* Random id with a prefix, e.g. "req_" + 24 hex digits, into buf. */
void http_random_id(const char *prefix, char *buf, size_t len);

#endif
