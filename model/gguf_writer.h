/* gguf_writer.h - builds a GGUF file (version 3 unless told otherwise) in memory and
 * writes it to a file or a heap buffer. Used by tests (to make good and deliberately
 * bad files) and by the model generator.
 *
 * The writer checks only what it needs to lay the file out: it does NOT validate
 * keys, duplicates, shapes or types, so tests can write files the reader must refuse.
 * Tensor data is laid out in insertion order, each tensor at a multiple of the
 * alignment: the value of a u32 "general.alignment" kv when that is a power of two,
 * else 32. Errors are negative GGUF_E* codes (gguf.h). Not thread-safe.
 */
#ifndef CHATD_GGUF_WRITER_H
#define CHATD_GGUF_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gguf_writer;

/* Returns a new empty writer or NULL; free with gguf_writer_free. */
struct gguf_writer *gguf_writer_new(void);
void gguf_writer_free(struct gguf_writer *w); /* accepts NULL */

/* Overrides the version field written in the header (default 3). */
void gguf_writer_set_version(struct gguf_writer *w, uint32_t version);

/* Scalar kvs. */
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
