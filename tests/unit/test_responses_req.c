/*
 * The OpenAI Responses request decoder beyond the golden cases: what it keeps besides the IR (store, metadata, the input
 * items, previous_response_id...), a stored conversation decoded before the new input, and the errors (a wrong type, a
 * built-in tool, an unknown item, a missing call_id...) with their JSON paths; and the response store's bounds (count,
 * bytes, time to live), replacement and deletion.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <cmocka.h>
#include "convert/responses_req.h"
#include "core/errors.h"
#include "convert/responses_store.h"

typedef struct st_dec_t {
    k2a_arena_t arena;
    k2a_ir_request_t req;
    k2a_responses_extra_t x;
    k2a_convert_error_t err;
    int rc;
} dec_t;

static void decode_prior(dec_t *d, const char *body, const char *prior)
{
    k2a_arena_init(&d->arena, 0);
    d->rc = k2a_responses_decode_ex(body, strlen(body), prior, prior != NULL ? strlen(prior) : 0, NULL, &d->arena, &d->req, &d->x,
                                    &d->err);
}

static void decode(dec_t *d, const char *body)
{
    decode_prior(d, body, NULL);
}

static void done(dec_t *d)
{
    k2a_arena_dispose(&d->arena);
}

static void expect_error(const char *body, int code, const char *message)
{
    dec_t d;
    decode(&d, body);
    if (d.rc != code || strcmp(d.err.message, message) != 0)
        fail_msg("%s\n  got %s \"%s\"\n want %s \"%s\"", body, k2a_errname(d.rc), d.err.message, k2a_errname(code), message);
    done(&d);
}

static void test_extras(void **state)
{
    dec_t d;
    decode(&d, "{\"model\":\"m\", \"instructions\" :  \"Be \\u00e9 \\\"x\\\"\",\"input\":\"Hi \\\"there\\\"\",\"metadata\":{\"a\": "
               "[1, 2]},\"tools\":[{\"type\":\"function\","
               "\"name\":\"f\"}],\"tool_choice\":{\"type\":\"function\",\"name\":\"f\"},\"max_output_tokens\":77,"
               "\"parallel_tool_calls\":false,\"previous_response_id\":null,\"reasoning\":{\"effort\":\"high\"},\"text\":"
               "{\"format\":{\"type\":\"json_object\"}},\"stream\":true}");
    assert_int_equal(d.rc, 0);
    assert_true(d.x.store); /* OpenAI's default */
    assert_false(d.x.parallel_tool_calls);
    assert_true(k2a_str_eq_lit(d.x.metadata, "{\"a\": [1, 2]}"));
    /* the instructions are echoed as their literal, escapes and all */
    assert_true(k2a_str_eq_lit(d.x.instructions_json, "\"Be \\u00e9 \\\"x\\\"\""));
    assert_true(k2a_str_eq_lit(d.x.instructions, "Be \xc3\xa9 \"x\""));
    assert_true(k2a_str_eq_lit(d.x.input_items, "[{\"type\":\"message\",\"role\":\"user\",\"content\":\"Hi \\\"there\\\"\"}]"));
    /* the items one by one, as the store keeps them: a string input is one message */
    assert_int_equal(d.x.nitem_json, 1);
    assert_true(k2a_str_eq_lit(d.x.item_json[0], "{\"type\":\"message\",\"role\":\"user\",\"content\":\"Hi \\\"there\\\"\"}"));
    assert_true(k2a_str_eq_lit(d.x.tools_json, "[{\"type\":\"function\",\"name\":\"f\"}]"));
    assert_true(k2a_str_eq_lit(d.x.tool_choice, "{\"type\":\"function\",\"name\":\"f\"}"));
    assert_true(k2a_str_eq_lit(d.x.text_format, "json_object"));
    assert_int_equal(d.req.max_tokens, 77);
    assert_true(d.req.stream);
    assert_true(d.req.json_object);
    assert_int_equal(d.req.tool_choice, K2A_TOOL_CHOICE_TOOL);
    assert_int_equal(d.req.thinking.mode, K2A_THINKING_ENABLED);
    assert_int_equal(d.req.nmessages, 1);
    assert_true(k2a_str_eq_lit(d.req.messages[0].blocks[0].text, "Hi \"there\""));
    assert_int_equal(d.req.ntools, 1);
    assert_true(k2a_str_eq_lit(d.req.tools[0].input_schema, "{\"type\":\"object\",\"properties\":{}}"));
    done(&d);

    decode(&d, "{\"model\":\"m\",\"store\":false,\"input\":[{\"role\":\"user\",\"content\":\"x\"}]}");
    assert_int_equal(d.rc, 0);
    assert_false(d.x.store);
    assert_true(k2a_str_eq_lit(d.x.input_items, "[{\"role\":\"user\",\"content\":\"x\"}]"));
    done(&d);

    /* each item as sent, from its brace to its brace, whatever the spacing around it */
    decode(&d, "{\"model\":\"m\",\"input\": [ {\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"}\"}]} ,\n"
               "\t{\"role\" : \"assistant\", \"content\":\"y\"},{\"role\":\"user\",\"content\":\"z\"}  ]}");
    assert_int_equal(d.rc, 0);
    assert_int_equal(d.x.nitem_json, 3);
    assert_true(k2a_str_eq_lit(d.x.item_json[0], "{\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"}\"}]}"));
    assert_true(k2a_str_eq_lit(d.x.item_json[1], "{\"role\" : \"assistant\", \"content\":\"y\"}"));
    assert_true(k2a_str_eq_lit(d.x.item_json[2], "{\"role\":\"user\",\"content\":\"z\"}"));
    done(&d);
}

/* A stored conversation (previous_response_id) comes first; the new input continues it: a function_call left by the
 * previous answer and the function_call_output of the new request make one tool round. */
