/*
 * Token estimator vectors (kiro-protocol.md §4.6 and the upstream fixtures README): text, tool names, tool use,
 * the input estimate over the IR (the example request -> 9, tools tiers, web_search exclusion) and the streaming
 * output counter (per-chunk text, tool start 12 + text_tokens(name), ceil(json bytes / 4) at the block's stop).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "convert/tokens.h"

static int64_t tt(const char *s)
{
    return k2a_tokens_text(s, strlen(s));
}

static int64_t tn(const char *s)
{
    return k2a_tokens_tool_name(s, strlen(s));
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_text_vectors(void **state)
{
    assert_int_equal(tt(""), 0);
    assert_int_equal(tt("hello"), 2);
    assert_int_equal(tt("你"), 2);
    assert_int_equal(tt("你好"), 3);
    assert_int_equal(tt("你好hello"), 4);
    assert_int_equal(tt("Immersive Weather Car"), 8);
    char *x = repeat('x', 100), *a = repeat('a', 1000);
    assert_int_equal(tt(x), 36);
    assert_int_equal(tt(a), 240);
    free(x);
    free(a);
    /* the ratio tiers: 49 -> ceil(49/2.8)=18, 50 -> ceil(50/2.6)=20 then x0.95=19, 99 -> ceil(99/2.6)=39 x0.95=37 */
    char *s49 = repeat('b', 49), *s50 = repeat('b', 50), *s99 = repeat('b', 99);
    assert_int_equal(tt(s49), 18);
    assert_int_equal(tt(s50), 19);
    assert_int_equal(tt(s99), 37);
    free(s49);
    free(s50);
    free(s99);
    /* a single character, invalid UTF-8 bytes count as one code point each */
    assert_int_equal(tt("a"), 1);
    assert_int_equal(k2a_tokens_text("\xff\xfe", 2), 1);
    /* CJK outside U+4E00..U+9FFF (Hiragana) counts as "other" */
    assert_int_equal(tt("あ"), 1);
}

/* The ASCII fast path reads 8 bytes at a time: a multi-byte character or an invalid byte at any offset of an ASCII run
 * must be counted the same. With `other` non-CJK code points at a ceil boundary (28 / 2.8 = 10, 29 / 2.8 -> 11) a
 * count off by one either way changes the result. */
static void test_text_ascii_runs_any_alignment(void **state)
{
    for (size_t other = 28; other <= 29; ++other) {
        for (size_t k = 0; k + 1 <= other - 1; ++k) {
            char s[64];
            size_t n = 0;
            memset(s + n, 'a', k);
            n += k;
            memcpy(s + n, "\xe4\xbd\xa0", 3); /* 你: CJK */
            n += 3;
            s[n++] = (char)0xff; /* invalid: one code point */
            memset(s + n, 'b', other - 1 - k);
            n += other - 1 - k;
            /* other code points: k + 1 + (other - 1 - k) = other; 1 CJK; n < 50 so no discount */
            assert_int_equal(k2a_tokens_text(s, n), 1 + (other == 28 ? 10 : 11));
        }
    }
}

static void test_fixture_text_sums(void **state)
{
    /* the per-frame estimates of kiro2api_text_2frames_303B.bin (README: sum 22) */
    assert_int_equal(tt("Immersive Weather Car") + tt("d: Native Web Design & Dynamic Effects"), 22);
    /* the tool start of the cjk capture adds 12 + estimate("Write") = 14 */
    assert_int_equal(12 + tt("Write"), 14);
}

static void test_tool_names(void **state)
{
    assert_int_equal(tn(""), 0);
    assert_int_equal(tn("get_weather"), 7);
    assert_int_equal(tn("Write"), 3);
    assert_int_equal(tn("mcp__Playwright__browser_navigate_back"), 25);
    assert_int_equal(tn("a"), 2); /* minimum 2 */
}

