/* store.h - chatd's storage: users, API keys, sessions, messages, usage, prices and
 * idempotency keys in one SQLite database. This is the only header of storage/.
 *
 * Threads: any thread may call any function on a shared handle. A handle holds one
 * writer connection and n_readers reader connections, each used by one thread at a
 * time: writes are serialised on the writer (SQLite has one writer anyway) and are
 * short; reads take a free reader and never wait behind a writer's fsync. Several
 * handles or processes (the `chatd user`/`key`/`usage` commands while the server
 * runs) may open the same file: WAL mode, write transactions are `BEGIN IMMEDIATE`
 * and wait up to busy_timeout_ms for the write lock, and a transaction that still
 * meets SQLITE_BUSY is rolled back and retried a few times, so a busy database is not
 * an error. The path must name a file (":memory:" would give each connection its own
 * database).
 *
 * Durability: synchronous=FULL: a function that returns 0 after a write has
 * committed it to disk. Streaming replies are written by group commit (all streams'
 * latest text in one transaction, at most once per flush_interval_ms; see
 * store_reply_flush): a crash loses at most the text produced since the last group
 * commit, about flush_interval_ms of each reply.
 *
 * Errors: functions return 0 or a negative STORE_E* code; store_errmsg() describes
 * the calling thread's last failure (naming the value that was wrong).
 *
 * Time: every *_ms field is milliseconds since the Unix epoch (UTC), taken from the
 * handle's clock (store_params.now_ms, the wall clock by default).
 *
 * Money: int64 micro-units of the configured currency. Prices are micro-units per
 * million tokens. The cost of one request is
 *     ceil((miss * input_miss + hit * input_hit + completion * output) / 1e6)
 * computed exactly in 64-bit integers (overflow is an error, never wrapped): the sum
 * is rounded up ONCE per request, to a whole micro-unit. Totals are sums of the
 * stored per-request costs, so a total always equals the sum of its rows.
 *
 * Ownership: input strings are borrowed for the call. Results are written into
 * caller structs; arrays and heap strings in results are freed as each function says.
 */
#ifndef CHATD_STORE_H
#define CHATD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- errors ---- */

#define STORE_ERRNO_MAP(X)                                                                         \
    X(ENOTFOUND, -1, "not found")                                                                  \
    X(EEXISTS, -2, "already exists")                                                               \
    X(EINVAL, -3, "invalid argument")                                                              \
    X(ENOMEM, -4, "out of memory")                                                                 \
    X(EBUSY, -5, "database busy")                                                                  \
    X(ETOONEW, -6, "database was written by a newer chatd")                                        \
    X(ENOTDB, -7, "not a chatd database")                                                          \
    X(EREVOKED, -8, "API key revoked")                                                             \
    X(EOVERFLOW, -9, "arithmetic overflow")                                                        \
    X(ESQL, -10, "database error")                                                                 \
    X(EQUOTA, -11, "token quota exceeded")

enum store_errno {
#define STORE_ERRNO_ENUM_(name, code, text) STORE_##name = code,
    STORE_ERRNO_MAP(STORE_ERRNO_ENUM_)
#undef STORE_ERRNO_ENUM_
};

/* Short description of a STORE_E* code ("not found"); "unknown error" otherwise. */
const char *store_strerror(int code);
/* Details of the calling thread's last failed store_* call (never NULL; "" if none).
 * Borrowed until that thread's next store_* call. */
const char *store_errmsg(void);
/* The linked SQLite library's version string. */
const char *store_sqlite_version(void);

/* ---- limits ----
 * Ids (session, request, idempotency key) and model ids are 1..max bytes of printable
 * ASCII without space, '/' or backslash; anything else is STORE_EINVAL (or, for a looked-up
 * session id, STORE_ENOTFOUND). */

#define STORE_NAME_MAX 64   /* user names: [A-Za-z0-9._-], 1..64 bytes */
#define STORE_ID_MAX 64     /* session ids, request ids, idempotency keys */
#define STORE_MODEL_MAX 128 /* model ids */
#define STORE_FINGERPRINT_MAX 128
#define STORE_KEY_LEN 52         /* "sk-chatd-" + 43 base64url characters (32 bytes) */
#define STORE_KEY_PREFIX_LEN 17  /* "sk-chatd-" + the first 8 random characters */
#define STORE_LOCAL_USER "local" /* the implicit user of open auth */

