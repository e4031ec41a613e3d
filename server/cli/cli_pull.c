/* cli_pull.c - `chatd pull URL|OWNER/REPO/FILE.gguf [--sha256 HEX] [--model-dir DIR]`:
 * downloads a GGUF model into the model directory.
 *
 * The bytes go to NAME.gguf.part (locked with flock, so two pulls of one file cannot
 * interleave). When a .part already exists the request carries "Range: bytes=N-": a
 * 206 answer whose Content-Range starts at N is appended, a 200 answer restarts from
 * zero, and a 416 whose total equals N means the .part is already complete. Every
 * byte on disk is fed to a streaming SHA-256 (the kept prefix is re-read on resume),
 * so the digest is known when the transfer ends. The file becomes NAME.gguf only
 * after the optional checksum matches and gguf_open() accepts it (fsync, rename,
 * fsync of the directory); a checksum mismatch or a non-GGUF body deletes the
 * .part, any other failure keeps it so the same command resumes.
 *
 * The OWNER/REPO/FILE form expands to BASE/OWNER/REPO/resolve/main/FILE, BASE being
 * $CHATD_HUB_URL or the public hub; $CHATD_HUB_TOKEN, when set, is sent as a bearer
 * token (libcurl drops it on redirects to another host). Progress goes to stderr:
 * a redrawn bar on a terminal, otherwise a plain line at the start, every few
 * seconds and at the end. Exit codes: 0 done, 1 runtime failure, 2 usage.
 */
#include "cli/cli.h"
#include "model.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* The public hub; CHATD_HUB_URL replaces it (tests, mirrors). */
#define PULL_HUB_BASE "https://huggingface.co"
#define PULL_NAME_MAX 200
#define PULL_PLAIN_INTERVAL_S 5.0 /* plain progress lines when stderr is not a terminal */
#define PULL_BAR_INTERVAL_S 0.1   /* bar redraws on a terminal */

struct pull {
    const char *url;
    char *final_path; /* DIR/NAME.gguf */
    char *part_path;  /* DIR/NAME.gguf.part */
    const char *dir;
    const char *name;
    int fd;

    /* transfer state */
    uint64_t have;     /* bytes of the .part kept from before this request */
    uint64_t written;  /* bytes appended by this request */
    uint64_t total;    /* expected final size, 0 when unknown */
    long status;       /* HTTP status of the final response */
    bool started;      /* first body byte seen */
    bool complete_416; /* server says the .part already holds every byte */
    int write_errno;
    char fail[320]; /* our own reason to abort the transfer */
    char curl_err[CURL_ERROR_SIZE];
    /* Content-Range of the current response: "bytes START-END/TOTAL" or "bytes * /TOTAL" */
    int64_t range_start;
    int64_t range_total;
    crypto_hash_sha256_state sha;

    /* progress */
    bool tty;
    double t0;
    double t_last;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- source names ------------------------------------------------------------------ */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* A safe path component: letters, digits and . _ - + only, not starting with a dot. */
static bool safe_component(const char *s, size_t len)
{
    if (len == 0 || s[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '+'))
            return false;
    }
    return true;
}

/* Every '/'-separated component of s is safe (so no "..", no empty part, no
 * absolute path). */
static bool safe_path(const char *s)
{
    if (!*s)
        return false;
    for (;;) {
        const char *slash = strchr(s, '/');
        size_t len = slash ? (size_t)(slash - s) : strlen(s);
        if (!safe_component(s, len))
            return false;
        if (!slash)
            return true;
        s = slash + 1;
    }
}

/* The local file name for a source: the last path component of the URL (query and
 * fragment dropped), or of OWNER/REPO/FILE. Returns 0, or -1 with a message. */
static int output_name(const char *path_part, char *name, size_t len, char *err, size_t err_len)
{
    const char *end = path_part + strcspn(path_part, "?#");
    const char *base = end;
    while (base > path_part && base[-1] != '/')
        base--;
    size_t n = (size_t)(end - base);
    if (n == 0 || n >= len || n > PULL_NAME_MAX) {
        snprintf(err, err_len, "cannot take a file name from '%s'", path_part);
        return -1;
    }
    memcpy(name, base, n);
    name[n] = 0;
    if (!safe_component(name, n) || !ends_with(name, ".gguf") || n == 5) {
        snprintf(err, err_len,
                 "'%s' is not a safe NAME.gguf file name (letters, digits, . _ - + only)", name);
        return -1;
    }
    return 0;
}

