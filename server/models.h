/* models.h - the models the server holds (private to server/): each is a model file
 * with its tokenizer, chat template and generation engine. Loaded at start-up, read-only
 * afterwards except inside the engine. */
#ifndef CHATD_MODELS_H
#define CHATD_MODELS_H

#include "config.h"
#include "engine.h"
#include "model.h"
#include "template.h"
#include "tokenizer.h"

#include <stdbool.h>
#include <stdint.h>

struct srv_model {
    char id[128];
    char path[1024];
    struct mdl_model *mdl;
    const struct tok_vocab *tok; /* the model's own (model.h) */
    struct tmpl *tmpl;
    char template_name[64];  /* "gguf" or the built-in's name */
    char *bos_text;          /* "" when none */
    char *eos_text;
    char fingerprint[96];    /* model file + template: stored with every turn's tokens */
    bool thinks;             /* the rendered generation prompt opens a <think> block */
    struct engine *eng;
    int64_t created;         /* file mtime, for /v1/models */
};

/* Opens the model, its tokenizer and template, and starts its engine. Returns 0, or -1
 * with a message in err. */
int srv_model_open(struct srv_model *sm, const char *path, const char *id,
                   const struct chatd_config *cfg, char *err, size_t err_len);
void srv_model_close(struct srv_model *sm);

/* Renders messages with the model's template. Returns a heap string or NULL with err. */
char *srv_model_render(const struct srv_model *sm, const struct tmpl_message *msgs, size_t n,
                       bool add_generation_prompt, char *err, size_t err_len);

/* Tokenizes a rendered prompt: special tokens are parsed only outside the byte ranges of
 * message contents, so a user cannot inject control tokens. Returns 0 or -1. */
int srv_model_tokenize_prompt(const struct srv_model *sm, const char *prompt,
                              const struct tmpl_message *msgs, size_t n, int32_t **ids,
                              size_t *n_ids);

/* Token ids stored with one earlier message: what the model was fed for it. */
struct srv_segment {
    const int32_t *ids;
    size_t n;
};

/* The ids of a rendered prompt built from stored segments where their text appears in
 * the prompt, in order, and the text between them tokenized as srv_model_tokenize_prompt
 * would (BOS added as the model wants). So earlier turns keep the exact ids the model
 * saw, and the KV cache of the previous turn stays a prefix. Checked: the ids read back
 * to the prompt text, else -1 (the caller tokenizes the whole prompt). On success
 * *tail_from is the index just past the last stored segment used and *n_used counts
 * the segments used. */
int srv_model_assemble_prompt(const struct srv_model *sm, const char *prompt,
                              const struct tmpl_message *msgs, size_t n_msgs,
                              const struct srv_segment *segs, size_t n_segs, int32_t **ids,
                              size_t *n_ids, size_t *tail_from, size_t *n_used);

#endif
