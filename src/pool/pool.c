/*
 * The account pool's lifecycle: creation from KIRO_AUTH_TOKEN + the state snapshot (accounts matched by
 * key, unmatched records kept as orphans), the accounts' references and timers, SIGHUP reload and
 * shutdown. The state machine is in state.c, leases in lease.c, durable saves in persist.c. Accounts are
 * reference-counted (internal.h) so that a reload never pulls an account from under a running stream.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/errors.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/xloop.h"
#include "pool/acct_state.h"
#include "pool/internal.h"
#include "pool/store_redis.h"

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

/* ---- references ---- */

void k2a_account_ref(k2a_account_t *a)
{
    ++a->refcnt;
}

static void account_free(k2a_account_t *a)
{
    k2a_account_config_dispose(&a->cfg);
    free(a->refresh_token);
    free(a->access_token);
    free(a->profile_arn);
    k2a_account_catalog_free(a);
    k2a_pace_forget(a);
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

/* ---- accounts ---- */

static void make_label(k2a_account_t *a)
{
    if (a->cfg.description[0] != '\0')
        snprintf(a->label, sizeof(a->label), "account %zu (%s)", a->index, a->cfg.description);
    else
        snprintf(a->label, sizeof(a->label), "account %zu", a->index);
}

/* The account key's prefix per kind: the key (and so the state-file record) of Social and IdC accounts is unchanged. */
static const char *key_prefix(k2a_auth_kind_t kind)
{
    switch (kind) {
    case K2A_AUTH_IDC:
        return "IdC:";
    case K2A_AUTH_API_KEY:
        return "ApiKey:";
    case K2A_AUTH_EXTERNAL_IDP:
        return "ExternalIdp:";
    default:
        return "Social:";
    }
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
    k2a_plink_init(&a->pace_link);
    int cr = k2a_account_config_copy(&a->cfg, cfg);
    a->refresh_token = strdup(cfg->refresh_token);
    if (cr != 0 || a->refresh_token == NULL || k2a_pace_account_setup(a) != 0) {
        account_free(a);
        return NULL;
    }
    sha256_hex(key_prefix(cfg->auth), cfg->refresh_token, a->key);
    /* configured, or derived from the configured token or API key (not the rotated one), so it stays stable */
    k2a_account_machine_id(cfg, a->machine_id);
    if (cfg->auth == K2A_AUTH_API_KEY) {
        /* the key is the bearer token: usable at once, never refreshed */
        int64_t now = k2a_pool_now_ms();
        if ((a->access_token = strdup(cfg->refresh_token)) == NULL) {
            account_free(a);
            return NULL;
        }
        a->expires_in_s = K2A_API_KEY_LIFETIME_S;
        a->expires_at = now + (int64_t)K2A_API_KEY_LIFETIME_S * 1000;
        a->refreshed_at = now;
        a->token_gen = 1;
        a->ever_refreshed = true;
    }
    make_label(a);
    a->state = cfg->disabled ? K2A_ACCOUNT_DISABLED : K2A_ACCOUNT_OK;
    return a;
}

/* The account's uv timers; opened once nothing can fail any more, so that a failed create never has handles to close. */
static void open_timers(k2a_account_t *a)
{
    k2a_pool_t *p = a->pool;
    uv_timer_init(p->loop, &a->refresh_timer);
    uv_timer_init(p->loop, &a->usage_timer);
    uv_timer_init(p->loop, &a->wake_timer);
    a->refresh_timer.data = a->usage_timer.data = a->wake_timer.data = a;
    a->timers_open = true;
    a->refcnt += 3;
    p->open_handles += 3;
}

/* Arms an account's timers after creation, a load or a reload. refresh_slot staggers the start-up refreshes (accounts without
 * a valid token), usage_slot the first getUsageLimits polls (every account). */
static void start_account(k2a_account_t *a, size_t refresh_slot, size_t usage_slot)
{
    k2a_pool_t *p = a->pool;
    int64_t now = k2a_pool_now_ms();
    if (a->state == K2A_ACCOUNT_DISABLED || a->state == K2A_ACCOUNT_INVALID)
        return;
    k2a_account_arm_wake(a);
    if (k2a_account_token_valid(a, now))
        k2a_pool_schedule_refresh_ahead(a);
    else if (p->cfg.warmup) {
        k2a_account_schedule_refresh(a, (uint64_t)refresh_slot * p->cfg.warmup_stagger_ms);
        a->warmup = true;
    }
    if (p->cfg.usage_poll_interval_s > 0) {
        /* first polls spread over the pool (at most one every 10 s, at least 0.5 s apart): never a burst of
         * getUsageLimits calls, which is what gets accounts flagged (peers.md §2.7) */
        uint64_t interval = (uint64_t)p->cfg.usage_poll_interval_s * 1000;
        uint64_t spacing = p->naccounts > 0 ? interval / p->naccounts : interval;
        if (spacing > 10000)
            spacing = 10000;
        if (spacing < 500)
            spacing = 500;
        uint64_t first = 2000 + (uint64_t)usage_slot * spacing + k2a_rand_below(500);
        if (a->usage_known)
            first += interval / 2; /* credits known from the state file: no hurry */
        k2a_account_schedule_usage(a, first);
    }
}

/* Takes an account out of the pool (reload, shutdown): it stays alive while leases or jobs hold it. */
static void retire_account(k2a_account_t *a)
{
    a->removed = true;
    k2a_pace_forget(a);
    k2a_sticky_forget_account(a->pool, a); /* its sessions move on their next request */
    k2a_pool_update_eligibility(a);
    close_timers(a);
    k2a_account_unref(a); /* the pool's reference */
}

static int parse_urls(k2a_pool_t *p, char *err, size_t errlen)
{
    int r = k2a_pool_endpoints_init(p, err, errlen);
    if (r != 0)
        return r;
    /* the first region's endpoints, for code that predates per-account regions */
    const k2a_region_urls_t *u = &p->region_urls[0];
    p->generate_url = u->generate;
    p->social_url_parsed = u->social;
    p->idc_url_parsed = u->idc;
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
    free(s->catalog);
}

static void add_orphan(k2a_pool_t *p, const k2a_account_t *a)
{
    if (p->orphans.n >= ORPHANS_MAX)
        return;
    k2a_account_snapshot_t *na = realloc(p->orphans.accounts, (p->orphans.n + 1) * sizeof(*na));
    if (na == NULL)
        return;
    p->orphans.accounts = na;
    k2a_account_snapshot(a, &p->orphans.accounts[p->orphans.n++]);
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
    p->owner = k2a_xloop_current();
    p->cfg = *cfg;
    p->store = store;
    k2a_plink_init(&p->slot_waiters);
    k2a_plink_init(&p->jobs);
    k2a_plink_init(&p->durable_waiters);
    p->auth_token_src = dup_or_empty(cfg->auth_token);
    p->state_file = dup_or_empty(cfg->state_file);
    p->api_base = dup_or_empty(cfg->api_base);
    p->social_url = dup_or_empty(cfg->social_refresh_url);
    p->idc_url = dup_or_empty(cfg->idc_refresh_url);
    p->kiro_version = dup_or_empty(cfg->kiro_version);
    p->agent_mode = dup_or_empty(cfg->agent_mode);
    p->api_fallback_base = dup_or_empty(cfg->api_fallback_base);
    if (p->auth_token_src == NULL || p->state_file == NULL || p->api_base == NULL || p->social_url == NULL || p->idc_url == NULL ||
        p->kiro_version == NULL || p->agent_mode == NULL || p->api_fallback_base == NULL) {
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
    p->cfg.api_fallback_base = p->api_fallback_base;
    if (p->cfg.max_attempts == 0)
        p->cfg.max_attempts = 1;
    if (p->cfg.refresh_ahead_pct < 10 || p->cfg.refresh_ahead_pct > 95)
        p->cfg.refresh_ahead_pct = 80;
    if ((r = parse_urls(p, err, errlen)) != 0)
        goto Fail;
    if ((r = k2a_select_init(p)) != 0 || (r = k2a_sticky_init(p)) != 0)
        goto Fail;
    k2a_plink_init(&p->paced);
    if ((r = k2a_pool_parse_accounts(cfg->auth_token, &list, err, errlen)) != 0)
        goto Fail;
    if (p->store == NULL && p->state_file[0] != '\0' && (p->store = k2a_pool_file_store_create(loop, p->state_file)) == NULL) {
        r = K2A_ENOMEM;
        goto Fail;
    }
    if (cfg->redis_url != NULL && cfg->redis_url[0] != '\0') {
        /* the shared store wraps the file store (it keeps the local snapshot) */
        k2a_redis_store_config_t rc = {.url = cfg->redis_url,
                                       .prefix = cfg->redis_prefix != NULL ? cfg->redis_prefix : "kiro2api:",
                                       .resync_ms = cfg->redis_resync_ms,
                                       /* a refresh lasts at most its timeout: a replica killed holding the lock delays
                                        * the others' refresh by that long at worst */
                                       .lock_ms = (p->cfg.refresh_timeout_ms > 0 ? p->cfg.refresh_timeout_ms : 30000) + 2000};
        k2a_pool_store_t *inner = p->store;
        p->store = NULL;
        if ((r = k2a_pool_redis_store_create(loop, &rc, inner, &p->store, err, errlen)) != 0)
            goto Fail;
    }
    p->cfg.redis_url = NULL; /* not kept: the store has its copy */
    p->cfg.redis_prefix = NULL;
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
            k2a_acct_restored(a, &rec, now);
            free_record(&rec);
            ++restored;
        }
    }
    k2a_account_list_dispose(&list);
    uv_timer_init(loop, &p->save_timer);
    p->save_timer.data = p;
    ++p->open_handles;
    k2a_catalog_start(p);
    k2a_pace_init(p);
    k2a_pace_limits_changed(p);
    /* the loop's clock was cached when the loop started and start-up work may have taken a while since: without this the
     * first start-up refreshes are already due and fire together instead of warmup_stagger_ms apart */
    uv_update_time(loop);
    if (p->store != NULL && p->store->attach != NULL)
        p->store->attach(p->store, p);
    size_t slot = 0;
    for (size_t i = 0; i < p->naccounts; ++i) {
        k2a_account_t *a = p->accounts[i];
        open_timers(a);
        bool valid = k2a_account_token_valid(a, now);
        start_account(a, valid ? 0 : slot, i);
        slot += !valid && a->state != K2A_ACCOUNT_DISABLED;
        k2a_pool_update_eligibility(a);
    }
    k2a_info("pool: %zu account(s), strategy %s, %zu restored from %s", p->naccounts, k2a_pool_strategy_name(p->cfg.strategy),
             restored, p->store != NULL ? p->store->name : "nowhere (no state file)");
    *out = p;
    return 0;

Fail:
    k2a_account_list_dispose(&list);
    for (size_t i = 0; i < p->naccounts; ++i)
        account_free(p->accounts[i]);
    free(p->accounts);
    k2a_pool_snapshot_dispose(&p->orphans);
    if (p->store != NULL)
        p->store->destroy(p->store);
    k2a_select_dispose(p);
    k2a_sticky_dispose(p);
    free(p->auth_token_src);
    free(p->state_file);
    free(p->api_base);
    free(p->social_url);
    free(p->idc_url);
    free(p->kiro_version);
    free(p->agent_mode);
    free(p->generate_url_str);
    k2a_pool_endpoints_dispose(p);
    free(p->api_fallback_base);
    free(p);
    return r;
}

