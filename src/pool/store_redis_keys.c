/*
 * Client-key limits and usage in the shared store (store_redis_keys.h). The admission is one EVAL: the script drops the
 * expired slots and the window's old entries, checks every limit in the local order (concurrency, rpm, credits per day,
 * per month, tokens per day) and only then takes the slot, the window entry and the request count, so replicas never
 * admit more than a limit between them. Releases and charges are fire-and-forget commands on the pool's loop.
 */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/coro.h"
#include "core/errors.h"
#include "core/xloop.h"
#include "pool/internal.h"
#include "pool/store_redis_internal.h"
#include "pool/store_redis_keys.h"

#define DAY_TTL_S (40 * 86400)
#define MONTH_TTL_S (62 * 86400)
#define USAGE_DAYS_MAX 366

/* KEYS: slots, window, day hash, month. ARGV: now, concurrency, rpm, credits_day, credits_month, tokens_day, member,
 * lease ms, day ttl s. Returns {verdict, retry ms}. */
static const char SCRIPT_ADMIT[] =
    "local now=tonumber(ARGV[1]) local conc=tonumber(ARGV[2]) local rpm=tonumber(ARGV[3]) "
    "local cday=tonumber(ARGV[4]) local cmon=tonumber(ARGV[5]) local tday=tonumber(ARGV[6]) "
    "if conc>0 then redis.call('ZREMRANGEBYSCORE',KEYS[1],'-inf',now) "
    "if redis.call('ZCARD',KEYS[1])>=conc then return {1,1000} end end "
    "if rpm>0 then redis.call('ZREMRANGEBYSCORE',KEYS[2],'-inf',now-60000) "
    "if redis.call('ZCARD',KEYS[2])>=rpm then local o=redis.call('ZRANGE',KEYS[2],0,0,'WITHSCORES') "
    "local r=1000 if o[2] then r=tonumber(o[2])+60000-now end return {2,r} end end "
    "if cday>0 or tday>0 then local u=redis.call('HMGET',KEYS[3],'cr','in','out') "
    "if cday>0 and tonumber(u[1] or '0')>=cday then return {3,0} end "
    "if tday>0 and tonumber(u[2] or '0')+tonumber(u[3] or '0')>=tday then return {5,0} end end "
    "if cmon>0 and tonumber(redis.call('GET',KEYS[4]) or '0')>=cmon then return {4,0} end "
    "if rpm>0 then redis.call('ZADD',KEYS[2],now,ARGV[7]) redis.call('PEXPIRE',KEYS[2],60000) end "
    "if conc>0 then redis.call('ZADD',KEYS[1],now+tonumber(ARGV[8]),ARGV[7]) redis.call('PEXPIRE',KEYS[1],ARGV[8]) end "
    "redis.call('HINCRBY',KEYS[3],'req',1) redis.call('EXPIRE',KEYS[3],ARGV[9]) "
    "return {0,0}";

/* The script's SHA-1 in hex (EVALSHA: the body is sent only when Redis does not know it yet). The pool's loop only. */
static const char *script_sha(const char *script, char hex[41])
{
    if (hex[0] == '\0') {
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned n = 0;
        if (EVP_Digest(script, strlen(script), d, &n, EVP_sha1(), NULL) != 1 || n != 20)
            return NULL;
        for (unsigned i = 0; i < 20; ++i)
            snprintf(hex + 2 * i, 3, "%02x", d[i]);
    }
    return hex;
}

static bool valid_id(const char *id)
{
    size_t n = id != NULL ? strlen(id) : 0;
    if (n == 0 || n > 32)
        return false;
    for (size_t i = 0; i < n; ++i)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'z')))
            return false;
    return true;
}

static k2a_redis_store_t *shared_of(k2a_pool_t *p)
{
    return p != NULL && k2a_redis_is_store(p->store) ? (k2a_redis_store_t *)p->store : NULL;
}

/* ---- admission ---- */

typedef struct st_admit_op_t {
    k2a_pool_t *p;
    const k2a_shared_admit_t *a;
    int verdict;
    int64_t retry_ms;
    char slot[K2A_SHARED_SLOT_LEN];
} admit_op_t;

static uint64_t slot_seq; /* the pool's loop only */

