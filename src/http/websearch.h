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

/* The name the search is declared under to Kiro beside client tools (web_search itself is Anthropic's server tool name:
 * docs/kiro-compat.md "Web search"); a toolUse named this or web_search is a search request. */
#define K2A_WS_KIRO_TOOL "web_search_mcp"
#define K2A_WS_DEFAULT_MAX_USES 5

typedef struct st_k2a_websearch_t {
    int64_t requests;  /* searches run (usage.server_tool_use.web_search_requests) */
    int index_offset;  /* blocks before the model's in the stream */
    k2a_buf_t sse;     /* the prefix blocks as SSE events (indices 0..index_offset-1) */
    k2a_buf_t content; /* the same blocks as JSON objects for a non-stream answer, comma-separated */
    /* mixed tool sets: the agentic loop (k2a_websearch_on_event, k2a_websearch_next_turn) */
    bool mixed;
    int64_t max_uses;
    int base;            /* the client index of this turn's block 0 */
    int skipped;         /* blocks of this turn kept from the client (search requests) */
    uint64_t skip_mask;  /* which of the turn's first 64 blocks they are */
    int turn_blocks;     /* blocks the model opened this turn */
    int search_index;    /* the model's index of the search request, -1 when none this turn */
    bool other_tools;    /* this turn also asked for a client tool */
    bool stop_held;      /* this turn's STOP is held back (a search is pending) */
    int refused;         /* search requests refused past max_uses */
    k2a_ir_event_t held; /* that STOP */
    char search_id[128]; /* the toolUseId of the search request */
    k2a_buf_t search_input;
    k2a_buf_t turn_text; /* the text of this turn, for the history of the next */
} k2a_websearch_t;

/* In the request's coroutine, after decoding (for a dialect that serves the tool: k2a_dialect_t.websearch_aggregate): when
 * the request carries the web_search server tool and no client tool,
 * runs the search and rewrites ir (the results appended as text to the last user message). Returns the prefix to send
 * (allocated; k2a_websearch_dispose), or NULL when the request is not a web search one (or out of memory: the request
 * then goes on as an ordinary one). */
k2a_websearch_t *k2a_websearch_prepare(k2a_call_t *call, k2a_ir_request_t *ir);
void k2a_websearch_dispose(k2a_websearch_t *ws);
/* A non-stream answer: its aggregate (the dialect's websearch_aggregate) starts with the prefix blocks. */
void k2a_websearch_attach(k2a_websearch_t *ws, void *aggregate);
/* A non-stream attempt of a later turn failed over: the aggregate keeps the earlier turns' blocks only. */
void k2a_websearch_truncate(k2a_websearch_t *ws, void *aggregate);

/* Mixed tool sets: every model event goes through here. A web search request (a tool_use named K2A_WS_KIRO_TOOL or
 * web_search) is kept from the client, the other blocks move to their client index, and the STOP of a turn that asked
 * for a search is held. Returns what forward returned. */
/* A new attempt of the model (a turn, or a failover inside one): forgets what the previous attempt said. */
void k2a_websearch_turn_start(k2a_websearch_t *ws);
int k2a_websearch_on_event(k2a_websearch_t *ws, const k2a_ir_event_t *ev, k2a_ir_event_cb forward, void *ctx);
/* True when the turn ended with a search pending (its STOP held). */
static inline bool k2a_websearch_pending(const k2a_websearch_t *ws)
{
    return ws != NULL && ws->mixed && ws->stop_held;
}
/* In the coroutine, after such a turn: runs the search (or, past max_uses, not), writes server_tool_use and
 * web_search_tool_result to the client (sse: the stream's stage; msg: the aggregate), and appends the turn and the
 * results to ir's history. Returns 0 when the exchange should build ir again and ask the model to continue, or non-zero
 * when the answer ends here: then the held STOP is forwarded. */
int k2a_websearch_next_turn(k2a_websearch_t *ws, k2a_call_t *call, k2a_ir_request_t *ir, k2a_buf_t *sse, void *msg,
                            k2a_ir_event_cb forward, void *ctx);

#endif
