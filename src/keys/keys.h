/*
 * Managed client keys: the keys clients present (x-api-key / Authorization: Bearer), each with a name,
 * an expiry, allowed models, limits (requests per minute, concurrent requests, Kiro credits per UTC day
 * and month, tokens per UTC day) and its usage per UTC day. A key is random (RAND_bytes), shown once at
 * creation, and kept only as its SHA-256 plus a short non-secret prefix for display.
 *
 * One store serves every worker loop (threads). Lookup is lock-free: a fixed array of hash buckets whose
 * chains are read with acquire loads; writers (admin changes) serialise on the store's mutex. A key is
 * never freed while the store lives (a deleted key is unlinked and retired), so a pointer a request holds
 * stays valid. Everything mutable in a key is guarded by that key's own mutex: requests of different keys
 * never contend, and there is no global lock on the request path.
 *
 * KIRO_CLIENT_TOKEN is the built-in key "default" (no limits, not persisted, not editable).
 */
#ifndef K2A_KEYS_KEYS_H
#define K2A_KEYS_KEYS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/buf.h"

#define K2A_KEYS_NAME_MAX 64     /* [A-Za-z0-9._-], 1..64 characters */
#define K2A_KEYS_MODELS_MAX 32   /* allowed-model patterns per key */
#define K2A_KEYS_PATTERN_MAX 128 /* bytes per pattern: letters, digits and . _ : / - plus the wildcards * and ? */
#define K2A_KEYS_RPM_MAX 10000   /* the sliding window keeps one timestamp per allowed request */
#define K2A_KEYS_SECRET_LEN 44   /* "k2a-" + 40 base62 characters */
#define K2A_KEYS_PREFIX_LEN 12   /* what is displayed: "k2a-" + 8 characters */
#define K2A_KEYS_ID_LEN 16       /* hex */

typedef struct st_k2a_key_limits_t {
    int64_t rpm;         /* requests in any 60 s (sliding window); 0 = no limit */
    int64_t concurrency; /* requests in flight; 0 = no limit */
    double credits_day;  /* Kiro credits per UTC day; 0 = no limit */
    double credits_month;
    int64_t tokens_day; /* input + output tokens per UTC day; 0 = no limit */
} k2a_key_limits_t;

/* Usage of one key on one UTC day (day = days since 1970-01-01). */
typedef struct st_k2a_key_day_t {
    int32_t day;
    uint64_t requests, errors;
    int64_t input_tokens, output_tokens;
    double credits;
} k2a_key_day_t;

typedef struct st_k2a_key_t k2a_key_t;
struct st_k2a_key_t {
    _Atomic(k2a_key_t *) next; /* hash chain (lock-free reads) */
    unsigned char hash[32];    /* SHA-256 of the key */
    char id[K2A_KEYS_ID_LEN + 1];
    char prefix[K2A_KEYS_PREFIX_LEN + 1];
    struct st_k2a_keys_t *store;
    bool builtin;        /* KIRO_CLIENT_TOKEN */
    atomic_bool deleted; /* unlinked; requests holding it finish */
    pthread_mutex_t mu;  /* guards everything below */
    char name[K2A_KEYS_NAME_MAX + 1];
    int64_t created_at, expires_at, last_used_at; /* unix seconds; expires_at 0 = never */
    int64_t ver;                                  /* wall-clock ms of the last admin change (the shared store keeps the newest) */
    int64_t synced_ver;                           /* the ver last written to the shared store */
    bool enabled;
    char *models[K2A_KEYS_MODELS_MAX];
    size_t nmodels; /* 0 = every model */
    k2a_key_limits_t limits;
    int64_t inflight;
    uint64_t *window; /* RPM sliding window: ring of the last minute's admission times (ms), at most limits.rpm */
    size_t window_cap, window_len, window_head;
    k2a_key_day_t *days; /* ascending by day, at most usage_days entries */
    size_t ndays, days_cap;
    int32_t month; /* months since 1970-01 of month_credits */
    double month_credits;
    /* since the process started (/metrics counters) */
    uint64_t m_requests, m_errors, m_rejected;
    int64_t m_input_tokens, m_output_tokens;
    double m_credits;
};

