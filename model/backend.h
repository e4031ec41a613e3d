/* backend.h - what a compute backend (cpu, vulkan) implements.
 *
 * The engine owns one backend. A backend holds the weights (uploaded once at init),
 * a KV cache of `n_slots` sequence slots of `n_ctx` positions each, and runs the
 * transformer forward for a batch of tokens, each tagged with its slot and position.
 * Only the engine thread calls a backend; nothing here is thread-safe.
 *
 * Batch invariance: a token's logits depend only on its own slot's contents and
 * position, never on what else is in the batch (same kernels, same reduction order
 * for every row whatever n_tokens is).
 */
#ifndef CHATD_BACKEND_H
#define CHATD_BACKEND_H

#include "model.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A weight tensor as it lies in the mapped file: `type` is an enum ggml_type,
 * ne[0] is the row length (fan-in), ne[1] the number of rows. Borrowed. */
struct mdl_tensor {
    uint32_t type;
    uint64_t ne[2];
    const void *data;
    size_t nbytes;
};

/* One layer. Tensors an architecture lacks have data NULL. A fused tensor of the file
 * (phi3's attn_qkv and gate|up ffn_up) appears as row views: wq/wk/wv and w_gate/w_up
 * point at consecutive row ranges of it. The three expert tensors hold every expert
 * stacked: expert e is rows [e*rows, (e+1)*rows) of the 2-D view (rows = n_ff_exp for
 * gate/up, n_embd for down). */
struct mdl_layer {
    struct mdl_tensor attn_norm;                 /* [n_embd] F32 */
    struct mdl_tensor wq, wk, wv, wo;            /* wq: [n_embd, n_head*head_dim] ... */
    struct mdl_tensor bq, bk, bv;                /* qwen2, qwen2moe */
    struct mdl_tensor q_norm, k_norm;            /* [head_dim] F32, per-head RMS norm (qwen3, gemma3) */
    struct mdl_tensor post_attn_norm;            /* [n_embd] F32, norm of the attention output (gemma) */
    struct mdl_tensor ffn_norm;                  /* [n_embd] F32 */
    struct mdl_tensor w_gate, w_up, w_down;      /* gate/up: [n_embd, n_ff]; down: [n_ff, n_embd] */
    struct mdl_tensor post_ffn_norm;             /* [n_embd] F32, norm of the FFN output (gemma) */
    struct mdl_tensor gate_inp;                  /* router [n_embd, n_expert] F32 */
    struct mdl_tensor gate_exps, up_exps;        /* [n_embd, n_expert*n_ff_exp] */
    struct mdl_tensor down_exps;                 /* [n_ff_exp, n_expert*n_embd] */
    struct mdl_tensor gate_shexp, up_shexp;      /* qwen2moe shared expert [n_embd, n_ff_shexp] */
    struct mdl_tensor down_shexp;                /* [n_ff_shexp, n_embd] */
    struct mdl_tensor gate_inp_shexp;            /* [n_embd] F32: its sigmoid gate */
    bool swa;                                    /* sliding-window layer (hp.n_swa, hp.rope_swa) */
};

/* Every tensor field of struct mdl_layer, for code that walks them all. */
#define MDL_LAYER_TENSORS(X)                                                                       \
    X(attn_norm) X(wq) X(wk) X(wv) X(wo) X(bq) X(bk) X(bv) X(q_norm) X(k_norm)                     \
    X(post_attn_norm) X(ffn_norm) X(w_gate) X(w_up) X(w_down) X(post_ffn_norm) X(gate_inp)         \
    X(gate_exps) X(up_exps) X(down_exps) X(gate_shexp) X(up_shexp) X(down_shexp)                   \
    X(gate_inp_shexp)

struct mdl_weights {
    struct mdl_hparams hp;
    struct mdl_tensor tok_embd;                  /* [n_embd, n_vocab] */
    struct mdl_tensor output_norm;               /* [n_embd] F32 */
    struct mdl_tensor output;                    /* [n_embd, n_vocab]; == tok_embd when tied */
    struct mdl_tensor rope_freqs;                /* [n_rot/2] F32 divisors (Llama 3 scaling) */
    struct mdl_tensor rope_long, rope_short;     /* [n_rot/2] F32 (phi3 LongRoPE) */
    struct mdl_layer *layers;                    /* [n_layer] */
};

/* The RoPE frequency divisors a backend with n_ctx positions per slot uses, or NULL:
 * rope_freqs, else LongRoPE's long factors when n_ctx exceeds the original context,
 * its short ones otherwise (as the reference chooses them). */
static inline const float *bk_rope_factors(const struct mdl_weights *w, uint32_t n_ctx)
{
    if (w->rope_freqs.data)
        return (const float *)w->rope_freqs.data;
    if (n_ctx > w->hp.n_ctx_orig && w->rope_long.data)
        return (const float *)w->rope_long.data;
    return w->rope_short.data ? (const float *)w->rope_short.data : NULL;
}

/* The stacked tensor t's matrix e of `rows` rows, as a tensor of its own. */
static inline struct mdl_tensor bk_slab(const struct mdl_tensor *t, uint64_t rows, uint32_t e)
{
    struct mdl_tensor s = *t;
    size_t bytes = rows ? t->nbytes / (t->ne[1] / rows) : 0;
    s.ne[1] = rows;
    s.data = (const uint8_t *)t->data + (size_t)e * bytes;
    s.nbytes = bytes;
    return s;
}

struct bk_params {
    uint32_t n_slots;     /* sequence slots in the KV cache */
    uint32_t n_ctx;       /* positions per slot */
    uint32_t n_threads;   /* cpu: worker threads (0 = all cores) */
    int device;           /* vulkan: device index, -1 = best */
};

struct bk_backend; /* the backend's own state */

struct bk_ops {
    const char *name; /* "cpu", "vulkan" */
    /* Creates a backend for the weights (borrowed for the backend's life). On error
     * returns a negative code and writes a message into err. */
    int (*init)(struct bk_backend **out, const struct mdl_weights *w, const struct bk_params *p,
                char *err, size_t err_len);
    void (*free)(struct bk_backend *b);
    int (*forward)(struct bk_backend *b, const struct bk_batch *batch, float *logits);
    /* Forgets the positions >= from_pos of a slot (from_pos 0 empties it). */
    void (*kv_truncate)(struct bk_backend *b, uint32_t slot, uint32_t from_pos);
    /* A short human-readable description (device name, threads). */
    const char *(*describe)(struct bk_backend *b);
};

extern const struct bk_ops bk_cpu_ops;
extern const struct bk_ops bk_vulkan_ops;

/* ---- the model's backend, for model/ and its tests (model.c) ---- */

struct mdl_model;
/* A backend by name ("cpu", "vulkan"), or NULL when unknown or not built in. */
const struct bk_ops *mdl_find_backend(const char *name);
const struct mdl_weights *mdl_weights(const struct mdl_model *m);
const struct bk_ops *mdl_backend_ops(const struct mdl_model *m);
struct bk_backend *mdl_backend(const struct mdl_model *m);

#endif
