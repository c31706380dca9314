/*
 * The web search tools the gateway serves through Kiro's MCP endpoint (kiro-protocol-2026 §10; docs/kiro-compat.md
 * "Web search"): Anthropic's web_search server tool and the Responses API's web_search / web_search_preview tool. The
 * flow knows no dialect: each search reaches the client as two IR events, K2A_EV_SEARCH_START and K2A_EV_SEARCH_RESULT
 * (convert/ir.h), that the dialect's writer renders (Anthropic: server_tool_use and web_search_tool_result blocks;
 * Responses: a web_search_call output item).
 *
 * Two shapes. A request whose only tool is the search and which does not ask the model to decide (Claude Code's
 * WebSearch sub-request) is searched before the generate call with its first user text as the query; the results reach
 * the model as text appended to the current user message, and the events go out after MESSAGE_START
 * (k2a_websearch_replay). Otherwise (client tools beside it, or ir->web_search.as_tool) the search is declared to Kiro as
 * a plain tool and the agentic loop runs it when the model asks (k2a_websearch_on_event, k2a_websearch_next_turn). The
 * MCP call uses the same pool, lease, failover and metrics as a generate call (pool/mcp.c). A failed, empty or
 * timed-out search still gives both events, with no result, and the model is told so.
 */
#ifndef K2A_HTTP_WEBSEARCH_H
#define K2A_HTTP_WEBSEARCH_H

#include <stdint.h>
#include "convert/ir.h"
#include "convert/web_search.h"
#include "core/buf.h"
#include "http/call.h"

/* The name the search is declared under to Kiro beside client tools (web_search itself is Anthropic's server tool name:
 * docs/kiro-compat.md "Web search"); a toolUse named this or web_search is a search request. */
#define K2A_WS_KIRO_TOOL "web_search_mcp"
#define K2A_WS_DEFAULT_MAX_USES 5

typedef struct st_k2a_websearch_t {
    int64_t requests; /* searches run (usage.server_tool_use.web_search_requests) */
    int index_offset; /* search-only: the IR block indices the search's events take before the model's */
    /* search-only: what k2a_websearch_replay sends */
    k2a_str_t query;
    const k2a_ws_results_t *results;
    char failure[160];
    char tool_id[K2A_WS_ID_LEN + 1];
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

/* In the request's coroutine, after decoding (for a dialect whose writers render the search events,
 * k2a_dialect_t.web_search), when ir->web_search.requested: a search-only request is searched now and ir rewritten (the
 * results appended as text to the last user message); otherwise the search is declared to Kiro as a tool. Returns the
 * state (allocated; k2a_websearch_dispose), or NULL when the request is not a web search one (or out of memory: the
 * request then goes on as an ordinary one). */
k2a_websearch_t *k2a_websearch_prepare(k2a_call_t *call, k2a_ir_request_t *ir);
void k2a_websearch_dispose(k2a_websearch_t *ws);
/* A search-only request: sends the search's SEARCH_START and SEARCH_RESULT to forward (the writer, right after its
 * MESSAGE_START; again after a non-stream answer started over). The model's block indices then move by index_offset.
 * Returns what forward returned; 0 for a mixed one. */
int k2a_websearch_replay(k2a_websearch_t *ws, k2a_ir_event_cb forward, void *ctx);

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
/* In the coroutine, after such a turn: runs the search (or, past max_uses, not), sends its SEARCH_START and
 * SEARCH_RESULT to forward (index: ws->base of the turn plus the model's blocks it kept), and appends the turn and the
 * results to ir's history. Returns 0 when the exchange should build ir again and ask the model to continue, or non-zero
 * when the answer ends here: then the held STOP is forwarded. */
int k2a_websearch_next_turn(k2a_websearch_t *ws, k2a_call_t *call, k2a_ir_request_t *ir, k2a_ir_event_cb forward, void *ctx);

#endif
