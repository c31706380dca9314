/*
 * What store_redis.c shares with store_redis_counter.c: the store's structure and the command a coroutine waits for.
 */
#ifndef K2A_POOL_STORE_REDIS_INTERNAL_H
#define K2A_POOL_STORE_REDIS_INTERNAL_H

#include <hiredis/async.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include "core/coro.h"
#include "pool/store_redis.h"

#define PREFIX_MAX 128

struct st_k2a_pool_t;
struct st_k2a_redis_keyq_t;

typedef struct st_k2a_redis_store_t {
    k2a_pool_store_t base;
    k2a_pool_store_t *inner; /* the file store, or NULL */
    uv_loop_t *loop;
    struct st_k2a_pool_t *pool;
    k2a_redis_url_t url;
    char prefix[PREFIX_MAX];
    uint32_t resync_ms, lock_ms;
    char replica[17];
    redisAsyncContext *cmd, *sub;
    bool cmd_up, sub_up, up, ever_up, stopping;
    bool warned_initial, auth_failed;
    uint64_t attached_at; /* uv_now */
    int64_t started_ms;   /* wall clock at attach */
    unsigned fail_n;
    uv_timer_t reconnect_timer, resync_timer, done_timer, connect_timer, counters_timer, charge_timer;
    struct st_k2a_redis_keyq_t *keyq; /* client keys' usage and slot releases waiting to be written (store_redis_keys.c) */
    bool timers_open;
    /* a save without a file store completes on the next tick */
    k2a_pool_store_saved_cb done_cb;
    void *done_data;
} k2a_redis_store_t;

/* A reply's gist, for a coroutine that waited for it. */
typedef struct st_k2a_redis_wait_t {
    k2a_coro_t *co;
    bool done;
    int type;
    long long integer;
    long long integer2;
    bool ok; /* a +OK status */
} k2a_redis_wait_t;

#define K2A_REDIS_ARGV_MAX 24
/* In a coroutine: sends argv (at most K2A_REDIS_ARGV_MAX arguments) and waits for the answer; *out gets what the reply said.
 * Returns 0, K2A_ESTORE_UNAVAILABLE (down, or an error reply) or K2A_ECANCELED. */
int k2a_redis_cmd_wait(k2a_redis_store_t *s, int argc, const char **argv, k2a_redis_wait_t *out);
/* The same with a command already in the protocol's form (cmd, len bytes: "*<n>\r\n$<len>\r\n<arg>\r\n..."). */
int k2a_redis_cmd_wait_resp(k2a_redis_store_t *s, const char *cmd, size_t len, k2a_redis_wait_t *out);
/* store_redis_keys.c: the queue of client-key usage and releases (created with the store; NULL when out of memory, then
 * every charge is written at once), written by k2a_redis_keys_flush on the pool's loop (the charge timer, shutdown). */
struct st_k2a_redis_keyq_t *k2a_redis_keyq_new(void);
void k2a_redis_keyq_free(struct st_k2a_redis_keyq_t *q);
void k2a_redis_keys_flush(k2a_redis_store_t *s);
/* The connection is up: loads the scripts (EVALSHA then finds them; the connection keeps the order). */
void k2a_redis_keys_up(k2a_redis_store_t *s);
/* True when st is the Redis store. */
bool k2a_redis_is_store(const k2a_pool_store_t *st);

#endif
