/* genmodel.c - the random-weight model generator (see model.h).
 *
 * Normal deviates come from xoshiro256** seeded through splitmix64 with the model seed
 * and the CRC-32 of the tensor name, turned into N(0,1) by the Box-Muller transform.
 * Tensors are generated, converted to the file type and handed to the GGUF writer by
 * reference, so peak memory is about the size of the output file. The --like presets
 * carry the shapes of real models (their config files); the values are random.
 */
#include "model.h"

#include "quant.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- random numbers ----------------------------------------------------------------- */

struct gen_rng {
    struct rng r;
    int have_spare;
    double spare;
};

static uint32_t crc32_str(const char *s)
{
    uint32_t c = 0xffffffffu;
    for (; *s; s++) {
        c ^= (uint8_t)*s;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

static void rng_seed(struct gen_rng *r, uint64_t seed, const char *name)
{
    rng_init(&r->r, seed ^ ((uint64_t)crc32_str(name) << 32));
    r->have_spare = 0;
}

static double rng_normal(struct gen_rng *r)
{
    if (r->have_spare) {
        r->have_spare = 0;
        return r->spare;
    }
    double u1 = ((double)(rng_next(&r->r) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1] */
    double u2 = (double)(rng_next(&r->r) >> 11) * 0x1.0p-53;
    double m = sqrt(-2.0 * log(u1));
    r->spare = m * sin(2.0 * M_PI * u2);
    r->have_spare = 1;
    return m * cos(2.0 * M_PI * u2);
}

/* ---- parameters --------------------------------------------------------------------- */

void mdl_gen_default_params(struct mdl_gen_params *p)
{
    memset(p, 0, sizeof(*p));
    p->arch = MDL_ARCH_LLAMA;
    p->type = GGML_TYPE_F32;
    p->n_embd = 64;
    p->n_layer = 2;
    p->n_head = 4;
    p->n_head_kv = 2;
    p->n_ff = 192;
    p->n_ctx = 512;
    p->seed = 1001;
    p->rope_freq_base = 10000.0f;
    p->rms_eps = 1e-5f;
    p->tied_output = 1;
}

int mdl_gen_preset(struct mdl_gen_params *p, const char *name)
{
    if (strcmp(name, "tiny") == 0) {
        uint32_t type = p->type;
        enum mdl_arch arch = p->arch;
        mdl_gen_default_params(p);
        p->type = type;
        p->arch = arch;
        if (arch == MDL_ARCH_QWEN2) {
            p->n_ff = 160;
            p->seed = 2002;
            p->rope_freq_base = 1000000.0f;
            p->rms_eps = 1e-6f;
            p->tied_output = 0;
        }
        return 0;
    }
    if (strcmp(name, "bench-llama") == 0 || strcmp(name, "bench-moe") == 0) {
        p->arch = MDL_ARCH_LLAMA;
        p->n_embd = 1024;
        p->n_layer = 16;
        p->n_head = 16;
        p->n_head_kv = 8;
        p->n_ff = 2816;
        p->n_ctx = 4096;
        p->seed = 4004;
        p->rope_freq_base = 10000.0f;
        p->rms_eps = 1e-5f;
        p->tied_output = 0;
        if (strcmp(name, "bench-moe") == 0) {
            /* 8 experts of half the dense width, 2 per token: the same active size */
            p->n_expert = 8;
            p->n_expert_used = 2;
            p->n_ff_exp = 1408;
            p->seed = 4005;
        }
        return 0;
    }
    return -1;
}

/* The shapes of real models, from their configuration files. */
struct like_preset {
    const char *name;
    const char *vocab; /* the fixture vocabulary that fits (padded to n_vocab) */
    enum mdl_arch arch;
    uint32_t n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx, n_vocab;
    float base, eps;
    int tied;
    uint32_t n_swa;
    float attn_cap, final_cap, llama3;
    int longrope;
    uint32_t n_expert, n_used, n_ff_exp, n_ff_shexp;
};

static const struct like_preset likes[] = {
    {"Qwen2.5-0.5B", "ggml-vocab-qwen3", MDL_ARCH_QWEN2, 896, 24, 14, 2, 64, 4864, 32768,
     151936, 1e6f, 1e-6f, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"Qwen3-0.6B", "ggml-vocab-qwen3", MDL_ARCH_QWEN3, 1024, 28, 16, 8, 128, 3072, 40960,
     151936, 1e6f, 1e-6f, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"Llama-3.2-1B", "ggml-vocab-gpt-2", MDL_ARCH_LLAMA, 2048, 16, 32, 8, 64, 8192, 131072,
     128256, 500000.0f, 1e-5f, 1, 0, 0, 0, 32.0f, 0, 0, 0, 0, 0},
    {"Gemma-2-2B", "ggml-vocab-llama-spm", MDL_ARCH_GEMMA2, 2304, 26, 8, 4, 256, 9216, 8192,
     256000, 10000.0f, 1e-6f, 1, 4096, 50.0f, 30.0f, 0, 0, 0, 0, 0, 0},
    {"Gemma-3-1B", "ggml-vocab-llama-spm", MDL_ARCH_GEMMA3, 1152, 26, 4, 1, 256, 6912, 32768,
     262144, 1e6f, 1e-6f, 1, 512, 0, 0, 0, 0, 0, 0, 0, 0},
    {"Phi-3.5-mini", "ggml-vocab-llama-spm", MDL_ARCH_PHI3, 3072, 32, 32, 32, 96, 8192, 131072,
     32064, 10000.0f, 1e-5f, 0, 262144, 0, 0, 0, 1, 0, 0, 0, 0},
    {"Qwen1.5-MoE-A2.7B", "ggml-vocab-qwen3", MDL_ARCH_QWEN2MOE, 2048, 24, 16, 16, 128, 5632,
     8192, 151936, 1e6f, 1e-6f, 0, 0, 0, 0, 0, 0, 60, 4, 1408, 5632},
};

#define N_LIKES (sizeof(likes) / sizeof(likes[0]))

int mdl_gen_like(struct mdl_gen_params *p, const char *name)
{
    for (size_t i = 0; i < N_LIKES; i++) {
        const struct like_preset *l = &likes[i];
        if (strcmp(name, l->name) != 0)
            continue;
        uint32_t type = p->type;
        mdl_gen_default_params(p);
        p->type = type;
        p->arch = l->arch;
        p->name = l->name;
        p->n_embd = l->n_embd;
        p->n_layer = l->n_layer;
        p->n_head = l->n_head;
        p->n_head_kv = l->n_head_kv;
        p->head_dim = l->head_dim;
        p->n_ff = l->n_ff;
        p->n_ctx = l->n_ctx;
        p->n_vocab = l->n_vocab;
        p->rope_freq_base = l->base;
        p->rms_eps = l->eps;
        p->tied_output = l->tied;
        p->n_swa = l->n_swa;
        p->attn_softcap = l->attn_cap;
        p->final_softcap = l->final_cap;
        p->llama3_rope = l->llama3;
        p->longrope = l->longrope;
        p->n_expert = l->n_expert;
        p->n_expert_used = l->n_used;
        p->n_ff_exp = l->n_ff_exp;
        p->n_ff_shexp = l->n_ff_shexp;
        p->seed = 5000 + i;
        return 0;
    }
    return -1;
}

const char *const *mdl_gen_like_names(void)
{
    static char lines[N_LIKES][192];
    static const char *ptrs[N_LIKES + 1];
    for (size_t i = 0; i < N_LIKES; i++) {
        const struct like_preset *l = &likes[i];
        int n = snprintf(lines[i], sizeof(lines[i]),
                         "%-18s %-8s %u wide, %u layers, %u/%u heads of %u, ffn %u, ctx %u, "
                         "vocab %u (%s)", l->name, mdl_arch_str(l->arch), l->n_embd, l->n_layer,
                         l->n_head, l->n_head_kv, l->head_dim, l->n_ff, l->n_ctx, l->n_vocab,
                         l->vocab);
        if (l->n_expert && n > 0 && (size_t)n < sizeof(lines[i]))
            snprintf(lines[i] + n, sizeof(lines[i]) - (size_t)n, ", %u experts of %u, %u used",
                     l->n_expert, l->n_ff_exp, l->n_used);
        ptrs[i] = lines[i];
    }
    ptrs[N_LIKES] = NULL;
    return ptrs;
}

/* ---- writing ------------------------------------------------------------------------ */

struct gen_state {
    const struct mdl_gen_params *p;
    struct gguf_writer *w;
    void **bufs; /* tensor buffers borrowed by the writer */
    size_t n_bufs;
    size_t cap_bufs;
    char *err;
    size_t err_len;
};

static int keep_buf(struct gen_state *g, void *buf)
{
    if (g->n_bufs == g->cap_bufs) {
        size_t cap = g->cap_bufs ? g->cap_bufs * 2 : 64;
        void **nb = realloc(g->bufs, cap * sizeof(*nb));
        if (!nb)
            return MDL_ENOMEM;
        g->bufs = nb;
        g->cap_bufs = cap;
    }
    g->bufs[g->n_bufs++] = buf;
    return 0;
}

/* Generates tensor `name` of rows x cols (rows 0 = a vector) times n_mat matrices
 * (n_mat 0: a 1- or 2-D tensor) with values mean + std * N(0,1), converts it to `type`
 * and adds it to the writer. */
static int add_tensor3(struct gen_state *g, const char *name, uint64_t cols, uint64_t rows,
                       uint64_t n_mat, double mean, double std, uint32_t type)
{
    uint64_t nr = (rows ? rows : 1) * (n_mat ? n_mat : 1);
    if (cols > (1ull << 32) || nr > (1ull << 32) || cols * nr > (SIZE_MAX / 8)) {
        snprintf(g->err, g->err_len, "tensor %s is too large", name);
        return MDL_EINVAL;
    }
    size_t row_bytes = quant_row_bytes(type, (int64_t)cols);
    if (row_bytes == 0) {
        snprintf(g->err, g->err_len, "tensor %s: row length %llu does not fit type %s", name,
                 (unsigned long long)cols, gguf_type_name(type));
        return MDL_EINVAL;
    }
    float *row = malloc(cols * sizeof(float));
    uint8_t *out = malloc(row_bytes * nr);
    if (!row || !out || keep_buf(g, out) != 0) {
        free(row);
        free(out);
        snprintf(g->err, g->err_len, "out of memory");
        return MDL_ENOMEM;
    }
    struct gen_rng r;
    rng_seed(&r, g->p->seed, name);
    for (uint64_t i = 0; i < nr; i++) {
        for (uint64_t j = 0; j < cols; j++)
            row[j] = (float)(mean + std * rng_normal(&r));
        uint8_t *dst = out + i * row_bytes;
        switch (type) {
        case GGML_TYPE_F16:
            for (uint64_t j = 0; j < cols; j++)
                ((uint16_t *)dst)[j] = quant_fp32_to_fp16(row[j]);
            break;
        case GGML_TYPE_Q8_0:
            quant_row_q8_0(row, (struct quant_q8_0 *)dst, (int64_t)cols);
            break;
        case GGML_TYPE_Q4_0:
            quant_row_q4_0(row, (struct quant_q4_0 *)dst, (int64_t)cols);
            break;
        default:
            memcpy(dst, row, cols * sizeof(float));
            break;
        }
    }
    free(row);
    uint64_t ne[3] = {cols, rows ? rows : 1, n_mat};
    uint32_t n_dims = n_mat ? 3 : rows ? 2 : 1;
    int rc = gguf_writer_add_tensor_ref(g->w, name, type, n_dims, ne, out, row_bytes * nr);
    if (rc) {
        snprintf(g->err, g->err_len, "cannot add tensor %s", name);
        return MDL_ENOMEM;
    }
    return 0;
}

static int add_tensor(struct gen_state *g, const char *name, uint64_t cols, uint64_t rows,
                      double mean, double std, uint32_t type)
{
    return add_tensor3(g, name, cols, rows, 0, mean, std, type);
}

static int add_matrix(struct gen_state *g, const char *name, uint64_t fan_in, uint64_t rows,
                      uint32_t type)
{
    return add_tensor(g, name, fan_in, rows, 0.0, 1.0 / sqrt((double)fan_in), type);
}

/* A scale factor of the parameters: 0 means 1. */
static double scale_of(float s)
{
    return s > 0.0f ? s : 1.0;
}

/* A matrix that writes into the residual stream (residual_scale). */
static int add_residual(struct gen_state *g, const char *name, uint64_t fan_in, uint64_t rows,
                        uint64_t n_mat, uint32_t type)
{
    double std = scale_of(g->p->residual_scale) / sqrt((double)fan_in);
    return add_tensor3(g, name, fan_in, rows, n_mat, 0.0, std, type);
}

/* An F32 vector of given values (RoPE factors). */
static int add_values(struct gen_state *g, const char *name, const float *v, uint64_t n)
{
    float *out = malloc(n * sizeof(float));
    if (!out || keep_buf(g, out) != 0) {
        free(out);
        snprintf(g->err, g->err_len, "out of memory");
        return MDL_ENOMEM;
    }
    memcpy(out, v, n * sizeof(float));
    uint64_t ne[1] = {n};
    if (gguf_writer_add_tensor_ref(g->w, name, GGML_TYPE_F32, 1, ne, out, n * sizeof(float))) {
        snprintf(g->err, g->err_len, "cannot add tensor %s", name);
        return MDL_ENOMEM;
    }
    return 0;
}

static uint32_t head_dim_of(const struct mdl_gen_params *p)
{
    return p->head_dim ? p->head_dim : p->n_embd / p->n_head;
}

/* The RoPE factors the model carries: Llama 3's divisors (the reference converter's
 * formula, low 1, high 4, original context 8192), or LongRoPE's short and long factors
 * (smooth made-up values: the real ones are learned). */
static int add_rope_factors(struct gen_state *g)
{
    const struct mdl_gen_params *p = g->p;
    uint32_t half = head_dim_of(p) / 2;
    float f[512];
    if (half > 512)
        return 0;
    int rc = 0;
    if (p->llama3_rope > 0.0f) {
        for (uint32_t i = 0; i < half; i++) {
            float wavelen = 2.0f * (float)M_PI * powf(p->rope_freq_base, 2.0f * (float)i / (float)(2 * half));
            float s = (8192.0f / wavelen - 1.0f) / (4.0f - 1.0f);
            f[i] = wavelen < 8192.0f / 4.0f ? 1.0f
                   : wavelen > 8192.0f      ? p->llama3_rope
                                            : 1.0f / ((1.0f - s) / p->llama3_rope + s);
        }
        rc = add_values(g, "rope_freqs.weight", f, half);
    }
    if (!rc && p->longrope) {
        for (uint32_t i = 0; i < half; i++)
            f[i] = 1.0f + 0.25f * (float)i / (float)half;
        rc = add_values(g, "rope_factors_short.weight", f, half);
        for (uint32_t i = 0; i < half && !rc; i++)
            f[i] = 1.0f + 31.0f * (float)(i * i) / (float)(half * half);
        if (!rc)
            rc = add_values(g, "rope_factors_long.weight", f, half);
    }
    return rc;
}

/* Copies one tokenizer.* kv of the vocab file; the per-token arrays (tokens, scores,
 * token types) get n_pad more entries: unused tokens "<|chatd_unused_N|>" of score 0. */
static int copy_kv(struct gguf_writer *w, const struct gguf_file *v, const struct gguf_kv *kv,
                   const char *key, uint64_t n_pad)
{
    if (kv->type == GGUF_TYPE_STRING) {
        struct gguf_str s;
        int rc = gguf_kv_str(kv, &s);
        return rc ? rc : gguf_writer_add_strn(w, key, s.ptr, (size_t)s.len);
    }
    if (kv->type != GGUF_TYPE_ARRAY)
        return gguf_type_size(kv->type) ? gguf_writer_add_scalar(w, key, kv->type, kv->data)
                                        : MDL_EFORMAT;
    bool per_token = strcmp(key, "tokenizer.ggml.tokens") == 0 ||
                     strcmp(key, "tokenizer.ggml.scores") == 0 ||
                     strcmp(key, "tokenizer.ggml.token_type") == 0;
    uint64_t pad = per_token ? n_pad : 0;
    uint64_t n = kv->arr_n + pad;
    if (kv->arr_type != GGUF_TYPE_STRING) {
        if (pad == 0)
            return gguf_writer_add_arr(w, key, kv->arr_type, kv->data, kv->arr_n);
        size_t es = gguf_type_size(kv->arr_type);
        uint8_t *buf = calloc(n, es ? es : 1);
        if (!buf || es == 0) {
            free(buf);
            return MDL_ENOMEM;
        }
        memcpy(buf, kv->data, kv->arr_n * es);
        if (kv->arr_type == GGUF_TYPE_INT32 && strcmp(key, "tokenizer.ggml.token_type") == 0)
            for (uint64_t i = kv->arr_n; i < n; i++)
                ((int32_t *)buf)[i] = 5; /* UNUSED */
        int rc = gguf_writer_add_arr(w, key, kv->arr_type, buf, n);
        free(buf);
        return rc;
    }
    char **strs = calloc(n ? n : 1, sizeof(*strs));
    int rc = strs ? 0 : MDL_ENOMEM;
    for (uint64_t i = 0; rc == 0 && i < n; i++) {
        struct gguf_str s = {0};
        char pad_name[48];
        if (i >= kv->arr_n) {
            snprintf(pad_name, sizeof(pad_name), "<|chatd_unused_%llu|>",
                     (unsigned long long)(i - kv->arr_n));
            s.ptr = pad_name;
            s.len = strlen(pad_name);
        } else if (gguf_arr_str(v, key, i, &s) != 0) {
            rc = MDL_EFORMAT;
            break;
        }
        if (!(strs[i] = malloc(s.len + 1))) {
            rc = MDL_ENOMEM;
            break;
        }
        memcpy(strs[i], s.ptr, s.len);
        strs[i][s.len] = '\0';
    }
    if (rc == 0)
        rc = gguf_writer_add_arr_str(w, key, (const char *const *)strs, n);
    for (uint64_t i = 0; strs && i < n; i++)
        free(strs[i]);
    free(strs);
    return rc;
}

/* The "<arch>.*" keys: the shape, then what the architecture's graph reads. */
static int add_arch_keys(struct gen_state *g)
{
    const struct mdl_gen_params *p = g->p;
    const char *a = mdl_arch_str(p->arch);
    char key[128];
    int rc = 0;
#define KU32(suffix, val)                                                                          \
    do {                                                                                           \
        snprintf(key, sizeof(key), "%s.%s", a, suffix);                                            \
        rc |= gguf_writer_add_u32(g->w, key, val);                                                 \
    } while (0);
#define KF32(suffix, val)                                                                          \
    do {                                                                                           \
        snprintf(key, sizeof(key), "%s.%s", a, suffix);                                            \
        rc |= gguf_writer_add_f32(g->w, key, val);                                                 \
    } while (0);
    KU32("context_length", p->n_ctx)
    KU32("embedding_length", p->n_embd)
    KU32("block_count", p->n_layer)
    /* llama's experts are feed_forward_length wide */
    bool llama_moe = p->arch == MDL_ARCH_LLAMA && p->n_expert && p->n_ff_exp;
    KU32("feed_forward_length", llama_moe ? p->n_ff_exp : p->n_ff)
    KU32("attention.head_count", p->n_head)
    KU32("attention.head_count_kv", p->n_head_kv)
    KU32("rope.dimension_count", head_dim_of(p))
    KF32("rope.freq_base", p->rope_freq_base)
    KF32("attention.layer_norm_rms_epsilon", p->rms_eps)
    if (p->head_dim) {
        KU32("attention.key_length", p->head_dim)
        KU32("attention.value_length", p->head_dim)
    }
    if (p->n_expert) {
        KU32("expert_count", p->n_expert)
        KU32("expert_used_count", p->n_expert_used)
        if (p->arch == MDL_ARCH_QWEN2MOE) {
            KU32("expert_feed_forward_length", p->n_ff_exp ? p->n_ff_exp : p->n_ff)
            KU32("expert_shared_feed_forward_length", p->n_ff_shexp ? p->n_ff_shexp : p->n_ff)
        }
    }
    if (p->n_swa || p->arch == MDL_ARCH_GEMMA3) /* gemma3 files always carry their window */
        KU32("attention.sliding_window", p->n_swa ? p->n_swa : 4096)
    if (p->attn_softcap > 0.0f)
        KF32("attn_logit_softcapping", p->attn_softcap)
    if (p->final_softcap > 0.0f)
        KF32("final_logit_softcapping", p->final_softcap)
    if (p->rope_scale > 0.0f) {
        snprintf(key, sizeof(key), "%s.rope.scaling.type", a);
        rc |= gguf_writer_add_str(g->w, key, "linear");
        KF32("rope.scaling.factor", p->rope_scale)
    }
    if (p->longrope) { /* Phi-3.5: sqrt(1 + ln(ctx / 4096) / ln(4096)) */
        KU32("rope.scaling.original_context_length", 4096)
        KF32("rope.scaling.attn_factor",
             sqrtf(1.0f + logf((float)p->n_ctx / 4096.0f) / logf(4096.0f)))
    }
#undef KU32
#undef KF32
    return rc;
}

static int add_metadata(struct gen_state *g, const struct gguf_file *v, uint64_t *n_vocab)
{
    const struct mdl_gen_params *p = g->p;
    char key[128];
    int rc = 0;
    rc |= gguf_writer_add_str(g->w, "general.architecture", mdl_arch_str(p->arch));
    rc |= gguf_writer_add_str(g->w, "general.name", p->name ? p->name : "chatd random model");
    rc |= gguf_writer_add_u64(g->w, "general.generator.seed", p->seed);
    rc |= add_arch_keys(g);
    uint64_t n_file = 0;
    for (uint64_t i = 0; i < gguf_n_kv(v); i++) {
        const struct gguf_kv *kv = gguf_kv_at(v, i);
        if (kv->key.len == 21 && memcmp(kv->key.ptr, "tokenizer.ggml.tokens", 21) == 0)
            n_file = kv->arr_n;
    }
    if (n_file == 0) {
        snprintf(g->err, g->err_len, "vocab file has no tokenizer.ggml.tokens array");
        return MDL_EFORMAT;
    }
    if (p->n_vocab && p->n_vocab < n_file) {
        snprintf(g->err, g->err_len, "vocab file has %llu tokens, more than n_vocab %u",
                 (unsigned long long)n_file, p->n_vocab);
        return MDL_EINVAL;
    }
    uint64_t n_pad = p->n_vocab ? p->n_vocab - n_file : 0;
    *n_vocab = n_file + n_pad;
    for (uint64_t i = 0; rc == 0 && i < gguf_n_kv(v); i++) {
        const struct gguf_kv *kv = gguf_kv_at(v, i);
        if (kv->key.len < 10 || memcmp(kv->key.ptr, "tokenizer.", 10) != 0 ||
            kv->key.len >= sizeof(key))
            continue;
        memcpy(key, kv->key.ptr, kv->key.len);
        key[kv->key.len] = '\0';
        if (p->chat_template && strcmp(key, "tokenizer.chat_template") == 0)
            continue;
        rc = copy_kv(g->w, v, kv, key, n_pad);
    }
    if (rc == 0 && p->chat_template)
        rc = gguf_writer_add_str(g->w, "tokenizer.chat_template", p->chat_template);
    if (rc) {
        snprintf(g->err, g->err_len, "cannot write metadata");
        return MDL_ENOMEM;
    }
    return 0;
}

/* A layer's attention tensors: q/k/v (phi3: fused), biases, q/k norms, gemma's
 * post-attention norm. */
static int add_attention(struct gen_state *g, uint32_t l)
{
    const struct mdl_gen_params *p = g->p;
    uint64_t hd = head_dim_of(p);
    uint64_t qd = hd * p->n_head;
    uint64_t kvd = hd * p->n_head_kv;
    bool bias = p->arch == MDL_ARCH_QWEN2 || p->arch == MDL_ARCH_QWEN2MOE;
    bool qk_norm = p->arch == MDL_ARCH_QWEN3 || p->arch == MDL_ARCH_GEMMA3;
    bool gemma = p->arch == MDL_ARCH_GEMMA2 || p->arch == MDL_ARCH_GEMMA3;
    char name[96];
    int rc;
#define NAME(s) (snprintf(name, sizeof(name), "blk.%u.%s", l, s), name)
    if ((rc = add_tensor(g, NAME("attn_norm.weight"), p->n_embd, 0, 1.0, 0.05, GGML_TYPE_F32)))
        return rc;
    if (p->arch == MDL_ARCH_PHI3) {
        if ((rc = add_matrix(g, NAME("attn_qkv.weight"), p->n_embd, qd + 2 * kvd, p->type)))
            return rc;
    } else if ((rc = add_matrix(g, NAME("attn_q.weight"), p->n_embd, qd, p->type)) ||
               (rc = add_matrix(g, NAME("attn_k.weight"), p->n_embd, kvd, p->type)) ||
               (rc = add_matrix(g, NAME("attn_v.weight"), p->n_embd, kvd, p->type))) {
        return rc;
    }
    if (bias && ((rc = add_tensor(g, NAME("attn_q.bias"), qd, 0, 0.0, 0.5, GGML_TYPE_F32)) ||
                 (rc = add_tensor(g, NAME("attn_k.bias"), kvd, 0, 0.0, 0.5, GGML_TYPE_F32)) ||
                 (rc = add_tensor(g, NAME("attn_v.bias"), kvd, 0, 0.0, 0.5, GGML_TYPE_F32))))
        return rc;
    if (qk_norm &&
        ((rc = add_tensor(g, NAME("attn_q_norm.weight"), hd, 0, 1.0, 0.05, GGML_TYPE_F32)) ||
         (rc = add_tensor(g, NAME("attn_k_norm.weight"), hd, 0, 1.0, 0.05, GGML_TYPE_F32))))
        return rc;
    if ((rc = add_residual(g, NAME("attn_output.weight"), qd, p->n_embd, 0, p->type)))
        return rc;
    if (gemma && (rc = add_tensor(g, NAME("post_attention_norm.weight"), p->n_embd, 0, 1.0, 0.05,
                                  GGML_TYPE_F32)))
        return rc;
#undef NAME
    return 0;
}

/* A layer's FFN tensors: dense (phi3: gate|up fused) or experts, and gemma's post-norm. */
static int add_ffn(struct gen_state *g, uint32_t l)
{
    const struct mdl_gen_params *p = g->p;
    uint64_t e = p->n_embd;
    uint64_t ff = p->n_ff;
    uint64_t fx = p->n_ff_exp ? p->n_ff_exp : p->n_ff;
    uint64_t fs = p->n_ff_shexp ? p->n_ff_shexp : p->n_ff;
    double se = 1.0 / sqrt((double)e);
    char name[96];
    int rc;
#define NAME(s) (snprintf(name, sizeof(name), "blk.%u.%s", l, s), name)
    if ((rc = add_tensor(g, NAME("ffn_norm.weight"), e, 0, 1.0, 0.05, GGML_TYPE_F32)))
        return rc;
    if (p->n_expert) {
        if ((rc = add_matrix(g, NAME("ffn_gate_inp.weight"), e, p->n_expert, GGML_TYPE_F32)) ||
            (rc = add_tensor3(g, NAME("ffn_gate_exps.weight"), e, fx, p->n_expert, 0, se,
                              p->type)) ||
            (rc = add_tensor3(g, NAME("ffn_up_exps.weight"), e, fx, p->n_expert, 0, se,
                              p->type)) ||
            (rc = add_residual(g, NAME("ffn_down_exps.weight"), fx, e, p->n_expert, p->type)))
            return rc;
        if (p->arch == MDL_ARCH_QWEN2MOE &&
            ((rc = add_tensor(g, NAME("ffn_gate_inp_shexp.weight"), e, 0, 0, se, GGML_TYPE_F32)) ||
             (rc = add_matrix(g, NAME("ffn_gate_shexp.weight"), e, fs, p->type)) ||
             (rc = add_matrix(g, NAME("ffn_up_shexp.weight"), e, fs, p->type)) ||
             (rc = add_residual(g, NAME("ffn_down_shexp.weight"), fs, e, 0, p->type))))
            return rc;
    } else if (p->arch == MDL_ARCH_PHI3) {
        if ((rc = add_matrix(g, NAME("ffn_up.weight"), e, 2 * ff, p->type)) ||
            (rc = add_residual(g, NAME("ffn_down.weight"), ff, e, 0, p->type)))
            return rc;
    } else if ((rc = add_matrix(g, NAME("ffn_gate.weight"), e, ff, p->type)) ||
               (rc = add_matrix(g, NAME("ffn_up.weight"), e, ff, p->type)) ||
               (rc = add_residual(g, NAME("ffn_down.weight"), ff, e, 0, p->type))) {
        return rc;
    }
    if ((p->arch == MDL_ARCH_GEMMA2 || p->arch == MDL_ARCH_GEMMA3) &&
        (rc = add_tensor(g, NAME("post_ffw_norm.weight"), e, 0, 1.0, 0.05, GGML_TYPE_F32)))
        return rc;
#undef NAME
    return 0;
}

static int add_layers(struct gen_state *g)
{
    int rc = 0;
    for (uint32_t l = 0; l < g->p->n_layer && rc == 0; l++)
        if (!(rc = add_attention(g, l)))
            rc = add_ffn(g, l);
    return rc;
}

static int check_params(const struct mdl_gen_params *p, char *err, size_t len)
{
    if (p->type != GGML_TYPE_F32 && p->type != GGML_TYPE_F16 && p->type != GGML_TYPE_Q8_0 &&
        p->type != GGML_TYPE_Q4_0) {
        snprintf(err, len, "type must be f32, f16, q8_0 or q4_0");
        return MDL_EINVAL;
    }
    if (!mdl_arch_str(p->arch)) {
        snprintf(err, len, "unknown architecture");
        return MDL_EINVAL;
    }
    if (p->n_embd == 0 || p->n_layer == 0 || p->n_layer > 1024 || p->n_head == 0 ||
        p->n_head_kv == 0 || (!p->head_dim && p->n_embd % p->n_head != 0) ||
        p->n_head % p->n_head_kv != 0 || p->n_ff == 0 || p->n_ctx == 0 ||
        p->n_embd > (1u << 16) || p->n_ff > (1u << 18) || head_dim_of(p) % 2 != 0 ||
        head_dim_of(p) > 1024) {
        snprintf(err, len, "inconsistent shape (n_embd %u, n_layer %u, heads %u/%u of %u, n_ff %u)",
                 p->n_embd, p->n_layer, p->n_head, p->n_head_kv, head_dim_of(p), p->n_ff);
        return MDL_EINVAL;
    }
    bool moe_arch = p->arch == MDL_ARCH_LLAMA || p->arch == MDL_ARCH_QWEN2MOE;
    if ((p->n_expert && (!moe_arch || p->n_expert_used < 1 || p->n_expert_used > p->n_expert ||
                         p->n_expert > 1024 || p->n_expert_used > 32)) ||
        (!p->n_expert && p->arch == MDL_ARCH_QWEN2MOE)) {
        snprintf(err, len, "experts: %u of %u per token for %s", p->n_expert_used, p->n_expert,
                 mdl_arch_str(p->arch));
        return MDL_EINVAL;
    }
    uint32_t fx = p->n_ff_exp ? p->n_ff_exp : p->n_ff;
    uint32_t fs = p->n_ff_shexp ? p->n_ff_shexp : p->n_ff;
    if (p->type != GGML_TYPE_F32 && p->type != GGML_TYPE_F16 &&
        (p->n_embd % 32 != 0 || p->n_ff % 32 != 0 || (head_dim_of(p) * p->n_head) % 32 != 0 ||
         fx % 32 != 0 || fs % 32 != 0)) {
        snprintf(err, len, "quantized types need n_embd, n_ff, the expert widths and n_head * "
                           "head_dim to be multiples of 32");
        return MDL_EINVAL;
    }
    return 0;
}

int mdl_gen_write(const struct mdl_gen_params *p, const char *vocab_path, const char *out_path,
                    char *err, size_t err_len)
{
    int rc = check_params(p, err, err_len);
    if (rc)
        return rc;
    struct gguf_file *v = NULL;
    if (gguf_open(&v, vocab_path, err, err_len) != 0)
        return MDL_EFORMAT;
    struct gen_state g = {p, gguf_writer_new(), NULL, 0, 0, err, err_len};
    uint64_t n_vocab = 0;
    if (!g.w) {
        snprintf(err, err_len, "out of memory");
        rc = MDL_ENOMEM;
        goto done;
    }
    /* Embedding and output of a Q4_0 model stay Q8_0 (as llama-quantize does when the
     * row length does not suit Q6_K). */
    uint32_t big = p->type == GGML_TYPE_Q4_0 ? GGML_TYPE_Q8_0 : p->type;
    if ((rc = add_metadata(&g, v, &n_vocab)) ||
        (rc = add_matrix(&g, "token_embd.weight", p->n_embd, n_vocab, big)) ||
        (rc = add_layers(&g)) ||
        (rc = add_tensor(&g, "output_norm.weight", p->n_embd, 0, 1.0, 0.05, GGML_TYPE_F32)))
        goto done;
    if (!p->tied_output &&
        (rc = add_tensor(&g, "output.weight", p->n_embd, n_vocab, 0.0,
                         scale_of(p->output_scale) / sqrt((double)p->n_embd), big)))
        goto done;
    if ((rc = add_rope_factors(&g)))
        goto done;
    if (gguf_writer_write_file(g.w, out_path) != 0) {
        snprintf(err, err_len, "cannot write %s", out_path);
        rc = MDL_EIO;
    }
done:
    gguf_writer_free(g.w);
    for (size_t i = 0; i < g.n_bufs; i++)
        free(g.bufs[i]);
    free(g.bufs);
    gguf_close(v);
    return rc;
}
