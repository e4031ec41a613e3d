/* vocab_fixture.h - loads the vocabulary of a fixture GGUF file (a model or a vocab-only
 * file under tests/fixtures) for the tokenizer tests. Header-only. */
#ifndef CHATD_TEST_VOCAB_FIXTURE_H
#define CHATD_TEST_VOCAB_FIXTURE_H

#include "gguf.h"
#include "test.h"
#include "tokenizer.h"

/* The vocabulary of fixture file rel, or NULL (the reason is printed). */
static inline struct tok_vocab *test_load_vocab(const char *rel)
{
    char err[256];
    struct gguf_file *f;
    if (gguf_open(&f, test_fixture(rel), err, sizeof(err)) != 0) {
        fprintf(stderr, "  %s: %s\n", rel, err);
        return NULL;
    }
    struct tok_vocab *v = NULL;
    if (tok_load(&v, f, err, sizeof(err)) != 0) {
        fprintf(stderr, "  %s: %s\n", rel, err);
        v = NULL;
    }
    gguf_close(f); /* the vocab keeps its own copy */
    return v;
}

#endif
