/*
 * Unit tests for kiro-sim's pure parts: the request validator (k2a_sim_validate_request, which the gateway's fuzz
 * target also calls) and the directive plan + lazy frame producer. The validator gets a good body, a few bad ones,
 * a 100 000-deep nesting and 20 000 seeded random mutations of a good body (must never crash, always 200 or 400).
 * The 2026 mode gets the profileArn, catalog, tier and size rules against a caller, and its own random mutations.
 * The producer's frames are decoded with the EventStream decoder (CRCs checked) and the tool input pieces are
 * reassembled byte for byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "core/errors.h"
#include "eventstream/eventstream.h"
#include "sim/internal.h"
#include "sim/validate.h"
#include "core/rand.h"

static const char good[] =
    "{\"conversationState\":{\"chatTriggerType\":\"MANUAL\",\"conversationId\":\"c\",\"currentMessage\":{\"userInputMessage\":"
    "{\"content\":\"\",\"modelId\":\"auto\",\"origin\":\"AI_EDITOR\",\"images\":[],\"userInputMessageContext\":{\"tools\":[{"
    "\"toolSpecification\":{\"name\":\"Bash\",\"description\":\"run\",\"inputSchema\":{\"json\":{\"type\":\"object\"}}}}],"
    "\"toolResults\":[{\"toolUseId\":\"tooluse_1\",\"content\":[{\"text\":\"out [[sim:text frames=2 size=3]]\"}],\"status\":"
    "\"success\"}]}}},\"history\":[{\"userInputMessage\":{\"content\":\"hi\",\"modelId\":\"auto\",\"origin\":\"AI_EDITOR\"}},"
    "{\"assistantResponseMessage\":{\"content\":\"\",\"toolUses\":[{\"toolUseId\":\"tooluse_1\",\"name\":\"bash\",\"input\":{}}]}}"
    "]}}";

static void test_validator_good_and_text(void **state)
{
    k2a_sim_validation_t v;
    k2a_buf_t text = K2A_BUF_INIT(0);
    assert_int_equal(k2a_sim_validate_request(good, sizeof(good) - 1, &v), 200);
    assert_string_equal(v.rule, "");
    assert_int_equal(k2a_sim_validate_request_ex(good, sizeof(good) - 1, NULL, &v, &text), 200);
    assert_int_equal(text.len, strlen("\nout [[sim:text frames=2 size=3]]"));
    assert_memory_equal(text.base, "\nout [[sim:text frames=2 size=3]]", text.len);
    k2a_buf_dispose(&text);
}

static void expect_reject(const char *json, const char *rule, const char *body_part)
{
    k2a_sim_validation_t v;
    assert_int_equal(k2a_sim_validate_request(json, strlen(json), &v), 400);
    assert_string_equal(v.rule, rule);
    assert_non_null(strstr(v.body, body_part));
    assert_true(v.detail[0] != '\0');
}

static void test_validator_rejects(void **state)
{
    expect_reject("", "json_syntax", "Improperly formed request.");
    expect_reject("{\"conversationState\":{}}", "missing_field", "Improperly formed request.");
    expect_reject("{\"conversationState\":null}", "null_value", "\"reason\":null");
    char *s = strdup(good);
    memcpy(strstr(s, "\"auto\""), "\"xuto\"", 6);
    expect_reject(s, "model_unknown", "INVALID_MODEL_ID");
    free(s);
    s = strdup(good);
    memcpy(strstr(s, "\"tooluse_1\",\"content\""), "\"tooluse_2\"", 11);
    expect_reject(s, "tool_result_orphan", "Improperly formed request.");
    free(s);

    k2a_sim_limits_t lim;
    k2a_sim_validation_t v;
    k2a_sim_limits_init(&lim);
    lim.max_payload = 100;
    assert_int_equal(k2a_sim_validate_request_ex(good, sizeof(good) - 1, &lim, &v, NULL), 400);
    assert_string_equal(v.body, "{\"message\":\"Input is too long.\",\"reason\":\"CONTENT_LENGTH_EXCEEDS_THRESHOLD\"}");
}

static void test_validator_deep_nesting(void **state)
{
    size_t n = 100000;
    char *deep = malloc(2 * n);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    k2a_sim_validation_t v;
    assert_int_equal(k2a_sim_validate_request(deep, 2 * n, &v), 400);
    assert_string_equal(v.rule, "json_depth");
    free(deep);
}

static uint64_t rng = 42;
static uint64_t rnd(void)
{
    return k2a_splitmix64(&rng);
}

static void test_validator_random_mutations(void **state)
{
    static const char alphabet[] = "{}[]\",:0 nulltruefalse\\\x80\xc3";
    size_t len = sizeof(good) - 1, accepted = 0;
    char *buf = malloc(len + 16);
    for (int i = 0; i < 20000; ++i) {
        memcpy(buf, good, len);
        size_t n = len;
        for (int m = 1 + rnd() % 3; m > 0; --m) {
            size_t at = rnd() % n;
            switch (rnd() % 3) {
            case 0:
                buf[at] = alphabet[rnd() % (sizeof(alphabet) - 1)];
                break;
            case 1:
                memmove(buf + at, buf + at + 1, n - at - 1);
                --n;
                break;
            default:
                memmove(buf + at + 1, buf + at, n - at);
                buf[at] = alphabet[rnd() % (sizeof(alphabet) - 1)];
                ++n;
            }
        }
        k2a_sim_validation_t v;
        int st = k2a_sim_validate_request(buf, n, &v);
        assert_true(st == 200 || st == 400);
        accepted += st == 200;
    }
    assert_true(accepted < 20000); /* mutations do get rejected */
    free(buf);
}

