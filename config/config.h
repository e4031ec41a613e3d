/* config.h - chatd's configuration: one struct chatd_config filled from defaults,
 * then an INI file, then CHATD_* environment variables, then command-line flags,
 * each later source overriding the earlier. Every option is listed once in
 * options.def. Errors name the key and where it came from (file:line, the
 * environment variable, or the flag); nothing is silently defaulted. */
#ifndef CHATD_CONFIG_H
#define CHATD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CFG_ERRMSG_LEN 512

/* A per-model price from a [pricing.MODEL] section, micro-units per million tokens. */
struct cfg_price {
    char *model;
    int64_t input_miss;
    int64_t input_hit;
    int64_t output;
};

struct chatd_config {
#define OPT_INT(sec, key, field, def, lo, hi, help) int64_t field;
#define OPT_STR(sec, key, field, def, help) char *field;
#define OPT_ENUM(sec, key, field, def, choices, help) char *field;
#include "options.def"
#undef OPT_INT
#undef OPT_STR
#undef OPT_ENUM
    struct cfg_price *prices;
    size_t n_prices;
    char *config_file; /* the file read, or NULL */
};

/* Error codes of the cfg_ functions (negative); the message names the key, the value
 * and where it came from. */
#define CFG_ERRORS(X)                                                                     \
    X(CFG_EIO, -1, "cannot read the config file")                                         \
    X(CFG_EINVAL, -2, "invalid value or argument")                                        \
    X(CFG_EUNKNOWN, -3, "unknown option")                                                 \
    X(CFG_ENOMEM, -4, "out of memory")

enum cfg_error {
#define CFG_ERR_ENUM_(name, code, text) name = code,
    CFG_ERRORS(CFG_ERR_ENUM_)
#undef CFG_ERR_ENUM_
};

/* Static text of a CFG_E* code; "unknown error" otherwise. */
const char *cfg_strerror(int code);

/* Fills cfg with the defaults. Caller frees with cfg_fini. */
void cfg_init(struct chatd_config *cfg);
void cfg_fini(struct chatd_config *cfg);

/* Applies the INI file at path. Returns 0, or a CFG_E* code with a message in err. */
int cfg_load_file(struct chatd_config *cfg, const char *path, char *err, size_t err_len);
/* Applies every CHATD_<KEY> variable of envp (NULL-terminated "K=V" strings); an
 * unknown CHATD_ variable is an error. CHATD_CONFIG is skipped (it names the file). */
int cfg_load_env(struct chatd_config *cfg, char **envp, char *err, size_t err_len);
/* Sets one option by key ("port") from a value; `source` names where it came from. */
int cfg_set(struct chatd_config *cfg, const char *key, const char *value, const char *source,
            char *err, size_t err_len);
/* True when `key` names an option. */
int cfg_has_key(const char *key);

/* The whole precedence chain for `chatd serve`-style commands: defaults, the file
 * named by --config or CHATD_CONFIG (optional), the environment, then the flags
 * (--key value or --key=value). Returns 0, 1 when --help was given (help printed
 * to `out`), or a CFG_E* code with a message in err. */
int cfg_from_args(struct chatd_config *cfg, int argc, char **argv, char **envp, FILE *out,
                  char *err, size_t err_len);

/* Prints every option with its default and its current value. */
void cfg_print_help(const struct chatd_config *cfg, const char *command, FILE *out);

/* The price for a model: its [pricing.MODEL] entry, else the defaults. */
struct cfg_price cfg_price_for(const struct chatd_config *cfg, const char *model);

/* Expands a leading "~/" using $HOME. Caller frees. */
char *cfg_expand_home(const char *path);

#endif
