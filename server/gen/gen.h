/* gen.h - the chat pipeline (private to server/): one generation request from the parsed
 * body to the stored reply. Each job has its file:
 *
 *   gen.c         the pipeline in order, errors, the non-streamed response
 *   gen_prompt.c  prompt building: session history, template, tokens, context fitting
 *   gen_admit.c   admission: idempotency keys, the quota, the engine job, the session's
 *                 new messages (committed before inference)
 *   gen_text.c    tokens to text: UTF-8-safe detokenizing, reasoning split, stop strings
 *   gen_sse.c     streaming: server-sent event framing
 *   gen_store.c   the reply and its usage row, stored once
 *
 * Every step returns 0 or a negative SRV_E* code with the detail in g->err; one place
 * (gen_send_error) turns that into the response. A struct gen belongs to one connection
 * thread; the engine only touches its job. */
#ifndef CHATD_GEN_H
#define CHATD_GEN_H

#include "api/oai.h"
#include "http/http.h"
#include "server.h"

#include <stdbool.h>
#include <stdint.h>

/* Tool-call formats of model families (gen_tools.c). */
enum gen_tool_fmt {
    GT_GENERIC,
    GT_HERMES,
    GT_LLAMA3,
    GT_MISTRAL,
    GT_DEEPSEEK_R1,
    GT_FIREFUNCTION,
    GT_FUNCTIONARY_V31,
    GT_FUNCTIONARY_V32,
    GT_COMMAND_R,
    GT_N_FORMATS
};

struct gen_tools;

/* Why a request failed: a module's code, the param it concerns and a message. */
struct gen_err {
    enum srv_errmod mod;
    int code;
    const char *param; /* static string or NULL (the code's default) */
    char msg[320];
};

struct gen {
    struct srv *srv;
    const struct srv_model *sm;
    struct oai_request q;
    char id[64]; /* chatcmpl-... / cmpl-... */
    char request_id[40];
    int64_t created;
    int64_t user_id;
    struct gen_err err;

    /* session */
    char session_id[80]; /* "" when stateless */
    struct store_reply reply;
    bool reply_begun;
    char idem_key[STORE_ID_MAX + 1]; /* Idempotency-Key claimed for this request, or "" */
    bool idem_done;                  /* its response is stored for replays */

    /* prompt */
    int32_t *prompt;
    uint32_t n_prompt;
    uint32_t n_ctx;
    int dropped_messages;
    int retokenized_messages; /* history stored under another model/template, tokenized anew */
    size_t prompt_tail_from;  /* prompt[tail_from..] is new: stored with the request's message */
    uint32_t max_tokens;      /* the reply's budget after the context and the quota */
    bool reserved;            /* a quota reservation is held under request_id */
    bool quota_capped;        /* max_tokens was cut to what the quota leaves */

    struct eng_job *job;

    /* decoding */
    struct tok_stream ts;
    struct rsn_splitter *rsn;
    struct stop_matcher *stop;
    bool split_reasoning;
    struct strbuf content; /* emitted so far */
    struct strbuf reasoning;
    uint32_t consumed; /* tokens turned into text */
    uint32_t n_reasoning_tokens;
    const char *finish_reason; /* NULL while running */
    bool stopped_by_string;
    bool failed;
    bool stored;
    json_t *logprobs; /* chat logprobs content array, when asked */

    /* constrained decoding and tool calls (gen_tools.c) */
    struct gram *grammar;        /* response_format, grammar or a constrained tool call */
    const char *grammar_trigger; /* lazy grammar: applies after this text (static) */
    struct gen_tools *tools;     /* NULL: no tool calls parsed */
};

/* ---- entry points (the api/ handlers call these) ---- */

/* POST /v1/chat/completions (chat) and /v1/completions: the whole pipeline. */
int gen_run(struct http_req *r, bool chat);
/* POST /v1/tokens/count (quote false) and /v1/usage/quote: the prompt a chat request
 * would send now, its token count, and for the quote the cache split and the price. */
int gen_count(struct http_req *r, bool quote);

/* ---- between the pipeline's files ---- */

/* Records why g failed; returns the SRV_E* code it maps to (negative). */
int gen_fail(struct gen *g, enum srv_errmod mod, int code, const char *param, const char *fmt,
             ...) __attribute__((format(printf, 5, 6)));

/* gen_prompt.c: the session (body session_id, else the X-Session-Id header), then the
 * prompt into g->prompt, fitted so that the reply has room; sets g->max_tokens. */
int gen_build_prompt(struct gen *g, const char *session_header);

/* gen_admit.c */
/* Claims the Idempotency-Key (NULL: none) for this request body. Returns 0 to go on; 0
 * with *replay set (caller frees) when an earlier request with this key and body
 * completed: send that instead (a JSON body, or the text of an event stream); or an
 * error code (a key still running, reused with another body, malformed). */
