/* store_sessions.c - conversations: create, get, list, update, delete.
 *
 * Every query is scoped by user_id: a session of another user is answered exactly
 * like a missing one (STORE_ENOTFOUND), so ids cannot be probed. Ids are
 * "sess_" + 32 hex digits from 16 random bytes. Listing is newest activity first
 * (updated_at, then rowid, descending) with a keyset cursor, so paging costs the
 * same on page 1 and page 1000. Called from any thread (see store.h). */
#include "store_int.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define SESSION_RANDOM_BYTES 16

static const char sql_session_insert[] =
    "INSERT INTO sessions (id, user_id, title, model, system_prompt, created_at, updated_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)";
#define SESSION_COLUMNS                                                                            \
    "s.id, s.user_id, s.title, s.model, s.system_prompt, s.created_at, s.updated_at, "             \
    "(SELECT count(*) FROM messages m WHERE m.session_id = s.id), "                                \
    "(SELECT coalesce(sum(m.n_tokens), 0) FROM messages m WHERE m.session_id = s.id) "
static const char sql_session_get[] =
    "SELECT " SESSION_COLUMNS "FROM sessions s WHERE s.id = ?1 AND s.user_id = ?2";
static const char sql_session_cursor[] =
    "SELECT updated_at, rowid FROM sessions WHERE id = ?1 AND user_id = ?2";
static const char sql_session_list[] =
    "SELECT " SESSION_COLUMNS "FROM sessions s WHERE s.user_id = ?1 "
    "AND (s.updated_at < ?2 OR (s.updated_at = ?2 AND s.rowid < ?3)) "
    "ORDER BY s.updated_at DESC, s.rowid DESC LIMIT ?4";
static const char sql_session_owned[] = "SELECT 1 FROM sessions WHERE id = ?1 AND user_id = ?2";
static const char sql_session_touch[] =
    "UPDATE sessions SET updated_at = max(updated_at, ?2) WHERE id = ?1";
static const char sql_session_update[] =
    "UPDATE sessions SET title = coalesce(?3, title), "
    "system_prompt = coalesce(?4, system_prompt), updated_at = max(updated_at, ?5) "
    "WHERE id = ?1 AND user_id = ?2";
static const char sql_session_delete[] = "DELETE FROM sessions WHERE id = ?1 AND user_id = ?2";

void store_session_fini(struct store_session *s)
{
    if (!s)
        return;
    free(s->title);
    free(s->model);
    free(s->system_prompt);
    s->title = NULL;
    s->model = NULL;
    s->system_prompt = NULL;
}

void store_sessions_free(struct store_session *arr, size_t n)
{
    if (!arr)
        return;
    for (size_t i = 0; i < n; i++)
        store_session_fini(&arr[i]);
    free(arr);
}

static int session_from_row(sqlite3_stmt *s, struct store_session *out)
{
    memset(out, 0, sizeof(*out));
    sdb_col_copy(s, 0, out->id, sizeof(out->id));
    out->user_id = sqlite3_column_int64(s, 1);
    out->title = sdb_col_strdup(s, 2);
    out->model = sdb_col_strdup(s, 3);
    out->system_prompt = sdb_col_strdup(s, 4);
    out->created_ms = sqlite3_column_int64(s, 5);
    out->updated_ms = sqlite3_column_int64(s, 6);
    out->n_messages = sqlite3_column_int64(s, 7);
    out->n_tokens = sqlite3_column_int64(s, 8);
    if (!out->title || !out->model || !out->system_prompt) {
        store_session_fini(out);
        return sdb_fail(STORE_ENOMEM, "session: out of memory");
    }
    return 0;
}

static int session_not_found(const char *id)
{
    return sdb_fail(STORE_ENOTFOUND, "session '%.64s' not found", id);
}

/* Reads one of the user's sessions into *out (may be NULL: only checks). */
static int session_fetch(struct store *st, int64_t user_id, const char *id,
                         struct store_session *out)
{
    sqlite3_stmt *s = sdb_prep(st, out ? sql_session_get : sql_session_owned);
    if (!s)
        return STORE_ESQL;
    int rc = sdb_bind_text(st, s, 1, id);
    rc = rc ? rc : sdb_bind_int(st, s, 2, user_id);
    rc = rc ? rc : sdb_step(st, s);
    if (rc == SQLITE_ROW)
        rc = out ? session_from_row(s, out) : 0;
    else if (rc == SQLITE_DONE)
        rc = session_not_found(id);
    sdb_done(s);
    return rc;
}

