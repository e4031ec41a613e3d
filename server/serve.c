/* serve.c - `chatd serve`: the server's lifecycle and shared state. Start-up runs config ->
 * log -> store -> model(s) and engine -> HTTP; shutdown (SIGINT/SIGTERM) runs in reverse:
 * stop accepting, cancel generations, let in-flight responses finish for at most
 * shutdown_timeout_s, stop the daemon, stop the engine, close the model and the store.
 * Signals are blocked in every thread and taken synchronously by the main thread. */
#include "api/api.h"
#include "cli/cli.h"
#include "model.h"
#include "server.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

void srv_count_request(struct srv *s, unsigned status)
{
    atomic_fetch_add(&s->n_requests, 1);
    if (status >= 400)
        atomic_fetch_add(&s->n_errors, 1);
}

const struct srv_model *srv_find_model(const struct srv *s, const char *id)
{
    for (int i = 0; i < s->n_models; i++)
        if (strcmp(s->models[i].id, id) == 0)
            return &s->models[i];
    return NULL;
}

const char *srv_default_model_id(const struct srv *s)
{
    return s->n_models ? s->models[0].id : "";
}

/* ---- per-user meters (guarded by meter_mu) ---- */

static struct srv_meter *meter_of(struct srv *s, int64_t user_id)
{
    for (int i = 0; i < s->n_meters; i++)
        if (s->meters[i].user_id == user_id)
            return &s->meters[i];
    if (s->n_meters == SRV_MAX_METER_USERS)
        return NULL;
    struct srv_meter *m = &s->meters[s->n_meters++];
    memset(m, 0, sizeof(*m));
    m->user_id = user_id;
    return m;
}

void srv_meter_add(struct srv *s, int64_t user_id, const struct store_usage *u)
{
    pthread_mutex_lock(&s->meter_mu);
    struct srv_meter *m = meter_of(s, user_id);
    if (m) {
        m->requests++;
        m->input_hit += (uint64_t)u->cached_tokens;
        m->input_miss += (uint64_t)(u->prompt_tokens - u->cached_tokens);
        m->output += (uint64_t)u->completion_tokens;
        m->reasoning += (uint64_t)u->reasoning_tokens;
        m->cost_micros += u->cost_micros;
    }
    pthread_mutex_unlock(&s->meter_mu);
}

/* ---- /metrics ---- */

/* Appends one formatted line to the metrics page. */
/* ---- start-up ---- */

/* The demo model when nothing else is there: in model_dir, else (read-only home, say)
 * in the temp dir, with a banner saying what it is. Returns a heap path or NULL. */
static char *demo_model(const char *dir, char *err, size_t err_len)
{
    char path[4096], why[256];
    if (mdl_demo_model(dir, path, sizeof(path), why, sizeof(why)) != 0) {
        log_warn("demo model: cannot write it in %s: %s; trying the temp dir", dir, why);
        const char *tmp = getenv("TMPDIR");
        char alt[4096];
        snprintf(alt, sizeof(alt), "%s/chatd-%u", tmp && *tmp ? tmp : "/tmp", (unsigned)getuid());
        if (mdl_demo_model(alt, path, sizeof(path), why, sizeof(why)) != 0) {
            snprintf(err, err_len, "no model: pass --model FILE.gguf or put one in %s (the demo model failed too: %s)",
                     dir, why);
            return NULL;
        }
    }
    log_warn("no model configured or found in %s: serving the demo model %s, whose weights are random, so its replies are gibberish", dir, path);
    log_warn("get a real model with `chatd pull OWNER/REPO/FILE.gguf`, e.g. `chatd pull Felladrin/gguf-Q8_0-Qwen2.5-0.5B-Instruct/qwen2.5-0.5b-instruct-q8_0.gguf`, then restart (see 'Real models' in the README)");
    return strdup(path);
}

/* The model to serve: the configured file, else the first .gguf in model_dir other
 * than the demo model, else the demo model (generated on first use). Returns a heap
 * path or NULL with a message in err. */
