/* test_sampling_grammar.c - a job's sampling under a grammar (sampling.c): random logits
 * still give texts of the grammar at temperature 0 and 1, the end token comes exactly
 * when the text is complete, the logits row is left unchanged, a lazy grammar waits for
 * its trigger, and a thought the prompt opened is not constrained. */
#include "test.h"

#include "grammar.h"
#include "runtime_int.h"

#define NV 260 /* 256 bytes, "ab", "{\"", <think> stand-ins, the end token */
#define T_AB 256
#define T_OPEN 257
#define T_CLOSE 258
#define T_END 259

static struct gram_vocab *vocab(void)
{
    static char bytes[256];
    const char *b[NV];
    size_t l[NV];
    uint8_t k[NV];
    for (int i = 0; i < 256; i++) {
        bytes[i] = (char)i;
        b[i] = &bytes[i];
        l[i] = 1;
        k[i] = GRAM_TOK_TEXT;
    }
    b[T_AB] = "ab";
    l[T_AB] = 2;
    k[T_AB] = GRAM_TOK_TEXT;
    b[T_OPEN] = "<think>";
    l[T_OPEN] = 7;
    k[T_OPEN] = GRAM_TOK_TEXT;
    b[T_CLOSE] = "</think>";
    l[T_CLOSE] = 8;
    k[T_CLOSE] = GRAM_TOK_TEXT;
    b[T_END] = "";
    l[T_END] = 0;
    k[T_END] = GRAM_TOK_END;
    return gram_vocab_new(NV, b, l, k);
}

static struct gram *schema_gram(const char *schema)
{
    char err[256];
    struct gram_json *doc = gram_json_parse(schema, strlen(schema), err, sizeof(err));
    struct strbuf text = {0};
    if (!doc || gram_schema_ebnf(doc, "s", "root", &text, err, sizeof(err), NULL, 0) != 0)
        fprintf(stderr, "    schema: %s\n", err);
    gram_json_free(doc);
    struct gram *g = NULL;
    if (text.data && gram_compile(&g, text.data, text.len, NULL, err, sizeof(err)) != 0)
        fprintf(stderr, "    compile: %s\n", err);
    strbuf_free(&text);
    return g;
}

/* Runs a job's sampler over random logits until the end token or max steps; the text
 * (bytes of the tokens before the end token) into out. Returns the number of tokens,
 * or -1 when sampling failed. */
static size_t text_len;

static int run(struct gram *g, const struct gram_vocab *v, float temp, uint64_t seed,
               const char *trigger, bool in_thought, char *out, size_t cap, bool *ended)
{
    struct eng_job *j = eng_job_new();
    struct eng_sampling s;
    eng_default_sampling(&s);
    s.sampler.temperature = temp;
    s.sampler.top_k = 0;
    s.sampler.top_p = 1.0f;
    s.sampler.min_p = 0.0f;
    s.sampler.seed = seed;
    s.grammar = g;
    s.gram_vocab = v;
    s.grammar_trigger = trigger;
    s.think_open = in_thought ? T_OPEN : -1;
    s.think_close = in_thought ? T_CLOSE : -1;
    s.start_in_thought = in_thought;
    s.n_top_logprobs = 2;
    if (eng_job_set_sampling(j, &s, NV) != 0) {
        eng_job_release(j);
        return -1;
    }
    float logits[NV], copy[NV];
    size_t n = 0;
    int steps = 0;
    *ended = false;
    out[0] = 0;
    for (; steps < 400; steps++) {
        for (int i = 0; i < NV; i++)
            logits[i] = 3.0f * test_nrand();
        if (in_thought && steps == 5)
            logits[T_CLOSE] = 100.0f; /* end the thought */
        memcpy(copy, logits, sizeof(copy));
        struct eng_token t;
        if (eng_sampler_next(j->smp, logits, NV, &t) != 0) {
            steps = -1;
            break;
        }
        if (memcmp(copy, logits, sizeof(copy)) != 0) {
            steps = -2;
            break;
        }
        if (t.id == T_END) {
            *ended = true;
            break;
        }
        size_t len;
        const char *p = gram_vocab_text(v, t.id, &len);
        if (n + len + 1 < cap) {
            memcpy(out + n, p, len);
            n += len;
            out[n] = 0;
        }
    }
    eng_job_release(j);
    text_len = n;
    return steps;
}

