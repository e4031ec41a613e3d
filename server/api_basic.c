/* api_basic.c - the handlers that need neither model nor storage: health and the
 * embedded chat page. */
#include "api.h"
#include "srv.h"
#include "web.h"

#include <string.h>

int api_health(struct http_req *r)
{
    json_t *j = json_pack("{s:s, s:I}", "status", r->srv->stopping ? "stopping" : "ok",
                          "uptime_s", (json_int_t)(time(NULL) - r->srv->started));
    return http_send_json(r, 200, j);
}

int api_static(struct http_req *r)
{
    const struct web_file *f = web_find(r->path);
    if (!f)
        return http_send_error(r, 404, "invalid_request_error", NULL, "not_found",
                               "no such endpoint: %s %s", r->method, r->path);
    return http_send_bytes(r, 200, f->content_type, f->data, f->size_bytes, false);
}
