/*
 * Unit tests of the OpenAI Chat Completions request decoder (src/convert/openai_req.c): every field of the
 * mapping, every documented rule (tool-call arguments, reasoning_effort, response_format, tool turns),
 * every error with its JSON path, and every limit. The IR is rendered by dump_ir() into a line-based text
 * so that a whole decoded request is compared at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>
#include "core/buf.h"
#include "core/errors.h"
#include "convert/openai_req.h"

/* ---------- IR dump ---------- */

static void put_str(k2a_buf_t *b, k2a_str_t s)
{
    k2a_buf_append(b, "\"", 1);
    k2a_buf_append_json_escaped(b, s.base, s.len);
    k2a_buf_append(b, "\"", 1);
}

static void dump_block(k2a_buf_t *b, const k2a_ir_block_t *blk)
{
    switch (blk->kind) {
    case K2A_BLOCK_TEXT:
        k2a_buf_appendstr(b, " text(");
        put_str(b, blk->text);
        break;
    case K2A_BLOCK_THINKING:
        k2a_buf_appendstr(b, " thinking(");
        put_str(b, blk->text);
        break;
    case K2A_BLOCK_IMAGE:
        k2a_buf_appendf(b, " image(%.*s,", (int)blk->media_type.len, blk->media_type.base);
        put_str(b, blk->data);
        break;
    case K2A_BLOCK_TOOL_USE:
        k2a_buf_appendstr(b, " tool_use(");
        put_str(b, blk->id);
        k2a_buf_appendstr(b, ",");
        put_str(b, blk->name);
        k2a_buf_appendf(b, ",%.*s", (int)blk->input.len, blk->input.base);
        if (blk->input_raw.base != NULL) {
            k2a_buf_appendstr(b, ",raw=");
            put_str(b, blk->input_raw);
        }
        break;
    case K2A_BLOCK_TOOL_RESULT:
        k2a_buf_appendstr(b, " tool_result(");
        put_str(b, blk->tool_use_id);
        k2a_buf_appendstr(b, ",[");
        for (size_t i = 0; i < blk->ncontent; ++i)
            dump_block(b, &blk->content[i]);
        k2a_buf_appendstr(b, " ]");
        break;
    default:
        k2a_buf_appendf(b, " kind%d(", (int)blk->kind);
        break;
    }
    k2a_buf_appendstr(b, ")");
}

static char *dump_ir(const k2a_ir_request_t *r)
{
    static const char *const roles[] = {"user", "assistant", "system"};
    static const char *const choices[] = {"auto", "any", "none", "tool"};
    k2a_buf_t b;
    k2a_buf_init(&b, 0);
    k2a_buf_appendf(&b, "model=%.*s stream=%d include_usage=%d max_tokens=%lld tool_choice=%s", (int)r->model.len, r->model.base,
                    r->stream, r->include_usage, (long long)r->max_tokens, choices[r->tool_choice]);
    if (r->tool_choice_name.base != NULL)
        k2a_buf_appendf(&b, ":%.*s", (int)r->tool_choice_name.len, r->tool_choice_name.base);
    k2a_buf_appendstr(&b, "\n");
    if (r->has_temperature || r->has_top_p)
        k2a_buf_appendf(&b, "temperature=%s%g top_p=%s%g\n", r->has_temperature ? "" : "-", r->temperature, r->has_top_p ? "" : "-",
                        r->top_p);
    if (r->thinking.mode != K2A_THINKING_OFF || r->thinking.effort.base != NULL)
        k2a_buf_appendf(&b, "thinking=%d budget=%lld effort=%.*s\n", (int)r->thinking.mode, (long long)r->thinking.budget_tokens,
                        (int)r->thinking.effort.len, r->thinking.effort.base);
    if (r->json_object)
        k2a_buf_appendstr(&b, "json_object\n");
    for (size_t i = 0; i < r->nstop_sequences; ++i) {
        k2a_buf_appendstr(&b, i == 0 ? "stop:" : ",");
        put_str(&b, r->stop_sequences[i]);
        if (i + 1 == r->nstop_sequences)
            k2a_buf_appendstr(&b, "\n");
    }
    for (size_t i = 0; i < r->nsystem; ++i) {
        k2a_buf_appendstr(&b, "system:");
        dump_block(&b, &r->system[i]);
        k2a_buf_appendstr(&b, "\n");
    }
    for (size_t i = 0; i < r->nmessages; ++i) {
        k2a_buf_appendf(&b, "%s:", roles[r->messages[i].role]);
        for (size_t j = 0; j < r->messages[i].nblocks; ++j)
            dump_block(&b, &r->messages[i].blocks[j]);
        k2a_buf_appendstr(&b, "\n");
    }
    for (size_t i = 0; i < r->ntools; ++i) {
        k2a_buf_appendstr(&b, "tool: ");
        put_str(&b, r->tools[i].name);
        k2a_buf_appendstr(&b, " ");
        put_str(&b, r->tools[i].description);
        k2a_buf_appendf(&b, " %.*s\n", (int)r->tools[i].input_schema.len, r->tools[i].input_schema.base);
    }
    return k2a_buf_cstr(&b);
}

/* ---------- helpers ---------- */

typedef struct st_ctx_t {
    k2a_arena_t arena;
    k2a_ir_request_t req;
    k2a_convert_error_t err;
    k2a_convert_limits_t limits;
} ctx_t;

static int setup(void **state)
{
    ctx_t *c = calloc(1, sizeof(*c));
    k2a_arena_init(&c->arena, 0);
    c->limits = k2a_convert_limits_default();
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    ctx_t *c = *state;
    k2a_arena_dispose(&c->arena);
    free(c);
    return 0;
}

