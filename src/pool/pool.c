/*
 * The account pool's lifecycle and state machine: creation from KIRO_AUTH_TOKEN + the state snapshot,
 * per-account timers (refresh-ahead, usage polling, end of cooling), the health transitions driven by
 * verdicts (health.h), leases with in-flight counts and a FIFO queue for concurrency caps, debounced
 * durable saves, SIGHUP reload and shutdown. Accounts are reference-counted (internal.h) so that a
 * reload never pulls an account from under a running stream.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/errors.h"
#include "core/log.h"
#include "core/rand.h"
#include "pool/internal.h"

#define ORPHANS_MAX 1024

int64_t k2a_pool_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *k2a_account_state_name(k2a_account_state_t s)
{
    static const char *const names[] = {"ok", "cooling", "exhausted", "invalid", "disabled"};
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
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

static void sha256_hex(const char *a, const char *b, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c == NULL || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 || EVP_DigestUpdate(c, a, strlen(a)) != 1 ||
        EVP_DigestUpdate(c, b, strlen(b)) != 1 || EVP_DigestFinal_ex(c, md, &mdlen) != 1 || mdlen != 32)
        abort(); /* only out of memory can fail here */
    EVP_MD_CTX_free(c);
    for (int i = 0; i < 32; ++i)
        sprintf(out + 2 * i, "%02x", md[i]);
    out[64] = '\0';
}

static void replace_str(char **slot, const char *v)
{
    char *n = v != NULL ? strdup(v) : NULL;
    free(*slot);
    *slot = n;
}

/* ---- references ---- */

void k2a_account_ref(k2a_account_t *a)
{
    ++a->refcnt;
}

static void account_free(k2a_account_t *a)
{
    free(a->cfg.refresh_token);
    free(a->cfg.client_id);
    free(a->cfg.client_secret);
    free(a->cfg.description);
    free(a->refresh_token);
    free(a->access_token);
    free(a->profile_arn);
    free(a);
}

void k2a_account_unref(k2a_account_t *a)
{
    if (--a->refcnt == 0)
        account_free(a);
}

static void on_timer_closed(uv_handle_t *h)
{
    k2a_account_t *a = h->data;
    --a->pool->open_handles;
    k2a_account_unref(a);
}

static void close_timers(k2a_account_t *a)
{
    if (!a->timers_open)
        return;
    a->timers_open = false;
    uv_close((uv_handle_t *)&a->refresh_timer, on_timer_closed);
    uv_close((uv_handle_t *)&a->usage_timer, on_timer_closed);
    uv_close((uv_handle_t *)&a->wake_timer, on_timer_closed);
}

/* ---- tokens and states ---- */

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

static void wake_slot_waiter(k2a_pool_t *p)
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
    bool want = !a->removed && !p->shutting_down && a->state == K2A_ACCOUNT_OK;
    if (want && !a->eligible) {
        k2a_select_add(p, a);
        wake_slot_waiter(p);
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
    snprintf(a->reason, sizeof(a->reason), "%s", reason);
    if (a->timers_open) {
        if ((st == K2A_ACCOUNT_COOLING || st == K2A_ACCOUNT_EXHAUSTED) && until > 0) {
            int64_t d = until - k2a_pool_now_ms();
            uv_timer_start(&a->wake_timer, on_wake_timer, d > 0 ? (uint64_t)d : 0, 0);
        } else {
            uv_timer_stop(&a->wake_timer);
        }
    }
    k2a_pool_update_eligibility(a);
    if (changed)
        k2a_pool_mark_dirty(p, false);
}

