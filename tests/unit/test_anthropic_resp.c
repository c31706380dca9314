/*
 * Anthropic writers. Every upstream fixture goes through the parser into the SSE writer and the non-stream
 * aggregator at once; the bytes must equal the golden files tests/vectors/response/<fixture>.anthropic.{sse,json}
 * (K2A_BLESS=1 rewrites them; they were reviewed by hand against kiro-protocol.md §4.2/§4.3). Every SSE body is also
 * checked structurally: each event is "event: T\ndata: JSON\n\n" with JSON.type == T, and the input_json_delta
 * pieces of a block concatenate to its input. Unit cases cover errors after start, thinking signatures, pings,
 * misuse, the non-stream tool-input rules and the JSON compactor, and the web search events' blocks (the exact bytes
 * the gateway sent before the search became IR events).
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
#include "convert/anthropic_error.h"
#include "convert/anthropic_resp.h"
#include "convert/json_compact.h"
#include "convert/kiro_resp.h"
#include "convert/web_search.h"
#include "core/errors.h"
#include "golden_support.h"
#include "kiro_run.h"
#include "resp_support.h"

#define UPSTREAM K2A_FIXTURES_DIR "/upstream/"

/* ---------- SSE structure check ---------- */

static const char *obj_str(yajl_val v, const char *key)
{
    const char *path[] = {key, NULL};
    yajl_val s = yajl_tree_get(v, path, yajl_t_string);
    return s != NULL ? YAJL_GET_STRING(s) : NULL;
}

/* Checks the framing and returns the number of events; tool_json receives the concatenated partial_json of block
 * tool_index (when not NULL). */
static size_t check_sse(const char *sse, size_t len, int tool_index, k2a_buf_t *tool_json)
{
    size_t n = 0, off = 0;
    while (off < len) {
        const char *end = strstr(sse + off, "\n\n");
        assert_non_null(end);
        size_t evlen = (size_t)(end - (sse + off));
        char *ev = strndup(sse + off, evlen);
        assert_true(strncmp(ev, "event: ", 7) == 0);
        char *nl = strchr(ev, '\n');
        assert_non_null(nl);
        *nl = '\0';
        const char *type = ev + 7;
        assert_true(strncmp(nl + 1, "data: ", 6) == 0);
        char err[256];
        yajl_val v = yajl_tree_parse(nl + 7, err, sizeof(err));
        if (v == NULL)
            fail_msg("event %zu: bad JSON: %s", n, err);
        assert_string_equal(obj_str(v, "type"), type);
        if (tool_json != NULL && strcmp(type, "content_block_delta") == 0) {
            const char *ip[] = {"index", NULL}, *dp[] = {"delta", "partial_json", NULL};
            yajl_val idx = yajl_tree_get(v, ip, yajl_t_number), pj = yajl_tree_get(v, dp, yajl_t_string);
            if (idx != NULL && YAJL_GET_INTEGER(idx) == tool_index && pj != NULL)
                k2a_buf_appendstr(tool_json, YAJL_GET_STRING(pj));
        }
        yajl_tree_free(v);
        free(ev);
        ++n;
        off += evlen + 2;
    }
    return n;
}

/* ---------- fixtures vs golden files ---------- */

typedef struct st_fixture_t {
    const char *file;
    const char *model;
    int json_status; /* 200, or the status of the error body */
} fixture_t;

static const fixture_t fixtures[] = {
    {"kiro2api_text_2frames_303B", "claude-3-5-haiku-20241022", 200},
    {"kiro2api_jsontext_5frames_674B", "claude-3-5-haiku-20241022", 200},
    {"kiro2api_cjk_text_then_tooluse_21frames_2738B", "claude-sonnet-4-20250514", 502},
    {"SYNTHETIC_text_tooluse_metering_contextusage", "claude-sonnet-4-20250514", 200},
    {"SYNTHETIC_text_then_exception", "claude-sonnet-4-20250514", 200},
};

