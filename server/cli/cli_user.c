/* cli_user.c - the account commands: `chatd user add|list`, `chatd key
 * create|revoke|list` and `chatd usage`. They open the same database as the server
 * (--db, CHATD_DB, the config file's [storage] db; default ./chatd.db) and are safe to
 * run while it serves: the store waits for the server's short write transactions
 * instead of failing. A new key is printed once, alone on stdout, so that scripts can
 * capture it; everything else is a plain table. Exit codes: 0 done, 1 failure (also:
 * unknown user or key, name taken), 2 bad arguments. */
#include "cli/cli.h"
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern char **environ;

#define MAX_ARGS 64

/* The arguments of one command, split into its own and the config flags. */
struct cli_args {
    const char *pos[4]; /* positional arguments */
    int n_pos;
    bool admin;        /* --admin */
    const char *quota; /* --quota TOKENS */
    const char *user;  /* --user NAME */
    const char *since; /* --since YYYY-MM-DD */
    const char *until; /* --until YYYY-MM-DD */
    bool help;
    char *rest[MAX_ARGS]; /* argv[0] and the config flags, for cfg_from_args */
    int n_rest;
};

/* Which own flags a command accepts. */
enum {
    FLAG_ADMIN = 1,
    FLAG_QUOTA = 2,
    FLAG_USER = 4,
    FLAG_SINCE = 8,
};

static int parse_args(int argc, char **argv, unsigned flags, struct cli_args *a)
{
    memset(a, 0, sizeof(*a));
    a->rest[a->n_rest++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char **slot = NULL;
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            a->help = true;
            continue;
        }
        if ((flags & FLAG_ADMIN) && strcmp(s, "--admin") == 0) {
            a->admin = true;
            continue;
        }
        if ((flags & FLAG_QUOTA) && strcmp(s, "--quota") == 0)
            slot = &a->quota;
        else if ((flags & FLAG_USER) && strcmp(s, "--user") == 0)
            slot = &a->user;
        else if ((flags & FLAG_SINCE) && strcmp(s, "--since") == 0)
            slot = &a->since;
        else if ((flags & FLAG_SINCE) && strcmp(s, "--until") == 0)
            slot = &a->until;
        if (slot) {
            if (i + 1 >= argc) {
                fprintf(stderr, "chatd %s: %s needs a value\n", argv[0], s);
                return -1;
            }
            *slot = argv[++i];
            continue;
        }
        if (strncmp(s, "--", 2) == 0) {
            /* A config flag (--db PATH, --config FILE, --db=PATH): every config option
             * takes a value. */
            if (a->n_rest + 2 > MAX_ARGS) {
                fprintf(stderr, "chatd %s: too many arguments\n", argv[0]);
                return -1;
            }
            a->rest[a->n_rest++] = argv[i];
            if (!strchr(s, '=') && i + 1 < argc)
                a->rest[a->n_rest++] = argv[++i];
            continue;
        }
        if (a->n_pos == (int)(sizeof(a->pos) / sizeof(a->pos[0]))) {
            fprintf(stderr, "chatd %s: unexpected argument '%s'\n", argv[0], s);
            return -1;
        }
        a->pos[a->n_pos++] = s;
    }
    return 0;
}

/* Opens the database named by the configuration (flags, CHATD_DB, config file). */
static int open_store(struct cli_args *a, struct store **st, char *currency, size_t cur_len)
{
    struct chatd_config cfg;
    char err[CFG_ERRMSG_LEN];
    cfg_init(&cfg);
    int rc = cfg_from_args(&cfg, a->n_rest, a->rest, environ, stdout, err, sizeof(err));
    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "chatd %s: %s\n", a->rest[0], err);
        cfg_fini(&cfg);
        return 2;
    }
    if (currency)
        snprintf(currency, cur_len, "%s", cfg.currency);
    char *path = cfg_expand_home(cfg.db_path);
    char serr[512];
    rc = path ? store_open(path, NULL, st, serr, sizeof(serr)) : STORE_ENOMEM;
    if (rc)
        fprintf(stderr, "chatd %s: %s\n", a->rest[0], path ? serr : "out of memory");
    free(path);
    cfg_fini(&cfg);
    return rc ? 1 : 0;
}

