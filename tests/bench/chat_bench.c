/* chat_bench.c - an HTTP load client for OpenAI-compatible chat servers (chatd, or the
 * reference peer's server), streaming with libcurl multi.
 *
 *   chat_bench concurrency --url URL [--levels 1,2,4,8,16] [--tokens 64] [--words 32]
 *   chat_bench session --url URL [--turns 20] [--words 60] [--tokens 16]
 *   chat_bench arrival --url URL [--levels 4] [--words 400] [--tokens 200]
 *
 * concurrency: at each level N, N streams run at once (temperature 0, ignore_eos, a fixed
 * number of tokens each); prints aggregate tokens/s (content frames over wall time, prefill
 * included), decode tokens/s (the sum of each stream's rate from its first token to its
 * last), time to first token and inter-token latency percentiles as seen by the client.
 * arrival: N streams decode, then a request with a long prompt arrives; prints how long the
 * decoders' tokens are held up while it is prefilled, and its time to first token.
 * session: one chatd session of T turns (needs chatd's /v1/sessions); prints the time to
 * first token of every turn. Run it against servers started with --kv-reuse 1 and 0 to see
 * what prefix reuse saves. Output is a table, or JSON lines with --json. */
#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct stream {
    CURL *easy;
    struct curl_slist *hdr;
    char *body;
    double t0, t_first, t_last;
    int n_tokens;
    double *gaps;       /* inter-token gaps, ms */
    int n_gaps, cap_gaps;
    char line[65536];
    size_t n_line;
    char *session_id;   /* session mode: parsed from a create response */
};

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* One SSE line: a frame with non-empty delta content counts as one token. */
static void on_line(struct stream *s, const char *line, size_t len)
{
    if (len < 6 || strncmp(line, "data: ", 6) != 0)
        return;
    const char *c = strstr(line, "\"content\":\"");
    if (!c || c[11] == '"')
        return;
    double t = now_ms();
    if (s->n_tokens == 0) {
        s->t_first = t;
    } else {
        if (s->n_gaps == s->cap_gaps) {
            s->cap_gaps = s->cap_gaps ? s->cap_gaps * 2 : 256;
            s->gaps = realloc(s->gaps, (size_t)s->cap_gaps * sizeof(double));
        }
        s->gaps[s->n_gaps++] = t - s->t_last;
    }
    s->t_last = t;
    s->n_tokens++;
}

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    struct stream *s = ud;
    size_t len = size * n;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\n') {
            s->line[s->n_line] = 0;
            on_line(s, s->line, s->n_line);
            s->n_line = 0;
        } else if (s->n_line + 1 < sizeof(s->line)) {
            s->line[s->n_line++] = p[i];
        }
    }
    return len;
}

static void stream_start(struct stream *s, CURLM *multi, const char *url, const char *body)
{
    s->easy = curl_easy_init();
    s->body = strdup(body);
    s->hdr = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(s->easy, CURLOPT_URL, url);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->body);
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->hdr);
    curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
    s->t0 = now_ms();
    curl_multi_add_handle(multi, s->easy);
}

