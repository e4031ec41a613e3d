/* tok_encode.c - text -> token ids, as llama.cpp's llama_tokenize computes them.
 *
 * Three stages:
 *  1. Special tokens: the text is cut into raw fragments and token fragments. Each
 *     special token (longest text first) is searched in every raw fragment, so a
 *     longer token wins over a shorter one inside it. CONTROL/UNKNOWN tokens only
 *     take part with parse_special, and never where their text touches a range the
 *     caller marked as plain (what a user wrote); USER_DEFINED ones always do.
 *  2. SentencePiece (tokenizer "llama"): spaces become U+2581 ("▁"), a leading "▁"
 *     is added to a fragment at the start or after a special token, the fragment is
 *     split into UTF-8 characters, and adjacent symbols are merged greedily, highest
 *     vocabulary score first (ties: leftmost). Symbols that are not tokens fall back to
 *     <0xNN> byte tokens.
 *  3. Byte-level BPE (tokenizer "gpt2"): the pre-tokenizer regexes of
 *     tokenizer.ggml.pre (PCRE2, UTF + UCP) cut the fragment into words, each regex
 *     splitting the pieces the previous one left (matches and the gaps between them
 *     both become pieces). Each word's bytes map to printable code points and are
 *     merged by merge rank (lowest first; ties: leftmost). Invalid UTF-8 is never
 *     given to PCRE2: each invalid byte is a word of its own.
 * Merging uses a binary heap over candidate pairs, so a long word costs O(n log n).
 * Everything here is reentrant: per-call state lives in struct enc.
 */
#include "tok_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest text tok_encode accepts (symbol indices are 32-bit). */
#define TOK_MAX_TEXT (256u << 20)

/* ---- pre-tokenizer regexes --------------------------------------------------------- */

/* White space as llama.cpp defines it (Unicode White_Space). PCRE2's \s would also
 * take U+180E, so the class is spelled out. */
#define WS "\\t\\n\\x0B\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
#define S_ "[" WS "]"
#define NS_ "[^" WS "]"
#define CJK_ "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"

/* GPT-2: contractions, letters, numbers, other symbols, trailing spaces. */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|" S_ "+(?!" NS_ ")"
/* Llama 3 / Qwen 2: case-insensitive contractions, one optional non-letter before a
 * letter run, numbers in groups of 1-3 (Qwen: single digits), newlines apart. */
#define RE_L3_HEAD "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
#define RE_L3_TAIL "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*|" S_ "*[\\r\\n]+|" S_ "+(?!" NS_ ")|" S_ "+"
#define RE_LLAMA3 RE_L3_HEAD "\\p{N}{1,3}" RE_L3_TAIL
#define RE_QWEN2 RE_L3_HEAD "\\p{N}" RE_L3_TAIL

struct pre_def {
    const char *names; /* space-separated tokenizer.ggml.pre values */
    const char *re[TOK_MAX_REGEX];
    bool ignore_merges; /* a word that is a whole token is taken as is */
    bool add_bos;       /* default for tokenizer.ggml.add_bos_token */
};

static const struct pre_def pre_defs[] = {
    {"default", {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}, false, false},
    {"llama3 llama-v3 llama-bpe falcon3 dbrx smaug-bpe", {RE_LLAMA3}, true, true},
    {"chatglm-bpe", {RE_LLAMA3}, false, false},
    {"qwen2 deepseek-r1-qwen stablelm2 megrez", {RE_QWEN2}, false, false},
    {"gpt-2 gpt2 gpt-neox mpt olmo jais phi-2 roberta-bpe jina-es jina-de gigachat jina-v1-en "
     "jina-v2-es jina-v2-de jina-v2-code",
     {RE_GPT2}, false, false},
    {"starcoder refact command-r smollm codeshell exaone minerva-7b", {"\\p{N}", RE_GPT2}, false, false},
    {"falcon", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}, false, false},
    /* DeepSeek LLM's letter class lists the cased letters (Lu, Ll, Lt) range by range. */
    {"deepseek-llm",
     {"[\\r\\n]", S_ "?[\\p{Lu}\\p{Ll}\\p{Lt}]+",
      S_ "?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
      S_ "+\\z", CJK_, "\\p{N}+"},
     false, false},
    {"deepseek-coder", {"[\\r\\n]", S_ "?\\p{L}+", S_ "?\\p{P}+", CJK_, "\\p{N}"}, false, false},
};

