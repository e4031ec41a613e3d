/* tok_impl.h - private to the tokenizer (tokenizer.c loads and decodes, tok_encode.c
 * encodes): the loaded vocabulary and the lookups both halves share. */
#ifndef CHATD_TOK_IMPL_H
#define CHATD_TOK_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer.h"

#define TOK_MAX_REGEX 6

struct tok_vocab {
    enum tok_kind kind;
    char pre[64];
    int32_t n_vocab;

    char *text;          /* all token texts, concatenated */
    uint64_t *text_off;  /* [n_vocab + 1] */
    float *scores;       /* [n_vocab], 0 when the file has none */
    uint8_t *type;       /* [n_vocab] enum tok_type */
    uint8_t *eog;        /* [n_vocab] 1 = end of generation */

    int32_t *tab;        /* text -> id, open addressing, -1 = empty */
    size_t tab_mask;

    uint64_t *mkey;      /* merges: (left id << 32 | right id) + 1, 0 = empty */
    uint64_t *mval;      /* rank << 32 | merged id */
    size_t m_mask;

    int32_t byte_tok[256];  /* SPM: id of <0xNN>; BPE: id of the byte's code point */
    uint32_t byte_cp[256];  /* BPE byte -> printable code point */
    int16_t cp_byte[324];   /* BPE code point (< 324) -> byte, -1 if none */

    int32_t *specials;   /* CONTROL / USER_DEFINED / UNKNOWN ids, longest text first */
    size_t n_specials;

    char *piece;         /* rendered pieces (special tokens as text) */
    uint64_t *piece_off; /* [n_vocab + 1] */

    int32_t bos, eos, unk, pad;
    bool add_bos, add_eos, add_space_prefix, ignore_merges;

    pcre2_code *re[TOK_MAX_REGEX];
    int n_re;
};

/* tok_prompt.c: whether s holds the text of a CONTROL token; tokenizes len bytes with or
 * without special-token parsing, appending to *ids (realloc'd). */
bool tok_has_control_text(const struct tok_vocab *v, const char *s);
int tok_encode_part(const struct tok_vocab *v, const char *s, size_t len, bool special,
                    int32_t **ids, size_t *n);

/* Hash of a byte string for the text table. */
uint64_t tok_hash(const char *s, size_t n);
/* Merge (left, right) -> rank and merged id; false when the pair does not merge. */
bool tok_merge_lookup(const struct tok_vocab *v, int32_t left, int32_t right, uint32_t *rank,
                      int32_t *merged);
/* Compiles the pre-tokenizer regexes for v->pre; fills v->re, v->n_re,
 * v->ignore_merges. Returns 0 or TOK_EUNSUPPORTED/TOK_ENOMEM with a message. */
int tok_pre_init(struct tok_vocab *v, bool *add_bos_default, char *err, size_t err_len);

#endif