static int decode(ctx_t *c, const char *body)
{
    k2a_arena_dispose(&c->arena);
    k2a_arena_init(&c->arena, c->arena.max);
    return k2a_openai_decode(body, strlen(body), &c->limits, &c->arena, &c->req, &c->err);
}

/* Decodes body (which must succeed) and compares the whole dump. */
static void expect_ir(ctx_t *c, const char *body, const char *want)
{
    int r = decode(c, body);
    if (r != 0)
        fail_msg("decode failed: %s (%s)", k2a_errname(r), c->err.message);
    char *got = dump_ir(&c->req);
    if (strcmp(got, want) != 0)
        fail_msg("IR mismatch\n--- got ---\n%s--- want ---\n%s", got, want);
    free(got);
}

static void expect_error(ctx_t *c, const char *body, int code, const char *message)
{
    int r = decode(c, body);
    if (r != code)
        fail_msg("expected %s, got %s (%s) for %s", k2a_errname(code), k2a_errname(r), c->err.message, body);
    assert_int_equal(c->err.code, code);
    if (strcmp(c->err.message, message) != 0)
        fail_msg("message mismatch\n got: %s\nwant: %s", c->err.message, message);
}

#define MSG_HI "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

/* ---------- real SDK requests ---------- */

static void gen_tree(yajl_gen g, yajl_val v)
{
    if (YAJL_IS_OBJECT(v)) {
        yajl_gen_map_open(g);
        for (size_t i = 0; i < v->u.object.len; ++i) {
            yajl_gen_string(g, (const unsigned char *)v->u.object.keys[i], strlen(v->u.object.keys[i]));
            gen_tree(g, v->u.object.values[i]);
        }
        yajl_gen_map_close(g);
    } else if (YAJL_IS_ARRAY(v)) {
        yajl_gen_array_open(g);
        for (size_t i = 0; i < v->u.array.len; ++i)
            gen_tree(g, v->u.array.values[i]);
        yajl_gen_array_close(g);
    } else if (YAJL_IS_STRING(v)) {
        yajl_gen_string(g, (const unsigned char *)v->u.string, strlen(v->u.string));
    } else if (YAJL_IS_NUMBER(v)) {
        yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
    } else if (YAJL_IS_TRUE(v)) {
        yajl_gen_bool(g, 1);
    } else if (YAJL_IS_FALSE(v)) {
        yajl_gen_bool(g, 0);
    } else {
        yajl_gen_null(g);
    }
}

/* The `body` of a tests/fixtures/clients file, serialised compactly (malloc'd). */
static char *fixture_body(const char *name)
{
    char path[512], errbuf[256];
    snprintf(path, sizeof(path), "%s/clients/%s", K2A_FIXTURES_DIR, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)n + 1);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    text[n] = '\0';
    fclose(f);
    yajl_val root = yajl_tree_parse(text, errbuf, sizeof(errbuf));
    assert_non_null(root);
    const char *bpath[] = {"body", NULL};
    yajl_val body = yajl_tree_get(root, bpath, yajl_t_object);
    assert_non_null(body);
    yajl_gen g = yajl_gen_alloc(NULL);
    gen_tree(g, body);
    const unsigned char *out;
    size_t len;
    yajl_gen_get_buf(g, &out, &len);
    char *res = strndup((const char *)out, len);
    yajl_gen_free(g);
    yajl_tree_free(root);
    free(text);
    return res;
}

static void test_sdk_tool_5(void **state)
{
    char *body = fixture_body("sdk-tool-5.json");
    expect_ir(*state, body,
              "model=gpt-4o-mini stream=1 include_usage=1 max_tokens=0 tool_choice=auto\n"
              "user: text(\"What is the weather in Paris?\")\n"
              "tool: \"get_weather\" \"Get weather\" "
              "{\"type\":\"object\",\"properties\":{\"location\":{\"type\":\"string\"}},\"required\":[\"location\"]}\n");
    free(body);
}

static void test_sdk_tool_7(void **state)
{
    char *body = fixture_body("sdk-tool-7.json");
    expect_ir(*state, body,
              "model=gpt-4o-mini stream=0 include_usage=0 max_tokens=0 tool_choice=auto\n"
              "user: text(\"What is the weather in Paris?\")\n"
              "assistant: tool_use(\"call_W00a6G0HUz9g6oqZ2DY7BBF8\",\"get_weather\",{\"location\":\"Paris\"})\n"
              "user: tool_result(\"call_W00a6G0HUz9g6oqZ2DY7BBF8\",[ text(\"18C sunny\") ])\n"
              "tool: \"get_weather\" \"Get weather\" "
              "{\"type\":\"object\",\"properties\":{\"location\":{\"type\":\"string\"}},\"required\":[\"location\"]}\n");
    free(body);
}

/* ---------- messages ---------- */

static void test_system_developer(void **state)
{
    expect_ir(
        *state,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"S1\"},{\"role\":\"developer\",\"content\":[{\"type\":"
        "\"text\",\"text\":\"D1\"},{\"type\":\"text\",\"text\":\"D2\"}]},{\"role\":\"user\",\"content\":\"hi\",\"name\":\"bob\"},"
        "{\"role\":\"system\",\"content\":\"late\"}]}",
        "model=m stream=0 include_usage=0 max_tokens=0 tool_choice=auto\n"
        "system: text(\"S1\")\n"
        "system: text(\"D1\")\n"
        "system: text(\"D2\")\n"
        "system: text(\"late\")\n"
        "user: text(\"hi\")\n");
}