typedef struct st_k2a_keys_t k2a_keys_t;

/* The storage behind the store: the whole state as one JSON snapshot (keys and usage). The file backend writes it atomically;
 * a shared backend (Redis) implements the same calls. load may block (start-up); save blocks and runs off the loop (libuv's
 * thread pool) or at shutdown. usage_add is optional (NULL): a backend that keeps usage itself is told of each call. */
typedef struct st_k2a_keys_backend_t k2a_keys_backend_t;
struct st_k2a_keys_backend_t {
    const char *name;
    /* Appends the stored snapshot to out. Returns 0, K2A_ENOTFOUND (nothing stored yet) or an error with a message in err. */
    int (*load)(k2a_keys_backend_t *b, k2a_buf_t *out, char *err, size_t errlen);
    /* Stores a snapshot. Returns 0 or an error. Called from one thread at a time. */
    int (*save)(k2a_keys_backend_t *b, const char *json, size_t len);
    void (*usage_add)(k2a_keys_backend_t *b, const char *key_id, const k2a_key_day_t *delta);
    /* Optional: called once the store is loaded (a shared backend pulls the other replicas' keys and starts following them). */
    void (*attach)(k2a_keys_backend_t *b, struct st_k2a_keys_t *ks);
    void (*destroy)(k2a_keys_backend_t *b);
};
/* The file backend (path copied). NULL on out of memory. */
k2a_keys_backend_t *k2a_keys_file_backend_create(const char *path);

typedef struct st_k2a_keys_config_t {
    size_t max_keys;          /* bound on managed keys (the bucket array is sized for it) */
    int usage_days;           /* days of per-day usage kept */
    size_t metrics_max;       /* keys given their own labelled series on /metrics; the rest are summed as key="_other" */
    const char *client_token; /* KIRO_CLIENT_TOKEN, "" = none */
} k2a_keys_config_t;

/* Creates the store, takes the backend (may be NULL: nothing persisted) and loads its snapshot. Returns 0, or K2A_ECONFIG
 * (corrupt or unreadable snapshot, message in err; the store is not created). */
int k2a_keys_create(const k2a_keys_config_t *cfg, k2a_keys_backend_t *backend, k2a_keys_t **out, char *err, size_t errlen);
void k2a_keys_destroy(k2a_keys_t *ks);
/* Whether any key is configured (managed or built-in): then every client must present one. */
bool k2a_keys_required(const k2a_keys_t *ks);
size_t k2a_keys_count(k2a_keys_t *ks); /* managed keys */

/* ---- the request path (any thread) ---- */

/* SHA-256 with the digest fetched once (OpenSSL 3's SHA256() looks it up on every call). Any thread. */
void k2a_keys_sha256(const void *data, size_t len, unsigned char out[32]);
/* The live key whose SHA-256 is digest, or NULL. O(1); compares in constant time. */
k2a_key_t *k2a_keys_find(k2a_keys_t *ks, const unsigned char digest[32]);
/* Like find with the presented secret (hashes it). */
k2a_key_t *k2a_keys_lookup(k2a_keys_t *ks, const char *secret, size_t len);

typedef enum en_k2a_keys_verdict_t {
    K2A_KEYS_OK = 0,
    K2A_KEYS_DISABLED, /* 401 */
    K2A_KEYS_EXPIRED,  /* 401 */
    K2A_KEYS_DELETED,  /* 401 */
    K2A_KEYS_MODEL,    /* 403 */
    K2A_KEYS_RPM,      /* 429 ... */
    K2A_KEYS_CONCURRENCY,
    K2A_KEYS_CREDITS_DAY,
    K2A_KEYS_CREDITS_MONTH,
    K2A_KEYS_TOKENS_DAY,
} k2a_keys_verdict_t;

