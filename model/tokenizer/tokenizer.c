/* tokenizer.c - loads a GGUF vocabulary into a struct tok_vocab, and turns ids back
 * into bytes (pieces, whole decodes, and the streaming detokenizer).
 *
 * Loading validates every tokenizer key it reads (R11: type and count, each vocab
 * array exactly n_vocab long; R12: special ids < n_vocab, byte tokens exactly
 * <0xHH>), copies token texts into one arena indexed by a hash table (text -> id, no
 * duplicates), indexes merges by the id pair, and renders every token's piece once
 * so decoding is a table lookup. Encoding lives in tok_encode.c. The vocab is
 * immutable after tok_load returns.
 */
#include "tok_impl.h"

#include "gguf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

const char *tok_strerror(int code)
{
    switch (code) {
#define TOK_ERR_CASE_(name, c, text)                                                      \
    case c:                                                                               \
        return text;
        TOK_ERRORS(TOK_ERR_CASE_)
#undef TOK_ERR_CASE_
    case 0:
        return "success";
    default:
        return "unknown error";
    }
}

static int fail(char *err, size_t err_len, int code, const char *fmt, ...)
{
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ---- hashing ----------------------------------------------------------------------- */

uint64_t tok_hash(const char *s, size_t n)
{
    const uint64_t m = 0x9e3779b97f4a7c15ull;
    uint64_t h = n * m;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t k;
        memcpy(&k, s + i, 8);
        h = (h ^ k) * m;
        h ^= h >> 29;
    }
    uint64_t k = 0;
    for (size_t j = 0; i < n; i++, j++)
        k |= (uint64_t)(uint8_t)s[i] << (8 * j);
    h = (h ^ k) * m;
    h ^= h >> 32;
    return h;
}

static size_t pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n)
        c <<= 1;
    return c;
}

/* The slot of a (non-empty) text in the text table: the one that holds its id, else the
 * empty one where it would go (the table is at most half full, so there is one). */
static size_t text_slot(const struct tok_vocab *v, const char *text, size_t len)
{
    size_t h = (size_t)tok_hash(text, len) & v->tab_mask;
    for (;;) {
        int32_t id = v->tab[h];
        if (id < 0)
            return h;
        size_t tl = (size_t)(v->text_off[id + 1] - v->text_off[id]);
        if (tl == len && memcmp(v->text + v->text_off[id], text, len) == 0)
            return h;
        h = (h + 1) & v->tab_mask;
    }
}

int32_t tok_findn(const struct tok_vocab *v, const char *text, size_t len)
{
    if (len == 0)
        return -1;
    return v->tab[text_slot(v, text, len)];
}

int32_t tok_find(const struct tok_vocab *v, const char *text)
{
    return tok_findn(v, text, strlen(text));
}

/* The merge table's key of a pair (never 0, which marks an empty slot). */
static uint64_t merge_key(int32_t left, int32_t right)
{
    return ((uint64_t)(uint32_t)left << 32 | (uint32_t)right) + 1;
}

/* The slot of a pair in the merge table: the one that holds it, else the empty one where
 * it would go (the table is at most half full). The home slot is a full 64-bit mix of
 * the key, so both ids reach the low bits. */
static size_t merge_slot(const struct tok_vocab *v, int32_t left, int32_t right)
{
    uint64_t key = merge_key(left, right);
    uint64_t x = key;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    size_t h = (size_t)x & v->m_mask;
    while (v->mkey[h] && v->mkey[h] != key)
        h = (h + 1) & v->m_mask;
    return h;
}

bool tok_merge_lookup(const struct tok_vocab *v, int32_t left, int32_t right, uint32_t *rank,
                      int32_t *merged)
{
    if (!v->mkey || left < 0 || right < 0)
        return false;
    size_t h = merge_slot(v, left, right);
    if (!v->mkey[h])
        return false;
    *rank = (uint32_t)(v->mval[h] >> 32);
    *merged = (int32_t)(uint32_t)v->mval[h];
    return true;
}

/* ---- loading: the token list ------------------------------------------------------- */

