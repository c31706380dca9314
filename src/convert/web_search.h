/*
 * Web search through Kiro's MCP endpoint (kiro-protocol-2026 §10), the conversions: the JSON-RPC request body, the parser
 * of its answer (bounded: hostile input gives an error or fewer results, never more memory than the caps), and the
 * renderings of the results: Anthropic's web_search_tool_result content and the text the model reads as context.
 * No I/O here (pool/mcp.c sends the call, http/websearch.c runs the flow).
 */
#ifndef K2A_CONVERT_WEB_SEARCH_H
#define K2A_CONVERT_WEB_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "convert/ir.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/rand.h"
#include "core/str.h"

#define K2A_WS_MAX_RESULTS 10   /* results kept from one answer */
#define K2A_WS_MAX_TITLE 1000   /* bytes kept of a title (cut at a UTF-8 boundary) */
#define K2A_WS_MAX_URL 4000     /* a longer URL drops the result */
#define K2A_WS_MAX_SNIPPET 2000 /* bytes kept of a snippet */
#define K2A_WS_MAX_QUERY 1000   /* bytes of a query sent to Kiro */
#define K2A_WS_PREFIX "Perform a web search for the query: "
#define K2A_WS_ID_LEN 41 /* "srvtoolu_" + 32 hex */

typedef struct st_k2a_ws_result_t {
    k2a_str_t title, url, snippet;
    int64_t published_ms; /* publishedDate; 0 when absent */
} k2a_ws_result_t;

typedef struct st_k2a_ws_results_t {
    k2a_ws_result_t items[K2A_WS_MAX_RESULTS];
    size_t n;
} k2a_ws_results_t;

/* Appends {"id":"web_search_tooluse_<22 alnum>_<unix ms>_<8 lower-alnum>","jsonrpc":"2.0","method":"tools/call",
 * "params":{"name":"web_search","arguments":{"query":...}}}. The query is cut at K2A_WS_MAX_QUERY bytes. */
int k2a_ws_rpc_body(k2a_buf_t *out, k2a_str_t query, int64_t now_ms, k2a_random_cb random, void *random_ctx);

/* Parses an MCP answer. Returns 0 with out filled (possibly no result), or a K2A_E* with a short reason in err (a JSON-RPC
 * error {"error":{"code","message"}}, isError true, a "text" that is not the results JSON, malformed JSON): the caller tells
 * the model the search failed. Strings are copied into arena. */
int k2a_ws_parse(const char *body, size_t len, k2a_arena_t *arena, k2a_ws_results_t *out, char *err, size_t errsz);

/* "srvtoolu_" + 32 lower hex + NUL into out (K2A_WS_ID_LEN + 1 bytes). */
void k2a_ws_tool_id(char *out, k2a_random_cb random, void *random_ctx);

/* "January 2, 2026" (UTC) into out; "" for 0. */
void k2a_ws_page_age(int64_t ms, char *out, size_t outsz);

/* Appends the content array of a web_search_tool_result:
 * [{"type":"web_search_result","title","url","encrypted_content":<snippet>,"page_age"}...]. */
int k2a_ws_results_json(k2a_buf_t *out, const k2a_ws_results_t *res);

/* Appends the text the model reads: the query, then each result (title, URL, date, snippet), or the note that the search
 * failed or found nothing (failure: a short reason, never a secret). */
int k2a_ws_context_text(k2a_buf_t *out, k2a_str_t query, const k2a_ws_results_t *res, const char *failure);

/* The web search query of a request: the first text of the first user message, with K2A_WS_PREFIX stripped (Claude Code's
 * WebSearch sub-request), trimmed. K2A_STR_NULL when there is none. */
k2a_str_t k2a_ws_query_from_ir(const k2a_ir_request_t *ir);

#endif
