/*
 * Bounds on what clients make the gateway hold before a handler runs (limits.c): decoded request headers, buffered
 * request bytes per connection and in total, and the time a request body may take.
 */
#ifndef K2A_HTTP_LIMITS_H
#define K2A_HTTP_LIMITS_H

#include <stdbool.h>
#include "h2o.h"
#include "http/server.h"

/* Decoded headers of one request: more is answered 431 (complete requests) or ends the connection (HTTP/2 requests whose
 * body is still arriving). Real clients send a few dozen headers and a few KB. */
#define K2A_MAX_REQ_HEADERS 200
#define K2A_MAX_REQ_HEADER_BYTES (256 * 1024)
/* The scan of every connection's socket buffer runs at most this often (HTTP/2 streams are looked at every loop turn). */
#define K2A_LIMITS_SCAN_MS 5

/* Whether a complete request's decoded headers are within the bounds above. */
static inline int k2a_limits_headers_ok(const h2o_req_t *req)
{
    if (req->headers.size > K2A_MAX_REQ_HEADERS)
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < req->headers.size; ++i)
        n += req->headers.entries[i].name->len + req->headers.entries[i].value.len;
    return n <= K2A_MAX_REQ_HEADER_BYTES;
}

/* HTTP/1.1: whether the request's raw head carries conflicting framing (two different Content-Length values, a list of
 * them, or Content-Length with Transfer-Encoding). h2o 2.2.5 takes the first length or lets chunked win and drops
 * both headers from req->headers, so the raw head is parsed again. Such a request is answered 400 and the connection
 * closed (RFC 9112 §6.3). */
bool k2a_limits_framing_conflict(h2o_req_t *req);

/* A handler that copied the request body (the call does) lets h2o's HTTP/2 buffer of it go at once: otherwise it stays
 * until the stream closes (8 KB or more for each open stream). req->entity then points at copy (same length). Nothing
 * happens for HTTP/1.1 or when h2o did not buffer this body. */
void k2a_limits_release_h2_body(h2o_req_t *req, char *copy);

/* Sets the bounds up (and turns off h2o's spill of large buffers to temporary files). Returns 0 or -1 (no memory). */
int k2a_limits_start(k2a_server_t *s);
/* One scan of the HTTP/2 connections, and with full of every client connection's socket buffer too (normally run by the
 * check handle k2a_limits_start installs). */
void k2a_limits_scan(k2a_server_t *s, bool full);

#endif