/* The 2026 mode (kiro-protocol-2026 §13): the profileArn rules against the caller, the catalog and tiers, the byte and
 * token limits, additionalModelRequestFields as a known key; and random mutations of a 2026 body stay 200/400/403. */
#define ARN_SOCIAL_Q "\"arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK\""
static const char good26[] =
    "{\"conversationState\":{\"chatTriggerType\":\"MANUAL\",\"currentMessage\":{\"userInputMessage\":{"
    "\"content\":\"hi\",\"modelId\":\"claude-sonnet-4.6\",\"origin\":\"AI_EDITOR\"}}},\"profileArn\":" ARN_SOCIAL_Q
    ",\"additionalModelRequestFields\":{\"output_config\":{\"effort\":\"high\"}}}";

static int validate26(const char *json, const k2a_sim_caller_t *caller, k2a_sim_validation_t *v)
{
    k2a_sim_limits_t lim;
    k2a_sim_limits_init(&lim);
    lim.modern = true;
    lim.max_payload = K2A_SIM_DEFAULT_MAX_BODY_BYTES;
    return k2a_sim_validate_request_caller(json, strlen(json), &lim, caller, v, NULL);
}

static char *replace(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    assert_non_null(at);
    char *out = malloc(strlen(s) + strlen(to) + 1);
    memcpy(out, s, at - s);
    strcpy(out + (at - s), to);
    strcat(out, at + strlen(from));
    return out;
}

static void expect26(const char *json, const k2a_sim_caller_t *caller, int status, const char *rule, const char *body)
{
    k2a_sim_validation_t v;
    assert_int_equal(validate26(json, caller, &v), status);
    assert_string_equal(v.rule, rule);
    if (body != NULL)
        assert_string_equal(v.body, body);
}

