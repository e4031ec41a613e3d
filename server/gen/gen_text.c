/* gen_text.c - turning the job's tokens into the text a client sees: incremental
 * detokenizing that never splits a UTF-8 character, the reasoning/content split, stop
 * strings, and the log-probabilities of each token when asked.
 *
 * Runs on the request's connection thread; the job's tokens are read under its mutex. */
#include "gen/gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add_logprob(struct gen *g, const struct eng_token *t, const char *text, size_t len)
{
    if (!g->q.logprobs)
        return;
    if (!g->logprobs)
        g->logprobs = json_array();
    size_t clen;
    char *clean = srv_utf8_sanitize(text, len, &clen);
    json_t *top = json_array();
    for (int k = 0; k < t->n_top && k < g->q.top_logprobs; k++) {
        char piece[256];
        int pl = tok_piece(g->sm->tok, t->top_id[k], piece, sizeof(piece), false);
        char *pc = srv_utf8_sanitize(piece, pl < 0 ? 0 : (size_t)(pl > 255 ? 255 : pl), NULL);
        json_array_append_new(top, json_pack("{s:s, s:f, s:I}", "token", pc ? pc : "", "logprob",
                                             (double)t->top_logprob[k], "id", (json_int_t)t->top_id[k]));
        free(pc);
    }
    json_array_append_new(g->logprobs, json_pack("{s:s, s:f, s:I, s:o}", "token", clean ? clean : "",
                                                 "logprob", (double)t->logprob, "id", (json_int_t)t->id,
                                                 "top_logprobs", top));
    free(clean);
}

/* Content text after the reasoning split: through the stop matcher into g->content. */
static void emit_content(struct gen *g, const char *s, size_t len)
{
    const char *e;
    size_t n;
    if (g->stopped_by_string)
        return;
    int m = stop_feed(g->stop, s, len, &e, &n);
    strbuf_append(&g->content, e, n);
    if (m == 1) {
        g->stopped_by_string = true;
        g->finish_reason = "stop";
    }
}

static void on_split(void *user, enum rsn_kind kind, const char *text, size_t len)
{
    struct gen *g = user;
    if (kind == RSN_REASONING)
        strbuf_append(&g->reasoning, text, len);
    else
        emit_content(g, text, len);
}

/* Text of one token: split into reasoning and content when the model thinks. */
static void emit_text(struct gen *g, const char *s, size_t len)
{
    if (g->split_reasoning)
        rsn_feed(g->rsn, s, len, on_split, g);
    else
        emit_content(g, s, len);
}

/* Consumes the job's tokens [g->consumed, n). */
static void consume(struct gen *g, uint32_t n)
{
    const struct tok_vocab *tok = g->sm->tok;
    while (g->consumed < n && !g->finish_reason) {
        struct eng_token t;
        pthread_mutex_lock(&g->job->mu);
        t = g->job->out[g->consumed];
        pthread_mutex_unlock(&g->job->mu);
        g->consumed++;
        if (tok_is_eog(tok, t.id) && !g->q.ignore_eos)
            continue;
        bool thinking = g->split_reasoning && rsn_in_reasoning(g->rsn);
        const char *text;
        size_t len;
        if (tok_stream_push(&g->ts, t.id, &text, &len) != 0)
            continue;
        add_logprob(g, &t, text, len);
        emit_text(g, text, len);
        if (thinking || (g->split_reasoning && rsn_in_reasoning(g->rsn)))
            g->n_reasoning_tokens++;
    }
}

/* Flushes held-back text once generation is over. */
static void drain_text(struct gen *g)
{
    const char *text;
    size_t len;
    if (g->stopped_by_string)
        return;
    if (tok_stream_flush(&g->ts, &text, &len) == 0 && len)
        emit_text(g, text, len);
    if (g->split_reasoning)
        rsn_finish(g->rsn, on_split, g);
    if (!g->stopped_by_string) {
        int m = stop_flush(g->stop, &text, &len);
        strbuf_append(&g->content, text, len);
        if (m == 1) {
            g->stopped_by_string = true;
            g->finish_reason = "stop";
        }
    }
}

/* The finish reason from the engine's, once every token is consumed. */
static void finish(struct gen *g)
{
    drain_text(g);
    switch (g->job->finish) {
    case ENG_FINISH_EOG:
        g->finish_reason = "stop";
        break;
    case ENG_FINISH_LENGTH:
        g->finish_reason = "length";
        break;
    case ENG_FINISH_ERROR:
        g->failed = true;
        gen_fail(g, SRV_MOD_SERVER, SRV_EGENERATE, NULL, "generation failed: %s", g->job->error);
        g->finish_reason = "error";
        break;
    default:
        g->finish_reason = g->finish_reason ? g->finish_reason : "cancelled";
    }
    gen_tools_finish(g);
}

bool gen_pump(struct gen *g, int timeout_ms, uint32_t max_new)
{
    bool finished;
    uint32_t n = eng_wait(g->job, g->consumed, timeout_ms, &finished);
    if (n - g->consumed > max_new) {
        n = g->consumed + max_new;
        finished = false;
    }
    consume(g, n);
    if (g->finish_reason) {
        atomic_store(&g->job->cancel, true); /* a stop string ended it early */
        drain_text(g);
        return true;
    }
    if (!finished)
        return false;
    n = eng_wait(g->job, g->consumed, 0, &finished);
    if (n > g->consumed)
        return gen_pump(g, 0, max_new); /* tokens still queued: frame them first */
    finish(g);
    return true;
}

void gen_take_rest(struct gen *g)
{
    atomic_store(&g->job->cancel, true);
    bool finished;
    consume(g, eng_wait(g->job, g->consumed, 0, &finished));
}
