/* gen.c - chat and legacy completions: validate, build the prompt (session history
 * fitted to the context window), admit against the user's quota, run the engine job,
 * turn tokens into text (UTF-8 safe, reasoning split, stop strings), answer as one JSON
 * object or as server-sent events, and store the reply with its usage row.
 *
 * Runs on the request's connection thread. The engine thread only fills the job. */
#include "gen.h"
#include "api.h"
#include "log.h"
#include "sampler.h"
#include "srv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PING_INTERVAL_MS 3000

static const char *strbuf_str(const struct strbuf *b)
{
    return b->data ? b->data : "";
}

/* ---- sampling hook (engine thread) ---- */

struct sample_ctx {
    struct sampler *smp;
    const struct tok_vocab *tok;
    int top_n;                /* top logprobs wanted per token (0: none) */
    struct oai_bias *bias;    /* owned copy of the request's logit_bias */
    size_t n_bias;
    /* max_reasoning_tokens: once a thought has run this long, </think> is forced */
    int64_t budget;           /* -1: none */
    int64_t n_thought;
    bool thinking;
    int32_t think_open, think_close;
};

static int sample_hook(void *ctx, float *logits, uint32_t n_vocab, struct eng_token *out)
{
    struct sample_ctx *c = ctx;
    /* Log-probabilities are the model's own, before the request's bias. */
    int32_t top_id[ENG_MAX_TOP];
    float top_lp[ENG_MAX_TOP];
    int n_top = c->top_n ? sampler_top_logprobs(logits, n_vocab, c->top_n, top_id, top_lp) : 0;
    for (size_t i = 0; i < c->n_bias; i++)
        logits[c->bias[i].id] += (float)c->bias[i].bias;
    int32_t id = sampler_sample(c->smp, logits);
    if (id < 0 || (uint32_t)id >= n_vocab)
        return -1;
    if (c->thinking && c->budget >= 0 && c->n_thought >= c->budget && c->think_close >= 0)
        id = c->think_close;
    if (c->thinking)
        c->n_thought++;
    if (id == c->think_open)
        c->thinking = true;
    else if (id == c->think_close)
        c->thinking = false;
    for (size_t i = 0; i < c->n_bias; i++)
        logits[c->bias[i].id] -= (float)c->bias[i].bias;
    sampler_accept(c->smp, id);
    out->id = id;
    /* a pass over the whole vocabulary: only when the request shows log-probabilities */
    out->logprob = c->top_n ? sampler_logprob(logits, n_vocab, id) : 0.0f;
    out->n_top = (uint8_t)n_top;
    memcpy(out->top_id, top_id, (size_t)n_top * sizeof(int32_t));
    memcpy(out->top_logprob, top_lp, (size_t)n_top * sizeof(float));
    return 0;
}

static bool eog_hook(void *ctx, int32_t id)
{
    struct sample_ctx *c = ctx;
    return tok_is_eog(c->tok, id);
}

static void sample_free(void *ctx)
{
    struct sample_ctx *c = ctx;
    sampler_free(c->smp);
    free(c->bias);
    free(c);
}

/* ---- prompt building ---- */

struct prompt_msgs {
    struct tmpl_message *m;
    const struct store_message **src; /* the stored message behind m[i], or NULL */
    size_t n;
    size_t first_new;          /* index of the request's first message */
    struct store_message *history;
    size_t n_history;
};

static void prompt_msgs_free(struct prompt_msgs *p)
{
    free(p->m);
    free(p->src);
    store_messages_free(p->history, p->n_history);
    memset(p, 0, sizeof(*p));
}

/* The request's messages, preceded for a session by its system prompt and stored
 * history (earlier replies without their reasoning, as the models were trained). */
static int collect_messages(struct gen *g, const struct store_session *sess, struct prompt_msgs *p)
{
    memset(p, 0, sizeof(*p));
    if (sess && store_message_list(g->srv->store, g->user_id, sess->id, &p->history,
                                   &p->n_history) != 0)
        return -1;
    size_t cap = g->q.n_msgs + p->n_history + 2;
    p->m = calloc(cap, sizeof(*p->m));
    p->src = calloc(cap, sizeof(*p->src));
    if (!p->m || !p->src)
        return -1;
    bool req_has_system = g->q.n_msgs && strcmp(g->q.msgs[0].role, "system") == 0;
    if (sess && sess->system_prompt[0] && !req_has_system)
        p->m[p->n++] = (struct tmpl_message){"system", sess->system_prompt, NULL};
    for (size_t i = 0; i < p->n_history; i++) {
        const struct store_message *h = &p->history[i];
        if (h->status == STORE_MSG_ERROR || (h->content[0] == 0 && strcmp(h->role, "assistant") == 0))
            continue;
        p->src[p->n] = h;
        p->m[p->n++] = (struct tmpl_message){h->role, h->content, NULL};
    }
    p->first_new = p->n;
    for (size_t i = 0; i < g->q.n_msgs; i++)
        p->m[p->n++] = (struct tmpl_message){g->q.msgs[i].role, g->q.msgs[i].content, NULL};
    return 0;
}

