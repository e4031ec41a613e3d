/* itest_server.c - starts and stops the real chatd binary for integration tests, runs its
 * CLI commands on the test database and sends requests with libcurl. The port is found by
 * binding port 0 and releasing it; a start that loses the race retries with another port. */
#include "itest.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

const char *itest_fixture(const char *rel)
{
    static char buf[1024];
    const char *dir = getenv("CHATD_FIXTURES");
    snprintf(buf, sizeof(buf), "%s/%s", dir ? dir : "tests/fixtures", rel);
    return buf;
}

const char *itest_cli(const struct itest_server *s, const char *fmt, const char *arg)
{
    static char line[512];
    char args[512], cmd[1200];
    snprintf(args, sizeof(args), fmt, arg);
    snprintf(cmd, sizeof(cmd), "%s %s --db %s 2>/dev/null", getenv("CHATD_BIN"), args, s->db);
    FILE *p = popen(cmd, "r");
    line[0] = 0;
    if (p) {
        if (!fgets(line, sizeof(line), p))
            line[0] = 0;
        pclose(p);
    }
    line[strcspn(line, "\n")] = 0;
    return line;
}

void itest_user_key(const struct itest_server *s, const char *name, const char *opts, char *key,
                    size_t len)
{
    char fmt[256];
    snprintf(fmt, sizeof(fmt), "user add %%s %s", opts);
    itest_cli(s, fmt, name);
    snprintf(key, len, "%s", itest_cli(s, "key create %s", name));
}

static void print_log(const struct itest_server *s)
{
    FILE *f = fopen(s->log_path, "r");
    if (!f)
        return;
    char line[1024];
    fprintf(stderr, "---- server log (%s) ----\n", s->log_path);
    while (fgets(line, sizeof(line), f))
        fputs(line, stderr);
    fclose(f);
}

static bool health_ok(struct itest_server *s)
{
    struct itest_resp r;
    bool ok = itest_request(s, "GET", "/health", NULL, NULL, &r) == 0 && r.status == 200;
    itest_resp_free(&r); /* allocated on failure too */
    return ok;
}

int itest_start(struct itest_server *s, const char *const *extra)
{
    static bool curl_ready;
    if (!curl_ready) {
        curl_global_init(CURL_GLOBAL_ALL);
        curl_ready = true;
    }
    if (!s->dir[0]) {
        snprintf(s->dir, sizeof(s->dir), "/tmp/chatd-itest-XXXXXX");
        if (!mkdtemp(s->dir))
            return -1;
        snprintf(s->db, sizeof(s->db), "%s/chatd.db", s->dir);
        snprintf(s->log_path, sizeof(s->log_path), "%s/server.log", s->dir);
    }
    const char *bin = getenv("CHATD_BIN");
    if (!bin)
        bin = "build/chatd";
    for (int attempt = 0; attempt < 3; attempt++) {
        s->port = free_port();
        snprintf(s->base_url, sizeof(s->base_url), "http://127.0.0.1:%d", s->port);
        char port[16];
        snprintf(port, sizeof(port), "%d", s->port);
        const char *argv[64] = {bin, "serve", "--port", port, "--db", s->db};
        int n = 6;
        for (int i = 0; extra && extra[i] && n < 62; i++)
            argv[n++] = extra[i];
        argv[n] = NULL;
        pid_t pid = fork();
        if (pid < 0)
            return -1;
        if (pid == 0) {
            FILE *lf = fopen(s->log_path, "a");
            if (lf) {
                dup2(fileno(lf), 2);
                dup2(fileno(lf), 1);
            }
            execv(bin, (char *const *)argv);
            _exit(127);
        }
        s->pid = pid;
        for (int i = 0; i < 600; i++) {
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid) {
                s->pid = 0;
                break;
            }
            if (health_ok(s))
                return 0;
            usleep(100 * 1000);
        }
        if (s->pid)
            itest_kill(s);
    }
    print_log(s);
    return -1;
}

int itest_stop(struct itest_server *s)
{
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    int st = 0;
    waitpid(s->pid, &st, 0);
    s->pid = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        print_log(s);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void itest_kill(struct itest_server *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

void itest_cleanup(struct itest_server *s)
{
    if (s->pid > 0)
        itest_kill(s);
    if (!s->dir[0] || strncmp(s->dir, "/tmp/chatd-itest-", 17) != 0)
        return;
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", s->dir);
}

int itest_finish(struct itest_server *s)
{
    int rc = itest_stop(s);
    itest_cleanup(s);
    if (rc != 0)
        fprintf(stderr, "server exit status %d\n", rc);
    return rc;
}

/* ---- libcurl ---- */

struct buf {
    char *data;
    size_t len;
    size_t abort_after;
    int n_chunks;
    double first_ms;
    struct timespec t0;
};

/* Appends p[0..len) to b, keeping it NUL-terminated; false when out of memory. */
static bool buf_append(struct buf *b, const char *p, size_t len)
{
    char *d = realloc(b->data, b->len + len + 1);
    if (!d)
        return false;
    b->data = d;
    memcpy(b->data + b->len, p, len);
    b->len += len;
    b->data[b->len] = 0;
    return true;
}

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    struct buf *b = ud;
    size_t len = size * n;
    if (b->n_chunks == 0) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        b->first_ms = (double)(t.tv_sec - b->t0.tv_sec) * 1e3 + (double)(t.tv_nsec - b->t0.tv_nsec) / 1e6;
    }
    if (!buf_append(b, p, len))
        return 0;
    b->n_chunks++;
    if (b->abort_after && b->len >= b->abort_after)
        return 0; /* makes curl close the connection */
    return len;
}

