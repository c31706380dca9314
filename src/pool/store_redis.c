/*
 * The shared store on Redis (store_redis.h): hiredis async contexts on the pool's libuv loop (one for commands, one
 * subscribed to the events channel), reconnected with backoff; the transitions' writes (Lua compare-and-set where a
 * stale writer could overwrite newer data), the other replicas' announcements and a periodic resync applied to the
 * in-memory accounts, the cross-replica refresh lock, and the windowed counters. The request path never waits on it:
 * writes are fire-and-forget (what a lost connection leaves unwritten is marked pending per account and written again
 * on reconnect, newest version winning), reads happen in the background or in the refresh job.
 */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/errors.h"
#include "core/log.h"
#include "core/rand.h"
#include "pool/acct_state.h"
#include "pool/internal.h"
#include "pool/store_redis.h"
#include "convert/responses_store.h"
#include "pool/store_redis_internal.h"
#include "pool/store_redis_keys.h"
/* the adapter is a header of static functions */
#include <hiredis/adapters/libuv.h>

#define CONNECT_GRACE_MS 3000 /* a refresh right after start-up waits this long for the first connection */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
/* a connect not finished by then is abandoned and tried again (hiredis 0.14's libuv adapter ignores a poll error, so a
 * refused connect would otherwise never report) */
#define CONNECT_TIMEOUT_MS 1000
#define COUNTERS_FLUSH_MS 1000           /* counters (requests, tokens, credits) are added up and written once a second */
#define HASH_FIELD_MAX (4 * 1024 * 1024) /* a catalog is the largest field */

static const char SCRIPT_TOKEN[] =
    "local k=KEYS[1] local r=0 "
    "local cur=tonumber(redis.call('HGET',k,'rtv') or '-1') "
    "if ARGV[2]~='' and tonumber(ARGV[1])>cur then redis.call('HSET',k,'rt',ARGV[2],'rtv',ARGV[1]) r=1 end "
    "local ce=tonumber(redis.call('HGET',k,'atexp') or '0') "
    "if ARGV[3]~='' and tonumber(ARGV[4])>ce then "
    "redis.call('HSET',k,'at',ARGV[3],'atexp',ARGV[4],'atin',ARGV[5],'atref',ARGV[6]) r=r+2 end "
    "if ARGV[7]~='' then redis.call('HSET',k,'arn',ARGV[7]) end "
    "return r";
static const char SCRIPT_STATE[] = "local k=KEYS[1] "
                                   "local c=tonumber(redis.call('HGET',k,'stts') or '0') "
                                   "if tonumber(ARGV[4])>=c then "
                                   "redis.call('HSET',k,'st',ARGV[1],'until',ARGV[2],'reason',ARGV[3],'stts',ARGV[4]) return 1 end "
                                   "return 0";
static const char SCRIPT_UNLOCK[] = "if redis.call('GET',KEYS[1])==ARGV[1] then return redis.call('DEL',KEYS[1]) end return 0";

static void connect_all(k2a_redis_store_t *s);
static void flush_pending(k2a_redis_store_t *s);
static void resync_all(k2a_redis_store_t *s);

/* ---- connection ---- */

static void became_down(k2a_redis_store_t *s)
{
    if (s->up)
        k2a_warn("pool: shared store unavailable (redis %s:%d): serving from memory, writes are queued", s->url.host, s->url.port);
    s->up = false;
}

static void on_reconnect_timer(uv_timer_t *t)
{
    connect_all(t->data);
}

static void schedule_reconnect(k2a_redis_store_t *s)
{
    if (s->stopping || !s->timers_open || s->cmd != NULL || s->sub != NULL || uv_is_active((uv_handle_t *)&s->reconnect_timer))
        return;
    uint64_t d = s->fail_n < 6 ? (uint64_t)BACKOFF_MIN_MS << s->fail_n : BACKOFF_MAX_MS;
    if (d > BACKOFF_MAX_MS)
        d = BACKOFF_MAX_MS;
    ++s->fail_n;
    k2a_debug("pool: redis: reconnecting in %llu ms", (unsigned long long)d);
    uv_timer_start(&s->reconnect_timer, on_reconnect_timer, d, 0);
}

/* Closes a context: gracefully (what is queued is sent first) at shutdown, at once after a loss. */
static void drop_ctx(redisAsyncContext **slot, bool *up, bool graceful)
{
    redisAsyncContext *c = *slot;
    if (c == NULL)
        return;
    if (graceful && *up) {
        redisAsyncDisconnect(c); /* its disconnect callback clears the slot */
    } else {
        *slot = NULL;
        *up = false;
        redisAsyncFree(c); /* pending callbacks run with no reply (writes are marked pending again) */
    }
}

static void drop_other(k2a_redis_store_t *s)
{
    /* one connection lost: the pair is rebuilt (the subscriber alone could not say what it missed) */
    drop_ctx(&s->cmd, &s->cmd_up, false);
    drop_ctx(&s->sub, &s->sub_up, false);
}

