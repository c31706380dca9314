/*
 * The client keys in the shared store (KIRO_REDIS_URL): a keys backend that wraps the file backend (the keys file stays
 * the replica's local copy) and writes every admin change to Redis before the admin API answers, announces it, and
 * applies the other replicas' announcements.
 *
 * Redis (P = KIRO_REDIS_PREFIX):
 *   P key:<id>    hash: id hash prefix name created expires enabled models (newline-separated) rpm conc cday cmonth tday
 *                 deleted ver. Never the secret: its SHA-256 (hex) and the display prefix only. Written by a Lua
 *                 compare-version-and-set, so an older record never replaces a newer one; a deleted key stays a
 *                 tombstone for 30 days so that a replica that missed the deletion cannot bring the key back.
 *   P keys        set of the ids
 *   P keys:events channel: "<replica> <id>" after every write
 * The I/O is blocking hiredis on threads that may block: the save runs on libuv's thread pool (keys_async.c), and one
 * thread of its own follows the channel (SUBSCRIBE) and reads announced keys. At start-up and after every reconnect the
 * whole set is read and applied, then what changed locally meanwhile is written: Redis being down delays sharing, never
 * a request (the keys in memory keep serving).
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "core/errors.h"
#include "core/log.h"
#include "core/rand.h"
#include "keys/keys_redis.h"

#define IO_TIMEOUT_MS 1000
#define RETRY_MS 200
#define TOMBSTONE_TTL_S (30 * 86400)
#define FIELD_MAX 8192

static const char SCRIPT_PUT[] = "local c=tonumber(redis.call('HGET',KEYS[1],'ver') or '-1') "
                                 "if tonumber(ARGV[1])<=c then return 0 end "
                                 "redis.call('DEL',KEYS[1]) "
                                 "redis.call('HSET',KEYS[1],unpack(ARGV,5)) "
                                 "redis.call('SADD',KEYS[2],ARGV[2]) "
                                 "if ARGV[3]=='1' then redis.call('EXPIRE',KEYS[1],ARGV[4]) end "
                                 "return 1";

typedef struct st_redis_backend_t {
    k2a_keys_backend_t base;
    k2a_keys_backend_t *inner; /* the file backend, or NULL */
    k2a_redis_url_t url;
    char prefix[128];
    char replica[17];
    k2a_keys_t *ks;
    pthread_mutex_t mu; /* cmd */
    redisContext *cmd;
    pthread_t thread;
    bool thread_started;
    _Atomic bool stopping;
    pthread_mutex_t smu; /* sub (closed from destroy) */
    redisContext *sub;
    bool warned;
} redis_backend_t;

