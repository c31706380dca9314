/*
 * The Kiro account pool: the accounts of KIRO_AUTH_TOKEN, their access tokens (Social and IdC refresh,
 * single-flight per account, refreshed ahead of expiry in the background), their health (a state machine
 * fed by every upstream answer), their usage (getUsageLimits polled in the background, credits from
 * meteringEvent) and the selection strategy. Everything runs on one libuv loop; background work is
 * coroutines driven by uv timers; nothing here blocks the loop. Durable state (rotated refresh tokens,
 * access tokens, states) goes through a small store interface (store.h), a JSON file by default.
 *
 * Per-request work never scales with the pool size: the usable accounts are kept in incrementally
 * maintained lists (config order for sequential/round_robin, buckets by in-flight count for balanced), so
 * an acquire looks at the account it takes and at most at the accounts it has to skip.
 * The request path itself is in dispatch.h.
 */
#ifndef K2A_POOL_POOL_H
#define K2A_POOL_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "core/buf.h"
#include "core/config.h"

struct st_k2a_upstream_t;
struct st_k2a_pool_store_t;

/* ---- configuration of the accounts (KIRO_AUTH_TOKEN) ---- */

/* Credential kinds (kiro-protocol-2026 §11). A Builder ID account is an IdC account with builder_id set. */
typedef enum en_k2a_auth_kind_t {
    K2A_AUTH_SOCIAL = 0, /* GitHub/Google login: refreshToken at prod.<region>.auth.desktop.kiro.dev */
    K2A_AUTH_IDC,        /* IAM Identity Center (enterprise) or Builder ID: refreshToken + clientId/clientSecret at oidc.<region> */
    K2A_AUTH_API_KEY,    /* a Kiro API key "ksk_...": no refresh, tokentype: API_KEY */
    K2A_AUTH_EXTERNAL_IDP, /* an external IdP (Entra ID): OAuth refresh at tokenEndpoint, tokentype: EXTERNAL_IDP */
} k2a_auth_kind_t;

/* "social" | "idc" | "builder_id" | "api_key" | "external_idp" (dashboard, /api/tokens). */
const char *k2a_auth_kind_name(k2a_auth_kind_t kind, bool builder_id);

typedef struct st_k2a_account_config_t {
    k2a_auth_kind_t auth;
    char *refresh_token; /* never NULL (an API key account: the key itself) */
    char *client_id;     /* IdC, ExternalIdp: never NULL; else NULL */
    char *client_secret; /* IdC: never NULL; else NULL */
    char *description;   /* never NULL ("" when absent) */
    bool disabled;
    char *machine_id;     /* "machineId" normalised to 64 lowercase hex digits, or NULL (derived, k2a_account_machine_id) */
    bool builder_id;      /* IdC with "provider":"BuilderId" */
    char *profile_arn;    /* "profileArn": sent instead of any learned ARN; NULL when absent */
    char *token_endpoint; /* ExternalIdp "tokenEndpoint"; else NULL */
    char *scope;          /* ExternalIdp "scope"; else NULL */
    char region[24];      /* "region": auth region ("" = us-east-1) */
    char api_region[24];  /* "apiRegion": data-plane region when no ARN names one ("" = region) */
    /* "rpm" / "max_concurrency": this account's KIRO_ACCOUNT_RPM / KIRO_ACCOUNT_MAX_CONCURRENCY when has_* (0 = unlimited) */
    bool has_rpm, has_max_concurrency;
    unsigned rpm, max_concurrency;
} k2a_account_config_t;

typedef struct st_k2a_account_list_t {
    k2a_account_config_t *entries;
    size_t n;
} k2a_account_list_t;

#define K2A_POOL_MAX_ACCOUNTS 4096
#define K2A_POOL_MAX_AUTH_FILE (4 * 1024 * 1024)