static void check_up(k2a_redis_store_t *s)
{
    if (!s->cmd_up || !s->sub_up || s->up)
        return;
    uv_timer_stop(&s->connect_timer);
    s->up = true;
    s->fail_n = 0;
    if (s->ever_up)
        k2a_info("pool: shared store available again: replaying queued writes");
    else
        k2a_info("pool: shared store redis %s:%d db %d connected (prefix \"%s\")", s->url.host, s->url.port, s->url.db, s->prefix);
    s->ever_up = true;
    k2a_redis_keys_up(s);
    flush_pending(s);
    resync_all(s);
}

static void on_connect(const redisAsyncContext *c, int status)
{
    k2a_redis_store_t *s = c->data;
    if (status == REDIS_OK)
        return; /* usable once its PING answers (after AUTH and SELECT): on_setup_reply */
    /* hiredis frees the context after this callback */
    k2a_debug("pool: redis connect failed: %s", c->errstr);
    if (c == s->cmd) {
        s->cmd = NULL;
        s->cmd_up = false;
    } else {
        s->sub = NULL;
        s->sub_up = false;
    }
    became_down(s);
    drop_other(s);
    schedule_reconnect(s);
}

static void on_disconnect(const redisAsyncContext *c, int status)
{
    k2a_redis_store_t *s = c->data;
    if (c == s->cmd) {
        s->cmd = NULL;
        s->cmd_up = false;
    } else if (c == s->sub) {
        s->sub = NULL;
        s->sub_up = false;
    }
    if (s->stopping)
        return;
    if (status != REDIS_OK)
        k2a_debug("pool: redis connection lost: %s", c->errstr);
    became_down(s);
    drop_other(s);
    schedule_reconnect(s);
}

static void on_event(redisAsyncContext *c, void *reply, void *data);

static void on_setup_reply(redisAsyncContext *c, void *reply, void *data)
{
    redisReply *r = reply;
    k2a_redis_store_t *s = c->data;
    if (r == NULL)
        return;
    if (r->type != REDIS_REPLY_ERROR) {
        if (data != NULL) { /* the PING: this connection is ready */
            if (c == s->cmd)
                s->cmd_up = true;
            else if (c == s->sub)
                s->sub_up = true;
            check_up(s);
        }
        return;
    }
    if (!s->auth_failed)
        k2a_error("pool: redis refused the connection's set-up (check the password and db of KIRO_REDIS_URL): %.*s",
                  (int)(r->len < 200 ? r->len : 200), r->str);
    s->auth_failed = true;
    /* not usable: treated as down, tried again with backoff */
    became_down(s);
    drop_other(s);
    schedule_reconnect(s);
}

static redisAsyncContext *open_ctx(k2a_redis_store_t *s)
{
    redisAsyncContext *c = redisAsyncConnect(s->url.host, s->url.port);
    if (c == NULL)
        return NULL;
    if (c->err != 0) {
        k2a_debug("pool: redis connect: %s", c->errstr);
        redisAsyncFree(c);
        return NULL;
    }
    c->data = s;
    if (redisLibuvAttach(c, s->loop) != REDIS_OK) {
        redisAsyncFree(c);
        return NULL;
    }
    redisAsyncSetConnectCallback(c, on_connect);
    redisAsyncSetDisconnectCallback(c, on_disconnect);
    if (s->url.password[0] != '\0')
        redisAsyncCommand(c, on_setup_reply, NULL, "AUTH %s", s->url.password);
    if (s->url.db != 0)
        redisAsyncCommand(c, on_setup_reply, NULL, "SELECT %d", s->url.db);
    /* hiredis 0.14 learns that the connect finished (or failed) from the first write event: something must be queued */
    redisAsyncCommand(c, on_setup_reply, s, "PING"); /* NOAUTH here: a password is needed */
    return c;
}

static void on_connect_timer(uv_timer_t *t)
{
    k2a_redis_store_t *s = t->data;
    if (s->up || s->stopping)
        return;
    k2a_debug("pool: redis: no connection within %d ms", CONNECT_TIMEOUT_MS);
    if (!s->ever_up && !s->warned_initial) {
        s->warned_initial = true;
        k2a_warn("pool: shared store unavailable (cannot connect to redis %s:%d): serving from memory, retrying", s->url.host,
                 s->url.port);
    }
    drop_other(s);
    schedule_reconnect(s);
}

static void connect_all(k2a_redis_store_t *s)
{
    if (s->stopping || s->cmd != NULL || s->sub != NULL)
        return;
    uv_timer_start(&s->connect_timer, on_connect_timer, CONNECT_TIMEOUT_MS, 0);
    s->cmd = open_ctx(s);
    s->sub = s->cmd != NULL ? open_ctx(s) : NULL;
    if (s->cmd == NULL || s->sub == NULL) {
        if (s->cmd != NULL)
            redisAsyncFree(s->cmd);
        s->cmd = NULL;
        s->sub = NULL;
        schedule_reconnect(s);
        return;
    }
    redisAsyncCommand(s->sub, on_event, NULL, "SUBSCRIBE %sevents", s->prefix);
}

/* ---- replies into records ---- */

static int64_t str_i64(const redisReply *r)
{
    char buf[32];
    size_t n = r->len < sizeof(buf) - 1 ? r->len : sizeof(buf) - 1;
    memcpy(buf, r->str, n);
    buf[n] = '\0';
    return strtoll(buf, NULL, 10);
}

