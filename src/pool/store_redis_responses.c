/*
 * Stored Responses in Redis (store_redis_responses.h): SET EX posted to the pool's loop, GET awaited through an xloop
 * call. The value is bounded by the caller's maximum (KIRO_RESPONSES_STORE_MAX_BYTES): a larger one is not read. A
 * delete (DEL, awaited from a coroutine) is published on the events channel as "<replica> D <scoped id>", so that the
 * replica which made the response forgets its copy in memory too (store_redis.c on_event).
 */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/coro.h"
#include "core/errors.h"
#include "core/xloop.h"
#include "pool/internal.h"
#include "pool/store_redis_internal.h"
#include "pool/store_redis_responses.h"

#define KEY_MAX (PREFIX_MAX + K2A_RESPONSES_STORE_KEY_MAX + 8)

static k2a_redis_store_t *shared_of(k2a_pool_t *p)
{
    return p != NULL && k2a_redis_is_store(p->store) ? (k2a_redis_store_t *)p->store : NULL;
}

static int key_of(k2a_redis_store_t *s, const char *id, size_t idlen, char out[KEY_MAX], size_t *len)
{
    if (idlen == 0 || idlen > K2A_RESPONSES_STORE_KEY_MAX)
        return K2A_EINVAL;
    int n = snprintf(out, KEY_MAX, "%sresp:", s->prefix);
    memcpy(out + n, id, idlen);
    *len = (size_t)n + idlen;
    out[*len] = '\0';
    return 0;
}

/* ---- put and delete (not waited for) ---- */

/* "<replica> D <scoped id>" on the events channel: the other replicas drop their copy in memory */
static void publish_delete(k2a_redis_store_t *s, const char *id, size_t idlen)
{
    char channel[PREFIX_MAX + 8], msg[sizeof(s->replica) + 3 + K2A_RESPONSES_STORE_KEY_MAX];
    if (idlen > K2A_RESPONSES_STORE_KEY_MAX)
        return;
    int cl = snprintf(channel, sizeof(channel), "%sevents", s->prefix);
    size_t rl = strlen(s->replica);
    memcpy(msg, s->replica, rl);
    memcpy(msg + rl, " D ", 3);
    memcpy(msg + rl + 3, id, idlen);
    const char *argv[] = {"PUBLISH", channel, msg};
    size_t lens[] = {7, (size_t)cl, rl + 3 + idlen};
    redisAsyncCommandArgv(s->cmd, NULL, NULL, 3, argv, lens);
}

typedef struct st_put_op_t {
    k2a_pool_t *p;
    int64_t ttl_s;
    size_t idlen, vlen; /* vlen 0: a delete */
    char *id, *value;   /* after the struct */
} put_op_t;

static void op_put(void *arg)
{
    put_op_t *op = arg;
    k2a_redis_store_t *s = shared_of(op->p);
    char key[KEY_MAX];
    size_t klen;
    if (s != NULL && s->up && s->cmd != NULL && key_of(s, op->id, op->idlen, key, &klen) == 0) {
        char ttl[24];
        snprintf(ttl, sizeof(ttl), "%lld", (long long)(op->ttl_s > 0 ? op->ttl_s : 1));
        if (op->vlen > 0) {
            const char *argv[] = {"SET", key, op->value, "EX", ttl};
            size_t lens[] = {3, klen, op->vlen, 2, strlen(ttl)};
            redisAsyncCommandArgv(s->cmd, NULL, NULL, 5, argv, lens);
        } else {
            const char *argv[] = {"DEL", key};
            size_t lens[] = {3, klen};
            redisAsyncCommandArgv(s->cmd, NULL, NULL, 2, argv, lens);
            publish_delete(s, op->id, op->idlen);
        }
    }
    free(op);
}

static void post_put(k2a_pool_t *p, const char *id, size_t idlen, const char *value, size_t vlen, int64_t ttl_s)
{
    if (p == NULL || p->owner == NULL || shared_of(p) == NULL || idlen == 0 || idlen > K2A_RESPONSES_STORE_KEY_MAX)
        return;
    put_op_t *op = malloc(sizeof(*op) + idlen + vlen + 2);
    if (op == NULL)
        return;
    op->p = p;
    op->ttl_s = ttl_s;
    op->idlen = idlen;
    op->vlen = vlen;
    op->id = (char *)(op + 1);
    op->value = op->id + idlen + 1;
    memcpy(op->id, id, idlen);
    op->id[idlen] = '\0';
    if (vlen > 0)
        memcpy(op->value, value, vlen);
    op->value[vlen] = '\0';
    k2a_xloop_post(p->owner, op_put, op);
}

typedef struct st_put_wait_op_t {
    k2a_pool_t *p;
    const char *id, *value;
    size_t idlen;
    int64_t ttl_s;
} put_wait_op_t;

static intptr_t op_put_wait(void *arg)
{
    put_wait_op_t *op = arg;
    k2a_redis_store_t *s = shared_of(op->p);
    char key[KEY_MAX], ttl[24];
    size_t klen;
    if (s == NULL || !s->up || key_of(s, op->id, op->idlen, key, &klen) != 0)
        return K2A_ESTORE_UNAVAILABLE;
    snprintf(ttl, sizeof(ttl), "%lld", (long long)(op->ttl_s > 0 ? op->ttl_s : 1));
    const char *argv[] = {"SET", key, op->value, "EX", ttl};
    k2a_redis_wait_t w = {0};
    return k2a_redis_cmd_wait(s, 5, argv, &w);
}

/* From a coroutine the write is awaited (the response is in Redis before its last bytes reach the client, so the next
 * request may go to any replica); elsewhere it is posted. */
