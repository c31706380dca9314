/*
 * POST /v1/chat/completions: the OpenAI Chat Completions API through the same IR and the same exchange as
 * /v1/messages; only the decoder, the writers and the error shapes differ.
 */
#include "http/call.h"
#include "http/exchange.h"
#include "http/handlers.h"

int k2a_h_chat_completions(h2o_req_t *req, const k2a_route_ctx_t *rc)
{
    k2a_call_start(req, K2A_ROUTE_CHAT_COMPLETIONS, K2A_DIALECT_OPENAI, rc->request_id, k2a_exchange_openai);
    return 0;
}
