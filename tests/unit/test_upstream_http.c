/*
 * Upstream client over plain HTTP against tests/unit/upstream_servers/http_server.py on 127.0.0.1:
 * bodies (Content-Length, chunked, close-delimited, each delivered before its end), keep-alive reuse,
 * idle connections closed by the server, retry on a reused connection, every timeout, cancellation,
 * the error taxonomy, and the per-origin connection limit.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/errors.h"
#include "upstream_test.h"

#define MARGIN_MS 2500 /* generous slack over a timeout (ASan, a busy 2-core machine) */

static uv_loop_t loop;
static ut_proc_t srv;
static k2a_upstream_t *up;
static k2a_upstream_config_t cfg;

static void url(char *out, size_t n, const char *path)
{
    snprintf(out, n, "http://127.0.0.1:%d%s", srv.port, path);
}

static void make_client(void)
{
    assert_int_equal(k2a_upstream_create(&loop, &cfg, &up), 0);
}

static int setup(void **state)
{
    uv_loop_init(&loop);
    assert_int_equal(k2a_coro_runtime_init(&loop, NULL), 0);
    assert_int_equal(ut_proc_start(&srv, "http_server.py", NULL), 0);
    k2a_upstream_config_init(&cfg);
    cfg.dns_servers = "127.0.0.1:9";                         /* never used (IP literals), and never the machine's resolver */
    cfg.first_byte_timeout_ms = cfg.idle_timeout_ms = 15000; /* a broken test fails in seconds, not minutes */
    up = NULL;
    return 0;
}

static int teardown(void **state)
{
    if (up != NULL) {
        k2a_upstream_stats_t st;
        k2a_upstream_get_stats(up, &st);
        k2a_upstream_destroy(up);
        up = NULL;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    k2a_coro_runtime_dispose();
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    ut_proc_stop(&srv);
    return 0;
}

/* ---- a generic "fetch these paths in order" coroutine ---- */

typedef struct st_seq_t {
    const char *method;
    const char *paths[8];
    const uv_buf_t *body;
    size_t nbody;
    k2a_http_request_t tmpl;
    uint32_t sleep_between_ms;
    ut_result_t res[8];
} seq_t;

static void seq_fn(k2a_coro_t *co, void *arg)
{
    seq_t *s = arg;
    for (size_t i = 0; i < 8 && s->paths[i] != NULL; ++i) {
        char u[256];
        url(u, sizeof(u), s->paths[i]);
        if (i > 0 && s->sleep_between_ms != 0)
            k2a_coro_sleep(s->sleep_between_ms);
        ut_fetch(up, s->method != NULL ? s->method : "GET", u, s->body, s->nbody, &s->tmpl, &s->res[i]);
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
    assert_int_equal(r->body_rc, 0);
    assert_int_equal(r->body.len, strlen(expected));
    assert_memory_equal(r->body.base, expected, r->body.len);
}

/* ---- basics ---- */

static void test_get_ok(void **state)
{
    make_client();
    seq_t s = {.paths = {"/ok", "/ok?body=second", "/continue", "/nope"}};
    ut_run(&loop, seq_fn, &s);
    assert_int_equal(s.res[0].status, 200);
    assert_int_equal(s.res[0].content_length, 5);
    assert_body(&s.res[0], "hello");
    assert_false(s.res[0].reused);
    assert_body(&s.res[1], "second");
    assert_true(s.res[1].reused);
    assert_body(&s.res[2], "after-continue"); /* the interim 100 was skipped */
    assert_int_equal(s.res[3].status, 404);
    assert_body(&s.res[3], "no such behaviour");
    assert_int_equal(ut_proc_stat(&srv, "accepted"), 1);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.requests[K2A_UPSTREAM_OK], 3);
    assert_int_equal(st.requests[K2A_UPSTREAM_HTTP_4XX], 1);
    assert_int_equal(st.conns_opened, 1);
    assert_int_equal(st.conns_reused, 3);
    assert_int_equal(st.conns_open, 1);
    assert_int_equal(st.conns_idle, 1);
    seq_dispose(&s);
}

typedef struct st_headers_t {
    int rc, status;
    k2a_str_t cl;
    size_t nheaders;
    char ctype[64];
} headers_t;

static void headers_fn(k2a_coro_t *co, void *arg)
{
    headers_t *h = arg;
    char u[256];
    url(u, sizeof(u), "/ok");
    k2a_url_t pu;
    k2a_url_parse(u, strlen(u), &pu);
    k2a_http_request_t req = {.url = &pu, .method = "GET"};
    k2a_http_response_t *resp;
    if ((h->rc = k2a_upstream_request(up, &req, &resp)) != 0)
        return;
    h->status = resp->status;
    h->nheaders = resp->nheaders;
    k2a_str_t v = k2a_http_response_header(resp, "CONTENT-length");
    snprintf(h->ctype, sizeof(h->ctype), "%.*s", (int)v.len, v.base);
    h->cl = k2a_http_response_header(resp, "x-absent");
    k2a_upstream_release(resp); /* body not read: the connection must not go back to the pool */
}

static void test_headers_and_unread_body(void **state)
{
    make_client();
    headers_t h = {0};
    ut_run(&loop, headers_fn, &h);
    assert_int_equal(h.rc, 0);
    assert_int_equal(h.status, 200);
    assert_int_equal(h.nheaders, 1);
    assert_string_equal(h.ctype, "5");
    assert_null(h.cl.base);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.conns_idle, 0);
    assert_int_equal(st.conns_open, 0);
    assert_int_equal(ut_proc_wait(&srv, "closed", 1), 1);
}

