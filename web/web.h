/* web.h - the chat page's static files, embedded into the binary at build time. */
#ifndef CHATD_WEB_H
#define CHATD_WEB_H

#include <stddef.h>

struct web_file {
    const char *path;         /* "/index.html" */
    const char *content_type; /* "text/html; charset=utf-8" */
    const unsigned char *data;
    size_t size_bytes;
};

/* Returns the embedded file served at `path` ("/" means "/index.html"), or NULL.
 * The result is borrowed for the life of the process. */
const struct web_file *web_find(const char *path);

#endif
