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
 * A chunk: embedding rows (times gemma's scale), the layers (vkb_layer.c), then the
 * final norm of only the rows whose logits are wanted, the output matrix and gemma2's
 * final soft-cap.
 */
#include "vkb.h"

#include "gguf.h" /* enum ggml_type */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        hp->n_vocab == 0 || hp->n_layer == 0 || hp->n_ff_exp % 32 || hp->n_ff_shexp % 32 ||
        hp->n_expert_used > VKB_MOE_MAX_USED) {
        snprintf(err, err_len,
                 "vulkan: unsupported shape (n_embd %u, n_ff %u, %u heads / %u kv, head_dim %u, "
                 "n_rot %u, experts %u of %u, %u wide)",
                 hp->n_embd, hp->n_ff, hp->n_head, hp->n_head_kv, hp->head_dim, hp->n_rot,
                 hp->n_expert_used, hp->n_expert, hp->n_ff_exp);
        return -1;
    }
    return 0;
}

/* The expert tensors (and qwen2moe's shared expert) of a layer. */
static int experts_init(struct bk_backend *b, struct vkb_layer *l, const struct mdl_layer *m,
                        char *err, size_t err_len)
{
    struct vkb_ctx *c = b->c;
    const struct mdl_hparams *hp = &b->hp;
    uint64_t E = hp->n_embd;
    uint64_t nx = (uint64_t)hp->n_expert * hp->n_ff_exp;
    if (upload_matrix(c, &l->gate_inp, &m->gate_inp, E, hp->n_expert, "ffn_gate_inp", err,
                      err_len) < 0 ||
        upload_matrix(c, &l->gate_exps, &m->gate_exps, E, nx, "ffn_gate_exps", err, err_len) < 0 ||
        upload_matrix(c, &l->up_exps, &m->up_exps, E, nx, "ffn_up_exps", err, err_len) < 0 ||
        upload_matrix(c, &l->down_exps, &m->down_exps, hp->n_ff_exp, E * hp->n_expert,
                      "ffn_down_exps", err, err_len) < 0)
        return -1;
    l->has_shexp = m->gate_shexp.data != NULL;
    uint64_t S = hp->n_ff_shexp;
    if (l->has_shexp &&
        (upload_matrix(c, &l->gate_inp_shexp, &m->gate_inp_shexp, E, 1, "ffn_gate_inp_shexp", err,
                       err_len) < 0 ||
         upload_matrix(c, &l->gate_shexp, &m->gate_shexp, E, S, "ffn_gate_shexp", err, err_len) <
             0 ||
         upload_matrix(c, &l->up_shexp, &m->up_shexp, E, S, "ffn_up_shexp", err, err_len) < 0 ||
         upload_matrix(c, &l->down_shexp, &m->down_shexp, S, E, "ffn_down_shexp", err, err_len) <
             0))
        return -1;
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
        upload_matrix(c, &l->wo, &m->wo, b->q_dim, hp->n_embd, "attn_output", err, err_len) < 0)
        return -1;
    if (hp->n_expert) {
        if (experts_init(b, l, m, err, err_len) < 0)
            return -1;
    } else if (upload_matrix(c, &l->gate, &m->w_gate, hp->n_embd, hp->n_ff, "ffn_gate", err,
                             err_len) < 0 ||
               upload_matrix(c, &l->up, &m->w_up, hp->n_embd, hp->n_ff, "ffn_up", err, err_len) <
                   0 ||
               upload_matrix(c, &l->down, &m->w_down, hp->n_ff, hp->n_embd, "ffn_down", err,
                             err_len) < 0) {
        return -1;
    }
    l->has_bias = m->bq.data != NULL;
    if (l->has_bias && (upload_f32(c, &l->bq, &m->bq, b->q_dim, "attn_q.bias", err, err_len) < 0 ||
                        upload_f32(c, &l->bk, &m->bk, b->kv_dim, "attn_k.bias", err, err_len) < 0 ||
                        upload_f32(c, &l->bv, &m->bv, b->kv_dim, "attn_v.bias", err, err_len) < 0))
        return -1;
    l->has_qk_norm = m->q_norm.data != NULL;
    if (l->has_qk_norm &&
        (upload_f32(c, &l->q_norm, &m->q_norm, hp->head_dim, "attn_q_norm", err, err_len) < 0 ||
         upload_f32(c, &l->k_norm, &m->k_norm, hp->head_dim, "attn_k_norm", err, err_len) < 0))
        return -1;
    l->has_post_norms = m->post_attn_norm.data != NULL;
    if (l->has_post_norms &&
        (upload_f32(c, &l->post_attn_norm, &m->post_attn_norm, hp->n_embd, "post_attention_norm",
                    err, err_len) < 0 ||
         upload_f32(c, &l->post_ffn_norm, &m->post_ffn_norm, hp->n_embd, "post_ffw_norm", err,
                    err_len) < 0))
        return -1;
    l->swa = m->swa;
    VkDeviceSize kv_bytes = (VkDeviceSize)b->n_slots * b->n_ctx * b->kv_dim * 2;
    if (vkb_buf_new(c, &l->kc, kv_bytes, VKB_MEM_DEVICE, err, err_len) < 0 ||
        vkb_buf_new(c, &l->vc, kv_bytes, VKB_MEM_DEVICE, err, err_len) < 0)
        return -1;
    /* zeroed so that no NaN bit pattern can ever be read, even by a masked lane */
    if (vkb_buf_zero(c, &l->kc, err, err_len) < 0 || vkb_buf_zero(c, &l->vc, err, err_len) < 0)
        return -1;
    return 0;
}

