/* store_replies.c - streaming assistant replies: begin, group commit, finish, and the
 * billing of replies a crash interrupted.
 *
 * A reply starts as an empty `partial` message, with store_reply_begin_billed also a
 * pending usage record (its request id, prompt tokens and price fallback). While it streams, each
 * store_reply_flush call leaves the reply's latest text in an in-memory queue; when
 * flush_interval_ms has passed since the last group commit, the calling thread takes
 * the whole queue and writes every queued reply in ONE transaction (a commit costs
 * milliseconds with synchronous=FULL, so one per stream per interval would not scale
 * to hundreds of streams; one per interval does). store_finish_turn then writes the
 * final message and the usage row and drops the pending record, in one transaction:
 * a reply is never stored without being billed, nor billed twice. After a crash the
 * pending records that remain are billed by store_recover_interrupted for the tokens
 * of the last committed flush, which is exactly the text that was stored.
 *
 * Threads: any. The queue is guarded by flush_mu and never held across a database
 * call; at most one group commit runs at a time (`flushing`). A batch that lands
 * after a reply was finished changes nothing: its UPDATEs only touch `partial`
 * messages and existing pending records. */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char sql_usage_exists[] = "SELECT 1 FROM usage WHERE request_id = ?1";
static const char sql_pending_insert[] =
    "INSERT INTO pending_usage (message_id, request_id, user_id, session_id, model, "
    "prompt_tokens, cached_tokens, fallback_input_miss, fallback_input_hit, fallback_output, "
    "created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
static const char sql_msg_flush[] =
    "UPDATE messages SET content = ?2, reasoning = ?3 WHERE id = ?1 AND status = 'partial'";
static const char sql_pending_flush[] =
    "UPDATE pending_usage SET completion_tokens = ?2, reasoning_tokens = ?3 WHERE message_id = ?1";
static const char sql_pending_delete[] = "DELETE FROM pending_usage WHERE message_id = ?1";
static const char sql_pending_list[] =
    "SELECT message_id, request_id, user_id, session_id, model, prompt_tokens, cached_tokens, "
    "completion_tokens, reasoning_tokens, fallback_input_miss, fallback_input_hit, "
    "fallback_output, created_at FROM pending_usage ORDER BY message_id";
static const char sql_pending_clear[] = "DELETE FROM pending_usage";
static const char sql_msg_final[] =
    "UPDATE messages SET content = ?2, reasoning = ?3, n_tokens = ?4, tokens = ?5, "
    "fingerprint = ?6, status = ?7, tool_calls = ?9, tool_call_id = ?10 "
    "WHERE id = ?1 AND session_id = ?8";

/* ---- begin ---- */

struct begin_ctx {
    const struct store_usage_in *u; /* NULL: no pending usage */
    int64_t user_id;
    const char *session_id;
    int64_t msg_id;
};

/* Fails with STORE_EEXISTS when request_id already has a usage row. */
static int check_not_billed(struct store *st, const char *request_id)
{
    sqlite3_stmt *s = sdb_prep(st, sql_usage_exists);
    if (!s)
        return STORE_ESQL;
    int rc = sdb_bind_text(st, s, 1, request_id);
    rc = rc ? rc : sdb_step(st, s);
    sdb_done(s);
    if (rc == SQLITE_ROW)
        return sdb_fail(STORE_EEXISTS, "usage for request '%s' is already recorded", request_id);
    return rc == SQLITE_DONE ? 0 : rc;
}

