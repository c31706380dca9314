/*
 * Pacing and session-sticky routing (pool/pace.h, pool/sticky.h): the rolling window of attempts (count, full,
 * next slot, expiry, resize) and the session table (pins, moves, idle expiry, the LRU cap, per-owner counts,
 * forgetting an owner, growth) plus the session key's order of sources.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "core/errors.h"
#include "pool/pace.h"
#include "pool/sticky.h"

#define W 60000

static void test_window_basic(void **state)
{
    (void)state;
    k2a_pace_window_t w = {0};
    assert_int_equal(k2a_pace_window_resize(&w, 3), 0);
    assert_false(k2a_pace_window_full(&w, 1000, W));
    assert_int_equal(k2a_pace_window_next_slot(&w, 1000, W), 1000);
    k2a_pace_window_note(&w, 1000);
    k2a_pace_window_note(&w, 2000);
    assert_int_equal(k2a_pace_window_count(&w, 2000, W), 2);
    assert_false(k2a_pace_window_full(&w, 2000, W));
    k2a_pace_window_note(&w, 3000);
    assert_true(k2a_pace_window_full(&w, 3000, W));
    /* the next slot opens when the oldest attempt leaves the window */
    assert_int_equal(k2a_pace_window_next_slot(&w, 3000, W), 1000 + W);
    assert_true(k2a_pace_window_full(&w, 1000 + W - 1, W));
    assert_false(k2a_pace_window_full(&w, 1000 + W, W));
    assert_int_equal(k2a_pace_window_count(&w, 1000 + W, W), 2);
    k2a_pace_window_note(&w, 1000 + W);
    assert_true(k2a_pace_window_full(&w, 1000 + W, W));
    assert_int_equal(k2a_pace_window_next_slot(&w, 1000 + W, W), 2000 + W);
    /* long idle: everything expires */
    assert_int_equal(k2a_pace_window_count(&w, 10 * W, W), 0);
    k2a_pace_window_dispose(&w);
}

/* Whatever the arrival pattern, no W-long window ever holds more than rpm noted attempts when every attempt waits for
 * its slot. */
static void test_window_never_exceeds(void **state)
{
    (void)state;
    enum { RPM = 6, N = 500 };
    k2a_pace_window_t w = {0};
    assert_int_equal(k2a_pace_window_resize(&w, RPM), 0);
    uint64_t times[N], now = 0, seed = 12345;
    for (int i = 0; i < N; ++i) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        now += (seed >> 33) % 4000; /* bursts and gaps */
        uint64_t slot = k2a_pace_window_next_slot(&w, now, W);
        if (slot > now)
            now = slot; /* the request waits for its slot */
        assert_false(k2a_pace_window_full(&w, now, W));
        k2a_pace_window_note(&w, now);
        times[i] = now;
    }
    for (int i = RPM; i < N; ++i)
        assert_true(times[i] - times[i - RPM] >= W);
    k2a_pace_window_dispose(&w);
}

static void test_window_resize(void **state)
{
    (void)state;
    k2a_pace_window_t w = {0};
    assert_int_equal(k2a_pace_window_resize(&w, 4), 0);
    for (uint64_t t = 1; t <= 4; ++t)
        k2a_pace_window_note(&w, t * 100);
    /* smaller: the newest entries stay */
    assert_int_equal(k2a_pace_window_resize(&w, 2), 0);
    assert_int_equal(k2a_pace_window_count(&w, 500, W), 2);
    assert_int_equal(k2a_pace_window_next_slot(&w, 500, W), 300 + W);
    /* larger: room again */
    assert_int_equal(k2a_pace_window_resize(&w, 5), 0);
    assert_false(k2a_pace_window_full(&w, 500, W));
    /* 0: unpaced, nothing recorded */
    assert_int_equal(k2a_pace_window_resize(&w, 0), 0);
    k2a_pace_window_note(&w, 600);
    assert_false(k2a_pace_window_full(&w, 600, W));
    assert_int_equal(k2a_pace_window_count(&w, 600, W), 0);
    k2a_pace_window_dispose(&w);
}

/* owners are small counters: the callback keeps them as the pool keeps per-account session counts */
static int counts[8];
static void on_owner(void *from, void *to)
{
    if (from != NULL)
        --*(int *)from;
    if (to != NULL)
        ++*(int *)to;
}

static void test_table_pin_move(void **state)
{
    (void)state;
    memset(counts, 0, sizeof(counts));
    k2a_sticky_table_t t;
    assert_int_equal(k2a_sticky_table_init(&t, 100, 1000, on_owner), 0);
    assert_null(k2a_sticky_table_get(&t, 42, 0));
    assert_int_equal(k2a_sticky_table_pin(&t, 42, &counts[1], 0), 0);
    k2a_sticky_entry_t *e = k2a_sticky_table_get(&t, 42, 10);
    assert_non_null(e);
    assert_ptr_equal(e->owner, &counts[1]);
    assert_int_equal(counts[1], 1);
    /* moved: stays on the new owner */
    assert_int_equal(k2a_sticky_table_pin(&t, 42, &counts[2], 20), 0);
    assert_int_equal(counts[1], 0);
    assert_int_equal(counts[2], 1);
    assert_ptr_equal(k2a_sticky_table_get(&t, 42, 30)->owner, &counts[2]);
    assert_int_equal(t.n, 1);
    k2a_sticky_table_dispose(&t);
}

