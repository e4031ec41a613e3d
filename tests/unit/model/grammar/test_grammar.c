/* test_grammar.c - the grammar library: the JSON reader, the grammar format (syntax,
 * errors, repetition, UTF-8 classes, the left-recursion check), JSON schemas to
 * grammars (what each keyword admits and refuses, unsupported keywords named), and
 * the matcher: byte-level acceptance, token masks over a vocabulary of multi-byte
 * tokens checked against brute force, end tokens, and caches that survive a flush. */
#include "test.h"
#include "grammar.h"

/* ------------------------------------------------------------------ helpers */

/* A vocabulary of the 256 single bytes plus an end token (id 256). */
static struct gram_vocab *byte_vocab(void)
{
    static char bytes[256];
    const char *b[257];
    size_t l[257];
    uint8_t e[257];
    for (int i = 0; i < 256; i++) {
        bytes[i] = (char)i;
        b[i] = &bytes[i];
        l[i] = 1;
        e[i] = GRAM_TOK_TEXT;
    }
    b[256] = "";
    l[256] = 0;
    e[256] = GRAM_TOK_END;
    return gram_vocab_new(257, b, l, e);
}

static struct gram *compile(const char *text)
{
    struct gram *g = NULL;
    char err[256];
    int rc = gram_compile(&g, text, strlen(text), NULL, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "    compile failed: %s\n", err);
    return g;
}

/* 1 when the grammar accepts exactly `s` (as bytes, ending with the end token), 0 when
 * not, -1 when it does not compile. */
static int accepts(const char *grammar, const char *s)
{
    struct gram *g = compile(grammar);
    if (!g)
        return -1;
    struct gram_vocab *v = byte_vocab();
    struct gram_matcher *m = gram_matcher_new(g, v);
    int ok = 1;
    for (size_t i = 0; s[i] && ok; i++)
        ok = gram_matcher_accept(m, (unsigned char)s[i]) == 0;
    ok = ok && gram_matcher_accept(m, 256) == 0;
    gram_matcher_free(m);
    gram_vocab_free(v);
    gram_unref(g);
    return ok;
}

/* The grammar of a JSON schema given as text; NULL with err set on failure. */
static char *schema_grammar(const char *schema, char *err, size_t err_len, char *kw, size_t kw_len)
{
    struct gram_json *doc = gram_json_parse(schema, strlen(schema), err, err_len);
    if (!doc)
        return NULL;
    struct strbuf out = {0};
    int rc = gram_schema_ebnf(doc, "j", "root", &out, err, err_len, kw, kw_len);
    gram_json_free(doc);
    if (rc != 0) {
        strbuf_free(&out);
        return NULL;
    }
    return out.data;
}

static int schema_accepts(const char *schema, const char *s)
{
    char err[256], kw[64];
    char *g = schema_grammar(schema, err, sizeof(err), kw, sizeof(kw));
    if (!g) {
        fprintf(stderr, "    schema failed: %s\n", err);
        return -1;
    }
    int r = accepts(g, s);
    if (r < 0)
        fprintf(stderr, "    grammar was:\n%s\n", g);
    free(g);
    return r;
}

/* ------------------------------------------------------------------ JSON reader */

static void test_json_parse(void)
{
    char err[128];
    const char *t = "{\"a\": [1, -2.5e3, true, null, \"x\\u00e9\\ud83d\\ude00\"], \"b\": {}}";
    struct gram_json *d = gram_json_parse(t, strlen(t), err, sizeof(err));
    ASSERT_TRUE(d != NULL);
    ASSERT_INT_EQ(d->kind, GJ_OBJECT);
    ASSERT_INT_EQ(d->n, 2);
    const struct gram_json *a = gram_json_get(d, "a");
    ASSERT_INT_EQ(a->n, 5);
    ASSERT_TRUE(a->items[0].is_int);
    ASSERT_TRUE(!a->items[1].is_int);
    ASSERT_NEAR(a->items[1].num, -2500.0, 0);
    ASSERT_TRUE(a->items[2].b);
    ASSERT_STR_EQ(a->items[4].str, "x\xc3\xa9\xf0\x9f\x98\x80");
    struct strbuf w = {0};
    ASSERT_INT_EQ(gram_json_write(&w, d), 0);
    ASSERT_STR_EQ(w.data, "{\"a\":[1,-2.5e3,true,null,\"x\xc3\xa9\xf0\x9f\x98\x80\"],\"b\":{}}");
    strbuf_free(&w);
    gram_json_free(d);
    const char *bad[] = {"{", "[1,]", "\"\\ud800\"", "01", "{\"a\" 1}", "nul", "\"\x01\"", "1 2",
                         "\"\xff\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        d = gram_json_parse(bad[i], strlen(bad[i]), err, sizeof(err));
        if (d)
            TEST_FAIL_("accepted %s", bad[i]);
        ASSERT_STR_CONTAINS(err, "invalid JSON at byte");
    }
    /* nesting is capped */
    char deep[400];
    memset(deep, '[', 300);
    deep[300] = 0;
    ASSERT_TRUE(gram_json_parse(deep, 300, err, sizeof(err)) == NULL);
    ASSERT_STR_CONTAINS(err, "nested");
}

