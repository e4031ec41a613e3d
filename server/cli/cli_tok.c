/* cli_tok.c - the model inspection subcommands:
 *   chatd info MODEL.gguf                      summary of a GGUF file
 *   chatd tokenize --model FILE [--bos]        stdin text -> ids on one line
 *   chatd detokenize --model FILE [--special]  stdin ids -> text
 * A file the loader refuses gives one line naming the problem and exit code 2.
 */
#include "cli/cli.h"
#include "model.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ----------------------------------------------------------------------- */

/* Reads all of stdin into a heap buffer, NUL-terminated after *len bytes (caller
 * frees); NULL on failure. */
static char *read_stdin(size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    for (;;) {
        if (n + 1 >= cap) {
            char *p = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!p) {
                free(buf);
                return NULL;
            }
            buf = p;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, stdin);
        n += r;
        if (r == 0)
            break;
    }
    if (ferror(stdin)) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

/* Opens path and loads its vocabulary; prints the problem and returns 2 on failure. */
static int open_vocab(const char *path, struct gguf_file **f, struct tok_vocab **v)
{
    char err[512];
    if (gguf_open(f, path, err, sizeof(err)) != 0) {
        fprintf(stderr, "chatd: %s: %s\n", path, err);
        return 2;
    }
    if (tok_load(v, *f, err, sizeof(err)) != 0) {
        fprintf(stderr, "chatd: %s: %s\n", path, err);
        gguf_close(*f);
        return 2;
    }
    return 0;
}

/* Parses "--model FILE" and the boolean flag `flag` (may be NULL). */
static int parse_model_args(int argc, char **argv, const char *flag, const char **model,
                            bool *flag_set)
{
    *model = NULL;
    if (flag_set)
        *flag_set = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
            *model = argv[++i];
        } else if (flag && strcmp(argv[i], flag) == 0) {
            *flag_set = true;
        } else {
            fprintf(stderr, "usage: chatd %s --model FILE%s%s%s\n", argv[0], flag ? " [" : "",
                    flag ? flag : "", flag ? "]" : "");
            return 2;
        }
    }
    if (!*model) {
        fprintf(stderr, "chatd %s: --model FILE is required\n", argv[0]);
        return 2;
    }
    return 0;
}

/* ---- info -------------------------------------------------------------------------- */

static void print_size(const char *label, double bytes, unsigned long long exact)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        u++;
    }
    printf("%s: %.1f %s (%llu bytes)\n", label, bytes, units[u], exact);
}

static void print_tensor_summary(const struct gguf_file *f)
{
    uint64_t n_params = 0;
    uint32_t hist[GGML_TYPE_COUNT] = {0};
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(f, i);
        n_params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]; /* checked at open */
        if (t->type < GGML_TYPE_COUNT)
            hist[t->type]++;
    }
    double p = (double)n_params;
    const char *unit = p >= 1e9 ? "B" : p >= 1e6 ? "M" : p >= 1e3 ? "K" : "";
    double scale = p >= 1e9 ? 1e9 : p >= 1e6 ? 1e6 : p >= 1e3 ? 1e3 : 1;
    if (scale > 1)
        printf("parameters: %.2f%s (%llu)\n", p / scale, unit, (unsigned long long)n_params);
    else
        printf("parameters: %llu\n", (unsigned long long)n_params);
    printf("tensors: %llu\n", (unsigned long long)gguf_n_tensors(f));
    printf("tensor types:");
    bool any = false;
    for (uint32_t t = 0; t < GGML_TYPE_COUNT; t++) {
        if (hist[t]) {
            printf(" %s=%u", gguf_type_name(t), hist[t]);
            any = true;
        }
    }
    printf("%s\n", any ? "" : " none");
}

int cli_info(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: chatd info MODEL.gguf\n");
        return 2;
    }
    const char *path = argv[1];
    char err[512];
    struct gguf_file *f;
    if (gguf_open(&f, path, err, sizeof(err)) != 0) {
        fprintf(stderr, "chatd: %s: %s\n", path, err);
        return 2;
    }
    struct tok_vocab *v = NULL;
    if (gguf_find_kv(f, "tokenizer.ggml.model") && tok_load(&v, f, err, sizeof(err)) != 0) {
        fprintf(stderr, "chatd: %s: %s\n", path, err);
        gguf_close(f);
        return 2;
    }
    char *arch = NULL;
    gguf_get_str(f, "general.architecture", &arch);
    char *name = NULL;
    gguf_get_str(f, "general.name", &name);
    printf("file: %s\n", path);
    print_size("file size", (double)gguf_file_size(f), (unsigned long long)gguf_file_size(f));
    printf("gguf version: %u\n", gguf_version(f));
    printf("architecture: %s\n", arch ? arch : "(none)");
    if (name)
        printf("name: %s\n", name);
    char key[160];
    uint32_t ctx = 0;
    snprintf(key, sizeof(key), "%s.context_length", arch ? arch : "");
    if (arch && gguf_get_u32(f, key, &ctx) == 0)
        printf("context length: %u\n", ctx);
    else
        printf("context length: (none)\n");
    print_tensor_summary(f);
    if (v)
        printf("tokenizer: %s, pre %s, %d tokens, bos %d, eos %d\n", tok_kind_name(v),
               tok_pre_name(v), tok_n_vocab(v), tok_bos(v), tok_eos(v));
    else
        printf("tokenizer: (none)\n");
    printf("chat template: %s\n", gguf_find_kv(f, "tokenizer.chat_template") ? "yes" : "no");
    free(arch);
    free(name);
    tok_free(v);
    gguf_close(f);
    return 0;
}