int sdb_session_owned(struct store *st, int64_t user_id, const char *id)
{
    return session_fetch(st, user_id, id, NULL);
}

int sdb_session_touch(struct store *st, const char *id)
{
    sqlite3_stmt *s = sdb_prep(st, sql_session_touch);
    if (!s)
        return STORE_ESQL;
    int rc = sdb_bind_text(st, s, 1, id);
    rc = rc ? rc : sdb_bind_int(st, s, 2, sdb_now(st));
    rc = rc ? rc : sdb_exec_stmt(st, s);
    sdb_done(s);
    return rc;
}

/* ---- create ---- */

struct create_ctx {
    int64_t user_id;
    const char *title;
    const char *model;
    const char *system_prompt;
    char id[STORE_ID_MAX + 1];
    struct store_session *out;
};

static int create_tx(struct store *st, void *ctx)
{
    struct create_ctx *c = ctx;
    unsigned char raw[SESSION_RANDOM_BYTES];
    randombytes_buf(raw, sizeof(raw));
    memcpy(c->id, "sess_", 5);
    sodium_bin2hex(c->id + 5, sizeof(c->id) - 5, raw, sizeof(raw));
    sqlite3_stmt *s = sdb_prep(st, sql_session_insert);
    if (!s)
        return STORE_ESQL;
    int rc = sdb_bind_text(st, s, 1, c->id);
    rc = rc ? rc : sdb_bind_int(st, s, 2, c->user_id);
    rc = rc ? rc : sdb_bind_text(st, s, 3, c->title);
    rc = rc ? rc : sdb_bind_text(st, s, 4, c->model);
    rc = rc ? rc : sdb_bind_text(st, s, 5, c->system_prompt);
    rc = rc ? rc : sdb_bind_int(st, s, 6, sdb_now(st));
    rc = rc ? rc : sdb_exec_stmt(st, s);
    sdb_done(s);
    if (rc == STORE_EINVAL)
        return sdb_fail(rc, "user %lld not found", (long long)c->user_id);
    if (rc)
        return rc;
    return c->out ? session_fetch(st, c->user_id, c->id, c->out) : 0;
}

int store_session_create(struct store *st, int64_t user_id, const char *title, const char *model,
                         const char *system_prompt, struct store_session *out)
{
    if (out)
        memset(out, 0, sizeof(*out));
    struct create_ctx c = {user_id, title, model, system_prompt, "", out};
    return sdb_run(st, true, create_tx, &c);
}

/* ---- get / list ---- */

struct get_ctx {
    int64_t user_id;
    const char *id;
    struct store_session *out;
};

static int get_tx(struct store *st, void *ctx)
{
    struct get_ctx *c = ctx;
    return session_fetch(st, c->user_id, c->id, c->out);
}

int store_session_get(struct store *st, int64_t user_id, const char *id, struct store_session *out)
{
    memset(out, 0, sizeof(*out));
    int rc = sdb_check_id("session id", id, STORE_ID_MAX);
    if (rc)
        return rc == STORE_EINVAL ? session_not_found(id ? id : "") : rc;
    struct get_ctx c = {user_id, id, out};
    return sdb_run(st, false, get_tx, &c);
}

struct list_ctx {
    int64_t user_id;
    const char *after;
    int limit;
    struct store_session *arr;
    size_t n;
    bool has_more;
};

static void list_reset(struct list_ctx *c)
{
    store_sessions_free(c->arr, c->n);
    c->arr = NULL;
    c->n = 0;
    c->has_more = false;
}

/* The (updated_at, rowid) cursor of the `after` session; the largest values when none. */
static int list_cursor(struct store *st, struct list_ctx *c, int64_t *updated, int64_t *rowid)
{
    *updated = INT64_MAX;
    *rowid = INT64_MAX;
    if (!c->after)
        return 0;
    sqlite3_stmt *s = sdb_prep(st, sql_session_cursor);
    if (!s)
        return STORE_ESQL;
    int rc = sdb_bind_text(st, s, 1, c->after);
    rc = rc ? rc : sdb_bind_int(st, s, 2, c->user_id);
    rc = rc ? rc : sdb_step(st, s);
    if (rc == SQLITE_ROW) {
        *updated = sqlite3_column_int64(s, 0);
        *rowid = sqlite3_column_int64(s, 1);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = session_not_found(c->after);
    }
    sdb_done(s);
    return rc;
}

