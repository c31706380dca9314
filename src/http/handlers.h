/*
 * The endpoints, one file each (h_*.c; the chat routes share k2a_h_exchange). The router has already assigned a
 * request id, added the common headers, checked the method, the client key and the body size; a handler only answers.
 * Each returns 0 (h2o's "handled").
 */
#ifndef K2A_HTTP_HANDLERS_H
#define K2A_HTTP_HANDLERS_H

#include "h2o.h"
#include "convert/dialect.h"
#include "http/server.h"

typedef struct st_k2a_route_ctx_t {
    k2a_route_t route;
    const k2a_dialect_t *dialect; /* the route's dialect (the shape of its errors; a chat route's whole API) */
    const char *request_id;       /* in req->pool */
    h2o_iovec_t subpath;          /* the path after the route's prefix, e.g. the model id of /v1/models/<id> */
} k2a_route_ctx_t;

int k2a_h_healthz(h2o_req_t *req, const k2a_route_ctx_t *rc);
int k2a_h_readyz(h2o_req_t *req, const k2a_route_ctx_t *rc);
int k2a_h_metrics(h2o_req_t *req, const k2a_route_ctx_t *rc);
int k2a_h_static(h2o_req_t *req, const k2a_route_ctx_t *rc);
int k2a_h_models(h2o_req_t *req, const k2a_route_ctx_t *rc);
int k2a_h_count_tokens(h2o_req_t *req, const k2a_route_ctx_t *rc);
/* A chat exchange in the route's dialect (http/exchange.c): POST /v1/messages, /v1/chat/completions... */
int k2a_h_exchange(h2o_req_t *req, const k2a_route_ctx_t *rc);
int k2a_h_api_tokens(h2o_req_t *req, const k2a_route_ctx_t *rc);
int k2a_h_admin(h2o_req_t *req, const k2a_route_ctx_t *rc); /* /api/admin/...: admin.h */
/* POST /v1/responses (the exchange, with the response store ready) and GET / DELETE /v1/responses/{id} (h_responses.c) */
int k2a_h_responses(h2o_req_t *req, const k2a_route_ctx_t *rc);
int k2a_h_response_get(h2o_req_t *req, const k2a_route_ctx_t *rc);

#endif
