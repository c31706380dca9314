/*
 * Windowed counters shared by every replica (store_redis.h k2a_redis_counter_incr): one EVAL of a script that adds to the
 * counter and starts its window's expiry on the first increment, so that concurrent replicas never admit more than the
 * limit and a window ends by itself.
 */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/errors.h"
#include "pool/store_redis.h"
#include "pool/store_redis_internal.h"

static const char SCRIPT_COUNTER[] = "local c=redis.call('INCRBY',KEYS[1],ARGV[1]) "
                                     "local t=redis.call('PTTL',KEYS[1]) "
                                     "if t<0 then redis.call('PEXPIRE',KEYS[1],ARGV[2]) t=tonumber(ARGV[2]) end "
                                     "return {c,t}";

/* ---- windowed counters ---- */

typedef struct st_counter_ctx_t {
    k2a_redis_counter_cb cb;
    void *data;
} counter_ctx_t;

static void on_counter_reply(redisAsyncContext *c, void *reply, void *data)
{
    counter_ctx_t *cc = data;
    redisReply *r = reply;
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_INTEGER &&
        r->element[1]->type == REDIS_REPLY_INTEGER)
        cc->cb(cc->data, 0, r->element[0]->integer, r->element[1]->integer);
    else
        cc->cb(cc->data, K2A_ESTORE_UNAVAILABLE, 0, 0);
    free(cc);
}

static int counter_argv(k2a_redis_store_t *s, const char *name, int64_t n, int64_t window_ms, char *key, size_t keysz, char *nb,
                        char *wb, const char **argv)
{
    if (name == NULL || strlen(name) > 200)
        return K2A_EINVAL;
    snprintf(key, keysz, "%srl:%s", s->prefix, name);
    snprintf(nb, 24, "%lld", (long long)n);
    snprintf(wb, 24, "%lld", (long long)(window_ms > 0 ? window_ms : 1));
    argv[0] = "EVAL";
    argv[1] = SCRIPT_COUNTER;
    argv[2] = "1";
    argv[3] = key;
    argv[4] = nb;
    argv[5] = wb;
    return 0;
}

int k2a_redis_counter_incr(k2a_pool_store_t *st, const char *name, int64_t n, int64_t window_ms, k2a_redis_counter_cb cb,
                           void *data)
{
    k2a_redis_store_t *s = (k2a_redis_store_t *)st;
    char key[PREFIX_MAX + 216], nb[24], wb[24];
    const char *argv[6];
    if (s == NULL || !k2a_redis_is_store(st) || !s->up || s->cmd == NULL)
        return K2A_ESTORE_UNAVAILABLE;
    int r = counter_argv(s, name, n, window_ms, key, sizeof(key), nb, wb, argv);
    if (r != 0)
        return r;
    counter_ctx_t *cc = malloc(sizeof(*cc));
    if (cc == NULL)
        return K2A_ENOMEM;
    cc->cb = cb;
    cc->data = data;
    size_t lens[6];
    for (int i = 0; i < 6; ++i)
        lens[i] = strlen(argv[i]);
    if (redisAsyncCommandArgv(s->cmd, on_counter_reply, cc, 6, argv, lens) != REDIS_OK) {
        free(cc);
        return K2A_ESTORE_UNAVAILABLE;
    }
    return 0;
}

int k2a_redis_counter_incr_wait(k2a_pool_store_t *st, const char *name, int64_t n, int64_t window_ms, int64_t *count)
{
    k2a_redis_store_t *s = (k2a_redis_store_t *)st;
    char key[PREFIX_MAX + 216], nb[24], wb[24];
    const char *argv[6];
    if (s == NULL || !k2a_redis_is_store(st))
        return K2A_ESTORE_UNAVAILABLE;
    int r = counter_argv(s, name, n, window_ms, key, sizeof(key), nb, wb, argv);
    if (r != 0)
        return r;
    k2a_redis_wait_t w = {0};
    if ((r = k2a_redis_cmd_wait(s, 6, argv, &w)) != 0)
        return r;
    *count = w.integer;
    return 0;
}