static char *str_dup(const redisReply *r)
{
    return r->len <= HASH_FIELD_MAX ? strndup(r->str, r->len) : NULL;
}

static bool field_is(const redisReply *k, const char *name)
{
    size_t n = strlen(name);
    return k->type == REDIS_REPLY_STRING && k->len == n && memcmp(k->str, name, n) == 0;
}

/* HGETALL reply -> record. Returns false when the hash is empty. */
static bool parse_record(const redisReply *r, k2a_acct_shared_t *out)
{
    memset(out, 0, sizeof(*out));
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 2)
        return false;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (v->type != REDIS_REPLY_STRING)
            continue;
        if (field_is(k, "rt")) {
            free(out->refresh_token);
            out->refresh_token = str_dup(v);
        } else if (field_is(k, "rtv")) {
            int64_t x = str_i64(v);
            out->rt_version = x > 0 ? (uint64_t)x : 0;
        } else if (field_is(k, "at")) {
            free(out->access_token);
            out->access_token = str_dup(v);
        } else if (field_is(k, "atexp")) {
            out->expires_at_ms = str_i64(v);
        } else if (field_is(k, "atin")) {
            out->expires_in_s = str_i64(v);
        } else if (field_is(k, "atref")) {
            out->refreshed_at_ms = str_i64(v);
        } else if (field_is(k, "arn")) {
            free(out->profile_arn);
            out->profile_arn = str_dup(v);
        } else if (field_is(k, "st")) {
            for (int st = 0; st <= K2A_ACCOUNT_DISABLED; ++st) {
                const char *name = k2a_account_state_name(st);
                if (v->len == strlen(name) && memcmp(v->str, name, v->len) == 0) {
                    out->state = st;
                    out->has_state = true;
                }
            }
        } else if (field_is(k, "until")) {
            out->until_ms = str_i64(v);
        } else if (field_is(k, "stts")) {
            out->state_at_ms = str_i64(v);
        } else if (field_is(k, "reason")) {
            free(out->reason);
            out->reason = strndup(v->str, v->len < 255 ? v->len : 255);
        }
    }
    return true;
}

static void apply_record(k2a_redis_store_t *s, k2a_account_t *a, const k2a_acct_shared_t *rec)
{
    int64_t now = k2a_pool_now_ms();
    /* our own token, perhaps refused since (k2a_acct_token_dead): never taken back */
    bool same_at = rec->access_token != NULL && a->access_token != NULL && strcmp(rec->access_token, a->access_token) == 0;
    unsigned take = k2a_redis_merge(a->rt_version, rec->refresh_token != NULL ? rec->rt_version : 0,
                                    a->access_token != NULL ? a->expires_at : 0, rec->expires_at_ms, a->state_at,
                                    rec->has_state ? rec->state_at_ms : 0, now);
    if (same_at)
        take &= ~(unsigned)K2A_REDIS_TAKE_AT;
    /* "invalid" has no end: a restart is how an operator retries an account (as with the state file), so an invalid
     * verdict given before this replica started is not taken over */
    if (rec->has_state && rec->state == K2A_ACCOUNT_INVALID && rec->state_at_ms < s->started_ms)
        take &= ~(unsigned)K2A_REDIS_TAKE_STATE;
    if (take != 0)
        k2a_acct_shared_applied(a, rec, take);
}

static k2a_account_t *find_account(k2a_redis_store_t *s, const char *key, size_t len)
{
    k2a_pool_t *p = s->pool;
    if (p == NULL || len != 64)
        return NULL;
    for (size_t i = 0; i < p->naccounts; ++i)
        if (memcmp(p->accounts[i]->key, key, 64) == 0)
            return p->accounts[i];
    return NULL;
}

/* ---- fire-and-forget commands ---- */

typedef struct st_write_ctx_t {
    k2a_account_t *a; /* holds a reference */
    unsigned what;
} write_ctx_t;

static void on_write_reply(redisAsyncContext *c, void *reply, void *data)
{
    write_ctx_t *w = data;
    redisReply *r = reply;
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        w->a->store_pending |= w->what; /* written again on reconnect */
        if (r != NULL)
            k2a_warn("pool: redis write failed: %.*s", (int)(r->len < 200 ? r->len : 200), r->str);
    }
    k2a_account_unref(w->a);
    free(w);
}

static write_ctx_t *wctx(k2a_account_t *a, unsigned what)
{
    write_ctx_t *w = malloc(sizeof(*w));
    if (w != NULL) {
        w->a = a;
        w->what = what;
        k2a_account_ref(a);
    }
    return w;
}

static void send_write(k2a_redis_store_t *s, k2a_account_t *a, unsigned what, int argc, const char **argv, const size_t *lens)
{
    write_ctx_t *w = wctx(a, what);
    if (w == NULL || redisAsyncCommandArgv(s->cmd, on_write_reply, w, argc, argv, lens) != REDIS_OK) {
        a->store_pending |= what;
        if (w != NULL) {
            k2a_account_unref(a);
            free(w);
        }
    }
}

