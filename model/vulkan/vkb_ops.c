/* vkb_ops.c - device weights and the recording of one dispatch per operation.
 *
 * Weights: ggml blocks are repacked at upload into the word-aligned sub-block layout
 * of vkb_shared.h. The scales the shaders multiply by are computed here exactly as
 * the reference dequantisers compute them in float (Q4_K: d*sc and dmin*m; Q6_K:
 * d*sc), so dequantised values are bit-identical to the reference's.
 *
 * Ops: each vkb_op_* checks its sizes, packs its push constants (field order as in
 * the shader's Push block) and records one dispatch. Barriers are the caller's job
 * (vkb_forward.c knows which dispatches are independent).
 */
#include "vkb.h"

#include "gguf.h" /* enum ggml_type */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- host-side block decoding ---- */

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            man &= 0x3ff;
            bits = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

struct type_geom {
    uint32_t type;
    uint32_t block_elems; /* ggml block */
    uint32_t block_bytes;
    uint32_t q_words;  /* device quant words per 32 values */
    uint32_t n_scales; /* device scale floats per 32 values */
};

static const struct type_geom geoms[] = {
    {GGML_TYPE_F32, 1, 4, 32, 0},     {GGML_TYPE_F16, 1, 2, 16, 0},
    {GGML_TYPE_Q8_0, 32, 34, 8, 1},   {GGML_TYPE_Q4_0, 32, 18, 4, 1},
    {GGML_TYPE_Q4_K, 256, 144, 4, 2}, {GGML_TYPE_Q6_K, 256, 210, 8, 2},
};

static const char *type_name(uint32_t type)
{
    switch (type) {
    case GGML_TYPE_F32:
        return "F32";
    case GGML_TYPE_F16:
        return "F16";
    case GGML_TYPE_Q8_0:
        return "Q8_0";
    case GGML_TYPE_Q4_0:
        return "Q4_0";
    case GGML_TYPE_Q4_K:
        return "Q4_K";
    case GGML_TYPE_Q6_K:
        return "Q6_K";
    default:
        return "unsupported";
    }
}

static const struct type_geom *geom_of(uint32_t type)
{
    for (size_t i = 0; i < sizeof(geoms) / sizeof(geoms[0]); i++)
        if (geoms[i].type == type)
            return &geoms[i];
    return NULL;
}

size_t vkb_weight_bytes(uint32_t type, uint32_t k, uint32_t n)
{
    const struct type_geom *g = geom_of(type);
    if (!g || k == 0 || k % 32 || k % g->block_elems)
        return 0;
    return (size_t)n * (k / 32) * (g->q_words + g->n_scales) * 4;
}

/* Packs 32 nibble values (0..15) as Q4_0 does: byte b = v[b] | v[b+16] << 4. */
static void pack_nibbles(const uint8_t *v, uint32_t *dst)
{
    uint8_t bytes[16];
    for (int b = 0; b < 16; b++)
        bytes[b] = (uint8_t)(v[b] | (v[b + 16] << 4));
    memcpy(dst, bytes, 16);
}

/* One Q4_K super-block -> 8 sub-blocks: 4 nibble words each into q, (scale, min) into s. */
static void repack_q4_k(const uint8_t *blk, uint32_t *q, float *s)
{
    const float d = f16_to_f32(rd16(blk));
    const float dmin = f16_to_f32(rd16(blk + 2));
    const uint8_t *sc = blk + 4;
    const uint8_t *qs = blk + 16;
    for (int j = 0; j < 8; j++) {
        uint8_t sj;
        uint8_t mj;
        if (j < 4) {
            sj = sc[j] & 63;
            mj = sc[j + 4] & 63;
        } else {
            sj = (uint8_t)((sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4));
            mj = (uint8_t)((sc[j + 4] >> 4) | ((sc[j] >> 6) << 4));
        }
        /* sub-blocks 2c and 2c+1 share the 32 bytes qs[32c..]: low then high nibbles */
        const uint8_t *qc = qs + 32 * (j / 2);
        uint8_t v[32];
        for (int l = 0; l < 32; l++)
            v[l] = (j & 1) ? (uint8_t)(qc[l] >> 4) : (uint8_t)(qc[l] & 0xF);
        s[2 * j] = d * sj;
        s[2 * j + 1] = dmin * mj;
        pack_nibbles(v, q + 4 * j);
    }
}

