/* store_usage.c - metering: prices, one usage row per request, totals.
 *
 * Prices are versioned: a price change is a new row with its effective_from time,
 * and every usage row keeps the id of the version it was billed at, so an old total
 * can always be recomputed exactly (store_usage_audit). When no version is in force
 * for a model, the caller's default (from the config) is used and recorded as an
 * `is_fallback` row, deduplicated, which is referenced but never "in force".
 *
 * Cost of one request, in micro-units, exactly (see store.h):
 *     ceil((miss*input_miss + hit*input_hit + completion*output) / 1e6)
 * Rounding up once per request never bills less than the exact price and at most
 * one micro-unit more; totals are sums of the stored per-row costs. request_id is
 * UNIQUE, so a request is billed at most once even when retried. Called from any
 * thread (see store.h). */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PER_MILLION 1000000

static const char sql_price_current[] =
    "SELECT id, model, input_miss, input_hit, output, effective_from FROM prices "
    "WHERE model = ?1 AND is_fallback = 0 AND effective_from <= ?2 "
    "ORDER BY effective_from DESC, id DESC LIMIT 1";
static const char sql_price_fallback[] =
    "SELECT id, model, input_miss, input_hit, output, effective_from FROM prices "
    "WHERE model = ?1 AND is_fallback = 1 AND input_miss = ?2 AND input_hit = ?3 AND output = ?4 "
    "ORDER BY id LIMIT 1";
static const char sql_price_insert[] =
    "INSERT INTO prices (model, input_miss, input_hit, output, effective_from, is_fallback) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
static const char sql_usage_insert[] =
    "INSERT INTO usage (request_id, user_id, session_id, model, prompt_tokens, cached_tokens, "
    "completion_tokens, reasoning_tokens, price_id, cost_micros, status, created_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
static const char sql_usage_get[] =
    "SELECT id, request_id, user_id, coalesce(session_id, ''), model, prompt_tokens, "
    "cached_tokens, completion_tokens, reasoning_tokens, price_id, cost_micros, status, "
    "created_at FROM usage WHERE request_id = ?1 AND (?2 = 0 OR user_id = ?2)";
static const char sql_usage_month[] =
    "SELECT coalesce(sum(prompt_tokens + completion_tokens), 0) FROM usage "
    "WHERE user_id = ?1 AND created_at >= ?2";
static const char sql_usage_audit[] =
    "SELECT u.prompt_tokens, u.cached_tokens, u.completion_tokens, u.cost_micros, "
    "p.input_miss, p.input_hit, p.output FROM usage u JOIN prices p ON p.id = u.price_id";

/* Totals: ?1 group_by, ?2 user id (0: all), ?3 from, ?4 to (exclusive). The user
 * filter is a separate statement so that the (user_id, created_at) index serves it. */
#define TOTALS_SELECT                                                                              \
    "SELECT CASE ?1 WHEN 1 THEN strftime('%Y-%m-%d', u.created_at / 1000, 'unixepoch') "           \
    "WHEN 2 THEN coalesce(u.session_id, '') WHEN 3 THEN u.model "                                  \
    "WHEN 4 THEN (SELECT name FROM users WHERE id = u.user_id) ELSE '' END AS k, "                 \
    "CASE ?1 WHEN 4 THEN u.user_id ELSE ?2 END AS uid, count(*), sum(u.prompt_tokens), "           \
    "sum(u.cached_tokens), sum(u.completion_tokens), sum(u.reasoning_tokens), "                    \
    "sum(u.cost_micros) FROM usage u "
#define TOTALS_TAIL "u.created_at >= ?3 AND u.created_at < ?4 GROUP BY k, uid ORDER BY k, uid"
static const char sql_totals_user[] = TOTALS_SELECT "WHERE u.user_id = ?2 AND " TOTALS_TAIL;
static const char sql_totals_all[] = TOTALS_SELECT "WHERE " TOTALS_TAIL;

/* ---- cost ---- */

