/*
 * Durable state of the pool: a snapshot of every account (current refresh token, access token, state,
 * counters) plus the records of the state file that match no configured account, handed to the store
 * (store.h). Writes are coalesced: a rotated refresh token is written at once (losing it loses the account),
 * a state change within save_debounce_ms, counters within K2A_POOL_LAZY_SAVE_MS; at most one write is in
 * flight and the blocking part runs on libuv's thread pool, never on the loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/errors.h"
#include "core/log.h"
#include "core/rand.h"
#include "pool/internal.h"

static void on_save_timer(uv_timer_t *t);

void k2a_account_snapshot(const k2a_account_t *a, k2a_account_snapshot_t *s)
{
    memset(s, 0, sizeof(*s));
    memcpy(s->key, a->key, 65);
    s->refresh_token = strdup(a->refresh_token);
    s->access_token = a->access_token != NULL ? strdup(a->access_token) : NULL;
    s->profile_arn = a->profile_arn != NULL ? strdup(a->profile_arn) : NULL;
    s->expires_at_ms = a->access_token != NULL ? a->expires_at : 0;
    s->expires_in_s = a->expires_in_s;
    s->refreshed_at_ms = a->refreshed_at;
    /* invalid is not persisted: a restart is the operator's way to retry an account */
    k2a_account_state_t st = a->state == K2A_ACCOUNT_INVALID ? K2A_ACCOUNT_OK : a->state;
    snprintf(s->state, sizeof(s->state), "%s", k2a_account_state_name(st));
    s->until_ms = st == K2A_ACCOUNT_COOLING || st == K2A_ACCOUNT_EXHAUSTED ? a->until : 0;
    s->reason = a->reason[0] != '\0' && s->until_ms != 0 ? strdup(a->reason) : NULL;
    s->usage_known = a->usage_known;
    s->credits_remaining = a->credits_remaining;
    s->credits_limit = a->credits_limit;
    s->credits_consumed = a->credits_consumed;
    s->next_reset_ms = a->next_reset;
    s->requests = a->requests;
    s->errors = a->errors;
    s->in_tokens = a->in_tokens;
    s->out_tokens = a->out_tokens;
    s->last_used_ms = a->last_used;
    s->rt_version = a->rt_version;
    s->catalog = k2a_account_catalog_encode(a);
}

int k2a_pool_encode_state(k2a_pool_t *p, k2a_buf_t *out)
{
    k2a_pool_snapshot_t *o = &p->orphans;
    size_t n = p->naccounts + (o != NULL ? o->n : 0);
    k2a_pool_snapshot_t snap = {calloc(n > 0 ? n : 1, sizeof(k2a_account_snapshot_t)), 0, k2a_pool_now_ms()};
    if (snap.accounts == NULL)
        return K2A_ENOMEM;
    for (size_t i = 0; i < p->naccounts; ++i)
        k2a_account_snapshot(p->accounts[i], &snap.accounts[snap.n++]);
    /* records of accounts not configured now (removed by a reload, or only in the file): kept, so that putting an account
     * back does not lose its rotated refresh token */
    for (size_t i = 0; o != NULL && i < o->n; ++i) {
        k2a_account_snapshot_t *d = &snap.accounts[snap.n++];
        *d = o->accounts[i];
        d->refresh_token = strdup(o->accounts[i].refresh_token);
        d->access_token = o->accounts[i].access_token != NULL ? strdup(o->accounts[i].access_token) : NULL;
        d->profile_arn = o->accounts[i].profile_arn != NULL ? strdup(o->accounts[i].profile_arn) : NULL;
        d->reason = o->accounts[i].reason != NULL ? strdup(o->accounts[i].reason) : NULL;
        d->catalog = o->accounts[i].catalog != NULL ? strdup(o->accounts[i].catalog) : NULL;
    }
    int r = k2a_pool_snapshot_encode(&snap, out);
    k2a_pool_snapshot_dispose(&snap);
    return r;
}

