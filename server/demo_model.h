/* demo_model.h - the model chatd serves when none is configured or downloaded: a small
 * random-weight qwen2 model generated on first use, so `chatd serve` always starts
 * (its output is gibberish; `chatd pull` gets a real model). */
#ifndef CHATD_DEMO_MODEL_H
#define CHATD_DEMO_MODEL_H

#include <stddef.h>

/* File name of the demo model inside the model directory. */
#define SRV_DEMO_MODEL_NAME "chatd-demo.gguf"

/* Writes model_dir/chatd-demo.gguf unless a valid one is already there (creating
 * model_dir as needed) and puts its path into path_out. The file is built from a
 * byte-level BPE vocabulary made in code (no fixture files) and the project's model
 * generator, into a temporary file renamed into place, so concurrent callers and
 * crashes never leave a half-written model. The bytes are identical on every run.
 * Returns 0, or -1 with a message in err (path_out is then ""). Call from one thread. */
int srv_demo_model(const char *model_dir, char *path_out, size_t len, char *err, size_t err_len);

/* mkdir -p with mode 0755. Returns 0, or -1 with errno set. */
int srv_mkdirs(const char *path);

#endif
