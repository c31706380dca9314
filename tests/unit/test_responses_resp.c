/*
 * The OpenAI Responses writer: real upstream bytes (tests/fixtures/upstream/<name>.bin through the EventStream decoder
 * and the Kiro event parser) into the streaming and the non-stream writer at once must give
 * tests/vectors/response/<fixture>.responses.{sse,json} (K2A_BLESS=1 rewrites them; review the diff), the same bytes
 * whether the body arrives whole or a byte at a time; and synthetic IR sequences (thinking, text, two tool calls,
 * max_output_tokens, an in-stream failure, pings) give the documented event order: every event is `event: T` +
 * `data: {"type":"T",...}` with sequence_number 0, 1, 2..., response.created then response.in_progress first, an
 * item's .added before its deltas and its .done after them, response.completed / .incomplete / .failed last; a web
 * search (SEARCH_START / SEARCH_RESULT) is a web_search_call item with its in_progress, searching and completed events,
 * before the items that follow it, and a non-stream rewind forgets only what came after the last search.
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
#include "convert/responses_resp.h"
#include "convert/web_search.h"
#include "core/errors.h"
#include "golden_support.h"
#include "kiro_run.h"
#include "resp_support.h"

#define UPSTREAM K2A_FIXTURES_DIR "/upstream/"
#define CREATED 1767225600

static const struct {
    const char *file, *model;
    int rc;            /* 0, or 1: the non-stream render fails */
    const char *final; /* the stream's last event */
} fixtures[] = {
    {"kiro2api_text_2frames_303B", "claude-3-5-haiku-20241022", 0, "completed"},
    {"kiro2api_jsontext_5frames_674B", "claude-3-5-haiku-20241022", 0, "completed"},
    {"kiro2api_cjk_text_then_tooluse_21frames_2738B", "claude-sonnet-4-20250514", 1, "failed"},
    {"SYNTHETIC_text_tooluse_metering_contextusage", "claude-sonnet-4-20250514", 0, "completed"},
    {"SYNTHETIC_text_then_exception", "claude-sonnet-4-20250514", 0, "incomplete"}, /* ContentLengthExceeded: max tokens */
};

/* ---------- the event grammar ---------- */

static const char *str_at(yajl_val v, const char *a, const char *b)
{
    const char *p[] = {a, b, NULL};
    yajl_val s = yajl_tree_get(v, p, yajl_t_string);
    return s != NULL ? YAJL_GET_STRING(s) : NULL;
}

static long long int_at(yajl_val v, const char *a)
{
    const char *p[] = {a, NULL};
    yajl_val n = yajl_tree_get(v, p, yajl_t_number);
    return n != NULL ? YAJL_GET_INTEGER(n) : -1;
}

typedef struct st_summary_t {
    char types[4096]; /* the event types, abbreviated, space-separated */
    char final[32];   /* the last event's type */
    char text[2048];  /* output_text deltas */
    char args[2048];  /* function_call_arguments deltas */
    long long usage_total;
} summary_t;