static bool name_in(const char *names, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = names; *p;) {
        const char *e = strchr(p, ' ');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0)
            return true;
        p += len + (e ? 1 : 0);
    }
    return false;
}

int tok_pre_init(struct tok_vocab *v, bool *add_bos_default, char *err, size_t err_len)
{
    const struct pre_def *d = NULL;
    for (size_t i = 0; i < sizeof(pre_defs) / sizeof(pre_defs[0]) && !d; i++)
        if (name_in(pre_defs[i].names, v->pre))
            d = &pre_defs[i];
    if (!d) {
        if (err && err_len)
            snprintf(err, err_len, "tokenizer.ggml.pre: unknown pre-tokenizer '%s'", v->pre);
        return TOK_EUNSUPPORTED;
    }
    v->ignore_merges = d->ignore_merges;
    *add_bos_default = d->add_bos;
    for (int i = 0; i < TOK_MAX_REGEX && d->re[i]; i++) {
        int ec;
        PCRE2_SIZE eo;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)d->re[i], PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
        if (!re) {
            if (err && err_len)
                snprintf(err, err_len, "pre-tokenizer '%s': regex %d does not compile at %zu",
                         v->pre, i, (size_t)eo);
            return TOK_EUNSUPPORTED;
        }
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional: falls back to the interpreter */
        v->re[v->n_re++] = re;
    }
    return 0;
}

/* ---- growable arrays --------------------------------------------------------------- */

struct ids {
    int32_t *p;
    size_t n;
    size_t cap;
};

static int ids_push(struct ids *a, int32_t id)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        int32_t *p = realloc(a->p, cap * sizeof(*p));
        if (!p)
            return TOK_ENOMEM;
        a->p = p;
        a->cap = cap;
    }
    a->p[a->n++] = id;
    return 0;
}

/* Grows *p (elements of size es) to hold at least n. */
static int grow(void **p, size_t *cap, size_t n, size_t es)
{
    if (n <= *cap)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < n)
        c *= 2;
    void *q = realloc(*p, c * es);
    if (!q)
        return TOK_ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

struct sym {
    int32_t prev;
    int32_t next;
    uint32_t start; /* byte offset in the word / escaped text */
    uint32_t n;     /* bytes; 0 once merged into the left neighbour */
    int32_t id;     /* token id, or -1 */
};

struct bigram {
    double prio;    /* smaller first: BPE rank, or -score for SPM */
    int32_t left;
    int32_t right;
    uint32_t size;  /* bytes of left + right when queued */
    int32_t merged; /* id of the merged token */
};

struct piece {
    size_t start;
    size_t len;
    bool invalid; /* one byte that is not valid UTF-8: not given to the regexes */
};

/* Per-call scratch, reused across words. */
struct enc {
    const struct tok_vocab *v;
    struct ids out;
    struct sym *sym;
    size_t sym_cap;
    struct bigram *heap;
    size_t heap_n;
    size_t heap_cap;
    char *buf; /* escaped text (SPM) or byte-level word (BPE) */
    size_t buf_cap;
};

/* ---- heap of bigrams --------------------------------------------------------------- */

static bool before(const struct bigram *a, const struct bigram *b)
{
    return a->prio < b->prio || (a->prio == b->prio && a->left < b->left);
}

static int heap_push(struct enc *e, struct bigram b)
{
    if (grow((void **)&e->heap, &e->heap_cap, e->heap_n + 1, sizeof(*e->heap)))
        return TOK_ENOMEM;
    size_t i = e->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(&b, &e->heap[p]))
            break;
        e->heap[i] = e->heap[p];
        i = p;
    }
    e->heap[i] = b;
    return 0;
}

static struct bigram heap_pop(struct enc *e)
{
    struct bigram top = e->heap[0];
    struct bigram last = e->heap[--e->heap_n];
    size_t i = 0, n = e->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && before(&e->heap[c + 1], &e->heap[c]))
            c++;
        if (!before(&e->heap[c], &last))
            break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    if (n)
        e->heap[i] = last;
    return top;
}