static uint32_t max_u32(uint32_t a, uint32_t b)
{
    return a > b ? a : b;
}

/* A RoPE table [n_ctx][n_rot/2] (cos, sin) uploaded into buf. */
static int rope_init(struct bk_backend *b, struct vkb_buf *buf, const struct mdl_rope *r,
                     const float *factors, char *err, size_t err_len)
{
    float *tab = vkb_rope_table(b->n_ctx, b->hp.n_rot, r, factors);
    if (!tab) {
        snprintf(err, err_len, "vulkan: out of memory for the rope table");
        return -1;
    }
    size_t tab_bytes = (size_t)b->n_ctx * (b->hp.n_rot / 2) * 2 * sizeof(float);
    int rc = vkb_buf_new(b->c, buf, tab_bytes, VKB_MEM_DEVICE, err, err_len);
    if (rc == 0)
        rc = vkb_buf_upload(b->c, buf, 0, tab, tab_bytes, err, err_len);
    free(tab);
    return rc;
}

/* The experts' scratch: router logits, choices, weights, outputs. */
static int experts_scratch(struct bk_backend *b, char *err, size_t err_len)
{
    struct vkb_ctx *c = b->c;
    const struct mdl_hparams *hp = &b->hp;
    const VkDeviceSize T = VKB_MAX_TOKENS;
    const VkDeviceSize k = hp->n_expert_used;
    if (hp->n_expert == 0)
        return 0;
    if (vkb_buf_new(c, &b->router, T * hp->n_expert * 4, VKB_MEM_DEVICE, err, err_len) < 0 ||
        vkb_buf_new(c, &b->moe_ids, T * k * 4, VKB_MEM_DEVICE, err, err_len) < 0 ||
        vkb_buf_new(c, &b->moe_w, T * k * 4, VKB_MEM_DEVICE, err, err_len) < 0 ||
        vkb_buf_new(c, &b->moe_out, T * k * hp->n_embd * 4, VKB_MEM_DEVICE, err, err_len) < 0)
        return -1;
    if (hp->n_ff_shexp &&
        (vkb_buf_new(c, &b->sh_out, T * hp->n_embd * 4, VKB_MEM_DEVICE, err, err_len) < 0 ||
         vkb_buf_new(c, &b->sh_gate, T * 4, VKB_MEM_DEVICE, err, err_len) < 0))
        return -1;
    return 0;
}

