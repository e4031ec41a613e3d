/* gguf.h - a bounds-checked reader of GGUF model files (versions 2 and 3).
 *
 * Format (little-endian):
 *   magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv x { string key | u32 type | value }           (metadata)
 *   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
 *   padding to general.alignment (default 32), then the tensor data blob; each tensor's
 *   offset is relative to the blob start.
 *   string = u64 len | bytes (no NUL); array = u32 elem_type | u64 n | n x elem.
 *
 * The whole file is memory-mapped read-only and validated on open (rules R1-R15 of
 * RELIABILITY.md); nothing outside the mapping is ever read. All pointers returned
 * below are borrowed until gguf_close(). Opening keeps no global state; readers of
 * an open file may run on any thread.
 */
#ifndef CHATD_GGUF_H
#define CHATD_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum gguf_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
};

/* ggml tensor types (the ids stored in GGUF tensor infos). */
enum ggml_type {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6,
    GGML_TYPE_Q5_1 = 7,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_Q8_1 = 9,
    GGML_TYPE_Q2_K = 10,
    GGML_TYPE_Q3_K = 11,
    GGML_TYPE_Q4_K = 12,
    GGML_TYPE_Q5_K = 13,
    GGML_TYPE_Q6_K = 14,
    GGML_TYPE_Q8_K = 15,
    GGML_TYPE_BF16 = 30,
    GGML_TYPE_COUNT = 40
};

/* Error codes (negative) returned by every gguf_ function that returns int. */
#define GGUF_ERRORS(X)                                                                    \
    X(GGUF_EIO, -1, "I/O error")                                                          \
    X(GGUF_EFORMAT, -2, "malformed GGUF file")                                            \
    X(GGUF_ENOMEM, -3, "out of memory")                                                   \
    X(GGUF_ENOTFOUND, -4, "key not found")                                                \
    X(GGUF_ETYPE, -5, "value has another type")                                           \
    X(GGUF_ERANGE, -6, "value or index out of range")                                     \
    X(GGUF_EINVAL, -7, "invalid argument")

enum gguf_error {
#define GGUF_ERR_ENUM_(name, code, text) name = code,
    GGUF_ERRORS(GGUF_ERR_ENUM_)
#undef GGUF_ERR_ENUM_
};

/* Loader limits (RELIABILITY.md R2-R4, R8, R9). */
#define GGUF_MAX_STRING (1u << 20)         /* one key or string value */
#define GGUF_MAX_STRING_ARRAY (64u << 20)  /* all strings of one array (the tokens) */
#define GGUF_MAX_ARRAY_N (1u << 24)
#define GGUF_MAX_KV 65536u
#define GGUF_MAX_TENSORS 65536u
#define GGUF_MAX_NE (1ull << 40)
#define GGUF_MAX_NAME 64u                  /* tensor name bytes, as ggml's GGML_MAX_NAME */
#define GGUF_DEFAULT_ALIGNMENT 32u

/* Static text of an error code ("malformed GGUF file"); "unknown error" otherwise. */
const char *gguf_strerror(int code);

/* Size in bytes of one scalar element of a GGUF value type (0 for STRING, ARRAY and
 * unknown types). */
size_t gguf_type_size(uint32_t gguf_type);
const char *gguf_value_type_name(uint32_t gguf_type); /* "u32", "string", ... or "?" */

/* Block geometry of a ggml type: `block_elems` values stored in `block_bytes` bytes.
 * Returns false for an unknown type id. */
bool gguf_type_block(uint32_t ggml_type, uint32_t *block_elems, uint32_t *block_bytes);
const char *gguf_type_name(uint32_t ggml_type); /* "Q8_0", or "?" */

/* 64-bit FNV-1a over len bytes, continuing from h (start with GGUF_FNV1A_BASIS): the
 * name index here, and fingerprints of model files and templates. */
#define GGUF_FNV1A_BASIS 14695981039346656037ull
uint64_t gguf_fnv1a(uint64_t h, const void *data, size_t len);

