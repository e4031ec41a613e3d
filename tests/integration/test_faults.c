/* Integration: faults against the real chatd binary (tiny-qwen2-q8_0).
 *  - kill -9 at a random moment while a client runs streamed and non-streamed
 *    requests (with and without sessions): after a restart the database passes
 *    PRAGMA integrity_check and every reply the client saw acknowledged (a 200 body, or
 *    a stream that reached [DONE]) has its usage row; an interrupted session reply is
 *    absent or stored as partial.
 *  - disk full: the server runs under RLIMIT_FSIZE (SIGXFSZ ignored) so SQLite writes
 *    fail: requests get 503 with an error object, nothing half-written (no usage row
 *    for a refused request), reads keep being served.
 *  - `chatd usage` run concurrently with streaming requests: no request fails, every
 *    CLI run succeeds. */
#include "itest.h"
#include "test.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct itest_server srv;
static char model_path[1024];

#define MAX_ACK 4096

struct client {
    atomic_bool stop;
    pthread_mutex_t mu;
    char (*acked)[64];  /* request ids the client saw acknowledged */
    int n_acked;
    int n_sent;
    int round;
    char session[128];
};

static void ack(struct client *c, const char *id)
{
    pthread_mutex_lock(&c->mu);
    if (c->n_acked < MAX_ACK)
        snprintf(c->acked[c->n_acked++], 64, "%s", id);
    pthread_mutex_unlock(&c->mu);
}

static char *new_session(void)
{
    struct itest_resp r;
    int rc = itest_request(&srv, "POST", "/v1/sessions", "{}", NULL, &r);
    json_t *j = rc == 0 && r.status == 200 ? itest_json(&r) : NULL;
    itest_resp_free(&r);
    char *id = j ? strdup(json_string_value(json_object_get(j, "id"))) : NULL;
    json_decref(j);
    return id;
}

/* The request id (usage.request_id) of a reply: its "id" is chatcmpl-<id without req_>. */
static void reply_request_id(const char *body, char *out, size_t len)
{
    const char *p = body ? strstr(body, "\"id\":\"chatcmpl-") : NULL;
    out[0] = 0;
    if (!p)
        return;
    p += strlen("\"id\":\"chatcmpl-");
    const char *q = strchr(p, '"');
    if (q && (size_t)(q - p) + 5 < len)
        snprintf(out, len, "req_%.*s", (int)(q - p), p);
}

/* One request of kind i % 3 (plain, session, streamed session); 1 when acknowledged,
 * 0 when refused or cut, -1 when the server did not answer at all. */
static int one_request(struct client *c, int i, char *rid, size_t rid_len)
{
    char body[512];
    const char *const *hs = NULL;
    int kind = i % 3;
    snprintf(body, sizeof(body),
             "{\"messages\":[{\"role\":\"user\",\"content\":\"Say something %d\"}],"
             "\"max_tokens\":%d,\"temperature\":0%s%s%s%s}",
             i, kind == 2 ? 40 : 8, kind ? ",\"session_id\":\"" : "", kind ? c->session : "",
             kind ? "\"" : "", kind == 2 ? ",\"stream\":true" : "");
    if (kind == 2) {
        struct itest_stream st;
        int rc = itest_stream_post(&srv, "/v1/chat/completions", body, hs, 0, &st);
        int ok = rc == 0 && st.status == 200 && st.body && strstr(st.body, "data: [DONE]") &&
                 !strstr(st.body, "\"error\"");
        long status = st.status;
        reply_request_id(st.body, rid, rid_len);
        itest_stream_free(&st);
        return ok ? 1 : (rc == 0 && status > 0 ? 0 : -1);
    }
    struct itest_resp r;
    int rc = itest_request(&srv, "POST", "/v1/chat/completions", body, hs, &r);
    if (rc != 0) {
        itest_resp_free(&r);
        return -1;
    }
    json_t *j = r.status == 200 ? itest_json(&r) : NULL;
    int ok = j && json_object_get(j, "usage") != NULL;
    reply_request_id(r.body, rid, rid_len);
    json_decref(j);
    itest_resp_free(&r);
    return ok;
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    for (int i = 0; !atomic_load(&c->stop); i++) {
        char rid[64];
        c->n_sent++;
        int rc = one_request(c, i, rid, sizeof(rid));
        if (rc == 1 && rid[0])
            ack(c, rid);
        if (rc < 0)
            break; /* the server is gone */
    }
    return NULL;
}

