/*
 * GET /healthz (the process serves requests) and GET /readyz (at least one Kiro account is usable).
 * Neither needs a client key, so that load balancers and container health checks can call them.
 * /readyz asks the account pool, which lives on worker 0's loop, so it runs as a coroutine call. With a shared store
 * (KIRO_REDIS_URL) that is down, it still answers 200 and says "shared store unavailable".
 */
#include <string.h>
#include "http/call.h"
#include "http/gateway.h"
#include "http/handlers.h"
#include "http/respond.h"

int k2a_h_healthz(h2o_req_t *req, const k2a_route_ctx_t *rc)
{
    static const char body[] = "{\"status\":\"ok\"}";
    k2a_http_send_json(req, 200, body, sizeof(body) - 1);
    return 0;
}

static void readyz(k2a_call_t *call)
{
    k2a_server_t *s = call->server;
    const char *shared = NULL;
    if (s->shutting_down) {
        static const char body[] = "{\"status\":\"shutting_down\"}";
        k2a_call_respond_json(call, 503, body, sizeof(body) - 1);
    } else if (k2a_gateway_ready_ex(s, &shared)) {
        /* the shared store down is no reason to take the replica out of a load balancer: it serves from memory */
        static const char body[] = "{\"status\":\"ready\"}";
        static const char down[] = "{\"status\":\"ready\",\"shared_store\":\"shared store unavailable\"}";
        bool d = shared != NULL && strcmp(shared, "ok") != 0;
        k2a_call_respond_json(call, 200, d ? down : body, d ? sizeof(down) - 1 : sizeof(body) - 1);
    } else {
        static const char body[] = "{\"status\":\"not_ready\",\"reason\":\"no usable Kiro account\"}";
        k2a_call_respond_json(call, 503, body, sizeof(body) - 1);
    }
}

int k2a_h_readyz(h2o_req_t *req, const k2a_route_ctx_t *rc)
{
    k2a_call_start(req, rc->route, rc->dialect, rc->request_id, readyz);
    return 0;
}
