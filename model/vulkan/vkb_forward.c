/* vkb_forward.c - bk_vulkan_ops: the transformer forward pass on a Vulkan device.
 *
 * At init every weight is repacked and uploaded once to device-local memory; the
 * KV cache (F16, per layer [n_slots][n_ctx][n_head_kv*head_dim]) and all activations
 * live on the device. A forward records one command buffer for a chunk of up to
 * VKB_MAX_TOKENS tokens (and VKB_MAX_LOGITS wanted logits rows), submits it, waits,
 * and reads back only the logits. Larger batches run as several chunks in order,
 * which gives the same numbers: every kernel computes a token independently of the
 * other tokens of its dispatch (see backend.h, batch invariance).
 *
 * Batch semantics as the CPU backend: want_logits NULL means every token wants logits,
 * logits NULL means none are computed; a batch that does not continue its slots is
 * refused (-EINVAL) before anything runs.
 *
 * Per layer (barriers only between dependent steps):
 *   h = rmsnorm(x) * attn_norm
 *   qkv = [h Wq + bq | h Wk + bk | h Wv + bv]       three mat-muls, no barrier between
 *   rope(q heads, k heads) in place; k, v -> F16 cache at [slot][pos]
 *   att = attention(q, cache); x += att Wo           (mat-mul accumulate flag)
 *   h = rmsnorm(x) * ffn_norm
 *   ff = [h Wgate | h Wup]; ff_gate = silu(gate) * up; x += ff_gate Wdown
 * Every mat-mul input that meets quantized weights is first quantized to int8 blocks
 * (vkb_op_quant_q8), as the reference does.
 * then the final norm of only the rows whose logits are wanted and the output matrix.
 */
#include "vkb.h"

#include "gguf.h" /* enum ggml_type */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VKB_MAX_TOKENS 256u
#define VKB_MAX_LOGITS 64u

struct vkb_layer {
    struct vkb_buf attn_norm;
    struct vkb_buf ffn_norm;
    struct vkb_weight wq, wk, wv, wo;
    struct vkb_weight gate, up, down;
    struct vkb_buf bq, bk, bv;
    bool has_bias;
    struct vkb_buf kc; /* [n_slots][n_ctx][kv_dim] F16 */
    struct vkb_buf vc;
};

/* Offsets (in ints) of the per-token inputs in the info buffer. */
enum {
    INFO_TOK = 0,
    INFO_POS = VKB_MAX_TOKENS,
    INFO_SLOT = 2 * VKB_MAX_TOKENS,
    INFO_OUT = 3 * VKB_MAX_TOKENS,
    INFO_INTS = 4 * VKB_MAX_TOKENS
};

struct bk_backend {
    struct vkb_ctx *c;
    struct mdl_hparams hp;
    uint32_t n_slots;
    uint32_t n_ctx;
    uint32_t q_dim;   /* n_head * head_dim */
    uint32_t kv_dim;  /* n_head_kv * head_dim */
    uint32_t qkv_dim; /* q_dim + 2 * kv_dim */
    struct vkb_weight tok_embd;
    struct vkb_weight output; /* unused when tied */
    bool output_tied;
    struct vkb_buf output_norm;
    struct vkb_layer *layers;   /* [n_layer] */
    struct vkb_buf rope_tab;    /* [n_ctx][n_rot/2] (cos, sin) */
    struct vkb_buf info;        /* host-visible ints, see INFO_* */
    struct vkb_buf x;           /* [T][n_embd] residual stream */
    struct vkb_buf h;           /* [T][n_embd] normed */
    struct vkb_buf qkv;         /* [T][qkv_dim] */
    struct vkb_buf att;         /* [T][q_dim] */
    struct vkb_buf ff;          /* [T][2 * n_ff] gate | up */
    struct vkb_buf hout;        /* [L][n_embd] final norm of wanted rows */
    struct vkb_buf logits;      /* [L][n_vocab] */
    struct vkb_buf logits_host; /* readback copy when logits is not mapped */
    struct vkb_buf xq_q;        /* [T][k_max/4] int8 activations for quantized weights */
    struct vkb_buf xq_s;        /* [T][k_max/32] their scales */
    struct vkb_xq xq;
    uint32_t *slot_len; /* [n_slots] positions held */
    char err[256];
};

