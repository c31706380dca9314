/*
 * Pacing and session-sticky routing on a pool (pool/pace.h, pool/sticky.h), without the network: a pool whose tokens come
 * from an in-memory store (tests/unit/support/pool_fixture.h). KIRO_ACCOUNT_RPM takes an account out of the rotation at its pace
 * and refuses with K2A_EPACED and the time until the next slot when every account is at its pace (outside a coroutine: no wait), a
 * queued acquire gets the first slot, a per-account "rpm" and "max_concurrency" override the global ones, /readyz stays ready;
 * sticky routing keeps a session on its account, moves it when the account cools and keeps it there when the account recovers,
 * counts sessions per account, forgets the sessions of an account a reload removes, and refuses bad "rpm" values in the account
 * JSON.
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
#include "core/coro.h"
#include "core/errors.h"
#include "core/log.h"
#include "pool/health.h"
#include "pool/internal.h"
#include "pool/pool.h"
#include "pool/store.h"
#include "pool_fixture.h"

static k2a_pool_config_t config(unsigned rpm, unsigned window_s, uint32_t wait_ms)
{
    k2a_pool_config_t pc;
    k2a_pool_config_init(&pc);
    pc.account_rpm = rpm;
    pc.pace_window_s = window_s;
    pc.pace_wait_ms = wait_ms;
    return pc;
}

static void test_pace_refuses_then_frees(void **state)
{
    (void)state;
    pf_fixture_t f;
    k2a_pool_config_t pc = config(2, 1, 0);
    pf_fixture_start(&f, 2, K2A_POOL_ROUND_ROBIN, &pc, NULL);
    k2a_lease_t l;
    int counts[2] = {0, 0};
    for (int i = 0; i < 4; ++i) {
        ++counts[pf_take_index(&f, &l)];
        k2a_pool_release(&l);
    }
    assert_int_equal(counts[0], 2);
    assert_int_equal(counts[1], 2);
    assert_true(f.pool->accounts[0]->paced && f.pool->accounts[1]->paced);
    assert_int_equal(f.pool->neligible, 0);
    uint64_t retry = 0;
    assert_int_equal(k2a_pool_acquire(f.pool, NULL, NULL, NULL, &l, &retry), K2A_EPACED);
    assert_true(retry >= 1 && retry <= 1000);
    assert_true(k2a_pool_ready(f.pool)); /* paced, not unusable */
    k2a_buf_t json = K2A_BUF_INIT(0);
    assert_int_equal(k2a_pool_render_tokens_json(f.pool, &json), 0);
    assert_non_null(strstr(k2a_buf_cstr(&json), "\"pace\":{\"attempts\":2,\"rpm\":2,\"window_s\":1,\"paced\":true}"));
    k2a_buf_dispose(&json);
    /* the pool timer brings them back when the window has passed */
    while (f.pool->neligible < 2)
        uv_run(&f.loop, UV_RUN_ONCE);
    assert_false(f.pool->accounts[0]->paced);
    assert_int_equal(k2a_pace_attempts(f.pool->accounts[0]), 0);
    pf_take_index(&f, &l);
    k2a_pool_release(&l);
    pf_fixture_stop(&f);
}

typedef struct st_waiter_t {
    pf_fixture_t *f;
    int rc;
    uint64_t retry;
    bool done;
} waiter_t;

static void waiting_acquire(k2a_coro_t *co, void *arg)
{
    (void)co;
    waiter_t *w = arg;
    k2a_lease_t l;
    w->rc = k2a_pool_acquire(w->f->pool, NULL, NULL, NULL, &l, &w->retry);
    if (w->rc == 0)
        k2a_pool_release(&l);
    w->done = true;
}

