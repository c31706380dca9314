/*
 * Session-sticky routing micro-benchmark (issue 22): the pool's per-request cost with KIRO_POOL_STRATEGY=sticky, i.e.
 * one k2a_pool_acquire (session lookup in the sticky table, usability check, or a new pick + pin) + k2a_pool_release,
 * with 10 000 tracked sessions, for 1 and 50 accounts; also new sessions at the table's cap (each pins one and evicts
 * the least recently used), 50 accounts with 49 cooling (their sessions move once, then hit), and the session key
 * itself (SHA-256 of the session name, k2a_sticky_key). Tokens come from an in-memory store: no network.
 *
 * Usage: bench_sticky [seconds per measurement, default 0.5]
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/buf.h"
#include "core/coro.h"
#include "core/errors.h"
#include "core/log.h"
#include "pool/health.h"
#include "pool/internal.h"
#include "pool/pool.h"
#include "pool/sticky.h"
#include "pool/store.h"
#include "bench_pool.h"

#define SESSIONS 10000

static uint64_t key_n(uint64_t i)
{
    return (i + 1) * 0x9E3779B97F4A7C15ULL; /* distinct, non-zero, spread like hashes */
}

/* ns per acquire + release; session i of `span` keys starting at `base` per request (one run) */
static double measure_once(k2a_pool_t *p, double seconds, uint64_t *next, uint64_t span)
{
    k2a_pool_exclude_t ex;
    uint64_t ops = 0;
    double start = now_s(), el;
    do {
        for (int i = 0; i < 1000; ++i) {
            ex.n = 0;
            ex.model = NULL;
            ex.why = NULL;
            ex.session = key_n(span != 0 ? *next % span : *next);
            ++*next;
            k2a_lease_t l;
            if (k2a_pool_acquire(p, &ex, NULL, NULL, &l, NULL) != 0)
                abort();
            k2a_pool_release(&l);
        }
        ops += 1000;
    } while ((el = now_s() - start) < seconds);
    return el * 1e9 / (double)ops;
}

static double measure(k2a_pool_t *p, double seconds, uint64_t *next, uint64_t span)
{
    double best = 1e18;
    for (int i = 0; i < 5; ++i) {
        double r = measure_once(p, seconds / 5, next, span);
        if (r < best)
            best = r;
    }
    return best;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 0.5;
    uv_loop_t loop;
    if (bench_loop_init(&loop) != 0)
        return 1;
    printf("sticky: acquire + release, ns per request, best of 5 runs, %d tracked sessions (fresh tokens; includes copying "
           "the access token and profileArn into the lease)\n\n",
           SESSIONS);
    printf("%-10s %14s %26s %22s\n", "accounts", "session hits", "new sessions (LRU evict)", "hits, 49 of 50 cooling");
    size_t sizes[] = {1, 50};
    for (int s = 0; s < 2; ++s) {
        double r[3] = {0, 0, 0};
        char *auth;
        k2a_pool_t *p = make_pool(&loop, sizes[s], K2A_POOL_STICKY, SESSIONS, &auth);
        uint64_t next = 0;
        measure_once(p, 0.05, &next, SESSIONS); /* pins the 10 000 sessions */
        if (p->sticky.n != SESSIONS)
            abort();
        r[0] = measure(p, seconds, &next, SESSIONS);
        uint64_t fresh = SESSIONS; /* keys never seen: each request pins one, the cap evicts the least recently used */
        r[1] = measure(p, seconds, &fresh, 0);
        if (p->sticky.n != SESSIONS)
            abort();
        if (sizes[s] == 50) {
            next = 0;
            measure_once(p, 0.05, &next, SESSIONS); /* the 10 000 sessions again, spread over the 50 */
            for (size_t i = 0; i < 49; ++i) {
                k2a_verdict_t v;
                k2a_pool_classify(0, 429, "", 0, &v);
                k2a_account_apply_verdict(p->accounts[i], &v, p->accounts[i]->token_gen);
            }
            r[2] = measure(p, seconds, &next, SESSIONS);
        }
        k2a_pool_shutdown(p);
        k2a_pool_destroy(p);
        free(auth);
        if (sizes[s] == 50)
            printf("%-10zu %14.1f %26.1f %22.1f\n", sizes[s], r[0], r[1], r[2]);
        else
            printf("%-10zu %14.1f %26.1f %22s\n", sizes[s], r[0], r[1], "-");
    }
    /* the session key of a request (SHA-256 over the session name) */
    static const char name[] = "3f6c2c1e-8d7b-4b7e-9a51-2f0c1d7e9b44";
    uint64_t sink = 0, ops = 0;
    double best = 1e18;
    for (int run = 0; run < 5; ++run) {
        double start = now_s(), el;
        ops = 0;
        do {
            for (int i = 0; i < 1000; ++i)
                sink += k2a_sticky_key(k2a_str(name, sizeof(name) - 1), K2A_STR_NULL, 0);
            ops += 1000;
        } while ((el = now_s() - start) < seconds / 5);
        if (el * 1e9 / (double)ops < best)
            best = el * 1e9 / (double)ops;
    }
    printf("\nsession key (k2a_sticky_key, SHA-256 of a 36-byte session id): %.1f ns (%llu)\n", best,
           (unsigned long long)(sink & 1));
    k2a_coro_runtime_dispose();
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 0;
}
