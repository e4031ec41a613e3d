/* gguf.c - opens a GGUF file (or a caller's buffer) and validates all of it up front.
 *
 * The file is memory-mapped read-only. gguf_open walks header, metadata and tensor
 * infos once with a bounds-checked cursor (struct rd): every read first checks that
 * enough bytes remain (R13), every length and count is capped (R2-R4, R8) and every
 * size computation is overflow-checked (R7) before anything is allocated. After
 * that walk the file is immutable and all accessors are plain lookups into arrays
 * built at open time: keys and tensor names are indexed by hash tables (no
 * duplicates, R5), string arrays get an offset index so element i is O(1). Nothing
 * here recurses (R15): an array holds scalars or strings, never arrays (R6).
 * Errors name the byte offset and the problem, e.g.
 * "offset 24: string length 9999999999 exceeds remaining 1200 bytes".
 */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct gguf_file {
    const uint8_t *base; /* the whole file */
    size_t size;
    bool mapped;         /* base came from mmap (else a caller's buffer) */
    uint32_t version;
    uint32_t alignment;
    size_t data_offset;  /* start of the tensor data blob */

    uint64_t n_kv;
    struct gguf_kv *kvs;
    uint64_t *kv_str_first; /* per kv: first index into str_off (string arrays only) */
    uint32_t *str_off;      /* per string-array element: offset of its u64 length from kv->data */
    size_t n_str_off;
    uint32_t *kv_hash;      /* open addressing: kv index + 1, 0 = empty */
    size_t kv_hash_mask;

    uint64_t n_tensors;
    struct gguf_tensor *tensors;
    uint32_t *t_hash;
    size_t t_hash_mask;
};

/* ---- error codes, type tables ---------------------------------------------------- */

const char *gguf_strerror(int code)
{
    switch (code) {
#define GGUF_ERR_CASE_(name, c, text)                                                     \
    case c:                                                                               \
        return text;
        GGUF_ERRORS(GGUF_ERR_CASE_)
#undef GGUF_ERR_CASE_
    case 0:
        return "success";
    default:
        return "unknown error";
    }
}

static const struct {
    const char *name;
    uint8_t size;
} value_types[GGUF_TYPE_COUNT] = {
    [GGUF_TYPE_UINT8] = {"u8", 1},     [GGUF_TYPE_INT8] = {"i8", 1},
    [GGUF_TYPE_UINT16] = {"u16", 2},   [GGUF_TYPE_INT16] = {"i16", 2},
    [GGUF_TYPE_UINT32] = {"u32", 4},   [GGUF_TYPE_INT32] = {"i32", 4},
    [GGUF_TYPE_FLOAT32] = {"f32", 4},  [GGUF_TYPE_BOOL] = {"bool", 1},
    [GGUF_TYPE_STRING] = {"string", 0}, [GGUF_TYPE_ARRAY] = {"array", 0},
    [GGUF_TYPE_UINT64] = {"u64", 8},   [GGUF_TYPE_INT64] = {"i64", 8},
    [GGUF_TYPE_FLOAT64] = {"f64", 8},
};

size_t gguf_type_size(uint32_t t)
{
    return t < GGUF_TYPE_COUNT ? value_types[t].size : 0;
}

const char *gguf_value_type_name(uint32_t t)
{
    return t < GGUF_TYPE_COUNT ? value_types[t].name : "?";
}

/* ggml tensor types we know the block layout of (ggml-common.h). */
static const struct {
    const char *name;
    uint32_t elems;
    uint32_t bytes;
} tensor_types[GGML_TYPE_COUNT] = {
    [GGML_TYPE_F32] = {"F32", 1, 4},      [GGML_TYPE_F16] = {"F16", 1, 2},
    [GGML_TYPE_Q4_0] = {"Q4_0", 32, 18},  [GGML_TYPE_Q4_1] = {"Q4_1", 32, 20},
    [GGML_TYPE_Q5_0] = {"Q5_0", 32, 22},  [GGML_TYPE_Q5_1] = {"Q5_1", 32, 24},
    [GGML_TYPE_Q8_0] = {"Q8_0", 32, 34},  [GGML_TYPE_Q8_1] = {"Q8_1", 32, 36},
    [GGML_TYPE_Q2_K] = {"Q2_K", 256, 84}, [GGML_TYPE_Q3_K] = {"Q3_K", 256, 110},
    [GGML_TYPE_Q4_K] = {"Q4_K", 256, 144}, [GGML_TYPE_Q5_K] = {"Q5_K", 256, 176},
    [GGML_TYPE_Q6_K] = {"Q6_K", 256, 210}, [GGML_TYPE_Q8_K] = {"Q8_K", 256, 292},
    [24] = {"I8", 1, 1},                  [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},                 [27] = {"I64", 1, 8},
    [28] = {"F64", 1, 8},                 [GGML_TYPE_BF16] = {"BF16", 1, 2},
};