static int load_tokens(struct tok_vocab *v, const struct gguf_file *f, char *err, size_t err_len)
{
    const struct gguf_kv *kv = gguf_find_kv(f, "tokenizer.ggml.tokens");
    if (!kv)
        return fail(err, err_len, TOK_EFORMAT, "tokenizer.ggml.tokens: missing");
    if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type != GGUF_TYPE_STRING)
        return fail(err, err_len, TOK_EFORMAT, "tokenizer.ggml.tokens: expected an array of strings");
    if (kv->arr_n == 0 || kv->arr_n > INT32_MAX)
        return fail(err, err_len, TOK_EFORMAT, "tokenizer.ggml.tokens: %llu entries",
                    (unsigned long long)kv->arr_n);
    v->n_vocab = (int32_t)kv->arr_n;
    size_t n = (size_t)v->n_vocab;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        struct gguf_str s;
        if (gguf_kv_arr_str(f, kv, i, &s))
            return fail(err, err_len, TOK_EFORMAT, "tokenizer.ggml.tokens[%zu]: unreadable", i);
        total += s.len; /* <= 64 MiB (R2) */
    }
    v->text = malloc((size_t)total + 1);
    v->text_off = malloc((n + 1) * sizeof(*v->text_off));
    v->scores = calloc(n, sizeof(*v->scores));
    v->type = malloc(n);
    v->eog = calloc(n, 1);
    size_t cap = pow2_at_least(2 * n);
    v->tab = malloc(cap * sizeof(*v->tab));
    if (!v->text || !v->text_off || !v->scores || !v->type || !v->eog || !v->tab)
        return fail(err, err_len, TOK_ENOMEM, "out of memory loading %zu tokens", n);
    v->tab_mask = cap - 1;
    memset(v->tab, 0xff, cap * sizeof(*v->tab));
    memset(v->type, TOK_TYPE_NORMAL, n);
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        struct gguf_str s;
        gguf_kv_arr_str(f, kv, i, &s);
        v->text_off[i] = off;
        memcpy(v->text + off, s.ptr, (size_t)s.len);
        off += s.len;
        if (s.len == 0)
            continue; /* never matched */
        size_t h = text_slot(v, s.ptr, (size_t)s.len);
        if (v->tab[h] >= 0)
            return fail(err, err_len, TOK_EFORMAT,
                        "tokenizer.ggml.tokens[%zu]: same text as token %d", i, v->tab[h]);
        v->tab[h] = (int32_t)i;
    }
    v->text_off[n] = off;
    v->text[off] = 0;
    return 0;
}

static int load_scores_types(struct tok_vocab *v, const struct gguf_file *f, char *err,
                             size_t err_len)
{
    const struct gguf_kv *kv = gguf_find_kv(f, "tokenizer.ggml.scores");
    if (kv) {
        if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type != GGUF_TYPE_FLOAT32)
            return fail(err, err_len, TOK_EFORMAT, "tokenizer.ggml.scores: expected an array of f32");
        if (kv->arr_n != (uint64_t)v->n_vocab)
            return fail(err, err_len, TOK_EFORMAT, "tokenizer.ggml.scores: %llu entries, expected n_vocab %d",
                        (unsigned long long)kv->arr_n, v->n_vocab);
        for (int32_t i = 0; i < v->n_vocab; i++)
            gguf_kv_arr_f32(kv, (uint64_t)i, &v->scores[i]);
    }
    kv = gguf_find_kv(f, "tokenizer.ggml.token_type");
    if (kv) {
        if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type != GGUF_TYPE_INT32)
            return fail(err, err_len, TOK_EFORMAT, "tokenizer.ggml.token_type: expected an array of i32");
        if (kv->arr_n != (uint64_t)v->n_vocab)
            return fail(err, err_len, TOK_EFORMAT, "tokenizer.ggml.token_type: %llu entries, expected n_vocab %d",
                        (unsigned long long)kv->arr_n, v->n_vocab);
        for (int32_t i = 0; i < v->n_vocab; i++) {
            int32_t t = 0;
            gguf_kv_arr_i32(kv, (uint64_t)i, &t);
            if (t < TOK_TYPE_UNDEFINED || t > TOK_TYPE_BYTE)
                return fail(err, err_len, TOK_EFORMAT, "tokenizer.ggml.token_type[%d]: %d is not a token type", i, t);
            v->type[i] = (uint8_t)t;
        }
    }
    return 0;
}