static void test_post_body_iovecs(void **state)
{
    make_client();
    /* 300 KiB in three iovecs: sent as they are, hashed by the server */
    size_t sizes[3] = {100 * 1024 + 7, 150 * 1024, 50 * 1024 - 7};
    uv_buf_t bufs[3];
    EVP_MD_CTX *sha = EVP_MD_CTX_new();
    EVP_DigestInit_ex(sha, EVP_sha256(), NULL);
    for (int i = 0; i < 3; ++i) {
        bufs[i].base = malloc(sizes[i]);
        bufs[i].len = sizes[i];
        for (size_t j = 0; j < sizes[i]; ++j)
            bufs[i].base[j] = (char)('A' + (j * 7 + (size_t)i) % 26);
        EVP_DigestUpdate(sha, bufs[i].base, sizes[i]);
    }
    unsigned char digest[32];
    EVP_DigestFinal_ex(sha, digest, NULL);
    EVP_MD_CTX_free(sha);
    char expected[256], hex[65];
    for (int i = 0; i < 32; ++i)
        sprintf(hex + 2 * i, "%02x", digest[i]);
    snprintf(expected, sizeof(expected), "method=POST len=%d sha256=%s\n", 300 * 1024, hex);

    k2a_http_header_t hdrs[2] = {{K2A_STRLIT("X-Test"), K2A_STRLIT("yes")}, {K2A_STRLIT("Content-Type"), K2A_STRLIT("x/y")}};
    seq_t s = {.method = "POST", .paths = {"/echo"}, .body = bufs, .nbody = 3, .tmpl = {.headers = hdrs, .nheaders = 2}};
    ut_run(&loop, seq_fn, &s);
    assert_int_equal(s.res[0].rc, 0);
    assert_int_equal(s.res[0].status, 200);
    assert_true(s.res[0].body.len > strlen(expected));
    assert_memory_equal(s.res[0].body.base, expected, strlen(expected));
    char host[64];
    snprintf(host, sizeof(host), "Host: 127.0.0.1:%d\r\n", srv.port);
    k2a_buf_cstr(&s.res[0].body);
    assert_non_null(strstr(s.res[0].body.base, host));
    assert_non_null(strstr(s.res[0].body.base, "X-Test: yes\r\n"));
    assert_non_null(strstr(s.res[0].body.base, "Content-Length: 307200"));
    for (int i = 0; i < 3; ++i)
        free(bufs[i].base);
    seq_dispose(&s);
}

/* ---- bodies arrive piece by piece, before the end exists ---- */

typedef struct st_gated_t {
    const char *mode;
    int rc, status;
    char first[32];
    intptr_t first_len;
    int rest_rc;
    k2a_buf_t rest;
    bool reused_next;
} gated_t;

static void gated_fn(k2a_coro_t *co, void *arg)
{
    gated_t *g = arg;
    char u[256], path[64];
    snprintf(path, sizeof(path), "/gated?mode=%s", g->mode);
    url(u, sizeof(u), path);
    k2a_url_t pu;
    k2a_url_parse(u, strlen(u), &pu);
    k2a_http_request_t req = {.url = &pu, .method = "GET"};
    k2a_http_response_t *resp;
    if ((g->rc = k2a_upstream_request(up, &req, &resp)) != 0)
        return;
    g->status = resp->status;
    const char *d;
    g->first_len = k2a_upstream_read(resp, &d);
    if (g->first_len > 0)
        memcpy(g->first, d, (size_t)g->first_len < sizeof(g->first) ? (size_t)g->first_len : sizeof(g->first));
    /* the server holds the rest of the body until it is told to go on: the first piece came before the end */
    ut_proc_cmd(&srv, "release", "requests");
    g->rest_rc = k2a_upstream_read_all(resp, &g->rest, 1024);
    k2a_upstream_release(resp);
    ut_result_t r;
    url(u, sizeof(u), "/ok");
    ut_fetch(up, "GET", u, NULL, 0, NULL, &r);
    g->reused_next = r.rc == 0 && r.reused;
    ut_result_dispose(&r);
}