/* Checks the grammar of a whole stream and summarises it. */
static void check_stream(const char *sse, size_t len, summary_t *s)
{
    memset(s, 0, sizeof(*s));
    s->usage_total = -1;
    size_t off = 0;
    long long seq = 0;
    int open_items = 0;
    bool ended = false;
    char item_ids[16][64];
    int nitems = 0;
    while (off < len) {
        const char *end = strstr(sse + off, "\n\n");
        assert_non_null(end);
        size_t evlen = (size_t)(end - (sse + off));
        char *ev = strndup(sse + off, evlen);
        off += evlen + 2;
        assert_false(ended);
        if (ev[0] == ':') {
            strcat(s->types, "ping ");
            free(ev);
            continue;
        }
        assert_true(strncmp(ev, "event: ", 7) == 0);
        char *nl = strchr(ev, '\n');
        assert_non_null(nl);
        *nl = '\0';
        assert_true(strncmp(nl + 1, "data: ", 6) == 0);
        char err[256];
        yajl_val v = yajl_tree_parse(nl + 7, err, sizeof(err));
        if (v == NULL)
            fail_msg("bad JSON: %s in %s", err, nl + 7);
        const char *type = str_at(v, "type", NULL);
        assert_non_null(type);
        assert_string_equal(type, ev + 7);
        assert_int_equal(int_at(v, "sequence_number"), seq++);
        if (seq == 1)
            assert_string_equal(type, "response.created");
        if (seq == 2)
            assert_string_equal(type, "response.in_progress");
        const char *short_type = strncmp(type, "response.", 9) == 0 ? type + 9 : type;
        strncat(s->types, short_type, sizeof(s->types) - strlen(s->types) - 2);
        strcat(s->types, " ");
        if (strcmp(type, "response.output_item.added") == 0) {
            ++open_items;
            assert_int_equal(int_at(v, "output_index"), nitems);
            snprintf(item_ids[nitems++ % 16], 64, "%s", str_at(v, "item", "id"));
        } else if (strcmp(type, "response.output_item.done") == 0) {
            --open_items;
            assert_true(open_items >= 0);
        } else if (strcmp(type, "response.output_text.delta") == 0) {
            strncat(s->text, str_at(v, "delta", NULL), sizeof(s->text) - strlen(s->text) - 1);
        } else if (strcmp(type, "response.function_call_arguments.delta") == 0) {
            strncat(s->args, str_at(v, "delta", NULL), sizeof(s->args) - strlen(s->args) - 1);
        }
        if (strstr(type, ".delta") != NULL || strstr(type, ".done") != NULL) {
            if (strcmp(type, "response.output_item.done") != 0) {
                /* an item event names an item that was added */
                const char *id = str_at(v, "item_id", NULL);
                assert_non_null(id);
                bool known = false;
                for (int i = 0; i < nitems && i < 16; ++i)
                    known |= strcmp(item_ids[i], id) == 0;
                assert_true(known);
            }
        }
        if (strcmp(type, "response.completed") == 0 || strcmp(type, "response.incomplete") == 0 ||
            strcmp(type, "response.failed") == 0) {
            ended = true;
            if (strcmp(type, "response.failed") != 0)
                assert_int_equal(open_items, 0); /* a failure ends the stream where it is */
            snprintf(s->final, sizeof(s->final), "%s", short_type);
            const char *up[] = {"response", "usage", "total_tokens", NULL};
            yajl_val t = yajl_tree_get(v, up, yajl_t_number);
            if (t != NULL)
                s->usage_total = YAJL_GET_INTEGER(t);
        }
        yajl_tree_free(v);
        free(ev);
    }
    assert_true(ended);
}

/* ---------- fixtures ---------- */

static void run_fixture(size_t i, size_t chunk, k2a_buf_t *sse, k2a_buf_t *json, int *rc_render)
{
    char path[512];
    snprintf(path, sizeof(path), UPSTREAM "%s.bin", fixtures[i].file);
    size_t len;
    char *body = rs_read_file(path, &len);
    k2a_responses_writer_t w, a;
    uint64_t seed1 = 7, seed2 = 7;
    assert_int_equal(k2a_responses_writer_init(&w, sse, CREATED, k2a_cstr(fixtures[i].model), NULL, NULL, rs_random, &seed1, 0), 0);
    assert_int_equal(k2a_responses_writer_init(&a, NULL, CREATED, k2a_cstr(fixtures[i].model), NULL, NULL, rs_random, &seed2, 0),
                     0);
    rs_tee_t tee = {k2a_responses_writer_on_event, k2a_responses_writer_on_event, &w, &a};
    k2a_kiro_resp_t p;
    kr_start_tee(&p, &tee);
    rs_run_body(&p, body, len, chunk);
    assert_true(k2a_responses_writer_done(&w));
    *rc_render = k2a_responses_writer_render(&a, json);
    k2a_kiro_resp_dispose(&p);
    k2a_responses_writer_dispose(&a);
    k2a_responses_writer_dispose(&w);
    free(body);
}

static void test_fixtures_golden(void **state)
{
    for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); ++i) {
        k2a_buf_t sse, json, sse1, json1;
        k2a_buf_init(&sse, 0);
        k2a_buf_init(&json, 0);
        k2a_buf_init(&sse1, 0);
        k2a_buf_init(&json1, 0);
        int rc, rc1;
        run_fixture(i, 0, &sse, &json, &rc);
        assert_true(fixtures[i].rc ? rc < 0 : rc == 0);
        gs_compare_response_golden(fixtures[i].file, "responses.sse", &sse);
        if (rc == 0)
            gs_compare_response_golden(fixtures[i].file, "responses.json", &json);
        summary_t s;
        check_stream(sse.base, sse.len, &s);
        assert_string_equal(s.final, fixtures[i].final);
        run_fixture(i, 1, &sse1, &json1, &rc1);
        assert_int_equal(rc1, rc);
        assert_int_equal(sse1.len, sse.len);
        assert_memory_equal(sse1.base, sse.base, sse.len);
        assert_int_equal(json1.len, json.len);
        k2a_buf_dispose(&sse);
        k2a_buf_dispose(&json);
        k2a_buf_dispose(&sse1);
        k2a_buf_dispose(&json1);
    }
}

