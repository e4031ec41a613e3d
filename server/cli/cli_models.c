/* cli_models.c - `chatd models [--model-dir DIR]`: lists the GGUF files of the model
 * directory with what their metadata says (architecture, parameter count, weight
 * type, context length) and their size, plus unfinished downloads (.gguf.part).
 * Files are only opened and read (gguf_open validates and maps them); no backend
 * starts, so listing is quick even for large models. Also home of cli_model_dir(),
 * the model directory lookup shared with `chatd pull`.
 */
#include "cli/cli.h"
#include "server.h"
#include "model.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

extern char **environ;

int cli_model_dir(const char *config_file, const char *flag_dir, char **out, char *err,
                  size_t err_len)
{
    struct chatd_config cfg;
    *out = NULL;
    cfg_init(&cfg);
    if (!config_file)
        config_file = getenv("CHATD_CONFIG");
    int rc = 0;
    if (config_file && *config_file)
        rc = cfg_load_file(&cfg, config_file, err, err_len);
    if (rc == 0)
        rc = cfg_load_env(&cfg, environ, err, err_len);
    if (rc == 0 && flag_dir)
        rc = cfg_set(&cfg, "model_dir", flag_dir, "flag --model-dir", err, err_len);
    if (rc == 0 && !cfg.model_dir[0]) {
        snprintf(err, err_len, "model_dir is empty");
        rc = -1;
    }
    if (rc == 0) {
        *out = cfg_expand_home(cfg.model_dir);
        if (!*out) {
            snprintf(err, err_len, "out of memory");
            rc = -1;
        }
    }
    cfg_fini(&cfg);
    return rc;
}

/* ---- one file ---------------------------------------------------------------------- */

struct model_row {
    char *name;
    bool partial;
    char arch[32];
    char params[16];
    char type[16];
    char ctx[16];
    char size[16];
    char problem[200]; /* non-empty: unreadable */
};

/* 2146624 -> "2.15M", 494032768 -> "494M", 1543714304 -> "1.54B" */
static void fmt_count(char *out, size_t len, uint64_t n)
{
    static const struct {
        double scale;
        const char *unit;
    } units[] = {{1e12, "T"}, {1e9, "B"}, {1e6, "M"}, {1e3, "K"}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        double v = (double)n / units[i].scale;
        if (v >= 1.0) {
            snprintf(out, len, v < 10 ? "%.2f%s" : v < 100 ? "%.1f%s" : "%.0f%s", v, units[i].unit);
            return;
        }
    }
    snprintf(out, len, "%llu", (unsigned long long)n);
}

/* The weight type: that of blk.0.attn_q.weight, else the most common type among
 * the matrices (tensors of two or more dimensions). */
static const char *weight_type(const struct gguf_file *f)
{
    const struct gguf_tensor *q = gguf_find_tensor(f, "blk.0.attn_q.weight");
    if (q)
        return gguf_type_name(q->type);
    uint64_t count[GGML_TYPE_COUNT] = {0};
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(f, i);
        if (t->n_dims >= 2 && t->type < GGML_TYPE_COUNT)
            count[t->type]++;
    }
    uint32_t best = 0;
    for (uint32_t t = 1; t < GGML_TYPE_COUNT; t++)
        if (count[t] > count[best])
            best = t;
    return count[best] ? gguf_type_name(best) : "-";
}

static void describe(struct model_row *r, const char *path)
{
    struct gguf_file *f = NULL;
    if (gguf_open(&f, path, r->problem, sizeof(r->problem)) != 0) {
        if (!r->problem[0])
            snprintf(r->problem, sizeof(r->problem), "cannot open");
        return;
    }
    char *arch = NULL;
    if (gguf_get_str(f, "general.architecture", &arch) == 0) {
        snprintf(r->arch, sizeof(r->arch), "%s", arch);
        char key[96];
        uint32_t n_ctx;
        snprintf(key, sizeof(key), "%s.context_length", arch);
        if (gguf_get_u32(f, key, &n_ctx) == 0)
            snprintf(r->ctx, sizeof(r->ctx), "%u", n_ctx);
        free(arch);
    }
    /* element counts were checked against the file size by gguf_open */
    uint64_t n_params = 0;
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(f, i);
        n_params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    }
    fmt_count(r->params, sizeof(r->params), n_params);
    snprintf(r->type, sizeof(r->type), "%s", weight_type(f));
    gguf_close(f);
}

