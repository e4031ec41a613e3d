/* models.c - opening a model for serving: the GGUF file and backend (model/), its
 * tokenizer, its chat template (the file's own, else a named built-in), and its
 * generation engine; rendering prompts. Runs at start-up on the main
 * thread; the render/tokenize helpers run on connection threads (all read-only). */
#include "gen/gen.h"
#include "server.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Picks a built-in template for a vocabulary whose file has none (or a broken one). */
static const char *guess_builtin(const struct tok_vocab *v)
{
    if (tok_find(v, "<|im_start|>") >= 0)
        return "chatml";
    if (tok_find(v, "<|start_header_id|>") >= 0)
        return "llama3";
    if (tok_find(v, "<｜Assistant｜>") >= 0)
        return "deepseek-r1";
    return "llama2";
}

/* Renders the model's own template once at start-up on a plain conversation, so that a
 * template which fails on every request (runaway recursion, a resource limit, an
 * evaluation error) is refused now, with the line it failed at, instead of on each
 * request. A template that raises on purpose (raise_exception) is fine. */
static bool usable_template(struct srv_model *sm, char *err, size_t err_len)
{
    const struct tmpl_message probe[] = {
        {.role = "user", .content = "Hello."},
        {.role = "assistant", .content = "Hi!"},
        {.role = "user", .content = "How are you?"}};
    struct tmpl_params p = tmpl_default_params();
    p.messages = probe;
    p.n_messages = sizeof(probe) / sizeof(probe[0]);
    p.add_generation_prompt = true;
    p.bos_token = sm->bos_text;
    p.eos_token = sm->eos_text;
    char *out = NULL;
    size_t len;
    int rc = tmpl_render(sm->tmpl, &p, &out, &len, err, err_len);
    free(out);
    return rc == 0 || rc == TMPL_ERAISE;
}

static int load_template(struct srv_model *sm, const struct chatd_config *cfg, char *err,
                         size_t err_len)
{
    const char *src = NULL;
    char terr[256] = "";
    if (cfg->chat_template[0]) {
        src = tmpl_builtin(cfg->chat_template);
        if (!src) {
            snprintf(err, err_len, "chat_template: unknown built-in template '%s'", cfg->chat_template);
            return -1;
        }
        snprintf(sm->template_name, sizeof(sm->template_name), "%s", cfg->chat_template);
    } else if (mdl_chat_template(sm->mdl)) {
        src = mdl_chat_template(sm->mdl);
        sm->tmpl = tmpl_new(src, strlen(src), terr, sizeof(terr));
        if (sm->tmpl && !usable_template(sm, terr, sizeof(terr))) {
            tmpl_free(sm->tmpl);
            sm->tmpl = NULL;
        }
        if (sm->tmpl) {
            snprintf(sm->template_name, sizeof(sm->template_name), "gguf");
        } else {
            const char *b = guess_builtin(sm->tok);
            log_warn("template unsupported model=%s error=\"%s\" fallback=%s", sm->id, terr, b);
            src = tmpl_builtin(b);
            snprintf(sm->template_name, sizeof(sm->template_name), "%s", b);
        }
    } else {
        const char *b = guess_builtin(sm->tok);
        src = tmpl_builtin(b);
        snprintf(sm->template_name, sizeof(sm->template_name), "%s", b);
        log_info("template none-in-file model=%s using=%s", sm->id, b);
    }
    if (!sm->tmpl)
        sm->tmpl = tmpl_new(src, strlen(src), terr, sizeof(terr));
    if (!sm->tmpl) {
        snprintf(err, err_len, "chat template '%s': %s", sm->template_name, terr);
        return -1;
    }
    sm->tool_format = gen_tool_format_detect(src, cfg->tool_format);
    uint64_t h = gguf_fnv1a(GGUF_FNV1A_BASIS, src, strlen(src));
    uint64_t size = mdl_file_size(sm->mdl), params = mdl_n_params(sm->mdl);
    h = gguf_fnv1a(h, &size, sizeof(size));
    h = gguf_fnv1a(h, &params, sizeof(params));
    snprintf(sm->fingerprint, sizeof(sm->fingerprint), "%.60s:%016llx", sm->id, (unsigned long long)h);
    return 0;
}

