/* gguf_writer.c - lays out and writes GGUF files (see gguf.h, section writer).
 *
 * Metadata is serialised into a byte buffer as each kv is added; tensors are kept as
 * a list (name, shape, data pointer). Writing emits header, kvs and tensor infos,
 * pads to the alignment, then each tensor's bytes padded to the alignment, through a
 * sink that is either a FILE or a growing memory buffer. All output is little-endian
 * whatever the host.
 */

#include "gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct wbuf {
    uint8_t *p;
    size_t n;
    size_t cap;
};

struct wtensor {
    char *name;
    uint32_t type;
    uint32_t n_dims;
    uint64_t ne[4];
    const void *data;
    size_t nbytes;
    bool owned;
};

struct gguf_writer {
    uint32_t version;
    uint32_t alignment;
    uint64_t n_kv;
    struct wbuf kv;
    struct wtensor *tensors;
    size_t n_tensors;
    size_t cap_tensors;
};

/* ---- byte buffer ----------------------------------------------------------------- */

static int wbuf_put(struct wbuf *b, const void *p, size_t n)
{
    if (n > SIZE_MAX - b->n)
        return GGUF_ENOMEM;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) {
            if (cap > SIZE_MAX / 2)
                return GGUF_ENOMEM;
            cap *= 2;
        }
        uint8_t *q = realloc(b->p, cap);
        if (!q)
            return GGUF_ENOMEM;
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

static int wbuf_le(struct wbuf *b, uint64_t v, int nbytes)
{
    uint8_t tmp[8];
    for (int i = 0; i < nbytes; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    return wbuf_put(b, tmp, (size_t)nbytes);
}

static int wbuf_str(struct wbuf *b, const char *s, size_t len)
{
    int rc = wbuf_le(b, len, 8);
    return rc ? rc : wbuf_put(b, s, len);
}

/* ---- lifecycle ------------------------------------------------------------------- */

struct gguf_writer *gguf_writer_new(void)
{
    struct gguf_writer *w = calloc(1, sizeof(*w));
    if (w) {
        w->version = 3;
        w->alignment = GGUF_DEFAULT_ALIGNMENT;
    }
    return w;
}

void gguf_writer_free(struct gguf_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_tensors; i++) {
        free(w->tensors[i].name);
        if (w->tensors[i].owned)
            free((void *)w->tensors[i].data);
    }
    free(w->tensors);
    free(w->kv.p);
    free(w);
}

void gguf_writer_set_version(struct gguf_writer *w, uint32_t version)
{
    w->version = version;
}

/* ---- kvs ------------------------------------------------------------------------- */

/* Appends key and type tag; the caller appends the value, then ends the kv with kv_end
 * (which rolls the buffer back to the caller's `mark` on failure). */
static int kv_begin(struct gguf_writer *w, const char *key, uint32_t type)
{
    int rc = wbuf_str(&w->kv, key, strlen(key));
    return rc ? rc : wbuf_le(&w->kv, type, 4);
}

/* Counts a kv whose bytes went in after `mark`, or on failure (rc != 0) takes them back
 * out. Returns rc. */
static int kv_end(struct gguf_writer *w, size_t mark, int rc)
{
    if (rc)
        w->kv.n = mark;
    else
        w->n_kv++;
    return rc;
}

