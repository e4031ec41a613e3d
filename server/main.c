/* main.c - the chatd executable: dispatches to a subcommand. Only this file and the
 * cli/ files may end the process. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
};

static const struct command commands[] = {
    {"serve", cli_serve, "run the HTTP server"},
    {"user", cli_user, "add or list users (user add NAME [--admin] [--quota N], user list)"},
    {"key", cli_key, "create, revoke or list API keys (key create USER, key revoke PREFIX)"},
    {"usage", cli_usage, "per-user token usage and cost ([--user NAME] [--since DATE])"},
    {"devices", cli_devices, "list Vulkan devices and the --backend auto choice"},
    {"gen-model", cli_gen_model, "write a random-weight GGUF model"},
    {"eval", cli_eval, "print the top logits of given token ids (JSON)"},
    {"bench", cli_bench, "measure prefill and decode tokens/s"},
    {"generate", cli_generate, "continue a prompt (--json for ids, text, top logits)"},
    {"info", cli_info, "describe a GGUF model file"},
    {"tokenize", cli_tokenize, "print the token ids of stdin (--model FILE [--bos])"},
    {"detokenize", cli_detokenize, "print the text of token ids on stdin (--model FILE)"},
    {"render-template", cli_render_template, "render a chat template with messages from a JSON file"},
    {"pull", cli_pull, "download a GGUF model (URL or OWNER/REPO/FILE.gguf [--sha256 HEX])"},
    {"models", cli_models, "list the models in the model directory"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: chatd COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-16s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\nchatd COMMAND --help shows the options of a command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "chatd: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