/* ---- tokenize / detokenize --------------------------------------------------------- */

/* What tokenize and detokenize share: "--model FILE" and one optional flag, the model's
 * vocabulary, all of stdin, and token ids (tokenize's output, detokenize's input). */
struct tok_cmd {
    struct gguf_file *f;
    struct tok_vocab *v;
    char *in; /* stdin, NUL-terminated after len bytes */
    size_t len;
    bool flag;
    int32_t *ids;
    size_t n_ids;
};

/* Parses the arguments, loads the vocabulary and reads stdin. Returns 0, or the exit
 * code after printing the problem (nothing is left to close). */
static int tok_cmd_open(struct tok_cmd *c, int argc, char **argv, const char *flag)
{
    const char *model;
    memset(c, 0, sizeof(*c));
    int rc = parse_model_args(argc, argv, flag, &model, &c->flag);
    if (rc || (rc = open_vocab(model, &c->f, &c->v)))
        return rc;
    if (!(c->in = read_stdin(&c->len))) {
        fprintf(stderr, "chatd %s: cannot read stdin: %s\n", argv[0], strerror(errno));
        tok_free(c->v);
        gguf_close(c->f);
        return 1;
    }
    return 0;
}

static void tok_cmd_close(struct tok_cmd *c)
{
    free(c->ids);
    free(c->in);
    tok_free(c->v);
    gguf_close(c->f);
}

int cli_tokenize(int argc, char **argv)
{
    struct tok_cmd c;
    int rc = tok_cmd_open(&c, argc, argv, "--bos");
    if (rc)
        return rc;
    if ((rc = tok_encode(c.v, c.in, c.len, c.flag, false, &c.ids, &c.n_ids)) != 0) {
        fprintf(stderr, "chatd tokenize: %s\n", tok_strerror(rc));
        rc = rc == TOK_EINVAL ? 2 : 1;
    } else {
        for (size_t i = 0; i < c.n_ids; i++)
            printf(i ? " %d" : "%d", c.ids[i]);
        printf("\n");
    }
    tok_cmd_close(&c);
    return rc;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Parses whitespace-separated ids from a NUL-terminated buffer; returns 2 with a
 * message on bad input. */
static int parse_ids(const char *text, size_t len, int32_t n_vocab, int32_t **ids, size_t *n)
{
    size_t cap = 64;
    *n = 0;
    *ids = malloc(cap * sizeof(**ids));
    if (!*ids)
        return 1;
    const char *p = text, *end = text + len;
    while (p < end) {
        if (is_space(*p)) {
            p++;
            continue;
        }
        char *q;
        errno = 0;
        long x = strtol(p, &q, 10);
        if (q == p || errno || (q < end && !is_space(*q))) {
            fprintf(stderr, "chatd detokenize: not a token id at byte %zu\n", (size_t)(p - text));
            return 2;
        }
        if (x < 0 || x >= n_vocab) {
            fprintf(stderr, "chatd detokenize: token id %ld is out of range [0, %d)\n", x, n_vocab);
            return 2;
        }
        if (*n == cap) {
            int32_t *r = realloc(*ids, 2 * cap * sizeof(**ids));
            if (!r)
                return 1;
            *ids = r;
            cap *= 2;
        }
        (*ids)[(*n)++] = (int32_t)x;
        p = q;
    }
    return 0;
}

int cli_detokenize(int argc, char **argv)
{
    struct tok_cmd c;
    int rc = tok_cmd_open(&c, argc, argv, "--special");
    if (rc)
        return rc;
    if ((rc = parse_ids(c.in, c.len, tok_n_vocab(c.v), &c.ids, &c.n_ids)) == 0) {
        unsigned flags = (c.flag ? TOK_DECODE_SPECIAL : 0) |
                         (tok_kind(c.v) == TOK_KIND_SPM ? TOK_DECODE_STRIP_SPACE : 0);
        char *text;
        size_t tl;
        if (tok_decode(c.v, c.ids, c.n_ids, flags, &text, &tl) != 0) {
            rc = 1;
        } else {
            fwrite(text, 1, tl, stdout);
            free(text);
        }
    }
    tok_cmd_close(&c);
    return rc;
}