/* Merges right into left (a queued pair that is still current). */
static void merge_syms(struct sym *s, int32_t l, int32_t r, int32_t id)
{
    s[l].n += s[r].n;
    s[r].n = 0;
    s[l].next = s[r].next;
    if (s[r].next >= 0)
        s[s[r].next].prev = l;
    s[l].id = id;
}

/* ---- SentencePiece ----------------------------------------------------------------- */

static size_t spm_char_len(uint8_t c)
{
    static const uint8_t len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[c >> 4];
}

static int spm_try_pair(struct enc *e, int32_t l, int32_t r)
{
    if (l < 0 || r < 0)
        return 0;
    uint32_t size = e->sym[l].n + e->sym[r].n;
    int32_t id = tok_findn(e->v, e->buf + e->sym[l].start, size);
    if (id < 0)
        return 0;
    struct bigram b = {-(double)e->v->scores[id], l, r, size, id};
    return heap_push(e, b);
}

static int spm_emit(struct enc *e, const struct sym *s)
{
    const struct tok_vocab *v = e->v;
    if (s->id >= 0)
        return ids_push(&e->out, s->id);
    for (uint32_t k = 0; k < s->n; k++) {
        int32_t b = v->byte_tok[(uint8_t)e->buf[s->start + k]];
        if (b < 0)
            b = v->unk;
        if (b >= 0 && ids_push(&e->out, b))
            return TOK_ENOMEM;
    }
    return 0;
}

static int spm_encode(struct enc *e, const char *text, size_t len, bool prefix)
{
    /* escape: ' ' -> U+2581 (3 bytes); len <= TOK_MAX_TEXT so 3 * len + 3 fits */
    if (grow((void **)&e->buf, &e->buf_cap, 3 * len + 3, 1))
        return TOK_ENOMEM;
    size_t n = 0;
    if (prefix) {
        memcpy(e->buf, "\xe2\x96\x81", 3);
        n = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(e->buf + n, "\xe2\x96\x81", 3);
            n += 3;
        } else {
            e->buf[n++] = text[i];
        }
    }
    if (n == 0)
        return 0;
    if (grow((void **)&e->sym, &e->sym_cap, n, sizeof(*e->sym)))
        return TOK_ENOMEM;
    int32_t ns = 0;
    for (size_t off = 0; off < n;) {
        size_t cl = spm_char_len((uint8_t)e->buf[off]);
        if (cl > n - off)
            cl = n - off;
        e->sym[ns] = (struct sym){ns - 1, -1, (uint32_t)off, (uint32_t)cl,
                                  tok_findn(e->v, e->buf + off, cl)};
        if (ns > 0)
            e->sym[ns - 1].next = ns;
        ns++;
        off += cl;
    }
    e->heap_n = 0;
    for (int32_t i = 1; i < ns; i++)
        if (spm_try_pair(e, i - 1, i))
            return TOK_ENOMEM;
    while (e->heap_n) {
        struct bigram b = heap_pop(e);
        struct sym *l = &e->sym[b.left], *r = &e->sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
            continue; /* stale */
        merge_syms(e->sym, b.left, b.right, b.merged);
        if (spm_try_pair(e, e->sym[b.left].prev, b.left) ||
            spm_try_pair(e, b.left, e->sym[b.left].next))
            return TOK_ENOMEM;
    }
    for (int32_t i = 0; i >= 0; i = e->sym[i].next)
        if (spm_emit(e, &e->sym[i]))
            return TOK_ENOMEM;
    return 0;
}

/* ---- byte-level BPE ---------------------------------------------------------------- */

static int bpe_try_pair(struct enc *e, int32_t l, int32_t r)
{
    uint32_t rank;
    int32_t merged;
    if (l < 0 || r < 0 || !tok_merge_lookup(e->v, e->sym[l].id, e->sym[r].id, &rank, &merged))
        return 0;
    struct bigram b = {(double)rank, l, r, e->sym[l].n + e->sym[r].n, merged};
    return heap_push(e, b);
}