/* Turns SOURCE into a download URL (caller frees) and the local name. */
static char *resolve_source(const char *src, char *name, size_t name_len, char *err, size_t err_len)
{
    if (strncmp(src, "http://", 7) == 0 || strncmp(src, "https://", 8) == 0) {
        const char *path = strchr(src + (src[4] == 's' ? 8 : 7), '/');
        if (!path || strstr(src, "/..") || strchr(src, '\\')) {
            snprintf(err, err_len, "URL '%s' has no usable file path", src);
            return NULL;
        }
        if (output_name(path, name, name_len, err, err_len) != 0)
            return NULL;
        return strdup(src);
    }
    /* OWNER/REPO/FILE.gguf (FILE may sit in sub-folders of the repository) */
    const char *s1 = strchr(src, '/');
    const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    if (src[0] == '/' || !s2 || !safe_path(src) || !ends_with(src, ".gguf")) {
        snprintf(
            err, err_len,
            "'%s' is neither an http(s) URL nor OWNER/REPO/FILE.gguf (plain names, no '..', no absolute path)",
            src);
        return NULL;
    }
    if (output_name(src, name, name_len, err, err_len) != 0)
        return NULL;
    const char *base = getenv("CHATD_HUB_URL");
    if (!base || !*base)
        base = PULL_HUB_BASE;
    size_t blen = strlen(base);
    while (blen && base[blen - 1] == '/')
        blen--;
    size_t repo_len = (size_t)(s2 - src);
    size_t n = blen + 1 + repo_len + strlen("/resolve/main/") + strlen(s2 + 1) + 1;
    char *url = malloc(n);
    if (url)
        snprintf(url, n, "%.*s/%.*s/resolve/main/%s", (int)blen, base, (int)repo_len, src, s2 + 1);
    return url;
}

/* ---- progress ---------------------------------------------------------------------- */

void cli_fmt_bytes(char *out, size_t len, double b)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024.0 && u < 4) {
        b /= 1024.0;
        u++;
    }
    snprintf(out, len, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

static void fmt_eta(char *out, size_t len, double s)
{
    if (s < 0 || s > 359999) {
        snprintf(out, len, "--:--");
        return;
    }
    unsigned t = (unsigned)(s + 0.5);
    if (t >= 3600)
        snprintf(out, len, "%u:%02u:%02u", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(out, len, "%u:%02u", t / 60, t % 60);
}

/* Prints one progress report; `final` ends the bar's line. */
static void progress_print(struct pull *p, bool final)
{
    double t = now_s();
    uint64_t done = p->have + p->written;
    double rate = t > p->t0 ? (double)p->written / (t - p->t0) : 0.0;
    char sdone[32], stotal[32], srate[32], seta[16];
    cli_fmt_bytes(sdone, sizeof(sdone), (double)done);
    cli_fmt_bytes(stotal, sizeof(stotal), (double)p->total);
    cli_fmt_bytes(srate, sizeof(srate), rate);
    fmt_eta(seta, sizeof(seta),
            rate > 0 && p->total >= done ? (double)(p->total - done) / rate : -1);
    int pct = p->total ? (int)(done * 100 / p->total) : -1;
    if (p->tty) {
        char bar[31];
        int fill = pct >= 0 ? pct * 30 / 100 : 0;
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        if (pct >= 0)
            fprintf(stderr, "\r%s [%s] %3d%% %s / %s  %s/s  ETA %s\033[K", p->name, bar, pct, sdone,
                    stotal, srate, seta);
        else
            fprintf(stderr, "\r%s %s  %s/s\033[K", p->name, sdone, srate);
        if (final)
            fputc('\n', stderr);
    } else if (pct >= 0) {
        fprintf(stderr, "pull: %s %d%% %s of %s, %s/s, ETA %s\n", p->name, pct, sdone, stotal,
                srate, seta);
    } else {
        fprintf(stderr, "pull: %s %s, %s/s\n", p->name, sdone, srate);
    }
    fflush(stderr);
    p->t_last = t;
}

static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct pull *p = user;
    if (p->started && now_s() - p->t_last >= (p->tty ? PULL_BAR_INTERVAL_S : PULL_PLAIN_INTERVAL_S))
        progress_print(p, false);
    return 0;
}

/* ---- transfer callbacks ------------------------------------------------------------ */

/* Tracks Content-Range per response (a redirect's headers come first and are reset
 * by the next status line). */
static size_t on_header(char *buf, size_t size, size_t n, void *user)
{
    struct pull *p = user;
    size_t len = size * n;
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        p->range_start = -1;
        p->range_total = -1;
    } else if (len > 14 && strncasecmp(buf, "content-range:", 14) == 0) {
        char line[128];
        size_t m = len - 14 < sizeof(line) - 1 ? len - 14 : sizeof(line) - 1;
        memcpy(line, buf + 14, m);
        line[m] = 0;
        long long a, b, t;
        if (sscanf(line, " bytes %lld-%lld/%lld", &a, &b, &t) == 3) {
            p->range_start = a;
            p->range_total = t;
        } else if (sscanf(line, " bytes */%lld", &t) == 1) {
            p->range_total = t;
        }
    }
    return len;
}

