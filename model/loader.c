/* loader.c - maps GGUF metadata and tensors onto struct mdl_weights.
 *
 * One table (archs[]) says what each supported architecture adds to the llama graph:
 * NeoX RoPE, q/k/v biases, per-head q/k norms, gemma's post-norms and GELU, phi3's fused
 * tensors, experts. Hyperparameters come from "<arch>.*" keys (head_count_kv defaults
 * to head_count, rope.freq_base to 10000, attention.key_length to n_embd/n_head,
 * rope.dimension_count to the head size); the output matrix is tied to token_embd when
 * output.weight is absent. Nothing is copied: tensors point into the file mapping, and
 * a fused or stacked tensor is described by row views of it (backend.h).
 */
#include "loader.h"

#include "model.h"
#include "quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EMBD (1u << 16)
#define MAX_FF (1u << 18)
#define MAX_VOCAB (1u << 22)
#define MAX_HEAD_DIM 1024u
#define MAX_EXPERTS 1024u
#define MAX_EXPERTS_USED 32u

/* What an architecture adds to llama's graph. */
struct arch_info {
    const char *name;
    bool neox;       /* RoPE on split halves */
    bool bias;       /* q/k/v biases */
    bool qk_norm;    /* per-head RMS norm of q and k before RoPE */
    bool gemma;      /* sqrt(n_embd) embedding scale, GELU, post-attention/FFN norms */
    bool fused;      /* phi3: attn_qkv (or q/k/v) and gate|up in ffn_up */
    bool moe;        /* routed experts are required (qwen2moe); llama has them optionally */
    bool shared_exp; /* qwen2moe's shared expert */
};

static const struct arch_info archs[MDL_ARCH_COUNT] = {
    [MDL_ARCH_LLAMA] = {.name = "llama"},
    [MDL_ARCH_QWEN2] = {.name = "qwen2", .neox = true, .bias = true},
    [MDL_ARCH_QWEN2MOE] = {.name = "qwen2moe", .neox = true, .bias = true, .moe = true,
                           .shared_exp = true},
    [MDL_ARCH_QWEN3] = {.name = "qwen3", .neox = true, .qk_norm = true},
    [MDL_ARCH_PHI3] = {.name = "phi3", .neox = true, .fused = true},
    [MDL_ARCH_GEMMA2] = {.name = "gemma2", .neox = true, .gemma = true},
    [MDL_ARCH_GEMMA3] = {.name = "gemma3", .neox = true, .qk_norm = true, .gemma = true},
};

const char *mdl_arch_str(enum mdl_arch arch)
{
    return (unsigned)arch < MDL_ARCH_COUNT ? archs[arch].name : NULL;
}

const char *mdl_arch_list(void)
{
    return "llama, qwen2, qwen2moe, qwen3, phi3, gemma2, gemma3";
}

static const char *gguf_type_word(uint32_t t)
{
    switch (t) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_INT16:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_INT64:
        return "an integer";
    case GGUF_TYPE_FLOAT32:
    case GGUF_TYPE_FLOAT64:
        return "a float";
    case GGUF_TYPE_BOOL:
        return "a bool";
    case GGUF_TYPE_STRING:
        return "a string";
    case GGUF_TYPE_ARRAY:
        return "an array";
    default:
        return "an unknown type";
    }
}

/* ---- keys ----------------------------------------------------------------------------- */

/* Reads key "<arch>.<suffix>". `def` < 0 means required. */
static int get_u32(const struct gguf_file *f, const char *a, const char *suffix, int64_t def,
                   uint32_t *out, char *err, size_t len)
{
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", a, suffix);
    const struct gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) {
        if (def >= 0) {
            *out = (uint32_t)def;
            return 0;
        }
        snprintf(err, len, "missing key %s", key);
        return MDL_EFORMAT;
    }
    if (gguf_get_u32(f, key, out) != 0) {
        snprintf(err, len, "key %s must be an unsigned 32-bit integer, not %s", key,
                 gguf_type_word(kv->type));
        return MDL_EFORMAT;
    }
    return 0;
}

