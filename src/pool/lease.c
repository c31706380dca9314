/*
 * Leases: a request takes an account (strategy in select.c, session stickiness in sticky.c), awaiting its
 * single-flight refresh when the token is stale (refresh.c) and queueing FIFO with a timeout when every
 * candidate is at its concurrency cap (30 s) or at its pace (KIRO_PACE_WAIT_MS, pace.c: then
 * K2A_EPACED with the time until the soonest slot); every lease is a generate attempt counted by the pace. The
 * lease holds a reference, so a reload cannot free the account under a running stream. Also the read-only
 * introspection used by /readyz, tests and tools.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/errors.h"
#include "core/log.h"
#include "core/rand.h"
#include "pool/acct_state.h"
#include "pool/internal.h"

static void on_slot_cancel(k2a_coro_t *co, void *data)
{
    k2a_pool_waiter_t *w = data;
    if (w->woken)
        return;
    k2a_plink_unlink(&w->link);
    w->woken = true;
    k2a_coro_wake(co, K2A_ECANCELED);
}

typedef struct st_slot_timer_t {
    uv_timer_t timer;
    k2a_pool_waiter_t *w;
} slot_timer_t;

static void on_slot_timeout(uv_timer_t *t)
{
    slot_timer_t *st = t->data;
    k2a_pool_waiter_t *w = st->w;
    if (w == NULL || w->woken)
        return;
    k2a_plink_unlink(&w->link);
    w->woken = true;
    k2a_coro_wake(w->co, K2A_ETIMEDOUT);
}

/* Parks until a concurrency or pace slot frees up or timeout_ms passes. A request woken before that found nothing and
 * parks again at the head (at_head), keeping its place in the FIFO. */
static int wait_slot(k2a_pool_t *p, uint64_t timeout_ms, bool at_head)
{
    k2a_pool_waiter_t w = {.co = k2a_coro_current()};
    slot_timer_t *st = malloc(sizeof(*st));
    if (st == NULL)
        return K2A_ENOMEM;
    st->w = &w;
    uv_timer_init(p->loop, &st->timer);
    st->timer.data = st;
    uv_timer_start(&st->timer, on_slot_timeout, timeout_ms, 0);
    k2a_plink_insert_before(at_head ? p->slot_waiters.next : &p->slot_waiters, &w.link);
    ++p->stats.queue_waits;
    int r = (int)k2a_coro_park(on_slot_cancel, &w);
    if (!w.woken) /* defensive: resumed by someone else */
        k2a_plink_unlink(&w.link);
    st->w = NULL;
    uv_timer_stop(&st->timer);
    uv_close((uv_handle_t *)&st->timer, (uv_close_cb)free);
    return r;
}

static uint64_t soonest_recovery(k2a_pool_t *p, int64_t now)
{
    int64_t best = 0;
    for (size_t i = 0; i < p->naccounts; ++i) {
        k2a_account_t *a = p->accounts[i];
        if ((a->state == K2A_ACCOUNT_COOLING || a->state == K2A_ACCOUNT_EXHAUSTED) && a->until > now &&
            (best == 0 || a->until < best))
            best = a->until;
    }
    return best > now ? (uint64_t)(best - now) : 0;
}

/* The account's names as the lease's own (on the owner loop: a reload rewrites the account's in place). */
static void copy_names(k2a_lease_t *l, const k2a_account_t *a)
{
    k2a_copy_cstr(l->label, sizeof(l->label), a->label);
    k2a_copy_cstr(l->description, sizeof(l->description), a->cfg.description);
}

static int fill_lease(k2a_lease_t *l, k2a_account_t *a)
{
    free(l->access_token);
    free(l->profile_arn);
    const char *arn = k2a_account_generate_arn(a); /* pool/region.h: configured, learned, or the kind's default */
    l->access_token = strdup(a->access_token);
    l->profile_arn = arn != NULL ? strdup(arn) : NULL;
    l->token_gen = a->token_gen;
    l->region = k2a_account_region(a);
    const k2a_region_urls_t *u = k2a_pool_region_urls(a->pool, l->region);
    l->generate_url = &u->generate;
    l->fallback_url = u->fallback_str != NULL ? &u->fallback : NULL;
    l->token_type = k2a_account_token_type(a);
    if (l->access_token == NULL || (arn != NULL && l->profile_arn == NULL))
        return K2A_ENOMEM;
    return 0;
}