static redisContext *connect_ctx(redis_backend_t *b)
{
    struct timeval tv = {.tv_sec = IO_TIMEOUT_MS / 1000, .tv_usec = (IO_TIMEOUT_MS % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(b->url.host, b->url.port, tv);
    if (c == NULL || c->err != 0) {
        if (c != NULL)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    redisReply *r = NULL;
    if (b->url.password[0] != '\0') {
        r = redisCommand(c, "AUTH %s", b->url.password);
        bool ok = r != NULL && r->type != REDIS_REPLY_ERROR;
        freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    if (b->url.db != 0) {
        r = redisCommand(c, "SELECT %d", b->url.db);
        bool ok = r != NULL && r->type != REDIS_REPLY_ERROR;
        freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* The command connection (b->mu held), connected when needed. */
static redisContext *cmd_ctx(redis_backend_t *b)
{
    if (b->cmd != NULL && b->cmd->err != 0) {
        redisFree(b->cmd);
        b->cmd = NULL;
    }
    if (b->cmd == NULL && (b->cmd = connect_ctx(b)) == NULL && !b->warned) {
        b->warned = true;
        k2a_warn("client keys: shared store unavailable (redis %s:%d): serving the local keys, changes are written later",
                 b->url.host, b->url.port);
    }
    return b->cmd;
}

/* ---- records ---- */

static int put_record(redis_backend_t *b, redisContext *c, const k2a_keys_remote_t *rec)
{
    char key[200], set[160], ver[24], created[24], expires[24], rpm[24], conc[24], cday[32], cmonth[32], tday[24], ttl[24];
    char hash[65], models[K2A_KEYS_MODELS_MAX * (K2A_KEYS_PATTERN_MAX + 1) + 1] = "";
    snprintf(key, sizeof(key), "%skey:%s", b->prefix, rec->id);
    snprintf(set, sizeof(set), "%skeys", b->prefix);
    snprintf(ver, sizeof(ver), "%lld", (long long)rec->ver);
    snprintf(created, sizeof(created), "%lld", (long long)rec->created_at);
    snprintf(expires, sizeof(expires), "%lld", (long long)rec->expires_at);
    snprintf(rpm, sizeof(rpm), "%lld", (long long)rec->limits.rpm);
    snprintf(conc, sizeof(conc), "%lld", (long long)rec->limits.concurrency);
    snprintf(cday, sizeof(cday), "%.17g", rec->limits.credits_day);
    snprintf(cmonth, sizeof(cmonth), "%.17g", rec->limits.credits_month);
    snprintf(tday, sizeof(tday), "%lld", (long long)rec->limits.tokens_day);
    snprintf(ttl, sizeof(ttl), "%d", TOMBSTONE_TTL_S);
    for (int i = 0; i < 32; ++i)
        snprintf(hash + 2 * i, 3, "%02x", rec->hash[i]);
    size_t off = 0;
    for (size_t i = 0; i < rec->nmodels; ++i)
        off += (size_t)snprintf(models + off, sizeof(models) - off, "%s%s", i ? "\n" : "", rec->models[i]);
    /* ARGV: ver, id, deleted, the tombstone's lifetime, then the field pairs */
    const char *del = rec->deleted ? "1" : "0";
    const char *argv[] = {"EVAL",   SCRIPT_PUT,  "2",       key,       set,
                          ver,      rec->id,     del,       ttl,       "ver",
                          ver,      "id",        rec->id,   "hash",    hash,
                          "prefix", rec->prefix, "name",    rec->name, "created",
                          created,  "expires",   expires,   "enabled", rec->enabled ? "1" : "0",
                          "models", models,      "rpm",     rpm,       "conc",
                          conc,     "cday",      cday,      "cmonth",  cmonth,
                          "tday",   tday,        "deleted", del};
    int argc = (int)(sizeof(argv) / sizeof(argv[0]));
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    int res = r != NULL && r->type == REDIS_REPLY_INTEGER ? 0 : K2A_ESTORE_UNAVAILABLE;
    freeReplyObject(r);
    if (res == 0) {
        char msg[64];
        snprintf(msg, sizeof(msg), "%s %s", b->replica, rec->id);
        r = redisCommand(c, "PUBLISH %skeys:events %s", b->prefix, msg);
        freeReplyObject(r);
    }
    return res;
}

/* Drops the command connection (b->mu held): the next use connects again. */
static void drop_cmd(redis_backend_t *b)
{
    if (b->cmd != NULL)
        redisFree(b->cmd);
    b->cmd = NULL;
}

/* The command connection, checked by a PING (b->mu held): a connection from before an outage may look fine until used. */
static redisContext *fresh_cmd_ctx(redis_backend_t *b)
{
    redisContext *c = cmd_ctx(b);
    redisReply *r = c != NULL ? redisCommand(c, "PING") : NULL;
    bool ok = r != NULL && r->type != REDIS_REPLY_ERROR;
    freeReplyObject(r);
    if (c != NULL && !ok) {
        drop_cmd(b);
        c = cmd_ctx(b);
    }
    return c;
}

/* Writes what changed locally (b->mu held). A failed write is tried once more on a new connection. */
static int push_changed(redis_backend_t *b)
{
    if (b->ks == NULL || cmd_ctx(b) == NULL)
        return K2A_ESTORE_UNAVAILABLE;
    k2a_keys_remote_t *recs;
    size_t n;
    int r = k2a_keys_collect_changed(b->ks, &recs, &n);
    bool retried = false;
    for (size_t i = 0; i < n; ++i) {
        if (r == 0 && b->cmd != NULL && (r = put_record(b, b->cmd, &recs[i])) != 0 && !retried) {
            retried = true;
            drop_cmd(b);
            if (cmd_ctx(b) != NULL)
                r = put_record(b, b->cmd, &recs[i]);
        }
        if (r == 0)
            k2a_keys_mark_synced(b->ks, recs[i].id, recs[i].ver);
        k2a_keys_remote_clear(&recs[i]);
    }
    free(recs);
    return r;
}

static bool hex32(const char *s, size_t len, unsigned char out[32])
{
    if (len != 64)
        return false;
    for (int i = 0; i < 32; ++i) {
        unsigned v;
        char two[3] = {s[2 * i], s[2 * i + 1], 0};
        if (sscanf(two, "%2x", &v) != 1)
            return false;
        out[i] = (unsigned char)v;
    }
    return true;
}

/* A HGETALL reply into rec. */
static bool parse_record(const redisReply *r, k2a_keys_remote_t *rec)
{
    memset(rec, 0, sizeof(*rec));
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements == 0 || r->elements % 2 != 0 || r->elements > 64)
        return false;
    bool has_hash = false;
    for (size_t i = 0; i < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || v->len > FIELD_MAX)
            continue;
        char val[FIELD_MAX + 1];
        memcpy(val, v->str, v->len);
        val[v->len] = '\0';
        const char *name = f->str;
        if (strcmp(name, "id") == 0)
            snprintf(rec->id, sizeof(rec->id), "%s", val);
        else if (strcmp(name, "hash") == 0)
            has_hash = hex32(val, v->len, rec->hash);
        else if (strcmp(name, "prefix") == 0)
            snprintf(rec->prefix, sizeof(rec->prefix), "%s", val);
        else if (strcmp(name, "name") == 0)
            snprintf(rec->name, sizeof(rec->name), "%s", val);
        else if (strcmp(name, "created") == 0)
            rec->created_at = strtoll(val, NULL, 10);
        else if (strcmp(name, "expires") == 0)
            rec->expires_at = strtoll(val, NULL, 10);
        else if (strcmp(name, "ver") == 0)
            rec->ver = strtoll(val, NULL, 10);
        else if (strcmp(name, "enabled") == 0)
            rec->enabled = strcmp(val, "1") == 0;
        else if (strcmp(name, "deleted") == 0)
            rec->deleted = strcmp(val, "1") == 0;
        else if (strcmp(name, "rpm") == 0)
            rec->limits.rpm = strtoll(val, NULL, 10);
        else if (strcmp(name, "conc") == 0)
            rec->limits.concurrency = strtoll(val, NULL, 10);
        else if (strcmp(name, "cday") == 0)
            rec->limits.credits_day = strtod(val, NULL);
        else if (strcmp(name, "cmonth") == 0)
            rec->limits.credits_month = strtod(val, NULL);
        else if (strcmp(name, "tday") == 0)
            rec->limits.tokens_day = strtoll(val, NULL, 10);
        else if (strcmp(name, "models") == 0) {
            char *save = NULL;
            for (char *m = strtok_r(val, "\n", &save); m != NULL && rec->nmodels < K2A_KEYS_MODELS_MAX;
                 m = strtok_r(NULL, "\n", &save))
                if ((rec->models[rec->nmodels] = strdup(m)) != NULL)
                    ++rec->nmodels;
        }
    }
    return has_hash || rec->deleted;
}

/* Reads one key's record and applies it (b->mu held). */
static int pull_one(redis_backend_t *b, redisContext *c, const char *id)
{
    redisReply *r = redisCommand(c, "HGETALL %skey:%s", b->prefix, id);
    if (r == NULL)
        return K2A_ESTORE_UNAVAILABLE;
    k2a_keys_remote_t rec;
    if (parse_record(r, &rec))
        k2a_keys_apply_remote(b->ks, &rec);
    k2a_keys_remote_clear(&rec);
    freeReplyObject(r);
    return 0;
}

/* Reads every key and applies them, then writes what changed locally (b->mu held). */
static int sync_all(redis_backend_t *b)
{
    redisContext *c = fresh_cmd_ctx(b);
    if (c == NULL)
        return K2A_ESTORE_UNAVAILABLE;
    redisReply *r = redisCommand(c, "SMEMBERS %skeys", b->prefix);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return K2A_ESTORE_UNAVAILABLE;
    }
    int res = 0;
    for (size_t i = 0; i < r->elements && res == 0; ++i)
        if (r->element[i]->type == REDIS_REPLY_STRING && r->element[i]->len == K2A_KEYS_ID_LEN)
            res = pull_one(b, c, r->element[i]->str);
    freeReplyObject(r);
    if (res == 0)
        res = push_changed(b);
    if (res == 0 && b->warned) {
        b->warned = false;
        k2a_info("client keys: shared store redis %s:%d in sync", b->url.host, b->url.port);
    }
    return res;
}

/* ---- the follower thread ---- */

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void on_message(redis_backend_t *b, const redisReply *m)
{
    /* "<replica> <id>" */
    if (m->type != REDIS_REPLY_STRING || m->len != 16 + 1 + K2A_KEYS_ID_LEN || memcmp(m->str, b->replica, 16) == 0)
        return;
    char id[K2A_KEYS_ID_LEN + 1];
    memcpy(id, m->str + 17, K2A_KEYS_ID_LEN);
    id[K2A_KEYS_ID_LEN] = '\0';
    for (int i = 0; i < K2A_KEYS_ID_LEN; ++i)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return;
    pthread_mutex_lock(&b->mu);
    redisContext *c = cmd_ctx(b);
    if (c != NULL)
        pull_one(b, c, id);
    pthread_mutex_unlock(&b->mu);
}

static void *follow(void *arg)
{
    redis_backend_t *b = arg;
    while (!atomic_load(&b->stopping)) {
        redisContext *s = connect_ctx(b);
        if (s == NULL) {
            sleep_ms(RETRY_MS);
            continue;
        }
        struct timeval none = {0, 0};
        redisSetTimeout(s, none); /* the subscription waits as long as it takes; destroy shuts the socket down */
        redisReply *r = redisCommand(s, "SUBSCRIBE %skeys:events", b->prefix);
        bool ok = r != NULL && r->type == REDIS_REPLY_ARRAY;
        freeReplyObject(r);
        pthread_mutex_lock(&b->smu);
        b->sub = ok && !atomic_load(&b->stopping) ? s : NULL;
        pthread_mutex_unlock(&b->smu);
        if (b->sub == NULL) {
            redisFree(s);
            sleep_ms(RETRY_MS);
            continue;
        }
        /* subscribed: catch up with what was missed while not following */
        pthread_mutex_lock(&b->mu);
        sync_all(b);
        pthread_mutex_unlock(&b->mu);
        void *reply;
        while (!atomic_load(&b->stopping) && redisGetReply(s, &reply) == REDIS_OK) {
            redisReply *m = reply;
            if (m != NULL && m->type == REDIS_REPLY_ARRAY && m->elements == 3 && m->element[0]->type == REDIS_REPLY_STRING &&
                strcmp(m->element[0]->str, "message") == 0)
                on_message(b, m->element[2]);
            freeReplyObject(reply);
        }
        pthread_mutex_lock(&b->smu);
        b->sub = NULL;
        pthread_mutex_unlock(&b->smu);
        redisFree(s);
        if (!atomic_load(&b->stopping))
            sleep_ms(RETRY_MS);
    }
    return NULL;
}

/* ---- the backend ---- */

static int rb_load(k2a_keys_backend_t *kb, k2a_buf_t *out, char *err, size_t errlen)
{
    redis_backend_t *b = (redis_backend_t *)kb;
    return b->inner != NULL ? b->inner->load(b->inner, out, err, errlen) : K2A_ENOTFOUND;
}

static int rb_save(k2a_keys_backend_t *kb, const char *json, size_t len)
{
    redis_backend_t *b = (redis_backend_t *)kb;
    int r = b->inner != NULL ? b->inner->save(b->inner, json, len) : 0;
    pthread_mutex_lock(&b->mu);
    push_changed(b); /* not written now: written after the next (re)connect, the local copy holds it meanwhile */
    pthread_mutex_unlock(&b->mu);
    return r;
}

static void rb_attach(k2a_keys_backend_t *kb, k2a_keys_t *ks)
{
    redis_backend_t *b = (redis_backend_t *)kb;
    b->ks = ks;
    pthread_mutex_lock(&b->mu);
    sync_all(b); /* the keys other replicas made are usable from the first request */
    pthread_mutex_unlock(&b->mu);
    b->thread_started = pthread_create(&b->thread, NULL, follow, b) == 0;
}

static void rb_destroy(k2a_keys_backend_t *kb)
{
    redis_backend_t *b = (redis_backend_t *)kb;
    atomic_store(&b->stopping, true);
    pthread_mutex_lock(&b->smu);
    if (b->sub != NULL)
        shutdown(b->sub->fd, SHUT_RDWR);
    pthread_mutex_unlock(&b->smu);
    if (b->thread_started)
        pthread_join(b->thread, NULL);
    if (b->cmd != NULL)
        redisFree(b->cmd);
    if (b->inner != NULL && b->inner->destroy != NULL)
        b->inner->destroy(b->inner);
    pthread_mutex_destroy(&b->mu);
    pthread_mutex_destroy(&b->smu);
    memset(b->url.password, 0, sizeof(b->url.password));
    free(b);
}

int k2a_keys_redis_backend_create(const char *url, const char *prefix, k2a_keys_backend_t *inner, k2a_keys_backend_t **out,
                                  char *err, size_t errlen)
{
    *out = NULL;
    redis_backend_t *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        snprintf(err, errlen, "out of memory");
        return K2A_ENOMEM;
    }
    int r = k2a_redis_url_parse(url, &b->url, err, errlen);
    if (r == 0 && strlen(prefix != NULL ? prefix : "") >= sizeof(b->prefix)) {
        snprintf(err, errlen, "KIRO_REDIS_PREFIX: too long");
        r = K2A_ECONFIG;
    }
    if (r != 0) {
        free(b);
        return r;
    }
    snprintf(b->prefix, sizeof(b->prefix), "%s", prefix != NULL ? prefix : "");
    snprintf(b->replica, sizeof(b->replica), "%016llx", (unsigned long long)k2a_rand_u64());
    pthread_mutex_init(&b->mu, NULL);
    pthread_mutex_init(&b->smu, NULL);
    b->inner = inner;
    b->base.name = "redis";
    b->base.load = rb_load;
    b->base.save = rb_save;
    b->base.attach = rb_attach;
    b->base.destroy = rb_destroy;
    *out = &b->base;
    return 0;
}
