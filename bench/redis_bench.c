/*
 * The shared store's cost on the request path (pool/store_redis.h), against a running redis-server:
 *   bench_redis redis://127.0.0.1:PORT/0 [N]
 * - a limit counter (k2a_redis_counter_incr: one EVAL of the windowed INCRBY script) awaited per request, one at a time:
 *   wall-clock latency and this process's CPU per increment;
 * - the same with 64 requests in flight (a busy replica);
 * - two stores (two replicas' connections) racing 400 increments on one counter limited to 50: exactly 50 admitted;
 * - the fire-and-forget counter flush of one account (4 HINCRBY + 1 HINCRBYFLOAT, no reply awaited; the store sends it once a
 *   second per account that served requests, never per request), CPU each.
 * Prints one line per figure; bench/RESULTS.md keeps a run.
 */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <uv.h>
#include "core/rand.h"
#include "pool/internal.h"
#include "pool/store_redis.h"
#include <hiredis/adapters/libuv.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

typedef struct st_run_t {
    uv_loop_t *loop;
    k2a_pool_store_t *st;
    const char *name;
    long todo, sent, done, admitted, limit, inflight_max, inflight;
    int err;
} run_t;

static void issue(run_t *r);

static void on_count(void *data, int err, int64_t count, int64_t ttl_ms)
{
    run_t *r = data;
    --r->inflight;
    ++r->done;
    if (err != 0)
        r->err = err;
    else if (r->limit > 0 && count <= r->limit)
        ++r->admitted;
    issue(r);
}

static void issue(run_t *r)
{
    while (r->sent < r->todo && r->inflight < r->inflight_max) {
        ++r->sent;
        ++r->inflight;
        if (k2a_redis_counter_incr(r->st, r->name, 1, 60000, on_count, r) != 0) {
            r->err = -1;
            --r->inflight;
            ++r->done;
        }
    }
}