static void run_gated(const char *mode, bool keepalive)
{
    gated_t g = {.mode = mode};
    k2a_buf_init(&g.rest, 1024);
    ut_run(&loop, gated_fn, &g);
    assert_int_equal(g.rc, 0);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.first_len, 5);
    assert_memory_equal(g.first, "first", 5);
    assert_int_equal(g.rest_rc, 0);
    assert_int_equal(g.rest.len, 7);
    assert_memory_equal(g.rest.base, "-second", 7);
    assert_int_equal(g.reused_next, keepalive);
    k2a_buf_dispose(&g.rest);
}

static void test_incremental_content_length(void **state)
{
    make_client();
    run_gated("cl", true);
}

static void test_incremental_chunked(void **state)
{
    make_client();
    run_gated("chunked", true);
}

static void test_incremental_close_delimited(void **state)
{
    make_client();
    run_gated("close", false);
}

static void test_large_bodies(void **state)
{
    make_client();
    seq_t s = {.paths = {"/cl?n=5&size=40000", "/chunked?n=60&size=1000", "/close-delimited?n=4&size=30000",
                         "/big-header?size=1000", "/trailing-garbage", "/ok"}};
    ut_run(&loop, seq_fn, &s);
    size_t expect_len[3] = {200000, 60000, 120000};
    size_t piece[3] = {40000, 1000, 30000};
    for (int i = 0; i < 3; ++i) {
        assert_int_equal(s.res[i].rc, 0);
        assert_int_equal(s.res[i].body_rc, 0);
        assert_int_equal(s.res[i].body.len, expect_len[i]);
        for (size_t j = 0; j < expect_len[i]; ++j)
            if (s.res[i].body.base[j] != (char)('a' + (j / piece[i]) % 26))
                fail_msg("body %d differs at %zu", i, j);
        assert_true(s.res[i].pieces >= 2);
    }
    assert_int_equal(s.res[1].content_length, -1);
    assert_body(&s.res[3], "ok");
    assert_body(&s.res[4], "ok");
    /* close-delimited and trailing garbage both cost the connection: 3 connections in all */
    assert_false(s.res[5].reused);
    assert_int_equal(ut_proc_stat(&srv, "accepted"), 3);
    seq_dispose(&s);
}

/* ---- read buffers: held while bytes are handed over, none while a connection waits ---- */

typedef struct st_held_t {
    int rc, rest_rc;
    intptr_t first_len;
    uint64_t with_bytes, parked, done; /* stats.read_bufs_held at each step */
    k2a_buf_t rest;
} held_t;

static uint64_t bufs_held(void)
{
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    return st.read_bufs_held;
}

static void held_reader(k2a_coro_t *co, void *arg)
{
    held_t *h = arg;
    char u[256];
    url(u, sizeof(u), "/gated?mode=chunked");
    k2a_url_t pu;
    k2a_url_parse(u, strlen(u), &pu);
    k2a_http_request_t req = {.url = &pu, .method = "GET"};
    k2a_http_response_t *resp;
    if ((h->rc = k2a_upstream_request(up, &req, &resp)) != 0) {
        h->first_len = -1;
        return;
    }
    const char *d;
    intptr_t n = k2a_upstream_read(resp, &d);
    h->with_bytes = bufs_held(); /* d points into a buffer the connection holds */
    h->first_len = n;
    h->rest_rc = k2a_upstream_read_all(resp, &h->rest, 1024); /* parks until the server is released */
    k2a_upstream_release(resp);
    h->done = bufs_held();
}

static void held_driver(k2a_coro_t *co, void *arg)
{
    held_t *h = arg;
    while (h->first_len == 0)
        k2a_coro_sleep(10);
    k2a_coro_sleep(100); /* the reader waits for the rest of the body */
    h->parked = bufs_held();
    ut_proc_cmd(&srv, "release", "requests");
}

static void test_read_buffer_only_while_reading(void **state)
{
    make_client();
    held_t h = {0};
    k2a_buf_init(&h.rest, 1024);
    assert_int_equal(k2a_coro_spawn(held_reader, &h), 0);
    ut_run(&loop, held_driver, &h);
    while (h.rest_rc == 0 && h.rest.len == 0 && h.first_len > 0)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(h.rc, 0);
    assert_int_equal(h.first_len, 5);
    assert_int_equal(h.with_bytes, 1);
    assert_int_equal(h.parked, 0);
    assert_int_equal(h.rest_rc, 0);
    assert_int_equal(h.rest.len, 7);
    assert_memory_equal(h.rest.base, "-second", 7);
    assert_int_equal(h.done, 0);
    k2a_buf_dispose(&h.rest);
}

/* ---- pooling ---- */

typedef struct st_many_t {
    int n, ok;
    int reused;
} many_t;

static void many_fn(k2a_coro_t *co, void *arg)
{
    many_t *m = arg;
    char u[256];
    url(u, sizeof(u), "/ok");
    for (int i = 0; i < m->n; ++i) {
        ut_result_t r;
        ut_fetch(up, "GET", u, NULL, 0, NULL, &r);
        if (r.rc == 0 && r.body_rc == 0 && r.status == 200)
            ++m->ok;
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
    assert_int_equal(ut_proc_stat(&srv, "requests"), 100);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.conns_opened, 1);
    assert_int_equal(st.conns_reused, 99);
    assert_int_equal(st.read_bufs_held, 0); /* every read buffer went back to the free list */
}