static void test_user_parts_and_images(void **state)
{
    expect_ir(
        *state,
        "{\"model\":\"m\",\"messages\":[{\"content\":[{\"type\":\"text\",\"text\":\"look\"},{\"type\":\"image_url\",\"image_url\":"
        "{\"url\":\"data:image/png;base64,iVBORw0KGgo=\",\"detail\":\"high\"}},{\"image_url\":{\"url\":\"data:IMAGE/JPG;base64,/"
        "9j/4AAQ\"},\"type\":\"image_url\"},{\"type\":\"image_url\",\"image_url\":\"data:image/webp;base64,UklGRg==\"}],\"role\":"
        "\"user\"}]}",
        "model=m stream=0 include_usage=0 max_tokens=0 tool_choice=auto\n"
        "user: text(\"look\") image(image/png,\"iVBORw0KGgo=\") image(image/jpeg,\"/9j/4AAQ\") image(image/webp,\"UklGRg==\")\n");
}

/* fuzz_openai_req finding (openai_req-crash-d490c635): image/bmp was accepted and sent to Kiro as format "bmp", which its
 * image format enum (png, jpeg, gif, webp) does not have, so kiro-sim's validator (like Kiro) rejected the whole request as
 * "Improperly formed". It is a clear 400 now, as in the Anthropic decoder. */
static void test_image_bmp_is_refused(void **state)
{
    ctx_t *c = *state;
    assert_int_equal(decode(c, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
                               "\"image_url\":{\"url\":\"data:image/bmp;base64,Qk0AAAAAAAAAAAAA\"}}]}]}"),
                     K2A_EIMAGE_INVALID);
    assert_string_equal(c->err.message,
                        "messages[0].content[0].image_url.url: unsupported image type 'image/bmp' (jpeg, png, gif or webp)");
}

static void test_assistant_shapes(void **state)
{
    /* reasoning_content -> THINKING; empty content dropped; refusal ignored; an assistant with nothing is dropped */
    expect_ir(
        *state,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"reasoning_content\":"
        "\"hmm\",\"content\":\"\",\"refusal\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":"
        "\"f\",\"arguments\":\"{\\\"a\\\": [1, 2.5e3, true, null, \\\"x\\\"]}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"c1\","
        "\"content\":\"r\"},{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"A\"},{\"type\":\"refusal\","
        "\"refusal\":\"no\"},{\"type\":\"text\",\"text\":\"B\"}]},{\"role\":\"assistant\",\"content\":null},{\"role\":\"user\","
        "\"content\":\"again\"}]}",
        "model=m stream=0 include_usage=0 max_tokens=0 tool_choice=auto\n"
        "user: text(\"q\")\n"
        "assistant: thinking(\"hmm\") tool_use(\"c1\",\"f\",{\"a\":[1,2.5e3,true,null,\"x\"]})\n"
        "user: tool_result(\"c1\",[ text(\"r\") ])\n"
        "assistant: text(\"A\") text(\"B\")\n"
        "user: text(\"again\")\n");
}

static void test_parallel_tool_calls_one_turn(void **state)
{
    /* two parallel calls, two tool messages -> one user turn; the user message after them joins it */
    expect_ir(
        *state,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"both\"},{\"role\":\"assistant\",\"content\":\"ok\","
        "\"tool_calls\":[{\"id\":\"a\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}},{\"id\":\"b\","
        "\"function\":{\"arguments\":\"{\\\"x\\\":1}\",\"name\":\"g\"},\"type\":\"function\"}]},{\"role\":\"tool\",\"tool_call_"
        "id\":"
        "\"a\",\"content\":[{\"type\":\"text\",\"text\":\"ra\"}]},{\"role\":\"tool\",\"content\":\"rb\",\"tool_call_id\":\"b\"},"
        "{\"role\":\"user\",\"content\":\"thanks\"}]}",
        "model=m stream=0 include_usage=0 max_tokens=0 tool_choice=auto\n"
        "user: text(\"both\")\n"
        "assistant: text(\"ok\") tool_use(\"a\",\"f\",{}) tool_use(\"b\",\"g\",{\"x\":1})\n"
        "user: tool_result(\"a\",[ text(\"ra\") ]) tool_result(\"b\",[ text(\"rb\") ]) text(\"thanks\")\n");
}

