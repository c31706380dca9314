/*
 * The account-state transitions (acct_state.h): the only code that writes an account's credential, health, usage and
 * catalog fields. Each one keeps the pool's bookkeeping and tells the store what changed; the durable snapshot (file) is
 * marked dirty here as it was by the callers before: a rotated refresh token at once, a state change within
 * save_debounce_ms, counters lazily.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/errors.h"
#include "core/log.h"
#include "pool/acct_state.h"
#include "pool/catalog.h"
#include "pool/internal.h"
#include "pool/store_redis.h"

void k2a_acct_notify(k2a_account_t *a, unsigned what)
{
    k2a_pool_t *p = a->pool;
    if (p->store != NULL && p->store->changed != NULL && !p->store_quiet)
        p->store->changed(p->store, a, what);
}

static void replace_str(char **slot, const char *v)
{
    char *n = v != NULL ? strdup(v) : NULL;
    free(*slot);
    *slot = n;
}

static void became_ready(k2a_account_t *a)
{
    if (!a->ever_refreshed) {
        a->ever_refreshed = true;
        if (a->eligible)
            ++a->pool->nready;
    }
}

int k2a_acct_token_adopted(k2a_account_t *a, const k2a_acct_token_t *t, bool *rotated)
{
    *rotated = false;
    char *na = strdup(t->access_token);
    if (na == NULL)
        return K2A_ENOMEM;
    int64_t now = k2a_pool_now_ms();
    if (a->cfg.auth != K2A_AUTH_API_KEY) {
        k2a_log_add_secret(t->access_token, strlen(t->access_token));
        if (a->access_token != NULL)
            k2a_log_remove_secret(a->access_token, strlen(a->access_token));
    }
    free(a->access_token);
    a->access_token = na;
    a->prev_expires_at = a->expires_at;
    a->expires_in_s = t->expires_in_s;
    a->expires_at = now + t->expires_in_s * 1000;
    a->refreshed_at = now;
    ++a->token_gen;
    unsigned what = K2A_ACCT_CHG_TOKEN;
    if (t->profile_arn != NULL && (a->profile_arn == NULL || strcmp(a->profile_arn, t->profile_arn) != 0)) {
        replace_str(&a->profile_arn, t->profile_arn);
        a->arn_source = K2A_ARN_SRC_REFRESH;
        what |= K2A_ACCT_CHG_PROFILE;
    }
    if (t->refresh_token != NULL && strcmp(t->refresh_token, a->refresh_token) != 0) {
        char *nr = strdup(t->refresh_token);
        if (nr != NULL) {
            k2a_log_add_secret(t->refresh_token, strlen(t->refresh_token));
            free(a->refresh_token);
            a->refresh_token = nr;
            ++a->rt_version;
            *rotated = true;
            what |= K2A_ACCT_CHG_ROTATED;
        }
    }
    became_ready(a);
    /* losing a rotated refresh token loses the account: written at once */
    if (*rotated && a->pool->store != NULL)
        ++a->pool->rotation_seq;
    if (a->cfg.auth != K2A_AUTH_API_KEY)
        k2a_pool_mark_dirty(a->pool, *rotated);
    k2a_acct_notify(a, what);
    return 0;
}

bool k2a_acct_token_dead(k2a_account_t *a, uint64_t token_gen)
{
    if (a->token_gen != token_gen || a->access_token == NULL)
        return false;
    a->expires_at = k2a_pool_now_ms(); /* the next use awaits a refresh */
    return true;
}

void k2a_account_set_state(k2a_account_t *a, k2a_account_state_t st, int64_t until, const char *reason)
{
    k2a_pool_t *p = a->pool;
    bool changed = a->state != st || a->until != until;
    if (a->state != st) {
        if (st == K2A_ACCOUNT_OK)
            k2a_info("pool: %s is usable again (was %s)", a->label, k2a_account_state_name(a->state));
        else
            k2a_warn("pool: %s -> %s%s%s", a->label, k2a_account_state_name(st), reason[0] ? ": " : "", reason);
    }
    a->state = st;
    a->until = until;
    if (changed)
        a->state_at = k2a_pool_now_ms();
    snprintf(a->reason, sizeof(a->reason), "%s", reason);
    k2a_account_arm_wake(a);
    k2a_pool_update_eligibility(a);
    if (changed) {
        k2a_pool_mark_dirty(p, false);
        k2a_acct_notify(a, K2A_ACCT_CHG_STATE);
    }
}

void k2a_account_note_error(k2a_account_t *a, k2a_errclass_t c, const char *detail)
{
    ++a->errors;
    ++a->errors_by_class[c];
    snprintf(a->last_error, sizeof(a->last_error), "%s", detail);
    a->last_error_at = k2a_pool_now_ms();
}

void k2a_acct_quota_reached(k2a_account_t *a, int64_t until, const char *reason)
{
    if (a->usage_known) {
        a->credits_remaining = 0;
        k2a_acct_notify(a, K2A_ACCT_CHG_USAGE);
    }
    k2a_account_set_state(a, K2A_ACCOUNT_EXHAUSTED, until, reason);
}

