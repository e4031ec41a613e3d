/* cli_template.c - `chatd render-template`: renders a chat template file with the
 * messages of a JSON file and prints exactly the result (no newline added), so a
 * template can be checked against another renderer byte for byte. A template error
 * (load or render) exits 1 with the template's message on stderr; bad usage or an
 * unreadable input exits 2.
 *
 * The messages file is a JSON array of {"role", "content"[, "reasoning_content"]}
 * objects, or an object with such an array under "messages". A null content is
 * passed as none.
 */
#include "cli/cli.h"
#include "model.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: chatd render-template --template FILE.jinja --messages FILE.json\n"
            "                             [--add-generation-prompt] [--bos-token S] [--eos-token S]\n"
            "                             [--builtin NAME] [--now-unix SECONDS]\n"
            "\n"
            "Renders a chat template and prints the result exactly (no newline added).\n"
            "  --template FILE        Jinja template file (or --builtin NAME: chatml, llama2,\n"
            "                         llama3, mistral, deepseek-r1)\n"
            "  --messages FILE        JSON array of {role, content[, reasoning_content]}\n"
            "  --add-generation-prompt  set add_generation_prompt to true\n"
            "  --bos-token S, --eos-token S  values of bos_token / eos_token (default \"\")\n"
            "  --now-unix SECONDS     clock for strftime_now (default: now)\n");
}

/* Reads a whole file. Returns NULL with errno set on failure; caller frees. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap)
            break;
        if (cap > ((size_t)64 << 20)) {
            free(buf);
            buf = NULL;
            errno = EFBIG;
            break;
        }
        char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    if (buf && ferror(f)) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf)
        *len = n;
    return buf;
}

/* Converts the messages JSON into tmpl_message structs borrowing jansson strings. */
static int load_messages(json_t *root, struct tmpl_message **out, size_t *n_out, char *err, size_t err_len)
{
    json_t *arr = json_is_object(root) ? json_object_get(root, "messages") : root;
    if (!json_is_array(arr)) {
        snprintf(err, err_len, "messages file must hold a JSON array of messages");
        return -1;
    }
    size_t n = json_array_size(arr);
    struct tmpl_message *m = calloc(n ? n : 1, sizeof(*m));
    if (!m) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        json_t *role = json_object_get(o, "role");
        json_t *content = json_object_get(o, "content");
        json_t *reasoning = json_object_get(o, "reasoning_content");
        if (!json_is_object(o) || !json_is_string(role) ||
            !(json_is_string(content) || json_is_null(content)) ||
            (reasoning && !json_is_string(reasoning) && !json_is_null(reasoning))) {
            snprintf(err, err_len, "message %zu: needs a string role and a string or null content", i);
            free(m);
            return -1;
        }
        m[i].role = json_string_value(role);
        m[i].content = json_string_value(content);
        m[i].reasoning_content = json_string_value(reasoning);
    }
    *out = m;
    *n_out = n;
    return 0;
}

int cli_render_template(int argc, char **argv)
{
    const char *tpath = NULL, *mpath = NULL, *builtin = NULL;
    struct tmpl_params p = tmpl_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--add-generation-prompt") == 0) {
            p.add_generation_prompt = true;
            continue;
        }
        if (!next) {
            fprintf(stderr, "chatd render-template: unknown option or missing value: %s\n", a);
            usage(stderr);
            return 2;
        }
        if (strcmp(a, "--template") == 0)
            tpath = next;
        else if (strcmp(a, "--builtin") == 0)
            builtin = next;
        else if (strcmp(a, "--messages") == 0)
            mpath = next;
        else if (strcmp(a, "--bos-token") == 0)
            p.bos_token = next;
        else if (strcmp(a, "--eos-token") == 0)
            p.eos_token = next;
        else if (strcmp(a, "--now-unix") == 0) {
            char *end;
            errno = 0;
            long long v = strtoll(next, &end, 10);
            if (errno || *end || v <= 0) {
                fprintf(stderr, "chatd render-template: --now-unix: not a positive integer: %s\n", next);
                return 2;
            }
            p.now_unix = v;
        } else {
            fprintf(stderr, "chatd render-template: unknown option: %s\n", a);
            usage(stderr);
            return 2;
        }
        i++;
    }
    if ((!tpath && !builtin) || (tpath && builtin) || !mpath) {
        fprintf(stderr, "chatd render-template: need --template FILE (or --builtin NAME) and --messages FILE\n");
        usage(stderr);
        return 2;
    }

    int ret = 2;
    size_t tlen = 0;
    char *src = NULL;
    if (builtin) {
        const char *b = tmpl_builtin(builtin);
        if (!b) {
            fprintf(stderr, "chatd render-template: --builtin: unknown template '%s'\n", builtin);
            return 2;
        }
        src = strdup(b);
        tlen = strlen(b);
    } else {
        src = read_file(tpath, &tlen);
    }
    if (!src) {
        fprintf(stderr, "chatd render-template: %s: %s\n", tpath ? tpath : builtin, strerror(errno));
        return 2;
    }
    json_error_t jerr;
    json_t *root = json_load_file(mpath, JSON_DECODE_ANY, &jerr);
    if (!root) {
        fprintf(stderr, "chatd render-template: %s:%d: %s\n", mpath, jerr.line, jerr.text);
        goto out_src;
    }
    char err[1024];
    struct tmpl_message *msgs = NULL;
    size_t n_msgs = 0;
    if (load_messages(root, &msgs, &n_msgs, err, sizeof(err)) < 0) {
        fprintf(stderr, "chatd render-template: %s: %s\n", mpath, err);
        goto out_json;
    }
    p.messages = msgs;
    p.n_messages = n_msgs;

    ret = 1;
    struct tmpl *t = tmpl_new(src, tlen, err, sizeof(err));
    if (!t) {
        fprintf(stderr, "%s\n", err);
        goto out_msgs;
    }
    char *text = NULL;
    size_t text_len = 0;
    if (tmpl_render(t, &p, &text, &text_len, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
    } else if (fwrite(text, 1, text_len, stdout) != text_len || fflush(stdout) != 0) {
        fprintf(stderr, "chatd render-template: write failed: %s\n", strerror(errno));
    } else {
        ret = 0;
    }
    free(text);
    tmpl_free(t);
out_msgs:
    free(msgs);
out_json:
    json_decref(root);
out_src:
    free(src);
    return ret;
}
