/*
 * The pool's pure decision functions, kept free of I/O so that they are unit-tested as tables: the typed
 * error matrix (an upstream answer -> what the pool does with the account and the request), backoff
 * arithmetic, the remaining-credit algorithm of getUsageLimits and kiro2api's e-mail masking.
 */
#ifndef K2A_POOL_HEALTH_H
#define K2A_POOL_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What one upstream answer means. */
typedef enum en_k2a_pool_action_t {
    K2A_ACT_OK = 0,    /* success: reset the account's backoffs */
    K2A_ACT_CLIENT,    /* the request's fault (400 Improperly formed, CONTENT_LENGTH_EXCEEDS_THRESHOLD, other 4xx):
                          no penalty, no failover (it would fail on every account) */
    K2A_ACT_AUTH,      /* 401/403 invalid bearer token: refresh and retry on the same account once per request; when a
                          freshly refreshed token is rejected too, the account becomes invalid */
    K2A_ACT_FORBIDDEN, /* 403 that is not about the token (suspended, AccessDenied): same as AUTH, and the reason is kept */
    K2A_ACT_QUOTA,     /* 402 or MONTHLY_REQUEST_COUNT: exhausted until the reset date, fail over */
    K2A_ACT_THROTTLE,  /* 429: cooling 2 s * 2^n (cap 5 min) +-20 % jitter, fail over */
    K2A_ACT_TRANSIENT, /* 5xx, connect/timeout/reset/TLS handshake: cooling 1 s * 2^n (cap 60 s) +-20 %, fail over */
    K2A_ACT_LOCAL,     /* our side (DNS, proxy, certificate trust, bad URL, out of memory): no penalty, no failover */
    K2A_ACT_INVALID,   /* refresh only: the refresh token or IdC client was rejected: invalid */
    K2A_ACT_CANCELED,  /* the request went away: nothing to learn */
    K2A_ACT_CONFIG,    /* the account's profileArn/identity does not fit (400 "profileArn is required", 403 "User is not
                          authorized to make this call."): invalid with the reason, fail over; never the client's error */
    K2A_ACT_MODEL,     /* 400 INVALID_MODEL_ID: this account may not use the model (kiro-protocol-2026 §3): mark it missing in
                          the account's catalog and fail over, no penalty */
    K2A_ACT_FLAGGED,   /* 429 "suspicious activity": the account cools for KIRO_FLAGGED_COOLDOWN_S (30 min), fail over; never a
                          fast retry (kiro-protocol-2026 §9) */
    K2A_ACT_BANNED,    /* 403 TEMPORARILY_SUSPENDED / locked "as a security precaution", 423: invalid at once with the reason
                          (no refresh first), until an operator acts; fail over */
    K2A_ACT_CAPACITY,  /* INSUFFICIENT_MODEL_CAPACITY, MODEL_TEMPORARILY_UNAVAILABLE: the model is busy, not the account: no
                          penalty, fail over; the client gets overloaded (529 / 503) with Retry-After */
} k2a_pool_action_t;

const char *k2a_pool_action_name(k2a_pool_action_t a);

typedef struct st_k2a_verdict_t {
    k2a_pool_action_t action;
    int err;           /* the K2A_E* class reported to the client (K2A_EUPSTREAM_BAD_REQUEST, K2A_ETHROTTLED, ...) */
    int status;        /* upstream HTTP status, 0 for a transport error */
    char reason[64];   /* upstream "reason" (MONTHLY_REQUEST_COUNT, CONTENT_LENGTH_EXCEEDS_THRESHOLD, ...), or "" */
    char message[256]; /* upstream "message" (or error_description), or "" */
    char detail[200];  /* short text for the attempt list, e.g. "quota exhausted (MONTHLY_REQUEST_COUNT)" */
} k2a_verdict_t;

/* Classifies one generateAssistantResponse outcome: transport_err (0 or a K2A_E* from the upstream client) or an HTTP
 * status with its (possibly partial, possibly empty) body. Status 200 with transport_err 0 is K2A_ACT_OK. */
