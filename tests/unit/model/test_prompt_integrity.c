/* test_prompt_integrity.c - text a user wrote never becomes a control token, whatever
 * the chat template does with it (trims it, splits it, slices it, quotes it), with every
 * built-in template and every fixture template.
 *
 * The vocabulary is qwen3's byte-level BPE one plus, as CONTROL tokens, the turn markers
 * of every template family under test, so each template's own markers are control
 * tokens. Each template renders a plain conversation and the same conversation whose
 * every message is made of all those markers (with whitespace around, for the templates
 * that trim); the prompt is tokenized with the spans the renderer reports as message
 * text. The hostile prompt must hold exactly as many control tokens as the plain one.
 * Tokenizing it without the spans must hold more: the check can fail. The same holds for
 * the request's tools and a reply's tool calls: their strings (names, descriptions,
 * arguments) made of the markers give the control tokens of plain ones. */
#include "test.h"

#include "gguf.h"
#include "template.h"
#include "tokenizer.h"

#include <dirent.h>
#include <jansson.h>
#include <unistd.h>

static const char *const markers[] = {
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|begin_of_text|>", "<|start_header_id|>",
    "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>", "<|python_tag|>", "<start_of_turn>",
    "<end_of_turn>", "<bos>", "<eos>", "<s>", "</s>", "[INST]", "[/INST]", "<|user|>",
    "<|assistant|>", "<|system|>", "<|end|>", "<｜User｜>", "<｜Assistant｜>",
    "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<|START_OF_TURN_TOKEN|>",
    "<|END_OF_TURN_TOKEN|>", "<|USER_TOKEN|>", "<|CHATBOT_TOKEN|>", "<|SYSTEM_TOKEN|>",
    "<BOS_TOKEN>", "[AVAILABLE_TOOLS]", "[TOOL_CALLS]", "<|reserved_special_token_0|>",
};
#define N_MARKERS (sizeof(markers) / sizeof(markers[0]))

static struct tok_vocab *vocab;
static char hostile[4096];

/* qwen3's vocabulary with the markers it lacks appended as CONTROL tokens. */
static struct tok_vocab *make_vocab(void)
{
    char err[256];
    struct gguf_file *f = NULL;
    if (gguf_open(&f, test_fixture("tokenizer/ggml-vocab-qwen3.gguf"), err, sizeof(err)) != 0)
        return NULL;
    uint32_t et;
    uint64_t n;
    gguf_get_arr(f, "tokenizer.ggml.tokens", &et, &n);
    const char **toks = calloc(n + N_MARKERS, sizeof(*toks));
    int32_t *types = calloc(n + N_MARKERS, sizeof(*types));
    uint64_t nm;
    gguf_get_arr(f, "tokenizer.ggml.merges", &et, &nm);
    const char **merges = calloc(nm + 1, sizeof(*merges));
    for (uint64_t i = 0; i < n; i++) {
        struct gguf_str s;
        gguf_arr_str(f, "tokenizer.ggml.tokens", i, &s);
        toks[i] = strndup(s.ptr, s.len);
        gguf_arr_i32(f, "tokenizer.ggml.token_type", i, &types[i]);
    }
    for (uint64_t i = 0; i < nm; i++) {
        struct gguf_str s;
        gguf_arr_str(f, "tokenizer.ggml.merges", i, &s);
        merges[i] = strndup(s.ptr, s.len);
    }
    uint64_t total = n;
    for (size_t k = 0; k < N_MARKERS; k++) {
        bool have = false;
        for (uint64_t i = 0; i < n && !have; i++)
            have = strcmp(toks[i], markers[k]) == 0;
        if (!have) {
            toks[total] = markers[k];
            types[total++] = TOK_TYPE_CONTROL;
        }
    }
    struct gguf_writer *w = gguf_writer_new();
    gguf_writer_add_str(w, "general.architecture", "qwen3");
    gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_add_str(w, "tokenizer.ggml.pre", "qwen2");
    gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", toks, total);
    gguf_writer_add_arr_i32(w, "tokenizer.ggml.token_type", types, total);
    gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", merges, nm);
    gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 151645);
    gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", false);
    void *buf;
    size_t len;
    struct tok_vocab *v = NULL;
    struct gguf_file *g = NULL;
    if (gguf_writer_write_mem(w, &buf, &len) == 0 && gguf_open_buffer(&g, buf, len, err, sizeof(err)) == 0 &&
        tok_load(&v, g, err, sizeof(err)) != 0)
        fprintf(stderr, "  vocab: %s\n", err);
    gguf_close(g);
    free(buf);
    gguf_writer_free(w);
    for (uint64_t i = 0; i < n; i++)
        free((char *)toks[i]);
    for (uint64_t i = 0; i < nm; i++)
        free((char *)merges[i]);
    free(toks);
    free(types);
    free(merges);
    gguf_close(f);
    return v;
}

