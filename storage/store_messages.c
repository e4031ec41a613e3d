/* store_messages.c - a session's messages: append and list.
 *
 * The user's message is committed before inference starts (store_message_append),
 * so a crash never loses what the user said; streaming assistant replies are in
 * store_replies.c. Token ids are stored as a BLOB of little-endian int32 values,
 * whatever the host's byte order. Called from any thread (see store.h). */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char sql_msg_next_seq[] =
    "SELECT coalesce(max(seq), 0) + 1 FROM messages WHERE session_id = ?1";
static const char sql_msg_insert[] =
    "INSERT INTO messages (session_id, seq, role, content, reasoning, n_tokens, tokens, "
    "fingerprint, status, created_at, tool_calls, tool_call_id) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
static const char sql_msg_list[] =
    "SELECT id, seq, role, content, reasoning, n_tokens, tokens, fingerprint, status, created_at, "
    "tool_calls, tool_call_id FROM messages WHERE session_id = ?1 AND seq >= ?2 ORDER BY seq";

/* A message's size is its text's and its tool calls' (a reply may be calls alone). */
static const char sql_msg_sizes[] =
    "SELECT seq, role, n_tokens, "
    "length(CAST(content AS BLOB)) + coalesce(length(CAST(tool_calls AS BLOB)), 0), status "
    "FROM messages WHERE session_id = ?1 ORDER BY seq";

static const char *const status_names[] = {
    [STORE_MSG_COMPLETE] = "complete",
    [STORE_MSG_PARTIAL] = "partial",
    [STORE_MSG_ERROR] = "error",
};

const char *store_status_name(enum store_msg_status s)
{
    if ((unsigned)s < sizeof(status_names) / sizeof(status_names[0]))
        return status_names[s];
    return "error";
}

enum store_msg_status sdb_status_parse(const char *s)
{
    for (size_t i = 0; i < sizeof(status_names) / sizeof(status_names[0]); i++)
        if (s && strcmp(s, status_names[i]) == 0)
            return (enum store_msg_status)i;
    return STORE_MSG_ERROR;
}

int sdb_check_msg(const struct store_msg_in *m)
{
    static const char *const roles[] = {"system", "user", "assistant", "tool"};
    bool role_ok = false;
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
        role_ok |= m->role && strcmp(m->role, roles[i]) == 0;
    if (!role_ok)
        return sdb_fail(STORE_EINVAL, "message role '%.32s' is not system|user|assistant|tool",
                        m->role ? m->role : "(null)");
    if ((unsigned)m->status > STORE_MSG_ERROR)
        return sdb_fail(STORE_EINVAL, "message status %d is invalid", (int)m->status);
    if (m->n_tokens < 0)
        return sdb_fail(STORE_EINVAL, "message n_tokens %lld is negative", (long long)m->n_tokens);
    if (m->n_token_ids && !m->token_ids)
        return sdb_fail(STORE_EINVAL, "message token_ids: NULL with %zu ids", m->n_token_ids);
    if (m->n_token_ids > (size_t)INT32_MAX / 4)
        return sdb_fail(STORE_EINVAL, "message token_ids: %zu ids is too many", m->n_token_ids);
    if (m->fingerprint && strlen(m->fingerprint) > STORE_FINGERPRINT_MAX)
        return sdb_fail(STORE_EINVAL, "message fingerprint longer than %d bytes",
                        STORE_FINGERPRINT_MAX);
    return 0;
}

static int bind_tokens(struct store *st, sqlite3_stmt *s, int i, const int32_t *ids, size_t n)
{
    if (!ids || n == 0)
        return sqlite3_bind_null(s, i) == SQLITE_OK ? 0 : sdb_sqlerr(st, SQLITE_ERROR, "bind");
    unsigned char *buf = malloc(n * 4);
    if (!buf)
        return sdb_fail(STORE_ENOMEM, "token ids: out of memory");
    for (size_t k = 0; k < n; k++) {
        uint32_t v = (uint32_t)ids[k];
        buf[4 * k] = (unsigned char)v;
        buf[4 * k + 1] = (unsigned char)(v >> 8);
        buf[4 * k + 2] = (unsigned char)(v >> 16);
        buf[4 * k + 3] = (unsigned char)(v >> 24);
    }
    int rc = sqlite3_bind_blob64(s, i, buf, (sqlite3_uint64)n * 4, free);
    return rc == SQLITE_OK ? 0 : sdb_sqlerr(st, rc, "bind tokens");
}

int sdb_bind_msg(struct store *st, sqlite3_stmt *s, int first, const struct store_msg_in *m)
{
    int rc = sdb_bind_text(st, s, first, m->content);
    rc = rc ? rc : sdb_bind_text(st, s, first + 1, m->reasoning);
    rc = rc ? rc : sdb_bind_int(st, s, first + 2, m->n_tokens);
    rc = rc ? rc : bind_tokens(st, s, first + 3, m->token_ids, m->n_token_ids);
    rc = rc ? rc : sdb_bind_text(st, s, first + 4, m->fingerprint);
    return rc ? rc : sdb_bind_text(st, s, first + 5, store_status_name(m->status));
}