/* Restarts the .part from zero (the server ignored our Range). */
static int part_restart(struct pull *p)
{
    if (ftruncate(p->fd, 0) != 0 || lseek(p->fd, 0, SEEK_SET) != 0) {
        p->write_errno = errno;
        return -1;
    }
    p->have = 0;
    crypto_hash_sha256_init(&p->sha);
    return 0;
}

/* Fails early when the file system cannot hold the rest of the download. */
static int check_space(struct pull *p, uint64_t need)
{
    struct statvfs vfs;
    if (statvfs(p->dir, &vfs) != 0)
        return 0; /* unknown: let the writes tell */
    uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    if (avail >= need)
        return 0;
    char sneed[32], savail[32];
    cli_fmt_bytes(sneed, sizeof(sneed), (double)need);
    cli_fmt_bytes(savail, sizeof(savail), (double)avail);
    snprintf(p->fail, sizeof(p->fail), "disk full: %s needs %s more but %s has only %s free",
             p->name, sneed, p->dir, savail);
    return -1;
}

/* The first body byte: decide from the status whether and where to write. */
static int on_body_start(struct pull *p, CURL *curl)
{
    curl_off_t clen = -1;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &p->status);
    curl_easy_getinfo(curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &clen);
    if (p->status == 206) {
        if (p->range_start != (int64_t)p->have) {
            snprintf(p->fail, sizeof(p->fail), "server resumed at byte %lld, expected %llu",
                     (long long)p->range_start, (unsigned long long)p->have);
            return -1;
        }
        fprintf(stderr, "pull: resuming %s at %llu bytes\n", p->name, (unsigned long long)p->have);
    } else if (p->status == 200) {
        if (p->have > 0) {
            fprintf(stderr, "pull: the server ignored the range request; starting %s over\n",
                    p->name);
            if (part_restart(p) != 0)
                return -1;
        }
    } else {
        return -1; /* an error page: not written; the status is reported after */
    }
    if (p->status == 206 && p->range_total > 0)
        p->total = (uint64_t)p->range_total;
    else
        p->total = clen >= 0 ? p->have + (uint64_t)clen : 0;
    if (p->total > p->have && check_space(p, p->total - p->have) != 0)
        return -1;
    p->started = true;
    p->t0 = now_s();
    progress_print(p, false);
    return 0;
}

struct write_ctx {
    struct pull *p;
    CURL *curl;
};

static size_t on_body(char *buf, size_t size, size_t n, void *user)
{
    struct write_ctx *w = user;
    struct pull *p = w->p;
    size_t len = size * n;
    if (!p->started && on_body_start(p, w->curl) != 0)
        return 0;
    for (size_t off = 0; off < len;) {
        ssize_t k = write(p->fd, buf + off, len - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            p->write_errno = k < 0 ? errno : ENOSPC;
            return 0;
        }
        /* hash and count what reached the file, so a short write leaves both exact */
        crypto_hash_sha256_update(&p->sha, (const unsigned char *)buf + off, (size_t)k);
        p->written += (uint64_t)k;
        off += (size_t)k;
    }
    return len;
}