/* ------------------------------------------------------------------ the format */

static void test_ebnf_basics(void)
{
    const char *g = "root ::= \"ab\" c+ | \"x\"?\n c ::= [0-9]";
    ASSERT_INT_EQ(accepts(g, "ab1"), 1);
    ASSERT_INT_EQ(accepts(g, "ab123"), 1);
    ASSERT_INT_EQ(accepts(g, "ab"), 0);
    ASSERT_INT_EQ(accepts(g, "x"), 1);
    ASSERT_INT_EQ(accepts(g, ""), 1);
    ASSERT_INT_EQ(accepts(g, "xx"), 0);
    /* rules spanning lines, comments, groups, bounded repetition */
    g = "# a comment\nroot ::= (\"a\" | \"b\"){2,3} # trailing\n  \"!\"";
    ASSERT_INT_EQ(accepts(g, "ab!"), 1);
    ASSERT_INT_EQ(accepts(g, "aba!"), 1);
    ASSERT_INT_EQ(accepts(g, "a!"), 0);
    ASSERT_INT_EQ(accepts(g, "abab!"), 0);
    ASSERT_INT_EQ(accepts("root ::= \"a\"{3}", "aaa"), 1);
    ASSERT_INT_EQ(accepts("root ::= \"a\"{3}", "aa"), 0);
    ASSERT_INT_EQ(accepts("root ::= \"a\"{2,}", "aaaaa"), 1);
    ASSERT_INT_EQ(accepts("root ::= \"a\"{2,}", "a"), 0);
    ASSERT_INT_EQ(accepts("root ::= \"a\"{0}", ""), 1);
    /* escapes and negated classes */
    ASSERT_INT_EQ(accepts("root ::= \"\\\"\\n\\x41\\u00e9\"", "\"\nA\xc3\xa9"), 1);
    ASSERT_INT_EQ(accepts("root ::= [^a-c]+", "xyz"), 1);
    ASSERT_INT_EQ(accepts("root ::= [^a-c]+", "xbz"), 0);
    ASSERT_INT_EQ(accepts("root ::= [\\]\\-]", "]"), 1);
    ASSERT_INT_EQ(accepts("root ::= [a-]", "-"), 1);
    /* recursion (not on the left) */
    g = "root ::= \"(\" root \")\" | \"\"";
    ASSERT_INT_EQ(accepts(g, "((()))"), 1);
    ASSERT_INT_EQ(accepts(g, "(()"), 0);
}

static void test_ebnf_utf8(void)
{
    /* classes match whole characters of every UTF-8 length */
    const char *g = "root ::= [^x]*";
    ASSERT_INT_EQ(accepts(g, "a\xc3\xa9\xe5\xa4\xa7\xf0\x9f\x98\x80"), 1);
    ASSERT_INT_EQ(accepts(g, "\xc3"), 0);          /* a truncated character */
    ASSERT_INT_EQ(accepts(g, "\xed\xa0\x80"), 0);  /* a surrogate */
    ASSERT_INT_EQ(accepts(g, "\xc0\xaf"), 0);      /* an overlong form */
    ASSERT_INT_EQ(accepts("root ::= .", "\xf4\x8f\xbf\xbf"), 1);
    ASSERT_INT_EQ(accepts("root ::= .", "\xf4\x90\x80\x80"), 0);
    ASSERT_INT_EQ(accepts("root ::= [\\u0100-\\u0200]", "\xc4\x80"), 1);
    ASSERT_INT_EQ(accepts("root ::= [\\u0100-\\u0200]", "\xc8\x81"), 0);
    ASSERT_INT_EQ(accepts("root ::= [大-大]", "大"), 1);
}

