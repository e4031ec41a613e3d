/* test_genmodel.c - the random-model generator: deterministic bytes, files that the
 * loader, tokenizer and CPU backend accept, per-type tensor types, chat template. */
#include "test.h"

#include "backend.h"
#include "gguf.h"
#include "quant.h"
#include "tokenizer.h"

#include <unistd.h>

static void tmp_path(char *buf, size_t len, const char *tag)
{
    snprintf(buf, len, "/tmp/chatd-test-gen-%d-%s.gguf", (int)getpid(), tag);
}

static void test_deterministic(void)
{
    struct mdl_gen_params p;
    char a[128], b[128], err[256];
    mdl_gen_default_params(&p);
    p.type = GGML_TYPE_Q8_0;
    tmp_path(a, sizeof(a), "a");
    tmp_path(b, sizeof(b), "b");
    const char *vocab = test_fixture("tokenizer/ggml-vocab-llama-spm.gguf");
    char vpath[4096];
    snprintf(vpath, sizeof(vpath), "%s", vocab);
    ASSERT_INT_EQ(mdl_gen_write(&p, vpath, a, err, sizeof(err)), 0);
    ASSERT_INT_EQ(mdl_gen_write(&p, vpath, b, err, sizeof(err)), 0);
    size_t la, lb;
    char *da = test_read_file(a, &la);
    char *db = test_read_file(b, &lb);
    ASSERT_TRUE(da && db);
    ASSERT_INT_EQ(la, lb);
    ASSERT_TRUE(memcmp(da, db, la) == 0);
    free(da);
    free(db);
    p.seed++;
    ASSERT_INT_EQ(mdl_gen_write(&p, vpath, b, err, sizeof(err)), 0);
    da = test_read_file(a, &la);
    db = test_read_file(b, &lb);
    ASSERT_TRUE(la == lb && memcmp(da, db, la) != 0);
    free(da);
    free(db);
    unlink(a);
    unlink(b);
}

/* Generates, opens through the facade and runs one forward. */
static void gen_and_run(enum mdl_arch arch, uint32_t type, const char *vocab_rel)
{
    struct mdl_gen_params p;
    char path[128], err[256], vpath[4096];
    mdl_gen_default_params(&p);
    p.arch = arch;
    ASSERT_INT_EQ(mdl_gen_preset(&p, "tiny"), 0);
    p.type = type;
    p.chat_template = "{{ messages }}";
    tmp_path(path, sizeof(path), "run");
    snprintf(vpath, sizeof(vpath), "%s", test_fixture(vocab_rel));
    ASSERT_INT_EQ(mdl_gen_write(&p, vpath, path, err, sizeof(err)), 0);
    struct mdl_model *m = NULL;
    struct mdl_params mp;
    mdl_default_params(&mp);
    mp.n_ctx = 32;
    mp.n_threads = 2;
    int rc = mdl_open(&m, path, &mp, err, sizeof(err));
    unlink(path);
    if (rc)
        TEST_FAIL_("mdl_open: %s", err);
    ASSERT_STR_EQ(mdl_arch_name(m), arch == MDL_ARCH_QWEN2 ? "qwen2" : "llama");
    ASSERT_STR_EQ(mdl_chat_template(m), "{{ messages }}");
    ASSERT_STR_EQ(mdl_weight_type(m), gguf_type_name(type));
    ASSERT_INT_EQ(mdl_n_vocab(m), tok_n_vocab(mdl_vocab(m)));
    ASSERT_INT_EQ(mdl_hparams(m)->n_embd, 64);
    ASSERT_TRUE(mdl_n_params(m) > 64u * mdl_n_vocab(m));
    const struct mdl_weights *w = mdl_weights(m);
    ASSERT_INT_EQ(w->layers[0].bq.data != NULL, arch == MDL_ARCH_QWEN2);
    ASSERT_INT_EQ(w->tok_embd.type, type == GGML_TYPE_Q4_0 ? GGML_TYPE_Q8_0 : type);
    float *l = malloc(mdl_n_vocab(m) * sizeof(float));
    int32_t toks[3] = {1, 2, 3}, pos[3] = {0, 1, 2}, slot[3] = {0, 0, 0};
    bool want[3] = {false, false, true};
    struct bk_batch b = {3, toks, pos, slot, want};
    ASSERT_INT_EQ(mdl_forward(m, &b, l), 0);
    double ss = 0;
    for (uint32_t i = 0; i < mdl_n_vocab(m); i++)
        ss += (double)l[i] * l[i];
    double sd = sqrt(ss / mdl_n_vocab(m));
    ASSERT_TRUE(sd > 0.2 && sd < 5); /* logits of std ~1, as the fixtures */
    free(l);
    mdl_close(m);
}

