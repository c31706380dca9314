/*
 * The admin API's key endpoints (h_admin_keys.c): a sub-route table registered by the gateway at start-up.
 */
#ifndef K2A_HTTP_ADMIN_KEYS_H
#define K2A_HTTP_ADMIN_KEYS_H

#include "http/admin.h"

extern const k2a_admin_route_t k2a_admin_key_routes[];

#endif
