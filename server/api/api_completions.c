/* api_completions.c - POST /v1/completions: the legacy prompt completion, the chat
 * pipeline (gen/) over a raw prompt (no template, no session). */
#include "api/api.h"
#include "gen/gen.h"

int api_completions(struct http_req *r)
{
    return gen_run(r, false);
}
