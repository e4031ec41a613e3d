/* store_quota.c - admission against monthly token quotas, shared by every server that
 * uses the database.
 *
 * A request reserves its worst case (prompt + max_tokens) before it runs; the check of
 * what is left (quota - the month's usage - the reservations in flight) and the insert of
 * the reservation are one write transaction (BEGIN IMMEDIATE), so two admissions cannot
 * both see the same room. The reservation goes away when the request's usage row is
 * recorded (sdb_usage_insert deletes it in the same transaction) or when the request ends
 * without usage (store_quota_release). A server that dies leaves its reservations
 * behind: they stop counting after their time to live. So a month's billed tokens never
 * exceed the quota while reservations live, since a request is never billed past its
 * reservation. Called from any thread. */
#include "store_int.h"

#include <string.h>

static const char sql_quota_user[] = "SELECT token_quota FROM users WHERE id = ?1";
static const char sql_quota_reserved[] =
    "SELECT coalesce(sum(tokens), 0) FROM reservations WHERE user_id = ?1 AND created_at >= ?2";
static const char sql_quota_insert[] =
    "INSERT INTO reservations (request_id, user_id, tokens, created_at) VALUES (?1, ?2, ?3, ?4)";
static const char sql_quota_expire[] = "DELETE FROM reservations WHERE created_at < ?1";
static const char sql_quota_delete[] = "DELETE FROM reservations WHERE request_id = ?1";

struct quota_ctx {
    int64_t user_id;
    const char *request_id;
    int64_t prompt;
    int64_t max_tokens;
    int64_t ttl_ms;
    struct store_quota q;
};

/* One integer from a query of one row with integer parameters. */
static int one_int(struct store *st, const char *sql, const int64_t *v, int n, int64_t *out)
{
    sqlite3_stmt *s = sdb_prep(st, sql);
    if (!s)
        return STORE_ESQL;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = sdb_bind_int(st, s, i + 1, v[i]);
    rc = rc ? rc : sdb_step(st, s);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(s, 0);
    sdb_done(s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? STORE_ENOTFOUND : rc < 0 ? rc : STORE_ESQL;
}

static int reserve_tx(struct store *st, void *ctx)
{
    struct quota_ctx *c = ctx;
    int64_t now = sdb_now(st), since = now - c->ttl_ms;
    int rc = one_int(st, sql_quota_user, &c->user_id, 1, &c->q.quota);
    if (rc == STORE_ENOTFOUND)
        return sdb_fail(rc, "quota: user %lld not found", (long long)c->user_id);
    if (rc || c->q.quota <= 0)
        return rc;
    rc = sdb_exec_ints(st, sql_quota_expire, &since, 1);
    rc = rc ? rc : sdb_usage_month(st, c->user_id, &c->q.used);
    int64_t args[2] = {c->user_id, since};
    rc = rc ? rc : one_int(st, sql_quota_reserved, args, 2, &c->q.reserved);
    if (rc)
        return rc;
    int64_t left = c->q.quota - c->q.used - c->q.reserved - c->prompt;
    if (left < 1)
        return sdb_fail(STORE_EQUOTA, "monthly token quota of %lld exceeded",
                        (long long)c->q.quota);
    if (c->max_tokens > left)
        c->max_tokens = left;
    sqlite3_stmt *s = sdb_prep(st, sql_quota_insert);
    if (!s)
        return STORE_ESQL;
    rc = sdb_bind_text(st, s, 1, c->request_id);
    rc = rc ? rc : sdb_bind_int(st, s, 2, c->user_id);
    rc = rc ? rc : sdb_bind_int(st, s, 3, c->prompt + c->max_tokens);
    rc = rc ? rc : sdb_bind_int(st, s, 4, now);
    rc = rc ? rc : sdb_exec_stmt(st, s);
    sdb_done(s);
    return rc;
}

int store_quota_reserve(struct store *st, int64_t user_id, const char *request_id,
                        int64_t prompt_tokens, int64_t *max_tokens, int64_t ttl_ms,
                        struct store_quota *q)
{
    int rc = sdb_check_id("request id", request_id, STORE_ID_MAX);
    if (rc)
        return rc;
    if (prompt_tokens < 0 || *max_tokens < 0 || ttl_ms <= 0)
        return sdb_fail(STORE_EINVAL, "quota: negative token count or time to live");
    struct quota_ctx c = {user_id, request_id, prompt_tokens, *max_tokens, ttl_ms, {0}};
    rc = sdb_run(st, true, reserve_tx, &c);
    if (q)
        *q = c.q;
    if (rc == 0)
        *max_tokens = c.max_tokens;
    return rc;
}

static int release_tx(struct store *st, void *ctx)
{
    sqlite3_stmt *s = sdb_prep(st, sql_quota_delete);
    if (!s)
        return STORE_ESQL;
    int rc = sdb_bind_text(st, s, 1, ctx);
    rc = rc ? rc : sdb_exec_stmt(st, s);
    sdb_done(s);
    return rc;
}

int store_quota_release(struct store *st, const char *request_id)
{
    int rc = sdb_check_id("request id", request_id, STORE_ID_MAX);
    return rc ? rc : sdb_run(st, true, release_tx, (void *)request_id);
}

int sdb_quota_settle(struct store *st, const char *request_id)
{
    return release_tx(st, (void *)request_id);
}