static void on_saved(void *data, int result)
{
    k2a_pool_t *p = data;
    p->saving = false;
    if (result == 0)
        p->rotation_durable_seq = p->rotation_saving_seq;
    /* refresh jobs waiting for a rotation to be durable look again (a failed write defers them: see refresh.c) */
    while (!k2a_plist_empty(&p->durable_waiters)) {
        k2a_pool_waiter_t *w = K2A_PLINK_OWNER(k2a_pool_waiter_t, link, p->durable_waiters.next);
        k2a_plink_unlink(&w->link);
        w->woken = true;
        k2a_coro_wake(w->co, result);
    }
    if (result == 0) {
        ++p->stats.saves;
        if (p->save_fail_n != 0)
            k2a_info("pool: the state file is written again");
        p->save_fail_n = 0;
    } else {
        ++p->stats.save_failures;
        p->dirty = true;
        if (!p->shutting_down) {
            /* retry with backoff; refreshes wait meanwhile when a rotated refresh token is in the unwritten state */
            uint64_t delay = p->save_fail_n < 4 ? 1000u << p->save_fail_n : 10000u;
            ++p->save_fail_n;
            k2a_warn("pool: cannot write the state file (%s); retrying in %llu ms%s", k2a_strerror(result),
                     (unsigned long long)delay,
                     p->rotation_durable_seq != p->rotation_seq ? ", refreshes wait until a rotated refresh token is written" : "");
            uv_timer_start(&p->save_timer, on_save_timer, delay, 0);
            return;
        }
    }
    if (p->dirty) {
        if (p->save_urgent || p->shutting_down)
            k2a_pool_start_save(p);
        else if (!uv_is_active((uv_handle_t *)&p->save_timer) && !uv_is_closing((uv_handle_t *)&p->save_timer))
            uv_timer_start(&p->save_timer, on_save_timer, p->cfg.save_debounce_ms, 0);
    }
}

void k2a_pool_start_save(k2a_pool_t *p)
{
    if (p->store == NULL || p->saving || !p->dirty)
        return;
    k2a_buf_t json = K2A_BUF_INIT(0);
    if (k2a_pool_encode_state(p, &json) != 0) {
        k2a_buf_dispose(&json);
        return;
    }
    p->dirty = false;
    p->save_urgent = false;
    p->saving = true;
    p->rotation_saving_seq = p->rotation_seq; /* the snapshot holds every rotation so far */
    if (p->store->save(p->store, &json, on_saved, p) != 0) {
        p->saving = false;
        p->dirty = true;
        ++p->stats.save_failures;
    }
}

static void on_save_timer(uv_timer_t *t)
{
    k2a_pool_start_save(t->data);
}

void k2a_pool_mark_dirty_lazy(k2a_pool_t *p)
{
    if (p->store == NULL)
        return;
    p->dirty = true;
    if (!p->saving && !uv_is_active((uv_handle_t *)&p->save_timer) && !uv_is_closing((uv_handle_t *)&p->save_timer))
        uv_timer_start(&p->save_timer, on_save_timer, K2A_POOL_LAZY_SAVE_MS, 0);
}

void k2a_pool_mark_dirty(k2a_pool_t *p, bool urgent)
{
    if (p->store == NULL)
        return;
    p->dirty = true;
    if (urgent)
        p->save_urgent = true;
    if (p->saving)
        return; /* on_saved starts the next save */
    if (urgent || p->shutting_down) {
        uv_timer_stop(&p->save_timer);
        k2a_pool_start_save(p);
    } else if (!uv_is_closing((uv_handle_t *)&p->save_timer) &&
               (!uv_is_active((uv_handle_t *)&p->save_timer) || uv_timer_get_due_in(&p->save_timer) > p->cfg.save_debounce_ms)) {
        /* coalesce: at most one write per debounce interval, however busy the pool is (a pending lazy write is brought
         * forward, an earlier pending write is kept) */
        uv_timer_start(&p->save_timer, on_save_timer, p->cfg.save_debounce_ms, 0);
    }
}
