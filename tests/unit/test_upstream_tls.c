/*
 * Upstream client over TLS against http_server.py --tls with a test CA made by the openssl CLI for this
 * run (SAN IP:127.0.0.1 and DNS:upstream.test; names come from fake_dns.py, never the machine's
 * resolver): verification on, wrong CA and wrong host name refused as K2A_ETLS_VERIFY, a non-TLS peer as
 * K2A_ETLS_HANDSHAKE, session resumption (per affinity key), pooling, big bodies, cancellation; and HTTPS through
 * connect_proxy.py with basic auth (wrong credentials -> K2A_EPROXY) and NO_PROXY.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/errors.h"
#include "upstream_test.h"

#define MARGIN_MS 2500

static char certs[256], ca[512], other_ca[512], cert[512], key[512];
static uv_loop_t loop;
static ut_proc_t srv, dnsd, proxy;
static k2a_upstream_t *up;
static k2a_upstream_config_t cfg;
static char dns_servers[64], proxy_url[256];

static int group_setup(void **state)
{
    if (ut_make_certs(certs, sizeof(certs)) != 0)
        return -1;
    snprintf(ca, sizeof(ca), "%s/ca.pem", certs);
    snprintf(other_ca, sizeof(other_ca), "%s/other-ca.pem", certs);
    snprintf(cert, sizeof(cert), "%s/server.pem", certs);
    snprintf(key, sizeof(key), "%s/server.key", certs);
    return 0;
}

static int group_teardown(void **state)
{
    ut_remove_dir(certs);
    return 0;
}

static int setup(void **state)
{
    uv_loop_init(&loop);
    assert_int_equal(k2a_coro_runtime_init(&loop, NULL), 0);
    const char *targs[] = {"--tls", cert, key, NULL};
    assert_int_equal(ut_proc_start(&srv, "http_server.py", targs), 0);
    const char *dargs[] = {"--a", "upstream.test=127.0.0.1", "--a", "wrong.test=127.0.0.1", NULL};
    assert_int_equal(ut_proc_start(&dnsd, "fake_dns.py", dargs), 0);
    snprintf(dns_servers, sizeof(dns_servers), "127.0.0.1:%d", dnsd.port);
    k2a_upstream_config_init(&cfg);
    cfg.dns_servers = dns_servers;
    cfg.ca_file = ca;
    up = NULL;
    cfg.first_byte_timeout_ms = cfg.idle_timeout_ms = 15000; /* a broken test fails in seconds, not minutes */
    memset(&proxy, 0, sizeof(proxy));
    proxy.in_fd = -1;
    return 0;
}

static int teardown(void **state)
{
    if (up != NULL)
        k2a_upstream_destroy(up);
    up = NULL;
    uv_run(&loop, UV_RUN_DEFAULT);
    k2a_coro_runtime_dispose();
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    ut_proc_stop(&srv);
    ut_proc_stop(&dnsd);
    ut_proc_stop(&proxy);
    return 0;
}

static void make_client(void)
{
    assert_int_equal(k2a_upstream_create(&loop, &cfg, &up), 0);
}

typedef struct st_seq_t {
    const char *method;
    const char *urls[8]; /* "%d" is the server's port */
    const uv_buf_t *body;
    size_t nbody;
    uint32_t sleep_between_ms;
    ut_result_t res[8];
} seq_t;

static void seq_fn(k2a_coro_t *co, void *arg)
{
    seq_t *s = arg;
    for (size_t i = 0; i < 8 && s->urls[i] != NULL; ++i) {
        char u[256];
        snprintf(u, sizeof(u), s->urls[i], srv.port);
        if (i > 0 && s->sleep_between_ms != 0)
            k2a_coro_sleep(s->sleep_between_ms);
        ut_fetch(up, s->method != NULL ? s->method : "GET", u, s->body, s->nbody, NULL, &s->res[i]);
    }
}

static void seq_dispose(seq_t *s)
{
    for (size_t i = 0; i < 8; ++i)
        ut_result_dispose(&s->res[i]);
}

static void assert_body(const ut_result_t *r, const char *expected)
{
    assert_int_equal(r->rc, 0);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->body_rc, 0);
    assert_int_equal(r->body.len, strlen(expected));
    assert_memory_equal(r->body.base, expected, r->body.len);
}