static void test_arguments_rules(void **state)
{
    /* empty / blank -> {}; invalid JSON, truncated JSON, an array, a string -> wrapped with input_raw; object form accepted */
    expect_ir(*state,
              "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"tool_calls\":["
              "{\"id\":\"1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}},"
              "{\"id\":\"2\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\" \\n \"}},"
              "{\"id\":\"3\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":\"}},"
              "{\"id\":\"4\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"[1,2]\"}},"
              "{\"id\":\"5\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"not json\"}},"
              "{\"id\":\"6\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":{\"k\": {\"n\": [ ]}}}},"
              "{\"id\":\"7\",\"type\":\"function\",\"function\":{\"name\":\"f\"}},"
              "{\"id\":\"8\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{} {}\"}}]}]}",
              "model=m stream=0 include_usage=0 max_tokens=0 tool_choice=auto\n"
              "user: text(\"q\")\n"
              "assistant: tool_use(\"1\",\"f\",{}) tool_use(\"2\",\"f\",{}) "
              "tool_use(\"3\",\"f\",{\"arguments\":\"{\\\"a\\\":\"},raw=\"{\\\"a\\\":\") "
              "tool_use(\"4\",\"f\",{\"arguments\":\"[1,2]\"},raw=\"[1,2]\") "
              "tool_use(\"5\",\"f\",{\"arguments\":\"not json\"},raw=\"not json\") "
              "tool_use(\"6\",\"f\",{\"k\":{\"n\":[]}}) tool_use(\"7\",\"f\",{}) "
              "tool_use(\"8\",\"f\",{\"arguments\":\"{} {}\"},raw=\"{} {}\")\n");
}

static void test_legacy_function_calling(void **state)
{
    expect_ir(
        *state,
        "{\"model\":\"m\",\"functions\":[{\"name\":\"f\",\"description\":\"d\",\"parameters\":{\"type\":\"object\",\"properties\":"
        "{}}}],\"function_call\":{\"name\":\"f\"},\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\","
        "\"content\":null,\"function_call\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\":true}\"}},{\"role\":\"function\",\"name\":"
        "\"f\",\"content\":\"done\"}]}",
        "model=m stream=0 include_usage=0 max_tokens=0 tool_choice=tool:f\n"
        "user: text(\"q\")\n"
        "assistant: tool_use(\"call_legacy_1\",\"f\",{\"x\":true})\n"
        "user: tool_result(\"call_legacy_1\",[ text(\"done\") ])\n"
        "tool: \"f\" \"d\" {\"type\":\"object\",\"properties\":{}}\n");
}

static void test_tool_message_content_shapes(void **state)
{
    expect_ir(
        *state,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"tool_calls\":[{\"id\":"
        "\"a\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":"
        "\"a\",\"content\":null}]}",
        "model=m stream=0 include_usage=0 max_tokens=0 tool_choice=auto\n"
        "user: text(\"q\")\n"
        "assistant: tool_use(\"a\",\"f\",{})\n"
        "user: tool_result(\"a\",[ ])\n");
}

/* ---------- tools ---------- */

static void test_tools_schema_cleaning(void **state)
{
    expect_ir(
        *state,
        "{\"model\":\"m\"," MSG_HI ",\"tools\":["
        "{\"type\":\"function\",\"function\":{\"name\":\"a\",\"description\":\"A\",\"strict\":true,\"parameters\":{\"$schema\":"
        "\"http://json-schema.org/draft-07/schema#\",\"type\":\"object\",\"properties\":{\"p\":{\"$ref\":\"#/$defs/P\"}},\"$defs\":"
        "{\"P\":{\"type\":\"string\",\"strict\":1}},\"additionalProperties\":false,\"strict\":true,\"required\":[\"p\"]}}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"b\"}},"
        "{\"function\":{\"name\":\"c\",\"description\":null,\"parameters\":{\"properties\":{\"x\":{\"type\":\"number\"}}}},"
        "\"type\":\"function\"},"
        "{\"type\":\"function\",\"function\":{\"name\":\"d\",\"parameters\":{\"type\":\"object\",\"strict\":{\"deep\":[1,{}]}}}}]}",
        "model=m stream=0 include_usage=0 max_tokens=0 tool_choice=auto\n"
        "user: text(\"hi\")\n"
        "tool: \"a\" \"A\" {\"$schema\":\"http://json-schema.org/draft-07/schema#\",\"type\":\"object\",\"properties\":{\"p\":"
        "{\"$ref\":\"#/$defs/"
        "P\"}},\"$defs\":{\"P\":{\"type\":\"string\",\"strict\":1}},\"additionalProperties\":false,\"required\":"
        "[\"p\"]}\n"
        "tool: \"b\" \"\" {\"type\":\"object\",\"properties\":{}}\n"
        "tool: \"c\" \"\" {\"properties\":{\"x\":{\"type\":\"number\"}},\"type\":\"object\"}\n"
        "tool: \"d\" \"\" {\"type\":\"object\",\"properties\":{}}\n");
}

static void test_tool_choice(void **state)
{
    ctx_t *c = *state;
    static const struct {
        const char *json;
        k2a_ir_tool_choice_t want;
        const char *name;
    } cases[] = {
        {"\"auto\"", K2A_TOOL_CHOICE_AUTO, NULL},
        {"\"none\"", K2A_TOOL_CHOICE_NONE, NULL},
        {"\"required\"", K2A_TOOL_CHOICE_ANY, NULL},
        {"null", K2A_TOOL_CHOICE_AUTO, NULL},
        {"{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}", K2A_TOOL_CHOICE_TOOL, "get_weather"},
        {"{\"function\":{\"name\":\"x\"},\"type\":\"function\"}", K2A_TOOL_CHOICE_TOOL, "x"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        char body[512];
        snprintf(body, sizeof(body), "{\"model\":\"m\",\"tool_choice\":%s," MSG_HI "}", cases[i].json);
        assert_int_equal(decode(c, body), 0);
        assert_int_equal(c->req.tool_choice, cases[i].want);
        if (cases[i].name != NULL)
            assert_true(k2a_str_eq_lit(c->req.tool_choice_name, cases[i].name));
        else
            assert_null(c->req.tool_choice_name.base);
    }
    /* function_call only applies when tool_choice is absent */
    assert_int_equal(decode(c, "{\"model\":\"m\",\"function_call\":\"none\",\"tool_choice\":\"required\"," MSG_HI "}"), 0);
    assert_int_equal(c->req.tool_choice, K2A_TOOL_CHOICE_ANY);
    assert_int_equal(decode(c, "{\"model\":\"m\",\"function_call\":\"none\"," MSG_HI "}"), 0);
    assert_int_equal(c->req.tool_choice, K2A_TOOL_CHOICE_NONE);
}

/* ---------- scalar parameters ---------- */

static void test_parameters(void **state)
{
    expect_ir(
        *state,
        "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":100,\"max_completion_tokens\":200,\"temperature\":0.5,\"top_p\":1,"
        "\"stop\":[\"END\",\"\\n\\n\"],\"stream\":true,\"stream_options\":{\"include_usage\":true},\"n\":1,\"user\":\"u\","
        "\"seed\":7,\"logprobs\":false,\"top_logprobs\":null,\"presence_penalty\":0.1,\"frequency_penalty\":-0.5,\"logit_bias\":"
        "{\"50256\":-100},\"metadata\":{\"a\":{\"b\":[1,2,{\"c\":null}]}},\"parallel_tool_calls\":true,\"store\":false,"
        "\"service_tier\":\"auto\"," MSG_HI "}",
        "model=claude-sonnet-4-5 stream=1 include_usage=1 max_tokens=200 tool_choice=auto\n"
        "temperature=0.5 top_p=1\n"
        "stop:\"END\",\"\\n\\n\"\n"
        "user: text(\"hi\")\n");
    expect_ir(
        *state,
        "{\"model\":\"m\",\"max_tokens\":64,\"stop\":\"x\",\"stream\":false,\"stream_options\":null,\"temperature\":null," MSG_HI
        "}",
        "model=m stream=0 include_usage=0 max_tokens=64 tool_choice=auto\n"
        "stop:\"x\"\n"
        "user: text(\"hi\")\n");
}

static void test_reasoning_effort(void **state)
{
    ctx_t *c = *state;
    static const struct {
        const char *effort;
        k2a_ir_thinking_t mode;
        int64_t budget;
    } cases[] = {
        {"none", K2A_THINKING_OFF, 0},
        {"minimal", K2A_THINKING_ENABLED, K2A_OPENAI_BUDGET_MINIMAL},
        {"low", K2A_THINKING_ENABLED, K2A_OPENAI_BUDGET_LOW},
        {"medium", K2A_THINKING_ENABLED, K2A_OPENAI_BUDGET_MEDIUM},
        {"high", K2A_THINKING_ENABLED, K2A_OPENAI_BUDGET_HIGH},
        {"xhigh", K2A_THINKING_ENABLED, K2A_OPENAI_BUDGET_XHIGH},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        char body[256];
        snprintf(body, sizeof(body), "{\"model\":\"m\",\"reasoning_effort\":\"%s\"," MSG_HI "}", cases[i].effort);
        assert_int_equal(decode(c, body), 0);
        assert_int_equal(c->req.thinking.mode, cases[i].mode);
        assert_int_equal(c->req.thinking.budget_tokens, cases[i].budget);
        assert_true(k2a_str_eq_lit(c->req.thinking.effort, cases[i].effort));
    }
    assert_int_equal(decode(c, "{\"model\":\"m\",\"reasoning_effort\":null," MSG_HI "}"), 0);
    assert_int_equal(c->req.thinking.mode, K2A_THINKING_OFF);
    assert_null(c->req.thinking.effort.base);
    expect_error(c, "{\"model\":\"m\",\"reasoning_effort\":\"extreme\"," MSG_HI "}", K2A_EBAD_PARAM,
                 "reasoning_effort: unsupported value 'extreme' (none, minimal, low, medium, high or xhigh)");
}

static void test_response_format(void **state)
{
    expect_ir(
        *state,
        "{\"model\":\"m\",\"response_format\":{\"type\":\"json_object\"},\"messages\":[{\"role\":\"system\",\"content\":\"S\"},"
        "{\"role\":\"user\",\"content\":\"hi\"}]}",
        "model=m stream=0 include_usage=0 max_tokens=0 tool_choice=auto\n"
        "json_object\n"
        "system: text(\"S\")\n"
        "system: text(\"" K2A_OPENAI_JSON_INSTRUCTION "\")\n"
        "user: text(\"hi\")\n");
    expect_ir(*state,
              "{\"model\":\"m\",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"city\",\"strict\":true,"
              "\"schema\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"}},\"required\":[\"name\"],"
              "\"additionalProperties\":false}}}," MSG_HI "}",
              "model=m stream=0 include_usage=0 max_tokens=0 tool_choice=auto\n"
              "json_object\n"
              "system: text(\"" K2A_OPENAI_JSON_INSTRUCTION " It must conform to this JSON Schema (\\\"city\\\"):\\n{\\\"type\\\":"
              "\\\"object\\\",\\\"properties\\\":{\\\"name\\\":{\\\"type\\\":\\\"string\\\"}},\\\"required\\\":[\\\"name\\\"],"
              "\\\"additionalProperties\\\":false}\")\n"
              "user: text(\"hi\")\n");
    expect_ir(*state, "{\"model\":\"m\",\"response_format\":{\"type\":\"text\"}," MSG_HI "}",
              "model=m stream=0 include_usage=0 max_tokens=0 tool_choice=auto\n"
              "user: text(\"hi\")\n");
}