static void test_prior(void **state)
{
    dec_t d;
    decode_prior(
        &d,
        "{\"model\":\"m\",\"previous_response_id\":\"resp_1\",\"input\":[{\"type\":\"function_call_output\","
        "\"call_id\":\"c1\",\"output\":\"42\"}]}",
        "[{\"type\":\"message\",\"role\":\"user\",\"content\":\"What is 6*7?\"},{\"id\":\"fc_x\",\"type\":"
        "\"function_call\",\"status\":\"completed\",\"arguments\":\"{\\\"a\\\":6}\",\"call_id\":\"c1\",\"name\":\"mul\"}]");
    assert_int_equal(d.rc, 0);
    assert_true(k2a_str_eq_lit(d.x.previous_response_id, "resp_1"));
    assert_int_equal(d.req.nmessages, 3);
    assert_int_equal(d.req.messages[0].role, K2A_ROLE_USER);
    assert_int_equal(d.req.messages[1].role, K2A_ROLE_ASSISTANT);
    assert_int_equal(d.req.messages[1].blocks[0].kind, K2A_BLOCK_TOOL_USE);
    assert_true(k2a_str_eq_lit(d.req.messages[1].blocks[0].input, "{\"a\":6}"));
    assert_int_equal(d.req.messages[2].blocks[0].kind, K2A_BLOCK_TOOL_RESULT);
    assert_true(k2a_str_eq_lit(d.req.messages[2].blocks[0].tool_use_id, "c1"));
    /* the stored items first, then the new one: what the next stored response keeps */
    assert_int_equal(d.x.nitem_json, 3);
    assert_true(k2a_str_eq_lit(d.x.item_json[0], "{\"type\":\"message\",\"role\":\"user\",\"content\":\"What is 6*7?\"}"));
    assert_true(k2a_str_eq_lit(d.x.item_json[1],
                               "{\"id\":\"fc_x\",\"type\":\"function_call\",\"status\":\"completed\",\"arguments\":"
                               "\"{\\\"a\\\":6}\",\"call_id\":\"c1\",\"name\":\"mul\"}"));
    assert_true(k2a_str_eq_lit(d.x.item_json[2], "{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":\"42\"}"));
    done(&d);

    /* input may be left out when a previous response is named */
    decode_prior(&d, "{\"model\":\"m\",\"previous_response_id\":\"resp_1\"}", "[{\"role\":\"user\",\"content\":\"Hi\"}]");
    assert_int_equal(d.rc, 0);
    assert_int_equal(d.req.nmessages, 1);
    assert_true(k2a_str_eq_lit(d.x.input_items, "[]"));
    done(&d);

    /* an error in the stored part names it */
    decode_prior(&d, "{\"model\":\"m\",\"input\":\"x\"}", "[{\"type\":\"bogus\"}]");
    assert_int_equal(d.rc, K2A_EBAD_PARAM);
    assert_string_equal(d.err.message, "previous_response[0].type: item type 'bogus' is not supported (message, function_call, "
                                       "function_call_output, reasoning)");
    done(&d);
}

/* web_search and namespace tools are accepted and not offered to the model (the Codex CLI always declares them) */
static void test_ignored_tools(void **state)
{
    dec_t d;
    decode(&d, "{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"web_search\",\"external_web_access\":true},"
               "{\"type\":\"namespace\",\"name\":\"ns\",\"tools\":[{\"type\":\"function\",\"name\":\"g\"}]},"
               "{\"type\":\"function\",\"name\":\"f\"},{\"type\":\"web_search_preview\"}]}");
    assert_int_equal(d.rc, 0);
    assert_int_equal(d.req.ntools, 1);
    assert_true(k2a_str_eq_lit(d.req.tools[0].name, "f"));
    /* web_search is served (http/websearch.h), the model deciding; the namespace is dropped */
    assert_true(d.req.web_search.requested);
    assert_true(d.req.web_search.as_tool);
    done(&d);
    decode(&d, "{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":\"f\"}]}");
    assert_int_equal(d.rc, 0);
    assert_false(d.req.web_search.requested);
    done(&d);
    /* a web_search_call item of an earlier answer (a stored conversation, the Codex CLI's history) is accepted and skipped */
    decode(&d, "{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":\"q\"},{\"type\":\"web_search_call\",\"id\":"
               "\"ws_1\",\"status\":\"completed\",\"action\":{\"type\":\"search\",\"query\":\"q\",\"sources\":[{\"type\":"
               "\"url\",\"url\":\"https://e.com\"}]}},{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":"
               "\"output_text\",\"text\":\"a\"}]},{\"role\":\"user\",\"content\":\"more\"}]}");
    assert_int_equal(d.rc, 0);
    assert_int_equal(d.req.nmessages, 3);
    done(&d);
    /* tool_choice naming the search tool */
    decode(&d, "{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"web_search_preview\"}],\"tool_choice\":{\"type\":"
               "\"web_search_preview\"}}");
    assert_int_equal(d.rc, 0);
    assert_int_equal(d.req.tool_choice, K2A_TOOL_CHOICE_TOOL);
    assert_true(k2a_str_eq_lit(d.req.tool_choice_name, "web_search"));
    done(&d);
}

