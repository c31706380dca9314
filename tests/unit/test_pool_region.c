/*
 * Regions, profile ARNs and endpoint templates (pool/region.h): ARN parsing, which ARN each credential kind sends
 * on generateAssistantResponse and on REST calls (never the Builder ID placeholder there), the data-plane region
 * order (ARN, apiRegion, region, us-east-1) and `{region}` URL templating.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "core/errors.h"
#include "pool/region.h"

#define ARN_US "arn:aws:codewhisperer:us-east-1:610548660232:profile/VNECVYCYYAWN"
#define ARN_EU "arn:aws:codewhisperer:eu-central-1:123456789012:profile/ABC_def-9"

static void test_arn_parse(void **state)
{
    (void)state;
    char region[K2A_REGION_MAX];
    assert_int_equal(k2a_arn_parse(ARN_US, region), 0);
    assert_string_equal(region, "us-east-1");
    assert_int_equal(k2a_arn_parse(ARN_EU, region), 0);
    assert_string_equal(region, "eu-central-1");
    assert_int_equal(k2a_arn_parse(K2A_ARN_BUILDER_ID, NULL), 0);
    assert_int_equal(k2a_arn_parse(K2A_ARN_SOCIAL_DEFAULT, NULL), 0);
    static const char *const bad[] = {
        NULL,
        "",
        "arn:aws:codewhisperer:",
        "arn:aws:codewhisperer::123456789012:profile/X",
        "arn:aws:codewhisperer:us-east-1:12345678901:profile/X",   /* 11 digits */
        "arn:aws:codewhisperer:us-east-1:1234567890123:profile/X", /* 13 */
        "arn:aws:codewhisperer:us-east-1:123456789012:profile/",
        "arn:aws:codewhisperer:us-east-1:123456789012:profile/X Y",
        "arn:aws:codewhisperer:us-east-1:123456789012:user/X",
        "arn:aws:q:us-east-1:123456789012:profile/X",
        "arn:aws:codewhisperer:US-EAST-1:123456789012:profile/X",
        "arn:aws:codewhisperer:us-east-1:123456789012:profile/X\n",
        "arn:aws:codewhisperer:us-east-1-very-long-region-name-x:123456789012:profile/X",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i)
        if (k2a_arn_parse(bad[i], region) != K2A_EINVAL)
            fail_msg("case %zu (%s) parsed", i, bad[i] != NULL ? bad[i] : "NULL");
    assert_int_equal(k2a_arn_parse("arn:aws:codewhisperer:ap-south-1:123456789012:profile/X", region), K2A_EUNSUPPORTED);
}

static void test_arn_choice(void **state)
{
    (void)state;
    /* generate: configured > learned > the kind's default; none for API keys */
    assert_string_equal(k2a_arn_for_generate(K2A_ARN_KIND_SOCIAL, NULL, NULL), K2A_ARN_SOCIAL_DEFAULT);
    assert_string_equal(k2a_arn_for_generate(K2A_ARN_KIND_SOCIAL, "", ARN_US), ARN_US);
    assert_string_equal(k2a_arn_for_generate(K2A_ARN_KIND_SOCIAL, ARN_EU, ARN_US), ARN_EU);
    assert_string_equal(k2a_arn_for_generate(K2A_ARN_KIND_IDC, NULL, ARN_US), ARN_US);
    assert_string_equal(k2a_arn_for_generate(K2A_ARN_KIND_IDC, NULL, NULL), K2A_ARN_BUILDER_ID);
    assert_string_equal(k2a_arn_for_generate(K2A_ARN_KIND_BUILDER_ID, NULL, ""), K2A_ARN_BUILDER_ID);
    assert_string_equal(k2a_arn_for_generate(K2A_ARN_KIND_BUILDER_ID, ARN_EU, NULL), ARN_EU);
    assert_string_equal(k2a_arn_for_generate(K2A_ARN_KIND_EXTERNAL_IDP, NULL, ARN_EU), ARN_EU);
    assert_string_equal(k2a_arn_for_generate(K2A_ARN_KIND_EXTERNAL_IDP, NULL, NULL), K2A_ARN_BUILDER_ID);
    assert_null(k2a_arn_for_generate(K2A_ARN_KIND_API_KEY, ARN_US, ARN_US));
    /* REST: the same, never the placeholder */
    assert_null(k2a_arn_for_rest(K2A_ARN_KIND_BUILDER_ID, NULL, NULL));
    assert_null(k2a_arn_for_rest(K2A_ARN_KIND_IDC, NULL, NULL));
    assert_null(k2a_arn_for_rest(K2A_ARN_KIND_IDC, K2A_ARN_BUILDER_ID, NULL)); /* even when configured */
    assert_null(k2a_arn_for_rest(K2A_ARN_KIND_API_KEY, NULL, NULL));
    assert_string_equal(k2a_arn_for_rest(K2A_ARN_KIND_SOCIAL, NULL, NULL), K2A_ARN_SOCIAL_DEFAULT);
    assert_string_equal(k2a_arn_for_rest(K2A_ARN_KIND_IDC, NULL, ARN_EU), ARN_EU);
}