static void test_pace_wait(void **state)
{
    (void)state;
    for (int pass = 0; pass < 2; ++pass) {
        /* pass 0: the wait (3 s) outlasts the window (1 s): served; pass 1: it does not (100 ms): K2A_EPACED */
        pf_fixture_t f;
        k2a_pool_config_t pc = config(1, 1, pass == 0 ? 3000 : 100);
        pf_fixture_start(&f, 1, K2A_POOL_BALANCED, &pc, NULL);
        k2a_lease_t l;
        pf_take_index(&f, &l);
        k2a_pool_release(&l);
        waiter_t w[2] = {{.f = &f}, {.f = &f}};
        for (int i = 0; i < 2; ++i)
            assert_int_equal(k2a_coro_spawn(waiting_acquire, &w[i]), 0);
        uv_run(&f.loop, UV_RUN_NOWAIT);
        assert_false(w[0].done);
        while (!w[0].done || !w[1].done)
            uv_run(&f.loop, UV_RUN_ONCE);
        if (pass == 0) {
            /* FIFO: the first gets the slot after 1 s, the second the one after (2 s), both within the 3 s wait */
            assert_int_equal(w[0].rc, 0);
            assert_int_equal(w[1].rc, 0);
        } else {
            assert_int_equal(w[0].rc, K2A_EPACED);
            assert_int_equal(w[1].rc, K2A_EPACED);
            assert_true(w[0].retry >= 1 && w[0].retry <= 1000);
        }
        pf_fixture_stop(&f);
    }
}

static void test_per_account_limits(void **state)
{
    (void)state;
    pf_fixture_t f;
    k2a_pool_config_t pc = config(0, 60, 0);
    pc.account_max_concurrency = 5;
    pf_fixture_start(&f, 2, K2A_POOL_ROUND_ROBIN, &pc, ",\"rpm\":1,\"max_concurrency\":1");
    assert_int_equal(k2a_account_rpm(f.pool->accounts[0]), 1);
    assert_int_equal(k2a_account_rpm(f.pool->accounts[1]), 0);
    assert_int_equal(k2a_account_max_concurrency(f.pool->accounts[0]), 1);
    assert_int_equal(k2a_account_max_concurrency(f.pool->accounts[1]), 5);
    assert_true(f.pool->caps_vary);
    k2a_lease_t l;
    int counts[2] = {0, 0};
    for (int i = 0; i < 6; ++i) {
        ++counts[pf_take_index(&f, &l)];
        k2a_pool_release(&l);
    }
    assert_int_equal(counts[0], 1); /* one attempt per minute */
    assert_int_equal(counts[1], 5);
    pf_fixture_stop(&f);
    /* max_concurrency 1 on account 0 (balanced: the caps differ, so the pick looks past a capped account) */
    pc = config(0, 60, 0);
    pf_fixture_start(&f, 2, K2A_POOL_BALANCED, &pc, ",\"max_concurrency\":1");
    k2a_lease_t held[4];
    int n0 = 0;
    for (int i = 0; i < 4; ++i)
        n0 += pf_take_index(&f, &held[i]) == 0;
    assert_int_equal(n0, 1);
    for (int i = 0; i < 4; ++i)
        k2a_pool_release(&held[i]);
    pf_fixture_stop(&f);
}

static size_t take_session(pf_fixture_t *f, uint64_t session, const char **why)
{
    k2a_pool_exclude_t ex = {.n = 0, .session = session};
    k2a_lease_t l;
    int r = k2a_pool_acquire(f->pool, &ex, NULL, NULL, &l, NULL);
    if (r != 0)
        fail_msg("acquire: %s", k2a_errname(r));
    if (why != NULL)
        *why = ex.why;
    size_t i = l.index;
    k2a_pool_release(&l);
    return i;
}

