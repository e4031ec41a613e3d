/* cli_model.c - model subcommands: gen-model (random-weight GGUF files), eval (logits
 * of given token ids, for scripts), bench (prefill / decode tokens per second, laid out
 * like llama-bench so figures compare one to one).
 *
 * These run the backend directly through the model facade; they are single-threaded
 * callers of the engine API (the backend may use its own worker threads).
 */
#include "cli/cli.h"
#include "server.h"

#include "model.h"

#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- helpers ------------------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Parses an unsigned option value; returns -1 (and prints) when malformed. */
static int parse_u32(const char *opt, const char *s, uint32_t *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || v > 0xffffffffUL) {
        fprintf(stderr, "%s: expected a non-negative integer, got '%s'\n", opt, s);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* The value after option argv[*i], or NULL (printed) when missing. */
static const char *opt_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "%s needs a value\n", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

static int open_model(struct mdl_model **m, const char *path, const char *backend, uint32_t n_ctx,
                      uint32_t n_threads)
{
    struct mdl_params p;
    char err[512];
    mdl_default_params(&p);
    p.backend = backend;
    p.n_ctx = n_ctx;
    p.n_threads = n_threads;
    int rc = mdl_open(m, path, &p, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "chatd: %s: %s\n", path, err);
        return rc == MDL_EIO ? 1 : 2;
    }
    return 0;
}

static int parse_float(const char *opt, const char *s, float *out)
{
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !isfinite(v)) {
        fprintf(stderr, "%s: expected a number, got '%s'\n", opt, s);
        return -1;
    }
    *out = (float)v;
    return 0;
}

/* ---- gen-model ---------------------------------------------------------------------- */

static int parse_type(const char *s, uint32_t *t)
{
    static const struct {
        const char *name;
        uint32_t type;
    } types[] = {{"f32", GGML_TYPE_F32},
                 {"f16", GGML_TYPE_F16},
                 {"q8_0", GGML_TYPE_Q8_0},
                 {"q4_0", GGML_TYPE_Q4_0}};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcmp(s, types[i].name) == 0) {
            *t = types[i].type;
            return 0;
        }
    }
    fprintf(stderr, "--type: expected f32, f16, q8_0 or q4_0, got '%s'\n", s);
    return -1;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    size_t cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, 4096, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static const char gen_usage[] =
    "usage: chatd gen-model --vocab VOCAB.gguf --out F.gguf [--type f32|f16|q8_0|q4_0]\n"
    "                       [--arch llama|qwen2|qwen2moe|qwen3|phi3|gemma2|gemma3]\n"
    "                       [--preset tiny|bench-llama|bench-moe] [--like NAME]\n"
    "                       [--n-embd N] [--n-layer N] [--n-head N] [--n-head-kv N]\n"
    "                       [--head-dim N] [--n-ff N] [--n-ctx N] [--n-vocab N]\n"
    "                       [--experts N --experts-used K] [--seed S] [--tied]\n"
    "                       [--residual-scale S] [--output-scale S] [--chat-template FILE]\n"
    "\n"
    "Writes a model with random weights (deterministic for a seed). --arch picks the\n"
    "graph (phi3 fused tensors, gemma post-norms and soft-caps, q/k norms, experts);\n"
    "--experts adds Mixtral-style experts to llama. --residual-scale scales attn_output and\n"
    "ffn_down (below 1, later layers change little: the same seed with fewer layers is a\n"
    "draft model that agrees), --output-scale the output matrix. --like NAME takes the\n"
    "exact shapes of a real model (vocabulary padded with unused tokens to its size; the\n"
    "file after each name is the vocab of tests/fixtures/tokenizer/ that fits):\n";

/* --help: the usage and the --like presets. */
static void gen_help(void)
{
    fputs(gen_usage, stdout);
    for (const char *const *l = mdl_gen_like_names(); *l; l++)
        printf("  %s\n", *l);
}

/* The architecture named s, or -1. */
static int parse_arch(const char *s)
{
    for (int a = 0; mdl_arch_str((enum mdl_arch)a); a++)
        if (strcmp(s, mdl_arch_str((enum mdl_arch)a)) == 0)
            return a;
    return -1;
}