/* A reused connection keeps reading on from the pool to the response's first read (no epoll_ctl restart per request):
 * an answer that comes while the body is still being written (the server answers first, then reads 24 MiB) is held for
 * that read, and the connection is reused again after it. */
static void test_early_answer_on_reused(void **state)
{
    make_client();
    size_t n = 24 << 20; /* more than the socket buffers take: the write waits for the server */
    uv_buf_t body = {.base = malloc(n), .len = n};
    memset(body.base, 'b', n);
    seq_t s = {.method = "POST", .paths = {"/ok", "/early-answer", "/ok"}, .body = &body, .nbody = 1};
    ut_run(&loop, seq_fn, &s);
    assert_body(&s.res[0], "hello");
    assert_body(&s.res[1], "early");
    assert_true(s.res[1].reused);
    assert_false(s.res[1].retried);
    assert_body(&s.res[2], "hello");
    assert_true(s.res[2].reused);
    assert_int_equal(ut_proc_stat(&srv, "accepted"), 1);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.read_bufs_held, 0);
    assert_int_equal(st.reads_early, 1); /* the held path, not a read after the write */
    seq_dispose(&s);
    free(body.base);
}

static void test_no_pooling_when_max_idle_0(void **state)
{
    cfg.max_idle_per_origin = 0;
    make_client();
    many_t m = {.n = 5};
    ut_run(&loop, many_fn, &m);
    assert_int_equal(m.ok, 5);
    assert_int_equal(m.reused, 0);
    assert_int_equal(ut_proc_stat(&srv, "accepted"), 5);
}

static void test_idle_closed_by_server(void **state)
{
    make_client();
    /* the server closes 20 ms after answering; the client notices while the connection is idle */
    seq_t s = {.paths = {"/close-after?delay=20", "/ok"}, .sleep_between_ms = 300};
    ut_run(&loop, seq_fn, &s);
    assert_body(&s.res[0], "hello");
    assert_body(&s.res[1], "hello");
    assert_false(s.res[1].reused);
    assert_false(s.res[1].retried);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.conns_idle_closed, 1);
    assert_int_equal(st.retries, 0);
    assert_int_equal(ut_proc_stat(&srv, "accepted"), 2);
    seq_dispose(&s);
}

static void test_retry_once_on_reused(void **state)
{
    make_client();
    /* the server answers, then closes the connection when the next request arrives on it (the keep-alive race) */
    seq_t s = {.paths = {"/drop-next", "/ok", "/ok"}};
    ut_run(&loop, seq_fn, &s);
    assert_body(&s.res[0], "hello");
    assert_body(&s.res[1], "hello");
    assert_true(s.res[1].retried);
    assert_false(s.res[1].reused);
    assert_true(s.res[2].reused);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.retries, 1);
    assert_int_equal(ut_proc_stat(&srv, "accepted"), 2);
    assert_int_equal(ut_proc_stat(&srv, "requests"), 4);
    seq_dispose(&s);
}

static void test_no_retry_on_fresh(void **state)
{
    make_client();
    seq_t s = {.paths = {"/reset", "/malformed"}};
    ut_run(&loop, seq_fn, &s);
    assert_int_equal(s.res[0].rc, K2A_ERESET_BEFORE_RESPONSE);
    assert_int_equal(s.res[1].rc, K2A_EHTTP_PARSE);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.retries, 0);
    assert_int_equal(st.requests[K2A_UPSTREAM_FAIL_RESET], 1);
    assert_int_equal(st.requests[K2A_UPSTREAM_FAIL_PROTOCOL], 1);
    assert_int_equal(st.conns_open, 0);
    assert_int_equal(ut_proc_stat(&srv, "requests"), 2);
    seq_dispose(&s);
}

/* ---- errors ---- */

static void test_errors_mid_body_and_head(void **state)
{
    make_client();
    seq_t s = {
        .paths = {"/mid-chunk-close", "/cl-short", "/big-header", "/many-headers?n=150", "/many-headers?n=90", "/bad-chunk"}};
    ut_run(&loop, seq_fn, &s);
    assert_int_equal(s.res[0].rc, 0);
    assert_int_equal(s.res[0].body_rc, K2A_ERESET_MID_BODY);
    assert_int_equal(s.res[1].rc, 0);
    assert_int_equal(s.res[1].body_rc, K2A_ERESET_MID_BODY);
    assert_int_equal(s.res[1].body.len, 10);
    assert_int_equal(s.res[2].rc, K2A_EHEADER_TOOBIG);
    assert_int_equal(s.res[3].rc, K2A_EHEADER_TOOBIG);
    assert_body(&s.res[4], "ok");
    assert_int_equal(s.res[5].rc, 0);
    assert_int_equal(s.res[5].body_rc, K2A_ERESET_MID_BODY);
    assert_int_equal(s.res[5].body.len, 5); /* the good chunk came first */
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.body_errors, 3);
    seq_dispose(&s);
}