static void write_account(k2a_redis_store_t *s, k2a_account_t *a, unsigned what)
{
    if (!s->up || s->cmd == NULL) {
        a->store_pending |= what;
        return;
    }
    char key[PREFIX_MAX + 80];
    snprintf(key, sizeof(key), "%sacct:%s", s->prefix, a->key);
    if (what & (K2A_ACCT_CHG_TOKEN | K2A_ACCT_CHG_ROTATED | K2A_ACCT_CHG_PROFILE)) {
        char rtv[24], exp[24], in[24], ref[24];
        snprintf(rtv, sizeof(rtv), "%llu", (unsigned long long)a->rt_version);
        snprintf(exp, sizeof(exp), "%lld", (long long)(a->access_token != NULL ? a->expires_at : 0));
        snprintf(in, sizeof(in), "%lld", (long long)a->expires_in_s);
        snprintf(ref, sizeof(ref), "%lld", (long long)a->refreshed_at);
        const char *at = a->access_token != NULL && a->cfg.auth != K2A_AUTH_API_KEY ? a->access_token : "";
        const char *arn = a->profile_arn != NULL ? a->profile_arn : "";
        const char *rt = a->cfg.auth != K2A_AUTH_API_KEY ? a->refresh_token : "";
        const char *argv[] = {"EVAL", SCRIPT_TOKEN, "1", key, rtv, rt, at, exp, in, ref, arn};
        size_t lens[11];
        for (int i = 0; i < 11; ++i)
            lens[i] = strlen(argv[i]);
        send_write(s, a, what & (K2A_ACCT_CHG_TOKEN | K2A_ACCT_CHG_ROTATED | K2A_ACCT_CHG_PROFILE), 11, argv, lens);
    }
    if (what & K2A_ACCT_CHG_STATE) {
        char until[24], stts[24];
        /* disabled is this replica's configuration, not the account's health */
        k2a_account_state_t st = a->state == K2A_ACCOUNT_DISABLED ? K2A_ACCOUNT_OK : a->state;
        snprintf(until, sizeof(until), "%lld", (long long)a->until);
        snprintf(stts, sizeof(stts), "%lld", (long long)a->state_at);
        const char *argv[] = {"EVAL", SCRIPT_STATE, "1", key, k2a_account_state_name(st), until, a->reason, stts};
        size_t lens[8];
        for (int i = 0; i < 8; ++i)
            lens[i] = strlen(argv[i]);
        if (a->state != K2A_ACCOUNT_DISABLED)
            send_write(s, a, K2A_ACCT_CHG_STATE, 8, argv, lens);
    }
    if (what & K2A_ACCT_CHG_USAGE) {
        char cr[32], cl[32], nr[24];
        snprintf(cr, sizeof(cr), "%.17g", a->credits_remaining);
        snprintf(cl, sizeof(cl), "%.17g", a->credits_limit);
        snprintf(nr, sizeof(nr), "%lld", (long long)a->next_reset);
        const char *argv[] = {"HSET", key, "uk", a->usage_known ? "1" : "0", "cr", cr, "cl", cl, "nr", nr};
        size_t lens[10];
        for (int i = 0; i < 10; ++i)
            lens[i] = strlen(argv[i]);
        send_write(s, a, K2A_ACCT_CHG_USAGE, 10, argv, lens);
    }
    if (what & K2A_ACCT_CHG_CATALOG) {
        char *cat = k2a_account_catalog_encode(a);
        if (cat != NULL) {
            const char *argv[] = {"HSET", key, "cat", cat};
            size_t lens[] = {4, strlen(key), 3, strlen(cat)};
            send_write(s, a, K2A_ACCT_CHG_CATALOG, 4, argv, lens);
            free(cat);
        }
    }
    if (what & K2A_ACCT_CHG_COUNTERS) {
        /* increments since the last write: every replica adds its own */
        char req[24], err[24], in[24], out[24], cc[32];
        snprintf(req, sizeof(req), "%lld", (long long)(a->requests - a->store_req));
        snprintf(err, sizeof(err), "%lld", (long long)(a->errors - a->store_err));
        snprintf(in, sizeof(in), "%lld", (long long)(a->in_tokens - a->store_in));
        snprintf(out, sizeof(out), "%lld", (long long)(a->out_tokens - a->store_out));
        snprintf(cc, sizeof(cc), "%.17g", a->credits_consumed - a->store_cc);
        a->store_req = a->requests;
        a->store_err = a->errors;
        a->store_in = a->in_tokens;
        a->store_out = a->out_tokens;
        a->store_cc = a->credits_consumed;
        const char *names[] = {"req", "err", "in", "out"};
        const char *vals[] = {req, err, in, out};
        for (int i = 0; i < 4; ++i) {
            if (strcmp(vals[i], "0") == 0)
                continue;
            const char *argv[] = {"HINCRBY", key, names[i], vals[i]};
            size_t lens[] = {7, strlen(key), strlen(names[i]), strlen(vals[i])};
            redisAsyncCommandArgv(s->cmd, NULL, NULL, 4, argv, lens);
        }
        if (strcmp(cc, "0") != 0) {
            const char *argv[] = {"HINCRBYFLOAT", key, "cc", cc};
            size_t lens[] = {12, strlen(key), 2, strlen(cc)};
            redisAsyncCommandArgv(s->cmd, NULL, NULL, 4, argv, lens);
        }
    }
    if (what & ~(unsigned)K2A_ACCT_CHG_COUNTERS) {
        char msg[128];
        snprintf(msg, sizeof(msg), "%s %u %s", s->replica, what, a->key);
        redisAsyncCommand(s->cmd, NULL, NULL, "PUBLISH %sevents %s", s->prefix, msg);
    }
}