static intptr_t op_admit(void *arg)
{
    admit_op_t *op = arg;
    k2a_redis_store_t *s = shared_of(op->p);
    if (s == NULL || !s->up)
        return K2A_ESTORE_UNAVAILABLE;
    const k2a_shared_admit_t *a = op->a;
    char kc[PREFIX_MAX + 48], kr[PREFIX_MAX + 48], ku[PREFIX_MAX + 64], km[PREFIX_MAX + 64];
    char now[24], conc[24], rpm[24], cday[32], cmon[32], tday[24], lease[24], dttl[24];
    snprintf(kc, sizeof(kc), "%skc:%s", s->prefix, a->id);
    snprintf(kr, sizeof(kr), "%skr:%s", s->prefix, a->id);
    snprintf(ku, sizeof(ku), "%sku:%s:%d", s->prefix, a->id, (int)a->day);
    snprintf(km, sizeof(km), "%skm:%s:%d", s->prefix, a->id, (int)a->month);
    snprintf(now, sizeof(now), "%lld", (long long)a->now_ms);
    snprintf(conc, sizeof(conc), "%lld", (long long)a->concurrency);
    snprintf(rpm, sizeof(rpm), "%lld", (long long)a->rpm);
    snprintf(cday, sizeof(cday), "%.17g", a->credits_day);
    snprintf(cmon, sizeof(cmon), "%.17g", a->credits_month);
    snprintf(tday, sizeof(tday), "%lld", (long long)a->tokens_day);
    snprintf(lease, sizeof(lease), "%d", K2A_SHARED_SLOT_LEASE_MS);
    snprintf(dttl, sizeof(dttl), "%d", DAY_TTL_S);
    snprintf(op->slot, sizeof(op->slot), "%s:%llu", s->replica, (unsigned long long)++slot_seq);
    /* the window's member must be unique too: the slot's name is */
    static char sha[41];
    const char *argv[] = {
        "EVALSHA", script_sha(SCRIPT_ADMIT, sha), "4", kc, kr, ku, km, now, conc, rpm, cday, cmon, tday, op->slot, lease, dttl};
    int argc = (int)(sizeof(argv) / sizeof(argv[0]));
    k2a_redis_wait_t w = {0};
    int r = argv[1] != NULL ? k2a_redis_cmd_wait(s, argc, argv, &w) : K2A_ESTORE_UNAVAILABLE;
    if (r == K2A_ESTORE_UNAVAILABLE && s->up) { /* NOSCRIPT (a new or restarted Redis): the body once */
        argv[0] = "EVAL";
        argv[1] = SCRIPT_ADMIT;
        memset(&w, 0, sizeof(w));
        r = k2a_redis_cmd_wait(s, argc, argv, &w);
    }
    if (r != 0)
        return r;
    if (w.type != REDIS_REPLY_ARRAY)
        return K2A_ESTORE_UNAVAILABLE;
    op->verdict = (int)w.integer;
    op->retry_ms = w.integer2;
    return 0;
}

int k2a_shared_key_admit(k2a_pool_t *p, const k2a_shared_admit_t *a, int *verdict, int64_t *retry_ms,
                         char slot[K2A_SHARED_SLOT_LEN])
{
    *verdict = K2A_SHARED_OK;
    *retry_ms = 0;
    slot[0] = '\0';
    if (p == NULL || p->owner == NULL || !valid_id(a->id) || !k2a_redis_is_store(p->store))
        return K2A_ESTORE_UNAVAILABLE;
    admit_op_t op = {.p = p, .a = a};
    int r = (int)k2a_xloop_call(p->owner, op_admit, &op);
    if (r != 0)
        return r == K2A_ECANCELED ? r : K2A_ESTORE_UNAVAILABLE;
    if (op.verdict < K2A_SHARED_OK || op.verdict > K2A_SHARED_TOKENS_DAY)
        return K2A_ESTORE_UNAVAILABLE;
    *verdict = op.verdict;
    *retry_ms = op.retry_ms;
    if (op.verdict == K2A_SHARED_OK && a->concurrency > 0)
        memcpy(slot, op.slot, K2A_SHARED_SLOT_LEN);
    return 0;
}

/* ---- releases and charges (not waited for) ---- */

typedef struct st_post_op_t {
    k2a_pool_t *p;
    char id[33];
    char slot[K2A_SHARED_SLOT_LEN];
    bool failed, charge, count;
    int32_t day, month;
    int64_t in, out;
    double credits;
} post_op_t;

/* KEYS: day hash, month. ARGV: input tokens, output tokens, credits, day ttl s, month ttl s. */
static const char SCRIPT_CHARGE[] = "redis.call('HINCRBY',KEYS[1],'in',ARGV[1]) redis.call('HINCRBY',KEYS[1],'out',ARGV[2]) "
                                    "if tonumber(ARGV[3])>0 then redis.call('HINCRBYFLOAT',KEYS[1],'cr',ARGV[3]) "
                                    "redis.call('INCRBYFLOAT',KEYS[2],ARGV[3]) redis.call('EXPIRE',KEYS[2],ARGV[5]) end "
                                    "redis.call('EXPIRE',KEYS[1],ARGV[4]) return 1";