bool gguf_type_block(uint32_t t, uint32_t *block_elems, uint32_t *block_bytes)
{
    if (t >= GGML_TYPE_COUNT || tensor_types[t].elems == 0)
        return false;
    if (block_elems)
        *block_elems = tensor_types[t].elems;
    if (block_bytes)
        *block_bytes = tensor_types[t].bytes;
    return true;
}

const char *gguf_type_name(uint32_t t)
{
    return t < GGML_TYPE_COUNT && tensor_types[t].name ? tensor_types[t].name : "?";
}

/* ---- little-endian loads (the host may be anything) ------------------------------ */

static uint16_t ld16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t ld32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t ld64(const uint8_t *p)
{
    return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32;
}

/* ---- the bounds-checked cursor --------------------------------------------------- */

struct rd {
    const uint8_t *p;
    size_t size;
    size_t pos;
    char *err;
    size_t err_len;
};

static int rd_fail(struct rd *r, size_t off, const char *fmt, ...)
{
    if (r->err && r->err_len) {
        int n = snprintf(r->err, r->err_len, "offset %zu: ", off);
        if (n >= 0 && (size_t)n < r->err_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(r->err + n, r->err_len - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return GGUF_EFORMAT;
}

static size_t rd_left(const struct rd *r)
{
    return r->size - r->pos;
}

static int rd_need(struct rd *r, uint64_t n, const char *what)
{
    if (n > rd_left(r))
        return rd_fail(r, r->pos, "%s needs %llu bytes, only %zu remain", what,
                       (unsigned long long)n, rd_left(r));
    return 0;
}

static int rd_u32(struct rd *r, uint32_t *v, const char *what)
{
    int rc = rd_need(r, 4, what);
    if (rc)
        return rc;
    *v = ld32(r->p + r->pos);
    r->pos += 4;
    return 0;
}

static int rd_u64(struct rd *r, uint64_t *v, const char *what)
{
    int rc = rd_need(r, 8, what);
    if (rc)
        return rc;
    *v = ld64(r->p + r->pos);
    r->pos += 8;
    return 0;
}

/* A string: u64 length then bytes; the length is capped at `max` (R2) and at the
 * bytes that remain. */
static int rd_str(struct rd *r, struct gguf_str *s, uint64_t max, const char *what)
{
    size_t at = r->pos;
    uint64_t len;
    int rc = rd_u64(r, &len, what);
    if (rc)
        return rc;
    if (len > rd_left(r))
        return rd_fail(r, at, "%s length %llu exceeds remaining %zu bytes", what,
                       (unsigned long long)len, rd_left(r));
    if (len > max)
        return rd_fail(r, at, "%s length %llu exceeds the limit of %llu bytes", what,
                       (unsigned long long)len, (unsigned long long)max);
    s->ptr = (const char *)(r->p + r->pos);
    s->len = len;
    r->pos += (size_t)len;
    return 0;
}

/* ---- hash index over names ------------------------------------------------------- */

uint64_t gguf_fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull; /* the 64-bit FNV prime */
    }
    return h;
}

static uint64_t hash_bytes(const char *s, size_t n)
{
    return gguf_fnv1a(GGUF_FNV1A_BASIS, s, n);
}

static bool str_eq(struct gguf_str a, const char *b, size_t blen)
{
    return a.len == blen && memcmp(a.ptr, b, blen) == 0;
}

/* Table size for n entries: a power of two >= 2n (n <= 65536, so no overflow). */
static size_t hash_cap(uint64_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap <<= 1;
    return cap;
}

/* The name of entry i (a kv key or a tensor name). */
typedef struct gguf_str (*name_at_fn)(const struct gguf_file *f, uint32_t i);

static struct gguf_str kv_name(const struct gguf_file *f, uint32_t i)
{
    return f->kvs[i].key;
}

static struct gguf_str tensor_name(const struct gguf_file *f, uint32_t i)
{
    return f->tensors[i].name;
}

/* The slot of name in the table: the one that holds it, else the empty one where it
 * would go (the table is at most half full, so there is one). */
static size_t hash_slot(const struct gguf_file *f, const uint32_t *tab, size_t mask,
                        name_at_fn name_at, const char *name, size_t len)
{
    size_t h = (size_t)hash_bytes(name, len) & mask;
    while (tab[h] && !str_eq(name_at(f, tab[h] - 1), name, len))
        h = (h + 1) & mask;
    return h;
}

/* Looks name up; returns the entry index or -1. */
static int64_t hash_find(const struct gguf_file *f, const uint32_t *tab, size_t mask,
                         name_at_fn name_at, const char *name, size_t len)
{
    if (!tab)
        return -1;
    size_t h = hash_slot(f, tab, mask, name_at, name, len);
    return tab[h] ? (int64_t)tab[h] - 1 : -1;
}

/* Builds the index of n names; returns the index of a duplicate in *dup (or -1). */
static int hash_build(const struct gguf_file *f, uint64_t n, name_at_fn name_at, uint32_t **tab,
                      size_t *mask, int64_t *dup)
{
    size_t cap = hash_cap(n);
    *dup = -1;
    *tab = calloc(cap, sizeof(**tab));
    if (!*tab)
        return GGUF_ENOMEM;
    *mask = cap - 1;
    for (uint32_t i = 0; i < n; i++) {
        struct gguf_str s = name_at(f, i);
        size_t h = hash_slot(f, *tab, *mask, name_at, s.ptr, (size_t)s.len);
        if ((*tab)[h]) {
            *dup = i;
            return 0;
        }
        (*tab)[h] = i + 1;
    }
    return 0;
}

/* ---- metadata -------------------------------------------------------------------- */

static bool key_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

/* R5: non-empty, ASCII [A-Za-z0-9._-]. */
static int check_key(struct rd *r, size_t at, struct gguf_str k)
{
    if (k.len == 0)
        return rd_fail(r, at, "empty key");
    for (uint64_t i = 0; i < k.len; i++)
        if (!key_char_ok(k.ptr[i]))
            return rd_fail(r, at, "key contains byte 0x%02x at position %llu (allowed: A-Z a-z 0-9 . _ -)",
                           (uint8_t)k.ptr[i], (unsigned long long)i);
    return 0;
}

/* Appends one offset to the string-array index. */
static int push_str_off(struct gguf_file *f, size_t *cap, uint32_t off)
{
    if (f->n_str_off == *cap) {
        size_t nc = *cap ? *cap * 2 : 1024;
        uint32_t *p = realloc(f->str_off, nc * sizeof(*p));
        if (!p)
            return GGUF_ENOMEM;
        f->str_off = p;
        *cap = nc;
    }
    f->str_off[f->n_str_off++] = off;
    return 0;
}

/* Checks that bool bytes are 0 or 1. */
static int check_bools(struct rd *r, const uint8_t *p, uint64_t n, const char *key)
{
    for (uint64_t i = 0; i < n; i++)
        if (p[i] > 1)
            return rd_fail(r, (size_t)(p + i - r->p), "bool value %u of key '%s' is not 0 or 1",
                           p[i], key);
    return 0;
}

/* An array value: elem type, count, elements (R3, R6). */
static int parse_array(struct rd *r, struct gguf_file *f, uint64_t ki, size_t *str_cap,
                       const char *key)
{
    struct gguf_kv *kv = &f->kvs[ki];
    size_t at = r->pos;
    int rc = rd_u32(r, &kv->arr_type, "array element type");
    if (rc)
        return rc;
    if (kv->arr_type >= GGUF_TYPE_COUNT)
        return rd_fail(r, at, "key '%s': unknown array element type %u", key, kv->arr_type);
    if (kv->arr_type == GGUF_TYPE_ARRAY)
        return rd_fail(r, at, "key '%s': array of arrays is not allowed", key);
    at = r->pos;
    if ((rc = rd_u64(r, &kv->arr_n, "array length")))
        return rc;
    if (kv->arr_n > GGUF_MAX_ARRAY_N)
        return rd_fail(r, at, "key '%s': array length %llu exceeds the limit of %u", key,
                       (unsigned long long)kv->arr_n, GGUF_MAX_ARRAY_N);
    kv->data = r->p + r->pos;
    if (kv->arr_type != GGUF_TYPE_STRING) {
        uint64_t es = gguf_type_size(kv->arr_type);
        uint64_t nb = kv->arr_n * es; /* <= 2^24 * 8: no overflow */
        if (nb > rd_left(r))
            return rd_fail(r, at, "key '%s': array of %llu x %s (%llu bytes) exceeds remaining %zu bytes",
                           key, (unsigned long long)kv->arr_n, gguf_value_type_name(kv->arr_type),
                           (unsigned long long)nb, rd_left(r));
        if (kv->arr_type == GGUF_TYPE_BOOL && (rc = check_bools(r, kv->data, kv->arr_n, key)))
            return rc;
        r->pos += (size_t)nb;
        return 0;
    }
    /* Strings: every one needs at least its 8-byte length. */
    if (kv->arr_n * 8 > rd_left(r))
        return rd_fail(r, at, "key '%s': array of %llu strings exceeds remaining %zu bytes", key,
                       (unsigned long long)kv->arr_n, rd_left(r));
    f->kv_str_first[ki] = f->n_str_off;
    uint64_t total = 0;
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        struct gguf_str s;
        size_t el = r->pos;
        if ((rc = rd_str(r, &s, GGUF_MAX_STRING, "array string")))
            return rc;
        total += s.len;
        if (total > GGUF_MAX_STRING_ARRAY)
            return rd_fail(r, el, "key '%s': strings of the array exceed %u bytes in total", key,
                           GGUF_MAX_STRING_ARRAY);
        /* < 8 * 2^24 + 64 MiB from kv->data: fits in 32 bits */
        if ((rc = push_str_off(f, str_cap, (uint32_t)(el - (size_t)(kv->data - r->p)))))
            return rc;
    }
    return 0;
}

