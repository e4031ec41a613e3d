/* store.c - opens chatd's SQLite database and runs everything else's transactions.
 *
 * A handle holds one writer connection and a few reader connections, each used by one
 * thread at a time under its own mutex. Writes are serialised on the writer (SQLite
 * allows one writer anyway) and are short; reads take any free reader, so an API-key
 * check or a session load never waits behind a writer's fsync (WAL: readers see the
 * last committed state and never block writers). Statements are prepared once per
 * connection and cached by the address of their static SQL text, so no SQL is ever
 * built from strings; values are always bound. sdb_run wraps each public call in a
 * transaction, rolls back on any error (after checking whether SQLite already did)
 * and retries a transaction that met SQLITE_BUSY. */
#include "store_int.h"

#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char tls_err[SDB_ERRMSG_LEN];
/* The connection of this thread's current sdb_run transaction. */
static _Thread_local struct sdb_conn *tls_conn;

/* ---- errors ---- */

const char *store_strerror(int code)
{
    switch (code) {
#define STORE_ERRNO_CASE_(name, c, text)                                                           \
    case c:                                                                                        \
        return text;
        STORE_ERRNO_MAP(STORE_ERRNO_CASE_)
#undef STORE_ERRNO_CASE_
    case 0:
        return "success";
    }
    return "unknown error";
}

const char *store_errmsg(void)
{
    return tls_err;
}

const char *store_sqlite_version(void)
{
    return sqlite3_libversion();
}

int sdb_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_err, sizeof(tls_err), fmt, ap);
    va_end(ap);
    return code;
}

int sdb_sqlerr(struct store *st, int rc, const char *what)
{
    sqlite3 *db = st ? sdb_db(st) : NULL;
    const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    int code;
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        code = STORE_EBUSY;
        break;
    case SQLITE_NOMEM:
        code = STORE_ENOMEM;
        break;
    case SQLITE_CONSTRAINT:
        code = rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY ? STORE_EEXISTS
                                                                                    : STORE_EINVAL;
        break;
    case SQLITE_NOTADB:
        code = STORE_ENOTDB;
        break;
    default:
        code = STORE_ESQL;
    }
    return sdb_fail(code, "%s: %s", what, msg);
}

void sdb_log(struct store *st, int level, const char *fmt, ...)
{
    if (!st->p.log)
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    st->p.log(st->p.log_user, level, buf);
}

/* ---- statements ---- */

sqlite3 *sdb_db(struct store *st)
{
    return tls_conn ? tls_conn->db : st->writer.db;
}

sqlite3_stmt *sdb_prep(struct store *st, const char *sql)
{
    struct sdb_conn *c = tls_conn ? tls_conn : &st->writer;
    for (size_t i = 0; i < c->n_cache; i++)
        if (c->cache[i].sql == sql)
            return c->cache[i].stmt;
    if (c->n_cache == SDB_STMT_CACHE) {
        sdb_fail(STORE_ESQL, "statement cache full (%d)", SDB_STMT_CACHE);
        return NULL;
    }
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
    if (rc != SQLITE_OK) {
        sdb_sqlerr(st, rc, "prepare");
        return NULL;
    }
    c->cache[c->n_cache].sql = sql;
    c->cache[c->n_cache].stmt = s;
    c->n_cache++;
    return s;
}

int sdb_step(struct store *st, sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        return rc;
    return sdb_sqlerr(st, rc, "step");
}

