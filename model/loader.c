/* loader.c - maps GGUF metadata and tensors onto struct mdl_weights for llama and qwen2.
 *
 * Hyperparameters come from "<arch>.*" keys (head_count_kv defaults to head_count,
 * rope.freq_base to 10000, rope.dimension_count to head_dim); the output matrix is
 * tied to token_embd when output.weight is absent; qwen2 adds q/k/v biases and uses
 * NeoX RoPE. Nothing is copied: tensors point into the file mapping.
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

/* Reads a u32 key; `def` < 0 means required. */
static int get_u32(const struct gguf_file *f, const char *key, int64_t def, uint32_t *out,
                   char *err, size_t len)
{
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

static int get_f32(const struct gguf_file *f, const char *key, double def, float *out, char *err,
                   size_t len)
{
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
    return 0;
}

static int read_hparams(const struct gguf_file *f, struct mdl_hparams *hp, char *err, size_t len)
{
    char key[128];
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
    if (strcmp(arch, "llama") == 0) {
        hp->arch = MDL_ARCH_LLAMA;
    } else if (strcmp(arch, "qwen2") == 0) {
        hp->arch = MDL_ARCH_QWEN2;
    } else {
        snprintf(err, len, "general.architecture '%.64s' is not supported (llama, qwen2)", arch);
        free(arch);
        return MDL_EUNSUPPORTED;
    }
    const char *a = hp->arch == MDL_ARCH_LLAMA ? "llama" : "qwen2";
    free(arch);
    int rc;
#define U32(field, suffix, def)                                                                    \
    snprintf(key, sizeof(key), "%s.%s", a, suffix);                                                \
    if ((rc = get_u32(f, key, def, &hp->field, err, len)) != 0)                                    \
        return rc;
    U32(n_embd, "embedding_length", -1)
    U32(n_layer, "block_count", -1)
    U32(n_head, "attention.head_count", -1)
    U32(n_head_kv, "attention.head_count_kv", (int64_t)hp->n_head)
    U32(n_ff, "feed_forward_length", -1)
    U32(n_ctx_train, "context_length", -1)
#undef U32
    snprintf(key, sizeof(key), "%s.attention.layer_norm_rms_epsilon", a);
    if ((rc = get_f32(f, key, NAN, &hp->rms_eps, err, len)) != 0)
        return rc;
    snprintf(key, sizeof(key), "%s.rope.freq_base", a);
    if ((rc = get_f32(f, key, 10000.0, &hp->rope_freq_base, err, len)) != 0)
        return rc;

    /* R17 */
    if (hp->n_layer < 1 || hp->n_layer > 1024) {
        snprintf(err, len, "%s.block_count %u is outside [1, 1024]", a, hp->n_layer);
        return MDL_EFORMAT;
    }
    if (hp->n_embd < 1 || hp->n_embd > MAX_EMBD) {
        snprintf(err, len, "%s.embedding_length %u is outside [1, %u]", a, hp->n_embd, MAX_EMBD);
        return MDL_EFORMAT;
    }
    if (hp->n_head < 1 || hp->n_embd % hp->n_head != 0) {
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
    hp->head_dim = hp->n_embd / hp->n_head;
    snprintf(key, sizeof(key), "%s.rope.dimension_count", a);
    if ((rc = get_u32(f, key, hp->head_dim, &hp->n_rot, err, len)) != 0)
        return rc;
    if (hp->n_rot < 2 || hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0) {
        snprintf(err, len, "%s.rope.dimension_count %u must be even and in [2, head_dim %u]", a,
                 hp->n_rot, hp->head_dim);
        return MDL_EFORMAT;
    }
    hp->rope_neox = hp->arch == MDL_ARCH_QWEN2;
    return 0;
}

/* Finds tensor `name` with shape [ne0] (ne1 == 0) or [ne0, ne1]. ne1 == UINT64_MAX
 * accepts any row count (token_embd: that is where n_vocab comes from). */
static int get_tensor(const struct gguf_file *f, const char *name, uint64_t ne0, uint64_t ne1,
                      bool need_f32, bool optional, struct mdl_tensor *out, char *err, size_t len)
{
    memset(out, 0, sizeof(*out));
    const struct gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) {
        if (optional)
            return 0;
        snprintf(err, len, "missing tensor %s", name);
        return MDL_EFORMAT;
    }
    uint32_t want_dims = ne1 == 0 ? 1 : 2;
    bool ok = t->ne[0] == ne0 && t->ne[2] == 1 && t->ne[3] == 1 && t->n_dims <= 2;
    if (want_dims == 1)
        ok = ok && t->ne[1] == 1;
    else if (ne1 != UINT64_MAX)
        ok = ok && t->ne[1] == ne1;
    if (!ok) {
        char want[64];
        if (want_dims == 1)
            snprintf(want, sizeof(want), "[%llu]", (unsigned long long)ne0);
        else if (ne1 == UINT64_MAX)
            snprintf(want, sizeof(want), "[%llu, n_vocab]", (unsigned long long)ne0);
        else
            snprintf(want, sizeof(want), "[%llu, %llu]", (unsigned long long)ne0,
                     (unsigned long long)ne1);
        snprintf(err, len, "tensor %s has shape [%llu, %llu, %llu, %llu], expected %s", name,
                 (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                 (unsigned long long)t->ne[2], (unsigned long long)t->ne[3], want);
        return MDL_EFORMAT;
    }
    if (need_f32 ? t->type != GGML_TYPE_F32 : !quant_is_supported(t->type)) {
        snprintf(err, len, "tensor %s has type %s, expected %s", name, gguf_type_name(t->type),
                 need_f32 ? "F32" : "one of F32, F16, Q8_0, Q4_0, Q4_K, Q6_K");
        return need_f32 ? MDL_EFORMAT : MDL_EUNSUPPORTED;
    }
    if (t->ne[0] % quant_block_elems(t->type) != 0) {
        snprintf(err, len, "tensor %s: row length %llu is not a multiple of the %s block size %u",
                 name, (unsigned long long)t->ne[0], gguf_type_name(t->type),
                 quant_block_elems(t->type));
        return MDL_EFORMAT;
    }
    out->type = t->type;
    out->ne[0] = t->ne[0];
    out->ne[1] = t->ne[1];
    out->data = t->data;
    out->nbytes = (size_t)t->nbytes;
    return 0;
}

/* Layer tensors: `need` a matrix or vector of a layer; the name gets "blk.L." prepended. */
static int layer_tensor(const struct gguf_file *f, uint32_t l, const char *suffix, uint64_t ne0,
                        uint64_t ne1, bool need_f32, bool optional, struct mdl_tensor *out,
                        char *err, size_t len)
{
    char name[96];
    snprintf(name, sizeof(name), "blk.%u.%s", l, suffix);
    return get_tensor(f, name, ne0, ne1, need_f32, optional, out, err, len);
}

static int load_layer(const struct gguf_file *f, const struct mdl_hparams *hp, uint32_t l,
                      struct mdl_layer *L, char *err, size_t len)
{
    uint64_t e = hp->n_embd;
    uint64_t qd = (uint64_t)hp->n_head * hp->head_dim;
    uint64_t kvd = (uint64_t)hp->n_head_kv * hp->head_dim;
    bool bias = hp->arch == MDL_ARCH_QWEN2;
    int rc;
    if ((rc = layer_tensor(f, l, "attn_norm.weight", e, 0, true, false, &L->attn_norm, err, len)) ||
        (rc = layer_tensor(f, l, "attn_q.weight", e, qd, false, false, &L->wq, err, len)) ||
        (rc = layer_tensor(f, l, "attn_k.weight", e, kvd, false, false, &L->wk, err, len)) ||
        (rc = layer_tensor(f, l, "attn_v.weight", e, kvd, false, false, &L->wv, err, len)) ||
        (rc = layer_tensor(f, l, "attn_output.weight", qd, e, false, false, &L->wo, err, len)) ||
        (rc = layer_tensor(f, l, "ffn_norm.weight", e, 0, true, false, &L->ffn_norm, err, len)) ||
        (rc = layer_tensor(f, l, "ffn_gate.weight", e, hp->n_ff, false, false, &L->w_gate, err,
                           len)) ||
        (rc = layer_tensor(f, l, "ffn_up.weight", e, hp->n_ff, false, false, &L->w_up, err, len)) ||
        (rc = layer_tensor(f, l, "ffn_down.weight", hp->n_ff, e, false, false, &L->w_down, err,
                           len)))
        return rc;
    if (bias && ((rc = layer_tensor(f, l, "attn_q.bias", qd, 0, true, false, &L->bq, err, len)) ||
                 (rc = layer_tensor(f, l, "attn_k.bias", kvd, 0, true, false, &L->bk, err, len)) ||
                 (rc = layer_tensor(f, l, "attn_v.bias", kvd, 0, true, false, &L->bv, err, len))))
        return rc;
    return 0;
}

int mdl_load_weights(struct mdl_weights *w, const struct gguf_file *f, char *err, size_t len)
{
    memset(w, 0, sizeof(*w));
    struct mdl_hparams *hp = &w->hp;
    int rc = read_hparams(f, hp, err, len);
    if (rc)
        goto fail;
    rc = get_tensor(f, "token_embd.weight", hp->n_embd, UINT64_MAX, false, false, &w->tok_embd, err,
                    len);
    if (rc)
        goto fail;
    if (w->tok_embd.ne[1] < 1 || w->tok_embd.ne[1] > MAX_VOCAB) {
        snprintf(err, len, "tensor token_embd.weight: vocabulary size %llu is outside [1, %u]",
                 (unsigned long long)w->tok_embd.ne[1], MAX_VOCAB);
        rc = MDL_EFORMAT;
        goto fail;
    }
    hp->n_vocab = (uint32_t)w->tok_embd.ne[1];
    if ((rc = get_tensor(f, "output_norm.weight", hp->n_embd, 0, true, false, &w->output_norm, err,
                         len)))
        goto fail;
    if ((rc = get_tensor(f, "output.weight", hp->n_embd, hp->n_vocab, false, true, &w->output, err,
                         len)))
        goto fail;
    if (!w->output.data)
        w->output = w->tok_embd; /* tied */
    w->layers = calloc(hp->n_layer, sizeof(*w->layers));
    if (!w->layers) {
        snprintf(err, len, "out of memory");
        rc = MDL_ENOMEM;
        goto fail;
    }
    for (uint32_t l = 0; l < hp->n_layer; l++)
        if ((rc = load_layer(f, hp, l, &w->layers[l], err, len)))
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
        const struct mdl_tensor *ts[] = {&L->attn_norm, &L->wq,     &L->wk,   &L->wv,
                                         &L->wo,        &L->bq,     &L->bk,   &L->bv,
                                         &L->ffn_norm,  &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++)
            if (ts[i]->data)
                n += ts[i]->ne[0] * (ts[i]->ne[1] ? ts[i]->ne[1] : 1);
    }
    return n;
}
