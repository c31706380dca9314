/*
 * Per-account pacing (see pace.h): the rolling window of attempts, and the pool side: accounts at their pace are out
 * of the selection structures until their next slot, which one pool timer (armed at the soonest slot) restores.
 * Everything here runs on the pool's loop; times are monotonic milliseconds (uv_hrtime, not the loop's cached clock,
 * so that a slot never opens early by the length of a loop iteration).
 */
#include <stdlib.h>
#include <string.h>
#include "core/errors.h"
#include "core/log.h"
#include "pool/internal.h"
#include "pool/pace.h"

/* ---- the window ---- */

int k2a_pace_window_resize(k2a_pace_window_t *w, unsigned rpm)
{
    if (rpm == w->cap)
        return 0;
    uint64_t *at = NULL;
    if (rpm != 0 && (at = malloc(rpm * sizeof(*at))) == NULL)
        return K2A_ENOMEM;
    uint32_t keep = w->n < rpm ? w->n : rpm, skip = w->n - keep;
    for (uint32_t i = 0; i < keep; ++i)
        at[i] = w->at[(w->head + skip + i) % w->cap];
    free(w->at);
    w->at = at;
    w->cap = rpm;
    w->head = 0;
    w->n = keep;
    return 0;
}

void k2a_pace_window_dispose(k2a_pace_window_t *w)
{
    free(w->at);
    memset(w, 0, sizeof(*w));
}

void k2a_pace_window_expire(k2a_pace_window_t *w, uint64_t now, uint64_t window_ms)
{
    while (w->n != 0 && w->at[w->head] + window_ms <= now) {
        w->head = (w->head + 1) % w->cap;
        --w->n;
    }
}

unsigned k2a_pace_window_count(k2a_pace_window_t *w, uint64_t now, uint64_t window_ms)
{
    k2a_pace_window_expire(w, now, window_ms);
    return w->n;
}

bool k2a_pace_window_full(k2a_pace_window_t *w, uint64_t now, uint64_t window_ms)
{
    return w->cap != 0 && k2a_pace_window_count(w, now, window_ms) >= w->cap;
}

void k2a_pace_window_note(k2a_pace_window_t *w, uint64_t now)
{
    if (w->cap == 0)
        return;
    if (w->n == w->cap) { /* forget the oldest */
        w->head = (w->head + 1) % w->cap;
        --w->n;
    }
    w->at[(w->head + w->n) % w->cap] = now;
    ++w->n;
}

uint64_t k2a_pace_window_next_slot(k2a_pace_window_t *w, uint64_t now, uint64_t window_ms)
{
    if (!k2a_pace_window_full(w, now, window_ms))
        return now;
    return w->at[w->head] + window_ms;
}

/* ---- the pool side ---- */

#define ACCOUNT_OF_PLINK(l) K2A_PLINK_OWNER(k2a_account_t, pace_link, l)

static uint64_t mono_ms(void)
{
    return uv_hrtime() / 1000000;
}

static uint64_t window_ms(const k2a_pool_t *p)
{
    return (uint64_t)p->cfg.pace_window_s * 1000;
}

unsigned k2a_account_rpm(const k2a_account_t *a)
{
    return a->cfg.has_rpm ? a->cfg.rpm : a->pool->cfg.account_rpm;
}

unsigned k2a_account_max_concurrency(const k2a_account_t *a)
{
    return a->cfg.has_max_concurrency ? a->cfg.max_concurrency : a->pool->cfg.account_max_concurrency;
}

int k2a_pace_account_setup(k2a_account_t *a)
{
    int r = k2a_pace_window_resize(&a->pace, k2a_account_rpm(a));
    if (a->paced && !k2a_pace_window_full(&a->pace, mono_ms(), window_ms(a->pool))) {
        k2a_plink_unlink(&a->pace_link);
        a->paced = false;
        k2a_pool_update_eligibility(a);
    }
    return r;
}

static void on_timer(uv_timer_t *t);

/* Makes the pool timer fire at slot unless it is already due sooner. */
static void arm(k2a_pool_t *p, uint64_t slot)
{
    if (!p->pace_timer_open || (p->pace_due != 0 && p->pace_due <= slot))
        return;
    uint64_t now = mono_ms();
    p->pace_due = slot;
    uv_timer_start(&p->pace_timer, on_timer, slot > now ? slot - now : 0, 0);
}

/* The pool timer: every paced account whose slot opened returns to the selection (waking a queued request); the timer
 * is armed again for the soonest remaining slot. Walks the paced accounts only. */
