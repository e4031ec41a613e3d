/* test_tok_prompt.c - tok_assemble_prompt on the qwen3 and llama-spm fixture
 * vocabularies: stored ids are fed as stored even where a fresh tokenization would
 * split the text differently, the text between them is tokenized like the whole
 * prompt would be (SPM: without a space prefix inside a fragment), ids whose text is
 * not in the prompt are left out, and the result always reads back to the prompt. */
#include "test.h"

#include "gguf.h"
#include "tokenizer.h"
#include "vocab_fixture.h"

#include <string.h>

static int32_t *enc(const struct tok_vocab *v, const char *s, size_t *n)
{
    int32_t *ids = NULL;
    *n = 0;
    if (tok_encode(v, s, strlen(s), false, true, &ids, n) != 0)
        return NULL;
    return ids;
}

/* The spans of the message texts in the prompt, found in order (what the template
 * renderer reports for these plain templates). */
static size_t spans_of(const char *prompt, const char *const *texts, size_t n,
                       struct tok_span *out)
{
    size_t at = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        const char *hit = strstr(prompt + at, texts[i]);
        if (!hit)
            continue;
        size_t start = (size_t)(hit - prompt);
        out[m++] = (struct tok_span){start, start + strlen(texts[i])};
        at = start + strlen(texts[i]);
    }
    return m;
}

static bool contains(const int32_t *ids, size_t n, const int32_t *part, size_t m)
{
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(ids + i, part, m * sizeof(*ids)) == 0)
            return true;
    return false;
}

static void test_bpe_keeps_stored_ids(void)
{
    struct { struct tok_vocab *tok; } sm = {
        .tok = test_load_vocab("tokenizer/ggml-vocab-qwen3.gguf")};
    ASSERT_TRUE(sm.tok != NULL);
    const char *prompt = "<|im_start|>user\nhello world<|im_end|>\n<|im_start|>assistant\n"
                         "greetings<|im_end|>\n<|im_start|>user\nagain<|im_end|>\n"
                         "<|im_start|>assistant\n";
    /* turn 1: the prompt up to the first reply, as tokenized then */
    size_t n1;
    int32_t *t1 = enc(sm.tok, "<|im_start|>user\nhello world<|im_end|>\n<|im_start|>assistant\n", &n1);
    /* the reply as the model generated it: one id per letter, not the merged word */
    const char *reply = "greetings";
    int32_t gen[16];
    size_t ng = 0;
    for (const char *c = reply; *c; c++) {
        size_t k;
        int32_t *one = enc(sm.tok, (char[]){*c, 0}, &k);
        ASSERT_INT_EQ(k, 1);
        gen[ng++] = one[0];
        free(one);
    }
    size_t nw;
    int32_t *word = enc(sm.tok, reply, &nw);
    ASSERT_TRUE(nw < ng); /* a fresh tokenization merges the letters */
    const char *texts[] = {"hello world", reply, "again"};
    struct tok_span msgs[3];
    size_t nm = spans_of(prompt, texts, 3, msgs);
    struct tok_segment segs[] = {{t1, n1}, {gen, ng}};
    int32_t *ids;
    size_t n, tail, used;
    ASSERT_INT_EQ(tok_assemble_prompt(sm.tok, prompt, msgs, nm, segs, 2, &ids, &n, &tail, &used), 0);
    ASSERT_INT_EQ(used, 2);
    ASSERT_INT_EQ(tail, n1 + ng);
    ASSERT_TRUE(memcmp(ids, t1, n1 * sizeof(*ids)) == 0);
    ASSERT_TRUE(memcmp(ids + n1, gen, ng * sizeof(*ids)) == 0);
    size_t nf;
    int32_t *fresh = enc(sm.tok, prompt, &nf);
    ASSERT_INT_EQ(n, nf + ng - nw); /* only the reply differs from the fresh ids */
    ASSERT_TRUE(memcmp(ids + tail, fresh + nf - (n - tail), (n - tail) * sizeof(*ids)) == 0);
    free(ids);

    /* a stored segment whose text is not in the prompt is skipped; the rest still fits */
    size_t nx;
    int32_t *other = enc(sm.tok, "not in the prompt", &nx);
    struct tok_segment segs2[] = {{other, nx}, {gen, ng}};
    ASSERT_INT_EQ(tok_assemble_prompt(sm.tok, prompt, msgs, nm, segs2, 2, &ids, &n, &tail, &used), 0);
    ASSERT_INT_EQ(used, 1);
    ASSERT_TRUE(contains(ids, n, gen, ng));
    ASSERT_TRUE(!contains(ids, n, other, nx));
    char *text;
    size_t len;
    ASSERT_INT_EQ(tok_decode(sm.tok, ids, n, TOK_DECODE_SPECIAL, &text, &len), 0);
    ASSERT_STR_EQ(text, prompt);
    free(text);
    free(ids);

    /* no segments: exactly the fresh tokenization */
    ASSERT_INT_EQ(tok_assemble_prompt(sm.tok, prompt, msgs, nm, NULL, 0, &ids, &n, &tail, &used), 0);
    ASSERT_INT_EQ(n, nf);
    ASSERT_TRUE(memcmp(ids, fresh, n * sizeof(*ids)) == 0);
    ASSERT_INT_EQ(tail, 0);
    free(ids);
    free(fresh);
    free(other);
    free(word);
    free(t1);
    tok_free(sm.tok);
}

