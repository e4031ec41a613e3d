/* reasoning.h - splits a reasoning model's output into its thought and its answer.
 *
 * Reasoning models (DeepSeek-R1 and its distilled students) write "<think>...</think>"
 * before the answer. The splitter is fed the output text in arbitrary pieces (whole UTF-8
 * characters, but a tag may arrive split, "<th" + "ink>") and returns the reasoning and
 * content text each piece completes, holding back bytes that may be the start of a tag.
 * Only a thought that opens the reply is split off (whitespace may precede it); a later
 * "<think>" is content. A splitter may start inside the thought when the prompt already
 * opened it (R1-distill templates end the prompt with "<think>\n").
 * Caller-owned storage; one generation; not thread-safe. */
#ifndef CHATD_REASONING_H
#define CHATD_REASONING_H

#include <stdbool.h>
#include <stddef.h>

struct rsn_splitter {
    bool in_reasoning;
    bool started;        /* content other than whitespace was emitted, or a thought ended */
    bool strip_ws;       /* drop whitespace right after a tag */
    char *hold;          /* held-back bytes */
    size_t n_hold;
    char *r;             /* output buffers of the last call */
    size_t n_r;
    char *c;
    size_t n_c;
    size_t cap;
};

struct rsn_out {
    const char *reasoning; /* borrowed until the next call */
    size_t n_reasoning;
    const char *content;
    size_t n_content;
};

void rsn_init(struct rsn_splitter *s, bool start_in_reasoning);
void rsn_fini(struct rsn_splitter *s);
struct rsn_out rsn_feed(struct rsn_splitter *s, const char *text, size_t len);
/* Releases whatever is held back (the output ended). */
struct rsn_out rsn_finish(struct rsn_splitter *s);
bool rsn_in_reasoning(const struct rsn_splitter *s);

#endif
