/* fuzz_grammar.c - libFuzzer target for the grammar library. The first byte picks the
 * input's kind: even, the rest is grammar text; odd, the rest is a JSON schema, which is
 * translated to grammar text. Whatever compiles then matches a stream of bytes (the
 * input again) through a byte vocabulary, with masks along the way.
 * Oracle: no crash, no sanitizer report, no timeout; every error is a clean return, and
 * the text a schema translates to always compiles. */
#include "fuzz.h"
#include "grammar.h"

#include <stdlib.h>
#include <string.h>

static struct gram_vocab *byte_vocab(void)
{
    static struct gram_vocab *v;
    if (v)
        return v;
    static char bytes[256];
    const char *b[257];
    size_t l[257];
    uint8_t k[257];
    for (int i = 0; i < 256; i++) {
        bytes[i] = (char)i;
        b[i] = &bytes[i];
        l[i] = 1;
        k[i] = GRAM_TOK_TEXT;
    }
    b[256] = "";
    l[256] = 0;
    k[256] = GRAM_TOK_END;
    v = gram_vocab_new(257, b, l, k);
    return v;
}

static void run_matcher(struct gram *g, const uint8_t *data, size_t size)
{
    struct gram_matcher *m = gram_matcher_new(g, byte_vocab());
    if (!m)
        return;
    for (size_t i = 0; i < size && i < 256; i++) {
        if (i % 16 == 0 && !gram_matcher_mask(m))
            break;
        if (gram_matcher_accept(m, data[i]) != 0)
            break;
    }
    (void)gram_matcher_accepting(m);
    gram_matcher_free(m);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return byte_vocab() ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    char err[256];
    struct strbuf text = {0};
    if (data[0] % 2 == 0) {
        strbuf_append(&text, (const char *)data + 1, size - 1);
    } else {
        struct gram_json *doc = gram_json_parse((const char *)data + 1, size - 1, err, sizeof(err));
        int rc = doc ? gram_schema_ebnf(doc, "s", "root", &text, err, sizeof(err), NULL, 0) : -1;
        gram_json_free(doc);
        if (rc != 0) {
            strbuf_free(&text);
            return 0;
        }
    }
    struct gram *g = NULL;
    int rc = gram_compile(&g, strbuf_str(&text), text.len, NULL, err, sizeof(err));
    if (data[0] % 2 == 1 && rc != 0 && rc != GRAM_ELIMIT && rc != GRAM_ENOMEM)
        abort(); /* the translator wrote a grammar that does not compile */
    if (rc == 0)
        run_matcher(g, data + 1, size - 1);
    gram_unref(g);
    strbuf_free(&text);
    return 0;
}
