/*
 * One chat exchange (DESIGN.md §2): the coroutine body shared by every chat route, in the route's dialect
 * (convert/dialect.h). It decodes the client's request into the IR, builds the Kiro request, sends
 * it through the account pool's dispatch (failover across accounts), and streams the EventStream
 * answer through the Kiro event parser into the dialect's writer.
 *
 * Commit rule: nothing reaches the client until the first content block exists, the stream ended, or
 * a ping is due. Until then an upstream failure (a non-200, a cut or corrupt body, an exception before
 * any content) is retried on the next account and the client never sees it; afterwards a failure is
 * one in-stream error event in the client's dialect — never a fake end_turn.
 */
#ifndef K2A_HTTP_EXCHANGE_H
#define K2A_HTTP_EXCHANGE_H

#include "convert/ir.h"
#include "http/call.h"

/* The coroutine body (k2a_call_fn) of every chat route: the call's dialect (k2a_call_t.dialect, from the route table)
 * decodes the request and writes the answer. The route handler is k2a_h_exchange (http/handlers.h). */
void k2a_exchange_run(k2a_call_t *call);

#endif
