/* fuzz_sse_utf8.c - libFuzzer target: a byte stream through the streaming detokenizer
 * (tok_stream, what SSE deltas are made of) and srv_utf8_sanitize. Byte 0 picks how
 * the stream is cut: one SentencePiece byte token <0xHH> per byte (a cut at every
 * byte), or the byte-level BPE tokens of the bytes (cuts wherever tokens end, often
 * inside a character). Oracle: every emitted chunk is valid UTF-8 and survives a JSON
 * string round trip; for valid UTF-8 input the chunks concatenate to the input; the
 * sanitizer's output is valid UTF-8 without NUL and equals a valid NUL-free input. */
#include "fuzz.h"
#include "gguf.h"
#include "server.h"
#include "tokenizer.h"

#include <jansson.h>
#include <string.h>

static struct tok_vocab *spm, *bpe;
static int32_t byte_tok[256];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    spm = fuzz_load_vocab("tokenizer/ggml-vocab-llama-spm.gguf");
    bpe = fuzz_load_vocab("tokenizer/ggml-vocab-gpt-2.gguf");
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof(name), "<0x%02X>", b);
        byte_tok[b] = tok_find(spm, name);
        if (byte_tok[b] < 0) {
            fprintf(stderr, "fuzz_sse_utf8: no byte token %s\n", name);
            exit(1);
        }
    }
    return 0;
}

static void check_chunk(const char *text, size_t len, char **acc, size_t *acc_len)
{
    FUZZ_CHECK(fuzz_utf8_valid((const uint8_t *)text, len));
    json_t *j = json_stringn(text, len);
    FUZZ_CHECK(j != NULL);
    char *dump = json_dumps(j, JSON_ENCODE_ANY);
    FUZZ_CHECK(dump != NULL);
    json_error_t je;
    json_t *back = json_loads(dump, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    FUZZ_CHECK(back && json_string_length(back) == len &&
               memcmp(json_string_value(back), text, len) == 0);
    json_decref(back);
    free(dump);
    json_decref(j);
    memcpy(*acc + *acc_len, text, len);
    *acc_len += len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool use_bpe = data[0] & 1;
    const uint8_t *in = data + 1;
    size_t n = size - 1;
    const struct tok_vocab *v = use_bpe ? bpe : spm;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (use_bpe) {
        FUZZ_CHECK(tok_encode(bpe, (const char *)in, n, false, false, &ids, &n_ids) == 0);
    } else {
        ids = malloc((n ? n : 1) * sizeof(*ids));
        if (!ids)
            return 0;
        for (size_t i = 0; i < n; i++)
            ids[i] = byte_tok[in[i]];
        n_ids = n;
    }
    char *acc = malloc(3 * n + 16);
    size_t acc_len = 0;
    if (!acc) {
        free(ids);
        return 0;
    }
    struct tok_stream ts;
    tok_stream_init(&ts, v, false);
    for (size_t i = 0; i < n_ids; i++) {
        const char *text;
        size_t len;
        FUZZ_CHECK(tok_stream_push(&ts, ids[i], &text, &len) == 0);
        check_chunk(text, len, &acc, &acc_len);
    }
    const char *text;
    size_t len;
    FUZZ_CHECK(tok_stream_flush(&ts, &text, &len) == 0);
    check_chunk(text, len, &acc, &acc_len);
    tok_stream_fini(&ts);
    bool valid = fuzz_utf8_valid(in, n);
    if (valid)
        FUZZ_CHECK(acc_len == n && memcmp(acc, in, n) == 0);
    size_t clen = 0;
    char *clean = srv_utf8_sanitize((const char *)in, n, &clen);
    FUZZ_CHECK(clean != NULL);
    FUZZ_CHECK(fuzz_utf8_valid((const uint8_t *)clean, clen) && memchr(clean, 0, clen) == NULL);
    if (valid && memchr(in, 0, n) == NULL)
        FUZZ_CHECK(clen == n && memcmp(clean, in, n) == 0);
    free(clean);
    free(acc);
    free(ids);
    return 0;
}
