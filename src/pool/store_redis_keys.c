/*
 * Client-key limits and usage in the shared store (store_redis_keys.h). The admission is one EVALSHA: the script drops the
 * expired slots and the window's old entries, checks every limit in the local order (concurrency, rpm, credits per day,
 * per month, tokens per day) and only then takes the slot, the window entry and the request count, so replicas never
 * admit more than a limit between them. Releases and charges are fire-and-forget: queued by the worker loops, written by
 * the pool's loop (releases at once, batched; usage added up per key and written every K2A_SHARED_CHARGE_FLUSH_MS).
 */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "core/coro.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/xloop.h"
#include "pool/internal.h"
#include "pool/store_redis_internal.h"
#include "pool/store_redis_keys.h"

#define DAY_TTL_S (40 * 86400)
#define MONTH_TTL_S (62 * 86400)
#define USAGE_DAYS_MAX 366

/* KEYS: slots, window, day hash, month. ARGV: now, concurrency, rpm, credits_day, credits_month, tokens_day, member,
 * lease ms, day ttl s (set when the day's count is made: the hash is per day). Returns {verdict, retry ms}. */
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
    "if redis.call('HINCRBY',KEYS[3],'req',1)==1 then redis.call('EXPIRE',KEYS[3],ARGV[9]) end "
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

static char admit_sha[41]; /* the pool's loop only */

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

/* ---- the admission's command, in the protocol's form (no printf, no hiredis formatting on the request path) ---- */

/* 16 arguments: 4 key names of at most PREFIX_MAX + 64, 9 numbers, the slot, the script's SHA-1 */
#define RESP_MAX (4 * (PREFIX_MAX + 80) + 640)

typedef struct st_resp_t {
    char *b;
    size_t n, cap;
    bool overflow;
} resp_t;

static size_t u64_dec(char *out, uint64_t v)
{
    char t[24];
    size_t n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; ++i)
        out[i] = t[n - 1 - i];
    return n;
}

static size_t i64_dec(char *out, int64_t v)
{
    if (v >= 0)
        return u64_dec(out, (uint64_t)v);
    out[0] = '-';
    return 1 + u64_dec(out + 1, (uint64_t)0 - (uint64_t)v);
}

/* A limit: whole numbers (the usual case) without printf. */
static size_t dbl_dec(char *out, double v)
{
    if (v >= -1e15 && v <= 1e15 && v == (double)(int64_t)v)
        return i64_dec(out, (int64_t)v);
    int n = snprintf(out, 32, "%.17g", v);
    return n > 0 && n < 32 ? (size_t)n : 0;
}

static void resp_raw(resp_t *r, const char *p, size_t n)
{
    if (r->overflow || n > r->cap - r->n) {
        r->overflow = true;
        return;
    }
    memcpy(r->b + r->n, p, n);
    r->n += n;
}

/* An argument made of up to three parts (a key name: prefix, kind, id). */
static void resp_arg3(resp_t *r, const char *a, size_t na, const char *b, size_t nb, const char *c, size_t nc)
{
    char len[24];
    len[0] = '$';
    size_t nl = 1 + u64_dec(len + 1, na + nb + nc);
    len[nl++] = '\r';
    len[nl++] = '\n';
    resp_raw(r, len, nl);
    resp_raw(r, a, na);
    resp_raw(r, b, nb);
    resp_raw(r, c, nc);
    resp_raw(r, "\r\n", 2);
}

static void resp_arg(resp_t *r, const char *a, size_t n)
{
    resp_arg3(r, a, n, "", 0, "", 0);
}

static void resp_int(resp_t *r, int64_t v)
{
    char t[24];
    resp_arg(r, t, i64_dec(t, v));
}

static void resp_dbl(resp_t *r, double v)
{
    char t[32];
    resp_arg(r, t, dbl_dec(t, v));
}