/* ---- init ---- */

static int upload_f32(struct vkb_ctx *c, struct vkb_buf *b, const struct mdl_tensor *t, uint64_t n,
                      const char *what, char *err, size_t err_len)
{
    if (t->type != GGML_TYPE_F32 || t->ne[0] * t->ne[1] != n || t->nbytes < n * 4 || !t->data) {
        snprintf(err, err_len, "vulkan: %s must be F32 with %llu values", what,
                 (unsigned long long)n);
        return -1;
    }
    if (vkb_buf_new(c, b, n * 4, VKB_MEM_DEVICE, err, err_len) < 0)
        return -1;
    return vkb_buf_upload(c, b, 0, t->data, n * 4, err, err_len);
}

static int upload_matrix(struct vkb_ctx *c, struct vkb_weight *w, const struct mdl_tensor *t,
                         uint64_t k, uint64_t n, const char *what, char *err, size_t err_len)
{
    if (t->ne[0] != k || t->ne[1] != n || !t->data) {
        snprintf(err, err_len, "vulkan: %s has shape %llu x %llu, expected %llu x %llu", what,
                 (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], (unsigned long long)k,
                 (unsigned long long)n);
        return -1;
    }
    if (vkb_weight_upload(c, w, t, err, err_len) < 0) {
        size_t l = strlen(err);
        snprintf(err + l, err_len > l ? err_len - l : 0, " (%s)", what);
        return -1;
    }
    return 0;
}

static int check_hparams(const struct mdl_hparams *hp, char *err, size_t err_len)
{
    if (hp->n_head == 0 || hp->n_head_kv == 0 || hp->n_head % hp->n_head_kv || hp->head_dim == 0 ||
        hp->head_dim % 2 || hp->head_dim > VKB_HEAD_DIM_MAX || hp->n_rot > hp->head_dim ||
        hp->n_rot % 2 || hp->n_embd % 32 || hp->n_ff % 32 || (hp->n_head * hp->head_dim) % 32 ||
        hp->n_vocab == 0 || hp->n_layer == 0) {
        snprintf(err, err_len,
                 "vulkan: unsupported shape (n_embd %u, n_ff %u, %u heads / %u kv, head_dim %u, "
                 "n_rot %u)",
                 hp->n_embd, hp->n_ff, hp->n_head, hp->n_head_kv, hp->head_dim, hp->n_rot);
        return -1;
    }
    return 0;
}

static int layer_init(struct bk_backend *b, struct vkb_layer *l, const struct mdl_layer *m,
                      char *err, size_t err_len)
{
    struct vkb_ctx *c = b->c;
    const struct mdl_hparams *hp = &b->hp;
    if (upload_f32(c, &l->attn_norm, &m->attn_norm, hp->n_embd, "attn_norm", err, err_len) < 0 ||
        upload_f32(c, &l->ffn_norm, &m->ffn_norm, hp->n_embd, "ffn_norm", err, err_len) < 0 ||
        upload_matrix(c, &l->wq, &m->wq, hp->n_embd, b->q_dim, "attn_q", err, err_len) < 0 ||
        upload_matrix(c, &l->wk, &m->wk, hp->n_embd, b->kv_dim, "attn_k", err, err_len) < 0 ||
        upload_matrix(c, &l->wv, &m->wv, hp->n_embd, b->kv_dim, "attn_v", err, err_len) < 0 ||
        upload_matrix(c, &l->wo, &m->wo, b->q_dim, hp->n_embd, "attn_output", err, err_len) < 0 ||
        upload_matrix(c, &l->gate, &m->w_gate, hp->n_embd, hp->n_ff, "ffn_gate", err, err_len) <
            0 ||
        upload_matrix(c, &l->up, &m->w_up, hp->n_embd, hp->n_ff, "ffn_up", err, err_len) < 0 ||
        upload_matrix(c, &l->down, &m->w_down, hp->n_ff, hp->n_embd, "ffn_down", err, err_len) < 0)
        return -1;
    l->has_bias = m->bq.data != NULL;
    if (l->has_bias && (upload_f32(c, &l->bq, &m->bq, b->q_dim, "attn_q.bias", err, err_len) < 0 ||
                        upload_f32(c, &l->bk, &m->bk, b->kv_dim, "attn_k.bias", err, err_len) < 0 ||
                        upload_f32(c, &l->bv, &m->bv, b->kv_dim, "attn_v.bias", err, err_len) < 0))
        return -1;
    VkDeviceSize kv_bytes = (VkDeviceSize)b->n_slots * b->n_ctx * b->kv_dim * 2;
    if (vkb_buf_new(c, &l->kc, kv_bytes, VKB_MEM_DEVICE, err, err_len) < 0 ||
        vkb_buf_new(c, &l->vc, kv_bytes, VKB_MEM_DEVICE, err, err_len) < 0)
        return -1;
    /* zeroed so that no NaN bit pattern can ever be read, even by a masked lane */
    if (vkb_buf_zero(c, &l->kc, err, err_len) < 0 || vkb_buf_zero(c, &l->vc, err, err_len) < 0)
        return -1;
    return 0;
}

