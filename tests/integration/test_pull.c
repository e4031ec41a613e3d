/* test_pull.c - `chatd pull` (the real binary, CHATD_BIN) against a small HTTP/1.1
 * server running in a thread of this test on 127.0.0.1 (no network needed). The
 * server serves a fixture GGUF with Range support and a few misbehaving variants:
 *   /files/NAME        the fixture; "Range: bytes=N-" -> 206 (416 past the end)
 *   /cut/NAME          first request: headers for the whole body, half of it, hang-up
 *   /norange/NAME      ignores Range (always 200, whole file)
 *   /junk/junk.gguf    bytes that are not GGUF
 *   /gated/NAME        401
 *   /huge/huge.gguf    announces 1 PiB (more than the disk holds)
 *   /ORG/REPO/resolve/main/NAME   302 to /files/NAME (the hub form)
 *   anything else      404
 * Progress output is checked in its plain form (stderr is not a terminal here).
 */
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define FIXTURE "models/tiny-llama-q4_0.gguf"

static struct {
    int lfd;
    int port;
    pthread_t th;
    atomic_bool stop;
    unsigned char *data;
    size_t len;
    pthread_mutex_t mu;
    char last_path[256];
    char last_range[64];
    char last_auth[128];
    int cut_served;
    int n_requests;
} hs = {.mu = PTHREAD_MUTEX_INITIALIZER};

static char dir[256];
static char out[65536];
static char sha_hex[65];

/* ---- the HTTP server --------------------------------------------------------------- */

static void send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t k = send(fd, p, len, MSG_NOSIGNAL);
        if (k <= 0)
            return;
        p += k;
        len -= (size_t)k;
    }
}

static void send_head(int fd, const char *status, const char *extra, size_t clen)
{
    char h[512];
    int n =
        snprintf(h, sizeof(h), "HTTP/1.1 %s\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n",
                 status, clen, extra);
    send_all(fd, h, (size_t)n);
}

/* Serves buf with Range support; `cut` sends only half of the body, then hangs up. */
static void serve_bytes(int fd, const unsigned char *buf, size_t len, long long from, bool cut)
{
    char extra[128];
    if (from >= 0 && (size_t)from >= len) {
        snprintf(extra, sizeof(extra), "Content-Range: bytes */%zu\r\n", len);
        send_head(fd, "416 Range Not Satisfiable", extra, 0);
        return;
    }
    size_t start = from > 0 ? (size_t)from : 0;
    if (from >= 0) {
        snprintf(extra, sizeof(extra), "Content-Range: bytes %zu-%zu/%zu\r\n", start, len - 1, len);
        send_head(fd, "206 Partial Content", extra, len - start);
    } else {
        send_head(fd, "200 OK", "Content-Type: application/octet-stream\r\n", len);
    }
    size_t n = len - start;
    send_all(fd, buf + start, cut ? n / 2 : n);
}