/* R12: a BYTE token's text is exactly <0xHH> with upper-case hex digits. */
static int check_byte_tokens(struct tok_vocab *v, char *err, size_t err_len)
{
    static const char hex[] = "0123456789ABCDEF";
    for (int32_t i = 0; i < v->n_vocab; i++) {
        if (v->type[i] != TOK_TYPE_BYTE)
            continue;
        const char *t = v->text + v->text_off[i];
        size_t len = (size_t)(v->text_off[i + 1] - v->text_off[i]);
        if (len != 6 || memcmp(t, "<0x", 3) != 0 || t[5] != '>' || !memchr(hex, t[3], 16) ||
            !memchr(hex, t[4], 16) || t[3] == 0 || t[4] == 0)
            return fail(err, err_len, TOK_EFORMAT, "tokenizer.ggml.tokens[%d]: byte token '%.*s' is not <0xHH>",
                        i, (int)(len < 32 ? len : 32), t);
    }
    return 0;
}

/* ---- loading: merges --------------------------------------------------------------- */

static void merge_insert(struct tok_vocab *v, int32_t l, int32_t r, uint32_t rank, int32_t m)
{
    size_t h = merge_slot(v, l, r);
    if (v->mkey[h])
        return; /* a duplicate merge keeps its first (best) rank */
    v->mkey[h] = merge_key(l, r);
    v->mval[h] = (uint64_t)rank << 32 | (uint32_t)m;
}

/* Each merge is "left right" (split at the first space after position 0). Merges
 * whose parts or result are not tokens can never apply and are skipped. */
static int load_merges(struct tok_vocab *v, const struct gguf_file *f, char *err, size_t err_len)
{
    const struct gguf_kv *kv = gguf_find_kv(f, "tokenizer.ggml.merges");
    if (!kv)
        return fail(err, err_len, TOK_EFORMAT, "tokenizer.ggml.merges: missing (required for gpt2)");
    if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type != GGUF_TYPE_STRING)
        return fail(err, err_len, TOK_EFORMAT, "tokenizer.ggml.merges: expected an array of strings");
    size_t cap = pow2_at_least(2 * (size_t)kv->arr_n);
    v->mkey = calloc(cap, sizeof(*v->mkey));
    v->mval = malloc(cap * sizeof(*v->mval));
    char *buf = malloc(GGUF_MAX_STRING + 1);
    if (!v->mkey || !v->mval || !buf) {
        free(buf);
        return fail(err, err_len, TOK_ENOMEM, "out of memory loading merges");
    }
    v->m_mask = cap - 1;
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        struct gguf_str s;
        gguf_kv_arr_str(f, kv, i, &s);
        const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', (size_t)s.len - 1) : NULL;
        if (!sp)
            continue;
        size_t ll = (size_t)(sp - s.ptr);
        int32_t l = tok_findn(v, s.ptr, ll);
        int32_t r = tok_findn(v, sp + 1, (size_t)s.len - ll - 1);
        memcpy(buf, s.ptr, ll);
        memcpy(buf + ll, sp + 1, (size_t)s.len - ll - 1);
        int32_t m = tok_findn(v, buf, (size_t)s.len - 1);
        if (l >= 0 && r >= 0 && m >= 0)
            merge_insert(v, l, r, (uint32_t)i, m);
    }
    free(buf);
    return 0;
}

/* ---- loading: special ids, flags --------------------------------------------------- */

/* An optional integer key holding a token id: must be < n_vocab (R12). */
static int get_id(const struct tok_vocab *v, const struct gguf_file *f, const char *key,
                  int32_t *id, char *err, size_t err_len)
{
    const struct gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv)
        return 0;
    int64_t x;
    int rc = gguf_get_i64(f, key, &x);
    if (rc == GGUF_ETYPE)
        return fail(err, err_len, TOK_EFORMAT, "%s: has type %s, expected an integer", key,
                    gguf_value_type_name(kv->type));
    if (rc || x < 0 || x >= v->n_vocab)
        return fail(err, err_len, TOK_EFORMAT, "%s: id %lld is not below n_vocab %d", key,
                    rc ? -1ll : (long long)x, v->n_vocab);
    *id = (int32_t)x;
    return 0;
}

static int get_flag(const struct gguf_file *f, const char *key, bool *out, char *err,
                    size_t err_len)
{
    const struct gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv)
        return 0;
    if (kv->type != GGUF_TYPE_BOOL)
        return fail(err, err_len, TOK_EFORMAT, "%s: has type %s, expected bool", key,
                    gguf_value_type_name(kv->type));
    return gguf_get_bool(f, key, out) ? TOK_EFORMAT : 0;
}

/* End-of-generation set, as llama.cpp builds it: the listed texts (forced to CONTROL),
 * FIM pad/repo/separator tokens, then EOS/EOT/EOM. */