void sdb_done(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

int sdb_exec_stmt(struct store *st, sqlite3_stmt *s)
{
    int rc = sdb_step(st, s);
    sdb_done(s);
    return rc == SQLITE_DONE ? 0 : rc == SQLITE_ROW ? 0 : rc;
}

int sdb_exec_ints(struct store *st, const char *sql, const int64_t *v, int n)
{
    sqlite3_stmt *s = sdb_prep(st, sql);
    if (!s)
        return STORE_ESQL;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = sdb_bind_int(st, s, i + 1, v[i]);
    rc = rc ? rc : sdb_exec_stmt(st, s);
    sdb_done(s);
    return rc;
}

int sdb_bind_text(struct store *st, sqlite3_stmt *s, int i, const char *v)
{
    int rc = sqlite3_bind_text(s, i, v ? v : "", -1, SQLITE_STATIC);
    return rc == SQLITE_OK ? 0 : sdb_sqlerr(st, rc, "bind");
}

int sdb_bind_int(struct store *st, sqlite3_stmt *s, int i, int64_t v)
{
    int rc = sqlite3_bind_int64(s, i, v);
    return rc == SQLITE_OK ? 0 : sdb_sqlerr(st, rc, "bind");
}

char *sdb_col_strdup(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    size_t n = (size_t)sqlite3_column_bytes(s, i);
    char *r = malloc(n + 1);
    if (!r)
        return NULL;
    if (t)
        memcpy(r, t, n);
    r[t ? n : 0] = 0;
    return r;
}

void sdb_col_copy(sqlite3_stmt *s, int i, char *buf, size_t size)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    size_t n = t ? (size_t)sqlite3_column_bytes(s, i) : 0;
    if (n >= size)
        n = size - 1;
    if (n)
        memcpy(buf, t, n);
    buf[n] = 0;
}

/* ---- transactions ---- */

static int exec_sql(struct store *st, const char *sql)
{
    int rc = sqlite3_exec(sdb_db(st), sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sdb_sqlerr(st, rc, sql);
}

static void rollback_if_open(struct store *st)
{
    /* SQLite rolls back by itself after some errors (SQLITE_FULL, IOERR, BUSY in
     * some cases); a second ROLLBACK would fail, so ask first. */
    if (!sqlite3_get_autocommit(sdb_db(st)))
        sqlite3_exec(sdb_db(st), "ROLLBACK", NULL, NULL, NULL);
}

/* Locks a reader connection: a free one if any, else waits for one in turn. */
static struct sdb_conn *lock_reader(struct store *st)
{
    unsigned start = atomic_fetch_add(&st->next_reader, 1);
    for (int i = 0; i < st->n_readers; i++) {
        struct sdb_conn *c = &st->readers[(start + (unsigned)i) % (unsigned)st->n_readers];
        if (pthread_mutex_trylock(&c->mu) == 0)
            return c;
    }
    struct sdb_conn *c = &st->readers[start % (unsigned)st->n_readers];
    pthread_mutex_lock(&c->mu);
    return c;
}

int sdb_run(struct store *st, bool write, int (*fn)(struct store *st, void *ctx), void *ctx)
{
    struct sdb_conn *conn;
    if (write || st->n_readers == 0) {
        conn = &st->writer;
        pthread_mutex_lock(&conn->mu);
    } else {
        conn = lock_reader(st);
    }
    tls_conn = conn;
    int rc;
    for (int attempt = 0;; attempt++) {
        rc = exec_sql(st, write ? "BEGIN IMMEDIATE" : "BEGIN");
        if (rc == 0) {
            rc = fn(st, ctx);
            if (rc == 0)
                rc = exec_sql(st, "COMMIT");
        }
        if (rc != 0)
            rollback_if_open(st);
        if (rc != STORE_EBUSY || attempt == SDB_BUSY_RETRIES)
            break;
        atomic_fetch_add(&st->n_busy_retries, 1);
        sdb_log(st, STORE_LOG_WARN, "store: database busy, retrying transaction (attempt %d)",
                attempt + 2);
    }
    tls_conn = NULL;
    pthread_mutex_unlock(&conn->mu);
    return rc;
}

int64_t store_busy_retries(struct store *st)
{
    return atomic_load(&st->n_busy_retries);
}

int64_t sdb_now(struct store *st)
{
    if (st->p.now_ms)
        return st->p.now_ms(st->p.clock_user);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void *sdb_grow(void **arr, size_t n, size_t size)
{
    if (n >= SIZE_MAX / size / 2)
        return NULL;
    if ((n & (n - 1)) == 0) {
        size_t cap = n ? n * 2 : 1;
        void *p = realloc(*arr, cap * size);
        if (!p)
            return NULL;
        *arr = p;
    }
    return (char *)*arr + n * size;
}

/* ---- input checks ---- */

int sdb_check_id(const char *what, const char *v, size_t max)
{
    if (!v || !*v)
        return sdb_fail(STORE_EINVAL, "%s: empty", what);
    size_t n = strnlen(v, max + 1);
    if (n > max)
        return sdb_fail(STORE_EINVAL, "%s: longer than %zu bytes", what, max);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c <= 0x20 || c >= 0x7f || c == '/' || c == '\\')
            return sdb_fail(STORE_EINVAL, "%s: byte 0x%02x at %zu is not allowed", what, c, i);
    }
    return 0;
}