void k2a_account_note_error(k2a_account_t *a, k2a_errclass_t c, const char *detail)
{
    ++a->errors;
    ++a->errors_by_class[c];
    snprintf(a->last_error, sizeof(a->last_error), "%s", detail);
    a->last_error_at = k2a_pool_now_ms();
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
        k2a_account_note_error(a, K2A_ERRC_CLIENT, v->detail);
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
            /* a token obtained after the first rejection was rejected too: quarantine */
            snprintf(reason, sizeof(reason), "%s, also after a token refresh", v->detail);
            k2a_account_set_state(a, K2A_ACCOUNT_INVALID, 0, reason);
            return;
        }
        if (a->auth_fail_gen == 0)
            a->auth_fail_gen = token_gen;
        if (a->token_gen == token_gen && a->access_token != NULL) {
            a->expires_at = now; /* this token is dead: the next use awaits a refresh */
            k2a_account_start_refresh(a);
        }
        return;
    case K2A_ACT_QUOTA:
        k2a_account_note_error(a, K2A_ERRC_QUOTA, v->detail);
        if (a->state == K2A_ACCOUNT_INVALID || a->state == K2A_ACCOUNT_DISABLED)
            return;
        if (a->usage_known)
            a->credits_remaining = 0;
        k2a_account_set_state(a, K2A_ACCOUNT_EXHAUSTED, exhausted_until(a, now), v->detail);
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
    k2a_account_start_refresh(a);
}

void k2a_account_schedule_refresh(k2a_account_t *a, uint64_t delay_ms)
{
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
    k2a_account_schedule_refresh(a, refresh_ahead_delay(a, k2a_pool_now_ms()));
}

/* ---- durable state ---- */

static void start_save(k2a_pool_t *p);
static void on_save_timer(uv_timer_t *t);

static void account_snapshot(const k2a_account_t *a, k2a_account_snapshot_t *s)
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
}

static int encode_state(k2a_pool_t *p, k2a_buf_t *out)
{
    k2a_pool_snapshot_t *o = &p->orphans;
    size_t n = p->naccounts + (o != NULL ? o->n : 0);
    k2a_pool_snapshot_t snap = {calloc(n > 0 ? n : 1, sizeof(k2a_account_snapshot_t)), 0, k2a_pool_now_ms()};
    if (snap.accounts == NULL)
        return K2A_ENOMEM;
    for (size_t i = 0; i < p->naccounts; ++i)
        account_snapshot(p->accounts[i], &snap.accounts[snap.n++]);
    /* records of accounts not configured now (removed by a reload, or only in the file): kept, so that putting an account
     * back does not lose its rotated refresh token */
    for (size_t i = 0; o != NULL && i < o->n; ++i) {
        k2a_account_snapshot_t *d = &snap.accounts[snap.n++];
        *d = o->accounts[i];
        d->refresh_token = strdup(o->accounts[i].refresh_token);
        d->access_token = o->accounts[i].access_token != NULL ? strdup(o->accounts[i].access_token) : NULL;
        d->profile_arn = o->accounts[i].profile_arn != NULL ? strdup(o->accounts[i].profile_arn) : NULL;
        d->reason = o->accounts[i].reason != NULL ? strdup(o->accounts[i].reason) : NULL;
    }
    int r = k2a_pool_snapshot_encode(&snap, out);
    k2a_pool_snapshot_dispose(&snap);
    return r;
}

static void on_saved(void *data, int result)
{
    k2a_pool_t *p = data;
    p->saving = false;
    if (result == 0) {
        ++p->stats.saves;
    } else {
        ++p->stats.save_failures;
        p->dirty = true;
        if (!p->shutting_down) {
            uv_timer_start(&p->save_timer, on_save_timer, 1000, 0); /* retry */
            return;
        }
    }
    if (p->dirty) {
        if (p->save_urgent || p->shutting_down)
            start_save(p);
        else if (!uv_is_active((uv_handle_t *)&p->save_timer) && !uv_is_closing((uv_handle_t *)&p->save_timer))
            uv_timer_start(&p->save_timer, on_save_timer, p->cfg.save_debounce_ms, 0);
    }
}