/* Presets first (--arch, then --preset / --like), so explicit options override them. */
static int gen_presets(int argc, char **argv, struct mdl_gen_params *p)
{
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--arch") == 0) {
            int a = parse_arch(argv[i + 1]);
            if (a < 0) {
                fprintf(stderr, "--arch: '%s' is not one of %s\n", argv[i + 1], mdl_arch_list());
                return -1;
            }
            p->arch = (enum mdl_arch)a;
        }
    }
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--preset") == 0 && mdl_gen_preset(p, argv[i + 1]) != 0) {
            fprintf(stderr, "--preset: unknown preset '%s'\n", argv[i + 1]);
            return -1;
        }
        if (strcmp(argv[i], "--like") == 0 && mdl_gen_like(p, argv[i + 1]) != 0) {
            fprintf(stderr, "--like: unknown model '%s' (chatd gen-model --help lists them)\n",
                    argv[i + 1]);
            return -1;
        }
    }
    return 0;
}

/* The option a takes a u32 value into one of these fields. */
static uint32_t *gen_u32_field(struct mdl_gen_params *p, const char *a)
{
    static const struct {
        const char *opt;
        size_t off;
    } fields[] = {
        {"--n-embd", offsetof(struct mdl_gen_params, n_embd)},
        {"--n-layer", offsetof(struct mdl_gen_params, n_layer)},
        {"--n-head", offsetof(struct mdl_gen_params, n_head)},
        {"--n-head-kv", offsetof(struct mdl_gen_params, n_head_kv)},
        {"--head-dim", offsetof(struct mdl_gen_params, head_dim)},
        {"--n-ff", offsetof(struct mdl_gen_params, n_ff)},
        {"--n-ctx", offsetof(struct mdl_gen_params, n_ctx)},
        {"--n-vocab", offsetof(struct mdl_gen_params, n_vocab)},
        {"--experts", offsetof(struct mdl_gen_params, n_expert)},
        {"--experts-used", offsetof(struct mdl_gen_params, n_expert_used)},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (strcmp(a, fields[i].opt) == 0)
            return (uint32_t *)((char *)p + fields[i].off);
    return NULL;
}

int cli_gen_model(int argc, char **argv)
{
    struct mdl_gen_params p;
    const char *vocab = NULL;
    const char *out = NULL;
    const char *tmpl_path = NULL;
    mdl_gen_default_params(&p);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            gen_help();
            return 0;
        }
    }
    if (gen_presets(argc, argv, &p) < 0)
        return 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = NULL;
        uint32_t u = 0;
        if (strcmp(a, "--tied") == 0) {
            p.tied_output = 1;
            continue;
        }
        if (!(v = opt_value(argc, argv, &i)))
            return 2;
        if (strcmp(a, "--arch") == 0 || strcmp(a, "--preset") == 0 || strcmp(a, "--like") == 0) {
            /* applied above */
        } else if (strcmp(a, "--vocab") == 0) {
            vocab = v;
        } else if (strcmp(a, "--out") == 0) {
            out = v;
        } else if (strcmp(a, "--chat-template") == 0) {
            tmpl_path = v;
        } else if (strcmp(a, "--type") == 0) {
            if (parse_type(v, &p.type))
                return 2;
        } else if (strcmp(a, "--residual-scale") == 0 || strcmp(a, "--output-scale") == 0) {
            float *f = a[2] == 'r' ? &p.residual_scale : &p.output_scale;
            if (parse_float(a, v, f))
                return 2;
            if (!(*f > 0.0f && *f <= 100.0f)) {
                fprintf(stderr, "%s: expected a number in (0, 100], got '%s'\n", a, v);
                return 2;
            }
        } else if (strcmp(a, "--seed") == 0) {
            char *end;
            p.seed = strtoull(v, &end, 10);
            if (!*v || *end) {
                fprintf(stderr, "--seed: expected an integer\n");
                return 2;
            }
        } else {
            uint32_t *field = gen_u32_field(&p, a);
            if (!field) {
                fprintf(stderr, "gen-model: unknown option '%s'\n%s", a, gen_usage);
                return 2;
            }
            if (parse_u32(a, v, &u))
                return 2;
            *field = u;
        }
    }
    if (!vocab || !out) {
        fputs(gen_usage, stderr);
        return 2;
    }
    char *tmpl = NULL;
    if (tmpl_path) {
        tmpl = read_file(tmpl_path);
        if (!tmpl) {
            fprintf(stderr, "chatd: cannot read %s\n", tmpl_path);
            return 2;
        }
        p.chat_template = tmpl;
    }
    char err[512];
    int rc = mdl_gen_write(&p, vocab, out, err, sizeof(err));
    free(tmpl);
    if (rc) {
        fprintf(stderr, "chatd: gen-model: %s\n", err);
        return rc == MDL_EIO ? 1 : 2;
    }
    return 0;
}