static int parse_kv(struct rd *r, struct gguf_file *f, uint64_t ki, size_t *str_cap)
{
    struct gguf_kv *kv = &f->kvs[ki];
    size_t at = r->pos;
    char key[96];
    int rc = rd_str(r, &kv->key, GGUF_MAX_STRING, "key");
    if (rc)
        return rc;
    if ((rc = check_key(r, at, kv->key)))
        return rc;
    snprintf(key, sizeof(key), "%.*s", (int)(kv->key.len < 80 ? kv->key.len : 80), kv->key.ptr);
    at = r->pos;
    if ((rc = rd_u32(r, &kv->type, "value type")))
        return rc;
    if (kv->type >= GGUF_TYPE_COUNT)
        return rd_fail(r, at, "key '%s': unknown value type %u", key, kv->type);
    if (kv->type == GGUF_TYPE_ARRAY)
        return parse_array(r, f, ki, str_cap, key);
    if (kv->type == GGUF_TYPE_STRING) {
        struct gguf_str s;
        if ((rc = rd_str(r, &s, GGUF_MAX_STRING, "string value")))
            return rc;
        kv->data = (const uint8_t *)s.ptr - 8;
        return 0;
    }
    size_t es = gguf_type_size(kv->type);
    if ((rc = rd_need(r, es, "value")))
        return rc;
    kv->data = r->p + r->pos;
    if (kv->type == GGUF_TYPE_BOOL && (rc = check_bools(r, kv->data, 1, key)))
        return rc;
    r->pos += es;
    return 0;
}

