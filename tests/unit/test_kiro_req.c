/*
 * Kiro request builder and encoder: conversationId / agentContinuationId rules (§2.8), field omission,
 * verbatim JSON and base64, history byte spans, the payload budget (drops just enough, errors when the
 * irreducible part is too big), output-buffer limits and the build result.
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

typedef struct st_fx_t {
    k2a_arena_t arena;
    k2a_model_map_t *map;
    k2a_ir_request_t req;
    k2a_kiro_build_params_t p;
    k2a_kiro_build_result_t res;
    k2a_buf_t out;
    k2a_convert_error_t err;
    uint64_t seed;
} fx_t;

static void on_random(void *ctx, void *buf, size_t len)
{
    uint64_t *s = ctx;
    unsigned char *p = buf;
    for (size_t i = 0; i < len; ++i) {
        *s = *s * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (unsigned char)(*s >> 56);
    }
}

static int setup(void **state)
{
    setenv("TZ", "UTC", 1);
    tzset();
    fx_t *f = calloc(1, sizeof(*f));
    k2a_arena_init(&f->arena, 0);
    k2a_convert_error_t err;
    assert_int_equal(k2a_model_map_create(NULL, 0, &f->map, &err), 0);
    k2a_kiro_build_params_init(&f->p, f->map);
    f->p.random = on_random;
    f->p.random_ctx = &f->seed;
    f->p.now = 1767225600;
    f->p.client_ip = K2A_STRLIT("127.0.0.1");
    f->p.user_agent = K2A_STRLIT("golden-test");
    k2a_buf_init(&f->out, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    k2a_buf_dispose(&f->out);
    k2a_model_map_destroy(f->map);
    k2a_arena_dispose(&f->arena);
    free(f);
    return 0;
}

static void load(fx_t *f, const char *json)
{
    char *copy = k2a_arena_strndup(&f->arena, json, strlen(json));
    if (k2a_anthropic_decode(copy, strlen(copy), NULL, &f->arena, &f->req, &f->err) != 0) {
        print_error("decode: %s\n", f->err.message);
        fail();
    }
}

static int build(fx_t *f)
{
    return k2a_kiro_build_request(&f->req, &f->p, &f->arena, &f->out, &f->res, &f->err);
}

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

static yajl_val get(yajl_val v, const char *a, const char *b, const char *c, const char *d)
{
    const char *path[] = {a, b, c, d, NULL};
    return yajl_tree_get(v, path, yajl_t_any);
}

static void assert_str(k2a_str_t s, const char *lit)
{
    if (!k2a_str_eq_lit(s, lit)) {
        print_error("expected \"%s\", got \"%.*s\"\n", lit, (int)s.len, s.base != NULL ? s.base : "(null)");
        fail();
    }
}

#define SIMPLE "{\"model\":\"claude-sonnet-4-5\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"

static void test_conversation_id_precedence(void **state)
{
    fx_t *f = *state;
    load(f, "{\"model\":\"m\",\"metadata\":{\"user_id\":\"user_a_account__session_0b4445e1-f5be-49e1-87ce-62bbc28ad705\"},"
            "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    f->p.session_header = K2A_STRLIT("hdr-session");
    f->p.conversation_header = K2A_STRLIT("hdr-conv");
    /* not a UUID: mapped onto one, md5("kiro2api-conversation|hdr-session") with version 3 bits */
    assert_str(k2a_kiro_conversation_id(&f->req, &f->p, &f->arena), "5bc7e941-a9e2-3f13-9a8a-2455f53b7b8d");
    f->p.session_header = K2A_STRLIT("6F9619FF-8B86-D011-B42D-00C04FC964FF"); /* a UUID: as it is */
    assert_str(k2a_kiro_conversation_id(&f->req, &f->p, &f->arena), "6F9619FF-8B86-D011-B42D-00C04FC964FF");
    f->p.session_header = K2A_STR_NULL;
    assert_str(k2a_kiro_conversation_id(&f->req, &f->p, &f->arena), "0b4445e1-f5be-49e1-87ce-62bbc28ad705");
    f->req.session_id = K2A_STR_NULL;
    assert_str(k2a_kiro_conversation_id(&f->req, &f->p, &f->arena), "3058aea5-af6c-33f9-800c-05b721a264e2");
    char big[300];
    memset(big, 'x', sizeof(big));
    f->p.conversation_header = k2a_str(big, sizeof(big)); /* over 256 bytes: ignored */
    /* md5("127.0.0.1|golden-test|2026010100") as a UUID */
    assert_str(k2a_kiro_conversation_id(&f->req, &f->p, &f->arena), "bf9df79a-b65c-3cb1-a786-35653dcc7564");
    f->p.now += 3599; /* same hour bucket */
    assert_str(k2a_kiro_conversation_id(&f->req, &f->p, &f->arena), "bf9df79a-b65c-3cb1-a786-35653dcc7564");
    f->p.now += 1;
    k2a_str_t next = k2a_kiro_conversation_id(&f->req, &f->p, &f->arena);
    assert_false(k2a_str_eq_lit(next, "bf9df79a-b65c-3cb1-a786-35653dcc7564"));
    assert_int_equal(next.len, 36);
    /* the worker's last id is reused only for the same client, user agent and hour: each change gives the id of its own
     * inputs, and going back gives the first one again */
    f->p.now -= 1;
    assert_str(k2a_kiro_conversation_id(&f->req, &f->p, &f->arena), "bf9df79a-b65c-3cb1-a786-35653dcc7564");
    k2a_str_t ip = f->p.client_ip, ua = f->p.user_agent;
    f->p.client_ip = K2A_STRLIT("127.0.0.2");
    k2a_str_t other_ip = k2a_kiro_conversation_id(&f->req, &f->p, &f->arena);
    f->p.client_ip = ip;
    f->p.user_agent = K2A_STRLIT("golden-tesT");
    k2a_str_t other_ua = k2a_kiro_conversation_id(&f->req, &f->p, &f->arena);
    f->p.user_agent = K2A_STRLIT("golden-test-");
    k2a_str_t longer_ua = k2a_kiro_conversation_id(&f->req, &f->p, &f->arena);
    f->p.user_agent = ua;
    assert_false(k2a_str_eq(other_ip, other_ua) || k2a_str_eq(other_ip, longer_ua) || k2a_str_eq(other_ua, longer_ua));
    assert_false(k2a_str_eq_lit(other_ip, "bf9df79a-b65c-3cb1-a786-35653dcc7564"));
    assert_false(k2a_str_eq_lit(other_ua, "bf9df79a-b65c-3cb1-a786-35653dcc7564"));
    assert_str(k2a_kiro_conversation_id(&f->req, &f->p, &f->arena), "bf9df79a-b65c-3cb1-a786-35653dcc7564");
    f->p.client_ip = K2A_STRLIT("127.0.0.2");
    assert_true(k2a_str_eq(k2a_kiro_conversation_id(&f->req, &f->p, &f->arena), other_ip));
}

