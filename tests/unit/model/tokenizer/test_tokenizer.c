/* test_tokenizer.c - tokenizer conformance: every llama.cpp vector of the three fixture
 * vocabularies (SentencePiece llama, GPT-2 and Qwen3 byte-level BPE) must give exactly
 * the reference ids; decode(encode(s)) == s; special-token parsing on and off; the
 * fixture models' golden prompt tokens; the streaming detokenizer on characters split
 * across tokens; and the R11/R12 load checks with hand-made vocabularies. */
#include "gguf.h"
#include "test.h"
#include "tokenizer.h"
#include "vocab_fixture.h"

#include <stdbool.h>

/* ---- helpers --------------------------------------------------------------------- */

static char errbuf[512];

static bool valid_utf8(const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
                   : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (len == 0 || i + len > n)
            return false;
        for (size_t k = 1; k < len; k++)
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
        if ((c == 0xE0 && p[i + 1] < 0xA0) || (c == 0xED && p[i + 1] >= 0xA0) ||
            (c == 0xF0 && p[i + 1] < 0x90) || (c == 0xF4 && p[i + 1] >= 0x90))
            return false;
        i += len;
    }
    return true;
}

static void print_ids(const char *label, const int32_t *ids, size_t n)
{
    fprintf(stderr, "    %s:", label);
    for (size_t i = 0; i < n && i < 64; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "%s\n", n > 64 ? " ..." : "");
}

/* Runs every vector of tokenizer/<name>.inp/.out; returns the number of failures. */
static int run_vectors(const char *name, bool spm, int *n_strings)
{
    char rel[256];
    snprintf(rel, sizeof(rel), "tokenizer/%s", name);
    struct tok_vocab *v = test_load_vocab(rel);
    if (!v)
        return 1000;
    size_t inp_len, out_len;
    snprintf(rel, sizeof(rel), "tokenizer/%s.inp", name);
    char *inp = test_read_file(test_fixture(rel), &inp_len);
    snprintf(rel, sizeof(rel), "tokenizer/%s.out", name);
    char *out = test_read_file(test_fixture(rel), &out_len);
    if (!inp || !out) {
        tok_free(v);
        free(inp);
        free(out);
        return 1000;
    }
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const size_t sep_len = sizeof(sep) - 1;
    int fails = 0, k = 0;
    char *s = inp, *line = out;
    for (;;) {
        char *end = memmem(s, inp_len - (size_t)(s - inp), sep, sep_len);
        if (!end)
            break;
        char *nl = memchr(line, '\n', out_len - (size_t)(line - out));
        if (!nl) {
            fprintf(stderr, "  %s: .out has fewer lines than .inp has strings\n", name);
            fails++;
            break;
        }
        /* expected ids */
        int32_t want[4096];
        size_t n_want = 0;
        for (char *p = line; p < nl && n_want < 4096;) {
            char *q;
            long x = strtol(p, &q, 10);
            if (q == p)
                break;
            want[n_want++] = (int32_t)x;
            p = q;
        }
        size_t len = (size_t)(end - s);
        int32_t *ids;
        size_t n;
        int rc = tok_encode(v, s, len, false, false, &ids, &n);
        bool ok = rc == 0 && n == n_want && memcmp(ids, want, n * sizeof(*ids)) == 0;
        if (!ok) {
            fails++;
            fprintf(stderr, "  %s string %d (%zu bytes): ids differ\n", name, k + 1, len);
            print_ids("want", want, n_want);
            print_ids("got ", ids, rc == 0 ? n : 0);
        }
        /* round trip for valid UTF-8 */
        if (rc == 0 && valid_utf8(s, len)) {
            char *text;
            size_t tl;
            rc = tok_decode(v, ids, n, spm ? TOK_DECODE_STRIP_SPACE : 0, &text, &tl);
            if (rc != 0 || tl != len || memcmp(text, s, len) != 0) {
                fails++;
                fprintf(stderr, "  %s string %d: decode(encode(s)) != s\n", name, k + 1);
            }
            free(text);
        }
        free(ids);
        k++;
        s = end + sep_len;
        line = nl + 1;
    }
    *n_strings = k;
    free(inp);
    free(out);
    tok_free(v);
    return fails;
}

/* ---- vectors --------------------------------------------------------------------- */

static void test_vectors_llama_spm(void)
{
    int n = 0;
    ASSERT_INT_EQ(run_vectors("ggml-vocab-llama-spm.gguf", true, &n), 0);
    ASSERT_INT_EQ(n, 46);
}

static void test_vectors_gpt2(void)
{
    int n = 0;
    ASSERT_INT_EQ(run_vectors("ggml-vocab-gpt-2.gguf", false, &n), 0);
    ASSERT_INT_EQ(n, 46);
}