static int activations_init(struct bk_backend *b, char *err, size_t err_len)
{
    struct vkb_ctx *c = b->c;
    const VkDeviceSize T = VKB_MAX_TOKENS;
    const VkDeviceSize L = VKB_MAX_LOGITS;
    const VkDeviceSize f = sizeof(float);
    if (vkb_buf_new(c, &b->info, INFO_INTS * sizeof(int32_t), VKB_MEM_HOST, err, err_len) < 0 ||
        vkb_buf_new(c, &b->x, T * b->hp.n_embd * f, VKB_MEM_DEVICE, err, err_len) < 0 ||
        vkb_buf_new(c, &b->h, T * b->hp.n_embd * f, VKB_MEM_DEVICE, err, err_len) < 0 ||
        vkb_buf_new(c, &b->qkv, T * b->qkv_dim * f, VKB_MEM_DEVICE, err, err_len) < 0 ||
        vkb_buf_new(c, &b->att, T * b->q_dim * f, VKB_MEM_DEVICE, err, err_len) < 0 ||
        vkb_buf_new(c, &b->ff, T * 2 * b->hp.n_ff * f, VKB_MEM_DEVICE, err, err_len) < 0 ||
        vkb_buf_new(c, &b->hout, L * b->hp.n_embd * f, VKB_MEM_DEVICE, err, err_len) < 0 ||
        vkb_buf_new(c, &b->logits, L * b->hp.n_vocab * f, VKB_MEM_DEVICE, err, err_len) < 0)
        return -1;
    uint32_t kmax = b->hp.n_embd > b->q_dim ? b->hp.n_embd : b->q_dim;
    kmax = kmax > b->hp.n_ff ? kmax : b->hp.n_ff;
    if (vkb_buf_new(c, &b->xq_q, T * kmax, VKB_MEM_DEVICE, err, err_len) < 0 ||
        vkb_buf_new(c, &b->xq_s, T * (kmax / 32) * f, VKB_MEM_DEVICE, err, err_len) < 0)
        return -1;
    b->xq.q = &b->xq_q;
    b->xq.s = &b->xq_s;
    if (!b->logits.map &&
        vkb_buf_new(c, &b->logits_host, L * b->hp.n_vocab * f, VKB_MEM_HOST, err, err_len) < 0)
        return -1;
    float *tab = vkb_rope_table(b->n_ctx, b->hp.n_rot, b->hp.rope_freq_base);
    if (!tab) {
        snprintf(err, err_len, "vulkan: out of memory for the rope table");
        return -1;
    }
    size_t tab_bytes = (size_t)b->n_ctx * (b->hp.n_rot / 2) * 2 * sizeof(float);
    int rc = vkb_buf_new(c, &b->rope_tab, tab_bytes, VKB_MEM_DEVICE, err, err_len);
    if (rc == 0)
        rc = vkb_buf_upload(c, &b->rope_tab, 0, tab, tab_bytes, err, err_len);
    free(tab);
    return rc;
}