/* ---- the download ------------------------------------------------------------------ */

/* Opens and locks the .part, hashing what it already holds. Returns 0 or 1 (printed). */
static int part_open(struct pull *p)
{
    p->fd = open(p->part_path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (p->fd < 0) {
        fprintf(stderr, "chatd pull: cannot open %s: %s\n", p->part_path, strerror(errno));
        return 1;
    }
    if (flock(p->fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "chatd pull: another chatd pull is writing %s\n", p->part_path);
        return 1;
    }
    crypto_hash_sha256_init(&p->sha);
    unsigned char buf[1 << 16];
    ssize_t k;
    p->have = 0;
    while ((k = pread(p->fd, buf, sizeof(buf), (off_t)p->have)) > 0) {
        crypto_hash_sha256_update(&p->sha, buf, (size_t)k);
        p->have += (uint64_t)k;
    }
    if (k < 0) {
        fprintf(stderr, "chatd pull: cannot read %s: %s\n", p->part_path, strerror(errno));
        return 1;
    }
    return 0;
}

static void set_common_opts(CURL *curl, struct pull *p, struct write_ctx *w,
                            struct curl_slist *hdrs)
{
    curl_easy_setopt(curl, CURLOPT_URL, p->url);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "chatd-pull");
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 30L);
    /* a stalled transfer (under 1 byte/s for a minute) fails and can be resumed */
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, p->curl_err);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, p);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, p);
    if (hdrs)
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
}

/* One request. Returns 0 when the .part now holds the whole file, 1 after printing
 * the failure, or 2 when the .part was reset and the request should be repeated. */
static int transfer(struct pull *p, struct curl_slist *hdrs)
{
    CURL *curl = curl_easy_init();
    if (!curl) {
        fprintf(stderr, "chatd pull: cannot start libcurl\n");
        return 1;
    }
    struct write_ctx w = {p, curl};
    char range[32];
    p->written = 0;
    p->total = 0;
    p->status = 0;
    p->started = false;
    p->fail[0] = 0;
    p->curl_err[0] = 0;
    p->range_start = p->range_total = -1;
    set_common_opts(curl, p, &w, hdrs);
    if (p->have > 0) {
        snprintf(range, sizeof(range), "%llu-", (unsigned long long)p->have);
        curl_easy_setopt(curl, CURLOPT_RANGE, range);
    }
    CURLcode rc = curl_easy_perform(curl);
    if (!p->status)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &p->status);
    curl_easy_cleanup(curl);
    if (p->started)
        progress_print(p, true);

    uint64_t done = p->have + p->written;
    if (p->write_errno) {
        if (p->write_errno == ENOSPC || p->write_errno == EDQUOT)
            fprintf(
                stderr,
                "chatd pull: disk full writing %s after %llu bytes; free some space and run the same command again to resume\n",
                p->part_path, (unsigned long long)done);
        else
            fprintf(
                stderr,
                "chatd pull: cannot write %s: %s (%llu bytes kept; run the same command again to resume)\n",
                p->part_path, strerror(p->write_errno), (unsigned long long)done);
        return 1;
    }
    if (p->fail[0]) {
        fprintf(stderr, "chatd pull: %s\n", p->fail);
        return 1;
    }
    if (p->status == 416 && p->have > 0) {
        if (p->range_total == (int64_t)p->have) {
            p->total = p->have;
            return 0; /* the .part was already complete */
        }
        fprintf(stderr, "pull: the server refused to resume %s; starting over\n", p->name);
        return part_restart(p) == 0 ? 2 : 1;
    }
    if (p->status >= 300 ||
        (rc == CURLE_OK && p->status != 200 && p->status != 206 && p->status != 0)) {
        if (p->status == 404)
            fprintf(stderr, "chatd pull: not found (HTTP 404): %s\n", p->url);
        else if (p->status == 401 || p->status == 403)
            fprintf(
                stderr,
                "chatd pull: access denied (HTTP %ld): %s (a gated repository needs its license accepted and CHATD_HUB_TOKEN set)\n",
                p->status, p->url);
        else
            fprintf(stderr, "chatd pull: the server answered HTTP %ld for %s\n", p->status, p->url);
        return 1;
    }
    if (rc != CURLE_OK) {
        const char *why = p->curl_err[0] ? p->curl_err : curl_easy_strerror(rc);
        if (done == 0)
            fprintf(stderr, "chatd pull: download of %s failed: %s\n", p->url, why);
        else
            fprintf(
                stderr,
                "chatd pull: download of %s failed: %s (%llu bytes kept in %s; run the same command again to resume)\n",
                p->url, why, (unsigned long long)done, p->part_path);
        return 1;
    }
    if (p->total && done != p->total) {
        fprintf(
            stderr,
            "chatd pull: %s ended at %llu of %llu bytes; run the same command again to resume\n",
            p->url, (unsigned long long)done, (unsigned long long)p->total);
        return 1;
    }
    p->total = done;
    return 0;
}

