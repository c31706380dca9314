/*
 * Connection affinity in the upstream client, against tests/unit/upstream_servers/http_server.py on
 * 127.0.0.1: idle connections are reused only by requests of the same affinity key, the per-key idle
 * bound, an idle connection of another key is evicted (not waited for) at the origin's connection limit,
 * a closing request (req.close, cfg.reuse_never) sends Connection: close and is never pooled, and Host
 * goes where host_index puts it.
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

static uv_loop_t loop;
static ut_proc_t srv;
static k2a_upstream_t *up;
static k2a_upstream_config_t cfg;

static int setup(void **state)
{
    uv_loop_init(&loop);
    assert_int_equal(k2a_coro_runtime_init(&loop, NULL), 0);
    assert_int_equal(ut_proc_start(&srv, "http_server.py", NULL), 0);
    k2a_upstream_config_init(&cfg);
    cfg.dns_servers = "127.0.0.1:9"; /* never used (IP literals) */
    cfg.first_byte_timeout_ms = cfg.idle_timeout_ms = 15000;
    up = NULL;
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
    return 0;
}

/* A sequence of GETs, each with its own affinity key (and flags). */
typedef struct st_step_t {
    const char *path;
    uint64_t affinity;
    bool close;
} step_t;

typedef struct st_seq_t {
    step_t steps[8];
    const k2a_http_header_t *headers;
    size_t nheaders, host_index;
    ut_result_t res[8];
} seq_t;

static void seq_fn(k2a_coro_t *co, void *arg)
{
    seq_t *s = arg;
    for (size_t i = 0; i < 8 && s->steps[i].path != NULL; ++i) {
        char u[256];
        snprintf(u, sizeof(u), "http://127.0.0.1:%d%s", srv.port, s->steps[i].path);
        k2a_http_request_t tmpl = {.affinity = s->steps[i].affinity,
                                   .close = s->steps[i].close,
                                   .headers = s->headers,
                                   .nheaders = s->nheaders,
                                   .host_index = s->host_index};
        ut_fetch(up, "GET", u, NULL, 0, &tmpl, &s->res[i]);
    }
}

static void seq_dispose(seq_t *s)
{
    for (size_t i = 0; i < 8; ++i)
        ut_result_dispose(&s->res[i]);
}

static void test_keys_never_share(void **state)
{
    assert_int_equal(k2a_upstream_create(&loop, &cfg, &up), 0);
    seq_t s = {.steps = {{"/ok", 1}, {"/ok", 1}, {"/ok", 2}, {"/ok", 1}, {"/ok", 2}, {"/ok", 0}, {"/ok", 0}}};
    ut_run(&loop, seq_fn, &s);
    for (int i = 0; i < 7; ++i) {
        assert_int_equal(s.res[i].rc, 0);
        assert_int_equal(s.res[i].status, 200);
    }
    assert_false(s.res[0].reused);
    assert_true(s.res[1].reused);  /* key 1 again */
    assert_false(s.res[2].reused); /* key 2: key 1's idle connection is not for it */
    assert_true(s.res[3].reused);
    assert_true(s.res[4].reused);
    assert_false(s.res[5].reused); /* no account: a connection of its own */
    assert_true(s.res[6].reused);
    assert_int_equal(ut_proc_stat(&srv, "accepted"), 3);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.conns_opened, 3);
    assert_int_equal(st.conns_idle, 3);
    assert_int_equal(st.conns_evicted, 0);
    seq_dispose(&s);
}

/* At the origin's connection limit, another key's idle connection is closed for the slot. */
static void test_evicts_other_key_at_limit(void **state)
{
    cfg.max_conns_per_origin = 1;
    cfg.connect_timeout_ms = 3000;
    assert_int_equal(k2a_upstream_create(&loop, &cfg, &up), 0);
    seq_t s = {.steps = {{"/ok", 1}, {"/ok", 2}, {"/ok", 1}}};
    ut_run(&loop, seq_fn, &s);
    for (int i = 0; i < 3; ++i) {
        assert_int_equal(s.res[i].rc, 0);
        assert_false(s.res[i].reused);
    }
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.conns_evicted, 2);
    assert_int_equal(st.conns_open, 1);
    assert_int_equal(ut_proc_stat(&srv, "accepted"), 3);
    seq_dispose(&s);
}