static void mark_eog(struct tok_vocab *v, const int32_t *extra, size_t n_extra)
{
    static const char *const eog_text[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                           "<|endoftext|>", "<|eom_id|>", "<EOT>"};
    static const char *const fim_text[] = {"<|fim_pad|>", "<fim-pad>", "<PAD>", "<|fim_repo|>",
                                           "<|repo_name|>", "<fim-repo>", "<REPO>", "<|file_sep|>"};
    static const char *const control_text[] = {"<|fim_prefix|>", "<fim-prefix>", "<PRE>",
                                               "<|fim_suffix|>", "<fim-suffix>", "<SUF>",
                                               "<|fim_middle|>", "<fim-middle>", "<MID>"};
    for (size_t k = 0; k < sizeof(eog_text) / sizeof(eog_text[0]); k++) {
        int32_t id = tok_find(v, eog_text[k]);
        if (id >= 0) {
            v->eog[id] = 1;
            v->type[id] = TOK_TYPE_CONTROL;
        }
    }
    for (size_t k = 0; k < sizeof(fim_text) / sizeof(fim_text[0]); k++) {
        int32_t id = tok_find(v, fim_text[k]);
        if (id >= 0) {
            v->eog[id] = 1;
            v->type[id] = TOK_TYPE_CONTROL;
        }
    }
    for (size_t k = 0; k < sizeof(control_text) / sizeof(control_text[0]); k++) {
        int32_t id = tok_find(v, control_text[k]);
        if (id >= 0)
            v->type[id] = TOK_TYPE_CONTROL;
    }
    for (size_t k = 0; k < n_extra; k++)
        if (extra[k] >= 0)
            v->eog[extra[k]] = 1;
}

static int load_special(struct tok_vocab *v, const struct gguf_file *f, bool add_bos_default,
                        char *err, size_t err_len)
{
    int32_t eot = -1, eom = -1, sep = -1, fim[9];
    static const char *const fim_keys[9] = {
        "tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.fim_suf_token_id",
        "tokenizer.ggml.fim_mid_token_id", "tokenizer.ggml.fim_pad_token_id",
        "tokenizer.ggml.fim_rep_token_id", "tokenizer.ggml.fim_sep_token_id",
        "tokenizer.ggml.prefix_token_id",  "tokenizer.ggml.suffix_token_id",
        "tokenizer.ggml.middle_token_id",
    };
    if (v->kind == TOK_KIND_SPM) {
        v->bos = v->n_vocab > 1 ? 1 : -1;
        v->eos = v->n_vocab > 2 ? 2 : -1;
        v->unk = 0;
        v->add_bos = true;
        v->add_space_prefix = true;
    } else {
        v->bos = v->eos = v->unk = -1;
        v->add_bos = add_bos_default;
    }
    v->pad = -1;
    int rc = 0;
    if ((rc = get_id(v, f, "tokenizer.ggml.bos_token_id", &v->bos, err, err_len)) ||
        (rc = get_id(v, f, "tokenizer.ggml.eos_token_id", &v->eos, err, err_len)) ||
        (rc = get_id(v, f, "tokenizer.ggml.unknown_token_id", &v->unk, err, err_len)) ||
        (rc = get_id(v, f, "tokenizer.ggml.padding_token_id", &v->pad, err, err_len)) ||
        (rc = get_id(v, f, "tokenizer.ggml.seperator_token_id", &sep, err, err_len)) ||
        (rc = get_id(v, f, "tokenizer.ggml.eot_token_id", &eot, err, err_len)) ||
        (rc = get_id(v, f, "tokenizer.ggml.eom_token_id", &eom, err, err_len)))
        return rc;
    for (int k = 0; k < 9; k++) {
        fim[k] = -1;
        if ((rc = get_id(v, f, fim_keys[k], &fim[k], err, err_len)))
            return rc;
    }
    if ((rc = get_flag(f, "tokenizer.ggml.add_bos_token", &v->add_bos, err, err_len)) ||
        (rc = get_flag(f, "tokenizer.ggml.add_eos_token", &v->add_eos, err, err_len)) ||
        (rc = get_flag(f, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix, err, err_len)))
        return rc;
    if (v->kind == TOK_KIND_BPE)
        v->add_space_prefix = false; /* BPE pre-tokenizers handle spaces themselves */
    int32_t extra[6] = {v->eos, eot, eom, fim[3], fim[4], fim[5]};
    mark_eog(v, extra, 6);
    return 0;
}

