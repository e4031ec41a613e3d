/* cli.h - the chatd subcommands. Each takes the arguments after its own name
 * (argv[0] is the subcommand name) and returns the process exit code:
 * 0 success, 1 runtime failure, 2 usage or input error. */
#ifndef CHATD_CLI_H
#define CHATD_CLI_H

#include <stddef.h>

int cli_serve(int argc, char **argv);
/* cli_user.c: accounts and metering on the database (safe while the server runs). */
int cli_user(int argc, char **argv);
int cli_key(int argc, char **argv);
int cli_usage(int argc, char **argv);
int cli_devices(int argc, char **argv);
int cli_gen_model(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_generate(int argc, char **argv);
int cli_info(int argc, char **argv);
int cli_tokenize(int argc, char **argv);
int cli_detokenize(int argc, char **argv);
int cli_render_template(int argc, char **argv);
/* cli_pull.c, cli_models.c: download models, list the model directory. */
int cli_pull(int argc, char **argv);
int cli_models(int argc, char **argv);

/* The model directory for pull/models: config model_dir from the file (config_file,
 * else $CHATD_CONFIG), then the environment, then flag_dir when not NULL, with "~/"
 * expanded. *out (caller frees) or -1 with a message in err. */
int cli_model_dir(const char *config_file, const char *flag_dir, char **out, char *err,
                  size_t err_len);

/* "1.5 MiB": a byte count for people, into out (cli_pull.c). */
void cli_fmt_bytes(char *out, size_t len, double bytes);

#endif