/* Renders and tokenizes msgs[0..n) (BOS added when the model wants it and the template
 * did not write it); *text (the caller frees it) receives the rendered prompt, replacing
 * what it held. Returns the token count, or -1 with g->error set. */
static int render_tokens(struct gen *g, const struct tmpl_message *m, size_t n, char **text,
                         int32_t **ids, size_t *n_ids)
{
    char err[256];
    const struct srv_model *sm = g->sm;
    free(*text);
    *text = srv_model_render(sm, m, n, true, err, sizeof(err));
    if (!*text) {
        snprintf(g->error, sizeof(g->error), "chat template failed: %.170s", err);
        return -1;
    }
    int rc = srv_model_tokenize_prompt(sm, *text, m, n, ids, n_ids);
    if (rc != 0) {
        snprintf(g->error, sizeof(g->error), "tokenizer failed");
        return -1;
    }
    int32_t bos = tok_bos(sm->tok);
    if (tok_add_bos(sm->tok) && bos >= 0 && (*n_ids == 0 || (*ids)[0] != bos)) {
        int32_t *p = realloc(*ids, (*n_ids + 1) * sizeof(int32_t));
        if (!p)
            return -1;
        memmove(p + 1, p, *n_ids * sizeof(int32_t));
        p[0] = bos;
        *ids = p;
        (*n_ids)++;
    }
    return (int)*n_ids;
}

/* Index just past the turn that starts at `i` (a user message and what follows it up
 * to the next user message). */
static size_t turn_end(const struct prompt_msgs *p, size_t i)
{
    size_t j = i + 1;
    while (j < p->n && strcmp(p->m[j].role, "user") != 0)
        j++;
    return j;
}

/* Rebuilds the fitted prompt from the token ids stored with earlier turns where the model
 * file and template that made them are the ones in use, so the model is fed what it saw
 * (and generated) before instead of a re-tokenization that may differ at message
 * boundaries; the previous turn's KV cache then stays a prefix. Messages stored under
 * another fingerprint are counted as re-tokenized. Keeps the fresh ids when the stored
 * ones do not read back to the prompt text or would not fit. */
static void reuse_stored_ids(struct gen *g, const struct prompt_msgs *p, const char *text,
                             uint32_t budget)
{
    struct srv_segment *segs = calloc(p->n + 1, sizeof(*segs));
    size_t n_segs = 0;
    for (size_t i = 0; segs && i < p->first_new; i++) {
        const struct store_message *h = p->src[i];
        if (!h || !h->n_token_ids)
            continue;
        if (strcmp(h->fingerprint, g->sm->fingerprint) != 0) {
            g->retokenized_messages++;
            continue;
        }
        segs[n_segs++] = (struct srv_segment){h->token_ids, h->n_token_ids};
    }
    int32_t *ids;
    size_t n_ids, tail, used;
    if (n_segs && srv_model_assemble_prompt(g->sm, text, p->m, p->n, segs, n_segs, &ids, &n_ids,
                                          &tail, &used) == 0) {
        if (n_ids <= budget) {
            free(g->prompt);
            g->prompt = ids;
            g->n_prompt = (uint32_t)n_ids;
            g->prompt_tail_from = tail;
        } else {
            free(ids);
        }
    }
    free(segs);
}

/* Fits the prompt into budget tokens. Sessions drop whole old turns, oldest first, down
 * to the target fill so that later turns share a stable prefix; the system prompt and
 * the request's own messages always stay. Returns 0, or 400-style -1 (g->error). */
static int fit_prompt(struct gen *g, struct prompt_msgs *p, uint32_t budget, bool may_drop)
{
    int32_t *ids = NULL;
    size_t n_ids = 0;
    char *text = NULL;
    if (render_tokens(g, p->m, p->n, &text, &ids, &n_ids) < 0) {
        free(text);
        return -1;
    }
    if (n_ids > budget && may_drop) {
        uint32_t target = (uint32_t)((uint64_t)budget * (uint64_t)g->srv->cfg->context_target_fill / 100);
        size_t lo = p->n && strcmp(p->m[0].role, "system") == 0 ? 1 : 0;
        while (n_ids > target && lo < p->first_new) {
            size_t end = turn_end(p, lo);
            if (end > p->first_new)
                end = p->first_new;
            size_t drop = end - lo;
            memmove(&p->m[lo], &p->m[end], (p->n - end) * sizeof(*p->m));
            memmove(&p->src[lo], &p->src[end], (p->n - end) * sizeof(*p->src));
            p->n -= drop;
            p->first_new -= drop;
            g->dropped_messages += (int)drop;
            free(ids);
            ids = NULL;
            if (render_tokens(g, p->m, p->n, &text, &ids, &n_ids) < 0) {
                free(text);
                return -1;
            }
        }
    }
    if (n_ids > budget) {
        free(ids);
        free(text);
        snprintf(g->error, sizeof(g->error),
                 "this model's context is %u tokens; the prompt needs %zu plus %u reserved for the reply",
                 g->n_ctx, n_ids, g->n_ctx - budget);
        return -1;
    }
    g->prompt = ids;
    g->n_prompt = (uint32_t)n_ids;
    g->prompt_tail_from = tok_add_bos(g->sm->tok) && n_ids && ids[0] == tok_bos(g->sm->tok);
    reuse_stored_ids(g, p, text, budget);
    free(text);
    return 0;
}