static void handle(int fd)
{
    char req[8192];
    size_t n = 0;
    while (n < sizeof(req) - 1) {
        ssize_t k = recv(fd, req + n, sizeof(req) - 1 - n, 0);
        if (k <= 0)
            return;
        n += (size_t)k;
        req[n] = 0;
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    char path[256] = "";
    sscanf(req, "GET %255s", path);
    long long from = -1;
    const char *r = strcasestr(req, "\r\nRange: bytes=");
    char range[64] = "";
    if (r) {
        sscanf(r + 2, "%*s %63[^\r]", range);
        from = atoll(r + 15);
    }
    char auth[128] = "";
    const char *a = strcasestr(req, "\r\nAuthorization: ");
    if (a)
        sscanf(a + 17, "%127[^\r]", auth);
    pthread_mutex_lock(&hs.mu);
    snprintf(hs.last_auth, sizeof(hs.last_auth), "%s", auth);
    snprintf(hs.last_path, sizeof(hs.last_path), "%s", path);
    snprintf(hs.last_range, sizeof(hs.last_range), "%s", range);
    hs.n_requests++;
    bool cut = strncmp(path, "/cut/", 5) == 0 && hs.cut_served++ == 0;
    pthread_mutex_unlock(&hs.mu);

    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (strncmp(path, "/files/", 7) == 0 || strncmp(path, "/cut/", 5) == 0) {
        serve_bytes(fd, hs.data, hs.len, from, cut);
    } else if (strncmp(path, "/norange/", 9) == 0) {
        serve_bytes(fd, hs.data, hs.len, -1, false);
    } else if (strcmp(path, "/junk/junk.gguf") == 0) {
        static const unsigned char junk[4096] = "this is not a GGUF file";
        serve_bytes(fd, junk, sizeof(junk), from, false);
    } else if (strcmp(path, "/huge/huge.gguf") == 0) {
        /* claims a petabyte: more than any test machine's disk */
        send_head(fd, "200 OK", "", (size_t)1 << 50);
        send_all(fd, "GGUF", 4);
    } else if (strncmp(path, "/gated/", 7) == 0) {
        send_head(fd, "401 Unauthorized", "", 0);
    } else if (strstr(path, "/resolve/main/")) {
        char extra[512];
        snprintf(extra, sizeof(extra), "Location: http://127.0.0.1:%d/files/%s\r\n", hs.port, base);
        send_head(fd, "302 Found", extra, 0);
    } else {
        static const char body[] = "Entry not found";
        send_head(fd, "404 Not Found", "Content-Type: text/plain\r\n", sizeof(body) - 1);
        send_all(fd, body, sizeof(body) - 1);
    }
}

static void *server_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&hs.stop)) {
        struct pollfd pfd = {hs.lfd, POLLIN, 0};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        int fd = accept(hs.lfd, NULL, NULL);
        if (fd < 0)
            continue;
        handle(fd);
        shutdown(fd, SHUT_RDWR);
        close(fd);
    }
    return NULL;
}

static int server_start(void)
{
    hs.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(a);
    if (hs.lfd < 0 || bind(hs.lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(hs.lfd, 16) != 0 || getsockname(hs.lfd, (struct sockaddr *)&a, &alen) != 0)
        return -1;
    hs.port = ntohs(a.sin_port);
    return pthread_create(&hs.th, NULL, server_main, NULL);
}

/* ---- helpers ----------------------------------------------------------------------- */

static void write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(buf, 1, len, f);
        fclose(f);
    }
}

static const char *in_dir(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof(buf), "%s/%s", dir, name);
    return buf;
}

static bool exists(const char *name)
{
    struct stat st;
    return stat(in_dir(name), &st) == 0;
}

static long long file_size(const char *name)
{
    struct stat st;
    return stat(in_dir(name), &st) == 0 ? (long long)st.st_size : -1;
}

/* The downloaded file equals the fixture byte for byte. */
static bool same_as_fixture(const char *name)
{
    size_t len;
    unsigned char *buf = test_read_file(in_dir(name), &len);
    bool same = buf && len == hs.len && memcmp(buf, hs.data, len) == 0;
    free(buf);
    return same;
}

static void clean_dir(void)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -f '%s'/* '%s'/.[!.]*", dir, dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot clean %s\n", dir);
}

/* Runs `[prefix] chatd pull ARGS --model-dir DIR` through sh, stdout and stderr into
 * `out`; returns the exit code. */
