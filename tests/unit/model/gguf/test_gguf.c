/* test_gguf.c - the GGUF reader and writer: one test per loader rule (R1-R10, R13,
 * R14 of RELIABILITY.md) with a hand-made bad file, writer round trips, and every
 * fixture model and vocab file opened and read. */
#include "gguf.h"
#include "test.h"

#include <stdbool.h>
#include <unistd.h>

/* ---- helpers --------------------------------------------------------------------- */

struct raw {
    uint8_t *p;
    size_t n;
};

static void raw_put(struct raw *r, const void *p, size_t n)
{
    r->p = realloc(r->p, r->n + n + 1);
    memcpy(r->p + r->n, p, n);
    r->n += n;
}

static void raw_u32(struct raw *r, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    raw_put(r, b, 4);
}

static void raw_u64(struct raw *r, uint64_t v)
{
    raw_u32(r, (uint32_t)v);
    raw_u32(r, (uint32_t)(v >> 32));
}

static void raw_str(struct raw *r, const char *s)
{
    raw_u64(r, strlen(s));
    raw_put(r, s, strlen(s));
}

static void raw_header(struct raw *r, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    raw_put(r, "GGUF", 4);
    raw_u32(r, version);
    raw_u64(r, n_tensors);
    raw_u64(r, n_kv);
}

/* A version-3 header with no tensors and one kv, then that kv's key and type tag. */
static void raw_one_kv(struct raw *r, const char *key, uint32_t type)
{
    raw_header(r, 3, 0, 1);
    raw_str(r, key);
    raw_u32(r, type);
}

static char errbuf[512];

/* Opens a copy of buf of exactly len bytes (so ASan sees any over-read). */
static int open_copy(const void *buf, size_t len)
{
    void *copy = malloc(len ? len : 1);
    memcpy(copy, buf, len);
    struct gguf_file *f = NULL;
    errbuf[0] = 0;
    int rc = gguf_open_buffer(&f, copy, len, errbuf, sizeof(errbuf));
    if (rc == 0 && !f)
        rc = 1;
    gguf_close(f);
    free(copy);
    return rc;
}

static int open_raw(struct raw *r)
{
    int rc = open_copy(r->p, r->n);
    free(r->p);
    r->p = NULL;
    r->n = 0;
    return rc;
}