/* Reads key "<arch>.<suffix>"; a NaN `def` means required. */
static int get_f32(const struct gguf_file *f, const char *a, const char *suffix, double def,
                   float *out, char *err, size_t len)
{
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", a, suffix);
    const struct gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) {
        if (!isnan(def)) {
            *out = (float)def;
            return 0;
        }
        snprintf(err, len, "missing key %s", key);
        return MDL_EFORMAT;
    }
    if (gguf_get_f32(f, key, out) != 0) {
        snprintf(err, len, "key %s must be a float32, not %s", key, gguf_type_word(kv->type));
        return MDL_EFORMAT;
    }
    if (!isfinite(*out)) {
        snprintf(err, len, "key %s must be finite", key);
        return MDL_EFORMAT;
    }
    return 0;
}

/* A string key "<arch>.<suffix>" (NULL when absent); caller frees *out. */
static int get_str(const struct gguf_file *f, const char *a, const char *suffix, char **out,
                   char *err, size_t len)
{
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", a, suffix);
    *out = NULL;
    const struct gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv)
        return 0;
    if (kv->type != GGUF_TYPE_STRING || gguf_get_str(f, key, out) != 0) {
        snprintf(err, len, "key %s must be a string, not %s", key, gguf_type_word(kv->type));
        return MDL_EFORMAT;
    }
    return 0;
}

static int read_arch(const struct gguf_file *f, enum mdl_arch *out, char *err, size_t len)
{
    char *arch = NULL;
    const struct gguf_kv *kv = gguf_find_kv(f, "general.architecture");
    if (!kv) {
        snprintf(err, len, "missing key general.architecture");
        return MDL_EFORMAT;
    }
    if (kv->type != GGUF_TYPE_STRING || gguf_get_str(f, "general.architecture", &arch) != 0) {
        snprintf(err, len, "key general.architecture must be a string, not %s",
                 gguf_type_word(kv->type));
        return MDL_EFORMAT;
    }
    for (int i = 0; i < MDL_ARCH_COUNT; i++) {
        if (strcmp(arch, archs[i].name) == 0) {
            *out = (enum mdl_arch)i;
            free(arch);
            return 0;
        }
    }
    snprintf(err, len, "general.architecture '%.64s' is not supported (supported: %s)", arch,
             mdl_arch_list());
    free(arch);
    return MDL_EUNSUPPORTED;
}

/* R17: the shape keys. */
static int check_shape(const char *a, const struct mdl_hparams *hp, bool has_key_length,
                       char *err, size_t len)
{
    if (hp->n_layer < 1 || hp->n_layer > 1024) {
        snprintf(err, len, "%s.block_count %u is outside [1, 1024]", a, hp->n_layer);
        return MDL_EFORMAT;
    }
    if (hp->n_embd < 1 || hp->n_embd > MAX_EMBD) {
        snprintf(err, len, "%s.embedding_length %u is outside [1, %u]", a, hp->n_embd, MAX_EMBD);
        return MDL_EFORMAT;
    }
    if (hp->n_head < 1 || (!has_key_length && hp->n_embd % hp->n_head != 0)) {
        snprintf(err, len, "%s.attention.head_count %u must be >= 1 and divide embedding_length %u",
                 a, hp->n_head, hp->n_embd);
        return MDL_EFORMAT;
    }
    if (hp->n_head_kv < 1 || hp->n_head % hp->n_head_kv != 0) {
        snprintf(err, len, "%s.attention.head_count_kv %u must be >= 1 and divide head_count %u", a,
                 hp->n_head_kv, hp->n_head);
        return MDL_EFORMAT;
    }
    if (hp->n_ctx_train < 1 || hp->n_ctx_train > (1u << 20)) {
        snprintf(err, len, "%s.context_length %u is outside [1, 1048576]", a, hp->n_ctx_train);
        return MDL_EFORMAT;
    }
    if (hp->n_ff < 1 || hp->n_ff > MAX_FF) {
        snprintf(err, len, "%s.feed_forward_length %u is outside [1, %u]", a, hp->n_ff, MAX_FF);
        return MDL_EFORMAT;
    }
    if (!(hp->rms_eps > 0.0f) || !(hp->rms_eps < 1.0f)) {
        snprintf(err, len, "%s.attention.layer_norm_rms_epsilon %g is outside (0, 1)", a,
                 (double)hp->rms_eps);
        return MDL_EFORMAT;
    }
    if (!(hp->rope_freq_base > 0.0f) || isinf(hp->rope_freq_base)) {
        snprintf(err, len, "%s.rope.freq_base %g must be positive and finite", a,
                 (double)hp->rope_freq_base);
        return MDL_EFORMAT;
    }
    if (hp->head_dim < 2 || hp->head_dim > MAX_HEAD_DIM || hp->head_dim % 2 != 0 ||
        (uint64_t)hp->head_dim * hp->n_head > MAX_EMBD) {
        snprintf(err, len, "%s.attention.key_length %u must be even, in [2, %u], and with %u heads "
                 "at most %u wide", a, hp->head_dim, MAX_HEAD_DIM, hp->n_head, MAX_EMBD);
        return MDL_EFORMAT;
    }
    if (hp->n_rot < 2 || hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0) {
        snprintf(err, len, "%s.rope.dimension_count %u must be even and in [2, head_dim %u]", a,
                 hp->n_rot, hp->head_dim);
        return MDL_EFORMAT;
    }
    return 0;
}

