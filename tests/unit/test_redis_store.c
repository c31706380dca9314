/*
 * The shared store's pure helpers (pool/store_redis.h): KIRO_REDIS_URL parsing (password, host, IPv6, port, db,
 * and one-line errors that never echo the password) and the merge rule that decides what another replica's record
 * replaces here (a newer refresh-token version, a later-expiring access token, a later state).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "core/errors.h"
#include "pool/store_redis.h"

static void test_url_ok(void **state)
{
    (void)state;
    k2a_redis_url_t u;
    char err[256];
    assert_int_equal(k2a_redis_url_parse("redis://127.0.0.1:6380/2", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 2);
    assert_string_equal(u.password, "");
    assert_int_equal(k2a_redis_url_parse("redis://redis", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "redis");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_int_equal(k2a_redis_url_parse("redis://:s3cr/t@cache.internal:7000/", &u, err, sizeof(err)), 0);
    assert_string_equal(u.password, "s3cr/t");
    assert_string_equal(u.host, "cache.internal");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 0);
    assert_int_equal(k2a_redis_url_parse("redis://default:pw@h:1/15", &u, err, sizeof(err)), 0); /* the user is ignored */
    assert_string_equal(u.password, "pw");
    assert_int_equal(u.db, 15);
    assert_int_equal(k2a_redis_url_parse("redis://[::1]:6390/1", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 6390);
    assert_int_equal(u.db, 1);
}

static void test_url_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {
        NULL,
        "",
        "http://127.0.0.1:6379",
        "rediss://127.0.0.1",
        "redis://",
        "redis://:6379",
        "redis://h:0",
        "redis://h:65536",
        "redis://h:12x",
        "redis://h:6379/16",
        "redis://h:6379/a",
        "redis://user@h",
        "redis://:@h",
        "redis://[::1",
        "redis://[::1]x",
        "redis://h o:1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        k2a_redis_url_t u;
        char err[256] = "";
        assert_int_equal(k2a_redis_url_parse(bad[i], &u, err, sizeof(err)), K2A_ECONFIG);
        assert_non_null(strstr(err, "KIRO_REDIS_URL"));
        assert_null(strchr(err, '\n'));
    }
    char err[256];
    k2a_redis_url_t u;
    assert_int_equal(k2a_redis_url_parse("redis://:hunter2@h:99999", &u, err, sizeof(err)), K2A_ECONFIG);
    assert_null(strstr(err, "hunter2"));
}

static void test_merge(void **state)
{
    (void)state;
    const int64_t now = 1000000;
    /* nothing newer: nothing taken */
    assert_int_equal(k2a_redis_merge(3, 3, now + 5000, now + 5000, 10, 10, now), 0);
    /* a stale writer's record (older version, earlier expiry, older state) never replaces ours */
    assert_int_equal(k2a_redis_merge(4, 3, now + 5000, now + 4000, 10, 9, now), 0);
    /* a newer rotation */
    assert_int_equal(k2a_redis_merge(3, 4, now + 5000, now + 5000, 10, 10, now), K2A_REDIS_TAKE_RT);
    /* a later-expiring access token, but not an expired one */
    assert_int_equal(k2a_redis_merge(3, 3, now + 5000, now + 6000, 10, 10, now), K2A_REDIS_TAKE_AT);
    assert_int_equal(k2a_redis_merge(3, 3, 0, now - 1, 10, 10, now), 0);
    assert_int_equal(k2a_redis_merge(0, 0, 0, now + 1, 0, 0, now), K2A_REDIS_TAKE_AT);
    /* a later state */
    assert_int_equal(k2a_redis_merge(3, 3, now, now, 10, 11, now), K2A_REDIS_TAKE_STATE);
    /* all at once (a replica that starts from its configuration) */
    assert_int_equal(k2a_redis_merge(0, 7, 0, now + 1, 0, 5, now), K2A_REDIS_TAKE_RT | K2A_REDIS_TAKE_AT | K2A_REDIS_TAKE_STATE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_ok),
        cmocka_unit_test(test_url_bad),
        cmocka_unit_test(test_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
