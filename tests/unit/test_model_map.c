/*
 * Model map: the naming rule for every name current Claude Code and the SDKs send (dated and undated,
 * "-thinking", "[1m]"), pass-through of dotted and non-Claude IDs, invalid names, KIRO_MODEL_MAP overrides
 * and their errors, and the helpers of catalogs and /v1/models (same-model test, Anthropic aliases,
 * display names, default context windows).
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

static void expect_full(const k2a_model_map_t *m, const char *name, const char *id, bool thinking, bool family, const char *pub)
{
    k2a_model_resolution_t r;
    k2a_convert_error_t err;
    int rc = k2a_model_map_resolve(m, k2a_cstr(name), &r, &err);
    if (rc != 0) {
        print_error("%s: %s\n", name, err.message);
        fail();
    }
    if (!k2a_str_eq_lit(r.kiro_model_id, id) || r.thinking_forced != thinking || r.by_family != family ||
        (pub != NULL && !k2a_str_eq_lit(r.public_name, pub))) {
        print_error("%s: got %.*s thinking=%d family=%d public=%.*s\n", name, (int)r.kiro_model_id.len, r.kiro_model_id.base,
                    r.thinking_forced, r.by_family, (int)r.public_name.len, r.public_name.base);
        fail();
    }
}

static void expect(const k2a_model_map_t *m, const char *name, const char *id, bool thinking)
{
    expect_full(m, name, id, thinking, false, NULL);
}

static void expect_invalid(const k2a_model_map_t *m, const char *name, size_t len)
{
    k2a_model_resolution_t r;
    k2a_convert_error_t err;
    assert_int_equal(k2a_model_map_resolve(m, k2a_str(name, len), &r, &err), K2A_EMODEL_INVALID);
    assert_int_equal(err.code, K2A_EMODEL_INVALID);
    assert_non_null(strstr(err.message, "not a valid model name"));
}

static void test_rule_claude_code_names(void **state)
{
    k2a_model_map_t *m;
    k2a_convert_error_t err;
    assert_int_equal(k2a_model_map_create(NULL, 0, &m, &err), 0);
    /* Opus 4.5 - 4.8 and 5 */
    expect(m, "claude-opus-4-5-20251101", "claude-opus-4.5", false);
    expect(m, "claude-opus-4-5", "claude-opus-4.5", false);
    expect(m, "claude-opus-4-6", "claude-opus-4.6", false);
    expect(m, "claude-opus-4-6[1m]", "claude-opus-4.6", false);
    expect(m, "claude-opus-4-7", "claude-opus-4.7", false);
    expect(m, "claude-opus-4-7-20260416", "claude-opus-4.7", false);
    expect(m, "claude-opus-4-8", "claude-opus-4.8", false);
    expect(m, "claude-opus-4-8[1m]", "claude-opus-4.8", false);
    expect(m, "claude-opus-5", "claude-opus-5", false);
    expect(m, "claude-opus-5-20261015", "claude-opus-5", false);
    expect(m, "claude-opus-5-thinking", "claude-opus-5", true);
    expect(m, "claude-opus-4-6-20260205", "claude-opus-4.6", false);
    expect(m, "claude-opus-4-8-thinking[1m]", "claude-opus-4.8", true);
    expect(m, "claude-opus-4-1-20250805", "claude-opus-4.1", false);
    expect(m, "claude-opus-4-20250514", "claude-opus-4", false);
    /* Sonnet 4 - 4.6 and 5 */
    expect(m, "claude-sonnet-4-20250514", "claude-sonnet-4", false);
    expect(m, "claude-sonnet-4-0", "claude-sonnet-4", false);
    expect(m, "claude-sonnet-4.0", "claude-sonnet-4", false);
    expect(m, "claude-sonnet-4", "claude-sonnet-4", false);
    expect(m, "claude-sonnet-4-5", "claude-sonnet-4.5", false);
    expect(m, "claude-sonnet-4-5-20250929", "claude-sonnet-4.5", false);
    expect(m, "claude-sonnet-4-5-20250929[1m]", "claude-sonnet-4.5", false);
    expect(m, "claude-sonnet-4-6", "claude-sonnet-4.6", false);
    expect(m, "claude-sonnet-4-6[1m]", "claude-sonnet-4.6", false);
    expect(m, "claude-sonnet-5", "claude-sonnet-5", false);
    expect(m, "claude-sonnet-5[1m]", "claude-sonnet-5", false);
    expect(m, "claude-sonnet-5-20260901", "claude-sonnet-5", false);
    expect(m, "claude-sonnet-4-6-20260217", "claude-sonnet-4.6", false);
    expect(m, "claude-sonnet-4-6-thinking", "claude-sonnet-4.6", true);
    /* Haiku 4.5 */
    expect(m, "claude-haiku-4-5", "claude-haiku-4.5", false);
    expect(m, "claude-haiku-4-5-20251001", "claude-haiku-4.5", false);
    expect(m, "claude-haiku-4-5-20251001-thinking", "claude-haiku-4.5", true);
    /* the Claude 3 order */
    expect(m, "claude-3-7-sonnet-20250219", "claude-sonnet-3.7", false);
    expect(m, "claude-3-7-sonnet-latest", "claude-3-7-sonnet-latest", false); /* no form matches: unchanged */
    expect(m, "claude-3.7-sonnet", "claude-sonnet-3.7", false);
    expect(m, "claude-3-5-haiku-20241022", "claude-haiku-3.5", false);
    expect(m, "claude-3-opus-20240229", "claude-opus-3", false);
    /* -thinking, alone and with dates and brackets, in any order */
    expect(m, "claude-sonnet-4-5-thinking", "claude-sonnet-4.5", true);
    expect(m, "claude-opus-4-8-thinking", "claude-opus-4.8", true);
    expect(m, "claude-sonnet-4-5-20250929-thinking", "claude-sonnet-4.5", true);
    expect(m, "claude-opus-4-6-thinking[1m]", "claude-opus-4.6", true);
    expect(m, "claude-opus-4-6[1m]-thinking", "claude-opus-4.6", true);
    expect(m, "claude-3-7-sonnet-20250219-thinking", "claude-sonnet-3.7", true);
    expect_full(m, "claude-opus-4-8-thinking", "claude-opus-4.8", true, false, "claude-opus-4-8");
    /* case: Claude names are matched in lower case, suffixes included (fuzz finding: "-thinkiNg" survived one pass) */
    expect(m, "Claude-Opus-4-5", "claude-opus-4.5", false);
    expect(m, "claude-opus-4-5-THINKING[1M]", "claude-opus-4.5", true);
    expect(m, "gpt-5.6-Thinking", "gpt-5.6-Thinking", false); /* other names keep their case */
    k2a_model_map_destroy(m);
}