/* ---- listing ----------------------------------------------------------------------- */

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcmp(s + n - m, suffix) == 0;
}

static int row_cmp(const void *a, const void *b)
{
    return strcmp(((const struct model_row *)a)->name, ((const struct model_row *)b)->name);
}

/* Collects the .gguf and .gguf.part entries of dir. Returns the count, or -1. */
static int collect(const char *dir, struct model_row **rows_out)
{
    DIR *d = opendir(dir);
    *rows_out = NULL;
    if (!d)
        return 0;
    struct model_row *rows = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        bool part = has_suffix(e->d_name, ".gguf.part");
        if (e->d_name[0] == '.' || (!part && !has_suffix(e->d_name, ".gguf")))
            continue;
        if (n == cap) {
            int ncap = cap ? cap * 2 : 16;
            struct model_row *p =
                ncap < 1 << 20 ? realloc(rows, (size_t)ncap * sizeof(*rows)) : NULL;
            if (!p)
                break;
            rows = p;
            cap = ncap;
        }
        memset(&rows[n], 0, sizeof(rows[n]));
        rows[n].name = strdup(e->d_name);
        rows[n].partial = part;
        if (rows[n].name)
            n++;
    }
    closedir(d);
    qsort(rows, (size_t)n, sizeof(*rows), row_cmp);
    *rows_out = rows;
    return n;
}

static void print_rows(const struct model_row *rows, int n)
{
    int w = 4;
    for (int i = 0; i < n; i++)
        if ((int)strlen(rows[i].name) > w)
            w = (int)strlen(rows[i].name);
    printf("%-*s  %-10s %8s  %-6s %8s  %10s\n", w, "NAME", "ARCH", "PARAMS", "TYPE", "CONTEXT",
           "SIZE");
    for (int i = 0; i < n; i++) {
        const struct model_row *r = &rows[i];
        if (r->partial)
            printf("%-*s  (partial download, %s so far; run the same chatd pull again to resume)\n",
                   w, r->name, r->size);
        else if (r->problem[0])
            printf("%-*s  (unreadable: %s)\n", w, r->name, r->problem);
        else
            printf("%-*s  %-10s %8s  %-6s %8s  %10s\n", w, r->name, r->arch[0] ? r->arch : "-",
                   r->params, r->type, r->ctx[0] ? r->ctx : "-", r->size);
    }
}

int cli_models(int argc, char **argv)
{
    const char *dir_flag = NULL, *config = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf(
                "usage: chatd models [--model-dir DIR] [--config FILE]\n"
                "Lists the GGUF models of the model directory (config model_dir, CHATD_MODEL_DIR).\n");
            return 0;
        }
        if ((strcmp(argv[i], "--model-dir") == 0 || strcmp(argv[i], "--config") == 0) &&
            i + 1 < argc) {
            if (argv[i][2] == 'm')
                dir_flag = argv[++i];
            else
                config = argv[++i];
            continue;
        }
        fprintf(
            stderr,
            "chatd models: unexpected argument '%s'\nusage: chatd models [--model-dir DIR] [--config FILE]\n",
            argv[i]);
        return 2;
    }
    char *dir = NULL, err[512];
    if (cli_model_dir(config, dir_flag, &dir, err, sizeof(err)) != 0) {
        fprintf(stderr, "chatd models: %s\n", err);
        return 2;
    }
    struct model_row *rows;
    int n = collect(dir, &rows);
    if (n == 0) {
        printf(
            "no models in %s\nget one with: chatd pull OWNER/REPO/FILE.gguf (see 'Real models' in the README)\n",
            dir);
        free(rows);
        free(dir);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        size_t len = strlen(dir) + strlen(rows[i].name) + 2;
        char *path = malloc(len);
        struct stat st;
        if (!path)
            continue;
        snprintf(path, len, "%s/%s", dir, rows[i].name);
        if (stat(path, &st) == 0)
            cli_fmt_bytes(rows[i].size, sizeof(rows[i].size), (double)st.st_size);
        if (!rows[i].partial)
            describe(&rows[i], path);
        free(path);
    }
    printf("models in %s\n", dir);
    print_rows(rows, n);
    for (int i = 0; i < n; i++)
        free(rows[i].name);
    free(rows);
    free(dir);
    return 0;
}