static void test_errors(void **state)
{
    expect_error("{\"model\":\"m\",\"input\":5}", K2A_EJSON_TYPE, "input: expected a string or an array of items, got a number");
    expect_error("{\"input\":\"x\"}", K2A_EMISSING_FIELD, "model: is required");
    expect_error("{\"model\":\"m\"}", K2A_EMISSING_FIELD, "input: is required");
    expect_error("{\"model\":\"m\",\"input\":[]}", K2A_EEMPTY_MESSAGES,
                 "input: must contain at least one user or assistant message");
    expect_error("{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"file_search\"}]}", K2A_EBAD_PARAM,
                 "tools[0].type: tool type 'file_search' is not supported (only function)");
    expect_error("{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"function\"}]}", K2A_EMISSING_FIELD,
                 "tools[0].name: is required");
    expect_error("{\"model\":\"m\",\"input\":[{\"type\":\"function_call\",\"name\":\"f\",\"arguments\":\"{}\"}]}",
                 K2A_EMISSING_FIELD, "input[0].call_id: is required");
    expect_error("{\"model\":\"m\",\"input\":[{\"type\":\"function_call_output\",\"call_id\":\"c\"}]}", K2A_EMISSING_FIELD,
                 "input[0].output: is required");
    expect_error("{\"model\":\"m\",\"input\":[{\"type\":\"item_reference\",\"id\":\"msg_1\"}]}", K2A_EBAD_PARAM,
                 "input[0].type: item_reference is not supported: send the items themselves or use previous_response_id");
    expect_error("{\"model\":\"m\",\"input\":[{\"role\":\"tool\",\"content\":\"x\"}]}", K2A_EBAD_PARAM,
                 "input[0].role: unknown role 'tool' (user, assistant, system or developer)");
    expect_error("{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_file\",\"file_id\":\"f\"}]}]}",
                 K2A_EBAD_PARAM,
                 "input[0].content[0].type: content part type 'input_file' is not supported (text and images only)");
    expect_error("{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_image\",\"file_id\":\"f\"}]}]}",
                 K2A_EIMAGE_URL,
                 "input[0].content[0].file_id: uploaded files are not supported (Kiro takes image bytes): send image_url as a "
                 "base64 data: URL");
    expect_error("{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_image\",\"image_url\":"
                 "\"https://x/y.png\"}]}]}",
                 K2A_EIMAGE_URL,
                 "input[0].content[0].image_url.url: remote image URLs are not supported (Kiro takes image bytes): send a base64 "
                 "data: URL");
    expect_error("{\"model\":\"m\",\"input\":\"x\",\"reasoning\":{\"effort\":\"huge\"}}", K2A_EBAD_PARAM,
                 "reasoning.effort: unsupported value 'huge' (none, minimal, low, medium, high or xhigh)");
    expect_error("{\"model\":\"m\",\"input\":\"x\",\"text\":{\"format\":{\"type\":\"yaml\"}}}", K2A_EBAD_PARAM,
                 "text.format.type: unsupported text.format type 'yaml' (text, json_object or json_schema)");
    expect_error("{\"model\":\"m\",\"input\":\"x\",\"tool_choice\":\"sometimes\"}", K2A_EBAD_PARAM,
                 "tool_choice: unsupported tool_choice 'sometimes' (expected auto, none or required)");
    expect_error("{\"model\":\"m\",\"input\":\"x\",\"tool_choice\":{\"type\":\"file_search\"}}", K2A_EBAD_PARAM,
                 "tool_choice.type: unsupported tool_choice type 'file_search' (expected function)");
    expect_error("{\"model\":\"m\",\"input\":\"x\",\"store\":\"yes\"}", K2A_EJSON_TYPE, "store: expected a boolean, got a string");
    expect_error("{\"model\":\"m\",\"input\":\"x\",\"max_output_tokens\":0}", K2A_EBAD_PARAM,
                 "max_output_tokens: must be at least 1");
    expect_error("{\"model\":\"m\",\"input\":\"x\",\"metadata\":[]}", K2A_EJSON_TYPE, "metadata: expected an object, got an array");
    expect_error("[1]", K2A_EJSON_TYPE, "the request body must be a JSON object");
    expect_error("{\"model\":\"m\",\"input\":\"x\"", K2A_EJSON_SYNTAX,
                 "input: malformed JSON near byte 24: parse error: premature EOF");
}

/* json_schema is served as a best effort: the schema goes into the instruction Chat Completions uses for it. */
static void test_json_schema_best_effort(void **state)
{
    dec_t d;
    decode(&d, "{\"model\":\"m\",\"input\":\"x\",\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"person\",\"schema\":"
               "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"string\"}}},\"strict\":true}}}");
    assert_int_equal(d.rc, 0);
    assert_true(d.req.json_object);
    assert_int_equal(d.req.nsystem, 1);
    assert_non_null(
        strstr(d.req.system[0].text.base, "(\"person\"):\n{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"string\"}}}"));
    done(&d);
}

/* Deep nesting and many items stop at the limits with clean errors. */
static void test_limits(void **state)
{
    k2a_convert_limits_t lim = k2a_convert_limits_default();
    lim.max_messages = 2;
    k2a_arena_t arena;
    k2a_arena_init(&arena, 0);
    k2a_ir_request_t req;
    k2a_responses_extra_t x;
    k2a_convert_error_t err;
    const char *body = "{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\"},"
                       "{\"role\":\"user\",\"content\":\"c\"}]}";
    assert_int_equal(k2a_responses_decode_ex(body, strlen(body), NULL, 0, &lim, &arena, &req, &x, &err), K2A_ETOOBIG);
    assert_string_equal(err.message, "input[2]: more than 2 items");
    k2a_arena_dispose(&arena);

    char deep[600];
    size_t n = (size_t)snprintf(deep, sizeof(deep), "{\"model\":\"m\",\"input\":\"x\",\"include\":");
    for (int i = 0; i < 200; ++i)
        deep[n++] = '[';
    deep[n] = '\0';
    k2a_arena_init(&arena, 0);
    int rc = k2a_responses_decode_ex(deep, n, NULL, 0, NULL, &arena, &req, &x, &err);
    if (rc != K2A_EJSON_DEPTH)
        fail_msg("%s: %s", k2a_errname(rc), err.message);
    k2a_arena_dispose(&arena);
}

/* ---------- the store ---------- */