static void r_put(void *ctx, const char *key, size_t klen, const char *value, size_t vlen, int64_t ttl_s)
{
    k2a_pool_t *p = ctx;
    if (vlen == 0 || p == NULL || p->owner == NULL)
        return;
    if (k2a_coro_current() != NULL && memchr(value, '\0', vlen) == NULL && memchr(key, '\0', klen) == NULL) {
        char *v = strndup(value, vlen), *k = strndup(key, klen);
        put_wait_op_t op = {.p = p, .id = k, .idlen = klen, .value = v, .ttl_s = ttl_s};
        if (v != NULL && k != NULL)
            k2a_xloop_call(p->owner, op_put_wait, &op);
        free(v);
        free(k);
        return;
    }
    post_put(ctx, key, klen, value, vlen, ttl_s);
}

typedef struct st_del_op_t {
    k2a_pool_t *p;
    const char *id;
    size_t idlen;
} del_op_t;

static intptr_t op_del_wait(void *arg)
{
    del_op_t *op = arg;
    k2a_redis_store_t *s = shared_of(op->p);
    char key[KEY_MAX];
    size_t klen;
    if (s == NULL || !s->up || s->cmd == NULL || key_of(s, op->id, op->idlen, key, &klen) != 0)
        return K2A_ESTORE_UNAVAILABLE;
    const char *argv[] = {"DEL", key};
    k2a_redis_wait_t w = {0};
    int r = k2a_redis_cmd_wait(s, 2, argv, &w);
    if (r != 0)
        return r;
    if (s->cmd != NULL)
        publish_delete(s, op->id, op->idlen);
    return w.integer > 0 ? 0 : K2A_ENOTFOUND;
}

/* From a coroutine the DEL is awaited and its answer says whether the key was there; elsewhere it is posted. */
static int r_del(void *ctx, const char *key, size_t klen)
{
    k2a_pool_t *p = ctx;
    if (p == NULL || p->owner == NULL || shared_of(p) == NULL)
        return K2A_ESTORE_UNAVAILABLE;
    if (k2a_coro_current() != NULL && memchr(key, '\0', klen) == NULL) {
        char *k = strndup(key, klen);
        del_op_t op = {.p = p, .id = k, .idlen = klen};
        int r = k != NULL ? (int)k2a_xloop_call(p->owner, op_del_wait, &op) : K2A_ENOMEM;
        free(k);
        return r;
    }
    post_put(ctx, key, klen, NULL, 0, 0);
    return K2A_ESTORE_UNAVAILABLE;
}

/* ---- get (awaited) ---- */

typedef struct st_get_wait_t {
    k2a_coro_t *co;
    bool done;
    size_t max;
    char *value; /* malloc'd copy, NULL when absent or too large */
    size_t vlen;
} get_wait_t;

static void on_get_reply(redisAsyncContext *c, void *reply, void *data)
{
    (void)c;
    get_wait_t *w = data;
    redisReply *r = reply;
    int res = K2A_ENOTFOUND;
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        res = K2A_ESTORE_UNAVAILABLE;
    else if (r->type == REDIS_REPLY_STRING && r->len <= w->max && (w->value = malloc(r->len + 1)) != NULL) {
        memcpy(w->value, r->str, r->len);
        w->vlen = r->len;
        res = 0;
    }
    if (w->co != NULL) {
        w->done = true;
        k2a_coro_wake(w->co, res);
    } else {
        free(w->value);
        free(w);
    }
}

static void on_get_cancel(k2a_coro_t *co, void *data)
{
    get_wait_t *w = data;
    w->co = NULL;
    k2a_coro_wake(co, K2A_ECANCELED);
}

typedef struct st_get_op_t {
    k2a_pool_t *p;
    const char *id;
    size_t idlen, max;
    k2a_buf_t *out;
} get_op_t;

static intptr_t op_get(void *arg)
{
    get_op_t *op = arg;
    k2a_redis_store_t *s = shared_of(op->p);
    char key[KEY_MAX];
    size_t klen;
    if (s == NULL || !s->up || s->cmd == NULL)
        return K2A_ESTORE_UNAVAILABLE;
    if (key_of(s, op->id, op->idlen, key, &klen) != 0)
        return K2A_ENOTFOUND;
    get_wait_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return K2A_ENOMEM;
    w->max = op->max;
    const char *argv[] = {"GET", key};
    size_t lens[] = {3, klen};
    if (redisAsyncCommandArgv(s->cmd, on_get_reply, w, 2, argv, lens) != REDIS_OK) {
        free(w);
        return K2A_ESTORE_UNAVAILABLE;
    }
    w->co = k2a_coro_current();
    int r = (int)k2a_coro_park(on_get_cancel, w);
    if (w->done) {
        if (r == 0)
            r = k2a_buf_append(op->out, w->value, w->vlen);
        free(w->value);
        free(w);
    }
    return r;
}

static int r_get(void *ctx, const char *key, size_t klen, size_t max, k2a_buf_t *out)
{
    k2a_pool_t *p = ctx;
    if (p == NULL || p->owner == NULL || shared_of(p) == NULL)
        return K2A_ENOTFOUND;
    get_op_t op = {.p = p, .id = key, .idlen = klen, .max = max, .out = out};
    return (int)k2a_xloop_call(p->owner, op_get, &op);
}

bool k2a_redis_responses_remote(k2a_pool_t *p, k2a_responses_remote_t *out)
{
    if (shared_of(p) == NULL)
        return false;
    *out = (k2a_responses_remote_t){.ctx = p, .put = r_put, .get = r_get, .del = r_del};
    return true;
}