static k2a_pool_store_t *open_store(uv_loop_t *loop, const char *url, k2a_pool_t **pool)
{
    char err[256];
    k2a_redis_store_config_t cfg = {.url = url, .prefix = "bench:", .resync_ms = 0, .lock_ms = 1000};
    k2a_pool_store_t *st = NULL;
    if (k2a_pool_redis_store_create(loop, &cfg, NULL, &st, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        exit(2);
    }
    *pool = calloc(1, sizeof(**pool)); /* an empty pool: the store only needs its loop and handle count */
    (*pool)->loop = loop;
    st->attach(st, *pool);
    double t0 = now_s();
    while (strcmp(st->shared_status(st), "ok") != 0) {
        uv_run(loop, UV_RUN_ONCE);
        if (now_s() - t0 > 5) {
            fprintf(stderr, "bench_redis: no connection to %s\n", url);
            exit(2);
        }
    }
    return st;
}

static void run_until_done(run_t **rs, int n)
{
    for (;;) {
        bool all = true;
        for (int i = 0; i < n; ++i)
            all &= rs[i]->done >= rs[i]->todo;
        if (all)
            return;
        uv_run(rs[0]->loop, UV_RUN_ONCE);
    }
}

static void on_reply_count(redisAsyncContext *c, void *reply, void *data)
{
    ++*(long *)data;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_redis redis://127.0.0.1:PORT/0 [N]\n");
        return 2;
    }
    long n = argc > 2 ? atol(argv[2]) : 20000;
    uv_loop_t *loop = uv_default_loop();
    k2a_pool_t *p1, *p2;
    k2a_pool_store_t *a = open_store(loop, argv[1], &p1), *b = open_store(loop, argv[1], &p2);
    char name[64];

    /* 1. one at a time */
    snprintf(name, sizeof(name), "serial-%llx", (unsigned long long)k2a_rand_u64());
    run_t r1 = {.loop = loop, .st = a, .name = name, .todo = n, .inflight_max = 1};
    run_t *rs[2] = {&r1};
    double c0 = cpu_s(), t0 = now_s();
    issue(&r1);
    run_until_done(rs, 1);
    double dt = now_s() - t0, dc = cpu_s() - c0;
    printf("counter, 1 in flight: %ld increments, %.1f us wall each, %.1f us gateway CPU each%s\n", n, dt / n * 1e6, dc / n * 1e6,
           r1.err ? " (errors)" : "");

    /* 2. 64 in flight */
    snprintf(name, sizeof(name), "busy-%llx", (unsigned long long)k2a_rand_u64());
    run_t r2 = {.loop = loop, .st = a, .name = name, .todo = n, .inflight_max = 64};
    rs[0] = &r2;
    c0 = cpu_s();
    t0 = now_s();
    issue(&r2);
    run_until_done(rs, 1);
    dt = now_s() - t0;
    dc = cpu_s() - c0;
    printf("counter, 64 in flight: %ld increments, %.0f per s, %.1f us gateway CPU each%s\n", n, n / dt, dc / n * 1e6,
           r2.err ? " (errors)" : "");

    /* 3. two replicas, one limit of 50 */
    snprintf(name, sizeof(name), "limit-%llx", (unsigned long long)k2a_rand_u64());
    run_t ra = {.loop = loop, .st = a, .name = name, .todo = 200, .inflight_max = 16, .limit = 50};
    run_t rb = {.loop = loop, .st = b, .name = name, .todo = 200, .inflight_max = 16, .limit = 50};
    rs[0] = &ra;
    rs[1] = &rb;
    issue(&ra);
    issue(&rb);
    run_until_done(rs, 2);
    printf("limit 50 over two replicas, 400 attempts: %ld admitted (%ld + %ld)\n", ra.admitted + rb.admitted, ra.admitted,
           rb.admitted);

    /* 4. the usage writes of one finished request, fire-and-forget (replies only counted) */
    k2a_redis_url_t u;
    char err[256];
    k2a_redis_url_parse(argv[1], &u, err, sizeof(err));
    redisAsyncContext *c = redisAsyncConnect(u.host, u.port);
    redisLibuvAttach(c, loop);
    long replies = 0, want = 0;
    redisAsyncCommand(c, on_reply_count, &replies, "PING");
    ++want;
    while (replies < want)
        uv_run(loop, UV_RUN_ONCE);
    long m = n / 5 > 0 ? n / 5 : 1;
    c0 = cpu_s();
    for (long i = 0; i < m; ++i) {
        redisAsyncCommand(c, on_reply_count, &replies, "HINCRBY bench:acct:x req 1");
        redisAsyncCommand(c, on_reply_count, &replies, "HINCRBY bench:acct:x in 12");
        redisAsyncCommand(c, on_reply_count, &replies, "HINCRBY bench:acct:x out 9");
        redisAsyncCommand(c, on_reply_count, &replies, "HINCRBY bench:acct:x err 0");
        redisAsyncCommand(c, on_reply_count, &replies, "HINCRBYFLOAT bench:acct:x cc 0.0123");
        want += 5;
        if (i % 64 == 63)
            while (replies < want - 256)
                uv_run(loop, UV_RUN_NOWAIT);
    }
    while (replies < want)
        uv_run(loop, UV_RUN_ONCE);
    dc = cpu_s() - c0;
    printf("counter flush of one account (5 commands, no reply awaited; once a second per account): %.1f us gateway CPU\n",
           dc / m * 1e6);
    redisAsyncCommand(c, NULL, NULL, "DEL bench:acct:x");
    redisAsyncDisconnect(c);

    a->stop(a);
    b->stop(b);
    for (int i = 0; i < 20; ++i)
        uv_run(loop, UV_RUN_NOWAIT);
    a->destroy(a);
    b->destroy(b);
    free(p1);
    free(p2);
    return ra.admitted + rb.admitted == 50 && !r1.err && !r2.err ? 0 : 1;
}
