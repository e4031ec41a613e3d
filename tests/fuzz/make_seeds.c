/* make_seeds.c - writes the small seed files of the fuzz corpora (run by hand, outputs
 * committed under tests/fuzz/corpus/): a vocab-only SentencePiece file, a vocab-only
 * byte-level BPE file, tiny llama and qwen2 models over the small vocabulary (F32 and
 * Q8_0), one F32 model of each newer architecture (qwen3, phi3 with LongRoPE, gemma2,
 * gemma3, llama experts, qwen2moe, Llama 3 rope_freqs), and a few deliberately broken
 * variants (bad version, truncations, a tensor
 * offset past the end). Usage: make_seeds OUT_DIR (writes OUT_DIR/<name>.gguf). */
#include "model.h"
#include "gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *out_dir;

static char *path_of(const char *name)
{
    static char p[4096];
    snprintf(p, sizeof(p), "%s/%s.gguf", out_dir, name);
    return p;
}

/* 3 specials + 256 byte tokens + a few words */
static const char *const words_spm[] = {"\xE2\x96\x81Hello", "\xE2\x96\x81world", "\xE2\x96\x81the",
                                        "<|im_start|>", "<|im_end|>", "<think>"};

static int write_spm(const char *name)
{
    struct gguf_writer *w = gguf_writer_new();
    size_t nw = sizeof(words_spm) / sizeof(words_spm[0]);
    size_t n = 3 + 256 + nw;
    char **toks = calloc(n, sizeof(*toks));
    float *scores = calloc(n, sizeof(*scores));
    int32_t *types = calloc(n, sizeof(*types));
    const char *sp[3] = {"<unk>", "<s>", "</s>"};
    for (size_t i = 0; i < n; i++) {
        toks[i] = malloc(16);
        if (i < 3) {
            strcpy(toks[i], sp[i]);
            types[i] = i == 0 ? 2 : 3;
        } else if (i < 259) {
            snprintf(toks[i], 16, "<0x%02X>", (unsigned)(i - 3));
            types[i] = 6;
        } else {
            free(toks[i]);
            toks[i] = strdup(words_spm[i - 259]);
            types[i] = (i - 259) >= 3 ? ((i - 259) == 5 ? 4 : 3) : 1;
            scores[i] = -(float)(i - 259);
        }
    }
    gguf_writer_add_str(w, "general.architecture", "llama");
    gguf_writer_add_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, n);
    gguf_writer_add_arr_f32(w, "tokenizer.ggml.scores", scores, n);
    gguf_writer_add_arr_i32(w, "tokenizer.ggml.token_type", types, n);
    gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 1);
    gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 2);
    gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", true);
    int rc = gguf_writer_write_file(w, path_of(name));
    for (size_t i = 0; i < n; i++)
        free(toks[i]);
    free(toks);
    free(scores);
    free(types);
    gguf_writer_free(w);
    return rc;
}

/* byte-level BPE: the 256 byte symbols, a few merges, specials */
static int write_bpe(const char *name)
{
    struct gguf_writer *w = gguf_writer_new();
    char *toks[300];
    int32_t types[300];
    size_t n = 0;
    /* GPT-2 byte -> code point map */
    for (int b = 0; b < 256; b++) {
        unsigned cp;
        if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
            cp = (unsigned)b;
        } else {
            static unsigned extra = 0;
            cp = 256 + extra++;
        }
        char *s = malloc(4);
        if (cp < 0x80) {
            s[0] = (char)cp;
            s[1] = 0;
        } else {
            s[0] = (char)(0xC0 | (cp >> 6));
            s[1] = (char)(0x80 | (cp & 0x3F));
            s[2] = 0;
        }
        types[n] = 1;
        toks[n++] = s;
    }
    static const char *const extra_toks[] = {"He", "ll", "Hell", "Hello", "\xC4\xA0w", "or",
                                             "<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    for (size_t i = 0; i < sizeof(extra_toks) / sizeof(extra_toks[0]); i++) {
        types[n] = i >= 6 ? 3 : 1;
        toks[n++] = strdup(extra_toks[i]);
    }
    static const char *const merges[] = {"H e", "l l", "He ll", "Hell o", "\xC4\xA0 w", "o r"};
    gguf_writer_add_str(w, "general.architecture", "qwen2");
    gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_add_str(w, "tokenizer.ggml.pre", "qwen2");
    gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, n);
    gguf_writer_add_arr_i32(w, "tokenizer.ggml.token_type", types, n);
    gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", merges, 6);
    gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)n - 1);
    gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)n - 3);
    gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", false);
    gguf_writer_add_str(w, "tokenizer.chat_template",
                        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}");
    int rc = gguf_writer_write_file(w, path_of(name));
    for (size_t i = 0; i < n; i++)
        free(toks[i]);
    gguf_writer_free(w);
    return rc;
}

/* What a seed of the newer architectures adds: head size, experts, RoPE factors. */
struct seed_extra {
    uint32_t head_dim;
    uint32_t n_expert;
    float llama3_rope;
    int longrope;
    uint32_t n_swa;
};

