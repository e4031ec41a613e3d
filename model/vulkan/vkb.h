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
/* out[j] = rows tokens[j] of the embedding matrix (ints at info[tok_off + j]), j < m. */
int vkb_op_get_rows(struct vkb_ctx *c, const struct vkb_weight *w, struct vkb_buf *info,
                    uint32_t tok_off, struct vkb_view out, uint32_t m, char *err, size_t err_len);
/* out[j] = rmsnorm(in[row j]) * weight, row j = j or info[idx_off + j] when idx. */
int vkb_op_rmsnorm(struct vkb_ctx *c, struct vkb_view in, struct vkb_buf *weight,
                   struct vkb_view out, uint32_t n, uint32_t m, float eps, struct vkb_buf *info,
                   int32_t idx_off, char *err, size_t err_len);

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
    float scale;
};
/* out[t][h] = softmax(q_h k^T * scale over positions <= pos[t]) v, per head. */
int vkb_op_attn(struct vkb_ctx *c, struct vkb_view q, struct vkb_buf *kc, struct vkb_buf *vc,
                struct vkb_buf *info, const struct vkb_attn_args *a, struct vkb_view out,
                uint32_t m, char *err, size_t err_len);
/* out[t][i] = silu(g[t][i]) * u[t][i] for i < n. */
int vkb_op_silu_mul(struct vkb_ctx *c, struct vkb_view g, struct vkb_view u, struct vkb_view out,
                    uint32_t n, uint32_t m, char *err, size_t err_len);
/* y[t][i] += x[t][i] for i < n. */
int vkb_op_add(struct vkb_ctx *c, struct vkb_view x, struct vkb_view y, uint32_t n, uint32_t m,
               char *err, size_t err_len);

/* Cos/sin table for rope: [n_ctx][n_rot/2] pairs, computed in double. Caller frees. */
float *vkb_rope_table(uint32_t n_ctx, uint32_t n_rot, float freq_base);

#endif
