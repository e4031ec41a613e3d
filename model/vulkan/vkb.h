/* vkb.h - private interface between the files of the Vulkan backend.
 *
 *   vkb_device.c    instance, physical device choice, logical device, queue
 *   vkb_buffer.c    device-local and host-visible buffers, uploads, readback
 *   vkb_pipeline.c  compute pipelines from a table, descriptor allocation
 *   vkb_ops.c       recording one dispatch per op into the forward's command buffer
 *   vkb_forward.c   bk_vulkan_ops: weights, KV cache, the transformer forward
 *
 * Everything here runs on the engine thread that owns the backend.
 */
#ifndef VKB_H
#define VKB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <vulkan/vulkan.h>

#include "backend.h"
#include "vkb_shared.h"

/* ---- pipelines (vkb_pipeline.c) ---- */

enum vkb_pipe_id {
    VKB_P_MATVEC_F32,
    VKB_P_MATVEC_F16,
    VKB_P_MATVEC_Q8_0,
    VKB_P_MATVEC_Q4_0,
    VKB_P_MATVEC_Q4_K,
    VKB_P_MATVEC_Q6_K,
    VKB_P_MATMUL_F32,
    VKB_P_MATMUL_F16,
    VKB_P_MATMUL_Q8_0,
    VKB_P_MATMUL_Q4_0,
    VKB_P_MATMUL_Q4_K,
    VKB_P_MATMUL_Q6_K,
    VKB_P_GET_ROWS_F32,
    VKB_P_GET_ROWS_F16,
    VKB_P_GET_ROWS_Q8_0,
    VKB_P_GET_ROWS_Q4_0,
    VKB_P_GET_ROWS_Q4_K,
    VKB_P_GET_ROWS_Q6_K,
    VKB_P_RMSNORM,
    VKB_P_ROPE,
    VKB_P_KV_WRITE,
    VKB_P_ATTN,
    VKB_P_SILU_MUL,
    VKB_P_ADD,
    VKB_P_QUANT_Q8_0,
    VKB_P_QUANT_Q8_K,
    VKB_P_GELU_MUL,
    VKB_P_SCALE,
    VKB_P_MOE_ROUTE,
    VKB_P_MOE_COMBINE,
    VKB_P_MATVEC_ID_F32, /* expert mat-vecs (MoE), same type order as VKB_P_MATVEC_* */
    VKB_P_MATVEC_ID_F16,
    VKB_P_MATVEC_ID_Q8_0,
    VKB_P_MATVEC_ID_Q4_0,
    VKB_P_MATVEC_ID_Q4_K,
    VKB_P_MATVEC_ID_Q6_K,
    VKB_P_COUNT
};

struct vkb_pipe {
    VkDescriptorSetLayout dsl;
    VkPipelineLayout layout;
    VkPipeline pipe;
    uint32_t n_bindings;
    uint32_t push_bytes;
    uint32_t local_x; /* workgroup size actually used */
};

/* ---- the device context (vkb_device.c) ---- */

struct vkb_ctx {
    VkInstance inst;
    VkPhysicalDevice phys;
    VkDevice dev;
    VkQueue queue;
    uint32_t queue_family;
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties mem_props;
    uint32_t subgroup_size;
    bool uma; /* device-local memory is also host-visible */
    VkCommandPool cmd_pool;
    VkCommandBuffer cmd;
    VkFence fence;
    VkDescriptorPool desc_pool;
    uint32_t desc_pool_sets; /* capacity of desc_pool */
    uint32_t desc_used;      /* sets allocated since the last reset */
    bool recording;
    struct vkb_pipe pipes[VKB_P_COUNT];
    char describe[320];
};

/* Opens device `index` (-1: the best by type: discrete > integrated > virtual > CPU),
 * creates the queue, command buffer and every pipeline. */
int vkb_ctx_open(struct vkb_ctx **out, int index, char *err, size_t err_len);
void vkb_ctx_close(struct vkb_ctx *c); /* accepts NULL */
/* Writes "vulkan: <msg> (VkResult n)" into err and returns -1. */
int vkb_fail(char *err, size_t err_len, const char *what, VkResult r);