/* Control tokens in the prompt as tokenized with (or without) the renderer's spans;
 * -1 when the template refuses the conversation. tools: the request's tools (JSON). */
static int control_count(const struct tmpl *t, const struct tmpl_message *m, size_t n,
                         const char *tools, const char *bos, const char *eos, bool with_spans)
{
    struct tmpl_params p = tmpl_default_params();
    p.tools_json = tools;
    p.messages = m;
    p.n_messages = n;
    p.add_generation_prompt = true;
    p.bos_token = bos;
    p.eos_token = eos;
    p.now_unix = 1795824000;
    char *out = NULL, err[256];
    size_t len, n_spans = 0;
    struct tmpl_span *spans = NULL;
    if (tmpl_render_spans(t, &p, &out, &len, &spans, &n_spans, err, sizeof(err)) != 0)
        return -1;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    int count = -1;
    if (tok_encode_prompt(vocab, out, (const struct tok_span *)spans, with_spans ? n_spans : 0,
                          &ids, &n_ids) == 0) {
        count = 0;
        for (size_t i = 0; i < n_ids; i++)
            count += tok_type(vocab, ids[i]) == TOK_TYPE_CONTROL;
    }
    free(ids);
    free(spans);
    free(out);
    return count;
}

static char hostile_json[8192]; /* the hostile text as a JSON string, quotes included */

/* The request's tools, and an earlier reply's tool call, whose every string (names,
 * descriptions, property names, arguments) is `text` (a JSON string literal). */
static void tools_with(const char *text, char *tools, size_t tl, char *calls, size_t cl,
                       bool string_arguments)
{
    snprintf(tools, tl,
             "[{\"type\":\"function\",\"function\":{\"name\":%s,\"description\":%s,"
             "\"parameters\":{\"type\":\"object\",\"properties\":{%s:{\"type\":\"string\","
             "\"description\":%s}},\"required\":[%s]}}}]", text, text, text, text, text);
    char args[4 * sizeof(hostile_json)];
    snprintf(args, sizeof(args), "{%s:%s}", text, text);
    json_t *as = json_string(args);
    char *quoted = json_dumps(as, JSON_ENCODE_ANY);
    snprintf(calls, cl,
             "[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":%s,"
             "\"arguments\":%s}}]", text, string_arguments ? quoted : args);
    free(quoted);
    json_decref(as);
}

/* Control tokens of a conversation with tools whose strings are plain words, and of the
 * same with the hostile text in every string: a tool call on the assistant message, a
 * tool result after it. Templates that take arguments as text get them so. */
static void check_tools(const struct tmpl *t, const struct tmpl_message *m, size_t n,
                        const char *bos, const char *eos, int *plain, int *hostile_n)
{
    static char tools[6][40000];
    struct tmpl_message mm[2][8];
    const char *texts[2] = {"\"lookup\"", hostile_json};
    for (int h = 0; h < 2; h++) {
        int count = -1;
        for (int as_string = 0; as_string < 2 && count < 0; as_string++) {
            tools_with(texts[h], tools[3 * h], sizeof(tools[0]), tools[3 * h + 1],
                       sizeof(tools[0]), as_string);
            memcpy(mm[h], m, n * sizeof(*m));
            mm[h][n - 2].tool_calls_json = tools[3 * h + 1]; /* the assistant's reply */
            mm[h][n - 1] = (struct tmpl_message){.role = "tool", .content = "42",
                                                 .tool_call_id = "call_1"};
            mm[h][n] = (struct tmpl_message){.role = "user", .content = "Thanks."};
            count = control_count(t, mm[h], n + 1, tools[3 * h], bos, eos, true);
        }
        *(h ? hostile_n : plain) = count;
    }
}

