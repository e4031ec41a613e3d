/* gen_fixture.h - small generated models for the backend tests: writes a model with
 * mdl_gen_write into a temporary file and loads its weights (the file stays mapped
 * until gen_fixture_close). Header-only. */
#ifndef CHATD_TEST_GEN_FIXTURE_H
#define CHATD_TEST_GEN_FIXTURE_H

#include "backend.h"
#include "gguf.h"
#include "loader.h"
#include "test.h"

#include <unistd.h>

struct gen_fixture {
    struct gguf_file *f;
    struct mdl_weights w;
    char path[128];
};

/* A small F32 model of `arch` (64 wide, 4/2 heads, ffn 128, ctx 512, llama-spm vocab):
 * tune() may change the parameters. Returns 0, or -1 with the reason on stderr. */
static inline int gen_fixture_open(struct gen_fixture *fx, enum mdl_arch arch,
                                   void (*tune)(struct mdl_gen_params *p))
{
    struct mdl_gen_params p;
    char err[256];
    char vocab[4096];
    static int n;
    memset(fx, 0, sizeof(*fx));
    mdl_gen_default_params(&p);
    p.arch = arch;
    p.n_ff = 128;
    if (arch == MDL_ARCH_QWEN2MOE) {
        p.n_expert = 4;
        p.n_expert_used = 2;
    }
    if (tune)
        tune(&p);
    snprintf(vocab, sizeof(vocab), "%s", test_fixture("tokenizer/ggml-vocab-llama-spm.gguf"));
    snprintf(fx->path, sizeof(fx->path), "/tmp/chatd-test-genfix-%d-%d.gguf", (int)getpid(), n++);
    if (mdl_gen_write(&p, vocab, fx->path, err, sizeof(err)) != 0 ||
        gguf_open(&fx->f, fx->path, err, sizeof(err)) != 0 ||
        mdl_load_weights(&fx->w, fx->f, err, sizeof(err)) != 0) {
        fprintf(stderr, "  generated %s model: %s\n", mdl_arch_str(arch), err);
        gguf_close(fx->f);
        unlink(fx->path);
        fx->f = NULL;
        return -1;
    }
    return 0;
}

static inline void gen_fixture_close(struct gen_fixture *fx)
{
    if (fx->f) {
        mdl_weights_fini(&fx->w);
        gguf_close(fx->f);
        unlink(fx->path);
    }
    fx->f = NULL;
}

/* Prefills tokens 0..n-1 of `toks` into slot 0 (logits of every position into out,
 * n rows), then decodes toks[n .. n+steps-1] one at a time (one row each after the n).
 * Returns 0 or the forward's error. */
static inline int gen_fixture_run(const struct bk_ops *ops, struct bk_backend *b,
                                  const int32_t *toks, int n, int steps, uint32_t n_vocab,
                                  float *out)
{
    int32_t pos[512];
    int32_t slot[512] = {0};
    if (n + steps > 512)
        return -1;
    for (int i = 0; i < n + steps; i++)
        pos[i] = i;
    ops->kv_truncate(b, 0, 0);
    struct bk_batch batch = {(uint32_t)n, toks, pos, slot, NULL};
    int rc = ops->forward(b, &batch, out);
    for (int s = 0; s < steps && rc == 0; s++) {
        struct bk_batch one = {1, toks + n + s, pos + n + s, slot, NULL};
        rc = ops->forward(b, &one, out + (size_t)(n + s) * n_vocab);
    }
    return rc;
}

/* How many experts of layer l a one-token forward (BOS at position 0) reads: each
 * expert's three matrices in turn are replaced by NaNs in a copy of the weights (F32
 * models); an expert that is read turns the logits into NaN, one that is not leaves
 * them as they were. Returns the count, or -1 on a failure. */
static inline int gen_fixture_experts_read(const struct bk_ops *ops, struct mdl_weights *w,
                                           uint32_t l)
{
    struct mdl_layer *L = &w->layers[l];
    struct mdl_tensor *ts[3] = {&L->gate_exps, &L->up_exps, &L->down_exps};
    const void *orig[3];
    float *copy[3] = {NULL, NULL, NULL};
    float *logits = malloc(w->hp.n_vocab * sizeof(float));
    int n_read = 0;
    for (int i = 0; i < 3; i++) {
        orig[i] = ts[i]->data;
        copy[i] = malloc(ts[i]->nbytes);
        if (ts[i]->type != GGML_TYPE_F32 || !copy[i])
            n_read = -1;
    }
    for (uint32_t e = 0; n_read >= 0 && e < w->hp.n_expert; e++) {
        for (int i = 0; i < 3; i++) {
            size_t slab = ts[i]->nbytes / w->hp.n_expert;
            memcpy(copy[i], orig[i], ts[i]->nbytes);
            for (size_t j = 0; j < slab / sizeof(float); j++)
                copy[i][e * slab / sizeof(float) + j] = NAN;
            ts[i]->data = copy[i];
        }
        struct bk_params p = {.n_slots = 1, .n_ctx = 8, .n_threads = 2, .device = -1};
        struct bk_backend *b = NULL;
        char err[256];
        int32_t tok = 1, pos = 0, slot = 0;
        struct bk_batch batch = {1, &tok, &pos, &slot, NULL};
        if (ops->init(&b, w, &p, err, sizeof(err)) != 0 || ops->forward(b, &batch, logits) != 0) {
            fprintf(stderr, "  %s: %s\n", ops->name, err);
            n_read = -1;
        } else {
            n_read += isnan(logits[0]) ? 1 : 0;
        }
        if (b)
            ops->free(b);
        for (int i = 0; i < 3; i++)
            ts[i]->data = orig[i];
    }
    for (int i = 0; i < 3; i++)
        free(copy[i]);
    free(logits);
    return n_read;
}

#endif