/* Parses KIRO_AUTH_TOKEN exactly as kiro2api reads it: the value names a regular file holding the JSON, or is the JSON
 * itself; the JSON is an array of account objects or one object. Fields: auth ("Social" | "IdC" | "BuilderId" | "ApiKey" |
 * "ExternalIdp", case-insensitive, missing = Social), refreshToken, clientId, clientSecret (IdC), provider ("BuilderId" on an
 * IdC account), apiKey (ApiKey: "ksk_..."), tokenEndpoint and scope (ExternalIdp), region, apiRegion, profileArn, machineId
 * (string, see k2a_machine_id_normalize), disabled (bool), description (string); unknown keys are ignored. Regions must be
 * us-east-1 or eu-central-1; an ApiKey account must name its apiRegion.
 * Unlike kiro2api an invalid entry is an error, never silently dropped. Entries are numbered from 0, as on the dashboard.
 * Returns 0 with the list in *out (free with k2a_account_list_dispose), or K2A_ECONFIG with a one-line message in err such as
 * "KIRO_AUTH_TOKEN: entry 2: IdC account needs clientId and clientSecret". The message never contains a secret. Every
 * refresh token and client secret read is registered with k2a_log_add_secret(). Also fails when no entry is enabled. */
int k2a_pool_parse_accounts(const char *text_or_path, k2a_account_list_t *out, char *err, size_t errlen);
/* The same for the JSON text itself, never a path (the fuzz target and tools that already hold the text). */
int k2a_pool_parse_accounts_json(const char *json, k2a_account_list_t *out, char *err, size_t errlen);
void k2a_account_list_dispose(k2a_account_list_t *list);

/* The machineId an account announces in its user agents (64 lowercase hex digits + NUL in out[65]): the configured one when
 * cfg->machine_id is set, else sha256_hex("KotlinNativeAPI/" + refreshToken), or sha256_hex("KiroAPIKey/" + key) when the
 * credential is a ksk_ API key. Always from the ORIGINALLY configured token, so a rotation never changes it. */
void k2a_account_machine_id(const k2a_account_config_t *cfg, char out[65]);
/* Normalises a configured machineId: 64 hex digits (lower-cased), or a UUID (32 hex digits, dashes allowed) doubled to 64.
 * Returns 0 or K2A_EINVAL for anything else. */
int k2a_machine_id_normalize(const char *in, char out[65]);

/* ---- pool configuration ---- */

typedef enum en_k2a_pool_strategy_t {
    K2A_POOL_SEQUENTIAL = 0, /* stay on the current account until it is unusable, then the next in config order (kiro2api) */
    K2A_POOL_ROUND_ROBIN,    /* each request takes the next usable account */
    K2A_POOL_BALANCED,       /* fewest in-flight requests, ties by least recently used (last acquire or release) */
    K2A_POOL_STICKY,         /* a client session stays on its account (pool/sticky.h); new sessions as balanced */
} k2a_pool_strategy_t;

/* "sequential" | "round_robin" | "balanced" | "sticky". Returns 0 or K2A_EINVAL. */
int k2a_pool_parse_strategy(const char *s, k2a_pool_strategy_t *out);
const char *k2a_pool_strategy_name(k2a_pool_strategy_t s);

