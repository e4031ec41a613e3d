/* util.c - small helpers shared by server/: UTF-8 sanitising (utf8proc decides what
 * is valid). */
#include "server.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

char *srv_utf8_sanitize(const char *s, size_t len, size_t *out_len)
{
    char *out = malloc(len * 3 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t cl =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (cl <= 0 || cp == 0) {
            memcpy(out + o, "\xEF\xBF\xBD", 3); /* U+FFFD; NUL bytes too */
            o += 3;
            i++;
            continue;
        }
        memcpy(out + o, s + i, (size_t)cl);
        o += (size_t)cl;
        i += (size_t)cl;
    }
    out[o] = 0;
    if (out_len)
        *out_len = o;
    return out;
}
