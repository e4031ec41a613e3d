/* reasoning.h - splits a reasoning model's output stream into its thought
 * (`<think>...</think>`) and its answer, incrementally.
 *
 * The generator feeds decoded text pieces as they come (whole UTF-8 characters, cut
 * anywhere else, e.g. "<th" + "ink>"); the splitter calls `emit` with reasoning text
 * and content text in stream order, holding back only what might still be the start
 * of a tag. A thought is recognised at the start of the reply (after optional
 * whitespace) or from the first byte when the prompt already opened one (DeepSeek-R1
 * distills end their prompt with "<think>\n": see rsn_prompt_opens_reasoning).
 * Whitespace around the thought is trimmed: reasoning text starts and ends with a
 * non-space, and the content after "</think>" starts at its first non-space. After
 * the thought everything is content, including any later "<think>".
 *
 * Budget hook: the caller counts reasoning tokens while rsn_in_reasoning() is true
 * and calls rsn_end_reasoning() when its budget is spent (then feeds the model the
 * closing tag itself, without passing it to the splitter).
 *
 * One splitter per reply; not thread-safe.
 */
#ifndef CHATD_REASONING_H
#define CHATD_REASONING_H

#include <stdbool.h>
#include <stddef.h>

#define RSN_OPEN_TAG "<think>"
#define RSN_CLOSE_TAG "</think>"

enum rsn_kind { RSN_CONTENT = 0, RSN_REASONING = 1 };

/* Receives text in stream order; `text` is borrowed for the call only. */
typedef void (*rsn_emit_fn)(void *user, enum rsn_kind kind, const char *text, size_t len);

struct rsn_splitter;

/* A splitter; start_in_reasoning when the prompt ended inside a thought. NULL when
 * out of memory. Caller frees with rsn_free. */
struct rsn_splitter *rsn_new(bool start_in_reasoning);
void rsn_free(struct rsn_splitter *s);

/* Feeds len bytes; emits what can be decided now. Returns 0, or -1 when out of memory
 * (the splitter is then unusable). */
int rsn_feed(struct rsn_splitter *s, const char *text, size_t len, rsn_emit_fn emit, void *user);

/* End of the stream: emits everything still held (an unfinished tag is text). */
int rsn_finish(struct rsn_splitter *s, rsn_emit_fn emit, void *user);

/* True while the text being generated belongs to a thought. */
bool rsn_in_reasoning(const struct rsn_splitter *s);

/* Budget reached: ends the thought now, emitting held reasoning text; what follows is
 * content. Returns true if a thought was open. */
bool rsn_end_reasoning(struct rsn_splitter *s, rsn_emit_fn emit, void *user);

/* True when a rendered prompt ends inside an open thought (its last "<think>" has no
 * "</think>" after it), so the reply starts in the reasoning state. */
bool rsn_prompt_opens_reasoning(const char *prompt, size_t len);

#endif