typedef struct st_k2a_pool_config_t {
    const char *auth_token;           /* KIRO_AUTH_TOKEN: JSON or a file path (required) */
    const char *state_file;           /* KIRO_STATE_FILE; NULL or "" = no persistence (ignored when a store is given to create) */
    const char *redis_url;            /* KIRO_REDIS_URL: NULL or "" = no shared store */
    const char *redis_prefix;         /* KIRO_REDIS_PREFIX */
    uint32_t redis_resync_ms;         /* KIRO_REDIS_RESYNC_MS */
    k2a_pool_strategy_t strategy;     /* KIRO_POOL_STRATEGY */
    unsigned max_attempts;            /* KIRO_MAX_ATTEMPTS: accounts tried per request (1..20), default 3 */
    unsigned account_max_concurrency; /* KIRO_ACCOUNT_MAX_CONCURRENCY: 0 = unlimited */
    unsigned usage_poll_interval_s;   /* KIRO_USAGE_POLL_INTERVAL_S: 0 = never, default 900 */
    unsigned refresh_ahead_pct;       /* KIRO_REFRESH_AHEAD_PCT: 10..95, default 80 (jittered by +-5 % of the lifetime) */
    const char *api_base;             /* KIRO_API_BASE (generateAssistantResponse, getUsageLimits) */
    const char *social_refresh_url;   /* KIRO_SOCIAL_REFRESH_URL */
    const char *idc_refresh_url;      /* KIRO_IDC_REFRESH_URL */
    const char *kiro_version;         /* KIRO_IDE_VERSION, e.g. "0.12.333" */
    const char *agent_mode;           /* KIRO_AGENT_MODE, e.g. "vibe" */
    uint32_t refresh_timeout_ms;      /* first-byte timeout of refresh and usage calls; default 30000 */
    uint32_t queue_timeout_ms;        /* how long a request waits for a slot when every account is at its cap; 30000 */
    uint32_t save_debounce_ms;        /* state writes are coalesced this long after the last change; default 200 */
    uint32_t warmup_stagger_ms;       /* start-up refreshes of accounts without a valid token are this far apart; 100 */
    bool warmup;                      /* refresh accounts without a valid token at start (default true) */
    const char *api_fallback_base;    /* KIRO_API_FALLBACK_BASE: NULL or "" = no same-account fallback host */
    unsigned catalog_refresh_s;       /* KIRO_CATALOG_REFRESH_S: ListAvailableModels per account; 0 = never, default 21600 */
    unsigned flagged_cooldown_s;      /* KIRO_FLAGGED_COOLDOWN_S: cooling after a "suspicious activity" 429, default 1800 */
    /* pacing and session-sticky routing (issue 22: pool/pace.h, pool/sticky.h) */
    unsigned account_rpm;       /* KIRO_ACCOUNT_RPM: generate attempts per account per window, 0 = unpaced */
    unsigned pace_window_s;     /* KIRO_PACE_WINDOW_S: the window, default 60 */
    uint32_t pace_wait_ms;      /* KIRO_PACE_WAIT_MS: how long a request waits for a pace slot, default 5000 */
    bool sticky;                /* KIRO_POOL_STICKY: sessions stick to accounts on top of the strategy */
    unsigned sticky_idle_s;     /* KIRO_STICKY_IDLE_S: a session unused this long is forgotten, default 3600 */
    size_t sticky_max_sessions; /* KIRO_STICKY_MAX_SESSIONS: sessions tracked, default 100000 */
} k2a_pool_config_t;

/* Defaults (everything but auth_token, which must be set). */
void k2a_pool_config_init(k2a_pool_config_t *pc);
/* Maps the core configuration onto a pool configuration; the strings point into c, which must outlive pc (create copies
 * them). Returns 0 or K2A_ECONFIG with a message naming the variable. */
int k2a_pool_config_from(k2a_pool_config_t *pc, const k2a_config_t *c, char *err, size_t errlen);

/* ---- lifecycle ---- */

typedef struct st_k2a_pool_t k2a_pool_t;

/* Creates the pool on `loop` (whose coroutine runtime must be initialised), using `up` for every HTTP call (borrowed; it must
 * outlive the pool). Parses the accounts (a bad entry fails here, message in err), loads the state file (a corrupt file is
 * moved aside to <file>.corrupt-<unix time> with a warning, and start-up continues from the configured tokens; an unreadable
 * one is an error), and starts the background jobs: a refresh for each account without a valid access token (staggered),
 * refresh-ahead timers and usage polling. store: NULL = the JSON file of cfg->state_file (or none); else the pool takes
 * ownership of it. Returns 0, K2A_ECONFIG, K2A_EIO or K2A_ENOMEM. */
int k2a_pool_create(uv_loop_t *loop, struct st_k2a_upstream_t *up, const k2a_pool_config_t *cfg, struct st_k2a_pool_store_t *store,
                    k2a_pool_t **out, char *err, size_t errlen);
/* Stops every background job and timer (in-flight refreshes and polls are canceled; their waiters get K2A_ECANCELED) and
 * starts a final state write. The loop must run afterwards until it has nothing left to do. Idempotent. Requests already
 * holding a lease may finish; new acquires fail with K2A_ENO_ACCOUNT. */