static void test_llama_f16(void)
{
    gen_and_run(MDL_ARCH_LLAMA, GGML_TYPE_F16, "tokenizer/ggml-vocab-llama-spm.gguf");
}

static void test_llama_q4_0(void)
{
    gen_and_run(MDL_ARCH_LLAMA, GGML_TYPE_Q4_0, "tokenizer/ggml-vocab-llama-spm.gguf");
}

static void test_qwen2_q8_0(void)
{
    gen_and_run(MDL_ARCH_QWEN2, GGML_TYPE_Q8_0, "tokenizer/ggml-vocab-gpt-2.gguf");
}

/* Last-position logits of a generated model (n_embd 128: the wide Q4_0 kernels apply). */
static int wide_logits(const char *path, float *l, uint32_t nv)
{
    struct mdl_model *m = NULL;
    struct mdl_params mp;
    char err[256];
    mdl_default_params(&mp);
    mp.n_ctx = 32;
    mp.n_threads = 2;
    if (mdl_open(&m, path, &mp, err, sizeof(err)) != 0 || mdl_n_vocab(m) != nv) {
        mdl_close(m);
        return -1;
    }
    int32_t toks[5] = {1, 450, 7483, 310, 3444}, pos[5] = {0, 1, 2, 3, 4}, slot[5] = {0};
    bool want[5] = {false, false, false, false, true};
    printf("%s, attn_q type %s\n", mdl_backend_ops(m)->describe(mdl_backend(m)),
           gguf_type_name(mdl_weights(m)->layers[0].wq.type));
    struct bk_batch b = {5, toks, pos, slot, want};
    int rc = mdl_forward(m, &b, l);
    int32_t one = 338, p5 = 5;
    struct bk_batch b1 = {1, &one, &p5, slot, want + 4};
    if (rc == 0)
        rc = mdl_forward(m, &b1, l);
    mdl_close(m);
    return rc;
}

/* The SIMD path (repacked Q4_0, tiled kernels) against the plain C path, end to end. */
static void simd_vs_plain(uint32_t type)
{
    struct mdl_gen_params p;
    char path[128], err[256], vpath[4096];
    mdl_gen_default_params(&p);
    p.type = type;
    p.n_embd = 128;
    p.n_head = 4;
    p.n_head_kv = 2;
    p.n_ff = 256;
    tmp_path(path, sizeof(path), "wide");
    snprintf(vpath, sizeof(vpath), "%s", test_fixture("tokenizer/ggml-vocab-llama-spm.gguf"));
    ASSERT_INT_EQ(mdl_gen_write(&p, vpath, path, err, sizeof(err)), 0);
    uint32_t nv = 32000;
    float *fast = malloc(nv * sizeof(float)), *plain = malloc(nv * sizeof(float));
    int rc1 = wide_logits(path, fast, nv);
    quant_force_plain(true);
    int rc2 = wide_logits(path, plain, nv);
    quant_force_plain(false);
    unlink(path);
    ASSERT_INT_EQ(rc1, 0);
    ASSERT_INT_EQ(rc2, 0);
    double maxd = 0;
    for (uint32_t i = 0; i < nv; i++)
        maxd = fmax(maxd, fabs((double)fast[i] - plain[i]));
    printf("simd vs plain, %s model: max |diff| %.3g\n", gguf_type_name(type), maxd);
    ASSERT_TRUE(maxd < 0.02);
    free(fast);
    free(plain);
}

static void test_simd_matches_plain(void)
{
    simd_vs_plain(GGML_TYPE_Q4_0);
    simd_vs_plain(GGML_TYPE_Q8_0);
    simd_vs_plain(GGML_TYPE_F16);
}

static void test_bad_params(void)
{
    struct mdl_gen_params p;
    char err[256];
    mdl_gen_default_params(&p);
    p.n_head = 3;
    ASSERT_TRUE(mdl_gen_write(&p, "nonexistent.gguf", "/tmp/x.gguf", err, sizeof(err)) < 0);
    ASSERT_STR_CONTAINS(err, "shape");
    ASSERT_INT_EQ(mdl_gen_preset(&p, "nope"), -1);
    ASSERT_INT_EQ(mdl_gen_preset(&p, "bench-llama"), 0);
    ASSERT_INT_EQ(p.n_embd, 1024);
    ASSERT_INT_EQ(p.n_ff, 2816);
}

int main(void)
{
    RUN(test_deterministic);
    RUN(test_llama_f16);
    RUN(test_llama_q4_0);
    RUN(test_qwen2_q8_0);
    RUN(test_simd_matches_plain);
    RUN(test_bad_params);
    return TEST_DONE();
}