static void test_rule_pass_through(void **state)
{
    k2a_model_map_t *m;
    k2a_convert_error_t err;
    assert_int_equal(k2a_model_map_create(NULL, 0, &m, &err), 0);
    expect(m, "auto", "auto", false);
    expect(m, "claude-opus-4.5", "claude-opus-4.5", false);
    expect(m, "claude-sonnet-4.6", "claude-sonnet-4.6", false);
    expect(m, "claude-haiku-4.5", "claude-haiku-4.5", false);
    expect(m, "deepseek-3.2", "deepseek-3.2", false);
    expect(m, "gpt-5.6-sol", "gpt-5.6-sol", false);
    expect(m, "minimax-m2.5", "minimax-m2.5", false);
    expect(m, "qwen3-coder-next", "qwen3-coder-next", false);
    expect(m, "glm-5", "glm-5", false);
    expect(m, "gpt-4o", "gpt-4o", false);
    expect(m, "deepseek-3.2-thinking", "deepseek-3.2", true);
    expect(m, "CLAUDE_SONNET_4_5_20250929_V1_0", "CLAUDE_SONNET_4_5_20250929_V1_0", false);
    /* never a different family or version */
    expect(m, "claude-sonnet-4-5-foo", "claude-sonnet-4-5-foo", false);
    expect(m, "claude-opus", "claude-opus", false);
    k2a_model_map_destroy(m);
}