typedef struct st_errbody_t {
    int rc, status, body_rc, big_rc;
    k2a_buf_t body, big;
} errbody_t;

static void errbody_fn(k2a_coro_t *co, void *arg)
{
    errbody_t *e = arg;
    char u[256];
    url(u, sizeof(u), "/status?code=503&size=100000");
    k2a_url_t pu;
    k2a_url_parse(u, strlen(u), &pu);
    k2a_http_request_t req = {.url = &pu, .method = "GET"};
    k2a_http_response_t *resp;
    if ((e->rc = k2a_upstream_request(up, &req, &resp)) != 0)
        return;
    e->status = resp->status;
    e->body_rc = k2a_upstream_read_error_body(resp, &e->body);
    k2a_upstream_release(resp);
    url(u, sizeof(u), "/cl?n=2&size=1000");
    k2a_url_parse(u, strlen(u), &pu);
    if (k2a_upstream_request(up, &req, &resp) == 0) {
        e->big_rc = k2a_upstream_read_all(resp, &e->big, 1500);
        k2a_upstream_release(resp);
    }
}

static void test_error_status_with_body(void **state)
{
    make_client();
    errbody_t e = {0};
    k2a_buf_init(&e.body, 0);
    k2a_buf_init(&e.big, 0);
    ut_run(&loop, errbody_fn, &e);
    assert_int_equal(e.rc, 0);
    assert_int_equal(e.status, 503);
    assert_int_equal(e.body_rc, 0);
    assert_int_equal(e.body.len, K2A_UPSTREAM_ERROR_BODY_MAX);
    assert_memory_equal(e.body.base, "{\"message\":\"boom\"}", 18);
    assert_int_equal(e.big_rc, K2A_ETOOBIG);
    assert_int_equal(e.big.len, 1500);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.requests[K2A_UPSTREAM_HTTP_5XX], 1);
    assert_int_equal(st.conns_idle, 0); /* both bodies were cut short: no reuse */
    k2a_buf_dispose(&e.body);
    k2a_buf_dispose(&e.big);
}

typedef struct st_one_t {
    char url[256];
    k2a_http_request_t tmpl;
    ut_result_t r;
} one_t;

static void one_fn(k2a_coro_t *co, void *arg)
{
    one_t *o = arg;
    ut_fetch(up, "GET", o->url, NULL, 0, &o->tmpl, &o->r);
}

static void test_refused(void **state)
{
    make_client();
    one_t o = {0};
    snprintf(o.url, sizeof(o.url), "http://127.0.0.1:%d/", ut_closed_port());
    ut_run(&loop, one_fn, &o);
    assert_int_equal(o.r.rc, K2A_ECONNECT_REFUSED);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.requests[K2A_UPSTREAM_FAIL_CONNECT], 1);
    ut_result_dispose(&o.r);
}

static void test_connect_timeout(void **state)
{
    make_client();
    int port, fillers[2];
    int lfd = ut_full_backlog_listener(&port, fillers);
    assert_true(lfd >= 0);
    one_t o = {.tmpl = {.connect_timeout_ms = 300}};
    snprintf(o.url, sizeof(o.url), "http://127.0.0.1:%d/", port);
    ut_run(&loop, one_fn, &o);
    assert_int_equal(o.r.rc, K2A_ECONNECT_TIMEOUT);
    assert_true(o.r.elapsed_ms >= 300 - 5);
    assert_true(o.r.elapsed_ms < 300 + MARGIN_MS);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.conns_open, 0);
    ut_result_dispose(&o.r);
    close(fillers[0]);
    close(fillers[1]);
    close(lfd);
}

/* ---- timeouts ---- */

static void test_first_byte_timeout(void **state)
{
    cfg.first_byte_timeout_ms = 300;
    make_client();
    seq_t s = {.paths = {"/never", "/slow-head?delay=100"}};
    ut_run(&loop, seq_fn, &s);
    assert_int_equal(s.res[0].rc, K2A_EFIRST_BYTE_TIMEOUT);
    assert_true(s.res[0].elapsed_ms >= 300 - 5);
    assert_true(s.res[0].elapsed_ms < 300 + MARGIN_MS);
    assert_body(&s.res[1], "hello");                      /* 100 ms is within the first-byte timeout */
    assert_int_equal(ut_proc_wait(&srv, "closed", 1), 1); /* the stalled connection was closed */
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.requests[K2A_UPSTREAM_FAIL_TIMEOUT], 1);
    seq_dispose(&s);
}