/* ---------- synthetic sequences ---------- */

static int emit(k2a_responses_writer_t *w, k2a_ir_event_type_t type, int index, k2a_ir_block_kind_t block, const char *text)
{
    k2a_ir_event_t ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = type;
    ev.index = index;
    ev.block = block;
    if (text != NULL)
        ev.text = k2a_cstr(text);
    if (type == K2A_EV_BLOCK_START && block == K2A_BLOCK_TOOL_USE) {
        ev.tool_id = k2a_cstr(index == 2 ? "tooluse_a" : "tooluse_b");
        ev.tool_name = k2a_cstr(index == 2 ? "get_weather" : "get_time");
    }
    return k2a_responses_writer_on_event(w, &ev);
}

static void full_answer(k2a_responses_writer_t *w, k2a_ir_stop_reason_t stop)
{
    assert_int_equal(emit(w, K2A_EV_MESSAGE_START, 0, 0, NULL), 0);
    assert_int_equal(emit(w, K2A_EV_BLOCK_START, 0, K2A_BLOCK_THINKING, NULL), 0);
    assert_int_equal(emit(w, K2A_EV_DELTA, 0, K2A_BLOCK_THINKING, "Need the "), 0);
    assert_int_equal(emit(w, K2A_EV_DELTA, 0, K2A_BLOCK_THINKING, "weather."), 0);
    assert_int_equal(emit(w, K2A_EV_BLOCK_STOP, 0, K2A_BLOCK_THINKING, NULL), 0);
    assert_int_equal(emit(w, K2A_EV_BLOCK_START, 1, K2A_BLOCK_TEXT, NULL), 0);
    assert_int_equal(emit(w, K2A_EV_DELTA, 1, K2A_BLOCK_TEXT, "Checking \"both\""), 0);
    assert_int_equal(emit(w, K2A_EV_DELTA, 1, K2A_BLOCK_TEXT, "."), 0);
    assert_int_equal(emit(w, K2A_EV_BLOCK_STOP, 1, K2A_BLOCK_TEXT, NULL), 0);
    assert_int_equal(emit(w, K2A_EV_PING, 0, 0, NULL), 0);
    assert_int_equal(emit(w, K2A_EV_BLOCK_START, 2, K2A_BLOCK_TOOL_USE, NULL), 0);
    assert_int_equal(emit(w, K2A_EV_DELTA, 2, K2A_BLOCK_TOOL_USE, "{\"city\":"), 0);
    assert_int_equal(emit(w, K2A_EV_DELTA, 2, K2A_BLOCK_TOOL_USE, "\"Paris\"}"), 0);
    assert_int_equal(emit(w, K2A_EV_BLOCK_STOP, 2, K2A_BLOCK_TOOL_USE, NULL), 0);
    assert_int_equal(emit(w, K2A_EV_BLOCK_START, 3, K2A_BLOCK_TOOL_USE, NULL), 0);
    assert_int_equal(emit(w, K2A_EV_BLOCK_STOP, 3, K2A_BLOCK_TOOL_USE, NULL), 0);
    k2a_ir_event_t ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = K2A_EV_STOP;
    ev.stop_reason = stop;
    ev.usage.input_tokens = 100;
    ev.usage.output_tokens = 40;
    assert_int_equal(k2a_responses_writer_on_event(w, &ev), 0);
}

