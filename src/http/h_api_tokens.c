/*
 * GET /api/tokens: the account pool's state as JSON, served from memory (it never triggers a refresh or
 * an upstream call, unlike kiro2api's). The router has already required the client or admin key.
 */
#include "core/buf.h"
#include "http/handlers.h"
#include "http/respond.h"
#include "pool/pool.h"

int k2a_h_api_tokens(h2o_req_t *req, const k2a_route_ctx_t *rc)
{
    k2a_server_t *s = k2a_server_of(req);
    if (s->pool == NULL) {
        static const char body[] = "{\"total_tokens\":0,\"active_tokens\":0,\"tokens\":[],\"pool_stats\":{\"total_tokens\":0,"
                                   "\"active_tokens\":0},\"error\":\"no Kiro account is configured (KIRO_AUTH_TOKEN)\"}";
        k2a_http_send_json(req, 200, body, sizeof(body) - 1);
        return 0;
    }
    k2a_buf_t out = K2A_BUF_INIT(0);
    if (k2a_pool_render_tokens_json(s->pool, &out) != 0) {
        k2a_buf_dispose(&out);
        k2a_http_send_error(req, K2A_DIALECT_ANTHROPIC, 500, "api_error", "cannot render the pool state");
        return 0;
    }
    k2a_http_send_json(req, 200, out.base, out.len);
    k2a_buf_dispose(&out);
    return 0;
}