/* Reads host element i of a scalar array of GGUF type t as raw bits. */
static uint64_t host_elem(uint32_t t, const void *data, uint64_t i)
{
    const uint8_t *p = (const uint8_t *)data + gguf_type_size(t) * i;
    switch (gguf_type_size(t)) {
    case 1:
        return p[0];
    case 2: {
        uint16_t v;
        memcpy(&v, p, 2);
        return v;
    }
    case 4: {
        uint32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    default: {
        uint64_t v;
        memcpy(&v, p, 8);
        return v;
    }
    }
}

/* kv_begin for an array: also appends the element type and count; the caller appends
 * the elements. */
static int arr_begin(struct gguf_writer *w, const char *key, uint32_t elem_type, uint64_t n)
{
    int rc = kv_begin(w, key, GGUF_TYPE_ARRAY);
    if (!rc)
        rc = wbuf_le(&w->kv, elem_type, 4);
    return rc ? rc : wbuf_le(&w->kv, n, 8);
}

int gguf_writer_add_scalar(struct gguf_writer *w, const char *key, uint32_t type, const void *value)
{
    int size = (int)gguf_type_size(type);
    if (size == 0)
        return GGUF_EINVAL;
    uint64_t v = host_elem(type, value, 0);
    size_t mark = w->kv.n;
    int rc = kv_begin(w, key, type);
    if (!rc)
        rc = wbuf_le(&w->kv, v, size);
    if ((rc = kv_end(w, mark, rc)))
        return rc;
    if (type == GGUF_TYPE_UINT32 && strcmp(key, "general.alignment") == 0) {
        uint32_t a = (uint32_t)v;
        w->alignment = (a && (a & (a - 1)) == 0) ? a : GGUF_DEFAULT_ALIGNMENT;
    }
    return 0;
}

/* The typed scalar setters of gguf.h, one per GGUF scalar type (name, C type, GGUF
 * type): each hands its host value to gguf_writer_add_scalar. */
#define GGUF_WRITER_SCALARS(X)                                                                     \
    X(u8, uint8_t, GGUF_TYPE_UINT8)                                                                \
    X(i8, int8_t, GGUF_TYPE_INT8)                                                                  \
    X(u16, uint16_t, GGUF_TYPE_UINT16)                                                             \
    X(i16, int16_t, GGUF_TYPE_INT16)                                                               \
    X(u32, uint32_t, GGUF_TYPE_UINT32)                                                             \
    X(i32, int32_t, GGUF_TYPE_INT32)                                                               \
    X(u64, uint64_t, GGUF_TYPE_UINT64)                                                             \
    X(i64, int64_t, GGUF_TYPE_INT64)                                                               \
    X(f32, float, GGUF_TYPE_FLOAT32)                                                               \
    X(f64, double, GGUF_TYPE_FLOAT64)                                                              \
    X(bool, bool, GGUF_TYPE_BOOL)

/* gguf_writer_add_scalar reads gguf_type_size(type) bytes of the host value. */
_Static_assert(sizeof(bool) == 1 && sizeof(float) == 4 && sizeof(double) == 8,
               "GGUF bool, f32 and f64 values are 1, 4 and 8 bytes");

#define GGUF_WRITER_DEFINE_SCALAR_(name, ctype, type)                                              \
    int gguf_writer_add_##name(struct gguf_writer *w, const char *key, ctype v)                    \
    {                                                                                              \
        return gguf_writer_add_scalar(w, key, type, &v);                                           \
    }
GGUF_WRITER_SCALARS(GGUF_WRITER_DEFINE_SCALAR_)
#undef GGUF_WRITER_DEFINE_SCALAR_

int gguf_writer_add_strn(struct gguf_writer *w, const char *key, const char *s, size_t len)
{
    size_t mark = w->kv.n;
    int rc = kv_begin(w, key, GGUF_TYPE_STRING);
    if (!rc)
        rc = wbuf_str(&w->kv, s, len);
    return kv_end(w, mark, rc);
}

int gguf_writer_add_str(struct gguf_writer *w, const char *key, const char *s)
{
    return gguf_writer_add_strn(w, key, s, strlen(s));
}

int gguf_writer_add_arr(struct gguf_writer *w, const char *key, uint32_t elem_type,
                        const void *data, uint64_t n)
{
    int es = (int)gguf_type_size(elem_type);
    if (es == 0)
        return GGUF_EINVAL;
    size_t mark = w->kv.n;
    int rc = arr_begin(w, key, elem_type, n);
    for (uint64_t i = 0; i < n && !rc; i++)
        rc = wbuf_le(&w->kv, host_elem(elem_type, data, i), es);
    return kv_end(w, mark, rc);
}

int gguf_writer_add_arr_f32(struct gguf_writer *w, const char *key, const float *v, uint64_t n)
{
    return gguf_writer_add_arr(w, key, GGUF_TYPE_FLOAT32, v, n);
}

int gguf_writer_add_arr_i32(struct gguf_writer *w, const char *key, const int32_t *v,
                            uint64_t n)
{
    return gguf_writer_add_arr(w, key, GGUF_TYPE_INT32, v, n);
}

int gguf_writer_add_arr_str(struct gguf_writer *w, const char *key, const char *const *s,
                            uint64_t n)
{
    size_t mark = w->kv.n;
    int rc = arr_begin(w, key, GGUF_TYPE_STRING, n);
    for (uint64_t i = 0; i < n && !rc; i++)
        rc = wbuf_str(&w->kv, s[i], strlen(s[i]));
    return kv_end(w, mark, rc);
}

/* ---- tensors --------------------------------------------------------------------- */

static int add_tensor(struct gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                      const uint64_t *ne, const void *data, size_t nbytes, bool copy)
{
    if (n_dims < 1 || n_dims > 4 || (nbytes && !data))
        return GGUF_EINVAL;
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? w->cap_tensors * 2 : 16;
        struct wtensor *t = realloc(w->tensors, cap * sizeof(*t));
        if (!t)
            return GGUF_ENOMEM;
        w->tensors = t;
        w->cap_tensors = cap;
    }
    struct wtensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof(*t));
    t->name = strdup(name);
    if (!t->name)
        return GGUF_ENOMEM;
    t->type = type;
    t->n_dims = n_dims;
    for (uint32_t d = 0; d < 4; d++)
        t->ne[d] = d < n_dims ? ne[d] : 1;
    t->nbytes = nbytes;
    t->data = data;
    if (copy && nbytes) {
        void *p = malloc(nbytes);
        if (!p) {
            free(t->name);
            return GGUF_ENOMEM;
        }
        memcpy(p, data, nbytes);
        t->data = p;
        t->owned = true;
    }
    w->n_tensors++;
    return 0;
}

