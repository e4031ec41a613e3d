/* strbuf.h - a growing NUL-terminated byte buffer, header-only so that every part of
 * chatd that builds text (the template interpreter, the server's responses) shares one
 * implementation. Zero-initialise it ({0}); the data is a heap block the owner frees
 * with strbuf_free (or takes). */
#ifndef CHATD_STRBUF_H
#define CHATD_STRBUF_H

#include <stdlib.h>
#include <string.h>

struct strbuf {
    char *data; /* NULL until the first append; then always NUL-terminated */
    size_t len;
    size_t cap;
};

/* Appends len bytes. Returns 0, or -1 when out of memory (the buffer is unchanged). */
static inline int strbuf_append(struct strbuf *b, const char *s, size_t len)
{
    if (len > (size_t)-1 / 2 - b->len)
        return -1;
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return -1;
        b->data = d;
        b->cap = cap;
    }
    if (len)
        memcpy(b->data + b->len, s, len);
    b->len += len;
    b->data[b->len] = 0;
    return 0;
}

/* The text so far ("" before the first append); borrowed until the next append. */
static inline const char *strbuf_str(const struct strbuf *b)
{
    return b->data ? b->data : "";
}

static inline void strbuf_free(struct strbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

#endif