static void start_save(k2a_pool_t *p)
{
    if (p->store == NULL || p->saving || !p->dirty)
        return;
    k2a_buf_t json = K2A_BUF_INIT(0);
    if (encode_state(p, &json) != 0) {
        k2a_buf_dispose(&json);
        return;
    }
    p->dirty = false;
    p->save_urgent = false;
    p->saving = true;
    if (p->store->save(p->store, &json, on_saved, p) != 0) {
        p->saving = false;
        p->dirty = true;
        ++p->stats.save_failures;
    }
}

static void on_save_timer(uv_timer_t *t)
{
    start_save(t->data);
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
        start_save(p);
    } else if (!uv_is_active((uv_handle_t *)&p->save_timer) && !uv_is_closing((uv_handle_t *)&p->save_timer)) {
        /* coalesce: at most one write per debounce interval, however busy the pool is */
        uv_timer_start(&p->save_timer, on_save_timer, p->cfg.save_debounce_ms, 0);
    }
}

/* ---- accounts ---- */

static void make_label(k2a_account_t *a)
{
    if (a->cfg.description[0] != '\0')
        snprintf(a->label, sizeof(a->label), "account %zu (%s)", a->index, a->cfg.description);
    else
        snprintf(a->label, sizeof(a->label), "account %zu", a->index);
}

static k2a_account_t *account_new(k2a_pool_t *p, const k2a_account_config_t *cfg, size_t index)
{
    k2a_account_t *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->pool = p;
    a->id = ++p->next_id;
    a->index = index;
    a->refcnt = 1; /* the pool's */
    k2a_plink_init(&a->olink);
    k2a_plink_init(&a->blink);
    k2a_plink_init(&a->waiters);
    a->cfg.auth = cfg->auth;
    a->cfg.disabled = cfg->disabled;
    a->cfg.refresh_token = strdup(cfg->refresh_token);
    a->cfg.description = strdup(cfg->description);
    a->cfg.client_id = cfg->client_id != NULL ? strdup(cfg->client_id) : NULL;
    a->cfg.client_secret = cfg->client_secret != NULL ? strdup(cfg->client_secret) : NULL;
    a->refresh_token = strdup(cfg->refresh_token);
    if (a->cfg.refresh_token == NULL || a->cfg.description == NULL || a->refresh_token == NULL ||
        (cfg->client_id != NULL && a->cfg.client_id == NULL) || (cfg->client_secret != NULL && a->cfg.client_secret == NULL)) {
        account_free(a);
        return NULL;
    }
    sha256_hex(cfg->auth == K2A_AUTH_IDC ? "IdC:" : "Social:", cfg->refresh_token, a->key);
    /* kiro.rs: machineId = sha256("KotlinNativeAPI/" + refreshToken); from the configured token, so it stays stable */
    sha256_hex("KotlinNativeAPI/", cfg->refresh_token, a->machine_id);
    make_label(a);
    a->state = cfg->disabled ? K2A_ACCOUNT_DISABLED : K2A_ACCOUNT_OK;
    uv_timer_init(p->loop, &a->refresh_timer);
    uv_timer_init(p->loop, &a->usage_timer);
    uv_timer_init(p->loop, &a->wake_timer);
    a->refresh_timer.data = a->usage_timer.data = a->wake_timer.data = a;
    a->timers_open = true;
    a->refcnt += 3;
    p->open_handles += 3;
    return a;
}

/* Adopts a state-file record. */
static void apply_record(k2a_account_t *a, const k2a_account_snapshot_t *s, int64_t now)
{
    if (strcmp(s->refresh_token, a->refresh_token) != 0) {
        k2a_log_add_secret(s->refresh_token, strlen(s->refresh_token));
        replace_str(&a->refresh_token, s->refresh_token);
    }
    if (s->access_token != NULL && s->expires_at_ms > now) {
        k2a_log_add_secret(s->access_token, strlen(s->access_token));
        replace_str(&a->access_token, s->access_token);
        a->expires_at = s->expires_at_ms;
        a->expires_in_s = s->expires_in_s;
        a->refreshed_at = s->refreshed_at_ms;
        a->token_gen = 1;
        a->ever_refreshed = true;
    }
    if (s->profile_arn != NULL)
        replace_str(&a->profile_arn, s->profile_arn);
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
}