static void test_zero_copy_and_escapes(void **state)
{
    ctx_t *c = *state;
    const char *body = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"plain\"},"
                       "{\"type\":\"text\",\"text\":\"esc\\u00e9\\\"\"}]}]}";
    assert_int_equal(decode(c, body), 0);
    k2a_str_t plain = c->req.messages[0].blocks[0].text, esc = c->req.messages[0].blocks[1].text;
    assert_true(plain.base >= body && plain.base < body + strlen(body)); /* no escapes: points into the body */
    assert_true(esc.base < body || esc.base >= body + strlen(body));     /* escapes: copied */
    assert_true(k2a_str_eq_lit(esc, "esc\xc3\xa9\""));
}

/* ---------- errors with their JSON path ---------- */

static void test_errors(void **state)
{
    ctx_t *c = *state;
    static const struct {
        const char *body;
        int code;
        const char *message;
    } cases[] = {
        {"[1]", K2A_EJSON_TYPE, "the request body must be a JSON object"},
        {"\"x\"", K2A_EJSON_TYPE, "the request body must be a JSON object"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", K2A_EMISSING_FIELD, "model: is required"},
        {"{\"model\":\"\"," MSG_HI "}", K2A_EMISSING_FIELD, "model: is required"},
        {"{\"model\":null," MSG_HI "}", K2A_EJSON_TYPE, "model: expected a string, got null"},
        {"{\"model\":\"m\"}", K2A_EMISSING_FIELD, "messages: is required"},
        {"{\"model\":\"m\",\"messages\":[]}", K2A_EEMPTY_MESSAGES, "messages: must contain at least one user or assistant message"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"s\"}]}", K2A_EEMPTY_MESSAGES,
         "messages: must contain at least one user or assistant message"},
        {"{\"model\":\"m\",\"messages\":{}}", K2A_EJSON_TYPE, "messages: expected an array, got an object"},
        {"{\"model\":\"m\",\"messages\":[\"hi\"]}", K2A_EJSON_TYPE, "messages[0]: expected a message object, got a string"},
        {"{\"model\":\"m\",\"messages\":[{\"content\":\"hi\"}]}", K2A_EMISSING_FIELD, "messages[0].role: is required"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"robot\",\"content\":\"x\"}]}",
         K2A_EBAD_PARAM, "messages[1].role: unknown role 'robot'"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":null}]}", K2A_EMISSING_FIELD,
         "messages[0].content: is required"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}", K2A_EMISSING_FIELD, "messages[0].content: is required"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[]}]}", K2A_EEMPTY_CONTENT,
         "messages[0].content: must not be empty"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":42}]}", K2A_EJSON_TYPE,
         "messages[0].content: expected a string, an array of content parts or null, got a number"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\",\"input_audio\":{\"data\":\"x\"}"
         "}]}]}",
         K2A_EBAD_PARAM, "messages[0].content[0].type: content part type 'input_audio' is not supported"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"x\"}]}]}", K2A_EMISSING_FIELD,
         "messages[0].content[0].type: is required"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}", K2A_EMISSING_FIELD,
         "messages[0].content[0].text: is required"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"image_"
         "url\","
         "\"image_url\":{\"url\":\"https://example.com/cat.png\"}}]}]}",
         K2A_EIMAGE_URL,
         "messages[0].content[1].image_url.url: remote image URLs are not supported (Kiro takes image bytes): send a base64 data: "
         "URL"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:"
         "image/"
         "png,abc\"}}]}]}",
         K2A_EIMAGE_INVALID, "messages[0].content[0].image_url.url: data URL must be base64 (data:<media type>;base64,<data>)"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:"
         "image/"
         "tiff;base64,AAAA\"}}]}]}",
         K2A_EIMAGE_INVALID, "messages[0].content[0].image_url.url: unsupported image type 'image/tiff' (jpeg, png, gif or webp)"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:"
         "image/"
         "png;base64,\"}}]}]}",
         K2A_EIMAGE_INVALID, "messages[0].content[0].image_url.url: data URL without data"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"ftp://"
         "x\"}}]}]}",
         K2A_EIMAGE_INVALID, "messages[0].content[0].image_url.url: expected a data:<media type>;base64,<data> URL"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{}}]}]}",
         K2A_EMISSING_FIELD, "messages[0].content[0].image_url.url: is required"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:"
         "image/"
         "png;base64,AAAA\"}}]}," MSG_HI "}",
         K2A_EBAD_PARAM, "messages[0].content: only text parts are allowed in system messages"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"tool_calls\":[{\"type\":"
         "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}]}",
         K2A_EMISSING_FIELD, "messages[1].tool_calls[0].id: is required"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"tool_calls\":[{\"id\":"
         "\"a\","
         "\"type\":\"function\",\"function\":{\"name\":\"f\"}},{\"id\":\"b\",\"type\":\"custom\",\"custom\":{\"name\":\"g\"}}]}]}",
         K2A_EBAD_PARAM, "messages[1].tool_calls[1].type: tool call type 'custom' is not supported (only function)"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"tool_calls\":[{\"id\":"
         "\"a\","
         "\"type\":\"function\",\"function\":{\"arguments\":\"{}\"}}]}]}",
         K2A_EMISSING_FIELD, "messages[1].tool_calls[0].function.name: is required"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"tool_calls\":[{\"id\":"
         "\"a\","
         "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":42}}]}]}",
         K2A_EJSON_TYPE, "messages[1].tool_calls[0].function.arguments: expected a string holding a JSON object, got a number"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"tool\",\"content\":\"r\"}]}",
         K2A_EMISSING_FIELD, "messages[1].tool_call_id: is required"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"function\",\"name\":\"f\",\"content\":\"r\"}]}", K2A_EBAD_PARAM,
         "messages[0].name: a function message must follow an assistant function_call of that name"},
        {"{\"model\":\"m\"," MSG_HI ",\"tools\":[{\"type\":\"function\",\"function\":{\"description\":\"d\"}}]}",
         K2A_EMISSING_FIELD, "tools[0].function.name: is required"},
        {"{\"model\":\"m\"," MSG_HI ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"a\"}},{\"type\":\"web_search\"}]}",
         K2A_EBAD_PARAM, "tools[1].type: tool type 'web_search' is not supported (only function)"},
        {"{\"model\":\"m\"," MSG_HI ",\"tools\":[{\"type\":\"function\"}]}", K2A_EMISSING_FIELD, "tools[0].function: is required"},
        {"{\"model\":\"m\"," MSG_HI ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"a\",\"parameters\":[]}}]}",
         K2A_EJSON_TYPE, "tools[0].function.parameters: expected a JSON Schema object, got an array"},
        {"{\"model\":\"m\"," MSG_HI ",\"functions\":[{\"description\":\"x\"}]}", K2A_EMISSING_FIELD,
         "functions[0].name: is required"},
        {"{\"model\":\"m\"," MSG_HI ",\"tool_choice\":\"sometimes\"}", K2A_EBAD_PARAM,
         "tool_choice: unsupported tool_choice 'sometimes' (expected auto, none or required)"},
        {"{\"model\":\"m\"," MSG_HI ",\"tool_choice\":{\"type\":\"allowed_tools\"}}", K2A_EBAD_PARAM,
         "tool_choice.type: unsupported tool_choice type 'allowed_tools' (expected function)"},
        {"{\"model\":\"m\"," MSG_HI ",\"tool_choice\":{\"type\":\"function\",\"function\":{}}}", K2A_EMISSING_FIELD,
         "tool_choice.function.name: is required"},
        {"{\"model\":\"m\"," MSG_HI ",\"max_tokens\":0}", K2A_EBAD_PARAM, "max_tokens: must be at least 1"},
        {"{\"model\":\"m\"," MSG_HI ",\"max_completion_tokens\":\"100\"}", K2A_EJSON_TYPE,
         "max_completion_tokens: expected an integer, got a string"},
        {"{\"model\":\"m\"," MSG_HI ",\"max_tokens\":1.5}", K2A_EJSON_TYPE, "max_tokens: expected an integer"},
        {"{\"model\":\"m\"," MSG_HI ",\"max_tokens\":99999999999999999999999}", K2A_EJSON_TYPE, "max_tokens: integer out of range"},
        {"{\"model\":\"m\"," MSG_HI ",\"temperature\":\"hot\"}", K2A_EJSON_TYPE, "temperature: expected a number, got a string"},
        {"{\"model\":\"m\"," MSG_HI ",\"stream\":1}", K2A_EJSON_TYPE, "stream: expected a boolean, got a number"},
        {"{\"model\":\"m\"," MSG_HI ",\"stream_options\":{\"include_usage\":\"yes\"}}", K2A_EJSON_TYPE,
         "stream_options.include_usage: expected a boolean, got a string"},
        {"{\"model\":\"m\"," MSG_HI ",\"stop\":[\"a\",3]}", K2A_EJSON_TYPE, "stop[1]: expected a string, got a number"},
        {"{\"model\":\"m\"," MSG_HI ",\"n\":2}", K2A_EBAD_PARAM, "n: n > 1 is not supported"},
        {"{\"model\":\"m\"," MSG_HI ",\"n\":0}", K2A_EBAD_PARAM, "n: must be at least 1"},
        {"{\"model\":\"m\"," MSG_HI ",\"response_format\":{\"type\":\"xml\"}}", K2A_EBAD_PARAM,
         "response_format.type: unsupported response_format type 'xml'"},
        {"{\"model\":\"m\"," MSG_HI ",\"response_format\":{}}", K2A_EMISSING_FIELD, "response_format.type: is required"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}", K2A_EJSON_SYNTAX,
         "messages[1]: malformed JSON near byte 55: parse error: premature EOF"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\",]}", K2A_EJSON_SYNTAX,
         "messages[0].content: malformed JSON near byte 56: parse error: invalid object key (must be a string)"},
        {"", K2A_EJSON_SYNTAX, "malformed JSON near byte 0: parse error: premature EOF"},
        {"{\"model\":\"m\"," MSG_HI "} x", K2A_EJSON_SYNTAX, "malformed JSON near byte 59: parse error: trailing garbage"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i)
        expect_error(c, cases[i].body, cases[i].code, cases[i].message);
}