/* RoPE: base, linear scaling, LongRoPE's attention factor and original context; gemma3's
 * sliding-window layers have a base of their own and no scaling. */
static int read_rope(const struct gguf_file *f, const char *a, struct mdl_hparams *hp, char *err,
                     size_t len)
{
    char *type = NULL;
    float factor = 0.0f;
    int rc;
    if ((rc = get_f32(f, a, "rope.freq_base", 10000.0, &hp->rope_freq_base, err, len)) ||
        (rc = get_str(f, a, "rope.scaling.type", &type, err, len)))
        return rc;
    bool linear = !type || strcmp(type, "linear") == 0;
    if (type && !linear && strcmp(type, "none") != 0) {
        snprintf(err, len, "%s.rope.scaling.type '%.32s' is not supported (none, linear)", a, type);
        free(type);
        return MDL_EUNSUPPORTED;
    }
    free(type);
    hp->rope.freq_base = hp->rope_freq_base;
    hp->rope.freq_scale = 1.0f;
    hp->rope.attn_factor = 1.0f;
    if ((rc = get_f32(f, a, "rope.scaling.factor", 0.0, &factor, err, len)) ||
        (rc = get_f32(f, a, "rope.scaling.attn_factor", 1.0, &hp->rope.attn_factor, err, len)) ||
        (rc = get_u32(f, a, "rope.scaling.original_context_length", hp->n_ctx_train,
                      &hp->n_ctx_orig, err, len)))
        return rc;
    if (factor < 0.0f || (factor > 0.0f && factor < 1e-3f) || !(hp->rope.attn_factor > 0.0f)) {
        snprintf(err, len, "%s.rope.scaling.factor %g / attn_factor %g out of range", a,
                 (double)factor, (double)hp->rope.attn_factor);
        return MDL_EFORMAT;
    }
    if (linear && factor != 0.0f)
        hp->rope.freq_scale = 1.0f / factor;
    hp->rope_swa = hp->rope;
    if (hp->arch == MDL_ARCH_GEMMA3) {
        hp->rope_swa.freq_scale = 1.0f;
        if ((rc = get_f32(f, a, "rope.freq_base_swa", 10000.0, &hp->rope_swa.freq_base, err,
                          len)))
            return rc;
        if (!(hp->rope_swa.freq_base > 0.0f)) {
            snprintf(err, len, "%s.rope.freq_base_swa must be positive", a);
            return MDL_EFORMAT;
        }
    }
    return 0;
}

