/*
 * Synchronous responses and errors in a dialect's shape (see respond.h).
 */
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <string.h>
#include <strings.h>
#include "core/buf.h"
#include "core/errors.h"
#include "http/respond.h"

const char *k2a_http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 529:
        return "Overloaded";
    default:
        return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

void k2a_http_add_common_headers(h2o_req_t *req, const char *request_id)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-origin"), 0, NULL, H2O_STRLIT("*"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-expose-headers"), 0, NULL,
                          H2O_STRLIT("x-request-id, x-kiro-model"));
    if (request_id != NULL)
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, request_id, strlen(request_id));
}

void k2a_http_send_body(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = k2a_http_reason(status);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type, strlen(content_type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    req->res.content_length = len;
    h2o_send_inline(req, body, len);
}

void k2a_http_send_json(h2o_req_t *req, int status, const char *json, size_t len)
{
    k2a_http_send_body(req, status, "application/json", json, len);
}

void k2a_http_send_error(h2o_req_t *req, const k2a_dialect_t *dialect, int err, const char *message)
{
    k2a_buf_t body = K2A_BUF_INIT(0);
    int status = k2a_dialect_error_body(dialect, &body, err, k2a_cstr(message != NULL ? message : ""));
    if (status < 0) {
        k2a_buf_dispose(&body);
        h2o_send_error_generic(req, 500, "Internal Server Error", "out of memory", 0);
        return;
    }
    k2a_http_send_json(req, status, body.base, body.len); /* h2o_send_inline copies the body */
    k2a_buf_dispose(&body);
}

h2o_iovec_t k2a_http_header(h2o_req_t *req, const char *name)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (i == -1)
        return h2o_iovec_init(NULL, 0);
    return req->headers.entries[i].value;
}

size_t k2a_http_key_candidates(h2o_req_t *req, h2o_iovec_t out[2])
{
    size_t n = 0;
    h2o_iovec_t auth = k2a_http_header(req, "authorization");
    if (auth.base != NULL) {
        if (auth.len >= 7 && strncasecmp(auth.base, "bearer ", 7) == 0) {
            auth.base += 7;
            auth.len -= 7;
        }
        while (auth.len > 0 && auth.base[0] == ' ')
            ++auth.base, --auth.len;
        out[n++] = auth;
    }
    h2o_iovec_t xkey = k2a_http_header(req, "x-api-key");
    if (xkey.base != NULL)
        out[n++] = xkey;
    return n;
}

bool k2a_http_key_matches(const unsigned char digest[32], const char *key, size_t len)
{
    unsigned char d[32];
    SHA256((const unsigned char *)key, len, d);
    return CRYPTO_memcmp(d, digest, 32) == 0;
}