static void flush_pending(k2a_redis_store_t *s)
{
    k2a_pool_t *p = s->pool;
    for (size_t i = 0; p != NULL && i < p->naccounts && s->up; ++i) {
        k2a_account_t *a = p->accounts[i];
        /* every account's token at least once: a fresh Redis learns every replica's newest rotation */
        unsigned what = a->store_pending | K2A_ACCT_CHG_TOKEN | K2A_ACCT_CHG_COUNTERS;
        a->store_pending = 0;
        write_account(s, a, what);
    }
}

static void st_changed(k2a_pool_store_t *st, k2a_account_t *a, unsigned what)
{
    /* counters change with every request: written by the flush timer, not on the request's account */
    if (what & K2A_ACCT_CHG_COUNTERS) {
        a->store_pending |= K2A_ACCT_CHG_COUNTERS;
        what &= ~(unsigned)K2A_ACCT_CHG_COUNTERS;
    }
    if (what != 0)
        write_account((k2a_redis_store_t *)st, a, what);
}

static void on_counters_timer(uv_timer_t *t)
{
    k2a_redis_store_t *s = t->data;
    k2a_pool_t *p = s->pool;
    for (size_t i = 0; p != NULL && i < p->naccounts && s->up; ++i) {
        k2a_account_t *a = p->accounts[i];
        if (a->store_pending & K2A_ACCT_CHG_COUNTERS) {
            a->store_pending &= ~(unsigned)K2A_ACCT_CHG_COUNTERS;
            write_account(s, a, K2A_ACCT_CHG_COUNTERS);
        }
    }
}

static void on_charge_timer(uv_timer_t *t)
{
    k2a_redis_keys_flush(t->data);
}

/* ---- reads ---- */

typedef struct st_read_ctx_t {
    k2a_redis_store_t *s;
    k2a_account_t *a; /* holds a reference */
    k2a_coro_t *co;   /* a waiting coroutine, NULL when none (or it went away) */
    bool done;
} read_ctx_t;

static void on_read_reply(redisAsyncContext *c, void *reply, void *data)
{
    read_ctx_t *rc = data;
    k2a_acct_shared_t rec;
    int res = K2A_ESTORE_UNAVAILABLE;
    if (reply != NULL && ((redisReply *)reply)->type == REDIS_REPLY_ARRAY) {
        res = 0;
        if (parse_record(reply, &rec)) {
            if (!rc->a->removed)
                apply_record(rc->s, rc->a, &rec);
            k2a_acct_shared_dispose(&rec);
        }
    }
    k2a_account_unref(rc->a);
    if (rc->co != NULL) {
        rc->done = true;
        k2a_coro_wake(rc->co, res);
    } else {
        free(rc);
    }
}

static int read_account(k2a_redis_store_t *s, k2a_account_t *a, read_ctx_t *rc)
{
    if (!s->up || s->cmd == NULL)
        return K2A_ESTORE_UNAVAILABLE;
    rc->s = s;
    rc->a = a;
    k2a_account_ref(a);
    if (redisAsyncCommand(s->cmd, on_read_reply, rc, "HGETALL %sacct:%s", s->prefix, a->key) != REDIS_OK) {
        k2a_account_unref(a);
        return K2A_ESTORE_UNAVAILABLE;
    }
    return 0;
}

static void resync_all(k2a_redis_store_t *s)
{
    k2a_pool_t *p = s->pool;
    for (size_t i = 0; p != NULL && i < p->naccounts && s->up; ++i) {
        read_ctx_t *rc = calloc(1, sizeof(*rc));
        if (rc == NULL || read_account(s, p->accounts[i], rc) != 0)
            free(rc);
    }
}

static void on_resync_timer(uv_timer_t *t)
{
    resync_all(t->data);
}

static void on_event(redisAsyncContext *c, void *reply, void *data)
{
    k2a_redis_store_t *s = c->data;
    redisReply *r = reply;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 3 || r->element[2]->type != REDIS_REPLY_STRING ||
        !field_is(r->element[0], "message"))
        return;
    /* "<replica> <what> <key>" */
    const redisReply *m = r->element[2];
    /* "<replica> D <scoped id>": a stored Responses answer deleted through another replica (store_redis_responses.c) */
    if (m->len > 16 + 3 && m->len <= 16 + 3 + K2A_RESPONSES_STORE_KEY_MAX && memcmp(m->str + 16, " D ", 3) == 0) {
        if (memcmp(m->str, s->replica, 16) != 0)
            k2a_responses_store_forget(m->str + 19, m->len - 19);
        return;
    }
    if (m->len < 16 + 1 + 1 + 1 + 64 || m->len > 120 || memcmp(m->str, s->replica, 16) == 0)
        return;
    k2a_account_t *a = find_account(s, m->str + m->len - 64, 64);
    if (a == NULL)
        return;
    read_ctx_t *rc = calloc(1, sizeof(*rc));
    if (rc == NULL || read_account(s, a, rc) != 0)
        free(rc);
}

