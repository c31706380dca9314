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

#define SESSIONS 10000

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
    k2a_log_configure(K2A_LOG_ERROR, K2A_LOG_TEXT, true, NULL);
    uv_loop_t loop;
    uv_loop_init(&loop);
    if (k2a_coro_runtime_init(&loop, NULL) != 0)
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
