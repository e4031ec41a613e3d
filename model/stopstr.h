/* stopstr.h - incremental stop-string matching over a stream of text.
 *
 * Fed pieces of text, the matcher returns what is safe to emit now: everything except a
 * tail that could still be the start of a stop string. When a stop string completes, the
 * text before it is returned and the matcher reports the match; the stop string and
 * anything after it are never returned. Pieces hold whole UTF-8 characters, and so does
 * every returned span (a held tail always starts at a stop string's first byte).
 * Caller-owned storage; one generation; not thread-safe. */
#ifndef CHATD_STOPSTR_H
#define CHATD_STOPSTR_H

#include <stdbool.h>
#include <stddef.h>

struct stop_matcher {
    char **stops;
    size_t n_stops;
    char *work;      /* held tail, then the new piece appended */
    size_t n_hold;
    size_t cap;
    char *out;       /* what the last call returned */
    bool matched;
};

struct stop_out {
    const char *text; /* borrowed until the next call */
    size_t len;
    bool matched;
};

/* Copies the stop strings (empty ones are ignored). Returns 0 or -1 (out of memory). */
int stop_init(struct stop_matcher *m, const char *const *stops, size_t n);
void stop_fini(struct stop_matcher *m);
struct stop_out stop_feed(struct stop_matcher *m, const char *text, size_t len);
/* The end of the stream: releases the held tail (nothing after a match). */
struct stop_out stop_finish(struct stop_matcher *m);

#endif