int store_cost_micros(const struct store_price *p, int64_t prompt_tokens, int64_t cached_tokens,
                      int64_t completion_tokens, int64_t *cost)
{
    *cost = 0;
    if (prompt_tokens < 0 || cached_tokens < 0 || completion_tokens < 0 ||
        cached_tokens > prompt_tokens)
        return sdb_fail(STORE_EINVAL, "token counts prompt=%lld cached=%lld completion=%lld",
                        (long long)prompt_tokens, (long long)cached_tokens,
                        (long long)completion_tokens);
    if (p->input_miss < 0 || p->input_hit < 0 || p->output < 0)
        return sdb_fail(STORE_EINVAL, "negative price for model '%s'", p->model);
    int64_t miss;
    int64_t hit;
    int64_t out;
    int64_t sum;
    if (__builtin_mul_overflow(prompt_tokens - cached_tokens, p->input_miss, &miss) ||
        __builtin_mul_overflow(cached_tokens, p->input_hit, &hit) ||
        __builtin_mul_overflow(completion_tokens, p->output, &out) ||
        __builtin_add_overflow(miss, hit, &sum) || __builtin_add_overflow(sum, out, &sum) ||
        __builtin_add_overflow(sum, PER_MILLION - 1, &sum))
        return sdb_fail(STORE_EOVERFLOW, "cost of %lld+%lld tokens overflows int64",
                        (long long)prompt_tokens, (long long)completion_tokens);
    *cost = sum / PER_MILLION;
    return 0;
}

/* ---- prices ---- */

static void price_from_row(sqlite3_stmt *s, struct store_price *p)
{
    memset(p, 0, sizeof(*p));
    p->id = sqlite3_column_int64(s, 0);
    sdb_col_copy(s, 1, p->model, sizeof(p->model));
    p->input_miss = sqlite3_column_int64(s, 2);
    p->input_hit = sqlite3_column_int64(s, 3);
    p->output = sqlite3_column_int64(s, 4);
    p->effective_from_ms = sqlite3_column_int64(s, 5);
}

/* The version in force at `at` into *out: 0, STORE_ENOTFOUND or an error. */
static int price_in_force(struct store *st, const char *model, int64_t at, struct store_price *out)
{
    sqlite3_stmt *s = sdb_prep(st, sql_price_current);
    if (!s)
        return STORE_ESQL;
    int rc = sdb_bind_text(st, s, 1, model);
    rc = rc ? rc : sdb_bind_int(st, s, 2, at);
    rc = rc ? rc : sdb_step(st, s);
    if (rc == SQLITE_ROW) {
        price_from_row(s, out);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = sdb_fail(STORE_ENOTFOUND, "no price for model '%s'", model);
    }
    sdb_done(s);
    return rc;
}

static int price_insert(struct store *st, struct store_price *p, bool fallback)
{
    sqlite3_stmt *s = sdb_prep(st, sql_price_insert);
    if (!s)
        return STORE_ESQL;
    int rc = sdb_bind_text(st, s, 1, p->model);
    rc = rc ? rc : sdb_bind_int(st, s, 2, p->input_miss);
    rc = rc ? rc : sdb_bind_int(st, s, 3, p->input_hit);
    rc = rc ? rc : sdb_bind_int(st, s, 4, p->output);
    rc = rc ? rc : sdb_bind_int(st, s, 5, p->effective_from_ms);
    rc = rc ? rc : sdb_bind_int(st, s, 6, fallback ? 1 : 0);
    rc = rc ? rc : sdb_exec_stmt(st, s);
    sdb_done(s);
    if (rc == 0)
        p->id = sqlite3_last_insert_rowid(sdb_db(st));
    return rc;
}

/* The price to bill `model` at now: the version in force, else the caller's fallback
 * recorded as a (deduplicated) fallback row. */
