/* fuzz_util.c - helpers shared by the fuzz targets: fixture paths, the fixture
 * vocabularies, and a strict UTF-8 validator used as an oracle (written independently of
 * the code under test). */
#include "fuzz.h"
#include "gguf.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>

#ifndef FUZZ_FIXTURES
#define FUZZ_FIXTURES "tests/fixtures"
#endif

const char *fuzz_fixture(const char *rel)
{
    static char path[4096];
    const char *dir = getenv("CHATD_FIXTURES");
    snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : FUZZ_FIXTURES, rel);
    return path;
}

int fuzz_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

struct tok_vocab *fuzz_load_vocab(const char *rel)
{
    struct gguf_file *f;
    struct tok_vocab *v = NULL;
    char err[256];
    const char *path = fuzz_fixture(rel);
    if (gguf_open(&f, path, err, sizeof(err)) != 0 || tok_load(&v, f, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", path, err);
        exit(1);
    }
    gguf_close(f);
    return v;
}

void fuzz_load_vocabs(struct tok_vocab **v, int n)
{
    static const char *const files[FUZZ_N_VOCABS] = {
        "tokenizer/ggml-vocab-llama-spm.gguf",
        "tokenizer/ggml-vocab-gpt-2.gguf",
        "tokenizer/ggml-vocab-qwen3.gguf",
    };
    for (int i = 0; i < n && i < FUZZ_N_VOCABS; i++)
        v[i] = fuzz_load_vocab(files[i]);
}
