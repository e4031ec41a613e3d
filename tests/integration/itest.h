/* itest.h - helpers for integration tests: start the real chatd binary (CHATD_BIN) on a
 * free port with a temporary directory and database, and talk to it with libcurl. */
#ifndef CHATD_ITEST_H
#define CHATD_ITEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct itest_server {
    pid_t pid;
    int port;
    char dir[256];      /* temporary directory, removed by itest_cleanup */
    char db[300];       /* dir/chatd.db */
    char log_path[300]; /* dir/server.log: the server's stderr */
    char base_url[64];
};

/* Creates the temporary directory (once) and starts `chatd serve --port P --db DB
 * [extra args...]` (extra: NULL-terminated, may be NULL). Waits until /health answers
 * (up to 60 s). Returns 0, or -1 (the log is printed). */
int itest_start(struct itest_server *s, const char *const *extra);
/* Sends SIGTERM and waits; returns the exit status (or -1). */
int itest_stop(struct itest_server *s);
/* SIGKILL and wait. */
void itest_kill(struct itest_server *s);
/* Removes the temporary directory. */
void itest_cleanup(struct itest_server *s);
/* itest_stop, then itest_cleanup; returns the exit status (printed when not 0). */
int itest_finish(struct itest_server *s);
/* Runs `CHATD_BIN <fmt with arg> --db <s's database>` (stderr discarded) and returns its
 * first stdout line without the newline ("" if none; static buffer). */
const char *itest_cli(const struct itest_server *s, const char *fmt, const char *arg);
/* `chatd user add NAME OPTS` then `chatd key create NAME` on s's database; the new key
 * (key create's first line) is copied into key. */
void itest_user_key(const struct itest_server *s, const char *name, const char *opts, char *key,
                    size_t len);
/* Path of a file under the fixtures directory (static buffer). */
const char *itest_fixture(const char *rel);

struct itest_resp {
    long status;
    char *body;     /* NUL-terminated */
    size_t len;
    char *headers;  /* raw header block, lower-cased names */
};

/* One request. headers: NULL-terminated "Name: value" strings (or NULL). body may be NULL.
 * Returns 0 when an HTTP response arrived (free it with itest_resp_free), or -1 when the
 * connection failed first: then out holds no buffers, only the status if one was read. */
int itest_request(struct itest_server *s, const char *method, const char *path,
                  const char *body, const char *const *headers, struct itest_resp *out);
void itest_resp_free(struct itest_resp *r);
/* Value of a response header (lower-case name) into buf; false if absent. */
bool itest_header(const struct itest_resp *r, const char *name, char *buf, size_t len);
/* The body parsed as JSON (new reference), or NULL. */
json_t *itest_json(const struct itest_resp *r);

/* A streamed POST: collects the whole body like itest_request, but stops reading (and
 * closes the connection) once `abort_after` bytes arrived when abort_after > 0. Each
 * received chunk's arrival time is recorded. */
struct itest_stream {
    long status;
    char *body;
    size_t len;
    int n_chunks;     /* how many separate write callbacks delivered data */
    double first_ms;  /* ms from start to the first data byte */
};
int itest_stream_post(struct itest_server *s, const char *path, const char *body,
                      const char *const *headers, size_t abort_after, struct itest_stream *out);
void itest_stream_free(struct itest_stream *st);

/* POSTs a body over the server's limit: true when the answer is 413 with the error code
 * request_too_large, or when the connection closed while the body was still being sent
 * (the server may answer 413 and close early, as HTTP allows: the client then sees the
 * answer or only the reset). */
bool itest_too_large(struct itest_server *s, const char *path, const char *body);

/* A plain TCP connection to the server with a small receive buffer (4 KiB), so that a
 * test that stops reading holds the server's writes back. Returns the fd, or -1. */
int itest_connect(struct itest_server *s);

/* Splits an SSE body into the JSON payloads of its "data: " lines (excluding [DONE]).
 * Returns a new JSON array; *saw_done tells whether "data: [DONE]" came last. */
json_t *itest_sse_events(const char *body, bool *saw_done);

#endif