/* ---- buffers (vkb_buffer.c) ---- */

enum vkb_mem { VKB_MEM_DEVICE, VKB_MEM_HOST };

struct vkb_buf {
    VkBuffer buf;
    VkDeviceMemory mem;
    VkDeviceSize size;
    void *map; /* persistent mapping when host-visible, else NULL */
};

int vkb_buf_new(struct vkb_ctx *c, struct vkb_buf *b, VkDeviceSize size, enum vkb_mem kind,
                char *err, size_t err_len);
void vkb_buf_free(struct vkb_ctx *c, struct vkb_buf *b); /* accepts a zeroed buffer */
/* Copies host data into b at byte offset off (direct when mapped, else via staging). */
int vkb_buf_upload(struct vkb_ctx *c, struct vkb_buf *b, VkDeviceSize off, const void *src,
                   size_t n, char *err, size_t err_len);
/* Copies n bytes at byte offset off of b into dst (waits for the device). */
int vkb_buf_read(struct vkb_ctx *c, struct vkb_buf *b, VkDeviceSize off, void *dst, size_t n,
                 char *err, size_t err_len);
/* Fills a buffer with zero bytes. */
int vkb_buf_zero(struct vkb_ctx *c, struct vkb_buf *b, char *err, size_t err_len);
/* One-off command buffer: begin, (caller records), submit and wait. */
int vkb_oneshot_begin(struct vkb_ctx *c, char *err, size_t err_len);
int vkb_oneshot_end(struct vkb_ctx *c, char *err, size_t err_len);

/* ---- pipelines and recording (vkb_pipeline.c) ---- */

int vkb_pipelines_create(struct vkb_ctx *c, char *err, size_t err_len);
void vkb_pipelines_destroy(struct vkb_ctx *c);

/* Starts recording a command buffer (resets descriptor sets of the previous one). */
int vkb_rec_begin(struct vkb_ctx *c, char *err, size_t err_len);
/* Records one dispatch of pipeline id with the given buffers bound at bindings
 * 0..n-1 (whole buffers), push constants and workgroup counts. */
int vkb_rec_dispatch(struct vkb_ctx *c, enum vkb_pipe_id id, struct vkb_buf *const *bufs,
                     uint32_t n_bufs, const void *push, uint32_t push_bytes, uint32_t gx,
                     uint32_t gy, uint32_t gz, char *err, size_t err_len);
/* A compute-to-compute (and transfer) memory barrier: later dispatches see earlier writes. */
void vkb_rec_barrier(struct vkb_ctx *c);
void vkb_rec_copy(struct vkb_ctx *c, struct vkb_buf *src, VkDeviceSize src_off, struct vkb_buf *dst,
                  VkDeviceSize dst_off, VkDeviceSize n);
/* Ends, submits and waits for the command buffer. */
int vkb_rec_submit(struct vkb_ctx *c, char *err, size_t err_len);

/* ---- ops (vkb_ops.c): each records one dispatch; no barrier ---- */

/* A weight matrix on the device: rows of k values of `type`, repacked (vkb_shared.h). */
struct vkb_weight {
    uint32_t type; /* enum ggml_type */
    uint32_t k;    /* row length */
    uint32_t n;    /* rows */
    struct vkb_buf buf;
};

/* Size in bytes of the device layout of an n x k matrix of `type`; 0 if unsupported. */
size_t vkb_weight_bytes(uint32_t type, uint32_t k, uint32_t n);
/* Repacks n rows of k ggml-layout values of `type` into dst (vkb_weight_bytes bytes). */
int vkb_weight_repack(uint32_t type, uint32_t k, uint32_t n, const void *src, size_t src_bytes,
                      void *dst);
/* Uploads a weight tensor (repacked through a host buffer). */
int vkb_weight_upload(struct vkb_ctx *c, struct vkb_weight *w, const struct mdl_tensor *t,
                      char *err, size_t err_len);
void vkb_weight_free(struct vkb_ctx *c, struct vkb_weight *w);

/* A row-major float matrix view inside a buffer: element (t, i) at off + t*stride + i. */
struct vkb_view {
    struct vkb_buf *buf;
    uint32_t off;
    uint32_t stride;
};

