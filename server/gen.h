/* gen.h - one generation request as the HTTP side sees it (private to server/): the
 * prompt built from the request (and the session's stored history, fitted to the
 * context), the engine job, and the turning of generated tokens into text: incremental
 * UTF-8-safe detokenization, the reasoning/content split, stop strings. At the end the
 * reply and its usage row are stored (in one transaction for a session).
 *
 * A struct gen belongs to one connection thread; the engine only touches its job. */
#ifndef CHATD_GEN_H
#define CHATD_GEN_H

#include "engine.h"
#include "http.h"
#include "models.h"
#include "oai.h"
#include "reasoning.h"
#include "srv.h"
#include "stopstr.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>

struct gen {
    struct srv *srv;
    const struct srv_model *sm;
    struct oai_request q;
    char id[64];               /* chatcmpl-... / cmpl-... */
    char request_id[40];
    int64_t created;
    int64_t user_id;
    bool stream;

    /* session */
    char session_id[80];       /* "" when stateless */
    struct store_reply reply;
    bool reply_begun;

    /* prompt */
    int32_t *prompt;
    uint32_t n_prompt;
    uint32_t n_ctx;
    int dropped_messages;
    int retokenized_messages;  /* history stored under another model/template, tokenized anew */
    size_t prompt_tail_from;   /* prompt[tail_from..] is new: stored with the request's message */
    int64_t reserved_tokens;   /* quota reservation held until the end */
    bool quota_capped;         /* max_tokens was cut to what the quota leaves */

    struct eng_job *job;

    /* decoding */
    struct tok_stream ts;
    struct rsn_splitter *rsn;
    struct stop_matcher *stop;
    bool split_reasoning;
    struct strbuf content;     /* emitted so far */
    struct strbuf reasoning;
    uint32_t consumed;         /* tokens turned into text */
    uint32_t n_reasoning_tokens;
    const char *finish_reason; /* NULL while running */
    bool stopped_by_string;
    bool failed;
    char error[320];
    bool stored;
    json_t *logprobs;          /* chat logprobs content array, when asked */
};

/* Handles POST /v1/chat/completions (chat=true) and /v1/completions. */
int gen_handle(struct http_req *r, bool chat);
/* POST /v1/tokens/count and /v1/usage/quote share the prompt building. */
int gen_handle_count(struct http_req *r, bool quote);
int gen_handle_apply_template(struct http_req *r);

#endif