/* Arms an account's timers after creation, a load or a reload. warm_slot staggers the start-up refreshes. */
static void start_account(k2a_account_t *a, size_t warm_slot)
{
    k2a_pool_t *p = a->pool;
    int64_t now = k2a_pool_now_ms();
    if (a->state == K2A_ACCOUNT_DISABLED || a->state == K2A_ACCOUNT_INVALID)
        return;
    if ((a->state == K2A_ACCOUNT_COOLING || a->state == K2A_ACCOUNT_EXHAUSTED) && a->until > 0) {
        int64_t d = a->until - now;
        uv_timer_start(&a->wake_timer, on_wake_timer, d > 0 ? (uint64_t)d : 0, 0);
    }
    if (k2a_account_token_valid(a, now))
        k2a_pool_schedule_refresh_ahead(a);
    else if (p->cfg.warmup)
        k2a_account_schedule_refresh(a, (uint64_t)warm_slot * p->cfg.warmup_stagger_ms);
    if (p->cfg.usage_poll_interval_s > 0) {
        /* first poll staggered across the pool: never a burst of getUsageLimits calls */
        uint64_t interval = (uint64_t)p->cfg.usage_poll_interval_s * 1000;
        uint64_t spacing = p->naccounts > 0 ? interval / p->naccounts : interval;
        if (spacing > 10000)
            spacing = 10000;
        if (spacing < 500)
            spacing = 500;
        uint64_t first = 2000 + (uint64_t)warm_slot * spacing + k2a_rand_below(500);
        if (a->usage_known && a->usage_at == 0)
            first += interval / 2; /* credits known from the state file: no hurry */
        k2a_account_schedule_usage(a, first);
    }
}

/* Takes an account out of the pool (reload, shutdown): it stays alive while leases or jobs hold it. */
static void retire_account(k2a_account_t *a)
{
    a->removed = true;
    k2a_pool_update_eligibility(a);
    close_timers(a);
    k2a_account_unref(a); /* the pool's reference */
}

static int parse_urls(k2a_pool_t *p, char *err, size_t errlen)
{
    size_t n = strlen(p->api_base);
    while (n > 0 && p->api_base[n - 1] == '/')
        p->api_base[--n] = '\0';
    if ((p->generate_url_str = malloc(n + 64)) == NULL)
        return K2A_ENOMEM;
    snprintf(p->generate_url_str, n + 64, "%s/generateAssistantResponse", p->api_base);
    if (k2a_url_parse(p->generate_url_str, strlen(p->generate_url_str), &p->generate_url) != 0) {
        snprintf(err, errlen, "KIRO_API_BASE: not an http(s) URL");
        return K2A_ECONFIG;
    }
    if (k2a_url_parse(p->social_url, strlen(p->social_url), &p->social_url_parsed) != 0) {
        snprintf(err, errlen, "KIRO_SOCIAL_REFRESH_URL: not an http(s) URL");
        return K2A_ECONFIG;
    }
    if (k2a_url_parse(p->idc_url, strlen(p->idc_url), &p->idc_url_parsed) != 0) {
        snprintf(err, errlen, "KIRO_IDC_REFRESH_URL: not an http(s) URL");
        return K2A_ECONFIG;
    }
    return 0;
}

static char *dup_or_empty(const char *s)
{
    return strdup(s != NULL ? s : "");
}

/* Moves the record with this key out of the orphans into *out (caller disposes). Returns true when found. */
static bool take_orphan(k2a_pool_t *p, const char *key, k2a_account_snapshot_t *out)
{
    for (size_t i = 0; i < p->orphans.n; ++i) {
        if (strcmp(p->orphans.accounts[i].key, key) == 0) {
            *out = p->orphans.accounts[i];
            p->orphans.accounts[i] = p->orphans.accounts[--p->orphans.n];
            return true;
        }
    }
    return false;
}

