/* grammar.h - constrained decoding: grammars that say which texts a reply may be, and
 * the per-token mask that keeps a sampler inside them.
 *
 * A grammar comes from the EBNF-like format below or from a JSON schema (translated to
 * that format first, so both paths meet in gram_compile). It is compiled once, is
 * immutable afterwards and reference-counted, so any number of generations on any
 * threads may match against it.
 *
 * Matching works on bytes. A gram_vocab holds every token's bytes in a trie; a
 * gram_matcher follows one generation: gram_matcher_mask gives the tokens that can
 * continue a valid text (each token's whole byte string must be a valid continuation,
 * and end-of-generation tokens are allowed once the text is complete), and
 * gram_matcher_accept advances by the token chosen. The matcher's states are the sets
 * of parser stacks a prefix leaves, interned and memoised as a lazily built automaton,
 * so a mask is computed once per distinct state and a transition once per (state, byte).
 *
 * The format (documented for callers in README.md, "Structured outputs"):
 *
 *     root    ::= "{" ws pair ("," ws pair)* "}"     # rules: name ::= alternatives
 *     pair    ::= string ws ":" ws value
 *     string  ::= "\"" [^"\\]* "\""                  # literals, classes, negated classes
 *     digit   ::= [0-9]                              # ranges; . is any character
 *     ws      ::= [ \t\n]{0,8}                       # x* x+ x? x{m} x{m,} x{m,n}
 *     value   ::= string | ("-"? digit+) | "null"    # groups, alternatives
 *
 * Literals and classes take \n \r \t \\ \" \' \] \[ \- \/ \xHH \uHHHH \UHHHHHHHH escapes;
 * classes and . match whole UTF-8 characters (code points, surrogates excluded). A rule
 * may span lines; `#` starts a comment. `root` is where a text starts. A rule that can
 * reach itself without consuming a byte (left recursion, `("a"?)*`) is refused.
 *
 * Threads: a gram and a gram_vocab are read-only after creation; a matcher belongs to
 * one generation.
 */
#ifndef CHATD_GRAMMAR_H
#define CHATD_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

#define GRAM_ERRORS(X)                                                                    \
    X(GRAM_ESYNTAX, -1, "grammar syntax error")                                           \
    X(GRAM_ESCHEMA, -2, "unsupported JSON schema")                                        \
    X(GRAM_ENOMEM, -3, "out of memory")                                                   \
    X(GRAM_EINVAL, -4, "invalid argument")                                                \
    X(GRAM_ELIMIT, -5, "grammar too large")                                               \
    X(GRAM_EJSON, -6, "invalid JSON")

enum gram_error {
#define GRAM_ERR_ENUM_(name, code, text) name = code,
    GRAM_ERRORS(GRAM_ERR_ENUM_)
#undef GRAM_ERR_ENUM_
};

const char *gram_strerror(int code);

/* ---- JSON documents (gram_json.c): what the schema translator reads ---- */

enum gram_json_kind {
    GJ_NULL,
    GJ_BOOL,
    GJ_NUMBER,
    GJ_STRING,
    GJ_ARRAY,
    GJ_OBJECT,
};

/* A parsed JSON value. Strings are NUL-terminated UTF-8 (len excludes the NUL; they may
 * contain NUL bytes); numbers keep their source text as well as their value; object
 * members keep their order (keys[i] names items[i]). */
struct gram_json {
    enum gram_json_kind kind;
    bool b;
    double num;
    bool is_int;      /* a number written without fraction or exponent */
    const char *str;  /* GJ_STRING: the value; GJ_NUMBER: the source text */
    size_t len;
    size_t n;         /* GJ_ARRAY, GJ_OBJECT */
    struct gram_json *items;
    const char **keys;
    size_t *key_lens;
};

/* Parses len bytes of JSON (nesting at most 128 deep). Returns the document (caller
 * frees with gram_json_free) or NULL with a message naming the byte offset in err. */
struct gram_json *gram_json_parse(const char *text, size_t len, char *err, size_t err_len);
void gram_json_free(struct gram_json *doc); /* accepts NULL */
/* The member `key` of an object, or NULL. */
const struct gram_json *gram_json_get(const struct gram_json *obj, const char *key);
/* Appends v as compact JSON (separators "," and ":"; non-ASCII kept). */
int gram_json_write(struct strbuf *out, const struct gram_json *v);

/* ---- JSON schema to grammar (gram_schema.c) ---- */