static void test_continuation_id(void **state)
{
    fx_t *f = *state;
    load(f, SIMPLE);
    assert_int_equal(build(f), 0);
    k2a_str_t id = f->res.agent_continuation_id;
    assert_int_equal(id.len, 36);
    assert_int_equal(id.base[14], '4'); /* version 4 */
    assert_non_null(strchr("89ab", id.base[19]));
    for (int i = 0; i < 36; ++i) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(id.base[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", id.base[i]));
    }
    char first[37];
    memcpy(first, id.base, 36);
    first[36] = '\0';
    assert_int_equal(build(f), 0);
    assert_false(k2a_str_eq_lit(f->res.agent_continuation_id, first)); /* fresh per request */
    f->p.continuation_header = K2A_STRLIT("my-continuation");          /* not a UUID: ignored */
    assert_int_equal(build(f), 0);
    assert_int_equal(f->res.agent_continuation_id.len, 36);
    f->p.continuation_header = K2A_STRLIT("7f3c2a1e-9b4d-4e6f-8a1b-2c3d4e5f6a7b");
    assert_int_equal(build(f), 0);
    assert_str(f->res.agent_continuation_id, "7f3c2a1e-9b4d-4e6f-8a1b-2c3d4e5f6a7b");
    yajl_val v = parse_out(f);
    assert_string_equal(YAJL_GET_STRING(get(v, "conversationState", "agentContinuationId", NULL, NULL)),
                        "7f3c2a1e-9b4d-4e6f-8a1b-2c3d4e5f6a7b");
    yajl_tree_free(v);
}

static void test_fields_and_omissions(void **state)
{
    fx_t *f = *state;
    load(f, SIMPLE);
    f->p.profile_arn = K2A_STRLIT("arn:aws:codewhisperer:us-east-1:1:profile/X");
    assert_int_equal(build(f), 0);
    yajl_val v = parse_out(f);
    assert_string_equal(YAJL_GET_STRING(get(v, "profileArn", NULL, NULL, NULL)), "arn:aws:codewhisperer:us-east-1:1:profile/X");
    assert_string_equal(YAJL_GET_STRING(get(v, "conversationState", "chatTriggerType", NULL, NULL)), "MANUAL");
    assert_string_equal(YAJL_GET_STRING(get(v, "conversationState", "agentTaskType", NULL, NULL)), "vibe");
    assert_null(get(v, "conversationState", "history", NULL, NULL)); /* no history: omitted, not null */
    yajl_val um = get(v, "conversationState", "currentMessage", "userInputMessage", NULL);
    assert_non_null(um);
    const char *imgs[] = {"images", NULL}, *ctx[] = {"userInputMessageContext", NULL}, *origin[] = {"origin", NULL};
    yajl_val images = yajl_tree_get(um, imgs, yajl_t_array);
    assert_non_null(images); /* images: [] is always on the current message */
    assert_int_equal(images->u.array.len, 0);
    yajl_val c = yajl_tree_get(um, ctx, yajl_t_object);
    assert_non_null(c);
    assert_int_equal(c->u.object.len, 0); /* no tools, no results: {} */
    assert_string_equal(YAJL_GET_STRING(yajl_tree_get(um, origin, yajl_t_string)), "AI_EDITOR");
    yajl_tree_free(v);
    /* no profileArn when empty */
    f->p.profile_arn = K2A_STR_NULL;
    assert_int_equal(build(f), 0);
    assert_null(memmem(f->out.base, f->out.len, "profileArn", 10));
    assert_null(memmem(f->out.base, f->out.len, "null", 4));
}

static void test_encode_spans_and_verbatim(void **state)
{
    fx_t *f = *state;
    k2a_kiro_image_t img[2] = {{K2A_STRLIT("png"), K2A_STRLIT("QUJD"), true}, {K2A_STRLIT("png"), K2A_STRLIT("a\"b"), false}};
    k2a_kiro_tool_use_t use = {K2A_STRLIT("t1"), K2A_STRLIT("T"), K2A_STRLIT("{\"x\":[1,{\"y\":null}]}")};
    k2a_kiro_tool_result_t res = {K2A_STRLIT("t1"), K2A_STRLIT("out\n\"q\""), true};
    k2a_kiro_turn_t hist[2] = {{.content = K2A_STRLIT("u"), .images = img, .nimages = 2},
                               {.assistant = true, .content = K2A_STRLIT(" "), .uses = &use, .nuses = 1}};
    k2a_kiro_tool_spec_t tool = {K2A_STRLIT("T"), K2A_STRLIT("d"), K2A_STRLIT("{\"type\":\"object\"}")};
    k2a_kiro_conv_t c = {.history = hist,
                         .nhistory = 2,
                         .current = {.content = K2A_STRLIT(""), .results = &res, .nresults = 1},
                         .tools = &tool,
                         .ntools = 1};
    k2a_kiro_encode_ids_t ids = {K2A_STRLIT("M"), K2A_STRLIT("C"), K2A_STRLIT("A"), K2A_STR_NULL};
    size_t spans[3];
    assert_int_equal(k2a_kiro_encode(&c, &ids, &f->out, spans), 0);
    yajl_val v = parse_out(f);
    /* spans cover each history element exactly (the second includes its leading comma) */
    assert_int_equal(f->out.base[spans[0]], '{');
    assert_int_equal(f->out.base[spans[1]], ',');
    assert_int_equal(f->out.base[spans[2]], ']');
    assert_true(memcmp(f->out.base + spans[0], "{\"userInputMessage\":{\"content\":\"u\"", 34) == 0);
    yajl_val h = get(v, "conversationState", "history", NULL, NULL);
    assert_int_equal(h->u.array.len, 2);
    const char *p_img[] = {"userInputMessage", "images", NULL};
    yajl_val images = yajl_tree_get(h->u.array.values[0], p_img, yajl_t_array);
    const char *p_bytes[] = {"source", "bytes", NULL};
    assert_string_equal(YAJL_GET_STRING(yajl_tree_get(images->u.array.values[0], p_bytes, yajl_t_string)), "QUJD");
    assert_string_equal(YAJL_GET_STRING(yajl_tree_get(images->u.array.values[1], p_bytes, yajl_t_string)), "a\"b"); /* escaped */
    const char *p_input[] = {"assistantResponseMessage", "toolUses", NULL};
    yajl_val uses = yajl_tree_get(h->u.array.values[1], p_input, yajl_t_array);
    const char *p_y[] = {"input", "x", NULL};
    assert_int_equal(yajl_tree_get(uses->u.array.values[0], p_y, yajl_t_array)->u.array.len, 2);
    const char *p_ctx[] = {"userInputMessage", "userInputMessageContext", NULL};
    assert_int_equal(yajl_tree_get(h->u.array.values[0], p_ctx, yajl_t_object)->u.object.len, 0);
    yajl_val results = get(v, "conversationState", "currentMessage", "userInputMessage", NULL);
    const char *p_res[] = {"userInputMessageContext", "toolResults", NULL};
    yajl_val r0 = yajl_tree_get(results, p_res, yajl_t_array)->u.array.values[0];
    const char *p_status[] = {"status", NULL}, *p_err[] = {"isError", NULL}, *p_text[] = {"content", NULL};
    assert_string_equal(YAJL_GET_STRING(yajl_tree_get(r0, p_status, yajl_t_string)), "error");
    assert_true(YAJL_IS_TRUE(yajl_tree_get(r0, p_err, yajl_t_any)));
    yajl_val content = yajl_tree_get(r0, p_text, yajl_t_array);
    const char *p_t[] = {"text", NULL};
    assert_string_equal(YAJL_GET_STRING(yajl_tree_get(content->u.array.values[0], p_t, yajl_t_string)), "out\n\"q\"");
    yajl_tree_free(v);
    /* a bounded output buffer */
    k2a_buf_t small;
    k2a_buf_init(&small, 100);
    assert_int_equal(k2a_kiro_encode(&c, &ids, &small, NULL), K2A_ETOOBIG);
    k2a_buf_dispose(&small);
}

/* a conversation of n pairs, each message `size` bytes of text */
static char *pairs_request(int n, int size, bool system)
{
    size_t cap = (size_t)n * 2 * ((size_t)size + 64) + 256;
    char *b = malloc(cap), *p = b;
    p += sprintf(p, "{\"model\":\"claude-sonnet-4-5\",%s\"messages\":[", system ? "\"system\":\"Sys\"," : "");
    for (int i = 0; i < n; ++i) {
        p += sprintf(p, "{\"role\":\"user\",\"content\":\"u%d ", i);
        memset(p, 'x', (size_t)size);
        p += size;
        p += sprintf(p, "\"},{\"role\":\"assistant\",\"content\":\"a%d ", i);
        memset(p, 'y', (size_t)size);
        p += size;
        p += sprintf(p, "\"},");
    }
    p += sprintf(p, "{\"role\":\"user\",\"content\":\"last\"}]}");
    return b;
}

static void test_payload_budget_drops_just_enough(void **state)
{
    fx_t *f = *state;
    char *body = pairs_request(10, 500, true);
    load(f, body);
    f->p.continuation_header = K2A_STRLIT("7f3c2a1e-9b4d-4e6f-8a1b-2c3d4e5f6a7b"); /* same bytes on every build */
    assert_int_equal(build(f), 0);
    size_t full = f->out.len;
    assert_int_equal(f->res.history_turns_dropped, 0);
    /* exactly at the limit: nothing dropped */
    f->p.norm.max_payload_bytes = full;
    assert_int_equal(build(f), 0);
    assert_int_equal(f->res.history_turns_dropped, 0);
    /* one byte less: the oldest pair goes, nothing more */
    f->p.norm.max_payload_bytes = full - 1;
    assert_int_equal(build(f), 0);
    assert_int_equal(f->res.history_turns_dropped, 2);
    assert_true(f->out.len <= full - 1);
    size_t one_pair = full - f->out.len;
    assert_null(memmem(f->out.base, f->out.len, "u0 ", 3));
    assert_non_null(memmem(f->out.base, f->out.len, "u1 ", 3));
    assert_non_null(memmem(f->out.base, f->out.len, "\"Sys\"", 5)); /* the system pair is kept */
    /* room for 7 pairs: 3 dropped */
    f->p.norm.max_payload_bytes = full - 3 * one_pair;
    assert_int_equal(build(f), 0);
    assert_int_equal(f->res.history_turns_dropped, 6);
    assert_int_equal(f->res.payload_bytes, f->out.len);
    /* nothing fits: a clean error */
    f->p.norm.max_payload_bytes = 200;
    assert_int_equal(build(f), K2A_EPAYLOAD_TOOBIG);
    assert_int_equal(strncmp(f->err.message, "prompt is too long: ", 20), 0); /* what makes clients compact */
    assert_non_null(strstr(f->err.message, " bytes > 200 maximum"));
    assert_non_null(strstr(f->err.message, "after dropping 20 of 20 history turns"));
    free(body);
}

static void test_build_result(void **state)
{
    fx_t *f = *state;
    load(f,
         "{\"model\":\"claude-opus-4-8-thinking\",\"tools\":[{\"name\":\"mcp__this_tool_name_is_definitely_longer_than_sixty_four_"
         "bytes_in_total\"}],\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    assert_int_equal(build(f), 0);
    assert_str(f->res.kiro_model_id, "claude-opus-4.8");
    assert_str(f->res.public_model, "claude-opus-4-8");
    assert_true(f->res.thinking);
    assert_int_equal(f->res.tool_names.n, 1);
    assert_str(k2a_tool_names_to_client(&f->res.tool_names, f->res.tool_names.pairs[0].kiro),
               "mcp__this_tool_name_is_definitely_longer_than_sixty_four_bytes_in_total");
    assert_int_equal(f->res.payload_bytes, f->out.len);
    assert_str(f->res.conversation_id, "bf9df79a-b65c-3cb1-a786-35653dcc7564");

    load(f, "{\"model\":\"gpt 4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    assert_int_equal(build(f), K2A_EMODEL_INVALID);
    assert_non_null(strstr(f->err.message, "model \"gpt 4o\" is not a valid model name"));

    load(f, SIMPLE);
    k2a_buf_dispose(&f->out);
    k2a_buf_init(&f->out, 64);
    assert_int_equal(build(f), K2A_ETOOBIG);
    assert_non_null(strstr(f->err.message, "output buffer"));
}

/* Strings survive the hand-written escaper exactly: every ASCII byte, UTF-8, at every offset around the 8-byte steps. */
static void test_string_escaping_round_trip(void **state)
{
    fx_t *f = *state;
    char src[600];
    size_t n = 0, nascii;
    for (int c = 1; c < 128; ++c)
        src[n++] = (char)c;
    for (size_t i = 0; i < 300; ++i)
        src[n++] = i % 37 == 0 ? '"' : i % 41 == 0 ? '\\' : i % 43 == 0 ? '\n' : (char)('a' + i % 26);
    nascii = n;
    static const char utf8[] = "\xc3\xa9\xe5\x90\x8d\xf0\x9f\x98\x80\xe2\x80\xa8";
    memcpy(src + n, utf8, sizeof(utf8) - 1);
    n += sizeof(utf8) - 1;
    for (size_t start = 0; start < 24; ++start) {
        /* ASCII slices of every length around the 8-byte steps, and the whole string with UTF-8 at the end */
        for (size_t len = 0; start + len <= n; len += len < 40 ? 1 : 37) {
            if (start + len > nascii)
                len = n - start;
            k2a_kiro_turn_t cur = {.content = k2a_str(src + start, len)};
            k2a_kiro_conv_t c = {.current = cur};
            k2a_kiro_encode_ids_t ids = {K2A_STRLIT("M"), K2A_STRLIT("C"), K2A_STRLIT("A"), K2A_STR_NULL};
            k2a_buf_reset(&f->out);
            assert_int_equal(k2a_kiro_encode(&c, &ids, &f->out, NULL), 0);
            yajl_val v = parse_out(f);
            yajl_val content = get(v, "conversationState", "currentMessage", "userInputMessage", "content");
            assert_non_null(content);
            const char *got = content->u.string;
            assert_int_equal(strlen(got), len);
            assert_memory_equal(got, src + start, len);
            yajl_tree_free(v);
            if (start + len == n)
                break;
        }
    }
    /* NUL and the other control characters use \\u00XX or their short escapes */
    k2a_kiro_turn_t cur = {.content = k2a_str("a\0b\x1f\b\f\r\t", 8)};
    k2a_kiro_conv_t c = {.current = cur};
    k2a_kiro_encode_ids_t ids = {K2A_STRLIT("M"), K2A_STRLIT("C"), K2A_STRLIT("A"), K2A_STR_NULL};
    k2a_buf_reset(&f->out);
    assert_int_equal(k2a_kiro_encode(&c, &ids, &f->out, NULL), 0);
    static const char want[] = "\"a\\u0000b\\u001f\\b\\f\\r\\t\"";
    assert_non_null(memmem(f->out.base, f->out.len, want, sizeof(want) - 1));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_conversation_id_precedence),
        T(test_continuation_id),
        T(test_fields_and_omissions),
        T(test_encode_spans_and_verbatim),
        T(test_payload_budget_drops_just_enough),
        T(test_build_result),
        T(test_string_escaping_round_trip),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
