/*
 * Model map: kiro2api's default table, family rules, the -thinking suffix, unknown names (an error listing
 * the valid names, never a downgrade), KIRO_MODEL_MAP merging and its errors, and the /v1/models listing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "core/errors.h"
#include "convert/model_map.h"

static void expect(const k2a_model_map_t *m, const char *name, const char *id, bool thinking, bool family, const char *pub)
{
    k2a_model_resolution_t r;
    k2a_convert_error_t err;
    int rc = k2a_model_map_resolve(m, k2a_cstr(name), &r, &err);
    if (rc != 0) {
        print_error("%s: %s\n", name, err.message);
        fail();
    }
    if (!k2a_str_eq_lit(r.kiro_model_id, id) || r.thinking_forced != thinking || r.by_family != family ||
        !k2a_str_eq_lit(r.public_name, pub)) {
        print_error("%s: got %.*s thinking=%d family=%d public=%.*s\n", name, (int)r.kiro_model_id.len, r.kiro_model_id.base,
                    r.thinking_forced, r.by_family, (int)r.public_name.len, r.public_name.base);
        fail();
    }
}

static void expect_unknown(const k2a_model_map_t *m, const char *name)
{
    k2a_model_resolution_t r;
    k2a_convert_error_t err;
    assert_int_equal(k2a_model_map_resolve(m, k2a_cstr(name), &r, &err), K2A_EMODEL_UNKNOWN);
    assert_int_equal(err.code, K2A_EMODEL_UNKNOWN);
    assert_non_null(strstr(err.message, "is not available"));
}

#define SONNET45 "CLAUDE_SONNET_4_5_20250929_V1_0"

static void test_defaults(void **state)
{
    k2a_model_map_t *m;
    k2a_convert_error_t err;
    assert_int_equal(k2a_model_map_create(NULL, 0, &m, &err), 0);
    /* kiro2api's table, exact strings (§2.7) */
    expect(m, "claude-sonnet-4-5", SONNET45, false, false, "claude-sonnet-4-5");
    expect(m, "claude-sonnet-4-5-20250929", SONNET45, false, false, "claude-sonnet-4-5-20250929");
    expect(m, "claude-sonnet-4-20250514", "CLAUDE_SONNET_4_20250514_V1_0", false, false, "claude-sonnet-4-20250514");
    expect(m, "claude-3-7-sonnet-20250219", "CLAUDE_3_7_SONNET_20250219_V1_0", false, false, "claude-3-7-sonnet-20250219");
    expect(m, "claude-3-5-haiku-20241022", "auto", false, false, "claude-3-5-haiku-20241022");
    expect(m, "claude-haiku-4-5-20251001", "auto", false, false, "claude-haiku-4-5-20251001");
    /* families: the names Claude Code asks for today */
    expect(m, "claude-opus-4-8", SONNET45, false, true, "claude-opus-4-8");
    expect(m, "claude-opus-5-5", SONNET45, false, true, "claude-opus-5-5");
    expect(m, "claude-opus-4-5-20251101", SONNET45, false, true, "claude-opus-4-5-20251101");
    expect(m, "claude-sonnet-5", SONNET45, false, true, "claude-sonnet-5");
    expect(m, "claude-sonnet-4-6", SONNET45, false, true, "claude-sonnet-4-6");
    expect(m, "claude-haiku-4-5", "auto", false, true, "claude-haiku-4-5");
    /* -thinking */
    expect(m, "claude-sonnet-4-5-thinking", SONNET45, true, false, "claude-sonnet-4-5");
    expect(m, "claude-opus-4-8-thinking", SONNET45, true, true, "claude-opus-4-8");
    expect(m, "claude-3-7-sonnet-20250219-thinking", "CLAUDE_3_7_SONNET_20250219_V1_0", true, false, "claude-3-7-sonnet-20250219");
    /* unknown */
    expect_unknown(m, "gpt-4o");
    expect_unknown(m, "claude-opus-");
    expect_unknown(m, "claude-opus-4 8");
    expect_unknown(m, "claude-3-5-sonnet-20241022");
    expect_unknown(m, "CLAUDE-SONNET-4-5");
    expect_unknown(m, "");
    expect_unknown(m, "-thinking");
    k2a_model_map_destroy(m);
}

static void test_unknown_message_lists_names(void **state)
{
    k2a_model_map_t *m;
    k2a_convert_error_t err;
    k2a_model_resolution_t r;
    assert_int_equal(k2a_model_map_create(NULL, 0, &m, &err), 0);
    assert_int_equal(k2a_model_map_resolve(m, K2A_STRLIT("gpt-4o"), &r, &err), K2A_EMODEL_UNKNOWN);
    assert_non_null(strstr(err.message, "model \"gpt-4o\" is not available"));
    assert_non_null(strstr(err.message, "claude-sonnet-4-5-20250929"));
    assert_non_null(strstr(err.message, "claude-haiku-4-5-20251001"));
    assert_non_null(strstr(err.message, "claude-opus-*"));
    assert_non_null(strstr(err.message, "-thinking"));
    k2a_model_map_destroy(m);
}

