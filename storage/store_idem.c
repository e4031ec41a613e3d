/* store_idem.c - idempotency keys: (user, key) -> request id and response body.
 *
 * A client that retries a request with the same Idempotency-Key must be neither
 * generated for nor billed twice. The server claims the key before generating
 * (store_idem_begin: the primary key makes the claim atomic across threads and
 * processes), records the response when done (store_idem_complete), and answers a
 * retry from the stored body (store_idem_get). A claimed key without a response is
 * a request still in flight (or one that died with the process); a request that ends
 * without a response to replay gives its key back (store_idem_release). A claim keeps
 * the hash of the request's body, so a reused key with another body is told apart, and
 * expires after its time to live. Keys are scoped by user, so one user's key never
 * reveals another's response. Called from any thread. */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

static const char sql_idem_insert[] =
    "INSERT INTO idempotency (user_id, key, request_id, created_at, body_hash) "
    "VALUES (?1, ?2, ?3, ?4, ?5)";
static const char sql_idem_expire[] =
    "DELETE FROM idempotency WHERE user_id = ?1 AND key = ?2 AND created_at < ?3";
static const char sql_idem_complete[] =
    "UPDATE idempotency SET response = ?3 WHERE user_id = ?1 AND key = ?2";
static const char sql_idem_get[] =
    "SELECT request_id, response, body_hash FROM idempotency WHERE user_id = ?1 AND key = ?2";
static const char sql_idem_delete[] = "DELETE FROM idempotency WHERE user_id = ?1 AND key = ?2";
static const char sql_idem_prune[] = "DELETE FROM idempotency WHERE created_at < ?1";

struct idem_ctx {
    int64_t user_id;
    const char *key;
    const char *request_id;
    const char *body_hash;
    int64_t ttl_ms;
    const char *response;
    char *request_out;
    char *hash_out;
    char *response_out;
    bool has_response;
    int64_t before_ms;
    int64_t n;
};

static int begin_tx(struct store *st, void *ctx)
{
    struct idem_ctx *c = ctx;
    int64_t now = sdb_now(st);
    sqlite3_stmt *s = sdb_prep(st, sql_idem_expire);
    if (!s)
        return STORE_ESQL;
    int rc = sdb_bind_int(st, s, 1, c->user_id);
    rc = rc ? rc : sdb_bind_text(st, s, 2, c->key);
    rc = rc ? rc : sdb_bind_int(st, s, 3, now - c->ttl_ms);
    rc = rc ? rc : sdb_exec_stmt(st, s);
    sdb_done(s);
    s = rc ? NULL : sdb_prep(st, sql_idem_insert);
    if (!s)
        return rc ? rc : STORE_ESQL;
    rc = sdb_bind_int(st, s, 1, c->user_id);
    rc = rc ? rc : sdb_bind_text(st, s, 2, c->key);
    rc = rc ? rc : sdb_bind_text(st, s, 3, c->request_id);
    rc = rc ? rc : sdb_bind_int(st, s, 4, now);
    rc = rc ? rc : sdb_bind_text(st, s, 5, c->body_hash);
    rc = rc ? rc : sdb_exec_stmt(st, s);
    sdb_done(s);
    if (rc == STORE_EEXISTS)
        return sdb_fail(rc, "idempotency key '%s' was used before", c->key);
    if (rc == STORE_EINVAL)
        return sdb_fail(rc, "idempotency key: user %lld not found", (long long)c->user_id);
    return rc;
}

int store_idem_begin(struct store *st, int64_t user_id, const char *key, const char *request_id,
                     const char *body_hash, int64_t ttl_ms)
{
    int rc = sdb_check_id("idempotency key", key, STORE_ID_MAX);
    rc = rc ? rc : sdb_check_id("request id", request_id, STORE_ID_MAX);
    if (rc)
        return rc;
    struct idem_ctx c = {.user_id = user_id, .key = key, .request_id = request_id,
                         .body_hash = body_hash ? body_hash : "", .ttl_ms = ttl_ms};
    return sdb_run(st, true, begin_tx, &c);
}