static void free_record(k2a_account_snapshot_t *s)
{
    free(s->refresh_token);
    free(s->access_token);
    free(s->profile_arn);
    free(s->reason);
}

static void add_orphan(k2a_pool_t *p, const k2a_account_t *a)
{
    if (p->orphans.n >= ORPHANS_MAX)
        return;
    k2a_account_snapshot_t *na = realloc(p->orphans.accounts, (p->orphans.n + 1) * sizeof(*na));
    if (na == NULL)
        return;
    p->orphans.accounts = na;
    account_snapshot(a, &p->orphans.accounts[p->orphans.n++]);
}

int k2a_pool_create(uv_loop_t *loop, k2a_upstream_t *up, const k2a_pool_config_t *cfg, k2a_pool_store_t *store, k2a_pool_t **out,
                    char *err, size_t errlen)
{
    k2a_account_list_t list = {NULL, 0};
    int r;
    *out = NULL;
    k2a_pool_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        if (store != NULL)
            store->destroy(store);
        return K2A_ENOMEM;
    }
    p->loop = loop;
    p->up = up;
    p->cfg = *cfg;
    p->store = store;
    k2a_plink_init(&p->slot_waiters);
    k2a_plink_init(&p->jobs);
    p->auth_token_src = dup_or_empty(cfg->auth_token);
    p->state_file = dup_or_empty(cfg->state_file);
    p->api_base = dup_or_empty(cfg->api_base);
    p->social_url = dup_or_empty(cfg->social_refresh_url);
    p->idc_url = dup_or_empty(cfg->idc_refresh_url);
    p->kiro_version = dup_or_empty(cfg->kiro_version);
    p->agent_mode = dup_or_empty(cfg->agent_mode);
    if (p->auth_token_src == NULL || p->state_file == NULL || p->api_base == NULL || p->social_url == NULL || p->idc_url == NULL ||
        p->kiro_version == NULL || p->agent_mode == NULL) {
        r = K2A_ENOMEM;
        goto Fail;
    }
    p->cfg.auth_token = p->auth_token_src;
    p->cfg.state_file = p->state_file;
    p->cfg.api_base = p->api_base;
    p->cfg.social_refresh_url = p->social_url;
    p->cfg.idc_refresh_url = p->idc_url;
    p->cfg.kiro_version = p->kiro_version;
    p->cfg.agent_mode = p->agent_mode;
    if (p->cfg.max_attempts == 0)
        p->cfg.max_attempts = 1;
    if (p->cfg.refresh_ahead_pct < 10 || p->cfg.refresh_ahead_pct > 95)
        p->cfg.refresh_ahead_pct = 80;
    if ((r = parse_urls(p, err, errlen)) != 0)
        goto Fail;
    if ((r = k2a_select_init(p)) != 0)
        goto Fail;
    if ((r = k2a_pool_parse_accounts(cfg->auth_token, &list, err, errlen)) != 0)
        goto Fail;
    if (p->store == NULL && p->state_file[0] != '\0' && (p->store = k2a_pool_file_store_create(loop, p->state_file)) == NULL) {
        r = K2A_ENOMEM;
        goto Fail;
    }
    if (p->store != NULL) {
        char why[512] = "";
        r = p->store->load(p->store, &p->orphans, why, sizeof(why));
        if (r == K2A_ECONFIG) {
            k2a_warn("%s; starting from the configured tokens", why);
        } else if (r != 0 && r != K2A_ENOTFOUND) {
            snprintf(err, errlen, "%s", why[0] ? why : "KIRO_STATE_FILE: cannot load the state");
            goto Fail;
        }
        r = 0;
    }
    if ((p->accounts = calloc(list.n, sizeof(*p->accounts))) == NULL) {
        r = K2A_ENOMEM;
        goto Fail;
    }
    int64_t now = k2a_pool_now_ms();
    size_t restored = 0;
    for (size_t i = 0; i < list.n; ++i) {
        k2a_account_t *a = account_new(p, &list.entries[i], i);
        if (a == NULL) {
            r = K2A_ENOMEM;
            goto Fail;
        }
        p->accounts[p->naccounts++] = a;
        k2a_account_snapshot_t rec;
        if (take_orphan(p, a->key, &rec)) {
            apply_record(a, &rec, now);
            free_record(&rec);
            ++restored;
        }
    }
    k2a_account_list_dispose(&list);
    uv_timer_init(loop, &p->save_timer);
    p->save_timer.data = p;
    ++p->open_handles;
    size_t slot = 0;
    for (size_t i = 0; i < p->naccounts; ++i) {
        k2a_account_t *a = p->accounts[i];
        bool valid = k2a_account_token_valid(a, now);
        start_account(a, valid ? 0 : slot);
        slot += !valid && a->state != K2A_ACCOUNT_DISABLED;
        k2a_pool_update_eligibility(a);
    }
    k2a_info("pool: %zu account(s), strategy %s, %zu restored from %s", p->naccounts, k2a_pool_strategy_name(p->cfg.strategy),
             restored, p->store != NULL ? p->store->name : "nowhere (no state file)");
    *out = p;
    return 0;