/* One Q6_K super-block -> 8 sub-blocks: 32 int8 (q - 32) into q, two scales into s. */
static void repack_q6_k(const uint8_t *blk, uint32_t *q, float *s)
{
    const uint8_t *ql = blk;
    const uint8_t *qh = blk + 128;
    const int8_t *sc = (const int8_t *)(blk + 192);
    const float d = f16_to_f32(rd16(blk + 208));
    int8_t v[256];
    for (int n = 0; n < 2; n++) { /* two halves of 128 values */
        const uint8_t *l = ql + 64 * n;
        const uint8_t *h = qh + 32 * n;
        int8_t *y = v + 128 * n;
        for (int i = 0; i < 32; i++) {
            y[i] = (int8_t)(((l[i] & 0xF) | (((h[i] >> 0) & 3) << 4)) - 32);
            y[i + 32] = (int8_t)(((l[i + 32] & 0xF) | (((h[i] >> 2) & 3) << 4)) - 32);
            y[i + 64] = (int8_t)(((l[i] >> 4) | (((h[i] >> 4) & 3) << 4)) - 32);
            y[i + 96] = (int8_t)(((l[i + 32] >> 4) | (((h[i] >> 6) & 3) << 4)) - 32);
        }
    }
    for (int j = 0; j < 16; j++) /* scale j covers values 16j..16j+15 */
        s[j] = d * sc[j];
    memcpy(q, v, 256);
}

int vkb_weight_repack(uint32_t type, uint32_t k, uint32_t n, const void *src, size_t src_bytes,
                      void *dst)
{
    const struct type_geom *g = geom_of(type);
    if (!g || vkb_weight_bytes(type, k, n) == 0)
        return -1;
    const size_t row_bytes = (size_t)(k / g->block_elems) * g->block_bytes;
    if (src_bytes < row_bytes * n)
        return -1;
    const uint8_t *b = src;
    const size_t n_sb = (size_t)n * (k / 32);                 /* 32-value sub-blocks */
    const size_t n_blocks = (size_t)n * (k / g->block_elems); /* ggml blocks */
    uint32_t *q = dst;
    float *s = (float *)dst + n_sb * g->q_words; /* the scale region */
    switch (type) {
    case GGML_TYPE_F32:
    case GGML_TYPE_F16:
        memcpy(dst, src, row_bytes * n);
        return 0;
    case GGML_TYPE_Q8_0:
        for (size_t i = 0; i < n_blocks; i++, b += 34) {
            s[i] = f16_to_f32(rd16(b));
            memcpy(q + 8 * i, b + 2, 32);
        }
        return 0;
    case GGML_TYPE_Q4_0:
        for (size_t i = 0; i < n_blocks; i++, b += 18) {
            s[i] = f16_to_f32(rd16(b));
            memcpy(q + 4 * i, b + 2, 16);
        }
        return 0;
    case GGML_TYPE_Q4_K:
        for (size_t i = 0; i < n_blocks; i++, b += 144)
            repack_q4_k(b, q + 32 * i, s + 16 * i);
        return 0;
    case GGML_TYPE_Q6_K:
        for (size_t i = 0; i < n_blocks; i++, b += 210)
            repack_q6_k(b, q + 64 * i, s + 16 * i);
        return 0;
    default:
        return -1;
    }
}

int vkb_weight_upload(struct vkb_ctx *c, struct vkb_weight *w, const struct mdl_tensor *t,
                      char *err, size_t err_len)
{
    memset(w, 0, sizeof(*w));
    if (t->ne[0] > UINT32_MAX || t->ne[1] > UINT32_MAX) {
        snprintf(err, err_len, "vulkan: tensor of %llu x %llu too large",
                 (unsigned long long)t->ne[0], (unsigned long long)t->ne[1]);
        return -1;
    }
    w->type = t->type;
    w->k = (uint32_t)t->ne[0];
    w->n = (uint32_t)t->ne[1];
    size_t bytes = vkb_weight_bytes(t->type, w->k, w->n);
    if (bytes == 0) {
        snprintf(err, err_len, "vulkan: unsupported weight type %s with row length %u",
                 type_name(t->type), w->k);
        return -1;
    }
    if (vkb_buf_new(c, &w->buf, bytes, VKB_MEM_DEVICE, err, err_len) < 0)
        return -1;
    void *tmp = w->buf.map; /* repack straight into mapped device memory when possible */
    if (!tmp)
        tmp = malloc(bytes);
    if (!tmp) {
        snprintf(err, err_len, "vulkan: out of host memory (%zu bytes)", bytes);
        vkb_buf_free(c, &w->buf);
        return -1;
    }
    int rc = vkb_weight_repack(t->type, w->k, w->n, t->data, t->nbytes, tmp);
    if (rc < 0)
        snprintf(err, err_len, "vulkan: weight data of %zu bytes too short for %s %u x %u",
                 t->nbytes, type_name(t->type), w->k, w->n);
    if (rc == 0 && tmp != w->buf.map)
        rc = vkb_buf_upload(c, &w->buf, 0, tmp, bytes, err, err_len);
    if (tmp != w->buf.map)
        free(tmp);
    if (rc < 0)
        vkb_buf_free(c, &w->buf);
    return rc;
}