static int begin_tx(struct store *st, void *ctx)
{
    struct begin_ctx *c = ctx;
    const struct store_usage_in *u = c->u;
    int rc = sdb_session_owned(st, c->user_id, c->session_id);
    if (rc == 0 && u)
        rc = check_not_billed(st, u->request_id);
    struct store_msg_in m = {.role = "assistant", .status = STORE_MSG_PARTIAL};
    rc = rc ? rc : sdb_msg_insert(st, c->session_id, &m, &c->msg_id, NULL);
    if (rc || !u)
        return rc;
    const struct store_price *fb = u->fallback_price;
    sqlite3_stmt *s = sdb_prep(st, sql_pending_insert);
    if (!s)
        return STORE_ESQL;
    rc = sdb_bind_int(st, s, 1, c->msg_id);
    rc = rc ? rc : sdb_bind_text(st, s, 2, u->request_id);
    rc = rc ? rc : sdb_bind_int(st, s, 3, u->user_id);
    rc = rc ? rc : sdb_bind_text(st, s, 4, u->session_id);
    rc = rc ? rc : sdb_bind_text(st, s, 5, u->model);
    rc = rc ? rc : sdb_bind_int(st, s, 6, u->prompt_tokens);
    rc = rc ? rc : sdb_bind_int(st, s, 7, u->cached_tokens);
    rc = rc ? rc : sdb_bind_int(st, s, 8, fb ? fb->input_miss : 0);
    rc = rc ? rc : sdb_bind_int(st, s, 9, fb ? fb->input_hit : 0);
    rc = rc ? rc : sdb_bind_int(st, s, 10, fb ? fb->output : 0);
    rc = rc ? rc : sdb_bind_int(st, s, 11, sdb_now(st));
    rc = rc ? rc : sdb_exec_stmt(st, s);
    sdb_done(s);
    if (rc == STORE_EEXISTS)
        return sdb_fail(rc, "request '%s' was begun before", u->request_id);
    return rc;
}

static int reply_begin(struct store *st, int64_t user_id, const char *session_id,
                       const struct store_usage_in *u, struct store_reply *r)
{
    struct begin_ctx c = {.u = u, .user_id = user_id, .session_id = session_id};
    int rc = sdb_run(st, true, begin_tx, &c);
    if (rc)
        return rc;
    r->msg_id = c.msg_id;
    r->user_id = user_id;
    snprintf(r->session_id, sizeof(r->session_id), "%s", session_id);
    return 0;
}

int store_reply_begin(struct store *st, int64_t user_id, const char *session_id,
                      struct store_reply *r)
{
    memset(r, 0, sizeof(*r));
    if (sdb_check_id("session id", session_id, STORE_ID_MAX) != 0)
        return sdb_fail(STORE_ENOTFOUND, "session not found");
    return reply_begin(st, user_id, session_id, NULL, r);
}

int store_reply_begin_billed(struct store *st, const struct store_usage_in *u,
                             struct store_reply *r)
{
    memset(r, 0, sizeof(*r));
    if (!u->session_id)
        return sdb_fail(STORE_EINVAL, "reply: usage has no session id");
    int rc = sdb_check_usage(u);
    if (rc)
        return rc;
    const struct store_price *fb = u->fallback_price;
    if (fb && (fb->input_miss < 0 || fb->input_hit < 0 || fb->output < 0))
        return sdb_fail(STORE_EINVAL, "reply: negative fallback price");
    return reply_begin(st, u->user_id, u->session_id, u, r);
}

/* ---- group commit ---- */

static void dirty_clear(struct sdb_dirty *d)
{
    free(d->content);
    free(d->reasoning);
    d->content = NULL;
    d->reasoning = NULL;
}

static void batch_free(struct sdb_dirty *arr, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dirty_clear(&arr[i]);
    free(arr);
}

void sdb_dirty_free(struct store *st)
{
    batch_free(st->dirty, st->n_dirty);
    st->dirty = NULL;
    st->n_dirty = 0;
}

/* Index of msg_id in the queue, or n_dirty. Under flush_mu. */
static size_t dirty_find(struct store *st, int64_t msg_id)
{
    size_t i = 0;
    while (i < st->n_dirty && st->dirty[i].msg_id != msg_id)
        i++;
    return i;
}

