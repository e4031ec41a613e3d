/* tokenizer.h - the two tokenizers of GGUF models: SentencePiece ("llama": score-driven
 * bigram merges, byte fallback to <0xNN>, leading-space rule) and byte-level BPE
 * ("gpt2": bytes mapped to printable code points, pre-tokenizer regex chosen by
 * tokenizer.ggml.pre, merges by rank). Both produce the ids llama.cpp produces.
 *
 * A struct tok_vocab is loaded from an open GGUF file (a model or a vocab-only file)
 * and copies what it needs, so the file may be closed afterwards. After loading it is
 * immutable: any number of threads may encode and decode with it concurrently.
 */
#ifndef CHATD_TOKENIZER_H
#define CHATD_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gguf_file;

#define TOK_ERRORS(X)                                                                     \
    X(TOK_EFORMAT, -1, "bad tokenizer metadata")                                          \
    X(TOK_ENOMEM, -2, "out of memory")                                                    \
    X(TOK_EUNSUPPORTED, -3, "unsupported tokenizer")                                      \
    X(TOK_EINVAL, -4, "invalid argument")                                                 \
    X(TOK_ERANGE, -5, "token id out of range")

enum tok_error {
#define TOK_ERR_ENUM_(name, code, text) name = code,
    TOK_ERRORS(TOK_ERR_ENUM_)
#undef TOK_ERR_ENUM_
};

const char *tok_strerror(int code);

enum tok_kind {
    TOK_KIND_SPM, /* tokenizer.ggml.model = "llama" */
    TOK_KIND_BPE, /* tokenizer.ggml.model = "gpt2" */
};

/* tokenizer.ggml.token_type values. */
enum tok_type {
    TOK_TYPE_UNDEFINED = 0,
    TOK_TYPE_NORMAL = 1,
    TOK_TYPE_UNKNOWN = 2,
    TOK_TYPE_CONTROL = 3,
    TOK_TYPE_USER_DEFINED = 4,
    TOK_TYPE_UNUSED = 5,
    TOK_TYPE_BYTE = 6,
};

struct tok_vocab;

/* Loads the vocabulary of `f` (R11, R12: key types and counts, every vocab array of
 * length n_vocab, special ids < n_vocab, byte tokens exactly <0xHH>). On failure
 * returns a negative TOK_E* code, sets *out to NULL and writes one line naming the key
 * and problem into err. Free with tok_free. */
int tok_load(struct tok_vocab **out, const struct gguf_file *f, char *err, size_t err_len);
void tok_free(struct tok_vocab *v); /* accepts NULL */

int32_t tok_n_vocab(const struct tok_vocab *v);
int32_t tok_bos(const struct tok_vocab *v); /* -1 when the vocabulary has none */
int32_t tok_eos(const struct tok_vocab *v);
int32_t tok_unk(const struct tok_vocab *v);
int32_t tok_pad(const struct tok_vocab *v);
bool tok_add_bos(const struct tok_vocab *v); /* does the model want BOS prepended? */
bool tok_add_eos(const struct tok_vocab *v);
/* SPM vocabularies that put a space before each text fragment tok_encode reads. */
bool tok_add_space_prefix(const struct tok_vocab *v);
enum tok_kind tok_kind(const struct tok_vocab *v);
const char *tok_kind_name(const struct tok_vocab *v); /* "llama" or "gpt2" */
const char *tok_pre_name(const struct tok_vocab *v);  /* tokenizer.ggml.pre, "default" if absent */

/* End of generation: EOS, EOT, EOM and tokens whose text is one of <|eot_id|>,
 * <|im_end|>, <|end|>, <end_of_turn>, <|endoftext|>, <|eom_id|>, <EOT>, plus the FIM
 * pad/repo/file-separator tokens, as llama.cpp decides. False for ids out of range. */
bool tok_is_eog(const struct tok_vocab *v, int32_t id);

/* The token's text as stored in the vocabulary (borrowed until tok_free, not
 * NUL-terminated; *len set), or NULL for an id out of range. */
const char *tok_text(const struct tok_vocab *v, int32_t id, size_t *len);
/* enum tok_type of the token (texts like <|im_end|> are forced to CONTROL), or -1. */
int tok_type(const struct tok_vocab *v, int32_t id);
/* CONTROL and USER_DEFINED tokens: tok_encode with parse_special matches their text as a
 * whole, and they end an SPM text fragment. */
bool tok_is_whole(const struct tok_vocab *v, int32_t id);
/* Id of the token whose text is exactly `text` (NUL-terminated), or -1. */
int32_t tok_find(const struct tok_vocab *v, const char *text);
int32_t tok_findn(const struct tok_vocab *v, const char *text, size_t len);

/* Tokenizes len bytes of text (any bytes; invalid UTF-8 is encoded byte by byte).
 * add_bos prepends BOS (when the vocabulary has one). With parse_special, the text of
 * CONTROL tokens (e.g. <|im_start|>) becomes that token; USER_DEFINED tokens (e.g.
 * <think>) are matched either way. *ids_out (caller frees with free()) holds *n_out
 * ids; it is non-NULL on success even when *n_out is 0. */