static void vk_free(struct bk_backend *b);

static int vk_init(struct bk_backend **out, const struct mdl_weights *w, const struct bk_params *p,
                   char *err, size_t err_len)
{
    *out = NULL;
    if (check_hparams(&w->hp, err, err_len) < 0)
        return -1;
    if (p->n_slots == 0 || p->n_ctx == 0) {
        snprintf(err, err_len, "vulkan: n_slots and n_ctx must be positive");
        return -1;
    }
    struct bk_backend *b = calloc(1, sizeof(*b));
    if (!b) {
        snprintf(err, err_len, "vulkan: out of memory");
        return -1;
    }
    b->hp = w->hp;
    b->n_slots = p->n_slots;
    b->n_ctx = p->n_ctx;
    b->q_dim = w->hp.n_head * w->hp.head_dim;
    b->kv_dim = w->hp.n_head_kv * w->hp.head_dim;
    b->qkv_dim = b->q_dim + 2 * b->kv_dim;
    b->slot_len = calloc(p->n_slots, sizeof(*b->slot_len));
    b->layers = calloc(w->hp.n_layer, sizeof(*b->layers));
    if (!b->slot_len || !b->layers) {
        snprintf(err, err_len, "vulkan: out of memory");
        goto fail;
    }
    if (vkb_ctx_open(&b->c, p->device, err, err_len) < 0)
        goto fail;
    const struct mdl_hparams *hp = &w->hp;
    if (upload_matrix(b->c, &b->tok_embd, &w->tok_embd, hp->n_embd, hp->n_vocab, "token_embd", err,
                      err_len) < 0 ||
        upload_f32(b->c, &b->output_norm, &w->output_norm, hp->n_embd, "output_norm", err,
                   err_len) < 0)
        goto fail;
    b->output_tied = w->output.data == w->tok_embd.data && w->output.type == w->tok_embd.type;
    if (!b->output_tied && upload_matrix(b->c, &b->output, &w->output, hp->n_embd, hp->n_vocab,
                                         "output", err, err_len) < 0)
        goto fail;
    for (uint32_t i = 0; i < hp->n_layer; i++)
        if (layer_init(b, &b->layers[i], &w->layers[i], err, err_len) < 0)
            goto fail;
    if (activations_init(b, err, err_len) < 0)
        goto fail;
    *out = b;
    return 0;
fail:
    vk_free(b);
    return -1;
}

static void vk_free(struct bk_backend *b)
{
    if (!b)
        return;
    struct vkb_ctx *c = b->c;
    if (c) {
        vkb_weight_free(c, &b->tok_embd);
        vkb_weight_free(c, &b->output);
        vkb_buf_free(c, &b->output_norm);
        for (uint32_t i = 0; b->layers && i < b->hp.n_layer; i++) {
            struct vkb_layer *l = &b->layers[i];
            struct vkb_weight *ws[7] = {&l->wq, &l->wk, &l->wv, &l->wo, &l->gate, &l->up, &l->down};
            for (int j = 0; j < 7; j++)
                vkb_weight_free(c, ws[j]);
            struct vkb_buf *bs[7] = {&l->attn_norm, &l->ffn_norm, &l->bq, &l->bk,
                                     &l->bv,        &l->kc,       &l->vc};
            for (int j = 0; j < 7; j++)
                vkb_buf_free(c, bs[j]);
        }
        struct vkb_buf *act[12] = {&b->rope_tab, &b->info,        &b->x,    &b->h,
                                   &b->qkv,      &b->att,         &b->ff,   &b->hout,
                                   &b->logits,   &b->logits_host, &b->xq_q, &b->xq_s};
        for (int j = 0; j < 12; j++)
            vkb_buf_free(c, act[j]);
        vkb_ctx_close(c);
    }
    free(b->layers);
    free(b->slot_len);
    free(b);
}