int sdb_check_name(const char *name)
{
    if (!name || !*name)
        return sdb_fail(STORE_EINVAL, "user name: empty");
    size_t n = strnlen(name, STORE_NAME_MAX + 1);
    if (n > STORE_NAME_MAX)
        return sdb_fail(STORE_EINVAL, "user name: longer than %d bytes", STORE_NAME_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return sdb_fail(STORE_EINVAL,
                            "user name '%.64s': only letters, digits, '.', '_' and '-' allowed",
                            name);
    }
    return 0;
}

int sdb_check_model(const char *model)
{
    return sdb_check_id("model", model, STORE_MODEL_MAX);
}

/* ---- open / close ---- */

struct store_params store_default_params(void)
{
    struct store_params p = {
        .busy_timeout_ms = 5000,
        .flush_interval_ms = 1000,
        .n_readers = 4,
    };
    return p;
}

static int migrate_tx(struct store *st, void *ctx)
{
    char *err = ctx;
    return sdb_migrate(st, err, SDB_ERRMSG_LEN);
}

/* Runs a PRAGMA that answers with one text row and checks the answer. */
static int pragma_expect(struct store *st, const char *sql, const char *want)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(sdb_db(st), sql, -1, &s, NULL);
    if (rc != SQLITE_OK)
        return sdb_sqlerr(st, rc, sql);
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(s);
        return sdb_sqlerr(st, rc, sql);
    }
    const char *got = (const char *)sqlite3_column_text(s, 0);
    bool ok = got && strcmp(got, want) == 0;
    if (!ok)
        sdb_fail(STORE_ESQL, "%s: got '%s', want '%s'", sql, got ? got : "(null)", want);
    sqlite3_finalize(s);
    return ok ? 0 : STORE_ESQL;
}

/* Opens one connection and sets its pragmas. journal_mode must be set outside a
 * transaction and answers with the mode it got, which must be "wal". Readers are
 * query_only, so a write through one fails loudly instead of dodging the writer. */
