/*
 * The per-account machineId announced in the Kiro user agents: derivation from the configured credential
 * (sha256 of "KotlinNativeAPI/" + refresh token, or "KiroAPIKey/" + a ksk_ key; vectors computed with
 * Python's hashlib), the configured value (64 hex lower-cased, a UUID doubled), and the KIRO_AUTH_TOKEN
 * error naming the entry and the field for anything else.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "core/errors.h"
#include "pool/pool.h"

static void test_derived(void **state)
{
    char out[65];
    k2a_account_config_t cfg = {.refresh_token = "aorAAAAAGtest-refresh-token"};
    k2a_account_machine_id(&cfg, out);
    assert_string_equal(out, "3e938764a1862c4d9f5c8b3a49710133f3bd6a2b61a41dc884e876b111b5d6b6");
    cfg.refresh_token = "ksk_abcdef0123456789";
    k2a_account_machine_id(&cfg, out);
    assert_string_equal(out, "828fe1740af3d8700a248338e7f5049b935286bda1510ee8d6b506fb89a70f2a");
    cfg.refresh_token = "";
    k2a_account_machine_id(&cfg, out);
    assert_string_equal(out, "f65e166c20480ae3d5f32a8c877ea609505bf797eed98f09139f99a46f9793ce");
    /* a configured value wins */
    cfg.refresh_token = "aorAAAAAGtest-refresh-token";
    cfg.machine_id = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    k2a_account_machine_id(&cfg, out);
    assert_string_equal(out, cfg.machine_id);
}

static void test_normalize(void **state)
{
    char out[65];
    assert_int_equal(k2a_machine_id_normalize("0123456789ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef", out), 0);
    assert_string_equal(out, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    assert_int_equal(k2a_machine_id_normalize("F81D4FAE-7DEC-11D0-A765-00A0C91E6BF6", out), 0);
    assert_string_equal(out, "f81d4fae7dec11d0a76500a0c91e6bf6f81d4fae7dec11d0a76500a0c91e6bf6");
    assert_int_equal(k2a_machine_id_normalize("f81d4fae7dec11d0a76500a0c91e6bf6", out), 0);
    assert_string_equal(out, "f81d4fae7dec11d0a76500a0c91e6bf6f81d4fae7dec11d0a76500a0c91e6bf6");
    const char *bad[] = {"",
                         "abc",
                         "f81d4fae7dec11d0a76500a0c91e6bf",                                    /* 31 */
                         "f81d4fae7dec11d0a76500a0c91e6bf6f",                                  /* 33 */
                         "f81d4fae-7dec11d0a76500a0c91e6bf6",                                  /* one dash */
                         "f81d4fae7-dec-11d0-a765-00a0c91e6bf6",                               /* dashes misplaced */
                         "g81d4fae7dec11d0a76500a0c91e6bf6",                                   /* not hex */
                         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef00", /* 66 */
                         "0123456789abcdef-0123456789abcdef0123456789abcdef0123456789abcdef"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i)
        assert_int_equal(k2a_machine_id_normalize(bad[i], out), K2A_EINVAL);
}

static void test_config(void **state)
{
    char err[256];
    k2a_account_list_t l;
    assert_int_equal(k2a_pool_parse_accounts_json("[{\"refreshToken\":\"a\"},{\"refreshToken\":\"b\","
                                                  "\"machineId\":\"F81D4FAE-7DEC-11D0-A765-00A0C91E6BF6\"}]",
                                                  &l, err, sizeof(err)),
                     0);
    assert_int_equal(l.n, 2);
    assert_null(l.entries[0].machine_id);
    assert_string_equal(l.entries[1].machine_id, "f81d4fae7dec11d0a76500a0c91e6bf6f81d4fae7dec11d0a76500a0c91e6bf6");
    char a[65], b[65];
    k2a_account_machine_id(&l.entries[0], a);
    k2a_account_machine_id(&l.entries[1], b);
    assert_int_equal(strlen(a), 64);
    assert_string_equal(b, l.entries[1].machine_id);
    k2a_account_list_dispose(&l);

    assert_int_equal(k2a_pool_parse_accounts_json("[{\"refreshToken\":\"a\"},{\"refreshToken\":\"b\",\"machineId\":\"xyz\"}]", &l,
                                                  err, sizeof(err)),
                     K2A_ECONFIG);
    assert_non_null(strstr(err, "entry 1"));
    assert_non_null(strstr(err, "machineId"));
    assert_int_equal(k2a_pool_parse_accounts_json("{\"refreshToken\":\"a\",\"machineId\":42}", &l, err, sizeof(err)), K2A_ECONFIG);
    assert_non_null(strstr(err, "entry 0: machineId"));
    /* null is the same as absent */
    assert_int_equal(k2a_pool_parse_accounts_json("{\"refreshToken\":\"a\",\"machineId\":null}", &l, err, sizeof(err)), 0);
    assert_null(l.entries[0].machine_id);
    k2a_account_list_dispose(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_derived),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