static char *resolve_model(const struct chatd_config *cfg, char *err, size_t err_len)
{
    if (cfg->model_path[0])
        return strdup(cfg->model_path);
    char *dir = cfg_expand_home(cfg->model_dir);
    if (!dir) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    DIR *d = opendir(dir);
    char *best = NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > 5 && strcmp(e->d_name + n - 5, ".gguf") == 0 && e->d_name[0] != '.' &&
            strcmp(e->d_name, MDL_DEMO_MODEL_NAME) != 0 && (!best || strcmp(e->d_name, best) < 0)) {
            free(best);
            best = strdup(e->d_name);
        }
    }
    if (d)
        closedir(d);
    char *path = NULL;
    if (best) {
        size_t len = strlen(dir) + strlen(best) + 2;
        path = malloc(len);
        if (path)
            snprintf(path, len, "%s/%s", dir, best);
    } else {
        path = demo_model(dir, err, err_len);
    }
    free(best);
    free(dir);
    return path;
}

/* "dir/Qwen2.5-0.5B.Q8_0.gguf" -> "Qwen2.5-0.5B.Q8_0" */
static void model_id_from_path(const char *path, char *out, size_t len)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(out, len, "%s", base);
    size_t n = strlen(out);
    if (n > 5 && strcmp(out + n - 5, ".gguf") == 0)
        out[n - 5] = 0;
    for (char *p = out; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            *p = '-';
}

static void store_log(void *user, int level, const char *msg)
{
    enum log_level l = level <= STORE_LOG_DEBUG  ? LOG_DEBUG
                       : level == STORE_LOG_INFO ? LOG_INFO
                       : level == STORE_LOG_WARN ? LOG_WARN
                                                 : LOG_ERROR;
    if (l >= log_min_level) /* as the log_* macros do */
        log_write(l, "store %s", msg);
}

static int open_store(struct srv *s, char *err, size_t err_len)
{
    struct store_params sp = store_default_params();
    sp.log = store_log;
    sp.flush_interval_ms = (int)s->cfg->flush_interval_ms;
    if (store_open(s->cfg->db_path, &sp, &s->store, err, err_len) != 0)
        return -1;
    /* replies a crash cut: bill what was stored of them (they stay partial) */
    int64_t n_billed = 0;
    if (store_recover_interrupted(s->store, &n_billed) != 0) {
        snprintf(err, err_len, "database %s: cannot bill interrupted replies: %s", s->cfg->db_path,
                 store_errmsg());
        return -1;
    }
    if (n_billed)
        log_warn("store recovered_interrupted_replies=%lld (billed as partial)", (long long)n_billed);
    struct store_user u;
    if (store_user_local(s->store, &u) != 0) {
        snprintf(err, err_len, "database %s: cannot create the local user: %s", s->cfg->db_path, store_errmsg());
        return -1;
    }
    s->local_user_id = u.id;
    for (size_t i = 0; i < s->cfg->n_prices; i++) {
        const struct cfg_price *p = &s->cfg->prices[i];
        if (store_price_sync(s->store, p->model, p->input_miss, p->input_hit, p->output) < 0) {
            snprintf(err, err_len, "pricing.%s: %s", p->model, store_errmsg());
            return -1;
        }
    }
    return 0;
}

/* Bytes of memory available to new allocations (MemAvailable), or 0 if unknown. */
static uint64_t mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return (uint64_t)kb * 1024;
}

/* Opens one model after checking that it fits: the CPU backend keeps its own copy of the
 * weights beside the mapping, so a model needs about its file size again. */
static int open_one(struct srv *s, const char *path, const char *given_id, char *err, size_t err_len)
{
    struct srv_model *sm = &s->models[s->n_models];
    char id[128];
    if (given_id && *given_id)
        snprintf(id, sizeof(id), "%s", given_id);
    else
        model_id_from_path(path, id, sizeof(id));
    if (srv_find_model(s, id)) {
        snprintf(err, err_len, "models: the id '%s' is used twice", id);
        return -1;
    }
    struct stat st;
    uint64_t avail = mem_available();
    if (stat(path, &st) == 0 && avail && (uint64_t)st.st_size > avail) {
        snprintf(err, err_len, "model %s needs about %llu MiB but only %llu MiB of memory are available",
                 id, (unsigned long long)(st.st_size >> 20), (unsigned long long)(avail >> 20));
        return -1;
    }
    if (srv_model_open(sm, path, id, s->cfg, err, err_len) != 0)
        return -1;
    s->n_models++;
    const struct mdl_hparams *hp = mdl_hparams(sm->mdl);
    uint64_t kv_slot = 2ull * hp->n_layer * mdl_n_ctx(sm->mdl) * hp->n_head_kv * hp->head_dim * 2;
    log_info("model id=%s path=%s arch=%s params=%llu type=%s n_ctx=%u slots=%lld backend=%s template=%s "
             "kv_bytes_per_slot=%llu kv_bytes_total=%llu",
             sm->id, path, mdl_arch_name(sm->mdl), (unsigned long long)mdl_n_params(sm->mdl),
             mdl_weight_type(sm->mdl), mdl_n_ctx(sm->mdl), (long long)s->cfg->parallel,
             mdl_backend_name(sm->mdl), sm->template_name, (unsigned long long)kv_slot,
             (unsigned long long)(kv_slot * (uint64_t)s->cfg->parallel));
    return 0;
}

