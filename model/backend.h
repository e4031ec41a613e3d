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

struct mdl_layer {
    struct mdl_tensor attn_norm;                 /* [n_embd] F32 */
    struct mdl_tensor wq, wk, wv, wo;            /* wq: [n_embd, n_head*head_dim] ... */
    struct mdl_tensor bq, bk, bv;                /* qwen2 only; data NULL otherwise */
    struct mdl_tensor ffn_norm;                  /* [n_embd] F32 */
    struct mdl_tensor w_gate, w_up, w_down;      /* gate/up: [n_embd, n_ff]; down: [n_ff, n_embd] */
};

struct mdl_weights {
    struct mdl_hparams hp;
    struct mdl_tensor tok_embd;                  /* [n_embd, n_vocab] */
    struct mdl_tensor output_norm;               /* [n_embd] F32 */
    struct mdl_tensor output;                    /* [n_embd, n_vocab]; == tok_embd when tied */
    struct mdl_layer *layers;                    /* [n_layer] */
};

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