/* ---- loading: derived tables ------------------------------------------------------- */

/* The GPT-2 byte-to-unicode map: printable Latin-1 bytes map to themselves, the rest
 * to 256, 257, ... in byte order. */
static void build_byte_map(struct tok_vocab *v)
{
    uint32_t next = 256;
    for (int i = 0; i < 324; i++)
        v->cp_byte[i] = -1;
    for (uint32_t b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        v->byte_cp[b] = printable ? b : next++;
        v->cp_byte[v->byte_cp[b]] = (int16_t)b;
    }
}

static void build_byte_tokens(struct tok_vocab *v)
{
    for (int b = 0; b < 256; b++) {
        char buf[8];
        size_t n;
        if (v->kind == TOK_KIND_SPM) {
            n = (size_t)snprintf(buf, sizeof(buf), "<0x%02X>", b);
        } else {
            n = (size_t)utf8proc_encode_char((utf8proc_int32_t)v->byte_cp[b], (utf8proc_uint8_t *)buf);
        }
        v->byte_tok[b] = tok_findn(v, buf, n);
    }
}

static int cmp_special(const void *a, const void *b, void *ctx)
{
    const struct tok_vocab *v = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint64_t lx = v->text_off[x + 1] - v->text_off[x];
    uint64_t ly = v->text_off[y + 1] - v->text_off[y];
    if (lx != ly)
        return lx > ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

static int build_specials(struct tok_vocab *v)
{
    size_t n = 0;
    for (int32_t i = 0; i < v->n_vocab; i++) {
        uint8_t t = v->type[i];
        if ((t == TOK_TYPE_CONTROL || t == TOK_TYPE_USER_DEFINED || t == TOK_TYPE_UNKNOWN) &&
            v->text_off[i + 1] > v->text_off[i])
            n++;
    }
    v->specials = malloc((n ? n : 1) * sizeof(*v->specials));
    if (!v->specials)
        return TOK_ENOMEM;
    for (int32_t i = 0; i < v->n_vocab; i++) {
        uint8_t t = v->type[i];
        if ((t == TOK_TYPE_CONTROL || t == TOK_TYPE_USER_DEFINED || t == TOK_TYPE_UNKNOWN) &&
            v->text_off[i + 1] > v->text_off[i])
            v->specials[v->n_specials++] = i;
    }
    qsort_r(v->specials, v->n_specials, sizeof(*v->specials), cmp_special, v);
    return 0;
}

/* Phi-3 vocabularies: as the reference does for a model whose general.name contains
 * "phi-3" or "phi3", every special token absorbs the whitespace after it (the newline
 * after <|user|>, <|end|>, <|assistant|> in its chat format), except <unk>, <s> and
 * <|endoftext|>; so does </s>. */
static int mark_rstrip(struct tok_vocab *v, const struct gguf_file *f)
{
    char *name = NULL;
    const struct gguf_kv *kv = gguf_find_kv(f, "general.name");
    if (!kv || kv->type != GGUF_TYPE_STRING || gguf_get_str(f, "general.name", &name) != 0)
        return 0;
    for (char *c = name; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
    bool phi3 = strstr(name, "phi-3") || strstr(name, "phi3");
    free(name);
    if (!phi3)
        return 0;
    v->rstrip = calloc((size_t)v->n_vocab, 1);
    if (!v->rstrip)
        return TOK_ENOMEM;
    for (size_t i = 0; i < v->n_specials; i++)
        v->rstrip[v->specials[i]] = 1;
    int32_t id = tok_find(v, "</s>");
    if (id >= 0)
        v->rstrip[id] = 1;
    static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
    for (size_t k = 0; k < sizeof(keep) / sizeof(keep[0]); k++)
        if ((id = tok_find(v, keep[k])) >= 0)
            v->rstrip[id] = 0;
    return 0;
}

/* Renders token i into out (at most its text length + 0 extra bytes: pieces never
 * grow, SPM "▁" -> " " and BPE code points -> bytes shrink). */
static size_t render_piece(const struct tok_vocab *v, int32_t i, char *out)
{
    const char *t = v->text + v->text_off[i];
    size_t len = (size_t)(v->text_off[i + 1] - v->text_off[i]);
    uint8_t type = v->type[i];
    if (type == TOK_TYPE_CONTROL || type == TOK_TYPE_UNKNOWN || type == TOK_TYPE_USER_DEFINED) {
        memcpy(out, t, len);
        return len;
    }
    if (v->kind == TOK_KIND_SPM && type == TOK_TYPE_BYTE) {
        out[0] = (char)strtol((char[3]){t[3], t[4], 0}, NULL, 16);
        return 1;
    }
    if (type != TOK_TYPE_NORMAL)
        return 0;
    size_t o = 0;
    if (v->kind == TOK_KIND_SPM) {
        for (size_t k = 0; k < len;) {
            if (k + 3 <= len && memcmp(t + k, "\xe2\x96\x81", 3) == 0) {
                out[o++] = ' ';
                k += 3;
            } else {
                out[o++] = t[k++];
            }
        }
        return o;
    }
    for (size_t k = 0; k < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)t + k,
                                              (utf8proc_ssize_t)(len - k), &cp);
        if (n <= 0) {
            out[o++] = t[k++]; /* not valid UTF-8: copy the byte */
        } else if (cp < 324 && v->cp_byte[cp] >= 0) {
            out[o++] = (char)v->cp_byte[cp];
            k += (size_t)n;
        } else {
            memcpy(out + o, t + k, (size_t)n); /* not a byte-level code point: keep it */
            o += (size_t)n;
            k += (size_t)n;
        }
    }
    return o;
}