static void test_ebnf_errors(void)
{
    struct {
        const char *text;
        const char *msg;
    } cases[] = {
        {"root ::= a", "rule 'a' is used but not defined"},
        {"start ::= \"a\"", "no 'root' rule"},
        {"root ::= root \"a\" | \"b\"", "can repeat without consuming input"},
        {"root ::= (\"a\"?)*", "can repeat without consuming input"},
        {"root ::= x\nx ::= y \"a\"\ny ::= \"\" | x", "can repeat without consuming input"},
        {"root ::= \"abc", "unterminated literal"},
        {"root ::= [abc", "unterminated character class"},
        {"root ::= \"a\"{3,2}", "below the minimum"},
        {"root ::= \"a\"{100000}", "repetition count"},
        {"root ::= \"\\q\"", "unknown escape"},
        {"root ::= \"a\"\nroot ::= \"b\"", "defined twice"},
        {"root ::= (\"a\"", "expected ')'"},
        {"root ::= \"a\" @", "unexpected character"},
        {"\"a\"", "expected a rule definition"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct gram *g = NULL;
        char err[256] = "";
        int rc = gram_compile(&g, cases[i].text, strlen(cases[i].text), NULL, err, sizeof(err));
        if (rc == 0) {
            gram_unref(g);
            TEST_FAIL_("compiled: %s", cases[i].text);
        }
        ASSERT_TRUE(g == NULL);
        ASSERT_STR_CONTAINS(err, cases[i].msg);
        ASSERT_STR_CONTAINS(err, "line ");
    }
}

/* ------------------------------------------------------------------ schemas */

static void test_schema_object(void)
{
    const char *s = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},"
                    "\"b\":{\"type\":\"string\"},\"c\":{\"type\":\"boolean\"}},"
                    "\"required\":[\"b\"],\"additionalProperties\":false}";
    ASSERT_INT_EQ(schema_accepts(s, "{\"b\":\"x\"}"), 1);
    ASSERT_INT_EQ(schema_accepts(s, "{\"a\":1,\"b\":\"x\",\"c\":true}"), 1);
    ASSERT_INT_EQ(schema_accepts(s, "{ \"a\": -12 ,\n  \"b\": \"\" }"), 1);
    ASSERT_INT_EQ(schema_accepts(s, "{\"b\":\"x\",\"c\":false}"), 1);
    ASSERT_INT_EQ(schema_accepts(s, "{\"a\":1}"), 0);         /* b is required */
    ASSERT_INT_EQ(schema_accepts(s, "{\"b\":\"x\",\"a\":1}"), 0); /* declared order */
    ASSERT_INT_EQ(schema_accepts(s, "{\"b\":\"x\",}"), 0);
    ASSERT_INT_EQ(schema_accepts(s, "{\"a\":1.5,\"b\":\"x\"}"), 0);
    ASSERT_INT_EQ(schema_accepts(s, "{\"b\":\"x\",\"d\":1}"), 0);
    /* a map */
    s = "{\"type\":\"object\",\"additionalProperties\":{\"type\":\"number\"}}";
    ASSERT_INT_EQ(schema_accepts(s, "{\"k\":1.5,\"j\":2}"), 1);
    ASSERT_INT_EQ(schema_accepts(s, "{\"k\":\"x\"}"), 0);
    /* an empty schema: any JSON */
    ASSERT_INT_EQ(schema_accepts("{}", "[1,{\"a\":null},\"s\"]"), 1);
    ASSERT_INT_EQ(schema_accepts("true", "false"), 1);
}