static void test_invalid_utf8(void **state)
{
    ctx_t *c = *state;
    const char body[] = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}";
    assert_int_equal(decode(c, body), K2A_EJSON_SYNTAX);
    assert_non_null(strstr(c->err.message, "messages[0].content: malformed JSON"));
}

/* ---------- limits ---------- */

static char *nested(const char *prefix, unsigned depth, const char *suffix)
{
    k2a_buf_t b;
    k2a_buf_init(&b, 0);
    k2a_buf_appendstr(&b, prefix);
    for (unsigned i = 0; i < depth; ++i)
        k2a_buf_appendstr(&b, "[");
    for (unsigned i = 0; i < depth; ++i)
        k2a_buf_appendstr(&b, "]");
    k2a_buf_appendstr(&b, suffix);
    return k2a_buf_cstr(&b);
}

static void test_limit_depth(void **state)
{
    ctx_t *c = *state;
    c->limits.max_depth = 16;
    /* an ignored field: root object (1) + 15 arrays = 16 levels is fine, 16 arrays is one too many */
    char *ok = nested("{\"model\":\"m\"," MSG_HI ",\"metadata\":", 15, "}");
    char *deep = nested("{\"model\":\"m\"," MSG_HI ",\"metadata\":", 16, "}");
    assert_int_equal(decode(c, ok), 0);
    expect_error(c, deep, K2A_EJSON_DEPTH, "metadata: JSON nested deeper than 16 levels");
    free(ok);
    free(deep);
    /* inside a captured schema */
    char *schema = nested(
        "{\"model\":\"m\"," MSG_HI ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"p\":", 12,
        "}}}]}");
    expect_error(c, schema, K2A_EJSON_DEPTH, "tools[0].function.parameters: JSON nested deeper than 16 levels");
    free(schema);
    /* inside the arguments string: it counts from where the string is (depth 6 here) */
    k2a_buf_t b;
    k2a_buf_init(&b, 0);
    k2a_buf_appendstr(
        &b, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"tool_calls\":[{\"id\":"
            "\"a\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\":");
    for (int i = 0; i < 10; ++i)
        k2a_buf_appendstr(&b, "[");
    for (int i = 0; i < 10; ++i)
        k2a_buf_appendstr(&b, "]");
    k2a_buf_appendstr(&b, "}\"}}]}]}");
    expect_error(c, k2a_buf_cstr(&b), K2A_EJSON_DEPTH,
                 "messages[1].tool_calls[0].function.arguments: arguments nested deeper than the request's limit of 16 levels");
    k2a_buf_dispose(&b);
}

