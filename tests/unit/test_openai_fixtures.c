/*
 * OpenAI writers on real upstream bytes: every tests/fixtures/upstream/<name>.bin goes through the EventStream decoder and
 * the Kiro event parser into the chat.completion.chunk writer and the chat.completion aggregator at once. The bytes
 * must equal tests/vectors/response/<fixture>.openai.{sse,json} (K2A_BLESS=1 rewrites them; review the diff: they were
 * checked by hand against kiro-protocol.md §4.7/§4.8 and the [REC] rules). Each stream is also checked structurally
 * (every chunk is `data: <JSON>\n\n` with the same id/object/created/model, the tool-call argument pieces concatenate
 * to the non-stream arguments, the stream ends with [DONE] or with one error object), and the same bytes must come out
 * whether the upstream body arrives whole or one byte at a time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <yajl/yajl_tree.h>
#include "convert/kiro_resp.h"
#include "convert/openai_error.h"
#include "convert/openai_resp.h"
#include "core/errors.h"
#include "golden_support.h"
#include "kiro_run.h"
#include "resp_support.h"

#define UPSTREAM K2A_FIXTURES_DIR "/upstream/"
#define CREATED 1767225600

typedef struct st_fixture_t {
    const char *file;
    const char *model;
    int json_status; /* 200, or the status of the error body */
    int tool_calls;  /* tool calls in the stream */
} fixture_t;

static const fixture_t fixtures[] = {
    {"kiro2api_text_2frames_303B", "claude-3-5-haiku-20241022", 200, 0},
    {"kiro2api_jsontext_5frames_674B", "claude-3-5-haiku-20241022", 200, 0},
    {"kiro2api_cjk_text_then_tooluse_21frames_2738B", "claude-sonnet-4-20250514", 502, 1},
    {"SYNTHETIC_text_tooluse_metering_contextusage", "claude-sonnet-4-20250514", 200, 1},
    {"SYNTHETIC_text_then_exception", "claude-sonnet-4-20250514", 200, 0},
};

static void fixed_id(char id[K2A_OPENAI_ID_SIZE])
{
    uint8_t rnd[K2A_OPENAI_ID_RANDOM_BYTES];
    uint64_t seed = 7;
    rs_random(&seed, rnd, sizeof(rnd));
    k2a_openai_format_id(id, rnd);
}

/* Runs a fixture (upstream body fed in chunks of `chunk` bytes, 0 = whole) into both writers. */
static void run_fixture(const fixture_t *fx, size_t chunk, k2a_buf_t *sse, k2a_buf_t *json, int *status)
{
    char path[512], id[K2A_OPENAI_ID_SIZE];
    snprintf(path, sizeof(path), UPSTREAM "%s.bin", fx->file);
    size_t len;
    char *body = rs_read_file(path, &len);
    fixed_id(id);
    k2a_openai_stream_t w;
    k2a_openai_aggregate_t a;
    assert_int_equal(k2a_openai_stream_init(&w, sse, id, CREATED, k2a_cstr(fx->model), true), 0);
    k2a_openai_aggregate_init(&a, 1 << 20, 128);
    rs_tee_t tee = {k2a_openai_stream_on_event, k2a_openai_aggregate_on_event, &w, &a};
    k2a_kiro_resp_t p;
    kr_start_tee(&p, &tee);
    int rc = rs_run_body(&p, body, len, chunk);
    assert_true(k2a_openai_stream_done(&w));
    int r = k2a_openai_aggregate_write(&a, json, id, CREATED, k2a_cstr(fx->model));
    if (r == 0) {
        assert_int_equal(rc, 0);
        *status = 200;
    } else {
        assert_int_equal(r, rc);
        *status = k2a_openai_error_body(json, r, a.error_message.len != 0 ? a.error_message.base : NULL, a.error_message.len, NULL);
        assert_true(*status >= 400);
    }
    k2a_kiro_resp_dispose(&p);
    k2a_openai_aggregate_dispose(&a);
    k2a_openai_stream_dispose(&w);
    free(body);
}

/* ---------- structure of a chunk stream ---------- */

static const char *get_str(yajl_val v, const char **path)
{
    yajl_val s = yajl_tree_get(v, path, yajl_t_string);
    return s != NULL ? YAJL_GET_STRING(s) : NULL;
}

/* Checks every chunk and returns how many there are; args[i] receives the concatenated arguments of tool call i, *ended
 * how the stream ended (1 [DONE], 2 an error object). */