static void test_store(void **state)
{
    k2a_responses_store_t *s = k2a_responses_store_new(3, 1000, 60);
    assert_non_null(s);
    k2a_buf_t r, i;
    k2a_buf_init(&r, 0);
    k2a_buf_init(&i, 0);
    assert_int_equal(k2a_responses_store_put(s, "resp_a", "{\"a\":1}", 7, "[1]", 3, 100), 0);
    assert_int_equal(k2a_responses_store_get(s, "resp_a", 6, 101, &r, &i), 0);
    assert_true(k2a_str_eq_lit(k2a_str(r.base, r.len), "{\"a\":1}"));
    assert_true(k2a_str_eq_lit(k2a_str(i.base, i.len), "[1]"));
    assert_int_equal(k2a_responses_store_get(s, "resp_b", 6, 101, &r, NULL), K2A_ENOTFOUND);
    /* a prefix of an id is not that id */
    assert_int_equal(k2a_responses_store_get(s, "resp_", 5, 101, &r, NULL), K2A_ENOTFOUND);
    /* count bound: the oldest goes */
    assert_int_equal(k2a_responses_store_put(s, "resp_b", "{}", 2, "[]", 2, 101), 0);
    assert_int_equal(k2a_responses_store_put(s, "resp_c", "{}", 2, "[]", 2, 102), 0);
    assert_int_equal(k2a_responses_store_put(s, "resp_d", "{}", 2, "[]", 2, 103), 0);
    size_t count, bytes;
    k2a_responses_store_stats(s, &count, &bytes);
    assert_int_equal(count, 3);
    assert_int_equal(k2a_responses_store_get(s, "resp_a", 6, 103, NULL, NULL), K2A_ENOTFOUND);
    assert_int_equal(k2a_responses_store_get(s, "resp_b", 6, 103, NULL, NULL), 0);
    /* replacing keeps one entry */
    assert_int_equal(k2a_responses_store_put(s, "resp_b", "{\"v\":2}", 7, "[]", 2, 104), 0);
    k2a_responses_store_stats(s, &count, &bytes);
    assert_int_equal(count, 3);
    k2a_buf_reset(&r);
    assert_int_equal(k2a_responses_store_get(s, "resp_b", 6, 104, &r, NULL), 0);
    assert_true(k2a_str_eq_lit(k2a_str(r.base, r.len), "{\"v\":2}"));
    /* byte bound: one big entry evicts as many as it needs; one larger than the cap is refused */
    char big[980];
    memset(big, 'x', sizeof(big));
    assert_int_equal(k2a_responses_store_put(s, "resp_big", big, sizeof(big), "[]", 2, 105), 0);
    k2a_responses_store_stats(s, &count, &bytes);
    assert_true(bytes <= 1000);
    assert_int_equal(count, 1);
    assert_int_equal(k2a_responses_store_put(s, "resp_huge", big, sizeof(big), big, sizeof(big), 105), K2A_ETOOBIG);
    /* time to live */
    assert_int_equal(k2a_responses_store_get(s, "resp_big", 8, 105 + 59, NULL, NULL), 0);
    assert_int_equal(k2a_responses_store_get(s, "resp_big", 8, 105 + 60, NULL, NULL), K2A_ENOTFOUND);
    k2a_responses_store_stats(s, &count, &bytes);
    assert_int_equal(count, 0);
    assert_int_equal(bytes, 0);
    /* delete */
    assert_int_equal(k2a_responses_store_put(s, "resp_e", "{}", 2, "[]", 2, 200), 0);
    assert_int_equal(k2a_responses_store_delete(s, "resp_e", 6), 0);
    assert_int_equal(k2a_responses_store_delete(s, "resp_e", 6), K2A_ENOTFOUND);
    k2a_buf_dispose(&r);
    k2a_buf_dispose(&i);
    k2a_responses_store_free(s);
}

/* A full store puts each entry into the memory of the one it evicted when the sizes are close, and allocates anew when
 * they are not: whatever path each put took, every entry still kept reads back exactly as it was put. */
static void test_store_reuse(void **state)
{
    (void)state;
    enum { CAP = 8, PUTS = 400 };
    k2a_responses_store_t *s = k2a_responses_store_new(CAP, 1 << 20, 60);
    assert_non_null(s);
    k2a_buf_t r = K2A_BUF_INIT(0), i = K2A_BUF_INIT(0);
    char id[32], resp[3000], items[6000];
    for (int n = 0; n < PUTS; ++n) {
        /* sizes that mostly stay close (reuse) and sometimes jump up or down (a new allocation) */
        size_t rlen = 16 + (size_t)((n * 37) % 200) + (n % 50 == 7 ? 2500 : 0);
        size_t ilen = 2 + (size_t)((n * 53) % 900) + (n % 40 == 3 ? 5000 : 0);
        memset(resp, 'a' + n % 26, rlen);
        memset(items, 'A' + n % 26, ilen);
        snprintf(id, sizeof(id), "resp_%d", n);
        k2a_str_t parts[2] = {k2a_str(items, ilen / 2), k2a_str(items + ilen / 2, ilen - ilen / 2)};
        assert_int_equal(k2a_responses_store_putv(s, id, &(k2a_str_t){resp, rlen}, 1, 0, parts, 2, 100 + n / 100), 0);
        size_t count, bytes;
        k2a_responses_store_stats(s, &count, &bytes);
        assert_true(count <= CAP);
        /* every entry kept, checked byte for byte */
        for (int m = n + 1 - CAP < 0 ? 0 : n + 1 - CAP; m <= n; ++m) {
            size_t mr = 16 + (size_t)((m * 37) % 200) + (m % 50 == 7 ? 2500 : 0);
            size_t mi = 2 + (size_t)((m * 53) % 900) + (m % 40 == 3 ? 5000 : 0);
            snprintf(id, sizeof(id), "resp_%d", m);
            k2a_buf_reset(&r);
            k2a_buf_reset(&i);
            assert_int_equal(k2a_responses_store_get(s, id, strlen(id), 100 + n / 100, &r, &i), 0);
            assert_int_equal(r.len, mr);
            assert_int_equal(i.len, mi);
            for (size_t k = 0; k < mr; ++k)
                assert_int_equal(r.base[k], 'a' + m % 26);
            for (size_t k = 0; k < mi; ++k)
                assert_int_equal(i.base[k], 'A' + m % 26);
        }
        if (n >= CAP) {
            snprintf(id, sizeof(id), "resp_%d", n - CAP);
            assert_int_equal(k2a_responses_store_get(s, id, strlen(id), 100 + n / 100, NULL, NULL), K2A_ENOTFOUND);
        }
    }
    k2a_buf_dispose(&r);
    k2a_buf_dispose(&i);
    k2a_responses_store_free(s);
}

