/*
 * GET /api/tokens. Not wired yet: answers 501 in the route's dialect until its module lands — never a fake success.
 */
#include "http/handlers.h"
#include "http/respond.h"

int k2a_h_api_tokens(h2o_req_t *req, const k2a_route_ctx_t *rc)
{
    k2a_http_send_error(req, K2A_DIALECT_ANTHROPIC, 501, "api_error", "GET /api/tokens is not implemented yet in this build");
    return 0;
}
