/*
 * History trimming of the Kiro request builder at every size, with the output buffer bounded exactly as the HTTP
 * exchange bounds it (KIRO_MAX_PAYLOAD_BYTES, a budget 256 bytes below it): 2 000 tool_use/tool_result pairs, hundreds
 * of 3 KB turns, a few huge turns, a 30 MB history. Each case checks that the body fits, that the history Kiro gets
 * still alternates from a user turn with every toolResult answering a toolUse of the turn before it, that the latest
 * message is intact, and that only a latest turn too big on its own gets the "prompt is too long" error. Also: the
 * measure equals the encoding byte for byte, spans included.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <yajl/yajl_tree.h>
#include "core/errors.h"
#include "convert/anthropic_req.h"
#include "convert/kiro_req.h"

#define PAYLOAD_LIMIT 600000         /* KIRO_MAX_PAYLOAD_BYTES's default */
#define BUDGET (PAYLOAD_LIMIT - 256) /* what the exchange gives the builder: room for a profileArn */

typedef struct st_fx_t {
    k2a_arena_t arena;
    k2a_model_map_t *map;
    k2a_ir_request_t req;
    k2a_kiro_build_params_t p;
    k2a_kiro_build_result_t res;
    k2a_buf_t out;
    k2a_convert_error_t err;
    char *body;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    k2a_arena_init(&f->arena, 0);
    k2a_convert_error_t err;
    assert_int_equal(k2a_model_map_create(NULL, 0, &f->map, &err), 0);
    k2a_kiro_build_params_init(&f->p, f->map);
    f->p.norm.max_payload_bytes = BUDGET;
    f->p.continuation_header = K2A_STRLIT("fixed-continuation");
    f->p.client_ip = K2A_STRLIT("127.0.0.1");
    k2a_buf_init(&f->out, PAYLOAD_LIMIT);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    k2a_buf_dispose(&f->out);
    k2a_model_map_destroy(f->map);
    k2a_arena_dispose(&f->arena);
    free(f->body);
    free(f);
    return 0;
}

/* ---------- request bodies ---------- */

static void ap(k2a_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ap(k2a_buf_t *b, const char *fmt, ...)
{
    va_list ap_;
    va_start(ap_, fmt);
    char tmp[512];
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap_);
    va_end(ap_);
    assert_true(n >= 0 && (size_t)n < sizeof(tmp));
    assert_int_equal(k2a_buf_append(b, tmp, (size_t)n), 0);
}

/* size bytes of text that needs escaping now and then (newlines, quotes, tabs), as JSON string content */
static void filler(k2a_buf_t *b, size_t size, unsigned seed)
{
    for (size_t i = 0; i < size; ++i) {
        unsigned v = (unsigned)(i * 2654435761u + seed);
        if (i % 61 == 60)
            assert_int_equal(k2a_buf_append(b, "\\n", 2), 0);
        else if (i % 97 == 96)
            assert_int_equal(k2a_buf_append(b, "\\\"", 2), 0);
        else if (i % 211 == 210)
            assert_int_equal(k2a_buf_append(b, "\\t", 2), 0);
        else
            assert_int_equal(k2a_buf_append(b, &"abcdefghijklmnopqrstuvwxyz    "[v % 30], 1), 0);
    }
}

static const char *const LATEST = "the latest question \\\"exactly\\\" as sent";
static const char *const LATEST_DECODED = "the latest question \"exactly\" as sent";

/* user text, then n times: assistant tool_use, user tool_result of result_size bytes; the last result is the latest
 * message (as Claude Code sends it), with LATEST as its text */
static char *tool_pairs(size_t n, size_t result_size)
{
    k2a_buf_t b = K2A_BUF_INIT(0);
    ap(&b, "{\"model\":\"claude-sonnet-4-5\",\"system\":\"You are a test.\",\"tools\":[{\"name\":\"Bash\",\"description\":\"Run\","
           "\"input_schema\":{\"type\":\"object\",\"properties\":{\"command\":{\"type\":\"string\"}}}}],\"messages\":["
           "{\"role\":\"user\",\"content\":\"first question\"}");
    for (size_t i = 0; i < n; ++i) {
        ap(&b,
           ",{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"step %zu\"},{\"type\":\"tool_use\",\"id\":"
           "\"toolu_%06zu\",\"name\":\"Bash\",\"input\":{\"command\":\"echo %zu\"}}]}",
           i, i, i);
        ap(&b, ",{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_%06zu\",\"content\":\"r%zu ", i,
           i);
        filler(&b, result_size, (unsigned)i);
        ap(&b, "\"}%s%s%s]}", i + 1 == n ? ",{\"type\":\"text\",\"text\":\"" : "", i + 1 == n ? LATEST : "",
           i + 1 == n ? "\"}" : "");
    }
    ap(&b, "]}");
    return k2a_buf_cstr(&b);
}