static void test_schema_scalars(void)
{
    const char *s = "{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}";
    ASSERT_INT_EQ(schema_accepts(s, "\"ab\""), 1);
    ASSERT_INT_EQ(schema_accepts(s, "\"a\\nb\""), 1);
    ASSERT_INT_EQ(schema_accepts(s, "\"\\u00e9\xc3\xa9\""), 1);
    ASSERT_INT_EQ(schema_accepts(s, "\"a\""), 0);
    ASSERT_INT_EQ(schema_accepts(s, "\"abcd\""), 0);
    ASSERT_INT_EQ(schema_accepts(s, "\"\\ud83d\\ude00\""), 0); /* surrogate escapes */
    ASSERT_INT_EQ(schema_accepts(s, "\"a\x01\""), 0);
    s = "{\"enum\":[\"red\",1,null,{\"a\":[true]}]}";
    ASSERT_INT_EQ(schema_accepts(s, "\"red\""), 1);
    ASSERT_INT_EQ(schema_accepts(s, "1"), 1);
    ASSERT_INT_EQ(schema_accepts(s, "null"), 1);
    ASSERT_INT_EQ(schema_accepts(s, "{\"a\":[true]}"), 1);
    ASSERT_INT_EQ(schema_accepts(s, "\"blue\""), 0);
    ASSERT_INT_EQ(schema_accepts("{\"const\":\"x\\\"y\"}", "\"x\\\"y\""), 1);
    s = "{\"type\":[\"integer\",\"null\"]}";
    ASSERT_INT_EQ(schema_accepts(s, "null"), 1);
    ASSERT_INT_EQ(schema_accepts(s, "-7"), 1);
    ASSERT_INT_EQ(schema_accepts(s, "07"), 0);
    ASSERT_INT_EQ(schema_accepts("{\"type\":\"string\",\"nullable\":true}", "null"), 1);
    ASSERT_INT_EQ(schema_accepts("{\"type\":\"number\"}", "-0.25"), 1);
    ASSERT_INT_EQ(schema_accepts("{\"type\":\"number\"}", "1e5"), 0);
    ASSERT_INT_EQ(schema_accepts("{\"type\":\"boolean\"}", "true"), 1);
    ASSERT_INT_EQ(schema_accepts("{\"type\":\"null\"}", "null"), 1);
}

static void test_schema_ranges(void)
{
    const char *s = "{\"type\":\"integer\",\"minimum\":-15,\"maximum\":230}";
    int ok = 1;
    char buf[32];
    for (int v = -40; v <= 300 && ok; v++) {
        snprintf(buf, sizeof(buf), "%d", v);
        int want = v >= -15 && v <= 230;
        if (schema_accepts(s, buf) != want)
            TEST_FAIL_("integer %d: expected %d", v, want);
    }
    s = "{\"type\":\"integer\",\"exclusiveMinimum\":9,\"exclusiveMaximum\":101}";
    ASSERT_INT_EQ(schema_accepts(s, "9"), 0);
    ASSERT_INT_EQ(schema_accepts(s, "10"), 1);
    ASSERT_INT_EQ(schema_accepts(s, "100"), 1);
    ASSERT_INT_EQ(schema_accepts(s, "101"), 0);
    s = "{\"type\":\"number\",\"minimum\":-2,\"maximum\":3}";
    ASSERT_INT_EQ(schema_accepts(s, "2.999"), 1);
    ASSERT_INT_EQ(schema_accepts(s, "3"), 1);
    ASSERT_INT_EQ(schema_accepts(s, "3.5"), 0);
    ASSERT_INT_EQ(schema_accepts(s, "-1.5"), 1);
    ASSERT_INT_EQ(schema_accepts(s, "-2"), 1);
    ASSERT_INT_EQ(schema_accepts(s, "-2.5"), 0);
    ASSERT_INT_EQ(schema_accepts(s, "-3"), 0);
    s = "{\"type\":\"number\",\"exclusiveMinimum\":0}";
    ASSERT_INT_EQ(schema_accepts(s, "0"), 0);
    ASSERT_INT_EQ(schema_accepts(s, "1.5"), 1);
    ASSERT_INT_EQ(schema_accepts(s, "-1"), 0);
    s = "{\"type\":\"number\",\"maximum\":-1}";
    ASSERT_INT_EQ(schema_accepts(s, "-1"), 1);
    ASSERT_INT_EQ(schema_accepts(s, "-1.5"), 1);
    ASSERT_INT_EQ(schema_accepts(s, "-0.5"), 0);
    ASSERT_INT_EQ(schema_accepts(s, "0"), 0);
}