static void run_fixture(const fixture_t *fx, size_t chunk, k2a_buf_t *sse, k2a_buf_t *json, int *status)
{
    char path[512];
    snprintf(path, sizeof(path), UPSTREAM "%s.bin", fx->file);
    size_t len;
    char *body = rs_read_file(path, &len);
    uint64_t seed_sse = 42, seed_msg = 42; /* the same seed: the same message id in both forms */
    k2a_anthropic_sse_t w;
    k2a_anthropic_msg_t m;
    k2a_anthropic_sse_init(&w, sse, k2a_cstr(fx->model), rs_random, &seed_sse);
    k2a_anthropic_msg_init(&m, k2a_cstr(fx->model), rs_random, &seed_msg, 0);
    rs_tee_t tee = {k2a_anthropic_sse_on_event, k2a_anthropic_msg_on_event, &w, &m};
    k2a_kiro_resp_t p;
    kr_start_tee(&p, &tee);
    int rc = rs_run_body(&p, body, len, chunk);
    assert_true(k2a_anthropic_sse_done(&w));
    int r = k2a_anthropic_msg_render(&m, json);
    if (r == 0) {
        assert_int_equal(rc, 0);
        *status = 200;
    } else {
        assert_int_equal(r, rc);
        assert_int_equal(k2a_anthropic_error_body(json, r, k2a_anthropic_msg_error_message(&m), status), 0);
    }
    k2a_kiro_resp_dispose(&p);
    k2a_anthropic_msg_dispose(&m);
    free(body);
}

static void test_fixtures_golden(void **state)
{
    for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); ++i) {
        const fixture_t *fx = &fixtures[i];
        k2a_buf_t sse, json;
        k2a_buf_init(&sse, 0);
        k2a_buf_init(&json, 0);
        int status = 0;
        run_fixture(fx, 0, &sse, &json, &status);
        assert_int_equal(status, fx->json_status);
        gs_compare_response_golden(fx->file, "anthropic.sse", &sse);
        gs_compare_response_golden(fx->file, "anthropic.json", &json);
        check_sse(sse.base, sse.len, -1, NULL);
        /* the non-stream body is one JSON document */
        char err[256];
        yajl_val v = yajl_tree_parse(k2a_buf_cstr(&json), err, sizeof(err));
        if (v == NULL)
            fail_msg("%s: bad JSON: %s", fx->file, err);
        yajl_tree_free(v);
        /* byte by byte: the same bytes */
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
        k2a_buf_dispose(&sse);
        k2a_buf_dispose(&json);
    }
}

/* the synthetic tool fixture: partial_json pieces concatenate to the arguments, the non-stream input is the object */
static void test_fixture_tool_pieces(void **state)
{
    k2a_buf_t sse, json, pj;
    k2a_buf_init(&sse, 0);
    k2a_buf_init(&json, 0);
    k2a_buf_init(&pj, 0);
    int status;
    run_fixture(&fixtures[3], 3, &sse, &json, &status);
    assert_int_equal(check_sse(sse.base, sse.len, 1, &pj), 11);
    assert_string_equal(k2a_buf_cstr(&pj), "{\"city\":\"巴黎\"}");
    assert_non_null(strstr(k2a_buf_cstr(&json), "\"input\":{\"city\":\"巴黎\"}"));
    k2a_buf_dispose(&sse);
    k2a_buf_dispose(&json);
    k2a_buf_dispose(&pj);
}

/* ---------- writer units ---------- */

static void feed(void *w, k2a_ir_event_cb cb, k2a_ir_event_t ev, int want)
{
    assert_int_equal(cb(w, &ev), want);
}