static int fail(const char *cmd, int rc)
{
    fprintf(stderr, "chatd %s: %s (%s)\n", cmd, store_errmsg(), store_strerror(rc));
    return rc == STORE_EINVAL ? 2 : 1;
}

/* Parses a whole non-negative decimal number. */
static bool parse_count(const char *s, int64_t *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < 0)
        return false;
    *out = v;
    return true;
}

/* Parses YYYY-MM-DD as midnight UTC, in ms. */
static bool parse_date(const char *s, int64_t *ms)
{
    int y, m, d;
    char tail;
    if (!s || strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3)
        return false;
    if (y < 1970 || m < 1 || m > 12 || d < 1 || d > 31)
        return false;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};
    time_t t = timegm(&tm);
    struct tm back;
    gmtime_r(&t, &back);
    if (back.tm_mday != d) /* 2026-02-30 */
        return false;
    *ms = (int64_t)t * 1000;
    return true;
}

static void format_time(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

/* ---- chatd user ---- */

static void user_usage(FILE *out)
{
    fprintf(out, "usage: chatd user add NAME [--admin] [--quota TOKENS] [--db PATH]\n"
                 "       chatd user list [--db PATH]\n\n"
                 "NAME: letters, digits, '.', '_', '-' (at most 64). TOKENS: tokens per calendar\n"
                 "month (UTC), 0 = unlimited. The database is --db, else CHATD_DB, else the\n"
                 "config file's [storage] db, else ./chatd.db.\n");
}

static int user_add(struct cli_args *a, struct store *st)
{
    int64_t quota = 0;
    if (a->quota && !parse_count(a->quota, &quota)) {
        fprintf(stderr, "chatd user add: --quota '%s' is not a whole number >= 0\n", a->quota);
        return 2;
    }
    struct store_user u;
    int rc = store_user_add(st, a->pos[1], a->admin, quota, &u);
    if (rc)
        return fail("user add", rc);
    char shown[40] = "unlimited";
    if (u.token_quota)
        snprintf(shown, sizeof(shown), "%lld tokens/month", (long long)u.token_quota);
    printf("added user %s (id %lld%s, quota %s)\n", u.name, (long long)u.id,
           u.is_admin ? ", admin" : "", shown);
    return 0;
}

static int user_list(struct store *st)
{
    struct store_user *users;
    size_t n;
    int rc = store_user_list(st, &users, &n);
    if (rc)
        return fail("user list", rc);
    printf("%-6s %-24s %-5s %14s %5s  %s\n", "ID", "NAME", "ADMIN", "QUOTA", "KEYS", "CREATED");
    for (size_t i = 0; i < n; i++) {
        struct store_key *keys;
        size_t n_keys;
        int active = 0;
        if (store_key_list(st, users[i].id, &keys, &n_keys) == 0) {
            for (size_t k = 0; k < n_keys; k++)
                active += keys[k].revoked_ms == 0;
            free(keys);
        }
        char quota[32];
        char created[32];
        if (users[i].token_quota)
            snprintf(quota, sizeof(quota), "%lld", (long long)users[i].token_quota);
        else
            snprintf(quota, sizeof(quota), "unlimited");
        format_time(users[i].created_ms, created, sizeof(created));
        printf("%-6lld %-24s %-5s %14s %5d  %s\n", (long long)users[i].id, users[i].name,
               users[i].is_admin ? "yes" : "no", quota, active, created);
    }
    free(users);
    return 0;
}

int cli_user(int argc, char **argv)
{
    struct cli_args a;
    if (parse_args(argc, argv, FLAG_ADMIN | FLAG_QUOTA, &a) != 0) {
        user_usage(stderr);
        return 2;
    }
    if (a.help) {
        user_usage(stdout);
        return 0;
    }
    bool add = a.n_pos == 2 && strcmp(a.pos[0], "add") == 0;
    bool list = a.n_pos == 1 && strcmp(a.pos[0], "list") == 0;
    if (!add && !list) {
        user_usage(stderr);
        return 2;
    }
    if (list && (a.admin || a.quota)) {
        fprintf(stderr, "chatd user list: --admin and --quota belong to 'user add'\n");
        return 2;
    }
    struct store *st;
    int rc = open_store(&a, &st, NULL, 0);
    if (rc)
        return rc;
    rc = add ? user_add(&a, st) : user_list(st);
    store_close(st);
    return rc;
}

/* ---- chatd key ---- */

static void key_usage(FILE *out)
{
    fprintf(out, "usage: chatd key create USER [--db PATH]   print a new key for USER (once)\n"
                 "       chatd key revoke PREFIX [--db PATH] revoke the key starting with PREFIX\n"
                 "       chatd key list USER [--db PATH]     USER's keys (prefixes only)\n");
}

static int key_create(const char *name, struct store *st)
{
    struct store_user u;
    int rc = store_user_get_by_name(st, name, &u);
    if (rc)
        return fail("key create", rc);
    char key[STORE_KEY_LEN + 1];
    struct store_key info;
    rc = store_key_create(st, u.id, key, sizeof(key), &info);
    if (rc)
        return fail("key create", rc);
    printf("%s\n", key);
    fflush(stdout);
    fprintf(stderr, "created key %s... for user %s; it is shown only now, store it safely\n",
            info.prefix, u.name);
    memset(key, 0, sizeof(key));
    return 0;
}

static int key_revoke(const char *prefix, struct store *st)
{
    struct store_key k;
    int rc = store_key_revoke(st, prefix, &k);
    if (rc)
        return fail("key revoke", rc);
    struct store_user u;
    const char *owner = store_user_get(st, k.user_id, &u) == 0 ? u.name : "?";
    printf("revoked key %s... of user %s\n", k.prefix, owner);
    return 0;
}

static int key_list(const char *name, struct store *st)
{
    struct store_user u;
    int rc = store_user_get_by_name(st, name, &u);
    if (rc)
        return fail("key list", rc);
    struct store_key *keys;
    size_t n;
    rc = store_key_list(st, u.id, &keys, &n);
    if (rc)
        return fail("key list", rc);
    printf("%-20s %-19s  %s\n", "PREFIX", "CREATED", "REVOKED");
    for (size_t i = 0; i < n; i++) {
        char created[32];
        char revoked[32] = "-";
        format_time(keys[i].created_ms, created, sizeof(created));
        if (keys[i].revoked_ms)
            format_time(keys[i].revoked_ms, revoked, sizeof(revoked));
        printf("%s... %-19s  %s\n", keys[i].prefix, created, revoked);
    }
    free(keys);
    return 0;
}

int cli_key(int argc, char **argv)
{
    struct cli_args a;
    if (parse_args(argc, argv, 0, &a) != 0) {
        key_usage(stderr);
        return 2;
    }
    if (a.help) {
        key_usage(stdout);
        return 0;
    }
    const char *verb = a.n_pos == 2 ? a.pos[0] : "";
    if (strcmp(verb, "create") != 0 && strcmp(verb, "revoke") != 0 && strcmp(verb, "list") != 0) {
        key_usage(stderr);
        return 2;
    }
    struct store *st;
    int rc = open_store(&a, &st, NULL, 0);
    if (rc)
        return rc;
    if (strcmp(verb, "create") == 0)
        rc = key_create(a.pos[1], st);
    else if (strcmp(verb, "revoke") == 0)
        rc = key_revoke(a.pos[1], st);
    else
        rc = key_list(a.pos[1], st);
    store_close(st);
    return rc;
}

/* ---- chatd usage ---- */

static void usage_usage(FILE *out)
{
    fprintf(out, "usage: chatd usage [--user NAME] [--since YYYY-MM-DD] [--until YYYY-MM-DD]"
                 " [--db PATH]\n\n"
                 "Per-user totals: requests, input tokens served from the cache (hit) and not\n"
                 "(miss), output tokens and cost. Dates are UTC; --since is inclusive, --until\n"
                 "exclusive.\n");
}

/* Micro-units as a decimal amount: 1234567 -> "1.234567". */
static void format_money(int64_t micros, char *buf, size_t len)
{
    const char *sign = micros < 0 ? "-" : "";
    uint64_t m = micros < 0 ? (uint64_t)0 - (uint64_t)micros : (uint64_t)micros;
    snprintf(buf, len, "%s%llu.%06llu", sign, (unsigned long long)(m / 1000000),
             (unsigned long long)(m % 1000000));
}

static void print_total_row(const char *name, const struct store_usage_total *t,
                            const char *currency)
{
    char cost[48];
    format_money(t->cost_micros, cost, sizeof(cost));
    printf("%-24s %10lld %14lld %14lld %14lld %18s %s\n", name, (long long)t->requests,
           (long long)t->cached_tokens, (long long)t->miss_tokens, (long long)t->completion_tokens,
           cost, currency);
}

static int usage_report(struct cli_args *a, struct store *st, const char *currency)
{
    struct store_usage_query q = {.group_by = STORE_GROUP_USER};
    if (a->since && !parse_date(a->since, &q.from_ms)) {
        fprintf(stderr, "chatd usage: --since '%s' is not a date YYYY-MM-DD\n", a->since);
        return 2;
    }
    if (a->until && !parse_date(a->until, &q.to_ms)) {
        fprintf(stderr, "chatd usage: --until '%s' is not a date YYYY-MM-DD\n", a->until);
        return 2;
    }
    if (a->user) {
        struct store_user u;
        int rc = store_user_get_by_name(st, a->user, &u);
        if (rc)
            return fail("usage", rc);
        q.user_id = u.id;
    }
    struct store_usage_total *t;
    size_t n;
    int rc = store_usage_totals(st, &q, &t, &n);
    if (rc)
        return fail("usage", rc);
    printf("%-24s %10s %14s %14s %14s %18s\n", "USER", "REQUESTS", "INPUT_HIT", "INPUT_MISS",
           "OUTPUT", "COST");
    struct store_usage_total sum = {0};
    for (size_t i = 0; i < n; i++) {
        print_total_row(t[i].key, &t[i], currency);
        sum.requests += t[i].requests;
        sum.cached_tokens += t[i].cached_tokens;
        sum.miss_tokens += t[i].miss_tokens;
        sum.completion_tokens += t[i].completion_tokens;
        sum.cost_micros += t[i].cost_micros;
    }
    if (a->user && n == 0)
        print_total_row(a->user, &sum, currency);
    if (!a->user)
        print_total_row("TOTAL", &sum, currency);
    free(t);
    return 0;
}

int cli_usage(int argc, char **argv)
{
    struct cli_args a;
    if (parse_args(argc, argv, FLAG_USER | FLAG_SINCE, &a) != 0) {
        usage_usage(stderr);
        return 2;
    }
    if (a.help) {
        usage_usage(stdout);
        return 0;
    }
    int64_t ms;
    if (a.n_pos != 0 || (a.since && !parse_date(a.since, &ms)) ||
        (a.until && !parse_date(a.until, &ms))) {
        if (a.n_pos == 0)
            fprintf(stderr, "chatd usage: dates are YYYY-MM-DD\n");
        usage_usage(stderr);
        return 2;
    }
    struct store *st;
    char currency[32];
    int rc = open_store(&a, &st, currency, sizeof(currency));
    if (rc)
        return rc;
    rc = usage_report(&a, st, currency);
    store_close(st);
    return rc;
}
