/*
 * Module-private structures of the account pool, shared by pool.c (lifecycle, state machine, leases),
 * select.c (strategies), refresh.c (refresh and usage jobs), render.c and dispatch.c.
 * Lifetime: an account is reference-counted: the pool's membership, every lease, every running job and every
 * open uv timer hold one reference, so a reload may drop an account while a stream still uses it.
 */
#ifndef K2A_POOL_INTERNAL_H
#define K2A_POOL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "core/coro.h"
#include "pool/health.h"
#include "pool/pace.h"
#include "pool/pool.h"
#include "pool/region.h"
#include "pool/sticky.h"
#include "pool/store.h"
#include "upstream/upstream.h"

/* An intrusive circular doubly-linked list node (a list is a sentinel node). */
typedef struct st_k2a_plink_t {
    struct st_k2a_plink_t *prev, *next;
} k2a_plink_t;

static inline void k2a_plink_init(k2a_plink_t *l)
{
    l->prev = l->next = l;
}
static inline bool k2a_plink_linked(const k2a_plink_t *n)
{
    return n->next != n;
}
static inline bool k2a_plist_empty(const k2a_plink_t *list)
{
    return list->next == list;
}
static inline void k2a_plink_insert_before(k2a_plink_t *pos, k2a_plink_t *n)
{
    n->prev = pos->prev;
    n->next = pos;
    pos->prev->next = n;
    pos->prev = n;
}
static inline void k2a_plink_unlink(k2a_plink_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}
#define K2A_PLINK_OWNER(type, member, ptr) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Errors counted per account, by class (metrics label). */
typedef enum en_k2a_errclass_t {
    K2A_ERRC_AUTH = 0,
    K2A_ERRC_FORBIDDEN,
    K2A_ERRC_QUOTA,
    K2A_ERRC_THROTTLE,
    K2A_ERRC_TRANSIENT,
    K2A_ERRC_CLIENT,
    K2A_ERRC_LOCAL,
    K2A_ERRC_STREAM,
    K2A_ERRC_REFRESH,
    K2A_ERRC_MAX
} k2a_errclass_t;

