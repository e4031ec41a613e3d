/* tok_guard.c - a rendered prompt whose data includes text besides the message contents
 * (the request's tools, the arguments of earlier tool calls, rendered by the template as
 * JSON): every occurrence of a guarded string that carries the text of a control token is
 * tokenized as plain text, as are the message contents (in order, as tok_encode_prompt
 * places them), and the template around them with special tokens. Without such a string
 * this is tok_encode_prompt. Runs on connection threads; the vocabulary is read-only. */
#include "tok_impl.h"

#include <stdlib.h>
#include <string.h>

bool tok_text_has_control(const struct tok_vocab *v, const char *s)
{
    return s && tok_has_control_text(v, s);
}

/* Marks s's occurrences in prompt[0..len) as plain text. */
static void mark_all(const char *prompt, size_t len, const char *s, bool *plain)
{
    size_t n = strlen(s);
    for (const char *p = prompt; n && (p = memmem(p, len - (size_t)(p - prompt), s, n)); p++)
        memset(plain + (p - prompt), 1, n);
}

int tok_encode_prompt_guarded(const struct tok_vocab *v, const char *prompt,
                              const char *const *contents, size_t n,
                              const char *const *guards, size_t n_guards, int32_t **ids,
                              size_t *n_ids)
{
    bool hostile = false;
    for (size_t i = 0; i < n_guards && !hostile; i++)
        hostile = guards[i] && tok_has_control_text(v, guards[i]);
    if (!hostile)
        return tok_encode_prompt(v, prompt, contents, n, ids, n_ids);
    size_t len = strlen(prompt), at = 0;
    bool *plain = calloc(len + 1, sizeof(bool));
    if (!plain)
        return TOK_ENOMEM;
    for (size_t i = 0; i < n; i++) { /* the contents in order, as tok_encode_prompt does */
        const char *c = contents[i];
        const char *hit = c && *c ? strstr(prompt + at, c) : NULL;
        if (!hit)
            continue;
        memset(plain + (hit - prompt), 1, strlen(c));
        at = (size_t)(hit - prompt) + strlen(c);
    }
    for (size_t i = 0; i < n_guards; i++)
        if (guards[i] && tok_has_control_text(v, guards[i]))
            mark_all(prompt, len, guards[i], plain);
    *ids = NULL;
    *n_ids = 0;
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0;) {
        size_t j = i;
        while (j < len && plain[j] == plain[i])
            j++;
        rc = tok_encode_part(v, prompt + i, j - i, !plain[i], ids, n_ids);
        i = j;
    }
    free(plain);
    if (rc == 0 && !*ids)
        rc = tok_encode(v, "", 0, false, false, ids, n_ids);
    if (rc != 0) {
        free(*ids);
        *ids = NULL;
        *n_ids = 0;
    }
    return rc;
}