static void test_sse_error_after_start(void **state)
{
    k2a_buf_t out;
    k2a_buf_init(&out, 0);
    uint64_t seed = 1;
    k2a_anthropic_sse_t w;
    k2a_anthropic_sse_init(&w, &out, K2A_STRLIT("claude-x"), rs_random, &seed);
    k2a_ir_event_cb cb = k2a_anthropic_sse_on_event;
    feed(&w, cb, (k2a_ir_event_t){.type = K2A_EV_MESSAGE_START, .usage = {.input_tokens = 12}}, 0);
    feed(&w, cb, (k2a_ir_event_t){.type = K2A_EV_BLOCK_START, .index = 0, .block = K2A_BLOCK_TEXT}, 0);
    feed(&w, cb, (k2a_ir_event_t){.type = K2A_EV_DELTA, .index = 0, .block = K2A_BLOCK_TEXT, .text = K2A_STRLIT("a\"b\n")}, 0);
    feed(&w, cb, (k2a_ir_event_t){.type = K2A_EV_PING}, 0);
    feed(&w, cb,
         (k2a_ir_event_t){.type = K2A_EV_ERROR, .error = K2A_EUPSTREAM_TRUNCATED, .error_message = K2A_STRLIT("cut at 5 bytes")},
         0);
    assert_true(k2a_anthropic_sse_done(&w));
    /* nothing after the error, not even a stop */
    feed(&w, cb, (k2a_ir_event_t){.type = K2A_EV_STOP}, 0);
    feed(&w, cb, (k2a_ir_event_t){.type = K2A_EV_PING}, 0);
    char want[2048];
    snprintf(want, sizeof(want),
             "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"%s\",\"type\":\"message\",\"role\":"
             "\"assistant\",\"model\":\"claude-x\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{"
             "\"input_tokens\":12,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":0}}}\n\n"
             "event: ping\ndata: {\"type\":\"ping\"}\n\n"
             "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
             "\"text\",\"text\":\"\"}}\n\n"
             "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
             "\"text\":\"a\\\"b\\n\"}}\n\n"
             "event: ping\ndata: {\"type\":\"ping\"}\n\n"
             "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"cut at 5 bytes\"}}\n\n",
             w.id);
    assert_string_equal(k2a_buf_cstr(&out), want);
    assert_int_equal(strlen(w.id), K2A_ANTHROPIC_ID_LEN);
    /* the production source gives different ids */
    char id1[K2A_ANTHROPIC_ID_LEN + 1], id2[K2A_ANTHROPIC_ID_LEN + 1];
    k2a_anthropic_message_id(id1, k2a_rand_fill, NULL);
    k2a_anthropic_message_id(id2, k2a_rand_fill, NULL);
    assert_string_not_equal(id1, id2);
    assert_true(strncmp(w.id, "msg_", 4) == 0);
    for (size_t i = 4; i < K2A_ANTHROPIC_ID_LEN; ++i)
        assert_non_null(strchr("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", w.id[i]));
    k2a_buf_dispose(&out);
}