static void test_spm_fragments(void)
{
    struct { struct tok_vocab *tok; } sm = {
        .tok = test_load_vocab("tokenizer/ggml-vocab-llama-spm.gguf")};
    ASSERT_TRUE(sm.tok != NULL);
    ASSERT_TRUE(tok_add_bos(sm.tok) && tok_add_space_prefix(sm.tok));
    const char *prompt = "[INST] Hi there [/INST] Hello</s>[INST] More [/INST]";
    const char *texts[] = {"Hi there", "Hello", "More"};
    struct tok_span msgs[3];
    size_t nm = spans_of(prompt, texts, 3, msgs);
    size_t n1;
    int32_t *t1 = enc(sm.tok, "[INST] Hi there [/INST]", &n1);
    int32_t hello = tok_find(sm.tok, "\xe2\x96\x81Hello"); /* the reply, as generated */
    ASSERT_TRUE(hello >= 0);
    struct tok_segment segs[] = {{t1, n1}, {&hello, 1}};
    int32_t *ids;
    size_t n, tail, used;
    ASSERT_INT_EQ(tok_assemble_prompt(sm.tok, prompt, msgs, nm, segs, 2, &ids, &n, &tail, &used), 0);
    ASSERT_INT_EQ(ids[0], tok_bos(sm.tok));
    ASSERT_INT_EQ(used, 2);
    ASSERT_INT_EQ(tail, 1 + n1 + 1);
    ASSERT_TRUE(memcmp(ids + 1, t1, n1 * sizeof(*ids)) == 0);
    ASSERT_INT_EQ(ids[1 + n1], hello);
    size_t nf;
    int32_t *fresh = NULL;
    ASSERT_INT_EQ(tok_encode(sm.tok, prompt, strlen(prompt), true, true, &fresh, &nf), 0);
    ASSERT_INT_EQ(n, nf);
    ASSERT_TRUE(memcmp(ids, fresh, n * sizeof(*ids)) == 0);
    free(ids);
    /* text between stored ids that starts inside an SPM fragment continues it: no space
     * prefix is added there, so the ids still read back to the prompt */
    ASSERT_INT_EQ(tok_assemble_prompt(sm.tok, prompt, msgs, nm, segs, 1, &ids, &n, &tail, &used), 0);
    ASSERT_INT_EQ(tail, 1 + n1);
    ASSERT_INT_EQ(n, nf);
    ASSERT_TRUE(memcmp(ids, fresh, n * sizeof(*ids)) == 0);
    free(ids);
    free(fresh);
    free(t1);
    tok_free(sm.tok);
}

int main(void)
{
    RUN(test_bpe_keeps_stored_ids);
    RUN(test_spm_fragments);
    return TEST_DONE();
}
