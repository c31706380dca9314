/*
 * Web search conversions (src/convert/web_search.c): the JSON-RPC body (id format, query escaped and cut), the MCP answer
 * parser on the documented shape, on JSON-RPC and tool errors, and on hostile input (not JSON, wrong types, nesting,
 * oversized fields and too many results: bounded, never more than the caps), the query of Claude Code's sub-request,
 * the page_age date and the result renderings.
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
#include "convert/anthropic_resp.h"
#include "convert/web_search.h"
#include "core/errors.h"

static void fixed_random(void *ctx, void *buf, size_t len)
{
    (void)ctx;
    memset(buf, 7, len);
}

static const char *inner_doc =
    "{\"results\":[{\"title\":\"First\",\"url\":\"https://a.example/1\",\"snippet\":\"one\",\"publishedDate\":1767312000000,"
    "\"id\":\"x\",\"domain\":\"a.example\",\"maxVerbatimWordLimit\":30,\"publicDomain\":false},"
    "{\"title\":\"Second\",\"url\":\"https://b.example/"
    "2\",\"snippet\":\"two\"}],\"totalResults\":2,\"query\":\"q\",\"error\":null}";

/* wraps an inner document as result.content[0].text */
static char *wrap(const char *inner)
{
    size_t n = strlen(inner);
    char *out = malloc(n * 2 + 200);
    char *p =
        out +
        sprintf(out, "{\"id\":\"1\",\"jsonrpc\":\"2.0\",\"result\":{\"isError\":false,\"content\":[{\"type\":\"text\",\"text\":\"");
    for (size_t i = 0; i < n; ++i) {
        if (inner[i] == '"' || inner[i] == '\\')
            *p++ = '\\';
        *p++ = inner[i];
    }
    strcpy(p, "\"}]}}");
    return out;
}

static int parse(const char *body, k2a_ws_results_t *res, char *err, size_t errsz)
{
    k2a_arena_t arena;
    k2a_arena_init(&arena, 0);
    int r = k2a_ws_parse(body, strlen(body), &arena, res, err, errsz);
    /* the strings live in the arena: check them before it goes */
    for (size_t i = 0; i < res->n; ++i) {
        assert_true(res->items[i].title.len <= K2A_WS_MAX_TITLE);
        assert_true(res->items[i].url.len <= K2A_WS_MAX_URL && res->items[i].url.len > 0);
        assert_true(res->items[i].snippet.len <= K2A_WS_MAX_SNIPPET);
    }
    k2a_arena_dispose(&arena);
    return r;
}

static void test_rpc_body(void **state)
{
    (void)state;
    k2a_buf_t b = K2A_BUF_INIT(0);
    assert_int_equal(k2a_ws_rpc_body(&b, K2A_STRLIT("say \"hi\"\n"), 1767225600123LL, fixed_random, NULL), 0);
    char errbuf[64];
    char *copy = strndup(b.base, b.len);
    yajl_val doc = yajl_tree_parse(copy, errbuf, sizeof(errbuf));
    assert_non_null(doc);
    const char *pid[] = {"id", NULL}, *pm[] = {"method", NULL}, *pv[] = {"jsonrpc", NULL}, *pn[] = {"params", "name", NULL},
               *pq[] = {"params", "arguments", "query", NULL};
    const char *id = YAJL_GET_STRING(yajl_tree_get(doc, pid, yajl_t_string));
    assert_non_null(id);
    /* web_search_tooluse_<22 alnum>_<unix ms>_<8 lower-alnum> */
    assert_int_equal(strncmp(id, "web_search_tooluse_", 19), 0);
    assert_int_equal(strlen(id), 19 + 22 + 1 + 13 + 1 + 8);
    assert_int_equal(id[19 + 22], '_');
    assert_memory_equal(id + 19 + 23, "1767225600123_", 14);
    for (int i = 0; i < 8; ++i)
        assert_true((id[19 + 37 + i] >= 'a' && id[19 + 37 + i] <= 'z') || (id[19 + 37 + i] >= '0' && id[19 + 37 + i] <= '9'));
    assert_string_equal(YAJL_GET_STRING(yajl_tree_get(doc, pm, yajl_t_string)), "tools/call");
    assert_string_equal(YAJL_GET_STRING(yajl_tree_get(doc, pv, yajl_t_string)), "2.0");
    assert_string_equal(YAJL_GET_STRING(yajl_tree_get(doc, pn, yajl_t_string)), "web_search");
    assert_string_equal(YAJL_GET_STRING(yajl_tree_get(doc, pq, yajl_t_string)), "say \"hi\"\n");
    yajl_tree_free(doc);
    free(copy);
    /* a long query is cut at K2A_WS_MAX_QUERY bytes, never inside a UTF-8 sequence */
    char big[3000];
    for (size_t i = 0; i + 1 < sizeof(big); i += 2)
        memcpy(big + i, "\xc3\xa9", 2);
    k2a_buf_reset(&b);
    assert_int_equal(k2a_ws_rpc_body(&b, k2a_str(big, sizeof(big) - 1), 1, fixed_random, NULL), 0);
    copy = strndup(b.base, b.len);
    doc = yajl_tree_parse(copy, errbuf, sizeof(errbuf));
    assert_non_null(doc);
    const char *q = YAJL_GET_STRING(yajl_tree_get(doc, pq, yajl_t_string));
    assert_true(strlen(q) <= K2A_WS_MAX_QUERY && strlen(q) % 2 == 0);
    yajl_tree_free(doc);
    free(copy);
    k2a_buf_dispose(&b);
}