static void test_limit_counts(void **state)
{
    ctx_t *c = *state;
    c->limits.max_messages = 2;
    expect_error(c,
                 "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"},"
                 "{\"role\":\"user\",\"content\":\"c\"}]}",
                 K2A_ETOOBIG, "messages[2]: more than 2 messages");
    c->limits = k2a_convert_limits_default();
    c->limits.max_blocks = 3;
    expect_error(
        c,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\","
        "\"text\":\"b\"},{\"type\":\"text\",\"text\":\"c\"},{\"type\":\"text\",\"text\":\"d\"}]}]}",
        K2A_ETOOBIG, "messages[0].content[3]: more than 3 content blocks in the request");
    c->limits = k2a_convert_limits_default();
    c->limits.max_tools = 1;
    expect_error(c,
                 "{\"model\":\"m\"," MSG_HI
                 ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"a\"}},{\"type\":\"function\","
                 "\"function\":{\"name\":\"b\"}}]}",
                 K2A_ETOOBIG, "tools[1]: more than 1 tools");
    c->limits = k2a_convert_limits_default();
    c->limits.max_stop_sequences = 2;
    expect_error(c, "{\"model\":\"m\"," MSG_HI ",\"stop\":[\"a\",\"b\",\"c\"]}", K2A_ETOOBIG,
                 "stop[2]: more than 2 stop sequences");
    c->limits = k2a_convert_limits_default();
    c->limits.max_system_blocks = 1;
    expect_error(
        c,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"a\"},{\"role\":\"system\",\"content\":\"b\"}," MSG_HI
        "}",
        K2A_ETOOBIG, "messages[1].content: more than 1 system blocks");
}

