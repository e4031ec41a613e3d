/* test_demo.c - mdl_demo_model: the generated demo model loads (mdl_open, and
 * tok_load on the file), its vocabulary behaves like a Qwen2-style byte-level BPE
 * one (merges apply, ChatML control tokens parse, EOS is <|im_end|>, no BOS added),
 * one forward gives finite logits, two generations in different directories are
 * byte-identical, an existing file is reused and a damaged one replaced. */
#include "test.h"

#include "model.h"

#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir_a[256];
static char dir_b[256];

static void test_generate_and_load(void)
{
    char path[512], err[256];
    ASSERT_INT_EQ(mdl_demo_model(dir_a, path, sizeof(path), err, sizeof(err)), 0);
    char want[512];
    snprintf(want, sizeof(want), "%s/chatd-demo.gguf", dir_a);
    ASSERT_STR_EQ(path, want);

    struct mdl_params mp;
    mdl_default_params(&mp);
    mp.n_threads = 1;
    struct mdl_model *m = NULL;
    int rc = mdl_open(&m, path, &mp, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "  mdl_open: %s\n", err);
    ASSERT_INT_EQ(rc, 0);
    ASSERT_STR_EQ(mdl_arch_name(m), "qwen2");
    ASSERT_STR_EQ(mdl_weight_type(m), "Q8_0");
    ASSERT_INT_EQ(mdl_n_ctx(m), 2048);
    ASSERT_STR_EQ(mdl_chat_template(m), tmpl_builtin("chatml"));

    /* one forward of two tokens: finite logits */
    const struct tok_vocab *tv = mdl_vocab(m);
    uint32_t n_vocab = mdl_n_vocab(m);
    ASSERT_INT_EQ(n_vocab, tok_n_vocab(tv));
    int32_t toks[2] = {tok_find(tv, "<|im_start|>"), tok_find(tv, "Ġhello")};
    int32_t pos[2] = {0, 1};
    int32_t slot[2] = {0, 0};
    bool want_logits[2] = {false, true};
    struct bk_batch b = {2, toks, pos, slot, want_logits};
    float *logits = malloc(n_vocab * sizeof(*logits));
    ASSERT_TRUE(logits != NULL);
    rc = mdl_forward(m, &b, logits);
    bool finite = true;
    for (uint32_t i = 0; i < n_vocab; i++)
        finite = finite && isfinite(logits[i]);
    free(logits);
    mdl_close(m);
    ASSERT_INT_EQ(rc, 0);
    ASSERT_TRUE(finite);
}

static void test_vocabulary(void)
{
    char path[512], err[256];
    ASSERT_INT_EQ(mdl_demo_model(dir_a, path, sizeof(path), err, sizeof(err)), 0);
    struct gguf_file *f = NULL;
    struct tok_vocab *v = NULL;
    ASSERT_INT_EQ(gguf_open(&f, path, err, sizeof(err)), 0);
    int rc = tok_load(&v, f, err, sizeof(err));
    gguf_close(f);
    if (rc != 0)
        fprintf(stderr, "  tok_load: %s\n", err);
    ASSERT_INT_EQ(rc, 0);
    ASSERT_STR_EQ(tok_kind_name(v), "gpt2");
    ASSERT_STR_EQ(tok_pre_name(v), "gpt-2");
    ASSERT_INT_EQ(tok_eos(v), tok_find(v, "<|im_end|>"));
    ASSERT_INT_EQ(tok_bos(v), tok_find(v, "<|endoftext|>"));
    ASSERT_TRUE(!tok_add_bos(v));
    ASSERT_TRUE(tok_is_eog(v, tok_eos(v)));
    ASSERT_INT_EQ(tok_type(v, tok_find(v, "<|im_start|>")), TOK_TYPE_CONTROL);
    ASSERT_INT_EQ(tok_type(v, tok_find(v, "<think>")), TOK_TYPE_USER_DEFINED);
    ASSERT_INT_OP(tok_n_vocab(v), >, 256 + 300);

    /* merges: every space-led merge ranks before the bare-word ones, so a listed
     * word after a space becomes one token */
    const char *text = " the model is";
    int32_t *ids = NULL;
    size_t n = 0;
    ASSERT_INT_EQ(tok_encode(v, text, strlen(text), false, false, &ids, &n), 0);
    ASSERT_INT_EQ(n, 3);
    ASSERT_INT_EQ(ids[0], tok_find(v, "Ġthe"));
    ASSERT_INT_EQ(ids[1], tok_find(v, "Ġmodel"));
    ASSERT_INT_EQ(ids[2], tok_find(v, "Ġis"));
    free(ids);

    /* ChatML special tokens parse; any bytes round-trip */
    const char *chat = "<|im_start|>user\nZürich? 42 <think>x</think><|im_end|>\n";
    ASSERT_INT_EQ(tok_encode(v, chat, strlen(chat), false, true, &ids, &n), 0);
    ASSERT_INT_EQ(ids[0], tok_find(v, "<|im_start|>"));
    bool has_think = false;
    for (size_t i = 0; i < n; i++)
        has_think = has_think || ids[i] == tok_find(v, "<think>");
    ASSERT_TRUE(has_think);
    char *back = NULL;
    size_t back_len = 0;
    ASSERT_INT_EQ(tok_decode(v, ids, n, TOK_DECODE_SPECIAL, &back, &back_len), 0);
    free(ids);
    ASSERT_STR_EQ(back, chat);
    free(back);
    tok_free(v);
}