/* Attention scales, soft-capping, sliding window and the gemma specifics. */
static int read_attention(const struct gguf_file *f, const char *a, struct mdl_hparams *hp,
                          char *err, size_t len)
{
    int rc = 0;
    float head_scale = 1.0f / sqrtf((float)hp->head_dim);
    hp->q_scale = 1.0f;
    hp->kq_scale = head_scale;
    hp->embd_scale = 1.0f;
    hp->ffn_act = MDL_ACT_SILU;
    switch (hp->arch) {
    case MDL_ARCH_PHI3:
        hp->q_scale = head_scale;
        hp->kq_scale = 1.0f;
        rc = get_u32(f, a, "attention.sliding_window", 0, &hp->n_swa, err, len);
        break;
    case MDL_ARCH_GEMMA2:
    case MDL_ARCH_GEMMA3:
        /* the largest Gemma of each generation scales by n_embd/n_head, not head_dim */
        hp->q_scale = hp->n_layer == (hp->arch == MDL_ARCH_GEMMA2 ? 46u : 62u)
                          ? 1.0f / sqrtf((float)(hp->n_embd / hp->n_head))
                          : head_scale;
        hp->kq_scale = 1.0f;
        hp->embd_scale = sqrtf((float)hp->n_embd);
        hp->ffn_act = MDL_ACT_GELU;
        if (hp->arch == MDL_ARCH_GEMMA2) {
            if ((rc = get_u32(f, a, "attention.sliding_window", 4096, &hp->n_swa, err, len)) ||
                (rc = get_f32(f, a, "attn_logit_softcapping", 50.0, &hp->attn_softcap, err,
                              len)) ||
                (rc = get_f32(f, a, "final_logit_softcapping", 30.0, &hp->final_softcap, err,
                              len)))
                return rc;
        } else if ((rc = get_u32(f, a, "attention.sliding_window", -1, &hp->n_swa, err, len)) ||
                   (rc = get_f32(f, a, "final_logit_softcapping", 0.0, &hp->final_softcap, err,
                                 len))) {
            return rc;
        }
        if (hp->attn_softcap < 0.0f || hp->final_softcap < 0.0f) {
            snprintf(err, len, "%s: soft-capping values must not be negative", a);
            return MDL_EFORMAT;
        }
        break;
    default:
        break;
    }
    return rc;
}

/* Which layers use the sliding window: every layer (phi3), the even ones (gemma2), all
 * but every pattern-th (gemma3, pattern 6 by default). */
static int mark_swa_layers(const struct gguf_file *f, const char *a, const struct mdl_hparams *hp,
                           struct mdl_layer *layers, char *err, size_t len)
{
    uint32_t pattern = 6;
    if (hp->arch == MDL_ARCH_GEMMA3) {
        int rc = get_u32(f, a, "attention.sliding_window_pattern", 6, &pattern, err, len);
        if (rc)
            return rc;
        if (pattern < 1) {
            snprintf(err, len, "%s.attention.sliding_window_pattern must be >= 1", a);
            return MDL_EFORMAT;
        }
    }
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        bool swa = false;
        if (hp->n_swa > 0) {
            if (hp->arch == MDL_ARCH_PHI3)
                swa = true;
            else if (hp->arch == MDL_ARCH_GEMMA2)
                swa = l % 2 == 0;
            else if (hp->arch == MDL_ARCH_GEMMA3)
                swa = l % pattern < pattern - 1;
        }
        layers[l].swa = swa;
    }
    return 0;
}

static int read_experts(const struct gguf_file *f, const char *a, struct mdl_hparams *hp,
                        char *err, size_t len)
{
    int rc;
    if ((rc = get_u32(f, a, "expert_count", 0, &hp->n_expert, err, len)) ||
        (rc = get_u32(f, a, "expert_used_count", 0, &hp->n_expert_used, err, len)))
        return rc;
    if (archs[hp->arch].moe && hp->n_expert == 0) {
        snprintf(err, len, "%s.expert_count must be > 0", a);
        return MDL_EFORMAT;
    }
    if (hp->n_expert == 0)
        return 0;
    if (hp->arch != MDL_ARCH_LLAMA && !archs[hp->arch].moe) {
        snprintf(err, len, "%s.expert_count: experts are not supported for %s", a, a);
        return MDL_EUNSUPPORTED;
    }
    if (hp->n_expert > MAX_EXPERTS || hp->n_expert_used < 1 ||
        hp->n_expert_used > hp->n_expert || hp->n_expert_used > MAX_EXPERTS_USED) {
        snprintf(err, len, "%s.expert_count %u / expert_used_count %u out of range (1 <= used <= "
                 "count, count <= %u, used <= %u)", a, hp->n_expert, hp->n_expert_used,
                 MAX_EXPERTS, MAX_EXPERTS_USED);
        return MDL_EFORMAT;
    }
    hp->n_ff_exp = hp->n_ff;
    hp->expert_norm = hp->arch == MDL_ARCH_LLAMA;
    if (archs[hp->arch].shared_exp &&
        ((rc = get_u32(f, a, "expert_feed_forward_length", hp->n_ff / hp->n_expert_used,
                       &hp->n_ff_exp, err, len)) ||
         (rc = get_u32(f, a, "expert_shared_feed_forward_length", hp->n_ff, &hp->n_ff_shexp, err,
                       len))))
        return rc;
    if (hp->n_ff_exp < 1 || hp->n_ff_exp > MAX_FF || hp->n_ff_shexp > MAX_FF) {
        snprintf(err, len, "%s: expert widths %u / %u are outside [1, %u]", a, hp->n_ff_exp,
                 hp->n_ff_shexp, MAX_FF);
        return MDL_EFORMAT;
    }
    return 0;
}

