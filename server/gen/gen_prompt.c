/* gen_prompt.c - building the prompt: the session's system prompt and stored history,
 * then the request's messages, rendered with the model's chat template and turned into
 * token ids once: from the ids stored with earlier turns where they still apply
 * (tok_assemble_prompt), else by tokenizing the text. A session whose history outgrows
 * the context drops whole old turns, oldest first, down to the target fill, so later
 * turns keep a stable prefix; the system prompt and the request's own messages stay.
 * Which turns stay is decided from the stored token counts before any text is loaded,
 * so a long session costs a request O(messages) plus a window of the context's size.
 *
 * Runs on the request's connection thread. */
#include "gen/gen.h"

#include <stdlib.h>
#include <string.h>

struct prompt_msgs {
    struct tmpl_message *m;
    const struct store_message **src; /* the stored message behind m[i], or NULL */
    size_t n;
    size_t first_new; /* index of the request's first message */
    struct store_message *history;
    size_t n_history;
    char **owned;     /* strings the tool views allocated */
    size_t n_owned;
};

static void prompt_msgs_free(struct prompt_msgs *p)
{
    for (size_t i = 0; i < p->n_owned; i++)
        free(p->owned[i]);
    free(p->owned);
    free(p->m);
    free(p->src);
    store_messages_free(p->history, p->n_history);
    memset(p, 0, sizeof(*p));
}

/* The session named by the body or the header, into sess (g->session_id set). */
static int load_session(struct gen *g, const char *header, struct store_session *sess,
                        bool *has)
{
    const char *id = g->q.session_id ? g->q.session_id : header;
    *has = false;
    if (!id)
        return 0;
    if (!oai_valid_id(id, STORE_ID_MAX))
        return gen_fail(g, SRV_MOD_SERVER, SRV_ENOSESSION, "session_id", "session not found");
    int rc = store_session_get(g->srv->store, g->user_id, id, sess);
    if (rc == STORE_ENOTFOUND)
        return gen_fail(g, SRV_MOD_SERVER, SRV_ENOSESSION, "session_id", "session '%s' not found", id);
    if (rc != 0)
        return gen_fail(g, SRV_MOD_STORE, rc, NULL, "the session could not be read: %s",
                        store_strerror(rc));
    snprintf(g->session_id, sizeof(g->session_id), "%s", id);
    *has = true;
    return 0;
}

/* The generic tool format describes the tools in the system message (a new one first
 * when the conversation has none). */
static int add_tool_system(struct gen *g, struct prompt_msgs *p)
{
    const char *tools = gen_tools_system_text(g);
    if (!tools)
        return 0;
    struct strbuf b = {0};
    bool has = p->n && strcmp(p->m[0].role, "system") == 0;
    if (has && p->m[0].content && p->m[0].content[0]) {
        strbuf_append(&b, p->m[0].content, strlen(p->m[0].content));
        strbuf_append(&b, "\n\n", 2);
    }
    strbuf_append(&b, tools, strlen(tools));
    if (!b.data)
        return gen_fail(g, SRV_MOD_SERVER, SRV_EINTERNAL, NULL, "out of memory");
    p->owned[p->n_owned++] = b.data;
    if (!has) {
        memmove(&p->m[1], &p->m[0], p->n * sizeof(*p->m));
        memmove(&p->src[1], &p->src[0], p->n * sizeof(*p->src));
        p->src[0] = NULL;
        p->n++;
        p->first_new++;
    }
    p->m[0] = (struct tmpl_message){.role = "system", .content = b.data};
    return 0;
}

/* Whether a stored message takes part in prompts: error replies and empty replies do
 * not. */
static bool in_prompt(const char *role, int64_t content_bytes, enum store_msg_status status)
{
    return status != STORE_MSG_ERROR && !(content_bytes == 0 && strcmp(role, "assistant") == 0);
}

/* The request's messages, preceded for a session by its system prompt and its stored
 * history from from_seq on (earlier replies without their reasoning, as the models were
 * trained). */