Fail:
    k2a_account_list_dispose(&list);
    for (size_t i = 0; i < p->naccounts; ++i) {
        k2a_account_t *a = p->accounts[i];
        a->timers_open = false; /* never started: close synchronously below */
        uv_close((uv_handle_t *)&a->refresh_timer, NULL);
        uv_close((uv_handle_t *)&a->usage_timer, NULL);
        uv_close((uv_handle_t *)&a->wake_timer, NULL);
    }
    if (p->naccounts > 0)
        uv_run(loop, UV_RUN_NOWAIT); /* runs the close callbacks (NULL) so the memory can go */
    for (size_t i = 0; i < p->naccounts; ++i)
        account_free(p->accounts[i]);
    free(p->accounts);
    k2a_pool_snapshot_dispose(&p->orphans);
    if (p->store != NULL)
        p->store->destroy(p->store);
    k2a_select_dispose(p);
    free(p->auth_token_src);
    free(p->state_file);
    free(p->api_base);
    free(p->social_url);
    free(p->idc_url);
    free(p->kiro_version);
    free(p->agent_mode);
    free(p->generate_url_str);
    free(p);
    return r;
}

int k2a_pool_reload(k2a_pool_t *p, const char *text_or_path, char *err, size_t errlen)
{
    k2a_account_list_t list;
    int r;
    if (p->shutting_down) {
        snprintf(err, errlen, "pool: shutting down");
        return K2A_EINVAL;
    }
    if ((r = k2a_pool_parse_accounts(text_or_path, &list, err, errlen)) != 0)
        return r;
    k2a_account_t **next = calloc(list.n, sizeof(*next));
    if (next == NULL) {
        k2a_account_list_dispose(&list);
        return K2A_ENOMEM;
    }
    int64_t now = k2a_pool_now_ms();
    size_t added = 0, kept = 0, removed = 0, slot = 0;
    char key[65];
    for (size_t i = 0; i < list.n; ++i) {
        const k2a_account_config_t *c = &list.entries[i];
        sha256_hex(c->auth == K2A_AUTH_IDC ? "IdC:" : "Social:", c->refresh_token, key);
        k2a_account_t *a = NULL;
        for (size_t j = 0; j < p->naccounts; ++j) {
            if (p->accounts[j] != NULL && strcmp(p->accounts[j]->key, key) == 0) {
                a = p->accounts[j];
                p->accounts[j] = NULL;
                break;
            }
        }
        if (a != NULL) {
            ++kept;
            a->index = i;
            replace_str(&a->cfg.description, c->description);
            replace_str(&a->cfg.client_id, c->client_id);
            replace_str(&a->cfg.client_secret, c->client_secret);
            if (a->cfg.description == NULL)
                a->cfg.description = strdup("");
            make_label(a);
            a->cfg.disabled = c->disabled;
            if (c->disabled && a->state != K2A_ACCOUNT_DISABLED) {
                k2a_account_set_state(a, K2A_ACCOUNT_DISABLED, 0, "disabled in the configuration");
            } else if (!c->disabled && (a->state == K2A_ACCOUNT_DISABLED || a->state == K2A_ACCOUNT_INVALID)) {
                /* re-enabled, or invalid and given another chance by the operator's reload */
                a->auth_fail_gen = 0;
                k2a_account_set_state(a, K2A_ACCOUNT_OK, 0, "");
                start_account(a, slot++);
            }
        } else {
            if ((a = account_new(p, c, i)) == NULL) {
                k2a_warn("pool: reload: out of memory, entry %zu not added", i);
                r = K2A_ENOMEM;
                continue;
            }
            ++added;
            k2a_account_snapshot_t rec;
            if (take_orphan(p, a->key, &rec)) {
                apply_record(a, &rec, now);
                free_record(&rec);
            }
            bool valid = k2a_account_token_valid(a, now);
            start_account(a, valid ? 0 : slot);
            slot += !valid;
            k2a_pool_update_eligibility(a);
        }
        next[i] = a;
    }
    for (size_t j = 0; j < p->naccounts; ++j) {
        k2a_account_t *a = p->accounts[j];
        if (a == NULL)
            continue;
        ++removed;
        add_orphan(p, a);
        k2a_info("pool: %s removed by reload%s", a->label, a->inflight ? " (finishing its in-flight requests)" : "");
        retire_account(a);
    }
    size_t n = 0;
    for (size_t i = 0; i < list.n; ++i)
        if (next[i] != NULL)
            next[n++] = next[i];
    /* the configuration order may have changed: re-link the selection lists in the new order, keeping the cursors */
    k2a_account_t *seq = p->seq_cursor, *rr = p->rr_cursor;
    for (size_t i = 0; i < n; ++i)
        k2a_select_remove(p, next[i]);
    for (size_t i = 0; i < n; ++i)
        k2a_pool_update_eligibility(next[i]);
    if (seq != NULL && seq->eligible)
        p->seq_cursor = seq;
    if (rr != NULL && rr->eligible)
        p->rr_cursor = rr;
    free(p->accounts);
    p->accounts = next;
    p->naccounts = n;
    k2a_account_list_dispose(&list);
    k2a_pool_mark_dirty(p, true);
    k2a_info("pool: reloaded: %zu kept, %zu added, %zu removed", kept, added, removed);
    return r;
}