/* A small valid file: a few kvs and two F32 tensors. */
static struct gguf_writer *good_writer(void)
{
    struct gguf_writer *w = gguf_writer_new();
    static float a[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    static float b[3] = {9, 10, 11};
    uint64_t ne_a[2] = {4, 2};
    uint64_t ne_b[1] = {3};
    gguf_writer_add_str(w, "general.architecture", "llama");
    gguf_writer_add_u32(w, "llama.block_count", 2);
    gguf_writer_add_tensor(w, "a.weight", GGML_TYPE_F32, 2, ne_a, a, sizeof(a));
    gguf_writer_add_tensor(w, "b.weight", GGML_TYPE_F32, 1, ne_b, b, sizeof(b));
    return w;
}

/* Writes w into a malloc'd buffer and frees w; returns gguf_writer_write_mem's code. */
static int write_mem_free(struct gguf_writer *w, void **buf, size_t *len)
{
    int rc = gguf_writer_write_mem(w, buf, len);
    gguf_writer_free(w);
    return rc;
}

static int open_writer(struct gguf_writer *w)
{
    void *buf;
    size_t len;
    if (write_mem_free(w, &buf, &len) != 0)
        return 99;
    int rc = open_copy(buf, len);
    free(buf);
    return rc;
}

/* Position of the tensor info of `name` in buf: just after its name bytes. */
static size_t info_after_name(const uint8_t *buf, size_t len, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 8; i + nl <= len; i++)
        if (memcmp(buf + i, name, nl) == 0 && buf[i - 8] == nl)
            return i + nl;
    return 0;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Writes the good file, sets the data offset of tensor `name` to `off`, opens it. */
static int open_with_offset(const char *name, uint64_t off)
{
    void *buf;
    size_t len;
    struct gguf_writer *w = good_writer();
    write_mem_free(w, &buf, &len);
    size_t at = info_after_name(buf, len, name);
    uint32_t n_dims = ((uint8_t *)buf)[at];
    put64((uint8_t *)buf + at + 4 + 8 * n_dims + 4, off);
    int rc = open_copy(buf, len);
    free(buf);
    return rc;
}

/* The open `call` is refused as malformed and its message contains `msg`. */
#define ASSERT_EFORMAT(call, msg) ASSERT_ERR(call, GGUF_EFORMAT, errbuf, msg)

/* ---- good files ------------------------------------------------------------------ */

static void test_good_minimal(void)
{
    ASSERT_INT_EQ(open_writer(good_writer()), 0);
    struct raw r = {0};
    raw_header(&r, 3, 0, 0);
    ASSERT_INT_EQ(open_raw(&r), 0);
    raw_header(&r, 2, 0, 0);
    ASSERT_INT_EQ(open_raw(&r), 0);
}

static void test_writer_roundtrip(void)
{
    struct gguf_writer *w = gguf_writer_new();
    const char *strs[3] = {"a", "", "hello world"};
    float fa[3] = {1.5f, -2.0f, 3.25f};
    int32_t ia[4] = {-1, 0, 7, 2147483647};
    uint16_t ua[2] = {1, 65535};
    gguf_writer_add_u8(w, "t.u8", 200);
    gguf_writer_add_i8(w, "t.i8", -100);
    gguf_writer_add_u16(w, "t.u16", 60000);
    gguf_writer_add_i16(w, "t.i16", -30000);
    gguf_writer_add_u32(w, "t.u32", 4000000000u);
    gguf_writer_add_i32(w, "t.i32", -2000000000);
    gguf_writer_add_u64(w, "t.u64", 1ull << 40);
    gguf_writer_add_i64(w, "t.i64", -(1ll << 40));
    gguf_writer_add_f32(w, "t.f32", 0.125f);
    gguf_writer_add_f64(w, "t.f64", 2.5);
    gguf_writer_add_bool(w, "t.bool", true);
    gguf_writer_add_str(w, "t.str", "héllo");
    gguf_writer_add_arr_str(w, "t.astr", strs, 3);
    gguf_writer_add_arr_f32(w, "t.af32", fa, 3);
    gguf_writer_add_arr_i32(w, "t.ai32", ia, 4);
    gguf_writer_add_arr(w, "t.au16", GGUF_TYPE_UINT16, ua, 2);
    gguf_writer_add_u32(w, "general.alignment", 64);
    uint8_t q[2 * 34];
    for (size_t i = 0; i < sizeof(q); i++)
        q[i] = (uint8_t)i;
    uint64_t ne[2] = {32, 2};
    gguf_writer_add_tensor(w, "q", GGML_TYPE_Q8_0, 2, ne, q, sizeof(q));
    uint64_t ne1[1] = {5};
    float five[5] = {1, 2, 3, 4, 5};
    gguf_writer_add_tensor(w, "f", GGML_TYPE_F32, 1, ne1, five, sizeof(five));
    void *buf;
    size_t len;
    ASSERT_INT_EQ(write_mem_free(w, &buf, &len), 0);

    struct gguf_file *f;
    int rc = gguf_open_buffer(&f, buf, len, errbuf, sizeof(errbuf));
    if (rc)
        fprintf(stderr, "  %s\n", errbuf);
    ASSERT_INT_EQ(rc, 0);
    uint32_t u32 = 0;
    int64_t i64 = 0;
    float f32 = 0;
    bool b = false;
    char *s = NULL;
    ASSERT_INT_EQ(gguf_get_u32(f, "t.u8", &u32), 0);
    ASSERT_INT_EQ(u32, 200);
    ASSERT_INT_EQ(gguf_get_i64(f, "t.i8", &i64), 0);
    ASSERT_INT_EQ(i64, -100);
    ASSERT_INT_EQ(gguf_get_u32(f, "t.u16", &u32), 0);
    ASSERT_INT_EQ(u32, 60000);
    ASSERT_INT_EQ(gguf_get_i64(f, "t.i16", &i64), 0);
    ASSERT_INT_EQ(i64, -30000);
    ASSERT_INT_EQ(gguf_get_u32(f, "t.u32", &u32), 0);
    ASSERT_INT_EQ(u32, 4000000000u);
    ASSERT_INT_EQ(gguf_get_i64(f, "t.i32", &i64), 0);
    ASSERT_INT_EQ(i64, -2000000000);
    ASSERT_INT_EQ(gguf_get_i64(f, "t.u64", &i64), 0);
    ASSERT_INT_EQ(i64, 1ll << 40);
    ASSERT_INT_EQ(gguf_get_i64(f, "t.i64", &i64), 0);
    ASSERT_INT_EQ(i64, -(1ll << 40));
    ASSERT_INT_EQ(gguf_get_f32(f, "t.f32", &f32), 0);
    ASSERT_NEAR(f32, 0.125, 0);
    ASSERT_INT_EQ(gguf_get_f32(f, "t.f64", &f32), 0);
    ASSERT_NEAR(f32, 2.5, 0);
    ASSERT_INT_EQ(gguf_get_bool(f, "t.bool", &b), 0);
    ASSERT_TRUE(b);
    ASSERT_INT_EQ(gguf_get_str(f, "t.str", &s), 0);
    ASSERT_STR_EQ(s, "héllo");
    free(s);
    uint32_t et;
    uint64_t n;
    struct gguf_str gs;
    ASSERT_INT_EQ(gguf_get_arr(f, "t.astr", &et, &n), 0);
    ASSERT_INT_EQ(et, GGUF_TYPE_STRING);
    ASSERT_INT_EQ(n, 3);
    for (int i = 0; i < 3; i++) {
        ASSERT_INT_EQ(gguf_arr_str(f, "t.astr", i, &gs), 0);
        ASSERT_INT_EQ(gs.len, strlen(strs[i]));
        ASSERT_TRUE(memcmp(gs.ptr, strs[i], gs.len) == 0);
    }
    for (int i = 0; i < 3; i++) {
        ASSERT_INT_EQ(gguf_arr_f32(f, "t.af32", i, &f32), 0);
        ASSERT_NEAR(f32, fa[i], 0);
    }
    for (int i = 0; i < 4; i++) {
        int32_t v;
        ASSERT_INT_EQ(gguf_arr_i32(f, "t.ai32", i, &v), 0);
        ASSERT_INT_EQ(v, ia[i]);
    }
    int32_t v16;
    ASSERT_INT_EQ(gguf_arr_i32(f, "t.au16", 1, &v16), 0);
    ASSERT_INT_EQ(v16, 65535);
    ASSERT_INT_EQ(gguf_alignment(f), 64);
    ASSERT_INT_EQ(gguf_n_tensors(f), 2);
    const struct gguf_tensor *t = gguf_find_tensor(f, "q");
    ASSERT_TRUE(t != NULL);
    ASSERT_INT_EQ(t->nbytes, 68);
    ASSERT_INT_EQ(t->ne[0], 32);
    ASSERT_INT_EQ(t->ne[1], 2);
    ASSERT_INT_EQ(t->ne[2], 1);
    ASSERT_TRUE(memcmp(t->data, q, sizeof(q)) == 0);
    ASSERT_INT_EQ(gguf_data_offset(f) % 64, 0);
    t = gguf_find_tensor(f, "f");
    ASSERT_TRUE(t != NULL);
    ASSERT_INT_EQ(t->offset % 64, 0);
    ASSERT_TRUE(memcmp(t->data, five, sizeof(five)) == 0);
    ASSERT_TRUE(gguf_find_tensor(f, "nope") == NULL);
    gguf_close(f);
    free(buf);
}

static void test_writer_file(void)
{
    char path[] = "/tmp/chatd-test-gguf-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_TRUE(fd >= 0);
    close(fd);
    struct gguf_writer *w = good_writer();
    ASSERT_INT_EQ(gguf_writer_write_file(w, path), 0);
    gguf_writer_free(w);
    struct gguf_file *f;
    int rc = gguf_open(&f, path, errbuf, sizeof(errbuf));
    remove(path);
    ASSERT_INT_EQ(rc, 0);
    ASSERT_INT_EQ(gguf_n_tensors(f), 2);
    const struct gguf_tensor *t = gguf_find_tensor(f, "b.weight");
    ASSERT_TRUE(t != NULL);
    ASSERT_NEAR(((const float *)t->data)[2], 11, 0);
    gguf_close(f);
    ASSERT_INT_OP(gguf_open(&f, "/nonexistent/x.gguf", errbuf, sizeof(errbuf)), <, 0);
    ASSERT_TRUE(f == NULL);
}

struct fixture_model {
    const char *path;
    const char *arch;
    uint64_t n_vocab;
    uint64_t n_tensors;
};

static void test_fixture_files(void)
{
    static const struct fixture_model fm[] = {
        {"models/tiny-llama-f32.gguf", "llama", 32000, 20},
        {"models/tiny-llama-q4_0.gguf", "llama", 32000, 20},
        {"models/tiny-qwen2-q8_0.gguf", "qwen2", 50259, 27},
        {"models/small-llama-kq-q4_k_m.gguf", "llama", 32000, 20},
        {"tokenizer/ggml-vocab-llama-spm.gguf", "llama", 32000, 0},
        {"tokenizer/ggml-vocab-gpt-2.gguf", "gpt2", 50257, 0},
        {"tokenizer/ggml-vocab-qwen3.gguf", "qwen2", 151936, 0},
    };
    for (size_t i = 0; i < sizeof(fm) / sizeof(fm[0]); i++) {
        struct gguf_file *f;
        int rc = gguf_open(&f, test_fixture(fm[i].path), errbuf, sizeof(errbuf));
        if (rc)
            fprintf(stderr, "  %s: %s\n", fm[i].path, errbuf);
        ASSERT_INT_EQ(rc, 0);
        char *arch = NULL;
        ASSERT_INT_EQ(gguf_get_str(f, "general.architecture", &arch), 0);
        ASSERT_STR_EQ(arch, fm[i].arch);
        free(arch);
        uint32_t et;
        uint64_t n;
        ASSERT_INT_EQ(gguf_get_arr(f, "tokenizer.ggml.tokens", &et, &n), 0);
        ASSERT_INT_EQ(et, GGUF_TYPE_STRING);
        ASSERT_INT_EQ(n, fm[i].n_vocab);
        struct gguf_str s;
        ASSERT_INT_EQ(gguf_arr_str(f, "tokenizer.ggml.tokens", n - 1, &s), 0);
        ASSERT_INT_EQ(gguf_arr_str(f, "tokenizer.ggml.tokens", n, &s), GGUF_ERANGE);
        ASSERT_INT_EQ(gguf_n_tensors(f), fm[i].n_tensors);
        for (uint64_t k = 0; k < gguf_n_tensors(f); k++) {
            const struct gguf_tensor *t = gguf_tensor_at(f, k);
            ASSERT_TRUE((const uint8_t *)t->data + t->nbytes <=
                        (const uint8_t *)gguf_tensor_at(f, 0)->data - gguf_tensor_at(f, 0)->offset +
                            (gguf_file_size(f) - gguf_data_offset(f)));
        }
        gguf_close(f);
    }
    /* Spot values from the fixtures README. */
    struct gguf_file *f;
    ASSERT_INT_EQ(gguf_open(&f, test_fixture("models/tiny-llama-f32.gguf"), errbuf, sizeof(errbuf)), 0);
    uint32_t v;
    ASSERT_INT_EQ(gguf_get_u32(f, "llama.embedding_length", &v), 0);
    ASSERT_INT_EQ(v, 64);
    ASSERT_INT_EQ(gguf_get_u32(f, "llama.block_count", &v), 0);
    ASSERT_INT_EQ(v, 2);
    ASSERT_INT_EQ(gguf_get_u32(f, "llama.context_length", &v), 0);
    ASSERT_INT_EQ(v, 512);
    float eps;
    ASSERT_INT_EQ(gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &eps), 0);
    ASSERT_NEAR(eps, 1e-5, 1e-12);
    struct gguf_str s;
    ASSERT_INT_EQ(gguf_arr_str(f, "tokenizer.ggml.tokens", 1, &s), 0);
    ASSERT_TRUE(s.len == 3 && memcmp(s.ptr, "<s>", 3) == 0);
    const struct gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
    ASSERT_TRUE(t != NULL);
    ASSERT_INT_EQ(t->type, GGML_TYPE_F32);
    ASSERT_INT_EQ(t->ne[0], 64);
    ASSERT_INT_EQ(t->ne[1], 32000);
    ASSERT_INT_EQ(t->nbytes, 64 * 32000 * 4);
    ASSERT_TRUE(gguf_find_tensor(f, "output.weight") == NULL);
    gguf_close(f);
    ASSERT_INT_EQ(gguf_open(&f, test_fixture("models/small-llama-kq-q4_k_m.gguf"), errbuf, sizeof(errbuf)), 0);
    t = gguf_find_tensor(f, "token_embd.weight");
    ASSERT_TRUE(t != NULL);
    ASSERT_STR_EQ(gguf_type_name(t->type), "Q6_K");
    ASSERT_INT_EQ(t->nbytes, 256 / 256 * 210 * 32000);
    t = gguf_find_tensor(f, "blk.0.attn_q.weight");
    ASSERT_TRUE(t != NULL);
    ASSERT_STR_EQ(gguf_type_name(t->type), "Q4_K");
    gguf_close(f);
}