/* R9: general.alignment, when present, is a u32 power of two in [8, 1 MiB]. */
static int read_alignment(struct rd *r, struct gguf_file *f)
{
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t i = hash_find(f, f->kv_hash, f->kv_hash_mask, kv_name, "general.alignment", 17);
    if (i < 0)
        return 0;
    const struct gguf_kv *kv = &f->kvs[i];
    size_t at = (size_t)(kv->key.ptr - (const char *)r->p) - 8;
    if (kv->type != GGUF_TYPE_UINT32)
        return rd_fail(r, at, "general.alignment has type %s, expected u32",
                       gguf_value_type_name(kv->type));
    uint32_t a = ld32(kv->data);
    if (a < 8 || a > (1u << 20) || (a & (a - 1)) != 0)
        return rd_fail(r, at, "general.alignment %u is not a power of two in [8, 1048576]", a);
    f->alignment = a;
    return 0;
}

/* ---- tensor infos ---------------------------------------------------------------- */

/* R8: element count and byte size, overflow-checked. */
static int tensor_size(struct rd *r, size_t at, struct gguf_tensor *t, char *name)
{
    uint32_t be, bb;
    if (!gguf_type_block(t->type, &be, &bb))
        return rd_fail(r, at, "tensor '%s': unknown ggml type %u", name, t->type);
    if (t->ne[0] % be != 0)
        return rd_fail(r, at, "tensor '%s': row length %llu is not a multiple of the %s block size %u",
                       name, (unsigned long long)t->ne[0], gguf_type_name(t->type), be);
    uint64_t nel = 1;
    uint64_t nbytes = t->ne[0] / be * bb;
    for (int d = 0; d < 4; d++)
        if (__builtin_mul_overflow(nel, t->ne[d], &nel) || nel > (uint64_t)INT64_MAX)
            return rd_fail(r, at, "tensor '%s': element count overflows", name);
    for (int d = 1; d < 4; d++)
        if (__builtin_mul_overflow(nbytes, t->ne[d], &nbytes) || nbytes > (uint64_t)INT64_MAX)
            return rd_fail(r, at, "tensor '%s': byte size overflows", name);
    t->nbytes = nbytes;
    return 0;
}

