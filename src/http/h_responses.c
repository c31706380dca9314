/*
 * POST /v1/responses: the OpenAI Responses API through the same exchange as the other dialects (convert/responses_*),
 * with the process's response store created first so that previous_response_id and store work. GET /v1/responses/{id}:
 * a stored response object (404 in OpenAI's shape when unknown or expired).
 */
#include <time.h>
#include "convert/responses_store.h"
#include "core/errors.h"
#include "http/handlers.h"
#include "http/respond.h"
#include "http/server.h"
#include "keys/keys.h"

int k2a_h_responses(h2o_req_t *req, const k2a_route_ctx_t *rc)
{
    k2a_responses_store_shared(k2a_server_of(req)->config);
    return k2a_h_exchange(req, rc);
}

int k2a_h_response_get(h2o_req_t *req, const k2a_route_ctx_t *rc)
{
    k2a_responses_store_t *store = k2a_responses_store_shared(k2a_server_of(req)->config);
    h2o_iovec_t id = rc->subpath;
    k2a_buf_t body;
    k2a_buf_init(&body, 0);
    int r = K2A_ENOTFOUND;
    /* scoped by the client key the router matched for this request: another key's response is "not found" */
    k2a_server_t *s = k2a_server_of(req);
    char key[K2A_RESPONSES_STORE_KEY_MAX + 1];
    size_t klen = k2a_responses_store_key(key, s->routed_key != NULL ? s->routed_key->id : NULL, id.base, id.len);
    if (store != NULL && klen != 0)
        r = k2a_responses_store_get(store, key, klen, (int64_t)time(NULL), &body, NULL);
    if (r == 0) {
        k2a_http_send_json(req, 200, body.base, body.len);
    } else {
        char msg[200];
        snprintf(msg, sizeof(msg), "Response with id '%.*s' not found.", (int)(id.len > 128 ? 128 : id.len), id.base);
        k2a_http_send_error(req, rc->dialect, r == K2A_ENOTFOUND ? K2A_ENOTFOUND : r, msg);
    }
    k2a_buf_dispose(&body);
    return 0;
}
