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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The sub-libraries whose headers are part of this contract: reading GGUF files,
 * tokenizing, rendering chat templates, constrained decoding (grammars, JSON schemas,
 * token masks), and generating (engine, sampler, reasoning split, stop strings), and the string buffer they all build text with. Quantisation, the weight loader and the backends stay inside
 * model/. */
#include "gguf/gguf.h"
#include "grammar/grammar.h"
#include "runtime/runtime.h"
#include "strbuf.h"
#include "template/template.h"
#include "tokenizer/tokenizer.h"

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

/* ---- hyperparameters and forwards ---- */

/* The architectures the loader accepts (general.architecture); mdl_arch_str names them.
 * fixtures/README-new-archs.md and MODEL-NOTES.md describe each graph. */
enum mdl_arch {
    MDL_ARCH_LLAMA = 0, /* also Mixtral-style MoE (expert_count) and Llama 3 RoPE scaling */
    MDL_ARCH_QWEN2 = 1,
    MDL_ARCH_QWEN2MOE,
    MDL_ARCH_QWEN3,
    MDL_ARCH_PHI3,
    MDL_ARCH_GEMMA2,
    MDL_ARCH_GEMMA3,
    MDL_ARCH_COUNT
};

/* "llama", "qwen2", ... or NULL for a value out of range. */
const char *mdl_arch_str(enum mdl_arch arch);
/* The supported names, comma-separated ("llama, qwen2, ..."), for messages. */
const char *mdl_arch_list(void);

/* The FFN's gate activation: SiLU (SwiGLU) or GELU, tanh approximation (GeGLU). */
enum mdl_ffn_act { MDL_ACT_SILU = 0, MDL_ACT_GELU = 1 };

/* One RoPE setting. The angle of pair i at position p is
 * p * freq_scale * base^(-2i/n_rot) / factors[i] (factors: the weights' rope factors,
 * when present); cos and sin are multiplied by attn_factor. */
struct mdl_rope {
    float freq_base;
    float freq_scale;  /* 1, or 1/factor with linear scaling */
    float attn_factor; /* 1, or rope.scaling.attn_factor (LongRoPE) */
};

