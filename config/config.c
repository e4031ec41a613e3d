/* config.c - fills struct chatd_config from defaults, an INI file, CHATD_* environment
 * variables and flags, in that order (see config.h). The option table in options.def is
 * the single list of options; parsing, --help and validation are all driven by it.
 * Runs on the main thread before anything else starts. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum opt_kind { OPT_KIND_INT, OPT_KIND_STR, OPT_KIND_ENUM };

struct opt {
    const char *section;
    const char *key;
    enum opt_kind kind;
    size_t offset;
    int64_t def_int;
    const char *def_str;
    int64_t lo, hi;
    const char *choices;
    const char *help;
};

static const struct opt opts[] = {
#define OPT_INT(sec, k, field, def, l, h, hl) \
    {#sec, #k, OPT_KIND_INT, offsetof(struct chatd_config, field), def, NULL, l, h, NULL, hl},
#define OPT_STR(sec, k, field, def, hl) \
    {#sec, #k, OPT_KIND_STR, offsetof(struct chatd_config, field), 0, def, 0, 0, NULL, hl},
#define OPT_ENUM(sec, k, field, def, ch, hl) \
    {#sec, #k, OPT_KIND_ENUM, offsetof(struct chatd_config, field), 0, def, 0, 0, ch, hl},
#include "options.def"
#undef OPT_INT
#undef OPT_STR
#undef OPT_ENUM
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

static const struct opt *find_opt(const char *key)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (strcmp(opts[i].key, key) == 0)
            return &opts[i];
    return NULL;
}

int cfg_has_key(const char *key)
{
    return find_opt(key) != NULL;
}

static int64_t *int_field(struct chatd_config *cfg, const struct opt *o)
{
    return (int64_t *)((char *)cfg + o->offset);
}

static char **str_field(struct chatd_config *cfg, const struct opt *o)
{
    return (char **)((char *)cfg + o->offset);
}

void cfg_init(struct chatd_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < N_OPTS; i++) {
        if (opts[i].kind == OPT_KIND_INT)
            *int_field(cfg, &opts[i]) = opts[i].def_int;
        else
            *str_field(cfg, &opts[i]) = strdup(opts[i].def_str);
    }
}

void cfg_fini(struct chatd_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < N_OPTS; i++)
        if (opts[i].kind != OPT_KIND_INT)
            free(*str_field(cfg, &opts[i]));
    for (size_t i = 0; i < cfg->n_prices; i++)
        free(cfg->prices[i].model);
    free(cfg->prices);
    free(cfg->config_file);
    memset(cfg, 0, sizeof(*cfg));
}

/* Parses a whole decimal integer; rejects empty strings, junk and overflow. */
static bool parse_int(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    while (isspace((unsigned char)*s))
        s++;
    if (!*s)
        return false;
    long long v = strtoll(s, &end, 10);
    while (isspace((unsigned char)*end))
        end++;
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static bool choice_ok(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0)
            return true;
        if (!bar)
            break;
        p = bar + 1;
    }
    return false;
}

static int set_opt(struct chatd_config *cfg, const struct opt *o, const char *value,
                   const char *source, char *err, size_t err_len)
{
    if (o->kind == OPT_KIND_INT) {
        int64_t v;
        if (!parse_int(value, &v)) {
            snprintf(err, err_len, "%s: %s: '%s' is not a whole number", source, o->key, value);
            return CFG_EINVAL;
        }
        if (v < o->lo || v > o->hi) {
            snprintf(err, err_len, "%s: %s: %lld is out of range [%lld, %lld]", source, o->key,
                     (long long)v, (long long)o->lo, (long long)o->hi);
            return CFG_EINVAL;
        }
        *int_field(cfg, o) = v;
        return 0;
    }
    if (o->kind == OPT_KIND_ENUM && !choice_ok(o->choices, value)) {
        snprintf(err, err_len, "%s: %s: '%s' is not one of %s", source, o->key, value, o->choices);
        return CFG_EINVAL;
    }
    char *copy = strdup(value);
    if (!copy) {
        snprintf(err, err_len, "%s: %s: out of memory", source, o->key);
        return CFG_ENOMEM;
    }
    free(*str_field(cfg, o));
    *str_field(cfg, o) = copy;
    return 0;
}

const char *cfg_strerror(int code)
{
    switch (code) {
#define CFG_ERR_CASE_(name, c, text)                                                      \
    case c:                                                                               \
        return text;
        CFG_ERRORS(CFG_ERR_CASE_)
#undef CFG_ERR_CASE_
    default:
        return "unknown error";
    }
}

int cfg_set(struct chatd_config *cfg, const char *key, const char *value, const char *source,
            char *err, size_t err_len)
{
    const struct opt *o = find_opt(key);
    if (!o) {
        snprintf(err, err_len, "%s: unknown option '%s'", source, key);
        return CFG_EUNKNOWN;
    }
    return set_opt(cfg, o, value, source, err, err_len);
}