/* ---- R1: magic and version ------------------------------------------------------- */

static void test_r1_magic_version(void)
{
    struct raw r = {0};
    raw_put(&r, "GGUX", 4);
    raw_u32(&r, 3);
    raw_u64(&r, 0);
    raw_u64(&r, 0);
    ASSERT_EFORMAT(open_raw(&r), "offset 0: bad magic");
    raw_header(&r, 1, 0, 0);
    ASSERT_EFORMAT(open_raw(&r), "offset 4: unsupported version 1");
    raw_header(&r, 4, 0, 0);
    ASSERT_INT_EQ(open_raw(&r), GGUF_EFORMAT);
    raw_header(&r, 0x03000000, 0, 0);
    ASSERT_EFORMAT(open_raw(&r), "byte-swapped");
    ASSERT_INT_EQ(open_copy("GG", 2), GGUF_EFORMAT);
    ASSERT_INT_EQ(open_copy("", 0), GGUF_EFORMAT);
}

/* ---- R2: string lengths ---------------------------------------------------------- */

static void test_r2_string_length(void)
{
    struct raw r = {0};
    raw_header(&r, 3, 0, 1);
    raw_u64(&r, 9999999999ull);
    raw_put(&r, "general.name", 12);
    ASSERT_EFORMAT(open_raw(&r), "offset 24: key length 9999999999 exceeds remaining");

    /* a 1 MiB + 1 string value, all present */
    size_t big = (1u << 20) + 1;
    char *s = malloc(big + 1);
    memset(s, 'x', big);
    s[big] = 0;
    struct gguf_writer *w = gguf_writer_new();
    gguf_writer_add_str(w, "general.name", s);
    ASSERT_EFORMAT(open_writer(w), "exceeds the limit of 1048576");
    /* exactly 1 MiB is fine */
    s[big - 1] = 0;
    w = gguf_writer_new();
    gguf_writer_add_str(w, "general.name", s);
    ASSERT_INT_EQ(open_writer(w), 0);

    /* string array over 64 MiB in total: 65 strings of 1 MiB */
    const char *arr[65];
    for (int i = 0; i < 65; i++)
        arr[i] = s;
    w = gguf_writer_new();
    gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", arr, 65);
    ASSERT_EFORMAT(open_writer(w), "in total");
    free(s);

    /* string value whose length runs past the end */
    raw_one_kv(&r, "general.name", GGUF_TYPE_STRING);
    raw_u64(&r, 100);
    raw_put(&r, "abc", 3);
    ASSERT_EFORMAT(open_raw(&r), "offset 48: string value length 100 exceeds remaining 3 bytes");
}

