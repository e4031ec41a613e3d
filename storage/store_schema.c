/* store_schema.c - the database schema as a list of migrations.
 *
 * PRAGMA user_version holds the number of migrations applied; PRAGMA application_id
 * marks the file as chatd's. At open, inside one BEGIN IMMEDIATE transaction (so two
 * processes opening a fresh file cannot both migrate it), every migration past the
 * file's version runs in order. A file whose version is beyond the last migration
 * was written by a newer chatd and is refused rather than misread. Migrations are
 * append-only: never edit a shipped step, add a new one.
 *
 * Units: every *_at column is milliseconds since the Unix epoch (UTC); prices are
 * micro-units per million tokens; cost_micros is micro-units. */
#include "store_int.h"

#include <stdio.h>
#include <string.h>

#define SDB_APPLICATION_ID 0x63686174 /* "chat" */

/* Each step ends by setting user_version to its own number. */
static const char *const migrations[] = {
    /* 1: the first schema */
    "CREATE TABLE users ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  is_admin INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),"
    "  token_quota INTEGER NOT NULL DEFAULT 0 CHECK (token_quota >= 0),"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE api_keys ("
    "  id INTEGER PRIMARY KEY,"
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  prefix TEXT NOT NULL UNIQUE,"
    "  hash BLOB NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  revoked_at INTEGER);"
    "CREATE INDEX api_keys_user ON api_keys(user_id);"
    "CREATE TABLE sessions ("
    "  id TEXT PRIMARY KEY,"
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  title TEXT NOT NULL DEFAULT '',"
    "  model TEXT NOT NULL DEFAULT '',"
    "  system_prompt TEXT NOT NULL DEFAULT '',"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE INDEX sessions_user_updated ON sessions(user_id, updated_at);"
    "CREATE TABLE messages ("
    "  id INTEGER PRIMARY KEY,"
    "  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,"
    "  seq INTEGER NOT NULL,"
    "  role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),"
    "  content TEXT NOT NULL DEFAULT '',"
    "  reasoning TEXT NOT NULL DEFAULT '',"
    "  n_tokens INTEGER NOT NULL DEFAULT 0 CHECK (n_tokens >= 0),"
    "  tokens BLOB,"
    "  fingerprint TEXT NOT NULL DEFAULT '',"
    "  status TEXT NOT NULL CHECK (status IN ('complete', 'partial', 'error')),"
    "  created_at INTEGER NOT NULL,"
    "  UNIQUE (session_id, seq));"
    "CREATE TABLE prices ("
    "  id INTEGER PRIMARY KEY,"
    "  model TEXT NOT NULL,"
    "  input_miss INTEGER NOT NULL CHECK (input_miss >= 0),"
    "  input_hit INTEGER NOT NULL CHECK (input_hit >= 0),"
    "  output INTEGER NOT NULL CHECK (output >= 0),"
    "  effective_from INTEGER NOT NULL,"
    /* 1: the caller's default price, recorded so usage rows can reference it; never
     * 'in force' for a model (a config default must not shadow later defaults). */
    "  is_fallback INTEGER NOT NULL DEFAULT 0 CHECK (is_fallback IN (0, 1)));"
    "CREATE INDEX prices_model ON prices(model, is_fallback, effective_from);"
    /* session_id is no foreign key: usage outlives a deleted session. */
    "CREATE TABLE usage ("
    "  id INTEGER PRIMARY KEY,"
    "  request_id TEXT NOT NULL UNIQUE,"
    "  user_id INTEGER NOT NULL REFERENCES users(id),"
    "  session_id TEXT,"
    "  model TEXT NOT NULL,"
    "  prompt_tokens INTEGER NOT NULL CHECK (prompt_tokens >= 0),"
    "  cached_tokens INTEGER NOT NULL CHECK (cached_tokens BETWEEN 0 AND prompt_tokens),"
    "  completion_tokens INTEGER NOT NULL CHECK (completion_tokens >= 0),"
    "  reasoning_tokens INTEGER NOT NULL"
    "    CHECK (reasoning_tokens BETWEEN 0 AND completion_tokens),"
    "  price_id INTEGER NOT NULL REFERENCES prices(id),"
    "  cost_micros INTEGER NOT NULL CHECK (cost_micros >= 0),"
    "  status TEXT NOT NULL CHECK (status IN ('complete', 'partial', 'error')),"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX usage_user_time ON usage(user_id, created_at);"
    "CREATE INDEX usage_time ON usage(created_at);"
    "CREATE TABLE idempotency ("
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  key TEXT NOT NULL,"
    "  request_id TEXT NOT NULL,"
    "  response TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (user_id, key));"
    "CREATE INDEX idempotency_time ON idempotency(created_at);"
    "PRAGMA application_id = 1667785076;"
    "PRAGMA user_version = 1;",

    /* 2: the usage of streaming replies in progress, billed after a crash by
     * store_recover_interrupted. No foreign keys: it must outlive a deleted session. */
    "CREATE TABLE pending_usage ("
    "  message_id INTEGER PRIMARY KEY,"
    "  request_id TEXT NOT NULL UNIQUE,"
    "  user_id INTEGER NOT NULL,"
    "  session_id TEXT NOT NULL,"
    "  model TEXT NOT NULL,"
    "  prompt_tokens INTEGER NOT NULL,"
    "  cached_tokens INTEGER NOT NULL,"
    "  completion_tokens INTEGER NOT NULL DEFAULT 0,"
    "  reasoning_tokens INTEGER NOT NULL DEFAULT 0,"
    "  fallback_input_miss INTEGER NOT NULL,"
    "  fallback_input_hit INTEGER NOT NULL,"
    "  fallback_output INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    "PRAGMA user_version = 2;",
    /* 3: quota reservations shared by every server of the database; the body hash of an
     * idempotency key (a reused key with another body is refused) */
    "CREATE TABLE reservations ("
    "  request_id TEXT PRIMARY KEY,"
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  tokens INTEGER NOT NULL CHECK (tokens >= 0),"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX reservations_user ON reservations(user_id, created_at);"
    "ALTER TABLE idempotency ADD COLUMN body_hash TEXT NOT NULL DEFAULT '';"
    "PRAGMA user_version = 3;",
    /* 4: tool use. An assistant message's tool calls (a JSON array in OpenAI's form,
     * arguments as strings) and a tool result's call id; NULL when none. */
    "ALTER TABLE messages ADD COLUMN tool_calls TEXT;"
    "ALTER TABLE messages ADD COLUMN tool_call_id TEXT;"
    "PRAGMA user_version = 4;",
};

#define N_MIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

_Static_assert(SDB_APPLICATION_ID == 1667785076, "application_id literal in migration 1");

int store_schema_version(void)
{
    return N_MIGRATIONS;
}

static int read_pragma_int(struct store *st, const char *sql, int64_t *v)
{
    sqlite3_stmt *s = sdb_prep(st, sql);
    if (!s)
        return STORE_ESQL;
    int rc = sdb_step(st, s);
    *v = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sdb_done(s);
    return rc == SQLITE_ROW ? 0 : rc < 0 ? rc : STORE_ESQL;
}

static const char sql_version[] = "PRAGMA user_version";
static const char sql_app_id[] = "PRAGMA application_id";

int sdb_migrate(struct store *st, char *err, size_t err_len)
{
    int64_t version;
    int64_t app_id;
    int rc = read_pragma_int(st, sql_version, &version);
    if (rc == 0)
        rc = read_pragma_int(st, sql_app_id, &app_id);
    if (rc)
        return rc;
    if (app_id != 0 && app_id != SDB_APPLICATION_ID)
        return sdb_fail(STORE_ENOTDB, "application_id %lld is not chatd's (%d)", (long long)app_id,
                        SDB_APPLICATION_ID);
    if (version > N_MIGRATIONS)
        return sdb_fail(STORE_ETOONEW,
                        "database schema version %lld is newer than this chatd supports (%d); "
                        "use a newer chatd or another database",
                        (long long)version, N_MIGRATIONS);
    if (version < 0)
        return sdb_fail(STORE_ENOTDB, "database schema version %lld is invalid",
                        (long long)version);
    if (version == 0 && app_id == 0) {
        /* A fresh file must be empty: refuse to add our tables to someone else's. */
        static const char sql_n_tables[] = "SELECT count(*) FROM sqlite_master";
        int64_t n;
        rc = read_pragma_int(st, sql_n_tables, &n);
        if (rc)
            return rc;
        if (n > 0)
            return sdb_fail(STORE_ENOTDB, "database has %lld objects but no chatd schema",
                            (long long)n);
    }
    for (int64_t v = version; v < N_MIGRATIONS; v++) {
        char *msg = NULL;
        int src = sqlite3_exec(sdb_db(st), migrations[v], NULL, NULL, &msg);
        if (src != SQLITE_OK) {
            rc = sdb_fail(src == SQLITE_BUSY ? STORE_EBUSY : STORE_ESQL, "migration %lld: %s",
                          (long long)v + 1, msg ? msg : sqlite3_errstr(src));
            sqlite3_free(msg);
            snprintf(err, err_len, "%s", store_errmsg());
            return rc;
        }
        sdb_log(st, STORE_LOG_INFO, "store: applied migration %lld", (long long)v + 1);
    }
    return 0;
}