/* Queues (or replaces) a reply's latest text. Under flush_mu. */
static int dirty_put(struct store *st, int64_t msg_id, const char *content, const char *reasoning,
                     int64_t completion_tokens, int64_t reasoning_tokens)
{
    char *c = strdup(content ? content : "");
    char *r = strdup(reasoning ? reasoning : "");
    size_t i = dirty_find(st, msg_id);
    struct sdb_dirty *d = NULL;
    if (c && r)
        d = i < st->n_dirty ? &st->dirty[i] : sdb_grow((void **)&st->dirty, i, sizeof(*d));
    if (!d) {
        free(c);
        free(r);
        return sdb_fail(STORE_ENOMEM, "reply flush: out of memory");
    }
    if (i < st->n_dirty)
        dirty_clear(d);
    else
        st->n_dirty++;
    *d = (struct sdb_dirty){msg_id, c, r, completion_tokens, reasoning_tokens};
    return 0;
}

/* Drops a reply from the queue (it is being finished). */
static void dirty_drop(struct store *st, int64_t msg_id)
{
    pthread_mutex_lock(&st->flush_mu);
    size_t i = dirty_find(st, msg_id);
    if (i < st->n_dirty) {
        dirty_clear(&st->dirty[i]);
        st->dirty[i] = st->dirty[--st->n_dirty];
    }
    pthread_mutex_unlock(&st->flush_mu);
}

struct batch {
    struct sdb_dirty *arr;
    size_t n;
};

static int batch_tx(struct store *st, void *ctx)
{
    struct batch *b = ctx;
    for (size_t i = 0; i < b->n; i++) {
        const struct sdb_dirty *d = &b->arr[i];
        sqlite3_stmt *s = sdb_prep(st, sql_msg_flush);
        if (!s)
            return STORE_ESQL;
        int rc = sdb_bind_int(st, s, 1, d->msg_id);
        rc = rc ? rc : sdb_bind_text(st, s, 2, d->content);
        rc = rc ? rc : sdb_bind_text(st, s, 3, d->reasoning);
        rc = rc ? rc : sdb_exec_stmt(st, s);
        sdb_done(s);
        if (rc)
            return rc;
        if (d->completion_tokens < 0) /* store_reply_flush: counts unknown */
            continue;
        const int64_t counts[] = {d->msg_id, d->completion_tokens, d->reasoning_tokens};
        if ((rc = sdb_exec_ints(st, sql_pending_flush, counts, 3)))
            return rc;
    }
    return 0;
}

/* Queues r's text (token counts -1: unknown) and commits the queue when due. */
static int reply_flush(struct store *st, struct store_reply *r, const char *content,
                       const char *reasoning, int64_t completion_tokens, int64_t reasoning_tokens,
                       bool force)
{
    if (!r->msg_id)
        return sdb_fail(STORE_EINVAL, "reply was not begun");
    int64_t now = sdb_now(st);
    pthread_mutex_lock(&st->flush_mu);
    int rc = dirty_put(st, r->msg_id, content, reasoning, completion_tokens, reasoning_tokens);
    bool due = !st->flushing && now - st->last_group_ms >= st->p.flush_interval_ms;
    if (rc || (!force && !due)) {
        pthread_mutex_unlock(&st->flush_mu);
        return rc;
    }
    while (st->flushing)
        pthread_cond_wait(&st->flush_cv, &st->flush_mu);
    /* The commit we waited for may have taken (and written, or lost) our text. */
    if (dirty_find(st, r->msg_id) == st->n_dirty)
        rc = dirty_put(st, r->msg_id, content, reasoning, completion_tokens, reasoning_tokens);
    if (rc) {
        pthread_mutex_unlock(&st->flush_mu);
        return rc;
    }
    struct batch b = {st->dirty, st->n_dirty};
    st->dirty = NULL;
    st->n_dirty = 0;
    st->flushing = true;
    st->last_group_ms = now;
    pthread_mutex_unlock(&st->flush_mu);

    rc = sdb_run(st, true, batch_tx, &b);

    pthread_mutex_lock(&st->flush_mu);
    st->flushing = false;
    if (rc == 0)
        st->n_group_commits++;
    pthread_cond_broadcast(&st->flush_cv);
    pthread_mutex_unlock(&st->flush_mu);
    batch_free(b.arr, b.n);
    if (rc) {
        sdb_log(st, STORE_LOG_ERROR, "store: group commit of %zu replies failed: %s", b.n,
                store_errmsg());
        return rc;
    }
    r->n_flushes++;
    return 1;
}