/* Activations quantized by vkb_op_quant_q8: int8 blocks and their scales. */
struct vkb_xq {
    struct vkb_buf *q; /* [m][k/4] words */
    struct vkb_buf *s; /* [m][k/32] floats */
};

/* Whether mat-muls with weights of this type read quantized activations, and whether
 * the reference quantizes them as Q8_K (K-quants) rather than Q8_0. */
bool vkb_type_is_quant(uint32_t type);
bool vkb_type_is_kquant(uint32_t type);
/* Quantizes m rows of k activations into xq, as the reference does for quantized
 * weights: Q8_0 blocks of 32 (k_quant false), or Q8_K blocks of 256 (k_quant true,
 * k a multiple of 256). */
int vkb_op_quant_q8(struct vkb_ctx *c, struct vkb_view x, uint32_t k, uint32_t m, bool k_quant,
                    const struct vkb_xq *xq, char *err, size_t err_len);
/* y[t][row] (+)= W[row] . x[t] (+ bias[row]) for t < m; flags VKB_MM_*. bias may be NULL.
 * Quantized weight types read xq (x quantized by vkb_op_quant_q8), float types x. */
int vkb_op_matmul(struct vkb_ctx *c, const struct vkb_weight *w, struct vkb_view x,
                  const struct vkb_xq *xq, struct vkb_view y, uint32_t m, struct vkb_buf *bias,
                  uint32_t flags, char *err, size_t err_len);
/* The same product for routed pairs (mixture of experts): w holds n_mat matrices of
 * rows_per rows; pair y < m multiplies matrix ids[ids_off + y] by activation row
 * y / x_div and writes row y of out. Mat-vec kernels only (each pair its own matrix). */
struct vkb_moe_mm {
    uint32_t rows_per;
    uint32_t n_mat;
    struct vkb_buf *ids;
    uint32_t ids_off;
    uint32_t x_div;
};
int vkb_op_matmul_id(struct vkb_ctx *c, const struct vkb_weight *w, const struct vkb_moe_mm *e,
                     struct vkb_view x, const struct vkb_xq *xq, struct vkb_view y, uint32_t m,
                     char *err, size_t err_len);
/* out[j] = rows tokens[j] of the embedding matrix (ints at info[tok_off + j]), j < m. */
int vkb_op_get_rows(struct vkb_ctx *c, const struct vkb_weight *w, struct vkb_buf *info,
                    uint32_t tok_off, struct vkb_view out, uint32_t m, char *err, size_t err_len);
/* out[j] = rmsnorm(in[row j]) * weight, row j = j or info[idx_off + j] when idx. */
int vkb_op_rmsnorm(struct vkb_ctx *c, struct vkb_view in, struct vkb_buf *weight,
                   struct vkb_view out, uint32_t n, uint32_t m, float eps, struct vkb_buf *info,
                   int32_t idx_off, char *err, size_t err_len);
/* The rmsnorm of m * per_row pieces of n values: piece j is values (j % per_row) * n ..
 * of row j / per_row (per-head norms; in and out may be the same view); flags
 * VKB_NORM_ACCUMULATE adds the result into out. */
int vkb_op_rmsnorm_rows(struct vkb_ctx *c, struct vkb_view in, struct vkb_buf *weight,
                        struct vkb_view out, uint32_t n, uint32_t m, uint32_t per_row, float eps,
                        uint32_t flags, char *err, size_t err_len);

struct vkb_rope_args {
    uint32_t n_heads; /* heads per row to rotate (q heads then k heads) */
    uint32_t head_dim;
    uint32_t n_rot;
    bool neox;
    uint32_t pos_off; /* positions at info[pos_off + t] */
};
/* Rotates, in place, n_heads heads of each of m rows with the cos/sin table
 * [n_ctx][n_rot/2] vec2. */
int vkb_op_rope(struct vkb_ctx *c, struct vkb_view x, struct vkb_buf *table, struct vkb_buf *info,
                const struct vkb_rope_args *a, uint32_t m, char *err, size_t err_len);