/* ---- quota ---- */

/* Admits the request against the user's monthly quota: used + reserved by requests in
 * flight + this one's worst case. Shrinks max_tokens to what is left. 0 or -1 (429). */
static int quota_admit(struct gen *g, uint32_t *max_tokens)
{
    struct store_user u;
    if (store_user_get(g->srv->store, g->user_id, &u) != 0 || u.token_quota <= 0)
        return 0;
    int64_t used = 0;
    if (store_usage_month_tokens(g->srv->store, g->user_id, &used) != 0)
        return -1;
    int64_t reserved = srv_quota_reserved(g->srv, g->user_id);
    int64_t left = u.token_quota - used - reserved - g->n_prompt;
    if (left < 1) {
        snprintf(g->error, sizeof(g->error),
                 "monthly token quota of %lld exceeded (used %lld, in flight %lld, this prompt %u)",
                 (long long)u.token_quota, (long long)used, (long long)reserved, g->n_prompt);
        return -1;
    }
    if ((int64_t)*max_tokens > left) {
        *max_tokens = (uint32_t)left;
        g->quota_capped = true;
    }
    g->reserved_tokens = g->n_prompt + *max_tokens;
    srv_quota_reserve(g->srv, g->user_id, g->reserved_tokens);
    return 0;
}

/* ---- turning tokens into text ---- */

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

/* Waits for and processes more tokens, at most max_new of them (streams frame each
 * token on its own). Returns true when the generation is over. */
static bool pump(struct gen *g, int timeout_ms, uint32_t max_new)
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
        return pump(g, 0, max_new); /* tokens still queued: frame them first */
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
        snprintf(g->error, sizeof(g->error), "generation failed: %s", g->job->error);
        g->finish_reason = "error";
        break;
    default:
        g->finish_reason = g->finish_reason ? g->finish_reason : "cancelled";
    }
    return true;
}

/* ---- usage, storage ---- */

static json_t *usage_json(const struct gen *g)
{
    uint32_t cached = g->job ? g->job->n_cached : 0;
    return json_pack("{s:I, s:I, s:I, s:{s:I}, s:{s:I}, s:I, s:I}", "prompt_tokens",
                     (json_int_t)g->n_prompt, "completion_tokens", (json_int_t)g->consumed,
                     "total_tokens", (json_int_t)(g->n_prompt + g->consumed),
                     "prompt_tokens_details", "cached_tokens", (json_int_t)cached,
                     "completion_tokens_details", "reasoning_tokens",
                     (json_int_t)g->n_reasoning_tokens, "prompt_cache_hit_tokens",
                     (json_int_t)cached, "prompt_cache_miss_tokens",
                     (json_int_t)(g->n_prompt - cached));
}

static json_t *context_json(const struct gen *g)
{
    return json_pack("{s:i, s:i, s:I, s:I}", "dropped_messages", g->dropped_messages,
                     "retokenized_messages", g->retokenized_messages, "prompt_tokens",
                     (json_int_t)g->n_prompt, "n_ctx", (json_int_t)g->n_ctx);
}

/* Stores the reply (sessions) and the usage row, once. `status` is the message status.
 * Returns 0, or -1 when the database refused the write (disk full, read-only): the
 * caller must not acknowledge the reply as if it were billed. */
static int store_result(struct gen *g, enum store_msg_status status)
{
    if (g->stored)
        return 0;
    g->stored = true;
    uint32_t cached = g->job ? g->job->n_cached : 0;
    struct store_price fb = {0};
    struct cfg_price cp = cfg_price_for(g->srv->cfg, g->sm->id);
    fb.input_miss = cp.input_miss;
    fb.input_hit = cp.input_hit;
    fb.output = cp.output;
    struct store_usage_in u = {
        .request_id = g->request_id,
        .user_id = g->user_id,
        .session_id = g->session_id[0] ? g->session_id : NULL,
        .model = g->sm->id,
        .prompt_tokens = g->n_prompt,
        .cached_tokens = cached,
        .completion_tokens = g->consumed,
        .reasoning_tokens = g->n_reasoning_tokens,
        .status = status,
        .fallback_price = &fb,
    };
    struct store_usage row;
    int rc;
    if (g->session_id[0]) {
        int32_t *ids = NULL;
        uint32_t n = 0;
        if (g->job) {
            pthread_mutex_lock(&g->job->mu);
            n = g->consumed;
            ids = malloc((n + 1) * sizeof(*ids));
            for (uint32_t i = 0; ids && i < n; i++)
                ids[i] = g->job->out[i].id;
            pthread_mutex_unlock(&g->job->mu);
        }
        struct store_msg_in m = {
            .role = "assistant",
            .content = strbuf_str(&g->content),
            .reasoning = strbuf_str(&g->reasoning),
            .token_ids = ids,
            .n_token_ids = ids ? n : 0,
            .n_tokens = n,
            .fingerprint = g->sm->fingerprint,
            .status = status,
        };
        rc = store_finish_turn(g->srv->store, g->reply_begun ? &g->reply : NULL, &m, &u, NULL, &row);
        free(ids);
    } else {
        rc = store_usage_record(g->srv->store, &u, &row);
    }
    if (rc != 0) {
        log_error("usage store failed request_id=%s error=\"%s\"", g->request_id, store_errmsg());
        return -1;
    }
    srv_meter_add(g->srv, g->user_id, &row);
    return 0;
}