void k2a_pool_shutdown(k2a_pool_t *p)
{
    if (p->shutting_down)
        return;
    p->shutting_down = true;
    k2a_pool_cancel_jobs(p);
    for (size_t i = 0; i < p->naccounts; ++i) {
        k2a_pool_update_eligibility(p->accounts[i]);
        close_timers(p->accounts[i]);
    }
    while (!k2a_plist_empty(&p->slot_waiters)) {
        k2a_pool_waiter_t *w = K2A_PLINK_OWNER(k2a_pool_waiter_t, link, p->slot_waiters.next);
        k2a_plink_unlink(&w->link);
        w->woken = true;
        k2a_coro_wake(w->co, K2A_ECANCELED);
    }
    uv_timer_stop(&p->save_timer);
    if (p->dirty && !p->saving)
        start_save(p);
    uv_close((uv_handle_t *)&p->save_timer, NULL);
}

void k2a_pool_destroy(k2a_pool_t *p)
{
    if (p == NULL)
        return;
    if (!p->shutting_down) {
        k2a_pool_shutdown(p);
        uv_run(p->loop, UV_RUN_DEFAULT);
    }
    if (p->store != NULL && p->dirty && !p->saving) {
        k2a_buf_t json = K2A_BUF_INIT(0);
        if (encode_state(p, &json) == 0)
            p->store->save_sync(p->store, &json);
        k2a_buf_dispose(&json);
    }
    for (size_t i = 0; i < p->naccounts; ++i)
        k2a_account_unref(p->accounts[i]);
    free(p->accounts);
    k2a_pool_snapshot_dispose(&p->orphans);
    if (p->store != NULL)
        p->store->destroy(p->store);
    k2a_select_dispose(p);
    free(p->auth_token_src);
    free(p->state_file);
    free(p->api_base);
    free(p->social_url);
    free(p->idc_url);
    free(p->kiro_version);
    free(p->agent_mode);
    free(p->generate_url_str);
    free(p);
}

