/* demo.c - generates the demo model (see mdl_demo_model in model.h).
 *
 * The vocabulary is a byte-level BPE one in the style of GPT-2 and Qwen2: the 256 byte
 * tokens under GPT-2's byte-to-unicode mapping (printable Latin-1 bytes stand for
 * themselves, the other 68 bytes become U+0100 onwards, so a space is 'Ġ'), then one
 * token per merge, then the special tokens. The merges spell out a list of common
 * English words letter by letter, with and without the leading space ("Ġ t" -> "Ġt",
 * "Ġt h" -> "Ġth", ...), so every merge joins two existing tokens. Control tokens are
 * <|endoftext|> (BOS, padding), <|im_start|> and <|im_end|> (EOS), as in Qwen2 instruct
 * models; <think> and </think> are user-defined. The chat template is the built-in
 * ChatML one. The vocabulary goes to a temporary vocab-only GGUF file, from which the
 * model generator copies every tokenizer.* key into a qwen2-shaped Q8_0 model.
 */
#include "model.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include <sys/stat.h>
#include <unistd.h>

/* Words whose spelling becomes merges (lower case ASCII only). */
static const char *const demo_words[] = {
    "the",      "and",   "you",   "that",   "was",   "for",   "are",    "with",    "his",
    "they",     "this",  "have",  "from",   "one",   "had",   "word",   "but",     "not",
    "what",     "all",   "were",  "when",   "your",  "can",   "said",   "there",   "use",
    "each",     "which", "she",   "how",    "their", "will",  "other",  "about",   "out",
    "many",     "then",  "them",  "these",  "some",  "her",   "would",  "make",    "like",
    "him",      "into",  "time",  "has",    "look",  "two",   "more",   "write",   "see",
    "number",   "way",   "could", "people", "than",  "first", "water",  "been",    "call",
    "who",      "its",   "now",   "find",   "long",  "down",  "day",    "did",     "get",
    "come",     "made",  "may",   "part",   "hello", "chat",  "model",  "think",   "answer",
    "question", "is",    "in",    "it",     "of",    "to",    "random", "weights", "pull",
    "real",
};