void k2a_pool_shutdown(k2a_pool_t *p);
/* True once a shut-down pool has nothing left on the loop (jobs finished, timers closed, last state write done). */
bool k2a_pool_closed(k2a_pool_t *p);
/* Frees the pool. Call after k2a_pool_shutdown once k2a_pool_closed() (or after the loop ran to completion), with no lease
 * held; otherwise it runs the loop itself until the pool is closed. Writes the state synchronously if it is still dirty. */
void k2a_pool_destroy(k2a_pool_t *p);

/* SIGHUP: re-reads the accounts (text_or_path as KIRO_AUTH_TOKEN). Accounts are matched by their key (auth kind + the
 * originally configured refresh token), so an unchanged entry keeps its rotated token, access token, state and counters
 * (an `invalid` one gets a fresh chance); new entries are added, removed ones leave the pool at once but stay alive until
 * their last lease is released (in-flight streams are never dropped); description, disabled and IdC client credentials are
 * updated, and so is the machineId. On a parse error nothing changes and K2A_ECONFIG is returned with the message in err. */
int k2a_pool_reload(k2a_pool_t *p, const char *text_or_path, char *err, size_t errlen);

/* /readyz: true when at least one account is usable now (enabled, not cooling/exhausted/invalid, and holding an access token
 * obtained by a successful refresh, possibly being renewed). Cheap: O(1). */
bool k2a_pool_ready(k2a_pool_t *p);

/* ---- observability (all served from memory; nothing here triggers a refresh or an upstream call) ---- */

/* GET /api/tokens body (application/json): kiro2api-compatible top-level fields (timestamp, total_tokens, active_tokens,
 * tokens[], pool_stats) with, per account: index, description, auth_type, status (kiro2api's active|exhausted|error|disabled),
 * state (ok|refreshing|cooling|exhausted|invalid|disabled), state_until, state_reason, token_preview ("****" + last 4 of
 * the refresh token), user_email (masked as kiro2api does), expires_at, remaining_usage, usage_limits, next_reset,
 * credits_consumed, requests, errors, last_error, last_used, in_flight, input/output tokens, latency. Returns 0 or
 * K2A_ENOMEM/K2A_ETOOBIG. */
int k2a_pool_render_tokens_json(k2a_pool_t *p, k2a_buf_t *out);
/* Prometheus text for /metrics: per account (labels account="<index>", name="<description or index>") state, in-flight,
 * requests, errors by class, input/output tokens, credits consumed and remaining, refreshes; pool totals. Matches
 * k2a_metrics_render_cb through k2a_pool_metrics_hook below. */
void k2a_pool_render_metrics(k2a_pool_t *p, k2a_buf_t *out);
/* The same with the exact k2a_metrics_render_cb signature: k2a_metrics_add_hook(&server->metrics, k2a_pool_metrics_hook, pool). */
void k2a_pool_metrics_hook(void *pool, k2a_buf_t *out);

/* Account states. */
typedef enum en_k2a_account_state_t {
    K2A_ACCOUNT_OK = 0,
    K2A_ACCOUNT_COOLING,   /* 429 or transient failure: unusable until `until` */
    K2A_ACCOUNT_EXHAUSTED, /* quota used up: unusable until the reset date */
    K2A_ACCOUNT_INVALID,   /* refresh token rejected or account forbidden: needs the operator (SIGHUP retries it) */
    K2A_ACCOUNT_DISABLED,  /* "disabled": true in the configuration */
} k2a_account_state_t;

const char *k2a_account_state_name(k2a_account_state_t s);

/* A copy of one account's public facts (tests, tools). */
typedef struct st_k2a_account_info_t {
    size_t index;
    char description[128];
    k2a_auth_kind_t auth;
    k2a_account_state_t state;
    bool refreshing;
    int64_t until_ms; /* wall clock (ms since the epoch), 0 = none */
    char reason[256];
    char refresh_token_tail[16]; /* masked: "****" + last 4 */
    bool has_access_token;
    int64_t expires_at_ms;      /* access token expiry, wall clock ms */
    int64_t refreshed_at_ms;    /* last successful refresh, wall clock ms */
    int64_t prev_expires_at_ms; /* expiry of the token that the last refresh replaced (0 = none) */
    uint64_t refreshes, refresh_failures, usage_polls;
    uint64_t requests, errors;
    unsigned inflight;
    bool usage_known;
    double credits_remaining, credits_consumed;
    int64_t next_reset_ms;
    int64_t in_tokens, out_tokens;
} k2a_account_info_t;