/* ---- opening ---- */

typedef void (*store_log_fn)(void *user, int level, const char *msg);
typedef int64_t (*store_clock_fn)(void *user);

#define STORE_LOG_DEBUG 0
#define STORE_LOG_INFO 1
#define STORE_LOG_WARN 2
#define STORE_LOG_ERROR 3

struct store_params {
    int busy_timeout_ms;   /* wait for another writer's lock (default 5000) */
    int flush_interval_ms; /* least time between two group commits of replies (default 1000) */
    int n_readers;         /* reader connections, 0..64 (default 4; 0: reads use the writer) */
    store_clock_fn now_ms; /* NULL: the wall clock */
    void *clock_user;
    store_log_fn log; /* NULL: silent */
    void *log_user;
};

struct store;

struct store_params store_default_params(void);

/* Opens (creating if absent) the database at `path`, sets WAL mode, synchronous=FULL,
 * foreign keys and the busy timeout, and applies pending migrations in one
 * transaction. A database whose schema version is newer than this binary's is
 * refused (STORE_ETOONEW), and so is a SQLite file of another application
 * (STORE_ENOTDB). params may be NULL (defaults). On success *out is the handle
 * (close with store_close); on failure *out is NULL and err holds one line. */
int store_open(const char *path, const struct store_params *params, struct store **out, char *err,
               size_t err_len);
/* Closes the handle (accepts NULL). No call may be in progress on it; reply text still
 * queued for a group commit is dropped (finish or flush replies with force first). */
void store_close(struct store *st);
/* The schema version this binary writes, and the version of an open database. */
int store_schema_version(void);
int store_db_version(struct store *st);
/* Runs PRAGMA integrity_check; 0 when the answer is "ok", else STORE_ESQL with the
 * first problem in store_errmsg(). */
int store_integrity_check(struct store *st);
/* How many transactions were retried after SQLITE_BUSY (for tests and metrics). */
int64_t store_busy_retries(struct store *st);

/* ---- users ---- */

struct store_user {
    int64_t id;
    char name[STORE_NAME_MAX + 1];
    bool is_admin;
    int64_t token_quota; /* tokens per calendar month (UTC); 0 = unlimited */
    int64_t created_ms;
};

/* Adds a user. STORE_EINVAL for a bad name or negative quota, STORE_EEXISTS when the
 * name is taken. `out` may be NULL. */
int store_user_add(struct store *st, const char *name, bool is_admin, int64_t token_quota,
                   struct store_user *out);
int store_user_get(struct store *st, int64_t id, struct store_user *out);
int store_user_get_by_name(struct store *st, const char *name, struct store_user *out);
/* All users by id. *out is an array of *n users; caller frees it with free(). */
int store_user_list(struct store *st, struct store_user **out, size_t *n);
int store_user_set_quota(struct store *st, int64_t id, int64_t token_quota);
/* The implicit user of open auth (STORE_LOCAL_USER, admin, no quota), created on
 * first use. */
int store_user_local(struct store *st, struct store_user *out);

/* ---- API keys ---- */

struct store_key {
    int64_t id;
    int64_t user_id;
    char prefix[STORE_KEY_PREFIX_LEN + 1];
    int64_t created_ms;
    int64_t revoked_ms; /* 0 while active */
};

/* Creates a key for a user: 32 random bytes shown as "sk-chatd-<base64url>". The full
 * key is written to key_out (at least STORE_KEY_LEN + 1 bytes) and never stored:
 * the database keeps its BLAKE2b-256 hash and its first STORE_KEY_PREFIX_LEN
 * characters. `info` may be NULL. STORE_ENOTFOUND for an unknown user. */
int store_key_create(struct store *st, int64_t user_id, char *key_out, size_t key_len,
                     struct store_key *info);
/* Authenticates a presented key: finds it by prefix and compares hashes in constant
 * time. 0 with the owner in *user (and the key in *info, may be NULL);
 * STORE_ENOTFOUND when malformed or unknown; STORE_EREVOKED when revoked. */
int store_key_auth(struct store *st, const char *key, struct store_user *user,
                   struct store_key *info);
