/*
 * Test helpers for the pool tests (test_pool.c, test_pool_pacing.c): an in-memory token store, the store key of an
 * account, a snapshot giving accounts rt-0..rt-(n-1) valid access tokens, the KIRO_AUTH_TOKEN JSON for them, and a
 * fixture (loop, coroutine runtime, upstream, pool on that store, no network: every URL is 127.0.0.1:1).
 */
#ifndef K2A_TESTS_POOL_FIXTURE_H
#define K2A_TESTS_POOL_FIXTURE_H

#include <stddef.h>
#include <uv.h>
#include "core/buf.h"
#include "pool/pool.h"
#include "pool/store.h"
#include "upstream/upstream.h"

/* A token store in memory: load decodes `initial` (K2A_ENOTFOUND when empty), saves land in `last`. */
typedef struct st_pf_mem_store_t {
    k2a_pool_store_t super;
    k2a_buf_t initial;
    k2a_buf_t last;
    int saves;
} pf_mem_store_t;

/* The store key of an account: hex SHA-256 of "<auth>:<refresh token>". */
void pf_key_of(const char *auth, const char *rt, char out[65]);
/* A memory store whose snapshot gives accounts rt-0..rt-(n-1) valid access tokens access-token-<i> (an hour left). */
pf_mem_store_t *pf_mem_store_with_tokens(size_t n);
/* [{"refreshToken":"rt-<i>","description":"acct<i>"}...] (malloc'd); extra: a JSON fragment added to account 0's entry
 * (e.g. ",\"rpm\":1"), or NULL. */
char *pf_accounts_json(size_t n, const char *extra);

typedef struct st_pf_fixture_t {
    uv_loop_t loop;
    k2a_upstream_t *up;
    k2a_pool_t *pool;
    pf_mem_store_t *store;
    char *auth;
} pf_fixture_t;

/* A pool of n accounts (pf_accounts_json(n, extra)) with strategy, base's settings (NULL: the defaults), no usage
 * polling, no warm-up, tokens from pf_mem_store_with_tokens(n). Fails the test when the pool cannot be created. */
void pf_fixture_start(pf_fixture_t *f, size_t n, k2a_pool_strategy_t strategy, const k2a_pool_config_t *base, const char *extra);
void pf_fixture_stop(pf_fixture_t *f);
/* Acquires outside a coroutine (valid tokens: no wait) and returns the account index; fails the test on an error. */
size_t pf_take_index(pf_fixture_t *f, k2a_lease_t *l);
/* Applies the verdict of an upstream answer with this HTTP status to account i (429: cooling, 402: exhausted...). */
void pf_cool(pf_fixture_t *f, size_t i, int status);

#endif