/* The tool fields at first, first + 1 (NULL stays NULL). */
int sdb_bind_msg_tools(struct store *st, sqlite3_stmt *s, int first, const struct store_msg_in *m)
{
    int rc = m->tool_calls ? sdb_bind_text(st, s, first, m->tool_calls)
                           : (sqlite3_bind_null(s, first) == SQLITE_OK ? 0 : STORE_ESQL);
    if (rc == 0)
        rc = m->tool_call_id ? sdb_bind_text(st, s, first + 1, m->tool_call_id)
                             : (sqlite3_bind_null(s, first + 1) == SQLITE_OK ? 0 : STORE_ESQL);
    return rc;
}

int sdb_msg_insert(struct store *st, const char *session_id, const struct store_msg_in *m,
                   int64_t *id, int64_t *seq)
{
    sqlite3_stmt *s = sdb_prep(st, sql_msg_next_seq);
    if (!s)
        return STORE_ESQL;
    int rc = sdb_bind_text(st, s, 1, session_id);
    rc = rc ? rc : sdb_step(st, s);
    int64_t next = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sdb_done(s);
    if (rc != SQLITE_ROW)
        return rc < 0 ? rc : STORE_ESQL;
    s = sdb_prep(st, sql_msg_insert);
    if (!s)
        return STORE_ESQL;
    rc = sdb_bind_text(st, s, 1, session_id);
    rc = rc ? rc : sdb_bind_int(st, s, 2, next);
    rc = rc ? rc : sdb_bind_text(st, s, 3, m->role);
    rc = rc ? rc : sdb_bind_msg(st, s, 4, m);
    rc = rc ? rc : sdb_bind_int(st, s, 10, sdb_now(st));
    rc = rc ? rc : sdb_bind_msg_tools(st, s, 11, m);
    rc = rc ? rc : sdb_exec_stmt(st, s);
    sdb_done(s);
    if (rc)
        return rc;
    if (id)
        *id = sqlite3_last_insert_rowid(sdb_db(st));
    if (seq)
        *seq = next;
    return sdb_session_touch(st, session_id);
}

/* ---- append ---- */

struct append_ctx {
    int64_t user_id;
    const char *session_id;
    const struct store_msg_in *m;
    int64_t id;
    int64_t seq;
};

static int append_tx(struct store *st, void *ctx)
{
    struct append_ctx *c = ctx;
    int rc = sdb_session_owned(st, c->user_id, c->session_id);
    return rc ? rc : sdb_msg_insert(st, c->session_id, c->m, &c->id, &c->seq);
}

int store_message_append(struct store *st, int64_t user_id, const char *session_id,
                         const struct store_msg_in *m, int64_t *id, int64_t *seq)
{
    if (id)
        *id = 0;
    if (seq)
        *seq = 0;
    int rc = sdb_check_id("session id", session_id, STORE_ID_MAX);
    rc = rc ? rc : sdb_check_msg(m);
    if (rc)
        return rc;
    struct append_ctx c = {user_id, session_id, m, 0, 0};
    rc = sdb_run(st, true, append_tx, &c);
    if (rc == 0 && id)
        *id = c.id;
    if (rc == 0 && seq)
        *seq = c.seq;
    return rc;
}

/* ---- listing ---- */

void store_messages_free(struct store_message *arr, size_t n)
{
    if (!arr)
        return;
    for (size_t i = 0; i < n; i++) {
        free(arr[i].content);
        free(arr[i].reasoning);
        free(arr[i].tool_calls);
        free(arr[i].tool_call_id);
        free(arr[i].token_ids);
    }
    free(arr);
}

static int msg_from_row(sqlite3_stmt *s, struct store_message *m)
{
    memset(m, 0, sizeof(*m));
    m->id = sqlite3_column_int64(s, 0);
    m->seq = sqlite3_column_int64(s, 1);
    sdb_col_copy(s, 2, m->role, sizeof(m->role));
    m->content = sdb_col_strdup(s, 3);
    m->reasoning = sdb_col_strdup(s, 4);
    m->n_tokens = sqlite3_column_int64(s, 5);
    const unsigned char *blob = sqlite3_column_blob(s, 6);
    size_t bytes = (size_t)sqlite3_column_bytes(s, 6);
    if (blob && bytes >= 4) {
        m->n_token_ids = bytes / 4;
        m->token_ids = malloc(m->n_token_ids * sizeof(*m->token_ids));
        if (m->token_ids) {
            for (size_t k = 0; k < m->n_token_ids; k++) {
                const unsigned char *b = blob + 4 * k;
                uint32_t v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                             (uint32_t)b[3] << 24;
                m->token_ids[k] = (int32_t)v;
            }
        }
    }
    sdb_col_copy(s, 7, m->fingerprint, sizeof(m->fingerprint));
    m->status = sdb_status_parse((const char *)sqlite3_column_text(s, 8));
    m->created_ms = sqlite3_column_int64(s, 9);
    if (sqlite3_column_type(s, 10) != SQLITE_NULL && !(m->tool_calls = sdb_col_strdup(s, 10)))
        return sdb_fail(STORE_ENOMEM, "message list: out of memory");
    if (sqlite3_column_type(s, 11) != SQLITE_NULL && !(m->tool_call_id = sdb_col_strdup(s, 11)))
        return sdb_fail(STORE_ENOMEM, "message list: out of memory");
    if (!m->content || !m->reasoning || (m->n_token_ids && !m->token_ids))
        return sdb_fail(STORE_ENOMEM, "message list: out of memory");
    return 0;
}