static int price_for_billing(struct store *st, const char *model, const struct store_price *fb,
                             int64_t now, struct store_price *out)
{
    int rc = price_in_force(st, model, now, out);
    if (rc != STORE_ENOTFOUND)
        return rc;
    memset(out, 0, sizeof(*out));
    snprintf(out->model, sizeof(out->model), "%s", model);
    if (fb) {
        out->input_miss = fb->input_miss;
        out->input_hit = fb->input_hit;
        out->output = fb->output;
    }
    if (out->input_miss < 0 || out->input_hit < 0 || out->output < 0)
        return sdb_fail(STORE_EINVAL, "negative fallback price for model '%s'", model);
    sqlite3_stmt *s = sdb_prep(st, sql_price_fallback);
    if (!s)
        return STORE_ESQL;
    rc = sdb_bind_text(st, s, 1, model);
    rc = rc ? rc : sdb_bind_int(st, s, 2, out->input_miss);
    rc = rc ? rc : sdb_bind_int(st, s, 3, out->input_hit);
    rc = rc ? rc : sdb_bind_int(st, s, 4, out->output);
    rc = rc ? rc : sdb_step(st, s);
    if (rc == SQLITE_ROW)
        price_from_row(s, out);
    sdb_done(s);
    if (rc == SQLITE_ROW)
        return 0;
    if (rc != SQLITE_DONE)
        return rc;
    out->effective_from_ms = now;
    return price_insert(st, out, true);
}

static int check_price(const char *model, int64_t miss, int64_t hit, int64_t output)
{
    int rc = sdb_check_model(model);
    if (rc)
        return rc;
    if (miss < 0 || hit < 0 || output < 0)
        return sdb_fail(STORE_EINVAL, "prices for '%s' must not be negative", model);
    return 0;
}

struct price_set_ctx {
    struct store_price p;
    bool only_if_changed;
    bool added;
};

static int price_set_tx(struct store *st, void *ctx)
{
    struct price_set_ctx *c = ctx;
    c->added = false;
    int64_t now = sdb_now(st);
    if (c->only_if_changed) {
        struct store_price cur;
        int rc = price_in_force(st, c->p.model, now, &cur);
        if (rc == 0 && cur.input_miss == c->p.input_miss && cur.input_hit == c->p.input_hit &&
            cur.output == c->p.output) {
            c->p = cur;
            return 0;
        }
        if (rc && rc != STORE_ENOTFOUND)
            return rc;
        c->p.effective_from_ms = now;
    }
    if (c->p.effective_from_ms == 0)
        c->p.effective_from_ms = now;
    int rc = price_insert(st, &c->p, false);
    c->added = rc == 0;
    return rc;
}

int store_price_set(struct store *st, const char *model, int64_t input_miss, int64_t input_hit,
                    int64_t output, int64_t effective_from_ms, struct store_price *out)
{
    int rc = check_price(model, input_miss, input_hit, output);
    if (rc)
        return rc;
    struct price_set_ctx c = {.p = {0, "", input_miss, input_hit, output, effective_from_ms}};
    snprintf(c.p.model, sizeof(c.p.model), "%s", model);
    rc = sdb_run(st, true, price_set_tx, &c);
    if (rc == 0 && out)
        *out = c.p;
    return rc;
}

int store_price_sync(struct store *st, const char *model, int64_t input_miss, int64_t input_hit,
                     int64_t output)
{
    int rc = check_price(model, input_miss, input_hit, output);
    if (rc)
        return rc;
    struct price_set_ctx c = {.p = {0, "", input_miss, input_hit, output, 0},
                              .only_if_changed = true};
    snprintf(c.p.model, sizeof(c.p.model), "%s", model);
    rc = sdb_run(st, true, price_set_tx, &c);
    return rc ? rc : c.added ? 1 : 0;
}

struct price_get_ctx {
    const char *model;
    struct store_price *out;
};

static int price_get_tx(struct store *st, void *ctx)
{
    struct price_get_ctx *c = ctx;
    return price_in_force(st, c->model, sdb_now(st), c->out);
}

int store_price_current(struct store *st, const char *model, const struct store_price *fallback,
                        struct store_price *out)
{
    memset(out, 0, sizeof(*out));
    int rc = sdb_check_model(model);
    if (rc)
        return rc;
    struct price_get_ctx c = {model, out};
    rc = sdb_run(st, false, price_get_tx, &c);
    if (rc == STORE_ENOTFOUND && fallback) {
        *out = *fallback;
        out->id = 0;
        snprintf(out->model, sizeof(out->model), "%s", model);
        return 0;
    }
    return rc;
}

/* ---- usage rows ---- */

