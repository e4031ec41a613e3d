/* test_genmodel.c - the random-model generator: deterministic bytes, files of every
 * architecture that the loader, tokenizer and CPU backend accept, per-type tensor types,
 * chat template, the --like presets' shapes and the padded vocabulary. */
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

/* Generates, opens through the facade and runs one forward; tune (may be NULL) adjusts
 * the tiny preset. */
static void gen_and_run_tuned(enum mdl_arch arch, uint32_t type, const char *vocab_rel,
                              void (*tune)(struct mdl_gen_params *p))
{
    struct mdl_gen_params p;
    char path[128], err[256], vpath[4096];
    mdl_gen_default_params(&p);
    p.arch = arch;
    ASSERT_INT_EQ(mdl_gen_preset(&p, "tiny"), 0);
    p.type = type;
    if (tune)
        tune(&p);
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
    ASSERT_STR_EQ(mdl_arch_name(m), mdl_arch_str(arch));
    ASSERT_STR_EQ(mdl_chat_template(m), "{{ messages }}");
    ASSERT_STR_EQ(mdl_weight_type(m), gguf_type_name(type));
    ASSERT_INT_EQ(mdl_n_vocab(m), tok_n_vocab(mdl_vocab(m)));
    ASSERT_INT_EQ(mdl_hparams(m)->n_embd, 64);
    ASSERT_TRUE(mdl_n_params(m) > 64u * mdl_n_vocab(m));
    const struct mdl_weights *w = mdl_weights(m);
    ASSERT_INT_EQ(w->layers[0].bq.data != NULL,
                  arch == MDL_ARCH_QWEN2 || arch == MDL_ARCH_QWEN2MOE);
    ASSERT_INT_EQ(w->hp.n_expert, p.n_expert);
    ASSERT_INT_EQ(w->layers[1].q_norm.data != NULL,
                  arch == MDL_ARCH_QWEN3 || arch == MDL_ARCH_GEMMA3);
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

static void gen_and_run(enum mdl_arch arch, uint32_t type, const char *vocab_rel)
{
    gen_and_run_tuned(arch, type, vocab_rel, NULL);
}

static void tune_experts(struct mdl_gen_params *p)
{
    p->n_expert = 4;
    p->n_expert_used = 2;
    p->n_ff_exp = 64;
}

static void tune_head32(struct mdl_gen_params *p)
{
    p->head_dim = 32;
}

/* Every new architecture, written and run (Q8_0; the llama MoE in Q4_0). */
static void test_new_archs(void)
{
    const char *spm = "tokenizer/ggml-vocab-llama-spm.gguf";
    gen_and_run_tuned(MDL_ARCH_QWEN3, GGML_TYPE_Q8_0, "tokenizer/ggml-vocab-qwen3.gguf",
                      tune_head32);
    gen_and_run_tuned(MDL_ARCH_PHI3, GGML_TYPE_Q8_0, spm, NULL);
    gen_and_run_tuned(MDL_ARCH_GEMMA2, GGML_TYPE_Q8_0, spm, tune_head32);
    gen_and_run_tuned(MDL_ARCH_GEMMA3, GGML_TYPE_Q8_0, spm, tune_head32);
    gen_and_run_tuned(MDL_ARCH_QWEN2MOE, GGML_TYPE_Q8_0, spm, tune_experts);
    gen_and_run_tuned(MDL_ARCH_LLAMA, GGML_TYPE_Q4_0, spm, tune_experts);
}

/* --like presets: the shapes of the real models, and a vocabulary padded to their size
 * (checked on a one-layer, narrow copy so the file stays small). */
static void test_like_presets(void)
{
    struct mdl_gen_params p;
    mdl_gen_default_params(&p);
    ASSERT_INT_EQ(mdl_gen_like(&p, "Qwen3-0.6B"), 0);
    ASSERT_INT_EQ(p.arch, MDL_ARCH_QWEN3);
    ASSERT_INT_EQ(p.n_embd, 1024);
    ASSERT_INT_EQ(p.head_dim, 128);
    ASSERT_INT_EQ(p.n_head * p.head_dim, 2048);
    ASSERT_INT_EQ(p.n_vocab, 151936);
    ASSERT_INT_EQ(mdl_gen_like(&p, "Llama-3.2-1B"), 0);
    ASSERT_INT_EQ(p.n_layer, 16);
    ASSERT_INT_EQ(p.n_ctx, 131072);
    ASSERT_NEAR(p.llama3_rope, 32.0, 0);
    ASSERT_INT_EQ(mdl_gen_like(&p, "Gemma-2-2B"), 0);
    ASSERT_INT_EQ(p.head_dim, 256);
    ASSERT_INT_EQ(p.n_swa, 4096);
    ASSERT_INT_EQ(mdl_gen_like(&p, "Phi-3.5-mini"), 0);
    ASSERT_INT_EQ(p.n_vocab, 32064);
    ASSERT_TRUE(!p.tied_output && p.longrope);
    ASSERT_INT_EQ(mdl_gen_like(&p, "Qwen2.5-0.5B"), 0);
    ASSERT_INT_EQ(p.n_ff, 4864);
    ASSERT_INT_EQ(mdl_gen_like(&p, "Qwen1.5-MoE-A2.7B"), 0);
    ASSERT_INT_EQ(p.n_expert, 60);
    ASSERT_INT_EQ(mdl_gen_like(&p, "GPT-5"), -1);
    int n = 0;
    for (const char *const *l = mdl_gen_like_names(); *l; l++)
        n++;
    ASSERT_INT_EQ(n, 7);

    /* Phi-3.5-mini's vocabulary (32064) and LongRoPE keys on a small copy */
    char path[128], err[256], vpath[4096];
    ASSERT_INT_EQ(mdl_gen_like(&p, "Phi-3.5-mini"), 0);
    p.type = GGML_TYPE_Q8_0;
    p.n_layer = 1;
    p.n_embd = 64;
    p.n_head = 2;
    p.n_head_kv = 2;
    p.n_ff = 64;
    tmp_path(path, sizeof(path), "like");
    snprintf(vpath, sizeof(vpath), "%s", test_fixture("tokenizer/ggml-vocab-llama-spm.gguf"));
    ASSERT_INT_EQ(mdl_gen_write(&p, vpath, path, err, sizeof(err)), 0);
    struct mdl_model *m = NULL;
    struct mdl_params mp;
    mdl_default_params(&mp);
    mp.n_ctx = 16;
    int rc = mdl_open(&m, path, &mp, err, sizeof(err));
    unlink(path);
    if (rc)
        TEST_FAIL_("mdl_open: %s", err);
    ASSERT_INT_EQ(mdl_n_vocab(m), 32064);
    ASSERT_INT_EQ(tok_n_vocab(mdl_vocab(m)), 32064);
    ASSERT_INT_EQ(tok_type(mdl_vocab(m), 32063), TOK_TYPE_UNUSED);
    ASSERT_INT_EQ(mdl_hparams(m)->n_ctx_orig, 4096);
    ASSERT_NEAR(mdl_hparams(m)->rope.attn_factor, 1.19024, 1e-4);
    ASSERT_TRUE(mdl_weights(m)->rope_long.data && mdl_weights(m)->rope_short.data);
    mdl_close(m);

    /* a vocabulary larger than the preset's is refused */
    ASSERT_INT_EQ(mdl_gen_like(&p, "Phi-3.5-mini"), 0);
    snprintf(vpath, sizeof(vpath), "%s", test_fixture("tokenizer/ggml-vocab-qwen3.gguf"));
    ASSERT_TRUE(mdl_gen_write(&p, vpath, path, err, sizeof(err)) < 0);
    ASSERT_STR_CONTAINS(err, "more than n_vocab 32064");
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
    ASSERT_INT_EQ(mdl_gen_preset(&p, "bench-moe"), 0);
    ASSERT_INT_EQ(p.n_expert_used * p.n_ff_exp, 2816); /* the dense model's active width */
    mdl_gen_default_params(&p);
    p.arch = MDL_ARCH_QWEN2MOE; /* without experts */
    ASSERT_TRUE(mdl_gen_write(&p, "nonexistent.gguf", "/tmp/x.gguf", err, sizeof(err)) < 0);
    ASSERT_STR_CONTAINS(err, "experts");
}

int main(void)
{
    RUN(test_deterministic);
    RUN(test_llama_f16);
    RUN(test_llama_q4_0);
    RUN(test_qwen2_q8_0);
    RUN(test_new_archs);
    RUN(test_like_presets);
    RUN(test_simd_matches_plain);
    RUN(test_bad_params);
    return TEST_DONE();
}
