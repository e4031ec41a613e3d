/* store_int.h - private to storage/: the handle, the statement cache and the
 * transaction runner shared by the store_*.c files. Internal names use `sdb_`.
 *
 * Every public function that touches the database runs its body through sdb_run,
 * which holds one connection (the writer, or a free reader) for the whole
 * transaction; the body may use that connection's cached statements freely
 * (sdb_prep, sdb_db) and must not call a public store_* function. */
#ifndef CHATD_STORE_INT_H
#define CHATD_STORE_INT_H

#include "store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

#define SDB_STMT_CACHE 96
#define SDB_BUSY_RETRIES 5
#define SDB_ERRMSG_LEN 512

struct sdb_stmt_slot {
    const char *sql; /* identity of the statement: a static string */
    sqlite3_stmt *stmt;
};

/* One SQLite connection, used by one thread at a time (its mutex), with its own cache
 * of prepared statements. */
struct sdb_conn {
    sqlite3 *db;
    pthread_mutex_t mu;
    struct sdb_stmt_slot cache[SDB_STMT_CACHE];
    size_t n_cache;
};

/* A streaming reply's latest text, waiting for the next group commit. */
struct sdb_dirty {
    int64_t msg_id;
    char *content;
    char *reasoning;
    int64_t completion_tokens;
    int64_t reasoning_tokens;
};

struct store {
    struct store_params p;
    struct sdb_conn writer;   /* every write transaction */
    struct sdb_conn *readers; /* read transactions; never wait for a writer's fsync */
    int n_readers;
    atomic_uint next_reader;
    atomic_llong n_busy_retries;
    /* Group commit of streaming replies (store_messages.c), under flush_mu. */
    pthread_mutex_t flush_mu;
    pthread_cond_t flush_cv; /* signalled when a group commit ends */
    struct sdb_dirty *dirty;
    size_t n_dirty;
    bool flushing; /* a thread is committing a batch */
    int64_t last_group_ms;
    int64_t n_group_commits;
};

/* The connection of the calling thread's current transaction (inside sdb_run). */
sqlite3 *sdb_db(struct store *st);
/* Records a failure for store_errmsg() and returns code. */
int sdb_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Turns a SQLite result code into a STORE_E* code, recording the message. */
int sdb_sqlerr(struct store *st, int rc, const char *what);
void sdb_log(struct store *st, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The cached prepared statement for a static SQL string, reset and unbound; NULL with
 * the error recorded. */
sqlite3_stmt *sdb_prep(struct store *st, const char *sql);
/* Steps a statement: SQLITE_ROW, SQLITE_DONE, or a negative STORE_E* code
 * (unique/primary key constraint: STORE_EEXISTS; other constraints: STORE_EINVAL). */
int sdb_step(struct store *st, sqlite3_stmt *s);
/* Steps a statement that returns no rows and resets it: 0 or STORE_E*. */
int sdb_exec_stmt(struct store *st, sqlite3_stmt *s);
/* Resets a statement after use (keeps it cached). */
void sdb_done(sqlite3_stmt *s);
/* Prepares, binds the integers v[0..n) to ?1..?n, runs and resets a statement that
 * returns no rows: 0 or STORE_E*. sqlite3_changes() then counts the rows it changed. */
int sdb_exec_ints(struct store *st, const char *sql, const int64_t *v, int n);

/* Binding helpers: text is bound SQLITE_STATIC (the caller's string outlives the
 * statement's use); NULL binds "". Return 0 or STORE_E*. */
int sdb_bind_text(struct store *st, sqlite3_stmt *s, int i, const char *v);
int sdb_bind_int(struct store *st, sqlite3_stmt *s, int i, int64_t v);

/* Copies a text column into a heap string ("" for NULL); NULL when out of memory. */
char *sdb_col_strdup(sqlite3_stmt *s, int i);
/* Copies a text column into buf (truncating to size - 1). */
void sdb_col_copy(sqlite3_stmt *s, int i, char *buf, size_t size);

/* Runs fn(st, ctx) inside a transaction (BEGIN IMMEDIATE when `write`, else a
 * deferred read transaction) with the mutex held; commits when fn returns 0, rolls
 * back otherwise (checking sqlite3_get_autocommit), and retries the whole
 * transaction after SQLITE_BUSY. fn must therefore write its outputs afresh on every
 * call. Returns fn's result or the commit's error. */
int sdb_run(struct store *st, bool write, int (*fn)(struct store *st, void *ctx), void *ctx);

int64_t sdb_now(struct store *st);

/* Makes room for element n of a growing result array (capacity doubles at powers of
 * two) and returns its address; NULL when out of memory (*arr is left valid). */
void *sdb_grow(void **arr, size_t n, size_t size);

/* Input checks shared by the files: record why and return STORE_EINVAL. */
int sdb_check_id(const char *what, const char *v, size_t max);
int sdb_check_name(const char *name);
int sdb_check_model(const char *model);

/* Session ownership: 0 when session `id` exists and belongs to user_id, else
 * STORE_ENOTFOUND (same answer for another user's session). */
int sdb_session_owned(struct store *st, int64_t user_id, const char *id);
/* Moves a session's updated_at to now. */
int sdb_session_touch(struct store *st, const char *id);
/* Inserts a usage row inside the caller's transaction (see store_usage_record),
 * billed at the price in force at `at_ms`. */
int sdb_usage_insert(struct store *st, const struct store_usage_in *u, int64_t at_ms,
                     struct store_usage *out);
/* Messages (store_messages.c): validation; binding a message's content, reasoning,
 * n_tokens, token ids (a BLOB), fingerprint and status to parameters first..first+5;
 * a status read back from its name (unknown names and NULL: STORE_MSG_ERROR); and an
 * insert into a session whose ownership the caller checked (moves the session's
 * updated time). */
int sdb_check_msg(const struct store_msg_in *m);
int sdb_bind_msg(struct store *st, sqlite3_stmt *s, int first, const struct store_msg_in *m);
/* Binds m's tool_calls and tool_call_id (NULL as NULL) at first, first + 1. */
int sdb_bind_msg_tools(struct store *st, sqlite3_stmt *s, int first, const struct store_msg_in *m);
enum store_msg_status sdb_status_parse(const char *s);
int sdb_msg_insert(struct store *st, const char *session_id, const struct store_msg_in *m,
                   int64_t *id, int64_t *seq);
/* The tokens a user was billed this calendar month (store_usage.c), and the removal of
 * a request's quota reservation once it is billed (store_quota.c), both inside the
 * caller's transaction. */
int sdb_usage_month(struct store *st, int64_t user_id, int64_t *tokens);
int sdb_quota_settle(struct store *st, const char *request_id);
/* Validates a usage record (store_usage.c). */
int sdb_check_usage(const struct store_usage_in *u);
/* Frees the group-commit queue (store_close). */
void sdb_dirty_free(struct store *st);

/* Schema: applies migrations inside the caller's open transaction. */
int sdb_migrate(struct store *st, char *err, size_t err_len);

#endif
