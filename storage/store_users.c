/* store_users.c - users and their API keys.
 *
 * A key is 32 random bytes from libsodium written as "sk-chatd-" + 43 base64url
 * characters. Only its BLAKE2b-256 hash and its first STORE_KEY_PREFIX_LEN characters
 * are stored. The key carries 256 random bits, so a fast unsalted hash is safe (a
 * slow password hash would cost every request milliseconds for nothing). Lookup is by
 * the unique prefix, then the hashes are compared in constant time. Called from any
 * thread (see store.h). */
#include "store_int.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define KEY_TAG "sk-chatd-"
#define KEY_TAG_LEN 9
#define KEY_RANDOM_BYTES 32
#define KEY_HASH_BYTES 32

_Static_assert(STORE_KEY_LEN == KEY_TAG_LEN + 43, "base64url of 32 bytes is 43 characters");

/* ---- users ---- */

static const char sql_user_insert[] =
    "INSERT INTO users (name, is_admin, token_quota, created_at) VALUES (?1, ?2, ?3, ?4)";
static const char sql_user_by_id[] =
    "SELECT id, name, is_admin, token_quota, created_at FROM users WHERE id = ?1";
static const char sql_user_by_name[] =
    "SELECT id, name, is_admin, token_quota, created_at FROM users WHERE name = ?1";
static const char sql_user_list[] =
    "SELECT id, name, is_admin, token_quota, created_at FROM users ORDER BY id";
static const char sql_user_quota[] = "UPDATE users SET token_quota = ?2 WHERE id = ?1";

static void user_from_row(sqlite3_stmt *s, struct store_user *u)
{
    memset(u, 0, sizeof(*u));
    u->id = sqlite3_column_int64(s, 0);
    sdb_col_copy(s, 1, u->name, sizeof(u->name));
    u->is_admin = sqlite3_column_int(s, 2) != 0;
    u->token_quota = sqlite3_column_int64(s, 3);
    u->created_ms = sqlite3_column_int64(s, 4);
}

/* Reads one user by id (by_name NULL) or by name into *out. */
static int user_fetch(struct store *st, int64_t id, const char *by_name, struct store_user *out)
{
    sqlite3_stmt *s = sdb_prep(st, by_name ? sql_user_by_name : sql_user_by_id);
    if (!s)
        return STORE_ESQL;
    int rc = by_name ? sdb_bind_text(st, s, 1, by_name) : sdb_bind_int(st, s, 1, id);
    if (rc == 0)
        rc = sdb_step(st, s);
    if (rc == SQLITE_ROW) {
        if (out)
            user_from_row(s, out);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = by_name ? sdb_fail(STORE_ENOTFOUND, "user '%.64s' not found", by_name)
                     : sdb_fail(STORE_ENOTFOUND, "user %lld not found", (long long)id);
    }
    sdb_done(s);
    return rc;
}

struct user_add_ctx {
    const char *name;
    bool is_admin;
    int64_t quota;
    bool get_or_create; /* store_user_local: an existing user is fine */
    struct store_user *out;
};

static int user_add_tx(struct store *st, void *ctx)
{
    struct user_add_ctx *c = ctx;
    if (c->get_or_create && user_fetch(st, 0, c->name, c->out) == 0)
        return 0;
    sqlite3_stmt *s = sdb_prep(st, sql_user_insert);
    if (!s)
        return STORE_ESQL;
    int rc = sdb_bind_text(st, s, 1, c->name);
    rc = rc ? rc : sdb_bind_int(st, s, 2, c->is_admin ? 1 : 0);
    rc = rc ? rc : sdb_bind_int(st, s, 3, c->quota);
    rc = rc ? rc : sdb_bind_int(st, s, 4, sdb_now(st));
    rc = rc ? rc : sdb_exec_stmt(st, s);
    sdb_done(s);
    if (rc == STORE_EEXISTS)
        return sdb_fail(rc, "user '%s' already exists", c->name);
    if (rc)
        return rc;
    return user_fetch(st, sqlite3_last_insert_rowid(sdb_db(st)), NULL, c->out);
}

int store_user_add(struct store *st, const char *name, bool is_admin, int64_t token_quota,
                   struct store_user *out)
{
    int rc = sdb_check_name(name);
    if (rc)
        return rc;
    if (token_quota < 0)
        return sdb_fail(STORE_EINVAL, "token quota %lld is negative", (long long)token_quota);
    struct user_add_ctx c = {name, is_admin, token_quota, false, out};
    return sdb_run(st, true, user_add_tx, &c);
}