static void take(k2a_account_t *a)
{
    unsigned old = a->inflight++;
    k2a_select_inflight_changed(a->pool, a, old);
    k2a_account_ref(a);
}

static void give_back(k2a_account_t *a)
{
    k2a_pool_t *p = a->pool;
    unsigned old = a->inflight--;
    k2a_select_inflight_changed(p, a, old);
    unsigned cap = k2a_account_max_concurrency(a);
    if (a->eligible && (cap == 0 || a->inflight < cap))
        k2a_pool_wake_slot_waiter(p);
    k2a_account_unref(a);
}

int k2a_pool_acquire(k2a_pool_t *p, k2a_pool_exclude_t *exclude, k2a_pool_skip_cb on_skip, void *ctx, k2a_lease_t *lease,
                     uint64_t *retry_after_ms)
{
    k2a_pool_exclude_t local = {.n = 0};
    if (exclude == NULL)
        exclude = &local;
    memset(lease, 0, sizeof(*lease));
    if (retry_after_ms != NULL)
        *retry_after_ms = 0;
    uint64_t pace_deadline = 0; /* uv_now when this request stops waiting for a pace slot */
    bool woken = false;         /* the last wait ended with a wake-up, not a timeout */
    for (;;) {
        if (p->shutting_down)
            return K2A_ENO_ACCOUNT;
        k2a_coro_t *self = k2a_coro_current();
        if (self != NULL && k2a_coro_canceled(self))
            return K2A_ECANCELED;
        bool at_cap;
        k2a_account_t *a = exclude->session != 0 && k2a_sticky_enabled(p) ? k2a_sticky_pick(p, exclude, &at_cap)
                                                                          : k2a_select_pick(p, exclude, &at_cap);
        if (a == NULL) {
            if (at_cap && self != NULL) {
                int r = wait_slot(p, p->cfg.queue_timeout_ms, woken);
                if (r == K2A_ETIMEDOUT)
                    return K2A_EBUSY;
                if (r != 0)
                    return r;
                woken = true;
                continue;
            }
            uint64_t slot_ms = k2a_pace_soonest(p, exclude);
            if (slot_ms != 0) {
                /* every suitable account is at its pace: wait for the first slot, at most KIRO_PACE_WAIT_MS in all */
                uint64_t now = uv_now(p->loop);
                if (pace_deadline == 0)
                    pace_deadline = now + p->cfg.pace_wait_ms;
                if (self != NULL && now < pace_deadline) {
                    int r = wait_slot(p, pace_deadline - now, woken);
                    if (r != 0 && r != K2A_ETIMEDOUT)
                        return r;
                    woken = r == 0;
                    continue;
                }
                if (retry_after_ms != NULL)
                    *retry_after_ms = slot_ms;
                return K2A_EPACED;
            }
            if (retry_after_ms != NULL)
                *retry_after_ms = soonest_recovery(p, k2a_pool_now_ms());
            return at_cap ? K2A_EBUSY : K2A_ENO_ACCOUNT;
        }
        take(a);
        if (!k2a_account_token_valid(a, k2a_pool_now_ms()) || a->resolving) {
            bool waited = false;
            int r = self != NULL ? k2a_account_await_token(a, 0, &waited) : K2A_EINVAL;
            if (waited)
                ++p->stats.refresh_waits;
            if (r != 0) {
                if (r != K2A_ECANCELED && on_skip != NULL) {
                    k2a_lease_t tmp = {.account = a, .index = a->index, .auth = a->cfg.auth};
                    copy_names(&tmp, a);
                    on_skip(ctx, &tmp, r, a->last_error[0] ? a->last_error : k2a_strerror(r));
                }
                give_back(a);
                if (r == K2A_ECANCELED || r == K2A_ENOMEM)
                    return r;
                if (exclude->n < K2A_POOL_MAX_EXCLUDE)
                    exclude->ids[exclude->n++] = a->id;
                else
                    return K2A_ENO_ACCOUNT;
                continue;
            }
        }
        lease->account = a;
        lease->index = a->index;
        copy_names(lease, a);
        lease->auth = a->cfg.auth;
        memcpy(lease->machine_id, a->machine_id, sizeof(lease->machine_id));
        lease->acquired_at = uv_now(p->loop);
        if (fill_lease(lease, a) != 0) {
            k2a_pool_release(lease);
            return K2A_ENOMEM;
        }
        k2a_acct_used(a, k2a_pool_now_ms());
        ++p->stats.acquires;
        k2a_pace_attempt(a); /* may take the account out of the selection until its next slot */
        if (woken && p->neligible != 0)
            k2a_pool_wake_slot_waiter(p); /* a slot may be left for the next request in the queue */
        return 0;
    }
}

