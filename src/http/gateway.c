/*
 * Module wiring (see gateway.h). Modules land one issue at a time; until then their routes answer 501.
 */
#include "http/gateway.h"

int k2a_gateway_init(k2a_server_t *server, char *err, size_t errlen)
{
    return 0;
}

void k2a_gateway_dispose(k2a_server_t *server)
{
}
