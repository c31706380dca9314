/*
 * One conversation, two dialects, one Kiro request: each case is the same conversation written as an Anthropic
 * Messages body and as an OpenAI Chat Completions body; both go through their decoder and the same
 * k2a_kiro_build_request with the same deterministic inputs, and the two Kiro bodies must be byte-identical. This is
 * what "the IR is the heart" promises (DESIGN.md §3): the OpenAI decoder produces the IR the Anthropic one would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "convert/anthropic_req.h"
#include "convert/kiro_req.h"
#include "convert/model_map.h"
#include "convert/openai_req.h"
#include "core/errors.h"
#include "resp_support.h"

/* Decodes body with the dialect's decoder and builds the Kiro body into out (malloc'd, NUL-terminated). */
static char *build(bool openai, const char *body, bool *thinking)
{
    k2a_arena_t arena;
    k2a_ir_request_t req;
    k2a_convert_error_t err;
    k2a_model_map_t *map = NULL;
    k2a_buf_t out;
    k2a_arena_init(&arena, 0);
    k2a_buf_init(&out, 0);
    assert_int_equal(k2a_model_map_create(NULL, 0, &map, &err), 0);
    int r = openai ? k2a_openai_decode(body, strlen(body), NULL, &arena, &req, &err)
                   : k2a_anthropic_decode(body, strlen(body), NULL, &arena, &req, &err);
    if (r != 0)
        fail_msg("%s decode: %s %s", openai ? "openai" : "anthropic", k2a_errname(r), err.message);
    k2a_kiro_build_params_t p;
    k2a_kiro_build_params_init(&p, map);
    uint64_t seed = 1;
    p.random = rs_random;
    p.random_ctx = &seed;
    p.now = 1767225600;
    p.client_ip = K2A_STRLIT("127.0.0.1");
    p.user_agent = K2A_STRLIT("equiv-test");
    k2a_kiro_build_result_t res;
    r = k2a_kiro_build_request(&req, &p, &arena, &out, &res, &err);
    if (r != 0)
        fail_msg("%s build: %s %s", openai ? "openai" : "anthropic", k2a_errname(r), err.message);
    *thinking = res.thinking;
    char *s = strndup(out.base, out.len);
    k2a_buf_dispose(&out);
    k2a_arena_dispose(&arena);
    k2a_model_map_destroy(map);
    return s;
}

/* Returns whether the build turned thinking on (the same for both, checked). */
static bool expect_same(const char *anthropic, const char *openai)
{
    bool ta, to;
    char *a = build(false, anthropic, &ta), *o = build(true, openai, &to);
    if (strcmp(a, o) != 0)
        fail_msg("Kiro bodies differ\nanthropic: %s\n   openai: %s", a, o);
    assert_int_equal(ta, to);
    free(a);
    free(o);
    return ta;
}

#define TOOLS_A                                                                                                                    \
    "\"tools\":[{\"name\":\"get_weather\",\"description\":\"Get weather\",\"input_schema\":{\"type\":\"object\",\"properties\":{"  \
    "\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}},{\"name\":\"get_time\",\"description\":\"Get "                      \
    "time\",\"input_schema\":"                                                                                                     \
    "{\"type\":\"object\",\"properties\":{\"tz\":{\"type\":\"string\"}},\"required\":[\"tz\"]}}]"
#define TOOLS_O                                                                                                                    \
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Get weather\",\"parameters\":{"    \
    "\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}},{\"type\":\"function\","       \
    "\"function\":{\"name\":\"get_time\",\"description\":\"Get time\",\"strict\":false,\"parameters\":{\"type\":\"object\","       \
    "\"properties\":{\"tz\":{\"type\":\"string\"}},\"required\":[\"tz\"]}}}]"

static void test_text_with_system(void **state)
{
    assert_false(expect_same(
        "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":1024,\"system\":[{\"type\":\"text\",\"text\":\"You are helpful.\"}],"
        "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\"Hello!\"},{\"role\":"
        "\"user\",\"content\":\"How are you?\"}]}",
        "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":1024,\"messages\":[{\"role\":\"system\",\"content\":\"You are "
        "helpful.\"},{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\"Hello!\"},{\"role\":"
        "\"user\",\"content\":\"How are you?\"}]}"));
}