static void gen_free(struct gen *g)
{
    if (!g)
        return;
    if (g->job) {
        atomic_store(&g->job->cancel, true);
        eng_job_release(g->job);
    }
    if (g->reserved_tokens)
        srv_quota_reserve(g->srv, g->user_id, -g->reserved_tokens);
    tok_stream_fini(&g->ts);
    rsn_free(g->rsn);
    stop_free(g->stop);
    strbuf_free(&g->content);
    strbuf_free(&g->reasoning);
    json_decref(g->logprobs);
    free(g->prompt);
    oai_request_fini(&g->q);
    free(g);
}

/* ---- responses ---- */

static json_t *message_json(const struct gen *g)
{
    if (!g->q.chat)
        return NULL;
    json_t *m = json_pack("{s:s, s:s}", "role", "assistant", "content", strbuf_str(&g->content));
    if (g->split_reasoning && g->reasoning.len)
        json_object_set_new(m, "reasoning_content", json_string(strbuf_str(&g->reasoning)));
    return m;
}

/* Why a reply stopped at "length" when the user's quota, not max_tokens, ended it. */
static void add_finish_detail(const struct gen *g, json_t *choice)
{
    if (g->quota_capped && g->finish_reason && strcmp(g->finish_reason, "length") == 0)
        json_object_set_new(choice, "finish_detail",
                            json_string("the monthly token quota is used up; the reply was cut there"));
}

static json_t *full_response(struct gen *g)
{
    json_t *choice = json_pack("{s:i, s:s}", "index", 0, "finish_reason", g->finish_reason);
    add_finish_detail(g, choice);
    if (g->q.chat) {
        json_object_set_new(choice, "message", message_json(g));
    } else {
        json_object_set_new(choice, "text", json_string(strbuf_str(&g->content)));
    }
    json_object_set_new(choice, "logprobs",
                        g->logprobs ? json_pack("{s:O}", "content", g->logprobs) : json_null());
    json_t *j = json_pack("{s:s, s:s, s:I, s:s, s:[o], s:o}", "id", g->id, "object",
                          g->q.chat ? "chat.completion" : "text_completion", "created",
                          (json_int_t)g->created, "model", g->sm->id, "choices", choice, "usage",
                          usage_json(g));
    json_object_set_new(j, "context", context_json(g));
    if (g->session_id[0])
        json_object_set_new(j, "session_id", json_string(g->session_id));
    return j;
}

static int respond_full(struct http_req *r, struct gen *g)
{
    while (!pump(g, 1000, UINT32_MAX))
        ;
    if (store_result(g, g->failed ? STORE_MSG_ERROR : STORE_MSG_COMPLETE) != 0)
        return http_send_error(r, 503, "server_error", NULL, "storage_unavailable",
                               "the reply could not be stored (database unavailable) and was not billed; try again");
    if (g->failed)
        return http_send_error(r, 500, "server_error", NULL, "generation_failed", "%s", g->error);
    json_t *j = full_response(g);
    const char *idem = http_header(r, "Idempotency-Key");
    if (idem && oai_valid_id(idem, STORE_ID_MAX)) {
        char *text = json_dumps(j, JSON_COMPACT);
        if (text)
            store_idem_complete(g->srv->store, g->user_id, idem, text);
        free(text);
    }
    return http_send_json(r, 200, j);
}

/* ---- streaming ---- */

struct stream {
    struct gen *g;
    struct strbuf out;
    size_t off;
    bool sent_role;
    bool done;       /* [DONE] queued */
    double last_ms;
    size_t sent_content, sent_reasoning;
    uint64_t *bytes_out;  /* the request's byte count for its log line; only the reader
                             touches it, and MHD never calls the reader after completion */
};

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

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
    if (g->content.len > s->sent_content) {
        json_t *d = json_pack("{s:s%}", "content", g->content.data + s->sent_content,
                              g->content.len - s->sent_content);
        s->sent_content = g->content.len;
        sse_json(s, chunk(g, d, NULL));
    }
}

