/*
 * The account state machine: ok / cooling (until t) / exhausted (until the reset date) / invalid / disabled,
 * driven by verdicts about upstream answers (health.h), plus the account's timers (end of cooling,
 * refresh-ahead, usage polling). A transition updates the selection lists (select.c) and marks the durable
 * state dirty; only the first failure since the account was last OK extends a backoff, so requests that were
 * in flight when the account started cooling cannot stretch its cooldown.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/errors.h"
#include "core/log.h"
#include "core/rand.h"
#include "pool/acct_state.h"
#include "pool/internal.h"

static int64_t token_margin_ms(const k2a_account_t *a)
{
    /* a token is treated as expired this long before its expiry: 60 s, or 10 % of a short lifetime */
    int64_t life = a->expires_in_s * 1000;
    return life > 0 && life / 10 < 60000 ? life / 10 : 60000;
}

bool k2a_account_token_valid(const k2a_account_t *a, int64_t now)
{
    return a->access_token != NULL && now < a->expires_at - token_margin_ms(a);
}

void k2a_pool_wake_slot_waiter(k2a_pool_t *p)
{
    if (k2a_plist_empty(&p->slot_waiters))
        return;
    k2a_pool_waiter_t *w = K2A_PLINK_OWNER(k2a_pool_waiter_t, link, p->slot_waiters.next);
    k2a_plink_unlink(&w->link);
    w->woken = true;
    k2a_coro_wake(w->co, 0);
}

void k2a_pool_update_eligibility(k2a_account_t *a)
{
    k2a_pool_t *p = a->pool;
    bool want = !a->removed && !p->shutting_down && a->state == K2A_ACCOUNT_OK && !a->paced; /* paced: pool/pace.c */
    if (want && !a->eligible) {
        k2a_select_add(p, a);
        k2a_pool_wake_slot_waiter(p);
    } else if (!want && a->eligible) {
        k2a_select_remove(p, a);
    }
}

static void on_wake_timer(uv_timer_t *t)
{
    k2a_account_t *a = t->data;
    if (a->state != K2A_ACCOUNT_COOLING && a->state != K2A_ACCOUNT_EXHAUSTED)
        return;
    int64_t now = k2a_pool_now_ms();
    if (now + 5 < a->until) { /* the wall clock moved: wait the rest */
        uv_timer_start(&a->wake_timer, on_wake_timer, (uint64_t)(a->until - now), 0);
        return;
    }
    bool was_exhausted = a->state == K2A_ACCOUNT_EXHAUSTED;
    k2a_account_set_state(a, K2A_ACCOUNT_OK, 0, "");
    if (was_exhausted && a->pool->cfg.usage_poll_interval_s > 0)
        k2a_account_schedule_usage(a, 1000 + k2a_rand_below(5000));
}

void k2a_account_arm_wake(k2a_account_t *a)
{
    if (!a->timers_open)
        return;
    if ((a->state == K2A_ACCOUNT_COOLING || a->state == K2A_ACCOUNT_EXHAUSTED) && a->until > 0) {
        int64_t d = a->until - k2a_pool_now_ms();
        uv_timer_start(&a->wake_timer, on_wake_timer, d > 0 ? (uint64_t)d : 0, 0);
    } else {
        uv_timer_stop(&a->wake_timer);
    }
}

static int64_t exhausted_until(const k2a_account_t *a, int64_t now)
{
    return a->next_reset > now ? a->next_reset : k2a_pool_next_month_utc_ms(now);
}