static int read_hparams(const struct gguf_file *f, struct mdl_hparams *hp, char *err, size_t len)
{
    int rc = read_arch(f, &hp->arch, err, len);
    if (rc)
        return rc;
    const char *a = archs[hp->arch].name;
    uint32_t key_len = 0;
    uint32_t val_len = 0;
    if ((rc = get_u32(f, a, "embedding_length", -1, &hp->n_embd, err, len)) ||
        (rc = get_u32(f, a, "block_count", -1, &hp->n_layer, err, len)) ||
        (rc = get_u32(f, a, "attention.head_count", -1, &hp->n_head, err, len)) ||
        (rc = get_u32(f, a, "attention.head_count_kv", hp->n_head, &hp->n_head_kv, err, len)) ||
        (rc = get_u32(f, a, "feed_forward_length", -1, &hp->n_ff, err, len)) ||
        (rc = get_u32(f, a, "context_length", -1, &hp->n_ctx_train, err, len)) ||
        (rc = get_u32(f, a, "attention.key_length", 0, &key_len, err, len)) ||
        (rc = get_u32(f, a, "attention.value_length", key_len, &val_len, err, len)) ||
        (rc = get_f32(f, a, "attention.layer_norm_rms_epsilon", NAN, &hp->rms_eps, err, len)) ||
        (rc = read_rope(f, a, hp, err, len)))
        return rc;
    if (val_len != key_len) {
        snprintf(err, len, "%s.attention.value_length %u differs from key_length %u (not supported)",
                 a, val_len, key_len);
        return MDL_EUNSUPPORTED;
    }
    hp->head_dim = key_len ? key_len : (hp->n_head ? hp->n_embd / hp->n_head : 0);
    if ((rc = get_u32(f, a, "rope.dimension_count", hp->head_dim, &hp->n_rot, err, len)) ||
        (rc = check_shape(a, hp, key_len != 0, err, len)) ||
        (rc = read_attention(f, a, hp, err, len)) || (rc = read_experts(f, a, hp, err, len)))
        return rc;
    hp->rope_neox = archs[hp->arch].neox;
    return 0;
}

/* ---- tensors -------------------------------------------------------------------------- */

/* Finds tensor `name` with shape [ne0] (ne1 == 0), [ne0, ne1] (ne2 == 0) or [ne0, ne1,
 * ne2] (stored as [ne0, ne1*ne2]). ne1 == UINT64_MAX accepts any row count (token_embd:
 * that is where n_vocab comes from). */
struct tspec {
    uint64_t ne0, ne1, ne2;
    bool need_f32;
    bool optional;
};

