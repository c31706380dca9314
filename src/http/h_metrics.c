/*
 * GET /metrics: Prometheus text format (requests, latency, bytes, coroutines, and whatever the
 * upstream client and the account pool add through metrics hooks). Requires a client or admin key.
 */
#include "core/buf.h"
#include "core/coro.h"
#include "http/handlers.h"
#include "http/respond.h"

int k2a_h_metrics(h2o_req_t *req, const k2a_route_ctx_t *rc)
{
    k2a_server_t *s = k2a_server_of(req);
    k2a_buf_t out = K2A_BUF_INIT(0);
    k2a_metrics_render(&s->metrics, &out);
    k2a_coro_stats_t cs;
    k2a_coro_get_stats(&cs);
    k2a_buf_appendf(&out,
                    "# HELP k2a_coroutines_live Coroutines alive (requests and background jobs).\n"
                    "# TYPE k2a_coroutines_live gauge\nk2a_coroutines_live %zu\n"
                    "# HELP k2a_coroutine_stacks_pooled Idle coroutine stacks kept for reuse.\n"
                    "# TYPE k2a_coroutine_stacks_pooled gauge\nk2a_coroutine_stacks_pooled %zu\n"
                    "# HELP k2a_coroutines_created_total Coroutines created.\n"
                    "# TYPE k2a_coroutines_created_total counter\nk2a_coroutines_created_total %llu\n",
                    cs.live, cs.pooled, (unsigned long long)cs.created);
    k2a_http_send_body(req, 200, "text/plain; version=0.0.4; charset=utf-8", out.base != NULL ? out.base : "", out.len);
    k2a_buf_dispose(&out);
    return 0;
}
