/* test_loader.c - mdl_load_weights on hand-made GGUF files: a good file of every
 * supported architecture, then one broken thing at a time (R11 key types, R14 tensors,
 * R17 hparams); every refusal must name the key or tensor. */
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
    uint32_t key_length;   /* attention.key_length (0: absent) */
    uint32_t value_length; /* attention.value_length (0: as key_length) */
    uint32_t n_expert;     /* expert_count, with expert_used_count n_expert_used */
    uint32_t n_expert_used;
    const char *rope_scaling; /* rope.scaling.type */
    int rope_freqs;           /* a rope_freqs.weight tensor (of ones; 2: of zeros) */
};

enum { NE_MAX = 8 };
static float zeros[E * FF * NE_MAX];

/* A tensor [ne0], [ne0, ne1] or [ne0, ne1, ne2] (ne1 / ne2 0: absent). */
static void add_t3(struct gguf_writer *w, const struct spec *s, const char *name, uint64_t ne0,
                   uint64_t ne1, uint64_t ne2)
{
    if (s->skip_tensor && strcmp(name, s->skip_tensor) == 0)
        return;
    if (s->bad_shape && strcmp(name, s->bad_shape) == 0)
        ne1 = ne1 ? ne1 + 1 : 2;
    uint64_t ne[3] = {ne0, ne1 ? ne1 : 1, ne2 ? ne2 : 1};
    uint32_t type = GGML_TYPE_F32;
    size_t bytes = ne0 * ne[1] * ne[2] * 4;
    if (s->q5_tensor && strcmp(name, s->q5_tensor) == 0) {
        type = GGML_TYPE_Q5_0;
        bytes = ne0 / 32 * 22 * ne[1];
    } else if (s->f16_tensor && strcmp(name, s->f16_tensor) == 0) {
        type = GGML_TYPE_F16;
        bytes /= 2;
    }
    static float *big;
    if (!big)
        big = calloc(NV * E * 2 + E * FF * NE_MAX, sizeof(float));
    static float ones[E];
    for (int i = 0; i < E; i++)
        ones[i] = 1.0f;
    const float *data = bytes <= sizeof(zeros) ? zeros : big;
    if (strcmp(name, "rope_freqs.weight") == 0 && s->rope_freqs == 1)
        data = ones;
    gguf_writer_add_tensor(w, name, type, ne2 ? 3 : ne1 ? 2 : 1, ne, data, bytes);
}