static char *token_text(const struct tok_vocab *v, int32_t id)
{
    size_t len = 0;
    const char *t = id >= 0 ? tok_text(v, id, &len) : NULL;
    char *s = malloc(len + 1);
    if (s) {
        if (t)
            memcpy(s, t, len);
        s[t ? len : 0] = 0;
    }
    return s;
}

/* Does the generation prompt open a thought (R1-style templates end with "<think>\n")? */
static bool opens_thought(const struct srv_model *sm)
{
    struct tmpl_message m = {.role = "user", .content = "x"};
    char err[128];
    struct srv_prompt pr;
    if (srv_model_render(sm, &m, 1, NULL, true, &pr, err, sizeof(err)) != 0)
        return false;
    const char *p = pr.text;
    size_t n = strlen(p);
    while (n && (p[n - 1] == '\n' || p[n - 1] == ' '))
        n--;
    bool yes = n >= 7 && strncmp(p + n - 7, "<think>", 7) == 0;
    srv_prompt_fini(&pr);
    return yes;
}

/* Does the template fail on a tool call whose arguments are an object (it concatenates
 * them as text, as DeepSeek-R1's and Functionary's do)? Then it gets the JSON text. */
static bool wants_string_arguments(const struct srv_model *sm)
{
    struct tmpl_message m[] = {
        {.role = "user", .content = "x"},
        {.role = "assistant", .content = NULL,
         .tool_calls_json = "[{\"id\":\"call00001\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":{\"a\":1}}}]"},
    };
    char err[128];
    struct srv_prompt pr;
    int rc = srv_model_render(sm, m, 2, NULL, true, &pr, err, sizeof(err));
    srv_prompt_fini(&pr);
    return rc != 0;
}

int srv_model_open(struct srv_model *sm, const char *path, const char *id,
                   const struct chatd_config *cfg, char *err, size_t err_len)
{
    memset(sm, 0, sizeof(*sm));
    snprintf(sm->path, sizeof(sm->path), "%s", path);
    snprintf(sm->id, sizeof(sm->id), "%s", id);
    struct stat st;
    sm->created = stat(path, &st) == 0 ? (int64_t)st.st_mtime : 0;
    struct mdl_params mp;
    mdl_default_params(&mp);
    mp.backend = cfg->backend;
    if (strcmp(cfg->backend, "auto") == 0) {
        char why[256];
        mp.backend = vkb_pick_auto(why, sizeof(why)) == 1 ? "vulkan" : "cpu";
        log_info("backend auto choice=%s reason=\"%s\"", mp.backend, why);
    }
    mp.n_slots = (uint32_t)cfg->parallel;
    mp.n_ctx = (uint32_t)cfg->ctx_size;
    mp.n_threads = (uint32_t)cfg->threads;
    mp.device = (int)cfg->device;
    if (mdl_open(&sm->mdl, path, &mp, err, err_len) != 0)
        return -1;
    sm->tok = mdl_vocab(sm->mdl);
    sm->bos_text = token_text(sm->tok, tok_bos(sm->tok));
    sm->eos_text = token_text(sm->tok, tok_eos(sm->tok));
    if (!sm->bos_text || !sm->eos_text) {
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    if (load_template(sm, cfg, err, err_len) != 0)
        goto fail;
    sm->thinks = opens_thought(sm);
    sm->tool_args_string = wants_string_arguments(sm);
    sm->gram_vocab = mdl_gram_vocab_new(sm->tok, mdl_n_vocab(sm->mdl));
    if (!sm->gram_vocab) {
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    log_info("tools model=%s format=%s arguments=%s", sm->id, gen_tool_format_name(sm->tool_format),
             sm->tool_args_string ? "string" : "object");
    struct eng_params ep = {
        .n_slots = (uint32_t)cfg->parallel,
        .n_ctx = mdl_n_ctx(sm->mdl),
        .n_batch = 512,
        .queue_depth = (uint32_t)cfg->queue_depth,
        .prefill_chunk = (uint32_t)cfg->prefill_chunk,
        .no_reuse = cfg->kv_reuse == 0,
    };
    bool use_draft = cfg->draft_model[0] != 0;
    if (use_draft || strcmp(cfg->spec, "draft") == 0) {
        if (!use_draft) {
            snprintf(err, err_len, "spec = draft needs draft_model (a GGUF file)");
            goto fail;
        }
        char derr[256];
        mp.n_ctx = mdl_n_ctx(sm->mdl); /* the draft's cache mirrors the model's */
        if (mdl_open(&sm->draft, cfg->draft_model, &mp, derr, sizeof(derr)) != 0) {
            snprintf(err, err_len, "draft_model %s: %s", cfg->draft_model, derr);
            goto fail;
        }
    }
    ep.spec = use_draft ? ENG_SPEC_DRAFT : strcmp(cfg->spec, "ngram") == 0 ? ENG_SPEC_NGRAM : ENG_SPEC_NONE;
    ep.n_draft = (uint32_t)cfg->draft_max;
    ep.n_batch = ep.n_batch > ep.n_slots * (1 + ep.n_draft) ? ep.n_batch : ep.n_slots * (1 + ep.n_draft);
    sm->eng = mdl_engine_start(sm->mdl, sm->draft, &ep, err, err_len);
    if (!sm->eng)
        goto fail;
    if (ep.spec != ENG_SPEC_NONE)
        log_info("speculative decoding model=%s drafts=%s draft_max=%u", sm->id,
                 use_draft ? cfg->draft_model : "ngram", ep.n_draft);
    return 0;
fail:
    srv_model_close(sm);
    return -1;
}

void srv_model_close(struct srv_model *sm)
{
    eng_stop(sm->eng);
    mdl_close(sm->draft);
    tmpl_free(sm->tmpl);
    gram_vocab_free(sm->gram_vocab);
    mdl_close(sm->mdl);
    free(sm->bos_text);
    free(sm->eos_text);
    memset(sm, 0, sizeof(*sm));
}

int srv_model_render(const struct srv_model *sm, const struct tmpl_message *msgs, size_t n,
                     const char *tools_json, bool add_generation_prompt, struct srv_prompt *out,
                     char *err, size_t err_len)
{
    _Static_assert(sizeof(struct tok_span) == sizeof(struct tmpl_span) &&
                       offsetof(struct tok_span, end) == offsetof(struct tmpl_span, end),
                   "a template span is a tokenizer span");
    struct tmpl_params p = tmpl_default_params();
    p.tools_json = tools_json;
    p.messages = msgs;
    p.n_messages = n;
    p.add_generation_prompt = add_generation_prompt;
    p.bos_token = sm->bos_text;
    p.eos_token = sm->eos_text;
    struct tmpl_span *spans = NULL;
    size_t len;
    memset(out, 0, sizeof(*out));
    int rc = tmpl_render_spans(sm->tmpl, &p, &out->text, &len, &spans, &out->n_plain, err,
                               err_len);
    out->plain = (struct tok_span *)spans;
    return rc;
}

void srv_prompt_fini(struct srv_prompt *p)
{
    free(p->text);
    free(p->plain);
    memset(p, 0, sizeof(*p));
}

int srv_model_tokenize(const struct srv_model *sm, const struct srv_prompt *p, int32_t **ids,
                       size_t *n_ids)
{
    return tok_encode_prompt(sm->tok, p->text, p->plain, p->n_plain, ids, n_ids);
}