static void test_sse_thinking_tool_and_misuse(void **state)
{
    k2a_buf_t out;
    k2a_buf_init(&out, 0);
    uint64_t seed = 2;
    k2a_anthropic_sse_t w;
    k2a_anthropic_sse_init(&w, &out, K2A_STRLIT("m"), rs_random, &seed);
    k2a_ir_event_cb cb = k2a_anthropic_sse_on_event;
    feed(&w, cb, (k2a_ir_event_t){.type = K2A_EV_BLOCK_START, .index = 0, .block = K2A_BLOCK_THINKING}, 0);
    feed(&w, cb, (k2a_ir_event_t){.type = K2A_EV_DELTA, .index = 0, .block = K2A_BLOCK_THINKING, .text = K2A_STRLIT("hm")}, 0);
    feed(&w, cb, (k2a_ir_event_t){.type = K2A_EV_BLOCK_STOP, .index = 0}, 0);
    feed(&w, cb,
         (k2a_ir_event_t){.type = K2A_EV_BLOCK_START,
                          .index = 1,
                          .block = K2A_BLOCK_TOOL_USE,
                          .tool_id = K2A_STRLIT("t\"1"),
                          .tool_name = K2A_STRLIT("Write")},
         0);
    feed(&w, cb, (k2a_ir_event_t){.type = K2A_EV_DELTA, .index = 1, .block = K2A_BLOCK_TOOL_USE, .text = K2A_STRLIT("{\"a\":")}, 0);
    /* misuse: a delta for a block that is not open, a second start of an open block */
    feed(&w, cb, (k2a_ir_event_t){.type = K2A_EV_DELTA, .index = 0, .block = K2A_BLOCK_TEXT, .text = K2A_STRLIT("x")}, K2A_EINVAL);
    feed(&w, cb, (k2a_ir_event_t){.type = K2A_EV_BLOCK_START, .index = 1, .block = K2A_BLOCK_TEXT}, K2A_EINVAL);
    /* STOP closes the open tool block */
    feed(
        &w, cb,
        (k2a_ir_event_t){.type = K2A_EV_STOP, .stop_reason = K2A_STOP_MAX_TOKENS, .usage = {.input_tokens = 3, .output_tokens = 4}},
        0);
    const char *want =
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\","
        "\"thinking\":\"\"}}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\","
        "\"thinking\":\"hm\"}}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\","
        "\"signature\":\"" K2A_ANTHROPIC_THINKING_SIGNATURE "\"}}\n\n"
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\","
        "\"id\":\"t\\\"1\",\"name\":\"Write\",\"input\":{}}}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
        "\"partial_json\":\"{\\\"a\\\":\"}}\n\n"
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\",\"stop_sequence\":null},"
        "\"usage\":{\"input_tokens\":3,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":4}}\n\n"
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    /* exact bytes: the rejected events wrote nothing, the signature precedes the thinking stop, STOP closed block 1 */
    assert_string_equal(k2a_buf_cstr(&out), want);
    assert_int_equal(check_sse(out.base, out.len, -1, NULL), 9);
    assert_string_equal(k2a_anthropic_stop_reason(K2A_STOP_CONTEXT_WINDOW), "model_context_window_exceeded");
    assert_string_equal(k2a_anthropic_stop_reason(K2A_STOP_STOP_SEQUENCE), "stop_sequence");
    k2a_buf_dispose(&out);
}

static void msg_run(const k2a_ir_event_t *evs, size_t n, k2a_buf_t *out, int want, const char *want_text)
{
    uint64_t seed = 3;
    k2a_anthropic_msg_t m;
    k2a_anthropic_msg_init(&m, K2A_STRLIT("claude-y"), rs_random, &seed, 0);
    for (size_t i = 0; i < n; ++i)
        k2a_anthropic_msg_on_event(&m, &evs[i]);
    k2a_buf_reset(out);
    assert_int_equal(k2a_anthropic_msg_render(&m, out), want);
    if (want == 0) {
        char expect[4096];
        snprintf(expect, sizeof(expect), want_text, m.id);
        assert_string_equal(k2a_buf_cstr(out), expect);
    } else {
        assert_int_equal(out->len, 0);
        k2a_str_t msg = k2a_anthropic_msg_error_message(&m);
        char *s = strndup(msg.base, msg.len);
        if (strstr(s, want_text) == NULL)
            fail_msg("error message [%s] lacks [%s]", s, want_text);
        free(s);
    }
    k2a_anthropic_msg_dispose(&m);
}