/* An item of 1 KB or more is kept once however many entries hold it: the bytes count it once, each entry reads it back
 * in place, it lives while any entry holds it, and two long items that the store's key cannot tell apart (the same
 * length and the same bytes where it looks) are still two items. */
static void test_store_shares_long_items(void **state)
{
    (void)state;
    k2a_responses_store_t *s = k2a_responses_store_new(3, 1 << 20, 60);
    assert_non_null(s);
    char sys[3000], other[3000], small[100];
    memset(sys, 's', sizeof(sys));
    memcpy(other, sys, sizeof(other));
    other[1000] = 'o'; /* not where the key looks: the same key as sys, different bytes */
    memset(small, 'm', sizeof(small));
    size_t count, bytes, one;
    const k2a_str_t a[] = {K2A_STRLIT("["), k2a_str(sys, sizeof(sys)), K2A_STRLIT(","), k2a_str(small, 10), K2A_STRLIT("]")};
    assert_int_equal(k2a_responses_store_putv(s, "r1", &(k2a_str_t){"{}", 2}, 1, 0, a, 5, 10), 0);
    k2a_responses_store_stats(s, &count, &one);
    assert_int_equal(one, 2 + 2 + 3 + 10 + sizeof(sys));
    /* the same long item again, among other bytes: only the entry's own bytes are added */
    const k2a_str_t b[] = {K2A_STRLIT("["), k2a_str(small, 99), K2A_STRLIT(","), k2a_str(sys, sizeof(sys)), K2A_STRLIT("]")};
    assert_int_equal(k2a_responses_store_putv(s, "r2", &(k2a_str_t){"{\"x\":1}", 7}, 1, 0, b, 5, 11), 0);
    k2a_responses_store_stats(s, &count, &bytes);
    assert_int_equal(bytes, one + 2 + 7 + 3 + 99);
    /* the look-alike is kept apart, and so is an item that only begins the same */
    const k2a_str_t c[] = {k2a_str(other, sizeof(other)), k2a_str(sys, 2000)};
    assert_int_equal(k2a_responses_store_putv(s, "r3", &(k2a_str_t){"{}", 2}, 1, 0, c, 2, 12), 0);
    k2a_responses_store_stats(s, &count, &bytes);
    assert_int_equal(count, 3);
    assert_int_equal(bytes, one + 2 + 7 + 3 + 99 + 2 + 2 + sizeof(other) + 2000);
    k2a_buf_t r = K2A_BUF_INIT(0), i = K2A_BUF_INIT(0);
    struct {
        const char *id;
        const k2a_str_t *parts;
        size_t n;
    } want[] = {{"r1", a, 5}, {"r2", b, 5}, {"r3", c, 2}};
    for (size_t k = 0; k < 3; ++k) {
        k2a_buf_reset(&i);
        assert_int_equal(k2a_responses_store_get(s, want[k].id, 2, 13, NULL, &i), 0);
        size_t at = 0;
        for (size_t j = 0; j < want[k].n; ++j) {
            assert_true(at + want[k].parts[j].len <= i.len);
            assert_memory_equal(i.base + at, want[k].parts[j].base, want[k].parts[j].len);
            at += want[k].parts[j].len;
        }
        assert_int_equal(at, i.len);
    }
    /* r1 goes (the count bound): sys lives on in r2 */
    const k2a_str_t d[] = {K2A_STRLIT("[]")};
    assert_int_equal(k2a_responses_store_putv(s, "r4", &(k2a_str_t){"{}", 2}, 1, 0, d, 1, 14), 0);
    assert_int_equal(k2a_responses_store_get(s, "r1", 2, 14, NULL, NULL), K2A_ENOTFOUND);
    k2a_buf_reset(&i);
    assert_int_equal(k2a_responses_store_get(s, "r2", 2, 14, &r, &i), 0);
    assert_int_equal(i.len, 1 + 99 + 1 + sizeof(sys) + 1);
    assert_memory_equal(i.base + 101, sys, sizeof(sys));
    /* replacing r2 by itself keeps the item (held again before the old r2 lets go) */
    assert_int_equal(k2a_responses_store_putv(s, "r2", &(k2a_str_t){"{\"x\":1}", 7}, 1, 0, b, 5, 15), 0);
    k2a_buf_reset(&i);
    assert_int_equal(k2a_responses_store_get(s, "r2", 2, 15, NULL, &i), 0);
    assert_memory_equal(i.base + 101, sys, sizeof(sys));
    /* everything expires: nothing is left, not even the shared items */
    k2a_responses_store_expire(s, 100);
    k2a_responses_store_stats(s, &count, &bytes);
    assert_int_equal(count, 0);
    assert_int_equal(bytes, 0);
    /* the response object in parts: a long one (the echoed instructions) kept once across entries, and the output,
     * which the object and the conversation both hold (the same memory, of 64 bytes or more), once in the entry */
    k2a_responses_store_t *t = k2a_responses_store_new(10, 1 << 20, 60);
    assert_non_null(t);
    const char *out = "{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"The answer is 42.\"}]}";
    const k2a_str_t obj[] = {K2A_STRLIT("{\"instructions\":"), k2a_str(sys, sizeof(sys)), K2A_STRLIT(",\"output\":["),
                             k2a_str(out, strlen(out)), K2A_STRLIT("]}")};
    const k2a_str_t conv[] = {K2A_STRLIT("["), obj[3], K2A_STRLIT("]")};
    size_t own = 16 + 11 + strlen(out) + 2 + 2; /* the object's short parts and the conversation's brackets */
    assert_int_equal(k2a_responses_store_putv(t, "t1", obj, 5, 0, conv, 3, 10), 0);
    k2a_responses_store_stats(t, &count, &bytes);
    assert_int_equal(bytes, 2 + own + sizeof(sys));
    assert_int_equal(k2a_responses_store_putv(t, "t2", obj, 5, 0, conv, 3, 10), 0);
    k2a_responses_store_stats(t, &count, &bytes);
    assert_int_equal(bytes, 2 * (2 + own) + sizeof(sys));
    k2a_buf_reset(&r);
    k2a_buf_reset(&i);
    assert_int_equal(k2a_responses_store_get(t, "t2", 2, 10, &r, &i), 0);
    assert_int_equal(r.len, 16 + sizeof(sys) + 11 + strlen(out) + 2);
    assert_memory_equal(r.base, "{\"instructions\":", 16);
    assert_memory_equal(r.base + 16, sys, sizeof(sys));
    assert_memory_equal(r.base + 16 + sizeof(sys), ",\"output\":[", 11);
    assert_memory_equal(r.base + 16 + sizeof(sys) + 11, out, strlen(out));
    assert_memory_equal(r.base + r.len - 2, "]}", 2);
    assert_int_equal(i.len, strlen(out) + 2);
    assert_memory_equal(i.base, "[", 1);
    assert_memory_equal(i.base + 1, out, strlen(out));
    assert_memory_equal(i.base + 1 + strlen(out), "]", 1);
    k2a_responses_store_free(t);
    /* and the store is freed with shared items in it (LSan: nothing leaks) */
    assert_int_equal(k2a_responses_store_putv(s, "r5", &(k2a_str_t){"{}", 2}, 1, 0, a, 5, 200), 0);
    assert_int_equal(k2a_responses_store_putv(s, "r6", &(k2a_str_t){"{}", 2}, 1, 0, a, 5, 200), 0);
    k2a_buf_dispose(&r);
    k2a_buf_dispose(&i);
    k2a_responses_store_free(s);
}

