/*
 * Thinking and tools as the Kiro body carries them (kiro-protocol-2026.md §6, §7), through the whole builder: no
 * thinking tags below max_tokens 512, the native effort field (additionalModelRequestFields.output_config.effort) for
 * the models k2a_model_accepts_effort lists and tags otherwise, the refused-model memory, redacted thinking of the
 * history as reasoningContent (native models only), thinking text of the history kept when thinking is off, enabled
 * thinking with max_tokens 0 refused, and rewritten tool names that stay distinct and map back.
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
#include "core/errors.h"
#include "convert/anthropic_req.h"
#include "convert/kiro_req.h"
#include "convert/model_effort.h"
#include "sim/validate.h"

#define MAP "{\"claude-opus-4-8\":\"claude-opus-4.8\",\"claude-opus-4-6\":\"claude-opus-4.6\",\"claude-opus-5\":\"claude-opus-5\"}"

typedef struct st_fx_t {
    k2a_arena_t arena;
    k2a_model_map_t *map;
    k2a_ir_request_t req;
    k2a_kiro_build_params_t p;
    k2a_kiro_build_result_t res;
    k2a_buf_t out;
    k2a_convert_error_t err;
    yajl_val body;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    k2a_arena_init(&f->arena, 0);
    k2a_convert_error_t err;
    assert_int_equal(k2a_model_map_create(MAP, strlen(MAP), &f->map, &err), 0);
    k2a_buf_init(&f->out, 0);
    k2a_model_effort_reset();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    yajl_tree_free(f->body);
    k2a_buf_dispose(&f->out);
    k2a_model_map_destroy(f->map);
    k2a_arena_dispose(&f->arena);
    free(f);
    k2a_model_effort_reset();
    return 0;
}

/* Decodes an Anthropic body and builds it; returns the build's result code. f->body holds the parsed Kiro body. */
static int build(fx_t *f, const char *json, bool native)
{
    yajl_tree_free(f->body);
    f->body = NULL;
    int r = k2a_anthropic_decode(json, strlen(json), NULL, &f->arena, &f->req, &f->err);
    if (r != 0)
        return r;
    k2a_kiro_build_params_init(&f->p, f->map);
    f->p.native_fields = native;
    f->p.now = 1767225600;
    if ((r = k2a_kiro_build_request(&f->req, &f->p, &f->arena, &f->out, &f->res, &f->err)) != 0)
        return r;
    char *copy = strndup(f->out.base, f->out.len);
    f->body = yajl_tree_parse(copy, NULL, 0);
    free(copy);
    assert_non_null(f->body);
    return 0;
}

static yajl_val get(yajl_val v, const char *const *path)
{
    return yajl_tree_get(v, (const char **)path, yajl_t_any);
}

static const char *system_text(fx_t *f)
{
    const char *hp[] = {"conversationState", "history", NULL};
    yajl_val h = get(f->body, hp);
    if (h == NULL || !YAJL_IS_ARRAY(h) || h->u.array.len == 0)
        return "";
    const char *cp[] = {"userInputMessage", "content", NULL};
    yajl_val c = get(h->u.array.values[0], cp);
    return c != NULL && YAJL_IS_STRING(c) ? c->u.string : "";
}

static const char *native_effort(fx_t *f)
{
    const char *ep[] = {"additionalModelRequestFields", "output_config", "effort", NULL};
    yajl_val e = get(f->body, ep);
    return e != NULL && YAJL_IS_STRING(e) ? e->u.string : NULL;
}

#define MSG ",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
#define ADAPTIVE(model, effort)                                                                                                    \
    "{\"model\":\"" model "\",\"max_tokens\":64000,\"system\":\"S\",\"thinking\":{\"type\":\"adaptive\"},\"output_config\":{"      \
    "\"effort\":\"" effort "\"}" MSG

