/* template.h - chat templates: an interpreter for the Jinja2 subset that model chat
 * templates use, plus named built-in templates.
 *
 * A template is parsed once with tmpl_new (an unsupported construct fails here, with
 * the template line in the message) and rendered any number of times with
 * tmpl_render. Rendering follows jinja2 as Hugging Face transformers configures it:
 * trim_blocks, lstrip_blocks, no autoescape, lenient undefined values, loop controls,
 * raise_exception / strftime_now globals and a json.dumps-style tojson.
 * See tests/fixtures/templates/README.md for the exact semantics.
 *
 * Hostile templates are bounded: nesting depth, evaluation steps, loop iterations,
 * memory and output size all have caps (struct tmpl_params), and exceeding one is an
 * error, never a crash. A parsed template is read-only while rendering, so several
 * threads may render the same template at once.
 */
#ifndef CHATD_TEMPLATE_H
#define CHATD_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TMPL_ERRORS(X)                                                  \
    X(TMPL_OK, 0, "ok")                                                 \
    X(TMPL_ESYNTAX, -1, "template syntax error or unsupported construct") \
    X(TMPL_ERAISE, -2, "template raised an exception")                  \
    X(TMPL_EEVAL, -3, "template evaluation error")                      \
    X(TMPL_ELIMIT, -4, "template exceeded a resource limit")            \
    X(TMPL_ENOMEM, -5, "out of memory")                                 \
    X(TMPL_EINVAL, -6, "invalid argument")

enum tmpl_err {
#define X(name, code, msg) name = code,
    TMPL_ERRORS(X)
#undef X
};

/* Text for a TMPL_* code. Never NULL. */
const char *tmpl_strerror(int code);

/* One chat message. role and content are NUL-terminated UTF-8; content may be NULL
 * (the template sees none). reasoning_content is optional (NULL: the key is absent,
 * so the template sees it undefined). All borrowed for the duration of the call. */
struct tmpl_message {
    const char *role;
    const char *content;
    const char *reasoning_content;
    /* Tool use; NULL: the key is absent. tool_calls_json is a JSON array (OpenAI's
     * tool_calls, each function's arguments an object as templates expect), bound as
     * `message.tool_calls`; tool_call_id and name are a tool result's. */
    const char *tool_calls_json;
    const char *tool_call_id;
    const char *name;
};

struct tmpl_params {
    const struct tmpl_message *messages;
    size_t n_messages;
    bool add_generation_prompt;
    const char *bos_token;        /* NULL means "" */
    const char *eos_token;        /* NULL means "" */
    int64_t now_unix;             /* clock for strftime_now (UTC); 0 means the current time */
    const char *tools_json;       /* JSON array bound as `tools`; NULL: undefined */
    /* Limits; 0 means the default. */
    size_t max_output_bytes;      /* default 32 MiB */
    size_t max_memory_bytes;      /* values built while rendering; default 64 MiB */
    uint64_t max_steps;           /* evaluated nodes; default 10 million */
    uint64_t max_loop_iterations; /* over the whole render; default 1 million */
    size_t max_stack_bytes;       /* stack the evaluation may use below the caller's frame;
                                   * default TMPL_DEFAULT_STACK */
};

/* The interpreter recurses (nested expressions, statements, macro calls). Its stack use
 * is measured, not guessed from a depth: the default fits a thread of 256 KiB (the
 * server's request threads) with room for the caller's frames. */
#define TMPL_DEFAULT_STACK ((size_t)144 << 10)

/* Default parameters: no messages, empty tokens, no generation prompt. */
struct tmpl_params tmpl_default_params(void);

struct tmpl;

/* Parses a template (len bytes, need not be NUL-terminated). Returns NULL on error
 * with a message in err naming the template line ("line 3: unknown filter 'x'").
 * Caller frees with tmpl_free. */
struct tmpl *tmpl_new(const char *src, size_t len, char *err, size_t err_len);
void tmpl_free(struct tmpl *t);

/* Renders the template. On success returns 0 and sets *out (NUL-terminated, caller
 * frees with free()) and *out_len. On failure returns a negative TMPL_* code, sets
 * *out to NULL and writes a message to err: for TMPL_ERAISE exactly the text given
 * to raise_exception(), otherwise "line N: what went wrong". */
int tmpl_render(const struct tmpl *t, const struct tmpl_params *params, char **out,
                size_t *out_len, char *err, size_t err_len);

/* A byte range [start, end) of a rendered prompt. */
struct tmpl_span {
    size_t start;
    size_t end;
};

/* tmpl_render, and where the output holds text that came from the messages' contents
 * (content and reasoning_content, whatever the template did to them: trimmed, split,
 * sliced, joined, quoted as JSON). The spans are sorted and disjoint; *spans (caller
 * frees with free(); NULL when there are none) holds *n_spans of them. The prompt's
 * tokenizer must not read control tokens inside them: text a user wrote is text. A
 * string the template built from message text and its own text in a way that does not
 * keep their boundaries (a filter over both, say) is counted as message text whole. */
int tmpl_render_spans(const struct tmpl *t, const struct tmpl_params *params, char **out,
                      size_t *out_len, struct tmpl_span **spans, size_t *n_spans, char *err,
                      size_t err_len);

/* Source of a named built-in template (chatml, llama2, llama3, mistral,
 * deepseek-r1), or NULL for an unknown name. Static storage. */
const char *tmpl_builtin(const char *name);
/* NULL-terminated list of the built-in names. Static storage. */
const char *const *tmpl_builtin_names(void);

#endif