void vkb_weight_free(struct vkb_ctx *c, struct vkb_weight *w)
{
    vkb_buf_free(c, &w->buf);
}

float *vkb_rope_table(uint32_t n_ctx, uint32_t n_rot, const struct mdl_rope *r,
                      const float *factors)
{
    uint32_t half = n_rot / 2;
    if (half == 0 || n_ctx > SIZE_MAX / 2 / sizeof(float) / half)
        return NULL;
    float *t = malloc((size_t)n_ctx * half * 2 * sizeof(float));
    if (!t)
        return NULL;
    for (uint32_t i = 0; i < half; i++) {
        double inv_freq = pow((double)r->freq_base, -2.0 * i / (double)n_rot) *
                          (double)r->freq_scale / (factors ? (double)factors[i] : 1.0);
        for (uint32_t p = 0; p < n_ctx; p++) {
            double a = (double)p * inv_freq;
            t[((size_t)p * half + i) * 2] = (float)(cos(a) * r->attn_factor);
            t[((size_t)p * half + i) * 2 + 1] = (float)(sin(a) * r->attn_factor);
        }
    }
    return t;
}

/* ---- op recorders ---- */

static uint32_t div_up(uint32_t a, uint32_t b)
{
    return (a + b - 1) / b;
}

static int pipe_for_type(uint32_t type, bool matvec, enum vkb_pipe_id *out)
{
    static const uint32_t types[6] = {GGML_TYPE_F32,  GGML_TYPE_F16,  GGML_TYPE_Q8_0,
                                      GGML_TYPE_Q4_0, GGML_TYPE_Q4_K, GGML_TYPE_Q6_K};
    for (int i = 0; i < 6; i++) {
        if (types[i] == type) {
            *out = (enum vkb_pipe_id)((matvec ? VKB_P_MATVEC_F32 : VKB_P_MATMUL_F32) + i);
            return 0;
        }
    }
    return -1;
}

bool vkb_type_is_quant(uint32_t type)
{
    return type != GGML_TYPE_F32 && type != GGML_TYPE_F16;
}

bool vkb_type_is_kquant(uint32_t type)
{
    return type == GGML_TYPE_Q4_K || type == GGML_TYPE_Q6_K;
}

int vkb_op_quant_q8(struct vkb_ctx *c, struct vkb_view x, uint32_t k, uint32_t m, bool k_quant,
                    const struct vkb_xq *xq, char *err, size_t err_len)
{
    const uint32_t blk = k_quant ? 256 : 32;
    const enum vkb_pipe_id id = k_quant ? VKB_P_QUANT_Q8_K : VKB_P_QUANT_Q8_0;
    if (k % blk || x.off % 4 || x.stride % 4) {
        snprintf(err, err_len, "vulkan: quant_q8 of rows of %u at offset %u, stride %u", k, x.off,
                 x.stride);
        return -1;
    }
    uint32_t push[4] = {k, m, x.off, x.stride};
    struct vkb_buf *bufs[3] = {x.buf, xq->q, xq->s};
    return vkb_rec_dispatch(c, id, bufs, 3, push, sizeof(push),
                            div_up(k / blk, c->pipes[id].local_x), m, 1, err, err_len);
}