static void test_parallel_tool_calls(void **state)
{
    /* two parallel calls, both answered, then a follow-up question in the same user turn; then a second round */
    expect_same(
        "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":1024,\"stream\":true," TOOLS_A ",\"messages\":["
        "{\"role\":\"user\",\"content\":\"Weather in Paris and time in Tokyo?\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"Checking both.\"},{\"type\":\"tool_use\",\"id\":"
        "\"call_1\",\"name\":\"get_weather\",\"input\":{\"city\":\"Paris\"}},{\"type\":\"tool_use\",\"id\":\"call_2\","
        "\"name\":\"get_time\",\"input\":{\"tz\":\"Asia/Tokyo\"}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"call_1\",\"content\":\"18C sunny\"},"
        "{\"type\":\"tool_result\",\"tool_use_id\":\"call_2\",\"content\":[{\"type\":\"text\",\"text\":\"21:04\"}]},"
        "{\"type\":\"text\",\"text\":\"And in Oslo?\"}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"call_3\",\"name\":\"get_weather\",\"input\":"
        "{\"city\":\"Oslo\"}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"call_3\",\"content\":\"-3C snow\"}]}]}",
        "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":1024,\"stream\":true," TOOLS_O ",\"messages\":["
        "{\"role\":\"user\",\"content\":\"Weather in Paris and time in Tokyo?\"},"
        "{\"role\":\"assistant\",\"content\":\"Checking both.\",\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\","
        "\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\": \\\"Paris\\\"}\"}},{\"id\":\"call_2\",\"type\":"
        "\"function\",\"function\":{\"name\":\"get_time\",\"arguments\":\"{\\\"tz\\\":\\\"Asia/Tokyo\\\"}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"18C sunny\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_2\",\"content\":[{\"type\":\"text\",\"text\":\"21:04\"}]},"
        "{\"role\":\"user\",\"content\":\"And in Oslo?\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_3\",\"type\":\"function\",\"function\":{"
        "\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Oslo\\\"}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_3\",\"content\":\"-3C snow\"}]}");
}

static void test_image(void **state)
{
#define PNG "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    expect_same(
        "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":100,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
        "\"text\":\"What is this?\"},{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":"
        "\"" PNG "\"}}]}]}",
        "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":100,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
        "\"text\":\"What is this?\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64," PNG "\"}}]}]}");
}

static void test_thinking(void **state)
{
    /* thinking enabled with the budget reasoning_effort "low" maps to, and a thinking block in history */
    bool thinking = expect_same(
        "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":8192,\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":4096},"
        "\"messages\":[{\"role\":\"user\",\"content\":\"2+2?\"},{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\","
        "\"thinking\":\"Simple.\",\"signature\":\"sig\"},{\"type\":\"text\",\"text\":\"4\"}]},{\"role\":\"user\",\"content\":"
        "\"Times 3?\"}]}",
        "{\"model\":\"claude-sonnet-4-5\",\"max_completion_tokens\":8192,\"reasoning_effort\":\"low\",\"messages\":[{\"role\":"
        "\"user\",\"content\":\"2+2?\"},{\"role\":\"assistant\",\"reasoning_content\":\"Simple.\",\"content\":\"4\"},{\"role\":"
        "\"user\",\"content\":\"Times 3?\"}]}");
    assert_true(thinking);
}

static void test_tool_choice_and_params(void **state)
{
    /* sampling parameters and tool_choice do not reach Kiro in either dialect */
    expect_same("{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":50,\"temperature\":0.3,\"top_p\":0.9,\"stop_sequences\":[\"END\"],"
                "\"tool_choice\":{\"type\":\"tool\",\"name\":\"get_time\"}," TOOLS_A
                ",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Time?\"},{\"type\":\"text\",\"text\":"
                "\"In Tokyo.\"}]}]}",
                "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":50,\"temperature\":0.3,\"top_p\":0.9,\"stop\":\"END\","
                "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"get_time\"}}," TOOLS_O
                ",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Time?\"},{\"type\":\"text\",\"text\":"
                "\"In Tokyo.\"}]}]}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_with_system), cmocka_unit_test(test_parallel_tool_calls),    cmocka_unit_test(test_image),
        cmocka_unit_test(test_thinking),         cmocka_unit_test(test_tool_choice_and_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