int store_reply_flush(struct store *st, struct store_reply *r, const char *content,
                      const char *reasoning, bool force)
{
    return reply_flush(st, r, content, reasoning, -1, -1, force);
}

int store_reply_flush_tokens(struct store *st, struct store_reply *r, const char *content,
                             const char *reasoning, int64_t completion_tokens,
                             int64_t reasoning_tokens, bool force)
{
    if (completion_tokens < 0 || reasoning_tokens < 0 || reasoning_tokens > completion_tokens)
        return sdb_fail(STORE_EINVAL, "reply flush: completion=%lld reasoning=%lld",
                        (long long)completion_tokens, (long long)reasoning_tokens);
    return reply_flush(st, r, content, reasoning, completion_tokens, reasoning_tokens, force);
}

int64_t store_group_commits(struct store *st)
{
    pthread_mutex_lock(&st->flush_mu);
    int64_t n = st->n_group_commits;
    pthread_mutex_unlock(&st->flush_mu);
    return n;
}

/* ---- finishing a turn ---- */

struct finish_ctx {
    const struct store_reply *r;
    const struct store_msg_in *m;
    const struct store_usage_in *u;
    int64_t msg_id;
    struct store_usage usage;
};

/* Rewrites the streaming reply's row as the final message and drops its pending
 * usage. When the row is gone (the session was deleted mid-stream) nothing is stored
 * and msg_id stays 0. */
static int finish_update(struct store *st, struct finish_ctx *c)
{
    sqlite3_stmt *s = sdb_prep(st, sql_msg_final);
    if (!s)
        return STORE_ESQL;
    const struct store_msg_in *m = c->m;
    int rc = sdb_bind_int(st, s, 1, c->r->msg_id);
    rc = rc ? rc : sdb_bind_msg(st, s, 2, m);
    rc = rc ? rc : sdb_bind_text(st, s, 8, c->r->session_id);
    rc = rc ? rc : sdb_bind_msg_tools(st, s, 9, m);
    rc = rc ? rc : sdb_exec_stmt(st, s);
    sdb_done(s);
    if (rc)
        return rc;
    bool stored = sqlite3_changes(sdb_db(st)) == 1;
    rc = sdb_exec_ints(st, sql_pending_delete, &c->r->msg_id, 1);
    if (rc || !stored)
        return rc;
    c->msg_id = c->r->msg_id;
    return sdb_session_touch(st, c->r->session_id);
}

static int finish_tx(struct store *st, void *ctx)
{
    struct finish_ctx *c = ctx;
    c->msg_id = 0;
    int rc = 0;
    if (c->r) {
        rc = finish_update(st, c);
    } else {
        /* A session deleted before the reply was stored: bill the request anyway. */
        rc = sdb_session_owned(st, c->u->user_id, c->u->session_id);
        if (rc == 0)
            rc = sdb_msg_insert(st, c->u->session_id, c->m, &c->msg_id, NULL);
        else if (rc == STORE_ENOTFOUND)
            rc = 0;
    }
    if (rc)
        return rc;
    return sdb_usage_insert(st, c->u, sdb_now(st), &c->usage);
}

int store_finish_turn(struct store *st, const struct store_reply *r,
                      const struct store_msg_in *reply, const struct store_usage_in *u,
                      int64_t *msg_id, struct store_usage *usage)
{
    if (msg_id)
        *msg_id = 0;
    if (usage)
        memset(usage, 0, sizeof(*usage));
    int rc = sdb_check_msg(reply);
    if (rc)
        return rc;
    if (!u->session_id || sdb_check_id("session id", u->session_id, STORE_ID_MAX) != 0)
        return sdb_fail(STORE_EINVAL, "finish turn: usage has no valid session id");
    if (r && (r->user_id != u->user_id || strcmp(r->session_id, u->session_id) != 0))
        return sdb_fail(STORE_EINVAL, "finish turn: reply and usage name different sessions");
    if (strcmp(reply->role, "assistant") != 0)
        return sdb_fail(STORE_EINVAL, "finish turn: reply role is '%.32s', not assistant",
                        reply->role);
    if (r)
        dirty_drop(st, r->msg_id);
    struct finish_ctx c = {.r = r, .m = reply, .u = u};
    rc = sdb_run(st, true, finish_tx, &c);
    if (rc)
        return rc;
    if (msg_id)
        *msg_id = c.msg_id;
    if (usage)
        *usage = c.usage;
    return 0;
}