void k2a_acct_request_counted(k2a_account_t *a)
{
    ++a->requests;
}

void k2a_acct_used(k2a_account_t *a, int64_t now)
{
    a->last_used = now;
}

void k2a_acct_usage_added(k2a_account_t *a, double credits, int64_t in_tokens, int64_t out_tokens, bool ok, double latency_s)
{
    if (credits > 0 && credits < 1e9) {
        a->credits_consumed += credits;
        if (a->usage_known)
            a->credits_remaining = a->credits_remaining > credits ? a->credits_remaining - credits : 0;
    }
    if (in_tokens > 0)
        a->in_tokens += in_tokens;
    if (out_tokens > 0)
        a->out_tokens += out_tokens;
    if (ok) {
        a->latency_sum += latency_s;
        ++a->latency_count;
    }
    k2a_pool_mark_dirty_lazy(a->pool);
    k2a_acct_notify(a, K2A_ACCT_CHG_COUNTERS);
}

void k2a_acct_usage_polled(k2a_account_t *a, const k2a_usage_t *u)
{
    int64_t now = k2a_pool_now_ms();
    a->usage_at = now;
    if (u->next_reset_ms > 0)
        a->next_reset = u->next_reset_ms;
    if (u->email[0] != '\0')
        snprintf(a->email, sizeof(a->email), "%s", u->email);
    if (u->subscription[0] != '\0')
        snprintf(a->subscription, sizeof(a->subscription), "%s", u->subscription);
    if (!u->has_credit) {
        k2a_debug("pool: %s: getUsageLimits has no CREDIT breakdown", a->label);
        return;
    }
    a->usage_known = true;
    a->credits_remaining = u->remaining;
    a->credits_limit = u->limit;
    a->credits_used = u->used;
    if (u->remaining <= 0 && a->state == K2A_ACCOUNT_OK) {
        int64_t until = a->next_reset > now ? a->next_reset : k2a_pool_next_month_utc_ms(now);
        k2a_account_set_state(a, K2A_ACCOUNT_EXHAUSTED, until, "no credits left (getUsageLimits)");
    } else if (u->remaining > 0 && a->state == K2A_ACCOUNT_EXHAUSTED) {
        k2a_account_set_state(a, K2A_ACCOUNT_OK, 0, "");
    }
    k2a_pool_mark_dirty(a->pool, false);
    k2a_acct_notify(a, K2A_ACCT_CHG_USAGE);
}

void k2a_acct_catalog_set(k2a_account_t *a, k2a_catalog_t *c)
{
    k2a_account_catalog_free(a); /* also forgets the INVALID_MODEL_ID marks: the catalog is the fresh truth */
    a->catalog = c;
    k2a_pool_mark_dirty(a->pool, false);
    k2a_acct_notify(a, K2A_ACCT_CHG_CATALOG);
}

int k2a_acct_profile_set(k2a_account_t *a, const char *arn, uint8_t source)
{
    char *n = strdup(arn);
    if (n == NULL)
        return K2A_ENOMEM;
    free(a->profile_arn);
    a->profile_arn = n;
    a->arn_source = source;
    k2a_pool_mark_dirty(a->pool, false);
    k2a_acct_notify(a, K2A_ACCT_CHG_PROFILE);
    return 0;
}

static bool parse_state(const char *s, k2a_account_state_t *out)
{
    for (int i = 0; i <= K2A_ACCOUNT_DISABLED; ++i) {
        if (strcmp(s, k2a_account_state_name(i)) == 0) {
            *out = i;
            return true;
        }
    }
    return false;
}