static int parse_tensor_info(struct rd *r, struct gguf_tensor *t)
{
    size_t at = r->pos;
    char name[GGUF_MAX_NAME + 1];
    int rc = rd_str(r, &t->name, GGUF_MAX_NAME, "tensor name");
    if (rc)
        return rc;
    if (t->name.len == 0)
        return rd_fail(r, at, "empty tensor name");
    if (memchr(t->name.ptr, 0, (size_t)t->name.len))
        return rd_fail(r, at, "tensor name contains a NUL byte");
    memcpy(name, t->name.ptr, (size_t)t->name.len);
    name[t->name.len] = 0;
    size_t dat = r->pos;
    if ((rc = rd_u32(r, &t->n_dims, "tensor n_dims")))
        return rc;
    if (t->n_dims < 1 || t->n_dims > 4)
        return rd_fail(r, dat, "tensor '%s': n_dims %u is not in [1, 4]", name, t->n_dims);
    for (uint32_t d = 0; d < 4; d++) {
        t->ne[d] = 1;
        if (d >= t->n_dims)
            continue;
        size_t nat = r->pos;
        if ((rc = rd_u64(r, &t->ne[d], "tensor dimension")))
            return rc;
        if (t->ne[d] < 1 || t->ne[d] > GGUF_MAX_NE)
            return rd_fail(r, nat, "tensor '%s': dimension %u is %llu, not in [1, 2^40]", name, d,
                           (unsigned long long)t->ne[d]);
    }
    size_t tat = r->pos;
    if ((rc = rd_u32(r, &t->type, "tensor type")))
        return rc;
    if ((rc = tensor_size(r, tat, t, name)))
        return rc;
    return rd_u64(r, &t->offset, "tensor offset");
}

struct span {
    uint64_t offset;
    uint32_t idx;
};

static int cmp_span(const void *a, const void *b)
{
    uint64_t x = ((const struct span *)a)->offset;
    uint64_t y = ((const struct span *)b)->offset;
    return x < y ? -1 : x > y;
}

/* R14: data aligned, inside the file, not overlapping. `info_at` is each tensor's
 * info offset, for messages. */
static int check_tensor_data(struct rd *r, struct gguf_file *f, const size_t *info_at)
{
    size_t blob = r->size - f->data_offset;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        struct gguf_tensor *t = &f->tensors[i];
        if (t->offset % f->alignment)
            return rd_fail(r, info_at[i], "tensor '%.*s': data offset %llu is not a multiple of the alignment %u",
                           (int)t->name.len, t->name.ptr, (unsigned long long)t->offset, f->alignment);
        if (t->offset > blob || t->nbytes > blob - t->offset)
            return rd_fail(r, info_at[i], "tensor '%.*s': data [%llu, +%llu) ends past the end of the file (%zu data bytes)",
                           (int)t->name.len, t->name.ptr, (unsigned long long)t->offset,
                           (unsigned long long)t->nbytes, blob);
        t->data = f->base + f->data_offset + t->offset;
    }
    if (f->n_tensors < 2)
        return 0;
    struct span *order = malloc(f->n_tensors * sizeof(*order));
    if (!order)
        return GGUF_ENOMEM;
    for (uint32_t i = 0; i < f->n_tensors; i++)
        order[i] = (struct span){f->tensors[i].offset, i};
    qsort(order, f->n_tensors, sizeof(*order), cmp_span);
    int rc = 0;
    for (uint64_t k = 1; k < f->n_tensors && !rc; k++) {
        const struct gguf_tensor *a = &f->tensors[order[k - 1].idx];
        const struct gguf_tensor *b = &f->tensors[order[k].idx];
        if (a->offset + a->nbytes > b->offset)
            rc = rd_fail(r, info_at[order[k].idx], "tensor '%.*s' data at %llu overlaps tensor '%.*s' [%llu, +%llu)",
                         (int)b->name.len, b->name.ptr, (unsigned long long)b->offset,
                         (int)a->name.len, a->name.ptr, (unsigned long long)a->offset,
                         (unsigned long long)a->nbytes);
    }
    free(order);
    return rc;
}

/* ---- open / close ---------------------------------------------------------------- */