/* Short parts of the response the caller marks (the fixed fields every response object of the same request settings
 * repeats) are kept once however many entries hold them, one shorter than the key's 48 sampled bytes included; the
 * same bytes unmarked are each entry's own; a get reads the object back byte for byte; the last entry to go frees them. */
static void test_store_shares_marked_parts(void **state)
{
    (void)state;
    k2a_responses_store_t *s = k2a_responses_store_new(10, 1 << 20, 60);
    assert_non_null(s);
    const char *fixed = ",\"status\":\"completed\",\"background\":false,\"model\":\"claude-sonnet-4-5\",\"output\":[";
    const char *tail = "],\"usage\":";
    assert_true(strlen(fixed) >= 48 && strlen(fixed) < K2A_RESPONSES_STORE_SHARE_MIN && strlen(tail) < 48);
    const uint32_t marked = 1u << 1 | 1u << 3;
    char head1[] = "{\"id\":\"u1\"", head2[] = "{\"id\":\"u2\"", out1[] = "\"a\"", out2[] = "\"bb\"";
    /* each part in memory of its own, as a request's would be: equal bytes, not the same memory */
    char f1[128], f2[128], t1[16], t2[16];
    strcpy(f1, fixed), strcpy(f2, fixed), strcpy(t1, tail), strcpy(t2, tail);
    const k2a_str_t o1[] = {k2a_str(head1, strlen(head1)), k2a_str(f1, strlen(f1)), k2a_str(out1, strlen(out1)),
                            k2a_str(t1, strlen(t1)), K2A_STRLIT("{}}")};
    const k2a_str_t o2[] = {k2a_str(head2, strlen(head2)), k2a_str(f2, strlen(f2)), k2a_str(out2, strlen(out2)),
                            k2a_str(t2, strlen(t2)), K2A_STRLIT("{}}")};
    const k2a_str_t items[] = {K2A_STRLIT("[]")};
    size_t count, bytes, shared = strlen(fixed) + strlen(tail);
    size_t own1 = 2 + strlen(head1) + strlen(out1) + 3 + 2, own2 = 2 + strlen(head2) + strlen(out2) + 3 + 2;
    assert_int_equal(k2a_responses_store_putv(s, "u1", o1, 5, marked, items, 1, 10), 0);
    k2a_responses_store_stats(s, &count, &bytes);
    assert_int_equal(bytes, own1 + shared);
    assert_int_equal(k2a_responses_store_putv(s, "u2", o2, 5, marked, items, 1, 10), 0);
    k2a_responses_store_stats(s, &count, &bytes);
    assert_int_equal(bytes, own1 + own2 + shared);
    /* unmarked, the same bytes are the entry's own */
    assert_int_equal(k2a_responses_store_putv(s, "u3", o1, 5, 0, items, 1, 10), 0);
    k2a_responses_store_stats(s, &count, &bytes);
    assert_int_equal(bytes, 2 * own1 + own2 + 2 * shared);
    k2a_buf_t r = K2A_BUF_INIT(0), i = K2A_BUF_INIT(0);
    for (int n = 0; n < 3; ++n) {
        const k2a_str_t *o = n == 1 ? o2 : o1;
        k2a_buf_reset(&r);
        k2a_buf_reset(&i);
        assert_int_equal(k2a_responses_store_get(s, n == 0 ? "u1" : n == 1 ? "u2" : "u3", 2, 10, &r, &i), 0);
        size_t at = 0;
        for (size_t k = 0; k < 5; ++k) {
            assert_true(at + o[k].len <= r.len);
            assert_memory_equal(r.base + at, o[k].base, o[k].len);
            at += o[k].len;
        }
        assert_int_equal(at, r.len);
        assert_int_equal(i.len, 2);
        assert_memory_equal(i.base, "[]", 2);
    }
    /* the marked parts stay while an entry holds them, and go with the last */
    assert_int_equal(k2a_responses_store_delete(s, "u1", 2), 0);
    k2a_responses_store_stats(s, &count, &bytes);
    assert_int_equal(bytes, own1 + own2 + 2 * shared);
    assert_int_equal(k2a_responses_store_delete(s, "u2", 2), 0);
    assert_int_equal(k2a_responses_store_delete(s, "u3", 2), 0);
    k2a_responses_store_stats(s, &count, &bytes);
    assert_int_equal(count, 0);
    assert_int_equal(bytes, 0);
    k2a_buf_dispose(&r);
    k2a_buf_dispose(&i);
    k2a_responses_store_free(s);
}

