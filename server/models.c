/* models.c - opening a model for serving: the GGUF file and backend (model/), its
 * tokenizer, its chat template (the file's own, else a named built-in), and its
 * generation engine; rendering and tokenizing prompts. Runs at start-up on the main
 * thread; the render/tokenize helpers run on connection threads (all read-only). */
#include "models.h"
#include "srv.h"
#include "gguf.h"
#include "log.h"

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

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
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
    uint64_t h = fnv1a(14695981039346656037ULL, src, strlen(src));
    uint64_t size = mdl_file_size(sm->mdl), params = mdl_n_params(sm->mdl);
    h = fnv1a(h, &size, sizeof(size));
    h = fnv1a(h, &params, sizeof(params));
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
    struct tmpl_message m = {"user", "x", NULL};
    char err[128];
    char *p = srv_model_render(sm, &m, 1, true, err, sizeof(err));
    if (!p)
        return false;
    size_t n = strlen(p);
    while (n && (p[n - 1] == '\n' || p[n - 1] == ' '))
        n--;
    bool yes = n >= 7 && strncmp(p + n - 7, "<think>", 7) == 0;
    free(p);
    return yes;
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
    if (load_template(sm, cfg, err, err_len) != 0)
        goto fail;
    sm->bos_text = token_text(sm->tok, tok_bos(sm->tok));
    sm->eos_text = token_text(sm->tok, tok_eos(sm->tok));
    sm->thinks = opens_thought(sm);
    struct eng_params ep = {
        .n_slots = (uint32_t)cfg->parallel,
        .n_ctx = mdl_n_ctx(sm->mdl),
        .n_batch = 512,
        .queue_depth = (uint32_t)cfg->queue_depth,
        .prefill_chunk = (uint32_t)cfg->prefill_chunk,
        .no_reuse = cfg->kv_reuse == 0,
    };
    sm->eng = eng_start(mdl_backend_ops(sm->mdl), mdl_backend(sm->mdl), mdl_n_vocab(sm->mdl), &ep,
                        err, err_len);
    if (!sm->eng)
        goto fail;
    return 0;
fail:
    srv_model_close(sm);
    return -1;
}

void srv_model_close(struct srv_model *sm)
{
    eng_stop(sm->eng);
    tmpl_free(sm->tmpl);
    mdl_close(sm->mdl);
    free(sm->bos_text);
    free(sm->eos_text);
    memset(sm, 0, sizeof(*sm));
}

char *srv_model_render(const struct srv_model *sm, const struct tmpl_message *msgs, size_t n,
                       bool add_generation_prompt, char *err, size_t err_len)
{
    struct tmpl_params p = tmpl_default_params();
    p.messages = msgs;
    p.n_messages = n;
    p.add_generation_prompt = add_generation_prompt;
    p.bos_token = sm->bos_text;
    p.eos_token = sm->eos_text;
    char *out = NULL;
    size_t len;
    if (tmpl_render(sm->tmpl, &p, &out, &len, err, err_len) != 0)
        return NULL;
    return out;
}

/* Whether `s` contains the text of any CONTROL token (a user trying to inject one). */
static bool has_control_text(const struct tok_vocab *v, const char *s)
{
    if (!strpbrk(s, "<[|"))
        return false;
    int32_t n = tok_n_vocab(v);
    for (int32_t id = 0; id < n; id++) {
        if (tok_type(v, id) != TOK_TYPE_CONTROL)
            continue;
        size_t len;
        const char *t = tok_text(v, id, &len);
        if (len >= 2 && memmem(s, strlen(s), t, len))
            return true;
    }
    return false;
}

static int append_ids(int32_t **ids, size_t *n, const int32_t *more, size_t m)
{
    int32_t *p = realloc(*ids, (*n + m + 1) * sizeof(int32_t));
    if (!p)
        return -1;
    memcpy(p + *n, more, m * sizeof(int32_t));
    *ids = p;
    *n += m;
    return 0;
}

/* Tokenizes prompt[from, to) with or without special-token parsing, appending. */
static int encode_part(const struct srv_model *sm, const char *s, size_t len, bool special,
                       int32_t **ids, size_t *n)
{
    int32_t *part;
    size_t m;
    if (tok_encode(sm->tok, s, len, false, special, &part, &m) != 0)
        return -1;
    int rc = append_ids(ids, n, part, m);
    free(part);
    return rc;
}

int srv_model_tokenize_prompt(const struct srv_model *sm, const char *prompt,
                              const struct tmpl_message *msgs, size_t n_msgs, int32_t **ids,
                              size_t *n_ids)
{
    bool hostile = false;
    for (size_t i = 0; i < n_msgs && !hostile; i++)
        hostile = msgs[i].content && has_control_text(sm->tok, msgs[i].content);
    *ids = NULL;
    *n_ids = 0;
    if (!hostile) /* the reference's way: special tokens parsed in the whole prompt */
        return tok_encode(sm->tok, prompt, strlen(prompt), false, true, ids, n_ids) == 0 ? 0 : -1;
    /* Contents carrying control-token text are tokenized as plain text. */
    size_t at = 0, len = strlen(prompt);
    for (size_t i = 0; i < n_msgs; i++) {
        const char *c = msgs[i].content;
        if (!c || !*c)
            continue;
        const char *hit = strstr(prompt + at, c);
        if (!hit)
            continue;
        size_t start = (size_t)(hit - prompt);
        if (encode_part(sm, prompt + at, start - at, true, ids, n_ids) != 0 ||
            encode_part(sm, hit, strlen(c), false, ids, n_ids) != 0)
            goto fail;
        at = start + strlen(c);
    }
    if (encode_part(sm, prompt + at, len - at, true, ids, n_ids) != 0)
        goto fail;
    return 0;
fail:
    free(*ids);
    *ids = NULL;
    return -1;
}