int k2a_pool_lease_index(k2a_pool_t *p, size_t index, k2a_lease_t *lease)
{
    memset(lease, 0, sizeof(*lease));
    if (index >= p->naccounts)
        return K2A_ENOTFOUND;
    k2a_account_t *a = p->accounts[index];
    if (a->access_token == NULL)
        return K2A_EREFRESH;
    take(a);
    lease->account = a;
    lease->index = a->index;
    copy_names(lease, a);
    lease->auth = a->cfg.auth;
    memcpy(lease->machine_id, a->machine_id, sizeof(lease->machine_id));
    lease->acquired_at = uv_now(p->loop);
    if (fill_lease(lease, a) != 0) {
        k2a_pool_release(lease);
        return K2A_ENOMEM;
    }
    return 0;
}

void k2a_pool_release(k2a_lease_t *lease)
{
    if (lease->account == NULL)
        return;
    k2a_account_t *a = lease->account;
    lease->account = NULL;
    free(lease->access_token);
    free(lease->profile_arn);
    lease->access_token = lease->profile_arn = NULL;
    give_back(a);
}

int k2a_pool_refresh_lease(k2a_lease_t *lease)
{
    k2a_account_t *a = lease->account;
    if (a == NULL)
        return K2A_EINVAL;
    bool waited = false;
    int r = k2a_account_await_token(a, lease->token_gen, &waited);
    if (r != 0)
        return r;
    return fill_lease(lease, a);
}

uint64_t k2a_lease_account_id(const k2a_lease_t *lease)
{
    return lease->account != NULL ? lease->account->id : 0;
}

/* ---- introspection ---- */

bool k2a_pool_ready(k2a_pool_t *p)
{
    /* an account at its pace is out of the selection for seconds, not unusable: it keeps the pool ready */
    return p != NULL && !p->shutting_down && (p->nready > 0 || k2a_pace_any_ready(p));
}

size_t k2a_pool_naccounts(k2a_pool_t *p)
{
    return p->naccounts;
}

int k2a_pool_account_info(k2a_pool_t *p, size_t index, k2a_account_info_t *out)
{
    if (index >= p->naccounts)
        return K2A_ENOTFOUND;
    const k2a_account_t *a = p->accounts[index];
    memset(out, 0, sizeof(*out));
    out->index = a->index;
    snprintf(out->description, sizeof(out->description), "%s", a->cfg.description);
    out->auth = a->cfg.auth;
    out->state = a->state;
    out->refreshing = a->refreshing;
    out->until_ms = a->until;
    snprintf(out->reason, sizeof(out->reason), "%s", a->reason);
    k2a_mask_secret(a->refresh_token, strlen(a->refresh_token), out->refresh_token_tail, sizeof(out->refresh_token_tail));
    out->has_access_token = a->access_token != NULL;
    out->expires_at_ms = a->expires_at;
    out->refreshed_at_ms = a->refreshed_at;
    out->prev_expires_at_ms = a->prev_expires_at;
    out->refreshes = a->refreshes;
    out->refresh_failures = a->refresh_failures;
    out->usage_polls = a->usage_polls;
    out->requests = a->requests;
    out->errors = a->errors;
    out->inflight = a->inflight;
    out->usage_known = a->usage_known;
    out->credits_remaining = a->credits_remaining;
    out->credits_consumed = a->credits_consumed;
    out->next_reset_ms = a->next_reset;
    out->in_tokens = a->in_tokens;
    out->out_tokens = a->out_tokens;
    return 0;
}

void k2a_pool_get_stats(k2a_pool_t *p, k2a_pool_stats_t *out)
{
    *out = p->stats;
    out->save_pending = p->dirty || p->saving;
}
