/* genmodel.c - the random-weight model generator (see model.h).
 *
 * Normal deviates come from xoshiro256** seeded through splitmix64 with the model seed
 * and the CRC-32 of the tensor name, turned into N(0,1) by the Box-Muller transform.
 * Tensors are generated, converted to the file type and handed to the GGUF writer by
 * reference, so peak memory is about the size of the output file.
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
    if (strcmp(name, "bench-llama") == 0) {
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
        return 0;
    }
    return -1;
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

/* Generates tensor `name` of rows x cols (rows 0 = a vector) with values
 * mean + std * N(0,1), converts it to `type` and adds it to the writer. */
static int add_tensor(struct gen_state *g, const char *name, uint64_t cols, uint64_t rows,
                      double mean, double std, uint32_t type)
{
    uint64_t nr = rows ? rows : 1;
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
    uint64_t ne[2] = {cols, nr};
    int rc = gguf_writer_add_tensor_ref(g->w, name, type, rows ? 2 : 1, ne, out, row_bytes * nr);
    if (rc) {
        snprintf(g->err, g->err_len, "cannot add tensor %s", name);
        return MDL_ENOMEM;
    }
    return 0;
}

static int add_matrix(struct gen_state *g, const char *name, uint64_t fan_in, uint64_t rows,
                      uint32_t type)
{
    return add_tensor(g, name, fan_in, rows, 0.0, 1.0 / sqrt((double)fan_in), type);
}

/* Copies one tokenizer.* kv of the vocab file. */
static int copy_kv(struct gguf_writer *w, const struct gguf_file *v, const struct gguf_kv *kv,
                   const char *key)
{
    if (kv->type == GGUF_TYPE_STRING) {
        struct gguf_str s;
        int rc = gguf_kv_str(kv, &s);
        return rc ? rc : gguf_writer_add_strn(w, key, s.ptr, (size_t)s.len);
    }
    if (kv->type != GGUF_TYPE_ARRAY)
        return gguf_type_size(kv->type) ? gguf_writer_add_scalar(w, key, kv->type, kv->data)
                                        : MDL_EFORMAT;
    if (kv->arr_type != GGUF_TYPE_STRING)
        return gguf_writer_add_arr(w, key, kv->arr_type, kv->data, kv->arr_n);
    char **strs = calloc(kv->arr_n ? kv->arr_n : 1, sizeof(*strs));
    int rc = strs ? 0 : MDL_ENOMEM;
    for (uint64_t i = 0; rc == 0 && i < kv->arr_n; i++) {
        struct gguf_str s;
        if (gguf_arr_str(v, key, i, &s) != 0 || !(strs[i] = malloc(s.len + 1))) {
            rc = MDL_ENOMEM;
            break;
        }
        memcpy(strs[i], s.ptr, s.len);
        strs[i][s.len] = '\0';
    }
    if (rc == 0)
        rc = gguf_writer_add_arr_str(w, key, (const char *const *)strs, kv->arr_n);
    for (uint64_t i = 0; strs && i < kv->arr_n; i++)
        free(strs[i]);
    free(strs);
    return rc;
}

static int add_metadata(struct gen_state *g, const struct gguf_file *v, uint64_t *n_vocab)
{
    const struct mdl_gen_params *p = g->p;
    const char *a = p->arch == MDL_ARCH_QWEN2 ? "qwen2" : "llama";
    char key[128];
    int rc = 0;
    rc |= gguf_writer_add_str(g->w, "general.architecture", a);
    rc |= gguf_writer_add_str(g->w, "general.name", "chatd random model");
    rc |= gguf_writer_add_u64(g->w, "general.generator.seed", p->seed);
#define KU32(suffix, val)                                                                          \
    snprintf(key, sizeof(key), "%s.%s", a, suffix);                                                \
    rc |= gguf_writer_add_u32(g->w, key, val);
#define KF32(suffix, val)                                                                          \
    snprintf(key, sizeof(key), "%s.%s", a, suffix);                                                \
    rc |= gguf_writer_add_f32(g->w, key, val);
    KU32("context_length", p->n_ctx)
    KU32("embedding_length", p->n_embd)
    KU32("block_count", p->n_layer)
    KU32("feed_forward_length", p->n_ff)
    KU32("attention.head_count", p->n_head)
    KU32("attention.head_count_kv", p->n_head_kv)
    KU32("rope.dimension_count", p->n_embd / p->n_head)
    KF32("rope.freq_base", p->rope_freq_base)
    KF32("attention.layer_norm_rms_epsilon", p->rms_eps)
#undef KU32
#undef KF32
    *n_vocab = 0;
    for (uint64_t i = 0; rc == 0 && i < gguf_n_kv(v); i++) {
        const struct gguf_kv *kv = gguf_kv_at(v, i);
        if (kv->key.len < 10 || memcmp(kv->key.ptr, "tokenizer.", 10) != 0 ||
            kv->key.len >= sizeof(key))
            continue;
        memcpy(key, kv->key.ptr, kv->key.len);
        key[kv->key.len] = '\0';
        if (p->chat_template && strcmp(key, "tokenizer.chat_template") == 0)
            continue;
        if (strcmp(key, "tokenizer.ggml.tokens") == 0)
            *n_vocab = kv->arr_n;
        rc = copy_kv(g->w, v, kv, key);
    }
    if (rc == 0 && p->chat_template)
        rc = gguf_writer_add_str(g->w, "tokenizer.chat_template", p->chat_template);
    if (rc) {
        snprintf(g->err, g->err_len, "cannot write metadata");
        return MDL_ENOMEM;
    }
    if (*n_vocab == 0) {
        snprintf(g->err, g->err_len, "vocab file has no tokenizer.ggml.tokens array");
        return MDL_EFORMAT;
    }
    return 0;
}