static void test_stream_order(void **state)
{
    k2a_buf_t out;
    k2a_buf_init(&out, 0);
    k2a_responses_writer_t w;
    uint64_t seed = 1;
    k2a_responses_extra_t x;
    memset(&x, 0, sizeof(x));
    x.store = true;
    x.parallel_tool_calls = true;
    x.instructions = k2a_cstr("Be brief.");
    x.metadata = k2a_cstr("{\"k\":\"v\"}");
    assert_int_equal(k2a_responses_writer_init(&w, &out, CREATED, k2a_cstr("claude-sonnet-4-5"), &x, NULL, rs_random, &seed, 0), 0);
    full_answer(&w, K2A_STOP_TOOL_USE);
    summary_t s;
    check_stream(out.base, out.len, &s);
    assert_string_equal(s.types,
                        "created in_progress output_item.added reasoning_summary_part.added reasoning_summary_text.delta "
                        "reasoning_summary_text.delta reasoning_summary_text.done reasoning_summary_part.done output_item.done "
                        "output_item.added content_part.added output_text.delta output_text.delta output_text.done "
                        "content_part.done output_item.done ping output_item.added function_call_arguments.delta "
                        "function_call_arguments.delta function_call_arguments.done output_item.done output_item.added "
                        "function_call_arguments.done output_item.done completed ");
    assert_string_equal(s.text, "Checking \"both\".");
    assert_string_equal(s.args, "{\"city\":\"Paris\"}");
    assert_int_equal(s.usage_total, 140);
    /* the final object echoes the request and lists the four items; a call without arguments has "{}" */
    const char *fin = strstr(out.base, "event: response.completed");
    assert_non_null(fin);
    assert_non_null(strstr(fin, "\"instructions\":\"Be brief.\""));
    assert_non_null(strstr(fin, "\"metadata\":{\"k\":\"v\"}"));
    assert_non_null(
        strstr(fin, "\"type\":\"function_call\",\"status\":\"completed\",\"arguments\":\"{}\",\"call_id\":\"tooluse_b\""));
    assert_non_null(strstr(fin, "\"output_tokens_details\":{\"reasoning_tokens\":"));
    k2a_buf_t items;
    k2a_buf_init(&items, 0);
    assert_int_equal(k2a_responses_writer_items(&w, &items), 0);
    char err[128];
    yajl_val v = yajl_tree_parse(k2a_buf_cstr(&items), err, sizeof(err));
    assert_non_null(v);
    assert_true(YAJL_IS_ARRAY(v));
    assert_int_equal(v->u.array.len, 4);
    assert_string_equal(str_at(v->u.array.values[0], "type", NULL), "reasoning");
    assert_string_equal(str_at(v->u.array.values[1], "type", NULL), "message");
    assert_string_equal(str_at(v->u.array.values[2], "call_id", NULL), "tooluse_a");
    assert_true(strncmp(str_at(v->u.array.values[2], "id", NULL), "fc_", 3) == 0);
    yajl_tree_free(v);
    k2a_buf_dispose(&items);
    k2a_responses_writer_dispose(&w);
    k2a_buf_dispose(&out);
}

static void test_max_tokens_incomplete(void **state)
{
    k2a_buf_t out, json;
    k2a_buf_init(&out, 0);
    k2a_buf_init(&json, 0);
    k2a_responses_writer_t w, a;
    uint64_t seed = 1, seed2 = 1;
    assert_int_equal(k2a_responses_writer_init(&w, &out, CREATED, k2a_cstr("m"), NULL, NULL, rs_random, &seed, 0), 0);
    assert_int_equal(k2a_responses_writer_init(&a, NULL, CREATED, k2a_cstr("m"), NULL, NULL, rs_random, &seed2, 0), 0);
    full_answer(&w, K2A_STOP_MAX_TOKENS);
    full_answer(&a, K2A_STOP_MAX_TOKENS);
    summary_t s;
    check_stream(out.base, out.len, &s);
    assert_string_equal(s.final, "incomplete");
    assert_int_equal(k2a_responses_writer_render(&a, &json), 0);
    assert_non_null(strstr(k2a_buf_cstr(&json), "\"status\":\"incomplete\""));
    assert_non_null(strstr(k2a_buf_cstr(&json), "\"incomplete_details\":{\"reason\":\"max_output_tokens\"}"));
    assert_true(strncmp(json.base, "{\"id\":\"resp_", 12) == 0);
    assert_non_null(strstr(json.base, "\"object\":\"response\""));
    /* the stream's final object (what the store keeps) is response.incomplete's, as rendered anew; a non-stream writer
     * has none in a stream, and a drained stream none either */
    k2a_str_t fin = k2a_responses_writer_final(&w);
    k2a_buf_t again = K2A_BUF_INIT(0);
    assert_int_equal(k2a_responses_writer_render(&w, &again), 0);
    assert_int_equal(fin.len, again.len);
    assert_memory_equal(fin.base, again.base, again.len);
    assert_true(fin.base > out.base + 20 && memcmp(fin.base - 11, "\"response\":", 11) == 0);
    assert_non_null(strstr(out.base + out.len - 80, "sequence_number"));
    assert_int_equal(k2a_responses_writer_final(&a).len, 0);
    k2a_buf_reset(&out);
    assert_int_equal(k2a_responses_writer_final(&w).len, 0);
    k2a_buf_dispose(&again);
    k2a_responses_writer_dispose(&w);
    k2a_responses_writer_dispose(&a);
    k2a_buf_dispose(&out);
    k2a_buf_dispose(&json);
}

