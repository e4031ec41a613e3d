/* test_store_tools.c - tool use in sessions (migration 4): an assistant message's tool
 * calls and a tool result's call id are stored and read back (NULL stays NULL), through
 * a direct append and through a finished streaming reply; a database of schema version
 * 2 gains the columns and keeps its messages. */
#include "store.h"
#include "test.h"

#include <sqlite3.h>
#include <unistd.h>

static char path[256];

static struct store *open_db(void)
{
    struct store_params p = store_default_params();
    struct store *st = NULL;
    char err[512];
    if (store_open(path, &p, &st, err, sizeof(err)) != 0)
        fprintf(stderr, "store_open: %s\n", err);
    return st;
}

static void test_tool_fields(void)
{
    snprintf(path, sizeof(path), "/tmp/chatd-test-store-tools-%d.db", (int)getpid());
    test_remove_db(path);
    struct store *st = open_db();
    ASSERT_TRUE(st != NULL);
    struct store_user u;
    struct store_session s;
    ASSERT_INT_EQ(store_user_add(st, "alice", false, 0, &u), 0);
    ASSERT_INT_EQ(store_session_create(st, u.id, "t", "m", NULL, &s), 0);
    const char *calls = "[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]";
    struct store_msg_in user = {.role = "user", .content = "hi", .status = STORE_MSG_COMPLETE};
    struct store_msg_in call = {.role = "assistant", .content = "", .tool_calls = calls,
                                .status = STORE_MSG_COMPLETE};
    struct store_msg_in result = {.role = "tool", .content = "18", .tool_call_id = "c1",
                                  .status = STORE_MSG_COMPLETE};
    ASSERT_INT_EQ(store_message_append(st, u.id, s.id, &user, NULL, NULL), 0);
    ASSERT_INT_EQ(store_message_append(st, u.id, s.id, &call, NULL, NULL), 0);
    ASSERT_INT_EQ(store_message_append(st, u.id, s.id, &result, NULL, NULL), 0);
    /* a streamed reply that ends in a call */
    struct store_reply r;
    ASSERT_INT_EQ(store_reply_begin(st, u.id, s.id, &r), 0);
    struct store_msg_in final = {.role = "assistant", .content = "checking", .tool_calls = calls,
                                 .status = STORE_MSG_COMPLETE};
    struct store_usage_in us = {.request_id = "req_1", .user_id = u.id, .session_id = s.id,
                                .model = "m", .status = STORE_MSG_COMPLETE};
    struct store_usage row;
    ASSERT_INT_EQ(store_finish_turn(st, &r, &final, &us, NULL, &row), 0);
    struct store_message *m;
    size_t n;
    ASSERT_INT_EQ(store_message_list(st, u.id, s.id, &m, &n), 0);
    ASSERT_INT_EQ(n, 4);
    ASSERT_TRUE(m[0].tool_calls == NULL && m[0].tool_call_id == NULL);
    ASSERT_STR_EQ(m[1].tool_calls, calls);
    ASSERT_TRUE(m[1].tool_call_id == NULL);
    ASSERT_STR_EQ(m[2].role, "tool");
    ASSERT_STR_EQ(m[2].tool_call_id, "c1");
    ASSERT_TRUE(m[2].tool_calls == NULL);
    ASSERT_STR_EQ(m[3].content, "checking");
    ASSERT_STR_EQ(m[3].tool_calls, calls);
    store_messages_free(m, n);
    store_session_fini(&s);
    store_close(st);
    test_remove_db(path);
}

static void test_migration_from_3(void)
{
    snprintf(path, sizeof(path), "/tmp/chatd-test-store-tools-m-%d.db", (int)getpid());
    test_remove_db(path);
    struct store *st = open_db();
    ASSERT_TRUE(st != NULL);
    struct store_user u;
    struct store_session s;
    ASSERT_INT_EQ(store_user_add(st, "bob", false, 0, &u), 0);
    ASSERT_INT_EQ(store_session_create(st, u.id, "t", "m", NULL, &s), 0);
    struct store_msg_in user = {.role = "user", .content = "kept", .status = STORE_MSG_COMPLETE};
    ASSERT_INT_EQ(store_message_append(st, u.id, s.id, &user, NULL, NULL), 0);
    store_close(st);
    /* back to version 3: the columns of migration 4 removed */
    sqlite3 *db;
    ASSERT_INT_EQ(sqlite3_open(path, &db), SQLITE_OK);
    ASSERT_INT_EQ(sqlite3_exec(db, "ALTER TABLE messages DROP COLUMN tool_calls;"
                                   "ALTER TABLE messages DROP COLUMN tool_call_id;"
                                   "PRAGMA user_version = 3;",
                               NULL, NULL, NULL),
                  SQLITE_OK);
    sqlite3_close(db);
    st = open_db();
    ASSERT_TRUE(st != NULL);
    ASSERT_INT_EQ(store_db_version(st), store_schema_version());
    ASSERT_INT_OP(store_schema_version(), >=, 4);
    struct store_message *m;
    size_t n;
    ASSERT_INT_EQ(store_message_list(st, u.id, s.id, &m, &n), 0);
    ASSERT_INT_EQ(n, 1);
    ASSERT_STR_EQ(m[0].content, "kept");
    ASSERT_TRUE(m[0].tool_calls == NULL);
    store_messages_free(m, n);
    store_session_fini(&s);
    store_close(st);
    test_remove_db(path);
}

int main(void)
{
    RUN(test_tool_fields);
    RUN(test_migration_from_3);
    return TEST_DONE();
}