/* ---- R3: array sizes ------------------------------------------------------------- */

static void test_r3_array_size(void)
{
    struct raw r = {0};
    raw_one_kv(&r, "a.b", GGUF_TYPE_ARRAY);
    raw_u32(&r, GGUF_TYPE_UINT32);
    raw_u64(&r, (1u << 24) + 1);
    ASSERT_EFORMAT(open_raw(&r), "array length 16777217 exceeds the limit");

    raw_one_kv(&r, "a.b", GGUF_TYPE_ARRAY);
    raw_u32(&r, GGUF_TYPE_UINT64);
    raw_u64(&r, 1000);
    raw_u64(&r, 1);
    ASSERT_EFORMAT(open_raw(&r), "exceeds remaining 8 bytes");

    raw_one_kv(&r, "a.b", GGUF_TYPE_ARRAY);
    raw_u32(&r, GGUF_TYPE_STRING);
    raw_u64(&r, 1u << 24);
    raw_u64(&r, 0);
    ASSERT_EFORMAT(open_raw(&r), "strings exceeds remaining");
}

/* ---- R4: counts ------------------------------------------------------------------ */

static void test_r4_counts(void)
{
    struct raw r = {0};
    raw_header(&r, 3, 0, 65537);
    ASSERT_EFORMAT(open_raw(&r), "kv count 65537");
    raw_header(&r, 3, 65537, 0);
    ASSERT_EFORMAT(open_raw(&r), "tensor count 65537");
    /* within the cap, but more than the remaining bytes can hold */
    raw_header(&r, 3, 0, 1000);
    raw_str(&r, "a.b");
    raw_u32(&r, GGUF_TYPE_UINT8);
    raw_put(&r, "\1", 1);
    ASSERT_EFORMAT(open_raw(&r), "offset 16: kv count 1000");
    raw_header(&r, 3, 2, 0);
    raw_str(&r, "t");
    ASSERT_EFORMAT(open_raw(&r), "offset 8: tensor count 2");
}

