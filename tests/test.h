/* test.h - a tiny assertion harness for chatd's unit and integration tests.
 *
 * Each test file defines test functions and runs them from main() with RUN(fn).
 * A failed ASSERT_* prints both sides with file:line and makes the current test
 * fail (it returns from the test function); the process exits non-zero when any
 * test failed. The last line printed is "N passed, N failed".
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

#endif