struct st_k2a_account_t {
    k2a_pool_t *pool;
    uint64_t id; /* unique in the pool, never reused */
    size_t index;
    unsigned refcnt;
    bool removed;      /* dropped by a reload (or the pool is shutting down) */
    bool eligible;     /* linked in the pool's selection lists */
    k2a_plink_t olink; /* pool->eligible, in index order */
    k2a_plink_t blink; /* pool->buckets[inflight] (balanced) */
    /* pacing and sessions (pace.c, sticky.c) */
    k2a_pace_window_t pace; /* the attempts of the last KIRO_PACE_WINDOW_S */
    bool paced;             /* at its pace: out of the selection until its next slot (linked in pool->paced) */
    k2a_plink_t pace_link;
    size_t sessions; /* sessions pinned to it */
    k2a_account_config_t cfg;
    char key[65];
    char machine_id[65];
    char label[160];
    /* credentials */
    char *refresh_token; /* current, possibly rotated */
    char *access_token;  /* NULL until the first refresh */
    char *profile_arn;
    int64_t expires_at; /* wall clock ms */
    int64_t expires_in_s;
    int64_t refreshed_at; /* wall clock ms */
    int64_t prev_expires_at;
    uint64_t token_gen;  /* bumped by every successful refresh */
    uint64_t rt_version; /* bumped by every rotation of refresh_token (the shared store keeps the newest version) */
    bool ever_refreshed; /* an access token was obtained (now or from the state file) */
    /* health */
    k2a_account_state_t state;
    int64_t until;    /* wall clock ms (cooling, exhausted) */
    int64_t state_at; /* wall clock ms of the last state change (the shared store keeps the latest) */
    char reason[256];
    unsigned throttle_n, transient_n, refresh_fail_n;
    uint64_t auth_fail_gen; /* token_gen of the first token rejected with 401/403 since the last success; 0 = none */
    /* shared store (store_redis.c): parts not written yet (K2A_ACCT_CHG_*), counters already written, the lock value */
    unsigned store_pending;
    uint64_t store_req, store_err;
    int64_t store_in, store_out;
    double store_cc;
    char store_lock[33];
    /* single-flight refresh */
    bool refreshing;
    bool warmup; /* the refresh timer is a start-up refresh: kept warmup_stagger_ms from the previous one */
    k2a_plink_t waiters;
    /* usage */
    bool usage_known, usage_polling;
    double credits_remaining, credits_limit, credits_used;
    int64_t next_reset; /* wall clock ms */
    int64_t usage_at;
    char email[128];
    char subscription[96];
    /* counters */
    unsigned inflight;
    uint64_t requests, errors, errors_by_class[K2A_ERRC_MAX];
    uint64_t refreshes, refresh_failures, usage_polls, usage_failures;
    int64_t in_tokens, out_tokens;
    double credits_consumed;
    double latency_sum; /* seconds, successful attempts */
    uint64_t latency_count;
    int64_t last_used; /* wall clock ms */
    char last_error[256];
    int64_t last_error_at;
    /* timers; each open handle holds a reference */
    uv_timer_t refresh_timer; /* refresh-ahead, retries of failed refreshes */
    uv_timer_t usage_timer;   /* getUsageLimits polling */
    uv_timer_t wake_timer;    /* end of cooling / exhausted */
    bool timers_open;
    /* profileArn (pool/region.h, profiles.c): profile_arn above is the learned one; cfg.profile_arn wins over it */
    uint8_t arn_source;   /* K2A_ARN_SRC_*: where profile_arn came from */
    uint8_t lap_state;    /* K2A_LAP_*: ListAvailableProfiles for IdC/external_idp accounts without an ARN */
    int64_t lap_retry_at; /* wall clock ms: a failed ListAvailableProfiles is tried again at a refresh after this */
    bool resolving;       /* the refresh job is asking ListAvailableProfiles: requests wait for the ARN with the token */
    /* model catalog (catalog_job.c) */
    struct st_k2a_catalog_t *catalog; /* ListAvailableModels, NULL while unknown */
    char **models_missing;            /* answered INVALID_MODEL_ID while the catalog was unknown */
    size_t nmissing;
    bool catalog_fetching;
    unsigned catalog_fail_n;
    int64_t catalog_retry_at; /* wall clock ms: no fetch before (after a failure) */
};

enum { K2A_ARN_SRC_NONE = 0, K2A_ARN_SRC_REFRESH, K2A_ARN_SRC_PROFILES, K2A_ARN_SRC_STATE };
enum {
    K2A_LAP_NOT_TRIED = 0,
    K2A_LAP_DONE,   /* an ARN was found (profile_arn) */
    K2A_LAP_NONE,   /* 403 or an empty list in every region: no enterprise profile (the Builder ID placeholder is sent) */
    K2A_LAP_FAILED, /* transport error or another status: the placeholder for now, tried again after lap_retry_at */
};
#define K2A_LAP_RETRY_MS (10 * 60 * 1000)
/* An API key never expires as far as the pool knows: its "token" is the key, valid for this long (no refresh-ahead). */
#define K2A_API_KEY_LIFETIME_S (365 * 86400)

/* The endpoints of one region: KIRO_API_BASE and the refresh URLs with {region} filled in, parsed once. */
typedef struct st_k2a_region_urls_t {
    const char *name; /* k2a_regions[i] */
    char *base;       /* no trailing slash */
    char *generate_str, *root_str, *mcp_str, *social_str, *idc_str;
    k2a_url_t generate, root, mcp, social, idc;
    char *fallback_str; /* KIRO_API_FALLBACK_BASE + /generateAssistantResponse, NULL when off */
    k2a_url_t fallback;
} k2a_region_urls_t;

/* A coroutine parked on an account's in-flight refresh, or on the pool's slot queue. Lives on the waiter's stack. */
typedef struct st_k2a_pool_waiter_t {
    k2a_plink_t link;
    k2a_coro_t *co;
    bool woken;
} k2a_pool_waiter_t;

/* A background coroutine (refresh, usage poll), tracked so that shutdown can cancel it. */
typedef struct st_k2a_pool_job_t {
    k2a_plink_t link;
    k2a_pool_t *pool;
    k2a_account_t *account; /* holds a reference */
    k2a_coro_t *co;
    int kind; /* 0 refresh, 1 usage */
} k2a_pool_job_t;