int tok_encode(const struct tok_vocab *v, const char *text, size_t len, bool add_bos,
               bool parse_special, int32_t **ids_out, size_t *n_out);
/* tok_encode of text that continues a text fragment already tokenized (SPM: no space
 * prefix before it, as there is none inside a fragment). */
int tok_encode_continued(const struct tok_vocab *v, const char *text, size_t len,
                         bool parse_special, int32_t **ids_out, size_t *n_out);

/* The bytes token `id` renders to. CONTROL and UNKNOWN tokens render their text only
 * when `special` is set (else nothing). Copies min(len, size) bytes into buf and
 * returns the piece's full size; TOK_ERANGE for a bad id. */
int tok_piece(const struct tok_vocab *v, int32_t id, char *buf, size_t len, bool special);

#define TOK_DECODE_SPECIAL 1u      /* render CONTROL/UNKNOWN token text */
#define TOK_DECODE_STRIP_SPACE 2u  /* drop a leading space of the first non-empty piece (SPM prefix) */
/* The inverse of tok_encode with parse_special: the text after each token matched as a
 * whole (tok_is_whole) starts a fragment of its own, whose leading space (SPM prefix)
 * is dropped too. */
#define TOK_DECODE_FRAGMENTS 4u

/* Concatenated pieces of n ids into *out (caller frees with free(); NUL-terminated
 * for convenience, *out_len excludes the NUL). No space clean-up is applied, so
 * decode(encode(s)) == s for BPE vocabularies, and for SPM with TOK_DECODE_STRIP_SPACE. */
int tok_decode(const struct tok_vocab *v, const int32_t *ids, size_t n, unsigned flags,
               char **out, size_t *out_len);

/* Incremental detokenizer for streaming: only ever emits whole UTF-8 characters; an
 * incomplete tail is held back until the next piece completes it; bytes that can
 * never form a valid character become U+FFFD (an incomplete tail at flush too).
 * Caller-owned storage: tok_stream_init ... tok_stream_fini. */
struct tok_stream {
    const struct tok_vocab *v;
    bool special;      /* render CONTROL tokens */
    uint8_t pend[4];   /* held-back start of a character */
    size_t n_pend;
    char *out;         /* last output, borrowed until the next call */
    size_t out_cap;
};

void tok_stream_init(struct tok_stream *s, const struct tok_vocab *v, bool special);
/* Appends token id; text and len receive the bytes now complete (borrowed until the next
 * call on s; may be empty). TOK_ERANGE for a bad id. */
int tok_stream_push(struct tok_stream *s, int32_t id, const char **text, size_t *len);
/* Emits whatever is held back (as U+FFFD) and resets the stream. */
int tok_stream_flush(struct tok_stream *s, const char **text, size_t *len);
void tok_stream_fini(struct tok_stream *s);

/* ---- prompts (tok_prompt.c) ---- */

/* Tokenizes a rendered chat prompt (no BOS added): special tokens are parsed only
 * outside the n message contents (in order; NULL entries are skipped), so text a user
 * wrote never becomes a control token. Returns 0, or a negative TOK_E* code. */
int tok_encode_prompt(const struct tok_vocab *v, const char *prompt,
                      const char *const *contents, size_t n, int32_t **ids, size_t *n_ids);

/* Whether s (NUL-terminated) holds the text of a CONTROL token. */
bool tok_text_has_control(const struct tok_vocab *v, const char *s);

/* tok_encode_prompt, where besides the contents every occurrence of a guarded string
 * (text from the request that the template renders outside the contents, e.g. the tools'
 * JSON) that carries the text of a control token is tokenized as plain text. */
int tok_encode_prompt_guarded(const struct tok_vocab *v, const char *prompt,
                              const char *const *contents, size_t n,
                              const char *const *guards, size_t n_guards, int32_t **ids,
                              size_t *n_ids);

/* Token ids stored with one earlier message: what the model was fed for it. */
struct tok_segment {
    const int32_t *ids;
    size_t n;
};

/* The ids of a rendered prompt built from stored segments where their text appears in
 * the prompt, in order, and the text between them tokenized as tok_encode_prompt would
 * (BOS added as the model wants). So earlier turns keep the exact ids the model saw,
 * and the KV cache of the previous turn stays a prefix. Checked: the ids read back to
 * the prompt text, else TOK_EFORMAT (the caller tokenizes the whole prompt). On
 * success *tail_from is the index just past the last stored segment used and *n_used
 * counts the segments used. */
int tok_assemble_prompt(const struct tok_vocab *v, const char *prompt,
                        const char *const *contents, size_t n, const struct tok_segment *segs,
                        size_t n_segs, int32_t **ids, size_t *n_ids, size_t *tail_from,
                        size_t *n_used);

#endif