static const char *const demo_control[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
static const char *const demo_user[] = {"<think>", "</think>"};

#define DEMO_MAX_TOKENS 2048
#define DEMO_MAX_MERGES 1024

struct demo_vocab {
    char *tokens[DEMO_MAX_TOKENS];
    int32_t types[DEMO_MAX_TOKENS];
    size_t n_tokens;
    char *merges[DEMO_MAX_MERGES];
    size_t n_merges;
};

/* ---- building the vocabulary ------------------------------------------------------- */

/* GPT-2's byte-to-unicode mapping, in its order: the printable bytes first, then
 * the others mapped to U+0100, U+0101, ... */
static bool byte_is_printable(int b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

static int add_token(struct demo_vocab *v, const char *text, int32_t type)
{
    for (size_t i = 0; i < v->n_tokens; i++)
        if (strcmp(v->tokens[i], text) == 0)
            return 0;
    if (v->n_tokens == DEMO_MAX_TOKENS || !(v->tokens[v->n_tokens] = strdup(text)))
        return -1;
    v->types[v->n_tokens++] = type;
    return 0;
}

/* The merge "left right" and its result token, unless already present. */
static int add_merge(struct demo_vocab *v, const char *left, const char *right)
{
    char m[128], joined[128];
    snprintf(m, sizeof(m), "%s %s", left, right);
    snprintf(joined, sizeof(joined), "%s%s", left, right);
    for (size_t i = 0; i < v->n_merges; i++)
        if (strcmp(v->merges[i], m) == 0)
            return 0;
    if (v->n_merges == DEMO_MAX_MERGES || !(v->merges[v->n_merges] = strdup(m)))
        return -1;
    v->n_merges++;
    return add_token(v, joined, TOK_TYPE_NORMAL);
}

/* Merges spelling `word`, optionally after the space marker 'Ġ'. */
static int add_word(struct demo_vocab *v, const char *word, bool space)
{
    char prefix[96] = "";
    size_t n = 0;
    if (space)
        n = (size_t)utf8proc_encode_char(0x100 + 32, (utf8proc_uint8_t *)prefix); /* ' ' is the 33rd unprintable byte: U+0120 */
    prefix[n] = 0;
    for (const char *c = word; *c; c++) {
        char letter[2] = {*c, 0};
        if (n == 0) { /* the first letter of a bare word is a byte token already */
            prefix[n++] = *c;
            prefix[n] = 0;
            continue;
        }
        if (add_merge(v, prefix, letter) != 0 || n + 2 >= sizeof(prefix))
            return -1;
        prefix[n++] = *c;
        prefix[n] = 0;
    }
    return 0;
}

static int build_vocab(struct demo_vocab *v)
{
    uint32_t next = 0x100;
    int rc = 0;
    char s[8];
    for (int b = 0; b < 256 && rc == 0; b++) /* printable bytes first, in byte order */
        if (byte_is_printable(b)) {
            s[utf8proc_encode_char(b, (utf8proc_uint8_t *)s)] = 0;
            rc = add_token(v, s, TOK_TYPE_NORMAL);
        }
    for (int b = 0; b < 256 && rc == 0; b++)
        if (!byte_is_printable(b)) {
            s[utf8proc_encode_char((utf8proc_int32_t)next++, (utf8proc_uint8_t *)s)] = 0;
            rc = add_token(v, s, TOK_TYPE_NORMAL);
        }
    for (size_t i = 0; i < sizeof(demo_words) / sizeof(demo_words[0]) && rc == 0; i++)
        rc = add_word(v, demo_words[i], true);
    for (size_t i = 0; i < sizeof(demo_words) / sizeof(demo_words[0]) && rc == 0; i++)
        rc = add_word(v, demo_words[i], false);
    for (size_t i = 0; i < sizeof(demo_control) / sizeof(demo_control[0]) && rc == 0; i++)
        rc = add_token(v, demo_control[i], TOK_TYPE_CONTROL);
    for (size_t i = 0; i < sizeof(demo_user) / sizeof(demo_user[0]) && rc == 0; i++)
        rc = add_token(v, demo_user[i], TOK_TYPE_USER_DEFINED);
    return rc;
}

static void vocab_free(struct demo_vocab *v)
{
    for (size_t i = 0; i < v->n_tokens; i++)
        free(v->tokens[i]);
    for (size_t i = 0; i < v->n_merges; i++)
        free(v->merges[i]);
}

static uint32_t token_id(const struct demo_vocab *v, const char *text)
{
    for (size_t i = 0; i < v->n_tokens; i++)
        if (strcmp(v->tokens[i], text) == 0)
            return (uint32_t)i;
    return 0;
}

/* Writes the vocab-only GGUF file. */
static int write_vocab(const struct demo_vocab *v, const char *path)
{
    struct gguf_writer *w = gguf_writer_new();
    const char *chatml = tmpl_builtin("chatml");
    if (!w || !chatml) {
        gguf_writer_free(w);
        return -1;
    }
    int rc = 0;
    rc |= gguf_writer_add_str(w, "general.architecture", "qwen2");
    rc |= gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
    rc |= gguf_writer_add_str(w, "tokenizer.ggml.pre", "gpt-2");
    rc |= gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens,
                                  v->n_tokens);
    rc |= gguf_writer_add_arr_i32(w, "tokenizer.ggml.token_type", v->types, v->n_tokens);
    rc |= gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v->merges,
                                  v->n_merges);
    rc |= gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", token_id(v, "<|endoftext|>"));
    rc |= gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", token_id(v, "<|im_end|>"));
    rc |= gguf_writer_add_u32(w, "tokenizer.ggml.padding_token_id", token_id(v, "<|endoftext|>"));
    rc |= gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", false);
    rc |= gguf_writer_add_str(w, "tokenizer.chat_template", chatml);
    if (rc == 0)
        rc = gguf_writer_write_file(w, path);
    gguf_writer_free(w);
    return rc ? -1 : 0;
}

