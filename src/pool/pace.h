/*
 * Per-account pacing (issue 22, kiro-protocol-2026 §12 "Pacing"): a rolling window of the generate ATTEMPTS an
 * account made, so that no account makes more than its rpm attempts in any window (KIRO_ACCOUNT_RPM, "rpm" in the
 * account JSON; the window is KIRO_PACE_WINDOW_S, 60 s). Failover attempts and same-account retries are noted too,
 * so failover cannot burst an account.
 *
 * The window itself (k2a_pace_window_t) is a ring of the last rpm attempt times: an account is at its pace when the
 * ring is full and its oldest entry is younger than the window; the next slot opens when that entry leaves the
 * window. Every operation is O(1) amortised.
 *
 * The pool side (pace.c): an account at its pace leaves the selection structures (select.c) until its next slot, so
 * that picks never scan paced accounts; one pool timer brings them back, waking queued requests (lease.c) in FIFO
 * order.
 */
#ifndef K2A_POOL_PACE_H
#define K2A_POOL_PACE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct st_k2a_pace_window_t {
    uint64_t *at;  /* ring of attempt times (ms, any monotonic clock), cap entries */
    uint32_t cap;  /* the rpm: attempts allowed per window (0 = unpaced: nothing is recorded) */
    uint32_t head; /* index of the oldest live entry */
    uint32_t n;    /* live entries */
} k2a_pace_window_t;

/* Sizes the ring for rpm attempts (0 = unpaced). Keeps the newest entries that still fit. Returns 0 or K2A_ENOMEM (the
 * window is then unchanged). */
int k2a_pace_window_resize(k2a_pace_window_t *w, unsigned rpm);
void k2a_pace_window_dispose(k2a_pace_window_t *w);
/* Drops the entries that left the window (at + window_ms <= now). */
void k2a_pace_window_expire(k2a_pace_window_t *w, uint64_t now, uint64_t window_ms);
/* Attempts in the window ending now. */
unsigned k2a_pace_window_count(k2a_pace_window_t *w, uint64_t now, uint64_t window_ms);
/* True when another attempt now would exceed the rpm. Always false when unpaced. */
bool k2a_pace_window_full(k2a_pace_window_t *w, uint64_t now, uint64_t window_ms);
/* Records an attempt at now (a full ring forgets its oldest entry: the caller checks k2a_pace_window_full first). */
void k2a_pace_window_note(k2a_pace_window_t *w, uint64_t now);
/* When the next attempt is allowed: now when the window is not full, else the time its oldest entry leaves it. */
uint64_t k2a_pace_window_next_slot(k2a_pace_window_t *w, uint64_t now, uint64_t window_ms);

/* ---- the pool side (pace.c), on the pool's loop ---- */

struct st_k2a_pool_t;
struct st_k2a_account_t;
struct st_k2a_pool_exclude_t;

/* The account's effective limits: its "rpm" / "max_concurrency" from the account JSON, else KIRO_ACCOUNT_RPM /
 * KIRO_ACCOUNT_MAX_CONCURRENCY (0 = unlimited). */
unsigned k2a_account_rpm(const struct st_k2a_account_t *a);
unsigned k2a_account_max_concurrency(const struct st_k2a_account_t *a);
/* Sizes the account's window for its current rpm (account creation and reload). Returns 0 or K2A_ENOMEM. */
int k2a_pace_account_setup(struct st_k2a_account_t *a);
/* One generate attempt of the account now: recorded; when the window is full after it, the account leaves the
 * selection until its next slot (the pool timer brings it back). */
void k2a_pace_attempt(struct st_k2a_account_t *a);
/* True while the account is out of the selection because of its pace. */
bool k2a_pace_paced(const struct st_k2a_account_t *a);
/* Attempts in the current window (for /api/tokens and /metrics). */
unsigned k2a_pace_attempts(struct st_k2a_account_t *a);
/* Milliseconds until the soonest slot among the paced accounts the request could use (not excluded, may serve its
 * model), at least 1; 0 when no such account is paced. Walks the paced accounts only: called when a pick found nothing. */
uint64_t k2a_pace_soonest(struct st_k2a_pool_t *p, const struct st_k2a_pool_exclude_t *ex);
/* True when some account out of the selection only because of its pace has a token (/readyz: still ready). Walks the
 * paced accounts only: called when no account is in the selection. */
bool k2a_pace_any_ready(struct st_k2a_pool_t *p);
/* The account leaves the pool (reload) or is destroyed: off the paced list, window freed. */
void k2a_pace_forget(struct st_k2a_account_t *a);
/* The accounts or their limits changed (create, reload): whether some account has its own max_concurrency. */
void k2a_pace_limits_changed(struct st_k2a_pool_t *p);
/* The pool timer (create, once nothing can fail any more / shutdown); the paced list is initialised by create. */
void k2a_pace_init(struct st_k2a_pool_t *p);
void k2a_pace_stop(struct st_k2a_pool_t *p);

#endif
