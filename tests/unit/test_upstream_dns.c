/*
 * The upstream resolver against tests/unit/upstream_servers/fake_dns.py on 127.0.0.1 (never the
 * machine's resolver): IP literals short-circuit, A + AAAA answers, the TTL cache (hit within the TTL,
 * re-query after it, capped by dns_max_ttl_s, bounded in entries), one query for concurrent lookups,
 * NXDOMAIN, a server that never answers (timeout), cancellation, and whole requests by name.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include "core/errors.h"
#include "upstream/internal.h"
#include "upstream_test.h"

#define MARGIN_MS 2500

static uv_loop_t loop;
static ut_proc_t dnsd;
static k2a_upstream_config_t cfg;
static k2a_upstream_stats_t stats;
static dns_t *dns;
static char servers[64];

static int start_dns(const char *const *args)
{
    if (ut_proc_start(&dnsd, "fake_dns.py", args) != 0)
        return -1;
    snprintf(servers, sizeof(servers), "127.0.0.1:%d", dnsd.port);
    cfg.dns_servers = servers;
    return 0;
}

static int setup(void **state)
{
    uv_loop_init(&loop);
    assert_int_equal(k2a_coro_runtime_init(&loop, NULL), 0);
    k2a_upstream_config_init(&cfg);
    memset(&stats, 0, sizeof(stats));
    dns = NULL;
    const char *args[] = {"--a",    "upstream.test=127.0.0.1",
                          "--aaaa", "upstream.test=::1",
                          "--a",    "two.test=127.0.0.2",
                          "--a",    "two.test=127.0.0.3",
                          "--a",    "a.test=127.0.0.1",
                          "--a",    "b.test=127.0.0.1",
                          "--a",    "c.test=127.0.0.1",
                          "--drop", "slow.test",
                          "--ttl",  "1",
                          "--a",    "fallback.test=127.0.0.2",
                          "--a",    "fallback.test=127.0.0.1",
                          NULL};
    assert_int_equal(start_dns(args), 0);
    return 0;
}

static int teardown(void **state)
{
    if (dns != NULL)
        k2a_up_dns_destroy(dns);
    dns = NULL;
    uv_run(&loop, UV_RUN_DEFAULT);
    k2a_coro_runtime_dispose();
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    ut_proc_stop(&dnsd);
    return 0;
}

static void make_dns(void)
{
    assert_int_equal(k2a_up_dns_create(&loop, &cfg, &stats, &dns), 0);
}

typedef struct st_lookup_t {
    const char *names[6];
    uint32_t sleep_before_ms[6];
    int rc[6];
    dns_addrs_t addrs[6];
    uint64_t elapsed[6];
    uint32_t timeout_ms;
    k2a_coro_t *co;
    int done;
} lookup_t;

static void lookup_fn(k2a_coro_t *co, void *arg)
{
    lookup_t *l = arg;
    l->co = co;
    for (int i = 0; i < 6 && l->names[i] != NULL; ++i) {
        if (l->sleep_before_ms[i] != 0)
            k2a_coro_sleep(l->sleep_before_ms[i]);
        uint64_t start = ut_now_ms();
        l->rc[i] = k2a_up_dns_resolve(dns, l->names[i], 443, &l->addrs[i], l->timeout_ms != 0 ? l->timeout_ms : 2000);
        l->elapsed[i] = ut_now_ms() - start;
    }
    l->done = 1;
}

static void test_literals_short_circuit(void **state)
{
    make_dns();
    lookup_t l = {.names = {"127.0.0.1", "::1"}};
    ut_run(&loop, lookup_fn, &l);
    assert_int_equal(l.rc[0], 0);
    assert_int_equal(l.addrs[0].n, 1);
    assert_int_equal(l.addrs[0].addr[0].sa.sa_family, AF_INET);
    assert_int_equal(ntohs(l.addrs[0].addr[0].in.sin_port), 443);
    assert_int_equal(l.rc[1], 0);
    assert_int_equal(l.addrs[1].addr[0].sa.sa_family, AF_INET6);
    assert_int_equal(ut_proc_stat(&dnsd, "queries"), 0);
    assert_int_equal(stats.dns_cache_misses, 0);
}

static void test_a_and_aaaa(void **state)
{
    make_dns();
    lookup_t l = {.names = {"upstream.test", "two.test"}};
    ut_run(&loop, lookup_fn, &l);
    assert_int_equal(l.rc[0], 0);
    assert_int_equal(l.addrs[0].n, 2);
    int v4 = 0, v6 = 0;
    for (size_t i = 0; i < l.addrs[0].n; ++i) {
        const k2a_sockaddr_t *a = &l.addrs[0].addr[i];
        if (a->sa.sa_family == AF_INET) {
            ++v4;
            assert_int_equal(ntohl(a->in.sin_addr.s_addr), 0x7f000001);
            assert_int_equal(ntohs(a->in.sin_port), 443);
        } else {
            ++v6;
            assert_true(IN6_IS_ADDR_LOOPBACK(&a->in6.sin6_addr));
            assert_int_equal(ntohs(a->in6.sin6_port), 443);
        }
    }
    assert_int_equal(v4, 1);
    assert_int_equal(v6, 1);
    assert_int_equal(l.rc[1], 0);
    assert_int_equal(l.addrs[1].n, 2);                        /* two A records, no AAAA */
    assert_true(ut_proc_stat(&dnsd, "q_upstream.test") >= 2); /* A and AAAA */
}

