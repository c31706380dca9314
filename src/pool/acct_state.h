/*
 * The one owner of an account's state (internal.h's credential, health, usage and catalog fields). Every other
 * file of pool/ reads those fields freely but changes them only through the transitions below; each transition
 * updates the fields, keeps the pool's bookkeeping (secrets in the log filter, readiness, selection lists, the
 * durable snapshot) and tells the store which part changed (store.h `changed`), so that the file store and the
 * shared (Redis) store are two backends of the same interface and the rest of pool/ does not know which one runs.
 *
 * Transitions (all on the pool's loop):
 *   k2a_acct_token_adopted   a refresh (or an API key) gave a new access token, maybe a rotated refresh token / ARN
 *   k2a_acct_token_dead      the current access token was rejected: the next use waits for a refresh
 *   k2a_account_set_state    state changed (ok / cooling / exhausted / invalid / disabled, with its end and reason)
 *   k2a_account_note_error   an error counted against the account
 *   k2a_acct_request_counted a request (or a retry) went to the account
 *   k2a_acct_used            the account was leased (last_used)
 *   k2a_acct_usage_added     a finished attempt's credits and tokens
 *   k2a_acct_quota_reached   Kiro said the credits are spent (remaining 0, exhausted until the reset)
 *   k2a_acct_usage_polled    a getUsageLimits answer (credits, reset date; may exhaust or revive the account)
 *   k2a_acct_catalog_set     a fetched model catalog replaces the known one
 *   k2a_acct_profile_set     a profileArn was learned (refresh answer, ListAvailableProfiles)
 *   k2a_acct_restored        a stored record (state file) adopted at start-up
 *   k2a_acct_shared_applied  another replica's record (shared store): newer tokens, a later state
 */
#ifndef K2A_POOL_ACCT_STATE_H
#define K2A_POOL_ACCT_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include "pool/store.h"

struct st_k2a_account_t;
struct st_k2a_catalog_t;
struct st_k2a_usage_t;

/* What a transition changed: the store's `changed` hook receives an OR of these. */
enum {
    K2A_ACCT_CHG_TOKEN = 1u << 0,    /* access token, expiry (and ARN when the refresh named one) */
    K2A_ACCT_CHG_ROTATED = 1u << 1,  /* the refresh token rotated: losing it loses the account */
    K2A_ACCT_CHG_STATE = 1u << 2,    /* state, until, reason */
    K2A_ACCT_CHG_USAGE = 1u << 3,    /* credits known / remaining / limit, next reset */
    K2A_ACCT_CHG_COUNTERS = 1u << 4, /* requests, errors, tokens, credits consumed, last used */
    K2A_ACCT_CHG_CATALOG = 1u << 5,
    K2A_ACCT_CHG_PROFILE = 1u << 6,
};

/* A refresh answer, or an API key taken as its own token. */
typedef struct st_k2a_acct_token_t {
    const char *access_token;  /* required */
    int64_t expires_in_s;      /* lifetime as granted */
    const char *refresh_token; /* the refresh answer's refresh token, NULL when none (a different one is a rotation) */
    const char *profile_arn;   /* the refresh answer's profileArn (already validated), NULL when none */
} k2a_acct_token_t;

/* Adopts a new access token (token_gen bumped). Returns 0 or K2A_ENOMEM; *rotated tells whether the refresh token changed. */
int k2a_acct_token_adopted(struct st_k2a_account_t *a, const k2a_acct_token_t *t, bool *rotated);
/* The access token of generation token_gen was rejected: when it is still the current one, it counts as expired. Returns
 * true when it was the current one. */
bool k2a_acct_token_dead(struct st_k2a_account_t *a, uint64_t token_gen);
/* Kiro said the account's credits are spent: remaining 0, exhausted until `until`. */
void k2a_acct_quota_reached(struct st_k2a_account_t *a, int64_t until, const char *reason);
/* One more request (or retry on the same lease) sent to the account. */
void k2a_acct_request_counted(struct st_k2a_account_t *a);
/* The account was leased now. */
void k2a_acct_used(struct st_k2a_account_t *a, int64_t now);
/* A finished attempt: credits (0 or a sane positive value), tokens, and, when ok, its latency in seconds. */
void k2a_acct_usage_added(struct st_k2a_account_t *a, double credits, int64_t in_tokens, int64_t out_tokens, bool ok,
                          double latency_s);
/* A getUsageLimits answer. */
void k2a_acct_usage_polled(struct st_k2a_account_t *a, const struct st_k2a_usage_t *u);
/* Replaces the account's catalog (c is taken; also forgets the INVALID_MODEL_ID marks). */
void k2a_acct_catalog_set(struct st_k2a_account_t *a, struct st_k2a_catalog_t *c);
/* A profileArn learned from source (K2A_ARN_SRC_*). Returns 0 or K2A_ENOMEM. */
int k2a_acct_profile_set(struct st_k2a_account_t *a, const char *arn, uint8_t source);
/* Adopts a stored record (start-up). */
void k2a_acct_restored(struct st_k2a_account_t *a, const k2a_account_snapshot_t *s, int64_t now);
/* Another replica's view of the account (the shared store's record). Strings may be NULL. */
typedef struct st_k2a_acct_shared_t {
    char *refresh_token;
    uint64_t rt_version;
    char *access_token;
    int64_t expires_at_ms, expires_in_s, refreshed_at_ms;
    char *profile_arn;
    bool has_state;
    int state; /* k2a_account_state_t */
    int64_t until_ms, state_at_ms;
    char *reason;
} k2a_acct_shared_t;
void k2a_acct_shared_dispose(k2a_acct_shared_t *r);
/* Applies what k2a_redis_merge says to take (K2A_REDIS_TAKE_*) from r; the store is not told (it is its own data). */
void k2a_acct_shared_applied(struct st_k2a_account_t *a, const k2a_acct_shared_t *r, unsigned take);
/* Tells the store that part of the account changed (the transitions call it; exposed for the store's own replays). */
void k2a_acct_notify(struct st_k2a_account_t *a, unsigned what);

#endif