/* ---- INI file ---- */

struct ini_ctx {
    struct chatd_config *cfg;
    const char *path;
    char msg[CFG_ERRMSG_LEN]; /* the problem, without the file:line prefix */
};

static struct cfg_price *price_entry(struct chatd_config *cfg, const char *model)
{
    for (size_t i = 0; i < cfg->n_prices; i++)
        if (strcmp(cfg->prices[i].model, model) == 0)
            return &cfg->prices[i];
    struct cfg_price *p = realloc(cfg->prices, (cfg->n_prices + 1) * sizeof(*p));
    if (!p)
        return NULL;
    cfg->prices = p;
    p = &cfg->prices[cfg->n_prices];
    p->model = strdup(model);
    if (!p->model)
        return NULL;
    p->input_miss = cfg->price_input_miss;
    p->input_hit = cfg->price_input_hit;
    p->output = cfg->price_output;
    cfg->n_prices++;
    return p;
}

/* [pricing.MODEL] sections: input_miss, input_hit, output in micro-units per million. */
static int ini_price(struct ini_ctx *c, const char *model, const char *name, const char *value)
{
    int64_t v;
    if (!*model) {
        snprintf(c->msg, sizeof(c->msg), "[pricing.]: empty model name");
        return 0;
    }
    if (!parse_int(value, &v) || v < 0) {
        snprintf(c->msg, sizeof(c->msg), "pricing.%s.%s: '%s' is not a non-negative whole number",
                 model, name, value);
        return 0;
    }
    struct cfg_price *p = price_entry(c->cfg, model);
    if (!p) {
        snprintf(c->msg, sizeof(c->msg), "out of memory");
        return 0;
    }
    if (strcmp(name, "input_miss") == 0)
        p->input_miss = v;
    else if (strcmp(name, "input_hit") == 0)
        p->input_hit = v;
    else if (strcmp(name, "output") == 0)
        p->output = v;
    else {
        snprintf(c->msg, sizeof(c->msg), "unknown key '%s' in [pricing.%s] (input_miss, input_hit, output)",
                 name, model);
        return 0;
    }
    return 1;
}

static int on_ini_line(void *user, const char *section, const char *name, const char *value)
{
    struct ini_ctx *c = user;
    if (strncmp(section, "pricing.", 8) == 0)
        return ini_price(c, section + 8, name, value);
    const struct opt *o = find_opt(name);
    if (!o) {
        snprintf(c->msg, sizeof(c->msg), "unknown key '%s' in [%s]", name, section);
        return 0;
    }
    if (strcmp(o->section, section) != 0) {
        snprintf(c->msg, sizeof(c->msg), "key '%s' belongs in [%s], not [%s]", name, o->section,
                 section);
        return 0;
    }
    char err[CFG_ERRMSG_LEN];
    if (set_opt(c->cfg, o, value, "", err, sizeof(err)) != 0) {
        snprintf(c->msg, sizeof(c->msg), "%s", err + 2); /* drop the empty source's ": " */
        return 0;
    }
    return 1;
}

int cfg_load_file(struct chatd_config *cfg, const char *path, char *err, size_t err_len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_len, "%s: cannot open config file: %s", path, strerror(errno));
        return CFG_EIO;
    }
    struct ini_ctx c = {.cfg = cfg, .path = path};
    int line = ini_parse_file(f, on_ini_line, &c);
    fclose(f);
    if (line != 0) {
        snprintf(err, err_len, "%s:%d: %s", path, line, c.msg[0] ? c.msg : "syntax error");
        return CFG_EINVAL;
    }
    free(cfg->config_file);
    cfg->config_file = strdup(path);
    return 0;
}

/* ---- environment ---- */