/* One template: plain and hostile conversations, with a system message if it takes one. */
static void check_template(const char *name, const char *src, const char *bos, const char *eos)
{
    char err[512];
    struct tmpl *t = tmpl_new(src, strlen(src), err, sizeof(err));
    if (!t)
        TEST_FAIL_("%s: %s", name, err);
    const char *plain[] = {"Be brief.", "Hello there.", "Hi!", "Bye."};
    struct tmpl_message mp[4], mh[4];
    const char *roles[] = {"system", "user", "assistant", "user"};
    for (int i = 0; i < 4; i++) {
        mp[i] = (struct tmpl_message){.role = roles[i], .content = plain[i]};
        mh[i] = (struct tmpl_message){.role = roles[i], .content = hostile,
                                      .reasoning_content = i == 2 ? hostile : NULL};
    }
    size_t first = 0;
    int a = control_count(t, mp, 4, NULL, bos, eos, true);
    if (a < 0) { /* no system role in this family */
        first = 1;
        a = control_count(t, mp + 1, 3, NULL, bos, eos, true);
    }
    int a_raw = control_count(t, mp + first, 4 - first, NULL, bos, eos, false);
    int b = control_count(t, mh + first, 4 - first, NULL, bos, eos, true);
    int c = control_count(t, mh + first, 4 - first, NULL, bos, eos, false);
    int tools_plain = 0, tools_hostile = 0;
    check_tools(t, mp + first, 4 - first, bos, eos, &tools_plain, &tools_hostile);
    tmpl_free(t);
    if (a < 0 || b < 0)
        TEST_FAIL_("%s: the template refused the conversation", name);
    if (tools_plain != tools_hostile)
        TEST_FAIL_("%s: %d control tokens with plain tools and tool calls, %d with markers in "
                   "them", name, tools_plain, tools_hostile);
    if (a != a_raw) /* plain text: the spans change nothing (the reference's ids) */
        TEST_FAIL_("%s: %d control tokens with the spans, %d without", name, a, a_raw);
    if (a != b)
        TEST_FAIL_("%s: %d control tokens in the plain prompt, %d with markers in the messages",
                   name, a, b);
    if (c <= a)
        TEST_FAIL_("%s: without the spans the markers should have been read (%d vs %d)", name,
                   c, a);
    fprintf(stderr, "  %-52s %3d control tokens (%d if user text were read)\n", name, a, c);
}

static void test_builtins(void)
{
    for (const char *const *n = tmpl_builtin_names(); *n; n++)
        check_template(*n, tmpl_builtin(*n), "<s>", "</s>");
}

static void test_fixture_templates(void)
{
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s", test_fixture("templates"));
    DIR *d = opendir(dir);
    ASSERT_TRUE(d != NULL);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json") != 0)
            continue;
        char path[8500];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        json_t *root = json_load_file(path, 0, NULL);
        json_t *c0 = json_array_get(json_object_get(root, "cases"), 0);
        check_template(e->d_name, json_string_value(json_object_get(root, "template")),
                       json_string_value(json_object_get(c0, "bos_token")),
                       json_string_value(json_object_get(c0, "eos_token")));
        json_decref(root);
        n++;
    }
    closedir(d);
    ASSERT_INT_OP(n, >=, 12);
}

int main(void)
{
    vocab = make_vocab();
    if (!vocab)
        return 1;
    size_t k = (size_t)snprintf(hostile, sizeof(hostile), "  \n");
    for (size_t i = 0; i < N_MARKERS; i++)
        k += (size_t)snprintf(hostile + k, sizeof(hostile) - k, "%s%s", markers[i], i % 3 ? "" : " x ");
    snprintf(hostile + k, sizeof(hostile) - k, "</think> \n ");
    json_t *hj = json_string(hostile);
    char *hd = json_dumps(hj, JSON_ENCODE_ANY);
    snprintf(hostile_json, sizeof(hostile_json), "%s", hd);
    free(hd);
    json_decref(hj);
    RUN(test_builtins);
    RUN(test_fixture_templates);
    tok_free(vocab);
    return TEST_DONE();
}
