/* fuzz_detokenize.c - libFuzzer target: arbitrary int32 arrays through tok_decode,
 * tok_piece and the streaming detokenizer, with both tokenizer kinds. Byte 0 picks
 * the vocabulary and flags; the rest is read as little-endian int32 ids, of which the
 * low bits are folded near the vocabulary size unless the high flag keeps them raw.
 * Oracle: any invalid id -> an error; all valid -> bytes, no out-of-bounds access. */
#include "fuzz.h"
#include "gguf.h"
#include "tokenizer.h"

#include <string.h>

#define N_VOCABS 2 /* SentencePiece llama and GPT-2 */
static struct tok_vocab *vocabs[N_VOCABS];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_load_vocabs(vocabs, N_VOCABS);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const struct tok_vocab *v = vocabs[data[0] & 1];
    unsigned flags = (data[0] >> 1) & 3;
    bool raw = data[0] & 0x80;
    int32_t nv = tok_n_vocab(v);
    size_t n = (size - 1) / 4;
    int32_t *ids = malloc((n ? n : 1) * sizeof(*ids));
    if (!ids)
        return 0;
    bool all_valid = true;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, data + 1 + 4 * i, 4);
        int32_t id = (int32_t)u;
        if (!raw) /* mostly valid ids, a few just past either end */
            id = (int32_t)(u % ((uint32_t)nv + 4)) - 2;
        ids[i] = id;
        if (id < 0 || id >= nv)
            all_valid = false;
    }
    char *out = NULL;
    size_t out_len = 0;
    int rc = tok_decode(v, ids, n, flags, &out, &out_len);
    if (all_valid) {
        FUZZ_CHECK(rc == 0 && out != NULL && out[out_len] == 0);
    } else {
        FUZZ_CHECK(rc < 0);
    }
    free(out);
    /* pieces with a buffer that is often too small */
    char small[8];
    for (size_t i = 0; i < n; i++) {
        int pl = tok_piece(v, ids[i], small, sizeof(small), flags & TOK_DECODE_SPECIAL);
        FUZZ_CHECK((ids[i] >= 0 && ids[i] < nv) ? pl >= 0 : pl < 0);
    }
    /* the streaming detokenizer emits only whole, valid characters */
    struct tok_stream ts;
    tok_stream_init(&ts, v, flags & TOK_DECODE_SPECIAL);
    for (size_t i = 0; i < n; i++) {
        const char *text;
        size_t len;
        rc = tok_stream_push(&ts, ids[i], &text, &len);
        FUZZ_CHECK((ids[i] >= 0 && ids[i] < nv) ? rc == 0 : rc < 0);
        FUZZ_CHECK(fuzz_utf8_valid((const uint8_t *)text, len));
    }
    const char *text;
    size_t len;
    FUZZ_CHECK(tok_stream_flush(&ts, &text, &len) == 0);
    FUZZ_CHECK(fuzz_utf8_valid((const uint8_t *)text, len));
    tok_stream_fini(&ts);
    free(ids);
    return 0;
}