static void test_vectors_qwen3(void)
{
    int n = 0;
    ASSERT_INT_EQ(run_vectors("ggml-vocab-qwen3.gguf", false, &n), 0);
    ASSERT_INT_EQ(n, 86);
}

/* ---- vocabulary facts ------------------------------------------------------------ */

static void test_vocab_info(void)
{
    struct tok_vocab *v = test_load_vocab("tokenizer/ggml-vocab-llama-spm.gguf");
    ASSERT_TRUE(v != NULL);
    ASSERT_INT_EQ(tok_n_vocab(v), 32000);
    ASSERT_INT_EQ(tok_kind(v), TOK_KIND_SPM);
    ASSERT_STR_EQ(tok_kind_name(v), "llama");
    ASSERT_INT_EQ(tok_bos(v), 1);
    ASSERT_INT_EQ(tok_eos(v), 2);
    ASSERT_INT_EQ(tok_unk(v), 0);
    ASSERT_TRUE(tok_add_bos(v));
    ASSERT_TRUE(tok_is_eog(v, 2));
    ASSERT_TRUE(!tok_is_eog(v, 1));
    ASSERT_TRUE(!tok_is_eog(v, -1));
    ASSERT_TRUE(!tok_is_eog(v, 32000));
    ASSERT_INT_EQ(tok_find(v, "<0x0A>"), 13);
    ASSERT_INT_EQ(tok_type(v, 13), TOK_TYPE_BYTE);
    ASSERT_INT_EQ(tok_type(v, 1), TOK_TYPE_CONTROL);
    ASSERT_INT_EQ(tok_find(v, "no such token"), -1);
    char buf[16];
    ASSERT_INT_EQ(tok_piece(v, 13, buf, sizeof(buf), false), 1);
    ASSERT_INT_EQ(buf[0], '\n');
    int32_t hello = tok_find(v, "\xe2\x96\x81Hello");
    ASSERT_INT_OP(hello, >=, 0);
    ASSERT_INT_EQ(tok_piece(v, hello, buf, sizeof(buf), false), 6);
    ASSERT_TRUE(memcmp(buf, " Hello", 6) == 0);
    ASSERT_INT_EQ(tok_piece(v, 1, buf, sizeof(buf), false), 0);
    ASSERT_INT_EQ(tok_piece(v, 1, buf, sizeof(buf), true), 3);
    ASSERT_TRUE(memcmp(buf, "<s>", 3) == 0);
    ASSERT_INT_EQ(tok_piece(v, 32000, buf, sizeof(buf), true), TOK_ERANGE);
    size_t len;
    const char *t = tok_text(v, 2, &len);
    ASSERT_TRUE(t && len == 4 && memcmp(t, "</s>", 4) == 0);
    tok_free(v);

    v = test_load_vocab("tokenizer/ggml-vocab-qwen3.gguf");
    ASSERT_TRUE(v != NULL);
    ASSERT_INT_EQ(tok_n_vocab(v), 151936);
    ASSERT_STR_EQ(tok_kind_name(v), "gpt2");
    ASSERT_STR_EQ(tok_pre_name(v), "qwen2");
    ASSERT_TRUE(!tok_add_bos(v));
    ASSERT_INT_EQ(tok_eos(v), 151645);
    ASSERT_INT_EQ(tok_pad(v), 151643);
    /* end of generation as llama.cpp derives it (README-qwen.md) */
    static const int32_t eog[] = {151643, 151645, 151662, 151663, 151664};
    for (size_t i = 0; i < 5; i++)
        ASSERT_TRUE(tok_is_eog(v, eog[i]));
    ASSERT_TRUE(!tok_is_eog(v, 151644));
    ASSERT_TRUE(!tok_is_eog(v, 151667));
    ASSERT_INT_EQ(tok_find(v, "<think>"), 151667);
    ASSERT_INT_EQ(tok_type(v, 151667), TOK_TYPE_USER_DEFINED);
    ASSERT_INT_EQ(tok_find(v, "\xc4\x8a"), 198); /* "Ċ" = newline */
    ASSERT_INT_EQ(tok_piece(v, 198, buf, sizeof(buf), false), 1);
    ASSERT_INT_EQ(buf[0], '\n');
    ASSERT_INT_EQ(tok_piece(v, 151700, buf, sizeof(buf), true), 0); /* [PAD] filler: UNUSED */
    tok_free(v);

    v = test_load_vocab("models/tiny-qwen2-q8_0.gguf");
    ASSERT_TRUE(v != NULL);
    ASSERT_INT_EQ(tok_n_vocab(v), 50259);
    ASSERT_INT_EQ(tok_find(v, "<|im_start|>"), 50257);
    ASSERT_TRUE(tok_is_eog(v, 50258));
    ASSERT_TRUE(tok_is_eog(v, 50256));
    ASSERT_TRUE(!tok_add_bos(v));
    tok_free(v);
}

