/* reasoning.c - incremental <think>...</think> splitter (see runtime.h).
 *
 * State machine over a small hold buffer: text that cannot be classified yet (a
 * possible partial tag, or whitespace that trimming may drop) stays in `hold`; every
 * feed appends and then classifies as much of `hold` as it can. The buffer only ever
 * holds whitespace plus at most one partial tag, so it stays tiny; content after the
 * thought passes straight through.
 *
 *   START      before anything visible: whitespace is held; "<think>" opens a thought,
 *              anything else makes the whole reply content
 *   R_START    just inside a thought: leading whitespace is dropped
 *   REASONING  until "</think>"; trailing whitespace is held (dropped at the tag)
 *   C_START    just after the thought: leading whitespace is dropped
 *   CONTENT    everything else is content
 */
#include "runtime.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum rsn_state { ST_START, ST_R_START, ST_REASONING, ST_C_START, ST_CONTENT };

struct rsn_splitter {
    enum rsn_state state;
    char *hold;
    size_t n;
    size_t cap;
};

static const char open_tag[] = RSN_OPEN_TAG;
static const char close_tag[] = RSN_CLOSE_TAG;

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

struct rsn_splitter *rsn_new(bool start_in_reasoning)
{
    struct rsn_splitter *s = calloc(1, sizeof(*s));
    if (s)
        s->state = start_in_reasoning ? ST_R_START : ST_START;
    return s;
}

void rsn_free(struct rsn_splitter *s)
{
    if (!s)
        return;
    free(s->hold);
    free(s);
}

static void drop(struct rsn_splitter *s, size_t k)
{
    if (k == 0)
        return;
    memmove(s->hold, s->hold + k, s->n - k);
    s->n -= k;
}

static void emit_drop(struct rsn_splitter *s, enum rsn_kind kind, size_t k, rsn_emit_fn emit, void *user)
{
    if (k > 0)
        emit(user, kind, s->hold, k);
    drop(s, k);
}

static size_t skip_ws(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && is_ws(p[i]))
        i++;
    return i;
}

/* Length of the longest suffix of p[0..n) that is a proper prefix of tag. */
static size_t partial_tag(const char *p, size_t n, const char *tag)
{
    size_t tl = strlen(tag);
    for (size_t k = tl - 1; k > 0; k--)
        if (k <= n && memcmp(p + n - k, tag, k) == 0)
            return k;
    return 0;
}

/* Classifies as much of hold as possible; `final` at the end of the stream. */
static void process(struct rsn_splitter *s, bool final, rsn_emit_fn emit, void *user)
{
    for (;;) {
        switch (s->state) {
        case ST_START: {
            size_t i = skip_ws(s->hold, s->n);
            size_t rest = s->n - i;
            size_t ol = sizeof(open_tag) - 1;
            if (rest == 0) {
                if (final)
                    emit_drop(s, RSN_CONTENT, s->n, emit, user);
                return;
            }
            if (rest >= ol && memcmp(s->hold + i, open_tag, ol) == 0) {
                drop(s, i + ol);
                s->state = ST_R_START;
                continue;
            }
            if (rest < ol && memcmp(s->hold + i, open_tag, rest) == 0 && !final)
                return; /* maybe "<th" of "<think>" */
            s->state = ST_CONTENT;
            continue;
        }
        case ST_R_START:
        case ST_C_START: {
            drop(s, skip_ws(s->hold, s->n));
            if (s->n == 0)
                return;
            s->state = s->state == ST_R_START ? ST_REASONING : ST_CONTENT;
            continue;
        }
        case ST_REASONING: {
            size_t cl = sizeof(close_tag) - 1;
            char *p = s->n >= cl ? memmem(s->hold, s->n, close_tag, cl) : NULL;
            if (p) {
                size_t at = (size_t)(p - s->hold);
                size_t e = at;
                while (e > 0 && is_ws(s->hold[e - 1]))
                    e--;
                emit_drop(s, RSN_REASONING, e, emit, user);
                drop(s, at - e + cl);
                s->state = ST_C_START;
                continue;
            }
            size_t e = final ? s->n : s->n - partial_tag(s->hold, s->n, close_tag);
            size_t t = e;
            while (t > 0 && is_ws(s->hold[t - 1]))
                t--; /* hold trailing whitespace: it goes if the tag follows */
            emit_drop(s, RSN_REASONING, t, emit, user);
            if (final)
                s->n = 0;
            return;
        }
        case ST_CONTENT:
            emit_drop(s, RSN_CONTENT, s->n, emit, user);
            return;
        }
    }
}

int rsn_feed(struct rsn_splitter *s, const char *text, size_t len, rsn_emit_fn emit, void *user)
{
    if (s->state == ST_CONTENT && s->n == 0) {
        if (len)
            emit(user, RSN_CONTENT, text, len);
        return 0;
    }
    if (len > SIZE_MAX - s->n - 1)
        return -1;
    if (s->n + len > s->cap) {
        size_t cap = s->cap ? s->cap : 64;
        while (cap < s->n + len)
            cap = cap > SIZE_MAX / 2 ? s->n + len : cap * 2;
        char *h = realloc(s->hold, cap);
        if (!h)
            return -1;
        s->hold = h;
        s->cap = cap;
    }
    if (len > 0) {
        memcpy(s->hold + s->n, text, len);
        s->n += len;
    }
    process(s, false, emit, user);
    return 0;
}

int rsn_finish(struct rsn_splitter *s, rsn_emit_fn emit, void *user)
{
    process(s, true, emit, user);
    return 0;
}

bool rsn_in_reasoning(const struct rsn_splitter *s)
{
    return s->state == ST_R_START || s->state == ST_REASONING;
}

bool rsn_end_reasoning(struct rsn_splitter *s, rsn_emit_fn emit, void *user)
{
    if (!rsn_in_reasoning(s))
        return false;
    if (s->state == ST_REASONING) {
        size_t t = s->n;
        while (t > 0 && is_ws(s->hold[t - 1]))
            t--;
        emit_drop(s, RSN_REASONING, t, emit, user);
    }
    s->n = 0;
    s->state = ST_C_START;
    return true;
}

bool rsn_prompt_opens_reasoning(const char *prompt, size_t len)
{
    const char *last_open = NULL;
    size_t ol = sizeof(open_tag) - 1, cl = sizeof(close_tag) - 1;
    for (const char *p = prompt; p && (size_t)(p - prompt) + ol <= len;) {
        p = memmem(p, len - (size_t)(p - prompt), open_tag, ol);
        if (p) {
            last_open = p;
            p += ol;
        }
    }
    if (!last_open)
        return false;
    size_t from = (size_t)(last_open - prompt) + ol;
    return memmem(prompt + from, len - from, close_tag, cl) == NULL;
}