static void test_msg_rules(void **state)
{
    k2a_buf_t out;
    k2a_buf_init(&out, 0);
    k2a_ir_event_t evs[8];
    size_t n = 0;
    evs[n++] = (k2a_ir_event_t){.type = K2A_EV_MESSAGE_START};
    evs[n++] = (k2a_ir_event_t){.type = K2A_EV_BLOCK_START, .index = 0, .block = K2A_BLOCK_THINKING};
    evs[n++] = (k2a_ir_event_t){.type = K2A_EV_DELTA, .index = 0, .block = K2A_BLOCK_THINKING, .text = K2A_STRLIT("hm")};
    evs[n++] = (k2a_ir_event_t){.type = K2A_EV_BLOCK_STOP, .index = 0};
    evs[n++] = (k2a_ir_event_t){.type = K2A_EV_BLOCK_START,
                                .index = 1,
                                .block = K2A_BLOCK_TOOL_USE,
                                .tool_id = K2A_STRLIT("t1"),
                                .tool_name = K2A_STRLIT("Ping")};
    evs[n++] = (k2a_ir_event_t){.type = K2A_EV_BLOCK_STOP, .index = 1};
    evs[n++] =
        (k2a_ir_event_t){.type = K2A_EV_STOP, .stop_reason = K2A_STOP_TOOL_USE, .usage = {.input_tokens = 5, .output_tokens = 7}};
    /* a tool without any input piece has input {} */
    msg_run(evs, n, &out, 0,
            "{\"id\":\"%s\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-y\",\"content\":[{\"type\":\"thinking\","
            "\"thinking\":\"hm\",\"signature\":\"" K2A_ANTHROPIC_THINKING_SIGNATURE "\"},{\"type\":\"tool_use\",\"id\":\"t1\","
            "\"name\":\"Ping\",\"input\":{}}],\"stop_reason\":\"tool_use\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":5,"
            "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":7}}");

    /* input pieces are parsed and compacted */
    k2a_ir_event_t with_input[9];
    memcpy(with_input, evs, sizeof(evs[0]) * 5);
    with_input[5] =
        (k2a_ir_event_t){.type = K2A_EV_DELTA, .index = 1, .block = K2A_BLOCK_TOOL_USE, .text = K2A_STRLIT("{ \"a\" :")};
    with_input[6] =
        (k2a_ir_event_t){.type = K2A_EV_DELTA, .index = 1, .block = K2A_BLOCK_TOOL_USE, .text = K2A_STRLIT(" [1, \"é\"] }")};
    with_input[7] = evs[5];
    with_input[8] = evs[6];
    msg_run(with_input, 9, &out, 0,
            "{\"id\":\"%s\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-y\",\"content\":[{\"type\":\"thinking\","
            "\"thinking\":\"hm\",\"signature\":\"" K2A_ANTHROPIC_THINKING_SIGNATURE "\"},{\"type\":\"tool_use\",\"id\":\"t1\","
            "\"name\":\"Ping\",\"input\":{\"a\":[1,\"é\"]}}],\"stop_reason\":\"tool_use\",\"stop_sequence\":null,\"usage\":{"
            "\"input_tokens\":5,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":7}}");

    /* truncated input is an error, not {} */
    with_input[6].text = K2A_STRLIT(" [1, \"é");
    msg_run(with_input, 9, &out, K2A_EUPSTREAM_TRUNCATED, "the input of tool call Ping (t1) is not a complete JSON object");
    /* so is an input that is JSON but not an object */
    with_input[5].text = K2A_STRLIT("[1,");
    with_input[6].text = K2A_STRLIT("2]");
    msg_run(with_input, 9, &out, K2A_EUPSTREAM_TRUNCATED, "not a complete JSON object");

    /* an ERROR event: its code and message */
    k2a_ir_event_t err[3] = {
        evs[0],
        (k2a_ir_event_t){.type = K2A_EV_ERROR, .error = K2A_ETHROTTLED, .error_message = K2A_STRLIT("Kiro exception Throttling")},
        evs[6],
    };
    msg_run(err, 3, &out, K2A_ETHROTTLED, "Kiro exception Throttling");
    /* no STOP at all */
    msg_run(evs, 4, &out, K2A_EUPSTREAM_TRUNCATED, "ended");
    /* indices must be consecutive */
    k2a_ir_event_t gap[2] = {evs[0], (k2a_ir_event_t){.type = K2A_EV_BLOCK_START, .index = 3, .block = K2A_BLOCK_TEXT}};
    msg_run(gap, 2, &out, K2A_EINVAL, "consecutive");
    k2a_buf_dispose(&out);
}

