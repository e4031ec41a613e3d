/* test_loader.c - mdl_load_weights on hand-made GGUF files: a good llama and qwen2
 * file, then one broken thing at a time (R11 key types, R14 tensors, R17 hparams);
 * every refusal must name the key or tensor. */
#include "test.h"

#include "gguf.h"
#include "loader.h"
#include "model.h"

enum { E = 32, NH = 2, NKV = 1, FF = 64, NV = 16, NL = 2 };

/* Knobs for one broken aspect of the file. */
struct spec {
    const char *arch;
    const char *skip_tensor; /* leave this tensor out */
    const char *bad_shape;   /* give this tensor a wrong row count */
    const char *q5_tensor;   /* store this tensor as Q5_0 */
    const char *f16_tensor;  /* store this tensor as F16 */
    int embd_as_string;      /* R11 */
    int eps_as_int;          /* R11 */
    uint32_t block_count;    /* R17 */
    uint32_t head_count;
    uint32_t ctx;
    int with_output;
};

static float zeros[E * FF * 2];

static void add_t(struct gguf_writer *w, const struct spec *s, const char *name, uint64_t ne0,
                  uint64_t ne1)
{
    if (s->skip_tensor && strcmp(name, s->skip_tensor) == 0)
        return;
    if (s->bad_shape && strcmp(name, s->bad_shape) == 0)
        ne1 = ne1 ? ne1 + 1 : 2;
    uint64_t ne[2] = {ne0, ne1 ? ne1 : 1};
    uint32_t type = GGML_TYPE_F32;
    size_t bytes = ne0 * ne[1] * 4;
    if (s->q5_tensor && strcmp(name, s->q5_tensor) == 0) {
        type = GGML_TYPE_Q5_0;
        bytes = ne0 / 32 * 22 * ne[1];
    } else if (s->f16_tensor && strcmp(name, s->f16_tensor) == 0) {
        type = GGML_TYPE_F16;
        bytes /= 2;
    }
    static float *big;
    if (!big)
        big = calloc(NV * E * 2, sizeof(float));
    gguf_writer_add_tensor(w, name, type, ne1 ? 2 : 1, ne, bytes <= sizeof(zeros) ? zeros : big,
                           bytes);
}

static int build(const struct spec *s, void **buf, size_t *len)
{
    struct gguf_writer *w = gguf_writer_new();
    const char *a = s->arch ? s->arch : "llama";
    char k[128];
    gguf_writer_add_str(w, "general.architecture", a);
#define U32(key, v) (snprintf(k, sizeof(k), "%s." key, a), gguf_writer_add_u32(w, k, v))
    if (s->embd_as_string) {
        snprintf(k, sizeof(k), "%s.embedding_length", a);
        gguf_writer_add_str(w, k, "32");
    } else {
        U32("embedding_length", E);
    }
    U32("block_count", s->block_count ? s->block_count : NL);
    U32("attention.head_count", s->head_count ? s->head_count : NH);
    U32("attention.head_count_kv", NKV);
    U32("feed_forward_length", FF);
    U32("context_length", s->ctx ? s->ctx : 128);
#undef U32
    snprintf(k, sizeof(k), "%s.attention.layer_norm_rms_epsilon", a);
    if (s->eps_as_int)
        gguf_writer_add_u32(w, k, 1);
    else
        gguf_writer_add_f32(w, k, 1e-5f);
    uint32_t hd = E / NH;
    add_t(w, s, "token_embd.weight", E, NV);
    add_t(w, s, "output_norm.weight", E, 0);
    if (s->with_output)
        add_t(w, s, "output.weight", E, NV);
    for (int l = 0; l < NL; l++) {
        char n[64];
#define T(suffix, ne0, ne1) (snprintf(n, sizeof(n), "blk.%d." suffix, l), add_t(w, s, n, ne0, ne1))
        T("attn_norm.weight", E, 0);
        T("attn_q.weight", E, NH * hd);
        T("attn_k.weight", E, NKV * hd);
        T("attn_v.weight", E, NKV * hd);
        if (strcmp(a, "qwen2") == 0) {
            T("attn_q.bias", NH * hd, 0);
            T("attn_k.bias", NKV * hd, 0);
            T("attn_v.bias", NKV * hd, 0);
        }
        T("attn_output.weight", NH * hd, E);
        T("ffn_norm.weight", E, 0);
        T("ffn_gate.weight", E, FF);
        T("ffn_up.weight", E, FF);
        T("ffn_down.weight", FF, E);
#undef T
    }
    int rc = gguf_writer_write_mem(w, buf, len);
    gguf_writer_free(w);
    return rc;
}

