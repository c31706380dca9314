/*
 * GET /api/tokens: the account pool's state as JSON, rendered from memory on the pool's loop (it never
 * triggers a refresh or an upstream call, unlike kiro2api's). The router has already required the
 * client or admin key.
 */
#include "core/buf.h"
#include "http/call.h"
#include "http/gateway.h"
#include "http/handlers.h"

static void api_tokens(k2a_call_t *call)
{
    k2a_buf_t out = K2A_BUF_INIT(0);
    if (k2a_gateway_render_tokens(call->server, &out) != 0)
        k2a_call_respond_error(call, K2A_EINTERNAL, "cannot render the pool state");
    else
        k2a_call_respond_json(call, 200, out.base, out.len);
    k2a_buf_dispose(&out);
}

int k2a_h_api_tokens(h2o_req_t *req, const k2a_route_ctx_t *rc)
{
    k2a_call_start(req, rc->route, rc->dialect, rc->request_id, api_tokens);
    return 0;
}
