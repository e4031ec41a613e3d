/* loader.h - builds struct mdl_weights from an open GGUF file (private to model/).
 *
 * Checks, with one-line messages naming the key or tensor:
 *   R11: every consumed key has the expected type;
 *   R14 (second half): every tensor the architecture needs exists with the expected
 *        shape and a supported type (norms and biases F32);
 *   R17: hyperparameters are sane.
 * The weights borrow the file's mapping: keep the gguf file open while they are used.
 */
#ifndef CHATD_LOADER_H
#define CHATD_LOADER_H

#include "backend.h"
#include "gguf.h"

#include <stddef.h>

/* Fills *w (layers allocated; free with mdl_weights_fini). Returns 0 or a negative
 * MDL_E* code with a message in err; *w is zeroed on failure. */
int mdl_load_weights(struct mdl_weights *w, const struct gguf_file *f, char *err, size_t err_len);
void mdl_weights_fini(struct mdl_weights *w);

/* Total number of weight values (for /v1/models) and the dominant weight type (that of
 * layer 0's attn_q). */
uint64_t mdl_weights_n_params(const struct mdl_weights *w);

#endif