/* Revokes the key with this prefix (a whole key is accepted too). STORE_ENOTFOUND when
 * no key has it; revoking a revoked key succeeds and keeps the first revocation time.
 * `info` (may be NULL) receives the key. */
int store_key_revoke(struct store *st, const char *prefix, struct store_key *info);
/* A user's keys, newest first; caller frees *out with free(). */
int store_key_list(struct store *st, int64_t user_id, struct store_key **out, size_t *n);

/* ---- sessions ---- */

struct store_session {
    char id[STORE_ID_MAX + 1]; /* "sess_" + 32 hex digits */
    int64_t user_id;
    char *title; /* heap strings, never NULL after a successful call */
    char *model;
    char *system_prompt;
    int64_t created_ms;
    int64_t updated_ms; /* last change: update or new message */
    int64_t n_messages;
    int64_t n_tokens; /* sum of the messages' n_tokens */
};

/* Frees the strings of one session (accepts NULL); the struct itself is the caller's. */
void store_session_fini(struct store_session *s);
/* Frees an array returned by store_session_list. */
void store_sessions_free(struct store_session *arr, size_t n);

/* Creates a session owned by user_id; NULL strings mean "". Fills *out (may be NULL;
 * when given, release with store_session_fini). */
int store_session_create(struct store *st, int64_t user_id, const char *title, const char *model,
                         const char *system_prompt, struct store_session *out);
/* A session of user_id. Another user's session is STORE_ENOTFOUND, exactly as a
 * missing one. Release *out with store_session_fini. */
int store_session_get(struct store *st, int64_t user_id, const char *id, struct store_session *out);
/* One page of user_id's sessions, most recently updated first. `after` is the id of
 * the last session of the previous page (NULL: first page); limit is 1..1000.
 * *has_more (may be NULL) says whether another page follows. Free with
 * store_sessions_free. STORE_ENOTFOUND when `after` is not one of the user's. */
int store_session_list(struct store *st, int64_t user_id, const char *after, int limit,
                       struct store_session **out, size_t *n, bool *has_more);
/* Changes the title and/or system prompt (NULL: unchanged). */
int store_session_update(struct store *st, int64_t user_id, const char *id, const char *title,
                         const char *system_prompt);
/* Deletes a session and its messages. Its usage rows stay (with the session id). */
int store_session_delete(struct store *st, int64_t user_id, const char *id);

/* ---- messages ---- */

enum store_msg_status {
    STORE_MSG_COMPLETE = 0,
    STORE_MSG_PARTIAL = 1, /* cut short (client hang-up, crash): what was produced */
    STORE_MSG_ERROR = 2,
};

/* "complete", "partial", "error". */
const char *store_status_name(enum store_msg_status s);

/* A message to store. Strings may be NULL (""). */
struct store_msg_in {
    const char *role; /* system | user | assistant | tool */
    const char *content;
    const char *reasoning;
    const int32_t *token_ids; /* the turn's ids as fed to the model, or NULL */
    size_t n_token_ids;
    int64_t n_tokens;        /* token count (usually n_token_ids) */
    const char *fingerprint; /* model + template fingerprint that made token_ids */
    enum store_msg_status status;
    const char *tool_calls;   /* assistant: JSON array of tool calls, or NULL */
    const char *tool_call_id; /* tool: the call it answers, or NULL */
};

struct store_message {
    int64_t id;
    int64_t seq; /* 1, 2, ... within the session */
    char role[16];
    char *content;   /* heap, never NULL */
    char *reasoning; /* heap, never NULL */
    int64_t n_tokens;
    int32_t *token_ids; /* heap or NULL when none were stored */
    size_t n_token_ids;
    char fingerprint[STORE_FINGERPRINT_MAX + 1];
    enum store_msg_status status;
    int64_t created_ms;
    char *tool_calls;   /* heap JSON array, or NULL */
    char *tool_call_id; /* heap, or NULL */
};

/* Frees an array returned by store_message_list (accepts NULL). */
void store_messages_free(struct store_message *arr, size_t n);

/* Appends a message (a user turn, typically) and commits it at once; the session's
 * updated time moves. *id and *seq (each may be NULL) receive its place. */
int store_message_append(struct store *st, int64_t user_id, const char *session_id,
                         const struct store_msg_in *m, int64_t *id, int64_t *seq);