struct vkb_kv_args {
    uint32_t kv_dim; /* n_head_kv * head_dim */
    uint32_t n_ctx;
    uint32_t k_off; /* column of k in the qkv rows */
    uint32_t v_off;
    uint32_t pos_off; /* info offsets of positions and slots */
    uint32_t slot_off;
};
/* Writes k and v rows (F32 in qkv) into the F16 caches at [slot][pos]. */
int vkb_op_kv_write(struct vkb_ctx *c, struct vkb_view qkv, struct vkb_buf *kc, struct vkb_buf *vc,
                    struct vkb_buf *info, const struct vkb_kv_args *a, uint32_t m, char *err,
                    size_t err_len);

struct vkb_attn_args {
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t head_dim;
    uint32_t n_ctx;
    uint32_t pos_off;
    uint32_t slot_off;
    float scale;      /* applied to q.k first */
    float softcap;    /* then c * tanh(s / c); 0 = none */
    float post_scale; /* then this factor */
    uint32_t n_swa;   /* window: positions pos - n_swa < j <= pos; 0 = all <= pos */
};
/* out[t][h] = softmax(scores of q_h over the visible positions) v, per head. */
int vkb_op_attn(struct vkb_ctx *c, struct vkb_view q, struct vkb_buf *kc, struct vkb_buf *vc,
                struct vkb_buf *info, const struct vkb_attn_args *a, struct vkb_view out,
                uint32_t m, char *err, size_t err_len);
/* out[t][i] = silu(g[t][i]) * u[t][i] for i < n. */
int vkb_op_silu_mul(struct vkb_ctx *c, struct vkb_view g, struct vkb_view u, struct vkb_view out,
                    uint32_t n, uint32_t m, char *err, size_t err_len);
/* out[t][i] = act(g[t][i]) * u[t][i] with the model's FFN activation (glu.comp). */
int vkb_op_glu(struct vkb_ctx *c, enum mdl_ffn_act act, struct vkb_view g, struct vkb_view u,
               struct vkb_view out, uint32_t n, uint32_t m, char *err, size_t err_len);
/* In place over m rows of n: y *= s (cap 0), or y = tanh(y * (1/cap)) * cap. */
int vkb_op_scale(struct vkb_ctx *c, struct vkb_view y, uint32_t n, uint32_t m, float s, float cap,
                 char *err, size_t err_len);
/* Router: softmax of each of m rows of n_expert logits, the k best experts (ids[t*k+j],
 * best first) and their weights w[t*k+j], renormalised when norm. */
int vkb_op_moe_route(struct vkb_ctx *c, struct vkb_buf *logits, struct vkb_buf *ids,
                     struct vkb_buf *w, uint32_t n_expert, uint32_t k, uint32_t m, bool norm,
                     char *err, size_t err_len);
/* x[t] (rows of n, offset 0) += sum_j w[t*k+j] * eo[t*k+j] (+ sigmoid(sg[t]) * sh[t]
 * when sh is not NULL). */
int vkb_op_moe_combine(struct vkb_ctx *c, struct vkb_buf *x, struct vkb_buf *eo,
                       struct vkb_buf *w, struct vkb_buf *sh, struct vkb_buf *sg, uint32_t n,
                       uint32_t m, uint32_t k, char *err, size_t err_len);
/* y[t][i] += x[t][i] for i < n. */
int vkb_op_add(struct vkb_ctx *c, struct vkb_view x, struct vkb_view y, uint32_t n, uint32_t m,
               char *err, size_t err_len);

/* Cos/sin table for rope: [n_ctx][n_rot/2] pairs, computed in double: the angle of pair
 * i at position p is p * freq_scale * base^(-2i/n_rot) / factors[i] (factors may be
 * NULL), cos and sin times attn_factor (struct mdl_rope). Caller frees. */
float *vkb_rope_table(uint32_t n_ctx, uint32_t n_rot, const struct mdl_rope *r,
                      const float *factors);

/* ---- the model on the device (vkb_forward.c: weights, buffers, chunks; vkb_layer.c:
 * the layers' dispatches) ---- */

#define VKB_MAX_TOKENS 256u
#define VKB_MAX_LOGITS 64u