/* ---- eval --------------------------------------------------------------------------- */

static json_t *top_k_json(const float *l, uint32_t n, uint32_t k)
{
    json_t *arr = json_array();
    int *ids = malloc((k ? k : 1) * sizeof(int));
    uint32_t m = 0;
    for (uint32_t i = 0; ids && i < n; i++) {
        uint32_t j = m < k ? m++ : k;
        if (j == k) {
            if (k == 0 || !(l[i] > l[ids[k - 1]]))
                continue;
            j = k - 1;
        }
        while (j > 0 && l[i] > l[ids[j - 1]]) {
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = (int)i;
    }
    for (uint32_t i = 0; i < m; i++) {
        json_t *pair = json_array();
        json_array_append_new(pair, json_integer(ids[i]));
        json_array_append_new(pair, json_real(l[ids[i]]));
        json_array_append_new(arr, pair);
    }
    free(ids);
    return arr;
}

static int parse_tokens(const char *s, int32_t **out, uint32_t *n)
{
    size_t cap = 16;
    int32_t *t = malloc(cap * sizeof(*t));
    *n = 0;
    while (t && *s) {
        char *end;
        while (*s == ' ' || *s == ',' || *s == '\t' || *s == '\n')
            s++;
        if (!*s)
            break;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > 0x7fffffffL) {
            free(t);
            return -1;
        }
        if (*n == cap) {
            cap *= 2;
            int32_t *nt = realloc(t, cap * sizeof(*t));
            if (!nt) {
                free(t);
                return -1;
            }
            t = nt;
        }
        t[(*n)++] = (int32_t)v;
        s = end;
    }
    *out = t;
    return t ? 0 : -1;
}

/* Runs tokens [i0, i0+n) of slot 0 as one batch, logits for each into rows. */
static int run_batch(struct mdl_model *m, const int32_t *toks, uint32_t i0, uint32_t n, bool all,
                     float *logits)
{
    int32_t *pos = malloc(n * sizeof(int32_t));
    int32_t *slot = calloc(n, sizeof(int32_t));
    bool *want = malloc(n * sizeof(bool));
    int rc = -1;
    if (pos && slot && want) {
        for (uint32_t i = 0; i < n; i++) {
            pos[i] = (int32_t)(i0 + i);
            want[i] = all || i + 1 == n;
        }
        struct bk_batch b = {n, toks + i0, pos, slot, want};
        rc = mdl_forward(m, &b, logits);
    }
    free(pos);
    free(slot);
    free(want);
    return rc;
}

static const char eval_usage[] =
    "usage: chatd eval --model FILE --tokens \"ID ID ...\" [--prefill N] [--top K]\n"
    "                  [--last-logits] [--backend cpu|vulkan] [--threads N] --json\n";