static void send_cmd(k2a_redis_store_t *s, int argc, const char **argv)
{
    size_t lens[12];
    for (int i = 0; i < argc; ++i)
        lens[i] = strlen(argv[i]);
    redisAsyncCommandArgv(s->cmd, NULL, NULL, argc, argv, lens);
}

static void op_post(void *arg)
{
    post_op_t *op = arg;
    k2a_redis_store_t *s = shared_of(op->p);
    if (s != NULL && s->up && s->cmd != NULL) {
        char ku[PREFIX_MAX + 64], km[PREFIX_MAX + 64], a[32], b[32], dttl[24], mttl[24];
        snprintf(ku, sizeof(ku), "%sku:%s:%d", s->prefix, op->id, (int)op->day);
        snprintf(km, sizeof(km), "%skm:%s:%d", s->prefix, op->id, (int)op->month);
        snprintf(dttl, sizeof(dttl), "%d", DAY_TTL_S);
        snprintf(mttl, sizeof(mttl), "%d", MONTH_TTL_S);
        if (op->slot[0] != '\0') {
            char kc[PREFIX_MAX + 48];
            snprintf(kc, sizeof(kc), "%skc:%s", s->prefix, op->id);
            send_cmd(s, 3, (const char *[]){"ZREM", kc, op->slot});
        }
        if (op->failed)
            send_cmd(s, 4, (const char *[]){"HINCRBY", ku, "err", "1"});
        if (op->count)
            send_cmd(s, 4, (const char *[]){"HINCRBY", ku, "req", "1"});
        if (op->charge) { /* one call: tokens and credits of the day, credits of the month, their expiry */
            char cr[32];
            snprintf(a, sizeof(a), "%lld", (long long)op->in);
            snprintf(b, sizeof(b), "%lld", (long long)op->out);
            snprintf(cr, sizeof(cr), "%.17g", op->credits);
            send_cmd(s, 10, (const char *[]){"EVAL", SCRIPT_CHARGE, "2", ku, km, a, b, cr, dttl, mttl});
        } else if (op->failed || op->count) {
            send_cmd(s, 3, (const char *[]){"EXPIRE", ku, dttl});
        }
    }
    free(op);
}

static void post(k2a_pool_t *p, post_op_t *op)
{
    if (p->owner == NULL) {
        free(op);
        return;
    }
    op->p = p;
    k2a_xloop_post(p->owner, op_post, op);
}

void k2a_shared_key_release(k2a_pool_t *p, const char *id, const char *slot, bool failed, int32_t day)
{
    if (p == NULL || !valid_id(id) || !k2a_redis_is_store(p->store) || ((slot == NULL || slot[0] == '\0') && !failed))
        return;
    post_op_t *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return;
    snprintf(op->id, sizeof(op->id), "%s", id);
    snprintf(op->slot, sizeof(op->slot), "%s", slot != NULL ? slot : "");
    op->failed = failed;
    op->day = day;
    post(p, op);
}

bool k2a_shared_key_count(k2a_pool_t *p, const char *id, int32_t day)
{
    if (p == NULL || !valid_id(id) || !k2a_redis_is_store(p->store))
        return false;
    post_op_t *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return false;
    snprintf(op->id, sizeof(op->id), "%s", id);
    op->count = true;
    op->day = day;
    post(p, op);
    return true;
}

void k2a_shared_key_charge(k2a_pool_t *p, const char *id, int64_t input_tokens, int64_t output_tokens, double credits, int32_t day,
                           int32_t month)
{
    if (p == NULL || !valid_id(id) || !k2a_redis_is_store(p->store))
        return;
    post_op_t *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return;
    snprintf(op->id, sizeof(op->id), "%s", id);
    op->charge = true;
    op->in = input_tokens > 0 ? input_tokens : 0;
    op->out = output_tokens > 0 ? output_tokens : 0;
    op->credits = credits > 0 ? credits : 0;
    op->day = day;
    op->month = month;
    post(p, op);
}

/* ---- usage ---- */

static const char SCRIPT_USAGE[] = "local r={} for i,k in ipairs(KEYS) do "
                                   "r[i]=redis.call('HMGET',k,'req','err','in','out','cr') end return r";