static void test_tool_use(void **state)
{
    /* 3 + 8 + 1 + name + 1 + (empty input ? 1 : len/4) */
    assert_int_equal(k2a_tokens_tool_use(K2A_STRLIT("get_weather"), K2A_STRLIT("{}")), 3 + 8 + 1 + 7 + 1 + 1);
    assert_int_equal(k2a_tokens_tool_use(K2A_STRLIT("get_weather"), K2A_STRLIT("{ }")), 21);
    assert_int_equal(k2a_tokens_tool_use(K2A_STRLIT("get_weather"), K2A_STR_NULL), 21);
    assert_int_equal(k2a_tokens_tool_use(K2A_STRLIT("Write"), K2A_STRLIT("{\"city\":\"Paris\"}")), 3 + 8 + 1 + 3 + 1 + 16 / 4);
}

static void test_input_estimate(void **state)
{
    /* {"model":..,"messages":[{"role":"user","content":"hello"}]} -> 3 + 2 + 4 = 9 */
    k2a_ir_block_t hello = {.kind = K2A_BLOCK_TEXT, .text = K2A_STRLIT("hello")};
    k2a_ir_message_t msg = {.role = K2A_ROLE_USER, .blocks = &hello, .nblocks = 1};
    k2a_ir_request_t req = {.model = K2A_STRLIT("claude-sonnet-4-20250514"), .messages = &msg, .nmessages = 1};
    assert_int_equal(k2a_tokens_input_estimate(&req, true), 9);

    /* a system block adds text + 2; an empty one nothing */
    k2a_ir_block_t sys[2] = {{.kind = K2A_BLOCK_TEXT, .text = K2A_STRLIT("hello")},
                             {.kind = K2A_BLOCK_TEXT, .text = K2A_STRLIT("")}};
    req.system = sys;
    req.nsystem = 2;
    assert_int_equal(k2a_tokens_input_estimate(&req, true), 9 + 2 + 2);
    req.nsystem = 0;

    /* blocks: image 1500, document 500, tool_result without content 50, text without text 10 */
    k2a_ir_block_t blocks[5] = {
        {.kind = K2A_BLOCK_IMAGE},
        {.kind = K2A_BLOCK_DOCUMENT},
        {.kind = K2A_BLOCK_TOOL_RESULT},
        {.kind = K2A_BLOCK_TEXT, .text = K2A_STR_NULL},
        {.kind = K2A_BLOCK_TOOL_USE, .name = K2A_STRLIT("get_weather"), .input = K2A_STRLIT("{}")},
    };
    msg.blocks = blocks;
    msg.nblocks = 5;
    assert_int_equal(k2a_tokens_input_estimate(&req, true), 3 + 1500 + 500 + 50 + 10 + 21 + 4);

    /* tool_result with content: the sum of its blocks */
    k2a_ir_block_t inner[2] = {{.kind = K2A_BLOCK_TEXT, .text = K2A_STRLIT("hello")}, {.kind = K2A_BLOCK_IMAGE}};
    k2a_ir_block_t result = {.kind = K2A_BLOCK_TOOL_RESULT, .content = inner, .ncontent = 2};
    msg.blocks = &result;
    msg.nblocks = 1;
    assert_int_equal(k2a_tokens_input_estimate(&req, true), 3 + 2 + 1500 + 4);

    /* one tool: base 0, per tool 320, schema ceil(len/1.9) min 50 (+10 for $schema) */
    msg.blocks = &hello;
    k2a_ir_tool_t tool = {.name = K2A_STRLIT("get_weather"), .description = K2A_STRLIT("hello"), .input_schema = K2A_STRLIT("{}")};
    req.tools = &tool;
    req.ntools = 1;
    assert_int_equal(k2a_tokens_input_estimate(&req, true), 9 + 7 + 2 + 50 + 320);
    char *big = repeat('x', 190); /* pretend schema text: ceil(190 / 1.9) = 100 */
    tool.input_schema = k2a_str(big, 190);
    assert_int_equal(k2a_tokens_input_estimate(&req, true), 9 + 7 + 2 + 100 + 320);
    memcpy(big, "$schema", 7);
    assert_int_equal(k2a_tokens_input_estimate(&req, true), 9 + 7 + 2 + 110 + 320);
    tool.input_schema = K2A_STR_NULL; /* no schema: nothing, not even the minimum */
    assert_int_equal(k2a_tokens_input_estimate(&req, true), 9 + 7 + 2 + 320);
    free(big);

    /* web_search is excluded when asked (and then the tool count is 0) */
    tool.name = K2A_STRLIT("web_search");
    assert_int_equal(k2a_tokens_input_estimate(&req, true), 9);
    assert_int_equal(k2a_tokens_input_estimate(&req, false), 9 + tn("web_search") + 2 + 320);

    /* 2..5 tools: base 100, per tool 120, min schema 50; > 5: base 180, per tool 60, min 30 */
    k2a_ir_tool_t tools[6];
    for (int i = 0; i < 6; ++i)
        tools[i] = (k2a_ir_tool_t){.name = K2A_STRLIT("Write"), .input_schema = K2A_STRLIT("{}")};
    req.tools = tools;
    req.ntools = 2;
    assert_int_equal(k2a_tokens_input_estimate(&req, true), 9 + 100 + 2 * (3 + 50 + 120));
    req.ntools = 6;
    assert_int_equal(k2a_tokens_input_estimate(&req, true), 9 + 180 + 6 * (3 + 30 + 60));
}