static int collect_messages(struct gen *g, const struct store_session *sess, int64_t from_seq,
                            struct prompt_msgs *p)
{
    memset(p, 0, sizeof(*p));
    int rc = sess ? store_message_list_from(g->srv->store, g->user_id, sess->id, from_seq,
                                            &p->history, &p->n_history)
                  : 0;
    if (rc != 0)
        return gen_fail(g, SRV_MOD_STORE, rc, NULL, "the session's history could not be read: %s",
                        store_strerror(rc));
    atomic_fetch_add(&g->srv->n_history_loaded, p->n_history);
    size_t cap = g->q.n_msgs + p->n_history + 2;
    p->m = calloc(cap, sizeof(*p->m));
    p->src = calloc(cap, sizeof(*p->src));
    p->owned = calloc(2 * cap + 1, sizeof(*p->owned));
    if (!p->m || !p->src || !p->owned)
        return gen_fail(g, SRV_MOD_SERVER, SRV_EINTERNAL, NULL, "out of memory");
    bool req_has_system = g->q.n_msgs && strcmp(g->q.msgs[0].role, "system") == 0;
    if (sess && sess->system_prompt[0] && !req_has_system)
        p->m[p->n++] = (struct tmpl_message){.role = "system", .content = sess->system_prompt};
    for (size_t i = 0; i < p->n_history; i++) {
        const struct store_message *h = &p->history[i];
        if (!in_prompt(h->role, (int64_t)strlen(h->content), h->status))
            continue;
        p->src[p->n] = h;
        if (gen_tools_view(g, h->role, h->content, h->tool_calls, h->tool_call_id, NULL,
                           &p->m[p->n++], p->owned, &p->n_owned) != 0)
            return gen_fail(g, SRV_MOD_SERVER, SRV_EINTERNAL, NULL, "out of memory");
    }
    p->first_new = p->n;
    for (size_t i = 0; i < g->q.n_msgs; i++) {
        const struct oai_message *q = &g->q.msgs[i];
        if (gen_tools_view(g, q->role, q->content, q->tool_calls, q->tool_call_id, q->name,
                           &p->m[p->n++], p->owned, &p->n_owned) != 0)
            return gen_fail(g, SRV_MOD_SERVER, SRV_EINTERNAL, NULL, "out of memory");
    }
    return add_tool_system(g, p);
}

/* The ids of a rendered prompt. Where the model file and template that made the
 * stored ids of earlier turns are the ones in use, the prompt is rebuilt from them, so
 * the model is fed what it saw (and generated) before instead of a re-tokenization that
 * may differ at message boundaries, and the previous turn's KV cache stays a prefix.
 * Messages stored under another fingerprint are counted as re-tokenized. Otherwise, or
 * when the stored ids do not read back to the text, the text is tokenized (BOS added
 * when the model wants it and the template did not write it). */
static int prompt_ids(struct gen *g, const struct prompt_msgs *p, const struct srv_prompt *pr,
                      int32_t **ids, size_t *n_ids, size_t *tail)
{
    const struct srv_model *sm = g->sm;
    struct tok_segment *segs = calloc(p->n + 1, sizeof(*segs));
    if (!segs)
        return gen_fail(g, SRV_MOD_SERVER, SRV_EINTERNAL, NULL, "out of memory");
    size_t n_segs = 0, used;
    g->retokenized_messages = 0;
    for (size_t i = 0; i < p->first_new; i++) {
        const struct store_message *h = p->src[i];
        if (!h || !h->n_token_ids)
            continue;
        if (strcmp(h->fingerprint, sm->fingerprint) != 0)
            g->retokenized_messages++;
        else
            segs[n_segs++] = (struct tok_segment){h->token_ids, h->n_token_ids};
    }
    int rc = -1;
    if (n_segs)
        rc = tok_assemble_prompt(sm->tok, pr->text, pr->plain, pr->n_plain, segs, n_segs, ids,
                                 n_ids, tail, &used);
    if (rc != 0) {
        rc = srv_model_tokenize(sm, pr, ids, n_ids);
        int32_t bos = tok_bos(sm->tok);
        bool add = rc == 0 && tok_add_bos(sm->tok) && bos >= 0 && (*n_ids == 0 || (*ids)[0] != bos);
        int32_t *more = add ? realloc(*ids, (*n_ids + 1) * sizeof(int32_t)) : NULL;
        if (add && !more)
            rc = TOK_ENOMEM;
        if (more) {
            memmove(more + 1, more, *n_ids * sizeof(int32_t));
            more[0] = bos;
            *ids = more;
            (*n_ids)++;
        }
        *tail = rc == 0 && *n_ids && (*ids)[0] == bos && tok_add_bos(sm->tok);
    }
    free(segs);
    if (rc != 0) {
        free(rc == TOK_ENOMEM ? *ids : NULL);
        return gen_fail(g, SRV_MOD_TOKENIZER, rc, NULL, "the prompt could not be tokenized");
    }
    return 0;
}