struct st_k2a_pool_t {
    uv_loop_t *loop;
    k2a_upstream_t *up;
    /* the endpoint of the pool's loop: other worker loops reach the pool's state only through it (core/xloop.h) */
    struct st_k2a_xloop_t *owner;
    k2a_pool_config_t cfg; /* strings below are owned copies */
    char *auth_token_src, *state_file;
    char *api_base, *social_url, *idc_url, *kiro_version, *agent_mode;
    char *generate_url_str;
    k2a_url_t generate_url, social_url_parsed, idc_url_parsed;
    char x_amz_user_agent_tail[160]; /* "KiroIDE-<version>-" */
    /* accounts in configuration order */
    k2a_account_t **accounts;
    size_t naccounts;
    uint64_t next_id;
    /* selection */
    k2a_plink_t eligible; /* eligible accounts in index order */
    size_t neligible;
    size_t nready; /* eligible accounts that have obtained an access token */
    k2a_account_t *seq_cursor, *rr_cursor;
    k2a_plink_t *buckets; /* balanced: buckets[k] = eligible accounts with k in-flight, least recently used first */
    size_t nbuckets, min_bucket;
    k2a_plink_t slot_waiters; /* acquires waiting for a concurrency slot or a pace slot, FIFO */
    bool caps_vary;           /* some account has its own max_concurrency (balanced picks cannot stop at the first capped) */
    /* pacing (pace.c): accounts at their pace, and the timer of the soonest slot */
    k2a_plink_t paced;
    uv_timer_t pace_timer;
    bool pace_timer_open;
    uint64_t pace_due; /* monotonic ms the timer is armed for, 0 = not armed */
    /* session-sticky routing (sticky.c) */
    k2a_sticky_table_t sticky;
    /* durable state */
    k2a_pool_store_t *store;
    bool store_quiet;            /* applying the store's own data (another replica's change): transitions do not echo it back */
    k2a_pool_snapshot_t orphans; /* records of the state file that match no configured account (kept and written back) */
    uv_timer_t save_timer;
    bool dirty, saving, save_urgent;
    /* rotated refresh tokens: rotations adopted / included in the save in flight / known durable. A refresh does not start
     * while a rotation is not durable (refresh.c), so a kill -9 loses at most the rotation whose refresh is in flight. */
    uint64_t rotation_seq, rotation_saving_seq, rotation_durable_seq;
    unsigned save_fail_n;        /* consecutive failed writes: the retry backs off from 1 s to 10 s */
    uint64_t warmup_next;        /* uv_now before which no other start-up refresh starts */
    k2a_plink_t durable_waiters; /* refresh jobs waiting for that write */
    /* background jobs */
    k2a_plink_t jobs;
    bool shutting_down;
    unsigned open_handles;
    k2a_pool_stats_t stats;
    /* per-region endpoints, indexed as k2a_regions (endpoints.c) */
    k2a_region_urls_t region_urls[K2A_NREGIONS];
    char *api_fallback_base; /* owned copy of cfg.api_fallback_base ("" = off) */
    /* model catalogs (catalog_job.c): one timer starts the due ListAvailableModels fetches, at most one per tick */
    uv_timer_t catalog_timer;
    bool catalog_timer_open;
};

/* wall clock, ms since the epoch */
int64_t k2a_pool_now_ms(void);

