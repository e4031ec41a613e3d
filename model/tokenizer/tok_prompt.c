/* tok_prompt.c - a rendered chat prompt to token ids.
 *
 * tok_encode_prompt tokenizes the prompt as the reference does (special tokens parsed
 * everywhere) unless a message content carries the text of a control token: then the
 * contents are tokenized as plain text and only the template around them with special
 * tokens, so a user cannot inject control tokens.
 *
 * tok_assemble_prompt rebuilds a prompt from the ids stored with earlier messages: each
 * segment is placed where its text recurs in the prompt, the text between is tokenized
 * as a part of the prompt (SPM: text right after an ordinary token continues its
 * fragment, without a space prefix), and the result must read back to exactly the
 * prompt text. Runs on connection threads; the vocabulary is read-only. */
#include "tok_impl.h"

#include <stdlib.h>
#include <string.h>

/* Whether `s` contains the text of any CONTROL token (a user trying to inject one). */
bool tok_has_control_text(const struct tok_vocab *v, const char *s)
{
    if (!strpbrk(s, "<[|"))
        return false;
    for (int32_t id = 0; id < v->n_vocab; id++) {
        if (tok_type(v, id) != TOK_TYPE_CONTROL)
            continue;
        size_t len;
        const char *t = tok_text(v, id, &len);
        if (len >= 2 && memmem(s, strlen(s), t, len))
            return true;
    }
    return false;
}

static int append_ids(int32_t **ids, size_t *n, const int32_t *more, size_t m)
{
    int32_t *p = realloc(*ids, (*n + m + 1) * sizeof(int32_t));
    if (!p)
        return TOK_ENOMEM;
    memcpy(p + *n, more, m * sizeof(int32_t));
    *ids = p;
    *n += m;
    return 0;
}

/* Tokenizes len bytes with or without special-token parsing, appending. */
int tok_encode_part(const struct tok_vocab *v, const char *s, size_t len, bool special,
                       int32_t **ids, size_t *n)
{
    int32_t *part;
    size_t m;
    int rc = tok_encode(v, s, len, false, special, &part, &m);
    if (rc != 0)
        return rc;
    rc = append_ids(ids, n, part, m);
    free(part);
    return rc;
}

int tok_encode_prompt(const struct tok_vocab *v, const char *prompt,
                      const char *const *contents, size_t n, int32_t **ids, size_t *n_ids)
{
    bool hostile = false;
    for (size_t i = 0; i < n && !hostile; i++)
        hostile = contents[i] && tok_has_control_text(v, contents[i]);
    *ids = NULL;
    *n_ids = 0;
    if (!hostile) /* the reference's way: special tokens parsed in the whole prompt */
        return tok_encode(v, prompt, strlen(prompt), false, true, ids, n_ids);
    /* Contents carrying control-token text are tokenized as plain text. */
    size_t at = 0, len = strlen(prompt);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *c = contents[i];
        if (!c || !*c)
            continue;
        const char *hit = strstr(prompt + at, c);
        if (!hit)
            continue;
        size_t start = (size_t)(hit - prompt);
        rc = tok_encode_part(v, prompt + at, start - at, true, ids, n_ids);
        rc = rc ? rc : tok_encode_part(v, hit, strlen(c), false, ids, n_ids);
        at = start + strlen(c);
    }
    rc = rc ? rc : tok_encode_part(v, prompt + at, len - at, true, ids, n_ids);
    if (rc != 0) {
        free(*ids);
        *ids = NULL;
        *n_ids = 0;
    }
    return rc;
}

/* The text ids read back as, the inverse of tok_encode with special tokens
 * (frag_start: ids[0] starts a text fragment). Caller frees *out. */
static int ids_text(const struct tok_vocab *v, const int32_t *ids, size_t n, bool frag_start,
                    char **out, size_t *len)
{
    unsigned flags = TOK_DECODE_SPECIAL | TOK_DECODE_FRAGMENTS;
    if (frag_start && tok_add_space_prefix(v))
        flags |= TOK_DECODE_STRIP_SPACE;
    return tok_decode(v, ids, n, flags, out, len);
}

