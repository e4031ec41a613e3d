/* api_chat.c - POST /v1/chat/completions: the chat pipeline (gen/) over the request's
 * messages, or a session's history plus its new message. */
#include "api/api.h"
#include "gen/gen.h"

int api_chat(struct http_req *r)
{
    return gen_run(r, true);
}