/* pool.c, state.c, persist.c, lease.c */
void k2a_account_ref(k2a_account_t *a);
void k2a_account_unref(k2a_account_t *a);
/* True when the access token is present and not within the safety margin of its expiry. */
bool k2a_account_token_valid(const k2a_account_t *a, int64_t now);
void k2a_account_set_state(k2a_account_t *a, k2a_account_state_t st, int64_t until, const char *reason);
/* Applies a verdict about a generate call (or the stream after it) made with token generation token_gen. */
void k2a_account_apply_verdict(k2a_account_t *a, const k2a_verdict_t *v, uint64_t token_gen);
void k2a_account_note_error(k2a_account_t *a, k2a_errclass_t c, const char *detail);
void k2a_account_schedule_refresh(k2a_account_t *a, uint64_t delay_ms);
void k2a_account_schedule_usage(k2a_account_t *a, uint64_t delay_ms);
/* A state change to persist: urgent (a rotated refresh token) starts the write at once, else within save_debounce_ms. */
void k2a_pool_mark_dirty(k2a_pool_t *p, bool urgent);
/* Counters only (requests, tokens, credits): written within K2A_POOL_LAZY_SAVE_MS, so a busy pool writes rarely. */
#define K2A_POOL_LAZY_SAVE_MS 5000
void k2a_pool_mark_dirty_lazy(k2a_pool_t *p);
void k2a_pool_update_eligibility(k2a_account_t *a);
/* Starts (or stops) the end-of-cooling/exhaustion timer for the account's current state. */
void k2a_account_arm_wake(k2a_account_t *a);
/* Wakes the first acquire queued for a concurrency slot. */
void k2a_pool_wake_slot_waiter(k2a_pool_t *p);
/* The account's durable record (strings duplicated). */
void k2a_account_snapshot(const k2a_account_t *a, k2a_account_snapshot_t *s);
/* Encodes the whole durable state (accounts + orphans) as the store's JSON. */
int k2a_pool_encode_state(k2a_pool_t *p, k2a_buf_t *out);
/* Starts a write of the state when dirty and none is in flight. */
void k2a_pool_start_save(k2a_pool_t *p);
/* Arms the refresh-ahead timer for the current token. */
void k2a_pool_schedule_refresh_ahead(k2a_account_t *a);

/* select.c */
void k2a_select_add(k2a_pool_t *p, k2a_account_t *a);
void k2a_select_remove(k2a_pool_t *p, k2a_account_t *a);
/* Picks an account for a new lease (not in exclude, below the concurrency cap). Returns NULL when none; *at_cap tells
 * whether some candidate was skipped only because of its cap. */
k2a_account_t *k2a_select_pick(k2a_pool_t *p, const k2a_pool_exclude_t *exclude, bool *at_cap);
/* In-flight count changes (moves the account between balanced buckets). */
void k2a_select_inflight_changed(k2a_pool_t *p, k2a_account_t *a, unsigned old_inflight);
int k2a_select_init(k2a_pool_t *p);
void k2a_select_dispose(k2a_pool_t *p);

/* refresh.c */
/* In a coroutine: makes sure a has an access token newer than after_gen (0 = any valid token), joining or starting the
 * single-flight refresh. Returns 0 or the refresh's K2A_E* (K2A_ECANCELED when the caller was canceled). */
int k2a_account_await_token(k2a_account_t *a, uint64_t after_gen, bool *waited);
/* In a coroutine, now (kiro2api doctor): the account's refresh (and profile resolution) as the background job does it, with its
 * verdict in *v. Returns 0, K2A_EBUSY when a refresh is already running, or the refresh's K2A_E*. */
int k2a_account_refresh_now(k2a_account_t *a, k2a_verdict_t *v);
/* In a coroutine, now: one getUsageLimits call with the current token (no polling scheduled). Returns 0 (usage applied), or
 * a K2A_E* with *status (0 for transport errors) and *v classifying the answer. */
int k2a_account_usage_now(k2a_account_t *a, int *status, k2a_verdict_t *v);
/* Starts a background refresh unless one is running. */
void k2a_account_start_refresh(k2a_account_t *a);
/* Starts a background usage poll unless one is running. */
void k2a_account_start_usage_poll(k2a_account_t *a);
/* Cancels every job (shutdown). */
void k2a_pool_cancel_jobs(k2a_pool_t *p);
/* Wakes every waiter of a's refresh with result. */
void k2a_account_wake_waiters(k2a_account_t *a, int result);
/* One bounded HTTP call of a background job (refresh, usage, profiles), in a coroutine. Returns 0 with *status and the body
 * (an error body cut at max still counts), or a transport K2A_E*. */
int k2a_pool_http_call(k2a_pool_t *p, const k2a_account_t *a, const k2a_url_t *url, const char *method,
                       const k2a_http_header_t *headers, size_t nheaders, const char *body, size_t body_len, k2a_buf_t *resp_body,
                       size_t max, int *status);

