/* test_cli_user.c - the account commands of the real chatd binary (CHATD_BIN):
 * `user add|list`, `key create|revoke|list` and `usage`, on a temporary database,
 * checked against what the store itself says. Also: CHATD_DB names the database, and
 * a command waits for (instead of failing on) a writer that holds the lock, as the
 * server would. */
#include "store.h"
#include "test.h"

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

static char db_path[256];
static char out[16384];

static const char *bin(void)
{
    const char *b = getenv("CHATD_BIN");
    return b && *b ? b : "./chatd";
}

/* Runs `chatd ARGS --db DB` (with_db) and returns its exit code; stdout in `out`,
 * stderr too when merge is set. */
static int run_chatd(bool with_db, bool merge, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' %s%s%s%s", bin(), args, with_db ? " --db '" : "",
             with_db ? db_path : "",
             with_db ? (merge ? "' 2>&1" : "' 2>/dev/null") : (merge ? " 2>&1" : " 2>/dev/null"));
    out[0] = 0;
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = 0;
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static struct store *open_db(void)
{
    struct store *st = NULL;
    char err[512];
    if (store_open(db_path, NULL, &st, err, sizeof(err)) != 0)
        fprintf(stderr, "store_open: %s\n", err);
    return st;
}

/* The line of `out` that starts with `word` followed by a space; NULL if none. */
static const char *line_of(const char *word)
{
    size_t n = strlen(word);
    for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, word, n) == 0 && p[n] == ' ')
            return p;
    return NULL;
}

static void test_users(void)
{
    ASSERT_INT_EQ(run_chatd(true, true, "user add alice --admin --quota 1000"), 0);
    ASSERT_STR_CONTAINS(out, "added user alice");
    ASSERT_STR_CONTAINS(out, "admin");
    ASSERT_STR_CONTAINS(out, "1000");
    ASSERT_INT_EQ(run_chatd(true, true, "user add bob"), 0);
    ASSERT_STR_CONTAINS(out, "unlimited");
    ASSERT_INT_EQ(run_chatd(true, true, "user add alice"), 1);
    ASSERT_STR_CONTAINS(out, "already exists");
    ASSERT_INT_EQ(run_chatd(true, true, "user add 'no spaces'"), 2);
    ASSERT_INT_EQ(run_chatd(true, true, "user add carol --quota lots"), 2);
    ASSERT_INT_EQ(run_chatd(true, true, "user add"), 2);
    ASSERT_INT_EQ(run_chatd(true, true, "user frobnicate"), 2);
    ASSERT_INT_EQ(run_chatd(true, true, "user list --no-such-option 1"), 2);
    ASSERT_INT_EQ(run_chatd(true, false, "user list"), 0);
    const char *alice = line_of("1");
    ASSERT_TRUE(alice != NULL);
    ASSERT_STR_CONTAINS(alice, "alice");
    ASSERT_TRUE(strstr(alice, "yes") && strstr(alice, "yes") < strchr(alice, '\n'));
    const char *bob = line_of("2");
    ASSERT_TRUE(bob != NULL);
    ASSERT_STR_CONTAINS(bob, "bob");
    ASSERT_TRUE(line_of("3") == NULL);
    ASSERT_INT_EQ(run_chatd(false, false, "user --help"), 0);
    ASSERT_STR_CONTAINS(out, "usage: chatd user add");

    struct store *st = open_db();
    ASSERT_TRUE(st != NULL);
    struct store_user u;
    ASSERT_INT_EQ(store_user_get_by_name(st, "alice", &u), 0);
    ASSERT_TRUE(u.is_admin);
    ASSERT_INT_EQ(u.token_quota, 1000);
    store_close(st);
}