/* Tokens the tokenizer matches as a whole (they end an SPM text fragment). */
static bool is_special(const struct tok_vocab *v, int32_t id)
{
    int type = tok_type(v, id);
    return type == TOK_TYPE_CONTROL || type == TOK_TYPE_USER_DEFINED;
}

/* Appends the text ids read back as, the inverse of tok_encode with special tokens:
 * special tokens as their text and, for SPM vocabularies that put a space before each
 * text fragment, without that space (frag_start: ids[0] starts a fragment). */
static int ids_text(const struct tok_vocab *v, const int32_t *ids, size_t n, bool frag_start,
                    struct strbuf *out)
{
    bool strip = tok_add_space_prefix(v);
    char buf[256];
    for (size_t i = 0; i < n; i++) {
        int len = tok_piece(v, ids[i], buf, sizeof(buf), true);
        if (len < 0 || (size_t)len > sizeof(buf))
            return -1; /* longer pieces do not occur in real vocabularies */
        bool special = is_special(v, ids[i]);
        size_t off = strip && frag_start && !special && len > 0 && buf[0] == ' ' ? 1 : 0;
        if (strbuf_append(out, buf + off, (size_t)len - off) != 0)
            return -1;
        if (special || len > 0)
            frag_start = special;
    }
    return 0;
}

/* Tokenizes prompt[from, to) as part of the prompt, appending to ids. Text right after a
 * non-special id continues that id's fragment (SPM: no space prefix). */
static int encode_gap(const struct srv_model *sm, const char *prompt, size_t from, size_t to,
                      const struct tmpl_message *msgs, size_t n_msgs, int32_t **ids, size_t *n)
{
    if (from == to)
        return 0;
    char *gap = strndup(prompt + from, to - from);
    int32_t *part = NULL;
    size_t m = 0;
    bool continued = tok_add_space_prefix(sm->tok) && *n && !is_special(sm->tok, (*ids)[*n - 1]);
    int rc = !gap ? -1
             : continued ? (tok_encode_continued(sm->tok, gap, to - from, true, &part, &m) ? -1 : 0)
                         : srv_model_tokenize_prompt(sm, gap, msgs, n_msgs, &part, &m);
    rc = rc ? rc : append_ids(ids, n, part, m);
    free(part);
    free(gap);
    return rc;
}

int srv_model_assemble_prompt(const struct srv_model *sm, const char *prompt,
                              const struct tmpl_message *msgs, size_t n_msgs,
                              const struct srv_segment *segs, size_t n_segs, int32_t **ids,
                              size_t *n_ids, size_t *tail_from, size_t *n_used)
{
    size_t len = strlen(prompt), at = 0, n = 0;
    int32_t *out = NULL;
    struct strbuf text = {0};
    int rc = 0;
    int32_t bos = tok_bos(sm->tok);
    bool add_bos = tok_add_bos(sm->tok) && bos >= 0;
    *tail_from = 0;
    *n_used = 0;
    if (add_bos)
        rc = append_ids(&out, &n, &bos, 1);
    for (size_t j = 0; j < n_segs && rc == 0; j++) {
        /* SPM: the segment may continue a fragment (read with its leading space) or
         * start one (without); a wrong guess fails the check below */
        const char *hit = NULL;
        for (int start = 0; start < 2 && !hit && segs[j].n; start++) {
            text.len = 0;
            if (ids_text(sm->tok, segs[j].ids, segs[j].n, start, &text) == 0 && text.len)
                hit = memmem(prompt + at, len - at, text.data, text.len);
        }
        if (!hit)
            continue;
        size_t pos = (size_t)(hit - prompt);
        rc = encode_gap(sm, prompt, at, pos, msgs, n_msgs, &out, &n);
        rc = rc ? rc : append_ids(&out, &n, segs[j].ids, segs[j].n);
        at = pos + text.len;
        *tail_from = n;
        (*n_used)++;
    }
    rc = rc ? rc : encode_gap(sm, prompt, at, len, msgs, n_msgs, &out, &n);
    /* BOS written by the template is in the text; the one added here is not */
    size_t skip = add_bos && n > 1 && out[1] == bos ? 1 : 0;
    if (rc == 0 && skip) {
        memmove(out, out + 1, (n - 1) * sizeof(*out));
        n--;
        if (*tail_from)
            (*tail_from)--;
    }
    size_t from = add_bos && !skip ? 1 : 0;
    text.len = 0;
    if (rc == 0 && (ids_text(sm->tok, out + from, n - from, true, &text) != 0 || text.len != len ||
                    memcmp(text.data ? text.data : "", prompt, len) != 0))
        rc = -1;
    strbuf_free(&text);
    if (rc != 0) {
        free(out);
        return -1;
    }
    *ids = out;
    *n_ids = n;
    return 0;
}