int vkb_op_matmul(struct vkb_ctx *c, const struct vkb_weight *w, struct vkb_view x,
                  const struct vkb_xq *xq, struct vkb_view y, uint32_t m, struct vkb_buf *bias,
                  uint32_t flags, char *err, size_t err_len)
{
    /* Mat-vec for up to 3 tokens, tiles of VKB_MM_TN beyond: both give identical
     * numbers, so the choice only affects speed. */
    enum vkb_pipe_id id;
    bool matvec = m < 4;
    if (pipe_for_type(w->type, matvec, &id) < 0 || x.off % 4 || x.stride % 4 || w->k % 32) {
        snprintf(err, err_len, "vulkan: bad mat-mul (type %u, x offset %u, stride %u)", w->type,
                 x.off, x.stride);
        return -1;
    }
    if ((flags & VKB_MM_BIAS) && !bias) {
        snprintf(err, err_len, "vulkan: mat-mul bias flag without a bias");
        return -1;
    }
    if (vkb_type_is_quant(w->type) && !xq) {
        snprintf(err, err_len,
                 "vulkan: mat-mul with quantized weights needs quantized activations");
        return -1;
    }
    uint32_t push[8] = {w->k, w->n, m, x.off, x.stride, y.off, y.stride, flags};
    struct vkb_buf *bufs[6] = {
        (struct vkb_buf *)&w->buf, x.buf, y.buf, bias ? bias : x.buf, xq ? xq->q : x.buf,
        xq ? xq->s : x.buf};
    uint32_t gx = div_up(w->n, matvec ? VKB_MV_NR : VKB_MM_NR);
    uint32_t gy = matvec ? m : div_up(m, VKB_MM_TN);
    return vkb_rec_dispatch(c, id, bufs, 6, push, sizeof(push), gx, gy, 1, err, err_len);
}

int vkb_op_matmul_id(struct vkb_ctx *c, const struct vkb_weight *w, const struct vkb_moe_mm *e,
                     struct vkb_view x, const struct vkb_xq *xq, struct vkb_view y, uint32_t m,
                     char *err, size_t err_len)
{
    enum vkb_pipe_id id;
    if (pipe_for_type(w->type, true, &id) < 0 || x.off % 4 || x.stride % 4 || w->k % 32 ||
        e->rows_per == 0 || e->x_div == 0 || (uint64_t)e->rows_per * e->n_mat != w->n) {
        snprintf(err, err_len, "vulkan: bad expert mat-vec (type %u, %u x %u rows of %u)",
                 w->type, e->n_mat, e->rows_per, w->n);
        return -1;
    }
    id = (enum vkb_pipe_id)(VKB_P_MATVEC_ID_F32 + (id - VKB_P_MATVEC_F32));
    if (vkb_type_is_quant(w->type) && !xq) {
        snprintf(err, err_len, "vulkan: mat-vec with quantized weights needs quantized activations");
        return -1;
    }
    uint32_t push[11] = {w->k,    e->rows_per, m,          x.off,      x.stride, y.off,
                         y.stride, 0u,         e->ids_off, e->x_div,  e->n_mat};
    struct vkb_buf *bufs[7] = {(struct vkb_buf *)&w->buf, x.buf, y.buf, x.buf,
                               xq ? xq->q : x.buf,        xq ? xq->s : x.buf, e->ids};
    return vkb_rec_dispatch(c, id, bufs, 7, push, sizeof(push), div_up(e->rows_per, VKB_MV_NR), m,
                            1, err, err_len);
}

int vkb_op_get_rows(struct vkb_ctx *c, const struct vkb_weight *w, struct vkb_buf *info,
                    uint32_t tok_off, struct vkb_view out, uint32_t m, char *err, size_t err_len)
{
    enum vkb_pipe_id id;
    if (pipe_for_type(w->type, false, &id) < 0) {
        snprintf(err, err_len, "vulkan: get_rows of type %u", w->type);
        return -1;
    }
    id = (enum vkb_pipe_id)(VKB_P_GET_ROWS_F32 + (id - VKB_P_MATMUL_F32));
    if (out.off % 4 || out.stride % 4) {
        snprintf(err, err_len, "vulkan: get_rows output offset %u / stride %u not multiples of 4",
                 out.off, out.stride);
        return -1;
    }
    uint32_t push[6] = {w->k, m, tok_off, out.off, out.stride, w->n};
    struct vkb_buf *bufs[3] = {(struct vkb_buf *)&w->buf, info, out.buf};
    uint32_t lx = c->pipes[id].local_x;
    return vkb_rec_dispatch(c, id, bufs, 3, push, sizeof(push), div_up(w->k / 32, lx), m, 1, err,
                            err_len);
}