static void test_verified_by_ip_and_name(void **state)
{
    make_client();
    seq_t s = {.urls = {"https://127.0.0.1:%d/ok", "https://upstream.test:%d/ok?body=named", "https://upstream.test:%d/ok"}};
    ut_run(&loop, seq_fn, &s);
    assert_body(&s.res[0], "hello");
    assert_false(s.res[0].tls_resumed);
    assert_body(&s.res[1], "named");
    assert_false(s.res[1].reused); /* another origin (host name), another connection */
    assert_body(&s.res[2], "hello");
    assert_true(s.res[2].reused);
    assert_int_equal(ut_proc_stat(&srv, "accepted"), 2);
    assert_int_equal(ut_proc_stat(&srv, "handshake_failures"), 0);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.tls_handshakes, 2);
    assert_int_equal(st.read_bufs_held, 0); /* ciphertext and plaintext buffers went back (the two idle connections hold none) */
    seq_dispose(&s);
}

static void test_wrong_ca(void **state)
{
    cfg.ca_file = other_ca;
    make_client();
    seq_t s = {.urls = {"https://127.0.0.1:%d/ok", "https://upstream.test:%d/ok"}};
    ut_run(&loop, seq_fn, &s);
    assert_int_equal(s.res[0].rc, K2A_ETLS_VERIFY);
    assert_int_equal(s.res[1].rc, K2A_ETLS_VERIFY);
    assert_int_equal(ut_proc_wait(&srv, "handshake_failures", 2), 2);
    assert_int_equal(ut_proc_stat(&srv, "requests"), 0);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.requests[K2A_UPSTREAM_FAIL_TLS], 2);
    assert_int_equal(st.conns_open, 0);
    seq_dispose(&s);
}

static void test_wrong_host_name(void **state)
{
    make_client();
    /* wrong.test resolves to the server, whose certificate names only upstream.test and 127.0.0.1 */
    seq_t s = {.urls = {"https://wrong.test:%d/ok", "https://localhost.test:%d/ok"}};
    ut_run(&loop, seq_fn, &s);
    assert_int_equal(s.res[0].rc, K2A_ETLS_VERIFY);
    assert_int_equal(s.res[1].rc, K2A_EDNS); /* a name the fake DNS does not know */
    seq_dispose(&s);
}

static void test_insecure_skips_verification(void **state)
{
    cfg.ca_file = other_ca;
    cfg.tls_insecure = true;
    make_client();
    seq_t s = {.urls = {"https://wrong.test:%d/ok"}};
    ut_run(&loop, seq_fn, &s);
    assert_body(&s.res[0], "hello");
    seq_dispose(&s);
}

static void test_non_tls_peer(void **state)
{
    ut_proc_t garbage;
    const char *gargs[] = {"--garbage", NULL};
    assert_int_equal(ut_proc_start(&garbage, "http_server.py", gargs), 0);
    make_client();
    char u[128];
    snprintf(u, sizeof(u), "https://127.0.0.1:%d/ok", garbage.port);
    seq_t s = {.urls = {u}};
    ut_run(&loop, seq_fn, &s);
    assert_int_equal(s.res[0].rc, K2A_ETLS_HANDSHAKE);
    seq_dispose(&s);
    ut_proc_stop(&garbage);
}

static void test_session_resumption(void **state)
{
    cfg.max_idle_per_origin = 0; /* a new connection (and handshake) per request */
    make_client();
    seq_t s = {.urls = {"https://upstream.test:%d/ok", "https://upstream.test:%d/ok", "https://upstream.test:%d/ok"}};
    ut_run(&loop, seq_fn, &s);
    assert_body(&s.res[0], "hello");
    assert_false(s.res[0].tls_resumed);
    assert_body(&s.res[1], "hello");
    assert_true(s.res[1].tls_resumed);
    assert_false(s.res[1].reused);
    assert_body(&s.res[2], "hello");
    assert_true(s.res[2].tls_resumed);
    assert_int_equal(ut_proc_stat(&srv, "accepted"), 3);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.tls_handshakes, 3);
    assert_int_equal(st.tls_resumptions, 2);
    seq_dispose(&s);
}

/* A TLS session is resumed only by the affinity key (account) that got it: key 2's first handshake is a full one even
 * though key 1 holds a session for the same origin. */
typedef struct st_keyed_t {
    uint64_t keys[4];
    ut_result_t res[4];
} keyed_t;

static void keyed_fn(k2a_coro_t *co, void *arg)
{
    keyed_t *k = arg;
    char u[256];
    snprintf(u, sizeof(u), "https://upstream.test:%d/ok", srv.port);
    for (size_t i = 0; i < 4; ++i) {
        k2a_http_request_t tmpl = {.affinity = k->keys[i], .close = true};
        ut_fetch(up, "GET", u, NULL, 0, &tmpl, &k->res[i]);
    }
}