static void test_msg_limit(void **state)
{
    uint64_t seed = 4;
    k2a_anthropic_msg_t m;
    k2a_anthropic_msg_init(&m, K2A_STRLIT("m"), rs_random, &seed, 8);
    k2a_ir_event_t ev = {.type = K2A_EV_BLOCK_START, .index = 0, .block = K2A_BLOCK_TEXT};
    assert_int_equal(k2a_anthropic_msg_on_event(&m, &ev), 0);
    ev = (k2a_ir_event_t){.type = K2A_EV_DELTA, .index = 0, .block = K2A_BLOCK_TEXT, .text = K2A_STRLIT("12345")};
    assert_int_equal(k2a_anthropic_msg_on_event(&m, &ev), 0);
    assert_int_equal(k2a_anthropic_msg_on_event(&m, &ev), K2A_EUPSTREAM_TOOBIG);
    k2a_buf_t out;
    k2a_buf_init(&out, 0);
    assert_int_equal(k2a_anthropic_msg_render(&m, &out), K2A_EUPSTREAM_TOOBIG);
    k2a_buf_dispose(&out);
    k2a_anthropic_msg_dispose(&m);
}

static void expect_compact(const char *in, int want, const char *out_want)
{
    k2a_buf_t b;
    k2a_buf_init(&b, 0);
    int r = k2a_json_compact(&b, in, strlen(in));
    if (r != want)
        fail_msg("%s: got %s want %s", in, k2a_errname(r), k2a_errname(want));
    if (want == 0)
        assert_string_equal(k2a_buf_cstr(&b), out_want);
    k2a_buf_dispose(&b);
}

/* ---------- web search events ---------- */

static int search_ev(k2a_ir_event_cb cb, void *w, k2a_ir_event_type_t type, int index, const char *query,
                     const k2a_ir_search_t *search)
{
    k2a_ir_event_t ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = type;
    ev.index = index;
    ev.tool_id = k2a_cstr("srvtoolu_0123");
    ev.text = k2a_cstr(query);
    ev.search = search;
    return cb(w, &ev);
}

#define SEARCH_RESULT_JSON                                                                                                         \
    "[{\"type\":\"web_search_result\",\"title\":\"T\",\"url\":\"https://e.example/"                                                \
    "\",\"encrypted_content\":\"S\",\"page_age\":null}]"

