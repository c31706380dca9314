/*
 * Wiring of the gateway's modules onto a server: the model map, the upstream client and the
 * account pool, created from the configuration and plugged into the server's hooks.
 */
#ifndef K2A_HTTP_GATEWAY_H
#define K2A_HTTP_GATEWAY_H

#include <stddef.h>
#include "http/server.h"

/* Returns 0, or K2A_ECONFIG with a one-line message naming the variable in err. */
int k2a_gateway_init(k2a_server_t *server, char *err, size_t errlen);
/* Releases the modules (also called by the server at the end of a shutdown; idempotent). */
void k2a_gateway_destroy(k2a_server_t *server);

#endif