static void test_session_per_affinity(void **state)
{
    make_client();
    keyed_t k = {.keys = {1, 2, 1, 2}};
    ut_run(&loop, keyed_fn, &k);
    for (int i = 0; i < 4; ++i) {
        assert_body(&k.res[i], "hello");
        assert_false(k.res[i].reused);
    }
    assert_false(k.res[0].tls_resumed);
    assert_false(k.res[1].tls_resumed);
    assert_true(k.res[2].tls_resumed);
    assert_true(k.res[3].tls_resumed);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.tls_handshakes, 4);
    assert_int_equal(st.tls_resumptions, 2);
    for (int i = 0; i < 4; ++i)
        ut_result_dispose(&k.res[i]);
}

typedef struct st_many_t {
    int n, ok, reused;
} many_t;

static void many_fn(k2a_coro_t *co, void *arg)
{
    many_t *m = arg;
    char u[128];
    snprintf(u, sizeof(u), "https://upstream.test:%d/ok", srv.port);
    for (int i = 0; i < m->n; ++i) {
        ut_result_t r;
        ut_fetch(up, "GET", u, NULL, 0, NULL, &r);
        m->ok += r.rc == 0 && r.body_rc == 0 && r.status == 200;
        m->reused += r.reused;
        ut_result_dispose(&r);
    }
}

static void test_pool_reuse_100(void **state)
{
    make_client();
    many_t m = {.n = 100};
    ut_run(&loop, many_fn, &m);
    assert_int_equal(m.ok, 100);
    assert_int_equal(m.reused, 99);
    assert_int_equal(ut_proc_stat(&srv, "accepted"), 1);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.dns_cache_misses, 1);
    assert_int_equal(st.conns_idle_closed, 0); /* post-handshake tickets did not drop the idle connection */
}

static void test_bodies_over_tls(void **state)
{
    make_client();
    size_t n = 300 * 1024;
    uv_buf_t body[2] = {{.base = malloc(n / 2), .len = n / 2}, {.base = malloc(n / 2), .len = n / 2}};
    memset(body[0].base, 'x', n / 2);
    memset(body[1].base, 'y', n / 2);
    seq_t post = {.method = "POST", .urls = {"https://127.0.0.1:%d/echo"}, .body = body, .nbody = 2};
    ut_run(&loop, seq_fn, &post);
    assert_int_equal(post.res[0].rc, 0);
    char expect[64];
    snprintf(expect, sizeof(expect), "method=POST len=%zu ", n);
    assert_memory_equal(post.res[0].body.base, expect, strlen(expect));
    seq_t s = {.urls = {"https://127.0.0.1:%d/chunked?n=40&size=3000", "https://127.0.0.1:%d/cl?n=3&size=50000",
                        "https://127.0.0.1:%d/close-delimited?n=2&size=20000", "https://127.0.0.1:%d/mid-chunk-close"}};
    ut_run(&loop, seq_fn, &s);
    assert_int_equal(s.res[0].body_rc, 0);
    assert_int_equal(s.res[0].body.len, 120000);
    assert_int_equal(s.res[1].body_rc, 0);
    assert_int_equal(s.res[1].body.len, 150000);
    assert_int_equal(s.res[2].body_rc, 0);
    assert_int_equal(s.res[2].body.len, 40000);
    assert_int_equal(s.res[3].rc, 0);
    assert_int_equal(s.res[3].body_rc, K2A_ERESET_MID_BODY);
    free(body[0].base);
    free(body[1].base);
    seq_dispose(&post);
    seq_dispose(&s);
}

static void test_stray_bytes_after_response(void **state)
{
    make_client();
    seq_t s = {.urls = {"https://127.0.0.1:%d/late-garbage", "https://127.0.0.1:%d/ok"}, .sleep_between_ms = 100};
    ut_run(&loop, seq_fn, &s);
    assert_body(&s.res[0], "hello");
    assert_body(&s.res[1], "hello");
    assert_false(s.res[1].reused); /* the extra record made the first connection unusable */
    assert_int_equal(ut_proc_stat(&srv, "accepted"), 2);
    seq_dispose(&s);
}

typedef struct st_cancel_t {
    k2a_coro_t *co;
    int rc, body_rc;
    size_t got;
} cancel_t;