static int build_pieces(struct tok_vocab *v)
{
    size_t n = (size_t)v->n_vocab;
    v->piece = malloc((size_t)v->text_off[n] + 1);
    v->piece_off = malloc((n + 1) * sizeof(*v->piece_off));
    if (!v->piece || !v->piece_off)
        return TOK_ENOMEM;
    uint64_t o = 0;
    for (size_t i = 0; i < n; i++) {
        v->piece_off[i] = o;
        o += render_piece(v, (int32_t)i, v->piece + o);
    }
    v->piece_off[n] = o;
    return 0;
}

/* ---- load / free ------------------------------------------------------------------- */

static int load_kind(struct tok_vocab *v, const struct gguf_file *f, char *err, size_t err_len)
{
    const struct gguf_kv *kv = gguf_find_kv(f, "tokenizer.ggml.model");
    struct gguf_str s;
    if (!kv)
        return fail(err, err_len, TOK_EFORMAT, "tokenizer.ggml.model: missing");
    if (gguf_kv_str(kv, &s))
        return fail(err, err_len, TOK_EFORMAT, "tokenizer.ggml.model: has type %s, expected string",
                    gguf_value_type_name(kv->type));
    if (s.len == 5 && memcmp(s.ptr, "llama", 5) == 0)
        v->kind = TOK_KIND_SPM;
    else if (s.len == 4 && memcmp(s.ptr, "gpt2", 4) == 0)
        v->kind = TOK_KIND_BPE;
    else
        return fail(err, err_len, TOK_EUNSUPPORTED, "tokenizer.ggml.model: '%.*s' is not supported (llama, gpt2)",
                    (int)(s.len < 40 ? s.len : 40), s.ptr);
    snprintf(v->pre, sizeof(v->pre), "default");
    kv = gguf_find_kv(f, "tokenizer.ggml.pre");
    if (kv) {
        if (gguf_kv_str(kv, &s))
            return fail(err, err_len, TOK_EFORMAT, "tokenizer.ggml.pre: has type %s, expected string",
                        gguf_value_type_name(kv->type));
        if (s.len >= sizeof(v->pre) || memchr(s.ptr, 0, (size_t)s.len))
            return fail(err, err_len, TOK_EUNSUPPORTED, "tokenizer.ggml.pre: unknown pre-tokenizer");
        if (s.len)
            snprintf(v->pre, sizeof(v->pre), "%.*s", (int)s.len, s.ptr);
    }
    return 0;
}

