/*
 * The one error mapping (convert/dialect.h): every code of core/errors.h has a row in every dialect of the route table,
 * with an error status, a type, and a body that each dialect renders as JSON; the router's own answers (framing,
 * method, header bound, shutdown) and the codes the review found unmapped (ES_TOO_MANY_HEADERS) answer as documented;
 * the writers' in-stream ERROR and the pings go through the writer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <yajl/yajl_tree.h>
#include "convert/dialect.h"
#include "core/errors.h"
#include "http/router.h"

static size_t dialects(const k2a_dialect_t **out)
{
    size_t n = k2a_router_dialects(out, 16);
    assert_true(n >= 2); /* anthropic and openai at least */
    return n;
}

/* Every K2A_E* code x every dialect of the route table: a row of its own (not the fallback), an error status and a
 * type; the body is JSON that carries the message. */
static void test_every_code_every_dialect(void **state)
{
    const k2a_dialect_t *d[16];
    size_t n = dialects(d);
    for (size_t k = 0; k < n; ++k) {
        assert_non_null(d[k]->name);
        for (int i = 0; i < K2A__EIDX_MAX; ++i) {
            int err = -(i + 1);
            if (d[k]->errors[i].status == 0)
                fail_msg("dialect %s: K2A_E%s has no row in the error table", d[k]->name, k2a_errname(err));
            const k2a_dialect_error_t *row = k2a_dialect_error(d[k], err);
            assert_ptr_equal(row, &d[k]->errors[i]);
            if (row->status < 400 || row->status > 599 || row->type == NULL || row->type[0] == '\0')
                fail_msg("dialect %s: K2A_E%s maps to %d %s", d[k]->name, k2a_errname(err), row->status,
                         row->type != NULL ? row->type : "(null)");
            k2a_buf_t b = K2A_BUF_INIT(0);
            int status = k2a_dialect_error_body(d[k], &b, err, K2A_STRLIT("a \"quoted\" message"));
            assert_int_equal(status, row->status);
            char ebuf[128];
            yajl_val v = yajl_tree_parse(k2a_buf_cstr(&b), ebuf, sizeof(ebuf));
            if (v == NULL)
                fail_msg("dialect %s: K2A_E%s: body is not JSON: %s", d[k]->name, k2a_errname(err), k2a_buf_cstr(&b));
            assert_non_null(strstr(k2a_buf_cstr(&b), row->type));
            assert_non_null(strstr(k2a_buf_cstr(&b), "a \\\"quoted\\\" message"));
            yajl_tree_free(v);
            k2a_buf_dispose(&b);
        }
        /* 0 and unknown codes fall back to the row of K2A_EINTERNAL */
        assert_ptr_equal(k2a_dialect_error(d[k], 0), &d[k]->errors[K2A__EIDX_INTERNAL]);
        assert_ptr_equal(k2a_dialect_error(d[k], -100000), &d[k]->errors[K2A__EIDX_INTERNAL]);
        assert_ptr_equal(k2a_dialect_error(d[k], 5), &d[k]->errors[K2A__EIDX_INTERNAL]);
    }
}

static void expect(const k2a_dialect_t *d, int err, int status, const char *type, const char *code)
{
    const k2a_dialect_error_t *row = k2a_dialect_error(d, err);
    if (row->status != status || strcmp(row->type, type) != 0 ||
        (code != NULL && (row->code == NULL || strcmp(row->code, code) != 0)))
        fail_msg("%s: K2A_E%s: got %d %s %s", d->name, k2a_errname(err), row->status, row->type,
                 row->code != NULL ? row->code : "-");
}

/* ES_TOO_MANY_HEADERS had no Anthropic row and became 500: a broken Kiro answer is 502 like the other frame errors. The
 * router's answers keep their statuses and types. */
static void test_rows_of_note(void **state)
{
    expect(&k2a_dialect_anthropic, K2A_EES_TOO_MANY_HEADERS, 502, "api_error", NULL);
    expect(&k2a_dialect_openai, K2A_EES_TOO_MANY_HEADERS, 502, "server_error", "upstream_error");
    expect(&k2a_dialect_anthropic, K2A_EMETHOD, 405, "invalid_request_error", NULL);
    expect(&k2a_dialect_openai, K2A_EMETHOD, 405, "invalid_request_error", "method_not_allowed");
    expect(&k2a_dialect_anthropic, K2A_EREQ_HEADERS_TOOBIG, 431, "invalid_request_error", NULL);
    expect(&k2a_dialect_anthropic, K2A_EFRAMING, 400, "invalid_request_error", NULL);
    expect(&k2a_dialect_anthropic, K2A_ESHUTTING_DOWN, 503, "overloaded_error", NULL);
    expect(&k2a_dialect_openai, K2A_ESHUTTING_DOWN, 503, "server_error", "service_unavailable");
    expect(&k2a_dialect_anthropic, K2A_ECLIENT_AUTH, 401, "authentication_error", NULL);
    expect(&k2a_dialect_openai, K2A_ECLIENT_AUTH, 401, "invalid_request_error", "invalid_api_key");
    expect(&k2a_dialect_anthropic, K2A_ENOTFOUND, 404, "not_found_error", NULL);
    expect(&k2a_dialect_openai, K2A_ENOTFOUND, 404, "invalid_request_error", "not_found");
    expect(&k2a_dialect_anthropic, K2A_EUPSTREAM_SERVER, 529, "overloaded_error", NULL);
    expect(&k2a_dialect_openai, K2A_EUPSTREAM_SERVER, 502, "server_error", "upstream_error");
}

/* The writer protocol: a stream's ERROR right after MESSAGE_START (a failover ended after a ping committed it) and a PING
 * are written by the writer, in each dialect. */
static void test_writer_error_and_ping(void **state)
{
    const k2a_dialect_t *d[16];
    size_t n = dialects(d);
    for (size_t k = 0; k < n; ++k) {
        k2a_ir_request_t ir;
        memset(&ir, 0, sizeof(ir));
        ir.model = K2A_STRLIT("claude-sonnet-4-5");
        ir.stream = true;
        k2a_buf_t out = K2A_BUF_INIT(0);
        k2a_dialect_writer_ctx_t ctx = {.ir = &ir, .request_id = "req-1", .out = &out, .random = k2a_rand_fill, .created = 1};
        void *w = test_calloc(1, d[k]->writer_size);
        assert_int_equal(d[k]->writer_init(w, &ctx), 0);
        k2a_ir_event_t ev = {.type = K2A_EV_MESSAGE_START};
        assert_int_equal(d[k]->writer_on_event(w, &ev), 0);
        size_t before = out.len;
        ev = (k2a_ir_event_t){.type = K2A_EV_PING};
        assert_int_equal(d[k]->writer_on_event(w, &ev), 0);
        if (out.len == before)
            fail_msg("dialect %s: PING wrote nothing", d[k]->name);
        before = out.len;
        ev = (k2a_ir_event_t){.type = K2A_EV_ERROR, .error = K2A_ENO_ACCOUNT, .error_message = K2A_STRLIT("all accounts failed")};
        assert_int_equal(d[k]->writer_on_event(w, &ev), 0);
        if (out.len == before || strstr(k2a_buf_cstr(&out) + before, "all accounts failed") == NULL)
            fail_msg("dialect %s: ERROR after MESSAGE_START wrote %s", d[k]->name, k2a_buf_cstr(&out) + before);
        d[k]->writer_dispose(w);
        test_free(w);
        k2a_buf_dispose(&out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_every_dialect),
        cmocka_unit_test(test_rows_of_note),
        cmocka_unit_test(test_writer_error_and_ping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
