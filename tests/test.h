/* test.h - a tiny assertion harness for chatd's unit and integration tests.
 *
 * Each test file defines test functions and runs them from main() with RUN(fn).
 * A failed ASSERT_* prints both sides with file:line and makes the current test
 * fail (it returns from the test function); the process exits non-zero when any
 * test failed. The last line printed is "N passed, N failed".
 * Below the harness: small helpers the tests share (fixture paths, reading a whole file,
 * removing a directory or a database, a seeded random generator).
 */
#ifndef CHATD_TEST_H
#define CHATD_TEST_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_n_pass;
static int test_n_fail;
static int test_cur_failed;

#define TEST_FAIL_(...)                                                                   \
    do {                                                                                  \
        fprintf(stderr, "  FAIL %s:%d: ", __FILE__, __LINE__);                             \
        fprintf(stderr, __VA_ARGS__);                                                     \
        fprintf(stderr, "\n");                                                            \
        test_cur_failed = 1;                                                              \
        return;                                                                           \
    } while (0)

#define ASSERT_TRUE(c)                                                                    \
    do {                                                                                  \
        if (!(c))                                                                         \
            TEST_FAIL_("expected true: %s", #c);                                          \
    } while (0)

#define ASSERT_INT_EQ(a, b)                                                               \
    do {                                                                                  \
        long long a_ = (long long)(a), b_ = (long long)(b);                               \
        if (a_ != b_)                                                                     \
            TEST_FAIL_("%s == %s: %lld != %lld", #a, #b, a_, b_);                         \
    } while (0)

#define ASSERT_INT_OP(a, op, b)                                                           \
    do {                                                                                  \
        long long a_ = (long long)(a), b_ = (long long)(b);                               \
        if (!(a_ op b_))                                                                  \
            TEST_FAIL_("%s %s %s: %lld vs %lld", #a, #op, #b, a_, b_);                    \
    } while (0)

#define ASSERT_STR_EQ(a, b)                                                               \
    do {                                                                                  \
        const char *a_ = (a), *b_ = (b);                                                  \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                            \
            TEST_FAIL_("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)",          \
                       b_ ? b_ : "(null)");                                               \
    } while (0)

#define ASSERT_STR_CONTAINS(hay, needle)                                                  \
    do {                                                                                  \
        const char *h_ = (hay), *n_ = (needle);                                           \
        if (!h_ || !strstr(h_, n_))                                                       \
            TEST_FAIL_("\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", n_);         \
    } while (0)

#define ASSERT_NEAR(a, b, tol)                                                            \
    do {                                                                                  \
        double a_ = (double)(a), b_ = (double)(b);                                        \
        if (!(fabs(a_ - b_) <= (tol)))                                                    \
            TEST_FAIL_("%s ~ %s: %.9g vs %.9g (tol %g)", #a, #b, a_, b_, (double)(tol));  \
    } while (0)

/* `call` fails with error code `code`, and the error text `err` contains `needle`. */
#define ASSERT_ERR(call, code, err, needle)                                               \
    do {                                                                                  \
        ASSERT_INT_EQ(call, code);                                                        \
        ASSERT_STR_CONTAINS(err, needle);                                                 \
    } while (0)

#define RUN(fn)                                                                           \
    do {                                                                                  \
        test_cur_failed = 0;                                                              \
        fn();                                                                             \
        if (test_cur_failed) {                                                            \
            test_n_fail++;                                                                \
            fprintf(stderr, "not ok %s\n", #fn);                                          \
        } else {                                                                          \
            test_n_pass++;                                                                \
            fprintf(stderr, "ok %s\n", #fn);                                              \
        }                                                                                 \
    } while (0)

#define TEST_DONE()                                                                       \
    (printf("%d passed, %d failed\n", test_n_pass, test_n_fail), test_n_fail ? 1 : 0)

/* Path of a file under tests/fixtures (the CHATD_FIXTURES environment variable,
 * set by ctest). Returns a static buffer overwritten by the next call. */
static inline const char *test_fixture(const char *rel)
{
    static char buf[4096];
    const char *dir = getenv("CHATD_FIXTURES");
    snprintf(buf, sizeof(buf), "%s/%s", dir ? dir : "tests/fixtures", rel);
    return buf;
}

/* The whole file at path, NUL-terminated (the NUL not counted in *len), or NULL when it
 * cannot be read (*len is then 0). Free with free(). */
static inline void *test_read_file(const char *path, size_t *len)
{
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0)
        buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        *len = (size_t)n;
    }
    return buf;
}

/* Removes directory dir and everything in it (rm -rf); says so on stderr when it cannot. */
static inline void test_remove_dir(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

/* Removes the SQLite database at path with its -wal and -shm files. */
static inline void test_remove_db(const char *path)
{
    char p[600];
    remove(path);
    snprintf(p, sizeof(p), "%s-wal", path);
    remove(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    remove(p);
}

/* A seeded random generator for test data (a 64-bit LCG): each test program has one
 * sequence, restarted by test_rng_seed (the seed before any call is 12345). */
static inline uint64_t *test_rng_state_(void)
{
    static uint64_t state = 12345;
    return &state;
}

static inline void test_rng_seed(uint64_t seed)
{
    *test_rng_state_() = seed;
}

/* Uniform in [0, 1). */
static inline double test_urand(void)
{
    uint64_t *s = test_rng_state_();
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) * 0x1.0p-53;
}

/* Standard normal (Box-Muller). */
static inline float test_nrand(void)
{
    double u1 = test_urand() + 1e-12;
    double u2 = test_urand();
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

#endif