static int write_model_ex(const char *name, const char *vocab, enum mdl_arch arch, uint32_t type,
                          uint32_t n_embd, int tied, const struct seed_extra *x)
{
    struct mdl_gen_params p;
    mdl_gen_default_params(&p);
    p.arch = arch;
    p.type = type;
    p.n_embd = n_embd;
    p.n_layer = 1;
    p.n_head = 2;
    p.n_head_kv = 1;
    p.n_ff = n_embd;
    p.n_ctx = 64;
    p.tied_output = tied;
    if (x) {
        p.head_dim = x->head_dim;
        p.n_expert = x->n_expert;
        p.n_expert_used = x->n_expert ? 2 : 0;
        p.llama3_rope = x->llama3_rope;
        p.longrope = x->longrope;
        p.n_swa = x->n_swa;
    }
    char err[256];
    char vpath[4096];
    snprintf(vpath, sizeof(vpath), "%s", path_of(vocab));
    int rc = mdl_gen_write(&p, vpath, path_of(name), err, sizeof(err));
    if (rc)
        fprintf(stderr, "make_seeds: %s: %s\n", name, err);
    return rc;
}

static int write_model(const char *name, const char *vocab, enum mdl_arch arch, uint32_t type,
                       uint32_t n_embd, int tied)
{
    return write_model_ex(name, vocab, arch, type, n_embd, tied, NULL);
}

/* One small model of each newer architecture and feature. */
static int write_new_archs(void)
{
    const struct seed_extra qwen3 = {.head_dim = 8};
    const struct seed_extra gemma = {.head_dim = 8, .n_swa = 4};
    const struct seed_extra moe = {.n_expert = 4};
    const struct seed_extra llama3 = {.llama3_rope = 8.0f};
    const struct seed_extra phi3 = {.longrope = 1, .n_swa = 16};
    return write_model_ex("model-qwen3-f32", "vocab-bpe", MDL_ARCH_QWEN3, GGML_TYPE_F32, 8, 1,
                          &qwen3) ||
           write_model_ex("model-phi3-f32", "vocab-spm", MDL_ARCH_PHI3, GGML_TYPE_F32, 8, 0,
                          &phi3) ||
           write_model_ex("model-gemma2-f32", "vocab-spm", MDL_ARCH_GEMMA2, GGML_TYPE_F32, 8, 1,
                          &gemma) ||
           write_model_ex("model-gemma3-f32", "vocab-spm", MDL_ARCH_GEMMA3, GGML_TYPE_F32, 8, 1,
                          &gemma) ||
           write_model_ex("model-moe-f32", "vocab-spm", MDL_ARCH_LLAMA, GGML_TYPE_F32, 8, 0,
                          &moe) ||
           write_model_ex("model-qwen2moe-f32", "vocab-bpe", MDL_ARCH_QWEN2MOE, GGML_TYPE_F32, 8,
                          0, &moe) ||
           write_model_ex("model-llama3rope-f32", "vocab-spm", MDL_ARCH_LLAMA, GGML_TYPE_F32, 8, 1,
                          &llama3);
}

/* Copies `from` to `name` with `len` bytes (truncation) and an optional 4-byte patch. */
static int variant(const char *from, const char *name, long len, long patch_at, uint32_t patch)
{
    FILE *fp = fopen(path_of(from), "rb");
    if (!fp)
        return -1;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n);
    if (fread(b, 1, (size_t)n, fp) != (size_t)n) {
        fclose(fp);
        free(b);
        return -1;
    }
    fclose(fp);
    if (len < 0 || len > n)
        len = n;
    if (patch_at >= 0 && patch_at + 4 <= len)
        memcpy(b + patch_at, &patch, 4);
    fp = fopen(path_of(name), "wb");
    if (!fp) {
        free(b);
        return -1;
    }
    fwrite(b, 1, (size_t)len, fp);
    fclose(fp);
    free(b);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds OUT_DIR\n");
        return 2;
    }
    out_dir = argv[1];
    int rc = write_spm("vocab-spm") || write_bpe("vocab-bpe") ||
             write_model("model-llama-f32", "vocab-spm", MDL_ARCH_LLAMA, GGML_TYPE_F32, 8, 0) ||
             write_model("model-qwen2-q8_0", "vocab-bpe", MDL_ARCH_QWEN2, GGML_TYPE_Q8_0, 32, 1) ||
             write_new_archs() ||
             variant("vocab-spm", "bad-version", -1, 4, 1) ||
             variant("vocab-spm", "bad-truncated-header", 20, -1, 0) ||
             variant("vocab-bpe", "bad-truncated-kv", 300, -1, 0) ||
             variant("model-llama-f32", "bad-truncated-data", 9000, -1, 0) ||
             variant("vocab-spm", "bad-nkv-huge", -1, 16, 0x7fffffff);
    if (rc)
        fprintf(stderr, "make_seeds: failed\n");
    return rc ? 1 : 0;
}