static void test_schema_texts(void)
{
    struct gram_vocab *v = vocab();
    struct gram *g = schema_gram(
        "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":99},"
        "\"s\":{\"type\":\"string\",\"maxLength\":6},\"e\":{\"enum\":[\"ab\",\"c\"]}},"
        "\"required\":[\"n\",\"s\",\"e\"],\"additionalProperties\":false}");
    ASSERT_TRUE(g && v);
    char text[4096], err[128];
    test_rng_seed(3);
    for (int run_i = 0; run_i < 20; run_i++) {
        bool ended;
        float temp = run_i % 2 ? 1.0f : 0.0f;
        int n = run(g, v, temp, (uint64_t)run_i, NULL, false, text, sizeof(text), &ended);
        ASSERT_INT_OP(n, >, 0);
        ASSERT_TRUE(ended);
        struct gram_json *d = gram_json_parse(text, strlen(text), err, sizeof(err));
        if (!d)
            TEST_FAIL_("not JSON: %s (%s)", text, err);
        const struct gram_json *nv = gram_json_get(d, "n");
        ASSERT_TRUE(nv && nv->kind == GJ_NUMBER && nv->is_int && nv->num >= 0 && nv->num <= 99);
        const struct gram_json *sv = gram_json_get(d, "s");
        ASSERT_TRUE(sv && sv->kind == GJ_STRING);
        const struct gram_json *ev = gram_json_get(d, "e");
        ASSERT_TRUE(ev && ev->kind == GJ_STRING && (strcmp(ev->str, "ab") == 0 || strcmp(ev->str, "c") == 0));
        gram_json_free(d);
    }
    gram_unref(g);
    gram_vocab_free(v);
}

static void test_lazy_and_thought(void)
{
    struct gram_vocab *v = vocab();
    struct gram *g = NULL;
    char err[128], text[4096];
    const char *src = "root ::= \"[\" [0-9]{1,3} \"]\"";
    ASSERT_INT_EQ(gram_compile(&g, src, strlen(src), NULL, err, sizeof(err)), 0);
    /* a thought first (unconstrained), then the grammar */
    bool ended;
    test_rng_seed(11);
    int n = run(g, v, 1.0f, 5, NULL, true, text, sizeof(text), &ended);
    ASSERT_INT_OP(n, >, 0);
    ASSERT_TRUE(ended);
    const char *close = strstr(text, "</think>");
    ASSERT_TRUE(close != NULL);
    const char *tail = close + 8;
    ASSERT_TRUE(tail[0] == '[' && tail[strlen(tail) - 1] == ']' && strlen(tail) <= 5);
    /* a lazy grammar: free text, then the trigger; the first text that contains the
     * trigger is constrained after it */
    int triggered = 0;
    for (uint64_t seed = 0; seed < 40; seed++) {
        n = run(g, v, 1.0f, seed, "ab", false, text, sizeof(text), &ended);
        ASSERT_INT_OP(n, >=, 0);
        const char *hit = memmem(text, text_len, "ab", 2);
        if (!hit || !ended)
            continue;
        triggered++;
        const char *after = hit + 2;
        size_t al = text_len - (size_t)(after - text);
        if (al < 3 || after[0] != '[' || after[al - 1] != ']')
            TEST_FAIL_("seed %llu: after the trigger: \"%.*s\"", (unsigned long long)seed,
                       (int)al, after);
    }
    ASSERT_INT_OP(triggered, >, 0);
    gram_unref(g);
    gram_vocab_free(v);
}

static void test_refused(void)
{
    struct gram_vocab *v = vocab();
    struct gram *g = NULL;
    char err[128];
    ASSERT_INT_EQ(gram_compile(&g, "root ::= \"a\"", 12, NULL, err, sizeof(err)), 0);
    struct eng_job *j = eng_job_new();
    struct eng_sampling s;
    eng_default_sampling(&s);
    s.grammar = g;
    s.gram_vocab = NULL; /* a grammar needs the model's tokens */
    ASSERT_INT_EQ(eng_job_set_sampling(j, &s, NV), ENG_EINVAL);
    s.gram_vocab = v;
    ASSERT_INT_EQ(eng_job_set_sampling(j, &s, NV + 1), ENG_EINVAL); /* another size */
    ASSERT_INT_EQ(eng_job_set_sampling(j, &s, NV), 0);
    eng_job_release(j);
    gram_unref(g);
    gram_vocab_free(v);
}

int main(void)
{
    RUN(test_schema_texts);
    RUN(test_lazy_and_thought);
    RUN(test_refused);
    return TEST_DONE();
}