static void test_env_merge(void **state)
{
    static const char env[] = "{\"claude-opus-*\":\"claude-opus-4.5\",\"my-model\":\"CLAUDE_SONNET_4_20250514_V1_0\","
                              "\"claude-3-7-sonnet-20250219\":null,\"claude-sonnet-4-5\":\"claude-sonnet-4.5\","
                              "\"claude-opus-4-8\":\"claude-opus-4.8\",\"x-thinking\":\"auto\"}";
    k2a_model_map_t *m;
    k2a_convert_error_t err;
    assert_int_equal(k2a_model_map_create(env, strlen(env), &m, &err), 0);
    expect(m, "claude-opus-4-5", "claude-opus-4.5", false, true, "claude-opus-4-5");
    expect(m, "claude-opus-4-8", "claude-opus-4.8", false, false, "claude-opus-4-8"); /* exact beats family */
    expect(m, "my-model", "CLAUDE_SONNET_4_20250514_V1_0", false, false, "my-model");
    expect(m, "my-model-thinking", "CLAUDE_SONNET_4_20250514_V1_0", true, false, "my-model");
    expect(m, "claude-sonnet-4-5", "claude-sonnet-4.5", false, false, "claude-sonnet-4-5");
    expect(m, "x-thinking", "auto", true, false, "x");
    expect_unknown(m, "claude-3-7-sonnet-20250219");
    k2a_model_map_destroy(m);

    /* the longest family prefix wins */
    static const char env2[] = "{\"claude-sonnet-4-6*\":\"claude-sonnet-4.6\"}";
    assert_int_equal(k2a_model_map_create(env2, strlen(env2), &m, &err), 0);
    expect(m, "claude-sonnet-4-6-20260101", "claude-sonnet-4.6", false, true, "claude-sonnet-4-6-20260101");
    expect(m, "claude-sonnet-4-7", SONNET45, false, true, "claude-sonnet-4-7");
    k2a_model_map_destroy(m);
}

static void expect_env_error(const char *env, const char *msg)
{
    k2a_model_map_t *m = NULL;
    k2a_convert_error_t err;
    int rc = k2a_model_map_create(env, strlen(env), &m, &err);
    if (rc != K2A_ECONFIG || strstr(err.message, msg) == NULL) {
        print_error("%s: got %d \"%s\", expected CONFIG with \"%s\"\n", env, rc, err.message, msg);
        fail();
    }
    assert_null(m);
}

static void test_env_errors(void **state)
{
    expect_env_error("not json", "KIRO_MODEL_MAP: not valid JSON");
    expect_env_error("[\"a\"]", "KIRO_MODEL_MAP: expected a JSON object");
    expect_env_error("{\"a\":\"ok\",\"bad\":5}", "entry \"bad\": expected a string");
    expect_env_error("{\"bad\":\"has space\"}", "entry \"bad\": invalid Kiro modelId \"has space\"");
    expect_env_error("{\"bad\":\"\"}", "entry \"bad\": invalid Kiro modelId");
    expect_env_error("{\"a*b\":\"x\"}", "entry \"a*b\": invalid name");
    expect_env_error("{\"*\":\"x\"}", "entry \"*\": invalid name");
    expect_env_error("{\"\":\"x\"}", "entry \"\": invalid name");
}

static void test_listing(void **state)
{
    static const char env[] = "{\"claude-3-7-sonnet-20250219\":null,\"zz-model\":\"auto\",\"aa-model-thinking\":\"auto\","
                              "\"aa-model\":\"auto\"}";
    k2a_model_map_t *m;
    k2a_convert_error_t err;
    assert_int_equal(k2a_model_map_create(env, strlen(env), &m, &err), 0);
    size_t n = k2a_model_map_count(m);
    /* 5 remaining defaults + zz-model + aa-model, each with its -thinking variant (aa-model-thinking listed once) */
    assert_int_equal(n, 14);
    for (size_t i = 0; i < n; ++i) {
        k2a_str_t name = k2a_model_map_name(m, i);
        assert_non_null(name.base);
        if (i != 0) {
            k2a_str_t prev = k2a_model_map_name(m, i - 1);
            assert_true(strcmp(prev.base, name.base) < 0); /* sorted, unique */
        }
        assert_null(strchr(name.base, '*'));
        assert_null(strstr(name.base, "claude-3-7-sonnet"));
        k2a_model_resolution_t r;
        assert_int_equal(k2a_model_map_resolve(m, name, &r, &err), 0); /* everything listed is accepted */
    }
    assert_true(k2a_str_eq_lit(k2a_model_map_name(m, 0), "aa-model"));
    assert_true(k2a_str_eq_lit(k2a_model_map_name(m, 1), "aa-model-thinking"));
    assert_true(k2a_str_eq_lit(k2a_model_map_name(m, n - 1), "zz-model-thinking"));
    assert_null(k2a_model_map_name(m, n).base);
    k2a_model_map_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),  cmocka_unit_test(test_unknown_message_lists_names),
        cmocka_unit_test(test_env_merge), cmocka_unit_test(test_env_errors),
        cmocka_unit_test(test_listing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
