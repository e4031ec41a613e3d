/* test_store.c - storage/: migrations, users and keys, sessions and messages, the
 * streaming reply and the turn transaction, usage and prices, idempotency keys, and
 * several threads and connections writing at once. Each test uses its own database
 * file under /tmp, removed afterwards. */
#include "store.h"
#include "test.h"
#include "test_sys.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <time.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ---- */

static char db_path[256];
static _Atomic int64_t fake_now;

static int64_t fake_clock(void *user)
{
    (void)user;
    return atomic_load(&fake_now);
}

static void new_path(void)
{
    static int n;
    snprintf(db_path, sizeof(db_path), "/tmp/chatd-test-store-%d-%d.db", (int)getpid(), ++n);
    test_remove_db(db_path);
}

/* Opens a fresh database with the fake clock at 2026-03-15 12:00 UTC. */
static struct store *open_fresh(void)
{
    new_path();
    atomic_store(&fake_now, 1773576000000LL);
    struct store_params p = store_default_params();
    p.now_ms = fake_clock;
    p.flush_interval_ms = 500;
    struct store *st = NULL;
    char err[512];
    int rc = store_open(db_path, &p, &st, err, sizeof(err));
    if (rc)
        fprintf(stderr, "store_open: %s\n", err);
    return st;
}

/* open_fresh, then user "alice" and her session "t" on model "m". Returns 0, or the
 * first failing step's code (-1: the open failed), naming the step on stderr. */
static int open_with_session(struct store **st, struct store_user *a, struct store_session *s)
{
    *st = open_fresh();
    if (!*st)
        return -1;
    int rc = store_user_add(*st, "alice", false, 0, a);
    if (rc != 0) {
        fprintf(stderr, "  store_user_add: %d\n", rc);
        return rc;
    }
    rc = store_session_create(*st, a->id, "t", "m", "", s);
    if (rc != 0)
        fprintf(stderr, "  store_session_create: %d\n", rc);
    return rc;
}

static void close_db(struct store *st)
{
    store_close(st);
    test_remove_db(db_path);
}

/* Runs one integer-valued SQL query on the file with a separate connection. */
static int64_t sql_int(const char *sql)
{
    sqlite3 *db;
    int64_t v = -1;
    if (sqlite3_open(db_path, &db) == SQLITE_OK) {
        sqlite3_stmt *s;
        if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK) {
            if (sqlite3_step(s) == SQLITE_ROW)
                v = sqlite3_column_int64(s, 0);
            sqlite3_finalize(s);
        }
    }
    sqlite3_close(db);
    return v;
}

static void sql_exec(const char *path, const char *sql)
{
    sqlite3 *db;
    if (sqlite3_open(path, &db) == SQLITE_OK)
        sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
}

static struct store_usage_in usage_in(const char *rid, int64_t user, const char *model,
                                      int64_t prompt, int64_t cached, int64_t completion)
{
    struct store_usage_in u = {
        .request_id = rid,
        .user_id = user,
        .model = model,
        .prompt_tokens = prompt,
        .cached_tokens = cached,
        .completion_tokens = completion,
        .status = STORE_MSG_COMPLETE,
    };
    return u;
}

/* ---- schema ---- */

