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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mdl_arch { MDL_ARCH_LLAMA = 0, MDL_ARCH_QWEN2 = 1 };

struct mdl_hparams {
    enum mdl_arch arch;
    uint32_t n_vocab;
    uint32_t n_embd;
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t head_dim;    /* n_embd / n_head */
    uint32_t n_ff;
    uint32_t n_ctx_train;
    uint32_t n_rot;       /* rope.dimension_count */
    float rope_freq_base;
    float rms_eps;
    bool rope_neox;       /* qwen2: rotate split halves; llama: adjacent pairs */
};

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

/* One forward: n_tokens tokens, token i goes to slot[i] at position pos[i]. Within a
 * slot, positions must continue that slot's cache (pos == current length) and are
 * in increasing order. Logits are written for every i with want_logits[i] set, in
 * order, as rows of n_vocab floats. */
struct bk_batch {
    uint32_t n_tokens;
    const int32_t *tokens;
    const int32_t *pos;
    const int32_t *slot;
    const bool *want_logits;
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

/* ---- Vulkan devices (model/vulkan/vkb_device.c) ---- */

struct vkb_device_info {
    char name[256];
    const char *type;       /* "discrete", "integrated", "virtual", "cpu", "other" */
    uint64_t memory_bytes;  /* largest device-local heap */
    uint32_t subgroup_size;
    uint32_t api_version;   /* VK_MAKE_API_VERSION encoding */
};

/* Lists up to max Vulkan devices into out (in the order of --device N) and sets *n
 * to the number present. Returns 0, or a negative code with a message in err when no
 * Vulkan driver or device is usable. */
int vkb_list_devices(struct vkb_device_info *out, uint32_t max, uint32_t *n, char *err,
                     size_t err_len);
/* The `--backend auto` policy: returns 1 when the Vulkan backend should run (a
 * discrete or integrated GPU is present), 0 when the CPU backend should (only a CPU
 * Vulkan device such as lavapipe, or no driver), and says why in `why`. */
int vkb_pick_auto(char *why, size_t why_len);

#endif