static int activations_init(struct bk_backend *b, const float *factors, char *err,
                            size_t err_len)
{
    struct vkb_ctx *c = b->c;
    const struct mdl_hparams *hp = &b->hp;
    const VkDeviceSize T = VKB_MAX_TOKENS;
    const VkDeviceSize L = VKB_MAX_LOGITS;
    const VkDeviceSize f = sizeof(float);
    if (vkb_buf_new(c, &b->info, VKB_INFO_INTS * sizeof(int32_t), VKB_MEM_HOST, err, err_len) < 0 ||
        vkb_buf_new(c, &b->x, T * hp->n_embd * f, VKB_MEM_DEVICE, err, err_len) < 0 ||
        vkb_buf_new(c, &b->h, T * hp->n_embd * f, VKB_MEM_DEVICE, err, err_len) < 0 ||
        vkb_buf_new(c, &b->qkv, T * b->qkv_dim * f, VKB_MEM_DEVICE, err, err_len) < 0 ||
        vkb_buf_new(c, &b->att, T * b->q_dim * f, VKB_MEM_DEVICE, err, err_len) < 0 ||
        vkb_buf_new(c, &b->ff, T * b->ff_cols * f, VKB_MEM_DEVICE, err, err_len) < 0 ||
        vkb_buf_new(c, &b->hout, L * hp->n_embd * f, VKB_MEM_DEVICE, err, err_len) < 0 ||
        vkb_buf_new(c, &b->logits, L * hp->n_vocab * f, VKB_MEM_DEVICE, err, err_len) < 0)
        return -1;
    /* widest quantized mat-mul input per token (the experts' pairs count k rows each) */
    uint32_t kmax = max_u32(max_u32(hp->n_embd, b->q_dim), b->ff_cols / 2);
    if (vkb_buf_new(c, &b->xq_q, T * kmax, VKB_MEM_DEVICE, err, err_len) < 0 ||
        vkb_buf_new(c, &b->xq_s, T * (kmax / 32) * f, VKB_MEM_DEVICE, err, err_len) < 0)
        return -1;
    b->xq.q = &b->xq_q;
    b->xq.s = &b->xq_s;
    if (!b->logits.map &&
        vkb_buf_new(c, &b->logits_host, L * hp->n_vocab * f, VKB_MEM_HOST, err, err_len) < 0)
        return -1;
    if (experts_scratch(b, err, err_len) < 0 ||
        rope_init(b, &b->rope_tab, &hp->rope, factors, err, err_len) < 0)
        return -1;
    b->rope_swa_own = memcmp(&hp->rope, &hp->rope_swa, sizeof(hp->rope)) != 0;
    if (b->rope_swa_own && rope_init(b, &b->rope_swa, &hp->rope_swa, factors, err, err_len) < 0)
        return -1;
    return 0;
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
    const struct mdl_hparams *hp = &w->hp;
    b->hp = *hp;
    b->n_slots = p->n_slots;
    b->n_ctx = p->n_ctx;
    b->q_dim = hp->n_head * hp->head_dim;
    b->kv_dim = hp->n_head_kv * hp->head_dim;
    b->qkv_dim = b->q_dim + 2 * b->kv_dim;
    b->ff_cols = 2 * max_u32(hp->n_ff, max_u32(hp->n_expert_used * hp->n_ff_exp, hp->n_ff_shexp));
    b->slot_len = calloc(p->n_slots, sizeof(*b->slot_len));
    b->layers = calloc(hp->n_layer, sizeof(*b->layers));
    if (!b->slot_len || !b->layers) {
        snprintf(err, err_len, "vulkan: out of memory");
        goto fail;
    }
    if (vkb_ctx_open(&b->c, p->device, err, err_len) < 0)
        goto fail;
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
    if (activations_init(b, bk_rope_factors(w, p->n_ctx), err, err_len) < 0)
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
            struct vkb_weight *ws[] = {&l->wq,        &l->wk,         &l->wv,
                                       &l->wo,        &l->gate,       &l->up,
                                       &l->down,      &l->gate_inp,   &l->gate_exps,
                                       &l->up_exps,   &l->down_exps,  &l->gate_shexp,
                                       &l->up_shexp,  &l->down_shexp, &l->gate_inp_shexp};
            for (size_t j = 0; j < sizeof(ws) / sizeof(ws[0]); j++)
                vkb_weight_free(c, ws[j]);
            struct vkb_buf *bs[] = {&l->attn_norm, &l->ffn_norm,       &l->bq,
                                    &l->bk,        &l->bv,             &l->q_norm,
                                    &l->k_norm,    &l->post_attn_norm, &l->post_ffn_norm,
                                    &l->kc,        &l->vc};
            for (size_t j = 0; j < sizeof(bs) / sizeof(bs[0]); j++)
                vkb_buf_free(c, bs[j]);
        }
        struct vkb_buf *act[] = {&b->rope_tab, &b->rope_swa, &b->info,        &b->x,
                                 &b->h,        &b->qkv,      &b->att,         &b->ff,
                                 &b->hout,     &b->logits,   &b->logits_host, &b->xq_q,
                                 &b->xq_s,     &b->router,   &b->moe_ids,     &b->moe_w,
                                 &b->moe_out,  &b->sh_out,   &b->sh_gate};
        for (size_t j = 0; j < sizeof(act) / sizeof(act[0]); j++)
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

