/* fuzz.h - the entry points every fuzz target defines (libFuzzer's names), shared by
 * the libFuzzer build (-DCHATD_FUZZ=ON) and the replay program that runs committed
 * corpora and crash reproducers in the normal build, plus small helpers. */
#ifndef CHATD_FUZZ_H
#define CHATD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* One input; returns 0. A broken oracle calls FUZZ_CHECK, which aborts. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Called once before the first input (loads vocabularies etc.). */
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Path of a file under the fixtures directory: $CHATD_FIXTURES, else the source tree's
 * tests/fixtures compiled in as FUZZ_FIXTURES. Static buffer. */
const char *fuzz_fixture(const char *rel);

struct tok_vocab;
/* The vocabulary of fixture file `rel` (exits with a message when it does not load). */
struct tok_vocab *fuzz_load_vocab(const char *rel);
/* The tokenizer targets' vocabularies, in this order: SentencePiece llama, GPT-2 and
 * Qwen3 byte-level BPE. fuzz_load_vocabs loads the first n (<= FUZZ_N_VOCABS) into v. */
#define FUZZ_N_VOCABS 3
void fuzz_load_vocabs(struct tok_vocab **v, int n);

/* True when s[0..n) is valid UTF-8 (no overlongs, surrogates or code points past
 * U+10FFFF). */
int fuzz_utf8_valid(const uint8_t *s, size_t n);

#define FUZZ_CHECK(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: oracle failed: %s\n", __FILE__, __LINE__, #cond);     \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

#endif