/* Offsets (in ints) of the per-token inputs in the info buffer. */
enum {
    VKB_INFO_TOK = 0,
    VKB_INFO_POS = VKB_MAX_TOKENS,
    VKB_INFO_SLOT = 2 * VKB_MAX_TOKENS,
    VKB_INFO_OUT = 3 * VKB_MAX_TOKENS,
    VKB_INFO_INTS = 4 * VKB_MAX_TOKENS
};

struct vkb_layer {
    struct vkb_buf attn_norm;
    struct vkb_buf ffn_norm;
    struct vkb_weight wq, wk, wv, wo;
    struct vkb_weight gate, up, down;
    struct vkb_buf bq, bk, bv;
    bool has_bias;
    struct vkb_buf q_norm, k_norm;        /* [head_dim] when has_qk_norm */
    bool has_qk_norm;
    struct vkb_buf post_attn_norm;        /* [n_embd] when has_post_norms */
    struct vkb_buf post_ffn_norm;
    bool has_post_norms;
    bool swa;                             /* sliding window and its RoPE table */
    struct vkb_weight gate_inp;           /* router [n_embd] x n_expert (F32) */
    struct vkb_weight gate_exps, up_exps; /* n_expert matrices of n_ff_exp rows */
    struct vkb_weight down_exps;          /* n_expert matrices of n_embd rows */
    struct vkb_weight gate_shexp, up_shexp, down_shexp, gate_inp_shexp;
    bool has_shexp;
    struct vkb_buf kc; /* [n_slots][n_ctx][kv_dim] F16 */
    struct vkb_buf vc;
};

struct bk_backend {
    struct vkb_ctx *c;
    struct mdl_hparams hp;
    uint32_t n_slots;
    uint32_t n_ctx;
    uint32_t q_dim;   /* n_head * head_dim */
    uint32_t kv_dim;  /* n_head_kv * head_dim */
    uint32_t qkv_dim; /* q_dim + 2 * kv_dim */
    uint32_t ff_cols; /* columns of an ff row: max(2 n_ff, 2 k n_ff_exp, 2 n_ff_shexp) */
    struct vkb_weight tok_embd;
    struct vkb_weight output; /* unused when tied */
    bool output_tied;
    struct vkb_buf output_norm;
    struct vkb_layer *layers;   /* [n_layer] */
    struct vkb_buf rope_tab;    /* [n_ctx][n_rot/2] (cos, sin) */
    struct vkb_buf rope_swa;    /* the sliding-window layers' table, when it differs */
    bool rope_swa_own;
    struct vkb_buf info;        /* host-visible ints, see VKB_INFO_* */
    struct vkb_buf x;           /* [T][n_embd] residual stream */
    struct vkb_buf h;           /* [T][n_embd] normed; also an output before a post-norm */
    struct vkb_buf qkv;         /* [T][qkv_dim] */
    struct vkb_buf att;         /* [T][q_dim] */
    struct vkb_buf ff;          /* [T][ff_cols] gate | up (experts: per routed pair) */
    struct vkb_buf hout;        /* [L][n_embd] final norm of wanted rows */
    struct vkb_buf logits;      /* [L][n_vocab] */
    struct vkb_buf logits_host; /* readback copy when logits is not mapped */
    struct vkb_buf xq_q;        /* [T][k_max/4] int8 activations for quantized weights */
    struct vkb_buf xq_s;        /* [T][k_max/32] their scales */
    struct vkb_xq xq;
    struct vkb_buf router;      /* [T][n_expert] router logits */
    struct vkb_buf moe_ids;     /* [T][k] chosen experts */
    struct vkb_buf moe_w;       /* [T][k] their weights */
    struct vkb_buf moe_out;     /* [T][k][n_embd] each pair's expert output */
    struct vkb_buf sh_out;      /* [T][n_embd] shared expert output */
    struct vkb_buf sh_gate;     /* [T] its gate logit */
    uint32_t *slot_len; /* [n_slots] positions held */
    char err[256];
};

/* Records the dispatches of one layer for the m tokens of the chunk (vkb_layer.c). */
int vkb_record_layer(struct bk_backend *b, struct vkb_layer *l, uint32_t m);

#endif