static void test_schema_arrays_refs(void)
{
    const char *s = "{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":1,\"maxItems\":3}";
    ASSERT_INT_EQ(schema_accepts(s, "[1]"), 1);
    ASSERT_INT_EQ(schema_accepts(s, "[1, 2,3]"), 1);
    ASSERT_INT_EQ(schema_accepts(s, "[]"), 0);
    ASSERT_INT_EQ(schema_accepts(s, "[1,2,3,4]"), 0);
    ASSERT_INT_EQ(schema_accepts("{\"type\":\"array\",\"maxItems\":0}", "[]"), 1);
    /* a recursive $ref */
    s = "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},"
        "\"next\":{\"anyOf\":[{\"$ref\":\"#/$defs/node\"},{\"type\":\"null\"}]}},"
        "\"required\":[\"v\",\"next\"],\"additionalProperties\":false}},\"$ref\":\"#/$defs/node\"}";
    ASSERT_INT_EQ(schema_accepts(s, "{\"v\":1,\"next\":{\"v\":2,\"next\":null}}"), 1);
    ASSERT_INT_EQ(schema_accepts(s, "{\"v\":1,\"next\":{\"v\":2}}"), 0);
    s = "{\"type\":\"object\",\"properties\":{\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#\"}}},"
        "\"additionalProperties\":false}";
    ASSERT_INT_EQ(schema_accepts(s, "{\"kids\":[{},{\"kids\":[]}]}"), 1);
    s = "{\"allOf\":[{\"type\":\"string\",\"enum\":[\"a\"]}]}";
    ASSERT_INT_EQ(schema_accepts(s, "\"a\""), 1);
}

static void test_schema_strings_formats(void)
{
    const char *s = "{\"type\":\"string\",\"pattern\":\"^[A-Z]{2}-\\\\d{3}(x|yz)?$\"}";
    ASSERT_INT_EQ(schema_accepts(s, "\"AB-123\""), 1);
    ASSERT_INT_EQ(schema_accepts(s, "\"AB-123yz\""), 1);
    ASSERT_INT_EQ(schema_accepts(s, "\"ab-123\""), 0);
    ASSERT_INT_EQ(schema_accepts(s, "\"AB-12\""), 0);
    s = "{\"type\":\"string\",\"pattern\":\"a\\\"b\"}"; /* unanchored, with a quote */
    ASSERT_INT_EQ(schema_accepts(s, "\"xxa\\\"byy\""), 1);
    ASSERT_INT_EQ(schema_accepts(s, "\"ab\""), 0);
    s = "{\"type\":\"string\",\"format\":\"date\"}";
    ASSERT_INT_EQ(schema_accepts(s, "\"2026-11-28\""), 1);
    ASSERT_INT_EQ(schema_accepts(s, "\"2026-02-30\""), 0);
    ASSERT_INT_EQ(schema_accepts(s, "\"2026-04-31\""), 0);
    s = "{\"type\":\"string\",\"format\":\"date-time\"}";
    ASSERT_INT_EQ(schema_accepts(s, "\"2026-11-28T23:59:01.5Z\""), 1);
    ASSERT_INT_EQ(schema_accepts(s, "\"2026-11-28T10:00:00+05:30\""), 1);
    ASSERT_INT_EQ(schema_accepts(s, "\"2026-11-28T24:00:00Z\""), 0);
    s = "{\"type\":\"string\",\"format\":\"uuid\"}";
    ASSERT_INT_EQ(schema_accepts(s, "\"123e4567-e89b-12d3-a456-426614174000\""), 1);
    ASSERT_INT_EQ(schema_accepts(s, "\"123e4567e89b-12d3-a456-426614174000\""), 0);
    s = "{\"type\":\"string\",\"format\":\"email\"}";
    ASSERT_INT_EQ(schema_accepts(s, "\"a.b@example.org\""), 1);
    ASSERT_INT_EQ(schema_accepts(s, "\"a@b\""), 0);
}

static void test_schema_unsupported(void)
{
    struct {
        const char *schema;
        const char *kw;
        const char *where;
    } cases[] = {
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"not\":{}}}}", "not", "/properties/a"},
        {"{\"oneOf\":[{}]}", "oneOf", "at /"},
        {"{\"type\":\"number\",\"multipleOf\":2}", "multipleOf", "at /"},
        {"{\"type\":\"array\",\"uniqueItems\":true}", "uniqueItems", "at /"},
        {"{\"type\":\"string\",\"format\":\"ipv4\"}", "format", "ipv4"},
        {"{\"type\":\"string\",\"pattern\":\"(?=a)\"}", "pattern", "lookaround"},
        {"{\"type\":\"string\",\"pattern\":\"(a)\\\\1\"}", "pattern", "back-reference"},
        {"{\"$ref\":\"http://x/y\"}", "$ref", "local references"},
        {"{\"type\":\"object\",\"required\":[\"x\"]}", "required", "not in 'properties'"},
        {"{\"type\":\"integer\",\"minimum\":5,\"maximum\":4}", "minimum", "no integer"},
        {"{\"type\":\"blob\"}", "type", "unknown type"},
        {"{\"type\":\"array\",\"items\":[{}]}", "items", "tuple"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "", kw[64] = "";
        char *g = schema_grammar(cases[i].schema, err, sizeof(err), kw, sizeof(kw));
        if (g) {
            free(g);
            TEST_FAIL_("accepted %s", cases[i].schema);
        }
        ASSERT_STR_EQ(kw, cases[i].kw);
        ASSERT_STR_CONTAINS(err, cases[i].where);
    }
}