void k2a_pool_classify(int transport_err, int status, const char *body, size_t len, k2a_verdict_t *out);
/* The rows of the generate-call error matrix, for tests and documentation: row i's status range, reason, text, action and
 * detail prefix; NULL past the last row. */
const char *k2a_pool_classify_row(size_t i, int *st_lo, int *st_hi, const char **reason, const char **text,
                                  k2a_pool_action_t *action);
/* Same for a refresh call (Social /refreshToken, IdC /token): 400/401/403 -> K2A_ACT_INVALID (invalid_grant, "Invalid
 * refresh token provided", invalid_client, ...), 429 -> THROTTLE, 5xx and transport errors -> TRANSIENT. */
void k2a_pool_classify_refresh(int transport_err, int status, const char *body, size_t len, k2a_verdict_t *out);

/* Exponential backoff: base_ms * 2^n capped at cap_ms, then multiplied by a factor in [1 - jitter_pct/100, 1 + jitter_pct/100]
 * picked from rnd (a uniform 64-bit random number). Never returns 0 for base_ms > 0. */
uint64_t k2a_pool_backoff_ms(uint64_t base_ms, uint64_t cap_ms, unsigned n, unsigned jitter_pct, uint64_t rnd);
#define K2A_POOL_THROTTLE_BASE_MS 2000
#define K2A_POOL_THROTTLE_CAP_MS (5 * 60 * 1000)
#define K2A_POOL_TRANSIENT_BASE_MS 1000
#define K2A_POOL_TRANSIENT_CAP_MS (60 * 1000)
#define K2A_POOL_BACKOFF_JITTER_PCT 20

/* Refresh-ahead delay: lifetime * pct / 100, jittered by +-jitter_pct % of the lifetime, never below 1 s nor past the
 * lifetime minus 1 s (when the lifetime allows). All in ms. */
uint64_t k2a_pool_refresh_ahead_ms(uint64_t lifetime_ms, unsigned pct, unsigned jitter_pct, uint64_t rnd);

/* The 1st of the month after `now_ms` at 00:00 UTC, in ms since the epoch. */
int64_t k2a_pool_next_month_utc_ms(int64_t now_ms);

/* getUsageLimits, digested. */
typedef struct st_k2a_usage_t {
    bool has_credit;       /* a CREDIT breakdown was found */
    double remaining;      /* kiro2api's algorithm, clamped at 0 */
    double limit;          /* usageLimitWithPrecision (+ the ACTIVE free trial's) */
    double used;           /* currentUsageWithPrecision (+ the ACTIVE free trial's) */
    int64_t next_reset_ms; /* nextDateReset (breakdown, else top level), 0 when absent */
    char email[128];       /* userInfo.email, "" when absent */
    char subscription[96]; /* subscriptionInfo.subscriptionTitle */
} k2a_usage_t;

/* Parses a getUsageLimits body. Remaining credits [K2A]: the FIRST usageBreakdownList entry with resourceType "CREDIT";
 * total = 0; + freeTrialInfo.usageLimitWithPrecision - currentUsageWithPrecision when freeTrialStatus is "ACTIVE";
 * + usageLimitWithPrecision - currentUsageWithPrecision; clamped at 0 (the integer fields are used when the *WithPrecision
 * ones are absent). No CREDIT entry: has_credit false, remaining 0. Returns 0 or K2A_EUPSTREAM_EVENT (not JSON). */
int k2a_pool_parse_usage(const char *body, size_t len, k2a_usage_t *out);

/* kiro2api's e-mail masking: local part of <= 4 chars all '*', else first 2 + '*' * (len - 4) + last 2; domain with two
 * labels: first label all '*' (gmail.com -> *****.com); three or more: all but the last two starred (sun.edu.pl ->
 * ***.edu.pl); one label: all '*'. Not an e-mail: copied unchanged. */
void k2a_pool_mask_email(const char *email, char *out, size_t outsz);

#endif