int cli_eval(int argc, char **argv)
{
    const char *model = NULL;
    const char *tokens = NULL;
    const char *backend = "cpu";
    uint32_t prefill = UINT32_MAX;
    uint32_t top = 10;
    uint32_t threads = 0;
    bool last = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v;
        if (strcmp(a, "--json") == 0)
            continue;
        if (strcmp(a, "--last-logits") == 0) {
            last = true;
            continue;
        }
        if (strcmp(a, "--help") == 0) {
            fputs(eval_usage, stdout);
            return 0;
        }
        if (!(v = opt_value(argc, argv, &i)))
            return 2;
        if (strcmp(a, "--model") == 0)
            model = v;
        else if (strcmp(a, "--tokens") == 0)
            tokens = v;
        else if (strcmp(a, "--backend") == 0)
            backend = v;
        else if (strcmp(a, "--prefill") == 0 ? parse_u32(a, v, &prefill)
                 : strcmp(a, "--top") == 0   ? parse_u32(a, v, &top)
                 : strcmp(a, "--threads") == 0
                     ? parse_u32(a, v, &threads)
                     : (fprintf(stderr, "eval: unknown option '%s'\n", a), -1))
            return 2;
    }
    int32_t *toks = NULL;
    uint32_t n = 0;
    if (!model || !tokens) {
        fputs(eval_usage, stderr);
        return 2;
    }
    if (parse_tokens(tokens, &toks, &n) || n == 0) {
        fprintf(stderr, "--tokens: expected space-separated token ids\n");
        free(toks);
        return 2;
    }
    struct mdl_model *m = NULL;
    int rc = open_model(&m, model, backend, n + 1 > 512 ? n + 1 : 512, threads);
    if (rc) {
        free(toks);
        return rc;
    }
    uint32_t nv = mdl_n_vocab(m);
    for (uint32_t i = 0; i < n; i++) {
        if ((uint32_t)toks[i] >= nv) {
            fprintf(stderr, "--tokens: id %d is not below n_vocab %u\n", toks[i], nv);
            free(toks);
            mdl_close(m);
            return 2;
        }
    }
    if (prefill > n)
        prefill = n;
    float *logits = malloc((size_t)n * nv * sizeof(float));
    rc = logits ? 0 : 1;
    if (!rc && prefill > 0)
        rc = run_batch(m, toks, 0, prefill, true, logits);
    for (uint32_t i = prefill; !rc && i < n; i++)
        rc = run_batch(m, toks, i, 1, true, logits + (size_t)i * nv);
    if (rc) {
        fprintf(stderr, "chatd: eval: forward failed\n");
        free(logits);
        free(toks);
        mdl_close(m);
        return 1;
    }
    json_t *o = json_object();
    json_t *ids = json_array();
    json_t *tops = json_array();
    for (uint32_t i = 0; i < n; i++) {
        json_array_append_new(ids, json_integer(toks[i]));
        json_array_append_new(tops, top_k_json(logits + (size_t)i * nv, nv, top));
    }
    json_object_set_new(o, "tokens", ids);
    json_object_set_new(o, "n_vocab", json_integer(nv));
    json_object_set_new(o, "top", tops);
    if (last) {
        json_t *ll = json_array();
        for (uint32_t i = 0; i < nv; i++)
            json_array_append_new(ll, json_real(logits[(size_t)(n - 1) * nv + i]));
        json_object_set_new(o, "last_logits", ll);
    }
    json_dumpf(o, stdout, JSON_COMPACT | JSON_REAL_PRECISION(9));
    fputc('\n', stdout);
    json_decref(o);
    free(logits);
    free(toks);
    mdl_close(m);
    return 0;
}

/* ---- generate ----------------------------------------------------------------------- */

static const char gen_text_usage[] =
    "usage: chatd generate --model FILE --prompt TEXT [-n N] [--temp T] [--seed S]\n"
    "                      [--top-k K] [--top-p P] [--min-p P] [--ignore-eos]\n"
    "                      [--backend cpu|vulkan] [--threads N] [--json]\n";

struct gen_opts {
    const char *model;
    const char *prompt;
    const char *backend;
    uint32_t n;
    uint32_t threads;
    bool json;
    bool ignore_eos;
    struct sampler_params sp;
};