static void test_migrations_fresh(void)
{
    struct store *st = open_fresh();
    ASSERT_TRUE(st != NULL);
    ASSERT_INT_EQ(store_db_version(st), store_schema_version());
    ASSERT_INT_OP(store_schema_version(), >=, 1);
    ASSERT_INT_EQ(sql_int("PRAGMA user_version"), store_schema_version());
    ASSERT_INT_EQ(sql_int("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                          "('users','api_keys','sessions','messages','usage','prices',"
                          "'idempotency')"),
                  7);
    ASSERT_INT_EQ(sql_int("SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'"),
                  1);
    ASSERT_INT_EQ(store_integrity_check(st), 0);
    store_close(st);
    /* Reopening an up-to-date database changes nothing and keeps the data. */
    struct store *st2 = NULL;
    char err[256];
    ASSERT_INT_EQ(store_open(db_path, NULL, &st2, err, sizeof(err)), 0);
    ASSERT_INT_EQ(store_user_add(st2, "alice", false, 0, NULL), 0);
    store_close(st2);
    ASSERT_INT_EQ(store_open(db_path, NULL, &st2, err, sizeof(err)), 0);
    struct store_user u;
    ASSERT_INT_EQ(store_user_get_by_name(st2, "alice", &u), 0);
    close_db(st2);
}

static void test_refuses_newer_db(void)
{
    struct store *st = open_fresh();
    ASSERT_TRUE(st != NULL);
    store_close(st);
    sql_exec(db_path, "PRAGMA user_version = 999");
    char err[512] = "";
    st = (struct store *)1;
    int rc = store_open(db_path, NULL, &st, err, sizeof(err));
    ASSERT_INT_EQ(rc, STORE_ETOONEW);
    ASSERT_TRUE(st == NULL);
    ASSERT_STR_CONTAINS(err, "999");
    ASSERT_STR_CONTAINS(err, "newer");
    test_remove_db(db_path);
}

static void test_refuses_foreign_db(void)
{
    new_path();
    sql_exec(db_path, "CREATE TABLE notes (x TEXT)");
    struct store *st = NULL;
    char err[512] = "";
    ASSERT_INT_EQ(store_open(db_path, NULL, &st, err, sizeof(err)), STORE_ENOTDB);
    ASSERT_STR_CONTAINS(err, "no chatd schema");
    test_remove_db(db_path);
    new_path();
    sql_exec(db_path, "PRAGMA application_id = 42");
    ASSERT_INT_EQ(store_open(db_path, NULL, &st, err, sizeof(err)), STORE_ENOTDB);
    ASSERT_STR_CONTAINS(err, "application_id");
    test_remove_db(db_path);
    /* Not an SQLite file at all. */
    FILE *f = fopen(db_path, "w");
    ASSERT_TRUE(f != NULL);
    fputs("this is not a database, just some text that is long enough to have a header......"
          "................................................................................",
          f);
    fclose(f);
    ASSERT_INT_OP(store_open(db_path, NULL, &st, err, sizeof(err)), <, 0);
    ASSERT_TRUE(st == NULL);
    test_remove_db(db_path);
}

/* ---- users and keys ---- */

static void test_users(void)
{
    struct store *st = open_fresh();
    ASSERT_TRUE(st != NULL);
    struct store_user a, b, got;
    ASSERT_INT_EQ(store_user_add(st, "alice", true, 1000, &a), 0);
    ASSERT_STR_EQ(a.name, "alice");
    ASSERT_TRUE(a.is_admin);
    ASSERT_INT_EQ(a.token_quota, 1000);
    ASSERT_INT_EQ(a.created_ms, 1773576000000LL);
    ASSERT_INT_EQ(store_user_add(st, "bob", false, 0, &b), 0);
    ASSERT_INT_EQ(store_user_add(st, "alice", false, 0, NULL), STORE_EEXISTS);
    ASSERT_STR_CONTAINS(store_errmsg(), "alice");
    ASSERT_INT_EQ(store_user_add(st, "", false, 0, NULL), STORE_EINVAL);
    ASSERT_INT_EQ(store_user_add(st, "a b", false, 0, NULL), STORE_EINVAL);
    ASSERT_INT_EQ(store_user_add(st, "x'; DROP TABLE users;--", false, 0, NULL), STORE_EINVAL);
    ASSERT_INT_EQ(store_user_add(st, "carol", false, -1, NULL), STORE_EINVAL);
    ASSERT_INT_EQ(store_user_get(st, b.id, &got), 0);
    ASSERT_STR_EQ(got.name, "bob");
    ASSERT_INT_EQ(store_user_get_by_name(st, "nobody", &got), STORE_ENOTFOUND);
    ASSERT_INT_EQ(store_user_get(st, 12345, &got), STORE_ENOTFOUND);
    ASSERT_INT_EQ(store_user_set_quota(st, b.id, 77), 0);
    ASSERT_INT_EQ(store_user_get(st, b.id, &got), 0);
    ASSERT_INT_EQ(got.token_quota, 77);
    ASSERT_INT_EQ(store_user_set_quota(st, 999, 1), STORE_ENOTFOUND);
    struct store_user l1, l2;
    ASSERT_INT_EQ(store_user_local(st, &l1), 0);
    ASSERT_INT_EQ(store_user_local(st, &l2), 0);
    ASSERT_INT_EQ(l1.id, l2.id);
    ASSERT_STR_EQ(l1.name, STORE_LOCAL_USER);
    ASSERT_TRUE(l1.is_admin);
    struct store_user *list;
    size_t n;
    ASSERT_INT_EQ(store_user_list(st, &list, &n), 0);
    ASSERT_INT_EQ(n, 3);
    ASSERT_STR_EQ(list[0].name, "alice");
    ASSERT_STR_EQ(list[1].name, "bob");
    ASSERT_STR_EQ(list[2].name, "local");
    free(list);
    close_db(st);
}

static void test_keys(void)
{
    struct store *st = open_fresh();
    ASSERT_TRUE(st != NULL);
    struct store_user a, b, who;
    ASSERT_INT_EQ(store_user_add(st, "alice", false, 0, &a), 0);
    ASSERT_INT_EQ(store_user_add(st, "bob", false, 0, &b), 0);
    char ka[STORE_KEY_LEN + 1], kb[STORE_KEY_LEN + 1], small[10];
    struct store_key info;
    ASSERT_INT_EQ(store_key_create(st, a.id, ka, sizeof(ka), &info), 0);
    ASSERT_INT_EQ(strlen(ka), STORE_KEY_LEN);
    ASSERT_TRUE(strncmp(ka, "sk-chatd-", 9) == 0);
    ASSERT_TRUE(strncmp(ka, info.prefix, STORE_KEY_PREFIX_LEN) == 0);
    ASSERT_INT_EQ(strlen(info.prefix), STORE_KEY_PREFIX_LEN);
    ASSERT_INT_EQ(store_key_create(st, b.id, kb, sizeof(kb), NULL), 0);
    ASSERT_TRUE(strcmp(ka, kb) != 0);
    ASSERT_INT_EQ(store_key_create(st, a.id, small, sizeof(small), NULL), STORE_EINVAL);
    char kc[STORE_KEY_LEN + 1];
    ASSERT_INT_EQ(store_key_create(st, 999, kc, sizeof(kc), NULL), STORE_ENOTFOUND);
    ASSERT_STR_EQ(kc, "");

    /* Only the hash and the prefix are stored, never the key. */
    ASSERT_INT_EQ(sql_int("SELECT count(*) FROM api_keys WHERE length(hash) = 32 "
                          "AND length(prefix) = 17"),
                  2);
    char q[256];
    snprintf(q, sizeof(q), "SELECT count(*) FROM api_keys WHERE hash = '%s' OR prefix = '%s'", ka,
             ka);
    ASSERT_INT_EQ(sql_int(q), 0);

    ASSERT_INT_EQ(store_key_auth(st, ka, &who, NULL), 0);
    ASSERT_INT_EQ(who.id, a.id);
    ASSERT_INT_EQ(store_key_auth(st, kb, &who, &info), 0);
    ASSERT_INT_EQ(who.id, b.id);
    ASSERT_INT_EQ(info.user_id, b.id);
    /* Right prefix, wrong secret. */
    char forged[STORE_KEY_LEN + 1];
    memcpy(forged, ka, sizeof(forged));
    forged[STORE_KEY_LEN - 1] = forged[STORE_KEY_LEN - 1] == 'A' ? 'B' : 'A';
    ASSERT_INT_EQ(store_key_auth(st, forged, &who, NULL), STORE_ENOTFOUND);
    ASSERT_INT_EQ(store_key_auth(st, "sk-chatd-short", &who, NULL), STORE_ENOTFOUND);
    ASSERT_INT_EQ(store_key_auth(st, "", &who, NULL), STORE_ENOTFOUND);
    ASSERT_INT_EQ(store_key_auth(st, NULL, &who, NULL), STORE_ENOTFOUND);

    char prefix[STORE_KEY_PREFIX_LEN + 1];
    memcpy(prefix, ka, STORE_KEY_PREFIX_LEN);
    prefix[STORE_KEY_PREFIX_LEN] = 0;
    atomic_fetch_add(&fake_now, 1000);
    ASSERT_INT_EQ(store_key_revoke(st, prefix, &info), 0);
    ASSERT_INT_EQ(info.revoked_ms, atomic_load(&fake_now));
    ASSERT_INT_EQ(store_key_auth(st, ka, &who, NULL), STORE_EREVOKED);
    atomic_fetch_add(&fake_now, 1000);
    ASSERT_INT_EQ(store_key_revoke(st, prefix, &info), 0); /* again: kept the first time */
    ASSERT_INT_EQ(info.revoked_ms, atomic_load(&fake_now) - 1000);
    ASSERT_INT_EQ(store_key_revoke(st, "sk-chatd-zzzzzzzz", NULL), STORE_ENOTFOUND);
    ASSERT_INT_EQ(store_key_revoke(st, "abc", NULL), STORE_EINVAL);
    ASSERT_INT_EQ(store_key_auth(st, kb, &who, NULL), 0); /* bob unaffected */

    struct store_key *keys;
    size_t n;
    ASSERT_INT_EQ(store_key_create(st, a.id, ka, sizeof(ka), NULL), 0);
    ASSERT_INT_EQ(store_key_list(st, a.id, &keys, &n), 0);
    ASSERT_INT_EQ(n, 2);
    ASSERT_INT_EQ(keys[0].revoked_ms, 0); /* newest first */
    ASSERT_INT_OP(keys[1].revoked_ms, >, 0);
    free(keys);
    close_db(st);
}

/* ---- sessions and messages ---- */

static void test_sessions(void)
{
    struct store *st = open_fresh();
    ASSERT_TRUE(st != NULL);
    struct store_user a, b;
    ASSERT_INT_EQ(store_user_add(st, "alice", false, 0, &a), 0);
    ASSERT_INT_EQ(store_user_add(st, "bob", false, 0, &b), 0);
    char ids[5][STORE_ID_MAX + 1];
    for (int i = 0; i < 5; i++) {
        struct store_session s;
        char title[32];
        snprintf(title, sizeof(title), "chat %d", i);
        atomic_fetch_add(&fake_now, 10);
        ASSERT_INT_EQ(store_session_create(st, a.id, title, "tiny", "be brief", &s), 0);
        ASSERT_INT_EQ(strlen(s.id), 37);
        ASSERT_TRUE(strncmp(s.id, "sess_", 5) == 0);
        ASSERT_STR_EQ(s.title, title);
        ASSERT_STR_EQ(s.system_prompt, "be brief");
        ASSERT_INT_EQ(s.user_id, a.id);
        snprintf(ids[i], sizeof(ids[i]), "%s", s.id);
        store_session_fini(&s);
    }
    ASSERT_INT_EQ(store_session_create(st, b.id, NULL, NULL, NULL, NULL), 0);
    ASSERT_INT_EQ(store_session_create(st, 999, NULL, NULL, NULL, NULL), STORE_EINVAL);

    struct store_session got;
    ASSERT_INT_EQ(store_session_get(st, a.id, ids[2], &got), 0);
    ASSERT_STR_EQ(got.title, "chat 2");
    ASSERT_STR_EQ(got.model, "tiny");
    store_session_fini(&got);
    /* Another user's session is exactly "not found". */
    ASSERT_INT_EQ(store_session_get(st, b.id, ids[2], &got), STORE_ENOTFOUND);
    ASSERT_INT_EQ(store_session_get(st, a.id, "sess_nope", &got), STORE_ENOTFOUND);
    ASSERT_INT_EQ(store_session_get(st, a.id, "../etc/passwd", &got), STORE_ENOTFOUND);
    ASSERT_INT_EQ(store_session_update(st, b.id, ids[2], "hijack", NULL), STORE_ENOTFOUND);
    ASSERT_INT_EQ(store_session_delete(st, b.id, ids[2]), STORE_ENOTFOUND);

    /* Paging, newest first: 5 sessions in pages of 2. */
    struct store_session *page;
    size_t n;
    bool more;
    ASSERT_INT_EQ(store_session_list(st, a.id, NULL, 2, &page, &n, &more), 0);
    ASSERT_INT_EQ(n, 2);
    ASSERT_TRUE(more);
    ASSERT_STR_EQ(page[0].id, ids[4]);
    ASSERT_STR_EQ(page[1].id, ids[3]);
    char after[STORE_ID_MAX + 1];
    snprintf(after, sizeof(after), "%s", page[1].id);
    store_sessions_free(page, n);
    ASSERT_INT_EQ(store_session_list(st, a.id, after, 2, &page, &n, &more), 0);
    ASSERT_INT_EQ(n, 2);
    ASSERT_TRUE(more);
    ASSERT_STR_EQ(page[0].id, ids[2]);
    ASSERT_STR_EQ(page[1].id, ids[1]);
    snprintf(after, sizeof(after), "%s", page[1].id);
    store_sessions_free(page, n);
    ASSERT_INT_EQ(store_session_list(st, a.id, after, 2, &page, &n, &more), 0);
    ASSERT_INT_EQ(n, 1);
    ASSERT_TRUE(!more);
    ASSERT_STR_EQ(page[0].id, ids[0]);
    store_sessions_free(page, n);
    ASSERT_INT_EQ(store_session_list(st, b.id, ids[0], 2, &page, &n, &more), STORE_ENOTFOUND);
    ASSERT_INT_EQ(store_session_list(st, a.id, NULL, 0, &page, &n, &more), STORE_EINVAL);
    ASSERT_INT_EQ(store_session_list(st, b.id, NULL, 100, &page, &n, NULL), 0);
    ASSERT_INT_EQ(n, 1);
    store_sessions_free(page, n);

    /* Update moves the session to the front; NULL keeps a field. */
    atomic_fetch_add(&fake_now, 10);
    ASSERT_INT_EQ(store_session_update(st, a.id, ids[0], "renamed", NULL), 0);
    ASSERT_INT_EQ(store_session_get(st, a.id, ids[0], &got), 0);
    ASSERT_STR_EQ(got.title, "renamed");
    ASSERT_STR_EQ(got.system_prompt, "be brief");
    store_session_fini(&got);
    ASSERT_INT_EQ(store_session_update(st, a.id, ids[0], NULL, "be long"), 0);
    ASSERT_INT_EQ(store_session_get(st, a.id, ids[0], &got), 0);
    ASSERT_STR_EQ(got.title, "renamed");
    ASSERT_STR_EQ(got.system_prompt, "be long");
    store_session_fini(&got);
    ASSERT_INT_EQ(store_session_list(st, a.id, NULL, 1, &page, &n, NULL), 0);
    ASSERT_STR_EQ(page[0].id, ids[0]);
    store_sessions_free(page, n);

    /* Delete takes the messages along. */
    struct store_msg_in m = {.role = "user", .content = "hi", .n_tokens = 1};
    ASSERT_INT_EQ(store_message_append(st, a.id, ids[1], &m, NULL, NULL), 0);
    ASSERT_INT_EQ(store_session_delete(st, a.id, ids[1]), 0);
    ASSERT_INT_EQ(store_session_get(st, a.id, ids[1], &got), STORE_ENOTFOUND);
    ASSERT_INT_EQ(store_session_delete(st, a.id, ids[1]), STORE_ENOTFOUND);
    ASSERT_INT_EQ(sql_int("SELECT count(*) FROM messages"), 0);
    ASSERT_INT_EQ(store_integrity_check(st), 0);
    close_db(st);
}

static void test_messages(void)
{
    struct store *st;
    struct store_user a, b;
    struct store_session s;
    ASSERT_INT_EQ(open_with_session(&st, &a, &s), 0);
    ASSERT_INT_EQ(store_user_add(st, "bob", false, 0, &b), 0);
    const int32_t ids[] = {1, -2, 151643, INT32_MAX, INT32_MIN, 0};
    struct store_msg_in m = {
        .role = "user",
        .content = "大模型很厲害。",
        .token_ids = ids,
        .n_token_ids = 6,
        .n_tokens = 6,
        .fingerprint = "model:abc/template:def",
    };
    int64_t id1, seq1, id2, seq2;
    ASSERT_INT_EQ(store_message_append(st, a.id, s.id, &m, &id1, &seq1), 0);
    ASSERT_INT_EQ(seq1, 1);
    struct store_msg_in m2 = {.role = "assistant",
                              .content = "yes",
                              .reasoning = "hmm",
                              .n_tokens = 2,
                              .status = STORE_MSG_COMPLETE};
    ASSERT_INT_EQ(store_message_append(st, a.id, s.id, &m2, &id2, &seq2), 0);
    ASSERT_INT_EQ(seq2, 2);
    ASSERT_INT_OP(id2, >, id1);
    /* Scoping and validation. */
    ASSERT_INT_EQ(store_message_append(st, b.id, s.id, &m, NULL, NULL), STORE_ENOTFOUND);
    struct store_msg_in bad = {.role = "robot"};
    ASSERT_INT_EQ(store_message_append(st, a.id, s.id, &bad, NULL, NULL), STORE_EINVAL);
    struct store_message *list;
    size_t n;
    ASSERT_INT_EQ(store_message_list(st, b.id, s.id, &list, &n), STORE_ENOTFOUND);
    ASSERT_INT_EQ(store_message_list(st, a.id, s.id, &list, &n), 0);
    ASSERT_INT_EQ(n, 2);
    ASSERT_STR_EQ(list[0].role, "user");
    ASSERT_STR_EQ(list[0].content, "大模型很厲害。");
    ASSERT_STR_EQ(list[0].fingerprint, "model:abc/template:def");
    ASSERT_INT_EQ(list[0].n_token_ids, 6);
    for (int i = 0; i < 6; i++)
        ASSERT_INT_EQ(list[0].token_ids[i], ids[i]);
    ASSERT_INT_EQ(list[0].status, STORE_MSG_COMPLETE);
    ASSERT_STR_EQ(list[1].reasoning, "hmm");
    ASSERT_TRUE(list[1].token_ids == NULL);
    store_messages_free(list, n);
    struct store_session got;
    ASSERT_INT_EQ(store_session_get(st, a.id, s.id, &got), 0);
    ASSERT_INT_EQ(got.n_messages, 2);
    ASSERT_INT_EQ(got.n_tokens, 8);
    store_session_fini(&got);
    store_session_fini(&s);
    close_db(st);
}

/* A streamed reply flushed in batches, then finished with its usage. */
static void test_reply_and_turn(void)
{
    struct store *st;
    struct store_user a;
    struct store_session s;
    ASSERT_INT_EQ(open_with_session(&st, &a, &s), 0);
    struct store_msg_in um = {.role = "user", .content = "count", .n_tokens = 3};
    ASSERT_INT_EQ(store_message_append(st, a.id, s.id, &um, NULL, NULL), 0);
    ASSERT_INT_EQ(store_price_set(st, "m", 1000000, 100000, 2000000, 0, NULL), 0);

    struct store_usage_in u = usage_in("req-1", a.id, "m", 10, 4, 0);
    u.session_id = s.id;
    struct store_reply r;
    ASSERT_INT_EQ(store_reply_begin_billed(st, &u, &r), 0);
    ASSERT_INT_OP(r.msg_id, >, 0);
    struct store_reply r2;
    ASSERT_INT_EQ(store_reply_begin_billed(st, &u, &r2), STORE_EEXISTS); /* one reply per request */
    ASSERT_INT_EQ(r2.msg_id, 0);
    struct store_usage_in other = u;
    other.request_id = "req-other";
    other.user_id = a.id + 100; /* not the session's owner */
    ASSERT_INT_EQ(store_reply_begin_billed(st, &other, &r2), STORE_ENOTFOUND);
    ASSERT_INT_EQ(store_reply_flush_tokens(st, &r, "one", "", 1, 0, false), 1); /* first: due */
    atomic_fetch_add(&fake_now, 100);
    ASSERT_INT_EQ(store_reply_flush_tokens(st, &r, "one two", "", 2, 0, false), 0); /* queued */
    atomic_fetch_add(&fake_now, 500);
    ASSERT_INT_EQ(store_reply_flush_tokens(st, &r, "one two three", "", 3, 1, false), 1);
    ASSERT_INT_EQ(store_reply_flush_tokens(st, &r, "one two three", "", 3, 1, true), 1);
    ASSERT_INT_EQ(store_reply_flush_tokens(st, &r, "x", "", 1, 2, true), STORE_EINVAL);
    ASSERT_INT_EQ(r.n_flushes, 3);
    ASSERT_INT_EQ(store_group_commits(st), 3);
    ASSERT_INT_EQ(sql_int("SELECT completion_tokens * 10 + reasoning_tokens FROM pending_usage"),
                  31);
    struct store_message *list;
    size_t n;
    ASSERT_INT_EQ(store_message_list(st, a.id, s.id, &list, &n), 0);
    ASSERT_INT_EQ(n, 2);
    ASSERT_STR_EQ(list[1].content, "one two three");
    ASSERT_INT_EQ(list[1].status, STORE_MSG_PARTIAL);
    store_messages_free(list, n);

    const int32_t toks[] = {5, 6, 7, 8};
    struct store_msg_in fin = {.role = "assistant",
                               .content = "one two three four",
                               .token_ids = toks,
                               .n_token_ids = 4,
                               .n_tokens = 4,
                               .fingerprint = "fp",
                               .status = STORE_MSG_COMPLETE};
    u.completion_tokens = 4;
    int64_t mid;
    struct store_usage got;
    ASSERT_INT_EQ(store_finish_turn(st, &r, &fin, &u, &mid, &got), 0);
    ASSERT_INT_EQ(mid, r.msg_id);
    /* 6 miss * 1.0 + 4 hit * 0.1 + 4 out * 2.0 = 14.4 micro -> 15 */
    ASSERT_INT_EQ(got.cost_micros, 15);
    ASSERT_STR_EQ(got.session_id, s.id);
    ASSERT_INT_EQ(store_message_list(st, a.id, s.id, &list, &n), 0);
    ASSERT_STR_EQ(list[1].content, "one two three four");
    ASSERT_INT_EQ(list[1].status, STORE_MSG_COMPLETE);
    ASSERT_INT_EQ(list[1].n_token_ids, 4);
    store_messages_free(list, n);
    ASSERT_INT_EQ(sql_int("SELECT count(*) FROM pending_usage"), 0);
    /* A late flush of a finished reply changes nothing. */
    ASSERT_INT_EQ(store_reply_flush_tokens(st, &r, "x", "", 1, 0, true), 1);
    ASSERT_INT_EQ(store_message_list(st, a.id, s.id, &list, &n), 0);
    ASSERT_STR_EQ(list[1].content, "one two three four");
    store_messages_free(list, n);

    /* Without a streaming row: a new message with its usage. */
    struct store_usage_in u2 = usage_in("req-2", a.id, "m", 20, 0, 1);
    u2.session_id = s.id;
    ASSERT_INT_EQ(store_finish_turn(st, NULL, &fin, &u2, &mid, NULL), 0);
    ASSERT_INT_OP(mid, >, r.msg_id);
    ASSERT_INT_EQ(sql_int("SELECT count(*) FROM messages"), 3);
    ASSERT_INT_EQ(sql_int("SELECT count(*) FROM usage"), 2);

    /* Without crash billing: no pending usage. */
    struct store_reply r3;
    ASSERT_INT_EQ(store_reply_begin(st, a.id + 100, s.id, &r3), STORE_ENOTFOUND);
    ASSERT_INT_EQ(store_reply_begin(st, a.id, "sess_missing", &r3), STORE_ENOTFOUND);
    ASSERT_INT_EQ(store_reply_begin(st, a.id, s.id, &r3), 0);
    atomic_fetch_add(&fake_now, 1000);
    ASSERT_INT_EQ(store_reply_flush(st, &r3, "plain", "think", false), 1);
    ASSERT_INT_EQ(sql_int("SELECT count(*) FROM pending_usage"), 0);
    ASSERT_INT_EQ(sql_int("SELECT count(*) FROM messages WHERE content = 'plain' AND "
                          "reasoning = 'think' AND status = 'partial'"),
                  1);
    struct store_usage_in u3 = usage_in("req-3", a.id, "m", 20, 0, 1);
    u3.session_id = s.id;
    ASSERT_INT_EQ(store_finish_turn(st, &r3, &fin, &u3, &mid, NULL), 0);
    ASSERT_INT_EQ(mid, r3.msg_id);
    ASSERT_INT_EQ(sql_int("SELECT count(*) FROM messages WHERE status = 'partial'"), 0);
    store_session_fini(&s);
    close_db(st);
}

/* The message and its usage row are one transaction: a repeated request id stores
 * neither. */
static void test_turn_atomic(void)
{
    struct store *st;
    struct store_user a;
    struct store_session s;
    ASSERT_INT_EQ(open_with_session(&st, &a, &s), 0);
    struct store_usage_in u = usage_in("dup", a.id, "m", 5, 0, 5);
    ASSERT_INT_EQ(store_usage_record(st, &u, NULL), 0);
    ASSERT_INT_EQ(store_usage_record(st, &u, NULL), STORE_EEXISTS);

    u.session_id = s.id;
    struct store_reply r;
    ASSERT_INT_EQ(store_reply_begin_billed(st, &u, &r), STORE_EEXISTS); /* already billed */
    struct store_usage_in ur = usage_in("turn", a.id, "m", 5, 0, 0);
    ur.session_id = s.id;
    ASSERT_INT_EQ(store_reply_begin_billed(st, &ur, &r), 0);
    ASSERT_INT_EQ(store_reply_flush_tokens(st, &r, "partial text", "", 2, 0, true), 1);
    struct store_msg_in fin = {.role = "assistant", .content = "final", .n_tokens = 5};
    ASSERT_INT_EQ(store_finish_turn(st, &r, &fin, &u, NULL, NULL), STORE_EEXISTS);
    struct store_message *list;
    size_t n;
    ASSERT_INT_EQ(store_message_list(st, a.id, s.id, &list, &n), 0);
    ASSERT_INT_EQ(n, 1);
    ASSERT_STR_EQ(list[0].content, "partial text"); /* rolled back */
    ASSERT_INT_EQ(list[0].status, STORE_MSG_PARTIAL);
    store_messages_free(list, n);
    ASSERT_INT_EQ(store_finish_turn(st, NULL, &fin, &u, NULL, NULL), STORE_EEXISTS);
    ASSERT_INT_EQ(sql_int("SELECT count(*) FROM messages"), 1);
    ASSERT_INT_EQ(sql_int("SELECT count(*) FROM usage"), 1);
    /* Invalid usage (cached > prompt) stores no message either. */
    struct store_usage_in badu = usage_in("bad", a.id, "m", 1, 2, 0);
    badu.session_id = s.id;
    ASSERT_INT_EQ(store_finish_turn(st, NULL, &fin, &badu, NULL, NULL), STORE_EINVAL);
    ASSERT_INT_EQ(sql_int("SELECT count(*) FROM messages"), 1);
    /* A session deleted mid-stream: the request is still billed once. */
    ASSERT_INT_EQ(store_session_delete(st, a.id, s.id), 0);
    struct store_usage_in u3 = usage_in("after-delete", a.id, "m", 5, 0, 5);
    u3.session_id = s.id;
    int64_t mid = -1;
    ASSERT_INT_EQ(store_finish_turn(st, &r, &fin, &u3, &mid, NULL), 0);
    ASSERT_INT_EQ(mid, 0);
    ASSERT_INT_EQ(sql_int("SELECT count(*) FROM usage"), 2);
    store_session_fini(&s);
    close_db(st);
}

/* ---- usage and prices ---- */

static void test_cost_rounding(void)
{
    struct store_price p = {.input_miss = 1, .input_hit = 0, .output = 0};
    int64_t c;
    ASSERT_INT_EQ(store_cost_micros(&p, 1, 0, 0, &c), 0);
    ASSERT_INT_EQ(c, 1); /* 1e-6 micro rounds up to 1 */
    ASSERT_INT_EQ(store_cost_micros(&p, 0, 0, 0, &c), 0);
    ASSERT_INT_EQ(c, 0);
    p = (struct store_price){.input_miss = 140000, .input_hit = 14000, .output = 280000};
    ASSERT_INT_EQ(store_cost_micros(&p, 1000000, 0, 0, &c), 0);
    ASSERT_INT_EQ(c, 140000);
    /* 900 miss * 0.14 + 100 hit * 0.014 + 500 * 0.28 = 126 + 1.4 + 140 = 267.4 -> 268 */
    ASSERT_INT_EQ(store_cost_micros(&p, 1000, 100, 500, &c), 0);
    ASSERT_INT_EQ(c, 268);
    ASSERT_INT_EQ(store_cost_micros(&p, 1, 2, 0, &c), STORE_EINVAL);
    ASSERT_INT_EQ(store_cost_micros(&p, -1, 0, 0, &c), STORE_EINVAL);
    p.output = INT64_MAX / 2;
    ASSERT_INT_EQ(store_cost_micros(&p, 0, 0, 3, &c), STORE_EOVERFLOW);
}

static void test_price_versions(void)
{
    struct store *st = open_fresh();
    ASSERT_TRUE(st != NULL);
    struct store_user a;
    ASSERT_INT_EQ(store_user_add(st, "alice", false, 0, &a), 0);
    struct store_price fb = {.input_miss = 7, .input_hit = 7, .output = 7};
    struct store_price cur;
    ASSERT_INT_EQ(store_price_current(st, "m", NULL, &cur), STORE_ENOTFOUND);
    ASSERT_INT_EQ(store_price_current(st, "m", &fb, &cur), 0);
    ASSERT_INT_EQ(cur.id, 0);
    ASSERT_INT_EQ(cur.output, 7);

    /* No version: billed at the fallback, recorded once. */
    struct store_usage_in u = usage_in("r0", a.id, "m", 1000000, 0, 0);
    u.fallback_price = &fb;
    struct store_usage r0;
    ASSERT_INT_EQ(store_usage_record(st, &u, &r0), 0);
    ASSERT_INT_EQ(r0.cost_micros, 7);
    u.request_id = "r0b";
    ASSERT_INT_EQ(store_usage_record(st, &u, NULL), 0);
    ASSERT_INT_EQ(sql_int("SELECT count(*) FROM prices WHERE is_fallback = 1"), 1);

    ASSERT_INT_EQ(store_price_sync(st, "m", 1000000, 500000, 2000000), 1);
    ASSERT_INT_EQ(store_price_sync(st, "m", 1000000, 500000, 2000000), 0);
    int64_t t1 = atomic_load(&fake_now);
    struct store_usage_in u1 = usage_in("r1", a.id, "m", 100, 50, 10);
    u1.fallback_price = &fb; /* ignored: a version is in force */
    struct store_usage r1;
    ASSERT_INT_EQ(store_usage_record(st, &u1, &r1), 0);
    ASSERT_INT_EQ(r1.cost_micros, (50 * 1000000 + 50 * 500000 + 10 * 2000000 + 999999) / 1000000);

    /* A new version from t1 + 1 hour; a future version is not yet in force. */
    struct store_price v2;
    ASSERT_INT_EQ(store_price_set(st, "m", 3000000, 1000000, 9000000, t1 + 3600000, &v2), 0);
    ASSERT_INT_EQ(store_price_current(st, "m", &fb, &cur), 0);
    ASSERT_INT_EQ(cur.input_miss, 1000000);
    atomic_store(&fake_now, t1 + 3600000);
    ASSERT_INT_EQ(store_price_current(st, "m", &fb, &cur), 0);
    ASSERT_INT_EQ(cur.id, v2.id);
    struct store_usage_in u2 = usage_in("r2", a.id, "m", 100, 50, 10);
    struct store_usage r2;
    ASSERT_INT_EQ(store_usage_record(st, &u2, &r2), 0);
    ASSERT_INT_EQ(r2.price_id, v2.id);
    ASSERT_INT_EQ(r2.cost_micros, (50 * 3000000 + 50 * 1000000 + 10 * 9000000 + 999999) / 1000000);

    /* Old rows keep their version and their cost; everything recomputes exactly. */
    struct store_usage again;
    ASSERT_INT_EQ(store_usage_get(st, a.id, "r1", &again), 0);
    ASSERT_INT_EQ(again.cost_micros, r1.cost_micros);
    ASSERT_INT_EQ(again.price_id, r1.price_id);
    int64_t rows, mismatch;
    ASSERT_INT_EQ(store_usage_audit(st, &rows, &mismatch), 0);
    ASSERT_INT_EQ(rows, 4);
    ASSERT_INT_EQ(mismatch, 0);
    /* A tampered price would be caught. */
    store_close(st);
    char sql[128];
    snprintf(sql, sizeof(sql),
             "UPDATE usage SET cost_micros = cost_micros + 1 WHERE request_id = 'r2'");
    sql_exec(db_path, sql);
    char err[256];
    ASSERT_INT_EQ(store_open(db_path, NULL, &st, err, sizeof(err)), 0);
    ASSERT_INT_EQ(store_usage_audit(st, &rows, &mismatch), 0);
    ASSERT_INT_EQ(mismatch, 1);
    ASSERT_INT_EQ(store_price_set(st, "m", -1, 0, 0, 0, NULL), STORE_EINVAL);
    close_db(st);
}

static void test_usage_totals(void)
{
    struct store *st = open_fresh();
    ASSERT_TRUE(st != NULL);
    struct store_user a, b;
    ASSERT_INT_EQ(store_user_add(st, "alice", false, 0, &a), 0);
    ASSERT_INT_EQ(store_user_add(st, "bob", false, 0, &b), 0);
    ASSERT_INT_EQ(store_price_set(st, "m1", 123457, 33333, 777777, 1, NULL), 0);
    ASSERT_INT_EQ(store_price_set(st, "m2", 999, 1, 5, 1, NULL), 0);
    struct store_session s;
    ASSERT_INT_EQ(store_session_create(st, a.id, "", "", "", &s), 0);
    int64_t day0 = atomic_load(&fake_now);
    int64_t sum_cost_a = 0, sum_prompt_a = 0, sum_cached_a = 0, sum_out_a = 0, n_a = 0;
    int64_t sum_cost_all = 0;
    int64_t cost_day[3] = {0};
    int64_t cost_m2_a = 0;
    for (int i = 0; i < 60; i++) {
        char rid[32];
        snprintf(rid, sizeof(rid), "req-%d", i);
        atomic_store(&fake_now, day0 + (int64_t)(i % 3) * 86400000 + i);
        bool is_a = i % 4 != 0;
        struct store_usage_in u =
            usage_in(rid, is_a ? a.id : b.id, i % 2 ? "m1" : "m2", 100 + i * 7, i, 3 * i + 1);
        u.reasoning_tokens = i;
        u.session_id = is_a && i % 5 == 0 ? s.id : NULL;
        struct store_usage r;
        ASSERT_INT_EQ(store_usage_record(st, &u, &r), 0);
        sum_cost_all += r.cost_micros;
        if (is_a) {
            sum_cost_a += r.cost_micros;
            sum_prompt_a += u.prompt_tokens;
            sum_cached_a += u.cached_tokens;
            sum_out_a += u.completion_tokens;
            n_a++;
            cost_day[i % 3] += r.cost_micros;
            if (i % 2 == 0)
                cost_m2_a += r.cost_micros;
        }
    }
    struct store_usage_query q = {.user_id = a.id};
    struct store_usage_total *t;
    size_t n;
    ASSERT_INT_EQ(store_usage_totals(st, &q, &t, &n), 0);
    ASSERT_INT_EQ(n, 1);
    ASSERT_INT_EQ(t[0].requests, n_a);
    ASSERT_INT_EQ(t[0].cost_micros, sum_cost_a);
    ASSERT_INT_EQ(t[0].prompt_tokens, sum_prompt_a);
    ASSERT_INT_EQ(t[0].cached_tokens, sum_cached_a);
    ASSERT_INT_EQ(t[0].miss_tokens, sum_prompt_a - sum_cached_a);
    ASSERT_INT_EQ(t[0].completion_tokens, sum_out_a);
    free(t);
    q.group_by = STORE_GROUP_DAY;
    ASSERT_INT_EQ(store_usage_totals(st, &q, &t, &n), 0);
    ASSERT_INT_EQ(n, 3);
    ASSERT_STR_EQ(t[0].key, "2026-03-15");
    ASSERT_STR_EQ(t[2].key, "2026-03-17");
    for (int d = 0; d < 3; d++)
        ASSERT_INT_EQ(t[d].cost_micros, cost_day[d]);
    free(t);
    q.group_by = STORE_GROUP_MODEL;
    ASSERT_INT_EQ(store_usage_totals(st, &q, &t, &n), 0);
    ASSERT_INT_EQ(n, 2);
    ASSERT_STR_EQ(t[1].key, "m2");
    ASSERT_INT_EQ(t[1].cost_micros, cost_m2_a);
    ASSERT_INT_EQ(t[0].cost_micros + t[1].cost_micros, sum_cost_a);
    free(t);
    q.group_by = STORE_GROUP_SESSION;
    ASSERT_INT_EQ(store_usage_totals(st, &q, &t, &n), 0);
    ASSERT_INT_EQ(n, 2);
    ASSERT_STR_EQ(t[0].key, "");
    ASSERT_STR_EQ(t[1].key, s.id);
    ASSERT_INT_EQ(t[0].cost_micros + t[1].cost_micros, sum_cost_a);
    free(t);
    /* All users, per user; and a time window (day 2 only). */
    struct store_usage_query all = {.group_by = STORE_GROUP_USER};
    ASSERT_INT_EQ(store_usage_totals(st, &all, &t, &n), 0);
    ASSERT_INT_EQ(n, 2);
    ASSERT_STR_EQ(t[0].key, "alice");
    ASSERT_INT_EQ(t[0].user_id, a.id);
    ASSERT_INT_EQ(t[0].cost_micros + t[1].cost_micros, sum_cost_all);
    ASSERT_INT_EQ(t[0].requests + t[1].requests, 60);
    free(t);
    struct store_usage_query win = {
        .user_id = a.id, .from_ms = day0 + 86400000, .to_ms = day0 + 2 * 86400000};
    ASSERT_INT_EQ(store_usage_totals(st, &win, &t, &n), 0);
    ASSERT_INT_EQ(n, 1);
    ASSERT_INT_EQ(t[0].cost_micros, cost_day[1]);
    free(t);
    /* Nothing matched: one zero row. */
    win.from_ms = 1;
    win.to_ms = 2;
    ASSERT_INT_EQ(store_usage_totals(st, &win, &t, &n), 0);
    ASSERT_INT_EQ(n, 1);
    ASSERT_INT_EQ(t[0].requests, 0);
    free(t);

    /* By request id, scoped to the user. */
    struct store_usage one;
    ASSERT_INT_EQ(store_usage_get(st, a.id, "req-1", &one), 0);
    ASSERT_INT_EQ(one.prompt_tokens, 107);
    ASSERT_STR_EQ(one.model, "m1");
    ASSERT_INT_EQ(store_usage_get(st, b.id, "req-1", &one), STORE_ENOTFOUND);
    ASSERT_INT_EQ(store_usage_get(st, 0, "req-1", &one), 0);
    ASSERT_INT_EQ(store_usage_get(st, a.id, "nope", &one), STORE_ENOTFOUND);
    /* A bad user id is refused by the foreign key. */
    struct store_usage_in ghost = usage_in("ghost", 999, "m1", 1, 0, 1);
    ASSERT_INT_EQ(store_usage_record(st, &ghost, NULL), STORE_EINVAL);
    store_session_fini(&s);
    close_db(st);
}

static void test_month_tokens(void)
{
    struct store *st = open_fresh();
    ASSERT_TRUE(st != NULL);
    struct store_user a;
    ASSERT_INT_EQ(store_user_add(st, "alice", false, 100, &a), 0);
    /* 2026-02-28 23:59:59.999 UTC belongs to February. */
    atomic_store(&fake_now, 1772323199999LL);
    struct store_usage_in u = usage_in("feb", a.id, "m", 1000, 0, 1000);
    ASSERT_INT_EQ(store_usage_record(st, &u, NULL), 0);
    atomic_store(&fake_now, 1772323200000LL); /* 2026-03-01 00:00 UTC */
    u = usage_in("mar1", a.id, "m", 10, 5, 7);
    ASSERT_INT_EQ(store_usage_record(st, &u, NULL), 0);
    atomic_store(&fake_now, 1773576000000LL);
    u = usage_in("mar15", a.id, "m", 3, 0, 2);
    ASSERT_INT_EQ(store_usage_record(st, &u, NULL), 0);
    int64_t tokens;
    ASSERT_INT_EQ(store_usage_month_tokens(st, a.id, &tokens), 0);
    ASSERT_INT_EQ(tokens, 10 + 7 + 3 + 2);
    close_db(st);
}

static void test_idempotency(void)
{
    struct store *st = open_fresh();
    ASSERT_TRUE(st != NULL);
    struct store_user a, b;
    ASSERT_INT_EQ(store_user_add(st, "alice", false, 0, &a), 0);
    ASSERT_INT_EQ(store_user_add(st, "bob", false, 0, &b), 0);
    char rid[STORE_ID_MAX + 1], hash[STORE_ID_MAX + 1];
    char *resp;
    const int64_t ttl = 3600 * 1000;
    ASSERT_INT_EQ(store_idem_get(st, a.id, "k1", rid, hash, &resp), STORE_ENOTFOUND);
    ASSERT_INT_EQ(store_idem_begin(st, a.id, "k1", "req-1", "h1", ttl), 0);
    ASSERT_INT_EQ(store_idem_begin(st, a.id, "k1", "req-2", "h1", ttl), STORE_EEXISTS);
    ASSERT_INT_EQ(store_idem_begin(st, b.id, "k1", "req-3", "h3", ttl), 0); /* per user */
    ASSERT_INT_EQ(store_idem_get(st, a.id, "k1", rid, hash, &resp), 0);
    ASSERT_STR_EQ(rid, "req-1");
    ASSERT_STR_EQ(hash, "h1");
    ASSERT_TRUE(resp == NULL); /* in flight */
    ASSERT_INT_EQ(store_idem_complete(st, a.id, "k1", "{\"id\":\"req-1\"}"), 0);
    ASSERT_INT_EQ(store_idem_get(st, a.id, "k1", rid, NULL, &resp), 0);
    ASSERT_STR_EQ(resp, "{\"id\":\"req-1\"}");
    free(resp);
    ASSERT_INT_EQ(store_idem_get(st, b.id, "k1", rid, hash, &resp), 0);
    ASSERT_STR_EQ(rid, "req-3");
    ASSERT_TRUE(resp == NULL);
    ASSERT_INT_EQ(store_idem_release(st, b.id, "k1"), 0);
    ASSERT_INT_EQ(store_idem_get(st, b.id, "k1", rid, hash, &resp), STORE_ENOTFOUND);
    ASSERT_INT_EQ(store_idem_complete(st, b.id, "k1", "x"), STORE_ENOTFOUND);
    /* a key expires: after its time to live it can be claimed anew */
    atomic_fetch_add(&fake_now, ttl + 1);
    ASSERT_INT_EQ(store_idem_begin(st, a.id, "k1", "req-4", "h4", ttl), 0);
    ASSERT_INT_EQ(store_idem_get(st, a.id, "k1", rid, hash, &resp), 0);
    ASSERT_STR_EQ(rid, "req-4");
    ASSERT_TRUE(resp == NULL);
    int64_t n;
    atomic_fetch_add(&fake_now, 1000);
    ASSERT_INT_EQ(store_idem_prune(st, atomic_load(&fake_now), &n), 0);
    ASSERT_INT_EQ(n, 1);
    close_db(st);
}

/* Reservations: admission sees the month's usage and every reservation in flight, a
 * usage row settles its own, a released or expired one stops counting. */
static void test_quota_reservations(void)
{
    struct store *st = open_fresh();
    ASSERT_TRUE(st != NULL);
    struct store_user u, free_user;
    ASSERT_INT_EQ(store_user_add(st, "q", false, 100, &u), 0);
    ASSERT_INT_EQ(store_user_add(st, "f", false, 0, &free_user), 0);
    const int64_t ttl = 600 * 1000;
    struct store_quota q;
    int64_t max = 50;
    ASSERT_INT_EQ(store_quota_reserve(st, u.id, "r1", 10, &max, ttl, &q), 0);
    ASSERT_INT_EQ(max, 50); /* 100 - 10 - 50 = 40 left */
    max = 50;
    ASSERT_INT_EQ(store_quota_reserve(st, u.id, "r2", 10, &max, ttl, &q), 0);
    ASSERT_INT_EQ(q.reserved, 60);
    ASSERT_INT_EQ(max, 30); /* cut to what is left */
    max = 5;
    ASSERT_INT_EQ(store_quota_reserve(st, u.id, "r3", 0, &max, ttl, &q), STORE_EQUOTA);
    ASSERT_INT_EQ(q.reserved, 100);
    /* r1 is billed less than it reserved: its usage row settles the reservation */
    struct store_usage_in in = usage_in("r1", u.id, "m", 10, 0, 20);
    ASSERT_INT_EQ(store_usage_record(st, &in, NULL), 0);
    max = 100;
    ASSERT_INT_EQ(store_quota_reserve(st, u.id, "r4", 0, &max, ttl, &q), 0);
    ASSERT_INT_EQ(q.used, 30);
    ASSERT_INT_EQ(q.reserved, 40);
    ASSERT_INT_EQ(max, 30);
    ASSERT_INT_EQ(store_quota_release(st, "r4"), 0);
    ASSERT_INT_EQ(store_quota_release(st, "r2"), 0);
    /* a reservation of a dead process stops counting after its time to live */
    max = 70;
    ASSERT_INT_EQ(store_quota_reserve(st, u.id, "r5", 0, &max, ttl, &q), 0);
    ASSERT_INT_EQ(max, 70);
    atomic_fetch_add(&fake_now, ttl + 1);
    max = 70;
    ASSERT_INT_EQ(store_quota_reserve(st, u.id, "r6", 0, &max, ttl, &q), 0);
    ASSERT_INT_EQ(q.reserved, 0);
    /* no quota: nothing reserved */
    max = 1000000;
    ASSERT_INT_EQ(store_quota_reserve(st, free_user.id, "r7", 5, &max, ttl, &q), 0);
    ASSERT_INT_EQ(max, 1000000);
    ASSERT_INT_EQ(sql_int("SELECT count(*) FROM reservations WHERE request_id = 'r7'"), 0);
    close_db(st);
}

/* Many streams, one commit per interval. */
static void test_group_commit(void)
{
    struct store *st;
    struct store_user a;
    struct store_session s;
    ASSERT_INT_EQ(open_with_session(&st, &a, &s), 0);
    enum { N = 20 };
    struct store_reply r[N];
    for (int i = 0; i < N; i++) {
        char rid[32];
        snprintf(rid, sizeof(rid), "g%d", i);
        struct store_usage_in u = usage_in(rid, a.id, "m", 10, 0, 0);
        u.session_id = s.id;
        ASSERT_INT_EQ(store_reply_begin_billed(st, &u, &r[i]), 0);
    }
    int written = 0;
    for (int i = 0; i < N; i++)
        written += store_reply_flush_tokens(st, &r[i], "a", "", 1, 0, false);
    ASSERT_INT_EQ(written, 1); /* the first call was due, the rest wait */
    ASSERT_INT_EQ(sql_int("SELECT count(*) FROM messages WHERE content = 'a'"), 1);
    atomic_fetch_add(&fake_now, 500);
    ASSERT_INT_EQ(store_reply_flush_tokens(st, &r[5], "b", "", 2, 0, false), 1);
    ASSERT_INT_EQ(store_group_commits(st), 2);
    ASSERT_INT_EQ(sql_int("SELECT count(*) FROM messages WHERE content = 'a'"), N - 1);
    ASSERT_INT_EQ(sql_int("SELECT count(*) FROM messages WHERE content = 'b'"), 1);
    ASSERT_INT_EQ(sql_int("SELECT sum(completion_tokens) FROM pending_usage"), N + 1);
    store_session_fini(&s);
    close_db(st);
}

/* A crash mid-stream: the reply stays partial with its last flushed text, and the
 * request is billed once for exactly the flushed tokens. */
static void test_recover_interrupted(void)
{
    struct store *st;
    struct store_user a;
    struct store_session s;
    ASSERT_INT_EQ(open_with_session(&st, &a, &s), 0);
    struct store_price fb = {.input_miss = 2000000, .input_hit = 1000000, .output = 3000000};
    struct store_usage_in u = usage_in("crash-1", a.id, "m", 100, 40, 0);
    u.session_id = s.id;
    u.fallback_price = &fb;
    struct store_reply r;
    ASSERT_INT_EQ(store_reply_begin_billed(st, &u, &r), 0);
    ASSERT_INT_EQ(store_reply_flush_tokens(st, &r, "seven tokens of text", "hm", 7, 2, true), 1);
    ASSERT_INT_EQ(
        store_reply_flush_tokens(st, &r, "seven tokens of text and more", "hm", 9, 2, false),
        0); /* not yet committed: lost in the crash */
    /* A finished turn next to it leaves nothing pending. */
    struct store_usage_in u2 = usage_in("done-1", a.id, "m", 10, 0, 0);
    u2.session_id = s.id;
    struct store_reply r2;
    ASSERT_INT_EQ(store_reply_begin_billed(st, &u2, &r2), 0);
    struct store_msg_in fin = {.role = "assistant", .content = "ok", .n_tokens = 1};
    u2.completion_tokens = 1;
    ASSERT_INT_EQ(store_finish_turn(st, &r2, &fin, &u2, NULL, NULL), 0);
    store_close(st); /* the crash: crash-1 never finishes */

    char err[256];
    ASSERT_INT_EQ(store_open(db_path, NULL, &st, err, sizeof(err)), 0);
    int64_t n;
    ASSERT_INT_EQ(store_recover_interrupted(st, &n), 0);
    ASSERT_INT_EQ(n, 1);
    struct store_usage got;
    ASSERT_INT_EQ(store_usage_get(st, a.id, "crash-1", &got), 0);
    ASSERT_INT_EQ(got.status, STORE_MSG_PARTIAL);
    ASSERT_INT_EQ(got.prompt_tokens, 100);
    ASSERT_INT_EQ(got.cached_tokens, 40);
    ASSERT_INT_EQ(got.completion_tokens, 7);
    ASSERT_INT_EQ(got.reasoning_tokens, 2);
    ASSERT_INT_EQ(got.created_ms, 1773576000000LL);
    /* 60 * 2 + 40 * 1 + 7 * 3 = 181 micro-units */
    ASSERT_INT_EQ(got.cost_micros, 181);
    struct store_message *list;
    size_t nm;
    ASSERT_INT_EQ(store_message_list(st, a.id, s.id, &list, &nm), 0);
    ASSERT_INT_EQ(nm, 2);
    ASSERT_STR_EQ(list[0].content, "seven tokens of text");
    ASSERT_INT_EQ(list[0].status, STORE_MSG_PARTIAL);
    store_messages_free(list, nm);
    ASSERT_INT_EQ(store_recover_interrupted(st, &n), 0);
    ASSERT_INT_EQ(n, 0);
    ASSERT_INT_EQ(sql_int("SELECT count(*) FROM usage"), 2);
    int64_t rows, mismatch;
    ASSERT_INT_EQ(store_usage_audit(st, &rows, &mismatch), 0);
    ASSERT_INT_EQ(mismatch, 0);
    store_session_fini(&s);
    close_db(st);
}

/* Prepares a file at schema version 1 holding one user. */
static void old_file(void)
{
    struct store *st = open_fresh();
    ASSERT_TRUE(st != NULL);
    ASSERT_INT_EQ(store_user_add(st, "alice", false, 0, NULL), 0);
    store_close(st);
    sql_exec(db_path, "DROP TABLE pending_usage; DROP TABLE reservations; "
                      "ALTER TABLE idempotency DROP COLUMN body_hash; "
                      "ALTER TABLE messages DROP COLUMN tool_calls; "
                      "ALTER TABLE messages DROP COLUMN tool_call_id; PRAGMA user_version = 1;");
}

/* A database of schema version 1 is upgraded to the current one at open. */
static void test_migration_upgrade(void)
{
    old_file();
    ASSERT_INT_EQ(sql_int("PRAGMA user_version"), 1);
    struct store *st;
    char err[256];
    ASSERT_INT_EQ(store_open(db_path, NULL, &st, err, sizeof(err)), 0);
    ASSERT_INT_EQ(store_db_version(st), store_schema_version());
    ASSERT_INT_EQ(sql_int("SELECT count(*) FROM pending_usage"), 0);
    struct store_user u;
    ASSERT_INT_EQ(store_user_get_by_name(st, "alice", &u), 0);
    close_db(st);
}

/* A process that opens (and so upgrades) the file, then exits. */
static pid_t open_in_child(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        struct store *st;
        char err[64];
        _exit(store_open(db_path, NULL, &st, err, sizeof(err)) == 0 ? 0 : 1);
    }
    return pid;
}