/* Tokenizes prompt[from, to) as part of the prompt, appending to ids. Text right after a
 * non-special id continues that id's fragment (SPM: no space prefix). */
static int encode_gap(const struct tok_vocab *v, const char *prompt, size_t from, size_t to,
                      const char *const *contents, size_t n_contents, int32_t **ids, size_t *n)
{
    if (from == to)
        return 0;
    char *gap = strndup(prompt + from, to - from);
    if (!gap)
        return TOK_ENOMEM;
    int32_t *part = NULL;
    size_t m = 0;
    bool continued = tok_add_space_prefix(v) && *n && !tok_is_whole(v, (*ids)[*n - 1]);
    int rc = continued ? tok_encode_continued(v, gap, to - from, true, &part, &m)
                       : tok_encode_prompt(v, gap, contents, n_contents, &part, &m);
    rc = rc ? rc : append_ids(ids, n, part, m);
    free(part);
    free(gap);
    return rc;
}

/* Where a stored segment's text recurs in prompt[at..len): SPM segments may continue a
 * fragment (read with their leading space) or start one (without); a wrong guess
 * fails the final check. Returns the position or NULL; *seg_len is the text's length. */
static const char *find_segment(const struct tok_vocab *v, const char *prompt, size_t at,
                                size_t len, const struct tok_segment *seg, size_t *seg_len)
{
    const char *hit = NULL;
    for (int start = 0; start < 2 && !hit && seg->n; start++) {
        char *text;
        size_t tl;
        if (ids_text(v, seg->ids, seg->n, start, &text, &tl) != 0)
            return NULL;
        if (tl) {
            hit = memmem(prompt + at, len - at, text, tl);
            *seg_len = tl;
        }
        free(text);
    }
    return hit;
}

int tok_assemble_prompt(const struct tok_vocab *v, const char *prompt,
                        const char *const *contents, size_t n_contents,
                        const struct tok_segment *segs, size_t n_segs, int32_t **ids,
                        size_t *n_ids, size_t *tail_from, size_t *n_used)
{
    size_t len = strlen(prompt), at = 0, n = 0;
    int32_t *out = NULL;
    int rc = 0;
    int32_t bos = tok_bos(v);
    bool add_bos = tok_add_bos(v) && bos >= 0;
    *tail_from = 0;
    *n_used = 0;
    if (add_bos)
        rc = append_ids(&out, &n, &bos, 1);
    for (size_t j = 0; j < n_segs && rc == 0; j++) {
        size_t seg_len = 0;
        const char *hit = find_segment(v, prompt, at, len, &segs[j], &seg_len);
        if (!hit)
            continue;
        size_t pos = (size_t)(hit - prompt);
        rc = encode_gap(v, prompt, at, pos, contents, n_contents, &out, &n);
        rc = rc ? rc : append_ids(&out, &n, segs[j].ids, segs[j].n);
        at = pos + seg_len;
        *tail_from = n;
        (*n_used)++;
    }
    rc = rc ? rc : encode_gap(v, prompt, at, len, contents, n_contents, &out, &n);
    /* BOS written by the template is in the text; the one added here is not */
    size_t skip = add_bos && n > 1 && out[1] == bos ? 1 : 0;
    if (rc == 0 && skip) {
        memmove(out, out + 1, (n - 1) * sizeof(*out));
        n--;
        if (*tail_from)
            (*tail_from)--;
    }
    size_t from = add_bos && !skip ? 1 : 0;
    char *text = NULL;
    size_t tl = 0;
    if (rc == 0 && (ids_text(v, out + from, n - from, true, &text, &tl) != 0 || tl != len ||
                    memcmp(text, prompt, len) != 0))
        rc = TOK_EFORMAT;
    free(text);
    if (rc != 0) {
        free(out);
        return rc;
    }
    *ids = out;
    *n_ids = n;
    return 0;
}