/* In a coroutine: reads the account's record now and applies it. */
static void on_read_cancel(k2a_coro_t *co, void *data)
{
    read_ctx_t *rc = data;
    rc->co = NULL; /* the reply frees it */
    k2a_coro_wake(co, K2A_ECANCELED);
}

static int read_account_wait(k2a_redis_store_t *s, k2a_account_t *a)
{
    read_ctx_t *rc = calloc(1, sizeof(*rc));
    if (rc == NULL)
        return K2A_ENOMEM;
    rc->co = k2a_coro_current();
    int r = read_account(s, a, rc);
    if (r != 0) {
        free(rc);
        return r;
    }
    r = (int)k2a_coro_park(on_read_cancel, rc);
    if (rc->done)
        free(rc);
    return r;
}

/* ---- commands a coroutine waits for ---- */

static void on_cmd_reply(redisAsyncContext *c, void *reply, void *data)
{
    k2a_redis_wait_t *w = data;
    redisReply *r = reply;
    int res = K2A_ESTORE_UNAVAILABLE;
    if (r != NULL) {
        res = 0;
        w->type = r->type;
        if (r->type == REDIS_REPLY_INTEGER)
            w->integer = r->integer;
        else if (r->type == REDIS_REPLY_STATUS)
            w->ok = r->len == 2 && memcmp(r->str, "OK", 2) == 0;
        else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_INTEGER &&
                 r->element[1]->type == REDIS_REPLY_INTEGER) {
            w->integer = r->element[0]->integer;
            w->integer2 = r->element[1]->integer;
        } else if (r->type == REDIS_REPLY_ERROR) {
            res = K2A_ESTORE_UNAVAILABLE;
        }
    }
    if (w->co != NULL) {
        w->done = true;
        k2a_coro_wake(w->co, res);
    } else {
        free(w);
    }
}

static void on_cmd_cancel(k2a_coro_t *co, void *data)
{
    k2a_redis_wait_t *w = data;
    w->co = NULL;
    k2a_coro_wake(co, K2A_ECANCELED);
}

/* Sends argv (or the RESP command cmd) and waits for the answer; *out gets a copy of what the reply said. */
static int cmd_wait(k2a_redis_store_t *s, int argc, const char **argv, const char *cmd, size_t cmdlen, k2a_redis_wait_t *out)
{
    if (!s->up || s->cmd == NULL)
        return K2A_ESTORE_UNAVAILABLE;
    if (argc > K2A_REDIS_ARGV_MAX)
        return K2A_EINVAL;
    k2a_redis_wait_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return K2A_ENOMEM;
    int sent;
    if (cmd != NULL) {
        sent = redisAsyncFormattedCommand(s->cmd, on_cmd_reply, w, cmd, cmdlen);
    } else {
        size_t lens[K2A_REDIS_ARGV_MAX];
        for (int i = 0; i < argc; ++i)
            lens[i] = strlen(argv[i]);
        sent = redisAsyncCommandArgv(s->cmd, on_cmd_reply, w, argc, argv, lens);
    }
    if (sent != REDIS_OK) {
        free(w);
        return K2A_ESTORE_UNAVAILABLE;
    }
    w->co = k2a_coro_current();
    int r = (int)k2a_coro_park(on_cmd_cancel, w);
    if (w->done) {
        *out = *w;
        free(w);
    }
    return r;
}

int k2a_redis_cmd_wait(k2a_redis_store_t *s, int argc, const char **argv, k2a_redis_wait_t *out)
{
    return cmd_wait(s, argc, argv, NULL, 0, out);
}

int k2a_redis_cmd_wait_resp(k2a_redis_store_t *s, const char *cmd, size_t len, k2a_redis_wait_t *out)
{
    return cmd_wait(s, 0, NULL, cmd, len, out);
}

/* ---- the refresh lock ---- */