static int find_tensor(const struct gguf_file *f, const char *name, struct tspec s,
                       struct mdl_tensor *out, char *err, size_t len)
{
    memset(out, 0, sizeof(*out));
    const struct gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) {
        if (s.optional)
            return 0;
        snprintf(err, len, "missing tensor %s", name);
        return MDL_EFORMAT;
    }
    uint64_t ne1 = s.ne1 ? s.ne1 : 1;
    uint64_t ne2 = s.ne2 ? s.ne2 : 1;
    bool ok = t->ne[0] == s.ne0 && t->ne[2] == ne2 && t->ne[3] == 1;
    if (s.ne1 != UINT64_MAX)
        ok = ok && t->ne[1] == ne1;
    if (!ok) {
        char want[80];
        if (s.ne1 == 0)
            snprintf(want, sizeof(want), "[%llu]", (unsigned long long)s.ne0);
        else if (s.ne1 == UINT64_MAX)
            snprintf(want, sizeof(want), "[%llu, n_vocab]", (unsigned long long)s.ne0);
        else if (s.ne2 == 0)
            snprintf(want, sizeof(want), "[%llu, %llu]", (unsigned long long)s.ne0,
                     (unsigned long long)s.ne1);
        else
            snprintf(want, sizeof(want), "[%llu, %llu, %llu]", (unsigned long long)s.ne0,
                     (unsigned long long)s.ne1, (unsigned long long)s.ne2);
        snprintf(err, len, "tensor %s has shape [%llu, %llu, %llu, %llu], expected %s", name,
                 (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                 (unsigned long long)t->ne[2], (unsigned long long)t->ne[3], want);
        return MDL_EFORMAT;
    }
    if (s.need_f32 ? t->type != GGML_TYPE_F32 : !quant_is_supported(t->type)) {
        snprintf(err, len, "tensor %s has type %s, expected %s", name, gguf_type_name(t->type),
                 s.need_f32 ? "F32" : "one of F32, F16, Q8_0, Q4_0, Q4_K, Q6_K");
        return s.need_f32 ? MDL_EFORMAT : MDL_EUNSUPPORTED;
    }
    if (t->ne[0] % quant_block_elems(t->type) != 0) {
        snprintf(err, len, "tensor %s: row length %llu is not a multiple of the %s block size %u",
                 name, (unsigned long long)t->ne[0], gguf_type_name(t->type),
                 quant_block_elems(t->type));
        return MDL_EFORMAT;
    }
    out->type = t->type;
    out->ne[0] = t->ne[0];
    out->ne[1] = t->ne[1] * t->ne[2];
    out->data = t->data;
    out->nbytes = (size_t)t->nbytes;
    return 0;
}

static struct tspec vec(uint64_t n)
{
    return (struct tspec){.ne0 = n, .need_f32 = true};
}

static struct tspec mat(uint64_t n_in, uint64_t n_out)
{
    return (struct tspec){.ne0 = n_in, .ne1 = n_out};
}

/* Rows [r0, r0 + n) of t as a tensor of their own. */
static struct mdl_tensor row_view(const struct mdl_tensor *t, uint64_t r0, uint64_t n)
{
    struct mdl_tensor v = *t;
    size_t rb = quant_row_bytes(t->type, (int64_t)t->ne[0]);
    v.ne[1] = n;
    v.data = (const uint8_t *)t->data + r0 * rb;
    v.nbytes = n * rb;
    return v;
}

/* Layer tensor "blk.L.<suffix>". */
static int ltensor(const struct gguf_file *f, uint32_t l, const char *suffix, struct tspec s,
                   struct mdl_tensor *out, char *err, size_t len)
{
    char name[96];
    snprintf(name, sizeof(name), "blk.%u.%s", l, suffix);
    return find_tensor(f, name, s, out, err, len);
}

static int load_attention(const struct gguf_file *f, const struct mdl_hparams *hp, uint32_t l,
                          struct mdl_layer *L, char *err, size_t len)
{
    const struct arch_info *ai = &archs[hp->arch];
    uint64_t e = hp->n_embd;
    uint64_t qd = (uint64_t)hp->n_head * hp->head_dim;
    uint64_t kvd = (uint64_t)hp->n_head_kv * hp->head_dim;
    struct mdl_tensor qkv;
    struct tspec qkv_spec = mat(e, qd + 2 * kvd);
    qkv_spec.optional = true;
    int rc;
    if ((rc = ltensor(f, l, "attn_norm.weight", vec(e), &L->attn_norm, err, len)) ||
        (ai->fused && (rc = ltensor(f, l, "attn_qkv.weight", qkv_spec, &qkv, err, len))))
        return rc;
    if (ai->fused && qkv.data) {
        L->wq = row_view(&qkv, 0, qd);
        L->wk = row_view(&qkv, qd, kvd);
        L->wv = row_view(&qkv, qd + kvd, kvd);
    } else if ((rc = ltensor(f, l, "attn_q.weight", mat(e, qd), &L->wq, err, len)) ||
               (rc = ltensor(f, l, "attn_k.weight", mat(e, kvd), &L->wk, err, len)) ||
               (rc = ltensor(f, l, "attn_v.weight", mat(e, kvd), &L->wv, err, len))) {
        return rc;
    }
    if ((rc = ltensor(f, l, "attn_output.weight", mat(qd, e), &L->wo, err, len)))
        return rc;
    if (ai->bias && ((rc = ltensor(f, l, "attn_q.bias", vec(qd), &L->bq, err, len)) ||
                     (rc = ltensor(f, l, "attn_k.bias", vec(kvd), &L->bk, err, len)) ||
                     (rc = ltensor(f, l, "attn_v.bias", vec(kvd), &L->bv, err, len))))
        return rc;
    if (ai->qk_norm &&
        ((rc = ltensor(f, l, "attn_q_norm.weight", vec(hp->head_dim), &L->q_norm, err, len)) ||
         (rc = ltensor(f, l, "attn_k_norm.weight", vec(hp->head_dim), &L->k_norm, err, len))))
        return rc;
    if (ai->gemma &&
        (rc = ltensor(f, l, "post_attention_norm.weight", vec(e), &L->post_attn_norm, err, len)))
        return rc;
    return 0;
}