typedef struct st_usage_op_t {
    k2a_pool_t *p;
    const char *id;
    int32_t first_day;
    int ndays;
    k2a_shared_usage_t *out;
} usage_op_t;

typedef struct st_usage_wait_t {
    k2a_coro_t *co;
    bool done;
    int res;
    int ndays;
    k2a_shared_usage_t *out; /* owned copy: the waiter may be gone */
} usage_wait_t;

static double num(const redisReply *r)
{
    if (r == NULL || r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 40)
        return 0;
    char b[48];
    memcpy(b, r->str, r->len);
    b[r->len] = '\0';
    return strtod(b, NULL);
}

static void on_usage_reply(redisAsyncContext *c, void *reply, void *data)
{
    (void)c;
    usage_wait_t *w = data;
    redisReply *r = reply;
    w->res = K2A_ESTORE_UNAVAILABLE;
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == (size_t)w->ndays) {
        w->res = 0;
        for (size_t i = 0; i < r->elements; ++i) {
            const redisReply *d = r->element[i];
            if (d->type != REDIS_REPLY_ARRAY || d->elements != 5)
                continue;
            w->out[i].requests = (int64_t)num(d->element[0]);
            w->out[i].errors = (int64_t)num(d->element[1]);
            w->out[i].input_tokens = (int64_t)num(d->element[2]);
            w->out[i].output_tokens = (int64_t)num(d->element[3]);
            w->out[i].credits = num(d->element[4]);
        }
    }
    if (w->co != NULL) {
        w->done = true;
        k2a_coro_wake(w->co, w->res);
    } else {
        free(w->out);
        free(w);
    }
}

static void on_usage_cancel(k2a_coro_t *co, void *data)
{
    usage_wait_t *w = data;
    w->co = NULL;
    k2a_coro_wake(co, K2A_ECANCELED);
}

static intptr_t op_usage(void *arg)
{
    usage_op_t *op = arg;
    k2a_redis_store_t *s = shared_of(op->p);
    if (s == NULL || !s->up || s->cmd == NULL)
        return K2A_ESTORE_UNAVAILABLE;
    int n = op->ndays;
    const char **argv = calloc((size_t)n + 3, sizeof(*argv));
    size_t *lens = calloc((size_t)n + 3, sizeof(*lens));
    char *names = calloc((size_t)n, PREFIX_MAX + 64);
    usage_wait_t *w = calloc(1, sizeof(*w));
    k2a_shared_usage_t *out = calloc((size_t)n, sizeof(*out));
    int r = argv == NULL || lens == NULL || names == NULL || w == NULL || out == NULL ? K2A_ENOMEM : 0;
    char nk[16];
    if (r == 0) {
        snprintf(nk, sizeof(nk), "%d", n);
        argv[0] = "EVAL";
        argv[1] = SCRIPT_USAGE;
        argv[2] = nk;
        for (int i = 0; i < n; ++i) {
            char *k = names + (size_t)i * (PREFIX_MAX + 64);
            snprintf(k, PREFIX_MAX + 64, "%sku:%s:%d", s->prefix, op->id, (int)(op->first_day + i));
            argv[3 + i] = k;
        }
        for (int i = 0; i < n + 3; ++i)
            lens[i] = strlen(argv[i]);
        w->ndays = n;
        w->out = out;
        w->co = k2a_coro_current();
        if (redisAsyncCommandArgv(s->cmd, on_usage_reply, w, n + 3, argv, lens) != REDIS_OK)
            r = K2A_ESTORE_UNAVAILABLE;
    }
    free(argv);
    free(lens);
    free(names);
    if (r != 0) {
        free(w);
        free(out);
        return r;
    }
    r = (int)k2a_coro_park(on_usage_cancel, w);
    if (w->done) {
        if (r == 0)
            memcpy(op->out, out, (size_t)n * sizeof(*out));
        free(out);
        free(w);
    }
    return r;
}

int k2a_shared_key_usage(k2a_pool_t *p, const char *id, int32_t first_day, int ndays, k2a_shared_usage_t *out)
{
    if (p == NULL || p->owner == NULL || !valid_id(id) || !k2a_redis_is_store(p->store) || ndays < 1 || ndays > USAGE_DAYS_MAX)
        return K2A_ESTORE_UNAVAILABLE;
    usage_op_t op = {.p = p, .id = id, .first_day = first_day, .ndays = ndays, .out = out};
    int r = (int)k2a_xloop_call(p->owner, op_usage, &op);
    return r == 0 || r == K2A_ECANCELED ? r : K2A_ESTORE_UNAVAILABLE;
}
