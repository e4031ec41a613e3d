/* gen_sse.c - a reply as server-sent events: the role chunk, one chunk per token's text
 * (reasoning and content deltas), the finish chunk with the context report, the usage
 * chunk when asked, then `data: [DONE]`. While the prompt is prefilled a `: ping`
 * comment keeps the connection alive. A client that hangs up cancels the generation;
 * what was produced is stored as partial and billed.
 *
 * libmicrohttpd calls the reader on the request's connection thread. */
#include "gen/gen.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PING_INTERVAL_MS 3000

struct stream {
    struct gen *g;
    struct strbuf out;
    size_t off;
    bool sent_role;
    bool done; /* [DONE] queued */
    double last_ms;
    size_t sent_content, sent_reasoning;
    uint64_t *bytes_out; /* the request's byte count for its log line; only the reader
                            touches it, and MHD never calls the reader after completion */
    struct strbuf sent;  /* with an Idempotency-Key: every event, for replays */
};

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* Queues one `data:` frame (takes the reference). */
static void sse_json(struct stream *s, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!text)
        return;
    strbuf_append(&s->out, "data: ", 6);
    strbuf_append(&s->out, text, strlen(text));
    strbuf_append(&s->out, "\n\n", 2);
    free(text);
}

/* Keeps what this read queued for a replay of the Idempotency-Key (pings aside). */
static void keep_for_replay(struct stream *s, size_t from)
{
    if (s->g->idem_key[0] && s->out.len > from && strncmp(s->out.data + from, ": ping", 6) != 0)
        strbuf_append(&s->sent, s->out.data + from, s->out.len - from);
}

static json_t *chunk(struct gen *g, json_t *delta, const char *finish)
{
    json_t *choice = json_pack("{s:i, s:o, s:o}", "index", 0, "delta", delta, "finish_reason",
                               finish ? json_string(finish) : json_null());
    if (!g->q.chat) {
        json_t *text = json_object_get(delta, "content");
        json_object_set(choice, "text", text ? text : json_string(""));
        json_object_del(choice, "delta");
    }
    return json_pack("{s:s, s:s, s:I, s:s, s:[o]}", "id", g->id, "object",
                     g->q.chat ? "chat.completion.chunk" : "text_completion", "created",
                     (json_int_t)g->created, "model", g->sm->id, "choices", choice);
}

/* Queues deltas for text produced since the last frame. */
static void queue_deltas(struct stream *s)
{
    struct gen *g = s->g;
    if (g->reasoning.len > s->sent_reasoning) {
        json_t *d = json_pack("{s:s%}", "reasoning_content", g->reasoning.data + s->sent_reasoning,
                              g->reasoning.len - s->sent_reasoning);
        s->sent_reasoning = g->reasoning.len;
        sse_json(s, chunk(g, d, NULL));
    }
    size_t upto = g->content.len;
    json_t *calls = g->tools ? gen_tools_stream(g, g->finish_reason != NULL, &upto) : NULL;
    if (upto > s->sent_content) {
        json_t *d = json_pack("{s:s%}", "content", g->content.data + s->sent_content,
                              upto - s->sent_content);
        s->sent_content = upto;
        sse_json(s, chunk(g, d, NULL));
    }
    if (calls)
        sse_json(s, chunk(g, json_pack("{s:o}", "tool_calls", calls), NULL));
}

static void queue_end(struct stream *s)
{
    struct gen *g = s->g;
    int rc = gen_store_result(g, g->failed ? STORE_MSG_ERROR : STORE_MSG_COMPLETE);
    if (rc != 0) {
        /* the deltas went out, but the reply is not stored: say so instead of finishing
         * normally, and what of it is billed */
        sse_json(s, srv_error_json(SRV_MOD_STORE, rc, NULL,
                                   g->reply_begun
                                       ? "the reply could not be stored in full (database unavailable); the part that was stored stays in the session as partial and is billed"
                                       : "the reply could not be stored (database unavailable) and was not billed; try again"));
    } else if (g->failed) {
        sse_json(s, srv_error_json(g->err.mod, g->err.code, g->err.param, g->err.msg));
    } else {
        json_t *last = chunk(g, json_object(), g->finish_reason);
        json_object_set_new(last, "context", gen_context_json(g));
        gen_add_finish_detail(g, json_array_get(json_object_get(last, "choices"), 0));
        sse_json(s, last);
        if (g->q.include_usage)
            sse_json(s, json_pack("{s:s, s:s, s:I, s:s, s:[], s:o}", "id", g->id, "object",
                                  g->q.chat ? "chat.completion.chunk" : "text_completion",
                                  "created", (json_int_t)g->created, "model", g->sm->id,
                                  "choices", "usage", gen_usage_json(g)));
    }
    strbuf_append(&s->out, "data: [DONE]\n\n", 14);
    s->done = true;
    if (rc == 0 && !g->failed) { /* billed and whole: a retry replays it */
        keep_for_replay(s, 0);
        gen_idem_complete(g, strbuf_str(&s->sent));
    }
}

/* MHD content reader: waits for tokens (pinging while the prompt runs), frames them. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *s = cls;
    struct gen *g = s->g;
    while (s->off == s->out.len) {
        if (s->done)
            return MHD_CONTENT_READER_END_OF_STREAM;
        s->out.len = s->off = 0;
        if (!s->sent_role) {
            s->sent_role = true;
            if (g->q.chat)
                sse_json(s, chunk(g, json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL));
            keep_for_replay(s, 0);
            break;
        }
        bool over = gen_pump(g, 200, 1);
        queue_deltas(s);
        if (!over)
            keep_for_replay(s, 0);
        if (!over)
            gen_reply_progress(g, false);
        if (over)
            queue_end(s);
        else if (s->out.len == 0 && now_ms() - s->last_ms > PING_INTERVAL_MS)
            strbuf_append(&s->out, ": ping\n\n", 8);
        if (g->srv->stopping && !over)
            atomic_store(&g->job->cancel, true);
    }
    size_t n = s->out.len - s->off;
    if (n > max)
        n = max;
    memcpy(buf, s->out.data + s->off, n);
    s->off += n;
    *s->bytes_out += n;
    s->last_ms = now_ms();
    return (ssize_t)n;
}

/* Runs when the response ends, completed or not (client hang-up): a cut reply is
 * stored as partial and billed for what was produced. */
static void stream_free(void *cls)
{
    struct stream *s = cls;
    struct gen *g = s->g;
    if (!g->stored) {
        gen_take_rest(g);
        /* logged if it fails; the client is gone. What it was sent is billed: a retry
         * with its Idempotency-Key gets that, not a second generation. */
        if (gen_store_result(g, STORE_MSG_PARTIAL) == 0)
            gen_idem_complete(g, strbuf_str(&s->sent));
    }
    strbuf_free(&s->out);
    strbuf_free(&s->sent);
    gen_free(g);
    free(s);
}

int gen_respond_stream(struct http_req *r, struct gen *g)
{
    struct stream *s = calloc(1, sizeof(*s));
    if (!s) {
        gen_free(g);
        return http_send_error(r, SRV_MOD_SERVER, SRV_EINTERNAL, NULL, "out of memory");
    }
    s->g = g;
    s->last_ms = now_ms();
    s->bytes_out = &r->bytes_out;
    if (g->session_id[0])
        http_add_header(r, "X-Session-Id", g->session_id);
    return http_send_stream(r, 200, "text/event-stream", stream_read, s, stream_free);
}