/* ------------------------------------------------------------------ token masks */

static const char *const toks[] = {
    "{", "}", "\"", "a", "ab", "\"a", "a\"", "1", "12", "0", ":", ",", " ", "  ", "{\"", "\":",
    "\",", "\"}", "b", "true", "tr", "ue", "null", "-", ".", "\xc3\xa9", "\xc3", "\xa9", "}}",
};
#define N_TOKS (sizeof(toks) / sizeof(toks[0]))

static struct gram_vocab *small_vocab(void)
{
    const char *b[N_TOKS + 2];
    size_t l[N_TOKS + 2];
    uint8_t e[N_TOKS + 2];
    for (size_t i = 0; i < N_TOKS; i++) {
        b[i] = toks[i];
        l[i] = strlen(toks[i]);
        e[i] = GRAM_TOK_TEXT;
    }
    b[N_TOKS] = "<eos>";
    l[N_TOKS] = 5;
    e[N_TOKS] = GRAM_TOK_END;
    b[N_TOKS + 1] = "{"; /* a control token whose text the grammar could match */
    l[N_TOKS + 1] = 1;
    e[N_TOKS + 1] = GRAM_TOK_SPECIAL;
    return gram_vocab_new(N_TOKS + 2, b, l, e);
}

static bool bit(const uint32_t *m, size_t i)
{
    return (m[i / 32] >> (i % 32)) & 1;
}

/* Along a walk through the schema's texts, every mask equals brute force: a token is
 * allowed exactly when its bytes can be fed to a copy of the matcher. */
static void test_mask_brute_force(void)
{
    char err[256], kw[64];
    char *text = schema_grammar("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"},"
                                "\"b\":{\"type\":[\"integer\",\"boolean\",\"null\"]}},"
                                "\"required\":[\"a\"]}",
                                err, sizeof(err), kw, sizeof(kw));
    ASSERT_TRUE(text != NULL);
    struct gram *g = compile(text);
    free(text);
    ASSERT_TRUE(g != NULL);
    struct gram_vocab *v = small_vocab();
    test_rng_seed(7);
    int completed = 0;
    for (int run = 0; run < 60; run++) {
        struct gram_matcher *m = gram_matcher_new(g, v);
        int steps = 0;
        for (; steps < 40; steps++) {
            const uint32_t *mask = gram_matcher_mask(m);
            ASSERT_TRUE(mask != NULL);
            size_t allowed[N_TOKS + 1], n_allowed = 0;
            ASSERT_TRUE(!bit(mask, N_TOKS + 1));
            for (size_t t = 0; t <= N_TOKS; t++) {
                bool brute = gram_matcher_allows(m, (int32_t)t);
                if (brute != bit(mask, t))
                    TEST_FAIL_("run %d step %d token '%s': mask %d, brute force %d", run, steps,
                               t < N_TOKS ? toks[t] : "<eos>", bit(mask, t), brute);
                if (brute)
                    allowed[n_allowed++] = t;
            }
            ASSERT_TRUE(n_allowed > 0);
            size_t pick = allowed[(size_t)(test_urand() * (double)n_allowed)];
            ASSERT_INT_EQ(gram_matcher_accept(m, (int32_t)pick), 0);
            if (pick == N_TOKS) {
                completed++;
                break;
            }
        }
        gram_matcher_free(m);
    }
    ASSERT_TRUE(completed > 0);
    gram_vocab_free(v);
    gram_unref(g);
}

