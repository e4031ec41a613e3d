/* fuzz_tokenize.c - libFuzzer target: arbitrary bytes through tok_encode with both
 * tokenizer kinds (SentencePiece and byte-level BPE vocabularies from
 * tests/fixtures/tokenizer, loaded once). Byte 0 picks the vocabulary and flags.
 * Oracle: encoding never fails, every id is in range, and for valid UTF-8 input
 * detokenize(tokenize(s)) == s (BPE as is; SPM with its leading-space strip, and
 * only for text without U+2581, SentencePiece's own space symbol, which decodes to a
 * space by design). */
#include "fuzz.h"
#include "gguf.h"
#include "tokenizer.h"

#include <string.h>

#define N_VOCABS FUZZ_N_VOCABS
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
    const struct tok_vocab *v = vocabs[data[0] % N_VOCABS];
    bool parse_special = (data[0] >> 2) & 1;
    bool add_bos = (data[0] >> 3) & 1;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = tok_encode(v, text, len, add_bos, parse_special, &ids, &n);
    FUZZ_CHECK(rc == 0 && ids != NULL);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(ids[i] >= 0 && ids[i] < tok_n_vocab(v));
    bool spm = tok_kind(v) == TOK_KIND_SPM;
    if (!add_bos && !parse_special && fuzz_utf8_valid(data + 1, len) &&
        !(spm && memmem(text, len, "\xE2\x96\x81", 3))) {
        char *out = NULL;
        size_t out_len = 0;
        rc = tok_decode(v, ids, n, spm ? TOK_DECODE_STRIP_SPACE : 0, &out, &out_len);
        FUZZ_CHECK(rc == 0 && out != NULL);
        if (out_len != len || memcmp(out, text, len) != 0) {
            fprintf(stderr, "round trip differs (%s): in %zu bytes, out %zu bytes\n",
                    tok_kind_name(v), len, out_len);
            FUZZ_CHECK(!"detokenize(tokenize(s)) == s");
        }
        free(out);
    }
    free(ids);
    return 0;
}
