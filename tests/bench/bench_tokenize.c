/* bench_tokenize.c - tokenizer throughput: about 1 MB of mixed English and Chinese
 * text (built here from a few sentences with a fixed pseudo-random order) tokenized
 * with each fixture vocabulary, once as one text and once as ~1 KB chunks (the size
 * of a chat turn). Prints MB/s (best of 3) and tokens per byte.
 *
 * usage: bench_tokenize [FIXTURES_DIR]   (default: $CHATD_FIXTURES or tests/fixtures)
 */
#include "gguf.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const sentences[] = {
    "The quick brown fox jumps over the lazy dog. ",
    "Large language models predict the next token from the ones before it. ",
    "It's 3:45 pm and we've shipped version 2.0.1 (finally!). ",
    "大模型很厲害，但是它们也会犯错。",
    "今天天气很好，我们去公园散步吧！",
    "机器学习是人工智能的一个分支。",
    "Tokenizers split text into pieces; BPE merges bytes by rank.\n",
    "def main():\n    print(\"hello, world\")\n\n",
    "混合 English 和中文 text 也很常见。 ",
    "🦙 Emoji and naïve café façade résumé. ",
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *make_text(size_t target, size_t *len)
{
    size_t n_s = sizeof(sentences) / sizeof(sentences[0]);
    char *buf = malloc(target + 256);
    size_t n = 0;
    uint32_t seed = 42;
    while (n < target) {
        seed = seed * 1664525u + 1013904223u;
        const char *s = sentences[(seed >> 16) % n_s];
        size_t l = strlen(s);
        memcpy(buf + n, s, l);
        n += l;
    }
    *len = n;
    return buf;
}

/* Tokenizes text in chunks of about `chunk` bytes (cut at a newline or space so UTF-8
 * stays whole); returns seconds and the token count. */
static double run(const struct tok_vocab *v, const char *text, size_t len, size_t chunk,
                  size_t *n_tokens)
{
    double t0 = now_s();
    *n_tokens = 0;
    for (size_t off = 0; off < len;) {
        size_t end = off + chunk < len ? off + chunk : len;
        while (end < len && text[end] != ' ' && text[end] != '\n')
            end++;
        int32_t *ids;
        size_t n;
        if (tok_encode(v, text + off, end - off, false, false, &ids, &n) != 0) {
            fprintf(stderr, "encode failed\n");
            exit(1);
        }
        *n_tokens += n;
        free(ids);
        off = end;
    }
    return now_s() - t0;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : getenv("CHATD_FIXTURES");
    if (!dir)
        dir = "tests/fixtures";
    static const char *vocabs[] = {"ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf",
                                   "ggml-vocab-qwen3.gguf"};
    size_t len;
    char *text = make_text(1u << 20, &len);
    printf("text: %zu bytes of mixed English/Chinese\n", len);
    for (size_t i = 0; i < sizeof(vocabs) / sizeof(vocabs[0]); i++) {
        char path[4096], err[512];
        snprintf(path, sizeof(path), "%s/tokenizer/%s", dir, vocabs[i]);
        struct gguf_file *f;
        struct tok_vocab *v;
        double t0 = now_s();
        if (gguf_open(&f, path, err, sizeof(err)) || tok_load(&v, f, err, sizeof(err))) {
            fprintf(stderr, "%s: %s\n", path, err);
            return 1;
        }
        double load_ms = (now_s() - t0) * 1e3;
        gguf_close(f);
        static const size_t chunks[] = {(size_t)1 << 30, 1024};
        for (size_t c = 0; c < 2; c++) {
            double best = 1e30;
            size_t n_tok = 0;
            for (int rep = 0; rep < 3; rep++) {
                double s = run(v, text, len, chunks[c], &n_tok);
                if (s < best)
                    best = s;
            }
            printf("%-28s %-12s %7.2f MB/s  %8zu tokens (%.3f tokens/byte)  load %.0f ms\n",
                   vocabs[i], c == 0 ? "whole text" : "1 KB chunks", (double)len / best / 1e6,
                   n_tok, (double)n_tok / (double)len, load_ms);
        }
        tok_free(v);
    }
    free(text);
    return 0;
}