static void test_ttl_cache(void **state)
{
    make_dns();
    /* TTL 1 s: a second lookup right away is served from the cache, one after 1.1 s queries again */
    lookup_t l = {.names = {"upstream.test", "UPSTREAM.test"}};
    ut_run(&loop, lookup_fn, &l);
    assert_int_equal(l.rc[0], 0);
    assert_int_equal(l.rc[1], 0);
    assert_int_equal(l.addrs[1].n, 2);
    long after_two = ut_proc_stat(&dnsd, "q_upstream.test");
    assert_true(after_two >= 2);
    assert_int_equal(stats.dns_cache_misses, 1);
    assert_int_equal(stats.dns_cache_hits, 1);
    assert_int_equal(stats.dns_queries, 1);

    lookup_t l2 = {.names = {"upstream.test"}, .sleep_before_ms = {1100}};
    ut_run(&loop, lookup_fn, &l2);
    assert_int_equal(l2.rc[0], 0);
    assert_true(ut_proc_stat(&dnsd, "q_upstream.test") > after_two);
    assert_int_equal(stats.dns_cache_misses, 2);
    assert_int_equal(stats.dns_queries, 2);
}

static void test_max_ttl_caps_cache(void **state)
{
    ut_proc_stop(&dnsd);
    const char *args[] = {"--a", "upstream.test=127.0.0.1", "--ttl", "3600", NULL};
    assert_int_equal(start_dns(args), 0);
    cfg.dns_max_ttl_s = 1;
    make_dns();
    lookup_t l = {.names = {"upstream.test", "upstream.test", "upstream.test"}, .sleep_before_ms = {0, 0, 1100}};
    ut_run(&loop, lookup_fn, &l);
    for (int i = 0; i < 3; ++i)
        assert_int_equal(l.rc[i], 0);
    assert_int_equal(stats.dns_cache_hits, 1);
    assert_int_equal(stats.dns_queries, 2); /* the hour-long TTL was capped at one second */
}

static void test_cache_bounded(void **state)
{
    cfg.dns_cache_max = 2;
    make_dns();
    /* a and b fill the cache; c evicts the entry that expires first (a); then b hits and a misses */
    lookup_t l = {.names = {"a.test", "b.test", "c.test", "b.test", "a.test"}, .sleep_before_ms = {0, 10, 10, 0, 0}};
    ut_run(&loop, lookup_fn, &l);
    for (int i = 0; i < 5; ++i)
        assert_int_equal(l.rc[i], 0);
    assert_int_equal(stats.dns_queries, 4);
    assert_int_equal(stats.dns_cache_hits, 1);
}

static void test_etc_hosts_first(void **state)
{
    /* "localhost" comes from /etc/hosts (lookups "fb"): the DNS server is never asked */
    FILE *f = fopen("/etc/hosts", "r");
    char line[512];
    bool has = false;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "127.0.0.1", 9) == 0 && strstr(line, "localhost") != NULL)
            has = true;
    if (f != NULL)
        fclose(f);
    if (!has)
        skip();
    make_dns();
    lookup_t l = {.names = {"localhost"}};
    ut_run(&loop, lookup_fn, &l);
    assert_int_equal(l.rc[0], 0);
    assert_true(l.addrs[0].n >= 1);
    assert_int_equal(ut_proc_stat(&dnsd, "queries"), 0);
}

static void test_nxdomain(void **state)
{
    make_dns();
    lookup_t l = {.names = {"nothing.test"}};
    ut_run(&loop, lookup_fn, &l);
    assert_int_equal(l.rc[0], K2A_EDNS);
    assert_true(l.elapsed[0] < 2000);
}