static void test_validator_2026(void **state)
{
    const k2a_sim_caller_t social = {K2A_SIM_ARN_SOCIAL, false, false, K2A_SIM_REGION_US};
    const k2a_sim_caller_t social_eu_host = {K2A_SIM_ARN_SOCIAL, false, false, K2A_SIM_REGION_EU};
    const k2a_sim_caller_t free_tier = {K2A_SIM_ARN_SOCIAL, false, true, K2A_SIM_REGION_US};
    const k2a_sim_caller_t idc = {"arn:aws:codewhisperer:us-east-1:610548660232:profile/ABCDEFGHIJKL", true, false,
                                  K2A_SIM_REGION_US};
    const k2a_sim_caller_t api_key = {NULL, false, false, K2A_SIM_REGION_US};
    k2a_sim_validation_t v;
    expect26(good26, &social, 200, "", NULL);
    /* the 2025 mode rejects the 2026 root key and accepts the body otherwise */
    assert_int_equal(k2a_sim_validate_request(good26, sizeof(good26) - 1, &v), 400);
    assert_string_equal(v.rule, "unknown_field");
    char *s = replace(good26, ",\"profileArn\":" ARN_SOCIAL_Q, "");
    expect26(s, &social, 400, "profile_arn_required", "{\"message\":\"profileArn is required for this request.\"}");
    expect26(s, &api_key, 200, "", NULL);
    free(s);
    expect26(good26, &social_eu_host, 400, "profile_arn_region", "{\"message\":\"Improperly formed request.\",\"reason\":null}");
    expect26(good26, &idc, 403, "profile_arn_foreign",
             "{\"message\":\"User is not authorized to make this call.\",\"reason\":null}");
    s = replace(good26, "EHGA3GRVQMUK\"", "EHGA3GRVQMUK-not\"");
    expect26(s, &social, 403, "profile_arn_foreign", NULL);
    free(s);
    s = replace(good26, ARN_SOCIAL_Q, "\"" K2A_SIM_ARN_BUILDERID "\"");
    expect26(s, &idc, 403, "profile_arn_placeholder", "{\"message\":\"The bearer token included in the request is invalid.\"}");
    expect26(s, &social, 403, "profile_arn_foreign", NULL);
    free(s);
    s = replace(good26, "claude-sonnet-4.6", "CLAUDE_SONNET_4_5_20250929_V1_0");
    expect26(s, &social, 400, "model_unknown", NULL);
    free(s);
    s = replace(good26, "claude-sonnet-4.6", "claude-opus-4.7");
    expect26(s, &social, 200, "", NULL);
    expect26(s, &free_tier, 400, "model_tier",
             "{\"message\":\"Invalid model. Please select a different model to continue.\",\"reason\":\"INVALID_MODEL_ID\"}");
    free(s);
    /* additionalModelRequestFields: only on a model with the schema, with one of its efforts */
    s = replace(good26, "claude-sonnet-4.6", "claude-sonnet-4.5");
    expect26(s, &social, 400, "model_fields_unsupported",
             "{\"message\":\"additionalModelRequestFields is not supported for this model\"}");
    free(s);
    s = replace(good26, "\"high\"", "\"xhigh\"");
    expect26(s, &social, 400, "model_fields_invalid", "{\"message\":\"Invalid additionalModelRequestFields\"}");
    char *s2 = replace(s, "claude-sonnet-4.6", "claude-opus-4.7");
    expect26(s2, &social, 200, "", NULL);
    free(s2);
    free(s);
    s = replace(good26, "output_config", "reasoning");
    expect26(s, &social, 400, "model_fields_invalid", NULL);
    s2 = replace(s, "claude-sonnet-4.6", "gpt-5.6-sol");
    expect26(s2, &social, 200, "", NULL);
    free(s2);
    free(s);
    /* sizes: 615000 bytes is the byte limit; deepseek-3.2 (128000 tokens) rejects 520000 bytes by estimate */
    size_t big = 615001;
    char *pad = malloc(big + 1);
    memset(pad, 'x', big);
    pad[big] = '\0';
    char *body = replace(good26, "\"hi\"", "\"\"");
    size_t base = strlen(body);
    free(body);
    pad[big - base] = '\0';
    char *padq = malloc(big + 3);
    snprintf(padq, big + 3, "\"%s\"", pad);
    body = replace(good26, "\"hi\"", padq);
    assert_int_equal(strlen(body), big);
    expect26(body, &social, 400, "payload_too_large", "{\"message\":\"Improperly formed request.\",\"reason\":null}");
    free(body);
    pad[520000 - base] = '\0';
    snprintf(padq, big + 3, "\"%s\"", pad);
    body = replace(good26, "\"hi\"", padq);
    char *ds0 = replace(body, "claude-sonnet-4.6", "deepseek-3.2");
    char *ds = replace(ds0, ",\"additionalModelRequestFields\":{\"output_config\":{\"effort\":\"high\"}}", "");
    free(ds0);
    expect26(ds, &social, 400, "input_too_long",
             "{\"message\":\"Input is too long.\",\"reason\":\"CONTENT_LENGTH_EXCEEDS_THRESHOLD\"}");
    expect26(body, &social, 200, "", NULL);
    free(ds);
    free(body);
    free(padq);
    free(pad);
}