/* Whether the key may be used at all now (enabled, not expired, not deleted). */
k2a_keys_verdict_t k2a_keys_check(k2a_key_t *k, int64_t now_s);
/* Admits one request of model at wall-clock time now_ms: checks the key and every limit, then counts the request (RPM window,
 * usage) and takes a concurrency slot, which k2a_keys_release gives back. On refusal nothing is taken; *retry_after_s says
 * when to come back (429 verdicts). model may be NULL (no model check). */
k2a_keys_verdict_t k2a_keys_admit(k2a_key_t *k, const char *model, size_t model_len, int64_t now_ms, int64_t *retry_after_s);
/* Takes back an admission that a shared limit (store_redis_keys.h) refused: the slot, the window entry and the request
 * count, and counts a refusal. */
void k2a_keys_admit_undo(k2a_key_t *k, int64_t now_ms);
/* A copy of the key's limits. */
void k2a_keys_limits_of(k2a_key_t *k, k2a_key_limits_t *out);
/* Gives back the slot of an admitted request and counts it as an error when failed. */
void k2a_keys_release(k2a_keys_t *ks, k2a_key_t *k, bool failed, int64_t now_ms);
/* Adds what an upstream attempt consumed to the key's usage of the day of now_ms. */
void k2a_keys_charge(k2a_keys_t *ks, k2a_key_t *k, int64_t input_tokens, int64_t output_tokens, double credits, int64_t now_ms);
/* HTTP status of a verdict (401, 403, 429) and a message for the client (no secret in it). */
int k2a_keys_verdict_status(k2a_keys_verdict_t v);
const char *k2a_keys_verdict_message(k2a_keys_verdict_t v);

/* ---- management (any thread; the admin API) ---- */

typedef struct st_k2a_keys_spec_t {
    /* which fields are set (PATCH) */
    bool has_name, has_enabled, has_expires, has_models, has_limits;
    char name[K2A_KEYS_NAME_MAX + 1];
    bool enabled;
    int64_t expires_at;
    char *models[K2A_KEYS_MODELS_MAX]; /* borrowed */
    size_t nmodels;
    k2a_key_limits_t limits;
    bool has_limit[5]; /* rpm, concurrency, credits_day, credits_month, tokens_day: only these change on PATCH */
} k2a_keys_spec_t;

/* Validators (0 or K2A_EINVAL with a message in err). */
int k2a_keys_valid_name(const char *name, size_t len, char *err, size_t errlen);
int k2a_keys_valid_pattern(const char *p, size_t len, char *err, size_t errlen);
int k2a_keys_valid_limits(const k2a_key_limits_t *l, char *err, size_t errlen);
/* Glob match of a model name against a pattern ('*' any run, '?' one character; case-insensitive). */
bool k2a_keys_glob(const char *pat, const char *s, size_t len);

/* Creates a key from spec (name required and unique). Writes the secret (NUL-terminated) to secret_out, shown only now, and
 * the new key's id to id_out. Returns 0, K2A_EINVAL (invalid or duplicate name, message in err) or K2A_ETOOBIG (max_keys). */
int k2a_keys_add(k2a_keys_t *ks, const k2a_keys_spec_t *spec, int64_t now_s, char secret_out[K2A_KEYS_SECRET_LEN + 1],
                 char id_out[K2A_KEYS_ID_LEN + 1], char *err, size_t errlen);
/* Applies the fields set in spec. Returns 0, K2A_ENOTFOUND or K2A_EINVAL (message in err). */
int k2a_keys_update(k2a_keys_t *ks, const char *id, const k2a_keys_spec_t *spec, char *err, size_t errlen);
/* Deletes a key: it is refused at once; requests in flight finish. Returns 0 or K2A_ENOTFOUND. */
int k2a_keys_delete(k2a_keys_t *ks, const char *id);
/* Copies the key's name (for the audit log). Returns 0 or K2A_ENOTFOUND. */
int k2a_keys_name_of(k2a_keys_t *ks, const char *id, char name[K2A_KEYS_NAME_MAX + 1]);

