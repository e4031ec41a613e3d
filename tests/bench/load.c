/* load.c - a load generator for a running chatd (libcurl multi, one thread).
 *
 * Phase 1: --concurrency clients loop over GET /health, /v1/models and /v1/sessions for
 * --duration seconds; per endpoint it reports requests/s, p50/p99 latency and errors.
 * Phase 2: --streams streaming chat requests are opened at once and held until each
 * finishes (most wait in the queue behind the busy slots, kept alive by pings); while
 * they are open, /health is probed once per 100 ms. It reports how many streams were
 * open at once, time to first byte, streams that did not end with [DONE], /health
 * latency under that load, and, with --pid, the server's peak RSS.
 *
 * usage: bench_load --url http://127.0.0.1:8080 [--duration 10] [--concurrency 32]
 *                   [--streams 200] [--max-tokens 16] [--rounds 1] [--pid SERVER_PID]
 * --rounds repeats phase 2 (RSS after each round shows whether memory plateaus).
 * The server needs --queue-depth >= streams - parallel (else the surplus gets 429).
 */
#include "test_sys.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SAMPLES 2000000

struct series {
    const char *name;
    double *ms;
    size_t n, cap;
    long errors;
};

static void series_add(struct series *s, double ms)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        if (cap > MAX_SAMPLES)
            return;
        double *p = realloc(s->ms, cap * sizeof(*p));
        if (!p)
            return;
        s->ms = p;
        s->cap = cap;
    }
    s->ms[s->n++] = ms;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Percentile p of a sorted series. */
static double pct(const struct series *s, double p)
{
    if (!s->n)
        return 0;
    size_t i = (size_t)(p * (double)(s->n - 1) + 0.5);
    return s->ms[i];
}

static void report(struct series *s, double secs)
{
    if (s->n)
        qsort(s->ms, s->n, sizeof(double), cmp_double);
    printf("  %-22s %8zu req %9.1f req/s  p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms  errors %ld\n",
           s->name, s->n, (double)s->n / secs, pct(s, 0.50), pct(s, 0.99),
           s->n ? s->ms[s->n - 1] : 0.0, s->errors);
}

struct xfer {
    CURL *h;
    int kind;            /* phase 1: endpoint index; phase 2: 0 stream, 1 health probe */
    double t0, t_first;
    char tail[32];       /* last bytes of the body (for [DONE]) */
    size_t n_body;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    struct xfer *x = ud;
    size_t len = sz * n;
    if (x->n_body == 0 && len)
        x->t_first = test_now_s();
    x->n_body += len;
    size_t keep = sizeof(x->tail) - 1;
    if (len >= keep) {
        memcpy(x->tail, p + len - keep, keep);
    } else {
        size_t have = strlen(x->tail);
        if (have + len > keep) {
            memmove(x->tail, x->tail + (have + len - keep), keep - len);
            have = keep - len;
        }
        memcpy(x->tail + have, p, len);
        x->tail[have + len] = 0;
    }
    x->tail[keep] = 0;
    return len;
}

static const char *base_url = "http://127.0.0.1:8080";
static const char *paths[3] = {"/health", "/v1/models", "/v1/sessions"};

/* Points x's handle at url (the body goes to on_body) and adds it to m. */
static void add_xfer(CURLM *m, struct xfer *x, const char *url, long timeout_s)
{
    curl_easy_setopt(x->h, CURLOPT_URL, url);
    curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
    curl_easy_setopt(x->h, CURLOPT_TIMEOUT, timeout_s);
    curl_multi_add_handle(m, x->h);
}

static void start_get(CURLM *m, struct xfer *x, int kind)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", base_url, paths[kind]);
    x->kind = kind;
    x->t0 = test_now_s();
    x->t_first = 0;
    x->n_body = 0;
    x->tail[0] = 0;
    curl_easy_reset(x->h);
    add_xfer(m, x, url, 30L);
}

/* A finished transfer: its curl result, HTTP status and milliseconds since it started. */
struct done {
    struct xfer *x;
    CURLcode result;
    long code;
    double ms;
};

/* The next finished transfer of m into d; false when there is none. */
static bool next_done(CURLM *m, struct done *d)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&d->x);
        d->result = msg->data.result;
        d->code = 0;
        curl_easy_getinfo(d->x->h, CURLINFO_RESPONSE_CODE, &d->code);
        d->ms = (test_now_s() - d->x->t0) * 1e3;
        return true;
    }
    return false;
}

