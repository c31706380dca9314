/*
 * The admin API's account bodies (pool/admin_internal.h k2a_pool_admin_account_json): an account object re-encoded
 * without "disabled", Kiro's own token file (object or text) for Social and IdC/Builder ID logins with the client
 * registration, and the refusals (wrong shapes, missing registration, nested values), whose messages never carry the
 * refresh token.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "core/errors.h"
#include "pool/admin_internal.h"

static int convert(const char *body_json, char *out, size_t outsz, bool *disabled, char *err, size_t errlen)
{
    yajl_val body = yajl_tree_parse(body_json, NULL, 0);
    assert_non_null(body);
    k2a_buf_t b = K2A_BUF_INIT(0);
    int r = k2a_pool_admin_account_json(body, &b, disabled, err, errlen);
    if (r == 0) {
        assert_true(b.len < outsz);
        memcpy(out, b.base, b.len);
        out[b.len] = '\0';
    }
    k2a_buf_dispose(&b);
    yajl_tree_free(body);
    return r;
}

static void test_account_object(void **state)
{
    (void)state;
    char out[1024], err[256];
    bool disabled = false;
    assert_int_equal(convert("{\"auth\":\"Social\",\"refreshToken\":\"rt-1\",\"disabled\":true,\"description\":\"a \\\"b\\\"\"}",
                             out, sizeof(out), &disabled, err, sizeof(err)),
                     0);
    assert_string_equal(out, "{\"auth\":\"Social\",\"refreshToken\":\"rt-1\",\"description\":\"a \\\"b\\\"\"}");
    assert_true(disabled);
    assert_int_equal(convert("{\"refreshToken\":\"rt-2\",\"machineId\":null}", out, sizeof(out), &disabled, err, sizeof(err)), 0);
    assert_string_equal(out, "{\"refreshToken\":\"rt-2\",\"machineId\":null}");
    assert_false(disabled);
}

static void test_token_file(void **state)
{
    (void)state;
    char out[1024], err[256];
    bool disabled;
    /* a Social login, as an object; the access token and expiry are not kept */
    assert_int_equal(convert("{\"kiro_token_file\":{\"accessToken\":\"at\",\"refreshToken\":\"rt-s\",\"authMethod\":\"social\","
                             "\"provider\":\"Github\",\"region\":\"us-east-1\",\"expiresAt\":\"2026-01-01T00:00:00Z\"},"
                             "\"description\":\"mine\"}",
                             out, sizeof(out), &disabled, err, sizeof(err)),
                     0);
    assert_string_equal(out, "{\"auth\":\"Social\",\"refreshToken\":\"rt-s\",\"region\":\"us-east-1\",\"description\":\"mine\"}");
    /* a Builder ID login, as the file's text, with its client registration */
    assert_int_equal(convert("{\"kiro_token_file\":\"{\\\"refreshToken\\\":\\\"rt-b\\\",\\\"authMethod\\\":\\\"IdC\\\","
                             "\\\"provider\\\":\\\"BuilderId\\\",\\\"region\\\":\\\"eu-central-1\\\"}\","
                             "\"client_registration\":{\"clientId\":\"cid\",\"clientSecret\":\"cs\",\"expiresAt\":\"x\"}}",
                             out, sizeof(out), &disabled, err, sizeof(err)),
                     0);
    assert_string_equal(out, "{\"auth\":\"IdC\",\"refreshToken\":\"rt-b\",\"clientId\":\"cid\",\"clientSecret\":\"cs\","
                             "\"provider\":\"BuilderId\",\"region\":\"eu-central-1\"}");
    /* an IdC login without its registration */
    assert_int_equal(convert("{\"kiro_token_file\":{\"refreshToken\":\"rt-secret-idc\",\"authMethod\":\"IdC\"}}", out, sizeof(out),
                             &disabled, err, sizeof(err)),
                     K2A_EINVAL);
    assert_non_null(strstr(err, "client_registration"));
    assert_null(strstr(err, "rt-secret-idc"));
    assert_int_equal(convert("{\"kiro_token_file\":{\"authMethod\":\"social\"}}", out, sizeof(out), &disabled, err, sizeof(err)),
                     K2A_EINVAL);
    assert_int_equal(convert("{\"kiro_token_file\":\"not json\"}", out, sizeof(out), &disabled, err, sizeof(err)), K2A_EINVAL);
}

static void test_refusals(void **state)
{
    (void)state;
    char out[1024], err[256];
    bool disabled;
    assert_int_equal(convert("[1,2]", out, sizeof(out), &disabled, err, sizeof(err)), K2A_EINVAL);
    assert_int_equal(convert("\"x\"", out, sizeof(out), &disabled, err, sizeof(err)), K2A_EINVAL);
    assert_int_equal(convert("{\"refreshToken\":\"rt\",\"disabled\":\"yes\"}", out, sizeof(out), &disabled, err, sizeof(err)),
                     K2A_EINVAL);
    assert_int_equal(
        convert("{\"refreshToken\":\"rt-secret-n\",\"region\":{\"a\":1}}", out, sizeof(out), &disabled, err, sizeof(err)),
        K2A_EINVAL);
    assert_null(strstr(err, "rt-secret-n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_account_object),
        cmocka_unit_test(test_token_file),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
