/* fuzz_gguf_parse.c - libFuzzer target: arbitrary bytes as a GGUF buffer through
 * gguf_open_buffer. Oracle: either an error (no handle, a message) or a handle whose
 * every key, value, array element and tensor byte range can be read without leaving
 * the buffer (ASan catches any read past it). */
#include "fuzz.h"
#include "gguf.h"

#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static const uint8_t *buf_lo, *buf_hi;
static volatile uint8_t fuzz_gguf_sink; /* keeps the touches below from being optimized away */

static void in_buf(const void *p, uint64_t len)
{
    const uint8_t *b = p;
    FUZZ_CHECK(len == 0 || (b >= buf_lo && b <= buf_hi && len <= (uint64_t)(buf_hi - b)));
}

static void touch(const void *p, uint64_t len)
{
    in_buf(p, len);
    if (len) {
        fuzz_gguf_sink ^= ((const uint8_t *)p)[0];
        fuzz_gguf_sink ^= ((const uint8_t *)p)[len - 1];
    }
}

static void walk_kv(const struct gguf_file *f, const struct gguf_kv *kv)
{
    touch(kv->key.ptr, kv->key.len);
    FUZZ_CHECK(kv->key.len > 0);
    struct gguf_str s;
    if (kv->type == GGUF_TYPE_STRING) {
        FUZZ_CHECK(gguf_kv_str(kv, &s) == 0);
        touch(s.ptr, s.len);
        return;
    }
    if (kv->type != GGUF_TYPE_ARRAY) {
        touch(kv->data, gguf_type_size(kv->type));
        return;
    }
    /* the first and last few elements of every array, through each accessor */
    for (uint64_t k = 0; k < kv->arr_n; k++) {
        if (k == 4 && kv->arr_n > 8)
            k = kv->arr_n - 4;
        float fv;
        int32_t iv;
        if (gguf_kv_arr_str(f, kv, k, &s) == 0)
            touch(s.ptr, s.len);
        (void)gguf_kv_arr_f32(kv, k, &fv);
        (void)gguf_kv_arr_i32(kv, k, &iv);
    }
    /* one past the end is an error, never a read */
    float fv;
    int32_t iv;
    FUZZ_CHECK(gguf_kv_arr_str(f, kv, kv->arr_n, &s) != 0);
    FUZZ_CHECK(gguf_kv_arr_f32(kv, kv->arr_n, &fv) != 0);
    FUZZ_CHECK(gguf_kv_arr_i32(kv, kv->arr_n, &iv) != 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gguf_file *f = (struct gguf_file *)1;
    char err[256];
    err[0] = 0;
    int rc = gguf_open_buffer(&f, data, size, err, sizeof(err));
    if (rc != 0) {
        FUZZ_CHECK(rc < 0 && f == NULL && err[0] != 0);
        FUZZ_CHECK(strcmp(gguf_strerror(rc), "unknown error") != 0);
        return 0;
    }
    FUZZ_CHECK(f != NULL);
    buf_lo = data;
    buf_hi = data + size;
    FUZZ_CHECK(gguf_version(f) == 2 || gguf_version(f) == 3);
    FUZZ_CHECK(gguf_file_size(f) == size);
    uint32_t al = gguf_alignment(f);
    FUZZ_CHECK(al >= 8 && (al & (al - 1)) == 0);
    FUZZ_CHECK(gguf_data_offset(f) <= size);
    for (uint64_t i = 0; i < gguf_n_kv(f); i++) {
        const struct gguf_kv *kv = gguf_kv_at(f, i);
        FUZZ_CHECK(kv != NULL);
        walk_kv(f, kv);
    }
    FUZZ_CHECK(gguf_kv_at(f, gguf_n_kv(f)) == NULL);
    uint64_t end_prev = 0;
    (void)end_prev;
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(f, i);
        FUZZ_CHECK(t != NULL);
        touch(t->name.ptr, t->name.len);
        FUZZ_CHECK(t->n_dims >= 1 && t->n_dims <= 4);
        touch(t->data, t->nbytes);
    }
    FUZZ_CHECK(gguf_tensor_at(f, gguf_n_tensors(f)) == NULL);
    /* typed getters by key on the names the loader reads */
    static const char *const keys[] = {"general.architecture", "general.alignment",
                                       "llama.block_count", "tokenizer.ggml.tokens",
                                       "tokenizer.ggml.scores", "tokenizer.chat_template"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        uint32_t u;
        int64_t i64;
        float fl;
        bool b;
        char *str = NULL;
        uint32_t et;
        uint64_t n;
        (void)gguf_get_u32(f, keys[i], &u);
        (void)gguf_get_i64(f, keys[i], &i64);
        (void)gguf_get_f32(f, keys[i], &fl);
        (void)gguf_get_bool(f, keys[i], &b);
        if (gguf_get_str(f, keys[i], &str) == 0) {
            FUZZ_CHECK(str != NULL);
            free(str);
        }
        if (gguf_get_arr(f, keys[i], &et, &n) == 0 && n > 0) {
            struct gguf_str s;
            int32_t iv;
            if (gguf_arr_str(f, keys[i], n - 1, &s) == 0)
                touch(s.ptr, s.len);
            (void)gguf_arr_f32(f, keys[i], n - 1, &fl);
            (void)gguf_arr_i32(f, keys[i], 0, &iv);
        }
    }
    gguf_close(f);
    return 0;
}