int tok_load(struct tok_vocab **out, const struct gguf_file *f, char *err, size_t err_len)
{
    *out = NULL;
    struct tok_vocab *v = calloc(1, sizeof(*v));
    if (!v)
        return fail(err, err_len, TOK_ENOMEM, "out of memory");
    bool add_bos_default = false;
    int rc = load_kind(v, f, err, err_len);
    if (!rc)
        rc = load_tokens(v, f, err, err_len);
    if (!rc)
        rc = load_scores_types(v, f, err, err_len);
    if (!rc)
        rc = check_byte_tokens(v, err, err_len);
    if (!rc && v->kind == TOK_KIND_BPE)
        rc = load_merges(v, f, err, err_len);
    if (!rc && v->kind == TOK_KIND_BPE)
        rc = tok_pre_init(v, &add_bos_default, err, err_len);
    if (!rc)
        rc = load_special(v, f, add_bos_default, err, err_len);
    if (!rc) {
        build_byte_map(v);
        build_byte_tokens(v);
        rc = build_specials(v);
        if (!rc)
            rc = mark_rstrip(v, f);
        if (!rc)
            rc = build_pieces(v);
        if (rc)
            fail(err, err_len, rc, "out of memory");
    }
    if (rc) {
        tok_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

void tok_free(struct tok_vocab *v)
{
    if (!v)
        return;
    for (int i = 0; i < v->n_re; i++)
        pcre2_code_free(v->re[i]);
    free(v->text);
    free(v->text_off);
    free(v->scores);
    free(v->type);
    free(v->eog);
    free(v->tab);
    free(v->mkey);
    free(v->mval);
    free(v->specials);
    free(v->rstrip);
    free(v->piece);
    free(v->piece_off);
    free(v);
}

/* ---- accessors --------------------------------------------------------------------- */

int32_t tok_n_vocab(const struct tok_vocab *v)
{
    return v->n_vocab;
}

int32_t tok_bos(const struct tok_vocab *v)
{
    return v->bos;
}

int32_t tok_eos(const struct tok_vocab *v)
{
    return v->eos;
}

int32_t tok_unk(const struct tok_vocab *v)
{
    return v->unk;
}

int32_t tok_pad(const struct tok_vocab *v)
{
    return v->pad;
}

bool tok_add_bos(const struct tok_vocab *v)
{
    return v->add_bos && v->bos >= 0;
}

bool tok_add_eos(const struct tok_vocab *v)
{
    return v->add_eos && v->eos >= 0;
}

bool tok_add_space_prefix(const struct tok_vocab *v)
{
    return v->kind == TOK_KIND_SPM && v->add_space_prefix;
}

bool tok_is_whole(const struct tok_vocab *v, int32_t id)
{
    int type = tok_type(v, id);
    return type == TOK_TYPE_CONTROL || type == TOK_TYPE_USER_DEFINED;
}

enum tok_kind tok_kind(const struct tok_vocab *v)
{
    return v->kind;
}

const char *tok_kind_name(const struct tok_vocab *v)
{
    return v->kind == TOK_KIND_SPM ? "llama" : "gpt2";
}

const char *tok_pre_name(const struct tok_vocab *v)
{
    return v->pre;
}

bool tok_is_eog(const struct tok_vocab *v, int32_t id)
{
    return id >= 0 && id < v->n_vocab && v->eog[id];
}

const char *tok_text(const struct tok_vocab *v, int32_t id, size_t *len)
{
    if (id < 0 || id >= v->n_vocab)
        return NULL;
    *len = (size_t)(v->text_off[id + 1] - v->text_off[id]);
    return v->text + v->text_off[id];
}

int tok_type(const struct tok_vocab *v, int32_t id)
{
    return id >= 0 && id < v->n_vocab ? v->type[id] : -1;
}

/* ---- pieces and decoding ----------------------------------------------------------- */

/* The piece of id (borrowed), honouring `special`. */
static const char *piece_of(const struct tok_vocab *v, int32_t id, bool special, size_t *len)
{
    uint8_t t = v->type[id];
    if (!special && (t == TOK_TYPE_CONTROL || t == TOK_TYPE_UNKNOWN)) {
        *len = 0;
        return v->piece;
    }
    *len = (size_t)(v->piece_off[id + 1] - v->piece_off[id]);
    return v->piece + v->piece_off[id];
}

int tok_piece(const struct tok_vocab *v, int32_t id, char *buf, size_t len, bool special)
{
    if (id < 0 || id >= v->n_vocab)
        return TOK_ERANGE;
    size_t n;
    const char *p = piece_of(v, id, special, &n);
    if (buf)
        memcpy(buf, p, n < len ? n : len);
    return (int)n; /* a piece is at most one token text: <= 1 MiB */
}

int tok_decode(const struct tok_vocab *v, const int32_t *ids, size_t n, unsigned flags,
               char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= v->n_vocab)
            return TOK_ERANGE;
        size_t len;
        piece_of(v, ids[i], flags & TOK_DECODE_SPECIAL, &len);
        if (len > SIZE_MAX - 1 - total)
            return TOK_ENOMEM;
        total += len;
    }
    char *buf = malloc(total + 1);
    if (!buf)
        return TOK_ENOMEM;
    size_t o = 0;
    bool strip = flags & TOK_DECODE_STRIP_SPACE;
    bool frags = flags & TOK_DECODE_FRAGMENTS;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *p = piece_of(v, ids[i], flags & TOK_DECODE_SPECIAL, &len);
        bool whole = frags && tok_is_whole(v, ids[i]);
        if (strip && len && !whole) {
            if (p[0] == ' ') {
                p++;
                len--;
            }
            strip = false;
        }
        if (whole) /* the text after it starts a fragment of its own */
            strip = tok_add_space_prefix(v);
        memcpy(buf + o, p, len);
        o += len;
    }
    buf[o] = 0;
    *out = buf;
    *out_len = o;
    return 0;
}