static int list_tx(struct store *st, void *ctx)
{
    struct list_ctx *c = ctx;
    list_reset(c);
    int64_t updated;
    int64_t rowid;
    int rc = list_cursor(st, c, &updated, &rowid);
    if (rc)
        return rc;
    sqlite3_stmt *s = sdb_prep(st, sql_session_list);
    if (!s)
        return STORE_ESQL;
    rc = sdb_bind_int(st, s, 1, c->user_id);
    rc = rc ? rc : sdb_bind_int(st, s, 2, updated);
    rc = rc ? rc : sdb_bind_int(st, s, 3, rowid);
    rc = rc ? rc : sdb_bind_int(st, s, 4, (int64_t)c->limit + 1);
    while (rc == 0 && (rc = sdb_step(st, s)) == SQLITE_ROW) {
        if (c->n == (size_t)c->limit) {
            c->has_more = true;
            rc = SQLITE_DONE;
            break;
        }
        struct store_session *e = sdb_grow((void **)&c->arr, c->n, sizeof(*e));
        if (!e) {
            rc = sdb_fail(STORE_ENOMEM, "session list: out of memory");
            break;
        }
        rc = session_from_row(s, e);
        if (rc == 0)
            c->n++;
    }
    sdb_done(s);
    return rc == SQLITE_DONE ? 0 : rc;
}

int store_session_list(struct store *st, int64_t user_id, const char *after, int limit,
                       struct store_session **out, size_t *n, bool *has_more)
{
    *out = NULL;
    *n = 0;
    if (has_more)
        *has_more = false;
    if (limit < 1 || limit > 1000)
        return sdb_fail(STORE_EINVAL, "limit %d is not in 1..1000", limit);
    if (after && sdb_check_id("after", after, STORE_ID_MAX) != 0)
        return session_not_found(after);
    struct list_ctx c = {.user_id = user_id, .after = after, .limit = limit};
    int rc = sdb_run(st, false, list_tx, &c);
    if (rc) {
        list_reset(&c);
        return rc;
    }
    *out = c.arr;
    *n = c.n;
    if (has_more)
        *has_more = c.has_more;
    return 0;
}

/* ---- update / delete ---- */

struct change_ctx {
    int64_t user_id;
    const char *id;
    const char *title;
    const char *system_prompt;
    bool delete;
};

static int change_tx(struct store *st, void *ctx)
{
    struct change_ctx *c = ctx;
    sqlite3_stmt *s = sdb_prep(st, c->delete ? sql_session_delete : sql_session_update);
    if (!s)
        return STORE_ESQL;
    int rc = sdb_bind_text(st, s, 1, c->id);
    rc = rc ? rc : sdb_bind_int(st, s, 2, c->user_id);
    if (!c->delete) {
        /* An unbound parameter is NULL: coalesce keeps the old value. */
        if (rc == 0 && c->title)
            rc = sdb_bind_text(st, s, 3, c->title);
        if (rc == 0 && c->system_prompt)
            rc = sdb_bind_text(st, s, 4, c->system_prompt);
        rc = rc ? rc : sdb_bind_int(st, s, 5, sdb_now(st));
    }
    rc = rc ? rc : sdb_exec_stmt(st, s);
    sdb_done(s);
    if (rc == 0 && sqlite3_changes(sdb_db(st)) == 0)
        rc = session_not_found(c->id);
    return rc;
}

int store_session_update(struct store *st, int64_t user_id, const char *id, const char *title,
                         const char *system_prompt)
{
    if (sdb_check_id("session id", id, STORE_ID_MAX) != 0)
        return session_not_found(id ? id : "");
    struct change_ctx c = {user_id, id, title, system_prompt, false};
    return sdb_run(st, true, change_tx, &c);
}

int store_session_delete(struct store *st, int64_t user_id, const char *id)
{
    if (sdb_check_id("session id", id, STORE_ID_MAX) != 0)
        return session_not_found(id ? id : "");
    struct change_ctx c = {user_id, id, NULL, NULL, true};
    return sdb_run(st, true, change_tx, &c);
}