static int load_experts(const struct gguf_file *f, const struct mdl_hparams *hp, uint32_t l,
                        struct mdl_layer *L, char *err, size_t len)
{
    uint64_t e = hp->n_embd;
    uint64_t x = hp->n_ff_exp;
    struct tspec router = {.ne0 = e, .ne1 = hp->n_expert, .need_f32 = true};
    struct tspec up = {.ne0 = e, .ne1 = x, .ne2 = hp->n_expert};
    struct tspec down = {.ne0 = x, .ne1 = e, .ne2 = hp->n_expert};
    int rc;
    if ((rc = ltensor(f, l, "ffn_gate_inp.weight", router, &L->gate_inp, err, len)) ||
        (rc = ltensor(f, l, "ffn_gate_exps.weight", up, &L->gate_exps, err, len)) ||
        (rc = ltensor(f, l, "ffn_up_exps.weight", up, &L->up_exps, err, len)) ||
        (rc = ltensor(f, l, "ffn_down_exps.weight", down, &L->down_exps, err, len)))
        return rc;
    if (!archs[hp->arch].shared_exp)
        return 0;
    uint64_t s = hp->n_ff_shexp;
    if ((rc = ltensor(f, l, "ffn_gate_inp_shexp.weight", vec(e), &L->gate_inp_shexp, err, len)) ||
        (rc = ltensor(f, l, "ffn_gate_shexp.weight", mat(e, s), &L->gate_shexp, err, len)) ||
        (rc = ltensor(f, l, "ffn_up_shexp.weight", mat(e, s), &L->up_shexp, err, len)) ||
        (rc = ltensor(f, l, "ffn_down_shexp.weight", mat(s, e), &L->down_shexp, err, len)))
        return rc;
    return 0;
}

static int load_ffn(const struct gguf_file *f, const struct mdl_hparams *hp, uint32_t l,
                    struct mdl_layer *L, char *err, size_t len)
{
    const struct arch_info *ai = &archs[hp->arch];
    uint64_t e = hp->n_embd;
    uint64_t ff = hp->n_ff;
    int rc;
    if ((rc = ltensor(f, l, "ffn_norm.weight", vec(e), &L->ffn_norm, err, len)))
        return rc;
    if (hp->n_expert > 0) {
        rc = load_experts(f, hp, l, L, err, len);
    } else if (ai->fused) { /* gate | up in one matrix */
        struct mdl_tensor gu;
        if ((rc = ltensor(f, l, "ffn_up.weight", mat(e, 2 * ff), &gu, err, len)) ||
            (rc = ltensor(f, l, "ffn_down.weight", mat(ff, e), &L->w_down, err, len)))
            return rc;
        L->w_gate = row_view(&gu, 0, ff);
        L->w_up = row_view(&gu, ff, ff);
    } else if ((rc = ltensor(f, l, "ffn_gate.weight", mat(e, ff), &L->w_gate, err, len)) ||
               (rc = ltensor(f, l, "ffn_up.weight", mat(e, ff), &L->w_up, err, len)) ||
               (rc = ltensor(f, l, "ffn_down.weight", mat(ff, e), &L->w_down, err, len))) {
        return rc;
    }
    if (rc)
        return rc;
    if (ai->gemma &&
        (rc = ltensor(f, l, "post_ffw_norm.weight", vec(e), &L->post_ffn_norm, err, len)))
        return rc;
    return 0;
}