/* ---- R5: keys -------------------------------------------------------------------- */

static void test_r5_keys(void)
{
    struct gguf_writer *w = gguf_writer_new();
    gguf_writer_add_u32(w, "", 1);
    ASSERT_EFORMAT(open_writer(w), "offset 24: empty key");

    w = gguf_writer_new();
    gguf_writer_add_u32(w, "a.b", 1);
    gguf_writer_add_u32(w, "a.c", 1);
    gguf_writer_add_str(w, "a.b", "again");
    ASSERT_EFORMAT(open_writer(w), "duplicate key 'a.b'");

    static const char *bad[] = {"a b", "a/b", "a\nb", "k\xc3\xa9", "a\0b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct raw r = {0};
        raw_header(&r, 3, 0, 1);
        raw_u64(&r, 3);
        raw_put(&r, bad[i], 3);
        raw_u32(&r, GGUF_TYPE_UINT8);
        raw_put(&r, "\1", 1);
        ASSERT_EFORMAT(open_raw(&r), "key contains byte");
    }
    w = gguf_writer_new();
    gguf_writer_add_u32(w, "Ab-9_x.y", 1);
    ASSERT_INT_EQ(open_writer(w), 0);

    /* tensor names: non-empty, unique, at most 64 bytes */
    w = gguf_writer_new();
    float x[4] = {0};
    uint64_t ne[1] = {4};
    gguf_writer_add_tensor(w, "t", GGML_TYPE_F32, 1, ne, x, sizeof(x));
    gguf_writer_add_tensor(w, "t", GGML_TYPE_F32, 1, ne, x, sizeof(x));
    ASSERT_EFORMAT(open_writer(w), "duplicate tensor name 't'");
    w = gguf_writer_new();
    gguf_writer_add_tensor(w, "", GGML_TYPE_F32, 1, ne, x, sizeof(x));
    ASSERT_EFORMAT(open_writer(w), "empty tensor name");
    char longname[66];
    memset(longname, 'n', 65);
    longname[65] = 0;
    w = gguf_writer_new();
    gguf_writer_add_tensor(w, longname, GGML_TYPE_F32, 1, ne, x, sizeof(x));
    ASSERT_EFORMAT(open_writer(w), "tensor name length 65 exceeds the limit of 64");
}

