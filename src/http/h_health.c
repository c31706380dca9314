/*
 * GET /healthz (the process serves requests) and GET /readyz (at least one Kiro account is usable).
 * Neither needs a client key, so that load balancers and container health checks can call them.
 */
#include "http/handlers.h"
#include "http/respond.h"

int k2a_h_healthz(h2o_req_t *req, const k2a_route_ctx_t *rc)
{
    static const char body[] = "{\"status\":\"ok\"}";
    k2a_http_send_json(req, 200, body, sizeof(body) - 1);
    return 0;
}

int k2a_h_readyz(h2o_req_t *req, const k2a_route_ctx_t *rc)
{
    k2a_server_t *s = k2a_server_of(req);
    if (s->shutting_down) {
        static const char body[] = "{\"status\":\"shutting_down\"}";
        k2a_http_send_json(req, 503, body, sizeof(body) - 1);
    } else if (s->is_ready != NULL && s->is_ready(s)) {
        static const char body[] = "{\"status\":\"ready\"}";
        k2a_http_send_json(req, 200, body, sizeof(body) - 1);
    } else {
        static const char body[] = "{\"status\":\"not_ready\",\"reason\":\"no usable Kiro account\"}";
        k2a_http_send_json(req, 503, body, sizeof(body) - 1);
    }
    return 0;
}
