/*
 * Anthropic's web_search server tool, served through Kiro's MCP endpoint (kiro-protocol-2026 §10; docs/kiro-compat.md
 * "Web search"). A request whose only tool is web_search (Claude Code's WebSearch sub-request) is answered as Anthropic
 * does: a text announcing the search, a server_tool_use block, a web_search_tool_result block, then the model's answer.
 * The search runs before the generate call (pool/mcp.c: same pool, lease, failover and metrics); its results reach the
 * model as text appended to the current user message, so the generate call is an ordinary one. A failed, empty or
 * timed-out search still gives that sequence, with no result, and the model is told so.
 *
 * The exchange (exchange.c) calls k2a_websearch_prepare between decoding and building the Kiro request, stages the
 * prefix blocks after message_start, and shifts the model's block indices by index_offset.
 */
#ifndef K2A_HTTP_WEBSEARCH_H
#define K2A_HTTP_WEBSEARCH_H

#include <stdint.h>
#include "convert/ir.h"
#include "core/buf.h"
#include "http/call.h"

typedef struct st_k2a_websearch_t {
    int64_t requests;  /* searches run (usage.server_tool_use.web_search_requests) */
    int index_offset;  /* blocks before the model's in the stream */
    k2a_buf_t sse;     /* the prefix blocks as SSE events (indices 0..index_offset-1) */
    k2a_buf_t content; /* the same blocks as JSON objects for a non-stream answer, comma-separated */
} k2a_websearch_t;

/* In the request's coroutine, after decoding: when the request carries the web_search server tool and no client tool,
 * runs the search and rewrites ir (the results appended as text to the last user message). Returns the prefix to send
 * (allocated; k2a_websearch_dispose), or NULL when the request is not a web search one (or out of memory: the request
 * then goes on as an ordinary one). */
k2a_websearch_t *k2a_websearch_prepare(k2a_call_t *call, k2a_ir_request_t *ir);
void k2a_websearch_dispose(k2a_websearch_t *ws);

#endif
