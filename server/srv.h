/* srv.h - the running server's shared state (private to server/). */
#ifndef CHATD_SRV_H
#define CHATD_SRV_H

#include "config.h"
#include "http.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

struct store;
struct store_session;
struct store_usage;
struct srv_model;

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
    int64_t reserved_tokens; /* quota reservations of requests in flight */
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

/* The token meter of a session for GET /v1/sessions/{id} (new reference, or NULL). */
json_t *srv_session_meter(struct srv *s, int64_t user_id, const struct store_session *sess);

/* Quota reservations: tokens admitted but not yet billed, per user. */
int64_t srv_quota_reserved(struct srv *s, int64_t user_id);
void srv_quota_reserve(struct srv *s, int64_t user_id, int64_t delta);
/* Adds a stored usage row to the user's /metrics counters. */
void srv_meter_add(struct srv *s, int64_t user_id, const struct store_usage *u);

/* A growing NUL-terminated byte buffer (util.c). */
struct strbuf {
    char *data;
    size_t len;
    size_t cap;
};

int strbuf_append(struct strbuf *b, const char *s, size_t len); /* 0, or -1 out of memory */
void strbuf_free(struct strbuf *b);

/* Copies len bytes as valid UTF-8 (invalid bytes and NUL become U+FFFD). Caller frees. */
char *srv_utf8_sanitize(const char *s, size_t len, size_t *out_len);

/* The route table (route.c). */
extern const struct http_route srv_routes[];

#endif