static int parse_generate(int argc, char **argv, struct gen_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->backend = "cpu";
    o->n = 32;
    sampler_default_params(&o->sp);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v;
        if (strcmp(a, "--json") == 0) {
            o->json = true;
            continue;
        }
        if (strcmp(a, "--ignore-eos") == 0) {
            o->ignore_eos = true;
            continue;
        }
        if (strcmp(a, "--help") == 0) {
            fputs(gen_text_usage, stdout);
            return 1;
        }
        if (!(v = opt_value(argc, argv, &i)))
            return -1;
        uint32_t u;
        int rc = 0;
        if (strcmp(a, "--model") == 0) {
            o->model = v;
        } else if (strcmp(a, "--prompt") == 0) {
            o->prompt = v;
        } else if (strcmp(a, "--backend") == 0) {
            o->backend = v;
        } else if (strcmp(a, "-n") == 0) {
            rc = parse_u32(a, v, &o->n);
        } else if (strcmp(a, "--threads") == 0 || strcmp(a, "-t") == 0) {
            rc = parse_u32(a, v, &o->threads);
        } else if (strcmp(a, "--temp") == 0) {
            rc = parse_float(a, v, &o->sp.temperature);
        } else if (strcmp(a, "--top-p") == 0) {
            rc = parse_float(a, v, &o->sp.top_p);
        } else if (strcmp(a, "--min-p") == 0) {
            rc = parse_float(a, v, &o->sp.min_p);
        } else if (strcmp(a, "--top-k") == 0) {
            rc = parse_u32(a, v, &u);
            o->sp.top_k = (int32_t)u;
        } else if (strcmp(a, "--seed") == 0) {
            char *end;
            o->sp.seed = strtoull(v, &end, 10);
            if (!*v || *end) {
                fprintf(stderr, "--seed: expected an integer\n");
                rc = -1;
            }
        } else {
            fprintf(stderr, "generate: unknown option '%s'\n%s", a, gen_text_usage);
            rc = -1;
        }
        if (rc)
            return -1;
    }
    if (!o->model || !o->prompt) {
        fputs(gen_text_usage, stderr);
        return -1;
    }
    return 0;
}

/* Prefills the prompt, then samples o->n tokens (one forward each); fills ids / tops. */
static int generate_run(struct mdl_model *m, const struct gen_opts *o, const int32_t *prompt,
                        uint32_t np, int32_t *ids, uint32_t *n_ids, json_t *tops, double *t_pp,
                        double *t_tg)
{
    uint32_t nv = mdl_n_vocab(m);
    const struct tok_vocab *v = mdl_vocab(m);
    float *logits = malloc((size_t)nv * sizeof(float));
    struct sampler *s = sampler_new(&o->sp, nv);
    int rc = (logits && s) ? 0 : -1;
    *n_ids = 0;
    for (uint32_t i = 0; s && i < np; i++)
        sampler_accept(s, prompt[i]);
    double t0 = now_s();
    if (!rc)
        rc = run_batch(m, prompt, 0, np, false, logits);
    double t1 = now_s();
    for (uint32_t i = 0; !rc && i < o->n; i++) {
        int32_t tok = sampler_sample(s, logits);
        sampler_accept(s, tok);
        ids[(*n_ids)++] = tok;
        if (tops)
            json_array_append_new(tops, top_k_json(logits, nv, 10));
        if (!o->ignore_eos && tok_is_eog(v, tok))
            break;
        if (i + 1 < o->n) {
            int32_t one[1] = {tok};
            int32_t pos = (int32_t)(np + i);
            int32_t slot = 0;
            bool want = true;
            struct bk_batch b = {1, one, &pos, &slot, &want};
            rc = mdl_forward(m, &b, logits);
        }
    }
    *t_pp = t1 - t0;
    *t_tg = now_s() - t1;
    sampler_free(s);
    free(logits);
    return rc;
}