/* Loads a file built from s; returns the loader's code and its message in err. */
static int load(const struct spec *s, struct mdl_weights *wt, char *err, size_t err_len)
{
    void *buf = NULL;
    size_t len = 0;
    struct gguf_file *f = NULL;
    err[0] = '\0';
    if (build(s, &buf, &len) != 0)
        return 1000;
    if (gguf_open_buffer(&f, buf, len, err, err_len) != 0) {
        free(buf);
        return 1001;
    }
    int rc = mdl_load_weights(wt, f, err, err_len);
    /* the weights point into buf: tests only look at metadata after this */
    gguf_close(f);
    free(buf);
    return rc;
}

static void test_good_llama(void)
{
    struct spec s = {0};
    struct mdl_weights w;
    char err[256];
    ASSERT_INT_EQ(load(&s, &w, err, sizeof(err)), 0);
    ASSERT_INT_EQ(w.hp.arch, MDL_ARCH_LLAMA);
    ASSERT_INT_EQ(w.hp.n_vocab, NV);
    ASSERT_INT_EQ(w.hp.head_dim, E / NH);
    ASSERT_INT_EQ(w.hp.n_rot, E / NH);
    ASSERT_INT_EQ(w.hp.n_head_kv, NKV);
    ASSERT_NEAR(w.hp.rope_freq_base, 10000.0, 0);
    ASSERT_TRUE(!w.hp.rope_neox);
    ASSERT_TRUE(w.output.data == w.tok_embd.data); /* tied */
    ASSERT_TRUE(w.layers[1].bq.data == NULL);
    mdl_weights_fini(&w);
}

static void test_good_qwen2(void)
{
    struct spec s = {.arch = "qwen2", .with_output = 1};
    struct mdl_weights w;
    char err[256];
    ASSERT_INT_EQ(load(&s, &w, err, sizeof(err)), 0);
    ASSERT_INT_EQ(w.hp.arch, MDL_ARCH_QWEN2);
    ASSERT_TRUE(w.hp.rope_neox);
    ASSERT_TRUE(w.output.data != w.tok_embd.data);
    ASSERT_TRUE(w.layers[0].bk.data != NULL);
    mdl_weights_fini(&w);
}

#define EXPECT_REFUSED(spec_init, needle)                                                          \
    do {                                                                                           \
        struct spec s = spec_init;                                                                 \
        struct mdl_weights w;                                                                      \
        char err[256];                                                                             \
        int rc = load(&s, &w, err, sizeof(err));                                                   \
        ASSERT_TRUE(rc < 0);                                                                       \
        ASSERT_STR_CONTAINS(err, needle);                                                          \
    } while (0)

static void test_r11_key_types(void)
{
    EXPECT_REFUSED(((struct spec){.embd_as_string = 1}), "llama.embedding_length");
    EXPECT_REFUSED(((struct spec){.eps_as_int = 1}), "layer_norm_rms_epsilon");
    EXPECT_REFUSED(((struct spec){.arch = "gpt-j"}), "general.architecture");
}

static void test_r14_tensors(void)
{
    EXPECT_REFUSED(((struct spec){.skip_tensor = "blk.1.ffn_down.weight"}),
                   "blk.1.ffn_down.weight");
    EXPECT_REFUSED(((struct spec){.skip_tensor = "output_norm.weight"}), "output_norm.weight");
    EXPECT_REFUSED(((struct spec){.bad_shape = "blk.0.attn_k.weight"}), "blk.0.attn_k.weight");
    EXPECT_REFUSED(((struct spec){.bad_shape = "output.weight", .with_output = 1}),
                   "output.weight");
    EXPECT_REFUSED(((struct spec){.q5_tensor = "blk.0.attn_q.weight"}), "blk.0.attn_q.weight");
    EXPECT_REFUSED(((struct spec){.f16_tensor = "blk.0.ffn_norm.weight"}), "expected F32");
    EXPECT_REFUSED(((struct spec){.arch = "qwen2", .skip_tensor = "blk.1.attn_v.bias"}),
                   "blk.1.attn_v.bias");
}

static void test_r17_hparams(void)
{
    EXPECT_REFUSED(((struct spec){.block_count = 1025}), "block_count");
    EXPECT_REFUSED(((struct spec){.head_count = 3}), "head_count");
    EXPECT_REFUSED(((struct spec){.ctx = (1u << 20) + 1}), "context_length");
}

int main(void)
{
    RUN(test_good_llama);
    RUN(test_good_qwen2);
    RUN(test_r11_key_types);
    RUN(test_r14_tensors);
    RUN(test_r17_hparams);
    return TEST_DONE();
}