/* ---- special tokens -------------------------------------------------------------- */

static bool has_id(const int32_t *ids, size_t n, int32_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

static void test_special_tokens(void)
{
    struct tok_vocab *v = test_load_vocab("tokenizer/ggml-vocab-qwen3.gguf");
    ASSERT_TRUE(v != NULL);
    const char *chat = "<|im_start|>user\nhi<think>x</think><|im_end|>\n";
    int32_t *ids;
    size_t n;
    ASSERT_INT_EQ(tok_encode(v, chat, strlen(chat), false, true, &ids, &n), 0);
    ASSERT_TRUE(n > 3);
    ASSERT_INT_EQ(ids[0], 151644);
    ASSERT_TRUE(has_id(ids, n, 151645));
    ASSERT_TRUE(has_id(ids, n, 151667));
    ASSERT_TRUE(has_id(ids, n, 151668));
    char *text;
    size_t tl;
    ASSERT_INT_EQ(tok_decode(v, ids, n, TOK_DECODE_SPECIAL, &text, &tl), 0);
    ASSERT_STR_EQ(text, chat);
    free(text);
    ASSERT_INT_EQ(tok_decode(v, ids, n, 0, &text, &tl), 0);
    ASSERT_STR_EQ(text, "user\nhi<think>x</think>\n"); /* CONTROL text hidden, USER_DEFINED kept */
    free(text);
    free(ids);
    /* without parse_special: CONTROL text is plain text, USER_DEFINED still matched */
    ASSERT_INT_EQ(tok_encode(v, chat, strlen(chat), false, false, &ids, &n), 0);
    ASSERT_TRUE(!has_id(ids, n, 151644));
    ASSERT_TRUE(!has_id(ids, n, 151645));
    ASSERT_TRUE(has_id(ids, n, 151667));
    ASSERT_TRUE(has_id(ids, n, 151668));
    ASSERT_INT_EQ(tok_decode(v, ids, n, 0, &text, &tl), 0);
    ASSERT_STR_EQ(text, chat);
    free(text);
    free(ids);
    tok_free(v);

    v = test_load_vocab("tokenizer/ggml-vocab-llama-spm.gguf");
    ASSERT_TRUE(v != NULL);
    const char *s = "<s>Hi</s>";
    ASSERT_INT_EQ(tok_encode(v, s, strlen(s), true, true, &ids, &n), 0);
    ASSERT_INT_OP(n, >=, 4);
    ASSERT_INT_EQ(ids[0], 1);
    ASSERT_INT_EQ(ids[1], 1);
    ASSERT_INT_EQ(ids[n - 1], 2);
    free(ids);
    ASSERT_INT_EQ(tok_encode(v, s, strlen(s), false, false, &ids, &n), 0);
    ASSERT_TRUE(!has_id(ids, n, 1));
    ASSERT_TRUE(!has_id(ids, n, 2));
    free(ids);
    /* empty text: nothing, or just BOS */
    ASSERT_INT_EQ(tok_encode(v, "", 0, false, false, &ids, &n), 0);
    ASSERT_INT_EQ(n, 0);
    ASSERT_TRUE(ids != NULL);
    free(ids);
    ASSERT_INT_EQ(tok_encode(v, "", 0, true, false, &ids, &n), 0);
    ASSERT_INT_EQ(n, 1);
    ASSERT_INT_EQ(ids[0], 1);
    free(ids);
    tok_free(v);
}

/* ---- golden prompts of the fixture models ---------------------------------------- */

/* The "prompt_tokens" array of a golden JSON file. */
static size_t golden_tokens(const char *json, int32_t *out, size_t cap)
{
    const char *p = strstr(json, "\"prompt_tokens\"");
    if (!p || !(p = strchr(p, '[')))
        return 0;
    size_t n = 0;
    for (p++; *p && *p != ']' && n < cap;) {
        char *q;
        long x = strtol(p, &q, 10);
        if (q == p) {
            p++;
            continue;
        }
        out[n++] = (int32_t)x;
        p = q;
    }
    return n;
}

static void test_golden_prompts(void)
{
    static const char *models[] = {"tiny-llama-f32",   "tiny-llama-q4_0",  "tiny-qwen2-q8_0",
                                   "small-llama-kq-q4_k_m", "tiny-phi3-f16", "tiny-gemma2-q8_0",
                                   "tiny-gemma3-q8_0", "tiny-qwen3-q8_0",  "tiny-moe-q4_0",
                                   "tiny-llama3rope-q5_k_m"};
    size_t plen;
    char *prompts = test_read_file(test_fixture("golden/prompts.txt"), &plen);
    ASSERT_TRUE(prompts != NULL);
    for (size_t m = 0; m < sizeof(models) / sizeof(models[0]); m++) {
        char rel[256];
        snprintf(rel, sizeof(rel), "models/%s.gguf", models[m]);
        struct tok_vocab *v = test_load_vocab(rel);
        if (!v)
            free(prompts);
        ASSERT_TRUE(v != NULL);
        const char *line = prompts;
        for (int i = 0; i < 5; i++) {
            const char *nl = strchr(line, '\n');
            size_t ll = nl ? (size_t)(nl - line) : strlen(line);
            snprintf(rel, sizeof(rel), "golden/%s.%d.json", models[m], i);
            size_t jl;
            char *json = test_read_file(test_fixture(rel), &jl);
            int32_t want[1024];
            size_t n_want = json ? golden_tokens(json, want, 1024) : 0;
            free(json);
            int32_t *ids;
            size_t n;
            int rc = tok_encode(v, line, ll, tok_add_bos(v), false, &ids, &n);
            bool ok = rc == 0 && n_want > 0 && n == n_want &&
                      memcmp(ids, want, n * sizeof(*ids)) == 0;
            if (!ok) {
                fprintf(stderr, "  %s prompt %d differs\n", models[m], i);
                print_ids("want", want, n_want);
                print_ids("got ", ids, rc == 0 ? n : 0);
                free(ids);
                tok_free(v);
                free(prompts);
            }
            ASSERT_TRUE(ok);
            free(ids);
            line = nl ? nl + 1 : line + ll;
        }
        tok_free(v);
    }
    free(prompts);
}

/* Checks one token's piece (special tokens rendered) against a hex string. */
static bool piece_matches(const struct tok_vocab *v, int32_t id, const char *hex, size_t hex_len)
{
    char piece[512], want[512];
    int n = tok_piece(v, id, piece, sizeof(piece), true);
    if (n < 0 || (size_t)n > sizeof(piece) || hex_len != 2 * (size_t)n)
        return false;
    for (int i = 0; i < n; i++)
        snprintf(want + 2 * i, 3, "%02x", (uint8_t)piece[i]);
    return memcmp(want, hex, hex_len) == 0;
}

/* Every piece in the golden files (prompt tokens and greedy tokens) is what
 * llama_token_to_piece gave. */
static void test_golden_pieces(void)
{
    static const char *models[] = {"tiny-llama-f32", "tiny-qwen2-q8_0", "small-llama-kq-q4_k_m",
                                   "tiny-phi3-f16",  "tiny-qwen3-q8_0", "tiny-gemma2-q8_0"};
    int checked = 0;
    for (size_t m = 0; m < sizeof(models) / sizeof(models[0]); m++) {
        char rel[256];
        snprintf(rel, sizeof(rel), "models/%s.gguf", models[m]);
        struct tok_vocab *v = test_load_vocab(rel);
        ASSERT_TRUE(v != NULL);
        for (int i = 0; i < 5; i++) {
            snprintf(rel, sizeof(rel), "golden/%s.%d.json", models[m], i);
            size_t jl;
            char *json = test_read_file(test_fixture(rel), &jl);
            if (!json)
                tok_free(v);
            ASSERT_TRUE(json != NULL);
            int32_t ids[1024];
            size_t n = golden_tokens(json, ids, 1024);
            const char *p = strstr(json, "\"prompt_pieces_hex\"");
            bool ok = p != NULL && n > 0;
            p = p ? strchr(p, '[') : NULL;
            for (size_t k = 0; k < n && ok && p; k++) {
                const char *q = strchr(p, '"');
                const char *e = q ? strchr(q + 1, '"') : NULL;
                ok = e && piece_matches(v, ids[k], q + 1, (size_t)(e - q - 1));
                if (!ok)
                    fprintf(stderr, "  %s prompt %d: piece of token %d differs\n", models[m], i, ids[k]);
                p = e ? e + 1 : NULL;
                checked++;
            }
            /* greedy steps: "token": N, "piece_hex": "..." */
            for (const char *g = strstr(json, "\"token\":"); g && ok; g = strstr(g + 1, "\"token\":")) {
                int32_t id = (int32_t)strtol(g + 8, NULL, 10);
                const char *h = strstr(g, "\"piece_hex\":");
                const char *q = h ? strchr(h + 12, '"') : NULL;
                const char *e = q ? strchr(q + 1, '"') : NULL;
                ok = e && piece_matches(v, id, q + 1, (size_t)(e - q - 1));
                if (!ok)
                    fprintf(stderr, "  %s prompt %d: greedy piece of token %d differs\n", models[m], i, id);
                checked++;
            }
            free(json);
            if (!ok)
                tok_free(v);
            ASSERT_TRUE(ok);
        }
        tok_free(v);
    }
    ASSERT_INT_OP(checked, >, 500);
}

/* ---- streaming detokenizer ------------------------------------------------------- */

/* Streams every id of text's encoding; each chunk must be whole characters and all of
 * them together the text. */
static bool stream_roundtrip(const struct tok_vocab *v, const char *text, bool strip,
                             int *n_split)
{
    int32_t *ids;
    size_t n;
    if (tok_encode(v, text, strlen(text), false, false, &ids, &n) != 0)
        return false;
    struct tok_stream s;
    tok_stream_init(&s, v, false);
    char acc[4096];
    size_t o = 0;
    bool ok = true;
    *n_split = 0;
    for (size_t i = 0; i < n && ok; i++) {
        const char *t;
        size_t len;
        char piece[64];
        int pl = tok_piece(v, ids[i], piece, sizeof(piece), false);
        ok = tok_stream_push(&s, ids[i], &t, &len) == 0 && valid_utf8(t, len) &&
             o + len < sizeof(acc);
        if ((size_t)pl != len)
            (*n_split)++; /* the stream held something back or released it */
        if (ok) {
            memcpy(acc + o, t, len);
            o += len;
        }
    }
    const char *t;
    size_t len;
    ok = ok && tok_stream_flush(&s, &t, &len) == 0 && len == 0;
    tok_stream_fini(&s);
    free(ids);
    const char *a = acc;
    if (strip && o && acc[0] == ' ') {
        a++;
        o--;
    }
    return ok && o == strlen(text) && memcmp(a, text, o) == 0;
}

static void test_stream(void)
{
    const char *text = "大模型很厲害。🦙 emoji 👨‍👩‍👧 and 中文 ok";
    int split;
    struct tok_vocab *v = test_load_vocab("tokenizer/ggml-vocab-qwen3.gguf");
    ASSERT_TRUE(v != NULL);
    ASSERT_TRUE(stream_roundtrip(v, text, false, &split));
    ASSERT_INT_OP(split, >, 0); /* some characters really were split across tokens */
    tok_free(v);
    v = test_load_vocab("tokenizer/ggml-vocab-llama-spm.gguf");
    ASSERT_TRUE(v != NULL);
    ASSERT_TRUE(stream_roundtrip(v, text, true, &split));
    ASSERT_INT_OP(split, >, 0); /* byte fallback: <0xF0><0x9F><0xA6><0x99> */

    /* invalid sequences: a lead byte followed by ASCII, and a tail cut off at flush */
    struct tok_stream s;
    const char *t;
    size_t len;
    tok_stream_init(&s, v, false);
    ASSERT_INT_EQ(tok_stream_push(&s, tok_find(v, "<0xE4>"), &t, &len), 0);
    ASSERT_INT_EQ(len, 0);
    ASSERT_INT_EQ(tok_stream_push(&s, tok_find(v, "<0x41>"), &t, &len), 0);
    ASSERT_INT_EQ(len, 4);
    ASSERT_TRUE(memcmp(t, "\xEF\xBF\xBD" "A", 4) == 0);
    ASSERT_INT_EQ(tok_stream_push(&s, tok_find(v, "<0xE4>"), &t, &len), 0);
    ASSERT_INT_EQ(tok_stream_push(&s, tok_find(v, "<0xB8>"), &t, &len), 0);
    ASSERT_INT_EQ(len, 0);
    ASSERT_INT_EQ(tok_stream_flush(&s, &t, &len), 0);
    ASSERT_INT_EQ(len, 3);
    ASSERT_TRUE(memcmp(t, "\xEF\xBF\xBD", 3) == 0);
    ASSERT_INT_EQ(tok_stream_push(&s, tok_find(v, "<0x80>"), &t, &len), 0);
    ASSERT_INT_EQ(len, 3); /* a lone continuation byte can never start a character */
    ASSERT_INT_EQ(tok_stream_push(&s, -1, &t, &len), TOK_ERANGE);
    tok_stream_fini(&s);
    tok_free(v);
}

/* Arbitrary bytes never fail, and valid UTF-8 round-trips (fuzz_tokenize's oracle). */
static void test_arbitrary_bytes(void)
{
    static const char *names[] = {"tokenizer/ggml-vocab-llama-spm.gguf",
                                  "tokenizer/ggml-vocab-gpt-2.gguf",
                                  "tokenizer/ggml-vocab-qwen3.gguf"};
    for (size_t m = 0; m < 3; m++) {
        struct tok_vocab *v = test_load_vocab(names[m]);
        ASSERT_TRUE(v != NULL);
        uint32_t seed = 12345;
        for (int iter = 0; iter < 300; iter++) {
            char buf[64];
            size_t len = (size_t)(iter % 63) + 1;
            for (size_t i = 0; i < len; i++) {
                seed = seed * 1103515245u + 12345u;
                buf[i] = (char)(seed >> 16);
            }
            int32_t *ids;
            size_t n;
            ASSERT_INT_EQ(tok_encode(v, buf, len, false, iter & 1, &ids, &n), 0);
            ASSERT_INT_OP(n, >, 0);
            if (m > 0) { /* byte-level BPE is lossless for any bytes */
                char *text;
                size_t tl;
                ASSERT_INT_EQ(tok_decode(v, ids, n, TOK_DECODE_SPECIAL, &text, &tl), 0);
                ASSERT_INT_EQ(tl, len);
                ASSERT_TRUE(memcmp(text, buf, len) == 0);
                free(text);
            }
            free(ids);
        }
        tok_free(v);
    }
}

/* ---- R11 / R12: hand-made vocabularies ------------------------------------------- */

/* Writes w into *buf and frees w, then opens the bytes as *f; returns gguf_open_buffer's
 * code. Hand f and buf to load_close (free buf alone when the open failed). */
static int open_written(struct gguf_writer *w, void **buf, struct gguf_file **f)
{
    size_t len;
    gguf_writer_write_mem(w, buf, &len);
    gguf_writer_free(w);
    return gguf_open_buffer(f, *buf, len, errbuf, sizeof(errbuf));
}

/* Loads the vocabulary of f into *v, then closes f and frees buf; returns tok_load's code
 * (errbuf: its message). */
static int load_close(struct gguf_file *f, void *buf, struct tok_vocab **v)
{
    errbuf[0] = 0;
    int rc = tok_load(v, f, errbuf, sizeof(errbuf));
    gguf_close(f); /* the vocab keeps its own copy */
    free(buf);
    return rc;
}

static const char *toks5[] = {"<unk>", "<s>", "</s>", "<0x41>", "a"};

/* A small SPM vocab, then one defect chosen by `bad`; returns tok_load's code. */
static int load_small(int bad)
{
    struct gguf_writer *w = gguf_writer_new();
    float scores[5] = {0, 0, 0, 0, -1};
    int32_t types[6] = {2, 3, 3, 6, 1, 1};
    const char *t[5];
    memcpy(t, toks5, sizeof(t));
    if (bad == 4)
        t[3] = "<0x4g>";
    if (bad == 5)
        t[3] = "<0x4a>";
    gguf_writer_add_str(w, "tokenizer.ggml.model", bad == 8 ? "bert" : "llama");
    gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", t, 5);
    gguf_writer_add_arr_f32(w, "tokenizer.ggml.scores", scores, bad == 1 ? 4 : 5);
    if (bad == 2)
        gguf_writer_add_arr_f32(w, "tokenizer.ggml.token_type", scores, 5);
    else
        gguf_writer_add_arr_i32(w, "tokenizer.ggml.token_type", types, bad == 6 ? 6 : 5);
    gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", bad == 3 ? 5 : 1);
    if (bad == 7)
        gguf_writer_add_u32(w, "tokenizer.ggml.add_bos_token", 1);
    if (bad == 9)
        gguf_writer_add_i32(w, "tokenizer.ggml.eos_token_id", -1);
    void *buf;
    struct gguf_file *f;
    int rc = open_written(w, &buf, &f);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    struct tok_vocab *v = NULL;
    rc = load_close(f, buf, &v);
    if (rc == 0) {
        int32_t *ids;
        size_t n;
        /* BOS, the prefix space as <unk> x 3 (no <0xE2> etc.), then 'A' via <0x41> */
        if (tok_encode(v, "A", 1, true, false, &ids, &n) != 0 || n != 5 || ids[0] != 1 ||
            ids[1] != 0 || ids[4] != 3)
            rc = 99;
        else
            free(ids);
    }
    tok_free(v);
    return rc;
}

static void test_r11_r12_load_checks(void)
{
    ASSERT_INT_EQ(load_small(0), 0);
    ASSERT_ERR(load_small(1), TOK_EFORMAT, errbuf,
               "tokenizer.ggml.scores: 4 entries, expected n_vocab 5");
    ASSERT_ERR(load_small(2), TOK_EFORMAT, errbuf,
               "tokenizer.ggml.token_type: expected an array of i32");
    ASSERT_ERR(load_small(3), TOK_EFORMAT, errbuf,
               "tokenizer.ggml.bos_token_id: id 5 is not below n_vocab 5");
    ASSERT_ERR(load_small(4), TOK_EFORMAT, errbuf, "byte token '<0x4g>' is not <0xHH>");
    ASSERT_INT_EQ(load_small(5), TOK_EFORMAT); /* lower-case hex */
    ASSERT_ERR(load_small(6), TOK_EFORMAT, errbuf, "token_type: 6 entries");
    ASSERT_ERR(load_small(7), TOK_EFORMAT, errbuf, "add_bos_token: has type u32, expected bool");
    ASSERT_ERR(load_small(8), TOK_EUNSUPPORTED, errbuf, "'bert' is not supported");
    ASSERT_ERR(load_small(9), TOK_EFORMAT, errbuf, "eos_token_id");

    /* BPE: merges required, pre-tokenizer must be known, tokens must be strings */
    struct gguf_writer *w = gguf_writer_new();
    const char *t[2] = {"a", "b"};
    gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_add_str(w, "tokenizer.ggml.pre", "no-such-pre");
    gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", t, 2);
    void *buf;
    struct gguf_file *f;
    ASSERT_INT_EQ(open_written(w, &buf, &f), 0);
    struct tok_vocab *v;
    ASSERT_ERR(load_close(f, buf, &v), TOK_EFORMAT, errbuf, "tokenizer.ggml.merges: missing");
    ASSERT_TRUE(v == NULL);

    w = gguf_writer_new();
    const char *m[1] = {"a b"};
    gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_add_str(w, "tokenizer.ggml.pre", "no-such-pre");
    gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", t, 2);
    gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", m, 1);
    ASSERT_INT_EQ(open_written(w, &buf, &f), 0);
    ASSERT_ERR(load_close(f, buf, &v), TOK_EUNSUPPORTED, errbuf,
               "unknown pre-tokenizer 'no-such-pre'");

    w = gguf_writer_new();
    int32_t nums[2] = {1, 2};
    gguf_writer_add_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_add_arr_i32(w, "tokenizer.ggml.tokens", nums, 2);
    ASSERT_INT_EQ(open_written(w, &buf, &f), 0);
    ASSERT_ERR(load_close(f, buf, &v), TOK_EFORMAT, errbuf,
               "tokenizer.ggml.tokens: expected an array of strings");
}

/* End of generation as the reference decides it for the new vocabularies: phi3 appends
 * <|endoftext|> (CONTROL, the EOS) and its </s> is not an end; Qwen3 ends at <|im_end|>,
 * <|endoftext|> and the FIM pad/repo/file tokens; Gemma at <end_of_turn>. */
static void test_end_of_generation(void)
{
    struct tok_vocab *v = test_load_vocab("models/tiny-phi3-f16.gguf");
    ASSERT_TRUE(v != NULL);
    ASSERT_INT_EQ(tok_eos(v), 32000);
    ASSERT_TRUE(tok_is_eog(v, 32000));
    ASSERT_TRUE(!tok_is_eog(v, 2));
    int n_eog = 0;
    for (int32_t id = 0; id < tok_n_vocab(v); id++)
        n_eog += tok_is_eog(v, id);
    ASSERT_INT_EQ(n_eog, 1);
    tok_free(v);

    v = test_load_vocab("models/tiny-qwen3-q8_0.gguf");
    ASSERT_TRUE(v != NULL);
    static const int32_t qwen_eog[] = {151643, 151645, 151662, 151663, 151664};
    for (size_t i = 0; i < sizeof(qwen_eog) / sizeof(qwen_eog[0]); i++)
        ASSERT_TRUE(tok_is_eog(v, qwen_eog[i]));
    ASSERT_TRUE(!tok_is_eog(v, 151644)); /* <|im_start|> */
    ASSERT_TRUE(!tok_add_bos(v));
    tok_free(v);

    /* a Gemma-style vocabulary: <end_of_turn> ends a reply (and is CONTROL) */
    struct gguf_writer *w = gguf_writer_new();
    const char *t[6] = {"<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"};
    int32_t types[6] = {3, 3, 3, 2, 1, 1};
    gguf_writer_add_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", t, 6);
    gguf_writer_add_arr_i32(w, "tokenizer.ggml.token_type", types, 6);
    gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 2);
    gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 1);
    void *buf;
    struct gguf_file *f;
    ASSERT_INT_EQ(open_written(w, &buf, &f), 0);
    ASSERT_INT_EQ(load_close(f, buf, &v), 0);
    ASSERT_TRUE(tok_is_eog(v, 5));
    ASSERT_INT_EQ(tok_type(v, 5), TOK_TYPE_CONTROL);
    ASSERT_TRUE(tok_is_eog(v, 1));
    ASSERT_TRUE(!tok_is_eog(v, 4));
    tok_free(v);
}