static void queue_end(struct stream *s)
{
    struct gen *g = s->g;
    if (store_result(g, g->failed ? STORE_MSG_ERROR : STORE_MSG_COMPLETE) != 0) {
        /* the deltas went out, but the reply is not stored nor billed: say so instead of
         * finishing normally */
        sse_json(s, json_pack("{s:{s:s, s:s, s:n, s:s}}", "error", "message",
                              "the reply could not be stored (database unavailable) and was not billed; try again",
                              "type", "server_error", "param", "code", "storage_unavailable"));
    } else if (g->failed) {
        sse_json(s, json_pack("{s:{s:s, s:s, s:n, s:s}}", "error", "message", g->error, "type",
                              "server_error", "param", "code", "generation_failed"));
    } else {
        json_t *last = chunk(g, json_object(), g->finish_reason);
        json_object_set_new(last, "context", context_json(g));
        add_finish_detail(g, json_array_get(json_object_get(last, "choices"), 0));
        sse_json(s, last);
        if (g->q.include_usage)
            sse_json(s, json_pack("{s:s, s:s, s:I, s:s, s:[], s:o}", "id", g->id, "object",
                                  g->q.chat ? "chat.completion.chunk" : "text_completion",
                                  "created", (json_int_t)g->created, "model", g->sm->id,
                                  "choices", "usage", usage_json(g)));
    }
    strbuf_append(&s->out, "data: [DONE]\n\n", 14);
    s->done = true;
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
            break;
        }
        bool over = pump(g, 200, 1);
        queue_deltas(s);
        if (g->session_id[0] && g->reply_begun && !over)
            store_reply_flush(g->srv->store, &g->reply, strbuf_str(&g->content),
                              strbuf_str(&g->reasoning), false);
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
        atomic_store(&g->job->cancel, true);
        bool finished;
        uint32_t n = eng_wait(g->job, g->consumed, 0, &finished);
        consume(g, n);
        (void)store_result(g, STORE_MSG_PARTIAL); /* logged; the client is gone */
    }
    strbuf_free(&s->out);
    gen_free(g);
    free(s);
}

static int respond_stream(struct http_req *r, struct gen *g)
{
    struct stream *s = calloc(1, sizeof(*s));
    if (!s) {
        gen_free(g);
        return http_send_error(r, 500, "server_error", NULL, NULL, "out of memory");
    }
    s->g = g;
    s->last_ms = now_ms();
    s->bytes_out = &r->bytes_out;
    if (g->session_id[0])
        http_add_header(r, "X-Session-Id", g->session_id);
    return http_send_stream(r, 200, "text/event-stream", stream_read, s, stream_free);
}

/* ---- the handler ---- */

static int fail400(struct http_req *r, const char *param, const char *code, const char *msg)
{
    return http_send_error(r, 400, "invalid_request_error", param, code, "%s", msg);
}

/* Sets up sampling for the job from the request. */
static int setup_job(struct gen *g, uint32_t max_tokens)
{
    struct eng_job *j = eng_job_new();
    struct sample_ctx *c = calloc(1, sizeof(*c));
    if (!j || !c) {
        free(c);
        eng_job_release(j);
        return -1;
    }
    struct sampler_params sp;
    sampler_default_params(&sp);
    sp.temperature = (float)g->q.temperature;
    sp.top_k = (int32_t)g->q.top_k;
    sp.top_p = (float)g->q.top_p;
    sp.min_p = (float)g->q.min_p;
    sp.presence_penalty = (float)g->q.presence_penalty;
    sp.frequency_penalty = (float)g->q.frequency_penalty;
    sp.repeat_penalty = (float)g->q.repetition_penalty;
    sp.seed = g->q.has_seed ? g->q.seed : ((uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)g);
    c->smp = sampler_new(&sp, mdl_n_vocab(g->sm->mdl));
    c->bias = g->q.n_bias ? malloc(g->q.n_bias * sizeof(*c->bias)) : NULL;
    if (!c->smp || (g->q.n_bias && !c->bias)) {
        sampler_free(c->smp);
        free(c);
        eng_job_release(j);
        return -1;
    }
    if (g->q.n_bias)
        memcpy(c->bias, g->q.bias, g->q.n_bias * sizeof(*c->bias));
    c->n_bias = g->q.n_bias;
    c->budget = g->split_reasoning ? g->q.max_reasoning_tokens : -1;
    c->think_open = tok_find(g->sm->tok, "<think>");
    c->think_close = tok_find(g->sm->tok, "</think>");
    c->thinking = g->sm->thinks;
    /* the penalties look at the end of the prompt too */
    for (uint32_t i = g->n_prompt > (uint32_t)sp.penalty_last_n ? g->n_prompt - (uint32_t)sp.penalty_last_n : 0;
         i < g->n_prompt; i++)
        sampler_accept(c->smp, g->prompt[i]);
    c->tok = g->sm->tok;
    c->top_n = g->q.logprobs ? (int)(g->q.top_logprobs > 0 ? g->q.top_logprobs : 1) : 0;
    j->prompt = g->prompt;
    g->prompt = NULL;
    j->n_prompt = g->n_prompt;
    j->max_tokens = max_tokens;
    j->user_id = g->user_id;
    snprintf(j->cache_key, sizeof(j->cache_key), "%s", g->session_id);
    j->sample = sample_hook;
    j->is_eog = g->q.ignore_eos ? NULL : eog_hook;
    j->hook_ctx = c;
    j->hook_free = sample_free;
    g->job = j;
    return 0;
}

