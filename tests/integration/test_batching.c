/* Integration: 16 concurrent streams with mixed prompt lengths through continuous
 * batching: every stream completes, and at temperature 0 each output equals the output
 * of the same request run alone (batch invariance). A full queue answers 429. A prompt
 * arriving while others decode is prefilled in bounded chunks. */
#include "itest.h"
#include "test.h"

#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#define N_STREAMS 16

static struct itest_server srv;

struct job {
    int i;
    char body[4096];
    char *text;     /* concatenated content */
    long status;
    bool done;
};

static void make_body(struct job *j, int i)
{
    char prompt[2048];
    int n = snprintf(prompt, sizeof(prompt), "Request %d:", i);
    for (int k = 0; k < (i % 5) * 12; k++) /* prompts of different lengths */
        n += snprintf(prompt + n, sizeof(prompt) - (size_t)n, " word%d", k * 7 + i);
    snprintf(j->body, sizeof(j->body),
             "{\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}],\"temperature\":0,"
             "\"max_tokens\":%d,\"stream\":true}", prompt, 8 + (i % 3) * 8);
    j->i = i;
}

static void run_one(struct job *j)
{
    struct itest_stream s;
    itest_stream_post(&srv, "/v1/chat/completions", j->body, NULL, 0, &s);
    j->status = s.status;
    bool done;
    json_t *ev = itest_sse_events(s.body, &done);
    j->done = done;
    size_t len = 0, i;
    json_t *e;
    j->text = calloc(1, 1);
    json_array_foreach(ev, i, e) {
        const char *c = json_string_value(json_object_get(
            json_object_get(json_array_get(json_object_get(e, "choices"), 0), "delta"), "content"));
        if (c) {
            j->text = realloc(j->text, len + strlen(c) + 1);
            memcpy(j->text + len, c, strlen(c) + 1);
            len += strlen(c);
        }
    }
    json_decref(ev);
    itest_stream_free(&s);
}

static void *worker(void *arg)
{
    run_one(arg);
    return NULL;
}

static void test_concurrent_equals_alone(void)
{
    static struct job alone[N_STREAMS], together[N_STREAMS];
    for (int i = 0; i < N_STREAMS; i++) {
        make_body(&alone[i], i);
        make_body(&together[i], i);
        run_one(&alone[i]);
        ASSERT_INT_EQ(alone[i].status, 200);
    }
    pthread_t t[N_STREAMS];
    for (int i = 0; i < N_STREAMS; i++)
        pthread_create(&t[i], NULL, worker, &together[i]);
    for (int i = 0; i < N_STREAMS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < N_STREAMS; i++) {
        ASSERT_INT_EQ(together[i].status, 200);
        ASSERT_TRUE(together[i].done);
        ASSERT_STR_EQ(together[i].text, alone[i].text);
    }
    /* the engine really batched: some forward ran more than one token */
    struct itest_resp r;
    itest_request(&srv, "GET", "/metrics", NULL, NULL, &r);
    const char *p = strstr(r.body, "chatd_batch_tokens_bucket{model=\"tiny-qwen2-q8_0\",le=\"1\"} ");
    const char *q = strstr(r.body, "chatd_batch_tokens_count{model=\"tiny-qwen2-q8_0\"} ");
    ASSERT_TRUE(p && q);
    long ones = atol(p + strlen("chatd_batch_tokens_bucket{model=\"tiny-qwen2-q8_0\",le=\"1\"} "));
    long all = atol(q + strlen("chatd_batch_tokens_count{model=\"tiny-qwen2-q8_0\"} "));
    /* every step's duration went into the step histogram, whose buckets only grow */
    const char *sc = strstr(r.body, "chatd_step_seconds_count{model=\"tiny-qwen2-q8_0\"} ");
    const char *ss = strstr(r.body, "chatd_step_seconds_sum{model=\"tiny-qwen2-q8_0\"} ");
    ASSERT_TRUE(sc && ss);
    ASSERT_INT_EQ(atol(sc + strlen("chatd_step_seconds_count{model=\"tiny-qwen2-q8_0\"} ")), all);
    ASSERT_TRUE(atof(ss + strlen("chatd_step_seconds_sum{model=\"tiny-qwen2-q8_0\"} ")) > 0.0);
    long prev = 0;
    for (const char *b = r.body; (b = strstr(b, "chatd_step_seconds_bucket{")) != NULL; b++) {
        long v = atol(strchr(b, '}') + 2);
        ASSERT_TRUE(v >= prev);
        prev = v;
    }
    ASSERT_INT_EQ(prev, all);
    itest_resp_free(&r);
    ASSERT_TRUE(all > ones);
    for (int i = 0; i < N_STREAMS; i++) {
        free(alone[i].text);
        free(together[i].text);
    }
}