static void test_failure_in_stream(void **state)
{
    k2a_buf_t out;
    k2a_buf_init(&out, 0);
    k2a_responses_writer_t w;
    uint64_t seed = 1;
    assert_int_equal(k2a_responses_writer_init(&w, &out, CREATED, k2a_cstr("m"), NULL, NULL, rs_random, &seed, 0), 0);
    assert_int_equal(emit(&w, K2A_EV_MESSAGE_START, 0, 0, NULL), 0);
    assert_int_equal(emit(&w, K2A_EV_BLOCK_START, 0, K2A_BLOCK_TEXT, NULL), 0);
    assert_int_equal(emit(&w, K2A_EV_DELTA, 0, K2A_BLOCK_TEXT, "Hel"), 0);
    k2a_ir_event_t ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = K2A_EV_ERROR;
    ev.error = K2A_EUPSTREAM_TRUNCATED;
    ev.error_message = k2a_cstr("the upstream stream ended early");
    assert_int_equal(k2a_responses_writer_on_event(&w, &ev), 0);
    assert_int_equal(emit(&w, K2A_EV_DELTA, 0, K2A_BLOCK_TEXT, "lo"), 0); /* ignored after the end */
    const char *failed = strstr(k2a_buf_cstr(&out), "event: response.failed");
    assert_non_null(failed);
    assert_non_null(strstr(failed, "\"status\":\"failed\""));
    assert_non_null(strstr(failed, "\"message\":\"the upstream stream ended early\""));
    assert_null(strstr(out.base, "\"delta\":\"lo\""));
    /* the open item is left as it was: failed ends the stream */
    k2a_buf_t json;
    k2a_buf_init(&json, 0);
    assert_int_equal(k2a_responses_writer_render(&w, &json), K2A_EUPSTREAM_TRUNCATED);
    k2a_str_t m = k2a_responses_writer_error_message(&w);
    assert_true(k2a_str_eq_lit(m, "the upstream stream ended early"));
    k2a_buf_dispose(&json);
    k2a_responses_writer_dispose(&w);
    k2a_buf_dispose(&out);
}

static void test_non_stream_object(void **state)
{
    k2a_buf_t json;
    k2a_buf_init(&json, 0);
    k2a_responses_writer_t a;
    uint64_t seed = 3;
    assert_int_equal(k2a_responses_writer_init(&a, NULL, CREATED, k2a_cstr("claude-x"), NULL, NULL, rs_random, &seed, 0), 0);
    assert_int_equal(k2a_responses_writer_render(&a, &json), K2A_EUPSTREAM_TRUNCATED); /* no STOP yet */
    full_answer(&a, K2A_STOP_END_TURN);
    assert_int_equal(k2a_responses_writer_render(&a, &json), 0);
    char err[128];
    yajl_val v = yajl_tree_parse(k2a_buf_cstr(&json), err, sizeof(err));
    assert_non_null(v);
    assert_string_equal(str_at(v, "status", NULL), "completed");
    assert_string_equal(str_at(v, "model", NULL), "claude-x");
    assert_int_equal(int_at(v, "created_at"), CREATED);
    const char *op[] = {"output", NULL};
    yajl_val output = yajl_tree_get(v, op, yajl_t_array);
    assert_non_null(output);
    assert_int_equal(output->u.array.len, 4);
    const char *tp[] = {"content", NULL};
    yajl_val content = yajl_tree_get(output->u.array.values[1], tp, yajl_t_array);
    assert_non_null(content);
    assert_string_equal(str_at(content->u.array.values[0], "text", NULL), "Checking \"both\".");
    const char *up[] = {"usage", "input_tokens", NULL};
    assert_int_equal(YAJL_GET_INTEGER(yajl_tree_get(v, up, yajl_t_number)), 100);
    yajl_tree_free(v);
    k2a_responses_writer_dispose(&a);
    k2a_buf_dispose(&json);
}

/* ---------- web search ---------- */

static int search_event(k2a_responses_writer_t *w, k2a_ir_event_type_t type, int index, const char *query,
                        const k2a_ir_search_t *search)
{
    k2a_ir_event_t ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = type;
    ev.index = index;
    ev.tool_id = k2a_cstr("srvtoolu_x");
    ev.text = k2a_cstr(query);
    ev.search = search;
    return k2a_responses_writer_on_event(w, &ev);
}