/* n user/assistant pairs of plain text, each message size bytes (every size_of_huge-th pair huge_size bytes instead, when
 * huge_every != 0), then LATEST as the latest message */
static char *text_turns(size_t n, size_t size, size_t huge_every, size_t huge_size)
{
    k2a_buf_t b = K2A_BUF_INIT(0);
    ap(&b, "{\"model\":\"claude-sonnet-4-5\",\"messages\":[");
    for (size_t i = 0; i < n; ++i) {
        size_t sz = huge_every != 0 && i % huge_every == 0 ? huge_size : size;
        ap(&b, "{\"role\":\"user\",\"content\":\"u%zu ", i);
        filler(&b, sz, (unsigned)i);
        ap(&b, "\"},{\"role\":\"assistant\",\"content\":\"a%zu ", i);
        filler(&b, sz, (unsigned)i + 7);
        ap(&b, "\"},");
    }
    ap(&b, "{\"role\":\"user\",\"content\":\"%s\"}]}", LATEST);
    return k2a_buf_cstr(&b);
}

static void load(fx_t *f, char *body)
{
    free(f->body);
    f->body = body;
    if (k2a_anthropic_decode(body, strlen(body), NULL, &f->arena, &f->req, &f->err) != 0) {
        print_error("decode: %s\n", f->err.message);
        fail();
    }
}

static int build(fx_t *f)
{
    return k2a_kiro_build_request(&f->req, &f->p, &f->arena, &f->out, &f->res, &f->err);
}

/* ---------- checks on the body Kiro gets ---------- */

static yajl_val parse_out(fx_t *f)
{
    char errbuf[128];
    char *s = strndup(f->out.base, f->out.len);
    yajl_val v = yajl_tree_parse(s, errbuf, sizeof(errbuf));
    free(s);
    if (v == NULL) {
        print_error("output is not JSON: %s\n", errbuf);
        fail();
    }
    return v;
}

static yajl_val at(yajl_val v, const char *a, const char *b, const char *c)
{
    const char *path[] = {a, b, c, NULL};
    return yajl_tree_get(v, path, yajl_t_any);
}

/* true when id is the toolUseId of one of the toolUses of the assistant message asst (NULL: none) */
static bool has_use(yajl_val asst, const char *id)
{
    yajl_val uses = asst != NULL ? at(asst, "toolUses", NULL, NULL) : NULL;
    for (size_t i = 0; uses != NULL && YAJL_IS_ARRAY(uses) && i < uses->u.array.len; ++i) {
        yajl_val u = at(uses->u.array.values[i], "toolUseId", NULL, NULL);
        if (YAJL_IS_STRING(u) && strcmp(u->u.string, id) == 0)
            return true;
    }
    return false;
}

/* every toolResult of the user message um answers a toolUse of prev (the assistant message before it) */
static void check_results(yajl_val um, yajl_val prev)
{
    yajl_val results = at(um, "userInputMessageContext", "toolResults", NULL);
    for (size_t i = 0; results != NULL && i < results->u.array.len; ++i) {
        const char *id = YAJL_GET_STRING(at(results->u.array.values[i], "toolUseId", NULL, NULL));
        if (!has_use(prev, id)) {
            print_error("orphaned toolResult %s\n", id);
            fail();
        }
    }
}

/* The body fits the budget, the history alternates from a user turn and ends with an assistant turn, no toolResult is
 * orphaned, and the latest message carries `latest`. Returns the number of history entries. */