struct gguf_str {
    const char *ptr; /* into the mapping; NOT NUL-terminated */
    uint64_t len;
};

struct gguf_kv {
    struct gguf_str key;
    uint32_t type;       /* enum gguf_type */
    uint32_t arr_type;   /* element type when type == ARRAY */
    uint64_t arr_n;      /* element count when type == ARRAY */
    const uint8_t *data; /* the value (or the first array element) in the mapping */
};

struct gguf_tensor {
    struct gguf_str name;
    uint32_t n_dims;
    uint64_t ne[4];      /* fastest-first; unused dims are 1 */
    uint32_t type;       /* enum ggml_type */
    uint64_t offset;     /* relative to the data blob */
    uint64_t nbytes;
    const void *data;    /* in the mapping */
};

struct gguf_file;

/* Opens and validates `path`. On failure returns a negative code, sets *out to NULL
 * and writes a one-line message naming the offset and problem into err. */
int gguf_open(struct gguf_file **out, const char *path, char *err, size_t err_len);
/* The same over a caller-owned buffer (borrowed until gguf_close), used by fuzzers. */
int gguf_open_buffer(struct gguf_file **out, const void *buf, size_t len, char *err,
                     size_t err_len);
void gguf_close(struct gguf_file *f); /* accepts NULL */

uint32_t gguf_version(const struct gguf_file *f);
size_t gguf_file_size(const struct gguf_file *f);
uint32_t gguf_alignment(const struct gguf_file *f);

uint64_t gguf_n_kv(const struct gguf_file *f);
const struct gguf_kv *gguf_kv_at(const struct gguf_file *f, uint64_t i);
const struct gguf_kv *gguf_find_kv(const struct gguf_file *f, const char *key); /* or NULL */

/* Typed getters: 0 on success; a negative code when the key is missing or has
 * another type (R10, R11). Integer getters accept any integer type whose value fits. */
int gguf_get_u32(const struct gguf_file *f, const char *key, uint32_t *out);
int gguf_get_i64(const struct gguf_file *f, const char *key, int64_t *out);
int gguf_get_f32(const struct gguf_file *f, const char *key, float *out);
int gguf_get_bool(const struct gguf_file *f, const char *key, bool *out);
/* Copies the string value into a fresh NUL-terminated heap string (caller frees);
 * refuses strings with embedded NUL bytes. */
int gguf_get_str(const struct gguf_file *f, const char *key, char **out);
/* Array accessors: type and count of an array value, then element access. */
int gguf_get_arr(const struct gguf_file *f, const char *key, uint32_t *elem_type, uint64_t *n);
int gguf_arr_str(const struct gguf_file *f, const char *key, uint64_t i, struct gguf_str *out);
int gguf_arr_f32(const struct gguf_file *f, const char *key, uint64_t i, float *out);
/* gguf_arr_i32 accepts any integer element type whose value fits in int32. */
int gguf_arr_i32(const struct gguf_file *f, const char *key, uint64_t i, int32_t *out);

/* The same by kv handle (from gguf_find_kv / gguf_kv_at), skipping the key lookup:
 * for loops over large arrays such as the vocabulary. gguf_kv_str reads a STRING value
 * (borrowed, not NUL-terminated). */
int gguf_kv_str(const struct gguf_kv *kv, struct gguf_str *out);
int gguf_kv_arr_str(const struct gguf_file *f, const struct gguf_kv *kv, uint64_t i,
                    struct gguf_str *out);
int gguf_kv_arr_f32(const struct gguf_kv *kv, uint64_t i, float *out);
int gguf_kv_arr_i32(const struct gguf_kv *kv, uint64_t i, int32_t *out);

/* Byte offset of the tensor data blob in the file. */
size_t gguf_data_offset(const struct gguf_file *f);

uint64_t gguf_n_tensors(const struct gguf_file *f);
const struct gguf_tensor *gguf_tensor_at(const struct gguf_file *f, uint64_t i);
const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *f, const char *name);

/* ==== writer ==== */

