/*
 * Shared by the pool micro-benchmarks (pool_bench.c, sticky_bench.c): a token store in memory holding a snapshot in
 * which every account has a fresh access token, the store key of an account, a pool made on it, and a monotonic clock.
 * Header-only: each benchmark is one source file (bench/CMakeLists.txt).
 */
#ifndef K2A_BENCH_POOL_H
#define K2A_BENCH_POOL_H

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/buf.h"
#include "core/coro.h"
#include "core/log.h"
#include "pool/internal.h"
#include "pool/pool.h"
#include "pool/store.h"

typedef struct st_bench_store_t {
    k2a_pool_store_t super;
    k2a_buf_t snap;
} bench_store_t;

static int b_load(k2a_pool_store_t *st, k2a_pool_snapshot_t *out, char *err, size_t errlen)
{
    bench_store_t *b = (bench_store_t *)st;
    return k2a_pool_snapshot_decode(b->snap.base, b->snap.len, out, err, errlen);
}

static int b_save(k2a_pool_store_t *st, k2a_buf_t *json, k2a_pool_store_saved_cb cb, void *data)
{
    k2a_buf_dispose(json);
    cb(data, 0);
    return 0;
}

static int b_save_sync(k2a_pool_store_t *st, const k2a_buf_t *json)
{
    return 0;
}

static void b_destroy(k2a_pool_store_t *st)
{
    bench_store_t *b = (bench_store_t *)st;
    k2a_buf_dispose(&b->snap);
    free(b);
}

static void key_of(const char *rt, char out[65])
{
    unsigned char md[32];
    unsigned n;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    EVP_DigestUpdate(c, "Social:", 7);
    EVP_DigestUpdate(c, rt, strlen(rt));
    EVP_DigestFinal_ex(c, md, &n);
    EVP_MD_CTX_free(c);
    for (int i = 0; i < 32; ++i)
        sprintf(out + 2 * i, "%02x", md[i]);
}

/* A pool of n accounts with fresh tokens from the in-memory store (no network); max_sessions: the sticky table's cap (0: the
 * default). *auth_out receives the KIRO_AUTH_TOKEN text (malloc'd) the pool was made with. Exits on an error. */
static k2a_pool_t *make_pool(uv_loop_t *loop, size_t n, k2a_pool_strategy_t strategy, size_t max_sessions, char **auth_out)
{
    bench_store_t *b = calloc(1, sizeof(*b));
    b->super.name = "bench";
    b->super.load = b_load;
    b->super.save = b_save;
    b->super.save_sync = b_save_sync;
    b->super.destroy = b_destroy;
    k2a_pool_snapshot_t s = {calloc(n, sizeof(k2a_account_snapshot_t)), n, 0};
    k2a_buf_t auth = K2A_BUF_INIT(0);
    k2a_buf_appendstr(&auth, "[");
    int64_t now = k2a_pool_now_ms();
    for (size_t i = 0; i < n; ++i) {
        char rt[64], at[96];
        snprintf(rt, sizeof(rt), "bench-refresh-token-%zu", i);
        snprintf(at, sizeof(at), "bench-access-token-%zu-aoaAAAAAGhvZGVsbG8gd29ybGQgdGhpcyBpcyBhIHRva2Vu", i);
        k2a_buf_appendf(&auth, "%s{\"refreshToken\":\"%s\",\"description\":\"acct%zu\"}", i ? "," : "", rt, i);
        key_of(rt, s.accounts[i].key);
        s.accounts[i].refresh_token = strdup(rt);
        s.accounts[i].access_token = strdup(at);
        s.accounts[i].profile_arn = strdup("arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK");
        s.accounts[i].expires_at_ms = now + 3600 * 1000;
        s.accounts[i].expires_in_s = 3600;
        snprintf(s.accounts[i].state, sizeof(s.accounts[i].state), "ok");
    }
    k2a_buf_appendstr(&auth, "]");
    k2a_pool_snapshot_encode(&s, &b->snap);
    k2a_pool_snapshot_dispose(&s);
    k2a_pool_config_t pc;
    k2a_pool_config_init(&pc);
    pc.auth_token = k2a_buf_cstr(&auth);
    pc.strategy = strategy;
    if (max_sessions != 0)
        pc.sticky_max_sessions = max_sessions;
    pc.warmup = false;
    pc.usage_poll_interval_s = 0;
    pc.api_base = "http://127.0.0.1:1";
    pc.social_refresh_url = "http://127.0.0.1:1/refreshToken";
    pc.idc_refresh_url = "http://127.0.0.1:1/token";
    k2a_pool_t *p;
    char err[256];
    if (k2a_pool_create(loop, NULL, &pc, &b->super, &p, err, sizeof(err)) != 0) {
        fprintf(stderr, "create: %s\n", err);
        exit(1);
    }
    *auth_out = auth.base;
    return p;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Logs errors only, initialises loop and the coroutine runtime on it; returns 0, or -1 when the runtime cannot start. */
static int bench_loop_init(uv_loop_t *loop)
{
    k2a_log_configure(K2A_LOG_ERROR, K2A_LOG_TEXT, true, NULL);
    uv_loop_init(loop);
    return k2a_coro_runtime_init(loop, NULL) != 0 ? -1 : 0;
}

#endif
