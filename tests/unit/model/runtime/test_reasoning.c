/* test_reasoning.c - the <think> splitter: every case is fed whole, cut at every
 * character boundary (two pieces), at every pair of boundaries (three pieces) and
 * one character at a time, and must give the same reasoning and content each time;
 * emissions keep stream order. Also the start-in-reasoning case, the budget hook
 * and rsn_prompt_opens_reasoning. */
#include "test.h"
#include "runtime.h"

struct sink {
    char reasoning[4096];
    size_t nr;
    char content[4096];
    size_t nc;
    char order[256];   /* 'R' / 'C' per run of emissions of one kind */
    size_t no;
};

static void on_emit(void *user, enum rsn_kind kind, const char *text, size_t len)
{
    struct sink *s = user;
    char *dst = kind == RSN_REASONING ? s->reasoning : s->content;
    size_t *n = kind == RSN_REASONING ? &s->nr : &s->nc;
    if (len == 0)
        s->order[0] = '!'; /* empty emissions are a bug */
    if (*n + len < 4096) {
        memcpy(dst + *n, text, len);
        *n += len;
        dst[*n] = 0;
    }
    char k = kind == RSN_REASONING ? 'R' : 'C';
    if (s->no < sizeof(s->order) - 1 && (s->no == 0 || s->order[s->no - 1] != k)) {
        s->order[s->no++] = k;
        s->order[s->no] = 0;
    }
}

static bool is_boundary(const char *s, size_t i)
{
    return ((unsigned char)s[i] & 0xc0) != 0x80;
}

/* Feeds text cut at the given positions (sorted, ascending). */
static void run_cuts(const char *text, bool start_in, const size_t *cuts, size_t n_cuts, struct sink *out)
{
    memset(out, 0, sizeof(*out));
    struct rsn_splitter *s = rsn_new(start_in);
    size_t prev = 0;
    for (size_t i = 0; i <= n_cuts; i++) {
        size_t end = i < n_cuts ? cuts[i] : strlen(text);
        rsn_feed(s, text + prev, end - prev, on_emit, out);
        prev = end;
    }
    rsn_finish(s, on_emit, out);
    rsn_free(s);
}

static int check_case(const char *text, bool start_in, const char *want_r, const char *want_c,
                      const char *want_order)
{
    size_t len = strlen(text);
    struct sink got;
    int bad = 0;
    static size_t cuts[4096];
#define CHECK(desc)                                                                        \
    if (strcmp(got.reasoning, want_r) || strcmp(got.content, want_c) ||                    \
        (want_order && strcmp(got.order, want_order))) {                                   \
        if (bad++ < 3)                                                                     \
            fprintf(stderr, "  \"%s\" %s: reasoning \"%s\" content \"%s\" order %s\n",      \
                    text, desc, got.reasoning, got.content, got.order);                    \
    }
    run_cuts(text, start_in, NULL, 0, &got);
    CHECK("whole");
    for (size_t i = 1; i < len; i++) {
        if (!is_boundary(text, i))
            continue;
        cuts[0] = i;
        run_cuts(text, start_in, cuts, 1, &got);
        CHECK("two pieces");
        for (size_t j = i + 1; j < len; j++) {
            if (!is_boundary(text, j))
                continue;
            cuts[1] = j;
            run_cuts(text, start_in, cuts, 2, &got);
            CHECK("three pieces");
        }
    }
    size_t n = 0;
    for (size_t i = 1; i < len; i++)
        if (is_boundary(text, i))
            cuts[n++] = i;
    run_cuts(text, start_in, cuts, n, &got);
    CHECK("per character");
#undef CHECK
    return bad;
}

static void test_splits(void)
{
    int bad = 0;
    bad += check_case("<think>\nLet me see.\n</think>\n\nThe answer is 4.", false,
                      "Let me see.", "The answer is 4.", "RC");
    bad += check_case("<think>a<b</think>c", false, "a<b", "c", "RC");
    bad += check_case("  \n<think>x</think>y", false, "x", "y", "RC");
    bad += check_case("Plain answer, no thought.", false, "", "Plain answer, no thought.", "C");
    bad += check_case("  Plain <think>not a thought</think>", false, "",
                      "  Plain <think>not a thought</think>", "C");
    bad += check_case("<b>bold</b>", false, "", "<b>bold</b>", "C");
    bad += check_case("<th", false, "", "<th", "C");                 /* unfinished tag at the end */
    bad += check_case("<think>never closed </thi", false, "never closed </thi", "", "R");
    bad += check_case("<think></think>", false, "", "", "");
    bad += check_case("<think>\xe5\xa4\xa7\xe6\xa8\xa1\xe5\x9e\x8b \xf0\x9f\x98\x80</think>\xc3\x97\xe2\x86\x92",
                      false, "\xe5\xa4\xa7\xe6\xa8\xa1\xe5\x9e\x8b \xf0\x9f\x98\x80", "\xc3\x97\xe2\x86\x92", "RC");
    /* R1 distills: the prompt ended with "<think>\n" */
    bad += check_case("Hmm, 2+2.\n</think>\n\n4", true, "Hmm, 2+2.", "4", "RC");
    bad += check_case("\nstill thinking", true, "still thinking", "", "R");
    bad += check_case("a </think> b </think> c", true, "a", "b </think> c", "RC");
    bad += check_case("x\n\n y</think>", true, "x\n\n y", "", "R");
    ASSERT_INT_EQ(bad, 0);
}

static void test_budget(void)
{
    struct sink got;
    memset(&got, 0, sizeof(got));
    struct rsn_splitter *s = rsn_new(false);
    ASSERT_TRUE(!rsn_in_reasoning(s));
    rsn_feed(s, "", 0, on_emit, &got); /* empty pieces are fine, even first */
    rsn_feed(s, "<think>", 7, on_emit, &got);
    ASSERT_TRUE(rsn_in_reasoning(s));
    rsn_feed(s, "long thought  ", 14, on_emit, &got);
    rsn_feed(s, "</th", 4, on_emit, &got);  /* partial tag held when the budget ends */
    ASSERT_TRUE(rsn_end_reasoning(s, on_emit, &got));
    ASSERT_TRUE(!rsn_in_reasoning(s));
    ASSERT_TRUE(!rsn_end_reasoning(s, on_emit, &got));
    rsn_feed(s, "\n\nAnswer", 8, on_emit, &got);
    rsn_finish(s, on_emit, &got);
    rsn_free(s);
    ASSERT_STR_EQ(got.reasoning, "long thought  </th");
    ASSERT_STR_EQ(got.content, "Answer");
}

static void test_prompt_opens(void)
{
    const char *r1 = "<\xef\xbd\x9cUser\xef\xbd\x9c>hi<\xef\xbd\x9c" "Assistant\xef\xbd\x9c><think>\n";
    ASSERT_TRUE(rsn_prompt_opens_reasoning(r1, strlen(r1)));
    const char *closed = "<think>a</think>b";
    ASSERT_TRUE(!rsn_prompt_opens_reasoning(closed, strlen(closed)));
    const char *reopened = "<think>a</think>b<think>";
    ASSERT_TRUE(rsn_prompt_opens_reasoning(reopened, strlen(reopened)));
    ASSERT_TRUE(!rsn_prompt_opens_reasoning("<|im_start|>assistant\n", 22));
    ASSERT_TRUE(!rsn_prompt_opens_reasoning("", 0));
}

int main(void)
{
    RUN(test_splits);
    RUN(test_budget);
    RUN(test_prompt_opens);
    return TEST_DONE();
}