/* Restarts the server on a fixture model with 2 threads and these flags (NULL-ended). */
static int restart_with(const char *model_rel, const char *const *flags)
{
    char model[1024];
    snprintf(model, sizeof(model), "%s", itest_fixture(model_rel));
    const char *args[16] = {"--model", model, "--threads", "2"};
    int n = 4;
    for (int i = 0; flags[i] && n < 15; i++)
        args[n++] = flags[i];
    args[n] = NULL;
    itest_stop(&srv);
    return itest_start(&srv, args);
}

/* The same on the tiny qwen2 model. */
static int restart(const char *const *flags)
{
    return restart_with("models/tiny-qwen2-q8_0.gguf", flags);
}

static void *slow_worker(void *arg)
{
    struct itest_resp *r = arg;
    itest_request(&srv, "POST", "/v1/chat/completions",
                  "{\"messages\":[{\"role\":\"user\",\"content\":\"go\"}],\"max_tokens\":60,"
                  "\"temperature\":1}", NULL, r);
    return NULL;
}

/* With one slot and a queue of one, a burst of requests gets 429 with Retry-After for
 * those that find the queue full; the others complete. */
static void test_queue_full_is_429(void)
{
    const char *flags[] = {"--parallel", "1", "--queue-depth", "1", NULL};
    ASSERT_INT_EQ(restart(flags), 0);
    struct itest_resp r[6];
    pthread_t t[6];
    for (int i = 0; i < 6; i++)
        pthread_create(&t[i], NULL, slow_worker, &r[i]);
    int ok = 0, busy = 0;
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        char retry[16];
        if (r[i].status == 200)
            ok++;
        if (r[i].status == 429 && itest_header(&r[i], "retry-after", retry, sizeof(retry)) &&
            strstr(r[i].body, "\"server_busy\""))
            busy++;
        itest_resp_free(&r[i]);
    }
    ASSERT_TRUE(ok >= 1);
    ASSERT_TRUE(busy >= 1);
    ASSERT_INT_EQ(ok + busy, 6);
}

/* The value of a /metrics line starting with `name` (-1 when absent). */
static long metric_value(const char *name)
{
    struct itest_resp r;
    itest_request(&srv, "GET", "/metrics", NULL, NULL, &r);
    const char *p = strstr(r.body, name);
    long v = p ? atol(p + strlen(name)) : -1;
    itest_resp_free(&r);
    return v;
}

static void *long_reply_worker(void *arg)
{
    struct job *j = arg;
    snprintf(j->body, sizeof(j->body),
             "{\"messages\":[{\"role\":\"user\",\"content\":\"go\"}],\"temperature\":0,"
             "\"max_tokens\":400,\"ignore_eos\":true,\"stream\":true}");
    run_one(j);
    return NULL;
}

/* With --prefill-chunk 8, a long prompt arriving while another stream decodes is fed in
 * steps of at most 8 of its tokens (plus the decoding token), never in one long step;
 * its reply is the same as when it runs alone. */
static void test_prefill_chunk_while_decoding(void)
{
    const char *flags[] = {"--parallel", "2", "--prefill-chunk", "8", NULL};
    ASSERT_INT_EQ(restart(flags), 0);
    static struct job a, b, b_alone;
    char prompt[2048];
    int n = snprintf(prompt, sizeof(prompt), "Summarise:");
    for (int k = 0; k < 60; k++)
        n += snprintf(prompt + n, sizeof(prompt) - (size_t)n, " word%d", k);
    snprintf(b.body, sizeof(b.body),
             "{\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}],\"temperature\":0,"
             "\"max_tokens\":6,\"stream\":true}", prompt);
    memcpy(b_alone.body, b.body, sizeof(b.body));
    pthread_t t;
    pthread_create(&t, NULL, long_reply_worker, &a);
    for (int i = 0; i < 2000 && metric_value("chatd_tokens_generated_total{model=\"tiny-qwen2-q8_0\"} ") < 1; i++)
        usleep(1000);
    long prefilled0 = metric_value("chatd_tokens_prefilled_total{model=\"tiny-qwen2-q8_0\"} ");
    run_one(&b);
    /* b's whole prompt went in while a was still decoding */
    ASSERT_INT_EQ(metric_value("chatd_active_sequences{model=\"tiny-qwen2-q8_0\"} "), 1);
    long prompt_tokens = metric_value("chatd_tokens_prefilled_total{model=\"tiny-qwen2-q8_0\"} ") - prefilled0;
    pthread_join(t, NULL);
    ASSERT_INT_EQ(a.status, 200);
    ASSERT_INT_EQ(b.status, 200);
    ASSERT_TRUE(prompt_tokens > 64); /* enough to have needed a 65-256 token step */
    /* no step of 17-256 tokens: a's own prompt is short, b's came 8 at a time */
    long le16 = metric_value("chatd_batch_tokens_bucket{model=\"tiny-qwen2-q8_0\",le=\"16\"} ");
    long le256 = metric_value("chatd_batch_tokens_bucket{model=\"tiny-qwen2-q8_0\",le=\"256\"} ");
    ASSERT_TRUE(le16 > 0);
    ASSERT_INT_EQ(le256, le16);
    run_one(&b_alone);
    ASSERT_INT_EQ(b_alone.status, 200);
    ASSERT_STR_EQ(b.text, b_alone.text);
    free(a.text);
    free(b.text);
    free(b_alone.text);
}