static void phase_get(int conc, double duration)
{
    struct series s[3] = {{.name = "GET /health"}, {.name = "GET /v1/models"},
                          {.name = "GET /v1/sessions"}};
    CURLM *m = curl_multi_init();
    struct xfer *xs = calloc((size_t)conc, sizeof(*xs));
    for (int i = 0; i < conc; i++) {
        xs[i].h = curl_easy_init();
        start_get(m, &xs[i], i % 3);
    }
    double t_start = test_now_s(), t_end = t_start + duration;
    int running = conc, next = 0;
    while (running > 0) {
        curl_multi_perform(m, &running);
        struct done d;
        while (next_done(m, &d)) {
            struct xfer *x = d.x;
            if (d.result != CURLE_OK || d.code != 200)
                s[x->kind].errors++;
            else
                series_add(&s[x->kind], d.ms);
            curl_multi_remove_handle(m, x->h);
            if (test_now_s() < t_end) {
                start_get(m, x, next++ % 3);
                running++;
            }
        }
        if (running)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    double secs = test_now_s() - t_start;
    size_t total = 0;
    long errors = 0;
    printf("phase 1: %d concurrent clients, %.1f s\n", conc, secs);
    for (int k = 0; k < 3; k++) {
        total += s[k].n;
        errors += s[k].errors;
        report(&s[k], secs);
    }
    printf("  total %.1f req/s, errors %ld\n", (double)total / secs, errors);
    for (int i = 0; i < conc; i++)
        curl_easy_cleanup(xs[i].h);
    for (int k = 0; k < 3; k++)
        free(s[k].ms);
    free(xs);
    curl_multi_cleanup(m);
}

static void phase_streams(int n, int max_tokens, long pid)
{
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    struct xfer *xs = calloc((size_t)n + 1, sizeof(*xs));
    char body[512], url[512];
    snprintf(body, sizeof(body),
             "{\"messages\":[{\"role\":\"user\",\"content\":\"Write a poem.\"}],"
             "\"max_tokens\":%d,\"temperature\":0.8,\"stream\":true}",
             max_tokens);
    snprintf(url, sizeof(url), "%s/v1/chat/completions", base_url);
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    double t_start = test_now_s();
    for (int i = 0; i < n; i++) {
        struct xfer *x = &xs[i];
        x->h = curl_easy_init();
        x->kind = 0;
        x->t0 = test_now_s();
        curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, hdr);
        add_xfer(m, x, url, 600L);
    }
    struct xfer *probe = &xs[n];
    probe->h = curl_easy_init();
    struct series health = {.name = "GET /health (loaded)"}, ttfb = {.name = "stream first byte"},
                  total = {.name = "stream complete"};
    long peak_rss = test_rss_kb(pid), errors = 0, not_done = 0;
    int running = 1, open_max = 0, streams_left = n;
    bool probing = false;
    double next_probe = test_now_s();
    while (streams_left > 0 || probing) {
        curl_multi_perform(m, &running);
        int open_now = 0;
        for (int i = 0; i < n; i++)
            if (xs[i].h && xs[i].t_first > 0)
                open_now++;
        if (open_now > open_max)
            open_max = open_now;
        struct done d;
        while (next_done(m, &d)) {
            struct xfer *x = d.x;
            curl_multi_remove_handle(m, x->h);
            if (x == probe) {
                probing = false;
                if (d.result != CURLE_OK || d.code != 200)
                    health.errors++;
                else
                    series_add(&health, d.ms);
                continue;
            }
            streams_left--;
            if (d.result != CURLE_OK || d.code != 200) {
                errors++;
                if (errors <= 3)
                    fprintf(stderr, "stream error: curl %d, HTTP %ld\n", (int)d.result, d.code);
            } else if (!strstr(x->tail, "[DONE]")) {
                not_done++;
            } else {
                series_add(&ttfb, (x->t_first - x->t0) * 1e3);
                series_add(&total, d.ms);
            }
            curl_easy_cleanup(x->h);
            x->h = NULL;
        }
        if (!probing && streams_left > 0 && test_now_s() >= next_probe) {
            start_get(m, probe, 0);
            probing = true;
            next_probe = test_now_s() + 0.1;
            long r = test_rss_kb(pid);
            if (r > peak_rss)
                peak_rss = r;
        }
        curl_multi_poll(m, NULL, 0, 20, NULL);
    }
    double secs = test_now_s() - t_start;
    printf("phase 2: %d streaming chat requests (max_tokens %d) opened at once, %.1f s\n", n,
           max_tokens, secs);
    printf("  streams open at once (headers and first bytes received): %d\n", open_max);
    printf("  completed with [DONE]: %zu, without [DONE]: %ld, errors: %ld\n", total.n, not_done,
           errors);
    report(&ttfb, secs);
    report(&total, secs);
    report(&health, secs);
    if (pid > 0)
        printf("  server RSS: peak %ld kB, after %ld kB\n", peak_rss, test_rss_kb(pid));
    curl_easy_cleanup(probe->h);
    curl_slist_free_all(hdr);
    free(health.ms);
    free(ttfb.ms);
    free(total.ms);
    free(xs);
    curl_multi_cleanup(m);
}

int main(int argc, char **argv)
{
    double duration = 10;
    int conc = 32, streams = 200, max_tokens = 16, rounds = 1;
    long pid = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "bench_load: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--url"))
            base_url = v;
        else if (!strcmp(a, "--duration"))
            duration = atof(v);
        else if (!strcmp(a, "--concurrency"))
            conc = atoi(v);
        else if (!strcmp(a, "--streams"))
            streams = atoi(v);
        else if (!strcmp(a, "--max-tokens"))
            max_tokens = atoi(v);
        else if (!strcmp(a, "--rounds"))
            rounds = atoi(v);
        else if (!strcmp(a, "--pid"))
            pid = atol(v);
        else {
            fprintf(stderr, "bench_load: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    if (conc < 1 || streams < 0 || max_tokens < 1 || duration <= 0) {
        fprintf(stderr, "bench_load: bad arguments\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_ALL);
    long rss0 = test_rss_kb(pid);
    if (pid > 0)
        printf("server RSS before: %ld kB\n", rss0);
    phase_get(conc, duration);
    for (int r = 0; streams > 0 && r < rounds; r++)
        phase_streams(streams, max_tokens, pid);
    curl_global_cleanup();
    return 0;
}