static void test_rule_invalid(void **state)
{
    k2a_model_map_t *m;
    k2a_convert_error_t err;
    assert_int_equal(k2a_model_map_create(NULL, 0, &m, &err), 0);
    expect_invalid(m, "", 0);
    expect_invalid(m, "claude-opus-4 8", 15);
    expect_invalid(m, "claude\n", 7);
    expect_invalid(m, "a\0b", 3);
    expect_invalid(m, "a\"b", 3);
    expect_invalid(m, "caf\xc3\xa9", 5);
    expect_invalid(m, "-thinking", 9);
    expect_invalid(m, "[1m]", 4);
    expect_invalid(m, "claude-opus-", 12);
    char big[200];
    memset(big, 'a', sizeof(big));
    expect_invalid(m, big, 129);
    expect(m, (memset(big, 'a', 128), big[128] = '\0', big), big, false); /* 128 bytes is fine */
    /* the message never echoes control characters */
    k2a_model_resolution_t r;
    assert_int_equal(k2a_model_map_resolve(m, K2A_STRLIT("x\x1b[31m"), &r, &err), K2A_EMODEL_INVALID);
    assert_null(strchr(err.message, '\x1b'));
    k2a_model_map_destroy(m);
}

static void test_normalize_direct(void **state)
{
    char out[K2A_MODEL_ID_MAX + 1];
    bool thinking;
    assert_int_equal(k2a_model_normalize(K2A_STRLIT("claude-opus-4-5-20251101-thinking"), out, sizeof(out), &thinking), 0);
    assert_string_equal(out, "claude-opus-4.5");
    assert_true(thinking);
    assert_int_equal(k2a_model_normalize(K2A_STRLIT("x"), out, 10, &thinking), K2A_EMODEL_INVALID); /* buffer too small */
}

static void test_env_overrides(void **state)
{
    static const char env[] =
        "{\"claude-opus-*\":\"claude-opus-4.5\",\"my-model\":\"claude-sonnet-4.5\","
        "\"claude-3-7-sonnet-20250219\":null,\"claude-opus-4-8\":\"claude-opus-4.8\",\"x-thinking\":\"auto\"}";
    k2a_model_map_t *m;
    k2a_convert_error_t err;
    assert_int_equal(k2a_model_map_create(env, strlen(env), &m, &err), 0);
    expect_full(m, "claude-opus-4-6", "claude-opus-4.5", false, true, "claude-opus-4-6");
    expect_full(m, "claude-opus-4-8", "claude-opus-4.8", false, false, "claude-opus-4-8"); /* exact beats family */
    expect_full(m, "my-model", "claude-sonnet-4.5", false, false, "my-model");
    expect_full(m, "my-model-thinking", "claude-sonnet-4.5", true, false, "my-model");
    expect_full(m, "x-thinking", "auto", true, false, "x");
    expect(m, "claude-sonnet-4-6", "claude-sonnet-4.6", false); /* the rule for the rest */
    k2a_model_resolution_t r;
    assert_int_equal(k2a_model_map_resolve(m, K2A_STRLIT("claude-3-7-sonnet-20250219"), &r, &err), K2A_EMODEL_UNKNOWN);
    assert_non_null(strstr(err.message, "refused by KIRO_MODEL_MAP"));
    k2a_model_map_destroy(m);

    /* the longest family prefix wins */
    static const char env2[] = "{\"claude-sonnet-*\":\"claude-sonnet-4.5\",\"claude-sonnet-4-6*\":\"claude-sonnet-4.6\"}";
    assert_int_equal(k2a_model_map_create(env2, strlen(env2), &m, &err), 0);
    expect_full(m, "claude-sonnet-4-6-20260101", "claude-sonnet-4.6", false, true, NULL);
    expect_full(m, "claude-sonnet-4-7", "claude-sonnet-4.5", false, true, NULL);
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
    static const char env[] = "{\"gone\":null,\"zz-model\":\"auto\",\"aa-model-thinking\":\"auto\",\"aa-model\":\"auto\"}";
    k2a_model_map_t *m;
    k2a_convert_error_t err;
    assert_int_equal(k2a_model_map_create(env, strlen(env), &m, &err), 0);
    size_t n = k2a_model_map_count(m);
    assert_int_equal(n, 4); /* aa-model, aa-model-thinking, zz-model, zz-model-thinking */
    for (size_t i = 0; i < n; ++i) {
        k2a_str_t name = k2a_model_map_name(m, i);
        if (i != 0)
            assert_true(strcmp(k2a_model_map_name(m, i - 1).base, name.base) < 0);
        k2a_model_resolution_t r;
        assert_int_equal(k2a_model_map_resolve(m, name, &r, &err), 0);
    }
    assert_true(k2a_str_eq_lit(k2a_model_map_name(m, 0), "aa-model"));
    assert_true(k2a_str_eq_lit(k2a_model_map_name(m, n - 1), "zz-model-thinking"));
    assert_null(k2a_model_map_name(m, n).base);
    k2a_model_map_destroy(m);
}