/* Renders msgs and turns them into ids (the caller frees *ids). */
static int render_ids(struct gen *g, const struct prompt_msgs *p, int32_t **ids, size_t *n_ids,
                      size_t *tail)
{
    char err[256];
    struct srv_prompt pr;
    atomic_fetch_add(&g->srv->n_prompt_renders, 1);
    int rc = srv_model_render(g->sm, p->m, p->n, gen_tools_template_json(g), true, &pr, err,
                              sizeof(err));
    if (rc != 0)
        return gen_fail(g, SRV_MOD_TEMPLATE, rc, "messages", "chat template failed: %.170s", err);
    rc = prompt_ids(g, p, &pr, ids, n_ids, tail);
    srv_prompt_fini(&pr);
    return rc;
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

/* Drops the oldest whole turn after the system prompt. Returns false when none is left. */
static bool drop_turn(struct gen *g, struct prompt_msgs *p)
{
    size_t lo = p->n && strcmp(p->m[0].role, "system") == 0 ? 1 : 0;
    if (lo >= p->first_new)
        return false;
    size_t end = turn_end(p, lo);
    if (end > p->first_new)
        end = p->first_new;
    size_t drop = end - lo;
    memmove(&p->m[lo], &p->m[end], (p->n - end) * sizeof(*p->m));
    memmove(&p->src[lo], &p->src[end], (p->n - end) * sizeof(*p->src));
    p->n -= drop;
    p->first_new -= drop;
    g->dropped_messages += (int)drop;
    return true;
}

/* What a stored message costs in a prompt: its stored token count (a user message's
 * are the ids it was fed with, template included), else a guess from its length. */
static int64_t cost_of(const struct store_msg_size *m)
{
    return m->n_tokens > 0 ? m->n_tokens : m->content_bytes / 3 + 4;
}

/* Which stored messages a session's prompt keeps, decided from the stored sizes alone
 * (no text is loaded): the window of whole turns the session has had at every request,
 * replayed in order. Old turns leave the window in one block, down to `target`, whenever
 * it outgrows `budget`; so from one request to the next the window keeps its start (and
 * the KV cache its prefix) until the prompt outgrows the budget again. `extra` is what
 * the request adds (its messages, the system prompt). Sets *from_seq and the number of
 * messages left out. O(messages); a session of any length loads only its window. */
static int choose_window(struct gen *g, const struct store_session *sess, int64_t extra,
                         uint32_t budget, uint32_t target, int64_t *from_seq)
{
    struct store_msg_size *m;
    size_t n;
    int rc = store_message_sizes(g->srv->store, g->user_id, sess->id, &m, &n);
    if (rc != 0)
        return gen_fail(g, SRV_MOD_STORE, rc, NULL, "the session's history could not be read: %s",
                        store_strerror(rc));
    size_t start = 0; /* index of the window's first message */
    int64_t total = 0;
    for (size_t i = 0; i <= n; i++) {
        bool request = i == n || strcmp(m[i].role, "user") == 0; /* a request was made here */
        if (request && total + (i == n ? extra : 0) > budget) {
            int64_t goal = (int64_t)target - (i == n ? extra : 0);
            while (start < i && total > goal) { /* drop whole turns from the start */
                size_t j = start + 1;
                while (j < i && strcmp(m[j].role, "user") != 0)
                    j++;
                for (size_t k = start; k < j; k++)
                    total -= in_prompt(m[k].role, m[k].content_bytes, m[k].status) ? cost_of(&m[k]) : 0;
                start = j;
            }
        }
        if (i < n && in_prompt(m[i].role, m[i].content_bytes, m[i].status))
            total += cost_of(&m[i]);
    }
    for (size_t k = 0; k < start; k++)
        g->dropped_messages += in_prompt(m[k].role, m[k].content_bytes, m[k].status);
    *from_seq = start < n ? m[start].seq : (n ? m[n - 1].seq + 1 : 0);
    free(m);
    return 0;
}

/* What the request adds to a session's prompt, before it is tokenized: its messages and
 * the session's system prompt, guessed from their length. */
static int64_t request_cost(const struct gen *g, const struct store_session *sess)
{
    int64_t bytes = (int64_t)strlen(sess->system_prompt);
    for (size_t i = 0; i < g->q.n_msgs; i++)
        bytes += (int64_t)strlen(g->q.msgs[i].content) + 16;
    return bytes / 3 + 8;
}

/* Fits the prompt into budget tokens (sessions may drop old turns). */
static int fit_prompt(struct gen *g, struct prompt_msgs *p, uint32_t budget, uint32_t target,
                      bool may_drop)
{
    int32_t *ids = NULL;
    size_t n_ids = 0, tail = 0;
    int rc = render_ids(g, p, &ids, &n_ids, &tail);
    /* the window was chosen from stored sizes; when the text holds more tokens than they
     * said, whole turns go until the prompt fits (each render is of a window's size) */
    if (rc == 0 && n_ids > budget && may_drop) {
        while (rc == 0 && n_ids > target && drop_turn(g, p)) {
            free(ids);
            ids = NULL;
            rc = render_ids(g, p, &ids, &n_ids, &tail);
        }
    }
    if (rc == 0 && n_ids > budget)
        rc = gen_fail(g, SRV_MOD_SERVER, SRV_ECONTEXT, "messages",
                      "this model's context is %u tokens; the prompt needs %zu plus %u reserved for the reply",
                      g->n_ctx, n_ids, g->n_ctx - budget);
    if (rc != 0) {
        free(ids);
        return rc;
    }
    g->prompt = ids;
    g->n_prompt = (uint32_t)n_ids;
    g->prompt_tail_from = tail;
    return 0;
}

/* Legacy completions: the prompt text as it is. */
static int raw_prompt(struct gen *g, uint32_t reserve)
{
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = tok_encode(g->sm->tok, g->q.prompt, strlen(g->q.prompt), tok_add_bos(g->sm->tok),
                        false, &ids, &n);
    if (rc != 0)
        return gen_fail(g, SRV_MOD_TOKENIZER, rc, "prompt", "the prompt could not be tokenized");
    if (n == 0) {
        free(ids);
        return gen_fail(g, SRV_MOD_SERVER, SRV_EINVAL, "prompt", "prompt is empty after tokenization");
    }
    g->prompt = ids;
    g->n_prompt = (uint32_t)n;
    if (g->n_prompt + reserve > g->n_ctx)
        return gen_fail(g, SRV_MOD_SERVER, SRV_ECONTEXT, "prompt",
                        "this model's context is %u tokens; the prompt needs %u plus %u for the reply",
                        g->n_ctx, g->n_prompt, reserve);
    return 0;
}

int gen_build_prompt(struct gen *g, const char *session_header)
{
    uint32_t want = g->q.max_tokens > 0 ? (uint32_t)g->q.max_tokens
                                        : (uint32_t)g->srv->cfg->default_max_tokens;
    bool explicit_max = g->q.max_tokens > 0;
    if (explicit_max && want >= g->n_ctx)
        return gen_fail(g, SRV_MOD_SERVER, SRV_ECONTEXT, "max_tokens",
                        "max_tokens %u is not below this model's context length of %u", want,
                        g->n_ctx);
    /* Reserve room for the reply: all of an explicit max_tokens, else a quarter of the
     * window at most (the reply may then stop early with finish_reason length). */
    uint32_t reserve = explicit_max ? want : (want < g->n_ctx / 4 ? want : g->n_ctx / 4);
    if (reserve < 1)
        reserve = 1;
    int rc;
    if (!g->q.chat) {
        rc = raw_prompt(g, reserve);
    } else {
        struct store_session sess = {0};
        struct prompt_msgs p = {0};
        bool has = false;
        int64_t from_seq = 0;
        uint32_t budget = g->n_ctx - reserve;
        uint32_t target =
            (uint32_t)((uint64_t)budget * (uint64_t)g->srv->cfg->context_target_fill / 100);
        rc = load_session(g, session_header, &sess, &has);
        if (rc == 0 && has)
            rc = choose_window(g, &sess, request_cost(g, &sess), budget, target, &from_seq);
        rc = rc ? rc : collect_messages(g, has ? &sess : NULL, from_seq, &p);
        rc = rc ? rc : fit_prompt(g, &p, budget, target, has);
        prompt_msgs_free(&p); /* the messages borrow from sess and the history */
        store_session_fini(&sess);
    }
    if (rc != 0)
        return rc;
    uint32_t room = g->n_ctx - g->n_prompt;
    g->max_tokens = want < room ? want : room;
    return 0;
}