/* The model-wide tensors besides the layers. */
static int load_globals(const struct gguf_file *f, struct mdl_weights *w, char *err, size_t len)
{
    struct mdl_hparams *hp = &w->hp;
    struct tspec embd = {.ne0 = hp->n_embd, .ne1 = UINT64_MAX};
    int rc = find_tensor(f, "token_embd.weight", embd, &w->tok_embd, err, len);
    if (rc)
        return rc;
    if (w->tok_embd.ne[1] < 1 || w->tok_embd.ne[1] > MAX_VOCAB) {
        snprintf(err, len, "tensor token_embd.weight: vocabulary size %llu is outside [1, %u]",
                 (unsigned long long)w->tok_embd.ne[1], MAX_VOCAB);
        return MDL_EFORMAT;
    }
    hp->n_vocab = (uint32_t)w->tok_embd.ne[1];
    struct tspec out = mat(hp->n_embd, hp->n_vocab);
    out.optional = true;
    struct tspec factors = vec(hp->n_rot / 2);
    factors.optional = true;
    if ((rc = find_tensor(f, "output_norm.weight", vec(hp->n_embd), &w->output_norm, err, len)) ||
        (rc = find_tensor(f, "output.weight", out, &w->output, err, len)) ||
        (rc = find_tensor(f, "rope_freqs.weight", factors, &w->rope_freqs, err, len)) ||
        (rc = find_tensor(f, "rope_factors_long.weight", factors, &w->rope_long, err, len)) ||
        (rc = find_tensor(f, "rope_factors_short.weight", factors, &w->rope_short, err, len)))
        return rc;
    const struct mdl_tensor *fs[3] = {&w->rope_freqs, &w->rope_long, &w->rope_short};
    static const char *const names[3] = {"rope_freqs.weight", "rope_factors_long.weight",
                                         "rope_factors_short.weight"};
    for (int i = 0; i < 3; i++) {
        for (uint32_t j = 0; fs[i]->data && j < hp->n_rot / 2; j++) {
            float v = ((const float *)fs[i]->data)[j];
            if (!(v > 0.0f) || isinf(v)) {
                snprintf(err, len, "tensor %s: factor %u is %g, must be positive and finite",
                         names[i], j, (double)v);
                return MDL_EFORMAT;
            }
        }
    }
    if (!w->output.data)
        w->output = w->tok_embd; /* tied */
    return 0;
}

int mdl_load_weights(struct mdl_weights *w, const struct gguf_file *f, char *err, size_t len)
{
    memset(w, 0, sizeof(*w));
    struct mdl_hparams *hp = &w->hp;
    int rc = read_hparams(f, hp, err, len);
    if (rc || (rc = load_globals(f, w, err, len)))
        goto fail;
    w->layers = calloc(hp->n_layer, sizeof(*w->layers));
    if (!w->layers) {
        snprintf(err, len, "out of memory");
        rc = MDL_ENOMEM;
        goto fail;
    }
    for (uint32_t l = 0; l < hp->n_layer; l++)
        if ((rc = load_attention(f, hp, l, &w->layers[l], err, len)) ||
            (rc = load_ffn(f, hp, l, &w->layers[l], err, len)))
            goto fail;
    if ((rc = mark_swa_layers(f, archs[hp->arch].name, hp, w->layers, err, len)))
        goto fail;
    return 0;

fail:
    free(w->layers);
    memset(w, 0, sizeof(*w));
    return rc;
}

void mdl_weights_fini(struct mdl_weights *w)
{
    if (!w)
        return;
    free(w->layers);
    memset(w, 0, sizeof(*w));
}

uint64_t mdl_weights_n_params(const struct mdl_weights *w)
{
    const struct mdl_hparams *hp = &w->hp;
    uint64_t n = (uint64_t)hp->n_vocab * hp->n_embd * (w->output.data == w->tok_embd.data ? 1 : 2);
    n += hp->n_embd; /* output norm */
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const struct mdl_layer *L = &w->layers[l];
#define MDL_COUNT_(t)                                                                              \
    if (L->t.data)                                                                                 \
        n += L->t.ne[0] * (L->t.ne[1] ? L->t.ne[1] : 1);
        MDL_LAYER_TENSORS(MDL_COUNT_)
#undef MDL_COUNT_
    }
    return n;
}