/* kill -9 of a process at moments spread over its upgrade of the file: the file is
 * always whole, at the old version without the new table or at the new one with it,
 * and the next open finishes the upgrade with every row kept. */
static void test_migration_killed(void)
{
    /* how long a process takes to open and upgrade (the window to hit) */
    old_file();
    double t0 = test_now_s();
    pid_t pid = open_in_child();
    int status;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    double window = test_now_s() - t0;
    test_remove_db(db_path);
    int at_old = 0, at_new = 0;
    for (int i = 0; i < 30; i++) {
        old_file();
        pid = open_in_child();
        usleep((useconds_t)(window * 1e6 * i / 25));
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        sqlite3 *db;
        ASSERT_INT_EQ(sqlite3_open(db_path, &db), SQLITE_OK);
        sqlite3_stmt *q;
        ASSERT_INT_EQ(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
        ASSERT_INT_EQ(sqlite3_step(q), SQLITE_ROW);
        ASSERT_STR_EQ((const char *)sqlite3_column_text(q, 0), "ok");
        sqlite3_finalize(q);
        sqlite3_close(db);
        int64_t v = sql_int("PRAGMA user_version");
        int64_t n_new = sql_int("SELECT count(*) FROM sqlite_master WHERE name IN "
                                "('pending_usage', 'reservations')");
        /* all the upgrade or none of it: the steps commit together */
        ASSERT_TRUE((v == 1 && n_new == 0) || (v == store_schema_version() && n_new == 2));
        at_old += v == 1;
        at_new += v == store_schema_version();
        ASSERT_INT_EQ(sql_int("SELECT count(*) FROM users WHERE name = 'alice'"), 1);
        struct store *st;
        char err[256];
        ASSERT_INT_EQ(store_open(db_path, NULL, &st, err, sizeof(err)), 0);
        ASSERT_INT_EQ(store_db_version(st), store_schema_version());
        struct store_user u;
        ASSERT_INT_EQ(store_user_get_by_name(st, "alice", &u), 0);
        close_db(st);
    }
    printf("  migration killed: %d times before it committed, %d after (window %.1f ms)\n", at_old,
           at_new, window * 1e3);
}

/* ---- concurrency ---- */

#define N_WRITERS 4
#define N_OWN_CONN 2
#define ROWS_PER_WRITER 40

struct worker {
    struct store *st; /* shared handle, or NULL: open an own connection */
    int index;
    int64_t user_id;
    int failures;
    atomic_bool *stop;
    _Atomic int64_t *reads; /* the reader's count; writers start after its first read */
};

static void *writer_main(void *arg)
{
    struct worker *w = arg;
    struct store *st = w->st;
    char err[256];
    if (!st && store_open(db_path, NULL, &st, err, sizeof(err)) != 0) {
        fprintf(stderr, "writer %d: %s\n", w->index, err);
        w->failures++;
        return NULL;
    }
    while (atomic_load(w->reads) == 0)
        usleep(100);
    for (int i = 0; i < ROWS_PER_WRITER; i++) {
        char rid[48];
        snprintf(rid, sizeof(rid), "w%d-%d", w->index, i);
        struct store_usage_in u = usage_in(rid, w->user_id, "m", 10, 3, 5);
        int rc = store_usage_record(st, &u, NULL);
        if (rc) {
            fprintf(stderr, "writer %d row %d: %s (%s)\n", w->index, i, store_strerror(rc),
                    store_errmsg());
            w->failures++;
        }
        /* Every writer also retries one earlier request: it must never double. */
        if (i % 10 == 9) {
            snprintf(rid, sizeof(rid), "w%d-%d", w->index, i - 5);
            if (store_usage_record(st, &u, NULL) != STORE_EEXISTS)
                w->failures++;
        }
    }
    if (!w->st)
        store_close(st);
    return NULL;
}

static void *reader_main(void *arg)
{
    struct worker *w = arg;
    struct store *st;
    char err[256];
    if (store_open(db_path, NULL, &st, err, sizeof(err)) != 0) {
        w->failures++;
        return NULL;
    }
    int64_t last = 0;
    while (!atomic_load(w->stop)) {
        struct store_usage_query q = {0};
        struct store_usage_total *t;
        size_t n;
        int rc = store_usage_totals(st, &q, &t, &n);
        if (rc) {
            fprintf(stderr, "reader: %s (%s)\n", store_strerror(rc), store_errmsg());
            w->failures++;
            break;
        }
        /* Committed rows only ever grow, and always cost 3 micro-units each. */
        if (t[0].requests < last || t[0].cost_micros != 3 * t[0].requests)
            w->failures++;
        last = t[0].requests;
        free(t);
        atomic_fetch_add(w->reads, 1);
    }
    store_close(st);
    return NULL;
}

#define N_STREAMS 8
#define FLUSHES_PER_STREAM 150

struct streamer {
    struct store *st;
    int64_t user_id;
    const char *session_id;
    int index;
    int failures;
};

/* One streamed reply: many non-forced flushes of growing text, then the finish. */
static void *streamer_main(void *arg)
{
    struct streamer *w = arg;
    char rid[32];
    snprintf(rid, sizeof(rid), "stream-%d", w->index);
    struct store_usage_in u = usage_in(rid, w->user_id, "m", 50, 10, 0);
    u.session_id = w->session_id;
    struct store_reply r;
    if (store_reply_begin_billed(w->st, &u, &r) != 0) {
        fprintf(stderr, "streamer %d: %s\n", w->index, store_errmsg());
        w->failures++;
        return NULL;
    }
    char text[FLUSHES_PER_STREAM + 1];
    for (int i = 0; i < FLUSHES_PER_STREAM; i++) {
        text[i] = (char)('a' + (w->index + i) % 26);
        text[i + 1] = 0;
        if (store_reply_flush_tokens(w->st, &r, text, "", i + 1, 0, false) < 0) {
            fprintf(stderr, "streamer %d flush: %s\n", w->index, store_errmsg());
            w->failures++;
        }
        usleep(200);
    }
    struct store_msg_in fin = {
        .role = "assistant", .content = text, .n_tokens = FLUSHES_PER_STREAM};
    u.completion_tokens = FLUSHES_PER_STREAM;
    if (store_finish_turn(w->st, &r, &fin, &u, NULL, NULL) != 0) {
        fprintf(stderr, "streamer %d finish: %s\n", w->index, store_errmsg());
        w->failures++;
    }
    return NULL;
}

static void test_stream_threads(void)
{
    new_path();
    struct store_params p = store_default_params();
    p.flush_interval_ms = 5;
    struct store *st = NULL;
    char err[256];
    ASSERT_INT_EQ(store_open(db_path, &p, &st, err, sizeof(err)), 0);
    struct store_user a;
    ASSERT_INT_EQ(store_user_add(st, "alice", false, 0, &a), 0);
    struct store_session s;
    ASSERT_INT_EQ(store_session_create(st, a.id, "t", "m", "", &s), 0);
    struct streamer ws[N_STREAMS];
    pthread_t th[N_STREAMS];
    for (int i = 0; i < N_STREAMS; i++) {
        ws[i] = (struct streamer){st, a.id, s.id, i, 0};
        ASSERT_INT_EQ(pthread_create(&th[i], NULL, streamer_main, &ws[i]), 0);
    }
    int failures = 0;
    for (int i = 0; i < N_STREAMS; i++) {
        pthread_join(th[i], NULL);
        failures += ws[i].failures;
    }
    ASSERT_INT_EQ(failures, 0);
    struct store_message *list;
    size_t n;
    ASSERT_INT_EQ(store_message_list(st, a.id, s.id, &list, &n), 0);
    ASSERT_INT_EQ(n, N_STREAMS);
    for (size_t i = 0; i < n; i++) {
        ASSERT_INT_EQ(list[i].seq, (int64_t)i + 1);
        ASSERT_INT_EQ(list[i].status, STORE_MSG_COMPLETE);
        ASSERT_INT_EQ(strlen(list[i].content), FLUSHES_PER_STREAM);
    }
    store_messages_free(list, n);
    ASSERT_INT_EQ(sql_int("SELECT count(*) FROM usage"), N_STREAMS);
    ASSERT_INT_EQ(sql_int("SELECT sum(completion_tokens) FROM usage"),
                  N_STREAMS * FLUSHES_PER_STREAM);
    ASSERT_INT_EQ(sql_int("SELECT count(*) FROM pending_usage"), 0);
    int64_t commits = store_group_commits(st);
    ASSERT_INT_OP(commits, <, N_STREAMS * FLUSHES_PER_STREAM);
    ASSERT_INT_EQ(store_integrity_check(st), 0);
    fprintf(stderr, "  streams: %d replies x %d flush calls -> %lld group commits\n", N_STREAMS,
            FLUSHES_PER_STREAM, (long long)commits);
    store_session_fini(&s);
    close_db(st);
}

static void test_concurrency(void)
{
    new_path();
    struct store *st = NULL;
    char err[256];
    ASSERT_INT_EQ(store_open(db_path, NULL, &st, err, sizeof(err)), 0);
    struct store_user a;
    ASSERT_INT_EQ(store_user_add(st, "alice", false, 0, &a), 0);
    /* 7 miss * 0.1 + 3 hit * 0.1 + 5 * 0.4 = 3 micro-units per row. */
    ASSERT_INT_EQ(store_price_set(st, "m", 100000, 100000, 400000, 1, NULL), 0);
    atomic_bool stop = false;
    _Atomic int64_t reads = 0;
    struct worker ws[N_WRITERS + N_OWN_CONN + 1];
    pthread_t th[N_WRITERS + N_OWN_CONN + 1];
    int nw = N_WRITERS + N_OWN_CONN;
    for (int i = 0; i <= nw; i++)
        ws[i] = (struct worker){.st = i < N_WRITERS ? st : NULL,
                                .index = i,
                                .user_id = a.id,
                                .stop = &stop,
                                .reads = &reads};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ASSERT_INT_EQ(pthread_create(&th[nw], NULL, reader_main, &ws[nw]), 0);
    for (int i = 0; i < nw; i++)
        ASSERT_INT_EQ(pthread_create(&th[i], NULL, writer_main, &ws[i]), 0);
    for (int i = 0; i < nw; i++)
        pthread_join(th[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    atomic_store(&stop, true);
    pthread_join(th[nw], NULL);
    int failures = 0;
    for (int i = 0; i <= nw; i++)
        failures += ws[i].failures;
    ASSERT_INT_EQ(failures, 0);
    ASSERT_INT_OP(atomic_load(&reads), >, 1);
    ASSERT_INT_EQ(sql_int("SELECT count(*) FROM usage"), nw * ROWS_PER_WRITER);
    ASSERT_INT_EQ(sql_int("SELECT count(DISTINCT request_id) FROM usage"), nw * ROWS_PER_WRITER);
    struct store_usage_query q = {.user_id = a.id};
    struct store_usage_total *t;
    size_t n;
    ASSERT_INT_EQ(store_usage_totals(st, &q, &t, &n), 0);
    ASSERT_INT_EQ(t[0].requests, nw * ROWS_PER_WRITER);
    ASSERT_INT_EQ(t[0].cost_micros, 3 * nw * ROWS_PER_WRITER);
    free(t);
    ASSERT_INT_EQ(store_integrity_check(st), 0);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    fprintf(stderr,
            "  concurrency: %d rows committed in %.1f ms (%.0f commits/s, %d threads), "
            "%lld reads, %lld busy retries on the shared handle\n",
            nw * ROWS_PER_WRITER, ms, nw * ROWS_PER_WRITER / (ms / 1e3), nw,
            (long long)atomic_load(&reads), (long long)store_busy_retries(st));
    close_db(st);
}

int main(void)
{
    RUN(test_migrations_fresh);
    RUN(test_refuses_newer_db);
    RUN(test_refuses_foreign_db);
    RUN(test_users);
    RUN(test_keys);
    RUN(test_sessions);
    RUN(test_messages);
    RUN(test_reply_and_turn);
    RUN(test_turn_atomic);
    RUN(test_group_commit);
    RUN(test_recover_interrupted);
    RUN(test_migration_upgrade);
    RUN(test_migration_killed);
    RUN(test_cost_rounding);
    RUN(test_price_versions);
    RUN(test_usage_totals);
    RUN(test_month_tokens);
    RUN(test_idempotency);
    RUN(test_quota_reservations);
    RUN(test_concurrency);
    RUN(test_stream_threads);
    return TEST_DONE();
}