static void test_sticky_pool(void **state)
{
    (void)state;
    pf_fixture_t f;
    k2a_pool_config_t pc = config(0, 60, 0);
    pf_fixture_start(&f, 3, K2A_POOL_STICKY, &pc, NULL);
    assert_true(k2a_sticky_enabled(f.pool));
    enum { S = 9 };
    size_t home[S];
    const char *why;
    for (uint64_t s = 0; s < S; ++s) {
        home[s] = take_session(&f, s + 1, &why);
        assert_string_equal(why, "new: least-loaded");
    }
    for (size_t i = 0; i < 3; ++i)
        assert_int_equal(k2a_sticky_sessions(f.pool->accounts[i]), 3); /* new sessions spread (least recently used) */
    for (int turn = 0; turn < 3; ++turn)
        for (uint64_t s = 0; s < S; ++s) {
            assert_int_equal(take_session(&f, s + 1, &why), home[s]);
            assert_string_equal(why, "sticky hit");
        }
    /* account 0 cools: its sessions move, and stay moved when it recovers */
    pf_cool(&f, 0, 429);
    size_t moved[S];
    for (uint64_t s = 0; s < S; ++s) {
        moved[s] = take_session(&f, s + 1, &why);
        if (home[s] == 0) {
            assert_int_not_equal(moved[s], 0);
            assert_string_equal(why, "moved: cooling");
        } else {
            assert_int_equal(moved[s], home[s]);
        }
    }
    k2a_account_set_state(f.pool->accounts[0], K2A_ACCOUNT_OK, 0, "");
    for (uint64_t s = 0; s < S; ++s)
        assert_int_equal(take_session(&f, s + 1, NULL), moved[s]);
    assert_int_equal(k2a_sticky_sessions(f.pool->accounts[0]), 0);
    assert_int_equal(k2a_sticky_sessions(f.pool->accounts[1]) + k2a_sticky_sessions(f.pool->accounts[2]), S);
    /* a request that already failed on its account moves too */
    k2a_pool_exclude_t ex = {.ids = {f.pool->accounts[moved[0]]->id}, .n = 1, .session = 1};
    k2a_lease_t l;
    assert_int_equal(k2a_pool_acquire(f.pool, &ex, NULL, NULL, &l, NULL), 0);
    assert_int_not_equal(l.index, moved[0]);
    assert_string_equal(ex.why, "moved: failed in this request");
    size_t now_home = l.index;
    k2a_pool_release(&l);
    assert_int_equal(take_session(&f, 1, NULL), now_home);
    /* a reload that drops account 2 forgets its sessions */
    size_t on2 = k2a_sticky_sessions(f.pool->accounts[2]);
    assert_true(on2 > 0);
    char err[256];
    char *two = pf_accounts_json(2, NULL);
    assert_int_equal(k2a_pool_reload(f.pool, two, err, sizeof(err)), 0);
    free(two);
    assert_int_equal(f.pool->sticky.n, S - on2);
    pf_fixture_stop(&f);
}

static void test_pace_config_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "[{\"refreshToken\":\"rt\",\"rpm\":-1}]",
        "[{\"refreshToken\":\"rt\",\"rpm\":\"6\"}]",
        "[{\"refreshToken\":\"rt\",\"max_concurrency\":1.5}]",
        "[{\"refreshToken\":\"rt\",\"max_concurrency\":100001}]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        k2a_account_list_t l;
        char err[256] = "";
        assert_int_equal(k2a_pool_parse_accounts_json(bad[i], &l, err, sizeof(err)), K2A_ECONFIG);
        assert_non_null(strstr(err, "entry 0"));
    }
    k2a_account_list_t l;
    char err[256];
    assert_int_equal(
        k2a_pool_parse_accounts_json("[{\"refreshToken\":\"rt\",\"rpm\":6,\"max_concurrency\":0},{\"refreshToken\":\"r2\"}]", &l,
                                     err, sizeof(err)),
        0);
    assert_true(l.entries[0].has_rpm && l.entries[0].rpm == 6);
    assert_true(l.entries[0].has_max_concurrency && l.entries[0].max_concurrency == 0);
    assert_false(l.entries[1].has_rpm || l.entries[1].has_max_concurrency);
    k2a_account_list_dispose(&l);
    k2a_pool_strategy_t s;
    assert_int_equal(k2a_pool_parse_strategy("sticky", &s), 0);
    assert_int_equal(s, K2A_POOL_STICKY);
    assert_string_equal(k2a_pool_strategy_name(s), "sticky");
}

int main(void)
{
    k2a_log_configure(K2A_LOG_ERROR, K2A_LOG_TEXT, true, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pace_refuses_then_frees), cmocka_unit_test(test_pace_wait),
        cmocka_unit_test(test_per_account_limits),      cmocka_unit_test(test_sticky_pool),
        cmocka_unit_test(test_pace_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