static sqlite3 *db_open(void)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(srv.db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static char *db_text(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    char *out = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        out = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return out;
}

static int db_count(sqlite3 *db, const char *sql, const char *arg)
{
    sqlite3_stmt *st;
    int n = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    if (arg)
        sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void check_integrity(void)
{
    sqlite3 *db = db_open();
    ASSERT_TRUE(db != NULL);
    char *ok = db_text(db, "PRAGMA integrity_check");
    ASSERT_STR_EQ(ok ? ok : "(null)", "ok");
    free(ok);
    sqlite3_close(db);
}

static void test_kill9(void)
{
    srand((unsigned)time(NULL));
    struct client c;
    memset(&c, 0, sizeof(c));
    pthread_mutex_init(&c.mu, NULL);
    c.acked = calloc(MAX_ACK, sizeof(*c.acked));
    int total_acked = 0;
    for (int round = 0; round < 3; round++) {
        char *sid = new_session();
        ASSERT_TRUE(sid != NULL);
        snprintf(c.session, sizeof(c.session), "%s", sid);
        free(sid);
        c.round = round;
        atomic_store(&c.stop, false);
        pthread_t th;
        pthread_create(&th, NULL, client_main, &c);
        usleep((useconds_t)(300000 + rand() % 1500000));
        itest_kill(&srv); /* SIGKILL at a random moment */
        atomic_store(&c.stop, true);
        pthread_join(th, NULL);
        const char *args[] = {"--model", model_path, "--parallel", "2", "--threads", "1", NULL};
        ASSERT_INT_EQ(itest_start(&srv, args), 0);
        /* the restarted server has recovered; the database is whole */
        check_integrity();
        sqlite3 *db = db_open();
        ASSERT_TRUE(db != NULL);
        for (int i = 0; i < c.n_acked; i++) {
            int n = db_count(db, "SELECT count(*) FROM usage WHERE request_id = ?1", c.acked[i]);
            if (n != 1)
                fprintf(stderr, "  acknowledged %s: %d usage rows\n", c.acked[i], n);
            ASSERT_INT_EQ(n, 1);
        }
        /* replies are complete, or partial when cut; never a stray status */
        ASSERT_INT_EQ(db_count(db, "SELECT count(*) FROM messages WHERE status NOT IN "
                                   "('complete','partial','error')", NULL), 0);
        ASSERT_INT_EQ(db_count(db, "SELECT count(*) FROM pending_usage", NULL), 0);
        sqlite3_close(db);
        total_acked = c.n_acked;
    }
    fprintf(stderr, "  kill -9: 3 rounds, %d requests sent, %d acknowledged, all billed\n",
            c.n_sent, total_acked);
    ASSERT_TRUE(total_acked > 0);
    free(c.acked);
    pthread_mutex_destroy(&c.mu);
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

static void test_disk_full(void)
{
    /* a fresh database, so that the limit below is close to its size */
    ASSERT_INT_EQ(itest_stop(&srv), 0);
    itest_cleanup(&srv);
    memset(&srv, 0, sizeof(srv));
    const char *args0[] = {"--model", model_path, "--parallel", "2", "--threads", "1", NULL};
    ASSERT_INT_EQ(itest_start(&srv, args0), 0);
    ASSERT_INT_EQ(itest_stop(&srv), 0);
    /* restart under a file size limit a little above what exists now */
    char wal[400];
    snprintf(wal, sizeof(wal), "%s-wal", srv.db);
    long base = file_size(srv.db);
    if (file_size(srv.log_path) > base)
        base = file_size(srv.log_path);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = (rlim_t)base + 96 * 1024;
    fprintf(stderr, "  disk full: file size limit %ld bytes\n", (long)lim.rlim_cur);
    signal(SIGXFSZ, SIG_IGN); /* inherited through exec: a write past the limit fails with EFBIG */
    ASSERT_INT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
    const char *args[] = {"--model", model_path, "--parallel", "2", "--threads", "1", NULL};
    int rc = itest_start(&srv, args);
    setrlimit(RLIMIT_FSIZE, &old);
    ASSERT_INT_EQ(rc, 0);
    char *sid = new_session();
    int n_ok = 0, n_503 = 0, n_other = 0;
    char refused[64][64], accepted[400][64];
    int n_refused = 0, n_accepted = 0;
    for (int i = 0; i < 400 && n_503 < 6; i++) {
        char body[512];
        snprintf(body, sizeof(body),
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"%d %s\"}],\"max_tokens\":8%s%s%s}",
                 i, "padding padding padding padding padding padding padding padding",
                 sid && i % 2 ? ",\"session_id\":\"" : "", sid && i % 2 ? sid : "",
                 sid && i % 2 ? "\"" : "");
        struct itest_resp r;
        ASSERT_INT_EQ(itest_request(&srv, "POST", "/v1/chat/completions", body, NULL, &r), 0);
        char rid[64];
        if (!itest_header(&r, "x-request-id", rid, sizeof(rid)))
            rid[0] = 0;
        if (r.status == 200) {
            n_ok++;
            if (n_accepted < 400)
                snprintf(accepted[n_accepted++], 64, "%s", rid);
        } else if (r.status == 503) {
            n_503++;
            json_t *j = itest_json(&r);
            json_t *e = json_object_get(j, "error");
            ASSERT_TRUE(json_is_string(json_object_get(e, "message")));
            ASSERT_STR_EQ(json_string_value(json_object_get(e, "code")), "storage_unavailable");
            json_decref(j);
            if (n_refused < 64)
                snprintf(refused[n_refused++], 64, "%s", rid);
        } else {
            fprintf(stderr, "  disk full: status %ld: %.200s\n", r.status, r.body ? r.body : "");
            n_other++;
        }
        itest_resp_free(&r);
        /* reads are still served */
        ASSERT_INT_EQ(itest_request(&srv, "GET", "/v1/sessions", NULL, NULL, &r), 0);
        ASSERT_INT_EQ(r.status, 200);
        itest_resp_free(&r);
    }
    fprintf(stderr, "  disk full: %d ok, then %d refused with 503, %d other\n", n_ok, n_503, n_other);
    /* a streamed reply that cannot be stored ends with an error event, never [DONE]
     * after a normal finish, and is not billed */
    struct itest_stream st;
    ASSERT_INT_EQ(itest_stream_post(&srv, "/v1/chat/completions",
                                    "{\"messages\":[{\"role\":\"user\",\"content\":\"stream me\"}],"
                                    "\"max_tokens\":8,\"stream\":true}",
                                    NULL, 0, &st),
                  0);
    ASSERT_TRUE(st.status == 503 || (st.status == 200 && strstr(st.body, "storage_unavailable")));
    char stream_rid[64];
    reply_request_id(st.body, stream_rid, sizeof(stream_rid));
    itest_stream_free(&st);
    ASSERT_TRUE(n_503 > 0);
    ASSERT_INT_EQ(n_other, 0);
    struct itest_resp r;
    ASSERT_INT_EQ(itest_request(&srv, "GET", "/health", NULL, NULL, &r), 0);
    ASSERT_INT_EQ(r.status, 200);
    itest_resp_free(&r);
    ASSERT_INT_EQ(itest_request(&srv, "GET", "/v1/models", NULL, NULL, &r), 0);
    ASSERT_INT_EQ(r.status, 200);
    itest_resp_free(&r);
    if (sid) {
        char path[256];
        snprintf(path, sizeof(path), "/v1/sessions/%s/messages", sid);
        ASSERT_INT_EQ(itest_request(&srv, "GET", path, NULL, NULL, &r), 0);
        ASSERT_INT_EQ(r.status, 200);
        itest_resp_free(&r);
    }
    /* space returns: restart without the limit; nothing half-written */
    itest_stop(&srv);
    ASSERT_INT_EQ(itest_start(&srv, args), 0);
    check_integrity();
    sqlite3 *db = db_open();
    ASSERT_TRUE(db != NULL);
    for (int i = 0; i < n_refused; i++)
        ASSERT_INT_EQ(db_count(db, "SELECT count(*) FROM usage WHERE request_id = ?1", refused[i]), 0);
    if (stream_rid[0])
        ASSERT_INT_EQ(db_count(db, "SELECT count(*) FROM usage WHERE request_id = ?1", stream_rid), 0);
    /* and every reply the client got is billed */
    for (int i = 0; i < n_accepted; i++) {
        int n = db_count(db, "SELECT count(*) FROM usage WHERE request_id = ?1", accepted[i]);
        if (n != 1)
            fprintf(stderr, "  disk full: 200 reply %s has %d usage rows\n", accepted[i], n);
        ASSERT_INT_EQ(n, 1);
    }
    if (sid) {
        /* the session's turns are whole: every user message is followed by its reply */
        int users = db_count(db, "SELECT count(*) FROM messages WHERE session_id = ?1 AND role = 'user'", sid);
        int replies = db_count(db, "SELECT count(*) FROM messages WHERE session_id = ?1 AND role = 'assistant'", sid);
        ASSERT_INT_EQ(users, replies);
    }
    sqlite3_close(db);
    free(sid);
    /* and writes work again */
    ASSERT_INT_EQ(itest_request(&srv, "POST", "/v1/chat/completions",
                                "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":4}",
                                NULL, &r), 0);
    ASSERT_INT_EQ(r.status, 200);
    itest_resp_free(&r);
}

struct usage_runner {
    atomic_bool stop;
    int runs, failures;
};

static void *usage_main(void *arg)
{
    struct usage_runner *u = arg;
    const char *bin = getenv("CHATD_BIN");
    while (!atomic_load(&u->stop)) {
        pid_t pid = fork();
        if (pid == 0) {
            int fd = open("/dev/null", O_WRONLY);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
            }
            execl(bin ? bin : "build/chatd", "chatd", "usage", "--db", srv.db, (char *)NULL);
            _exit(127);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        u->runs++;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            u->failures++;
    }
    return NULL;
}

static void test_cli_usage_concurrent(void)
{
    struct usage_runner u;
    memset(&u, 0, sizeof(u));
    pthread_t th;
    pthread_create(&th, NULL, usage_main, &u);
    char *sid = new_session();
    ASSERT_TRUE(sid != NULL);
    int failed = 0;
    for (int i = 0; i < 12; i++) {
        char body[512];
        snprintf(body, sizeof(body),
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"count %d\"}],\"max_tokens\":16,"
                 "\"stream\":%s%s%s%s}",
                 i, i % 2 ? "true" : "false", i % 3 ? ",\"session_id\":\"" : "", i % 3 ? sid : "",
                 i % 3 ? "\"" : "");
        struct itest_stream st;
        int rc = itest_stream_post(&srv, "/v1/chat/completions", body, NULL, 0, &st);
        if (rc != 0 || st.status != 200 || (i % 2 && !strstr(st.body, "[DONE]")) ||
            strstr(st.body, "\"error\"")) {
            fprintf(stderr, "  request %d failed: %ld %.200s\n", i, st.status, st.body ? st.body : "");
            failed++;
        }
        itest_stream_free(&st);
    }
    atomic_store(&u.stop, true);
    pthread_join(th, NULL);
    free(sid);
    fprintf(stderr, "  chatd usage: %d runs concurrent with 12 requests, %d failed runs\n", u.runs,
            u.failures);
    ASSERT_INT_EQ(failed, 0);
    ASSERT_TRUE(u.runs > 0);
    ASSERT_INT_EQ(u.failures, 0);
}

int main(void)
{
    snprintf(model_path, sizeof(model_path), "%s", itest_fixture("models/tiny-qwen2-q8_0.gguf"));
    const char *args[] = {"--model", model_path, "--parallel", "2", "--threads", "1", NULL};
    if (itest_start(&srv, args) != 0)
        return 1;
    const char *only = getenv("ITEST_FAULTS_ONLY"); /* for debugging one part */
    if (!only || strstr(only, "kill"))
        RUN(test_kill9);
    if (!only || strstr(only, "usage"))
        RUN(test_cli_usage_concurrent);
    if (!only || strstr(only, "disk"))
        RUN(test_disk_full);
    if (itest_finish(&srv) != 0)
        test_n_fail++; /* the server did not exit cleanly */
    return TEST_DONE();
}