/* ---- R6: type tags --------------------------------------------------------------- */

static void test_r6_types(void)
{
    struct raw r = {0};
    raw_one_kv(&r, "a.b", 13);
    raw_u32(&r, 0);
    ASSERT_EFORMAT(open_raw(&r), "offset 35: key 'a.b': unknown value type 13");

    raw_one_kv(&r, "a.b", GGUF_TYPE_ARRAY);
    raw_u32(&r, GGUF_TYPE_ARRAY);
    raw_u64(&r, 1);
    raw_u32(&r, GGUF_TYPE_UINT8);
    raw_u64(&r, 1);
    raw_put(&r, "\1", 1);
    ASSERT_EFORMAT(open_raw(&r), "array of arrays");

    raw_one_kv(&r, "a.b", GGUF_TYPE_ARRAY);
    raw_u32(&r, 0xffffffffu);
    raw_u64(&r, 0);
    ASSERT_EFORMAT(open_raw(&r), "unknown array element type 4294967295");

    raw_one_kv(&r, "a.b", GGUF_TYPE_BOOL);
    raw_put(&r, "\2", 1);
    ASSERT_EFORMAT(open_raw(&r), "not 0 or 1");

    /* unknown ggml tensor type */
    struct gguf_writer *w = gguf_writer_new();
    uint8_t x[64] = {0};
    uint64_t ne[1] = {4};
    gguf_writer_add_tensor(w, "t", 99, 1, ne, x, sizeof(x));
    ASSERT_EFORMAT(open_writer(w), "unknown ggml type 99");
}

/* ---- R7: overflow in size arithmetic --------------------------------------------- */

static void test_r7_overflow(void)
{
    uint8_t x[64] = {0};
    uint64_t ne[4] = {1ull << 40, 1ull << 40, 1ull << 40, 1};
    struct gguf_writer *w = gguf_writer_new();
    gguf_writer_add_tensor(w, "t", GGML_TYPE_F32, 3, ne, x, sizeof(x));
    ASSERT_EFORMAT(open_writer(w), "element count overflows");

    /* element count fits in int64 but the byte size does not */
    uint64_t ne2[2] = {1ull << 40, 1ull << 22};
    w = gguf_writer_new();
    gguf_writer_add_tensor(w, "t", GGML_TYPE_F32, 2, ne2, x, sizeof(x));
    ASSERT_EFORMAT(open_writer(w), "byte size overflows");

    /* a huge but representable tensor still has to fit in the file */
    uint64_t ne3[2] = {1ull << 30, 1ull << 10};
    w = gguf_writer_new();
    gguf_writer_add_tensor(w, "t", GGML_TYPE_F32, 2, ne3, x, sizeof(x));
    ASSERT_EFORMAT(open_writer(w), "past the end of the file");

    /* a string length of 2^64-1 must not wrap the cursor */
    struct raw r = {0};
    raw_header(&r, 3, 0, 1);
    raw_u64(&r, UINT64_MAX);
    raw_put(&r, "abcdefgh", 8);
    ASSERT_EFORMAT(open_raw(&r), "exceeds remaining");
}

/* ---- R8: dimensions -------------------------------------------------------------- */