/* ---- forward ---- */

static struct vkb_view view(struct vkb_buf *buf, uint32_t off, uint32_t stride)
{
    return (struct vkb_view){.buf = buf, .off = off, .stride = stride};
}

/* Quantizes the mat-mul input x (m rows of k) when one of its n_w consumers has
 * quantized weights (as Q8_K when all of those are K-quants), then adds a barrier. */
static int quantize_for(struct bk_backend *b, struct vkb_view x, uint32_t k, uint32_t m,
                        const struct vkb_weight *const *ws, int n_w)
{
    bool need = false;
    bool all_k = k % 256 == 0;
    for (int i = 0; i < n_w; i++) {
        if (vkb_type_is_quant(ws[i]->type)) {
            need = true;
            all_k &= vkb_type_is_kquant(ws[i]->type);
        }
    }
    if (!need)
        return 0;
    if (vkb_op_quant_q8(b->c, x, k, m, all_k, &b->xq, b->err, sizeof(b->err)) < 0)
        return -1;
    vkb_rec_barrier(b->c);
    return 0;
}

/* Records the layers of one chunk of m tokens (inputs already in b->info). */
static int record_layer(struct bk_backend *b, struct vkb_layer *l, uint32_t m)
{
    struct vkb_ctx *c = b->c;
    const struct mdl_hparams *hp = &b->hp;
    char *err = b->err;
    const size_t el = sizeof(b->err);
    const uint32_t E = hp->n_embd;
    const uint32_t F = hp->n_ff;
    struct vkb_view x = view(&b->x, 0, E);
    struct vkb_view h = view(&b->h, 0, E);
    uint32_t bias = l->has_bias ? VKB_MM_BIAS : 0u;

    const struct vkb_weight *qkv_w[3] = {&l->wq, &l->wk, &l->wv};
    const struct vkb_weight *ffn_w[2] = {&l->gate, &l->up};
    const struct vkb_weight *wo_w[1] = {&l->wo};
    const struct vkb_weight *down_w[1] = {&l->down};
    struct vkb_xq *xq = &b->xq;

    if (vkb_op_rmsnorm(c, x, &l->attn_norm, h, E, m, hp->rms_eps, NULL, -1, err, el) < 0)
        return -1;
    vkb_rec_barrier(c);
    if (quantize_for(b, h, E, m, qkv_w, 3) < 0)
        return -1;
    if (vkb_op_matmul(c, &l->wq, h, xq, view(&b->qkv, 0, b->qkv_dim), m,
                      l->has_bias ? &l->bq : NULL, bias, err, el) < 0 ||
        vkb_op_matmul(c, &l->wk, h, xq, view(&b->qkv, b->q_dim, b->qkv_dim), m,
                      l->has_bias ? &l->bk : NULL, bias, err, el) < 0 ||
        vkb_op_matmul(c, &l->wv, h, xq, view(&b->qkv, b->q_dim + b->kv_dim, b->qkv_dim), m,
                      l->has_bias ? &l->bv : NULL, bias, err, el) < 0)
        return -1;
    vkb_rec_barrier(c);
    struct vkb_rope_args ra = {.n_heads = hp->n_head + hp->n_head_kv,
                               .head_dim = hp->head_dim,
                               .n_rot = hp->n_rot,
                               .neox = hp->rope_neox,
                               .pos_off = INFO_POS};
    if (vkb_op_rope(c, view(&b->qkv, 0, b->qkv_dim), &b->rope_tab, &b->info, &ra, m, err, el) < 0)
        return -1;
    vkb_rec_barrier(c);
    struct vkb_kv_args ka = {.kv_dim = b->kv_dim,
                             .n_ctx = b->n_ctx,
                             .k_off = b->q_dim,
                             .v_off = b->q_dim + b->kv_dim,
                             .pos_off = INFO_POS,
                             .slot_off = INFO_SLOT};
    if (vkb_op_kv_write(c, view(&b->qkv, 0, b->qkv_dim), &l->kc, &l->vc, &b->info, &ka, m, err,
                        el) < 0)
        return -1;
    vkb_rec_barrier(c);
    struct vkb_attn_args aa = {.n_head = hp->n_head,
                               .n_head_kv = hp->n_head_kv,
                               .head_dim = hp->head_dim,
                               .n_ctx = b->n_ctx,
                               .pos_off = INFO_POS,
                               .slot_off = INFO_SLOT,
                               .scale = 1.0f / sqrtf((float)hp->head_dim)};
    if (vkb_op_attn(c, view(&b->qkv, 0, b->qkv_dim), &l->kc, &l->vc, &b->info, &aa,
                    view(&b->att, 0, b->q_dim), m, err, el) < 0)
        return -1;
    vkb_rec_barrier(c);
    if (quantize_for(b, view(&b->att, 0, b->q_dim), b->q_dim, m, wo_w, 1) < 0 ||
        vkb_op_matmul(c, &l->wo, view(&b->att, 0, b->q_dim), xq, x, m, NULL, VKB_MM_ACCUMULATE, err,
                      el) < 0)
        return -1;
    vkb_rec_barrier(c);
    if (vkb_op_rmsnorm(c, x, &l->ffn_norm, h, E, m, hp->rms_eps, NULL, -1, err, el) < 0)
        return -1;
    vkb_rec_barrier(c);
    if (quantize_for(b, h, E, m, ffn_w, 2) < 0 ||
        vkb_op_matmul(c, &l->gate, h, xq, view(&b->ff, 0, 2 * F), m, NULL, 0, err, el) < 0 ||
        vkb_op_matmul(c, &l->up, h, xq, view(&b->ff, F, 2 * F), m, NULL, 0, err, el) < 0)
        return -1;
    vkb_rec_barrier(c);
    if (vkb_op_silu_mul(c, view(&b->ff, 0, 2 * F), view(&b->ff, F, 2 * F), view(&b->ff, 0, 2 * F),
                        F, m, err, el) < 0)
        return -1;
    vkb_rec_barrier(c);
    if (quantize_for(b, view(&b->ff, 0, 2 * F), F, m, down_w, 1) < 0 ||
        vkb_op_matmul(c, &l->down, view(&b->ff, 0, 2 * F), xq, x, m, NULL, VKB_MM_ACCUMULATE, err,
                      el) < 0)
        return -1;
    vkb_rec_barrier(c);
    return 0;
}

