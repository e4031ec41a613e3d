/* util.c - small helpers shared by the handlers. */
#include "server.h"

#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 character at s (at most n bytes), or 0 if invalid. */
static size_t utf8_char_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    else if ((c & 0xE0) == 0xC0)
        len = 2, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0)
        len = 3, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

char *srv_utf8_sanitize(const char *s, size_t len, size_t *out_len)
{
    char *out = malloc(len * 3 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t cl = utf8_char_len((const unsigned char *)s + i, len - i);
        if (cl == 0 || (cl == 1 && s[i] == 0)) {
            memcpy(out + o, "\xEF\xBF\xBD", 3); /* U+FFFD; NUL bytes too */
            o += 3;
            i++;
            continue;
        }
        memcpy(out + o, s + i, cl);
        o += cl;
        i += cl;
    }
    out[o] = 0;
    if (out_len)
        *out_len = o;
    return out;
}

int strbuf_append(struct strbuf *b, const char *s, size_t len)
{
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
    memcpy(b->data + b->len, s, len);
    b->len += len;
    b->data[b->len] = 0;
    return 0;
}

void strbuf_free(struct strbuf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}
