/* model.h - the model module's public face for the server: open a GGUF model, read its
 * metadata, and run forwards through the chosen backend.
 *
 * mdl_open maps the file, validates it (gguf.c, loader.c), and starts a backend
 * ("cpu" or "vulkan") with a KV cache of n_slots x n_ctx. The returned model owns all
 * of that; every pointer an accessor returns is borrowed until mdl_close. Only one
 * thread (the engine) may run forwards; the read-only accessors may be called from
 * any thread. Functions return 0 or a negative MDL_E* code; details go to `err`.
 */
#ifndef CHATD_MODEL_H
#define CHATD_MODEL_H

#include "backend.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MDL_ERRORS(X)                                                                              \
    X(MDL_EIO, -1, "I/O error")                                                                    \
    X(MDL_EFORMAT, -2, "invalid model file")                                                       \
    X(MDL_ENOMEM, -3, "out of memory")                                                             \
    X(MDL_EUNSUPPORTED, -4, "unsupported model")                                                   \
    X(MDL_EINVAL, -5, "invalid argument")                                                          \
    X(MDL_EBACKEND, -6, "backend failure")

enum mdl_error {
#define MDL_ERR_ENUM_(name, code, text) name = code,
    MDL_ERRORS(MDL_ERR_ENUM_)
#undef MDL_ERR_ENUM_
};

const char *mdl_strerror(int code);

struct mdl_params {
    const char *backend; /* "cpu" (default) or "vulkan" */
    uint32_t n_slots;    /* KV cache sequence slots (default 1) */
    uint32_t n_ctx;      /* positions per slot; 0 = the model's context_length, capped at 4096 */
    uint32_t n_threads;  /* cpu: 0 = all cores */
    int device;          /* vulkan: -1 = best */
};

void mdl_default_params(struct mdl_params *p);

struct mdl_model;
struct gguf_file;
struct tok_vocab;

/* Opens `path`. On failure *out is NULL and err holds one line naming the problem. */
int mdl_open(struct mdl_model **out, const char *path, const struct mdl_params *p, char *err,
             size_t err_len);
void mdl_close(struct mdl_model *m); /* accepts NULL */

const struct mdl_hparams *mdl_hparams(const struct mdl_model *m);
uint32_t mdl_n_vocab(const struct mdl_model *m);
uint32_t mdl_n_ctx(const struct mdl_model *m);        /* positions per slot of the KV cache */
const char *mdl_arch_name(const struct mdl_model *m); /* "llama" / "qwen2" */
uint64_t mdl_n_params(const struct mdl_model *m);
const char *mdl_weight_type(const struct mdl_model *m); /* type of blk.0.attn_q, e.g. "Q8_0" */
uint64_t mdl_file_size(const struct mdl_model *m);
/* tokenizer.chat_template, or NULL when the file has none. */
const char *mdl_chat_template(const struct mdl_model *m);
const struct gguf_file *mdl_gguf(const struct mdl_model *m);
/* The model's tokenizer (tokenizer.h), loaded at open. */
const struct tok_vocab *mdl_vocab(const struct mdl_model *m);
const struct mdl_weights *mdl_weights(const struct mdl_model *m);

/* The backend and its state, for the engine's forwards (see backend.h). */
const struct bk_ops *mdl_backend_ops(const struct mdl_model *m);
struct bk_backend *mdl_backend(const struct mdl_model *m);
/* Shorthand for mdl_backend_ops(m)->forward(mdl_backend(m), batch, logits). */
int mdl_forward(struct mdl_model *m, const struct bk_batch *batch, float *logits);
void mdl_kv_truncate(struct mdl_model *m, uint32_t slot, uint32_t from_pos);

/* A backend by name ("cpu", "vulkan"), or NULL when unknown or not built in. */
const struct bk_ops *mdl_find_backend(const char *name);

#endif
