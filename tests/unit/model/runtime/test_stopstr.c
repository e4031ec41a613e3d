/* test_stopstr.c - the stop-string matcher against a whole-text reference: every
 * case is fed whole, cut at every byte (two pieces), at every pair of byte positions
 * (three pieces) and byte by byte; the emitted text must equal the text before the
 * earliest stop string (or all of it) and every emitted chunk must end on a UTF-8
 * character boundary whenever the input pieces do. */
#include "test.h"
#include "runtime.h"

/* Whole-text reference: the earliest match wins, list order breaks ties. */
static size_t reference(const char *text, const char *const *stops, size_t n, int *idx)
{
    size_t len = strlen(text), best = len;
    *idx = -1;
    for (size_t i = 0; i < n; i++) {
        const char *p = strstr(text, stops[i]);
        if (p && (size_t)(p - text) < best) {
            best = (size_t)(p - text);
            *idx = (int)i;
        }
    }
    return best;
}

static bool utf8_complete(const char *s, size_t n)
{
    /* no sequence cut at the end */
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = (unsigned char)s[n - back];
        if ((c & 0xc0) == 0x80)
            continue;
        size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        return need <= back;
    }
    return true;
}

static bool is_boundary(const char *s, size_t i)
{
    return ((unsigned char)s[i] & 0xc0) != 0x80;
}

/* Feeds text in pieces ending at cuts; returns 0 if the result matches. */
static int run_cuts(const char *text, const char *const *stops, size_t n, const size_t *cuts, size_t n_cuts)
{
    struct stop_matcher *m = stop_new(stops, n);
    if (!m)
        return 1;
    char out[4096];
    size_t no = 0;
    int bad = 0;
    size_t prev = 0, len = strlen(text);
    bool pieces_whole = true;
    int rc = 0;
    for (size_t i = 0; i <= n_cuts && rc == 0; i++) {
        size_t end = i < n_cuts ? cuts[i] : len;
        pieces_whole = end == len || is_boundary(text, end);
        const char *e;
        size_t el;
        rc = stop_feed(m, text + prev, end - prev, &e, &el);
        if (rc < 0)
            bad++;
        if (pieces_whole && el && !utf8_complete(e, el))
            bad++;
        memcpy(out + no, e, el);
        no += el;
        prev = end;
    }
    const char *e;
    size_t el;
    int frc = stop_flush(m, &e, &el);
    memcpy(out + no, e, el);
    no += el;
    out[no] = 0;
    int want_idx;
    size_t want = reference(text, stops, n, &want_idx);
    if (no != want || memcmp(out, text, want) != 0 || stop_matched(m) != want_idx ||
        frc != (want_idx >= 0))
        bad++;
    if (bad)
        fprintf(stderr, "  \"%s\" (%zu cuts): got \"%s\" matched %d, want %zu bytes matched %d\n",
                text, n_cuts, out, stop_matched(m), want, want_idx);
    stop_free(m);
    return bad;
}

static int check(const char *text, const char *const *stops, size_t n)
{
    size_t len = strlen(text), cuts[1024];
    int bad = run_cuts(text, stops, n, NULL, 0);
    for (size_t i = 1; i < len && bad < 3; i++) {
        cuts[0] = i;
        bad += run_cuts(text, stops, n, cuts, 1);
        for (size_t j = i + 1; j < len && bad < 3; j++) {
            cuts[1] = j;
            bad += run_cuts(text, stops, n, cuts, 2);
        }
    }
    for (size_t i = 1; i < len; i++)
        cuts[i - 1] = i;
    if (len > 1)
        bad += run_cuts(text, stops, n, cuts, len - 1);
    return bad;
}

static void test_ascii(void)
{
    const char *s1[] = {"</s>"};
    const char *s2[] = {"User:", "\n\n\n"};
    const char *s3[] = {"abcd", "bc"};
    const char *s4[] = {"bc", "abcd"};
    const char *s5[] = {"aab"};
    int bad = 0;
    bad += check("Hello world</s>ignored", s1, 1);
    bad += check("Hello </ world </s", s1, 1);
    bad += check("no stop here", s1, 1);
    bad += check("line\nUser: next", s2, 2);
    bad += check("a\n\nb\n\n\nc User:", s2, 2);
    bad += check("xabce", s3, 2);   /* "abcd" fails, "bc" matches after 'a' */
    bad += check("xabcd", s3, 2);   /* "abcd" starts first and wins */
    bad += check("xabcd", s4, 2);
    bad += check("aaab", s5, 1);    /* overlapping prefix restarts */
    bad += check("", s1, 1);
    bad += check("anything", NULL, 0);
    ASSERT_INT_EQ(bad, 0);
}

static void test_utf8(void)
{
    const char *s1[] = {"\xe2\x86\x92 stop"};                 /* "→ stop" */
    const char *s2[] = {"\xf0\x9f\x98\x80", "\xc3\x97"};       /* emoji, × */
    int bad = 0;
    bad += check("caf\xc3\xa9 \xe2\x86\x92 go \xe2\x86\x92 stop here", s1, 1);
    bad += check("\xe5\xa4\xa7\xe6\xa8\xa1\xe5\x9e\x8b \xc3\x97 2", s2, 2);
    bad += check("smile \xf0\x9f\x98\x81\xf0\x9f\x98\x80 end", s2, 2);
    bad += check("\xe2\x86\x92 sto", s1, 1);
    ASSERT_INT_EQ(bad, 0);
}

static void test_invalid(void)
{
    const char *empty[] = {""};
    ASSERT_TRUE(stop_new(empty, 1) == NULL);
    const char *cont[] = {"\x98\x80"};
    ASSERT_TRUE(stop_new(cont, 1) == NULL);
    const char *many[STOP_MAX_STRINGS + 1];
    for (int i = 0; i <= STOP_MAX_STRINGS; i++)
        many[i] = "x";
    ASSERT_TRUE(stop_new(many, STOP_MAX_STRINGS + 1) == NULL);
    struct stop_matcher *m = stop_new(many, STOP_MAX_STRINGS);
    ASSERT_TRUE(m != NULL);
    const char *e;
    size_t el;
    ASSERT_INT_EQ(stop_feed(m, "abxcd", 5, &e, &el), 1);
    ASSERT_INT_EQ(el, 2);
    ASSERT_INT_EQ(stop_feed(m, "more", 4, &e, &el), 1); /* stays stopped */
    ASSERT_INT_EQ(el, 0);
    stop_free(m);
}

int main(void)
{
    RUN(test_ascii);
    RUN(test_utf8);
    RUN(test_invalid);
    return TEST_DONE();
}
