/* store.c - opens chatd's SQLite database and runs everything else's transactions.
 *
 * One handle is one connection behind a mutex (see store.h for why that is enough:
 * WAL lets readers in other connections proceed, and writes are short). Statements
 * are prepared once per handle and cached by the address of their static SQL text,
 * so no SQL is ever built from strings; values are always bound. sdb_run wraps each
 * public call in a transaction, rolls back on any error (after checking whether
 * SQLite already did) and retries a transaction that met SQLITE_BUSY. */
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
    const char *msg = st && st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc);
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

sqlite3_stmt *sdb_prep(struct store *st, const char *sql)
{
    for (size_t i = 0; i < st->n_cache; i++)
        if (st->cache[i].sql == sql)
            return st->cache[i].stmt;
    if (st->n_cache == SDB_STMT_CACHE) {
        sdb_fail(STORE_ESQL, "statement cache full (%d)", SDB_STMT_CACHE);
        return NULL;
    }
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
    if (rc != SQLITE_OK) {
        sdb_sqlerr(st, rc, "prepare");
        return NULL;
    }
    st->cache[st->n_cache].sql = sql;
    st->cache[st->n_cache].stmt = s;
    st->n_cache++;
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
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sdb_sqlerr(st, rc, sql);
}

static void rollback_if_open(struct store *st)
{
    /* SQLite rolls back by itself after some errors (SQLITE_FULL, IOERR, BUSY in
     * some cases); a second ROLLBACK would fail, so ask first. */
    if (!sqlite3_get_autocommit(st->db))
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

int sdb_run(struct store *st, bool write, int (*fn)(struct store *st, void *ctx), void *ctx)
{
    int rc;
    pthread_mutex_lock(&st->mu);
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
        st->n_busy_retries++;
        sdb_log(st, STORE_LOG_WARN, "store: database busy, retrying transaction (attempt %d)",
                attempt + 2);
    }
    pthread_mutex_unlock(&st->mu);
    return rc;
}

int64_t store_busy_retries(struct store *st)
{
    pthread_mutex_lock(&st->mu);
    int64_t n = st->n_busy_retries;
    pthread_mutex_unlock(&st->mu);
    return n;
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
    };
    return p;
}

static int migrate_tx(struct store *st, void *ctx)
{
    char *err = ctx;
    return sdb_migrate(st, err, SDB_ERRMSG_LEN);
}

/* Sets the pragmas of every connection. journal_mode must be set outside a
 * transaction and answers with the mode it got, which must be "wal". */
static int set_pragmas(struct store *st)
{
    int rc = sqlite3_busy_timeout(st->db, st->p.busy_timeout_ms);
    if (rc != SQLITE_OK)
        return sdb_sqlerr(st, rc, "busy_timeout");
    sqlite3_stmt *s = NULL;
    rc = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode=WAL", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return sdb_sqlerr(st, rc, "journal_mode");
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(s);
        return sdb_sqlerr(st, rc, "journal_mode");
    }
    const char *mode = (const char *)sqlite3_column_text(s, 0);
    bool wal = mode && strcmp(mode, "wal") == 0;
    char got[32];
    snprintf(got, sizeof(got), "%s", mode ? mode : "(null)");
    sqlite3_finalize(s);
    if (!wal)
        return sdb_fail(STORE_ESQL, "journal_mode: could not switch to WAL (got '%s')", got);
    static const char *const pragmas[] = {
        "PRAGMA synchronous=FULL",
        "PRAGMA foreign_keys=ON",
    };
    for (size_t i = 0; i < sizeof(pragmas) / sizeof(pragmas[0]); i++) {
        rc = exec_sql(st, pragmas[i]);
        if (rc)
            return rc;
    }
    return 0;
}

int store_open(const char *path, const struct store_params *params, struct store **out, char *err,
               size_t err_len)
{
    *out = NULL;
    if (sodium_init() < 0) {
        snprintf(err, err_len, "libsodium failed to initialise");
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
    pthread_mutex_init(&st->mu, NULL);
    int rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        rc = sdb_sqlerr(st, rc, "open");
        goto fail;
    }
    sqlite3_extended_result_codes(st->db, 1);
    rc = set_pragmas(st);
    if (rc)
        goto fail;
    char merr[SDB_ERRMSG_LEN] = "";
    rc = sdb_run(st, true, migrate_tx, merr);
    if (rc)
        goto fail;
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
    for (size_t i = 0; i < st->n_cache; i++)
        sqlite3_finalize(st->cache[i].stmt);
    if (st->db)
        sqlite3_close(st->db);
    pthread_mutex_destroy(&st->mu);
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
    int rc = sqlite3_prepare_v2(st->db, "PRAGMA integrity_check", -1, &s, NULL);
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
