/* stopstr.c - incremental stop-string matcher (see runtime.h).
 *
 * Pending text lives in `buf`. After each feed the earliest full match is looked
 * for; it is final only if no earlier position could still grow into a match
 * (otherwise a longer stop string starting earlier might win once more text comes).
 * Without a match, everything before the earliest position whose tail is a prefix
 * of some stop string is released, minus an incomplete trailing UTF-8 sequence.
 * `buf` therefore holds less than the longest stop string plus 3 bytes, and the work
 * per feed is O(held + fed) x (total stop bytes).
 */
#include "runtime.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct stop_matcher {
    size_t n_stops;
    char *stops[STOP_MAX_STRINGS];
    size_t lens[STOP_MAX_STRINGS];
    char *buf;      /* pending text, then (after a match) nothing */
    size_t n;
    size_t cap;
    char *out;      /* what the last call returned */
    size_t out_cap;
    int matched;
};

struct stop_matcher *stop_new(const char *const *stops, size_t n)
{
    if (n > STOP_MAX_STRINGS || (n && !stops))
        return NULL;
    struct stop_matcher *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->matched = -1;
    for (size_t i = 0; i < n; i++) {
        size_t l = stops[i] ? strlen(stops[i]) : 0;
        /* a stop string must start on a character boundary, or text could be cut
         * inside a character */
        bool bad_start = l && ((unsigned char)stops[i][0] & 0xc0) == 0x80;
        if (l == 0 || l > STOP_MAX_LEN || bad_start || !(m->stops[i] = malloc(l))) {
            stop_free(m);
            return NULL;
        }
        memcpy(m->stops[i], stops[i], l);
        m->lens[i] = l;
        m->n_stops++;
    }
    return m;
}

void stop_free(struct stop_matcher *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_stops; i++)
        free(m->stops[i]);
    free(m->buf);
    free(m->out);
    free(m);
}

int stop_matched(const struct stop_matcher *m)
{
    return m->matched;
}

static int reserve(char **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c = c > SIZE_MAX / 2 ? need : c * 2;
    char *q = realloc(*p, c);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* Moves the first k pending bytes to `out` and returns them. */
static int release(struct stop_matcher *m, size_t k, const char **emit, size_t *emit_len)
{
    if (reserve(&m->out, &m->out_cap, k ? k : 1) < 0)
        return -1;
    if (k > 0) {
        memcpy(m->out, m->buf, k);
        memmove(m->buf, m->buf + k, m->n - k);
        m->n -= k;
    }
    *emit = m->out;
    *emit_len = k;
    return 0;
}

/* True when buf[pos..n) is a proper prefix of some stop string (could still match). */
static bool could_start(const struct stop_matcher *m, size_t pos)
{
    size_t rest = m->n - pos;
    for (size_t i = 0; i < m->n_stops; i++)
        if (rest < m->lens[i] && memcmp(m->buf + pos, m->stops[i], rest) == 0)
            return true;
    return false;
}

/* Earliest full match: its position and index, or false. */
static bool find_match(const struct stop_matcher *m, size_t *pos, size_t *idx)
{
    bool found = false;
    for (size_t i = 0; i < m->n_stops; i++) {
        const char *p = m->lens[i] <= m->n ? memmem(m->buf, m->n, m->stops[i], m->lens[i]) : NULL;
        if (p && (!found || (size_t)(p - m->buf) < *pos)) {
            found = true;
            *pos = (size_t)(p - m->buf);
            *idx = i;
        }
    }
    return found;
}

/* Start of an incomplete UTF-8 sequence at the end of buf[0..n), or n. */
static size_t utf8_complete_end(const char *buf, size_t n)
{
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = (unsigned char)buf[n - back];
        if ((c & 0xc0) == 0x80)
            continue; /* continuation byte: keep looking for the lead */
        size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        return need > back ? n - back : n;
    }
    return n;
}

int stop_feed(struct stop_matcher *m, const char *text, size_t len, const char **emit, size_t *emit_len)
{
    *emit = "";
    *emit_len = 0;
    if (m->matched >= 0)
        return 1;
    if (len > SIZE_MAX - m->n || reserve(&m->buf, &m->cap, m->n + len) < 0)
        return -1;
    if (len > 0) {
        memcpy(m->buf + m->n, text, len);
        m->n += len;
    }

    size_t pos = 0, idx = 0;
    bool found = find_match(m, &pos, &idx);
    /* the earliest position that might still begin a (longer) match */
    size_t hold_from = found ? pos : m->n;
    for (size_t q = 0; q < hold_from; q++) {
        if (could_start(m, q)) {
            hold_from = q;
            break;
        }
    }
    if (found && hold_from == pos) {
        if (release(m, pos, emit, emit_len) < 0)
            return -1;
        m->matched = (int)idx;
        m->n = 0;
        return 1;
    }
    size_t k = utf8_complete_end(m->buf, hold_from);
    return release(m, k, emit, emit_len) < 0 ? -1 : 0;
}

int stop_flush(struct stop_matcher *m, const char **emit, size_t *emit_len)
{
    *emit = "";
    *emit_len = 0;
    if (m->matched >= 0)
        return 1;
    size_t pos = 0, idx = 0;
    *emit = m->buf ? m->buf : "";
    if (find_match(m, &pos, &idx)) {
        /* a match that waited for a possibly longer, earlier one that never came */
        *emit_len = pos;
        m->matched = (int)idx;
        m->n = 0;
        return 1;
    }
    *emit_len = m->n; /* buf is not written again after a flush */
    m->n = 0;
    return 0;
}