static size_t check_stream(const char *sse, size_t len, const char *model, k2a_buf_t *args, size_t nargs, int *ended)
{
    size_t n = 0, off = 0;
    char id[128] = "";
    *ended = 0;
    while (off < len) {
        const char *end = strstr(sse + off, "\n\n");
        assert_non_null(end);
        size_t evlen = (size_t)(end - (sse + off));
        char *ev = strndup(sse + off, evlen);
        off += evlen + 2;
        ++n;
        assert_int_equal(*ended, 0); /* nothing after [DONE] or an error */
        if (ev[0] == ':') {          /* an SSE comment (ping) */
            free(ev);
            continue;
        }
        assert_true(strncmp(ev, "data: ", 6) == 0);
        if (strcmp(ev + 6, "[DONE]") == 0) {
            *ended = 1;
            free(ev);
            continue;
        }
        char err[256];
        yajl_val v = yajl_tree_parse(ev + 6, err, sizeof(err));
        if (v == NULL)
            fail_msg("chunk %zu: bad JSON: %s", n, err);
        const char *ep[] = {"error", "message", NULL};
        if (get_str(v, ep) != NULL) {
            *ended = 2;
            yajl_tree_free(v);
            free(ev);
            continue;
        }
        const char *idp[] = {"id", NULL}, *op[] = {"object", NULL}, *mp[] = {"model", NULL};
        assert_string_equal(get_str(v, op), "chat.completion.chunk");
        assert_string_equal(get_str(v, mp), model);
        if (id[0] == '\0')
            snprintf(id, sizeof(id), "%s", get_str(v, idp));
        assert_string_equal(get_str(v, idp), id);
        const char *cp[] = {"choices", NULL};
        yajl_val choices = yajl_tree_get(v, cp, yajl_t_array);
        assert_non_null(choices);
        for (size_t c = 0; c < choices->u.array.len; ++c) {
            const char *tp[] = {"delta", "tool_calls", NULL};
            yajl_val calls = yajl_tree_get(choices->u.array.values[c], tp, yajl_t_array);
            for (size_t k = 0; calls != NULL && k < calls->u.array.len; ++k) {
                const char *ip[] = {"index", NULL}, *ap[] = {"function", "arguments", NULL};
                yajl_val idx = yajl_tree_get(calls->u.array.values[k], ip, yajl_t_number);
                const char *piece = get_str(calls->u.array.values[k], ap);
                assert_non_null(idx);
                assert_true(YAJL_GET_INTEGER(idx) >= 0 && (size_t)YAJL_GET_INTEGER(idx) < nargs);
                if (piece != NULL)
                    k2a_buf_appendstr(&args[YAJL_GET_INTEGER(idx)], piece);
            }
        }
        yajl_tree_free(v);
        free(ev);
    }
    return n;
}

/* ---------- tests ---------- */

static void test_fixtures_golden(void **state)
{
    for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); ++i) {
        const fixture_t *fx = &fixtures[i];
        k2a_buf_t sse, json, args[4];
        k2a_buf_init(&sse, 0);
        k2a_buf_init(&json, 0);
        for (int k = 0; k < 4; ++k)
            k2a_buf_init(&args[k], 0);
        int status = 0, ended;
        run_fixture(fx, 0, &sse, &json, &status);
        assert_int_equal(status, fx->json_status);
        gs_compare_response_golden(fx->file, "openai.sse", &sse);
        gs_compare_response_golden(fx->file, "openai.json", &json);
        check_stream(sse.base, sse.len, fx->model, args, 4, &ended);
        assert_int_equal(ended, fx->json_status == 200 ? 1 : 2);

        char err[256];
        yajl_val v = yajl_tree_parse(k2a_buf_cstr(&json), err, sizeof(err));
        if (v == NULL)
            fail_msg("%s: bad JSON: %s", fx->file, err);
        if (fx->json_status == 200) {
            /* the streamed argument pieces are exactly the non-stream arguments */
            const char *tp[] = {"choices", NULL};
            yajl_val choices = yajl_tree_get(v, tp, yajl_t_array);
            const char *cp[] = {"message", "tool_calls", NULL};
            yajl_val calls = yajl_tree_get(choices->u.array.values[0], cp, yajl_t_array);
            assert_int_equal(calls != NULL ? (int)calls->u.array.len : 0, fx->tool_calls);
            for (int k = 0; k < fx->tool_calls; ++k) {
                const char *ap[] = {"function", "arguments", NULL};
                assert_string_equal(get_str(calls->u.array.values[k], ap), k2a_buf_cstr(&args[k]));
            }
        }
        yajl_tree_free(v);

        /* one byte at a time: the same bytes */
        k2a_buf_t sse1, json1;
        k2a_buf_init(&sse1, 0);
        k2a_buf_init(&json1, 0);
        run_fixture(fx, 1, &sse1, &json1, &status);
        assert_int_equal(sse1.len, sse.len);
        assert_memory_equal(sse1.base, sse.base, sse.len);
        assert_int_equal(json1.len, json.len);
        assert_memory_equal(json1.base, json.base, json.len);
        k2a_buf_dispose(&sse1);
        k2a_buf_dispose(&json1);
        for (int k = 0; k < 4; ++k)
            k2a_buf_dispose(&args[k]);
        k2a_buf_dispose(&sse);
        k2a_buf_dispose(&json);
    }
}

/* The synthetic tool fixture split at every possible point: the arguments always arrive whole, piece by piece. */
static void test_tool_fixture_every_split(void **state)
{
    const fixture_t *fx = &fixtures[3];
    for (size_t chunk = 1; chunk <= 64; chunk = chunk * 2 + 1) {
        k2a_buf_t sse, json, args[4];
        k2a_buf_init(&sse, 0);
        k2a_buf_init(&json, 0);
        for (int k = 0; k < 4; ++k)
            k2a_buf_init(&args[k], 0);
        int status, ended;
        run_fixture(fx, chunk, &sse, &json, &status);
        check_stream(sse.base, sse.len, fx->model, args, 4, &ended);
        assert_int_equal(ended, 1);
        assert_string_equal(k2a_buf_cstr(&args[0]), "{\"city\":\"巴黎\"}");
        assert_non_null(strstr(k2a_buf_cstr(&sse), "\"finish_reason\":\"tool_calls\""));
        assert_non_null(strstr(k2a_buf_cstr(&json), "\"arguments\":\"{\\\"city\\\":\\\"巴黎\\\"}\""));
        for (int k = 0; k < 4; ++k)
            k2a_buf_dispose(&args[k]);
        k2a_buf_dispose(&sse);
        k2a_buf_dispose(&json);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures_golden),
        cmocka_unit_test(test_tool_fixture_every_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