/* Loads the session named by the body or X-Session-Id; sends 404 when it is not the
 * caller's. Returns 0 (found or none), -1 (response sent). */
static int load_session(struct http_req *r, struct gen *g, struct store_session *sess, bool *has)
{
    const char *id = g->q.session_id ? g->q.session_id : http_header(r, "X-Session-Id");
    *has = false;
    if (!id)
        return 0;
    if (!oai_valid_id(id, STORE_ID_MAX)) {
        http_send_error(r, 404, "invalid_request_error", "session_id", "session_not_found",
                        "session not found");
        return -1;
    }
    int rc = store_session_get(g->srv->store, g->user_id, id, sess);
    if (rc != 0) {
        if (rc == STORE_ENOTFOUND)
            http_send_error(r, 404, "invalid_request_error", "session_id", "session_not_found",
                            "session '%s' not found", id);
        else
            api_store_error(r, rc, "session");
        return -1;
    }
    snprintf(g->session_id, sizeof(g->session_id), "%s", id);
    *has = true;
    return 0;
}

/* Appends the request's new messages to the session (committed before inference). The
 * last one keeps the prompt ids that follow the stored ones reused (its own text and the
 * template around it), so the next turn can feed them again unchanged. */
static int save_new_messages(struct gen *g)
{
    for (size_t i = 0; i < g->q.n_msgs; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        const char *c = g->q.msgs[i].content;
        /* the message's own token count, for the session's token meter */
        if (tok_encode(g->sm->tok, c, strlen(c), false, false, &ids, &n) != 0)
            n = 0;
        free(ids);
        bool last = i + 1 == g->q.n_msgs;
        struct store_msg_in m = {.role = g->q.msgs[i].role, .content = c,
                                 .token_ids = last ? g->job->prompt + g->prompt_tail_from : NULL,
                                 .n_token_ids = last ? g->n_prompt - g->prompt_tail_from : 0,
                                 .n_tokens = (int64_t)n, .fingerprint = g->sm->fingerprint,
                                 .status = STORE_MSG_COMPLETE};
        int rc = store_message_append(g->srv->store, g->user_id, g->session_id, &m, NULL, NULL);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* An Idempotency-Key seen before answers with the stored response (or 409 while the
 * first request still runs). Returns 1 when a response was sent. */
static int idempotency(struct http_req *r, struct gen *g)
{
    const char *key = http_header(r, "Idempotency-Key");
    if (!key)
        return 0;
    if (!oai_valid_id(key, STORE_ID_MAX)) {
        fail400(r, "Idempotency-Key", "invalid_value", "Idempotency-Key must be 1-64 characters of [A-Za-z0-9._:-]");
        return 1;
    }
    if (store_idem_begin(g->srv->store, g->user_id, key, g->request_id) == 0)
        return 0;
    char rid[STORE_ID_MAX + 1];
    char *resp = NULL;
    if (store_idem_get(g->srv->store, g->user_id, key, rid, &resp) != 0 || !resp) {
        http_send_error(r, 409, "invalid_request_error", NULL, "idempotency_in_progress",
                        "a request with this Idempotency-Key is still running or did not complete (request %s)", rid);
        return 1;
    }
    http_add_header(r, "Idempotent-Replayed", "true");
    http_send_bytes(r, 200, "application/json", resp, strlen(resp), true);
    free(resp);
    return 1;
}

/* Parses, picks the model, creates the gen. Sends the error and returns NULL on failure. */
static struct gen *gen_new(struct http_req *r, bool chat)
{
    json_t *body = http_body_json(r);
    if (!body)
        return NULL;
    struct gen *g = calloc(1, sizeof(*g));
    struct oai_error e;
    oai_request_init(&g->q);
    if (oai_parse(body, chat, &g->q, &e) != 0) {
        http_send_error(r, e.status, "invalid_request_error", e.param[0] ? e.param : NULL, e.code,
                        "%s", e.message);
        json_decref(body);
        gen_free(g);
        return NULL;
    }
    json_decref(body);
    g->srv = r->srv;
    g->sm = g->q.model ? srv_find_model(r->srv, g->q.model) : &r->srv->models[0];
    if (!g->sm) {
        http_send_error(r, 404, "invalid_request_error", "model", "model_not_found",
                        "model '%s' does not exist", g->q.model);
        gen_free(g);
        return NULL;
    }
    for (size_t i = 0; i < g->q.n_bias; i++)
        if (g->q.bias[i].id >= (int64_t)mdl_n_vocab(g->sm->mdl)) {
            http_send_error(r, 400, "invalid_request_error", "logit_bias", "invalid_value",
                            "logit_bias token id %lld is outside the vocabulary (%u tokens)",
                            (long long)g->q.bias[i].id, mdl_n_vocab(g->sm->mdl));
            gen_free(g);
            return NULL;
        }
    g->user_id = r->user_id;
    g->created = time(NULL);
    g->n_ctx = eng_n_ctx(g->sm->eng);
    snprintf(g->request_id, sizeof(g->request_id), "%s", r->request_id);
    snprintf(g->id, sizeof(g->id), "%s%s", chat ? "chatcmpl-" : "cmpl-", r->request_id + 4);
    g->split_reasoning = chat && g->q.reasoning_split;
    tok_stream_init(&g->ts, g->sm->tok, false);
    g->rsn = rsn_new(g->sm->thinks);
    g->stop = stop_new((const char *const *)g->q.stop, g->q.n_stop);
    if (!g->rsn || !g->stop) {
        http_send_error(r, 500, "server_error", NULL, NULL, "out of memory");
        gen_free(g);
        return NULL;
    }
    return g;
}

/* Builds the prompt into g (chat: template + session history; legacy: raw prompt).
 * Returns 0, or -1 with the response sent. */
static int build_prompt(struct http_req *r, struct gen *g, uint32_t *max_tokens)
{
    uint32_t want = g->q.max_tokens > 0 ? (uint32_t)g->q.max_tokens
                                        : (uint32_t)g->srv->cfg->default_max_tokens;
    bool explicit_max = g->q.max_tokens > 0;
    if (explicit_max && want >= g->n_ctx) {
        http_send_error(r, 400, "invalid_request_error", "max_tokens", "context_length_exceeded",
                        "max_tokens %u is not below this model's context length of %u", want, g->n_ctx);
        return -1;
    }
    /* Reserve room for the reply: all of an explicit max_tokens, else a quarter of the
     * window at most (the reply may then stop early with finish_reason length). */
    uint32_t reserve = explicit_max ? want : (want < g->n_ctx / 4 ? want : g->n_ctx / 4);
    if (reserve < 1)
        reserve = 1;
    if (!g->q.chat) {
        int32_t *ids;
        size_t n;
        if (tok_encode(g->sm->tok, g->q.prompt, strlen(g->q.prompt), tok_add_bos(g->sm->tok), false,
                       &ids, &n) != 0 || n == 0) {
            free(n == 0 ? ids : NULL);
            fail400(r, "prompt", "invalid_value", "prompt is empty after tokenization");
            return -1;
        }
        g->prompt = ids;
        g->n_prompt = (uint32_t)n;
        if (g->n_prompt + reserve > g->n_ctx) {
            http_send_error(r, 400, "invalid_request_error", "prompt", "context_length_exceeded",
                            "this model's context is %u tokens; the prompt needs %u plus %u for the reply",
                            g->n_ctx, g->n_prompt, reserve);
            return -1;
        }
    } else {
        struct store_session sess = {0};
        bool has;
        if (load_session(r, g, &sess, &has) != 0)
            return -1;
        struct prompt_msgs p;
        int rc = collect_messages(g, has ? &sess : NULL, &p);
        if (rc != 0) {
            prompt_msgs_free(&p);
            store_session_fini(&sess);
            api_store_error(r, STORE_EBUSY, "session");
            return -1;
        }
        rc = fit_prompt(g, &p, g->n_ctx - reserve, has);
        prompt_msgs_free(&p); /* the messages borrow from sess and the history */
        store_session_fini(&sess);
        if (rc != 0) {
            http_send_error(r, 400, "invalid_request_error", "messages",
                            strstr(g->error, "context") ? "context_length_exceeded" : "invalid_value",
                            "%s", g->error);
            return -1;
        }
    }
    uint32_t room = g->n_ctx - g->n_prompt;
    *max_tokens = want < room ? want : room;
    return 0;
}

int gen_handle(struct http_req *r, bool chat)
{
    struct gen *g = gen_new(r, chat);
    if (!g)
        return 0;
    uint32_t max_tokens;
    if (build_prompt(r, g, &max_tokens) != 0 || idempotency(r, g)) {
        gen_free(g);
        return 0;
    }
    if (quota_admit(g, &max_tokens) != 0) {
        http_add_header(r, "Retry-After", "3600");
        http_send_error(r, 429, "insufficient_quota", NULL, "insufficient_quota", "%s", g->error);
        gen_free(g);
        return 0;
    }
    if (setup_job(g, max_tokens) != 0) {
        gen_free(g);
        return http_send_error(r, 500, "server_error", NULL, NULL, "out of memory");
    }
    if (g->session_id[0] && save_new_messages(g) != 0) {
        gen_free(g);
        return http_send_error(r, 503, "server_error", NULL, "storage_unavailable",
                               "could not store the message: %s", store_errmsg());
    }
    int rc = eng_submit(g->sm->eng, g->job);
    if (rc != 0) {
        http_add_header(r, "Retry-After", "2");
        if (rc == -1)
            http_send_error(r, 429, "requests", NULL, "server_busy",
                            "all generation slots are busy and the queue is full; retry shortly");
        else
            http_send_error(r, 400, "invalid_request_error", "messages", "context_length_exceeded",
                            "the prompt does not fit a sequence slot");
        gen_free(g);
        return 0;
    }
    if (g->session_id[0])
        g->reply_begun = store_reply_begin(g->srv->store, g->user_id, g->session_id, &g->reply) == 0;
    char num[16];
    snprintf(num, sizeof(num), "%d", g->dropped_messages);
    http_add_header(r, "X-Context-Dropped-Messages", num);
    if (g->retokenized_messages) {
        snprintf(num, sizeof(num), "%d", g->retokenized_messages);
        http_add_header(r, "X-Context-Retokenized-Messages", num);
    }
    if (g->q.stream)
        return respond_stream(r, g);
    rc = respond_full(r, g);
    gen_free(g);
    return rc;
}

/* POST /v1/tokens/count (quote=false) and /v1/usage/quote (quote=true): the prompt a
 * chat request would send now, with its token count; the quote adds the cache split
 * given the caller's resident KV and the price. Nothing is generated or stored. */
int gen_handle_count(struct http_req *r, bool quote)
{
    struct gen *g = gen_new(r, true);
    if (!g)
        return 0;
    uint32_t max_tokens;
    if (build_prompt(r, g, &max_tokens) != 0) {
        gen_free(g);
        return 0;
    }
    json_t *j = json_pack("{s:s, s:s, s:I, s:o}", "object", quote ? "usage.quote" : "tokens.count",
                          "model", g->sm->id, "prompt_tokens", (json_int_t)g->n_prompt, "context",
                          context_json(g));
    if (quote) {
        uint32_t hit = eng_peek_cached(g->sm->eng, g->user_id, g->session_id, g->prompt, g->n_prompt);
        struct store_price fb = {0}, price;
        struct cfg_price cp = cfg_price_for(g->srv->cfg, g->sm->id);
        fb.input_miss = cp.input_miss;
        fb.input_hit = cp.input_hit;
        fb.output = cp.output;
        if (store_price_current(g->srv->store, g->sm->id, &fb, &price) != 0)
            price = fb;
        int64_t in_cost = 0, max_cost = 0;
        store_cost_micros(&price, g->n_prompt, hit, 0, &in_cost);
        store_cost_micros(&price, g->n_prompt, hit, max_tokens, &max_cost);
        json_object_set_new(j, "prompt_cache_hit_tokens", json_integer(hit));
        json_object_set_new(j, "prompt_cache_miss_tokens", json_integer(g->n_prompt - hit));
        json_object_set_new(j, "max_completion_tokens", json_integer(max_tokens));
        json_object_set_new(j, "price", json_pack("{s:I, s:I, s:I, s:s}", "input_miss",
                                                  (json_int_t)price.input_miss, "input_hit",
                                                  (json_int_t)price.input_hit, "output",
                                                  (json_int_t)price.output, "currency",
                                                  g->srv->cfg->currency));
        json_object_set_new(j, "input_cost_micros", json_integer(in_cost));
        json_object_set_new(j, "max_cost_micros", json_integer(max_cost));
    }
    gen_free(g);
    return http_send_json(r, 200, j);
}

/* POST /apply-template: the rendered prompt for messages and its token count. */
int gen_handle_apply_template(struct http_req *r)
{
    json_t *body = http_body_json(r);
    if (!body)
        return 0;
    const struct srv_model *sm = api_body_model(r, body);
    struct oai_request q;
    struct oai_error e;
    oai_request_init(&q);
    if (!sm) {
        json_decref(body);
        return 0;
    }
    if (oai_parse_messages(json_object_get(body, "messages"), &q, &e) != 0) {
        json_decref(body);
        oai_request_fini(&q);
        return http_send_error(r, 400, "invalid_request_error", e.param, e.code, "%s", e.message);
    }
    json_t *agp = json_object_get(body, "add_generation_prompt");
    json_decref(body);
    struct tmpl_message *m = calloc(q.n_msgs, sizeof(*m));
    for (size_t i = 0; m && i < q.n_msgs; i++)
        m[i] = (struct tmpl_message){q.msgs[i].role, q.msgs[i].content, NULL};
    char err[256];
    char *text = m ? srv_model_render(sm, m, q.n_msgs, !agp || json_is_true(agp), err, sizeof(err)) : NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc;
    if (!text)
        rc = http_send_error(r, 400, "invalid_request_error", "messages", "template_error",
                             "the chat template failed: %s", m ? err : "out of memory");
    else if (srv_model_tokenize_prompt(sm, text, m, q.n_msgs, &ids, &n) != 0)
        rc = http_send_error(r, 500, "server_error", NULL, NULL, "tokenizer failed");
    else
        rc = http_send_json(r, 200, json_pack("{s:s, s:I, s:s}", "prompt", text, "prompt_tokens",
                                              (json_int_t)n, "template", sm->template_name));
    free(ids);
    free(text);
    free(m);
    oai_request_fini(&q);
    return rc;
}

int api_chat(struct http_req *r)
{
    return gen_handle(r, true);
}

int api_completions(struct http_req *r)
{
    return gen_handle(r, false);
}

int api_tokens_count(struct http_req *r)
{
    return gen_handle_count(r, false);
}

int api_usage_quote(struct http_req *r)
{
    return gen_handle_count(r, true);
}

int api_apply_template(struct http_req *r)
{
    return gen_handle_apply_template(r);
}