/* ---- recovery after a crash ---- */

struct pending {
    char request_id[STORE_ID_MAX + 1];
    char session_id[STORE_ID_MAX + 1];
    char model[STORE_MODEL_MAX + 1];
    struct store_usage_in u;
    struct store_price fallback;
    int64_t created_ms;
};

struct recover_ctx {
    struct pending *arr;
    size_t n;
    int64_t billed;
};

static void pending_from_row(sqlite3_stmt *s, struct pending *p)
{
    memset(p, 0, sizeof(*p));
    sdb_col_copy(s, 1, p->request_id, sizeof(p->request_id));
    sdb_col_copy(s, 3, p->session_id, sizeof(p->session_id));
    sdb_col_copy(s, 4, p->model, sizeof(p->model));
    p->u.user_id = sqlite3_column_int64(s, 2);
    p->u.prompt_tokens = sqlite3_column_int64(s, 5);
    p->u.cached_tokens = sqlite3_column_int64(s, 6);
    p->u.completion_tokens = sqlite3_column_int64(s, 7);
    p->u.reasoning_tokens = sqlite3_column_int64(s, 8);
    p->fallback.input_miss = sqlite3_column_int64(s, 9);
    p->fallback.input_hit = sqlite3_column_int64(s, 10);
    p->fallback.output = sqlite3_column_int64(s, 11);
    p->created_ms = sqlite3_column_int64(s, 12);
    p->u.status = STORE_MSG_PARTIAL;
}

static int recover_load(struct store *st, struct recover_ctx *c)
{
    sqlite3_stmt *s = sdb_prep(st, sql_pending_list);
    if (!s)
        return STORE_ESQL;
    int rc;
    while ((rc = sdb_step(st, s)) == SQLITE_ROW) {
        struct pending *p = sdb_grow((void **)&c->arr, c->n, sizeof(*p));
        if (!p) {
            rc = sdb_fail(STORE_ENOMEM, "recovery: out of memory");
            break;
        }
        pending_from_row(s, p);
        c->n++;
    }
    sdb_done(s);
    return rc == SQLITE_DONE ? 0 : rc;
}

static int recover_tx(struct store *st, void *ctx)
{
    struct recover_ctx *c = ctx;
    free(c->arr);
    c->arr = NULL;
    c->n = 0;
    c->billed = 0;
    int rc = recover_load(st, c);
    for (size_t i = 0; rc == 0 && i < c->n; i++) {
        struct pending *p = &c->arr[i];
        p->u.request_id = p->request_id;
        p->u.session_id = p->session_id;
        p->u.model = p->model;
        p->u.fallback_price = &p->fallback;
        rc = check_not_billed(st, p->request_id);
        if (rc == STORE_EEXISTS) { /* finished, then its pending record lingered */
            rc = 0;
            continue;
        }
        rc = rc ? rc : sdb_usage_insert(st, &p->u, p->created_ms, NULL);
        if (rc == 0)
            c->billed++;
    }
    if (rc)
        return rc;
    sqlite3_stmt *s = sdb_prep(st, sql_pending_clear);
    return s ? sdb_exec_stmt(st, s) : STORE_ESQL;
}

int store_recover_interrupted(struct store *st, int64_t *n_billed)
{
    struct recover_ctx c = {0};
    int rc = sdb_run(st, true, recover_tx, &c);
    free(c.arr);
    if (n_billed)
        *n_billed = rc == 0 ? c.billed : 0;
    if (rc == 0 && c.billed)
        sdb_log(st, STORE_LOG_WARN, "store: billed %lld replies interrupted by a crash",
                (long long)c.billed);
    return rc;
}