static void test_keys(void)
{
    ASSERT_INT_EQ(run_chatd(true, false, "key create alice"), 0);
    ASSERT_INT_EQ(strlen(out), STORE_KEY_LEN + 1); /* the key and a newline, nothing else */
    ASSERT_TRUE(out[STORE_KEY_LEN] == '\n');
    char key[STORE_KEY_LEN + 1];
    memcpy(key, out, STORE_KEY_LEN);
    key[STORE_KEY_LEN] = 0;
    ASSERT_TRUE(strncmp(key, "sk-chatd-", 9) == 0);
    ASSERT_INT_EQ(run_chatd(true, true, "key create nobody"), 1);
    ASSERT_STR_CONTAINS(out, "nobody");

    struct store *st = open_db();
    ASSERT_TRUE(st != NULL);
    struct store_user who;
    ASSERT_INT_EQ(store_key_auth(st, key, &who, NULL), 0);
    ASSERT_STR_EQ(who.name, "alice");

    ASSERT_INT_EQ(run_chatd(true, false, "key list alice"), 0);
    char prefix[STORE_KEY_PREFIX_LEN + 1];
    memcpy(prefix, key, STORE_KEY_PREFIX_LEN);
    prefix[STORE_KEY_PREFIX_LEN] = 0;
    ASSERT_STR_CONTAINS(out, prefix);
    ASSERT_TRUE(strstr(out, key) == NULL);

    char args[128];
    snprintf(args, sizeof(args), "key revoke %s", prefix);
    ASSERT_INT_EQ(run_chatd(true, true, args), 0);
    ASSERT_STR_CONTAINS(out, "revoked");
    ASSERT_STR_CONTAINS(out, "alice");
    ASSERT_INT_EQ(store_key_auth(st, key, &who, NULL), STORE_EREVOKED);
    ASSERT_INT_EQ(run_chatd(true, true, "key revoke sk-chatd-00000000"), 1);
    ASSERT_INT_EQ(run_chatd(true, true, "key revoke"), 2);
    store_close(st);
}

/* Parses the numbers of a usage table row after its first column. */
static int parse_row(const char *line, long long v[4], char *cost, size_t cost_len)
{
    char name[80];
    char c[64];
    if (!line ||
        sscanf(line, "%79s %lld %lld %lld %lld %63s", name, &v[0], &v[1], &v[2], &v[3], c) != 6)
        return -1;
    snprintf(cost, cost_len, "%s", c);
    return 0;
}