/* The word's bytes as byte-level code points, UTF-8 encoded, in e->buf. */
static size_t bpe_byte_text(struct enc *e, const uint8_t *w, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = e->v->byte_cp[w[i]];
        if (cp < 0x80) {
            e->buf[o++] = (char)cp;
        } else {
            e->buf[o++] = (char)(0xC0 | cp >> 6);
            e->buf[o++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    return o;
}

static int bpe_word(struct enc *e, const uint8_t *w, size_t n)
{
    const struct tok_vocab *v = e->v;
    if (n == 1)
        return v->byte_tok[w[0]] >= 0 ? ids_push(&e->out, v->byte_tok[w[0]]) : 0;
    if (v->ignore_merges) {
        if (grow((void **)&e->buf, &e->buf_cap, 2 * n, 1))
            return TOK_ENOMEM;
        int32_t id = tok_findn(v, e->buf, bpe_byte_text(e, w, n));
        if (id >= 0)
            return ids_push(&e->out, id);
    }
    if (grow((void **)&e->sym, &e->sym_cap, n, sizeof(*e->sym)))
        return TOK_ENOMEM;
    for (size_t i = 0; i < n; i++)
        e->sym[i] = (struct sym){(int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1, (uint32_t)i, 1,
                                 v->byte_tok[w[i]]};
    e->heap_n = 0;
    for (size_t i = 1; i < n; i++)
        if (bpe_try_pair(e, (int32_t)i - 1, (int32_t)i))
            return TOK_ENOMEM;
    while (e->heap_n) {
        struct bigram b = heap_pop(e);
        struct sym *l = &e->sym[b.left], *r = &e->sym[b.right];
        if (l->n == 0 || r->n == 0 || l->next != b.right || l->n + r->n != b.size)
            continue; /* stale */
        merge_syms(e->sym, b.left, b.right, b.merged);
        if (bpe_try_pair(e, e->sym[b.left].prev, b.left) ||
            bpe_try_pair(e, b.left, e->sym[b.left].next))
            return TOK_ENOMEM;
    }
    for (int32_t i = 0; i >= 0; i = e->sym[i].next)
        if (e->sym[i].id >= 0 && ids_push(&e->out, e->sym[i].id))
            return TOK_ENOMEM;
    return 0;
}

/* Length of the valid UTF-8 character at s, or 0 (same rules as PCRE2's check). */
static size_t utf8_valid_len(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    if (c < 0x80)
        return 1;
    size_t len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (len == 0 || n < len)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0) || (c == 0xF0 && s[1] < 0x90) ||
        (c == 0xF4 && s[1] >= 0x90))
        return 0;
    return len;
}

struct pieces {
    struct piece *p;
    size_t n;
    size_t cap;
};

static int pieces_push(struct pieces *a, size_t start, size_t len, bool invalid)
{
    if (grow((void **)&a->p, &a->cap, a->n + 1, sizeof(*a->p)))
        return TOK_ENOMEM;
    a->p[a->n++] = (struct piece){start, len, invalid};
    return 0;
}

/* Valid UTF-8 runs, and each invalid byte on its own. */
static int split_valid(const uint8_t *t, size_t len, struct pieces *out)
{
    size_t run = 0;
    for (size_t i = 0; i < len;) {
        size_t cl = utf8_valid_len(t + i, len - i);
        if (cl) {
            i += cl;
            continue;
        }
        if (i > run && pieces_push(out, run, i - run, false))
            return TOK_ENOMEM;
        if (pieces_push(out, i, 1, true))
            return TOK_ENOMEM;
        run = ++i;
    }
    if (len > run && pieces_push(out, run, len - run, false))
        return TOK_ENOMEM;
    return 0;
}

/* One regex over every piece of `in`: matches and the gaps between them. */
static int split_regex(pcre2_code *re, pcre2_match_data *md, const uint8_t *t,
                       const struct pieces *in, struct pieces *out)
{
    out->n = 0;
    for (size_t k = 0; k < in->n; k++) {
        struct piece pc = in->p[k];
        if (pc.invalid) {
            if (pieces_push(out, pc.start, pc.len, true))
                return TOK_ENOMEM;
            continue;
        }
        const uint8_t *s = t + pc.start;
        size_t off = 0, last = 0;
        while (off < pc.len) {
            int rc = pcre2_match(re, s, pc.len, off, PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc < 0)
                break; /* no match (or a resource limit: keep the rest as one piece) */
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (me == ms) { /* empty match: step over one character */
                off = ms + utf8_valid_len(s + ms, pc.len - ms);
                continue;
            }
            if (ms > last && pieces_push(out, pc.start + last, ms - last, false))
                return TOK_ENOMEM;
            if (pieces_push(out, pc.start + ms, me - ms, false))
                return TOK_ENOMEM;
            last = off = me;
        }
        if (pc.len > last && pieces_push(out, pc.start + last, pc.len - last, false))
            return TOK_ENOMEM;
    }
    return 0;
}

static int bpe_encode(struct enc *e, const char *text, size_t len)
{
    const struct tok_vocab *v = e->v;
    const uint8_t *t = (const uint8_t *)text;
    struct pieces a = {0}, b = {0};
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    int rc = md ? split_valid(t, len, &a) : TOK_ENOMEM;
    for (int i = 0; i < v->n_re && !rc; i++) {
        rc = split_regex(v->re[i], md, t, &a, &b);
        struct pieces tmp = a;
        a = b;
        b = tmp;
    }
    for (size_t k = 0; k < a.n && !rc; k++)
        rc = bpe_word(e, t + a.p[k].start, a.p[k].len);
    pcre2_match_data_free(md);
    free(a.p);
    free(b.p);
    return rc;
}

/* ---- special tokens ---------------------------------------------------------------- */

struct frag {
    size_t start;
    size_t len;
    int32_t id; /* -1: raw text */
};

struct frags {
    struct frag *p;
    size_t n;
    size_t cap;
};

static int frags_push(struct frags *a, size_t start, size_t len, int32_t id)
{
    if (grow((void **)&a->p, &a->cap, a->n + 1, sizeof(*a->p)))
        return TOK_ENOMEM;
    a->p[a->n++] = (struct frag){start, len, id};
    return 0;
}

/* Text that must not be read as control tokens: sorted, disjoint byte ranges. */
struct plain {
    const struct tok_span *v;
    size_t n;
};

/* Whether [a, b) overlaps a plain range (binary search: the first range ending after a). */
static bool in_plain(const struct plain *pl, size_t a, size_t b)
{
    size_t lo = 0, hi = pl->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pl->v[mid].end <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < pl->n && pl->v[lo].start < b;
}

/* Cuts every raw fragment of `in` at each occurrence of token id's text (for a CONTROL
 * or UNKNOWN token, not where the occurrence touches plain text). */
static int split_special(const struct tok_vocab *v, const char *text, int32_t id,
                         const struct plain *pl, const struct frags *in, struct frags *out)
{
    const char *st = v->text + v->text_off[id];
    size_t sl = (size_t)(v->text_off[id + 1] - v->text_off[id]);
    bool control = v->type[id] == TOK_TYPE_CONTROL || v->type[id] == TOK_TYPE_UNKNOWN;
    out->n = 0;
    for (size_t k = 0; k < in->n; k++) {
        struct frag f = in->p[k];
        if (f.id >= 0) {
            if (frags_push(out, f.start, f.len, f.id))
                return TOK_ENOMEM;
            continue;
        }
        size_t pos = f.start, from = f.start, end = f.start + f.len;
        while (from < end) {
            const char *m = memmem(text + from, end - from, st, sl);
            if (!m)
                break;
            size_t at = (size_t)(m - text);
            if (control && in_plain(pl, at, at + sl)) {
                from = at + 1; /* text someone wrote: not a control token */
                continue;
            }
            if (at > pos && frags_push(out, pos, at - pos, -1))
                return TOK_ENOMEM;
            if (frags_push(out, at, sl, id))
                return TOK_ENOMEM;
            pos = at + sl;
            while (v->rstrip && v->rstrip[id] && pos < end && strchr(" \t\n\v\f\r", text[pos]) &&
                   text[pos])
                pos++;
            from = pos;
        }
        if (end > pos && frags_push(out, pos, end - pos, -1))
            return TOK_ENOMEM;
    }
    return 0;
}

static int partition(const struct tok_vocab *v, const char *text, size_t len, bool parse_special,
                     const struct plain *pl, struct frags *res)
{
    struct frags a = {0}, b = {0};
    if (len && frags_push(&a, 0, len, -1))
        return TOK_ENOMEM;
    bool present[256] = {false};
    for (size_t i = 0; i < len; i++)
        present[(uint8_t)text[i]] = true;
    int rc = 0;
    for (size_t k = 0; k < v->n_specials && !rc && len; k++) {
        int32_t id = v->specials[k];
        uint8_t t = v->type[id];
        if (!parse_special && (t == TOK_TYPE_CONTROL || t == TOK_TYPE_UNKNOWN))
            continue;
        const char *st = v->text + v->text_off[id];
        size_t sl = (size_t)(v->text_off[id + 1] - v->text_off[id]);
        if (!present[(uint8_t)st[0]] || !memmem(text, len, st, sl))
            continue; /* cheap rejection: most special tokens are absent */
        rc = split_special(v, text, id, pl, &a, &b);
        struct frags tmp = a;
        a = b;
        b = tmp;
    }
    free(b.p);
    if (rc) {
        free(a.p);
        return rc;
    }
    *res = a;
    return 0;
}

/* ---- entry point ------------------------------------------------------------------- */

static int encode(const struct tok_vocab *v, const char *text, size_t len, bool add_bos,
                  bool parse_special, const struct plain *pl, bool at_start, int32_t **ids_out,
                  size_t *n_out)
{
    *ids_out = NULL;
    *n_out = 0;
    if ((!text && len) || len > TOK_MAX_TEXT)
        return TOK_EINVAL;
    struct enc e = {.v = v};
    struct frags fr = {0};
    int rc = 0;
    if (add_bos && v->bos >= 0)
        rc = ids_push(&e.out, v->bos);
    if (!rc)
        rc = partition(v, text, len, parse_special, pl, &fr);
    bool prev_special = at_start; /* SPM: a fragment at the start gets the space prefix */
    for (size_t k = 0; k < fr.n && !rc; k++) {
        const struct frag *f = &fr.p[k];
        if (f->id >= 0) {
            rc = ids_push(&e.out, f->id);
            prev_special = true;
        } else if (v->kind == TOK_KIND_SPM) {
            rc = spm_encode(&e, text + f->start, f->len, v->add_space_prefix && prev_special);
            prev_special = false;
        } else {
            rc = bpe_encode(&e, text + f->start, f->len);
        }
    }
    if (!rc && !e.out.p)
        rc = grow((void **)&e.out.p, &e.out.cap, 1, sizeof(*e.out.p));
    free(fr.p);
    free(e.sym);
    free(e.heap);
    free(e.buf);
    if (rc) {
        free(e.out.p);
        return rc;
    }
    *ids_out = e.out.p;
    *n_out = e.out.n;
    return 0;
}

int tok_encode(const struct tok_vocab *v, const char *text, size_t len, bool add_bos,
               bool parse_special, int32_t **ids_out, size_t *n_out)
{
    struct plain none = {NULL, 0};
    return encode(v, text, len, add_bos, parse_special, &none, true, ids_out, n_out);
}

int tok_encode_continued(const struct tok_vocab *v, const char *text, size_t len,
                         bool parse_special, int32_t **ids_out, size_t *n_out)
{
    struct plain none = {NULL, 0};
    return encode(v, text, len, false, parse_special, &none, false, ids_out, n_out);
}

int tok_encode_plain(const struct tok_vocab *v, const char *text, size_t len, bool continued,
                     const struct tok_span *plain, size_t n_plain, int32_t **ids_out,
                     size_t *n_out)
{
    for (size_t i = 0; i < n_plain; i++)
        if (plain[i].start > plain[i].end || plain[i].end > len ||
            (i && plain[i].start < plain[i - 1].end))
            return TOK_EINVAL;
    struct plain pl = {plain, n_plain};
    return encode(v, text, len, false, true, &pl, !continued, ids_out, n_out);
}