/* ---- the model file ---------------------------------------------------------------- */

int mdl_mkdirs(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0)
            continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -1;
        buf[i] = c;
    }
    return 0;
}

/* The shape: the generator's tiny Qwen2 preset (q/k/v biases, 4 query heads sharing 2
 * KV heads, rope base 1e6), 64 wide and 2 layers deep, so it loads in milliseconds and
 * takes ~1 MB; Q8_0 weights, a 2048-token context and a seed of its own. */
static void demo_params(struct mdl_gen_params *p)
{
    mdl_gen_default_params(p);
    p->arch = MDL_ARCH_QWEN2;
    p->type = GGML_TYPE_Q8_0;
    mdl_gen_preset(p, "tiny");
    p->n_ctx = 2048;
    p->seed = 7007;
}

/* True when path holds a GGUF file that our tokenizer loads. */
static bool usable(const char *path)
{
    struct gguf_file *f = NULL;
    struct tok_vocab *v = NULL;
    char err[256];
    bool ok = gguf_open(&f, path, err, sizeof(err)) == 0 && tok_load(&v, f, err, sizeof(err)) == 0;
    tok_free(v);
    gguf_close(f);
    return ok;
}

/* A fresh temporary name in dir: dir/.NAME.XXXXXX (created empty). */
static int temp_in(const char *dir, const char *name, char *out, size_t len)
{
    if ((size_t)snprintf(out, len, "%s/.%s.XXXXXX", dir, name) >= len)
        return -1;
    int fd = mkstemp(out);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

int mdl_demo_model(const char *model_dir, char *path_out, size_t len, char *err, size_t err_len)
{
    char path[4096], vocab_tmp[4200], model_tmp[4200];
    path_out[0] = 0;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", model_dir, MDL_DEMO_MODEL_NAME) >=
            sizeof(path) ||
        strlen(path) >= len) {
        snprintf(err, err_len, "model directory path too long");
        return -1;
    }
    if (access(path, F_OK) == 0 && usable(path)) {
        snprintf(path_out, len, "%s", path);
        return 0;
    }
    if (mdl_mkdirs(model_dir) != 0) {
        snprintf(err, err_len, "cannot create %s: %s", model_dir, strerror(errno));
        return -1;
    }
    if (temp_in(model_dir, "chatd-demo-vocab", vocab_tmp, sizeof(vocab_tmp)) != 0 ||
        temp_in(model_dir, "chatd-demo", model_tmp, sizeof(model_tmp)) != 0) {
        snprintf(err, err_len, "cannot create a file in %s: %s", model_dir, strerror(errno));
        return -1;
    }
    struct demo_vocab *v = calloc(1, sizeof(*v));
    struct mdl_gen_params p;
    int rc = -1;
    demo_params(&p);
    if (!v || build_vocab(v) != 0)
        snprintf(err, err_len, "out of memory building the demo vocabulary");
    else if (write_vocab(v, vocab_tmp) != 0)
        snprintf(err, err_len, "cannot write %s", vocab_tmp);
    else if (mdl_gen_write(&p, vocab_tmp, model_tmp, err, err_len) != 0)
        ; /* err set */
    else if (!usable(model_tmp))
        snprintf(err, err_len, "the generated demo model does not load");
    else if (chmod(model_tmp, 0644) != 0) /* mkstemp made it 0600 */
        snprintf(err, err_len, "cannot chmod %s: %s", model_tmp, strerror(errno));
    else if (rename(model_tmp, path) != 0)
        snprintf(err, err_len, "cannot rename %s to %s: %s", model_tmp, path, strerror(errno));
    else
        rc = 0;
    if (v)
        vocab_free(v);
    free(v);
    unlink(vocab_tmp);
    if (rc != 0)
        unlink(model_tmp);
    else
        snprintf(path_out, len, "%s", path);
    return rc;
}
