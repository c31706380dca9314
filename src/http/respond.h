/*
 * Small synchronous responses: JSON bodies, errors in the route's dialect, the headers every
 * response carries (CORS, X-Request-ID). Bodies are copied into the request's pool, so callers may
 * pass stack buffers.
 */
#ifndef K2A_HTTP_RESPOND_H
#define K2A_HTTP_RESPOND_H

#include "h2o.h"
#include "convert/dialect.h"

/* Adds CORS and X-Request-ID to req->res.headers (the router calls it once per request). */
void k2a_http_add_common_headers(h2o_req_t *req, const char *request_id);
/* Sends a complete response with the given content type. */
void k2a_http_send_body(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len);
void k2a_http_send_json(h2o_req_t *req, int status, const char *json, size_t len);
/* A K2A_E* error as a complete response in the dialect's shape, with the status of its error table (convert/dialect.h).
 * A NULL or empty message means k2a_strerror(err). */
void k2a_http_send_error(h2o_req_t *req, const k2a_dialect_t *dialect, int err, const char *message);
/* The reason phrase h2o wants for a status. */
const char *k2a_http_reason(int status);
/* Value of request header `name` (lower-case), or NULL/0. */
h2o_iovec_t k2a_http_header(h2o_req_t *req, const char *name);
/* The keys a request presents: `Authorization: Bearer <key>` (the scheme word optional) and `x-api-key`, in that
 * order, into out[0..1]; returns how many (0-2). */
size_t k2a_http_key_candidates(h2o_req_t *req, h2o_iovec_t out[2]);
/* Whether SHA-256(key) equals digest, compared in constant time (keys are kept only as digests). */
bool k2a_http_key_matches(const unsigned char digest[32], const char *key, size_t len);

#endif
