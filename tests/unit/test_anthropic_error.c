/*
 * Anthropic error mapping: every K2A_E* code maps to a status/type pair that is consistent with the Anthropic
 * status/type convention; chosen codes map as documented; the JSON body and the SSE error event are byte-exact
 * (escaping included); the Kiro HTTP error classifier reads status, reason and message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <yajl/yajl_tree.h>
#include "convert/anthropic_error.h"
#include "convert/kiro_resp.h"
#include "core/errors.h"

static void expect_map(int err, int status, const char *type)
{
    k2a_anthropic_error_map_t m = k2a_anthropic_error_map(err);
    if (m.status != status || strcmp(m.type, type) != 0)
        fail_msg("%s: got %d %s, want %d %s", k2a_errname(err), m.status, m.type, status, type);
}

static void test_table(void **state)
{
    expect_map(K2A_EJSON_SYNTAX, 400, "invalid_request_error");
    expect_map(K2A_EEMPTY_MESSAGES, 400, "invalid_request_error");
    expect_map(K2A_EUPSTREAM_BAD_REQUEST, 400, "invalid_request_error");
    expect_map(K2A_EUPSTREAM_CONTENT_LENGTH, 400, "invalid_request_error");
    expect_map(K2A_EMODEL_UNKNOWN, 404, "not_found_error");
    expect_map(K2A_ETOOBIG, 413, "request_too_large");
    expect_map(K2A_EPAYLOAD_TOOBIG, 400, "invalid_request_error");
    expect_map(K2A_ECLIENT_AUTH, 401, "authentication_error");
    expect_map(K2A_ETHROTTLED, 429, "rate_limit_error");
    expect_map(K2A_EEXHAUSTED, 429, "rate_limit_error");
    expect_map(K2A_ENO_ACCOUNT, 503, "overloaded_error");
    expect_map(K2A_EBUSY, 503, "overloaded_error");
    expect_map(K2A_EUPSTREAM_AUTH, 503, "overloaded_error");
    expect_map(K2A_EUPSTREAM_SERVER, 529, "overloaded_error");
    expect_map(K2A_EUPSTREAM_TRUNCATED, 502, "api_error");
    expect_map(K2A_ERESET_MID_BODY, 502, "api_error");
    expect_map(K2A_EES_MESSAGE_CRC, 502, "api_error");
    expect_map(K2A_EIDLE_TIMEOUT, 504, "api_error");
    expect_map(K2A_EINTERNAL, 500, "api_error");
    expect_map(K2A_ENOMEM, 500, "api_error");
    expect_map(0, 500, "api_error");
    expect_map(-100000, 500, "api_error");
}

/* Every code of errors.h maps to a status whose type agrees with k2a_anthropic_error_type_for_status(), except the
 * statuses Anthropic has no type of its own for (502/504/501 use api_error, 503 overloaded_error). */
static void test_table_consistent(void **state)
{
    for (int err = -1; err >= -K2A__EIDX_MAX; --err) {
        k2a_anthropic_error_map_t m = k2a_anthropic_error_map(err);
        assert_true(m.status >= 400 && m.status <= 599);
        if (strcmp(m.type, k2a_anthropic_error_type_for_status(m.status)) != 0)
            fail_msg("%s: %d %s disagrees with the status convention", k2a_errname(err), m.status, m.type);
    }
    assert_string_equal(k2a_anthropic_error_type_for_status(401), "authentication_error");
    assert_string_equal(k2a_anthropic_error_type_for_status(403), "permission_error");
    assert_string_equal(k2a_anthropic_error_type_for_status(422), "invalid_request_error");
    assert_string_equal(k2a_anthropic_error_type_for_status(529), "overloaded_error");
    assert_string_equal(k2a_anthropic_error_type_for_status(500), "api_error");
}

static void test_bodies(void **state)
{
    k2a_buf_t b;
    k2a_buf_init(&b, 0);
    int status = 0;
    assert_int_equal(
        k2a_anthropic_error_body(&b, K2A_ENO_ACCOUNT,
                                 K2A_STRLIT("all 3 accounts failed: account 0: quota exhausted (MONTHLY_REQUEST_COUNT); "
                                            "account 1: \"banned\""),
                                 &status),
        0);
    assert_int_equal(status, 503);
    assert_string_equal(k2a_buf_cstr(&b),
                        "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"all 3 accounts "
                        "failed: account 0: quota exhausted (MONTHLY_REQUEST_COUNT); account 1: "
                        "\\\"banned\\\"\"}}");
    yajl_val v = yajl_tree_parse(b.base, NULL, 0);
    assert_non_null(v);
    yajl_tree_free(v);

    k2a_buf_reset(&b);
    assert_int_equal(k2a_anthropic_error_event(&b, K2A_EUPSTREAM_TRUNCATED, K2A_STR_NULL), 0);
    assert_string_equal(k2a_buf_cstr(&b), "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":"
                                          "\"upstream: response stream ended early\"}}\n\n");

    k2a_buf_reset(&b);
    assert_int_equal(k2a_anthropic_error_sse(&b, "rate_limit_error", K2A_STRLIT("line1\nline2")), 0);
    assert_string_equal(
        k2a_buf_cstr(&b),
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"line1\\nline2\"}}\n\n");

    /* a bounded buffer reports its limit */
    k2a_buf_t small;
    k2a_buf_init(&small, 16);
    assert_int_equal(k2a_anthropic_error_json(&small, "api_error", K2A_STRLIT("x")), K2A_ETOOBIG);
    k2a_buf_dispose(&small);
    k2a_buf_dispose(&b);
}

static void expect_http(int status, const char *body, int want, const char *want_msg)
{
    k2a_buf_t m;
    k2a_buf_init(&m, 0);
    int got = k2a_kiro_resp_classify_http(status, body, strlen(body), &m);
    if (got != want)
        fail_msg("HTTP %d %s: got %s, want %s", status, body, k2a_errname(got), k2a_errname(want));
    assert_string_equal(m.len ? k2a_buf_cstr(&m) : "", want_msg);
    k2a_buf_dispose(&m);
}

static void test_classify_http(void **state)
{
    expect_http(400, "{\"message\":\"Improperly formed request.\",\"reason\":null}", K2A_EUPSTREAM_BAD_REQUEST,
                "Improperly formed request.");
    expect_http(400, "{\"message\":\"Input is too long.\",\"reason\":\"CONTENT_LENGTH_EXCEEDS_THRESHOLD\"}",
                K2A_EUPSTREAM_CONTENT_LENGTH, "Input is too long. (CONTENT_LENGTH_EXCEEDS_THRESHOLD)");
    expect_http(402, "{\"message\":\"You have reached the limit.\",\"reason\":\"MONTHLY_REQUEST_COUNT\"}", K2A_EEXHAUSTED,
                "You have reached the limit. (MONTHLY_REQUEST_COUNT)");
    expect_http(403, "{\"message\":\"The bearer token included in the request is invalid.\"}", K2A_EUPSTREAM_AUTH,
                "The bearer token included in the request is invalid.");
    expect_http(429, "{\"message\":\"Too many requests, please wait before trying again.\",\"reason\":null}", K2A_ETHROTTLED,
                "Too many requests, please wait before trying again.");
    expect_http(503, "Service Unavailable", K2A_EUPSTREAM_SERVER, "Service Unavailable");
    expect_http(418, "", K2A_EHTTP_STATUS, "");
    assert_int_equal(k2a_kiro_resp_classify_http(500, NULL, 0, NULL), K2A_EUPSTREAM_SERVER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_table_consistent),
        cmocka_unit_test(test_bodies),
        cmocka_unit_test(test_classify_http),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