size_t k2a_pool_naccounts(k2a_pool_t *p);
/* Returns 0 or K2A_ENOTFOUND. */
int k2a_pool_account_info(k2a_pool_t *p, size_t index, k2a_account_info_t *out);

typedef struct st_k2a_pool_stats_t {
    uint64_t acquires;      /* leases handed out */
    uint64_t refresh_waits; /* acquires that had to wait for a refresh (0 in steady state) */
    uint64_t refreshes, refresh_failures;
    uint64_t failovers;  /* attempts moved to another account inside a request */
    uint64_t no_account; /* requests that found no usable account */
    uint64_t saves, save_failures;
    uint64_t queue_waits;  /* acquires that waited for a concurrency slot */
    uint64_t save_pending; /* 1 while a state change is not yet durable (dirty or being written) */
} k2a_pool_stats_t;
void k2a_pool_get_stats(k2a_pool_t *p, k2a_pool_stats_t *out);

/* ---- leases (the low-level API under dispatch.h) ---- */

typedef struct st_k2a_account_t k2a_account_t;

/* One account held by one request. The strings are owned by the lease and valid until release: label and description
 * are copies made on the pool's owner loop, because a reload (SIGHUP, on that loop) rewrites the account's while a
 * worker loop reads the lease. */
typedef struct st_k2a_lease_t {
    k2a_account_t *account; /* NULL when the lease is empty */
    size_t index;
    char label[160];       /* "account 0 (main)" */
    char description[128]; /* "" when none */
    k2a_auth_kind_t auth;
    char *access_token;
    char *profile_arn; /* the ARN sent at the body root (pool/region.h k2a_arn_for_generate); NULL for API keys */
    char machine_id[65];
    uint64_t token_gen;   /* which refresh produced access_token */
    uint64_t acquired_at; /* uv_now, ms */
    /* where and how this account is called (valid while the pool lives) */
    const char *region;                      /* data-plane region */
    const struct st_k2a_url_t *generate_url; /* generateAssistantResponse in that region */
    const char *token_type;                  /* "API_KEY", "EXTERNAL_IDP" or NULL: the tokentype header */
    const struct st_k2a_url_t *fallback_url; /* generateAssistantResponse on KIRO_API_FALLBACK_BASE, NULL when off */
} k2a_lease_t;

/* The accounts a request has already tried (skipped by the next acquire), and the Kiro modelId it needs: accounts whose
 * catalog is known and lacks it are skipped too (NULL = any account). */
#define K2A_POOL_MAX_EXCLUDE 64
typedef struct st_k2a_pool_exclude_t {
    uint64_t ids[K2A_POOL_MAX_EXCLUDE];
    size_t n;
    const char *model; /* borrowed */
    uint64_t session;  /* the client session (pool/sticky.h k2a_sticky_key), 0 = none: sticky routing when enabled */
    const char *why;   /* set by the pick: why this account ("sticky hit", "moved: cooling", "new: least-loaded", ...) */
} k2a_pool_exclude_t;

/* In a coroutine: takes a usable account not in `exclude` (may be NULL) according to the strategy, with a valid access
 * token (awaiting the account's single-flight refresh when needed; accounts whose refresh fails are skipped, and each such
 * failure is described through on_skip when it is not NULL). Waits up to queue_timeout_ms when every candidate is at its
 * concurrency cap. Returns 0 with *lease filled, K2A_ENO_ACCOUNT (nothing usable; *retry_after_ms, when not NULL, is set to
 * the time until the soonest cooling/exhausted account recovers, 0 if unknown), K2A_EBUSY (queue timeout) or
 * K2A_ECANCELED. */