static void test_data_region(void **state)
{
    (void)state;
    char buf[K2A_REGION_MAX];
    assert_string_equal(k2a_data_region(ARN_EU, "us-east-1", "us-east-1", buf), "eu-central-1");
    assert_string_equal(k2a_data_region(ARN_US, "eu-central-1", NULL, buf), "us-east-1");
    assert_string_equal(k2a_data_region(NULL, "eu-central-1", "us-east-1", buf), "eu-central-1");
    assert_string_equal(k2a_data_region("", "", "eu-central-1", buf), "eu-central-1");
    assert_string_equal(k2a_data_region("not-an-arn", NULL, NULL, buf), "us-east-1");
    assert_string_equal(k2a_data_region(NULL, NULL, NULL, buf), "us-east-1");
    /* the placeholder is a us-east-1 ARN: a Builder ID account's data plane is us-east-1 */
    assert_string_equal(k2a_data_region(K2A_ARN_BUILDER_ID, NULL, "eu-central-1", buf), "us-east-1");
    assert_int_equal(k2a_region_index("us-east-1"), 0);
    assert_int_equal(k2a_region_index("eu-central-1"), 1);
    assert_int_equal(k2a_region_index("us-west-2"), -1);
    assert_int_equal(k2a_region_index(NULL), -1);
}

static void test_region_fill(void **state)
{
    (void)state;
    static const char *const v[][3] = {
        {"https://q.{region}.amazonaws.com", "eu-central-1", "https://q.eu-central-1.amazonaws.com"},
        {"http://127.0.0.1:8123/{region}", "us-east-1", "http://127.0.0.1:8123/us-east-1"},
        {"http://127.0.0.1:8123", "us-east-1", "http://127.0.0.1:8123"},
        {"https://{region}.x/{region}/", "eu-central-1", "https://eu-central-1.x/eu-central-1/"},
        {"{region}", "us-east-1", "us-east-1"},
        {"{regio}{region", "us-east-1", "{regio}{region"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); ++i) {
        k2a_buf_t b = K2A_BUF_INIT(0);
        assert_int_equal(k2a_region_fill(v[i][0], v[i][1], &b), 0);
        assert_non_null(k2a_buf_cstr(&b));
        assert_string_equal(b.base, v[i][2]);
        k2a_buf_dispose(&b);
    }
    k2a_buf_t small = K2A_BUF_INIT(8);
    assert_int_equal(k2a_region_fill("https://q.{region}.amazonaws.com", "us-east-1", &small), K2A_ETOOBIG);
    k2a_buf_dispose(&small);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arn_parse),
        cmocka_unit_test(test_arn_choice),
        cmocka_unit_test(test_data_region),
        cmocka_unit_test(test_region_fill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