static void run_all(CURLM *multi)
{
    int running = 1;
    while (running) {
        curl_multi_perform(multi, &running);
        if (running)
            curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
}

static void stream_free(struct stream *s, CURLM *multi)
{
    curl_multi_remove_handle(multi, s->easy);
    curl_easy_cleanup(s->easy);
    curl_slist_free_all(s->hdr);
    free(s->body);
    free(s->gaps);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
    if (n == 0)
        return 0;
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    int i = (int)(p / 100.0 * (n - 1) + 0.5);
    return v[i];
}

/* A user message of `words` words; varied per stream so no two prompts are equal. */
static void make_prompt(char *buf, size_t len, int words, int salt)
{
    static const char *w[] = {"river", "mountain", "lantern", "harbor", "meadow", "copper",
                              "falcon", "orchard", "velvet", "thunder", "glacier", "pepper"};
    int n = snprintf(buf, len, "Story %d:", salt);
    for (int i = 0; i < words && (size_t)n + 16 < len; i++)
        n += snprintf(buf + n, len - (size_t)n, " %s", w[(i * 7 + salt) % 12]);
}

static int concurrency(const char *base, const char *levels, int tokens, int words, bool json)
{
    char url[512], body[8192], prompt[4096];
    snprintf(url, sizeof(url), "%s/v1/chat/completions", base);
    CURLM *multi = curl_multi_init();
    double single = 0, single_dec = 0;
    if (!json)
        printf("%8s %12s %8s %12s %8s %10s %10s %10s %10s\n", "streams", "agg tok/s", "x1",
               "decode tok/s", "x1", "ttft p50", "ttft p99", "itl p50", "itl p99");
    char *list = strdup(levels);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int n = atoi(tok);
        if (n <= 0)
            continue;
        struct stream *s = calloc((size_t)n, sizeof(*s));
        double t0 = now_ms();
        for (int i = 0; i < n; i++) {
            make_prompt(prompt, sizeof(prompt), words, i);
            snprintf(body, sizeof(body),
                     "{\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}],\"temperature\":0,"
                     "\"max_tokens\":%d,\"ignore_eos\":true,\"stream\":true}", prompt, tokens);
            stream_start(&s[i], multi, url, body);
        }
        run_all(multi);
        double wall = now_ms() - t0;
        int total = 0, n_gaps = 0;
        double dec = 0; /* decode phase: the sum of each stream's rate after its first token */
        double *ttft = calloc((size_t)n, sizeof(double));
        for (int i = 0; i < n; i++) {
            total += s[i].n_tokens;
            if (s[i].n_tokens > 1 && s[i].t_last > s[i].t_first)
                dec += (s[i].n_tokens - 1) / ((s[i].t_last - s[i].t_first) / 1e3);
            ttft[i] = s[i].n_tokens ? s[i].t_first - s[i].t0 : wall;
            n_gaps += s[i].n_gaps;
        }
        double *gaps = calloc((size_t)n_gaps + 1, sizeof(double));
        n_gaps = 0;
        for (int i = 0; i < n; i++) {
            memcpy(gaps + n_gaps, s[i].gaps, (size_t)s[i].n_gaps * sizeof(double));
            n_gaps += s[i].n_gaps;
            stream_free(&s[i], multi);
        }
        double agg = total / (wall / 1e3);
        if (n == 1 || single == 0) {
            single = agg;
            single_dec = dec;
        }
        double t50 = pct(ttft, n, 50), t99 = pct(ttft, n, 99);
        double i50 = pct(gaps, n_gaps, 50), i99 = pct(gaps, n_gaps, 99);
        if (json)
            printf("{\"streams\":%d,\"tokens\":%d,\"wall_ms\":%.1f,\"agg_tokens_per_s\":%.2f,"
                   "\"decode_tokens_per_s\":%.2f,\"ttft_p50_ms\":%.1f,\"ttft_p99_ms\":%.1f,"
                   "\"itl_p50_ms\":%.2f,\"itl_p99_ms\":%.2f}\n",
                   n, total, wall, agg, dec, t50, t99, i50, i99);
        else
            printf("%8d %12.1f %8.2f %12.1f %8.2f %10.1f %10.1f %10.2f %10.2f\n", n, agg,
                   agg / single, dec, single_dec > 0 ? dec / single_dec : 0, t50, t99, i50, i99);
        fflush(stdout);
        free(ttft);
        free(gaps);
        free(s);
    }
    free(list);
    curl_multi_cleanup(multi);
    return 0;
}

/* arrival: N streams decode; once each has 10 tokens, one request with a long prompt
 * arrives. Prints the decoders' inter-token gaps from that moment (p50, p99, max: how
 * long the newcomer's prefill stalls them) and the newcomer's time to first token. */
static int arrival(const char *base, int n, int tokens, int words, bool json)
{
    char url[512], body[16384], prompt[12288];
    snprintf(url, sizeof(url), "%s/v1/chat/completions", base);
    CURLM *multi = curl_multi_init();
    struct stream *s = calloc((size_t)n + 1, sizeof(*s));
    for (int i = 0; i < n; i++) {
        make_prompt(prompt, sizeof(prompt), 8, i);
        snprintf(body, sizeof(body),
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}],\"temperature\":0,"
                 "\"max_tokens\":%d,\"ignore_eos\":true,\"stream\":true}", prompt, tokens);
        stream_start(&s[i], multi, url, body);
    }
    int running = 1, ready = 0, from[64] = {0};
    while (running && ready < n) {
        curl_multi_perform(multi, &running);
        ready = 0;
        for (int i = 0; i < n; i++)
            ready += s[i].n_tokens >= 10;
        if (running && ready < n)
            curl_multi_poll(multi, NULL, 0, 10, NULL);
    }
    for (int i = 0; i < n && i < 64; i++)
        from[i] = s[i].n_gaps;
    make_prompt(prompt, sizeof(prompt), words, 999);
    snprintf(body, sizeof(body),
             "{\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}],\"temperature\":0,"
             "\"max_tokens\":4,\"stream\":true}", prompt);
    stream_start(&s[n], multi, url, body);
    run_all(multi);
    int n_gaps = 0;
    double *gaps = NULL;
    for (int i = 0; i < n && i < 64; i++) {
        gaps = realloc(gaps, (size_t)(n_gaps + s[i].n_gaps - from[i] + 1) * sizeof(double));
        memcpy(gaps + n_gaps, s[i].gaps + from[i], (size_t)(s[i].n_gaps - from[i]) * sizeof(double));
        n_gaps += s[i].n_gaps - from[i];
    }
    double i50 = pct(gaps, n_gaps, 50), i99 = pct(gaps, n_gaps, 99), imax = pct(gaps, n_gaps, 100);
    double ttft = s[n].n_tokens ? s[n].t_first - s[n].t0 : -1;
    if (json)
        printf("{\"streams\":%d,\"prompt_words\":%d,\"itl_p50_ms\":%.2f,\"itl_p99_ms\":%.2f,"
               "\"itl_max_ms\":%.2f,\"newcomer_ttft_ms\":%.1f}\n", n, words, i50, i99, imax, ttft);
    else
        printf("%d streams decoding, a %d-word prompt arrives: their ITL p50 %.2f ms, p99 %.2f ms, "
               "max %.1f ms; its TTFT %.1f ms\n", n, words, i50, i99, imax, ttft);
    for (int i = 0; i <= n; i++)
        stream_free(&s[i], multi);
    free(s);
    free(gaps);
    curl_multi_cleanup(multi);
    return 0;
}

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    struct stream *s = ud;
    size_t len = size * n;
    if (s->n_line + len < sizeof(s->line)) {
        memcpy(s->line + s->n_line, p, len);
        s->n_line += len;
        s->line[s->n_line] = 0;
    }
    return len;
}

