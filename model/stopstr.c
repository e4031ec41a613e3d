/* stopstr.c - the stop-string matcher (see stopstr.h). Each call appends the piece to
 * the held tail, finds the earliest complete stop string, and otherwise keeps the longest
 * tail that is a proper prefix of some stop string. */
#include "stopstr.h"

#include <stdlib.h>
#include <string.h>

int stop_init(struct stop_matcher *m, const char *const *stops, size_t n)
{
    memset(m, 0, sizeof(*m));
    m->stops = calloc(n ? n : 1, sizeof(char *));
    if (!m->stops)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!stops[i] || !stops[i][0])
            continue;
        m->stops[m->n_stops] = strdup(stops[i]);
        if (!m->stops[m->n_stops])
            return -1;
        m->n_stops++;
    }
    return 0;
}

void stop_fini(struct stop_matcher *m)
{
    for (size_t i = 0; i < m->n_stops; i++)
        free(m->stops[i]);
    free(m->stops);
    free(m->work);
    free(m->out);
    memset(m, 0, sizeof(*m));
}

/* Longest suffix of buf[0,n) that is a proper prefix of any stop string. */
static size_t held_tail(const struct stop_matcher *m, const char *buf, size_t n)
{
    size_t best = 0;
    for (size_t s = 0; s < m->n_stops; s++) {
        size_t len = strlen(m->stops[s]);
        for (size_t k = len - 1 < n ? len - 1 : n; k > best; k--)
            if (memcmp(buf + n - k, m->stops[s], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

struct stop_out stop_feed(struct stop_matcher *m, const char *text, size_t len)
{
    if (m->matched)
        return (struct stop_out){"", 0, true};
    size_t n = m->n_hold + len;
    if (n + 1 > m->cap) {
        char *w = realloc(m->work, n + 1);
        char *o = w ? realloc(m->out, n + 1) : NULL;
        if (w)
            m->work = w;
        if (!o)
            return (struct stop_out){"", 0, false};
        m->out = o;
        m->cap = n + 1;
    }
    memcpy(m->work + m->n_hold, text, len);
    size_t first = n;
    for (size_t s = 0; s < m->n_stops; s++) {
        char *hit = memmem(m->work, n, m->stops[s], strlen(m->stops[s]));
        if (hit && (size_t)(hit - m->work) < first)
            first = (size_t)(hit - m->work);
    }
    size_t keep = 0, emit = first;
    if (first < n)
        m->matched = true;
    else
        emit = n - (keep = held_tail(m, m->work, n));
    memcpy(m->out, m->work, emit);
    m->out[emit] = 0;
    memmove(m->work, m->work + n - keep, keep);
    m->n_hold = keep;
    return (struct stop_out){m->out, emit, m->matched};
}

struct stop_out stop_finish(struct stop_matcher *m)
{
    if (m->matched || !m->n_hold)
        return (struct stop_out){"", 0, m->matched};
    memcpy(m->out, m->work, m->n_hold);
    size_t n = m->n_hold;
    m->n_hold = 0;
    return (struct stop_out){m->out, n, false};
}