static int rmsnorm(struct vkb_ctx *c, struct vkb_view in, struct vkb_buf *weight,
                   struct vkb_view out, uint32_t n, uint32_t rows, uint32_t per_row, float eps,
                   uint32_t flags, struct vkb_buf *info, uint32_t idx_off, char *err,
                   size_t err_len)
{
    uint32_t push[10] = {n,     rows,    in.off,     in.stride, out.off,
                         out.stride, flags, idx_off, fbits(eps), per_row};
    struct vkb_buf *bufs[4] = {in.buf, weight, out.buf, info ? info : in.buf};
    if ((flags & VKB_NORM_GATHER) && !info) {
        snprintf(err, err_len, "vulkan: rmsnorm gather without an index buffer");
        return -1;
    }
    if (per_row == 0) {
        snprintf(err, err_len, "vulkan: rmsnorm with no pieces per row");
        return -1;
    }
    return vkb_rec_dispatch(c, VKB_P_RMSNORM, bufs, 4, push, sizeof(push), rows, 1, 1, err,
                            err_len);
}

int vkb_op_rmsnorm(struct vkb_ctx *c, struct vkb_view in, struct vkb_buf *weight,
                   struct vkb_view out, uint32_t n, uint32_t m, float eps, struct vkb_buf *info,
                   int32_t idx_off, char *err, size_t err_len)
{
    return rmsnorm(c, in, weight, out, n, m, 1, eps, idx_off >= 0 ? VKB_NORM_GATHER : 0u, info,
                   idx_off >= 0 ? (uint32_t)idx_off : 0u, err, err_len);
}

int vkb_op_rmsnorm_rows(struct vkb_ctx *c, struct vkb_view in, struct vkb_buf *weight,
                        struct vkb_view out, uint32_t n, uint32_t m, uint32_t per_row, float eps,
                        uint32_t flags, char *err, size_t err_len)
{
    return rmsnorm(c, in, weight, out, n, m * per_row, per_row, eps,
                   flags & VKB_NORM_ACCUMULATE, NULL, 0, err, err_len);
}

int vkb_op_rope(struct vkb_ctx *c, struct vkb_view x, struct vkb_buf *table, struct vkb_buf *info,
                const struct vkb_rope_args *a, uint32_t m, char *err, size_t err_len)
{
    if (a->n_rot > a->head_dim || a->n_rot % 2) {
        snprintf(err, err_len, "vulkan: rope n_rot %u with head_dim %u", a->n_rot, a->head_dim);
        return -1;
    }
    uint32_t push[9] = {a->n_heads, a->head_dim, a->n_rot, a->neox ? 1u : 0u, x.off, x.stride,
                        a->pos_off, m,           0};
    struct vkb_buf *bufs[3] = {x.buf, table, info};
    uint32_t n = a->n_heads * (a->n_rot / 2);
    return vkb_rec_dispatch(c, VKB_P_ROPE, bufs, 3, push, sizeof(push),
                            div_up(n, c->pipes[VKB_P_ROPE].local_x), m, 1, err, err_len);
}

int vkb_op_kv_write(struct vkb_ctx *c, struct vkb_view qkv, struct vkb_buf *kc, struct vkb_buf *vc,
                    struct vkb_buf *info, const struct vkb_kv_args *a, uint32_t m, char *err,
                    size_t err_len)
{
    if (a->kv_dim % 2) {
        snprintf(err, err_len, "vulkan: odd kv_dim %u", a->kv_dim);
        return -1;
    }
    uint32_t push[9] = {a->kv_dim,  a->n_ctx,   a->k_off,    a->v_off, qkv.off,
                        qkv.stride, a->pos_off, a->slot_off, m};
    struct vkb_buf *bufs[4] = {qkv.buf, kc, vc, info};
    return vkb_rec_dispatch(c, VKB_P_KV_WRITE, bufs, 4, push, sizeof(push),
                            div_up(a->kv_dim / 2, c->pipes[VKB_P_KV_WRITE].local_x), m, 1, err,
                            err_len);
}

int vkb_op_attn(struct vkb_ctx *c, struct vkb_view q, struct vkb_buf *kc, struct vkb_buf *vc,
                struct vkb_buf *info, const struct vkb_attn_args *a, struct vkb_view out,
                uint32_t m, char *err, size_t err_len)
{
    if (a->head_dim % 2 || a->head_dim > VKB_HEAD_DIM_MAX || a->n_head_kv == 0 ||
        a->n_head % a->n_head_kv) {
        snprintf(err, err_len, "vulkan: attention with head_dim %u, %u heads, %u kv heads",
                 a->head_dim, a->n_head, a->n_head_kv);
        return -1;
    }
    uint32_t push[14] = {a->n_head,       a->n_head_kv,        a->head_dim,
                         a->n_ctx,        q.off,               q.stride,
                         out.off,         out.stride,          a->pos_off,
                         a->slot_off,     fbits(a->scale),     fbits(a->softcap),
                         fbits(a->post_scale), a->n_swa};
    struct vkb_buf *bufs[5] = {q.buf, kc, vc, info, out.buf};
    return vkb_rec_dispatch(c, VKB_P_ATTN, bufs, 5, push, sizeof(push), a->n_head, m, 1, err,
                            err_len);
}