int sdb_check_usage(const struct store_usage_in *u)
{
    int rc = sdb_check_id("request id", u->request_id, STORE_ID_MAX);
    rc = rc ? rc : sdb_check_model(u->model);
    if (rc == 0 && u->session_id)
        rc = sdb_check_id("session id", u->session_id, STORE_ID_MAX);
    if (rc)
        return rc;
    if (u->prompt_tokens < 0 || u->cached_tokens < 0 || u->cached_tokens > u->prompt_tokens ||
        u->completion_tokens < 0 || u->reasoning_tokens < 0 ||
        u->reasoning_tokens > u->completion_tokens)
        return sdb_fail(STORE_EINVAL,
                        "usage counts prompt=%lld cached=%lld completion=%lld reasoning=%lld",
                        (long long)u->prompt_tokens, (long long)u->cached_tokens,
                        (long long)u->completion_tokens, (long long)u->reasoning_tokens);
    if ((unsigned)u->status > STORE_MSG_ERROR)
        return sdb_fail(STORE_EINVAL, "usage status %d is invalid", (int)u->status);
    return 0;
}

static void usage_from_row(sqlite3_stmt *s, struct store_usage *u)
{
    memset(u, 0, sizeof(*u));
    u->id = sqlite3_column_int64(s, 0);
    sdb_col_copy(s, 1, u->request_id, sizeof(u->request_id));
    u->user_id = sqlite3_column_int64(s, 2);
    sdb_col_copy(s, 3, u->session_id, sizeof(u->session_id));
    sdb_col_copy(s, 4, u->model, sizeof(u->model));
    u->prompt_tokens = sqlite3_column_int64(s, 5);
    u->cached_tokens = sqlite3_column_int64(s, 6);
    u->completion_tokens = sqlite3_column_int64(s, 7);
    u->reasoning_tokens = sqlite3_column_int64(s, 8);
    u->price_id = sqlite3_column_int64(s, 9);
    u->cost_micros = sqlite3_column_int64(s, 10);
    u->status = sdb_status_parse((const char *)sqlite3_column_text(s, 11));
    u->created_ms = sqlite3_column_int64(s, 12);
}

int sdb_usage_insert(struct store *st, const struct store_usage_in *u, int64_t now,
                     struct store_usage *out)
{
    int rc = sdb_check_usage(u);
    if (rc)
        return rc;
    struct store_price p;
    rc = price_for_billing(st, u->model, u->fallback_price, now, &p);
    if (rc)
        return rc;
    int64_t cost;
    rc = store_cost_micros(&p, u->prompt_tokens, u->cached_tokens, u->completion_tokens, &cost);
    if (rc)
        return rc;
    sqlite3_stmt *s = sdb_prep(st, sql_usage_insert);
    if (!s)
        return STORE_ESQL;
    rc = sdb_bind_text(st, s, 1, u->request_id);
    rc = rc ? rc : sdb_bind_int(st, s, 2, u->user_id);
    if (rc == 0 && u->session_id)
        rc = sdb_bind_text(st, s, 3, u->session_id);
    rc = rc ? rc : sdb_bind_text(st, s, 4, u->model);
    rc = rc ? rc : sdb_bind_int(st, s, 5, u->prompt_tokens);
    rc = rc ? rc : sdb_bind_int(st, s, 6, u->cached_tokens);
    rc = rc ? rc : sdb_bind_int(st, s, 7, u->completion_tokens);
    rc = rc ? rc : sdb_bind_int(st, s, 8, u->reasoning_tokens);
    rc = rc ? rc : sdb_bind_int(st, s, 9, p.id);
    rc = rc ? rc : sdb_bind_int(st, s, 10, cost);
    rc = rc ? rc : sdb_bind_text(st, s, 11, store_status_name(u->status));
    rc = rc ? rc : sdb_bind_int(st, s, 12, now);
    rc = rc ? rc : sdb_exec_stmt(st, s);
    sdb_done(s);
    if (rc == STORE_EEXISTS)
        return sdb_fail(rc, "usage for request '%s' is already recorded", u->request_id);
    if (rc == STORE_EINVAL)
        return sdb_fail(rc, "usage for request '%s': user %lld not found", u->request_id,
                        (long long)u->user_id);
    rc = rc ? rc : sdb_quota_settle(st, u->request_id); /* billed: its reservation goes */
    if (rc)
        return rc;
    if (out) {
        memset(out, 0, sizeof(*out));
        out->id = sqlite3_last_insert_rowid(sdb_db(st));
        snprintf(out->request_id, sizeof(out->request_id), "%s", u->request_id);
        out->user_id = u->user_id;
        snprintf(out->session_id, sizeof(out->session_id), "%s",
                 u->session_id ? u->session_id : "");
        snprintf(out->model, sizeof(out->model), "%s", u->model);
        out->prompt_tokens = u->prompt_tokens;
        out->cached_tokens = u->cached_tokens;
        out->completion_tokens = u->completion_tokens;
        out->reasoning_tokens = u->reasoning_tokens;
        out->price_id = p.id;
        out->cost_micros = cost;
        out->status = u->status;
        out->created_ms = now;
    }
    return 0;
}