static void test_parse_documented(void **state)
{
    (void)state;
    char *body = wrap(inner_doc);
    k2a_ws_results_t res;
    char err[160];
    k2a_arena_t arena;
    k2a_arena_init(&arena, 0);
    assert_int_equal(k2a_ws_parse(body, strlen(body), &arena, &res, err, sizeof(err)), 0);
    assert_int_equal(res.n, 2);
    assert_memory_equal(res.items[0].title.base, "First", 5);
    assert_memory_equal(res.items[0].url.base, "https://a.example/1", 19);
    assert_memory_equal(res.items[0].snippet.base, "one", 3);
    assert_true(res.items[0].published_ms == 1767312000000LL);
    assert_true(res.items[1].published_ms == 0);
    /* renderings */
    k2a_buf_t out = K2A_BUF_INIT(0);
    assert_int_equal(k2a_ws_results_json(&out, &res), 0);
    assert_non_null(k2a_buf_cstr(&out));
    assert_non_null(strstr(out.base, "{\"type\":\"web_search_result\",\"title\":\"First\",\"url\":\"https://a.example/1\","
                                     "\"encrypted_content\":\"one\",\"page_age\":\"January 2, 2026\"}"));
    assert_non_null(strstr(out.base, "\"page_age\":null}"));
    k2a_buf_reset(&out);
    assert_int_equal(k2a_ws_context_text(&out, K2A_STRLIT("q"), &res, NULL), 0);
    assert_non_null(k2a_buf_cstr(&out));
    assert_non_null(strstr(out.base, "[1] First\nURL: https://a.example/1\nPublished: January 2, 2026\none\n"));
    k2a_buf_reset(&out);
    res.n = 0;
    assert_int_equal(k2a_ws_context_text(&out, K2A_STRLIT("q"), &res, "MCP error -32603"), 0);
    assert_non_null(k2a_buf_cstr(&out));
    assert_non_null(strstr(out.base, "The web search failed (MCP error -32603)"));
    k2a_buf_dispose(&out);
    k2a_arena_dispose(&arena);
    free(body);
}