void k2a_account_apply_verdict(k2a_account_t *a, const k2a_verdict_t *v, uint64_t token_gen)
{
    int64_t now = k2a_pool_now_ms();
    char reason[256];
    switch (v->action) {
    case K2A_ACT_OK:
        a->throttle_n = a->transient_n = 0;
        a->auth_fail_gen = 0;
        return;
    case K2A_ACT_CANCELED:
        return;
    case K2A_ACT_CLIENT:
    case K2A_ACT_MODEL:
        k2a_account_note_error(a, K2A_ERRC_CLIENT, v->detail);
        return;
    case K2A_ACT_CAPACITY:
        /* the model is busy, not the account: counted, no cooling */
        k2a_account_note_error(a, K2A_ERRC_THROTTLE, v->detail);
        return;
    case K2A_ACT_FLAGGED:
        /* kiro-protocol-2026 §9: Kiro limits this account "while we investigate"; a fast retry is what gets accounts
         * suspended, so it rests for the whole cooldown, however many requests were in flight */
        k2a_account_note_error(a, K2A_ERRC_THROTTLE, v->detail);
        if (a->state == K2A_ACCOUNT_INVALID || a->state == K2A_ACCOUNT_DISABLED || a->state == K2A_ACCOUNT_EXHAUSTED)
            return;
        if (a->state != K2A_ACCOUNT_COOLING || a->until < now + (int64_t)a->pool->cfg.flagged_cooldown_s * 1000)
            k2a_account_set_state(a, K2A_ACCOUNT_COOLING, now + (int64_t)a->pool->cfg.flagged_cooldown_s * 1000, v->detail);
        return;
    case K2A_ACT_BANNED:
        /* suspended or locked by Kiro: no refresh helps; out until an operator acts (SIGHUP after fixing it) */
        k2a_account_note_error(a, K2A_ERRC_FORBIDDEN, v->detail);
        if (a->state != K2A_ACCOUNT_DISABLED)
            k2a_account_set_state(a, K2A_ACCOUNT_INVALID, 0, v->detail);
        return;
    case K2A_ACT_LOCAL:
        k2a_account_note_error(a, K2A_ERRC_LOCAL, v->detail);
        return;
    case K2A_ACT_AUTH:
    case K2A_ACT_FORBIDDEN:
        k2a_account_note_error(a, v->action == K2A_ACT_AUTH ? K2A_ERRC_AUTH : K2A_ERRC_FORBIDDEN, v->detail);
        if (a->state == K2A_ACCOUNT_INVALID || a->state == K2A_ACCOUNT_DISABLED)
            return;
        if (a->auth_fail_gen != 0 && token_gen > a->auth_fail_gen) {
            /* a token obtained after the first rejection was rejected too: quarantine. With a fresh token the cause is
             * usually the ARN/identity pair (kiro-protocol-2026 §9): say which ARN was sent. */
            const char *arn = k2a_account_generate_arn(a);
            if (arn != NULL)
                snprintf(reason, sizeof(reason), "%s, also after a token refresh (sent profileArn %s: check \"profileArn\")",
                         v->detail, arn);
            else
                snprintf(reason, sizeof(reason), "%s, also after a token refresh", v->detail);
            k2a_account_set_state(a, K2A_ACCOUNT_INVALID, 0, reason);
            return;
        }
        if (a->auth_fail_gen == 0)
            a->auth_fail_gen = token_gen;
        if (k2a_acct_token_dead(a, token_gen)) /* this token is dead: the next use awaits a refresh */
            k2a_account_start_refresh(a);
        return;
    case K2A_ACT_CONFIG: {
        /* an account configuration problem (kiro-protocol-2026 §2): visible, with what was sent and how to fix it */
        k2a_account_note_error(a, K2A_ERRC_FORBIDDEN, v->detail);
        if (a->state == K2A_ACCOUNT_INVALID || a->state == K2A_ACCOUNT_DISABLED)
            return;
        const char *arn = k2a_account_generate_arn(a);
        snprintf(reason, sizeof(reason), "%s; sent profileArn %s: set \"profileArn\" in the account JSON", v->detail,
                 arn != NULL ? arn : "none");
        k2a_account_set_state(a, K2A_ACCOUNT_INVALID, 0, reason);
        return;
    }
    case K2A_ACT_QUOTA:
        k2a_account_note_error(a, K2A_ERRC_QUOTA, v->detail);
        if (a->state == K2A_ACCOUNT_INVALID || a->state == K2A_ACCOUNT_DISABLED)
            return;
        k2a_acct_quota_reached(a, exhausted_until(a, now), v->detail);
        return;
    case K2A_ACT_THROTTLE:
    case K2A_ACT_TRANSIENT:
    case K2A_ACT_INVALID: {
        bool throttle = v->action == K2A_ACT_THROTTLE;
        k2a_account_note_error(a, throttle ? K2A_ERRC_THROTTLE : K2A_ERRC_TRANSIENT, v->detail);
        if (v->action == K2A_ACT_INVALID) {
            if (a->state != K2A_ACCOUNT_DISABLED)
                k2a_account_set_state(a, K2A_ACCOUNT_INVALID, 0, v->detail);
            return;
        }
        /* Only the first failure since the account was last OK backs off further: requests already in flight when it
         * started cooling must not stretch the cooldown. */
        if (a->state != K2A_ACCOUNT_OK)
            return;
        uint64_t d = throttle ? k2a_pool_backoff_ms(K2A_POOL_THROTTLE_BASE_MS, K2A_POOL_THROTTLE_CAP_MS, a->throttle_n++,
                                                    K2A_POOL_BACKOFF_JITTER_PCT, k2a_rand_u64())
                              : k2a_pool_backoff_ms(K2A_POOL_TRANSIENT_BASE_MS, K2A_POOL_TRANSIENT_CAP_MS, a->transient_n++,
                                                    K2A_POOL_BACKOFF_JITTER_PCT, k2a_rand_u64());
        k2a_account_set_state(a, K2A_ACCOUNT_COOLING, now + (int64_t)d, v->detail);
        return;
    }
    }
}