/* ---- streaming detokenizer --------------------------------------------------------- */

void tok_stream_init(struct tok_stream *s, const struct tok_vocab *v, bool special)
{
    memset(s, 0, sizeof(*s));
    s->v = v;
    s->special = special;
}

void tok_stream_fini(struct tok_stream *s)
{
    free(s->out);
    memset(s, 0, sizeof(*s));
}

static int stream_reserve(struct tok_stream *s, size_t n)
{
    if (n <= s->out_cap)
        return 0;
    size_t cap = s->out_cap ? s->out_cap : 64;
    while (cap < n)
        cap *= 2;
    char *p = realloc(s->out, cap);
    if (!p)
        return TOK_ENOMEM;
    s->out = p;
    s->out_cap = cap;
    return 0;
}

/* Expected length of a UTF-8 sequence from its lead byte; 0 for a byte that cannot
 * start one. */
static size_t utf8_seq_len(uint8_t c)
{
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return 2;
    if (c >= 0xE0 && c <= 0xEF)
        return 3;
    if (c >= 0xF0 && c <= 0xF4)
        return 4;
    return 0;
}

/* Could bytes p[0..n) (n < full length) still become a valid character? */
static bool utf8_prefix_ok(const uint8_t *p, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return false;
    if (n >= 2) {
        if (p[0] == 0xE0 && p[1] < 0xA0)
            return false; /* overlong */
        if (p[0] == 0xED && p[1] >= 0xA0)
            return false; /* surrogate */
        if (p[0] == 0xF0 && p[1] < 0x90)
            return false;
        if (p[0] == 0xF4 && p[1] >= 0x90)
            return false;
    }
    return true;
}

/* Moves complete characters from in[0..n) to s->out at *o; keeps an incomplete tail
 * in s->pend; turns hopeless bytes into U+FFFD. */
static void stream_feed(struct tok_stream *s, const uint8_t *in, size_t n, size_t *o)
{
    for (size_t i = 0; i < n; i++) {
        s->pend[s->n_pend++] = in[i];
        for (;;) {
            size_t want = utf8_seq_len(s->pend[0]);
            if (want == 0 || !utf8_prefix_ok(s->pend, s->n_pend)) {
                /* the first byte can never start a character: replace it, retry the rest */
                memcpy(s->out + *o, "\xEF\xBF\xBD", 3);
                *o += 3;
                memmove(s->pend, s->pend + 1, --s->n_pend);
                if (s->n_pend == 0)
                    break;
                continue;
            }
            if (s->n_pend == want) {
                memcpy(s->out + *o, s->pend, want);
                *o += want;
                s->n_pend = 0;
            }
            break;
        }
    }
}

int tok_stream_push(struct tok_stream *s, int32_t id, const char **text, size_t *len)
{
    *text = "";
    *len = 0;
    if (id < 0 || id >= s->v->n_vocab)
        return TOK_ERANGE;
    size_t n;
    const char *p = piece_of(s->v, id, s->special, &n);
    /* worst case: every byte (and the 3 held back) becomes a 3-byte U+FFFD */
    if (stream_reserve(s, 3 * (n + 4)))
        return TOK_ENOMEM;
    size_t o = 0;
    stream_feed(s, (const uint8_t *)p, n, &o);
    *text = s->out;
    *len = o;
    return 0;
}

int tok_stream_flush(struct tok_stream *s, const char **text, size_t *len)
{
    *text = "";
    *len = 0;
    if (stream_reserve(s, 3))
        return TOK_ENOMEM;
    size_t o = 0;
    if (s->n_pend) {
        memcpy(s->out, "\xEF\xBF\xBD", 3);
        o = 3;
        s->n_pend = 0;
    }
    *text = s->out;
    *len = o;
    return 0;
}