static void test_usage(void)
{
    struct store *st = open_db();
    ASSERT_TRUE(st != NULL);
    struct store_user a, b;
    ASSERT_INT_EQ(store_user_get_by_name(st, "alice", &a), 0);
    ASSERT_INT_EQ(store_user_get_by_name(st, "bob", &b), 0);
    ASSERT_INT_EQ(store_price_set(st, "m", 1500000, 150000, 6000000, 0, NULL), 0);
    struct {
        const char *rid;
        int64_t user;
        int64_t prompt, cached, completion;
    } rows[] = {
        {"r1", a.id, 1000, 200, 300},
        {"r2", a.id, 50, 0, 7},
        {"r3", b.id, 999999, 999998, 1},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct store_usage_in u = {.request_id = rows[i].rid,
                                   .user_id = rows[i].user,
                                   .model = "m",
                                   .prompt_tokens = rows[i].prompt,
                                   .cached_tokens = rows[i].cached,
                                   .completion_tokens = rows[i].completion};
        ASSERT_INT_EQ(store_usage_record(st, &u, NULL), 0);
    }
    struct store_usage_query q = {.group_by = STORE_GROUP_USER};
    struct store_usage_total *t;
    size_t n;
    ASSERT_INT_EQ(store_usage_totals(st, &q, &t, &n), 0);
    ASSERT_INT_EQ(n, 2);

    ASSERT_INT_EQ(run_chatd(true, false, "usage"), 0);
    ASSERT_STR_CONTAINS(out, "INPUT_HIT");
    long long v[4];
    char cost[64], want[64];
    for (size_t i = 0; i < n; i++) {
        ASSERT_INT_EQ(parse_row(line_of(t[i].key), v, cost, sizeof(cost)), 0);
        ASSERT_INT_EQ(v[0], t[i].requests);
        ASSERT_INT_EQ(v[1], t[i].cached_tokens);
        ASSERT_INT_EQ(v[2], t[i].miss_tokens);
        ASSERT_INT_EQ(v[3], t[i].completion_tokens);
        snprintf(want, sizeof(want), "%lld.%06lld", (long long)(t[i].cost_micros / 1000000),
                 (long long)(t[i].cost_micros % 1000000));
        ASSERT_STR_EQ(cost, want);
    }
    /* alice: 800 miss * 1.5 + 200 hit * 0.15 + 300 * 6 = 3030 micro, then
     * 50 * 1.5 + 7 * 6 = 117 micro. */
    ASSERT_INT_EQ(parse_row(line_of("alice"), v, cost, sizeof(cost)), 0);
    ASSERT_STR_EQ(cost, "0.003147");
    ASSERT_INT_EQ(parse_row(line_of("TOTAL"), v, cost, sizeof(cost)), 0);
    ASSERT_INT_EQ(v[0], 3);
    ASSERT_INT_EQ(v[1], 200 + 999998);
    snprintf(want, sizeof(want), "%lld.%06lld",
             (long long)((t[0].cost_micros + t[1].cost_micros) / 1000000),
             (long long)((t[0].cost_micros + t[1].cost_micros) % 1000000));
    ASSERT_STR_EQ(cost, want);
    free(t);

    ASSERT_INT_EQ(run_chatd(true, false, "usage --user bob"), 0);
    ASSERT_TRUE(line_of("alice") == NULL);
    ASSERT_INT_EQ(parse_row(line_of("bob"), v, cost, sizeof(cost)), 0);
    ASSERT_INT_EQ(v[0], 1);
    ASSERT_INT_EQ(run_chatd(true, false, "usage --since 2999-01-01"), 0);
    ASSERT_INT_EQ(parse_row(line_of("TOTAL"), v, cost, sizeof(cost)), 0);
    ASSERT_INT_EQ(v[0], 0);
    ASSERT_INT_EQ(run_chatd(true, false, "usage --since 2000-01-01"), 0);
    ASSERT_INT_EQ(parse_row(line_of("TOTAL"), v, cost, sizeof(cost)), 0);
    ASSERT_INT_EQ(v[0], 3);
    ASSERT_INT_EQ(run_chatd(true, true, "usage --since 2026-02-30"), 2);
    ASSERT_INT_EQ(run_chatd(true, true, "usage --user nobody"), 1);
    store_close(st);
}

static void test_env_db(void)
{
    setenv("CHATD_DB", db_path, 1);
    ASSERT_INT_EQ(run_chatd(false, false, "user list"), 0);
    unsetenv("CHATD_DB");
    ASSERT_STR_CONTAINS(out, "alice");
}

/* A writer (the server) holds the write lock for a while: the command waits. */
static void test_waits_for_writer(void)
{
    sqlite3 *db;
    ASSERT_INT_EQ(sqlite3_open(db_path, &db), SQLITE_OK);
    ASSERT_INT_EQ(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' user add dave --db '%s' 2>&1", bin(), db_path);
    FILE *p = popen(cmd, "r");
    ASSERT_TRUE(p != NULL);
    usleep(400 * 1000);
    ASSERT_INT_EQ(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = 0;
    int status = pclose(p);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_INT_EQ(WEXITSTATUS(status), 0);
    ASSERT_STR_CONTAINS(out, "added user dave");
}

int main(void)
{
    snprintf(db_path, sizeof(db_path), "/tmp/chatd-test-cli-%d.db", (int)getpid());
    test_remove_db(db_path);
    RUN(test_users);
    RUN(test_keys);
    RUN(test_usage);
    RUN(test_env_db);
    RUN(test_waits_for_writer);
    struct store *st = open_db();
    if (st) {
        if (store_integrity_check(st) != 0)
            fprintf(stderr, "integrity: %s\n", store_errmsg());
        store_close(st);
    }
    test_remove_db(db_path);
    return TEST_DONE();
}