/* Two requests of one key in flight at once leave two connections; with a per-key bound of 1 only one stays idle. */
typedef struct st_job_t {
    seq_t seq;
    bool done;
} job_t;

static void job_fn(k2a_coro_t *co, void *arg)
{
    job_t *j = arg;
    seq_fn(co, &j->seq);
    j->done = true;
}

static void test_per_key_idle_bound(void **state)
{
    cfg.max_idle_per_affinity = 1;
    assert_int_equal(k2a_upstream_create(&loop, &cfg, &up), 0);
    job_t a = {.seq = {.steps = {{"/drip?n=3&interval=100", 7}}}}, b = {.seq = {.steps = {{"/drip?n=3&interval=100", 7}}}};
    assert_int_equal(k2a_coro_spawn(job_fn, &a), 0);
    assert_int_equal(k2a_coro_spawn(job_fn, &b), 0);
    while (!a.done || !b.done)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(a.seq.res[0].rc, 0);
    assert_int_equal(b.seq.res[0].rc, 0);
    assert_int_equal(a.seq.res[0].body_rc, 0);
    assert_int_equal(b.seq.res[0].body_rc, 0);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.conns_opened, 2);
    assert_int_equal(st.conns_idle, 1);
    assert_int_equal(st.conns_open, 1);
    seq_dispose(&a.seq);
    seq_dispose(&b.seq);
}

static bool head_has(const ut_result_t *r, const char *line)
{
    return memmem(r->body.base, r->body.len, line, strlen(line)) != NULL;
}

/* req.close: Connection: close on the wire (the echoed head ends there: no Content-Length on a GET), never pooled; Host where
 * host_index puts it. */
static void test_close_and_host_position(void **state)
{
    assert_int_equal(k2a_upstream_create(&loop, &cfg, &up), 0);
    k2a_http_header_t h[] = {{K2A_STRLIT("content-type"), K2A_STRLIT("application/json")},
                             {K2A_STRLIT("user-agent"), K2A_STRLIT("t")},
                             {K2A_STRLIT("authorization"), K2A_STRLIT("Bearer x")}};
    seq_t s = {.steps = {{"/echo", 5, true}, {"/echo", 5, true}}, .headers = h, .nheaders = 3, .host_index = 2};
    ut_run(&loop, seq_fn, &s);
    char expect[256];
    snprintf(expect, sizeof(expect),
             "GET /echo HTTP/1.1\r\ncontent-type: application/json\r\nuser-agent: t\r\nHost: 127.0.0.1:%d\r\n"
             "authorization: Bearer x\r\nConnection: close",
             srv.port);
    for (int i = 0; i < 2; ++i) {
        assert_int_equal(s.res[i].rc, 0);
        assert_false(s.res[i].reused);
        assert_true(head_has(&s.res[i], expect));
    }
    assert_int_equal(ut_proc_stat(&srv, "accepted"), 2);
    seq_dispose(&s);
}

/* cfg.reuse_never closes every connection; a caller's own Connection header is not doubled. */
static void test_reuse_never(void **state)
{
    cfg.reuse_never = true;
    assert_int_equal(k2a_upstream_create(&loop, &cfg, &up), 0);
    assert_false(k2a_upstream_keeps_alive(up));
    k2a_http_header_t h[] = {{K2A_STRLIT("connection"), K2A_STRLIT("close")}};
    seq_t s = {.steps = {{"/echo", 1}, {"/echo", 1}, {"/echo", 0}}, .headers = h, .nheaders = 1};
    ut_run(&loop, seq_fn, &s);
    for (int i = 0; i < 3; ++i) {
        assert_int_equal(s.res[i].rc, 0);
        assert_false(s.res[i].reused);
        assert_true(head_has(&s.res[i], "\r\nconnection: close"));
        assert_false(head_has(&s.res[i], "Connection: close"));
    }
    assert_int_equal(ut_proc_stat(&srv, "accepted"), 3);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.conns_idle, 0);
    seq_dispose(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keys_never_share, setup, teardown),
        cmocka_unit_test_setup_teardown(test_evicts_other_key_at_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_key_idle_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_and_host_position, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reuse_never, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