static void test_deterministic_and_reused(void)
{
    char pa[512], pb[512], err[256];
    ASSERT_INT_EQ(mdl_demo_model(dir_a, pa, sizeof(pa), err, sizeof(err)), 0);
    ASSERT_INT_EQ(mdl_demo_model(dir_b, pb, sizeof(pb), err, sizeof(err)), 0);
    size_t la, lb;
    unsigned char *a = test_read_file(pa, &la);
    unsigned char *b = test_read_file(pb, &lb);
    bool same = a && b && la == lb && memcmp(a, b, la) == 0;
    free(a);
    free(b);
    ASSERT_TRUE(same);
    ASSERT_INT_OP(la, <, 2u << 20);

    /* present and valid: reused, not rewritten */
    struct stat st1, st2;
    ASSERT_INT_EQ(stat(pa, &st1), 0);
    ASSERT_INT_EQ(mdl_demo_model(dir_a, pa, sizeof(pa), err, sizeof(err)), 0);
    ASSERT_INT_EQ(stat(pa, &st2), 0);
    ASSERT_INT_EQ(st1.st_ino, st2.st_ino);

    /* damaged: replaced by a good one */
    FILE *f = fopen(pb, "wb");
    ASSERT_TRUE(f != NULL);
    fputs("GGUF garbage", f);
    fclose(f);
    ASSERT_INT_EQ(mdl_demo_model(dir_b, pb, sizeof(pb), err, sizeof(err)), 0);
    b = test_read_file(pb, &lb);
    ASSERT_INT_EQ(lb, la);
    free(b);

    /* no stray temporary files */
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 1", dir_b);
    ASSERT_INT_EQ(system(cmd), 0);
}

static void test_creates_directory_and_reports_errors(void)
{
    char sub[400], path[512], err[256];
    snprintf(sub, sizeof(sub), "%s/x/y/models", dir_b);
    ASSERT_INT_EQ(mdl_demo_model(sub, path, sizeof(path), err, sizeof(err)), 0);
    ASSERT_TRUE(access(path, R_OK) == 0);
    /* a model_dir that is a file */
    char file[512];
    snprintf(file, sizeof(file), "%s/chatd-demo.gguf/sub", dir_b);
    ASSERT_INT_EQ(mdl_demo_model(file, path, sizeof(path), err, sizeof(err)), -1);
    ASSERT_STR_CONTAINS(err, "cannot create");
    ASSERT_STR_EQ(path, "");
}

int main(void)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir_a, sizeof(dir_a), "%s/chatd-demo-a-XXXXXX", tmp);
    snprintf(dir_b, sizeof(dir_b), "%s/chatd-demo-b-XXXXXX", tmp);
    if (!mkdtemp(dir_a) || !mkdtemp(dir_b))
        return 1;
    RUN(test_generate_and_load);
    RUN(test_vocabulary);
    RUN(test_deterministic_and_reused);
    RUN(test_creates_directory_and_reports_errors);
    test_remove_dir(dir_a);
    test_remove_dir(dir_b);
    return TEST_DONE();
}