static int st_refresh_begin(k2a_pool_store_t *st, k2a_account_t *a)
{
    k2a_redis_store_t *s = (k2a_redis_store_t *)st;
    uint64_t gen0 = a->token_gen; /* a token adopted from here on (announcement, resync, read) makes the refresh moot */
    /* right after start-up the connection may still be on its way: a refresh waits a moment for it, so that it does not
     * send a refresh token another replica has already rotated */
    while (!s->up && !s->ever_up && !s->stopping && uv_now(s->loop) < s->attached_at + CONNECT_GRACE_MS)
        if (k2a_coro_sleep(20) != 0)
            return K2A_ECANCELED;
    char key[PREFIX_MAX + 80], ms[16];
    snprintf(key, sizeof(key), "%slock:%s", s->prefix, a->key);
    snprintf(ms, sizeof(ms), "%u", s->lock_ms);
    for (unsigned round = 0;; ++round) {
        if (a->token_gen != gen0 && k2a_account_token_valid(a, k2a_pool_now_ms()))
            return K2A_STORE_ADOPTED; /* a resync or an announcement brought a token meanwhile */
        if (!s->up)
            return 0; /* unavailable: the refresh is local (README: the window while the shared store is down) */
        char val[33];
        uint64_t r1 = k2a_rand_u64(), r2 = k2a_rand_u64();
        snprintf(val, sizeof(val), "%016llx%016llx", (unsigned long long)r1, (unsigned long long)r2);
        const char *argv[] = {"SET", key, val, "NX", "PX", ms};
        k2a_redis_wait_t w = {0};
        int r = k2a_redis_cmd_wait(s, 6, argv, &w);
        if (r == K2A_ECANCELED)
            return r;
        if (r != 0)
            return a->token_gen != gen0 && k2a_account_token_valid(a, k2a_pool_now_ms())
                       ? K2A_STORE_ADOPTED
                       : 0; /* the connection went, or Redis refused: the refresh is local */
        /* the stored record first, lock or not: the newest refresh token is the only one that may be sent */
        if ((r = read_account_wait(s, a)) == K2A_ECANCELED)
            return r;
        if (w.ok)
            memcpy(a->store_lock, val, sizeof(val));
        if (a->token_gen != gen0 && k2a_account_token_valid(a, k2a_pool_now_ms())) {
            if (w.ok) {
                const char *uargv[] = {"EVAL", SCRIPT_UNLOCK, "1", key, a->store_lock};
                k2a_redis_wait_t uw;
                k2a_redis_cmd_wait(s, 5, uargv, &uw);
                a->store_lock[0] = '\0';
            }
            return K2A_STORE_ADOPTED;
        }
        if (w.ok)
            return 0;
        /* another replica refreshes: its announcement brings the token (on_event), polled as well */
        for (int i = 0; i < 10 && a->token_gen == gen0; ++i)
            if (k2a_coro_sleep(25) != 0)
                return K2A_ECANCELED;
        if (a->token_gen != gen0 && k2a_account_token_valid(a, k2a_pool_now_ms()))
            return K2A_STORE_ADOPTED;
        if (round % 8 == 7)
            k2a_debug("pool: %s: waiting for another replica's refresh", a->label);
    }
}

static void st_refresh_end(k2a_pool_store_t *st, k2a_account_t *a, int result, k2a_verdict_t *v)
{
    k2a_redis_store_t *s = (k2a_redis_store_t *)st;
    bool held = a->store_lock[0] != '\0';
    if (held && s->up) {
        /* the token write (sent by the transition) precedes this on the same connection: once the unlock answers, the new
         * refresh token is in Redis before any other replica may refresh */
        char key[PREFIX_MAX + 80];
        snprintf(key, sizeof(key), "%slock:%s", s->prefix, a->key);
        const char *argv[] = {"EVAL", SCRIPT_UNLOCK, "1", key, a->store_lock};
        k2a_redis_wait_t w;
        k2a_redis_cmd_wait(s, 5, argv, &w);
    }
    a->store_lock[0] = '\0';
    if (result != 0 && v->action == K2A_ACT_INVALID && (!held || !s->up)) {
        /* refreshed without the lock (shared store down): the refresh token may have been rotated by another replica; the
         * account is not condemned for it, the newest token comes back with the store */
        v->action = K2A_ACT_TRANSIENT;
        size_t n = strlen(v->detail);
        snprintf(v->detail + n, sizeof(v->detail) - n, "%s", " (shared store unavailable: retried when it is back)");
    }
}

/* ---- the store interface ---- */

static int st_load(k2a_pool_store_t *st, k2a_pool_snapshot_t *out, char *err, size_t errlen)
{
    k2a_redis_store_t *s = (k2a_redis_store_t *)st;
    return s->inner != NULL ? s->inner->load(s->inner, out, err, errlen) : K2A_ENOTFOUND;
}

static void on_done_timer(uv_timer_t *t)
{
    k2a_redis_store_t *s = t->data;
    k2a_pool_store_saved_cb cb = s->done_cb;
    s->done_cb = NULL;
    if (cb != NULL)
        cb(s->done_data, 0);
}

static int st_save(k2a_pool_store_t *st, k2a_buf_t *json, k2a_pool_store_saved_cb on_saved, void *data)
{
    k2a_redis_store_t *s = (k2a_redis_store_t *)st;
    if (s->inner != NULL)
        return s->inner->save(s->inner, json, on_saved, data);
    k2a_buf_dispose(json);
    if (!s->timers_open)
        return K2A_EIO;
    s->done_cb = on_saved;
    s->done_data = data;
    uv_timer_start(&s->done_timer, on_done_timer, 0, 0);
    return 0;
}

static int st_save_sync(k2a_pool_store_t *st, const k2a_buf_t *json)
{
    k2a_redis_store_t *s = (k2a_redis_store_t *)st;
    return s->inner != NULL ? s->inner->save_sync(s->inner, json) : 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    k2a_redis_store_t *s = h->data;
    if (s->pool != NULL)
        --s->pool->open_handles;
}