int cli_generate(int argc, char **argv)
{
    struct gen_opts o;
    int rc = parse_generate(argc, argv, &o);
    if (rc)
        return rc > 0 ? 0 : 2;
    struct mdl_model *m = NULL;
    const struct tok_vocab *v;
    int32_t *prompt = NULL;
    size_t np = 0;
    int32_t *ids = NULL;
    uint32_t n_ids = 0;
    char *text = NULL;
    size_t text_len = 0;
    json_t *tops = o.json ? json_array() : NULL;
    double t_pp = 0.0;
    double t_tg = 0.0;
    /* the cache holds the prompt and the generated tokens */
    if ((rc = open_model(&m, o.model, o.backend, 0, o.threads)))
        goto out;
    v = mdl_vocab(m);
    if (tok_encode(v, o.prompt, strlen(o.prompt), tok_add_bos(v), false, &prompt, &np) != 0 ||
        np == 0) {
        fprintf(stderr, "chatd: generate: the prompt gives no tokens\n");
        rc = 2;
        goto out;
    }
    if (np + o.n > mdl_n_ctx(m)) {
        fprintf(stderr, "chatd: generate: %zu prompt + %u new tokens exceed the context of %u\n",
                np, o.n, mdl_n_ctx(m));
        rc = 2;
        goto out;
    }
    ids = malloc((o.n ? o.n : 1) * sizeof(int32_t));
    if (!ids || generate_run(m, &o, prompt, (uint32_t)np, ids, &n_ids, tops, &t_pp, &t_tg) != 0 ||
        tok_decode(v, ids, n_ids, 0, &text, &text_len) != 0) {
        fprintf(stderr, "chatd: generate: forward failed\n");
        rc = 1;
        goto out;
    }
    double pp_ts = t_pp > 0 ? np / t_pp : 0.0;
    double tg_ts = t_tg > 0 ? n_ids / t_tg : 0.0;
    if (o.json) {
        json_t *j = json_object();
        json_t *pj = json_array();
        json_t *ij = json_array();
        for (size_t i = 0; i < np; i++)
            json_array_append_new(pj, json_integer(prompt[i]));
        for (uint32_t i = 0; i < n_ids; i++)
            json_array_append_new(ij, json_integer(ids[i]));
        json_object_set_new(j, "prompt_ids", pj);
        json_object_set_new(j, "ids", ij);
        /* the ids may end inside a character or spell invalid UTF-8: as the HTTP API,
         * invalid bytes become U+FFFD so that the output is always JSON */
        size_t clean_len;
        char *clean = srv_utf8_sanitize(text, text_len, &clean_len);
        json_object_set_new(j, "text", clean ? json_stringn(clean, clean_len) : json_string(""));
        free(clean);
        json_object_set_new(j, "prefill_tokens_per_s", json_real(pp_ts));
        json_object_set_new(j, "decode_tokens_per_s", json_real(tg_ts));
        json_object_set(j, "top", tops);
        json_dumpf(j, stdout, JSON_COMPACT | JSON_REAL_PRECISION(9) | JSON_ENSURE_ASCII);
        fputc('\n', stdout);
        json_decref(j);
    } else {
        fwrite(text, 1, text_len, stdout);
        fputc('\n', stdout);
        fprintf(stderr, "prefill %zu tokens: %.2f tokens/s; decode %u tokens: %.2f tokens/s\n", np,
                pp_ts, n_ids, tg_ts);
    }
out:
    json_decref(tops);
    free(text);
    free(ids);
    free(prompt);
    mdl_close(m);
    return rc;
}

/* ---- bench -------------------------------------------------------------------------- */

struct bench_result {
    const char *test;
    uint32_t n;
    double mean;
    double sd;
};

static void mean_sd(const double *v, int n, double *mean, double *sd)
{
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += v[i];
    *mean = s / n;
    double q = 0.0;
    for (int i = 0; i < n; i++)
        q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0.0;
}

/* Prefill of n random tokens as one batch from an empty cache; returns tokens/s. */
static double bench_pp(struct mdl_model *m, const int32_t *toks, uint32_t n, float *logits)
{
    mdl_kv_truncate(m, 0, 0);
    double t0 = now_s();
    if (run_batch(m, toks, 0, n, false, logits))
        return -1.0;
    return n / (now_s() - t0);
}

/* Decode of n tokens one at a time from an empty cache; returns tokens/s. */
static double bench_tg(struct mdl_model *m, const int32_t *toks, uint32_t n, float *logits)
{
    mdl_kv_truncate(m, 0, 0);
    double t0 = now_s();
    for (uint32_t i = 0; i < n; i++)
        if (run_batch(m, toks, i, 1, true, logits))
            return -1.0;
    return n / (now_s() - t0);
}

static const char bench_usage[] =
    "usage: chatd bench --model FILE [--backend cpu|vulkan] [-p 128] [-n 32] [-r 3]\n"
    "                   [-t THREADS] [--json]\n";