static void test_counter(void **state)
{
    k2a_tokens_counter_t c;
    k2a_tokens_counter_init(&c);
    assert_int_equal(k2a_tokens_counter_total(&c), 0);
    /* the worked example of §4.2: 9 text + (12 + 4) tool start + ceil(17 / 4) = 30 */
    k2a_ir_event_t ev = {.type = K2A_EV_BLOCK_START, .index = 0, .block = K2A_BLOCK_TEXT};
    k2a_tokens_counter_add(&c, &ev);
    ev = (k2a_ir_event_t){
        .type = K2A_EV_DELTA, .index = 0, .block = K2A_BLOCK_TEXT, .text = K2A_STRLIT("Let me check the weather.")};
    k2a_tokens_counter_add(&c, &ev);
    ev = (k2a_ir_event_t){.type = K2A_EV_BLOCK_STOP, .index = 0};
    k2a_tokens_counter_add(&c, &ev);
    assert_int_equal(k2a_tokens_counter_total(&c), 9);
    ev = (k2a_ir_event_t){
        .type = K2A_EV_BLOCK_START, .index = 1, .block = K2A_BLOCK_TOOL_USE, .tool_name = K2A_STRLIT("get_weather")};
    k2a_tokens_counter_add(&c, &ev);
    assert_int_equal(k2a_tokens_counter_total(&c), 25);
    ev = (k2a_ir_event_t){.type = K2A_EV_DELTA, .index = 1, .block = K2A_BLOCK_TOOL_USE, .text = K2A_STRLIT("{\"city\":")};
    k2a_tokens_counter_add(&c, &ev);
    ev.text = K2A_STRLIT("\"巴黎\"}");
    k2a_tokens_counter_add(&c, &ev);
    assert_int_equal(k2a_tokens_counter_total(&c), 25); /* converted only at the stop */
    ev = (k2a_ir_event_t){.type = K2A_EV_BLOCK_STOP, .index = 1};
    k2a_tokens_counter_add(&c, &ev);
    assert_int_equal(k2a_tokens_counter_total(&c), 30);

    /* any event but zero tokens -> 1 */
    k2a_tokens_counter_init(&c);
    ev = (k2a_ir_event_t){.type = K2A_EV_BLOCK_START, .index = 0, .block = K2A_BLOCK_TEXT};
    k2a_tokens_counter_add(&c, &ev);
    assert_int_equal(k2a_tokens_counter_total(&c), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_vectors),      cmocka_unit_test(test_text_ascii_runs_any_alignment),
        cmocka_unit_test(test_fixture_text_sums), cmocka_unit_test(test_tool_names),
        cmocka_unit_test(test_tool_use),          cmocka_unit_test(test_input_estimate),
        cmocka_unit_test(test_counter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