struct record_ctx {
    const struct store_usage_in *u;
    struct store_usage out;
};

static int record_tx(struct store *st, void *ctx)
{
    struct record_ctx *c = ctx;
    return sdb_usage_insert(st, c->u, sdb_now(st), &c->out);
}

int store_usage_record(struct store *st, const struct store_usage_in *u, struct store_usage *out)
{
    struct record_ctx c = {.u = u};
    int rc = sdb_run(st, true, record_tx, &c);
    if (out)
        *out = rc == 0 ? c.out : (struct store_usage){0};
    return rc;
}

struct get_ctx {
    int64_t user_id;
    const char *request_id;
    struct store_usage *out;
};

static int get_tx(struct store *st, void *ctx)
{
    struct get_ctx *c = ctx;
    sqlite3_stmt *s = sdb_prep(st, sql_usage_get);
    if (!s)
        return STORE_ESQL;
    int rc = sdb_bind_text(st, s, 1, c->request_id);
    rc = rc ? rc : sdb_bind_int(st, s, 2, c->user_id);
    rc = rc ? rc : sdb_step(st, s);
    if (rc == SQLITE_ROW) {
        usage_from_row(s, c->out);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = sdb_fail(STORE_ENOTFOUND, "no usage for request '%.64s'", c->request_id);
    }
    sdb_done(s);
    return rc;
}

int store_usage_get(struct store *st, int64_t user_id, const char *request_id,
                    struct store_usage *out)
{
    memset(out, 0, sizeof(*out));
    if (sdb_check_id("request id", request_id, STORE_ID_MAX) != 0)
        return sdb_fail(STORE_ENOTFOUND, "no usage for that request id");
    struct get_ctx c = {user_id, request_id, out};
    return sdb_run(st, false, get_tx, &c);
}

/* ---- totals ---- */

struct totals_ctx {
    const struct store_usage_query *q;
    struct store_usage_total *arr;
    size_t n;
};

static void total_from_row(sqlite3_stmt *s, struct store_usage_total *t)
{
    memset(t, 0, sizeof(*t));
    sdb_col_copy(s, 0, t->key, sizeof(t->key));
    t->user_id = sqlite3_column_int64(s, 1);
    t->requests = sqlite3_column_int64(s, 2);
    t->prompt_tokens = sqlite3_column_int64(s, 3);
    t->cached_tokens = sqlite3_column_int64(s, 4);
    t->miss_tokens = t->prompt_tokens - t->cached_tokens;
    t->completion_tokens = sqlite3_column_int64(s, 5);
    t->reasoning_tokens = sqlite3_column_int64(s, 6);
    t->cost_micros = sqlite3_column_int64(s, 7);
}

static int totals_tx(struct store *st, void *ctx)
{
    struct totals_ctx *c = ctx;
    const struct store_usage_query *q = c->q;
    free(c->arr);
    c->arr = NULL;
    c->n = 0;
    sqlite3_stmt *s = sdb_prep(st, q->user_id ? sql_totals_user : sql_totals_all);
    if (!s)
        return STORE_ESQL;
    int rc = sdb_bind_int(st, s, 1, (int64_t)q->group_by);
    rc = rc ? rc : sdb_bind_int(st, s, 2, q->user_id);
    rc = rc ? rc : sdb_bind_int(st, s, 3, q->from_ms);
    rc = rc ? rc : sdb_bind_int(st, s, 4, q->to_ms > 0 ? q->to_ms : INT64_MAX);
    while (rc == 0 && (rc = sdb_step(st, s)) == SQLITE_ROW) {
        struct store_usage_total *t = sdb_grow((void **)&c->arr, c->n, sizeof(*t));
        if (!t) {
            rc = sdb_fail(STORE_ENOMEM, "usage totals: out of memory");
            break;
        }
        total_from_row(s, t);
        c->n++;
        rc = 0;
    }
    sdb_done(s);
    if (rc != SQLITE_DONE)
        return rc;
    if (c->n == 0 && q->group_by == STORE_GROUP_NONE) {
        c->arr = calloc(1, sizeof(*c->arr));
        if (!c->arr)
            return sdb_fail(STORE_ENOMEM, "usage totals: out of memory");
        c->arr->user_id = q->user_id;
        c->n = 1;
    }
    return 0;
}