/* The store's per-thread parts: what one thread put, another finds and deletes; the bounds hold over all parts (a
 * thread whose part is empty evicts the others' oldest); a put expires what an idle thread's part let age. */
struct part_job {
    k2a_responses_store_t *s;
    const char *prefix;
    int n;
    int64_t at;
    bool long_items; /* each entry also holds long items: one every thread shares, one of its own every 7th put */
};

static char long_item[2 * K2A_RESPONSES_STORE_SHARE_MIN];

static void *put_many(void *arg)
{
    struct part_job *j = arg;
    char id[48], own[K2A_RESPONSES_STORE_SHARE_MIN + 16];
    for (int n = 0; n < j->n; ++n) {
        snprintf(id, sizeof(id), "%s%d", j->prefix, n);
        if (!j->long_items) {
            if (k2a_responses_store_put(j->s, id, "{}", 2, "[]", 2, j->at) != 0)
                return (void *)1;
            continue;
        }
        memset(own, 'a' + n % 7, sizeof(own));
        k2a_str_t resp = K2A_STRLIT("{}"), items[] = {K2A_STRLIT("["), k2a_str(long_item, sizeof(long_item)), K2A_STRLIT(","),
                                                      k2a_str(own, sizeof(own)), K2A_STRLIT("]")};
        if (k2a_responses_store_putv(j->s, id, &resp, 1, 0, items, 5, j->at) != 0)
            return (void *)1;
        /* what this thread just put reads back whole (another thread may already have evicted it) */
        k2a_buf_t got = K2A_BUF_INIT(0);
        int r = k2a_responses_store_get(j->s, id, strlen(id), j->at, NULL, &got);
        bool ok = r == K2A_ENOTFOUND || (r == 0 && got.len == sizeof(long_item) + sizeof(own) + 3 &&
                                         memcmp(got.base + 1, long_item, sizeof(long_item)) == 0 &&
                                         memcmp(got.base + 2 + sizeof(long_item), own, sizeof(own)) == 0);
        k2a_buf_dispose(&got);
        if (!ok)
            return (void *)1;
    }
    return NULL;
}

static void run_in_thread(struct part_job *j)
{
    pthread_t t;
    void *ret = (void *)1;
    assert_int_equal(pthread_create(&t, NULL, put_many, j), 0);
    assert_int_equal(pthread_join(t, &ret), 0);
    assert_null(ret);
}

static void test_store_threads(void **state)
{
    (void)state;
    memset(long_item, 'L', sizeof(long_item));
    k2a_responses_store_t *s = k2a_responses_store_new(10, 1 << 20, 60);
    assert_non_null(s);
    size_t count, bytes;
    /* thread A keeps 10 (the cap), then thread B's 4 evict A's 4 oldest: B's part was empty */
    struct part_job a = {s, "a", 10, 100, false}, b = {s, "b", 4, 101, false};
    run_in_thread(&a);
    run_in_thread(&b);
    k2a_responses_store_stats(s, &count, &bytes);
    assert_int_equal(count, 10);
    char id[48];
    for (int n = 0; n < 10; ++n) {
        snprintf(id, sizeof(id), "a%d", n);
        assert_int_equal(k2a_responses_store_get(s, id, strlen(id), 102, NULL, NULL), n < 4 ? K2A_ENOTFOUND : 0);
    }
    for (int n = 0; n < 4; ++n) { /* found and deleted from this (third) thread */
        snprintf(id, sizeof(id), "b%d", n);
        assert_int_equal(k2a_responses_store_get(s, id, strlen(id), 102, NULL, NULL), 0);
    }
    assert_int_equal(k2a_responses_store_delete(s, "a5", 2), 0);
    assert_int_equal(k2a_responses_store_get(s, "a5", 2, 102, NULL, NULL), K2A_ENOTFOUND);
    /* a put 60 s later, from yet another thread, drops every other part's expired entries */
    struct part_job c = {s, "c", 1, 161, false};
    run_in_thread(&c);
    k2a_responses_store_stats(s, &count, &bytes);
    assert_int_equal(count, 1);
    assert_int_equal(bytes, strlen("c0") + 4);
    /* many threads at once: the cap holds and every thread's last entry is there */
    struct part_job many[6];
    pthread_t t[6];
    static const char *prefixes[6] = {"p0_", "p1_", "p2_", "p3_", "p4_", "p5_"};
    for (int i = 0; i < 6; ++i) {
        many[i] = (struct part_job){s, prefixes[i], 2000, 200, i % 2 == 0};
        assert_int_equal(pthread_create(&t[i], NULL, put_many, &many[i]), 0);
    }
    for (int i = 0; i < 6; ++i) {
        void *ret = (void *)1;
        assert_int_equal(pthread_join(t[i], &ret), 0);
        assert_null(ret);
    }
    k2a_responses_store_stats(s, &count, &bytes);
    assert_true(count <= 10);
    /* every shared item is let go when its last entry goes: nothing is counted once all have expired */
    k2a_responses_store_expire(s, 1000);
    k2a_responses_store_stats(s, &count, &bytes);
    assert_int_equal(count, 0);
    assert_int_equal(bytes, 0);
    k2a_responses_store_free(s);
}

/* Entries are kept per client key: the same response id under two owners is two keys, and ids that could forge one
 * (a '/', empty, too long) have none. */