/* JSON renderings for the admin API (appended to out). now_s gives "today" (UTC). */
int k2a_keys_render_list(k2a_keys_t *ks, int64_t now_s, k2a_buf_t *out);
/* One key as an object; K2A_ENOTFOUND when there is none with this id. */
int k2a_keys_render_one(k2a_keys_t *ks, const char *id, int64_t now_s, k2a_buf_t *out);
/* {"days":[...]} for the last `days` UTC days up to today, oldest first, zeros where nothing was used. */
int k2a_keys_render_usage(k2a_keys_t *ks, const char *id, int days, int64_t now_s, k2a_buf_t *out);
/* The same from the given days (the shared store's sums, oldest first), with "shared":true. */
int k2a_keys_render_usage_of(k2a_keys_t *ks, const char *id, const k2a_key_day_t *days, int n, k2a_buf_t *out);
/* Prometheus series k2a_key_* {key="<name>"} (bounded by metrics_max). */
int k2a_keys_render_metrics(k2a_keys_t *ks, k2a_buf_t *out);

/* ---- persistence ---- */

/* The whole state as the backend's JSON snapshot; *gen receives the snapshot's generation (newer snapshots have higher ones). */
int k2a_keys_encode(k2a_keys_t *ks, k2a_buf_t *out, uint64_t *gen);
/* Writes an encoded snapshot through the backend unless a newer one was written already (blocking; any thread). Returns 0 or
 * an error. */
int k2a_keys_write(k2a_keys_t *ks, const k2a_buf_t *json, uint64_t gen);
/* Encode + write, blocking (shutdown, tests). */
int k2a_keys_save_sync(k2a_keys_t *ks);
/* Whether usage changed since the last snapshot was encoded. */
bool k2a_keys_dirty(k2a_keys_t *ks);

/* ---- the shared store (keys_sync.c) ---- */

/* One key as the shared store holds it: never the secret, only its SHA-256 and the display prefix. A deleted key stays as
 * a tombstone (deleted, with its ver) so that a replica that has not seen the deletion cannot bring it back. */
typedef struct st_k2a_keys_remote_t {
    char id[K2A_KEYS_ID_LEN + 1];
    unsigned char hash[32];
    char prefix[K2A_KEYS_PREFIX_LEN + 1];
    char name[K2A_KEYS_NAME_MAX + 1];
    int64_t created_at, expires_at, ver;
    bool enabled, deleted;
    char *models[K2A_KEYS_MODELS_MAX]; /* owned (k2a_keys_remote_clear) */
    size_t nmodels;
    k2a_key_limits_t limits;
} k2a_keys_remote_t;
void k2a_keys_remote_clear(k2a_keys_remote_t *r);
/* Applies a record of the shared store when it is newer than the local key (ver): adds, updates or deletes the key. The
 * record counts as written (synced). Returns 1 when applied, 0 when not newer (or invalid, or no room), or an error. */
int k2a_keys_apply_remote(k2a_keys_t *ks, const k2a_keys_remote_t *rec);
/* Copies the managed keys (live and deleted) changed since they were last written to the shared store. *out is an array
 * of *n records (free each with k2a_keys_remote_clear, then the array). Returns 0 or K2A_ENOMEM. */
int k2a_keys_collect_changed(k2a_keys_t *ks, k2a_keys_remote_t **out, size_t *n);
/* Marks a key as written at ver. */
void k2a_keys_mark_synced(k2a_keys_t *ks, const char *id, int64_t ver);

/* ---- UTC calendar helpers ---- */
int32_t k2a_keys_day_of(int64_t unix_s);     /* days since 1970-01-01 */
int32_t k2a_keys_month_of(int64_t unix_s);   /* months since 1970-01 */
int64_t k2a_keys_next_day_s(int64_t unix_s); /* the next UTC midnight */
int64_t k2a_keys_next_month_s(int64_t unix_s);
void k2a_keys_date_str(int32_t day, char out[11]); /* "YYYY-MM-DD" */

#endif