static void test_table_idle_expiry(void **state)
{
    (void)state;
    memset(counts, 0, sizeof(counts));
    k2a_sticky_table_t t;
    assert_int_equal(k2a_sticky_table_init(&t, 100, 1000, on_owner), 0);
    for (uint64_t k = 1; k <= 10; ++k)
        assert_int_equal(k2a_sticky_table_pin(&t, k, &counts[0], k), 0);
    assert_int_equal(counts[0], 10);
    /* key 10 used recently, the others idle: a lookup of an idle key finds nothing */
    assert_non_null(k2a_sticky_table_get(&t, 10, 900));
    assert_null(k2a_sticky_table_get(&t, 5, 1500));
    /* lookups expire the idle ones oldest first, a few at a time */
    for (int i = 0; i < 10; ++i)
        k2a_sticky_table_get(&t, 999, 1500);
    assert_int_equal(t.n, 1);
    assert_int_equal(counts[0], 1);
    assert_non_null(k2a_sticky_table_get(&t, 10, 1500));
    assert_true(t.expired >= 9);
    k2a_sticky_table_dispose(&t);
}

static void test_table_lru_cap(void **state)
{
    (void)state;
    memset(counts, 0, sizeof(counts));
    k2a_sticky_table_t t;
    assert_int_equal(k2a_sticky_table_init(&t, 3, 1000000, on_owner), 0);
    k2a_sticky_table_pin(&t, 1, &counts[0], 1);
    k2a_sticky_table_pin(&t, 2, &counts[0], 2);
    k2a_sticky_table_pin(&t, 3, &counts[0], 3);
    assert_non_null(k2a_sticky_table_get(&t, 1, 4)); /* 1 is now the most recent; 2 the least */
    k2a_sticky_table_pin(&t, 4, &counts[1], 5);
    assert_int_equal(t.n, 3);
    assert_int_equal(t.evicted, 1);
    assert_null(k2a_sticky_table_get(&t, 2, 6));
    assert_non_null(k2a_sticky_table_get(&t, 1, 6));
    assert_non_null(k2a_sticky_table_get(&t, 3, 6));
    assert_non_null(k2a_sticky_table_get(&t, 4, 6));
    assert_int_equal(counts[0] + counts[1], 3);
    k2a_sticky_table_dispose(&t);
}

static void test_table_growth_and_forget(void **state)
{
    (void)state;
    memset(counts, 0, sizeof(counts));
    k2a_sticky_table_t t;
    enum { N = 10000 };
    assert_int_equal(k2a_sticky_table_init(&t, N, 1000000, on_owner), 0);
    for (uint64_t k = 1; k <= N; ++k)
        assert_int_equal(k2a_sticky_table_pin(&t, k * 0x9E3779B97F4A7C15ULL, &counts[k % 4], 1), 0);
    assert_int_equal(t.n, N);
    assert_true(t.nbuckets >= N);
    for (uint64_t k = 1; k <= N; ++k)
        assert_ptr_equal(k2a_sticky_table_get(&t, k * 0x9E3779B97F4A7C15ULL, 2)->owner, &counts[k % 4]);
    k2a_sticky_table_forget_owner(&t, &counts[2]);
    assert_int_equal(counts[2], 0);
    assert_int_equal(t.n, N - N / 4);
    assert_null(k2a_sticky_table_get(&t, 2 * 0x9E3779B97F4A7C15ULL, 3));
    k2a_sticky_table_dispose(&t);
}

static void test_session_key(void **state)
{
    (void)state;
    k2a_str_t none = K2A_STR_NULL, s1 = K2A_STRLIT("3f2a-session"), u1 = K2A_STRLIT("alice");
    uint64_t client = k2a_sticky_client_key(k2a_str("sk-client", 9));
    assert_int_not_equal(client, 0);
    assert_int_equal(k2a_sticky_client_key(none), 0);
    assert_int_equal(k2a_sticky_key(none, none, 0), 0);
    assert_int_equal(k2a_sticky_key(none, none, client), client);
    uint64_t ks = k2a_sticky_key(s1, u1, client), ku = k2a_sticky_key(none, u1, client);
    assert_int_not_equal(ks, 0);
    assert_int_not_equal(ku, 0);
    assert_int_not_equal(ks, ku);
    assert_int_not_equal(ku, client);
    /* stable, and the session wins over the user and the key */
    assert_int_equal(ks, k2a_sticky_key(s1, none, 0));
    assert_int_equal(ku, k2a_sticky_key(none, u1, 0));
    /* the same text as a session and as a user are different sessions only by kind, never equal to the client hash */
    assert_int_not_equal(k2a_sticky_key(u1, none, 0), ku);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_basic),
        cmocka_unit_test(test_window_never_exceeds),
        cmocka_unit_test(test_window_resize),
        cmocka_unit_test(test_table_pin_move),
        cmocka_unit_test(test_table_idle_expiry),
        cmocka_unit_test(test_table_lru_cap),
        cmocka_unit_test(test_table_growth_and_forget),
        cmocka_unit_test(test_session_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