/* A vocabulary of a model named like phi-3: special tokens but <s>, <unk> and
 * <|endoftext|> absorb the whitespace after them when parsed from a prompt, as the
 * reference tokenizes Phi-3's "<|user|>\n...<|end|>\n" format; other models keep it. */
static void test_phi3_rstrip(void)
{
    const char *names[2] = {"Phi-3.5 mini instruct", "tiny model"};
    for (int k = 0; k < 2; k++) {
        struct gguf_writer *w = gguf_writer_new();
        const char *t[7] = {"<unk>", "<s>", "</s>", "<|endoftext|>", "<|user|>", "\xe2\x96\x81" "a",
                            "<0x0A>"};
        int32_t types[7] = {2, 3, 3, 3, 4, 1, 6};
        float scores[7] = {0, 0, 0, 0, 0, -1, -2};
        gguf_writer_add_str(w, "general.name", names[k]);
        gguf_writer_add_str(w, "tokenizer.ggml.model", "llama");
        gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", t, 7);
        gguf_writer_add_arr_i32(w, "tokenizer.ggml.token_type", types, 7);
        gguf_writer_add_arr_f32(w, "tokenizer.ggml.scores", scores, 7);
        gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 3);
        void *buf;
        struct gguf_file *f;
        struct tok_vocab *v;
        ASSERT_INT_EQ(open_written(w, &buf, &f), 0);
        ASSERT_INT_EQ(load_close(f, buf, &v), 0);
        const char *s = "<|user|>\na</s>\n<|endoftext|>\n";
        int32_t *ids;
        size_t n;
        ASSERT_INT_EQ(tok_encode(v, s, strlen(s), false, true, &ids, &n), 0);
        int newlines = 0;
        for (size_t i = 0; i < n; i++)
            newlines += ids[i] == 6;
        /* phi-3: only the newline after <|endoftext|> is left */
        ASSERT_INT_EQ(newlines, k == 0 ? 1 : 3);
        ASSERT_INT_EQ(ids[0], 4);
        free(ids);
        tok_free(v);
    }
}