static void test_matcher_states(void)
{
    struct gram *g = compile("root ::= \"ab\" | \"abc\"");
    struct gram_vocab *v = small_vocab();
    struct gram_matcher *m = gram_matcher_new(g, v);
    gram_unref(g); /* the matcher holds its own reference */
    ASSERT_TRUE(!gram_matcher_accepting(m));
    ASSERT_INT_EQ(gram_matcher_accept(m, 3 /* a */), 0);
    ASSERT_INT_EQ(gram_matcher_accept(m, 3 /* a */), GRAM_EINVAL);
    ASSERT_INT_EQ(gram_matcher_accept(m, (int32_t)N_TOKS), GRAM_EINVAL); /* not complete */
    ASSERT_INT_EQ(gram_matcher_feed(m, "b", 1), 0);
    ASSERT_TRUE(gram_matcher_accepting(m));
    ASSERT_TRUE(!gram_matcher_done(m)); /* "c" may follow */
    ASSERT_INT_EQ(gram_matcher_feed(m, "c", 1), 0);
    ASSERT_TRUE(gram_matcher_done(m));
    const uint32_t *mask = gram_matcher_mask(m);
    for (size_t t = 0; t < N_TOKS; t++)
        ASSERT_TRUE(!bit(mask, t));
    ASSERT_TRUE(bit(mask, N_TOKS));
    ASSERT_INT_EQ(gram_vocab_end_token(v), (int)N_TOKS);
    ASSERT_INT_EQ(gram_matcher_accept(m, (int32_t)N_TOKS), 0);
    ASSERT_INT_EQ(gram_matcher_accept(m, 3), GRAM_EINVAL);
    gram_matcher_free(m);
    gram_vocab_free(v);
}

/* Many distinct states: masks and transition tables are dropped and rebuilt. */
static void test_matcher_cache_flush(void)
{
    struct gram *g = compile("root ::= [0-9]{0,2000} \"}\"");
    struct gram_vocab *v = small_vocab();
    struct gram_matcher *m = gram_matcher_new(g, v);
    for (int i = 0; i < 1500; i++) {
        const uint32_t *mask = gram_matcher_mask(m);
        ASSERT_TRUE(mask != NULL);
        ASSERT_TRUE(bit(mask, 7) && bit(mask, 8) && bit(mask, 1) && !bit(mask, 3));
        ASSERT_INT_EQ(gram_matcher_accept(m, 7), 0);
    }
    ASSERT_INT_EQ(gram_matcher_accept(m, 1), 0);
    ASSERT_TRUE(gram_matcher_done(m));
    gram_matcher_free(m);
    gram_vocab_free(v);
    gram_unref(g);
}

static void test_any_json(void)
{
    struct strbuf b = {0};
    ASSERT_INT_EQ(gram_any_json_ebnf("j", "root", true, &b), 0);
    ASSERT_INT_EQ(accepts(b.data, "{\"a\": [1, 2.5, \"x\", {\"b\": null}], \"c\": false}"), 1);
    ASSERT_INT_EQ(accepts(b.data, "[1]"), 0);
    ASSERT_INT_EQ(accepts(b.data, "{\"a\" 1}"), 0);
    strbuf_free(&b);
    ASSERT_INT_EQ(gram_any_json_ebnf("j", "root", false, &b), 0);
    ASSERT_INT_EQ(accepts(b.data, "[1]"), 1);
    strbuf_free(&b);
    /* literals built by gram_ebnf_literal read back exactly */
    const char raw[] = "q\"\\\n\x01\xe5\xa4\xa7\xff";
    ASSERT_INT_EQ(gram_ebnf_literal(&b, raw, sizeof(raw) - 1), 0);
    char *g = malloc(b.len + 16);
    snprintf(g, b.len + 16, "root ::= %s", b.data);
    ASSERT_INT_EQ(accepts(g, raw), 1);
    free(g);
    strbuf_free(&b);
}

int main(void)
{
    RUN(test_json_parse);
    RUN(test_ebnf_basics);
    RUN(test_ebnf_utf8);
    RUN(test_ebnf_errors);
    RUN(test_schema_object);
    RUN(test_schema_scalars);
    RUN(test_schema_ranges);
    RUN(test_schema_arrays_refs);
    RUN(test_schema_strings_formats);
    RUN(test_schema_unsupported);
    RUN(test_mask_brute_force);
    RUN(test_matcher_states);
    RUN(test_matcher_cache_flush);
    RUN(test_any_json);
    return TEST_DONE();
}