static void on_timer(uv_timer_t *t)
{
    k2a_pool_t *p = t->data;
    uint64_t now = mono_ms(), W = window_ms(p), soonest = 0;
    p->pace_due = 0;
    k2a_plink_t *l = p->paced.next;
    while (l != &p->paced) {
        k2a_account_t *a = ACCOUNT_OF_PLINK(l);
        l = l->next;
        uint64_t slot = k2a_pace_window_next_slot(&a->pace, now, W);
        if (slot <= now) {
            k2a_plink_unlink(&a->pace_link);
            a->paced = false;
            k2a_pool_update_eligibility(a); /* back in the selection: wakes the first queued request */
        } else if (soonest == 0 || slot < soonest) {
            soonest = slot;
        }
    }
    if (soonest != 0)
        arm(p, soonest);
}

void k2a_pace_attempt(k2a_account_t *a)
{
    k2a_pool_t *p = a->pool;
    if (a->pace.cap == 0)
        return;
    uint64_t now = mono_ms(), W = window_ms(p);
    k2a_pace_window_expire(&a->pace, now, W);
    k2a_pace_window_note(&a->pace, now);
    if (!a->paced && k2a_pace_window_full(&a->pace, now, W)) {
        a->paced = true;
        k2a_plink_insert_before(&p->paced, &a->pace_link);
        k2a_pool_update_eligibility(a); /* out of the selection until its next slot */
        arm(p, k2a_pace_window_next_slot(&a->pace, now, W));
        K2A_LOG(K2A_LOG_DEBUG, NULL, "pool: %s is at its pace (%u attempts in %u s): out of the selection for %llu ms", a->label,
                a->pace.cap, p->cfg.pace_window_s, (unsigned long long)(k2a_pace_window_next_slot(&a->pace, now, W) - now));
    }
}

bool k2a_pace_paced(const k2a_account_t *a)
{
    return a->paced;
}

unsigned k2a_pace_attempts(k2a_account_t *a)
{
    return k2a_pace_window_count(&a->pace, mono_ms(), window_ms(a->pool));
}

uint64_t k2a_pace_soonest(k2a_pool_t *p, const k2a_pool_exclude_t *ex)
{
    uint64_t now = mono_ms(), W = window_ms(p), soonest = 0;
    for (k2a_plink_t *l = p->paced.next; l != &p->paced; l = l->next) {
        k2a_account_t *a = ACCOUNT_OF_PLINK(l);
        if (a->removed || a->state != K2A_ACCOUNT_OK)
            continue;
        bool skip = false;
        for (size_t i = 0; ex != NULL && i < ex->n && !skip; ++i)
            skip = ex->ids[i] == a->id;
        if (skip || (ex != NULL && ex->model != NULL && !k2a_account_may_serve(a, ex->model)))
            continue;
        uint64_t slot = k2a_pace_window_next_slot(&a->pace, now, W);
        if (slot <= now)
            slot = now + 1;
        if (soonest == 0 || slot < soonest)
            soonest = slot;
    }
    return soonest == 0 ? 0 : soonest - now;
}

bool k2a_pace_any_ready(k2a_pool_t *p)
{
    for (k2a_plink_t *l = p->paced.next; l != &p->paced; l = l->next) {
        const k2a_account_t *a = ACCOUNT_OF_PLINK(l);
        if (!a->removed && a->state == K2A_ACCOUNT_OK && a->ever_refreshed)
            return true;
    }
    return false;
}

void k2a_pace_forget(k2a_account_t *a)
{
    if (a->paced) {
        k2a_plink_unlink(&a->pace_link);
        a->paced = false;
    }
    k2a_pace_window_dispose(&a->pace);
}

void k2a_pace_limits_changed(k2a_pool_t *p)
{
    p->caps_vary = false;
    for (size_t i = 0; i < p->naccounts && !p->caps_vary; ++i)
        p->caps_vary = p->accounts[i]->cfg.has_max_concurrency;
}

static void on_timer_closed(uv_handle_t *h)
{
    k2a_pool_t *p = h->data;
    --p->open_handles;
}

void k2a_pace_init(k2a_pool_t *p)
{
    uv_timer_init(p->loop, &p->pace_timer);
    p->pace_timer.data = p;
    p->pace_timer_open = true;
    p->pace_due = 0;
    ++p->open_handles;
}

void k2a_pace_stop(k2a_pool_t *p)
{
    if (!p->pace_timer_open)
        return;
    p->pace_timer_open = false;
    uv_timer_stop(&p->pace_timer);
    uv_close((uv_handle_t *)&p->pace_timer, on_timer_closed);
}