/* The writer builds a GGUF file (version 3 unless told otherwise) in memory and
 * writes it to a file or a heap buffer. Used by tests (to make good and deliberately
 * bad files) and by the model generator.
 *
 * The writer checks only what it needs to lay the file out: it does NOT validate
 * keys, duplicates, shapes or types, so tests can write files the reader must refuse.
 * Tensor data is laid out in insertion order, each tensor at a multiple of the
 * alignment: the value of a u32 "general.alignment" kv when that is a power of two,
 * else 32. Errors are negative GGUF_E* codes (gguf.h). Not thread-safe.
 */

struct gguf_writer;

/* Returns a new empty writer or NULL; free with gguf_writer_free. */
struct gguf_writer *gguf_writer_new(void);
void gguf_writer_free(struct gguf_writer *w); /* accepts NULL */

/* Overrides the version field written in the header (default 3). */
void gguf_writer_set_version(struct gguf_writer *w, uint32_t version);

/* A scalar kv of GGUF type `type` (not STRING or ARRAY) whose value is read from
 * `value`: gguf_type_size(type) bytes in host order, such as a gguf_kv's data. Returns
 * GGUF_EINVAL for STRING, ARRAY and unknown types. */
int gguf_writer_add_scalar(struct gguf_writer *w, const char *key, uint32_t type,
                           const void *value);
/* Typed scalar kvs. */
int gguf_writer_add_u8(struct gguf_writer *w, const char *key, uint8_t v);
int gguf_writer_add_i8(struct gguf_writer *w, const char *key, int8_t v);
int gguf_writer_add_u16(struct gguf_writer *w, const char *key, uint16_t v);
int gguf_writer_add_i16(struct gguf_writer *w, const char *key, int16_t v);
int gguf_writer_add_u32(struct gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_add_i32(struct gguf_writer *w, const char *key, int32_t v);
int gguf_writer_add_u64(struct gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_add_i64(struct gguf_writer *w, const char *key, int64_t v);
int gguf_writer_add_f32(struct gguf_writer *w, const char *key, float v);
int gguf_writer_add_f64(struct gguf_writer *w, const char *key, double v);
int gguf_writer_add_bool(struct gguf_writer *w, const char *key, bool v);
/* A string value (NUL-terminated, or `len` bytes for _strn). */
int gguf_writer_add_str(struct gguf_writer *w, const char *key, const char *s);
int gguf_writer_add_strn(struct gguf_writer *w, const char *key, const char *s, size_t len);

/* An array of n scalars of GGUF type elem_type (not STRING/ARRAY), from host values
 * (each element sizeof the C type of that GGUF type; written little-endian). */
int gguf_writer_add_arr(struct gguf_writer *w, const char *key, uint32_t elem_type,
                        const void *data, uint64_t n);
int gguf_writer_add_arr_f32(struct gguf_writer *w, const char *key, const float *v, uint64_t n);
int gguf_writer_add_arr_i32(struct gguf_writer *w, const char *key, const int32_t *v,
                            uint64_t n);
/* An array of n NUL-terminated strings. */
int gguf_writer_add_arr_str(struct gguf_writer *w, const char *key, const char *const *s,
                            uint64_t n);

/* A tensor: name, ggml type, n_dims (1-4) dims fastest-first, and its bytes. The data
 * is copied (add_tensor) or borrowed until the writer is freed (add_tensor_ref). The
 * writer does not check nbytes against the shape. */
int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, uint32_t ggml_type,
                           uint32_t n_dims, const uint64_t *ne, const void *data, size_t nbytes);
int gguf_writer_add_tensor_ref(struct gguf_writer *w, const char *name, uint32_t ggml_type,
                               uint32_t n_dims, const uint64_t *ne, const void *data,
                               size_t nbytes);

/* Writes the file (creates or truncates `path`). */
int gguf_writer_write_file(const struct gguf_writer *w, const char *path);
/* Writes into a fresh heap buffer: *buf (caller frees with free()) of *len bytes. */
int gguf_writer_write_mem(const struct gguf_writer *w, void **buf, size_t *len);

#endif