/* All messages of a session in order. Free with store_messages_free. */
int store_message_list(struct store *st, int64_t user_id, const char *session_id,
                       struct store_message **out, size_t *n);
/* The messages with seq >= from_seq, in order (the part of a long session a prompt
 * can hold). Free with store_messages_free. */
int store_message_list_from(struct store *st, int64_t user_id, const char *session_id,
                            int64_t from_seq, struct store_message **out, size_t *n);

/* What a prompt needs to know of each message before loading any text. */
struct store_msg_size {
    int64_t seq;
    char role[16];
    int64_t n_tokens;      /* as stored (0 when unknown) */
    int64_t content_bytes;
    enum store_msg_status status;
};

/* Every message's size, in order (a few bytes each, however long the texts).
 * *out (caller frees with free()) holds *n entries. */
int store_message_sizes(struct store *st, int64_t user_id, const char *session_id,
                        struct store_msg_size **out, size_t *n);

/* One chat turn in a session, in order:
 *   store_message_append(user message)          committed before inference
 *   store_reply_begin[_billed](...)             an empty partial assistant message
 *   store_reply_flush[_tokens](text so far)...  as tokens arrive; group-committed
 *   store_finish_turn(reply, final usage)       message + usage row, one transaction
 * A request without a session records its usage with store_usage_record. */

/* A streaming assistant reply in progress (see store_reply_begin). Owned by the
 * caller's thread; no free needed. */
struct store_reply {
    int64_t msg_id;
    int64_t user_id;
    char session_id[STORE_ID_MAX + 1];
    int64_t n_flushes; /* calls that found this reply's text committed on return */
};

/* ---- usage and prices ---- */

struct store_price {
    int64_t id; /* 0 for a price not (yet) in the database */
    char model[STORE_MODEL_MAX + 1];
    int64_t input_miss; /* micro-units per million tokens */
    int64_t input_hit;
    int64_t output;
    int64_t effective_from_ms;
};

/* Adds a price version for a model, in force from effective_from_ms (0: now) until a
 * later version. Earlier usage keeps the version it was billed at. *out may be NULL. */
int store_price_set(struct store *st, const char *model, int64_t input_miss, int64_t input_hit,
                    int64_t output, int64_t effective_from_ms, struct store_price *out);
/* Adds a version effective now only if the model's current price differs (for syncing
 * the config's [pricing.MODEL] sections at start-up). Returns 1 when added, 0 when
 * unchanged, <0 on error. */
int store_price_sync(struct store *st, const char *model, int64_t input_miss, int64_t input_hit,
                     int64_t output);
/* The version in force now for a model; without one, a copy of `fallback` (id 0, the
 * caller's configured default; may be NULL: STORE_ENOTFOUND). */
int store_price_current(struct store *st, const char *model, const struct store_price *fallback,
                        struct store_price *out);
/* Cost in micro-units by the rounding rule at the top; STORE_EOVERFLOW if it does not
 * fit int64, STORE_EINVAL for negative counts or cached > prompt. */
int store_cost_micros(const struct store_price *p, int64_t prompt_tokens, int64_t cached_tokens,
                      int64_t completion_tokens, int64_t *cost);

/* One request's metering. Strings borrowed. */
struct store_usage_in {
    const char *request_id; /* unique: a second row for it is STORE_EEXISTS */
    int64_t user_id;
    const char *session_id; /* NULL for a stateless request */
    const char *model;
    int64_t prompt_tokens;     /* all of them, cached included */
    int64_t cached_tokens;     /* reused from the KV cache, billed at input_hit */
    int64_t completion_tokens; /* reasoning included */
    int64_t reasoning_tokens;
    enum store_msg_status status;
    /* Price when the database has no version for `model` now (the config default);
     * its model field is ignored. NULL means all prices zero. */
    const struct store_price *fallback_price;
};

struct store_usage {
    int64_t id;
    char request_id[STORE_ID_MAX + 1];
    int64_t user_id;
    char session_id[STORE_ID_MAX + 1]; /* "" for none */
    char model[STORE_MODEL_MAX + 1];
    int64_t prompt_tokens;
    int64_t cached_tokens;
    int64_t completion_tokens;
    int64_t reasoning_tokens;
    int64_t price_id;
    int64_t cost_micros;
    enum store_msg_status status;
    int64_t created_ms;
    char *tool_calls;   /* heap JSON array, or NULL */
    char *tool_call_id; /* heap, or NULL */
};