/* The final norm of the n_out wanted rows, the output matrix and the final soft-cap. */
static int record_output(struct bk_backend *b, uint32_t n_out)
{
    struct vkb_ctx *c = b->c;
    const struct mdl_hparams *hp = &b->hp;
    char *err = b->err;
    const size_t el = sizeof(b->err);
    const struct vkb_weight *wout = b->output_tied ? &b->tok_embd : &b->output;
    struct vkb_view hout = view(&b->hout, 0, hp->n_embd);
    struct vkb_view logits = view(&b->logits, 0, hp->n_vocab);
    if (vkb_op_rmsnorm(c, view(&b->x, 0, hp->n_embd), &b->output_norm, hout, hp->n_embd, n_out,
                       hp->rms_eps, &b->info, VKB_INFO_OUT, err, el) < 0)
        return -1;
    vkb_rec_barrier(c);
    if (vkb_type_is_quant(wout->type)) {
        bool k_quant = hp->n_embd % 256 == 0 && vkb_type_is_kquant(wout->type);
        if (vkb_op_quant_q8(c, hout, hp->n_embd, n_out, k_quant, &b->xq, err, el) < 0)
            return -1;
        vkb_rec_barrier(c);
    }
    if (vkb_op_matmul(c, wout, hout, &b->xq, logits, n_out, NULL, 0, err, el) < 0)
        return -1;
    if (hp->final_softcap > 0.0f) {
        vkb_rec_barrier(c);
        if (vkb_op_scale(c, logits, hp->n_vocab, n_out, 1.0f, hp->final_softcap, err, el) < 0)
            return -1;
    }
    if (!b->logits.map) {
        vkb_rec_barrier(c);
        vkb_rec_copy(c, &b->logits, 0, &b->logits_host, 0,
                     (VkDeviceSize)n_out * hp->n_vocab * sizeof(float));
    }
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
        info[VKB_INFO_TOK + j] = batch->tokens[i0 + j];
        info[VKB_INFO_POS + j] = batch->pos[i0 + j];
        info[VKB_INFO_SLOT + j] = batch->slot[i0 + j];
        if (out && (!batch->want_logits || batch->want_logits[i0 + j]))
            info[VKB_INFO_OUT + n_out++] = (int32_t)j;
    }
    char *err = b->err;
    const size_t el = sizeof(b->err);
    if (vkb_rec_begin(c, err, el) < 0)
        return -1;
    if (vkb_op_get_rows(c, &b->tok_embd, &b->info, VKB_INFO_TOK, view(&b->x, 0, hp->n_embd), m,
                        err, el) < 0)
        goto fail;
    vkb_rec_barrier(c);
    if (hp->embd_scale != 1.0f) {
        if (vkb_op_scale(c, view(&b->x, 0, hp->n_embd), hp->n_embd, m, hp->embd_scale, 0.0f, err,
                         el) < 0)
            goto fail;
        vkb_rec_barrier(c);
    }
    for (uint32_t li = 0; li < hp->n_layer; li++)
        if (vkb_record_layer(b, &b->layers[li], m) < 0)
            goto fail;
    if (n_out > 0 && record_output(b, n_out) < 0)
        goto fail;
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
