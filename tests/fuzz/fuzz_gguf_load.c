/* fuzz_gguf_load.c - libFuzzer target: bytes as a model file through the whole load
 * validation: gguf_open_buffer, then the weight loader (R11, R14 shapes, R17
 * hyperparameters, tensor byte ranges) and the tokenizer loader (R11, R12).
 * Oracle: no sanitizer report; a loaded model's tensors lie inside the buffer. */
#include "fuzz.h"
#include "gguf.h"
#include "loader.h"
#include "tokenizer.h"

#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the loader casts tensor data to float; give it malloc alignment like mmap's */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    struct gguf_file *f = NULL;
    char err[256];
    if (gguf_open_buffer(&f, buf, size, err, sizeof(err)) != 0) {
        free(buf);
        return 0;
    }
    struct mdl_weights w;
    err[0] = 0;
    int rc = mdl_load_weights(&w, f, err, sizeof(err));
    if (rc == 0) {
        const struct mdl_hparams *hp = &w.hp;
        FUZZ_CHECK(hp->n_layer >= 1 && hp->n_layer <= 1024);
        FUZZ_CHECK(hp->n_head >= 1 && hp->n_head % hp->n_head_kv == 0);
        FUZZ_CHECK(hp->head_dim >= 2 && hp->n_rot <= hp->head_dim);
        FUZZ_CHECK(hp->n_expert_used <= hp->n_expert);
        FUZZ_CHECK(hp->n_ctx_train >= 1 && hp->n_ctx_train <= (1u << 20));
        FUZZ_CHECK(w.layers != NULL);
        const struct mdl_tensor *ts[] = {&w.tok_embd, &w.output_norm, &w.output};
        for (size_t i = 0; i < 3; i++) {
            const uint8_t *p = ts[i]->data;
            FUZZ_CHECK(p >= buf && ts[i]->nbytes <= size && p - buf <= (ptrdiff_t)(size - ts[i]->nbytes));
        }
        for (uint32_t l = 0; l < hp->n_layer; l++) {
            const struct mdl_layer *L = &w.layers[l];
#define FUZZ_IN_FILE_(t)                                                                           \
    FUZZ_CHECK(!L->t.data || ((const uint8_t *)L->t.data >= buf && L->t.nbytes <= size &&         \
                              (const uint8_t *)L->t.data - buf <= (ptrdiff_t)(size - L->t.nbytes)));
            MDL_LAYER_TENSORS(FUZZ_IN_FILE_)
#undef FUZZ_IN_FILE_
        }
        (void)mdl_weights_n_params(&w);
        mdl_weights_fini(&w);
    } else {
        FUZZ_CHECK(rc < 0 && err[0] != 0);
    }
    struct tok_vocab *v = (struct tok_vocab *)1;
    err[0] = 0;
    rc = tok_load(&v, f, err, sizeof(err));
    if (rc == 0) {
        FUZZ_CHECK(v != NULL);
        int32_t n = tok_n_vocab(v);
        FUZZ_CHECK(n > 0);
        FUZZ_CHECK(tok_bos(v) < n && tok_eos(v) < n && tok_unk(v) < n && tok_pad(v) < n);
        /* a short encode/decode through the loaded vocabulary */
        static const char text[] = "Hello world <|im_start|> \xC3\xA9\xF0\x9F\x98\x80 123";
        int32_t *ids = NULL;
        size_t n_ids = 0;
        if (tok_encode(v, text, sizeof(text) - 1, true, true, &ids, &n_ids) == 0) {
            for (size_t i = 0; i < n_ids; i++)
                FUZZ_CHECK(ids[i] >= 0 && ids[i] < n);
            char *out = NULL;
            size_t out_len = 0;
            if (tok_decode(v, ids, n_ids, TOK_DECODE_SPECIAL, &out, &out_len) == 0)
                free(out);
        }
        free(ids);
        tok_free(v);
    } else {
        FUZZ_CHECK(rc < 0 && v == NULL && err[0] != 0);
    }
    gguf_close(f);
    free(buf);
    return 0;
}