int cfg_load_env(struct chatd_config *cfg, char **envp, char *err, size_t err_len)
{
    for (char **e = envp; e && *e; e++) {
        if (strncmp(*e, "CHATD_", 6) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        char var[128];
        size_t n = (size_t)(eq - *e);
        if (n >= sizeof(var))
            n = sizeof(var) - 1;
        memcpy(var, *e, n);
        var[n] = 0;
        /* Variables that are not options: the config file, the model hub of `chatd pull`,
         * and test-only settings. */
        if (strcmp(var, "CHATD_CONFIG") == 0 || strcmp(var, "CHATD_HUB_URL") == 0 ||
            strcmp(var, "CHATD_HUB_TOKEN") == 0 || strcmp(var, "CHATD_FIXTURES") == 0 ||
            strcmp(var, "CHATD_BIN") == 0)
            continue;
        char key[128];
        for (size_t i = 0; i <= strlen(var + 6); i++)
            key[i] = (char)tolower((unsigned char)var[6 + i]);
        if (!find_opt(key)) {
            snprintf(err, err_len, "environment %s: unknown option '%s'", var, key);
            return CFG_EUNKNOWN;
        }
        char source[160];
        snprintf(source, sizeof(source), "environment %s", var);
        int rc = cfg_set(cfg, key, eq + 1, source, err, err_len);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- flags ---- */

/* "--max-body-bytes" -> "max_body_bytes" in buf; false when not a long flag. */
static bool flag_key(const char *arg, char *buf, size_t len)
{
    if (strncmp(arg, "--", 2) != 0 || !arg[2])
        return false;
    size_t i = 0;
    for (const char *p = arg + 2; *p && *p != '=' && i + 1 < len; p++)
        buf[i++] = *p == '-' ? '_' : *p;
    buf[i] = 0;
    return true;
}

int cfg_from_args(struct chatd_config *cfg, int argc, char **argv, char **envp, FILE *out,
                  char *err, size_t err_len)
{
    const char *file = NULL;
    for (char **e = envp; e && *e; e++)
        if (strncmp(*e, "CHATD_CONFIG=", 13) == 0)
            file = *e + 13;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cfg_print_help(cfg, argv[0], out);
            return 1;
        }
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                snprintf(err, err_len, "flag --config: missing value");
                return CFG_EINVAL;
            }
            file = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            file = argv[i] + 9;
        }
    }
    int rc = file && *file ? cfg_load_file(cfg, file, err, err_len) : 0;
    rc = rc ? rc : cfg_load_env(cfg, envp, err, err_len);
    if (rc != 0)
        return rc;
    for (int i = 1; i < argc; i++) {
        char key[128];
        if (strcmp(argv[i], "--config") == 0) {
            i++;
            continue;
        }
        if (strncmp(argv[i], "--config=", 9) == 0)
            continue;
        if (!flag_key(argv[i], key, sizeof(key))) {
            snprintf(err, err_len, "unexpected argument '%s'", argv[i]);
            return CFG_EINVAL;
        }
        char source[160];
        snprintf(source, sizeof(source), "flag --%.100s", argv[i] + 2);
        char *eq = strchr(source, '=');
        if (eq)
            *eq = 0;
        const char *value = strchr(argv[i], '=');
        if (value) {
            value++;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            snprintf(err, err_len, "%s: missing value", source);
            return CFG_EINVAL;
        }
        if (!find_opt(key)) {
            snprintf(err, err_len, "%s: unknown option '%s'", source, key);
            return CFG_EUNKNOWN;
        }
        rc = cfg_set(cfg, key, value, source, err, err_len);
        if (rc != 0)
            return rc;
    }
    return 0;
}

void cfg_print_help(const struct chatd_config *cfg, const char *command, FILE *out)
{
    (void)cfg;
    fprintf(out, "usage: chatd %s [--config FILE] [--OPTION VALUE ...]\n\n", command);
    fprintf(out, "Each option is read from, later winning: its default, the config file\n"
                 "(--config or CHATD_CONFIG; INI, [section] key = value), the environment\n"
                 "variable CHATD_<OPTION>, and the flag --<option>.\n\n");
    const char *sec = "";
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        if (strcmp(sec, o->section) != 0) {
            sec = o->section;
            fprintf(out, "[%s]\n", sec);
        }
        char flag[64];
        snprintf(flag, sizeof(flag), "--%s", o->key);
        for (char *p = flag + 2; *p; p++)
            if (*p == '_')
                *p = '-';
        char def[160];
        if (o->kind == OPT_KIND_INT)
            snprintf(def, sizeof(def), "%lld", (long long)o->def_int);
        else
            snprintf(def, sizeof(def), "\"%s\"", o->def_str);
        fprintf(out, "  %-24s %s (default %s", flag, o->help, def);
        if (o->kind == OPT_KIND_ENUM)
            fprintf(out, "; one of %s", o->choices);
        else if (o->kind == OPT_KIND_INT)
            fprintf(out, "; %lld..%lld", (long long)o->lo, (long long)o->hi);
        fprintf(out, ")\n");
    }
    fprintf(out, "[pricing.MODEL]\n  input_miss, input_hit, output: per-model prices in micro-units per million tokens\n");
}

struct cfg_price cfg_price_for(const struct chatd_config *cfg, const char *model)
{
    for (size_t i = 0; i < cfg->n_prices; i++)
        if (model && strcmp(cfg->prices[i].model, model) == 0)
            return cfg->prices[i];
    return (struct cfg_price){(char *)"", cfg->price_input_miss, cfg->price_input_hit,
                              cfg->price_output};
}

char *cfg_expand_home(const char *path)
{
    const char *home = getenv("HOME");
    if (strncmp(path, "~/", 2) != 0 || !home)
        return strdup(path);
    size_t n = strlen(home) + strlen(path);
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s", home, path + 1);
    return s;
}