static size_t check_body(fx_t *f, const char *latest)
{
    assert_true(f->out.len <= BUDGET);
    assert_int_equal(f->res.payload_bytes, f->out.len);
    yajl_val v = parse_out(f);
    yajl_val h = at(v, "conversationState", "history", NULL);
    size_t n = h != NULL ? h->u.array.len : 0;
    assert_int_equal(n % 2, 0);
    yajl_val prev = NULL;
    for (size_t i = 0; i < n; ++i) {
        yajl_val um = at(h->u.array.values[i], "userInputMessage", NULL, NULL);
        yajl_val am = at(h->u.array.values[i], "assistantResponseMessage", NULL, NULL);
        if (i % 2 == 0) {
            assert_non_null(um);
            assert_null(am);
            check_results(um, prev);
        } else {
            assert_non_null(am);
            assert_null(um);
            prev = am;
        }
    }
    yajl_val cur = at(v, "conversationState", "currentMessage", "userInputMessage");
    assert_non_null(cur);
    check_results(cur, prev);
    const char *content = YAJL_GET_STRING(at(cur, "content", NULL, NULL));
    assert_non_null(content);
    assert_non_null(strstr(content, latest));
    yajl_tree_free(v);
    return n;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---------- the cases ---------- */

static void test_2000_tool_pairs_are_trimmed_not_413(void **state)
{
    fx_t *f = *state;
    load(f, tool_pairs(2000, 180)); /* ~440 KB of client JSON, more once encoded for Kiro */
    assert_int_equal(build(f), 0);
    size_t n = check_body(f, LATEST_DECODED);
    assert_true(f->res.history_turns_dropped > 0);
    assert_true(f->res.history_turns_dropped % 2 == 0);
    assert_true(n >= 4);
    /* the latest message keeps its tool result, and the pair it answers is there */
    assert_non_null(memmem(f->out.base, f->out.len, "\"toolUseId\":\"toolu_001999\"", 26));
    assert_non_null(memmem(f->out.base, f->out.len, "\"You are a test.\"", 17)); /* the system pair stays */
    assert_null(memmem(f->out.base, f->out.len, "toolu_000000", 12));            /* the oldest pair went */
    /* just enough was dropped: the next older pair would not have fitted */
    assert_true(f->out.len > BUDGET - 2 * 1024);

    /* 2 000 pairs of 1 KB results (2.4 MB): the same, through the same bounded buffer */
    load(f, tool_pairs(2000, 1024));
    assert_int_equal(build(f), 0);
    check_body(f, LATEST_DECODED);
    assert_true(f->res.history_turns_dropped > 2 * 1000);
}

/* Dropping a pair also removes the tool results that answered it from the next user turn: when those free enough, one
 * pair goes, not two. */
static void test_results_of_a_dropped_tool_call_count_towards_the_budget(void **state)
{
    fx_t *f = *state;
    load(f, tool_pairs(10, 5000));
    f->p.norm.max_payload_bytes = 0;
    k2a_buf_dispose(&f->out);
    k2a_buf_init(&f->out, 0);
    assert_int_equal(build(f), 0);
    size_t full = f->out.len;
    /* pair 0 (the first question and the first tool call) is a few hundred bytes: 1 000 more can only come from the
     * 5 000-byte result of that tool call, which goes with it */
    f->p.norm.max_payload_bytes = full - 1000;
    assert_int_equal(build(f), 0);
    assert_int_equal(f->res.history_turns_dropped, 2);
    assert_true(f->out.len <= full - 1000);
    assert_null(memmem(f->out.base, f->out.len, "toolu_000000", 12));
    assert_non_null(memmem(f->out.base, f->out.len, "\"toolUseId\":\"toolu_000001\"", 26)); /* pair 1's tool call stays */
    assert_null(memmem(f->out.base, f->out.len, "r0 ", 3));                                 /* result 0 went with pair 0 */
    assert_non_null(memmem(f->out.base, f->out.len, "r1 ", 3));
    /* 1 000 more than that: pair 1 goes too, with result 1 */
    size_t one = full - f->out.len;
    f->p.norm.max_payload_bytes = full - one - 1000;
    assert_int_equal(build(f), 0);
    assert_int_equal(f->res.history_turns_dropped, 4);
    assert_null(memmem(f->out.base, f->out.len, "r1 ", 3));
    assert_non_null(memmem(f->out.base, f->out.len, "r2 ", 3));
}

static void test_hundreds_of_3k_turns_are_trimmed_not_413(void **state)
{
    fx_t *f = *state;
    load(f, text_turns(100, 3 * 1024, 0, 0)); /* 600 KB of turns */
    assert_int_equal(build(f), 0);
    check_body(f, LATEST_DECODED);
    assert_true(f->res.history_turns_dropped > 0);
    assert_null(memmem(f->out.base, f->out.len, "\"u0 ", 4));
    assert_non_null(memmem(f->out.base, f->out.len, "\"a99 ", 5));
    load(f, text_turns(1000, 3 * 1024, 0, 0)); /* 6 MB */
    assert_int_equal(build(f), 0);
    check_body(f, LATEST_DECODED);
    assert_non_null(memmem(f->out.base, f->out.len, "\"a999 ", 6));
}

static void test_a_few_huge_turns_are_dropped_whole(void **state)
{
    fx_t *f = *state;
    /* 6 pairs, 3 of them 2 MB messages, each alone over the budget: every pair but the small last ones goes */
    load(f, text_turns(6, 1000, 2, 2 * 1024 * 1024));
    assert_int_equal(build(f), 0);
    size_t n = check_body(f, LATEST_DECODED);
    assert_int_equal(n, 2); /* pair 5 (small); pair 4 is huge */
    assert_non_null(memmem(f->out.base, f->out.len, "\"u5 ", 4));
    assert_int_equal(f->res.history_turns_dropped, 10);
}

static void test_30mb_history_is_trimmed_in_linear_time(void **state)
{
    fx_t *f = *state;
    char *body = tool_pairs(4000, 7600); /* ~30 MB */
    size_t in = strlen(body);
    assert_true(in > 30u * 1000 * 1000);
    double t0 = now_ms();
    load(f, body);
    double t1 = now_ms();
    assert_int_equal(build(f), 0);
    double t2 = now_ms();
    check_body(f, LATEST_DECODED);
    assert_true(f->res.history_turns_dropped > 7800);
    /* reported, not asserted: the machine may be busy */
    print_message("30 MB case: %zu bytes of request, %zu history turns dropped, %zu bytes to Kiro; decode %.1f ms, "
                  "normalize + trim + encode %.1f ms\n",
                  in, f->res.history_turns_dropped, f->out.len, t1 - t0, t2 - t1);
}

static void test_latest_turn_too_big_is_prompt_too_long(void **state)
{
    fx_t *f = *state;
    /* the latest message alone is over the budget: nothing to drop helps */
    k2a_buf_t b = K2A_BUF_INIT(0);
    ap(&b, "{\"model\":\"claude-sonnet-4-5\",\"messages\":[{\"role\":\"user\",\"content\":\"old\"},{\"role\":\"assistant\","
           "\"content\":\"ok\"},{\"role\":\"user\",\"content\":\"");
    filler(&b, 700 * 1000, 1);
    ap(&b, "\"}]}");
    load(f, k2a_buf_cstr(&b));
    assert_int_equal(build(f), K2A_EPAYLOAD_TOOBIG);
    assert_int_equal(strncmp(f->err.message, "prompt is too long: ", 20), 0);
    char want[64];
    snprintf(want, sizeof(want), " bytes > %d maximum", BUDGET);
    assert_non_null(strstr(f->err.message, want));
    assert_non_null(strstr(f->err.message, "after dropping 2 of 2 history turns"));

    /* the pair the latest tool result answers stays, so a huge tool_use input in it is part of the latest turn */
    b = (k2a_buf_t)K2A_BUF_INIT(0);
    ap(&b, "{\"model\":\"claude-sonnet-4-5\",\"messages\":[{\"role\":\"user\",\"content\":\"go\"},{\"role\":\"assistant\","
           "\"content\":[{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"Write\",\"input\":{\"text\":\"");
    filler(&b, 700 * 1000, 2);
    ap(&b, "\"}}]},{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\",\"content\":\"done\"}]}]}");
    load(f, k2a_buf_cstr(&b));
    assert_int_equal(build(f), K2A_EPAYLOAD_TOOBIG);
    assert_int_equal(strncmp(f->err.message, "prompt is too long: ", 20), 0);
    assert_non_null(strstr(f->err.message, "after dropping 0 of 2 history turns"));
}

/* A latest message that fits the budget with little to spare is encoded into the bounded buffer: the encoder must not
 * ask the buffer for more than the body needs. */
static void test_latest_message_just_under_the_budget_fits_the_bounded_buffer(void **state)
{
    fx_t *f = *state;
    size_t closest = 0, over = 0;
    for (size_t size = (BUDGET - 3000) * 100 / 101; size <= BUDGET * 100 / 101; size += 37) { /* 1 byte in 100 is escaped */
        k2a_buf_t b = K2A_BUF_INIT(0);
        ap(&b, "{\"model\":\"claude-sonnet-4-5\",\"messages\":[{\"role\":\"user\",\"content\":\"old\"},{\"role\":"
               "\"assistant\",\"content\":\"ok\"},{\"role\":\"user\",\"content\":\"");
        for (size_t i = 0; i < size; ++i)
            assert_int_equal(k2a_buf_append(&b, i % 100 == 99 ? "\\n" : "x", i % 100 == 99 ? 2 : 1), 0);
        ap(&b, "\"}]}");
        load(f, k2a_buf_cstr(&b));
        int r = build(f);
        if (r == K2A_EPAYLOAD_TOOBIG) { /* over the budget, whatever is dropped */
            ++over;
            continue;
        }
        assert_int_equal(r, 0); /* never the buffer's K2A_ETOOBIG */
        assert_true(f->out.len <= BUDGET);
        if (f->out.len > closest)
            closest = f->out.len;
    }
    assert_true(over > 0);
    assert_true(closest > BUDGET - 40); /* the steps came within 37 bytes of the budget, and that fitted */
}

/* k2a_kiro_measure is the encoder without the writes: same size, same spans, whatever needs escaping */
static void test_measure_equals_encoding(void **state)
{
    fx_t *f = *state;
    static const char *const bodies[] = {
        "{\"model\":\"claude-sonnet-4-5\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
        "{\"model\":\"claude-sonnet-4-5\",\"system\":\"s\\u0001\\u001f\\\\\",\"messages\":[{\"role\":\"user\",\"content\":"
        "\"a\\u0000b\\b\\f\\r\\t\\n\\\"\\\\\\u00e9\\u4e2d\\ud83d\\ude00 "
        "012345678\"},{\"role\":\"assistant\",\"content\":[{\"type\":"
        "\"tool_use\",\"id\":\"t\\\"1\",\"name\":\"X\",\"input\":{\"q\":\"\\n\"}}]},{\"role\":\"user\",\"content\":[{\"type\":"
        "\"tool_result\",\"tool_use_id\":\"t\\\"1\",\"content\":\"r\\u0002\",\"is_error\":true},{\"type\":\"image\",\"source\":"
        "{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":\"iVBORw0KGgo=\"}}]}]}",
    };
    k2a_kiro_encode_ids_t ids = {K2A_STRLIT("M\x01"), K2A_STRLIT("C\""), K2A_STRLIT("A\\"), K2A_STRLIT("arn:x\n")};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); ++i) {
        load(f, strdup(bodies[i]));
        k2a_kiro_conv_t conv;
        assert_int_equal(k2a_normalize_for_kiro(&f->req, NULL, false, &f->arena, &conv, &f->err), 0);
        size_t spans_m[8] = {0}, spans_e[8] = {0};
        assert_true(conv.nhistory < 8);
        size_t n = k2a_kiro_measure(&conv, &ids, spans_m);
        k2a_buf_reset(&f->out);
        assert_int_equal(k2a_kiro_encode(&conv, &ids, &f->out, spans_e), 0);
        assert_int_equal(n, f->out.len);
        assert_memory_equal(spans_m, spans_e, sizeof(spans_m));
        yajl_tree_free(parse_out(f));
    }
    /* every byte value, at every offset around the 8- and 16-byte steps (bytes >= 0x80 are copied as they are) */
    char src[300];
    for (size_t i = 0; i < sizeof(src); ++i)
        src[i] = (char)(i < 256 ? i : 'a' + i % 26);
    for (size_t start = 0; start < 32; ++start) {
        for (size_t len = 0; start + len <= sizeof(src); len += 1 + len / 8) {
            k2a_kiro_conv_t c = {.current = {.content = k2a_str(src + start, len)}};
            k2a_buf_reset(&f->out);
            assert_int_equal(k2a_kiro_encode(&c, &ids, &f->out, NULL), 0);
            assert_int_equal(k2a_kiro_measure(&c, &ids, NULL), f->out.len);
        }
    }
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_2000_tool_pairs_are_trimmed_not_413),
        T(test_results_of_a_dropped_tool_call_count_towards_the_budget),
        T(test_hundreds_of_3k_turns_are_trimmed_not_413),
        T(test_a_few_huge_turns_are_dropped_whole),
        T(test_30mb_history_is_trimmed_in_linear_time),
        T(test_latest_turn_too_big_is_prompt_too_long),
        T(test_latest_message_just_under_the_budget_fits_the_bounded_buffer),
        T(test_measure_equals_encoding),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