/* pool.c: the stable key of a configured account (sha256 hex of its kind and ORIGINAL refresh token), and a reload from an
 * already parsed list (k2a_pool_reload's work after parsing; the list stays the caller's). Returns 0 or K2A_ENOMEM (the
 * entries that could be set up are in the pool). */
void k2a_account_config_key(const k2a_account_config_t *c, char out[65]);
int k2a_pool_reload_list(k2a_pool_t *p, const k2a_account_list_t *list);

/* accounts_config.c */
/* Deep copy (strings duplicated). Returns 0 or K2A_ENOMEM (dst then holds what was copied: dispose it). */
int k2a_account_config_copy(k2a_account_config_t *dst, const k2a_account_config_t *src);
void k2a_account_config_dispose(k2a_account_config_t *c);

/* endpoints.c */
/* Fills p->region_urls from the URL templates (KIRO_API_BASE, refresh URLs). Returns 0 or K2A_ECONFIG naming the variable. */
int k2a_pool_endpoints_init(k2a_pool_t *p, char *err, size_t errlen);
void k2a_pool_endpoints_dispose(k2a_pool_t *p);
/* The endpoints of a region (an unknown name gets the first region's). */
const k2a_region_urls_t *k2a_pool_region_urls(const k2a_pool_t *p, const char *region);
/* The account's kind as region.h knows it. */
k2a_arn_kind_t k2a_account_arn_kind(const k2a_account_t *a);
/* The ARN the account sends on generateAssistantResponse (NULL for API keys) and on REST calls (never the placeholder). */
const char *k2a_account_generate_arn(const k2a_account_t *a);
const char *k2a_account_rest_arn(const k2a_account_t *a);
/* The account's data-plane region (a name from k2a_regions). */
const char *k2a_account_region(const k2a_account_t *a);
/* The auth region: refresh calls go there. */
const char *k2a_account_auth_region(const k2a_account_t *a);
/* "API_KEY", "EXTERNAL_IDP" or NULL: the tokentype header of every data and REST call. */
const char *k2a_account_token_type(const k2a_account_t *a);
/* True when the account should ask ListAvailableProfiles for its ARN now (after a successful refresh). */
bool k2a_account_wants_profiles(const k2a_account_t *a, int64_t now);

/* profiles.c */
/* In a coroutine (the refresh job): asks ListAvailableProfiles for the account's ARN, its region first, then the other;
 * adopts the first non-blank ARN (persisted), or records that there is none. */
void k2a_account_resolve_profile(k2a_account_t *a);
/* Starts a background ListAvailableModels fetch unless one is running (it runs k2a_catalog_job). */
void k2a_account_start_catalog_fetch(k2a_account_t *a);

/* catalog_job.c */
/* The fetch itself (in the job's coroutine). */
void k2a_catalog_job(k2a_account_t *a);
/* The same in the caller's coroutine, now: returns 0 (a->catalog replaced) or a K2A_E* with a short text in detail. */
int k2a_account_catalog_now(k2a_account_t *a, char *detail, size_t detailsz);
/* The pool's fetch timer: started by create (when KIRO_CATALOG_REFRESH_S > 0), closed by shutdown. */
void k2a_catalog_start(k2a_pool_t *p);
void k2a_catalog_stop(k2a_pool_t *p);
/* False when the account's catalog is known and lacks the model, or the account answered INVALID_MODEL_ID for it. */
bool k2a_account_may_serve(const k2a_account_t *a, const char *model);
/* Kiro answered INVALID_MODEL_ID: the model is missing for this account until its next catalog fetch. */
void k2a_account_mark_model_missing(k2a_account_t *a, const char *model);
/* The account's maxInputTokens for the model, 0 when its catalog does not say. */
int64_t k2a_account_model_window(const k2a_account_t *a, const char *model);
/* State file: the catalog as a string (NULL when unknown), and back (a bad string is ignored). */
char *k2a_account_catalog_encode(const k2a_account_t *a);
void k2a_account_catalog_restore(k2a_account_t *a, const char *json);
void k2a_account_catalog_free(k2a_account_t *a);
/* /api/tokens: ,"models":<count, null while unknown>,"models_default":..,"models_fetched_at":<ms> */
void k2a_account_render_catalog(const k2a_account_t *a, k2a_buf_t *out);

#endif
