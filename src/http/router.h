/*
 * Routing of every request (router.c): classification of paths into routes, and registration of the
 * catch-all handler and the metrics logger on an h2o host.
 */
#ifndef K2A_HTTP_ROUTER_H
#define K2A_HTTP_ROUTER_H

#include "h2o.h"
#include "convert/dialect.h"
#include "http/server.h"

/* Maps a normalized path (no query) to a route; `subpath` receives what follows a prefix route (may be NULL). */
k2a_route_t k2a_route_classify(h2o_iovec_t path, h2o_iovec_t *subpath);
void k2a_router_register(k2a_server_t *s, h2o_hostconf_t *hostconf);
/* The dialects of the route table, each once (tests iterate them): fills out[0..max) and returns how many. */
size_t k2a_router_dialects(const k2a_dialect_t **out, size_t max);

#endif