static int conn_open(struct store *st, struct sdb_conn *c, const char *path, bool reader)
{
    pthread_mutex_init(&c->mu, NULL);
    int rc = sqlite3_open_v2(
        path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    tls_conn = c;
    if (rc != SQLITE_OK) {
        rc = sdb_sqlerr(st, rc, "open");
        goto out;
    }
    sqlite3_extended_result_codes(c->db, 1);
    rc = sqlite3_busy_timeout(c->db, st->p.busy_timeout_ms);
    if (rc != SQLITE_OK) {
        rc = sdb_sqlerr(st, rc, "busy_timeout");
        goto out;
    }
    rc = reader ? 0 : pragma_expect(st, "PRAGMA journal_mode=WAL", "wal");
    rc = rc ? rc : exec_sql(st, "PRAGMA synchronous=FULL");
    rc = rc ? rc : exec_sql(st, "PRAGMA foreign_keys=ON");
    if (rc == 0 && reader)
        rc = exec_sql(st, "PRAGMA query_only=ON");
out:
    tls_conn = NULL;
    return rc;
}

static void conn_close(struct sdb_conn *c)
{
    for (size_t i = 0; i < c->n_cache; i++)
        sqlite3_finalize(c->cache[i].stmt);
    c->n_cache = 0;
    if (c->db)
        sqlite3_close(c->db);
    c->db = NULL;
    pthread_mutex_destroy(&c->mu);
}

int store_open(const char *path, const struct store_params *params, struct store **out, char *err,
               size_t err_len)
{
    *out = NULL;
    if (sodium_init() < 0) {
        snprintf(err, err_len, "libsodium failed to initialise");
        return STORE_ESQL;
    }
    if (!sqlite3_threadsafe()) {
        snprintf(err, err_len, "the SQLite library was built without thread support");
        return STORE_ESQL;
    }
    struct store *st = calloc(1, sizeof(*st));
    if (!st) {
        snprintf(err, err_len, "out of memory");
        return STORE_ENOMEM;
    }
    st->p = params ? *params : store_default_params();
    if (st->p.busy_timeout_ms <= 0)
        st->p.busy_timeout_ms = 5000;
    if (st->p.flush_interval_ms < 0)
        st->p.flush_interval_ms = 0;
    if (st->p.n_readers < 0 || st->p.n_readers > 64)
        st->p.n_readers = 4;
    pthread_mutex_init(&st->flush_mu, NULL);
    pthread_cond_init(&st->flush_cv, NULL);
    int rc = conn_open(st, &st->writer, path, false);
    if (rc)
        goto fail;
    char merr[SDB_ERRMSG_LEN] = "";
    rc = sdb_run(st, true, migrate_tx, merr);
    if (rc)
        goto fail;
    /* Readers open after the migrations, so they see the whole schema. */
    st->readers = calloc((size_t)st->p.n_readers + 1, sizeof(*st->readers));
    if (!st->readers) {
        rc = sdb_fail(STORE_ENOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < st->p.n_readers; i++) {
        rc = conn_open(st, &st->readers[i], path, true);
        st->n_readers++; /* counted even on failure, so that store_close closes it */
        if (rc)
            goto fail;
    }
    *out = st;
    return 0;
fail:
    snprintf(err, err_len, "%s: %s", path, store_errmsg());
    store_close(st);
    return rc;
}

void store_close(struct store *st)
{
    if (!st)
        return;
    for (int i = 0; i < st->n_readers; i++)
        conn_close(&st->readers[i]);
    free(st->readers);
    conn_close(&st->writer);
    sdb_dirty_free(st);
    pthread_cond_destroy(&st->flush_cv);
    pthread_mutex_destroy(&st->flush_mu);
    free(st);
}

/* ---- checks ---- */

static const char sql_user_version[] = "PRAGMA user_version";

static int version_tx(struct store *st, void *ctx)
{
    int *v = ctx;
    sqlite3_stmt *s = sdb_prep(st, sql_user_version);
    if (!s)
        return STORE_ESQL;
    int rc = sdb_step(st, s);
    *v = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
    sdb_done(s);
    return rc == SQLITE_ROW ? 0 : rc;
}

int store_db_version(struct store *st)
{
    int v = -1;
    if (sdb_run(st, false, version_tx, &v) != 0)
        return -1;
    return v;
}

static int integrity_tx(struct store *st, void *ctx)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(sdb_db(st), "PRAGMA integrity_check", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return sdb_sqlerr(st, rc, "integrity_check");
    rc = sqlite3_step(s);
    int ret = 0;
    if (rc != SQLITE_ROW) {
        ret = sdb_sqlerr(st, rc, "integrity_check");
    } else {
        const char *r = (const char *)sqlite3_column_text(s, 0);
        if (!r || strcmp(r, "ok") != 0)
            ret = sdb_fail(STORE_ESQL, "integrity_check: %s", r ? r : "(null)");
    }
    sqlite3_finalize(s);
    return ret;
}

int store_integrity_check(struct store *st)
{
    return sdb_run(st, false, integrity_tx, NULL);
}