struct mdl_hparams {
    enum mdl_arch arch;
    uint32_t n_vocab;
    uint32_t n_embd;
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t head_dim;    /* attention.key_length, else n_embd / n_head */
    uint32_t n_ff;
    uint32_t n_ctx_train;
    uint32_t n_ctx_orig;  /* rope.scaling.original_context_length (LongRoPE), else n_ctx_train */
    uint32_t n_rot;       /* rope.dimension_count */
    float rope_freq_base; /* == rope.freq_base */
    float rms_eps;
    bool rope_neox;       /* qwen2 and later: rotate split halves; llama: adjacent pairs */
    struct mdl_rope rope;     /* global layers */
    struct mdl_rope rope_swa; /* sliding-window layers (gemma3: their own base, no scaling) */
    /* attention: scores = softcap(k . (q * q_scale)) * kq_scale, softcap(s) = c*tanh(s/c) */
    float q_scale;        /* phi3, gemma: 1/sqrt(head_dim) applied to q; else 1 */
    float kq_scale;       /* llama, qwen: 1/sqrt(head_dim); else 1 */
    float attn_softcap;   /* gemma2: c; 0 = none */
    float final_softcap;  /* gemma2 (gemma3 when set): logits = c*tanh(logits/c); 0 = none */
    uint32_t n_swa;       /* window of the sliding-window layers: query i sees key j when
                             0 <= i - j < n_swa; 0 = none */
    float embd_scale;     /* gemma: embeddings times sqrt(n_embd); else 1 */
    enum mdl_ffn_act ffn_act;
    /* mixture of experts (n_expert 0: a dense FFN) */
    uint32_t n_expert;
    uint32_t n_expert_used;
    uint32_t n_ff_exp;    /* width of one routed expert */
    uint32_t n_ff_shexp;  /* qwen2moe: width of the shared expert; 0 = none */
    bool expert_norm;     /* llama: the chosen experts' weights renormalised to sum 1 */
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
const char *mdl_arch_name(const struct mdl_model *m); /* mdl_arch_str of its architecture */
uint64_t mdl_n_params(const struct mdl_model *m);
const char *mdl_weight_type(const struct mdl_model *m); /* type of blk.0.attn_q, e.g. "Q8_0" */
uint64_t mdl_file_size(const struct mdl_model *m);
/* tokenizer.chat_template, or NULL when the file has none. */
const char *mdl_chat_template(const struct mdl_model *m);
const struct gguf_file *mdl_gguf(const struct mdl_model *m);
/* The model's tokenizer (tokenizer.h), loaded at open. */
const struct tok_vocab *mdl_vocab(const struct mdl_model *m);
/* The backend's name ("cpu", "vulkan") and a short description of it (device, threads). */
const char *mdl_backend_name(const struct mdl_model *m);
const char *mdl_backend_describe(const struct mdl_model *m);

/* One forward through the backend (only the thread that owns the model may call it). */
int mdl_forward(struct mdl_model *m, const struct bk_batch *batch, float *logits);
/* Forgets the positions >= from_pos of a slot's KV cache (0 empties it). */
void mdl_kv_truncate(struct mdl_model *m, uint32_t slot, uint32_t from_pos);

/* Starts the generation engine (runtime.h) over the model's backend and KV cache; the
 * engine ends a reply at the tokenizer's end-of-generation tokens. With a draft model
 * (NULL: none; opened with as many slots and positions) it decodes speculatively with
 * that model's greedy tokens; its vocabulary must be the model's, id for id. From then
 * on only the engine thread runs forwards of both. The models must outlive the engine
 * (eng_stop first). Returns NULL with a message in err on failure. */
struct engine *mdl_engine_start(struct mdl_model *m, struct mdl_model *draft,
                                const struct eng_params *p, char *err, size_t err_len);

/* The vocabulary as constrained decoding sees it (vocab_grammar.c): n_vocab entries (the
 * logit row; rows past the tokenizer's vocabulary are never allowed), each token's
 * rendered bytes, end-of-generation tokens as end tokens, control tokens as special.
 * Pass it to eng_sampling.gram_vocab. NULL when out of memory; caller frees with
 * gram_vocab_free. */
struct gram_vocab *mdl_gram_vocab_new(const struct tok_vocab *tv, uint32_t n_vocab);

/* ---- generated models (genmodel.c, demo.c) ---- */

/* Deterministic random-weight GGUF models for tests and benchmarks.
 *
 * Tensors are drawn from a generator seeded by (seed, crc32(tensor name)), so a tensor
 * depends only on the seed and its name: weight matrices N(0, 1/sqrt(fan_in)), RMSNorm
 * weights 1 + N(0, 0.05), qwen2 q/k/v biases N(0, 0.5). Every tokenizer.* key is copied
 * from a vocab-only GGUF file, padded with unused tokens up to n_vocab. Every supported
 * architecture is written with the tensors and keys its graph needs (experts, fused
 * phi3 tensors, q/k norms, gemma's post-norms, Llama 3 rope_freqs, LongRoPE factors).
 * Weight types: F32, F16, Q8_0, Q4_0 (in a Q4_0 model the token embedding and output
 * matrices are Q8_0); norms, biases, routers and RoPE factors stay F32. */
struct mdl_gen_params {
    enum mdl_arch arch;
    uint32_t type; /* GGML_TYPE_F32, F16, Q8_0 or Q4_0 */
    uint32_t n_embd;
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t head_dim; /* 0: n_embd / n_head; else written as attention.key_length */
    uint32_t n_ff;
    uint32_t n_ctx;
    uint32_t n_vocab;  /* 0: the vocab file's count; larger: padded with unused tokens */
    uint64_t seed;
    float rope_freq_base;
    float rms_eps;
    int tied_output;           /* 1: no output.weight */
    const char *chat_template; /* NULL: keep the vocab file's, if any */
    const char *name;          /* general.name; NULL: "chatd random model" */
    /* mixture of experts (llama, qwen2moe): n_expert 0 is a dense FFN */
    uint32_t n_expert;
    uint32_t n_expert_used;
    uint32_t n_ff_exp;   /* one expert's width; 0: n_ff */
    uint32_t n_ff_shexp; /* qwen2moe's shared expert; 0: n_ff */
    uint32_t n_swa;      /* phi3, gemma2, gemma3: attention.sliding_window (0: not written) */
    float attn_softcap;  /* gemma2 (0: not written) */
    float final_softcap; /* gemma2, gemma3 (0: not written) */
    float rope_scale;    /* linear RoPE scaling factor (gemma3's global layers); 0: none */
    float llama3_rope;   /* Llama 3 scaling factor for rope_freqs.weight (llama); 0: none */
    int longrope;        /* phi3: LongRoPE factors, attention factor, original context 4096 */
    /* Scales of the standard deviations, 0 or 1: as drawn. residual_scale scales the
     * matrices that write into the residual stream (attn_output, ffn_down): small values
     * make a model whose later layers change little, so that its first layers alone (the
     * same seed with fewer layers) predict what it predicts, a draft model that agrees by
     * construction. output_scale scales output.weight (peaked or flat logits). */
    float residual_scale;
    float output_scale;
};

/* Fills the "tiny" defaults (llama, 64 wide, 2 layers, 4/2 heads, ffn 192, ctx 512). */
void mdl_gen_default_params(struct mdl_gen_params *p);
/* Applies a named preset ("tiny", "bench-llama", "bench-moe"); returns -1 for an unknown
 * name. */
int mdl_gen_preset(struct mdl_gen_params *p, const char *name);
/* Applies the exact shapes of a real model ("Qwen2.5-0.5B", "Qwen3-0.6B", "Llama-3.2-1B",
 * "Gemma-2-2B", "Gemma-3-1B", "Phi-3.5-mini", "Qwen1.5-MoE-A2.7B"; mdl_gen_like_names
 * lists them with their vocabularies); returns -1 for an unknown name. */
int mdl_gen_like(struct mdl_gen_params *p, const char *name);
/* One line per --like preset: name, architecture, shape and the vocab file it wants.
 * The array ends with NULL. */
const char *const *mdl_gen_like_names(void);

/* Writes the model to out_path using the tokenizer of vocab_path. Returns 0 or a
 * negative MDL_E* code with a message in err. */
int mdl_gen_write(const struct mdl_gen_params *p, const char *vocab_path, const char *out_path,
                    char *err, size_t err_len);

/* File name of the demo model inside the model directory. */
#define MDL_DEMO_MODEL_NAME "chatd-demo.gguf"

/* The model chatd serves when none is configured or downloaded: a small random-weight
 * qwen2 model (its output is gibberish). Writes model_dir/chatd-demo.gguf unless a valid
 * one is already there (creating model_dir as needed) and puts its path into path_out.
 * The file is built from a byte-level BPE vocabulary made in code and the generator
 * above, into a temporary file renamed into place, so concurrent callers and crashes
 * never leave a half-written model; the bytes are identical on every run. Returns 0, or
 * -1 with a message in err (path_out is then ""). Call from one thread. */
int mdl_demo_model(const char *model_dir, char *path_out, size_t len, char *err, size_t err_len);

/* mkdir -p with mode 0755 (model directories). Returns 0, or -1 with errno set. */
int mdl_mkdirs(const char *path);

/* ---- Vulkan devices (vulkan/vkb_device.c) ---- */

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