struct list_ctx {
    int64_t user_id;
    const char *session_id;
    int64_t from_seq;
    struct store_message *arr;
    size_t n;
};

static int list_tx(struct store *st, void *ctx)
{
    struct list_ctx *c = ctx;
    store_messages_free(c->arr, c->n);
    c->arr = NULL;
    c->n = 0;
    int rc = sdb_session_owned(st, c->user_id, c->session_id);
    if (rc)
        return rc;
    sqlite3_stmt *s = sdb_prep(st, sql_msg_list);
    if (!s)
        return STORE_ESQL;
    rc = sdb_bind_text(st, s, 1, c->session_id);
    rc = rc ? rc : sdb_bind_int(st, s, 2, c->from_seq);
    while (rc == 0 && (rc = sdb_step(st, s)) == SQLITE_ROW) {
        struct store_message *m = sdb_grow((void **)&c->arr, c->n, sizeof(*m));
        if (!m) {
            rc = sdb_fail(STORE_ENOMEM, "message list: out of memory");
            break;
        }
        rc = msg_from_row(s, m);
        c->n++; /* counted even on failure so that its strings are freed */
    }
    sdb_done(s);
    return rc == SQLITE_DONE ? 0 : rc;
}

int store_message_list_from(struct store *st, int64_t user_id, const char *session_id,
                            int64_t from_seq, struct store_message **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (sdb_check_id("session id", session_id, STORE_ID_MAX) != 0)
        return sdb_fail(STORE_ENOTFOUND, "session not found");
    struct list_ctx c = {user_id, session_id, from_seq, NULL, 0};
    int rc = sdb_run(st, false, list_tx, &c);
    if (rc) {
        store_messages_free(c.arr, c.n);
        return rc;
    }
    *out = c.arr;
    *n = c.n;
    return 0;
}

int store_message_list(struct store *st, int64_t user_id, const char *session_id,
                       struct store_message **out, size_t *n)
{
    return store_message_list_from(st, user_id, session_id, 0, out, n);
}

struct sizes_ctx {
    int64_t user_id;
    const char *session_id;
    struct store_msg_size *arr;
    size_t n;
};

static int sizes_tx(struct store *st, void *ctx)
{
    struct sizes_ctx *c = ctx;
    free(c->arr);
    c->arr = NULL;
    c->n = 0;
    int rc = sdb_session_owned(st, c->user_id, c->session_id);
    if (rc)
        return rc;
    sqlite3_stmt *s = sdb_prep(st, sql_msg_sizes);
    if (!s)
        return STORE_ESQL;
    rc = sdb_bind_text(st, s, 1, c->session_id);
    while (rc == 0 && (rc = sdb_step(st, s)) == SQLITE_ROW) {
        struct store_msg_size *m = sdb_grow((void **)&c->arr, c->n, sizeof(*m));
        if (!m) {
            rc = sdb_fail(STORE_ENOMEM, "message sizes: out of memory");
            break;
        }
        m->seq = sqlite3_column_int64(s, 0);
        sdb_col_copy(s, 1, m->role, sizeof(m->role));
        m->n_tokens = sqlite3_column_int64(s, 2);
        m->content_bytes = sqlite3_column_int64(s, 3);
        m->status = sdb_status_parse((const char *)sqlite3_column_text(s, 4));
        c->n++;
        rc = 0;
    }
    sdb_done(s);
    return rc == SQLITE_DONE ? 0 : rc;
}

int store_message_sizes(struct store *st, int64_t user_id, const char *session_id,
                        struct store_msg_size **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (sdb_check_id("session id", session_id, STORE_ID_MAX) != 0)
        return sdb_fail(STORE_ENOTFOUND, "session not found");
    struct sizes_ctx c = {user_id, session_id, NULL, 0};
    int rc = sdb_run(st, false, sizes_tx, &c);
    if (rc) {
        free(c.arr);
        return rc;
    }
    *out = c.arr;
    *n = c.n;
    return 0;
}