/* Updates (response != NULL) or deletes the key's row; STORE_ENOTFOUND when absent. */
static int change_tx(struct store *st, void *ctx)
{
    struct idem_ctx *c = ctx;
    sqlite3_stmt *s = sdb_prep(st, c->response ? sql_idem_complete : sql_idem_delete);
    if (!s)
        return STORE_ESQL;
    int rc = sdb_bind_int(st, s, 1, c->user_id);
    rc = rc ? rc : sdb_bind_text(st, s, 2, c->key);
    if (rc == 0 && c->response)
        rc = sdb_bind_text(st, s, 3, c->response);
    rc = rc ? rc : sdb_exec_stmt(st, s);
    sdb_done(s);
    if (rc == 0 && sqlite3_changes(sdb_db(st)) == 0)
        rc = sdb_fail(STORE_ENOTFOUND, "idempotency key '%s' not found", c->key);
    return rc;
}

int store_idem_complete(struct store *st, int64_t user_id, const char *key, const char *response)
{
    if (sdb_check_id("idempotency key", key, STORE_ID_MAX) != 0)
        return STORE_EINVAL;
    struct idem_ctx c = {.user_id = user_id, .key = key, .response = response ? response : ""};
    return sdb_run(st, true, change_tx, &c);
}

int store_idem_release(struct store *st, int64_t user_id, const char *key)
{
    if (sdb_check_id("idempotency key", key, STORE_ID_MAX) != 0)
        return STORE_EINVAL;
    struct idem_ctx c = {.user_id = user_id, .key = key};
    return sdb_run(st, true, change_tx, &c);
}

static int get_tx(struct store *st, void *ctx)
{
    struct idem_ctx *c = ctx;
    free(c->response_out);
    c->response_out = NULL;
    sqlite3_stmt *s = sdb_prep(st, sql_idem_get);
    if (!s)
        return STORE_ESQL;
    int rc = sdb_bind_int(st, s, 1, c->user_id);
    rc = rc ? rc : sdb_bind_text(st, s, 2, c->key);
    rc = rc ? rc : sdb_step(st, s);
    if (rc == SQLITE_ROW) {
        if (c->request_out)
            sdb_col_copy(s, 0, c->request_out, STORE_ID_MAX + 1);
        if (c->hash_out)
            sdb_col_copy(s, 2, c->hash_out, STORE_ID_MAX + 1);
        c->has_response = sqlite3_column_type(s, 1) != SQLITE_NULL;
        rc = 0;
        if (c->has_response) {
            c->response_out = sdb_col_strdup(s, 1);
            if (!c->response_out)
                rc = sdb_fail(STORE_ENOMEM, "idempotency response: out of memory");
        }
    } else if (rc == SQLITE_DONE) {
        rc = sdb_fail(STORE_ENOTFOUND, "idempotency key '%s' not found", c->key);
    }
    sdb_done(s);
    return rc;
}

int store_idem_get(struct store *st, int64_t user_id, const char *key, char *request_id,
                   char *body_hash, char **response)
{
    if (request_id)
        request_id[0] = 0;
    if (body_hash)
        body_hash[0] = 0;
    if (response)
        *response = NULL;
    if (sdb_check_id("idempotency key", key, STORE_ID_MAX) != 0)
        return STORE_EINVAL;
    struct idem_ctx c = {.user_id = user_id, .key = key, .request_out = request_id,
                         .hash_out = body_hash};
    int rc = sdb_run(st, false, get_tx, &c);
    if (rc == 0 && response)
        *response = c.response_out;
    else
        free(c.response_out);
    return rc;
}

static int prune_tx(struct store *st, void *ctx)
{
    struct idem_ctx *c = ctx;
    int rc = sdb_exec_ints(st, sql_idem_prune, &c->before_ms, 1);
    c->n = rc == 0 ? sqlite3_changes64(sdb_db(st)) : 0;
    return rc;
}

int store_idem_prune(struct store *st, int64_t before_ms, int64_t *n_deleted)
{
    struct idem_ctx c = {.before_ms = before_ms};
    int rc = sdb_run(st, true, prune_tx, &c);
    if (n_deleted)
        *n_deleted = rc == 0 ? c.n : 0;
    return rc;
}