static void st_attach(k2a_pool_store_t *st, k2a_pool_t *p)
{
    k2a_redis_store_t *s = (k2a_redis_store_t *)st;
    s->pool = p;
    uv_timer_init(s->loop, &s->reconnect_timer);
    uv_timer_init(s->loop, &s->resync_timer);
    uv_timer_init(s->loop, &s->done_timer);
    uv_timer_init(s->loop, &s->connect_timer);
    uv_timer_init(s->loop, &s->counters_timer);
    uv_timer_init(s->loop, &s->charge_timer);
    s->reconnect_timer.data = s->resync_timer.data = s->done_timer.data = s->connect_timer.data = s->counters_timer.data = s;
    s->charge_timer.data = s;
    s->timers_open = true;
    p->open_handles += 6;
    uv_timer_start(&s->counters_timer, on_counters_timer, COUNTERS_FLUSH_MS, COUNTERS_FLUSH_MS);
    uv_timer_start(&s->charge_timer, on_charge_timer, K2A_SHARED_CHARGE_FLUSH_MS, K2A_SHARED_CHARGE_FLUSH_MS);
    s->attached_at = uv_now(s->loop);
    s->started_ms = k2a_pool_now_ms();
    /* the counters already stored are not this replica's to add again */
    for (size_t i = 0; i < p->naccounts; ++i) {
        k2a_account_t *a = p->accounts[i];
        a->store_req = a->requests;
        a->store_err = a->errors;
        a->store_in = a->in_tokens;
        a->store_out = a->out_tokens;
        a->store_cc = a->credits_consumed;
    }
    if (s->resync_ms > 0)
        uv_timer_start(&s->resync_timer, on_resync_timer, s->resync_ms, s->resync_ms);
    connect_all(s);
}

static void st_stop(k2a_pool_store_t *st)
{
    k2a_redis_store_t *s = (k2a_redis_store_t *)st;
    if (s->stopping)
        return;
    /* last writes (counters, a state, the client keys' usage) go before the connection closes */
    if (s->up) {
        k2a_redis_keys_flush(s);
        flush_pending(s);
    }
    s->stopping = true;
    if (s->timers_open) {
        s->timers_open = false;
        uv_close((uv_handle_t *)&s->reconnect_timer, on_timer_closed);
        uv_close((uv_handle_t *)&s->resync_timer, on_timer_closed);
        uv_close((uv_handle_t *)&s->done_timer, on_timer_closed);
        uv_close((uv_handle_t *)&s->connect_timer, on_timer_closed);
        uv_close((uv_handle_t *)&s->counters_timer, on_timer_closed);
        uv_close((uv_handle_t *)&s->charge_timer, on_timer_closed);
    }
    /* a connected context sends what is queued, then closes */
    drop_ctx(&s->cmd, &s->cmd_up, true);
    drop_ctx(&s->sub, &s->sub_up, true);
}

static const char *st_shared_status(k2a_pool_store_t *st)
{
    return ((k2a_redis_store_t *)st)->up ? "ok" : "unavailable";
}

static void st_destroy(k2a_pool_store_t *st)
{
    k2a_redis_store_t *s = (k2a_redis_store_t *)st;
    if (!s->stopping)
        st_stop(st);
    if (s->cmd != NULL)
        redisAsyncFree(s->cmd);
    if (s->sub != NULL)
        redisAsyncFree(s->sub);
    if (s->inner != NULL)
        s->inner->destroy(s->inner);
    k2a_redis_keyq_free(s->keyq);
    memset(s->url.password, 0, sizeof(s->url.password));
    free(s);
}

int k2a_pool_redis_store_create(uv_loop_t *loop, const k2a_redis_store_config_t *cfg, k2a_pool_store_t *inner,
                                k2a_pool_store_t **out, char *err, size_t errlen)
{
    *out = NULL;
    k2a_redis_store_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        if (inner != NULL)
            inner->destroy(inner);
        return K2A_ENOMEM;
    }
    int r = k2a_redis_url_parse(cfg->url, &s->url, err, errlen);
    const char *prefix = cfg->prefix != NULL ? cfg->prefix : "";
    if (r == 0 && strlen(prefix) >= sizeof(s->prefix) - 1) {
        snprintf(err, errlen, "KIRO_REDIS_PREFIX: longer than %d characters", PREFIX_MAX - 2);
        r = K2A_ECONFIG;
    }
    for (const char *q = prefix; r == 0 && *q; ++q) {
        if ((unsigned char)*q <= ' ' || *q == 0x7f) {
            snprintf(err, errlen, "KIRO_REDIS_PREFIX: no spaces or control characters");
            r = K2A_ECONFIG;
        }
    }
    if (r != 0) {
        if (inner != NULL)
            inner->destroy(inner);
        free(s);
        return r;
    }
    snprintf(s->prefix, sizeof(s->prefix), "%s", prefix);
    s->keyq = k2a_redis_keyq_new();
    s->loop = loop;
    s->inner = inner;
    s->resync_ms = cfg->resync_ms;
    s->lock_ms = cfg->lock_ms > 0 ? cfg->lock_ms : 60000;
    snprintf(s->replica, sizeof(s->replica), "%016llx", (unsigned long long)k2a_rand_u64());
    s->base.name = inner != NULL ? "the state file (shared store: redis)" : "redis";
    s->base.load = st_load;
    s->base.save = st_save;
    s->base.save_sync = st_save_sync;
    s->base.changed = st_changed;
    s->base.attach = st_attach;
    s->base.stop = st_stop;
    s->base.refresh_begin = st_refresh_begin;
    s->base.refresh_end = st_refresh_end;
    s->base.shared_status = st_shared_status;
    s->base.destroy = st_destroy;
    *out = &s->base;
    return 0;
}

bool k2a_redis_is_store(const k2a_pool_store_t *st)
{
    return st != NULL && st->refresh_begin == st_refresh_begin;
}
