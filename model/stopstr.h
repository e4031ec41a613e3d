/* stopstr.h - stop strings over a streamed reply.
 *
 * The generator feeds decoded text pieces; the matcher returns the text that is safe
 * to send now and holds back any tail that could still be the start of a stop string
 * (and any incomplete UTF-8 character, so a character is never split). When a stop
 * string appears, the text before it is returned and the stop string and everything
 * after it are not; the reply should end there. Among overlapping candidates the one
 * that starts first wins (the list order breaks ties), exactly as if the whole text
 * had been searched at once.
 *
 * One matcher per reply; not thread-safe.
 */
#ifndef CHATD_STOPSTR_H
#define CHATD_STOPSTR_H

#include <stdbool.h>
#include <stddef.h>

#define STOP_MAX_STRINGS 16
#define STOP_MAX_LEN 256 /* bytes per stop string */

struct stop_matcher;

/* Copies n stop strings (non-empty, not starting with a UTF-8 continuation byte,
 * at most STOP_MAX_LEN bytes, at most
 * STOP_MAX_STRINGS of them; n may be 0). Returns NULL on invalid input or when out
 * of memory. Caller frees with stop_free. */
struct stop_matcher *stop_new(const char *const *stops, size_t n);
void stop_free(struct stop_matcher *m);

/* Feeds len bytes. Sets *emit / *emit_len to the text to send now (borrowed until
 * the next call on m; may be empty). Returns 1 when a stop string has matched (now or
 * before: later calls emit nothing), 0 otherwise, -1 when out of memory. */
int stop_feed(struct stop_matcher *m, const char *text, size_t len, const char **emit, size_t *emit_len);

/* End of the stream: sets *emit / *emit_len to the held-back text (up to a stop
 * string that was still waiting on a possibly longer earlier one; an incomplete
 * UTF-8 sequence from the input is passed on as it is). Returns 1 when a stop
 * string matched, else 0. Feed nothing after a flush. */
int stop_flush(struct stop_matcher *m, const char **emit, size_t *emit_len);

/* Index of the stop string that matched, or -1. */
int stop_matched(const struct stop_matcher *m);

#endif
