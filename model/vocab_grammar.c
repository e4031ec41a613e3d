/* vocab_grammar.c - the model's tokens as the grammar matcher sees them (grammar.h):
 * each token's bytes as the detokenizer renders them, end-of-generation tokens as end
 * tokens, control and unknown tokens as special (never produced under a grammar).
 * Logit rows past the tokenizer's vocabulary (padded embeddings) are never allowed. */
#include "model.h"

#include <stdlib.h>
#include <string.h>

struct gram_vocab *mdl_gram_vocab_new(const struct tok_vocab *tv, uint32_t n_vocab)
{
    const char **bytes = calloc(n_vocab ? n_vocab : 1, sizeof(*bytes));
    size_t *lens = calloc(n_vocab ? n_vocab : 1, sizeof(*lens));
    uint8_t *kinds = calloc(n_vocab ? n_vocab : 1, 1);
    struct strbuf blob = {0};
    size_t *offs = calloc(n_vocab ? n_vocab : 1, sizeof(*offs));
    struct gram_vocab *gv = NULL;
    if (!bytes || !lens || !kinds || !offs)
        goto out;
    int32_t n_tok = tok_n_vocab(tv);
    char piece[1024];
    for (uint32_t i = 0; i < n_vocab; i++) {
        int32_t id = (int32_t)i;
        offs[i] = blob.len;
        if (id >= n_tok) {
            kinds[i] = GRAM_TOK_SPECIAL;
            continue;
        }
        int type = tok_type(tv, id);
        bool special = type == TOK_TYPE_CONTROL || type == TOK_TYPE_UNKNOWN || type == TOK_TYPE_UNUSED;
        kinds[i] = tok_is_eog(tv, id) ? GRAM_TOK_END : special ? GRAM_TOK_SPECIAL : GRAM_TOK_TEXT;
        int n = tok_piece(tv, id, piece, sizeof(piece), true);
        if (n > 0 && (size_t)n <= sizeof(piece) && strbuf_append(&blob, piece, (size_t)n) != 0)
            goto out;
        lens[i] = n > 0 && (size_t)n <= sizeof(piece) ? (size_t)n : 0;
    }
    for (uint32_t i = 0; i < n_vocab; i++)
        bytes[i] = blob.data ? blob.data + offs[i] : "";
    gv = gram_vocab_new(n_vocab, bytes, lens, kinds);
out:
    free(bytes);
    free(lens);
    free(kinds);
    free(offs);
    strbuf_free(&blob);
    return gv;
}