static void test_parse_errors(void **state)
{
    (void)state;
    k2a_ws_results_t res;
    char err[160];
    assert_int_equal(
        parse("{\"id\":\"1\",\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32603,\"message\":\"boom\"}}", &res, err, sizeof(err)),
        K2A_EUPSTREAM_EXCEPTION);
    assert_string_equal(err, "MCP error -32603");
    assert_int_equal(parse("{\"result\":{\"isError\":true,\"content\":[]}}", &res, err, sizeof(err)), K2A_EUPSTREAM_EXCEPTION);
    assert_int_equal(parse("{\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"not json\"}]}}", &res, err, sizeof(err)),
                     K2A_EUPSTREAM_EVENT);
    assert_int_equal(parse("{}", &res, err, sizeof(err)), K2A_EUPSTREAM_EVENT);
    assert_int_equal(parse("[1,2]", &res, err, sizeof(err)), K2A_EUPSTREAM_EVENT);
    assert_int_equal(parse("<html>", &res, err, sizeof(err)), K2A_EUPSTREAM_EVENT);
    assert_int_equal(parse("", &res, err, sizeof(err)), K2A_EUPSTREAM_EVENT);
    char *body = wrap("{\"results\":[],\"error\":{\"message\":\"backend\"}}");
    assert_int_equal(parse(body, &res, err, sizeof(err)), K2A_EUPSTREAM_EXCEPTION);
    free(body);
    /* no result is no error */
    body = wrap("{\"results\":[],\"totalResults\":0,\"error\":null}");
    assert_int_equal(parse(body, &res, err, sizeof(err)), 0);
    assert_int_equal(res.n, 0);
    free(body);
}

static void test_parse_hostile(void **state)
{
    (void)state;
    k2a_ws_results_t res;
    char err[160];
    /* wrong types, missing URLs: skipped; a missing title falls back to the URL */
    char *body = wrap("{\"results\":[1,\"x\",null,{\"title\":5,\"url\":7},{\"url\":\"\"},{\"url\":\"https://ok.example\"},"
                      "{\"title\":\"t\",\"url\":\"https://t.example\",\"snippet\":[1],\"publishedDate\":\"soon\"}]}");
    k2a_arena_t arena;
    k2a_arena_init(&arena, 0);
    assert_int_equal(k2a_ws_parse(body, strlen(body), &arena, &res, err, sizeof(err)), 0);
    assert_int_equal(res.n, 2);
    assert_memory_equal(res.items[0].title.base, "https://ok.example", 18);
    assert_int_equal(res.items[1].snippet.len, 0);
    assert_true(res.items[1].published_ms == 0);
    k2a_arena_dispose(&arena);
    free(body);
    /* oversized fields are cut, an oversized URL drops its result, more than K2A_WS_MAX_RESULTS are not kept */
    size_t big = 6000;
    k2a_buf_t in = K2A_BUF_INIT(0);
    k2a_buf_appendstr(&in, "{\"results\":[");
    for (int i = 0; i < 25; ++i) {
        k2a_buf_appendf(&in, "%s{\"title\":\"", i ? "," : "");
        for (size_t j = 0; j < big; ++j)
            k2a_buf_appendstr(&in, i % 2 ? "\\u00e9" : "t");
        k2a_buf_appendstr(&in, "\",\"url\":\"https://x.example/");
        if (i == 0)
            for (size_t j = 0; j < big; ++j)
                k2a_buf_appendstr(&in, "u");
        k2a_buf_appendstr(&in, "\",\"snippet\":\"");
        for (size_t j = 0; j < big; ++j)
            k2a_buf_appendstr(&in, "s");
        k2a_buf_appendstr(&in, "\"}");
    }
    k2a_buf_appendstr(&in, "]}");
    body = wrap(in.base);
    assert_int_equal(parse(body, &res, err, sizeof(err)), 0);
    assert_int_equal(res.n, K2A_WS_MAX_RESULTS);
    free(body);
    k2a_buf_dispose(&in);
    /* deep nesting: refused or parsed, never a crash */
    k2a_buf_t deep = K2A_BUF_INIT(0);
    for (int i = 0; i < 5000; ++i)
        k2a_buf_appendstr(&deep, "[");
    body = wrap(deep.base);
    int r = parse(body, &res, err, sizeof(err));
    assert_true(r == K2A_EUPSTREAM_EVENT || r == 0);
    assert_int_equal(res.n, 0);
    free(body);
    k2a_buf_dispose(&deep);
}