static void test_limit_sizes(void **state)
{
    ctx_t *c = *state;
    c->limits.max_string_bytes = 8;
    expect_error(c, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"123456789\"}]}", K2A_ETOOBIG,
                 "messages[0].content: string longer than 8 bytes");
    c->limits = k2a_convert_limits_default();
    c->limits.max_json_value_bytes = 32;
    expect_error(c,
                 "{\"model\":\"m\"," MSG_HI
                 ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"a\",\"parameters\":{\"type\":"
                 "\"object\",\"properties\":{\"long_name\":{\"type\":\"string\"}}}}}]}",
                 K2A_ETOOBIG, "tools[0].function.parameters: JSON value larger than 32 bytes");
    expect_error(
        c,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"tool_calls\":[{\"id\":"
        "\"a\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"k\\\":"
        "\\\"0123456789012345678901234567890\\\"}\"}}]}]}",
        K2A_ETOOBIG, "messages[1].tool_calls[0].function.arguments: arguments larger than 32 bytes");
    /* the arena's own maximum */
    c->limits = k2a_convert_limits_default();
    c->arena.max = 4096;
    k2a_buf_t b;
    k2a_buf_init(&b, 0);
    k2a_buf_appendstr(&b, "{\"model\":\"m\",\"messages\":[");
    for (int i = 0; i < 200; ++i)
        k2a_buf_appendf(&b, "%s{\"role\":\"user\",\"content\":\"a\\nb\"}", i == 0 ? "" : ",");
    k2a_buf_appendstr(&b, "]}");
    assert_int_equal(decode(c, k2a_buf_cstr(&b)), K2A_ETOOBIG);
    assert_non_null(strstr(c->err.message, "memory budget of 4096 bytes"));
    k2a_buf_dispose(&b);
    c->arena.max = 0;
}

/* Every prefix of a valid body is an error (never a crash, never success), and the whole body decodes. */
static void test_every_prefix(void **state)
{
    ctx_t *c = *state;
    char *body = fixture_body("sdk-tool-7.json");
    size_t n = strlen(body);
    for (size_t i = 0; i < n; ++i) {
        k2a_arena_dispose(&c->arena);
        k2a_arena_init(&c->arena, 0);
        int r = k2a_openai_decode(body, i, &c->limits, &c->arena, &c->req, &c->err);
        assert_true(r < 0);
        assert_int_equal(c->err.code, r);
        assert_true(c->err.message[0] != '\0');
    }
    assert_int_equal(decode(c, body), 0);
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sdk_tool_5, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sdk_tool_7, setup, teardown),
        cmocka_unit_test_setup_teardown(test_system_developer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_parts_and_images, setup, teardown),
        cmocka_unit_test_setup_teardown(test_image_bmp_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_assistant_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parallel_tool_calls_one_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arguments_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_legacy_function_calling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tool_message_content_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tools_schema_cleaning, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tool_choice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parameters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reasoning_effort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_copy_and_escapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limit_depth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limit_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limit_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_prefix, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
