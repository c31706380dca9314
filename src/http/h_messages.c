/*
 * POST /v1/messages: the Anthropic Messages API, streaming and not, served by a coroutine (exchange.c).
 */
#include "http/call.h"
#include "http/exchange.h"
#include "http/handlers.h"

int k2a_h_messages(h2o_req_t *req, const k2a_route_ctx_t *rc)
{
    k2a_call_start(req, K2A_ROUTE_MESSAGES, K2A_DIALECT_ANTHROPIC, rc->request_id, k2a_exchange_anthropic);
    return 0;
}
