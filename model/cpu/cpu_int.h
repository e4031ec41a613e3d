/* cpu_int.h - the CPU backend's state and the stage helpers its files share (private to
 * model/cpu/: cpu_backend.c runs the layers, cpu_moe.c the mixture-of-experts FFN).
 *
 * Only the engine thread calls in; the stages hand work to the pool (cpu_pool.h).
 */
#ifndef CHATD_CPU_INT_H
#define CHATD_CPU_INT_H

#include "backend.h"
#include "cpu_ops.h"
#include "cpu_pool.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CPU_CHUNK 512

/* Activation formats a mat-mul may need besides F32. */
enum { ACT_F16, ACT_Q8_0, ACT_Q8_K, ACT_Q8_0X4A, ACT_Q8_0X4B, ACT_N };

struct bk_backend {
    const struct mdl_weights *w; /* == &wc when the weights were copied */
    struct mdl_weights wc;       /* the copy's tensors point into `blob` */
    void *blob;                  /* weight copy in (huge-page backed) anonymous memory */
    size_t blob_bytes;
    struct bk_params p;
    struct cpu_pool *pool;
    uint32_t chunk;              /* tokens per chunk: CPU_CHUNK, fewer with experts */
    uint32_t kv_dim;             /* n_head_kv * head_dim */
    uint16_t *k_cache;           /* [n_slots][n_layer][n_ctx][kv_dim] */
    uint16_t *v_cache;           /* same */
    uint32_t *slot_len;          /* [n_slots] */
    uint32_t *slot_next;         /* [n_slots] scratch for batch validation */
    uint32_t max_cols;           /* widest activation row */
    const float *rope_factors;   /* [n_rot/2] or NULL (bk_rope_factors) */
    bool rope_swa_own;           /* sliding-window layers have a RoPE table of their own */
    /* per-chunk scratch, `chunk` tokens */
    float *x;                    /* [chunk][n_embd] residual stream */
    float *xb;                   /* [chunk][max_cols] normed input / attention output */
    float *xb2;                  /* [chunk][n_embd] */
    float *q;                    /* [chunk][n_head*head_dim] */
    float *k;                    /* [chunk][kv_dim] */
    float *v;                    /* [chunk][kv_dim] */
    float *hb;                   /* [chunk][ff_cols] FFN gate (experts: per routed pair) */
    float *hb2;                  /* [chunk][ff_cols] FFN up */
    uint32_t ff_cols;            /* max(n_ff, n_expert_used * n_ff_exp, n_ff_shexp) */
    float *rope;                 /* [chunk][n_rot] cos/sin pairs */
    float *rope_swa;             /* [chunk][n_rot], when rope_swa_own */
    void *act[ACT_N];            /* [act_bytes] quantised activations */
    size_t act_bytes;
    float *scores;               /* [n_threads][CPU_ATTN_MAX_Q][n_ctx] */
    uint16_t *q16;               /* [n_threads][CPU_ATTN_MAX_Q][head_dim] */
    /* mixture of experts (cpu_moe.c), k = n_expert_used */
    float *router;               /* [chunk][n_expert] router probabilities */
    int32_t *exp_id;             /* [chunk][k] chosen experts, best first */
    float *exp_w;                /* [chunk][k] their weights */
    int32_t *pair_tok;           /* [chunk*k] token of each routed pair, grouped by expert */
    int32_t *pair_at;            /* [chunk][k] where (token, j) lies in that order */
    uint32_t *exp_start;         /* [n_expert+1] first pair of each expert */
    uint32_t *exp_fill;          /* [n_expert] scratch for the grouping */
    void *moe_act;               /* [chunk*k] gathered activation rows */
    size_t moe_act_stride;
    struct cpu_mm *moe_jobs;     /* [2*n_expert] */
    struct mdl_tensor *moe_slabs; /* [2*n_expert] the experts' matrices of those jobs */
    float *moe_out;              /* [chunk*k][n_embd] each pair's expert output */
    float *shexp_out;            /* [chunk][n_embd] shared expert output */
    float *shexp_gate;           /* [chunk] its gate logit */
    char desc[160];
};

/* A token-parallel stage (each pool thread a contiguous range of tokens). */
struct tok_task {
    struct bk_backend *b;
    int n_tok;
    const float *add;  /* norm: residual added into x first, or NULL */
    const float *norm; /* norm: weights */
    uint32_t act_type; /* the output's quantised format, if act_index(act_type) >= 0 */
    const int32_t *pos, *slot;
    uint32_t layer;
    float *src;        /* quantise / post-norm / FFN activation: rows of n_cols floats */
    const float *src2; /* FFN activation: the up rows */
    int64_t n_cols;
};

int cpu_act_index(uint32_t act_type);
void cpu_run_tokens(struct bk_backend *b, cpu_task_fn fn, struct tok_task *t);
/* A stage wrote a new input for the next mat-muls: `have` holds only the activation
 * format it quantised that input into. */
void cpu_fresh_input(bool have[ACT_N], uint32_t act_type);
/* A mat-mul job: w times the rows x[n_tok][w->ne[0]], quantised for w's type unless
 * `have` says this input already is; bias may be NULL or a tensor without data. */
void cpu_set_mm(struct cpu_mm *m, struct bk_backend *b, const struct mdl_tensor *w,
                const float *x, int n_tok, bool have[ACT_N], const struct mdl_tensor *bias,
                float *out, size_t out_stride);
/* src[i] = act(src[i]) * src2[i] for n_tok rows of n_cols (SiLU or GELU per the model),
 * each row then quantised to act_type. */
void cpu_ffn_act(struct bk_backend *b, float *src, const float *src2, int n_tok, int64_t n_cols,
                 uint32_t act_type);

/* The routed experts (and qwen2moe's shared expert) of layer L for the n tokens whose
 * normed input is in xb (quantised as `have` says); the FFN output goes to xb2. */
void cpu_moe_ffn(struct bk_backend *b, const struct mdl_layer *L, int n, bool have[ACT_N]);

#endif