int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, uint32_t ggml_type,
                           uint32_t n_dims, const uint64_t *ne, const void *data, size_t nbytes)
{
    return add_tensor(w, name, ggml_type, n_dims, ne, data, nbytes, true);
}

int gguf_writer_add_tensor_ref(struct gguf_writer *w, const char *name, uint32_t ggml_type,
                               uint32_t n_dims, const uint64_t *ne, const void *data,
                               size_t nbytes)
{
    return add_tensor(w, name, ggml_type, n_dims, ne, data, nbytes, false);
}

/* ---- output ---------------------------------------------------------------------- */

typedef int (*sink_fn)(void *ctx, const void *p, size_t n);

static size_t pad_to(size_t n, uint32_t a)
{
    return (a - n % a) % a;
}

/* Header, kvs and tensor infos (with offsets laid out in insertion order). */
static int build_meta(const struct gguf_writer *w, struct wbuf *m)
{
    int rc = wbuf_put(m, "GGUF", 4);
    if (!rc)
        rc = wbuf_le(m, w->version, 4);
    if (!rc)
        rc = wbuf_le(m, w->n_tensors, 8);
    if (!rc)
        rc = wbuf_le(m, w->n_kv, 8);
    if (!rc)
        rc = wbuf_put(m, w->kv.p, w->kv.n);
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_tensors && !rc; i++) {
        const struct wtensor *t = &w->tensors[i];
        rc = wbuf_str(m, t->name, strlen(t->name));
        if (!rc)
            rc = wbuf_le(m, t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims && !rc; d++)
            rc = wbuf_le(m, t->ne[d], 8);
        if (!rc)
            rc = wbuf_le(m, t->type, 4);
        if (!rc)
            rc = wbuf_le(m, off, 8);
        off += t->nbytes + pad_to(t->nbytes, w->alignment);
    }
    return rc;
}

static int emit(const struct gguf_writer *w, sink_fn put, void *ctx)
{
    static const uint8_t zeros[64];
    struct wbuf m = {0};
    int rc = build_meta(w, &m);
    if (!rc)
        rc = put(ctx, m.p, m.n);
    size_t pad = w->n_tensors ? pad_to(m.n, w->alignment) : 0;
    free(m.p);
    for (size_t i = 0; i <= w->n_tensors && !rc; i++) {
        while (pad && !rc) {
            size_t k = pad < sizeof(zeros) ? pad : sizeof(zeros);
            rc = put(ctx, zeros, k);
            pad -= k;
        }
        if (i == w->n_tensors || rc)
            break;
        const struct wtensor *t = &w->tensors[i];
        rc = put(ctx, t->data, t->nbytes);
        /* the last tensor is padded too, as llama.cpp does */
        pad = pad_to(t->nbytes, w->alignment);
    }
    return rc;
}

static int put_file(void *ctx, const void *p, size_t n)
{
    return n == 0 || fwrite(p, 1, n, ctx) == n ? 0 : GGUF_EIO;
}

static int put_mem(void *ctx, const void *p, size_t n)
{
    return wbuf_put(ctx, p, n);
}

int gguf_writer_write_file(const struct gguf_writer *w, const char *path)
{
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return GGUF_EIO;
    int rc = emit(w, put_file, fp);
    if (fclose(fp) != 0 && !rc)
        rc = GGUF_EIO;
    if (rc)
        remove(path);
    return rc;
}

int gguf_writer_write_mem(const struct gguf_writer *w, void **buf, size_t *len)
{
    struct wbuf b = {0};
    *buf = NULL;
    *len = 0;
    int rc = emit(w, put_mem, &b);
    if (rc) {
        free(b.p);
        return rc;
    }
    if (!b.p) { /* cannot happen (the header is always written), but keep *buf valid */
        b.p = malloc(1);
        if (!b.p)
            return GGUF_ENOMEM;
    }
    *buf = b.p;
    *len = b.n;
    return 0;
}