/* Two turns: a search with three results then text; a search refused (max uses) then text. */
static void searching_answer(k2a_responses_writer_t *w, const k2a_ws_results_t *res)
{
    k2a_ir_search_t ok = {.results = res, .failure = ""}, over = {.over = true};
    assert_int_equal(emit(w, K2A_EV_MESSAGE_START, 0, 0, NULL), 0);
    assert_int_equal(search_event(w, K2A_EV_SEARCH_START, 0, "kiro \"news\"", &ok), 0);
    assert_int_equal(search_event(w, K2A_EV_SEARCH_RESULT, 1, "kiro \"news\"", &ok), 0);
    assert_int_equal(emit(w, K2A_EV_BLOCK_START, 2, K2A_BLOCK_TEXT, NULL), 0);
    assert_int_equal(emit(w, K2A_EV_DELTA, 2, K2A_BLOCK_TEXT, "Found."), 0);
    assert_int_equal(emit(w, K2A_EV_BLOCK_STOP, 2, K2A_BLOCK_TEXT, NULL), 0);
    assert_int_equal(search_event(w, K2A_EV_SEARCH_START, 3, "again", &over), 0);
    assert_int_equal(search_event(w, K2A_EV_SEARCH_RESULT, 4, "again", &over), 0);
    assert_int_equal(emit(w, K2A_EV_BLOCK_START, 5, K2A_BLOCK_TEXT, NULL), 0);
    assert_int_equal(emit(w, K2A_EV_DELTA, 5, K2A_BLOCK_TEXT, "Done."), 0);
    assert_int_equal(emit(w, K2A_EV_BLOCK_STOP, 5, K2A_BLOCK_TEXT, NULL), 0);
    k2a_ir_event_t ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = K2A_EV_STOP;
    assert_int_equal(k2a_responses_writer_on_event(w, &ev), 0);
}

static void results3(k2a_ws_results_t *res)
{
    memset(res, 0, sizeof(*res));
    res->n = 3;
    res->items[0].url = k2a_cstr("https://a.example/1");
    res->items[1].url = k2a_cstr("https://b.example/2?q=\"x\"");
    res->items[2].url = k2a_cstr("https://c.example/3");
}

static void test_web_search_stream(void **state)
{
    k2a_buf_t out;
    k2a_buf_init(&out, 0);
    k2a_responses_writer_t w;
    uint64_t seed = 5;
    k2a_ws_results_t res;
    results3(&res);
    assert_int_equal(k2a_responses_writer_init(&w, &out, CREATED, k2a_cstr("m"), NULL, NULL, rs_random, &seed, 0), 0);
    searching_answer(&w, &res);
    summary_t s;
    check_stream(out.base, out.len, &s); /* sequence numbers 0, 1, 2..., output_index of each item in order */
    assert_string_equal(s.types, "created in_progress output_item.added web_search_call.in_progress web_search_call.searching "
                                 "web_search_call.completed output_item.done output_item.added content_part.added "
                                 "output_text.delta output_text.done content_part.done output_item.done output_item.added "
                                 "web_search_call.in_progress web_search_call.searching output_item.done output_item.added "
                                 "content_part.added output_text.delta output_text.done content_part.done output_item.done "
                                 "completed ");
    assert_string_equal(s.text, "Found.Done.");
    /* the items: added in progress, done with the action; the refused one failed */
    const char *added = strstr(out.base, "event: response.output_item.added");
    assert_non_null(added);
    assert_non_null(strstr(added, "\"type\":\"web_search_call\",\"status\":\"in_progress\"}"));
    const char *ip = strstr(out.base, "event: response.web_search_call.in_progress");
    assert_non_null(ip);
    assert_true(strncmp(strstr(ip, "\"item_id\":\""), "\"item_id\":\"ws_", 13) == 0);
    assert_non_null(strstr(ip, "\"output_index\":0,\"sequence_number\":3}"));
    assert_non_null(strstr(out.base, "\"status\":\"completed\",\"action\":{\"type\":\"search\",\"query\":\"kiro \\\"news\\\"\","
                                     "\"sources\":[{\"type\":\"url\",\"url\":\"https://a.example/1\"},{\"type\":\"url\",\"url\":"
                                     "\"https://b.example/2?q=\\\"x\\\"\"},{\"type\":\"url\",\"url\":\"https://c.example/3\"}]}}"));
    assert_non_null(strstr(out.base, "\"status\":\"failed\",\"action\":{\"type\":\"search\",\"query\":\"again\",\"sources\":[]}}"));
    /* the final object lists the four items in order */
    k2a_buf_t items;
    k2a_buf_init(&items, 0);
    assert_int_equal(k2a_responses_writer_items(&w, &items), 0);
    char err[128];
    yajl_val v = yajl_tree_parse(k2a_buf_cstr(&items), err, sizeof(err));
    assert_non_null(v);
    assert_int_equal(v->u.array.len, 4);
    assert_string_equal(str_at(v->u.array.values[0], "type", NULL), "web_search_call");
    assert_string_equal(str_at(v->u.array.values[1], "type", NULL), "message");
    assert_string_equal(str_at(v->u.array.values[2], "status", NULL), "failed");
    assert_string_equal(str_at(v->u.array.values[3], "type", NULL), "message");
    yajl_tree_free(v);
    k2a_buf_dispose(&items);
    k2a_responses_writer_dispose(&w);
    k2a_buf_dispose(&out);
}

