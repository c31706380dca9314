/*
 * Client-key limits and usage shared by every replica through the shared store (KIRO_REDIS_URL): one Lua call per
 * admission checks and takes them all atomically; releases are written without waiting (batched: one wake of the
 * pool's loop for what several requests released), charges are added up per key and written every
 * K2A_SHARED_CHARGE_FLUSH_MS. Callable from any worker loop (the Redis connection lives on the pool's loop; the admission
 * goes there through xloop, releases and charges through a mutex-protected queue).
 *
 * Redis (P = KIRO_REDIS_PREFIX, <id> the key's id):
 *   P kc:<id>           sorted set: the requests in flight, member "<replica>:<n>", score = its lease's end (ms); a
 *                       slot not given back (its replica died) ends with its lease (K2A_SHARED_SLOT_LEASE_MS)
 *   P kr:<id>           sorted set: the admissions of the last 60 s (a sliding window, like the local one), score = ms
 *   P ku:<id>:<day>     hash: req err in out cr, the key's usage on a UTC day (days since 1970-01-01), kept 40 days
 *   P km:<id>:<month>   the key's credits of a UTC month (months since 1970-01), kept 62 days
 */
#ifndef K2A_POOL_STORE_REDIS_KEYS_H
#define K2A_POOL_STORE_REDIS_KEYS_H

#include <stdbool.h>
#include <stdint.h>

struct st_k2a_pool_t;

#define K2A_SHARED_SLOT_LEASE_MS (15 * 60 * 1000)
#define K2A_SHARED_SLOT_LEN 40
/* A key's usage (requests of keys without limits, errors, tokens, credits) is added up per key and day on each replica
 * and written at most this often (one script call for up to 64 keys); the admission's own count is not delayed. */
#define K2A_SHARED_CHARGE_FLUSH_MS 250

/* What was refused (the order of the checks: concurrency, rpm, credits per day, per month, tokens per day). */
enum {
    K2A_SHARED_OK = 0,
    K2A_SHARED_CONCURRENCY = 1,
    K2A_SHARED_RPM = 2,
    K2A_SHARED_CREDITS_DAY = 3,
    K2A_SHARED_CREDITS_MONTH = 4,
    K2A_SHARED_TOKENS_DAY = 5
};

typedef struct st_k2a_shared_admit_t {
    const char *id; /* the key's id */
    int64_t rpm, concurrency, tokens_day;
    double credits_day, credits_month;
    int64_t now_ms;     /* wall clock */
    int32_t day, month; /* UTC day and month of now_ms (keys.h k2a_keys_day_of / k2a_keys_month_of) */
} k2a_shared_admit_t;

/* The usage of a key on a UTC day as the shared store sums it. */
typedef struct st_k2a_shared_usage_t {
    int64_t requests, errors, input_tokens, output_tokens;
    double credits;
} k2a_shared_usage_t;

/* From a coroutine: checks and takes the key's limits in one Lua call. Returns 0 with *verdict (K2A_SHARED_*; on
 * K2A_SHARED_OK, slot receives the concurrency slot to give back) and *retry_ms, or K2A_ESTORE_UNAVAILABLE (no shared
 * store, or it is down: the caller uses its own counters) / K2A_ECANCELED. */
int k2a_shared_key_admit(struct st_k2a_pool_t *p, const k2a_shared_admit_t *a, int *verdict, int64_t *retry_ms,
                         char slot[K2A_SHARED_SLOT_LEN]);
/* From a loop thread: gives the slot back (slot "" = none) and counts an error when failed. Not waited for. */
void k2a_shared_key_release(struct st_k2a_pool_t *p, const char *id, const char *slot, bool failed, int32_t day);
/* From a loop thread: counts a request of a key without limits (its usage is summed all the same). Not waited for
 * (coalesced like a charge).
 * Returns whether the store is shared (then release and charge apply too). */
bool k2a_shared_key_count(struct st_k2a_pool_t *p, const char *id, int32_t day);
/* From a loop thread: adds what a request consumed to the key's day and month. Not waited for: written with the next
 * flush (K2A_SHARED_CHARGE_FLUSH_MS, and at shutdown). */
void k2a_shared_key_charge(struct st_k2a_pool_t *p, const char *id, int64_t input_tokens, int64_t output_tokens, double credits,
                           int32_t day, int32_t month);
/* From a coroutine: the key's usage on `ndays` UTC days from first_day on (out[0..ndays-1]). Returns 0 or
 * K2A_ESTORE_UNAVAILABLE / K2A_ECANCELED. */
int k2a_shared_key_usage(struct st_k2a_pool_t *p, const char *id, int32_t first_day, int ndays, k2a_shared_usage_t *out);

#endif