/* Writes one usage row (stateless request, or a turn whose reply is not stored):
 * cost from the price version in force. Exactly once per request_id: a repeat is
 * STORE_EEXISTS and changes nothing. *out (may be NULL) receives the row. */
int store_usage_record(struct store *st, const struct store_usage_in *u, struct store_usage *out);

/* Finishes a session turn in ONE transaction: the assistant message (the partial
 * message of `r` rewritten, or a new one when r is NULL) and its usage row (whose
 * session_id and user_id must match r's), and r's pending usage (if any) is dropped.
 * Either all is stored or nothing: a repeated request_id is STORE_EEXISTS and the
 * message is left as it was. When the session was deleted meanwhile, only the usage
 * row is written and *msg_id is 0. *msg_id and *usage (each may be NULL) receive the
 * results. Bill what was stored: for a cut stream pass the tokens of the stored text
 * as completion_tokens. */
int store_finish_turn(struct store *st, const struct store_reply *r,
                      const struct store_msg_in *reply, const struct store_usage_in *u,
                      int64_t *msg_id, struct store_usage *usage);

/* Starts a streaming reply in a session of user_id: an empty `partial` assistant
 * message. Finish it with store_finish_turn. STORE_ENOTFOUND for another user's or a
 * missing session. A crash before the finish leaves the message partial and the
 * request unbilled; store_reply_begin_billed also bills it. */
int store_reply_begin(struct store *st, int64_t user_id, const char *session_id,
                      struct store_reply *r);
/* As store_reply_begin for u->user_id and u->session_id, and also records a pending
 * usage (u's request id, model, prompt and cached tokens and fallback price; its
 * completion counts follow store_reply_flush_tokens), so that a reply interrupted by
 * a crash is billed by store_recover_interrupted for exactly the tokens that were
 * stored. STORE_EEXISTS when the request id was billed or begun before. */
int store_reply_begin_billed(struct store *st, const struct store_usage_in *u,
                             struct store_reply *r);
/* Hands the reply's text so far to the group commit: every reply's latest text is
 * written in ONE transaction at most once per flush_interval_ms, by whichever
 * thread's call comes due (no background thread), so 500 streams cost one commit per
 * interval, not 500. force commits now (after any commit in progress). Returns 1 when
 * this reply's text is on disk on return, 0 when it waits for the next group commit,
 * <0 on error. Call it as the text grows (per token is fine: it copies the text and
 * returns); a crash loses the text produced since the last group commit. */
int store_reply_flush(struct store *st, struct store_reply *r, const char *content,
                      const char *reasoning, bool force);
/* As store_reply_flush, also recording the completion and reasoning tokens of that
 * text for the pending usage of store_reply_begin_billed. */
int store_reply_flush_tokens(struct store *st, struct store_reply *r, const char *content,
                             const char *reasoning, int64_t completion_tokens,
                             int64_t reasoning_tokens, bool force);
/* Group commits done by this handle so far. */
int64_t store_group_commits(struct store *st);
/* Bills the streaming replies that a crash interrupted: each pending usage record
 * left by store_reply_begin_billed without its store_finish_turn becomes a usage row with
 * status `partial` and the completion tokens of the last committed flush, priced as
 * of the request's start. Call once at server start, before serving, and never from
 * a second process while a server runs (its live replies would look interrupted).
 * *n_billed (may be NULL) counts the rows written. */
int store_recover_interrupted(struct store *st, int64_t *n_billed);

/* One request's usage by request id; user_id 0 allows any user (admin), otherwise
 * another user's row is STORE_ENOTFOUND. */
int store_usage_get(struct store *st, int64_t user_id, const char *request_id,
                    struct store_usage *out);

enum store_group_by {
    STORE_GROUP_NONE = 0,    /* one row: the total (key "") */
    STORE_GROUP_DAY = 1,     /* key "YYYY-MM-DD" (UTC) */
    STORE_GROUP_SESSION = 2, /* key the session id, "" for stateless requests */
    STORE_GROUP_MODEL = 3,   /* key the model id */
    STORE_GROUP_USER = 4,    /* key the user name */
};