int cli_bench(int argc, char **argv)
{
    const char *model = NULL;
    const char *backend = "cpu";
    uint32_t np = 128;
    uint32_t ng = 32;
    uint32_t reps = 3;
    uint32_t threads = 0;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v;
        if (strcmp(a, "--json") == 0) {
            json = true;
            continue;
        }
        if (strcmp(a, "--help") == 0) {
            fputs(bench_usage, stdout);
            return 0;
        }
        if (!(v = opt_value(argc, argv, &i)))
            return 2;
        if (strcmp(a, "--model") == 0 || strcmp(a, "-m") == 0)
            model = v;
        else if (strcmp(a, "--backend") == 0)
            backend = v;
        else if (strcmp(a, "-p") == 0   ? parse_u32(a, v, &np)
                 : strcmp(a, "-n") == 0 ? parse_u32(a, v, &ng)
                 : strcmp(a, "-r") == 0 ? parse_u32(a, v, &reps)
                 : strcmp(a, "-t") == 0 ? parse_u32(a, v, &threads)
                                        : (fprintf(stderr, "bench: unknown option '%s'\n", a), -1))
            return 2;
    }
    if (!model || reps == 0 || reps > 1000) {
        fputs(bench_usage, stderr);
        return 2;
    }
    struct mdl_model *m = NULL;
    uint32_t n_ctx = (np > ng ? np : ng) + 1;
    int rc = open_model(&m, model, backend, n_ctx < 512 ? 512 : n_ctx, threads);
    if (rc)
        return rc;
    uint32_t nv = mdl_n_vocab(m);
    uint32_t nt = np > ng ? np : ng;
    int32_t *toks = malloc((nt ? nt : 1) * sizeof(int32_t));
    float *logits = malloc((size_t)nv * sizeof(float));
    double *v = malloc(reps * sizeof(double));
    if (!toks || !logits || !v) {
        fprintf(stderr, "chatd: out of memory\n");
        rc = 1;
        goto out;
    }
    uint64_t x = 42;
    for (uint32_t i = 0; i < nt; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((x >> 33) % nv);
    }
    struct bench_result res[2];
    int nres = 0;
    /* warm-up (page in the weights), as llama-bench does */
    if (np && bench_pp(m, toks, np < 32 ? np : 32, logits) < 0)
        rc = 1;
    if (ng && bench_tg(m, toks, 1, logits) < 0)
        rc = 1;
    for (int t = 0; t < 2 && !rc; t++) {
        uint32_t n = t == 0 ? np : ng;
        if (n == 0)
            continue;
        for (uint32_t r = 0; r < reps && !rc; r++) {
            v[r] = t == 0 ? bench_pp(m, toks, n, logits) : bench_tg(m, toks, n, logits);
            if (v[r] < 0)
                rc = 1;
        }
        res[nres].test = t == 0 ? "pp" : "tg";
        res[nres].n = n;
        mean_sd(v, (int)reps, &res[nres].mean, &res[nres].sd);
        nres++;
    }
    if (rc) {
        fprintf(stderr, "chatd: bench: forward failed\n");
        goto out;
    }
    const char *desc = mdl_backend_describe(m);
    double size_mib = (double)mdl_file_size(m) / (1024.0 * 1024.0);
    double params_m = (double)mdl_n_params(m) / 1e6;
    if (json) {
        json_t *arr = json_array();
        for (int i = 0; i < nres; i++) {
            json_t *o = json_object();
            json_object_set_new(o, "model", json_string(model));
            json_object_set_new(o, "arch", json_string(mdl_arch_name(m)));
            json_object_set_new(o, "type", json_string(mdl_weight_type(m)));
            json_object_set_new(o, "size_bytes", json_integer((json_int_t)mdl_file_size(m)));
            json_object_set_new(o, "n_params", json_integer((json_int_t)mdl_n_params(m)));
            json_object_set_new(o, "backend", json_string(desc));
            json_object_set_new(o, "n_prompt",
                                json_integer(strcmp(res[i].test, "pp") == 0 ? res[i].n : 0));
            json_object_set_new(o, "n_gen",
                                json_integer(strcmp(res[i].test, "tg") == 0 ? res[i].n : 0));
            json_object_set_new(o, "avg_ts", json_real(res[i].mean));
            json_object_set_new(o, "stddev_ts", json_real(res[i].sd));
            json_array_append_new(arr, o);
        }
        json_dumpf(arr, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(arr);
    } else {
        printf("| model | size | params | backend | test | t/s |\n");
        printf("| --- | ---: | ---: | --- | ---: | ---: |\n");
        for (int i = 0; i < nres; i++)
            printf("| %s %s | %.2f MiB | %.2f M | %s | %s%u | %.2f ± %.2f |\n", mdl_arch_name(m),
                   mdl_weight_type(m), size_mib, params_m, desc, res[i].test, res[i].n, res[i].mean,
                   res[i].sd);
    }
out:
    free(toks);
    free(logits);
    free(v);
    mdl_close(m);
    return rc;
}