/* Non-stream: the items in output order; a rewind (a later turn failed over) keeps what the last search closed. */
static void test_web_search_non_stream_rewind(void **state)
{
    k2a_responses_writer_t a;
    uint64_t seed = 5;
    k2a_ws_results_t res;
    results3(&res);
    k2a_ir_search_t ok = {.results = &res, .failure = ""};
    assert_int_equal(k2a_responses_writer_init(&a, NULL, CREATED, k2a_cstr("m"), NULL, NULL, rs_random, &seed, 0), 0);
    assert_int_equal(search_event(&a, K2A_EV_SEARCH_RESULT, 1, "q", &ok), K2A_EINTERNAL); /* a result with no start */
    assert_int_equal(emit(&a, K2A_EV_MESSAGE_START, 0, 0, NULL), 0);
    assert_int_equal(search_event(&a, K2A_EV_SEARCH_START, 0, "q", &ok), 0);
    assert_int_equal(search_event(&a, K2A_EV_SEARCH_RESULT, 1, "q", &ok), 0);
    /* an attempt that fails midway */
    assert_int_equal(emit(&a, K2A_EV_BLOCK_START, 2, K2A_BLOCK_TEXT, NULL), 0);
    assert_int_equal(emit(&a, K2A_EV_DELTA, 2, K2A_BLOCK_TEXT, "lost"), 0);
    assert_int_equal(emit(&a, K2A_EV_BLOCK_STOP, 2, K2A_BLOCK_TEXT, NULL), 0);
    assert_int_equal(emit(&a, K2A_EV_BLOCK_START, 3, K2A_BLOCK_TEXT, NULL), 0);
    k2a_responses_writer_rewind(&a);
    /* the next attempt */
    assert_int_equal(emit(&a, K2A_EV_BLOCK_START, 2, K2A_BLOCK_TEXT, NULL), 0);
    assert_int_equal(emit(&a, K2A_EV_DELTA, 2, K2A_BLOCK_TEXT, "kept"), 0);
    k2a_ir_event_t ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = K2A_EV_STOP;
    assert_int_equal(k2a_responses_writer_on_event(&a, &ev), 0);
    k2a_buf_t json;
    k2a_buf_init(&json, 0);
    assert_int_equal(k2a_responses_writer_render(&a, &json), 0);
    char err[128];
    yajl_val v = yajl_tree_parse(k2a_buf_cstr(&json), err, sizeof(err));
    assert_non_null(v);
    const char *op[] = {"output", NULL};
    yajl_val output = yajl_tree_get(v, op, yajl_t_array);
    assert_non_null(output);
    assert_int_equal(output->u.array.len, 2);
    assert_string_equal(str_at(output->u.array.values[0], "type", NULL), "web_search_call");
    assert_string_equal(str_at(output->u.array.values[0], "status", NULL), "completed");
    assert_null(strstr(json.base, "lost"));
    assert_non_null(strstr(json.base, "\"text\":\"kept\""));
    yajl_tree_free(v);
    k2a_buf_dispose(&json);
    k2a_responses_writer_dispose(&a);
}

/* The output is bounded: past max_bytes the answer fails with K2A_EUPSTREAM_TOOBIG instead of growing. */
static void test_output_bound(void **state)
{
    k2a_responses_writer_t a;
    uint64_t seed = 3;
    assert_int_equal(k2a_responses_writer_init(&a, NULL, CREATED, k2a_cstr("m"), NULL, NULL, rs_random, &seed, 64), 0);
    assert_int_equal(emit(&a, K2A_EV_BLOCK_START, 0, K2A_BLOCK_TEXT, NULL), 0);
    char big[100];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(emit(&a, K2A_EV_DELTA, 0, K2A_BLOCK_TEXT, big), K2A_EUPSTREAM_TOOBIG);
    assert_int_equal(emit(&a, K2A_EV_DELTA, 5, K2A_BLOCK_TEXT, "x"), K2A_EINTERNAL); /* a block never started */
    k2a_responses_writer_dispose(&a);
}

