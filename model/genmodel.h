/* genmodel.h - writes deterministic random-weight GGUF models (tests and benchmarks).
 *
 * Tensors are drawn from a generator seeded by (seed, crc32(tensor name)), so a tensor
 * depends only on the seed and its name: weight matrices N(0, 1/sqrt(fan_in)), RMSNorm
 * weights 1 + N(0, 0.05), qwen2 q/k/v biases N(0, 0.5). Every tokenizer.* key is copied
 * from a vocab-only GGUF file. Weight types: F32, F16, Q8_0, Q4_0 (in a Q4_0 model the
 * token embedding and output matrices are Q8_0); norms and biases stay F32.
 */
#ifndef CHATD_GENMODEL_H
#define CHATD_GENMODEL_H

#include "backend.h"

#include <stddef.h>
#include <stdint.h>

struct gen_params {
    enum mdl_arch arch;
    uint32_t type; /* GGML_TYPE_F32, F16, Q8_0 or Q4_0 */
    uint32_t n_embd;
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t n_ff;
    uint32_t n_ctx;
    uint64_t seed;
    float rope_freq_base;
    float rms_eps;
    int tied_output;           /* 1: no output.weight */
    const char *chat_template; /* NULL: keep the vocab file's, if any */
};

/* Fills the "tiny" defaults (llama, 64 wide, 2 layers, 4/2 heads, ffn 192, ctx 512). */
void gen_default_params(struct gen_params *p);
/* Applies a named preset ("tiny", "bench-llama"); returns -1 for an unknown name. */
int gen_preset(struct gen_params *p, const char *name);

/* Writes the model to out_path using the tokenizer of vocab_path. Returns 0 or a
 * negative MDL_E* code with a message in err. */
int gen_model_write(const struct gen_params *p, const char *vocab_path, const char *out_path,
                    char *err, size_t err_len);

#endif
