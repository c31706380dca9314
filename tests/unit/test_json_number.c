/*
 * Unit tests for convert/json_number.h: the strtod-free reading of short decimals gives bit for bit the double strtod
 * gives (seeded random decimals of 1..15 digits with the point anywhere and either sign, the edges of the range, the
 * signed zero), and refuses, without writing, every spelling it does not cover (exponents, 16+ digits, a bare point,
 * signs and blanks strtod would take, trailing bytes), which its callers then hand to strtod.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "convert/json_number.h"
#include "core/rand.h"

static void expect_same(const char *s)
{
    double fast = 12345.0, ref = strtod(s, NULL);
    assert_true(k2a_json_decimal_fast(s, strlen(s), &fast));
    if (memcmp(&fast, &ref, sizeof(fast)) != 0)
        fail_msg("%s: %.17g, strtod %.17g", s, fast, ref);
}

static void expect_refused(const char *s)
{
    double v = 12345.0;
    assert_false(k2a_json_decimal_fast(s, strlen(s), &v));
    assert_true(v == 12345.0);
}

static void test_fixed_cases(void **state)
{
    (void)state;
    static const char *same[] = {"0",
                                 "-0",
                                 "0.0",
                                 "-0.0",
                                 "1",
                                 "1024",
                                 "0.5",
                                 "0.1",
                                 "0.2",
                                 "0.3",
                                 "1.15",
                                 "41.31",
                                 "0.4131",
                                 "99.99999",
                                 "123456789012345",
                                 "-123456789012345",
                                 "0.00000000000001",
                                 "9007199254740.99",
                                 "999999999999999",
                                 "0.99999999999999",
                                 "3.14159265358979",
                                 "007",
                                 "1.00000000000000"};
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); ++i)
        expect_same(same[i]);
    double z = 1.0;
    assert_true(k2a_json_decimal_fast("-0", 2, &z));
    assert_true(z == 0.0 && signbit(z)); /* strtod's signed zero */
    static const char *refused[] = {"",
                                    "-",
                                    ".",
                                    "1.",
                                    ".5",
                                    "-.5",
                                    "1e3",
                                    "1E3",
                                    "1.5e-3",
                                    "1234567890123456",
                                    "0.1234567890123456",
                                    "0.000000000000001",
                                    "+1",
                                    " 1",
                                    "1 ",
                                    "0x10",
                                    "inf",
                                    "nan",
                                    "1.2.3",
                                    "--1",
                                    "1-",
                                    "12a"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); ++i)
        expect_refused(refused[i]);
    /* the length bounds the read: a number followed by more bytes, read up to its end only */
    double v = 0;
    assert_true(k2a_json_decimal_fast("2.5,\"x\"", 3, &v));
    assert_true(v == 2.5);
}

static void test_random_against_strtod(void **state)
{
    (void)state;
    uint64_t seed = 0x6a09e667f3bcc908ULL;
    char s[40];
    for (int t = 0; t < 200000; ++t) {
        uint64_t r = k2a_splitmix64(&seed);
        size_t digits = 1 + (size_t)(r % 15), point = (size_t)((r >> 8) % (digits + 1)), n = 0;
        if ((r >> 16) & 1)
            s[n++] = '-';
        for (size_t d = 0; d < digits; ++d) {
            if (d == point && d != 0)
                s[n++] = '.';
            uint64_t x = k2a_splitmix64(&seed);
            /* runs of 9s and 0s find the rounding edges more often than uniform digits */
            s[n++] = (x & 3) == 0 ? '9' : (x & 3) == 1 ? '0' : (char)('0' + (x >> 8) % 10);
        }
        s[n] = '\0';
        expect_same(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_cases),
        cmocka_unit_test(test_random_against_strtod),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