/* An item's text is escaped once, delta by delta, for its .done events and the finished item: the same bytes as
 * escaping the whole text, also when a delta ends inside a UTF-8 sequence that the next one completes (the item then
 * keeps its text unescaped) and with characters that need escaping on both sides of such a split. */
static void check_done_text(const char *const *deltas, size_t n)
{
    k2a_buf_t out, whole, want;
    k2a_buf_init(&out, 0);
    k2a_buf_init(&whole, 0);
    k2a_buf_init(&want, 0);
    k2a_responses_writer_t w, a;
    uint64_t seed = 5, seed2 = 5;
    assert_int_equal(k2a_responses_writer_init(&w, &out, CREATED, k2a_cstr("m"), NULL, NULL, rs_random, &seed, 0), 0);
    assert_int_equal(k2a_responses_writer_init(&a, NULL, CREATED, k2a_cstr("m"), NULL, NULL, rs_random, &seed2, 0), 0);
    k2a_responses_writer_t *both[] = {&w, &a};
    for (int k = 0; k < 2; ++k) {
        assert_int_equal(emit(both[k], K2A_EV_MESSAGE_START, 0, 0, NULL), 0);
        assert_int_equal(emit(both[k], K2A_EV_BLOCK_START, 0, K2A_BLOCK_TEXT, NULL), 0);
        for (size_t i = 0; i < n; ++i)
            assert_int_equal(emit(both[k], K2A_EV_DELTA, 0, K2A_BLOCK_TEXT, deltas[i]), 0);
        assert_int_equal(emit(both[k], K2A_EV_BLOCK_STOP, 0, K2A_BLOCK_TEXT, NULL), 0);
        assert_int_equal(emit(both[k], K2A_EV_STOP, 0, 0, NULL), 0);
    }
    for (size_t i = 0; i < n; ++i)
        assert_int_equal(k2a_buf_append(&whole, deltas[i], strlen(deltas[i])), 0);
    assert_int_equal(k2a_buf_append(&want, "\"text\":\"", 8), 0);
    assert_int_equal(k2a_buf_append_json_escaped(&want, whole.base, whole.len), 0);
    assert_int_equal(k2a_buf_append(&want, "\"", 1), 0);
    const char *cw = k2a_buf_cstr(&want), *cs = k2a_buf_cstr(&out);
    const char *done = strstr(cs, "event: response.output_text.done");
    assert_non_null(done);
    assert_non_null(strstr(done, cw));                                              /* .output_text.done */
    assert_non_null(strstr(strstr(done, "event: response.content_part.done"), cw)); /* .content_part.done */
    assert_non_null(strstr(strstr(done, "event: response.output_item.done"), cw));  /* the item */
    assert_non_null(strstr(strstr(done, "event: response.completed"), cw));         /* the final object */
    k2a_buf_t json;
    k2a_buf_init(&json, 0);
    assert_int_equal(k2a_responses_writer_render(&a, &json), 0);
    assert_non_null(strstr(k2a_buf_cstr(&json), cw));
    k2a_buf_dispose(&json);
    k2a_responses_writer_dispose(&w);
    k2a_responses_writer_dispose(&a);
    k2a_buf_dispose(&out);
    k2a_buf_dispose(&whole);
    k2a_buf_dispose(&want);
}

static void test_done_text_escaped_once(void **state)
{
    static const char *const plain[] = {"a\"b\\c\n", "\x01\t\x1f", " caf\xc3\xa9 \xe2\x82\xac", "\xff!"};
    check_done_text(plain, 4);
    static const char *const split[] = {"q\"\n\x02", "caf\xc3", "\xa9 \xe2\x82", "\xac \\\"", "\xf0\x9f", "\x98\x80.\r"};
    check_done_text(split, 6);
    static const char *const first[] = {"\xe2", "\x82\xac\"\x7f"};
    check_done_text(first, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures_golden),        cmocka_unit_test(test_stream_order),
        cmocka_unit_test(test_max_tokens_incomplete),  cmocka_unit_test(test_failure_in_stream),
        cmocka_unit_test(test_non_stream_object),      cmocka_unit_test(test_output_bound),
        cmocka_unit_test(test_web_search_stream),      cmocka_unit_test(test_web_search_non_stream_rewind),
        cmocka_unit_test(test_done_text_escaped_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