/* ---- leases ---- */

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

/* Parks until a concurrency slot frees up or the queue timeout passes. */
static int wait_slot(k2a_pool_t *p)
{
    k2a_pool_waiter_t w = {.co = k2a_coro_current()};
    slot_timer_t *st = malloc(sizeof(*st));
    if (st == NULL)
        return K2A_ENOMEM;
    st->w = &w;
    uv_timer_init(p->loop, &st->timer);
    st->timer.data = st;
    uv_timer_start(&st->timer, on_slot_timeout, p->cfg.queue_timeout_ms, 0);
    k2a_plink_insert_before(&p->slot_waiters, &w.link);
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

static int fill_lease(k2a_lease_t *l, k2a_account_t *a)
{
    free(l->access_token);
    free(l->profile_arn);
    l->access_token = strdup(a->access_token);
    l->profile_arn = a->profile_arn != NULL ? strdup(a->profile_arn) : NULL;
    l->token_gen = a->token_gen;
    if (l->access_token == NULL || (a->profile_arn != NULL && l->profile_arn == NULL))
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
    unsigned cap = p->cfg.account_max_concurrency;
    if (a->eligible && (cap == 0 || a->inflight < cap))
        wake_slot_waiter(p);
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
    for (;;) {
        if (p->shutting_down)
            return K2A_ENO_ACCOUNT;
        k2a_coro_t *self = k2a_coro_current();
        if (self != NULL && k2a_coro_canceled(self))
            return K2A_ECANCELED;
        bool at_cap;
        k2a_account_t *a = k2a_select_pick(p, exclude, &at_cap);
        if (a == NULL) {
            if (at_cap && self != NULL) {
                int r = wait_slot(p);
                if (r == K2A_ETIMEDOUT)
                    return K2A_EBUSY;
                if (r != 0)
                    return r;
                continue;
            }
            if (retry_after_ms != NULL)
                *retry_after_ms = soonest_recovery(p, k2a_pool_now_ms());
            return at_cap ? K2A_EBUSY : K2A_ENO_ACCOUNT;
        }
        take(a);
        if (!k2a_account_token_valid(a, k2a_pool_now_ms())) {
            bool waited = false;
            int r = self != NULL ? k2a_account_await_token(a, 0, &waited) : K2A_EINVAL;
            if (waited)
                ++p->stats.refresh_waits;
            if (r != 0) {
                if (r != K2A_ECANCELED && on_skip != NULL) {
                    k2a_lease_t tmp = {
                        .account = a, .index = a->index, .label = a->label, .description = a->cfg.description, .auth = a->cfg.auth};
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
        lease->label = a->label;
        lease->description = a->cfg.description;
        lease->auth = a->cfg.auth;
        memcpy(lease->machine_id, a->machine_id, sizeof(lease->machine_id));
        lease->acquired_at = uv_now(p->loop);
        if (fill_lease(lease, a) != 0) {
            k2a_pool_release(lease);
            return K2A_ENOMEM;
        }
        a->last_used = k2a_pool_now_ms();
        ++p->stats.acquires;
        return 0;
    }
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
    return p != NULL && !p->shutting_down && p->nready > 0;
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