static void test_half_header_stall(void **state)
{
    make_client();
    /* after the first byte the idle timeout applies, not the (longer) first-byte timeout */
    seq_t s = {.paths = {"/half-header"}, .tmpl = {.first_byte_timeout_ms = 20000, .idle_timeout_ms = 300}};
    ut_run(&loop, seq_fn, &s);
    assert_int_equal(s.res[0].rc, K2A_EIDLE_TIMEOUT);
    assert_true(s.res[0].elapsed_ms >= 300 - 5);
    assert_true(s.res[0].elapsed_ms < 300 + MARGIN_MS);
    seq_dispose(&s);
}

static void test_drip_and_idle_timeout(void **state)
{
    make_client();
    /* one byte every 100 ms never trips a 300 ms idle timeout; a drip that stops does */
    seq_t s = {.paths = {"/drip?n=8&interval=100", "/drip?n=3&interval=100&stall=1"}, .tmpl = {.idle_timeout_ms = 300}};
    ut_run(&loop, seq_fn, &s);
    assert_body(&s.res[0], "xxxxxxxx");
    assert_true(s.res[0].pieces >= 2);
    assert_true(s.res[0].elapsed_ms >= 800 - 5);
    assert_int_equal(s.res[1].rc, 0);
    assert_int_equal(s.res[1].body_rc, K2A_EIDLE_TIMEOUT);
    assert_int_equal(s.res[1].body.len, 3);
    assert_true(s.res[1].elapsed_ms >= 300 + 300 - 5);
    assert_true(s.res[1].elapsed_ms < 300 + 300 + MARGIN_MS);
    assert_int_equal(ut_proc_wait(&srv, "closed", 1), 1);
    seq_dispose(&s);
}

/* ---- cancellation ---- */

typedef struct st_cancel_t {
    k2a_coro_t *co;
    const char *path;
    int read_first; /* read one piece before parking for the cancel */
    int rc, body_rc;
    uint64_t canceled_at, finished_at;
} cancel_t;

static void cancel_fn(k2a_coro_t *co, void *arg)
{
    cancel_t *c = arg;
    c->co = co;
    char u[256];
    url(u, sizeof(u), c->path);
    k2a_url_t pu;
    k2a_url_parse(u, strlen(u), &pu);
    k2a_http_request_t req = {.url = &pu, .method = "GET"};
    k2a_http_response_t *resp;
    c->rc = k2a_upstream_request(up, &req, &resp);
    if (c->rc == 0) {
        const char *d;
        intptr_t n;
        while ((n = k2a_upstream_read(resp, &d)) > 0)
            ;
        c->body_rc = (int)n;
        k2a_upstream_release(resp);
    }
    c->finished_at = ut_now_ms();
}

static void on_cancel_timer(uv_timer_t *t)
{
    cancel_t *c = t->data;
    c->canceled_at = ut_now_ms();
    k2a_coro_cancel(c->co);
    uv_close((uv_handle_t *)t, NULL);
}

static void run_cancel(cancel_t *c, uint64_t after_ms)
{
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = c;
    uv_update_time(&loop);
    uv_timer_start(&t, on_cancel_timer, after_ms, 0);
    ut_run(&loop, cancel_fn, c);
    if (!uv_is_closing((uv_handle_t *)&t))
        uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

static void test_cancel_waiting_for_head(void **state)
{
    make_client();
    cancel_t c = {.path = "/never"};
    run_cancel(&c, 150);
    assert_int_equal(c.rc, K2A_ECANCELED);
    assert_true(c.canceled_at != 0);
    assert_true(c.finished_at - c.canceled_at < 1000);
    assert_int_equal(ut_proc_wait(&srv, "closed", 1), 1); /* the server saw the connection go */
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.requests[K2A_UPSTREAM_FAIL_CANCELED], 1);
    assert_int_equal(st.conns_open, 0);
    assert_int_equal(st.conns_idle, 0);
}

static void test_cancel_reading_body(void **state)
{
    make_client();
    cancel_t c = {.path = "/drip?n=100&interval=50"};
    run_cancel(&c, 300);
    assert_int_equal(c.rc, 0);
    assert_int_equal(c.body_rc, K2A_ECANCELED);
    assert_true(c.finished_at - c.canceled_at < 1000);
    assert_int_equal(ut_proc_wait(&srv, "closed", 1), 1);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.conns_open, 0);
    assert_int_equal(st.conns_idle, 0); /* never back in the pool mid-body */
    assert_int_equal(st.body_errors, 1);
}

/* ---- connection limit per origin ---- */

typedef struct st_limit_t {
    ut_result_t a, b;
    uint32_t b_connect_timeout;
} limit_t;

static void limit_a(k2a_coro_t *co, void *arg)
{
    limit_t *l = arg;
    char u[256];
    url(u, sizeof(u), "/slow-head?delay=300");
    ut_fetch(up, "GET", u, NULL, 0, NULL, &l->a);
}

