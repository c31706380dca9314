/*
 * Session-sticky routing (issue 22): a client session stays on one account while that account is usable, moves only
 * when it is not (cooling, exhausted, invalid, lacking the model, over its pace, or failed in this request), and then
 * stays on the new one. A request that finds its account at its concurrency cap is served elsewhere without moving the
 * session (an overflow: parallel requests of one session must not make it hop). New sessions go to the least-loaded usable account
 * (KIRO_POOL_STRATEGY=sticky: fewest in-flight requests, least recently used first) or, with KIRO_POOL_STICKY=1 on top
 * of another strategy, to that strategy's pick.
 *
 * The session key is 64 bits of SHA-256 over the session's name: Claude Code's metadata.user_id (its session part),
 * x-claude-code-session-id, the OpenAI `user` field, else the client key (hashed: the key itself is never kept).
 *
 * The table (k2a_sticky_table_t) is a chained hash table with a least-recently-used list: a lookup, a pin and the
 * expiry of idle sessions (KIRO_STICKY_IDLE_S, a bounded number per call, oldest first) cost O(1); the number of
 * sessions is capped (KIRO_STICKY_MAX_SESSIONS), the least recently used one making room. It lives on the pool's loop
 * (every acquire runs there, core/xloop), so it needs no lock.
 */
#ifndef K2A_POOL_STICKY_H
#define K2A_POOL_STICKY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/str.h"

typedef struct st_k2a_sticky_entry_t {
    uint64_t key;
    struct st_k2a_sticky_entry_t *hnext;         /* hash chain */
    struct st_k2a_sticky_entry_t *newer, *older; /* LRU list */
    void *owner;                                 /* the account the session is pinned to */
    uint64_t seen_ms;                            /* last use (monotonic ms) */
} k2a_sticky_entry_t;

/* Called when a session's owner changes (from or to may be NULL): keeps the per-account session counts. */
typedef void (*k2a_sticky_owner_cb)(void *from, void *to);

typedef struct st_k2a_sticky_table_t {
    k2a_sticky_entry_t **buckets;
    size_t nbuckets; /* a power of two */
    size_t n, max;
    uint64_t idle_ms;
    k2a_sticky_entry_t lru; /* sentinel: lru.older is the most recent, lru.newer the least recent */
    k2a_sticky_owner_cb on_owner;
    uint64_t evicted, expired; /* sessions dropped by the cap / by idleness */
} k2a_sticky_table_t;

/* max sessions (>= 1), idle_ms after which an unused session is forgotten. Returns 0 or K2A_ENOMEM. */
int k2a_sticky_table_init(k2a_sticky_table_t *t, size_t max, uint64_t idle_ms, k2a_sticky_owner_cb on_owner);
void k2a_sticky_table_dispose(k2a_sticky_table_t *t);
/* Forgets the sessions idle at now (at most `budget` of them, oldest first). */
void k2a_sticky_table_expire(k2a_sticky_table_t *t, uint64_t now, size_t budget);
/* The session's entry (its use refreshed), or NULL. Expires a few idle sessions first. */
k2a_sticky_entry_t *k2a_sticky_table_get(k2a_sticky_table_t *t, uint64_t key, uint64_t now);
/* Pins the session to owner (inserting it, the least recently used session making room at the cap). Returns 0 or
 * K2A_ENOMEM. */
int k2a_sticky_table_pin(k2a_sticky_table_t *t, uint64_t key, void *owner, uint64_t now);
/* Drops every session pinned to owner (O(sessions): reloads only). */
void k2a_sticky_table_forget_owner(k2a_sticky_table_t *t, void *owner);

/* The session key of a request: from the first non-empty of session (metadata.user_id's session part or
 * x-claude-code-session-id) and user (metadata.user_id as sent, or the OpenAI `user` field), else client_key_id
 * (k2a_sticky_client_key of the key the client presented, 0 = none). */
uint64_t k2a_sticky_key(k2a_str_t session, k2a_str_t user, uint64_t client_key_id);
/* 64 bits of SHA-256 over a client key (the key itself is never kept); 0 for an empty key. */
uint64_t k2a_sticky_client_key(k2a_str_t key);
/* The same role from the SHA-256 of the key the router already computed (no second digest per request). */
uint64_t k2a_sticky_client_key_digest(const unsigned char digest[32]);

/* ---- the pool side (sticky.c), on the pool's loop ---- */

struct st_k2a_pool_t;
struct st_k2a_account_t;
struct st_k2a_pool_exclude_t;

/* True when the pool routes by session (KIRO_POOL_STRATEGY=sticky or KIRO_POOL_STICKY=1). */
bool k2a_sticky_enabled(const struct st_k2a_pool_t *p);
/* Picks the account for a request (replaces k2a_select_pick when sticky routing is on and the request has a session):
 * the session's account when usable, else a new one (pinned). ex->why tells which ("sticky hit", "moved: cooling",
 * "new: least-loaded", ...). *at_cap as k2a_select_pick. */
struct st_k2a_account_t *k2a_sticky_pick(struct st_k2a_pool_t *p, struct st_k2a_pool_exclude_t *ex, bool *at_cap);
/* Sessions currently pinned to the account. */
size_t k2a_sticky_sessions(const struct st_k2a_account_t *a);
int k2a_sticky_init(struct st_k2a_pool_t *p);
void k2a_sticky_dispose(struct st_k2a_pool_t *p);
/* The account leaves the pool (reload): its sessions are forgotten (they move on their next request). */
void k2a_sticky_forget_account(struct st_k2a_pool_t *p, struct st_k2a_account_t *a);

#endif