/* The `models` list: "PATH,ID=PATH,..." (the first is the default). */
static int open_model_list(struct srv *s, char *err, size_t err_len)
{
    char *list = strdup(s->cfg->models), *save = NULL;
    size_t n = 1;
    for (const char *p = list; p && *p; p++)
        n += *p == ',';
    s->models = calloc(n, sizeof(*s->models));
    int rc = list && s->models ? 0 : -1;
    for (char *e = strtok_r(list, ",", &save); e && rc == 0; e = strtok_r(NULL, ",", &save)) {
        while (*e == ' ')
            e++;
        char *eq = strchr(e, '=');
        if (eq)
            *eq = 0;
        rc = open_one(s, eq ? eq + 1 : e, eq ? e : NULL, err, err_len);
    }
    free(list);
    if (rc == 0 && s->n_models == 0) {
        snprintf(err, err_len, "models: the list is empty");
        rc = -1;
    }
    return rc;
}

static int open_models(struct srv *s, char *err, size_t err_len)
{
    if (s->cfg->models[0])
        return open_model_list(s, err, err_len);
    char *path = resolve_model(s->cfg, err, err_len);
    if (!path)
        return -1;
    s->models = calloc(1, sizeof(*s->models));
    int rc = s->models ? open_one(s, path, s->cfg->model_id, err, err_len) : -1;
    free(path);
    return rc;
}

static void close_all(struct srv *s)
{
    for (int i = 0; i < s->n_models; i++)
        srv_model_close(&s->models[i]);
    free(s->models);
    store_close(s->store);
}

/* Waits for in-flight requests to finish, at most timeout_s seconds. */
static void drain(int timeout_s)
{
    for (int i = 0; i < timeout_s * 20 && http_active() > 0; i++)
        usleep(50 * 1000);
}

int cli_serve(int argc, char **argv)
{
    struct chatd_config cfg;
    char err[CFG_ERRMSG_LEN];
    cfg_init(&cfg);
    int rc = cfg_from_args(&cfg, argc, argv, environ, stdout, err, sizeof(err));
    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "chatd: %s\n", err);
        cfg_fini(&cfg);
        return rc < 0 ? 2 : 0;
    }
    log_set_level(cfg.log_level);

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    static struct srv s;
    s.cfg = &cfg;
    s.started = time(NULL);
    pthread_mutex_init(&s.meter_mu, NULL);
    if (open_store(&s, err, sizeof(err)) != 0 || open_models(&s, err, sizeof(err)) != 0) {
        log_error("start failed error=\"%s\"", err);
        close_all(&s);
        cfg_fini(&cfg);
        return 1;
    }
    s.daemon = http_start(&s, cfg.host, (int)cfg.port, (int)cfg.max_connections,
                          (int)cfg.connection_timeout_s, srv_routes, err, sizeof(err));
    if (!s.daemon) {
        log_error("start failed error=\"%s\"", err);
        close_all(&s);
        cfg_fini(&cfg);
        return 1;
    }
    log_info("listening address=http://%s:%lld auth=%s db=%s", cfg.host, (long long)cfg.port,
             cfg.auth_mode, cfg.db_path);
    if (strcmp(cfg.auth_mode, "open") == 0)
        log_warn("auth=open: every caller is the local user, an admin; this mode is for a single local user (admin endpoints answer loopback requests only); serve others with --auth keys");

    int sig = 0;
    sigwait(&sigs, &sig);
    log_info("shutdown signal=%s in_flight=%d", sig == SIGINT ? "SIGINT" : "SIGTERM", http_active());
    s.stopping = true;
    MHD_quiesce_daemon(s.daemon);
    drain((int)cfg.shutdown_timeout_s);
    for (int i = 0; i < s.n_models; i++)
        eng_stop(s.models[i].eng), s.models[i].eng = NULL;
    MHD_stop_daemon(s.daemon);
    close_all(&s);
    log_info("stopped");
    cfg_fini(&cfg);
    return 0;
}