static void test_accepts_effort(void **state)
{
    (void)state;
    assert_true(k2a_model_accepts_effort(K2A_STRLIT("claude-opus-4.6"), K2A_STRLIT("high")));
    assert_true(k2a_model_accepts_effort(K2A_STRLIT("claude-opus-4.7"), K2A_STRLIT("max")));
    assert_true(k2a_model_accepts_effort(K2A_STRLIT("claude-opus-4.8"), K2A_STRLIT("xhigh")));
    assert_true(k2a_model_accepts_effort(K2A_STRLIT("claude-sonnet-4.6"), K2A_STR_NULL));
    assert_true(k2a_model_accepts_effort(K2A_STRLIT("claude-opus-5"), K2A_STRLIT("low")));
    assert_true(k2a_model_accepts_effort(K2A_STRLIT("claude-sonnet-5.1"), K2A_STRLIT("medium")));
    /* xhigh is not for the 4.6 models; unknown efforts never */
    assert_false(k2a_model_accepts_effort(K2A_STRLIT("claude-opus-4.6"), K2A_STRLIT("xhigh")));
    assert_false(k2a_model_accepts_effort(K2A_STRLIT("claude-sonnet-4.6"), K2A_STRLIT("xhigh")));
    assert_false(k2a_model_accepts_effort(K2A_STRLIT("claude-opus-5"), K2A_STRLIT("none")));
    /* not listed */
    assert_false(k2a_model_accepts_effort(K2A_STRLIT("claude-sonnet-4.5"), K2A_STRLIT("high")));
    assert_false(k2a_model_accepts_effort(K2A_STRLIT("claude-haiku-4.5"), K2A_STR_NULL));
    assert_false(k2a_model_accepts_effort(K2A_STRLIT("CLAUDE_SONNET_4_5_20250929_V1_0"), K2A_STR_NULL));
    assert_false(k2a_model_accepts_effort(K2A_STRLIT("claude-sonnet-4-5"), K2A_STR_NULL));
    assert_false(k2a_model_accepts_effort(K2A_STRLIT("auto"), K2A_STR_NULL));
    assert_false(k2a_model_accepts_effort(K2A_STRLIT("claude-opus-50x"), K2A_STR_NULL));
    /* remembered refusals */
    k2a_model_effort_unsupported(K2A_STRLIT("claude-opus-4.7"));
    assert_false(k2a_model_accepts_effort(K2A_STRLIT("claude-opus-4.7"), K2A_STRLIT("max")));
    assert_true(k2a_model_accepts_effort(K2A_STRLIT("claude-opus-4.8"), K2A_STRLIT("max")));
    k2a_model_effort_reset();
    assert_true(k2a_model_accepts_effort(K2A_STRLIT("claude-opus-4.7"), K2A_STRLIT("max")));
}

static void test_native_effort_in_the_body(void **state)
{
    fx_t *f = *state;
    /* a listed model: the field, no tags, and the field right after conversationState (before profileArn) */
    assert_int_equal(build(f, ADAPTIVE("claude-opus-4-8", "max"), true), 0);
    assert_string_equal(native_effort(f), "max");
    assert_string_equal(system_text(f), "S");
    assert_true(f->res.native_effort);
    assert_true(f->res.thinking);
    assert_non_null(strstr(k2a_buf_cstr(&f->out), "},\"additionalModelRequestFields\":{\"output_config\":{\"effort\":\"max\"}}}"));
    /* native fields off (KIRO_NATIVE_EFFORT=false, or the retry after a refusal): tags */
    assert_int_equal(build(f, ADAPTIVE("claude-opus-4-8", "max"), false), 0);
    assert_null(native_effort(f));
    assert_false(f->res.native_effort);
    assert_string_equal(system_text(f), "<thinking_mode>adaptive</thinking_mode><thinking_effort>max</thinking_effort>\nS");
    /* xhigh on 4.6: tags */
    assert_int_equal(build(f, ADAPTIVE("claude-opus-4-6", "xhigh"), true), 0);
    assert_null(native_effort(f));
    assert_non_null(strstr(system_text(f), "<thinking_effort>xhigh</thinking_effort>"));
    /* the default map's models are not listed: tags */
    assert_int_equal(build(f, ADAPTIVE("claude-sonnet-4-5", "low"), true), 0);
    assert_null(native_effort(f));
    k2a_sim_validation_t val;
    assert_int_equal(k2a_sim_validate_request(f->out.base, f->out.len, &val), 200);
    /* a model Kiro refused it for is remembered */
    k2a_model_effort_unsupported(K2A_STRLIT("claude-opus-4.8"));
    assert_int_equal(build(f, ADAPTIVE("claude-opus-4-8", "max"), true), 0);
    assert_null(native_effort(f));
    assert_non_null(strstr(system_text(f), "<thinking_mode>adaptive</thinking_mode>"));
    /* enabled thinking on a listed model keeps its budget tags */
    assert_int_equal(build(f,
                           "{\"model\":\"claude-opus-5\",\"max_tokens\":8000,\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":"
                           "4000}" MSG,
                           true),
                     0);
    assert_null(native_effort(f));
    assert_string_equal(system_text(f), "<thinking_mode>enabled</thinking_mode><max_thinking_length>4000</max_thinking_length>");
    /* small max_tokens: neither */
    assert_int_equal(build(f,
                           "{\"model\":\"claude-opus-5\",\"max_tokens\":64,\"thinking\":{\"type\":\"adaptive\"},\"output_config\":{"
                           "\"effort\":\"high\"}" MSG,
                           true),
                     0);
    assert_null(native_effort(f));
    assert_false(f->res.thinking);
}

static void test_small_max_tokens(void **state)
{
    fx_t *f = *state;
    assert_int_equal(build(f,
                           "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":64,\"system\":\"S\",\"thinking\":{\"type\":\"enabled\","
                           "\"budget_tokens\":1024}" MSG,
                           true),
                     0);
    assert_null(strstr(k2a_buf_cstr(&f->out), "<thinking_mode>"));
    assert_false(f->res.thinking);
    assert_int_equal(build(f, "{\"model\":\"claude-sonnet-4-5-thinking\",\"max_tokens\":511" MSG, true), 0);
    assert_null(strstr(k2a_buf_cstr(&f->out), "<thinking_mode>"));
    assert_int_equal(build(f, "{\"model\":\"claude-sonnet-4-5-thinking\",\"max_tokens\":512" MSG, true), 0);
    assert_non_null(strstr(k2a_buf_cstr(&f->out), "<max_thinking_length>384</max_thinking_length>"));
    assert_true(f->res.thinking);
}