/* Runs tokens [i0, i0+m) of the batch, n_out of them wanting logits (written to out). */
static int run_chunk(struct bk_backend *b, const struct bk_batch *batch, uint32_t i0, uint32_t m,
                     float *out)
{
    struct vkb_ctx *c = b->c;
    const struct mdl_hparams *hp = &b->hp;
    int32_t *info = b->info.map;
    uint32_t n_out = 0;
    for (uint32_t j = 0; j < m; j++) {
        info[INFO_TOK + j] = batch->tokens[i0 + j];
        info[INFO_POS + j] = batch->pos[i0 + j];
        info[INFO_SLOT + j] = batch->slot[i0 + j];
        if (out && (!batch->want_logits || batch->want_logits[i0 + j]))
            info[INFO_OUT + n_out++] = (int32_t)j;
    }
    char *err = b->err;
    const size_t el = sizeof(b->err);
    if (vkb_rec_begin(c, err, el) < 0)
        return -1;
    if (vkb_op_get_rows(c, &b->tok_embd, &b->info, INFO_TOK, view(&b->x, 0, hp->n_embd), m, err,
                        el) < 0)
        goto fail;
    vkb_rec_barrier(c);
    for (uint32_t li = 0; li < hp->n_layer; li++)
        if (record_layer(b, &b->layers[li], m) < 0)
            goto fail;
    if (n_out > 0) {
        const struct vkb_weight *wout = b->output_tied ? &b->tok_embd : &b->output;
        if (vkb_op_rmsnorm(c, view(&b->x, 0, hp->n_embd), &b->output_norm,
                           view(&b->hout, 0, hp->n_embd), hp->n_embd, n_out, hp->rms_eps, &b->info,
                           INFO_OUT, err, el) < 0)
            goto fail;
        vkb_rec_barrier(c);
        const struct vkb_weight *out_w[1] = {wout};
        if (quantize_for(b, view(&b->hout, 0, hp->n_embd), hp->n_embd, n_out, out_w, 1) < 0 ||
            vkb_op_matmul(c, wout, view(&b->hout, 0, hp->n_embd), &b->xq,
                          view(&b->logits, 0, hp->n_vocab), n_out, NULL, 0, err, el) < 0)
            goto fail;
        if (!b->logits.map) {
            vkb_rec_barrier(c);
            vkb_rec_copy(c, &b->logits, 0, &b->logits_host, 0,
                         (VkDeviceSize)n_out * hp->n_vocab * sizeof(float));
        }
    }
    if (vkb_rec_submit(c, err, el) < 0)
        return -1;
    if (n_out > 0) {
        const float *src = b->logits.map ? b->logits.map : b->logits_host.map;
        memcpy(out, src, (size_t)n_out * hp->n_vocab * sizeof(float));
    }
    return 0;
fail:
    vkb_rec_submit(c, err + strlen(err), 0); /* end the recording; error already set */
    return -1;
}