/* ---- timers ---- */

static void on_refresh_timer(uv_timer_t *t)
{
    k2a_account_t *a = t->data;
    if (a->state == K2A_ACCOUNT_INVALID || a->state == K2A_ACCOUNT_DISABLED || a->removed)
        return;
    if (a->warmup) {
        /* start-up refreshes whose timers came due together (the loop started late, or was busy) stay apart */
        k2a_pool_t *p = a->pool;
        uint64_t now = uv_now(p->loop);
        if (now < p->warmup_next) {
            uv_timer_start(&a->refresh_timer, on_refresh_timer, p->warmup_next - now, 0);
            return;
        }
        p->warmup_next = now + p->cfg.warmup_stagger_ms;
        a->warmup = false;
    }
    k2a_account_start_refresh(a);
}

void k2a_account_schedule_refresh(k2a_account_t *a, uint64_t delay_ms)
{
    a->warmup = false;
    if (a->timers_open)
        uv_timer_start(&a->refresh_timer, on_refresh_timer, delay_ms, 0);
}

static void on_usage_timer(uv_timer_t *t)
{
    k2a_account_t *a = t->data;
    k2a_account_start_usage_poll(a);
}

void k2a_account_schedule_usage(k2a_account_t *a, uint64_t delay_ms)
{
    if (a->timers_open && a->pool->cfg.usage_poll_interval_s > 0)
        uv_timer_start(&a->usage_timer, on_usage_timer, delay_ms, 0);
}

/* Refresh-ahead time of the current token (from when it was obtained), as a delay from now. */
static uint64_t refresh_ahead_delay(k2a_account_t *a, int64_t now)
{
    int64_t life = a->expires_in_s * 1000;
    if (life <= 0)
        life = a->expires_at - now;
    int64_t obtained = a->expires_at - life;
    int64_t at = obtained + (int64_t)k2a_pool_refresh_ahead_ms((uint64_t)(life > 0 ? life : 0), a->pool->cfg.refresh_ahead_pct, 5,
                                                               k2a_rand_u64());
    return at > now ? (uint64_t)(at - now) : 0;
}

void k2a_pool_schedule_refresh_ahead(k2a_account_t *a)
{
    if (a->cfg.auth == K2A_AUTH_API_KEY)
        return; /* nothing to refresh */
    /* at least 1 s apart, even when the upstream grants absurdly short lifetimes: never a refresh storm */
    uint64_t d = refresh_ahead_delay(a, k2a_pool_now_ms());
    k2a_account_schedule_refresh(a, d < 1000 ? 1000 : d);
}