static void test_r8_dims(void)
{
    uint8_t x[256] = {0};
    uint64_t ne[5] = {4, 1, 1, 1, 1};
    struct gguf_writer *w;
    struct raw r = {0};
    /* n_dims 0 and 5 (the writer refuses those, so raw bytes) */
    for (uint32_t nd = 0; nd <= 5; nd += 5) {
        raw_header(&r, 3, 1, 0);
        raw_str(&r, "t");
        raw_u32(&r, nd);
        for (uint32_t d = 0; d < nd; d++)
            raw_u64(&r, 1);
        raw_u32(&r, GGML_TYPE_F32);
        raw_u64(&r, 0);
        raw_put(&r, x, 64);
        ASSERT_EFORMAT(open_raw(&r), "not in [1, 4]");
    }
    ne[0] = 0;
    w = gguf_writer_new();
    gguf_writer_add_tensor(w, "t", GGML_TYPE_F32, 1, ne, x, 4);
    ASSERT_EFORMAT(open_writer(w), "dimension 0 is 0");
    ne[0] = 4;
    ne[1] = (1ull << 40) + 1;
    w = gguf_writer_new();
    gguf_writer_add_tensor(w, "t", GGML_TYPE_F32, 2, ne, x, 16);
    ASSERT_EFORMAT(open_writer(w), "dimension 1 is 1099511627777");
    /* Q4_0 rows must be whole blocks */
    ne[0] = 33;
    ne[1] = 1;
    w = gguf_writer_new();
    gguf_writer_add_tensor(w, "t", GGML_TYPE_Q4_0, 1, ne, x, 36);
    ASSERT_EFORMAT(open_writer(w), "not a multiple of the Q4_0 block size 32");
    /* 4 dims at the limit is fine when the data is there */
    uint64_t ne4[4] = {2, 2, 2, 2};
    w = gguf_writer_new();
    gguf_writer_add_tensor(w, "t", GGML_TYPE_F32, 4, ne4, x, 64);
    ASSERT_INT_EQ(open_writer(w), 0);
}

/* ---- R9: alignment --------------------------------------------------------------- */

static void test_r9_alignment(void)
{
    static const uint32_t bad[] = {0, 4, 7, 24, 1u << 21};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct gguf_writer *w = gguf_writer_new();
        gguf_writer_add_u32(w, "general.alignment", bad[i]);
        ASSERT_EFORMAT(open_writer(w), "general.alignment");
    }
    struct gguf_writer *w = gguf_writer_new();
    gguf_writer_add_u64(w, "general.alignment", 64);
    ASSERT_EFORMAT(open_writer(w), "general.alignment has type u64, expected u32");
    /* good: 8 and 1 MiB */
    w = good_writer();
    gguf_writer_add_u32(w, "general.alignment", 8);
    ASSERT_INT_EQ(open_writer(w), 0);
    w = good_writer();
    gguf_writer_add_u32(w, "general.alignment", 1u << 20);
    ASSERT_INT_EQ(open_writer(w), 0);
}

/* ---- R10: typed accessors -------------------------------------------------------- */

static void test_r10_accessors(void)
{
    struct gguf_writer *w = gguf_writer_new();
    gguf_writer_add_str(w, "s", "text");
    gguf_writer_add_strn(w, "nul", "a\0b", 3);
    gguf_writer_add_i32(w, "neg", -1);
    gguf_writer_add_u64(w, "big", UINT64_MAX);
    gguf_writer_add_u64(w, "u33", 1ull << 33);
    float fa[2] = {1, 2};
    gguf_writer_add_arr_f32(w, "fa", fa, 2);
    void *buf;
    size_t len;
    ASSERT_INT_EQ(write_mem_free(w, &buf, &len), 0);
    struct gguf_file *f;
    ASSERT_INT_EQ(gguf_open_buffer(&f, buf, len, errbuf, sizeof(errbuf)), 0);
    uint32_t u;
    int64_t i64;
    float x;
    bool b;
    char *s;
    int32_t i32;
    struct gguf_str gs;
    uint32_t et;
    uint64_t n;
    ASSERT_INT_EQ(gguf_get_u32(f, "missing", &u), GGUF_ENOTFOUND);
    ASSERT_INT_EQ(gguf_get_u32(f, "s", &u), GGUF_ETYPE);
    ASSERT_INT_EQ(gguf_get_u32(f, "neg", &u), GGUF_ERANGE);
    ASSERT_INT_EQ(gguf_get_u32(f, "u33", &u), GGUF_ERANGE);
    ASSERT_INT_EQ(gguf_get_i64(f, "big", &i64), GGUF_ERANGE);
    ASSERT_INT_EQ(gguf_get_f32(f, "s", &x), GGUF_ETYPE);
    ASSERT_INT_EQ(gguf_get_bool(f, "neg", &b), GGUF_ETYPE);
    ASSERT_INT_EQ(gguf_get_str(f, "neg", &s), GGUF_ETYPE);
    ASSERT_INT_EQ(gguf_get_str(f, "nul", &s), GGUF_EFORMAT);
    ASSERT_TRUE(s == NULL);
    ASSERT_INT_EQ(gguf_get_arr(f, "s", &et, &n), GGUF_ETYPE);
    ASSERT_INT_EQ(gguf_arr_str(f, "fa", 0, &gs), GGUF_ETYPE);
    ASSERT_INT_EQ(gguf_arr_i32(f, "fa", 0, &i32), GGUF_ETYPE);
    ASSERT_INT_EQ(gguf_arr_f32(f, "fa", 2, &x), GGUF_ERANGE);
    ASSERT_INT_EQ(gguf_arr_f32(f, "fa", UINT64_MAX, &x), GGUF_ERANGE);
    ASSERT_INT_EQ(gguf_arr_f32(f, "nope", 0, &x), GGUF_ENOTFOUND);
    ASSERT_TRUE(gguf_kv_at(f, 6) == NULL);
    ASSERT_TRUE(gguf_tensor_at(f, 0) == NULL);
    ASSERT_TRUE(gguf_find_kv(f, NULL) == NULL);
    ASSERT_STR_EQ(gguf_strerror(GGUF_ETYPE), "value has another type");
    gguf_close(f);
    free(buf);
}