int store_user_local(struct store *st, struct store_user *out)
{
    /* Called per request in open auth: read first, take the write lock only once. */
    struct store_user u;
    int rc = store_user_get_by_name(st, STORE_LOCAL_USER, &u);
    if (rc != STORE_ENOTFOUND) {
        if (rc == 0 && out)
            *out = u;
        return rc;
    }
    struct user_add_ctx c = {STORE_LOCAL_USER, true, 0, true, out};
    return sdb_run(st, true, user_add_tx, &c);
}

struct user_get_ctx {
    int64_t id;
    const char *name;
    struct store_user *out;
};

static int user_get_tx(struct store *st, void *ctx)
{
    struct user_get_ctx *c = ctx;
    return user_fetch(st, c->id, c->name, c->out);
}

int store_user_get(struct store *st, int64_t id, struct store_user *out)
{
    struct user_get_ctx c = {id, NULL, out};
    return sdb_run(st, false, user_get_tx, &c);
}

int store_user_get_by_name(struct store *st, const char *name, struct store_user *out)
{
    if (!name)
        return sdb_fail(STORE_EINVAL, "user name: NULL");
    struct user_get_ctx c = {0, name, out};
    return sdb_run(st, false, user_get_tx, &c);
}

struct list_ctx {
    void *arr;
    size_t n;
    int64_t id; /* filter */
};

static int user_list_tx(struct store *st, void *ctx)
{
    struct list_ctx *c = ctx;
    free(c->arr);
    c->arr = NULL;
    c->n = 0;
    sqlite3_stmt *s = sdb_prep(st, sql_user_list);
    if (!s)
        return STORE_ESQL;
    int rc;
    while ((rc = sdb_step(st, s)) == SQLITE_ROW) {
        struct store_user *u = sdb_grow(&c->arr, c->n, sizeof(*u));
        if (!u) {
            rc = sdb_fail(STORE_ENOMEM, "user list: out of memory");
            break;
        }
        user_from_row(s, u);
        c->n++;
    }
    sdb_done(s);
    return rc == SQLITE_DONE ? 0 : rc;
}

int store_user_list(struct store *st, struct store_user **out, size_t *n)
{
    struct list_ctx c = {0};
    int rc = sdb_run(st, false, user_list_tx, &c);
    if (rc) {
        free(c.arr);
        c.arr = NULL;
        c.n = 0;
    }
    *out = c.arr;
    *n = c.n;
    return rc;
}

struct quota_ctx {
    int64_t id;
    int64_t quota;
};

static int user_quota_tx(struct store *st, void *ctx)
{
    struct quota_ctx *c = ctx;
    const int64_t params[] = {c->id, c->quota};
    int rc = sdb_exec_ints(st, sql_user_quota, params, 2);
    if (rc == 0 && sqlite3_changes(sdb_db(st)) == 0)
        rc = sdb_fail(STORE_ENOTFOUND, "user %lld not found", (long long)c->id);
    return rc;
}

int store_user_set_quota(struct store *st, int64_t id, int64_t token_quota)
{
    if (token_quota < 0)
        return sdb_fail(STORE_EINVAL, "token quota %lld is negative", (long long)token_quota);
    struct quota_ctx c = {id, token_quota};
    return sdb_run(st, true, user_quota_tx, &c);
}

/* ---- keys ---- */

static const char sql_key_insert[] =
    "INSERT INTO api_keys (user_id, prefix, hash, created_at) VALUES (?1, ?2, ?3, ?4)";
static const char sql_key_by_prefix[] =
    "SELECT id, user_id, prefix, created_at, revoked_at, hash FROM api_keys WHERE prefix = ?1";
static const char sql_key_revoke[] =
    "UPDATE api_keys SET revoked_at = ?2 WHERE prefix = ?1 AND revoked_at IS NULL";
static const char sql_key_list[] =
    "SELECT id, user_id, prefix, created_at, revoked_at FROM api_keys WHERE user_id = ?1 "
    "ORDER BY created_at DESC, id DESC";

static void key_from_row(sqlite3_stmt *s, struct store_key *k)
{
    memset(k, 0, sizeof(*k));
    k->id = sqlite3_column_int64(s, 0);
    k->user_id = sqlite3_column_int64(s, 1);
    sdb_col_copy(s, 2, k->prefix, sizeof(k->prefix));
    k->created_ms = sqlite3_column_int64(s, 3);
    k->revoked_ms = sqlite3_column_int64(s, 4);
}