static int parse_header(struct rd *r, struct gguf_file *f)
{
    if (r->size < 4 || memcmp(r->p, "GGUF", 4) != 0)
        return rd_fail(r, 0, "bad magic (not a GGUF file)");
    r->pos = 4;
    int rc = rd_u32(r, &f->version, "version");
    if (rc)
        return rc;
    if (f->version != 2 && f->version != 3) {
        if ((f->version & 0xffff) == 0 && f->version != 0)
            return rd_fail(r, 4, "version 0x%08x looks byte-swapped (big-endian files are not supported)",
                           f->version);
        return rd_fail(r, 4, "unsupported version %u (expected 2 or 3)", f->version);
    }
    if ((rc = rd_u64(r, &f->n_tensors, "tensor count")) || (rc = rd_u64(r, &f->n_kv, "kv count")))
        return rc;
    /* R4: min kv record = key len 8 + 1 key byte + type 4 + 1 value byte;
     * min tensor info = name 8 + 1 + n_dims 4 + ne 8 + type 4 + offset 8. */
    if (f->n_tensors > GGUF_MAX_TENSORS || f->n_tensors > rd_left(r) / 33)
        return rd_fail(r, 8, "tensor count %llu exceeds the limit (%u, and what %zu remaining bytes can hold)",
                       (unsigned long long)f->n_tensors, GGUF_MAX_TENSORS, rd_left(r));
    if (f->n_kv > GGUF_MAX_KV || f->n_kv > rd_left(r) / 14)
        return rd_fail(r, 16, "kv count %llu exceeds the limit (%u, and what %zu remaining bytes can hold)",
                       (unsigned long long)f->n_kv, GGUF_MAX_KV, rd_left(r));
    return 0;
}

static int parse_kvs(struct rd *r, struct gguf_file *f)
{
    size_t str_cap = 0;
    int rc;
    f->kvs = calloc(f->n_kv ? f->n_kv : 1, sizeof(*f->kvs));
    f->kv_str_first = calloc(f->n_kv ? f->n_kv : 1, sizeof(*f->kv_str_first));
    if (!f->kvs || !f->kv_str_first)
        return GGUF_ENOMEM;
    for (uint64_t i = 0; i < f->n_kv; i++)
        if ((rc = parse_kv(r, f, i, &str_cap)))
            return rc;
    int64_t dup;
    if ((rc = hash_build(f, f->n_kv, kv_name, &f->kv_hash, &f->kv_hash_mask, &dup)))
        return rc;
    if (dup >= 0) {
        struct gguf_str k = f->kvs[dup].key;
        return rd_fail(r, (size_t)(k.ptr - (const char *)r->p) - 8, "duplicate key '%.*s'",
                       (int)(k.len < 80 ? k.len : 80), k.ptr);
    }
    return read_alignment(r, f);
}

static int parse_tensors(struct rd *r, struct gguf_file *f)
{
    int rc;
    f->tensors = calloc(f->n_tensors ? f->n_tensors : 1, sizeof(*f->tensors));
    size_t *info_at = malloc((f->n_tensors ? f->n_tensors : 1) * sizeof(*info_at));
    if (!f->tensors || !info_at) {
        free(info_at);
        return GGUF_ENOMEM;
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        info_at[i] = r->pos;
        if ((rc = parse_tensor_info(r, &f->tensors[i])))
            goto out;
    }
    int64_t dup;
    if ((rc = hash_build(f, f->n_tensors, tensor_name, &f->t_hash, &f->t_hash_mask, &dup)))
        goto out;
    if (dup >= 0) {
        rc = rd_fail(r, info_at[dup], "duplicate tensor name '%.*s'", (int)f->tensors[dup].name.len,
                     f->tensors[dup].name.ptr);
        goto out;
    }
    /* The blob starts at the next multiple of the alignment (r->pos <= size, so no overflow). */
    f->data_offset = (r->pos + f->alignment - 1) / f->alignment * f->alignment;
    if (f->n_tensors > 0 && f->data_offset > r->size) {
        rc = rd_fail(r, r->pos, "tensor data would start at %zu, past the end of the file (%zu bytes)",
                     f->data_offset, r->size);
        goto out;
    }
    if (f->data_offset > r->size)
        f->data_offset = r->size;
    rc = check_tensor_data(r, f, info_at);
out:
    free(info_at);
    return rc;
}

static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
    if (!err || !err_len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

static int open_common(struct gguf_file **out, const void *buf, size_t len, bool mapped,
                       char *err, size_t err_len)
{
    struct gguf_file *f = calloc(1, sizeof(*f));
    if (!f) {
        set_err(err, err_len, "out of memory");
        return GGUF_ENOMEM;
    }
    f->base = buf;
    f->size = len;
    f->mapped = mapped;
    struct rd r = {.p = buf, .size = len, .err = err, .err_len = err_len};
    int rc = parse_header(&r, f);
    if (!rc)
        rc = parse_kvs(&r, f);
    if (!rc)
        rc = parse_tensors(&r, f);
    if (rc) {
        if (rc == GGUF_ENOMEM)
            set_err(err, err_len, "out of memory while reading the file");
        gguf_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

int gguf_open_buffer(struct gguf_file **out, const void *buf, size_t len, char *err,
                     size_t err_len)
{
    *out = NULL;
    if (!buf && len)
        return GGUF_EINVAL;
    return open_common(out, buf ? buf : "", len, false, err, err_len);
}

int gguf_open(struct gguf_file **out, const char *path, char *err, size_t err_len)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, err_len, "%s: %s", path, strerror(errno));
        return GGUF_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        set_err(err, err_len, "%s: not a regular file", path);
        close(fd);
        return GGUF_EIO;
    }
    if (st.st_size < 24) {
        close(fd);
        set_err(err, err_len, "offset 0: file is %lld bytes, too small for a GGUF header",
                (long long)st.st_size);
        return GGUF_EFORMAT;
    }
    size_t len = (size_t)st.st_size;
    void *p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        set_err(err, err_len, "%s: mmap: %s", path, strerror(errno));
        return GGUF_EIO;
    }
    return open_common(out, p, len, true, err, err_len);
}

