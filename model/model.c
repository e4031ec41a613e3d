/* model.c - the model facade: file + weights + tokenizer metadata + backend in one
 * handle (see model.h). Opening is all-or-nothing: any failure undoes what was done.
 */
#include "model.h"

#include "backend.h"
#include "loader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


struct mdl_model {
    struct gguf_file *file;
    struct mdl_weights w;
    struct tok_vocab *vocab;
    char *chat_template;
    const struct bk_ops *ops;
    struct bk_backend *bk;
    uint32_t n_ctx;
};

const char *mdl_strerror(int code)
{
    switch (code) {
#define MDL_ERR_CASE_(name, c, text)                                                               \
    case c:                                                                                        \
        return text;
        MDL_ERRORS(MDL_ERR_CASE_)
#undef MDL_ERR_CASE_
    case 0:
        return "ok";
    default:
        return "unknown error";
    }
}

void mdl_default_params(struct mdl_params *p)
{
    memset(p, 0, sizeof(*p));
    p->backend = "cpu";
    p->n_slots = 1;
    p->device = -1;
}

const struct bk_ops *mdl_find_backend(const char *name)
{
    if (!name || strcmp(name, "cpu") == 0)
        return &bk_cpu_ops;
    if (strcmp(name, "vulkan") == 0)
        return &bk_vulkan_ops;
    return NULL;
}

int mdl_open(struct mdl_model **out, const char *path, const struct mdl_params *p, char *err,
             size_t err_len)
{
    struct mdl_params def;
    *out = NULL;
    if (!p) {
        mdl_default_params(&def);
        p = &def;
    }
    struct mdl_model *m = calloc(1, sizeof(*m));
    if (!m) {
        snprintf(err, err_len, "out of memory");
        return MDL_ENOMEM;
    }
    m->ops = mdl_find_backend(p->backend);
    if (!m->ops) {
        snprintf(err, err_len, "backend '%s' is not available", p->backend);
        free(m);
        return MDL_EINVAL;
    }
    int rc = gguf_open(&m->file, path, err, err_len);
    if (rc) {
        rc = rc == GGUF_ENOMEM ? MDL_ENOMEM : rc == GGUF_EIO ? MDL_EIO : MDL_EFORMAT;
        goto fail_file;
    }
    rc = mdl_load_weights(&m->w, m->file, err, err_len);
    if (rc)
        goto fail_weights;
    if (tok_load(&m->vocab, m->file, err, err_len) != 0) {
        rc = MDL_EFORMAT;
        goto fail_template;
    }
    if ((uint32_t)tok_n_vocab(m->vocab) != m->w.hp.n_vocab) {
        snprintf(err, err_len, "tokenizer has %d tokens but token_embd.weight has %u rows",
                 tok_n_vocab(m->vocab), m->w.hp.n_vocab);
        rc = MDL_EFORMAT;
        goto fail_template;
    }
    const struct gguf_kv *kv = gguf_find_kv(m->file, "tokenizer.chat_template");
    if (kv && (kv->type != GGUF_TYPE_STRING ||
               gguf_get_str(m->file, "tokenizer.chat_template", &m->chat_template) != 0)) {
        snprintf(err, err_len, "key tokenizer.chat_template must be a string without NUL bytes");
        rc = MDL_EFORMAT;
        goto fail_template;
    }
    struct bk_params bp = {0};
    bp.n_slots = p->n_slots ? p->n_slots : 1;
    bp.n_ctx = p->n_ctx;
    if (bp.n_ctx == 0)
        bp.n_ctx = m->w.hp.n_ctx_train < 4096 ? m->w.hp.n_ctx_train : 4096;
    bp.n_threads = p->n_threads;
    bp.device = p->device;
    m->n_ctx = bp.n_ctx;
    rc = m->ops->init(&m->bk, &m->w, &bp, err, err_len);
    if (rc) {
        rc = MDL_EBACKEND;
        goto fail_template;
    }
    *out = m;
    return 0;

fail_template:
    free(m->chat_template);
    tok_free(m->vocab);
    mdl_weights_fini(&m->w);
fail_weights:
    gguf_close(m->file);
fail_file:
    free(m);
    return rc;
}

