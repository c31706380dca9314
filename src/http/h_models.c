/*
 * GET /v1/models and GET /v1/models/<id>: the public model names the model map accepts, in a stable
 * (sorted) order. Each entry carries the fields of both list shapes — Anthropic's (type, display_name,
 * created_at, first_id/last_id/has_more) and OpenAI's and kiro2api's (object, created, owned_by) — so
 * either SDK's models.list() works.
 */
#include <string.h>
#include "convert/model_map.h"
#include "core/buf.h"
#include "http/handlers.h"
#include "http/respond.h"

#define MODELS_CREATED 1735689600 /* 2025-01-01T00:00:00Z: a fixed date, the list is static */

static void append_model(k2a_buf_t *out, k2a_str_t name)
{
    k2a_buf_appendstr(out, "{\"id\":\"");
    k2a_buf_append_json_escaped(out, name.base, name.len);
    k2a_buf_appendstr(out, "\",\"type\":\"model\",\"object\":\"model\",\"display_name\":\"");
    k2a_buf_append_json_escaped(out, name.base, name.len);
    k2a_buf_appendf(out,
                    "\",\"created_at\":\"2025-01-01T00:00:00Z\",\"created\":%d,\"owned_by\":\"anthropic\",\"max_tokens\":200000}",
                    MODELS_CREATED);
}

int k2a_h_models(h2o_req_t *req, const k2a_route_ctx_t *rc)
{
    k2a_server_t *s = k2a_server_of(req);
    if (s->model_map == NULL) {
        k2a_http_send_error(req, K2A_DIALECT_ANTHROPIC, 503, "api_error", "the model map is not loaded");
        return 0;
    }
    k2a_buf_t out = K2A_BUF_INIT(0);
    if (rc->subpath.len != 0) {
        k2a_model_resolution_t res;
        k2a_convert_error_t err;
        if (k2a_model_map_resolve(s->model_map, k2a_str(rc->subpath.base, rc->subpath.len), &res, &err) != 0) {
            k2a_http_send_error(req, K2A_DIALECT_ANTHROPIC, 404, "not_found_error", err.message);
            return 0;
        }
        append_model(&out, k2a_str(rc->subpath.base, rc->subpath.len));
    } else {
        size_t n = k2a_model_map_count(s->model_map);
        k2a_buf_appendstr(&out, "{\"object\":\"list\",\"data\":[");
        for (size_t i = 0; i < n; ++i) {
            if (i != 0)
                k2a_buf_appendstr(&out, ",");
            append_model(&out, k2a_model_map_name(s->model_map, i));
        }
        k2a_buf_appendstr(&out, "],\"has_more\":false,\"first_id\":");
        if (n != 0) {
            k2a_str_t first = k2a_model_map_name(s->model_map, 0), last = k2a_model_map_name(s->model_map, n - 1);
            k2a_buf_appendstr(&out, "\"");
            k2a_buf_append_json_escaped(&out, first.base, first.len);
            k2a_buf_appendstr(&out, "\",\"last_id\":\"");
            k2a_buf_append_json_escaped(&out, last.base, last.len);
            k2a_buf_appendstr(&out, "\"}");
        } else {
            k2a_buf_appendstr(&out, "null,\"last_id\":null}");
        }
    }
    k2a_http_send_json(req, 200, out.base, out.len);
    k2a_buf_dispose(&out);
    return 0;
}