void gguf_close(struct gguf_file *f)
{
    if (!f)
        return;
    if (f->mapped)
        munmap((void *)f->base, f->size);
    free(f->kvs);
    free(f->kv_str_first);
    free(f->str_off);
    free(f->kv_hash);
    free(f->tensors);
    free(f->t_hash);
    free(f);
}

/* ---- accessors ------------------------------------------------------------------- */

uint32_t gguf_version(const struct gguf_file *f)
{
    return f->version;
}

size_t gguf_file_size(const struct gguf_file *f)
{
    return f->size;
}

uint32_t gguf_alignment(const struct gguf_file *f)
{
    return f->alignment;
}

size_t gguf_data_offset(const struct gguf_file *f)
{
    return f->data_offset;
}

uint64_t gguf_n_kv(const struct gguf_file *f)
{
    return f->n_kv;
}

const struct gguf_kv *gguf_kv_at(const struct gguf_file *f, uint64_t i)
{
    return i < f->n_kv ? &f->kvs[i] : NULL;
}

const struct gguf_kv *gguf_find_kv(const struct gguf_file *f, const char *key)
{
    if (!key)
        return NULL;
    int64_t i = hash_find(f, f->kv_hash, f->kv_hash_mask, kv_name, key, strlen(key));
    return i < 0 ? NULL : &f->kvs[i];
}

static bool is_int_type(uint32_t t)
{
    return t <= GGUF_TYPE_INT32 || t == GGUF_TYPE_UINT64 || t == GGUF_TYPE_INT64;
}

/* Reads an integer element of type t at p. A u64 above INT64_MAX sets *is_big_u64
 * (its value in *u) and returns 0. */
static int64_t load_signed(uint32_t t, const uint8_t *p, bool *is_big_u64, uint64_t *u)
{
    *is_big_u64 = false;
    switch (t) {
    case GGUF_TYPE_UINT8:
        return p[0];
    case GGUF_TYPE_INT8:
        return (int8_t)p[0];
    case GGUF_TYPE_UINT16:
        return ld16(p);
    case GGUF_TYPE_INT16:
        return (int16_t)ld16(p);
    case GGUF_TYPE_UINT32:
        return ld32(p);
    case GGUF_TYPE_INT32:
        return (int32_t)ld32(p);
    case GGUF_TYPE_INT64:
        return (int64_t)ld64(p);
    default: /* UINT64 */
        *u = ld64(p);
        if (*u > (uint64_t)INT64_MAX) {
            *is_big_u64 = true;
            return 0;
        }
        return (int64_t)*u;
    }
}

int gguf_get_i64(const struct gguf_file *f, const char *key, int64_t *out)
{
    const struct gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv)
        return GGUF_ENOTFOUND;
    if (!is_int_type(kv->type))
        return GGUF_ETYPE;
    bool big;
    uint64_t u;
    int64_t v = load_signed(kv->type, kv->data, &big, &u);
    if (big)
        return GGUF_ERANGE;
    *out = v;
    return 0;
}

int gguf_get_u32(const struct gguf_file *f, const char *key, uint32_t *out)
{
    int64_t v;
    int rc = gguf_get_i64(f, key, &v);
    if (rc)
        return rc;
    if (v < 0 || v > (int64_t)UINT32_MAX)
        return GGUF_ERANGE;
    *out = (uint32_t)v;
    return 0;
}

int gguf_get_f32(const struct gguf_file *f, const char *key, float *out)
{
    const struct gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv)
        return GGUF_ENOTFOUND;
    if (kv->type == GGUF_TYPE_FLOAT32) {
        uint32_t bits = ld32(kv->data);
        memcpy(out, &bits, sizeof(*out));
        return 0;
    }
    if (kv->type == GGUF_TYPE_FLOAT64) {
        uint64_t bits = ld64(kv->data);
        double d;
        memcpy(&d, &bits, sizeof(d));
        *out = (float)d;
        return 0;
    }
    return GGUF_ETYPE;
}