static void key_hash(const char *key, unsigned char hash[KEY_HASH_BYTES])
{
    crypto_generichash(hash, KEY_HASH_BYTES, (const unsigned char *)key, strlen(key), NULL, 0);
}

/* True when `key` has the exact shape of a chatd key. */
static bool key_well_formed(const char *key)
{
    if (strnlen(key, STORE_KEY_LEN + 1) != STORE_KEY_LEN || strncmp(key, KEY_TAG, KEY_TAG_LEN))
        return false;
    for (const char *p = key + KEY_TAG_LEN; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

struct key_create_ctx {
    int64_t user_id;
    char key[STORE_KEY_LEN + 1];
    struct store_key *info;
};

static int key_create_tx(struct store *st, void *ctx)
{
    struct key_create_ctx *c = ctx;
    int rc = user_fetch(st, c->user_id, NULL, NULL);
    if (rc)
        return rc;
    int64_t now = sdb_now(st);
    /* A prefix carries 48 random bits; on the rare collision draw a new key. */
    for (int attempt = 0; attempt < 8; attempt++) {
        unsigned char raw[KEY_RANDOM_BYTES];
        randombytes_buf(raw, sizeof(raw));
        memcpy(c->key, KEY_TAG, KEY_TAG_LEN);
        sodium_bin2base64(c->key + KEY_TAG_LEN, sizeof(c->key) - KEY_TAG_LEN, raw, sizeof(raw),
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        sodium_memzero(raw, sizeof(raw));
        char prefix[STORE_KEY_PREFIX_LEN + 1];
        memcpy(prefix, c->key, STORE_KEY_PREFIX_LEN);
        prefix[STORE_KEY_PREFIX_LEN] = 0;
        unsigned char hash[KEY_HASH_BYTES];
        key_hash(c->key, hash);
        sqlite3_stmt *s = sdb_prep(st, sql_key_insert);
        if (!s)
            return STORE_ESQL;
        rc = sdb_bind_int(st, s, 1, c->user_id);
        rc = rc ? rc : sdb_bind_text(st, s, 2, prefix);
        if (rc == 0 && sqlite3_bind_blob(s, 3, hash, sizeof(hash), SQLITE_TRANSIENT) != SQLITE_OK)
            rc = sdb_sqlerr(st, SQLITE_ERROR, "bind");
        rc = rc ? rc : sdb_bind_int(st, s, 4, now);
        rc = rc ? rc : sdb_exec_stmt(st, s);
        sdb_done(s);
        if (rc != STORE_EEXISTS)
            break;
    }
    if (rc)
        return rc;
    if (c->info) {
        memset(c->info, 0, sizeof(*c->info));
        c->info->id = sqlite3_last_insert_rowid(sdb_db(st));
        c->info->user_id = c->user_id;
        memcpy(c->info->prefix, c->key, STORE_KEY_PREFIX_LEN);
        c->info->created_ms = now;
    }
    return 0;
}

int store_key_create(struct store *st, int64_t user_id, char *key_out, size_t key_len,
                     struct store_key *info)
{
    if (key_len > 0)
        key_out[0] = 0;
    if (key_len < STORE_KEY_LEN + 1)
        return sdb_fail(STORE_EINVAL, "key buffer of %zu bytes is too small", key_len);
    struct key_create_ctx c = {.user_id = user_id, .info = info};
    int rc = sdb_run(st, true, key_create_tx, &c);
    if (rc == 0)
        memcpy(key_out, c.key, STORE_KEY_LEN + 1);
    sodium_memzero(c.key, sizeof(c.key));
    return rc;
}

struct key_auth_ctx {
    const char *key;
    char prefix[STORE_KEY_PREFIX_LEN + 1];
    struct store_user *user;
    struct store_key *info;
};

static int key_auth_tx(struct store *st, void *ctx)
{
    struct key_auth_ctx *c = ctx;
    /* Hash first, so that an unknown prefix costs the same time as a known one. */
    unsigned char got[KEY_HASH_BYTES];
    key_hash(c->key, got);
    sqlite3_stmt *s = sdb_prep(st, sql_key_by_prefix);
    if (!s)
        return STORE_ESQL;
    int rc = sdb_bind_text(st, s, 1, c->prefix);
    rc = rc ? rc : sdb_step(st, s);
    if (rc == SQLITE_DONE) {
        sdb_done(s);
        return sdb_fail(STORE_ENOTFOUND, "unknown API key %s...", c->prefix);
    }
    if (rc != SQLITE_ROW) {
        sdb_done(s);
        return rc;
    }
    struct store_key k;
    key_from_row(s, &k);
    unsigned char want[KEY_HASH_BYTES];
    bool hash_ok = sqlite3_column_bytes(s, 5) == KEY_HASH_BYTES;
    if (hash_ok)
        memcpy(want, sqlite3_column_blob(s, 5), KEY_HASH_BYTES);
    sdb_done(s);
    if (!hash_ok || sodium_memcmp(want, got, KEY_HASH_BYTES) != 0)
        return sdb_fail(STORE_ENOTFOUND, "unknown API key %s...", c->prefix);
    if (k.revoked_ms)
        return sdb_fail(STORE_EREVOKED, "API key %s... was revoked", c->prefix);
    if (c->info)
        *c->info = k;
    return user_fetch(st, k.user_id, NULL, c->user);
}

int store_key_auth(struct store *st, const char *key, struct store_user *user,
                   struct store_key *info)
{
    if (!key || !key_well_formed(key))
        return sdb_fail(STORE_ENOTFOUND, "malformed API key");
    struct key_auth_ctx c = {.key = key, .user = user, .info = info};
    memcpy(c.prefix, key, STORE_KEY_PREFIX_LEN);
    return sdb_run(st, false, key_auth_tx, &c);
}

struct key_revoke_ctx {
    char prefix[STORE_KEY_PREFIX_LEN + 1];
    struct store_key *info;
};

static int key_revoke_tx(struct store *st, void *ctx)
{
    struct key_revoke_ctx *c = ctx;
    sqlite3_stmt *s = sdb_prep(st, sql_key_revoke);
    if (!s)
        return STORE_ESQL;
    int rc = sdb_bind_text(st, s, 1, c->prefix);
    rc = rc ? rc : sdb_bind_int(st, s, 2, sdb_now(st));
    rc = rc ? rc : sdb_exec_stmt(st, s);
    sdb_done(s);
    if (rc)
        return rc;
    s = sdb_prep(st, sql_key_by_prefix);
    if (!s)
        return STORE_ESQL;
    rc = sdb_bind_text(st, s, 1, c->prefix);
    rc = rc ? rc : sdb_step(st, s);
    if (rc == SQLITE_ROW) {
        if (c->info)
            key_from_row(s, c->info);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = sdb_fail(STORE_ENOTFOUND, "no API key with prefix %s", c->prefix);
    }
    sdb_done(s);
    return rc;
}

int store_key_revoke(struct store *st, const char *prefix, struct store_key *info)
{
    if (!prefix || strnlen(prefix, STORE_KEY_PREFIX_LEN) < STORE_KEY_PREFIX_LEN ||
        strncmp(prefix, KEY_TAG, KEY_TAG_LEN) != 0)
        return sdb_fail(STORE_EINVAL, "key prefix: want the first %d characters of a key (%s...)",
                        STORE_KEY_PREFIX_LEN, KEY_TAG);
    struct key_revoke_ctx c = {.info = info};
    memcpy(c.prefix, prefix, STORE_KEY_PREFIX_LEN);
    return sdb_run(st, true, key_revoke_tx, &c);
}

static int key_list_tx(struct store *st, void *ctx)
{
    struct list_ctx *c = ctx;
    free(c->arr);
    c->arr = NULL;
    c->n = 0;
    int rc = user_fetch(st, c->id, NULL, NULL);
    if (rc)
        return rc;
    sqlite3_stmt *s = sdb_prep(st, sql_key_list);
    if (!s)
        return STORE_ESQL;
    rc = sdb_bind_int(st, s, 1, c->id);
    while (rc == 0 && (rc = sdb_step(st, s)) == SQLITE_ROW) {
        struct store_key *k = sdb_grow(&c->arr, c->n, sizeof(*k));
        if (!k) {
            rc = sdb_fail(STORE_ENOMEM, "key list: out of memory");
            break;
        }
        key_from_row(s, k);
        c->n++;
        rc = 0;
    }
    sdb_done(s);
    return rc == SQLITE_DONE ? 0 : rc;
}

int store_key_list(struct store *st, int64_t user_id, struct store_key **out, size_t *n)
{
    struct list_ctx c = {.id = user_id};
    int rc = sdb_run(st, false, key_list_tx, &c);
    if (rc) {
        free(c.arr);
        c.arr = NULL;
        c.n = 0;
    }
    *out = c.arr;
    *n = c.n;
    return rc;
}
