/* oai.h - OpenAI-style request bodies parsed and validated into C structs.
 * A parse either fills the request or returns an error naming the offending param,
 * never both. Strings are owned by the request (oai_request_fini frees them). */
#ifndef CHATD_OAI_H
#define CHATD_OAI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OAI_MAX_STOP 16
#define OAI_MAX_MESSAGES 4096
#define OAI_MAX_LOGIT_BIAS 1024

struct oai_error {
    int code;          /* SRV_EINVAL, SRV_ETYPE or SRV_EJSON (server.h) */
    char param[64];    /* e.g. "messages[2].role"; empty when none */
    char message[384];
};

struct oai_message {
    char *role;      /* system | user | assistant | tool | developer(-> system) */
    char *content;   /* text parts joined */
    char *tool_calls;   /* assistant: JSON array in OpenAI's form (arguments as strings); NULL: none */
    char *tool_call_id; /* tool: the call it answers */
    char *name;         /* tool: the function's name, when given */
};

/* A tool the model may call (oai_tools.c). */
struct oai_tool {
    char *name;
    char *params_ebnf; /* grammar rules of its arguments, start rule "t<i>-args" */
    bool strict;
};

enum oai_tool_choice { OAI_TOOLS_NONE, OAI_TOOLS_AUTO, OAI_TOOLS_REQUIRED, OAI_TOOLS_NAMED };
enum oai_response_format { OAI_RF_TEXT, OAI_RF_JSON_OBJECT, OAI_RF_JSON_SCHEMA };

struct oai_bias {
    int64_t id;
    double bias;
};

struct oai_request {
    bool chat;                  /* /v1/chat/completions (messages) vs /v1/completions (prompt) */
    char *model;                /* NULL: the default model */
    struct oai_message *msgs;
    size_t n_msgs;
    char *prompt;
    int64_t max_tokens;         /* -1: not given */
    double temperature;
    double top_p;
    double min_p;
    int64_t top_k;              /* 0: off */
    double presence_penalty;
    double frequency_penalty;
    double repetition_penalty;  /* 1: off */
    bool has_seed;
    uint64_t seed;
    char *stop[OAI_MAX_STOP];
    size_t n_stop;
    bool logprobs;
    int64_t top_logprobs;
    struct oai_bias *bias;
    size_t n_bias;
    char *user;
    bool stream;
    bool include_usage;
    char *session_id;           /* body field session_id (the header is read elsewhere) */
    bool reasoning_split;       /* reasoning_format != "none" */
    int64_t max_reasoning_tokens; /* -1: no budget */
    bool echo;                  /* legacy completions only */
    bool ignore_eos;            /* keep generating past end-of-generation (benchmarks) */
    /* tools and structured outputs (oai_tools.c) */
    struct oai_tool *tools;
    size_t n_tools;
    char *tools_json;           /* the tools array, compact, for the chat template */
    int tool_choice;            /* enum oai_tool_choice */
    char *tool_choice_name;     /* OAI_TOOLS_NAMED */
    bool parallel_tool_calls;
    int response_format;        /* enum oai_response_format */
    char *format_ebnf;          /* response_format or grammar as grammar text (root "root"); NULL: none */
};

void oai_request_init(struct oai_request *q);
void oai_request_fini(struct oai_request *q);

/* Parses a chat (chat=true) or legacy completion body. Returns 0, or -1 with err set. */
int oai_parse(const json_t *body, bool chat, struct oai_request *q, struct oai_error *err);

/* Parses the "messages" array alone (for /v1/tokens/count, /apply-template). */
int oai_parse_messages(const json_t *msgs, struct oai_request *q, struct oai_error *err);

/* Fills err (code, param, message); returns -1. */
int oai_fail(struct oai_error *err, const char *param, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* oai_tools.c: tools, tool_choice, parallel_tool_calls, response_format and grammar of a
 * body (schemas translated and grammars compiled as a check), and a message's tool
 * fields. Return 0, or -1 with err set. */
int oai_parse_tools(const json_t *body, struct oai_request *q, struct oai_error *err);
int oai_parse_message_tools(const json_t *m, size_t i, const char *role, struct oai_message *out,
                            struct oai_error *err);
void oai_tools_fini(struct oai_request *q);

/* True when s is a safe identifier (session id, model id, key prefix): 1..max bytes of
 * [A-Za-z0-9._:-], not "." or "..", no "/" or control bytes. */
bool oai_valid_id(const char *s, size_t max_len);

#endif