static int run_pull(const char *prefix, const char *args)
{
    char cmd[4096], log[300];
    snprintf(log, sizeof(log), "%s.log", dir);
    snprintf(cmd, sizeof(cmd), "%s '%s' pull %s --model-dir '%s' > '%s' 2>&1", prefix ? prefix : "",
             getenv("CHATD_BIN"), args, dir, log);
    int st = system(cmd);
    size_t n = 0;
    unsigned char *buf = test_read_file(log, &n);
    n = n < sizeof(out) - 1 ? n : sizeof(out) - 1;
    if (buf)
        memcpy(out, buf, n);
    out[buf ? n : 0] = 0;
    free(buf);
    remove(log);
    fprintf(stderr, "  $ chatd pull %s -> %d\n%s", args, WIFEXITED(st) ? WEXITSTATUS(st) : -1, out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *url(const char *path)
{
    static char buf[300];
    snprintf(buf, sizeof(buf), "http://127.0.0.1:%d%s", hs.port, path);
    return buf;
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_full_download(void)
{
    clean_dir();
    ASSERT_INT_EQ(run_pull(NULL, url("/files/tiny.gguf")), 0);
    ASSERT_TRUE(same_as_fixture("tiny.gguf"));
    ASSERT_TRUE(!exists("tiny.gguf.part"));
    ASSERT_STR_EQ(hs.last_range, "");
    /* plain progress lines (not a terminal): a first one and the final 100% */
    ASSERT_STR_CONTAINS(out, "pull: tiny.gguf 0%");
    ASSERT_STR_CONTAINS(out, "pull: tiny.gguf 100% 2.8 MiB of 2.8 MiB");
    ASSERT_STR_CONTAINS(out, "/s, ETA ");
    ASSERT_STR_CONTAINS(out, sha_hex);
    /* a second pull finds it in place */
    int n_req = hs.n_requests;
    ASSERT_INT_EQ(run_pull(NULL, url("/files/tiny.gguf")), 0);
    ASSERT_STR_CONTAINS(out, "already present");
    ASSERT_INT_EQ(hs.n_requests, n_req);
}

static void test_hub_form_with_checksum(void)
{
    clean_dir();
    char args[300], env[120];
    snprintf(args, sizeof(args), "Org/Repo-GGUF/tiny.gguf --sha256 %s", sha_hex);
    snprintf(env, sizeof(env), "CHATD_HUB_URL=http://127.0.0.1:%d/", hs.port);
    ASSERT_INT_EQ(run_pull(env, args), 0);
    ASSERT_STR_CONTAINS(out, "/Org/Repo-GGUF/resolve/main/tiny.gguf");
    ASSERT_STR_EQ(hs.last_path, "/files/tiny.gguf"); /* followed the redirect */
    ASSERT_TRUE(same_as_fixture("tiny.gguf"));
}

static void test_resume_after_cut(void)
{
    clean_dir();
    ASSERT_INT_EQ(run_pull(NULL, url("/cut/tiny.gguf")), 1);
    ASSERT_STR_CONTAINS(out, "run the same command again to resume");
    ASSERT_TRUE(!exists("tiny.gguf"));
    long long kept = file_size("tiny.gguf.part");
    ASSERT_INT_EQ(kept, (long long)hs.len / 2);
    /* the second run asks for the rest only */
    ASSERT_INT_EQ(run_pull(NULL, url("/cut/tiny.gguf")), 0);
    char want[64];
    snprintf(want, sizeof(want), "bytes=%lld-", kept);
    ASSERT_STR_EQ(hs.last_range, want);
    ASSERT_STR_CONTAINS(out, "resuming tiny.gguf");
    ASSERT_TRUE(same_as_fixture("tiny.gguf"));
    ASSERT_TRUE(!exists("tiny.gguf.part"));
    ASSERT_STR_CONTAINS(out, sha_hex); /* the digest covers the kept prefix too */
}

static void test_resume_with_checksum(void)
{
    clean_dir();
    hs.cut_served = 0;
    char args[300];
    snprintf(args, sizeof(args), "%s --sha256 %s", url("/cut/tiny.gguf"), sha_hex);
    ASSERT_INT_EQ(run_pull(NULL, args), 1);
    ASSERT_INT_EQ(run_pull(NULL, args), 0);
    ASSERT_TRUE(same_as_fixture("tiny.gguf"));
}

static void test_server_ignores_range(void)
{
    clean_dir();
    /* a .part with wrong bytes: the 200 answer must replace them, not follow them */
    write_file(in_dir("tiny.gguf.part"), "garbage garbage", 15);
    ASSERT_INT_EQ(run_pull(NULL, url("/norange/tiny.gguf")), 0);
    ASSERT_STR_EQ(hs.last_range, "bytes=15-");
    ASSERT_STR_CONTAINS(out, "starting tiny.gguf over");
    ASSERT_TRUE(same_as_fixture("tiny.gguf"));
}

static void test_part_already_complete(void)
{
    clean_dir();
    write_file(in_dir("tiny.gguf.part"), hs.data, hs.len);
    ASSERT_INT_EQ(run_pull(NULL, url("/files/tiny.gguf")), 0); /* 416 with the same total */
    ASSERT_TRUE(same_as_fixture("tiny.gguf"));
    ASSERT_TRUE(!exists("tiny.gguf.part"));
}

static void test_checksum_mismatch(void)
{
    clean_dir();
    char args[300];
    snprintf(args, sizeof(args), "%s --sha256 %064d", url("/files/tiny.gguf"), 0);
    ASSERT_INT_EQ(run_pull(NULL, args), 1);
    ASSERT_STR_CONTAINS(out, "checksum mismatch");
    ASSERT_STR_CONTAINS(out, sha_hex);
    ASSERT_TRUE(!exists("tiny.gguf"));
    ASSERT_TRUE(!exists("tiny.gguf.part"));
}

static void test_not_found(void)
{
    clean_dir();
    ASSERT_INT_EQ(run_pull(NULL, url("/files-missing/none.gguf")), 1);
    ASSERT_STR_CONTAINS(out, "not found (HTTP 404)");
    ASSERT_TRUE(!exists("none.gguf"));
    ASSERT_TRUE(!exists("none.gguf.part"));
}

static void test_not_gguf(void)
{
    clean_dir();
    ASSERT_INT_EQ(run_pull(NULL, url("/junk/junk.gguf")), 1);
    ASSERT_STR_CONTAINS(out, "not a usable GGUF file");
    ASSERT_TRUE(!exists("junk.gguf"));
    ASSERT_TRUE(!exists("junk.gguf.part"));
}

static void test_network_failure(void)
{
    clean_dir();
    /* a port nobody listens on: bind one, note it, close it */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(a);
    ASSERT_TRUE(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    getsockname(fd, (struct sockaddr *)&a, &alen);
    close(fd);
    char args[120];
    snprintf(args, sizeof(args), "http://127.0.0.1:%d/x/model.gguf", ntohs(a.sin_port));
    ASSERT_INT_EQ(run_pull(NULL, args), 1);
    ASSERT_STR_CONTAINS(out, "failed");
    ASSERT_TRUE(!exists("model.gguf.part"));
}

static void test_write_failure_keeps_part(void)
{
    clean_dir();
    /* a file size limit (ulimit -f: 512- or 1024-byte blocks) well under the fixture */
    ASSERT_INT_EQ(run_pull("ulimit -f 1000;", url("/files/tiny.gguf")), 1);
    ASSERT_STR_CONTAINS(out, "cannot write");
    ASSERT_STR_CONTAINS(out, "run the same command again to resume");
    ASSERT_TRUE(!exists("tiny.gguf"));
    ASSERT_INT_OP(file_size("tiny.gguf.part"), >, 0);
    ASSERT_INT_OP(file_size("tiny.gguf.part"), <, (long long)hs.len);
    /* without the limit the same command finishes the job */
    ASSERT_INT_EQ(run_pull(NULL, url("/files/tiny.gguf")), 0);
    ASSERT_TRUE(same_as_fixture("tiny.gguf"));
}

static void test_bad_names(void)
{
    static const char *bad[] = {
        "Org/Repo/../../etc/x.gguf",
        "Org/../x.gguf",
        "/abs/path/x.gguf",
        "Org/Repo/x.bin",
        "Org/x.gguf",
        "Org/Repo/.hidden.gguf",
        "'http://127.0.0.1:1/a/b.txt'",
        "'http://127.0.0.1:1/a/../b.gguf'",
        "'Org/Repo/x y.gguf'",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ASSERT_INT_EQ(run_pull(NULL, bad[i]), 2);
    ASSERT_INT_EQ(run_pull(NULL, "Org/Repo/x.gguf --sha256 abc"), 2);
    ASSERT_INT_EQ(run_pull(NULL, ""), 2);
}

static void test_token_and_denied(void)
{
    clean_dir();
    char env[160];
    snprintf(env, sizeof(env), "CHATD_HUB_TOKEN=secret123 CHATD_HUB_URL=http://127.0.0.1:%d",
             hs.port);
    ASSERT_INT_EQ(run_pull(env, "Org/Repo/tiny.gguf"), 0);
    ASSERT_TRUE(same_as_fixture("tiny.gguf"));
    ASSERT_STR_EQ(hs.last_auth, "Bearer secret123"); /* same host after the redirect */
    ASSERT_INT_EQ(run_pull(NULL, url("/gated/x.gguf")), 1);
    ASSERT_STR_CONTAINS(out, "access denied (HTTP 401)");
    ASSERT_TRUE(!exists("x.gguf.part"));
}

static void test_present_with_other_checksum(void)
{
    clean_dir();
    write_file(in_dir("tiny.gguf"), "something else", 14);
    char args[300];
    snprintf(args, sizeof(args), "%s --sha256 %s", url("/files/tiny.gguf"), sha_hex);
    ASSERT_INT_EQ(run_pull(NULL, args), 1);
    ASSERT_STR_CONTAINS(out, "delete it to download again");
    ASSERT_INT_EQ(file_size("tiny.gguf"), 14); /* left alone */
}

/* On a terminal (a pty here) the bar is redrawn in place with \r. */
static void test_progress_bar_on_terminal(void)
{
    clean_dir();
    int master;
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        execl(getenv("CHATD_BIN"), "chatd", "pull", url("/files/tiny.gguf"), "--model-dir", dir,
              (char *)NULL);
        _exit(127);
    }
    size_t n = 0;
    for (;;) {
        ssize_t k = read(master, out + n, sizeof(out) - 1 - n);
        if (k <= 0)
            break; /* EIO once the child has gone */
        n += (size_t)k;
    }
    out[n] = 0;
    close(master);
    int st;
    waitpid(pid, &st, 0);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ASSERT_STR_CONTAINS(out, "\rtiny.gguf [##############################] 100% 2.8 MiB / 2.8 MiB");
    ASSERT_STR_CONTAINS(out, "ETA 0:00");
    ASSERT_TRUE(strstr(out, "pull: tiny.gguf 100%") == NULL); /* no plain lines */
    ASSERT_TRUE(same_as_fixture("tiny.gguf"));
}

static void test_disk_full_up_front(void)
{
    clean_dir();
    ASSERT_INT_EQ(run_pull(NULL, url("/huge/huge.gguf")), 1);
    ASSERT_STR_CONTAINS(out, "disk full: huge.gguf needs 1024.0 TiB more but");
    ASSERT_TRUE(!exists("huge.gguf"));
    ASSERT_TRUE(!exists("huge.gguf.part"));
}

int main(void)
{
    size_t len;
    hs.data = test_read_file(test_fixture(FIXTURE), &len);
    hs.len = len;
    if (!hs.data || sodium_init() < 0 || server_start() != 0) {
        fprintf(stderr, "setup failed\n");
        return 1;
    }
    unsigned char digest[32];
    crypto_hash_sha256(digest, hs.data, hs.len);
    for (int i = 0; i < 32; i++)
        snprintf(sha_hex + 2 * i, 3, "%02x", digest[i]);
    snprintf(dir, sizeof(dir), "%s/chatd-pull-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    unsetenv("CHATD_MODEL_DIR");
    unsetenv("CHATD_CONFIG");
    unsetenv("CHATD_HUB_URL");

    RUN(test_full_download);
    RUN(test_hub_form_with_checksum);
    RUN(test_resume_after_cut);
    RUN(test_resume_with_checksum);
    RUN(test_server_ignores_range);
    RUN(test_part_already_complete);
    RUN(test_checksum_mismatch);
    RUN(test_not_found);
    RUN(test_not_gguf);
    RUN(test_network_failure);
    RUN(test_write_failure_keeps_part);
    RUN(test_bad_names);
    RUN(test_token_and_denied);
    RUN(test_present_with_other_checksum);
    RUN(test_progress_bar_on_terminal);
    RUN(test_disk_full_up_front);

    atomic_store(&hs.stop, true);
    pthread_join(hs.th, NULL);
    close(hs.lfd);
    clean_dir();
    rmdir(dir);
    free(hs.data);
    return TEST_DONE();
}
