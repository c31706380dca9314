/*
 * The pool's durable state behind one small interface: load a snapshot at start, save a snapshot after
 * changes. The default backend is a JSON file written atomically off the loop (uv_queue_work: temp file
 * in the same directory, write, fsync, rename, fsync the directory; mode 0600; parent created 0700);
 * a shared store (Redis) for several replicas is another implementation of the same three functions.
 *
 * A snapshot is plain data: one record per account, matched by a stable key (sha256 hex of the auth kind
 * and the ORIGINALLY configured refresh token), since the refresh token itself may have rotated.
 */
#ifndef K2A_POOL_STORE_H
#define K2A_POOL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "core/buf.h"

typedef struct st_k2a_account_snapshot_t {
    char key[65];          /* 64 lowercase hex digits */
    char *refresh_token;   /* the current (possibly rotated) refresh token; never NULL */
    char *access_token;    /* NULL when none */
    char *profile_arn;     /* NULL when unknown */
    int64_t expires_at_ms; /* access token expiry (wall clock ms), 0 = none */
    int64_t expires_in_s;  /* its lifetime as granted */
    int64_t refreshed_at_ms;
    char state[16];   /* "ok" | "cooling" | "exhausted" | "invalid" | "disabled" */
    int64_t until_ms; /* end of cooling/exhausted, 0 = none */
    char *reason;     /* NULL when none */
    bool usage_known;
    double credits_remaining, credits_limit, credits_consumed;
    int64_t next_reset_ms;
    uint64_t requests, errors;
    int64_t in_tokens, out_tokens;
    int64_t last_used_ms;
    uint64_t rt_version; /* rotations of the refresh token counted by the gateway (0 = as configured) */
    char *catalog;       /* the account's model catalog (pool/catalog.h k2a_catalog_encode), NULL when unknown */
} k2a_account_snapshot_t;

typedef struct st_k2a_pool_snapshot_t {
    k2a_account_snapshot_t *accounts;
    size_t n;
    int64_t saved_at_ms;
} k2a_pool_snapshot_t;

void k2a_pool_snapshot_dispose(k2a_pool_snapshot_t *s);
/* The record with this key, or NULL. */
const k2a_account_snapshot_t *k2a_pool_snapshot_find(const k2a_pool_snapshot_t *s, const char *key);

/* JSON encoding of a snapshot (the file format, also usable as a Redis value):
 *   {"version":1,"saved_at":<ms>,"accounts":[{"key":"<hex>","refresh_token":"..","access_token":"..",
 *    "profile_arn":"..","expires_at":<ms>,"expires_in":<s>,"refreshed_at":<ms>,"state":"exhausted","until":<ms>,
 *    "reason":"..","usage_known":true,"credits_remaining":1.5,"credits_limit":550,"credits_consumed":0.2,
 *    "next_reset":<ms>,"requests":1,"errors":0,"in_tokens":0,"out_tokens":0,"last_used":<ms>,"rt_version":<n>,"catalog":"{..}"}]}
 * Unknown keys are ignored on decode; a record without key or refresh_token is skipped. decode returns 0 or
 * K2A_ECONFIG with a message in err (not JSON, wrong shape, unknown version). */
int k2a_pool_snapshot_encode(const k2a_pool_snapshot_t *s, k2a_buf_t *out);
int k2a_pool_snapshot_decode(const char *json, size_t len, k2a_pool_snapshot_t *out, char *err, size_t errlen);

typedef struct st_k2a_pool_store_t k2a_pool_store_t;
struct st_k2a_account_t;
struct st_k2a_pool_t;
struct st_k2a_verdict_t;
/* refresh_begin: another replica's token was adopted */
#define K2A_STORE_ADOPTED 1
/* Called on the loop when a save finished: 0 when the snapshot is durable, else a negative K2A_E*. */
typedef void (*k2a_pool_store_saved_cb)(void *data, int result);

struct st_k2a_pool_store_t {
    const char *name; /* "file", "redis", ... for logs */
    /* Loads the last snapshot. Blocking is allowed (called once, at start-up). Returns 0, K2A_ENOTFOUND (nothing stored
     * yet), or an error with a message in err: K2A_ECONFIG for a corrupt snapshot (the pool then warns and starts from the
     * configuration), anything else is fatal. */
    int (*load)(k2a_pool_store_t *st, k2a_pool_snapshot_t *out, char *err, size_t errlen);
    /* Starts saving the encoded snapshot without blocking the loop; takes ownership of json (its buffer is disposed by the
     * store). At most one save is in flight (the pool serialises them); on_saved runs later on the loop. Returns 0 or an
     * error (on_saved is then not called). */
    int (*save)(k2a_pool_store_t *st, k2a_buf_t *json, k2a_pool_store_saved_cb on_saved, void *data);
    /* Saves synchronously (shutdown). Returns 0 or an error. */
    int (*save_sync)(k2a_pool_store_t *st, const k2a_buf_t *json);
    /* Optional (NULL: the store keeps snapshots only). A transition of pool/acct_state.h changed part of an account (an OR
     * of K2A_ACCT_CHG_*); the store may publish it at once. Called on the pool's loop; must not block. */
    void (*changed)(k2a_pool_store_t *st, struct st_k2a_account_t *a, unsigned what);
    /* The remaining hooks are optional (NULL in the file store); a shared store implements them.
     * attach: the pool is created (accounts made); the store may start its connections and timers on the pool's loop. */
    void (*attach)(k2a_pool_store_t *st, struct st_k2a_pool_t *p);
    /* stop: the pool shuts down: close timers and connections (no more calls follow but destroy). */
    void (*stop)(k2a_pool_store_t *st);
    /* In the refresh coroutine, before a refresh: takes the account's refresh lock shared by every replica. Returns 0 (go
     * ahead: the lock is held, or the store is unavailable and the refresh is local), K2A_STORE_ADOPTED (another replica
     * refreshed meanwhile: its token is adopted, no refresh needed) or K2A_ECANCELED. */
    int (*refresh_begin)(k2a_pool_store_t *st, struct st_k2a_account_t *a);
    /* After a refresh that refresh_begin let go (result 0 or its K2A_E*, verdict v which the store may soften): makes the
     * new token durable in the store, announces it and releases the lock. In the refresh coroutine. */
    void (*refresh_end)(k2a_pool_store_t *st, struct st_k2a_account_t *a, int result, struct st_k2a_verdict_t *v);
    /* NULL for a local store, else "ok" or "unavailable" (readiness, dashboard). */
    const char *(*shared_status)(k2a_pool_store_t *st);
    /* Frees the store; no save may be in flight. */
    void (*destroy)(k2a_pool_store_t *st);
};

/* The file backend. path is copied. Returns NULL on out of memory. */
k2a_pool_store_t *k2a_pool_file_store_create(uv_loop_t *loop, const char *path);
/* Writes data to path atomically (temp file in the same directory, write, fsync, rename, fsync the directory), mode 0600,
 * creating the parent directory (mode 0700) when missing. Blocking. Returns 0 or K2A_EIO (errno kept). */
int k2a_pool_write_file_atomic(const char *path, const char *data, size_t len);

#endif