static int session(const char *base, int turns, int words, int tokens, bool json)
{
    char url[512], body[8192], prompt[4096];
    struct stream c = {0};
    snprintf(url, sizeof(url), "%s/v1/sessions", base);
    CURL *e = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, "{\"title\":\"ttft bench\"}");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &c);
    if (curl_easy_perform(e) != CURLE_OK) {
        fprintf(stderr, "chat_bench: cannot create a session at %s\n", url);
        return 1;
    }
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    char *id = strstr(c.line, "\"id\":\"");
    if (!id) {
        fprintf(stderr, "chat_bench: no session id in %s\n", c.line);
        return 1;
    }
    id += 6;
    *strchr(id, '"') = 0;
    char sid[128];
    snprintf(sid, sizeof(sid), "%s", id);
    snprintf(url, sizeof(url), "%s/v1/chat/completions", base);
    CURLM *multi = curl_multi_init();
    if (!json)
        printf("%5s %10s %14s\n", "turn", "ttft ms", "prompt chars");
    for (int t = 1; t <= turns; t++) {
        make_prompt(prompt, sizeof(prompt), words, t);
        snprintf(body, sizeof(body),
                 "{\"session_id\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}],"
                 "\"temperature\":0,\"max_tokens\":%d,\"ignore_eos\":true,\"stream\":true}",
                 sid, prompt, tokens);
        struct stream s = {0};
        stream_start(&s, multi, url, body);
        run_all(multi);
        double ttft = s.n_tokens ? s.t_first - s.t0 : -1;
        if (json)
            printf("{\"turn\":%d,\"ttft_ms\":%.1f,\"tokens\":%d}\n", t, ttft, s.n_tokens);
        else
            printf("%5d %10.1f %14zu\n", t, ttft, strlen(prompt));
        fflush(stdout);
        stream_free(&s, multi);
    }
    curl_multi_cleanup(multi);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: chat_bench concurrency --url URL [--levels 1,2,4,8,16] [--tokens N] [--words N] [--json]\n"
                    "       chat_bench session --url URL [--turns N] [--words N] [--tokens N] [--json]\n"
                    "       chat_bench arrival --url URL [--levels N] [--words N] [--tokens N] [--json]\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage();
        return 2;
    }
    const char *url = "http://127.0.0.1:8080", *levels = "1,2,4,8,16";
    int tokens = -1, words = -1, turns = 20;
    bool json = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--json") == 0) {
            json = true;
            continue;
        }
        if (!v) {
            usage();
            return 2;
        }
        if (strcmp(a, "--url") == 0)
            url = v;
        else if (strcmp(a, "--levels") == 0)
            levels = v;
        else if (strcmp(a, "--tokens") == 0)
            tokens = atoi(v);
        else if (strcmp(a, "--words") == 0)
            words = atoi(v);
        else if (strcmp(a, "--turns") == 0)
            turns = atoi(v);
        else {
            usage();
            return 2;
        }
        i++;
    }
    curl_global_init(CURL_GLOBAL_ALL);
    int rc;
    if (strcmp(argv[1], "concurrency") == 0)
        rc = concurrency(url, levels, tokens > 0 ? tokens : 64, words > 0 ? words : 32, json);
    else if (strcmp(argv[1], "arrival") == 0)
        rc = arrival(url, atoi(levels) > 0 && atoi(levels) <= 64 ? atoi(levels) : 4,
                     tokens > 0 ? tokens : 200, words > 0 ? words : 400, json);
    else if (strcmp(argv[1], "session") == 0)
        rc = session(url, turns, words > 0 ? words : 60, tokens > 0 ? tokens : 16, json);
    else {
        usage();
        rc = 2;
    }
    curl_global_cleanup();
    return rc;
}