static void test_validator_2026_random_mutations(void **state)
{
    static const char alphabet[] = "{}[]\",:0 nulltruefalse\\\x80\xc3";
    const k2a_sim_caller_t idc = {"arn:aws:codewhisperer:us-east-1:610548660232:profile/ABCDEFGHIJKL", true, true,
                                  K2A_SIM_REGION_US};
    const k2a_sim_caller_t social = {K2A_SIM_ARN_SOCIAL, false, false, K2A_SIM_REGION_US};
    size_t len = sizeof(good26) - 1;
    char *buf = malloc(len + 16);
    k2a_sim_limits_t lim;
    k2a_sim_limits_init(&lim);
    lim.modern = true;
    for (int i = 0; i < 20000; ++i) {
        memcpy(buf, good26, len);
        size_t n = len;
        for (int m = 1 + rnd() % 3; m > 0; --m) {
            size_t at = rnd() % n;
            if (rnd() % 2 == 0) {
                buf[at] = alphabet[rnd() % (sizeof(alphabet) - 1)];
            } else {
                memmove(buf + at, buf + at + 1, n - at - 1);
                --n;
            }
        }
        k2a_sim_validation_t v;
        int st = k2a_sim_validate_request_caller(buf, n, &lim, i % 2 ? &idc : &social, &v, NULL);
        assert_true(st == 200 || st == 400 || st == 403);
    }
    free(buf);
}

typedef struct st_collect_t {
    int n;
    char types[32][32];
    k2a_buf_t input;
} collect_t;

static int on_frame(void *ctx, const k2a_es_frame_t *f)
{
    collect_t *c = ctx;
    size_t len;
    const char *t = k2a_es_frame_header_str(f, ":event-type", &len);
    assert_non_null(t);
    assert_true(c->n < 32);
    memcpy(c->types[c->n], t, len);
    c->types[c->n][len] = '\0';
    ++c->n;
    const char *in = memmem(f->payload, f->payload_len, "\"input\":\"", 9);
    if (in != NULL) {
        in += 9;
        const char *end = f->payload + f->payload_len - 2; /* payload ends with `"}` */
        for (; in < end; ++in) {                           /* undo the two escapes the test input uses */
            if (*in == '\\')
                ++in;
            k2a_buf_append(&c->input, in, 1);
        }
    }
    return 0;
}