static void test_search_blocks(void **state)
{
    k2a_ws_results_t res;
    memset(&res, 0, sizeof(res));
    res.n = 1;
    res.items[0].title = k2a_cstr("T");
    res.items[0].url = k2a_cstr("https://e.example/");
    res.items[0].snippet = k2a_cstr("S");
    k2a_ir_search_t first = {.results = &res, .failure = "", .announce = true}, over = {.over = true};
    /* the stream: the announcing text, server_tool_use and the result, each block started and stopped at once */
    k2a_buf_t out;
    k2a_buf_init(&out, 0);
    k2a_anthropic_sse_t w;
    uint64_t seed = 1;
    k2a_anthropic_sse_init(&w, &out, K2A_STRLIT("m"), rs_random, &seed);
    assert_int_equal(search_ev(k2a_anthropic_sse_on_event, &w, K2A_EV_SEARCH_START, 0, "a \"b\"", &first), 0);
    assert_int_equal(search_ev(k2a_anthropic_sse_on_event, &w, K2A_EV_SEARCH_RESULT, 2, "a \"b\"", &first), 0);
    assert_int_equal(search_ev(k2a_anthropic_sse_on_event, &w, K2A_EV_SEARCH_START, 4, "c", &over), 0);
    assert_int_equal(search_ev(k2a_anthropic_sse_on_event, &w, K2A_EV_SEARCH_RESULT, 5, "c", &over), 0);
    assert_string_equal(
        k2a_buf_cstr(&out),
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
        "\"text\":\"\"}}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
        "\"text\":\"I'll search for \\\"a \\\"b\\\"\\\".\"}}\n\n"
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":"
        "\"server_tool_use\",\"id\":\"srvtoolu_0123\",\"name\":\"web_search\",\"input\":{\"query\":\"a \\\"b\\\"\"}}}\n\n"
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":"
        "\"web_search_tool_result\",\"tool_use_id\":\"srvtoolu_0123\",\"content\":" SEARCH_RESULT_JSON "}}\n\n"
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n"
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":4,\"content_block\":{\"type\":"
        "\"server_tool_use\",\"id\":\"srvtoolu_0123\",\"name\":\"web_search\",\"input\":{\"query\":\"c\"}}}\n\n"
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":4}\n\n"
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":5,\"content_block\":{\"type\":"
        "\"web_search_tool_result\",\"tool_use_id\":\"srvtoolu_0123\",\"content\":{\"type\":\"web_search_tool_result_error\","
        "\"error_code\":\"max_uses_exceeded\"}}}\n\n"
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":5}\n\n");
    k2a_buf_dispose(&out);
    /* the aggregate: the same blocks as content, the model's block after them */
    k2a_anthropic_msg_t m;
    k2a_anthropic_msg_init(&m, K2A_STRLIT("m"), rs_random, &seed, 0);
    assert_int_equal(search_ev(k2a_anthropic_msg_on_event, &m, K2A_EV_SEARCH_START, 0, "q", &first), 0);
    assert_int_equal(search_ev(k2a_anthropic_msg_on_event, &m, K2A_EV_SEARCH_RESULT, 2, "q", &first), 0);
    k2a_ir_event_t ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = K2A_EV_BLOCK_START;
    ev.index = 3;
    ev.block = K2A_BLOCK_TEXT;
    assert_int_equal(k2a_anthropic_msg_on_event(&m, &ev), 0);
    ev.type = K2A_EV_DELTA;
    ev.text = k2a_cstr("answer");
    assert_int_equal(k2a_anthropic_msg_on_event(&m, &ev), 0);
    memset(&ev, 0, sizeof(ev));
    ev.type = K2A_EV_STOP;
    assert_int_equal(k2a_anthropic_msg_on_event(&m, &ev), 0);
    k2a_buf_t json;
    k2a_buf_init(&json, 0);
    assert_int_equal(k2a_anthropic_msg_render(&m, &json), 0);
    assert_non_null(
        strstr(k2a_buf_cstr(&json),
               ",\"content\":[{\"type\":\"text\",\"text\":\"I'll search for \\\"q\\\".\"},{\"type\":\"server_tool_use\","
               "\"id\":\"srvtoolu_0123\",\"name\":\"web_search\",\"input\":{\"query\":\"q\"}},{\"type\":"
               "\"web_search_tool_result\",\"tool_use_id\":\"srvtoolu_0123\",\"content\":" SEARCH_RESULT_JSON
               "},{\"type\":\"text\",\"text\":\"answer\"}],"));
    k2a_buf_dispose(&json);
    k2a_anthropic_msg_dispose(&m);
}