static void limit_b(k2a_coro_t *co, void *arg)
{
    limit_t *l = arg;
    char u[256];
    url(u, sizeof(u), "/ok");
    k2a_http_request_t tmpl = {.connect_timeout_ms = l->b_connect_timeout};
    ut_fetch(up, "GET", u, NULL, 0, &tmpl, &l->b);
}

static void run_limit(limit_t *l)
{
    assert_int_equal(k2a_coro_spawn(limit_a, l), 0);
    ut_run(&loop, limit_b, l);
    while (l->a.elapsed_ms == 0)
        uv_run(&loop, UV_RUN_ONCE);
}

static void test_max_conns_waits_for_slot(void **state)
{
    cfg.max_conns_per_origin = 1;
    make_client();
    limit_t l = {.b_connect_timeout = 5000};
    run_limit(&l);
    assert_body(&l.a, "hello");
    assert_body(&l.b, "hello");
    assert_true(l.b.reused); /* it waited for a's connection */
    assert_int_equal(ut_proc_stat(&srv, "accepted"), 1);
    ut_result_dispose(&l.a);
    ut_result_dispose(&l.b);
}

static void test_max_conns_busy(void **state)
{
    cfg.max_conns_per_origin = 1;
    make_client();
    limit_t l = {.b_connect_timeout = 100};
    run_limit(&l);
    assert_body(&l.a, "hello");
    assert_int_equal(l.b.rc, K2A_EBUSY);
    assert_true(l.b.elapsed_ms >= 100 - 5);
    ut_result_dispose(&l.a);
    ut_result_dispose(&l.b);
}

static void test_connection_close_and_head(void **state)
{
    make_client();
    /* (100 ms between requests: stray bytes that arrive after the next request went out cannot be told from its answer) */
    seq_t s = {.paths = {"/connection-close", "/ok", "/late-garbage", "/ok"}, .sleep_between_ms = 100};
    ut_run(&loop, seq_fn, &s);
    assert_body(&s.res[0], "hello");
    assert_false(s.res[1].reused);
    assert_body(&s.res[2], "hello");
    assert_body(&s.res[3], "hello");
    assert_false(s.res[3].reused); /* stray bytes after a complete response: not reused */
    seq_t h = {.method = "HEAD", .paths = {"/ok", "/ok"}};
    ut_run(&loop, seq_fn, &h);
    assert_int_equal(h.res[0].rc, 0);
    assert_int_equal(h.res[0].body.len, 0);
    assert_int_equal(h.res[0].content_length, 5);
    assert_true(h.res[1].reused);
    seq_dispose(&s);
    seq_dispose(&h);
}

static void test_invalid_requests(void **state)
{
    make_client();
    k2a_http_header_t bad[1] = {{K2A_STRLIT("X-Evil"), K2A_STRLIT("a\r\nInjected: yes")}};
    seq_t s1 = {.paths = {"/ok"}, .tmpl = {.headers = bad, .nheaders = 1}};
    ut_run(&loop, seq_fn, &s1);
    assert_int_equal(s1.res[0].rc, K2A_EINVAL);
    seq_t s2 = {.method = "GE T", .paths = {"/ok"}};
    ut_run(&loop, seq_fn, &s2);
    assert_int_equal(s2.res[0].rc, K2A_EINVAL);
    assert_int_equal(ut_proc_stat(&srv, "requests"), 0); /* nothing was sent */
    seq_dispose(&s1);
    seq_dispose(&s2);
    /* CR, LF or NUL anywhere in a long value (the check looks at 8 bytes at a time), in the value or in the name */
    static const size_t offsets[] = {0, 7, 8, 9, 15, 16, 22, 23};
    static const char ctl[] = {'\r', '\n', '\0'};
    for (size_t c = 0; c < sizeof(ctl); ++c) {
        for (size_t o = 0; o < sizeof(offsets) / sizeof(offsets[0]); ++o) {
            char value[24], name[24];
            memset(value, 'v', sizeof(value));
            memset(name, 'n', sizeof(name));
            value[offsets[o]] = ctl[c];
            name[offsets[o]] = ctl[c];
            k2a_http_header_t hv[1] = {{{"X-Long-Header-Name", 18}, {value, sizeof(value)}}};
            k2a_http_header_t hn[1] = {{{name, sizeof(name)}, {"ok", 2}}};
            seq_t sv = {.paths = {"/ok"}, .tmpl = {.headers = hv, .nheaders = 1}};
            seq_t sn = {.paths = {"/ok"}, .tmpl = {.headers = hn, .nheaders = 1}};
            ut_run(&loop, seq_fn, &sv);
            ut_run(&loop, seq_fn, &sn);
            assert_int_equal(sv.res[0].rc, K2A_EINVAL);
            assert_int_equal(sn.res[0].rc, K2A_EINVAL);
            seq_dispose(&sv);
            seq_dispose(&sn);
        }
    }
    assert_int_equal(ut_proc_stat(&srv, "requests"), 0);
    /* other control bytes (a tab) and bytes >= 0x80 are not refused */
    k2a_http_header_t ok[1] = {{K2A_STRLIT("X-Fine"), K2A_STRLIT("tab\there and caf\xc3\xa9, long enough")}};
    seq_t s3 = {.paths = {"/ok"}, .tmpl = {.headers = ok, .nheaders = 1}};
    ut_run(&loop, seq_fn, &s3);
    assert_body(&s3.res[0], "hello");
    seq_dispose(&s3);
}