static void to_hex(const unsigned char *d, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * n] = 0;
}

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Checksum, GGUF check and rename of a complete .part. Returns 0 or 1 (printed). */
static int finish(struct pull *p, const char *want_sha)
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    char hex[2 * crypto_hash_sha256_BYTES + 1];
    crypto_hash_sha256_final(&p->sha, digest);
    to_hex(digest, sizeof(digest), hex);
    if (fsync(p->fd) != 0) {
        fprintf(stderr, "chatd pull: cannot write %s: %s\n", p->part_path, strerror(errno));
        return 1;
    }
    if (want_sha && strcasecmp(want_sha, hex) != 0) {
        unlink(p->part_path);
        fprintf(
            stderr,
            "chatd pull: checksum mismatch for %s: expected sha256 %s, got %s; the download was deleted\n",
            p->name, want_sha, hex);
        return 1;
    }
    struct gguf_file *f = NULL;
    char err[256];
    if (gguf_open(&f, p->part_path, err, sizeof(err)) != 0) {
        unlink(p->part_path);
        fprintf(stderr, "chatd pull: %s is not a usable GGUF file (%s); the download was deleted\n",
                p->name, err);
        return 1;
    }
    gguf_close(f);
    if (rename(p->part_path, p->final_path) != 0) {
        fprintf(stderr, "chatd pull: cannot rename %s to %s: %s\n", p->part_path, p->final_path,
                strerror(errno));
        return 1;
    }
    fsync_dir(p->dir);
    char size[32];
    cli_fmt_bytes(size, sizeof(size), (double)p->total);
    printf("%s (%s, sha256 %s)\n", p->final_path, size, hex);
    return 0;
}

/* ---- command line ------------------------------------------------------------------ */

static void pull_usage(FILE *out)
{
    fprintf(
        out,
        "usage: chatd pull URL|OWNER/REPO/FILE.gguf [--sha256 HEX] [--model-dir DIR] [--config FILE]\n"
        "Downloads a GGUF model into the model directory (config model_dir, CHATD_MODEL_DIR).\n"
        "An interrupted download resumes when the same command runs again.\n"
        "OWNER/REPO/FILE.gguf is a file of a model hub repository (base URL: CHATD_HUB_URL;\n"
        "CHATD_HUB_TOKEN is sent as a bearer token for gated repositories).\n");
}

static bool is_sha256_hex(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f') ||
              (s[n] >= 'A' && s[n] <= 'F')))
            return false;
    return n == 64;
}

static char *join_path(const char *dir, const char *name, const char *suffix)
{
    size_t n = strlen(dir) + strlen(name) + strlen(suffix) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s%s", dir, name, suffix);
    return s;
}

