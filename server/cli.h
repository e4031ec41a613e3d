/* cli.h - the chatd subcommands. Each takes the arguments after its own name
 * (argv[0] is the subcommand name) and returns the process exit code:
 * 0 success, 1 runtime failure, 2 usage or input error. */
#ifndef CHATD_CLI_H
#define CHATD_CLI_H

int cli_serve(int argc, char **argv);
int cli_devices(int argc, char **argv);
int cli_gen_model(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_generate(int argc, char **argv);
int cli_info(int argc, char **argv);
int cli_tokenize(int argc, char **argv);
int cli_detokenize(int argc, char **argv);

#endif
