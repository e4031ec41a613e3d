/* bench_grammar.c - what constrained decoding costs per token on a large vocabulary
 * (the qwen3 fixture: 151,936 tokens).
 *
 * Builds the matcher's vocabulary trie, compiles a JSON schema (a tool call's arguments:
 * nested object, strings, an enum, numbers, an array), then generates documents token by
 * token the way the engine does: the mask, the masked copy of a logits row, the draw
 * (random logits) and the accept. Reported per token: the whole grammar step, and the
 * mask alone for a state seen for the first time (a trie walk) and from the cache.
 * Also: the same documents' tokens fed as text (a model that writes real JSON).
 *
 * usage: bench_grammar [FIXTURES_DIR]   (default: $CHATD_FIXTURES or tests/fixtures)
 */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *schema =
    "{\"type\":\"object\",\"properties\":{"
    "\"location\":{\"type\":\"string\",\"maxLength\":40},"
    "\"unit\":{\"enum\":[\"celsius\",\"fahrenheit\"]},"
    "\"days\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":14},"
    "\"coords\":{\"type\":\"object\",\"properties\":{\"lat\":{\"type\":\"number\"},\"lon\":{\"type\":\"number\"}},"
    "\"required\":[\"lat\",\"lon\"],\"additionalProperties\":false},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":12},\"maxItems\":4}},"
    "\"required\":[\"location\",\"unit\",\"days\",\"coords\",\"tags\"],\"additionalProperties\":false}";

static const char *doc =
    "{\"location\": \"San Francisco, California\", \"unit\": \"celsius\", \"days\": 7, "
    "\"coords\": {\"lat\": 37.7749, \"lon\": -122.4194}, \"tags\": [\"fog\", \"bay area\"]}";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ull;

static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) * 0x1.0p-53;
}

static bool bit(const uint32_t *m, int32_t i)
{
    return (m[i / 32] >> (i % 32)) & 1;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : getenv("CHATD_FIXTURES");
    char path[4096];
    snprintf(path, sizeof(path), "%s/tokenizer/ggml-vocab-qwen3.gguf", dir ? dir : "tests/fixtures");
    char err[256];
    struct gguf_file *f;
    struct tok_vocab *tv;
    if (gguf_open(&f, path, err, sizeof(err)) != 0 || tok_load(&tv, f, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench_grammar: %s: %s\n", path, err);
        return 1;
    }
    uint32_t n_vocab = (uint32_t)tok_n_vocab(tv);
    double t0 = now_s();
    struct gram_vocab *gv = mdl_gram_vocab_new(tv, n_vocab);
    double t_vocab = now_s() - t0;
    struct gram_json *sj = gram_json_parse(schema, strlen(schema), err, sizeof(err));
    struct strbuf text = {0};
    struct gram *g = NULL;
    t0 = now_s();
    if (!gv || !sj || gram_schema_ebnf(sj, "s", "root", &text, err, sizeof(err), NULL, 0) != 0 ||
        gram_compile(&g, text.data, text.len, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench_grammar: %s\n", err);
        return 1;
    }
    double t_compile = now_s() - t0;
    printf("vocabulary: %u tokens, %zu trie nodes, built in %.1f ms; schema compiled in %.2f ms\n",
           n_vocab, gram_vocab_trie_nodes(gv), t_vocab * 1e3, t_compile * 1e3);

    /* 1. a real document's tokens */
    int32_t *ids;
    size_t n_ids;
    tok_encode(tv, doc, strlen(doc), false, false, &ids, &n_ids);
    double t_cold = 0, t_warm = 0;
    for (int pass = 0; pass < 2; pass++) {
        struct gram_matcher *m = gram_matcher_new(g, gv);
        t0 = now_s();
        for (size_t i = 0; i < n_ids; i++) {
            const uint32_t *mask = gram_matcher_mask(m);
            if (!mask || !bit(mask, ids[i]) || gram_matcher_accept(m, ids[i]) != 0) {
                fprintf(stderr, "bench_grammar: token %zu of the document refused\n", i);
                return 1;
            }
        }
        double t = now_s() - t0;
        if (pass == 0)
            t_cold = t;
        else
            t_warm = t;
        if (!gram_matcher_accepting(m)) {
            fprintf(stderr, "bench_grammar: the document is incomplete\n");
            return 1;
        }
        gram_matcher_free(m);
    }
    printf("document (%zu tokens), fresh matcher each pass: %.3f ms per token (mask + accept)\n",
           n_ids, t_cold * 1e3 / (double)n_ids);
    (void)t_warm;

    /* 2. random-logit generation, the engine's step: mask, masked row, draw, accept */
    float *logits = malloc(n_vocab * sizeof(float)), *row = malloc(n_vocab * sizeof(float));
    int32_t end = gram_vocab_end_token(gv);
    size_t tokens = 0, fresh = 0;
    double t_step = 0, t_fresh = 0, t_cached = 0;
    size_t cached = 0;
    for (int d = 0; d < 40; d++) {
        struct gram_matcher *m = gram_matcher_new(g, gv);
        for (int step = 0; step < 400; step++) {
            for (uint32_t i = 0; i < n_vocab; i++)
                logits[i] = (float)(urand() * 6.0);
            double a = now_s();
            const uint32_t *mask = gram_matcher_mask(m);
            double b = now_s();
            if (gram_matcher_done(m)) {
                gram_matcher_accept(m, end);
                break;
            }
            int32_t best = -1;
            for (uint32_t i = 0; i < n_vocab; i++) {
                row[i] = bit(mask, (int32_t)i) ? logits[i] : -INFINITY;
                if (row[i] > -INFINITY && (best < 0 || row[i] > row[best]))
                    best = (int32_t)i;
            }
            gram_matcher_accept(m, best);
            double c = now_s();
            t_step += c - a;
            tokens++;
            /* a mask over 1 us came from a trie walk; cache hits take nanoseconds */
            if (b - a > 1e-6) {
                t_fresh += b - a;
                fresh++;
            } else {
                t_cached += b - a;
                cached++;
            }
            if (best == end)
                break;
        }
        gram_matcher_free(m);
    }
    printf("random-logit generation: %zu tokens in 40 documents\n", tokens);
    printf("  grammar step per token (mask, masked row, draw, accept): %.3f ms\n",
           t_step * 1e3 / (double)tokens);
    printf("  mask of a new state (trie walk): %.3f ms (%zu of %zu tokens)\n",
           fresh ? t_fresh * 1e3 / (double)fresh : 0.0, fresh, tokens);
    printf("  mask from the cache: %.4f ms (%zu tokens)\n",
           cached ? t_cached * 1e3 / (double)cached : 0.0, cached);
    free(logits);
    free(row);
    free(ids);
    gram_matcher_free(NULL);
    gram_unref(g);
    gram_json_free(sj);
    strbuf_free(&text);
    gram_vocab_free(gv);
    tok_free(tv);
    gguf_close(f);
    return 0;
}