/* Checks the batch against the slots' lengths (positions must continue each slot). */
static int check_batch(struct bk_backend *b, const struct bk_batch *batch, uint32_t *len)
{
    memcpy(len, b->slot_len, b->n_slots * sizeof(*len));
    for (uint32_t i = 0; i < batch->n_tokens; i++) {
        int32_t t = batch->tokens[i];
        int32_t s = batch->slot[i];
        int32_t p = batch->pos[i];
        if (t < 0 || (uint32_t)t >= b->hp.n_vocab || s < 0 || (uint32_t)s >= b->n_slots || p < 0 ||
            (uint32_t)p >= b->n_ctx || (uint32_t)p != len[s]) {
            snprintf(b->err, sizeof(b->err),
                     "vulkan: batch token %u: id %d, slot %d, pos %d invalid (slot holds %u of %u)",
                     i, t, s, p, (s >= 0 && (uint32_t)s < b->n_slots) ? len[s] : 0, b->n_ctx);
            return -1;
        }
        len[s]++;
    }
    return 0;
}

static int vk_forward(struct bk_backend *b, const struct bk_batch *batch, float *logits)
{
    uint32_t *len = malloc(b->n_slots * sizeof(*len));
    if (!len)
        return -ENOMEM;
    if (check_batch(b, batch, len) < 0) {
        free(len);
        return -EINVAL;
    }
    uint32_t i0 = 0;
    float *out = logits;
    while (i0 < batch->n_tokens) {
        uint32_t m = 0;
        uint32_t n_out = 0;
        while (i0 + m < batch->n_tokens && m < VKB_MAX_TOKENS) {
            bool want = logits && (!batch->want_logits || batch->want_logits[i0 + m]);
            if (want && n_out == VKB_MAX_LOGITS)
                break;
            n_out += want;
            m++;
        }
        if (run_chunk(b, batch, i0, m, out) < 0) {
            free(len);
            return -EIO;
        }
        /* the chunk's positions are now in the cache */
        for (uint32_t j = 0; j < m; j++)
            b->slot_len[batch->slot[i0 + j]] = (uint32_t)batch->pos[i0 + j] + 1;
        if (out)
            out += (size_t)n_out * b->hp.n_vocab;
        i0 += m;
    }
    free(len);
    return 0;
}

static void vk_kv_truncate(struct bk_backend *b, uint32_t slot, uint32_t from_pos)
{
    if (slot < b->n_slots && from_pos < b->slot_len[slot])
        b->slot_len[slot] = from_pos;
}

static const char *vk_describe(struct bk_backend *b)
{
    return b->c->describe;
}

const struct bk_ops bk_vulkan_ops = {
    .name = "vulkan",
    .init = vk_init,
    .free = vk_free,
    .forward = vk_forward,
    .kv_truncate = vk_kv_truncate,
    .describe = vk_describe,
};