static void test_pool_idle_timeout(void **state)
{
    cfg.pool_idle_timeout_ms = 200;
    make_client();
    seq_t s = {.paths = {"/ok", "/ok"}, .sleep_between_ms = 600};
    ut_run(&loop, seq_fn, &s);
    assert_body(&s.res[0], "hello");
    assert_body(&s.res[1], "hello");
    assert_false(s.res[1].reused); /* the idle connection was closed by its timer in between */
    assert_int_equal(ut_proc_stat(&srv, "accepted"), 2);
    assert_int_equal(ut_proc_wait(&srv, "closed", 1), 1);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.conns_idle_closed, 1);
    seq_dispose(&s);
}

static void test_max_idle_bound(void **state)
{
    cfg.max_idle_per_origin = 1;
    make_client();
    /* three requests at once need three connections; only one stays idle afterwards */
    limit_t l1 = {.b_connect_timeout = 5000}, l2 = {.b_connect_timeout = 5000};
    assert_int_equal(k2a_coro_spawn(limit_a, &l1), 0);
    assert_int_equal(k2a_coro_spawn(limit_a, &l2), 0);
    ut_run(&loop, limit_b, &l1);
    while (l1.a.elapsed_ms == 0 || l2.a.elapsed_ms == 0)
        uv_run(&loop, UV_RUN_ONCE);
    assert_body(&l1.a, "hello");
    assert_body(&l2.a, "hello");
    assert_body(&l1.b, "hello");
    assert_int_equal(ut_proc_stat(&srv, "accepted"), 3);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.conns_idle, 1);
    assert_int_equal(st.conns_open, 1);
    assert_int_equal(ut_proc_wait(&srv, "closed", 2), 2);
    ut_result_dispose(&l1.a);
    ut_result_dispose(&l1.b);
    ut_result_dispose(&l2.a);
}

static void test_tls_handshake_timeout(void **state)
{
    make_client();
    /* the plain-HTTP server never answers a ClientHello: the connect timeout covers the TLS handshake */
    one_t o = {.tmpl = {.connect_timeout_ms = 300}};
    snprintf(o.url, sizeof(o.url), "https://127.0.0.1:%d/ok", srv.port);
    ut_run(&loop, one_fn, &o);
    assert_int_equal(o.r.rc, K2A_ECONNECT_TIMEOUT);
    assert_true(o.r.elapsed_ms >= 300 - 5);
    assert_true(o.r.elapsed_ms < 300 + MARGIN_MS);
    assert_int_equal(ut_proc_wait(&srv, "closed", 1), 1);
    ut_result_dispose(&o.r);
}

typedef struct st_cancel_one_t {
    one_t o;
    k2a_coro_t *co;
} cancel_one_t;

static void cancel_one_fn(k2a_coro_t *co, void *arg)
{
    cancel_one_t *c = arg;
    c->co = co;
    one_fn(co, &c->o);
}

static void on_cancel_one(uv_timer_t *t)
{
    cancel_one_t *c = t->data;
    k2a_coro_cancel(c->co);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_cancel_while_connecting(void **state)
{
    make_client();
    int port, fillers[2];
    int lfd = ut_full_backlog_listener(&port, fillers);
    assert_true(lfd >= 0);
    cancel_one_t c = {.o = {.tmpl = {.connect_timeout_ms = 20000}}};
    snprintf(c.o.url, sizeof(c.o.url), "http://127.0.0.1:%d/", port);
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &c;
    uv_update_time(&loop);
    uv_timer_start(&t, on_cancel_one, 150, 0);
    ut_run(&loop, cancel_one_fn, &c);
    assert_int_equal(c.o.r.rc, K2A_ECANCELED);
    assert_true(c.o.r.elapsed_ms >= 150 - 5);
    assert_true(c.o.r.elapsed_ms < 150 + MARGIN_MS);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.conns_open, 0);
    ut_result_dispose(&c.o.r);
    close(fillers[0]);
    close(fillers[1]);
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_headers_and_unread_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_body_iovecs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incremental_content_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incremental_chunked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incremental_close_delimited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_buffer_only_while_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_reuse_100, setup, teardown),
        cmocka_unit_test_setup_teardown(test_early_answer_on_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_pooling_when_max_idle_0, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_closed_by_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_once_on_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_retry_on_fresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_mid_body_and_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_status_with_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_byte_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_header_stall, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drip_and_idle_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_waiting_for_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_reading_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_conns_waits_for_slot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_conns_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_close_and_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_idle_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_idle_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_handshake_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_while_connecting, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