static void test_helpers(void **state)
{
    assert_true(k2a_model_id_same("claude-sonnet-4", 15, "claude-sonnet-4.0", 17));
    assert_true(k2a_model_id_same("claude-sonnet-4.0", 17, "claude-sonnet-4", 15));
    assert_true(k2a_model_id_same("auto", 4, "auto", 4));
    assert_false(k2a_model_id_same("claude-sonnet-4", 15, "claude-sonnet-4.5", 17));
    assert_false(k2a_model_id_same("claude-sonnet-4", 15, "claude-sonnet-4.", 16));
    assert_false(k2a_model_id_same("auto", 4, "auto.0", 6)); /* ".0" only after a version digit */

    char out[160];
    assert_true(k2a_model_anthropic_alias("claude-opus-4.5", out, sizeof(out)));
    assert_string_equal(out, "claude-opus-4-5");
    assert_true(k2a_model_anthropic_alias("claude-sonnet-4.6", out, sizeof(out)));
    assert_string_equal(out, "claude-sonnet-4-6");
    assert_true(k2a_model_anthropic_alias("claude-sonnet-3.7", out, sizeof(out)));
    assert_string_equal(out, "claude-3-7-sonnet");
    assert_false(k2a_model_anthropic_alias("claude-sonnet-5", out, sizeof(out)));
    assert_false(k2a_model_anthropic_alias("claude-sonnet-4", out, sizeof(out)));
    assert_false(k2a_model_anthropic_alias("deepseek-3.2", out, sizeof(out)));
    /* every alias maps back to its id */
    k2a_model_map_t *m;
    k2a_convert_error_t err;
    assert_int_equal(k2a_model_map_create(NULL, 0, &m, &err), 0);
    for (size_t i = 0; k2a_model_builtin_ids[i] != NULL; ++i) {
        if (k2a_model_anthropic_alias(k2a_model_builtin_ids[i], out, sizeof(out)))
            expect(m, out, k2a_model_builtin_ids[i], false);
        expect(m, k2a_model_builtin_ids[i], k2a_model_builtin_ids[i], false);
    }
    k2a_model_map_destroy(m);

    k2a_model_display_name("claude-opus-4.5", out, sizeof(out));
    assert_string_equal(out, "Claude Opus 4.5");
    k2a_model_display_name("claude-sonnet-5", out, sizeof(out));
    assert_string_equal(out, "Claude Sonnet 5");
    k2a_model_display_name("auto", out, sizeof(out));
    assert_string_equal(out, "Auto");
    k2a_model_display_name("glm-5", out, sizeof(out));
    assert_string_equal(out, "glm-5");

    assert_int_equal(k2a_model_default_window(K2A_STRLIT("claude-opus-4.5").base, 15), 200000);
    assert_int_equal(k2a_model_default_window("claude-opus-4.6", 15), 1000000);
    assert_int_equal(k2a_model_default_window("claude-opus-4.8", 15), 1000000);
    assert_int_equal(k2a_model_default_window("claude-sonnet-4.6", 17), 1000000);
    assert_int_equal(k2a_model_default_window("claude-sonnet-4.5", 17), 200000);
    assert_int_equal(k2a_model_default_window("claude-sonnet-4", 15), 200000);
    assert_int_equal(k2a_model_default_window("claude-sonnet-5", 15), 1000000);
    assert_int_equal(k2a_model_default_window("claude-opus-5", 13), 1000000);
    assert_int_equal(k2a_model_default_window("claude-haiku-4.5", 16), 200000);
    assert_int_equal(k2a_model_default_window("claude-haiku-4.6", 16), 200000);
    assert_int_equal(k2a_model_default_window("deepseek-3.2", 12), 128000);
    assert_int_equal(k2a_model_default_window("auto", 4), 200000);
    assert_int_equal(k2a_model_default_window(NULL, 0), 200000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule_claude_code_names),
        cmocka_unit_test(test_rule_pass_through),
        cmocka_unit_test(test_rule_invalid),
        cmocka_unit_test(test_normalize_direct),
        cmocka_unit_test(test_env_overrides),
        cmocka_unit_test(test_env_errors),
        cmocka_unit_test(test_listing),
        cmocka_unit_test(test_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