struct store_usage_query {
    int64_t user_id; /* 0: all users */
    int64_t from_ms; /* inclusive; 0: from the start */
    int64_t to_ms;   /* exclusive; 0: until now and beyond */
    enum store_group_by group_by;
};

struct store_usage_total {
    char key[STORE_MODEL_MAX + 1];
    int64_t user_id; /* the user for STORE_GROUP_USER, else the query's */
    int64_t requests;
    int64_t prompt_tokens;
    int64_t cached_tokens; /* input hit */
    int64_t miss_tokens;   /* input miss = prompt - cached */
    int64_t completion_tokens;
    int64_t reasoning_tokens;
    int64_t cost_micros; /* sum of the rows' stored costs */
};

/* Usage totals grouped as asked, ordered by key. Caller frees *out with free().
 * STORE_GROUP_NONE gives exactly one row (zeros when nothing matched). */
int store_usage_totals(struct store *st, const struct store_usage_query *q,
                       struct store_usage_total **out, size_t *n);
/* Tokens (prompt + completion) a user used in the current calendar month (UTC),
 * for quota checks. */
int store_usage_month_tokens(struct store *st, int64_t user_id, int64_t *tokens);
/* Recomputes every usage row's cost from the price version it references.
 * *n_rows counts the rows, *n_mismatch those whose stored cost differs (both may be
 * NULL). */
int store_usage_audit(struct store *st, int64_t *n_rows, int64_t *n_mismatch);

/* ---- quota reservations (store_quota.c) ---- */

/* A user's month as admission sees it. */
struct store_quota {
    int64_t quota;    /* tokens per calendar month; 0: unlimited */
    int64_t used;     /* billed this month */
    int64_t reserved; /* held by requests in flight (other than this one) */
};

/* Admits a request against the user's monthly quota, atomically with every other
 * admission on this database (one write transaction, so several servers sharing it
 * cannot both take the last tokens): prompt_tokens plus *max_tokens must fit in what
 * is left after the month's usage and the reservations of requests in flight; a
 * *max_tokens larger than what is left is lowered to it. The reservation (prompt +
 * the granted max_tokens) is held under request_id until the request's usage row is
 * recorded (which settles it in the same transaction) or store_quota_release; one
 * older than ttl_ms (a process that died) no longer counts. Returns 0 (also for a user
 * without a quota: nothing is reserved), STORE_EQUOTA when not even one reply token is
 * left, or another STORE_E*. *q (may be NULL) tells the numbers either way. */
int store_quota_reserve(struct store *st, int64_t user_id, const char *request_id,
                        int64_t prompt_tokens, int64_t *max_tokens, int64_t ttl_ms,
                        struct store_quota *q);
/* Drops a request's reservation (it ended without usage: refused, failed). */
int store_quota_release(struct store *st, const char *request_id);

/* ---- idempotency keys ---- */

/* Claims (user_id, key) for request_id before generating; body_hash identifies the
 * request (its body's hash). A claim older than ttl_ms is forgotten first (keys
 * expire). STORE_EEXISTS when the key is claimed: then look it up with store_idem_get. */
int store_idem_begin(struct store *st, int64_t user_id, const char *key, const char *request_id,
                     const char *body_hash, int64_t ttl_ms);
/* Records the response body of a claimed key. */
int store_idem_complete(struct store *st, int64_t user_id, const char *key, const char *response);
/* Looks a key up. *request_id (STORE_ID_MAX + 1 bytes, may be NULL) gets the request
 * id and *body_hash (STORE_ID_MAX + 1 bytes, may be NULL) the claim's body hash;
 * *response gets a heap copy of the stored body (caller frees with free()) or NULL
 * while that request has not completed. */
int store_idem_get(struct store *st, int64_t user_id, const char *key, char *request_id,
                   char *body_hash, char **response);
/* Forgets a claimed key (the request failed before producing anything). */
int store_idem_release(struct store *st, int64_t user_id, const char *key);
/* Deletes keys older than before_ms; *n_deleted may be NULL. */
int store_idem_prune(struct store *st, int64_t before_ms, int64_t *n_deleted);

#endif
