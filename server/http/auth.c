/* auth.c - who is calling: in `open` mode every request is the local user; in `keys`
 * mode a Bearer API key is required and resolved to its user through storage (hash
 * compared in constant time there). Also the per-key rate limit (requests per minute,
 * a fixed one-minute window per key) with OpenAI's x-ratelimit-* headers.
 * Runs on connection threads; the rate table is guarded by its own mutex. */
#include "http/http.h"
#include "server.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define RATE_SLOTS 1024

struct rate_entry {
    char prefix[STORE_KEY_PREFIX_LEN + 1];
    int64_t window;   /* minute number */
    int64_t count;
};

static struct rate_entry rates[RATE_SLOTS];
static pthread_mutex_t rate_mu = PTHREAD_MUTEX_INITIALIZER;

/* Counts one request against `prefix`; returns the requests left in this minute, or -1
 * when over the limit (then *reset_s says when the window ends). */
static int64_t rate_take(const char *prefix, int64_t limit, int *reset_s)
{
    time_t now = time(NULL);
    int64_t window = (int64_t)now / 60;
    *reset_s = (int)(60 - now % 60);
    unsigned h = 5381;
    for (const char *p = prefix; *p; p++)
        h = h * 33 + (unsigned char)*p;
    pthread_mutex_lock(&rate_mu);
    struct rate_entry *e = &rates[h % RATE_SLOTS];
    if (strcmp(e->prefix, prefix) != 0 || e->window != window) {
        snprintf(e->prefix, sizeof(e->prefix), "%.*s", STORE_KEY_PREFIX_LEN, prefix);
        e->window = window;
        e->count = 0;
    }
    int64_t left = e->count < limit ? limit - ++e->count : -1;
    pthread_mutex_unlock(&rate_mu);
    return left;
}

static int rate_limit(struct http_req *r)
{
    int64_t limit = r->srv->cfg->rate_limit_rpm;
    if (limit <= 0 || !r->key_prefix[0])
        return 0;
    int reset_s;
    int64_t left = rate_take(r->key_prefix, limit, &reset_s);
    char v[32];
    snprintf(v, sizeof(v), "%lld", (long long)limit);
    http_add_header(r, "x-ratelimit-limit-requests", v);
    snprintf(v, sizeof(v), "%lld", (long long)(left < 0 ? 0 : left));
    http_add_header(r, "x-ratelimit-remaining-requests", v);
    snprintf(v, sizeof(v), "%ds", reset_s);
    http_add_header(r, "x-ratelimit-reset-requests", v);
    if (left >= 0)
        return 0;
    snprintf(v, sizeof(v), "%d", reset_s);
    http_add_header(r, "Retry-After", v);
    http_send_error(r, SRV_MOD_SERVER, SRV_ERATE, NULL, "rate limit of %lld requests per minute reached for this key; retry in %d s",
                    (long long)limit, reset_s);
    return -1;
}

/* Whether a Host header names this machine's loopback ("localhost", "127.0.0.1",
 * "[::1]", with or without a port). */
static bool loopback_host(const char *h)
{
    static const char *const names[] = {"localhost", "127.0.0.1", "[::1]"};
    for (size_t i = 0; h && i < sizeof(names) / sizeof(names[0]); i++) {
        size_t n = strlen(names[i]);
        if (strncasecmp(h, names[i], n) == 0 && (h[n] == 0 || h[n] == ':'))
            return true;
    }
    return false;
}

/* Open mode trusts whoever can connect, which a web page the operator visits can do
 * (DNS rebinding, or a cross-origin form): the admin endpoints answer only requests that
 * name the loopback host and come from no other origin than the page itself. */
static bool local_admin_request(struct http_req *r)
{
    const char *host = http_header(r, "Host");
    if (!loopback_host(host))
        return false;
    const char *origin = http_header(r, "Origin");
    if (!origin)
        return true;
    const char *rest = strncmp(origin, "http://", 7) == 0 ? origin + 7 : NULL;
    return rest && strcasecmp(rest, host) == 0;
}

int srv_authenticate(struct http_req *r, bool admin_only)
{
    struct srv *s = r->srv;
    struct store_user u;
    if (strcmp(s->cfg->auth_mode, "open") == 0) {
        if (admin_only && !local_admin_request(r)) {
            http_send_error(r, SRV_MOD_SERVER, SRV_EFORBIDDEN, NULL,
                            "open mode answers this endpoint only for requests to the loopback host from the same origin; use --auth keys to serve others");
            return -1;
        }
        r->user_id = s->local_user_id;
        r->is_admin = true;
        return 0;
    }
    const char *h = http_header(r, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
        http_send_error(r, SRV_MOD_SERVER, SRV_EAUTH, NULL, "missing API key: send 'Authorization: Bearer KEY'");
        return -1;
    }
    const char *key = h + 7;
    while (*key == ' ')
        key++;
    struct store_key info;
    int rc = store_key_auth(s->store, key, &u, &info);
    if (rc == STORE_EREVOKED) {
        http_send_error(r, SRV_MOD_SERVER, SRV_EAUTH, NULL, "this API key was revoked");
        return -1;
    }
    if (rc != 0) {
        if (rc != STORE_ENOTFOUND)
            log_warn("auth store error=\"%s\" request_id=%s", store_errmsg(), r->request_id);
        if (rc == STORE_ENOTFOUND)
            http_send_error(r, SRV_MOD_SERVER, SRV_EAUTH, NULL, "incorrect API key provided");
        else
            http_send_error(r, SRV_MOD_STORE, rc, NULL, "the database is unavailable; try again");
        return -1;
    }
    r->user_id = u.id;
    r->is_admin = u.is_admin;
    snprintf(r->key_prefix, sizeof(r->key_prefix), "%s", info.prefix);
    if (admin_only && !u.is_admin) {
        http_send_error(r, SRV_MOD_SERVER, SRV_EFORBIDDEN, NULL, "this endpoint needs an admin user's key");
        return -1;
    }
    return rate_limit(r);
}