/* ---- R13: every read inside the buffer ------------------------------------------- */

/* Every truncation of a valid file is refused cleanly (ASan checks the reads: each
 * open gets an exact-size copy). */
static void test_r13_truncated(void)
{
    struct gguf_writer *w = good_writer();
    const char *toks[3] = {"<s>", "</s>", "hello"};
    gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
    gguf_writer_add_f32(w, "x.f", 1.0f);
    void *buf;
    size_t len;
    ASSERT_INT_EQ(write_mem_free(w, &buf, &len), 0);
    /* the end of the last tensor's data; the padding after it is optional */
    struct gguf_file *f;
    ASSERT_INT_EQ(gguf_open_buffer(&f, buf, len, errbuf, sizeof(errbuf)), 0);
    const struct gguf_tensor *t = gguf_find_tensor(f, "b.weight");
    size_t end = gguf_data_offset(f) + (size_t)(t->offset + t->nbytes);
    gguf_close(f);
    ASSERT_INT_OP(end, <, len);
    for (size_t n = end; n <= len; n++)
        ASSERT_INT_EQ(open_copy(buf, n), 0);
    for (size_t n = 0; n < end; n++) {
        int rc = open_copy(buf, n);
        if (rc != GGUF_EFORMAT) {
            fprintf(stderr, "  truncated at %zu of %zu\n", n, len);
            free(buf);
            ASSERT_INT_EQ(rc, GGUF_EFORMAT);
        }
        if (strncmp(errbuf, "offset ", 7) != 0) {
            free(buf);
            ASSERT_STR_CONTAINS(errbuf, "offset ");
        }
    }
    /* flipping single bytes never crashes; it opens or is refused */
    uint8_t *m = malloc(len);
    for (size_t i = 0; i < len; i++) {
        memcpy(m, buf, len);
        m[i] ^= 0xff;
        int rc = open_copy(m, len);
        if (rc != 0 && rc != GGUF_EFORMAT) {
            free(m);
            free(buf);
            ASSERT_INT_EQ(rc, GGUF_EFORMAT);
        }
    }
    free(m);
    free(buf);
}

/* ---- R14: tensor data ------------------------------------------------------------ */

static void test_r14_tensor_data(void)
{
    /* good file: a.weight at 0 (32 bytes), b.weight at 32 */
    ASSERT_INT_EQ(open_with_offset("b.weight", 32), 0);
    ASSERT_EFORMAT(open_with_offset("b.weight", 36),
                   "tensor 'b.weight': data offset 36 is not a multiple of the alignment 32");
    ASSERT_EFORMAT(open_with_offset("b.weight", 64), "ends past the end of the file");
    ASSERT_EFORMAT(open_with_offset("b.weight", 1ull << 62), "ends past the end of the file");
    ASSERT_INT_EQ(open_with_offset("b.weight", UINT64_MAX - 31), GGUF_EFORMAT);
    ASSERT_EFORMAT(open_with_offset("b.weight", 0), "overlaps tensor");
    /* the tensor data blob is missing entirely */
    struct raw r = {0};
    raw_header(&r, 3, 1, 0);
    raw_str(&r, "t");
    raw_u32(&r, 1);
    raw_u64(&r, 4);
    raw_u32(&r, GGML_TYPE_F32);
    raw_u64(&r, 0);
    ASSERT_EFORMAT(open_raw(&r), "past the end of the file");
}

int main(void)
{
    RUN(test_good_minimal);
    RUN(test_writer_roundtrip);
    RUN(test_writer_file);
    RUN(test_fixture_files);
    RUN(test_r1_magic_version);
    RUN(test_r2_string_length);
    RUN(test_r3_array_size);
    RUN(test_r4_counts);
    RUN(test_r5_keys);
    RUN(test_r6_types);
    RUN(test_r7_overflow);
    RUN(test_r8_dims);
    RUN(test_r9_alignment);
    RUN(test_r10_accessors);
    RUN(test_r13_truncated);
    RUN(test_r14_tensor_data);
    return TEST_DONE();
}