int gen_idem_claim(struct gen *g, const char *key, const char *body, size_t body_len,
                   char **replay);
/* Stores the response for replays of the claimed key (no-op without one). */
void gen_idem_complete(struct gen *g, const char *response);
/* Admits the request against the user's monthly quota and reserves its worst case. */
int gen_quota_admit(struct gen *g);
/* Creates the engine job with the request's sampling. */
int gen_setup_job(struct gen *g);
/* Commits the request's new messages to the session (before inference). */
int gen_save_messages(struct gen *g);
/* Releases what admission took: the quota reservation of a request that was not billed,
 * and an idempotency key with no response to replay (so a retry runs). */
void gen_release(struct gen *g);

/* gen_text.c: waits for and turns up to max_new more tokens into text. Returns true when
 * the generation is over (g->finish_reason set). */
bool gen_pump(struct gen *g, int timeout_ms, uint32_t max_new);
/* After a hang-up: takes what the engine produced so far. */
void gen_take_rest(struct gen *g);

/* gen_sse.c: answers with a stream; takes ownership of g. */
int gen_respond_stream(struct http_req *r, struct gen *g);

/* gen_store.c */
/* Stores the reply (sessions) and the usage row, once. Returns 0, or a store code when
 * the database refused the write: the reply must then not be acknowledged as billed. */
int gen_store_result(struct gen *g, enum store_msg_status status);
/* For a streamed session reply: opens it at the first token (billed as pending, so a
 * crash bills what was stored) and hands its text so far to the group commit. */
void gen_reply_progress(struct gen *g, bool force);
json_t *gen_usage_json(const struct gen *g);
json_t *gen_context_json(const struct gen *g);
/* A chunk (stream) or the response's choice: the message or text built so far. */
json_t *gen_message_json(const struct gen *g);
/* Why a reply stopped at "length" when the user's quota, not max_tokens, ended it. */
void gen_add_finish_detail(const struct gen *g, json_t *choice);

void gen_free(struct gen *g);

/* gen_tools.c */
/* The tool-call format of a chat template (override: the tool_format option, "auto" or
 * empty to detect), and its name. */
int gen_tool_format_detect(const char *template_src, const char *override);
const char *gen_tool_format_name(int fmt);
/* After parsing: compiles response_format / grammar, or sets up tool calls (format,
 * grammar for required, named or strict calls). Returns 0 or an error code (g->err). */
int gen_tools_setup(struct gen *g);
/* The tools as the template sees them (NULL: none, or the generic format). */
const char *gen_tools_template_json(const struct gen *g);
/* The generic format's system message (NULL when not used). */
const char *gen_tools_system_text(const struct gen *g);
/* Whether the format's markers are control tokens that must be rendered as text. */
bool gen_tools_render_special(const struct gen *g);
/* OpenAI tool calls (arguments as JSON strings) as a template expects them: arguments
 * parsed into objects unless args_as_string. Caller frees; NULL for none or bad JSON. */
char *gen_tool_calls_for_template(const char *wire, bool args_as_string);
/* At the end of the reply: parses the calls, finish_reason "tool_calls" when any. */
void gen_tools_finish(struct gen *g);
/* The parsed calls as OpenAI's tool_calls array (new reference), or NULL. */
json_t *gen_tools_calls_json(const struct gen *g);
/* Sets the message's content (text before the calls, null when empty) and tool_calls. */
void gen_tools_message(const struct gen *g, json_t *msg);
/* Bytes of g->content that are the reply's text (before any calls). */
size_t gen_tools_content_len(const struct gen *g);
/* Streaming: the delta.tool_calls entries since the last call (new reference, NULL for
 * none); *content_upto is how much of g->content may be sent as text so far. */
json_t *gen_tools_stream(struct gen *g, bool final, size_t *content_upto);
/* A message as the model's template sees it: tool calls in the template's form (the
 * generic format writes them into the content and tool results as user turns). Strings
 * it allocates are added to owned[*n_owned] (at most 2; the caller frees them). */
int gen_tools_view(const struct gen *g, const char *role, const char *content,
                   const char *tool_calls, const char *tool_call_id, const char *name,
                   struct tmpl_message *out, char **owned, size_t *n_owned);
/* What a session stores for a reply with tool calls: the text before them and the calls
 * (JSON); both NULL when the reply has none. Caller frees. */
void gen_tools_store_fields(const struct gen *g, char **content, char **tool_calls);
void gen_tools_free(struct gen_tools *t);
/* Parses a whole reply in format fmt: returns the number of calls (0: the text is not
 * calls), *calls an array of {name, arguments} (new reference, NULL when none) and
 * *content_len the bytes of text before them. */
int gen_tools_parse_text(int fmt, const char *text, json_t **calls, size_t *content_len);

#endif