typedef void (*k2a_pool_skip_cb)(void *ctx, const k2a_lease_t *lease, int err, const char *detail);
int k2a_pool_acquire(k2a_pool_t *p, k2a_pool_exclude_t *exclude, k2a_pool_skip_cb on_skip, void *ctx, k2a_lease_t *lease,
                     uint64_t *retry_after_ms);
/* A lease on the account at `index` whatever its state (diagnostics: kiro2api doctor), with its current access token.
 * Returns 0, K2A_ENOTFOUND, or K2A_EREFRESH when the account has no access token yet. Release it with k2a_pool_release. */
int k2a_pool_lease_index(k2a_pool_t *p, size_t index, k2a_lease_t *lease);
/* Gives the account back (in-flight count, balanced buckets, queued waiters). Safe outside coroutines. Idempotent. */
void k2a_pool_release(k2a_lease_t *lease);
/* In a coroutine: makes sure the lease's account has an access token newer than lease->token_gen (refreshing once, single
 * flight, unless another request already did) and updates the lease with it. Returns 0, or the refresh's error (the account
 * state then reflects it). */
int k2a_pool_refresh_lease(k2a_lease_t *lease);
/* A unique id of the lease's account (for k2a_pool_exclude_t). */
uint64_t k2a_lease_account_id(const k2a_lease_t *lease);

/* ---- endpoints (the one place that turns an account into URLs) ---- */

/* The URL of `path` (starting with '/', may carry a query, e.g. "/ListAvailableModels?origin=AI_EDITOR") on the data plane
 * of `region` (lease->region): KIRO_API_BASE with {region} filled in (a base without {region} serves every region). The
 * fixed paths "/generateAssistantResponse", "/" and "/mcp" come from a per-region cache, parsed once; anything else is built
 * into *scratch_str (reset first) and parsed into *scratch, so the result lives as long as they do. Returns NULL when the
 * URL cannot be built (memory). Safe from any loop: the cache is read-only after k2a_pool_create. */
const struct st_k2a_url_t *k2a_pool_api_url(k2a_pool_t *p, const char *region, const char *path, k2a_buf_t *scratch_str,
                                            struct st_k2a_url_t *scratch);
/* The ARN a REST call (getUsageLimits, ListAvailableModels) of the lease's account carries, or NULL: never the Builder ID
 * placeholder, which REST answers with 403. */
const char *k2a_lease_rest_arn(const k2a_lease_t *lease);
/* ---- models (the accounts' ListAvailableModels catalogs, pool/catalog.h) ---- */

typedef struct st_k2a_pool_model_t {
    char id[129];       /* Kiro modelId */
    char name[129];     /* modelName of the first catalog that has one, "" when none */
    int64_t max_input;  /* the largest tokenLimits.maxInputTokens among the catalogs, 0 when none says */
    int64_t max_output; /* the same for maxOutputTokens */
} k2a_pool_model_t;

/* On the pool's loop: the union of the known catalogs of the accounts in the pool, sorted by id (claude-sonnet-4 and
 * claude-sonnet-4.0 count once), at most max entries; *known is false when no account's catalog is known yet. Returns the
 * number of entries written. */
size_t k2a_pool_models(k2a_pool_t *p, k2a_pool_model_t *out, size_t max, bool *known);
/* The same from a coroutine on any worker loop (runs on the pool's loop). */
size_t k2a_pool_models_call(k2a_pool_t *p, k2a_pool_model_t *out, size_t max, bool *known);
/* On the pool's loop: the context window of a Kiro modelId: the largest maxInputTokens of the catalogs that list it, else
 * the built-in figure (convert/model_map.h k2a_model_default_window). */
int64_t k2a_pool_model_window(k2a_pool_t *p, const char *model);
/* On the pool's loop: true when some configured account (usable now or not) may serve the model: its catalog has it, or
 * is not known yet and it has not answered INVALID_MODEL_ID for it. */
bool k2a_pool_model_servable(k2a_pool_t *p, const char *model);

/* NULL when the pool's store is local (a file or nothing), else the shared store's state: "ok" or "unavailable". */
const char *k2a_pool_shared_store_status(k2a_pool_t *p);

#endif