static void test_json_compact(void **state)
{
    expect_compact(" { \"a\" : [ 1 , -2.5e+3 , true , false , null , { } , [ ] ] , \"b\\u00e9\\n\" : \"x\\\"y\" } ", 0,
                   "{\"a\":[1,-2.5e+3,true,false,null,{},[]],\"bé\\n\":\"x\\\"y\"}");
    expect_compact("\"str\"", 0, "\"str\"");
    expect_compact("{\"k\":\"\xff\"}", 0, "{\"k\":\"\xef\xbf\xbd\"}");
    expect_compact("", K2A_EJSON_SYNTAX, NULL);
    expect_compact("{\"a\":", K2A_EJSON_SYNTAX, NULL);
    expect_compact("{\"a\":1}{}", K2A_EJSON_SYNTAX, NULL);
    expect_compact("{\"a\":1,}", K2A_EJSON_SYNTAX, NULL);
    char deep[2 * K2A_JSON_COMPACT_MAX_DEPTH + 8];
    size_t n = 0;
    for (int i = 0; i < K2A_JSON_COMPACT_MAX_DEPTH + 1; ++i)
        deep[n++] = '[';
    for (int i = 0; i < K2A_JSON_COMPACT_MAX_DEPTH + 1; ++i)
        deep[n++] = ']';
    deep[n] = '\0';
    expect_compact(deep, K2A_EJSON_DEPTH, NULL);
    deep[0] = ' ';
    deep[n - 1] = '\0';
    expect_compact(deep, 0, deep + 1);
    assert_true(k2a_json_looks_like_object(" \n{", 3));
    assert_false(k2a_json_looks_like_object(" [", 2));
    assert_false(k2a_json_looks_like_object("  ", 2));
}

/* the fast escaper writes exactly what the core escaper writes, on random bytes (invalid UTF-8 included) and on
 * multi-byte sequences straddling its 4 KiB chunk boundary */
static void test_escape_differential(void **state)
{
    uint64_t seed = 99;
    static const char pool[] = "a\"\\\n\x01\x1f\x7f\xc3\xa9\xe5\xb7\xb4\xf0\x9f\x98\x80\xff\xc0\xed\xa0\x80\xf4\x90";
    char *s = malloc(10000);
    for (int iter = 0; iter < 2000; ++iter) {
        unsigned char r[2];
        rs_random(&seed, r, 2);
        size_t n = (size_t)(r[0] | (r[1] << 8)) % 10000;
        for (size_t i = 0; i < n; ++i) {
            unsigned char c;
            rs_random(&seed, &c, 1);
            s[i] = (c & 1) ? (char)c : pool[c % (sizeof(pool) - 1)];
        }
        if (iter < 8 && n > 4100) /* a 4-byte sequence across the boundary at offsets 4093..4098 */
            memcpy(s + 4093 + iter % 4, "\xf0\x9f\x98\x80", 4);
        k2a_buf_t a, b;
        k2a_buf_init(&a, 0);
        k2a_buf_init(&b, 0);
        assert_int_equal(k2a_json_append_escaped(&a, s, n), 0);
        assert_int_equal(k2a_buf_append_json_escaped(&b, s, n), 0);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.base, b.base, a.len);
        assert_true(rs_utf8_valid(a.base, a.len));
        k2a_buf_dispose(&a);
        k2a_buf_dispose(&b);
    }
    free(s);
    /* a bounded buffer */
    k2a_buf_t small;
    k2a_buf_init(&small, 10);
    assert_int_equal(k2a_json_append_escaped(&small, "0123456789abc", 13), K2A_ETOOBIG);
    k2a_buf_dispose(&small);
    /* room for the real output but not for the worst case (6 bytes per input byte): falls back to the exact escaper */
    k2a_buf_init(&small, 64);
    assert_int_equal(k2a_json_append_escaped(&small, "0123456789\n", 11), 0);
    assert_int_equal(small.len, 12);
    k2a_buf_dispose(&small);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures_golden),
        cmocka_unit_test(test_fixture_tool_pieces),
        cmocka_unit_test(test_sse_error_after_start),
        cmocka_unit_test(test_sse_thinking_tool_and_misuse),
        cmocka_unit_test(test_msg_rules),
        cmocka_unit_test(test_msg_limit),
        cmocka_unit_test(test_search_blocks),
        cmocka_unit_test(test_json_compact),
        cmocka_unit_test(test_escape_differential),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