static void add_t(struct gguf_writer *w, const struct spec *s, const char *name, uint64_t ne0,
                  uint64_t ne1)
{
    add_t3(w, s, name, ne0, ne1, 0);
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
    snprintf(k, sizeof(k), "%s.attention.layer_norm_rms_epsilon", a);
    if (s->eps_as_int)
        gguf_writer_add_u32(w, k, 1);
    else
        gguf_writer_add_f32(w, k, 1e-5f);
    bool qwen2 = strncmp(a, "qwen2", 5) == 0;
    bool phi3 = strcmp(a, "phi3") == 0;
    bool gemma = strncmp(a, "gemma", 5) == 0;
    bool qk_norm = strcmp(a, "qwen3") == 0 || strcmp(a, "gemma3") == 0;
    uint32_t hd = s->key_length ? s->key_length : E / NH;
    if (s->key_length) {
        U32("attention.key_length", s->key_length);
        U32("attention.value_length", s->value_length ? s->value_length : s->key_length);
    }
    if (s->n_expert) {
        U32("expert_count", s->n_expert);
        U32("expert_used_count", s->n_expert_used);
        U32("expert_feed_forward_length", FF);
        U32("expert_shared_feed_forward_length", FF);
    }
    if (strcmp(a, "gemma3") == 0)
        U32("attention.sliding_window", 16);
#undef U32
    if (s->rope_scaling) {
        snprintf(k, sizeof(k), "%s.rope.scaling.type", a);
        gguf_writer_add_str(w, k, s->rope_scaling);
        snprintf(k, sizeof(k), "%s.rope.scaling.factor", a);
        gguf_writer_add_f32(w, k, 8.0f);
    }
    add_t(w, s, "token_embd.weight", E, NV);
    add_t(w, s, "output_norm.weight", E, 0);
    if (s->with_output)
        add_t(w, s, "output.weight", E, NV);
    if (s->rope_freqs)
        add_t(w, s, "rope_freqs.weight", hd / 2, 0);
    for (int l = 0; l < NL; l++) {
        char n[64];
#define T(suffix, ne0, ne1) (snprintf(n, sizeof(n), "blk.%d." suffix, l), add_t(w, s, n, ne0, ne1))
#define T3(suffix, ne0, ne1, ne2)                                                                  \
    (snprintf(n, sizeof(n), "blk.%d." suffix, l), add_t3(w, s, n, ne0, ne1, ne2))
        T("attn_norm.weight", E, 0);
        if (phi3) {
            T("attn_qkv.weight", E, NH * hd + 2 * NKV * hd);
        } else {
            T("attn_q.weight", E, NH * hd);
            T("attn_k.weight", E, NKV * hd);
            T("attn_v.weight", E, NKV * hd);
        }
        if (qwen2) {
            T("attn_q.bias", NH * hd, 0);
            T("attn_k.bias", NKV * hd, 0);
            T("attn_v.bias", NKV * hd, 0);
        }
        if (qk_norm) {
            T("attn_q_norm.weight", hd, 0);
            T("attn_k_norm.weight", hd, 0);
        }
        T("attn_output.weight", NH * hd, E);
        if (gemma)
            T("post_attention_norm.weight", E, 0);
        T("ffn_norm.weight", E, 0);
        if (s->n_expert) {
            T("ffn_gate_inp.weight", E, s->n_expert);
            T3("ffn_gate_exps.weight", E, FF, s->n_expert);
            T3("ffn_up_exps.weight", E, FF, s->n_expert);
            T3("ffn_down_exps.weight", FF, E, s->n_expert);
            if (strcmp(a, "qwen2moe") == 0) {
                T("ffn_gate_inp_shexp.weight", E, 0);
                T("ffn_gate_shexp.weight", E, FF);
                T("ffn_up_shexp.weight", E, FF);
                T("ffn_down_shexp.weight", FF, E);
            }
        } else if (phi3) {
            T("ffn_up.weight", E, 2 * FF);
            T("ffn_down.weight", FF, E);
        } else {
            T("ffn_gate.weight", E, FF);
            T("ffn_up.weight", E, FF);
            T("ffn_down.weight", FF, E);
        }
        if (gemma)
            T("post_ffw_norm.weight", E, 0);
#undef T
#undef T3
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

static void test_good_new_archs(void)
{
    struct mdl_weights w;
    char err[256];
    /* qwen3: head size from key_length (n_head * head_dim != n_embd), q/k norms */
    struct spec q3 = {.arch = "qwen3", .key_length = 24};
    ASSERT_INT_EQ(load(&q3, &w, err, sizeof(err)), 0);
    ASSERT_INT_EQ(w.hp.arch, MDL_ARCH_QWEN3);
    ASSERT_INT_EQ(w.hp.head_dim, 24);
    ASSERT_INT_EQ(w.hp.n_rot, 24);
    ASSERT_INT_EQ(w.layers[0].wq.ne[1], NH * 24);
    ASSERT_TRUE(w.layers[1].k_norm.data != NULL && w.layers[1].bq.data == NULL);
    ASSERT_TRUE(w.hp.rope_neox);
    ASSERT_NEAR(w.hp.kq_scale, 1.0 / sqrt(24.0), 1e-7);
    mdl_weights_fini(&w);

    /* phi3: q/k/v and gate/up are consecutive row views of the fused tensors */
    struct spec p3 = {.arch = "phi3", .with_output = 1};
    ASSERT_INT_EQ(load(&p3, &w, err, sizeof(err)), 0);
    const struct mdl_layer *L = &w.layers[1];
    size_t rb = E * sizeof(float);
    ASSERT_INT_EQ(L->wk.ne[1], NKV * (E / NH));
    ASSERT_TRUE((const char *)L->wk.data == (const char *)L->wq.data + L->wq.ne[1] * rb);
    ASSERT_TRUE((const char *)L->wv.data == (const char *)L->wk.data + L->wk.ne[1] * rb);
    ASSERT_TRUE((const char *)L->w_up.data == (const char *)L->w_gate.data + FF * rb);
    ASSERT_INT_EQ(L->w_up.ne[1], FF);
    ASSERT_NEAR(w.hp.q_scale, 1.0 / sqrt(E / NH), 1e-7);
    ASSERT_NEAR(w.hp.kq_scale, 1.0, 0);
    mdl_weights_fini(&w);

    /* gemma2: defaults of the reference (window 4096, caps 50 and 30), even layers slide */
    struct spec g2 = {.arch = "gemma2", .key_length = 16};
    ASSERT_INT_EQ(load(&g2, &w, err, sizeof(err)), 0);
    ASSERT_INT_EQ(w.hp.n_swa, 4096);
    ASSERT_TRUE(w.layers[0].swa && !w.layers[1].swa);
    ASSERT_NEAR(w.hp.attn_softcap, 50.0, 0);
    ASSERT_NEAR(w.hp.final_softcap, 30.0, 0);
    ASSERT_NEAR(w.hp.embd_scale, sqrt((double)E), 1e-6);
    ASSERT_INT_EQ(w.hp.ffn_act, MDL_ACT_GELU);
    ASSERT_TRUE(w.layers[0].post_ffn_norm.data != NULL);
    mdl_weights_fini(&w);

    /* gemma3: 5 local : 1 global, local layers with base 10000 and no scaling */
    struct spec g3 = {.arch = "gemma3", .key_length = 16, .rope_scaling = "linear"};
    ASSERT_INT_EQ(load(&g3, &w, err, sizeof(err)), 0);
    ASSERT_TRUE(w.layers[0].swa && w.layers[1].swa);
    ASSERT_INT_EQ(w.hp.n_swa, 16);
    ASSERT_NEAR(w.hp.rope.freq_scale, 0.125, 0);
    ASSERT_NEAR(w.hp.rope_swa.freq_scale, 1.0, 0);
    ASSERT_NEAR(w.hp.rope_swa.freq_base, 10000.0, 0);
    ASSERT_NEAR(w.hp.final_softcap, 0.0, 0);
    ASSERT_NEAR(w.hp.attn_softcap, 0.0, 0);
    mdl_weights_fini(&w);

    /* Mixtral-style llama: stacked experts, weights renormalised; Llama 3 rope_freqs */
    struct spec moe = {.n_expert = 4, .n_expert_used = 2, .rope_freqs = 1};
    ASSERT_INT_EQ(load(&moe, &w, err, sizeof(err)), 0);
    ASSERT_INT_EQ(w.hp.n_expert, 4);
    ASSERT_INT_EQ(w.hp.n_ff_exp, FF);
    ASSERT_TRUE(w.hp.expert_norm);
    ASSERT_INT_EQ(w.layers[0].down_exps.ne[1], 4 * E);
    ASSERT_TRUE(w.layers[0].w_gate.data == NULL && w.rope_freqs.data != NULL);
    ASSERT_INT_EQ(w.rope_freqs.ne[0], E / NH / 2);
    mdl_weights_fini(&w);

    /* qwen2moe: biases, experts not renormalised, the shared expert and its gate */
    struct spec q2m = {.arch = "qwen2moe", .n_expert = 4, .n_expert_used = 2};
    ASSERT_INT_EQ(load(&q2m, &w, err, sizeof(err)), 0);
    ASSERT_TRUE(!w.hp.expert_norm);
    ASSERT_INT_EQ(w.hp.n_ff_shexp, FF);
    ASSERT_TRUE(w.layers[1].gate_inp_shexp.data != NULL && w.layers[1].bv.data != NULL);
    mdl_weights_fini(&w);
}

static void test_refused_new_archs(void)
{
    EXPECT_REFUSED(((struct spec){.arch = "mamba"}),
                   "'mamba' is not supported (supported: llama, qwen2, qwen2moe, qwen3, phi3, "
                   "gemma2, gemma3)");
    EXPECT_REFUSED(((struct spec){.arch = "qwen3", .skip_tensor = "blk.1.attn_k_norm.weight"}),
                   "blk.1.attn_k_norm.weight");
    EXPECT_REFUSED(((struct spec){.arch = "qwen3", .key_length = 16, .value_length = 8}),
                   "value_length");
    EXPECT_REFUSED(((struct spec){.arch = "phi3", .bad_shape = "blk.0.ffn_up.weight"}),
                   "blk.0.ffn_up.weight");
    EXPECT_REFUSED(((struct spec){.arch = "gemma2", .skip_tensor = "blk.0.post_ffw_norm.weight"}),
                   "post_ffw_norm");
    EXPECT_REFUSED(((struct spec){.n_expert = 4, .n_expert_used = 5}), "expert_used_count");
    EXPECT_REFUSED(((struct spec){.n_expert = 4, .n_expert_used = 2,
                                  .bad_shape = "blk.1.ffn_up_exps.weight"}),
                   "blk.1.ffn_up_exps.weight");
    EXPECT_REFUSED(((struct spec){.arch = "qwen2moe"}), "qwen2moe.expert_count");
    EXPECT_REFUSED(((struct spec){.rope_scaling = "yarn"}), "llama.rope.scaling.type 'yarn'");
    EXPECT_REFUSED(((struct spec){.rope_freqs = 2}), "rope_freqs.weight: factor 0 is 0, must be positive");
    EXPECT_REFUSED(((struct spec){.arch = "qwen2", .n_expert = 4, .n_expert_used = 2}),
                   "experts are not supported for qwen2");
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
    RUN(test_good_new_archs);
    RUN(test_refused_new_archs);
    return TEST_DONE();
}