static void test_timeout(void **state)
{
    cfg.dns_timeout_ms = 300;
    make_dns();
    lookup_t l = {.names = {"slow.test"}, .timeout_ms = 300};
    ut_run(&loop, lookup_fn, &l);
    assert_int_equal(l.rc[0], K2A_EDNS_TIMEOUT);
    assert_true(l.elapsed[0] >= 300 - 5);
    assert_true(l.elapsed[0] < 300 + MARGIN_MS);
    assert_true(ut_proc_stat(&dnsd, "q_slow.test") >= 1);
}

static void test_concurrent_lookups_share_a_query(void **state)
{
    make_dns();
    lookup_t a = {.names = {"upstream.test"}}, b = {.names = {"upstream.test"}};
    assert_int_equal(k2a_coro_spawn(lookup_fn, &a), 0);
    ut_run(&loop, lookup_fn, &b);
    while (!a.done)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(a.rc[0], 0);
    assert_int_equal(b.rc[0], 0);
    assert_int_equal(a.addrs[0].n, 2);
    assert_int_equal(b.addrs[0].n, 2);
    assert_int_equal(stats.dns_queries, 1);
    assert_int_equal(stats.dns_cache_misses, 2);
}

static void on_cancel(uv_timer_t *t)
{
    lookup_t *l = t->data;
    k2a_coro_cancel(l->co);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_cancel(void **state)
{
    make_dns();
    lookup_t l = {.names = {"slow.test"}, .timeout_ms = 5000};
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &l;
    uv_update_time(&loop);
    uv_timer_start(&t, on_cancel, 100, 0);
    ut_run(&loop, lookup_fn, &l);
    assert_int_equal(l.rc[0], K2A_ECANCELED);
    assert_true(l.elapsed[0] >= 100 - 5);
    assert_true(l.elapsed[0] < 100 + MARGIN_MS);
}

/* ---- whole requests by name ---- */

static ut_proc_t web;
static k2a_upstream_t *up;

typedef struct st_req_t {
    char urls[4][128];
    ut_result_t r[4];
} req_t;

static void req_fn(k2a_coro_t *co, void *arg)
{
    req_t *q = arg;
    for (int i = 0; i < 4 && q->urls[i][0] != '\0'; ++i)
        ut_fetch(up, "GET", q->urls[i], NULL, 0, NULL, &q->r[i]);
}

static void test_requests_by_name(void **state)
{
    assert_int_equal(ut_proc_start(&web, "http_server.py", NULL), 0);
    cfg.max_idle_per_origin = 0; /* every request connects, so every request resolves */
    assert_int_equal(k2a_upstream_create(&loop, &cfg, &up), 0);
    req_t q = {0};
    snprintf(q.urls[0], sizeof(q.urls[0]), "http://upstream.test:%d/ok", web.port);
    snprintf(q.urls[1], sizeof(q.urls[1]), "http://upstream.test:%d/ok", web.port);
    snprintf(q.urls[2], sizeof(q.urls[2]), "http://nothing.test:%d/ok", web.port);
    ut_run(&loop, req_fn, &q);
    /* upstream.test has ::1 and 127.0.0.1, the server listens on 127.0.0.1 only: refused on ::1 falls over to v4 */
    assert_int_equal(q.r[0].rc, 0);
    assert_int_equal(q.r[0].status, 200);
    assert_int_equal(q.r[1].rc, 0);
    assert_int_equal(q.r[2].rc, K2A_EDNS);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.dns_cache_hits, 1);
    assert_int_equal(st.dns_cache_misses, 2);
    assert_int_equal(st.requests[K2A_UPSTREAM_FAIL_DNS], 1);
    assert_int_equal(st.requests[K2A_UPSTREAM_OK], 2);
    for (int i = 0; i < 4; ++i)
        ut_result_dispose(&q.r[i]);

    /* happy-eyeballs-lite: 127.0.0.2 comes first and refuses (the server listens on 127.0.0.1 only), the next address
     * answers; two IPv4 addresses keep the DNS order through c-ares' RFC 6724 sort */
    req_t f = {0};
    snprintf(f.urls[0], sizeof(f.urls[0]), "http://fallback.test:%d/ok", web.port);
    ut_run(&loop, req_fn, &f);
    k2a_upstream_stats_t st2;
    k2a_upstream_get_stats(up, &st2);
    assert_int_equal(f.r[0].rc, 0);
    assert_int_equal(f.r[0].status, 200);
    assert_int_equal(st2.connect_failures - st.connect_failures, 1);
    ut_result_dispose(&f.r[0]);
    k2a_upstream_destroy(up);
    up = NULL;
    ut_proc_stop(&web);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_literals_short_circuit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_and_aaaa, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_ttl_caps_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_etc_hosts_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nxdomain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_lookups_share_a_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests_by_name, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
