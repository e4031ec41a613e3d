/* test_template_regress.c - replays every input under tests/regress/template/ (inputs
 * the template fuzzer once crashed or hung on) through the fuzz target's own code
 * path, on the request threads' 256 KiB stack; each must finish, and the whole run stays
 * fast. Also a few hand-written
 * hostile templates that must fail cleanly. */
#include "test.h"
#include "fuzz/fuzz_template_input.h"

#include <dirent.h>
#include <time.h>

static void test_replay_regressions(void)
{
    char dir[8192];
    snprintf(dir, sizeof(dir), "%.4000s/../regress/template", test_fixture(""));
    DIR *d = opendir(dir);
    ASSERT_TRUE(d != NULL);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[8500];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        static uint8_t buf[1 << 20];
        size_t len = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        clock_t t0 = clock();
        ft_run_on_request_stack(buf, len);
        double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
        if (secs > 5.0)
            TEST_FAIL_("%s took %.1f s", e->d_name, secs);
        n++;
    }
    closedir(d);
    fprintf(stderr, "  %d regression inputs\n", n);
    ASSERT_INT_OP(n, >, 0);
}

static int run_src(const char *src)
{
    return ft_run_on_request_stack((const uint8_t *)src, strlen(src));
}

static void test_hostile(void)
{
    /* exponential macro recursion: bounded by steps */
    ASSERT_INT_EQ(run_src("{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}"),
                  TMPL_ELIMIT);
    /* doubling strings: bounded by memory or output */
    ASSERT_INT_EQ(run_src("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}"),
                  TMPL_ELIMIT);
    /* unbounded recursion: bounded by the stack it may use (it once overflowed the
     * request threads' stack and killed the server) */
    ASSERT_INT_EQ(run_src("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"), TMPL_ELIMIT);
    ASSERT_INT_EQ(run_src("{% macro f(a) %}{% for x in [1] %}{{ f(a ~ x) }}{% endfor %}{% endmacro %}{{ f('') }}"),
                  TMPL_ELIMIT);
    /* deep nesting is refused at parse time */
    char deep[4096] = "";
    for (int i = 0; i < 200; i++)
        strcat(deep, "{% if 1 %}");
    ASSERT_INT_EQ(run_src(deep), TMPL_ESYNTAX);
    char deep_expr[4096] = "{{ ";
    for (int i = 0; i < 300; i++)
        strcat(deep_expr, "-");
    strcat(deep_expr, "1 }}");
    ASSERT_INT_EQ(run_src(deep_expr), TMPL_ESYNTAX);
    char brackets[4096] = "{{ ";
    for (int i = 0; i < 300; i++)
        strcat(brackets, "[");
    strcat(brackets, " }}");
    ASSERT_INT_EQ(run_src(brackets), TMPL_ESYNTAX);
}

int main(void)
{
    RUN(test_replay_regressions);
    RUN(test_hostile);
    return TEST_DONE();
}