void mdl_close(struct mdl_model *m)
{
    if (!m)
        return;
    if (m->bk)
        m->ops->free(m->bk);
    free(m->chat_template);
    tok_free(m->vocab);
    mdl_weights_fini(&m->w);
    gguf_close(m->file);
    free(m);
}

const struct tok_vocab *mdl_vocab(const struct mdl_model *m)
{
    return m->vocab;
}

const struct mdl_hparams *mdl_hparams(const struct mdl_model *m)
{
    return &m->w.hp;
}

uint32_t mdl_n_vocab(const struct mdl_model *m)
{
    return m->w.hp.n_vocab;
}

uint32_t mdl_n_ctx(const struct mdl_model *m)
{
    return m->n_ctx;
}

const char *mdl_arch_name(const struct mdl_model *m)
{
    return mdl_arch_str(m->w.hp.arch);
}

uint64_t mdl_n_params(const struct mdl_model *m)
{
    return mdl_weights_n_params(&m->w);
}

const char *mdl_weight_type(const struct mdl_model *m)
{
    return gguf_type_name(m->w.layers[0].wq.type);
}

uint64_t mdl_file_size(const struct mdl_model *m)
{
    return gguf_file_size(m->file);
}

const char *mdl_chat_template(const struct mdl_model *m)
{
    return m->chat_template;
}

const struct gguf_file *mdl_gguf(const struct mdl_model *m)
{
    return m->file;
}

const struct mdl_weights *mdl_weights(const struct mdl_model *m)
{
    return &m->w;
}

const struct bk_ops *mdl_backend_ops(const struct mdl_model *m)
{
    return m->ops;
}

struct bk_backend *mdl_backend(const struct mdl_model *m)
{
    return m->bk;
}

const char *mdl_backend_name(const struct mdl_model *m)
{
    return m->ops->name;
}

const char *mdl_backend_describe(const struct mdl_model *m)
{
    return m->ops->describe(m->bk);
}

static bool vocab_is_eog(const void *ctx, int32_t id)
{
    return tok_is_eog(ctx, id);
}

/* Whether two vocabularies give every id the same text (a draft must speak the target's
 * tokens). */
static bool same_vocab(const struct tok_vocab *a, const struct tok_vocab *b)
{
    int32_t n = tok_n_vocab(a);
    if (n != tok_n_vocab(b))
        return false;
    for (int32_t i = 0; i < n; i++) {
        size_t la, lb;
        const char *ta = tok_text(a, i, &la), *tb = tok_text(b, i, &lb);
        if (la != lb || memcmp(ta, tb, la) != 0)
            return false;
    }
    return true;
}

struct engine *mdl_engine_start(struct mdl_model *m, struct mdl_model *draft,
                                const struct eng_params *p, char *err, size_t err_len)
{
    struct eng_params ep = *p;
    ep.is_eog = vocab_is_eog;
    ep.eog_ctx = m->vocab;
    if (draft) {
        if (!same_vocab(m->vocab, draft->vocab)) {
            snprintf(err, err_len, "the draft model's vocabulary is not the model's");
            return NULL;
        }
        ep.spec = ENG_SPEC_DRAFT;
        ep.draft_ops = draft->ops;
        ep.draft_bk = draft->bk;
    }
    return eng_start(m->ops, m->bk, m->w.hp.n_vocab, &ep, err, err_len);
}

int mdl_forward(struct mdl_model *m, const struct bk_batch *batch, float *logits)
{
    int rc = m->ops->forward(m->bk, batch, logits);
    return rc ? MDL_EINVAL : 0;
}

void mdl_kv_truncate(struct mdl_model *m, uint32_t slot, uint32_t from_pos)
{
    m->ops->kv_truncate(m->bk, slot, from_pos);
}