static void test_plan_tool_pieces(void **state)
{
    static const char text[] = "go [[sim:tool name=W input={\"p\":\"\xc3\xa9\\\"x\"} pieces=5]] now";
    static const char input[] = "{\"p\":\"\xc3\xa9\\\"x\"}";
    k2a_sim_plan_t plan;
    k2a_sim_cursor_t cur;
    char err[128];
    assert_int_equal(k2a_sim_plan_parse(&plan, text, sizeof(text) - 1, err, sizeof(err)), 0);
    assert_int_equal(plan.nsteps, 1);
    assert_int_equal(plan.steps[0].pieces, 5);
    /* the first cut lies inside the two-byte é */
    assert_int_equal(
        plan.steps[0].cuts[0] == 7 || plan.steps[0].cuts[1] == 7 || plan.steps[0].cuts[2] == 7 || plan.steps[0].cuts[3] == 7, 1);
    k2a_buf_t out = K2A_BUF_INIT(0);
    k2a_sim_cursor_init(&cur, &plan);
    bool tail;
    while (k2a_sim_next_frame(&plan, &cur, &out, &tail) == 1)
        ;
    collect_t c = {0};
    k2a_buf_init(&c.input, 0);
    k2a_es_decoder_t d;
    k2a_es_decoder_init(&d, 0);
    assert_int_equal(k2a_es_decoder_feed(&d, out.base, out.len, on_frame, &c), 0);
    assert_false(k2a_es_decoder_has_partial(&d));
    assert_int_equal(c.n, 10);
    assert_string_equal(c.types[0], "toolUseEvent");
    assert_string_equal(c.types[6], "toolUseEvent");
    /* the end as Kiro sends it: metadata, context usage, metering last */
    assert_string_equal(c.types[7], "metadataEvent");
    assert_string_equal(c.types[8], "contextUsageEvent");
    assert_string_equal(c.types[9], "meteringEvent");
    assert_int_equal(c.input.len, sizeof(input) - 1);
    assert_memory_equal(c.input.base, input, sizeof(input) - 1);
    k2a_es_decoder_dispose(&d);
    k2a_buf_dispose(&c.input);
    k2a_buf_dispose(&out);
    k2a_sim_plan_dispose(&plan);
}

/* The frames of a reply as "type payload" lines. */
static int on_frame_line(void *ctx, const k2a_es_frame_t *f)
{
    k2a_buf_t *b = ctx;
    size_t len;
    const char *t = k2a_es_frame_header_str(f, ":event-type", &len);
    if (t == NULL)
        t = k2a_es_frame_header_str(f, ":exception-type", &len);
    assert_non_null(t);
    k2a_buf_append(b, t, len);
    k2a_buf_append(b, " ", 1);
    k2a_buf_append(b, f->payload, f->payload_len);
    k2a_buf_append(b, "\n", 1);
    return 0;
}

static char *reply_lines(const char *text)
{
    k2a_sim_plan_t plan;
    k2a_sim_cursor_t cur;
    char err[160];
    if (k2a_sim_plan_parse(&plan, text, strlen(text), err, sizeof(err)) != 0)
        fail_msg("%s: %s", text, err);
    plan.context_pct = 1.5;
    k2a_buf_t out = K2A_BUF_INIT(0), lines = K2A_BUF_INIT(0);
    k2a_sim_cursor_init(&cur, &plan);
    while (k2a_sim_next_frame(&plan, &cur, &out, NULL) == 1)
        ;
    k2a_es_decoder_t d;
    k2a_es_decoder_init(&d, 0);
    assert_int_equal(k2a_es_decoder_feed(&d, out.base, out.len, on_frame_line, &lines), 0);
    k2a_es_decoder_dispose(&d);
    k2a_buf_append(&lines, "", 1);
    k2a_buf_dispose(&out);
    k2a_sim_plan_dispose(&plan);
    return lines.base;
}

static void expect_reply(const char *text, const char *want)
{
    char *got = reply_lines(text);
    if (strcmp(got, want) != 0)
        fail_msg("%s\n got:\n%s\nwant:\n%s", text, got, want);
    free(got);
}

static void expect_ends(const char *text, const char *want)
{
    char *got = reply_lines(text);
    size_t g = strlen(got), w = strlen(want);
    if (g < w || strcmp(got + g - w, want) != 0)
        fail_msg("%s\n got:\n%s\nwant at the end:\n%s", text, got, want);
    free(got);
}

#define END(reason)                                                                                                                \
    "metadataEvent {\"stopReason\":\"" reason "\"}\ncontextUsageEvent {\"contextUsagePercentage\":1.5}\n"                          \
    "meteringEvent {\"unit\":\"credit\",\"unitPlural\":\"credits\",\"usage\":0.0123}\n"