static void cancel_fn(k2a_coro_t *co, void *arg)
{
    cancel_t *c = arg;
    c->co = co;
    char u[128];
    snprintf(u, sizeof(u), "https://upstream.test:%d/drip?n=100&interval=50", srv.port);
    k2a_url_t pu;
    k2a_url_parse(u, strlen(u), &pu);
    k2a_http_request_t req = {.url = &pu, .method = "GET"};
    k2a_http_response_t *resp;
    if ((c->rc = k2a_upstream_request(up, &req, &resp)) != 0)
        return;
    const char *d;
    intptr_t n;
    while ((n = k2a_upstream_read(resp, &d)) > 0)
        c->got += (size_t)n;
    c->body_rc = (int)n;
    k2a_upstream_release(resp);
}

static void on_cancel(uv_timer_t *t)
{
    cancel_t *c = t->data;
    k2a_coro_cancel(c->co);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_cancel_mid_body(void **state)
{
    make_client();
    cancel_t c = {0};
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &c;
    uv_update_time(&loop);
    uv_timer_start(&t, on_cancel, 400, 0);
    ut_run(&loop, cancel_fn, &c);
    assert_int_equal(c.rc, 0);
    assert_int_equal(c.body_rc, K2A_ECANCELED);
    assert_true(c.got > 0 && c.got < 100);
    assert_int_equal(ut_proc_wait(&srv, "closed", 1), 1);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.conns_open, 0);
}

/* ---- through a CONNECT proxy ---- */

static void start_proxy(const char *auth)
{
    const char *args[] = {"--map", "upstream.test=127.0.0.1", auth != NULL ? "--auth" : NULL, auth, NULL};
    assert_int_equal(ut_proc_start(&proxy, "connect_proxy.py", args), 0);
}

static void test_proxy_with_basic_auth(void **state)
{
    start_proxy("user@x:p:w");
    /* userinfo is percent-decoded: user%40x:p%3Aw is user@x / p:w */
    snprintf(proxy_url, sizeof(proxy_url), "http://user%%40x:p%%3Aw@127.0.0.1:%d", proxy.port);
    cfg.proxy = proxy_url;
    make_client();
    seq_t s = {.urls = {"https://upstream.test:%d/ok", "https://upstream.test:%d/ok?body=again"}};
    ut_run(&loop, seq_fn, &s);
    assert_body(&s.res[0], "hello");
    assert_body(&s.res[1], "again");
    assert_true(s.res[1].reused);
    assert_int_equal(ut_proc_wait(&proxy, "tunnels", 1), 1);
    /* the name was resolved by the proxy, never by us; TLS ran end to end (verified against upstream.test) */
    assert_int_equal(ut_proc_stat(&dnsd, "queries"), 0);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.tls_handshakes, 1);
    seq_dispose(&s);
}

static void test_proxy_wrong_credentials(void **state)
{
    start_proxy("user:secret");
    snprintf(proxy_url, sizeof(proxy_url), "http://user:wrong@127.0.0.1:%d", proxy.port);
    cfg.proxy = proxy_url;
    make_client();
    seq_t s = {.urls = {"https://upstream.test:%d/ok"}};
    ut_run(&loop, seq_fn, &s);
    assert_int_equal(s.res[0].rc, K2A_EPROXY);
    assert_int_equal(ut_proc_wait(&proxy, "rejected", 1), 1);
    assert_int_equal(ut_proc_stat(&srv, "accepted"), 0);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.requests[K2A_UPSTREAM_FAIL_PROXY], 1);
    seq_dispose(&s);
}

static void test_no_proxy_and_dead_proxy(void **state)
{
    start_proxy(NULL);
    snprintf(proxy_url, sizeof(proxy_url), "http://127.0.0.1:%d", ut_closed_port());
    cfg.proxy = proxy_url; /* nothing listens there */
    cfg.no_proxy = "example.com, .test";
    make_client();
    seq_t s = {.urls = {"https://upstream.test:%d/ok", "https://127.0.0.1:%d/ok"}};
    ut_run(&loop, seq_fn, &s);
    assert_body(&s.res[0], "hello"); /* *.test is direct */
    assert_int_equal(s.res[1].rc, K2A_EPROXY);
    seq_dispose(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_verified_by_ip_and_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_ca, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_host_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insecure_skips_verification, setup, teardown),
        cmocka_unit_test_setup_teardown(test_non_tls_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_resumption, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_per_affinity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_reuse_100, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bodies_over_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_mid_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stray_bytes_after_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proxy_with_basic_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proxy_wrong_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_proxy_and_dead_proxy, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