int gguf_get_bool(const struct gguf_file *f, const char *key, bool *out)
{
    const struct gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv)
        return GGUF_ENOTFOUND;
    if (kv->type != GGUF_TYPE_BOOL)
        return GGUF_ETYPE;
    *out = kv->data[0] != 0;
    return 0;
}

int gguf_kv_str(const struct gguf_kv *kv, struct gguf_str *out)
{
    if (!kv || kv->type != GGUF_TYPE_STRING)
        return GGUF_ETYPE;
    out->len = ld64(kv->data);
    out->ptr = (const char *)kv->data + 8;
    return 0;
}

int gguf_get_str(const struct gguf_file *f, const char *key, char **out)
{
    *out = NULL;
    const struct gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv)
        return GGUF_ENOTFOUND;
    struct gguf_str s;
    if (gguf_kv_str(kv, &s))
        return GGUF_ETYPE;
    if (memchr(s.ptr, 0, (size_t)s.len))
        return GGUF_EFORMAT;
    char *p = malloc((size_t)s.len + 1); /* len <= 1 MiB (R2) */
    if (!p)
        return GGUF_ENOMEM;
    memcpy(p, s.ptr, (size_t)s.len);
    p[s.len] = 0;
    *out = p;
    return 0;
}

int gguf_get_arr(const struct gguf_file *f, const char *key, uint32_t *elem_type, uint64_t *n)
{
    const struct gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv)
        return GGUF_ENOTFOUND;
    if (kv->type != GGUF_TYPE_ARRAY)
        return GGUF_ETYPE;
    *elem_type = kv->arr_type;
    *n = kv->arr_n;
    return 0;
}

int gguf_kv_arr_str(const struct gguf_file *f, const struct gguf_kv *kv, uint64_t i,
                    struct gguf_str *out)
{
    if (!kv || kv < f->kvs || kv >= f->kvs + f->n_kv)
        return GGUF_EINVAL;
    if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type != GGUF_TYPE_STRING)
        return GGUF_ETYPE;
    if (i >= kv->arr_n)
        return GGUF_ERANGE;
    const uint8_t *p = kv->data + f->str_off[f->kv_str_first[kv - f->kvs] + i];
    out->len = ld64(p);
    out->ptr = (const char *)p + 8;
    return 0;
}

int gguf_arr_str(const struct gguf_file *f, const char *key, uint64_t i, struct gguf_str *out)
{
    const struct gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv)
        return GGUF_ENOTFOUND;
    return gguf_kv_arr_str(f, kv, i, out);
}

int gguf_kv_arr_f32(const struct gguf_kv *kv, uint64_t i, float *out)
{
    if (!kv || kv->type != GGUF_TYPE_ARRAY || kv->arr_type != GGUF_TYPE_FLOAT32)
        return GGUF_ETYPE;
    if (i >= kv->arr_n)
        return GGUF_ERANGE;
    uint32_t bits = ld32(kv->data + 4 * i);
    memcpy(out, &bits, sizeof(*out));
    return 0;
}

int gguf_arr_f32(const struct gguf_file *f, const char *key, uint64_t i, float *out)
{
    const struct gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv)
        return GGUF_ENOTFOUND;
    return gguf_kv_arr_f32(kv, i, out);
}

int gguf_kv_arr_i32(const struct gguf_kv *kv, uint64_t i, int32_t *out)
{
    if (!kv || kv->type != GGUF_TYPE_ARRAY || !is_int_type(kv->arr_type))
        return GGUF_ETYPE;
    if (i >= kv->arr_n)
        return GGUF_ERANGE;
    bool big;
    uint64_t u;
    int64_t v = load_signed(kv->arr_type, kv->data + gguf_type_size(kv->arr_type) * i, &big, &u);
    if (big || v < INT32_MIN || v > INT32_MAX)
        return GGUF_ERANGE;
    *out = (int32_t)v;
    return 0;
}

int gguf_arr_i32(const struct gguf_file *f, const char *key, uint64_t i, int32_t *out)
{
    const struct gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv)
        return GGUF_ENOTFOUND;
    return gguf_kv_arr_i32(kv, i, out);
}

uint64_t gguf_n_tensors(const struct gguf_file *f)
{
    return f->n_tensors;
}

const struct gguf_tensor *gguf_tensor_at(const struct gguf_file *f, uint64_t i)
{
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *f, const char *name)
{
    if (!name)
        return NULL;
    int64_t i = hash_find(f, f->t_hash, f->t_hash_mask, tensor_name, name, strlen(name));
    return i < 0 ? NULL : &f->tensors[i];
}