static void test_plan_2026_end_and_events(void **state)
{
    expect_ends("hi", END("END_TURN"));
    expect_ends(
        "hi [[sim:stop reason=MAX_TOKENS]] [[sim:tokenusage in=10 out=20 cacheread=30 cachewrite=40]]",
        "metadataEvent {\"stopReason\":\"MAX_TOKENS\",\"tokenUsage\":{\"uncachedInputTokens\":10,\"cacheReadInputTokens\":30,"
        "\"cacheWriteInputTokens\":40,\"outputTokens\":20,\"totalTokens\":100}}\n"
        "contextUsageEvent {\"contextUsagePercentage\":1.5}\n"
        "meteringEvent {\"unit\":\"credit\",\"unitPlural\":\"credits\",\"usage\":0.0123}\n");
    expect_ends("[[sim:tool name=W input={} pieces=1]]", "\"stop\":true}\n" END("TOOL_USE"));
    /* no content at all; after two text frames */
    expect_reply("x [[sim:filtered]]", END("CONTENT_FILTERED"));
    char *got = reply_lines("[[sim:text frames=5 size=2]] [[sim:filtered after=2]]");
    assert_non_null(strstr(
        got, "assistantResponseEvent {\"content\":\"lo\"}\nassistantResponseEvent {\"content\":\"re\"}\n" END("CONTENT_FILTERED")));
    free(got);
    /* reasoning where placed, text then signature; redacted after text */
    expect_reply(
        "[[sim:reasoning text=\"ab\" signature=\"sg\"]] [[sim:text frames=1 size=2]] [[sim:reasoning redacted=\"Zz\"]]",
        "reasoningContentEvent {\"text\":\"ab\"}\nreasoningContentEvent {\"signature\":\"sg\"}\n"
        "assistantResponseEvent {\"content\":\"lo\"}\nreasoningContentEvent {\"redactedContent\":\"Zz\"}\n" END("END_TURN"));
    /* a cut tool call: pieces without the last, no stop, nothing after */
    got = reply_lines("[[sim:cuttool name=W input={\"a\":1} pieces=2]] [[sim:text frames=1]]");
    assert_null(strstr(got, "\"stop\""));
    assert_null(strstr(got, "metadataEvent"));
    assert_null(strstr(got, "meteringEvent"));
    assert_null(strstr(got, "assistantResponseEvent"));
    assert_non_null(strstr(got, "\"input\":\""));
    free(got);
}

static void test_plan_errors_and_echo(void **state)
{
    k2a_sim_plan_t plan;
    char err[128];
    assert_int_equal(k2a_sim_plan_parse(&plan, "[[sim:nope]]", 12, err, sizeof(err)), K2A_EINVAL);
    assert_non_null(strstr(err, "unknown directive"));
    assert_int_equal(k2a_sim_plan_parse(&plan, "[[sim:text frames=", 18, err, sizeof(err)), K2A_EINVAL);
    assert_int_equal(k2a_sim_plan_parse(&plan, " hi [[sim:drip ms=5]] ", 22, err, sizeof(err)), 0);
    assert_int_equal(plan.nsteps, 1);
    assert_int_equal(plan.drip_ms, 5);
    assert_string_equal(plan.steps[0].text, "echo: hi");
    k2a_sim_plan_dispose(&plan);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validator_good_and_text),  cmocka_unit_test(test_validator_rejects),
        cmocka_unit_test(test_validator_deep_nesting),   cmocka_unit_test(test_validator_random_mutations),
        cmocka_unit_test(test_validator_2026),           cmocka_unit_test(test_validator_2026_random_mutations),
        cmocka_unit_test(test_plan_tool_pieces),         cmocka_unit_test(test_plan_errors_and_echo),
        cmocka_unit_test(test_plan_2026_end_and_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
