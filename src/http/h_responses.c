/*
 * POST /v1/responses: the OpenAI Responses API through the same exchange as the other dialects (convert/responses_*),
 * with the process's response store created first so that previous_response_id and store work. GET /v1/responses/{id}:
 * a stored response object (404 in OpenAI's shape when unknown or expired), looked up in the call's coroutine so that
 * the shared store (KIRO_REDIS_URL) can be asked for a response another replica made. DELETE /v1/responses/{id}: removes
 * it (here and in the shared store) and answers {"id","object":"response","deleted":true}, 404 like GET when unknown.
 * Both are scoped by the client key: another key's response is "not found".
 */
#include <string.h>
#include <time.h>
#include "convert/responses_store.h"
#include "core/errors.h"
#include "http/call.h"
#include "http/handlers.h"
#include "http/respond.h"
#include "http/server.h"
#include "keys/keys.h"

int k2a_h_responses(h2o_req_t *req, const k2a_route_ctx_t *rc)
{
    k2a_responses_store_shared(k2a_server_of(req)->config);
    return k2a_h_exchange(req, rc);
}

static bool is_delete(h2o_req_t *req)
{
    return h2o_memis(req->method.base, req->method.len, H2O_STRLIT("DELETE"));
}

/* In the call's coroutine: a response made through another replica is read (or deleted) in the shared store, which
 * waits. */
static void response_get(k2a_call_t *call)
{
    static const char base[] = "/v1/responses/";
    k2a_responses_store_t *store = k2a_responses_store_current();
    if (call->req == NULL)
        return;
    bool del = is_delete(call->req);
    h2o_iovec_t path = call->req->path_normalized;
    h2o_iovec_t id = {NULL, 0};
    if (path.len > sizeof(base) - 1 && memcmp(path.base, base, sizeof(base) - 1) == 0)
        id = h2o_iovec_init(path.base + sizeof(base) - 1, path.len - (sizeof(base) - 1));
    k2a_buf_t body = K2A_BUF_INIT(0);
    int r = K2A_ENOTFOUND;
    /* scoped by the client key the router matched for this request: another key's response is "not found" */
    char key[K2A_RESPONSES_STORE_KEY_MAX + 1];
    size_t klen = id.len > 0 ? k2a_responses_store_key(key, call->key != NULL ? call->key->id : NULL, id.base, id.len) : 0;
    if (store != NULL && klen != 0)
        r = del ? k2a_responses_store_delete(store, key, klen)
                : k2a_responses_store_get(store, key, klen, (int64_t)time(NULL), &body, NULL);
    if (r == 0 && del) {
        /* the id passed k2a_responses_store_key: no '/', bounded; written as a JSON string */
        if ((r = k2a_buf_append(&body, "{\"id\":\"", 7)) == 0 && (r = k2a_buf_append_json_escaped(&body, id.base, id.len)) == 0)
            r = k2a_buf_appendstr(&body, "\",\"object\":\"response\",\"deleted\":true}");
        if (r != 0)
            k2a_call_respond_error(call, r, k2a_strerror(r));
        else
            k2a_call_respond_json(call, 200, body.base, body.len);
    } else if (r == 0) {
        k2a_call_respond_json(call, 200, body.base, body.len);
    } else if (r != K2A_ECANCELED) {
        char msg[200];
        snprintf(msg, sizeof(msg), "Response with id '%.*s' not found.", (int)(id.len > 128 ? 128 : id.len), id.base);
        k2a_call_respond_error(call, K2A_ENOTFOUND, msg);
    }
    k2a_buf_dispose(&body);
}

int k2a_h_response_get(h2o_req_t *req, const k2a_route_ctx_t *rc)
{
    /* the route takes GET (and HEAD) and DELETE */
    if (!is_delete(req) && !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET, DELETE"));
        k2a_http_send_error(req, rc->dialect, K2A_EMETHOD, "method not allowed: use GET or DELETE");
        return 0;
    }
    k2a_responses_store_shared(k2a_server_of(req)->config);
    k2a_call_start(req, rc->route, rc->dialect, rc->request_id, response_get);
    return 0;
}