static int add_layers(struct gen_state *g)
{
    const struct mdl_gen_params *p = g->p;
    uint64_t hd = p->n_embd / p->n_head;
    uint64_t qd = hd * p->n_head;
    uint64_t kvd = hd * p->n_head_kv;
    char name[96];
    int rc = 0;
    for (uint32_t l = 0; l < p->n_layer && rc == 0; l++) {
#define NAME(s) (snprintf(name, sizeof(name), "blk.%u.%s", l, s), name)
        if ((rc =
                 add_tensor(g, NAME("attn_norm.weight"), p->n_embd, 0, 1.0, 0.05, GGML_TYPE_F32)) ||
            (rc = add_matrix(g, NAME("attn_q.weight"), p->n_embd, qd, p->type)) ||
            (rc = add_matrix(g, NAME("attn_k.weight"), p->n_embd, kvd, p->type)) ||
            (rc = add_matrix(g, NAME("attn_v.weight"), p->n_embd, kvd, p->type)))
            break;
        if (p->arch == MDL_ARCH_QWEN2 &&
            ((rc = add_tensor(g, NAME("attn_q.bias"), qd, 0, 0.0, 0.5, GGML_TYPE_F32)) ||
             (rc = add_tensor(g, NAME("attn_k.bias"), kvd, 0, 0.0, 0.5, GGML_TYPE_F32)) ||
             (rc = add_tensor(g, NAME("attn_v.bias"), kvd, 0, 0.0, 0.5, GGML_TYPE_F32))))
            break;
        if ((rc = add_matrix(g, NAME("attn_output.weight"), qd, p->n_embd, p->type)) ||
            (rc = add_tensor(g, NAME("ffn_norm.weight"), p->n_embd, 0, 1.0, 0.05, GGML_TYPE_F32)) ||
            (rc = add_matrix(g, NAME("ffn_gate.weight"), p->n_embd, p->n_ff, p->type)) ||
            (rc = add_matrix(g, NAME("ffn_up.weight"), p->n_embd, p->n_ff, p->type)) ||
            (rc = add_matrix(g, NAME("ffn_down.weight"), p->n_ff, p->n_embd, p->type)))
            break;
#undef NAME
    }
    return rc;
}

static int check_params(const struct mdl_gen_params *p, char *err, size_t len)
{
    if (p->type != GGML_TYPE_F32 && p->type != GGML_TYPE_F16 && p->type != GGML_TYPE_Q8_0 &&
        p->type != GGML_TYPE_Q4_0) {
        snprintf(err, len, "type must be f32, f16, q8_0 or q4_0");
        return MDL_EINVAL;
    }
    if (p->n_embd == 0 || p->n_layer == 0 || p->n_layer > 1024 || p->n_head == 0 ||
        p->n_head_kv == 0 || p->n_embd % p->n_head != 0 || p->n_head % p->n_head_kv != 0 ||
        p->n_ff == 0 || p->n_ctx == 0 || p->n_embd > (1u << 16) || p->n_ff > (1u << 18)) {
        snprintf(err, len, "inconsistent shape (n_embd %u, n_layer %u, heads %u/%u, n_ff %u)",
                 p->n_embd, p->n_layer, p->n_head, p->n_head_kv, p->n_ff);
        return MDL_EINVAL;
    }
    if (p->type != GGML_TYPE_F32 && p->type != GGML_TYPE_F16 &&
        (p->n_embd % 32 != 0 || p->n_ff % 32 != 0)) {
        snprintf(err, len, "quantized types need n_embd and n_ff to be multiples of 32");
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
    if (!p->tied_output && (rc = add_matrix(&g, "output.weight", p->n_embd, n_vocab, big)))
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