int store_usage_totals(struct store *st, const struct store_usage_query *q,
                       struct store_usage_total **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if ((unsigned)q->group_by > STORE_GROUP_USER)
        return sdb_fail(STORE_EINVAL, "group_by %d is invalid", (int)q->group_by);
    if (q->from_ms < 0 || q->to_ms < 0)
        return sdb_fail(STORE_EINVAL, "negative time bound");
    struct totals_ctx c = {q, NULL, 0};
    int rc = sdb_run(st, false, totals_tx, &c);
    if (rc) {
        free(c.arr);
        return rc;
    }
    *out = c.arr;
    *n = c.n;
    return 0;
}

/* Start of the UTC calendar month containing now_ms, in ms. */
static int64_t month_start_ms(int64_t now_ms)
{
    time_t t = (time_t)(now_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    tm.tm_mday = 1;
    tm.tm_hour = 0;
    tm.tm_min = 0;
    tm.tm_sec = 0;
    return (int64_t)timegm(&tm) * 1000;
}

struct month_ctx {
    int64_t user_id;
    int64_t tokens;
};

int sdb_usage_month(struct store *st, int64_t user_id, int64_t *tokens)
{
    sqlite3_stmt *s = sdb_prep(st, sql_usage_month);
    if (!s)
        return STORE_ESQL;
    int rc = sdb_bind_int(st, s, 1, user_id);
    rc = rc ? rc : sdb_bind_int(st, s, 2, month_start_ms(sdb_now(st)));
    rc = rc ? rc : sdb_step(st, s);
    *tokens = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sdb_done(s);
    return rc == SQLITE_ROW ? 0 : rc < 0 ? rc : STORE_ESQL;
}

static int month_tx(struct store *st, void *ctx)
{
    struct month_ctx *c = ctx;
    return sdb_usage_month(st, c->user_id, &c->tokens);
}

int store_usage_month_tokens(struct store *st, int64_t user_id, int64_t *tokens)
{
    struct month_ctx c = {user_id, 0};
    int rc = sdb_run(st, false, month_tx, &c);
    *tokens = rc == 0 ? c.tokens : 0;
    return rc;
}

struct audit_ctx {
    int64_t rows;
    int64_t mismatch;
};

static int audit_tx(struct store *st, void *ctx)
{
    struct audit_ctx *c = ctx;
    c->rows = 0;
    c->mismatch = 0;
    sqlite3_stmt *s = sdb_prep(st, sql_usage_audit);
    if (!s)
        return STORE_ESQL;
    int rc;
    while ((rc = sdb_step(st, s)) == SQLITE_ROW) {
        struct store_price p = {
            .input_miss = sqlite3_column_int64(s, 4),
            .input_hit = sqlite3_column_int64(s, 5),
            .output = sqlite3_column_int64(s, 6),
        };
        int64_t cost;
        int crc = store_cost_micros(&p, sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1),
                                    sqlite3_column_int64(s, 2), &cost);
        c->rows++;
        if (crc || cost != sqlite3_column_int64(s, 3))
            c->mismatch++;
    }
    sdb_done(s);
    return rc == SQLITE_DONE ? 0 : rc;
}

int store_usage_audit(struct store *st, int64_t *n_rows, int64_t *n_mismatch)
{
    struct audit_ctx c = {0, 0};
    int rc = sdb_run(st, false, audit_tx, &c);
    if (n_rows)
        *n_rows = c.rows;
    if (n_mismatch)
        *n_mismatch = c.mismatch;
    return rc;
}