void k2a_account_config_key(const k2a_account_config_t *c, char out[65])
{
    sha256_hex(key_prefix(c->auth), c->refresh_token, out);
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
    r = k2a_pool_reload_list(p, &list);
    k2a_account_list_dispose(&list);
    return r;
}

int k2a_pool_reload_list(k2a_pool_t *p, const k2a_account_list_t *accounts)
{
    const k2a_account_list_t list = *accounts;
    int r = 0;
    if (p->shutting_down)
        return K2A_EINVAL;
    k2a_account_t **next = calloc(list.n > 0 ? list.n : 1, sizeof(*next));
    if (next == NULL)
        return K2A_ENOMEM;
    int64_t now = k2a_pool_now_ms();
    size_t added = 0, kept = 0, removed = 0, slot = 0;
    char key[65];
    for (size_t i = 0; i < list.n; ++i) {
        const k2a_account_config_t *c = &list.entries[i];
        sha256_hex(key_prefix(c->auth), c->refresh_token, key);
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
            /* everything but the key (kind + token) may change: description, client credentials, regions, profileArn */
            k2a_account_config_t nc;
            if (k2a_account_config_copy(&nc, c) == 0) {
                bool arn_changed = (nc.profile_arn == NULL) != (a->cfg.profile_arn == NULL) ||
                                   (nc.profile_arn != NULL && strcmp(nc.profile_arn, a->cfg.profile_arn) != 0);
                k2a_account_config_dispose(&a->cfg);
                a->cfg = nc;
                if (k2a_pace_account_setup(a) != 0) /* "rpm" may have changed */
                    k2a_warn("pool: reload: out of memory, entry %zu keeps its previous pace window", i);
                if (arn_changed && a->lap_state != K2A_LAP_DONE)
                    a->lap_state = K2A_LAP_NOT_TRIED; /* asked again at the next refresh if still needed */
            } else {
                k2a_account_config_dispose(&nc);
                k2a_warn("pool: reload: out of memory, entry %zu keeps its previous settings", i);
            }
            make_label(a);
            k2a_account_machine_id(c, a->machine_id); /* a machineId set or removed by the operator */
            a->cfg.disabled = c->disabled;
            if (c->disabled && a->state != K2A_ACCOUNT_DISABLED) {
                k2a_account_set_state(a, K2A_ACCOUNT_DISABLED, 0, "disabled in the configuration");
            } else if (!c->disabled && (a->state == K2A_ACCOUNT_DISABLED || a->state == K2A_ACCOUNT_INVALID)) {
                /* re-enabled, or invalid and given another chance by the operator's reload */
                a->auth_fail_gen = 0;
                k2a_account_set_state(a, K2A_ACCOUNT_OK, 0, "");
                start_account(a, slot++, i);
            }
        } else {
            if ((a = account_new(p, c, i)) == NULL) {
                k2a_warn("pool: reload: out of memory, entry %zu not added", i);
                r = K2A_ENOMEM;
                continue;
            }
            ++added;
            open_timers(a);
            k2a_account_snapshot_t rec;
            if (take_orphan(p, a->key, &rec)) {
                k2a_acct_restored(a, &rec, now);
                free_record(&rec);
            }
            bool valid = k2a_account_token_valid(a, now);
            start_account(a, valid ? 0 : slot, i);
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
    k2a_pace_limits_changed(p);
    k2a_pool_mark_dirty(p, true);
    k2a_info("pool: reloaded: %zu kept, %zu added, %zu removed", kept, added, removed);
    return r;
}

static void on_save_timer_closed(uv_handle_t *h)
{
    k2a_pool_t *p = h->data;
    --p->open_handles;
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
        k2a_pool_start_save(p);
    uv_close((uv_handle_t *)&p->save_timer, on_save_timer_closed);
    k2a_catalog_stop(p);
    k2a_pace_stop(p);
    if (p->store != NULL && p->store->stop != NULL)
        p->store->stop(p->store);
}

const char *k2a_pool_shared_store_status(k2a_pool_t *p)
{
    return p != NULL && p->store != NULL && p->store->shared_status != NULL ? p->store->shared_status(p->store) : NULL;
}

bool k2a_pool_closed(k2a_pool_t *p)
{
    return p->shutting_down && k2a_plist_empty(&p->jobs) && !p->saving && p->open_handles == 0;
}

void k2a_pool_destroy(k2a_pool_t *p)
{
    if (p == NULL)
        return;
    if (!p->shutting_down)
        k2a_pool_shutdown(p);
    while (!k2a_pool_closed(p)) /* normally already true: the caller ran the loop after the shutdown */
        uv_run(p->loop, UV_RUN_ONCE);
    if (p->store != NULL && p->dirty && !p->saving) {
        k2a_buf_t json = K2A_BUF_INIT(0);
        if (k2a_pool_encode_state(p, &json) == 0)
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
    k2a_sticky_dispose(p);
    free(p->auth_token_src);
    free(p->state_file);
    free(p->api_base);
    free(p->social_url);
    free(p->idc_url);
    free(p->kiro_version);
    free(p->agent_mode);
    free(p->generate_url_str);
    k2a_pool_endpoints_dispose(p);
    free(p->api_fallback_base);
    free(p);
}