static void test_enabled_needs_max_tokens(void **state)
{
    fx_t *f = *state;
    assert_int_equal(
        build(f, "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":0,\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":1024}" MSG,
              true),
        K2A_EBAD_PARAM);
    assert_non_null(strstr(f->err.message, "max_tokens"));
    /* max_tokens 0 without thinking, or thinking without max_tokens: accepted */
    assert_int_equal(build(f, "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":0" MSG, true), 0);
    assert_int_equal(build(f, "{\"model\":\"claude-sonnet-4-5\",\"thinking\":{\"type\":\"enabled\"}" MSG, true), 0);
    assert_int_equal(build(f, "{\"model\":\"claude-sonnet-4-5\",\"thinking\":{\"type\":\"on\"}" MSG, true), K2A_EBAD_PARAM);
}

#define HISTORY(model)                                                                                                             \
    "{\"model\":\"" model "\",\"max_tokens\":100,\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\","     \
    "\"content\":[{\"type\":\"thinking\",\"thinking\":\"T\",\"signature\":\"sig\"},{\"type\":\"redacted_thinking\",\"data\":"      \
    "\"ENC\"},{\"type\":\"text\",\"text\":\"A\"}]},{\"role\":\"user\",\"content\":\"more\"}]}"

static void test_history_thinking(void **state)
{
    fx_t *f = *state;
    /* thinking off (max_tokens 100), the history's thinking text is still sent; redacted data only to native models */
    assert_int_equal(build(f, HISTORY("claude-sonnet-4-5"), true), 0);
    const char *hp[] = {"conversationState", "history", NULL};
    yajl_val h = get(f->body, hp);
    assert_non_null(h);
    yajl_val a = h->u.array.values[1];
    const char *cp[] = {"assistantResponseMessage", "content", NULL},
               *rp[] = {"assistantResponseMessage", "reasoningContent", NULL};
    assert_string_equal(get(a, cp)->u.string, "<thinking>T</thinking>\n\nA");
    assert_null(get(a, rp));
    k2a_sim_validation_t val;
    assert_int_equal(k2a_sim_validate_request(f->out.base, f->out.len, &val), 200);
    assert_int_equal(build(f, HISTORY("claude-opus-5"), true), 0);
    h = get(f->body, hp);
    a = h->u.array.values[1];
    const char *rdp[] = {"assistantResponseMessage", "reasoningContent", "redactedContent", NULL};
    assert_string_equal(get(a, rdp)->u.string, "ENC");
    assert_int_equal(build(f, HISTORY("claude-opus-5"), false), 0);
    assert_null(strstr(k2a_buf_cstr(&f->out), "reasoningContent"));
}

static void test_tool_names_distinct_and_mapped_back(void **state)
{
    fx_t *f = *state;
    assert_int_equal(build(f,
                           "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":100,\"tools\":[{\"name\":\"a.b\",\"input_schema\":{}},{"
                           "\"name\":\"a_b\",\"description\":\"x\"},{\"name\":\"\xe5\x90\x8d\",\"description\":\"y\"}]" MSG,
                           true),
                     0);
    const char *tp[] = {"conversationState", "currentMessage", "userInputMessage", "userInputMessageContext", "tools", NULL};
    yajl_val tools = get(f->body, tp);
    assert_int_equal(tools->u.array.len, 3);
    const char *np[] = {"toolSpecification", "name", NULL}, *dp[] = {"toolSpecification", "description", NULL};
    const char *n0 = get(tools->u.array.values[0], np)->u.string, *n1 = get(tools->u.array.values[1], np)->u.string,
               *n2 = get(tools->u.array.values[2], np)->u.string;
    assert_true(strncmp(n0, "a_b_", 4) == 0 && strlen(n0) == 4 + 12);
    assert_string_equal(n1, "a_b");
    assert_true(strncmp(n2, "__", 2) == 0 && strlen(n2) == 14);
    assert_string_equal(get(tools->u.array.values[0], dp)->u.string, "a.b"); /* blank description: the client's name */
    assert_true(k2a_str_eq_lit(k2a_tool_names_to_client(&f->res.tool_names, k2a_cstr(n0)), "a.b"));
    assert_true(k2a_str_eq_lit(k2a_tool_names_to_client(&f->res.tool_names, k2a_cstr(n2)), "\xe5\x90\x8d"));
    assert_true(k2a_str_eq_lit(k2a_tool_names_to_client(&f->res.tool_names, k2a_cstr(n1)), "a_b"));
    k2a_sim_validation_t val;
    assert_int_equal(k2a_sim_validate_request(f->out.base, f->out.len, &val), 200);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_accepts_effort),           T(test_native_effort_in_the_body), T(test_small_max_tokens),
        T(test_enabled_needs_max_tokens), T(test_history_thinking),          T(test_tool_names_distinct_and_mapped_back),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