/* Appends the rules of a grammar for the JSON values `schema` accepts, the start rule
 * named `root_name`, every other rule name starting with `prefix` (so several schemas
 * can share one grammar text). Supported: type (string or list), object with
 * properties / required / additionalProperties, array with items / minItems /
 * maxItems, string with enum / const / pattern (a simple regex subset) / format (date,
 * time, date-time, uuid, email) / minLength / maxLength, number and integer with
 * minimum / maximum / exclusiveMinimum / exclusiveMaximum, boolean, null, enum,
 * const, anyOf, a one-element allOf, nullable, $ref into $defs / definitions or to
 * "#"; annotations (title, description, default, examples, $schema, $id, $comment,
 * deprecated, readOnly, writeOnly, strict) are ignored. Any other keyword fails with
 * GRAM_ESCHEMA and err naming it and where it is ("unsupported keyword 'not' at
 * /properties/a"), also copied to keyword (when not NULL) for the caller's param.
 * Generated texts are compact JSON with at most a little whitespace, and numbers
 * without exponents within about 15 digits, so a generation always ends. */
int gram_schema_ebnf(const struct gram_json *schema, const char *prefix, const char *root_name,
                     struct strbuf *out, char *err, size_t err_len, char *keyword,
                     size_t keyword_len);

/* Grammar text for any JSON value (object_only: any JSON object), start rule root_name,
 * other rules named with prefix. */
int gram_any_json_ebnf(const char *prefix, const char *root_name, bool object_only,
                       struct strbuf *out);

/* Appends s as a quoted EBNF literal ("..." with escapes). */
int gram_ebnf_literal(struct strbuf *out, const char *s, size_t len);

/* ---- compiled grammars (gram_ebnf.c) ---- */

struct gram;

/* Compiles grammar text whose start rule is `root` (NULL: "root"). Returns 0 and *out
 * (reference count 1; release with gram_unref), or a negative GRAM_E* code with err
 * naming the line and the problem. */
int gram_compile(struct gram **out, const char *text, size_t len, const char *root, char *err,
                 size_t err_len);
/* Takes one more reference (returns g); gram_unref drops one and frees at zero. Both are
 * thread-safe; gram_unref accepts NULL. */
struct gram *gram_ref(struct gram *g);
void gram_unref(struct gram *g);

/* ---- vocabularies and matchers (gram_match.c) ---- */

struct gram_vocab;

/* What a token is to the matcher. */
enum gram_tok_kind {
    GRAM_TOK_TEXT = 0,    /* matched by its bytes */
    GRAM_TOK_END = 1,     /* end of generation: allowed exactly when the text is complete */
    GRAM_TOK_SPECIAL = 2, /* never allowed while a grammar applies (control tokens); its
                             bytes are kept for gram_vocab_text (trigger detection) */
};

/* A vocabulary of n tokens: bytes[i] / lens[i] is token i's text, kinds[i] its enum
 * gram_tok_kind. A text token without bytes is never allowed. Copies what it needs.
 * NULL when out of memory. Caller frees with gram_vocab_free. */
struct gram_vocab *gram_vocab_new(uint32_t n, const char *const *bytes, const size_t *lens,
                                  const uint8_t *kinds);
void gram_vocab_free(struct gram_vocab *v); /* accepts NULL */
/* Token id's bytes (borrowed until gram_vocab_free; *len set), or NULL for a bad id. */
const char *gram_vocab_text(const struct gram_vocab *v, int32_t id, size_t *len);
uint32_t gram_vocab_size(const struct gram_vocab *v);
/* Number of trie nodes (for the benchmark's report). */
size_t gram_vocab_trie_nodes(const struct gram_vocab *v);

struct gram_matcher;

/* A matcher at the start of a text. Borrows v; takes a reference to g. NULL when out of
 * memory. */
struct gram_matcher *gram_matcher_new(struct gram *g, const struct gram_vocab *v);
void gram_matcher_free(struct gram_matcher *m); /* accepts NULL */

/* The tokens allowed next: a bitmap of gram_vocab_size bits (bit i of word i/32),
 * borrowed until the next call on m. NULL when out of memory. */
const uint32_t *gram_matcher_mask(struct gram_matcher *m);
/* Whether token id is allowed next (without computing the whole mask). */
bool gram_matcher_allows(struct gram_matcher *m, int32_t id);
/* Advances by token id. Returns 0, or GRAM_EINVAL when the token is not allowed (the
 * matcher is unchanged). An end token is allowed when the text is complete and leaves
 * the matcher finished. */
int gram_matcher_accept(struct gram_matcher *m, int32_t id);
/* Advances by raw bytes (not a token). Returns 0 or GRAM_EINVAL (unchanged). */
int gram_matcher_feed(struct gram_matcher *m, const char *bytes, size_t len);
/* The text so far is a complete sentence of the grammar. */
bool gram_matcher_accepting(const struct gram_matcher *m);
/* Complete, and no byte can follow: only an end token may come next. */
bool gram_matcher_done(const struct gram_matcher *m);
/* The first end token of the vocabulary, or -1. */
int32_t gram_vocab_end_token(const struct gram_vocab *v);

#endif