/* Speculative decoding behind the API: 8 concurrent greedy streams on a server that
 * drafts (n-grams, then a draft model) give the replies of a server that does not; a
 * reply's usage counts the predictions kept and refused, /metrics the drafts. */
static void test_speculation_same_replies(void)
{
    enum { N = 8 };
    static struct job plain[N], spec[N];
    static const char *const modes[2][5] = {
        {"--parallel", "4", "--spec", "ngram", NULL},
        {"--parallel", "4", "--draft-model", NULL, NULL},
    };
    char draft[1024];
    snprintf(draft, sizeof(draft), "%s", itest_fixture("models/tiny-llama-q4_0.gguf"));
    const char *flags[5];
    const char *none[] = {"--parallel", "4", NULL};
    ASSERT_INT_EQ(restart_with("models/tiny-llama-f32.gguf", none), 0);
    for (int i = 0; i < N; i++) {
        snprintf(plain[i].body, sizeof(plain[i].body),
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"Say it again: one two "
                 "three, one two three, number %d.\"}],\"temperature\":0,\"max_tokens\":%d,"
                 "\"ignore_eos\":true,\"stream\":true}", i, 24 + 8 * i);
        run_one(&plain[i]);
        ASSERT_INT_EQ(plain[i].status, 200);
    }
    for (int m = 0; m < 2; m++) {
        memcpy(flags, modes[m], sizeof(flags));
        if (m == 1)
            flags[3] = draft;
        ASSERT_INT_EQ(restart_with("models/tiny-llama-f32.gguf", flags), 0);
        pthread_t t[N];
        for (int i = 0; i < N; i++) {
            memcpy(spec[i].body, plain[i].body, sizeof(spec[i].body));
            pthread_create(&t[i], NULL, worker, &spec[i]);
        }
        for (int i = 0; i < N; i++)
            pthread_join(t[i], NULL);
        for (int i = 0; i < N; i++) {
            ASSERT_INT_EQ(spec[i].status, 200);
            ASSERT_STR_EQ(spec[i].text, plain[i].text);
            free(spec[i].text);
        }
        /* one reply's usage */
        struct itest_resp r;
        ASSERT_INT_EQ(itest_request(&srv, "POST", "/v1/chat/completions",
                                    "{\"messages\":[{\"role\":\"user\",\"content\":\"Say it "
                                    "again: one two three.\"}],\"temperature\":0,"
                                    "\"max_tokens\":60,\"ignore_eos\":true}", NULL, &r), 0);
        ASSERT_INT_EQ(r.status, 200);
        json_t *o = itest_json(&r);
        json_t *d = json_object_get(json_object_get(o, "usage"), "completion_tokens_details");
        json_int_t kept = json_integer_value(json_object_get(d, "accepted_prediction_tokens"));
        json_int_t refused = json_integer_value(json_object_get(d, "rejected_prediction_tokens"));
        fprintf(stderr, "  %s: a reply kept %lld predictions, refused %lld\n",
                m ? "draft model" : "n-grams", (long long)kept, (long long)refused);
        ASSERT_TRUE(json_is_integer(json_object_get(d, "accepted_prediction_tokens")));
        ASSERT_TRUE(kept + refused > 0);
        json_decref(o);
        itest_resp_free(&r);
        long drafted = metric_value("chatd_draft_tokens_total{model=\"tiny-llama-f32\"} ");
        long kept_all = metric_value("chatd_draft_tokens_accepted_total{model=\"tiny-llama-f32\"} ");
        ASSERT_TRUE(drafted >= kept + refused);
        ASSERT_TRUE(kept_all > 0 && kept_all <= drafted);
    }
    for (int i = 0; i < N; i++)
        free(plain[i].text);
}

int main(void)
{
    char model[1024];
    snprintf(model, sizeof(model), "%s", itest_fixture("models/tiny-qwen2-q8_0.gguf"));
    const char *args[] = {"--model", model, "--parallel", "8", "--queue-depth", "16",
                          "--threads", "2", NULL};
    if (itest_start(&srv, args) != 0)
        return 1;
    RUN(test_concurrent_equals_alone);
    RUN(test_queue_full_is_429);
    RUN(test_prefill_chunk_while_decoding);
    RUN(test_speculation_same_replies);
    itest_stop(&srv);
    itest_cleanup(&srv);
    return TEST_DONE();
}