void k2a_acct_restored(k2a_account_t *a, const k2a_account_snapshot_t *s, int64_t now)
{
    if (strcmp(s->refresh_token, a->refresh_token) != 0) {
        k2a_log_add_secret(s->refresh_token, strlen(s->refresh_token));
        replace_str(&a->refresh_token, s->refresh_token);
    }
    if (s->rt_version > a->rt_version)
        a->rt_version = s->rt_version;
    if (s->access_token != NULL && s->expires_at_ms > now) {
        k2a_log_add_secret(s->access_token, strlen(s->access_token));
        replace_str(&a->access_token, s->access_token);
        a->expires_at = s->expires_at_ms;
        a->expires_in_s = s->expires_in_s;
        a->refreshed_at = s->refreshed_at_ms;
        a->token_gen = 1;
        a->ever_refreshed = true;
    }
    if (s->profile_arn != NULL && k2a_arn_parse(s->profile_arn, NULL) == 0) {
        replace_str(&a->profile_arn, s->profile_arn);
        a->arn_source = K2A_ARN_SRC_STATE;
    }
    if (a->cfg.auth == K2A_AUTH_API_KEY) {
        /* the configured key is the token, whatever the file says */
        replace_str(&a->refresh_token, a->cfg.refresh_token);
        replace_str(&a->access_token, a->cfg.refresh_token);
        a->expires_in_s = K2A_API_KEY_LIFETIME_S;
        a->expires_at = now + (int64_t)K2A_API_KEY_LIFETIME_S * 1000;
    } else if (a->access_token != NULL && k2a_account_wants_profiles(a, now)) {
        /* an account that still has to learn its ARN starts with a refresh, which asks ListAvailableProfiles */
        k2a_log_remove_secret(a->access_token, strlen(a->access_token));
        free(a->access_token);
        a->access_token = NULL;
        a->expires_at = 0;
        a->token_gen = 0;
        a->ever_refreshed = false;
    }
    k2a_account_state_t st;
    if (a->state == K2A_ACCOUNT_OK && parse_state(s->state, &st) && (st == K2A_ACCOUNT_COOLING || st == K2A_ACCOUNT_EXHAUSTED) &&
        s->until_ms > now) {
        a->state = st;
        a->until = s->until_ms;
        snprintf(a->reason, sizeof(a->reason), "%s", s->reason != NULL ? s->reason : "");
    }
    a->usage_known = s->usage_known;
    a->credits_remaining = s->credits_remaining;
    a->credits_limit = s->credits_limit;
    a->credits_consumed = s->credits_consumed;
    a->next_reset = s->next_reset_ms;
    a->requests = s->requests;
    a->errors = s->errors;
    a->in_tokens = s->in_tokens;
    a->out_tokens = s->out_tokens;
    a->last_used = s->last_used_ms;
    /* what the state file counted is not this run's to add to a shared store's totals */
    a->store_req = a->requests;
    a->store_err = a->errors;
    a->store_in = a->in_tokens;
    a->store_out = a->out_tokens;
    a->store_cc = a->credits_consumed;
    k2a_account_catalog_restore(a, s->catalog);
}

void k2a_acct_shared_dispose(k2a_acct_shared_t *r)
{
    free(r->refresh_token);
    free(r->access_token);
    free(r->profile_arn);
    free(r->reason);
    memset(r, 0, sizeof(*r));
}

void k2a_acct_shared_applied(k2a_account_t *a, const k2a_acct_shared_t *r, unsigned take)
{
    k2a_pool_t *p = a->pool;
    if (a->cfg.auth == K2A_AUTH_API_KEY || a->removed)
        return;
    bool quiet = p->store_quiet;
    p->store_quiet = true;
    if ((take & K2A_REDIS_TAKE_RT) && r->refresh_token != NULL && r->refresh_token[0] != '\0') {
        if (strcmp(r->refresh_token, a->refresh_token) != 0) {
            k2a_log_add_secret(r->refresh_token, strlen(r->refresh_token));
            replace_str(&a->refresh_token, r->refresh_token);
            /* kept on disk as well: the state file then holds the newest token even if the shared store goes away */
            if (p->store != NULL)
                ++p->rotation_seq;
            k2a_pool_mark_dirty(p, true);
        }
        a->rt_version = r->rt_version;
    }
    if ((take & K2A_REDIS_TAKE_AT) && r->access_token != NULL && r->access_token[0] != '\0') {
        char *na = strdup(r->access_token);
        if (na != NULL) {
            k2a_log_add_secret(na, strlen(na));
            if (a->access_token != NULL)
                k2a_log_remove_secret(a->access_token, strlen(a->access_token));
            free(a->access_token);
            a->access_token = na;
            a->prev_expires_at = a->expires_at;
            a->expires_at = r->expires_at_ms;
            a->expires_in_s = r->expires_in_s;
            a->refreshed_at = r->refreshed_at_ms;
            ++a->token_gen;
            a->auth_fail_gen = 0;
            became_ready(a);
            if (r->profile_arn != NULL && r->profile_arn[0] != '\0' && k2a_arn_parse(r->profile_arn, NULL) == 0 &&
                (a->profile_arn == NULL || strcmp(a->profile_arn, r->profile_arn) != 0)) {
                replace_str(&a->profile_arn, r->profile_arn);
                a->arn_source = K2A_ARN_SRC_REFRESH;
            }
            if (!a->refreshing)
                k2a_pool_schedule_refresh_ahead(a);
            k2a_pool_mark_dirty(p, false);
        }
    }
    if ((take & K2A_REDIS_TAKE_STATE) && r->has_state && a->state != K2A_ACCOUNT_DISABLED && r->state != K2A_ACCOUNT_DISABLED) {
        int64_t now = k2a_pool_now_ms();
        k2a_account_state_t st = (k2a_account_state_t)r->state;
        int64_t until = r->until_ms;
        if ((st == K2A_ACCOUNT_COOLING || st == K2A_ACCOUNT_EXHAUSTED) && until <= now) {
            st = K2A_ACCOUNT_OK;
            until = 0;
        }
        if (st != a->state || until != a->until)
            k2a_account_set_state(a, st, until, r->reason != NULL ? r->reason : "");
        a->state_at = r->state_at_ms;
    }
    p->store_quiet = quiet;
}
