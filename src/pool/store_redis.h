/*
 * The shared store (KIRO_REDIS_URL): several gateway replicas keep one account pool in Redis. It is a store.h backend
 * that wraps the file store (the local snapshot stays, so a rotated refresh token is on disk even while Redis is down)
 * and adds what a shared pool needs: every transition of pool/acct_state.h is written to the account's hash and
 * announced on a pub/sub channel, other replicas' announcements (and a periodic resync) are applied to the in-memory
 * copy, and refreshes are single-flight across replicas (a lock per account).
 *
 * Keys (P = KIRO_REDIS_PREFIX):
 *   P acct:<key>   hash: rt rtv (refresh token, rotation version), at atexp atin atref (access token, expiry ms,
 *                  lifetime s, obtained ms), arn, st until reason stts (state, its end, why, when set), uk cr cl nr
 *                  (usage), cat (catalog JSON), req err in out cc (counters, incremented)
 *   P lock:<key>   the refresh lock: SET NX PX with a random value, released by compare-and-delete
 *   P events       channel: "<replica> <what> <key>" after every write
 *   P rl:<name>    a windowed counter (k2a_redis_counter_incr)
 * A refresh token is written only when its version is newer than the stored one (Lua compare-version-and-set), an
 * access token only when it expires later than the stored one, a state only when it was set later: a stale writer never
 * overwrites newer data, and writes queued while Redis was down are replayed on reconnect under the same rules.
 */
#ifndef K2A_POOL_STORE_REDIS_H
#define K2A_POOL_STORE_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "pool/store.h"

typedef struct st_k2a_redis_url_t {
    char host[256];
    int port;
    char password[256]; /* "" = no AUTH */
    int db;
} k2a_redis_url_t;

/* Parses redis://[:password@]host[:port][/db] (also redis://user:password@host, the user being ignored; port 6379, db 0
 * by default; IPv6 hosts in brackets). Returns 0 or K2A_ECONFIG with a one-line message in err (the password never in it). */
int k2a_redis_url_parse(const char *url, k2a_redis_url_t *out, char *err, size_t errlen);

/* What to take from another replica's record: the refresh token when its rotation version is newer than ours, the
 * access token when it expires later than ours (and is not expired), the state when it was set later than ours. */
enum { K2A_REDIS_TAKE_RT = 1, K2A_REDIS_TAKE_AT = 2, K2A_REDIS_TAKE_STATE = 4 };
unsigned k2a_redis_merge(uint64_t my_rtv, uint64_t their_rtv, int64_t my_atexp, int64_t their_atexp, int64_t my_stts,
                         int64_t their_stts, int64_t now);

typedef struct st_k2a_redis_store_config_t {
    const char *url;    /* KIRO_REDIS_URL */
    const char *prefix; /* KIRO_REDIS_PREFIX */
    uint32_t resync_ms; /* KIRO_REDIS_RESYNC_MS: full re-read of every account */
    uint32_t lock_ms;   /* refresh lock lifetime */
} k2a_redis_store_config_t;

/* Creates the shared store around inner (the file store, or NULL when KIRO_STATE_FILE is off; taken). Connects only when
 * the pool attaches. Returns 0 or K2A_ECONFIG (bad URL, message in err) / K2A_ENOMEM. */
int k2a_pool_redis_store_create(uv_loop_t *loop, const k2a_redis_store_config_t *cfg, k2a_pool_store_t *inner,
                                k2a_pool_store_t **out, char *err, size_t errlen);

/* A windowed counter shared by every replica (client-key limits): INCRBY by n, the window (ms) set on the first
 * increment; cb gets the count after the increment and the window's remaining ms, or err K2A_ESTORE_UNAVAILABLE. Runs on
 * the pool's loop. Returns 0 or K2A_ESTORE_UNAVAILABLE (cb not called). */
typedef void (*k2a_redis_counter_cb)(void *data, int err, int64_t count, int64_t ttl_ms);
int k2a_redis_counter_incr(k2a_pool_store_t *st, const char *name, int64_t n, int64_t window_ms, k2a_redis_counter_cb cb,
                           void *data);
/* The same in a coroutine (waits for the answer). Returns 0 with *count, or K2A_ESTORE_UNAVAILABLE / K2A_ECANCELED. */
int k2a_redis_counter_incr_wait(k2a_pool_store_t *st, const char *name, int64_t n, int64_t window_ms, int64_t *count);

#endif