/* Collects the header block, lower-casing each header's name (not its value). */
static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct buf *b = ud;
    size_t len = size * n;
    size_t at = b->len;
    if (!buf_append(b, p, len))
        return 0;
    for (size_t i = at; i < b->len && b->data[i] != ':'; i++)
        b->data[i] = (char)tolower((unsigned char)b->data[i]);
    return len;
}

static CURL *make_easy(struct itest_server *s, const char *method, const char *path,
                       const char *body, const char *const *headers, struct curl_slist **hl)
{
    CURL *c = curl_easy_init();
    char url[1024];
    snprintf(url, sizeof(url), "%s%s", s->base_url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    *hl = NULL;
    bool has_type = false;
    for (int i = 0; headers && headers[i]; i++) {
        *hl = curl_slist_append(*hl, headers[i]);
        if (strncasecmp(headers[i], "content-type:", 13) == 0)
            has_type = true;
    }
    if (body) {
        if (!has_type)
            *hl = curl_slist_append(*hl, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    *hl = curl_slist_append(*hl, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hl);
    return c;
}

/* Runs c (from make_easy, with its header list hl) with the body collected into b (""
 * when none came), frees both; returns curl's result, the HTTP status into *status. */
static CURLcode perform(CURL *c, struct curl_slist *hl, struct buf *b, long *status)
{
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hl);
    if (!b->data)
        b->data = strdup("");
    return rc;
}

int itest_request(struct itest_server *s, const char *method, const char *path,
                  const char *body, const char *const *headers, struct itest_resp *out)
{
    memset(out, 0, sizeof(*out));
    struct curl_slist *hl;
    CURL *c = make_easy(s, method, path, body, headers, &hl);
    struct buf b = {0}, h = {0};
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    CURLcode rc = perform(c, hl, &b, &out->status);
    if (rc != CURLE_OK) {
        /* no whole response: nothing for the caller to free, whatever it does next (the
         * status may still say what the server answered before the connection broke) */
        free(b.data);
        free(h.data);
        return -1;
    }
    out->body = b.data;
    out->len = b.len;
    out->headers = h.data ? h.data : strdup("");
    return 0;
}

void itest_resp_free(struct itest_resp *r)
{
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof(*r));
}

bool itest_header(const struct itest_resp *r, const char *name, char *buf, size_t len)
{
    size_t n = strlen(name);
    for (const char *p = r->headers; p && *p;) {
        if (strncmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            size_t m = strcspn(v, "\r\n");
            if (m >= len)
                m = len - 1;
            memcpy(buf, v, m);
            buf[m] = 0;
            return true;
        }
        const char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : NULL;
    }
    return false;
}

json_t *itest_json(const struct itest_resp *r)
{
    return json_loadb(r->body, r->len, 0, NULL);
}

int itest_stream_post(struct itest_server *s, const char *path, const char *body,
                      const char *const *headers, size_t abort_after, struct itest_stream *out)
{
    memset(out, 0, sizeof(*out));
    struct curl_slist *hl;
    CURL *c = make_easy(s, "POST", path, body, headers, &hl);
    struct buf b = {.abort_after = abort_after};
    clock_gettime(CLOCK_MONOTONIC, &b.t0);
    CURLcode rc = perform(c, hl, &b, &out->status);
    out->body = b.data;
    out->len = b.len;
    out->n_chunks = b.n_chunks;
    out->first_ms = b.first_ms;
    return rc == CURLE_OK || (abort_after && rc == CURLE_WRITE_ERROR) ? 0 : -1;
}

void itest_stream_free(struct itest_stream *st)
{
    free(st->body);
    memset(st, 0, sizeof(*st));
}

json_t *itest_sse_events(const char *body, bool *saw_done)
{
    json_t *arr = json_array();
    *saw_done = false;
    const char *p = body;
    while (p && *p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > 6 && strncmp(p, "data: ", 6) == 0) {
            if (len == 12 && strncmp(p + 6, "[DONE]", 6) == 0) {
                *saw_done = true;
            } else {
                json_t *j = json_loadb(p + 6, len - 6, 0, NULL);
                json_array_append_new(arr, j ? j : json_string("<invalid json>"));
                *saw_done = false;
            }
        }
        p = nl ? nl + 1 : NULL;
    }
    return arr;
}

int itest_connect(struct itest_server *s)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)s->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

bool itest_too_large(struct itest_server *s, const char *path, const char *body)
{
    struct itest_resp r;
    int rc = itest_request(s, "POST", path, body, NULL, &r);
    if (rc != 0) /* closed while sending: an answer before the body is whole, as HTTP allows */
        return r.status == 413 || r.status == 0;
    bool ok = r.status == 413 && r.body && strstr(r.body, "\"request_too_large\"");
    itest_resp_free(&r);
    return ok;
}