static void test_store_key(void **state)
{
    (void)state;
    char a[K2A_RESPONSES_STORE_KEY_MAX + 1], b[K2A_RESPONSES_STORE_KEY_MAX + 1];
    size_t la = k2a_responses_store_key(a, "0123456789abcdef", "resp_1", 6);
    size_t lb = k2a_responses_store_key(b, NULL, "resp_1", 6);
    assert_int_equal(la, 23);
    assert_string_equal(a, "0123456789abcdef/resp_1");
    assert_int_equal(lb, 7);
    assert_string_equal(b, "/resp_1");
    assert_int_equal(k2a_responses_store_key(a, "x", "a/b", 3), 0);
    assert_int_equal(k2a_responses_store_key(a, "x", "", 0), 0);
    char longid[K2A_RESPONSES_STORE_ID_MAX + 2];
    memset(longid, 'r', sizeof(longid));
    assert_int_equal(k2a_responses_store_key(a, "x", longid, sizeof(longid)), 0);
    assert_int_equal(k2a_responses_store_key(a, "x", longid, K2A_RESPONSES_STORE_ID_MAX), K2A_RESPONSES_STORE_ID_MAX + 2);
    k2a_responses_store_t *s = k2a_responses_store_new(10, 1 << 20, 60);
    assert_non_null(s);
    la = k2a_responses_store_key(a, "aaaa", "resp_x", 6);
    lb = k2a_responses_store_key(b, "bbbb", "resp_x", 6);
    assert_int_equal(k2a_responses_store_put(s, a, "{}", 2, "[]", 2, 1), 0);
    assert_int_equal(k2a_responses_store_get(s, a, la, 2, NULL, NULL), 0);
    assert_int_equal(k2a_responses_store_get(s, b, lb, 2, NULL, NULL), K2A_ENOTFOUND);
    k2a_responses_store_free(s);
}

/* A second tier (the Redis one's interface) seen through a fake: every put reaches it as "<len>\n<response><items>", the
 * items given in parts are stored as their concatenation, and a delete counts as found when either tier held the id. */
static struct {
    char put_key[64], put_value[256];
    int puts, dels;
} fake;

static void fake_put(void *ctx, const char *key, size_t klen, const char *value, size_t vlen, int64_t ttl_s)
{
    (void)ctx, (void)ttl_s;
    snprintf(fake.put_key, sizeof(fake.put_key), "%.*s", (int)klen, key);
    snprintf(fake.put_value, sizeof(fake.put_value), "%.*s", (int)vlen, value);
    ++fake.puts;
}

static int fake_get(void *ctx, const char *key, size_t klen, size_t max, k2a_buf_t *out)
{
    (void)ctx, (void)key, (void)klen, (void)max, (void)out;
    return K2A_ENOTFOUND;
}

static int fake_del(void *ctx, const char *key, size_t klen)
{
    (void)ctx;
    ++fake.dels;
    return klen == 11 && memcmp(key, "remote_only", 11) == 0 ? 0 : K2A_ENOTFOUND;
}

static void test_store_parts_and_remote_delete(void **state)
{
    (void)state;
    k2a_responses_store_t *s = k2a_responses_store_new(100, 1 << 20, 60);
    assert_non_null(s);
    memset(&fake, 0, sizeof(fake));
    k2a_responses_remote_t remote = {.ctx = NULL, .put = fake_put, .get = fake_get, .del = fake_del};
    k2a_responses_store_set_remote(&remote);
    const k2a_str_t parts[] = {K2A_STRLIT("["), K2A_STRLIT("1,2"), K2A_STRLIT(","), K2A_STR_NULL, K2A_STRLIT("3]")};
    assert_int_equal(k2a_responses_store_putv(s, "resp_m", &(k2a_str_t){"{\"m\":1}", 7}, 1, 0, parts, 5, 10), 0);
    assert_int_equal(fake.puts, 1);
    assert_string_equal(fake.put_key, "resp_m");
    assert_string_equal(fake.put_value, "7\n{\"m\":1}[1,2,3]");
    k2a_buf_t r, i;
    k2a_buf_init(&r, 0);
    k2a_buf_init(&i, 0);
    assert_int_equal(k2a_responses_store_get(s, "resp_m", 6, 11, &r, &i), 0);
    assert_true(k2a_str_eq_lit(k2a_str(r.base, r.len), "{\"m\":1}"));
    assert_true(k2a_str_eq_lit(k2a_str(i.base, i.len), "[1,2,3]"));
    /* held here only, in the second tier only, nowhere */
    assert_int_equal(k2a_responses_store_delete(s, "resp_m", 6), 0);
    assert_int_equal(k2a_responses_store_get(s, "resp_m", 6, 11, NULL, NULL), K2A_ENOTFOUND);
    assert_int_equal(k2a_responses_store_delete(s, "remote_only", 11), 0);
    assert_int_equal(k2a_responses_store_delete(s, "resp_m", 6), K2A_ENOTFOUND);
    assert_int_equal(fake.dels, 3);
    k2a_responses_store_set_remote(NULL);
    /* many ids in few buckets: each found, each deleted once */
    char id[32];
    for (int n = 0; n < 90; ++n) {
        snprintf(id, sizeof(id), "owner/resp_%d", n);
        assert_int_equal(k2a_responses_store_put(s, id, "{}", 2, "[]", 2, 20), 0);
    }
    for (int n = 0; n < 90; ++n) {
        snprintf(id, sizeof(id), "owner/resp_%d", n);
        assert_int_equal(k2a_responses_store_get(s, id, strlen(id), 21, NULL, NULL), 0);
        if (n % 2 == 0)
            assert_int_equal(k2a_responses_store_delete(s, id, strlen(id)), 0);
    }
    for (int n = 0; n < 90; ++n) {
        snprintf(id, sizeof(id), "owner/resp_%d", n);
        assert_int_equal(k2a_responses_store_get(s, id, strlen(id), 22, NULL, NULL), n % 2 == 0 ? K2A_ENOTFOUND : 0);
    }
    size_t count, bytes;
    k2a_responses_store_stats(s, &count, &bytes);
    assert_int_equal(count, 45);
    k2a_buf_dispose(&r);
    k2a_buf_dispose(&i);
    k2a_responses_store_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extras),
        cmocka_unit_test(test_prior),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_ignored_tools),
        cmocka_unit_test(test_json_schema_best_effort),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_store),
        cmocka_unit_test(test_store_key),
        cmocka_unit_test(test_store_threads),
        cmocka_unit_test(test_store_reuse),
        cmocka_unit_test(test_store_shares_long_items),
        cmocka_unit_test(test_store_shares_marked_parts),
        cmocka_unit_test(test_store_parts_and_remote_delete),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