/* EVALSHA (or, script_body set, EVAL) of the admission script. The bounds: prefix < PREFIX_MAX, id <= 32 (valid_id). */
static void admit_command(resp_t *r, const k2a_redis_store_t *s, const k2a_shared_admit_t *a, const char *slot, bool script_body)
{
    size_t np = strlen(s->prefix), ni = strlen(a->id);
    char day[24], month[24];
    day[0] = month[0] = ':';
    size_t nd = 1 + i64_dec(day + 1, a->day), nm = 1 + i64_dec(month + 1, a->month);
    r->n = 0;
    r->overflow = false;
    resp_raw(r, "*16\r\n", 5);
    if (script_body) {
        resp_arg(r, "EVAL", 4);
        resp_arg(r, SCRIPT_ADMIT, sizeof(SCRIPT_ADMIT) - 1);
    } else {
        resp_arg(r, "EVALSHA", 7);
        resp_arg(r, admit_sha, 40);
    }
    resp_arg(r, "4", 1);
    char kind[4 + 32 + 24];
    resp_arg3(r, s->prefix, np, "kc:", 3, a->id, ni);
    resp_arg3(r, s->prefix, np, "kr:", 3, a->id, ni);
    memcpy(kind, a->id, ni);
    memcpy(kind + ni, day, nd);
    resp_arg3(r, s->prefix, np, "ku:", 3, kind, ni + nd);
    memcpy(kind + ni, month, nm);
    resp_arg3(r, s->prefix, np, "km:", 3, kind, ni + nm);
    resp_int(r, a->now_ms);
    resp_int(r, a->concurrency);
    resp_int(r, a->rpm);
    resp_dbl(r, a->credits_day);
    resp_dbl(r, a->credits_month);
    resp_int(r, a->tokens_day);
    resp_arg(r, slot, strlen(slot));
    resp_int(r, K2A_SHARED_SLOT_LEASE_MS);
    resp_int(r, DAY_TTL_S);
}