int vkb_op_glu(struct vkb_ctx *c, enum mdl_ffn_act act, struct vkb_view g, struct vkb_view u,
               struct vkb_view out, uint32_t n, uint32_t m, char *err, size_t err_len)
{
    enum vkb_pipe_id id = act == MDL_ACT_GELU ? VKB_P_GELU_MUL : VKB_P_SILU_MUL;
    uint32_t push[8] = {n, m, g.off, g.stride, u.off, u.stride, out.off, out.stride};
    struct vkb_buf *bufs[3] = {g.buf, u.buf, out.buf};
    return vkb_rec_dispatch(c, id, bufs, 3, push, sizeof(push), div_up(n, c->pipes[id].local_x),
                            m, 1, err, err_len);
}

int vkb_op_silu_mul(struct vkb_ctx *c, struct vkb_view g, struct vkb_view u, struct vkb_view out,
                    uint32_t n, uint32_t m, char *err, size_t err_len)
{
    return vkb_op_glu(c, MDL_ACT_SILU, g, u, out, n, m, err, err_len);
}

int vkb_op_scale(struct vkb_ctx *c, struct vkb_view y, uint32_t n, uint32_t m, float s, float cap,
                 char *err, size_t err_len)
{
    uint32_t push[7] = {n,          m,           y.off, y.stride, cap > 0.0f ? VKB_SCALE_CAP : 0u,
                        fbits(cap > 0.0f ? 1.0f / cap : s), fbits(cap)};
    struct vkb_buf *bufs[1] = {y.buf};
    return vkb_rec_dispatch(c, VKB_P_SCALE, bufs, 1, push, sizeof(push),
                            div_up(n, c->pipes[VKB_P_SCALE].local_x), m, 1, err, err_len);
}

int vkb_op_moe_route(struct vkb_ctx *c, struct vkb_buf *logits, struct vkb_buf *ids,
                     struct vkb_buf *w, uint32_t n_expert, uint32_t k, uint32_t m, bool norm,
                     char *err, size_t err_len)
{
    if (k == 0 || k > VKB_MOE_MAX_USED || k > n_expert) {
        snprintf(err, err_len, "vulkan: %u of %u experts per token not supported", k, n_expert);
        return -1;
    }
    uint32_t push[4] = {n_expert, k, m, norm ? VKB_ROUTE_NORM : 0u};
    struct vkb_buf *bufs[3] = {logits, ids, w};
    return vkb_rec_dispatch(c, VKB_P_MOE_ROUTE, bufs, 3, push, sizeof(push),
                            div_up(m, c->pipes[VKB_P_MOE_ROUTE].local_x), 1, 1, err, err_len);
}

int vkb_op_moe_combine(struct vkb_ctx *c, struct vkb_buf *x, struct vkb_buf *eo,
                       struct vkb_buf *w, struct vkb_buf *sh, struct vkb_buf *sg, uint32_t n,
                       uint32_t m, uint32_t k, char *err, size_t err_len)
{
    uint32_t push[4] = {n, m, k, sh ? VKB_COMBINE_SHARED : 0u};
    struct vkb_buf *bufs[5] = {x, eo, w, sh ? sh : eo, sg ? sg : w};
    return vkb_rec_dispatch(c, VKB_P_MOE_COMBINE, bufs, 5, push, sizeof(push),
                            div_up(n, c->pipes[VKB_P_MOE_COMBINE].local_x), m, 1, err, err_len);
}

int vkb_op_add(struct vkb_ctx *c, struct vkb_view x, struct vkb_view y, uint32_t n, uint32_t m,
               char *err, size_t err_len)
{
    uint32_t push[6] = {n, m, x.off, x.stride, y.off, y.stride};
    struct vkb_buf *bufs[2] = {x.buf, y.buf};
    return vkb_rec_dispatch(c, VKB_P_ADD, bufs, 2, push, sizeof(push),
                            div_up(n, c->pipes[VKB_P_ADD].local_x), m, 1, err, err_len);
}