/* A final file that is already there: done when no checksum is asked or it matches. */
static int already_present(const char *path, const char *want_sha)
{
    if (!want_sha) {
        printf("%s (already present; delete it to download again)\n", path);
        return 0;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "chatd pull: cannot read %s: %s\n", path, strerror(errno));
        return 1;
    }
    crypto_hash_sha256_state st;
    unsigned char buf[1 << 16], digest[crypto_hash_sha256_BYTES];
    char hex[2 * crypto_hash_sha256_BYTES + 1];
    ssize_t k;
    crypto_hash_sha256_init(&st);
    while ((k = read(fd, buf, sizeof(buf))) > 0)
        crypto_hash_sha256_update(&st, buf, (size_t)k);
    close(fd);
    crypto_hash_sha256_final(&st, digest);
    to_hex(digest, sizeof(digest), hex);
    if (strcasecmp(hex, want_sha) != 0) {
        fprintf(stderr,
                "chatd pull: %s exists with sha256 %s, not %s; delete it to download again\n", path,
                hex, want_sha);
        return 1;
    }
    printf("%s (already present, sha256 %s)\n", path, hex);
    return 0;
}

static int pull_run(struct pull *p, const char *want_sha)
{
    struct stat st;
    if (stat(p->final_path, &st) == 0)
        return already_present(p->final_path, want_sha);
    if (mdl_mkdirs(p->dir) != 0) {
        fprintf(stderr, "chatd pull: cannot create %s: %s\n", p->dir, strerror(errno));
        return 1;
    }
    if (part_open(p) != 0)
        return 1;
    struct curl_slist *hdrs = NULL;
    const char *token = getenv("CHATD_HUB_TOKEN");
    if (token && *token) {
        char h[1024];
        snprintf(h, sizeof(h), "Authorization: Bearer %s", token);
        hdrs = curl_slist_append(NULL, h);
    }
    fprintf(stderr, "pull: %s -> %s\n", p->url, p->final_path);
    int rc = transfer(p, hdrs);
    if (rc == 2)
        rc = transfer(p, hdrs);
    if (rc == 2)
        rc = 1;
    curl_slist_free_all(hdrs);
    if (rc != 0 && p->have + p->written == 0)
        unlink(p->part_path); /* nothing to resume */
    if (rc == 0)
        rc = finish(p, want_sha);
    return rc;
}

int cli_pull(int argc, char **argv)
{
    const char *src = NULL, *sha = NULL, *dir_flag = NULL, *config = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            pull_usage(stdout);
            return 0;
        }
        if ((strcmp(a, "--sha256") == 0 || strcmp(a, "--model-dir") == 0 ||
             strcmp(a, "--config") == 0) &&
            i + 1 >= argc) {
            fprintf(stderr, "chatd pull: %s needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "--sha256") == 0)
            sha = argv[++i];
        else if (strcmp(a, "--model-dir") == 0)
            dir_flag = argv[++i];
        else if (strcmp(a, "--config") == 0)
            config = argv[++i];
        else if (a[0] == '-' || src) {
            fprintf(stderr, "chatd pull: unexpected argument '%s'\n", a);
            pull_usage(stderr);
            return 2;
        } else
            src = a;
    }
    if (!src) {
        pull_usage(stderr);
        return 2;
    }
    if (sha && !is_sha256_hex(sha)) {
        fprintf(stderr, "chatd pull: --sha256 wants 64 hex digits, got '%s'\n", sha);
        return 2;
    }
    char name[PULL_NAME_MAX + 1], err[512];
    char *url = resolve_source(src, name, sizeof(name), err, sizeof(err));
    if (!url) {
        fprintf(stderr, "chatd pull: %s\n", err);
        return 2;
    }
    char *dir = NULL;
    if (cli_model_dir(config, dir_flag, &dir, err, sizeof(err)) != 0) {
        fprintf(stderr, "chatd pull: %s\n", err);
        free(url);
        return 2;
    }
    if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "chatd pull: cannot initialise libsodium or libcurl\n");
        free(url);
        free(dir);
        return 1;
    }
    /* over a file size limit, write() then fails with EFBIG and we say so */
    signal(SIGXFSZ, SIG_IGN);
    struct pull p = {
        .url = url, .dir = dir, .name = name, .fd = -1, .tty = isatty(STDERR_FILENO) == 1};
    p.final_path = join_path(dir, name, "");
    p.part_path = join_path(dir, name, ".part");
    int rc = p.final_path && p.part_path ? pull_run(&p, sha) : 1;
    if (p.fd >= 0)
        close(p.fd);
    free(p.final_path);
    free(p.part_path);
    free(url);
    free(dir);
    curl_global_cleanup();
    return rc;
}