static intptr_t op_admit(void *arg)
{
    admit_op_t *op = arg;
    k2a_redis_store_t *s = shared_of(op->p);
    if (s == NULL || !s->up || script_sha(SCRIPT_ADMIT, admit_sha) == NULL)
        return K2A_ESTORE_UNAVAILABLE;
    /* the slot's name (also the window's member, which must be unique too): <replica>:<n> */
    size_t nr = strlen(s->replica);
    memcpy(op->slot, s->replica, nr);
    op->slot[nr] = ':';
    op->slot[nr + 1 + u64_dec(op->slot + nr + 1, ++slot_seq)] = '\0';
    char buf[RESP_MAX];
    resp_t cmd = {.b = buf, .cap = sizeof(buf)};
    admit_command(&cmd, s, op->a, op->slot, false);
    k2a_redis_wait_t w = {0};
    int r = cmd.overflow ? K2A_EINVAL : k2a_redis_cmd_wait_resp(s, cmd.b, cmd.n, &w);
    if (r == K2A_ESTORE_UNAVAILABLE && s->up) { /* NOSCRIPT (a new or restarted Redis): the body once */
        cmd.cap = sizeof(SCRIPT_ADMIT) + RESP_MAX;
        if ((cmd.b = malloc(cmd.cap)) == NULL)
            return K2A_ENOMEM;
        admit_command(&cmd, s, op->a, op->slot, true);
        memset(&w, 0, sizeof(w));
        r = cmd.overflow ? K2A_EINVAL : k2a_redis_cmd_wait_resp(s, cmd.b, cmd.n, &w);
        free(cmd.b);
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

/* ---- releases and charges (not waited for) ----
 *
 * Worker loops add to a queue under a mutex; the pool's loop writes it: releases at once (the first release into an
 * empty queue posts one wake, the ones after it ride along), usage every K2A_SHARED_CHARGE_FLUSH_MS, added up per key,
 * day and month, one EVALSHA for up to FLUSH_BATCH keys. Both are double-buffered: the flush swaps the buffer producers
 * fill, then writes the other one on its own. Bounded: when a buffer is full, the entry is posted and written alone. */

#define ACC_SLOTS 1024 /* the hash table of pending usage (a power of 2) */
#define ACC_MAX 512    /* keys x days with usage pending */
#define REL_MAX 1024   /* releases pending */
#define FLUSH_BATCH 64 /* keys per script call */

typedef struct st_acc_t {
    char id[33];
    bool used;
    int32_t day, month; /* month -1: no credits (an error counted on release) */
    int64_t req, err, in, out;
    double cr;
} acc_t;

typedef struct st_acc_set_t {
    acc_t table[ACC_SLOTS];
    uint16_t order[ACC_MAX]; /* the used entries of table */
    size_t n;
} acc_set_t;

typedef struct st_rel_t {
    char id[33];
    char slot[K2A_SHARED_SLOT_LEN];
} rel_t;

typedef struct st_rel_set_t {
    rel_t rel[REL_MAX];
    size_t n;
} rel_set_t;

struct st_k2a_redis_keyq_t {
    uv_mutex_t lock;
    acc_set_t acc[2];
    rel_set_t rel[2];
    int acc_cur, rel_cur; /* the buffers producers fill */
    bool wake_posted;
    /* the pool's loop only: the script's state on this connection and the argument vector of a flush */
    bool loaded;
    char names[2 * FLUSH_BATCH][PREFIX_MAX + 64];
    char nums[5 * FLUSH_BATCH][32];
    const char *argv[5 + 7 * FLUSH_BATCH];
    size_t lens[5 + 7 * FLUSH_BATCH];
};

/* KEYS: day hash and month of each key. ARGV: day ttl s, month ttl s, then req err in out cr of each key. */
static const char SCRIPT_CHARGE[] = "local d=ARGV[1] local m=ARGV[2] for i=1,#KEYS/2 do local u=KEYS[2*i-1] local o=2+5*(i-1) "
                                    "local v=tonumber(ARGV[o+1]) if v>0 then redis.call('HINCRBY',u,'req',v) end "
                                    "v=tonumber(ARGV[o+2]) if v>0 then redis.call('HINCRBY',u,'err',v) end "
                                    "v=tonumber(ARGV[o+3]) if v>0 then redis.call('HINCRBY',u,'in',v) end "
                                    "v=tonumber(ARGV[o+4]) if v>0 then redis.call('HINCRBY',u,'out',v) end "
                                    "if tonumber(ARGV[o+5])>0 then redis.call('HINCRBYFLOAT',u,'cr',ARGV[o+5]) "
                                    "redis.call('INCRBYFLOAT',KEYS[2*i],ARGV[o+5]) redis.call('EXPIRE',KEYS[2*i],m) end "
                                    "redis.call('EXPIRE',u,d) end return 1";
static char charge_sha[41]; /* the pool's loop only */

struct st_k2a_redis_keyq_t *k2a_redis_keyq_new(void)
{
    struct st_k2a_redis_keyq_t *q = calloc(1, sizeof(*q));
    if (q != NULL && uv_mutex_init(&q->lock) != 0) {
        free(q);
        q = NULL;
    }
    return q;
}

void k2a_redis_keyq_free(struct st_k2a_redis_keyq_t *q)
{
    if (q == NULL)
        return;
    uv_mutex_destroy(&q->lock);
    free(q);
}

static void on_script_reply(redisAsyncContext *c, void *reply, void *data)
{
    (void)data;
    const redisReply *r = reply;
    k2a_redis_store_t *s = c->data;
    if (r != NULL && r->type == REDIS_REPLY_ERROR && s != NULL && s->keyq != NULL) {
        k2a_debug("pool: redis: client-key usage not written: %.*s", (int)(r->len < 200 ? r->len : 200), r->str);
        if (r->len >= 8 && memcmp(r->str, "NOSCRIPT", 8) == 0)
            s->keyq->loaded = false; /* loaded again before the next flush */
    }
}

void k2a_redis_keys_up(k2a_redis_store_t *s)
{
    if (s->cmd == NULL || script_sha(SCRIPT_ADMIT, admit_sha) == NULL || script_sha(SCRIPT_CHARGE, charge_sha) == NULL)
        return;
    redisAsyncCommand(s->cmd, on_script_reply, NULL, "SCRIPT LOAD %s", SCRIPT_ADMIT);
    redisAsyncCommand(s->cmd, on_script_reply, NULL, "SCRIPT LOAD %s", SCRIPT_CHARGE);
    if (s->keyq != NULL)
        s->keyq->loaded = true;
}

/* Writes the usage of n keys (n <= FLUSH_BATCH) in one script call. The pool's loop only, the store up. */
static void send_usage(k2a_redis_store_t *s, struct st_k2a_redis_keyq_t *q, acc_t *const *e, size_t n)
{
    if (n == 0 || q == NULL || script_sha(SCRIPT_CHARGE, charge_sha) == NULL)
        return;
    if (!q->loaded) {
        redisAsyncCommand(s->cmd, on_script_reply, NULL, "SCRIPT LOAD %s", SCRIPT_CHARGE);
        q->loaded = true;
    }
    size_t argc = 0;
    q->argv[argc++] = "EVALSHA";
    q->argv[argc++] = charge_sha;
    snprintf(q->nums[0], sizeof(q->nums[0]), "%zu", 2 * n);
    q->argv[argc++] = q->nums[0];
    for (size_t i = 0; i < n; ++i) {
        snprintf(q->names[2 * i], sizeof(q->names[0]), "%sku:%s:%d", s->prefix, e[i]->id, (int)e[i]->day);
        snprintf(q->names[2 * i + 1], sizeof(q->names[0]), "%skm:%s:%d", s->prefix, e[i]->id, (int)e[i]->month);
        q->argv[argc++] = q->names[2 * i];
        q->argv[argc++] = q->names[2 * i + 1];
    }
    char dttl[16], mttl[16];
    snprintf(dttl, sizeof(dttl), "%d", DAY_TTL_S);
    snprintf(mttl, sizeof(mttl), "%d", MONTH_TTL_S);
    q->argv[argc++] = dttl;
    q->argv[argc++] = mttl;
    for (size_t i = 0; i < n; ++i) {
        char *b = q->nums[1 + 5 * i];
        snprintf(b, 32, "%lld", (long long)e[i]->req);
        snprintf(b + 32, 32, "%lld", (long long)e[i]->err);
        snprintf(b + 64, 32, "%lld", (long long)e[i]->in);
        snprintf(b + 96, 32, "%lld", (long long)e[i]->out);
        snprintf(b + 128, 32, "%.17g", e[i]->cr);
        for (int k = 0; k < 5; ++k)
            q->argv[argc++] = b + 32 * k;
    }
    for (size_t i = 0; i < argc; ++i)
        q->lens[i] = strlen(q->argv[i]);
    redisAsyncCommandArgv(s->cmd, on_script_reply, NULL, (int)argc, q->argv, q->lens);
}

static void send_release(k2a_redis_store_t *s, const char *id, const char *slot)
{
    char kc[PREFIX_MAX + 48];
    snprintf(kc, sizeof(kc), "%skc:%s", s->prefix, id);
    const char *argv[] = {"ZREM", kc, slot};
    size_t lens[] = {4, strlen(kc), strlen(slot)};
    redisAsyncCommandArgv(s->cmd, NULL, NULL, 3, argv, lens);
}

static void flush_releases(k2a_redis_store_t *s)
{
    struct st_k2a_redis_keyq_t *q = s->keyq;
    if (q == NULL)
        return;
    uv_mutex_lock(&q->lock);
    rel_set_t *set = &q->rel[q->rel_cur];
    q->rel_cur ^= 1;
    q->wake_posted = false;
    uv_mutex_unlock(&q->lock);
    /* what is released while the store is down is not written: the slot ends with its lease */
    for (size_t i = 0; i < set->n && s->up && s->cmd != NULL; ++i)
        send_release(s, set->rel[i].id, set->rel[i].slot);
    set->n = 0;
}

static void flush_usage(k2a_redis_store_t *s)
{
    struct st_k2a_redis_keyq_t *q = s->keyq;
    if (q == NULL)
        return;
    uv_mutex_lock(&q->lock);
    acc_set_t *set = &q->acc[q->acc_cur];
    q->acc_cur ^= 1;
    uv_mutex_unlock(&q->lock);
    acc_t *batch[FLUSH_BATCH];
    size_t nb = 0;
    for (size_t i = 0; i < set->n; ++i) {
        acc_t *e = &set->table[set->order[i]];
        batch[nb++] = e;
        if (nb == FLUSH_BATCH || i + 1 == set->n) {
            /* what was charged while the store is down stays in the replica's own usage */
            if (s->up && s->cmd != NULL)
                send_usage(s, q, batch, nb);
            nb = 0;
        }
    }
    for (size_t i = 0; i < set->n; ++i)
        set->table[set->order[i]].used = false;
    set->n = 0;
}

void k2a_redis_keys_flush(k2a_redis_store_t *s)
{
    flush_releases(s);
    flush_usage(s);
}

static uint32_t acc_hash(const char *id, int32_t day, int32_t month)
{
    uint32_t h = 2166136261u;
    for (const char *c = id; *c; ++c)
        h = (h ^ (uint8_t)*c) * 16777619u;
    h = (h ^ (uint32_t)day) * 16777619u;
    return (h ^ (uint32_t)month) * 16777619u;
}

/* Under the lock: adds to the entry of (id, day, month). False when the set is full. */
static bool acc_add(acc_set_t *set, const acc_t *add)
{
    uint32_t h = acc_hash(add->id, add->day, add->month) & (ACC_SLOTS - 1);
    acc_t *e;
    for (;; h = (h + 1) & (ACC_SLOTS - 1)) {
        e = &set->table[h];
        if (!e->used) {
            if (set->n >= ACC_MAX)
                return false;
            *e = *add;
            e->used = true;
            set->order[set->n++] = (uint16_t)h;
            return true;
        }
        if (e->day == add->day && e->month == add->month && strcmp(e->id, add->id) == 0)
            break;
    }
    e->req += add->req;
    e->err += add->err;
    e->in += add->in;
    e->out += add->out;
    e->cr += add->cr;
    return true;
}

/* A queue that is full (or missing): the entry is posted to the pool's loop and written alone. */
typedef struct st_post_op_t {
    k2a_pool_t *p;
    acc_t usage;
    rel_t rel;
} post_op_t;

static void op_post(void *arg)
{
    post_op_t *op = arg;
    k2a_redis_store_t *s = shared_of(op->p);
    if (s != NULL && s->up && s->cmd != NULL) {
        if (op->rel.slot[0] != '\0')
            send_release(s, op->rel.id, op->rel.slot);
        if (op->usage.used) {
            acc_t *e = &op->usage;
            send_usage(s, s->keyq, &e, 1);
        }
    }
    free(op);
}

static void post_alone(k2a_pool_t *p, const acc_t *usage, const rel_t *rel)
{
    post_op_t *op = p->owner != NULL ? calloc(1, sizeof(*op)) : NULL;
    if (op == NULL)
        return;
    op->p = p;
    if (usage != NULL)
        op->usage = *usage;
    if (rel != NULL)
        op->rel = *rel;
    k2a_xloop_post(p->owner, op_post, op);
}

static void op_wake(void *arg)
{
    k2a_redis_store_t *s = shared_of(arg);
    if (s != NULL)
        flush_releases(s);
}

static void add_usage(k2a_pool_t *p, const acc_t *u)
{
    struct st_k2a_redis_keyq_t *q = ((k2a_redis_store_t *)p->store)->keyq;
    bool queued = false;
    if (q != NULL) {
        uv_mutex_lock(&q->lock);
        queued = acc_add(&q->acc[q->acc_cur], u);
        uv_mutex_unlock(&q->lock);
    }
    if (!queued)
        post_alone(p, u, NULL);
}

void k2a_shared_key_release(k2a_pool_t *p, const char *id, const char *slot, bool failed, int32_t day)
{
    if (p == NULL || !valid_id(id) || !k2a_redis_is_store(p->store) || ((slot == NULL || slot[0] == '\0') && !failed))
        return;
    if (slot != NULL && slot[0] != '\0') {
        struct st_k2a_redis_keyq_t *q = ((k2a_redis_store_t *)p->store)->keyq;
        rel_t r;
        snprintf(r.id, sizeof(r.id), "%s", id);
        snprintf(r.slot, sizeof(r.slot), "%s", slot);
        bool queued = false, wake = false;
        if (q != NULL) {
            uv_mutex_lock(&q->lock);
            rel_set_t *set = &q->rel[q->rel_cur];
            if (set->n < REL_MAX) {
                set->rel[set->n++] = r;
                queued = true;
                wake = !q->wake_posted;
                q->wake_posted = true;
            }
            uv_mutex_unlock(&q->lock);
        }
        if (!queued)
            post_alone(p, NULL, &r);
        else if (wake && p->owner != NULL)
            k2a_xloop_post(p->owner, op_wake, p);
    }
    if (failed) {
        acc_t u = {.used = true, .day = day, .month = -1, .err = 1};
        snprintf(u.id, sizeof(u.id), "%s", id);
        add_usage(p, &u);
    }
}

bool k2a_shared_key_count(k2a_pool_t *p, const char *id, int32_t day)
{
    if (p == NULL || !valid_id(id) || !k2a_redis_is_store(p->store))
        return false;
    acc_t u = {.used = true, .day = day, .month = -1, .req = 1};
    snprintf(u.id, sizeof(u.id), "%s", id);
    add_usage(p, &u);
    return true;
}

void k2a_shared_key_charge(k2a_pool_t *p, const char *id, int64_t input_tokens, int64_t output_tokens, double credits, int32_t day,
                           int32_t month)
{
    if (p == NULL || !valid_id(id) || !k2a_redis_is_store(p->store))
        return;
    acc_t u = {.used = true,
               .day = day,
               .month = month,
               .in = input_tokens > 0 ? input_tokens : 0,
               .out = output_tokens > 0 ? output_tokens : 0,
               .cr = credits > 0 ? credits : 0};
    snprintf(u.id, sizeof(u.id), "%s", id);
    add_usage(p, &u);
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
    flush_usage(s); /* this replica's pending usage first (the connection keeps the order) */
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