static void test_query_and_dates(void **state)
{
    (void)state;
    k2a_ir_block_t b = {.kind = K2A_BLOCK_TEXT, .text = K2A_STRLIT("Perform a web search for the query:  kiro news \n")};
    k2a_ir_message_t m = {K2A_ROLE_USER, &b, 1};
    k2a_ir_request_t ir = {0};
    ir.messages = &m;
    ir.nmessages = 1;
    k2a_str_t q = k2a_ws_query_from_ir(&ir);
    assert_int_equal(q.len, 9);
    assert_memory_equal(q.base, "kiro news", 9);
    b.text = K2A_STRLIT("plain question");
    q = k2a_ws_query_from_ir(&ir);
    assert_memory_equal(q.base, "plain question", 14);
    b.text = K2A_STRLIT("   ");
    assert_null(k2a_ws_query_from_ir(&ir).base);
    char d[48];
    k2a_ws_page_age(1767225600000LL, d, sizeof(d));
    assert_string_equal(d, "January 1, 2026");
    k2a_ws_page_age(0, d, sizeof(d));
    assert_string_equal(d, "");
    char id[K2A_WS_ID_LEN + 1];
    k2a_ws_tool_id(id, fixed_random, NULL);
    assert_string_equal(id, "srvtoolu_07070707070707070707070707070707");
}

/* The aggregate of a multi-turn answer: raw search blocks between the model's, and a failed attempt forgotten. */
static void test_msg_raw_and_truncate(void **state)
{
    (void)state;
    k2a_anthropic_msg_t m;
    k2a_anthropic_msg_init(&m, K2A_STRLIT("claude-x"), fixed_random, NULL, 0);
    k2a_ir_event_t ev = {.type = K2A_EV_MESSAGE_START};
    assert_int_equal(k2a_anthropic_msg_on_event(&m, &ev), 0);
    assert_int_equal(k2a_anthropic_msg_add_raw(&m, "{\"type\":\"server_tool_use\",\"id\":\"s\"}", 35), 0);
    assert_int_equal(k2a_anthropic_msg_add_raw(&m, "{\"type\":\"web_search_tool_result\"}", 33), 0);
    /* a failed attempt: one text block, then forgotten */
    ev = (k2a_ir_event_t){.type = K2A_EV_BLOCK_START, .index = 2, .block = K2A_BLOCK_TEXT};
    assert_int_equal(k2a_anthropic_msg_on_event(&m, &ev), 0);
    ev = (k2a_ir_event_t){.type = K2A_EV_DELTA, .index = 2, .block = K2A_BLOCK_TEXT, .text = K2A_STRLIT("lost")};
    assert_int_equal(k2a_anthropic_msg_on_event(&m, &ev), 0);
    k2a_anthropic_msg_truncate(&m, 2);
    ev = (k2a_ir_event_t){.type = K2A_EV_BLOCK_START, .index = 2, .block = K2A_BLOCK_TEXT};
    assert_int_equal(k2a_anthropic_msg_on_event(&m, &ev), 0);
    ev = (k2a_ir_event_t){.type = K2A_EV_DELTA, .index = 2, .block = K2A_BLOCK_TEXT, .text = K2A_STRLIT("kept")};
    assert_int_equal(k2a_anthropic_msg_on_event(&m, &ev), 0);
    ev = (k2a_ir_event_t){.type = K2A_EV_BLOCK_STOP, .index = 2};
    assert_int_equal(k2a_anthropic_msg_on_event(&m, &ev), 0);
    ev = (k2a_ir_event_t){.type = K2A_EV_STOP, .stop_reason = K2A_STOP_END_TURN};
    ev.usage.web_search_requests = 1;
    assert_int_equal(k2a_anthropic_msg_on_event(&m, &ev), 0);
    k2a_buf_t out = K2A_BUF_INIT(0);
    assert_int_equal(k2a_anthropic_msg_render(&m, &out), 0);
    assert_non_null(k2a_buf_cstr(&out));
    assert_non_null(strstr(out.base,
                           "\"content\":[{\"type\":\"server_tool_use\",\"id\":\"s\"},{\"type\":\"web_search_tool_result\"},"
                           "{\"type\":\"text\",\"text\":\"kept\"}]"));
    assert_null(strstr(out.base, "lost"));
    assert_non_null(strstr(out.base, "\"server_tool_use\":{\"web_search_requests\":1}"));
    k2a_buf_dispose(&out);
    k2a_anthropic_msg_dispose(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rpc_body),      cmocka_unit_test(test_parse_documented), cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_hostile), cmocka_unit_test(test_query_and_dates),  cmocka_unit_test(test_msg_raw_and_truncate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
