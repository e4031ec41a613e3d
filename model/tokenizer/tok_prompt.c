/* tok_prompt.c - a rendered chat prompt to token ids.
 *
 * tok_encode_prompt tokenizes the prompt in one pass as the reference does (special
 * tokens parsed), except inside the spans the template renderer marked as message
 * text, where no control token is read: a user cannot inject one, whatever the
 * template did to the text, and a prompt without such text gets the reference's ids.
 *
 * tok_assemble_prompt rebuilds a prompt from the ids stored with earlier messages: each
 * segment is placed where its text recurs in the prompt, the text between is tokenized
 * as a part of the prompt (SPM: text right after an ordinary token continues its
 * fragment, without a space prefix), and the result must read back to exactly the
 * prompt text. Runs on connection threads; the vocabulary is read-only. */
#include "tok_impl.h"

#include <stdlib.h>
#include <string.h>

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

int tok_encode_prompt(const struct tok_vocab *v, const char *prompt, const struct tok_span *plain,
                      size_t n_plain, int32_t **ids, size_t *n_ids)
{
    return tok_encode_plain(v, prompt, strlen(prompt), false, plain, n_plain, ids, n_ids);
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

/* Tokenizes prompt[from, to) as part of the prompt, appending to ids: the plain ranges
 * inside it, shifted; text right after a non-special id continues that id's fragment
 * (SPM: no space prefix). */
static int encode_gap(const struct tok_vocab *v, const char *prompt, size_t from, size_t to,
                      const struct tok_span *plain, size_t n_plain, int32_t **ids, size_t *n)
{
    if (from == to)
        return 0;
    struct tok_span *local = calloc(n_plain + 1, sizeof(*local));
    if (!local)
        return TOK_ENOMEM;
    size_t m = 0;
    for (size_t i = 0; i < n_plain; i++) {
        size_t a = plain[i].start > from ? plain[i].start : from;
        size_t b = plain[i].end < to ? plain[i].end : to;
        if (a < b)
            local[m++] = (struct tok_span){a - from, b - from};
    }
    int32_t *part = NULL;
    size_t k = 0;
    bool continued = tok_add_space_prefix(v) && *n && !tok_is_whole(v, (*ids)[*n - 1]);
    int rc = tok_encode_plain(v, prompt + from, to - from, continued, local, m, &part, &k);
    rc = rc ? rc : append_ids(ids, n, part, k);
    free(part);
    free(local);
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
                        const struct tok_span *plain, size_t n_plain,
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
        rc = encode_gap(v, prompt, at, pos, plain, n_plain, &out, &n);
        rc = rc ? rc : append_ids(&out, &n, segs[j].ids, segs[j].n);
        at = pos + seg_len;
        *tail_from = n;
        (*n_used)++;
    }
    rc = rc ? rc : encode_gap(v, prompt, at, len, plain, n_plain, &out, &n);
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
