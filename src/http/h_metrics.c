/*
 * GET /metrics: Prometheus text format for the whole process — every worker's request metrics
 * summed, coroutines, the upstream clients and the account pool (gateway.c gathers them, each on the
 * loop that owns it). Requires a client or admin key.
 */
#include "core/buf.h"
#include "http/call.h"
#include "http/gateway.h"
#include "http/handlers.h"

static void metrics(k2a_call_t *call)
{
    k2a_buf_t out = K2A_BUF_INIT(0);
    int r = k2a_gateway_render_metrics(call->server, &out);
    if (r != 0) {
        k2a_call_respond_error(call, K2A_EINTERNAL, "cannot render the metrics");
    } else if (k2a_call_begin(call, 200, "text/plain; version=0.0.4; charset=utf-8", "cache-control", "no-store", NULL) == 0 &&
               k2a_call_write(call, out.base != NULL ? out.base : "", out.len) == 0) {
        k2a_call_finish(call);
    }
    k2a_buf_dispose(&out);
}

int k2a_h_metrics(h2o_req_t *req, const k2a_route_ctx_t *rc)
{
    k2a_call_start(req, rc->route, rc->dialect, rc->request_id, metrics);
    return 0;
}