/* Every supported pre-tokenizer compiles and splits something sensibly. */
static void test_pre_tokenizers(void)
{
    static const char *pres[] = {"default", "llama3", "llama-bpe", "qwen2", "deepseek-llm",
                                 "deepseek-coder", "falcon", "starcoder", "mpt", "gpt-neox",
                                 "gpt-2", "command-r"};
    /* a tiny byte-level vocab: the 256 byte symbols, no merges */
    struct tok_vocab *ref = test_load_vocab("tokenizer/ggml-vocab-gpt-2.gguf");
    ASSERT_TRUE(ref != NULL);
    const char *toks[256];
    char store[256][4];
    for (int b = 0; b < 256; b++) {
        /* find the GPT-2 token of each single byte: its text is the byte's code point */
        int32_t *ids;
        size_t n;
        char c = (char)b;
        ASSERT_INT_EQ(tok_encode(ref, &c, 1, false, false, &ids, &n), 0);
        size_t len;
        const char *t = tok_text(ref, ids[0], &len);
        memcpy(store[b], t, len);
        store[b][len] = 0;
        toks[b] = store[b];
        free(ids);
    }
    tok_free(ref);
    const char *merges[1] = {"a b"};
    const char *text = "Hello world 12345 你好，世界! it's\n\n  ok";
    for (size_t i = 0; i < sizeof(pres) / sizeof(pres[0]); i++) {
        struct gguf_writer *w = gguf_writer_new();
        gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
        gguf_writer_add_str(w, "tokenizer.ggml.pre", pres[i]);
        gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", toks, 256);
        gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", merges, 1);
        void *buf;
        struct gguf_file *f;
        ASSERT_INT_EQ(open_written(w, &buf, &f), 0);
        struct tok_vocab *v;
        int rc = load_close(f, buf, &v);
        if (rc)
            fprintf(stderr, "  pre %s: %s\n", pres[i], errbuf);
        ASSERT_INT_EQ(rc, 0);
        int32_t *ids;
        size_t n;
        ASSERT_INT_EQ(tok_encode(v, text, strlen(text), false, false, &ids, &n), 0);
        ASSERT_INT_EQ(n, strlen(text)); /* no merges: one token per byte */
        char *out;
        size_t len;
        ASSERT_INT_EQ(tok_decode(v, ids, n, 0, &out, &len), 0);
        ASSERT_STR_EQ(out, text);
        free(out);
        free(ids);
        tok_free(v);
    }
}

int main(void)
{
    RUN(test_vectors_llama_spm);
    RUN(test_vectors_gpt2);
    RUN(test_vectors_qwen3);
    RUN(test_vocab_info);
    RUN(test_special_tokens);
    RUN(test_golden_prompts);
    RUN(test_golden_pieces);
    RUN(test_stream);
    RUN(test_arbitrary_bytes);
    RUN(test_r11_r12_load_checks);
    RUN(test_pre_tokenizers);
    RUN(test_end_of_generation);
    RUN(test_phi3_rstrip);
    return TEST_DONE();
}
