/*
 * POST /v1/messages/count_tokens: the input-token estimate of kiro-protocol.md §4.6 for an Anthropic
 * request body (decoded by the route's dialect) — the same number /v1/messages reports in message_start for
 * that body. Synchronous: no upstream call, so no coroutine.
 */
#include "convert/model_map.h"
#include "convert/tokens.h"
#include "core/arena.h"
#include "core/buf.h"
#include "http/handlers.h"
#include "http/respond.h"

int k2a_h_count_tokens(h2o_req_t *req, const k2a_route_ctx_t *rc)
{
    k2a_server_t *s = k2a_server_of(req);
    k2a_arena_t arena;
    k2a_arena_init(&arena, (size_t)s->config->max_body_bytes * 4 + 64 * 1024 * 1024);
    k2a_convert_limits_t limits = k2a_convert_limits_default();
    k2a_convert_error_t err = {0};
    k2a_ir_request_t ir;
    int r = rc->dialect->decode(req->entity.base != NULL ? req->entity.base : "", req->entity.len, &limits, &arena, &ir, &err);
    if (r == 0 && s->model_map != NULL) {
        k2a_model_resolution_t res;
        r = k2a_model_map_resolve(s->model_map, ir.model, &res, &err);
    }
    if (r != 0) {
        k2a_http_send_error(req, rc->dialect, r, err.message);
    } else {
        char body[64];
        int n = snprintf(body, sizeof(body), "{\"input_tokens\":%lld}", (long long)k2a_tokens_input_estimate(&ir, true));
        k2a_http_send_json(req, 200, body, (size_t)n);
    }
    k2a_arena_dispose(&arena);
    return 0;
}
